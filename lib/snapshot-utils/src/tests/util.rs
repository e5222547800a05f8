use std::collections::BTreeMap;

use csi_crd_types::VolumeSnapshot;
use csi_crd_types::group_snapshot::v1::{
    VolumeGroupSnapshotContent, VolumeGroupSnapshotContentStatus,
};
use csi_crd_types::snapshot::v1::{
    VolumeSnapshotContent, VolumeSnapshotContentStatus, VolumeSnapshotError,
};
use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, Time};

use crate::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// TestRemoveString
#[test]
fn remove_string_cases() {
    let cases: [(&str, Vec<String>, &str, Vec<String>); 5] = [
        ("Nil input slice", vec![], "", vec![]),
        (
            "Slice doesn't contain the string",
            strings(&["a", "ab", "cdef"]),
            "NotPresentInSlice",
            strings(&["a", "ab", "cdef"]),
        ),
        (
            "All strings removed, result is nil",
            strings(&["a"]),
            "a",
            vec![],
        ),
        (
            "One string removed",
            strings(&["a", "ab", "cdef"]),
            "ab",
            strings(&["a", "cdef"]),
        ),
        (
            "All(three) strings removed",
            strings(&["ab", "a", "ab", "cdef", "ab"]),
            "ab",
            strings(&["a", "cdef"]),
        ),
    ];
    for (name, input, remove, want) in cases {
        assert_eq!(remove_string(&input, remove), want, "{name}");
    }
}

// TestGetSecretReference
#[test]
fn get_secret_reference() {
    let named = VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some("snapshotname".into()),
            namespace: Some("snapshotnamespace".into()),
            annotations: Some(map(&[("akey", "avalue")])),
            ..Default::default()
        },
        ..Default::default()
    };
    let empty = VolumeSnapshot::default();
    type Case<'a> = (
        &'a str,
        BTreeMap<String, String>,
        &'a str,
        Option<&'a VolumeSnapshot>,
        Result<Option<SecretReference>, ()>,
    );
    let cases: Vec<Case> = vec![
        ("no params", BTreeMap::new(), "", None, Ok(None)),
        (
            "namespace, no name",
            map(&[(PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "foo")]),
            "",
            None,
            Err(()),
        ),
        (
            "simple - valid",
            map(&[
                (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "name"),
                (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "ns"),
            ]),
            "",
            Some(&empty),
            Ok(Some(SecretReference {
                name: Some("name".into()),
                namespace: Some("ns".into()),
            })),
        ),
        (
            "simple - invalid name",
            map(&[
                (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "bad name"),
                (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "ns"),
            ]),
            "",
            Some(&empty),
            Err(()),
        ),
        (
            "template - invalid",
            map(&[
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
            Some(&named),
            Err(()),
        ),
    ];
    for (name, params, content, snapshot, expected) in cases {
        let got = secret_reference(&SNAPSHOTTER_SECRET_PARAMS, &params, content, snapshot)
            .map_err(|_| ());
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn secret_reference_templates_and_messages() {
    let snapshot = VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some("snap".into()),
            namespace: Some("team".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let params = map(&[
        (
            PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
            "${volumesnapshot.name}-${volumesnapshotcontent.name}",
        ),
        (
            PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
            "${volumesnapshot.namespace}",
        ),
    ]);
    let got = secret_reference(
        &SNAPSHOTTER_SECRET_PARAMS,
        &params,
        "content",
        Some(&snapshot),
    );
    assert_eq!(
        got,
        Ok(Some(SecretReference {
            name: Some("snap-content".into()),
            namespace: Some("team".into()),
        }))
    );
    // Without the snapshot (deletion), its tokens are unknown.
    let err = secret_reference(&SNAPSHOTTER_SECRET_PARAMS, &params, "content", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "error resolving value \"${volumesnapshot.namespace}\": invalid tokens: [\"volumesnapshot.namespace\"]"
    );
    let err = secret_reference(
        &SNAPSHOTTER_SECRET_PARAMS,
        &map(&[(PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "foo")]),
        "content",
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to get name and namespace template from params: either name and namespace for Snapshotter secrets specified, Both must be specified"
    );
    // The group form uses the group tokens.
    let group_params = map(&[
        (
            PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
            "${volumegroupsnapshotcontent.name}",
        ),
        (PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "ns"),
    ]);
    assert_eq!(
        group_snapshot_secret_reference(
            &GROUP_SNAPSHOTTER_SECRET_PARAMS,
            &group_params,
            "gc",
            None
        ),
        Ok(Some(SecretReference {
            name: Some("gc".into()),
            namespace: Some("ns".into()),
        }))
    );
}

// TestRemovePrefixedCSIParams
#[test]
fn remove_prefixed_csi_params() {
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
                (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "bar"),
                ("bim", "baz"),
            ]),
            Some(map(&[("bim", "baz")])),
        ),
        (
            "all known prefixed",
            map(&[
                (PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, "csiBar"),
                (PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY, "csiBar"),
                (PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY, "csiBar"),
                (PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY, "csiBar"),
            ]),
            Some(BTreeMap::new()),
        ),
        (
            "unknown prefixed var",
            map(&[("csi.storage.k8s.io/bim", "baz")]),
            None,
        ),
        ("empty", BTreeMap::new(), Some(BTreeMap::new())),
    ];
    for (name, params, expected) in cases {
        assert_eq!(remove_prefixed_parameters(&params).ok(), expected, "{name}");
    }
    assert_eq!(
        remove_prefixed_parameters(&map(&[("csi.storage.k8s.io/bim", "baz")]))
            .unwrap_err()
            .to_string(),
        "found unknown parameter key \"csi.storage.k8s.io/bim\" with reserved namespace csi.storage.k8s.io/"
    );
}

