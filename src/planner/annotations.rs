//! The `gracehook.io/*` annotations: their names, how each is read, and the
//! error that names the annotation, the bad value and a good example
//! (`docs/annotations.md`).

use std::collections::{BTreeMap, HashSet};

use thiserror::Error;

use super::duration::{DurationError, parse_seconds};
use super::settings::{Mode, NamespaceDefaults};

/// Keep serving this long after termination starts.
pub const DRAIN_DELAY: &str = "gracehook.io/drain-delay";
/// The longest a request in flight may take.
pub const REQUEST_TIMEOUT: &str = "gracehook.io/request-timeout";
/// Slack on top of the grace period.
pub const MARGIN: &str = "gracehook.io/margin";
/// A shell command run after the delay.
pub const DRAIN_COMMAND: &str = "gracehook.io/drain-command";
/// The containers to handle, comma-separated.
pub const CONTAINERS: &str = "gracehook.io/containers";
/// `"false"` opts a pod (or, with a suffix, a container) out.
pub const INJECT: &str = "gracehook.io/inject";
/// `audit` downgrades a pod to audit mode; also the namespace label.
pub const MODE: &str = "gracehook.io/mode";
/// What gracehook applied, written by gracehook.
pub const STATUS: &str = "gracehook.io/status";
/// How long a sidecar takes to exit after SIGTERM; per container only.
pub const SIDECAR_SHUTDOWN: &str = "gracehook.io/sidecar-shutdown";
/// Set by the kubelet on the API mirror of a static pod; such pods are read-only.
pub const MIRROR: &str = "kubernetes.io/config.mirror";

const PREFIX: &str = "gracehook.io/";
/// Keys that take a `.<container>` suffix.
const PER_CONTAINER: &[&str] = &[DRAIN_DELAY, REQUEST_TIMEOUT, DRAIN_COMMAND, INJECT];
const POD_LEVEL: &[&str] = &[
    DRAIN_DELAY,
    REQUEST_TIMEOUT,
    MARGIN,
    DRAIN_COMMAND,
    CONTAINERS,
    INJECT,
    MODE,
    STATUS,
];

/// A pod's (or a namespace's) annotations, as k8s-openapi holds them.
pub type Annotations = BTreeMap<String, String>;

/// An annotation whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid annotation {key}: {value:?}: {reason}; a valid example is {key}: \"{example}\"")]
pub struct AnnotationError {
    /// The annotation's key.
    pub key: String,
    /// The value that cannot be used.
    pub value: String,
    /// Why.
    pub reason: String,
    /// A value that would work.
    pub example: &'static str,
}

impl AnnotationError {
    fn new(key: &str, value: &str, reason: impl ToString, example: &'static str) -> Self {
        AnnotationError {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
            example,
        }
    }
}

/// The key of a per-container override, `gracehook.io/drain-delay.web`.
pub fn per_container(key: &str, container: &str) -> String {
    format!("{key}.{container}")
}

/// Whether any per-container key is present. Most pods have none, and then
/// no key needs to be built for each container.
pub fn has_per_container_keys(annotations: &Annotations) -> bool {
    annotations.keys().any(|key| {
        PER_CONTAINER.iter().any(|base| {
            key.strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    })
}

/// The per-container annotations of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOverrides {
    /// `gracehook.io/inject.<container>`.
    pub inject: Option<bool>,
    /// `gracehook.io/drain-delay.<container>`.
    pub drain_delay: Option<u64>,
    /// `gracehook.io/request-timeout.<container>`.
    pub request_timeout: Option<u64>,
    /// `gracehook.io/drain-command.<container>`.
    pub drain_command: Option<String>,
}

/// Reads the per-container annotations of `container`.
pub fn container_overrides(
    annotations: &Annotations,
    container: &str,
) -> Result<ContainerOverrides, AnnotationError> {
    Ok(ContainerOverrides {
        inject: boolean(annotations, &per_container(INJECT, container))?,
        drain_delay: duration(annotations, &per_container(DRAIN_DELAY, container))?,
        request_timeout: duration(annotations, &per_container(REQUEST_TIMEOUT, container))?,
        drain_command: command(annotations, &per_container(DRAIN_COMMAND, container))?,
    })
}

/// A duration annotation, in whole seconds rounded up.
pub fn duration(annotations: &Annotations, key: &str) -> Result<Option<u64>, AnnotationError> {
    match annotations.get(key) {
        None => Ok(None),
        Some(value) => parse_seconds(value)
            .map(Some)
            .map_err(|e: DurationError| AnnotationError::new(key, value, e, example_for(key))),
    }
}

/// `"true"` / `"false"`, as Kubernetes writes booleans in annotations.
pub fn boolean(annotations: &Annotations, key: &str) -> Result<Option<bool>, AnnotationError> {
    match annotations.get(key).map(|v| v.trim()) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(AnnotationError::new(
            key,
            other,
            "must be \"true\" or \"false\"",
            "false",
        )),
    }
}

