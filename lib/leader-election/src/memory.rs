//! An in-memory [`LeaseStore`] that keeps the API server's rules the election relies on, for
//! tests here and in the crates that run controllers under an election.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::coordination::v1::Lease;

use crate::store::{LeaseStore, StoreError, metadata_of};

type Interference = Box<dyn FnOnce(&mut Lease) + Send>;

/// Leases in memory, with the API server's optimistic concurrency: every write gets a new
/// `resourceVersion`, a create of an existing Lease is [`StoreError::AlreadyExists`], and a
/// replace whose `resourceVersion` is not the stored one is [`StoreError::Conflict`] (an empty
/// one is an unconditional update, as the API server allows for Leases).
///
/// Clones share the Leases, so several electors on clones of one store compete as candidates
/// on one API server do. For tests it can also fail or stall every call and let "someone else"
/// write between a candidate's read and its write.
#[derive(Clone, Default)]
pub struct MemoryLeaseStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    leases: BTreeMap<(String, String), Lease>,
    last_resource_version: u64,
    unavailable: bool,
    stalled: bool,
    before_next_replace: Option<Interference>,
}

impl fmt::Debug for MemoryLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryLeaseStore")
            .field("leases", &inner.leases.keys().collect::<Vec<_>>())
            .field("unavailable", &inner.unavailable)
            .field("stalled", &inner.stalled)
            .finish()
    }
}

impl MemoryLeaseStore {
    /// An empty store.
    pub fn new() -> MemoryLeaseStore {
        MemoryLeaseStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored Lease `namespace/name`, bypassing faults.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Lease> {
        self.lock()
            .leases
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Stores `lease` unconditionally (creating or overwriting it) with a new
    /// `resourceVersion`, as another writer would; returns what was stored. Panics if the Lease
    /// has no namespace or name.
    pub fn put(&self, lease: Lease) -> Lease {
        let mut inner = self.lock();
        inner
            .store(lease)
            .expect("a lease needs a namespace and a name")
    }

    /// While `true`, every get, create and replace fails with [`StoreError::Unavailable`].
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// While `true`, every get, create and replace that starts never completes (a hung
    /// request); calls that started stalled stay stalled.
    pub fn set_stalled(&self, stalled: bool) {
        self.lock().stalled = stalled;
    }

    /// Runs `interfere` on the stored Lease, and gives it a new `resourceVersion`, just before
    /// the next replace checks its precondition: someone else writing between our read and our
    /// write. Does nothing if that replace's Lease is not stored.
    pub fn interfere_before_next_replace(
        &self,
        interfere: impl FnOnce(&mut Lease) + Send + 'static,
    ) {
        self.lock().before_next_replace = Some(Box::new(interfere));
    }

    /// Waits out a stall, then fails if unavailable.
    async fn enter(&self) -> Result<(), StoreError> {
        let (stalled, unavailable) = {
            let inner = self.lock();
            (inner.stalled, inner.unavailable)
        };
        if stalled {
            std::future::pending::<()>().await;
        }
        if unavailable {
            return Err(StoreError::Unavailable(
                "the fake API server is down".to_string(),
            ));
        }
        Ok(())
    }
}

fn key_of(lease: &Lease) -> Result<(String, String), StoreError> {
    let (namespace, name) = metadata_of(lease)?;
    Ok((namespace.to_string(), name.to_string()))
}

impl Inner {
    fn store(&mut self, mut lease: Lease) -> Result<Lease, StoreError> {
        let key = key_of(&lease)?;
        self.last_resource_version += 1;
        lease.metadata.resource_version = Some(self.last_resource_version.to_string());
        self.leases.insert(key, lease.clone());
        Ok(lease)
    }
}

impl LeaseStore for MemoryLeaseStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Lease>, StoreError> {
        self.enter().await?;
        Ok(self.lease(namespace, name))
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.enter().await?;
        let key = key_of(lease)?;
        let mut inner = self.lock();
        if inner.leases.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        inner.store(lease.clone())
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.enter().await?;
        let key = key_of(lease)?;
        let mut inner = self.lock();
        if let Some(interfere) = inner.before_next_replace.take()
            && let Some(mut stored) = inner.leases.get(&key).cloned()
        {
            interfere(&mut stored);
            inner.store(stored)?;
        }
        let Some(stored) = inner.leases.get(&key) else {
            return Err(StoreError::NotFound);
        };
        if let Some(expected) = &lease.metadata.resource_version
            && stored.metadata.resource_version.as_ref() != Some(expected)
        {
            return Err(StoreError::Conflict);
        }
        inner.store(lease.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn lease(holder: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("l".into()),
                ..ObjectMeta::default()
            },
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(holder.into()),
                ..Default::default()
            }),
        }
    }

    #[tokio::test]
    async fn enforces_the_api_servers_preconditions() {
        let store = MemoryLeaseStore::new();
        assert_eq!(store.get("ns", "l").await.unwrap(), None);
        let created = store.create(&lease("a")).await.unwrap();
        assert_eq!(created.metadata.resource_version.as_deref(), Some("1"));
        assert!(matches!(
            store.create(&lease("b")).await,
            Err(StoreError::AlreadyExists)
        ));

        let mut stale = created.clone();
        let replaced = store.replace(&created).await.unwrap();
        assert_eq!(replaced.metadata.resource_version.as_deref(), Some("2"));
        stale.spec.as_mut().unwrap().holder_identity = Some("b".into());
        assert!(matches!(
            store.replace(&stale).await,
            Err(StoreError::Conflict)
        ));
        // An empty resourceVersion is an unconditional update.
        let unconditional = store.replace(&lease("c")).await.unwrap();
        assert_eq!(
            unconditional.metadata.resource_version.as_deref(),
            Some("3")
        );

        store.interfere_before_next_replace(|l| l.spec.as_mut().unwrap().holder_identity = None);
        assert!(matches!(
            store.replace(&unconditional).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            store
                .lease("ns", "l")
                .unwrap()
                .spec
                .unwrap()
                .holder_identity,
            None
        );

        let mut other = lease("x");
        other.metadata.name = Some("other".into());
        assert!(matches!(
            store.replace(&other).await,
            Err(StoreError::NotFound)
        ));

        store.set_unavailable(true);
        assert!(matches!(
            store.get("ns", "l").await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
