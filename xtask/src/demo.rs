//! `cargo xtask demo`: `csi-sidecars` on a real API server and a real CSI driver, narrated.
//!
//! Brings the local control plane up (etcd, kube-apiserver, kube-controller-manager), starts a
//! real CSI driver process and `csi-sidecars` with every controller that exists so far
//! (attacher, provisioner, resizer, livenessprobe, node-driver-registrar), plays the kubelet's
//! plugin watcher, provisions a claim, attaches and detaches its volume through
//! kube-controller-manager's VolumeAttachments, grows the claim, snapshots it and restores the
//! snapshot into a new claim (once our snapshot-controller and the snapshotter exist; until
//! then that step is left out), deletes it (and so the volume), shows a volume its driver
//! reports abnormal on its claim (health-monitor), and shows what each step proves. The
//! control plane stays up at the end so you can look around; the driver and `csi-sidecars`
//! stop with the demo.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use csi_proto::csi::v1 as csi;
use csi_test_support::{
    ChildProcess, FakeKubelet, free_port, http_get, unix_channel, wait_for_path, wait_for_status,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{
    CSINode, CSINodeDriver, CSINodeSpec, StorageClass, VolumeAttachment,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use xshell::{Shell, cmd};

use crate::{cluster, tools};

mod health;
mod snapshots;

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
    // Snapshots join the demo once our snapshot-controller and the snapshotter exist.
    if root
        .join("controllers/snapshot-controller/Cargo.toml")
        .exists()
    {
        say("Building snapshot-controller");
        let built = cmd!(sh, "cargo build --quiet --bin snapshot-controller").run();
        if let Err(e) = built {
            println!("    (not built, the demo goes on without snapshots: {e})");
        }
    }
    let snapshot_controller = snapshots::available(&root, &target, &binary);

    say("Local control plane: etcd, kube-apiserver (RBAC on), kube-controller-manager");
    let info = cluster::up()?;
    println!("    API server: {}", info.server);
    proves("a real API server, started without a container runtime");

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(demo(
            &binary,
            snapshot_controller.as_deref(),
            &driver_bin,
            &info,
        ))?;

    say("Done. The control plane is still running; look around:");
    println!("    export KUBECONFIG={}", info.kubeconfig.display());
    println!(
        "    {} get nodes,csinodes,pv,pvc -o wide",
        kubectl.display()
    );
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

async fn demo(
    binary: &Path,
    snapshot_controller: Option<&Path>,
    driver_bin: &Path,
    info: &cluster::ClusterInfo,
) -> anyhow::Result<()> {
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

    let node_address = format!("127.0.0.1:{}", free_port());
    let controller_address = format!("127.0.0.1:{}", free_port());
    let host_path = format!("/var/lib/kubelet/plugins/{DRIVER}/csi.sock");
    // As a driver is deployed: the controller side in a Deployment, the node side in a
    // DaemonSet — two csi-sidecars processes, each with the controllers of its side.
    let controller_args = vec![
        format!("--csi-address=unix:{}", socket.display()),
        if snapshot_controller.is_some() {
            "--controllers=attacher,provisioner,resizer,snapshotter,livenessprobe".to_string()
        } else {
            "--controllers=attacher,provisioner,resizer,livenessprobe".to_string()
        },
        format!("--kubeconfig={}", info.kubeconfig.display()),
        "--leader-election".to_string(),
        "--leader-election-namespace=default".to_string(),
        format!("--http-endpoint={controller_address}"),
    ];
    let node_args = vec![
        format!("--csi-address=unix:{}", socket.display()),
        "--controllers=livenessprobe,node-driver-registrar".to_string(),
        format!("--kubelet-registration-path={host_path}"),
        format!("--plugin-registration-path={}", registry_dir.display()),
        format!("--http-endpoint={node_address}"),
    ];
    say("Starting csi-sidecars twice, as a driver deploys it: controller side and node side");
    println!("    controller: csi-sidecars {}", controller_args.join(" "));
    println!("    node:       csi-sidecars {}", node_args.join(" "));
    let mut controller = ChildProcess::spawn(binary, &controller_args)?;
    let mut node = ChildProcess::spawn(binary, &node_args)?;
    // Cluster-wide, its own binary: not a sidecar.
    let snapshot_controller = match snapshot_controller {
        Some(path) => {
            let args = [
                format!("--kubeconfig={}", info.kubeconfig.display()),
                "--leader-election".to_string(),
                "--leader-election-namespace=default".to_string(),
            ];
            println!("    snapshot-controller {}", args.join(" "));
            Some(ChildProcess::spawn(path, args)?)
        }
        None => {
            println!("    (our snapshot-controller is not built yet: no snapshots in this demo)");
            None
        }
    };
    let mut demo = Demo {
        socket: &socket,
        driver: &mut driver,
        controller: &mut controller,
        node: &mut node,
        registry_dir: &registry_dir,
        snapshots: snapshot_controller.is_some(),
        controller_address: &controller_address,
        node_address: &node_address,
        info,
    };
    let mut result = demo.walk_through().await;
    if result.is_ok() {
        let client = cluster::api::client(&info.kubeconfig).await?;
        result = health::step(binary, info, &client).await;
    }
    if result.is_err() {
        println!(
            "\ncontroller-side csi-sidecars output:\n{}",
            demo.controller.logs()
        );
        println!("\nnode-side csi-sidecars output:\n{}", demo.node.logs());
        println!("\ndriver output:\n{}", demo.driver.logs());
        if let Some(process) = &snapshot_controller {
            println!("\nsnapshot-controller output:\n{}", process.logs());
        }
    }
    result
}

struct Demo<'a> {
    socket: &'a Path,
    driver: &'a mut ChildProcess,
    controller: &'a mut ChildProcess,
    node: &'a mut ChildProcess,
    registry_dir: &'a Path,
    /// Whether snapshot-controller runs and csi-sidecars has the snapshotter.
    snapshots: bool,
    controller_address: &'a str,
    node_address: &'a str,
    info: &'a cluster::ClusterInfo,
}

impl Demo<'_> {
    async fn walk_through(&mut self) -> anyhow::Result<()> {
        let registry_dir = self.registry_dir;
        let registration = registry_dir.join(format!("{DRIVER}-reg.sock"));
        wait_for_path(&registration, WAIT).await?;
        say("Node side: the registrar created its registration socket");
        println!("    {}", registration.display());
        proves(
            "the driver's name came from GetPluginInfo over csi-sidecars' one driver connection",
        );

        say(
            "A fake kubelet plugin watcher registers the driver (GetInfo, NotifyRegistrationStatus)",
        );
        let plugin = FakeKubelet::register(registry_dir, DRIVER, WAIT).await?;
        println!(
            "    GetInfo: type={} name={} endpoint={} versions={:?}",
            plugin.r#type, plugin.name, plugin.endpoint, plugin.supported_versions
        );

        say(
            "As the kubelet does next: NodeGetInfo on the driver, then the Node and CSINode objects",
        );
        let mut node_client = csi::node_client::NodeClient::new(unix_channel(self.socket).await?);
        let node_info = node_client
            .node_get_info(csi::NodeGetInfoRequest {})
            .await
            .context("NodeGetInfo")?
            .into_inner();
        println!("    NodeGetInfo: node_id={}", node_info.node_id);
        let client = crate::cluster::api::client(&self.info.kubeconfig).await?;
        publish_node(&client, &node_info.node_id).await?;
        println!(
            "    created Node {NODE} and CSINode {NODE} (driver {DRIVER}, nodeID {})",
            node_info.node_id
        );
        proves("the registration a real kubelet would make, visible in the API server");

        say(
            "Controller side: leader election, then the attacher's, provisioner's and resizer's watches",
        );
        let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
        let lease_name = "csi-sidecars-demo-csi-k8s-io";
        let holder = wait_for(|| async {
            leases
                .get_opt(lease_name)
                .await
                .ok()??
                .spec?
                .holder_identity
        })
        .await
        .context("the controller side never took its lease")?;
        println!("    Lease default/{lease_name} held by {holder}");
        let body = wait_for_status(self.controller_address, "/healthz?verbose", 200, WAIT).await?;
        show(&body);
        proves("one lease for the whole process; /healthz/leader-election as upstream serves it");

        say("Node side: one /healthz for both node controllers");
        let body = wait_for_status(self.node_address, "/healthz?verbose", 200, WAIT).await?;
        show(&body);
        proves("one HTTP server, a named check per controller");

        say("A claim of a StorageClass of this driver: the provisioner creates its volume");
        let pv = create_claim(&client).await?;
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        let volume = pvs.get(&pv).await?;
        let csi_source = volume
            .spec
            .as_ref()
            .and_then(|s| s.csi.clone())
            .unwrap_or_default();
        println!(
            "    claim default/{PVC} Bound to {pv}: driver {}, volumeHandle {}, finalizers {:?}",
            csi_source.driver,
            csi_source.volume_handle,
            volume.metadata.finalizers.clone().unwrap_or_default()
        );
        proves(
            "CreateVolume through the one driver connection; the PV as external-provisioner writes it",
        );

        say(
            "A pod on that node uses the claim: kube-controller-manager creates a VolumeAttachment",
        );
        create_pod(&client).await?;
        let attachments: Api<VolumeAttachment> = Api::all(client.clone());
        let va = wait_for(|| async {
            attachments
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|va| {
                    va.spec.source.persistent_volume_name.as_deref() == Some(pv.as_str())
                        && va.status.as_ref().is_some_and(|s| s.attached)
                })
        })
        .await
        .context("the VolumeAttachment was not attached")?;
        println!(
            "    VolumeAttachment {} attached=true, metadata {:?}, finalizers {:?}",
            va.metadata.name.as_deref().unwrap_or_default(),
            va.status
                .as_ref()
                .and_then(|s| s.attachment_metadata.clone())
                .unwrap_or_default(),
            va.metadata.finalizers.clone().unwrap_or_default()
        );
        proves(
            "the attacher called ControllerPublishVolume and recorded the result, as external-attacher does",
        );

        say("The pod goes away: the volume is detached and the VolumeAttachment deleted");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        pods.delete(POD, &DeleteParams::default().grace_period(0))
            .await?;
        let va_name = va.metadata.name.clone().unwrap_or_default();
        wait_for(|| async {
            match attachments.get_opt(&va_name).await {
                Ok(None) => Some(()),
                _ => None,
            }
        })
        .await
        .context("the VolumeAttachment was not detached")?;
        println!(
            "    VolumeAttachment {va_name} is gone (ControllerUnpublishVolume, finalizer removed)"
        );

        say("The claim grows from 1Gi to 2Gi: the resizer expands its volume");
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
        claims
            .patch(
                PVC,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({
                    "spec": {"resources": {"requests": {"storage": "2Gi"}}}
                })),
            )
            .await?;
        let grown = wait_for(|| async {
            let claim = claims.get(PVC).await.ok()?;
            let volume = pvs.get(&pv).await.ok()?;
            let storage = |c: Option<&BTreeMap<String, Quantity>>| {
                c.and_then(|c| c.get("storage")).map(|q| q.0.clone())
            };
            let claim_capacity = storage(claim.status.as_ref()?.capacity.as_ref())?;
            let volume_capacity = storage(volume.spec.as_ref()?.capacity.as_ref())?;
            (claim_capacity == "2Gi" && volume_capacity == "2Gi").then_some((claim, volume))
        })
        .await
        .context("the claim was not expanded")?;
        let (claim, volume) = grown;
        let status = claim.status.unwrap_or_default();
        println!(
            "    PersistentVolume {pv}: capacity {}",
            volume
                .spec
                .and_then(|s| s.capacity)
                .and_then(|c| c.get("storage").map(|q| q.0.clone()))
                .unwrap_or_default()
        );
        println!(
            "    claim default/{PVC}: request 2Gi, status capacity {}, allocatedResources {:?}, conditions {:?}",
            status
                .capacity
                .and_then(|c| c.get("storage").map(|q| q.0.clone()))
                .unwrap_or_default(),
            status
                .allocated_resources
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| format!("{k}={}", v.0))
                .collect::<Vec<_>>(),
            status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.type_)
                .collect::<Vec<_>>()
        );
        proves(
            "ControllerExpandVolume through the one connection; the claim's status as external-resizer writes it",
        );

        if self.snapshots {
            snapshots::snapshot_and_restore(&client).await?;
        }

        say("The claim is deleted: the provisioner deletes the volume and its PV");
        claims.delete(PVC, &DeleteParams::default()).await?;
        wait_for(|| async { matches!(pvs.get_opt(&pv).await, Ok(None)).then_some(()) })
            .await
            .context("the PV of the deleted claim was not deleted")?;
        println!("    PersistentVolume {pv} is gone (DeleteVolume, then the PV)");
        proves("reclaim policy Delete honoured, with upstream's finalizer on the PV");

        say("Controller side metrics, in the Go client's format");
        let (_, metrics) = http_get(self.controller_address, "/metrics").await?;
        let interesting: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                (l.starts_with("csi_sidecar_operations_seconds_count")
                    && (l.contains("Publish") || l.contains("Volume\"")))
                    || l.starts_with("controller_persistentvolumeclaim_provision_total")
                    || l.starts_with("controller_persistentvolume_delete_total")
                    || l.starts_with("workqueue_adds_total")
                    || l.starts_with("leader_election_master_status")
                    || l.starts_with("csi_sidecars_controller_enabled")
                    || l.starts_with("process_resident_memory_bytes")
            })
            .collect();
        show(&interesting.join("\n"));
        proves("upstream's metric names, labels and queue names: dashboards keep working");

        say(
            "The kubelet rejects a registration: the node side keeps running and offers the socket again",
        );
        let kubelet = FakeKubelet::connect(&registration).await?;
        kubelet
            .notify_registration_status(false, "demo: simulated rejection")
            .await
            .context("NotifyRegistrationStatus")?;
        drop(kubelet);
        let body = wait_for_status(
            self.node_address,
            "/healthz/node-driver-registrar",
            500,
            WAIT,
        )
        .await?;
        println!("    /healthz/node-driver-registrar: HTTP 500 {body}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        wait_for_path(&registration, WAIT).await?;
        FakeKubelet::register(registry_dir, DRIVER, WAIT).await?;
        wait_for_status(
            self.node_address,
            "/healthz/node-driver-registrar",
            200,
            WAIT,
        )
        .await?;
        println!("    registered again; /healthz/node-driver-registrar: HTTP 200 ok");
        proves(
            "one controller's failure does not restart the others (upstream's registrar would exit 1)",
        );

        say("The driver process dies");
        self.driver.signal("KILL")?;
        self.driver.wait(WAIT).await?;
        let body = wait_for_status(self.node_address, "/healthz/livenessprobe", 500, WAIT).await?;
        println!("    node side: /healthz/livenessprobe HTTP 500 {body}");
        let status = self.controller.wait(WAIT).await?;
        let said = self
            .controller
            .logs()
            .lines()
            .find(|l| l.contains("Lost connection to CSI driver, exiting"))
            .unwrap_or_default()
            .to_string();
        println!("    controller side: {status}");
        println!("    {said}");
        proves(
            "as upstream: the node side's probe fails so the kubelet restarts the driver; the attacher side exits (termination message written) and is restarted",
        );

        say("SIGTERM on the node side: graceful shutdown");
        self.node.signal("TERM")?;
        let status = self.node.wait(WAIT).await?;
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
}

