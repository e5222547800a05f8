//! What our sidecars serve, called by the programs that call it in a cluster, with their own
//! client code (built by `cargo xtask tools` as `foreign-clients`, plus grpc-python):
//!
//! - the registration socket: the kubelet's plugin manager (`pkg/kubelet/pluginmanager`),
//!   grpc-go dialled as the kubelet dials, grpc-python, and hand-written HTTP/2 frames for the
//!   `:authority` forms no gRPC library sends by default. grpc-go sends the socket path as
//!   `:authority` when the kubelet dials a plugin socket; a registrar that rejects it leaves every
//!   node without its driver, and our own test client (which sends a valid authority) hid that;
//! - `/healthz`: the kubelet's HTTP prober, as a livenessProbe runs it;
//! - `/metrics`: Prometheus' decoder of the text format.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use csi_e2e_support::{DRIVER_NAME, DriverOptions, DriverProcess, E2eEnv};
use csi_test_support::{ChildProcess, free_port, run_to_exit, wait_for_status};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const HOST_PATH: &str = "/var/lib/kubelet/plugins/csi-mock/csi.sock";

/// `foreign-clients` (the kubelet's and Prometheus' client code), built by `cargo xtask tools`
/// and named by `cargo xtask e2e`.
fn foreign_clients() -> anyhow::Result<PathBuf> {
    tool_from_env("CSI_E2E_FOREIGN_CLIENTS")
}

/// A Python interpreter with grpcio, prepared by `cargo xtask e2e`.
fn python() -> anyhow::Result<PathBuf> {
    tool_from_env("CSI_E2E_PYTHON")
}

fn tool_from_env(var: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).with_context(|| {
        format!("{var} is not set: run the end-to-end tests with `cargo xtask e2e`")
    })?;
    if !path.exists() {
        bail!("{} ({var}) does not exist", path.display());
    }
    Ok(path)
}

/// The kubelet's plugin manager watching `dir`, as the kubelet watches `plugins_registry/`.
struct PluginManager {
    process: ChildProcess,
}

impl PluginManager {
    fn start(dir: &Path, reject: u32) -> anyhow::Result<Self> {
        let process = ChildProcess::spawn(
            foreign_clients()?,
            [
                "plugin-watch".to_string(),
                format!("-dir={}", dir.display()),
                format!("-reject={reject}"),
            ],
        )?;
        Ok(PluginManager { process })
    }

