//! external-resizer on the real control plane: claims of an expandable class are provisioned
//! (by our provisioner, as admin), then `csi-resizer` (or `csi-sidecars
//! --controllers=attacher,provisioner,resizer`) expands and modifies them through a real CSI
//! driver process, under the RBAC we ship, as a ServiceAccount; kube-controller-manager's
//! expander hands the claims over (`volume.kubernetes.io/storage-resizer`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use csi_e2e_support::storage::{StorageFixture as Fixture, WAIT};
use csi_e2e_support::{ignore_not_found, wait_until};
use csi_test_support::ChildProcess;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttributesClass;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

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

const GIB: i64 = 1 << 30;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn storage(quantity: &str) -> serde_json::Value {
    json!({"spec": {"resources": {"requests": {"storage": quantity}}}})
}

fn pv_capacity(pv: &PersistentVolume) -> Option<String> {
    pv.spec
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

fn claim_capacity(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .status
        .as_ref()?
        .capacity
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

fn conditions(claim: &PersistentVolumeClaim) -> Vec<String> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect()
}

fn resize_status(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .status
        .as_ref()?
        .allocated_resource_statuses
        .as_ref()?
        .get("storage")
        .cloned()
}

/// Our provisioner as admin (only the resizer's permissions are under test here).
fn admin_provisioner(fixture: &Fixture) -> anyhow::Result<ChildProcess> {
    let kubeconfig = fixture.env.kubeconfig.clone();
    ChildProcess::spawn(
        fixture.env.binary("csi-provisioner")?,
        [
            format!("--csi-address={}", fixture.driver.endpoint()),
            format!("--kubeconfig={}", kubeconfig.display()),
        ],
    )
}

/// After a restart of the mock driver (which keeps volumes in memory and numbers them from
/// 4), a volume of `bytes` that takes the ID `handle` again.
async fn restarted_with(fixture: &Fixture, handle: &str, bytes: i64) -> anyhow::Result<()> {
    let id = fixture.driver.create_volume_of("stand-in", bytes).await?;
    ensure_eq!(id, handle, "the restarted driver numbers volumes as before");
    Ok(())
}

/// Patches claim `name` with `patch` (a merge patch) as admin, the user's edit.
async fn edit(fixture: &Fixture, name: &str, patch: serde_json::Value) -> anyhow::Result<()> {
    let result = fixture
        .claims()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await;
    if let Err(err) = result {
        let now = fixture.claims().get(name).await.ok();
        anyhow::bail!(
            "editing claim {name}: {err}\nthe claim now: {}",
            serde_json::to_string(&now.map(|c| c.status)).unwrap_or_default()
        );
    }
    Ok(())
}

/// Waits until `ready` holds for claim `name` and its PV.
async fn wait_for(
    fixture: &Fixture,
    name: &str,
    what: &str,
    processes: &[(&str, &ChildProcess)],
    ready: impl Fn(&PersistentVolumeClaim, &PersistentVolume) -> bool,
) -> anyhow::Result<(PersistentVolumeClaim, PersistentVolume)> {
    wait_until(
        &format!("claim {name}: {what}"),
        WAIT,
        || async {
            let claim = fixture.claims().get(name).await.ok()?;
            let volume = claim.spec.as_ref()?.volume_name.clone()?;
            let pv = fixture.pvs().get(&volume).await.ok()?;
            ready(&claim, &pv).then_some((claim, pv))
        },
        || fixture.diagnostics(processes),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn expands_modifies_and_recovers_as_csi_resizer_under_shipped_rbac() -> anyhow::Result<()> {
    let mut fixture = Fixture::new(
        "resizer",
        &repo_path("sidecars/external-resizer/deploy/rbac.yaml"),
        &[],
    )
    .await?;
    let mut vac_name = None;
    let outcome = async {
        let class = fixture
            .storage_class("grow", json!({"allowVolumeExpansion": true}))
            .await?;
        let provisioner = admin_provisioner(&fixture)?;
        let resizer =
            ChildProcess::spawn(fixture.env.binary("csi-resizer")?, fixture.common_args())?;
        let processes = [("csi-provisioner", &provisioner), ("csi-resizer", &resizer)];
        fixture.claim("data", &class, json!({})).await?;
        fixture
            .wait_bound(&["data".to_string()], WAIT, &processes)
            .await?;

        // Expansion: the driver grows the volume, the PV and the claim say so.
        edit(&fixture, "data", storage("2Gi")).await?;
        let (_, pv) = wait_for(&fixture, "data", "2Gi everywhere", &processes, |c, pv| {
            claim_capacity(c).as_deref() == Some("2Gi") && pv_capacity(pv).as_deref() == Some("2Gi")
        })
        .await?;
        let handle = pv
            .spec
            .clone()
            .unwrap_or_default()
            .csi
            .unwrap_or_default()
            .volume_handle;
        let expands: Vec<serde_json::Value> = fixture
            .driver
            .grpc_calls()
            .into_iter()
            .filter(|c| c.short_method() == "ControllerExpandVolume")
            .map(|c| c.request)
            .collect();
        ensure!(
            expands.iter().any(|r| r["volume_id"] == handle.as_str()
                && r["capacity_range"]["required_bytes"] == 2 * GIB),
            "ControllerExpandVolume of {handle} to 2 GiB: {expands:#?}"
        );
        let events = fixture.events_of("data").await?;
        for expected in ["Normal Resizing:", "Normal VolumeResizeSuccessful:"] {
            ensure!(
                events.iter().any(|e| e.starts_with(expected)),
                "an Event {expected:?} on claim data; its Events: {events:#?}"
            );
        }
        // Upstream's lease: external-resizer-<sanitized driver>.
        let lease = format!(
            "external-resizer-{}",
            fixture.driver_name().replace('.', "-")
        );
        let leases: Api<Lease> = Api::namespaced(fixture.admin.clone(), &fixture.ns.name);
        ensure!(
            leases.get_opt(&lease).await?.is_some(),
            "the lease {lease} exists"
        );

        // Modification: a VolumeAttributesClass of the driver.
        let name = format!("{}-fast", fixture.ns.name);
        let vac: VolumeAttributesClass = serde_json::from_value(json!({
            "metadata": {"name": name},
            "driverName": fixture.driver_name(),
            "parameters": {"iops": "1000"},
        }))?;
        Api::<VolumeAttributesClass>::all(fixture.admin.clone())
            .create(&PostParams::default(), &vac)
            .await?;
        vac_name = Some(name.clone());
        edit(
            &fixture,
            "data",
            json!({"spec": {"volumeAttributesClassName": name}}),
        )
        .await?;
        wait_for(
            &fixture,
            "data",
            "the class applied",
            &processes,
            |c, pv| {
                c.status
                    .as_ref()
                    .and_then(|s| s.current_volume_attributes_class_name.as_deref())
                    == Some(name.as_str())
                    && pv
                        .spec
                        .as_ref()
                        .and_then(|s| s.volume_attributes_class_name.as_deref())
                        == Some(name.as_str())
            },
        )
        .await?;
        let modify = fixture
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "ControllerModifyVolume")
            .context("a ControllerModifyVolume")?;
        ensure_eq!(
            modify.request["mutable_parameters"],
            json!({"iops": "1000"}),
            "{}",
            modify.request
        );

        // A failed expansion. The mock driver keeps volumes in memory and numbers them from
        // 4: restarted, and given a 10 GiB volume 4, it refuses to "shrink" this claim's
        // volume to 3 GiB (InvalidArgument: infeasible). The restart cuts the resizer's
        // connection (it exits, as upstream), so a new one is started.
        drop(resizer);
        drop(provisioner);
        fixture.sandbox.driver.restart().await?;
        restarted_with(&fixture, &handle, 10 * GIB).await?;
        let resizer =
            ChildProcess::spawn(fixture.env.binary("csi-resizer")?, fixture.common_args())?;
        let processes = [("csi-resizer", &resizer)];
        edit(&fixture, "data", storage("3Gi")).await?;
        wait_for(
            &fixture,
            "data",
            "the expansion infeasible",
            &processes,
            |c, _| resize_status(c).as_deref() == Some("ControllerResizeInfeasible"),
        )
        .await?;
        wait_until(
            "a VolumeResizeFailed Event on claim data",
            WAIT,
            || async {
                let events = fixture.events_of("data").await.ok()?;
                events
                    .iter()
                    .any(|e| e.starts_with("Warning VolumeResizeFailed:"))
                    .then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
        // Recovery: the cause goes (the volume is 2 GiB again) and the user lowers the request
        // below the failed size; the expansion to the lower size succeeds.
        drop(resizer);
        fixture.sandbox.driver.restart().await?;
        restarted_with(&fixture, &handle, 2 * GIB).await?;
        let resizer =
            ChildProcess::spawn(fixture.env.binary("csi-resizer")?, fixture.common_args())?;
        let processes = [("csi-resizer", &resizer)];
        edit(&fixture, "data", storage("2560Mi")).await?;
        let (claim, _) = wait_for(
            &fixture,
            "data",
            "recovered at 2560Mi",
            &processes,
            |c, pv| {
                resize_status(c).is_none()
                    && claim_capacity(c).as_deref() == Some("2560Mi")
                    && pv_capacity(pv).as_deref() == Some("2560Mi")
            },
        )
        .await?;
        ensure!(
            !conditions(&claim)
                .iter()
                .any(|c| c == "Resizing" || c == "ControllerResizeError"),
            "no resize condition left: {:?}",
            conditions(&claim)
        );
        fixture.assert_nothing_forbidden()?;
        drop(resizer);
        anyhow::Ok(())
    }
    .await;
    if let Some(name) = vac_name {
        let _ = ignore_not_found(
            Api::<VolumeAttributesClass>::all(fixture.admin.clone())
                .delete(&name, &DeleteParams::default())
                .await,
        );
    }
    fixture.finish(outcome).await
}

/// A driver that expands only on the node: the trivial resizer updates the PV and leaves the
/// claim `FileSystemResizePending` for the kubelet.
#[tokio::test(flavor = "multi_thread")]
async fn node_only_expansion_leaves_the_claim_to_the_kubelet() -> anyhow::Result<()> {
    let mut fixture = Fixture::new(
        "resizer-node",
        &repo_path("sidecars/external-resizer/deploy/rbac.yaml"),
        // Node expansion only: no controller expansion, EXPAND_VOLUME on the node.
        &[
            "--disable-controller-expansion",
            "--node-expansion-required",
        ],
    )
    .await?;
    let outcome = async {
        let class = fixture
            .storage_class("grow", json!({"allowVolumeExpansion": true}))
            .await?;
        let provisioner = admin_provisioner(&fixture)?;
        let resizer =
            ChildProcess::spawn(fixture.env.binary("csi-resizer")?, fixture.common_args())?;
        let processes = [("csi-provisioner", &provisioner), ("csi-resizer", &resizer)];
        fixture.claim("data", &class, json!({})).await?;
        fixture
            .wait_bound(&["data".to_string()], WAIT, &processes)
            .await?;
        edit(&fixture, "data", storage("2Gi")).await?;
        let (claim, _) = wait_for(
            &fixture,
            "data",
            "node expansion pending",
            &processes,
            |c, pv| {
                pv_capacity(pv).as_deref() == Some("2Gi")
                    && conditions(c).iter().any(|t| t == "FileSystemResizePending")
            },
        )
        .await?;
        ensure_eq!(
            claim_capacity(&claim).as_deref(),
            Some("1Gi"),
            "the claim's capacity waits for the kubelet"
        );
        ensure_eq!(
            fixture.driver.calls_to("ControllerExpandVolume"),
            0,
            "no controller expansion"
        );
        fixture.assert_nothing_forbidden()?;
        drop(resizer);
        drop(provisioner);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

/// `csi-sidecars --controllers=attacher,provisioner,resizer`: one watch per resource type for
/// the three, and an expansion.
#[tokio::test(flavor = "multi_thread")]
async fn csi_sidecars_with_attacher_provisioner_and_resizer() -> anyhow::Result<()> {
    let mut fixture = Fixture::new(
        "sidecars-resizer",
        &repo_path("sidecars/aio/deploy/rbac.yaml"),
        &[],
    )
    .await?;
    let start = fixture.env.audit_log()?.offset();
    let outcome = async {
        let class = fixture
            .storage_class("grow", json!({"allowVolumeExpansion": true}))
            .await?;
        let mut args = fixture.common_args();
        args.push("--controllers=attacher,provisioner,resizer".to_string());
        let sidecars = ChildProcess::spawn(fixture.env.binary("csi-sidecars")?, &args)?;
        let processes = [("csi-sidecars", &sidecars)];
        fixture.claim("data", &class, json!({})).await?;
        fixture
            .wait_bound(&["data".to_string()], WAIT, &processes)
            .await?;
        edit(&fixture, "data", storage("2Gi")).await?;
        wait_for(&fixture, "data", "2Gi everywhere", &processes, |c, pv| {
            claim_capacity(c).as_deref() == Some("2Gi") && pv_capacity(pv).as_deref() == Some("2Gi")
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let audit = fixture.env.audit_log()?;
        let username = fixture.username();
        let by_agent = audit.watches_per_resource("csi-sidecars/", Some(&username))?;
        let expected = BTreeMap::from([
            ("csinodes".to_string(), 1),
            ("persistentvolumeclaims".to_string(), 1),
            ("persistentvolumes".to_string(), 1),
            ("pods".to_string(), 1),
            ("storageclasses".to_string(), 1),
            ("volumeattachments".to_string(), 1),
            ("volumeattributesclasses".to_string(), 1),
            ("volumesnapshots".to_string(), 1),
        ]);
        let watches = audit
            .requests_since(start, |e| e.verb == "watch" && e.username == username)?
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        ensure_eq!(by_agent, expected, "watches of csi-sidecars:\n{watches}");
        fixture.assert_nothing_forbidden()?;
        drop(sidecars);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}
