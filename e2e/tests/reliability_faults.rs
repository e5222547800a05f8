//! A driver that fails or hangs past `--timeout` on a share of its calls: the sidecars talk to
//! the mock driver through a [`FaultProxy`] whose seeded plan fails some calls with a gRPC code
//! and holds others back longer than the sidecar's `--timeout` (the held calls still reach the
//! driver later, as a slow driver finishes its work). Every claim is still provisioned once,
//! attached, detached and deleted; failed attempts are retried with a growing backoff; the
//! failures are Events with upstream's reasons; and the end-of-scenario invariants hold.

mod checks;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use csi_e2e_support::storage::StorageFixture as Fixture;
use csi_e2e_support::{
    Fault, FaultPlan, FaultProxy, InvariantReport, ProxyCall, ScenarioOutcome, SoakMode,
    create_pod_on_node, force_delete_pod, volume_attachments_of, wait_until,
};
use csi_proto::csi::v1::{CreateVolumeRequest, DeleteVolumeRequest};
use csi_test_support::ChildProcess;
use serde_json::json;
use tonic::Code;

use checks::{
    check_invariants, cluster_object_events, invariant_report, repo_path, wait_all_deleted,
};

/// Claims of the provisioner run in CI; `CSI_E2E_FAULT_CLAIMS` sets another number (a soak
/// run's).
const CI_CLAIMS: usize = 16;

fn claims() -> usize {
    std::env::var("CSI_E2E_FAULT_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_CLAIMS)
}

/// How long the Events of a claim may take after it is Bound.
const WAIT_EVENTS: Duration = Duration::from_secs(30);
/// How long a faulty run may take.
const WAIT_FAULTS: Duration = Duration::from_secs(180);
/// The sidecars' `--timeout`, and how long a held call is held (longer).
const TIMEOUT: &str = "--timeout=2s";
const HELD: Duration = Duration::from_secs(4);
/// `--retry-interval-start`'s default: the first backoff of a failed claim.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

fn args(fixture: &Fixture, proxy: &FaultProxy, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        format!("--csi-address={}", proxy.endpoint()),
        format!("--kubeconfig={}", fixture.kubeconfig.display()),
        "--leader-election".to_string(),
        format!("--leader-election-namespace={}", fixture.ns.name),
        TIMEOUT.to_string(),
    ];
    args.extend(extra.iter().map(ToString::to_string));
    args
}

/// The calls of one volume (by `key`), each with whether it failed.
fn by_key(
    calls: &[ProxyCall],
    key: impl Fn(&ProxyCall) -> Option<String>,
) -> BTreeMap<String, Vec<ProxyCall>> {
    let mut map: BTreeMap<String, Vec<ProxyCall>> = BTreeMap::new();
    for call in calls {
        if let Some(key) = key(call) {
            map.entry(key).or_default().push(call.clone());
        }
    }
    map
}

/// After the k-th failure in a row (k ≥ 2) of one volume, the next call waits at least the
/// first step of the backoff (1 s) and, when `exponential`, the k-th (1 s, 2 s, 4 s, ...); a
/// fifth less for timer slack. The first retry is not checked: an update of the object may
/// queue it at once. In the attacher's queue, as in client-go's workqueue, the delayed re-add
/// of an earlier failure may still be pending when a later failure schedules its own, so the
/// attacher's retries are only checked against the first step.
fn check_backoff(
    what: &str,
    calls: &BTreeMap<String, Vec<ProxyCall>>,
    exponential: bool,
) -> anyhow::Result<usize> {
    let mut checked = 0;
    for (key, calls) in calls {
        let mut failures = 0u32;
        for pair in calls.windows(2) {
            if pair[0].fault.is_none() {
                failures = 0;
                continue;
            }
            failures += 1;
            if failures < 2 {
                continue;
            }
            let gap = pair[1].at.duration_since(pair[0].at);
            let step = if exponential {
                2u32.pow(failures - 1)
            } else {
                1
            };
            let minimum = FIRST_BACKOFF * step * 4 / 5;
            ensure!(
                gap >= minimum,
                "{what} {key}: retry {failures} came {gap:?} after the failure, expected at \
                 least {minimum:?}"
            );
            checked += 1;
        }
    }
    Ok(checked)
}

