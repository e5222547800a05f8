//! The snapshot's class: the one it names, or the default class of its volume's driver
//! (upstream's `checkAndUpdateSnapshotClass`, `SetDefaultSnapshotClass`, `getSnapshotClass`,
//! `getSnapshotDriverName`).

use std::sync::Arc;

use csi_controller::ApiError;
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotClass};
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use serde_json::json;
use tracing::{debug, error};

use super::{Result, SnapshotController, SyncError, name, namespace};

/// The lister's NotFound resource of VolumeSnapshotClasses.
const CLASS_LISTER: &str = "volumesnapshotclass.snapshot.storage.k8s.io";

impl SnapshotController {
    /// The class `class_name`, from the cache.
    pub(crate) fn snapshot_class(&self, class_name: &str) -> Result<Arc<VolumeSnapshotClass>> {
        self.listers.class(class_name).ok_or_else(|| {
            let err = ApiError::not_found(CLASS_LISTER, class_name);
            error!(
                "failed to retrieve snapshot class {class_name} from the informer: {:?}",
                err.message
            );
            SyncError::from(err)
        })
    }

    /// Resolves the snapshot's class: the one it names must exist; without one, the default
    /// class of its volume's driver is written into it. Returns the snapshot to go on with
    /// (the patched one, or the one given) and the outcome; a failure is also an error status
    /// with an Event.
    pub(crate) async fn check_and_update_snapshot_class(
        &self,
        snapshot: Arc<VolumeSnapshot>,
    ) -> (Arc<VolumeSnapshot>, Result<()>) {
        match snapshot.spec.volume_snapshot_class_name.clone() {
            Some(class_name) => match self.snapshot_class(&class_name) {
                Ok(class) => {
                    debug!(
                        "VolumeSnapshotClass [{}] Driver [{}]",
                        name(&class.metadata),
                        class.driver
                    );
                    (snapshot, Ok(()))
                }
                Err(err) => {
                    error!("checkAndUpdateSnapshotClass failed to getSnapshotClass {err}");
                    let _ = self
                        .update_snapshot_error_status_with_event(
                            &snapshot,
                            false,
                            EventType::Warning,
                            "GetSnapshotClassFailed",
                            &format!("Failed to get snapshot class with error {err}"),
                        )
                        .await;
                    (snapshot, Err(err))
                }
            },
            None => match self.set_default_snapshot_class(snapshot.clone()).await {
                Ok((_, new_snapshot)) => (new_snapshot, Ok(())),
                Err(err) => {
                    error!("checkAndUpdateSnapshotClass failed to setDefaultClass {err}");
                    let _ = self
                        .update_snapshot_error_status_with_event(
                            &snapshot,
                            false,
                            EventType::Warning,
                            "SetDefaultSnapshotClassFailed",
                            &format!("Failed to set default snapshot class with error {err}"),
                        )
                        .await;
                    (snapshot, Err(err))
                }
            },
        }
    }

    /// Writes the default class of the snapshot's volume's driver into a dynamic snapshot
    /// that names none (a pre-provisioned snapshot or a group member needs none).
    pub(crate) async fn set_default_snapshot_class(
        &self,
        snapshot: Arc<VolumeSnapshot>,
    ) -> Result<(Option<Arc<VolumeSnapshotClass>>, Arc<VolumeSnapshot>)> {
        if snapshot.spec.source.volume_snapshot_content_name.is_some() {
            return Ok((None, snapshot));
        }
        if utils::is_volume_group_snapshot_member(Some(&snapshot)) {
            return Ok((None, snapshot));
        }
        let classes = self.listers.classes();
        let driver = self
            .pv_driver_from_snapshot(&snapshot)
            .await
            .inspect_err(|err| {
                error!(
                    "failed to get pv csi driver from snapshot {}/{}: {:?}",
                    namespace(&snapshot.metadata),
                    name(&snapshot.metadata),
                    err.message
                );
            })?;
        let defaults: Vec<&Arc<VolumeSnapshotClass>> = classes
            .iter()
            .filter(|c| utils::is_default_snapshot_class(c) && c.driver == driver)
            .collect();
        let class = match defaults.as_slice() {
            [] => return Err(SyncError::new("cannot find default snapshot class")),
            [class] => Arc::clone(class),
            many => {
                return Err(SyncError::new(format!(
                    "{} default snapshot classes were found",
                    many.len()
                )));
            }
        };
        let patch = json!([{
            "op": "replace",
            "path": "/spec/volumeSnapshotClassName",
            "value": name(&class.metadata),
        }]);
        let new_snapshot = match self
            .api
            .patch_snapshot(
                namespace(&snapshot.metadata),
                name(&snapshot.metadata),
                &patch,
            )
            .await
        {
            Ok(patched) => Arc::new(patched),
            Err(err) => {
                // Upstream goes on with what the failed patch returned (nothing): the sync
                // then fails on the snapshot's own, classless, state and is retried.
                return Err(SyncError::update(
                    &utils::snapshot_key(&snapshot),
                    format!("failed to patch snapshot with the default class: {err}"),
                ));
            }
        };
        if let Err(err) = self.store_snapshot_update(new_snapshot.clone()) {
            error!(
                "setDefaultSnapshotClass for snapshot [{}]: cannot update internal cache {err}",
                name(&snapshot.metadata)
            );
        }
        Ok((Some(class), new_snapshot))
    }

    /// The driver of a snapshot, for metrics: its pre-provisioned content's, else its
    /// class's; empty when unknown.
    pub(crate) fn snapshot_driver_name(&self, snapshot: &VolumeSnapshot) -> String {
        if let Some(content_name) = snapshot
            .spec
            .source
            .volume_snapshot_content_name
            .as_deref()
            .filter(|n| !n.is_empty())
        {
            match self.listers.content(content_name) {
                Some(content) if !content.spec.driver.is_empty() => {
                    return content.spec.driver.clone();
                }
                Some(_) => {}
                None => {
                    error!("getSnapshotDriverName: failed to get snapshotContent: {content_name}")
                }
            }
        }
        if let Some(class_name) = snapshot.spec.volume_snapshot_class_name.as_deref() {
            match self.listers.class(class_name) {
                Some(class) => return class.driver.clone(),
                None => error!("getSnapshotDriverName: failed to get snapshotClass: {class_name}"),
            }
        }
        String::new()
    }
}
