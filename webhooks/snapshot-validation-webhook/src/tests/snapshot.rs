//! `snapshot.storage.k8s.io/v1`: upstream v8.1.1's `TestAdmitVolumeSnapshotClassV1`, and v7.0.2's
//! `TestAdmitVolumeSnapshotV1` and `TestAdmitVolumeSnapshotContentV1` judged by the CEL rules.

use serde_json::{Value, json};

use super::{Case, admitter, class, run};
use crate::review::Endpoint;

const DEFAULT: &str = "snapshot.storage.kubernetes.io/is-default-class";

fn snapshot_class(name: Option<&str>, default: bool, driver: &str) -> Value {
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
fn test_admit_volume_snapshot_class_v1() {
    let empty = json!({"metadata": {}, "driver": "", "deletionPolicy": ""});
    let cases = [
        (
            Case {
                name: "new default for class with no existing classes",
                operation: "CREATE",
                object: snapshot_class(None, true, "test.csi.io"),
                old: empty.clone(),
                should_admit: true,
                msg: "",
            },
            vec![],
        ),
        (
            Case {
                name: "new default for class for  with existing default class different drivers",
                operation: "CREATE",
                object: snapshot_class(None, true, "test.csi.io"),
                old: empty.clone(),
                should_admit: true,
                msg: "",
            },
            vec![class("", true, "existing.test.csi.io")],
        ),
        (
            Case {
                name: "new default for class with existing default class same driver",
                operation: "CREATE",
                object: snapshot_class(None, true, "test.csi.io"),
                old: empty.clone(),
                should_admit: false,
                msg: "default snapshot class: driver-a already exists for driver: test.csi.io",
            },
            vec![class("driver-a", true, "test.csi.io")],
        ),
        (
            Case {
                name: "default for class with existing default class same driver update",
                operation: "UPDATE",
                object: snapshot_class(None, true, "test.csi.io"),
                old: snapshot_class(None, true, "test.csi.io"),
                should_admit: true,
                msg: "",
            },
            vec![class("", true, "test.csi.io")],
        ),
        (
            Case {
                name: "new snapshot for class with existing default class same driver",
                operation: "CREATE",
                object: snapshot_class(None, false, "test.csi.io"),
                old: empty.clone(),
                should_admit: true,
                msg: "",
            },
            vec![class("", true, "test.csi.io")],
        ),
        (
            Case {
                name: "new snapshot for class with existing default classes",
                operation: "CREATE",
                object: snapshot_class(None, true, "test.csi.io"),
                old: empty.clone(),
                should_admit: false,
                msg: "default snapshot class: driver-is-default already exists for driver: test.csi.io",
            },
            vec![
                class("driver-is-default", true, "test.csi.io"),
                class("", true, "test.csi.io"),
            ],
        ),
        (
            Case {
                name: "update snapshot class to new driver with existing default classes",
                operation: "UPDATE",
                object: snapshot_class(None, true, "driver.test.csi.io"),
                old: snapshot_class(None, true, "test.csi.io"),
                should_admit: false,
                msg: "default snapshot class: driver-test-default already exists for driver: driver.test.csi.io",
            },
            vec![
                class("driver-is-default", true, "test.csi.io"),
                class("driver-test-default", true, "driver.test.csi.io"),
            ],
        ),
    ];
    for (case, existing) in cases {
        run(
            &admitter(existing, vec![]),
            Endpoint::Snapshot,
            ("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses"),
            &case,
        );
    }
}

fn snapshot(pvc: Option<&str>, content: Option<&str>, class: Option<&str>) -> Value {
    let mut source = json!({});
    if let Some(pvc) = pvc {
        source["persistentVolumeClaimName"] = json!(pvc);
    }
    if let Some(content) = content {
        source["volumeSnapshotContentName"] = json!(content);
    }
    let mut spec = json!({ "source": source });
    if let Some(class) = class {
        spec["volumeSnapshotClassName"] = json!(class);
    }
    json!({"metadata": {}, "spec": spec})
}

#[test]
fn test_admit_volume_snapshot_v1() {
    let pvc = Some("pvcname1");
    let content = Some("snapcontent1");
    let mutated = Some("changed-immutable-field");
    let cases = [
        Case {
            name: "Delete: new and old are nil. Should admit",
            operation: "DELETE",
            object: Value::Null,
            old: Value::Null,
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Create: old is nil and new is valid",
            operation: "CREATE",
            object: snapshot(None, content, None),
            old: Value::Null,
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Update: old is valid and new is invalid",
            operation: "UPDATE",
            object: snapshot(None, content, Some("")),
            old: snapshot(None, content, None),
            should_admit: false,
            msg: "~spec.volumeSnapshotClassName: Invalid value: \"\": volumeSnapshotClassName must not be the empty string when set",
        },
        Case {
            name: "Update: old is valid and new is valid",
            operation: "UPDATE",
            object: snapshot(None, content, Some("volume-snapshot-class-1")),
            old: snapshot(None, content, None),
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Update: old is valid and new is valid but changes immutable field spec.source",
            operation: "UPDATE",
            object: snapshot(None, mutated, Some("volume-snapshot-class-1")),
            old: snapshot(None, content, None),
            should_admit: false,
            msg: "~volumeSnapshotContentName is immutable",
        },
        Case {
            // Upstream's message: the claim name "was changed from pvcname1 to <nil>"; CEL's
            // rule for a field that disappears is "required once set".
            name: "Update: old is invalid and new is valid",
            operation: "UPDATE",
            object: snapshot(None, content, None),
            old: snapshot(pvc, content, None),
            should_admit: false,
            msg: "~persistentVolumeClaimName is required once set",
        },
        Case {
            // Unchanged and invalid: the schema's business, and CEL ratchets it.
            name: "Update: old is invalid and new is invalid",
            operation: "UPDATE",
            object: snapshot(pvc, content, None),
            old: snapshot(pvc, content, None),
            should_admit: true,
            msg: "",
        },
        // The CRD's rules that upstream's webhook left to the schema.
        Case {
            name: "Create: both sources",
            operation: "CREATE",
            object: snapshot(pvc, content, None),
            old: Value::Null,
            should_admit: false,
            msg: "spec.source: Invalid value: exactly one of volumeSnapshotContentName and persistentVolumeClaimName must be set",
        },
        Case {
            name: "Create: no source",
            operation: "CREATE",
            object: snapshot(None, None, None),
            old: Value::Null,
            should_admit: false,
            msg: "~exactly one of volumeSnapshotContentName and persistentVolumeClaimName must be set",
        },
        Case {
            name: "Create: empty class name",
            operation: "CREATE",
            object: snapshot(pvc, None, Some("")),
            old: Value::Null,
            should_admit: false,
            msg: "~volumeSnapshotClassName must not be the empty string when set",
        },
    ];
    for case in cases {
        run(
            &admitter(vec![], vec![]),
            Endpoint::Snapshot,
            ("snapshot.storage.k8s.io", "v1", "volumesnapshots"),
            &case,
        );
    }
}

fn content(
    volume_handle: Option<&str>,
    snapshot_handle: Option<&str>,
    ref_name: Option<&str>,
    class: Option<&str>,
) -> Value {
    let mut source = json!({});
    if let Some(h) = volume_handle {
        source["volumeHandle"] = json!(h);
    }
    if let Some(h) = snapshot_handle {
        source["snapshotHandle"] = json!(h);
    }
    let mut reference = json!({"namespace": "default-ns"});
    if let Some(name) = ref_name {
        reference["name"] = json!(name);
    }
    let mut spec = json!({"source": source, "volumeSnapshotRef": reference,
                          "deletionPolicy": "", "driver": ""});
    if let Some(class) = class {
        spec["volumeSnapshotClassName"] = json!(class);
    }
    json!({"metadata": {}, "spec": spec})
}

#[test]
fn test_admit_volume_snapshot_content_v1() {
    let valid = content(
        None,
        Some("snapshotHandle1"),
        Some("snapshot-ref"),
        Some("volume-snapshot-class-1"),
    );
    let invalid = content(Some("volumeHandle1"), Some("snapshotHandle1"), None, None);
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
            msg: "~exactly one of volumeHandle and snapshotHandle must be set",
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
            object: content(None, Some("modified-field"), Some("snapshot-ref"), None),
            old: valid.clone(),
            should_admit: false,
            msg: "spec.source.snapshotHandle: Invalid value: \"modified-field\": snapshotHandle is immutable",
        },
        Case {
            name: "Update: old is invalid and new is valid",
            operation: "UPDATE",
            object: valid.clone(),
            old: invalid.clone(),
            should_admit: false,
            msg: "~volumeHandle is required once set",
        },
        Case {
            // Upstream's webhook refused this again ("both Spec.VolumeSnapshotRef.Name = and
            // ... must be set"); the CRD's rule ratchets an unchanged reference, and we judge
            // as the CRD does.
            name: "Update: old is invalid and new is invalid",
            operation: "UPDATE",
            object: invalid.clone(),
            old: invalid.clone(),
            should_admit: true,
            msg: "",
        },
        Case {
            name: "Create: reference without a name",
            operation: "CREATE",
            object: content(None, Some("h"), None, None),
            old: Value::Null,
            should_admit: false,
            msg: "spec.volumeSnapshotRef: Invalid value: both spec.volumeSnapshotRef.name and spec.volumeSnapshotRef.namespace must be set",
        },
    ];
    for case in cases {
        run(
            &admitter(vec![], vec![]),
            Endpoint::Snapshot,
            ("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents"),
            &case,
        );
    }
}