fn annotated(pairs: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        annotations: (!pairs.is_empty()).then(|| map(pairs)),
        ..Default::default()
    }
}

// TestIsVolumeSnapshotClassDefaultAnnotation
#[test]
fn is_volume_snapshot_class_default_annotation() {
    let cases = [
        (
            "no default annotation in snapshot class",
            annotated(&[]),
            false,
        ),
        (
            "with default annotation in snapshot class",
            annotated(&[(IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION, "true")]),
            true,
        ),
        (
            "with default=false annotation in snapshot class",
            annotated(&[(IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION, "false")]),
            false,
        ),
    ];
    for (name, meta, expected) in cases {
        assert_eq!(
            is_default_snapshot_class_annotation(&meta),
            expected,
            "{name}"
        );
    }
}

// TestIsVolumeGroupSnapshotClassDefaultAnnotation
#[test]
fn is_volume_group_snapshot_class_default_annotation() {
    let cases = [
        (
            "no default annotation in group snapshot class",
            annotated(&[]),
            false,
        ),
        (
            "with default annotation in group snapshot class",
            annotated(&[(IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION, "true")]),
            true,
        ),
        (
            "with default=false annotation in group snapshot class",
            annotated(&[(IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION, "false")]),
            false,
        ),
    ];
    for (name, meta, expected) in cases {
        assert_eq!(
            is_default_group_snapshot_class_annotation(&meta),
            expected,
            "{name}"
        );
    }
}

fn content(meta: ObjectMeta) -> VolumeSnapshotContent {
    VolumeSnapshotContent {
        metadata: meta,
        ..Default::default()
    }
}

fn with_class(class: &str) -> VolumeSnapshotContent {
    let mut c = VolumeSnapshotContent::default();
    c.spec.volume_snapshot_class_name = Some(class.into());
    c
}

