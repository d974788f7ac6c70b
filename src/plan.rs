//! The heart of gracehook: from a pod and the settings, decide which preStop
//! hooks to add and which grace period to set. Pure: no I/O, no clock, no
//! globals, so it can be tested and benchmarked alone.

use k8s_openapi::api::core::v1::{Container, ExecAction, LifecycleHandler, Pod, SleepAction};
use thiserror::Error;

use crate::annotations::{self as ann, AnnotationError, Annotations};
use crate::settings::{Mode, NamespaceDefaults, PrestopStyle, Settings};

/// A hook gracehook can write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// The kubelet's native `sleep` action.
    Sleep { seconds: u64 },
    /// `["sh", "-c", "sleep d[; <command>; sleep t]"]`.
    Shell {
        delay: u64,
        /// With the request timeout to wait out after it: the drain commands
        /// people use (`apachectl -k graceful-stop`, `nginx -s quit`) return at
        /// once, and the kubelet sends SIGTERM as soon as the hook ends.
        command: Option<(String, u64)>,
    },
}

impl Hook {
    pub fn handler(&self) -> LifecycleHandler {
        match self {
            Hook::Sleep { seconds } => LifecycleHandler {
                sleep: Some(SleepAction {
                    // parse_seconds caps durations at i64::MAX.
                    seconds: i64::try_from(*seconds).unwrap_or(i64::MAX),
                }),
                ..Default::default()
            },
            Hook::Shell { .. } => LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec!["sh".into(), "-c".into(), self.script()]),
                }),
                ..Default::default()
            },
        }
    }

    /// The shell script of the seed recipe: `sleep 3; apachectl -k graceful-stop; sleep 30`.
    fn script(&self) -> String {
        match self {
            Hook::Shell {
                delay,
                command: Some((cmd, timeout)),
            } => format!("sleep {delay}; {cmd}; sleep {timeout}"),
            Hook::Shell { delay, .. } | Hook::Sleep { seconds: delay } => format!("sleep {delay}"),
        }
    }

    /// For people: `sleep 3s; apachectl -k graceful-stop; sleep 30s`.
    pub fn describe(&self) -> String {
        match self {
            Hook::Shell {
                delay,
                command: Some((cmd, timeout)),
            } => format!("sleep {delay}s; {cmd}; sleep {timeout}s"),
            Hook::Shell { delay, .. } | Hook::Sleep { seconds: delay } => format!("sleep {delay}s"),
        }
    }

    /// The word recorded in the `gracehook.io/status` annotation.
    pub fn kind(&self) -> &'static str {
        match self {
            Hook::Sleep { .. } => "sleep",
            Hook::Shell { .. } => "exec",
        }
    }
}

/// What happens to one eligible container's `preStop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    Add(Hook),
    /// The container already has exactly the hook gracehook would add (a second
    /// pass, or a user who wrote the same thing).
    AlreadyApplied(Hook),
    /// The container has a hook of its own, which is never touched.
    KeepExisting,
    /// No delay and no command: nothing to run.
    NoHook,
}

impl HookAction {
    fn status_kind(&self) -> &'static str {
        match self {
            HookAction::Add(h) | HookAction::AlreadyApplied(h) => h.kind(),
            HookAction::KeepExisting => "kept",
            HookAction::NoHook => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    /// Position in `spec.containers`, for the JSON pointer.
    pub index: usize,
    pub name: String,
    pub drain_delay: u64,
    pub request_timeout: u64,
    pub drain_command: Option<String>,
    pub action: HookAction,
    /// Whether `lifecycle` exists, so the patch adds `preStop` inside it rather
    /// than replacing it (and losing a `postStart`).
    pub lifecycle_present: bool,
}

impl ContainerPlan {
    pub fn added_hook(&self) -> Option<&Hook> {
        match &self.action {
            HookAction::Add(hook) => Some(hook),
            _ => None,
        }
    }
}

/// Everything gracehook would do to one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub containers: Vec<ContainerPlan>,
    pub margin: u64,
    /// `max(drain delay + request timeout) + margin` over eligible containers.
    pub required_grace: u64,
    pub current_grace: Option<i64>,
    pub status: String,
    pub current_status: Option<String>,
    pub annotations_present: bool,
    /// Things worth telling the user, without the `gracehook:` prefix.
    pub notes: Vec<String>,
}

impl Plan {
    /// The grace period to write, if it must be set or raised.
    pub fn new_grace(&self) -> Option<u64> {
        match self.current_grace {
            Some(current) if u64::try_from(current).is_ok_and(|c| c >= self.required_grace) => None,
            _ => Some(self.required_grace),
        }
    }

