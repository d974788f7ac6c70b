//! The observer's life: serve `/metrics` and the probes, take part in the
//! leader election, and while this replica holds the Lease, watch pods and
//! the kubelet's hook failures and decide every termination. On a signal
//! it stops watching, decides what is pending at once, and releases the
//! Lease so the other replica takes over without waiting for it to expire.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use super::args::ObserveArgs;
use super::error::ObserveError;
use super::metrics::ObserveMetrics;
use super::outcome::decide;
use super::owners::Owners;
use super::record::Recorder;
use super::tracker::{Ended, Tracker};
use crate::server::routes::{OpsState, ops_router};
use crate::server::{Signals, serve_ops};

/// How often pending outcomes are decided and Events written: also how
/// much a burst of terminations is coalesced into one write per series.
const TICK: Duration = Duration::from_secs(2);

/// How long a leader renews before its Lease would run out.
const LEASE_RENEW_BEFORE: u64 = 5;

/// How often a standby looks whether the Lease was released.
const STANDBY_CHECK: Duration = Duration::from_secs(1);

/// Logged when this replica starts observing, and when it resumes after
/// a pause on an expired Lease.
const HOLDING: &str = "holding the Lease: observing terminations";
const RESUMED: &str = "the Lease is renewed: observing again";

/// How long shutdown waits for the Lease's release.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: &ObserveArgs) -> Result<(), ObserveError> {
    let client = kube::Client::try_default()
        .await
        .map_err(ObserveError::Client)?;
    let metrics = Arc::new(ObserveMetrics::new(args.max_owners));
    let mut signals = Signals::install()?;
    let identity = args.identity();

    let ops = Ops::start(args, metrics.clone()).await?;

    let manager = lease(client.clone(), args, &identity).await?;
    let (mut leader, mut lease_task) = manager.watch().await;
    tracing::info!(%identity, lease = %format!("{}/{}", args.lease_namespace, args.lease_name), metrics = %args.metrics_listen, "observer started; waiting for the Lease");

    let leases: Api<Lease> = Api::namespaced(client.clone(), &args.lease_namespace);
    let mut standby = tokio::time::interval(STANDBY_CHECK);
    let mut observing: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> = None;
    let mut paused = false;
    loop {
        tokio::select! {
            signal = signals.next() => {
                tracing::info!(signal, "shutting down: deciding what is pending, then releasing the Lease");
                break;
            }
            _ = standby.tick() => {
                let lease = leases.get_opt(&args.lease_name).await.ok().flatten();
                let holds = lease.as_ref().is_some_and(|l| holds_unexpired(l, &identity));
                if observing.is_some() && !holds {
                    // kube-lease-manager still calls us leader until its
                    // next renewal fails: an expired Lease (an API server
                    // outage) may already be another replica's.
                    tracing::warn!(%identity, "the Lease is not ours or has expired: observing pauses");
                    stop_observing(observing.take()).await;
                    paused = true;
                } else if observing.is_none() && holds && *leader.borrow() {
                    // This check can see the Lease taken before the election's notice.
                    let started = if paused { RESUMED } else { HOLDING };
                    tracing::info!(%identity, "{started}");
                    paused = false;
                    observing = Some(start_observing(&client, &metrics, &identity, args.settle));
                } else if observing.is_none() && lease.as_ref().is_some_and(is_released) {
                    // kube-lease-manager's candidate sleeps until the holder's
                    // Lease would expire, even when the holder released it on
                    // its way out; a released Lease is taken at once instead.
                    tracing::info!(%identity, "the Lease was released: standing again at once");
                    match self::lease(client.clone(), args, &identity).await {
                        Ok(fresh) => {
                            lease_task.abort();
                            (leader, lease_task) = fresh.watch().await;
                        }
                        // The old candidacy carries on; the next check tries again.
                        Err(error) => tracing::warn!(%error, "standing again failed"),
                    }
                }
            }
            changed = leader.changed() => {
                if changed.is_err() {
                    tracing::error!("the leader election ended; observing stops");
                    break;
                }
                let is_leader = *leader.borrow_and_update();
                metrics.set_leader(is_leader);
                if is_leader && observing.is_none() {
                    tracing::info!(%identity, "{HOLDING}");
                    observing = Some(start_observing(&client, &metrics, &identity, args.settle));
                } else if !is_leader && observing.is_some() {
                    tracing::warn!(%identity, "lost the Lease: observing stops");
                    stop_observing(observing.take()).await;
                }
            }
        }
    }
    ops.state.ready.store(false, Ordering::SeqCst);
    stop_observing(observing.take()).await;
    metrics.set_leader(false);
    // Dropping the receiver makes the election task release the Lease.
    drop(leader);
    release(lease_task).await;
    ops.stop().await;
    Ok(())
}

