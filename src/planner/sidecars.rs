//! A pod's sidecars, and how long each needs to shut down once it gets
//! SIGTERM (`docs/plan.md`, "Sidecars and mesh proxies").
//!
//! - A **native sidecar** is an init container with `restartPolicy:
//!   Always`: the kubelet sends it SIGTERM only once the application
//!   containers have exited, within the same grace period.
//! - A **classic sidecar** is a regular container named in
//!   `--skip-containers` (by default Istio's `istio-proxy` and Linkerd's
//!   `linkerd-proxy`): it gets SIGTERM together with the application, so
//!   gracehook keeps it serving with a native `sleep` preStop as long as
//!   the application's drain.
//!
//! Their shutdown comes from `gracehook.io/sidecar-shutdown.<container>`,
//! else from the mesh's own setting for its proxy, else from the mesh's
//! default; any other sidecar is assumed to stop at once.

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, PodSpec};

use super::annotations::{self as ann, AnnotationError, Annotations};
use super::duration::parse_seconds;

/// Istio's proxy container.
pub const ISTIO_PROXY: &str = "istio-proxy";
/// Linkerd's proxy container.
pub const LINKERD_PROXY: &str = "linkerd-proxy";
/// Istio's `terminationDrainDuration` when nothing sets it.
pub const ISTIO_DEFAULT_DRAIN: u64 = 5;
/// Istio's per-pod ProxyConfig (YAML).
pub const ISTIO_CONFIG: &str = "proxy.istio.io/config";
/// The merged ProxyConfig (JSON) Istio's injector writes into the proxy's
/// environment: the mesh-wide settings with the pod's on top.
pub const ISTIO_CONFIG_ENV: &str = "PROXY_CONFIG";
/// pilot-agent exits once no connection is left (after the minimum).
pub const ISTIO_EXIT_ON_ZERO: &str = "EXIT_ON_ZERO_ACTIVE_CONNECTIONS";
/// How long pilot-agent drains at least, with the above.
pub const ISTIO_MINIMUM_DRAIN: &str = "MINIMUM_DRAIN_DURATION";
/// Linkerd's per-pod cap on the proxy's graceful shutdown.
pub const LINKERD_GRACE: &str = "config.linkerd.io/shutdown-grace-period";
/// The same, as the injector writes it into the proxy's environment.
pub const LINKERD_GRACE_ENV: &str = "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD";
const ISTIO_DRAIN_KEY: &str = "terminationDrainDuration";

/// How a sidecar runs beside the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarKind {
    /// An init container with `restartPolicy: Always`.
    Native,
    /// A regular container in `--skip-containers`.
    Classic,
}

/// How long a sidecar takes from its SIGTERM to its exit, and who says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    /// Seconds.
    pub seconds: u64,
    /// Where the number comes from, for people.
    pub source: String,
}

/// A sidecar of the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Sidecar<'a> {
    /// The container.
    pub container: &'a Container,
    /// Its position in `initContainers` (native) or `containers` (classic).
    pub index: usize,
    /// How it runs.
    pub kind: SidecarKind,
}

/// The pod's sidecars: native ones in `initContainers` order, then classic
/// ones in `containers` order.
pub fn find<'a>(spec: &'a PodSpec, is_classic: impl Fn(&str) -> bool) -> Vec<Sidecar<'a>> {
    let native = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
        .map(|(index, container)| Sidecar {
            container,
            index,
            kind: SidecarKind::Native,
        });
    let classic = spec
        .containers
        .iter()
        .enumerate()
        .filter(|(_, c)| is_classic(&c.name))
        .map(|(index, container)| Sidecar {
            container,
            index,
            kind: SidecarKind::Classic,
        });
    native.chain(classic).collect()
}

