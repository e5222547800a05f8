//! The worker loop every controller runs: client-go's `processNextWorkItem` pattern on `n`
//! tasks, with the handler saying what happens to its key ([`Outcome`], controller-runtime's
//! `reconcile.Result` and kube-runtime's `Action`).
//!
//! Owns: taking keys, calling the handler, applying the outcome to the queue (which counts it
//! in the `workqueue_*` metrics), shutting the queue down on cancellation, and what happens
//! when a handler panics. It knows nothing of what a key means.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::WorkQueue;

/// What should happen to a key after its handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done, and its backoff starts over ([`WorkQueue::forget`]): success, or nothing to do.
    Forget,
    /// Failed: added again after its backoff ([`WorkQueue::add_rate_limited`]), which grows
    /// with each failure in a row and is counted in `workqueue_retries_total`.
    Requeue,
    /// Handled, to be looked at again after this delay ([`WorkQueue::forget`], then
    /// [`WorkQueue::add_after`]), as controller-runtime's `RequeueAfter`.
    RequeueAfter(Duration),
    /// Done: the object is gone or is not this controller's (upstream returns without `Forget`
    /// or `AddRateLimited`). Its backoff is dropped too: upstream's rate limiter keeps the
    /// failure count of a key that failed before its object went away for the life of the
    /// process, one entry per deleted object; nothing else tells the two apart.
    Done,
}

/// What a handler returns: an [`Outcome`], or a `Result<(), E>` — `Ok` is
/// [`Outcome::Forget`], `Err` is logged at error level with the key and is
/// [`Outcome::Requeue`] (client-go's sample controller).
pub trait IntoOutcome {
    /// The outcome for `key` of `queue`, logging what should be logged.
    fn into_outcome(self, queue: &str, key: &dyn fmt::Display) -> Outcome;
}

impl IntoOutcome for Outcome {
    fn into_outcome(self, _queue: &str, _key: &dyn fmt::Display) -> Outcome {
        self
    }
}

impl<E: fmt::Display> IntoOutcome for Result<(), E> {
    fn into_outcome(self, queue: &str, key: &dyn fmt::Display) -> Outcome {
        match self {
            Ok(()) => Outcome::Forget,
            Err(err) => {
                tracing::error!(queue, key = %key, err = %err, "Error syncing item, requeuing");
                Outcome::Requeue
            }
        }
    }
}

/// Applies `outcome` to `key`, which the caller took with [`WorkQueue::get`] (the key is then
/// [done](WorkQueue::done)).
pub fn settle<K>(queue: &WorkQueue<K>, key: &K, outcome: Outcome)
where
    K: Clone + Eq + Hash + Send + 'static,
{
    match outcome {
        Outcome::Forget => queue.forget(key),
        Outcome::Requeue => queue.add_rate_limited(key.clone()),
        Outcome::RequeueAfter(delay) => {
            queue.forget(key);
            queue.add_after(key.clone(), delay);
        }
        Outcome::Done => queue.forget(key),
    }
    queue.done(key);
}

/// Runs `workers` tasks that each take keys from `queue` and pass them to `handler`, until
/// `shutdown` is cancelled; returns when every worker has stopped.
///
/// Each worker loops as the `processNextWorkItem` of client-go's sample controller (and
/// external-attacher's `syncVA`): [`WorkQueue::get`] a key, run `handler(key)`, and apply what
/// it returns ([`Outcome`], or a `Result`: see [`IntoOutcome`]) with [`settle`].
///
/// When `shutdown` is cancelled the queue is [shut down](WorkQueue::shut_down) (as the Go
/// controllers' `defer queue.ShutDown()`), each worker finishes the key it is working on and
/// takes no other; keys still queued are left. Handlers that run long should watch `shutdown`
/// themselves. A worker also stops when the queue, shut down elsewhere, is empty.
///
/// A key whose handler panics is treated as failed (re-added rate-limited and done, so it is
/// not stuck as "processing"); the other workers then stop after their current key, the queue
/// is shut down, and the panic propagates out of `run_workers`, as a panicking Go worker takes
/// its controller down. `shutdown` itself is not cancelled.
pub async fn run_workers<K, H, Fut, O>(
    queue: WorkQueue<K>,
    workers: usize,
    shutdown: CancellationToken,
    handler: H,
) where
    K: Clone + Eq + Hash + fmt::Display + Send + 'static,
    H: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: IntoOutcome + 'static,
{
    let handler = Arc::new(handler);
    // The workers' own token: cancelled with the caller's, or when a handler panics (the caller's
    // token, perhaps the whole process's, is left alone then).
    let stop = shutdown.child_token();
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(worker(queue.clone(), stop.clone(), Arc::clone(&handler)));
    }
    let mut stopped = false;
    let mut panic = None;
    loop {
        tokio::select! {
            // Shut the queue down as soon as we stop, even while every worker is busy.
            () = stop.cancelled(), if !stopped => {
                stopped = true;
                queue.shut_down();
            }
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Err(err)) if err.is_panic() => {
                    // The other workers finish their current key; then we crash as Go would.
                    stop.cancel();
                    panic.get_or_insert(err.into_panic());
                }
                Some(_) => {}
            },
        }
    }
    if let Some(panic) = panic {
        std::panic::resume_unwind(panic);
    }
}

