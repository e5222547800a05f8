//! The Events an election records on its Lease, against a [`FakeRecorder`]: client-go's
//! `testReleaseOnCancellation` expectations and `LeaseLock` `TestRecordEvent*`, then ours.

use std::sync::Arc;
use std::time::Duration;

use csi_kube::EventType;
use csi_test_support::FakeRecorder;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::{Config, EVENT_REASON, LeaderElector, MemoryLeaseStore, Outcome};

/// client-go's test lock: namespace `foo`, name `bar`, identity `baz`.
const NS: &str = "foo";
const LEASE: &str = "bar";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn elector(
    store: &MemoryLeaseStore,
    mut config: Config,
    recorder: &Arc<FakeRecorder>,
) -> LeaderElector<MemoryLeaseStore> {
    config.namespace = NS.into();
    LeaderElector::with_store(store.clone(), config)
        .unwrap()
        .for_paused_time()
        .with_events(recorder.clone())
}

fn lines(recorder: &FakeRecorder) -> Vec<String> {
    recorder.all().iter().map(|e| e.line()).collect()
}

/// Runs `elector` until `shutdown`, its work waiting for the end of leadership.
fn spawn(
    mut elector: LeaderElector<MemoryLeaseStore>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<Outcome> {
    tokio::spawn(async move {
        elector
            .run(shutdown, |leading| async move { leading.cancelled().await })
            .await
    })
}

/// client-go `testReleaseOnCancellation`: with release on cancel, an election cancelled while
/// a renewal hangs (on its update) or fails (on its get) releases the lease and records that
/// it became leader, then that it stopped leading.
#[tokio::test(start_paused = true)]
async fn release_on_cancellation_records_both_events() {
    for (name, stall) in [
        ("release acquired lock on cancellation of update", true),
        ("release acquired lock on cancellation of get", false),
    ] {
        let start = Instant::now();
        let store = MemoryLeaseStore::new();
        let recorder = Arc::new(FakeRecorder::default());
        let mut config = Config::new(LEASE, NS, "baz");
        config.release_on_cancel = true;
        let shutdown = CancellationToken::new();
        let run = spawn(elector(&store, config, &recorder), shutdown.clone());
        sleep_until(start + secs(4.0)).await;
        assert_eq!(
            lines(&recorder),
            ["Normal LeaderElection baz became leader"],
            "{name}"
        );
        if stall {
            store.set_stalled(true);
        } else {
            store.set_unavailable(true);
        }
        // The renewal at 5 hangs (or fails); the API server is back before the cancellation,
        // for the release (the hung request stays hung until it is dropped).
        sleep_until(start + secs(5.5)).await;
        store.set_stalled(false);
        store.set_unavailable(false);
        sleep(secs(0.2)).await;
        shutdown.cancel();
        assert_eq!(run.await.unwrap(), Outcome::ShutDown, "{name}");
        let released = store.lease(NS, LEASE).unwrap().spec.unwrap();
        assert_eq!(released.holder_identity.as_deref(), Some(""), "{name}");
        assert_eq!(
            lines(&recorder),
            [
                "Normal LeaderElection baz became leader",
                "Normal LeaderElection baz stopped leading",
            ],
            "{name}"
        );
    }
}

/// client-go `leaselock_test.go` `TestRecordEventSuccess`: one Event, `<identity> <message>`,
/// on the Lease; and what else client-go's recorder is given: the Lease's reference as it was
/// written (kind, API version, namespace, name, resource version).
#[tokio::test(start_paused = true)]
async fn record_event_success() {
    let store = MemoryLeaseStore::new();
    let recorder = Arc::new(FakeRecorder::default());
    let shutdown = CancellationToken::new();
    let run = spawn(
        elector(&store, Config::new(LEASE, NS, "baz"), &recorder),
        shutdown.clone(),
    );
    sleep(secs(0.1)).await;
    let events = recorder.all();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_type, EventType::Normal);
    assert_eq!(event.reason, EVENT_REASON);
    assert_eq!(event.message, "baz became leader");
    assert_eq!(event.object.kind.as_deref(), Some("Lease"));
    assert_eq!(
        event.object.api_version.as_deref(),
        Some("coordination.k8s.io/v1")
    );
    assert_eq!(event.object.namespace.as_deref(), Some(NS));
    assert_eq!(event.object.name.as_deref(), Some(LEASE));
    // Recorded right after the lease was created, before the first renewal.
    assert_eq!(event.object.resource_version.as_deref(), Some("1"));
    shutdown.cancel();
    assert_eq!(run.await.unwrap(), Outcome::ShutDown);
}

/// client-go `leaselock_test.go` `TestRecordEventNilRecorder`: without a recorder, leading
/// and stopping record nothing and do not fail.
#[tokio::test(start_paused = true)]
async fn record_event_nil_recorder() {
    let store = MemoryLeaseStore::new();
    let mut elector = LeaderElector::with_store(store.clone(), Config::new(LEASE, NS, "baz"))
        .unwrap()
        .for_paused_time();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let outcome = elector
        .run(shutdown, move |leading| async move {
            stop.cancel();
            leading.cancelled().await
        })
        .await;
    assert_eq!(outcome, Outcome::ShutDown);
}

/// Ours: a lost lease records "stopped leading" too; the identity in the message is the
/// sanitized one, the source component names the lease and the identity as configured.
#[tokio::test(start_paused = true)]
async fn losing_the_lease_records_stopped_leading_with_the_sanitized_identity() {
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    let recorder = Arc::new(FakeRecorder::default());
    let config = Config::new("external-attacher-leader-hostpath.csi.k8s.io", NS, "node.a");
    let elector = elector(&store, config, &recorder);
    assert_eq!(
        elector.event_component(),
        "external-attacher-leader-hostpath.csi.k8s.io/node.a"
    );
    let run = spawn(elector, CancellationToken::new());
    sleep_until(start + secs(7.0)).await;
    store.set_unavailable(true);
    assert_eq!(run.await.unwrap(), Outcome::LeadershipLost);
    assert_eq!(
        lines(&recorder),
        [
            "Normal LeaderElection node-a became leader",
            "Normal LeaderElection node-a stopped leading",
        ]
    );
    let events = recorder.all();
    assert!(
        events
            .iter()
            .all(|e| e.object.name.as_deref()
                == Some("external-attacher-leader-hostpath-csi-k8s-io"))
    );
}

/// Ours: a candidate that never leads records nothing.
#[tokio::test(start_paused = true)]
async fn a_candidate_that_never_leads_records_nothing() {
    let store = MemoryLeaseStore::new();
    let leader_events = Arc::new(FakeRecorder::default());
    let waiting_events = Arc::new(FakeRecorder::default());
    let shutdown = CancellationToken::new();
    let leader = spawn(
        elector(&store, Config::new(LEASE, NS, "a"), &leader_events),
        shutdown.clone(),
    );
    sleep(secs(1.0)).await;
    let waiting = spawn(
        elector(&store, Config::new(LEASE, NS, "b"), &waiting_events),
        shutdown.clone(),
    );
    sleep(secs(10.0)).await;
    shutdown.cancel();
    assert_eq!(waiting.await.unwrap(), Outcome::ShutDown);
    assert_eq!(leader.await.unwrap(), Outcome::ShutDown);
    assert!(waiting_events.all().is_empty());
    assert_eq!(
        lines(&leader_events),
        [
            "Normal LeaderElection a became leader",
            "Normal LeaderElection a stopped leading",
        ]
    );
}
