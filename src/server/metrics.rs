//! The Prometheus metrics (`docs/observability.md`). Every series exists from
//! start-up at 0, so that `rate()` and alerts see the first event instead of
//! a series appearing from nowhere, and series are written in a stable,
//! sorted order.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::admission::{Endpoint, Outcome};

/// Buckets from 25 µs to 2.5 s: an admission takes tens of microseconds, and
/// the interesting question is when it stops doing so.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
];

/// How a request to an admission path ended: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// A review was answered.
    Review(Outcome),
    /// The request never became a review (HTTP 4xx).
    BadRequest,
    /// gracehook failed (HTTP 500).
    Error,
    /// Refused unread for want of memory (HTTP 503): the API server applies
    /// the webhook's `failurePolicy`.
    Shed,
    /// The body did not arrive in time (HTTP 408).
    Timeout,
}

impl Answered {
    /// Every value, for the series created at start-up.
    pub fn all() -> impl Iterator<Item = Answered> {
        Outcome::ALL.into_iter().map(Answered::Review).chain([
            Answered::BadRequest,
            Answered::Error,
            Answered::Shed,
            Answered::Timeout,
        ])
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Answered::Review(outcome) => outcome.as_str(),
            Answered::BadRequest => "bad_request",
            Answered::Error => "error",
            Answered::Shed => "shed",
            Answered::Timeout => "timeout",
        }
    }
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Arc<SortedCounters>,
    duration: Histogram,
    inflight: Gauge,
    tls_reloads: Arc<SortedCounters>,
    cert_not_after: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric, each series at 0.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gracehook");
        let requests = Arc::new(SortedCounters::new(
            "admission_requests",
            "Admission requests answered, by path and outcome",
            Endpoint::ALL.into_iter().flat_map(|endpoint| {
                Answered::all()
                    .map(move |a| vec![("path", endpoint.path()), ("outcome", a.as_str())])
            }),
        ));
        registry.register_collector(Box::new(requests.clone()));
        let duration = Histogram::new(LATENCY_BUCKETS);
        registry.register_with_unit(
            "admission_duration",
            "Time to answer an admission request, from body received to response ready",
            Unit::Seconds,
            duration.clone(),
        );
        let inflight = Gauge::default();
        registry.register(
            "inflight_requests",
            "Admission requests being answered",
            inflight.clone(),
        );
        let tls_reloads = Arc::new(SortedCounters::new(
            "tls_reloads",
            "Reloads of the serving certificate from disk, by result",
            [true, false].map(|ok| vec![("result", reload_result(ok))]),
        ));
        registry.register_collector(Box::new(tls_reloads.clone()));
        let cert_not_after = Gauge::default();
        registry.register_with_unit(
            "tls_cert_not_after",
            "Expiry of the serving certificate, as a Unix timestamp",
            Unit::Seconds,
            cert_not_after.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            inflight,
            tls_reloads,
            cert_not_after,
        }
    }

    /// Counts one request to `endpoint` and its time.
    pub fn observe_admission(&self, endpoint: Endpoint, answered: Answered, seconds: f64) {
        self.requests
            .inc(&[("path", endpoint.path()), ("outcome", answered.as_str())]);
        self.duration.observe(seconds);
    }

    /// Counts a request in flight until the guard is dropped (also on panic).
    pub fn inflight(&self) -> InflightGuard {
        self.inflight.inc();
        InflightGuard(self.inflight.clone())
    }

    /// Counts a reload of the serving certificate.
    pub fn tls_reload(&self, ok: bool) {
        self.tls_reloads.inc(&[("result", reload_result(ok))]);
    }

    /// Publishes the serving certificate's expiry.
    pub fn set_cert_not_after(&self, unix_seconds: i64) {
        self.cert_not_after.set(unix_seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn reload_result(ok: bool) -> &'static str {
    if ok { "success" } else { "error" }
}

/// Decrements the in-flight gauge when dropped.
pub struct InflightGuard(Gauge);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

type Labels = Vec<(&'static str, &'static str)>;

/// A counter per label set, all created up front and written sorted by their
/// labels. (prometheus-client's `Family` writes in hash order, which changes
/// from run to run, and takes a lock and builds the labels on every `inc`.)
#[derive(Debug)]
struct SortedCounters {
    name: &'static str,
    help: &'static str,
    series: Vec<(Labels, Counter)>,
}

impl SortedCounters {
    fn new(
        name: &'static str,
        help: &'static str,
        label_sets: impl IntoIterator<Item = Labels>,
    ) -> Self {
        let mut series: Vec<(Labels, Counter)> = label_sets
            .into_iter()
            .map(|labels| (labels, Counter::default()))
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        SortedCounters { name, help, series }
    }

    /// Counts one event. Label sets are fixed at start-up; an unknown one is
    /// a bug and is not counted rather than panicking on a request path.
    fn inc(&self, labels: &[(&str, &str)]) {
        if let Some((_, counter)) = self.series.iter().find(|(l, _)| l.as_slice() == labels) {
            counter.inc();
        }
    }
}

impl Collector for SortedCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family =
            encoder.encode_descriptor(self.name, self.help, None, MetricType::Counter)?;
        for (labels, counter) in &self.series {
            counter.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_exists_at_start_in_a_stable_sorted_order() {
        let text = Metrics::new().encode();
        assert_eq!(text, Metrics::new().encode(), "two encodings differ");
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("gracehook_admission_requests_total{"))
            .collect();
        assert_eq!(requests.len(), 2 * 11, "{text}");
        let mut sorted = requests.clone();
        sorted.sort_unstable();
        assert_eq!(requests, sorted);
        assert!(
            text.contains(r#"gracehook_tls_reloads_total{result="error"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn a_request_is_counted_under_its_path_and_outcome() {
        let metrics = Metrics::new();
        metrics.observe_admission(Endpoint::Mutate, Answered::Review(Outcome::Patched), 0.001);
        metrics.observe_admission(Endpoint::Audit, Answered::BadRequest, 0.001);
        metrics.tls_reload(false);
        let text = metrics.encode();
        for line in [
            r#"gracehook_admission_requests_total{path="/mutate",outcome="patched"} 1"#,
            r#"gracehook_admission_requests_total{path="/audit",outcome="bad_request"} 1"#,
            r#"gracehook_admission_requests_total{path="/mutate",outcome="denied"} 0"#,
            r#"gracehook_tls_reloads_total{result="error"} 1"#,
            "gracehook_admission_duration_seconds_count 2",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
    }
}
