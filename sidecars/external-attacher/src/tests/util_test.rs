//! Port of upstream's `pkg/controller/util_test.go`: `TestGetVolumeCapabilities` (18 cases),
//! `TestSanitizeDriverName` (3), `TestGetFinalizerName` (2), `TestAddFinalizerPatch` (3),
//! `TestRemoveFinalizerPatch` (6) and `TestGetVolumeHandle` (3).

use csi_proto::csi::v1::VolumeCapability;
use csi_proto::csi::v1::volume_capability::{
    AccessMode, AccessType, BlockVolume, MountVolume, access_mode::Mode,
};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeSpec,
};

use crate::util::{finalizer_name, volume_capabilities, volume_handle};
use csi_controller::finalizer::{add_finalizer_patch, remove_finalizer_patch};
use csi_controller::sanitize_name as sanitize_driver_name;

fn create_block_capability(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode { mode: mode.into() }),
    }
}

fn create_mount_capability(fs_type: &str, mode: Mode, mount_options: &[&str]) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs_type.to_string(),
            mount_flags: mount_options.iter().map(|o| o.to_string()).collect(),
            volume_mount_group: String::new(),
        })),
        access_mode: Some(AccessMode { mode: mode.into() }),
    }
}

#[derive(Default)]
struct CapabilityCase {
    name: &'static str,
    volume_mode: Option<&'static str>,
    fs_type: &'static str,
    modes: &'static [&'static str],
    mount_options: &'static [&'static str],
    supports_single_node_multi_writer: bool,
    expected_capability: Option<VolumeCapability>,
    expect_error: bool,
}

