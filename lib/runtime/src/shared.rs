//! [`Shared`]: what a process has once, whatever the number of controllers in it.

use std::time::Duration;

use csi_connection::Connection;
use csi_metrics::{CsiOperationMetrics, Registry};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::features::FeatureGates;
use crate::health::Health;
use crate::kube::KubeShared;

/// Whether the process is a standalone sidecar or `csi-sidecars`. Components use it only where
/// upstream's behaviour would hurt the other controllers of a shared process (an exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One component, behaving exactly as the upstream sidecar.
    Standalone,
    /// `csi-sidecars`: one component's failure must not end the others.
    Aggregate,
}

/// What [`Shared::new`] is made of.
#[derive(Debug)]
pub struct SharedParts {
    /// Standalone or aggregate.
    pub mode: Mode,
    /// `--csi-address`, as given.
    pub csi_address: String,
    /// The one connection to the driver.
    pub csi: Connection,
    /// The one metrics registry.
    pub metrics: Registry,
    /// `csi_sidecar_operations_seconds`.
    pub csi_metrics: CsiOperationMetrics,
    /// `--feature-gates`, resolved.
    pub features: FeatureGates,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// The API-server side, when a component needs it.
    pub kube: Option<KubeShared>,
}

/// The process's connection, driver, metrics, health checks and shutdown signal.
#[derive(Debug)]
pub struct Shared {
    /// Standalone or aggregate.
    pub mode: Mode,
    /// `--csi-address`, as given.
    pub csi_address: String,
    /// The one connection to the driver.
    pub csi: Connection,
    /// The one metrics registry.
    pub metrics: Registry,
    /// `csi_sidecar_operations_seconds`, recorded by [`Shared::csi`].
    pub csi_metrics: CsiOperationMetrics,
    /// Named health checks served at `/healthz`.
    pub health: Health,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// `--feature-gates`, resolved.
    pub features: FeatureGates,
    /// The API-server side, when a component needs it.
    pub kube: Option<KubeShared>,
    driver_name: OnceCell<String>,
    workqueue_metrics: std::sync::OnceLock<Option<csi_workqueue::Metrics>>,
    singletons: std::sync::Mutex<
        std::collections::HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>,
    >,
}

impl Shared {
    /// Assembles the shared state.
    pub fn new(parts: SharedParts) -> Self {
        Shared {
            mode: parts.mode,
            csi_address: parts.csi_address,
            csi: parts.csi,
            metrics: parts.metrics,
            csi_metrics: parts.csi_metrics,
            health: Health::default(),
            shutdown: parts.shutdown,
            features: parts.features,
            kube: parts.kube,
            driver_name: OnceCell::new(),
            workqueue_metrics: std::sync::OnceLock::new(),
            singletons: std::sync::Mutex::default(),
        }
    }

    /// The `workqueue_*` metrics of the process, shared by every queue (each labels its series
    /// with its queue name). `None` only if registering them failed (logged once).
    pub fn workqueue_metrics(&self) -> Option<&csi_workqueue::Metrics> {
        self.workqueue_metrics
            .get_or_init(|| match csi_workqueue::Metrics::register(&self.metrics) {
                Ok(metrics) => Some(metrics),
                Err(err) => {
                    tracing::error!(%err, "Failed to register the work queue metrics");
                    None
                }
            })
            .as_ref()
    }

    /// The process's one value of type `T`, made by `init` the first time it succeeds: what a
    /// component registers once per process although `csi-sidecars` may call its `init` again
    /// after a failure (its metrics). An `init` error is returned and nothing is kept.
    pub fn once<T, E>(&self, init: impl FnOnce() -> Result<T, E>) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
    {
        let mut singletons = self
            .singletons
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = std::any::TypeId::of::<T>();
        if let Some(value) = singletons.get(&id).and_then(|v| v.downcast_ref::<T>()) {
            return Ok(value.clone());
        }
        let value = init()?;
        singletons.insert(id, Box::new(value.clone()));
        Ok(value)
    }

    /// The API-server side; components that declared [`crate::kube::KubeUse`] always have it.
    ///
    /// # Panics
    /// If the component did not declare it: a bug in its descriptor.
    pub fn kube(&self) -> &KubeShared {
        self.kube
            .as_ref()
            .expect("a component that uses the API server must declare Descriptor::kube")
    }

    /// For a component that upstream gives the `migrated` metric label (attacher, provisioner,
    /// resizer), once it knows that the driver replaced an in-tree plugin: records every CSI
    /// call with `migrated="true"` or `"false"` from now on (see
    /// [`CsiOperationMetrics::enable_migration`]; calls are marked with
    /// [`csi_connection::mark_as_migrated`]). Upstream connects again with a second metrics
    /// manager and serves only that one: the series recorded so far are dropped alike. Returns
    /// whether this call switched (the first such component of the process does).
    pub fn enable_migration_metrics(&self) -> bool {
        let switched = self.csi_metrics.enable_migration();
        if switched {
            tracing::debug!(
                v = 2,
                "CSI migration driver: CSI calls are recorded with the migrated label"
            );
        }
        switched
    }

    /// The driver's name from `GetPluginInfo`, asked once per process: the first caller's
    /// timeout applies, a failure is not remembered (the next caller asks again).
    pub async fn driver_name(
        &self,
        timeout: Option<Duration>,
    ) -> Result<String, csi_connection::Error> {
        self.driver_name
            .get_or_try_init(|| async {
                let name = csi_connection::rpc::get_driver_name(&self.csi, timeout).await?;
                self.csi_metrics.set_driver_name(&name);
                tracing::info!(driver = %name, "CSI driver name");
                Ok(name)
            })
            .await
            .cloned()
    }
}
