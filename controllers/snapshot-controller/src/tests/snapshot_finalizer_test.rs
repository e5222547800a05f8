//! upstream's `pkg/common-controller/snapshot_finalizer_test.go` `TestSnapshotFinalizer`, case for case (translated from the
//! Go table; where a message comes from upstream's fake API server, ours says the same).

use super::framework::*;
#[allow(unused_imports)]
use csi_snapshot_utils as utils;

#[tokio::test]
async fn snapshot_finalizer() {
    let cases = vec![
        Case {
            name: "1-1 - successful add PVC finalizer",
            initial_snapshots: new_snapshot_array(
                "snap6-2",
                "snapuid6-2",
                "claim6-2",
                "",
                "silver",
                "",
                Some(false),
                None,
                None,
                None,
                false,
                true,
                None,
            ),
            initial_claims: new_claim_array(
                "claim6-2",
                "pvc-uid6-2",
                "1Gi",
                "volume6-2",
                "Bound",
                Some(""),
            ),
            test: TestFn::AddPvcFinalizer,
            expect_success: true,
            ..Case::default()
        },
        Case {
            name: "1-2 - won't add PVC finalizer; already added",
            initial_snapshots: new_snapshot_array(
                "snap6-2",
                "snapuid6-2",
                "claim6-2",
                "",
                "silver",
                "",
                Some(false),
                None,
                None,
                None,
                false,
                true,
                None,
            ),
            initial_claims: new_claim_array_finalizer(
                "claim6-2",
                "pvc-uid6-2",
                "1Gi",
                "volume6-2",
                "Bound",
                Some(""),
            ),
            test: TestFn::AddPvcFinalizer,
            expect_success: false,
            ..Case::default()
        },
        Case {
            name: "1-3 - successful remove PVC finalizer",
            initial_snapshots: new_snapshot_array(
                "snap6-2",
                "snapuid6-2",
                "claim6-2",
                "",
                "silver",
                "",
                Some(false),
                None,
                None,
                None,
                false,
                true,
                None,
            ),
            initial_claims: new_claim_array_finalizer(
                "claim6-2",
                "pvc-uid6-2",
                "1Gi",
                "volume6-2",
                "Bound",
                Some(""),
            ),
            test: TestFn::RemovePvcFinalizer,
            expect_success: true,
            ..Case::default()
        },
        Case {
            name: "1-4 - won't remove PVC finalizer; already removed",
            initial_snapshots: new_snapshot_array(
                "snap6-2",
                "snapuid6-2",
                "claim6-2",
                "",
                "silver",
                "",
                Some(false),
                None,
                None,
                None,
                false,
                true,
                None,
            ),
            initial_claims: new_claim_array(
                "claim6-2",
                "pvc-uid6-2",
                "1Gi",
                "volume6-2",
                "Bound",
                Some(""),
            ),
            test: TestFn::RemovePvcFinalizer,
            expect_success: false,
            ..Case::default()
        },
        Case {
            name: "1-5 - won't remove PVC finalizer; PVC in-use",
            initial_snapshots: new_snapshot_array(
                "snap6-2",
                "snapuid6-2",
                "claim6-2",
                "",
                "silver",
                "",
                Some(false),
                None,
                None,
                None,
                false,
                true,
                None,
            ),
            initial_claims: new_claim_array(
                "claim6-2",
                "pvc-uid6-2",
                "1Gi",
                "volume6-2",
                "Bound",
                Some(""),
            ),
            test: TestFn::RemovePvcFinalizer,
            expect_success: false,
            ..Case::default()
        },
        Case {
            name: "2-1 - successful add Snapshot finalizer",
            initial_snapshots: new_snapshot_array(
                "snap6-2",
                "snapuid6-2",
                "claim6-2",
                "",
                "silver",
                "",
                Some(false),
                None,
                None,
                None,
                false,
                false,
                None,
            ),
            initial_claims: new_claim_array(
                "claim6-2",
                "pvc-uid6-2",
                "1Gi",
                "volume6-2",
                "Bound",
                Some(""),
            ),
            test: TestFn::AddSnapshotFinalizer,
            expect_success: true,
            ..Case::default()
        },
        Case {
            name: "2-2 - successful add single Snapshot finalizer with patch",
            initial_snapshots: with_snapshot_finalizers(
                new_snapshot_array(
                    "snap6-2",
                    "snapuid6-2",
                    "claim6-2",
                    "",
                    "silver",
                    "",
                    Some(false),
                    None,
                    None,
                    None,
                    false,
                    false,
                    None,
                ),
                utils::VOLUME_SNAPSHOT_BOUND_FINALIZER,
            ),
            initial_claims: new_claim_array(
                "claim6-2",
                "pvc-uid6-2",
                "1Gi",
                "volume6-2",
                "Bound",
                Some(""),
            ),
            test: TestFn::AddSingleSnapshotFinalizer,
            expect_success: true,
            ..Case::default()
        },
        Case {
            name: "2-3 - successful remove Snapshot finalizer",
            initial_snapshots: new_snapshot_array(
                "snap6-2",
                "snapuid6-2",
                "claim6-2",
                "",
                "silver",
                "",
                Some(false),
                None,
                None,
                None,
                false,
                true,
                None,
            ),
            initial_claims: new_claim_array(
                "claim6-2",
                "pvc-uid6-2",
                "1Gi",
                "volume6-2",
                "Bound",
                Some(""),
            ),
            test: TestFn::RemoveSnapshotFinalizer,
            expect_success: true,
            ..Case::default()
        },
    ];
    run_finalizer_tests(cases, &snapshot_classes()).await;
}

/// Ours: the cached claim is older than the server's (our own previous write has not reached
/// the cache yet). The finalizer is added to the claim read afresh, with no error and no
/// Warning; upstream fails the sync on the conflict and records one.
#[tokio::test]
async fn add_pvc_finalizer_with_a_stale_cached_claim() {
    let case = Case {
        name: "add PVC finalizer, cache behind the server",
        initial_snapshots: new_snapshot_array(
            "snap6-2",
            "snapuid6-2",
            "claim6-2",
            "",
            "silver",
            "",
            Some(false),
            None,
            None,
            None,
            false,
            true,
            None,
        ),
        initial_claims: new_claim_array(
            "claim6-2",
            "pvc-uid6-2",
            "1Gi",
            "volume6-2",
            "Bound",
            Some(""),
        ),
        ..Case::default()
    };
    let h = harness(&case, &snapshot_classes());
    let mut newer = case.initial_claims[0].clone();
    newer.metadata.resource_version = Some("7".into());
    newer.metadata.labels = Some(map(&[("written", "by someone else")]));
    h.reactor.put_claim(newer);
    h.ctrl
        .ensure_pvc_finalizer(&case.initial_snapshots[0])
        .await
        .expect("the finalizer is added to the fresh claim");
    let claim = h.reactor.claims().remove(0);
    assert_eq!(
        claim.metadata.finalizers.as_deref(),
        Some(&[utils::PVC_FINALIZER.to_string()][..])
    );
    assert_eq!(
        claim.metadata.labels,
        Some(map(&[("written", "by someone else")]))
    );
    assert!(h.events.all().is_empty());
}
