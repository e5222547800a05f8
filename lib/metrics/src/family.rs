//! The data model that collectors produce and the encoder reads: a family of samples sharing
//! one name, help text and type.

use std::fmt;

/// How a metric's help text is annotated, as Kubernetes component-base does for its metrics.
///
/// component-base prefixes the help text of every metric with its stability level in brackets
/// (`[ALPHA] Container Storage Interface operation duration ...`). Metrics registered straight
/// with the Prometheus Go client (the process collector, for example) carry no prefix: that is
/// [`Stability::Raw`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Stability {
    /// A plain Prometheus Go client metric: help text as given.
    Raw,
    /// component-base `INTERNAL`: help text prefixed with `[INTERNAL] `.
    Internal,
    /// component-base `ALPHA` (its default): help text prefixed with `[ALPHA] `.
    #[default]
    Alpha,
    /// component-base `BETA`: help text prefixed with `[BETA] `.
    Beta,
    /// component-base `STABLE`: help text prefixed with `[STABLE] `.
    Stable,
}

impl Stability {
    /// The help text as exposed: `help` with this level's prefix, if any.
    pub fn annotate(self, help: &str) -> String {
        match self.level() {
            None => help.to_string(),
            Some(level) => format!("[{level}] {help}"),
        }
    }

    /// component-base's name of the level, `None` for [`Stability::Raw`].
    pub fn level(self) -> Option<&'static str> {
        match self {
            Stability::Raw => None,
            Stability::Internal => Some("INTERNAL"),
            Stability::Alpha => Some("ALPHA"),
            Stability::Beta => Some("BETA"),
            Stability::Stable => Some("STABLE"),
        }
    }
}

/// The type of a metric family, as written on its `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A value that only goes up (or resets to zero on restart).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted in cumulative buckets, with their sum and count.
    Histogram,
}

impl MetricType {
    /// The word on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One family: every sample of one metric name.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricFamily {
    /// The metric name, e.g. `csi_sidecar_operations_seconds`.
    pub name: String,
    /// The help text exactly as exposed, stability prefix included.
    pub help: String,
    /// Counter, gauge or histogram.
    pub metric_type: MetricType,
    /// The samples, one per label set. A family without samples is not exposed.
    pub samples: Vec<Sample>,
}

impl MetricFamily {
    /// An empty family; `help` is annotated according to `stability`.
    pub fn new(
        name: impl Into<String>,
        help: &str,
        stability: Stability,
        metric_type: MetricType,
    ) -> MetricFamily {
        MetricFamily {
            name: name.into(),
            help: stability.annotate(help),
            metric_type,
            samples: Vec::new(),
        }
    }

    /// Adds a counter or gauge sample with the given label pairs (in any order).
    pub fn with_value(mut self, labels: &[(&str, &str)], value: f64) -> MetricFamily {
        self.push_value(labels, value);
        self
    }

    /// Adds a counter or gauge sample with the given label pairs (in any order).
    pub fn push_value(&mut self, labels: &[(&str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: owned_labels(labels),
            value: SampleValue::Value(value),
        });
    }

    /// Adds a histogram sample with the given label pairs (in any order).
    pub fn push_histogram(&mut self, labels: &[(&str, &str)], histogram: HistogramValue) {
        self.samples.push(Sample {
            labels: owned_labels(labels),
            value: SampleValue::Histogram(histogram),
        });
    }
}

fn owned_labels(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One sample: a label set and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label name and value pairs, in any order: they are written sorted by name.
    pub labels: Vec<(String, String)>,
    /// The value; its kind must match the family's [`MetricType`], or the sample is skipped.
    pub value: SampleValue,
}

/// The value of one sample.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleValue {
    /// The value of a counter or gauge.
    Value(f64),
    /// The state of a histogram.
    Histogram(HistogramValue),
}

/// The state of one histogram series.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramValue {
    /// `(upper bound, cumulative count)` for each bucket, in increasing bound order, without the
    /// `+Inf` bucket (whose count is [`HistogramValue::count`]).
    pub buckets: Vec<(f64, u64)>,
    /// The sum of all observations.
    pub sum: f64,
    /// The number of observations.
    pub count: u64,
}
