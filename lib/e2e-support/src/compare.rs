//! Comparing what two programs wrote (upstream's Go sidecar and ours, side by side): objects as
//! JSON with what differs between any two runs taken out, and their differences by JSON path.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Event;
use serde_json::{Value, json};

/// Drops from `object`'s metadata what differs between any two runs (UID, resourceVersion,
/// creationTimestamp, namespace) and replaces `managedFields` by `managers`: who wrote with
/// which operation (and subresource), sorted.
pub fn strip_metadata(object: &mut Value) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["uid", "resourceVersion", "creationTimestamp", "namespace"] {
        meta.remove(field);
    }
    if let Some(Value::Array(fields)) = meta.remove("managedFields") {
        let managers: BTreeSet<String> = fields
            .iter()
            .map(|f| {
                format!(
                    "{} {} {}",
                    f["manager"].as_str().unwrap_or("?"),
                    f["operation"].as_str().unwrap_or("?"),
                    f["subresource"].as_str().unwrap_or("")
                )
                .trim_end()
                .to_string()
            })
            .collect();
        meta.insert("managers".to_string(), json!(managers));
    }
}

/// Takes out of `object`'s status conditions what follows each run's timing: their times
/// (`lastProbeTime`, `lastTransitionTime`), and the position of the control plane's `Unused`
/// condition, which goes last. Kubernetes 1.37's PVC protection controller sets `Unused` on
/// every claim no Pod uses (the PersistentVolumeClaimUnusedSinceTime gate, on by default)
/// whenever it gets to the claim: a sidecar that writes the condition list keeps it where its
/// copy of the claim had it, before or after its own. The type, status, reason and message of
/// every condition, and the order of the others, stay.
pub fn normalize_conditions(object: &mut Value) {
    if let Some(Value::Array(conditions)) = object.pointer_mut("/status/conditions") {
        for condition in conditions.iter_mut().filter_map(Value::as_object_mut) {
            condition.remove("lastProbeTime");
            condition.remove("lastTransitionTime");
        }
        // A stable sort: false (any other type) before true (`Unused`).
        conditions.sort_by_key(|c| c["type"] == "Unused");
    }
}

/// Every run of digits becomes `N`.
pub fn digits_to_n(text: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Every UUID (8-4-4-4-12 hex digits) becomes `UUID`.
pub fn uuids_to_placeholder(text: &str) -> String {
    fn is_uuid(b: &[u8]) -> bool {
        b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    }
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && is_uuid(&bytes[i..i + 36]) {
            out.push_str("UUID");
            i += 36;
        } else {
            let c = text[i..].chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Objects compared field by field, upstream's (`go`) against ours, by key: one paragraph per
/// object that differs (`<what> of <key>:`), one line per JSON path, appended to `out`.
pub fn compare_values(
    what: &str,
    go: &BTreeMap<String, Value>,
    ours: &BTreeMap<String, Value>,
    out: &mut Vec<String>,
) {
    fn walk(path: String, a: Option<&Value>, b: Option<&Value>, lines: &mut Vec<String>) {
        match (a, b) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let path = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                    walk(path, a.get(key), b.get(key), lines);
                }
            }
            (a, b) if a != b => {
                let show =
                    |v: Option<&Value>| v.map_or_else(|| "(absent)".to_string(), Value::to_string);
                lines.push(format!(
                    "  {path}\n    upstream: {}\n    ours:     {}",
                    show(a),
                    show(b)
                ));
            }
            _ => {}
        }
    }
    let keys: BTreeSet<&String> = go.keys().chain(ours.keys()).collect();
    for key in keys {
        let mut lines = Vec::new();
        walk(String::new(), go.get(key), ours.get(key), &mut lines);
        if !lines.is_empty() {
            out.push(format!("{what} of {key}:\n{}", lines.join("\n")));
        }
    }
}

/// A Warning for a write that lost an optimistic-concurrency race (HTTP 409) and was retried:
/// either side may meet one, when another writer (the controller manager, the other worker)
/// updates the same claim between its read and its write, so it says nothing about the side.
/// The API server's message may stand alone or end a sidecar's own ("mark PVC … as resize
/// finished failed: can't patch status of PVC … with Operation cannot be fulfilled on …").
pub fn is_conflict_retry(event: &Event) -> bool {
    event.type_.as_deref() == Some("Warning")
        && event.message.as_deref().is_some_and(|m| {
            m.contains("Operation cannot be fulfilled on ")
                && m.contains("the object has been modified")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_differences() {
        assert_eq!(digits_to_n("1796031183-42-x"), "N-N-x");
        assert_eq!(
            uuids_to_placeholder("drv_host_0f8b2a6c-1234-4abc-9def-0123456789ab!"),
            "drv_host_UUID!"
        );
        let mut object = json!({"metadata": {"uid": "u", "name": "n",
            "managedFields": [{"manager": "m", "operation": "Update", "subresource": "status"}]}});
        strip_metadata(&mut object);
        assert_eq!(
            object,
            json!({"metadata": {"name": "n", "managers": ["m Update status"]}})
        );
        let go = BTreeMap::from([("a".to_string(), json!({"x": 1, "y/z": 2}))]);
        let ours = BTreeMap::from([("a".to_string(), json!({"x": 1, "y/z": 3}))]);
        let mut out = Vec::new();
        compare_values("PV", &go, &ours, &mut out);
        assert_eq!(
            out,
            vec!["PV of a:\n  /y~1z\n    upstream: 2\n    ours:     3".to_string()]
        );
        out.clear();
        compare_values("PV", &go, &go, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn condition_times_and_the_unused_position_are_taken_out() {
        let mut claim = json!({"status": {"phase": "Bound", "conditions": [
            {"type": "Unused", "status": "True", "reason": "NoPodsUsingPVC",
             "lastProbeTime": "2026-11-30T15:46:22Z",
             "lastTransitionTime": "2026-11-30T15:46:23Z"},
            {"type": "Resizing", "status": "True"},
            {"type": "ControllerResizeError", "status": "True", "message": "m"},
        ]}});
        normalize_conditions(&mut claim);
        assert_eq!(
            claim,
            json!({"status": {"phase": "Bound", "conditions": [
                {"type": "Resizing", "status": "True"},
                {"type": "ControllerResizeError", "status": "True", "message": "m"},
                {"type": "Unused", "status": "True", "reason": "NoPodsUsingPVC"},
            ]}})
        );
        let mut no_status = json!({"metadata": {"name": "n"}});
        normalize_conditions(&mut no_status);
        assert_eq!(no_status, json!({"metadata": {"name": "n"}}));
    }

    #[test]
    fn only_a_lost_write_race_is_a_conflict_retry() {
        let event = |type_: &str, message: &str| Event {
            type_: Some(type_.to_string()),
            message: Some(message.to_string()),
            ..Event::default()
        };
        let conflict = "Operation cannot be fulfilled on persistentvolumeclaims \"clone-source\": \
                        the object has been modified; please apply your changes to the latest \
                        version and try again";
        assert!(is_conflict_retry(&event("Warning", conflict)));
        let wrapped = format!(
            "mark PVC \"ns/grow-once\" as resize finished failed: can't patch status of  PVC \
             ns/grow-once with {conflict}"
        );
        assert!(is_conflict_retry(&event("Warning", &wrapped)));
        assert!(!is_conflict_retry(&event("Normal", conflict)));
        assert!(!is_conflict_retry(&event(
            "Warning",
            "failed to provision volume with StorageClass \"sc\": rpc error: code = Internal"
        )));
    }
}
