//! Port of csi-translation-lib v0.36.3 `plugins/gce_pd_test.go`:
//! `TestTranslatePDInTreeStorageClassToCSI` (8), `TestRepairVolumeHandle` (8),
//! `TestBackwardCompatibleAccessModes` (7, through a PV translation), `TestInlineReadOnly` (1),
//! `TestTranslateInTreePVToCSIVolIDFmt` (4).

mod common;

use common::*;
use csi_translation::plugins::GCE_PD_TOPOLOGY_KEY;
use serde_json::json;

const GCE_PD: &str = "kubernetes.io/gce-pd";
const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";

#[test]
fn test_translate_pd_in_tree_storage_class_to_csi() {
    let none = serde_json::Value::Null;
    let cases = [
        (
            "nothing special",
            json!({"foo": "bar"}),
            none.clone(),
            Some((json!({"foo": "bar"}), none.clone())),
        ),
        (
            "fstype",
            json!({"fstype": "myfs"}),
            none.clone(),
            Some((json!({"csi.storage.k8s.io/fstype": "myfs"}), none.clone())),
        ),
        (
            "empty params",
            json!({}),
            none.clone(),
            Some((json!({}), none.clone())),
        ),
        (
            "zone",
            json!({"zone": "foo"}),
            none.clone(),
            Some((json!({}), topology_selectors(GCE_PD_TOPOLOGY_KEY, &["foo"]))),
        ),
        (
            "zones",
            json!({"zones": "foo,bar,baz"}),
            none.clone(),
            Some((
                json!({}),
                topology_selectors(GCE_PD_TOPOLOGY_KEY, &["foo", "bar", "baz"]),
            )),
        ),
        (
            "some normal topology",
            json!({}),
            topology_selectors(GCE_PD_TOPOLOGY_KEY, &["foo"]),
            Some((json!({}), topology_selectors(GCE_PD_TOPOLOGY_KEY, &["foo"]))),
        ),
        (
            "some translated topology",
            json!({}),
            topology_selectors(BETA_ZONE, &["foo"]),
            Some((json!({}), topology_selectors(GCE_PD_TOPOLOGY_KEY, &["foo"]))),
        ),
        (
            "zone and topology",
            json!({"zone": "foo"}),
            topology_selectors(GCE_PD_TOPOLOGY_KEY, &["foo"]),
            None,
        ),
    ];
    for (name, params, topologies, expected) in cases {
        let got = csi_translation::translate_in_tree_storage_class_to_csi(
            GCE_PD,
            &new_storage_class(params, topologies),
        );
        match (got, expected) {
            (Ok(got), Some((params, topologies))) => {
                assert_same(&got, &new_storage_class(params, topologies), name)
            }
            (Err(_), None) => {}
            (got, expected) => panic!("{name}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn test_repair_volume_handle() {
    let zonal = |p: &str, z: &str, d: &str| format!("projects/{p}/zones/{z}/disks/{d}");
    let regional = |p: &str, r: &str, d: &str| format!("projects/{p}/regions/{r}/disks/{d}");
    let node = |p: &str, z: &str, n: &str| format!("projects/{p}/zones/{z}/instances/{n}");
    let u = "UNSPECIFIED";
    let cases = [
        (
            "fully specified",
            zonal("foo", "bar", "baz"),
            node("bing", "bada", "boom"),
            Some(zonal("foo", "bar", "baz")),
        ),
        (
            "fully specified (regional)",
            regional("foo", "us-central1-c", "baz"),
            node("bing", "bada", "boom"),
            Some(regional("foo", "us-central1-c", "baz")),
        ),
        (
            "no project",
            zonal(u, "bar", "baz"),
            node("bing", "bada", "boom"),
            Some(zonal("bing", "bar", "baz")),
        ),
        (
            "no project or zone",
            zonal(u, u, "baz"),
            node("bing", "bada", "boom"),
            Some(zonal("bing", "bada", "baz")),
        ),
        (
            "no project or region",
            regional(u, u, "baz"),
            node("bing", "us-central1-c", "boom"),
            Some(regional("bing", "us-central1", "baz")),
        ),
        (
            "no project (regional)",
            regional(u, "us-west1", "baz"),
            node("bing", "us-central1-c", "boom"),
            Some(regional("bing", "us-west1", "baz")),
        ),
        (
            "invalid handle",
            "foo".to_string(),
            node("bing", "us-central1-c", "boom"),
            None,
        ),
        (
            "invalid node ID",
            regional(u, "us-west1", "baz"),
            "foo".to_string(),
            None,
        ),
    ];
    for (name, handle, node_id, expected) in cases {
        let got = csi_translation::repair_volume_handle("pd.csi.storage.gke.io", &handle, &node_id);
        assert_eq!(got.ok(), expected, "{name}");
    }
}

#[test]
fn test_backward_compatible_access_modes() {
    let cases: [(&str, &[&str], &[&str]); 7] = [
        ("ROX", &["ReadOnlyMany"], &["ReadOnlyMany"]),
        ("RWO", &["ReadWriteOnce"], &["ReadWriteOnce"]),
        ("RWX", &["ReadWriteMany"], &["ReadWriteOnce"]),
        (
            "RWO, ROX",
            &["ReadOnlyMany", "ReadWriteOnce"],
            &["ReadWriteOnce"],
        ),
        (
            "RWO, RWX",
            &["ReadWriteOnce", "ReadWriteMany"],
            &["ReadWriteOnce"],
        ),
        (
            "RWX, ROX",
            &["ReadWriteMany", "ReadOnlyMany"],
            &["ReadWriteOnce"],
        ),
        (
            "RWX, ROX, RWO",
            &["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"],
            &["ReadWriteOnce"],
        ),
    ];
    for (name, modes, expected) in cases {
        let pv = pv(
            json!({"metadata": {}, "spec": {"accessModes": modes, "gcePersistentDisk": {"pdName": "d"}}}),
        );
        let got = csi_translation::translate_in_tree_pv_to_csi(&pv).expect(name);
        let got = got.spec.unwrap().access_modes.unwrap();
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn test_inline_read_only() {
    let volume =
        volume(json!({"name": "", "gcePersistentDisk": {"pdName": "foo", "readOnly": true}}));
    let pv =
        csi_translation::translate_in_tree_inline_volume_to_csi(&volume, "").expect("translated");
    let spec = pv.spec.expect("spec");
    assert_eq!(
        spec.csi.expect("csi").read_only,
        Some(true),
        "PV readonly value not true"
    );
    assert_eq!(spec.access_modes, Some(vec!["ReadOnlyMany".to_string()]));
}

#[test]
fn test_translate_in_tree_pv_to_csi_vol_id_fmt() {
    let cases = [
        (
            "beta topology key zonal",
            BETA_ZONE,
            "us-east1-a",
            "projects/UNSPECIFIED/zones/us-east1-a/disks/pd-name",
        ),
        (
            "v1 topology key zonal",
            "topology.kubernetes.io/zone",
            "us-east1-a",
            "projects/UNSPECIFIED/zones/us-east1-a/disks/pd-name",
        ),
        (
            "beta topology key regional",
            BETA_ZONE,
            "us-central1-a__us-central1-c",
            "projects/UNSPECIFIED/regions/us-central1/disks/pd-name",
        ),
        (
            "v1 topology key regional",
            "topology.kubernetes.io/zone",
            "us-central1-a__us-central1-c",
            "projects/UNSPECIFIED/regions/us-central1/disks/pd-name",
        ),
    ];
    for (name, key, value, want) in cases {
        let pv = pv(
            json!({"metadata": {"labels": {key: value}}, "spec": {"gcePersistentDisk": {"pdName": "pd-name"}}}),
        );
        let got = csi_translation::translate_in_tree_pv_to_csi(&pv).expect(name);
        assert_eq!(got.spec.unwrap().csi.unwrap().volume_handle, want, "{name}");
    }
}