const CLASS: &str = "csi-sidecars-demo";
const PVC: &str = "demo-pvc";
const POD: &str = "demo-pod";

/// Polls `check` every 200 ms until it returns `Some`, for at most [`WAIT`].
async fn wait_for<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Some(value) = check().await {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// An expandable StorageClass of the demo driver and a claim of it; waits until it is Bound
/// and returns the name of its PV.
async fn create_claim(client: &Client) -> anyhow::Result<String> {
    let params = PatchParams::apply("csi-sidecars-demo").force();
    let class: StorageClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": CLASS},
        "provisioner": DRIVER,
        "reclaimPolicy": "Delete",
        "allowVolumeExpansion": true,
    }))?;
    Api::<StorageClass>::all(client.clone())
        .patch(CLASS, &params, &Patch::Apply(&class))
        .await?;
    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": PVC, "namespace": "default"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": CLASS,
            "resources": {"requests": {"storage": "1Gi"}}
        }
    }))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    claims.patch(PVC, &params, &Patch::Apply(&pvc)).await?;
    wait_for(|| async {
        let claim = claims.get(PVC).await.ok()?;
        let bound = claim.status?.phase.as_deref() == Some("Bound");
        bound.then_some(())?;
        claim.spec?.volume_name
    })
    .await
    .context("the claim was not provisioned and bound")
}

/// A pod on the demo node that uses the claim.
async fn create_pod(client: &Client) -> anyhow::Result<()> {
    let params = PatchParams::apply("csi-sidecars-demo").force();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "app", "image": "busybox"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": PVC}}]
        }
    }))?;
    Api::<Pod>::namespaced(client.clone(), "default")
        .patch(POD, &params, &Patch::Apply(&pod))
        .await?;
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
