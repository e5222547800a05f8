//! The queue itself: client-go's `Typed` queue (`queue.go`), the delaying queue wrapped around
//! it (`delaying_queue.go`) and the rate-limiting one around that (`rate_limiting_queue.go`),
//! in one type.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use csi_metrics::Counter;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, QueueMetrics, UNFINISHED_WORK_UPDATE_PERIOD};
use crate::rate_limiter::RateLimiter;

/// A queue's name and metrics: client-go's `TypedRateLimitingQueueConfig`.
#[derive(Clone, Debug, Default)]
pub struct QueueConfig {
    /// The queue's name, the `name` label of its metrics (`csi-attacher-va`). An unnamed queue
    /// reports no metrics, as in client-go.
    pub name: String,
    /// Where the queue reports its `workqueue_*` metrics; `None` for none.
    pub metrics: Option<Metrics>,
}

impl QueueConfig {
    /// A named queue without metrics.
    pub fn new(name: impl Into<String>) -> QueueConfig {
        QueueConfig {
            name: name.into(),
            metrics: None,
        }
    }

    /// Reports into `metrics` (when the queue has a name).
    pub fn metrics(mut self, metrics: &Metrics) -> QueueConfig {
        self.metrics = Some(metrics.clone());
        self
    }
}

/// A work queue with client-go's `workqueue.TypedRateLimitingInterface` semantics. Cheap to
/// clone: clones are handles to the same queue.
///
/// - **De-duplication.** A key is queued at most once: adding a key that is already waiting
///   does nothing. A key is handed to at most one worker at a time: adding a key while it is
///   being processed marks it dirty, and [`WorkQueue::done`] queues it again.
/// - **Order.** First in, first out.
/// - **Delays.** [`WorkQueue::add_after`] adds a key once a delay has passed; if the key is
///   already waiting for a delay, the earlier deadline wins.
/// - **Rate limiting.** [`WorkQueue::add_rate_limited`] adds a key after the delay its
///   [`RateLimiter`] gives; [`WorkQueue::forget`] resets the limiter's count for it.
/// - **Shutdown.** After [`WorkQueue::shut_down`] or [`WorkQueue::shut_down_with_drain`], adds
///   are ignored and delayed keys dropped; [`WorkQueue::get`] still hands out the keys that are
///   queued, then returns `None`.
///
/// Every key taken with [`WorkQueue::get`] must be given back with [`WorkQueue::done`]
/// ([`run_workers`](crate::run_workers) does both).
///
/// Delays and the metrics' unfinished-work gauges are driven by a task on the Tokio runtime,
/// started on first need (the first positive delay, the first `get` of a queue with metrics);
/// so those calls must be made within a runtime, and that task stops at shutdown or when the
/// last handle is dropped.
pub struct WorkQueue<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> WorkQueue<K> {
        WorkQueue {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("WorkQueue")
            .field("name", &self.shared.name)
            .field("len", &state.queue.len())
            .field("processing", &state.processing.len())
            .field("waiting", &state.waiting.by_key.len())
            .field("shutting_down", &state.shutting_down)
            .finish()
    }
}

struct Shared<K> {
    name: String,
    state: Mutex<State<K>>,
    rate_limiter: Box<dyn RateLimiter<K>>,
    /// `workqueue_retries_total` of this queue, if it has metrics.
    retries: Option<Counter>,
    /// A key was queued, or the queue is shutting down: client-go's `cond` for `Get`.
    item_ready: Notify,
    /// The processing set became empty, or a drain was cut short: client-go's `cond` for
    /// `ShutDownWithDrain`.
    processing_empty: Notify,
    /// Wakes the background task: a new delay deadline.
    wake_background: Arc<Notify>,
    /// Stops the background task: shutdown, or the queue dropped.
    stop_background: CancellationToken,
}

impl<K> Drop for Shared<K> {
    fn drop(&mut self) {
        self.stop_background.cancel();
    }
}

