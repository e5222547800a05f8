//! Secrets and RBAC, on one workload that makes every controller do its secret-carrying call:
//! a StorageClass with every secret parameter (provisioner, controller-publish,
//! controller-expand, node-stage, node-publish, node-expand) and a VolumeSnapshotClass with the
//! snapshotter secret; a claim is provisioned (CreateVolume), attached (ControllerPublish),
//! expanded (ControllerExpand), snapshotted and the snapshot deleted (CreateSnapshot,
//! DeleteSnapshot), detached (ControllerUnpublish) and deleted (DeleteVolume), while the health
//! monitor sweeps. Every controller runs at `-v=10`.
//!
//! - No log line of any process we start holds a secret value or its base64 form: the
//!   standalone binaries, and `csi-sidecars` with every controller.
//! - RBAC: each standalone binary runs as the ServiceAccount of the manifest it ships; nothing
//!   is Forbidden, and every permission of each role either authorized a request of the
//!   workload (so removing it breaks that request) or is one upstream grants for a case the
//!   workload does not have, listed in [`NOT_EXERCISED`] with that case. The table is printed
//!   (docs/testing.md has it). `rbac_rules.rs` removes one permission per component and shows
//!   the Forbidden.
//!
//! The snapshot-controller acts on the whole cluster, so the two runs here go one after the
//! other.

mod checks;
mod snapshots;

use std::path::PathBuf;

