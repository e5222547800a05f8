//! `groupsnapshot.storage.k8s.io`: upstream v8.1.1's `TestAdmitVolumeGroupSnapshotClassV1Alpha1`,
//! and v7.0.2's `TestAdmitVolumeGroupSnapshotV1Alpha1` and
//! `TestAdmitVolumeGroupSnapshotContentV1Alpha1` judged by the CEL rules, for v1alpha1 as
//! upstream and again for v1 (the same rules), plus what v1beta1's smaller rule set lets through.

use serde_json::{Value, json};

use super::{Case, admitter, class, run};
use crate::review::Endpoint;

const DEFAULT: &str = "groupsnapshot.storage.kubernetes.io/is-default-class";
const GROUP: &str = "groupsnapshot.storage.k8s.io";

fn group_class(name: Option<&str>, default: bool, driver: &str) -> Value {
    let mut metadata = json!({});
    if let Some(name) = name {
        metadata["name"] = json!(name);
    }
    if default {
        metadata["annotations"] = json!({ DEFAULT: "true" });
    }
    json!({"metadata": metadata, "driver": driver, "deletionPolicy": ""})
}

#[test]
fn test_admit_volume_group_snapshot_class_v1_alpha1() {
    let empty = json!({"metadata": {}, "driver": "", "deletionPolicy": ""});
    let cases = [
        (
            Case {
                name: "new default for group snapshot class with no existing group snapshot classes",
                operation: "CREATE",
                object: group_class(None, true, "test.csi.io"),
                old: Value::Null,
                should_admit: true,
                msg: "",
            },
            vec![],
        ),
        (
            Case {
                name: "new default for group snapshot class for  with existing default group snapshot class with different drivers",
                operation: "CREATE",
                object: group_class(None, true, "test.csi.io"),
                old: empty.clone(),
                should_admit: true,
                msg: "",
            },
            vec![class("", true, "existing.test.csi.io")],
        ),
        (
            Case {
                name: "new default for group snapshot class with existing default group snapshot class same driver",
                operation: "CREATE",
                object: group_class(None, true, "test.csi.io"),
                old: empty.clone(),
                should_admit: false,
                msg: "default group snapshot class: driver-a already exists for driver: test.csi.io",
            },
            vec![class("driver-a", true, "test.csi.io")],
        ),
        (
            Case {
                name: "default for group snapshot class with existing default group snapshot class same driver update",
                operation: "UPDATE",
                object: group_class(None, true, "test.csi.io"),
                old: group_class(None, true, "test.csi.io"),
                should_admit: true,
                msg: "",
            },
            vec![class("", true, "test.csi.io")],
        ),
        (
            Case {
                name: "new group snapshot for group snapshot class with existing default group snapshot class same driver",
                operation: "CREATE",
                object: group_class(None, false, "test.csi.io"),
                old: empty.clone(),
                should_admit: true,
                msg: "",
            },
            vec![class("", true, "test.csi.io")],
        ),
        (
            Case {
                name: "new group snapshot for group snapshot class with existing group snapshot default classes",
                operation: "CREATE",
                object: group_class(None, true, "test.csi.io"),
                old: empty.clone(),
                should_admit: false,
                msg: "default group snapshot class: driver-is-default already exists for driver: test.csi.io",
            },
            vec![
                class("driver-is-default", true, "test.csi.io"),
                class("", true, "test.csi.io"),
            ],
        ),
        (
            Case {
                name: "update group snapshot class to new driver with existing default group snapshot classes",
                operation: "UPDATE",
                object: group_class(None, true, "driver.test.csi.io"),
                old: group_class(None, true, "test.csi.io"),
                should_admit: false,
                msg: "default group snapshot class: driver-test-default already exists for driver: driver.test.csi.io",
            },
            vec![
                class("driver-is-default", true, "test.csi.io"),
                class("driver-test-default", true, "driver.test.csi.io"),
            ],
        ),
    ];
    for (case, existing) in cases {
        run(
            &admitter(vec![], existing),
            Endpoint::GroupSnapshot,
            (GROUP, "v1alpha1", "volumegroupsnapshotclasses"),
            &case,
        );
    }
}

