//! How a termination ended (`docs/observe.md`, "Outcomes"): pure rules over
//! a [`Termination`] and the kubelet's `FailedPreStopHook` events for the
//! pod. The API writes times to the second, so every comparison allows
//! [`TOLERANCE`].

use super::facts::{ContainerEnd, Termination};

/// One second either way: `finishedAt`, `deletionTimestamp` and event times
/// are all truncated to the second.
pub const TOLERANCE: i64 = 1;

/// SIGKILL's exit code.
const KILLED: i32 = 137;

/// The outcome of one termination. The order is the precedence: a pod
/// gets the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Deleted with no grace period (`--force --grace-period=0`, or the pod
    /// garbage collector after its node was lost): nothing could drain.
    ForceDeleted,
    /// The pod was gone before the kubelet reported how a container ended.
    Unknown,
    /// A container was still running when the grace period ran out, and
    /// the kubelet killed it: its requests were cut.
    Killed,
    /// A preStop hook failed while its container still served.
    HookFailed,
    /// A container exited before its drain delay ended, while the Service
    /// may still have sent it requests.
    ExitedEarly,
    /// Every container exited by itself before the grace period ran out.
    Clean,
}

impl Outcome {
    /// Every outcome, in precedence order.
    pub const ALL: [Outcome; 6] = [
        Outcome::ForceDeleted,
        Outcome::Unknown,
        Outcome::Killed,
        Outcome::HookFailed,
        Outcome::ExitedEarly,
        Outcome::Clean,
    ];

    /// The `outcome` label and the name in `gracehook drains`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::ForceDeleted => "force-deleted",
            Outcome::Unknown => "unknown",
            Outcome::Killed => "killed",
            Outcome::HookFailed => "hook-failed",
            Outcome::ExitedEarly => "exited-early",
            Outcome::Clean => "clean",
        }
    }

    /// The reason of the Event on the workload.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::ForceDeleted => "DrainForceDeleted",
            Outcome::Unknown => "DrainUnknown",
            Outcome::Killed => "DrainKilled",
            Outcome::HookFailed => "DrainHookFailed",
            Outcome::ExitedEarly => "DrainExitedEarly",
            Outcome::Clean => "DrainClean",
        }
    }

    /// The outcome an Event reason stands for.
    pub fn from_reason(reason: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.reason() == reason)
    }

    /// Whether a person should look: Warning Events, the alerts.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Outcome::Killed | Outcome::HookFailed | Outcome::ExitedEarly
        )
    }
}

/// A `FailedPreStopHook` event of the pod: which container, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFailure {
    /// From the event's `involvedObject.fieldPath`, `spec.containers{web}`.
    pub container: String,
    /// The event's last time, Unix seconds.
    pub at: i64,
}

/// The decision on one termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What happened.
    pub outcome: Outcome,
    /// The container the outcome is about (none for a clean drain or a
    /// forced deletion).
    pub container: Option<String>,
    /// From the deletion to the last container's exit, when known.
    pub drain_seconds: Option<i64>,
    /// Containers whose gracehook hook the kubelet reported failed only
    /// because the container exited by itself first (`docs/plan.md`,
    /// "Servers that exit by themselves"): clean drains, not failures.
    pub hooks_cut_short: Vec<String>,
    /// For a pod killed while draining behind gracehook's hook: the
    /// `gracehook.io/request-timeout` to try next, in seconds.
    pub suggested_request_timeout: Option<u64>,
    /// One sentence for people: the Event's note.
    pub sentence: String,
}

