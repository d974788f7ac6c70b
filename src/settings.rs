//! What the operator configured: the defaults and policies the planner applies.
//! Plain data, filled from the command line in `cli` and from tests directly.

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
    pub fn as_str(self) -> &'static str {
        match self {
            PrestopStyle::Sleep => "sleep",
            PrestopStyle::Exec => "exec",
        }
    }
}

/// Whether gracehook changes pods or only says what it would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// The three durations that make up a grace period, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub drain_delay: u64,
    pub request_timeout: u64,
    pub margin: u64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            drain_delay: 5,
            request_timeout: 30,
            margin: 5,
        }
    }
}

/// Namespace-level overrides of [`Defaults`] (annotations on the Namespace).
/// `None` means "use the server's flag".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceDefaults {
    pub drain_delay: Option<u64>,
    pub request_timeout: Option<u64>,
    pub margin: Option<u64>,
}

impl Defaults {
    /// The defaults that apply in a namespace: its annotations over the flags.
    pub fn overlaid(self, ns: &NamespaceDefaults) -> Defaults {
        Defaults {
            drain_delay: ns.drain_delay.unwrap_or(self.drain_delay),
            request_timeout: ns.request_timeout.unwrap_or(self.request_timeout),
            margin: ns.margin.unwrap_or(self.margin),
        }
    }
}

pub const DEFAULT_SKIP_CONTAINERS: &[&str] = &["istio-proxy", "linkerd-proxy"];
pub const DEFAULT_EXCLUDE_NAMESPACES: &[&str] = &["kube-system", "kube-node-lease"];
pub const DEFAULT_MAX_GRACE: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub defaults: Defaults,
    pub prestop_style: PrestopStyle,
    /// A computed grace period above this is refused as a likely typo
    /// (`request-timeout: 30m` meant as seconds, say).
    pub max_grace: u64,
    /// Containers that never get a hook: service-mesh proxies, which have their
    /// own drain logic and must outlive the application container.
    pub skip_containers: BTreeSet<String>,
    pub exclude_namespaces: BTreeSet<String>,
    /// Makes `/mutate` behave like `/audit`.
    pub dry_run: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            defaults: Defaults::default(),
            prestop_style: PrestopStyle::default(),
            max_grace: DEFAULT_MAX_GRACE,
            skip_containers: DEFAULT_SKIP_CONTAINERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            exclude_namespaces: DEFAULT_EXCLUDE_NAMESPACES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            dry_run: false,
        }
    }
}
