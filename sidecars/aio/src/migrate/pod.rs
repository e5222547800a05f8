//! Several sidecar containers of one pod template merged into one `csi-sidecars` container:
//! volume mounts, environment and ports as unions (a clash is an error, never a silent pick),
//! resources summed, everything else kept when the containers agree and taken from the first
//! otherwise, with a note.

use csi_controller::quantity::{bytes_to_quantity, quantity_value};
use serde_yaml::{Mapping, Value};

/// What the bench measured for `csi-sidecars` (README, `cargo xtask bench`): the figures the
/// resource note quotes.
pub const MEASURED: &str = "csi-sidecars measured 24.5 MiB idle RSS running attacher, provisioner, \
     resizer, livenessprobe and node-driver-registrar together (51.4 MiB with 5000 PVs and PVCs \
     cached), against 165.4 MiB for the three Go controller sidecars";

/// The merged container, and notes.
pub fn merge(
    containers: &[&Mapping],
    name: &str,
    image: &str,
    args: Vec<String>,
    notes: &mut Vec<String>,
) -> Result<Mapping, String> {
    let label = |c: &Mapping| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let mut out = Mapping::new();
    out.insert("name".into(), name.into());
    out.insert("image".into(), image.into());
    out.insert(
        "args".into(),
        Value::Sequence(args.into_iter().map(Value::from).collect()),
    );
    // Every key any container has, in first-appearance order.
    let mut keys: Vec<Value> = Vec::new();
    for c in containers {
        for k in c.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    for key in keys {
        let key_str = key.as_str().unwrap_or_default().to_string();
        let present: Vec<(&Mapping, &Value)> = containers
            .iter()
            .filter_map(|c| Some((*c, c.get(&key)?)))
            .collect();
        let merged = match key_str.as_str() {
            "name" | "image" | "args" => continue,
            "command" => {
                notes.push(format!(
                    "command of {} dropped: csi-sidecars' image runs /csi-sidecars",
                    present
                        .iter()
                        .map(|(c, _)| label(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            }
            "env" => union_by(&present, "name", &label)?,
            "volumeMounts" => union_by(&present, "mountPath", &label)?,
            "ports" => union_by(&present, "containerPort", &label)?,
            "envFrom" => {
                let mut all: Vec<Value> = Vec::new();
                for (_, v) in &present {
                    for item in v.as_sequence().into_iter().flatten() {
                        if !all.contains(item) {
                            all.push(item.clone());
                        }
                    }
                }
                Value::Sequence(all)
            }
            "resources" => sum_resources(&present, notes)?,
            _ => {
                let (first, value) = present[0];
                if present.iter().any(|(_, v)| *v != value) {
                    notes.push(format!(
                        "{key_str} differed between the sidecars; kept {}'s",
                        label(first)
                    ));
                }
                value.clone()
            }
        };
        out.insert(key, merged);
    }
    Ok(out)
}

/// The union of lists of objects keyed by `field`; the same key with different objects is an
/// error.
fn union_by(
    present: &[(&Mapping, &Value)],
    field: &str,
    label: &dyn Fn(&Mapping) -> String,
) -> Result<Value, String> {
    let mut all: Vec<(Value, Value, String)> = Vec::new();
    for (c, list) in present {
        for item in list.as_sequence().into_iter().flatten() {
            let key = item.get(field).cloned().unwrap_or(Value::Null);
            match all.iter().find(|(k, _, _)| *k == key) {
                Some((_, existing, _)) if existing == item => {}
                Some((_, existing, owner)) => {
                    return Err(format!(
                        "{field} {} is {} in {owner} but {} in {}",
                        yaml_inline(&key),
                        yaml_inline(existing),
                        yaml_inline(item),
                        label(c)
                    ));
                }
                None => all.push((key, item.clone(), label(c))),
            }
        }
    }
    Ok(Value::Sequence(
        all.into_iter().map(|(_, item, _)| item).collect(),
    ))
}

fn yaml_inline(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// requests and limits summed per resource: CPU in millicores, the rest as byte counts.
fn sum_resources(present: &[(&Mapping, &Value)], notes: &mut Vec<String>) -> Result<Value, String> {
    let mut out = Mapping::new();
    for part in ["requests", "limits"] {
        let mut totals: Vec<(String, i64)> = Vec::new();
        for (_, resources) in present {
            let Some(map) = resources.get(part).and_then(Value::as_mapping) else {
                continue;
            };
            for (k, v) in map {
                let name = k.as_str().unwrap_or_default().to_string();
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => return Err(format!("resources.{part}.{name}: {other:?}")),
                };
                let amount = if name == "cpu" {
                    millicores(&text)
                } else {
                    quantity_value(&text)
                }
                .ok_or_else(|| format!("resources.{part}.{name}: {text:?} is not a quantity"))?;
                match totals.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, t)) => *t += amount,
                    None => totals.push((name, amount)),
                }
            }
        }
        if totals.is_empty() {
            continue;
        }
        let map: Mapping = totals
            .iter()
            .map(|(name, t)| {
                let q = if name == "cpu" {
                    format!("{t}m")
                } else {
                    bytes_to_quantity(*t).0
                };
                (Value::from(name.as_str()), Value::from(q))
            })
            .collect();
        let measured = if part == "requests" {
            format!("; {MEASURED}, so the sum is generous")
        } else {
            String::new()
        };
        notes.push(format!(
            "resources.{part} summed: {}{measured}",
            totals
                .iter()
                .map(|(n, t)| format!(
                    "{n}={}",
                    if n == "cpu" {
                        format!("{t}m")
                    } else {
                        bytes_to_quantity(*t).0
                    }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.insert(part.into(), Value::Mapping(map));
    }
    Ok(Value::Mapping(out))
}

/// A CPU quantity in millicores (`100m`, `0.5`, `2`), rounded up.
pub fn millicores(q: &str) -> Option<i64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => quantity_value(&format!("{q}k")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(millicores("100m"), Some(100));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("x"), None);
    }
}
