//! The heart of gracehook: from a pod and the settings, decide which preStop
//! hooks to add and which grace period to set (`docs/plan.md`). Pure: no I/O,
//! no clock, no globals, so it can be tested and benchmarked alone.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use thiserror::Error;

use super::annotations::{self as ann, AnnotationError, Annotations, ContainerOverrides};
use super::grace::{self, GraceTooLong, Need, SidecarShutdown, needed};
use super::hook::{Hook, HookAction};
use super::settings::{Mode, NamespaceDefaults, PrestopStyle, Settings};
use super::sidecars::{self, Shutdown, Sidecar, SidecarKind};

/// The plan for one eligible container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    /// Position in `spec.containers`, for the JSON pointer.
    pub index: usize,
    /// The container's name.
    pub name: String,
    /// Seconds to keep serving after termination starts.
    pub drain_delay: u64,
    /// Seconds a request in flight may take.
    pub request_timeout: u64,
    /// The command run after the delay, if any.
    pub drain_command: Option<String>,
    /// What happens to its preStop hook.
    pub action: HookAction,
    /// Whether `lifecycle` exists, so the patch adds `preStop` inside it rather
    /// than replacing it (and losing a `postStart`).
    pub lifecycle_present: bool,
    /// For a classic sidecar: the application container whose drain it
    /// outlasts (the delay and timeout above are that container's), and
    /// its own shutdown after SIGTERM.
    pub sidecar: Option<Outlasts>,
}

/// A sidecar stays up through an application container's drain, then shuts
/// down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlasts {
    /// The application container with the longest drain.
    pub container: String,
    /// The sidecar's shutdown.
    pub shutdown: Shutdown,
}

/// A native sidecar (an init container with `restartPolicy: Always`): no
/// hook, the kubelet stops it after the application containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeSidecar {
    /// Its name.
    pub name: String,
    /// The longest application drain, and the sidecar's shutdown.
    pub outlasts: Outlasts,
    /// That container's drain delay.
    pub drain_delay: u64,
    /// That container's request timeout.
    pub request_timeout: u64,
    /// The shutdowns of the native sidecars declared after it: the kubelet
    /// stops native sidecars one after the other, the last declared first,
    /// so this one gets SIGTERM only once they have exited.
    pub after: u64,
}

impl NativeSidecar {
    /// When it gets SIGTERM at the latest: after the drain and the native
    /// sidecars declared after it.
    pub fn sigterm_at(&self) -> u64 {
        needed(self.drain_delay, self.request_timeout).saturating_add(self.after)
    }
}

impl ContainerPlan {
    /// The hook gracehook adds to this container, if any.
    pub fn added_hook(&self) -> Option<&Hook> {
        match &self.action {
            HookAction::Add(hook) => Some(hook),
            _ => None,
        }
    }

    /// Drain delay + request timeout: what this container needs of the
    /// grace period, margin aside ([`grace::needed`]); for a classic
    /// sidecar, the drain it outlasts.
    pub fn needed(&self) -> u64 {
        self.need().total()
    }

    /// What this container asks of the grace period.
    pub fn need(&self) -> Need<'_> {
        Need {
            container: &self.name,
            drain_delay: self.drain_delay,
            request_timeout: self.request_timeout,
        }
    }
}

/// Everything gracehook would do to one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The eligible containers and the classic sidecars, in pod order.
    pub containers: Vec<ContainerPlan>,
    /// The native sidecars, in `initContainers` order.
    pub native_sidecars: Vec<NativeSidecar>,
    /// Seconds of slack on top.
    pub margin: u64,
    /// `max(drain delay + request timeout)` over eligible containers, plus
    /// the sidecars' shutdown ([`grace::SidecarShutdown`]), plus the margin.
    pub required_grace: u64,
    /// The pod's `terminationGracePeriodSeconds`, if set.
    pub current_grace: Option<i64>,
    /// The `gracehook.io/status` record this plan leads to.
    pub status: String,
    /// The pod's `gracehook.io/status`, if any.
    pub current_status: Option<String>,
    /// Whether the pod has an annotations map at all.
    pub annotations_present: bool,
    /// Things worth telling the user, without the `gracehook:` prefix.
    pub notes: Vec<String>,
}

impl Plan {
    /// The grace period to write, if it must be set or raised.
    pub fn new_grace(&self) -> Option<u64> {
        grace::to_write(self.current_grace, self.required_grace)
    }

