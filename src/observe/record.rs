//! What the observer writes where people look: one Event per workload and
//! outcome (`events.k8s.io/v1`, on the Deployment, StatefulSet, ...), kept
//! as a series — its count moving, its note the first pod's sentence (the API
//! keeps a note immutable) — so a 500-pod rollout makes one Event per
//! outcome, not 500. The annotation
//! [`RECORD`] carries the numbers `gracehook drains` reads back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};

use super::facts::Termination;
use super::metrics::ObserveMetrics;
use super::outcome::{Outcome, Verdict};
use super::owners::Workload;

/// The Events' `reportingController`; `gracehook drains` lists by it.
pub const CONTROLLER: &str = "gracehook.io/observe";

/// The Event annotation with the series' numbers.
pub const RECORD: &str = "gracehook.io/drains";

/// A series older than this starts a new Event: the API server deletes
/// Events an hour after their last change (`--event-ttl`), and a fresh
/// series keeps `kubectl describe`'s "(x3 over 5m)" about this rollout.
const SERIES_AGE: Duration = Duration::from_secs(30 * 60);

/// Series kept at once; the oldest go first.
const MAX_SERIES: usize = 2000;

/// The API caps an Event's note at 1 kB.
const MAX_NOTE: usize = 1024;

/// The numbers of one series, as written in [`RECORD`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainRecord {
    /// The outcome (`clean`, `killed`, ...).
    pub outcome: String,
    /// Terminations in the series.
    pub pods: u64,
    /// The longest drain seen (deletion to last exit), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_drain_seconds: Option<i64>,
    /// The grace period of the pod with that drain, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
    /// Its `gracehook.io/request-timeout`, when gracehook's drain hook ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_seconds: Option<u64>,
    /// For kills: the request timeout to try next (the largest suggested).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_request_timeout_seconds: Option<u64>,
    /// The latest pod.
    pub last_pod: String,
}

struct Series {
    workload: Workload,
    outcome: Outcome,
    record: DrainRecord,
    note: String,
    started: Instant,
    event: Option<String>,
    dirty: bool,
}

/// The series being written, and the client that writes them.
pub struct Recorder {
    client: kube::Client,
    instance: String,
    series: HashMap<(Workload, Outcome), Series>,
}

impl Recorder {
    /// `instance`: this replica's identity (`reportingInstance`).
    pub fn new(client: kube::Client, instance: String) -> Recorder {
        Recorder {
            client,
            instance,
            series: HashMap::new(),
        }
    }

    /// Adds one decided termination to its workload's series.
    pub fn add(&mut self, workload: Workload, t: &Termination, verdict: &Verdict, now: Instant) {
        let key = (workload.clone(), verdict.outcome);
        if self
            .series
            .get(&key)
            .is_some_and(|s| now.duration_since(s.started) > SERIES_AGE)
        {
            self.series.remove(&key);
        }
        if self.series.len() >= MAX_SERIES && !self.series.contains_key(&key) {
            self.forget_oldest();
        }
        let series = self.series.entry(key).or_insert_with(|| Series {
            workload,
            outcome: verdict.outcome,
            record: DrainRecord {
                outcome: verdict.outcome.as_str().to_string(),
                pods: 0,
                longest_drain_seconds: None,
                grace_seconds: None,
                request_timeout_seconds: None,
                suggested_request_timeout_seconds: None,
                last_pod: String::new(),
            },
            note: String::new(),
            started: now,
            event: None,
            dirty: false,
        });
        merge(&mut series.record, t, verdict);
        series.note = note(&verdict.sentence, &series.record);
        series.dirty = true;
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .series
            .iter()
            .min_by_key(|(_, s)| s.started)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.series.remove(&key);
        }
    }

    /// Writes every series changed since the last flush: a new Event, or a
    /// patch of its count and numbers.
    pub async fn flush(&mut self, metrics: &ObserveMetrics) {
        let instance = self.instance.clone();
        for series in self.series.values_mut().filter(|s| s.dirty) {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &series.workload.namespace);
            let result = match &series.event {
                Some(name) => match api
                    .patch(name, &PatchParams::default(), &Patch::Merge(patch(series)))
                    .await
                {
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        create(&api, series, &instance).await
                    }
                    other => other.map(|_| ()),
                },
                None => create(&api, series, &instance).await,
            };
            match result {
                Ok(()) => series.dirty = false,
                Err(error) => {
                    metrics.event_error();
                    // A refusal stays a refusal; anything else is tried again.
                    let permanent =
                        matches!(&error, kube::Error::Api(s) if s.code < 500 && s.code != 429);
                    tracing::warn!(
                        namespace = %series.workload.namespace,
                        workload = %series.workload.owner.name,
                        outcome = series.outcome.as_str(),
                        %error,
                        retried = !permanent,
                        "the API refused the drain Event"
                    );
                    if permanent {
                        series.dirty = false;
                    }
                }
            }
        }
    }
}

