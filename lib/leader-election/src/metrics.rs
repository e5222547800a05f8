//! The leader election metrics of component-base (`metrics/prometheus/clientgo/leaderelection`),
//! which the upstream sidecars register by importing that package.

use csi_metrics::{Collector, CounterVec, GaugeVec, MetricFamily, Opts, Registry, Stability};

/// Name of the gauge: 1 while this process leads the lease, 0 otherwise.
pub const MASTER_STATUS_NAME: &str = "leader_election_master_status";

/// Help text of [`MASTER_STATUS_NAME`], without the `[ALPHA] ` prefix.
pub const MASTER_STATUS_HELP: &str = "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.";

/// Name of the counter of renewals that had to read the lease first (the fast path failed).
pub const SLOWPATH_NAME: &str = "leader_election_slowpath_total";

/// Help text of [`SLOWPATH_NAME`], without the `[ALPHA] ` prefix.
pub const SLOWPATH_HELP: &str = "Total number of slow path exercised in renewing leader leases. 'name' is the string used to identify the lease. Please make sure to group by name.";

/// The two leader election families, `{name}`-labelled, ALPHA as in component-base.
///
/// Make one per registry with [`LeaderElectionMetrics::register`] and give a clone to every
/// [`LeaderElector`](crate::LeaderElector) of the process; each election reports under its
/// [`Config::name`](crate::Config::name).
#[derive(Clone, Debug)]
pub struct LeaderElectionMetrics {
    master_status: GaugeVec,
    slowpath: CounterVec,
}

impl LeaderElectionMetrics {
    /// Creates both families and registers them in `registry`; fails, registering neither, if
    /// one of the names is taken (a second call on the same registry).
    pub fn register(registry: &Registry) -> csi_metrics::Result<LeaderElectionMetrics> {
        let metrics = LeaderElectionMetrics {
            master_status: GaugeVec::new(
                Opts::new(MASTER_STATUS_NAME, MASTER_STATUS_HELP).stability(Stability::Alpha),
                &["name"],
            )?,
            slowpath: CounterVec::new(
                Opts::new(SLOWPATH_NAME, SLOWPATH_HELP).stability(Stability::Alpha),
                &["name"],
            )?,
        };
        registry.register(metrics.clone())?;
        Ok(metrics)
    }

    /// client-go's `leaderOn`.
    pub(crate) fn leader_on(&self, name: &str) {
        self.master_status.with_label_values(&[name]).set(1.0);
    }

    /// client-go's `leaderOff`.
    pub(crate) fn leader_off(&self, name: &str) {
        self.master_status.with_label_values(&[name]).set(0.0);
    }

    /// client-go's `slowpathExercised`.
    pub(crate) fn slowpath_exercised(&self, name: &str) {
        self.slowpath.with_label_values(&[name]).inc();
    }
}

impl Collector for LeaderElectionMetrics {
    fn family_names(&self) -> Vec<String> {
        vec![MASTER_STATUS_NAME.to_string(), SLOWPATH_NAME.to_string()]
    }

    fn collect(&self, out: &mut Vec<MetricFamily>) {
        self.master_status.collect(out);
        self.slowpath.collect(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_as_component_base() {
        let registry = Registry::new();
        let metrics = LeaderElectionMetrics::register(&registry).unwrap();
        assert!(LeaderElectionMetrics::register(&registry).is_err());
        // Nothing reported yet: neither family is exposed, as with the Go client.
        assert_eq!(registry.gather_text(), "");

        metrics.leader_off("");
        metrics.leader_on("external-attacher-leader-x");
        metrics.slowpath_exercised("external-attacher-leader-x");
        assert_eq!(
            registry.gather_text(),
            format!(
                "# HELP leader_election_master_status [ALPHA] {MASTER_STATUS_HELP}\n\
                 # TYPE leader_election_master_status gauge\n\
                 leader_election_master_status{{name=\"\"}} 0\n\
                 leader_election_master_status{{name=\"external-attacher-leader-x\"}} 1\n\
                 # HELP leader_election_slowpath_total [ALPHA] {SLOWPATH_HELP}\n\
                 # TYPE leader_election_slowpath_total counter\n\
                 leader_election_slowpath_total{{name=\"external-attacher-leader-x\"}} 1\n"
            )
        );
    }
}
