//! upstream's `pkg/common-controller/groupsnapshot_create_test.go` `TestCreateGroupSnapshotSync`,
//! case for case.

use super::framework::group::*;
use super::framework::*;

fn claims(class: &str) -> Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim> {
    with_claim_labels(
        new_claim_couple_array(
            "claim1-1",
            "pvc-uid6-1",
            "1Gi",
            "volume6-1",
            "Bound",
            Some(class),
        ),
        postgres(),
    )
}

fn volumes(class: &str) -> Vec<k8s_openapi::api::core::v1::PersistentVolume> {
    new_volume_couple_array(
        "volume6-1",
        "pv-uid6-1",
        "pv-handle6-1",
        "1Gi",
        "pvc-uid6-1",
        "claim1-1",
        "Bound",
        "Delete",
        class,
    )
}

fn one_claim(phase: &str, volume: &str) -> Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim> {
    with_claim_labels(
        new_claim_array("claim1-1", "pvc-uid6-1", "1Gi", volume, phase, Some("gold")),
        postgres(),
    )
}

fn one_volume() -> Vec<k8s_openapi::api::core::v1::PersistentVolume> {
    new_volume_array(
        "volume6-1",
        "pv-uid6-1",
        "pv-handle6-1",
        "1Gi",
        "pvc-uid6-1",
        "claim1-1",
        "Bound",
        "Delete",
        "gold",
    )
}

/// A dynamic group snapshot of the postgres claims with `class`, not yet synced.
fn dynamic_new(class: &str) -> Vec<csi_crd_types::group_snapshot::v1::VolumeGroupSnapshot> {
    vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        Some(postgres()),
        "",
        class,
        "",
        None,
        None,
        None,
        true,
        false,
        None,
    )]
}

/// The same after a failed sync: `readyToUse: false` and `message` as its error.
fn dynamic_failed(
    class: &str,
    message: &str,
) -> Vec<csi_crd_types::group_snapshot::v1::VolumeGroupSnapshot> {
    vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        Some(postgres()),
        "",
        class,
        "",
        Some(false),
        None,
        new_volume_error(message),
        false,
        false,
        None,
    )]
}

fn preprovisioned(
    bound: &str,
    ready: bool,
    error: Option<&str>,
) -> Vec<csi_crd_types::group_snapshot::v1::VolumeGroupSnapshot> {
    vec![new_group_snapshot(
        "group-snap-1-1",
        "group-snapuid1-1",
        None,
        "groupsnapcontent-snapuid1-1",
        "gold",
        bound,
        Some(ready),
        None,
        error.and_then(new_volume_error),
        false,
        false,
        None,
    )]
}

fn preprovisioned_content(
    group_name: &str,
    target_handle: &str,
    with_status: bool,
) -> Vec<csi_crd_types::group_snapshot::v1::VolumeGroupSnapshotContent> {
    vec![new_group_snapshot_content(
        "groupsnapcontent-snapuid1-1",
        "group-snapuid1-1",
        group_name,
        "",
        "gold",
        &[],
        target_handle,
        "Delete",
        None,
        false,
        with_status,
    )]
}