    /// The grace period the pod ends up with.
    pub fn final_grace(&self) -> u64 {
        grace::resulting(self.current_grace, self.required_grace)
    }

    /// Whether `gracehook.io/status` must be written.
    pub fn status_changes(&self) -> bool {
        self.current_status.as_deref() != Some(self.status.as_str())
    }

    /// The containers that get a new hook, with it.
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
    /// The API mirror of a static pod: read-only.
    MirrorPod,
    /// One of `--exclude-namespaces`.
    ExcludedNamespace(String),
    /// `gracehook.io/inject: "false"`.
    OptedOut,
    /// No container left to handle.
    NoEligibleContainers,
    /// More containers than `--max-containers`: left untouched, with a
    /// warning.
    TooManyContainers {
        /// The pod's containers.
        count: usize,
        /// `--max-containers`.
        max: usize,
    },
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::MirrorPod => write!(f, "mirror pod"),
            Skip::ExcludedNamespace(ns) => write!(f, "namespace {ns} is excluded"),
            Skip::OptedOut => write!(f, "opted out with {}: \"false\"", ann::INJECT),
            Skip::NoEligibleContainers => write!(f, "no eligible container"),
            Skip::TooManyContainers { count, max } => write!(
                f,
                "{count} containers, more than the {max} gracehook plans (--max-containers)"
            ),
        }
    }
}

/// What the planner decided for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave it alone.
    Skip(Skip),
    /// Change it (or find it already changed: [`Plan::is_noop`]).
    Plan(Plan),
}

/// A pod gracehook refuses: enforce mode denies it, audit mode warns.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// An annotation's value cannot be used.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// The grace period would exceed `--max-grace` (boxed: it is the
    /// largest error, and every `Result` of the planner carries its size).
    #[error(transparent)]
    GraceTooLong(Box<GraceTooLong>),
}

impl From<GraceTooLong> for PlanError {
    fn from(error: GraceTooLong) -> Self {
        PlanError::GraceTooLong(Box::new(error))
    }
}

/// A decision and the mode to apply it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The endpoint's mode after the pod's own `gracehook.io/mode`.
    pub mode: Mode,
    /// What to do with the pod.
    pub decision: Result<Decision, PlanError>,
}

/// Decides what to do with `pod`, created in `namespace`, for an endpoint in
/// `mode`. `gracehook.io/mode` is read once, here: a valid `audit` downgrades
/// the mode, and an invalid value makes the pod invalid.
pub fn plan_in(
    pod: &Pod,
    namespace: Option<&str>,
    settings: &Settings,
    namespace_defaults: &NamespaceDefaults,
    mode: Mode,
) -> Planned {
    let empty = Annotations::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let requested = ann::mode(annotations);
    Planned {
        mode: mode.downgraded_by(requested.as_ref().ok().copied().flatten()),
        decision: decide(
            pod,
            annotations,
            requested,
            Context {
                namespace,
                settings,
                namespace_defaults,
            },
        ),
    }
}

/// Decides what to do with `pod`, created in `namespace`, whatever mode it
/// asks for.
pub fn plan(
    pod: &Pod,
    namespace: Option<&str>,
    settings: &Settings,
    namespace_defaults: &NamespaceDefaults,
) -> Result<Decision, PlanError> {
    plan_in(pod, namespace, settings, namespace_defaults, Mode::Enforce).decision
}

/// Where a pod is planned: its namespace and what the operator configured.
#[derive(Clone, Copy)]
struct Context<'a> {
    namespace: Option<&'a str>,
    settings: &'a Settings,
    namespace_defaults: &'a NamespaceDefaults,
}

