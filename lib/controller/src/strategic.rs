//! Strategic merge patches of whole objects: the patch client-go's
//! `strategicpatch.CreateTwoWayMergePatch` computes between an object as read and the object as
//! the controller wants it ([`two_way_merge_patch`]), and how the API server applies one
//! ([`apply_strategic_patch`], for fakes).
//!
//! Strategic merge differs from a JSON merge patch only in lists: a list whose field has a
//! patch merge key (`status.conditions` merged by `type`, `metadata.ownerReferences` by `uid`)
//! is merged element by element instead of replaced. Which lists have a key is the type's
//! schema; here it is a table of dotted paths ([`MergeKeys`]), [`OBJECT_MERGE_KEYS`] holding
//! the ones the controllers write. Lists of scalars with the merge strategy
//! (`metadata.finalizers`) are treated as replaced whole: finalizer changes have their own
//! patch, `finalizers_strategic_patch`.
//!
//! What the two-way patch holds, as client-go writes it:
//! - maps: the keys added or changed (maps recursively), removed keys as `null`;
//! - a keyed list: the changed elements as their own diff plus the merge key, the added
//!   elements whole, both in the new list's order, then `{"$patch": "delete", <key>: <value>}`
//!   for each removed element; and `$setElementOrder/<field>`, the new list's keys in order,
//!   whenever the list's content or order changed;
//! - any other list, and scalars: the new value when it differs.

use serde_json::{Map, Value, json};

/// The patch merge keys of an object type: `(dotted path of the list field, merge key)`.
pub type MergeKeys = [(&'static str, &'static str)];

/// The keyed lists of PersistentVolumeClaims and PersistentVolumes (and of most objects):
/// `metadata.ownerReferences` by `uid`, `status.conditions` by `type`.
pub const OBJECT_MERGE_KEYS: &MergeKeys = &[
    ("metadata.ownerReferences", "uid"),
    ("status.conditions", "type"),
];

const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

