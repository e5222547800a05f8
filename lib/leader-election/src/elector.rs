//! The election loop: client-go's `LeaderElector` (tools/leaderelection/leaderelection.go) on a
//! [`LeaseStore`].

use std::future::Future;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use csi_kube::{EventRecorder, EventType, Recorder};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, trace};

use crate::config::{Config, Error, JITTER_FACTOR, sanitize_name};
use crate::metrics::LeaderElectionMetrics;
use crate::record::{RawRecord, Record};
use crate::state::LeaderState;
use crate::store::{KubeLeaseStore, LeaseStore, StoreError};

/// The reason of the Events an election records on its Lease (client-go's `LeaseLock`).
pub const EVENT_REASON: &str = "LeaderElection";

/// How [`LeaderElector::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// The shutdown token was cancelled: before the lease was acquired, or while leading (the
    /// work then finished, and the lease was released if so configured).
    ShutDown,
    /// Renewals failed for longer than the renew deadline. The work was told to stop and has
    /// finished. Upstream sidecars exit 1 here (csi-lib-utils' `OnStoppedLeading`).
    LeadershipLost,
}

/// One candidate in one election.
///
/// ```no_run
/// use csi_leader_election::{Config, LeaderElector, Outcome, default_identity, default_namespace};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn example(client: kube::Client, shutdown: CancellationToken) -> Result<(), csi_leader_election::Error> {
/// let config = Config::new(
///     "external-attacher-leader-hostpath.csi.k8s.io",
///     default_namespace(""),
///     default_identity()?,
/// );
/// let mut elector = LeaderElector::new(client, config)?;
/// let state = elector.state(); // for /healthz/leader-election and is_leader()
/// let outcome = elector
///     .run(shutdown, |leading: CancellationToken| async move {
///         // Start the controllers; return once `leading` is cancelled.
///         leading.cancelled().await;
///     })
///     .await;
/// if outcome == Outcome::LeadershipLost {
///     std::process::exit(1);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct LeaderElector<S = KubeLeaseStore> {
    store: S,
    config: Config,
    lease_duration_seconds: i32,
    /// `namespace/name`, client-go's `Describe()`.
    lock: String,
    state: LeaderState,
    metrics: Option<LeaderElectionMetrics>,
    /// The record as last read, to tell whether it changed (client-go's `observedRawRecord`).
    observed_raw: Option<RawRecord>,
    /// The last leader we logged (client-go's `reportedLeader`).
    reported_leader: String,
    /// The Lease as last read or written; a renewal replaces it with its `resourceVersion`
    /// (the `lease` field of client-go's `LeaseLock`).
    lease: Option<Lease>,
    jitter: bool,
    clock: WallClock,
    /// Where the Lease's Events go (client-go's `ResourceLockConfig.EventRecorder`).
    events: Option<Arc<dyn EventRecorder>>,
    /// `<lease name>/<identity>` before sanitizing: the Events' source component.
    event_component: String,
}

/// Where `acquireTime` and `renewTime` come from. Only written, never used to decide anything;
/// but other candidates notice a renewal by the change of these, in whole seconds.
#[derive(Clone, Copy, Debug)]
enum WallClock {
    System,
    /// Tests: the wall clock moves with tokio's paused clock.
    #[cfg(test)]
    FollowsTokio {
        base: Timestamp,
        start: Instant,
    },
}

impl WallClock {
    fn now(self) -> MicroTime {
        match self {
            WallClock::System => MicroTime(Timestamp::now()),
            #[cfg(test)]
            WallClock::FollowsTokio { base, start } => {
                let elapsed = k8s_openapi::jiff::SignedDuration::try_from(start.elapsed())
                    .expect("test durations are small");
                MicroTime(base.checked_add(elapsed).expect("test durations are small"))
            }
        }
    }
}