fn decide(
    pod: &Pod,
    annotations: &Annotations,
    requested_mode: Result<Option<Mode>, AnnotationError>,
    context: Context<'_>,
) -> Result<Decision, PlanError> {
    let settings = context.settings;
    if let Some(skip) = skip_reason(annotations, context.namespace, settings)? {
        return Ok(Decision::Skip(skip));
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Decision::Skip(Skip::NoEligibleContainers));
    };
    let count = spec.containers.len();
    if count > settings.max_containers {
        let max = settings.max_containers;
        return Ok(Decision::Skip(Skip::TooManyContainers { count, max }));
    }
    let inputs = PodInputs::read(annotations, settings, context.namespace_defaults, spec)?;
    // After the pod-level values: of several bad annotations, the first one
    // named stays the same whichever caller asks.
    requested_mode?;
    let mut notes = pod_notes(
        annotations,
        spec,
        inputs.only.as_deref(),
        &settings.skip_containers,
    );
    let mut containers = Vec::new();
    for (index, container) in spec.containers.iter().enumerate() {
        if let Some(c) = inputs.container_plan(index, container, annotations, &mut notes)? {
            containers.push(c);
        }
    }
    if containers.is_empty() {
        return Ok(Decision::Skip(Skip::NoEligibleContainers));
    }
    let found = sidecars::find(spec, |name| settings.skip_containers.contains(name));
    let native_sidecars = match containers.iter().max_by_key(|c| c.needed()) {
        // Most pods have no sidecar: nothing to clone for them.
        Some(longest) if !found.is_empty() => {
            let longest = longest.clone();
            inputs.plan_sidecars(found, annotations, &longest, &mut containers, &mut notes)?
        }
        _ => Vec::new(),
    };
    containers.sort_by_key(|c| c.index);
    let needs = containers
        .iter()
        .filter(|c| c.sidecar.is_none())
        .map(ContainerPlan::need);
    let required_grace = grace::required(
        needs,
        sidecar_shutdown(&containers, &native_sidecars),
        inputs.margin,
        settings.max_grace,
    )?;
    let current_grace = spec.termination_grace_period_seconds;
    let status = status_record(grace::resulting(current_grace, required_grace), &containers);
    Ok(Decision::Plan(Plan {
        status,
        current_status: annotations.get(ann::STATUS).cloned(),
        annotations_present: pod.metadata.annotations.is_some(),
        containers,
        native_sidecars,
        margin: inputs.margin,
        required_grace,
        current_grace,
        notes,
    }))
}

/// The sidecars' part of the grace period: the longest classic sidecar's
/// shutdown (they all get SIGTERM when their `sleep` ends), or the native
/// ones' added up (the kubelet stops them one after the other), whichever
/// is longer.
fn sidecar_shutdown<'a>(
    containers: &'a [ContainerPlan],
    natives: &'a [NativeSidecar],
) -> Option<SidecarShutdown<'a>> {
    let classic = containers
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.sidecar.as_ref()?.shutdown.seconds)));
    let native = natives
        .iter()
        .map(|n| (n.name.as_str(), n.outlasts.shutdown.seconds));
    let longest = native
        .clone()
        .chain(classic.clone())
        .max_by_key(|(_, s)| *s)?;
    let seconds = classic
        .map(|(_, s)| s)
        .max()
        .unwrap_or(0)
        .max(native.map(|(_, s)| s).fold(0, u64::saturating_add));
    Some(SidecarShutdown {
        seconds,
        longest: longest.0,
    })
}

fn skip_reason(
    annotations: &Annotations,
    namespace: Option<&str>,
    settings: &Settings,
) -> Result<Option<Skip>, PlanError> {
    if annotations.contains_key(ann::MIRROR) {
        return Ok(Some(Skip::MirrorPod));
    }
    if let Some(ns) = namespace.filter(|ns| settings.exclude_namespaces.contains(*ns)) {
        return Ok(Some(Skip::ExcludedNamespace(ns.to_string())));
    }
    if ann::boolean(annotations, ann::INJECT)? == Some(false) {
        return Ok(Some(Skip::OptedOut));
    }
    Ok(None)
}

/// The pod-level inputs, read once: annotations over namespace defaults over
/// the flags (`docs/annotations.md`, "Precedence").
struct PodInputs<'a> {
    settings: &'a Settings,
    drain_delay: u64,
    request_timeout: u64,
    margin: u64,
    drain_command: Option<String>,
    /// `gracehook.io/containers` in its order, and as a set: a pod may list
    /// thousands, and each container is looked up in it.
    only: Option<Vec<String>>,
    only_set: Option<HashSet<String>>,
    windows: bool,
    /// Whether any per-container key is present: most pods have none, and
    /// then no key is built per container.
    overridden: bool,
}

