//! `csi-sidecars` as a process: the node side (livenessprobe + node-driver-registrar) in one
//! process against the mock driver and a fake kubelet.

use std::time::Duration;

use csi_test_support::{
    ChildProcess, FakeKubelet, MockCsiDriver, ProbeReply, free_port, http_get, run_to_exit,
    wait_for_path, wait_for_status,
};

const BIN: &str = env!("CARGO_BIN_EXE_csi-sidecars");
const HOST_PATH: &str = "/var/lib/kubelet/plugins/mock.csi.k8s.io/csi.sock";
const WAIT: Duration = Duration::from_secs(20);

fn node_side(driver: &MockCsiDriver, dir: &std::path::Path, address: &str) -> ChildProcess {
    ChildProcess::spawn(
        BIN,
        [
            // The KEP's node manifest, plus where our test keeps its files.
            format!("--csi-address=unix:{}", driver.socket_path().display()),
            "--controllers=livenessprobe,node-driver-registrar".to_string(),
            format!("--kubelet-registration-path={HOST_PATH}"),
            format!("--plugin-registration-path={}", dir.display()),
            format!("--http-endpoint={address}"),
            "--livenessprobe-probe-timeout=2s".to_string(),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn node_side_in_one_process() {
    let driver = MockCsiDriver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut sidecars = node_side(&driver, dir.path(), &address);

    let info = FakeKubelet::register(dir.path(), "mock.csi.k8s.io", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", sidecars.logs()));
    assert_eq!(info.endpoint, HOST_PATH);

    assert_eq!(
        wait_for_status(&address, "/healthz", 200, WAIT)
            .await
            .unwrap(),
        "ok"
    );
    let (status, verbose) = http_get(&address, "/healthz?verbose").await.unwrap();
    assert_eq!(status, 200);
    assert!(verbose.contains("[+]livenessprobe ok"), "{verbose}");
    assert!(verbose.contains("[+]node-driver-registrar ok"), "{verbose}");
    assert_eq!(
        http_get(&address, "/healthz/livenessprobe")
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        http_get(&address, "/healthz/node-driver-registrar")
            .await
            .unwrap()
            .0,
        200
    );

    // The driver's name was asked once for both controllers.
    assert_eq!(driver.calls_to("/csi.v1.Identity/GetPluginInfo").len(), 1);

    // One metrics registry for the process, with the driver calls of both controllers.
    let (status, metrics) = http_get(&address, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"method_name="/csi.v1.Identity/GetPluginInfo""#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"method_name="/csi.v1.Identity/Probe""#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"csi_sidecars_controller_enabled{controller="livenessprobe"} 1"#),
        "{metrics}"
    );

    // The driver stops being ready: only the livenessprobe check fails.
    driver.set_probe(ProbeReply::NotReady);
    let (status, body) = http_get(&address, "/healthz?verbose").await.unwrap();
    assert_eq!(status, 500);
    assert!(
        body.contains("[-]livenessprobe failed: driver responded but is not ready"),
        "{body}"
    );
    assert!(body.contains("[+]node-driver-registrar ok"), "{body}");
    driver.set_probe(ProbeReply::Ready);

    sidecars.signal("TERM").unwrap();
    let status = sidecars.wait(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", sidecars.logs());
    assert!(!dir.path().join("mock.csi.k8s.io-reg.sock").exists());
}

#[tokio::test]
async fn a_rejected_registration_does_not_take_the_process_down() {
    let driver = MockCsiDriver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut sidecars = node_side(&driver, dir.path(), &address);
    let socket = dir.path().join("mock.csi.k8s.io-reg.sock");
    wait_for_path(&socket, WAIT).await.unwrap();

    let kubelet = FakeKubelet::connect(&socket).await.unwrap();
    kubelet.get_info().await.unwrap();
    kubelet
        .notify_registration_status(false, "kubelet said no")
        .await
        .unwrap();
    drop(kubelet);

    let body = wait_for_status(&address, "/healthz/node-driver-registrar", 500, WAIT)
        .await
        .unwrap();
    assert!(
        // The kubelet's answer, or (while the socket is offered again) the health check's
        // failure to reach it.
        body.contains("kubelet said no")
            || body.contains("registration socket")
            || body.contains("node-registrar socket"),
        "{body}"
    );
    assert_eq!(
        http_get(&address, "/healthz/livenessprobe")
            .await
            .unwrap()
            .0,
        200,
        "the other controllers keep working"
    );
    assert!(sidecars.is_running(), "{}", sidecars.logs());

    // The socket is offered again; the kubelet's retry succeeds and health recovers.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_for_path(&socket, WAIT).await.unwrap();
    FakeKubelet::register(dir.path(), "mock.csi.k8s.io", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", sidecars.logs()));
    wait_for_status(&address, "/healthz", 200, WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_controller_is_a_usage_error_listing_the_known_ones() {
    let (code, output) = run_to_exit(BIN, ["--controllers=livenessprobe,atacher"], WAIT)
        .await
        .unwrap();
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("\"atacher\""), "{output}");
    assert!(output.contains("livenessprobe"), "{output}");
    assert!(output.contains("node-driver-registrar"), "{output}");
}

#[tokio::test]
async fn help_lists_controllers_and_prefixed_flags() {
    let (code, output) = run_to_exit(BIN, ["--help"], WAIT).await.unwrap();
    assert_eq!(code, 0);
    for needle in [
        "Controllers (--controllers):",
        "livenessprobe",
        "node-driver-registrar",
        "--livenessprobe-probe-timeout",
        "--node-driver-registrar-kubelet-registration-path",
        "--csi-address",
    ] {
        assert!(output.contains(needle), "{needle} missing:\n{output}");
    }
}

#[tokio::test]
async fn registrar_needs_its_registration_path_in_csi_sidecars_too() {
    let (code, output) = run_to_exit(
        BIN,
        [
            "--controllers=node-driver-registrar",
            "--csi-address=/nonexistent.sock",
        ],
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("kubelet-registration-path is a required parameter"),
        "{output}"
    );
}

#[tokio::test]
async fn livenessprobe_alone_listens_on_its_default_port_rules() {
    // --health-port (deprecated) works in csi-sidecars as in the sidecars.
    let driver = MockCsiDriver::start().await.unwrap();
    let port = free_port();
    let _sidecars = ChildProcess::spawn(
        BIN,
        [
            format!("--csi-address={}", driver.endpoint()),
            "--controllers=livenessprobe".to_string(),
            format!("--health-port={port}"),
        ],
    )
    .unwrap();
    assert_eq!(
        wait_for_status(&format!("127.0.0.1:{port}"), "/healthz", 200, WAIT)
            .await
            .unwrap(),
        "ok"
    );
}

/// A driver without CREATE_DELETE_SNAPSHOT: standalone csi-snapshotter exits, as upstream; in
/// csi-sidecars only the snapshotter is disabled, says why at its health check, and the
/// others run on.
#[tokio::test]
async fn a_driver_without_snapshots_disables_only_the_snapshotter() {
    let driver = MockCsiDriver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No request reaches this API server: the snapshotter is disabled before it would ask.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let sidecars = ChildProcess::spawn(
        BIN,
        [
            format!("--csi-address={}", driver.endpoint()),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--controllers=snapshotter,livenessprobe".to_string(),
            format!("--http-endpoint={address}"),
        ],
    )
    .unwrap();
    let body = wait_for_status(&address, "/healthz?verbose", 200, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", sidecars.logs()));
    assert!(
        body.contains(
            "[+]snapshotter ok: disabled: CSI driver mock.csi.k8s.io does not support ControllerCreateSnapshot"
        ),
        "{body}\n{}",
        sidecars.logs()
    );
    assert_eq!(
        wait_for_status(&address, "/healthz/livenessprobe", 200, WAIT)
            .await
            .unwrap(),
        "ok"
    );
}
