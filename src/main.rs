use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::Value;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use gracehook::admission::{Admission, Endpoint};
use gracehook::cli::{
    AuditArgs, AuditOutput, CertsArgs, Cli, Command, LogFormat, MutateArgs, Output, PathArg,
    ReviewArgs, ServeArgs,
};
use gracehook::settings::Mode;
use gracehook::workload;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // clap exits with 2 on usage errors by itself.
    let cli = Cli::parse();
    // `serve` writes its logs on stdout, as containers should; the offline
    // commands keep stdout for their output.
    let serving = matches!(cli.command, Command::Serve(_));
    init_tracing(cli.log_format, serving);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(format: LogFormat, to_stdout: bool) {
    use std::io::IsTerminal;
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
    let writer = if to_stdout {
        BoxMakeWriter::new(std::io::stdout)
    } else {
        BoxMakeWriter::new(std::io::stderr)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.with_ansi(terminal).init();
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Review(args) => review(args),
        Command::Certs(args) => certs(args),
        Command::Audit(args) => audit(args),
        Command::Mutate(args) => mutate(args),
    }
}

/// kube, tokio-rustls and rcgen could each bring a crypto provider: install
/// exactly one, before anything uses TLS.
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let _ = provider.as_ref().clone().install_default();
    provider
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn serve(args: ServeArgs) -> Result<()> {
    let provider = crypto_provider();
    let runtime = runtime(true)?;
    let mut settings = args.planning.settings();
    if args.planning.needs_discovery() {
        match runtime.block_on(gracehook::cluster::discover_style()) {
            Ok((style, version)) => {
                tracing::info!(%version, style = style.as_str(), "--prestop-style auto: chose from the API server's version");
                settings.prestop_style = style;
            }
            Err(error) => tracing::warn!(
                %error,
                fallback = settings.prestop_style.as_str(),
                "--prestop-style auto: could not read the API server's version"
            ),
        }
    }
    let mut admission = Admission::new(settings);
    if args.watch_namespaces {
        let watched = runtime.block_on(async {
            let client = kube::Client::try_default().await.context(
                "--watch-namespaces needs a cluster configuration (in-cluster or kubeconfig)",
            )?;
            anyhow::Ok(
                gracehook::namespaces::WatchedNamespaces::start(client, Duration::from_secs(10))
                    .await,
            )
        })?;
        admission = admission.with_namespaces(Arc::new(watched));
    }
    runtime.block_on(gracehook::serve::run(args.config(), admission, provider))?;
    Ok(())
}

fn audit(args: AuditArgs) -> Result<()> {
    use gracehook::audit;
    use gracehook::namespaces::defaults_of;
    use std::io::IsTerminal;
    crypto_provider();
    let runtime = runtime(false)?;
    let (workloads, namespaces) = runtime.block_on(async {
        let client =
            gracehook::cluster::client(args.kubeconfig.as_deref(), args.context.clone()).await?;
        gracehook::cluster::list_workloads(client, args.namespace.as_deref()).await
    })?;
    let settings = args.planning.settings();
    let findings: Vec<audit::Finding> = workloads
        .iter()
        .map(|w| {
            let ns = namespaces
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(&w.namespace));
            let mode = ns.and_then(|n| audit::mode_of(n.metadata.labels.as_ref()));
            let defaults = ns
                .and_then(|n| n.metadata.annotations.as_ref())
                .map(defaults_of)
                .unwrap_or_default();
            audit::assess(w, mode, &defaults, &settings)
        })
        .collect();
    let summary = audit::summary_line(&findings);
    let mut out = std::io::stdout().lock();
    match args.output {
        AuditOutput::Table => {
            let colour = std::io::stdout().is_terminal();
            write!(out, "{}", audit::table(&findings, colour))?;
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
    if args.fail_on_risk && findings.iter().any(audit::Finding::at_risk) {
        bail!("{summary}");
    }
    Ok(())
}

fn certs(args: CertsArgs) -> Result<()> {
    use base64::Engine;
    use gracehook::certs;
    let mut names = certs::service_names(&args.service, &args.namespace);
    names.extend(
        args.extra_names
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    );
    let generated = certs::webhook_certs(&names, args.days)?;
    let bundle = base64::engine::general_purpose::STANDARD.encode(&generated.ca_pem);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let files = [
        ("ca.crt", generated.ca_pem.as_str(), 0o644),
        ("tls.crt", generated.cert_pem.as_str(), 0o644),
        ("tls.key", generated.key_pem.as_str(), 0o600),
        ("ca-bundle.b64", &format!("{bundle}\n"), 0o644),
        (
            "ca-bundle-patch.yaml",
            &certs::ca_bundle_patch(&bundle),
            0o644,
        ),
    ];
    for (name, content, mode) in files {
        let path = args.out.join(name);
        write_file(&path, content, mode).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "wrote a CA and a serving certificate for {} (valid {} days) to {}",
        names.join(", "),
        args.days,
        args.out.display()
    );
    Ok(())
}

fn write_file(path: &Path, content: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // Replace rather than truncate, so a key never sits in a world-readable file.
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(content.as_bytes())
}

fn read_input(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
    } else {
        text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(text)
}

fn review(args: ReviewArgs) -> Result<()> {
    let input = read_input(&args.file)?;
    let endpoint = match args.path {
        PathArg::Mutate => Endpoint::Mutate,
        PathArg::Audit => Endpoint::Audit,
    };
    let admission = Admission::new(args.planning.settings());
    let reviewed = admission
        .review_bytes(endpoint, input.as_bytes())
        .with_context(|| args.file.display().to_string())?;
    let text = gracehook::wire::to_string_pretty(&reviewed.review)?;
    writeln!(std::io::stdout(), "{text}")?;
    Ok(())
}

fn mutate(args: MutateArgs) -> Result<()> {
    let input = read_input(&args.file)?;
    let source = args.file.display().to_string();
    let settings = args.planning.settings();
    let mode = Mode::from(args.mode);
    let documents = workload::parse_documents(&input).with_context(|| source.clone())?;

    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        match workload::mutate(document, index + 1, mode, &settings) {
            Ok(result) => results.push(result),
            Err(error) => errors.push(format!("{source}: {error}")),
        }
    }
    if !errors.is_empty() {
        // Nothing on stdout: a pipe into `kubectl apply` must not apply half.
        bail!("{}", errors.join("\nerror: "));
    }

    let mut out = std::io::stdout().lock();
    for result in &results {
        for pod in &result.pods {
            match (mode, pod.mode) {
                (Mode::Audit, _) => writeln!(out, "{}: {}", pod.object, pod.audit_line())?,
                // Downgraded by its own gracehook.io/mode annotation.
                (Mode::Enforce, Mode::Audit) => eprintln!("{}: {}", pod.object, pod.audit_line()),
                (Mode::Enforce, Mode::Enforce) => {}
            }
        }
    }
    if mode == Mode::Audit {
        return Ok(());
    }
    match args.output {
        Output::Yaml => {
            for (i, result) in results.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                write!(out, "{}", serde_yaml_ng::to_string(&result.object)?)?;
            }
        }
        Output::Json => {
            let value = match results.as_slice() {
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
            for result in &results {
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
                        gracehook::explain::timeline(&pod.object, &pod.pod, decision)
                    )?;
                }
            }
        }
    }
    Ok(())
}
