//! `pkg/resizer/csi_resizer_test.go`.

use std::sync::Arc;
use std::time::Duration;

use csi_proto::csi::v1::VolumeCapability;
use csi_proto::csi::v1::volume_capability::access_mode::Mode;
use csi_proto::csi::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use k8s_openapi::api::core::v1::{
    AWSElasticBlockStoreVolumeSource, CSIPersistentVolumeSource, GCEPersistentDiskVolumeSource,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, SecretReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::fakes::{FakeCluster, FakeDriver, lock, make_secret, q};
use crate::resize::resizer::{NewResizerError, Resizer, new_resizer, volume_capabilities};
use crate::resize::util::{ANN_VOLUME_RESIZER, bytes_to_quantity};

#[tokio::test]
async fn test_new_resizer() {
    // (node, controller, controller service, single node multi writer) → error / trivial
    let cases: [(&str, bool, bool, bool, bool, Option<NewResizerError>, bool); 5] = [
        ("Create succeeded", true, true, true, true, None, false),
        (
            "Controller service not supported",
            true,
            true,
            false,
            true,
            Some(NewResizerError::ControllerServiceNotSupported),
            false,
        ),
        (
            "Controller modify not supported",
            true,
            true,
            true,
            true,
            None,
            false,
        ),
        (
            "Only node resize supported",
            true,
            false,
            true,
            true,
            None,
            true,
        ),
        (
            "Both controller and node resize not supported",
            false,
            false,
            true,
            true,
            Some(NewResizerError::ResizeNotSupported),
            false,
        ),
    ];
    for (name, node, controller, service, snmw, error, trivial) in cases {
        let driver = FakeDriver::new(node, controller, service, snmw);
        let result = new_resizer(driver, FakeCluster::new(), "mock-driver", Duration::ZERO).await;
        match (&result, &error) {
            (Err(got), Some(want)) => assert_eq!(got, want, "{name}"),
            (Ok(resizer), None) => assert_eq!(
                !resizer.driver_supports_control_plane_expansion(),
                trivial,
                "{name}: trivial"
            ),
            _ => panic!("{name}: wanted {error:?}, got {:?}", result.err()),
        }
    }
}

fn make_test_pv(
    name: &str,
    size_gig: i64,
    driver: &str,
    volume: &str,
    with_secret: bool,
) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            capacity: Some([("storage".to_string(), q(&format!("{size_gig}Gi")))].into()),
            csi: Some(CSIPersistentVolumeSource {
                driver: driver.into(),
                volume_handle: volume.into(),
                read_only: Some(false),
                controller_expand_secret_ref: with_secret.then(|| SecretReference {
                    name: Some("some-secret".into()),
                    namespace: Some("secret-namespace".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

#[tokio::test]
async fn test_resize_with_secret() {
    for (name, has_secret, expect_secrets) in [
        ("when CSI source has expansion secret", true, true),
        ("when CSI source has no secret", false, false),
    ] {
        let driver = FakeDriver::new(true, true, true, true);
        let cluster = FakeCluster::new();
        cluster.add_secret(make_secret("some-secret", "secret-namespace"));
        let resizer = new_resizer(driver.clone(), cluster, "ebs-csi", Duration::from_secs(10))
            .await
            .unwrap();
        let pv = make_test_pv("test-csi", 2, "ebs-csi", "vol-abcde", has_secret);
        resizer
            .resize(&pv, &q("10Gi"))
            .await
            .unwrap_or_else(|e| panic!("{name}: unexpected error while expansion : {e}"));
        let used = lock(&driver.secrets).clone().unwrap_or_default();
        assert_eq!(!used.is_empty(), expect_secrets, "{name}: {used:?}");
        if expect_secrets {
            assert_eq!(
                used.get("mykey").map(String::as_str),
                Some("mydata"),
                "{name}"
            );
        }
    }
}

fn quantity_gb(i: i64) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    // upstream's resizer tests' `quantityGB` is i MiB.
    bytes_to_quantity(i * 1024 * 1024)
}

fn create_in_tree_ebs_pv(capacity: i64) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some("testEBSPV".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some([("storage".to_string(), quantity_gb(capacity))].into()),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            aws_elastic_block_store: Some(AWSElasticBlockStoreVolumeSource {
                volume_id: "testVolumeId".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn create_in_tree_gce_pd_pv(capacity: i64) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some("testPDPV".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some([("storage".to_string(), quantity_gb(capacity))].into()),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            gce_persistent_disk: Some(GCEPersistentDiskVolumeSource::default()),
            ..Default::default()
        }),
        status: None,
    }
}

fn create_pvc(resizer_name: &str) -> PersistentVolumeClaim {
    let mut claim = super::fakes::create_pvc(2, 1);
    claim.metadata.annotations =
        Some([(ANN_VOLUME_RESIZER.to_string(), resizer_name.to_string())].into());
    claim
}

#[tokio::test]
async fn test_resize_migrated_pv() {
    // (name, driver, PV, node resize required, error)
    for (name, driver_name, pv, node_resize_required, err) in [
        (
            "Test AWS EBS CSI Driver",
            "ebs.csi.aws.com",
            create_in_tree_ebs_pv(1),
            true,
            None,
        ),
        (
            "Test GCE PD Driver",
            "pd.csi.storage.gke.io",
            create_in_tree_gce_pd_pv(1),
            true,
            None,
        ),
        (
            "Test unknonwn driver",
            "unknown",
            create_in_tree_ebs_pv(1),
            true,
            Some("volume testEBSPV is not migrated to CSI"),
        ),
    ] {
        let driver = FakeDriver::new(true, true, true, true);
        driver.set_check_migrated_label();
        let resizer = new_resizer(
            driver.clone(),
            FakeCluster::new(),
            driver_name,
            Duration::ZERO,
        )
        .await
        .unwrap();
        let expected_size = quantity_gb(2);
        let result = resizer.resize(&pv, &expected_size).await;
        match err {
            Some(err) => {
                assert_eq!(result.unwrap_err().to_string(), err, "{name}");
                assert_eq!(driver.expand_count(), 0, "{name}");
            }
            None => {
                let resized = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(resized.size, expected_size, "{name}");
                assert_eq!(
                    resized.node_expansion_required, node_resize_required,
                    "{name}"
                );
                assert_eq!(driver.expand_count(), 1, "{name}");
            }
        }
    }
}

fn mount(fs_type: &str, mode: Mode, flags: &[&str]) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs_type.into(),
            mount_flags: flags.iter().map(|s| s.to_string()).collect(),
            volume_mount_group: String::new(),
        })),
        access_mode: Some(AccessMode { mode: mode.into() }),
    }
}