    /// The grace period the pod ends up with.
    pub fn final_grace(&self) -> u64 {
        self.new_grace()
            .or_else(|| self.current_grace.and_then(|g| u64::try_from(g).ok()))
            .unwrap_or(self.required_grace)
    }

    pub fn status_changes(&self) -> bool {
        self.current_status.as_deref() != Some(self.status.as_str())
    }

    pub fn added_hooks(&self) -> impl Iterator<Item = (&ContainerPlan, &Hook)> {
        self.containers
            .iter()
            .filter_map(|c| c.added_hook().map(|h| (c, h)))
    }

    /// True when the pod would be left exactly as it is.
    pub fn is_noop(&self) -> bool {
        self.new_grace().is_none() && !self.status_changes() && self.added_hooks().next().is_none()
    }
}

/// Why a pod is left alone without even looking at its annotations' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    MirrorPod,
    ExcludedNamespace(String),
    OptedOut,
    NoEligibleContainers,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::MirrorPod => write!(f, "mirror pod"),
            Skip::ExcludedNamespace(ns) => write!(f, "namespace {ns} is excluded"),
            Skip::OptedOut => write!(f, "opted out with {}: \"false\"", ann::INJECT),
            Skip::NoEligibleContainers => write!(f, "no eligible container"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Skip(Skip),
    Plan(Plan),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    #[error(
        "terminationGracePeriodSeconds would be {grace}s (container {container}: drain delay {drain_delay}s + request timeout {request_timeout}s, plus margin {margin}s), above the maximum of {max}s (--max-grace); lower {key}, for example {key}: \"30s\""
    )]
    GraceTooLong {
        grace: u64,
        max: u64,
        container: String,
        drain_delay: u64,
        request_timeout: u64,
        margin: u64,
        key: &'static str,
    },
}

impl Mode {
    /// A pod may downgrade itself to audit with `gracehook.io/mode: audit`, never
    /// upgrade. An invalid value is reported by [`plan`].
    pub fn for_pod(self, pod: &Pod) -> Mode {
        let wants_audit = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| ann::mode(a).ok().flatten())
            == Some(ann::PodMode::Audit);
        if wants_audit { Mode::Audit } else { self }
    }
}

/// Decides what to do with `pod`, created in `namespace`.
pub fn plan(
    pod: &Pod,
    namespace: Option<&str>,
    settings: &Settings,
    namespace_defaults: &NamespaceDefaults,
) -> Result<Decision, PlanError> {
    let empty = Annotations::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);

    if annotations.contains_key(ann::MIRROR) {
        return Ok(Decision::Skip(Skip::MirrorPod));
    }
    if let Some(ns) = namespace.filter(|ns| settings.exclude_namespaces.contains(*ns)) {
        return Ok(Decision::Skip(Skip::ExcludedNamespace(ns.to_string())));
    }
    if ann::boolean(annotations, ann::INJECT)? == Some(false) {
        return Ok(Decision::Skip(Skip::OptedOut));
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Decision::Skip(Skip::NoEligibleContainers));
    };

    let defaults = settings.defaults.overlaid(namespace_defaults);
    let pod_delay = ann::duration(annotations, ann::DRAIN_DELAY)?.unwrap_or(defaults.drain_delay);
    let pod_timeout =
        ann::duration(annotations, ann::REQUEST_TIMEOUT)?.unwrap_or(defaults.request_timeout);
    let margin = ann::duration(annotations, ann::MARGIN)?.unwrap_or(defaults.margin);
    let pod_command = ann::command(annotations, ann::DRAIN_COMMAND)?;
    let only = ann::container_list(annotations)?;
    // Validated even when the admission layer has already read it, so that
    // `mutate` and `review` reject the same pods.
    ann::mode(annotations)?;
    let windows = spec
        .os
        .as_ref()
        .is_some_and(|os| os.name.eq_ignore_ascii_case("windows"));

    let mut notes = Vec::new();
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    for key in ann::unknown_keys(annotations, &names) {
        notes.push(format!("ignored unknown annotation {key}"));
    }
    if let Some(only) = &only {
        let init: Vec<&str> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        for missing in only.iter().filter(|n| !names.contains(&n.as_str())) {
            let why = if init.contains(&missing.as_str()) {
                "an init container (init containers and native sidecars never get a hook)"
            } else {
                "not a container of this pod"
            };
            notes.push(format!("{} names {missing}, {why}", ann::CONTAINERS));
        }
    }

    let overridden = ann::has_per_container_keys(annotations);
    let mut containers = Vec::new();
    for (index, container) in spec.containers.iter().enumerate() {
        let name = container.name.as_str();
        if settings.skip_containers.contains(name) {
            continue;
        }
        if only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|n| n == name))
        {
            continue;
        }
        let overrides = if overridden {
            ann::container_overrides(annotations, name)?
        } else {
            ann::ContainerOverrides::default()
        };
        if overrides.inject == Some(false) {
            continue;
        }
        let drain_delay = overrides.drain_delay.unwrap_or(pod_delay);
        let request_timeout = overrides.request_timeout.unwrap_or(pod_timeout);
        let drain_command = overrides.drain_command.or_else(|| pod_command.clone());

        let wanted = wanted_hook(
            drain_delay,
            request_timeout,
            drain_command.as_deref(),
            windows,
            settings.prestop_style,
        );
        if windows && drain_command.is_some() {
            notes.push(format!(
                "container {name} runs on Windows, which has no sh: its drain command is not run{}",
                if drain_delay > 0 {
                    ", only the delay"
                } else {
                    ""
                }
            ));
        }
        let action = action_for(container, wanted);
        if action == HookAction::KeepExisting {
            notes.push(format!(
                "container {name} already has a preStop hook; kept it unchanged"
            ));
        }
        containers.push(ContainerPlan {
            index,
            name: name.to_string(),
            drain_delay,
            request_timeout,
            drain_command,
            lifecycle_present: container.lifecycle.is_some(),
            action,
        });
    }
    if containers.is_empty() {
        return Ok(Decision::Skip(Skip::NoEligibleContainers));
    }

    let required_grace = required_grace(&containers, margin, settings.max_grace)?;
    let current_grace = spec.termination_grace_period_seconds;
    let mut plan = Plan {
        status: String::new(),
        current_status: annotations.get(ann::STATUS).cloned(),
        annotations_present: pod.metadata.annotations.is_some(),
        containers,
        margin,
        required_grace,
        current_grace,
        notes,
    };
    plan.status = status_record(&plan);
    Ok(Decision::Plan(plan))
}

