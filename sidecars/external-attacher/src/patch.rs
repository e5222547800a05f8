//! The patches upstream sends, computed the way upstream computes them, and (for the in-memory
//! fake) the way the API server applies them.
//!
//! - [`create_merge_patch`]: a JSON merge patch (RFC 7386) between an original and a modified
//!   document, as `evanphx/json-patch`'s `CreateMergePatch` (upstream's `createMergePatch`)
//!   computes it: only what changed, removed keys as `null`.
//! - [`add_finalizer_patch`] / [`remove_finalizer_patch`]: upstream's JSON patches (RFC 6902)
//!   for PersistentVolume finalizers, each guarded by a `test` so that a stale cache can never
//!   re-add a finalizer another controller removed.
//! - [`apply_merge_patch`] / [`apply_json_patch`]: what the API server does with them.

use serde_json::{Map, Value, json};

/// The JSON merge patch (RFC 7386) that turns `original` into `modified`, as
/// `jsonpatch.CreateMergePatch` computes it: keys added or changed in `modified` with their new
/// value (objects recursively, arrays and scalars whole), keys missing from `modified` as
/// `null`. Identical documents give `{}`.
///
/// When either document is not an object, the patch is `modified` itself (a merge patch that
/// is not an object replaces the target).
pub fn create_merge_patch(original: &Value, modified: &Value) -> Value {
    match (original, modified) {
        (Value::Object(a), Value::Object(b)) => Value::Object(diff(a, b)),
        _ => modified.clone(),
    }
}

fn diff(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut into = Map::new();
    for (key, bv) in b {
        let Some(av) = a.get(key) else {
            // Added.
            into.insert(key.clone(), bv.clone());
            continue;
        };
        match (av, bv) {
            (Value::Object(ao), Value::Object(bo)) => {
                let d = diff(ao, bo);
                if !d.is_empty() {
                    into.insert(key.clone(), Value::Object(d));
                }
            }
            // Same type or not, anything else that differs is replaced whole.
            _ => {
                if av != bv {
                    into.insert(key.clone(), bv.clone());
                }
            }
        }
    }
    for key in a.keys() {
        if !b.contains_key(key) {
            into.insert(key.clone(), Value::Null);
        }
    }
    into
}

/// Applies a JSON merge patch (RFC 7386) to `target`.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(object) = target {
        for (key, value) in patch {
            if value.is_null() {
                object.remove(key);
            } else {
                apply_merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

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

/// Why a JSON patch did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchError {
    /// The patch is not an array of operations, or an operation is malformed.
    #[error("invalid JSON patch: {0}")]
    Invalid(String),
    /// A path does not exist (or cannot be created).
    #[error("JSON patch path {0:?} does not exist")]
    Missing(String),
    /// A `test` operation failed.
    #[error("testing value {0} failed")]
    TestFailed(String),
}

/// Applies a JSON patch (RFC 6902; operations `add`, `remove`, `replace` and `test`) to
/// `target`, atomically: on error `target` is unchanged.
///
/// `test` with the value `null` also passes when the path does not exist, as the API server's
/// `evanphx/json-patch` v4 does (upstream's `addFinalizerPatch` relies on it).
pub fn apply_json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let Value::Array(ops) = patch else {
        return Err(JsonPatchError::Invalid("not an array".into()));
    };
    let mut doc = target.clone();
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::Invalid("operation without \"op\"".into()))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::Invalid("operation without \"path\"".into()))?;
        let value = op.get("value");
        match name {
            "test" => {
                let current = pointer(&doc, path);
                let expected = value.unwrap_or(&Value::Null);
                let ok = match current {
                    None => expected.is_null(),
                    Some(current) => current == expected,
                };
                if !ok {
                    return Err(JsonPatchError::TestFailed(path.to_string()));
                }
            }
            "add" | "replace" => {
                let value = value
                    .ok_or_else(|| JsonPatchError::Invalid(format!("{name} without \"value\"")))?
                    .clone();
                set(&mut doc, path, value, name == "replace")?;
            }
            "remove" => remove(&mut doc, path)?,
            other => {
                return Err(JsonPatchError::Invalid(format!(
                    "unsupported operation {other:?}"
                )));
            }
        }
    }
    *target = doc;
    Ok(())
}

/// The unescaped reference tokens of a JSON pointer.
fn tokens(path: &str) -> Result<Vec<String>, JsonPatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(JsonPatchError::Invalid(format!("bad path {path:?}")));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn pointer<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = doc;
    for token in tokens(path).ok()? {
        current = match current {
            Value::Object(map) => map.get(&token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The parent container of `path` and the last token.
fn parent_mut<'a>(
    doc: &'a mut Value,
    path: &str,
) -> Result<(&'a mut Value, String), JsonPatchError> {
    let mut tokens = tokens(path)?;
    let Some(last) = tokens.pop() else {
        return Err(JsonPatchError::Invalid(
            "operation on the whole document".into(),
        ));
    };
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(&token),
            Value::Array(items) => token
                .parse::<usize>()
                .ok()
                .and_then(move |i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| JsonPatchError::Missing(path.to_string()))?;
    }
    Ok((current, last))
}

fn set(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), JsonPatchError> {
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(map) => {
            if replace && !map.contains_key(&last) {
                return Err(JsonPatchError::Missing(path.to_string()));
            }
            map.insert(last, value);
        }
        Value::Array(items) => {
            if last == "-" && !replace {
                items.push(value);
            } else {
                let index: usize = last
                    .parse()
                    .map_err(|_| JsonPatchError::Invalid(format!("bad index in {path:?}")))?;
                if replace {
                    let slot = items
                        .get_mut(index)
                        .ok_or_else(|| JsonPatchError::Missing(path.to_string()))?;
                    *slot = value;
                } else if index <= items.len() {
                    items.insert(index, value);
                } else {
                    return Err(JsonPatchError::Missing(path.to_string()));
                }
            }
        }
        _ => return Err(JsonPatchError::Missing(path.to_string())),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<(), JsonPatchError> {
    let (parent, last) = parent_mut(doc, path)?;
    let removed = match parent {
        Value::Object(map) => map.remove(&last).is_some(),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(index) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(JsonPatchError::Missing(path.to_string()))
    }
}