use anyhow::{Context as _, ensure};
use csi_e2e_support::rbac_coverage::{Permission, coverage, permissions};
use csi_e2e_support::storage::WAIT;
use csi_e2e_support::{
    AuditEvent, E2eEnv, create_pod_on_node, force_delete_pod, volume_attachments_of, wait_until,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use snapshots::{Component, Identity, Kind, Stack, ready};

use checks::{check_invariants, ensure_no_secret, repo_path};

const PROVISIONER_RBAC: &str = "sidecars/external-provisioner/deploy/rbac.yaml";
const ATTACHER_RBAC: &str = "sidecars/external-attacher/deploy/rbac.yaml";
const RESIZER_RBAC: &str = "sidecars/external-resizer/deploy/rbac.yaml";
const SNAPSHOTTER_RBAC: &str = "sidecars/external-snapshotter/deploy/rbac.yaml";
const SNAPSHOT_CONTROLLER_RBAC: &str = "controllers/snapshot-controller/deploy/rbac.yaml";
const HEALTH_MONITOR_RBAC: &str = "controllers/external-health-monitor/deploy/rbac.yaml";
const AIO_RBAC: &str = "sidecars/aio/deploy/rbac.yaml";

/// The health monitor's flags: quick sweeps, and the node watcher (its nodes rule).
const HEALTH_ARGS: [&str; 5] = [
    "--list-volumes-interval=1s",
    "--monitor-interval=1s",
    "--volume-list-add-interval=1s",
    "--node-list-add-interval=1s",
    "--enable-node-watcher",
];

/// Why a permission of the shipped roles authorized no request of the workload (upstream grants
/// each of these; none is in a rule of ours that upstream lacks without a comment saying so).
const LEASES: &str = "upstream's leader-election Role grants it; leader election only gets, creates \
                      and updates its Lease";
const EVENTS_READ: &str = "upstream grants it; an Event recorder never reads Events";
const EVENTS_UPDATE: &str = "upstream grants it; new Events are created and repeated ones \
                             patched, never updated";
const EVENTS_PATCH: &str = "a repeated Event (same object, reason and message) is patched with \
                            its count; the workload repeats none";
const CACHED: &str = "read from the watch cache; a GET is made only where the cache may be stale \
                      or miss";
const GROUP: &str = "group snapshots; the workload takes none (snapshot.rs does)";
const TOPOLOGY: &str = "topology (VOLUME_ACCESSIBILITY_CONSTRAINTS); the mock driver runs \
                        without --enable-topology here";
const RESTORE: &str = "a claim restored from a VolumeSnapshot; the workload restores none";
const CAPACITY: &str = "--enable-capacity (with --capacity-ownerref-level for pods and \
                        replicasets)";
const OTHER_PATH: &str = "a path the workload does not take: contents are created, patched and \
                          deleted here (snapshot.rs adds pre-provisioned contents and Retain)";
const HEALTH_EVENTS: &str = "Events of abnormal volumes and failed nodes; the workload has neither";

/// Permissions of the shipped roles that authorized no request of the workload, as
/// `(component or *, verbs, group/resource, why)`. Every other permission must authorize one.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    (
        "*",
        "list,watch,delete",
        "coordination.k8s.io/leases",
        LEASES,
    ),
    ("*", "get,list,watch", "core/events", EVENTS_READ),
    ("*", "update", "core/events", EVENTS_UPDATE),
    ("*", "patch", "core/events", EVENTS_PATCH),
    ("*", "get", "core/persistentvolumes", CACHED),
    ("*", "get", "core/persistentvolumeclaims", CACHED),
    ("*", "get", "storage.k8s.io/storageclasses", CACHED),
    ("*", "get", "storage.k8s.io/csinodes", CACHED),
    ("*", "get", "storage.k8s.io/volumeattachments", CACHED),
    ("*", "get", "core/nodes", CACHED),
    ("*", "get", "storage.k8s.io/volumeattributesclasses", CACHED),
    (
        "*",
        "get",
        "snapshot.storage.k8s.io/volumesnapshotclasses",
        CACHED,
    ),
    (
        "*",
        "get",
        "groupsnapshot.storage.k8s.io/volumegroupsnapshotclasses",
        GROUP,
    ),
    (
        "csi-provisioner",
        "update",
        "core/persistentvolumeclaims",
        "removing volume.kubernetes.io/selected-node after a failed WaitForFirstConsumer \
      provisioning, and the finalizer of a clone source; the workload has Immediate claims \
      and no clone",
    ),
    (
        "csi-provisioner",
        "get,update",
        "snapshot.storage.k8s.io/volumesnapshots",
        RESTORE,
    ),
    (
        "csi-provisioner",
        "get,list",
        "snapshot.storage.k8s.io/volumesnapshotcontents",
        RESTORE,
    ),
    (
        "csi-provisioner",
        "list,watch",
        "storage.k8s.io/csinodes",
        TOPOLOGY,
    ),
    ("csi-provisioner", "list,watch", "core/nodes", TOPOLOGY),
    (
        "csi-provisioner",
        "get,list,watch,create,update,patch,delete",
        "storage.k8s.io/csistoragecapacities",
        CAPACITY,
    ),
    ("csi-provisioner", "get", "core/pods", CAPACITY),
    ("csi-provisioner", "get", "apps/replicasets", CAPACITY),
    ("csi-resizer", "get", "core/pods", CACHED),
    (
        "csi-snapshotter",
        "create",
        "core/events",
        "the snapshotter records Events on failures only; the workload has none",
    ),
    (
        "csi-snapshotter",
        "update",
        "snapshot.storage.k8s.io/volumesnapshotcontents",
        OTHER_PATH,
    ),
    (
        "csi-snapshotter",
        "get,update,patch",
        "groupsnapshot.storage.k8s.io/volumegroupsnapshotcontents",
        GROUP,
    ),
    (
        "csi-snapshotter",
        "update,patch",
        "groupsnapshot.storage.k8s.io/volumegroupsnapshotcontents/status",
        GROUP,
    ),
    (
        "snapshot-controller",
        "get,update",
        "snapshot.storage.k8s.io/volumesnapshotcontents",
        OTHER_PATH,
    ),
    (
        "snapshot-controller",
        "patch",
        "snapshot.storage.k8s.io/volumesnapshotcontents/status",
        OTHER_PATH,
    ),
    (
        "snapshot-controller",
        "create,delete",
        "snapshot.storage.k8s.io/volumesnapshots",
        "the member VolumeSnapshots of a dynamically created group snapshot",
    ),
    (
        "snapshot-controller",
        "patch",
        "snapshot.storage.k8s.io/volumesnapshots/status",
        OTHER_PATH,
    ),
    (
        "snapshot-controller",
        "get,create,update,delete,patch",
        "groupsnapshot.storage.k8s.io/volumegroupsnapshotcontents",
        GROUP,
    ),
    (
        "snapshot-controller",
        "patch",
        "groupsnapshot.storage.k8s.io/volumegroupsnapshotcontents/status",
        GROUP,
    ),
    (
        "snapshot-controller",
        "get,update,patch",
        "groupsnapshot.storage.k8s.io/volumegroupsnapshots",
        GROUP,
    ),
    (
        "snapshot-controller",
        "update,patch",
        "groupsnapshot.storage.k8s.io/volumegroupsnapshots/status",
        GROUP,
    ),
    (
        "csi-external-health-monitor-controller",
        "get",
        "core/pods",
        CACHED,
    ),
    (
        "csi-external-health-monitor-controller",
        "patch",
        "core/persistentvolumeclaims/status",
        "status.healthStatus of an abnormal volume (v0.19 writes it; upstream's file lacks the \
      rule, see rbac.yaml)",
    ),
    (
        "csi-external-health-monitor-controller",
        "create",
        "core/events",
        HEALTH_EVENTS,
    ),
];

