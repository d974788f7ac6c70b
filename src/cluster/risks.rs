//! The assessment behind `gracehook audit`: which workloads lack a graceful
//! shutdown, and what gracehook would set (`docs/cli.md`, "audit"). Pure:
//! [`super::workloads`] lists them, the command line renders the report.

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use serde::Serialize;

use super::workloads::Workload;
use crate::planner::annotations as ann;
use crate::planner::hook;
use crate::planner::{Decision, NamespaceDefaults, Plan, Settings, plan, summary};

/// The grace period the API server applies when a pod sets none.
pub const DEFAULT_GRACE: i64 = 30;

/// A container's preStop as found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    /// The container.
    pub name: String,
    /// Its preStop hook, described (`none` when it has none).
    pub pre_stop: String,
}

/// The assessment of one workload.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `Deployment`, `Pod`, ...
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The namespace's `gracehook.io/mode` label (`enforce`, `audit`), or `none`.
    pub mode: String,
    /// Its grace period (30 when unset, as the API server defaults it).
    pub grace: i64,
    /// Each container's preStop.
    pub containers: Vec<ContainerState>,
    /// What gracehook would change, or `nothing`.
    pub would_set: String,
    /// Why requests may be cut when it terminates.
    pub risks: Vec<String>,
}

impl Finding {
    /// Whether anything is at risk.
    pub fn at_risk(&self) -> bool {
        !self.risks.is_empty()
    }
}

fn describe(handler: Option<&LifecycleHandler>) -> String {
    let Some(h) = handler else {
        return "none".to_string();
    };
    if let Some(sleep) = &h.sleep {
        return format!("sleep {}s", sleep.seconds);
    }
    if let Some(exec) = &h.exec {
        let command = exec.command.as_deref().unwrap_or_default();
        return match command {
            [sh, c, script] if sh == "sh" && c == "-c" => format!("sh -c \"{script}\""),
            [sh, c, _, name, command] if sh == "sh" && c == "-c" && name == hook::DRAIN_NAME => {
                format!("gracehook drain: {command}")
            }
            other => other.join(" "),
        };
    }
    if let Some(get) = &h.http_get {
        return format!("httpGet {}", get.path.as_deref().unwrap_or("/"));
    }
    "tcpSocket".to_string()
}

fn pre_stop(c: &Container) -> Option<&LifecycleHandler> {
    c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
}

fn containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|s| &s.containers)
}

/// Assesses one workload in a namespace with the given mode and defaults.
pub fn assess(
    workload: &Workload,
    mode: Option<&str>,
    namespace_defaults: &NamespaceDefaults,
    settings: &Settings,
) -> Finding {
    let pod = &workload.template;
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE);
    let states: Vec<ContainerState> = containers(pod)
        .map(|c| ContainerState {
            name: c.name.clone(),
            pre_stop: describe(pre_stop(c)),
        })
        .collect();
    let mut risks = sleep_risks(pod, grace);
    let would_set = match plan(pod, Some(&workload.namespace), settings, namespace_defaults) {
        Err(error) => {
            risks.push(error.to_string());
            "nothing (invalid annotation)".to_string()
        }
        Ok(Decision::Skip(why)) => format!("nothing ({why})"),
        Ok(Decision::Plan(plan)) => {
            risks.extend(plan_risks(&plan, &states, grace));
            if plan.is_noop() {
                "nothing".to_string()
            } else {
                summary::would_change(&plan)
                    .trim_start_matches("would ")
                    .to_string()
            }
        }
    };
    Finding {
        kind: workload.kind.to_string(),
        namespace: workload.namespace.clone(),
        name: workload.name.clone(),
        mode: mode.unwrap_or("none").to_string(),
        grace,
        containers: states,
        would_set,
        risks,
    }
}

/// A native sleep longer than the grace period: SIGKILL comes first.
fn sleep_risks(pod: &Pod, grace: i64) -> Vec<String> {
    containers(pod)
        .filter_map(|c| {
            let sleep = pre_stop(c)?.sleep.as_ref().filter(|s| s.seconds > grace)?;
            Some(format!(
                "{}: preStop sleep {}s longer than the grace period {grace}s",
                c.name, sleep.seconds
            ))
        })
        .collect()
}

/// What the annotations (or the defaults) ask for and the pod lacks.
fn plan_risks(plan: &Plan, states: &[ContainerState], grace: i64) -> Vec<String> {
    let mut risks = Vec::new();
    let grace_seconds = u64::try_from(grace).unwrap_or(0);
    for c in &plan.containers {
        let has_hook = states
            .iter()
            .any(|s| s.name == c.name && s.pre_stop != "none");
        if let Some(outlasts) = &c.sidecar {
            let drain = c.drain_delay.saturating_add(c.request_timeout);
            if !has_hook && outlasts.shutdown.seconds < drain {
                risks.push(format!(
                    "{}: sidecar without preStop, exits {}s after SIGTERM, before the {drain}s drain of {} ends",
                    c.name, outlasts.shutdown.seconds, outlasts.container
                ));
            }
            continue;
        }
        if !has_hook && c.drain_delay > 0 {
            risks.push(format!("{}: no preStop delay", c.name));
        }
        if grace_seconds < c.needed() {
            risks.push(format!(
                "{}: grace period {grace}s shorter than drain delay {}s + request timeout {}s",
                c.name, c.drain_delay, c.request_timeout
            ));
        }
    }
    for sidecar in &plan.native_sidecars {
        let sigterm = sidecar.sigterm_at();
        let shutdown = sidecar.outlasts.shutdown.seconds;
        if shutdown > 0 && grace_seconds < sigterm.saturating_add(shutdown) {
            risks.push(format!(
                "{}: grace period {grace}s shorter than its SIGTERM at {sigterm}s (after the drain of {}) + its shutdown ({shutdown}s)",
                sidecar.name, sidecar.outlasts.container,
            ));
        }
    }
    risks
}

/// The namespace's mode label, as the webhook configuration reads it.
pub fn mode_of(labels: Option<&std::collections::BTreeMap<String, String>>) -> Option<&str> {
    labels
        .and_then(|l| l.get(ann::MODE))
        .map(String::as_str)
        .filter(|m| *m == "enforce" || *m == "audit")
}

/// The counts of a report, kept as findings stream past.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Workloads assessed.
    pub total: usize,
    /// Of which at risk.
    pub at_risk: usize,
    enforce: usize,
    audit: usize,
    none: usize,
}

impl Tally {
    /// Counts one finding.
    pub fn add(&mut self, finding: &Finding) {
        self.total += 1;
        self.at_risk += usize::from(finding.at_risk());
        match finding.mode.as_str() {
            "enforce" => self.enforce += 1,
            "audit" => self.audit += 1,
            _ => self.none += 1,
        }
    }

    /// `N workloads: R at risk, K ok; E in enforce namespaces, A in audit, O not opted in`.
    pub fn line(&self) -> String {
        format!(
            "{} workloads: {} at risk, {} ok; {} in enforce namespaces, {} in audit, {} not opted in",
            self.total,
            self.at_risk,
            self.total - self.at_risk,
            self.enforce,
            self.audit,
            self.none
        )
    }
}

/// The summary line of `findings`.
pub fn summary_line(findings: &[Finding]) -> String {
    let mut tally = Tally::default();
    findings.iter().for_each(|f| tally.add(f));
    tally.line()
}
