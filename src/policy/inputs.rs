//! The CEL variables that read a pod the way `planner::plan` reads it:
//! its annotations, which containers are selected, and the durations and
//! command that apply to each (`docs/annotations.md`, "Precedence").

use k8s_openapi::api::admissionregistration::v1::Variable;

use super::cel::{self, annotation};
use super::options::Options;
use crate::planner::annotations as ann;

/// A CEL variable.
pub(super) fn var(name: &str, expression: String) -> Variable {
    Variable {
        name: name.to_string(),
        expression,
    }
}

/// `'gracehook.io/drain-delay.' + c.name`: a per-container key of the
/// container `c` (a CEL identifier bound by a macro).
pub(super) fn per_container(key: &str, c: &str) -> String {
    format!("({} + {c}.name)", cel::string(&format!("{key}.")))
}

/// `key in variables.annotations`.
pub(super) fn has(key: &str) -> String {
    format!("{key} in variables.annotations")
}

/// The variables every policy starts with: the pod's annotations, its name
/// as gracehook names it, and (with namespace defaults) the Namespace's
/// annotations.
pub(super) fn pod(options: &Options) -> Vec<Variable> {
    let mut variables = vec![
        var(
            "annotations",
            "object.metadata.?annotations.orValue({})".to_string(),
        ),
        // The webhook names a pod by its generateName when it has one:
        // the API server generates the name after mutating admission, and
        // before validating admission, where this name is read.
        var(
            "name",
            "object.metadata.?generateName.orValue('') != '' ? object.metadata.generateName : object.metadata.?name.orValue('')"
                .to_string(),
        ),
    ];
    if options.namespace_defaults {
        variables.push(var(
            "namespaceAnnotations",
            "namespaceObject.metadata.?annotations.orValue({})".to_string(),
        ));
    }
    variables
}

/// The selected containers (before their per-container opt-out), and the
/// pod-level durations and command. Only read once the pod-level
/// annotations are known to be valid.
pub(super) fn selection(options: &Options) -> Vec<Variable> {
    let skip = cel::strings(options.settings.skip_containers.iter().map(String::as_str));
    let list = cel::string(ann::CONTAINERS);
    let defaults = &options.settings.defaults;
    let room = defaults.namespace_room(options.settings.max_grace);
    vec![
        var(
            "only",
            format!(
                "{} ? {}.split(',').map(n, n.trim()).filter(n, n != '') : []",
                has(&list),
                annotation(&list)
            ),
        ),
        var(
            "containerNames",
            "object.spec.containers.map(c, c.name)".to_string(),
        ),
        var(
            "selected",
            format!(
                "object.spec.containers.filter(c, !(c.name in {skip}) && (!({}) || c.name in variables.only))",
                has(&list)
            ),
        ),
        var(
            "drainDelay",
            pod_seconds(
                options,
                ann::DRAIN_DELAY,
                defaults.drain_delay,
                room.drain_delay,
            ),
        ),
        var(
            "requestTimeout",
            pod_seconds(
                options,
                ann::REQUEST_TIMEOUT,
                defaults.request_timeout,
                room.request_timeout,
            ),
        ),
        var(
            "margin",
            pod_seconds(options, ann::MARGIN, defaults.margin, room.margin),
        ),
        var(
            "drainCommand",
            format!(
                "{} ? {}.trim() : ''",
                has(&cel::string(ann::DRAIN_COMMAND)),
                annotation(&cel::string(ann::DRAIN_COMMAND))
            ),
        ),
        var(
            "windows",
            "object.spec.?os.name.orValue('').lowerAscii() == 'windows'".to_string(),
        ),
    ]
}

/// The pod's annotation `key` in whole seconds, else the Namespace's (when
/// valid, and at most `room`, what `--max-grace` leaves it: a typo on a
/// namespace must not block its pods), else the flag.
fn pod_seconds(options: &Options, key: &str, flag: u64, room: Option<u64>) -> String {
    let key = cel::string(key);
    let value = annotation(&key);
    let fallback = if options.namespace_defaults {
        let ns = format!("variables.namespaceAnnotations[{key}]");
        // A CEL int is an int64: a bound above it is no bound.
        let fits = match room {
            None => " && false".to_string(),
            Some(room) => match i64::try_from(room) {
                Ok(room) => format!(" && {} <= {room}", cel::seconds(&ns)),
                Err(_) => String::new(),
            },
        };
        format!(
            "({key} in variables.namespaceAnnotations && {}{fits} ? {} : {flag})",
            cel::duration_ok(&ns),
            cel::seconds(&ns)
        )
    } else {
        flag.to_string()
    };
    format!("{} ? {} : {fallback}", has(&key), cel::seconds(&value))
}

/// Container `c` has a preStop of its own.
pub(super) const OWN: &str = "has(c.lifecycle) && has(c.lifecycle.preStop)";
/// Container `c`'s preStop.
pub(super) const PRE_STOP: &str = "c.lifecycle.preStop";

/// Container `c`'s own preStop is exactly one `action` (`sleep`, `exec`):
/// then it may be the hook gracehook would write.
pub(super) fn own_only(action: &str) -> String {
    let others = ["exec", "httpGet", "sleep", "tcpSocket"]
        .iter()
        .filter(|a| **a != action)
        .map(|a| format!(" && !has({PRE_STOP}.{a})"))
        .collect::<String>();
    format!("{OWN} && has({PRE_STOP}.{action}){others}")
}

/// The eligible containers as records: the selected ones not opted out,
/// with their own durations and command, and what their own preStop is.
pub(super) fn eligible() -> Variable {
    let key = |k| per_container(k, "c");
    let inject = key(ann::INJECT);
    let delay = key(ann::DRAIN_DELAY);
    let timeout = key(ann::REQUEST_TIMEOUT);
    let command = key(ann::DRAIN_COMMAND);
    let (own, p) = (OWN, PRE_STOP);
    var(
        "eligible",
        format!(
            "variables.selected.filter(c, !({has_inject} && {inject_value}.trim() == 'false')).map(c, {{\
             'name': dyn(c.name), \
             'index': dyn(variables.containerNames.indexOf(c.name)), \
             'lifecycle': dyn(has(c.lifecycle)), \
             'delay': dyn({has_delay} ? {delay_seconds} : variables.drainDelay), \
             'timeout': dyn({has_timeout} ? {timeout_seconds} : variables.requestTimeout), \
             'command': dyn({has_command} ? {command_value}.trim() : variables.drainCommand), \
             'own': dyn({own}), \
             'ownSleep': dyn({only_sleep} ? {p}.sleep.seconds : -1), \
             'ownExec': dyn({only_exec} ? {p}.exec.?command.orValue([]) : [])}})",
            has_inject = has(&inject),
            inject_value = annotation(&inject),
            has_delay = has(&delay),
            delay_seconds = cel::seconds(&annotation(&delay)),
            has_timeout = has(&timeout),
            timeout_seconds = cel::seconds(&annotation(&timeout)),
            has_command = has(&command),
            command_value = annotation(&command),
            only_sleep = own_only("sleep"),
            only_exec = own_only("exec"),
        ),
    )
}
