//! client-go's `default_rate_limiters_test.go`, plus the token bucket and the default controller
//! limiter.

use super::*;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn one() -> String {
    "one".to_string()
}

fn two() -> String {
    "two".to_string()
}

#[test]
fn test_item_exponential_failure_rate_limiter() {
    let limiter = ItemExponentialFailureRateLimiter::new(MS, SECOND);

    assert_eq!(limiter.when(&one()), MS);
    assert_eq!(limiter.when(&one()), 2 * MS);
    assert_eq!(limiter.when(&one()), 4 * MS);
    assert_eq!(limiter.when(&one()), 8 * MS);
    assert_eq!(limiter.when(&one()), 16 * MS);
    assert_eq!(limiter.num_requeues(&one()), 5);

    assert_eq!(limiter.when(&two()), MS);
    assert_eq!(limiter.when(&two()), 2 * MS);
    assert_eq!(limiter.num_requeues(&two()), 2);

    limiter.forget(&one());
    assert_eq!(limiter.num_requeues(&one()), 0);
    assert_eq!(limiter.when(&one()), MS);
}

#[test]
fn test_item_exponential_failure_rate_limiter_over_flow() {
    let limiter = ItemExponentialFailureRateLimiter::new(MS, 1000 * SECOND);
    for _ in 0..5 {
        limiter.when(&one());
    }
    assert_eq!(limiter.when(&one()), 32 * MS);

    let overflow1 = "overflow1".to_string();
    for _ in 0..1000 {
        limiter.when(&overflow1);
    }
    assert_eq!(limiter.when(&overflow1), 1000 * SECOND);

    let limiter = ItemExponentialFailureRateLimiter::new(MINUTE, 1000 * HOUR);
    for _ in 0..2 {
        limiter.when(&two());
    }
    assert_eq!(limiter.when(&two()), 4 * MINUTE);

    let overflow2 = "overflow2".to_string();
    for _ in 0..1000 {
        limiter.when(&overflow2);
    }
    assert_eq!(limiter.when(&overflow2), 1000 * HOUR);
}

#[test]
fn exponential_backoff_follows_gos_float_arithmetic() {
    let max = Duration::MAX;
    // 2^62 ns still fits Go's int64 Duration; from 2^63 on it is the cap.
    assert_eq!(
        exponential_backoff(Duration::from_nanos(1), 62, max),
        Duration::from_nanos(1 << 62)
    );
    assert_eq!(exponential_backoff(Duration::from_nanos(3), 62, max), max);
    assert_eq!(exponential_backoff(Duration::from_nanos(1), 5000, max), max);
    assert_eq!(
        exponential_backoff(Duration::from_nanos(1), usize::MAX, MINUTE),
        MINUTE
    );
    // 5ms * 2^40 is about 174 years: above an hour's cap, but no overflow.
    assert_eq!(exponential_backoff(5 * MS, 40, HOUR), HOUR);
    // A float product truncated to whole nanoseconds, as Go's time.Duration(float64) does.
    assert_eq!(
        exponential_backoff(Duration::from_nanos(1_500_000_001), 10, max),
        Duration::from_nanos(1_536_000_001_024)
    );
    // No base, no backoff, even when 2^exp is +Inf.
    assert_eq!(exponential_backoff(Duration::ZERO, 3, max), Duration::ZERO);
    assert_eq!(
        exponential_backoff(Duration::ZERO, 2000, max),
        Duration::ZERO
    );
}

#[test]
fn test_item_fast_slow_rate_limiter() {
    let limiter = ItemFastSlowRateLimiter::new(5 * MS, 10 * SECOND, 3);

    assert_eq!(limiter.when(&one()), 5 * MS);
    assert_eq!(limiter.when(&one()), 5 * MS);
    assert_eq!(limiter.when(&one()), 5 * MS);
    assert_eq!(limiter.when(&one()), 10 * SECOND);
    assert_eq!(limiter.when(&one()), 10 * SECOND);
    assert_eq!(limiter.num_requeues(&one()), 5);

    assert_eq!(limiter.when(&two()), 5 * MS);
    assert_eq!(limiter.when(&two()), 5 * MS);
    assert_eq!(limiter.num_requeues(&two()), 2);

    limiter.forget(&one());
    assert_eq!(limiter.num_requeues(&one()), 0);
    assert_eq!(limiter.when(&one()), 5 * MS);
}

#[test]
fn test_max_of_rate_limiter() {
    let limiter = MaxOfRateLimiter::new(vec![
        Box::new(ItemFastSlowRateLimiter::new(5 * MS, 3 * SECOND, 3)),
        Box::new(ItemExponentialFailureRateLimiter::new(MS, SECOND)),
    ]);

    assert_eq!(limiter.when(&one()), 5 * MS);
    assert_eq!(limiter.when(&one()), 5 * MS);
    assert_eq!(limiter.when(&one()), 5 * MS);
    assert_eq!(limiter.when(&one()), 3 * SECOND);
    assert_eq!(limiter.when(&one()), 3 * SECOND);
    assert_eq!(limiter.num_requeues(&one()), 5);

    assert_eq!(limiter.when(&two()), 5 * MS);
    assert_eq!(limiter.when(&two()), 5 * MS);
    assert_eq!(limiter.num_requeues(&two()), 2);

    limiter.forget(&one());
    assert_eq!(limiter.num_requeues(&one()), 0);
    assert_eq!(limiter.when(&one()), 5 * MS);
}

