//! Why a pod is refused, in CEL: the first invalid annotation in the order
//! `planner::plan` reads them, else a grace period above `--max-grace`
//! (`docs/admission.md`, "Invalid annotations"). `variables.problem` is ''
//! for a valid pod.

use k8s_openapi::api::admissionregistration::v1::Variable;

use super::cel::{self, annotation};
use super::inputs::{has, per_container, var};
use super::options::Options;
use crate::planner::annotations as ann;

/// One check: when `bad` holds, the message `message`.
struct Check {
    bad: String,
    message: String,
}

impl Check {
    fn duration(key: &str, example: &str) -> Check {
        let value = annotation(key);
        Check {
            bad: format!("{} && !{}", has(key), cel::duration_ok(&value)),
            message: cel::invalid(key, &value, &cel::duration_reason(&value), example),
        }
    }

    /// `"true"` / `"false"`, or `"audit"` / `"enforce"` for the mode; the
    /// message quotes the trimmed value, as `annotations::boolean` does.
    fn word(key: &str, words: [&str; 2], example: &str) -> Check {
        let value = format!("{}.trim()", annotation(key));
        let reason = format!("must be \"{}\" or \"{}\"", words[0], words[1]);
        Check {
            bad: format!("{} && !({value} in {})", has(key), cel::strings(words)),
            message: cel::invalid(key, &value, &cel::string(&reason), example),
        }
    }

    fn command(key: &str) -> [Check; 2] {
        let value = annotation(key);
        let example = "apachectl -k graceful-stop";
        let reason = "the command is empty (remove the annotation to run no command)";
        let empty = Check {
            bad: format!("{} && {value}.trim() == ''", has(key)),
            message: cel::invalid(key, &value, &cel::string(reason), example),
        };
        let unclosed = Check {
            bad: format!(
                "{} && !{value}.matches({})",
                has(key),
                cel::string(ann::CLOSED_QUOTING)
            ),
            message: cel::invalid(key, &value, &cel::string(ann::UNCLOSED_QUOTING), example),
        };
        [empty, unclosed]
    }

    fn container_list() -> Check {
        let key = cel::string(ann::CONTAINERS);
        let value = annotation(&key);
        Check {
            bad: format!("{} && {value}.split(',').all(n, n.trim() == '')", has(&key)),
            message: cel::invalid(&key, &value, "'names no container'", "web,worker"),
        }
    }
}

/// The first failing check's message, or ''.
fn first(checks: &[Check]) -> String {
    let mut text = String::new();
    for check in checks {
        text.push_str(&format!("{} ? {} : ", check.bad, check.message));
    }
    text.push_str("''");
    text
}

/// The examples of `annotations::example_for`.
fn example(key: &str) -> &'static str {
    if key == ann::REQUEST_TIMEOUT {
        "30s"
    } else {
        "5s"
    }
}

/// The pod-level annotations, in the order the planner reads them.
pub(super) fn pod() -> Variable {
    let key = |k: &str| cel::string(k);
    let mut checks = vec![
        Check::word(&key(ann::INJECT), ["true", "false"], "false"),
        Check::duration(&key(ann::DRAIN_DELAY), example(ann::DRAIN_DELAY)),
        Check::duration(&key(ann::REQUEST_TIMEOUT), example(ann::REQUEST_TIMEOUT)),
        Check::duration(&key(ann::MARGIN), example(ann::MARGIN)),
    ];
    checks.extend(Check::command(&key(ann::DRAIN_COMMAND)));
    checks.push(Check::container_list());
    checks.push(Check::word(&key(ann::MODE), ["audit", "enforce"], "audit"));
    var("podProblem", first(&checks))
}

/// The first invalid per-container annotation of each selected container
/// (an opted-out container's are read too, as the planner reads them).
pub(super) fn containers() -> Variable {
    let key = |k: &str| per_container(k, "c");
    let mut checks = vec![
        Check::word(&key(ann::INJECT), ["true", "false"], "false"),
        Check::duration(&key(ann::DRAIN_DELAY), example(ann::DRAIN_DELAY)),
        Check::duration(&key(ann::REQUEST_TIMEOUT), example(ann::REQUEST_TIMEOUT)),
    ];
    checks.extend(Check::command(&key(ann::DRAIN_COMMAND)));
    var(
        "containerProblems",
        format!(
            "variables.selected.map(c, {}).filter(m, m != '')",
            first(&checks)
        ),
    )
}

/// `PlanError::GraceTooLong`: the container that needs the longest grace
/// (the last of equals, as `max_by_key` picks), the sidecars' shutdown
/// after it, and the largest part.
pub(super) fn grace(options: &Options) -> Vec<Variable> {
    let max = options.settings.max_grace;
    // A CEL int is an int64; no pod reaches a larger maximum.
    let bound = i64::try_from(max).unwrap_or(i64::MAX);
    // The sidecars' shutdown comes last of the parts: the last of equals.
    let sidecar = "variables.sidecarShutdown";
    let key = format!(
        "({sidecar} > 0 && {sidecar} >= l.timeout && {sidecar} >= l.delay && {sidecar} >= variables.margin ? {} + variables.longestSidecar : l.timeout >= l.delay && l.timeout >= variables.margin ? {} : l.delay >= variables.margin ? {} : {})",
        cel::string(&format!("{}.", ann::SIDECAR_SHUTDOWN)),
        cel::string(ann::REQUEST_TIMEOUT),
        cel::string(ann::DRAIN_DELAY),
        cel::string(ann::MARGIN)
    );
    let message = format!(
        "[variables.longest].map(l, 'terminationGracePeriodSeconds would be ' + string(variables.required) + 's (container ' + l.name + ': drain delay ' + string(l.delay) + 's + request timeout ' + string(l.timeout) + 's' + ({sidecar} > 0 ? ', then sidecar shutdown ' + string({sidecar}) + 's' : '') + ', plus margin ' + string(variables.margin) + 's), above the maximum of {max}s (--max-grace); lower ' + {key} + ', for example ' + {key} + ': \"30s\"')[0]"
    );
    vec![
        var(
            "graceProblem",
            format!("size(variables.plan) > 0 && variables.required > {bound} ? {message} : ''"),
        ),
        var(
            "problem",
            "variables.podProblem != '' ? variables.podProblem : size(variables.containerProblems) > 0 ? variables.containerProblems[0] : size(variables.sidecarProblems) > 0 ? variables.sidecarProblems[0] : variables.graceProblem"
                .to_string(),
        ),
    ]
}