impl LeaderElector<KubeLeaseStore> {
    /// An election on the API server's Leases through `client`, recording its Events on the
    /// Lease through `client` too, as csi-lib-utils sets it up: source component
    /// [`event_component`](LeaderElector::event_component), no host. Fails if `config` does not
    /// validate (see [`Config::validate`]). Must be called within a tokio runtime (the Event
    /// recorder's writer runs on it).
    pub fn new(client: kube::Client, config: Config) -> Result<Self, Error> {
        let elector = LeaderElector::with_store(KubeLeaseStore::new(client.clone()), config)?;
        let recorder = Recorder::new(client, elector.event_component.clone(), "");
        Ok(elector.with_events(Arc::new(recorder)))
    }
}

impl<S: LeaseStore> LeaderElector<S> {
    /// An election on the Leases of `store`. The lease name and identity are sanitized (see
    /// [`sanitize_name`]).
    pub fn with_store(store: S, mut config: Config) -> Result<Self, Error> {
        config.validate()?;
        let event_component = format!("{}/{}", config.lease_name, config.identity);
        config.lease_name = sanitize_name(&config.lease_name);
        config.identity = sanitize_name(&config.identity);
        let lease_duration_seconds = i32::try_from(config.lease_duration.as_secs())
            .map_err(|_| Error::LeaseDurationOutOfRange(config.lease_duration))?;
        let lock = format!("{}/{}", config.namespace, config.lease_name);
        let state = LeaderState::new(
            config.identity.clone(),
            lock.clone(),
            config.name.clone(),
            config.lease_duration,
            config.health_check_timeout,
        );
        Ok(LeaderElector {
            store,
            config,
            lease_duration_seconds,
            lock,
            state,
            metrics: None,
            observed_raw: None,
            reported_leader: String::new(),
            lease: None,
            jitter: true,
            clock: WallClock::System,
            events: None,
            event_component,
        })
    }

    /// Records this election's Events (`became leader`, `stopped leading`) with `recorder`,
    /// which should report as [`event_component`](LeaderElector::event_component) with no
    /// host, as upstream's does.
    pub fn with_events(mut self, recorder: Arc<dyn EventRecorder>) -> Self {
        self.events = Some(recorder);
        self
    }

    /// `<lease name>/<identity>` as configured, before sanitizing: the source component of
    /// csi-lib-utils' leader election Events.
    pub fn event_component(&self) -> &str {
        &self.event_component
    }

    /// Reports to `metrics` under [`Config::name`]; the gauge starts at 0, as client-go sets it
    /// when an elector is made.
    pub fn with_metrics(mut self, metrics: &LeaderElectionMetrics) -> Self {
        metrics.leader_off(&self.config.name);
        self.metrics = Some(metrics.clone());
        self
    }

    /// A handle on this election's state, valid for the elector's whole life.
    pub fn state(&self) -> LeaderState {
        self.state.clone()
    }

