//! The registry: what is exposed on `/metrics`, and how it is gathered.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::family::MetricFamily;
use crate::metric::is_valid_metric_name;
use crate::text;
use crate::{Error, Result};

/// Something that produces metric families when the registry is gathered: the metric types of
/// this crate, or a type of yours whose values are computed at scrape time (Go's
/// `prometheus.Collector`).
pub trait Collector: Send + Sync + 'static {
    /// The name of every family [`Collector::collect`] may produce. Registration fails if one is
    /// taken; a family with a name not listed here is dropped if another collector has it.
    fn family_names(&self) -> Vec<String>;

    /// Appends the current families to `out`. Families may be empty (they are then not
    /// exposed); samples and labels may come in any order.
    fn collect(&self, out: &mut Vec<MetricFamily>);
}

/// A set of collectors, exposed together. Cheap to clone: clones share the set.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    names: BTreeSet<String>,
    collectors: Vec<Arc<dyn Collector>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Registry")
            .field("families", &inner.names)
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a collector. Fails, adding nothing, if one of its family names is not a valid metric
    /// name or is already registered (Go's `Register` fails alike; `MustRegister` panics).
    pub fn register(&self, collector: impl Collector) -> Result<()> {
        let names = collector.family_names();
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let mut new_names = BTreeSet::new();
        for name in &names {
            if !is_valid_metric_name(name) {
                return Err(Error::InvalidMetricName { name: name.clone() });
            }
            if inner.names.contains(name) || !new_names.insert(name.clone()) {
                return Err(Error::AlreadyRegistered { name: name.clone() });
            }
        }
        inner.names.append(&mut new_names);
        inner.collectors.push(Arc::new(collector));
        Ok(())
    }

    /// Whether a family with this name is registered.
    pub fn is_registered(&self, name: &str) -> bool {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.names.contains(name)
    }

    /// Collects every family, as the Go client's `Gather` returns them: sorted by name, families
    /// without samples left out, each sample's labels sorted by name and the samples sorted by
    /// their label values.
    pub fn gather(&self) -> Vec<MetricFamily> {
        // Collect outside the lock: a collector may take its time (reading /proc).
        let collectors = {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            inner.collectors.clone()
        };
        let mut by_name: BTreeMap<String, MetricFamily> = BTreeMap::new();
        let mut collected = Vec::new();
        for collector in &collectors {
            collected.clear();
            collector.collect(&mut collected);
            for family in collected.drain(..) {
                // The first collector to produce a name keeps it, as with Go's `Gatherers`.
                by_name.entry(family.name.clone()).or_insert(family);
            }
        }
        let mut families: Vec<MetricFamily> = by_name
            .into_values()
            .filter(|family| !family.samples.is_empty())
            .collect();
        for family in &mut families {
            for sample in &mut family.samples {
                sample.labels.sort_by(|a, b| a.0.cmp(&b.0));
            }
            family.samples.sort_by(|a, b| {
                a.labels.len().cmp(&b.labels.len()).then_with(|| {
                    a.labels
                        .iter()
                        .map(|(_, value)| value)
                        .cmp(b.labels.iter().map(|(_, value)| value))
                })
            });
        }
        families
    }

    /// Every family in the text exposition format 0.0.4, exactly as the Go client writes it;
    /// serve it with [`TEXT_CONTENT_TYPE`](crate::TEXT_CONTENT_TYPE).
    pub fn gather_text(&self) -> String {
        let mut out = String::new();
        text::encode(&mut out, &self.gather());
        out
    }
}