/// Why `permission` of `component` may authorize nothing, if [`NOT_EXERCISED`] says so.
fn not_exercised(component: &str, permission: &Permission) -> Option<&'static str> {
    let group = if permission.api_group.is_empty() {
        "core"
    } else {
        &permission.api_group
    };
    let resource = format!("{group}/{}", permission.resource);
    NOT_EXERCISED
        .iter()
        .find(|(who, verbs, what, _)| {
            (*who == "*" || *who == component)
                && *what == resource
                && verbs.split(',').any(|v| v == permission.verb)
        })
        .map(|(_, _, _, why)| *why)
}

fn component(name: &'static str, binary: PathBuf, rbac: &str, args: &[&str]) -> Component {
    let mut all = vec!["--leader-election".to_string(), "-v=10".to_string()];
    all.extend(args.iter().map(ToString::to_string));
    Component {
        name,
        binary,
        args: all,
        csi: name != "snapshot-controller",
        identity: Identity::Rbac(repo_path(rbac)),
    }
}

fn standalone(env: &E2eEnv) -> anyhow::Result<Vec<(Component, &'static str)>> {
    Ok(vec![
        (
            component(
                "snapshot-controller",
                env.binary("snapshot-controller")?,
                SNAPSHOT_CONTROLLER_RBAC,
                &[],
            ),
            SNAPSHOT_CONTROLLER_RBAC,
        ),
        (
            component(
                "csi-provisioner",
                env.binary("csi-provisioner")?,
                PROVISIONER_RBAC,
                &[],
            ),
            PROVISIONER_RBAC,
        ),
        (
            component(
                "csi-attacher",
                env.binary("csi-attacher")?,
                ATTACHER_RBAC,
                &[],
            ),
            ATTACHER_RBAC,
        ),
        (
            component("csi-resizer", env.binary("csi-resizer")?, RESIZER_RBAC, &[]),
            RESIZER_RBAC,
        ),
        (
            component(
                "csi-snapshotter",
                env.binary("csi-snapshotter")?,
                SNAPSHOTTER_RBAC,
                &[],
            ),
            SNAPSHOTTER_RBAC,
        ),
        (
            component(
                "csi-external-health-monitor-controller",
                env.binary("csi-external-health-monitor-controller")?,
                HEALTH_MONITOR_RBAC,
                &HEALTH_ARGS,
            ),
            HEALTH_MONITOR_RBAC,
        ),
    ])
}

