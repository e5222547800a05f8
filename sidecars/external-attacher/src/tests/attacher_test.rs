//! Port of upstream's `pkg/attacher/attacher_test.go`: `TestAttach` (7 cases) and
//! `TestDetachAttach` (5 cases), against [`MockCsiDriver`] instead of gomock. Each case checks
//! the request the driver received, the result, and `detached` (here
//! [`CsiError::is_final`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection};
use csi_proto::csi::v1::volume_capability::{
    AccessMode, AccessType, MountVolume, access_mode::Mode,
};
use csi_proto::csi::v1::{
    ControllerPublishVolumeRequest, ControllerPublishVolumeResponse,
    ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse, VolumeCapability,
};
use csi_test_support::MockCsiDriver;
use tonic::{Code, Status};

use crate::attacher::{Attacher, CsiAttacher, CsiError, is_final_code};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn create_mock_server() -> (MockCsiDriver, Connection) {
    let mock = MockCsiDriver::start().await.expect("mock driver");
    let conn = Connection::connect(&mock.endpoint(), ConnectOptions::default())
        .await
        .expect("connection");
    (mock, conn)
}

fn injected(code: Code) -> Option<Status> {
    (code != Code::Ok).then(|| Status::new(code, format!("Injecting error {}", code as i32)))
}

fn m(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct AttachCase {
    name: &'static str,
    readonly: bool,
    attributes: HashMap<String, String>,
    secrets: HashMap<String, String>,
    input: ControllerPublishVolumeRequest,
    output: Option<ControllerPublishVolumeResponse>,
    inject_error: Code,
    expect_error: bool,
    expect_detached: bool,
    expected_info: HashMap<String, String>,
}

#[tokio::test]
async fn test_attach() {
    let default_volume_id = "myname";
    let default_node_id = "MyNodeID";
    let default_caps = VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode {
            mode: Mode::MultiNodeMultiWriter.into(),
        }),
    };
    let publish_volume_info = m(&[("first", "foo"), ("second", "bar"), ("third", "baz")]);
    let request =
        |readonly: bool, context: HashMap<String, String>, secrets: HashMap<String, String>| {
            ControllerPublishVolumeRequest {
                volume_id: default_volume_id.to_string(),
                node_id: default_node_id.to_string(),
                volume_capability: Some(default_caps.clone()),
                readonly,
                secrets,
                volume_context: context,
            }
        };
    let default_request = request(false, m(&[]), m(&[]));
    let read_only_request = request(true, m(&[]), m(&[]));
    let attributes_request = request(false, m(&[("foo", "bar")]), m(&[]));
    let secrets_request = request(false, m(&[]), m(&[("foo", "bar")]));
    let info = || ControllerPublishVolumeResponse {
        publish_context: publish_volume_info.clone(),
    };

    let tests = vec![
        AttachCase {
            name: "success",
            readonly: false,
            attributes: m(&[]),
            secrets: m(&[]),
            input: default_request.clone(),
            output: Some(info()),
            inject_error: Code::Ok,
            expect_error: false,
            expect_detached: false,
            expected_info: publish_volume_info.clone(),
        },
        AttachCase {
            name: "success no info",
            readonly: false,
            attributes: m(&[]),
            secrets: m(&[]),
            input: default_request.clone(),
            output: Some(ControllerPublishVolumeResponse::default()),
            inject_error: Code::Ok,
            expect_error: false,
            expect_detached: false,
            expected_info: m(&[]),
        },
        AttachCase {
            name: "readonly success",
            readonly: true,
            attributes: m(&[]),
            secrets: m(&[]),
            input: read_only_request,
            output: Some(info()),
            inject_error: Code::Ok,
            expect_error: false,
            expect_detached: false,
            expected_info: publish_volume_info.clone(),
        },
        AttachCase {
            name: "gRPC final error",
            readonly: false,
            attributes: m(&[]),
            secrets: m(&[]),
            input: default_request.clone(),
            output: None,
            inject_error: Code::NotFound,
            expect_error: true,
            expect_detached: true,
            expected_info: m(&[]),
        },
        AttachCase {
            name: "gRPC transient error",
            readonly: false,
            attributes: m(&[]),
            secrets: m(&[]),
            input: default_request.clone(),
            output: None,
            inject_error: Code::DeadlineExceeded,
            expect_error: true,
            expect_detached: false,
            expected_info: m(&[]),
        },
        AttachCase {
            name: "attributes",
            readonly: false,
            attributes: m(&[("foo", "bar")]),
            secrets: m(&[]),
            input: attributes_request,
            output: Some(info()),
            inject_error: Code::Ok,
            expect_error: false,
            expect_detached: false,
            expected_info: publish_volume_info.clone(),
        },
        AttachCase {
            name: "secrets",
            readonly: false,
            attributes: m(&[]),
            secrets: m(&[("foo", "bar")]),
            input: secrets_request,
            output: Some(info()),
            inject_error: Code::Ok,
            expect_error: false,
            expect_detached: false,
            expected_info: publish_volume_info.clone(),
        },
    ];

    let (mock, conn) = create_mock_server().await;
    let reply: Arc<Mutex<Result<ControllerPublishVolumeResponse, Status>>> =
        Arc::new(Mutex::new(Err(Status::internal("not set"))));
    {
        let reply = reply.clone();
        mock.handle(
            "ControllerPublishVolume",
            move |_: ControllerPublishVolumeRequest| reply.lock().expect("lock").clone(),
        );
    }
    for test in tests {
        // Set up the expectation.
        *reply.lock().expect("lock") = match injected(test.inject_error) {
            Some(status) => Err(status),
            None => Ok(test.output.clone().unwrap_or_default()),
        };
        mock.clear_calls();

        let a = CsiAttacher::new(conn.clone());
        let result = a
            .attach(
                ControllerPublishVolumeRequest {
                    volume_id: default_volume_id.to_string(),
                    node_id: default_node_id.to_string(),
                    volume_capability: Some(default_caps.clone()),
                    readonly: test.readonly,
                    secrets: test.secrets.clone(),
                    volume_context: test.attributes.clone(),
                },
                TIMEOUT,
            )
            .await;

        let calls = mock.calls_to("ControllerPublishVolume");
        assert_eq!(calls.len(), 1, "test {:?}: calls", test.name);
        assert_eq!(
            calls[0].request::<ControllerPublishVolumeRequest>(),
            Some(&test.input),
            "test {:?}: request",
            test.name
        );
        match &result {
            Err(err) if !test.expect_error => panic!("test {:?}: got error: {err}", test.name),
            Ok(_) if test.expect_error => panic!("test {:?}: Expected error, got none", test.name),
            Ok(info) => assert_eq!(
                info, &test.expected_info,
                "test {:?}: got unexpected PublishContext",
                test.name
            ),
            Err(_) => {}
        }
        let detached = result.as_ref().err().is_some_and(CsiError::is_final);
        assert_eq!(
            detached, test.expect_detached,
            "test {:?}: expected detached={}",
            test.name, test.expect_detached
        );
    }
}

