//! Reliability: the leader of two `csi-sidecars --controllers=attacher,provisioner,resizer,
//! snapshotter` replicas is killed (SIGKILL) twice while the mixed workload is in flight —
//! once while claims are being provisioned, once while volumes are being attached, snapshotted
//! and expanded. Each time a new replica is started (two again) and the other one must take
//! the lease over and finish the work; at the end of every round nothing may be leaked, stuck
//! or created twice (the invariants), and the ServiceAccount of the shipped RBAC was refused
//! nothing.
//!
//! Fast variant (CI): one round of 6 claims. Long variant (`cargo xtask soak --scenario
//! leader`): rounds until the soak's duration, a leader killed in every round.

mod reliability;

use std::time::Instant;

use csi_e2e_support::{InvariantReport, ScenarioOutcome, SoakMode};
use reliability::workload::Round;
use reliability::{Rig, USE_CALLS};

const CLAIMS: usize = 6;

#[tokio::test(flavor = "multi_thread")]
async fn leader_killed_twice_mid_workload() -> anyhow::Result<()> {
    let mode = SoakMode::from_env()?;
    let mut rig = Rig::start("rel-leader", "sidecars/aio/deploy/rbac.yaml").await?;
    let outcome = run(&mut rig, &mode).await;
    rig.finish(outcome).await
}

async fn run(rig: &mut Rig, mode: &SoakMode) -> anyhow::Result<()> {
    rig.start_replica("replica-1")?;
    let first = rig.wait_for_leader(None).await?;
    rig.start_replica("replica-2")?;
    let started = Instant::now();
    let mut outcome = ScenarioOutcome {
        scenario: "leader".into(),
        description: format!(
            "Two replicas of `csi-sidecars --controllers={}` (one lease, {} s) and our \
             snapshot-controller; per round {CLAIMS} claims provisioned, attached on two nodes, \
             snapshotted and expanded 1Gi → 2Gi, then deleted. The leader is SIGKILLed once the \
             first CreateVolume of the round reached the driver, and again once the first \
             attach, snapshot or expansion did; a new replica is started each time.",
            reliability::CONTROLLERS,
            reliability::LEASE_DURATION.as_secs()
        ),
        checks: vec![format!("{first} led first")],
        ..ScenarioOutcome::default()
    };
    let mut invariants = InvariantReport::default();
    let mut replicas = 2;
    let mut next_name = || {
        replicas += 1;
        format!("replica-{replicas}")
    };
    while mode.another_round(started, outcome.rounds) {
        let tag = format!("r{}", outcome.rounds);
        let round = Round::new(&tag, CLAIMS);
        let mark = rig.driver_calls();
        round.start_provision(rig).await?;
        rig.wait_for_driver_call(mark, &["CreateVolume"]).await?;
        let progress = round.progress(rig).await;
        let fault = rig.kill_leader(&next_name()).await?;
        outcome
            .faults
            .push(format!("{fault} (at the kill: {progress})"));
        round.wait_provisioned(rig).await?;
        let mark = rig.driver_calls();
        round.start_use(rig).await?;
        rig.wait_for_driver_call(mark, &USE_CALLS).await?;
        let progress = round.progress(rig).await;
        let fault = rig.kill_leader(&next_name()).await?;
        outcome
            .faults
            .push(format!("{fault} (at the kill: {progress})"));
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
    outcome.invariants = invariants;
    outcome.elapsed = started.elapsed();
    outcome.write(mode)?;
    rig.fixture.assert_nothing_forbidden()?;
    outcome.invariants.ensure_clean()
}
