//! What the monitor writes on a PersistentVolumeClaim about its volume, and what it remembers
//! having written and recorded.
//!
//! # The PVC's `status.healthStatus` (v0.19, KEP-1432's update)
//!
//! Kubernetes 1.37 added `PersistentVolumeClaimStatus.healthStatus` (feature gate
//! `CSIVolumeHealth`): `healthConditions`, a list keyed by (`status`, `reason`) whose `status`
//! is `Inaccessible`, `DataLoss` or `Degraded`, and `lastTransitionTime`, when the current set
//! of conditions first appeared. The monitor owns the field: the driver's report replaces the
//! stored list (no merge), an unchanged report writes nothing, and a failed CSI call is not a
//! recovery (the stored list stays).
//!
//! A CSI 1.13 driver reports `VolumeHealth` entries, each mapped to one condition
//! ([`crate::volume_health`]). A driver on CSI 1.12 or older reports one
//! `VolumeCondition {abnormal, message}`; an abnormal one becomes one condition `{status:
//! Degraded, reason: VolumeConditionAbnormal, message}` — "not operating optimally" is the CSI
//! definition of abnormal, and the reason is the one the Warning Event carries. Recovery
//! removes `healthStatus`. Writes are JSON merge
//! patches of the `status` subresource (RBAC: `persistentvolumeclaims/status` patch). An API
//! server without the field drops it silently, so the Events below stay the signal users see
//! on such clusters.
//!
//! # Events, and why no Event watch
//!
//! (The CSI 1.13 path records no such Events, as upstream master: only
//! `UnknownVolumeHealthCondition` for statuses it does not know.)
//!
//! Upstream records a Warning `VolumeConditionAbnormal` (the driver's message) on every pass
//! that finds the volume abnormal, and a Normal `VolumeConditionNormal` ("The Volume returns to
//! the healthy state") on a normal pass only while a Warning `VolumeConditionAbnormal` Event
//! about the claim still exists — which it learns from an informer over every Event of the
//! cluster, indexed by involved object UID. Events live for the API server's `--event-ttl`
//! (1h by default) after their last update.
//!
//! [`Reports`] gives the same Events without that watch: it remembers, per claim UID, when the
//! monitor last recorded the Warning, and a normal pass records the recovery Event while that
//! is less than [`EVENT_TTL`] ago. What it cannot know is a Warning written before this
//! process started (a restart, a new leader): there the claim's stored `healthStatus`, listed
//! once when the controller starts ([`Reports::seed`]), stands in for it, so a volume reported
//! abnormal before the restart still gets its recovery Event and has its status cleared.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::csi::VolumeConditionResult;

/// The reason of the Warning Event and of the status condition of an abnormal volume.
pub const ABNORMAL_REASON: &str = "VolumeConditionAbnormal";
/// The reason of the recovery Event.
pub const NORMAL_REASON: &str = "VolumeConditionNormal";
/// The recovery Event's message (upstream's `DefaultRecoveryEventMessage`).
pub const RECOVERY_MESSAGE: &str = "The Volume returns to the healthy state";
/// The condition status of an abnormal volume.
pub const DEGRADED: &str = "Degraded";
/// How long an Event lives after its last update: the API server's default `--event-ttl`.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);
/// The API's limit on a condition's message (bytes).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// One entry of `status.healthStatus.healthConditions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCondition {
    /// `Inaccessible`, `DataLoss` or `Degraded`.
    pub status: String,
    /// CamelCase reason; with `status`, the entry's identity.
    pub reason: String,
    /// What the driver said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The conditions a driver's report leads to: none for a normal volume.