#[test]
fn group_snapshot_class_driver_is_immutable_in_v1_but_not_v1beta1() {
    let case = |should_admit, msg| Case {
        name: "driver changed",
        operation: "UPDATE",
        object: group_class(Some("c"), false, "new.csi.io"),
        old: group_class(Some("c"), false, "test.csi.io"),
        should_admit,
        msg,
    };
    run(
        &admitter(vec![], vec![]),
        Endpoint::GroupSnapshot,
        (GROUP, "v1", "volumegroupsnapshotclasses"),
        &case(
            false,
            "driver: Invalid value: \"new.csi.io\": driver is immutable once set",
        ),
    );
    run(
        &admitter(vec![], vec![]),
        Endpoint::GroupSnapshot,
        (GROUP, "v1beta1", "volumegroupsnapshotclasses"),
        &case(true, ""),
    );
}

fn group_snapshot(selector: bool, content: Option<&str>, class: Option<&str>) -> Value {
    let mut source = json!({});
    if selector {
        source["selector"] = json!({"matchLabels": {"group": "A"}});
    }
    if let Some(content) = content {
        source["volumeGroupSnapshotContentName"] = json!(content);
    }
    let mut spec = json!({ "source": source });
    if let Some(class) = class {
        spec["volumeGroupSnapshotClassName"] = json!(class);
    }
    json!({"metadata": {}, "spec": spec})
}

fn group_snapshot_cases() -> Vec<Case> {
    let content = Some("groupsnapcontent1");
    vec![
        Case {
            name: "Delete: new and old are nil. Should admit",
            operation: "DELETE",
            object: Value::Null,
            old: Value::Null,
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Create: old is nil and new is valid, with contentname",
            operation: "CREATE",
            object: group_snapshot(false, content, None),
            old: Value::Null,
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Create: old is nil and new is valid, with selector",
            operation: "CREATE",
            object: group_snapshot(true, None, None),
            old: Value::Null,
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Update: old is valid and new is invalid",
            operation: "UPDATE",
            object: group_snapshot(false, content, Some("")),
            old: group_snapshot(false, content, None),
            should_admit: false,
            msg: "~volumeGroupSnapshotClassName must not be the empty string when set",
        },
        Case {
            name: "Update: old is valid and new is valid",
            operation: "UPDATE",
            object: group_snapshot(false, content, None),
            old: group_snapshot(false, content, None),
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Update: old is valid and new is valid but changes immutable field spec.source",
            operation: "UPDATE",
            object: group_snapshot(false, Some("changed-immutable-field"), None),
            old: group_snapshot(false, content, None),
            should_admit: false,
            msg: "~volumeGroupSnapshotContentName is immutable",
        },
        Case {
            name: "Update: old is invalid and new is valid",
            operation: "UPDATE",
            object: group_snapshot(false, content, None),
            old: group_snapshot(true, content, None),
            should_admit: false,
            msg: "~selector is required once set",
        },
        Case {
            name: "Update: old is invalid and new is invalid",
            operation: "UPDATE",
            object: group_snapshot(true, content, None),
            old: group_snapshot(true, content, None),
            should_admit: true,
            msg: "",
        },
    ]
}

#[test]
fn test_admit_volume_group_snapshot_v1_alpha1() {
    for version in ["v1alpha1", "v1beta1", "v1beta2", "v1"] {
        for case in group_snapshot_cases() {
            run(
                &admitter(vec![], vec![]),
                Endpoint::GroupSnapshot,
                (GROUP, version, "volumegroupsnapshots"),
                &case,
            );
        }
    }
}

