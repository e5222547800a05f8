//! Port of csi-translation-lib v0.36.3 `plugins/azure_file_test.go`: `TestGetFileShareInfo` (5),
//! `TestTranslateAzureFileInTreeStorageClassToCSI` (3 of 4; it tests inline volumes),
//! `TestTranslateAzureFileInTreePVToCSI` (5 of 6), `TestTranslateCSIPVToInTree` (6 of 7),
//! `TestGetStorageAccount` (3). The "empty volume" cases pass nil, which a reference cannot be.

use serde_json::{Value, json};

use super::*;

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// Compared as what would be written: Go leaves empty maps out.
fn same(got: &PersistentVolume, want: Value, name: &str) {
    let mut got = serde_json::to_value(got).unwrap();
    let map = got.as_object_mut().unwrap();
    map.remove("apiVersion");
    map.remove("kind");
    if got["metadata"]["annotations"] == json!({}) {
        got["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
    }
    assert_eq!(got, want, "{name}");
}

#[test]
fn test_get_file_share_info() {
    let share = "pvc-file-dynamic-17e43f84-f474-11e8-acd0-000d3a00df41";
    let account = "f5713de20cde511e8ba4900";
    let cases = [
        (
            format!("rg#{account}#{share}#diskname.vhd"),
            Some(("rg", account, share, "diskname.vhd")),
        ),
        (
            format!("rg#{account}#{share}"),
            Some(("rg", account, share, "")),
        ),
        (format!("rg#{account}"), None),
        ("rg".to_string(), None),
        (String::new(), None),
    ];
    for (id, expected) in cases {
        let got = get_file_share_info(&id).ok();
        let expected = expected
            .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()));
        assert_eq!(got, expected, "{id}");
    }
}