async fn create(api: &Api<Event>, series: &mut Series, instance: &str) -> Result<(), kube::Error> {
    let name = event_name(&series.workload.owner.name, series.outcome);
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(series.workload.namespace.clone()),
            annotations: Some([(RECORD.to_string(), record_json(&series.record))].into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(Timestamp::now())),
        action: Some("Drain".into()),
        reason: Some(series.outcome.reason().into()),
        type_: Some(event_type(series.outcome).into()),
        note: Some(series.note.clone()),
        reporting_controller: Some(CONTROLLER.into()),
        reporting_instance: Some(instance.chars().take(128).collect()),
        regarding: Some(ObjectReference {
            api_version: Some(series.workload.owner.api_version.clone()),
            kind: Some(series.workload.owner.kind.clone()),
            name: Some(series.workload.owner.name.clone()),
            namespace: Some(series.workload.namespace.clone()),
            uid: Some(series.workload.owner.uid.clone()),
            ..Default::default()
        }),
        series: (series.record.pods > 1).then(|| EventSeries {
            count: i32::try_from(series.record.pods).unwrap_or(i32::MAX),
            last_observed_time: MicroTime(Timestamp::now()),
        }),
        ..Default::default()
    };
    api.create(&PostParams::default(), &event).await?;
    series.event = Some(name);
    Ok(())
}

/// The update of a written series. The API server refuses any change to
/// an Event's note ("field is immutable"): the note stays the first pod's
/// sentence, and the count and the numbers move.
fn patch(series: &Series) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"annotations": {RECORD: record_json(&series.record)}},
        "series": {
            "count": series.record.pods,
            "lastObservedTime": MicroTime(Timestamp::now()),
        },
    })
}

fn record_json(record: &DrainRecord) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

fn event_type(outcome: Outcome) -> &'static str {
    if outcome.is_warning() {
        "Warning"
    } else {
        "Normal"
    }
}

/// `web.drainkilled.1893f0c2a1b4c5d6`: unique, and a valid name however
/// long the workload's.
fn event_name(workload: &str, outcome: Outcome) -> String {
    let stamp = Timestamp::now().as_nanosecond();
    let prefix: String = workload.chars().take(200).collect();
    format!(
        "{prefix}.{}.{stamp:x}",
        outcome.reason().to_ascii_lowercase()
    )
}

/// Folds one termination into a series' numbers.
pub fn merge(record: &mut DrainRecord, t: &Termination, verdict: &Verdict) {
    record.pods += 1;
    record.last_pod.clone_from(&t.name);
    // Option orders None first: the first drain with a time wins over none.
    if verdict.drain_seconds >= record.longest_drain_seconds {
        record.longest_drain_seconds = verdict.drain_seconds;
        record.grace_seconds = Some(t.grace);
        record.request_timeout_seconds = t
            .containers
            .iter()
            .find_map(super::facts::ContainerEnd::request_timeout);
    }
    record.suggested_request_timeout_seconds = record
        .suggested_request_timeout_seconds
        .max(verdict.suggested_request_timeout);
}

/// The note, written once when the Event is created: the sentence of the
/// pod that opened the series, with the series so far when several pods were
/// decided before the first write.
pub fn note(sentence: &str, record: &DrainRecord) -> String {
    let mut note = sentence.to_string();
    if record.pods > 1 {
        note.push_str(&format!(" ({} pods {} so far", record.pods, record.outcome));
        if let (Some(drain), Some(grace)) = (record.longest_drain_seconds, record.grace_seconds) {
            note.push_str(&format!("; longest drain {drain}s of {grace}s"));
        }
        note.push(')');
    }
    if let Some(timeout) = record.suggested_request_timeout_seconds {
        note.push_str(&format!(
            "; raise gracehook.io/request-timeout to at least {timeout}s"
        ));
    }
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}
