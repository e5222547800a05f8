use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use serde_json::json;

use super::*;

#[test]
fn merge_patch_carries_only_changes_and_nulls_for_removals() {
    let original =
        json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"n": 1}});
    let modified =
        json!({"metadata": {"name": "a", "labels": {"x": "1", "z": "3"}}, "spec": {"n": 1}});
    let patch = create_merge_patch(&original, &modified);
    assert_eq!(
        serde_json::to_string(&patch).unwrap(),
        r#"{"metadata":{"labels":{"y":null,"z":"3"}}}"#
    );
    assert_eq!(create_merge_patch(&original, &original), json!({}));
    // Lists are replaced whole.
    let patch = create_merge_patch(&json!({"l": [1, 2]}), &json!({"l": [1]}));
    assert_eq!(patch, json!({"l": [1]}));
    // A non-object replaces the document.
    assert_eq!(create_merge_patch(&json!(1), &json!("x")), json!("x"));
}

#[test]
fn merge_patch_round_trips() {
    let original = json!({"a": {"b": 1, "c": [1]}, "d": "x"});
    let modified = json!({"a": {"b": 2}, "e": true});
    let patch = create_merge_patch(&original, &modified);
    let mut doc = original.clone();
    apply_merge_patch(&mut doc, &patch);
    assert_eq!(doc, modified);
}

#[test]
fn json_patch_ops() {
    let mut doc = json!({"metadata": {"finalizers": ["a", "b"]}});
    apply_json_patch(
        &mut doc,
        &json!([
            {"op": "test", "path": "/metadata/finalizers/1", "value": "b"},
            {"op": "remove", "path": "/metadata/finalizers/1"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
            {"op": "replace", "path": "/metadata/finalizers/0", "value": "z"},
        ]),
    )
    .unwrap();
    assert_eq!(doc, json!({"metadata": {"finalizers": ["z", "c"]}}));
}

#[test]
fn json_patch_is_atomic_and_test_failures_are_reported() {
    let original = json!({"metadata": {"finalizers": ["a"]}});
    let mut doc = original.clone();
    let err = apply_json_patch(
        &mut doc,
        &json!([
            {"op": "add", "path": "/metadata/finalizers/-", "value": "b"},
            {"op": "test", "path": "/metadata/finalizers/0", "value": "x"},
        ]),
    )
    .unwrap_err();
    assert_eq!(
        err,
        JsonPatchError::TestFailed("/metadata/finalizers/0".into())
    );
    assert_eq!(doc, original);
    // `test` for null passes on a missing path (evanphx/json-patch v4).
    let mut doc = json!({"metadata": {}});
    apply_json_patch(
        &mut doc,
        &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
    )
    .unwrap();
    // `replace` of a missing object member sets it (evanphx/json-patch v4); a missing parent
    // is still an error.
    apply_json_patch(
        &mut doc,
        &json!([{"op": "replace", "path": "/status", "value": {"a": 1}}]),
    )
    .unwrap();
    assert_eq!(doc["status"], json!({"a": 1}));
    assert!(matches!(
        apply_json_patch(
            &mut doc,
            &json!([{"op": "replace", "path": "/spec/x", "value": 1}])
        ),
        Err(JsonPatchError::Missing(_))
    ));
    assert!(matches!(
        apply_json_patch(&mut doc, &json!([{"op": "remove", "path": "/metadata/x"}])),
        Err(JsonPatchError::Missing(_))
    ));
    assert!(matches!(
        apply_json_patch(&mut doc, &json!({"op": "add"})),
        Err(JsonPatchError::Invalid(_))
    ));
}

#[test]
fn patch_urls() {
    assert_eq!(
        patch_url::<PersistentVolume>(None, "pv-1", None, Some("csi-attacher")),
        "/api/v1/persistentvolumes/pv-1?fieldManager=csi-attacher"
    );
    assert_eq!(
        patch_url::<VolumeAttachment>(None, "a b", Some("status"), None),
        "/apis/storage.k8s.io/v1/volumeattachments/a%20b/status"
    );
    assert_eq!(
        patch_url::<PersistentVolumeClaim>(Some("ns"), "claim", None, None),
        "/api/v1/namespaces/ns/persistentvolumeclaims/claim"
    );
}

#[test]
fn content_types() {
    let v = json!({});
    assert_eq!(
        PatchBody::Merge(&v).content_type(),
        "application/merge-patch+json"
    );
    assert_eq!(
        PatchBody::Strategic(&v).content_type(),
        "application/strategic-merge-patch+json"
    );
    assert_eq!(
        PatchBody::Json(&v).content_type(),
        "application/json-patch+json"
    );
}

#[test]
fn escapes_path_segments() {
    assert_eq!(escape_path("pv-1.a_b~"), "pv-1.a_b~");
    assert_eq!(escape_path("a/b c"), "a%2Fb%20c");
}
