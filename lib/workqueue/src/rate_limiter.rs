//! Rate limiters: how long a key waits before it is re-added after a failure. client-go's
//! `default_rate_limiters.go`, typed.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Decides how long a key waits before it is re-added: client-go's `TypedRateLimiter`.
///
/// [`WorkQueue::add_rate_limited`](crate::WorkQueue::add_rate_limited) calls
/// [`RateLimiter::when`] and adds the key after that delay;
/// [`WorkQueue::forget`](crate::WorkQueue::forget) calls [`RateLimiter::forget`].
pub trait RateLimiter<K>: Send + Sync {
    /// How long `key` should wait now. Counts as one more failure of `key` for limiters that
    /// count them.
    fn when(&self, key: &K) -> Duration;

    /// Stops tracking `key`, whether it finally succeeded or failed for good.
    fn forget(&self, key: &K);

    /// How many failures of `key` are being tracked.
    fn num_requeues(&self, key: &K) -> usize;
}

impl<K, R: RateLimiter<K> + ?Sized> RateLimiter<K> for Box<R> {
    fn when(&self, key: &K) -> Duration {
        (**self).when(key)
    }

    fn forget(&self, key: &K) {
        (**self).forget(key)
    }

    fn num_requeues(&self, key: &K) -> usize {
        (**self).num_requeues(key)
    }
}

impl<K, R: RateLimiter<K> + ?Sized> RateLimiter<K> for Arc<R> {
    fn when(&self, key: &K) -> Duration {
        (**self).when(key)
    }

    fn forget(&self, key: &K) {
        (**self).forget(key)
    }

