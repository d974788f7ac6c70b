//! The `gracehook` binary: parses the command line, sets up logging, runs the
//! command and turns its result into an exit code (`docs/cli.md`).

mod commands;

use std::process::ExitCode;

use commands::Cli;

fn main() -> ExitCode {
    // clap exits with 2 on usage errors by itself.
    let cli = Cli::from_args();
    let _flush_logs = commands::logging::init(cli.log_format, cli.command.logs_to_stdout());
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