/// The shutdown of `container`, a sidecar, and a note when a mesh setting
/// could not be read. Only gracehook's own annotation can make the pod
/// invalid: another product's setting that gracehook cannot read is that
/// product's to reject.
pub fn shutdown(
    container: &Container,
    annotations: &Annotations,
) -> Result<(Shutdown, Option<String>), AnnotationError> {
    let key = ann::per_container(ann::SIDECAR_SHUTDOWN, &container.name);
    if let Some(seconds) = ann::duration(annotations, &key)? {
        return Ok((
            Shutdown {
                seconds,
                source: key,
            },
            None,
        ));
    }
    Ok(match container.name.as_str() {
        ISTIO_PROXY => istio(container, annotations),
        LINKERD_PROXY => linkerd(container, annotations),
        _ => (
            Shutdown {
                seconds: 0,
                source: "no shutdown known".to_string(),
            },
            None,
        ),
    })
}

/// Istio's proxy: on SIGTERM pilot-agent drains Envoy for
/// `terminationDrainDuration`, then stops it; with
/// `EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true` it waits `MINIMUM_DRAIN_DURATION`
/// and then exits as soon as no connection is left, which, behind
/// gracehook's hook, is at once. The pod's `proxy.istio.io/config` wins
/// over the merged config in `PROXY_CONFIG`, as it does for pilot-agent.
fn istio(container: &Container, annotations: &Annotations) -> (Shutdown, Option<String>) {
    let mut unreadable = None;
    let mut shutdown = None;
    if env(container, ISTIO_EXIT_ON_ZERO).is_some_and(|v| v.trim() == "true") {
        let minimum = env(container, ISTIO_MINIMUM_DRAIN).unwrap_or("5s");
        let source = format!("{ISTIO_MINIMUM_DRAIN} of {ISTIO_PROXY} ({ISTIO_EXIT_ON_ZERO})");
        shutdown = read(minimum, &source, &mut unreadable);
    }
    if shutdown.is_none() {
        shutdown = annotations
            .get(ISTIO_CONFIG)
            .and_then(|text| drain_in(text))
            .and_then(|value| {
                let source = format!("{ISTIO_DRAIN_KEY} in {ISTIO_CONFIG}");
                read(value, &source, &mut unreadable)
            });
    }
    if shutdown.is_none() {
        shutdown = env(container, ISTIO_CONFIG_ENV).and_then(|json| {
            let config: serde_json::Value = serde_json::from_str(json).ok()?;
            let value = config.get(ISTIO_DRAIN_KEY)?.as_str()?;
            let source = format!("{ISTIO_DRAIN_KEY} in {ISTIO_CONFIG_ENV} of {ISTIO_PROXY}");
            read(value, &source, &mut unreadable)
        });
    }
    let shutdown = shutdown.unwrap_or_else(|| Shutdown {
        seconds: ISTIO_DEFAULT_DRAIN,
        source: format!("Istio's default {ISTIO_DRAIN_KEY}"),
    });
    planned(ISTIO_PROXY, shutdown, unreadable)
}

/// Linkerd's proxy: on SIGTERM it refuses new requests and exits once the
/// requests in flight are done, or at its shutdown grace period. Behind
/// the application's drain none is left, so it exits at once; its built-in
/// 2-minute cap is for stuck connections, not a drain, and is not planned
/// for. A grace period set for the pod (`config.linkerd.io/shutdown-grace-period`,
/// which the injector writes as `LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD`) is
/// the operator's word that the proxy may need that long, and is planned.
fn linkerd(container: &Container, annotations: &Annotations) -> (Shutdown, Option<String>) {
    let mut unreadable = None;
    let shutdown = annotations
        .get(LINKERD_GRACE)
        .and_then(|value| read(value, LINKERD_GRACE, &mut unreadable))
        .or_else(|| {
            let value = env(container, LINKERD_GRACE_ENV)?;
            let source = format!("{LINKERD_GRACE_ENV} of {LINKERD_PROXY}");
            read(value, &source, &mut unreadable)
        })
        .unwrap_or_else(|| Shutdown {
            seconds: 0,
            source: format!("{LINKERD_PROXY} exits once its requests are done"),
        });
    planned(LINKERD_PROXY, shutdown, unreadable)
}

