//! API throttling: the provisioner (`csi-provisioner`, and `csi-sidecars` with the attacher and
//! the provisioner in one process sharing the budget) at `--kube-api-qps=1` with upstream's
//! default burst (10) gets through a batch of claims: every claim is Bound, the attacher
//! attaches and detaches a few of them, deleting the claims deletes every volume, nothing is
//! Forbidden, and the end-of-scenario invariants hold.
//!
//! At one request a second each claim costs about three requests to provision (the PV and two
//! Events) and as many to delete, so the batch decides the run time: CI runs
//! [`CI_CLAIMS`] claims; `CSI_E2E_THROTTLE_CLAIMS=100` (what `cargo xtask soak` passes) runs the
//! issue's 100.

mod checks;

use std::time::{Duration, Instant};

use csi_e2e_support::storage::StorageFixture as Fixture;
use csi_e2e_support::{create_pod_on_node, force_delete_pod, volume_attachments_of, wait_until};
use csi_test_support::ChildProcess;
use serde_json::json;

use checks::{check_invariants, repo_path, wait_all_deleted};

/// Claims per run in CI.
const CI_CLAIMS: usize = 30;
/// Claims of the batch that get a pod, so the attacher has work too.
const PODS: usize = 3;

fn claims() -> usize {
    std::env::var("CSI_E2E_THROTTLE_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_CLAIMS)
}

/// Enough for `claims` at one request a second, twice over.
fn deadline(claims: usize) -> Duration {
    Duration::from_secs(60 + 8 * claims as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn csi_provisioner_at_one_request_a_second() -> anyhow::Result<()> {
    let rbac = repo_path("sidecars/external-provisioner/deploy/rbac.yaml");
    let mut fixture = Fixture::new("throttle-provisioner", &rbac, &[]).await?;
    let outcome = throttled(&mut fixture, "csi-provisioner", &[], 0).await;
    fixture.finish(outcome).await
}

#[tokio::test(flavor = "multi_thread")]
async fn csi_sidecars_attacher_and_provisioner_at_one_request_a_second() -> anyhow::Result<()> {
    let rbac = repo_path("sidecars/aio/deploy/rbac.yaml");
    let mut fixture = Fixture::new("throttle-sidecars", &rbac, &[]).await?;
    let outcome = throttled(
        &mut fixture,
        "csi-sidecars",
        &["--controllers=attacher,provisioner"],
        PODS,
    )
    .await;
    fixture.finish(outcome).await
}

async fn throttled(
    fixture: &mut Fixture,
    binary: &str,
    extra: &[&str],
    pods: usize,
) -> anyhow::Result<()> {
    let claims = claims();
    let class = fixture.storage_class("throttled", json!({})).await?;
    let node = fixture.topology_node("node").await?;
    let mut args = fixture.common_args();
    args.push("--kube-api-qps=1".to_string());
    args.extend(extra.iter().map(ToString::to_string));
    let process = ChildProcess::spawn(fixture.env.binary(binary)?, &args)?;
    let processes = [(binary, &process)];

    let started = Instant::now();
    let names: Vec<String> = (0..claims).map(|i| format!("claim-{i:03}")).collect();
    for name in &names {
        fixture.claim(name, &class, json!({})).await?;
    }
    let pvs = fixture
        .wait_bound(&names, deadline(claims), &processes)
        .await?;
    let provisioned = started.elapsed();

    for (i, name) in names.iter().take(pods).enumerate() {
        create_pod_on_node(
            &fixture.admin,
            &fixture.ns.name,
            &format!("pod-{i}"),
            &node,
            name,
        )
        .await?;
    }
    for name in names.iter().take(pods) {
        let pv = pvs[name].metadata.name.clone().unwrap_or_default();
        wait_until(
            &format!("the VolumeAttachment of {pv} to be attached"),
            deadline(pods),
            || async {
                let vas = volume_attachments_of(&fixture.admin, &pv).await.ok()?;
                vas.iter()
                    .any(|va| va.status.as_ref().is_some_and(|s| s.attached))
                    .then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
    }
    for i in 0..pods {
        force_delete_pod(&fixture.admin, &fixture.ns.name, &format!("pod-{i}")).await?;
    }
    for name in names.iter().take(pods) {
        let pv = pvs[name].metadata.name.clone().unwrap_or_default();
        wait_until(
            &format!("the VolumeAttachment of {pv} to be gone"),
            deadline(pods),
            || async {
                volume_attachments_of(&fixture.admin, &pv)
                    .await
                    .ok()?
                    .is_empty()
                    .then_some(())
            },
            || fixture.diagnostics(&processes),
        )
        .await?;
    }

    let deleting = Instant::now();
    wait_all_deleted(fixture, &names, deadline(claims), &processes).await?;
    println!(
        "{binary} at --kube-api-qps=1: {claims} claims Bound in {provisioned:.1?}, {pods} \
         attached and detached, all deleted in {:.1?}",
        deleting.elapsed()
    );
    fixture.assert_nothing_forbidden()?;
    check_invariants(fixture).await?;
    drop(process);
    Ok(())
}
