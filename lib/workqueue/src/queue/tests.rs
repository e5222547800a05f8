//! client-go's `queue_test.go`, `delaying_queue_test.go` and `rate_limiting_queue_test.go`,
//! on Tokio's paused clock where time matters, and a few cases of our own.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::task::JoinSet;

use super::*;
use crate::rate_limiter::{ItemExponentialFailureRateLimiter, default_controller_rate_limiter};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

fn new_queue() -> WorkQueue<String> {
    WorkQueue::new(default_controller_rate_limiter())
}

fn key(s: &str) -> String {
    s.to_string()
}

/// Lets every other task run until it waits (the paused clock does not move meanwhile).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Shutdown {
    Now,
    WithDrain,
}

impl Shutdown {
    async fn apply<K: Clone + Eq + Hash + Send + 'static>(self, queue: &WorkQueue<K>) {
        match self {
            Shutdown::Now => queue.shut_down(),
            Shutdown::WithDrain => queue.shut_down_with_drain().await,
        }
    }
}

const AFTER_SHUTDOWN: &str = "added after shutdown!";

/// 50 producers add their number 50 times each while 10 consumers process; then shutdown.
async fn basic(shutdown: Shutdown, pause: Duration) {
    let queue = new_queue();

    let mut producers = JoinSet::new();
    for i in 0..50 {
        let queue = queue.clone();
        producers.spawn(async move {
            for _ in 0..50 {
                queue.add(i.to_string());
                if pause.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(pause).await;
                }
            }
        });
    }

    let mut consumers = JoinSet::new();
    for _ in 0..10 {
        let queue = queue.clone();
        consumers.spawn(async move {
            while let Some(item) = queue.get().await {
                assert_ne!(item, AFTER_SHUTDOWN, "got an item added after shutdown");
                if pause.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(3 * pause).await;
                }
                queue.done(&item);
            }
        });
    }

    producers.join_all().await;
    shutdown.apply(&queue).await;
    queue.add(key(AFTER_SHUTDOWN));
    consumers.join_all().await;
    assert_eq!(queue.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn test_basic() {
    basic(Shutdown::Now, MS).await;
    basic(Shutdown::WithDrain, MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_basic_multi_thread() {
    basic(Shutdown::Now, Duration::ZERO).await;
    basic(Shutdown::WithDrain, Duration::ZERO).await;
}

/// Every consumer adds each key back while processing it, up to twice; no key may ever be in
/// two consumers' hands at once.
async fn add_while_processing(shutdown: Shutdown) {
    let queue = new_queue();
    let in_hand = Arc::new(Mutex::new(HashSet::new()));

    let mut producers = JoinSet::new();
    for i in 0..50 {
        let queue = queue.clone();
        producers.spawn(async move { queue.add(i.to_string()) });
    }

    let mut consumers = JoinSet::new();
    for _ in 0..10 {
        let queue = queue.clone();
        let in_hand = Arc::clone(&in_hand);
        consumers.spawn(async move {
            let mut counters: HashMap<String, usize> = HashMap::new();
            while let Some(item) = queue.get().await {
                assert!(
                    in_hand.lock().unwrap().insert(item.clone()),
                    "{item} handed to two consumers"
                );
                let count = counters.entry(item.clone()).or_default();
                *count += 1;
                if *count < 2 {
                    queue.add(item.clone());
                }
                tokio::task::yield_now().await;
                in_hand.lock().unwrap().remove(&item);
                queue.done(&item);
            }
        });
    }

    producers.join_all().await;
    shutdown.apply(&queue).await;
    consumers.join_all().await;
    assert_eq!(queue.len(), 0);
}

#[tokio::test]
async fn test_add_while_processing() {
    add_while_processing(Shutdown::Now).await;
    add_while_processing(Shutdown::WithDrain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_add_while_processing_multi_thread() {
    add_while_processing(Shutdown::Now).await;
    add_while_processing(Shutdown::WithDrain).await;
}

#[test]
fn test_len() {
    let queue = new_queue();
    queue.add(key("foo"));
    assert_eq!(queue.len(), 1);
    queue.add(key("bar"));
    assert_eq!(queue.len(), 2);
    queue.add(key("foo")); // should not increase the queue length
    assert_eq!(queue.len(), 2);
    assert!(!queue.is_empty());
}

#[tokio::test]
async fn test_reinsert() {
    let queue = new_queue();
    queue.add(key("foo"));

    // Start processing
    let item = queue.get().await.unwrap();
    assert_eq!(item, "foo");

    // Add it back while processing: not queued yet
    queue.add(item.clone());
    assert_eq!(queue.len(), 0);

    // Finish it up
    queue.done(&item);

    // It should be back on the queue
    assert_eq!(queue.len(), 1);
    let item = queue.get().await.unwrap();
    assert_eq!(item, "foo");

    // Finish that one up
    queue.done(&item);
    assert!(queue.is_empty());
}

#[tokio::test]
async fn test_collapse() {
    let queue = new_queue();
    // Add a new one twice
    queue.add(key("bar"));
    queue.add(key("bar"));

    // It should get the new one
    let item = queue.get().await.unwrap();
    assert_eq!(item, "bar");

    // Finish that one up
    queue.done(&item);

    // There should be no more objects in the queue
    assert_eq!(queue.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn test_collapse_while_processing() {
    let queue = new_queue();
    queue.add(key("foo"));

    // Start processing
    let item = queue.get().await.unwrap();
    assert_eq!(item, "foo");

    // Add the same one twice
    queue.add(key("foo"));
    queue.add(key("foo"));

    // Another worker consuming the queue
    let other = tokio::spawn({
        let queue = queue.clone();
        async move {
            let item = queue.get().await.unwrap();
            assert_eq!(item, "foo");
            queue.done(&item);
        }
    });

    // The other worker must be blocked until we are done
    tokio::time::sleep(100 * MS).await;
    assert!(
        !other.is_finished(),
        "worker should be blocked until we are done"
    );
    queue.done(&key("foo"));

    // It consumes the object once; nothing is left
    other.await.unwrap();
    assert_eq!(queue.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn test_queue_drainage_using_shut_down_with_drain() {
    let queue = new_queue();
    queue.add(key("foo"));
    queue.add(key("bar"));

    let first = queue.get().await.unwrap();
    let second = queue.get().await.unwrap();

    let drain = tokio::spawn({
        let queue = queue.clone();
        async move { queue.shut_down_with_drain().await }
    });

    // ShutDownWithDrain is called before the items are done.
    while queue.get().await.is_some() {}
    tokio::time::sleep(SECOND).await;
    assert!(!drain.is_finished(), "drain must wait for the items");

    // Mark the first two items as done, as to finish up
    queue.done(&first);
    settle().await;
    assert!(!drain.is_finished(), "drain must wait for the second item");
    queue.done(&second);

    drain.await.unwrap();
}

#[tokio::test]
async fn test_no_queue_drainage_using_shut_down() {
    let queue = new_queue();
    queue.add(key("foo"));
    queue.add(key("bar"));

    queue.get().await.unwrap();
    queue.get().await.unwrap();

    // Returns at once, though neither item is done.
    queue.shut_down();
    assert!(queue.shutting_down());
    assert_eq!(queue.get().await, None);
}

#[tokio::test]
async fn test_force_queue_shutdown_using_shut_down() {
    let queue = new_queue();
    queue.add(key("foo"));
    queue.add(key("bar"));

    queue.get().await.unwrap();
    queue.get().await.unwrap();

    let drain = tokio::spawn({
        let queue = queue.clone();
        async move { queue.shut_down_with_drain().await }
    });

    // ShutDownWithDrain is called before ShutDown
    while queue.get().await.is_some() {}

    // ShutDown forces it to stop waiting (a second SIGTERM, say), without any Done.
    queue.shut_down();
    drain.await.unwrap();
}

#[tokio::test]
async fn test_queue_drainage_using_shut_down_with_drain_with_dirty_item() {
    let queue = new_queue();

    queue.add(key("foo"));
    let gotten = queue.get().await.unwrap();
    queue.add(key("foo"));

    let drain = tokio::spawn({
        let queue = queue.clone();
        async move { queue.shut_down_with_drain().await }
    });

    // ShutDownWithDrain has started and is blocked.
    while queue.get().await.is_some() {}

    // Finish "working".
    queue.done(&gotten);

    // Done put the dirty item back into the queue: not yet shut down for us.
    let again = queue.get().await.expect("should not have been done");
    queue.done(&again);

    // Now we are really done.
    assert_eq!(queue.get().await, None, "should have been done");

    drain.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn get_waits_for_an_add() {
    let queue = new_queue();
    let getter = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    tokio::time::sleep(SECOND).await;
    assert!(!getter.is_finished());
    queue.add(key("foo"));
    assert_eq!(getter.await.unwrap().as_deref(), Some("foo"));
}

#[tokio::test]
async fn get_hands_out_queued_keys_after_shut_down_then_none() {
    let queue = new_queue();
    queue.add(key("a"));
    queue.add(key("b"));
    queue.shut_down();
    queue.add(key("c"));
    assert_eq!(queue.get().await.as_deref(), Some("a"));
    assert_eq!(queue.get().await.as_deref(), Some("b"));
    assert_eq!(queue.get().await, None);
    assert_eq!(queue.get().await, None);
}

#[tokio::test]
async fn shut_down_wakes_every_waiting_getter() {
    let queue = new_queue();
    let mut getters = JoinSet::new();
    for _ in 0..5 {
        let queue = queue.clone();
        getters.spawn(async move { queue.get().await });
    }
    settle().await;
    queue.shut_down();
    assert_eq!(getters.join_all().await, vec![None; 5]);
}

#[tokio::test]
async fn shut_down_with_drain_returns_at_once_when_nothing_is_processed() {
    let queue = new_queue();
    queue.add(key("left"));
    queue.shut_down_with_drain().await;
    // As in client-go, queued keys are not waited for; they are still handed out.
    assert_eq!(queue.get().await.as_deref(), Some("left"));
}

#[tokio::test]
async fn done_for_a_key_not_being_processed_changes_nothing() {
    let queue = new_queue();
    queue.add(key("foo"));
    queue.done(&key("foo"));
    queue.done(&key("unknown"));
    assert_eq!(queue.len(), 1);

    let item = queue.get().await.unwrap();
    queue.add(item.clone());
    queue.done(&item);
    // A second done must not queue it twice.
    queue.done(&item);
    assert_eq!(queue.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn get_is_cancel_safe() {
    let queue = new_queue();
    // A get that times out takes nothing.
    assert!(tokio::time::timeout(SECOND, queue.get()).await.is_err());

    // A getter woken for a key and then dropped passes the wake-up on.
    // Boxed, so that dropping it drops the future itself.
    let mut first = Box::pin(queue.get());
    assert!(
        tokio::time::timeout(Duration::ZERO, first.as_mut())
            .await
            .is_err()
    );
    let second = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    settle().await;
    queue.add(key("foo"));
    drop(first);
    assert_eq!(second.await.unwrap().as_deref(), Some("foo"));
}

// delaying_queue_test.go

#[tokio::test(start_paused = true)]
async fn test_simple_queue() {
    let queue = new_queue();

    queue.add_after(key("foo"), 50 * MS);
    settle().await;
    assert_eq!(queue.len(), 0, "should not have added");

    tokio::time::sleep(60 * MS).await;
    assert_eq!(queue.len(), 1, "should have added");
    let item = queue.get().await.unwrap();
    queue.done(&item);

    // step past the next heartbeat
    tokio::time::sleep(10 * SECOND).await;
    assert_eq!(queue.len(), 0, "should not have added");
}

#[tokio::test(start_paused = true)]
async fn test_deduping() {
    let queue = new_queue();
    let first = key("foo");

    queue.add_after(first.clone(), 50 * MS);
    queue.add_after(first.clone(), 70 * MS);
    settle().await;
    assert_eq!(queue.len(), 0, "should not have added");

    // step past the first block, we should receive now
    tokio::time::sleep(60 * MS).await;
    assert_eq!(queue.len(), 1, "should have added");
    let item = queue.get().await.unwrap();
    queue.done(&item);

    // step past the second add
    tokio::time::sleep(20 * MS).await;
    assert_eq!(queue.len(), 0, "should not have added");

    // test again, but this time the earlier should override
    queue.add_after(first.clone(), 50 * MS);
    queue.add_after(first.clone(), 30 * MS);
    settle().await;
    assert_eq!(queue.len(), 0, "should not have added");

    tokio::time::sleep(40 * MS).await;
    assert_eq!(queue.len(), 1, "should have added");
    let item = queue.get().await.unwrap();
    queue.done(&item);

    // step past the second add
    tokio::time::sleep(20 * MS).await;
    assert_eq!(queue.len(), 0, "should not have added");
}

#[tokio::test(start_paused = true)]
async fn test_add_two_fire_early() {
    let queue = new_queue();
    let (first, second, third) = (key("foo"), key("bar"), key("baz"));

    queue.add_after(first.clone(), SECOND);
    queue.add_after(second.clone(), 50 * MS);
    settle().await;
    assert_eq!(queue.len(), 0, "should not have added");

    tokio::time::sleep(60 * MS).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue.get().await.unwrap(), second);

    queue.add_after(third.clone(), 2 * SECOND);

    tokio::time::sleep(SECOND).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue.get().await.unwrap(), first);

    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue.get().await.unwrap(), third);
}

#[tokio::test(start_paused = true)]
async fn test_copy_shifting() {
    let queue = new_queue();
    let (first, second, third) = (key("foo"), key("bar"), key("baz"));

    queue.add_after(first.clone(), SECOND);
    queue.add_after(second.clone(), 500 * MS);
    queue.add_after(third.clone(), 250 * MS);
    settle().await;
    assert_eq!(queue.len(), 0, "should not have added");

    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(queue.len(), 3);
    assert_eq!(queue.get().await.unwrap(), third);
    assert_eq!(queue.get().await.unwrap(), second);
    assert_eq!(queue.get().await.unwrap(), first);
}

#[tokio::test(start_paused = true)]
async fn add_after_zero_adds_at_once() {
    let queue = new_queue();
    queue.add_after(key("now"), Duration::ZERO);
    assert_eq!(queue.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn add_after_a_key_already_queued_does_not_queue_it_twice() {
    let queue = new_queue();
    queue.add(key("foo"));
    queue.add_after(key("foo"), 10 * MS);
    tokio::time::sleep(20 * MS).await;
    assert_eq!(queue.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_delay_passing_while_the_key_is_processed_requeues_it_after_done() {
    let queue = new_queue();
    queue.add(key("foo"));
    let item = queue.get().await.unwrap();
    queue.add_after(key("foo"), 10 * MS);
    tokio::time::sleep(20 * MS).await;
    assert_eq!(queue.len(), 0, "not while it is processed");
    queue.done(&item);
    assert_eq!(queue.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shut_down_drops_delayed_keys_and_ignores_new_ones() {
    let queue = new_queue();
    queue.add_after(key("delayed"), 10 * MS);
    settle().await;
    queue.shut_down();
    queue.add_after(key("later"), 10 * MS);
    queue.add_after(key("now"), Duration::ZERO);
    queue.add_rate_limited(key("limited"));
    tokio::time::sleep(SECOND).await;
    assert_eq!(queue.len(), 0);
    assert_eq!(queue.get().await, None);
}

#[tokio::test(start_paused = true)]
async fn delays_work_after_the_first_handle_is_dropped() {
    let queue = new_queue();
    let clone = queue.clone();
    queue.add_after(key("foo"), 10 * MS);
    drop(queue);
    tokio::time::sleep(20 * MS).await;
    assert_eq!(clone.len(), 1);
}

// rate_limiting_queue_test.go

#[tokio::test(start_paused = true)]
async fn test_rate_limiting_queue() {
    let limiter = ItemExponentialFailureRateLimiter::new(MS, SECOND);
    let queue = WorkQueue::new(limiter);
    let (one, two) = (key("one"), key("two"));

    // Adds with the limiter's delay, then lets it pass so the next one is not merged into it.
    async fn expect_delay(queue: &WorkQueue<String>, key: &String, expected: Duration) {
        queue.add_rate_limited(key.clone());
        assert_eq!(
            queue.ready_at(key).map(|at| at - Instant::now()),
            Some(expected)
        );
        tokio::time::sleep(expected).await;
        settle().await;
        let item = queue.get().await.unwrap();
        assert_eq!(&item, key);
        queue.done(&item);
    }

    expect_delay(&queue, &one, MS).await;
    expect_delay(&queue, &one, 2 * MS).await;
    assert_eq!(queue.num_requeues(&one), 2);

    expect_delay(&queue, &two, MS).await;
    expect_delay(&queue, &two, 2 * MS).await;

    queue.forget(&one);
    assert_eq!(queue.num_requeues(&one), 0);
    expect_delay(&queue, &one, MS).await;
}

#[tokio::test(start_paused = true)]
async fn add_rate_limited_twice_keeps_the_earlier_deadline() {
    let queue = WorkQueue::new(ItemExponentialFailureRateLimiter::new(SECOND, 60 * SECOND));
    queue.add_rate_limited(key("foo"));
    queue.add_rate_limited(key("foo"));
    assert_eq!(
        queue.ready_at(&key("foo")).map(|at| at - Instant::now()),
        Some(SECOND)
    );
    assert_eq!(queue.num_requeues(&key("foo")), 2);
}
