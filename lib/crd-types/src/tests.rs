//! Round trips through JSON as the API server writes it, and the resource names kube derives.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Value, json};

use super::*;

/// Decodes `value`, checks what `check` says of it, encodes it again and compares with the
/// input.
fn round_trip<K>(value: Value, check: impl FnOnce(&K)) -> K
where
    K: serde::de::DeserializeOwned + serde::Serialize,
{
    let object: K = serde_json::from_value(value.clone()).unwrap();
    check(&object);
    assert_eq!(serde_json::to_value(&object).unwrap(), value);
    object
}

#[test]
fn volume_snapshot() {
    let snapshot: VolumeSnapshot = round_trip(
        json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {
                "name": "snap-1",
                "namespace": "default",
                "uid": "0b5f3c3e-2b54-4bd6-a3a3-0bbf6a5f3c11",
                "resourceVersion": "1234",
                "creationTimestamp": "2026-05-01T10:00:00Z",
                "finalizers": [
                    "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection",
                    "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
                ]
            },
            "spec": {
                "source": {"persistentVolumeClaimName": "data"},
                "volumeSnapshotClassName": "csi-hostpath-snapclass"
            },
            "status": {
                "boundVolumeSnapshotContentName": "snapcontent-0b5f3c3e-2b54-4bd6-a3a3-0bbf6a5f3c11",
                "creationTime": "2026-05-01T10:00:01Z",
                "readyToUse": true,
                "restoreSize": "1Gi",
                "volumeGroupSnapshotName": "group-1",
                "error": {"time": "2026-05-01T10:00:00Z", "message": "not yet"}
            }
        }),
        |s: &VolumeSnapshot| {
            let status = s.status.as_ref().unwrap();
            assert_eq!(status.ready_to_use, Some(true));
            assert_eq!(status.restore_size, Some(Quantity("1Gi".into())));
            assert_eq!(
                s.spec.source.persistent_volume_claim_name.as_deref(),
                Some("data")
            );
        },
    );
    // A snapshot the controller has not seen yet: no status, and nothing invented.
    round_trip(
        json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": "pre", "namespace": "ns1"},
            "spec": {"source": {"volumeSnapshotContentName": "imported"}}
        }),
        |s: &VolumeSnapshot| assert!(s.status.is_none()),
    );
    assert_eq!(snapshot.metadata.name.as_deref(), Some("snap-1"));
}

#[test]
fn volume_snapshot_content() {
    round_trip(
        json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotContent",
            "metadata": {
                "name": "snapcontent-1",
                "annotations": {"snapshot.storage.kubernetes.io/allow-volume-mode-change": "true"},
                "finalizers": ["snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"]
            },
            "spec": {
                "deletionPolicy": "Delete",
                "driver": "hostpath.csi.k8s.io",
                "source": {"volumeHandle": "7e1a2c6f-0000-11f0-9a7e-0242ac110002"},
                "sourceVolumeMode": "Filesystem",
                "volumeSnapshotClassName": "csi-hostpath-snapclass",
                "volumeSnapshotRef": {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshot",
                    "name": "snap-1",
                    "namespace": "default",
                    "resourceVersion": "1200",
                    "uid": "0b5f3c3e-2b54-4bd6-a3a3-0bbf6a5f3c11"
                }
            },
            "status": {
                "creationTime": 1777629601000000000_i64,
                "readyToUse": true,
                "restoreSize": 1073741824,
                "snapshotHandle": "7f0b8d3a-0000-11f0-9a7e-0242ac110002",
                "volumeGroupSnapshotHandle": "group-handle"
            }
        }),
        |c: &VolumeSnapshotContent| {
            assert_eq!(c.spec.deletion_policy, snapshot::v1::DELETION_POLICY_DELETE);
            assert_eq!(c.spec.source_volume_mode.as_deref(), Some("Filesystem"));
            let status = c.status.as_ref().unwrap();
            assert_eq!(status.restore_size, Some(1_073_741_824));
            assert_eq!(status.creation_time, Some(1_777_629_601_000_000_000));
        },
    );
}

#[test]
fn volume_snapshot_class() {
    round_trip(
        json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {
                "name": "csi-hostpath-snapclass",
                "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}
            },
            "driver": "hostpath.csi.k8s.io",
            "deletionPolicy": "Retain",
            "parameters": {"csi.storage.k8s.io/snapshotter-secret-name": "s"}
        }),
        |c: &VolumeSnapshotClass| {
            assert_eq!(c.driver, "hostpath.csi.k8s.io");
            assert_eq!(c.deletion_policy, snapshot::v1::DELETION_POLICY_RETAIN);
        },
    );
}

#[test]
fn reference_grant() {
    round_trip(
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "allow-ns2", "namespace": "ns1"},
            "spec": {
                "from": [{"group": "", "kind": "PersistentVolumeClaim", "namespace": "ns2"}],
                "to": [
                    {"group": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot"},
                    {"group": "", "kind": "PersistentVolumeClaim", "name": "src"}
                ]
            }
        }),
        |g: &ReferenceGrant| {
            assert_eq!(g.spec.from[0].namespace, "ns2");
            assert_eq!(g.spec.to[0].name, None);
            assert_eq!(g.spec.to[1].name.as_deref(), Some("src"));
        },
    );
}

