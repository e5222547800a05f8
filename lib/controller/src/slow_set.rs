//! [`SlowSet`]: objects whose last operation failed as infeasible and that are retried at a
//! slower rate (csi-lib-utils' `slowset`): an entry holds for a retention time (the sidecars'
//! `--retry-interval-max`), after which the object may be tried again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What is kept about an object in the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowEntry {
    /// When the object was added.
    pub since: Instant,
    /// The UID of the StorageClass the operation failed with (empty when it does not matter):
    /// a changed class may make the operation feasible.
    pub storage_class_uid: String,
}

impl SlowEntry {
    /// An entry added now.
    pub fn now() -> Self {
        SlowEntry {
            since: Instant::now(),
            storage_class_uid: String::new(),
        }
    }
}

/// A set of object keys (`namespace/name`, or UIDs) with the time each was added. Shared by
/// workers.
#[derive(Debug)]
pub struct SlowSet {
    retention: Duration,
    entries: Mutex<HashMap<String, SlowEntry>>,
}

impl SlowSet {
    /// An empty set whose entries hold for `retention`.
    pub fn new(retention: Duration) -> Self {
        SlowSet {
            retention,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, SlowEntry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `key` unless it is there and its retention has not passed (an entry keeps its
    /// time; an expired one is replaced, as if [`SlowSet::remove_expired`] had dropped it
    /// already). Whether it was added.
    ///
    /// Adding also drops every other expired entry: an object deleted while in the set is
    /// never looked up again, and without a sweep its entry would stay for the life of the
    /// process (csi-lib-utils sweeps from a background loop; here the set is swept by the
    /// failures that fill it, so it holds at most the keys added within one retention).
    pub fn add(&self, key: &str, entry: SlowEntry) -> bool {
        let mut entries = self.entries();
        if entries
            .get(key)
            .is_some_and(|old| old.since.elapsed() < self.retention)
        {
            return false;
        }
        let retention = self.retention;
        entries.retain(|_, old| old.since.elapsed() <= retention);
        entries.insert(key.to_string(), entry);
        true
    }

    /// The entry of `key`, expired or not.
    pub fn get(&self, key: &str) -> Option<SlowEntry> {
        self.entries().get(key).cloned()
    }

    /// Whether `key` is in the set and its retention has not passed.
    pub fn contains(&self, key: &str) -> bool {
        self.entries()
            .get(key)
            .is_some_and(|entry| entry.since.elapsed() < self.retention)
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) {
        self.entries().remove(key);
    }

    /// How long until `key`'s retention passes (zero when it has, or `key` is not there).
    pub fn time_remaining(&self, key: &str) -> Duration {
        self.entries()
            .get(key)
            .map(|entry| self.retention.saturating_sub(entry.since.elapsed()))
            .unwrap_or_default()
    }

    /// Drops the entries whose retention has passed (what the set's background loop does).
    pub fn remove_expired(&self) {
        let retention = self.retention;
        self.entries()
            .retain(|_, entry| entry.since.elapsed() <= retention);
    }

    /// How many entries the set holds, expired ones included.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether the set holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_hold_for_the_retention_time() {
        let set = SlowSet::new(Duration::from_secs(60));
        assert!(set.add("ns/a", SlowEntry::now()));
        assert!(
            !set.add("ns/a", SlowEntry::now()),
            "an entry keeps its first time"
        );
        assert!(set.contains("ns/a"));
        assert!(!set.contains("ns/b"));
        let remaining = set.time_remaining("ns/a");
        assert!(remaining > Duration::from_secs(59) && remaining <= Duration::from_secs(60));
        set.remove("ns/a");
        assert!(!set.contains("ns/a"));
        assert_eq!(set.time_remaining("ns/a"), Duration::ZERO);
    }

    #[test]
    fn expired_entries_are_not_contained_and_are_swept() {
        let set = SlowSet::new(Duration::from_millis(1));
        let old = SlowEntry {
            since: Instant::now() - Duration::from_secs(1),
            storage_class_uid: "uid".into(),
        };
        set.add("ns/a", old.clone());
        assert!(!set.contains("ns/a"));
        assert_eq!(set.get("ns/a"), Some(old));
        assert_eq!(set.time_remaining("ns/a"), Duration::ZERO);
        set.remove_expired();
        assert!(set.is_empty());
    }

    #[test]
    fn adding_drops_the_expired_entries_of_objects_never_seen_again() {
        let set = SlowSet::new(Duration::from_secs(60));
        let old = |key: &str| {
            set.add(
                key,
                SlowEntry {
                    since: Instant::now() - Duration::from_secs(61),
                    storage_class_uid: String::new(),
                },
            )
        };
        old("ns/deleted-1");
        old("ns/deleted-2");
        assert!(set.add("ns/kept", SlowEntry::now()));
        assert_eq!(set.len(), 1);
        assert!(set.contains("ns/kept"));
        assert!(set.add("ns/other", SlowEntry::now()));
        assert_eq!(set.len(), 2, "entries within their retention stay");
    }

    #[test]
    fn an_expired_entry_is_replaced() {
        let set = SlowSet::new(Duration::from_secs(60));
        let old = SlowEntry {
            since: Instant::now() - Duration::from_secs(61),
            storage_class_uid: "old".into(),
        };
        set.add("ns/a", old);
        let new = SlowEntry {
            since: Instant::now(),
            storage_class_uid: "new".into(),
        };
        assert!(set.add("ns/a", new.clone()));
        assert_eq!(set.get("ns/a"), Some(new));
        assert!(set.contains("ns/a"));
    }
}
