//! Leader election on `coordination.k8s.io/v1` Leases, for the control-plane sidecars: client-go's
//! algorithm (`tools/leaderelection`) with csi-lib-utils' defaults and helpers
//! (`leaderelection/leader_election.go`).
//!
//! This crate owns the election: reading and writing the Lease, deciding who leads, the
//! `leader_election_*` metrics and the leader health check. It does not own what runs while
//! leading (the caller's future), the HTTP server or the process exit: [`LeaderElector::run`]
//! returns an [`Outcome`] and the binary decides (upstream exits 1 when leadership is lost).
//!
//! # The algorithm, as client-go's
//!
//! - A candidate tries every retry period, with jitter (one to 2.2 periods, [`JITTER_FACTOR`]):
//!   get the Lease; create it if absent (`holderIdentity`, `leaseDurationSeconds`,
//!   `acquireTime`, `renewTime`, `leaseTransitions`, and the configured labels).
//! - A Lease held by someone else is left alone until it expires, and expiry is judged by **our**
//!   clock only: the local time at which we last saw the record change, plus the lease duration
//!   the record states. The remote `renewTime` is never compared with our clock, so clock skew
//!   between nodes does not matter.
//! - Taking over is a `replace` carrying the `resourceVersion` we read, so two candidates cannot
//!   both win: the loser gets 409 Conflict, which is not an error, only a lost race.
//!   `leaseTransitions` goes up by one when the holder changes.
//! - The leader renews every retry period, first on top of the Lease as it last wrote it (fast
//!   path), else after reading it (slow path, counted in `leader_election_slowpath_total`). If
//!   renewals keep failing for the renew deadline, leadership is lost.
//! - Events on the Lease, as client-go's `LeaseLock` with csi-lib-utils' recorder writes them:
//!   `Normal` [`EVENT_REASON`] `<identity> became leader` when the lease is acquired and
//!   `<identity> stopped leading` when leadership ends (after a release), the identity
//!   sanitized; the Event's `source.component` (and `reportingController`) is
//!   `<lease name>/<identity>` both as configured, before sanitizing, and its host empty.
//! - With [`Config::release_on_cancel`], the leader releases the lease when the election ends:
//!   `holderIdentity` emptied and `leaseDurationSeconds: 1`, the other fields written as
//!   client-go writes them (transitions kept, acquire and renew times set to now), so a
//!   successor takes over at its next attempt instead of waiting out the lease.
//!
//! Defaults are csi-lib-utils': 15s lease duration, 10s renew deadline, 5s retry period; the
//! lease name and identity pass through [`sanitize_name`]; [`default_namespace`] and
//! [`default_identity`] give its fallbacks.
//!
//! # Use
//!
//! Make a [`LeaderElector`] per lease, optionally with [`LeaderElectionMetrics`] (one per
//! registry, shared by every elector of the process), keep its [`LeaderState`] for
//! [`LeaderState::check`] (served at [`HEALTH_CHECK_PATH`]) and [`LeaderState::is_leader`], and
//! [`run`](LeaderElector::run) it with the work to do while leading. The Lease calls go through
//! [`LeaseStore`]: [`KubeLeaseStore`] on the API server, [`MemoryLeaseStore`] in tests.
//!
//! # What we do not copy from client-go
//!
//! - Coordinated leader election (`Coordinated`, `preferredHolder`, `strategy`: ALPHA), and
//!   ConfigMap/Endpoints locks: the sidecars use plain Leases.
//! - The "stopped leading" Event is written in the background like every Event; upstream's
//!   sidecars exit right after recording it, so the API server rarely gets it from either.
//! - `OnStoppedLeading` being called even when we never led, and the callbacks running on
//!   goroutines: the work is a future polled by [`LeaderElector::run`], which waits for it to
//!   finish before it returns or releases the lease.
//! - Release checks that the Lease, freshly read, still names us; client-go releases whenever
//!   the record *as last observed* names us, which after failed renewals can empty a successor's
//!   lease.
//! - Each acquire attempt is bounded by the renew deadline; client-go leaves a hung request to
//!   the HTTP client's timeouts.
//! - A lease duration under one second is refused (client-go writes `leaseDurationSeconds: 0`).

#![deny(missing_docs)]

mod config;
mod elector;
mod memory;
mod metrics;
mod record;
mod state;
mod store;

#[cfg(test)]
mod events_tests;
#[cfg(test)]
mod tests;

pub use config::{
    Config, DEFAULT_HEALTH_CHECK_TIMEOUT, DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD, Error, HEALTH_CHECK_NAME, HEALTH_CHECK_PATH, JITTER_FACTOR,
    SERVICE_ACCOUNT_NAMESPACE_FILE, default_identity, default_namespace, hostname, parse_labels,
    sanitize_name,
};
pub use elector::{EVENT_REASON, LeaderElector, Outcome};
pub use memory::MemoryLeaseStore;
pub use metrics::{
    LeaderElectionMetrics, MASTER_STATUS_HELP, MASTER_STATUS_NAME, SLOWPATH_HELP, SLOWPATH_NAME,
};
pub use state::LeaderState;
pub use store::{KubeLeaseStore, LeaseStore, StoreError};