/// Decides a termination; `None` when there was nothing to drain (the pod
/// had finished before it was deleted, or gracehook planned no container
/// of it).
pub fn decide(t: &Termination, failures: &[HookFailure]) -> Option<Verdict> {
    if finished_before_deletion(t) || t.containers.is_empty() {
        return None;
    }
    let drain_seconds = t
        .containers
        .iter()
        .filter_map(|c| c.exit.as_ref())
        .map(|e| (e.finished_at - t.deleted_at).max(0))
        .max();
    let verdict = |outcome, container: Option<&str>, sentence: String| Verdict {
        outcome,
        container: container.map(str::to_string),
        drain_seconds,
        hooks_cut_short: Vec::new(),
        suggested_request_timeout: None,
        sentence,
    };
    let pod = &t.name;
    if t.grace == 0 {
        return Some(verdict(
            Outcome::ForceDeleted,
            None,
            format!("pod {pod} was deleted with no grace period: nothing drained"),
        ));
    }
    if let Some(c) = t.containers.iter().find(|c| c.exit.is_none()) {
        return Some(verdict(
            Outcome::Unknown,
            Some(&c.name),
            format!(
                "pod {pod} was gone before the kubelet reported how container {} ended",
                c.name
            ),
        ));
    }
    if let Some((c, after)) = killed(t) {
        let mut v = verdict(Outcome::Killed, Some(&c.name), killed_sentence(t, c, after));
        v.suggested_request_timeout = suggestion(t, c, after);
        return Some(v);
    }
    let (failed, cut_short) = hook_failures(t, failures);
    if let Some((failure, sentence)) = failed {
        let mut v = verdict(Outcome::HookFailed, Some(failure.as_str()), sentence);
        v.hooks_cut_short = cut_short;
        return Some(v);
    }
    if let Some((c, sentence)) = early_exit(t) {
        let mut v = verdict(Outcome::ExitedEarly, Some(c.as_str()), sentence);
        v.hooks_cut_short = cut_short;
        return Some(v);
    }
    let mut sentence = format!(
        "pod {pod} drained in {}s of its {}s grace period",
        drain_seconds.unwrap_or(0),
        t.grace
    );
    if !cut_short.is_empty() {
        sentence.push_str(&format!(
            "; the kubelet's FailedPreStopHook for container {} is the container's own clean exit cutting its hook short",
            cut_short.join(", ")
        ));
    }
    let mut v = verdict(Outcome::Clean, None, sentence);
    v.hooks_cut_short = cut_short;
    Some(v)
}

/// The first hook failure that is one (its container and sentence), and
/// the containers whose hook was only cut short by their own exit.
/// Failures from before the deletion belong to container restarts.
/// A pod that had Succeeded or Failed before its deletion (a finished
/// Job's pod) drained nothing. The phase alone does not tell: a pod first
/// seen after its containers drained and exited (by an observer that took
/// over, or after a relist) is `Succeeded` too, but its containers ended
/// after the deletion.
fn finished_before_deletion(t: &Termination) -> bool {
    matches!(t.phase_at_deletion.as_deref(), Some("Succeeded" | "Failed"))
        && t.containers
            .iter()
            .all(|c| c.exit.as_ref().is_none_or(|e| e.finished_at < t.deleted_at))
}

fn hook_failures(
    t: &Termination,
    failures: &[HookFailure],
) -> (Option<(String, String)>, Vec<String>) {
    let mut cut_short: Vec<String> = Vec::new();
    for failure in failures.iter().filter(|f| f.at >= t.deleted_at - TOLERANCE) {
        let container = t.containers.iter().find(|c| c.name == failure.container);
        match container {
            Some(c) if cut_short_by_exit(t, c, failure) => {
                if !cut_short.contains(&c.name) {
                    cut_short.push(c.name.clone());
                }
            }
            _ => {
                let sentence = hook_failed_sentence(t, container, failure);
                return (Some((failure.container.clone(), sentence)), cut_short);
            }
        }
    }
    (None, cut_short)
}

/// A container that exited before its drain delay ended.
fn early_exit(t: &Termination) -> Option<(String, String)> {
    t.containers.iter().find_map(|c| {
        let exit = c.exit.as_ref()?;
        let after = exit.finished_at - t.deleted_at;
        (after < to_i64(c.drain_delay()) - TOLERANCE).then(|| {
            let sentence = format!(
                "pod {}: container {} exited {}s after deletion (exit code {}), before its {}s drain delay ended; requests the Service still sent it failed",
                t.name,
                c.name,
                after.max(0),
                exit.code,
                c.drain_delay()
            );
            (c.name.clone(), sentence)
        })
    })
}

