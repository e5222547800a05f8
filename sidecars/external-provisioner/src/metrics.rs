//! The provisioning library's metrics (sig-storage-lib-external-provisioner's `metrics.New("controller")`):
//! provisions and deletions, successful and failed, with their durations.

use std::time::Duration;

use csi_metrics::{CounterVec, DEFAULT_BUCKETS, HistogramVec, Opts, Registry};

/// `controller_persistentvolumeclaim_provision_*` and `controller_persistentvolume_delete_*`.
#[derive(Clone, Debug)]
pub struct ProvisionMetrics {
    provision_total: CounterVec,
    provision_failed_total: CounterVec,
    provision_duration: HistogramVec,
    delete_total: CounterVec,
    delete_failed_total: CounterVec,
    delete_duration: HistogramVec,
}

impl ProvisionMetrics {
    /// The six families, registered in `registry`.
    pub fn register(registry: &Registry) -> csi_metrics::Result<ProvisionMetrics> {
        let opts = |name: &str, help: &str| Opts::new(name, help).subsystem("controller");
        let claim_labels = &["class", "source"];
        let metrics = ProvisionMetrics {
            provision_total: CounterVec::new(
                opts(
                    "persistentvolumeclaim_provision_total",
                    "Total number of persistent volumes provisioned successfully. Broken down by storage class name and source of the claim.",
                ),
                claim_labels,
            )?,
            provision_failed_total: CounterVec::new(
                opts(
                    "persistentvolumeclaim_provision_failed_total",
                    "Total number of persistent volume provision failed attempts. Broken down by storage class name and source of the claim.",
                ),
                claim_labels,
            )?,
            provision_duration: HistogramVec::new(
                opts(
                    "persistentvolumeclaim_provision_duration_seconds",
                    "Latency in seconds to provision persistent volumes. Failed provisioning attempts are ignored. Broken down by storage class name and source of the claim.",
                ),
                &DEFAULT_BUCKETS,
                claim_labels,
            )?,
            delete_total: CounterVec::new(
                opts(
                    "persistentvolume_delete_total",
                    "Total number of persistent volumes deleted successfully. Broken down by storage class name.",
                ),
                &["class"],
            )?,
            delete_failed_total: CounterVec::new(
                opts(
                    "persistentvolume_delete_failed_total",
                    "Total number of persistent volume delete failed attempts. Broken down by storage class name.",
                ),
                &["class"],
            )?,
            delete_duration: HistogramVec::new(
                opts(
                    "persistentvolume_delete_duration_seconds",
                    "Latency in seconds to delete persistent volumes. Failed deletion attempts are ignored. Broken down by storage class name.",
                ),
                &DEFAULT_BUCKETS,
                &["class"],
            )?,
        };
        registry.register(metrics.provision_total.clone())?;
        registry.register(metrics.provision_failed_total.clone())?;
        registry.register(metrics.provision_duration.clone())?;
        registry.register(metrics.delete_total.clone())?;
        registry.register(metrics.delete_failed_total.clone())?;
        registry.register(metrics.delete_duration.clone())?;
        Ok(metrics)
    }

    /// One provisioning attempt of a claim of `class` from `source` (the data source kind):
    /// a success with its duration, or a failure (`None`).
    pub fn provisioned(&self, class: &str, source: &str, took: Option<Duration>) {
        match took {
            Some(took) => {
                self.provision_duration
                    .with_label_values(&[class, source])
                    .observe_duration(took);
                self.provision_total
                    .with_label_values(&[class, source])
                    .inc();
            }
            None => self
                .provision_failed_total
                .with_label_values(&[class, source])
                .inc(),
        }
    }

    /// One deletion attempt of a PV of `class`: a success with its duration, or a failure.
    pub fn deleted(&self, class: &str, took: Option<Duration>) {
        match took {
            Some(took) => {
                self.delete_duration
                    .with_label_values(&[class])
                    .observe_duration(took);
                self.delete_total.with_label_values(&[class]).inc();
            }
            None => self.delete_failed_total.with_label_values(&[class]).inc(),
        }
    }
}
