//! Ours against upstream: the same expansions and modifications go through upstream's Go
//! `csi-resizer` v2.3.0 (built by `cargo xtask tools`, named by `cargo xtask e2e` in
//! `CSI_E2E_GO_RESIZER`) and through our `csi-resizer`, side by side on one control plane, and
//! what each writes is compared: the claims (status, annotations, field managers), the
//! PersistentVolumes (capacity, VolumeAttributesClass, annotations, field managers), the Events
//! on the claims and on the resizer's leader election Lease, and the ControllerExpandVolume and
//! ControllerModifyVolume requests the driver received. A difference is a bug in ours unless [`DELIBERATE`] names it with its reason.
//!
//! Each side has two namespaces, each with its own mock driver, StorageClass `<namespace>-grow`
//! (expandable), our `csi-provisioner` and the resizer under test: `main`, a driver that expands
//! in the controller, and `node`, a driver that expands only on the node
//! (`--disable-controller-expansion --node-expansion-required`). Provisioner and resizer run as
//! the cluster admin with the same flags on both sides: permissions are not compared here (the
//! shipped RBAC is checked by `resizer.rs`), so any difference is behaviour.
//!
//! The workload, per side:
//! - `grow-once`: 1Gi to 2Gi; `grow-twice`: 1Gi to 2Gi, then to 3Gi;
//! - `not-found`: a PV made by hand whose volume the driver does not have, bound to the claim
//!   and grown: ControllerExpandVolume answers NotFound, an infeasible expansion;
//! - `modify`: a VolumeAttributesClass of the side's driver; `modify-foreign`: one of another
//!   driver (upstream does not check the class's driver: it modifies); `modify-missing`: a
//!   class that does not exist (the modification stays Pending);
//! - `node/node-only`: 1Gi to 2Gi on the node-only driver (the PV grows, the claim waits for the
//!   kubelet).
//!
//! Before comparing, each side's objects are normalised: namespaces and driver names become
//! `NS`, `NODE-NS`, `DRIVER`, `NODE-DRIVER`; a provisioned volume's name becomes `PV(<claim>)`
//! and every handle `HANDLE(<claim>)`; UIDs, resource versions, timestamps (also of conditions)
//! are dropped; the digits of the provisioner identity become `N`. Events are compared as the
//! set of distinct (type, reason, reporter, message): retries of a failing expansion follow each
//! run's timing.
//!
//! Not exercised: an infeasible modification (the mock driver's ControllerModifyVolume always
//! succeeds), and an expansion refused with InvalidArgument (provoking one takes restarts of the
//! driver, which `resizer.rs` does; NotFound takes the same infeasible path here).
//!
//! The comparison is tested by setting `CSI_E2E_RESIZER_AS_OURS` to a binary that stands for
//! ours: upstream's own must agree with itself (nothing random survives normalisation), and
//! upstream's with `--extra-modify-metadata=false` appended (a script) must not. Each side's
//! normalised snapshot is written to `target/debug/resizer-upstream/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use csi_e2e_support::compare::{
    compare_values, digits_to_n, is_conflict_retry, normalize_conditions, strip_metadata,
    uuids_to_placeholder,
};
use csi_e2e_support::storage::{StorageFixture, WAIT};
use csi_e2e_support::{E2eEnv, ignore_not_found, wait_until};
use csi_test_support::ChildProcess;
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttributesClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Differences between upstream and ours that are deliberate, each with its reason, as
/// `(what differs, why)`.
const DELIBERATE: &[(&str, &str)] = &[];

/// The flags both resizers get (besides `--csi-address`, `--kubeconfig` and the lease's
/// namespace): everything else at upstream's defaults.
const RESIZER_ARGS: &[&str] = &["--leader-election", "--extra-modify-metadata", "-v=5"];

/// The driver a VolumeAttributesClass of `modify-foreign` names.
const FOREIGN_DRIVER: &str = "other.csi.e2e.k8s.io";

/// The claims of the `main` part that are provisioned (`not-found` is bound by hand).
const PROVISIONED: &[&str] = &[
    "grow-once",
    "grow-twice",
    "modify",
    "modify-foreign",
    "modify-missing",
];