fn all_in_one(env: &E2eEnv) -> anyhow::Result<Vec<Component>> {
    let health: Vec<String> = HEALTH_ARGS
        .iter()
        .map(|a| a.replacen("--", "--health-monitor-", 1))
        .collect();
    let mut args =
        vec!["--controllers=attacher,provisioner,resizer,snapshotter,health-monitor".to_string()];
    args.extend(health);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(vec![
        component(
            "snapshot-controller",
            env.binary("snapshot-controller")?,
            SNAPSHOT_CONTROLLER_RBAC,
            &[],
        ),
        component("csi-sidecars", env.binary("csi-sidecars")?, AIO_RBAC, &args),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_any_log_and_every_rbac_rule_used() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let components = standalone(&env)?;
    let audit = env.audit_log()?;
    let start = audit.offset();
    let stack = Stack::start(
        "standalone",
        "secrets",
        components.iter().map(|(c, _)| c.clone()).collect(),
    )
    .await?;
    let outcome = run(&stack).await;
    let outcome = match outcome {
        Ok(()) => rule_coverage(&stack, &components, &audit.events_since(start)?),
        err => err,
    };
    stack.finish(outcome).await?;

    let components = all_in_one(&env)?;
    let stack = Stack::start("csi-sidecars", "secrets-aio", components).await?;
    let outcome = run(&stack).await;
    stack.finish(outcome).await
}

/// The workload, then the secret and Forbidden checks and the invariants.
async fn run(stack: &Stack) -> anyhow::Result<()> {
    let secrets = workload(stack).await?;
    for (name, process) in &stack.processes {
        let logs = process.logs();
        ensure_no_secret(name, &logs, &secrets)?;
        // The calls were logged, with their secrets replaced.
        if *name != "snapshot-controller" && *name != "csi-external-health-monitor-controller" {
            ensure!(
                logs.contains("***stripped***"),
                "{}: {name} logged no secret-carrying call at -v=10",
                stack.label
            );
        }
    }
    // The scan finds what is there: the mock driver logs the requests it gets, secrets and all.
    ensure!(
        ensure_no_secret("the driver", &stack.fixture.driver.logs(), &secrets).is_err(),
        "{}: the driver's log holds no secret value, so the scan cannot be trusted",
        stack.label
    );
    stack.check_health().await?;
    check_invariants(&stack.fixture).await
}

/// Grants the stack's ServiceAccounts the secrets of the namespace (upstream's optional
/// rule), creates one secret per kind, and runs the workload; returns the secret values.
async fn workload(stack: &Stack) -> anyhow::Result<Vec<String>> {
    let ns = stack.ns().to_string();
    let admin = stack.admin().clone();
    let subjects: Vec<serde_json::Value> = stack
        .accounts
        .iter()
        .filter_map(|user| user.rsplit(':').next())
        .map(|name| json!({"kind": "ServiceAccount", "name": name, "namespace": ns}))
        .collect();
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "secrets", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}],
    }))?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "secrets", "namespace": ns},
        "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secrets"},
    }))?;
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await?;
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await?;

    // Values no log line could hold by chance.
    let kinds = [
        "provisioner",
        "controller-publish",
        "controller-expand",
        "node-stage",
        "node-publish",
        "node-expand",
        "snapshotter",
    ];
    let mut values = Vec::new();
    let mut parameters = serde_json::Map::new();
    for kind in kinds {
        let value = format!("Pw-{kind}-{ns}-Zq7x");
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{kind}-secret"), "namespace": ns},
            "stringData": {"password": value, "user": format!("admin-{kind}-Yk3v")},
        }))?;
        Api::<Secret>::namespaced(admin.clone(), &ns)
            .create(&PostParams::default(), &secret)
            .await?;
        values.push(value);
        values.push(format!("admin-{kind}-Yk3v"));
        if kind != "snapshotter" {
            parameters.insert(
                format!("csi.storage.k8s.io/{kind}-secret-name"),
                json!(format!("{kind}-secret")),
            );
            parameters.insert(
                format!("csi.storage.k8s.io/{kind}-secret-namespace"),
                json!("${pvc.namespace}"),
            );
        }
    }
    let driver = stack.fixture.driver_name().to_string();
    let class = format!("{ns}-secrets");
    let storage_class: k8s_openapi::api::storage::v1::StorageClass =
        serde_json::from_value(json!({
            "metadata": {"name": class},
            "provisioner": driver,
            "parameters": parameters,
            "allowVolumeExpansion": true,
        }))?;
    Api::<k8s_openapi::api::storage::v1::StorageClass>::all(admin.clone())
        .create(&PostParams::default(), &storage_class)
        .await?;
    let snapshot_class = format!("{ns}-secrets");
    stack
        .create(
            Kind::VolumeSnapshotClass,
            json!({
                "metadata": {"name": snapshot_class},
                "driver": driver,
                "deletionPolicy": "Delete",
                "parameters": {
                    "csi.storage.k8s.io/snapshotter-secret-name": "snapshotter-secret",
                    "csi.storage.k8s.io/snapshotter-secret-namespace": ns,
                },
            }),
        )
        .await?;
    let outcome = secret_calls(stack, &class, &snapshot_class).await;
    let _ = Api::<k8s_openapi::api::storage::v1::StorageClass>::all(admin.clone())
        .delete(&class, &DeleteParams::default())
        .await;
    let _ = stack
        .delete(Kind::VolumeSnapshotClass, &snapshot_class)
        .await;
    outcome?;

    // Every secret-carrying call reached the driver with its secrets.
    let calls = stack.fixture.driver.grpc_calls();
    for method in [
        "CreateVolume",
        "ControllerPublishVolume",
        "ControllerExpandVolume",
        "CreateSnapshot",
        "DeleteSnapshot",
        "ControllerUnpublishVolume",
        "DeleteVolume",
    ] {
        ensure!(
            calls.iter().any(|c| c.short_method() == method
                && c.error.is_empty()
                && c.request["secrets"]
                    .as_object()
                    .is_some_and(|s| !s.is_empty())),
            "{}: no {method} carried secrets",
            stack.label
        );
    }
    Ok(values)
}

