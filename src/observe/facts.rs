//! What a pod's final object says about its termination, read once into
//! small plain values ([`Termination`]) so that the observer keeps a few
//! hundred bytes per terminating pod instead of the pod, and so that the
//! outcome rules ([`super::outcome`]) are pure functions of numbers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::planner::annotations::STATUS;
use crate::planner::hook::Hook;

/// A pod that gracehook patched, as far as its termination goes. Times are
/// Unix seconds: the API writes them to the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid: one termination per uid, ever.
    pub uid: String,
    /// The pod's controller (`ownerReferences` with `controller: true`).
    pub owner: Option<Owner>,
    /// When the pod was deleted: `deletionTimestamp` minus
    /// `deletionGracePeriodSeconds` (the API server sets the first to the
    /// second plus the grace period it granted).
    pub deleted_at: i64,
    /// The grace period the deletion granted (0 for a forced deletion).
    pub grace: i64,
    /// The grace period gracehook planned (`gracehook.io/status`).
    pub planned_grace: u64,
    /// The phase when the observer first saw the pod terminating: with
    /// containers that all ended before the deletion, a pod that had
    /// Succeeded or Failed drained nothing.
    pub phase_at_deletion: Option<String>,
    /// The containers gracehook planned for, in the pod's order.
    pub containers: Vec<ContainerEnd>,
}

/// A workload that owns pods, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`, ...
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its uid (Events point at it; `kubectl describe` matches on it).
    pub uid: String,
}

/// One container that gracehook planned for, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEnd {
    /// The container's name.
    pub name: String,
    /// What gracehook recorded for it: `exec`, `sleep`, `kept`, `none`.
    pub kind: String,
    /// gracehook's own hook on it, read back from the spec; `None` for a
    /// hook gracehook did not write (`kept`) or no hook.
    pub hook: Option<Hook>,
    /// How it ended, once the kubelet has reported it.
    pub exit: Option<Exit>,
}

impl ContainerEnd {
    /// The drain delay of gracehook's hook (0 without one).
    pub fn drain_delay(&self) -> u64 {
        match &self.hook {
            Some(Hook::Sleep { seconds }) => *seconds,
            Some(Hook::Shell { delay, .. }) => *delay,
            None => 0,
        }
    }

    /// The request timeout the hook waits out after its drain command.
    pub fn request_timeout(&self) -> Option<u64> {
        match &self.hook {
            Some(Hook::Shell {
                command: Some((_, timeout)),
                ..
            }) => Some(*timeout),
            _ => None,
        }
    }

    /// gracehook's exec hook, which traps SIGTERM and whose own commands
    /// cannot fail it (`docs/plan.md`).
    pub fn has_gracehook_exec_hook(&self) -> bool {
        matches!(self.hook, Some(Hook::Shell { .. }))
    }
}

/// A container's `state.terminated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code (137: SIGKILL).
    pub code: i32,
    /// When it exited, Unix seconds.
    pub finished_at: i64,
    /// The runtime's reason (`Completed`, `Error`, `OOMKilled`).
    pub reason: Option<String>,
}

/// Why a pod cannot be read as a termination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    /// No `gracehook.io/status`: not a pod gracehook patched.
    #[error("no {STATUS} annotation")]
    NotPatched,
    /// Not (yet) being deleted.
    #[error("not being deleted")]
    NotDeleted,
    /// The status annotation is not what gracehook writes.
    #[error("malformed {STATUS} annotation: {0}")]
    MalformedStatus(String),
    /// No namespace, name or uid.
    #[error("pod without {0}")]
    Incomplete(&'static str),
}

impl FactsError {
    /// The metric label for a pod the observer skips (`None`: not one it
    /// should have read at all).
    pub fn skip_reason(&self) -> Option<&'static str> {
        match self {
            FactsError::NotPatched | FactsError::NotDeleted => None,
            FactsError::MalformedStatus(_) => Some("malformed-status"),
            FactsError::Incomplete(_) => Some("incomplete-pod"),
        }
    }
}

