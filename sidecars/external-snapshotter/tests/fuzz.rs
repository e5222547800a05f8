//! Property tests of the snapshot calls with the in-process mock driver answering arbitrary
//! CreateSnapshot, ListSnapshots and CreateVolumeGroupSnapshot responses (missing snapshots,
//! timestamps at and past the edges of time, negative sizes, any IDs, any status): what the
//! sidecar reads is what the driver said (a timestamp as protobuf's `AsTime().UnixNano()`,
//! saturating) or a clean error, never a panic.

use std::collections::HashMap;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection};
use csi_proto::csi::v1 as csi;
use csi_proto::csi::v1::controller_service_capability::rpc::Type as Rpc;
use csi_test_support::MockCsiDriver;
use csi_test_support::fuzz::config;
use external_snapshotter::group_snapshotter::{CsiGroupSnapshotter, GroupSnapshotter};
use external_snapshotter::snapshotter::{CsiSnapshotter, Snapshotter, timestamp_nanos};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tonic::{Code, Status};

const TIMEOUT: Duration = Duration::from_secs(10);

fn status() -> impl Strategy<Value = Status> {
    (1i32..17, any::<String>()).prop_map(|(code, message)| Status::new(Code::from(code), message))
}

fn timestamp() -> impl Strategy<Value = prost_types::Timestamp> {
    (
        prop_oneof![any::<i64>(), -1_000_000_000_000i64..1_000_000_000_000],
        prop_oneof![any::<i32>(), 0i32..1_000_000_000],
    )
        .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos })
}

fn snapshot() -> impl Strategy<Value = csi::Snapshot> {
    (
        any::<i64>(),
        any::<String>(),
        any::<String>(),
        proptest::option::of(timestamp()),
        any::<bool>(),
        any::<String>(),
    )
        .prop_map(
            |(size_bytes, snapshot_id, source_volume_id, creation_time, ready_to_use, group)| {
                csi::Snapshot {
                    size_bytes,
                    snapshot_id,
                    source_volume_id,
                    creation_time,
                    ready_to_use,
                    group_snapshot_id: group,
                    accessible_topology: Vec::new(),
                }
            },
        )
}

fn expected_nanos(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| {
        let total = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    })
}

#[test]
fn fuzz_snapshot_responses() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mock, connection) = runtime.block_on(async {
        let mock = MockCsiDriver::start().await.expect("the mock driver");
        mock.set_driver_name("fuzz.csi.io");
        let connection = Connection::connect(&mock.endpoint(), ConnectOptions::default())
            .await
            .expect("connected");
        (mock, connection)
    });
    let snapshotter = CsiSnapshotter::new(connection.clone());
    let groups = CsiGroupSnapshotter::new(connection);
    let create = prop_oneof![
        4 => proptest::option::of(snapshot())
            .prop_map(|snapshot| Ok(csi::CreateSnapshotResponse { snapshot })),
        1 => status().prop_map(Err),
    ];
    let list = prop_oneof![
        4 => proptest::collection::vec(proptest::option::of(snapshot()), 0..3).prop_map(|entries| {
            Ok(csi::ListSnapshotsResponse {
                entries: entries
                    .into_iter()
                    .map(|snapshot| csi::list_snapshots_response::Entry { snapshot })
                    .collect(),
                next_token: String::new(),
            })
        }),
        1 => status().prop_map(Err),
    ];
    let group = prop_oneof![
        4 => proptest::option::of((
            proptest::collection::vec(snapshot(), 0..3),
            any::<String>(),
            proptest::option::of(timestamp()),
            any::<bool>(),
        ))
        .prop_map(|group| Ok(csi::CreateVolumeGroupSnapshotResponse {
            group_snapshot: group.map(|(snapshots, id, creation_time, ready_to_use)| {
                csi::VolumeGroupSnapshot {
                    group_snapshot_id: id,
                    snapshots,
                    creation_time,
                    ready_to_use,
                }
            }),
        })),
        1 => status().prop_map(Err),
    ];
    let list_supported = any::<bool>();
    TestRunner::new(config(48))
        .run(
            &(create, list, group, list_supported),
            |(create, list, group, supported)| {
                let answer = create.clone();
                mock.handle("CreateSnapshot", move |_: csi::CreateSnapshotRequest| {
                    answer.clone()
                });
                let got = runtime.block_on(snapshotter.create_snapshot(
                    "snapshot-1",
                    "volume-1",
                    HashMap::new(),
                    HashMap::new(),
                    TIMEOUT,
                ));
                match (&create, got) {
                    (Ok(response), Ok(created)) => {
                        let s = response.snapshot.clone().unwrap_or_default();
                        prop_assert_eq!(created.snapshot_id, s.snapshot_id);
                        prop_assert_eq!(created.size, s.size_bytes);
                        prop_assert_eq!(created.ready_to_use, s.ready_to_use);
                        prop_assert_eq!(
                            created.creation_time,
                            Some(expected_nanos(s.creation_time.as_ref()))
                        );
                        prop_assert_eq!(created.driver_name, "fuzz.csi.io");
                    }
                    (Err(status), Err(err)) => {
                        prop_assert!(err.to_string().contains(status.message()));
                    }
                    (want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
                }

                mock.set_controller_capabilities(if supported {
                    vec![Rpc::ListSnapshots]
                } else {
                    vec![]
                });
                let answer = list.clone();
                mock.handle("ListSnapshots", move |_: csi::ListSnapshotsRequest| {
                    answer.clone()
                });
                let got = runtime.block_on(snapshotter.get_snapshot_status(
                    "snapshot-1",
                    HashMap::new(),
                    TIMEOUT,
                ));
                match (supported, &list, got) {
                    (false, _, Ok(status)) => prop_assert!(status.ready_to_use),
                    (true, Ok(response), Ok(status)) => {
                        let first = response.entries[0].snapshot.clone().unwrap_or_default();
                        prop_assert_eq!(status.size, first.size_bytes);
                        prop_assert_eq!(
                            status.creation_time,
                            Some(expected_nanos(first.creation_time.as_ref()))
                        );
                    }
                    (true, Ok(response), Err(err)) => {
                        prop_assert!(response.entries.is_empty(), "{err}");
                    }
                    (true, Err(_), Err(err)) => prop_assert!(!err.to_string().is_empty()),
                    (_, want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
                }

                let answer = group.clone();
                mock.handle(
                    "CreateVolumeGroupSnapshot",
                    move |_: csi::CreateVolumeGroupSnapshotRequest| answer.clone(),
                );
                let got = runtime.block_on(groups.create_group_snapshot(
                    "group-1",
                    vec!["volume-1".into(), "volume-2".into()],
                    HashMap::new(),
                    HashMap::new(),
                    TIMEOUT,
                ));
                match (&group, got) {
                    (Ok(response), Ok(created)) => {
                        let g = response.group_snapshot.clone().unwrap_or_default();
                        prop_assert_eq!(created.group_snapshot_id, g.group_snapshot_id);
                        prop_assert_eq!(created.snapshots, g.snapshots);
                        prop_assert_eq!(
                            created.creation_time,
                            Some(timestamp_nanos(g.creation_time.as_ref()))
                        );
                    }
                    (Err(_), Err(err)) => prop_assert!(!err.to_string().is_empty()),
                    (want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
                }
                Ok(())
            },
        )
        .unwrap();
}
