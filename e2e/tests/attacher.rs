//! external-attacher on the real control plane: kube-controller-manager's attach/detach
//! controller creates a VolumeAttachment for a pod on a fake node, and `csi-attacher` (or
//! `csi-sidecars --controllers=attacher`) attaches it through a real CSI driver process (see
//! `csi_e2e_support::DriverProcess`), under the RBAC we ship, as a ServiceAccount.
//!
//! Every test has its own namespace, driver name (the attacher acts on every VolumeAttachment
//! whose `spec.attacher` is its driver; the mock driver publishes only to the node ID equal to
//! its name), node, and renamed copies of the cluster-scoped RBAC objects, so the tests run in
//! parallel without seeing each other's objects. The audit log tells who was refused what.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use csi_e2e_support::{
    CsiVolume, DriverOptions, Sandbox, create_bound_csi_volume, create_csinode, create_fake_node,
    create_pod_on_node, delete_csi_volume, delete_nodes, describe_events,
    describe_persistent_volume, describe_volume_attachment, describe_volume_attachments,
    force_delete_pod, has_exited, ignore_not_found, tail, volume_attachments_of, wait_until,
};
use csi_test_support::{ChildProcess, free_port, http_get};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::task::JoinSet;

/// `assert_eq!` as an error, so the test still cleans up.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        ensure_eq!($left, $right, "")
    };
    ($left:expr, $right:expr, $($message:tt)+) => {
        // `match` keeps temporaries alive, as in `assert_eq!`.
        match (&$left, &$right) {
            (left, right) => anyhow::ensure!(
                left == right,
                "{} != {}: {left:?} != {right:?}\n{}",
                stringify!($left),
                stringify!($right),
                format!($($message)+)
            ),
        }
    };
}

const WAIT: Duration = Duration::from_secs(60);
/// For the 50-volume test: every VolumeAttachment, with a leader change in between.
const WAIT_MANY: Duration = Duration::from_secs(180);
/// The lines of a process log a failure message shows.
const LOG_TAIL: usize = 80;

/// upstream's `SanitizeDriverName`: every character but `[a-zA-Z0-9-]` becomes `-`, and a
/// trailing `-` gets an `X`. Written out here rather than imported: the test states the names
/// upstream uses.
fn sanitize(driver: &str) -> String {
    let mut name: String = driver
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.ends_with('-') {
        name.push('X');
    }
    name
}

/// The finalizer external-attacher puts on VolumeAttachments and PersistentVolumes.
fn attacher_finalizer(driver: &str) -> String {
    format!("external-attacher/{}", sanitize(driver))
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn attacher_rbac() -> PathBuf {
    repo_path("sidecars/external-attacher/deploy/rbac.yaml")
}

fn sidecars_rbac() -> PathBuf {
    repo_path("sidecars/aio/deploy/rbac.yaml")
}

fn has_finalizer(meta: &kube::api::ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == finalizer))
}

fn is_attached(va: &VolumeAttachment) -> bool {
    va.status.as_ref().is_some_and(|s| s.attached)
}

/// What every test here sets up: a [`Sandbox`] (namespace, the shipped RBAC, a kubeconfig of
/// its ServiceAccount, a driver process with a name of its own) and a fake node whose CSINode
/// maps that driver to the node ID the mock driver accepts (its name).
struct Fixture {
    sandbox: Sandbox,
    node: String,
}

impl std::ops::Deref for Fixture {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl Fixture {
    async fn new(prefix: &str, rbac: &Path, attach: bool) -> anyhow::Result<Fixture> {
        let options = DriverOptions {
            attach,
            ..DriverOptions::default()
        };
        let sandbox = Sandbox::new(prefix, rbac, options).await?;
        let node = format!("{}-node", sandbox.ns.name);
        let driver_name = sandbox.driver_name().to_string();
        let created = async {
            create_fake_node(&sandbox.admin, &node).await?;
            // The mock driver's node ID is its name.
            create_csinode(&sandbox.admin, &node, &driver_name, &driver_name).await?;
            anyhow::Ok(())
        }
        .await;
        match created {
            Ok(()) => Ok(Fixture { sandbox, node }),
            Err(err) => {
                delete_nodes(&sandbox.admin, &[&node]).await;
                let _ = sandbox.delete().await;
                Err(err)
            }
        }
    }

