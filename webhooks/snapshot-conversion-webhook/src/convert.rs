//! The conversion itself: VolumeGroupSnapshotContent between `groupsnapshot.storage.k8s.io/v1beta1`
//! and `v1beta2`, on the object as JSON, with upstream's rules (external-snapshotter v8.7.0
//! `pkg/webhook/convert.go`).
//!
//! v1beta2 renamed `status.volumeSnapshotHandlePairList` (pairs of volume and snapshot handle) to
//! `status.volumeSnapshotInfoList`, whose entries also carry `creationTime`, `readyToUse` and
//! `restoreSize`. Going down to v1beta1 drops those fields from the list, so the whole v1beta2
//! list is kept in an annotation; coming back up, the annotation (when present) restores the
//! list and is removed. Nothing else of the object changes; `apiVersion` is set by the caller.
//!
//! Only these two versions are converted, as upstream: a request involving any other version
//! (the v1 that the v8.6+ CRDs also serve) is refused.

use serde_json::{Map, Value};

/// The annotation that carries the v1beta2 `volumeSnapshotInfoList` while the object is seen
/// as v1beta1, so that converting back loses nothing.
pub const VOLUME_SNAPSHOT_INFO_ANNOTATION: &str =
    "groupsnapshot.storage.kubernetes.io/volume-snapshot-info-list";
/// The older version.
pub const V1BETA1: &str = "groupsnapshot.storage.k8s.io/v1beta1";
/// The newer version.
pub const V1BETA2: &str = "groupsnapshot.storage.k8s.io/v1beta2";
/// The only kind converted.
pub const KIND: &str = "VolumeGroupSnapshotContent";

/// Converts `object` to `to_version`, or says why not (the message of a `Failure` status).
/// The returned object still has the old `apiVersion`.
pub fn convert_group_snapshot_crd(object: &Value, to_version: &str) -> Result<Value, String> {
    let mut converted = object.clone();
    let from_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if to_version == from_version {
        return Err(format!(
            "conversion from a version to itself should not call the webhook: {to_version}"
        ));
    }
    if kind != KIND {
        return Err(format!("unexpected conversion kind {}", go_quote(kind)));
    }
    match (from_version, to_version) {
        (V1BETA1, V1BETA2) => v1beta1_to_v1beta2(&mut converted)?,
        (V1BETA2, V1BETA1) => v1beta2_to_v1beta1(&mut converted)?,
        _ => {
            return Err(format!(
                "unexpected conversion version from {} to {}",
                go_quote(from_version),
                go_quote(to_version)
            ));
        }
    }
    Ok(converted)
}

/// v1beta1 → v1beta2: the annotation, if there, becomes `status.volumeSnapshotInfoList` (and
/// `volumeSnapshotHandlePairList` goes); otherwise `volumeSnapshotHandlePairList` is renamed.
pub fn v1beta1_to_v1beta2(object: &mut Value) -> Result<(), String> {
    let annotation = object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(VOLUME_SNAPSHOT_INFO_ANNOTATION))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(value) = annotation {
        let list: Value = serde_json::from_str(&value).map_err(|e| {
            format!(
                "unable to deserialize annotation {}: {e}",
                go_quote(VOLUME_SNAPSHOT_INFO_ANNOTATION)
            )
        })?;
        if !list.is_array() {
            return Err(format!(
                "unable to deserialize annotation {}: expected a list",
                go_quote(VOLUME_SNAPSHOT_INFO_ANNOTATION)
            ));
        }
        set_status_field(object, "volumeSnapshotInfoList", list)
            .map_err(|e| format!("error while setting .status.volumeSnapshotInfoList: {e}"))?;
        remove_status_field(object, "volumeSnapshotHandlePairList");
        if let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") {
            annotations.remove(VOLUME_SNAPSHOT_INFO_ANNOTATION);
        }
    } else {
        let pairs = status_list(object, "volumeSnapshotHandlePairList").map_err(|e| {
            format!("unable to traverse for .status.volumeSnapshotHandlePairList: {e}")
        })?;
        if let Some(pairs) = pairs {
            set_status_field(object, "volumeSnapshotInfoList", pairs)
                .map_err(|e| format!("error while setting .status.volumeSnapshotInfoList: {e}"))?;
            remove_status_field(object, "volumeSnapshotHandlePairList");
        }
    }
    Ok(())
}

/// v1beta2 → v1beta1: the whole `status.volumeSnapshotInfoList` is kept in the annotation, and
/// becomes `volumeSnapshotHandlePairList` without the fields v1beta1 lacks.
pub fn v1beta2_to_v1beta1(object: &mut Value) -> Result<(), String> {
    let list = status_list(object, "volumeSnapshotInfoList")
        .map_err(|e| format!("unable to traverse for .status.volumeSnapshotInfoList: {e}"))?;
    let Some(mut list) = list else {
        return Ok(());
    };
    let serialized = go_json(&list);
    let metadata = object
        .as_object_mut()
        .ok_or("the object is not a JSON object")?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let metadata = metadata
        .as_object_mut()
        .ok_or("metadata is not an object")?;
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Value::Object(annotations) = annotations {
        annotations.insert(
            VOLUME_SNAPSHOT_INFO_ANNOTATION.to_string(),
            Value::String(serialized),
        );
    }
    if let Value::Array(entries) = &mut list {
        for (i, entry) in entries.iter_mut().enumerate() {
            let Value::Object(entry) = entry else {
                return Err(format!(
                    "unexpected content in .status.volumeSnapshotInfoList[{i}]: expected map"
                ));
            };
            entry.remove("creationTime");
            entry.remove("readyToUse");
            entry.remove("restoreSize");
        }
    }
    set_status_field(object, "volumeSnapshotHandlePairList", list)
        .map_err(|e| format!("error while setting .status.volumeSnapshotHandlePairList: {e}"))?;
    remove_status_field(object, "volumeSnapshotInfoList");
    Ok(())
}

/// `status.<field>` if it is there: a list, or an error naming what it is instead.
fn status_list(object: &Value, field: &str) -> Result<Option<Value>, String> {
    let Some(status) = object.get("status") else {
        return Ok(None);
    };
    let Value::Object(status) = status else {
        return Err(format!(
            ".status accessor error: {status} is of the type {}, expected map[string]interface{{}}",
            json_type(status)
        ));
    };
    match status.get(field) {
        None => Ok(None),
        Some(list @ Value::Array(_)) => Ok(Some(list.clone())),
        Some(other) => Err(format!(
            ".status.{field} accessor error: {other} is of the type {}, expected []interface{{}}",
            json_type(other)
        )),
    }
}

/// Sets `status.<field>`, creating `status` if needed.
fn set_status_field(object: &mut Value, field: &str, value: Value) -> Result<(), String> {
    let root = object
        .as_object_mut()
        .ok_or("the object is not a JSON object")?;
    let status = root
        .entry("status")
        .or_insert_with(|| Value::Object(Map::new()));
    match status {
        Value::Object(status) => {
            status.insert(field.to_string(), value);
            Ok(())
        }
        _ => Err("value cannot be set because status is not a map[string]interface{}".into()),
    }
}

fn remove_status_field(object: &mut Value, field: &str) {
    if let Some(Value::Object(status)) = object.get_mut("status") {
        status.remove(field);
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// JSON as Go's `encoding/json` writes it: compact, keys sorted, and `<`, `>`, `&`, U+2028 and
/// U+2029 escaped (they can only occur inside strings, so replacing them is safe).
pub fn go_json(value: &Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Go's `%q` for the strings that occur here.
pub fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests;