/// The container killed at the end of the grace period, and when it died
/// (seconds after the deletion): exit 137 no earlier than the expiry. An
/// earlier SIGKILL (the OOM killer, a person) is not the grace period's.
fn killed(t: &Termination) -> Option<(&ContainerEnd, i64)> {
    t.containers
        .iter()
        .filter_map(|c| {
            let exit = c.exit.as_ref()?;
            let by_grace = exit.code == KILLED
                && exit.reason.as_deref() != Some("OOMKilled")
                && exit.finished_at >= t.expiry() - TOLERANCE;
            by_grace.then_some((c, exit.finished_at - t.deleted_at))
        })
        .max_by_key(|(_, after)| *after)
}

/// A failure of gracehook's own hook that is no failure: the hook ignores
/// SIGTERM and its commands cannot make it fail, so if it ended no earlier
/// than its container, which exited 0 after its drain delay and before the
/// grace period ran out, the container's PID 1 ended it (the kernel kills
/// every process of the container with it; exit 137 in the kubelet's log).
/// A hook gracehook did not write gets no such reading: the API does not
/// say why it failed (the event carries no exit code).
fn cut_short_by_exit(t: &Termination, c: &ContainerEnd, failure: &HookFailure) -> bool {
    let Some(exit) = c.exit.as_ref() else {
        return false;
    };
    c.has_gracehook_exec_hook()
        && exit.code == 0
        && failure.at >= exit.finished_at - TOLERANCE
        && exit.finished_at >= t.deleted_at + to_i64(c.drain_delay()) - TOLERANCE
        && exit.finished_at < t.expiry()
}

fn killed_sentence(t: &Termination, c: &ContainerEnd, after: i64) -> String {
    let why = match c.request_timeout() {
        Some(timeout) => format!("its request timeout is {timeout}s"),
        None => format!("its grace period is {}s", t.grace),
    };
    format!(
        "pod {} was killed {after}s after deletion: container {} still draining; {why}",
        t.name, c.name
    )
}

fn hook_failed_sentence(
    t: &Termination,
    c: Option<&ContainerEnd>,
    failure: &HookFailure,
) -> String {
    let whose = match c {
        Some(c) if c.hook.is_some() => "gracehook's preStop hook",
        _ => "its own preStop hook",
    };
    let exit = c
        .and_then(|c| c.exit.as_ref())
        .map(|e| {
            format!(
                "; the container exited {}s after deletion with code {}",
                e.finished_at - t.deleted_at,
                e.code
            )
        })
        .unwrap_or_default();
    format!(
        "pod {}: {whose} on container {} failed {}s after deletion (FailedPreStopHook){exit}",
        t.name,
        failure.container,
        (failure.at - t.deleted_at).max(0)
    )
}

