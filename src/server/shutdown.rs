//! Signals, and the shutdown gracehook teaches pods (`docs/observability.md`,
//! "Shutdown"): on the first signal readiness fails, requests keep being
//! served for the delay, then the listener closes and requests in flight
//! finish, up to the timeout. A second signal is the caller's to act on.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::connections::Open;
use super::error::ServeError;

/// SIGTERM (the kubelet) and SIGINT (Ctrl-C).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> Result<Signals, ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).map_err(|source| ServeError::Signal {
            signal: "SIGTERM",
            source,
        })?;
        let int = signal(SignalKind::interrupt()).map_err(|source| ServeError::Signal {
            signal: "SIGINT",
            source,
        })?;
        Ok(Signals { term, int })
    }

    /// The name of the next signal received.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// A spawned task that runs until told to stop.
pub(super) struct Stoppable<T> {
    stop: watch::Sender<bool>,
    task: JoinHandle<T>,
}

impl<T: Send + 'static> Stoppable<T> {
    /// Spawns `start(stopped)`, where `stopped` completes on [`Stoppable::stop`].
    pub(super) fn spawn<F, Fut>(start: F) -> Stoppable<T>
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(start(Box::pin(async move {
            let _ = stopped.changed().await;
        })));
        Stoppable { stop, task }
    }

    /// Tells the task to stop and waits for its result (`None` if it failed).
    pub(super) async fn stop(self) -> Option<T> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(output) => Some(output),
            Err(error) => {
                tracing::error!(%error, "a server task failed");
                None
            }
        }
    }
}

/// The shutdown after readiness has failed: serve on for `delay`, stop
/// accepting, give the open connections up to `timeout` to finish.
pub(super) async fn drain(server: Stoppable<Open>, delay: Duration, timeout: Duration) {
    tokio::time::sleep(delay).await;
    tracing::info!("no longer accepting connections; finishing requests in flight");
    let Some(connections) = server.stop().await else {
        return;
    };
    if tokio::time::timeout(timeout, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "requests still in flight at the shutdown timeout were cut"
        );
    }
}
