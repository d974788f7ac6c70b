//! `gracehook audit`: a live cluster's workloads, their risks and what
//! gracehook would set.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gracehook::cluster::audit::{self, Finding};
use gracehook::cluster::{self, workloads};
use gracehook::planner::annotations::namespace_defaults;
use k8s_openapi::api::core::v1::Namespace;

use super::{CommandError, PlanningArgs, crypto_provider, runtime};

/// `gracehook audit` flags.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, env = "GRACEHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, env = "GRACEHOOK_CONTEXT")]
    pub context: Option<String>,
    /// Only this namespace.
    #[arg(
        short = 'n',
        long,
        env = "GRACEHOOK_AUDIT_NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// All namespaces (also the default without -n).
    #[arg(short = 'A', long, env = "GRACEHOOK_ALL_NAMESPACES")]
    pub all_namespaces: bool,
    /// table for people, json for scripts.
    #[arg(short = 'o', long, env = "GRACEHOOK_AUDIT_OUTPUT", value_enum, default_value_t = AuditOutput::Table)]
    pub output: AuditOutput,
    /// Exit 1 when any workload is at risk (for CI).
    #[arg(long, env = "GRACEHOOK_FAIL_ON_RISK")]
    pub fail_on_risk: bool,
    /// The plan.
    #[command(flatten)]
    pub planning: PlanningArgs,
}

impl AuditArgs {
    /// The namespace to read, or `None` for all of them.
    fn scope(&self) -> Option<&str> {
        if self.all_namespaces {
            None
        } else {
            self.namespace.as_deref()
        }
    }
}

/// What `audit` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditOutput {
    /// An aligned table and a summary line.
    Table,
    /// `{"workloads": [...], "summary": {...}}`.
    Json,
}

pub(super) fn run(args: AuditArgs) -> Result<(), CommandError> {
    crypto_provider();
    let settings = args.planning.settings();
    let findings = runtime(false)?.block_on(async {
        let client = cluster::client(args.kubeconfig.as_deref(), args.context.clone()).await?;
        let namespaces = workloads::namespaces(&client, args.scope()).await?;
        progress("namespaces", namespaces.len());
        let mut findings = Vec::new();
        workloads::visit(&client, args.scope(), progress, |workload| {
            let namespace = namespaces
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(&workload.namespace));
            let (mode, defaults) = mode_and_defaults(namespace);
            findings.push(audit::assess(&workload, mode, &defaults, &settings));
        })
        .await?;
        Ok::<_, CommandError>(findings)
    })?;
    let summary = audit::summary_line(&findings);
    print(&findings, &summary, args.output)?;
    if args.fail_on_risk && findings.iter().any(Finding::at_risk) {
        return Err(CommandError::AtRisk(summary));
    }
    Ok(())
}

fn progress(what: &str, count: usize) {
    eprintln!("audit: listed {count} {what}");
}

fn mode_and_defaults(
    namespace: Option<&Namespace>,
) -> (Option<&str>, gracehook::planner::NamespaceDefaults) {
    let mode = namespace.and_then(|n| audit::mode_of(n.metadata.labels.as_ref()));
    let defaults = namespace
        .and_then(|n| n.metadata.annotations.as_ref())
        .map(namespace_defaults)
        .unwrap_or_default();
    (mode, defaults)
}

fn print(findings: &[Finding], summary: &str, output: AuditOutput) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    match output {
        AuditOutput::Table => {
            let colour = std::io::stdout().is_terminal();
            write!(out, "{}", audit::table(findings, colour))?;
            writeln!(out, "{summary}")?;
        }
        AuditOutput::Json => {
            let at_risk = findings.iter().filter(|f| f.at_risk()).count();
            let value = serde_json::json!({
                "workloads": findings,
                "summary": { "total": findings.len(), "atRisk": at_risk, "text": summary },
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        }
    }
    Ok(())
}
