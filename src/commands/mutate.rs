//! `gracehook mutate`: the plan offline, on manifests.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gracehook::planner::offline::{self, Mutated};
use gracehook::planner::{Mode, explain};
use serde_json::Value;

use super::args::PlanningArgs;
use super::error::CommandError;
use super::process::read_input;

/// `gracehook mutate` flags.
#[derive(Debug, Args)]
pub struct MutateArgs {
    /// Manifest file (YAML, several documents allowed, or JSON), or - for standard input.
    #[arg(short = 'f', long = "filename", env = "GRACEHOOK_FILENAME")]
    pub file: PathBuf,
    /// enforce prints the mutated objects; audit prints what would change.
    #[arg(long, env = "GRACEHOOK_MODE", value_enum, default_value_t = Mode::Enforce)]
    pub mode: Mode,
    /// Output: the mutated objects, one JSON patch per document, or a
    /// termination timeline per pod.
    #[arg(short = 'o', long, env = "GRACEHOOK_OUTPUT", value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
    /// The plan.
    #[command(flatten)]
    pub planning: PlanningArgs,
}

/// What `mutate` prints in enforce mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The mutated objects, as YAML.
    Yaml,
    /// The mutated objects, as JSON (a List when there are several).
    Json,
    /// One JSON patch per document.
    Patch,
    /// A termination timeline per pod.
    Explain,
}

pub(super) fn run(args: MutateArgs) -> Result<(), CommandError> {
    let input = read_input(&args.file)?;
    let source = args.file.display().to_string();
    let settings = args.planning.settings();
    let documents = offline::parse_documents(&input).map_err(|e| CommandError::Manifests {
        file: source.clone(),
        errors: vec![e],
    })?;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        match offline::mutate(document, index + 1, args.mode, &settings) {
            Ok(result) => results.push(result),
            Err(error) => errors.push(error),
        }
    }
    if !errors.is_empty() {
        // Nothing on stdout: a pipe into `kubectl apply` must not apply half.
        return Err(CommandError::Manifests {
            file: source,
            errors,
        });
    }
    let mut out = std::io::stdout().lock();
    audit_lines(&mut out, &results, args.mode)?;
    if args.mode == Mode::Enforce {
        render(&mut out, &results, args.output)?;
    }
    Ok(())
}

/// In audit mode, a line per pod on stdout; in enforce mode, the lines of
/// pods that downgraded themselves with `gracehook.io/mode: audit`, on stderr.
fn audit_lines(out: &mut impl Write, results: &[Mutated], mode: Mode) -> Result<(), CommandError> {
    for pod in results.iter().flat_map(|r| &r.pods) {
        match (mode, pod.mode) {
            (Mode::Audit, _) => writeln!(out, "{}: {}", pod.object, pod.audit_line())?,
            (Mode::Enforce, Mode::Audit) => eprintln!("{}: {}", pod.object, pod.audit_line()),
            (Mode::Enforce, Mode::Enforce) => {}
        }
    }
    Ok(())
}

fn render(out: &mut impl Write, results: &[Mutated], output: Output) -> Result<(), CommandError> {
    match output {
        Output::Yaml => {
            for (i, result) in results.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                let yaml = serde_yaml_ng::to_string(&result.object)?;
                write!(out, "{yaml}")?;
            }
        }
        Output::Json => {
            let value = match results {
                [one] => one.object.clone(),
                many => serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": many.iter().map(|r| r.object.clone()).collect::<Vec<Value>>(),
                }),
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        }
        Output::Patch => {
            for result in results {
                writeln!(out, "{}", serde_json::to_string(&result.patch)?)?;
            }
        }
        Output::Explain => {
            let pods = results.iter().flat_map(|r| &r.pods);
            for (i, pod) in pods.enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                if let Ok(decision) = &pod.decision {
                    write!(
                        out,
                        "{}",
                        explain::timeline(&pod.object, &pod.pod, decision)
                    )?;
                }
            }
        }
    }
    Ok(())
}