fn wanted_hook(
    delay: u64,
    timeout: u64,
    command: Option<&str>,
    windows: bool,
    style: PrestopStyle,
) -> Option<Hook> {
    match (command, windows, style) {
        (Some(cmd), false, _) => Some(Hook::Shell {
            delay,
            command: Some((cmd.to_string(), timeout)),
        }),
        _ if delay == 0 => None,
        // Windows images have no sh; the kubelet's sleep needs nothing.
        (_, true, _) | (None, false, PrestopStyle::Sleep) => Some(Hook::Sleep { seconds: delay }),
        (None, false, PrestopStyle::Exec) => Some(Hook::Shell {
            delay,
            command: None,
        }),
    }
}

fn action_for(container: &Container, wanted: Option<Hook>) -> HookAction {
    let existing = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref());
    match (existing, wanted) {
        (Some(existing), Some(hook)) if *existing == hook.handler() => {
            HookAction::AlreadyApplied(hook)
        }
        (Some(_), _) => HookAction::KeepExisting,
        (None, Some(hook)) => HookAction::Add(hook),
        (None, None) => HookAction::NoHook,
    }
}

fn required_grace(containers: &[ContainerPlan], margin: u64, max: u64) -> Result<u64, PlanError> {
    // Non-empty: checked by the caller.
    let longest = containers
        .iter()
        .max_by_key(|c| c.drain_delay.saturating_add(c.request_timeout));
    let Some(longest) = longest else {
        return Ok(margin);
    };
    let grace = longest
        .drain_delay
        .saturating_add(longest.request_timeout)
        .saturating_add(margin);
    if grace > max {
        // Point at the biggest contributor: that is the likely mistake.
        let (key, _) = [
            (ann::MARGIN, margin),
            (ann::DRAIN_DELAY, longest.drain_delay),
            (ann::REQUEST_TIMEOUT, longest.request_timeout),
        ]
        .into_iter()
        .max_by_key(|(_, seconds)| *seconds)
        .unwrap_or((ann::REQUEST_TIMEOUT, 0));
        return Err(PlanError::GraceTooLong {
            grace,
            max,
            container: longest.name.clone(),
            drain_delay: longest.drain_delay,
            request_timeout: longest.request_timeout,
            margin,
            key,
        });
    }
    Ok(grace)
}

/// The compact record written to `gracehook.io/status`:
/// `{"grace":40,"containers":{"web":"exec"}}`. Deterministic, so that a second
/// pass can compare strings.
fn status_record(plan: &Plan) -> String {
    #[derive(serde::Serialize)]
    struct Record<'a> {
        grace: u64,
        containers: Kinds<'a>,
    }
    struct Kinds<'a>(&'a [ContainerPlan]);
    impl serde::Serialize for Kinds<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|c| (&c.name, c.action.status_kind())))
        }
    }
    let record = Record {
        grace: plan.final_grace(),
        containers: Kinds(&plan.containers),
    };
    // Strings and integers only: serialisation cannot fail.
    serde_json::to_string(&record).unwrap_or_default()
}
