//! external-provisioner on the real control plane: `csi-provisioner` (or `csi-sidecars
//! --controllers=attacher,provisioner`) provisions claims through a real CSI driver process
//! (Kubernetes' e2e mock driver), under the RBAC we ship, as a ServiceAccount;
//! kube-controller-manager's PV controller binds the claims and releases the volumes.
//!
//! Every test has its own namespace, driver name (a provisioner acts on the claims whose
//! StorageClass names its driver), StorageClasses named after the namespace, nodes, and renamed
//! copies of the cluster-scoped RBAC objects, so the tests run in parallel without seeing each
//! other's objects.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use csi_e2e_support::storage::{
    MOCK_TOPOLOGY_KEY, MOCK_TOPOLOGY_VALUE, StorageFixture as Fixture, WAIT, annotations, merge,
};
use csi_e2e_support::{InvariantChecker, ignore_not_found, invariants, wait_until};
use csi_test_support::ChildProcess;
use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// `assert_eq!` as an error, so the test still cleans up.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        ensure_eq!($left, $right, "")
    };
    ($left:expr, $right:expr, $($message:tt)+) => {
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

/// For the 200-claim test.
const WAIT_MANY: Duration = Duration::from_secs(240);

/// The finalizer the provisioner puts on the PVs it makes (HonorPVReclaimPolicy).
const PV_FINALIZER: &str = "external-provisioner.volume.kubernetes.io/finalizer";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn provisioner_rbac() -> PathBuf {
    repo_path("sidecars/external-provisioner/deploy/rbac.yaml")
}

fn sidecars_rbac() -> PathBuf {
    repo_path("sidecars/aio/deploy/rbac.yaml")
}

/// The provisioner as a process: `csi-provisioner` or `csi-sidecars` with `controllers`.
fn spawn(fixture: &Fixture, binary: &str, extra: &[String]) -> anyhow::Result<ChildProcess> {
    let mut args = fixture.common_args();
    args.extend(extra.iter().cloned());
    ChildProcess::spawn(fixture.env.binary(binary)?, &args)
}

/// What the provisioner writes into a PV of a claim of `class`, checked field by field
/// against upstream's output for the same input.
fn check_pv(
    fixture: &Fixture,
    pv: &PersistentVolume,
    class: &str,
    reclaim: &str,
) -> anyhow::Result<()> {
    let name = pv.metadata.name.clone().unwrap_or_default();
    let annotations = annotations(pv);
    ensure_eq!(
        annotations
            .get("pv.kubernetes.io/provisioned-by")
            .map(String::as_str),
        Some(fixture.driver_name()),
        "{name}"
    );
    ensure_eq!(
        annotations
            .get("volume.kubernetes.io/provisioner-deletion-secret-name")
            .map(String::as_str),
        Some(""),
        "{name}"
    );
    let spec = pv.spec.clone().unwrap_or_default();
    ensure_eq!(spec.storage_class_name.as_deref(), Some(class), "{name}");
    ensure_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some(reclaim),
        "{name}"
    );
    let csi = spec.csi.clone().context("a CSI PV")?;
    ensure_eq!(csi.driver.as_str(), fixture.driver_name());
    ensure!(!csi.volume_handle.is_empty(), "{name} has a volume handle");
    let identity = csi
        .volume_attributes
        .clone()
        .unwrap_or_default()
        .get("storage.kubernetes.io/csiProvisionerIdentity")
        .cloned()
        .unwrap_or_default();
    ensure!(
        identity.ends_with(&format!("-{}", fixture.driver_name())),
        "{name}: the provisioner identity {identity:?} is <ms>-<random>-<driver>"
    );
    let finalizers = pv.metadata.finalizers.clone().unwrap_or_default();
    ensure_eq!(
        finalizers.contains(&PV_FINALIZER.to_string()),
        reclaim == "Delete",
        "{name}: finalizers {finalizers:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn provisions_and_deletes_as_csi_provisioner_under_shipped_rbac() -> anyhow::Result<()> {
    let mut fixture = Fixture::new("provisioner", &provisioner_rbac(), &[]).await?;
    let outcome = provision_and_delete(&mut fixture, "csi-provisioner", &[]).await;
    fixture.finish(outcome).await
}

#[tokio::test(flavor = "multi_thread")]
async fn provisions_and_deletes_as_csi_sidecars_with_the_attacher() -> anyhow::Result<()> {
    let mut fixture = Fixture::new("sidecars-provisioner", &sidecars_rbac(), &[]).await?;
    let start = fixture.env.audit_log()?.offset();
    let outcome = async {
        provision_and_delete(
            &mut fixture,
            "csi-sidecars",
            &["--controllers=attacher,provisioner".to_string()],
        )
        .await?;
        // One watch per resource type for both controllers.
        let audit = fixture.env.audit_log()?;
        let username = fixture.username();
        let watches = audit
            .requests_since(start, |e| e.verb == "watch" && e.username == username)?
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        let by_agent = audit.watches_per_resource("csi-sidecars/", Some(&username))?;
        let expected = BTreeMap::from([
            ("csinodes".to_string(), 1),
            ("persistentvolumeclaims".to_string(), 1),
            ("persistentvolumes".to_string(), 1),
            ("storageclasses".to_string(), 1),
            ("volumeattachments".to_string(), 1),
            // The snapshot-source finalizer sweep (the driver can snapshot).
            ("volumesnapshots".to_string(), 1),
        ]);
        ensure_eq!(by_agent, expected, "watches of csi-sidecars:\n{watches}");
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

/// Immediate claims (filesystem with fsType and mount options, Block, Retain) are provisioned
/// with upstream's PV contents and Events; deleting the claims deletes the volumes of the
/// Delete class (gone from the driver) and keeps the Retain one.
async fn provision_and_delete(
    fixture: &mut Fixture,
    binary: &str,
    extra: &[String],
) -> anyhow::Result<()> {
    let fs = fixture
        .storage_class(
            "fs",
            json!({"parameters": {"csi.storage.k8s.io/fstype": "ext4", "foo": "bar"},
                   "mountOptions": ["noatime"]}),
        )
        .await?;
    let retain = fixture
        .storage_class("retain", json!({"reclaimPolicy": "Retain"}))
        .await?;
    let process = spawn(fixture, binary, extra)?;
    let processes = [(binary, &process)];
    fixture.claim("fs", &fs, json!({})).await?;
    fixture
        .claim("block", &fs, json!({"spec": {"volumeMode": "Block"}}))
        .await?;
    fixture.claim("retained", &retain, json!({})).await?;
    let names: Vec<String> = ["fs", "block", "retained"].map(String::from).to_vec();
    let pvs = fixture.wait_bound(&names, WAIT, &processes).await?;

    if binary == "csi-provisioner" {
        // Upstream's lease: the driver name alone, sanitized.
        let lease = fixture.driver_name().replace('.', "-");
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(fixture.admin.clone(), &fixture.ns.name);
        let held = leases
            .get_opt(&lease)
            .await?
            .and_then(|l| l.spec?.holder_identity)
            .is_some_and(|h| !h.is_empty());
        ensure!(held, "the lease {lease} is held");
    }
    check_pv(fixture, &pvs["fs"], &fs, "Delete")?;
    check_pv(fixture, &pvs["block"], &fs, "Delete")?;
    // As upstream, every new PV carries the finalizer and the volume loop takes it off a PV
    // whose reclaim policy is not Delete: wait for that before checking.
    let retained_name = pvs["retained"].metadata.name.clone().unwrap_or_default();
    let retained = wait_until(
        "the finalizer to leave the retained PV",
        WAIT,
        || async {
            let pv = fixture.pvs().get(&retained_name).await.ok()?;
            (!pv.metadata
                .finalizers
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|f| f == PV_FINALIZER))
            .then_some(pv)
        },
        || fixture.diagnostics(&processes),
    )
    .await?;
    check_pv(fixture, &retained, &retain, "Retain")?;
    let fs_csi = pvs["fs"]
        .spec
        .clone()
        .unwrap_or_default()
        .csi
        .unwrap_or_default();
    ensure_eq!(fs_csi.fs_type.as_deref(), Some("ext4"));
    ensure_eq!(
        pvs["fs"].spec.clone().unwrap_or_default().mount_options,
        Some(vec!["noatime".to_string()])
    );
    let block = pvs["block"].spec.clone().unwrap_or_default();
    ensure_eq!(block.volume_mode.as_deref(), Some("Block"));
    ensure_eq!(
        block.csi.unwrap_or_default().fs_type,
        None,
        "no fsType for Block"
    );

    // The driver got the parameters without the csi.storage.k8s.io/ keys, the name pvc-<uid>.
    let creates: Vec<Value> = fixture
        .driver
        .grpc_calls()
        .into_iter()
        .filter(|c| c.short_method() == "CreateVolume")
        .map(|c| c.request)
        .collect();
    let fs_pv = pvs["fs"].metadata.name.clone().unwrap_or_default();
    let fs_request = creates
        .iter()
        .find(|r| r["name"] == fs_pv.as_str())
        .context("the CreateVolume of the fs claim")?;
    ensure_eq!(fs_request["parameters"], json!({"foo": "bar"}));

    let expected = [
        "Normal Provisioning: External provisioner is provisioning volume for claim",
        "Normal ProvisioningSucceeded: Successfully provisioned volume",
    ];
    wait_until(
        "the Events Provisioning and ProvisioningSucceeded on claim fs",
        WAIT,
        || async {
            let events = fixture.events_of("fs").await.ok()?;
            expected
                .iter()
                .all(|prefix| events.iter().any(|e| e.starts_with(prefix)))
                .then_some(())
        },
        || fixture.diagnostics(&processes),
    )
    .await?;

    // Delete: the PV goes and the volume leaves the driver; Retain keeps both.
    let fs_handle = fs_csi.volume_handle.clone();
    fixture
        .delete_and_wait_for_pv("fs", &fs_pv, &processes)
        .await?;
    let block_pv = pvs["block"].metadata.name.clone().unwrap_or_default();
    fixture
        .delete_and_wait_for_pv("block", &block_pv, &processes)
        .await?;
    fixture
        .claims()
        .delete("retained", &DeleteParams::default())
        .await?;
    let retained_pv = pvs["retained"].metadata.name.clone().unwrap_or_default();
    wait_until(
        "the retained PV to be Released",
        WAIT,
        || async {
            let pv = fixture.pvs().get(&retained_pv).await.ok()?;
            (pv.status?.phase.as_deref() == Some("Released")).then_some(())
        },
        || fixture.diagnostics(&processes),
    )
    .await?;
    let volumes = fixture.driver.list_volumes().await?;
    ensure!(
        !volumes.contains(&fs_handle),
        "volume {fs_handle} of the deleted claim is gone from the driver: {volumes:?}"
    );
    let retained_handle = pvs["retained"]
        .spec
        .clone()
        .unwrap_or_default()
        .csi
        .unwrap_or_default()
        .volume_handle;
    ensure!(
        volumes.contains(&retained_handle),
        "the retained volume stays in the driver"
    );
    let deletes: Vec<String> = fixture
        .driver
        .grpc_calls()
        .into_iter()
        .filter(|c| c.short_method() == "DeleteVolume")
        .map(|c| format!("{} {}", c.request, c.error))
        .collect();
    ensure_eq!(
        deletes.len(),
        2,
        "DeleteVolume calls: {deletes:#?}\n{}",
        fixture.diagnostics(&processes).await
    );
    fixture.assert_nothing_forbidden()?;
    drop(process);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn topology_for_wait_for_first_consumer_and_immediate() -> anyhow::Result<()> {
    let mut fixture = Fixture::new(
        "provisioner-topology",
        &provisioner_rbac(),
        &["--enable-topology"],
    )
    .await?;
    let outcome = async {
        let node = fixture.topology_node("node").await?;
        let late = fixture
            .storage_class("late", json!({"volumeBindingMode": "WaitForFirstConsumer"}))
            .await?;
        let now = fixture.storage_class("now", json!({})).await?;
        // The kubeconfig from the environment, as upstream's main reads KUBECONFIG.
        let args: Vec<String> = fixture
            .common_args()
            .into_iter()
            .filter(|a| !a.starts_with("--kubeconfig"))
            .collect();
        let process = ChildProcess::spawn_with_env(
            fixture.env.binary("csi-provisioner")?,
            &args,
            [("KUBECONFIG", fixture.kubeconfig.as_os_str())],
        )?;
        let processes = [("csi-provisioner", &process)];
        // There is no scheduler: the test selects the node, as the scheduler would.
        fixture
            .claim(
                "late",
                &late,
                json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": node}}}),
            )
            .await?;
        fixture.claim("now", &now, json!({})).await?;
        let names = vec!["late".to_string(), "now".to_string()];
        let pvs = fixture.wait_bound(&names, WAIT, &processes).await?;
        let affinity = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": MOCK_TOPOLOGY_KEY, "operator": "In", "values": [MOCK_TOPOLOGY_VALUE]}
        ]}]}});
        for name in &names {
            let spec = pvs[name].spec.clone().unwrap_or_default();
            ensure_eq!(
                serde_json::to_value(&spec.node_affinity)?,
                affinity,
                "{name}"
            );
        }
        let requirement = |pv: &PersistentVolume| -> anyhow::Result<Value> {
            let pv_name = pv.metadata.name.clone().unwrap_or_default();
            fixture
                .driver
                .grpc_calls()
                .into_iter()
                .find(|c| {
                    c.short_method() == "CreateVolume" && c.request["name"] == pv_name.as_str()
                })
                .map(|c| c.request["accessibility_requirements"].clone())
                .context("CreateVolume of the claim")
        };
        let segment = json!([{"segments": {MOCK_TOPOLOGY_KEY: MOCK_TOPOLOGY_VALUE}}]);
        for name in &names {
            let requirement = requirement(&pvs[name])?;
            ensure_eq!(requirement["requisite"], segment, "{name}");
            ensure_eq!(requirement["preferred"], segment, "{name}");
        }
        fixture.assert_nothing_forbidden()?;
        drop(process);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_from_templates_and_a_missing_secret() -> anyhow::Result<()> {
    let mut fixture = Fixture::new("provisioner-secrets", &provisioner_rbac(), &[]).await?;
    let outcome = async {
        // Secrets are optional in the shipped RBAC: grant them in the namespace.
        let account = fixture.account.clone();
        let ns = fixture.ns.name.clone();
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": "secrets", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
        }))?;
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "secrets", "namespace": ns},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secrets"},
        }))?;
        Api::<Role>::namespaced(fixture.admin.clone(), &ns)
            .create(&PostParams::default(), &role)
            .await?;
        Api::<RoleBinding>::namespaced(fixture.admin.clone(), &ns)
            .create(&PostParams::default(), &binding)
            .await?;
        let class = fixture
            .storage_class(
                "secrets",
                json!({"parameters": {
                    "csi.storage.k8s.io/provisioner-secret-name": "${pvc.name}-secret",
                    "csi.storage.k8s.io/provisioner-secret-namespace": "${pvc.namespace}",
                    "csi.storage.k8s.io/node-stage-secret-name": "stage-${pv.name}",
                    "csi.storage.k8s.io/node-stage-secret-namespace": "${pvc.namespace}",
                }}),
            )
            .await?;
        let process = spawn(&fixture, "csi-provisioner", &[])?;
        let processes = [("csi-provisioner", &process)];
        fixture.claim("data", &class, json!({})).await?;
        // The provisioner secret is missing: a Warning with upstream's reason, no volume.
        let warning = wait_until(
            "a ProvisioningFailed Event on claim data",
            WAIT,
            || async {
                let events = fixture.events_of("data").await.ok()?;
                events
                    .into_iter()
                    .find(|e| e.starts_with("Warning ProvisioningFailed"))
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        ensure!(
            warning.contains("data-secret") && warning.contains("not found"),
            "the Event names the missing secret: {warning}"
        );
        ensure_eq!(fixture.driver.calls_to("CreateVolume"), 0);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "data-secret", "namespace": ns},
            "stringData": {"password": "hunter2"},
        }))?;
        Api::<Secret>::namespaced(fixture.admin.clone(), &ns)
            .create(&PostParams::default(), &secret)
            .await?;
        let pvs = fixture
            .wait_bound(&["data".to_string()], WAIT, &processes)
            .await?;
        let pv = &pvs["data"];
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        let annotations = annotations(pv);
        ensure_eq!(
            annotations
                .get("volume.kubernetes.io/provisioner-deletion-secret-name")
                .map(String::as_str),
            Some("data-secret")
        );
        ensure_eq!(
            annotations
                .get("volume.kubernetes.io/provisioner-deletion-secret-namespace")
                .map(String::as_str),
            Some(ns.as_str())
        );
        let stage = pv
            .spec
            .clone()
            .unwrap_or_default()
            .csi
            .unwrap_or_default()
            .node_stage_secret_ref
            .context("nodeStageSecretRef")?;
        ensure_eq!(stage.name, Some(format!("stage-{pv_name}")));
        // The secret reached the driver, and no log line shows it.
        let create = fixture
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "CreateVolume" && c.error.is_empty())
            .context("a CreateVolume")?;
        ensure!(
            create.request["secrets"].is_object(),
            "CreateVolume carried the secrets"
        );
        ensure!(
            !process.logs().contains("hunter2"),
            "the secret value reached the provisioner's log"
        );
        fixture.assert_nothing_forbidden()?;
        drop(process);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

