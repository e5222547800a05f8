//! external-attacher's controller logic (kubernetes-csi/external-attacher v4.13.0,
//! `pkg/attacher` and `pkg/controller`), ported to Rust.
//!
//! Owns: what happens to one VolumeAttachment or PersistentVolume taken off a queue — attach
//! through CSI `ControllerPublishVolume`, detach through `ControllerUnpublishVolume`, the
//! finalizer `external-attacher/<sanitized driver name>` on VolumeAttachments and
//! PersistentVolumes, `status.attached`, `attachmentMetadata`, `attachError` / `detachError`,
//! the node ID from CSINode (or the VolumeAttachment's node ID annotation when detaching),
//! read-only publishing and the access mode mapping ([`handler`]); which watch events become
//! which queue keys, and the periodic reconcile with the driver's `ListVolumes`
//! ([`controller`]); the CSI calls themselves ([`attacher`], [`lister`]); every Kubernetes read
//! and write, behind the traits of [`kube`] (reads from caches, writes as the exact patches
//! upstream sends). What is not specific to the attacher — API errors, patches, finalizer
//! patches, `semantic_eq`, name sanitizing, reading secrets — is the controller toolkit's
//! (`csi-controller`); the tests run on the fake API of `csi-test-support`.
//!
//! [`component`] makes it a component of our runtime (flags, capability checks, watches, work
//! queues, workers, timers); the runtime owns leader election, HTTP and the driver connection.
//!
//! CSI migration: a VolumeAttachment of an in-tree PersistentVolume (GCE PD, AWS EBS, …) whose
//! driver replaced the in-tree plugin is attached and detached as the CSI PV `csi-translation`
//! makes of it, as upstream does with csi-translation-lib; the reconciler repairs such volume
//! handles with the node ID.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attacher;
pub mod component;
pub mod controller;
pub mod handler;
pub mod kube;
pub mod lister;
pub mod util;

pub use attacher::{Attacher, CsiAttacher, CsiError};
pub use component::DESCRIPTOR;
pub use controller::{AttachController, PV_QUEUE_NAME, VA_QUEUE_NAME, should_enqueue_va_change};
pub use handler::{
    CsiHandler, CsiHandlerConfig, Handler, OperationError, ReconcileError, SyncError, SyncOutcome,
    TrivialHandler,
};
pub use kube::{ApiClient, ApiError, KubeClient, KubeListers, StoreListers};
pub use lister::{CsiVolumeLister, ListVolumesError, PublishedNodes, VolumeLister};

#[cfg(test)]
mod tests;
