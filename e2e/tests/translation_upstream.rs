//! Our CSI translation (`csi-translation`) against Kubernetes' own csi-translation-lib, case by
//! case: the oracle program `csi-translation` (built by `cargo xtask tools` from the pinned
//! module, path in `CSI_E2E_GO_TRANSLATION`) and our crate translate the same generated corpus,
//! and every result must agree.
//!
//! Results are compared as JSON after dropping the fields Go writes for an empty value (null,
//! `""`, `false`, `0`, `{}`, `[]`): Go leaves such fields out of most types, and what remains
//! is what the API server would store. Errors must agree too, message for message, except where
//! Go's message prints the whole PV as a Go struct (`failed to translate topology. PV:{...}`),
//! and where csi-translation-lib panics (an inline vSphere volume with a storage policy): there
//! we must return an error.

mod translation;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{PersistentVolume, Volume};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Value, json};
use translation::corpus::{Case, corpus};

fn oracle() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("CSI_E2E_GO_TRANSLATION")
        .map(PathBuf::from)
        .context(
            "CSI_E2E_GO_TRANSLATION is not set: run the end-to-end tests with `cargo xtask e2e`",
        )?;
    if !path.exists() {
        bail!("{} (CSI_E2E_GO_TRANSLATION) does not exist", path.display());
    }
    Ok(path)
}

/// Runs the Go program on every case; one output line per input line, in order.
fn run_oracle(binary: &PathBuf, cases: &[Case]) -> anyhow::Result<Vec<Value>> {
    let mut child = Command::new(binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input: String = cases.iter().map(|c| format!("{}\n", c.input)).collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    if !output.status.success() {
        bail!("csi-translation exited with {}", output.status);
    }
    let lines: Vec<Value> = String::from_utf8(output.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    if lines.len() != cases.len() {
        bail!("{} cases in, {} results out", cases.len(), lines.len());
    }
    Ok(lines)
}

fn field<T: serde::de::DeserializeOwned>(input: &Value, key: &str) -> T {
    serde_json::from_value(input[key].clone())
        .unwrap_or_else(|e| panic!("case input {key}: {e}: {}", input[key]))
}

fn text(input: &Value, key: &str) -> String {
    input[key].as_str().unwrap_or_default().to_owned()
}

fn outcome<T: serde::Serialize>(result: csi_translation::Result<T>) -> Value {
    match result {
        Ok(value) => json!({"result": value}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// What our crate answers for one case, in the oracle's output shape.
fn ours(input: &Value) -> Value {
    match input["op"].as_str().unwrap_or_default() {
        "pv" => outcome(csi_translation::translate_in_tree_pv_to_csi(&field::<
            PersistentVolume,
        >(
            input, "pv"
        ))),
        "csipv" => outcome(csi_translation::translate_csi_pv_to_in_tree(&field::<
            PersistentVolume,
        >(
            input, "pv"
        ))),
        "inline" => outcome(csi_translation::translate_in_tree_inline_volume_to_csi(
            &field::<Volume>(input, "volume"),
            &text(input, "namespace"),
        )),
        "sc" => outcome(csi_translation::translate_in_tree_storage_class_to_csi(
            &text(input, "plugin"),
            &field::<StorageClass>(input, "sc"),
        )),
        "repair" => outcome(csi_translation::repair_volume_handle(
            &text(input, "driver"),
            &text(input, "handle"),
            &text(input, "node"),
        )),
        "names" => {
            let plugin = text(input, "plugin");
            let mut names = json!({
                "isMigratableIntreePluginByName": csi_translation::is_migratable_in_tree_plugin_by_name(&plugin),
                "isMigratedCSIDriverByName": csi_translation::is_migrated_csi_driver_by_name(&plugin),
            });
            match csi_translation::get_csi_name_from_in_tree_name(&plugin) {
                Ok(name) => names["csiName"] = json!(name),
                Err(e) => names["csiNameError"] = json!(e.to_string()),
            }
            match csi_translation::get_in_tree_name_from_csi_name(&plugin) {
                Ok(name) => names["inTreeName"] = json!(name),
                Err(e) => names["inTreeNameError"] = json!(e.to_string()),
            }
            json!({ "result": names })
        }
        other => panic!("unknown op {other}"),
    }
}

/// Drops what Go leaves out for empty values, recursively.
fn canonical(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Bool(false) => None,
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
                .filter_map(|(k, v)| canonical(v).map(|v| (k.clone(), v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        other => Some(other.clone()),
    }
}

/// Why one case differs, or `None`.
fn compare(go: &Value, ours: &Value) -> Option<String> {
    let go_error = go["error"].as_str();
    let our_error = ours["error"].as_str();
    match (go_error, our_error) {
        (Some(go_error), Some(our_error)) => {
            let go_prints_struct = go_error.starts_with("failed to translate topology. PV:");
            if go["panic"] == json!(true) || go_prints_struct {
                let tail = |e: &str| e.rsplit_once(". Error:").map(|(_, t)| t.to_owned());
                if go_prints_struct && tail(go_error) != tail(our_error) {
                    return Some(format!(
                        "errors differ:\n  go:   {go_error}\n  ours: {our_error}"
                    ));
                }
                return None;
            }
            (go_error != our_error)
                .then(|| format!("errors differ:\n  go:   {go_error}\n  ours: {our_error}"))
        }
        (Some(go_error), None) => Some(format!(
            "go fails ({go_error}), ours gives {}",
            ours["result"]
        )),
        (None, Some(our_error)) => Some(format!(
            "ours fails ({our_error}), go gives {}",
            go["result"]
        )),
        (None, None) => {
            // Go's typed objects carry no apiVersion/kind; k8s-openapi writes them.
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(map) = v.as_object_mut() {
                    map.remove("apiVersion");
                    map.remove("kind");
                }
                canonical(&v)
            };
            let (go, ours) = (strip(&go["result"]), strip(&ours["result"]));
            (go != ours).then(|| {
                format!(
                    "results differ:\n  go:   {}\n  ours: {}",
                    go.unwrap_or_default(),
                    ours.unwrap_or_default()
                )
            })
        }
    }
}

#[test]
fn translation_agrees_with_csi_translation_lib() -> anyhow::Result<()> {
    let binary = oracle()?;
    let cases = corpus();
    let go = run_oracle(&binary, &cases)?;
    let mut failures = Vec::new();
    let mut errors = 0;
    for (case, go) in cases.iter().zip(&go) {
        assert_eq!(go["name"], json!(case.name), "oracle output out of order");
        let ours = ours(&case.input);
        if go.get("error").is_some() {
            errors += 1;
        }
        if let Some(why) = compare(go, &ours) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    println!(
        "{} cases ({} of them errors in csi-translation-lib), {} differ",
        cases.len(),
        errors,
        failures.len()
    );
    if !failures.is_empty() {
        bail!(
            "{} of {} cases differ from csi-translation-lib:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// The comparison itself can fail: a changed result or a changed message is noticed.
#[test]
fn comparison_notices_differences() {
    let go = json!({"result": {"spec": {"csi": {"volumeHandle": "a", "readOnly": false}}}});
    let same = json!({"result": {"spec": {"csi": {"volumeHandle": "a"}}, "status": {}}});
    let other = json!({"result": {"spec": {"csi": {"volumeHandle": "b"}}}});
    assert_eq!(compare(&go, &same), None);
    assert!(compare(&go, &other).is_some());
    assert!(compare(&json!({"error": "x"}), &json!({"error": "y"})).is_some());
    assert!(compare(&json!({"error": "x"}), &same).is_some());
}
