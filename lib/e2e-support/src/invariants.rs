//! The end-of-scenario invariants of the reliability suite: what must hold after any workload,
//! whatever faults it met (killed leaders, a restarted driver or API server, throttling):
//!
//! | check | what holds |
//! |---|---|
//! | `claims` | every claim of the namespaces is Bound, or Pending with a Warning Event (cleanly failed) |
//! | `volumes-have-pvs` | every volume in the driver has a PV (no leaked volume) |
//! | `pvs-have-volumes` | every PV of the driver has its volume in the driver |
//! | `attachments` | no two VolumeAttachments for one volume and node; a single-node volume attached to one node at most |
//! | `snapshot-contents` | no bound Delete-policy VolumeSnapshotContent whose VolumeSnapshot is gone |
//! | `group-snapshot-contents` | no bound Delete-policy VolumeGroupSnapshotContent whose VolumeGroupSnapshot is gone |
//! | `driver-snapshots` | every snapshot in the driver has a VolumeSnapshotContent |
//! | `finalizers` | no object of the scenario stays with a deletionTimestamp (a finalizer nobody removes) |
//! | `created-once` | the driver's call log: each CreateVolume / CreateSnapshot / CreateVolumeGroupSnapshot name got one ID; one PV per claim |
//!
//! [`InvariantChecker`] collects the objects of a test's namespaces and driver, and the driver's
//! state and call log (across its restarts, [`DriverProcess::all_grpc_calls`]); the checks
//! themselves are pure functions of that [`Observed`] state ([`evaluate`]). Objects are matched
//! to the scenario by namespace (claims, VolumeSnapshots, VolumeGroupSnapshots, Events) or by
//! driver name (PVs, VolumeAttachments, VolumeSnapshotContents, VolumeGroupSnapshotContents):
//! every test has a driver of its own.
//!
//! [`InvariantChecker::check`] polls until everything holds or the settle time is over (work
//! finishing in flight is not a violation), and returns an [`InvariantReport`]: per check, how
//! many objects it looked at and the violations, printable as text ([`std::fmt::Display`]) and
//! as a Markdown table ([`InvariantReport::to_markdown`]) for soak reports.

mod evaluate;

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotContent};
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::ListParams;
use kube::{Api, Client};

pub use evaluate::evaluate;

use crate::{DriverCall, DriverProcess};

/// The names of the checks, in report order.
pub const CHECKS: [&str; 9] = [
    CLAIMS,
    VOLUMES_HAVE_PVS,
    PVS_HAVE_VOLUMES,
    ATTACHMENTS,
    SNAPSHOT_CONTENTS,
    GROUP_SNAPSHOT_CONTENTS,
    DRIVER_SNAPSHOTS,
    FINALIZERS,
    CREATED_ONCE,
];
/// Every claim Bound or cleanly failed (Pending with a Warning Event).
pub const CLAIMS: &str = "claims";
/// Every volume in the driver has a PV.
pub const VOLUMES_HAVE_PVS: &str = "volumes-have-pvs";
/// Every PV of the driver has a volume in the driver.
pub const PVS_HAVE_VOLUMES: &str = "pvs-have-volumes";
/// No VolumeAttachment twice; a single-node volume on one node at most.
pub const ATTACHMENTS: &str = "attachments";
/// No leaked VolumeSnapshotContent.
pub const SNAPSHOT_CONTENTS: &str = "snapshot-contents";
/// No leaked VolumeGroupSnapshotContent.
pub const GROUP_SNAPSHOT_CONTENTS: &str = "group-snapshot-contents";
/// Every snapshot in the driver has a VolumeSnapshotContent.
pub const DRIVER_SNAPSHOTS: &str = "driver-snapshots";
/// No object left terminating.
pub const FINALIZERS: &str = "finalizers";
/// Nothing created twice.
pub const CREATED_ONCE: &str = "created-once";

/// What one check looked at and found wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckResult {
    /// One of [`CHECKS`].
    pub name: &'static str,
    /// How many objects (claims, volumes, attachments, names, ...) it looked at.
    pub checked: usize,
    /// One line per violation, naming the object.
    pub violations: Vec<String>,
}

/// The outcome of all checks: one [`CheckResult`] per name of [`CHECKS`], in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvariantReport {
    /// The checks, in the order of [`CHECKS`].
    pub checks: Vec<CheckResult>,
}

