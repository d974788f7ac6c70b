//! The workload a pod belongs to: its controller, and for a ReplicaSet the
//! Deployment that owns it (one `get`, cached by the ReplicaSet's uid).

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;

use super::facts::{Owner, Termination, controller_of};

/// ReplicaSets whose owner is remembered; cleared whole when full (a
/// rollout makes one per Deployment, so a refill is cheap).
const CACHED: usize = 4096;

/// The workload an outcome is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    /// Its namespace.
    pub namespace: String,
    /// Its reference (for a bare pod, the pod itself, kind `Pod`).
    pub owner: Owner,
}

impl Workload {
    /// The `owner_kind` label: `none` for a bare pod.
    pub fn metric_kind(&self) -> &str {
        if self.owner.kind == "Pod" {
            "none"
        } else {
            &self.owner.kind
        }
    }

    /// The `owner` label: empty for a bare pod, whose names do not repeat.
    pub fn metric_name(&self) -> &str {
        if self.owner.kind == "Pod" {
            ""
        } else {
            &self.owner.name
        }
    }
}

/// Resolves owners through the API, remembering ReplicaSets.
pub struct Owners {
    client: kube::Client,
    replica_sets: HashMap<String, Option<Owner>>,
}

impl Owners {
    /// With the client the observer uses (ReplicaSets get).
    pub fn new(client: kube::Client) -> Owners {
        Owners {
            client,
            replica_sets: HashMap::new(),
        }
    }

    /// The pod's workload. A ReplicaSet that cannot be read (deleted with
    /// its Deployment, or no access) stands for itself, with a log line.
    pub async fn workload(&mut self, t: &Termination) -> Workload {
        let owner = match &t.owner {
            None => Owner {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: t.name.clone(),
                uid: t.uid.clone(),
            },
            Some(rs) if rs.kind == "ReplicaSet" => self
                .deployment_of(&t.namespace, rs)
                .await
                .unwrap_or_else(|| rs.clone()),
            Some(owner) => owner.clone(),
        };
        Workload {
            namespace: t.namespace.clone(),
            owner,
        }
    }

    async fn deployment_of(&mut self, namespace: &str, rs: &Owner) -> Option<Owner> {
        if let Some(known) = self.replica_sets.get(&rs.uid) {
            return known.clone();
        }
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        let owner = match api.get(&rs.name).await {
            Ok(found) if found.metadata.uid.as_deref() == Some(rs.uid.as_str()) => {
                controller_of(found.metadata.owner_references.as_deref())
            }
            Ok(_) => {
                tracing::info!(namespace, replicaset = %rs.name, "the pod's ReplicaSet was replaced by another of that name; counted under the ReplicaSet");
                None
            }
            Err(error) => {
                tracing::info!(namespace, replicaset = %rs.name, %error, "cannot read the pod's ReplicaSet; counted under the ReplicaSet");
                return None;
            }
        };
        if self.replica_sets.len() >= CACHED {
            self.replica_sets.clear();
        }
        self.replica_sets.insert(rs.uid.clone(), owner.clone());
        owner
    }
}
