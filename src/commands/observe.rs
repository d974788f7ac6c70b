//! `gracehook observe`: the drain-outcome observer (`docs/observe.md`).

use super::error::CommandError;
use super::process::{crypto_provider, runtime};
use gracehook::observe::{self, ObserveArgs};

pub(super) fn run(args: ObserveArgs) -> Result<(), CommandError> {
    crypto_provider();
    let runtime = runtime(true)?;
    let result = runtime.block_on(observe::run(&args));
    runtime.shutdown_background();
    Ok(result?)
}