/// The claim of the hand-made PV.
const NOT_FOUND: &str = "not-found";
/// The handle of the hand-made PV: the driver has no such volume.
const MISSING_HANDLE: &str = "no-such-volume";

/// Which resizer a side runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Go,
    Ours,
}

impl Which {
    fn label(self) -> &'static str {
        match self {
            Which::Go => "upstream Go csi-resizer v2.3.0",
            Which::Ours => "our csi-resizer",
        }
    }
}

/// A namespace with its driver, class, provisioner and resizer.
struct Part {
    name: &'static str,
    fixture: StorageFixture,
    class: String,
    processes: Vec<(&'static str, ChildProcess)>,
}

impl Part {
    async fn start(
        prefix: &str,
        name: &'static str,
        driver_args: &[&str],
        resizer: &Path,
    ) -> anyhow::Result<Part> {
        let rbac = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sidecars/external-resizer/deploy/rbac.yaml");
        let mut fixture = StorageFixture::new(prefix, &rbac, driver_args).await?;
        let started = async {
            let class = fixture
                .storage_class("grow", json!({"allowVolumeExpansion": true}))
                .await?;
            let admin = fixture.env.kubeconfig.clone();
            let common = [
                format!("--csi-address={}", fixture.driver.endpoint()),
                format!("--kubeconfig={}", admin.display()),
            ];
            let provisioner = ChildProcess::spawn(fixture.env.binary("csi-provisioner")?, &common)?;
            let mut args = common.to_vec();
            args.push(format!("--leader-election-namespace={}", fixture.ns.name));
            args.extend(RESIZER_ARGS.iter().map(ToString::to_string));
            let resizer = ChildProcess::spawn(resizer, &args)?;
            anyhow::Ok((class, provisioner, resizer))
        }
        .await;
        match started {
            Ok((class, provisioner, resizer)) => Ok(Part {
                name,
                fixture,
                class,
                processes: vec![("csi-provisioner", provisioner), ("resizer", resizer)],
            }),
            Err(err) => Err(fixture.finish(Err(err)).await.unwrap_err()),
        }
    }

    fn processes(&self) -> Vec<(&str, &ChildProcess)> {
        self.processes.iter().map(|(n, p)| (*n, p)).collect()
    }

    async fn diagnostics(&self) -> String {
        self.fixture.diagnostics(&self.processes()).await
    }

    /// Patches claim `name` (a merge patch), as the user would.
    async fn edit(&self, name: &str, patch: Value) -> anyhow::Result<()> {
        self.fixture
            .claims()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("{}: editing claim {name}", self.name))?;
        Ok(())
    }

    /// Waits until `ready` holds for claim `name` and its PV.
    async fn wait_for(
        &self,
        label: &str,
        name: &str,
        what: &str,
        ready: impl Fn(&PersistentVolumeClaim, &PersistentVolume) -> bool,
    ) -> anyhow::Result<()> {
        wait_until(
            &format!("{label}: claim {name}: {what}"),
            WAIT,
            || async {
                let claim = self.fixture.claims().get(name).await.ok()?;
                let volume = claim.spec.as_ref()?.volume_name.clone()?;
                let pv = self.fixture.pvs().get(&volume).await.ok()?;
                ready(&claim, &pv).then_some(())
            },
            || self.diagnostics(),
        )
        .await
    }

    /// The claims of the namespace and the PVs of the driver.
    async fn objects(&self) -> anyhow::Result<(Vec<PersistentVolumeClaim>, Vec<PersistentVolume>)> {
        let claims = self
            .fixture
            .claims()
            .list(&ListParams::default())
            .await?
            .items;
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
                    .is_some_and(|csi| csi.driver == self.fixture.driver_name())
            })
            .collect();
        Ok((claims, pvs))
    }

    async fn finish(mut self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        for (_, mut process) in self.processes.drain(..) {
            let _ = process.signal("TERM");
            let _ = process.wait(Duration::from_secs(10)).await;
        }
        self.fixture.finish(outcome).await
    }
}

/// One side: the `main` and `node` parts, and the VolumeAttributesClasses it made.
struct Side {
    which: Which,
    main: Part,
    node: Part,
    classes: Vec<String>,
}

fn storage(quantity: &str) -> Value {
    json!({"spec": {"resources": {"requests": {"storage": quantity}}}})
}

