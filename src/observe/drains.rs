//! `gracehook drains`: what the observer recorded, per workload, read back
//! from its Events with nothing but read access to Events (a person with
//! `kubectl` and a view role can run it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use super::outcome::Outcome;
use super::record::{CONTROLLER, DrainRecord, RECORD};

/// One workload's drains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadDrains {
    /// Its namespace.
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, ... (`Pod` for a bare pod).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Terminations seen.
    pub terminations: u64,
    /// Per outcome, those seen (every outcome, zeros included).
    pub outcomes: BTreeMap<String, u64>,
    /// The longest drain seen, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longest_drain_seconds: Option<i64>,
    /// The grace period of the pod with that drain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
    /// What to change, when something went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// The observer's Events, in one namespace or all.
pub async fn events(
    client: kube::Client,
    namespace: Option<&str>,
) -> Result<Vec<Event>, kube::Error> {
    let api: Api<Event> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let params = ListParams::default().fields(&format!("reportingComponent={CONTROLLER}"));
    Ok(api.list(&params).await?.items)
}

/// Sums the Events' records per workload, sorted by namespace, kind, name.
/// Events without a readable record (another version, a hand edit) are
/// skipped.
pub fn summarize(events: &[Event]) -> Vec<WorkloadDrains> {
    let mut by_workload: BTreeMap<(String, String, String), WorkloadDrains> = BTreeMap::new();
    let mut suggested: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for event in events {
        let Some(record) = event
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECORD))
            .and_then(|r| serde_json::from_str::<DrainRecord>(r).ok())
        else {
            continue;
        };
        let object = &event.involved_object;
        let key = (
            object
                .namespace
                .clone()
                .or_else(|| event.metadata.namespace.clone())
                .unwrap_or_default(),
            object.kind.clone().unwrap_or_default(),
            object.name.clone().unwrap_or_default(),
        );
        let entry = by_workload
            .entry(key.clone())
            .or_insert_with(|| WorkloadDrains {
                namespace: key.0.clone(),
                kind: key.1.clone(),
                name: key.2.clone(),
                terminations: 0,
                outcomes: Outcome::ALL
                    .iter()
                    .map(|o| (o.as_str().to_string(), 0))
                    .collect(),
                longest_drain_seconds: None,
                grace_seconds: None,
                suggestion: None,
            });
        entry.terminations += record.pods;
        *entry.outcomes.entry(record.outcome.clone()).or_default() += record.pods;
        if record.longest_drain_seconds > entry.longest_drain_seconds {
            entry.longest_drain_seconds = record.longest_drain_seconds;
            entry.grace_seconds = record.grace_seconds;
        }
        if let Some(timeout) = record.suggested_request_timeout_seconds {
            let best = suggested.entry(key).or_default();
            *best = (*best).max(timeout);
        }
    }
    for (key, w) in &mut by_workload {
        w.suggestion = suggestion(w, suggested.get(key).copied());
    }
    by_workload.into_values().collect()
}

fn suggestion(w: &WorkloadDrains, timeout: Option<u64>) -> Option<String> {
    let count = |o: Outcome| w.outcomes.get(o.as_str()).copied().unwrap_or(0);
    let mut advice = Vec::new();
    if count(Outcome::Killed) > 0 {
        advice.push(match timeout {
            Some(t) => format!("raise gracehook.io/request-timeout to at least {t}s"),
            None => "raise its grace period: pods were killed while draining".to_string(),
        });
    }
    if count(Outcome::HookFailed) > 0 {
        advice.push("fix its preStop hook (kubectl describe shows the failed pods)".to_string());
    }
    if count(Outcome::ExitedEarly) > 0 {
        advice.push("a container exited during its drain delay: read its last logs".to_string());
    }
    (!advice.is_empty()).then(|| advice.join("; "))
}

/// The table people read.
pub fn table(workloads: &[WorkloadDrains]) -> String {
    let mut rows = vec![[
        "NAMESPACE".to_string(),
        "WORKLOAD".to_string(),
        "SEEN".to_string(),
        "CLEAN".to_string(),
        "KILLED".to_string(),
        "HOOK-FAILED".to_string(),
        "OTHER".to_string(),
        "LONGEST DRAIN".to_string(),
        "SUGGESTION".to_string(),
    ]];
    for w in workloads {
        let count = |o: Outcome| w.outcomes.get(o.as_str()).copied().unwrap_or(0);
        let main = count(Outcome::Clean) + count(Outcome::Killed) + count(Outcome::HookFailed);
        let longest = match (w.longest_drain_seconds, w.grace_seconds) {
            (Some(d), Some(g)) => format!("{d}s of {g}s"),
            (Some(d), None) => format!("{d}s"),
            _ => "-".to_string(),
        };
        rows.push([
            w.namespace.clone(),
            format!("{}/{}", w.kind.to_ascii_lowercase(), w.name),
            w.terminations.to_string(),
            count(Outcome::Clean).to_string(),
            count(Outcome::Killed).to_string(),
            count(Outcome::HookFailed).to_string(),
            (w.terminations - main).to_string(),
            longest,
            w.suggestion.clone().unwrap_or_else(|| "-".to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, workload: &str, record: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop",
                "annotations": {RECORD: record.to_string()}},
            "involvedObject": {"kind": "Deployment", "name": workload, "namespace": "shop"},
        }))
        .unwrap()
    }

    #[test]
    fn records_add_up_per_workload_with_the_largest_suggestion() {
        let events = [
            event(
                "a",
                "web",
                json!({"outcome": "clean", "pods": 4, "longestDrainSeconds": 5, "graceSeconds": 10, "lastPod": "p"}),
            ),
            event(
                "b",
                "web",
                json!({"outcome": "killed", "pods": 2, "longestDrainSeconds": 10, "graceSeconds": 10,
                                     "suggestedRequestTimeoutSeconds": 14, "lastPod": "q"}),
            ),
            event(
                "c",
                "web",
                json!({"outcome": "killed", "pods": 1, "suggestedRequestTimeoutSeconds": 12, "lastPod": "r"}),
            ),
            event(
                "d",
                "api",
                json!({"outcome": "clean", "pods": 3, "lastPod": "s"}),
            ),
            event("e", "api", json!("not a record")),
        ];
        let report = summarize(&events);
        assert_eq!(report.len(), 2);
        let web = &report[1];
        assert_eq!((web.name.as_str(), web.terminations), ("web", 7));
        assert_eq!(web.outcomes["killed"], 3);
        assert_eq!(
            (web.longest_drain_seconds, web.grace_seconds),
            (Some(10), Some(10))
        );
        assert_eq!(
            web.suggestion.as_deref(),
            Some("raise gracehook.io/request-timeout to at least 14s")
        );
        assert_eq!(
            (report[0].terminations, report[0].suggestion.as_deref()),
            (3, None)
        );
        let text = table(&report);
        assert!(text.contains("deployment/web"), "{text}");
        assert!(text.contains("10s of 10s"), "{text}");
    }
}