    /// The flags every attacher process here gets: the driver, the ServiceAccount's
    /// kubeconfig, leader election in the test's namespace.
    fn common_args(&self) -> Vec<String> {
        vec![
            format!("--csi-address={}", self.driver.endpoint()),
            format!("--kubeconfig={}", self.kubeconfig.display()),
            "--leader-election".to_string(),
            format!("--leader-election-namespace={}", self.ns.name),
        ]
    }

    /// A volume the driver knows (CreateVolume), its CSI PV and a claim bound to it.
    async fn volume(&self, name: &str) -> anyhow::Result<CsiVolume> {
        let handle = self.driver.create_volume(name).await?;
        create_bound_csi_volume(
            &self.admin,
            &self.ns.name,
            name,
            self.driver_name(),
            &handle,
            WAIT,
        )
        .await
    }

    /// For failure messages: Events, VolumeAttachments, the driver's and the processes' logs.
    async fn diagnostics(&self, processes: &[(&str, &ChildProcess)]) -> String {
        let mut out = format!(
            "--- events in {} ---\n{}\n--- VolumeAttachments of {} ---\n{}\n--- driver log (tail) ---\n{}",
            self.ns.name,
            describe_events(&self.admin, &self.ns.name).await,
            self.driver_name(),
            describe_volume_attachments(&self.admin, self.driver_name()).await,
            tail(&self.driver.logs(), LOG_TAIL),
        );
        for (name, process) in processes {
            let state = if has_exited(process) {
                "exited"
            } else {
                "running"
            };
            out.push_str(&format!(
                "\n--- {name} ({state}) log (tail) ---\n{}",
                tail(&process.logs(), LOG_TAIL)
            ));
        }
        out
    }

    /// The one VolumeAttachment of `volume`, once `ready` holds for it.
    async fn wait_for_attachment(
        &self,
        volume: &CsiVolume,
        what: &str,
        ready: impl Fn(&VolumeAttachment) -> bool,
        processes: &[(&str, &ChildProcess)],
    ) -> anyhow::Result<VolumeAttachment> {
        let what = format!("the VolumeAttachment of {} {what}", volume.pv);
        let outcome = wait_until(
            &what,
            WAIT,
            || async {
                // Fail at once, not after the timeout, when a process died.
                if let Some((name, _)) = processes.iter().find(|(_, p)| has_exited(p)) {
                    return Some(Err(*name));
                }
                let vas = volume_attachments_of(&self.admin, &volume.pv).await.ok()?;
                match vas.as_slice() {
                    [va] if ready(va) => Some(Ok(va.clone())),
                    _ => None,
                }
            },
            || self.diagnostics(processes),
        )
        .await?;
        match outcome {
            Ok(va) => Ok(va),
            Err(name) => anyhow::bail!(
                "{name} exited while waiting for {what}\n--- diagnostics ---\n{}",
                self.diagnostics(processes).await
            ),
        }
    }

    /// Force-deletes the pod and waits until the VolumeAttachment of `volume` is gone.
    async fn delete_pod_and_wait_for_detach(
        &self,
        pod: &str,
        volume: &CsiVolume,
        processes: &[(&str, &ChildProcess)],
    ) -> anyhow::Result<()> {
        force_delete_pod(&self.admin, &self.ns.name, pod).await?;
        wait_until(
            &format!(
                "the VolumeAttachment of {} to be detached and deleted",
                volume.pv
            ),
            WAIT,
            || async {
                volume_attachments_of(&self.admin, &volume.pv)
                    .await
                    .ok()?
                    .is_empty()
                    .then_some(())
            },
            || self.diagnostics(processes),
        )
        .await
    }