fn pv_capacity(pv: &PersistentVolume) -> Option<&str> {
    pv.spec
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")
        .map(|q| q.0.as_str())
}

fn claim_capacity(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .status
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")
        .map(|q| q.0.as_str())
}

fn has_condition(claim: &PersistentVolumeClaim, type_: &str) -> bool {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_))
}

fn resize_status(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .status
        .as_ref()?
        .allocated_resource_statuses
        .as_ref()?
        .get("storage")
        .map(String::as_str)
}

fn current_class(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .status
        .as_ref()?
        .current_volume_attributes_class_name
        .as_deref()
}

fn modify_status(claim: &PersistentVolumeClaim) -> Option<&str> {
    Some(
        claim
            .status
            .as_ref()?
            .modify_volume_status
            .as_ref()?
            .status
            .as_str(),
    )
}

impl Side {
    async fn start(which: Which, binary: &Path) -> anyhow::Result<Side> {
        let prefix = match which {
            Which::Go => "rsz-go",
            Which::Ours => "rsz-ours",
        };
        let main = Part::start(prefix, "main", &[], binary).await?;
        let node = match Part::start(
            &format!("{prefix}-node"),
            "node",
            &[
                "--disable-controller-expansion",
                "--node-expansion-required",
            ],
            binary,
        )
        .await
        {
            Ok(node) => node,
            Err(err) => return Err(main.finish(Err(err)).await.unwrap_err()),
        };
        Ok(Side {
            which,
            main,
            node,
            classes: Vec::new(),
        })
    }

    fn vacs(&self) -> Api<VolumeAttributesClass> {
        Api::all(self.main.fixture.admin.clone())
    }

    async fn attributes_class(
        &mut self,
        suffix: &str,
        driver: &str,
        iops: &str,
    ) -> anyhow::Result<String> {
        let name = format!("{}-{suffix}", self.main.fixture.ns.name);
        let vac: VolumeAttributesClass = serde_json::from_value(json!({
            "metadata": {"name": name},
            "driverName": driver,
            "parameters": {"iops": iops},
        }))?;
        self.vacs().create(&PostParams::default(), &vac).await?;
        self.classes.push(name.clone());
        Ok(name)
    }

