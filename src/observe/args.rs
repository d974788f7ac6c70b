//! `gracehook observe` flags (`docs/cli.md`); each also reads its
//! `GRACEHOOK_*` variable, as the manifests set them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::planner::duration::parse_seconds;

/// How the observer runs.
#[derive(Debug, Clone, Args)]
pub struct ObserveArgs {
    /// Where /metrics, /healthz and /readyz listen (plain HTTP).
    #[arg(long, env = "GRACEHOOK_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,
    /// The namespace of the leader-election Lease (the manifests set it to
    /// the pod's own).
    #[arg(
        long,
        env = "GRACEHOOK_LEASE_NAMESPACE",
        default_value = "gracehook-system"
    )]
    pub lease_namespace: String,
    /// The Lease's name.
    #[arg(
        long,
        env = "GRACEHOOK_LEASE_NAME",
        default_value = "gracehook-observe"
    )]
    pub lease_name: String,
    /// This replica's name in the Lease and its Events (the manifests set it
    /// to the pod's name); the host name when empty.
    #[arg(long, env = "GRACEHOOK_IDENTITY", default_value = "")]
    pub identity: String,
    /// How long a leader holds the Lease without renewing it: the longest
    /// hand-over after a leader dies.
    #[arg(long, env = "GRACEHOOK_LEASE_DURATION", default_value = "15s", value_parser = whole_seconds)]
    pub lease_duration: Duration,
    /// How long after a pod is gone its outcome waits for the kubelet's
    /// FailedPreStopHook events.
    #[arg(long, env = "GRACEHOOK_SETTLE", default_value = "5s", value_parser = whole_seconds)]
    pub settle: Duration,
    /// Distinct workloads with their own `owner` label in the metrics; more
    /// are counted under owner="_other".
    #[arg(long, env = "GRACEHOOK_MAX_OWNERS", default_value_t = 500)]
    pub max_owners: usize,
}

impl ObserveArgs {
    /// `--identity`, or the host name (a pod's name in a Deployment).
    pub fn identity(&self) -> String {
        if !self.identity.is_empty() {
            return self.identity.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("gracehook-observe-{}", std::process::id()))
    }
}

fn whole_seconds(value: &str) -> Result<Duration, String> {
    let seconds = parse_seconds(value).map_err(|e| format!("{e} (for example 15s)"))?;
    if seconds == 0 {
        return Err("must be at least 1s".into());
    }
    Ok(Duration::from_secs(seconds))
}
