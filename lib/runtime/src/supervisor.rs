//! Runs one controller so that its failure is its own.
//!
//! Each controller's `run` is a task of its own: an error or a panic ends that task only, never
//! its siblings, under the process-wide lease or under per-controller leases. What happens next
//! is the [`Policy`]: a standalone sidecar exits (exit code 1, as upstream, where the kubelet
//! restarts the container); `csi-sidecars` reports the failure under the controller's name —
//! `/healthz` and `/healthz/<controller>` fail with the reason, and
//! `csi_sidecars_controller_restarts_total{controller}` counts the restarts — then waits an
//! exponentially growing delay and starts the controller again: its `init` afresh, then its new
//! `run`. A restart that finds the driver lacking a capability disables the controller, as at
//! start-up.
//!
//! Dropping the supervisor's future stops the controller (its task is aborted), which is how
//! the runtime stops the work of a controller that no longer leads.

use std::any::Any;
use std::time::Duration;

use csi_metrics::{CounterVec, GaugeVec, Opts, Registry};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::controller::{Controller, Descriptor, InitContext, InitError};
use crate::health::{CheckResult, Health};

/// Exponential restart delays: `initial`, twice that, … up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first restart.
    pub initial: Duration,
    /// The longest delay. A run that lasted at least this long counts as a fresh start: the
    /// next failure waits `initial` again.
    pub max: Duration,
}

impl Backoff {
    /// client-go's default per-item backoff: 1 s doubling to 5 min.
    pub const DEFAULT: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(300),
    };

    /// The delay before restart number `restart` (1 for the first).
    pub fn delay(&self, restart: u32) -> Duration {
        let factor = 2u32.saturating_pow(restart.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// What the runtime does when a controller fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Report the failure to the caller (a standalone sidecar exits 1).
    Exit,
    /// Report it under the controller's name and restart the controller (`csi-sidecars`).
    Restart(Backoff),
}

/// Why a controller run ended without being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// `init` or `run` returned an error.
    #[error("{0:#}")]
    Error(anyhow::Error),
    /// `run` panicked.
    #[error("controller panicked: {0}")]
    Panic(String),
}

/// Where supervisors report: the health checks and, in `csi-sidecars`, the per-controller
/// metrics.
#[derive(Clone, Debug)]
pub struct Report {
    health: Health,
    metrics: Option<ControllerMetrics>,
}

/// `csi_sidecars_controller_enabled{controller}` and
/// `csi_sidecars_controller_restarts_total{controller}`.
#[derive(Clone, Debug)]
struct ControllerMetrics {
    enabled: GaugeVec,
    restarts: CounterVec,
}

impl Report {
    /// A standalone sidecar's: health as upstream (no entry of the runtime's), no metrics.
    pub fn standalone(health: Health) -> Report {
        Report {
            health,
            metrics: None,
        }
    }

    /// `csi-sidecars`': registers the per-controller metrics in `registry`.
    pub fn aggregate(health: Health, registry: &Registry) -> csi_metrics::Result<Report> {
        let enabled = GaugeVec::new(
            Opts::new(
                "csi_sidecars_controller_enabled",
                "Whether a controller selected by --controllers runs (1) or was disabled because the CSI driver lacks a capability it needs (0).",
            ),
            &["controller"],
        )?;
        registry.register(enabled.clone())?;
        let restarts = CounterVec::new(
            Opts::new(
                "csi_sidecars_controller_restarts_total",
                "Number of times a controller was restarted after it failed (returned an error or panicked).",
            ),
            &["controller"],
        )?;
        registry.register(restarts.clone())?;
        Ok(Report {
            health,
            metrics: Some(ControllerMetrics { enabled, restarts }),
        })
    }

