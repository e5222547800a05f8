//! csi-snapshotter (kubernetes-csi/external-snapshotter v8.7.0's sidecar) in Rust:
//! `csi-snapshotter` and `csi-sidecars --controllers=snapshotter`.
//!
//! - [`controller`]: VolumeSnapshotContents and VolumeGroupSnapshotContents of this driver
//!   made real (upstream's `pkg/sidecar-controller`).
//! - [`snapshotter`], [`group_snapshotter`]: the CSI calls (upstream's `pkg/snapshotter`,
//!   `pkg/group_snapshotter`).
//! - [`component`]: flags, feature gates, start-up checks, wiring.
//!
//! The annotation, finalizer and label names and the helpers it shares with the
//! snapshot-controller are `csi-snapshot-utils`'.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod component;
pub mod controller;
pub mod group_snapshotter;
pub mod snapshotter;

pub use component::DESCRIPTOR;
