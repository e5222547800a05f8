//! `cargo xtask e2e`: the end-to-end tests on the real local control plane.
//!
//! Builds the tools (cached) and our binaries, brings the cluster up unless one runs already,
//! runs the `csi-e2e` tests with `CSI_E2E_*` telling them where everything is, and stops the
//! cluster again if it started it — also when the tests fail.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use xshell::{Shell, cmd};

use crate::{cluster, tools};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(crate::project_root());
    let started = Instant::now();

    println!("==> e2e: tools (built once from pinned module versions, then cached)");
    let driver = tools::ensure("csi-mock-driver")?;
    let go_clients = tools::ensure("foreign-clients")?;
    let python = tools::python::ensure()?;
    let go_provisioner = tools::ensure("csi-provisioner")?;
    let go_resizer = tools::ensure("csi-resizer")?;
    let go_translation = tools::ensure("csi-translation")?;
    let go_snapshot_controller = tools::ensure("snapshot-controller")?;
    let go_snapshotter = tools::ensure("csi-snapshotter")?;
    println!("==> e2e: building our binaries");
    cmd!(sh, "cargo build --locked --bins").run()?;

    println!("==> e2e: local control plane");
    let info = cluster::up()?;
    let test_tools = TestTools {
        go_clients,
        python,
        go_provisioner,
        go_resizer,
        go_translation,
        go_snapshot_controller,
        go_snapshotter,
    };
    let result = run_tests(&sh, &info, &driver, &test_tools, args);
    if info.started {
        println!("==> e2e: stopping the control plane this run started");
        cluster::down()?;
    }
    result?;
    println!("==> e2e: passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Third-party programs the tests run besides the driver: other programs' clients of what we
/// serve, and upstream's sidecars to compare ours with.
struct TestTools {
    /// `foreign-clients`: the kubelet's plugin manager and prober, Prometheus' decoder.
    go_clients: PathBuf,
    /// A Python interpreter with grpcio.
    python: PathBuf,
    /// Upstream's Go `csi-provisioner`, which ours is compared with object for object.
    go_provisioner: PathBuf,
    /// Upstream's Go `csi-resizer`, likewise.
    go_resizer: PathBuf,
    /// Kubernetes' csi-translation-lib on a corpus, which our translation is compared with.
    go_translation: PathBuf,
    /// Upstream's Go `snapshot-controller` and `csi-snapshotter`, likewise.
    go_snapshot_controller: PathBuf,
    go_snapshotter: PathBuf,
}

fn run_tests(
    sh: &Shell,
    info: &cluster::ClusterInfo,
    driver: &Path,
    test_tools: &TestTools,
    args: &[String],
) -> anyhow::Result<()> {
    let _kubeconfig = sh.push_env("CSI_E2E_KUBECONFIG", &info.kubeconfig);
    let _kubelet = sh.push_env("CSI_E2E_FOREIGN_CLIENTS", &test_tools.go_clients);
    let _python = sh.push_env("CSI_E2E_PYTHON", &test_tools.python);
    let _provisioner = sh.push_env("CSI_E2E_GO_PROVISIONER", &test_tools.go_provisioner);
    let _resizer = sh.push_env("CSI_E2E_GO_RESIZER", &test_tools.go_resizer);
    let _translation = sh.push_env("CSI_E2E_GO_TRANSLATION", &test_tools.go_translation);
    let _snapshot_controller = sh.push_env(
        "CSI_E2E_GO_SNAPSHOT_CONTROLLER",
        &test_tools.go_snapshot_controller,
    );
    let _snapshotter = sh.push_env("CSI_E2E_GO_SNAPSHOTTER", &test_tools.go_snapshotter);
    let _driver = sh.push_env("CSI_E2E_DRIVER", driver);
    let _state = sh.push_env("CSI_E2E_STATE_DIR", &info.state_dir);
    cmd!(sh, "cargo test --locked -p csi-e2e {args...}")
        .run()
        .context("end-to-end tests failed (cluster logs are in target/cluster/logs)")
}
