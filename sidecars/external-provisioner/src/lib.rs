//! external-provisioner's provisioning logic (kubernetes-csi/external-provisioner v6.4.0,
//! `pkg/controller`, with what sig-storage-lib-external-provisioner v13.1.0 adds to a PV).
//!
//! What exists: the pure parts of provisioning one claim, taking Kubernetes objects as
//! arguments and calling no API.
//! - [`topology`]: the CreateVolume accessibility requirements and the PV's node affinity.
//! - [`params`]: StorageClass parameters and claim fields as CreateVolume sees them (stripped
//!   `csi.storage.k8s.io/` keys, fsType, volume capabilities, capacity, extra metadata, volume
//!   names).
//! - [`mod@provision`]: one claim from PVC to `CreateVolume` to PersistentVolume, the provisioning
//!   state of each failure and what the controller loop must do with it.
//! - [`source`]: the content source of a clone, with upstream's rules on the source PVC and PV.
//! - [`data_source`]: data sources read from Kubernetes — snapshot restores, clones,
//!   cross-namespace sources with ReferenceGrants, the source finalizers
//!   ([`DataSourceObjects::Api`]).
//! - [`clone_protection`], [`snapshot_protection`]: the controllers that remove the clone and
//!   snapshot source finalizers once no provisioning needs them.
//! - [`delete`]: the `DeleteVolume` of a released PV, its secret, and the wait for detach.
//! - [`csi`]: the CSI calls behind a trait, and its implementation on the driver connection.
//!
//! Still to come (they need the controller loop and the shared caches): watching claims and
//! volumes, the claim and volume queues, saving PVs, when to delete a volume, Events and
//! metrics, VolumeAttributesClass lookups, capacity tracking, node deployment (except deleting only
//! what this node reaches), `Config` with upstream's flags, the descriptor and the
//! `csi-provisioner` binary.
//!
//! Not supported: CSI migration of in-tree volumes. A claim that names an in-tree provisioner
//! is not ours ([`ProvisionError::NotOurs`]); an in-tree PV fails [`delete_volume`] as
//! upstream's does without a CSI source ([`DeleteError::InvalidPv`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod capacity;
pub mod clone_protection;
pub mod component;
pub mod controller;
pub mod csi;
pub mod data_source;
pub mod delete;
pub mod kube;
pub mod metrics;
pub mod params;
pub mod provision;
pub mod snapshot_protection;
pub mod source;
pub mod topology;

pub use component::DESCRIPTOR;
pub use controller::{ProvisionController, SyncError};
pub use csi::{CapacityDriver, CsiError, CsiVolumeDriver, VolumeDriver};
pub use delete::{DeleteError, delete_volume};
pub use provision::{
    DataSourceObjects, FailureOutcome, ProvisionError, ProvisionOptions, ProvisionerConfig,
    ProvisioningState, provision,
};

#[cfg(test)]
mod tests;
