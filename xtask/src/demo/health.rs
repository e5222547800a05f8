//! The demo's health-monitor step: a volume its driver reports abnormal, seen on its claim.
//!
//! Kubernetes' mock driver reports every volume healthy, so this step uses our in-process mock
//! driver, which answers `ControllerGetVolume` with an abnormal condition.

use std::path::Path;

use anyhow::Context as _;
use csi_proto::csi::v1 as csi;
use csi_test_support::{ChildProcess, MockCsiDriver, plugin_service_capability};
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};

use super::{proves, say, wait_for};
use crate::cluster;

const DRIVER: &str = "health.demo.csi.k8s.io";
const PV: &str = "health-demo-pv";
const PVC: &str = "health-demo-pvc";

/// Runs the step: csi-sidecars `--controllers=health-monitor` against a driver that says the
/// claim's volume is degraded.
pub async fn step(
    binary: &Path,
    info: &cluster::ClusterInfo,
    client: &Client,
) -> anyhow::Result<()> {
    say("A volume its driver reports abnormal: csi-sidecars --controllers=health-monitor");
    let driver = MockCsiDriver::start().await?;
    driver.set_driver_name(DRIVER);
    driver.set_plugin_capabilities([plugin_service_capability(
        csi::plugin_capability::service::Type::ControllerService,
    )]);
    driver.set_controller_capabilities([
        csi::controller_service_capability::rpc::Type::GetVolume,
        csi::controller_service_capability::rpc::Type::VolumeCondition,
    ]);
    driver.handle(
        "ControllerGetVolume",
        |req: csi::ControllerGetVolumeRequest| {
            Ok(csi::ControllerGetVolumeResponse {
                volume: Some(csi::Volume {
                    volume_id: req.volume_id,
                    ..csi::Volume::default()
                }),
                status: Some(csi::controller_get_volume_response::VolumeStatus {
                    volume_condition: Some(csi::VolumeCondition {
                        abnormal: true,
                        message: "2 of 3 replicas lost".to_string(),
                    }),
                    ..Default::default()
                }),
            })
        },
    );
    let params = PatchParams::apply("csi-sidecars-demo").force();
    let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": PV},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": PVC},
            "csi": {"driver": DRIVER, "volumeHandle": "replicated-1"},
        }
    }))?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.patch(PV, &params, &Patch::Apply(&pv)).await?;
    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": PVC, "namespace": "default"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": PV,
            "resources": {"requests": {"storage": "1Gi"}}
        }
    }))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    claims.patch(PVC, &params, &Patch::Apply(&pvc)).await?;
    let args = [
        format!("--csi-address=unix:{}", driver.socket_path().display()),
        "--controllers=health-monitor".to_string(),
        format!("--kubeconfig={}", info.kubeconfig.display()),
        "--health-monitor-monitor-interval=1s".to_string(),
        "--health-monitor-volume-list-add-interval=1s".to_string(),
    ];
    println!("    csi-sidecars {}", args.join(" "));
    let monitor = ChildProcess::spawn(binary, &args)?;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let seen = wait_for(|| async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| {
                e.involved_object.name.as_deref() == Some(PVC)
                    && e.reason.as_deref() == Some("VolumeConditionAbnormal")
            })
    })
    .await;
    let result = match seen {
        Some(event) => {
            println!(
                "    claim default/{PVC}: {} {}: {}",
                event.type_.unwrap_or_default(),
                event.reason.unwrap_or_default(),
                event.message.unwrap_or_default()
            );
            println!(
                "    and status.healthStatus patched to [{{status: Degraded, reason: VolumeConditionAbnormal}}] (kept by API servers with CSIVolumeHealth, 1.37+)"
            );
            proves(
                "ControllerGetVolume's condition reported on the claim, as external-health-monitor v0.19 does",
            );
            Ok(())
        }
        None => Err(anyhow::anyhow!(
            "no VolumeConditionAbnormal Event on the claim:\n{}",
            monitor.logs()
        )),
    };
    drop(monitor);
    claims.delete(PVC, &DeleteParams::default()).await.ok();
    pvs.delete(PV, &DeleteParams::default()).await.ok();
    result.context("the health-monitor step")
}
