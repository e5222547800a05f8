//! The controller's own record of the last version of each object it handled (upstream's
//! `snapshotStore` / `contentStore` and `StoreObjectUpdate`): the watch's version, or the one
//! the controller itself just wrote, whichever is newer. A sync of an older version than the
//! one recorded is skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Resource;

/// Objects by key, newest version kept.
#[derive(Debug)]
pub struct VersionedStore<K> {
    what: &'static str,
    objects: Mutex<HashMap<String, Arc<K>>>,
}

impl<K: Resource> VersionedStore<K> {
    /// An empty store of `what` (`snapshot`, `content`), the word its errors use.
    pub fn new(what: &'static str) -> Self {
        VersionedStore {
            what,
            objects: Mutex::default(),
        }
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<K>>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The object with `key`.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.objects().get(key).cloned()
    }

    /// Forgets `key`.
    pub fn delete(&self, key: &str) {
        self.objects().remove(key);
    }

    /// Records `object` under `key` unless an older version than the recorded one: `true` if
    /// it was recorded (new, same or newer version).
    pub fn update(&self, key: &str, object: Arc<K>) -> Result<bool, String> {
        let mut objects = self.objects();
        let Some(old) = objects.get(key) else {
            objects.insert(key.to_string(), object);
            return Ok(true);
        };
        let version = |o: &K| -> Result<i64, String> {
            let rv = o.meta().resource_version.clone().unwrap_or_default();
            rv.parse::<i64>().map_err(|e| {
                format!(
                    "error parsing ResourceVersion {rv:?} of {} {key:?}: {e}",
                    self.what
                )
            })
        };
        let new_version = version(&object)?;
        let old_version = version(old)?;
        if old_version > new_version {
            return Ok(false);
        }
        objects.insert(key.to_string(), object);
        Ok(true)
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects().values().cloned().collect()
    }
}
