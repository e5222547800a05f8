//! The node-side sidecars against a real CSI driver process (see `csi_e2e_support::DriverProcess`
//! for why it is Kubernetes' e2e mock driver and not csi-driver-host-path).

use std::time::Duration;

use csi_e2e_support::{DRIVER_NAME, DriverOptions, DriverProcess, E2eEnv};
use csi_test_support::{ChildProcess, FakeKubelet, free_port, http_get, wait_for_status};

const WAIT: Duration = Duration::from_secs(60);
const HOST_PATH: &str = "/var/lib/kubelet/plugins/csi-mock/csi.sock";

#[tokio::test]
async fn livenessprobe_follows_the_real_driver() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let mut driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let address = format!("127.0.0.1:{}", free_port());
    let probe = ChildProcess::spawn(
        env.binary("livenessprobe")?,
        [
            format!("--csi-address={}", driver.endpoint()),
            format!("--http-endpoint={address}"),
        ],
    )?;
    let body = wait_for_status(&address, "/healthz", 200, WAIT)
        .await
        .map_err(|e| e.context(probe.logs()))?;
    assert_eq!(body, "ok");
    let (_, metrics) = http_get(&address, "/metrics").await?;
    assert!(
        metrics.contains(&format!(r#"driver_name="{DRIVER_NAME}""#)),
        "{metrics}"
    );

    driver.kill().await?;
    let body = wait_for_status(&address, "/healthz", 500, WAIT).await?;
    assert!(!body.is_empty());
    Ok(())
}

#[tokio::test]
async fn the_registrar_registers_the_real_driver_name() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let registry = tempfile_dir()?;
    let registrar = ChildProcess::spawn(
        env.binary("csi-node-driver-registrar")?,
        [
            format!("--csi-address={}", driver.socket().display()),
            format!("--kubelet-registration-path={HOST_PATH}"),
            format!("--plugin-registration-path={}", registry.path().display()),
        ],
    )?;
    let info = FakeKubelet::register(registry.path(), DRIVER_NAME, WAIT)
        .await
        .map_err(|e| e.context(registrar.logs()))?;
    assert_eq!(info.name, DRIVER_NAME);
    assert_eq!(info.endpoint, HOST_PATH);
    Ok(())
}

#[tokio::test]
async fn csi_sidecars_runs_the_node_side_on_the_real_driver() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let mut driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let registry = tempfile_dir()?;
    let address = format!("127.0.0.1:{}", free_port());
    let sidecars = ChildProcess::spawn(
        env.binary("csi-sidecars")?,
        [
            format!("--csi-address=unix:{}", driver.socket().display()),
            "--controllers=livenessprobe,node-driver-registrar".to_string(),
            format!("--kubelet-registration-path={HOST_PATH}"),
            format!("--plugin-registration-path={}", registry.path().display()),
            format!("--http-endpoint={address}"),
        ],
    )?;
    let info = FakeKubelet::register(registry.path(), DRIVER_NAME, WAIT)
        .await
        .map_err(|e| e.context(sidecars.logs()))?;
    assert_eq!(info.name, DRIVER_NAME);
    wait_for_status(&address, "/healthz", 200, WAIT).await?;

    driver.kill().await?;
    let body = wait_for_status(&address, "/healthz/livenessprobe", 500, WAIT).await?;
    assert!(!body.is_empty());
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<TempDir> {
    Ok(tempfile::tempdir()?)
}

use tempfile::TempDir;
