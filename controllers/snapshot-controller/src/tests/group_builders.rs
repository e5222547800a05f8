//! The group builders with upstream's parameters (`newGroupSnapshot`,
//! `newGroupSnapshotContent`, `newClaimCoupleArray`, ... and `groupSnapshotClasses`).

use std::collections::BTreeMap;

use csi_crd_types::group_snapshot::v1::{
    GroupSnapshotHandles, VolumeGroupSnapshot, VolumeGroupSnapshotClass,
    VolumeGroupSnapshotContent, VolumeGroupSnapshotContentStatus, VolumeGroupSnapshotStatus,
};
use csi_crd_types::snapshot::v1::VolumeSnapshotError;
use csi_snapshot_utils as utils;
use k8s_openapi::api::core::v1::{
    LocalVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

use super::super::{MOCK_DRIVER_NAME, TEST_NAMESPACE};

// Builders with upstream's parameters.

pub fn selector(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    super::super::map(labels)
}

pub fn postgres() -> BTreeMap<String, String> {
    selector(&[("app.kubernetes.io/name", "postgresql")])
}

#[allow(clippy::too_many_arguments)]
pub fn new_group_snapshot(
    group_name: &str,
    group_uid: &str,
    selectors: Option<BTreeMap<String, String>>,
    target_content_name: &str,
    class_name: &str,
    bound_content_name: &str,
    ready_to_use: Option<bool>,
    creation_time: Option<Time>,
    error: Option<VolumeSnapshotError>,
    nil_status: bool,
    with_all_finalizers: bool,
    deletion_timestamp: Option<Time>,
) -> VolumeGroupSnapshot {
    let mut group = VolumeGroupSnapshot {
        metadata: ObjectMeta {
            name: Some(group_name.into()),
            namespace: Some(TEST_NAMESPACE.into()),
            uid: Some(group_uid.into()),
            resource_version: Some("1".into()),
            deletion_timestamp,
            ..Default::default()
        },
        ..Default::default()
    };
    if let Some(labels) = selectors.filter(|l| !l.is_empty()) {
        group.spec.source.selector = Some(LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        });
    }
    if !nil_status {
        group.status = Some(VolumeGroupSnapshotStatus {
            creation_time,
            ready_to_use,
            error,
            bound_volume_group_snapshot_content_name: (!bound_content_name.is_empty())
                .then(|| bound_content_name.into()),
        });
    }
    if !class_name.is_empty() {
        group.spec.volume_group_snapshot_class_name = Some(class_name.into());
    }
    if !target_content_name.is_empty() {
        group.spec.source.volume_group_snapshot_content_name = Some(target_content_name.into());
    }
    if with_all_finalizers {
        group.metadata.finalizers = Some(vec![
            utils::VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER.into(),
            utils::VOLUME_GROUP_SNAPSHOT_BOUND_FINALIZER.into(),
        ]);
    }
    group
}

pub fn with_group_snapshot_finalizers(
    mut groups: Vec<VolumeGroupSnapshot>,
    finalizer: &str,
) -> Vec<VolumeGroupSnapshot> {
    for g in &mut groups {
        g.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(finalizer.into());
    }
    groups
}

