//! What the operator configured: the defaults and policies the planner applies.
//! Plain data with its defaults in one place: the command line
//! (`commands::PlanningArgs`) shows these values as its defaults, and tests
//! build [`Settings`] directly. See `docs/cli.md`.

use std::collections::BTreeSet;

/// How a delay without a drain command is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrestopStyle {
    /// `preStop.sleep` — run by the kubelet, needs nothing in the image.
    #[default]
    Sleep,
    /// `preStop.exec: ["sh", "-c", "sleep d"]` — for clusters older than 1.30.
    Exec,
}

impl PrestopStyle {
    /// The name used by `--prestop-style` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PrestopStyle::Sleep => "sleep",
            PrestopStyle::Exec => "exec",
        }
    }

    /// The style for a cluster of Kubernetes minor version `minor`: the native
    /// `sleep` action is on by default from 1.30 ([`SLEEP_ACTION_SINCE`]).
    pub fn for_minor(minor: u32) -> PrestopStyle {
        if minor >= SLEEP_ACTION_SINCE {
            PrestopStyle::Sleep
        } else {
            PrestopStyle::Exec
        }
    }
}

/// The native `sleep` action is on by default from this minor version.
pub const SLEEP_ACTION_SINCE: u32 = 30;

/// The operator's `--prestop-style`: a style, or `auto` to choose one from
/// the Kubernetes version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StyleChoice {
    /// The native sleep action.
    #[default]
    Sleep,
    /// `sh -c "sleep d"`.
    Exec,
    /// sleep on Kubernetes 1.30 and newer, exec before: from --kube-version,
    /// or (serve) from the API server at start-up.
    Auto,
}

impl StyleChoice {
    /// The style to write, given the cluster's minor version when known.
    /// `auto` with no version known is `sleep`, the documented default.
    pub fn resolve(self, minor: Option<u32>) -> PrestopStyle {
        match (self, minor) {
            (StyleChoice::Sleep, _) | (StyleChoice::Auto, None) => PrestopStyle::Sleep,
            (StyleChoice::Exec, _) => PrestopStyle::Exec,
            (StyleChoice::Auto, Some(minor)) => PrestopStyle::for_minor(minor),
        }
    }
}

/// `"1.29"`, `"v1.30.2"`, `"30+"` (a minor as some providers report it) -> the minor.
pub fn parse_minor(version: &str) -> Option<u32> {
    let version = version.trim().trim_start_matches('v');
    let minor = match version.split_once('.') {
        Some(("1", rest)) => rest.split('.').next()?,
        Some(_) => return None,
        None => version,
    };
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether gracehook changes pods or only says what it would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Patch the pod.
    Enforce,
    /// Change nothing; report what would change.
    Audit,
}

impl Mode {
    /// The word used in labels, annotations, flags and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }

    /// The mode applied to a pod that asks for `requested` with
    /// `gracehook.io/mode`: a pod may downgrade itself to audit, never
    /// upgrade.
    pub fn downgraded_by(self, requested: Option<Mode>) -> Mode {
        if requested == Some(Mode::Audit) {
            Mode::Audit
        } else {
            self
        }
    }
}

/// The three durations that make up a grace period, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// How long a pod keeps serving after termination starts.
    pub drain_delay: u64,
    /// The longest a request in flight may take.
    pub request_timeout: u64,
    /// Slack on top.
    pub margin: u64,
}

impl Defaults {
    /// The defaults of the flags (`docs/annotations.md`).
    pub const BUILT_IN: Defaults = Defaults {
        drain_delay: 5,
        request_timeout: 30,
        margin: 5,
    };

    /// The defaults that apply in a namespace: its annotations over the
    /// flags, less those that do not fit `max_grace`
    /// ([`NamespaceDefaults::fitting`]).
    pub fn overlaid(self, ns: &NamespaceDefaults, max_grace: u64) -> Defaults {
        let ns = ns.fitting(self, max_grace);
        Defaults {
            drain_delay: ns.drain_delay.unwrap_or(self.drain_delay),
            request_timeout: ns.request_timeout.unwrap_or(self.request_timeout),
            margin: ns.margin.unwrap_or(self.margin),
        }
    }

    /// The largest value a namespace may give each of the three durations:
    /// what `max_grace` leaves after the flags' other two; `None` where
    /// nothing does ([`NamespaceDefaults::fitting`]; the admission policies
    /// write the same bounds in CEL).
    pub fn namespace_room(self, max_grace: u64) -> NamespaceDefaults {
        let room = |a: u64, b: u64| max_grace.checked_sub(a.saturating_add(b));
        NamespaceDefaults {
            drain_delay: room(self.request_timeout, self.margin),
            request_timeout: room(self.drain_delay, self.margin),
            margin: room(self.drain_delay, self.request_timeout),
        }
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults::BUILT_IN
    }
}

