//! Port of csi-translation-lib v0.36.3 `plugins/azure_disk_test.go`: `TestIsManagedDisk` (4),
//! `TestGetDiskName` (4), `TestTranslateAzureDiskInTreeInlineVolumeToCSI` (3 of 4),
//! `TestTranslateAzureDiskInTreePVToCSI` (3 of 4), `TestTranslateTranslateCSIPVToInTree` (4),
//! `TestTranslateInTreeStorageClassToCSI` (11). The "empty volume" cases pass nil, which a
//! reference cannot be.

use serde_json::{Value, json};

use super::*;

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn same<A: serde::Serialize, B: serde::Serialize>(got: &A, want: &B, name: &str) {
    // Compared as what would be written: Go leaves empty maps out.
    let strip = |v: Value| {
        let mut v = v;
        if let Some(m) = v.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        v
    };
    assert_eq!(
        strip(serde_json::to_value(got).unwrap()),
        strip(serde_json::to_value(want).unwrap()),
        "{name}"
    );
}

#[test]
fn test_is_managed_disk() {
    for (uri, expected) in [
        (
            "testurl/subscriptions/12/resourceGroups/23/providers/Microsoft.Compute/disks/name",
            true,
        ),
        ("test.com", true),
        ("HTTP://test.com", false),
        ("http://test.com/vhds/name", false),
    ] {
        assert_eq!(is_managed_disk(uri), expected, "{uri}");
    }
}

#[test]
fn test_get_disk_name() {
    for (uri, expected) in [
        (
            "testurl/subscriptions/12/resourceGroups/23/providers/Microsoft.Compute/disks/name",
            Some("name"),
        ),
        (
            "testurl/subscriptions/23/providers/Microsoft.Compute/disks/name",
            None,
        ),
        ("http://test.com/vhds/name", Some("name")),
        ("http://test.io/name", None),
    ] {
        assert_eq!(get_disk_name(uri).ok().as_deref(), expected, "{uri}");
    }
}

