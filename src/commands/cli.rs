//! The command line's shape: [`Cli`] and its subcommands. Every flag also
//! reads an environment variable, `GRACEHOOK_<FLAG>` (dashes as
//! underscores), so that the same binary is configured by env vars in a
//! Deployment; the flags that `audit` and `policy` share by name with other
//! commands but not by meaning, `--namespace` and `--output`, read
//! `GRACEHOOK_AUDIT_*` and `GRACEHOOK_POLICY_OUTPUT`.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use super::audit::{self, AuditArgs};
use super::certs::{self, CertsArgs};
use super::drains::{self, DrainsArgs};
use super::error::CommandError;
use super::logging::LogFormat;
use super::mutate::{self, MutateArgs};
use super::observe;
use super::policy::{self, PolicyArgs};
use super::review::{self, ReviewArgs};
use super::serve::{self, ServeArgs};
use gracehook::observe::ObserveArgs;

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
    /// Watch patched pods terminate and report how their drains ended (leader-elected).
    Observe(ObserveArgs),
    /// Per workload, how its pods' drains ended, from the observer's Events.
    Drains(DrainsArgs),
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
        matches!(self, Command::Serve(_) | Command::Observe(_))
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
        Command::Observe(args) => observe::run(args),
        Command::Drains(args) => drains::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use gracehook::planner::Settings;

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
                    ("drains", "namespace" | "output") => format!("GRACEHOOK_DRAINS_{flag}"),
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

/// `docs/cli.md`'s flag tables, checked against the parser so they cannot go
/// stale: every flag of a group is a row, with its env var and its default.
#[cfg(test)]
mod documented_flags {
    use std::collections::BTreeMap;

    use clap::{Args, CommandFactory};

    use super::Cli;
    use crate::commands::args::PlanningArgs;

    const CLI_MD: &str = include_str!("../../docs/cli.md");

    /// What the docs say of a flag: its env var and its default.
    type Rows = BTreeMap<String, (String, String)>;

    fn ticked(cell: &str) -> Vec<&str> {
        cell.split('`').skip(1).step_by(2).collect()
    }

    /// The rows of the table under `heading`.
    fn table(heading: &str) -> Rows {
        let section = CLI_MD
            .split("\n## ")
            .find(|s| s.starts_with(heading))
            .unwrap_or_else(|| panic!("docs/cli.md has no section {heading:?}"));
        let mut rows = Rows::new();
        for line in section.lines().filter(|l| l.starts_with("| `--")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let flags = ticked(cells[0]);
            let flags = flags.iter().filter(|t| t.starts_with("--"));
            let envs = ticked(cells[1]);
            let default = ticked(cells[2]).first().map_or_else(
                || cells[2].split([' ', ';', ':']).next().unwrap().to_string(),
                |t| t.to_string(),
            );
            for (flag, env) in flags.zip(envs) {
                let name = flag.trim_start_matches("--").split(' ').next().unwrap();
                let env = env.trim_end_matches("=true");
                rows.insert(name.to_string(), (env.to_string(), default.clone()));
            }
        }
        rows
    }

    /// The same, from the parser; `none` and `off` as the docs write them.
    fn parsed<'a>(args: impl Iterator<Item = &'a clap::Arg>) -> Rows {
        args.filter_map(|arg| {
            let long = arg.get_long()?;
            if matches!(long, "help" | "version") {
                return None;
            }
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = match defaults.join(",").as_str() {
                _ if !arg.get_action().takes_values() => "off".to_string(),
                "" => "none".to_string(),
                joined => joined.to_string(),
            };
            Some((long.to_string(), (env, default)))
        })
        .collect()
    }

    #[test]
    fn planning_flags_table_matches_the_parser() {
        let command = PlanningArgs::augment_args(clap::Command::new("planning"));
        assert_eq!(table("Planning flags"), parsed(command.get_arguments()));
    }

    #[test]
    fn server_flags_table_matches_the_parser() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        let planning = PlanningArgs::augment_args(clap::Command::new("planning"));
        let shared: Vec<_> = planning.get_arguments().map(|a| a.get_id()).collect();
        let own = serve
            .get_arguments()
            .filter(|a| !a.is_global_set() && !shared.contains(&a.get_id()));
        assert_eq!(table("Server flags"), parsed(own));
    }

    #[test]
    fn observer_flags_table_matches_the_parser() {
        let cli = Cli::command();
        let observe = cli.find_subcommand("observe").unwrap();
        let own = observe.get_arguments().filter(|a| !a.is_global_set());
        assert_eq!(table("Observer flags"), parsed(own));
    }

    #[test]
    fn global_flags_table_matches_the_parser() {
        let cli = Cli::command();
        let global = cli.get_arguments().filter(|a| a.is_global_set());
        assert_eq!(table("Global flags"), parsed(global));
    }
}
