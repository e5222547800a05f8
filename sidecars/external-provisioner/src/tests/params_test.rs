//! A port of upstream's `TestStripPrefixedCSIParams` (7 cases) from
//! `pkg/controller/controller_test.go`, with its case names, and our own cases for volume
//! names and file system types. (`TestBytesToQuantity` is in `csi-controller`, with the
//! quantity code.)

use std::collections::{BTreeMap, HashMap};

use crate::params::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn test_strip_prefixed_csi_params() {
    let deprecated = [
        ("fstype", "csiBar"),
        ("csiProvisionerSecretName", "csiBar"),
        ("csiProvisionerSecretNamespace", "csiBar"),
        ("csiControllerPublishSecretName", "csiBar"),
        ("csiControllerPublishSecretNamespace", "csiBar"),
        ("csiNodeStageSecretName", "csiBar"),
        ("csiNodeStageSecretNamespace", "csiBar"),
        ("csiNodePublishSecretName", "csiBar"),
        ("csiNodePublishSecretNamespace", "csiBar"),
    ];
    let all_known: Vec<(&str, &str)> = KNOWN_PREFIXED_KEYS.iter().map(|k| (*k, "csiBar")).collect();
    type Params = BTreeMap<String, String>;
    let cases: Vec<(&str, Params, Option<Params>)> = vec![
        (
            "no prefix",
            map(&[("csiFoo", "bar"), ("bim", "baz")]),
            Some(map(&[("csiFoo", "bar"), ("bim", "baz")])),
        ),
        (
            "one prefixed",
            map(&[
                ("csi.storage.k8s.io/controller-publish-secret-name", "bar"),
                ("bim", "baz"),
            ]),
            Some(map(&[("bim", "baz")])),
        ),
        (
            "prefix in value",
            map(&[("foo", PREFIXED_FS_TYPE_KEY), ("bim", "baz")]),
            Some(map(&[("foo", PREFIXED_FS_TYPE_KEY), ("bim", "baz")])),
        ),
        ("all known prefixed", map(&all_known), Some(map(&[]))),
        (
            "all known deprecated params not stripped",
            map(&deprecated),
            Some(map(&deprecated)),
        ),
        (
            "unknown prefixed var",
            map(&[("csi.storage.k8s.io/bim", "baz")]),
            None,
        ),
        ("empty", map(&[]), Some(map(&[]))),
    ];
    for (name, params, expected) in cases {
        let got = strip_prefixed_parameters(&params);
        match expected {
            None => assert!(got.is_err(), "{name}: expected an error"),
            Some(expected) => {
                let expected: HashMap<String, String> = expected.into_iter().collect();
                assert_eq!(got.unwrap(), expected, "{name}");
            }
        }
    }
    assert_eq!(
        strip_prefixed_parameters(&map(&[("csi.storage.k8s.io/bim", "baz")]))
            .unwrap_err()
            .to_string(),
        "found unknown parameter key \"csi.storage.k8s.io/bim\" with reserved namespace csi.storage.k8s.io/"
    );
}

#[test]
fn volume_names() {
    let uid = "a9e2d5a3-1c64-4787-97b7-1a22d5a0b123";
    assert_eq!(volume_name("pvc", uid, -1).unwrap(), format!("pvc-{uid}"));
    assert_eq!(volume_name("pvc", uid, 5).unwrap(), "pvc-a9e2d");
    assert_eq!(volume_name("test", "testid", 5).unwrap(), "test-testi");
    assert_eq!(
        volume_name("", uid, -1).unwrap_err().to_string(),
        "volume name prefix cannot be of length 0"
    );
    assert_eq!(
        volume_name("pvc", "", -1).unwrap_err().to_string(),
        "corrupted PVC object, it is missing UID"
    );
}

#[test]
fn fs_type_from_parameters() {
    assert_eq!(fs_type(&map(&[("fstype", "xfs")]), "ext4").unwrap(), "xfs");
    assert_eq!(fs_type(&map(&[("FsType", "xfs")]), "ext4").unwrap(), "xfs");
    assert_eq!(
        fs_type(&map(&[(PREFIXED_FS_TYPE_KEY, "xfs")]), "").unwrap(),
        "xfs"
    );
    assert_eq!(fs_type(&map(&[]), "ext4").unwrap(), "ext4");
    assert_eq!(fs_type(&map(&[]), "").unwrap(), "");
    assert_eq!(
        fs_type(
            &map(&[("fstype", "ext3"), (PREFIXED_FS_TYPE_KEY, "ext4")]),
            ""
        )
        .unwrap_err()
        .to_string(),
        "fstype specified in parameters with both \"fstype\" and \"csi.storage.k8s.io/fstype\" keys"
    );
}