    /// Deletes the claim and the PV and waits until the attacher has taken its finalizer off
    /// the deleted PV (it does once no VolumeAttachment uses the PV). The PV itself goes
    /// when kube-controller-manager has released it and dropped `kubernetes.io/pv-protection`,
    /// which on a busy control plane has taken over a minute: not the attacher's part, so not
    /// awaited (the deletion is under way; kube-controller-manager finishes it).
    async fn delete_volume(
        &self,
        volume: &CsiVolume,
        processes: &[(&str, &ChildProcess)],
    ) -> anyhow::Result<()> {
        delete_csi_volume(&self.admin, volume).await?;
        let pvs: Api<PersistentVolume> = Api::all(self.admin.clone());
        let finalizer = attacher_finalizer(self.driver_name());
        wait_until(
            &format!(
                "the finalizer {finalizer} to leave the deleted PersistentVolume {}",
                volume.pv
            ),
            WAIT,
            || async {
                match pvs.get_opt(&volume.pv).await.ok()? {
                    None => Some(()),
                    Some(pv) => (pv.metadata.deletion_timestamp.is_some()
                        && !has_finalizer(&pv.metadata, &finalizer))
                    .then_some(()),
                }
            },
            || async {
                format!(
                    "{}\n{}",
                    describe_persistent_volume(&self.admin, &volume.pv).await,
                    self.diagnostics(processes).await
                )
            },
        )
        .await
    }

    /// The holder of `lease` in the test's namespace, if any.
    async fn lease_holder(&self, lease: &str) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.admin.clone(), &self.ns.name);
        leases
            .get_opt(lease)
            .await
            .ok()
            .flatten()?
            .spec?
            .holder_identity
            .filter(|h| !h.is_empty())
    }

    /// Fails if the API server refused the ServiceAccount anything but the LeaderElection
    /// Events on its Lease: upstream's RBAC for the attacher grants no Events, so client-go's
    /// leader election, which records them, is refused them as ours is.
    fn assert_nothing_forbidden(&self) -> anyhow::Result<()> {
        let mut forbidden = self.env.audit_log()?.forbidden(&self.username())?;
        forbidden.retain(|refused| {
            !(csi_e2e_support::audit::event_creation_refused(refused)
                && refused.namespace == self.ns.name)
        });
        ensure!(
            forbidden.is_empty(),
            "the API server refused {} these requests under the shipped RBAC ({}):\n{}",
            self.username(),
            self.rbac
                .objects
                .iter()
                .map(|o| format!("{} {}", o.kind, o.manifest_name))
                .collect::<Vec<_>>()
                .join(", "),
            forbidden
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        Ok(())
    }

    /// Removes everything the test made, whatever its `outcome`, and returns that outcome (a
    /// failed clean-up is added to a failure, or is the error of a success). After a failure
    /// the attacher may be gone with its finalizers still on VolumeAttachments and PVs: they
    /// are removed here, so no object of a failed test stays behind.
    async fn finish(self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        let cleanup = self.remove_everything().await;
        match (outcome, cleanup) {
            (Ok(()), cleanup) => cleanup,
            (Err(err), Ok(())) => Err(err),
            (Err(err), Err(cleanup)) => {
                Err(err.context(format!("cleaning up failed too: {cleanup:#}")))
            }
        }
    }

    async fn remove_everything(self) -> anyhow::Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.admin.clone(), &self.ns.name);
        for pod in pods.list(&ListParams::default()).await?.items {
            if let Some(name) = pod.metadata.name {
                force_delete_pod(&self.admin, &self.ns.name, &name).await?;
            }
        }
        let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        let attachments: Api<VolumeAttachment> = Api::all(self.admin.clone());
        for va in attachments.list(&ListParams::default()).await?.items {
            if va.spec.attacher != self.driver_name() {
                continue;
            }
            let name = va.metadata.name.unwrap_or_default();
            ignore_not_found(attachments.delete(&name, &DeleteParams::default()).await)?;
            ignore_not_found(
                attachments
                    .patch(&name, &PatchParams::default(), &no_finalizers)
                    .await,
            )?;
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.admin.clone(), &self.ns.name);
        ignore_not_found(
            claims
                .delete_collection(&DeleteParams::default(), &ListParams::default())
                .await,
        )?;
        let pvs: Api<PersistentVolume> = Api::all(self.admin.clone());
        let finalizer = attacher_finalizer(self.driver_name());
        for pv in pvs.list(&ListParams::default()).await?.items {
            let ours = pv
                .spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .is_some_and(|csi| csi.driver == self.driver_name());
            if !ours {
                continue;
            }
            let name = pv.metadata.name.clone().unwrap_or_default();
            ignore_not_found(pvs.delete(&name, &DeleteParams::default()).await)?;
            if has_finalizer(&pv.metadata, &finalizer) {
                let rest: Vec<String> = pv
                    .metadata
                    .finalizers
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| *f != finalizer)
                    .collect();
                let patch = Patch::Merge(json!({"metadata": {"finalizers": rest}}));
                ignore_not_found(pvs.patch(&name, &PatchParams::default(), &patch).await)?;
            }
        }
        delete_nodes(&self.admin, &[&self.node]).await;
        self.sandbox.delete().await
    }
}

