//! Property tests of expansion with arbitrary sizes on the claim (spec, status, allocated
//! resources, resize status: any quantity strings) and the PV, and whatever the driver answers
//! to ControllerExpandVolume (any capacity, node expansion or not, any gRPC status): two syncs
//! of the claim finish with a result or an error, never a panic, and an error reads cleanly.

use csi_proto::csi::v1::ControllerExpandVolumeResponse;
use csi_test_support::fuzz::config;
use proptest::prelude::*;
use tonic::{Code, Status};

use super::fakes::{FakeCluster, FakeDriver, NS, create_pv, get_test_pvc, lock, setup};
use crate::resize::csi::CsiError;

fn quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[0-9]{1,3}(Ki|Mi|Gi|Ti|k|M|G|m|)",
        "[-+]?[0-9]{0,22}(\\.[0-9]{0,6})?([eE][-+]?[0-9]{1,3})?",
        any::<String>(),
    ]
}

fn answer() -> impl Strategy<Value = Result<ControllerExpandVolumeResponse, CsiError>> {
    prop_oneof![
        3 => (
            prop_oneof![any::<i64>(), 0i64..(8 << 30), Just(0i64), Just(i64::MAX), Just(i64::MIN)],
            any::<bool>(),
        )
            .prop_map(|(capacity_bytes, node_expansion_required)| Ok(ControllerExpandVolumeResponse {
                capacity_bytes,
                node_expansion_required,
            })),
        1 => (0i32..17, any::<String>())
            .prop_map(|(code, message)| Err(CsiError::Status(Status::new(Code::from(code), message)))),
    ]
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn expansion_with_any_sizes_and_answers_never_panics(
        spec in quantity(),
        status in quantity(),
        allocated in quantity(),
        resize_status in prop_oneof![
            Just(String::new()),
            Just("ControllerResizeInProgress".to_string()),
            Just("ControllerResizeInfeasible".to_string()),
            Just("NodeResizePending".to_string()),
            Just("NodeResizeInProgress".to_string()),
            Just("NodeResizeInfeasible".to_string()),
            any::<String>(),
        ],
        pv_gib in 0i64..4,
        block in any::<bool>(),
        node_resize in any::<bool>(),
        answer in answer(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let driver = FakeDriver::new(node_resize, true, true, true);
            *lock(&driver.expand_answer) = Some(answer);
            let cluster = FakeCluster::new();
            let claim = get_test_pvc("testPV", &spec, &status, &allocated, &resize_status);
            let pv = create_pv(
                pv_gib,
                "claim01",
                NS,
                "test-uid",
                if block { "Block" } else { "Filesystem" },
            );
            cluster.add_claim(claim.clone());
            cluster.add_volume(pv);
            let s = setup("foo", driver.clone(), cluster.clone()).await;
            let key = csi_kube::key_of(&claim);
            for _ in 0..2 {
                if let Err(err) = s.reconciler.sync_pvc(&key).await {
                    prop_assert!(!err.to_string().is_empty());
                }
            }
            Ok(())
        })?;
    }
}
