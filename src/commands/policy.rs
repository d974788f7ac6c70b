//! `gracehook policy`: the plan as in-tree admission policies, printed for
//! `kubectl apply -f -` (`docs/policy.md`).

use std::io::Write;

use clap::{Args, ValueEnum};
use gracehook::planner::Mode;
use gracehook::policy::{self, Options};

use super::args::PlanningArgs;
use super::error::CommandError;

/// `gracehook policy` flags.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// enforce: mutate and deny in namespaces labelled gracehook.io/mode=enforce,
    /// warn in those labelled audit; audit: only warn, in both.
    #[arg(long, env = "GRACEHOOK_MODE", value_enum, default_value_t = Mode::Enforce)]
    pub mode: Mode,
    /// Read the Namespace's gracehook.io/drain-delay, request-timeout and
    /// margin annotations as its defaults, as serve --watch-namespaces does.
    #[arg(long, env = "GRACEHOOK_NAMESPACE_DEFAULTS")]
    pub namespace_defaults: bool,
    /// Output: YAML documents, or a JSON List.
    #[arg(short = 'o', long, env = "GRACEHOOK_POLICY_OUTPUT", value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
    /// The plan.
    #[command(flatten)]
    pub planning: PlanningArgs,
}

/// What `policy` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// YAML documents separated by `---`.
    Yaml,
    /// One JSON `List`.
    Json,
}

pub(super) fn run(args: PolicyArgs) -> Result<(), CommandError> {
    let options = Options {
        settings: args.planning.settings(),
        mode: args.mode,
        namespace_defaults: args.namespace_defaults,
    };
    let documents = policy::generate(&options).documents()?;
    let text = match args.output {
        Output::Yaml => format!(
            "# gracehook {} policy --mode {}: apply with kubectl apply -f - (docs/policy.md)\n{}",
            env!("CARGO_PKG_VERSION"),
            if options.audit_only() {
                "audit"
            } else {
                "enforce"
            },
            policy::to_yaml(&documents)?
        ),
        Output::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": documents});
            format!("{}\n", serde_json::to_string_pretty(&list)?)
        }
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // `gracehook policy | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}