/// `gracehook.io/mode` on a pod: it can only make things *less* invasive.
pub fn mode(annotations: &Annotations) -> Result<Option<Mode>, AnnotationError> {
    match annotations.get(MODE).map(|v| v.trim()) {
        None => Ok(None),
        Some("audit") => Ok(Some(Mode::Audit)),
        Some("enforce") => Ok(Some(Mode::Enforce)),
        Some(other) => Err(AnnotationError::new(
            MODE,
            other,
            "must be \"audit\" or \"enforce\"",
            "audit",
        )),
    }
}

/// A drain command; empty is invalid, and so is one whose quoting no shell
/// accepts ([`quoting_closed`]).
pub fn command(annotations: &Annotations, key: &str) -> Result<Option<String>, AnnotationError> {
    let example = "apachectl -k graceful-stop";
    match annotations.get(key) {
        None => Ok(None),
        Some(value) if value.trim().is_empty() => Err(AnnotationError::new(
            key,
            value,
            "the command is empty (remove the annotation to run no command)",
            example,
        )),
        Some(value) if !quoting_closed(value) => {
            Err(AnnotationError::new(key, value, UNCLOSED_QUOTING, example))
        }
        Some(value) => Ok(Some(value.trim().to_string())),
    }
}

/// Why a command fails [`quoting_closed`].
pub const UNCLOSED_QUOTING: &str =
    "no shell runs it: a quote is left open, or it ends in a lone backslash";

/// The RE2 form of [`quoting_closed`], for the admission policies' CEL
/// `matches()`: a command made only of plain characters, escaped
/// characters, closed quotes and `#` comments.
pub const CLOSED_QUOTING: &str =
    r#"^([^'"\\#]|\\(.|\n)|'[^']*'|"([^"\\]|\\(.|\n))*"|#[^\n]*(\n|$))*$"#;

/// False when no shell accepts `command`: a quote is left open, or it ends
/// in a lone backslash. A deliberately small check, so that it never
/// refuses a command a shell would run: `#` starts a comment wherever it
/// stands outside quotes, and anything else a shell might reject is the
/// shell's to report, in a hook that still waits its delay and timeout.
pub fn quoting_closed(command: &str) -> bool {
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        let closed = match c {
            '\\' => chars.next().is_some(),
            '\'' => chars.any(|c| c == '\''),
            '"' => closes_double_quote(&mut chars),
            '#' if !chars.any(|c| c == '\n') => return true,
            _ => true,
        };
        if !closed {
            return false;
        }
    }
    true
}

/// Consumes a double-quoted string's rest; whether its closing quote came.
fn closes_double_quote(chars: &mut std::str::Chars<'_>) -> bool {
    while let Some(c) = chars.next() {
        match c {
            '"' => return true,
            '\\' if chars.next().is_none() => return false,
            _ => {}
        }
    }
    false
}

/// `gracehook.io/containers: "web, api"`.
pub fn container_list(annotations: &Annotations) -> Result<Option<Vec<String>>, AnnotationError> {
    let Some(value) = annotations.get(CONTAINERS) else {
        return Ok(None);
    };
    let names: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(AnnotationError::new(
            CONTAINERS,
            value,
            "names no container",
            "web,worker",
        ));
    }
    Ok(Some(names))
}

/// `gracehook.io/*` keys that mean nothing to gracehook — most likely typos,
/// which would otherwise be silently ignored. `sidecars` are the names
/// `gracehook.io/sidecar-shutdown.<container>` may take.
pub fn unknown_keys<'a>(
    annotations: &'a Annotations,
    containers: &HashSet<&str>,
    sidecars: &HashSet<&str>,
) -> Vec<&'a str> {
    annotations
        .keys()
        .filter(|k| k.starts_with(PREFIX))
        .filter(|k| !is_known(k, containers, sidecars))
        .map(String::as_str)
        .collect()
}