fn with_error(message: &str) -> VolumeSnapshotContent {
    VolumeSnapshotContent {
        status: Some(VolumeSnapshotContentStatus {
            error: Some(VolumeSnapshotError {
                message: Some(message.into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn with_finalizer(f: &str) -> VolumeSnapshotContent {
    content(ObjectMeta {
        finalizers: Some(vec![f.into()]),
        ..Default::default()
    })
}

fn with_manager(m: &str) -> VolumeSnapshotContent {
    content(ObjectMeta {
        managed_fields: Some(vec![ManagedFieldsEntry {
            manager: Some(m.into()),
            ..Default::default()
        }]),
        ..Default::default()
    })
}

fn with_annotation(key: &str, value: &str) -> VolumeSnapshotContent {
    content(annotated(&[(key, value)]))
}

fn with_rv(rv: &str, ready: Option<bool>) -> VolumeSnapshotContent {
    VolumeSnapshotContent {
        metadata: ObjectMeta {
            resource_version: Some(rv.into()),
            ..Default::default()
        },
        status: ready.map(|r| VolumeSnapshotContentStatus {
            ready_to_use: Some(r),
            ..Default::default()
        }),
        ..Default::default()
    }
}

// TestShouldEnqueueContentChange
#[test]
fn should_enqueue_content_change_cases() {
    let created = ANN_VOLUME_SNAPSHOT_BEING_CREATED;
    let deleted = ANN_VOLUME_SNAPSHOT_BEING_DELETED;
    let none = VolumeSnapshotContent::default;
    let cases: Vec<(&str, VolumeSnapshotContent, VolumeSnapshotContent, bool)> = vec![
        ("basic no change", none(), none(), false),
        ("basic change", with_class("old"), with_class("new"), true),
        ("status change", with_error("old"), with_error("new"), false),
        (
            "finalizers change",
            with_finalizer("old"),
            with_finalizer("new"),
            false,
        ),
        (
            "managed fields change",
            with_manager("old"),
            with_manager("new"),
            false,
        ),
        (
            "sidecar-managed annotation change",
            with_annotation(created, "old"),
            with_annotation(created, "new"),
            false,
        ),
        (
            "sidecar-unmanaged annotation change",
            with_annotation("test-annotation", "old"),
            with_annotation("test-annotation", "new"),
            true,
        ),
        (
            "sidecar-managed annotation created",
            none(),
            with_annotation(created, "new"),
            false,
        ),
        (
            "sidecar-unmanaged annotation created",
            none(),
            with_annotation("test-annotation", "new"),
            true,
        ),
        (
            "sidecar-managed annotation deleted",
            with_annotation(created, "old"),
            none(),
            false,
        ),
        (
            "sidecar-unmanaged annotation deleted",
            with_annotation("test-annotation", "old"),
            none(),
            true,
        ),
        (
            "sidecar-unmanaged annotation change (AnnVolumeSnapshotBeingDeleted)",
            with_annotation(deleted, "old"),
            with_annotation(deleted, "new"),
            true,
        ),
        (
            "resync from informer (old matches new including resource version)",
            with_rv("old", None),
            with_rv("old", None),
            true,
        ),
        (
            "readyToUse transition from false to true (should enqueue to process deletionTimestamp)",
            with_rv("old", Some(false)),
            with_rv("new", Some(true)),
            true,
        ),
    ];
    for (name, mut old, new, expected) in cases {
        // As upstream's table does: a resource version is injected unless the case sets one
        // (for a new object without one, upstream's loop sets the old one to "new").
        if old.metadata.resource_version.is_none() {
            old.metadata.resource_version = Some("old".into());
        }
        if new.metadata.resource_version.is_none() {
            old.metadata.resource_version = Some("new".into());
        }
        assert_eq!(
            should_enqueue_content_change(&old, &new),
            expected,
            "{name}"
        );
    }
}

fn group_content(
    rv: &str,
    annotations: &[(&str, &str)],
    status: Option<VolumeGroupSnapshotContentStatus>,
) -> VolumeGroupSnapshotContent {
    let mut meta = annotated(annotations);
    meta.resource_version = Some(rv.into());
    VolumeGroupSnapshotContent {
        metadata: meta,
        status,
        ..Default::default()
    }
}

fn group_status(ready: Option<bool>) -> Option<VolumeGroupSnapshotContentStatus> {
    Some(VolumeGroupSnapshotContentStatus {
        ready_to_use: ready,
        ..Default::default()
    })
}

// TestShouldEnqueueGroupContentChange
#[test]
fn should_enqueue_group_content_change_cases() {
    let created = ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED;
    let mut spec_change = group_content("2", &[], None);
    spec_change.spec.volume_group_snapshot_class_name = Some("class".into());
    let mut not_ready = group_status(Some(false));
    if let Some(s) = not_ready.as_mut() {
        s.volume_group_snapshot_handle = Some("handle".into());
    }
    let mut ready_with_error = group_status(Some(true));
    if let Some(s) = ready_with_error.as_mut() {
        s.error = Some(VolumeSnapshotError {
            message: Some("error".into()),
            ..Default::default()
        });
    }
    let mut finalizer_change = group_content("2", &[], None);
    finalizer_change.metadata.finalizers =
        Some(vec![VOLUME_GROUP_SNAPSHOT_CONTENT_FINALIZER.into()]);
    finalizer_change.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some("csi-snapshotter".into()),
        ..Default::default()
    }]);
    let mut deleting = group_content("2", &[], None);
    deleting.metadata.deletion_timestamp = Some(Time(Default::default()));
    let base = || group_content("1", &[], None);
    let cases: Vec<(
        &str,
        VolumeGroupSnapshotContent,
        VolumeGroupSnapshotContent,
        bool,
    )> = vec![
        ("resync from informer", base(), base(), true),
        ("spec change", base(), spec_change, true),
        (
            "status change while not ready",
            base(),
            group_content("2", &[], not_ready),
            false,
        ),
        (
            "readyToUse transition from false to true",
            group_content("1", &[], group_status(Some(false))),
            group_content("2", &[], group_status(Some(true))),
            true,
        ),
        (
            "readyToUse set on first status update",
            base(),
            group_content("2", &[], group_status(Some(true))),
            true,
        ),
        (
            "status change after ready",
            group_content("1", &[], group_status(Some(true))),
            group_content("2", &[], ready_with_error),
            false,
        ),
        (
            "finalizer and managed fields change",
            base(),
            finalizer_change,
            false,
        ),
        (
            "sidecar-owned annotation added",
            base(),
            group_content("2", &[(created, "yes")], None),
            false,
        ),
        (
            "sidecar-owned annotation removed",
            group_content("1", &[(created, "yes")], None),
            group_content("2", &[], None),
            false,
        ),
        (
            "controller-owned annotation added to object without annotations",
            base(),
            group_content("2", &[(ANN_DELETION_GROUP_SECRET_REF_NAME, "secret")], None),
            true,
        ),
        (
            "controller-owned annotation added",
            group_content("1", &[(created, "yes")], None),
            group_content(
                "2",
                &[
                    (created, "yes"),
                    (ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED, "yes"),
                ],
                None,
            ),
            true,
        ),
        ("deletion timestamp set", base(), deleting, true),
    ];
    for (name, old, new, expected) in cases {
        assert_eq!(
            should_enqueue_group_content_change(&old, &new),
            expected,
            "{name}"
        );
    }
}

#[test]
fn names_and_finalizer_predicates() {
    let mut snapshot = VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some("snap".into()),
            namespace: Some("ns".into()),
            uid: Some("1234".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(dynamic_snapshot_content_name(&snapshot), "snapcontent-1234");
    assert_eq!(snapshot_key(&snapshot), "ns/snap");
    assert!(
        !need_to_add_snapshot_bound_finalizer(&snapshot),
        "not bound yet"
    );
    assert!(need_to_add_snapshot_as_source_finalizer(&snapshot));
    assert_eq!(
        snapshot_status_for_logging(&snapshot),
        "bound to: \"\", Completed: false"
    );
    snapshot.status = Some(csi_crd_types::snapshot::v1::VolumeSnapshotStatus {
        bound_volume_snapshot_content_name: Some("content".into()),
        ready_to_use: Some(true),
        ..Default::default()
    });
    assert!(need_to_add_snapshot_bound_finalizer(&snapshot));
    assert!(is_snapshot_ready(&snapshot) && !is_snapshot_created(&snapshot));
    snapshot.metadata.finalizers = Some(vec![VOLUME_SNAPSHOT_BOUND_FINALIZER.into()]);
    assert!(!need_to_add_snapshot_bound_finalizer(&snapshot));
    assert!(!is_snapshot_deletion_candidate(&snapshot));
    snapshot.metadata.deletion_timestamp = Some(Time(Default::default()));
    assert!(is_snapshot_deletion_candidate(&snapshot));
    assert!(!need_to_add_snapshot_as_source_finalizer(&snapshot));

    let mut content = VolumeSnapshotContent::default();
    assert!(need_to_add_content_finalizer(&content));
    content.spec.volume_snapshot_ref.name = Some("snap".into());
    content.spec.volume_snapshot_ref.namespace = Some("ns".into());
    assert!(
        !is_volume_snapshot_ref_set(&snapshot, &content),
        "UID differs"
    );
    content.spec.volume_snapshot_ref.uid = Some("1234".into());
    assert!(is_volume_snapshot_ref_set(&snapshot, &content));
    content.metadata.finalizers = Some(vec![VOLUME_SNAPSHOT_CONTENT_FINALIZER.into()]);
    assert!(!need_to_add_content_finalizer(&content));
}
