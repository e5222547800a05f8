//! client-go's `metrics_test.go`, and the exposition of a small scenario.

use csi_metrics::{MetricFamily, SampleValue};

use super::*;
use crate::{ItemExponentialFailureRateLimiter, QueueConfig, WorkQueue};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

fn family(registry: &Registry, name: &str) -> MetricFamily {
    registry
        .gather()
        .into_iter()
        .find(|family| family.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The value of the `name="test"` series of a counter or gauge.
fn value(registry: &Registry, name: &str) -> f64 {
    match family(registry, name).samples[0].value {
        SampleValue::Value(v) => v,
        SampleValue::Histogram(_) => panic!("{name} is a histogram"),
    }
}

/// `(count, sum)` of the `name="test"` series of a histogram.
fn observed(registry: &Registry, name: &str) -> (u64, f64) {
    match &family(registry, name).samples[0].value {
        SampleValue::Histogram(h) => (h.count, h.sum),
        SampleValue::Value(_) => panic!("{name} is not a histogram"),
    }
}

fn queue(metrics: &Metrics, name: &str) -> WorkQueue<String> {
    WorkQueue::with_config(
        ItemExponentialFailureRateLimiter::new(SECOND, 1000 * SECOND),
        QueueConfig::new(name).metrics(metrics),
    )
}

#[tokio::test(start_paused = true)]
async fn test_metrics() {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    let q = queue(&metrics, "test");
    let foo = "foo".to_string();

    q.add(foo.clone());
    assert_eq!(value(&registry, "workqueue_adds_total"), 1.0);
    assert_eq!(value(&registry, "workqueue_depth"), 1.0);

    tokio::time::advance(Duration::from_micros(50)).await;

    // Start processing
    let i = q.get().await.unwrap();
    assert_eq!(i, "foo");
    assert_eq!(
        observed(&registry, "workqueue_queue_duration_seconds"),
        (1, 5e-05)
    );

    // Add it back while processing; multiple adds of the same item are de-duped.
    for _ in 0..5 {
        q.add(i.clone());
    }
    assert_eq!(value(&registry, "workqueue_adds_total"), 2.0);
    // One thing remains in the queue
    assert_eq!(value(&registry, "workqueue_depth"), 1.0);

    tokio::time::advance(Duration::from_micros(25)).await;

    // Finish it up
    q.done(&i);
    assert_eq!(
        observed(&registry, "workqueue_work_duration_seconds"),
        (1, 2.5e-05)
    );
    // One thing remains in the queue
    assert_eq!(value(&registry, "workqueue_depth"), 1.0);

    // It should be back on the queue
    let i = q.get().await.unwrap();
    assert_eq!(i, "foo");
    assert_eq!(
        observed(&registry, "workqueue_queue_duration_seconds"),
        (2, 5e-05 + 2.5e-05)
    );
    assert_eq!(value(&registry, "workqueue_depth"), 0.0);

    q.done(&i);
    assert_eq!(observed(&registry, "workqueue_work_duration_seconds").0, 2);
}

#[tokio::test(start_paused = true)]
async fn exposition_of_a_small_scenario() {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    let q = queue(&metrics, "test");
    // Unnamed: no series, as in client-go.
    let unnamed = queue(&metrics, "");
    unnamed.add("ignored".to_string());
    unnamed.add_after("ignored".to_string(), Duration::ZERO);

    let foo = "foo".to_string();
    q.add(foo.clone()); // t=0
    tokio::time::sleep(SECOND).await;
    let item = q.get().await.unwrap(); // t=1: waited 1s; ticks from now on every 0.5s
    q.add(foo.clone()); // dirty while processing
    tokio::time::sleep(Duration::from_millis(2250)).await;
    // t=3.25; the last tick (t=3) saw foo 2s in progress.
    assert_eq!(value(&registry, "workqueue_unfinished_work_seconds"), 2.0);
    q.done(&item); // worked 2.25s; queued again
    let item = q.get().await.unwrap(); // waited 2.25s
    q.add_rate_limited("bar".to_string()); // one retry, due at t=4.25
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // t=4.35; bar was added at 4.25; the last tick (t=4) saw foo 0.75s in progress.

    assert_eq!(
        registry.gather_text(),
        r#"# HELP workqueue_adds_total [BETA] Total number of adds handled by workqueue
# TYPE workqueue_adds_total counter
workqueue_adds_total{name="test"} 3
# HELP workqueue_depth [BETA] Current depth of workqueue
# TYPE workqueue_depth gauge
workqueue_depth{name="test"} 1
# HELP workqueue_longest_running_processor_seconds [BETA] How many seconds has the longest running processor for workqueue been running.
# TYPE workqueue_longest_running_processor_seconds gauge
workqueue_longest_running_processor_seconds{name="test"} 0.75
# HELP workqueue_queue_duration_seconds [BETA] How long in seconds an item stays in workqueue before being requested.
# TYPE workqueue_queue_duration_seconds histogram
workqueue_queue_duration_seconds_bucket{name="test",le="1e-08"} 0
workqueue_queue_duration_seconds_bucket{name="test",le="1e-07"} 0
workqueue_queue_duration_seconds_bucket{name="test",le="1e-06"} 0
workqueue_queue_duration_seconds_bucket{name="test",le="9.999999999999999e-06"} 0
workqueue_queue_duration_seconds_bucket{name="test",le="9.999999999999999e-05"} 0
workqueue_queue_duration_seconds_bucket{name="test",le="0.001"} 0
workqueue_queue_duration_seconds_bucket{name="test",le="0.01"} 0
workqueue_queue_duration_seconds_bucket{name="test",le="0.1"} 0
workqueue_queue_duration_seconds_bucket{name="test",le="1"} 1
workqueue_queue_duration_seconds_bucket{name="test",le="10"} 2
workqueue_queue_duration_seconds_bucket{name="test",le="+Inf"} 2
workqueue_queue_duration_seconds_sum{name="test"} 3.25
workqueue_queue_duration_seconds_count{name="test"} 2
# HELP workqueue_retries_total [BETA] Total number of retries handled by workqueue
# TYPE workqueue_retries_total counter
workqueue_retries_total{name="test"} 1
# HELP workqueue_unfinished_work_seconds [BETA] How many seconds of work has done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.
# TYPE workqueue_unfinished_work_seconds gauge
workqueue_unfinished_work_seconds{name="test"} 0.75
# HELP workqueue_work_duration_seconds [BETA] How long in seconds processing an item from workqueue takes.
# TYPE workqueue_work_duration_seconds histogram
workqueue_work_duration_seconds_bucket{name="test",le="1e-08"} 0
workqueue_work_duration_seconds_bucket{name="test",le="1e-07"} 0
workqueue_work_duration_seconds_bucket{name="test",le="1e-06"} 0
workqueue_work_duration_seconds_bucket{name="test",le="9.999999999999999e-06"} 0
workqueue_work_duration_seconds_bucket{name="test",le="9.999999999999999e-05"} 0
workqueue_work_duration_seconds_bucket{name="test",le="0.001"} 0
workqueue_work_duration_seconds_bucket{name="test",le="0.01"} 0
workqueue_work_duration_seconds_bucket{name="test",le="0.1"} 0
workqueue_work_duration_seconds_bucket{name="test",le="1"} 0
workqueue_work_duration_seconds_bucket{name="test",le="10"} 1
workqueue_work_duration_seconds_bucket{name="test",le="+Inf"} 1
workqueue_work_duration_seconds_sum{name="test"} 2.25
workqueue_work_duration_seconds_count{name="test"} 1
"#
    );

    // After shutdown the gauges keep their last values, as client-go's do.
    q.shut_down();
    tokio::time::sleep(10 * SECOND).await;
    assert_eq!(value(&registry, "workqueue_unfinished_work_seconds"), 0.75);
    q.done(&item);
    assert_eq!(observed(&registry, "workqueue_work_duration_seconds").0, 2);
}

#[tokio::test(start_paused = true)]
async fn unfinished_work_sums_every_key_and_keeps_the_oldest() {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    let q = queue(&metrics, "test");
    q.add("a".to_string());
    let a = q.get().await.unwrap(); // t=0, ticks at 0.5, 1, ...
    tokio::time::sleep(Duration::from_millis(750)).await;
    q.add("b".to_string());
    let b = q.get().await.unwrap(); // t=0.75
    tokio::time::sleep(Duration::from_millis(300)).await; // t=1.05; tick at t=1
    assert_eq!(value(&registry, "workqueue_unfinished_work_seconds"), 1.25);
    assert_eq!(
        value(&registry, "workqueue_longest_running_processor_seconds"),
        1.0
    );
    q.done(&a);
    q.done(&b);
    tokio::time::sleep(500 * MS).await;
    assert_eq!(value(&registry, "workqueue_unfinished_work_seconds"), 0.0);
    assert_eq!(
        value(&registry, "workqueue_longest_running_processor_seconds"),
        0.0
    );
}

#[test]
fn queues_share_one_metrics_handle_by_name() {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    // A second registration on the same registry is refused, whole.
    assert!(matches!(
        Metrics::register(&registry),
        Err(csi_metrics::Error::AlreadyRegistered { .. })
    ));

    let va = queue(&metrics, "csi-attacher-va");
    let pv = queue(&metrics, "csi-attacher-pv");
    va.add("va-1".to_string());
    va.add("va-2".to_string());
    pv.add("pv-1".to_string());
    let text = registry.gather_text();
    assert!(
        text.contains("workqueue_depth{name=\"csi-attacher-pv\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("workqueue_depth{name=\"csi-attacher-va\"} 2\n"),
        "{text}"
    );
    // Every series exists from the start, zero-valued.
    assert!(
        text.contains("workqueue_retries_total{name=\"csi-attacher-pv\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("workqueue_unfinished_work_seconds{name=\"csi-attacher-va\"} 0\n"),
        "{text}"
    );
}

#[test]
fn families_have_component_base_names() {
    assert_eq!(
        Metrics::new().family_names(),
        [
            "workqueue_depth",
            "workqueue_adds_total",
            "workqueue_queue_duration_seconds",
            "workqueue_work_duration_seconds",
            "workqueue_unfinished_work_seconds",
            "workqueue_longest_running_processor_seconds",
            "workqueue_retries_total",
        ]
    );
}
