//! external-provisioner (kubernetes-csi/external-provisioner v6.4.0, with what
//! sig-storage-lib-external-provisioner v13.1.0 does for it), in Rust: `csi-provisioner` and
//! `csi-sidecars --controllers=provisioner`.
//!
//! The pure parts of provisioning one claim, taking Kubernetes objects as arguments:
//! - [`topology`]: the CreateVolume accessibility requirements and the PV's node affinity.
//! - [`params`]: StorageClass parameters and claim fields as CreateVolume sees them (stripped
//!   `csi.storage.k8s.io/` keys, fsType, volume capabilities, capacity, extra metadata, volume
//!   names).
//! - [`mod@provision`]: one claim from PVC to `CreateVolume` to PersistentVolume, the provisioning
//!   state of each failure and what the controller loop must do with it.
//! - [`source`]: the content source of a clone, with upstream's rules on the source PVC and PV.
//! - [`delete`]: the `DeleteVolume` of a released PV, its secret, and the wait for detach.
//!
//! What talks to Kubernetes and the driver:
//! - [`controller`]: the provisioning loop — claims, volumes, saving PVs, Events, the
//!   HonorPVReclaimPolicy finalizer, deletion; [`metrics`]: its metrics.
//! - [`data_source`]: data sources read from Kubernetes — snapshot restores, clones,
//!   cross-namespace sources with ReferenceGrants, the source finalizers
//!   ([`DataSourceObjects::Api`]); [`clone_protection`], [`snapshot_protection`]: the
//!   controllers that remove those finalizers once no provisioning needs them.
//! - [`capacity`]: CSIStorageCapacity objects (`--enable-capacity`).
//! - [`node_deployment`]: one provisioner per node (`--node-deployment`).
//! - [`kube`]: the cache reads and API calls, behind traits; [`csi`]: the CSI calls.
//! - [`component`]: upstream's flags, the start-up checks, the watches and workers.
//!
//! CSI migration ([`migration`]): a driver that replaced an in-tree plugin provisions claims of
//! that plugin's StorageClasses (translated to its parameters), writes their PVs in the in-tree
//! form, and deletes in-tree PVs through their CSI translation, as upstream does.

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
pub mod migration;
pub mod node_deployment;
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
