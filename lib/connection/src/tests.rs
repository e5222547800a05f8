use std::time::Duration;

use csi_metrics::{CsiOperationMetrics, Registry};
use csi_proto::csi::v1 as csi;
use csi_test_support::{MockCsiDriver, ProbeReply};
use tonic::Status;

use super::*;

fn options(metrics: Option<CsiOperationMetrics>) -> ConnectOptions {
    ConnectOptions {
        timeout: Some(Duration::from_secs(10)),
        metrics,
        watch_loss: true,
        max_log_length: None,
    }
}

#[test]
fn addresses_as_csi_lib_utils_accepts_them() {
    let cases = [
        ("unix:///csi/csi.sock", "/csi/csi.sock"),
        ("unix:/csi/csi.sock", "/csi/csi.sock"),
        ("/csi/csi.sock", "/csi/csi.sock"),
        ("unix:relative.sock", "relative.sock"),
        ("csi.sock", "csi.sock"),
    ];
    for (address, want) in cases {
        assert_eq!(
            socket_path(address).unwrap(),
            PathBuf::from(want),
            "{address}"
        );
    }
    for bad in ["", "unix://", "tcp://127.0.0.1:10000", "dns:///driver:443"] {
        let err = socket_path(bad).unwrap_err();
        assert!(
            err.to_string().contains("unix domain sockets"),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn waits_for_a_driver_that_starts_late() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("csi.sock");
    let address = format!("unix://{}", path.display());
    let late = path.clone();
    let driver = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        MockCsiDriver::start_at(late).await.unwrap()
    });
    let conn = Connection::connect(&address, options(None)).await.unwrap();
    let _driver = driver.await.unwrap();
    assert_eq!(
        rpc::get_driver_name(&conn, Some(Duration::from_secs(5)))
            .await
            .unwrap(),
        csi_test_support::DEFAULT_DRIVER_NAME
    );
}

#[tokio::test]
async fn gives_up_after_the_timeout_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let address = dir.path().join("nobody.sock").display().to_string();
    let started = Instant::now();
    let err = Connection::connect(
        &address,
        ConnectOptions {
            timeout: Some(Duration::from_millis(600)),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = err.to_string();
    assert!(text.contains("nobody.sock"), "{text}");
    assert!(text.contains("failed to connect"), "{text}");
}

#[tokio::test]
async fn driver_name_must_not_be_empty() {
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_driver_name("");
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    let err = rpc::get_driver_name(&conn, None).await.unwrap_err();
    assert_eq!(err.to_string(), "driver name is empty");
}

#[tokio::test]
async fn probe_outcomes() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    driver.set_probe(ProbeReply::Ready);
    assert!(rpc::probe(&conn, None).await.unwrap());
    driver.set_probe(ProbeReply::Absent);
    assert!(
        rpc::probe(&conn, None).await.unwrap(),
        "absent ready means ready"
    );
    driver.set_probe(ProbeReply::NotReady);
    assert!(!rpc::probe(&conn, None).await.unwrap());
    driver.set_probe(ProbeReply::Error(Status::internal("disk on fire")));
    let err = rpc::probe(&conn, None).await.unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert!(err.to_string().contains("code = Internal"), "{err}");
}