    /// The controller was initialised; it runs once its turn comes (caches synced, lease held).
    pub fn initialised(&self, name: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.enabled.with_label_values(&[name]).set(1.0);
        }
    }

    /// The controller runs: its own health check (or, without one, an `ok` entry) speaks.
    pub fn running(&self, name: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.enabled.with_label_values(&[name]).set(1.0);
            metrics.restarts.with_label_values(&[name]);
            self.health.register_if_absent(name);
            self.health.clear_failed(name);
        }
    }

    /// The driver lacks what the controller needs: it stays off, which is not a failure.
    pub fn disabled(&self, name: &str, reason: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.enabled.with_label_values(&[name]).set(0.0);
            self.health.clear_failed(name);
            self.health
                .register_static(name, CheckResult::OkWithNote(format!("disabled: {reason}")));
        }
    }

    /// The controller failed and waits to be restarted.
    pub fn failed(&self, name: &str, reason: String) {
        self.health.set_failed(name, reason);
    }

    fn restarting(&self, name: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.restarts.with_label_values(&[name]).inc();
        }
    }
}

/// Runs `descriptor`'s controller, starting with `first` (what its `init` gave, or why it
/// failed), under `policy`, until the process shuts down. Returns `Err` only under
/// [`Policy::Exit`].
pub async fn supervise(
    descriptor: &'static Descriptor,
    ctx: InitContext,
    first: Result<Controller, Failure>,
    policy: Policy,
    report: Report,
) -> Result<(), Failure> {
    let name = descriptor.name;
    let shutdown = ctx.shared.shutdown.clone();
    let mut attempt = first;
    let mut restarts: u32 = 0;
    loop {
        let (failure, ran_for) = match attempt {
            Ok(controller) => {
                report.running(name);
                let started = Instant::now();
                match run_once(controller).await {
                    Ok(()) => {
                        if !shutdown.is_cancelled() {
                            info!(controller = name, "Controller finished");
                        }
                        return Ok(());
                    }
                    Err(failure) => (failure, started.elapsed()),
                }
            }
            Err(failure) => (failure, Duration::ZERO),
        };
        if shutdown.is_cancelled() {
            // Stopping: a failure now changes nothing for the user, but the log says it.
            warn!(
                controller = name,
                "Controller failed while shutting down: {failure}"
            );
            return match policy {
                Policy::Exit => Err(failure),
                Policy::Restart(_) => Ok(()),
            };
        }
        let Policy::Restart(backoff) = policy else {
            return Err(failure);
        };
        error!(controller = name, "Controller failed: {failure}");
        if ran_for >= backoff.max {
            restarts = 0;
        }
        restarts = restarts.saturating_add(1);
        let delay = backoff.delay(restarts);
        report.failed(name, format!("{failure} (restarting in {delay:?})"));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        report.restarting(name);
        info!(
            controller = name,
            restart = restarts,
            "Restarting controller"
        );
        let init = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            init = (descriptor.init)(ctx.clone()) => init,
        };
        attempt = match init {
            Ok(controller) => Ok(controller),
            Err(InitError::Disabled(reason)) => {
                warn!(controller = name, %reason, "Controller disabled");
                report.disabled(name, &reason);
                return Ok(());
            }
            Err(InitError::Failed(err)) => Err(Failure::Error(err)),
        };
    }
}

/// Runs a controller in a task of its own, so that a panic is caught and reported; dropping
/// this future aborts the task.
async fn run_once(controller: Controller) -> Result<(), Failure> {
    let mut task = JoinSet::new();
    task.spawn(controller.run);
    match task.join_next().await {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(err))) => Err(Failure::Error(err)),
        Some(Err(err)) if err.is_panic() => Err(Failure::Panic(panic_message(err.into_panic()))),
        Some(Err(err)) => Err(Failure::Error(anyhow::anyhow!(
            "controller task stopped: {err}"
        ))),
    }
}

/// The message of a panic payload (what `panic!` was given, as text), `(no message)` when it
/// has none; for controllers that report a panicked task.
pub fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(Backoff::DEFAULT.delay(u32::MAX), Backoff::DEFAULT.max);
    }

    #[tokio::test]
    async fn a_panic_is_caught_with_its_message() {
        let failure = run_once(Controller::new(async {
            if true {
                panic!("boom {}", 42);
            }
            Ok(())
        }))
        .await
        .unwrap_err();
        assert_eq!(failure.to_string(), "controller panicked: boom 42");

        let failure = run_once(Controller::new(async { Err(anyhow::anyhow!("no")) }))
            .await
            .unwrap_err();
        assert_eq!(failure.to_string(), "no");
        assert!(run_once(Controller::new(async { Ok(()) })).await.is_ok());
    }
}
