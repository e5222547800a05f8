//! A work queue with the semantics of client-go's `k8s.io/client-go/util/workqueue`, for the
//! controllers of the sidecars (external-attacher's `csi-attacher-va` and `csi-attacher-pv`
//! queues first).
//!
//! This crate owns the queue ([`WorkQueue`]: client-go's typed, delaying and rate-limiting
//! queues in one type), the rate limiters of `default_rate_limiters.go`, the `workqueue_*`
//! metrics of component-base's `metrics/prometheus/workqueue` ([`Metrics`]) and the one worker
//! loop every controller runs ([`run_workers`]), whose handler returns an [`Outcome`] for its
//! key: forget, requeue with backoff, requeue after a delay, or done. It knows nothing of Kubernetes objects, watches or
//! informers: keys are whatever the controller queues (object names, as `String`s, upstream).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use csi_metrics::Registry;
//! use csi_workqueue::{ItemExponentialFailureRateLimiter, Metrics, QueueConfig, WorkQueue};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example() -> Result<(), csi_metrics::Error> {
//! let registry = Registry::new();
//! let metrics = Metrics::register(&registry)?; // once per registry
//! let queue = WorkQueue::<String>::with_config(
//!     ItemExponentialFailureRateLimiter::new(Duration::from_secs(1), Duration::from_secs(300)),
//!     QueueConfig::new("csi-attacher-va").metrics(&metrics),
//! );
//! queue.add("pvc-1234".to_string()); // from a watch event
//!
//! let shutdown = CancellationToken::new();
//! csi_workqueue::run_workers(queue, 10, shutdown, |name: String| async move {
//!     // reconcile the VolumeAttachment `name`, then say what happens to its key
//!     csi_workqueue::Outcome::Forget
//! })
//! .await;
//! # Ok(())
//! # }
//! ```
//!
//! # Differences from client-go
//!
//! - [`WorkQueue::get`] is async and returns `Option<K>` (`None` for Go's `shutdown == true`);
//!   [`WorkQueue::shut_down_with_drain`] is async.
//! - [`WorkQueue::done`] for a key that is not being processed does nothing; Go would queue a
//!   dirty key a second time.
//! - There is no pluggable storage (`Queue`, with its `Touch` hook) and no injected clock: the
//!   clock is Tokio's, which tests pause.
//! - Delays are kept by a Tokio task that sleeps until the next deadline; client-go's 10-second
//!   heartbeat (insurance against clock trouble) is not needed with a monotonic clock.
//! - The metrics go to the [`Metrics`] handed to the queue, not to a global provider.

#![deny(missing_docs)]

mod metrics;
mod queue;
mod rate_limiter;
mod worker;

pub use metrics::{Metrics, UNFINISHED_WORK_UPDATE_PERIOD};
pub use queue::{QueueConfig, WorkQueue};
pub use rate_limiter::{
    BucketRateLimiter, ItemExponentialFailureRateLimiter, ItemFastSlowRateLimiter,
    MaxOfRateLimiter, RateLimiter, WithMaxWaitRateLimiter, default_controller_rate_limiter,
    default_item_based_rate_limiter,
};
pub use worker::{IntoOutcome, Outcome, run_workers, settle};
