//! external-health-monitor on the real control plane, as a ServiceAccount under the RBAC we
//! ship, with seconds-long intervals.
//!
//! - A CSI 1.13 driver: Kubernetes 1.37's mock driver, out of process. It advertises
//!   GET_VOLUME_HEALTH (and, with `--list-volume-health`, LIST_VOLUME_HEALTH); the health RPCs
//!   are served by our main around it from a health file the test rewrites to make a volume
//!   abnormal or healthy (`release-tools/e2e-versions.toml` describes it).
//! - A CSI 1.12 driver (VOLUME_CONDITION, `ControllerGetVolume` conditions): our in-process
//!   mock driver, on the same control plane.
//!
//! What the monitor writes on a claim (`status.healthStatus`) is read back through the API
//! server, which keeps the field: Kubernetes 1.37 with the `CSIVolumeHealth` feature gate
//! (`cargo xtask cluster` turns it on).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, ensure};
use csi_e2e_support::storage::{StorageFixture as Fixture, WAIT};
use csi_e2e_support::{create_fake_node, delete_nodes, wait_until};
use csi_proto::csi::v1 as csi;
use csi_test_support::{ChildProcess, MockCsiDriver, plugin_service_capability};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

const RBAC: &str = "controllers/external-health-monitor/deploy/rbac.yaml";
const BINARY: &str = "csi-external-health-monitor-controller";

fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// A PV of `driver` with handle `handle`, pre-bound to claim `claim`, and that claim: the PV
/// controller binds them.
async fn static_volume(
    fixture: &Fixture,
    driver: &str,
    handle: &str,
    claim: &str,
) -> anyhow::Result<String> {
    let pv_name = format!("{}-{claim}", fixture.ns.name);
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": fixture.ns.name, "name": claim},
            "csi": {"driver": driver, "volumeHandle": handle},
        },
    }))?;
    fixture.pvs().create(&PostParams::default(), &pv).await?;
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": claim},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": pv_name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))?;
    fixture
        .claims()
        .create(&PostParams::default(), &pvc)
        .await?;
    fixture.wait_bound(&[claim.to_string()], WAIT, &[]).await?;
    Ok(pv_name)
}

fn monitor_args(fixture: &Fixture, csi_address: &str) -> Vec<String> {
    let mut args = fixture.common_args();
    args[0] = format!("--csi-address={csi_address}");
    args.extend(
        [
            "--list-volumes-interval=1s",
            "--monitor-interval=1s",
            "--volume-list-add-interval=1s",
            "--node-list-add-interval=1s",
        ]
        .map(String::from),
    );
    args
}

/// The claim's `status.healthStatus` as the API server stores it, if any. Read untyped: the
/// k8s-openapi types the workspace builds with (Kubernetes 1.34) have no such field.
async fn stored_health_status(fixture: &Fixture, claim: &str) -> anyhow::Result<Option<Value>> {
    let resource = ApiResource::erase::<PersistentVolumeClaim>(&());
    let claims: Api<DynamicObject> =
        Api::namespaced_with(fixture.admin.clone(), &fixture.ns.name, &resource);
    let claim = claims.get(claim).await?;
    Ok(claim.data["status"].get("healthStatus").cloned())
}

/// The mock driver's volume health file: volume ID to entries, written whole (a rename, so
/// the driver never reads half a file).
struct HealthFile {
    dir: tempfile::TempDir,
}

impl HealthFile {
    fn new() -> anyhow::Result<HealthFile> {
        Ok(HealthFile {
            dir: tempfile::tempdir()?,
        })
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("health.json")
    }

    /// The driver flag naming the file.
    fn flag(&self) -> String {
        format!("--volume-health-file={}", self.path().display())
    }

    fn write(&self, health: &Value) -> anyhow::Result<()> {
        let next = self.dir.path().join("health.json.next");
        std::fs::write(&next, serde_json::to_vec(health)?)?;
        std::fs::rename(next, self.path())?;
        Ok(())
    }
}