#[allow(clippy::too_many_arguments)]
pub fn new_group_snapshot_content(
    content_name: &str,
    bound_to_group_uid: &str,
    bound_to_group_name: &str,
    group_snapshot_handle: &str,
    class_name: &str,
    desired_volume_handles: &[&str],
    target_group_snapshot_handle: &str,
    deletion_policy: &str,
    creation_time: Option<Time>,
    with_finalizer: bool,
    with_status: bool,
) -> VolumeGroupSnapshotContent {
    let mut content = VolumeGroupSnapshotContent {
        metadata: ObjectMeta {
            name: Some(content_name.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    content.spec.driver = MOCK_DRIVER_NAME.into();
    content.spec.deletion_policy = deletion_policy.into();
    if with_status {
        content.status = Some(VolumeGroupSnapshotContentStatus {
            creation_time,
            ready_to_use: Some(true),
            volume_group_snapshot_handle: (!group_snapshot_handle.is_empty())
                .then(|| group_snapshot_handle.into()),
            ..Default::default()
        });
    }
    if !class_name.is_empty() {
        content.spec.volume_group_snapshot_class_name = Some(class_name.into());
    }
    if !target_group_snapshot_handle.is_empty() {
        content.spec.source.group_snapshot_handles = Some(GroupSnapshotHandles {
            volume_group_snapshot_handle: target_group_snapshot_handle.into(),
            volume_snapshot_handles: Vec::new(),
        });
    }
    content.spec.source.volume_handles = desired_volume_handles
        .iter()
        .map(|h| h.to_string())
        .collect();
    if !bound_to_group_name.is_empty() {
        content.spec.volume_group_snapshot_ref = ObjectReference {
            kind: Some("VolumeGroupSnapshot".into()),
            api_version: Some("groupsnapshot.storage.k8s.io/v1".into()),
            uid: Some(bound_to_group_uid.into()),
            namespace: Some(TEST_NAMESPACE.into()),
            name: Some(bound_to_group_name.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        };
    }
    if with_finalizer {
        content.metadata.finalizers =
            Some(vec![utils::VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER.into()]);
    }
    content
}

pub fn with_group_content_finalizers(
    mut contents: Vec<VolumeGroupSnapshotContent>,
    finalizer: &str,
) -> Vec<VolumeGroupSnapshotContent> {
    for c in &mut contents {
        c.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(finalizer.into());
    }
    contents
}

pub fn with_group_content_annotations(
    mut contents: Vec<VolumeGroupSnapshotContent>,
    annotations: BTreeMap<String, String>,
) -> Vec<VolumeGroupSnapshotContent> {
    for c in &mut contents {
        c.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(annotations.clone());
    }
    contents
}

pub fn with_claim_labels(
    mut claims: Vec<PersistentVolumeClaim>,
    labels: BTreeMap<String, String>,
) -> Vec<PersistentVolumeClaim> {
    for c in &mut claims {
        c.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(labels.clone());
    }
    claims
}

fn pre(prefix: &str, s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("{prefix}-{s}")
    }
}

/// upstream's `newClaimCoupleArray`: two claims, `1-` and `2-` before names and UIDs.
pub fn new_claim_couple_array(
    name: &str,
    claim_uid: &str,
    capacity: &str,
    bound_to_volume: &str,
    phase: &str,
    class: Option<&str>,
) -> Vec<PersistentVolumeClaim> {
    ["1", "2"]
        .iter()
        .map(|p| {
            super::super::new_claim(
                &pre(p, name),
                &pre(p, claim_uid),
                capacity,
                &pre(p, bound_to_volume),
                phase,
                class,
                false,
            )
        })
        .collect()
}

/// upstream's `newVolumeCoupleArray`.
#[allow(clippy::too_many_arguments)]
pub fn new_volume_couple_array(
    name: &str,
    volume_uid: &str,
    volume_handle: &str,
    capacity: &str,
    bound_to_claim_uid: &str,
    bound_to_claim_name: &str,
    phase: &str,
    reclaim_policy: &str,
    class: &str,
) -> Vec<PersistentVolume> {
    ["1", "2"]
        .iter()
        .map(|p| {
            super::super::new_volume(
                &pre(p, name),
                &pre(p, volume_uid),
                &pre(p, volume_handle),
                capacity,
                &pre(p, bound_to_claim_uid),
                &pre(p, bound_to_claim_name),
                phase,
                reclaim_policy,
                class,
            )
        })
        .collect()
}

pub fn with_volumes_csi_driver_name(
    mut volumes: Vec<PersistentVolume>,
    driver: &str,
) -> Vec<PersistentVolume> {
    for v in &mut volumes {
        if let Some(spec) = v.spec.as_mut() {
            spec.csi.get_or_insert_with(Default::default).driver = driver.into();
        }
    }
    volumes
}

pub fn with_volumes_local_path(
    mut volumes: Vec<PersistentVolume>,
    path: &str,
) -> Vec<PersistentVolume> {
    for v in &mut volumes {
        if let Some(spec) = v.spec.as_mut() {
            spec.csi = None;
            spec.local = Some(LocalVolumeSource {
                path: path.into(),
                ..Default::default()
            });
        }
    }
    volumes
}

pub fn new_group_class(
    name: &str,
    default: bool,
    deletion_policy: &str,
) -> VolumeGroupSnapshotClass {
    VolumeGroupSnapshotClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: default.then(|| {
                super::super::map(&[(utils::IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION, "true")])
            }),
            ..Default::default()
        },
        driver: MOCK_DRIVER_NAME.into(),
        parameters: Some(super::super::map(&[("param1", "value1")])),
        deletion_policy: deletion_policy.into(),
    }
}

/// upstream's `groupSnapshotClasses` (groupsnapshot_create_test.go).
pub fn group_snapshot_classes() -> Vec<VolumeGroupSnapshotClass> {
    vec![
        new_group_class("gold", false, "Delete"),
        new_group_class("default-class", true, "Delete"),
        new_group_class("silver", true, "Retain"),
    ]
}
