//! What the reliability scenarios (`reliability_*.rs`) share: a [`Rig`] — a namespace with a
//! mock driver that keeps its state across restarts (`--state-file`), a StorageClass that
//! allows expansion, a VolumeSnapshotClass, two fake nodes, our snapshot-controller, and the
//! controller processes under test (replicas of `csi-sidecars
//! --controllers=attacher,provisioner,resizer,snapshotter`, or the standalone binaries) under
//! the RBAC they ship — and the mixed workload ([`workload`]): claims provisioned, attached to
//! pods, snapshotted and expanded, then all of it deleted again; each phase is started and then
//! awaited separately, so a scenario injects its faults while work is in flight.
//!
//! At the end of every round the invariants of `csi_e2e_support::invariants` must hold.
//!
//! Our snapshot-controller is cluster-wide: one scenario runs at a time (one test per file).

// Each test file uses a part of this module.
#![allow(dead_code)]

pub mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use csi_e2e_support::storage::StorageFixture;
use csi_e2e_support::{
    AppliedManifest, InvariantChecker, apply_rbac_manifest, has_exited, service_account_kubeconfig,
    tail, wait_until,
};
use csi_test_support::ChildProcess;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The controllers every `csi-sidecars` replica runs.
pub const CONTROLLERS: &str = "attacher,provisioner,resizer,snapshotter";
/// Short leases, so a takeover after a SIGKILL takes seconds.
pub const LEASE_DURATION: Duration = Duration::from_secs(8);
const RENEW_DEADLINE: Duration = Duration::from_secs(5);
const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// How long a takeover may take: the lease duration after the dead leader's last renewal,
/// a retry period with jitter, and slack for a busy machine.
pub const TAKEOVER: Duration = Duration::from_secs(30);
/// The driver calls of the second phase of a round (attach, snapshot, expand): a fault is
/// injected once one of them reached the driver.
pub const USE_CALLS: [&str; 3] = [
    "ControllerPublishVolume",
    "CreateSnapshot",
    "ControllerExpandVolume",
];
/// The lines of a process log a failure message shows.
const LOG_TAIL: usize = 40;

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The API resource of `kind` in `snapshot.storage.k8s.io/v1`.
pub fn snapshot_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", kind),
        plural,
    )
}

/// A controller process under test, started and restarted with the same flags.
pub struct Controller {
    /// For messages and the lease: `replica-a`, `csi-provisioner`, ...
    pub name: String,
    binary: PathBuf,
    args: Vec<String>,
    pub process: ChildProcess,
    /// How often it was started again after it exited or was killed.
    pub restarts: usize,
    /// Exit statuses of its earlier processes, and the tail of their logs.
    pub exits: Vec<String>,
}

impl Controller {
    fn spawn(name: &str, binary: PathBuf, args: Vec<String>) -> anyhow::Result<Controller> {
        let process = ChildProcess::spawn(&binary, &args)
            .with_context(|| format!("starting {name} ({})", binary.display()))?;
        Ok(Controller {
            name: name.to_string(),
            binary,
            args,
            process,
            restarts: 0,
            exits: Vec::new(),
        })
    }

    /// Starts it again (as the kubelet restarts a container that exited), after killing what
    /// still runs.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if !has_exited(&self.process) {
            self.process.signal("KILL")?;
        }
        let status = self.process.wait(Duration::from_secs(10)).await?;
        self.exits.push(format!(
            "{status}; log tail:\n{}",
            tail(&self.process.logs(), 5)
        ));
        self.process = ChildProcess::spawn(&self.binary, &self.args)?;
        self.restarts += 1;
        Ok(())
    }
}

/// A scenario's namespace, driver, classes, nodes and processes.
pub struct Rig {
    pub fixture: StorageFixture,
    pub class: String,
    pub snapshot_class: String,
    pub nodes: Vec<String>,
    pub controllers: Vec<Controller>,
    pub snapshot_controller: Option<Controller>,
    /// The lease the `csi-sidecars` replicas share.
    pub lease: String,
    /// The snapshot-controller's ServiceAccount, as the audit log names it.
    pub snapshot_controller_user: String,
    rbac: Vec<AppliedManifest>,
    _state: tempfile::TempDir,
}

impl Rig {
    /// The namespace `e2e-<prefix>-…` under `rbac` (a shipped manifest), its driver (with a
    /// state file), classes, two nodes and the snapshot-controller; no controller under test
    /// yet.
    pub async fn start(prefix: &str, rbac: &str) -> anyhow::Result<Rig> {
        let state = tempfile::tempdir()?;
        let state_arg = format!(
            "--state-file={}",
            state.path().join("driver.jsonl").display()
        );
        let fixture = StorageFixture::new(prefix, &repo_path(rbac), &[&state_arg]).await?;
        let lease = csi_leader_election_name(fixture.driver_name());
        let mut rig = Rig {
            fixture,
            class: String::new(),
            snapshot_class: String::new(),
            nodes: Vec::new(),
            controllers: Vec::new(),
            snapshot_controller: None,
            lease,
            snapshot_controller_user: String::new(),
            rbac: Vec::new(),
            _state: state,
        };
        match rig.set_up().await {
            Ok(()) => Ok(rig),
            Err(err) => Err(rig.finish(Err(err)).await.unwrap_err()),
        }
    }

