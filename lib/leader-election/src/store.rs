//! Where Leases are read and written: the three calls the election makes, behind a trait so the
//! election can be tested without an API server ([`MemoryLeaseStore`](crate::MemoryLeaseStore)).

use std::future::Future;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;

/// Why a [`LeaseStore`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A replace carried a `resourceVersion` that is no longer the Lease's (409 Conflict):
    /// someone else wrote the Lease since we read it.
    #[error("the lease was modified since it was read (409 Conflict)")]
    Conflict,
    /// A create found the Lease already there (409 AlreadyExists): another candidate created it.
    #[error("the lease already exists (409 AlreadyExists)")]
    AlreadyExists,
    /// A replace found no Lease (404 NotFound): it was deleted since it was read.
    #[error("the lease does not exist (404 NotFound)")]
    NotFound,
    /// Any other failure of a request to the API server.
    #[error("lease request to the API server failed")]
    Kube(#[source] kube::Error),
    /// The Lease given to create or replace has no namespace or no name.
    #[error("a lease to write needs a namespace and a name")]
    Unnamed,
    /// A store that is not the API server could not answer (used by test doubles).
    #[error("lease store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Sorts a kube error: the answers the election handles apart, anything else as
    /// [`StoreError::Kube`].
    pub fn from_kube(err: kube::Error) -> StoreError {
        match &err {
            kube::Error::Api(status) if status.is_already_exists() => StoreError::AlreadyExists,
            kube::Error::Api(status) if status.is_conflict() => StoreError::Conflict,
            kube::Error::Api(status) if status.is_not_found() => StoreError::NotFound,
            _ => StoreError::Kube(err),
        }
    }
}

/// The Lease calls of an election: get, create, and replace with a `resourceVersion`
/// precondition (an update, in client-go's words).
pub trait LeaseStore: Send + Sync {
    /// The Lease `namespace/name`, or `None` if it does not exist.
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Creates the Lease named by its metadata; [`StoreError::AlreadyExists`] if it exists.
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<Lease, StoreError>> + Send;

    /// Replaces the Lease named by its metadata. Must fail with [`StoreError::Conflict`] when
    /// `lease.metadata.resource_version` is not the stored one.
    fn replace(&self, lease: &Lease) -> impl Future<Output = Result<Lease, StoreError>> + Send;
}

/// The API server's Leases, through `Api<Lease>`.
///
/// Upstream gives the election a client of its own so that a busy, throttled controller client
/// cannot starve renewals; do the same (a separate [`kube::Client`], or one without the
/// controllers' rate limit).
#[derive(Clone)]
pub struct KubeLeaseStore {
    client: kube::Client,
}

impl std::fmt::Debug for KubeLeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLeaseStore").finish_non_exhaustive()
    }
}

impl KubeLeaseStore {
    /// Leases through `client`.
    pub fn new(client: kube::Client) -> KubeLeaseStore {
        KubeLeaseStore { client }
    }

    fn api(&self, namespace: &str) -> Api<Lease> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

pub(crate) fn metadata_of(lease: &Lease) -> Result<(&str, &str), StoreError> {
    match (&lease.metadata.namespace, &lease.metadata.name) {
        (Some(namespace), Some(name)) => Ok((namespace, name)),
        _ => Err(StoreError::Unnamed),
    }
}

impl LeaseStore for KubeLeaseStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Lease>, StoreError> {
        self.api(namespace)
            .get_opt(name)
            .await
            .map_err(StoreError::from_kube)
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let (namespace, _) = metadata_of(lease)?;
        self.api(namespace)
            .create(&PostParams::default(), lease)
            .await
            .map_err(StoreError::from_kube)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let (namespace, name) = metadata_of(lease)?;
        self.api(namespace)
            .replace(name, &PostParams::default(), lease)
            .await
            .map_err(StoreError::from_kube)
    }
}