/// The operations port's server.
struct Ops {
    state: Arc<OpsState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ops {
    async fn start(args: &ObserveArgs, metrics: Arc<ObserveMetrics>) -> Result<Ops, ObserveError> {
        let listener = tokio::net::TcpListener::bind(args.metrics_listen)
            .await
            .map_err(|source| ObserveError::Bind {
                addr: args.metrics_listen,
                source,
            })?;
        let state = Arc::new(OpsState {
            metrics,
            ready: AtomicBool::new(true),
        });
        let (stop, stopped_rx) = watch::channel(false);
        let task = tokio::spawn(serve_ops(
            listener,
            ops_router(state.clone()),
            stopped(stopped_rx),
        ));
        Ok(Ops { state, stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Whether the Lease has no holder: its last holder let it go.
fn is_released(lease: &Lease) -> bool {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .is_none_or(str::is_empty)
}

/// Whether `identity` holds the Lease and its last renewal has not expired.
fn holds_unexpired(lease: &Lease, identity: &str) -> bool {
    let Some(spec) = lease.spec.as_ref() else {
        return false;
    };
    let (Some(renewed), Some(duration)) = (spec.renew_time.as_ref(), spec.lease_duration_seconds)
    else {
        return false;
    };
    spec.holder_identity.as_deref() == Some(identity)
        && renewed.0.as_second() + i64::from(duration) > Timestamp::now().as_second()
}

/// Stops the leader's work, deciding what is pending, and waits for it.
async fn stop_observing(observing: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>) {
    if let Some((stop, task)) = observing {
        let _ = stop.send(true);
        let _ = task.await;
    }
}

/// Spawns the leader's work.
fn start_observing(
    client: &kube::Client,
    metrics: &Arc<ObserveMetrics>,
    identity: &str,
    settle: Duration,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, stopped_rx) = watch::channel(false);
    let task = tokio::spawn(observe(
        client.clone(),
        metrics.clone(),
        identity.to_string(),
        settle,
        stopped(stopped_rx),
    ));
    (stop, task)
}

/// This replica's candidacy for the Lease (created when missing).
async fn lease(
    client: kube::Client,
    args: &ObserveArgs,
    identity: &str,
) -> Result<LeaseManager, ObserveError> {
    let duration = args.lease_duration.as_secs();
    LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(identity)
        .with_duration(duration)
        .with_grace(LEASE_RENEW_BEFORE.min(duration.saturating_sub(1)).max(1))
        .build()
        .await
        .map_err(|source| ObserveError::Lease {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            source,
        })
}

async fn release(
    lease_task: tokio::task::JoinHandle<
        Result<LeaseManager, kube_lease_manager::LeaseManagerError>,
    >,
) {
    match tokio::time::timeout(RELEASE_TIMEOUT, lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the Lease"),
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "releasing the Lease failed; it expires by itself");
        }
        _ => tracing::warn!("releasing the Lease took too long; it expires by itself"),
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The leader's work, until `stop`.
async fn observe(
    client: kube::Client,
    metrics: Arc<ObserveMetrics>,
    identity: String,
    settle: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut tracker = Tracker::new(settle);
    let mut owners = Owners::new(client.clone());
    let mut recorder = Recorder::new(client.clone(), identity);
    let pods =
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()).default_backoff();
    let hooks = watcher(
        Api::<CoreEvent>::all(client),
        watcher::Config::default().fields("reason=FailedPreStopHook"),
    )
    .default_backoff();
    let (mut pods, mut hooks) = (std::pin::pin!(pods), std::pin::pin!(hooks));
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(event) = pods.next() => match event {
                Ok(event) => {
                    let listed = matches!(event, watcher::Event::InitDone);
                    if let Some((pod, error)) = tracker.pod_event(event, Instant::now()) {
                        tracing::warn!(%pod, %error, "skipped a pod gracehook patched");
                        if let Some(reason) = error.skip_reason() {
                            metrics.skipped(reason);
                        }
                    }
                    if listed {
                        tracing::info!(terminating = tracker.terminating(), "pods listed; following the terminations");
                    }
                }
                Err(error) => tracing::warn!(%error, "pod watch failed; it restarts with a relist"),
            },
            Some(event) = hooks.next() => match event {
                Ok(event) => tracker.hook_event(event),
                Err(error) => tracing::warn!(%error, "FailedPreStopHook watch failed; it restarts with a relist"),
            },
            _ = tick.tick() => {
                let due = tracker.due(Instant::now());
                record(due, &mut owners, &mut recorder, &metrics).await;
                recorder.flush(&metrics).await;
            }
        }
    }
    let pending = tracker.drain_pending();
    record(pending, &mut owners, &mut recorder, &metrics).await;
    recorder.flush(&metrics).await;
}

async fn record(
    ended: Vec<Ended>,
    owners: &mut Owners,
    recorder: &mut Recorder,
    metrics: &ObserveMetrics,
) {
    for Ended {
        termination: t,
        failures,
    } in ended
    {
        let Some(verdict) = decide(&t, &failures) else {
            continue;
        };
        let workload = owners.workload(&t).await;
        #[allow(clippy::cast_precision_loss)] // seconds: far below 2^52
        let ratio = verdict
            .drain_seconds
            .filter(|_| t.grace > 0)
            .map(|drain| drain as f64 / t.grace as f64);
        metrics.termination(
            &t.namespace,
            workload.metric_kind(),
            workload.metric_name(),
            verdict.outcome,
            ratio,
        );
        tracing::info!(
            namespace = %t.namespace,
            pod = %t.name,
            owner_kind = %workload.owner.kind,
            owner = %workload.owner.name,
            outcome = verdict.outcome.as_str(),
            container = verdict.container.as_deref().unwrap_or(""),
            drain_seconds = verdict.drain_seconds.unwrap_or(-1),
            grace = t.grace,
            "{}",
            verdict.sentence
        );
        recorder.add(workload, &t, &verdict, Instant::now());
    }
}
