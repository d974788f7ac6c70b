//! Why a command failed: every variant exits 1 but `audit --fail-on-risk`
//! finding risks, which exits 3 (`docs/cli.md`, "Exit codes"); each keeps
//! the error it came from.

use thiserror::Error;

use gracehook::admission::AdmissionError;
use gracehook::cluster::ClusterError;
use gracehook::planner::offline::ManifestError;
use gracehook::server::ServeError;
use gracehook::server::tls::certs::CertsError;

/// Why a command failed; see [`CommandError::exit_code`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// An input file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file, or `standard input`.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An output file cannot be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Standard output is gone.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    /// The output does not encode as JSON.
    #[error("writing the output: {0}")]
    Json(#[from] serde_json::Error),
    /// The output does not encode as YAML.
    #[error("writing the output: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// The async runtime did not start.
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Manifests that cannot be planned (every one is listed).
    #[error("{}", listed(file, errors))]
    Manifests {
        /// The file they came from.
        file: String,
        /// Each document's error, in order.
        errors: Vec<ManifestError>,
    },
    /// An AdmissionReview that cannot be answered.
    #[error("{file}: {source}")]
    Review {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: AdmissionError,
    },
    /// The server stopped with an error.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The cluster could not be read.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Certificates could not be made.
    #[error(transparent)]
    Certs(#[from] CertsError),
    /// The observer stopped with an error.
    #[error(transparent)]
    Observe(#[from] gracehook::observe::ObserveError),
    /// The observer's Events could not be listed.
    #[error("listing the drain Events: {0}")]
    Drains(#[source] kube::Error),
    /// `audit --fail-on-risk` found workloads at risk (in a complete report).
    #[error("{0}")]
    AtRisk(String),
}

impl CommandError {
    /// 3 for workloads at risk, so that CI tells a finding from a failure to
    /// look (an incomplete audit is a failure); 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::AtRisk(_) => 3,
            _ => 1,
        }
    }
}

/// One line per error, each naming the file; `main` prefixes the first
/// with `error: `.
fn listed(file: &str, errors: &[ManifestError]) -> String {
    errors
        .iter()
        .map(|e| format!("{file}: {e}"))
        .collect::<Vec<_>>()
        .join("\nerror: ")
}
