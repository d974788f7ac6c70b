//! `mutate -o explain`: what happens, second by second, when a planned pod is
//! deleted. For people who would rather read a timeline than YAML.

use k8s_openapi::api::core::v1::Pod;

use super::hook::{Hook, HookAction};
use super::plan::{ContainerPlan, Decision, NativeSidecar, Outlasts, Plan};
use super::self_exit;

/// The termination timeline of `pod` as gracehook would leave it.
pub fn timeline(object: &str, pod: &Pod, decision: &Decision) -> String {
    let plan = match decision {
        Decision::Skip(why) => return format!("{object}: not changed ({why})\n"),
        Decision::Plan(plan) => plan,
    };
    let grace = plan.final_grace();
    let mut events: Vec<(u64, String)> = Vec::new();
    let mut notes = Vec::new();
    events.push((0, "deletion: endpoints removal starts".to_string()));

    let names: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.as_str())
        .collect();
    for name in names {
        match plan.containers.iter().find(|c| c.name == name) {
            None => events.push((0, format!("{name}: SIGTERM (not handled by gracehook)"))),
            Some(c) => match &c.sidecar {
                None => container_events(plan, c, grace, &mut events, &mut notes),
                Some(outlasts) => {
                    classic_sidecar_events(c, outlasts, grace, &mut events, &mut notes)
                }
            },
        }
    }
    for sidecar in &plan.native_sidecars {
        native_sidecar_events(sidecar, grace, &mut events, &mut notes);
    }
    events.push((grace, "SIGKILL if still running".to_string()));
    // Stable: at equal times, the order above (deletion first, SIGKILL last).
    events.sort_by_key(|(t, _)| *t);

    let mut out = format!("{object}: terminationGracePeriodSeconds {grace}\n");
    for (t, text) in events {
        out.push_str(&format!("{:>5}  {text}\n", format!("{t}s")));
    }
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

fn container_events(
    plan: &Plan,
    c: &ContainerPlan,
    grace: u64,
    events: &mut Vec<(u64, String)>,
    notes: &mut Vec<String>,
) {
    let name = &c.name;
    let (d, t, needed) = (c.drain_delay, c.request_timeout, c.needed());
    let hook = match &c.action {
        HookAction::Add(hook) | HookAction::AlreadyApplied(hook) => hook,
        HookAction::KeepExisting => {
            events.push((
                0,
                format!("{name}: its own preStop runs (length unknown to gracehook)"),
            ));
            notes.push(format!(
                "{name} keeps its own preStop hook; it must end, and {name} stop, within {grace}s"
            ));
            return;
        }
        HookAction::NoHook => {
            events.push((0, format!("{name}: SIGTERM (no delay)")));
            events.push((t, format!("{name}: requests in flight should be done")));
            return;
        }
    };
    events.push((0, format!("{name}: preStop runs \"sleep {d}\"")));
    match hook {
        Hook::Shell {
            command: Some((command, _)),
            ..
        } => {
            if self_exit::exits_by_itself(command) {
                events.push((
                    d,
                    format!(
                        "{name}: {command} (the server finishes its requests, then exits by itself)"
                    ),
                ));
                events.push((
                    needed,
                    format!("{name}: SIGTERM (preStop done), if still running"),
                ));
                notes.push(self_exit::note(name));
            } else {
                events.push((d, format!("{name}: {command}")));
                events.push((needed, format!("{name}: SIGTERM (preStop done)")));
                notes.push(format!(
                    "{name} may exit by itself once its drain command has let the requests in flight finish; if its PID 1 just exits, its preStop is killed with it and the kubelet records FailedPreStopHook for a drain that worked"
                ));
            }
        }
        Hook::Shell { command: None, .. } | Hook::Sleep { .. } => {
            events.push((d, format!("{name}: SIGTERM (preStop done)")));
            events.push((needed, format!("{name}: requests in flight should be done")));
        }
    }
    if needed > grace {
        notes.push(format!(
            "{name} needs {needed}s (drain delay {d}s + request timeout {t}s) but the grace period is {grace}s"
        ));
    } else if needed.saturating_add(plan.margin) > grace {
        notes.push(format!(
            "{name} has less than the {}s margin left",
            plan.margin
        ));
    }
}

/// A classic sidecar: SIGTERM once its preStop has outlasted the
/// application's drain, then its own shutdown.
fn classic_sidecar_events(
    c: &ContainerPlan,
    outlasts: &Outlasts,
    grace: u64,
    events: &mut Vec<(u64, String)>,
    notes: &mut Vec<String>,
) {
    let name = &c.name;
    let shutdown = &outlasts.shutdown;
    let sigterm = match &c.action {
        HookAction::Add(Hook::Sleep { seconds })
        | HookAction::AlreadyApplied(Hook::Sleep { seconds }) => {
            events.push((
                0,
                format!(
                    "{name}: preStop sleeps {seconds}s (sidecar: keeps serving through the drain of {})",
                    outlasts.container
                ),
            ));
            *seconds
        }
        HookAction::KeepExisting => {
            events.push((
                0,
                format!("{name}: its own preStop runs (length unknown to gracehook)"),
            ));
            0
        }
        _ => 0,
    };
    let stop = sigterm.saturating_add(shutdown.seconds);
    events.push((
        sigterm,
        format!(
            "{name}: SIGTERM; shuts down in {}s ({})",
            shutdown.seconds, shutdown.source
        ),
    ));
    events.push((stop, format!("{name}: exits")));
    sidecar_notes(name, stop, grace, notes);
}

/// A native sidecar: the kubelet sends SIGTERM once the application
/// containers have exited, then it shuts down.
fn native_sidecar_events(
    sidecar: &NativeSidecar,
    grace: u64,
    events: &mut Vec<(u64, String)>,
    notes: &mut Vec<String>,
) {
    let name = &sidecar.name;
    let shutdown = &sidecar.outlasts.shutdown;
    let drained = sidecar.sigterm_at();
    let after = if sidecar.after > 0 {
        " and the native sidecars declared after it"
    } else {
        ""
    };
    events.push((
        drained,
        format!(
            "{name}: SIGTERM (native sidecar: once the application containers{after} have exited, by now at the latest); shuts down in {}s ({})",
            shutdown.seconds, shutdown.source
        ),
    ));
    let stop = drained.saturating_add(shutdown.seconds);
    events.push((stop, format!("{name}: exits")));
    sidecar_notes(name, stop, grace, notes);
}

fn sidecar_notes(name: &str, stop: u64, grace: u64, notes: &mut Vec<String>) {
    if stop > grace {
        notes.push(format!(
            "sidecar {name} needs until {stop}s but the grace period is {grace}s"
        ));
    }
}
