//! `gracehook serve`: the webhook.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::args::PlanningArgs;
use super::error::CommandError;
use super::process::{crypto_provider, runtime};
use gracehook::admission::Admission;
use gracehook::cluster::{self, ClusterError, namespaces::WatchedNamespaces};
use gracehook::planner::Settings;
use gracehook::server::{self, ServerArgs};

/// How long start-up waits for the first list of Namespaces.
const NAMESPACE_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// `gracehook serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listening, TLS and shutdown.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Watch Namespaces (get/list/watch) so that their gracehook.io/drain-delay,
    /// request-timeout and margin annotations become that namespace's defaults.
    #[arg(long, env = "GRACEHOOK_WATCH_NAMESPACES")]
    pub watch_namespaces: bool,
    /// The plan.
    #[command(flatten)]
    pub planning: PlanningArgs,
}

pub(super) fn run(args: ServeArgs) -> Result<(), CommandError> {
    let provider = crypto_provider();
    let runtime = runtime(true)?;
    let result = runtime.block_on(async {
        let settings = settings(&args.planning).await;
        let (defaults, max_grace) = (settings.defaults, settings.max_grace);
        let mut admission = Admission::new(settings);
        if args.watch_namespaces {
            let client = kube::Client::try_default()
                .await
                .map_err(ClusterError::Config)?;
            let watched =
                WatchedNamespaces::start(client, NAMESPACE_SYNC_TIMEOUT, defaults, max_grace).await;
            admission = admission.with_namespaces(Arc::new(watched));
        }
        server::run(&args.server, admission, provider).await?;
        Ok(())
    });
    // A second signal must not wait for tasks still running.
    runtime.shutdown_background();
    result
}

/// The settings, with `--prestop-style auto` resolved from the API server's
/// version when no `--kube-version` is given.
async fn settings(planning: &PlanningArgs) -> Settings {
    let mut settings = planning.settings();
    if !planning.needs_discovery() {
        return settings;
    }
    match cluster::server_version().await {
        Ok(version) => {
            settings.prestop_style = planning.prestop_style.resolve(Some(version.minor));
            tracing::info!(
                version = %version.git_version,
                style = settings.prestop_style.as_str(),
                "--prestop-style auto: chose from the API server's version"
            );
        }
        Err(error) => tracing::warn!(
            %error,
            fallback = settings.prestop_style.as_str(),
            "--prestop-style auto: could not read the API server's version"
        ),
    }
    settings
}
