//! Each check on a clean state and on one that breaks it.

use serde_json::{Value, json};

use super::*;
use crate::DriverCall;

const DRIVER: &str = "d.csi.e2e.k8s.io";

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

fn claim(name: &str, phase: &str) -> k8s_openapi::api::core::v1::PersistentVolumeClaim {
    from(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": {"accessModes": ["ReadWriteOnce"]},
        "status": {"phase": phase},
    }))
}

fn pv(name: &str, handle: &str, claim: &str) -> PersistentVolume {
    from(json!({
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "csi": {"driver": DRIVER, "volumeHandle": handle},
            "claimRef": {"namespace": "ns", "name": claim, "uid": format!("uid-{claim}")},
        },
    }))
}

fn attachment(
    name: &str,
    pv: &str,
    node: &str,
    attached: bool,
) -> k8s_openapi::api::storage::v1::VolumeAttachment {
    from(json!({
        "metadata": {"name": name},
        "spec": {"attacher": DRIVER, "nodeName": node, "source": {"persistentVolumeName": pv}},
        "status": {"attached": attached},
    }))
}

fn call(method: &str, name: &str, response: Value) -> DriverCall {
    DriverCall {
        method: format!("/csi.v1.Controller/{method}"),
        error: String::new(),
        request: json!({"name": name}),
        response,
    }
}

/// Two bound claims with their volumes, attached once, one snapshot with its content, one group
/// snapshot of both claims with its content.
fn clean() -> Observed {
    Observed {
        driver_name: DRIVER.to_string(),
        claims: vec![claim("a", "Bound"), claim("b", "Bound")],
        pvs: vec![pv("pv-a", "4", "a"), pv("pv-b", "5", "b")],
        attachments: vec![attachment("va-a", "pv-a", "n1", true)],
        snapshots: vec![from(json!({
            "metadata": {"name": "s", "namespace": "ns", "uid": "uid-s"},
            "spec": {"source": {"persistentVolumeClaimName": "a"}},
        }))],
        contents: vec![from(json!({
            "metadata": {"name": "c"},
            "spec": {
                "driver": DRIVER, "deletionPolicy": "Delete", "source": {"volumeHandle": "4"},
                "volumeSnapshotRef": {"namespace": "ns", "name": "s", "uid": "uid-s"},
            },
            "status": {"snapshotHandle": "4"},
        }))],
        group_snapshots: vec![from(json!({
            "metadata": {"name": "g", "namespace": "ns", "uid": "uid-g"},
            "spec": {"source": {"selector": {"matchLabels": {"group": "g"}}}},
        }))],
        group_contents: vec![from(json!({
            "metadata": {"name": "gc"},
            "spec": {
                "driver": DRIVER, "deletionPolicy": "Delete",
                "source": {"volumeHandles": ["4", "5"]},
                "volumeGroupSnapshotRef": {"namespace": "ns", "name": "g", "uid": "uid-g"},
            },
        }))],
        driver_volumes: vec![("4".into(), "pvc-a".into()), ("5".into(), "pvc-b".into())],
        driver_snapshots: vec!["4".into()],
        calls: vec![
            call(
                "CreateVolume",
                "pvc-a",
                json!({"volume": {"volume_id": "4"}}),
            ),
            call(
                "CreateVolume",
                "pvc-a",
                json!({"volume": {"volume_id": "4"}}),
            ),
            call(
                "CreateVolume",
                "pvc-b",
                json!({"volume": {"volume_id": "5"}}),
            ),
            call(
                "CreateSnapshot",
                "snap",
                json!({"snapshot": {"snapshot_id": "4"}}),
            ),
            call(
                "CreateVolumeGroupSnapshot",
                "groupsnapshot-uid-g",
                json!({"group_snapshot": {"group_snapshot_id": "g1"}}),
            ),
        ],
        ..Observed::default()
    }
}

/// The violations of the one check `name`, all others clean.
fn only(observed: &Observed, name: &str) -> Vec<String> {
    let report = evaluate(observed);
    for c in &report.checks {
        if c.name != name {
            assert!(c.violations.is_empty(), "{}: {:?}", c.name, c.violations);
        }
    }
    report
        .check(name)
        .expect("the check ran")
        .violations
        .clone()
}

