//! Restarting a process of the shared control plane from a test
//! ([`E2eEnv::restart_control_plane`]), through `cargo xtask cluster restart`, which reads the
//! same state directory (`CSI_E2E_STATE_DIR`: pids, ports, certificates) the cluster was
//! started from. Every test file shares one control plane: a test that restarts a process must
//! be alone in its file, and leaves the cluster ready.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::E2eEnv;

/// A process of the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlPlaneProcess {
    /// etcd.
    Etcd,
    /// kube-apiserver.
    ApiServer,
    /// kube-controller-manager.
    ControllerManager,
}

impl ControlPlaneProcess {
    /// Its name, as `cargo xtask cluster restart` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ControlPlaneProcess::Etcd => "etcd",
            ControlPlaneProcess::ApiServer => "kube-apiserver",
            ControlPlaneProcess::ControllerManager => "kube-controller-manager",
        }
    }
}

impl E2eEnv {
    /// Stops `process` of the running control plane and starts it again (same flags, ports,
    /// data), waiting until the API server is ready; returns how long that took. Runs the
    /// xtask binary of the target directory the cluster's state lives in (or `cargo xtask`
    /// when it is not built there).
    pub fn restart_control_plane(&self, process: ControlPlaneProcess) -> anyhow::Result<Duration> {
        let state = self.state_dir()?;
        let target = state
            .parent()
            .context("the cluster state directory has no parent")?
            .to_path_buf();
        let xtask = target.join("debug").join("xtask");
        let mut command = if xtask.exists() {
            Command::new(&xtask)
        } else {
            let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
            cargo.arg("xtask");
            cargo
        };
        command
            .args(["cluster", "restart", process.name()])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(repo_root());
        let began = Instant::now();
        let output = command
            .output()
            .with_context(|| format!("running {command:?}"))?;
        if !output.status.success() {
            bail!(
                "restarting {} failed ({}):\n{}{}",
                process.name(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(began.elapsed())
    }
}

fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .to_path_buf()
}
