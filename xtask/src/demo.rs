//! `cargo xtask demo`: the node side of `csi-sidecars`, narrated.
//!
//! Until the local control plane exists, the demo plays the kubelet and the driver itself: a
//! mock CSI driver (in this process) and a fake kubelet plugin watcher talk to a real
//! `csi-sidecars` process running livenessprobe and node-driver-registrar.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use csi_test_support::{
    ChildProcess, FakeKubelet, MockCsiDriver, ProbeReply, free_port, http_get, wait_for_path,
    wait_for_status,
};
use xshell::{Shell, cmd};

const DRIVER: &str = "demo.csi.k8s.io";
const WAIT: Duration = Duration::from_secs(30);

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("cargo xtask demo takes no arguments (got {arg:?})");
    }
    let root = crate::project_root();
    let sh = Shell::new()?;
    sh.change_dir(&root);
    say("Building csi-sidecars (debug profile)");
    cmd!(
        sh,
        "cargo build --quiet --package csi-sidecars --bin csi-sidecars"
    )
    .run()?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binary = target.join("debug").join("csi-sidecars");

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(demo(&binary))
}

fn say(line: &str) {
    println!("\n==> {line}");
}

fn proves(line: &str) {
    println!("    proves: {line}");
}

fn show(text: &str) {
    for line in text.lines() {
        println!("    | {line}");
    }
}

async fn demo(binary: &Path) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let registry_dir = work.path().join("plugins_registry");
    std::fs::create_dir_all(&registry_dir)?;

    say(&format!("Starting a mock CSI driver named {DRIVER}"));
    let driver = MockCsiDriver::start().await?;
    driver.set_driver_name(DRIVER);
    println!("    socket: {}", driver.socket_path().display());

    let address = format!("127.0.0.1:{}", free_port());
    let host_path = format!("/var/lib/kubelet/plugins/{DRIVER}/csi.sock");
    let args = vec![
        format!("--csi-address=unix:{}", driver.socket_path().display()),
        "--controllers=livenessprobe,node-driver-registrar".to_string(),
        format!("--kubelet-registration-path={host_path}"),
        format!("--plugin-registration-path={}", registry_dir.display()),
        format!("--http-endpoint={address}"),
    ];
    say("Starting csi-sidecars with the node-side controllers");
    println!("    csi-sidecars {}", args.join(" "));
    let mut sidecars = ChildProcess::spawn(binary, &args)?;
    let result = walk_through(&driver, &mut sidecars, &registry_dir, &address).await;
    if result.is_err() {
        println!("\ncsi-sidecars output:\n{}", sidecars.logs());
    }
    result
}

async fn walk_through(
    driver: &MockCsiDriver,
    sidecars: &mut ChildProcess,
    registry_dir: &Path,
    address: &str,
) -> anyhow::Result<()> {
    let socket = registry_dir.join(format!("{DRIVER}-reg.sock"));
    wait_for_path(&socket, WAIT).await?;
    say("The registrar created its registration socket");
    println!("    {}", socket.display());
    proves("the driver's name came from GetPluginInfo over the one CSI connection");

    say("A fake kubelet plugin watcher registers the driver (GetInfo, NotifyRegistrationStatus)");
    let info = FakeKubelet::register(registry_dir, DRIVER, WAIT).await?;
    println!(
        "    GetInfo: type={} name={} endpoint={} versions={:?}",
        info.r#type, info.name, info.endpoint, info.supported_versions
    );
    proves(
        "the kubelet would register the driver exactly as with upstream's node-driver-registrar",
    );

    say("One /healthz for both controllers");
    let body = wait_for_status(address, "/healthz?verbose", 200, WAIT).await?;
    show(&body);
    proves("one HTTP server, a named check per controller");

    say("The driver reports not ready: the livenessprobe check fails, the registrar's does not");
    driver.set_probe(ProbeReply::NotReady);
    let (status, body) = http_get(address, "/healthz?verbose").await?;
    println!("    HTTP {status}");
    show(&body);
    proves(
        "the kubelet's liveness probe would restart the driver container, as with upstream's livenessprobe",
    );
    driver.set_probe(ProbeReply::Ready);

    say(
        "The kubelet rejects a registration: csi-sidecars keeps running and offers the socket again",
    );
    let kubelet = FakeKubelet::connect(&socket).await?;
    kubelet
        .notify_registration_status(false, "demo: simulated rejection")
        .await
        .context("NotifyRegistrationStatus")?;
    drop(kubelet);
    let body = wait_for_status(address, "/healthz/node-driver-registrar", 500, WAIT).await?;
    println!("    /healthz/node-driver-registrar: HTTP 500 {body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_for_path(&socket, WAIT).await?;
    FakeKubelet::register(registry_dir, DRIVER, WAIT).await?;
    wait_for_status(address, "/healthz", 200, WAIT).await?;
    println!("    registered again; /healthz: HTTP 200 ok");
    proves(
        "one controller's failure does not restart the others (upstream's registrar would exit 1)",
    );

    say("One metrics registry, in the Go client's format");
    let (_, metrics) = http_get(address, "/metrics").await?;
    let interesting: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("csi_sidecar_operations_seconds_count")
                || l.starts_with("csi_sidecars_controller_enabled")
                || l.starts_with("process_resident_memory_bytes")
        })
        .collect();
    show(&interesting.join("\n"));
    proves("dashboards built on upstream's csi_sidecar_operations_seconds keep working");

    say("SIGTERM: graceful shutdown");
    sidecars.signal("TERM")?;
    let status = sidecars.wait(WAIT).await?;
    println!(
        "    exit status: {status}; registration socket present: {}",
        socket.exists()
    );
    if !status.success() || socket.exists() {
        bail!("csi-sidecars did not shut down cleanly");
    }
    proves("the socket is removed on shutdown, so the kubelet deregisters the driver");

    say("Done. To look around yourself:");
    println!("    cargo build -p csi-sidecars && target/debug/csi-sidecars --help");
    println!("    cargo xtask ci        # every check CI runs");
    Ok(())
}
