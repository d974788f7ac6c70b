//! Namespace-level defaults: `gracehook.io/drain-delay`, `request-timeout` and
//! `margin` on a Namespace, kept in a watched cache so that no admission
//! waits on the API server, and a namespace update is seen within seconds
//! (`docs/annotations.md`, "Namespace defaults").

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::admission::NamespaceLookup;
use crate::planner::annotations as ann;
use crate::planner::settings::{Defaults, NamespaceDefaults};

/// A reflector's store of Namespaces.
#[derive(Clone)]
pub struct WatchedNamespaces {
    store: Store<Namespace>,
}

impl NamespaceLookup for WatchedNamespaces {
    fn defaults(&self, namespace: &str) -> NamespaceDefaults {
        self.store
            .get(&ObjectRef::new(namespace))
            .and_then(|ns| {
                ns.metadata
                    .annotations
                    .as_ref()
                    .map(ann::namespace_defaults)
            })
            .unwrap_or_default()
    }
}

impl WatchedNamespaces {
    /// Starts watching Namespaces and waits (up to `sync_timeout`) for the
    /// first list, so the first admissions already see the defaults. The
    /// flags' `defaults` and `max_grace` name the values that are ignored
    /// for not fitting ([`NamespaceDefaults::fitting`]).
    pub async fn start(
        client: Client,
        sync_timeout: Duration,
        defaults: Defaults,
        max_grace: u64,
    ) -> WatchedNamespaces {
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
                        report_ignored(&ns, defaults, max_grace);
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

/// Logs each namespace value that admissions ignore: invalid, or too long
/// for `--max-grace`.
fn report_ignored(ns: &Namespace, defaults: Defaults, max_grace: u64) {
    let Some(annotations) = &ns.metadata.annotations else {
        return;
    };
    let namespace = ns.metadata.name.as_deref().unwrap_or("");
    for key in ann::NAMESPACE_LEVEL {
        if let Err(error) = ann::duration(annotations, key) {
            tracing::error!(namespace, %error, "ignored an invalid namespace default");
        }
    }
    let read = ann::namespace_defaults(annotations);
    let fitting = read.fitting(defaults, max_grace);
    let dropped = [
        (ann::DRAIN_DELAY, read.drain_delay, fitting.drain_delay),
        (
            ann::REQUEST_TIMEOUT,
            read.request_timeout,
            fitting.request_timeout,
        ),
        (ann::MARGIN, read.margin, fitting.margin),
    ];
    for (key, value, kept) in dropped {
        if let (Some(seconds), None) = (value, kept) {
            tracing::error!(
                namespace,
                key,
                seconds,
                max_grace,
                "ignored a namespace default: alone it makes every plain pod's grace period exceed --max-grace"
            );
        }
    }
}
