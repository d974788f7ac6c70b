//! `gracehook audit`: a live cluster's workloads, their risks and what
//! gracehook would set.

use std::io::{IsTerminal, Write};

use clap::{Args, ValueEnum};
use gracehook::cluster::calls::Retry;
use gracehook::cluster::risks::{self, Finding, Tally};
use gracehook::cluster::{self, ClusterError, workloads};
use gracehook::planner::annotations::namespace_defaults;
use k8s_openapi::api::core::v1::Namespace;

use super::args::{KubeconfigArgs, PlanningArgs};
use super::audit_table;
use super::error::CommandError;
use super::process::{crypto_provider, runtime};

/// `gracehook audit` flags.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: KubeconfigArgs,
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
    /// Exit 3 when any workload is at risk (for CI).
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
    /// `{"workloads": [...], "summary": {..., "complete": true}}`.
    Json,
}

pub(super) fn run(args: AuditArgs) -> Result<(), CommandError> {
    crypto_provider();
    let colour = std::io::stdout().is_terminal();
    let mut report = Report::new(std::io::stdout().lock(), args.output, colour);
    let listed = runtime(false)?.block_on(list(&args, &mut report));
    // The report is closed either way: JSON stays one document.
    let error = listed.as_ref().err().map(ToString::to_string);
    let (tally, _) = report.finish(error.as_deref())?;
    if listed.is_err() {
        eprintln!(
            "audit: the report is incomplete: {} workloads listed before the error",
            tally.total
        );
    }
    listed?;
    if args.fail_on_risk && tally.at_risk > 0 {
        return Err(CommandError::AtRisk(tally.line()));
    }
    Ok(())
}

/// Lists the namespaces in scope, then the workloads, into `report`.
async fn list<W: Write>(args: &AuditArgs, report: &mut Report<W>) -> Result<(), ClusterError> {
    let settings = args.planning.settings();
    let retry = Retry::default();
    let client = cluster::client(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.clone(),
    )
    .await?;
    let namespaces = match args.scope() {
        Some(name) => vec![workloads::namespace(&client, &retry, name).await?],
        None => workloads::namespaces(&client, &retry).await?,
    };
    progress("namespaces", namespaces.len());
    workloads::visit(&client, &retry, args.scope(), progress, |workload| {
        let namespace = namespaces
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(&workload.namespace));
        let (mode, defaults) = mode_and_defaults(namespace);
        report.add(risks::assess(&workload, mode, &defaults, &settings));
    })
    .await
}

fn progress(what: &str, count: usize) {
    eprintln!("audit: listed {count} {what}");
}

fn mode_and_defaults(
    namespace: Option<&Namespace>,
) -> (Option<&str>, gracehook::planner::NamespaceDefaults) {
    let mode = namespace.and_then(|n| risks::mode_of(n.metadata.labels.as_ref()));
    let defaults = namespace
        .and_then(|n| n.metadata.annotations.as_ref())
        .map(namespace_defaults)
        .unwrap_or_default();
    (mode, defaults)
}

/// Findings held before they are printed: a cluster's worth never is.
const CHUNK: usize = 100;

/// The report, printed a chunk of findings at a time while the cluster is
/// listed, so that memory does not grow with the cluster.
struct Report<W: Write> {
    out: W,
    output: AuditOutput,
    colour: bool,
    chunk: Vec<Finding>,
    tally: Tally,
    printed: usize,
    /// The first write error; printing stops there.
    failed: Option<std::io::Error>,
}

impl<W: Write> Report<W> {
    fn new(out: W, output: AuditOutput, colour: bool) -> Report<W> {
        Report {
            out,
            output,
            colour,
            chunk: Vec::with_capacity(CHUNK),
            tally: Tally::default(),
            printed: 0,
            failed: None,
        }
    }

    fn add(&mut self, finding: Finding) {
        self.tally.add(&finding);
        self.chunk.push(finding);
        if self.chunk.len() >= CHUNK {
            self.print_chunk();
        }
    }

    fn print_chunk(&mut self) {
        if self.failed.is_none()
            && let Err(e) = self.write_chunk()
        {
            self.failed = Some(e);
        }
        self.printed += self.chunk.len();
        self.chunk.clear();
    }

