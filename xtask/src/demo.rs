//! `cargo xtask demo`: `csi-sidecars` on a real API server and a real CSI driver, narrated.
//!
//! Brings the local control plane up (etcd, kube-apiserver, kube-controller-manager), starts a
//! real CSI driver process and `csi-sidecars` with every controller that exists so far, plays
//! the kubelet's plugin watcher, and shows what each step proves. The control plane stays up at
//! the end so you can look around; the driver and `csi-sidecars` stop with the demo.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use csi_proto::csi::v1 as csi;
use csi_test_support::{
    ChildProcess, FakeKubelet, free_port, http_get, unix_channel, wait_for_path, wait_for_status,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use xshell::{Shell, cmd};

use crate::{cluster, tools};

const DRIVER: &str = "demo.csi.k8s.io";
const NODE: &str = "demo-node";
const WAIT: Duration = Duration::from_secs(30);

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("cargo xtask demo takes no arguments (got {arg:?})");
    }
    let root = crate::project_root();
    let sh = Shell::new()?;
    sh.change_dir(&root);

    say("Tools: etcd, kube-apiserver, kube-controller-manager, kubectl and a CSI driver");
    println!(
        "    (built once from the pinned Go module versions in release-tools/e2e-versions.toml, then cached)"
    );
    let driver_bin = tools::ensure("csi-mock-driver")?;
    let kubectl = tools::ensure("kubectl")?;
    say("Building csi-sidecars");
    cmd!(
        sh,
        "cargo build --quiet --package csi-sidecars --bin csi-sidecars"
    )
    .run()?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binary = target.join("debug").join("csi-sidecars");

    say("Local control plane: etcd, kube-apiserver (RBAC on), kube-controller-manager");
    let info = cluster::up()?;
    println!("    API server: {}", info.server);
    proves("a real API server, started without a container runtime");

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(demo(&binary, &driver_bin, &info))?;

    say("Done. The control plane is still running; look around:");
    println!("    export KUBECONFIG={}", info.kubeconfig.display());
    println!("    {} get nodes,csinodes -o wide", kubectl.display());
    println!("    {} get csinode {NODE} -o yaml", kubectl.display());
    println!("  and stop it with:");
    println!("    cargo xtask cluster down");
    Ok(())
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

async fn demo(binary: &Path, driver_bin: &Path, info: &cluster::ClusterInfo) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let registry_dir = work.path().join("plugins_registry");
    std::fs::create_dir_all(&registry_dir)?;
    let socket = work.path().join("csi.sock");

    say(&format!(
        "Starting a real CSI driver process named {DRIVER}"
    ));
    let mut driver = ChildProcess::spawn(
        driver_bin,
        [
            format!("--endpoint={}", socket.display()),
            format!("--name={DRIVER}"),
        ],
    )?;
    wait_for_path(&socket, WAIT).await?;
    println!("    socket: {}", socket.display());
    println!(
        "    (Kubernetes' own e2e mock CSI driver; csi-driver-host-path cannot be built here)"
    );

    let address = format!("127.0.0.1:{}", free_port());
    let host_path = format!("/var/lib/kubelet/plugins/{DRIVER}/csi.sock");
    let args = vec![
        format!("--csi-address=unix:{}", socket.display()),
        "--controllers=livenessprobe,node-driver-registrar".to_string(),
        format!("--kubelet-registration-path={host_path}"),
        format!("--plugin-registration-path={}", registry_dir.display()),
        format!("--http-endpoint={address}"),
    ];
    say("Starting csi-sidecars with the node-side controllers");
    println!("    csi-sidecars {}", args.join(" "));
    let mut sidecars = ChildProcess::spawn(binary, &args)?;
    let result = walk_through(
        &socket,
        &mut driver,
        &mut sidecars,
        &registry_dir,
        &address,
        info,
    )
    .await;
    if result.is_err() {
        println!("\ncsi-sidecars output:\n{}", sidecars.logs());
        println!("\ndriver output:\n{}", driver.logs());
    }
    result
}