    /// The handler calls so far (`validate`, `register`, `deregister`), in order.
    fn events(&self) -> Vec<Value> {
        self.process
            .logs()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] != "watching")
            .collect()
    }

    /// Waits until the `n`-th (1-based) handler call of kind `event` and returns it.
    async fn wait_for(
        &self,
        event: &str,
        n: usize,
        others: &ChildProcess,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen: Vec<Value> = self
                .events()
                .into_iter()
                .filter(|e| e["event"] == event)
                .collect();
            if let Some(e) = seen.get(n - 1) {
                return Ok(e.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "the kubelet's plugin manager made no {n}. {event} call within {WAIT:?}\n\
                     --- plugin manager ---\n{}\n--- sidecar ---\n{}",
                    self.process.logs(),
                    others.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn registry_dir(tmp: &tempfile::TempDir) -> anyhow::Result<PathBuf> {
    let dir = tmp.path().join("plugins_registry");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `csi-sidecars` with the node-side controllers, registering into `registry`; and the address
/// of its HTTP server.
fn node_side_csi_sidecars(
    env: &E2eEnv,
    driver: &DriverProcess,
    registry: &Path,
) -> anyhow::Result<(ChildProcess, String)> {
    let address = format!("127.0.0.1:{}", free_port());
    let sidecars = ChildProcess::spawn(
        env.binary("csi-sidecars")?,
        [
            format!("--csi-address=unix:{}", driver.socket().display()),
            "--controllers=livenessprobe,node-driver-registrar".to_string(),
            format!("--kubelet-registration-path={HOST_PATH}"),
            format!("--plugin-registration-path={}", registry.display()),
            format!("--http-endpoint={address}"),
        ],
    )?;
    Ok((sidecars, address))
}

fn assert_registered_driver(event: &Value) {
    assert_eq!(event["name"], DRIVER_NAME, "{event}");
    assert_eq!(event["endpoint"], HOST_PATH, "{event}");
    assert_eq!(event["versions"], serde_json::json!(["1.0.0"]), "{event}");
}

/// Waits until the sidecar's log shows the kubelet's `NotifyRegistrationStatus` with
/// `plugin_registered=true`, `count` times.
async fn wait_for_notified_registration(
    sidecar: &ChildProcess,
    count: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let logs = sidecar.logs();
        let notified = logs
            .lines()
            .filter(|l| {
                l.contains("Received NotifyRegistrationStatus call")
                    && l.contains("plugin_registered=true")
            })
            .count();
        if notified >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no successful NotifyRegistrationStatus within {WAIT:?}:\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_kubelets_plugin_manager_registers_the_driver_through_csi_node_driver_registrar()
-> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let tmp = tempfile::tempdir()?;
    let registry = registry_dir(&tmp)?;
    let address = format!("127.0.0.1:{}", free_port());
    let mut registrar = ChildProcess::spawn(
        env.binary("csi-node-driver-registrar")?,
        [
            format!("--csi-address={}", driver.socket().display()),
            format!("--kubelet-registration-path={HOST_PATH}"),
            format!("--plugin-registration-path={}", registry.display()),
            format!("--http-endpoint={address}"),
        ],
    )?;
    let kubelet = PluginManager::start(&registry, 0)?;

    let validated = kubelet.wait_for("validate", 1, &registrar).await?;
    assert_registered_driver(&validated);
    assert_eq!(validated.get("error"), None, "{validated}");
    let registered = kubelet.wait_for("register", 1, &registrar).await?;
    assert_registered_driver(&registered);
    wait_for_notified_registration(&registrar, 1).await?;
    wait_for_status(&address, "/healthz", 200, WAIT).await?;

    // The registrar removes its socket on SIGTERM; the kubelet's watcher sees it go.
    registrar.signal("TERM")?;
    let status = registrar.wait(WAIT).await?;
    assert_eq!(status.code(), Some(0), "{}", registrar.logs());
    let deregistered = kubelet.wait_for("deregister", 1, &registrar).await?;
    assert_eq!(deregistered["name"], DRIVER_NAME);
    Ok(())
}

#[tokio::test]
async fn a_registration_the_kubelet_rejects_ends_the_standalone_registrar() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let tmp = tempfile::tempdir()?;
    let registry = registry_dir(&tmp)?;
    let mut registrar = ChildProcess::spawn(
        env.binary("csi-node-driver-registrar")?,
        [
            format!("--csi-address={}", driver.socket().display()),
            format!("--kubelet-registration-path={HOST_PATH}"),
            format!("--plugin-registration-path={}", registry.display()),
        ],
    )?;
    let kubelet = PluginManager::start(&registry, 1)?;
    let validated = kubelet.wait_for("validate", 1, &registrar).await?;
    assert_eq!(validated["error"], "rejected by foreign-clients");
    // As upstream: the container exits 1 and the kubelet restarts it.
    let status = registrar.wait(WAIT).await?;
    assert_eq!(status.code(), Some(1), "{}", registrar.logs());
    assert!(
        registrar.logs().contains("rejected by foreign-clients"),
        "{}",
        registrar.logs()
    );
    Ok(())
}

#[tokio::test]
async fn csi_sidecars_registers_again_after_the_kubelet_rejected_it() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let tmp = tempfile::tempdir()?;
    let registry = registry_dir(&tmp)?;
    let (sidecars, address) = node_side_csi_sidecars(&env, &driver, &registry)?;
    let kubelet = PluginManager::start(&registry, 1)?;

    let rejected = kubelet.wait_for("validate", 1, &sidecars).await?;
    assert_eq!(rejected["error"], "rejected by foreign-clients");
    // csi-sidecars offers the socket again instead of exiting; the kubelet's watcher sees a new
    // socket and registers it.
    let registered = kubelet.wait_for("register", 1, &sidecars).await?;
    assert_registered_driver(&registered);
    wait_for_notified_registration(&sidecars, 1).await?;
    wait_for_status(&address, "/healthz/node-driver-registrar", 200, WAIT).await?;
    Ok(())
}

#[tokio::test]
async fn every_clients_authority_is_answered() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let tmp = tempfile::tempdir()?;
    let registry = registry_dir(&tmp)?;
    let registrar = ChildProcess::spawn(
        env.binary("csi-node-driver-registrar")?,
        [
            format!("--csi-address={}", driver.socket().display()),
            format!("--kubelet-registration-path={HOST_PATH}"),
            format!("--plugin-registration-path={}", registry.display()),
        ],
    )?;
    let socket = registry.join(format!("{DRIVER_NAME}-reg.sock"));
    csi_test_support::wait_for_path(&socket, WAIT)
        .await
        .map_err(|e| e.context(registrar.logs()))?;
    let socket = socket.display().to_string();
    let percent_encoded = socket.replace('/', "%2F");

    let kubelet = foreign_clients()?.display().to_string();
    let python = python()?.display().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients/grpc_python_getinfo.py")
        .display()
        .to_string();
    let s = |v: &str| v.to_string();
    let clients: Vec<(&str, String, Vec<String>)> = vec![
        (
            "grpc-go dialling the socket path, as the kubelet (authority = the path)",
            kubelet.clone(),
            vec![
                s("plugin-getinfo"),
                format!("-socket={socket}"),
                s("-target=kubelet"),
            ],
        ),
        (
            "grpc-go with a unix:// target (authority = localhost)",
            kubelet.clone(),
            vec![
                s("plugin-getinfo"),
                format!("-socket={socket}"),
                s("-target=unix"),
            ],
        ),
        (
            "HTTP/2 without :authority",
            kubelet.clone(),
            vec![
                s("plugin-raw"),
                format!("-socket={socket}"),
                s("-authority=absent"),
            ],
        ),
        (
            "HTTP/2 with an empty :authority",
            kubelet.clone(),
            vec![
                s("plugin-raw"),
                format!("-socket={socket}"),
                s("-authority=empty"),
            ],
        ),
        (
            "HTTP/2 with a percent-encoded path as :authority",
            kubelet.clone(),
            vec![
                s("plugin-raw"),
                format!("-socket={socket}"),
                format!("-authority={percent_encoded}"),
            ],
        ),
        (
            "grpc-python, its own default authority",
            python.clone(),
            vec![script.clone(), format!("--socket={socket}")],
        ),
        (
            "grpc-python with the socket path as authority",
            python.clone(),
            vec![
                script.clone(),
                format!("--socket={socket}"),
                format!("--authority={socket}"),
            ],
        ),
        (
            "grpc-python with the percent-encoded path as authority",
            python.clone(),
            vec![
                script.clone(),
                format!("--socket={socket}"),
                format!("--authority={percent_encoded}"),
            ],
        ),
    ];
    for (name, program, args) in clients {
        let (code, output) = run_to_exit(&program, &args, WAIT).await?;
        assert_eq!(
            code,
            0,
            "{name}: {output}\n--- registrar ---\n{}",
            registrar.logs()
        );
        let answer: Value = output
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok())
            .with_context(|| format!("{name}: no JSON answer in {output:?}"))?;
        assert_eq!(answer["type"], "CSIPlugin", "{name}");
        assert_registered_driver(&answer);
    }
    Ok(())
}