/// The request timeout to try after a kill. How long the cut requests
/// would have run is nowhere in the API, only that they outlasted the time
/// they had; so the suggestion doubles that time (the drain had `after -
/// delay` seconds): each rollout that still kills at least doubles the
/// window, and one that drains cleanly shows its real drain time.
fn suggestion(t: &Termination, c: &ContainerEnd, after: i64) -> Option<u64> {
    let timeout = c.request_timeout()?;
    let delay = c.drain_delay();
    let margin = t.planned_grace.saturating_sub(delay + timeout);
    let had = u64::try_from(after).unwrap_or(0).saturating_sub(delay);
    Some((2 * had).saturating_sub(margin).max(timeout + 1))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::facts::{ContainerEnd, Exit};
    use crate::planner::hook::Hook;

    /// gracehook's drain hook, delay 2s, request timeout 6s, margin 2s.
    fn container(code: i32, after: i64) -> ContainerEnd {
        ContainerEnd {
            name: "web".into(),
            kind: "exec".into(),
            hook: Some(Hook::Shell {
                delay: 2,
                command: Some(("nginx -s quit".into(), 6)),
            }),
            exit: Some(Exit {
                code,
                finished_at: 1000 + after,
                reason: None,
            }),
        }
    }

    fn termination(containers: Vec<ContainerEnd>) -> Termination {
        Termination {
            namespace: "shop".into(),
            name: "web-1".into(),
            uid: "u1".into(),
            owner: None,
            deleted_at: 1000,
            grace: 10,
            planned_grace: 10,
            phase_at_deletion: Some("Running".into()),
            containers,
        }
    }

    fn failure(after: i64) -> HookFailure {
        HookFailure {
            container: "web".into(),
            at: 1000 + after,
        }
    }

    #[test]
    fn exit_before_expiry_is_clean_and_a_kill_at_expiry_is_killed() {
        let clean = decide(&termination(vec![container(0, 5)]), &[]).unwrap();
        assert_eq!(
            (clean.outcome, clean.drain_seconds),
            (Outcome::Clean, Some(5))
        );
        let killed = decide(&termination(vec![container(137, 10)]), &[]).unwrap();
        assert_eq!(killed.outcome, Outcome::Killed);
        assert_eq!(
            killed.sentence,
            "pod web-1 was killed 10s after deletion: container web still draining; its request timeout is 6s"
        );
        // The drain had 8s after its delay: double it, less the margin.
        assert_eq!(killed.suggested_request_timeout, Some(14));
        // A SIGKILL well before the expiry is not the grace period's.
        let early_kill = decide(&termination(vec![container(137, 5)]), &[]).unwrap();
        assert_eq!(early_kill.outcome, Outcome::Clean);
    }

    #[test]
    fn a_hook_cut_short_by_a_clean_exit_is_clean_a_hook_failing_while_serving_is_not() {
        // nginx -s quit: PID 1 exits 0 at 4s and the hook dies with it.
        let nginx = decide(&termination(vec![container(0, 4)]), &[failure(4)]).unwrap();
        assert_eq!(nginx.outcome, Outcome::Clean);
        assert_eq!(nginx.hooks_cut_short, vec!["web".to_string()]);
        // The hook failed at 1s, the container ran on until 4s.
        let failed = decide(&termination(vec![container(0, 4)]), &[failure(1)]).unwrap();
        assert_eq!(failed.outcome, Outcome::HookFailed);
        // A hook gracehook did not write is never read as cut short.
        let mut own = container(0, 4);
        (own.kind, own.hook) = ("kept".into(), None);
        let own = decide(&termination(vec![own]), &[failure(4)]).unwrap();
        assert_eq!(own.outcome, Outcome::HookFailed);
        // A non-zero exit is no clean drain.
        let crashed = decide(&termination(vec![container(1, 4)]), &[failure(4)]).unwrap();
        assert_eq!(crashed.outcome, Outcome::HookFailed);
        // A failure before the deletion is a restart's, not this drain's.
        let restart = decide(&termination(vec![container(0, 4)]), &[failure(-60)]).unwrap();
        assert_eq!(restart.outcome, Outcome::Clean);
    }

    #[test]
    fn early_exits_forced_deletions_and_missing_states() {
        let early = decide(&termination(vec![container(0, 0)]), &[]).unwrap();
        assert_eq!(early.outcome, Outcome::ExitedEarly);
        let mut forced = termination(vec![container(0, 0)]);
        forced.grace = 0;
        assert_eq!(decide(&forced, &[]).unwrap().outcome, Outcome::ForceDeleted);
        let mut gone = container(0, 0);
        gone.exit = None;
        assert_eq!(
            decide(&termination(vec![gone]), &[]).unwrap().outcome,
            Outcome::Unknown
        );
        let mut done = termination(vec![container(0, -30)]);
        done.phase_at_deletion = Some("Succeeded".into());
        assert_eq!(decide(&done, &[]), None);
        // First seen after its drain ended (a successor's list): Succeeded,
        // but it exited after the deletion, so it drained.
        let mut drained = termination(vec![container(0, 5)]);
        drained.phase_at_deletion = Some("Succeeded".into());
        assert_eq!(decide(&drained, &[]).unwrap().outcome, Outcome::Clean);
    }

    #[test]
    fn reasons_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::from_reason(outcome.reason()), Some(outcome));
        }
    }
}