    async fn set_up(&mut self) -> anyhow::Result<()> {
        self.class = self
            .fixture
            .storage_class("rel", json!({"allowVolumeExpansion": true}))
            .await?;
        self.snapshot_class = format!("{}-snap", self.fixture.ns.name);
        let class: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": self.snapshot_class},
            "driver": self.fixture.driver_name(),
            "deletionPolicy": "Delete",
        }))?;
        self.class_api()
            .create(&PostParams::default(), &class)
            .await
            .context("creating the VolumeSnapshotClass")?;
        for suffix in ["n1", "n2"] {
            let node = self.fixture.topology_node(suffix).await?;
            self.nodes.push(node);
        }
        // The snapshot-controller under its shipped RBAC, in the same namespace.
        let manifest = repo_path("controllers/snapshot-controller/deploy/rbac.yaml");
        let applied =
            apply_rbac_manifest(&self.fixture.admin, &manifest, &self.fixture.ns.name).await?;
        let account = applied.service_account()?.to_string();
        self.snapshot_controller_user =
            csi_e2e_support::service_account_username(&self.fixture.ns.name, &account);
        self.rbac.push(applied);
        let kubeconfig = service_account_kubeconfig(
            &self.fixture.env,
            &self.fixture.ns.name,
            &account,
            self._state.path(),
        )
        .await?;
        self.snapshot_controller = Some(Controller::spawn(
            "snapshot-controller",
            self.fixture.env.binary("snapshot-controller")?,
            vec![format!("--kubeconfig={}", kubeconfig.display())],
        )?);
        Ok(())
    }

    fn class_api(&self) -> Api<DynamicObject> {
        Api::all_with(
            self.fixture.admin.clone(),
            &snapshot_resource("VolumeSnapshotClass", "volumesnapshotclasses"),
        )
    }

    pub fn admin(&self) -> &Client {
        &self.fixture.admin
    }

    pub fn ns(&self) -> &str {
        &self.fixture.ns.name
    }

    /// The flags of a `csi-sidecars` replica named `identity`, plus `extra`.
    pub fn sidecars_args(&self, identity: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            format!("--csi-address={}", self.fixture.driver.endpoint()),
            format!("--kubeconfig={}", self.fixture.kubeconfig.display()),
            format!("--controllers={CONTROLLERS}"),
            "--leader-election".to_string(),
            format!("--leader-election-namespace={}", self.ns()),
            format!("--leader-election-identity={identity}"),
            format!(
                "--leader-election-lease-duration={}s",
                LEASE_DURATION.as_secs()
            ),
            format!(
                "--leader-election-renew-deadline={}s",
                RENEW_DEADLINE.as_secs()
            ),
            format!("--leader-election-retry-period={}s", RETRY_PERIOD.as_secs()),
            "--kube-api-qps=50".to_string(),
            "--kube-api-burst=100".to_string(),
        ];
        args.extend(extra.iter().map(ToString::to_string));
        args
    }

    /// Starts a `csi-sidecars` replica named `identity`.
    pub fn start_replica(&mut self, identity: &str) -> anyhow::Result<()> {
        self.start_replica_with(identity, &[])
    }

    /// Starts a `csi-sidecars` replica named `identity` with `extra` flags (later flags win).
    pub fn start_replica_with(&mut self, identity: &str, extra: &[&str]) -> anyhow::Result<()> {
        let args = self.sidecars_args(identity, extra);
        let binary = self.fixture.env.binary("csi-sidecars")?;
        self.controllers
            .push(Controller::spawn(identity, binary, args)?);
        Ok(())
    }

    /// Starts a standalone binary (`csi-provisioner`, ...) with the common flags, its own lease.
    pub fn start_standalone(&mut self, binary: &str, extra: &[&str]) -> anyhow::Result<()> {
        let mut args = vec![
            format!("--csi-address={}", self.fixture.driver.endpoint()),
            format!("--kubeconfig={}", self.fixture.kubeconfig.display()),
            "--leader-election".to_string(),
            format!("--leader-election-namespace={}", self.ns()),
            "--kube-api-qps=50".to_string(),
            "--kube-api-burst=100".to_string(),
        ];
        args.extend(extra.iter().map(ToString::to_string));
        let path = self.fixture.env.binary(binary)?;
        self.controllers
            .push(Controller::spawn(binary, path, args)?);
        Ok(())
    }

    /// The holder of the replicas' lease, if any.
    pub async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.admin().clone(), self.ns());
        leases
            .get_opt(&self.lease)
            .await
            .ok()
            .flatten()?
            .spec?
            .holder_identity
            .filter(|h| !h.is_empty())
    }

    /// Waits until one of the running replicas holds the lease, other than `not`; returns it.
    pub async fn wait_for_leader(&self, not: Option<&str>) -> anyhow::Result<String> {
        let alive: Vec<String> = self
            .controllers
            .iter()
            .filter(|c| !has_exited(&c.process))
            .map(|c| c.name.clone())
            .collect();
        wait_until(
            &format!("a running replica of {alive:?} other than {not:?} to lead"),
            TAKEOVER,
            || async {
                let holder = self.lease_holder().await?;
                (alive.contains(&holder) && Some(holder.as_str()) != not).then_some(holder)
            },
            || self.diagnostics(),
        )
        .await
    }

    /// SIGKILLs the leading replica, starts a new one named `replacement` (two replicas
    /// again), and waits until another replica leads; returns a line for the report.
    pub async fn kill_leader(&mut self, replacement: &str) -> anyhow::Result<String> {
        let leader = self.wait_for_leader(None).await?;
        let index = self
            .controllers
            .iter()
            .position(|c| c.name == leader)
            .context("the leader is one of ours")?;
        let mut killed = self.controllers.remove(index);
        killed.process.signal("KILL")?;
        let at = Instant::now();
        killed.process.wait(Duration::from_secs(10)).await?;
        self.start_replica(replacement)?;
        let next = self.wait_for_leader(Some(&leader)).await?;
        Ok(format!(
            "SIGKILL of the leader {leader}; {next} led {:.1} s later (lease {} s)",
            at.elapsed().as_secs_f64(),
            LEASE_DURATION.as_secs()
        ))
    }

    /// How many calls the driver logged so far (since its first start): a mark for
    /// [`Rig::wait_for_driver_call`].
    pub fn driver_calls(&self) -> usize {
        self.fixture.driver.all_grpc_calls().len()
    }

    /// Waits until the driver logged a call to one of `methods` after the call number `mark`:
    /// the work has reached the driver, so a fault now lands in the middle of it.
    pub async fn wait_for_driver_call(&self, mark: usize, methods: &[&str]) -> anyhow::Result<()> {
        wait_until(
            &format!("a call to one of {methods:?} to reach the driver"),
            TAKEOVER,
            || async {
                self.fixture
                    .driver
                    .all_grpc_calls()
                    .iter()
                    .skip(mark)
                    .any(|c| methods.contains(&c.short_method()))
                    .then_some(())
            },
            || self.diagnostics(),
        )
        .await
    }

    /// Restarts every controller process that exited; returns their names.
    pub async fn restart_exited(&mut self) -> anyhow::Result<Vec<String>> {
        let mut restarted = Vec::new();
        for controller in &mut self.controllers {
            if has_exited(&controller.process) {
                controller.restart().await?;
                restarted.push(controller.name.clone());
            }
        }
        Ok(restarted)
    }

    /// An invariant checker of this namespace and driver.
    pub fn invariants(&self) -> InvariantChecker<'_> {
        InvariantChecker::new(self.admin(), &self.fixture.driver).namespace(self.ns())
    }

    fn processes(&self) -> Vec<(&str, &ChildProcess)> {
        self.controllers
            .iter()
            .chain(self.snapshot_controller.as_ref())
            .map(|c| (c.name.as_str(), &c.process))
            .collect()
    }

    /// Claims, Events, the driver's and every process's log.
    pub async fn diagnostics(&self) -> String {
        let mut out = self.fixture.diagnostics(&self.processes()).await;
        for c in &self.controllers {
            for (i, exit) in c.exits.iter().enumerate() {
                out.push_str(&format!("\n--- {} process {i} exited: {exit}", c.name));
            }
        }
        out.push_str(&format!(
            "\n--- lease {} holder: {:?}",
            self.lease,
            self.lease_holder().await
        ));
        out.push_str(&format!("\n--- last lines of the driver: {}", {
            let logs = self.fixture.driver.all_logs();
            tail(&logs, LOG_TAIL)
        }));
        out
    }

    /// Stops the processes, removes the snapshot class, RBAC and everything the fixture made.
    pub async fn finish(mut self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        self.controllers.clear();
        self.snapshot_controller = None;
        if !self.snapshot_class.is_empty() {
            let _ = self
                .class_api()
                .delete(&self.snapshot_class, &DeleteParams::default())
                .await;
        }
        for applied in std::mem::take(&mut self.rbac) {
            let _ = applied.delete().await;
        }
        self.fixture.finish(outcome).await
    }
}

/// The lease of `csi-sidecars` under one process lease: `csi-sidecars-<driver>`, sanitized as
/// every lease name.
fn csi_leader_election_name(driver: &str) -> String {
    csi_leader_election::sanitize_name(&format!("csi-sidecars-{driver}"))
}