    fn write_chunk(&mut self) -> std::io::Result<()> {
        let out = &mut self.out;
        match self.output {
            AuditOutput::Table if !self.chunk.is_empty() || self.printed == 0 => {
                let text = audit_table::table_chunk(&self.chunk, self.colour, self.printed == 0);
                out.write_all(text.as_bytes())
            }
            AuditOutput::Table => Ok(()),
            AuditOutput::Json => {
                // Each finding as serde_json's pretty printer would write it
                // inside {"workloads": [...]}.
                for (i, finding) in self.chunk.iter().enumerate() {
                    let first = self.printed + i == 0;
                    out.write_all(if first {
                        b"{\n  \"workloads\": [\n"
                    } else {
                        b",\n"
                    })?;
                    let text =
                        serde_json::to_string_pretty(finding).map_err(std::io::Error::other)?;
                    for (j, line) in text.lines().enumerate() {
                        let newline = if j > 0 { "\n" } else { "" };
                        write!(out, "{newline}    {line}")?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Prints what is left and the summary, which says whether the report
    /// is complete (`error` is why not); returns the counts.
    fn finish(mut self, error: Option<&str>) -> Result<(Tally, W), CommandError> {
        self.print_chunk();
        if let Some(e) = self.failed {
            return Err(e.into());
        }
        let out = &mut self.out;
        let line = self.tally.line();
        match self.output {
            AuditOutput::Table => writeln!(out, "{line}")?,
            AuditOutput::Json => {
                let mut summary = serde_json::json!({
                    "total": self.tally.total,
                    "atRisk": self.tally.at_risk,
                    "text": line,
                    "complete": error.is_none(),
                });
                if let (Some(error), Some(fields)) = (error, summary.as_object_mut()) {
                    fields.insert("error".into(), error.into());
                }
                let summary = serde_json::to_string_pretty(&summary)?.replace('\n', "\n  ");
                let open = if self.printed == 0 {
                    "{\n  \"workloads\": ["
                } else {
                    "\n  "
                };
                writeln!(out, "{open}],\n  \"summary\": {summary}\n}}")?;
            }
        }
        Ok((self.tally, self.out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(name: &str, risky: bool) -> Finding {
        Finding {
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: name.into(),
            mode: "none".into(),
            grace: 30,
            containers: vec![],
            would_set: "nothing".into(),
            risks: if risky {
                vec!["web: no preStop delay".into()]
            } else {
                vec![]
            },
        }
    }

    fn printed(output: AuditOutput, count: usize) -> (String, Tally) {
        let mut report = Report::new(Vec::new(), output, false);
        for i in 0..count {
            report.add(finding(&format!("d{i}"), i % 3 == 0));
        }
        let (tally, out) = report.finish(None).unwrap();
        (String::from_utf8(out).unwrap(), tally)
    }

    /// Streamed in chunks, the JSON is exactly what serde_json would print
    /// for the whole report at once.
    #[test]
    fn streamed_json_is_the_whole_report_pretty_printed() {
        for count in [0, 1, CHUNK, CHUNK * 2 + 7] {
            let (text, tally) = printed(AuditOutput::Json, count);
            let findings: Vec<Finding> = (0..count)
                .map(|i| finding(&format!("d{i}"), i % 3 == 0))
                .collect();
            let whole = serde_json::json!({
                "workloads": findings,
                "summary": {
                    "total": count, "atRisk": tally.at_risk, "text": tally.line(), "complete": true,
                },
            });
            assert_eq!(
                text,
                serde_json::to_string_pretty(&whole).unwrap() + "\n",
                "{count}"
            );
        }
    }

    /// A listing that fails mid-way still closes the document, and says so.
    #[test]
    fn an_incomplete_report_is_still_one_json_document() {
        for count in [0, 1, CHUNK + 1] {
            let mut report = Report::new(Vec::new(), AuditOutput::Json, false);
            (0..count).for_each(|i| report.add(finding(&format!("d{i}"), false)));
            let (_, out) = report.finish(Some("listing pods: gone")).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(json["workloads"].as_array().unwrap().len(), count);
            assert_eq!(json["summary"]["complete"], false, "{count}");
            assert_eq!(json["summary"]["error"], "listing pods: gone");
        }
    }

    #[test]
    fn the_table_has_one_header_every_row_and_the_summary() {
        let (text, tally) = printed(AuditOutput::Table, CHUNK * 2 + 7);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + CHUNK * 2 + 7 + 1);
        assert!(lines[0].starts_with("NAMESPACE"));
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("NAMESPACE")).count(),
            1
        );
        assert_eq!(*lines.last().unwrap(), tally.line());
    }
}
