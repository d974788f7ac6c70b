//! The command line. Every flag also reads `GRACEHOOK_<FLAG>` so the same
//! binary is configured by env vars in a Deployment (twelve-factor).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::{parse_duration, parse_seconds};
use crate::serve::ServeConfig;
use crate::settings::{Defaults, Mode, PrestopStyle, Settings};
use crate::tls::TlsFiles;

#[derive(Debug, Parser)]
#[command(
    name = "gracehook",
    version,
    about = "Graceful shutdown for Kubernetes pods: injects preStop hooks and grace periods",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format: json for log pipelines, text for people; auto picks text on
    /// a terminal and json elsewhere (in a container).
    #[arg(long, global = true, env = "GRACEHOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the TLS admission endpoint.
    #[arg(long, env = "GRACEHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "GRACEHOOK_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,
    /// Serving certificate (PEM, leaf first, then intermediates); reloaded when it changes.
    /// Without it, a throw-away self-signed certificate for localhost is used.
    #[arg(long, env = "GRACEHOOK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long, env = "GRACEHOOK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) for client certificates: when set, clients without a
    /// certificate signed by it are refused at the handshake.
    #[arg(long, env = "GRACEHOOK_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "GRACEHOOK_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = exact_duration_arg)]
    pub tls_reload_interval: Duration,
    /// After SIGTERM: how long to keep serving with readiness failed, while
    /// endpoints and the API server stop sending to this replica.
    #[arg(long, env = "GRACEHOOK_SHUTDOWN_DELAY", default_value = "5s", value_parser = exact_duration_arg)]
    pub shutdown_delay: Duration,
    /// After the delay: how long requests in flight may take to finish.
    #[arg(long, env = "GRACEHOOK_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = exact_duration_arg)]
    pub shutdown_timeout: Duration,
    /// Watch Namespaces (get/list/watch) so that their gracehook.io/drain-delay,
    /// request-timeout and margin annotations become that namespace's defaults.
    #[arg(long, env = "GRACEHOOK_WATCH_NAMESPACES")]
    pub watch_namespaces: bool,
    /// Open connections at most; further clients wait in the listen backlog.
    #[arg(long, env = "GRACEHOOK_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    #[command(flatten)]
    pub planning: PlanningArgs,
}

impl ServeArgs {
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            tls: self
                .tls_cert
                .clone()
                .zip(self.tls_key.clone())
                .map(|(cert, key)| TlsFiles { cert, key }),
            client_ca: self.client_ca.clone(),
            tls_reload_interval: self.tls_reload_interval.max(Duration::from_millis(10)),
            shutdown_delay: self.shutdown_delay,
            shutdown_timeout: self.shutdown_timeout,
            max_connections: self.max_connections,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook: TLS on --listen, metrics and probes on --metrics-listen.
    Serve(ServeArgs),
    /// Answer one AdmissionReview (JSON) exactly as the webhook would.
    Review(ReviewArgs),
    /// Write a CA, a serving certificate for the webhook Service and the CA bundle.
    Certs(CertsArgs),
    /// Report which workloads of a live cluster lack a graceful shutdown.
    Audit(AuditArgs),
    /// Apply the plan offline to Pods and workloads (YAML or JSON).
    Mutate(MutateArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, env = "GRACEHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, env = "GRACEHOOK_CONTEXT")]
    pub context: Option<String>,
    /// Only this namespace.
    #[arg(
        short = 'n',
        long,
        env = "GRACEHOOK_AUDIT_NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// All namespaces (the default without -n).
    #[arg(short = 'A', long, env = "GRACEHOOK_ALL_NAMESPACES")]
    pub all_namespaces: bool,
    /// table for people, json for scripts.
    #[arg(short = 'o', long, env = "GRACEHOOK_AUDIT_OUTPUT", value_enum, default_value_t = AuditOutput::Table)]
    pub output: AuditOutput,
    /// Exit 1 when any workload is at risk (for CI).
    #[arg(long, env = "GRACEHOOK_FAIL_ON_RISK")]
    pub fail_on_risk: bool,
    #[command(flatten)]
    pub planning: PlanningArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditOutput {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, env = "GRACEHOOK_SERVICE", default_value = "gracehook")]
    pub service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, env = "GRACEHOOK_NAMESPACE", default_value = "gracehook-system")]
    pub namespace: String,
    /// Directory to write ca.crt, tls.crt, tls.key, ca-bundle.b64 and ca-bundle-patch.yaml to.
    #[arg(long, env = "GRACEHOOK_OUT", default_value = "certs")]
    pub out: PathBuf,
    /// Validity of the serving certificate, in days.
    #[arg(long, env = "GRACEHOOK_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// More names for the certificate (DNS names or IP addresses), comma-separated.
    #[arg(long, env = "GRACEHOOK_EXTRA_NAMES", value_delimiter = ',')]
    pub extra_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// AdmissionReview file, or - for standard input.
    #[arg(short = 'f', long = "filename", env = "GRACEHOOK_FILENAME")]
    pub file: PathBuf,
    /// The webhook path to answer as.
    #[arg(long, env = "GRACEHOOK_PATH", value_enum, default_value_t = PathArg::Mutate)]
    pub path: PathArg,
    #[command(flatten)]
    pub planning: PlanningArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    #[value(name = "/mutate")]
    Mutate,
    #[value(name = "/audit")]
    Audit,
}