/// Runs a `foreign-clients` command and returns the JSON it printed.
async fn foreign_json(args: &[String]) -> anyhow::Result<Value> {
    let (code, output) = run_to_exit(foreign_clients()?, args, WAIT).await?;
    if code != 0 {
        bail!("foreign-clients {args:?} exited {code}: {output}");
    }
    output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("no JSON answer from foreign-clients {args:?}: {output:?}"))
}

async fn kubelet_probe(url: &str) -> anyhow::Result<String> {
    let answer = foreign_json(&["probe".to_string(), format!("-url={url}")]).await?;
    Ok(answer["result"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn the_kubelets_prober_and_prometheus_read_csi_sidecars() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let mut driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let tmp = tempfile::tempdir()?;
    let registry = registry_dir(&tmp)?;
    let (sidecars, address) = node_side_csi_sidecars(&env, &driver, &registry)?;
    let kubelet = PluginManager::start(&registry, 0)?;
    kubelet.wait_for("register", 1, &sidecars).await?;
    wait_for_status(&address, "/healthz", 200, WAIT).await?;

    assert_eq!(
        kubelet_probe(&format!("http://{address}/healthz")).await?,
        "success"
    );

    let scrape = foreign_json(&[
        "scrape".to_string(),
        format!("-url=http://{address}/metrics"),
    ])
    .await?;
    assert_eq!(
        scrape["format"], "text/plain; version=0.0.4; charset=utf-8",
        "{scrape}"
    );
    let families = &scrape["families"];
    for (name, kind) in [
        ("csi_sidecar_operations_seconds", "HISTOGRAM"),
        ("process_start_time_seconds", "GAUGE"),
        ("process_cpu_seconds_total", "COUNTER"),
        ("csi_sidecars_controller_enabled", "GAUGE"),
    ] {
        assert_eq!(families[name]["type"], kind, "{name} in {scrape}");
    }
    assert_eq!(
        families["csi_sidecars_controller_enabled"]["series"], 2,
        "{scrape}"
    );

    // The driver goes: the livenessprobe check fails for the kubelet too, the registrar's not.
    driver.kill().await?;
    wait_for_status(&address, "/healthz/livenessprobe", 500, WAIT).await?;
    assert_eq!(
        kubelet_probe(&format!("http://{address}/healthz/livenessprobe")).await?,
        "failure"
    );
    assert_eq!(
        kubelet_probe(&format!("http://{address}/healthz/node-driver-registrar")).await?,
        "success"
    );
    Ok(())
}