    /// A PV of the driver whose volume the driver does not have, bound to a new claim
    /// [`NOT_FOUND`] of the expandable class.
    async fn bind_missing_volume(&self) -> anyhow::Result<()> {
        let f = &self.main.fixture;
        let pv_name = format!("{}-{NOT_FOUND}", f.ns.name);
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": self.main.class,
                "claimRef": {"namespace": f.ns.name, "name": NOT_FOUND},
                "csi": {"driver": f.driver_name(), "volumeHandle": MISSING_HANDLE},
            },
        }))?;
        f.pvs().create(&PostParams::default(), &pv).await?;
        f.claim(
            NOT_FOUND,
            &self.main.class,
            json!({"spec": {"volumeName": pv_name}}),
        )
        .await
    }

    /// The workload; see the module's documentation.
    async fn run(&mut self) -> anyhow::Result<Snapshot> {
        let label = self.which.label();
        for claim in PROVISIONED {
            self.main
                .fixture
                .claim(claim, &self.main.class, json!({}))
                .await?;
        }
        self.bind_missing_volume().await?;
        self.node
            .fixture
            .claim("node-only", &self.node.class, json!({}))
            .await?;
        let mut names: Vec<String> = PROVISIONED.iter().map(ToString::to_string).collect();
        names.push(NOT_FOUND.to_string());
        self.main
            .fixture
            .wait_bound(&names, WAIT, &self.main.processes())
            .await?;
        self.node
            .fixture
            .wait_bound(&["node-only".to_string()], WAIT, &self.node.processes())
            .await?;

        let driver = self.main.fixture.driver_name().to_string();
        let fast = self.attributes_class("fast", &driver, "1000").await?;
        let foreign = self
            .attributes_class("foreign", FOREIGN_DRIVER, "2000")
            .await?;
        let missing = format!("{}-absent", self.main.fixture.ns.name);
        let main = &self.main;
        let vac = |name: &str| json!({"spec": {"volumeAttributesClassName": name}});
        main.edit("grow-once", storage("2Gi")).await?;
        main.edit("grow-twice", storage("2Gi")).await?;
        main.edit(NOT_FOUND, storage("2Gi")).await?;
        main.edit("modify", vac(&fast)).await?;
        main.edit("modify-foreign", vac(&foreign)).await?;
        main.edit("modify-missing", vac(&missing)).await?;
        self.node.edit("node-only", storage("2Gi")).await?;

        let grown = |size: &'static str| {
            move |c: &PersistentVolumeClaim, pv: &PersistentVolume| {
                claim_capacity(c) == Some(size) && pv_capacity(pv) == Some(size)
            }
        };
        main.wait_for(label, "grow-twice", "2Gi", grown("2Gi"))
            .await?;
        main.edit("grow-twice", storage("3Gi")).await?;
        main.wait_for(label, "grow-twice", "3Gi", grown("3Gi"))
            .await?;
        main.wait_for(label, "grow-once", "2Gi", grown("2Gi"))
            .await?;
        main.wait_for(label, NOT_FOUND, "infeasible", |c, _| {
            resize_status(c) == Some("ControllerResizeInfeasible")
        })
        .await?;
        main.wait_for(label, "modify", "the class applied", |c, _| {
            current_class(c) == Some(fast.as_str())
        })
        .await?;
        main.wait_for(label, "modify-foreign", "the class applied", |c, _| {
            current_class(c) == Some(foreign.as_str())
        })
        .await?;
        main.wait_for(label, "modify-missing", "Pending", |c, _| {
            modify_status(c) == Some("Pending")
        })
        .await?;
        self.node
            .wait_for(label, "node-only", "node expansion pending", |c, pv| {
                pv_capacity(pv) == Some("2Gi") && has_condition(c, "FileSystemResizePending")
            })
            .await?;
        // Events are sent in the background, and a failed expansion is retried after 1 s, 2 s,
        // …: give both time to arrive.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for part in [&self.main, &self.node] {
            for (name, process) in &part.processes {
                ensure!(
                    !csi_e2e_support::has_exited(process),
                    "{label}: {name} of {} exited:\n{}",
                    part.name,
                    part.diagnostics().await
                );
            }
        }
        self.snapshot().await
    }

    /// Everything this side wrote so far, normalised.
    async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let parts = [&self.main, &self.node];
        let mut objects = Vec::new();
        for part in parts {
            objects.push(part.objects().await?);
        }
        let mut n = Normalizer::default();
        for (part, (claims, pvs)) in parts.iter().zip(&objects) {
            n.add(part, claims, pvs);
        }
        n.finish();
        let mut snapshot = Snapshot::default();
        for (part, (claims, pvs)) in parts.iter().zip(&objects) {
            let key = |claim: &str| format!("{}/{claim}", part.name);
            for pv in pvs {
                let claim = pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .and_then(|c| c.name.clone())
                    .unwrap_or_default();
                snapshot.pvs.insert(key(&claim), normalize_pv(pv, &n)?);
            }
            for claim in claims {
                let name = claim.metadata.name.clone().unwrap_or_default();
                snapshot
                    .claims
                    .insert(key(&name), normalize_claim(claim, &n)?);
            }
            let events: Api<Event> =
                Api::namespaced(part.fixture.admin.clone(), &part.fixture.ns.name);
            for event in events.list(&ListParams::default()).await?.items {
                if is_conflict_retry(&event) {
                    continue;
                }
                let name = event.involved_object.name.clone().unwrap_or_default();
                let about = match event.involved_object.kind.as_deref() {
                    Some("PersistentVolumeClaim") => key(&name),
                    // The resizer's LeaderElection Events.
                    Some("Lease") => key(&format!("Lease/{}", n.text(&name))),
                    _ => continue,
                };
                snapshot
                    .events
                    .entry(about)
                    .or_default()
                    .insert(describe_event(&event, &n));
            }
            for (method, out) in [
                ("ControllerExpandVolume", &mut snapshot.expand),
                ("ControllerModifyVolume", &mut snapshot.modify),
            ] {
                for call in part.fixture.driver.grpc_calls() {
                    if call.short_method() != method {
                        continue;
                    }
                    let mut request = call.request.clone();
                    let handle = n.handle(
                        part.fixture.driver_name(),
                        request["volume_id"].as_str().unwrap_or_default(),
                    );
                    request["volume_id"] = json!(handle);
                    request["error"] = json!(n.text(&call.error));
                    out.entry(key(&handle))
                        .or_default()
                        .insert(n.value(&request).to_string());
                }
            }
        }
        Ok(snapshot)
    }

    async fn finish(self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        let vacs = self.vacs();
        let outcome = self.node.finish(outcome).await;
        let outcome = self.main.finish(outcome).await;
        for name in &self.classes {
            let _ = ignore_not_found(vacs.delete(name, &DeleteParams::default()).await);
        }
        outcome
    }
}

