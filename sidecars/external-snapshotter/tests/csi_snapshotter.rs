//! `csi-snapshotter` as a process: upstream's `--help` flags, and the start-up checks that
//! make upstream's `main` exit 1 (`cmd/csi-snapshotter/main.go`; its
//! `Test_supportsControllerCreateSnapshot` cases run here against the mock driver, through the
//! binary).

use std::time::Duration;

use csi_proto::csi::v1::controller_service_capability::rpc::Type as Rpc;
use csi_test_support::{MockCsiDriver, run_to_exit};

const BIN: &str = env!("CARGO_BIN_EXE_csi-snapshotter");
const WAIT: Duration = Duration::from_secs(30);

/// A kubeconfig for an API server nobody serves: the checks below fail before any request.
fn kubeconfig(dir: &std::path::Path) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn help_lists_upstreams_flags_with_their_defaults() {
    let (code, out) = run_to_exit(BIN, ["--help"], WAIT).await.unwrap();
    assert_eq!(code, 0, "{out}");
    for flag in [
        "--kubeconfig",
        "--csi-address",
        "--resync-period",
        "--snapshot-name-prefix",
        "--snapshot-name-uuid-length",
        "--worker-threads",
        "--timeout",
        "--extra-create-metadata",
        "--retry-interval-start",
        "--retry-interval-max",
        "--node-deployment",
        "--groupsnapshot-name-prefix",
        "--groupsnapshot-name-uuid-length",
        "--feature-gates",
        "--leader-election",
        "--leader-election-namespace",
        "--leader-election-lease-duration",
        "--leader-election-renew-deadline",
        "--leader-election-retry-period",
        "--leader-election-labels",
        "--kube-api-qps",
        "--kube-api-burst",
        "--http-endpoint",
        "--metrics-address",
        "--metrics-path",
        "--automaxprocs",
        "--version",
    ] {
        assert!(out.contains(flag), "{flag} missing in --help:\n{out}");
    }
    for default in ["15m0s", "\"snapshot\"", "\"groupsnapshot\"", "1m0s", "5m0s"] {
        assert!(
            out.contains(default),
            "default {default} missing in --help:\n{out}"
        );
    }
}

/// Upstream's `Test_supportsControllerCreateSnapshot` outcomes, seen from outside: a driver
/// without CREATE_DELETE_SNAPSHOT (none, another one) ends the process with exit 1.
#[tokio::test]
async fn a_driver_without_create_delete_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path());
    for (case, capabilities) in [
        ("no create snapshot", vec![Rpc::CreateDeleteVolume]),
        ("no capabilities", vec![]),
    ] {
        let driver = MockCsiDriver::start().await.unwrap();
        driver.set_controller_capabilities(capabilities);
        let (code, out) = run_to_exit(
            BIN,
            [
                format!("--csi-address={}", driver.endpoint()),
                format!("--kubeconfig={config}"),
            ],
            WAIT,
        )
        .await
        .unwrap();
        assert_eq!(code, 1, "{case}: {out}");
        assert!(
            out.contains("CSI driver mock.csi.k8s.io does not support ControllerCreateSnapshot"),
            "{case}: {out}"
        );
    }
}

/// The other two cases of `Test_supportsControllerCreateSnapshot`: the capability call fails
/// ("gRPC error"), or answers a capability without a type ("empty capability").
#[tokio::test]
async fn capability_errors_and_empty_capabilities_end_the_process() {
    use csi_proto::csi::v1::{
        ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse,
        ControllerServiceCapability,
    };
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path());
    for (case, expected) in [
        (
            "gRPC error",
            "error determining if driver supports create/delete snapshot operations",
        ),
        (
            "empty capability",
            "does not support ControllerCreateSnapshot",
        ),
    ] {
        let driver = MockCsiDriver::start().await.unwrap();
        let failing = case == "gRPC error";
        driver.handle(
            "ControllerGetCapabilities",
            move |_: ControllerGetCapabilitiesRequest| {
                if failing {
                    Err(tonic::Status::internal("mock error"))
                } else {
                    Ok(ControllerGetCapabilitiesResponse {
                        capabilities: vec![ControllerServiceCapability { r#type: None }],
                    })
                }
            },
        );
        let (code, out) = run_to_exit(
            BIN,
            [
                format!("--csi-address={}", driver.endpoint()),
                format!("--kubeconfig={config}"),
            ],
            WAIT,
        )
        .await
        .unwrap();
        assert_eq!(code, 1, "{case}: {out}");
        assert!(out.contains(expected), "{case}: {out}");
    }
}

#[tokio::test]
async fn node_deployment_needs_node_name_and_no_leader_election() {
    let (code, out) = run_to_exit(BIN, ["--node-deployment", "--leader-election"], WAIT)
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Leader election cannot happen when node-deployment is set to true"),
        "{out}"
    );
    let (code, out) = run_to_exit(BIN, ["--node-deployment"], WAIT).await.unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("The NODE_NAME environment variable must be set"),
        "{out}"
    );
}

#[tokio::test]
async fn an_empty_snapshot_name_prefix_is_refused() {
    let (code, out) = run_to_exit(BIN, ["--snapshot-name-prefix="], WAIT)
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Snapshot name prefix cannot be of length 0"),
        "{out}"
    );
}
