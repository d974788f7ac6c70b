//! Namespace-level defaults: `gracehook.io/drain-delay`, `request-timeout` and
//! `margin` on a Namespace, kept in a watched cache so that no admission
//! waits on the API server, and a namespace update is seen within seconds.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::annotations::{self as ann, Annotations};
use crate::settings::NamespaceDefaults;

/// Where the admission layer gets a namespace's defaults.
pub trait NamespaceLookup: Send + Sync {
    fn defaults(&self, namespace: &str) -> NamespaceDefaults;
}

/// The defaults one Namespace's annotations set. An invalid value is ignored
/// (the watch logs it): a typo on a namespace must not block its pods.
pub fn defaults_of(annotations: &Annotations) -> NamespaceDefaults {
    let read = |key| ann::duration(annotations, key).ok().flatten();
    NamespaceDefaults {
        drain_delay: read(ann::DRAIN_DELAY),
        request_timeout: read(ann::REQUEST_TIMEOUT),
        margin: read(ann::MARGIN),
    }
}

/// A reflector's store of Namespaces.
#[derive(Clone)]
pub struct WatchedNamespaces {
    store: Store<Namespace>,
}

impl NamespaceLookup for WatchedNamespaces {
    fn defaults(&self, namespace: &str) -> NamespaceDefaults {
        self.store
            .get(&ObjectRef::new(namespace))
            .and_then(|ns| ns.metadata.annotations.as_ref().map(defaults_of))
            .unwrap_or_default()
    }
}

impl WatchedNamespaces {
    /// Starts watching Namespaces and waits (up to `sync_timeout`) for the
    /// first list, so the first admissions already see the defaults.
    pub async fn start(client: Client, sync_timeout: Duration) -> WatchedNamespaces {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(Api::<Namespace>::all(client), watcher::Config::default()),
        )
        .default_backoff()
        .touched_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(ns) => {
                        tracing::debug!(
                            namespace = ns.metadata.name.as_deref().unwrap_or(""),
                            "namespace seen"
                        );
                        report_invalid(&ns);
                    }
                    Err(error) => tracing::warn!(%error, "watching namespaces"),
                }
            }
        });
        match tokio::time::timeout(sync_timeout, store.wait_until_ready()).await {
            Ok(Ok(())) => tracing::info!(
                namespaces = store.state().len(),
                "namespace defaults loaded"
            ),
            _ => tracing::warn!(
                "namespaces not listed yet; using the flags' defaults until they are"
            ),
        }
        WatchedNamespaces { store }
    }
}

fn report_invalid(ns: &Namespace) {
    let Some(annotations) = &ns.metadata.annotations else {
        return;
    };
    for key in [ann::DRAIN_DELAY, ann::REQUEST_TIMEOUT, ann::MARGIN] {
        if let Err(error) = ann::duration(annotations, key) {
            tracing::error!(
                namespace = ns.metadata.name.as_deref().unwrap_or(""),
                %error,
                "ignored an invalid namespace default"
            );
        }
    }
}

/// For tests and `review`: fixed defaults per namespace.
impl NamespaceLookup for std::collections::HashMap<String, NamespaceDefaults> {
    fn defaults(&self, namespace: &str) -> NamespaceDefaults {
        self.get(namespace).copied().unwrap_or_default()
    }
}

pub type SharedLookup = Arc<dyn NamespaceLookup>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_annotations_become_defaults_and_invalid_ones_are_ignored() {
        let annotations: Annotations = [
            (ann::DRAIN_DELAY, "2s"),
            (ann::REQUEST_TIMEOUT, "soon"),
            (ann::MARGIN, "1m"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            defaults_of(&annotations),
            NamespaceDefaults {
                drain_delay: Some(2),
                request_timeout: None,
                margin: Some(60),
            }
        );
    }
}
