//! API throttling: the provisioner (`csi-provisioner`, and `csi-sidecars` with the attacher and
//! the provisioner in one process sharing the budget) at `--kube-api-qps=1` with upstream's
//! default burst (10) gets through a batch of claims: every claim is Bound, the attacher
//! attaches and detaches a few of them, deleting the claims deletes every volume, nothing is
//! Forbidden, and the end-of-scenario invariants hold.
//!
//! At one request a second each claim costs about three requests to provision (the PV and two
//! Events) and as many to delete, so the batch decides the run time: CI runs one round of
//! [`CI_CLAIMS`] claims; `cargo xtask soak --scenario throttling` runs rounds of the 100
//! (`CSI_E2E_THROTTLE_CLAIMS` sets another number) for its duration, with the invariants after
//! each round.

mod checks;

use std::time::{Duration, Instant};

use csi_e2e_support::storage::StorageFixture as Fixture;
use csi_e2e_support::{
    InvariantReport, ScenarioOutcome, SoakMode, create_pod_on_node, force_delete_pod,
    volume_attachments_of, wait_until,
};
use csi_test_support::ChildProcess;
use serde_json::json;

use checks::{invariant_report, repo_path, wait_all_deleted};

/// Claims per run in CI.
const CI_CLAIMS: usize = 30;
/// Claims per round in a soak run (`cargo xtask soak --scenario throttling`).
const SOAK_CLAIMS: usize = 100;
/// Claims of the batch that get a pod, so the attacher has work too.
const PODS: usize = 3;

/// `CSI_E2E_THROTTLE_CLAIMS`, else the 100 in a soak run and [`CI_CLAIMS`] in CI.
fn claims(mode: &SoakMode) -> usize {
    std::env::var("CSI_E2E_THROTTLE_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if mode.is_soak() {
            SOAK_CLAIMS
        } else {
            CI_CLAIMS
        })
}

/// Enough for `claims` at one request a second, twice over.
fn deadline(claims: usize) -> Duration {
    Duration::from_secs(60 + 8 * claims as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn csi_provisioner_at_one_request_a_second() -> anyhow::Result<()> {
    let rbac = repo_path("sidecars/external-provisioner/deploy/rbac.yaml");
    let mut fixture = Fixture::new("throttle-provisioner", &rbac, &[]).await?;
    let outcome = throttled(
        &mut fixture,
        "csi-provisioner",
        &[],
        0,
        ScenarioOutcome {
            scenario: "throttling-provisioner".into(),
            ..ScenarioOutcome::default()
        },
    )
    .await;
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
        ScenarioOutcome {
            scenario: "throttling".into(),
            ..ScenarioOutcome::default()
        },
    )
    .await;
    fixture.finish(outcome).await
}

async fn throttled(
    fixture: &mut Fixture,
    binary: &str,
    extra: &[&str],
    pods: usize,
    mut outcome: ScenarioOutcome,
) -> anyhow::Result<()> {
    let mode = SoakMode::from_env()?;
    let claims = claims(&mode);
    let class = fixture.storage_class("throttled", json!({})).await?;
    let node = fixture.topology_node("node").await?;
    let mut args = fixture.common_args();
    args.push("--kube-api-qps=1".to_string());
    args.extend(extra.iter().map(ToString::to_string));
    let process = ChildProcess::spawn(fixture.env.binary(binary)?, &args)?;
    let processes = [(binary, &process)];

    let started = Instant::now();
    outcome.description = format!(
        "`{binary} {}` at `--kube-api-qps=1` (burst 10): each round {claims} claims \
         provisioned, {pods} of them attached to pods and detached, then all deleted.",
        extra.join(" ")
    );
    let mut invariants = InvariantReport::default();
    while mode.another_round(started, outcome.rounds) {
        let round = format!("r{}", outcome.rounds);
        let check = one_round(fixture, &processes, &class, &node, &round, claims, pods).await?;
        println!("{binary} at --kube-api-qps=1, round {round}: {check}");
        outcome.checks.push(format!("round {round}: {check}"));
        let report = invariant_report(fixture).await?;
        invariants.add(&report);
        report.ensure_clean()?;
        outcome.rounds += 1;
    }
    outcome.invariants = invariants;
    outcome.elapsed = started.elapsed();
    outcome.write(&mode)?;
    fixture.assert_nothing_forbidden()?;
    drop(process);
    Ok(())
}

/// One batch: `claims` claims named `<round>-claim-…` Bound, the first `pods` attached and
/// detached, all deleted; says how long each part took.
async fn one_round(
    fixture: &Fixture,
    processes: &[(&str, &ChildProcess)],
    class: &str,
    node: &str,
    round: &str,
    claims: usize,
    pods: usize,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let names: Vec<String> = (0..claims)
        .map(|i| format!("{round}-claim-{i:03}"))
        .collect();
    for name in &names {
        fixture.claim(name, class, json!({})).await?;
    }
    let pvs = fixture
        .wait_bound(&names, deadline(claims), processes)
        .await?;
    let provisioned = started.elapsed();

    let pod = |i: usize| format!("{round}-pod-{i}");
    for (i, name) in names.iter().take(pods).enumerate() {
        create_pod_on_node(&fixture.admin, &fixture.ns.name, &pod(i), node, name).await?;
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
            || fixture.diagnostics(processes),
        )
        .await?;
    }
    for i in 0..pods {
        force_delete_pod(&fixture.admin, &fixture.ns.name, &pod(i)).await?;
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
            || fixture.diagnostics(processes),
        )
        .await?;
    }

    let deleting = Instant::now();
    wait_all_deleted(fixture, &names, deadline(claims), processes).await?;
    Ok(format!(
        "{claims} claims Bound in {provisioned:.1?}, {pods} attached and detached, all \
         deleted in {:.1?}",
        deleting.elapsed()
    ))
}