impl InvariantReport {
    /// Whether no check found a violation.
    pub fn is_clean(&self) -> bool {
        self.checks.iter().all(|c| c.violations.is_empty())
    }

    /// Every violation, as `check: violation`.
    pub fn violations(&self) -> Vec<String> {
        self.checks
            .iter()
            .flat_map(|c| c.violations.iter().map(move |v| format!("{}: {v}", c.name)))
            .collect()
    }

    /// The result of the check `name`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// An error listing the violations (and the whole report) unless it is clean.
    pub fn ensure_clean(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.is_clean(), "invariants violated:\n{self}");
        Ok(())
    }

    /// Adds `other`'s counts and violations to this one's, check by check: the sum over the
    /// rounds of a soak.
    pub fn add(&mut self, other: &InvariantReport) {
        for result in &other.checks {
            match self.checks.iter_mut().find(|c| c.name == result.name) {
                Some(mine) => {
                    mine.checked += result.checked;
                    mine.violations.extend(result.violations.iter().cloned());
                }
                None => self.checks.push(result.clone()),
            }
        }
    }

    /// A Markdown table: check, objects checked, violations (the first few listed).
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| check | checked | violations |\n|---|---:|---|\n");
        for c in &self.checks {
            let violations = if c.violations.is_empty() {
                "0".to_string()
            } else {
                let shown: Vec<&str> = c.violations.iter().take(5).map(String::as_str).collect();
                let more = c.violations.len().saturating_sub(shown.len());
                let mut text = format!("**{}**: {}", c.violations.len(), shown.join("; "));
                if more > 0 {
                    text.push_str(&format!("; … {more} more"));
                }
                text.replace('|', "\\|")
            };
            out.push_str(&format!("| {} | {} | {violations} |\n", c.name, c.checked));
        }
        out
    }
}

impl fmt::Display for InvariantReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let verdict = if c.violations.is_empty() {
                "ok"
            } else {
                "VIOLATED"
            };
            writeln!(f, "{:<23} {:>6} checked  {verdict}", c.name, c.checked)?;
            for v in &c.violations {
                writeln!(f, "    - {v}")?;
            }
        }
        Ok(())
    }
}

/// Everything the checks look at, collected at one moment.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The driver's name: PVs, VolumeAttachments and contents of other drivers are ignored.
    pub driver_name: String,
    /// The claims of the namespaces.
    pub claims: Vec<PersistentVolumeClaim>,
    /// The Events of the namespaces.
    pub events: Vec<Event>,
    /// Every PV (filtered by driver here).
    pub pvs: Vec<PersistentVolume>,
    /// Every VolumeAttachment (filtered by attacher here).
    pub attachments: Vec<VolumeAttachment>,
    /// The VolumeSnapshots of the namespaces.
    pub snapshots: Vec<VolumeSnapshot>,
    /// Every VolumeSnapshotContent (filtered by driver here).
    pub contents: Vec<VolumeSnapshotContent>,
    /// The VolumeGroupSnapshots of the namespaces.
    pub group_snapshots: Vec<VolumeGroupSnapshot>,
    /// Every VolumeGroupSnapshotContent (filtered by driver here).
    pub group_contents: Vec<VolumeGroupSnapshotContent>,
    /// The driver's volumes (ListVolumes) as `(ID, CreateVolume name)`, built-in ones and
    /// ignored ones removed.
    pub driver_volumes: Vec<(String, String)>,
    /// The IDs of the driver's snapshots (ListSnapshots), built-in and ignored ones removed.
    pub driver_snapshots: Vec<String>,
    /// The driver's call log since its first start.
    pub calls: Vec<DriverCall>,
}

/// Collects [`Observed`] for a scenario and evaluates it; see the module documentation.
pub struct InvariantChecker<'a> {
    admin: Client,
    driver: &'a DriverProcess,
    namespaces: Vec<String>,
    settle: Duration,
    ignored_volumes: BTreeSet<String>,
    ignored_snapshots: BTreeSet<String>,
}

impl fmt::Debug for InvariantChecker<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvariantChecker")
            .field("driver", &self.driver.driver_name())
            .field("namespaces", &self.namespaces)
            .field("settle", &self.settle)
            .finish_non_exhaustive()
    }
}

/// How long [`InvariantChecker::check`] waits for the state to settle by default.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(30);

