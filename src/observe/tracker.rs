//! Follows the watch streams of pods and of the kubelet's
//! `FailedPreStopHook` events, and hands out each termination once, when it
//! is over: its pod deleted, plus a short settle time for the kubelet's
//! events to arrive. No I/O here, so that relists and odd orders are tested
//! without a cluster.
//!
//! A restarted watch (410 Gone, a new API server) relists: terminations
//! seen in the relist carry on, and tracked pods missing from it were
//! deleted meanwhile and are decided from what was last seen. Decided uids
//! are remembered, so a pod is never counted twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::runtime::watcher::Event;

use super::facts::{FactsError, Termination, is_patched};
use super::outcome::HookFailure;

/// Pods whose hook failures are kept, and uids remembered as decided: far
/// more than terminate within an event's lifetime on any one cluster.
const REMEMBERED: usize = 20_000;

/// A termination ready to be decided, with its pod's hook failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The facts, from the pod's last object.
    pub termination: Termination,
    /// The kubelet's `FailedPreStopHook` events for the pod.
    pub failures: Vec<HookFailure>,
}

/// The observer's memory: small, and bounded by the pods terminating at
/// once (plus the uids and hook failures it remembers, a bounded number).
#[derive(Debug)]
pub struct Tracker {
    settle: Duration,
    terminating: HashMap<String, Termination>,
    relisted: Option<HashSet<String>>,
    pending: VecDeque<(Instant, Termination)>,
    decided: Remembered,
    skipped: Remembered,
    failures: HashMap<String, Vec<HookFailure>>,
    failure_order: VecDeque<String>,
}

impl Tracker {
    /// `settle`: how long after a pod is gone its outcome waits for the
    /// kubelet's events.
    pub fn new(settle: Duration) -> Tracker {
        Tracker {
            settle,
            terminating: HashMap::new(),
            relisted: None,
            pending: VecDeque::new(),
            decided: Remembered::default(),
            skipped: Remembered::default(),
            failures: HashMap::new(),
            failure_order: VecDeque::new(),
        }
    }

    /// One event of the pod watch. Returns why a patched pod could not be
    /// read, for the log and the skipped metric: once per pod.
    pub fn pod_event(&mut self, event: Event<Pod>, now: Instant) -> Option<(String, FactsError)> {
        let uid = match &event {
            Event::Apply(pod) | Event::InitApply(pod) | Event::Delete(pod) => {
                pod.metadata.uid.clone()
            }
            Event::Init | Event::InitDone => None,
        };
        let skipped = self.follow(event, now)?;
        let uid = uid.unwrap_or_default();
        if self.skipped.contains(&uid) {
            return None;
        }
        self.skipped.insert(uid);
        Some(skipped)
    }

