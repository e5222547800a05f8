//! What the monitor writes and reads through the API besides its watches, behind
//! [`HealthApi`] so that the checker is tested with a fake: the claims' `status` patches and
//! the one list of stored health taken when the controller starts.

use std::fmt;

use csi_controller::{ApiError, PatchBody, Patcher};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use crate::health::{HealthCondition, stored_health};

/// A claim's stored health: UID, conditions, `lastTransitionTime`.
pub type StoredHealth = (String, Vec<HealthCondition>, Option<Timestamp>);

/// The page size of the start-up list (client-go's pager default).
const LIST_PAGE: u32 = 500;

/// The monitor's API calls outside its watches.
pub trait HealthApi: Send + Sync + fmt::Debug {
    /// `PATCH persistentvolumeclaims/<name>/status` in `namespace` with a JSON merge patch.
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<(), ApiError>>;

    /// Every claim that stores health conditions (listed page by page, read as JSON: the
    /// typed claim does not know `status.healthStatus`).
    fn list_stored_health(&self) -> BoxFuture<'_, Result<Vec<StoredHealth>, ApiError>>;
}

/// [`HealthApi`] over a `kube::Client`.
#[derive(Clone)]
pub struct ApiClient {
    client: kube::Client,
    patcher: Patcher,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient").finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client sending through `client`.
    pub fn new(client: kube::Client) -> Self {
        ApiClient {
            patcher: Patcher::new(client.clone()),
            client,
        }
    }

    async fn list(&self) -> Result<Vec<StoredHealth>, ApiError> {
        let resource = ApiResource::erase::<PersistentVolumeClaim>(&());
        let api = kube::Api::<DynamicObject>::all_with(self.client.clone(), &resource);
        let mut stored = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(LIST_PAGE);
            if let Some(token) = &token {
                params = params.continue_token(token);
            }
            let page = api.list(&params).await.map_err(ApiError::from)?;
            for claim in page.items {
                let uid = claim.metadata.uid.clone().unwrap_or_default();
                let (conditions, since) = stored_health(&claim.data);
                if !conditions.is_empty() {
                    stored.push((uid, conditions, since));
                }
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(stored);
            }
        }
    }
}

impl HealthApi for ApiClient {
    fn patch_claim_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        merge_patch: &'a Value,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            self.patcher
                .patch_status::<PersistentVolumeClaim>(
                    Some(namespace),
                    name,
                    PatchBody::Merge(merge_patch),
                )
                .await
                .map(drop)
        })
    }

    fn list_stored_health(&self) -> BoxFuture<'_, Result<Vec<StoredHealth>, ApiError>> {
        Box::pin(self.list())
    }
}
