//! The gRPC interfaces the sidecars speak, generated from vendored schemas (see `proto/README.md`):
//!
//! - [`csi::v1`]: the Container Storage Interface, spec [`CSI_SPEC_VERSION`] — messages, clients
//!   and servers (with default `Unimplemented` stubs) for Identity, Controller, Node and
//!   GroupController — plus the local legacy definitions that v1.13.0 removed and drivers up to
//!   v1.12 still send: `VolumeCondition` (field 2 of `ListVolumesResponse.VolumeStatus`,
//!   `ControllerGetVolumeResponse.VolumeStatus` and `NodeGetVolumeStatsResponse`) and the
//!   `VOLUME_CONDITION` capabilities (controller 11, node 4). See `proto/README.md`.
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
pub const CSI_SPEC_VERSION: &str = "1.13.0";

/// The SHA-256 of the released `csi.proto` of [`CSI_SPEC_VERSION`]: what `proto/csi.proto` is
/// once its `LOCAL LEGACY` blocks are undone.
pub const RELEASED_CSI_PROTO_SHA256: &str =
    "8c5604cb76fefff19c01cf88ebd229e4f8c88c419898b07e4914318d25d84af3";

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
            csi::v1::ControllerListVolumeHealthRequest::full_name(),
            csi::v1::NodeGetVolumeHealthResponse::full_name(),
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

    /// `csi.proto` with every `LOCAL LEGACY` block replaced by the released lines of its `//|`
    /// comments.
    fn undo_legacy_blocks(text: &str) -> (String, usize) {
        let mut out = Vec::new();
        let mut blocks = 0;
        let mut inside = false;
        for line in text.split('\n') {
            let trimmed = line.trim_start();
            if trimmed.starts_with("// LOCAL LEGACY begin") {
                assert!(!inside, "nested legacy block");
                inside = true;
                blocks += 1;
            } else if trimmed == "// LOCAL LEGACY end" {
                assert!(inside, "legacy block end without a beginning");
                inside = false;
            } else if inside {
                if let Some(released) = trimmed.strip_prefix("//|") {
                    let indent = &line[..line.len() - trimmed.len()];
                    out.push(format!("{indent}{released}"));
                }
            } else {
                out.push(line.to_string());
            }
        }
        assert!(!inside, "unterminated legacy block");
        (out.join("\n"), blocks)
    }

    #[test]
    fn legacy_blocks_undone_give_the_released_file() {
        let (released, blocks) = undo_legacy_blocks(include_str!("../proto/csi.proto"));
        assert_eq!(
            blocks, 6,
            "three fields, two capability values, one message"
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, released.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, RELEASED_CSI_PROTO_SHA256);
        let readme = include_str!("../proto/README.md");
        assert!(readme.contains(RELEASED_CSI_PROTO_SHA256));
    }

    #[test]
    fn legacy_definitions_keep_their_v1_12_numbers() {
        use csi::v1::controller_service_capability::rpc::Type as Controller;
        use csi::v1::node_service_capability::rpc::Type as Node;
        assert_eq!(Controller::VolumeCondition as i32, 11);
        assert_eq!(Controller::GetVolumeHealth as i32, 16);
        assert_eq!(Controller::ListVolumeHealth as i32, 17);
        assert_eq!(Node::VolumeCondition as i32, 4);
        assert_eq!(Node::GetVolumeHealth as i32, 7);
        let pool = descriptor_pool();
        for message in [
            "csi.v1.ListVolumesResponse.VolumeStatus",
            "csi.v1.ControllerGetVolumeResponse.VolumeStatus",
            "csi.v1.NodeGetVolumeStatsResponse",
        ] {
            let field = pool
                .get_message_by_name(message)
                .and_then(|m| m.get_field_by_name("volume_condition"))
                .unwrap_or_else(|| panic!("{message}.volume_condition"));
            assert_eq!(field.number(), 2, "{message}");
            assert_eq!(
                field.kind().as_message().unwrap().full_name(),
                "csi.v1.VolumeCondition"
            );
        }
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
