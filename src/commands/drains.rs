//! `gracehook drains`: per workload, how its pods' drains ended, from the
//! observer's Events (`docs/observe.md`, "gracehook drains").

use std::io::Write;

use clap::{Args, ValueEnum};
use gracehook::cluster;
use gracehook::observe::drains;

use super::args::KubeconfigArgs;
use super::error::CommandError;
use super::process::{crypto_provider, runtime};

/// `gracehook drains` flags.
#[derive(Debug, Args)]
pub struct DrainsArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: KubeconfigArgs,
    /// Only this namespace.
    #[arg(
        short = 'n',
        long,
        env = "GRACEHOOK_DRAINS_NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// All namespaces (also the default without -n).
    #[arg(short = 'A', long, env = "GRACEHOOK_ALL_NAMESPACES")]
    pub all_namespaces: bool,
    /// table for people, json for scripts.
    #[arg(short = 'o', long, env = "GRACEHOOK_DRAINS_OUTPUT", value_enum, default_value_t = DrainsOutput::Table)]
    pub output: DrainsOutput,
}

/// What `drains` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DrainsOutput {
    /// An aligned table.
    Table,
    /// `{"workloads": [...]}`.
    Json,
}

pub(super) fn run(args: DrainsArgs) -> Result<(), CommandError> {
    crypto_provider();
    let scope = if args.all_namespaces {
        None
    } else {
        args.namespace.as_deref()
    };
    let events = runtime(false)?.block_on(async {
        let client = cluster::client(
            args.cluster.kubeconfig.as_deref(),
            args.cluster.context.clone(),
        )
        .await?;
        drains::events(client, scope)
            .await
            .map_err(CommandError::Drains)
    })?;
    let report = drains::summarize(&events);
    let mut out = std::io::stdout().lock();
    match args.output {
        DrainsOutput::Json => {
            serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "workloads": report }))?;
            writeln!(out)?;
        }
        DrainsOutput::Table if report.is_empty() => {
            eprintln!(
                "drains: no terminations recorded (is `gracehook observe` running? Events last an hour)"
            );
        }
        DrainsOutput::Table => out.write_all(drains::table(&report).as_bytes())?,
    }
    Ok(())
}