/// The shutdown planned for `proxy`, with a note naming the last setting
/// that could not be read on the way to it.
fn planned(
    proxy: &str,
    shutdown: Shutdown,
    unreadable: Option<String>,
) -> (Shutdown, Option<String>) {
    let note = unreadable.map(|what| {
        format!(
            "could not read {what}; planned {proxy}'s shutdown as {}s ({})",
            shutdown.seconds, shutdown.source
        )
    });
    (shutdown, note)
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// A Go duration from another product's setting; unreadable is a note.
fn read(value: &str, source: &str, unreadable: &mut Option<String>) -> Option<Shutdown> {
    match parse_seconds(value) {
        Ok(seconds) => Some(Shutdown {
            seconds,
            source: source.to_string(),
        }),
        Err(_) => {
            *unreadable = Some(format!("{source} ({value:?})"));
            None
        }
    }
}

/// How long a preStop hook that only waits keeps its container up: the
/// native `sleep` action, `sleep N` (Linkerd's
/// `proxy-wait-before-exit-seconds` writes `/bin/sleep N`), or `sh -c
/// "sleep N"`. `None` for anything else: its length is unknown.
pub fn waits(handler: &LifecycleHandler) -> Option<u64> {
    if let Some(sleep) = &handler.sleep {
        return u64::try_from(sleep.seconds).ok();
    }
    let command = handler.exec.as_ref()?.command.as_deref()?;
    let words: Vec<&str> = match command {
        [sh, c, script] if sh.ends_with("sh") && c == "-c" => script.split_whitespace().collect(),
        argv => argv.iter().map(String::as_str).collect(),
    };
    match words.as_slice() {
        [sleep, seconds] if sleep.rsplit('/').next() == Some("sleep") => seconds.parse().ok(),
        _ => None,
    }
}

/// The value of `terminationDrainDuration` in a ProxyConfig written as
/// YAML or JSON (`terminationDrainDuration: 30s`,
/// `{"terminationDrainDuration": "30s"}`): the text after the key and its
/// colon, unquoted, up to the end of the scalar.
fn drain_in(config: &str) -> Option<&str> {
    let at = config.find(ISTIO_DRAIN_KEY)?;
    let rest = config[at + ISTIO_DRAIN_KEY.len()..].trim_start_matches(['"', '\'']);
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.trim_start_matches(['"', '\'']);
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | '#'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proxy(env: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": ISTIO_PROXY, "env": env})).unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn istio_drain_comes_from_the_merged_config_then_the_annotation_then_the_default() {
        let none = Annotations::new();
        let (s, note) = shutdown(&proxy(json!([])), &none).unwrap();
        assert_eq!((s.seconds, note), (ISTIO_DEFAULT_DRAIN, None));
        let yaml = annotations(&[(
            ISTIO_CONFIG,
            "holdApplicationUntilProxyStarts: true\nterminationDrainDuration: 45s\n",
        )]);
        assert_eq!(shutdown(&proxy(json!([])), &yaml).unwrap().0.seconds, 45);
        let flow = annotations(&[(ISTIO_CONFIG, "{ \"terminationDrainDuration\": \"1m\" }")]);
        assert_eq!(shutdown(&proxy(json!([])), &flow).unwrap().0.seconds, 60);
        let env = json!([{"name": "PROXY_CONFIG", "value": "{\"terminationDrainDuration\":\"20s\",\"concurrency\":2}"}]);
        assert_eq!(shutdown(&proxy(env.clone()), &none).unwrap().0.seconds, 20);
        // The pod's annotation wins, as it does for pilot-agent.
        assert_eq!(shutdown(&proxy(env), &yaml).unwrap().0.seconds, 45);
        let zero = json!([{"name": "EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "value": "true"},
                          {"name": "MINIMUM_DRAIN_DURATION", "value": "2s"}]);
        assert_eq!(shutdown(&proxy(zero), &yaml).unwrap().0.seconds, 2);
    }

    #[test]
    fn gracehooks_annotation_wins_and_a_bad_one_is_an_error() {
        let key = "gracehook.io/sidecar-shutdown.istio-proxy";
        let set = annotations(&[(key, "3s"), (ISTIO_CONFIG, "terminationDrainDuration: 45s")]);
        let (s, _) = shutdown(&proxy(json!([])), &set).unwrap();
        assert_eq!((s.seconds, s.source.as_str()), (3, key));
        let bad = annotations(&[(key, "soon")]);
        assert_eq!(shutdown(&proxy(json!([])), &bad).unwrap_err().key, key);
    }

    #[test]
    fn an_unreadable_istio_setting_is_a_note_not_an_error() {
        let bad = annotations(&[(ISTIO_CONFIG, "terminationDrainDuration: forever")]);
        let (s, note) = shutdown(&proxy(json!([])), &bad).unwrap();
        assert_eq!(s.seconds, ISTIO_DEFAULT_DRAIN);
        let note = note.unwrap();
        assert!(note.contains("\"forever\""), "{note}");
    }

    #[test]
    fn plain_waits_are_read_and_other_hooks_are_not() {
        let hook = |v: serde_json::Value| serde_json::from_value::<LifecycleHandler>(v).unwrap();
        assert_eq!(waits(&hook(json!({"sleep": {"seconds": 7}}))), Some(7));
        let linkerd = json!({"exec": {"command": ["/bin/sleep", "40"]}});
        assert_eq!(waits(&hook(linkerd)), Some(40));
        assert_eq!(
            waits(&hook(json!({"exec": {"command": ["sh", "-c", "sleep 9"]}}))),
            Some(9)
        );
        let other = json!({"exec": {"command": ["pilot-agent", "request", "POST", "drain"]}});
        assert_eq!(waits(&hook(other)), None);
    }

    #[test]
    fn linkerd_exits_at_once_unless_its_shutdown_grace_period_is_set() {
        let linkerd = |env: serde_json::Value| -> Container {
            serde_json::from_value(json!({"name": LINKERD_PROXY, "env": env})).unwrap()
        };
        let none = Annotations::new();
        assert_eq!(shutdown(&linkerd(json!([])), &none).unwrap().0.seconds, 0);
        let set = annotations(&[(LINKERD_GRACE, "30s")]);
        assert_eq!(shutdown(&linkerd(json!([])), &set).unwrap().0.seconds, 30);
        let env = json!([{"name": LINKERD_GRACE_ENV, "value": "25000ms"}]);
        assert_eq!(shutdown(&linkerd(env), &none).unwrap().0.seconds, 25);
    }

    #[test]
    fn other_sidecars_stop_at_once_unless_annotated() {
        let c: Container = serde_json::from_value(json!({"name": "log-shipper"})).unwrap();
        assert_eq!(shutdown(&c, &Annotations::new()).unwrap().0.seconds, 0);
    }

    #[test]
    fn native_sidecars_are_init_containers_that_restart_always() {
        let spec: PodSpec = serde_json::from_value(json!({
            "initContainers": [{"name": "setup"}, {"name": "istio-proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "web"}, {"name": "linkerd-proxy"}]
        }))
        .unwrap();
        let found: Vec<(&str, usize, SidecarKind)> = find(&spec, |n| n == LINKERD_PROXY)
            .iter()
            .map(|s| (s.container.name.as_str(), s.index, s.kind))
            .collect();
        assert_eq!(
            found,
            vec![
                ("istio-proxy", 1, SidecarKind::Native),
                ("linkerd-proxy", 1, SidecarKind::Classic)
            ]
        );
    }
}
