//! Logs: one place for the tracing set-up (`docs/observability.md`, "Logs").
//!
//! `serve` writes one JSON line per admission, so the line is on the request
//! path: [`json`] formats it without building a map per event, and
//! [`buffered`] collects lines and writes them out in bursts instead of one
//! `write` per line. The other commands log rarely, on stderr, unbuffered.

mod buffered;
mod json;

use std::io::IsTerminal;
use std::time::Duration;

use clap::ValueEnum;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

pub use buffered::FlushOnDrop;

/// The longest a log line of `serve` waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON elsewhere.
    Auto,
    /// For people.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Installs the global subscriber: level from `RUST_LOG` (default `info`),
/// on stdout (buffered, for `serve`) or stderr. Keep the returned value
/// until exit: dropping it writes out what is buffered.
pub fn init(format: LogFormat, to_stdout: bool) -> Option<FlushOnDrop> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    // A terminal wants each line at once.
    let (writer, flush) = if to_stdout && !terminal {
        let (writer, flush) = buffered::stdout(FLUSH_EVERY);
        (BoxMakeWriter::new(writer), Some(flush))
    } else if to_stdout {
        (BoxMakeWriter::new(std::io::stdout), None)
    } else {
        (BoxMakeWriter::new(std::io::stderr), None)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        builder.event_format(json::JsonLines).init();
    } else {
        builder.with_ansi(terminal).init();
    }
    flush
}
