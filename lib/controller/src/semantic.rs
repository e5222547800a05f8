//! [`semantic_eq`]: apimachinery's `equality.Semantic.DeepEqual` for API objects, which Go
//! controllers use to decide whether an update changed anything that matters.

use serde::Serialize;
use serde_json::Value;

/// apimachinery's `equality.Semantic.DeepEqual`, as far as the JSON form can tell: equal after
/// dropping nulls and empty lists and maps (for which Go's nil and empty are the same).
/// Objects that cannot be serialized are never equal.
pub fn semantic_eq<T: Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(mut a), Ok(mut b)) => {
            prune(&mut a);
            prune(&mut b);
            a == b
        }
        _ => false,
    }
}

fn prune(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(prune);
            map.retain(|_, v| !is_empty(v));
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nil_and_empty_are_the_same() {
        assert!(semantic_eq(&json!({"a": null, "b": []}), &json!({"c": {}})));
        assert!(semantic_eq(
            &json!({"m": {"x": 1, "y": null}}),
            &json!({"m": {"x": 1}})
        ));
        assert!(!semantic_eq(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!semantic_eq(&json!({"a": [1]}), &json!({})));
    }
}
