//! The Prometheus metrics of SPEC section 7.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::admission::Outcome;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    path: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

/// Buckets from 25 µs to 2.5 s: an admission takes tens of microseconds, and
/// the interesting question is when it stops doing so.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
];

/// `outcome` values of requests that never became a review.
pub const BAD_REQUEST: &str = "bad_request";
pub const ERROR: &str = "error";

pub struct Metrics {
    registry: Registry,
    /// The counter of every (path, outcome), resolved once, so a request
    /// neither allocates labels nor takes the family's lock.
    requests: Vec<((&'static str, &'static str), Counter)>,
    requests_other: Family<RequestLabels, Counter>,
    duration: Histogram,
    inflight: Gauge,
    tls_reloads: Family<ResultLabels, Counter>,
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
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gracehook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission requests answered, by path and outcome",
            requests.clone(),
        );
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
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_reloads",
            "Reloads of the serving certificate from disk, by result",
            tls_reloads.clone(),
        );
        let cert_not_after = Gauge::default();
        registry.register_with_unit(
            "tls_cert_not_after",
            "Expiry of the serving certificate, as a Unix timestamp",
            Unit::Seconds,
            cert_not_after.clone(),
        );
        // Every series exists from the start at 0, so that rate() and alerts
        // see the first event instead of a series appearing from nowhere.
        let mut resolved = Vec::new();
        for path in ["/mutate", "/audit"] {
            let outcomes = Outcome::ALL.iter().map(|o| o.as_str());
            for outcome in outcomes.chain([BAD_REQUEST, ERROR]) {
                let counter = requests
                    .get_or_create(&RequestLabels {
                        path: path.to_string(),
                        outcome: outcome.to_string(),
                    })
                    .clone();
                resolved.push(((path, outcome), counter));
            }
        }
        for result in ["success", "error"] {
            let _ = tls_reloads.get_or_create(&ResultLabels {
                result: result.to_string(),
            });
        }
        Metrics {
            registry,
            requests: resolved,
            requests_other: requests,
            duration,
            inflight,
            tls_reloads,
            cert_not_after,
        }
    }

    pub fn observe_admission(&self, path: &str, outcome: &str, seconds: f64) {
        match self
            .requests
            .iter()
            .find(|((p, o), _)| *p == path && *o == outcome)
        {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                self.requests_other
                    .get_or_create(&RequestLabels {
                        path: path.to_string(),
                        outcome: outcome.to_string(),
                    })
                    .inc();
            }
        }
        self.duration.observe(seconds);
    }

    /// Counts a request in flight until the guard is dropped (also on panic).
    pub fn inflight(&self) -> InflightGuard {
        self.inflight.inc();
        InflightGuard(self.inflight.clone())
    }

    pub fn tls_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.tls_reloads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    pub fn set_cert_not_after(&self, unix_seconds: i64) {
        self.cert_not_after.set(unix_seconds);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub struct InflightGuard(Gauge);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
