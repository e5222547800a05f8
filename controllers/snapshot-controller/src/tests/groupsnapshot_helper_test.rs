//! upstream's `pkg/common-controller/groupsnapshot_helper_test.go`: the member helpers called
//! directly, subtest for subtest (`TestCreateOrGetVolumeSnapshotContent`,
//! `TestCreateOrGetVolumeSnapshot`, `TestBindSnapshotContentToSnapshot`,
//! `TestBindSnapshotToSnapshotContent`, `TestUpdateVolumeSnapshotContentStatus`,
//! `TestCreateIndividualSnapshotForGroupSnapshot`).

use super::framework::group::*;
use super::framework::*;
use crate::group::members::{member_content_name, member_snapshot_name};
use csi_controller::ApiError;
use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotContent, VolumeGroupSnapshotContentStatus,
    VolumeSnapshotInfo,
};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotContent};
use csi_snapshot_utils as utils;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeSpec,
    SecretReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn setup() -> GroupHarness {
    group_harness(&GroupCase::default(), &[], &[])
}

fn setup_with_pv(pv: PersistentVolume) -> GroupHarness {
    group_harness(&GroupCase::default(), &[], &[pv])
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn snapshot(name: &str, uid: Option<&str>, version: Option<&str>) -> VolumeSnapshot {
    VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(TEST_NAMESPACE.into()),
            uid: uid.map(String::from),
            resource_version: version.map(String::from),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn fail(message: &str) -> ApiError {
    ApiError::other(message)
}

#[tokio::test]
async fn create_or_get_volume_snapshot_content() {
    // creates new content successfully
    let h = setup();
    let mut vsc = VolumeSnapshotContent {
        metadata: meta("content-new"),
        ..Default::default()
    };
    vsc.spec.driver = MOCK_DRIVER_NAME.into();
    vsc.spec.deletion_policy = "Delete".into();
    let result = h
        .group
        .create_or_get_volume_snapshot_content(&vsc)
        .await
        .unwrap();
    assert_eq!(result.metadata.name.as_deref(), Some("content-new"));
    assert!(
        h.reactor
            .contents()
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("content-new"))
    );

    // returns existing content on AlreadyExists
    let h = setup();
    let mut existing = VolumeSnapshotContent {
        metadata: meta("content-existing"),
        ..Default::default()
    };
    existing.metadata.resource_version = Some("5".into());
    h.reactor.add_content(existing);
    h.reactor.with_group_state(|s| {
        s.api_errors.push((
            "create",
            "volumesnapshotcontents",
            ApiError::already_exists(
                "volumesnapshotcontents.snapshot.storage.k8s.io",
                "content-existing",
            ),
        ))
    });
    let vsc = VolumeSnapshotContent {
        metadata: meta("content-existing"),
        ..Default::default()
    };
    let result = h
        .group
        .create_or_get_volume_snapshot_content(&vsc)
        .await
        .unwrap();
    assert_eq!(
        result.metadata.resource_version.as_deref(),
        Some("5"),
        "expected existing object"
    );

    // propagates non-AlreadyExists create error
    let h = setup();
    h.reactor.with_group_state(|s| {
        s.api_errors.push((
            "create",
            "volumesnapshotcontents",
            fail("simulated-create-failure"),
        ))
    });
    let vsc = VolumeSnapshotContent {
        metadata: meta("content-fail"),
        ..Default::default()
    };
    assert!(
        h.group
            .create_or_get_volume_snapshot_content(&vsc)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn create_or_get_volume_snapshot() {
    // creates new snapshot with non-empty UID
    let h = setup();
    let result = h
        .group
        .create_or_get_volume_snapshot(&snapshot("snap-new", None, None))
        .await
        .unwrap();
    assert_eq!(result.metadata.name.as_deref(), Some("snap-new"));
    assert!(!result.metadata.uid.unwrap_or_default().is_empty());
    assert!(
        h.reactor
            .snapshots()
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some("snap-new"))
    );

    // returns existing snapshot on AlreadyExists
    let h = setup();
    h.reactor
        .add_snapshot(snapshot("snap-existing", Some("existing-uid"), Some("7")));
    h.reactor.with_group_state(|s| {
        s.api_errors.push((
            "create",
            "volumesnapshots",
            ApiError::already_exists("volumesnapshots.snapshot.storage.k8s.io", "snap-existing"),
        ))
    });
    let result = h
        .group
        .create_or_get_volume_snapshot(&snapshot("snap-existing", None, None))
        .await
        .unwrap();
    assert_eq!(result.metadata.uid.as_deref(), Some("existing-uid"));

    // propagates non-AlreadyExists create error
    let h = setup();
    h.reactor.with_group_state(|s| {
        s.api_errors.push((
            "create",
            "volumesnapshots",
            fail("simulated-create-failure"),
        ))
    });
    assert!(
        h.group
            .create_or_get_volume_snapshot(&snapshot("snap-fail", None, None))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bind_snapshot_content_to_snapshot() {
    // patches content UID with snapshot UID
    let h = setup();
    let mut content = VolumeSnapshotContent {
        metadata: meta("content-bind"),
        ..Default::default()
    };
    content.spec.volume_snapshot_ref = ObjectReference {
        kind: Some("VolumeSnapshot".into()),
        name: Some("snap-bind".into()),
        namespace: Some(TEST_NAMESPACE.into()),
        ..Default::default()
    };
    content.spec.driver = MOCK_DRIVER_NAME.into();
    content.spec.deletion_policy = "Delete".into();
    h.reactor.add_content(content.clone());
    h.group
        .bind_snapshot_content_to_snapshot(
            &content,
            &snapshot("snap-bind", Some("snap-uid-bind"), None),
        )
        .await
        .unwrap();
    let stored = h.reactor.contents().pop().unwrap();
    assert_eq!(
        stored.spec.volume_snapshot_ref.uid.as_deref(),
        Some("snap-uid-bind")
    );

    // errors when content not found in reactor
    let h = setup();
    let content = VolumeSnapshotContent {
        metadata: meta("content-missing"),
        ..Default::default()
    };
    assert!(
        h.group
            .bind_snapshot_content_to_snapshot(&content, &snapshot("snap-x", Some("uid-x"), None))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bind_snapshot_to_snapshot_content() {
    // patches snapshot status with content name
    let h = setup();
    let snap = snapshot("snap-status", Some("uid-status"), None);
    h.reactor.add_snapshot(snap.clone());
    h.group
        .bind_snapshot_to_snapshot_content(&snap, "content-target")
        .await
        .unwrap();
    let stored = h.reactor.snapshots().pop().unwrap();
    assert_eq!(
        stored
            .status
            .and_then(|s| s.bound_volume_snapshot_content_name)
            .as_deref(),
        Some("content-target")
    );

    // errors when snapshot not found in reactor
    let h = setup();
    assert!(
        h.group
            .bind_snapshot_to_snapshot_content(
                &snapshot("snap-missing", None, None),
                "content-target"
            )
            .await
            .is_err()
    );
}

fn group_content_with_handle(handle: &str) -> VolumeGroupSnapshotContent {
    VolumeGroupSnapshotContent {
        metadata: meta("gsc-1"),
        status: Some(VolumeGroupSnapshotContentStatus {
            volume_group_snapshot_handle: Some(handle.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn update_volume_snapshot_content_status() {
    // patches content with all status fields
    let h = setup();
    let content = VolumeSnapshotContent {
        metadata: meta("content-status"),
        ..Default::default()
    };
    h.reactor.add_content(content.clone());
    let info = VolumeSnapshotInfo {
        volume_handle: String::new(),
        snapshot_handle: "snap-handle-1".into(),
        creation_time: Some(1_234_567_890),
        ready_to_use: Some(true),
        restore_size: Some(1_073_741_824),
    };
    h.group
        .update_volume_snapshot_content_status(
            &content,
            &info,
            &group_content_with_handle("grp-handle-1"),
        )
        .await
        .unwrap();
    let status = h
        .reactor
        .contents()
        .pop()
        .unwrap()
        .status
        .expect("status is nil after patch");
    assert_eq!(status.snapshot_handle.as_deref(), Some("snap-handle-1"));
    assert_eq!(
        status.volume_group_snapshot_handle.as_deref(),
        Some("grp-handle-1")
    );
    assert_eq!(status.ready_to_use, Some(true));
    assert_eq!(status.creation_time, Some(1_234_567_890));
    assert_eq!(status.restore_size, Some(1_073_741_824));

    // errors when content not found in reactor
    let h = setup();
    let content = VolumeSnapshotContent {
        metadata: meta("content-missing-status"),
        ..Default::default()
    };
    let info = VolumeSnapshotInfo {
        snapshot_handle: "x".into(),
        ..Default::default()
    };
    assert!(
        h.group
            .update_volume_snapshot_content_status(
                &content,
                &info,
                &group_content_with_handle("grp-handle-1")
            )
            .await
            .is_err()
    );
}

const GROUP_HANDLE: &str = "grp-handle-x";

fn new_gsc() -> VolumeGroupSnapshotContent {
    let mut c = group_content_with_handle(GROUP_HANDLE);
    c.spec.driver = MOCK_DRIVER_NAME.into();
    c.spec.deletion_policy = "Delete".into();
    c.spec.volume_group_snapshot_ref = ObjectReference {
        name: Some("test-gs".into()),
        namespace: Some(TEST_NAMESPACE.into()),
        ..Default::default()
    };
    c
}

fn new_gs() -> VolumeGroupSnapshot {
    VolumeGroupSnapshot {
        metadata: ObjectMeta {
            name: Some("gs-1".into()),
            namespace: Some(TEST_NAMESPACE.into()),
            uid: Some("gs-uid-1".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn new_info(volume_handle: &str) -> VolumeSnapshotInfo {
    VolumeSnapshotInfo {
        volume_handle: volume_handle.into(),
        snapshot_handle: "snap-handle-x".into(),
        creation_time: Some(1000),
        ready_to_use: Some(true),
        restore_size: Some(2000),
    }
}

/// upstream's `assertReactorStateAfterIndividualSnapshot`.
fn assert_member(
    h: &GroupHarness,
    volume_handle: &str,
    info: &VolumeSnapshotInfo,
    want_pvc: &str,
    want_secret: Option<&SecretReference>,
) {
    let snap_name = member_snapshot_name("gs-uid-1", volume_handle);
    let content_name = member_content_name("gs-uid-1", volume_handle);
    let contents = h.reactor.contents();
    assert_eq!(
        contents.len(),
        1,
        "expected 1 VolumeSnapshotContent to be created"
    );
    let content = &contents[0];
    assert_eq!(
        content.metadata.name.as_deref(),
        Some(content_name.as_str())
    );
    let snapshots = h.reactor.snapshots();
    assert_eq!(
        snapshots.len(),
        1,
        "expected 1 VolumeSnapshot to be created"
    );
    let snap = &snapshots[0];
    assert_eq!(snap.metadata.name.as_deref(), Some(snap_name.as_str()));
    assert_eq!(snap.metadata.uid, Some(format!("{snap_name}-uid")));
    let reference = &content.spec.volume_snapshot_ref;
    assert_eq!(reference.name.as_deref(), Some(snap_name.as_str()));
    assert_eq!(reference.namespace.as_deref(), Some(TEST_NAMESPACE));
    assert_eq!(reference.uid, snap.metadata.uid, "bound to snapshot");
    assert_eq!(
        snap.status
            .as_ref()
            .and_then(|s| s.bound_volume_snapshot_content_name.as_deref()),
        Some(content_name.as_str())
    );
    let status = content.status.as_ref().expect("content status");
    assert_eq!(
        status.snapshot_handle.as_deref(),
        Some(info.snapshot_handle.as_str())
    );
    assert_eq!(
        status.volume_group_snapshot_handle.as_deref(),
        Some(GROUP_HANDLE)
    );
    assert_eq!(status.creation_time, info.creation_time);
    assert_eq!(status.restore_size, info.restore_size);
    assert_eq!(status.ready_to_use, info.ready_to_use);
    let annotations = content.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get(utils::VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION)
            .map(String::as_str),
        Some(GROUP_HANDLE)
    );
    assert_eq!(
        snap.spec.source.persistent_volume_claim_name.as_deref(),
        Some(want_pvc),
        "VolumeSnapshot PVC name"
    );
    assert_eq!(
        content.spec.source.volume_handle.as_deref(),
        Some(volume_handle)
    );
    if want_pvc.is_empty() {
        assert_eq!(
            content.spec.source_volume_mode, None,
            "no volume mode without a PV"
        );
    } else {
        assert_eq!(
            content.spec.source_volume_mode.as_deref(),
            Some("Filesystem")
        );
    }
    if let Some(secret) = want_secret {
        assert_eq!(
            annotations.get(utils::ANN_DELETION_SECRET_REF_NAME),
            secret.name.as_ref()
        );
        assert_eq!(
            annotations.get(utils::ANN_DELETION_SECRET_REF_NAMESPACE),
            secret.namespace.as_ref()
        );
    }
    // The member belongs to its group snapshot.
    assert_eq!(
        snap.metadata.owner_references,
        Some(vec![
            utils::volume_group_snapshot_owner_reference(&new_gs())
        ])
    );
    assert_eq!(
        snap.metadata.finalizers,
        Some(vec![utils::VOLUME_SNAPSHOT_IN_GROUP_FINALIZER.to_string()])
    );
}

#[tokio::test]
async fn create_individual_snapshot_for_group_snapshot() {
    // full success with PV found in indexer
    let pv = PersistentVolume {
        metadata: meta("pv-1"),
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                driver: MOCK_DRIVER_NAME.into(),
                volume_handle: "vol-with-pv".into(),
                ..Default::default()
            }),
            claim_ref: Some(ObjectReference {
                name: Some("pvc-1".into()),
                namespace: Some(TEST_NAMESPACE.into()),
                ..Default::default()
            }),
            volume_mode: Some("Filesystem".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let h = setup_with_pv(pv);
    let info = new_info("vol-with-pv");
    h.group
        .create_individual_snapshot_for_group_snapshot(&info, &new_gsc(), &new_gs(), None)
        .await
        .unwrap();
    assert_member(&h, "vol-with-pv", &info, "pvc-1", None);

    // full success when no PV in indexer
    let h = setup();
    let info = new_info("vol-no-pv");
    h.group
        .create_individual_snapshot_for_group_snapshot(&info, &new_gsc(), &new_gs(), None)
        .await
        .unwrap();
    assert_member(&h, "vol-no-pv", &info, "", None);

    // error when snapshot is returned with empty UID
    let h = setup();
    h.reactor
        .with_group_state(|s| s.snapshot_create_echo = true);
    assert!(
        h.group
            .create_individual_snapshot_for_group_snapshot(
                &new_info("vol-empty-uid"),
                &new_gsc(),
                &new_gs(),
                None
            )
            .await
            .is_err()
    );

    // error propagated from createOrGetVolumeSnapshotContent
    let h = setup();
    h.reactor.with_group_state(|s| {
        s.api_errors.push((
            "create",
            "volumesnapshotcontents",
            fail("content-create-failure"),
        ))
    });
    assert!(
        h.group
            .create_individual_snapshot_for_group_snapshot(
                &new_info("vol-content-err"),
                &new_gsc(),
                &new_gs(),
                None
            )
            .await
            .is_err()
    );

    // error propagated from createOrGetVolumeSnapshot
    let h = setup();
    h.reactor.with_group_state(|s| {
        s.api_errors
            .push(("create", "volumesnapshots", fail("snapshot-create-failure")))
    });
    assert!(
        h.group
            .create_individual_snapshot_for_group_snapshot(
                &new_info("vol-snap-err"),
                &new_gsc(),
                &new_gs(),
                None
            )
            .await
            .is_err()
    );

    // success with secret reference set
    let h = setup();
    let secret = SecretReference {
        name: Some("my-secret".into()),
        namespace: Some(TEST_NAMESPACE.into()),
    };
    let info = new_info("vol-with-secret");
    h.group
        .create_individual_snapshot_for_group_snapshot(&info, &new_gsc(), &new_gs(), Some(&secret))
        .await
        .unwrap();
    assert_member(&h, "vol-with-secret", &info, "", Some(&secret));
}

#[test]
fn member_names_are_upstreams() {
    // sha256("gs-uid-1" + "vol-1") in lower-case hex, as Go's `%x` prints it (sha256sum).
    let hash = "99319da7533bcc4a0e867b91f8726fc9c549f12a47be42c049baf04bf7c844c0";
    assert_eq!(
        member_snapshot_name("gs-uid-1", "vol-1"),
        format!("snapshot-{hash}")
    );
    assert_eq!(
        member_content_name("gs-uid-1", "vol-1"),
        format!("snapcontent-{hash}")
    );
}