pub fn conditions_for(result: &VolumeConditionResult) -> Vec<HealthCondition> {
    if !result.abnormal {
        return Vec::new();
    }
    vec![HealthCondition {
        status: DEGRADED.to_string(),
        reason: ABNORMAL_REASON.to_string(),
        message: truncate(&result.message, MAX_MESSAGE_BYTES).to_string(),
    }]
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The merge patch of the `status` subresource that stores `conditions` (or removes
/// `healthStatus` when there are none).
pub fn status_patch(conditions: &[HealthCondition], since: Timestamp) -> Value {
    if conditions.is_empty() {
        return json!({"status": {"healthStatus": null}});
    }
    json!({"status": {"healthStatus": {
        "healthConditions": conditions,
        "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }}})
}

/// Whether two condition lists have the same (`status`, `reason`) entries: then the set did
/// not transition and `lastTransitionTime` stays.
fn same_identities(a: &[HealthCondition], b: &[HealthCondition]) -> bool {
    let ids = |list: &[HealthCondition]| {
        let mut ids: Vec<(String, String)> = list
            .iter()
            .map(|c| (c.status.clone(), c.reason.clone()))
            .collect();
        ids.sort();
        ids
    };
    ids(a) == ids(b)
}

/// What the monitor last did about one claim.
#[derive(Clone, Debug, Default)]
struct Entry {
    /// The conditions stored on the claim, as far as the monitor knows.
    stored: Vec<HealthCondition>,
    /// When the stored set appeared.
    since: Option<Timestamp>,
    /// When this process last recorded the Warning Event.
    warned_at: Option<Instant>,
}

/// The status write one report needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// The merge patch of the claim's `status`.
    pub patch: Value,
    /// The conditions it stores.
    pub conditions: Vec<HealthCondition>,
    /// Their `lastTransitionTime`.
    pub since: Timestamp,
}

/// The monitor's memory of what it wrote and recorded, per claim UID. Only claims that are or
/// were abnormal have an entry; an entry goes once its status is clear and its Warning Event
/// has expired.
#[derive(Debug, Default)]
pub struct Reports {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Reports {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what the claims store now (`uid`, conditions, `lastTransitionTime`), as listed
    /// when the controller starts.
    pub fn seed(
        &self,
        stored: impl IntoIterator<Item = (String, Vec<HealthCondition>, Option<Timestamp>)>,
    ) {
        let mut entries = self.entries();
        for (uid, conditions, since) in stored {
            if conditions.is_empty() {
                continue;
            }
            let entry = entries.entry(uid).or_default();
            entry.stored = conditions;
            entry.since = since;
        }
    }

    /// The write the report `desired` needs for claim `uid`, or `None` when the claim already
    /// stores it.
    pub fn write_for(
        &self,
        uid: &str,
        desired: &[HealthCondition],
        now: Timestamp,
    ) -> Option<Write> {
        let entries = self.entries();
        let entry = entries.get(uid);
        let stored = entry.map(|e| e.stored.as_slice()).unwrap_or_default();
        if stored == desired {
            return None;
        }
        let since = match entry.and_then(|e| e.since) {
            Some(since) if !stored.is_empty() && same_identities(stored, desired) => since,
            _ => now,
        };
        Some(Write {
            patch: status_patch(desired, since),
            conditions: desired.to_vec(),
            since,
        })
    }

    /// Whether claim `uid` stores conditions, as far as the monitor knows (what it wrote, or
    /// what the claim stored when the controller started).
    pub fn has_conditions(&self, uid: &str) -> bool {
        self.entries()
            .get(uid)
            .is_some_and(|entry| !entry.stored.is_empty())
    }

    /// Notes that `write` was stored on claim `uid`.
    pub fn written(&self, uid: &str, write: &Write) {
        let mut entries = self.entries();
        let entry = entries.entry(uid.to_string()).or_default();
        entry.stored = write.conditions.clone();
        entry.since = Some(write.since);
        Self::prune(&mut entries, uid, Instant::now());
    }

    /// Notes that the Warning Event was recorded on claim `uid` at `at`.
    pub fn warned(&self, uid: &str, at: Instant) {
        self.entries().entry(uid.to_string()).or_default().warned_at = Some(at);
    }

    /// Whether a normal report on claim `uid` records the recovery Event: a Warning about it
    /// still exists (recorded by this process less than [`EVENT_TTL`] ago), or — for what an
    /// earlier process reported — the claim still stores abnormal conditions.
    pub fn recovery_due(&self, uid: &str, now: Instant) -> bool {
        let mut entries = self.entries();
        let Some(entry) = entries.get(uid) else {
            return false;
        };
        let warned = entry
            .warned_at
            .is_some_and(|at| now.saturating_duration_since(at) < EVENT_TTL);
        let due = warned || !entry.stored.is_empty();
        Self::prune(&mut entries, uid, now);
        due
    }

    /// Forgets every claim whose UID is not in `live` (deleted claims).
    pub fn retain(&self, live: &std::collections::HashSet<String>) {
        self.entries().retain(|uid, _| live.contains(uid));
    }

    /// Forgets claim `uid` (deleted).
    pub fn forget(&self, uid: &str) {
        self.entries().remove(uid);
    }

    /// How many claims the memory holds.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether the memory holds no claim.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    fn prune(entries: &mut HashMap<String, Entry>, uid: &str, now: Instant) {
        let gone = entries.get(uid).is_some_and(|e| {
            e.stored.is_empty()
                && e.warned_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= EVENT_TTL)
        });
        if gone {
            entries.remove(uid);
        }
    }
}

/// Reads `status.healthStatus` of a claim in its JSON form (the typed claim of k8s-openapi
/// 0.29 has no such field): its conditions and `lastTransitionTime`.
pub fn stored_health(claim: &Value) -> (Vec<HealthCondition>, Option<Timestamp>) {
    let health = &claim["status"]["healthStatus"];
    let conditions = health
        .get("healthConditions")
        .and_then(|list| serde_json::from_value(list.clone()).ok())
        .unwrap_or_default();
    let since = health
        .get("lastTransitionTime")
        .and_then(Value::as_str)
        .and_then(|text| text.parse().ok());
    (conditions, since)
}
