//! Reliability baseline: steady churn without faults — two replicas of `csi-sidecars
//! --controllers=attacher,provisioner,resizer,snapshotter` and our snapshot-controller, rounds of
//! claims provisioned, attached, snapshotted, expanded and deleted — with the invariants at the
//! end of every round. The processes live for the whole run, so this is the scenario whose RSS
//! and open-fd series `cargo xtask soak` checks for growth.
//!
//! Fast variant (CI): one round of 4 claims. Long variant (`cargo xtask soak --scenario
//! churn`): rounds of 8 claims until the soak's duration.

mod reliability;

use std::time::Instant;

use csi_e2e_support::{InvariantReport, ScenarioOutcome, SoakMode};
use reliability::Rig;
use reliability::workload::Round;

#[tokio::test(flavor = "multi_thread")]
async fn steady_churn() -> anyhow::Result<()> {
    let mode = SoakMode::from_env()?;
    let mut rig = Rig::start("rel-churn", "sidecars/aio/deploy/rbac.yaml").await?;
    let outcome = run(&mut rig, &mode).await;
    rig.finish(outcome).await
}

async fn run(rig: &mut Rig, mode: &SoakMode) -> anyhow::Result<()> {
    let claims = if mode.is_soak() { 8 } else { 4 };
    rig.start_replica("replica-a")?;
    let leader = rig.wait_for_leader(None).await?;
    rig.start_replica("replica-b")?;
    let started = Instant::now();
    let mut outcome = ScenarioOutcome {
        scenario: "churn".into(),
        description: format!(
            "Steady churn, no faults: two replicas of `csi-sidecars --controllers={}` and our \
             snapshot-controller; per round {claims} claims provisioned, attached on two \
             nodes, snapshotted, expanded 1Gi → 2Gi and deleted.",
            reliability::CONTROLLERS
        ),
        ..ScenarioOutcome::default()
    };
    let mut invariants = InvariantReport::default();
    while mode.another_round(started, outcome.rounds) {
        let round = Round::new(&format!("r{}", outcome.rounds), claims);
        round.start_provision(rig).await?;
        round.wait_provisioned(rig).await?;
        round.start_use(rig).await?;
        round.wait_used(rig).await?;
        // Everything of the round exists: bound, attached once, snapshotted, nothing twice.
        invariants.add(&rig.invariants().check().await?);
        round.start_teardown(rig).await?;
        round.wait_gone(rig).await?;
        let report = rig.invariants().check().await?;
        invariants.add(&report);
        outcome.rounds += 1;
        if !report.is_clean() {
            break;
        }
    }
    let holder = rig.lease_holder().await;
    outcome.checks.push(format!(
        "{leader} led from the start and still leads: {}",
        holder.as_deref() == Some(leader.as_str())
    ));
    anyhow::ensure!(
        holder.as_deref() == Some(leader.as_str()),
        "the lease moved from {leader} to {holder:?} without a fault"
    );
    outcome.invariants = invariants;
    outcome.elapsed = started.elapsed();
    outcome.write(mode)?;
    rig.fixture.assert_nothing_forbidden()?;
    outcome.invariants.ensure_clean()
}