async fn worker<K, H, Fut, O>(queue: WorkQueue<K>, shutdown: CancellationToken, handler: Arc<H>)
where
    K: Clone + Eq + Hash + fmt::Display + Send + 'static,
    H: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: IntoOutcome + 'static,
{
    loop {
        let key = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            key = queue.get() => match key {
                Some(key) => key,
                None => return,
            },
        };
        let guard = InFlight {
            queue: &queue,
            key: Some(key.clone()),
        };
        let outcome = handler(key.clone()).await.into_outcome(queue.name(), &key);
        guard.finish(outcome);
    }
}

/// Gives a key back to the queue if its handler panics or the worker is aborted mid-way.
struct InFlight<'a, K>
where
    K: Clone + Eq + Hash + Send + 'static,
{
    queue: &'a WorkQueue<K>,
    key: Option<K>,
}

impl<K> InFlight<'_, K>
where
    K: Clone + Eq + Hash + Send + 'static,
{
    fn finish(mut self, outcome: Outcome) {
        if let Some(key) = self.key.take() {
            settle(self.queue, &key, outcome);
        }
    }
}

impl<K> Drop for InFlight<'_, K>
where
    K: Clone + Eq + Hash + Send + 'static,
{
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            if std::thread::panicking() {
                self.queue.add_rate_limited(key.clone());
            }
            self.queue.done(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::ItemExponentialFailureRateLimiter;

    const SECOND: Duration = Duration::from_secs(1);

    fn new_queue() -> WorkQueue<String> {
        WorkQueue::new(ItemExponentialFailureRateLimiter::new(SECOND, 100 * SECOND))
    }

    #[tokio::test(start_paused = true)]
    async fn successes_are_forgotten_failures_retried_with_backoff() {
        let queue = new_queue();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let workers = tokio::spawn(run_workers(queue.clone(), 2, shutdown.clone(), {
            let seen = Arc::clone(&seen);
            move |key: String| {
                let seen = Arc::clone(&seen);
                async move {
                    let attempt = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(key.clone());
                        seen.iter().filter(|k| **k == key).count()
                    };
                    // "flaky" fails twice, then succeeds.
                    if key == "flaky" && attempt <= 2 {
                        Err(format!("attempt {attempt} failed"))
                    } else {
                        Ok(())
                    }
                }
            }
        }));
        queue.add("ok".to_string());
        queue.add("flaky".to_string());

        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(*seen.lock().unwrap(), ["ok", "flaky"]);
        assert_eq!(queue.num_requeues(&"ok".to_string()), 0);
        assert_eq!(queue.num_requeues(&"flaky".to_string()), 1);

        // Retried after 1s, fails again; then after 2s more, succeeds.
        tokio::time::sleep(SECOND).await;
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert_eq!(queue.num_requeues(&"flaky".to_string()), 2);
        tokio::time::sleep(2 * SECOND).await;
        assert_eq!(seen.lock().unwrap().len(), 4);
        assert_eq!(queue.num_requeues(&"flaky".to_string()), 0);
        assert!(queue.is_empty());

        shutdown.cancel();
        workers.await.unwrap();
        assert!(queue.shutting_down());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_keys_in_progress_and_leaves_the_rest() {
        let queue = new_queue();
        let finished = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let workers = tokio::spawn(run_workers(queue.clone(), 1, shutdown.clone(), {
            let finished = Arc::clone(&finished);
            move |key: String| {
                let finished = Arc::clone(&finished);
                async move {
                    tokio::time::sleep(10 * SECOND).await;
                    finished.lock().unwrap().push(key);
                    Ok::<(), String>(())
                }
            }
        }));
        queue.add("first".to_string());
        queue.add("second".to_string());
        tokio::time::sleep(SECOND).await;

        shutdown.cancel();
        tokio::time::sleep(SECOND).await;
        assert!(
            !workers.is_finished(),
            "the key in progress is finished first"
        );
        assert!(queue.shutting_down(), "the queue is shut down at once");
        workers.await.unwrap();
        assert_eq!(*finished.lock().unwrap(), ["first"]);
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn workers_stop_when_the_queue_is_shut_down_and_empty() {
        let queue = new_queue();
        queue.add("left".to_string());
        queue.shut_down();
        let handled = Arc::new(Mutex::new(Vec::new()));
        run_workers(queue, 3, CancellationToken::new(), {
            let handled = Arc::clone(&handled);
            move |key: String| {
                let handled = Arc::clone(&handled);
                async move {
                    handled.lock().unwrap().push(key);
                    Ok::<(), String>(())
                }
            }
        })
        .await;
        assert_eq!(*handled.lock().unwrap(), ["left"]);
    }

    #[tokio::test]
    async fn a_panicking_handler_gives_its_key_back_and_the_panic_propagates() {
        let queue = new_queue();
        queue.add("bad".to_string());
        let shutdown = CancellationToken::new();
        let workers = tokio::spawn(run_workers(
            queue.clone(),
            2,
            shutdown.clone(),
            |key: String| async move {
                if key == "bad" {
                    panic!("handler bug");
                }
                Ok::<(), String>(())
            },
        ));
        let err = workers.await.unwrap_err();
        assert!(err.is_panic());
        assert!(!shutdown.is_cancelled(), "the caller's token is left alone");
        assert!(queue.shutting_down());
        // Counted as a failure and done: not stuck as being processed.
        assert_eq!(queue.num_requeues(&"bad".to_string()), 1);
        assert_eq!(queue.processing_len(), 0);
    }

    /// A handler that returns, for each key, the next outcome of its script (then `Forget`),
    /// and records the keys it saw.
    fn scripted(
        script: &[(&str, &[Outcome])],
        seen: Arc<Mutex<Vec<String>>>,
    ) -> impl Fn(String) -> std::future::Ready<Outcome> + Send + Sync + 'static {
        let script: Mutex<std::collections::HashMap<String, std::collections::VecDeque<Outcome>>> =
            Mutex::new(
                script
                    .iter()
                    .map(|(k, o)| (k.to_string(), o.iter().copied().collect()))
                    .collect(),
            );
        move |key: String| {
            seen.lock().unwrap().push(key.clone());
            let next = script
                .lock()
                .unwrap()
                .get_mut(&key)
                .and_then(|outcomes| outcomes.pop_front())
                .unwrap_or(Outcome::Forget);
            std::future::ready(next)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_outcome_does_what_it_says() {
        let registry = csi_metrics::Registry::new();
        let metrics = crate::Metrics::register(&registry).unwrap();
        let queue = WorkQueue::with_config(
            ItemExponentialFailureRateLimiter::new(SECOND, 100 * SECOND),
            crate::QueueConfig::new("outcomes").metrics(&metrics),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let workers = tokio::spawn(run_workers(
            queue.clone(),
            1,
            shutdown.clone(),
            scripted(
                &[
                    ("requeue", &[Outcome::Requeue, Outcome::Requeue]),
                    (
                        "later",
                        &[Outcome::Requeue, Outcome::RequeueAfter(10 * SECOND)],
                    ),
                    ("done", &[Outcome::Done]),
                    ("gone", &[Outcome::Requeue, Outcome::Done]),
                ],
                Arc::clone(&seen),
            ),
        ));
        let key = |k: &str| k.to_string();
        queue.add(key("requeue"));
        queue.add(key("later"));
        queue.add(key("done"));
        queue.add(key("gone"));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(*seen.lock().unwrap(), ["requeue", "later", "done", "gone"]);
        // Requeue: back after its backoff, which grows; Done: gone, nothing counted.
        assert_eq!(queue.num_requeues(&key("requeue")), 1);
        assert_eq!(queue.num_requeues(&key("later")), 1);
        assert_eq!(queue.num_requeues(&key("done")), 0);
        assert_eq!(queue.num_requeues(&key("gone")), 1);
        assert!(queue.is_empty());

        // After 1s the failed keys are retried: "requeue" fails again (backoff 2s), "later"
        // asks to be looked at in 10s, with its backoff reset, and "gone" is done: its
        // failure count goes with it.
        tokio::time::sleep(SECOND).await;
        assert_eq!(seen.lock().unwrap().len(), 7);
        assert_eq!(queue.num_requeues(&key("requeue")), 2);
        assert_eq!(queue.num_requeues(&key("later")), 0);
        assert_eq!(queue.num_requeues(&key("gone")), 0);

        // After 2s more "requeue" succeeds: forgotten.
        tokio::time::sleep(2 * SECOND).await;
        assert_eq!(seen.lock().unwrap().len(), 8);
        assert_eq!(queue.num_requeues(&key("requeue")), 0);

        // "later" comes back 10s after it asked.
        tokio::time::sleep(6 * SECOND).await;
        assert_eq!(seen.lock().unwrap().len(), 8);
        tokio::time::sleep(2 * SECOND).await;
        assert_eq!(
            seen.lock().unwrap().last().map(String::as_str),
            Some("later")
        );
        assert_eq!(queue.processing_len(), 0);

        // The queue's metrics saw it all: four rate-limited re-adds and one delayed add
        // (client-go counts `AddAfter` as a retry too).
        let retries = registry
            .gather()
            .into_iter()
            .find(|f| f.name == "workqueue_retries_total")
            .expect("retries family");
        match retries.samples[0].value {
            csi_metrics::SampleValue::Value(v) => assert_eq!(v, 5.0),
            csi_metrics::SampleValue::Histogram(_) => panic!("a counter"),
        }

        shutdown.cancel();
        workers.await.unwrap();
    }
}
