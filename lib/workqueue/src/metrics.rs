//! The `workqueue_*` metrics: component-base's `metrics/prometheus/workqueue` families and
//! client-go's per-queue bookkeeping (`metrics.go`).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use csi_metrics::{
    Collector, Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, MetricFamily, Opts,
    Registry, Stability, exponential_buckets,
};
use tokio::time::Instant;

/// How often a queue with metrics refreshes `workqueue_unfinished_work_seconds` and
/// `workqueue_longest_running_processor_seconds` (client-go's
/// `defaultUnfinishedWorkUpdatePeriod`).
pub const UNFINISHED_WORK_UPDATE_PERIOD: Duration = Duration::from_millis(500);

const SUBSYSTEM: &str = "workqueue";

/// component-base graduated these metrics to BETA in Kubernetes 1.36 (component-base v0.36.x,
/// which external-attacher v4.12 uses): they are exposed with a `[BETA] ` help prefix.
const STABILITY: Stability = Stability::Beta;

/// The label holding the queue's name.
const NAME_LABEL: &str = "name";

/// The seven `workqueue_*` metric families, labelled by queue name, that every named
/// [`WorkQueue`](crate::WorkQueue) given this handle reports into.
///
/// Create it once per [`Registry`] ([`Metrics::register`]) and hand clones to every queue of the
/// process: queues with different names get their own series; two queues with the same name
/// share theirs, as in Go.
///
/// | family | type | |
/// |---|---|---|
/// | `workqueue_depth` | gauge | keys waiting (queued, or added again while being processed) |
/// | `workqueue_adds_total` | counter | adds that queued a key (de-duplicated adds are not counted) |
/// | `workqueue_queue_duration_seconds` | histogram | from the first add to `get` |
/// | `workqueue_work_duration_seconds` | histogram | from `get` to `done` |
/// | `workqueue_unfinished_work_seconds` | gauge | sum of the ages of the keys being processed |
/// | `workqueue_longest_running_processor_seconds` | gauge | the oldest of them |
/// | `workqueue_retries_total` | counter | `add_after` and `add_rate_limited` calls |
///
/// Help texts, buckets (`ExponentialBuckets(10e-9, 10, 10)`) and stability are
/// component-base's. The two unfinished-work gauges are refreshed every
/// [`UNFINISHED_WORK_UPDATE_PERIOD`] while something is being processed, and freeze at shutdown,
/// as client-go's are.
#[derive(Clone, Debug)]
pub struct Metrics {
    depth: GaugeVec,
    adds: CounterVec,
    latency: HistogramVec,
    work_duration: HistogramVec,
    unfinished_work: GaugeVec,
    longest_running_processor: GaugeVec,
    retries: CounterVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
        .subsystem(SUBSYSTEM)
        .stability(STABILITY)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// The families, not registered anywhere: register them with
    /// [`Registry::register`] (a `Metrics` is one [`Collector`]), or use [`Metrics::register`].
    pub fn new() -> Metrics {
        // Fixed, valid names and buckets: these cannot fail.
        let buckets = exponential_buckets(10e-9, 10.0, 10).expect("valid workqueue buckets");
        let labels = &[NAME_LABEL];
        Metrics {
            depth: GaugeVec::new(opts("depth", "Current depth of workqueue"), labels)
                .expect("valid workqueue_depth"),
            adds: CounterVec::new(
                opts("adds_total", "Total number of adds handled by workqueue"),
                labels,
            )
            .expect("valid workqueue_adds_total"),
            latency: HistogramVec::new(
                opts(
                    "queue_duration_seconds",
                    "How long in seconds an item stays in workqueue before being requested.",
                ),
                &buckets,
                labels,
            )
            .expect("valid workqueue_queue_duration_seconds"),
            work_duration: HistogramVec::new(
                opts(
                    "work_duration_seconds",
                    "How long in seconds processing an item from workqueue takes.",
                ),
                &buckets,
                labels,
            )
            .expect("valid workqueue_work_duration_seconds"),
            unfinished_work: GaugeVec::new(
                opts(
                    "unfinished_work_seconds",
                    "How many seconds of work has done that is in progress and hasn't been \
                     observed by work_duration. Large values indicate stuck threads. One can \
                     deduce the number of stuck threads by observing the rate at which this \
                     increases.",
                ),
                labels,
            )
            .expect("valid workqueue_unfinished_work_seconds"),
            longest_running_processor: GaugeVec::new(
                opts(
                    "longest_running_processor_seconds",
                    "How many seconds has the longest running processor for workqueue been \
                     running.",
                ),
                labels,
            )
            .expect("valid workqueue_longest_running_processor_seconds"),
            retries: CounterVec::new(
                opts(
                    "retries_total",
                    "Total number of retries handled by workqueue",
                ),
                labels,
            )
            .expect("valid workqueue_retries_total"),
        }
    }

