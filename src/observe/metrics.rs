//! The observer's metrics (`docs/observability.md`, "Drain outcomes"). The
//! `owner` label is bounded: past `max_owners` distinct workloads, new
//! ones are counted under `owner="_other"`.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::outcome::Outcome;
use crate::server::routes::Exposition;

/// Observed drain time over the grace period: below 1 the drain fit.
const RATIO_BUCKETS: [f64; 6] = [0.25, 0.5, 0.75, 0.9, 1.0, 1.25];

/// The `owner` value once the cap is reached.
pub const OTHER_OWNER: &str = "_other";

type Labels = Vec<(&'static str, String)>;

/// What `/metrics` reports for the observer.
pub struct ObserveMetrics {
    registry: Registry,
    terminations: Family<Labels, Counter>,
    ratio: Family<Labels, Histogram, fn() -> Histogram>,
    leader: Gauge,
    event_errors: Counter,
    skipped: Family<Labels, Counter>,
    owners: Mutex<HashSet<(String, String, String)>>,
    max_owners: usize,
}

impl std::fmt::Debug for ObserveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObserveMetrics")
    }
}

fn ratio_histogram() -> Histogram {
    Histogram::new(RATIO_BUCKETS)
}

impl ObserveMetrics {
    /// Registers every metric; the histogram's and the outcomes' series
    /// exist at 0 from the start.
    pub fn new(max_owners: usize) -> Self {
        let mut registry = Registry::with_prefix("gracehook");
        let terminations = Family::<Labels, Counter>::default();
        registry.register(
            "terminations",
            "Terminations of pods gracehook patched, by namespace, owning workload and outcome",
            terminations.clone(),
        );
        let ratio =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(ratio_histogram);
        registry.register(
            "drain_grace_ratio",
            "Observed drain time (deletion to the last container's exit) over the grace period",
            ratio.clone(),
        );
        for outcome in Outcome::ALL {
            let _ = ratio.get_or_create(&vec![("outcome", outcome.as_str().to_string())]);
        }
        let leader = Gauge::default();
        registry.register(
            "observer_leader",
            "1 on the replica that holds the Lease and observes, 0 on the others",
            leader.clone(),
        );
        let event_errors = Counter::default();
        registry.register(
            "observer_event_errors",
            "Events on workloads that the API refused",
            event_errors.clone(),
        );
        let skipped = Family::<Labels, Counter>::default();
        registry.register(
            "observer_skipped",
            "Pods the observer could not read, by reason",
            skipped.clone(),
        );
        for reason in ["malformed-status", "incomplete-pod"] {
            let _ = skipped.get_or_create(&vec![("reason", reason.to_string())]);
        }
        ObserveMetrics {
            registry,
            terminations,
            ratio,
            leader,
            event_errors,
            skipped,
            owners: Mutex::new(HashSet::new()),
            max_owners,
        }
    }

    /// Counts one termination; `ratio` is its drain time over its grace.
    pub fn termination(
        &self,
        namespace: &str,
        owner_kind: &str,
        owner: &str,
        outcome: Outcome,
        ratio: Option<f64>,
    ) {
        let owner = self.bounded_owner(namespace, owner_kind, owner);
        self.terminations
            .get_or_create(&vec![
                ("namespace", namespace.to_string()),
                ("owner_kind", owner_kind.to_string()),
                ("owner", owner),
                ("outcome", outcome.as_str().to_string()),
            ])
            .inc();
        if let Some(ratio) = ratio {
            self.ratio
                .get_or_create(&vec![("outcome", outcome.as_str().to_string())])
                .observe(ratio);
        }
    }

    fn bounded_owner(&self, namespace: &str, kind: &str, owner: &str) -> String {
        let Ok(mut owners) = self.owners.lock() else {
            return OTHER_OWNER.to_string();
        };
        let key = (namespace.to_string(), kind.to_string(), owner.to_string());
        if owners.contains(&key) {
            return owner.to_string();
        }
        if owners.len() >= self.max_owners {
            return OTHER_OWNER.to_string();
        }
        owners.insert(key);
        owner.to_string()
    }

    /// Whether this replica observes.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// An Event the API refused.
    pub fn event_error(&self) {
        self.event_errors.inc();
    }

    /// A pod that could not be read.
    pub fn skipped(&self, reason: &'static str) {
        self.skipped
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Exposition for ObserveMetrics {
    fn encode(&self) -> String {
        ObserveMetrics::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_past_the_cap_are_counted_as_other() {
        let metrics = ObserveMetrics::new(2);
        for owner in ["a", "b", "c", "a"] {
            metrics.termination("ns", "Deployment", owner, Outcome::Clean, Some(0.5));
        }
        let text = metrics.encode();
        let line = |owner: &str| {
            format!(
                "gracehook_terminations_total{{namespace=\"ns\",owner_kind=\"Deployment\",owner=\"{owner}\",outcome=\"clean\"}}"
            )
        };
        assert!(text.contains(&format!("{} 2", line("a"))), "{text}");
        assert!(text.contains(&format!("{} 1", line("b"))), "{text}");
        assert!(text.contains(&format!("{} 1", line("_other"))), "{text}");
        assert!(!text.contains(&line("c")), "{text}");
        assert!(
            text.contains("gracehook_drain_grace_ratio_count{outcome=\"clean\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("gracehook_drain_grace_ratio_count{outcome=\"killed\"} 0"),
            "{text}"
        );
    }
}