#[test]
fn test_translate_azure_file_in_tree_inline_volume_to_csi() {
    let volume = json!({"name": "name", "azureFile": {"readOnly": true, "secretName": "secretname", "shareName": "sharename"}});
    let expected = |ns: &str| {
        let id = format!("#secretname#sharename#name#{ns}");
        json!({
            "metadata": {"name": id},
            "spec": {
                "csi": {
                    "driver": "file.csi.azure.com",
                    "nodeStageSecretRef": {"name": "secretname", "namespace": ns},
                    "readOnly": true,
                    "volumeAttributes": {"sharename": "sharename"},
                    "volumeHandle": id,
                },
                "accessModes": ["ReadWriteMany"],
            }
        })
    };
    let cases = [
        ("no azure file volume", json!({"name": ""}), "", None),
        (
            "azure file volume",
            volume.clone(),
            "",
            Some(expected("default")),
        ),
        (
            "azure file volume with a pod namespace",
            volume,
            "test",
            Some(expected("test")),
        ),
    ];
    for (name, volume, namespace, expected) in cases {
        let got = AzureFile.translate_in_tree_inline_volume_to_csi(&from(volume), namespace);
        match (got, expected) {
            (Ok(got), Some(expected)) => same(&got, expected, name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_translate_azure_file_in_tree_pv_to_csi() {
    let rg = json!({RESOURCE_GROUP_ANNOTATION: "rg"});
    let csi = |handle: &str| {
        json!({
            "driver": "file.csi.azure.com",
            "nodeStageSecretRef": {"name": "secretname", "namespace": "secretnamespace"},
            "readOnly": true,
            "volumeAttributes": {"sharename": "sharename"},
            "volumeHandle": handle,
        })
    };
    let with_ns = json!({"shareName": "sharename", "secretName": "secretname", "secretNamespace": "secretnamespace", "readOnly": true});
    let without_ns =
        json!({"shareName": "sharename", "secretName": "secretname", "readOnly": true});
    let cases = [
        ("no azure file volume", json!({"metadata": {}}), None),
        (
            "return error if secret namespace could not be found",
            json!({"metadata": {"name": "uuid", "annotations": rg}, "spec": {"azureFile": without_ns}}),
            None,
        ),
        (
            "azure file volume",
            json!({"metadata": {"name": "uuid"}, "spec": {"azureFile": with_ns}}),
            Some(
                json!({"metadata": {"name": "uuid"}, "spec": {"csi": csi("#secretname#sharename#uuid#secretnamespace")}}),
            ),
        ),
        (
            "azure file volume with rg annotation",
            json!({"metadata": {"name": "uuid", "annotations": rg}, "spec": {"azureFile": with_ns}}),
            Some(
                json!({"metadata": {"name": "uuid", "annotations": rg}, "spec": {"csi": csi("rg#secretname#sharename#uuid#secretnamespace")}}),
            ),
        ),
        (
            "get secret namespace from ClaimRef when it's missing in pv spec source",
            json!({"metadata": {"name": "uuid", "annotations": rg}, "spec": {"azureFile": without_ns, "claimRef": {"namespace": "secretnamespace"}}}),
            Some(
                json!({"metadata": {"name": "uuid", "annotations": rg}, "spec": {"csi": csi("rg#secretname#sharename#uuid#secretnamespace"), "claimRef": {"namespace": "secretnamespace"}}}),
            ),
        ),
    ];
    for (name, pv, expected) in cases {
        match (AzureFile.translate_in_tree_pv_to_csi(from(pv)), expected) {
            (Ok(got), Some(expected)) => same(&got, expected, name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_translate_csi_pv_to_in_tree() {
    let mp = json!({"shareName": "sharename"});
    let secret_map = json!({"shareName": "sharename", "secretName": "secretname", "secretNamespace": "secretnamespace"});
    let named = "file.csi.azure.com-sharename";
    let handle = "rg#st#pvc-file-dynamic#diskname.vhd";
    let rg = json!({RESOURCE_GROUP_ANNOTATION: "rg"});
    let in_tree = |secret: &str, share: &str, ns: &str| json!({"secretName": secret, "shareName": share, "secretNamespace": ns, "readOnly": true});
    let cases = [
        (
            "resource group empty",
            json!({"metadata": {}, "spec": {"csi": {"driver": "", "volumeHandle": "", "nodeStageSecretRef": {"name": "ut", "namespace": "secretnamespace"}, "readOnly": true, "volumeAttributes": mp}}}),
            Some(
                json!({"metadata": {}, "spec": {"azureFile": in_tree("ut", "sharename", "secretnamespace")}}),
            ),
        ),
        (
            "translate from volume handle error",
            json!({"metadata": {}, "spec": {"csi": {"driver": "", "volumeHandle": "sharename", "readOnly": true, "volumeAttributes": mp}}}),
            None,
        ),
        (
            "translate from VolumeAttributes",
            json!({"metadata": {"name": named}, "spec": {"csi": {"driver": "", "volumeHandle": handle, "readOnly": true, "volumeAttributes": mp}}}),
            Some(
                json!({"metadata": {"name": named, "annotations": rg}, "spec": {"azureFile": in_tree("azure-storage-account-st-secret", "sharename", "default")}}),
            ),
        ),
        (
            "translate from SecretMap VolumeAttributes",
            json!({"metadata": {"name": named, "annotations": {}}, "spec": {"csi": {"driver": "", "volumeHandle": handle, "readOnly": true, "volumeAttributes": secret_map}}}),
            Some(
                json!({"metadata": {"name": named}, "spec": {"azureFile": in_tree("secretname", "sharename", "secretnamespace")}}),
            ),
        ),
        (
            "translate from NodeStageSecretRef",
            json!({"metadata": {"name": named}, "spec": {"csi": {"driver": "", "volumeHandle": handle, "readOnly": true, "volumeAttributes": mp, "nodeStageSecretRef": {"name": "secretname", "namespace": "secretnamespace"}}}}),
            Some(
                json!({"metadata": {"name": named}, "spec": {"azureFile": in_tree("secretname", "sharename", "secretnamespace")}}),
            ),
        ),
        (
            "translate from VolumeHandle",
            json!({"metadata": {"name": named}, "spec": {"csi": {"driver": "", "volumeHandle": handle, "readOnly": true}}}),
            Some(
                json!({"metadata": {"name": named, "annotations": rg}, "spec": {"azureFile": in_tree("azure-storage-account-st-secret", "pvc-file-dynamic", "default")}}),
            ),
        ),
    ];
    for (name, pv, expected) in cases {
        match (AzureFile.translate_csi_pv_to_in_tree(from(pv)), expected) {
            (Ok(got), Some(expected)) => same(&got, expected, name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_get_storage_account() {
    for (secret, expected) in [
        (
            "azure-storage-account-accountname-secret",
            Some("accountname"),
        ),
        (
            "azure-storage-account-accountname-dup-secret",
            Some("accountname-dup"),
        ),
        ("invalid", None),
    ] {
        assert_eq!(
            get_storage_account_name(secret).ok().as_deref(),
            expected,
            "{secret}"
        );
    }
}