#[tokio::test]
async fn a_slow_call_ends_at_its_timeout_as_deadline_exceeded() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    driver.set_delay(rpc::methods::PROBE, Duration::from_secs(5));
    let err = rpc::probe(&conn, Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    match err {
        Error::Rpc { status, .. } => assert_eq!(status.code(), Code::DeadlineExceeded),
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn probe_forever_retries_until_ready() {
    let driver = std::sync::Arc::new(MockCsiDriver::start().await.unwrap());
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    driver.set_probe(ProbeReply::NotReady);
    let flip = driver.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        flip.set_probe(ProbeReply::Ready);
    });
    rpc::probe_forever(&conn, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(driver.calls_to(rpc::methods::PROBE).len() >= 2);
}

#[tokio::test]
async fn probe_forever_stops_at_a_real_error() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    driver.set_probe(ProbeReply::Error(Status::unimplemented("no probe")));
    let err = rpc::probe_forever(&conn, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no probe"), "{err}");
    assert_eq!(driver.calls_to(rpc::methods::PROBE).len(), 1);
}

#[tokio::test]
async fn capabilities_come_back_as_sets() {
    use csi::controller_service_capability::rpc::Type as Ctrl;
    use csi::node_service_capability::rpc::Type as Node;
    use csi::plugin_capability::service::Type as Plugin;
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_plugin_capabilities([csi_test_support::plugin_service_capability(
        Plugin::ControllerService,
    )]);
    driver.set_controller_capabilities([Ctrl::PublishUnpublishVolume, Ctrl::ListVolumes]);
    driver.set_node_capabilities([Node::StageUnstageVolume]);
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    let plugin = rpc::get_plugin_capabilities(&conn, None).await.unwrap();
    assert!(plugin.contains(&Plugin::ControllerService));
    let ctrl = rpc::get_controller_capabilities(&conn, None).await.unwrap();
    assert_eq!(ctrl.len(), 2);
    assert!(ctrl.contains(&Ctrl::PublishUnpublishVolume));
    let node = rpc::get_node_capabilities(&conn, None).await.unwrap();
    assert!(node.contains(&Node::StageUnstageVolume));
    // No handler and no capabilities configured: an empty set, not an error.
    let group = rpc::get_group_controller_capabilities(&conn, None)
        .await
        .unwrap();
    assert!(group.is_empty());
}

#[tokio::test]
async fn every_call_is_measured_with_method_and_status_code() {
    let registry = Registry::new();
    let metrics = CsiOperationMetrics::for_sidecar(&registry).unwrap();
    metrics.set_driver_name("mock.csi.k8s.io");
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(Some(metrics)))
        .await
        .unwrap();
    rpc::probe(&conn, None).await.unwrap();
    driver.set_probe(ProbeReply::Error(Status::unavailable("down")));
    let _ = rpc::probe(&conn, None).await;
    let text = registry.gather_text();
    assert!(
        text.contains(r#"csi_sidecar_operations_seconds_count{driver_name="mock.csi.k8s.io",grpc_status_code="OK",method_name="/csi.v1.Identity/Probe"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"csi_sidecar_operations_seconds_count{driver_name="mock.csi.k8s.io",grpc_status_code="Unavailable",method_name="/csi.v1.Identity/Probe"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn losing_the_driver_is_noticed_without_a_call() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    rpc::probe(&conn, None).await.unwrap();
    let lost = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.lost().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!lost.is_finished());
    driver.stop().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), lost)
        .await
        .expect("loss noticed")
        .unwrap();
}

#[tokio::test]
async fn the_channel_reconnects_when_the_driver_comes_back() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    rpc::probe(&conn, None).await.unwrap();
    driver.stop().await.unwrap();
    assert!(
        rpc::probe(&conn, Some(Duration::from_millis(500)))
            .await
            .is_err()
    );
    driver.start_again().await.unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if rpc::probe(&conn, Some(Duration::from_millis(500)))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the channel reconnected");
}

#[test]
fn long_responses_are_capped_in_logs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let driver = MockCsiDriver::start().await.unwrap();
        let mut opts = options(None);
        opts.max_log_length = Some(10);
        let conn = Connection::connect(&driver.endpoint(), opts).await.unwrap();
        assert_eq!(
            conn.cap("0123456789abcdef".to_string()),
            "0123456789 [response body too large, log capped to 10 chars]"
        );
        assert_eq!(conn.cap("short".to_string()), "short");
    });
}

#[test]
fn status_text_reads_like_grpc_go() {
    assert_eq!(
        format_status(&Status::not_found("volume vol-1 not found")),
        "rpc error: code = NotFound desc = volume vol-1 not found"
    );
}

#[test]
fn csi_errors_read_and_classify_like_upstream() {
    let status = CsiError::Status(Status::not_found("no such volume"));
    assert_eq!(
        status.to_string(),
        "rpc error: code = NotFound desc = no such volume"
    );
    assert_eq!(status.code(), Some(Code::NotFound));
    assert!(status.is_final());

    let other = CsiError::Other("connection refused".into());
    assert_eq!(other.to_string(), "connection refused");
    assert_eq!(other.code(), None);
    assert!(!other.is_final());

    for code in [
        Code::Cancelled,
        Code::DeadlineExceeded,
        Code::Unavailable,
        Code::ResourceExhausted,
        Code::Aborted,
    ] {
        assert!(!is_final_code(code), "{code:?}");
        assert!(
            !CsiError::Status(Status::new(code, "")).is_final(),
            "{code:?}"
        );
    }
    for code in [
        Code::Internal,
        Code::InvalidArgument,
        Code::FailedPrecondition,
    ] {
        assert!(is_final_code(code), "{code:?}");
    }
}

#[tokio::test]
async fn a_connection_to_no_driver_fails_every_call_and_is_never_lost() {
    let conn = Connection::none();
    let err = rpc::get_driver_name(&conn, Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rpc { status, .. } if status.code() == tonic::Code::Unavailable),
        "{err}"
    );
    let lost = tokio::time::timeout(Duration::from_millis(100), conn.lost()).await;
    assert!(lost.is_err(), "a connection to no driver is never lost");
}