impl<'a> PodInputs<'a> {
    fn read(
        annotations: &Annotations,
        settings: &'a Settings,
        namespace_defaults: &NamespaceDefaults,
        spec: &PodSpec,
    ) -> Result<Self, PlanError> {
        let defaults = settings
            .defaults
            .overlaid(namespace_defaults, settings.max_grace);
        // Read in this order: of several bad annotations, the first named is
        // the same here and in the admission policies.
        let drain_delay = ann::duration(annotations, ann::DRAIN_DELAY)?;
        let request_timeout = ann::duration(annotations, ann::REQUEST_TIMEOUT)?;
        let margin = ann::duration(annotations, ann::MARGIN)?;
        let drain_command = ann::command(annotations, ann::DRAIN_COMMAND)?;
        let only = ann::container_list(annotations)?;
        Ok(PodInputs {
            settings,
            drain_delay: drain_delay.unwrap_or(defaults.drain_delay),
            request_timeout: request_timeout.unwrap_or(defaults.request_timeout),
            margin: margin.unwrap_or(defaults.margin),
            drain_command,
            only: only.clone(),
            only_set: only.map(|names| names.into_iter().collect()),
            windows: spec
                .os
                .as_ref()
                .is_some_and(|os| os.name.eq_ignore_ascii_case("windows")),
            overridden: ann::has_per_container_keys(annotations),
        })
    }

    /// Whether `name` is handled at all, before its per-container opt-out.
    fn selects(&self, name: &str) -> bool {
        !self.settings.skip_containers.contains(name)
            && self
                .only_set
                .as_ref()
                .is_none_or(|only| only.contains(name))
    }

    fn container_plan(
        &self,
        index: usize,
        container: &Container,
        annotations: &Annotations,
        notes: &mut Vec<String>,
    ) -> Result<Option<ContainerPlan>, PlanError> {
        let name = container.name.as_str();
        if !self.selects(name) {
            return Ok(None);
        }
        let overrides = if self.overridden {
            ann::container_overrides(annotations, name)?
        } else {
            ContainerOverrides::default()
        };
        if overrides.inject == Some(false) {
            return Ok(None);
        }
        let drain_delay = overrides.drain_delay.unwrap_or(self.drain_delay);
        let request_timeout = overrides.request_timeout.unwrap_or(self.request_timeout);
        let drain_command = overrides
            .drain_command
            .or_else(|| self.drain_command.clone());
        let wanted = self.wanted_hook(drain_delay, request_timeout, drain_command.as_deref());
        if self.windows && drain_command.is_some() {
            let only_delay = if drain_delay > 0 {
                ", only the delay"
            } else {
                ""
            };
            notes.push(format!(
                "container {name} runs on Windows, which has no sh: its drain command is not run{only_delay}"
            ));
        }
        let existing = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref());
        let action = HookAction::decide(existing, wanted);
        if action == HookAction::KeepExisting {
            notes.push(format!(
                "container {name} already has a preStop hook; kept it unchanged"
            ));
        }
        Ok(Some(ContainerPlan {
            index,
            name: name.to_string(),
            drain_delay,
            request_timeout,
            drain_command,
            lifecycle_present: container.lifecycle.is_some(),
            action,
            sidecar: None,
        }))
    }

    /// The sidecars: classic ones join `containers` with their hook, native
    /// ones are returned.
    fn plan_sidecars(
        &self,
        found: Vec<Sidecar<'_>>,
        annotations: &Annotations,
        longest: &ContainerPlan,
        containers: &mut Vec<ContainerPlan>,
        notes: &mut Vec<String>,
    ) -> Result<Vec<NativeSidecar>, PlanError> {
        let mut native_sidecars = Vec::new();
        for sidecar in found {
            let (shutdown, note) = sidecars::shutdown(sidecar.container, annotations)?;
            notes.extend(note);
            let outlasts = Outlasts {
                container: longest.name.clone(),
                shutdown,
            };
            match sidecar.kind {
                SidecarKind::Native => native_sidecars.push(NativeSidecar {
                    name: sidecar.container.name.clone(),
                    outlasts,
                    drain_delay: longest.drain_delay,
                    request_timeout: longest.request_timeout,
                    after: 0,
                }),
                SidecarKind::Classic => containers.push(self.sidecar_plan(
                    sidecar.index,
                    sidecar.container,
                    annotations,
                    longest,
                    outlasts,
                    notes,
                )?),
            }
        }
        let mut after = 0u64;
        for sidecar in native_sidecars.iter_mut().rev() {
            sidecar.after = after;
            after = after.saturating_add(sidecar.outlasts.shutdown.seconds);
        }
        Ok(native_sidecars)
    }

    /// A classic sidecar keeps serving through `longest`'s drain: a native
    /// `sleep` preStop as long, which needs nothing in the sidecar's image
    /// (proxy images have no shell), unless it has a preStop of its own or
    /// is opted out.
    fn sidecar_plan(
        &self,
        index: usize,
        container: &Container,
        annotations: &Annotations,
        longest: &ContainerPlan,
        outlasts: Outlasts,
        notes: &mut Vec<String>,
    ) -> Result<ContainerPlan, PlanError> {
        let name = container.name.as_str();
        let drain = longest.needed();
        let shutdown = outlasts.shutdown.seconds;
        let opted_out =
            ann::boolean(annotations, &ann::per_container(ann::INJECT, name))? == Some(false);
        let exits_early = shutdown < drain;
        let wanted = if opted_out || drain == 0 {
            None
        } else if self.settings.prestop_style == PrestopStyle::Exec && !self.windows {
            if exits_early {
                notes.push(format!(
                    "sidecar {name} gets no preStop: without the native sleep action (--prestop-style exec) it would need a shell, which proxy images lack; it exits {shutdown}s after SIGTERM, before the {drain}s drain of {} ends",
                    longest.name
                ));
            }
            None
        } else {
            Some(Hook::Sleep { seconds: drain })
        };
        let existing = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref());
        let action = HookAction::decide(existing, wanted);
        if opted_out && exits_early {
            notes.push(format!(
                "sidecar {name} is opted out: it gets SIGTERM with the application and exits {shutdown}s later, before the {drain}s drain of {} ends",
                longest.name
            ));
        }
        if action == HookAction::KeepExisting {
            notes.push(match existing.and_then(sidecars::waits) {
                Some(wait) if wait.saturating_add(shutdown) < drain => format!(
                    "sidecar {name} keeps its own preStop, which ends after {wait}s: with its {shutdown}s shutdown it exits before the {drain}s drain of {} ends",
                    longest.name
                ),
                _ => format!("sidecar {name} already has a preStop hook; kept it unchanged"),
            });
        }
        Ok(ContainerPlan {
            index,
            name: name.to_string(),
            drain_delay: longest.drain_delay,
            request_timeout: longest.request_timeout,
            drain_command: None,
            lifecycle_present: container.lifecycle.is_some(),
            action,
            sidecar: Some(outlasts),
        })
    }

    fn wanted_hook(&self, delay: u64, timeout: u64, command: Option<&str>) -> Option<Hook> {
        match (command, self.windows, self.settings.prestop_style) {
            (Some(cmd), false, _) => Some(Hook::Shell {
                delay,
                command: Some((cmd.to_string(), timeout)),
            }),
            _ if delay == 0 => None,
            // Windows images have no sh; the kubelet's sleep needs nothing.
            (_, true, _) | (None, false, PrestopStyle::Sleep) => {
                Some(Hook::Sleep { seconds: delay })
            }
            (None, false, PrestopStyle::Exec) => Some(Hook::Shell {
                delay,
                command: None,
            }),
        }
    }
}

