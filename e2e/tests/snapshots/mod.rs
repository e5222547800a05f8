//! What `snapshot.rs` and `snapshot_upstream.rs` share: a namespace with a mock driver that
//! has a GroupController (`--enable-group-snapshots`), a StorageClass, VolumeSnapshotClasses with
//! Delete and Retain, a VolumeGroupSnapshotClass, and the processes that make snapshots (a
//! snapshot-controller, a snapshotter, a provisioner for restores), each under the RBAC it ships
//! or as the admin; and the snapshot workload ([`Stack::workload`]), which checks what the
//! components must do and returns what they wrote, normalised for comparison.
//!
//! The snapshot-controller is cluster-wide: it acts on every VolumeSnapshot of the cluster. Only
//! one may run at a time, so a test file runs its stacks one after the other, and the
//! snapshot-controller of a stack is stopped before the next starts.

// Each test file uses a part of this module.
#![allow(dead_code)]

pub mod normalize;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use csi_e2e_support::storage::{StorageFixture, WAIT};
use csi_e2e_support::{
    AppliedManifest, InvariantChecker, InvariantReport, apply_rbac_manifest, describe_events,
    has_exited, ignore_not_found, invariants, service_account_kubeconfig, service_account_username,
    tail, wait_until,
};
use csi_test_support::ChildProcess;
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};

pub use normalize::Captured;

/// The API group of VolumeSnapshots and their contents and classes.
pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";
/// The API group of the group-snapshot trio.
pub const GROUP_SNAPSHOT_GROUP: &str = "groupsnapshot.storage.k8s.io";

/// A kind of the snapshot APIs (v1), named as the API names it.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    VolumeSnapshot,
    VolumeSnapshotContent,
    VolumeSnapshotClass,
    VolumeGroupSnapshot,
    VolumeGroupSnapshotContent,
    VolumeGroupSnapshotClass,
}

impl Kind {
    pub fn resource(self) -> ApiResource {
        let (group, kind, plural) = match self {
            Kind::VolumeSnapshot => (SNAPSHOT_GROUP, "VolumeSnapshot", "volumesnapshots"),
            Kind::VolumeSnapshotContent => (
                SNAPSHOT_GROUP,
                "VolumeSnapshotContent",
                "volumesnapshotcontents",
            ),
            Kind::VolumeSnapshotClass => (
                SNAPSHOT_GROUP,
                "VolumeSnapshotClass",
                "volumesnapshotclasses",
            ),
            Kind::VolumeGroupSnapshot => (
                GROUP_SNAPSHOT_GROUP,
                "VolumeGroupSnapshot",
                "volumegroupsnapshots",
            ),
            Kind::VolumeGroupSnapshotContent => (
                GROUP_SNAPSHOT_GROUP,
                "VolumeGroupSnapshotContent",
                "volumegroupsnapshotcontents",
            ),
            Kind::VolumeGroupSnapshotClass => (
                GROUP_SNAPSHOT_GROUP,
                "VolumeGroupSnapshotClass",
                "volumegroupsnapshotclasses",
            ),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
    }

    pub fn namespaced(self) -> bool {
        matches!(self, Kind::VolumeSnapshot | Kind::VolumeGroupSnapshot)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::VolumeSnapshot => "VolumeSnapshot",
            Kind::VolumeSnapshotContent => "VolumeSnapshotContent",
            Kind::VolumeSnapshotClass => "VolumeSnapshotClass",
            Kind::VolumeGroupSnapshot => "VolumeGroupSnapshot",
            Kind::VolumeGroupSnapshotContent => "VolumeGroupSnapshotContent",
            Kind::VolumeGroupSnapshotClass => "VolumeGroupSnapshotClass",
        }
    }
}

/// A path in this repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// How a process of a stack reaches the API server.
#[derive(Clone, Debug)]
pub enum Identity {
    /// The admin kubeconfig: permissions are not under test.
    Admin,
    /// The ServiceAccount of this shipped RBAC manifest, applied into the namespace.
    Rbac(PathBuf),
}

/// One process of a stack.
#[derive(Clone, Debug)]
pub struct Component {
    /// For messages: `snapshot-controller`, `csi-snapshotter`, ...
    pub name: &'static str,
    pub binary: PathBuf,
    /// Its own flags; `--kubeconfig` (and `--csi-address` when `csi`) are added.
    pub args: Vec<String>,
    /// Whether it talks to the driver.
    pub csi: bool,
    pub identity: Identity,
}

impl Component {
    /// A snapshot-controller (upstream's flags; leader election in the test's namespace).
    pub fn snapshot_controller(binary: PathBuf, identity: Identity) -> Component {
        Component {
            name: "snapshot-controller",
            binary,
            args: vec!["--leader-election".into(), "-v=5".into()],
            csi: false,
            identity,
        }
    }

