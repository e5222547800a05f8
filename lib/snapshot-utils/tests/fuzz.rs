//! Property tests of snapshot class parameters: stripping the reserved `csi.storage.k8s.io/`
//! keys matches a model of upstream's rule, and any parameters and names give a valid secret
//! reference or an error, never a panic.

use std::collections::BTreeMap;

use csi_controller::secrets::{CSI_PARAMETER_PREFIX, is_dns1123_label, is_dns1123_subdomain};
use csi_crd_types::VolumeSnapshot;
use csi_crd_types::group_snapshot::v1::VolumeGroupSnapshot;
use csi_snapshot_utils::secrets::*;
use csi_test_support::fuzz::config;
use proptest::prelude::*;

const KNOWN: [&str; 8] = [
    PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
    PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY,
    PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(&KNOWN[..]).prop_map(str::to_string),
        1 => "csi\\.storage\\.k8s\\.io/[a-z/-]{0,14}",
        1 => "csi[A-Za-z]{0,20}",
        2 => any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,10}",
        "\\$\\{(volumesnapshotcontent\\.name|volumesnapshot\\.name|volumesnapshot\\.namespace|volumegroupsnapshotcontent\\.name|volumegroupsnapshot\\.name|volumegroupsnapshot\\.namespace)\\}",
        "[-a-z0-9${}.]{0,16}",
        any::<String>(),
    ]
}

fn object<T: serde::de::DeserializeOwned>(kind: &str, name: &str, namespace: &str) -> T {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"source": {}},
        "kind": kind,
    }))
    .expect("a valid object")
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn prefixed_parameters_are_stripped_as_upstream(
        params in proptest::collection::btree_map(key(), any::<String>(), 0..6),
    ) {
        let unknown = params
            .keys()
            .find(|k| k.starts_with(CSI_PARAMETER_PREFIX) && !KNOWN.contains(&k.as_str()));
        match (remove_prefixed_parameters(&params), unknown) {
            (Ok(kept), None) => {
                let want: BTreeMap<String, String> = params
                    .iter()
                    .filter(|(k, _)| !k.starts_with(CSI_PARAMETER_PREFIX))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(kept, want);
            }
            (Err(err), Some(key)) => prop_assert_eq!(&err.0, key),
            (got, want) => prop_assert!(false, "got {got:?}, unknown key {want:?}"),
        }
    }

    #[test]
    fn any_class_parameters_give_a_valid_reference_or_an_error(
        params in proptest::collection::btree_map(key(), value(), 0..6),
        content in "[a-z0-9.-]{0,12}",
        names in proptest::option::of(("[a-z0-9.-]{0,12}", "[a-z0-9-]{0,12}")),
    ) {
        let snapshot: Option<VolumeSnapshot> =
            names.as_ref().map(|(n, ns)| object("VolumeSnapshot", n, ns));
        let group: Option<VolumeGroupSnapshot> =
            names.as_ref().map(|(n, ns)| object("VolumeGroupSnapshot", n, ns));
        let results = [
            secret_reference(&SNAPSHOTTER_SECRET_PARAMS, &params, &content, snapshot.as_ref()),
            secret_reference(&SNAPSHOTTER_LIST_SECRET_PARAMS, &params, &content, snapshot.as_ref()),
            group_snapshot_secret_reference(&GROUP_SNAPSHOTTER_SECRET_PARAMS, &params, &content, group.as_ref()),
            group_snapshot_secret_reference(&GROUP_SNAPSHOTTER_GET_SECRET_PARAMS, &params, &content, group.as_ref()),
        ];
        for result in results {
            match result {
                Ok(Some(r)) => {
                    prop_assert!(is_dns1123_subdomain(r.name.as_deref().unwrap_or_default()));
                    prop_assert!(is_dns1123_label(r.namespace.as_deref().unwrap_or_default()));
                }
                Ok(None) => {}
                Err(err) => prop_assert!(!err.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn snapshot_tokens_resolve_to_the_objects_names(
        content in "snapcontent-[a-z0-9]{1,8}",
        name in "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?",
        namespace in "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?",
    ) {
        let params = BTreeMap::from([
            (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY.to_string(), "${volumesnapshot.name}-${volumesnapshotcontent.name}".to_string()),
            (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY.to_string(), "${volumesnapshot.namespace}".to_string()),
        ]);
        let snapshot: VolumeSnapshot = object("VolumeSnapshot", &name, &namespace);
        let r = secret_reference(&SNAPSHOTTER_SECRET_PARAMS, &params, &content, Some(&snapshot))
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .expect("a reference");
        let want_name = format!("{name}-{content}");
        prop_assert_eq!(r.name.as_deref(), Some(want_name.as_str()));
        prop_assert_eq!(r.namespace.as_deref(), Some(namespace.as_str()));
        prop_assert!(secret_reference(&SNAPSHOTTER_SECRET_PARAMS, &params, &content, None).is_err());
    }
}
