//! The flags that shape the plan, shared by `serve`, `review`, `mutate`,
//! `audit` and `policy`.

use clap::Args;

use gracehook::planner::Settings;
use gracehook::planner::duration::{Seconds, parse_seconds};
use gracehook::planner::settings::{
    DEFAULT_EXCLUDE_NAMESPACES, DEFAULT_MAX_CONTAINERS, DEFAULT_MAX_GRACE, DEFAULT_SKIP_CONTAINERS,
    Defaults, StyleChoice, parse_minor,
};

/// The flags that shape the plan, shared by `serve`, `review`, `mutate` and
/// `audit`. Their defaults are [`Settings::default`]'s.
#[derive(Debug, Clone, Args)]
pub struct PlanningArgs {
    /// Drain delay when a pod does not set gracehook.io/drain-delay.
    #[arg(long, env = "GRACEHOOK_DEFAULT_DRAIN_DELAY", default_value_t = Seconds(Defaults::BUILT_IN.drain_delay), value_parser = seconds_arg)]
    pub default_drain_delay: Seconds,
    /// Request timeout when a pod does not set gracehook.io/request-timeout.
    #[arg(long, env = "GRACEHOOK_DEFAULT_REQUEST_TIMEOUT", default_value_t = Seconds(Defaults::BUILT_IN.request_timeout), value_parser = seconds_arg)]
    pub default_request_timeout: Seconds,
    /// Margin when a pod does not set gracehook.io/margin.
    #[arg(long, env = "GRACEHOOK_DEFAULT_MARGIN", default_value_t = Seconds(Defaults::BUILT_IN.margin), value_parser = seconds_arg)]
    pub default_margin: Seconds,
    /// How a delay without drain command is run: the native sleep action
    /// (Kubernetes 1.30+) or exec of `sh -c "sleep d"`.
    #[arg(long, env = "GRACEHOOK_PRESTOP_STYLE", value_enum, default_value_t = StyleChoice::Sleep)]
    pub prestop_style: StyleChoice,
    /// Kubernetes version the pods are for (e.g. 1.29), for --prestop-style auto.
    #[arg(long, env = "GRACEHOOK_KUBE_VERSION", value_parser = kube_version_arg)]
    pub kube_version: Option<u32>,
    /// Largest grace period gracehook will set; pods asking for more are invalid.
    #[arg(long, env = "GRACEHOOK_MAX_GRACE", default_value_t = Seconds(DEFAULT_MAX_GRACE), value_parser = seconds_arg)]
    pub max_grace: Seconds,
    /// Classic sidecars (comma-separated): no drain hook of their own, a sleep that outlasts the application's drain.
    #[arg(long, env = "GRACEHOOK_SKIP_CONTAINERS", value_delimiter = ',', default_values_t = owned(DEFAULT_SKIP_CONTAINERS))]
    pub skip_containers: Vec<String>,
    /// Namespaces whose pods are never touched (comma-separated).
    #[arg(long, env = "GRACEHOOK_EXCLUDE_NAMESPACES", value_delimiter = ',', default_values_t = owned(DEFAULT_EXCLUDE_NAMESPACES))]
    pub exclude_namespaces: Vec<String>,
    /// Pods with more containers are left untouched, with a warning.
    #[arg(long, env = "GRACEHOOK_MAX_CONTAINERS", default_value_t = DEFAULT_MAX_CONTAINERS)]
    pub max_containers: usize,
    /// Make /mutate behave like /audit: report, change nothing.
    #[arg(long, env = "GRACEHOOK_DRY_RUN")]
    pub dry_run: bool,
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn kube_version_arg(value: &str) -> Result<u32, String> {
    parse_minor(value).ok_or_else(|| "expected a version such as 1.29".to_string())
}

fn seconds_arg(value: &str) -> Result<Seconds, String> {
    parse_seconds(value)
        .map(Seconds)
        .map_err(|e| format!("{e} (for example 30s or 1m30s)"))
}

impl PlanningArgs {
    /// `auto` without a version: `serve` asks the API server.
    pub fn needs_discovery(&self) -> bool {
        self.prestop_style == StyleChoice::Auto && self.kube_version.is_none()
    }

    /// The planner's settings from the flags.
    pub fn settings(&self) -> Settings {
        let list = |items: &[String]| {
            items
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Settings {
            defaults: Defaults {
                drain_delay: self.default_drain_delay.0,
                request_timeout: self.default_request_timeout.0,
                margin: self.default_margin.0,
            },
            prestop_style: self.prestop_style.resolve(self.kube_version),
            max_grace: self.max_grace.0,
            skip_containers: list(&self.skip_containers),
            exclude_namespaces: list(&self.exclude_namespaces),
            max_containers: self.max_containers,
            dry_run: self.dry_run,
        }
    }
}

/// Which cluster a command reads, as kubectl finds it; shared by `audit`
/// and `drains`.
#[derive(Debug, Clone, Args)]
pub struct KubeconfigArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, env = "GRACEHOOK_KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context.
    #[arg(long, env = "GRACEHOOK_CONTEXT")]
    pub context: Option<String>,
}