#[test]
fn test_translate_azure_disk_in_tree_inline_volume_to_csi() {
    let cases = [
        ("no azure disk volume", json!({"name": ""}), None),
        (
            "azure disk volume",
            json!({"name": "", "azureDisk": {"diskName": "diskname", "diskURI": "datadiskuri"}}),
            Some(json!({
                "metadata": {"name": "datadiskuri"},
                "spec": {
                    "csi": {"driver": "disk.csi.azure.com", "volumeHandle": "datadiskuri", "volumeAttributes": {"kind": "Managed"}},
                    "accessModes": ["ReadWriteOnce"],
                }
            })),
        ),
        (
            "azure disk volume with non-managed kind",
            json!({"name": "", "azureDisk": {"diskName": "diskname", "diskURI": "datadiskuri", "kind": "Dedicated"}}),
            None,
        ),
    ];
    for (name, volume, expected) in cases {
        let volume: Volume = from(volume);
        let got = AzureDisk.translate_in_tree_inline_volume_to_csi(&volume, "");
        match (got, expected) {
            (Ok(got), Some(expected)) => same(&got, &from::<PersistentVolume>(expected), name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

const DISK_URI: &str = "/subscriptions/12/resourceGroups/23/providers/Microsoft.Compute/disks/name";

#[test]
fn test_translate_azure_disk_in_tree_pv_to_csi() {
    let source = json!({"cachingMode": "cachingmode", "diskName": "", "diskURI": DISK_URI, "fsType": "fstype", "readOnly": true});
    let mut shared = source.clone();
    shared["kind"] = json!("Dedicated");
    let cases = [
        ("no azure disk volume", json!({"metadata": {}}), None),
        (
            "azure disk volume",
            json!({"metadata": {}, "spec": {"azureDisk": source}}),
            Some(json!({"metadata": {}, "spec": {"csi": {
                "driver": "disk.csi.azure.com",
                "fsType": "fstype",
                "readOnly": true,
                "volumeAttributes": {"cachingmode": "cachingmode", "fstype": "fstype", "kind": "Managed"},
                "volumeHandle": DISK_URI,
            }}})),
        ),
        (
            "azure disk volume with non-managed kind",
            json!({"metadata": {}, "spec": {"azureDisk": shared}}),
            None,
        ),
    ];
    for (name, pv, expected) in cases {
        let got = AzureDisk.translate_in_tree_pv_to_csi(from(pv));
        match (got, expected) {
            (Ok(got), Some(expected)) => same(&got, &from::<PersistentVolume>(expected), name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_translate_csi_pv_to_in_tree() {
    let csi = |attributes: Value| {
        json!({"metadata": {}, "spec": {"csi": {
            "driver": "disk.csi.azure.com",
            "fsType": "fstype",
            "readOnly": true,
            "volumeAttributes": attributes,
            "volumeHandle": DISK_URI,
        }}})
    };
    let in_tree = |caching: &str| {
        json!({"metadata": {}, "spec": {"azureDisk": {
            "cachingMode": caching,
            "diskURI": DISK_URI,
            "fsType": "fstype",
            "readOnly": true,
            "kind": "Managed",
            "diskName": "name",
        }}})
    };
    let cases = [
        (
            "azure disk volume with ReadOnly cachingMode",
            csi(json!({"cachingmode": "ReadOnly", "fstype": "fstype", "kind": "managed"})),
            in_tree("ReadOnly"),
        ),
        (
            "azure disk volume with ReadOnly cachingMode",
            csi(json!({"cachingmode": "ReadOnly", "fstype": "fstype", "kind": "managed"})),
            in_tree("ReadOnly"),
        ),
        (
            "azure disk volume with None cachingMode",
            csi(json!({"cachingMode": "None", "fsType": "fstype", "kind": "managed"})),
            in_tree("None"),
        ),
        (
            "azure disk volume with ReadWrite cachingMode",
            csi(json!({"cachingMode": "ReadWrite", "fsType": "fstype", "kind": "managed"})),
            in_tree("ReadWrite"),
        ),
    ];
    for (name, pv, expected) in cases {
        let got = AzureDisk.translate_csi_pv_to_in_tree(from(pv)).expect(name);
        same(&got, &from::<PersistentVolume>(expected), name);
    }
}

#[test]
fn test_translate_in_tree_storage_class_to_csi() {
    let sc = |params: Value, topologies: Value| -> StorageClass {
        from(
            json!({"metadata": {}, "provisioner": "", "parameters": params, "allowedTopologies": topologies}),
        )
    };
    let sel = |key: &str, values: &[&str]| json!([{"matchLabelExpressions": [{"key": key, "values": values}]}]);
    let n = Value::Null;
    let k = AZURE_DISK_TOPOLOGY_KEY;
    let ga = "topology.kubernetes.io/zone";
    let cases = [
        (
            "nothing special",
            sc(json!({"foo": "bar"}), n.clone()),
            Some(sc(json!({"foo": "bar"}), n.clone())),
        ),
        (
            "empty params",
            sc(json!({}), n.clone()),
            Some(sc(json!({}), n.clone())),
        ),
        (
            "zone",
            sc(json!({"zone": "foo"}), n.clone()),
            Some(sc(json!({}), sel(k, &["foo"]))),
        ),
        (
            "zones",
            sc(json!({"zones": "foo,bar,baz"}), n.clone()),
            Some(sc(json!({}), sel(k, &["foo", "bar", "baz"]))),
        ),
        (
            "some normal topology",
            sc(json!({}), sel(k, &["foo"])),
            Some(sc(json!({}), sel(k, &["foo"]))),
        ),
        (
            "some translated topology",
            sc(json!({}), sel(ga, &["foo"])),
            Some(sc(json!({}), sel(k, &["foo"]))),
        ),
        (
            "some translated topology with beta labels",
            sc(
                json!({}),
                sel("failure-domain.beta.kubernetes.io/zone", &["foo"]),
            ),
            Some(sc(json!({}), sel(k, &["foo"]))),
        ),
        (
            "zone and topology",
            sc(json!({"zone": "foo"}), sel(k, &["foo"])),
            None,
        ),
        (
            "topology in regions without zones",
            sc(json!({}), sel(ga, &["0"])),
            Some(sc(json!({}), sel(k, &[""]))),
        ),
        (
            "longer topology in regions without zones",
            sc(json!({}), sel(ga, &["1234"])),
            Some(sc(json!({}), sel(k, &[""]))),
        ),
        (
            "topology in regions with zones",
            sc(json!({}), sel(ga, &["centralus-1"])),
            Some(sc(json!({}), sel(k, &["centralus-1"]))),
        ),
    ];
    for (name, options, expected) in cases {
        match (
            AzureDisk.translate_in_tree_storage_class_to_csi(options),
            expected,
        ) {
            (Ok(got), Some(expected)) => same(&got, &expected, name),
            (Err(_), None) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}
