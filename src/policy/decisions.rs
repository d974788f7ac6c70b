//! The plan in CEL, as `planner::plan` decides it (`docs/plan.md`): the
//! hook each eligible container wants, what happens to its own preStop,
//! the grace period, and the `gracehook.io/status` record.

use k8s_openapi::api::admissionregistration::v1::Variable;

use super::cel::{self, Slot};
use super::inputs::{has, var};
use super::options::Options;
use crate::planner::PrestopStyle;
use crate::planner::annotations as ann;
use crate::planner::hook;

/// The hook wanted per eligible container (`hooks`), then what happens to
/// it (`apps`), as `PodInputs::wanted_hook` and `HookAction::decide` do.
/// The sidecars join them in `plan` ([`super::sidecars`]).
pub(super) fn hooks(options: &Options) -> Vec<Variable> {
    // A drain command needs sh, which Windows images lack.
    let runs_command = "(r.command != '' && !variables.windows)";
    let delay_kind = match options.settings.prestop_style {
        PrestopStyle::Sleep => "'sleep'",
        PrestopStyle::Exec => "(variables.windows ? 'sleep' : 'exec')",
    };
    let copy = "'name': r.name, 'index': r.index, 'lifecycle': r.lifecycle, 'delay': r.delay, 'timeout': r.timeout, 'command': r.command";
    // Hook::describe: the command with hook::PRINTABLE's escapes.
    let printable = hook::PRINTABLE
        .iter()
        .fold("r.command".to_string(), |text, (c, escape)| {
            format!(
                "{text}.replace({}, {})",
                cel::string(&c.to_string()),
                cel::string(escape)
            )
        });
    let slots = ["string(r.delay)", printable.as_str(), "string(r.timeout)"];
    let (d, c, t) = (Slot(0), Slot(1), Slot(2));
    // Hook::argv: the drain command is the script's argument, never its text.
    let argv = format!(
        "{runs_command} ? ['sh', '-c', {}, {}, string(r.command)] : ['sh', '-c', {}]",
        cel::concat(&hook::drain_script(d, t), &slots),
        cel::string(hook::DRAIN_NAME),
        cel::concat(&hook::sleep_script(d), &slots)
    );
    let description = format!(
        "{runs_command} ? {} : {}",
        cel::concat(&hook::drain_description(d, c, t), &slots),
        cel::concat(&hook::sleep_description(d), &slots)
    );
    let hooks = format!(
        "variables.eligible.map(r, {{{copy}, 'own': r.own, 'ownSleep': r.ownSleep, 'ownExec': r.ownExec, \
         'hook': dyn({runs_command} ? 'exec' : r.delay == 0 ? '' : {delay_kind}), \
         'argv': dyn({argv}), \
         'description': dyn({description})}})"
    );
    // The container already has exactly the hook gracehook would write.
    let applied =
        "(r.hook == 'sleep' && r.ownSleep == r.delay || r.hook == 'exec' && r.ownExec == r.argv)";
    let plan = format!(
        "variables.hooks.map(r, {{{copy}, 'hook': r.hook, 'argv': r.argv, 'description': r.description, \
         'add': dyn(!r.own && r.hook != ''), \
         'kept': dyn(r.own && !{applied}), \
         'status': dyn(r.own ? ({applied} ? string(r.hook) : 'kept') : r.hook != '' ? string(r.hook) : 'none')}})"
    );
    vec![var("hooks", hooks), var("apps", plan)]
}

/// `grace = max(drain delay + request timeout) + sidecar shutdown +
/// margin`, set or raised, never lowered (`planner::grace`).
pub(super) fn grace() -> Vec<Variable> {
    let current = "object.spec.terminationGracePeriodSeconds";
    vec![
        var(
            "required",
            "size(variables.plan) == 0 ? variables.margin : variables.drain + variables.sidecarShutdown + variables.margin"
                .to_string(),
        ),
        var(
            "raise",
            format!("!has({current}) || {current} < variables.required"),
        ),
        var(
            "grace",
            format!("variables.raise ? variables.required : {current}"),
        ),
    ]
}

/// The `gracehook.io/status` record, byte for byte as `status_record`
/// writes it, the containers that get a hook, and whether anything changes
/// (`Plan::is_noop`).
pub(super) fn outcome() -> Vec<Variable> {
    let status = cel::string(ann::STATUS);
    vec![
        var(
            "status",
            "'{\"grace\":' + string(variables.grace) + ',\"containers\":{' + variables.plan.map(p, '\"' + p.name + '\":\"' + p.status + '\"').join(',') + '}}'"
                .to_string(),
        ),
        var("adds", "variables.plan.filter(p, p.add)".to_string()),
        var(
            "statusChanges",
            format!(
                "!({}) || {} != variables.status",
                has(&status),
                cel::annotation(&status)
            ),
        ),
        var(
            "changes",
            "variables.raise || variables.statusChanges || size(variables.adds) > 0".to_string(),
        ),
    ]
}