/// The whole flow for one attacher process: attach when a pod uses the volume, detach when
/// the pod goes, finalizers on and off, and nothing refused by the API server.
async fn attach_and_detach(
    prefix: &str,
    rbac: &Path,
    binary: &str,
    extra_args: &[&str],
    lease: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    let fixture = Fixture::new(prefix, rbac, true).await?;
    let outcome = attach_and_detach_on(&fixture, binary, extra_args, lease).await;
    fixture.finish(outcome).await
}

async fn attach_and_detach_on(
    fixture: &Fixture,
    binary: &str,
    extra_args: &[&str],
    lease: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    let mut args = fixture.common_args();
    args.extend(extra_args.iter().map(ToString::to_string));
    let sidecar = ChildProcess::spawn(fixture.env.binary(binary)?, &args)?;
    let processes = [(binary, &sidecar)];
    let finalizer = attacher_finalizer(fixture.driver_name());

    let volume = fixture.volume("claim").await?;
    create_pod_on_node(
        &fixture.admin,
        &fixture.ns.name,
        "pod",
        &fixture.node,
        &volume.claim,
    )
    .await?;
    let va = fixture
        .wait_for_attachment(
            &volume,
            &format!("to be attached with the finalizer {finalizer}"),
            |va| is_attached(va) && has_finalizer(&va.metadata, &finalizer),
            &processes,
        )
        .await?;
    ensure_eq!(va.spec.attacher, fixture.driver_name());
    ensure_eq!(va.spec.node_name, fixture.node);
    let metadata = va
        .status
        .as_ref()
        .and_then(|s| s.attachment_metadata.clone());
    ensure_eq!(
        metadata
            .as_ref()
            .and_then(|m| m.get("device"))
            .map(String::as_str),
        Some("/dev/mock"),
        "the driver's publish context belongs in status.attachmentMetadata: {}",
        describe_volume_attachment(&va)
    );
    let pvs: Api<PersistentVolume> = Api::all(fixture.admin.clone());
    wait_until(
        &format!(
            "the finalizer {finalizer} on PersistentVolume {}",
            volume.pv
        ),
        WAIT,
        || async {
            let pv = pvs.get(&volume.pv).await.ok()?;
            has_finalizer(&pv.metadata, &finalizer).then_some(())
        },
        || async {
            format!(
                "{}\n{}",
                describe_persistent_volume(&fixture.admin, &volume.pv).await,
                fixture.diagnostics(&processes).await
            )
        },
    )
    .await?;
    ensure!(
        fixture.driver.calls_to("ControllerPublishVolume") >= 1,
        "attached without ControllerPublishVolume:\n{}",
        fixture.driver.logs()
    );
    let lease = lease(&sanitize(fixture.driver_name()));
    ensure!(
        fixture.lease_holder(&lease).await.is_some(),
        "no holder of the lease {}/{lease}",
        fixture.ns.name
    );

    fixture
        .delete_pod_and_wait_for_detach("pod", &volume, &processes)
        .await?;
    ensure!(
        fixture.driver.calls_to("ControllerUnpublishVolume") >= 1,
        "detached without ControllerUnpublishVolume:\n{}",
        fixture.driver.logs()
    );
    fixture.delete_volume(&volume, &processes).await?;

    fixture.assert_nothing_forbidden()?;
    drop(sidecar);
    Ok(())
}

#[tokio::test]
async fn attaches_and_detaches_as_csi_attacher_under_shipped_rbac() -> anyhow::Result<()> {
    attach_and_detach("attacher", &attacher_rbac(), "csi-attacher", &[], |d| {
        format!("external-attacher-leader-{d}")
    })
    .await
}

#[tokio::test]
async fn attaches_and_detaches_as_csi_sidecars_under_shipped_rbac() -> anyhow::Result<()> {
    attach_and_detach(
        "sidecars-attacher",
        &sidecars_rbac(),
        "csi-sidecars",
        &["--controllers=attacher"],
        |d| format!("csi-sidecars-{d}"),
    )
    .await
}