fn merge_key(keys: &MergeKeys, path: &str) -> Option<&'static str> {
    keys.iter().find(|(p, _)| *p == path).map(|(_, key)| *key)
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The strategic merge patch that turns `original` into `modified` (client-go's
/// `CreateTwoWayMergePatch`), lists merged by the keys in `keys`. Identical documents give
/// `{}`.
pub fn two_way_merge_patch(original: &Value, modified: &Value, keys: &MergeKeys) -> Value {
    match (original, modified) {
        (Value::Object(a), Value::Object(b)) => Value::Object(diff_maps(a, b, "", keys)),
        _ => modified.clone(),
    }
}

fn diff_maps(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    path: &str,
    keys: &MergeKeys,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, bv) in b {
        let Some(av) = a.get(key) else {
            patch.insert(key.clone(), bv.clone());
            continue;
        };
        let here = child(path, key);
        match (av, bv) {
            (Value::Object(ao), Value::Object(bo)) => {
                let d = diff_maps(ao, bo, &here, keys);
                if !d.is_empty() {
                    patch.insert(key.clone(), Value::Object(d));
                }
            }
            (Value::Array(al), Value::Array(bl)) => match merge_key(keys, &here) {
                Some(merge) if is_list_of_maps(al) && is_list_of_maps(bl) => {
                    let (list, order) = diff_keyed_lists(al, bl, merge, &here, keys);
                    if !list.is_empty() {
                        patch.insert(key.clone(), Value::Array(list));
                    }
                    if let Some(order) = order {
                        patch.insert(format!("{SET_ELEMENT_ORDER}{key}"), Value::Array(order));
                    }
                }
                _ => {
                    if al != bl {
                        patch.insert(key.clone(), bv.clone());
                    }
                }
            },
            _ => {
                if av != bv {
                    patch.insert(key.clone(), bv.clone());
                }
            }
        }
    }
    for key in a.keys() {
        if !b.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    patch
}

fn is_list_of_maps(list: &[Value]) -> bool {
    list.iter().all(Value::is_object)
}

/// The merge key value of an element as a sortable string (client-go sorts by `%v`).
fn key_string(element: &Value, merge: &str) -> String {
    match element.get(merge) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The patch list (changes and additions in `b`'s order, then deletions) and the
/// `$setElementOrder` list, when one is written.
fn diff_keyed_lists(
    a: &[Value],
    b: &[Value],
    merge: &str,
    path: &str,
    keys: &MergeKeys,
) -> (Vec<Value>, Option<Vec<Value>>) {
    let mut changes: Vec<(usize, Value)> = Vec::new();
    for (index, new) in b.iter().enumerate() {
        let k = key_string(new, merge);
        match a.iter().find(|old| key_string(old, merge) == k) {
            Some(old) => {
                let (Value::Object(oo), Value::Object(no)) = (old, new) else {
                    continue;
                };
                let mut d = diff_maps(oo, no, path, keys);
                if !d.is_empty() {
                    d.insert(
                        merge.to_string(),
                        new.get(merge).cloned().unwrap_or(Value::Null),
                    );
                    changes.push((index, Value::Object(d)));
                }
            }
            None => changes.push((index, new.clone())),
        }
    }
    let mut deleted: Vec<&Value> = a
        .iter()
        .filter(|old| {
            let k = key_string(old, merge);
            !b.iter().any(|new| key_string(new, merge) == k)
        })
        .collect();
    deleted.sort_by_key(|old| key_string(old, merge));
    let mut list: Vec<Value> = changes.into_iter().map(|(_, v)| v).collect();
    list.extend(deleted.into_iter().map(|old| {
        let mut directive = Map::new();
        directive.insert("$patch".into(), json!("delete"));
        directive.insert(merge.into(), old.get(merge).cloned().unwrap_or(Value::Null));
        Value::Object(directive)
    }));
    let order_same = a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| key_string(x, merge) == key_string(y, merge));
    let order = (!list.is_empty() || !order_same).then(|| {
        b.iter()
            .map(|new| {
                let mut only_key = Map::new();
                only_key.insert(merge.into(), new.get(merge).cloned().unwrap_or(Value::Null));
                Value::Object(only_key)
            })
            .collect::<Vec<_>>()
    });
    // client-go writes no order list for a list that became empty.
    (list, order.filter(|o| !o.is_empty()))
}

/// Applies a strategic merge patch to `target` as the API server does, for the parts
/// [`two_way_merge_patch`] writes: maps merged (`null` removes), keyed lists merged by key
/// (`$patch: delete` removes an element, `$setElementOrder/<field>` orders the result), other
/// lists replaced.
pub fn apply_strategic_patch(target: &mut Value, patch: &Value, keys: &MergeKeys) {
    apply_at(target, patch, "", keys);
}

fn apply_at(target: &mut Value, patch: &Value, path: &str, keys: &MergeKeys) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(object) = target else {
        return;
    };
    for (key, value) in patch {
        if key.starts_with(SET_ELEMENT_ORDER) || key == "$patch" {
            continue;
        }
        let here = child(path, key);
        if value.is_null() {
            object.remove(key);
            continue;
        }
        match (merge_key(keys, &here), value) {
            (Some(merge), Value::Array(elements)) => {
                let mut list = match object.remove(key) {
                    Some(Value::Array(list)) => list,
                    _ => Vec::new(),
                };
                for element in elements {
                    let k = key_string(element, merge);
                    let position = list.iter().position(|e| key_string(e, merge) == k);
                    if element.get("$patch").and_then(Value::as_str) == Some("delete") {
                        if let Some(i) = position {
                            list.remove(i);
                        }
                        continue;
                    }
                    match position {
                        Some(i) => apply_at(&mut list[i], element, &here, keys),
                        None => {
                            let mut fresh = Value::Object(Map::new());
                            apply_at(&mut fresh, element, &here, keys);
                            list.push(fresh);
                        }
                    }
                }
                object.insert(key.clone(), Value::Array(list));
            }
            _ => apply_at(
                object.entry(key.clone()).or_insert(Value::Null),
                value,
                &here,
                keys,
            ),
        }
    }
    // Order keyed lists as asked: the listed keys first, in that order, then the rest.
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let (Some(merge), Value::Array(order)) = (merge_key(keys, &child(path, field)), order)
        else {
            continue;
        };
        if let Some(Value::Array(list)) = object.get_mut(field) {
            let rank = |e: &Value| {
                let k = key_string(e, merge);
                order
                    .iter()
                    .position(|o| key_string(o, merge) == k)
                    .unwrap_or(usize::MAX)
            };
            list.sort_by_key(rank);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(a: Value, b: Value) -> Value {
        two_way_merge_patch(&a, &b, OBJECT_MERGE_KEYS)
    }

    #[test]
    fn maps_carry_changes_and_nulls_for_removals() {
        assert_eq!(
            patch(
                json!({"spec": {"a": "1", "b": "2"}, "status": {"phase": "Bound"}}),
                json!({"spec": {"a": "1", "c": "3"}, "status": {"phase": "Bound"}})
            ),
            json!({"spec": {"b": null, "c": "3"}})
        );
        assert_eq!(patch(json!({"a": 1}), json!({"a": 1})), json!({}));
    }

    #[test]
    fn conditions_are_merged_by_type_as_client_go_writes_them() {
        let original = json!({"status": {"conditions": [
            {"type": "Resizing", "status": "True"},
            {"type": "ModifyingVolume", "status": "True", "message": "old"},
        ]}});
        // One changed, one added.
        let modified = json!({"status": {"conditions": [
            {"type": "Resizing", "status": "True"},
            {"type": "ModifyingVolume", "status": "True", "message": "new"},
            {"type": "ModifyVolumeError", "status": "True", "reason": "Internal"},
        ]}});
        let p = patch(original.clone(), modified.clone());
        assert_eq!(
            p,
            json!({"status": {
                "$setElementOrder/conditions": [
                    {"type": "Resizing"}, {"type": "ModifyingVolume"}, {"type": "ModifyVolumeError"}
                ],
                "conditions": [
                    {"type": "ModifyingVolume", "message": "new"},
                    {"type": "ModifyVolumeError", "status": "True", "reason": "Internal"},
                ],
            }})
        );
        let mut applied = original.clone();
        apply_strategic_patch(&mut applied, &p, OBJECT_MERGE_KEYS);
        assert_eq!(applied, modified);

        // One removed: a delete directive.
        let fewer = json!({"status": {"conditions": [{"type": "Resizing", "status": "True"}]}});
        let p = patch(original.clone(), fewer.clone());
        assert_eq!(
            p,
            json!({"status": {
                "$setElementOrder/conditions": [{"type": "Resizing"}],
                "conditions": [{"$patch": "delete", "type": "ModifyingVolume"}],
            }})
        );
        let mut applied = original.clone();
        apply_strategic_patch(&mut applied, &p, OBJECT_MERGE_KEYS);
        assert_eq!(applied, fewer);

        // All removed: the field goes.
        let none = json!({"status": {}});
        assert_eq!(
            patch(original.clone(), none),
            json!({"status": {"conditions": null}})
        );
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let p = patch(
            json!({"spec": {"accessModes": ["ReadWriteOnce", "ReadOnlyMany"]}}),
            json!({"spec": {"accessModes": ["ReadWriteOnce"]}}),
        );
        assert_eq!(p, json!({"spec": {"accessModes": ["ReadWriteOnce"]}}));
        let mut target = json!({"spec": {"accessModes": ["ReadWriteOnce", "ReadOnlyMany"]}});
        apply_strategic_patch(&mut target, &p, OBJECT_MERGE_KEYS);
        assert_eq!(target, json!({"spec": {"accessModes": ["ReadWriteOnce"]}}));
    }

    #[test]
    fn an_element_kept_by_the_server_survives_a_patch_that_does_not_name_it() {
        // Another writer added a condition after we read the object: merging by key keeps it
        // (a JSON merge patch would have replaced the list).
        let ours = patch(
            json!({"status": {"conditions": []}}),
            json!({"status": {"conditions": [{"type": "ModifyingVolume", "status": "True"}]}}),
        );
        let mut server =
            json!({"status": {"conditions": [{"type": "Resizing", "status": "True"}]}});
        apply_strategic_patch(&mut server, &ours, OBJECT_MERGE_KEYS);
        let types: Vec<&str> = server["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types.len(), 2);
        assert!(types.contains(&"ModifyingVolume") && types.contains(&"Resizing"));
    }
}