    fn follow(&mut self, event: Event<Pod>, now: Instant) -> Option<(String, FactsError)> {
        match event {
            Event::Init => {
                self.relisted = Some(HashSet::new());
                None
            }
            Event::InitApply(pod) => {
                if let (Some(seen), Some(uid)) = (self.relisted.as_mut(), pod.metadata.uid.as_ref())
                {
                    seen.insert(uid.clone());
                }
                self.apply(&pod)
            }
            Event::Apply(pod) => self.apply(&pod),
            Event::InitDone => {
                let seen = self.relisted.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .terminating
                    .keys()
                    .filter(|uid| !seen.contains(*uid))
                    .cloned()
                    .collect();
                for uid in gone {
                    if let Some(t) = self.terminating.remove(&uid) {
                        self.schedule(t, now);
                    }
                }
                None
            }
            Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let tracked = self.terminating.remove(&uid);
                if !is_patched(&pod) {
                    return None;
                }
                match Termination::from_pod(&pod) {
                    Ok(t) => {
                        let t = match tracked {
                            Some(tracked) => tracked.ended_as(t),
                            None => t,
                        };
                        self.schedule(t, now);
                        None
                    }
                    Err(error) => {
                        // Deleted while never marked for deletion in any
                        // object the watch saw: what was last seen stands.
                        if let Some(t) = tracked {
                            self.schedule(t, now);
                        }
                        Some((name_of(&pod), error))
                    }
                }
            }
        }
    }

    fn apply(&mut self, pod: &Pod) -> Option<(String, FactsError)> {
        if !is_patched(pod) || pod.metadata.deletion_timestamp.is_none() {
            return None;
        }
        match Termination::from_pod(pod) {
            Ok(mut t) => {
                if self.decided.contains(&t.uid) {
                    return None;
                }
                if let Some(seen) = self.terminating.remove(&t.uid) {
                    t = seen.ended_as(t);
                }
                self.terminating.insert(t.uid.clone(), t);
                None
            }
            Err(error) => Some((name_of(pod), error)),
        }
    }

    fn schedule(&mut self, t: Termination, now: Instant) {
        if self.decided.contains(&t.uid) {
            return;
        }
        self.decided.insert(t.uid.clone());
        self.pending.push_back((now + self.settle, t));
    }

    /// One event of the `FailedPreStopHook` watch (any other is ignored).
    pub fn hook_event(&mut self, event: Event<CoreEvent>) {
        let (Event::Apply(e) | Event::InitApply(e)) = event else {
            return;
        };
        if e.reason.as_deref() != Some("FailedPreStopHook") {
            return;
        }
        let object = &e.involved_object;
        let (Some(uid), Some(container)) = (
            object.uid.clone(),
            object.field_path.as_deref().and_then(container_of),
        ) else {
            return;
        };
        let at = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
            .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.as_second()));
        let Some(at) = at else {
            return;
        };
        let failure = HookFailure { container, at };
        let known = self.failures.entry(uid.clone()).or_default();
        if known.contains(&failure) {
            return;
        }
        if known.is_empty() {
            self.failure_order.push_back(uid);
        }
        known.push(failure);
        while self.failure_order.len() > REMEMBERED {
            if let Some(old) = self.failure_order.pop_front() {
                self.failures.remove(&old);
            }
        }
    }

    /// The terminations whose settle time has passed, each once.
    pub fn due(&mut self, now: Instant) -> Vec<Ended> {
        let mut ended = Vec::new();
        while self.pending.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, t)) = self.pending.pop_front() {
                ended.push(self.ended(t));
            }
        }
        ended
    }

    /// Every pending termination now, settled or not (at shutdown, so that
    /// none is lost to a hand-over).
    pub fn drain_pending(&mut self) -> Vec<Ended> {
        let pending: Vec<Termination> = self.pending.drain(..).map(|(_, t)| t).collect();
        pending.into_iter().map(|t| self.ended(t)).collect()
    }

    fn ended(&mut self, termination: Termination) -> Ended {
        let failures = self.failures.remove(&termination.uid).unwrap_or_default();
        Ended {
            termination,
            failures,
        }
    }

    /// Pods being watched through their termination right now.
    pub fn terminating(&self) -> usize {
        self.terminating.len()
    }
}

/// `spec.containers{web}` -> `web`.
fn container_of(field_path: &str) -> Option<String> {
    let inner = field_path
        .strip_prefix("spec.containers{")
        .or_else(|| field_path.strip_prefix("spec.initContainers{"))?;
    inner.strip_suffix('}').map(str::to_string)
}

fn name_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// A bounded set that forgets the oldest first.
#[derive(Debug, Default)]
struct Remembered {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Remembered {
    fn contains(&self, uid: &str) -> bool {
        self.set.contains(uid)
    }

    fn insert(&mut self, uid: String) {
        if self.set.insert(uid.clone()) {
            self.order.push_back(uid);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, deleting: bool, exited: bool) -> Pod {
        let mut pod = json!({
            "metadata": {"name": uid, "namespace": "shop", "uid": uid,
                "annotations": {"gracehook.io/status": "{\"grace\":10,\"containers\":{\"web\":\"sleep\"}}"}},
            "spec": {"containers": [{"name": "web", "lifecycle": {"preStop": {"sleep": {"seconds": 2}}}}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "web", "image": "i", "imageID": "",
                "ready": true, "restartCount": 0, "state": {"running": {}}}]}
        });
        if deleting {
            pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:10Z");
            pod["metadata"]["deletionGracePeriodSeconds"] = json!(10);
        }
        if exited {
            pod["status"]["containerStatuses"][0]["state"] =
                json!({"terminated": {"exitCode": 0, "finishedAt": "2026-01-01T00:00:04Z"}});
        }
        serde_json::from_value(pod).unwrap()
    }

