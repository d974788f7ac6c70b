//! The server's flags: the same struct is its configuration (`docs/cli.md`,
//! "serve").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::tls::TlsFiles;
use crate::planner::duration::parse_duration;

/// The server's flags; the same struct is its configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address of the TLS admission endpoint.
    #[arg(long, env = "GRACEHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "GRACEHOOK_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,
    /// Serving certificate (PEM, leaf first, then intermediates); reloaded when it changes.
    /// Without it, a throw-away self-signed certificate for localhost is used.
    #[arg(long, env = "GRACEHOOK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long, env = "GRACEHOOK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) for client certificates: when set, clients without a
    /// certificate signed by it are refused at the handshake; reloaded when it
    /// changes.
    #[arg(long, env = "GRACEHOOK_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Names (comma-separated DNS names or IP addresses) the serving
    /// certificate must be valid for, at start and at every reload. Without
    /// them, a reloaded certificate must keep the DNS names of the one served.
    #[arg(
        long,
        env = "GRACEHOOK_TLS_SERVER_NAMES",
        value_delimiter = ',',
        value_parser = server_name
    )]
    pub tls_server_names: Vec<String>,
    /// How often the certificate and client CA files are checked for changes.
    #[arg(long, env = "GRACEHOOK_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = exact_duration)]
    pub tls_reload_interval: Duration,
    /// After SIGTERM: how long to keep serving with readiness failed, while
    /// endpoints and the API server stop sending to this replica.
    #[arg(long, env = "GRACEHOOK_SHUTDOWN_DELAY", default_value = "5s", value_parser = exact_duration)]
    pub shutdown_delay: Duration,
    /// After the delay: how long requests in flight may take to finish.
    #[arg(long, env = "GRACEHOOK_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = exact_duration)]
    pub shutdown_timeout: Duration,
    /// Open connections at most; further clients wait in the listen backlog.
    #[arg(long, env = "GRACEHOOK_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
}

fn exact_duration(value: &str) -> Result<Duration, String> {
    parse_duration(value).map_err(|e| format!("{e} (for example 5s or 500ms)"))
}

/// A name of `--tls-server-names`; an empty one (an empty variable, a
/// trailing comma) is ignored.
fn server_name(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() {
        return Ok(String::new());
    }
    rustls_pki_types::ServerName::try_from(name)
        .map(|_| name.to_string())
        .map_err(|e| format!("{e}: not a DNS name or IP address"))
}

impl ServerArgs {
    /// `--tls-server-names` without the empty ones.
    pub(super) fn server_names(&self) -> Vec<String> {
        let names = self.tls_server_names.iter();
        names.filter(|n| !n.is_empty()).cloned().collect()
    }

    pub(super) fn tls_files(&self) -> Option<TlsFiles> {
        let (cert, key) = self.tls_cert.clone().zip(self.tls_key.clone())?;
        Some(TlsFiles { cert, key })
    }
}