/// `base` for the first `threshold` calls, `max` after: the test limiter of client-go.
#[derive(Debug)]
struct StepRateLimiter {
    count: Mutex<usize>,
    threshold: usize,
    base_delay: Duration,
    max_delay: Duration,
}

impl<K> RateLimiter<K> for StepRateLimiter {
    fn when(&self, _key: &K) -> Duration {
        let mut count = lock(&self.count);
        *count += 1;
        if *count <= self.threshold {
            self.base_delay
        } else {
            self.max_delay
        }
    }

    fn forget(&self, _key: &K) {}

    fn num_requeues(&self, _key: &K) -> usize {
        0
    }
}

#[test]
fn test_with_max_wait_rate_limiter() {
    let limiter = WithMaxWaitRateLimiter::new(
        StepRateLimiter {
            count: Mutex::new(0),
            threshold: 100,
            base_delay: 5 * MS,
            max_delay: 1000 * SECOND,
        },
        500 * SECOND,
    );
    for i in 0..100 {
        assert_eq!(limiter.when(&i), 5 * MS);
    }
    for i in 100..200 {
        assert_eq!(limiter.when(&i), 500 * SECOND);
    }
}

#[tokio::test(start_paused = true)]
async fn bucket_rate_limiter_bursts_then_spaces_reservations() {
    let limiter = BucketRateLimiter::new(10.0, 100);
    // A full bucket: the first 100 go at once.
    for i in 0..100 {
        assert_eq!(
            RateLimiter::<i32>::when(&limiter, &i),
            Duration::ZERO,
            "call {i}"
        );
    }
    // Then one token per 100ms, reservations queueing behind each other.
    assert_eq!(RateLimiter::<i32>::when(&limiter, &0), 100 * MS);
    assert_eq!(RateLimiter::<i32>::when(&limiter, &0), 200 * MS);
    assert_eq!(RateLimiter::<i32>::num_requeues(&limiter, &0), 0);

    // 1s refills 10 tokens, 2 of which were already promised.
    tokio::time::advance(SECOND).await;
    for _ in 0..8 {
        assert_eq!(RateLimiter::<i32>::when(&limiter, &0), Duration::ZERO);
    }
    assert_eq!(RateLimiter::<i32>::when(&limiter, &0), 100 * MS);

    // Long idle: the bucket is full again, not fuller.
    tokio::time::advance(HOUR).await;
    for _ in 0..100 {
        assert_eq!(RateLimiter::<i32>::when(&limiter, &0), Duration::ZERO);
    }
    assert_eq!(RateLimiter::<i32>::when(&limiter, &0), 100 * MS);
}

#[test]
fn bucket_rate_limiter_edge_cases() {
    let unlimited = BucketRateLimiter::new(f64::INFINITY, 0);
    assert_eq!(RateLimiter::<i32>::when(&unlimited, &0), Duration::ZERO);
    // No burst: a token can never be had.
    let no_burst = BucketRateLimiter::new(10.0, 0);
    assert_eq!(RateLimiter::<i32>::when(&no_burst, &0), INF_DURATION);
    // No refill: the burst, then never.
    let no_refill = BucketRateLimiter::new(0.0, 1);
    assert_eq!(RateLimiter::<i32>::when(&no_refill, &0), Duration::ZERO);
    assert_eq!(RateLimiter::<i32>::when(&no_refill, &0), INF_DURATION);
}

#[tokio::test(start_paused = true)]
async fn default_controller_rate_limiter_is_the_max_of_backoff_and_bucket() {
    let limiter = default_controller_rate_limiter::<String>();
    // Per key: 5ms doubling, while the bucket has tokens.
    assert_eq!(limiter.when(&one()), 5 * MS);
    assert_eq!(limiter.when(&one()), 10 * MS);
    assert_eq!(limiter.when(&one()), 20 * MS);
    assert_eq!(limiter.num_requeues(&one()), 3);
    limiter.forget(&one());
    assert_eq!(limiter.num_requeues(&one()), 0);
    assert_eq!(limiter.when(&one()), 5 * MS);

    // 1000 failures of a key: capped at 1000s.
    for _ in 0..1000 {
        limiter.when(&two());
    }
    assert_eq!(limiter.when(&two()), 1000 * SECOND);

    // The bucket is now empty (1006 tokens taken): a fresh key waits for it, not 5ms.
    let fresh = "fresh".to_string();
    assert!(limiter.when(&fresh) > 90 * SECOND);
}

#[test]
fn default_item_based_rate_limiter_starts_at_one_millisecond() {
    let limiter = default_item_based_rate_limiter::<String>();
    assert_eq!(limiter.when(&one()), MS);
    assert_eq!(limiter.when(&one()), 2 * MS);
    for _ in 0..100 {
        limiter.when(&one());
    }
    assert_eq!(limiter.when(&one()), 1000 * SECOND);
}

#[test]
fn boxed_and_shared_limiters_are_limiters() {
    let shared = Arc::new(ItemExponentialFailureRateLimiter::<String>::new(MS, SECOND));
    let boxed: Box<dyn RateLimiter<String>> = Box::new(Arc::clone(&shared));
    assert_eq!(boxed.when(&one()), MS);
    assert_eq!(shared.num_requeues(&one()), 1);
    boxed.forget(&one());
    assert_eq!(shared.num_requeues(&one()), 0);
}
