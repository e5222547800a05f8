//! Counters, gauges and histograms, alone or partitioned by labels (`*Vec`), updated with atomics.
//!
//! A `*Vec` keeps one series per label-value tuple; [`CounterVec::with_label_values`] and its
//! siblings return a handle to that series which can be kept and updated without further
//! look-ups. Every type is a cheap clone of an `Arc` and implements [`Collector`], so a clone can
//! be handed to [`Registry::register`](crate::Registry::register).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::family::{HistogramValue, MetricFamily, MetricType, Sample, SampleValue, Stability};
use crate::registry::Collector;
use crate::{Error, Result};

/// The Go client's default histogram buckets (`prometheus.DefBuckets`), in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `count` buckets, the first with upper bound `start`, each `factor` times the one before, as Go's
/// `prometheus.ExponentialBuckets` computes them (by repeated multiplication, so the bounds are
/// the same floats as Go's).
pub fn exponential_buckets(start: f64, factor: f64, count: usize) -> Result<Vec<f64>> {
    if count < 1 {
        return Err(buckets_error("exponential_buckets needs a positive count"));
    }
    if start.is_nan() || start <= 0.0 {
        return Err(buckets_error(
            "exponential_buckets needs a positive start value",
        ));
    }
    if factor.is_nan() || factor <= 1.0 {
        return Err(buckets_error(
            "exponential_buckets needs a factor greater than 1",
        ));
    }
    let mut buckets = Vec::with_capacity(count);
    let mut bound = start;
    for _ in 0..count {
        buckets.push(bound);
        bound *= factor;
    }
    Ok(buckets)
}

/// `count` buckets, the first with upper bound `start`, each `width` above the one before, as Go's
/// `prometheus.LinearBuckets` computes them.
pub fn linear_buckets(start: f64, width: f64, count: usize) -> Result<Vec<f64>> {
    if count < 1 {
        return Err(buckets_error("linear_buckets needs a positive count"));
    }
    let mut buckets = Vec::with_capacity(count);
    let mut bound = start;
    for _ in 0..count {
        buckets.push(bound);
        bound += width;
    }
    Ok(buckets)
}

fn buckets_error(reason: &str) -> Error {
    Error::InvalidBuckets {
        reason: reason.to_string(),
    }
}

/// Name, help text, stability and constant labels of a metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// First part of the name, joined to the rest with `_` when not empty.
    pub namespace: String,
    /// Middle part of the name, joined to the rest with `_` when not empty.
    pub subsystem: String,
    /// Last part of the name.
    pub name: String,
    /// Help text, without the stability prefix.
    pub help: String,
    /// How the help text is annotated; component-base's default, [`Stability::Alpha`], unless set.
    pub stability: Stability,
    /// Labels with a fixed value on every series.
    pub const_labels: Vec<(String, String)>,
}