    /// The configuration in use, with the lease name and identity sanitized.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Competes for the lease until `shutdown` is cancelled or leadership is lost.
    ///
    /// Tries to acquire the lease every retry period (with client-go's jitter). Once acquired,
    /// calls `on_started_leading` with a token that is cancelled when leadership ends, and polls
    /// the returned future here, next to the renewals. Leadership ends when renewals fail for
    /// longer than the renew deadline, or when `shutdown` is cancelled; either way the token is
    /// cancelled and `run` waits for the future to finish (so it must return promptly once its
    /// token is cancelled). On shutdown the lease keeps being renewed while the future winds
    /// down, so no one else takes over while our work is still running. Then, with
    /// [`Config::release_on_cancel`], the lease is released.
    ///
    /// If the future finishes while the token is not cancelled, the lease is still held (as
    /// client-go does) until shutdown or loss. `run` may be called again after it returned.
    pub async fn run<F, Fut>(
        &mut self,
        shutdown: CancellationToken,
        on_started_leading: F,
    ) -> Outcome
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        if !self.acquire(&shutdown).await {
            debug!(lock = %self.lock, "Stopped waiting for leadership: shutting down");
            return Outcome::ShutDown;
        }
        debug!(v = 2, "became leader, starting");
        let leading = CancellationToken::new();
        let mut lost = false;
        {
            let mut work = pin!(on_started_leading(leading.clone()));
            let mut renew = pin!(self.renew());
            let mut work_done = false;
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    () = &mut work, if !work_done => {
                        work_done = true;
                        if leading.is_cancelled() {
                            break;
                        }
                        debug!("The leader's work returned; still holding the lease");
                    }
                    () = &mut renew, if !lost => {
                        lost = true;
                        leading.cancel();
                        if work_done {
                            break;
                        }
                    }
                    () = shutdown.cancelled(), if !shutting_down && !lost => {
                        shutting_down = true;
                        leading.cancel();
                        if work_done {
                            break;
                        }
                    }
                }
            }
        }
        self.state.set_leading(false);
        self.leader_off();
        if lost {
            error!(lock = %self.lock, "Stopped leading");
        } else {
            info!(lock = %self.lock, "Stopped leading: shutting down");
        }
        if self.config.release_on_cancel {
            self.release().await;
        }
        // client-go records it when its renew loop returns, after the release.
        self.record_event("stopped leading");
        if lost {
            Outcome::LeadershipLost
        } else {
            Outcome::ShutDown
        }
    }

    /// client-go's `acquire`: tries until it succeeds (true) or `shutdown` is cancelled (false).
    async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        info!(lock = %self.lock, "Attempting to acquire leader lease...");
        loop {
            if shutdown.is_cancelled() {
                return false;
            }
            // client-go leaves a hung request to the client's timeouts; we bound each attempt.
            let attempt = timeout(self.config.renew_deadline, self.try_acquire_or_renew());
            let succeeded = tokio::select! {
                () = shutdown.cancelled() => return false,
                result = attempt => result.unwrap_or_else(|_| {
                    debug!(v = 4, lock = %self.lock, "Timed out trying to acquire lease");
                    false
                }),
            };
            self.maybe_report_transition();
            if succeeded {
                self.record_event("became leader");
                self.state.set_leading(true);
                if let Some(metrics) = &self.metrics {
                    metrics.leader_on(&self.config.name);
                }
                info!(lock = %self.lock, "Successfully acquired lease");
                return true;
            }
            debug!(v = 4, lock = %self.lock, "Failed to acquire lease");
            let pause = self.jittered(self.config.retry_period);
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = sleep(pause) => {}
            }
        }
    }

    /// client-go's `renew`: renews every retry period; returns when a renewal has failed for the
    /// whole renew deadline, leadership then being lost.
    async fn renew(&mut self) {
        loop {
            let deadline = Instant::now() + self.config.renew_deadline;
            let renewed = self.renew_until(deadline).await;
            self.maybe_report_transition();
            if renewed {
                trace!(lock = %self.lock, "Successfully renewed lease");
                sleep(self.config.retry_period).await;
                continue;
            }
            self.state.set_leading(false);
            self.leader_off();
            info!(
                lock = %self.lock,
                err = format!("renew deadline of {:?} exceeded", self.config.renew_deadline),
                "Failed to renew lease"
            );
            return;
        }
    }

    /// client-go's `PollUntilContextTimeout(retryPeriod, renewDeadline, immediate)` around
    /// `tryAcquireOrRenew`: attempts every retry period, each cut off at `deadline`.
    async fn renew_until(&mut self, deadline: Instant) -> bool {
        let mut next = Instant::now();
        loop {
            match timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(_) => return false,
            }
            next += self.config.retry_period;
            if next >= deadline {
                sleep_until(deadline).await;
                return false;
            }
            sleep_until(next).await;
        }
    }

    /// client-go's `tryAcquireOrRenew`: one attempt to acquire or renew the lease.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let now = Instant::now();
        let wall = self.clock.now();
        let mut record = Record {
            holder_identity: self.config.identity.clone(),
            lease_duration_seconds: self.lease_duration_seconds,
            acquire_time: Some(wall.clone()),
            renew_time: Some(wall),
            ..Record::default()
        };

        // 1. The leader's fast path: write on top of the Lease as we last knew it.
        if self.state.observed_is_us() && self.state.is_lease_valid(now) && self.lease.is_some() {
            let old = self.state.observed_record();
            record.acquire_time = old.acquire_time;
            record.leader_transitions = old.leader_transitions;
            match self.update(&record).await {
                Ok(()) => {
                    self.state.set_observed(record);
                    return true;
                }
                Err(err) => debug!(
                    v = 2,
                    lock = %self.lock,
                    err = &err as &dyn std::error::Error,
                    "Failed to update lease optimistically, falling back to slow path"
                ),
            }
        }

        // 2. Read the Lease, or create it.
        let lease = match self
            .store
            .get(&self.config.namespace, &self.config.lease_name)
            .await
        {
            Ok(Some(lease)) => lease,
            Ok(None) => return self.create(record).await,
            Err(err) => {
                error!(
                    lock = %self.lock,
                    err = &err as &dyn std::error::Error,
                    "Error retrieving lease lock"
                );
                return false;
            }
        };
        let old = Record::from_lease(&lease);
        self.lease = Some(lease);

        // 3. Note when the record changed, by our clock, and respect a live holder.
        let raw = old.raw();
        if self.observed_raw.as_ref() != Some(&raw) {
            self.state.set_observed(old.clone());
            self.observed_raw = Some(raw);
        }
        let held_by_us = self.state.observed_is_us();
        if !old.holder_identity.is_empty() && self.state.is_lease_valid(now) && !held_by_us {
            debug!(
                v = 4,
                lock = %self.lock,
                holder = %old.holder_identity,
                "Lease is held and has not yet expired"
            );
            return false;
        }

        // 4. Take the lease over, or renew it the slow way.
        if held_by_us {
            record.acquire_time = old.acquire_time;
            record.leader_transitions = old.leader_transitions;
            if let Some(metrics) = &self.metrics {
                metrics.slowpath_exercised(&self.config.name);
            }
        } else {
            record.leader_transitions = old.leader_transitions.wrapping_add(1);
        }
        match self.update(&record).await {
            Ok(()) => {
                self.state.set_observed(record);
                true
            }
            Err(StoreError::Conflict) => {
                debug!(
                    v = 4,
                    lock = %self.lock,
                    "Lease was written by someone else since it was read; not taking it"
                );
                false
            }
            Err(err) => {
                error!(
                    lock = %self.lock,
                    err = &err as &dyn std::error::Error,
                    "Failed to update lease"
                );
                false
            }
        }
    }

    /// client-go's `LeaseLock.Create`.
    async fn create(&mut self, record: Record) -> bool {
        let labels = Some(self.config.labels.clone()).filter(|l| !l.is_empty());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.lease_name.clone()),
                namespace: Some(self.config.namespace.clone()),
                labels,
                ..ObjectMeta::default()
            },
            spec: Some(record.to_spec()),
        };
        match self.store.create(&lease).await {
            Ok(created) => {
                self.lease = Some(created);
                self.state.set_observed(record);
                true
            }
            Err(StoreError::AlreadyExists) => {
                debug!(
                    v = 4,
                    lock = %self.lock,
                    "Lease was created by someone else since it was found missing"
                );
                false
            }
            Err(err) => {
                self.lease = None;
                error!(
                    lock = %self.lock,
                    err = &err as &dyn std::error::Error,
                    "Error initially creating lease lock"
                );
                false
            }
        }
    }

    /// client-go's `LeaseLock.Update`: the Lease as last read or written, with `record` as its
    /// spec and our labels merged in, replaced under its `resourceVersion`.
    async fn update(&mut self, record: &Record) -> Result<(), StoreError> {
        let Some(mut lease) = self.lease.clone() else {
            return Err(StoreError::NotFound);
        };
        lease.spec = Some(record.to_spec());
        if !self.config.labels.is_empty() {
            let labels = lease.metadata.labels.get_or_insert_default();
            for (key, value) in &self.config.labels {
                labels.insert(key.clone(), value.clone());
            }
        }
        self.lease = Some(self.store.replace(&lease).await?);
        Ok(())
    }

    /// client-go's `release`: within the renew deadline, empties the holder if the lease is
    /// still ours.
    async fn release(&mut self) {
        match timeout(self.config.renew_deadline, self.try_release()).await {
            Ok(true) => {}
            Ok(false) => {}
            Err(_) => error!(lock = %self.lock, "Failed to release lease: timed out"),
        }
    }

    /// client-go's `tryRelease`, retried on conflict.
    async fn try_release(&mut self) -> bool {
        loop {
            let lease = match self
                .store
                .get(&self.config.namespace, &self.config.lease_name)
                .await
            {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    info!(lock = %self.lock, "lease lock not found");
                    return false;
                }
                Err(err) => {
                    error!(
                        lock = %self.lock,
                        err = &err as &dyn std::error::Error,
                        "error retrieving resource lock"
                    );
                    return false;
                }
            };
            let current = Record::from_lease(&lease);
            self.lease = Some(lease);
            // client-go checks only the record as last observed; after a failed renewal that can
            // still name us while someone else holds the lease. Release only our own.
            if !self.state.observed_is_us() || current.holder_identity != self.config.identity {
                return true;
            }
            let now = self.clock.now();
            let record = Record {
                holder_identity: String::new(),
                lease_duration_seconds: 1,
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                leader_transitions: current.leader_transitions,
                ..Record::default()
            };
            match self.update(&record).await {
                Ok(()) => {
                    self.state.set_observed(record);
                    info!(lock = %self.lock, "Released lease");
                    return true;
                }
                Err(StoreError::Conflict) => {
                    debug!(v = 4, lock = %self.lock, "Conflict when releasing lease, retrying");
                }
                Err(err) => {
                    error!(
                        lock = %self.lock,
                        err = &err as &dyn std::error::Error,
                        "Failed to release lease"
                    );
                    return false;
                }
            }
        }
    }

    /// client-go's `maybeReportTransition`, with csi-lib-utils' `OnNewLeader` (a log line).
    fn maybe_report_transition(&mut self) {
        let holder = self.state.observed_holder();
        if holder == self.reported_leader {
            return;
        }
        if !holder.is_empty() {
            info!(lock = %self.lock, leader = %holder, "New leader elected");
        }
        self.reported_leader = holder;
    }

    /// client-go's `LeaseLock.RecordEvent`: a `Normal` [`EVENT_REASON`] Event on the Lease as
    /// last read or written, `<identity> <what>`.
    fn record_event(&self, what: &str) {
        let Some(events) = &self.events else {
            return;
        };
        let metadata = match &self.lease {
            Some(lease) => lease.metadata.clone(),
            None => ObjectMeta {
                name: Some(self.config.lease_name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
        };
        let subject = Lease {
            metadata,
            spec: None,
        };
        events.record_for(
            csi_kube::events::object_reference(&subject),
            EventType::Normal,
            EVENT_REASON,
            &format!("{} {what}", self.config.identity),
        );
    }

    fn leader_off(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.leader_off(&self.config.name);
        }
    }

    /// `wait.Jitter(period, JitterFactor)`: between one and 2.2 periods.
    fn jittered(&self, period: Duration) -> Duration {
        if !self.jitter {
            return period;
        }
        period + period.mul_f64(random_fraction() * JITTER_FACTOR)
    }

    /// For tests on paused time: no acquire jitter, so they know when each attempt happens,
    /// and lease times that move with tokio's clock, as renewals 5s apart do in real life.
    #[cfg(test)]
    pub(crate) fn for_paused_time(mut self) -> Self {
        self.jitter = false;
        self.clock = WallClock::FollowsTokio {
            base: Timestamp::now(),
            start: Instant::now(),
        };
        self
    }
}

/// A number in [0, 1): jitter needs no more than std's randomly keyed hasher gives.
fn random_fraction() -> f64 {
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
