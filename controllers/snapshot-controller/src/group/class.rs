//! The group snapshot's class: the one it names, or the default class of its volumes' driver
//! (upstream's `checkAndUpdateGroupSnapshotClass`, `SetDefaultGroupSnapshotClass`,
//! `getGroupSnapshotClass`, `getGroupSnapshotDriverName`, `pvDriverFromGroupSnapshot`).

use std::sync::Arc;

use csi_controller::ApiError;
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotClass};
use csi_kube::EventType;
use csi_snapshot_utils as utils;
use tracing::{debug, error};

use super::GroupController;
use crate::controller::{Result, SyncError, name, namespace};

/// The lister's NotFound resource of VolumeGroupSnapshotClasses.
const GROUP_CLASS_LISTER: &str = "volumegroupsnapshotclass.groupsnapshot.storage.k8s.io";

impl GroupController {
    /// The class `class_name`, from the cache.
    pub(crate) fn group_snapshot_class(
        &self,
        class_name: &str,
    ) -> Result<Arc<VolumeGroupSnapshotClass>> {
        debug!("getGroupSnapshotClass: VolumeGroupSnapshotClassName [{class_name}]");
        self.listers.group_class(class_name).ok_or_else(|| {
            let err = ApiError::not_found(GROUP_CLASS_LISTER, class_name);
            error!(
                "failed to retrieve group snapshot class {class_name} from the informer: {:?}",
                err.message
            );
            SyncError::from(err)
        })
    }

    /// Resolves the group snapshot's class: the one it names must exist; without one, the
    /// default class of its volumes' driver is written into it. Returns the group snapshot to
    /// go on with and the outcome; a failure is also an error status with an Event.
    pub(crate) async fn check_and_update_group_snapshot_class(
        &self,
        group: Arc<VolumeGroupSnapshot>,
    ) -> (Arc<VolumeGroupSnapshot>, Result<()>) {
        match group.spec.volume_group_snapshot_class_name.clone() {
            Some(class_name) => match self.group_snapshot_class(&class_name) {
                Ok(_) => (group, Ok(())),
                Err(err) => {
                    error!(
                        "checkAndUpdateGroupSnapshotClass failed to getGroupSnapshotClass {err}"
                    );
                    let _ = self
                        .update_group_snapshot_error_status_with_event(
                            &group,
                            false,
                            EventType::Warning,
                            "GetGroupSnapshotClassFailed",
                            &format!("failed to get group snapshot class with error {err}"),
                        )
                        .await;
                    (group, Err(err))
                }
            },
            None => match self.set_default_group_snapshot_class(group.clone()).await {
                Ok((_, new_group)) => (new_group, Ok(())),
                Err(err) => {
                    error!("checkAndUpdateGroupSnapshotClass failed to setDefaultClass {err}");
                    let _ = self
                        .update_group_snapshot_error_status_with_event(
                            &group,
                            false,
                            EventType::Warning,
                            "SetDefaultGroupSnapshotClassFailed",
                            &format!("Failed to set default group snapshot class with error {err}"),
                        )
                        .await;
                    (group, Err(err))
                }
            },
        }
    }

    /// Writes the default class of the volumes' driver into a dynamic group snapshot without
    /// one; a pre-provisioned group snapshot is left alone (no class). Exactly one default
    /// class of that driver must exist.
    pub(crate) async fn set_default_group_snapshot_class(
        &self,
        group: Arc<VolumeGroupSnapshot>,
    ) -> Result<(
        Option<Arc<VolumeGroupSnapshotClass>>,
        Arc<VolumeGroupSnapshot>,
    )> {
        debug!(
            "SetDefaultGroupSnapshotClass for group snapshot [{}]",
            name(&group.metadata)
        );
        if group
            .spec
            .source
            .volume_group_snapshot_content_name
            .is_some()
        {
            debug!(
                "Don't need to find GroupSnapshotClass for pre-provisioned group snapshot [{}]",
                name(&group.metadata)
            );
            return Ok((None, group));
        }
        let classes = self.listers.group_classes();
        let driver = self
            .pv_driver_from_group_snapshot(&group)
            .await
            .inspect_err(|err| {
                error!(
                    "failed to get pv csi driver from group snapshot {}/{}: {:?}",
                    namespace(&group.metadata),
                    name(&group.metadata),
                    err.message
                );
            })?;
        let defaults: Vec<_> = classes
            .into_iter()
            .filter(|c| utils::is_default_group_snapshot_class(c) && c.driver == driver)
            .collect();
        let class = match defaults.as_slice() {
            [] => return Err(SyncError::new("cannot find default group snapshot class")),
            [class] => class.clone(),
            many => {
                debug!(
                    "get DefaultGroupSnapshotClass {} defaults found",
                    many.len()
                );
                return Err(SyncError::new(format!(
                    "{} default snapshot classes were found",
                    many.len()
                )));
            }
        };
        let class_name = name(&class.metadata).to_string();
        debug!(
            "setDefaultGroupSnapshotClass [{}]: default VolumeGroupSnapshotClassName [{class_name}]",
            name(&group.metadata)
        );
        let mut clone = (*group).clone();
        clone.spec.volume_group_snapshot_class_name = Some(class_name);
        let updated = self
            .api
            .update_group_snapshot(&clone)
            .await
            .inspect_err(|err| {
                debug!(
                    "updating VolumeGroupSnapshot[{}] default group snapshot class failed {err}",
                    utils::group_snapshot_key(&group)
                );
            })?;
        let updated = Arc::new(updated);
        if let Err(err) = self.store_group_snapshot_update(updated.clone()) {
            debug!(
                "setDefaultGroupSnapshotClass [{}]: cannot update internal cache: {err}",
                utils::group_snapshot_key(&group)
            );
        }
        Ok((Some(class), updated))
    }

    /// The CSI driver of the group snapshot's volumes (the first one's).
    pub(crate) async fn pv_driver_from_group_snapshot(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<String> {
        let volumes = self.volumes_from_group_snapshot(group).await?;
        match volumes
            .first()
            .and_then(|pv| pv.spec.as_ref())
            .and_then(|s| s.csi.as_ref())
        {
            Some(csi) => Ok(csi.driver.clone()),
            None => Err(SyncError::new(format!(
                "snapshotting non-CSI volumes is not supported, group snapshot:{}/{}",
                namespace(&group.metadata),
                name(&group.metadata)
            ))),
        }
    }

    /// The driver of a group snapshot, for its metrics: its pre-provisioned group content's,
    /// else its class's; empty when neither is known.
    pub(crate) fn group_snapshot_driver_name(&self, group: &VolumeGroupSnapshot) -> String {
        debug!(
            "getGroupSnapshotDriverName: VolumeGroupSnapshot[{}]",
            name(&group.metadata)
        );
        if let Some(content_name) = group
            .spec
            .source
            .volume_group_snapshot_content_name
            .as_deref()
            .filter(|n| !n.is_empty())
        {
            match self.listers.group_content(content_name) {
                Some(content) if !content.spec.driver.is_empty() => {
                    return content.spec.driver.clone();
                }
                Some(_) => {}
                None => error!(
                    "getGroupSnapshotDriverName: failed to get groupSnapshotContent: {content_name}"
                ),
            }
        }
        if let Some(class_name) = group.spec.volume_group_snapshot_class_name.as_deref() {
            match self.group_snapshot_class(class_name) {
                Ok(class) => return class.driver.clone(),
                Err(_) => error!(
                    "getGroupSnapshotDriverName: failed to get groupSnapshotClass: {class_name}"
                ),
            }
        }
        String::new()
    }
}
