use csi_crd_types::VolumeSnapshot;
use csi_crd_types::snapshot::v1::VolumeSnapshotStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::{
    is_volume_group_snapshot_member, need_to_add_volume_group_snapshot_ownership,
    volume_group_snapshot_parent_name, volume_snapshot_parent_group_key,
};

fn owner(api_version: &str, kind: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        ..Default::default()
    }
}

fn owned(owners: Vec<OwnerReference>) -> VolumeSnapshot {
    VolumeSnapshot {
        metadata: ObjectMeta {
            owner_references: Some(owners),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn with_group_name(mut snapshot: VolumeSnapshot, name: Option<&str>) -> VolumeSnapshot {
    snapshot.status = Some(VolumeSnapshotStatus {
        volume_group_snapshot_name: name.map(String::from),
        ..Default::default()
    });
    snapshot
}

// TestIsVolumeSnapshotGroupMember
#[test]
fn is_volume_snapshot_group_member() {
    let mut correct = owned(vec![owner(
        "groupsnapshot.storage.k8s.io/v1",
        "VolumeGroupSnapshot",
        "vgs",
    )]);
    correct.metadata.name = Some("test-vs".into());
    correct.metadata.namespace = Some("default".into());
    let cases: Vec<(&str, Option<VolumeSnapshot>, bool, &str, &str)> = vec![
        ("nil snapshot", None, false, "", ""),
        (
            "without ownership",
            Some(VolumeSnapshot::default()),
            false,
            "",
            "",
        ),
        (
            "with a different ownership",
            Some(owned(vec![owner("v1", "Deployment", "test")])),
            false,
            "",
            "",
        ),
        (
            "with wrong ownership",
            Some(owned(vec![owner(
                "test/v1beta2",
                "VolumeGroupSnapshot",
                "vgs",
            )])),
            false,
            "",
            "",
        ),
        (
            "with correct ownership",
            Some(correct),
            true,
            "vgs",
            "default^vgs",
        ),
    ];
    for (name, snapshot, member, parent, key) in cases {
        let snapshot = snapshot.as_ref();
        assert_eq!(is_volume_group_snapshot_member(snapshot), member, "{name}");
        assert_eq!(
            volume_group_snapshot_parent_name(snapshot),
            parent,
            "{name}"
        );
        assert_eq!(volume_snapshot_parent_group_key(snapshot), key, "{name}");
    }
}

// TestNeedToAddVolumeGroupSnapshotOwnership
#[test]
fn need_to_add_volume_group_snapshot_ownership_cases() {
    let cases: Vec<(&str, Option<VolumeSnapshot>, bool)> = vec![
        ("nil snapshot", None, false),
        (
            "snapshot with nil status",
            Some(VolumeSnapshot::default()),
            false,
        ),
        (
            "independent snapshot",
            Some(with_group_name(VolumeSnapshot::default(), None)),
            false,
        ),
        (
            "snapshot with empty volume group snapshot name",
            Some(with_group_name(VolumeSnapshot::default(), Some(""))),
            false,
        ),
        (
            "snapshot with empty ownership metadata",
            Some(with_group_name(VolumeSnapshot::default(), Some("vgs"))),
            true,
        ),
        (
            "snapshot missing the group ownership but having other ownerships",
            Some(with_group_name(
                owned(vec![owner("v1", "Deployment", "test")]),
                Some("vgs"),
            )),
            true,
        ),
        (
            "snapshot with the ownership already set",
            Some(with_group_name(
                owned(vec![owner(
                    "groupsnapshot.storage.k8s.io/v1",
                    "VolumeGroupSnapshot",
                    "vgs",
                )]),
                Some("vgs"),
            )),
            false,
        ),
    ];
    for (name, snapshot, expected) in cases {
        assert_eq!(
            need_to_add_volume_group_snapshot_ownership(snapshot.as_ref()),
            expected,
            "{name}"
        );
    }
}
