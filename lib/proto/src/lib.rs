//! The gRPC interfaces the sidecars speak, generated from vendored schemas (see `proto/README.md`):
//!
//! - [`csi::v1`]: the Container Storage Interface, spec [`CSI_SPEC_VERSION`] — messages, clients
//!   and servers (with default `Unimplemented` stubs) for Identity, Controller, Node and
//!   GroupController.
//! - [`pluginregistration::v1`]: the kubelet plugin-registration API served by
//!   node-driver-registrar and called by the kubelet's plugin watcher.
//! - [`sanitize`]: log-safe rendering of messages, with every field marked `csi_secret` in the
//!   schema replaced by `***stripped***`.
//!
//! Every generated message implements [`prost::Name`]. The compiled schemas are also embedded
//! ([`FILE_DESCRIPTOR_SET`], [`descriptor_pool`]) for run-time reflection.
//!
//! This crate owns the schemas and their generated code only: no connection handling, no
//! logging setup.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

pub mod sanitize;

/// Generated code for protobuf package `csi`.
pub mod csi {
    /// Generated code for protobuf package `csi.v1`: the CSI spec [`CSI_SPEC_VERSION`](crate::CSI_SPEC_VERSION).
    #[allow(
        missing_docs,
        clippy::all,
        clippy::pedantic,
        clippy::nursery,
        rustdoc::all
    )]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/csi.v1.rs"));
    }
}

/// Generated code for the kubelet plugin-registration API.
pub mod pluginregistration {
    /// Generated code for `k8s.io/kubelet/pkg/apis/pluginregistration/v1`.
    ///
    /// The protobuf package is `pluginregistration` (no `v1`), so the gRPC method paths are
    /// `/pluginregistration.Registration/GetInfo` and
    /// `/pluginregistration.Registration/NotifyRegistrationStatus`.
    #[allow(
        missing_docs,
        clippy::all,
        clippy::pedantic,
        clippy::nursery,
        rustdoc::all
    )]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/pluginregistration.rs"));
    }
}

/// The version of the vendored CSI spec (`proto/csi.proto`).
pub const CSI_SPEC_VERSION: &str = "1.12.0";

/// The encoded `google.protobuf.FileDescriptorSet` of both vendored schemas and their imports,
/// with custom options (such as `csi.v1.csi_secret`) preserved and source comments left out.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));

/// The descriptors of both vendored schemas, decoded once from [`FILE_DESCRIPTOR_SET`].
///
/// Message names are the protobuf full names, e.g. `csi.v1.CreateVolumeRequest` or
/// `pluginregistration.PluginInfo`, as returned by [`prost::Name::full_name`].
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("the descriptor set embedded by build.rs is valid")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Name;

    #[test]
    fn pool_has_both_schemas() {
        let pool = descriptor_pool();
        for name in [
            csi::v1::CreateVolumeRequest::full_name(),
            csi::v1::GroupControllerGetCapabilitiesRequest::full_name(),
            pluginregistration::v1::PluginInfo::full_name(),
        ] {
            assert!(pool.get_message_by_name(&name).is_some(), "{name}");
        }
        for service in [
            "csi.v1.Identity",
            "csi.v1.Controller",
            "csi.v1.Node",
            "csi.v1.GroupController",
            "pluginregistration.Registration",
        ] {
            assert!(pool.get_service_by_name(service).is_some(), "{service}");
        }
    }

    #[test]
    fn type_names() {
        assert_eq!(csi::v1::ProbeResponse::full_name(), "csi.v1.ProbeResponse");
        assert_eq!(
            pluginregistration::v1::RegistrationStatus::full_name(),
            "pluginregistration.RegistrationStatus"
        );
    }

    #[test]
    fn spec_version_matches_vendored_schema() {
        // csi.proto has no version inside; the README records it. Keep the two in step.
        let readme = include_str!("../proto/README.md");
        assert!(readme.contains(&format!(
            "v{CSI_SPEC_VERSION} (module `VERSION` file: `{CSI_SPEC_VERSION}`)"
        )));
    }
}