/// The mock driver's built-in volumes are named so; its built-in snapshots have IDs 1 to 3.
const BUILT_IN_VOLUME_PREFIX: &str = "Mock Volume ";
const BUILT_IN_SNAPSHOTS: [&str; 3] = ["1", "2", "3"];

impl<'a> InvariantChecker<'a> {
    /// A checker for the objects of `driver` (by its name) in no namespace yet; add the
    /// scenario's namespaces with [`InvariantChecker::namespace`].
    pub fn new(admin: &Client, driver: &'a DriverProcess) -> Self {
        InvariantChecker {
            admin: admin.clone(),
            driver,
            namespaces: Vec::new(),
            settle: DEFAULT_SETTLE,
            ignored_volumes: BTreeSet::new(),
            ignored_snapshots: BTreeSet::new(),
        }
    }

    /// Checks the claims, VolumeSnapshots and Events of `namespace` too.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespaces.push(namespace.to_string());
        self
    }

    /// How long [`InvariantChecker::check`] waits for violations to go away (default
    /// [`DEFAULT_SETTLE`]).
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// A volume the test created in the driver itself (no PV expected).
    pub fn ignore_volume(mut self, id: &str) -> Self {
        self.ignored_volumes.insert(id.to_string());
        self
    }

    /// A snapshot the test created in the driver itself, or kept on purpose (Retain, content
    /// deleted).
    pub fn ignore_snapshot(mut self, id: &str) -> Self {
        self.ignored_snapshots.insert(id.to_string());
        self
    }

    /// Collects the state once.
    pub async fn observe(&self) -> anyhow::Result<Observed> {
        let lp = ListParams::default();
        let mut observed = Observed {
            driver_name: self.driver.driver_name().to_string(),
            pvs: Api::<PersistentVolume>::all(self.admin.clone())
                .list(&lp)
                .await?
                .items,
            attachments: Api::<VolumeAttachment>::all(self.admin.clone())
                .list(&lp)
                .await?
                .items,
            contents: list_or_empty(Api::<VolumeSnapshotContent>::all(self.admin.clone())).await?,
            group_contents: list_or_empty(Api::<VolumeGroupSnapshotContent>::all(
                self.admin.clone(),
            ))
            .await?,
            ..Observed::default()
        };
        for ns in &self.namespaces {
            let claims = Api::<PersistentVolumeClaim>::namespaced(self.admin.clone(), ns);
            observed.claims.extend(claims.list(&lp).await?.items);
            let events = Api::<Event>::namespaced(self.admin.clone(), ns);
            observed.events.extend(events.list(&lp).await?.items);
            let snapshots = Api::<VolumeSnapshot>::namespaced(self.admin.clone(), ns);
            observed.snapshots.extend(list_or_empty(snapshots).await?);
            let groups = Api::<VolumeGroupSnapshot>::namespaced(self.admin.clone(), ns);
            observed
                .group_snapshots
                .extend(list_or_empty(groups).await?);
        }
        observed.driver_volumes = self
            .driver
            .list_volume_names()
            .await?
            .into_iter()
            .filter(|(id, name)| {
                !name.starts_with(BUILT_IN_VOLUME_PREFIX) && !self.ignored_volumes.contains(id)
            })
            .collect();
        observed.driver_snapshots = self
            .driver
            .list_snapshots()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| {
                !BUILT_IN_SNAPSHOTS.contains(&id.as_str()) && !self.ignored_snapshots.contains(id)
            })
            .collect();
        observed.calls = self.driver.all_grpc_calls();
        Ok(observed)
    }

    /// Collects and evaluates until every check holds or the settle time is over; returns the
    /// last report (clean or not). Errors only when the state cannot be read.
    pub async fn check(&self) -> anyhow::Result<InvariantReport> {
        let deadline = Instant::now() + self.settle;
        loop {
            let report = evaluate(&self.observe().await?);
            if report.is_clean() || Instant::now() >= deadline {
                return Ok(report);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// [`InvariantChecker::check`], failing with the report unless it is clean.
    pub async fn ensure_clean(&self) -> anyhow::Result<InvariantReport> {
        let report = self.check().await?;
        report.ensure_clean()?;
        Ok(report)
    }
}

/// A list of a custom resource; empty when its CRD is not installed (404).
async fn list_or_empty<K>(api: Api<K>) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + fmt::Debug + serde::de::DeserializeOwned,
{
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(err) => Err(err.into()),
    }
}
