//! Upstream's `pkg/utils/util_test.go` cases for what the sidecar uses: `TestGetSecretReference`
//! (5), `TestRemovePrefixedCSIParams` (5) and cases of `TestShouldEnqueueContentChange`.

use std::collections::BTreeMap;

use csi_crd_types::VolumeSnapshotContent;
use csi_crd_types::snapshot::v1::VolumeSnapshotContentStatus;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn test_get_secret_reference() {
    let snapshot = TemplateObject {
        name: "snapshotname",
        namespace: "snapshotnamespace",
    };
    let empty = TemplateObject {
        name: "",
        namespace: "",
    };
    // "no params"
    assert_eq!(
        secret_reference(&SNAPSHOTTER_SECRET_PARAMS, &map(&[]), "", None, false),
        Ok(None)
    );
    // "namespace, no name"
    assert!(
        secret_reference(
            &SNAPSHOTTER_SECRET_PARAMS,
            &map(&[(PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "foo")]),
            "",
            None,
            false
        )
        .is_err()
    );
    // "simple - valid"
    let reference = secret_reference(
        &SNAPSHOTTER_SECRET_PARAMS,
        &map(&[
            (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "name"),
            (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "ns"),
        ]),
        "",
        Some(empty),
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (reference.name.as_deref(), reference.namespace.as_deref()),
        (Some("name"), Some("ns"))
    );
    // "simple - invalid name"
    let err = secret_reference(
        &SNAPSHOTTER_SECRET_PARAMS,
        &map(&[
            (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "bad name"),
            (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "ns"),
        ]),
        "",
        Some(empty),
        false,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "\"bad name\" is not a valid secret name");
    // "template - invalid": annotations are no token of snapshot secrets.
    let err = secret_reference(
        &SNAPSHOTTER_SECRET_PARAMS,
        &map(&[
            (
                PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
                "static-${volumesnapshotcontent.name}-${volumesnapshot.namespace}-${volumesnapshot.name}-${volumesnapshot.annotations['akey']}",
            ),
            (
                PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
                "static-${volumesnapshotcontent.name}-${volumesnapshot.namespace}",
            ),
        ]),
        "snapcontentname",
        Some(snapshot),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid tokens"), "{err}");
    // A template that resolves (group tokens for group secrets).
    let reference = secret_reference(
        &GROUP_SNAPSHOTTER_GET_SECRET_PARAMS,
        &map(&[
            (
                PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY,
                "s-${volumegroupsnapshotcontent.name}",
            ),
            (PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY, "ns"),
        ]),
        "groupcontent",
        None,
        true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(reference.name.as_deref(), Some("s-groupcontent"));
}

#[test]
fn test_remove_prefixed_csi_params() {
    let to_hash = |m: BTreeMap<String, String>| m.into_iter().collect::<HashMap<_, _>>();
    // "no prefix"
    let params = map(&[("csiFoo", "bar"), ("bim", "baz")]);
    assert_eq!(
        remove_prefixed_parameters(&params),
        Ok(to_hash(params.clone()))
    );
    // "one prefixed"
    assert_eq!(
        remove_prefixed_parameters(&map(&[
            (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "bar"),
            ("bim", "baz")
        ])),
        Ok(to_hash(map(&[("bim", "baz")])))
    );
    // "all known prefixed"
    assert_eq!(
        remove_prefixed_parameters(&map(&[
            (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "csiBar"),
            (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "csiBar"),
            (PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY, "csiBar"),
            (PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY, "csiBar"),
        ])),
        Ok(HashMap::new())
    );
    // "unknown prefixed var"
    assert_eq!(
        remove_prefixed_parameters(&map(&[("csi.storage.k8s.io/bim", "baz")])),
        Err("found unknown parameter key \"csi.storage.k8s.io/bim\" with reserved namespace csi.storage.k8s.io/".to_string())
    );
    // "empty"
    assert_eq!(remove_prefixed_parameters(&map(&[])), Ok(HashMap::new()));
}

fn content(rv: &str, annotations: &[(&str, &str)], ready: Option<bool>) -> VolumeSnapshotContent {
    let mut content = VolumeSnapshotContent::default();
    content.metadata.resource_version = Some(rv.into());
    if !annotations.is_empty() {
        content.metadata.annotations = Some(map(annotations));
    }
    content.status = ready.map(|ready| VolumeSnapshotContentStatus {
        ready_to_use: Some(ready),
        ..Default::default()
    });
    content
}

#[test]
fn test_should_enqueue_content_change() {
    let created = ANN_VOLUME_SNAPSHOT_BEING_CREATED;
    let deleted = ANN_VOLUME_SNAPSHOT_BEING_DELETED;
    let mut class_change = content("2", &[], None);
    class_change.spec.volume_snapshot_class_name = Some("new".into());
    let mut with_finalizer = content("2", &[], None);
    with_finalizer.metadata.finalizers = Some(vec!["f".into()]);
    let cases = [
        (
            "basic no change",
            content("1", &[], None),
            content("2", &[], None),
            false,
        ),
        ("basic change", content("1", &[], None), class_change, true),
        (
            "status change",
            content("1", &[], None),
            content("2", &[], Some(false)),
            false,
        ),
        (
            "finalizers change",
            content("1", &[], None),
            with_finalizer,
            false,
        ),
        (
            "sidecar-managed annotation change",
            content("1", &[(created, "old")], None),
            content("2", &[(created, "new")], None),
            false,
        ),
        (
            "sidecar-unmanaged annotation change",
            content("1", &[("test", "old")], None),
            content("2", &[("test", "new")], None),
            true,
        ),
        (
            "sidecar-managed annotation created",
            content("1", &[], None),
            content("2", &[(created, "new")], None),
            false,
        ),
        (
            "sidecar-unmanaged annotation created",
            content("1", &[], None),
            content("2", &[("test", "new")], None),
            true,
        ),
        (
            "sidecar-managed annotation deleted",
            content("1", &[(created, "old")], None),
            content("2", &[], None),
            false,
        ),
        (
            "sidecar-unmanaged annotation deleted",
            content("1", &[("test", "old")], None),
            content("2", &[], None),
            true,
        ),
        (
            "sidecar-unmanaged annotation change (AnnVolumeSnapshotBeingDeleted)",
            content("1", &[(deleted, "old")], None),
            content("2", &[(deleted, "new")], None),
            true,
        ),
        (
            "resync from informer (old matches new including resource version)",
            content("1", &[], None),
            content("1", &[], None),
            true,
        ),
        (
            "readyToUse transition from false to true (should enqueue to process deletionTimestamp)",
            content("1", &[], Some(false)),
            content("2", &[], Some(true)),
            true,
        ),
    ];
    for (name, old, new, expected) in cases {
        assert_eq!(
            should_enqueue_content_change(&old, &new),
            expected,
            "{name}"
        );
    }
}