/// Namespace-level overrides of [`Defaults`] (annotations on the Namespace).
/// `None` means "use the server's flag".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceDefaults {
    /// `gracehook.io/drain-delay` on the Namespace.
    pub drain_delay: Option<u64>,
    /// `gracehook.io/request-timeout` on the Namespace.
    pub request_timeout: Option<u64>,
    /// `gracehook.io/margin` on the Namespace.
    pub margin: Option<u64>,
}

impl NamespaceDefaults {
    /// These values less each one that, alone over the flags' `defaults`,
    /// gives a plain pod a grace period above `max_grace`: such a value
    /// would deny every pod of the namespace, and a typo on a namespace
    /// must not block its pods (`docs/annotations.md`, "Namespace
    /// defaults"). Two values that each fit but not together still make
    /// plain pods invalid, naming the pod's largest part.
    pub fn fitting(self, defaults: Defaults, max_grace: u64) -> NamespaceDefaults {
        let room = defaults.namespace_room(max_grace);
        let fits =
            |value: Option<u64>, room: Option<u64>| value.filter(|v| room.is_some_and(|r| *v <= r));
        NamespaceDefaults {
            drain_delay: fits(self.drain_delay, room.drain_delay),
            request_timeout: fits(self.request_timeout, room.request_timeout),
            margin: fits(self.margin, room.margin),
        }
    }
}

/// Mesh proxies: they have their own drain logic and must outlive the
/// application container.
pub const DEFAULT_SKIP_CONTAINERS: &[&str] = &["istio-proxy", "linkerd-proxy"];
/// Namespaces whose pods are never touched, whatever their labels.
pub const DEFAULT_EXCLUDE_NAMESPACES: &[&str] = &["kube-system", "kube-node-lease"];
/// The largest grace period gracehook sets, in seconds.
pub const DEFAULT_MAX_GRACE: u64 = 3600;
/// `--max-containers`: far above any real pod, far below what a 3 MiB
/// request can hold.
pub const DEFAULT_MAX_CONTAINERS: usize = 1000;

/// Everything the planner needs besides the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The flags' defaults for the three durations.
    pub defaults: Defaults,
    /// How a delay without a drain command is written.
    pub prestop_style: PrestopStyle,
    /// A computed grace period above this is refused as a likely typo
    /// (`request-timeout: 30m` meant as seconds, say).
    pub max_grace: u64,
    /// Classic sidecars: service-mesh proxies and the like, which must
    /// outlive the application's drain; they get no drain hook of their own,
    /// only a `sleep` as long as it (`docs/plan.md`, "Sidecars and mesh
    /// proxies").
    pub skip_containers: BTreeSet<String>,
    /// Namespaces whose pods are left alone even when the webhook is called.
    pub exclude_namespaces: BTreeSet<String>,
    /// Pods with more containers are left untouched, with a warning: no
    /// real pod has thousands, and planning and patching them is work an
    /// admission should not do.
    pub max_containers: usize,
    /// Makes `/mutate` behave like `/audit`.
    pub dry_run: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        Settings {
            defaults: Defaults::BUILT_IN,
            prestop_style: PrestopStyle::default(),
            max_grace: DEFAULT_MAX_GRACE,
            skip_containers: set(DEFAULT_SKIP_CONTAINERS),
            exclude_namespaces: set(DEFAULT_EXCLUDE_NAMESPACES),
            max_containers: DEFAULT_MAX_CONTAINERS,
            dry_run: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions_as_clusters_report_them() {
        assert_eq!(parse_minor("1.29"), Some(29));
        assert_eq!(parse_minor("v1.30.2"), Some(30));
        assert_eq!(parse_minor("v1.37.2-eks-1234"), Some(37));
        assert_eq!(parse_minor("31+"), Some(31));
        assert_eq!(parse_minor("2.1"), None);
        assert_eq!(parse_minor("latest"), None);
        assert_eq!(PrestopStyle::for_minor(29), PrestopStyle::Exec);
        assert_eq!(PrestopStyle::for_minor(30), PrestopStyle::Sleep);
    }

    #[test]
    fn auto_resolves_from_the_version_and_defaults_to_sleep() {
        assert_eq!(StyleChoice::Auto.resolve(None), PrestopStyle::Sleep);
        assert_eq!(StyleChoice::Auto.resolve(Some(29)), PrestopStyle::Exec);
        assert_eq!(StyleChoice::Exec.resolve(Some(37)), PrestopStyle::Exec);
        assert_eq!(StyleChoice::Sleep.resolve(Some(20)), PrestopStyle::Sleep);
    }
}
