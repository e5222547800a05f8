//! The demo's snapshot step, run once our `snapshot-controller` is built and `csi-sidecars`
//! has the `snapshotter` controller: a VolumeSnapshot of the demo claim becomes readyToUse
//! through both, a claim is restored from it by the provisioner, and both are deleted again.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};

use super::{CLASS, DRIVER, PVC, proves, say, wait_for};

const SNAPSHOT_CLASS: &str = "csi-sidecars-demo";
const SNAPSHOT: &str = "demo-snapshot";
const RESTORED: &str = "demo-restored";

/// Our snapshot-controller binary, if the demo can show snapshots: it is built and
/// `csi-sidecars` (at `sidecars`) knows the `snapshotter` controller.
pub fn available(root: &Path, target: &Path, sidecars: &Path) -> Option<PathBuf> {
    if !root
        .join("controllers/snapshot-controller/Cargo.toml")
        .exists()
    {
        return None;
    }
    let binary = target.join("debug").join("snapshot-controller");
    let help = std::process::Command::new(sidecars)
        .arg("--help")
        .output()
        .ok()?;
    let knows = String::from_utf8_lossy(&help.stdout).contains("snapshotter");
    (binary.exists() && knows).then_some(binary)
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", kind),
        plural,
    )
}

pub async fn snapshot_and_restore(client: &Client) -> anyhow::Result<()> {
    say("A VolumeSnapshot of the claim: snapshot-controller and the snapshotter make it ready");
    let params = PatchParams::apply("csi-sidecars-demo").force();
    let classes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("VolumeSnapshotClass", "volumesnapshotclasses"),
    );
    let class: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": SNAPSHOT_CLASS},
        "driver": DRIVER,
        "deletionPolicy": "Delete",
    }))?;
    classes
        .patch(SNAPSHOT_CLASS, &params, &Patch::Apply(&class))
        .await?;
    let snapshots: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("VolumeSnapshot", "volumesnapshots"),
    );
    let snapshot: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": SNAPSHOT, "namespace": "default"},
        "spec": {
            "volumeSnapshotClassName": SNAPSHOT_CLASS,
            "source": {"persistentVolumeClaimName": PVC},
        },
    }))?;
    snapshots
        .patch(SNAPSHOT, &params, &Patch::Apply(&snapshot))
        .await?;
    let ready = wait_for(|| async {
        let s = snapshots.get(SNAPSHOT).await.ok()?;
        (s.data["status"]["readyToUse"].as_bool() == Some(true)).then_some(s)
    })
    .await
    .context("the VolumeSnapshot did not become readyToUse")?;
    let content = ready.data["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let contents: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("VolumeSnapshotContent", "volumesnapshotcontents"),
    );
    let bound = contents.get(&content).await?;
    println!(
        "    VolumeSnapshot default/{SNAPSHOT}: readyToUse, content {content}, snapshotHandle {}, restoreSize {}",
        bound.data["status"]["snapshotHandle"], ready.data["status"]["restoreSize"]
    );
    proves("CreateSnapshot through the one driver connection; the objects as upstream writes them");

    say("A claim restored from the snapshot: the provisioner creates its volume from it");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let restored: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": RESTORED, "namespace": "default"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": CLASS,
            "resources": {"requests": {"storage": "1Gi"}},
            "dataSource": {
                "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": SNAPSHOT,
            },
        },
    }))?;
    claims
        .patch(RESTORED, &params, &Patch::Apply(&restored))
        .await?;
    let pv = wait_for(|| async {
        let claim = claims.get(RESTORED).await.ok()?;
        (claim.status?.phase.as_deref() == Some("Bound")).then_some(())?;
        claim.spec?.volume_name
    })
    .await
    .context("the restored claim was not provisioned")?;
    println!("    claim default/{RESTORED} Bound to {pv}");
    proves("CreateVolume with the snapshot as its content source");

    say("The restored claim and the snapshot are deleted: the volume and the snapshot go");
    claims.delete(RESTORED, &DeleteParams::default()).await?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    wait_for(|| async { matches!(pvs.get_opt(&pv).await, Ok(None)).then_some(()) })
        .await
        .context("the restored claim's PV was not deleted")?;
    snapshots.delete(SNAPSHOT, &DeleteParams::default()).await?;
    wait_for(|| async { matches!(contents.get_opt(&content).await, Ok(None)).then_some(()) })
        .await
        .context("the VolumeSnapshotContent was not deleted")?;
    println!("    {pv} and {content} are gone (DeleteVolume, DeleteSnapshot)");
    let _ = classes
        .delete(SNAPSHOT_CLASS, &DeleteParams::default())
        .await;
    proves("deletion policy Delete honoured, finalizers released in order");
    Ok(())
}