async fn secret_calls(stack: &Stack, class: &str, snapshot_class: &str) -> anyhow::Result<()> {
    let fixture = &stack.fixture;
    let ns = stack.ns();
    let admin = stack.admin();
    let processes: Vec<(&str, &csi_test_support::ChildProcess)> =
        stack.processes.iter().map(|(n, p)| (*n, p)).collect();
    fixture.claim("data", class, json!({})).await?;
    let pvs = fixture
        .wait_bound(&["data".to_string()], WAIT, &processes)
        .await?;
    let pv = pvs["data"].metadata.name.clone().unwrap_or_default();
    // The secrets of the other callers (kubelet, attacher, resizer) are passed through the PV.
    let csi = pvs["data"]
        .spec
        .clone()
        .unwrap_or_default()
        .csi
        .context("a CSI PV")?;
    for (what, reference) in [
        (
            "controllerPublishSecretRef",
            csi.controller_publish_secret_ref.and_then(|r| r.name),
        ),
        (
            "controllerExpandSecretRef",
            csi.controller_expand_secret_ref.and_then(|r| r.name),
        ),
        (
            "nodeStageSecretRef",
            csi.node_stage_secret_ref.and_then(|r| r.name),
        ),
        (
            "nodePublishSecretRef",
            csi.node_publish_secret_ref.and_then(|r| r.name),
        ),
        (
            "nodeExpandSecretRef",
            csi.node_expand_secret_ref.and_then(|r| r.name),
        ),
    ] {
        ensure!(
            reference.is_some(),
            "{}: PV {pv} has no {what}",
            stack.label
        );
    }

    // Attach: the node registered with the driver's node ID (its name).
    let node = format!("{ns}-node");
    csi_e2e_support::create_fake_node(admin, &node).await?;
    let attached = async {
        csi_e2e_support::create_csinode(admin, &node, fixture.driver_name(), fixture.driver_name())
            .await?;
        create_pod_on_node(admin, ns, "app", &node, "data").await?;
        wait_until(
            &format!(
                "{}: the VolumeAttachment of {pv} to be attached",
                stack.label
            ),
            WAIT,
            || async {
                let vas = volume_attachments_of(admin, &pv).await.ok()?;
                vas.iter()
                    .any(|va| va.status.as_ref().is_some_and(|s| s.attached))
                    .then_some(())
            },
            || stack.diagnostics(),
        )
        .await?;

        // Expand.
        fixture
            .claims()
            .patch(
                "data",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}})),
            )
            .await?;
        wait_until(
            &format!("{}: claim data to be 2Gi", stack.label),
            WAIT,
            || async {
                let claim = fixture.claims().get("data").await.ok()?;
                let capacity = claim.status?.capacity?.get("storage")?.0.clone();
                (capacity == "2Gi").then_some(())
            },
            || stack.diagnostics(),
        )
        .await?;

        // Snapshot and delete the snapshot.
        stack
            .create(
                Kind::VolumeSnapshot,
                json!({
                    "metadata": {"name": "snap"},
                    "spec": {
                        "volumeSnapshotClassName": snapshot_class,
                        "source": {"persistentVolumeClaimName": "data"},
                    },
                }),
            )
            .await?;
        stack
            .wait_for(Kind::VolumeSnapshot, "snap", "ready to use", ready)
            .await?;
        stack.delete(Kind::VolumeSnapshot, "snap").await?;
        stack.wait_gone(Kind::VolumeSnapshot, "snap").await?;
        wait_until(
            &format!("{}: DeleteSnapshot", stack.label),
            WAIT,
            || async { (fixture.driver.calls_to("DeleteSnapshot") > 0).then_some(()) },
            || stack.diagnostics(),
        )
        .await?;

        // Detach and delete.
        force_delete_pod(admin, ns, "app").await?;
        wait_until(
            &format!("{}: the VolumeAttachment of {pv} to be gone", stack.label),
            WAIT,
            || async {
                volume_attachments_of(admin, &pv)
                    .await
                    .ok()?
                    .is_empty()
                    .then_some(())
            },
            || stack.diagnostics(),
        )
        .await?;
        fixture
            .delete_and_wait_for_pv("data", &pv, &processes)
            .await
    }
    .await;
    csi_e2e_support::delete_nodes(admin, &[node.as_str()]).await;
    attached
}

