//! The snapshot-controller: the cluster-wide half of external-snapshotter v8.7.0
//! (`cmd/snapshot-controller`, `pkg/common-controller`, `pkg/metrics`). It watches
//! VolumeSnapshots and VolumeSnapshotContents, creates the content of each dynamic snapshot
//! (`snapcontent-<snapshot UID>`), binds pre-provisioned ones, carries the content's
//! readiness, size and errors into the snapshot's status, keeps the finalizers that protect
//! snapshots, contents and source PVCs, and deletes a deleted snapshot's content by its
//! deletion policy. The storage system is the csi-snapshotter sidecar's business; this
//! controller calls no driver.
//!
//! - [`component`]: flags, feature gates, the CRD check, watches, queues, workers.
//! - [`controller`]: the syncs.
//! - [`group`]: group snapshots' caches and index.
//! - [`api`]: the API server and cache traits, and their kube implementations.
//! - [`metrics`]: `snapshot_controller_operation_total_seconds`, `…_operations_in_flight`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod component;
pub mod controller;
pub mod group;
pub mod metrics;

pub use component::DESCRIPTOR;

#[cfg(test)]
mod tests;
