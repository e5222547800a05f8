//! What an election has observed, shared between the elector and whoever asks: controllers
//! (`is_leader`), the health check (`check`), logs (`leader`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::record::Record;

/// A cheap, cloneable view of one election: whether we lead, who does, and the health check.
#[derive(Clone, Debug)]
pub struct LeaderState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identity: String,
    lock: String,
    name: String,
    lease_duration: Duration,
    health_check_timeout: Duration,
    observed: Mutex<Observed>,
}

/// client-go's `observedRecord` and `observedTime`, plus whether we are leading.
#[derive(Debug, Default)]
struct Observed {
    record: Record,
    /// Local time at which `record` was last seen to change (or was written by us).
    time: Option<Instant>,
    leading: bool,
}

impl LeaderState {
    pub(crate) fn new(
        identity: String,
        lock: String,
        name: String,
        lease_duration: Duration,
        health_check_timeout: Duration,
    ) -> LeaderState {
        LeaderState {
            inner: Arc::new(Inner {
                identity,
                lock,
                name,
                lease_duration,
                health_check_timeout,
                observed: Mutex::default(),
            }),
        }
    }

    fn observed(&self) -> MutexGuard<'_, Observed> {
        self.inner
            .observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this process leads: true from the moment the lease was acquired until leadership
    /// was lost or the election stopped. The work guarded by the lease should run only then.
    pub fn is_leader(&self) -> bool {
        self.observed().leading
    }

    /// The holder identity last seen on the lease (or written by us), `None` before the lease
    /// was read or while it is released.
    pub fn leader(&self) -> Option<String> {
        Some(self.observed().record.holder_identity.clone()).filter(|h| !h.is_empty())
    }

    /// Our holder identity (sanitized).
    pub fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// The lease, as `namespace/name` (sanitized).
    pub fn lease(&self) -> &str {
        &self.inner.lock
    }

    /// The health check, as client-go's `HealthzAdaptor` with csi-lib-utils' timeout: healthy
    /// unless the lease, as last seen, names us and has not been renewed for longer than lease
    /// duration + [`Config::health_check_timeout`](crate::Config::health_check_timeout). A leader
    /// that can no longer renew and has not stopped (a stuck process) becomes unhealthy, so the
    /// kubelet restarts it; a standby is always healthy.
    pub fn check(&self) -> Result<(), String> {
        let observed = self.observed();
        if observed.record.holder_identity != self.inner.identity {
            return Ok(());
        }
        let Some(time) = observed.time else {
            return Ok(());
        };
        if time.elapsed() > self.inner.lease_duration + self.inner.health_check_timeout {
            return Err(format!(
                "failed election to renew leadership on lease {}",
                self.inner.name
            ));
        }
        Ok(())
    }

    // The elector's side.

    /// client-go's `setObservedRecord`: the record, seen (or written) now.
    pub(crate) fn set_observed(&self, record: Record) {
        let mut observed = self.observed();
        observed.record = record;
        observed.time = Some(Instant::now());
    }

    pub(crate) fn observed_record(&self) -> Record {
        self.observed().record.clone()
    }

    pub(crate) fn observed_holder(&self) -> String {
        self.observed().record.holder_identity.clone()
    }

    /// client-go's `IsLeader`: the record as last seen names us.
    pub(crate) fn observed_is_us(&self) -> bool {
        self.observed().record.holder_identity == self.inner.identity
    }

    /// client-go's `isLeaseValid`: the record as last seen has not outlived its own lease
    /// duration, counted from when we saw it change — our clock only, never its renewTime.
    pub(crate) fn is_lease_valid(&self, now: Instant) -> bool {
        let observed = self.observed();
        let Some(time) = observed.time else {
            return false;
        };
        let seconds = u64::try_from(observed.record.lease_duration_seconds).unwrap_or(0);
        time + Duration::from_secs(seconds) > now
    }

    pub(crate) fn set_leading(&self, leading: bool) {
        self.observed().leading = leading;
    }
}
