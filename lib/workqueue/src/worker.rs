//! The worker loop: client-go's `processNextWorkItem` pattern, on `n` tasks.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::WorkQueue;

/// Runs `workers` tasks that each take keys from `queue` and pass them to `handler`, until
/// `shutdown` is cancelled; returns when every worker has stopped.
///
/// Each worker loops as the `processNextWorkItem` of client-go's sample controller (and
/// external-attacher's `syncVA`): [`WorkQueue::get`] a key, run `handler(key)`, then
///
/// - on `Ok`: [`WorkQueue::forget`] the key (its backoff starts over), then [`WorkQueue::done`];
/// - on `Err`: log the error, [`WorkQueue::add_rate_limited`] the key, then
///   [`WorkQueue::done`].
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
pub async fn run_workers<K, H, Fut, E>(
    queue: WorkQueue<K>,
    workers: usize,
    shutdown: CancellationToken,
    handler: H,
) where
    K: Clone + Eq + Hash + fmt::Display + Send + 'static,
    H: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + 'static,
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

async fn worker<K, H, Fut, E>(queue: WorkQueue<K>, shutdown: CancellationToken, handler: Arc<H>)
where
    K: Clone + Eq + Hash + fmt::Display + Send + 'static,
    H: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + 'static,
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
        let result = handler(key.clone()).await;
        match result {
            Ok(()) => queue.forget(&key),
            Err(err) => {
                tracing::error!(
                    queue = queue.name(),
                    key = %key,
                    err = %err,
                    "Error syncing item, requeuing"
                );
                queue.add_rate_limited(key.clone());
            }
        }
        guard.finish();
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
    fn finish(mut self) {
        if let Some(key) = self.key.take() {
            self.queue.done(&key);
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
}