#[tokio::test(flavor = "multi_thread")]
async fn csi_provisioner_through_a_failing_and_hanging_driver() -> anyhow::Result<()> {
    let claims = claims();
    let rbac = repo_path("sidecars/external-provisioner/deploy/rbac.yaml");
    let mut fixture = Fixture::new("faults-provisioner", &rbac, &[]).await?;
    let outcome = async {
        // Seed 15 fails the 5th CreateVolume and holds the 13th, and fails the first
        // DeleteVolume: every run meets each fault.
        let plan = FaultPlan::new(15)
            .fail("CreateVolume", 25, Code::Internal)
            .hang("CreateVolume", 15, HELD)
            .fail("DeleteVolume", 25, Code::Unavailable)
            .hang("DeleteVolume", 10, HELD);
        let proxy = FaultProxy::start(fixture.driver.socket(), plan).await?;
        let class = fixture.storage_class("faults", json!({})).await?;
        let process = ChildProcess::spawn(
            fixture.env.binary("csi-provisioner")?,
            args(&fixture, &proxy, &[]),
        )?;
        let processes = [("csi-provisioner", &process)];
        let mode = SoakMode::from_env()?;
        let started = Instant::now();
        let mut outcome = ScenarioOutcome {
            scenario: "faulty-driver".into(),
            description: format!(
                "`csi-provisioner --timeout=2s` through a fault proxy: CreateVolume fails \
                 (Internal) on 25 % of calls and is held {HELD:?} on 15 %, DeleteVolume fails \
                 (Unavailable) on 25 % and is held on 10 %; each round {claims} claims \
                 provisioned and deleted."
            ),
            ..ScenarioOutcome::default()
        };
        let mut invariants = InvariantReport::default();
        let mut failed_deletes = 0;
        while mode.another_round(started, outcome.rounds) {
            let round = outcome.rounds;
            let names: Vec<String> = (0..claims)
                .map(|i| format!("r{round}-claim-{i:03}"))
                .collect();
            for name in &names {
                fixture.claim(name, &class, json!({})).await?;
            }
            let pvs = fixture.wait_bound(&names, WAIT_FAULTS, &processes).await?;

            // The plan hit some calls of both kinds, and each claim was retried until it worked.
            let creates = by_key(&proxy.calls_to("CreateVolume"), |c| {
                c.decode::<CreateVolumeRequest>().ok().map(|r| r.name)
            });
            let failed = |calls: &[ProxyCall], f: fn(&Fault) -> bool| {
                calls.iter().any(|c| c.fault.as_ref().is_some_and(f))
            };
            let failing: Vec<&String> = creates
                .iter()
                .filter(|(_, c)| failed(c, |f| matches!(f, Fault::Fail(_))))
                .map(|(k, _)| k)
                .collect();
            let hanging: Vec<&String> = creates
                .iter()
                .filter(|(_, c)| failed(c, |f| matches!(f, Fault::Hang(_))))
                .map(|(k, _)| k)
                .collect();
            ensure!(
                !failing.is_empty() && !hanging.is_empty(),
                "the plan failed CreateVolume of {failing:?} and held {hanging:?}"
            );
            let retries = check_backoff("CreateVolume", &creates, true)?;

            // Each failure is a Warning ProvisioningFailed on the claim, with the driver's code,
            // and the success a Normal ProvisioningSucceeded (Events are written in the
            // background: wait for them).
            for (claim, pv) in &pvs {
                let volume = format!("pvc-{}", pv_claim_uid(pv)?);
                let mut wanted = vec![("Normal ProvisioningSucceeded", "")];
                for (hit, code) in [
                    (failing.contains(&&volume), "code = Internal"),
                    (hanging.contains(&&volume), "code = DeadlineExceeded"),
                ] {
                    if hit {
                        wanted.push(("Warning ProvisioningFailed", code));
                    }
                }
                wait_until(
                    &format!("claim {claim}: the Events {wanted:?}"),
                    WAIT_EVENTS,
                    || async {
                        let events = fixture.events_of(claim).await.ok()?;
                        wanted
                            .iter()
                            .all(|(kind, code)| {
                                events
                                    .iter()
                                    .any(|e| e.starts_with(kind) && e.contains(code))
                            })
                            .then_some(())
                    },
                    || fixture.diagnostics(&processes),
                )
                .await?;
            }
            invariants.add(&invariant_report(&fixture).await?);

            // Deleting: DeleteVolume fails and hangs too; every volume still goes, once.
            wait_all_deleted(&fixture, &names, WAIT_FAULTS, &processes).await?;
            let deletes = by_key(&proxy.calls_to("DeleteVolume"), |c| {
                c.decode::<DeleteVolumeRequest>().ok().map(|r| r.volume_id)
            });
            let delete_retries = check_backoff("DeleteVolume", &deletes, true)?;
            let handles: BTreeMap<String, String> = pvs
                .values()
                .map(|pv| {
                    let handle = pv.spec.clone().unwrap_or_default().csi.unwrap_or_default();
                    (
                        handle.volume_handle,
                        pv.metadata.name.clone().unwrap_or_default(),
                    )
                })
                .collect();
            for (handle, calls) in &deletes {
                // Earlier rounds' volumes were checked in their round.
                let Some(pv) = handles.get(handle) else {
                    continue;
                };
                if !failed(calls, |f| matches!(f, Fault::Fail(_))) {
                    continue;
                }
                failed_deletes += 1;
                wait_until(
                    &format!("PV {pv}: a Warning VolumeFailedDelete with code = Unavailable"),
                    WAIT_EVENTS,
                    || async {
                        let events = cluster_object_events(&fixture, "PersistentVolume", pv)
                            .await
                            .ok()?;
                        events
                            .iter()
                            .any(|e| {
                                e.starts_with("Warning VolumeFailedDelete")
                                    && e.contains("code = Unavailable")
                            })
                            .then_some(())
                    },
                    || async {
                        format!(
                            "{:?}",
                            cluster_object_events(&fixture, "PersistentVolume", pv).await
                        )
                    },
                )
                .await?;
            }
            println!(
                "CreateVolume: {} calls for {claims} claims ({} failed, {} held), {retries} \
             retries checked for backoff; DeleteVolume: {} calls ({} failed or held), \
             {delete_retries} retries checked",
                proxy.calls_to("CreateVolume").len(),
                proxy.faults_of("CreateVolume"),
                hanging.len(),
                proxy.calls_to("DeleteVolume").len(),
                proxy.faults_of("DeleteVolume"),
            );
            let check = format!(
                "round {round}: CreateVolume {} calls so far ({} failed or held), {retries} \
             retries at least the backoff apart; DeleteVolume {} calls ({} failed or held), \
             {delete_retries} retries checked",
                proxy.calls_to("CreateVolume").len(),
                proxy.faults_of("CreateVolume"),
                proxy.calls_to("DeleteVolume").len(),
                proxy.faults_of("DeleteVolume"),
            );
            outcome.checks.push(check);
            let report = invariant_report(&fixture).await?;
            invariants.add(&report);
            report.ensure_clean()?;
            outcome.rounds += 1;
        }
        ensure!(failed_deletes > 0, "the plan failed no DeleteVolume");
        outcome.faults = vec![format!(
            "{} of {} CreateVolume and {} of {} DeleteVolume calls failed or held",
            proxy.faults_of("CreateVolume"),
            proxy.calls_to("CreateVolume").len(),
            proxy.faults_of("DeleteVolume"),
            proxy.calls_to("DeleteVolume").len(),
        )];
        outcome.invariants = invariants;
        outcome.elapsed = started.elapsed();
        outcome.write(&mode)?;
        fixture.assert_nothing_forbidden()?;
        check_invariants(&fixture).await?;
        drop(process);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

fn pv_claim_uid(pv: &k8s_openapi::api::core::v1::PersistentVolume) -> anyhow::Result<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .and_then(|r| r.uid.clone())
        .context("a bound PV names its claim's UID")
}

#[tokio::test(flavor = "multi_thread")]
async fn csi_sidecars_attach_and_detach_through_a_failing_and_hanging_driver() -> anyhow::Result<()>
{
    const CLAIMS: usize = 4;
    let rbac = repo_path("sidecars/aio/deploy/rbac.yaml");
    let mut fixture = Fixture::new("faults-sidecars", &rbac, &[]).await?;
    let outcome = async {
        // Seed 7 fails the third publish and holds the fourth, and fails the first unpublish
        // and holds the second: every run meets both faults, whatever the retries.
        let plan = FaultPlan::new(7)
            .fail("ControllerPublishVolume", 35, Code::Internal)
            .hang("ControllerPublishVolume", 15, HELD)
            .fail("ControllerUnpublishVolume", 35, Code::Unavailable)
            .hang("ControllerUnpublishVolume", 15, HELD);
        let proxy = FaultProxy::start(fixture.driver.socket(), plan).await?;
        let class = fixture.storage_class("faults", json!({})).await?;
        let node = fixture.topology_node("node").await?;
        let process = ChildProcess::spawn(
            fixture.env.binary("csi-sidecars")?,
            args(&fixture, &proxy, &["--controllers=attacher,provisioner"]),
        )?;
        let processes = [("csi-sidecars", &process)];
        let names: Vec<String> = (0..CLAIMS).map(|i| format!("claim-{i}")).collect();
        for name in &names {
            fixture.claim(name, &class, json!({})).await?;
        }
        let pvs = fixture.wait_bound(&names, WAIT_FAULTS, &processes).await?;
        for (i, name) in names.iter().enumerate() {
            create_pod_on_node(
                &fixture.admin,
                &fixture.ns.name,
                &format!("pod-{i}"),
                &node,
                name,
            )
            .await?;
        }
        for pv in pvs.values() {
            let pv = pv.metadata.name.clone().unwrap_or_default();
            wait_until(
                &format!("the VolumeAttachment of {pv} to be attached"),
                WAIT_FAULTS,
                || async {
                    let vas = volume_attachments_of(&fixture.admin, &pv).await.ok()?;
                    match vas.as_slice() {
                        [va] => va.status.as_ref().is_some_and(|s| s.attached).then_some(()),
                        _ => None,
                    }
                },
                || fixture.diagnostics(&processes),
            )
            .await?;
        }
        ensure!(
            proxy.faults_of("ControllerPublishVolume") > 0,
            "the plan failed or held no ControllerPublishVolume"
        );
        for i in 0..CLAIMS {
            force_delete_pod(&fixture.admin, &fixture.ns.name, &format!("pod-{i}")).await?;
        }
        for pv in pvs.values() {
            let pv = pv.metadata.name.clone().unwrap_or_default();
            wait_until(
                &format!("the VolumeAttachment of {pv} to be detached and gone"),
                WAIT_FAULTS,
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
        ensure!(
            proxy.faults_of("ControllerUnpublishVolume") > 0,
            "the plan failed or held no ControllerUnpublishVolume"
        );
        let key = |c: &ProxyCall| {
            use csi_proto::csi::v1::{
                ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest,
            };
            match c.short_method() {
                "ControllerPublishVolume" => c
                    .decode::<ControllerPublishVolumeRequest>()
                    .ok()
                    .map(|r| format!("publish {}", r.volume_id)),
                _ => c
                    .decode::<ControllerUnpublishVolumeRequest>()
                    .ok()
                    .map(|r| format!("unpublish {}", r.volume_id)),
            }
        };
        let publishes = by_key(
            &[
                proxy.calls_to("ControllerPublishVolume"),
                proxy.calls_to("ControllerUnpublishVolume"),
            ]
            .concat(),
            key,
        );
        let retries = check_backoff("attach", &publishes, false)?;
        println!(
            "ControllerPublishVolume: {} calls ({} faults); ControllerUnpublishVolume: {} calls \
             ({} faults); {retries} retries checked for backoff",
            proxy.calls_to("ControllerPublishVolume").len(),
            proxy.faults_of("ControllerPublishVolume"),
            proxy.calls_to("ControllerUnpublishVolume").len(),
            proxy.faults_of("ControllerUnpublishVolume"),
        );
        wait_all_deleted(&fixture, &names, WAIT_FAULTS, &processes).await?;
        fixture.assert_nothing_forbidden()?;
        check_invariants(&fixture).await?;
        drop(process);
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}