#[derive(Debug, Args)]
pub struct MutateArgs {
    /// Manifest file (YAML, several documents allowed, or JSON), or - for standard input.
    #[arg(short = 'f', long = "filename", env = "GRACEHOOK_FILENAME")]
    pub file: PathBuf,
    /// enforce prints the mutated objects; audit prints what would change.
    #[arg(long, env = "GRACEHOOK_MODE", value_enum, default_value_t = ModeArg::Enforce)]
    pub mode: ModeArg,
    /// Output: the mutated objects, one JSON patch per document, or a
    /// termination timeline per pod.
    #[arg(short = 'o', long, env = "GRACEHOOK_OUTPUT", value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
    #[command(flatten)]
    pub planning: PlanningArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Enforce,
    Audit,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Audit => Mode::Audit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Yaml,
    Json,
    Patch,
    /// A termination timeline per pod.
    Explain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StyleArg {
    Sleep,
    Exec,
    /// sleep on Kubernetes 1.30 and newer, exec before: from --kube-version,
    /// or (serve) from the API server at start-up.
    Auto,
}

/// The flags that shape the plan, shared by `review`, `mutate` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct PlanningArgs {
    /// Drain delay when a pod does not set gracehook.io/drain-delay.
    #[arg(long, env = "GRACEHOOK_DEFAULT_DRAIN_DELAY", default_value = "5s", value_parser = duration_arg)]
    pub default_drain_delay: u64,
    /// Request timeout when a pod does not set gracehook.io/request-timeout.
    #[arg(long, env = "GRACEHOOK_DEFAULT_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration_arg)]
    pub default_request_timeout: u64,
    /// Margin when a pod does not set gracehook.io/margin.
    #[arg(long, env = "GRACEHOOK_DEFAULT_MARGIN", default_value = "5s", value_parser = duration_arg)]
    pub default_margin: u64,
    /// How a delay without drain command is run: the native sleep action
    /// (Kubernetes 1.30+) or exec of `sh -c "sleep d"`.
    #[arg(long, env = "GRACEHOOK_PRESTOP_STYLE", value_enum, default_value_t = StyleArg::Sleep)]
    pub prestop_style: StyleArg,
    /// Kubernetes version the pods are for (e.g. 1.29), for --prestop-style auto.
    #[arg(long, env = "GRACEHOOK_KUBE_VERSION", value_parser = kube_version_arg)]
    pub kube_version: Option<u32>,
    /// Largest grace period gracehook will set; pods asking for more are invalid.
    #[arg(long, env = "GRACEHOOK_MAX_GRACE", default_value = "3600s", value_parser = duration_arg)]
    pub max_grace: u64,
    /// Containers that never get a hook (comma-separated).
    #[arg(
        long,
        env = "GRACEHOOK_SKIP_CONTAINERS",
        value_delimiter = ',',
        default_value = "istio-proxy,linkerd-proxy"
    )]
    pub skip_containers: Vec<String>,
    /// Namespaces whose pods are never touched (comma-separated).
    #[arg(
        long,
        env = "GRACEHOOK_EXCLUDE_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system,kube-node-lease"
    )]
    pub exclude_namespaces: Vec<String>,
    /// Make /mutate behave like /audit: report, change nothing.
    #[arg(long, env = "GRACEHOOK_DRY_RUN")]
    pub dry_run: bool,
}

fn kube_version_arg(value: &str) -> Result<u32, String> {
    crate::cluster::parse_minor(value).ok_or_else(|| "expected a version such as 1.29".to_string())
}

fn exact_duration_arg(value: &str) -> Result<Duration, String> {
    parse_duration(value).map_err(|e| format!("{e} (for example 5s or 500ms)"))
}

fn duration_arg(value: &str) -> Result<u64, String> {
    parse_seconds(value).map_err(|e| format!("{e} (for example 30s or 1m30s)"))
}

impl PlanningArgs {
    /// `auto` without a version: `serve` asks the API server.
    pub fn needs_discovery(&self) -> bool {
        self.prestop_style == StyleArg::Auto && self.kube_version.is_none()
    }

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
                drain_delay: self.default_drain_delay,
                request_timeout: self.default_request_timeout,
                margin: self.default_margin,
            },
            prestop_style: match (self.prestop_style, self.kube_version) {
                (StyleArg::Sleep, _) => PrestopStyle::Sleep,
                (StyleArg::Exec, _) => PrestopStyle::Exec,
                (StyleArg::Auto, Some(minor)) => crate::cluster::style_for_minor(minor),
                // Unknown version: the SPEC's default. `serve` asks the API
                // server first (see `needs_discovery`).
                (StyleArg::Auto, None) => PrestopStyle::Sleep,
            },
            max_grace: self.max_grace,
            skip_containers: list(&self.skip_containers),
            exclude_namespaces: list(&self.exclude_namespaces),
            dry_run: self.dry_run,
        }
    }
}
