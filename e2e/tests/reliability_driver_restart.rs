//! Reliability: the CSI driver process is killed (SIGKILL) and started again while the mixed
//! workload is in flight. Every controller process connected to it must exit as upstream's do
//! on a lost connection (csi-lib-utils' `ExitOnConnectionLoss`: exit code 1, "Lost connection
//! to CSI driver, exiting"); the test restarts them as the kubelet restarts a container, and the
//! work completes with the invariants holding. First with the standalone binaries
//! (`csi-provisioner`, `csi-attacher`, `csi-resizer`, `csi-snapshotter`), then with one
//! `csi-sidecars --controllers=attacher,provisioner,resizer,snapshotter`.
//!
//! The mock driver keeps its volumes, snapshots and publications across the restart
//! (`--state-file`), as a real driver's storage backend would.
//!
//! Fast variant (CI): one round of 4 claims per setup. Long variant (`cargo xtask soak
//! --scenario driver-restart`): rounds until the soak's duration, alternating the setups.

mod reliability;

use std::time::{Duration, Instant};

use anyhow::ensure;
use csi_e2e_support::{InvariantReport, ScenarioOutcome, SoakMode, has_exited, tail, wait_until};
use reliability::workload::Round;
use reliability::{Rig, USE_CALLS};

const CLAIMS: usize = 4;
/// What upstream's sidecars log (and write to the termination log) before they exit.
const LOST: &str = "Lost connection to CSI driver, exiting";
/// How soon after the driver is gone a controller must have exited: upstream exits at once
/// (klog.FlushAndExit), without a graceful shutdown; a generous deadline below the 30 s a
/// graceful shutdown may take.
const EXIT_WITHIN: Duration = Duration::from_secs(20);
const STANDALONE: [&str; 4] = [
    "csi-provisioner",
    "csi-attacher",
    "csi-resizer",
    "csi-snapshotter",
];

#[tokio::test(flavor = "multi_thread")]
async fn driver_killed_and_restarted_mid_workload() -> anyhow::Result<()> {
    let mode = SoakMode::from_env()?;
    let mut rig = Rig::start("rel-driver", "sidecars/aio/deploy/rbac.yaml").await?;
    let outcome = run(&mut rig, &mode).await;
    rig.finish(outcome).await
}

async fn start_setup(rig: &mut Rig, standalone: bool) -> anyhow::Result<()> {
    rig.controllers.clear();
    let mark = rig.fixture.driver.all_grpc_calls().len();
    if standalone {
        for binary in STANDALONE {
            rig.start_standalone(binary, &[])?;
        }
    } else {
        rig.start_replica("csi-sidecars")?;
    }
    wait_connected(rig, mark).await
}

/// Waits until every controller asked the driver its name (GetPluginInfo, the first call of
/// each) after the driver's call number `mark`: they are connected, so a killed driver is a
/// lost connection to each.
async fn wait_connected(rig: &Rig, mark: usize) -> anyhow::Result<()> {
    let wanted = rig.controllers.len();
    wait_until(
        "every controller to connect to the driver",
        Duration::from_secs(60),
        || async {
            let calls = rig.fixture.driver.all_grpc_calls();
            let connected = calls
                .iter()
                .skip(mark)
                .filter(|c| c.short_method() == "GetPluginInfo")
                .count();
            (connected >= wanted).then_some(())
        },
        || rig.diagnostics(),
    )
    .await
}

/// Kills the driver, waits until every controller exited as upstream's do, starts the driver
/// and the controllers again; a line for the report.
async fn restart_driver(rig: &mut Rig) -> anyhow::Result<String> {
    let killed = Instant::now();
    rig.fixture.sandbox.driver.kill().await?;
    // When each process was first seen exited.
    let mut exited: Vec<Option<Duration>> = vec![None; rig.controllers.len()];
    while exited.iter().any(Option::is_none) && killed.elapsed() < Duration::from_secs(60) {
        for (seen, c) in exited.iter_mut().zip(&rig.controllers) {
            if seen.is_none() && has_exited(&c.process) {
                *seen = Some(killed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if exited.iter().any(Option::is_none) {
        anyhow::bail!(
            "not every controller exited within 60 s of the lost driver connection\n{}",
            rig.diagnostics().await
        );
    }
    let mut codes = Vec::new();
    for c in &mut rig.controllers {
        let status = c.process.wait(Duration::from_secs(5)).await?;
        let logs = c.process.logs();
        ensure!(
            status.code() == Some(1) && logs.contains(LOST),
            "{} did not exit as upstream on the lost connection ({status}; {LOST:?} expected in \
             its log):\n{}",
            c.name,
            tail(&logs, 20)
        );
        codes.push(c.name.clone());
    }
    for (c, after) in rig.controllers.iter().zip(&exited) {
        let after = after.unwrap_or_default();
        ensure!(
            after <= EXIT_WITHIN,
            "{} exited {after:?} after the driver was killed; upstream exits at once:\n{}",
            c.name,
            tail(&c.process.logs(), 30)
        );
    }
    let codes: Vec<String> = codes
        .iter()
        .zip(&exited)
        .map(|(name, after)| {
            format!(
                "{name} exit 1 after {:.1} s",
                after.unwrap_or_default().as_secs_f64()
            )
        })
        .collect();
    let mark = rig.fixture.driver.all_grpc_calls().len();
    rig.fixture.sandbox.driver.restart().await?;
    let restarted = rig.restart_exited().await?;
    wait_connected(rig, mark).await?;
    Ok(format!(
        "driver SIGKILLed: {} ({LOST:?}); driver and {} restarted",
        codes.join(", "),
        restarted.join(", ")
    ))
}

async fn run(rig: &mut Rig, mode: &SoakMode) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut outcome = ScenarioOutcome {
        scenario: "driver-restart".into(),
        description: format!(
            "The mock CSI driver (state kept in a journal, as a backend would) is SIGKILLed and \
             restarted twice per round of {CLAIMS} claims: once the first CreateVolume reached it, \
             and once the first attach, snapshot or expansion did. Setups alternate per round: the \
             standalone {} and one `csi-sidecars --controllers={}`; our snapshot-controller \
             throughout.",
            STANDALONE.join(", "),
            reliability::CONTROLLERS
        ),
        ..ScenarioOutcome::default()
    };
    let mut invariants = InvariantReport::default();
    // The fast variant runs both setups once; the soak alternates them.
    let mut setups_done = 0;
    while setups_done < 2 || mode.another_round(started, outcome.rounds) {
        let standalone = setups_done % 2 == 0;
        setups_done += 1;
        start_setup(rig, standalone).await?;
        let round = Round::new(&format!("r{}", outcome.rounds), CLAIMS);
        let mark = rig.driver_calls();
        round.start_provision(rig).await?;
        rig.wait_for_driver_call(mark, &["CreateVolume"]).await?;
        let progress = round.progress(rig).await;
        let fault = restart_driver(rig).await?;
        outcome
            .faults
            .push(format!("{fault} (at the kill: {progress})"));
        round.wait_provisioned(rig).await?;
        let mark = rig.driver_calls();
        round.start_use(rig).await?;
        rig.wait_for_driver_call(mark, &USE_CALLS).await?;
        let progress = round.progress(rig).await;
        let fault = restart_driver(rig).await?;
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
        if !report.is_clean() || (!mode.is_soak() && setups_done >= 2) {
            break;
        }
    }
    outcome.invariants = invariants;
    outcome.elapsed = started.elapsed();
    outcome.write(mode)?;
    rig.fixture.assert_nothing_forbidden()?;
    outcome.invariants.ensure_clean()
}