#[tokio::test]
async fn test_detach_attach() {
    let default_volume_id = "myname";
    let default_node_id = "MyNodeID";
    let default_request = ControllerUnpublishVolumeRequest {
        volume_id: default_volume_id.to_string(),
        node_id: default_node_id.to_string(),
        secrets: m(&[]),
    };
    let secrets_request = ControllerUnpublishVolumeRequest {
        secrets: m(&[("foo", "bar")]),
        ..default_request.clone()
    };

    // (name, secrets, input, injectError, expectError)
    let tests = [
        ("success", m(&[]), default_request.clone(), Code::Ok, false),
        (
            "secrets",
            m(&[("foo", "bar")]),
            secrets_request,
            Code::Ok,
            false,
        ),
        (
            "gRPC final error",
            m(&[]),
            default_request.clone(),
            Code::PermissionDenied,
            true,
        ),
        (
            "gRPC transient error",
            m(&[]),
            default_request.clone(),
            Code::DeadlineExceeded,
            true,
        ),
        // Explicitly test NotFound, it's handled as any other error.
        // https://github.com/kubernetes-csi/external-attacher/pull/165
        (
            "gRPC NotFound error",
            m(&[]),
            default_request.clone(),
            Code::NotFound,
            true,
        ),
    ];

    let (mock, conn) = create_mock_server().await;
    let reply: Arc<Mutex<Result<ControllerUnpublishVolumeResponse, Status>>> =
        Arc::new(Mutex::new(Err(Status::internal("not set"))));
    {
        let reply = reply.clone();
        mock.handle(
            "ControllerUnpublishVolume",
            move |_: ControllerUnpublishVolumeRequest| reply.lock().expect("lock").clone(),
        );
    }
    for (name, secrets, input, inject_error, expect_error) in tests {
        *reply.lock().expect("lock") = match injected(inject_error) {
            Some(status) => Err(status),
            None => Ok(ControllerUnpublishVolumeResponse {}),
        };
        mock.clear_calls();

        let a = CsiAttacher::new(conn.clone());
        let result = a
            .detach(
                ControllerUnpublishVolumeRequest {
                    volume_id: default_volume_id.to_string(),
                    node_id: default_node_id.to_string(),
                    secrets,
                },
                TIMEOUT,
            )
            .await;
        let calls = mock.calls_to("ControllerUnpublishVolume");
        assert_eq!(calls.len(), 1, "test {name:?}: calls");
        assert_eq!(
            calls[0].request::<ControllerUnpublishVolumeRequest>(),
            Some(&input),
            "test {name:?}: request"
        );
        assert_eq!(result.is_err(), expect_error, "test {name:?}: {result:?}");
    }
}

/// Upstream's `isFinalError`, code by code (not an upstream test).
#[test]
fn final_errors() {
    for code in [
        Code::Cancelled,
        Code::DeadlineExceeded,
        Code::Unavailable,
        Code::ResourceExhausted,
        Code::Aborted,
    ] {
        assert!(!is_final_code(code), "{code:?}");
    }
    for code in [
        Code::Unknown,
        Code::InvalidArgument,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::FailedPrecondition,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::DataLoss,
        Code::Unauthenticated,
    ] {
        assert!(is_final_code(code), "{code:?}");
    }
    assert!(!CsiError::Other("not a gRPC error".into()).is_final());
    assert_eq!(
        CsiError::Status(Status::not_found("no such volume")).to_string(),
        "rpc error: code = NotFound desc = no such volume"
    );
}