    /// A standalone csi-snapshotter with `--extra-create-metadata`.
    pub fn snapshotter(binary: PathBuf, identity: Identity) -> Component {
        Component {
            name: "csi-snapshotter",
            binary,
            args: vec![
                "--leader-election".into(),
                "--extra-create-metadata".into(),
                "-v=5".into(),
            ],
            csi: true,
            identity,
        }
    }

    /// A standalone csi-provisioner, for restores.
    pub fn provisioner(binary: PathBuf, identity: Identity) -> Component {
        Component {
            name: "csi-provisioner",
            binary,
            args: vec!["--leader-election".into()],
            csi: true,
            identity,
        }
    }
}

/// How long the slow steps (a group snapshot: two contents, two members) may take.
const STEP: Duration = WAIT;

/// A namespace, its driver and classes, and the processes that make snapshots in it.
pub struct Stack {
    pub label: String,
    pub fixture: StorageFixture,
    pub class: String,
    pub snapshot_class: String,
    pub retain_class: String,
    pub group_class: String,
    rbac: Vec<AppliedManifest>,
    /// The ServiceAccounts the processes run as (user names), for the Forbidden check.
    pub accounts: Vec<String>,
    pub processes: Vec<(&'static str, ChildProcess)>,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// A namespace `e2e-<prefix>-…` with a group-snapshot capable driver, the classes, and
    /// `components` started.
    pub async fn start(
        label: &str,
        prefix: &str,
        components: Vec<Component>,
    ) -> anyhow::Result<Stack> {
        // The sandbox wants one manifest; the provisioner's is harmless when unused.
        let fixture_rbac = repo_path("sidecars/external-provisioner/deploy/rbac.yaml");
        let fixture =
            StorageFixture::new(prefix, &fixture_rbac, &["--enable-group-snapshots"]).await?;
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(err) => return Err(fixture.finish(Err(err.into())).await.unwrap_err()),
        };
        let mut stack = Stack {
            label: label.to_string(),
            fixture,
            class: String::new(),
            snapshot_class: String::new(),
            retain_class: String::new(),
            group_class: String::new(),
            rbac: Vec::new(),
            accounts: Vec::new(),
            processes: Vec::new(),
            _dir: dir,
        };
        match stack.set_up(components).await {
            Ok(()) => Ok(stack),
            Err(err) => Err(stack.finish(Err(err)).await.unwrap_err()),
        }
    }

    async fn set_up(&mut self, components: Vec<Component>) -> anyhow::Result<()> {
        let ns = self.fixture.ns.name.clone();
        self.class = self
            .fixture
            .storage_class("snap", json!({}))
            .await
            .context("StorageClass")?;
        let driver = self.fixture.driver_name().to_string();
        self.snapshot_class = format!("{ns}-delete");
        self.retain_class = format!("{ns}-retain");
        self.group_class = format!("{ns}-group");
        for (name, policy) in [
            (&self.snapshot_class, "Delete"),
            (&self.retain_class, "Retain"),
        ] {
            self.create(
                Kind::VolumeSnapshotClass,
                json!({"metadata": {"name": name}, "driver": driver, "deletionPolicy": policy}),
            )
            .await?;
        }
        self.create(
            Kind::VolumeGroupSnapshotClass,
            json!({"metadata": {"name": self.group_class}, "driver": driver, "deletionPolicy": "Delete"}),
        )
        .await?;
        for component in components {
            let kubeconfig = match &component.identity {
                Identity::Admin => self.fixture.env.kubeconfig.clone(),
                Identity::Rbac(manifest) => {
                    let applied = apply_rbac_manifest(&self.fixture.admin, manifest, &ns).await?;
                    let account = applied.service_account()?.to_string();
                    self.rbac.push(applied);
                    self.accounts.push(service_account_username(&ns, &account));
                    service_account_kubeconfig(&self.fixture.env, &ns, &account, self._dir.path())
                        .await?
                }
            };
            let mut args = vec![format!("--kubeconfig={}", kubeconfig.display())];
            if component.csi {
                args.push(format!("--csi-address={}", self.fixture.driver.endpoint()));
            }
            if component.args.iter().any(|a| a == "--leader-election") {
                args.push(format!("--leader-election-namespace={ns}"));
            }
            args.extend(component.args.iter().cloned());
            let process = ChildProcess::spawn(&component.binary, &args)
                .with_context(|| format!("starting {}", component.name))?;
            self.processes.push((component.name, process));
        }
        Ok(())
    }

    pub fn ns(&self) -> &str {
        &self.fixture.ns.name
    }

    pub fn admin(&self) -> &Client {
        &self.fixture.admin
    }