/// What makes one side's objects comparable with the other's: names become placeholders.
#[derive(Default)]
struct Normalizer {
    /// `(text, placeholder)`, longest first.
    replacements: Vec<(String, String)>,
    /// (driver, volume handle) -> claim: each driver numbers its volumes from the same start.
    handles: BTreeMap<(String, String), String>,
}

impl Normalizer {
    fn add(&mut self, part: &Part, claims: &[PersistentVolumeClaim], pvs: &[PersistentVolume]) {
        let prefix = if part.name == "main" { "" } else { "NODE-" };
        for claim in claims {
            let (Some(name), Some(uid)) = (&claim.metadata.name, &claim.metadata.uid) else {
                continue;
            };
            self.replacements
                .push((format!("pvc-{uid}"), format!("PV({name})")));
            self.replacements
                .push((uid.clone(), format!("UID({name})")));
        }
        self.replacements.push((
            part.fixture.driver_name().to_string(),
            format!("{prefix}DRIVER"),
        ));
        self.replacements
            .push((part.fixture.ns.name.clone(), format!("{prefix}NS")));
        for pv in pvs {
            let Some(spec) = pv.spec.as_ref() else {
                continue;
            };
            if let (Some(claim), Some(csi)) = (
                spec.claim_ref.as_ref().and_then(|c| c.name.clone()),
                spec.csi.as_ref(),
            ) {
                self.handles
                    .insert((csi.driver.clone(), csi.volume_handle.clone()), claim);
            }
        }
    }

    fn finish(&mut self) {
        self.replacements
            .sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    }

    fn text(&self, text: &str) -> String {
        self.replacements
            .iter()
            .fold(text.to_string(), |text, (from, to)| text.replace(from, to))
    }

    fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn handle(&self, driver: &str, handle: &str) -> String {
        match self.handles.get(&(driver.to_string(), handle.to_string())) {
            Some(claim) => format!("HANDLE({claim})"),
            None => format!("HANDLE(unknown {handle})"),
        }
    }
}

fn normalize_pv(pv: &PersistentVolume, n: &Normalizer) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(pv)?;
    strip_metadata(&mut value);
    if let Some(claim_ref) = value
        .pointer_mut("/spec/claimRef")
        .and_then(Value::as_object_mut)
    {
        claim_ref.remove("uid");
        claim_ref.remove("resourceVersion");
    }
    if let Some(status) = value.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("lastPhaseTransitionTime");
    }
    if let Some(csi) = pv.spec.as_ref().and_then(|s| s.csi.as_ref()) {
        value["spec"]["csi"]["volumeHandle"] = json!(n.handle(&csi.driver, &csi.volume_handle));
    }
    let mut value = n.value(&value);
    // "<start time in ms>-<random number>-<driver>"
    if let Some(identity) = value
        .pointer_mut("/spec/csi/volumeAttributes/storage.kubernetes.io~1csiProvisionerIdentity")
    {
        *identity = json!(digits_to_n(identity.as_str().unwrap_or_default()));
    }
    Ok(value)
}

fn normalize_claim(claim: &PersistentVolumeClaim, n: &Normalizer) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(claim)?;
    strip_metadata(&mut value);
    normalize_conditions(&mut value);
    Ok(n.value(&value))
}

