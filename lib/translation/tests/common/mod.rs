//! Helpers of the ported csi-translation-lib tables: objects from JSON, and comparison of what
//! would be written (Go leaves empty values out, so both sides drop them before comparing).

#![allow(dead_code)]

use k8s_openapi::api::core::v1::{PersistentVolume, TopologySelectorTerm, Volume};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Value, json};

pub fn pv(value: Value) -> PersistentVolume {
    serde_json::from_value(value).expect("PersistentVolume")
}

pub fn volume(value: Value) -> Volume {
    serde_json::from_value(value).expect("Volume")
}

pub fn sc(value: Value) -> StorageClass {
    serde_json::from_value(value).expect("StorageClass")
}

/// upstream's `NewStorageClass(params, allowedTopologies)`.
pub fn new_storage_class(params: Value, topologies: Value) -> StorageClass {
    sc(
        json!({"metadata": {}, "provisioner": "", "parameters": params, "allowedTopologies": topologies}),
    )
}

/// upstream's `generateToplogySelectors(key, values)`.
pub fn topology_selectors(key: &str, values: &[&str]) -> Value {
    json!([{"matchLabelExpressions": [{"key": key, "values": values}]}])
}

pub fn terms(value: Value) -> Vec<TopologySelectorTerm> {
    serde_json::from_value(value).expect("TopologySelectorTerms")
}

/// What the API server would store: no null, `""`, `false`, `0`, `{}` or `[]`, and no
/// apiVersion/kind at the top.
pub fn canonical(value: &Value) -> Option<Value> {
    match value {
        Value::Null | Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        Value::Array(items) => {
            let items: Vec<Value> = items
                .iter()
                .map(|v| canonical(v).unwrap_or(Value::Null))
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| *k != "apiVersion" && *k != "kind")
                .filter_map(|(k, v)| canonical(v).map(|v| (k.clone(), v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        other => Some(other.clone()),
    }
}

#[track_caller]
pub fn assert_same<A: serde::Serialize, B: serde::Serialize>(got: &A, want: &B, name: &str) {
    let got = canonical(&serde_json::to_value(got).unwrap());
    let want = canonical(&serde_json::to_value(want).unwrap());
    assert_eq!(got, want, "{name}");
}