#[tokio::test(flavor = "multi_thread")]
async fn clones_a_claim() -> anyhow::Result<()> {
    let mut fixture = Fixture::new("provisioner-clone", &provisioner_rbac(), &[]).await?;
    let outcome = async {
        let class = fixture.storage_class("clone", json!({})).await?;
        let process = spawn(&fixture, "csi-provisioner", &[])?;
        let processes = [("csi-provisioner", &process)];
        fixture.claim("source", &class, json!({})).await?;
        let source = fixture
            .wait_bound(&["source".to_string()], WAIT, &processes)
            .await?;
        let source_handle = source["source"]
            .spec
            .clone()
            .unwrap_or_default()
            .csi
            .unwrap_or_default()
            .volume_handle;
        fixture
            .claim(
                "copy",
                &class,
                json!({"spec": {"dataSource": {"kind": "PersistentVolumeClaim", "name": "source"}}}),
            )
            .await?;
        let copy = fixture
            .wait_bound(&["copy".to_string()], WAIT, &processes)
            .await?;
        let copy_pv = copy["copy"].metadata.name.clone().unwrap_or_default();
        let create = fixture
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "CreateVolume" && c.request["name"] == copy_pv.as_str())
            .context("the clone's CreateVolume")?;
        ensure_eq!(
            create.request["volume_content_source"]["Type"]["Volume"]["volume_id"],
            json!(source_handle),
            "the clone's content source: {}",
            create.request
        );
        // The source keeps the cloning-protection finalizer; once it is deleted, the
        // cloning-protection controller lets it go (no clone of it is Pending).
        const PROTECTION: &str = "provisioner.storage.kubernetes.io/cloning-protection";
        let protected = fixture.claims().get("source").await?;
        ensure!(
            protected
                .metadata
                .finalizers
                .unwrap_or_default()
                .iter()
                .any(|f| f == PROTECTION),
            "the source claim carries {PROTECTION}"
        );
        fixture
            .claims()
            .delete("source", &DeleteParams::default())
            .await?;
        wait_until(
            "the deleted source claim to lose its cloning-protection finalizer",
            WAIT,
            || async {
                let source = fixture.claims().get_opt("source").await.ok()?;
                (!source.is_some_and(|s| {
                    s.metadata
                        .finalizers
                        .unwrap_or_default()
                        .iter()
                        .any(|f| f == PROTECTION)
                }))
                .then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        fixture.assert_nothing_forbidden()?;
        drop(process);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

/// SIGKILL in the middle of 200 claims, then a new process: every claim is Bound, every
/// volume in the driver has a PV, and no volume was created twice.
#[tokio::test(flavor = "multi_thread")]
async fn survives_sigkill_in_the_middle_of_200_claims() -> anyhow::Result<()> {
    const CLAIMS: usize = 200;
    let mut fixture = Fixture::new("provisioner-kill", &provisioner_rbac(), &[]).await?;
    let outcome = async {
        let class = fixture.storage_class("kill", json!({})).await?;
        // Without leader election: the restarted process must not wait for the dead one's
        // lease to expire.
        let args = |fixture: &Fixture| {
            vec![
                format!("--csi-address={}", fixture.driver.endpoint()),
                format!("--kubeconfig={}", fixture.kubeconfig.display()),
                "--worker-threads=20".to_string(),
            ]
        };
        let binary = fixture.env.binary("csi-provisioner")?;
        let mut first = ChildProcess::spawn(&binary, args(&fixture))?;
        let names: Vec<String> = (0..CLAIMS).map(|i| format!("claim-{i:03}")).collect();
        for name in &names {
            fixture.claim(name, &class, json!({})).await?;
        }
        // Kill it once some volumes exist, before all do.
        let first_processes = [("first csi-provisioner", &first)];
        wait_until(
            "a quarter of the volumes to be created",
            WAIT,
            || async { (fixture.driver.calls_to("CreateVolume") >= CLAIMS / 4).then_some(()) },
            || fixture.diagnostics(&first_processes),
        )
        .await?;
        first.signal("KILL")?;
        first.wait(Duration::from_secs(10)).await?;
        let second = ChildProcess::spawn(&binary, args(&fixture))?;
        let processes = [("second csi-provisioner", &second)];
        let pvs = fixture.wait_bound(&names, WAIT_MANY, &processes).await?;

        let handles: BTreeSet<String> = pvs
            .values()
            .map(|pv| {
                pv.spec
                    .clone()
                    .unwrap_or_default()
                    .csi
                    .unwrap_or_default()
                    .volume_handle
            })
            .collect();
        ensure_eq!(handles.len(), CLAIMS, "one volume per claim");
        // Every volume in the driver has a PV and every PV its volume, every claim is Bound,
        // no name was created twice, one PV per claim.
        let report = InvariantChecker::new(&fixture.admin, &fixture.driver)
            .namespace(&fixture.ns.name)
            .ensure_clean()
            .await?;
        ensure_eq!(
            report
                .check(invariants::VOLUMES_HAVE_PVS)
                .map(|c| c.checked),
            Some(CLAIMS),
            "{report}"
        );
        fixture.assert_nothing_forbidden()?;
        drop(second);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

/// A claim restored from a VolumeSnapshot: the driver gets the snapshot as content source,
/// and the snapshot carries the source-protection finalizer only while the provisioner uses
/// it. The snapshot objects are written here as the snapshot controller would.
#[tokio::test(flavor = "multi_thread")]
async fn restores_a_snapshot() -> anyhow::Result<()> {
    use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotContent};
    const PROTECTION: &str =
        "provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection";
    let mut fixture = Fixture::new("provisioner-restore", &provisioner_rbac(), &[]).await?;
    let outcome = async {
        let class = fixture.storage_class("restore", json!({})).await?;
        let process = spawn(&fixture, "csi-provisioner", &[])?;
        let processes = [("csi-provisioner", &process)];
        fixture.claim("source", &class, json!({})).await?;
        let source = fixture
            .wait_bound(&["source".to_string()], WAIT, &processes)
            .await?;
        let source_handle = source["source"]
            .spec
            .clone()
            .unwrap_or_default()
            .csi
            .unwrap_or_default()
            .volume_handle;
        let (snapshot_id, size) = fixture
            .driver
            .create_snapshot(&format!("{}-snap", fixture.ns.name), &source_handle)
            .await?;
        let ns = fixture.ns.name.clone();
        let content_name = format!("{ns}-content");
        let snapshots: Api<VolumeSnapshot> = Api::namespaced(fixture.admin.clone(), &ns);
        let snapshot: VolumeSnapshot = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": "snap", "namespace": ns},
            "spec": {"source": {"volumeSnapshotContentName": content_name}},
        }))?;
        let snapshot = snapshots.create(&PostParams::default(), &snapshot).await?;
        // The content refers to the snapshot by UID, as the snapshot controller binds them.
        let contents: Api<VolumeSnapshotContent> = Api::all(fixture.admin.clone());
        let content: VolumeSnapshotContent = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": content_name},
            "spec": {
                "deletionPolicy": "Delete",
                "driver": fixture.driver_name(),
                "source": {"snapshotHandle": snapshot_id},
                "volumeSnapshotRef": {
                    "name": "snap", "namespace": ns, "uid": snapshot.metadata.uid,
                },
            },
        }))?;
        contents.create(&PostParams::default(), &content).await?;
        let ready = |extra: Value| {
            let mut status = json!({"readyToUse": true, "restoreSize": size});
            merge(&mut status, extra);
            Patch::Merge(json!({"status": status}))
        };
        contents
            .patch_status(
                &content_name,
                &PatchParams::default(),
                &ready(json!({"snapshotHandle": snapshot_id})),
            )
            .await?;
        snapshots
            .patch_status(
                "snap",
                &PatchParams::default(),
                &ready(
                    json!({"boundVolumeSnapshotContentName": content_name, "restoreSize": "1Gi"}),
                ),
            )
            .await?;
        let start = fixture.env.audit_log()?.offset();
        fixture
            .claim(
                "restored",
                &class,
                json!({"spec": {"dataSource": {
                    "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"
                }}}),
            )
            .await?;
        let restored = fixture
            .wait_bound(&["restored".to_string()], WAIT, &processes)
            .await?;
        let pv_name = restored["restored"]
            .metadata
            .name
            .clone()
            .unwrap_or_default();
        let create = fixture
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "CreateVolume" && c.request["name"] == pv_name.as_str())
            .context("the restore's CreateVolume")?;
        ensure_eq!(
            create.request["volume_content_source"]["Type"]["Snapshot"]["snapshot_id"],
            json!(snapshot_id),
            "the restore's content source: {}",
            create.request
        );
        // The finalizer went on before CreateVolume and came off after it.
        wait_until(
            "the snapshot to lose its source-protection finalizer",
            WAIT,
            || async {
                let snapshot = snapshots.get("snap").await.ok()?;
                (!snapshot
                    .metadata
                    .finalizers
                    .unwrap_or_default()
                    .iter()
                    .any(|f| f == PROTECTION))
                .then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let username = fixture.username();
        let updates = fixture.env.audit_log()?.requests_since(start, |e| {
            e.verb == "update"
                && e.username == username
                && e.resource_path().starts_with("volumesnapshots")
        })?;
        ensure!(
            updates.len() >= 2,
            "the finalizer was added and removed by updates: {updates:?}"
        );
        ignore_not_found(snapshots.delete("snap", &DeleteParams::default()).await)?;
        ignore_not_found(
            contents
                .delete(&content_name, &DeleteParams::default())
                .await,
        )?;
        fixture.assert_nothing_forbidden()?;
        drop(process);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

/// `--enable-capacity`: one CSIStorageCapacity per topology segment and WaitForFirstConsumer
/// class, in the provisioner's namespace, with the driver's GetCapacity answer.
#[tokio::test(flavor = "multi_thread")]
async fn publishes_capacity_for_wait_for_first_consumer_classes() -> anyhow::Result<()> {
    use k8s_openapi::api::storage::v1::CSIStorageCapacity;
    let mut fixture = Fixture::new(
        "provisioner-capacity",
        &provisioner_rbac(),
        &["--enable-topology"],
    )
    .await?;
    let outcome = async {
        fixture.topology_node("node").await?;
        let late = fixture
            .storage_class("late", json!({"volumeBindingMode": "WaitForFirstConsumer"}))
            .await?;
        fixture.storage_class("now", json!({})).await?;
        let mut args = fixture.common_args();
        args.extend([
            "--enable-capacity".to_string(),
            "--capacity-ownerref-level=-1".to_string(),
            "--capacity-poll-interval=5s".to_string(),
        ]);
        let process = ChildProcess::spawn_with_env(
            fixture.env.binary("csi-provisioner")?,
            &args,
            [("NAMESPACE", fixture.ns.name.as_str())],
        )?;
        let processes = [("csi-provisioner", &process)];
        let capacities: Api<CSIStorageCapacity> =
            Api::namespaced(fixture.admin.clone(), &fixture.ns.name);
        let objects = wait_until(
            "a CSIStorageCapacity object",
            WAIT,
            || async {
                let list = capacities.list(&ListParams::default()).await.ok()?;
                (!list.items.is_empty()).then_some(list.items)
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        let summary: Vec<String> = objects
            .iter()
            .map(|o| {
                format!(
                    "{} {} {} {:?}",
                    o.metadata.name.as_deref().unwrap_or_default(),
                    o.storage_class_name,
                    serde_json::to_string(&o.node_topology).unwrap_or_default(),
                    o.capacity
                )
            })
            .collect();
        ensure_eq!(
            objects.len(),
            1,
            "only the WaitForFirstConsumer class: {summary:#?}\n{}",
            fixture.diagnostics(&processes).await
        );
        let object = &objects[0];
        ensure_eq!(object.storage_class_name, late);
        ensure!(
            object
                .metadata
                .generate_name
                .as_deref()
                .is_some_and(|g| g == "csisc-"),
            "generateName csisc-"
        );
        let labels = object.metadata.labels.clone().unwrap_or_default();
        ensure_eq!(
            labels
                .get("csi.storage.k8s.io/drivername")
                .map(String::as_str),
            Some(fixture.driver_name())
        );
        ensure_eq!(
            labels
                .get("csi.storage.k8s.io/managed-by")
                .map(String::as_str),
            Some("external-provisioner")
        );
        ensure_eq!(
            serde_json::to_value(&object.node_topology)?,
            json!({"matchLabels": {MOCK_TOPOLOGY_KEY: MOCK_TOPOLOGY_VALUE}})
        );
        ensure_eq!(
            object.capacity.as_ref().map(|q| q.0.clone()),
            Some("1Ti".to_string())
        );
        ensure!(
            object.metadata.owner_references.is_none(),
            "no owner with --capacity-ownerref-level=-1"
        );
        fixture.assert_nothing_forbidden()?;
        drop(process);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

/// `--node-deployment` with two nodes: each instance provisions only the claims of its node;
/// an Immediate claim is taken by one of them, which selects its node.
#[tokio::test(flavor = "multi_thread")]
async fn node_deployment_with_two_nodes() -> anyhow::Result<()> {
    let mut fixture = Fixture::new(
        "provisioner-nodes",
        &provisioner_rbac(),
        &["--enable-topology"],
    )
    .await?;
    let outcome = async {
        let one = fixture.topology_node("one").await?;
        let two = fixture.topology_node("two").await?;
        let late = fixture
            .storage_class("late", json!({"volumeBindingMode": "WaitForFirstConsumer"}))
            .await?;
        let now = fixture.storage_class("now", json!({})).await?;
        let binary = fixture.env.binary("csi-provisioner")?;
        let args = |_node: &str| {
            vec![
                format!("--csi-address={}", fixture.driver.endpoint()),
                format!("--kubeconfig={}", fixture.kubeconfig.display()),
                "--node-deployment".to_string(),
                "--node-deployment-base-delay=1s".to_string(),
                "--node-deployment-max-delay=4s".to_string(),
            ]
        };
        let first = ChildProcess::spawn_with_env(&binary, args(&one), [("NODE_NAME", one.as_str())])?;
        let second =
            ChildProcess::spawn_with_env(&binary, args(&two), [("NODE_NAME", two.as_str())])?;
        let processes = [("provisioner one", &first), ("provisioner two", &second)];
        for (claim, node) in [("on-one", &one), ("on-two", &two)] {
            fixture
                .claim(
                    claim,
                    &late,
                    json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": node}}}),
                )
                .await?;
        }
        fixture.claim("anywhere", &now, json!({})).await?;
        let names: Vec<String> = ["on-one", "on-two", "anywhere"].map(String::from).to_vec();
        let pvs = fixture.wait_bound(&names, WAIT, &processes).await?;
        let identity = |pv: &PersistentVolume| {
            pv.spec
                .clone()
                .unwrap_or_default()
                .csi
                .unwrap_or_default()
                .volume_attributes
                .unwrap_or_default()
                .get("storage.kubernetes.io/csiProvisionerIdentity")
                .cloned()
                .unwrap_or_default()
        };
        ensure!(identity(&pvs["on-one"]).ends_with(&format!("-{one}")), "{}", identity(&pvs["on-one"]));
        ensure!(identity(&pvs["on-two"]).ends_with(&format!("-{two}")), "{}", identity(&pvs["on-two"]));
        let owner = fixture.claims().get("anywhere").await?;
        let selected = owner
            .metadata
            .annotations
            .unwrap_or_default()
            .get("volume.kubernetes.io/selected-node")
            .cloned()
            .unwrap_or_default();
        ensure!(
            selected == one || selected == two,
            "the Immediate claim was taken by a node: {selected:?}"
        );
        ensure!(
            identity(&pvs["anywhere"]).ends_with(&format!("-{selected}")),
            "the node that took it provisioned it: {}",
            identity(&pvs["anywhere"])
        );
        ensure_eq!(fixture.driver.calls_to("CreateVolume"), 3, "each claim provisioned once");
        fixture.assert_nothing_forbidden()?;
        drop(first);
        drop(second);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}
