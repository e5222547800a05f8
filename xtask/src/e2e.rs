//! `cargo xtask e2e`: the end-to-end tests on the real local control plane.
//!
//! Builds the tools (cached) and our binaries, brings the cluster up unless one runs already,
//! runs the `csi-e2e` tests with `CSI_E2E_*` telling them where everything is, and stops the
//! cluster again if it started it — also when the tests fail.

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
    println!("==> e2e: building our binaries");
    cmd!(sh, "cargo build --locked --bins").run()?;

    println!("==> e2e: local control plane");
    let info = cluster::up()?;
    let result = run_tests(&sh, &info, &driver, args);
    if info.started {
        println!("==> e2e: stopping the control plane this run started");
        cluster::down()?;
    }
    result?;
    println!("==> e2e: passed in {:.0?}", started.elapsed());
    Ok(())
}

fn run_tests(
    sh: &Shell,
    info: &cluster::ClusterInfo,
    driver: &std::path::Path,
    args: &[String],
) -> anyhow::Result<()> {
    let _kubeconfig = sh.push_env("CSI_E2E_KUBECONFIG", &info.kubeconfig);
    let _driver = sh.push_env("CSI_E2E_DRIVER", driver);
    let _state = sh.push_env("CSI_E2E_STATE_DIR", &info.state_dir);
    cmd!(sh, "cargo test --locked -p csi-e2e {args...}")
        .run()
        .context("end-to-end tests failed (cluster logs are in target/cluster/logs)")
}