/// Waits until the claim's stored conditions are `want` (`None`: no `healthStatus`).
async fn wait_for_health(
    fixture: &Fixture,
    claim: &str,
    want: Option<Value>,
    process: &ChildProcess,
) -> anyhow::Result<()> {
    wait_until(
        &format!("claim {claim}'s healthStatus conditions to be {want:?}"),
        WAIT,
        || async {
            let stored = stored_health_status(fixture, claim).await.ok()?;
            let conditions = stored.map(|s| s["healthConditions"].clone());
            (conditions == want).then_some(())
        },
        || async move { fixture.diagnostics(&[(BINARY, process)]).await },
    )
    .await
}

async fn wait_for_event(
    fixture: &Fixture,
    claim: &str,
    wanted: &str,
    process: &ChildProcess,
) -> anyhow::Result<()> {
    wait_until(
        &format!("the Event {wanted:?} on claim {claim}"),
        WAIT,
        || async {
            let events = fixture.events_of(claim).await.ok()?;
            events.iter().any(|e| e == wanted).then_some(())
        },
        || async move { fixture.diagnostics(&[(BINARY, process)]).await },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn list_volume_health_sweep_and_node_failure_under_shipped_rbac() -> anyhow::Result<()> {
    let health = HealthFile::new()?;
    let fixture = Fixture::new(
        "health",
        &repo_path(RBAC),
        &[
            "--node-volume-condition",
            "--list-volume-health",
            &health.flag(),
        ],
    )
    .await?;
    let node = format!("{}-node", fixture.ns.name);
    let outcome = async {
        let handle = fixture.driver.create_volume("data").await?;
        static_volume(&fixture, fixture.driver_name(), &handle, "data").await?;
        create_fake_node(&fixture.admin, &node).await?;
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "app-0"},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "app", "image": "registry.invalid/app"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }))?;
        Api::<Pod>::namespaced(fixture.admin.clone(), &fixture.ns.name)
            .create(&PostParams::default(), &pod)
            .await?;

        let mut args = monitor_args(&fixture, &fixture.driver.endpoint());
        args.push("--enable-node-watcher".to_string());
        let monitor = ChildProcess::spawn(fixture.env.binary(BINARY)?, &args)?;
        let sweeps = || fixture.driver.calls_to("ControllerListVolumeHealth");
        wait_until(
            "three ControllerListVolumeHealth sweeps",
            WAIT,
            || async { (sweeps() >= 3).then_some(()) },
            || async { fixture.diagnostics(&[(BINARY, &monitor)]).await },
        )
        .await?;
        let events = fixture.events_of("data").await?;
        ensure!(events.is_empty(), "a healthy volume gets no Event: {events:#?}");
        let stored = stored_health_status(&fixture, "data").await?;
        ensure!(
            stored.is_none(),
            "a healthy volume's claim has no health status: {stored:#?}"
        );
        for method in ["ControllerGetVolumeHealth", "ListVolumes", "ControllerGetVolume"] {
            ensure!(
                fixture.driver.calls_to(method) == 0,
                "with LIST_VOLUME_HEALTH and nothing stored, no {method}"
            );
        }
        let lease = format!(
            "external-health-monitor-leader-{}",
            fixture.driver_name().replace('.', "-")
        );
        let leases: Api<Lease> = Api::namespaced(fixture.admin.clone(), &fixture.ns.name);
        ensure!(leases.get_opt(&lease).await?.is_some(), "the lease {lease} exists");

        // The driver lists the volume abnormal: both conditions land on the claim, sorted.
        health.write(&json!({handle.clone(): [
            {"status": "DEGRADED", "reason": "PathDown", "message": "1 of 2 paths"},
            {"status": "DATA_LOSS", "reason": "DiskLost", "message": "restore from a snapshot"},
        ]}))?;
        wait_for_health(
            &fixture,
            "data",
            Some(json!([
                {"status": "DataLoss", "reason": "DiskLost", "message": "restore from a snapshot"},
                {"status": "Degraded", "reason": "PathDown", "message": "1 of 2 paths"},
            ])),
            &monitor,
        )
        .await?;
        // It no longer lists it: ControllerGetVolumeHealth confirms, the status goes.
        health.write(&json!({}))?;
        wait_for_health(&fixture, "data", None, &monitor).await?;
        ensure!(
            fixture.driver.calls_to("ControllerGetVolumeHealth") >= 1,
            "the recovery was confirmed with ControllerGetVolumeHealth"
        );
        let events = fixture.events_of("data").await?;
        ensure!(
            events.is_empty(),
            "CSI 1.13 health of known statuses records no Event: {events:#?}"
        );

        // The node goes: the claim of the Pod on it hears of it.
        delete_nodes(&fixture.admin, &[node.as_str()]).await;
        wait_for_event(
            &fixture,
            "data",
            &format!(
                "Warning NodeFailed: Pods: [ app-0 ] consuming PVC: data in namespace: {} are now on a failed node: {node}",
                fixture.ns.name
            ),
            &monitor,
        )
        .await?;
        fixture.assert_nothing_forbidden()?;
        anyhow::Ok(())
    }
    .await;
    delete_nodes(&fixture.admin, &[node.as_str()]).await;
    fixture.finish(outcome).await
}

