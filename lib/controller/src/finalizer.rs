//! Finalizers, added and removed with JSON patches (RFC 6902) whose `test` operations make the
//! patch fail — instead of silently overwriting — when the list changed since it was read
//! (optimistic concurrency, as kube-runtime's `finalizer.rs`).
//!
//! - [`add_finalizer_patch`] / [`remove_finalizer_patch`]: the patches the CSI sidecars send
//!   upstream (external-attacher's PersistentVolume finalizer), byte for byte;
//! - [`add_finalizer_patch_checked`]: kube-runtime's form, which also tests a non-empty list,
//!   so two controllers racing cannot add the same finalizer twice;
//! - [`with_resource_version_test`]: adds a `test` of `metadata.resourceVersion`, for patches
//!   that must apply only to the version that was read;
//! - [`add_finalizer`] / [`remove_finalizer`]: build the checked patch and send it;
//! - [`finalizers_strategic_patch`]: the strategic merge patch client-go's
//!   `CreateTwoWayMergePatch` computes when only the list changes (sig-storage-lib-external-
//!   provisioner's PersistentVolume finalizer).
//!
//! A failed `test` is answered by the API server with an error (422 `Invalid` today); the
//! caller re-reads the object and tries again.

use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ApiError;
use crate::patch::{PatchBody, Patcher};

/// Upstream's `addFinalizerPatch`: a JSON patch that appends `finalizer` to
/// `metadata.finalizers` without replacing the list.
///
/// - no list (`None`): `test` that it is absent, then `add` the list `[finalizer]`;
/// - an empty list: `test` that it is `[]`, then `replace` it with `[finalizer]`;
/// - otherwise: `add` at `/metadata/finalizers/-` (append).
pub fn add_finalizer_patch(existing: Option<&[String]>, finalizer: &str) -> Value {
    match existing {
        None => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
        ]),
        Some([]) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": []},
            {"op": "replace", "path": "/metadata/finalizers", "value": [finalizer]},
        ]),
        Some(_) => json!([
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
        ]),
    }
}

/// Upstream's `removeFinalizerPatch`: a JSON patch that removes `finalizer` by index after a
/// `test` of its value at that index, so a concurrent change of the list makes the patch fail
/// instead of removing the wrong entry. `None` when the list does not hold `finalizer`.
pub fn remove_finalizer_patch(existing: Option<&[String]>, finalizer: &str) -> Option<Value> {
    let index = existing?.iter().position(|f| f == finalizer)?;
    let path = format!("/metadata/finalizers/{index}");
    Some(json!([
        {"op": "test", "path": path, "value": finalizer},
        {"op": "remove", "path": path},
    ]))
}

/// kube-runtime's finalizer patch: `test` the whole current list (or its absence), then append
/// `finalizer`. `None` when the list already holds it.
pub fn add_finalizer_patch_checked(existing: Option<&[String]>, finalizer: &str) -> Option<Value> {
    match existing {
        // Upstream's form already tests the absent or empty list.
        None | Some([]) => Some(add_finalizer_patch(existing, finalizer)),
        Some(list) if list.iter().any(|f| f == finalizer) => None,
        Some(list) => Some(json!([
            {"op": "test", "path": "/metadata/finalizers", "value": list},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
        ])),
    }
}

/// `patch` (a JSON patch) with a `test` of `metadata.resourceVersion` first: the patch applies
/// only to that version of the object. A patch that is not a list is returned unchanged.
pub fn with_resource_version_test(mut patch: Value, resource_version: &str) -> Value {
    if let Value::Array(ops) = &mut patch {
        ops.insert(
            0,
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}),
        );
    }
    patch
}

/// The strategic merge patch from the finalizer list `old` to `new`, as client-go's
/// `CreateTwoWayMergePatch` writes it for a `metadata.finalizers` change (a primitive list
/// with the `merge` strategy): `{"metadata":{"finalizers":null}}` when `new` is empty, the
/// whole list when `old` had none, else the added entries, the removed ones under
/// `$deleteFromPrimitiveList/finalizers` and the new order under
/// `$setElementOrder/finalizers`. `None` when nothing changes.
pub fn finalizers_strategic_patch(old: &[String], new: &[String]) -> Option<Value> {
    if old == new {
        return None;
    }
    if new.is_empty() {
        return Some(json!({"metadata": {"finalizers": null}}));
    }
    if old.is_empty() {
        return Some(json!({"metadata": {"finalizers": new}}));
    }
    let added: Vec<&String> = new.iter().filter(|f| !old.contains(f)).collect();
    let removed: Vec<&String> = old.iter().filter(|f| !new.contains(f)).collect();
    let mut metadata = serde_json::Map::new();
    if !removed.is_empty() {
        metadata.insert(
            "$deleteFromPrimitiveList/finalizers".to_string(),
            json!(removed),
        );
    }
    metadata.insert("$setElementOrder/finalizers".to_string(), json!(new));
    if !added.is_empty() {
        metadata.insert("finalizers".to_string(), json!(added));
    }
    Some(json!({ "metadata": metadata }))
}