/// One Event as compared: its type, reason, reporters and message. The count and times are not
/// compared (retries follow each run's timing); the UUID in the provisioner's reporting
/// instance (`<driver>_<host>_<random UUID>`) becomes `UUID`.
fn describe_event(event: &Event, n: &Normalizer) -> String {
    let source = event.source.as_ref();
    let text = |t: Option<&str>| uuids_to_placeholder(&n.text(t.unwrap_or_default()));
    format!(
        "{} {} [source {}/{}, reporting {}/{}] {}",
        event.type_.as_deref().unwrap_or("?"),
        event.reason.as_deref().unwrap_or("?"),
        text(source.and_then(|s| s.component.as_deref())),
        text(source.and_then(|s| s.host.as_deref())),
        text(event.reporting_component.as_deref()),
        text(event.reporting_instance.as_deref()),
        text(event.message.as_deref()),
    )
}

/// What one side wrote, normalised, by `<part>/<claim>`.
#[derive(Debug, Default)]
struct Snapshot {
    pvs: BTreeMap<String, Value>,
    claims: BTreeMap<String, Value>,
    events: BTreeMap<String, BTreeSet<String>>,
    /// The distinct ControllerExpandVolume requests (with the error each got), by volume.
    expand: BTreeMap<String, BTreeSet<String>>,
    modify: BTreeMap<String, BTreeSet<String>>,
}

/// The differences between two snapshots, one paragraph each.
fn differences(go: &Snapshot, ours: &Snapshot) -> Vec<String> {
    fn sets(
        what: &str,
        go: &BTreeMap<String, BTreeSet<String>>,
        ours: &BTreeMap<String, BTreeSet<String>>,
        out: &mut Vec<String>,
    ) {
        let lines = |set: Option<&BTreeSet<String>>| {
            set.map_or_else(
                || " (none)".to_string(),
                |s| s.iter().map(|l| format!("\n    {l}")).collect(),
            )
        };
        let keys: BTreeSet<&String> = go.keys().chain(ours.keys()).collect();
        for key in keys {
            let (a, b) = (go.get(key), ours.get(key));
            if a != b {
                out.push(format!(
                    "{what} of {key}:\n  upstream:{}\n  ours:{}",
                    lines(a),
                    lines(b)
                ));
            }
        }
    }
    let mut out = Vec::new();
    compare_values("PersistentVolume", &go.pvs, &ours.pvs, &mut out);
    compare_values("PersistentVolumeClaim", &go.claims, &ours.claims, &mut out);
    sets("Events", &go.events, &ours.events, &mut out);
    sets("ControllerExpandVolume", &go.expand, &ours.expand, &mut out);
    sets("ControllerModifyVolume", &go.modify, &ours.modify, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn resizer_writes_what_upstream_writes() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let go_binary = std::env::var_os("CSI_E2E_GO_RESIZER")
        .map(PathBuf::from)
        .context(
            "CSI_E2E_GO_RESIZER is not set: run the end-to-end tests with `cargo xtask e2e`",
        )?;
    // To test the comparison itself: with upstream's binary here, the sides must agree.
    let ours_binary = match std::env::var_os("CSI_E2E_RESIZER_AS_OURS") {
        Some(path) => PathBuf::from(path),
        None => env.binary("csi-resizer")?,
    };
    let dump_dir = env.bin_dir.join("resizer-upstream");

    let mut go = Side::start(Which::Go, &go_binary).await?;
    let mut ours = match Side::start(Which::Ours, &ours_binary).await {
        Ok(side) => side,
        Err(err) => return go.finish(Err(err)).await,
    };
    let outcome = async {
        let (go_result, ours_result) = tokio::join!(go.run(), ours.run());
        let (go_snapshot, ours_snapshot) = (go_result?, ours_result?);
        std::fs::create_dir_all(&dump_dir)?;
        std::fs::write(dump_dir.join("upstream.txt"), format!("{go_snapshot:#?}"))?;
        std::fs::write(dump_dir.join("ours.txt"), format!("{ours_snapshot:#?}"))?;
        let unexplained: Vec<String> = differences(&go_snapshot, &ours_snapshot)
            .into_iter()
            .filter(|d| !DELIBERATE.iter().any(|(what, _)| d.starts_with(what)))
            .collect();
        ensure!(
            unexplained.is_empty(),
            "our csi-resizer differs from upstream's in {} place(s):\n\n{}",
            unexplained.len(),
            unexplained.join("\n\n")
        );
        anyhow::Ok(())
    }
    .await;
    let outcome = ours.finish(outcome).await;
    go.finish(outcome).await
}