fn group_content(
    volume_handles: bool,
    snapshot_handles: Option<Vec<&str>>,
    ref_name: Option<&str>,
    class: Option<&str>,
) -> Value {
    let mut source = json!({});
    if volume_handles {
        source["volumeHandles"] = json!(["volumeHandle1"]);
    }
    if let Some(handles) = snapshot_handles {
        source["groupSnapshotHandles"] = json!({
            "volumeGroupSnapshotHandle": "groupsnapshotHandle1",
            "volumeSnapshotHandles": handles,
        });
    }
    let mut reference = json!({"namespace": "default-ns"});
    if let Some(name) = ref_name {
        reference["name"] = json!(name);
    }
    let mut spec = json!({"source": source, "volumeGroupSnapshotRef": reference,
                          "deletionPolicy": "", "driver": ""});
    if let Some(class) = class {
        spec["volumeGroupSnapshotClassName"] = json!(class);
    }
    json!({"metadata": {}, "spec": spec})
}

#[test]
fn test_admit_volume_group_snapshot_content_v1_alpha1() {
    let handles = || Some(vec!["volumeSnapshotHandle1"]);
    let valid = group_content(
        false,
        handles(),
        Some("group-snapshot-ref"),
        Some("volume-snapshot-class-1"),
    );
    let invalid = group_content(true, handles(), None, None);
    let cases = [
        Case {
            name: "Delete: both new and old are nil",
            operation: "DELETE",
            object: Value::Null,
            old: Value::Null,
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Create: old is nil and new is valid",
            operation: "CREATE",
            object: valid.clone(),
            old: Value::Null,
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Update: old is valid and new is invalid",
            operation: "UPDATE",
            object: invalid.clone(),
            old: valid.clone(),
            should_admit: false,
            msg: "~exactly one of volumeHandles and groupSnapshotHandles must be set",
        },
        Case {
            name: "Update: old is valid and new is valid",
            operation: "UPDATE",
            object: valid.clone(),
            old: valid.clone(),
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Update: old is valid and new is valid but modifies immutable field",
            operation: "UPDATE",
            object: group_content(
                false,
                Some(vec!["volumeSnapshotHandle1", "volumeSnapshotHandle2"]),
                Some("snapshot-ref"),
                None,
            ),
            old: valid.clone(),
            should_admit: false,
            msg: "~groupSnapshotHandles is immutable",
        },
        Case {
            name: "Update: old is valid and new is valid but modifies immutable ref",
            operation: "UPDATE",
            object: group_content(
                false,
                handles(),
                Some("modified-ref-name"),
                Some("volume-snapshot-class-1"),
            ),
            old: valid.clone(),
            should_admit: false,
            msg: "spec.volumeGroupSnapshotRef: Invalid value: volumeGroupSnapshotRef.name and volumeGroupSnapshotRef.namespace are immutable",
        },
        Case {
            name: "Update: old is invalid and new is valid",
            operation: "UPDATE",
            object: valid.clone(),
            old: invalid.clone(),
            should_admit: false,
            msg: "~volumeHandles is required once set",
        },
        Case {
            // Refused by upstream's webhook and by the v1 CRD's transition rule on the
            // reference (its name is missing on both sides: an evaluation error).
            name: "Update: old is invalid and new is invalid",
            operation: "UPDATE",
            object: invalid.clone(),
            old: invalid.clone(),
            should_admit: false,
            msg: "~volumeGroupSnapshotRef.name and volumeGroupSnapshotRef.namespace are immutable",
        },
    ];
    for version in ["v1alpha1", "v1"] {
        for case in &cases {
            run(
                &admitter(vec![], vec![]),
                Endpoint::GroupSnapshot,
                (GROUP, version, "volumegroupsnapshotcontents"),
                case,
            );
        }
    }
    // v1beta1's CRD has no rule on the reference after creation.
    for name in [
        "Update: old is valid and new is valid but modifies immutable ref",
        "Update: old is invalid and new is invalid",
    ] {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        let lenient = Case {
            name: case.name,
            operation: case.operation,
            object: case.object.clone(),
            old: case.old.clone(),
            should_admit: true,
            msg: "",
        };
        run(
            &admitter(vec![], vec![]),
            Endpoint::GroupSnapshot,
            (GROUP, "v1beta1", "volumegroupsnapshotcontents"),
            &lenient,
        );
    }
}
