//! Election scenarios on a [`MemoryLeaseStore`] with tokio's paused clock: every attempt happens
//! at a known instant, so the tests assert when leadership changes hands, not only that it does.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_metrics::Registry;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::{
    Config, LeaderElectionMetrics, LeaderElector, LeaderState, LeaseStore, MASTER_STATUS_HELP,
    MemoryLeaseStore, Outcome, SLOWPATH_HELP, StoreError,
};

const NS: &str = "ns";
const LEASE: &str = "lease";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn config(identity: &str) -> Config {
    Config::new(LEASE, NS, identity)
}

fn elector(store: &MemoryLeaseStore, config: Config) -> LeaderElector<MemoryLeaseStore> {
    LeaderElector::with_store(store.clone(), config)
        .unwrap()
        .for_paused_time()
}

fn spec(store: &MemoryLeaseStore) -> LeaseSpec {
    store.lease(NS, LEASE).unwrap().spec.unwrap()
}

fn holder(store: &MemoryLeaseStore) -> String {
    spec(store).holder_identity.unwrap()
}

fn resource_version(store: &MemoryLeaseStore) -> u64 {
    store
        .lease(NS, LEASE)
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap()
}

fn lease(holder: &str, duration_seconds: i32, renew_time: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            namespace: Some(NS.into()),
            name: Some(LEASE.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(duration_seconds),
            acquire_time: Some(MicroTime(renew_time)),
            renew_time: Some(MicroTime(renew_time)),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

/// A candidate running in its own task, recording when its work started and finished.
struct Candidate {
    state: LeaderState,
    shutdown: CancellationToken,
    started: watch::Receiver<Option<Instant>>,
    finished: watch::Receiver<Option<Instant>>,
    handle: JoinHandle<Outcome>,
}

impl Candidate {
    /// Runs `elector` with work that stops `drain` after its token is cancelled.
    fn spawn_with_drain(mut elector: LeaderElector<MemoryLeaseStore>, drain: Duration) -> Self {
        let state = elector.state();
        let shutdown = CancellationToken::new();
        let (started_tx, started) = watch::channel(None);
        let (finished_tx, finished) = watch::channel(None);
        let token = shutdown.clone();
        let handle = tokio::spawn(async move {
            elector
                .run(token, move |leading| async move {
                    started_tx.send_replace(Some(Instant::now()));
                    leading.cancelled().await;
                    sleep(drain).await;
                    finished_tx.send_replace(Some(Instant::now()));
                })
                .await
        });
        Candidate {
            state,
            shutdown,
            started,
            finished,
            handle,
        }
    }

    fn spawn(elector: LeaderElector<MemoryLeaseStore>) -> Self {
        Candidate::spawn_with_drain(elector, Duration::ZERO)
    }

    fn started_at(&self) -> Option<Instant> {
        *self.started.borrow()
    }

    fn finished_at(&self) -> Option<Instant> {
        *self.finished.borrow()
    }

    async fn stop(self) -> Outcome {
        self.shutdown.cancel();
        self.handle.await.unwrap()
    }
}

/// Log lines, for asserting that a lost race is not logged as an error.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures this thread's events (the tests' runtime is single-threaded).
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn single_candidate_creates_the_lease_and_renews_it() {
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    let mut config = config("node-a.example");
    config.labels = BTreeMap::from([("app".into(), "csi".into())]);
    let a = Candidate::spawn(elector(&store, config));

    sleep(secs(0.5)).await;
    assert_eq!(a.started_at(), Some(start));
    assert!(a.state.is_leader());
    assert_eq!(a.state.identity(), "node-a-example");
    assert_eq!(a.state.leader().as_deref(), Some("node-a-example"));
    assert_eq!(a.state.lease(), "ns/lease");

    let created = store.lease(NS, LEASE).unwrap();
    assert_eq!(
        created.metadata.labels,
        Some(BTreeMap::from([("app".into(), "csi".into())]))
    );
    let spec = created.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("node-a-example"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some());
    assert_eq!(spec.acquire_time, spec.renew_time);
    // Created, then renewed at once (client-go's renew loop starts with a renewal).
    assert_eq!(resource_version(&store), 2);

    // Renewed every retry period (5s), keeping acquireTime and transitions.
    sleep_until(start + secs(12.0)).await;
    assert_eq!(resource_version(&store), 4);
    let renewed = self::spec(&store);
    assert_eq!(renewed.acquire_time, spec.acquire_time);
    assert_ne!(renewed.renew_time, spec.renew_time);
    assert_eq!(renewed.lease_transitions, Some(0));
    assert_eq!(a.state.check(), Ok(()));

    // Shut down without release: the work is stopped, the lease stays ours until it expires.
    a.shutdown.cancel();
    let state = a.state.clone();
    let finished = a.finished.clone();
    assert_eq!(a.handle.await.unwrap(), Outcome::ShutDown);
    assert!(finished.borrow().is_some());
    assert!(!state.is_leader());
    assert_eq!(holder(&store), "node-a-example");
}

#[tokio::test(start_paused = true)]
async fn second_candidate_waits_while_the_first_renews() {
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    let a = Candidate::spawn(elector(&store, config("a")));
    sleep(secs(1.0)).await;
    let b = Candidate::spawn(elector(&store, config("b")));

    sleep_until(start + secs(120.0)).await;
    assert!(a.state.is_leader());
    assert_eq!(b.started_at(), None);
    assert!(!b.state.is_leader());
    assert_eq!(b.state.leader().as_deref(), Some("a"));
    assert_eq!(b.state.check(), Ok(()), "a standby is healthy");
    assert_eq!(holder(&store), "a");
    assert_eq!(spec(&store).lease_transitions, Some(0));
    assert_eq!(b.stop().await, Outcome::ShutDown);
    assert_eq!(a.stop().await, Outcome::ShutDown);
}

#[tokio::test(start_paused = true)]
async fn takes_over_lease_duration_after_it_last_saw_a_change() {
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    let a = Candidate::spawn(elector(&store, config("a")));
    sleep(secs(1.0)).await;
    // b tries at 1, 6, 11, 16, 21, 26, ...; a renews at 5, 10 and crashes at 12.
    let b = Candidate::spawn(elector(&store, config("b")));
    sleep_until(start + secs(12.0)).await;
    a.handle.abort();

    // b last saw the lease change at 11 (the renewal of 10): it may take over at 11 + 15.
    sleep_until(start + secs(25.5)).await;
    assert_eq!(b.started_at(), None);
    assert_eq!(holder(&store), "a");
    sleep_until(start + secs(26.5)).await;
    assert_eq!(b.started_at(), Some(start + secs(26.0)));
    assert!(b.state.is_leader());
    let spec = spec(&store);
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.acquire_time, spec.renew_time);
    assert_eq!(b.stop().await, Outcome::ShutDown);
}

/// The holder's renewTime is never compared with our clock: a lease renewed "in 1970" or "in
/// 2100" is held for its stated duration from when we first saw it.
#[tokio::test(start_paused = true)]
async fn expiry_is_judged_by_our_clock_not_by_renew_time() {
    for (renew_time, duration, takeover) in [
        (Timestamp::UNIX_EPOCH, 15, 15.0),
        (Timestamp::from_second(4_102_444_800).unwrap(), 15, 15.0),
        (Timestamp::UNIX_EPOCH, 30, 30.0),
    ] {
        let start = Instant::now();
        let store = MemoryLeaseStore::new();
        store.put(lease("gone", duration, renew_time));
        let b = Candidate::spawn(elector(&store, config("b")));
        sleep_until(start + secs(takeover - 0.5)).await;
        assert_eq!(b.started_at(), None, "renewTime {renew_time}");
        assert_eq!(b.state.leader().as_deref(), Some("gone"));
        sleep_until(start + secs(takeover + 0.5)).await;
        assert_eq!(b.started_at(), Some(start + secs(takeover)));
        assert_eq!(holder(&store), "b");
        assert_eq!(b.stop().await, Outcome::ShutDown);
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_race_is_not_an_error() {
    let (logs, _guard) = Logs::capture();
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    store.put(lease("", 1, Timestamp::UNIX_EPOCH)); // released: free to take
    // Between b's read and b's write, c takes the lease.
    store.interfere_before_next_replace(|lease| {
        let spec = lease.spec.as_mut().unwrap();
        spec.holder_identity = Some("c".into());
        spec.lease_duration_seconds = Some(15);
        spec.lease_transitions = Some(1);
    });
    let b = Candidate::spawn(elector(&store, config("b")));

    sleep(secs(0.5)).await;
    assert_eq!(b.started_at(), None);
    assert!(!b.state.is_leader());
    assert_eq!(holder(&store), "c");
    // b sees c's record at 5 and waits c's lease duration from then.
    sleep_until(start + secs(19.5)).await;
    assert_eq!(b.started_at(), None);
    sleep_until(start + secs(20.5)).await;
    assert_eq!(b.started_at(), Some(start + secs(20.0)));
    assert_eq!(spec(&store).lease_transitions, Some(2));
    assert_eq!(b.stop().await, Outcome::ShutDown);

    let logs = logs.text();
    assert!(logs.contains("written by someone else"), "{logs}");
    assert!(!logs.contains("ERROR"), "{logs}");
}

#[tokio::test(start_paused = true)]
async fn release_on_cancel_empties_the_holder_and_a_successor_takes_over() {
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    let mut config_a = config("a");
    config_a.release_on_cancel = true;
    config_a.labels = BTreeMap::from([("app".into(), "csi".into())]);
    let a = Candidate::spawn(elector(&store, config_a));
    sleep(secs(1.0)).await;
    let b = Candidate::spawn(elector(&store, config("b")));
    sleep_until(start + secs(7.0)).await;

    let before = spec(&store);
    let state_a = a.state.clone();
    assert_eq!(a.stop().await, Outcome::ShutDown);
    assert!(!state_a.is_leader());
    assert_eq!(state_a.leader(), None);

    let released = store.lease(NS, LEASE).unwrap();
    let spec = released.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(""));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, before.lease_transitions);
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    assert_eq!(spec.acquire_time, spec.renew_time);
    assert_eq!(
        released.metadata.labels,
        Some(BTreeMap::from([("app".into(), "csi".into())]))
    );

    // b takes the released lease at its next attempt (11) instead of waiting it out.
    sleep_until(start + secs(11.5)).await;
    assert_eq!(b.started_at(), Some(start + secs(11.0)));
    assert_eq!(holder(&store), "b");
    assert_eq!(self::spec(&store).lease_transitions, Some(1));
    assert_eq!(b.stop().await, Outcome::ShutDown);
}

/// On shutdown, the work is told to stop and the lease is kept, renewed, until it has; only
/// then is it released.
#[tokio::test(start_paused = true)]
async fn shutdown_keeps_renewing_until_the_work_has_stopped() {
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    let mut config_a = config("a");
    config_a.release_on_cancel = true;
    let a = Candidate::spawn_with_drain(elector(&store, config_a), secs(30.0));
    sleep(secs(1.0)).await;
    let b = Candidate::spawn(elector(&store, config("b")));

    sleep_until(start + secs(2.0)).await;
    a.shutdown.cancel();
    let state_a = a.state.clone();
    let finished = a.finished.clone();
    sleep_until(start + secs(31.0)).await;
    assert_eq!(holder(&store), "a", "still held while the work drains");
    assert_eq!(b.started_at(), None);
    assert!(resource_version(&store) >= 6, "renewed during the drain");

    assert_eq!(a.handle.await.unwrap(), Outcome::ShutDown);
    assert_eq!(*finished.borrow(), Some(start + secs(32.0)));
    assert!(!state_a.is_leader());
    assert_eq!(holder(&store), "");
    sleep_until(start + secs(36.5)).await;
    assert_eq!(b.started_at(), Some(start + secs(36.0)));
    assert_eq!(b.stop().await, Outcome::ShutDown);
}

#[tokio::test(start_paused = true)]
async fn renewals_failing_past_the_renew_deadline_lose_leadership() {
    for stall in [false, true] {
        let start = Instant::now();
        let store = MemoryLeaseStore::new();
        let registry = Registry::new();
        let metrics = LeaderElectionMetrics::register(&registry).unwrap();
        let mut config = config("a");
        config.name = "lease".into();
        let a = Candidate::spawn(elector(&store, config).with_metrics(&metrics));

        // Renewed at 5; the API server goes away at 7; renewals at 10 and 15 fail (or hang);
        // the renew deadline (10s from 10) ends leadership at 20.
        sleep_until(start + secs(7.0)).await;
        if stall {
            store.set_stalled(true);
        } else {
            store.set_unavailable(true);
        }
        sleep_until(start + secs(19.5)).await;
        assert!(a.state.is_leader());
        assert_eq!(a.finished_at(), None);
        sleep_until(start + secs(20.5)).await;
        assert!(!a.state.is_leader());
        assert_eq!(a.finished_at(), Some(start + secs(20.0)), "stall: {stall}");
        let state = a.state.clone();
        assert_eq!(a.handle.await.unwrap(), Outcome::LeadershipLost);
        assert!(
            registry
                .gather_text()
                .contains("leader_election_master_status{name=\"lease\"} 0\n")
        );

        // The health check fails once the lease, last renewed at 5, is older than 15s + 20s.
        sleep_until(start + secs(39.5)).await;
        assert_eq!(state.check(), Ok(()));
        sleep_until(start + secs(40.5)).await;
        assert_eq!(
            state.check(),
            Err("failed election to renew leadership on lease lease".to_string())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_fails_once_is_retried_within_the_deadline() {
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    let a = Candidate::spawn(elector(&store, config("a")));
    sleep_until(start + secs(9.0)).await;
    store.set_unavailable(true);
    sleep_until(start + secs(12.0)).await;
    store.set_unavailable(false);
    sleep_until(start + secs(40.0)).await;
    assert!(a.state.is_leader());
    assert_eq!(a.finished_at(), None);
    assert_eq!(a.stop().await, Outcome::ShutDown);
}

#[tokio::test(start_paused = true)]
async fn labels_are_merged_into_an_existing_lease() {
    let store = MemoryLeaseStore::new();
    let mut existing = lease("", 1, Timestamp::UNIX_EPOCH);
    existing.metadata.labels = Some(BTreeMap::from([
        ("keep".into(), "x".into()),
        ("app".into(), "old".into()),
    ]));
    store.put(existing);
    let mut config = config("b");
    config.labels = BTreeMap::from([("app".into(), "csi".into())]);
    let b = Candidate::spawn(elector(&store, config));
    sleep(secs(0.5)).await;
    assert!(b.state.is_leader());
    assert_eq!(
        store.lease(NS, LEASE).unwrap().metadata.labels,
        Some(BTreeMap::from([
            ("app".into(), "csi".into()),
            ("keep".into(), "x".into()),
        ]))
    );
    assert_eq!(b.stop().await, Outcome::ShutDown);
}

/// A restarted process with the same identity finds the lease naming it and carries on at
/// once (client-go's slow path), keeping acquireTime and transitions.
#[tokio::test(start_paused = true)]
async fn same_identity_takes_its_lease_back_at_once() {
    let store = MemoryLeaseStore::new();
    let mut previous = lease("a", 15, Timestamp::UNIX_EPOCH);
    previous.spec.as_mut().unwrap().lease_transitions = Some(4);
    store.put(previous);
    let registry = Registry::new();
    let metrics = LeaderElectionMetrics::register(&registry).unwrap();
    let a = Candidate::spawn(elector(&store, config("a")).with_metrics(&metrics));
    sleep(secs(0.5)).await;
    assert!(a.state.is_leader());
    let spec = spec(&store);
    assert_eq!(spec.lease_transitions, Some(4));
    assert_eq!(
        spec.acquire_time,
        Some(MicroTime(Timestamp::UNIX_EPOCH)),
        "acquireTime kept"
    );
    assert!(
        registry
            .gather_text()
            .contains("leader_election_slowpath_total{name=\"\"} 1\n")
    );
    assert_eq!(a.stop().await, Outcome::ShutDown);
}

#[tokio::test(start_paused = true)]
async fn metrics_of_several_elections_on_one_registry() {
    let start = Instant::now();
    let store = MemoryLeaseStore::new();
    let registry = Registry::new();
    let metrics = LeaderElectionMetrics::register(&registry).unwrap();

    let mut attacher = Config::new("external-attacher-leader-hostpath.csi.k8s.io", NS, "a");
    attacher.name = attacher.lease_name.clone();
    let mut resizer = Config::new("external-resizer-hostpath.csi.k8s.io", NS, "a");
    resizer.name = resizer.lease_name.clone();
    let mut standby = Config::new("external-resizer-hostpath.csi.k8s.io", NS, "b");
    standby.name = "standby".into();

    // Renewals at 0, 5, 10, ... for the attacher and 0.5, 5.5, ... for the resizer.
    let attacher = Candidate::spawn(elector(&store, attacher).with_metrics(&metrics));
    sleep(secs(0.5)).await;
    let resizer = Candidate::spawn(elector(&store, resizer).with_metrics(&metrics));
    sleep(secs(0.5)).await;
    let standby = Candidate::spawn(elector(&store, standby).with_metrics(&metrics));

    // Someone writes the attacher's lease between its renewals: the fast path (a replace on
    // top of what it last wrote) conflicts, and the slow path reads and renews.
    sleep_until(start + secs(3.0)).await;
    store.interfere_before_next_replace(|lease| {
        lease.metadata.annotations = Some(BTreeMap::from([("touched".into(), "yes".into())]));
    });
    sleep_until(start + secs(6.0)).await;
    assert!(attacher.state.is_leader());
    assert!(resizer.state.is_leader());
    assert!(!standby.state.is_leader());
    assert_eq!(
        store
            .lease(NS, "external-attacher-leader-hostpath-csi-k8s-io")
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("a")
    );

    assert_eq!(
        registry.gather_text(),
        format!(
            "# HELP leader_election_master_status [ALPHA] {MASTER_STATUS_HELP}\n\
             # TYPE leader_election_master_status gauge\n\
             leader_election_master_status{{name=\"external-attacher-leader-hostpath.csi.k8s.io\"}} 1\n\
             leader_election_master_status{{name=\"external-resizer-hostpath.csi.k8s.io\"}} 1\n\
             leader_election_master_status{{name=\"standby\"}} 0\n\
             # HELP leader_election_slowpath_total [ALPHA] {SLOWPATH_HELP}\n\
             # TYPE leader_election_slowpath_total counter\n\
             leader_election_slowpath_total{{name=\"external-attacher-leader-hostpath.csi.k8s.io\"}} 1\n"
        )
    );
    assert_eq!(standby.stop().await, Outcome::ShutDown);
    assert_eq!(resizer.stop().await, Outcome::ShutDown);
    assert_eq!(attacher.stop().await, Outcome::ShutDown);
    assert!(registry.gather_text().contains(
        "leader_election_master_status{name=\"external-resizer-hostpath.csi.k8s.io\"} 0\n"
    ));
}

#[tokio::test(start_paused = true)]
async fn shutdown_before_leading_returns_at_once() {
    let store = MemoryLeaseStore::new();
    store.put(lease("other", 15, Timestamp::UNIX_EPOCH));
    let b = Candidate::spawn(elector(&store, config("b")));
    sleep(secs(2.0)).await;
    let started = Instant::now();
    let state = b.state.clone();
    assert_eq!(b.stop().await, Outcome::ShutDown);
    assert_eq!(Instant::now(), started);
    assert!(!state.is_leader());
    assert_eq!(holder(&store), "other");
}

#[tokio::test(start_paused = true)]
async fn run_can_be_called_again_after_leadership_was_lost() {
    let store = MemoryLeaseStore::new();
    let mut elector = elector(&store, config("a"));
    let state = elector.state();
    let shutdown = CancellationToken::new();
    let outage = {
        let store = store.clone();
        async move {
            sleep(secs(7.0)).await;
            store.set_unavailable(true);
        }
    };
    let (outcome, ()) = tokio::join!(
        elector.run(shutdown.clone(), |leading| async move {
            leading.cancelled().await
        }),
        outage
    );
    assert_eq!(outcome, Outcome::LeadershipLost);

    store.set_unavailable(false);
    let rerun = elector.run(shutdown.clone(), move |leading| async move {
        assert!(!leading.is_cancelled());
        shutdown.cancel();
        leading.cancelled().await
    });
    assert_eq!(rerun.await, Outcome::ShutDown);
    assert!(!state.is_leader());
    assert_eq!(holder(&store), "a");
}

/// The kube-backed store against a fake API server that serves a [`MemoryLeaseStore`]: the
/// requests `Api<Lease>` makes, and the mapping of 404 and 409 answers.
mod kube_store {
    use super::*;
    use crate::KubeLeaseStore;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;

    type Requests = Arc<Mutex<Vec<(Method, String)>>>;
    /// The Events posted, as JSON.
    type PostedEvents = Arc<Mutex<Vec<serde_json::Value>>>;

    fn status(code: StatusCode, reason: &str) -> Response<Body> {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": reason, "reason": reason, "code": code.as_u16(),
        });
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    fn ok(lease: &Lease) -> Response<Body> {
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(lease).unwrap()))
            .unwrap()
    }

    async fn serve(
        store: MemoryLeaseStore,
        events: PostedEvents,
        request: Request<Body>,
    ) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        if method == Method::POST
            && path.starts_with("/api/v1/namespaces/")
            && path.ends_with("/events")
        {
            let body = request.into_body().collect_bytes().await.unwrap();
            events
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            return Response::builder()
                .status(StatusCode::CREATED)
                .header("content-type", "application/json")
                .body(Body::from(body.to_vec()))
                .unwrap();
        }
        let rest = path
            .strip_prefix("/apis/coordination.k8s.io/v1/namespaces/")
            .expect("a namespaced Lease path");
        let parts: Vec<&str> = rest.split('/').collect();
        let body = request.into_body().collect_bytes().await.unwrap();
        let result = match (method, parts.as_slice()) {
            (Method::GET, [ns, "leases", name]) => match store.get(ns, name).await {
                Ok(Some(lease)) => Ok(lease),
                Ok(None) => Err(StoreError::NotFound),
                Err(err) => Err(err),
            },
            (Method::POST, [_, "leases"]) => {
                store.create(&serde_json::from_slice(&body).unwrap()).await
            }
            (Method::PUT, [_, "leases", _]) => {
                store.replace(&serde_json::from_slice(&body).unwrap()).await
            }
            other => panic!("unexpected request {other:?}"),
        };
        match result {
            Ok(lease) => ok(&lease),
            Err(StoreError::NotFound) => status(StatusCode::NOT_FOUND, "NotFound"),
            Err(StoreError::Conflict) => status(StatusCode::CONFLICT, "Conflict"),
            Err(StoreError::AlreadyExists) => status(StatusCode::CONFLICT, "AlreadyExists"),
            Err(err) => status(StatusCode::SERVICE_UNAVAILABLE, &err.to_string()),
        }
    }

    fn client(store: &MemoryLeaseStore, requests: &Requests) -> kube::Client {
        client_with_events(store, requests, &PostedEvents::default())
    }

    fn client_with_events(
        store: &MemoryLeaseStore,
        requests: &Requests,
        events: &PostedEvents,
    ) -> kube::Client {
        let store = store.clone();
        let requests = requests.clone();
        let events = events.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            requests
                .lock()
                .unwrap()
                .push((request.method().clone(), request.uri().path().to_string()));
            let store = store.clone();
            let events = events.clone();
            async move { Ok::<_, std::convert::Infallible>(serve(store, events, request).await) }
        });
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn maps_the_api_servers_answers() {
        let store = MemoryLeaseStore::new();
        let requests = Requests::default();
        let kube = KubeLeaseStore::new(client(&store, &requests));

        assert_eq!(kube.get(NS, LEASE).await.unwrap(), None);
        let created = kube
            .create(&lease("a", 15, Timestamp::UNIX_EPOCH))
            .await
            .unwrap();
        assert_eq!(created.metadata.resource_version.as_deref(), Some("1"));
        assert!(matches!(
            kube.create(&lease("b", 15, Timestamp::UNIX_EPOCH)).await,
            Err(StoreError::AlreadyExists)
        ));
        let replaced = kube.replace(&created).await.unwrap();
        assert_eq!(replaced.metadata.resource_version.as_deref(), Some("2"));
        assert!(matches!(
            kube.replace(&created).await,
            Err(StoreError::Conflict)
        ));
        store.set_unavailable(true);
        assert!(matches!(
            kube.get(NS, LEASE).await,
            Err(StoreError::Kube(kube::Error::Api(_)))
        ));

        let base = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
        assert_eq!(
            *requests.lock().unwrap(),
            vec![
                (Method::GET, format!("{base}/lease")),
                (Method::POST, base.to_string()),
                (Method::POST, base.to_string()),
                (Method::PUT, format!("{base}/lease")),
                (Method::PUT, format!("{base}/lease")),
                (Method::GET, format!("{base}/lease")),
            ]
        );
    }

    #[tokio::test]
    async fn an_election_through_the_api() {
        let store = MemoryLeaseStore::new();
        let requests = Requests::default();
        let mut config = config("a");
        config.release_on_cancel = true;
        config.retry_period = Duration::from_secs(1);
        config.renew_deadline = Duration::from_secs(2);
        config.lease_duration = Duration::from_secs(3);
        let events = PostedEvents::default();
        let mut elector =
            LeaderElector::new(client_with_events(&store, &requests, &events), config).unwrap();
        let shutdown = CancellationToken::new();
        let outcome = elector
            .run(shutdown.clone(), |leading| async move {
                shutdown.cancel();
                leading.cancelled().await;
            })
            .await;
        assert_eq!(outcome, Outcome::ShutDown);
        assert_eq!(holder(&store), "");
        let methods: Vec<Method> = requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.1.contains("/leases"))
            .map(|r| r.0.clone())
            .collect();
        // get (404), create, maybe the first renewal (a put); on shutdown: get, put (release).
        assert_eq!(methods[..2], [Method::GET, Method::POST]);
        assert_eq!(methods[methods.len() - 2..], [Method::GET, Method::PUT]);

        // The LeaderElection Events, written in the background to the Lease's namespace, as
        // csi-lib-utils' recorder writes them.
        for _ in 0..200 {
            if events.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let events = events.lock().unwrap().clone();
        let seen: Vec<(&str, &str, &str, &str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["metadata"]["namespace"].as_str().unwrap_or_default(),
                    e["involvedObject"]["kind"].as_str().unwrap_or_default(),
                    e["involvedObject"]["name"].as_str().unwrap_or_default(),
                    e["source"]["component"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (NS, "Lease", LEASE, "lease/a", "a became leader"),
                (NS, "Lease", LEASE, "lease/a", "a stopped leading"),
            ]
        );
        for event in &events {
            assert_eq!(event["reason"], "LeaderElection");
            assert_eq!(event["type"], "Normal");
            assert_eq!(event["reportingComponent"], "lease/a");
            assert_eq!(event["source"]["host"].as_str().unwrap_or_default(), "");
        }
    }
}

/// Binaries spawn the election on a multi-threaded runtime: on the API server, `run` is `Send`.
#[allow(dead_code)]
fn run_on_the_api_server_is_send(mut elector: LeaderElector, shutdown: CancellationToken) {
    fn is_send<T: Send>(_: &T) {}
    let run = elector.run(shutdown, |leading| async move { leading.cancelled().await });
    is_send(&run);
}