/// Every permission of each standalone binary's roles authorized a request of its
/// ServiceAccount, or is listed in [`NOT_EXERCISED`]; prints the table.
fn rule_coverage(
    stack: &Stack,
    components: &[(Component, &str)],
    events: &[AuditEvent],
) -> anyhow::Result<()> {
    let requests = csi_e2e_support::audit::one_per_request(events.iter().cloned());
    let mut table = String::from("| component | permission | requests |\n|---|---|---|\n");
    let mut missing = Vec::new();
    for ((component, manifest), account) in components.iter().zip(&stack.accounts) {
        let text = std::fs::read_to_string(repo_path(manifest))
            .with_context(|| format!("reading {manifest}"))?;
        let granted = permissions(&text)?;
        for (permission, count) in coverage(&granted, &requests, account) {
            let reason = not_exercised(component.name, permission);
            let cell = match (count, reason) {
                (0, Some(reason)) => format!("0: {reason}"),
                (n, _) => n.to_string(),
            };
            table.push_str(&format!(
                "| {} | `{permission}` | {cell} |\n",
                component.name
            ));
            if count == 0 && reason.is_none() {
                missing.push(format!("{} {permission}", component.name));
            }
        }
    }
    println!("RBAC rule coverage:\n{table}");
    ensure!(
        missing.is_empty(),
        "these permissions authorized no request of the workload and are not listed as \
         upstream's optional ones:\n{}\n{table}",
        missing.join("\n")
    );
    Ok(())
}
