//! Port of csi-translation-lib v0.36.3 `plugins/aws_ebs_test.go`:
//! `TestKubernetesVolumeIDToEBSVolumeID` (4), `TestTranslateEBSInTreeStorageClassToCSI` (4),
//! `TestTranslateInTreeInlineVolumeToCSI` (5), `TestGetAwsRegionFromZones` (9, through the
//! region a CSI PV's zones give when translated back to in-tree).

mod common;

use common::*;
use csi_translation::plugins::kubernetes_volume_id_to_ebs_volume_id;
use serde_json::json;

const NORMAL_VOLUME_ID: &str = "vol-02399794d890f9375";
const AWS_VOLUME_ID: &str = "aws:///vol-02399794d890f9375";
const AWS_ZONE_VOLUME_ID: &str = "aws://us-west-2a/vol-02399794d890f9375";
const INVALID_VOLUME_ID: &str = "aws://us-west-2a/02399794d890f9375";

#[test]
fn test_kubernetes_volume_id_to_ebs_volume_id() {
    let cases = [
        ("Normal ID format", NORMAL_VOLUME_ID, Some(NORMAL_VOLUME_ID)),
        (
            "aws:///{volumeId} format",
            AWS_VOLUME_ID,
            Some(NORMAL_VOLUME_ID),
        ),
        (
            "aws://{zone}/{volumeId} format",
            AWS_ZONE_VOLUME_ID,
            Some(NORMAL_VOLUME_ID),
        ),
        ("fails on invalid volume ID", INVALID_VOLUME_ID, None),
    ];
    for (name, id, expected) in cases {
        let got = kubernetes_volume_id_to_ebs_volume_id(id);
        assert_eq!(got.ok().as_deref(), expected, "{name}");
    }
}

#[test]
fn test_translate_ebs_in_tree_storage_class_to_csi() {
    let cases = [
        (
            "translate normal",
            json!({"foo": "bar"}),
            json!({"foo": "bar"}),
        ),
        ("translate empty map", json!({}), json!({})),
        (
            "translate with fstype",
            json!({"fstype": "ext3"}),
            json!({"csi.storage.k8s.io/fstype": "ext3"}),
        ),
        (
            "translate with iops",
            json!({"iopsPerGB": "100"}),
            json!({"iopsPerGB": "100", "allowautoiopspergbincrease": "true"}),
        ),
    ];
    for (name, params, expected) in cases {
        let got = csi_translation::translate_in_tree_storage_class_to_csi(
            "kubernetes.io/aws-ebs",
            &new_storage_class(params, serde_json::Value::Null),
        )
        .expect(name);
        assert_same(
            &got,
            &new_storage_class(expected, serde_json::Value::Null),
            name,
        );
    }
}

#[test]
fn test_translate_in_tree_inline_volume_to_csi() {
    let cases = [
        (
            "Normal ID format",
            json!({"awsElasticBlockStore": {"volumeID": NORMAL_VOLUME_ID}}),
            true,
        ),
        (
            "aws:///{volumeId} format",
            json!({"awsElasticBlockStore": {"volumeID": AWS_VOLUME_ID}}),
            true,
        ),
        (
            "aws://{zone}/{volumeId} format",
            json!({"awsElasticBlockStore": {"volumeID": AWS_ZONE_VOLUME_ID}}),
            true,
        ),
        (
            "fails on invalid volume ID",
            json!({"awsElasticBlockStore": {"volumeID": INVALID_VOLUME_ID}}),
            false,
        ),
        ("fails on empty volume source", json!({}), false),
    ];
    for (name, source, ok) in cases {
        let mut v = source;
        v["name"] = json!("volume");
        let got = csi_translation::translate_in_tree_inline_volume_to_csi(&volume(v), "");
        match (got, ok) {
            (Ok(pv), true) => {
                assert_eq!(
                    pv.metadata.name.as_deref(),
                    Some(format!("ebs.csi.aws.com-{NORMAL_VOLUME_ID}").as_str()),
                    "{name}"
                );
                assert_eq!(
                    pv.spec.unwrap().csi.unwrap().volume_handle,
                    NORMAL_VOLUME_ID,
                    "{name}"
                );
            }
            (Err(_), false) => {}
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
}

#[test]
fn test_get_aws_region_from_zones() {
    let cases: [(&str, &[&str], Option<&str>); 9] = [
        (
            "Commercial zone",
            &["us-west-2a", "us-west-2b"],
            Some("us-west-2"),
        ),
        ("Govcloud zone", &["us-gov-east-1a"], Some("us-gov-east-1")),
        (
            "Wavelength zone",
            &["us-east-1-wl1-bos-wlz-1"],
            Some("us-east-1"),
        ),
        ("Local zone", &["us-west-2-lax-1a"], Some("us-west-2")),
        ("Invalid: empty zones", &[], None),
        (
            "Invalid: multiple regions",
            &["us-west-2a", "us-east-1a"],
            None,
        ),
        ("Invalid: region name only", &["us-west-2"], None),
        ("Invalid: invalid suffix", &["us-west-2ab"], None),
        ("Invalid: not enough fields", &["us-west"], None),
    ];
    for (name, zones, expected) in cases {
        // A term whose zone requirement has these values; with none, a term without a zone.
        let requirement = if zones.is_empty() {
            json!({"key": "kubernetes.io/hostname", "operator": "In", "values": ["n"]})
        } else {
            json!({"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": zones})
        };
        let pv = pv(json!({
            "metadata": {},
            "spec": {
                "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": NORMAL_VOLUME_ID},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [requirement]}]}},
            }
        }));
        let got = csi_translation::translate_csi_pv_to_in_tree(&pv);
        let region = got.ok().and_then(|pv| {
            pv.metadata
                .labels
                .and_then(|l| l.get("topology.kubernetes.io/region").cloned())
        });
        assert_eq!(region.as_deref(), expected, "{name}");
    }
}
