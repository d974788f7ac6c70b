//! `gracehook certs`: a CA, a serving certificate for the webhook's Service,
//! the CA bundle and the kustomize patch that installs it.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Args;

use super::error::CommandError;
use gracehook::server::tls::certs;

/// `gracehook certs` flags.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, env = "GRACEHOOK_SERVICE", default_value = "gracehook")]
    pub service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, env = "GRACEHOOK_NAMESPACE", default_value = "gracehook-system")]
    pub namespace: String,
    /// Directory to write ca.crt, tls.crt, tls.key, ca-bundle.b64 and ca-bundle-patch.yaml to.
    #[arg(long, env = "GRACEHOOK_OUT", default_value = "certs")]
    pub out: PathBuf,
    /// Validity of the serving certificate, in days.
    #[arg(long, env = "GRACEHOOK_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// More names for the certificate (DNS names or IP addresses), comma-separated.
    #[arg(long, env = "GRACEHOOK_EXTRA_NAMES", value_delimiter = ',')]
    pub extra_names: Vec<String>,
}

pub(super) fn run(args: CertsArgs) -> Result<(), CommandError> {
    let mut names = certs::service_names(&args.service, &args.namespace);
    names.extend(
        args.extra_names
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    );
    let generated = certs::webhook_certs(&names, args.days)?;
    let bundle = base64::engine::general_purpose::STANDARD.encode(&generated.ca_pem);
    std::fs::create_dir_all(&args.out).map_err(|source| CommandError::Write {
        path: args.out.display().to_string(),
        source,
    })?;
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
        write_file(&path, content, mode).map_err(|source| CommandError::Write {
            path: path.display().to_string(),
            source,
        })?;
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