#[test]
fn source_volume_mode_is_immutable_with_prevent_volume_mode_conversion() {
    let with_mode = |mode: Option<&str>| {
        let mut c = content(None, Some("h"), Some("r"), None);
        if let Some(mode) = mode {
            c["spec"]["sourceVolumeMode"] = json!(mode);
        }
        c
    };
    let resource = ("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents");
    let changed = Case {
        name: "sourceVolumeMode changed",
        operation: "UPDATE",
        object: with_mode(Some("Block")),
        old: with_mode(Some("Filesystem")),
        should_admit: false,
        msg: "spec.sourceVolumeMode: Invalid value: \"Block\": sourceVolumeMode is immutable",
    };
    run(
        &admitter(vec![], vec![]),
        Endpoint::Snapshot,
        resource,
        &changed,
    );
    let removed = Case {
        name: "sourceVolumeMode removed",
        operation: "UPDATE",
        object: with_mode(None),
        old: with_mode(Some("Filesystem")),
        should_admit: false,
        msg: "spec: Invalid value: sourceVolumeMode is required once set",
    };
    run(
        &admitter(vec![], vec![]),
        Endpoint::Snapshot,
        resource,
        &removed,
    );
    // Set for the first time: allowed (a transition rule needs an old value).
    let set = Case {
        name: "sourceVolumeMode set",
        operation: "UPDATE",
        object: with_mode(Some("Block")),
        old: with_mode(None),
        should_admit: true,
        msg: "",
    };
    run(
        &admitter(vec![], vec![]),
        Endpoint::Snapshot,
        resource,
        &set,
    );
    // Without --prevent-volume-mode-conversion the mode may change.
    let mut lenient = admitter(vec![], vec![]);
    lenient.prevent_volume_mode_conversion = false;
    let allowed = Case {
        should_admit: true,
        msg: "",
        ..changed
    };
    run(&lenient, Endpoint::Snapshot, resource, &allowed);
}

#[test]
fn several_violations_are_listed_together() {
    let case = Case {
        name: "two rules broken",
        operation: "CREATE",
        object: content(Some("v"), Some("s"), None, None),
        old: Value::Null,
        should_admit: false,
        msg: "[spec.source: Invalid value: exactly one of volumeHandle and snapshotHandle must be set, spec.volumeSnapshotRef: Invalid value: both spec.volumeSnapshotRef.name and spec.volumeSnapshotRef.namespace must be set]",
    };
    run(
        &admitter(vec![], vec![]),
        Endpoint::Snapshot,
        ("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents"),
        &case,
    );
}
