//! Group cases of ours, for paths no upstream group table reaches: source validation of group
//! snapshots and group contents, the binding patch of a pre-provisioned group content, and a
//! dynamic group snapshot meeting a pre-provisioned group content of its name.

use super::framework::group::*;
use super::framework::*;
use super::groupsnapshot_delete_test::{claims, volumes};
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};

fn both_sources(error: Option<&str>) -> Vec<VolumeGroupSnapshot> {
    vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        Some(postgres()),
        "groupsnapcontent-snapuid1-1",
        "gold",
        "",
        error.map(|_| false),
        None,
        error.and_then(new_volume_error),
        error.is_none(),
        false,
        None,
    )]
}

fn no_source(error: Option<&str>) -> Vec<VolumeGroupSnapshot> {
    vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        None,
        "",
        "gold",
        "",
        error.map(|_| false),
        None,
        error.and_then(new_volume_error),
        error.is_none(),
        false,
        None,
    )]
}

fn preprovisioned(bound: &str, ready: bool) -> Vec<VolumeGroupSnapshot> {
    vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        None,
        "groupsnapcontent-snapuid1-1",
        "gold",
        bound,
        Some(ready),
        None,
        None,
        false,
        false,
        None,
    )]
}

fn preprovisioned_content(uid: &str, class: &str) -> Vec<VolumeGroupSnapshotContent> {
    vec![new_group_snapshot_content(
        "groupsnapcontent-snapuid1-1",
        uid,
        "group-snap-1-1",
        "",
        class,
        &[],
        "group-snapshot-handle",
        "Delete",
        None,
        false,
        true,
    )]
}

const VALIDATION: &str =
    "Exactly one of Selector and VolumeGroupSnapshotContentName should be specified";

#[tokio::test]
async fn group_validation_and_binding() {
    let dynamic = vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        Some(postgres()),
        "",
        "gold",
        "",
        None,
        None,
        None,
        true,
        false,
        None,
    )];
    let pre_provisioned_of_dynamic_name = vec![new_group_snapshot_content(
        "groupsnapcontent-group-snapuid1-1",
        "group-snapuid1-1",
        "group-snap-1-1",
        "",
        "gold",
        &[],
        "group-snapshot-handle",
        "Delete",
        None,
        false,
        true,
    )];
    let cases = vec![
        GroupCase {
            name: "a group snapshot with both a selector and a group content name is invalid",
            initial_group_snapshots: both_sources(None),
            expected_group_snapshots: both_sources(Some(VALIDATION)),
            expected_events: vec!["Warning GroupSnapshotValidationError"],
            ..Default::default()
        },
        GroupCase {
            name: "a group snapshot with neither a selector nor a group content name is invalid",
            initial_group_snapshots: no_source(None),
            expected_group_snapshots: no_source(Some(VALIDATION)),
            expected_events: vec!["Warning GroupSnapshotValidationError"],
            ..Default::default()
        },
        GroupCase {
            name: "a pre-provisioned group content without the group snapshot's UID is bound to it",
            initial_group_snapshots: preprovisioned("", false),
            expected_group_snapshots: preprovisioned("groupsnapcontent-snapuid1-1", true),
            initial_group_contents: preprovisioned_content("", ""),
            expected_group_contents: preprovisioned_content("group-snapuid1-1", "gold"),
            expected_events: vec!["Normal GroupSnapshotReady"],
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "a dynamic group snapshot refuses a pre-provisioned group content of its content's name",
            initial_group_snapshots: dynamic,
            expected_group_snapshots: vec![new_group_snapshot(
                "group-snap-1-1",
                "group-snapuid1-1",
                Some(postgres()),
                "",
                "gold",
                "",
                Some(false),
                None,
                new_volume_error(
                    "VolumeGroupSnapshotContent groupsnapcontent-group-snapuid1-1 is pre-provisioned while expecting a dynamically provisioned one",
                ),
                false,
                false,
                None,
            )],
            initial_group_contents: pre_provisioned_of_dynamic_name.clone(),
            expected_group_contents: pre_provisioned_of_dynamic_name,
            initial_claims: claims(),
            initial_volumes: volumes(),
            expected_events: vec![
                "Warning GroupSnapshotContentMismatch",
                "Warning GroupSnapshotFinalizerError",
            ],
            ..Default::default()
        },
    ];
    run_group_sync_tests(cases, &group_snapshot_classes()).await;
}

#[tokio::test]
async fn group_content_validation() {
    for (name, handles, target) in [
        (
            "neither volume handles nor group snapshot handles",
            &[][..],
            "",
        ),
        (
            "both volume handles and group snapshot handles",
            &["pv-handle"][..],
            "group-handle",
        ),
    ] {
        let content = vec![new_group_snapshot_content(
            "groupsnapcontent-1",
            "group-snapuid1-1",
            "group-snap-1-1",
            "",
            "gold",
            handles,
            target,
            "Delete",
            None,
            false,
            false,
        )];
        let case = GroupCase {
            name,
            initial_group_contents: content.clone(),
            ..Default::default()
        };
        let h = group_harness(&case, &[], &[]);
        let err = h.group.sync_group_content(&content[0]).await.unwrap_err();
        assert_eq!(
            err.message,
            "Exactly one of GroupSnapshotHandles and VolumeHandles should be specified",
            "{name}"
        );
        assert_eq!(
            h.events.lines(),
            vec![format!(
                "Warning GroupContentValidationError {}",
                err.message
            )],
            "{name}"
        );
        assert_eq!(h.reactor.group_contents(), content, "{name}: unchanged");
    }
}
