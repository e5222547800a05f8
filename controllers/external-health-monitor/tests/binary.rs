//! `csi-external-health-monitor-controller` as a process: its flags, and its exit when the
//! driver lacks what the monitor needs (upstream's checks in `main`), before any API call.

use std::time::Duration;

use csi_proto::csi::v1 as csi;
use csi_test_support::{MockCsiDriver, plugin_service_capability, run_to_exit};

const BIN: &str = env!("CARGO_BIN_EXE_csi-external-health-monitor-controller");
const WAIT: Duration = Duration::from_secs(20);

/// A kubeconfig naming an API server nobody listens on: the checks come first.
fn kubeconfig(dir: &std::path::Path) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    format!("--kubeconfig={}", path.display())
}

#[tokio::test]
async fn help_has_upstreams_flags_and_no_feature_gates() {
    let (code, output) = run_to_exit(BIN, ["--help"], WAIT).await.unwrap();
    assert_eq!(code, 0);
    for needle in [
        "--monitor-interval <duration>",
        "--resync <duration>",
        "--timeout <duration>",
        "--list-volumes-interval <duration>",
        "--volume-list-add-interval <duration>",
        "--node-list-add-interval <duration>",
        "--worker-threads <int>",
        "--enable-node-watcher[=<bool>]",
        "--http-endpoint <string>",
        "--metrics-address <string>",
    ] {
        assert!(output.contains(needle), "{needle} missing:\n{output}");
    }
    assert!(!output.contains("--feature-gates"), "{output}");
}

#[tokio::test]
async fn zero_worker_threads_is_fatal() {
    let (code, output) = run_to_exit(BIN, ["--worker-threads=0"], WAIT)
        .await
        .unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("Option --worker-threads must be greater than zero"),
        "{output}"
    );
}

#[tokio::test]
async fn exits_when_the_driver_lacks_volume_condition() {
    let dir = tempfile::tempdir().unwrap();
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_plugin_capabilities([plugin_service_capability(
        csi::plugin_capability::service::Type::ControllerService,
    )]);
    driver.set_controller_capabilities([
        csi::controller_service_capability::rpc::Type::ListVolumes,
        csi::controller_service_capability::rpc::Type::GetVolume,
    ]);
    let (code, output) = run_to_exit(
        BIN,
        [
            format!("--csi-address={}", driver.endpoint()),
            kubeconfig(dir.path()),
        ],
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(
            "CSI driver does not support Controller ListVolumes and GetVolume service or does not implement VolumeCondition"
        ),
        "{output}"
    );
}

#[tokio::test]
async fn exits_when_the_driver_lists_volume_health_without_get() {
    let dir = tempfile::tempdir().unwrap();
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_plugin_capabilities([plugin_service_capability(
        csi::plugin_capability::service::Type::ControllerService,
    )]);
    driver.set_controller_capabilities([
        csi::controller_service_capability::rpc::Type::ListVolumeHealth,
    ]);
    let (code, output) = run_to_exit(
        BIN,
        [
            format!("--csi-address={}", driver.endpoint()),
            kubeconfig(dir.path()),
        ],
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(
            "the CSI driver supports ControllerListVolumeHealth without ControllerGetVolumeHealth, which the CSI specification requires alongside it"
        ),
        "{output}"
    );
    assert!(driver.calls_to("ControllerListVolumeHealth").is_empty());
}

#[tokio::test]
async fn exits_when_the_driver_has_no_controller_service() {
    let dir = tempfile::tempdir().unwrap();
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_plugin_capabilities([]);
    let (code, output) = run_to_exit(
        BIN,
        [
            format!("--csi-address={}", driver.endpoint()),
            kubeconfig(dir.path()),
        ],
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("CSI driver does not support Plugin Controller Service"),
        "{output}"
    );
}
