//! Reliability: kube-apiserver is restarted while claims are provisioned, then etcd while
//! volumes are attached, snapshotted and expanded. Our controllers' watches must resume and the
//! work complete, with no relist storm: from the restart until the work is done, each user
//! (our `csi-sidecars` and our snapshot-controller) lists each resource at most once (the
//! relist after its watch broke), counted in the API server's audit log. The invariants hold
//! at the end of every round.
//!
//! This restarts processes of the control plane every test file shares: it is the only test of
//! its file (test binaries run one after another) and leaves the cluster ready.
//!
//! Fast variant (CI): one round of 4 claims. Long variant (`cargo xtask soak --scenario
//! apiserver-restart`): rounds until the soak's duration.

mod reliability;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use csi_e2e_support::{
    ControlPlaneProcess, InvariantReport, ScenarioOutcome, SoakMode, client_from_kubeconfig,
    wait_until,
};
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Api;
use kube::api::ListParams;
use reliability::Rig;
use reliability::workload::Round;

const CLAIMS: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn apiserver_and_etcd_restarted_mid_workload() -> anyhow::Result<()> {
    let mode = SoakMode::from_env()?;
    let mut rig = Rig::start("rel-apiserver", "sidecars/aio/deploy/rbac.yaml").await?;
    let outcome = run(&mut rig, &mode).await;
    rig.finish(outcome).await
}

/// Whether a request came from one of our binaries (not from this test's own client).
fn ours(user_agent: &str) -> bool {
    user_agent.starts_with("csi-") || user_agent.starts_with("snapshot-controller")
}

/// LIST requests per (user, resource) of our processes logged after `offset`.
fn lists_since(
    rig: &Rig,
    offset: u64,
    users: &[String],
) -> anyhow::Result<BTreeMap<(String, String), usize>> {
    let lists = rig.fixture.env.audit_log()?.requests_since(offset, |e| {
        e.verb == "list" && users.contains(&e.username) && ours(&e.user_agent)
    })?;
    let mut counts = BTreeMap::new();
    for list in lists {
        *counts
            .entry((list.username.clone(), list.resource_path()))
            .or_insert(0) += 1;
    }
    Ok(counts)
}

/// What a restart left for the checks: the audit log offsets before it and once the restarted
/// API server authorizes our ServiceAccount again, and a line for the report.
struct Restarted {
    before: u64,
    authorized: u64,
    line: String,
}

/// Restarts `process`, then waits until the API server authorizes the ServiceAccount of the
/// sidecars again: a restarted kube-apiserver answers ready before its RBAC authorizer has
/// loaded the roles, and refuses requests (403) until then.
async fn restart(rig: &Rig, process: ControlPlaneProcess) -> anyhow::Result<Restarted> {
    let audit = rig.fixture.env.audit_log()?;
    let before = audit.offset();
    // It waits for a process: not on the runtime's worker as if it were async.
    let took = tokio::task::block_in_place(|| rig.fixture.env.restart_control_plane(process))?;
    let account = client_from_kubeconfig(&rig.fixture.kubeconfig).await?;
    let pvs: Api<PersistentVolume> = Api::all(account);
    wait_until(
        "the restarted API server to authorize the sidecars' ServiceAccount",
        Duration::from_secs(60),
        || async {
            pvs.list(&ListParams::default().limit(1))
                .await
                .ok()
                .map(|_| ())
        },
        || rig.diagnostics(),
    )
    .await?;
    Ok(Restarted {
        before,
        authorized: audit.offset(),
        line: format!(
            "{} restarted (stopped, started, ready again in {:.1} s)",
            process.name(),
            took.as_secs_f64()
        ),
    })
}

/// The requests of `user` refused (403) outside the windows between a restart and the
/// authorizer having loaded RBAC again; and how many were refused inside them.
fn forbidden_outside(
    rig: &Rig,
    user: &str,
    windows: &[(u64, u64)],
) -> anyhow::Result<(Vec<String>, usize)> {
    let audit = rig.fixture.env.audit_log()?;
    let ids = |from: u64| -> anyhow::Result<BTreeSet<String>> {
        Ok(audit
            .requests_since(from, |e| e.username == user && e.code == Some(403))?
            .into_iter()
            .map(|e| e.audit_id)
            .collect())
    };
    let mut excused = BTreeSet::new();
    for (before, authorized) in windows {
        let after = ids(*authorized)?;
        excused.extend(ids(*before)?.into_iter().filter(|id| !after.contains(id)));
    }
    let refused: Vec<String> = audit
        .forbidden(user)?
        .iter()
        .filter(|e| !excused.contains(&e.audit_id))
        .map(ToString::to_string)
        .collect();
    Ok((refused, excused.len()))
}