    /// Creates the families and registers them with `registry`; fails, registering nothing, if
    /// one of the names is taken (for example by a second `Metrics` on the same registry).
    pub fn register(registry: &Registry) -> csi_metrics::Result<Metrics> {
        let metrics = Metrics::new();
        registry.register(metrics.clone())?;
        Ok(metrics)
    }

    /// The series of one queue. Creating them makes them visible at once (zero-valued), as
    /// component-base's `WithLabelValues` at queue construction does.
    pub(crate) fn for_queue<K>(&self, name: &str) -> (QueueMetrics<K>, Counter) {
        let label = &[name];
        let queue = QueueMetrics {
            depth: self.depth.with_label_values(label),
            adds: self.adds.with_label_values(label),
            latency: self.latency.with_label_values(label),
            work_duration: self.work_duration.with_label_values(label),
            unfinished_work: self.unfinished_work.with_label_values(label),
            longest_running_processor: self.longest_running_processor.with_label_values(label),
            add_times: HashMap::new(),
            processing_start_times: HashMap::new(),
        };
        (queue, self.retries.with_label_values(label))
    }
}

impl Collector for Metrics {
    fn family_names(&self) -> Vec<String> {
        [
            self.depth.family_names(),
            self.adds.family_names(),
            self.latency.family_names(),
            self.work_duration.family_names(),
            self.unfinished_work.family_names(),
            self.longest_running_processor.family_names(),
            self.retries.family_names(),
        ]
        .concat()
    }

    fn collect(&self, out: &mut Vec<MetricFamily>) {
        self.depth.collect(out);
        self.adds.collect(out);
        self.latency.collect(out);
        self.work_duration.collect(out);
        self.unfinished_work.collect(out);
        self.longest_running_processor.collect(out);
        self.retries.collect(out);
    }
}

/// One queue's series and timestamps: client-go's `defaultQueueMetrics`. Always used under the
/// queue's lock.
#[derive(Debug)]
pub(crate) struct QueueMetrics<K> {
    depth: Gauge,
    adds: Counter,
    latency: Histogram,
    work_duration: Histogram,
    unfinished_work: Gauge,
    longest_running_processor: Gauge,
    /// When each waiting key was first added.
    add_times: HashMap<K, Instant>,
    /// When each key being processed was handed out.
    processing_start_times: HashMap<K, Instant>,
}

impl<K: Clone + Eq + Hash> QueueMetrics<K> {
    /// A key became dirty.
    pub(crate) fn add(&mut self, key: &K) {
        self.adds.inc();
        self.depth.inc();
        if !self.add_times.contains_key(key) {
            self.add_times.insert(key.clone(), Instant::now());
        }
    }

    /// A key was handed to a worker.
    pub(crate) fn get(&mut self, key: &K) {
        let now = Instant::now();
        self.depth.dec();
        self.processing_start_times.insert(key.clone(), now);
        if let Some(added) = self.add_times.remove(key) {
            self.latency.observe_duration(now - added);
        }
    }

    /// A worker finished with a key.
    pub(crate) fn done(&mut self, key: &K) {
        if let Some(started) = self.processing_start_times.remove(key) {
            self.work_duration.observe_duration(started.elapsed());
        }
    }

    /// Refreshes the unfinished-work gauges from the keys being processed.
    pub(crate) fn update_unfinished_work(&self) {
        let now = Instant::now();
        let mut total = 0.0;
        let mut oldest = 0.0;
        for started in self.processing_start_times.values() {
            let age = (now - *started).as_secs_f64();
            total += age;
            if age > oldest {
                oldest = age;
            }
        }
        self.unfinished_work.set(total);
        self.longest_running_processor.set(oldest);
    }
}

#[cfg(test)]
mod tests;