#[tokio::test]
async fn a_driver_without_attach_gets_the_trivial_handler() -> anyhow::Result<()> {
    let fixture = Fixture::new("attacher-trivial", &attacher_rbac(), false).await?;
    let outcome = trivial_handler_on(&fixture).await;
    fixture.finish(outcome).await
}

async fn trivial_handler_on(fixture: &Fixture) -> anyhow::Result<()> {
    let attacher = ChildProcess::spawn(fixture.env.binary("csi-attacher")?, fixture.common_args())?;
    let processes = [("csi-attacher", &attacher)];
    let finalizer = attacher_finalizer(fixture.driver_name());

    let volume = fixture.volume("claim").await?;
    create_pod_on_node(
        &fixture.admin,
        &fixture.ns.name,
        "pod",
        &fixture.node,
        &volume.claim,
    )
    .await?;
    let va = fixture
        .wait_for_attachment(&volume, "to be attached", is_attached, &processes)
        .await?;
    let calls = fixture.driver.grpc_calls();
    ensure!(
        calls
            .iter()
            .all(|c| !c.short_method().starts_with("ControllerPublish")),
        "the trivial handler must not call ControllerPublishVolume; the driver logged: {calls:?}"
    );
    // upstream's trivialHandler only marks the attachment attached: no finalizers, no
    // attachment metadata.
    ensure!(
        !has_finalizer(&va.metadata, &finalizer),
        "{}",
        describe_volume_attachment(&va)
    );
    let pvs: Api<PersistentVolume> = Api::all(fixture.admin.clone());
    let pv = pvs.get(&volume.pv).await?;
    ensure!(
        !has_finalizer(&pv.metadata, &finalizer),
        "{}",
        describe_persistent_volume(&fixture.admin, &volume.pv).await
    );

    fixture
        .delete_pod_and_wait_for_detach("pod", &volume, &processes)
        .await?;
    let calls = fixture.driver.grpc_calls();
    ensure!(
        calls
            .iter()
            .all(|c| !c.short_method().starts_with("ControllerUnpublish")),
        "the trivial handler must not call ControllerUnpublishVolume; the driver logged: {calls:?}"
    );
    fixture.delete_volume(&volume, &processes).await?;
    fixture.assert_nothing_forbidden()?;
    drop(attacher);
    Ok(())
}

/// Two `csi-attacher` replicas on one host. Their default identity is the host name, which
/// both share here, so each gets `--leader-election-identity` (in Kubernetes each pod has its
/// own host name).
#[tokio::test]
async fn leader_election_hands_over_mid_work() -> anyhow::Result<()> {
    let fixture = Fixture::new("attacher-ha", &attacher_rbac(), true).await?;
    let outcome = hand_over_on(&fixture).await;
    fixture.finish(outcome).await
}