    pub fn api(&self, kind: Kind) -> Api<DynamicObject> {
        if kind.namespaced() {
            Api::namespaced_with(self.admin().clone(), self.ns(), &kind.resource())
        } else {
            Api::all_with(self.admin().clone(), &kind.resource())
        }
    }

    /// Creates an object of `kind` from `body` (apiVersion and kind are added).
    pub async fn create(&self, kind: Kind, mut body: Value) -> anyhow::Result<DynamicObject> {
        let resource = kind.resource();
        body["apiVersion"] = json!(resource.api_version);
        body["kind"] = json!(resource.kind);
        if kind.namespaced() {
            body["metadata"]["namespace"] = json!(self.ns());
        }
        let object: DynamicObject = serde_json::from_value(body)?;
        let name = object.metadata.name.clone().unwrap_or_default();
        self.api(kind)
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("{}: creating {} {name}", self.label, kind.name()))
    }

    fn processes(&self) -> Vec<(&str, &ChildProcess)> {
        self.processes.iter().map(|(n, p)| (*n, p)).collect()
    }

    /// The snapshot objects of the namespace and of the driver, Events, claims, logs.
    pub async fn diagnostics(&self) -> String {
        let mut out = String::new();
        for kind in [
            Kind::VolumeSnapshot,
            Kind::VolumeSnapshotContent,
            Kind::VolumeGroupSnapshot,
            Kind::VolumeGroupSnapshotContent,
        ] {
            out.push_str(&format!("--- {}s ---\n", kind.name()));
            match self.objects(kind).await {
                Ok(objects) => {
                    for o in objects {
                        out.push_str(&format!(
                            "{} finalizers={:?} deletion={:?} spec={} status={}\n",
                            o.metadata.name.as_deref().unwrap_or_default(),
                            o.metadata.finalizers.clone().unwrap_or_default(),
                            o.metadata.deletion_timestamp.is_some(),
                            o.data["spec"],
                            o.data["status"]
                        ));
                    }
                }
                Err(err) => out.push_str(&format!("listing failed: {err:#}\n")),
            }
        }
        out.push_str(&self.fixture.diagnostics(&self.processes()).await);
        out
    }

    /// The objects of `kind` of this stack: the namespace's, or (cluster-scoped) those of the
    /// driver.
    pub async fn objects(&self, kind: Kind) -> anyhow::Result<Vec<DynamicObject>> {
        let list = self.api(kind).list(&ListParams::default()).await?.items;
        if kind.namespaced() {
            return Ok(list);
        }
        let driver = self.fixture.driver_name();
        Ok(list
            .into_iter()
            .filter(|o| {
                o.data["spec"]["driver"].as_str() == Some(driver)
                    || o.data["driver"].as_str() == Some(driver)
            })
            .collect())
    }

    /// Waits until `check` says yes for object `name` of `kind`.
    pub async fn wait_for(
        &self,
        kind: Kind,
        name: &str,
        what: &str,
        check: impl Fn(&DynamicObject) -> bool,
    ) -> anyhow::Result<DynamicObject> {
        let api = self.api(kind);
        wait_until(
            &format!("{}: {} {name}: {what}", self.label, kind.name()),
            STEP,
            || async {
                if self.processes.iter().any(|(_, p)| has_exited(p)) {
                    return None;
                }
                let object = api.get_opt(name).await.ok()??;
                check(&object).then_some(object)
            },
            || self.diagnostics(),
        )
        .await
    }

    /// Waits until object `name` of `kind` is gone.
    pub async fn wait_gone(&self, kind: Kind, name: &str) -> anyhow::Result<()> {
        let api = self.api(kind);
        wait_until(
            &format!("{}: {} {name} to be deleted", self.label, kind.name()),
            STEP,
            || async { matches!(api.get_opt(name).await, Ok(None)).then_some(()) },
            || self.diagnostics(),
        )
        .await
    }

    /// Deletes object `name` of `kind`.
    pub async fn delete(&self, kind: Kind, name: &str) -> anyhow::Result<()> {
        self.api(kind)
            .delete(name, &DeleteParams::default())
            .await
            .with_context(|| format!("{}: deleting {} {name}", self.label, kind.name()))?;
        Ok(())
    }

    /// The reliability suite's invariants on this namespace and driver (no leaked content or
    /// group content, no snapshot of the driver without its content, nothing terminating,
    /// nothing created twice), at `stage` of the workload.
    pub async fn check_invariants(&self, stage: &str) -> anyhow::Result<InvariantReport> {
        let report = InvariantChecker::new(self.admin(), &self.fixture.driver)
            .namespace(self.ns())
            .check()
            .await?;
        ensure!(
            report.is_clean(),
            "{}: invariants when {stage}:\n{report}",
            self.label
        );
        Ok(report)
    }

    /// Fails if a process exited or the API server refused a ServiceAccount anything.
    pub async fn check_health(&self) -> anyhow::Result<()> {
        for (name, process) in &self.processes {
            ensure!(
                !has_exited(process),
                "{}: {name} exited:\n{}",
                self.label,
                tail(&process.logs(), 80)
            );
        }
        let audit = self.fixture.env.audit_log()?;
        for account in &self.accounts {
            let mut forbidden = audit.forbidden(account)?;
            // The attacher's shipped role is upstream's, which grants no Events: its
            // LeaderElection Event is refused, as upstream's is.
            if account.ends_with(":csi-attacher") {
                forbidden
                    .retain(|refused| !csi_e2e_support::audit::event_creation_refused(refused));
            }
            ensure!(
                forbidden.is_empty(),
                "{}: the API server refused {account} these requests under the shipped RBAC:\n{}",
                self.label,
                forbidden
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        Ok(())
    }

    /// Stops the processes, removes every snapshot object the stack made (finalizers taken
    /// off what is left), the classes, the RBAC, and the namespace; returns `outcome`.
    pub async fn finish(mut self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        let outcome = match outcome {
            Err(err) => Err(err.context(format!(
                "--- state at failure ---\n{}",
                self.diagnostics().await
            ))),
            ok => ok,
        };
        for (_, mut process) in self.processes.drain(..) {
            let _ = process.signal("TERM");
            let _ = process.wait(Duration::from_secs(10)).await;
        }
        let cleanup = self.remove_snapshot_objects().await;
        for applied in self.rbac.drain(..) {
            let _ = applied.delete().await;
        }
        let outcome = match (outcome, cleanup) {
            (Ok(()), cleanup) => cleanup,
            (Err(err), _) => Err(err),
        };
        self.fixture.finish(outcome).await
    }

    async fn remove_snapshot_objects(&self) -> anyhow::Result<()> {
        let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        for kind in [
            Kind::VolumeGroupSnapshot,
            Kind::VolumeSnapshot,
            Kind::VolumeGroupSnapshotContent,
            Kind::VolumeSnapshotContent,
        ] {
            let api = self.api(kind);
            for object in self.objects(kind).await? {
                let name = object.metadata.name.unwrap_or_default();
                ignore_not_found(api.delete(&name, &DeleteParams::default()).await)?;
                ignore_not_found(
                    api.patch(&name, &PatchParams::default(), &no_finalizers)
                        .await,
                )?;
            }
        }
        let (other_class, no_secret_class) = self.bad_input_classes();
        for (kind, name) in [
            (Kind::VolumeSnapshotClass, &self.snapshot_class),
            (Kind::VolumeSnapshotClass, &self.retain_class),
            (Kind::VolumeGroupSnapshotClass, &self.group_class),
            (Kind::VolumeSnapshotClass, &other_class),
            (Kind::VolumeSnapshotClass, &no_secret_class),
        ] {
            if !name.is_empty() {
                ignore_not_found(self.api(kind).delete(name, &DeleteParams::default()).await)?;
            }
        }
        Ok(())
    }
}

/// The content a VolumeSnapshot is bound to (`status.boundVolumeSnapshotContentName`).
fn bound_content(snapshot: &DynamicObject) -> anyhow::Result<String> {
    snapshot.data["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .map(str::to_string)
        .with_context(|| {
            format!(
                "VolumeSnapshot {} names no content",
                snapshot.metadata.name.as_deref().unwrap_or_default()
            )
        })
}

/// A VolumeSnapshot `name` of the claim `claim` with the class `class`.
fn snapshot_of(name: &str, class: &str, claim: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "volumeSnapshotClassName": class,
            "source": {"persistentVolumeClaimName": claim},
        },
    })
}

