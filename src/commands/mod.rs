//! The command line (`docs/cli.md`): one small module per subcommand, and
//! the flags they share. Every flag also reads an environment variable,
//! `GRACEHOOK_<FLAG>` (dashes as underscores), so that the same binary is
//! configured by env vars in a Deployment; the two flags that `audit` shares
//! by name with `certs` and `mutate` but not by meaning, `--namespace` and
//! `--output`, read `GRACEHOOK_AUDIT_NAMESPACE` and `GRACEHOOK_AUDIT_OUTPUT`.

mod audit;
mod certs;
pub mod logging;
mod mutate;
mod policy;
mod review;
mod serve;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use thiserror::Error;

use gracehook::admission::AdmissionError;
use gracehook::cluster::ClusterError;
use gracehook::planner::duration::{Seconds, parse_seconds};
use gracehook::planner::settings::{
    DEFAULT_EXCLUDE_NAMESPACES, DEFAULT_MAX_GRACE, DEFAULT_SKIP_CONTAINERS, Defaults, StyleChoice,
    parse_minor,
};
use gracehook::planner::{Settings, manifests::ManifestError};
use gracehook::server::ServeError;
use gracehook::server::tls::certs::CertsError;

pub use audit::AuditArgs;
pub use certs::CertsArgs;
pub use logging::LogFormat;
pub use mutate::MutateArgs;
pub use policy::PolicyArgs;
pub use review::ReviewArgs;
pub use serve::ServeArgs;

/// `gracehook`: the parsed command line.
#[derive(Debug, Parser)]
#[command(
    name = "gracehook",
    version,
    about = "Graceful shutdown for Kubernetes pods: injects preStop hooks and grace periods",
    propagate_version = true,
    after_help = "Examples:\n  # What the workloads of a cluster lack, and what gracehook would set\n  {bin} audit -A\n\n  # The termination timeline of a manifest's pods, as gracehook leaves them\n  {bin} mutate -f deploy.yaml -o explain\n\n  # A CA and a serving certificate for the webhook's Service\n  {bin} certs --out certs"
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,

    /// Log format: json for log pipelines, text for people; auto picks text on
    /// a terminal and json elsewhere (in a container).
    #[arg(long, global = true, env = "GRACEHOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

/// The subcommands.
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
    /// Print the plan as admission policies the API server runs itself, no webhook.
    Policy(PolicyArgs),
}

/// Installed as `kubectl-gracehook` on the PATH, the binary is a kubectl
/// plugin, and its help and usage say `kubectl gracehook`.
pub const PLUGIN_NAME: &str = "kubectl-gracehook";

impl Cli {
    /// The command line of this process, parsed under the name it was run
    /// as: `gracehook`, or `kubectl gracehook` as a kubectl plugin.
    /// Exits (with clap's message) on a usage error.
    pub fn from_args() -> Cli {
        let invoked_as = std::env::args_os()
            .next()
            .map(std::path::PathBuf::from)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let bin = if invoked_as.as_deref() == Some(PLUGIN_NAME) {
            "kubectl gracehook"
        } else {
            "gracehook"
        };
        let after_help = Cli::command()
            .get_after_help()
            .map(|h| h.to_string().replace("{bin}", bin))
            .unwrap_or_default();
        let matches = Cli::command()
            .bin_name(bin)
            .after_help(after_help)
            .get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

impl Command {
    /// Whether the command's logs go to stdout (`serve`, as containers
    /// should) rather than stderr (the others keep stdout for their output).
    pub fn logs_to_stdout(&self) -> bool {
        matches!(self, Command::Serve(_))
    }
}

/// Runs the parsed command.
pub fn run(command: Command) -> Result<(), CommandError> {
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Review(args) => review::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Mutate(args) => mutate::run(args),
        Command::Policy(args) => policy::run(args),
    }
}

/// Why a command failed; every one exits 1 (`docs/cli.md`, "Exit codes").
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// An input file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file, or `standard input`.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An output file cannot be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Standard output is gone, or the output does not encode.
    #[error("writing the output: {0}")]
    Output(String),
    /// The async runtime did not start.
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Manifests that cannot be planned (every one is listed).
    #[error("{}", .0.join("\nerror: "))]
    Manifests(Vec<String>),
    /// An AdmissionReview that cannot be answered.
    #[error("{file}: {source}")]
    Review {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: AdmissionError,
    },
    /// The server stopped with an error.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The cluster could not be read.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Certificates could not be made.
    #[error(transparent)]
    Certs(#[from] CertsError),
    /// `audit --fail-on-risk` found workloads at risk.
    #[error("{0}")]
    AtRisk(String),
}

impl From<std::io::Error> for CommandError {
    fn from(e: std::io::Error) -> Self {
        CommandError::Output(e.to_string())
    }
}

impl From<serde_json::Error> for CommandError {
    fn from(e: serde_json::Error) -> Self {
        CommandError::Output(e.to_string())
    }
}

impl From<ManifestError> for CommandError {
    fn from(e: ManifestError) -> Self {
        CommandError::Manifests(vec![e.to_string()])
    }
}

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
    /// Containers that never get a hook (comma-separated).
    #[arg(long, env = "GRACEHOOK_SKIP_CONTAINERS", value_delimiter = ',', default_values_t = owned(DEFAULT_SKIP_CONTAINERS))]
    pub skip_containers: Vec<String>,
    /// Namespaces whose pods are never touched (comma-separated).
    #[arg(long, env = "GRACEHOOK_EXCLUDE_NAMESPACES", value_delimiter = ',', default_values_t = owned(DEFAULT_EXCLUDE_NAMESPACES))]
    pub exclude_namespaces: Vec<String>,
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
            dry_run: self.dry_run,
        }
    }
}

/// kube, tokio-rustls and rcgen could each bring a crypto provider: install
/// exactly one, before anything uses TLS.
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let _ = provider.as_ref().clone().install_default();
    provider
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, CommandError> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(CommandError::Runtime)
}

/// A file's text, or standard input's for `-`.
fn read_input(path: &Path) -> Result<String, CommandError> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    result.map_err(|source| CommandError::Read {
        path: if path.as_os_str() == "-" {
            "standard input".to_string()
        } else {
            path.display().to_string()
        },
        source,
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The rule of the module header, checked on every flag of every command.
    #[test]
    fn every_flag_reads_its_documented_environment_variable() {
        let cli = Cli::command();
        let mut checked = 0;
        for command in cli.get_subcommands() {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if matches!(long, "help" | "version") {
                    continue;
                }
                let flag = long.to_uppercase().replace('-', "_");
                let want = match (command.get_name(), long) {
                    ("audit", "namespace" | "output") => format!("GRACEHOOK_AUDIT_{flag}"),
                    ("policy", "output") => format!("GRACEHOOK_POLICY_{flag}"),
                    _ => format!("GRACEHOOK_{flag}"),
                };
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert_eq!(
                    env.as_deref(),
                    Some(want.as_str()),
                    "{} --{long}",
                    command.get_name()
                );
                checked += 1;
            }
        }
        assert!(checked > 30, "only {checked} flags checked");
    }

    #[test]
    fn planning_defaults_are_the_settings_defaults() {
        let cli = Cli::try_parse_from(["gracehook", "mutate", "-f", "x.yaml"]).expect("parses");
        let Command::Mutate(args) = cli.command else {
            panic!("not mutate")
        };
        assert_eq!(args.planning.settings(), Settings::default());
    }
}
