//! `gracehook review`: one AdmissionReview answered through the server's code path.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::args::PlanningArgs;
use super::error::CommandError;
use super::process::read_input;
use gracehook::admission::{Admission, Endpoint, wire};

/// `gracehook review` flags.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// AdmissionReview file, or - for standard input.
    #[arg(short = 'f', long = "filename", env = "GRACEHOOK_FILENAME")]
    pub file: PathBuf,
    /// The webhook path to answer as.
    #[arg(long, env = "GRACEHOOK_PATH", value_enum, default_value_t = Endpoint::Mutate)]
    pub path: Endpoint,
    /// The plan.
    #[command(flatten)]
    pub planning: PlanningArgs,
}

pub(super) fn run(args: ReviewArgs) -> Result<(), CommandError> {
    let input = read_input(&args.file)?;
    let admission = Admission::new(args.planning.settings());
    let reviewed = admission
        .review_bytes(args.path, input.as_bytes())
        .map_err(|source| CommandError::Review {
            file: args.file.display().to_string(),
            source,
        })?;
    let text = wire::to_string_pretty(&reviewed.review)?;
    writeln!(std::io::stdout(), "{text}")?;
    Ok(())
}