#[tokio::test]
async fn create_group_snapshot_sync() {
    let cases = vec![
        GroupCase {
            name: "1-1 - successful dynamically-provisioned create group snapshot with group snapshot class gold",
            initial_group_snapshots: dynamic_new("gold"),
            expected_group_snapshots: vec![new_group_snapshot(
                "group-snap-1-1",
                "group-snapuid1-1",
                Some(postgres()),
                "",
                "gold",
                "groupsnapcontent-group-snapuid1-1",
                Some(false),
                None,
                None,
                false,
                false,
                None,
            )],
            expected_group_contents: vec![new_group_snapshot_content(
                "groupsnapcontent-group-snapuid1-1",
                "group-snapuid1-1",
                "group-snap-1-1",
                "group-snapshot-handle",
                "gold",
                &["1-pv-handle6-1", "2-pv-handle6-1"],
                "",
                "Delete",
                None,
                false,
                false,
            )],
            initial_claims: claims("gold"),
            initial_volumes: volumes("gold"),
            expected_events: vec!["Normal CreatingGroupSnapshot"],
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "1-2 - unsuccessful create group snapshot with no existent group snapshot class",
            initial_group_snapshots: dynamic_new("non-existing"),
            expected_group_snapshots: dynamic_failed(
                "non-existing",
                r#"failed to create group snapshot content with error failed to get input parameters to create group snapshot group-snap-1-1: "volumegroupsnapshotclass.groupsnapshot.storage.k8s.io \"non-existing\" not found""#,
            ),
            initial_claims: claims("gold"),
            initial_volumes: volumes("gold"),
            expected_events: vec!["Warning GroupSnapshotContentCreationFailed"],
            ..Default::default()
        },
        GroupCase {
            name: "1-3 - fail to create group snapshot without group snapshot class",
            initial_group_snapshots: dynamic_new(""),
            expected_group_snapshots: dynamic_failed(
                "",
                r#"failed to create group snapshot content with error failed to get input parameters to create group snapshot group-snap-1-1: "failed to take group snapshot group-snap-1-1 without a group snapshot class""#,
            ),
            initial_claims: claims("gold"),
            initial_volumes: volumes("gold"),
            ..Default::default()
        },
        GroupCase {
            name: "1-4 - fail to create group snapshot with no existing volumes",
            initial_group_snapshots: dynamic_new("gold"),
            expected_group_snapshots: dynamic_failed(
                "gold",
                r#"failed to create group snapshot content with error failed to get input parameters to create group snapshot group-snap-1-1: "label selector app.kubernetes.io/name=postgresql for group snapshot not applied to any PVC""#,
            ),
            ..Default::default()
        },
        GroupCase {
            name: "1-5 - fail to create group snapshot with volumes that are not bound",
            initial_group_snapshots: dynamic_new("gold"),
            expected_group_snapshots: dynamic_failed(
                "gold",
                r#"failed to create group snapshot content with error failed to get input parameters to create group snapshot group-snap-1-1: "the PVC claim1-1 is not yet bound to a PV, will not attempt to take a group snapshot""#,
            ),
            initial_claims: one_claim("Pending", ""),
            ..Default::default()
        },
        GroupCase {
            name: "1-6 - fail to create group snapshot with volumes that are not created by a CSI driver",
            initial_group_snapshots: dynamic_new("gold"),
            expected_group_snapshots: dynamic_failed(
                "gold",
                "failed to create group snapshot content with error cannot snapshot a non-CSI volume for group snapshot default/group-snap-1-1: volume6-1",
            ),
            initial_claims: one_claim("Bound", "volume6-1"),
            initial_volumes: with_volumes_local_path(one_volume(), "/test"),
            expected_events: vec![
                "Warning CreateGroupSnapshotContentFailed Cannot snapshot a non-CSI volume: volume6-1",
                "Warning GroupSnapshotContentCreationFailed",
            ],
            ..Default::default()
        },
        GroupCase {
            name: "1-7 - fail to create group snapshot with volumes that are created by a different CSI driver",
            initial_group_snapshots: dynamic_new("gold"),
            expected_group_snapshots: dynamic_failed(
                "gold",
                "failed to create group snapshot content with error snapshot controller failed to update default/group-snap-1-1 on API server: Volume CSI driver (test.csi.driver.name) mismatch with VolumeGroupSnapshotClass (csi-mock-plugin) default/group-snap-1-1: volume6-1",
            ),
            initial_claims: one_claim("Bound", "volume6-1"),
            initial_volumes: with_volumes_csi_driver_name(one_volume(), "test.csi.driver.name"),
            ..Default::default()
        },
        GroupCase {
            name: "1-8 - successful pre-provisioned group snapshot",
            initial_group_snapshots: preprovisioned("", false, None),
            expected_group_snapshots: preprovisioned("groupsnapcontent-snapuid1-1", true, None),
            initial_group_contents: preprovisioned_content(
                "group-snap-1-1",
                "group-snapshot-handle",
                true,
            ),
            expected_group_contents: preprovisioned_content(
                "group-snap-1-1",
                "group-snapshot-handle",
                true,
            ),
            initial_claims: claims("gold"),
            initial_volumes: volumes("gold"),
            expected_events: vec![
                "Normal GroupSnapshotReady GroupSnapshot default/group-snap-1-1 is ready to use.",
            ],
            expect_success: true,
            ..Default::default()
        },
        GroupCase {
            name: "1-9 - unsuccessful pre-provisioned group snapshot (no content)",
            initial_group_snapshots: preprovisioned("", false, None),
            expected_group_snapshots: preprovisioned(
                "",
                false,
                Some("VolumeGroupSnapshotContent is missing"),
            ),
            initial_claims: one_claim("Bound", "volume6-1"),
            expected_events: vec!["Warning GroupSnapshotContentMissing"],
            ..Default::default()
        },
        GroupCase {
            name: "1-10 - unsuccessful pre-provisioned group snapshot (wrong back-ref)",
            initial_group_snapshots: preprovisioned("", false, None),
            expected_group_snapshots: preprovisioned(
                "",
                false,
                Some(
                    "VolumeGroupSnapshotContent [groupsnapcontent-snapuid1-1] is bound to a different group snapshot",
                ),
            ),
            initial_group_contents: preprovisioned_content(
                "group-wrong-snap-1-1",
                "group-snapshot-handle",
                true,
            ),
            expected_group_contents: preprovisioned_content(
                "group-wrong-snap-1-1",
                "group-snapshot-handle",
                true,
            ),
            initial_claims: claims("gold"),
            initial_volumes: volumes("gold"),
            expected_events: vec![
                "Warning GroupSnapshotContentMisbound",
                "Warning GroupSnapshotFinalizerError",
            ],
            ..Default::default()
        },
        GroupCase {
            name: "1-11 - mismatch between pre-provisioned group snapshot and dynamically provisioned group snapshot content",
            initial_group_snapshots: preprovisioned("", false, None),
            expected_group_snapshots: preprovisioned(
                "",
                false,
                Some(
                    "VolumeGroupSnapshotContent is dynamically provisioned while expecting a pre-provisioned one",
                ),
            ),
            initial_group_contents: preprovisioned_content("group-snap-1-1", "", false),
            expected_group_contents: preprovisioned_content("group-snap-1-1", "", false),
            initial_claims: claims("gold"),
            initial_volumes: volumes("gold"),
            expected_events: vec!["Warning GroupSnapshotContentMismatch"],
            ..Default::default()
        },
    ];
    run_group_sync_tests(cases, &group_snapshot_classes()).await;
}
