//! The snapshot finalizer sweep (upstream's `SnapshotFinalizerController`): every
//! `--snapshot-orphan-sweep-interval`, removes [`SNAPSHOT_SOURCE_FINALIZER`] from each cached
//! VolumeSnapshot that no `Pending` (or phase-less) claim is being restored from. It catches
//! the finalizers provisioning could not remove: a crash between adding and removing, a
//! duplicate attempt that failed for good, a claim deleted while provisioning.
//!
//! Provisioning adds the finalizer and removes it after a successful `CreateVolume`
//! ([`DataSources`](crate::data_source::DataSources)). As upstream, the sweep exists only
//! when the interval is not zero, the driver has `CREATE_DELETE_SNAPSHOT`, the API server
//! serves `snapshot.storage.k8s.io/v1` VolumeSnapshots, and this identity may list them (the
//! `list`/`watch` verbs are optional in upstream's RBAC); [`SnapshotFinalizerSweep::declare`]
//! checks all of that before the caches start, since a watch cannot be declared later.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::time::Duration;
//! # use external_provisioner::snapshot_protection::*;
//! # use external_provisioner::data_source::KubeDataSourceClient;
//! # async fn example(caches: csi_kube::Caches, client: kube::Client, shutdown: tokio_util::sync::CancellationToken) {
//! let interval = Duration::from_secs(300); // --snapshot-orphan-sweep-interval
//! let create_delete_snapshot = true;       // the driver's CREATE_DELETE_SNAPSHOT
//! // In the component's init, before the caches start:
//! if let Some(sweep) = SnapshotFinalizerSweep::declare(
//!     &caches,
//!     &client,
//!     create_delete_snapshot,
//!     interval,
//!     Arc::new(KubeDataSourceClient::new(client.clone(), "csi-provisioner")),
//! )
//! .await
//! .unwrap()
//! {
//!     // While leading:
//!     sweep.run(shutdown).await;
//! }
//! # }
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use csi_controller::finalizer::remove_finalizer_patch;
use csi_crd_types::VolumeSnapshot;
use csi_kube::{Caches, Selector, Store};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::ListParams;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::data_source::{
    DataSourceClient, SNAPSHOT_SOURCE_FINALIZER, is_forbidden, snapshot_of_claim,
};

/// The API group and version whose VolumeSnapshots the sweep needs.
pub const SNAPSHOT_GROUP_VERSION: &str = "snapshot.storage.k8s.io/v1";

/// Why the sweep could not be declared.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// A watch could not be declared.
    #[error(transparent)]
    Cache(#[from] csi_kube::cache::Error),
}

/// The `namespace/name` of every VolumeSnapshot a claim is still being restored from: claims
/// whose phase is `Pending` or empty (upstream's `buildPendingSnapshotIndex`).
pub fn pending_snapshots<'a>(
    claims: impl IntoIterator<Item = &'a PersistentVolumeClaim>,
) -> HashSet<String> {
    claims
        .into_iter()
        .filter(|claim| {
            let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
            matches!(phase, None | Some("") | Some("Pending"))
        })
        .filter_map(snapshot_of_claim)
        .map(|(namespace, name)| format!("{namespace}/{name}"))
        .collect()
}