fn is_known(key: &str, containers: &HashSet<&str>, sidecars: &HashSet<&str>) -> bool {
    if POD_LEVEL.contains(&key) {
        return true;
    }
    let names = |base: &str, names: &HashSet<&str>| {
        key.strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|name| names.contains(name))
    };
    PER_CONTAINER.iter().any(|base| names(base, containers)) || names(SIDECAR_SHUTDOWN, sidecars)
}

/// The defaults one Namespace's annotations set. An invalid value is ignored
/// (the namespace watch logs it): a typo on a namespace must not block its pods.
pub fn namespace_defaults(annotations: &Annotations) -> NamespaceDefaults {
    let read = |key| duration(annotations, key).ok().flatten();
    NamespaceDefaults {
        drain_delay: read(DRAIN_DELAY),
        request_timeout: read(REQUEST_TIMEOUT),
        margin: read(MARGIN),
    }
}

/// The namespace-level keys.
pub const NAMESPACE_LEVEL: [&str; 3] = [DRAIN_DELAY, REQUEST_TIMEOUT, MARGIN];

fn example_for(key: &str) -> &'static str {
    if key.starts_with(REQUEST_TIMEOUT) {
        "30s"
    } else {
        "5s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn error_names_key_value_and_example() {
        let a = annotations(&[(DRAIN_DELAY, "soon")]);
        let err = duration(&a, DRAIN_DELAY).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("gracehook.io/drain-delay"), "{text}");
        assert!(text.contains("\"soon\""), "{text}");
        assert!(text.contains("gracehook.io/drain-delay: \"5s\""), "{text}");
        let a = annotations(&[(REQUEST_TIMEOUT, "-1s")]);
        let text = duration(&a, REQUEST_TIMEOUT).unwrap_err().to_string();
        assert!(text.contains("negative"), "{text}");
        assert!(text.contains("\"30s\""), "{text}");
    }

    #[test]
    fn booleans_modes_and_lists() {
        let a = annotations(&[
            (INJECT, "false"),
            (MODE, "audit"),
            (CONTAINERS, " web, ,api "),
        ]);
        assert_eq!(boolean(&a, INJECT), Ok(Some(false)));
        assert_eq!(mode(&a), Ok(Some(Mode::Audit)));
        assert_eq!(
            container_list(&a),
            Ok(Some(vec!["web".to_string(), "api".to_string()]))
        );
        let bad = annotations(&[(INJECT, "no"), (MODE, "strict"), (CONTAINERS, " , ")]);
        assert_eq!(boolean(&bad, INJECT).unwrap_err().key, INJECT);
        assert_eq!(mode(&bad).unwrap_err().value, "strict");
        assert_eq!(container_list(&bad).unwrap_err().key, CONTAINERS);
        let empty_cmd = annotations(&[(DRAIN_COMMAND, "  ")]);
        assert!(command(&empty_cmd, DRAIN_COMMAND).is_err());
    }

    #[test]
    fn unknown_keys_are_reported_but_known_ones_are_not() {
        let a = annotations(&[
            ("gracehook.io/drain-dealy", "3s"),
            ("gracehook.io/drain-delay.web", "3s"),
            ("gracehook.io/drain-delay.ghost", "3s"),
            ("gracehook.io/margin.web", "3s"),
            ("gracehook.io/sidecar-shutdown.istio-proxy", "3s"),
            ("gracehook.io/sidecar-shutdown.web", "3s"),
            (DRAIN_DELAY, "3s"),
            ("example.com/other", "x"),
        ]);
        assert_eq!(
            unknown_keys(&a, &HashSet::from(["web"]), &HashSet::from(["istio-proxy"])),
            vec![
                "gracehook.io/drain-dealy",
                "gracehook.io/drain-delay.ghost",
                "gracehook.io/margin.web",
                "gracehook.io/sidecar-shutdown.web"
            ]
        );
    }

    #[test]
    fn namespace_annotations_become_defaults_and_invalid_ones_are_ignored() {
        let a = annotations(&[
            (DRAIN_DELAY, "2s"),
            (REQUEST_TIMEOUT, "soon"),
            (MARGIN, "1m"),
        ]);
        assert_eq!(
            namespace_defaults(&a),
            NamespaceDefaults {
                drain_delay: Some(2),
                request_timeout: None,
                margin: Some(60),
            }
        );
    }
}
