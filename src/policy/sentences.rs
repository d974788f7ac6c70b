//! The sentences gracehook says about a pod, in CEL: the notes
//! (`plan::pod_notes` and the per-container ones), the audit sentence
//! (`summary::would_change`, `summary::audit_warning`) and the enforce-mode
//! notes warning.

use k8s_openapi::api::admissionregistration::v1::Variable;

use super::cel;
use super::inputs::{has, var};
use crate::planner::annotations as ann;
use crate::planner::self_exit;
use crate::planner::summary::{AUDIT_PREFIX, AUDIT_WARNING_MAX, ENFORCE_PREFIX, WARNING_MAX};

/// The pod-level keys `annotations::unknown_keys` knows.
const POD_LEVEL: [&str; 8] = [
    ann::DRAIN_DELAY,
    ann::REQUEST_TIMEOUT,
    ann::MARGIN,
    ann::DRAIN_COMMAND,
    ann::CONTAINERS,
    ann::INJECT,
    ann::MODE,
    ann::STATUS,
];
/// The keys that take a `.<container>` suffix.
const PER_CONTAINER: [&str; 4] = [
    ann::DRAIN_DELAY,
    ann::REQUEST_TIMEOUT,
    ann::DRAIN_COMMAND,
    ann::INJECT,
];

/// The notes, in the planner's order: unknown keys (sorted, as a BTreeMap
/// holds them), `gracehook.io/containers` names it cannot select, then per
/// container a Windows command not run and a hook of its own kept, then the
/// sidecars' notes; and with
/// `with_self_exit` (enforce mode), last, the drain commands that end their
/// server (`summary::self_exit_notes`).
pub(super) fn notes(with_self_exit: bool) -> Variable {
    let per_container = PER_CONTAINER
        .iter()
        .map(|key| format!("{} + c.name", cel::string(&format!("{key}."))))
        .collect::<Vec<_>>()
        .join(", ");
    let unknown = format!(
        "variables.annotations.filter(k, k.startsWith('gracehook.io/') && !(k in {}) && !object.spec.containers.exists(c, k in [{per_container}]) && !variables.sidecarNames.exists(n, k == {} + n)).sort().map(k, 'ignored unknown annotation ' + k)",
        cel::strings(POD_LEVEL),
        cel::string(&format!("{}.", ann::SIDECAR_SHUTDOWN))
    );
    let list = cel::string(ann::CONTAINERS);
    let missing = format!(
        "({} ? variables.only.filter(n, !object.spec.containers.exists(c, c.name == n)).map(n, {list} + ' names ' + n + ', ' + (object.spec.?initContainers.orValue([]).exists(c, c.name == n) ? 'an init container (init containers and native sidecars never get a hook)' : 'not a container of this pod')) : [])",
        has(&list)
    );
    let containers = "variables.apps.map(p, [variables.windows && p.command != '' ? 'container ' + p.name + ' runs on Windows, which has no sh: its drain command is not run' + (p.delay > 0 ? ', only the delay' : '') : '', p.kept ? 'container ' + p.name + ' already has a preStop hook; kept it unchanged' : '']).flatten().filter(n, n != '')";
    let self_exiting = if with_self_exit {
        format!(
            " + variables.apps.filter(p, !variables.windows && !p.kept && p.command != '' && p.command.matches({})).map(p, 'container ' + p.name + {})",
            cel::string(self_exit::SELF_EXITING),
            cel::string(self_exit::NOTE)
        )
    } else {
        String::new()
    };
    var(
        "notes",
        format!("{unknown} + {missing} + {containers} + variables.sidecarNotes{self_exiting}"),
    )
}

/// `would set terminationGracePeriodSeconds 30 -> 40 and add preStop (...)
/// to container web`, containers with the same hook named together.
pub(super) fn would_change() -> Vec<Variable> {
    let current = "object.spec.terminationGracePeriodSeconds";
    let grace = format!(
        "(variables.raise ? ['set terminationGracePeriodSeconds ' + (has({current}) ? string({current}) : '(unset)') + ' -> ' + string(variables.required)] : [])"
    );
    let same = "variables.adds.filter(q, q.description == p.description)";
    let groups = format!(
        "variables.adds.filter(p, variables.addDescriptions.indexOf(p.description) == variables.addNames.indexOf(p.name)).map(p, 'add preStop (' + p.description + ') to ' + (size({same}) == 1 ? 'container ' : 'containers ') + {same}.map(q, q.name).join(', '))"
    );
    vec![
        var(
            "addDescriptions",
            "variables.adds.map(p, p.description)".to_string(),
        ),
        var("addNames", "variables.adds.map(p, p.name)".to_string()),
        var("changeParts", format!("{grace} + {groups}")),
        var(
            "wouldChange",
            "'would ' + (size(variables.changeParts) == 0 ? 'only record the gracehook.io/status annotation' : variables.changeParts.join(' and '))"
                .to_string(),
        ),
    ]
}

/// The one audit-mode warning: the invalid annotation, or what would change
/// with the notes; cut as `summary::truncate` cuts.
pub(super) fn audit_warning() -> Vec<Variable> {
    let text = format!(
        "(variables.problem != '' ? {prefix} + variables.problem : {prefix} + variables.wouldChange + variables.notes.map(n, '; ' + n).join(''))",
        prefix = cel::string(AUDIT_PREFIX)
    );
    vec![
        var("auditText", text),
        var(
            "auditWarning",
            cel::truncate("variables.auditText", AUDIT_WARNING_MAX),
        ),
    ]
}

/// The enforce-mode notes, in one warning (a policy validation gives one
/// message; the webhook gives one warning per note).
pub(super) fn enforce_notes() -> Vec<Variable> {
    let text = format!(
        "{} + variables.notes.join('; ')",
        cel::string(ENFORCE_PREFIX)
    );
    vec![
        var("notesText", text),
        var(
            "notesWarning",
            cel::truncate("variables.notesText", WARNING_MAX),
        ),
    ]
}
