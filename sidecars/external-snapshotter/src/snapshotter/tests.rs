//! `pkg/snapshotter/snapshotter_test.go`: `TestCreateSnapshot` (5 cases), `TestDeleteSnapshot`
//! (4), `TestGetSnapshotStatus` (5), against the in-process mock CSI driver (upstream uses
//! csi-test's gomock driver): each case checks the request the driver received and what the
//! snapshotter made of the answer.

use std::collections::HashMap;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection};
use csi_proto::csi::v1::controller_service_capability::rpc::Type as Rpc;
use csi_proto::csi::v1::list_snapshots_response::Entry;
use csi_proto::csi::v1::{
    CreateSnapshotRequest, CreateSnapshotResponse, DeleteSnapshotRequest, DeleteSnapshotResponse,
    ListSnapshotsRequest, ListSnapshotsResponse, Snapshot,
};
use csi_test_support::MockCsiDriver;
use tonic::{Code, Status};

use super::{CsiSnapshotter, Snapshotter, timestamp_nanos};

const DRIVER_NAME: &str = "foo/bar";
const TIMEOUT: Duration = Duration::from_secs(10);

async fn setup() -> (MockCsiDriver, CsiSnapshotter) {
    let mock = MockCsiDriver::start().await.unwrap();
    mock.set_driver_name(DRIVER_NAME);
    let conn = Connection::connect(&mock.endpoint(), ConnectOptions::default())
        .await
        .unwrap();
    (mock, CsiSnapshotter::new(conn))
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn injected(code: Option<Code>) -> Option<Status> {
    code.map(|code| Status::new(code, format!("Injecting error {}", code as i32)))
}

fn now() -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    prost_types::Timestamp {
        seconds: i64::try_from(now.as_secs()).unwrap(),
        nanos: i32::try_from(now.subsec_nanos()).unwrap(),
    }
}

#[tokio::test]
async fn test_create_snapshot() {
    let created_at = now();
    let response = CreateSnapshotResponse {
        snapshot: Some(Snapshot {
            snapshot_id: "testid".into(),
            size_bytes: 1000,
            source_volume_id: "foo".into(),
            creation_time: Some(created_at),
            ready_to_use: true,
            ..Default::default()
        }),
    };
    let parameters = map(&[("param1", "value1"), ("param2", "value2")]);
    let secrets = map(&[("foo", "bar")]);
    // (name, parameters, secrets, injected error, expect error)
    let cases = [
        ("success", HashMap::new(), HashMap::new(), None, false),
        (
            "attributes",
            parameters.clone(),
            HashMap::new(),
            None,
            false,
        ),
        ("secrets", HashMap::new(), secrets.clone(), None, false),
        (
            "gRPC transient error",
            HashMap::new(),
            HashMap::new(),
            Some(Code::DeadlineExceeded),
            true,
        ),
        (
            "gRPC final error",
            HashMap::new(),
            HashMap::new(),
            Some(Code::NotFound),
            true,
        ),
    ];
    let (mock, snapshotter) = setup().await;
    for (name, parameters, secrets, error, expect_error) in cases {
        mock.clear_calls();
        let reply = response.clone();
        let error = injected(error);
        mock.handle(
            "CreateSnapshot",
            move |_: CreateSnapshotRequest| match &error {
                Some(status) => Err(status.clone()),
                None => Ok(reply.clone()),
            },
        );
        let result = snapshotter
            .create_snapshot(
                "snapshot-test",
                "foo",
                parameters.clone(),
                secrets.clone(),
                TIMEOUT,
            )
            .await;
        let expected_request = CreateSnapshotRequest {
            name: "snapshot-test".into(),
            source_volume_id: "foo".into(),
            parameters,
            secrets,
            accessibility_requirements: None,
        };
        assert_eq!(
            short_methods(&mock),
            ["GetPluginInfo", "CreateSnapshot"],
            "{name}: calls"
        );
        let calls = mock.calls_to("CreateSnapshot");
        assert_eq!(
            calls[0].request::<CreateSnapshotRequest>(),
            Some(&expected_request),
            "{name}"
        );
        match result {
            Ok(created) => {
                assert!(!expect_error, "{name}: expected error, got none");
                assert_eq!(created.driver_name, DRIVER_NAME, "{name}");
                assert_eq!(created.snapshot_id, "testid", "{name}");
                assert_eq!(
                    created.creation_time,
                    Some(timestamp_nanos(Some(&created_at))),
                    "{name}"
                );
                assert_eq!(created.size, 1000, "{name}");
                assert!(created.ready_to_use, "{name}");
            }
            Err(err) => {
                assert!(expect_error, "{name}: got error: {err}");
                // The driver's status comes through, for the final-error check.
                assert_eq!(err.is_final(), name == "gRPC final error", "{name}: {err}");
            }
        }
    }
}