    fn num_requeues(&self, key: &K) -> usize {
        (**self).num_requeues(key)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// client-go's `DefaultTypedControllerRateLimiter`: the larger of a per-key exponential backoff
/// (5ms doubling up to 1000s) and an overall token bucket (10 per second, bursts of 100).
pub fn default_controller_rate_limiter<K>() -> MaxOfRateLimiter<K>
where
    K: Clone + Eq + Hash + Send + 'static,
{
    MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

/// client-go's `DefaultTypedItemBasedRateLimiter`: a per-key exponential backoff from 1ms up to
/// 1000s.
pub fn default_item_based_rate_limiter<K: Clone + Eq + Hash>()
-> ItemExponentialFailureRateLimiter<K> {
    ItemExponentialFailureRateLimiter::new(Duration::from_millis(1), Duration::from_secs(1000))
}

/// `base * 2^failures`, capped at `max`: client-go's `TypedItemExponentialFailureRateLimiter`.
///
/// The n-th failure of a key (counting from 0) waits `base * 2^n`. The product is computed in
/// floating point as client-go does, so it never overflows: once it exceeds what Go's
/// `time.Duration` can hold (2^63 - 1 ns, about 292 years) the delay is `max`.
#[derive(Debug)]
pub struct ItemExponentialFailureRateLimiter<K> {
    failures: Mutex<HashMap<K, usize>>,
    base_delay: Duration,
    max_delay: Duration,
}

impl<K> ItemExponentialFailureRateLimiter<K> {
    /// Starts at `base_delay` and doubles per failure up to `max_delay`.
    pub fn new(base_delay: Duration, max_delay: Duration) -> ItemExponentialFailureRateLimiter<K> {
        ItemExponentialFailureRateLimiter {
            failures: Mutex::new(HashMap::new()),
            base_delay,
            max_delay,
        }
    }
}

/// client-go's arithmetic: `float64(base.Nanoseconds()) * math.Pow(2, exp)`, `max` above
/// `math.MaxInt64`, otherwise truncated to whole nanoseconds and capped at `max`.
fn exponential_backoff(base: Duration, exp: usize, max: Duration) -> Duration {
    // powi multiplies by 2 exactly, as Go's math.Pow does for integer exponents; from 2^1024 on
    // it is +Inf, which is above the limit too.
    let factor = 2f64.powi(i32::try_from(exp).unwrap_or(i32::MAX));
    let backoff = base.as_nanos() as f64 * factor;
    if backoff.is_nan() {
        // A zero base times +Inf. Go converts NaN to a negative duration, which the queue treats
        // as "add now"; so does a zero delay.
        return Duration::ZERO;
    }
    if backoff > i64::MAX as f64 {
        return max;
    }
    // At most 2^63 here, so the conversion truncates as Go's does. (At exactly 2^63 Go's
    // conversion overflows to a negative duration on amd64, an immediate retry; we give `max`.)
    let calculated = Duration::from_nanos(backoff as u64);
    calculated.min(max)
}

impl<K: Clone + Eq + Hash + Send> RateLimiter<K> for ItemExponentialFailureRateLimiter<K> {
    fn when(&self, key: &K) -> Duration {
        let exp = {
            let mut failures = lock(&self.failures);
            let count = failures.entry(key.clone()).or_insert(0);
            let exp = *count;
            *count += 1;
            exp
        };
        exponential_backoff(self.base_delay, exp, self.max_delay)
    }

    fn forget(&self, key: &K) {
        lock(&self.failures).remove(key);
    }

    fn num_requeues(&self, key: &K) -> usize {
        lock(&self.failures).get(key).copied().unwrap_or(0)
    }
}

/// `fast_delay` for the first `max_fast_attempts` failures of a key, `slow_delay` after that:
/// client-go's `TypedItemFastSlowRateLimiter`.
#[derive(Debug)]
pub struct ItemFastSlowRateLimiter<K> {
    failures: Mutex<HashMap<K, usize>>,
    max_fast_attempts: usize,
    fast_delay: Duration,
    slow_delay: Duration,
}

impl<K> ItemFastSlowRateLimiter<K> {
    /// A limiter with these delays and number of fast attempts.
    pub fn new(
        fast_delay: Duration,
        slow_delay: Duration,
        max_fast_attempts: usize,
    ) -> ItemFastSlowRateLimiter<K> {
        ItemFastSlowRateLimiter {
            failures: Mutex::new(HashMap::new()),
            max_fast_attempts,
            fast_delay,
            slow_delay,
        }
    }
}

impl<K: Clone + Eq + Hash + Send> RateLimiter<K> for ItemFastSlowRateLimiter<K> {
    fn when(&self, key: &K) -> Duration {
        let mut failures = lock(&self.failures);
        let count = failures.entry(key.clone()).or_insert(0);
        *count += 1;
        if *count <= self.max_fast_attempts {
            self.fast_delay
        } else {
            self.slow_delay
        }
    }

    fn forget(&self, key: &K) {
        lock(&self.failures).remove(key);
    }

    fn num_requeues(&self, key: &K) -> usize {
        lock(&self.failures).get(key).copied().unwrap_or(0)
    }
}

/// An overall token bucket, the same for every key: client-go's `TypedBucketRateLimiter` around
/// `golang.org/x/time/rate`'s `Limiter`, whose `Reserve().Delay()` it reproduces.
///
/// The bucket starts full with `burst` tokens and refills at `qps` tokens per second; every
/// [`RateLimiter::when`] takes one token, and when there is none the delay is the time until the
/// bucket will have refilled it (reservations queue up behind each other). It counts no
/// failures: [`RateLimiter::num_requeues`] is always 0. Time is Tokio's clock, so paused-time
/// tests control it.
#[derive(Debug)]
pub struct BucketRateLimiter {
    qps: f64,
    burst: usize,
    bucket: Mutex<Bucket>,
}

#[derive(Debug, Default)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` before the first use (Go's zero time,
    /// from which the bucket has long refilled).
    last: Option<Instant>,
}

/// The longest Go `time.Duration`: x/time/rate's `InfDuration`.
const INF_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

impl BucketRateLimiter {
    /// A bucket of `burst` tokens refilled at `qps` per second (Go's
    /// `rate.NewLimiter(rate.Limit(qps), burst)`).
    pub fn new(qps: f64, burst: usize) -> BucketRateLimiter {
        BucketRateLimiter {
            qps,
            burst,
            bucket: Mutex::new(Bucket::default()),
        }
    }

    /// x/time/rate's `Reserve().Delay()` for one token at `now`.
    fn reserve(&self, now: Instant) -> Duration {
        if self.qps == f64::INFINITY {
            return Duration::ZERO;
        }
        if self.burst == 0 {
            // A reservation larger than the burst is refused; Delay() is then InfDuration.
            return INF_DURATION;
        }
        let burst = self.burst as f64;
        let mut bucket = lock(&self.bucket);
        let refilled = match bucket.last {
            None => burst,
            Some(last) => {
                // The clock never goes back, but x/time/rate guards against it, so do we.
                let elapsed = now.saturating_duration_since(last).as_secs_f64();
                let delta = if self.qps <= 0.0 {
                    0.0
                } else {
                    elapsed * self.qps
                };
                (bucket.tokens + delta).min(burst)
            }
        };
        let tokens = refilled - 1.0;
        let wait = if tokens < 0.0 {
            duration_from_tokens(-tokens, self.qps)
        } else {
            Duration::ZERO
        };
        bucket.tokens = tokens;
        bucket.last = Some(now);
        wait
    }
}

/// x/time/rate's `Limit.durationFromTokens`.
fn duration_from_tokens(tokens: f64, qps: f64) -> Duration {
    if qps <= 0.0 {
        return INF_DURATION;
    }
    let nanos = tokens / qps * 1e9;
    if nanos > i64::MAX as f64 {
        return INF_DURATION;
    }
    Duration::from_nanos(nanos as u64)
}

impl<K> RateLimiter<K> for BucketRateLimiter {
    fn when(&self, _key: &K) -> Duration {
        self.reserve(Instant::now())
    }

    fn forget(&self, _key: &K) {}

    fn num_requeues(&self, _key: &K) -> usize {
        0
    }
}

/// Asks every limiter and takes the longest delay (and the largest failure count):
/// client-go's `TypedMaxOfRateLimiter`.
///
/// With a token bucket among the limiters, the bucket's burst can appear exceeded when some keys
/// were separately delayed for longer.
pub struct MaxOfRateLimiter<K> {
    limiters: Vec<Box<dyn RateLimiter<K>>>,
}

impl<K> MaxOfRateLimiter<K> {
    /// Combines these limiters. Every one of them is asked on every call.
    pub fn new(limiters: Vec<Box<dyn RateLimiter<K>>>) -> MaxOfRateLimiter<K> {
        MaxOfRateLimiter { limiters }
    }
}

impl<K> fmt::Debug for MaxOfRateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaxOfRateLimiter")
            .field("limiters", &self.limiters.len())
            .finish()
    }
}

