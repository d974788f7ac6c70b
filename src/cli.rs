//! The command line. Every flag also reads `GRACEHOOK_<FLAG>` so the same
//! binary is configured by env vars in a Deployment (twelve-factor).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_seconds;
use crate::settings::{Defaults, Mode, PrestopStyle, Settings};

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

    /// Log format: text for people, json for log pipelines.
    #[arg(long, global = true, env = "GRACEHOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer one AdmissionReview (JSON) exactly as the webhook would.
    Review(ReviewArgs),
    /// Apply the plan offline to Pods and workloads (YAML or JSON).
    Mutate(MutateArgs),
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
    /// Output: the mutated objects, or one JSON patch per document.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StyleArg {
    Sleep,
    Exec,
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

fn duration_arg(value: &str) -> Result<u64, String> {
    parse_seconds(value).map_err(|e| format!("{e} (for example 30s or 1m30s)"))
}

impl PlanningArgs {
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
            prestop_style: match self.prestop_style {
                StyleArg::Sleep => PrestopStyle::Sleep,
                StyleArg::Exec => PrestopStyle::Exec,
            },
            max_grace: self.max_grace,
            skip_containers: list(&self.skip_containers),
            exclude_namespaces: list(&self.exclude_namespaces),
            dry_run: self.dry_run,
        }
    }
}