#[test]
fn a_clean_state_passes_every_check_with_counts() {
    let report = evaluate(&clean());
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.checks.len(), super::super::CHECKS.len());
    let counts: Vec<(&str, usize)> = report.checks.iter().map(|c| (c.name, c.checked)).collect();
    assert_eq!(
        counts,
        vec![
            (CLAIMS, 2),
            (VOLUMES_HAVE_PVS, 2),
            (PVS_HAVE_VOLUMES, 2),
            (ATTACHMENTS, 1),
            (SNAPSHOT_CONTENTS, 1),
            (GROUP_SNAPSHOT_CONTENTS, 1),
            (DRIVER_SNAPSHOTS, 1),
            (FINALIZERS, 9),
            (CREATED_ONCE, 6),
        ]
    );
}

#[test]
fn a_pending_claim_needs_a_warning_event() {
    let mut observed = clean();
    observed.claims.push(claim("c", "Pending"));
    assert_eq!(
        only(&observed, CLAIMS),
        vec![r#"claim ns/c is "Pending" without a Warning Event"#]
    );
    observed.events.push(from(json!({
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {"kind": "PersistentVolumeClaim", "namespace": "ns", "name": "c"},
        "type": "Warning", "reason": "ProvisioningFailed",
    })));
    assert!(only(&observed, CLAIMS).is_empty());
    observed.claims.push(claim("d", "Lost"));
    assert_eq!(only(&observed, CLAIMS).len(), 1);
}

#[test]
fn a_leaked_volume_and_a_pv_without_volume() {
    let mut observed = clean();
    observed
        .driver_volumes
        .push(("6".into(), "pvc-gone".into()));
    assert_eq!(
        only(&observed, VOLUMES_HAVE_PVS),
        vec!["volume 6 (pvc-gone) in the driver has no PV"]
    );
    let mut observed = clean();
    observed.driver_volumes.pop();
    assert_eq!(
        only(&observed, PVS_HAVE_VOLUMES),
        vec![r#"PV pv-b has volume "5", which the driver does not have"#]
    );
}

#[test]
fn pvs_of_other_drivers_are_not_ours() {
    let mut observed = clean();
    let mut other = pv("pv-x", "9", "x");
    other.spec.as_mut().unwrap().csi.as_mut().unwrap().driver = "other".into();
    observed.pvs.push(other);
    assert!(evaluate(&observed).is_clean());
}

#[test]
fn attachments_twice_and_on_two_nodes() {
    let mut observed = clean();
    observed
        .attachments
        .push(attachment("va-a2", "pv-a", "n1", false));
    assert_eq!(only(&observed, ATTACHMENTS).len(), 1);
    let mut observed = clean();
    observed
        .attachments
        .push(attachment("va-a3", "pv-a", "n2", true));
    assert_eq!(
        only(&observed, ATTACHMENTS),
        vec![r#"single-node volume pv-a attached to 2 nodes: {"n1", "n2"}"#]
    );
    // A multi-node volume may be attached to two nodes.
    observed.pvs[0].spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteMany".into()]);
    assert!(only(&observed, ATTACHMENTS).is_empty());
}

#[test]
fn a_content_outliving_its_snapshot_and_a_snapshot_without_content() {
    let mut observed = clean();
    observed.snapshots.clear();
    assert_eq!(only(&observed, SNAPSHOT_CONTENTS).len(), 1);
    // Retain keeps it on purpose.
    observed.contents[0].spec.deletion_policy = "Retain".into();
    assert!(only(&observed, SNAPSHOT_CONTENTS).is_empty());
    let mut observed = clean();
    observed.driver_snapshots.push("7".into());
    assert_eq!(
        only(&observed, DRIVER_SNAPSHOTS),
        vec!["snapshot 7 in the driver has no VolumeSnapshotContent"]
    );
}

#[test]
fn a_group_content_outliving_its_group_snapshot() {
    let mut observed = clean();
    observed.group_snapshots.clear();
    assert_eq!(
        only(&observed, GROUP_SNAPSHOT_CONTENTS),
        vec!["VolumeGroupSnapshotContent gc (Delete) outlives its VolumeGroupSnapshot ns/g"]
    );
    // A group snapshot of the same name made again is another object.
    let mut observed = clean();
    observed.group_snapshots[0].metadata.uid = Some("uid-g2".into());
    assert_eq!(only(&observed, GROUP_SNAPSHOT_CONTENTS).len(), 1);
    // Retain keeps it on purpose; another driver's content is not ours.
    let mut observed = clean();
    observed.group_snapshots.clear();
    observed.group_contents[0].spec.deletion_policy = "Retain".into();
    assert!(only(&observed, GROUP_SNAPSHOT_CONTENTS).is_empty());
    observed.group_contents[0].spec.deletion_policy = "Delete".into();
    observed.group_contents[0].spec.driver = "other".into();
    assert!(evaluate(&observed).is_clean());
    // A group snapshot name answered with two group IDs.
    let mut observed = clean();
    observed.calls.push(call(
        "CreateVolumeGroupSnapshot",
        "groupsnapshot-uid-g",
        json!({"group_snapshot": {"group_snapshot_id": "g2"}}),
    ));
    assert_eq!(
        only(&observed, CREATED_ONCE),
        vec![r#"CreateVolumeGroupSnapshot "groupsnapshot-uid-g" answered 2 IDs: {"g1", "g2"}"#]
    );
}

#[test]
fn terminating_objects_are_reported_with_their_finalizers() {
    let mut observed = clean();
    observed.pvs[1].metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
    observed.pvs[1].metadata.finalizers = Some(vec!["f".into()]);
    assert_eq!(
        only(&observed, FINALIZERS),
        vec![r#"PV pv-b is still terminating with finalizers ["f"]"#]
    );
    let mut observed = clean();
    observed.group_contents[0].metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
    observed.group_contents[0].metadata.finalizers = Some(vec![
        "groupsnapshot.storage.kubernetes.io/volumegroupsnapshotcontent-bound-protection".into(),
    ]);
    assert_eq!(
        only(&observed, FINALIZERS),
        vec![
            r#"VolumeGroupSnapshotContent gc is still terminating with finalizers ["groupsnapshot.storage.kubernetes.io/volumegroupsnapshotcontent-bound-protection"]"#
        ]
    );
}

#[test]
fn a_name_created_twice_and_two_pvs_for_one_claim() {
    let mut observed = clean();
    observed.calls.push(call(
        "CreateVolume",
        "pvc-a",
        json!({"volume": {"volume_id": "8"}}),
    ));
    assert_eq!(
        only(&observed, CREATED_ONCE),
        vec![r#"CreateVolume "pvc-a" answered 2 IDs: {"4", "8"}"#]
    );
    let mut observed = clean();
    observed.pvs.push(pv("pv-a2", "4", "a"));
    let violations = evaluate(&observed)
        .check(CREATED_ONCE)
        .unwrap()
        .violations
        .clone();
    assert_eq!(
        violations,
        vec![r#"claim ns/a (uid-a) has 2 PVs: ["pv-a", "pv-a2"]"#]
    );
    let mut observed = clean();
    observed.driver_volumes.push(("9".into(), "pvc-a".into()));
    let violations = evaluate(&observed)
        .check(CREATED_ONCE)
        .unwrap()
        .violations
        .clone();
    assert_eq!(
        violations,
        vec![r#"the driver has 2 volumes named "pvc-a": ["4", "9"]"#]
    );
}

#[test]
fn reports_add_up_and_print() {
    let mut total = evaluate(&clean());
    let mut broken = clean();
    broken.driver_volumes.push(("6".into(), "pvc-gone".into()));
    total.add(&evaluate(&broken));
    assert_eq!(total.check(CLAIMS).unwrap().checked, 4);
    assert_eq!(
        total.violations(),
        vec!["volumes-have-pvs: volume 6 (pvc-gone) in the driver has no PV"]
    );
    let text = total.to_string();
    assert!(
        text.contains("volumes-have-pvs             5 checked  VIOLATED"),
        "{text}"
    );
    let markdown = total.to_markdown();
    assert!(markdown.contains("| claims | 4 | 0 |"), "{markdown}");
    assert!(
        markdown.contains("| volumes-have-pvs | 5 | **1**: volume 6"),
        "{markdown}"
    );
    assert!(total.ensure_clean().is_err());
}