impl<K> RateLimiter<K> for MaxOfRateLimiter<K> {
    fn when(&self, key: &K) -> Duration {
        // Every limiter must see the failure, so no short-circuiting.
        self.limiters
            .iter()
            .map(|limiter| limiter.when(key))
            .fold(Duration::ZERO, Duration::max)
    }

    fn forget(&self, key: &K) {
        for limiter in &self.limiters {
            limiter.forget(key);
        }
    }

    fn num_requeues(&self, key: &K) -> usize {
        self.limiters
            .iter()
            .map(|limiter| limiter.num_requeues(key))
            .max()
            .unwrap_or(0)
    }
}

/// Caps another limiter's delay at `max_delay`: client-go's `TypedWithMaxWaitRateLimiter`.
#[derive(Debug)]
pub struct WithMaxWaitRateLimiter<R> {
    limiter: R,
    max_delay: Duration,
}

impl<R> WithMaxWaitRateLimiter<R> {
    /// `limiter`, with its delays capped at `max_delay`.
    pub fn new(limiter: R, max_delay: Duration) -> WithMaxWaitRateLimiter<R> {
        WithMaxWaitRateLimiter { limiter, max_delay }
    }
}

impl<K, R: RateLimiter<K>> RateLimiter<K> for WithMaxWaitRateLimiter<R> {
    fn when(&self, key: &K) -> Duration {
        self.limiter.when(key).min(self.max_delay)
    }

    fn forget(&self, key: &K) {
        self.limiter.forget(key)
    }

    fn num_requeues(&self, key: &K) -> usize {
        self.limiter.num_requeues(key)
    }
}

#[cfg(test)]
mod tests;
