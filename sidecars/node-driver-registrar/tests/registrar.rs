//! The `csi-node-driver-registrar` binary against the mock driver and a fake kubelet.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use csi_test_support::{
    ChildProcess, FakeKubelet, MockCsiDriver, free_port, http_get, run_to_exit, wait_for_path,
    wait_for_status,
};

const BIN: &str = env!("CARGO_BIN_EXE_csi-node-driver-registrar");
const HOST_PATH: &str = "/var/lib/kubelet/plugins/csi-hostpath/csi.sock";
const WAIT: Duration = Duration::from_secs(20);

fn start(driver: &MockCsiDriver, dir: &Path, extra: &[String]) -> ChildProcess {
    let mut args = vec![
        "--v=5".to_string(),
        format!("--csi-address={}", driver.endpoint()),
        format!("--kubelet-registration-path={HOST_PATH}"),
        format!("--plugin-registration-path={}", dir.display()),
    ];
    args.extend_from_slice(extra);
    ChildProcess::spawn(BIN, args).unwrap()
}

#[tokio::test]
async fn registers_with_the_kubelet_and_cleans_up_on_sigterm() {
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_driver_name("hostpath.csi.k8s.io");
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut registrar = start(&driver, dir.path(), &[format!("--http-endpoint={address}")]);

    let socket = dir.path().join("hostpath.csi.k8s.io-reg.sock");
    let info = FakeKubelet::register(dir.path(), "hostpath.csi.k8s.io", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", registrar.logs()));
    assert_eq!(info.r#type, "CSIPlugin");
    assert_eq!(info.endpoint, HOST_PATH);
    assert_eq!(info.supported_versions, vec!["1.0.0".to_string()]);

    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o700,
        "owner-only socket"
    );

    assert_eq!(
        wait_for_status(&address, "/healthz", 200, WAIT)
            .await
            .unwrap(),
        "ok"
    );
    // The registrar serves no metrics.
    assert_eq!(http_get(&address, "/metrics").await.unwrap().0, 404);
    // Only GetPluginInfo: the kubelet calls NodeGetInfo itself.
    assert_eq!(
        driver.call_methods(),
        vec!["/csi.v1.Identity/GetPluginInfo".to_string()]
    );

    registrar.signal("TERM").unwrap();
    let status = registrar.wait(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", registrar.logs());
    assert!(!socket.exists(), "the socket is removed on SIGTERM");
}

#[tokio::test]
async fn a_failed_registration_exits_1() {
    let driver = MockCsiDriver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut registrar = start(&driver, dir.path(), &[]);
    let socket = dir.path().join("mock.csi.k8s.io-reg.sock");
    wait_for_path(&socket, WAIT).await.unwrap();
    let kubelet = FakeKubelet::connect(&socket).await.unwrap();
    kubelet.get_info().await.unwrap();
    kubelet
        .notify_registration_status(false, "plugin name collision")
        .await
        .unwrap();
    let status = registrar.wait(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(1), "{}", registrar.logs());
    assert!(
        registrar.logs().contains("plugin name collision"),
        "{}",
        registrar.logs()
    );
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_file_is_refused() {
    let driver = MockCsiDriver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mock.csi.k8s.io-reg.sock");

    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let stale_inode = std::fs::metadata(&socket).unwrap().ino();
    let registrar = start(&driver, dir.path(), &[]);
    // The stale socket is there from the start: wait until it has been replaced.
    tokio::time::timeout(WAIT, async {
        while std::fs::metadata(&socket).map(|m| m.ino()).ok() == Some(stale_inode) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stale socket never replaced\n{}", registrar.logs()));
    wait_for_path(&socket, WAIT).await.unwrap();
    FakeKubelet::register(dir.path(), "mock.csi.k8s.io", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", registrar.logs()));
    drop(registrar);

    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, "not a socket").unwrap();
    let mut registrar = start(&driver, dir.path(), &[]);
    let status = registrar.wait(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        registrar.logs().contains("not a socket"),
        "{}",
        registrar.logs()
    );
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
}

#[tokio::test]
async fn startup_errors_as_upstream() {
    // Missing --kubelet-registration-path: exit 1 before touching the driver.
    let (code, output) = run_to_exit(BIN, ["--csi-address=/nonexistent.sock"], WAIT)
        .await
        .unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("kubelet-registration-path is a required parameter"),
        "{output}"
    );

    // The deprecated probe mode is a successful no-op.
    let (code, output) = run_to_exit(
        BIN,
        [
            "--mode=kubelet-registration-probe",
            "--kubelet-registration-path=/x.sock",
        ],
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{output}");

    // Both health flags: rejected.
    let (code, output) = run_to_exit(
        BIN,
        [
            "--kubelet-registration-path=/x.sock",
            "--health-port=9809",
            "--http-endpoint=:9809",
        ],
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("Only one of `--health-port` and `--http-endpoint`"),
        "{output}"
    );

    // A driver that does not answer GetPluginInfo within --timeout.
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_delay("/csi.v1.Identity/GetPluginInfo", Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let mut registrar = start(&driver, dir.path(), &["--timeout=300ms".to_string()]);
    let status = registrar.wait(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        registrar
            .logs()
            .contains("Error retrieving CSI driver name"),
        "{}",
        registrar.logs()
    );

    // The deprecated connection timeout is accepted, with upstream's notice.
    let (code, output) = run_to_exit(
        BIN,
        [
            "--connection-timeout=5s",
            "--mode=kubelet-registration-probe",
            "--kubelet-registration-path=/x.sock",
        ],
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("--connection-timeout is deprecated"),
        "{output}"
    );
}

#[tokio::test]
async fn health_port_serves_healthz() {
    let driver = MockCsiDriver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _registrar = start(&driver, dir.path(), &[format!("--health-port={port}")]);
    assert_eq!(
        wait_for_status(&format!("127.0.0.1:{port}"), "/healthz", 200, WAIT)
            .await
            .unwrap(),
        "ok"
    );
}
