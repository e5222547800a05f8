//! Upstream's `TestFromBeta1ToBeta2` and `TestFromBeta2ToBeta1` (v8.7.0 `pkg/webhook/convert_test.go`):
//! each case is a pair of objects, one per version, named as upstream's `testdata/` pairs are;
//! converting one must give the other (after `apiVersion`, which the framework sets).

use serde_json::{Value, json};

use super::*;

const NAME: &str = "new-groupsnapshot-demo";

fn info_list() -> Value {
    json!([
        {"snapshotHandle": "snap-1-handle", "volumeHandle": "vol-1-handle",
         "creationTime": 23, "readyToUse": true, "restoreSize": 12},
        {"snapshotHandle": "snap-2-handle", "volumeHandle": "vol-2-handle",
         "creationTime": 23, "readyToUse": true, "restoreSize": 12},
    ])
}

fn pair_list() -> Value {
    json!([
        {"snapshotHandle": "snap-1-handle", "volumeHandle": "vol-1-handle"},
        {"snapshotHandle": "snap-2-handle", "volumeHandle": "vol-2-handle"},
    ])
}

fn object(version: &str, annotations: Option<Value>, status: Option<Value>) -> Value {
    let mut metadata = json!({"name": NAME});
    if let Some(annotations) = annotations {
        metadata["annotations"] = annotations;
    }
    let mut object = json!({
        "apiVersion": version,
        "kind": KIND,
        "metadata": metadata,
        "spec": {},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

/// The annotation as a user or an older webhook may have written it: indented, not compact.
fn annotation_with_info() -> Value {
    json!({ VOLUME_SNAPSHOT_INFO_ANNOTATION: serde_json::to_string_pretty(&info_list()).unwrap() })
}

fn v1beta1_status() -> Value {
    json!({"readyToUse": true, "volumeGroupSnapshotHandle": "group-handle",
           "volumeSnapshotHandlePairList": pair_list()})
}

fn v1beta2_status(list: Value) -> Value {
    json!({"readyToUse": true, "volumeGroupSnapshotHandle": "group-handle",
           "volumeSnapshotInfoList": list})
}

fn check(name: &str, mut from: Value, to: Value, convert: fn(&mut Value) -> Result<(), String>) {
    convert(&mut from).unwrap_or_else(|e| panic!("{name}: conversion failed: {e}"));
    from["apiVersion"] = to["apiVersion"].clone();
    assert_eq!(
        from,
        to,
        "{name}: unexpected result {} vs {}",
        serde_json::to_string_pretty(&from).unwrap(),
        serde_json::to_string_pretty(&to).unwrap()
    );
}

#[test]
fn test_from_beta1_to_beta2() {
    let cases = [
        (
            "annotation_no_status",
            object(V1BETA1, Some(annotation_with_info()), None),
            object(
                V1BETA2,
                Some(json!({})),
                Some(json!({"volumeSnapshotInfoList": info_list()})),
            ),
        ),
        (
            "annotation_status",
            object(
                V1BETA1,
                Some(annotation_with_info()),
                Some(v1beta1_status()),
            ),
            object(V1BETA2, Some(json!({})), Some(v1beta2_status(info_list()))),
        ),
        (
            "no_annotation_no_status",
            object(V1BETA1, None, None),
            object(V1BETA2, None, None),
        ),
        (
            "no_annotation_status",
            object(V1BETA1, None, Some(v1beta1_status())),
            object(V1BETA2, None, Some(v1beta2_status(pair_list()))),
        ),
    ];
    for (name, from, to) in cases {
        check(name, from, to, v1beta1_to_v1beta2);
    }
}

#[test]
fn test_from_beta2_to_beta1() {
    let compact = json!({ VOLUME_SNAPSHOT_INFO_ANNOTATION: go_json(&info_list()) });
    let cases = [
        (
            "annotation_status",
            object(V1BETA2, None, Some(v1beta2_status(info_list()))),
            object(V1BETA1, Some(compact), Some(v1beta1_status())),
        ),
        (
            "no_annotation_no_status",
            object(V1BETA2, None, None),
            object(V1BETA1, None, None),
        ),
    ];
    for (name, from, to) in cases {
        check(name, from, to, v1beta2_to_v1beta1);
    }
}

#[test]
fn the_annotation_is_go_compact_json_with_sorted_keys() {
    let mut object = object(V1BETA2, None, Some(v1beta2_status(info_list())));
    v1beta2_to_v1beta1(&mut object).unwrap();
    let annotation = object["metadata"]["annotations"][VOLUME_SNAPSHOT_INFO_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(annotation.starts_with(
        r#"[{"creationTime":23,"readyToUse":true,"restoreSize":12,"snapshotHandle":"snap-1-handle","volumeHandle":"vol-1-handle"}"#
    ), "{annotation}");
    assert_eq!(
        go_json(&json!({"a": "<&>"})),
        r#"{"a":"\u003c\u0026\u003e"}"#
    );
}

#[test]
fn round_trips_lose_nothing() {
    let beta2 = object(
        V1BETA2,
        Some(json!({"keep": "me"})),
        Some(v1beta2_status(info_list())),
    );
    let mut beta1 = convert_group_snapshot_crd(&beta2, V1BETA1).unwrap();
    beta1["apiVersion"] = json!(V1BETA1);
    let mut back = convert_group_snapshot_crd(&beta1, V1BETA2).unwrap();
    back["apiVersion"] = json!(V1BETA2);
    assert_eq!(back, beta2);
}

#[test]
fn refusals_carry_upstream_messages() {
    let beta1 = object(V1BETA1, None, None);
    assert_eq!(
        convert_group_snapshot_crd(&beta1, V1BETA1).unwrap_err(),
        "conversion from a version to itself should not call the webhook: groupsnapshot.storage.k8s.io/v1beta1"
    );
    let mut snapshot = beta1.clone();
    snapshot["kind"] = json!("VolumeGroupSnapshot");
    assert_eq!(
        convert_group_snapshot_crd(&snapshot, V1BETA2).unwrap_err(),
        r#"unexpected conversion kind "VolumeGroupSnapshot""#
    );
    assert_eq!(
        convert_group_snapshot_crd(&beta1, "groupsnapshot.storage.k8s.io/v1").unwrap_err(),
        r#"unexpected conversion version from "groupsnapshot.storage.k8s.io/v1beta1" to "groupsnapshot.storage.k8s.io/v1""#
    );
    let mut bad = object(
        V1BETA1,
        Some(json!({VOLUME_SNAPSHOT_INFO_ANNOTATION: "{not json"})),
        None,
    );
    let err = v1beta1_to_v1beta2(&mut bad).unwrap_err();
    assert!(err.starts_with(r#"unable to deserialize annotation "groupsnapshot.storage.kubernetes.io/volume-snapshot-info-list": "#), "{err}");
    let mut bad = object(
        V1BETA2,
        None,
        Some(json!({"volumeSnapshotInfoList": ["x"]})),
    );
    assert_eq!(
        v1beta2_to_v1beta1(&mut bad).unwrap_err(),
        "unexpected content in .status.volumeSnapshotInfoList[0]: expected map"
    );
    let mut bad = object(V1BETA1, None, Some(json!("text")));
    assert!(
        v1beta1_to_v1beta2(&mut bad)
            .unwrap_err()
            .starts_with("unable to traverse for .status.volumeSnapshotHandlePairList")
    );
}
