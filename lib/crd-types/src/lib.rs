//! Kubernetes API types that k8s-openapi does not have, for the sidecars that read or write
//! them:
//!
//! - [`snapshot::v1`]: `snapshot.storage.k8s.io/v1` [`VolumeSnapshot`],
//!   [`VolumeSnapshotContent`] and [`VolumeSnapshotClass`], with every field of
//!   external-snapshotter's `client/v8` (v8.7.0);
//! - [`group_snapshot::v1`]: `groupsnapshot.storage.k8s.io/v1` [`VolumeGroupSnapshot`],
//!   [`VolumeGroupSnapshotContent`] and [`VolumeGroupSnapshotClass`] (group snapshots, GA in
//!   v8.7.0);
//! - [`gateway::v1beta1`]: `gateway.networking.k8s.io/v1beta1` [`ReferenceGrant`], which
//!   allows a PersistentVolumeClaim to name a data source in another namespace.
//!
//! Each type implements k8s-openapi's `Resource`, `ListableResource` and `Metadata`, and so
//! kube's `Resource`: `kube::Api`, the shared caches and the test fakes take them like any
//! built-in type. They serialize as the API server writes them (`apiVersion` and `kind` first,
//! optional fields left out when unset) and deserialize leniently: unknown fields are ignored
//! and `apiVersion`/`kind` are not required, as in list items.
//!
//! Enumerations the API spells as strings (`deletionPolicy`, `sourceVolumeMode`) stay
//! `String`s, so that a value a newer API server sends is kept, not rejected; the known values
//! are constants.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod gateway;
pub mod group_snapshot;
pub mod snapshot;

pub use gateway::v1beta1::ReferenceGrant;
pub use group_snapshot::v1::{
    VolumeGroupSnapshot, VolumeGroupSnapshotClass, VolumeGroupSnapshotContent,
};
pub use snapshot::v1::{VolumeSnapshot, VolumeSnapshotClass, VolumeSnapshotContent};

/// Implements k8s-openapi's `Resource`, `ListableResource` and `Metadata` for an API type,
/// and its serialization with `apiVersion` and `kind`.
macro_rules! api_resource {
    (
        $ty:ident, group: $group:literal, version: $version:literal, kind: $kind:literal,
        plural: $plural:literal, scope: $scope:ty,
        fields { $($field:ident => $json:literal $(if $skip:path)?),* $(,)? }
    ) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = concat!($group, "/", $version);
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }

        impl k8s_openapi::ListableResource for $ty {
            const LIST_KIND: &'static str = concat!($kind, "List");
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap as _;
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry(
                    "apiVersion",
                    <$ty as k8s_openapi::Resource>::API_VERSION,
                )?;
                map.serialize_entry("kind", <$ty as k8s_openapi::Resource>::KIND)?;
                map.serialize_entry("metadata", &self.metadata)?;
                $(
                    let skip = false $( || $skip(&self.$field) )?;
                    if !skip {
                        map.serialize_entry($json, &self.$field)?;
                    }
                )*
                map.end()
            }
        }
    };
}

pub(crate) use api_resource;

#[cfg(test)]
mod tests;