#[derive(serde::Deserialize)]
struct StatusRecord {
    grace: u64,
    containers: BTreeMap<String, String>,
}

/// Whether the pod carries gracehook's status annotation.
pub fn is_patched(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(STATUS))
}

impl Termination {
    /// Reads a pod being deleted (or its final object). `phase_at_deletion`
    /// is carried over from the first time the observer saw it terminating.
    pub fn from_pod(pod: &Pod) -> Result<Termination, FactsError> {
        let meta = &pod.metadata;
        let status = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(STATUS))
            .ok_or(FactsError::NotPatched)?;
        let record: StatusRecord =
            serde_json::from_str(status).map_err(|e| FactsError::MalformedStatus(e.to_string()))?;
        let expiry = meta
            .deletion_timestamp
            .as_ref()
            .ok_or(FactsError::NotDeleted)?
            .0
            .as_second();
        let grace = meta.deletion_grace_period_seconds.unwrap_or(0).max(0);
        let spec_containers: &[Container] = pod.spec.as_ref().map_or(&[], |s| &s.containers);
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or(&[]);
        let containers = spec_containers
            .iter()
            .filter_map(|c| {
                let kind = record.containers.get(&c.name)?;
                Some(container_end(c, kind, statuses))
            })
            .collect();
        Ok(Termination {
            namespace: meta
                .namespace
                .clone()
                .ok_or(FactsError::Incomplete("namespace"))?,
            name: meta.name.clone().ok_or(FactsError::Incomplete("name"))?,
            uid: meta.uid.clone().ok_or(FactsError::Incomplete("uid"))?,
            owner: controller_of(meta.owner_references.as_deref()),
            deleted_at: expiry - grace,
            grace,
            planned_grace: record.grace,
            phase_at_deletion: pod.status.as_ref().and_then(|s| s.phase.clone()),
            containers,
        })
    }

    /// This termination (as last seen while it ran) updated with a later
    /// object of the same pod. The kubelet's final delete, and any forced
    /// one, rewrites the deletion with grace 0: the deletion time and grace
    /// period stay those the pod drained under, and the phase the one it had
    /// when first seen terminating; the containers' exits are the newest
    /// that say anything.
    pub fn ended_as(self, later: Termination) -> Termination {
        let regraced = later.grace == 0 && self.grace > 0;
        let exits = |t: &Termination| t.containers.iter().filter(|c| c.exit.is_some()).count();
        let containers = if exits(&later) >= exits(&self) {
            later.containers
        } else {
            self.containers
        };
        Termination {
            deleted_at: if regraced {
                self.deleted_at
            } else {
                later.deleted_at
            },
            grace: if regraced { self.grace } else { later.grace },
            phase_at_deletion: self.phase_at_deletion,
            containers,
            ..later
        }
    }

    /// When the grace period runs out.
    pub fn expiry(&self) -> i64 {
        self.deleted_at + self.grace
    }
}

fn container_end(c: &Container, kind: &str, statuses: &[ContainerStatus]) -> ContainerEnd {
    let hook = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(Hook::from_handler)
        .filter(|_| kind == "exec" || kind == "sleep");
    let exit = statuses
        .iter()
        .find(|s| s.name == c.name)
        .and_then(|s| s.state.as_ref()?.terminated.as_ref())
        .and_then(|t| {
            Some(Exit {
                code: t.exit_code,
                finished_at: t.finished_at.as_ref()?.0.as_second(),
                reason: t.reason.clone(),
            })
        });
    ContainerEnd {
        name: c.name.clone(),
        kind: kind.to_string(),
        hook,
        exit,
    }
}

/// The reference with `controller: true`, as an [`Owner`].
pub fn controller_of(owners: Option<&[OwnerReference]>) -> Option<Owner> {
    owners
        .unwrap_or_default()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| Owner {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
        })
}