#[tokio::test(flavor = "multi_thread")]
async fn get_volume_health_per_volume_is_reported_and_recovery_clears_it() -> anyhow::Result<()> {
    let health = HealthFile::new()?;
    let fixture = Fixture::new("health-get", &repo_path(RBAC), &[&health.flag()]).await?;
    let outcome = async {
        let handle = fixture.driver.create_volume("data").await?;
        // Abnormal from the start, with a status of a later spec beside a known one.
        health.write(&json!({handle.clone(): [
            {"status": "INACCESSIBLE", "reason": "Offline", "message": "array unreachable"},
            {"status": "42", "reason": "Future", "message": "a later spec's status"},
        ]}))?;
        static_volume(&fixture, fixture.driver_name(), &handle, "data").await?;
        let start = fixture.env.audit_log()?.offset();
        let monitor = ChildProcess::spawn(
            fixture.env.binary(BINARY)?,
            monitor_args(&fixture, &fixture.driver.endpoint()),
        )?;
        wait_for_health(
            &fixture,
            "data",
            Some(json!([
                {"status": "Inaccessible", "reason": "Offline", "message": "array unreachable"},
            ])),
            &monitor,
        )
        .await?;
        wait_for_event(
            &fixture,
            "data",
            "Warning UnknownVolumeHealthCondition: The CSI driver reported volume health conditions of a type unknown to this monitor: 42 (reason: Future): a later spec's status",
            &monitor,
        )
        .await?;
        ensure!(
            fixture.driver.calls_to("ControllerListVolumeHealth") == 0
                && fixture.driver.calls_to("ControllerGetVolume") == 0,
            "GET_VOLUME_HEALTH only: per-volume ControllerGetVolumeHealth"
        );
        let status_patches = || -> anyhow::Result<Vec<u16>> {
            let user = fixture.username();
            Ok(fixture
                .env
                .audit_log()?
                .requests_since(start, |e| {
                    e.username == user
                        && e.verb == "patch"
                        && e.resource == "persistentvolumeclaims"
                        && e.subresource == "status"
                })?
                .iter()
                .map(|e| e.code.unwrap_or_default())
                .collect())
        };
        ensure!(status_patches()? == [200], "one status patch");

        health.write(&json!({}))?;
        wait_for_health(&fixture, "data", None, &monitor).await?;
        let gets = fixture.driver.calls_to("ControllerGetVolumeHealth");
        wait_until(
            "two more ControllerGetVolumeHealth calls",
            WAIT,
            || async {
                (fixture.driver.calls_to("ControllerGetVolumeHealth") >= gets + 2).then_some(())
            },
            || async { fixture.diagnostics(&[(BINARY, &monitor)]).await },
        )
        .await?;
        ensure!(
            status_patches()? == [200, 200],
            "the recovery is one more patch, and nothing is written while nothing changes"
        );
        let events = fixture.events_of("data").await?;
        ensure!(
            events.iter().all(|e| e.contains("UnknownVolumeHealthCondition")),
            "no VolumeCondition Events for a CSI 1.13 driver: {events:#?}"
        );
        fixture.assert_nothing_forbidden()?;
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_volume_condition_is_reported_on_its_claim_and_recovery_clears_it()
-> anyhow::Result<()> {
    let fixture = Fixture::new("health-abnormal", &repo_path(RBAC), &[]).await?;
    let outcome = async {
        // A CSI 1.12 driver (our in-process mock): GET_VOLUME and VOLUME_CONDITION only (the
        // per-volume workers and the legacy ControllerGetVolume conditions).
        let driver = MockCsiDriver::start().await?;
        driver.set_driver_name(fixture.driver_name());
        driver.set_plugin_capabilities([plugin_service_capability(
            csi::plugin_capability::service::Type::ControllerService,
        )]);
        driver.set_controller_capabilities([
            csi::controller_service_capability::rpc::Type::GetVolume,
            csi::controller_service_capability::rpc::Type::VolumeCondition,
        ]);
        let abnormal = Arc::new(AtomicBool::new(true));
        let flag = abnormal.clone();
        driver.handle(
            "ControllerGetVolume",
            move |req: csi::ControllerGetVolumeRequest| {
                let abnormal = flag.load(Ordering::SeqCst);
                Ok(csi::ControllerGetVolumeResponse {
                    volume: Some(csi::Volume {
                        volume_id: req.volume_id,
                        ..csi::Volume::default()
                    }),
                    status: Some(csi::controller_get_volume_response::VolumeStatus {
                        volume_condition: Some(csi::VolumeCondition {
                            abnormal,
                            message: if abnormal {
                                "disk 3 failed".to_string()
                            } else {
                                String::new()
                            },
                        }),
                        ..Default::default()
                    }),
                })
            },
        );
        static_volume(&fixture, fixture.driver_name(), "vol-1", "data").await?;
        let before = Timestamp::now();
        let start = fixture.env.audit_log()?.offset();
        let monitor = ChildProcess::spawn(
            fixture.env.binary(BINARY)?,
            monitor_args(&fixture, &driver.endpoint()),
        )?;
        wait_for_event(
            &fixture,
            "data",
            "Warning VolumeConditionAbnormal: disk 3 failed",
            &monitor,
        )
        .await?;
        let status_patches = || -> anyhow::Result<Vec<u16>> {
            let user = fixture.username();
            Ok(fixture
                .env
                .audit_log()?
                .requests_since(start, |e| {
                    e.username == user
                        && e.verb == "patch"
                        && e.resource == "persistentvolumeclaims"
                        && e.subresource == "status"
                })?
                .iter()
                .map(|e| e.code.unwrap_or_default())
                .collect())
        };
        wait_until(
            "the claim's status patched once",
            WAIT,
            || async { (status_patches().ok()?.len() == 1).then_some(()) },
            || async { fixture.diagnostics(&[(BINARY, &monitor)]).await },
        )
        .await?;
        ensure!(status_patches()? == [200], "the status patch succeeded");
        // What the API server kept: the v1.37 shape, one Degraded condition with the driver's
        // message, and when it appeared.
        let stored = stored_health_status(&fixture, "data")
            .await?
            .context("the API server stored no status.healthStatus on the claim")?;
        ensure!(
            stored["healthConditions"]
                == json!([{
                    "status": "Degraded",
                    "reason": "VolumeConditionAbnormal",
                    "message": "disk 3 failed",
                }]),
            "stored health status: {stored:#}"
        );
        let since: Timestamp = stored["lastTransitionTime"]
            .as_str()
            .context("no lastTransitionTime")?
            .parse()?;
        ensure!(
            since.as_second() >= before.as_second() && since <= Timestamp::now(),
            "lastTransitionTime {since} is not when the condition appeared (after {before})"
        );

        abnormal.store(false, Ordering::SeqCst);
        wait_for_event(
            &fixture,
            "data",
            "Normal VolumeConditionNormal: The Volume returns to the healthy state",
            &monitor,
        )
        .await?;
        wait_until(
            "the claim's health status cleared",
            WAIT,
            || async { (status_patches().ok()? == [200, 200]).then_some(()) },
            || async { fixture.diagnostics(&[(BINARY, &monitor)]).await },
        )
        .await?;
        let stored = stored_health_status(&fixture, "data").await?;
        ensure!(
            stored.is_none(),
            "recovery removes the claim's health status: {stored:#?}"
        );
        // Passes go on; the status is not written again while nothing changes.
        driver
            .wait_for_calls(
                "ControllerGetVolume",
                driver.calls_to("ControllerGetVolume").len() + 2,
                WAIT,
            )
            .await?;
        ensure!(
            status_patches()?.len() == 2,
            "no status write without a change"
        );
        fixture.assert_nothing_forbidden()?;
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

#[tokio::test(flavor = "multi_thread")]
async fn in_csi_sidecars_it_sweeps_and_a_driver_without_volume_condition_disables_it()
-> anyhow::Result<()> {
    let fixture = Fixture::new(
        "health-aio",
        &repo_path("sidecars/aio/deploy/rbac.yaml"),
        &["--list-volume-health"],
    )
    .await?;
    let outcome = async {
        let handle = fixture.driver.create_volume("data").await?;
        static_volume(&fixture, fixture.driver_name(), &handle, "data").await?;
        let address = format!("127.0.0.1:{}", csi_test_support::free_port());
        let mut args = fixture.common_args();
        args.extend([
            "--controllers=health-monitor".to_string(),
            "--health-monitor-list-volumes-interval=1s".to_string(),
            format!("--http-endpoint={address}"),
        ]);
        let sidecars = ChildProcess::spawn(fixture.env.binary("csi-sidecars")?, &args)?;
        wait_until(
            "two ControllerListVolumeHealth sweeps from csi-sidecars",
            WAIT,
            || async { (fixture.driver.calls_to("ControllerListVolumeHealth") >= 2).then_some(()) },
            || async { fixture.diagnostics(&[("csi-sidecars", &sidecars)]).await },
        )
        .await?;
        drop(sidecars);

        // A driver with neither the health RPCs nor VOLUME_CONDITION: the controller is
        // disabled, the process stays
        // (with another controller: one with nothing left to run exits).
        let driver = MockCsiDriver::start().await?;
        driver.set_driver_name(fixture.driver_name());
        driver.set_plugin_capabilities([plugin_service_capability(
            csi::plugin_capability::service::Type::ControllerService,
        )]);
        driver.set_controller_capabilities([
            csi::controller_service_capability::rpc::Type::ListVolumes,
        ]);
        args[0] = format!("--csi-address={}", driver.endpoint());
        for arg in &mut args {
            if arg.starts_with("--controllers=") {
                *arg = "--controllers=health-monitor,livenessprobe".to_string();
            }
        }
        let sidecars = ChildProcess::spawn(fixture.env.binary("csi-sidecars")?, &args)?;
        wait_until(
            "the disabled health-monitor on /healthz",
            WAIT,
            || async {
                let (_, body) = csi_test_support::http_get(&address, "/healthz?verbose")
                    .await
                    .ok()?;
                body.contains("does not implement VolumeCondition")
                    .then_some(body)
            },
            || async { sidecars.logs() },
        )
        .await?;
        ensure!(
            driver.calls_to("ListVolumes").is_empty(),
            "a disabled monitor asks nothing"
        );
        fixture.assert_nothing_forbidden()?;
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}