impl Opts {
    /// Options with a name and help text, no namespace or subsystem, no constant labels and
    /// [`Stability::Alpha`].
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Opts {
        Opts {
            namespace: String::new(),
            subsystem: String::new(),
            name: name.into(),
            help: help.into(),
            stability: Stability::default(),
            const_labels: Vec::new(),
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Opts {
        self.namespace = namespace.into();
        self
    }

    /// Sets the subsystem.
    pub fn subsystem(mut self, subsystem: impl Into<String>) -> Opts {
        self.subsystem = subsystem.into();
        self
    }

    /// Sets the stability level.
    pub fn stability(mut self, stability: Stability) -> Opts {
        self.stability = stability;
        self
    }

    /// Adds a constant label.
    pub fn const_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Opts {
        self.const_labels.push((name.into(), value.into()));
        self
    }

    /// The full name: namespace, subsystem and name joined by `_`, skipping empty parts (Go's
    /// `prometheus.BuildFQName`); empty when the name is empty.
    pub fn fq_name(&self) -> String {
        if self.name.is_empty() {
            return String::new();
        }
        [&self.namespace, &self.subsystem, &self.name]
            .into_iter()
            .filter(|part| !part.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("_")
    }
}

/// Whether `name` is a valid legacy Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid legacy Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a family is, fixed at creation.
#[derive(Debug)]
struct Desc {
    name: String,
    /// Help text with the stability prefix.
    help: String,
    label_names: Box<[String]>,
    const_labels: Box<[(String, String)]>,
}

impl Desc {
    /// Checks names as the Go client's `NewDesc` does; `reserved` label names are refused too.
    fn new(opts: Opts, label_names: &[&str], reserved: &[&str]) -> Result<Desc> {
        let name = opts.fq_name();
        if !is_valid_metric_name(&name) {
            return Err(Error::InvalidMetricName { name });
        }
        let mut seen: Vec<&str> = Vec::new();
        let all = opts
            .const_labels
            .iter()
            .map(|(label, _)| label.as_str())
            .chain(label_names.iter().copied());
        for label in all {
            let reason = if !is_valid_label_name(label) {
                Some("is not a valid label name")
            } else if label.starts_with("__") {
                Some("is reserved (names starting with `__` are)")
            } else if reserved.contains(&label) {
                Some("is reserved for this metric type")
            } else if seen.contains(&label) {
                Some("is given twice")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(Error::InvalidLabelName {
                    metric: name,
                    label: label.to_string(),
                    reason,
                });
            }
            seen.push(label);
        }
        Ok(Desc {
            help: opts.stability.annotate(&opts.help),
            name,
            label_names: label_names.iter().map(|l| l.to_string()).collect(),
            const_labels: opts.const_labels.into_boxed_slice(),
        })
    }

    fn family(&self, metric_type: MetricType) -> MetricFamily {
        MetricFamily {
            name: self.name.clone(),
            help: self.help.clone(),
            metric_type,
            samples: Vec::new(),
        }
    }

    /// Constant and variable labels of one series, in no particular order.
    fn labels(&self, values: &[String]) -> Vec<(String, String)> {
        self.const_labels
            .iter()
            .cloned()
            .chain(self.label_names.iter().cloned().zip(values.iter().cloned()))
            .collect()
    }
}

/// One series: its label values and its value.
#[derive(Debug)]
struct Series<V> {
    desc: Arc<Desc>,
    label_values: Box<[String]>,
    value: V,
}

impl<V: SeriesValue> Series<V> {
    fn sample(&self) -> Sample {
        Sample {
            labels: self.desc.labels(&self.label_values),
            value: self.value.sample_value(),
        }
    }
}

trait SeriesValue: Send + Sync + 'static {
    const TYPE: MetricType;
    fn sample_value(&self) -> SampleValue;
}

/// The series of a `*Vec`, found by label values without allocating.
#[derive(Debug)]
struct SeriesMap<V> {
    desc: Arc<Desc>,
    hasher: RandomState,
    /// Series by the hash of their label values; collisions share a bucket.
    series: RwLock<HashMap<u64, Vec<Arc<Series<V>>>>>,
}

impl<V: SeriesValue> SeriesMap<V> {
    fn new(desc: Desc) -> SeriesMap<V> {
        SeriesMap {
            desc: Arc::new(desc),
            hasher: RandomState::new(),
            series: RwLock::new(HashMap::new()),
        }
    }

    fn hash(&self, values: &[&str]) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        for value in values {
            value.hash(&mut hasher);
        }
        hasher.finish()
    }

    fn check_count(&self, values: &[&str]) -> Result<()> {
        if values.len() == self.desc.label_names.len() {
            Ok(())
        } else {
            Err(Error::LabelValueCount {
                metric: self.desc.name.clone(),
                expected: self.desc.label_names.len(),
                given: values.len(),
            })
        }
    }

    fn get_or_create(&self, values: &[&str], make: impl FnOnce() -> V) -> Result<Arc<Series<V>>> {
        self.check_count(values)?;
        let hash = self.hash(values);
        let matches = |s: &&Arc<Series<V>>| s.label_values.iter().eq(values.iter().copied());
        {
            let map = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = map.get(&hash).and_then(|b| b.iter().find(matches)) {
                return Ok(Arc::clone(found));
            }
        }
        let mut map = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let bucket = map.entry(hash).or_default();
        if let Some(found) = bucket.iter().find(matches) {
            return Ok(Arc::clone(found));
        }
        let series = Arc::new(Series {
            desc: Arc::clone(&self.desc),
            label_values: values.iter().map(|v| v.to_string()).collect(),
            value: make(),
        });
        bucket.push(Arc::clone(&series));
        Ok(series)
    }

    fn remove(&self, values: &[&str]) -> bool {
        if self.check_count(values).is_err() {
            return false;
        }
        let hash = self.hash(values);
        let mut map = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let Some(bucket) = map.get_mut(&hash) else {
            return false;
        };
        let before = bucket.len();
        bucket.retain(|s| !s.label_values.iter().eq(values.iter().copied()));
        let removed = bucket.len() != before;
        if bucket.is_empty() {
            map.remove(&hash);
        }
        removed
    }

    fn reset(&self) {
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn family(&self) -> MetricFamily {
        let map = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut family = self.desc.family(V::TYPE);
        family.samples = map.values().flatten().map(|s| s.sample()).collect();
        family
    }
}

/// Adds `v` to the `f64` stored as bits in `cell`.
fn atomic_add_f64(cell: &AtomicU64, v: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(current) + v).to_bits();
        match cell.compare_exchange_weak(current, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// A counter's value: whole increments in an integer (one atomic add), the rest as float bits,
/// as the Go client keeps it.
#[derive(Debug, Default)]
struct CounterValue {
    whole: AtomicU64,
    fraction_bits: AtomicU64,
}

impl CounterValue {
    fn add(&self, v: f64) {
        if v.is_nan() || v < 0.0 {
            debug_assert!(false, "a counter cannot decrease (adding {v})");
            return;
        }
        if v.fract() == 0.0 && v < u64::MAX as f64 {
            self.whole.fetch_add(v as u64, Ordering::Relaxed);
        } else {
            atomic_add_f64(&self.fraction_bits, v);
        }
    }

    fn get(&self) -> f64 {
        self.whole.load(Ordering::Relaxed) as f64
            + f64::from_bits(self.fraction_bits.load(Ordering::Relaxed))
    }
}

impl SeriesValue for CounterValue {
    const TYPE: MetricType = MetricType::Counter;
    fn sample_value(&self) -> SampleValue {
        SampleValue::Value(self.get())
    }
}

/// A gauge's value as `f64` bits.
#[derive(Debug, Default)]
struct GaugeValue {
    bits: AtomicU64,
}

impl SeriesValue for GaugeValue {
    const TYPE: MetricType = MetricType::Gauge;
    fn sample_value(&self) -> SampleValue {
        SampleValue::Value(f64::from_bits(self.bits.load(Ordering::Relaxed)))
    }
}

/// A histogram's state: a count per bucket (not cumulative; the last one is `+Inf`) and the sum.
#[derive(Debug)]
struct HistogramState {
    bounds: Arc<[f64]>,
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

impl HistogramState {
    fn new(bounds: &Arc<[f64]>) -> HistogramState {
        HistogramState {
            bounds: Arc::clone(bounds),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        // The first bucket whose bound is >= v; NaN lands in +Inf, as in Go.
        let index = if v.is_nan() {
            self.bounds.len()
        } else {
            self.bounds.partition_point(|bound| *bound < v)
        };
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        atomic_add_f64(&self.sum_bits, v);
    }

    fn value(&self) -> HistogramValue {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let overflow = self.counts[self.bounds.len()].load(Ordering::Relaxed);
        // The count is the sum of the buckets read here, so the two always agree.
        HistogramValue {
            buckets,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
            count: cumulative + overflow,
        }
    }
}

impl SeriesValue for HistogramState {
    const TYPE: MetricType = MetricType::Histogram;
    fn sample_value(&self) -> SampleValue {
        SampleValue::Histogram(self.value())
    }
}

/// Checks and normalizes bucket bounds as Go's `NewHistogram` does: none given means
/// [`DEFAULT_BUCKETS`]; a last `+Inf` bound is dropped (it is always there); the rest must
/// increase strictly.
fn histogram_bounds(buckets: &[f64]) -> Result<Arc<[f64]>> {
    let mut bounds: Vec<f64> = if buckets.is_empty() {
        DEFAULT_BUCKETS.to_vec()
    } else {
        buckets.to_vec()
    };
    if bounds.last() == Some(&f64::INFINITY) {
        bounds.pop();
    }
    if bounds.iter().any(|b| b.is_nan()) {
        return Err(buckets_error("histogram buckets must not be NaN"));
    }
    if bounds.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(buckets_error(
            "histogram buckets must be in increasing order",
        ));
    }
    Ok(bounds.into())
}

fn single_family<V: SeriesValue>(series: &Series<V>) -> MetricFamily {
    let mut family = series.desc.family(V::TYPE);
    family.samples.push(series.sample());
    family
}

macro_rules! series_handle_common {
    ($handle:ident) => {
        impl Collector for $handle {
            fn family_names(&self) -> Vec<String> {
                vec![self.series.desc.name.clone()]
            }

            fn collect(&self, out: &mut Vec<MetricFamily>) {
                out.push(single_family(&self.series));
            }
        }

        impl $handle {
            /// The label values of this series, in the order the label names were declared.
            pub fn label_values(&self) -> &[String] {
                &self.series.label_values
            }
        }
    };
}

macro_rules! vec_common {
    ($vec:ident, $handle:ident, $what:literal) => {
        impl $vec {
            #[doc = concat!("The ", $what, " for these label values (in the order the label names were declared), created on first use.")]
            ///
            /// # Panics
            ///
            /// If the number of values is not the number of label names, as the Go client does;
            /// see the `get_metric_with_label_values` method for an error instead.
            pub fn with_label_values(&self, values: &[&str]) -> $handle {
                match self.get_metric_with_label_values(values) {
                    Ok(handle) => handle,
                    Err(err) => panic!("{err}"),
                }
            }

            #[doc = concat!("The ", $what, " for these label values, or an error if their number is wrong.")]
            pub fn get_metric_with_label_values(&self, values: &[&str]) -> Result<$handle> {
                let series = self.series.get_or_create(values, || self.new_value())?;
                Ok($handle { series })
            }

            /// Removes the series with these label values; `true` if there was one.
            pub fn remove_label_values(&self, values: &[&str]) -> bool {
                self.series.remove(values)
            }

            /// Removes every series.
            pub fn reset(&self) {
                self.series.reset();
            }
        }

        impl Collector for $vec {
            fn family_names(&self) -> Vec<String> {
                vec![self.series.desc.name.clone()]
            }

            fn collect(&self, out: &mut Vec<MetricFamily>) {
                out.push(self.series.family());
            }
        }
    };
}

/// A value that only goes up, e.g. a number of requests. Go's `prometheus.Counter`.
#[derive(Clone, Debug)]
pub struct Counter {
    series: Arc<Series<CounterValue>>,
}

impl Counter {
    /// A counter without variable labels.
    pub fn new(opts: Opts) -> Result<Counter> {
        let desc = Arc::new(Desc::new(opts, &[], &[])?);
        Ok(Counter {
            series: Arc::new(Series {
                desc,
                label_values: Box::new([]),
                value: CounterValue::default(),
            }),
        })
    }

    /// Adds one.
    pub fn inc(&self) {
        self.series.value.whole.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `v`, which must not be negative (a negative or NaN `v` is ignored; Go panics).
    pub fn inc_by(&self, v: f64) {
        self.series.value.add(v);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.series.value.get()
    }
}

series_handle_common!(Counter);

/// Counters partitioned by labels. Go's `prometheus.CounterVec`.
#[derive(Clone, Debug)]
pub struct CounterVec {
    series: Arc<SeriesMap<CounterValue>>,
}

impl CounterVec {
    /// A counter family with these variable label names.
    pub fn new(opts: Opts, label_names: &[&str]) -> Result<CounterVec> {
        Ok(CounterVec {
            series: Arc::new(SeriesMap::new(Desc::new(opts, label_names, &[])?)),
        })
    }

    fn new_value(&self) -> CounterValue {
        CounterValue::default()
    }
}

vec_common!(CounterVec, Counter, "counter");

/// A value that goes up and down, e.g. a queue depth. Go's `prometheus.Gauge`.
#[derive(Clone, Debug)]
pub struct Gauge {
    series: Arc<Series<GaugeValue>>,
}

impl Gauge {
    /// A gauge without variable labels.
    pub fn new(opts: Opts) -> Result<Gauge> {
        let desc = Arc::new(Desc::new(opts, &[], &[])?);
        Ok(Gauge {
            series: Arc::new(Series {
                desc,
                label_values: Box::new([]),
                value: GaugeValue::default(),
            }),
        })
    }

    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.series.value.bits.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// Adds `v` (which may be negative).
    pub fn add(&self, v: f64) {
        atomic_add_f64(&self.series.value.bits, v);
    }

    /// Subtracts `v`.
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.series.value.bits.load(Ordering::Relaxed))
    }
}

series_handle_common!(Gauge);

/// Gauges partitioned by labels. Go's `prometheus.GaugeVec`.
#[derive(Clone, Debug)]
pub struct GaugeVec {
    series: Arc<SeriesMap<GaugeValue>>,
}

impl GaugeVec {
    /// A gauge family with these variable label names.
    pub fn new(opts: Opts, label_names: &[&str]) -> Result<GaugeVec> {
        Ok(GaugeVec {
            series: Arc::new(SeriesMap::new(Desc::new(opts, label_names, &[])?)),
        })
    }

    fn new_value(&self) -> GaugeValue {
        GaugeValue::default()
    }
}

vec_common!(GaugeVec, Gauge, "gauge");

/// Observations (e.g. durations) counted in buckets. Go's `prometheus.Histogram`.
#[derive(Clone, Debug)]
pub struct Histogram {
    series: Arc<Series<HistogramState>>,
}

impl Histogram {
    /// A histogram without variable labels. `buckets` are the upper bounds, strictly increasing;
    /// empty means [`DEFAULT_BUCKETS`]. The `+Inf` bucket is always added.
    pub fn new(opts: Opts, buckets: &[f64]) -> Result<Histogram> {
        let desc = Arc::new(Desc::new(opts, &[], &["le"])?);
        let bounds = histogram_bounds(buckets)?;
        Ok(Histogram {
            series: Arc::new(Series {
                desc,
                label_values: Box::new([]),
                value: HistogramState::new(&bounds),
            }),
        })
    }

    /// Counts one observation.
    pub fn observe(&self, v: f64) {
        self.series.value.observe(v);
    }

    /// Counts one duration, in seconds as Go's `Duration.Seconds()` gives them.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// The number of observations so far.
    pub fn count(&self) -> u64 {
        self.series.value.value().count
    }

    /// The sum of the observations so far.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.series.value.sum_bits.load(Ordering::Relaxed))
    }
}

series_handle_common!(Histogram);

/// Histograms partitioned by labels. Go's `prometheus.HistogramVec`.
#[derive(Clone, Debug)]
pub struct HistogramVec {
    series: Arc<SeriesMap<HistogramState>>,
    bounds: Arc<[f64]>,
}

impl HistogramVec {
    /// A histogram family with these buckets (see [`Histogram::new`]) and variable label names.
    pub fn new(opts: Opts, buckets: &[f64], label_names: &[&str]) -> Result<HistogramVec> {
        let desc = Desc::new(opts, label_names, &["le"])?;
        Ok(HistogramVec {
            bounds: histogram_bounds(buckets)?,
            series: Arc::new(SeriesMap::new(desc)),
        })
    }

    fn new_value(&self) -> HistogramState {
        HistogramState::new(&self.bounds)
    }
}

vec_common!(HistogramVec, Histogram, "histogram");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_buckets_are_gos_floats() {
        // component-base's workqueue latency buckets: ExponentialBuckets(10e-9, 10, 10).
        let buckets = exponential_buckets(10e-9, 10.0, 10).unwrap();
        let mut text = String::new();
        for b in &buckets {
            csi_gofmt::write_float(&mut text, *b, 'g');
            text.push(' ');
        }
        // Printed by Go with strconv.FormatFloat(b, 'g', -1, 64).
        assert_eq!(
            text,
            "1e-08 1e-07 1e-06 9.999999999999999e-06 9.999999999999999e-05 0.001 0.01 0.1 1 10 "
        );
        assert!(exponential_buckets(1.0, 2.0, 0).is_err());
        assert!(exponential_buckets(0.0, 2.0, 3).is_err());
        assert!(exponential_buckets(1.0, 1.0, 3).is_err());
    }

    #[test]
    fn linear_buckets_add_width() {
        assert_eq!(linear_buckets(1.0, 0.5, 3).unwrap(), vec![1.0, 1.5, 2.0]);
        assert!(linear_buckets(1.0, 0.5, 0).is_err());
    }

    #[test]
    fn histogram_bounds_are_checked() {
        assert_eq!(&*histogram_bounds(&[]).unwrap(), &DEFAULT_BUCKETS[..]);
        assert_eq!(
            &*histogram_bounds(&[1.0, f64::INFINITY]).unwrap(),
            &[1.0][..]
        );
        assert!(histogram_bounds(&[1.0, 1.0]).is_err());
        assert!(histogram_bounds(&[2.0, 1.0]).is_err());
        assert!(histogram_bounds(&[f64::NAN]).is_err());
    }

    #[test]
    fn histogram_observes_into_le_buckets() {
        let h = Histogram::new(Opts::new("h", "help"), &[1.0, 2.0]).unwrap();
        for v in [0.5, 1.0, 1.5, 2.0, 3.0, f64::NAN] {
            h.observe(v);
        }
        let value = h.series.value.value();
        assert_eq!(value.buckets, vec![(1.0, 2), (2.0, 4)]);
        assert_eq!(value.count, 6);
        assert!(value.sum.is_nan());
    }

    #[test]
    fn counter_adds_whole_and_fractional_parts() {
        let c = Counter::new(Opts::new("c_total", "help")).unwrap();
        c.inc();
        c.inc_by(2.0);
        c.inc_by(0.5);
        assert_eq!(c.get(), 3.5);
    }

    #[test]
    fn gauge_moves_both_ways() {
        let g = Gauge::new(Opts::new("g", "help")).unwrap();
        g.set(10.0);
        g.inc();
        g.dec();
        g.dec();
        g.add(0.5);
        g.sub(2.0);
        assert_eq!(g.get(), 7.5);
    }

    #[test]
    fn vec_handles_share_series() {
        let v = CounterVec::new(Opts::new("c_total", "help"), &["a", "b"]).unwrap();
        v.with_label_values(&["x", "y"]).inc();
        v.with_label_values(&["x", "y"]).inc();
        v.with_label_values(&["xy", ""]).inc();
        assert_eq!(v.with_label_values(&["x", "y"]).get(), 2.0);
        assert_eq!(v.with_label_values(&["xy", ""]).get(), 1.0);
        assert!(matches!(
            v.get_metric_with_label_values(&["x"]),
            Err(Error::LabelValueCount {
                expected: 2,
                given: 1,
                ..
            })
        ));
        assert!(v.remove_label_values(&["x", "y"]));
        assert!(!v.remove_label_values(&["x", "y"]));
        assert_eq!(v.with_label_values(&["x", "y"]).get(), 0.0);
    }

    #[test]
    fn names_are_validated() {
        assert!(matches!(
            Counter::new(Opts::new("1bad", "help")),
            Err(Error::InvalidMetricName { .. })
        ));
        assert!(matches!(
            CounterVec::new(Opts::new("ok", "help"), &["bad-label"]),
            Err(Error::InvalidLabelName { .. })
        ));
        assert!(matches!(
            CounterVec::new(Opts::new("ok", "help"), &["__reserved"]),
            Err(Error::InvalidLabelName { .. })
        ));
        assert!(matches!(
            CounterVec::new(Opts::new("ok", "help").const_label("a", "1"), &["a"]),
            Err(Error::InvalidLabelName { .. })
        ));
        assert!(matches!(
            HistogramVec::new(Opts::new("ok", "help"), &[], &["le"]),
            Err(Error::InvalidLabelName { .. })
        ));
        assert!(CounterVec::new(Opts::new("ok", "help"), &["le"]).is_ok());
        assert_eq!(
            Opts::new("seconds", "h")
                .namespace("")
                .subsystem("csi_sidecar")
                .fq_name(),
            "csi_sidecar_seconds"
        );
        assert_eq!(Opts::new("", "h").subsystem("x").fq_name(), "");
    }
}
