//! What the throttling, fault, secret and RBAC tests share: the end-of-scenario invariants of a
//! [`StorageFixture`], deleting a batch of claims and waiting until their volumes are gone, the
//! Events of cluster-scoped objects (PVs), and the search for secret values in logs.

// Each test file uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::ensure;
use csi_e2e_support::invariants::{InvariantChecker, InvariantReport};
use csi_e2e_support::storage::StorageFixture;
use csi_e2e_support::wait_until;
use csi_test_support::ChildProcess;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

/// A path in this repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The mock driver's own volumes, there from its start.
pub const BUILT_IN_VOLUMES: [&str; 3] = ["1", "2", "3"];

/// Fails unless the end-of-scenario invariants hold for the fixture's namespace and driver.
pub async fn check_invariants(fixture: &StorageFixture) -> anyhow::Result<()> {
    invariant_report(fixture).await?.ensure_clean()
}

/// The end-of-scenario invariants of the fixture's namespace and driver, printed.
pub async fn invariant_report(fixture: &StorageFixture) -> anyhow::Result<InvariantReport> {
    let report = InvariantChecker::new(&fixture.admin, &fixture.driver)
        .namespace(&fixture.ns.name)
        .check()
        .await?;
    println!("invariants of {}:\n{report}", fixture.ns.name);
    Ok(report)
}

/// Deletes the claims `names` and waits until no PV of the driver is left and the driver holds
/// only its built-in volumes.
pub async fn wait_all_deleted(
    fixture: &StorageFixture,
    names: &[String],
    timeout: Duration,
    processes: &[(&str, &ChildProcess)],
) -> anyhow::Result<()> {
    for name in names {
        fixture
            .claims()
            .delete(name, &DeleteParams::default())
            .await?;
    }
    let driver = fixture.driver_name().to_string();
    wait_until(
        &format!(
            "the PVs and volumes of {} deleted claims to be gone",
            names.len()
        ),
        timeout,
        || async {
            let pvs = fixture.pvs().list(&ListParams::default()).await.ok()?;
            let left = pvs.items.iter().any(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.csi.as_ref())
                    .is_some_and(|c| c.driver == driver)
            });
            let volumes = fixture.driver.list_volumes().await.ok()?;
            let leaked = volumes
                .iter()
                .any(|id| !BUILT_IN_VOLUMES.contains(&id.as_str()));
            (!left && !leaked).then_some(())
        },
        || fixture.diagnostics(processes),
    )
    .await
}

/// The Events of the cluster-scoped object `name` (they are written to `default`), as
/// `type reason: message`.
pub async fn cluster_object_events(
    fixture: &StorageFixture,
    kind: &str,
    name: &str,
) -> anyhow::Result<Vec<String>> {
    let events: Api<Event> = Api::namespaced(fixture.admin.clone(), "default");
    let list = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.kind={kind},involvedObject.name={name}"
        )))
        .await?;
    Ok(list
        .items
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.as_deref().unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            )
        })
        .collect())
}

/// Fails unless `haystack` contains none of `secrets` (nor their base64 forms); says where.
pub fn ensure_no_secret(what: &str, haystack: &str, secrets: &[String]) -> anyhow::Result<()> {
    use base64::Engine as _;
    for secret in secrets {
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        for needle in [secret.as_str(), encoded.as_str()] {
            let lines: Vec<&str> = haystack.lines().filter(|l| l.contains(needle)).collect();
            ensure!(
                lines.is_empty(),
                "{what} logged a secret value ({needle:?}) in {} lines, e.g.:\n{}",
                lines.len(),
                lines.iter().take(5).copied().collect::<Vec<_>>().join("\n")
            );
        }
    }
    Ok(())
}