struct State<K> {
    /// The order in which keys are handed out. Every key here is in `dirty` and not in
    /// `processing`.
    queue: VecDeque<K>,
    /// Every key that needs processing: the queued ones and those added again while being
    /// processed.
    dirty: HashSet<K>,
    /// The keys handed to a worker and not yet done. They may be dirty too.
    processing: HashSet<K>,
    shutting_down: bool,
    drain: bool,
    /// Keys waiting for their delay to pass.
    waiting: Waiting<K>,
    metrics: Option<QueueMetrics<K>>,
    background_started: bool,
}

/// The delaying queue's priority queue: each key once, at its earliest deadline.
struct Waiting<K> {
    by_key: HashMap<K, (Instant, u64)>,
    by_deadline: BTreeMap<(Instant, u64), K>,
    /// Tie-breaker for equal deadlines: insertion order.
    seq: u64,
}

impl<K: Clone + Eq + Hash> Waiting<K> {
    fn new() -> Waiting<K> {
        Waiting {
            by_key: HashMap::new(),
            by_deadline: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Adds `key` at `ready_at`, or moves it there if that is earlier than its deadline.
    fn insert(&mut self, key: K, ready_at: Instant) {
        if let Some(&(existing, seq)) = self.by_key.get(&key) {
            if existing <= ready_at {
                return;
            }
            self.by_deadline.remove(&(existing, seq));
        }
        self.seq += 1;
        self.by_key.insert(key.clone(), (ready_at, self.seq));
        self.by_deadline.insert((ready_at, self.seq), key);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first_key_value().map(|(&(at, _), _)| at)
    }

    /// Removes and returns the first key whose deadline is not after `now`.
    fn pop_ready(&mut self, now: Instant) -> Option<K> {
        let entry = self.by_deadline.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let key = entry.remove();
        self.by_key.remove(&key);
        Some(key)
    }

    fn clear(&mut self) {
        self.by_key.clear();
        self.by_deadline.clear();
    }
}

impl<K> Shared<K> {
    fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K> Shared<K>
where
    K: Clone + Eq + Hash + Send + 'static,
{
    /// client-go's `Typed.Add`, under the lock.
    fn add_locked(&self, state: &mut State<K>, key: K) {
        if state.shutting_down || state.dirty.contains(&key) {
            return;
        }
        if let Some(metrics) = &mut state.metrics {
            metrics.add(&key);
        }
        state.dirty.insert(key.clone());
        if state.processing.contains(&key) {
            return;
        }
        state.queue.push_back(key);
        self.item_ready.notify_one();
    }

    /// Queues every delayed key whose deadline has passed; returns the next deadline.
    fn add_ready(&self, now: Instant) -> Option<Instant> {
        let mut state = self.lock();
        while let Some(key) = state.waiting.pop_ready(now) {
            self.add_locked(&mut state, key);
        }
        state.waiting.next_deadline()
    }

    fn update_unfinished_work(&self) {
        let state = self.lock();
        if state.shutting_down {
            return;
        }
        if let Some(metrics) = &state.metrics {
            metrics.update_unfinished_work();
        }
    }

    fn start_background(self: &Arc<Self>, state: &mut State<K>) {
        if state.background_started || state.shutting_down {
            return;
        }
        state.background_started = true;
        tokio::spawn(background(
            Arc::downgrade(self),
            Arc::clone(&self.wake_background),
            self.stop_background.clone(),
            state.metrics.is_some(),
        ));
    }
}

/// client-go's delaying `waitingLoop` and the typed queue's `updateUnfinishedWorkLoop` in one
/// task. It holds the queue weakly, so dropping every handle ends it.
async fn background<K>(
    shared: Weak<Shared<K>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    update_metrics: bool,
) where
    K: Clone + Eq + Hash + Send + 'static,
{
    let mut ticker = update_metrics.then(|| {
        let mut ticker = tokio::time::interval_at(
            Instant::now() + UNFINISHED_WORK_UPDATE_PERIOD,
            UNFINISHED_WORK_UPDATE_PERIOD,
        );
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        ticker
    });
    loop {
        let next_deadline = match shared.upgrade() {
            Some(shared) => shared.add_ready(Instant::now()),
            None => return,
        };
        // Created before waiting; a wake-up sent in between is kept as a permit.
        let woken = wake.notified();
        let deadline = async {
            match next_deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let tick = async {
            match ticker.as_mut() {
                Some(ticker) => {
                    ticker.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = woken => {}
            () = deadline => {}
            () = tick => {
                if let Some(shared) = shared.upgrade() {
                    shared.update_unfinished_work();
                }
            }
        }
    }
}

impl<K> WorkQueue<K>
where
    K: Clone + Eq + Hash + Send + 'static,
{
    /// An unnamed queue without metrics: client-go's `NewTypedRateLimitingQueue`.
    pub fn new(rate_limiter: impl RateLimiter<K> + 'static) -> WorkQueue<K> {
        WorkQueue::with_config(rate_limiter, QueueConfig::default())
    }

    /// A queue with a name and, if the name is not empty and `config.metrics` is set, metrics:
    /// client-go's `NewTypedRateLimitingQueueWithConfig`.
    pub fn with_config(
        rate_limiter: impl RateLimiter<K> + 'static,
        config: QueueConfig,
    ) -> WorkQueue<K> {
        let (metrics, retries) = match &config.metrics {
            Some(metrics) if !config.name.is_empty() => {
                let (queue, retries) = metrics.for_queue(&config.name);
                (Some(queue), Some(retries))
            }
            _ => (None, None),
        };
        WorkQueue {
            shared: Arc::new(Shared {
                name: config.name,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    shutting_down: false,
                    drain: false,
                    waiting: Waiting::new(),
                    metrics,
                    background_started: false,
                }),
                rate_limiter: Box::new(rate_limiter),
                retries,
                item_ready: Notify::new(),
                processing_empty: Notify::new(),
                wake_background: Arc::new(Notify::new()),
                stop_background: CancellationToken::new(),
            }),
        }
    }

    /// The queue's name (empty if unnamed).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Marks `key` as needing processing. Does nothing if it is already waiting or the queue is
    /// shutting down; if it is being processed, it is queued again when it is
    /// [done](WorkQueue::done).
    pub fn add(&self, key: K) {
        let mut state = self.shared.lock();
        self.shared.add_locked(&mut state, key);
    }

    /// How many keys are queued (not counting keys being processed, nor those added again while
    /// being processed). For information only: do not decide to `add` or `get` on it.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Whether no key is queued (see [`WorkQueue::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for a key to process and hands it out; the caller must call [`WorkQueue::done`]
    /// with it when finished. Returns `None` once the queue is shutting down and nothing is left
    /// queued (client-go's `shutdown == true`).
    ///
    /// Cancel-safe: a `get` dropped before it returns takes no key.
    pub async fn get(&self) -> Option<K> {
        loop {
            let mut ready = pin!(self.shared.item_ready.notified());
            // Registered before looking, so a key queued after the look wakes us.
            ready.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if let Some(key) = state.queue.pop_front() {
                    if let Some(metrics) = &mut state.metrics {
                        metrics.get(&key);
                    }
                    state.processing.insert(key.clone());
                    state.dirty.remove(&key);
                    if state.metrics.is_some() {
                        self.shared.start_background(&mut state);
                    }
                    return Some(key);
                }
                if state.shutting_down {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// Marks `key` as processed. If it was added again meanwhile, it is queued again.
    ///
    /// Unlike client-go, `done` for a key that is not being processed changes nothing (Go
    /// would queue a dirty key a second time, and two workers could then get it at once).
    pub fn done(&self, key: &K) {
        let mut state = self.shared.lock();
        if let Some(metrics) = &mut state.metrics {
            metrics.done(key);
        }
        if !state.processing.remove(key) {
            return;
        }
        if state.dirty.contains(key) {
            state.queue.push_back(key.clone());
            self.shared.item_ready.notify_one();
        }
        if state.processing.is_empty() {
            self.shared.processing_empty.notify_waiters();
        }
    }

    /// Stops the queue: later adds are ignored, delayed keys are dropped, workers get the keys
    /// still queued and then `None`. Returns at once, without waiting for keys being processed;
    /// cuts short a [`WorkQueue::shut_down_with_drain`] in progress. Calling it again does
    /// nothing more.
    pub fn shut_down(&self) {
        {
            let mut state = self.shared.lock();
            state.drain = false;
            state.shutting_down = true;
            state.waiting.clear();
        }
        self.shared.stop_background.cancel();
        self.shared.item_ready.notify_waiters();
        self.shared.processing_empty.notify_waiters();
    }

    /// As [`WorkQueue::shut_down`], then waits until no key is being processed (every key
    /// handed out is [done](WorkQueue::done)). A [`WorkQueue::shut_down`] meanwhile ends the
    /// wait. As in client-go, keys still queued are not waited for: workers should keep calling
    /// [`WorkQueue::get`] until it returns `None`.
    pub async fn shut_down_with_drain(&self) {
        {
            let mut state = self.shared.lock();
            state.drain = true;
            state.shutting_down = true;
            state.waiting.clear();
        }
        self.shared.stop_background.cancel();
        self.shared.item_ready.notify_waiters();
        loop {
            let mut emptied = pin!(self.shared.processing_empty.notified());
            emptied.as_mut().enable();
            {
                let state = self.shared.lock();
                if state.processing.is_empty() || !state.drain {
                    return;
                }
            }
            emptied.await;
        }
    }

    /// Whether the queue is shutting down.
    pub fn shutting_down(&self) -> bool {
        self.shared.lock().shutting_down
    }

    /// Adds `key` once `delay` has passed (at once for a zero delay). If `key` is already
    /// waiting for a delay, it keeps the earlier of the two deadlines. Ignored when shutting
    /// down. Counts one `workqueue_retries_total`.
    ///
    /// # Panics
    ///
    /// With a positive delay, if called outside a Tokio runtime for the queue's first delay.
    pub fn add_after(&self, key: K, delay: Duration) {
        let mut state = self.shared.lock();
        if state.shutting_down {
            return;
        }
        if let Some(retries) = &self.shared.retries {
            retries.inc();
        }
        if delay.is_zero() {
            self.shared.add_locked(&mut state, key);
            return;
        }
        state.waiting.insert(key, Instant::now() + delay);
        self.shared.start_background(&mut state);
        drop(state);
        self.shared.wake_background.notify_one();
    }

    /// Adds `key` after the delay the rate limiter gives it, counting one more failure of it.
    pub fn add_rate_limited(&self, key: K) {
        let delay = self.shared.rate_limiter.when(&key);
        self.add_after(key, delay);
    }

    /// Tells the rate limiter to stop tracking `key` (it succeeded, or failed for good). Does
    /// not remove it from the queue; [`WorkQueue::done`] is still needed.
    pub fn forget(&self, key: &K) {
        self.shared.rate_limiter.forget(key);
    }

    /// How many failures of `key` the rate limiter is tracking.
    pub fn num_requeues(&self, key: &K) -> usize {
        self.shared.rate_limiter.num_requeues(key)
    }

    /// How many keys are being processed.
    #[cfg(test)]
    pub(crate) fn processing_len(&self) -> usize {
        self.shared.lock().processing.len()
    }

    /// When a delayed key will be added, if it is waiting.
    #[cfg(test)]
    fn ready_at(&self, key: &K) -> Option<Instant> {
        self.shared
            .lock()
            .waiting
            .by_key
            .get(key)
            .map(|&(at, _)| at)
    }
}

#[cfg(test)]
mod tests;