#[test]
fn list_items_without_type_meta_and_unknown_fields_decode() {
    // A list's items may lack apiVersion and kind; a newer API server may add fields.
    let list: kube::core::ObjectList<VolumeSnapshot> = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotList",
        "metadata": {"resourceVersion": "99"},
        "items": [{
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"source": {"persistentVolumeClaimName": "p"}, "futureField": 1}
        }]
    }))
    .unwrap();
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("a"));
}

#[test]
fn kube_resource_names() {
    use kube::Resource as _;
    assert_eq!(
        VolumeSnapshot::url_path(&(), Some("ns")),
        "/apis/snapshot.storage.k8s.io/v1/namespaces/ns/volumesnapshots"
    );
    assert_eq!(
        VolumeSnapshotContent::url_path(&(), None),
        "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents"
    );
    assert_eq!(
        VolumeSnapshotClass::url_path(&(), None),
        "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses"
    );
    assert_eq!(
        ReferenceGrant::url_path(&(), Some("ns")),
        "/apis/gateway.networking.k8s.io/v1beta1/namespaces/ns/referencegrants"
    );
    assert_eq!(
        <VolumeSnapshot as k8s_openapi::ListableResource>::LIST_KIND,
        "VolumeSnapshotList"
    );
}

#[test]
fn volume_group_snapshot() {
    round_trip(
        json!({
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshot",
            "metadata": {"name": "group-1", "namespace": "default"},
            "spec": {
                "source": {"selector": {"matchLabels": {"app": "db"}}},
                "volumeGroupSnapshotClassName": "group-class"
            },
            "status": {
                "boundVolumeGroupSnapshotContentName": "groupsnapcontent-1",
                "creationTime": "2026-05-01T10:00:01Z",
                "readyToUse": false,
                "error": {"message": "failed"}
            }
        }),
        |g: &VolumeGroupSnapshot| {
            let selector = g.spec.source.selector.as_ref().unwrap();
            assert_eq!(selector.match_labels.as_ref().unwrap()["app"], "db");
            assert_eq!(g.status.as_ref().unwrap().ready_to_use, Some(false));
        },
    );
    round_trip(
        json!({
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshot",
            "metadata": {"name": "pre", "namespace": "ns1"},
            "spec": {"source": {"volumeGroupSnapshotContentName": "imported"}}
        }),
        |g: &VolumeGroupSnapshot| assert!(g.status.is_none()),
    );
}

#[test]
fn volume_group_snapshot_content() {
    round_trip(
        json!({
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotContent",
            "metadata": {"name": "groupsnapcontent-1"},
            "spec": {
                "deletionPolicy": "Delete",
                "driver": "hostpath.csi.k8s.io",
                "source": {"volumeHandles": ["vol-1", "vol-2"]},
                "volumeGroupSnapshotClassName": "group-class",
                "volumeGroupSnapshotRef": {"name": "group-1", "namespace": "default", "uid": "u1"}
            },
            "status": {
                "volumeGroupSnapshotHandle": "group-handle",
                "creationTime": "2026-05-01T10:00:01Z",
                "readyToUse": true,
                "volumeSnapshotInfoList": [
                    {"volumeHandle": "vol-1", "snapshotHandle": "snap-1",
                     "creationTime": 1777629601000000000_i64, "readyToUse": true,
                     "restoreSize": 1073741824},
                    {"volumeHandle": "vol-2", "snapshotHandle": "snap-2"}
                ]
            }
        }),
        |c: &VolumeGroupSnapshotContent| {
            assert_eq!(c.spec.source.volume_handles, ["vol-1", "vol-2"]);
            let status = c.status.as_ref().unwrap();
            assert_eq!(status.volume_snapshot_info_list.len(), 2);
            assert_eq!(status.volume_snapshot_info_list[1].restore_size, None);
        },
    );
    round_trip(
        json!({
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotContent",
            "metadata": {"name": "imported"},
            "spec": {
                "deletionPolicy": "Retain",
                "driver": "hostpath.csi.k8s.io",
                "source": {"groupSnapshotHandles": {
                    "volumeGroupSnapshotHandle": "group-handle",
                    "volumeSnapshotHandles": ["snap-1", "snap-2"]
                }},
                "volumeGroupSnapshotRef": {"name": "pre", "namespace": "ns1"}
            }
        }),
        |c: &VolumeGroupSnapshotContent| {
            let handles = c.spec.source.group_snapshot_handles.as_ref().unwrap();
            assert_eq!(handles.volume_snapshot_handles, ["snap-1", "snap-2"]);
        },
    );
}

#[test]
fn volume_group_snapshot_class() {
    round_trip(
        json!({
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotClass",
            "metadata": {
                "name": "group-class",
                "annotations": {"groupsnapshot.storage.kubernetes.io/is-default-class": "true"}
            },
            "driver": "hostpath.csi.k8s.io",
            "deletionPolicy": "Delete"
        }),
        |c: &VolumeGroupSnapshotClass| assert!(c.parameters.is_none()),
    );
    use kube::Resource as _;
    assert_eq!(
        VolumeGroupSnapshotContent::url_path(&(), None),
        "/apis/groupsnapshot.storage.k8s.io/v1/volumegroupsnapshotcontents"
    );
    assert_eq!(
        VolumeGroupSnapshot::url_path(&(), Some("ns")),
        "/apis/groupsnapshot.storage.k8s.io/v1/namespaces/ns/volumegroupsnapshots"
    );
}