#[tokio::test]
async fn test_delete_snapshot() {
    let secrets = map(&[("foo", "bar")]);
    let cases = [
        ("success", HashMap::new(), None, false),
        ("secrets", secrets, None, false),
        (
            "gRPC transient error",
            HashMap::new(),
            Some(Code::DeadlineExceeded),
            true,
        ),
        (
            "gRPC final error",
            HashMap::new(),
            Some(Code::NotFound),
            true,
        ),
    ];
    let (mock, snapshotter) = setup().await;
    for (name, secrets, error, expect_error) in cases {
        mock.clear_calls();
        let error = injected(error);
        mock.handle(
            "DeleteSnapshot",
            move |_: DeleteSnapshotRequest| match &error {
                Some(status) => Err(status.clone()),
                None => Ok(DeleteSnapshotResponse {}),
            },
        );
        let result = snapshotter
            .delete_snapshot("testid", secrets.clone(), TIMEOUT)
            .await;
        let calls = mock.calls_to("DeleteSnapshot");
        assert_eq!(calls.len(), 1, "{name}");
        assert_eq!(
            calls[0].request::<DeleteSnapshotRequest>(),
            Some(&DeleteSnapshotRequest {
                snapshot_id: "testid".into(),
                secrets,
            }),
            "{name}"
        );
        assert_eq!(result.is_err(), expect_error, "{name}: {result:?}");
    }
}

#[tokio::test]
async fn test_get_snapshot_status() {
    let created_at = now();
    let response = ListSnapshotsResponse {
        entries: vec![Entry {
            snapshot: Some(Snapshot {
                snapshot_id: "testid".into(),
                size_bytes: 1000,
                source_volume_id: "volumeid".into(),
                creation_time: Some(created_at),
                ready_to_use: true,
                ..Default::default()
            }),
        }],
        next_token: String::new(),
    };
    let secret = map(&[("foo", "bar")]);
    let created = Some(timestamp_nanos(Some(&created_at)));
    // (name, secrets, list supported, injected error, expect error, ready, created, size)
    let cases = [
        (
            "success",
            HashMap::new(),
            true,
            None,
            false,
            true,
            created,
            1000,
        ),
        ("secret", secret, true, None, false, true, created, 1000),
        (
            "ListSnapshots not supported",
            HashMap::new(),
            false,
            None,
            false,
            true,
            None,
            0,
        ),
        (
            "gRPC transient error",
            HashMap::new(),
            true,
            Some(Code::DeadlineExceeded),
            true,
            false,
            None,
            0,
        ),
        (
            "gRPC final error",
            HashMap::new(),
            true,
            Some(Code::NotFound),
            true,
            false,
            None,
            0,
        ),
    ];
    let (mock, snapshotter) = setup().await;
    for (name, secrets, supported, error, expect_error, ready, created, size) in cases {
        mock.clear_calls();
        if supported {
            mock.set_controller_capabilities([Rpc::ListSnapshots]);
        } else {
            mock.set_controller_capabilities([]);
        }
        let error = injected(error);
        let reply = response.clone();
        mock.handle(
            "ListSnapshots",
            move |_: ListSnapshotsRequest| match &error {
                Some(status) => Err(status.clone()),
                None => Ok(reply.clone()),
            },
        );
        let result = snapshotter
            .get_snapshot_status("testid", secrets.clone(), TIMEOUT)
            .await;
        if supported {
            assert_eq!(
                short_methods(&mock),
                ["ControllerGetCapabilities", "ListSnapshots"],
                "{name}"
            );
            assert_eq!(
                mock.calls_to("ListSnapshots")[0].request::<ListSnapshotsRequest>(),
                Some(&ListSnapshotsRequest {
                    snapshot_id: "testid".into(),
                    secrets,
                    ..Default::default()
                }),
                "{name}"
            );
        } else {
            assert_eq!(
                short_methods(&mock),
                ["ControllerGetCapabilities"],
                "{name}"
            );
        }
        match result {
            Ok(status) => {
                assert!(!expect_error, "{name}: expected error, got none");
                assert_eq!(status.ready_to_use, ready, "{name}");
                assert_eq!(status.creation_time, created, "{name}");
                assert_eq!(status.size, size, "{name}");
            }
            Err(err) => assert!(expect_error, "{name}: got error: {err}"),
        }
    }
}

#[tokio::test]
async fn get_snapshot_status_of_an_unknown_snapshot_is_an_error() {
    let (mock, snapshotter) = setup().await;
    mock.set_controller_capabilities([Rpc::ListSnapshots]);
    mock.handle("ListSnapshots", |_: ListSnapshotsRequest| {
        Ok(ListSnapshotsResponse::default())
    });
    let err = snapshotter
        .get_snapshot_status("missing", HashMap::new(), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "can not find snapshot for snapshotID missing"
    );
}

/// The short names of the methods the driver was called with, in order.
fn short_methods(mock: &MockCsiDriver) -> Vec<String> {
    mock.calls()
        .iter()
        .map(|call| call.short_method().to_string())
        .collect()
}

/// Found by the fuzzing suite: a time before 1678 (seconds -9223372037, nanos 132095) read as
/// i64::MIN + 132095, neither the time nor the clamped end.
#[test]
fn timestamps_beyond_the_i64_nanosecond_range_clamp_to_its_ends() {
    let ts = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
    assert_eq!(
        timestamp_nanos(Some(&ts(-9_223_372_037, 132_095))),
        i64::MIN
    );
    assert_eq!(timestamp_nanos(Some(&ts(i64::MIN, -1))), i64::MIN);
    assert_eq!(timestamp_nanos(Some(&ts(9_223_372_037, 0))), i64::MAX);
    assert_eq!(timestamp_nanos(Some(&ts(i64::MAX, i32::MAX))), i64::MAX);
    // Inside the range, nanoseconds outside 0..1e9 add up as time.Unix normalizes them.
    assert_eq!(timestamp_nanos(Some(&ts(1, -1))), 999_999_999);
    assert_eq!(timestamp_nanos(Some(&ts(1, 1_500_000_000))), 2_500_000_000);
    assert_eq!(timestamp_nanos(None), 0);
}