/// Adds `finalizer` to `object` with [`add_finalizer_patch_checked`]. Returns the patched
/// object, or `None` when the finalizer was already there (nothing is sent).
pub async fn add_finalizer<K>(
    patcher: &Patcher,
    object: &K,
    finalizer: &str,
) -> Result<Option<K>, ApiError>
where
    K: Resource + DeserializeOwned,
    K::DynamicType: Default,
{
    let meta = object.meta();
    let Some(patch) = add_finalizer_patch_checked(meta.finalizers.as_deref(), finalizer) else {
        return Ok(None);
    };
    let name = meta.name.as_deref().unwrap_or_default();
    patcher
        .patch(meta.namespace.as_deref(), name, PatchBody::Json(&patch))
        .await
        .map(Some)
}

/// Removes `finalizer` from `object` with [`remove_finalizer_patch`]. Returns the patched
/// object, or `None` when the finalizer was not there (nothing is sent).
pub async fn remove_finalizer<K>(
    patcher: &Patcher,
    object: &K,
    finalizer: &str,
) -> Result<Option<K>, ApiError>
where
    K: Resource + DeserializeOwned,
    K::DynamicType: Default,
{
    let meta = object.meta();
    let Some(patch) = remove_finalizer_patch(meta.finalizers.as_deref(), finalizer) else {
        return Ok(None);
    };
    let name = meta.name.as_deref().unwrap_or_default();
    patcher
        .patch(meta.namespace.as_deref(), name, PatchBody::Json(&patch))
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::apply_json_patch;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn upstream_patches_byte_for_byte() {
        let s = |v: Value| serde_json::to_string(&v).unwrap();
        assert_eq!(
            s(add_finalizer_patch(None, "f")),
            r#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]"#
        );
        assert_eq!(
            s(add_finalizer_patch(Some(&[]), "f")),
            r#"[{"op":"test","path":"/metadata/finalizers","value":[]},{"op":"replace","path":"/metadata/finalizers","value":["f"]}]"#
        );
        assert_eq!(
            s(add_finalizer_patch(Some(&list(&["a"])), "f")),
            r#"[{"op":"add","path":"/metadata/finalizers/-","value":"f"}]"#
        );
        assert_eq!(
            s(remove_finalizer_patch(Some(&list(&["a", "f"])), "f").unwrap()),
            r#"[{"op":"test","path":"/metadata/finalizers/1","value":"f"},{"op":"remove","path":"/metadata/finalizers/1"}]"#
        );
        assert!(remove_finalizer_patch(Some(&list(&["a"])), "f").is_none());
        assert!(remove_finalizer_patch(None, "f").is_none());
    }

    #[test]
    fn checked_patches_test_the_whole_list() {
        let s = |v: Value| serde_json::to_string(&v).unwrap();
        assert_eq!(
            s(add_finalizer_patch_checked(None, "f").unwrap()),
            r#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]"#
        );
        assert_eq!(
            s(add_finalizer_patch_checked(Some(&[]), "f").unwrap()),
            r#"[{"op":"test","path":"/metadata/finalizers","value":[]},{"op":"replace","path":"/metadata/finalizers","value":["f"]}]"#
        );
        assert_eq!(
            s(add_finalizer_patch_checked(Some(&list(&["a"])), "f").unwrap()),
            r#"[{"op":"test","path":"/metadata/finalizers","value":["a"]},{"op":"add","path":"/metadata/finalizers/-","value":"f"}]"#
        );
        assert!(add_finalizer_patch_checked(Some(&list(&["f"])), "f").is_none());
    }

    #[test]
    fn a_concurrent_change_fails_the_checked_patch() {
        let patch = add_finalizer_patch_checked(Some(&list(&["a"])), "f").unwrap();
        // Someone added "b" since we read the object.
        let mut doc = json!({"metadata": {"finalizers": ["a", "b"]}});
        assert!(apply_json_patch(&mut doc, &patch).is_err());
        let mut doc = json!({"metadata": {"finalizers": ["a"]}});
        apply_json_patch(&mut doc, &patch).unwrap();
        assert_eq!(doc, json!({"metadata": {"finalizers": ["a", "f"]}}));
    }

    #[test]
    fn strategic_finalizer_patches_as_client_go_writes_them() {
        let s = |v: Option<Value>| v.map(|v| serde_json::to_string(&v).unwrap());
        assert_eq!(
            s(finalizers_strategic_patch(&list(&["a"]), &list(&["a"]))),
            None
        );
        assert_eq!(
            s(finalizers_strategic_patch(&[], &list(&["f"]))).unwrap(),
            r#"{"metadata":{"finalizers":["f"]}}"#
        );
        assert_eq!(
            s(finalizers_strategic_patch(&list(&["f"]), &[])).unwrap(),
            r#"{"metadata":{"finalizers":null}}"#
        );
        assert_eq!(
            s(finalizers_strategic_patch(
                &list(&["a"]),
                &list(&["a", "f"])
            ))
            .unwrap(),
            r#"{"metadata":{"$setElementOrder/finalizers":["a","f"],"finalizers":["f"]}}"#
        );
        assert_eq!(
            s(finalizers_strategic_patch(
                &list(&["a", "f"]),
                &list(&["a"])
            ))
            .unwrap(),
            r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["f"],"$setElementOrder/finalizers":["a"]}}"#
        );
    }

    #[test]
    fn resource_version_test_comes_first() {
        let patch = with_resource_version_test(add_finalizer_patch(None, "f"), "42");
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"})
        );
        let mut doc = json!({"metadata": {"resourceVersion": "43"}});
        assert!(apply_json_patch(&mut doc, &patch).is_err());
        let mut doc = json!({"metadata": {"resourceVersion": "42"}});
        apply_json_patch(&mut doc, &patch).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
    }
}