/// One sweep (upstream's `sweepOrphanedFinalizers`): removes [`SNAPSHOT_SOURCE_FINALIZER`]
/// from each of `snapshots` that has it and is not in [`pending_snapshots`] of `claims`.
/// Failures are logged and left to the next sweep. Stops early on `shutdown`.
pub async fn sweep(
    snapshots: &[Arc<VolumeSnapshot>],
    claims: &[Arc<PersistentVolumeClaim>],
    client: &dyn DataSourceClient,
    shutdown: &CancellationToken,
) {
    let pending = pending_snapshots(claims.iter().map(|c| &**c));
    for snapshot in snapshots {
        if shutdown.is_cancelled() {
            return;
        }
        let Some(patch) = remove_finalizer_patch(
            snapshot.metadata.finalizers.as_deref(),
            SNAPSHOT_SOURCE_FINALIZER,
        ) else {
            continue;
        };
        let namespace = snapshot.metadata.namespace.as_deref().unwrap_or_default();
        let name = snapshot.metadata.name.as_deref().unwrap_or_default();
        if pending.contains(&format!("{namespace}/{name}")) {
            continue;
        }
        match client.patch_volume_snapshot(namespace, name, &patch).await {
            Ok(_) => info!(
                "SnapshotFinalizerProtection: removed orphaned finalizer from snapshot {namespace}/{name}"
            ),
            // A failed `test` (the cached list is stale) is our form of upstream's conflict.
            Err(error) if error.is_not_found() || error.is_conflict() || error.code == 422 => {
                debug!(
                    "SnapshotFinalizerProtection: transient error removing finalizer from snapshot {namespace}/{name}, will retry: {error}"
                );
            }
            Err(error) if is_forbidden(&error) => debug!(
                "SnapshotFinalizerProtection: unable to remove finalizer from snapshot {namespace}/{name} due to missing RBAC permissions: {error}"
            ),
            Err(error) => warn!(
                "SnapshotFinalizerProtection: failed to remove finalizer from snapshot {namespace}/{name}: {error}"
            ),
        }
    }
}

/// The sweep, declared and ready to run (see the [module documentation](self)).
#[derive(Debug)]
pub struct SnapshotFinalizerSweep {
    snapshots: Store<VolumeSnapshot>,
    claims: Store<PersistentVolumeClaim>,
    client: Arc<dyn DataSourceClient>,
    interval: Duration,
}

impl SnapshotFinalizerSweep {
    /// Declares the VolumeSnapshot and PVC caches the sweep reads, or `None` when upstream
    /// would not run it: `interval` zero, no `create_delete_snapshot`, VolumeSnapshots not
    /// served (or discovery failed), or listing them forbidden. `kube_client` makes those
    /// two checks.
    pub async fn declare(
        caches: &Caches,
        kube_client: &kube::Client,
        create_delete_snapshot: bool,
        interval: Duration,
        client: Arc<dyn DataSourceClient>,
    ) -> Result<Option<Self>, DeclareError> {
        if interval.is_zero() || !create_delete_snapshot {
            return Ok(None);
        }
        match kube_client
            .list_api_group_resources(SNAPSHOT_GROUP_VERSION)
            .await
        {
            Ok(list) if list.resources.iter().any(|r| r.kind == "VolumeSnapshot") => {}
            Ok(_) => return Ok(None),
            Err(error) => {
                debug!("SnapshotFinalizerProtection: VolumeSnapshots are not served: {error}");
                return Ok(None);
            }
        }
        let api = kube::Api::<VolumeSnapshot>::all(kube_client.clone());
        if let Err(error) = api.list_metadata(&ListParams::default().limit(1)).await {
            let error = csi_controller::ApiError::from(error);
            if is_forbidden(&error) {
                debug!(
                    "SnapshotFinalizerProtection: disabled, missing list permission on volumesnapshots: {error}"
                );
                return Ok(None);
            }
        }
        let all = Selector::all();
        Ok(Some(SnapshotFinalizerSweep {
            snapshots: caches.store::<VolumeSnapshot>(&all)?,
            claims: caches.store::<PersistentVolumeClaim>(&all)?,
            client,
            interval,
        }))
    }

    /// Sweeps once the VolumeSnapshot cache has synced and then every interval (counted from
    /// the end of the previous sweep), until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        info!("Starting SnapshotFinalizerProtection controller");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = async {
                self.snapshots.wait_until_ready().await;
                self.claims.wait_until_ready().await;
            } => {}
        }
        info!("Started SnapshotFinalizerProtection controller");
        loop {
            let snapshots = self.snapshots.state();
            let claims = self.claims.state();
            sweep(&snapshots, &claims, &*self.client, &shutdown).await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
        info!("Shutting down SnapshotFinalizerProtection controller");
    }
}