async fn hand_over_on(fixture: &Fixture) -> anyhow::Result<()> {
    const VOLUMES: usize = 50;
    const LEASE: Duration = Duration::from_secs(15);
    const RETRY: Duration = Duration::from_secs(2);
    let lease = format!(
        "external-attacher-leader-{}",
        sanitize(fixture.driver_name())
    );
    let finalizer = attacher_finalizer(fixture.driver_name());
    let binary = fixture.env.binary("csi-attacher")?;
    let replica_args = |identity: &str| {
        let mut args = fixture.common_args();
        args.extend([
            format!("--leader-election-identity={identity}"),
            format!("--leader-election-lease-duration={}s", LEASE.as_secs()),
            "--leader-election-renew-deadline=10s".to_string(),
            format!("--leader-election-retry-period={}s", RETRY.as_secs()),
            // 50 volumes take ~150 writes; upstream's default 5 QPS would make that alone 30s.
            "--kube-api-qps=50".to_string(),
            "--kube-api-burst=100".to_string(),
        ]);
        args
    };

    // The volumes and claims first, in parallel.
    let mut volumes = Vec::with_capacity(VOLUMES);
    {
        let mut handles = Vec::with_capacity(VOLUMES);
        for i in 0..VOLUMES {
            handles.push((
                format!("claim-{i}"),
                fixture.driver.create_volume(&format!("claim-{i}")).await?,
            ));
        }
        let mut tasks = JoinSet::new();
        for (i, (name, handle)) in handles.into_iter().enumerate() {
            let admin = fixture.admin.clone();
            let ns = fixture.ns.name.clone();
            let driver = fixture.driver_name().to_string();
            tasks.spawn(async move {
                let volume =
                    create_bound_csi_volume(&admin, &ns, &name, &driver, &handle, WAIT_MANY).await;
                (i, volume)
            });
        }
        let mut created: BTreeMap<usize, CsiVolume> = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (i, volume) = joined?;
            created.insert(i, volume?);
        }
        volumes.extend(created.into_values());
    }

    // Replica a starts first and leads; b waits.
    let mut replica_a = ChildProcess::spawn(&binary, replica_args("replica-a"))?;
    {
        let processes = [("replica-a", &replica_a)];
        wait_until(
            &format!("replica-a to hold the lease {lease}"),
            WAIT,
            || async {
                (fixture.lease_holder(&lease).await.as_deref() == Some("replica-a")).then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
    }
    let replica_b = ChildProcess::spawn(&binary, replica_args("replica-b"))?;

    // (VolumeAttachments of our driver, those attached with the finalizer)
    let count_attachments = || async {
        let attachments: Api<VolumeAttachment> = Api::all(fixture.admin.clone());
        let list = attachments
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let ours: Vec<&VolumeAttachment> = list
            .iter()
            .filter(|va| va.spec.attacher == fixture.driver_name())
            .collect();
        let attached = ours
            .iter()
            .filter(|va| is_attached(va) && has_finalizer(&va.metadata, &finalizer))
            .count();
        (ours.len(), attached)
    };

    // The pods come one by one, 100 ms apart (about 5 s in all), while replica a works; once
    // it has attached 10 volumes it is killed, with pods still coming and attachments in
    // flight.
    let pods_created = Arc::new(AtomicUsize::new(0));
    let creator = {
        let admin = fixture.admin.clone();
        let ns = fixture.ns.name.clone();
        let node = fixture.node.clone();
        let claims: Vec<String> = volumes.iter().map(|v| v.claim.clone()).collect();
        let pods_created = pods_created.clone();
        tokio::spawn(async move {
            for (i, claim) in claims.iter().enumerate() {
                create_pod_on_node(&admin, &ns, &format!("pod-{i}"), &node, claim).await?;
                pods_created.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(())
        })
    };
    let (at_kill, pods_at_kill) = {
        let processes = [("replica-a", &replica_a), ("replica-b", &replica_b)];
        let at_kill = wait_until(
            "replica-a to attach at least 10 volumes",
            WAIT,
            || async {
                let (vas, attached) = count_attachments().await;
                (attached >= 10).then_some((vas, attached))
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let pods_at_kill = pods_created.load(Ordering::SeqCst);
        ensure_eq!(
            fixture.lease_holder(&lease).await.as_deref(),
            Some("replica-a"),
            "replica-b took the lease while replica-a was alive:\n{}",
            fixture.diagnostics(&processes).await
        );
        (at_kill, pods_at_kill)
    };
    replica_a.signal("KILL")?;
    let killed = Instant::now();
    replica_a.wait(Duration::from_secs(10)).await?;
    creator.await??;

    // A SIGKILLed leader does not release the lease: b takes it once it expires, within the
    // lease duration after a's last renewal plus b's retry period (with upstream's jitter
    // factor 1.2), and some slack for a busy machine.
    let bound = LEASE + RETRY.mul_f64(2.2) + Duration::from_secs(5);
    let processes = [("replica-a", &replica_a), ("replica-b", &replica_b)];
    wait_until(
        "replica-b to take the lease over",
        bound,
        || async {
            (fixture.lease_holder(&lease).await.as_deref() == Some("replica-b")).then_some(())
        },
        || fixture.diagnostics(&processes),
    )
    .await?;
    let takeover = killed.elapsed();

    wait_until(
        &format!("all {VOLUMES} VolumeAttachments to be attached with the finalizer"),
        WAIT_MANY,
        || async { (count_attachments().await.1 == VOLUMES).then_some(()) },
        || fixture.diagnostics(&processes),
    )
    .await?;
    let all_attached = killed.elapsed();
    let (vas_at_kill, attached_at_kill) = at_kill;
    eprintln!(
        "when replica-a was killed: {pods_at_kill} of {VOLUMES} pods created, \
         {vas_at_kill} VolumeAttachments, {attached_at_kill} attached; replica-b led \
         {takeover:?} after the kill; all attached {all_attached:?} after the kill"
    );
    ensure!(
        attached_at_kill < VOLUMES,
        "replica-a did all the work before it was killed"
    );
    ensure!(
        fixture.driver.calls_to("ControllerPublishVolume") >= VOLUMES,
        "fewer ControllerPublishVolume calls than volumes:\n{}",
        tail(&fixture.driver.logs(), LOG_TAIL)
    );

    // Detach everything under replica b.
    for i in 0..VOLUMES {
        force_delete_pod(&fixture.admin, &fixture.ns.name, &format!("pod-{i}")).await?;
    }
    wait_until(
        "every VolumeAttachment to be detached and deleted",
        WAIT_MANY,
        || async {
            let attachments: Api<VolumeAttachment> = Api::all(fixture.admin.clone());
            let list = attachments.list(&Default::default()).await.ok()?;
            (!list
                .items
                .iter()
                .any(|va| va.spec.attacher == fixture.driver_name()))
            .then_some(())
        },
        || fixture.diagnostics(&processes),
    )
    .await?;
    for volume in &volumes {
        delete_csi_volume(&fixture.admin, volume).await?;
    }
    for volume in &volumes {
        fixture.delete_volume(volume, &processes).await?;
    }
    fixture.assert_nothing_forbidden()?;
    drop(replica_b);
    Ok(())
}

/// One watch per resource type for the whole process, whatever its controllers: the
/// attacher's three informers (VolumeAttachments, PersistentVolumes, CSINodes) and none for
/// livenessprobe.
#[tokio::test]
async fn one_watch_per_resource_type() -> anyhow::Result<()> {
    let fixture = Fixture::new("sidecars-watches", &sidecars_rbac(), true).await?;
    let outcome = watches_on(&fixture).await;
    fixture.finish(outcome).await
}

async fn watches_on(fixture: &Fixture) -> anyhow::Result<()> {
    let address = format!("127.0.0.1:{}", free_port());
    let mut args = fixture.common_args();
    args.extend([
        "--controllers=attacher,livenessprobe".to_string(),
        format!("--http-endpoint={address}"),
    ]);
    let sidecars = ChildProcess::spawn(fixture.env.binary("csi-sidecars")?, &args)?;
    let processes = [("csi-sidecars", &sidecars)];
    let finalizer = attacher_finalizer(fixture.driver_name());

    let healthy = wait_until(
        &format!("GET {address}/healthz to answer 200"),
        WAIT,
        || async {
            if has_exited(&sidecars) {
                return Some(false);
            }
            matches!(http_get(&address, "/healthz").await, Ok((200, _))).then_some(true)
        },
        || fixture.diagnostics(&processes),
    )
    .await?;
    ensure!(
        healthy,
        "csi-sidecars exited before it was healthy\n{}",
        fixture.diagnostics(&processes).await
    );
    // Let the attacher do real work, so every watch it needs is open.
    let volume = fixture.volume("claim").await?;
    create_pod_on_node(
        &fixture.admin,
        &fixture.ns.name,
        "pod",
        &fixture.node,
        &volume.claim,
    )
    .await?;
    fixture
        .wait_for_attachment(
            &volume,
            "to be attached",
            |va| is_attached(va) && has_finalizer(&va.metadata, &finalizer),
            &processes,
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let audit = fixture.env.audit_log()?;
    let username = fixture.username();
    let by_agent = audit.watches_per_resource("csi-sidecars/", Some(&username))?;
    let by_user = audit.watches_per_resource("", Some(&username))?;
    let expected = BTreeMap::from([
        ("csinodes".to_string(), 1),
        ("persistentvolumes".to_string(), 1),
        ("volumeattachments".to_string(), 1),
    ]);
    let watches = audit
        .requests(|e| e.verb == "watch" && e.username == username)?
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    ensure_eq!(
        by_agent,
        expected,
        "watches of user agent csi-sidecars/ as {username}; every watch of that user:\n{watches}"
    );
    ensure_eq!(
        by_user,
        expected,
        "{username} opened watches under another user agent:\n{watches}"
    );

    fixture
        .delete_pod_and_wait_for_detach("pod", &volume, &processes)
        .await?;
    fixture.delete_volume(&volume, &processes).await?;
    fixture.assert_nothing_forbidden()?;
    drop(sidecars);
    Ok(())
}