/// Warnings about the pod's annotations as a whole: unknown keys, and
/// `gracehook.io/containers` naming what it cannot select.
fn pod_notes(
    annotations: &Annotations,
    spec: &PodSpec,
    only: Option<&[String]>,
    skip: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let names: HashSet<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    // Only a sidecar-shutdown key needs the sidecars' names.
    let named = |k: &String| {
        k.strip_prefix(ann::SIDECAR_SHUTDOWN)
            .is_some_and(|rest| rest.starts_with('.'))
    };
    let sidecar_names: HashSet<&str> = if annotations.keys().any(named) {
        sidecars::find(spec, |name| skip.contains(name))
            .iter()
            .map(|s| s.container.name.as_str())
            .collect()
    } else {
        HashSet::new()
    };
    let mut notes: Vec<String> = ann::unknown_keys(annotations, &names, &sidecar_names)
        .into_iter()
        .map(|key| format!("ignored unknown annotation {key}"))
        .collect();
    let Some(only) = only else {
        return notes;
    };
    let init: HashSet<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    for missing in only {
        if names.contains(missing.as_str()) {
            continue;
        }
        let why = if init.contains(missing.as_str()) {
            "an init container (init containers and native sidecars never get a hook)"
        } else {
            "not a container of this pod"
        };
        notes.push(format!("{} names {missing}, {why}", ann::CONTAINERS));
    }
    notes
}

/// The compact record written to `gracehook.io/status`:
/// `{"grace":40,"containers":{"web":"exec"}}`. Deterministic, so that a second
/// pass can compare strings.
fn status_record(grace: u64, containers: &[ContainerPlan]) -> String {
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
        grace,
        containers: Kinds(containers),
    };
    // Strings and integers only: serialisation cannot fail.
    serde_json::to_string(&record).unwrap_or_default()
}