fn block(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode { mode: mode.into() }),
    }
}

#[test]
fn test_get_volume_capabilities() {
    use Mode::*;
    let fs = Some("Filesystem");
    let blk = Some("Block");
    // (name, volume mode, fsType, modes, mount options, SNMW, expected)
    let cases: Vec<(
        &str,
        Option<&str>,
        &str,
        &[&str],
        &[&str],
        bool,
        Option<VolumeCapability>,
    )> = vec![
        (
            "RWX",
            fs,
            "",
            &["ReadWriteMany"],
            &[],
            false,
            Some(mount("", MultiNodeMultiWriter, &[])),
        ),
        (
            "Block RWX",
            blk,
            "",
            &["ReadWriteMany"],
            &[],
            false,
            Some(block(MultiNodeMultiWriter)),
        ),
        (
            "RWX + specified fsType",
            None,
            "ext3",
            &["ReadWriteMany"],
            &[],
            false,
            Some(mount("ext3", MultiNodeMultiWriter, &[])),
        ),
        (
            "RWO",
            None,
            "",
            &["ReadWriteOnce"],
            &[],
            false,
            Some(mount("", SingleNodeWriter, &[])),
        ),
        (
            "Block RWO",
            blk,
            "",
            &["ReadWriteOnce"],
            &[],
            false,
            Some(block(SingleNodeWriter)),
        ),
        (
            "ROX",
            None,
            "",
            &["ReadOnlyMany"],
            &[],
            false,
            Some(mount("", MultiNodeReaderOnly, &[])),
        ),
        (
            "RWX + anytyhing",
            None,
            "",
            &["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"],
            &[],
            false,
            Some(mount("", MultiNodeMultiWriter, &[])),
        ),
        (
            "mount options",
            None,
            "",
            &["ReadWriteMany"],
            &["first", "second"],
            false,
            Some(mount("", MultiNodeMultiWriter, &["first", "second"])),
        ),
        (
            "ROX+RWO",
            None,
            "",
            &["ReadWriteOnce", "ReadOnlyMany"],
            &[],
            false,
            None,
        ),
        ("nothing", None, "", &[], &[], false, None),
        (
            "RWX with SINGLE_NODE_MULTI_WRITER capable driver",
            fs,
            "",
            &["ReadWriteMany"],
            &[],
            true,
            Some(mount("", MultiNodeMultiWriter, &[])),
        ),
        (
            "ROX + RWO with SINGLE_NODE_MULTI_WRITER capable driver",
            fs,
            "",
            &["ReadOnlyMany", "ReadWriteOnce"],
            &[],
            true,
            None,
        ),
        (
            "ROX + RWOP with SINGLE_NODE_MULTI_WRITER capable driver",
            fs,
            "",
            &["ReadOnlyMany", "ReadWriteOncePod"],
            &[],
            true,
            None,
        ),
        (
            "RWO + RWOP with SINGLE_NODE_MULTI_WRITER capable driver",
            fs,
            "",
            &["ReadWriteOnce", "ReadWriteOncePod"],
            &[],
            true,
            None,
        ),
        (
            "ROX with SINGLE_NODE_MULTI_WRITER capable driver",
            fs,
            "",
            &["ReadOnlyMany"],
            &[],
            true,
            Some(mount("", MultiNodeReaderOnly, &[])),
        ),
        (
            "RWO with SINGLE_NODE_MULTI_WRITER capable driver",
            fs,
            "",
            &["ReadWriteOnce"],
            &[],
            true,
            Some(mount("", SingleNodeMultiWriter, &[])),
        ),
        (
            "RWOP with SINGLE_NODE_MULTI_WRITER capable driver",
            fs,
            "",
            &["ReadWriteOncePod"],
            &[],
            true,
            Some(mount("", SingleNodeSingleWriter, &[])),
        ),
        (
            "nothing with SINGLE_NODE_MULTI_WRITER capable driver",
            None,
            "",
            &[],
            &[],
            true,
            None,
        ),
    ];
    assert_eq!(cases.len(), 18);
    for (name, volume_mode, fs_type, modes, options, snmw, expected) in cases {
        let spec = PersistentVolumeSpec {
            volume_mode: volume_mode.map(String::from),
            access_modes: Some(modes.iter().map(|s| s.to_string()).collect()),
            mount_options: (!options.is_empty())
                .then(|| options.iter().map(|s| s.to_string()).collect()),
            csi: Some(CSIPersistentVolumeSource {
                fs_type: (!fs_type.is_empty()).then(|| fs_type.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let got = volume_capabilities(&spec, snmw);
        match expected {
            None => assert!(got.is_err(), "test {name}: expected error, got {got:?}"),
            Some(expected) => assert_eq!(got.as_ref().ok(), Some(&expected), "test {name}"),
        }
    }
}

#[tokio::test]
async fn test_can_support() {
    for (name, driver_name, pv, resizer_annotation, can_support) in [
        (
            "EBS PV/PVC is supported",
            "ebs.csi.aws.com",
            create_in_tree_ebs_pv(1),
            "ebs.csi.aws.com",
            true,
        ),
        (
            "EBS PV/PVC is not supported when migartion is disabled",
            "ebs.csi.aws.com",
            create_in_tree_ebs_pv(1),
            "kubernetes.io/aws-ebs",
            false,
        ),
        (
            "PD PV/PVC is supported",
            "pd.csi.storage.gke.io",
            create_in_tree_gce_pd_pv(1),
            "pd.csi.storage.gke.io",
            true,
        ),
        (
            "unknown PV/PVC is not supported",
            "ebs.csi.aws.com",
            create_in_tree_ebs_pv(1),
            "unknown",
            false,
        ),
    ] {
        let resizer: Arc<dyn Resizer> = new_resizer(
            FakeDriver::new(true, true, true, true),
            FakeCluster::new(),
            driver_name,
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(
            resizer.can_support(&pv, &create_pvc(resizer_annotation)),
            can_support,
            "{name}"
        );
    }
    // A CSI PV of this driver is supported, another driver's is not.
    let resizer = new_resizer(
        FakeDriver::new(true, true, true, true),
        FakeCluster::new(),
        "ebs-csi",
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert!(resizer.can_support(
        &make_test_pv("a", 1, "ebs-csi", "v", false),
        &create_pvc("")
    ));
    assert!(!resizer.can_support(&make_test_pv("a", 1, "other", "v", false), &create_pvc("")));
}
