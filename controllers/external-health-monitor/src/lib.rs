//! external-health-monitor (kubernetes-csi/external-health-monitor v0.19.0) in Rust: the
//! controller `csi-external-health-monitor-controller` and `csi-sidecars
//! --controllers=health-monitor`.
//!
//! - [`csi`]: the driver's capabilities and the monitoring mode they give, and the CSI 1.12
//!   `VolumeCondition` calls (`ListVolumes`, `ControllerGetVolume`: the legacy path).
//! - [`volume_health`]: the CSI 1.13 health RPCs (`ControllerListVolumeHealth`,
//!   `ControllerGetVolumeHealth`, `NodeGetVolumeHealth`) and their mapping to claim conditions.
//! - [`checker`]: one volume's (or one sweep's) condition reported on its claim.
//! - [`health`]: what is written on the claim (`status.healthStatus`), the Events, and the
//!   memory that replaces upstream's cluster-wide Event watch.
//! - [`controller`]: the queues, workers and intervals; [`node_watcher`]: node failures.
//! - [`kube`]: the API calls outside the watches; [`component`]: flags and start-up.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checker;
pub mod component;
pub mod controller;
pub mod csi;
pub mod health;
pub mod kube;
pub mod node_watcher;
pub mod volume_health;

pub use component::DESCRIPTOR;

#[cfg(test)]
mod tests;