/// Fails on any (user, resource) listed more than once since the restart; a line for the
/// report otherwise.
fn check_relists(
    rig: &Rig,
    process: ControlPlaneProcess,
    offset: u64,
    users: &[String],
) -> anyhow::Result<String> {
    let counts = lists_since(rig, offset, users)?;
    let storm: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((user, resource), n)| format!("{user} listed {resource} {n} times"))
        .collect();
    anyhow::ensure!(
        storm.is_empty(),
        "more than one LIST per resource after the {} restart: {storm:?}\nall: {counts:?}",
        process.name()
    );
    let total: usize = counts.values().sum();
    Ok(format!(
        "after the {} restart: {total} LIST requests over {} (user, resource) pairs, none \
         more than once",
        process.name(),
        counts.len()
    ))
}

async fn run(rig: &mut Rig, mode: &SoakMode) -> anyhow::Result<()> {
    // A lease that outlives an API server restart: this scenario is about watches, and a
    // leader that cannot renew exits (as upstream) — the leader scenario covers that.
    rig.start_replica_with(
        "replica-a",
        &[
            "--leader-election-lease-duration=120s",
            "--leader-election-renew-deadline=90s",
        ],
    )?;
    rig.wait_for_leader(None).await?;
    let users = vec![rig.fixture.username(), rig.snapshot_controller_user.clone()];
    let started = Instant::now();
    let mut outcome = ScenarioOutcome {
        scenario: "apiserver-restart".into(),
        description: format!(
            "One `csi-sidecars --controllers={}` and our snapshot-controller; per round \
             {CLAIMS} claims provisioned, attached, snapshotted, expanded and deleted. \
             kube-apiserver is restarted while claims are provisioned, etcd while volumes are \
             attached, snapshotted and expanded. LIST requests per user and resource are \
             counted in the audit log from each restart until the work is done.",
            reliability::CONTROLLERS
        ),
        ..ScenarioOutcome::default()
    };
    let mut invariants = InvariantReport::default();
    let mut windows = Vec::new();
    while mode.another_round(started, outcome.rounds) {
        let round = Round::new(&format!("r{}", outcome.rounds), CLAIMS);
        round.start_provision(rig).await?;
        let progress = round.progress(rig).await;
        let restarted = restart(rig, ControlPlaneProcess::ApiServer).await?;
        outcome
            .faults
            .push(format!("{} (at the restart: {progress})", restarted.line));
        let offset = restarted.before;
        windows.push((restarted.before, restarted.authorized));
        round.wait_provisioned(rig).await?;
        outcome.checks.push(check_relists(
            rig,
            ControlPlaneProcess::ApiServer,
            offset,
            &users,
        )?);
        round.start_use(rig).await?;
        let progress = round.progress(rig).await;
        let restarted = restart(rig, ControlPlaneProcess::Etcd).await?;
        outcome
            .faults
            .push(format!("{} (at the restart: {progress})", restarted.line));
        let offset = restarted.before;
        windows.push((restarted.before, restarted.authorized));
        round.wait_used(rig).await?;
        // Everything of the round exists: bound, attached once, snapshotted, nothing twice.
        invariants.add(&rig.invariants().check().await?);
        outcome.checks.push(check_relists(
            rig,
            ControlPlaneProcess::Etcd,
            offset,
            &users,
        )?);
        round.start_teardown(rig).await?;
        round.wait_gone(rig).await?;
        let report = rig.invariants().check().await?;
        invariants.add(&report);
        outcome.rounds += 1;
        if !report.is_clean() {
            break;
        }
    }
    let restarted: Vec<String> = rig
        .controllers
        .iter()
        .filter(|c| c.restarts > 0)
        .map(|c| c.name.clone())
        .collect();
    anyhow::ensure!(restarted.is_empty(), "{restarted:?} had to be restarted");
    outcome.invariants = invariants;
    outcome.elapsed = started.elapsed();
    let (refused, excused) = forbidden_outside(rig, &rig.fixture.username(), &windows)?;
    outcome.checks.push(format!(
        "nothing refused under the shipped RBAC, but for {excused} request(s) the restarted API \
         server refused before its authorizer had loaded the roles (retried)"
    ));
    outcome.write(mode)?;
    anyhow::ensure!(
        refused.is_empty(),
        "the API server refused these requests under the shipped RBAC:\n{}",
        refused.join("\n")
    );
    outcome.invariants.ensure_clean()
}