/// `status.readyToUse` of a snapshot object.
pub fn ready(object: &DynamicObject) -> bool {
    object.data["status"]["readyToUse"].as_bool() == Some(true)
}

/// The claims of the workload and the snapshot objects' names.
pub const SOURCE: &str = "source";
pub const MEMBERS: [&str; 2] = ["member-a", "member-b"];
pub const RESTORED: &str = "restored";
pub const SNAP: &str = "snap";
pub const KEPT: &str = "kept";
pub const PRE: &str = "pre";
pub const GROUP: &str = "group";
/// The claim and the snapshots of [`Stack::bad_input`].
pub const BAD_SOURCE: &str = "bad-source";
pub const NO_SECRET: &str = "no-secret";
pub const OTHER: &str = "other-driver";
/// The label that selects the members of the group snapshot.
pub const GROUP_LABEL: (&str, &str) = ("snapshot-group", "g1");

impl Stack {
    /// The workload, checking on the way what any snapshot-controller and snapshotter must do:
    ///
    /// 1. claims `source`, `member-a`, `member-b` (the members labelled for the group);
    /// 2. VolumeSnapshots `snap` (class with Delete) and `kept` (class with Retain) of `source`;
    ///    `pre`, bound to a VolumeSnapshotContent made by hand for a snapshot made in the driver
    ///    (pre-provisioned, Delete); the VolumeGroupSnapshot `group` of the labelled claims; all
    ///    become readyToUse, the group with a member VolumeSnapshot per claim;
    /// 3. claim `restored` from `snap`, Bound through the provisioner, its volume made from the
    ///    snapshot;
    /// 4. what everyone wrote is captured;
    /// 5. deletions: `restored`; `snap` (its content and the driver's snapshot go); `kept` (its
    ///    content stays, Retain, and so does the driver's snapshot: captured); `pre` (content and
    ///    snapshot go); `group` (its content, the members and their snapshots go); the retained
    ///    content, switched to Delete and deleted (the snapshot goes); the source claims;
    /// 6. nothing is left in the driver but its three built-in snapshots and volumes;
    ///    the reliability suite's invariants hold when everything is ready and at the end;
    /// 7. the driver's requests are captured.
    pub async fn workload(&self) -> anyhow::Result<Captured> {
        let f = &self.fixture;
        let (key, value) = GROUP_LABEL;
        f.claim(SOURCE, &self.class, json!({})).await?;
        for member in MEMBERS {
            f.claim(
                member,
                &self.class,
                json!({"metadata": {"labels": {key: value}}}),
            )
            .await?;
        }
        let names: Vec<String> = std::iter::once(SOURCE)
            .chain(MEMBERS)
            .map(String::from)
            .collect();
        let pvs = f.wait_bound(&names, STEP, &self.processes()).await?;
        let source_handle = handle_of(&pvs[SOURCE])?;

        let of_source = |name: &str, class: &str| snapshot_of(name, class, SOURCE);
        // One snapshot of the claim at a time: two at once race to add the claim's finalizer,
        // and the loser's conflict (a Warning Event, retried) would differ from run to run.
        self.create(Kind::VolumeSnapshot, of_source(SNAP, &self.snapshot_class))
            .await?;
        self.wait_for(Kind::VolumeSnapshot, SNAP, "readyToUse", ready)
            .await?;
        self.create(Kind::VolumeSnapshot, of_source(KEPT, &self.retain_class))
            .await?;
        // Pre-provisioned: a snapshot the driver has, and a content naming it.
        let pre_content = format!("{}-pre", self.ns());
        let (pre_handle, _) = f
            .driver
            .create_snapshot(&format!("{}-pre", self.ns()), &source_handle)
            .await?;
        self.create(
            Kind::VolumeSnapshotContent,
            json!({
                "metadata": {"name": pre_content},
                "spec": {
                    "deletionPolicy": "Delete",
                    "driver": f.driver_name(),
                    "volumeSnapshotClassName": self.snapshot_class,
                    "source": {"snapshotHandle": pre_handle},
                    "volumeSnapshotRef": {"namespace": self.ns(), "name": PRE},
                },
            }),
        )
        .await?;
        self.create(
            Kind::VolumeSnapshot,
            json!({
                "metadata": {"name": PRE},
                "spec": {"source": {"volumeSnapshotContentName": pre_content}},
            }),
        )
        .await?;
        self.create(
            Kind::VolumeGroupSnapshot,
            json!({
                "metadata": {"name": GROUP},
                "spec": {
                    "volumeGroupSnapshotClassName": self.group_class,
                    "source": {"selector": {"matchLabels": {key: value}}},
                },
            }),
        )
        .await?;
        for name in [KEPT, PRE] {
            self.wait_for(Kind::VolumeSnapshot, name, "readyToUse", ready)
                .await?;
        }
        let group = self
            .wait_for(Kind::VolumeGroupSnapshot, GROUP, "readyToUse", ready)
            .await?;
        let group_content = group.data["status"]["boundVolumeGroupSnapshotContentName"]
            .as_str()
            .context("the ready group snapshot names no content")?
            .to_string();
        // The members say which group they belong to once the controller has seen them ready.
        let members = wait_until(
            &format!("{}: two member VolumeSnapshots of the group", self.label),
            STEP,
            || async {
                let members = self.group_members().await.ok()?;
                (members.len() == 2).then_some(members)
            },
            || self.diagnostics(),
        )
        .await?;
        for member in &members {
            self.wait_for(Kind::VolumeSnapshot, member, "readyToUse", ready)
                .await?;
        }
        let in_driver = f.driver.list_snapshots().await?;
        ensure!(
            in_driver.len() == 3 + 3 + 2,
            "{}: the driver holds {} snapshots, expected its 3, snap, kept, pre's and the \
             group's 2: {in_driver:?}",
            self.label,
            in_driver.len()
        );

        // Restore.
        f.claim(
            RESTORED,
            &self.class,
            json!({"spec": {"dataSource": {
                "apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": SNAP,
            }}}),
        )
        .await?;
        let restored = f
            .wait_bound(&[RESTORED.to_string()], STEP, &self.processes())
            .await?;
        let snap = self.api(Kind::VolumeSnapshot).get(SNAP).await?;
        let snap_content = bound_content(&snap)?;
        let snap_handle = self
            .api(Kind::VolumeSnapshotContent)
            .get(&snap_content)
            .await?
            .data["status"]["snapshotHandle"]
            .as_str()
            .context("snap's content has no snapshotHandle")?
            .to_string();
        let create = f
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| {
                c.short_method() == "CreateVolume"
                    && c.request["volume_content_source"]["Type"]["Snapshot"]["snapshot_id"]
                        .as_str()
                        == Some(snap_handle.as_str())
            })
            .with_context(|| {
                format!(
                    "{}: no CreateVolume from snapshot {snap_handle} for the restored claim",
                    self.label
                )
            })?;
        ensure!(create.error.is_empty(), "{}: {create:?}", self.label);