async fn walk_through(
    socket: &Path,
    driver: &mut ChildProcess,
    sidecars: &mut ChildProcess,
    registry_dir: &Path,
    address: &str,
    info: &cluster::ClusterInfo,
) -> anyhow::Result<()> {
    let registration = registry_dir.join(format!("{DRIVER}-reg.sock"));
    wait_for_path(&registration, WAIT).await?;
    say("The registrar created its registration socket");
    println!("    {}", registration.display());
    proves("the driver's name came from GetPluginInfo over csi-sidecars' one driver connection");

    say("A fake kubelet plugin watcher registers the driver (GetInfo, NotifyRegistrationStatus)");
    let plugin = FakeKubelet::register(registry_dir, DRIVER, WAIT).await?;
    println!(
        "    GetInfo: type={} name={} endpoint={} versions={:?}",
        plugin.r#type, plugin.name, plugin.endpoint, plugin.supported_versions
    );

    say("As the kubelet does next: NodeGetInfo on the driver, then the Node and CSINode objects");
    let mut node_client = csi::node_client::NodeClient::new(unix_channel(socket).await?);
    let node_info = node_client
        .node_get_info(csi::NodeGetInfoRequest {})
        .await
        .context("NodeGetInfo")?
        .into_inner();
    println!("    NodeGetInfo: node_id={}", node_info.node_id);
    let client = crate::cluster::api::client(&info.kubeconfig).await?;
    publish_node(&client, &node_info.node_id).await?;
    println!(
        "    created Node {NODE} and CSINode {NODE} (driver {DRIVER}, nodeID {})",
        node_info.node_id
    );
    proves("the registration a real kubelet would make, visible in the API server");

    say("One /healthz for both controllers");
    let body = wait_for_status(address, "/healthz?verbose", 200, WAIT).await?;
    show(&body);
    proves("one HTTP server, a named check per controller");

    say("The driver process dies: the livenessprobe check fails, the registrar's does not");
    driver.signal("KILL")?;
    driver.wait(WAIT).await?;
    let body = wait_for_status(address, "/healthz/livenessprobe", 500, WAIT).await?;
    println!("    /healthz/livenessprobe: HTTP 500 {body}");
    let (_, body) = http_get(address, "/healthz/node-driver-registrar").await?;
    println!("    /healthz/node-driver-registrar: {body}");
    proves(
        "the kubelet's liveness probe would restart the driver container, as with upstream's livenessprobe",
    );

    say(
        "The kubelet rejects a registration: csi-sidecars keeps running and offers the socket again",
    );
    let kubelet = FakeKubelet::connect(&registration).await?;
    kubelet
        .notify_registration_status(false, "demo: simulated rejection")
        .await
        .context("NotifyRegistrationStatus")?;
    drop(kubelet);
    let body = wait_for_status(address, "/healthz/node-driver-registrar", 500, WAIT).await?;
    println!("    /healthz/node-driver-registrar: HTTP 500 {body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_for_path(&registration, WAIT).await?;
    FakeKubelet::register(registry_dir, DRIVER, WAIT).await?;
    wait_for_status(address, "/healthz/node-driver-registrar", 200, WAIT).await?;
    println!("    registered again; /healthz/node-driver-registrar: HTTP 200 ok");
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
        "    {status}; registration socket present: {}",
        registration.exists()
    );
    if !status.success() || registration.exists() {
        bail!("csi-sidecars did not shut down cleanly");
    }
    proves("the socket is removed on shutdown, so the kubelet deregisters the driver");
    Ok(())
}

/// Creates (or updates) the Node and its CSINode as the kubelet would after registering the
/// driver.
async fn publish_node(client: &Client, node_id: &str) -> anyhow::Result<()> {
    let params = PatchParams::apply("csi-sidecars-demo").force();
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(NODE.to_string()),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    nodes.patch(NODE, &params, &Patch::Apply(&node)).await?;
    let csinodes: Api<CSINode> = Api::all(client.clone());
    let csinode = CSINode {
        metadata: ObjectMeta {
            name: Some(NODE.to_string()),
            ..ObjectMeta::default()
        },
        spec: CSINodeSpec {
            drivers: vec![CSINodeDriver {
                name: DRIVER.to_string(),
                node_id: node_id.to_string(),
                ..CSINodeDriver::default()
            }],
        },
    };
    csinodes
        .patch(NODE, &params, &Patch::Apply(&csinode))
        .await?;
    Ok(())
}