#[test]
fn test_get_volume_capabilities() {
    let block = Some("Block");
    let filesystem = Some("Filesystem");
    let default_fs_type = "ext4";
    let tests = vec![
        CapabilityCase {
            name: "RWX",
            volume_mode: filesystem,
            modes: &["ReadWriteMany"],
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::MultiNodeMultiWriter,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "Block RWX",
            volume_mode: block,
            modes: &["ReadWriteMany"],
            expected_capability: Some(create_block_capability(Mode::MultiNodeMultiWriter)),
            ..Default::default()
        },
        CapabilityCase {
            name: "RWX + specified fsType",
            fs_type: "ext3",
            modes: &["ReadWriteMany"],
            expected_capability: Some(create_mount_capability(
                "ext3",
                Mode::MultiNodeMultiWriter,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "RWO",
            modes: &["ReadWriteOnce"],
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::SingleNodeWriter,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "Block RWO",
            volume_mode: block,
            modes: &["ReadWriteOnce"],
            expected_capability: Some(create_block_capability(Mode::SingleNodeWriter)),
            ..Default::default()
        },
        CapabilityCase {
            name: "ROX",
            modes: &["ReadOnlyMany"],
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::MultiNodeReaderOnly,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "RWX + anything",
            modes: &["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"],
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::MultiNodeMultiWriter,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "mount options",
            modes: &["ReadWriteMany"],
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::MultiNodeMultiWriter,
                &["first", "second"],
            )),
            mount_options: &["first", "second"],
            ..Default::default()
        },
        CapabilityCase {
            name: "ROX+RWO",
            modes: &["ReadWriteOnce", "ReadOnlyMany"],
            expect_error: true, // not possible in CSI
            ..Default::default()
        },
        CapabilityCase {
            name: "nothing",
            modes: &[],
            expect_error: true,
            ..Default::default()
        },
        CapabilityCase {
            name: "RWX with SINGLE_NODE_MULTI_WRITER capable driver",
            volume_mode: filesystem,
            modes: &["ReadWriteMany"],
            supports_single_node_multi_writer: true,
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::MultiNodeMultiWriter,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "ROX + RWO with SINGLE_NODE_MULTI_WRITER capable driver",
            volume_mode: filesystem,
            modes: &["ReadOnlyMany", "ReadWriteOnce"],
            supports_single_node_multi_writer: true,
            expect_error: true,
            ..Default::default()
        },
        CapabilityCase {
            name: "ROX + RWOP with SINGLE_NODE_MULTI_WRITER capable driver",
            volume_mode: filesystem,
            modes: &["ReadOnlyMany", "ReadWriteOncePod"],
            supports_single_node_multi_writer: true,
            expect_error: true,
            ..Default::default()
        },
        CapabilityCase {
            name: "RWO + RWOP with SINGLE_NODE_MULTI_WRITER capable driver",
            volume_mode: filesystem,
            modes: &["ReadWriteOnce", "ReadWriteOncePod"],
            supports_single_node_multi_writer: true,
            expect_error: true,
            ..Default::default()
        },
        CapabilityCase {
            name: "ROX with SINGLE_NODE_MULTI_WRITER capable driver",
            volume_mode: filesystem,
            modes: &["ReadOnlyMany"],
            supports_single_node_multi_writer: true,
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::MultiNodeReaderOnly,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "RWO with SINGLE_NODE_MULTI_WRITER capable driver",
            volume_mode: filesystem,
            modes: &["ReadWriteOnce"],
            supports_single_node_multi_writer: true,
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::SingleNodeMultiWriter,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "RWOP with SINGLE_NODE_MULTI_WRITER capable driver",
            volume_mode: filesystem,
            modes: &["ReadWriteOncePod"],
            supports_single_node_multi_writer: true,
            expected_capability: Some(create_mount_capability(
                default_fs_type,
                Mode::SingleNodeSingleWriter,
                &[],
            )),
            ..Default::default()
        },
        CapabilityCase {
            name: "nothing with SINGLE_NODE_MULTI_WRITER capable driver",
            modes: &[],
            supports_single_node_multi_writer: true,
            expect_error: true,
            ..Default::default()
        },
    ];
    assert_eq!(tests.len(), 18);

    for test in tests {
        let spec = PersistentVolumeSpec {
            volume_mode: test.volume_mode.map(str::to_string),
            access_modes: Some(test.modes.iter().map(|m| m.to_string()).collect()),
            mount_options: (!test.mount_options.is_empty())
                .then(|| test.mount_options.iter().map(|o| o.to_string()).collect()),
            csi: Some(CSIPersistentVolumeSource {
                fs_type: Some(test.fs_type.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let result = volume_capabilities(
            &spec,
            test.supports_single_node_multi_writer,
            default_fs_type,
        );
        match (&result, test.expect_error) {
            (Ok(_), true) => panic!("test {}: expected error, got none", test.name),
            (Err(err), false) => panic!("test {}: got error: {err}", test.name),
            (Ok(cap), false) => assert_eq!(
                Some(cap),
                test.expected_capability.as_ref(),
                "test {}: unexpected VolumeCapability",
                test.name
            ),
            (Err(_), true) => {}
        }
    }
}

#[test]
fn access_mode_errors_have_upstreams_messages() {
    let spec = |modes: &[&str]| PersistentVolumeSpec {
        access_modes: Some(modes.iter().map(|m| m.to_string()).collect()),
        csi: Some(CSIPersistentVolumeSource::default()),
        ..Default::default()
    };
    let err = |modes: &[&str]| {
        volume_capabilities(&spec(modes), false, "")
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&["ReadWriteOnce", "ReadOnlyMany"]),
        "CSI does not support ReadOnlyMany and ReadWriteOnce on the same PersistentVolume"
    );
    assert_eq!(
        err(&["ReadWriteOncePod", "ReadOnlyMany"]),
        "Kubernetes does not support use of ReadWriteOncePod with other access modes on the same PersistentVolume"
    );
    assert_eq!(err(&[]), "unsupported AccessMode combination: []");
    assert_eq!(
        volume_capabilities(&PersistentVolumeSpec::default(), false, "")
            .unwrap_err()
            .to_string(),
        "CSI volume source was nil"
    );
}

#[test]
fn test_sanitize_driver_name() {
    let tests = [
        ("no-Change", "no-Change"),
        ("not!allowed/characters", "not-allowed-characters"),
        ("trailing\\", "trailing-X"),
    ];
    for (input, output) in tests {
        assert_eq!(sanitize_driver_name(input), output, "expected {output:?}");
    }
}

#[test]
fn test_get_finalizer_name() {
    let tests = [
        ("no-Change", "external-attacher/no-Change"),
        (
            "s!a@n#i$t(i%z^e&d*",
            "external-attacher/s-a-n-i-t-i-z-e-d-X",
        ),
    ];
    for (input, output) in tests {
        assert_eq!(finalizer_name(input), output, "expected {output:?}");
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn test_add_finalizer_patch() {
    let tests: [(&str, Option<Vec<String>>, &str, &str); 3] = [
        (
            "add to nil finalizers",
            None,
            "external-attacher/ebs-csi-aws-com",
            r#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["external-attacher/ebs-csi-aws-com"]}]"#,
        ),
        (
            "add to empty finalizers",
            Some(vec![]),
            "external-attacher/ebs-csi-aws-com",
            r#"[{"op":"test","path":"/metadata/finalizers","value":[]},{"op":"replace","path":"/metadata/finalizers","value":["external-attacher/ebs-csi-aws-com"]}]"#,
        ),
        (
            "add to existing finalizers preserves others",
            Some(strings(&[
                "external-provisioner.volume.kubernetes.io/finalizer",
                "kubernetes.io/pv-protection",
            ])),
            "external-attacher/ebs-csi-aws-com",
            r#"[{"op":"add","path":"/metadata/finalizers/-","value":"external-attacher/ebs-csi-aws-com"}]"#,
        ),
    ];
    for (name, finalizers, finalizer, want) in tests {
        let got = add_finalizer_patch(finalizers.as_deref(), finalizer);
        assert_eq!(got.to_string(), want, "{name}");
    }
}

#[test]
fn test_remove_finalizer_patch() {
    type Case<'a> = (&'a str, Option<Vec<String>>, &'a str, Option<&'a str>);
    let tests: [Case; 6] = [
        (
            "remove sole finalizer",
            Some(strings(&["external-attacher/ebs-csi-aws-com"])),
            "external-attacher/ebs-csi-aws-com",
            Some(
                r#"[{"op":"test","path":"/metadata/finalizers/0","value":"external-attacher/ebs-csi-aws-com"},{"op":"remove","path":"/metadata/finalizers/0"}]"#,
            ),
        ),
        (
            "remove first of many",
            Some(strings(&[
                "external-attacher/ebs-csi-aws-com",
                "kubernetes.io/pv-protection",
                "external-provisioner.volume.kubernetes.io/finalizer",
            ])),
            "external-attacher/ebs-csi-aws-com",
            Some(
                r#"[{"op":"test","path":"/metadata/finalizers/0","value":"external-attacher/ebs-csi-aws-com"},{"op":"remove","path":"/metadata/finalizers/0"}]"#,
            ),
        ),
        (
            "remove middle finalizer leaves others untouched",
            Some(strings(&[
                "external-provisioner.volume.kubernetes.io/finalizer",
                "external-attacher/ebs-csi-aws-com",
                "kubernetes.io/pv-protection",
            ])),
            "external-attacher/ebs-csi-aws-com",
            Some(
                r#"[{"op":"test","path":"/metadata/finalizers/1","value":"external-attacher/ebs-csi-aws-com"},{"op":"remove","path":"/metadata/finalizers/1"}]"#,
            ),
        ),
        (
            "remove last finalizer",
            Some(strings(&[
                "kubernetes.io/pv-protection",
                "external-attacher/ebs-csi-aws-com",
            ])),
            "external-attacher/ebs-csi-aws-com",
            Some(
                r#"[{"op":"test","path":"/metadata/finalizers/1","value":"external-attacher/ebs-csi-aws-com"},{"op":"remove","path":"/metadata/finalizers/1"}]"#,
            ),
        ),
        (
            "finalizer not found",
            Some(strings(&["kubernetes.io/pv-protection"])),
            "external-attacher/ebs-csi-aws-com",
            None, // wantErr
        ),
        (
            "nil finalizers",
            None,
            "external-attacher/ebs-csi-aws-com",
            None, // wantErr
        ),
    ];
    for (name, finalizers, finalizer, want) in tests {
        let got = remove_finalizer_patch(finalizers.as_deref(), finalizer);
        assert_eq!(got.map(|p| p.to_string()).as_deref(), want, "{name}");
    }
}

#[test]
fn test_get_volume_handle() {
    let pv = PersistentVolume {
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                driver: "myDriver".to_string(),
                volume_handle: "name".to_string(),
                read_only: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let valid_pv = pv.clone();
    let mut read_only_pv = pv.clone();
    if let Some(csi) = read_only_pv.spec.as_mut().and_then(|s| s.csi.as_mut()) {
        csi.read_only = Some(true);
    }
    let mut invalid_pv = pv;
    if let Some(spec) = invalid_pv.spec.as_mut() {
        spec.csi = None;
    }

    // (pv, output, readOnly, expectError). Upstream's GetVolumeHandle takes a possibly nil
    // CSI source and errors on nil; here the missing source is the caller's `None`.
    let tests = [
        (valid_pv, "name", false, false),
        (read_only_pv, "name", true, false),
        (invalid_pv, "", false, true),
    ];
    for (i, (pv, output, read_only, expect_error)) in tests.into_iter().enumerate() {
        let result = pv
            .spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .map(volume_handle);
        let (got, got_read_only) = result.clone().unwrap_or_default();
        assert_eq!(got, output, "test {i}: volume ID");
        assert_eq!(got_read_only, read_only, "test {i}: readonly");
        assert_eq!(result.is_none(), expect_error, "test {i}: error");
    }
}