    #[test]
    fn a_termination_is_handed_out_once_after_its_settle_time() {
        let now = Instant::now();
        let mut tracker = Tracker::new(Duration::from_secs(5));
        tracker.pod_event(Event::Apply(pod("a", false, false)), now);
        assert_eq!(tracker.terminating(), 0);
        tracker.pod_event(Event::Apply(pod("a", true, false)), now);
        assert_eq!(tracker.terminating(), 1);
        // The kubelet's final delete (grace 0) ends the object.
        let mut last = pod("a", true, true);
        last.metadata.deletion_grace_period_seconds = Some(0);
        tracker.pod_event(Event::Delete(last), now);
        assert!(tracker.due(now).is_empty());
        let ended = tracker.due(now + Duration::from_secs(5));
        assert_eq!(ended.len(), 1);
        let t = &ended[0].termination;
        assert!(t.containers[0].exit.is_some());
        assert_eq!(t.grace, 10);
        // The same delete again (a replayed event) counts nothing.
        tracker.pod_event(Event::Delete(pod("a", true, true)), now);
        assert!(tracker.due(now + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn a_relist_decides_the_pods_deleted_meanwhile_and_keeps_the_others() {
        let now = Instant::now();
        let mut tracker = Tracker::new(Duration::ZERO);
        tracker.pod_event(Event::Apply(pod("gone", true, false)), now);
        tracker.pod_event(Event::Apply(pod("still", true, false)), now);
        tracker.pod_event(Event::Init, now);
        tracker.pod_event(Event::InitApply(pod("still", true, false)), now);
        tracker.pod_event(Event::InitDone, now);
        let ended = tracker.due(now);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].termination.uid, "gone");
        assert_eq!(tracker.terminating(), 1);
    }

    #[test]
    fn a_pod_first_seen_after_its_drain_ended_is_decided() {
        // A new leader's first list: the containers exited after the
        // deletion, and the kubelet has already set the pod Succeeded.
        let now = Instant::now();
        let mut tracker = Tracker::new(Duration::ZERO);
        let mut listed = pod("late", true, true);
        if let Some(status) = listed.status.as_mut() {
            status.phase = Some("Succeeded".into());
        }
        tracker.pod_event(Event::Init, now);
        tracker.pod_event(Event::InitApply(listed.clone()), now);
        tracker.pod_event(Event::InitDone, now);
        tracker.pod_event(Event::Delete(listed), now);
        let ended = tracker.due(now);
        assert_eq!(ended.len(), 1);
        let verdict = crate::observe::outcome::decide(&ended[0].termination, &ended[0].failures);
        assert_eq!(
            verdict.map(|v| v.outcome),
            Some(crate::observe::outcome::Outcome::Clean)
        );
    }

    #[test]
    fn hook_failures_join_their_pod() {
        let now = Instant::now();
        let mut tracker = Tracker::new(Duration::ZERO);
        let event: CoreEvent = serde_json::from_value(json!({
            "metadata": {"name": "e1", "namespace": "shop"},
            "involvedObject": {"kind": "Pod", "uid": "a", "fieldPath": "spec.containers{web}"},
            "reason": "FailedPreStopHook", "lastTimestamp": "2026-01-01T00:00:04Z"
        }))
        .unwrap();
        tracker.hook_event(Event::Apply(event.clone()));
        tracker.hook_event(Event::InitApply(event));
        tracker.pod_event(Event::Delete(pod("a", true, true)), now);
        let ended = tracker.due(now);
        assert_eq!(ended[0].failures.len(), 1);
        assert_eq!(ended[0].failures[0].container, "web");
    }

    #[test]
    fn a_malformed_status_is_reported_not_tracked() {
        let mut bad = pod("b", true, false);
        bad.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("gracehook.io/status".into(), "{oops".into());
        let mut tracker = Tracker::new(Duration::ZERO);
        let skipped = tracker.pod_event(Event::Apply(bad.clone()), Instant::now());
        assert!(matches!(skipped, Some((_, FactsError::MalformedStatus(_)))));
        // Once per pod, however often it changes.
        assert_eq!(tracker.pod_event(Event::Delete(bad), Instant::now()), None);
        assert_eq!(tracker.terminating(), 0);
    }
}
