//! The `livenessprobe` binary against the mock driver: upstream's behaviour, seen from outside.

use std::time::Duration;

use csi_test_support::{
    ChildProcess, MockCsiDriver, ProbeReply, free_port, http_get, run_to_exit, wait_for_status,
};
use tonic::Status;

const BIN: &str = env!("CARGO_BIN_EXE_livenessprobe");
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn healthz_follows_the_driver() {
    let driver = MockCsiDriver::start().await.unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut probe = ChildProcess::spawn(
        BIN,
        [
            format!("--csi-address={}", driver.endpoint()),
            format!("--http-endpoint={address}"),
            "--probe-timeout=1s".to_string(),
            "-v=5".to_string(),
        ],
    )
    .unwrap();

    let body = wait_for_status(&address, "/healthz", 200, WAIT)
        .await
        .unwrap();
    assert_eq!(body, "ok");

    driver.set_probe(ProbeReply::NotReady);
    let (status, body) = http_get(&address, "/healthz").await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (500, "driver responded but is not ready"),
        "{}",
        probe.logs()
    );

    driver.set_probe(ProbeReply::Absent);
    assert_eq!(http_get(&address, "/healthz").await.unwrap().0, 200);

    driver.set_probe(ProbeReply::Error(Status::internal("disk on fire")));
    let (status, body) = http_get(&address, "/healthz").await.unwrap();
    assert_eq!(status, 500);
    assert_eq!(body, "rpc error: code = Internal desc = disk on fire");

    driver.set_probe(ProbeReply::Ready);
    driver.set_delay("/csi.v1.Identity/Probe", Duration::from_secs(3));
    let (status, body) = http_get(&address, "/healthz").await.unwrap();
    assert_eq!(
        status, 500,
        "a probe slower than --probe-timeout fails: {body}"
    );
    driver.set_delay("/csi.v1.Identity/Probe", Duration::ZERO);

    // A dead driver: 500 with the connection error, and no exit.
    driver.stop().await.unwrap();
    let (status, body) = http_get(&address, "/healthz").await.unwrap();
    assert_eq!(status, 500);
    assert!(body.contains("failed to connect"), "{body}");
    assert!(probe.is_running());

    // It comes back: so does the probe.
    driver.start_again().await.unwrap();
    wait_for_status(&address, "/healthz", 200, WAIT)
        .await
        .unwrap();

    // /metrics on --http-endpoint, with the driver's name and the Probe calls.
    let (status, metrics) = http_get(&address, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"csi_sidecar_operations_seconds_count{driver_name="mock.csi.k8s.io",grpc_status_code="OK",method_name="/csi.v1.Identity/Probe"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "{metrics}"
    );

    // -v=5 logs every gRPC call.
    assert!(probe.logs().contains("GRPC call"), "{}", probe.logs());

    probe.signal("TERM").unwrap();
    let status = probe.wait(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", probe.logs());
}

#[tokio::test]
async fn waits_for_the_driver_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("csi.sock");
    let address = format!("127.0.0.1:{}", free_port());
    let probe = ChildProcess::spawn(
        BIN,
        [
            format!("--csi-address={}", socket.display()),
            format!("--http-endpoint={address}"),
        ],
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        http_get(&address, "/healthz").await.is_err(),
        "no server until the driver answered"
    );
    let _driver = MockCsiDriver::start_at(&socket).await.unwrap();
    wait_for_status(&address, "/healthz", 200, WAIT)
        .await
        .unwrap();
    drop(probe);
}

#[tokio::test]
async fn health_port_serves_health_but_no_metrics() {
    let driver = MockCsiDriver::start().await.unwrap();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    // The exact arguments of upstream's example manifests.
    let _probe = ChildProcess::spawn(
        BIN,
        [
            format!("--csi-address={}", driver.endpoint()),
            format!("--health-port={port}"),
        ],
    )
    .unwrap();
    wait_for_status(&address, "/healthz", 200, WAIT)
        .await
        .unwrap();
    assert_eq!(http_get(&address, "/metrics").await.unwrap().0, 404);
}

#[tokio::test]
async fn deprecated_metrics_address_gets_its_own_server() {
    let driver = MockCsiDriver::start().await.unwrap();
    let health = free_port();
    let metrics = format!("127.0.0.1:{}", free_port());
    let _probe = ChildProcess::spawn(
        BIN,
        [
            format!("-csi-address={}", driver.endpoint()),
            format!("-health-port={health}"),
            format!("-metrics-address={metrics}"),
        ],
    )
    .unwrap();
    wait_for_status(&format!("127.0.0.1:{health}"), "/healthz", 200, WAIT)
        .await
        .unwrap();
    let body = wait_for_status(&metrics, "/metrics", 200, WAIT)
        .await
        .unwrap();
    assert!(body.contains("process_start_time_seconds"), "{body}");
}

#[tokio::test]
async fn flag_conflicts_upstream_rejects() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--health-port=9898", "--http-endpoint=:8080"],
            "Only one of `--health-port` and `--http-endpoint` can be explicitly set",
        ),
        (
            &["--metrics-address=:9000", "--http-endpoint=:8080"],
            "Only one of `--metrics-address` and `--http-endpoint` can be explicitly set",
        ),
    ];
    for (args, message) in cases {
        let (code, output) = run_to_exit(BIN, *args, WAIT).await.unwrap();
        assert_eq!(code, 1, "{args:?}: {output}");
        assert!(output.contains(message), "{args:?}: {output}");
    }
}

#[tokio::test]
async fn bad_flags_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--probe-timeout=3"], "probe-timeout"),
        (&["--health-port=http"], "health-port"),
    ];
    for (args, needle) in cases {
        let (code, output) = run_to_exit(BIN, *args, WAIT).await.unwrap();
        assert_eq!(code, 2, "{args:?}: {output}");
        assert!(output.contains(needle), "{args:?}: {output}");
    }
}

#[tokio::test]
async fn version_and_help() {
    let (code, output) = run_to_exit(BIN, ["--version"], WAIT).await.unwrap();
    assert_eq!(code, 0);
    assert!(output.contains(env!("CARGO_PKG_VERSION")), "{output}");
    let (code, output) = run_to_exit(BIN, ["-help"], WAIT).await.unwrap();
    assert_eq!(code, 0);
    assert!(output.contains("--probe-timeout"), "{output}");
}