        // Events are written in the background.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.check_health().await?;
        let report = self.check_invariants("everything is ready").await?;
        let checked = |check| report.check(check).map_or(0, |c| c.checked);
        ensure!(
            checked(invariants::GROUP_SNAPSHOT_CONTENTS) == 1
                && checked(invariants::SNAPSHOT_CONTENTS) == 5,
            "{}: the invariants did not see the group content and the five contents:\n{report}",
            self.label
        );
        let mut captured = Captured::default();
        captured.add_state(self, "ready").await?;

        // Deletions.
        let restored_pv = restored[RESTORED].metadata.name.clone().unwrap_or_default();
        f.delete_and_wait_for_pv(RESTORED, &restored_pv, &self.processes())
            .await?;
        self.delete(Kind::VolumeSnapshot, SNAP).await?;
        self.wait_gone(Kind::VolumeSnapshot, SNAP).await?;
        self.wait_gone(Kind::VolumeSnapshotContent, &snap_content)
            .await?;
        let kept = self.api(Kind::VolumeSnapshot).get(KEPT).await?;
        let kept_content = bound_content(&kept)?;
        self.delete(Kind::VolumeSnapshot, KEPT).await?;
        self.wait_gone(Kind::VolumeSnapshot, KEPT).await?;
        self.delete(Kind::VolumeSnapshot, PRE).await?;
        self.wait_gone(Kind::VolumeSnapshot, PRE).await?;
        self.wait_gone(Kind::VolumeSnapshotContent, &pre_content)
            .await?;
        self.delete(Kind::VolumeGroupSnapshot, GROUP).await?;
        self.wait_gone(Kind::VolumeGroupSnapshot, GROUP).await?;
        self.wait_gone(Kind::VolumeGroupSnapshotContent, &group_content)
            .await?;
        for member in &members {
            self.wait_gone(Kind::VolumeSnapshot, member).await?;
        }
        // Retain: the content outlives its snapshot, and so does the driver's snapshot.
        let retained = self
            .wait_for(
                Kind::VolumeSnapshotContent,
                &kept_content,
                "kept after its snapshot was deleted",
                |_| true,
            )
            .await?;
        let retained_handle = retained.data["status"]["snapshotHandle"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let left = self.wait_driver_snapshots(4).await?;
        ensure!(
            left.iter().any(|(id, _)| *id == retained_handle),
            "{}: the retained snapshot {retained_handle} is gone from the driver: {left:?}",
            self.label
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        captured.add_state(self, "deleted").await?;
        // The retained content, switched to Delete and deleted, takes the snapshot with it.
        self.api(Kind::VolumeSnapshotContent)
            .patch(
                &kept_content,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"deletionPolicy": "Delete"}})),
            )
            .await?;
        self.delete(Kind::VolumeSnapshotContent, &kept_content)
            .await?;
        self.wait_gone(Kind::VolumeSnapshotContent, &kept_content)
            .await?;
        self.wait_driver_snapshots(3).await?;
        for claim in &names {
            let pv = pvs[claim].metadata.name.clone().unwrap_or_default();
            f.delete_and_wait_for_pv(claim, &pv, &self.processes())
                .await?;
        }
        let volumes = f.driver.list_volumes().await?;
        ensure!(
            volumes.len() == 3,
            "{}: volumes left in the driver: {volumes:?}",
            self.label
        );
        self.check_health().await?;
        self.check_invariants("everything is deleted").await?;
        captured.add_calls(self);
        Ok(captured)
    }

    /// The names of the classes [`Stack::bad_input`] makes: one of another driver, one naming a
    /// snapshotter secret that does not exist.
    fn bad_input_classes(&self) -> (String, String) {
        (
            format!("{}-other", self.ns()),
            format!("{}-no-secret", self.ns()),
        )
    }

    /// Bad input, as upstream handles it:
    ///
    /// - a class naming a snapshotter secret that does not exist (the ServiceAccounts may read
    ///   Secrets, as a driver with secrets grants): the content is made with the secret's
    ///   annotations, the snapshotter refuses it without calling the driver (a Warning
    ///   `SnapshotCreationFailed` on the content, `cannot get credentials`), the error reaches
    ///   the snapshot's status; deleted, snapshot and content go;
    /// - a class of another driver: the content is made for that driver and ours leaves it
    ///   alone (no driver call, not ready); deleted, the content waits, being deleted, for that
    ///   driver's snapshotter to let it go (the test plays it), then both go;
    ///
    /// and afterwards nothing is left: no driver snapshot, no content, the claim free.
    pub async fn bad_input(&self) -> anyhow::Result<()> {
        let f = &self.fixture;
        let (other_class, no_secret_class) = self.bad_input_classes();
        self.create(
            Kind::VolumeSnapshotClass,
            json!({
                "metadata": {"name": other_class},
                "driver": "other.csi.example.com",
                "deletionPolicy": "Delete",
            }),
        )
        .await?;
        self.create(
            Kind::VolumeSnapshotClass,
            json!({
                "metadata": {"name": no_secret_class},
                "driver": f.driver_name(),
                "deletionPolicy": "Delete",
                "parameters": {
                    "csi.storage.k8s.io/snapshotter-secret-name": "no-such-secret",
                    "csi.storage.k8s.io/snapshotter-secret-namespace": self.ns(),
                },
            }),
        )
        .await?;
        self.grant_secret_reads().await?;
        f.claim(BAD_SOURCE, &self.class, json!({})).await?;
        let pvs = f
            .wait_bound(&[BAD_SOURCE.to_string()], STEP, &self.processes())
            .await?;
        let snapshots_before = f.driver.calls_to("CreateSnapshot");
        let of_source = |name: &str, class: &str| snapshot_of(name, class, BAD_SOURCE);

        self.create(Kind::VolumeSnapshot, of_source(NO_SECRET, &no_secret_class))
            .await?;
        let failed = self
            .wait_for(Kind::VolumeSnapshot, NO_SECRET, "an error status", |s| {
                s.data["status"]["error"]["message"].is_string()
            })
            .await?;
        let message = failed.data["status"]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ensure!(
            message.contains("cannot get credentials for snapshot content"),
            "{}: the error of snapshot {NO_SECRET}: {message}",
            self.label
        );
        let content = bound_content(&failed)?;
        // Events of cluster-scoped objects go to "default".
        let default_events: Api<Event> = Api::namespaced(self.admin().clone(), "default");
        wait_until(
            &format!(
                "{}: Warning SnapshotCreationFailed on {content}",
                self.label
            ),
            STEP,
            || async {
                let events = default_events.list(&ListParams::default()).await.ok()?;
                events
                    .items
                    .iter()
                    .any(|e| {
                        e.involved_object.name.as_deref() == Some(content.as_str())
                            && e.type_.as_deref() == Some("Warning")
                            && e.reason.as_deref() == Some("SnapshotCreationFailed")
                            && e.message.as_deref().is_some_and(|m| {
                                m.starts_with("Failed to create snapshot: ")
                                    && m.contains("cannot get credentials for snapshot content")
                            })
                    })
                    .then_some(())
            },
            || self.diagnostics(),
        )
        .await?;

        self.create(Kind::VolumeSnapshot, of_source(OTHER, &other_class))
            .await?;
        let other = self
            .wait_for(Kind::VolumeSnapshot, OTHER, "bound to a content", |s| {
                s.data["status"]["boundVolumeSnapshotContentName"].is_string()
            })
            .await?;
        let other_content = bound_content(&other)?;
        let made = self
            .api(Kind::VolumeSnapshotContent)
            .get(&other_content)
            .await?;
        ensure!(
            made.data["spec"]["driver"] == "other.csi.example.com",
            "{}: the content of snapshot {OTHER} is not for the class's driver: {}",
            self.label,
            made.data["spec"]
        );
        // Time for a snapshotter that wrongly took it to call the driver.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let other = self.api(Kind::VolumeSnapshot).get(OTHER).await?;
        ensure!(
            !ready(&other),
            "{}: snapshot {OTHER} of another driver is ready",
            self.label
        );
        ensure!(
            f.driver.calls_to("CreateSnapshot") == snapshots_before,
            "{}: the driver was asked for a snapshot of a missing secret's or another driver's class",
            self.label
        );

        self.delete(Kind::VolumeSnapshot, NO_SECRET).await?;
        self.wait_gone(Kind::VolumeSnapshot, NO_SECRET).await?;
        self.wait_gone(Kind::VolumeSnapshotContent, &content)
            .await?;
        self.delete(Kind::VolumeSnapshot, OTHER).await?;
        self.wait_for(
            Kind::VolumeSnapshotContent,
            &other_content,
            "being deleted, waiting for its driver",
            |c| c.metadata.deletion_timestamp.is_some(),
        )
        .await?;
        self.api(Kind::VolumeSnapshotContent)
            .patch(
                &other_content,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await?;
        self.wait_gone(Kind::VolumeSnapshotContent, &other_content)
            .await?;
        self.wait_gone(Kind::VolumeSnapshot, OTHER).await?;

        let pv = pvs[BAD_SOURCE].metadata.name.clone().unwrap_or_default();
        f.delete_and_wait_for_pv(BAD_SOURCE, &pv, &self.processes())
            .await?;
        self.wait_driver_snapshots(3).await?;
        for class in [&other_class, &no_secret_class] {
            self.delete(Kind::VolumeSnapshotClass, class).await?;
        }
        self.check_health().await?;
        self.check_invariants("the bad input is deleted").await?;
        Ok(())
    }

    /// Lets every ServiceAccount of the stack read the namespace's Secrets: the rule upstream's
    /// snapshotter RBAC ships commented out, "optional, enable it if your driver needs secret",
    /// as a driver with snapshotter secrets in its classes does.
    async fn grant_secret_reads(&self) -> anyhow::Result<()> {
        let subjects: Vec<Value> = self
            .accounts
            .iter()
            .filter_map(|user| user.strip_prefix("system:serviceaccount:"))
            .filter_map(|account| account.split_once(':'))
            .map(|(namespace, name)| {
                json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
            })
            .collect();
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": "read-secrets"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
        }))?;
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "read-secrets"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-secrets"},
            "subjects": subjects,
        }))?;
        let roles: Api<Role> = Api::namespaced(self.admin().clone(), self.ns());
        roles.create(&PostParams::default(), &role).await?;
        let bindings: Api<RoleBinding> = Api::namespaced(self.admin().clone(), self.ns());
        bindings.create(&PostParams::default(), &binding).await?;
        Ok(())
    }

    /// The member VolumeSnapshots of the namespace's group snapshot (by their
    /// `volumeGroupSnapshotName` status), sorted.
    pub async fn group_members(&self) -> anyhow::Result<Vec<String>> {
        let mut members: Vec<String> = self
            .objects(Kind::VolumeSnapshot)
            .await?
            .into_iter()
            .filter(|s| s.data["status"]["volumeGroupSnapshotName"].as_str() == Some(GROUP))
            .filter_map(|s| s.metadata.name)
            .collect();
        members.sort();
        Ok(members)
    }

    /// Waits until the driver holds `n` snapshots; returns them.
    async fn wait_driver_snapshots(&self, n: usize) -> anyhow::Result<Vec<(String, String)>> {
        let driver = &self.fixture.driver;
        wait_until(
            &format!("{}: {n} snapshots in the driver", self.label),
            STEP,
            || async {
                let list = driver.list_snapshots().await.ok()?;
                (list.len() == n).then_some(list)
            },
            || async {
                format!(
                    "driver snapshots: {:?}\n{}",
                    driver.list_snapshots().await,
                    self.diagnostics().await
                )
            },
        )
        .await
    }

    /// The claims and PVs of the stack.
    pub async fn claims_and_volumes(
        &self,
    ) -> anyhow::Result<(Vec<PersistentVolumeClaim>, Vec<PersistentVolume>)> {
        let claims = self
            .fixture
            .claims()
            .list(&ListParams::default())
            .await?
            .items;
        let driver = self.fixture.driver_name();
        let pvs = self
            .fixture
            .pvs()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.csi.as_ref())
                    .is_some_and(|csi| csi.driver == driver)
            })
            .collect();
        Ok((claims, pvs))
    }

    /// The Events of the namespace.
    pub async fn events(&self) -> anyhow::Result<Vec<Event>> {
        let events: Api<Event> = Api::namespaced(self.admin().clone(), self.ns());
        Ok(events.list(&ListParams::default()).await?.items)
    }

    /// Events of the namespace as text, for messages.
    pub async fn describe_events(&self) -> String {
        describe_events(self.admin(), self.ns()).await
    }
}

/// The volume handle of a PV.
pub fn handle_of(pv: &PersistentVolume) -> anyhow::Result<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.clone())
        .context("a PV without a CSI volume handle")
}

/// Sorted set of strings, for captured requests and Events.
pub type Lines = BTreeSet<String>;
/// By key.
pub type Keyed<T> = BTreeMap<String, T>;
