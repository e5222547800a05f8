//! Port of external-provisioner v6.4.0's `TestProvisionWithMigration` (9 cases) and
//! `TestDeleteMigration` (2), with upstream's case names and its mock translator's behaviour
//! (a translated StorageClass gets a marker parameter, a translated PV a marker annotation);
//! then the same with the real translation of a GCE PD StorageClass and PV.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_proto::csi::v1::{CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest, Volume};
use csi_test_support::Secrets;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, GCEPersistentDiskVolumeSource, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::csi::{CsiError, VolumeDriver};
use crate::delete::delete_volume;
use crate::migration::{Migration, ProvisionerTranslator};
use crate::provision::*;
use crate::topology::{ClusterTopology, TopologyMemo};

const DRIVER: &str = "test-driver";
const IN_TREE_PLUGIN: &str = "in-tree-plugin";
const IN_TREE_STORAGE_CLASS: &str = "in-tree-storage-class";
const TRANSLATED_KEY: &str = "translated";
const REQUESTED_BYTES: i64 = 100000;

#[derive(Debug, Default)]
struct FakeDriver {
    /// The volume ID `CreateVolume` answers (`test-volume-id` when empty).
    volume_id: &'static str,
    created: Mutex<Vec<CreateVolumeRequest>>,
    deleted: Mutex<Vec<DeleteVolumeRequest>>,
    /// The `migrated` mark each call was made under (`markAsMigrated`), in call order.
    marks: Arc<Mutex<Vec<Option<bool>>>>,
}

impl VolumeDriver for FakeDriver {
    fn create_volume(
        &self,
        request: CreateVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<CreateVolumeResponse, CsiError>> {
        self.created.lock().unwrap().push(request);
        let volume_id = match self.volume_id {
            "" => "test-volume-id",
            id => id,
        };
        let marks = self.marks.clone();
        Box::pin(async move {
            marks.lock().unwrap().push(csi_connection::migrated());
            Ok(CreateVolumeResponse {
                volume: Some(Volume {
                    capacity_bytes: REQUESTED_BYTES,
                    volume_id: volume_id.into(),
                    ..Default::default()
                }),
            })
        })
    }

    fn delete_volume(
        &self,
        request: DeleteVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>> {
        self.deleted.lock().unwrap().push(request);
        let marks = self.marks.clone();
        Box::pin(async move {
            marks.lock().unwrap().push(csi_connection::migrated());
            Ok(())
        })
    }
}

/// Upstream's gomock translator: the StorageClass comes back with `translated=foo`, the PV with
/// a `translated` annotation; an in-tree PV is "migratable" when the case says so and
/// translates to a CSI PV with the handle `translated-handle`.
#[derive(Debug)]
struct MockTranslator {
    migratable: bool,
}

impl ProvisionerTranslator for MockTranslator {
    fn translate_in_tree_storage_class_to_csi(
        &self,
        _in_tree: &str,
        class: &StorageClass,
    ) -> Result<StorageClass, csi_translation::Error> {
        let mut class = class.clone();
        class
            .parameters
            .get_or_insert_with(BTreeMap::new)
            .insert(TRANSLATED_KEY.into(), "foo".into());
        Ok(class)
    }

    fn translate_csi_pv_to_in_tree(
        &self,
        pv: &PersistentVolume,
    ) -> Result<PersistentVolume, csi_translation::Error> {
        let mut pv = pv.clone();
        pv.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(TRANSLATED_KEY.into(), "foo".into());
        Ok(pv)
    }

    fn is_pv_migratable(&self, _pv: &PersistentVolume) -> bool {
        self.migratable
    }

    fn translate_in_tree_pv_to_csi(
        &self,
        _pv: &PersistentVolume,
    ) -> Result<PersistentVolume, csi_translation::Error> {
        Ok(csi_pv("translated-handle"))
    }
}

fn config(migration: Migration) -> ProvisionerConfig {
    ProvisionerConfig {
        driver_name: DRIVER.into(),
        identity: "test-provisioner".into(),
        volume_name_prefix: "test".into(),
        volume_name_uuid_length: 5,
        timeout: Duration::from_secs(5),
        strict_topology: false,
        immediate_topology: true,
        extra_create_metadata: false,
        default_fs_type: "ext4".into(),
        controller_publish_readonly: false,
        volume_attributes_class: true,
        capabilities: DriverCapabilities {
            controller_service: true,
            create_delete_volume: true,
            ..Default::default()
        },
        node_deployment: None,
        migration: Some(migration),
    }
}

fn mock(migratable: bool) -> Migration {
    Migration {
        in_tree_plugin_name: IN_TREE_PLUGIN.into(),
        translator: Arc::new(MockTranslator { migratable }),
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Upstream's `createPVCWithAnnotation`.
fn pvc_with_annotations(annotations: &[(&str, &str)]) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            uid: Some("testid".into()),
            name: Some("fake-pvc".into()),
            annotations: Some(map(annotations)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(REQUESTED_BYTES.to_string()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn csi_pv(handle: &str) -> PersistentVolume {
    PersistentVolume {
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                volume_handle: handle.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One case: name, StorageClass provisioner, claim annotations, expect translation, expect
/// error.
type MigrationCase = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    bool,
    bool,
);

#[tokio::test]
async fn test_provision_with_migration() {
    let cases: [MigrationCase; 9] = [
        (
            "provision with migration on",
            IN_TREE_PLUGIN,
            &[(ANN_BETA_STORAGE_PROVISIONER, DRIVER)],
            true,
            false,
        ),
        (
            "provision with migration on with GA annStorageProvisioner annotation",
            IN_TREE_PLUGIN,
            &[(ANN_STORAGE_PROVISIONER, DRIVER)],
            true,
            false,
        ),
        (
            "provision without migration for native CSI",
            DRIVER,
            &[(ANN_BETA_STORAGE_PROVISIONER, DRIVER)],
            false,
            false,
        ),
        (
            "provision without migration for native CSI with GA annStorageProvisioner annotation",
            DRIVER,
            &[(ANN_STORAGE_PROVISIONER, DRIVER)],
            false,
            false,
        ),
        (
            "provision with migration for migrated-to CSI",
            IN_TREE_PLUGIN,
            &[
                (ANN_BETA_STORAGE_PROVISIONER, IN_TREE_PLUGIN),
                (ANN_MIGRATED_TO, DRIVER),
            ],
            true,
            false,
        ),
        (
            "provision with migration-to some random driver",
            IN_TREE_PLUGIN,
            &[
                (ANN_BETA_STORAGE_PROVISIONER, IN_TREE_PLUGIN),
                (ANN_MIGRATED_TO, "foo"),
            ],
            false,
            true,
        ),
        (
            "provision with migration-to some random driver with random storageProvisioner",
            IN_TREE_PLUGIN,
            &[
                (ANN_BETA_STORAGE_PROVISIONER, "foo"),
                (ANN_MIGRATED_TO, "foo"),
            ],
            false,
            true,
        ),
        (
            "provision with migration for migrated-to CSI with CSI Provisioner",
            IN_TREE_PLUGIN,
            &[
                (ANN_BETA_STORAGE_PROVISIONER, DRIVER),
                (ANN_MIGRATED_TO, DRIVER),
            ],
            true,
            false,
        ),
        (
            "ignore in-tree PVC when provisioned by in-tree",
            IN_TREE_PLUGIN,
            &[(ANN_BETA_STORAGE_PROVISIONER, IN_TREE_PLUGIN)],
            false,
            true,
        ),
    ];
    for (name, provisioner, annotations, expect_translation, expect_err) in cases {
        let config = config(mock(false));
        let driver = FakeDriver::default();
        let claim = pvc_with_annotations(annotations);
        let class = StorageClass {
            provisioner: provisioner.into(),
            parameters: Some(map(&[("fstype", "ext3")])),
            reclaim_policy: Some("Delete".into()),
            ..Default::default()
        };
        let options = ProvisionOptions {
            claim: &claim,
            storage_class: &class,
            selected_node: "",
            volume_attributes_class: None,
            data_source: DataSourceObjects::None,
            cluster: ClusterTopology::default(),
        };
        let result = provision(
            &config,
            &options,
            &driver,
            &Secrets(Vec::new()),
            &mut TopologyMemo::new(),
        )
        .await;
        let created = driver.created.lock().unwrap().clone();
        if expect_err {
            let err = result.expect_err(name);
            assert!(created.is_empty(), "{name}: CreateVolume called");
            assert_eq!(err.state(), ProvisioningState::Finished, "{name}");
            continue;
        }
        let pv = result.unwrap_or_else(|e| panic!("{name}: got error: {e}"));
        assert_eq!(created.len(), 1, "{name}");
        // The metrics' `migrated` label (upstream's `markAsMigrated(ctx, migratedVolume)`).
        assert_eq!(
            *driver.marks.lock().unwrap(),
            [Some(expect_translation)],
            "{name}: CreateVolume marked as migrated"
        );
        let mut expect_params = map(&[("fstype", "ext3")]);
        if expect_translation {
            expect_params.insert(TRANSLATED_KEY.into(), "foo".into());
        }
        let request = &created[0];
        assert_eq!(request.name, "test-testi", "{name}");
        assert_eq!(
            request
                .parameters
                .clone()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            expect_params,
            "{name}: CreateVolume parameters"
        );
        assert_eq!(
            request.capacity_range.as_ref().map(|c| c.required_bytes),
            Some(REQUESTED_BYTES),
            "{name}"
        );
        let translated = pv
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(TRANSLATED_KEY));
        assert_eq!(
            translated, expect_translation,
            "{name}: PV translated to in-tree"
        );
    }
}

#[tokio::test]
async fn test_delete_migration() {
    let in_tree_class = StorageClass {
        metadata: ObjectMeta {
            name: Some(IN_TREE_STORAGE_CLASS.into()),
            ..Default::default()
        },
        provisioner: IN_TREE_PLUGIN.into(),
        parameters: Some(BTreeMap::new()),
        ..Default::default()
    };
    // (name, PV, StorageClasses, expect translation)
    let cases = [
        (
            // The PV could be any in-tree plugin's: only the translation matters.
            "normal migration",
            PersistentVolume::default(),
            vec![in_tree_class],
            true,
        ),
        (
            "no migration",
            csi_pv("no-translation-handle"),
            vec![],
            false,
        ),
    ];
    for (name, pv, classes, expect_translation) in cases {
        let config = config(mock(expect_translation));
        let driver = FakeDriver::default();
        delete_volume(&config, &pv, &classes, None, &driver, &Secrets(Vec::new()))
            .await
            .unwrap_or_else(|e| panic!("{name}: got error: {e}"));
        let deleted = driver.deleted.lock().unwrap();
        assert_eq!(deleted.len(), 1, "{name}");
        let expected = if expect_translation {
            "translated-handle"
        } else {
            "no-translation-handle"
        };
        assert_eq!(deleted[0].volume_id, expected, "{name}");
        assert_eq!(
            *driver.marks.lock().unwrap(),
            [Some(expect_translation)],
            "{name}: DeleteVolume marked as migrated"
        );
    }
}

/// With the real translation: a claim of a `kubernetes.io/gce-pd` StorageClass handed to the
/// GCE PD driver is created with the driver's parameters (`type` kept, `fstype` renamed, the
/// zone as an accessibility requirement is the topology's business) and written back as a GCE
/// PD PV; deleting that PV deletes the volume behind its translated handle.
#[tokio::test]
async fn gce_pd_storage_class_provisions_an_in_tree_pv_and_deletes_it() {
    let driver_name = "pd.csi.storage.gke.io";
    let mut config = config(Migration::for_driver(driver_name).expect("GCE PD migrates"));
    config.driver_name = driver_name.into();
    let driver = FakeDriver {
        volume_id: "projects/project-1/zones/us-central1-a/disks/pvc-1",
        ..Default::default()
    };
    let claim = pvc_with_annotations(&[(ANN_STORAGE_PROVISIONER, driver_name)]);
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some("standard".into()),
            ..Default::default()
        },
        provisioner: "kubernetes.io/gce-pd".into(),
        parameters: Some(map(&[("type", "pd-ssd"), ("fsType", "xfs")])),
        reclaim_policy: Some("Delete".into()),
        ..Default::default()
    };
    let options = ProvisionOptions {
        claim: &claim,
        storage_class: &class,
        selected_node: "",
        volume_attributes_class: None,
        data_source: DataSourceObjects::None,
        cluster: ClusterTopology::default(),
    };
    let pv = provision(
        &config,
        &options,
        &driver,
        &Secrets(Vec::new()),
        &mut TopologyMemo::new(),
    )
    .await
    .expect("provisioned");
    let request = driver.created.lock().unwrap()[0].clone();
    assert_eq!(
        request.parameters.into_iter().collect::<BTreeMap<_, _>>(),
        map(&[("type", "pd-ssd")]),
        "fsType goes to the volume capability, not the parameters"
    );
    let spec = pv.spec.clone().unwrap();
    assert_eq!(spec.csi, None);
    assert_eq!(
        spec.gce_persistent_disk,
        Some(GCEPersistentDiskVolumeSource {
            pd_name: "pvc-1".into(),
            fs_type: Some("xfs".into()),
            partition: None,
            read_only: None,
        })
    );
    assert_eq!(
        pv.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_PROVISIONED_BY))
            .map(String::as_str),
        Some("kubernetes.io/gce-pd"),
        "the library records the class's provisioner"
    );

    // The in-tree PV keeps only the disk name (and here no zone label): deleting translates it
    // to a handle with UNSPECIFIED project and zone, as upstream does.
    let mut pv = pv;
    pv.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
        name: Some("fake-pvc".into()),
        namespace: Some("default".into()),
        ..Default::default()
    });
    delete_volume(&config, &pv, &[class], None, &driver, &Secrets(Vec::new()))
        .await
        .expect("deleted");
    assert_eq!(
        driver.deleted.lock().unwrap()[0].volume_id,
        "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/pvc-1"
    );
}

/// A provisioned CSI PV that cannot be written back in the in-tree form is deleted again
/// (the volume handle is not a GCE PD handle of six parts here).
#[tokio::test]
async fn untranslatable_pv_is_deleted_and_the_claim_fails() {
    let driver_name = "pd.csi.storage.gke.io";
    let mut config = config(Migration::for_driver(driver_name).expect("GCE PD migrates"));
    config.driver_name = driver_name.into();
    let driver = FakeDriver::default();
    let claim = pvc_with_annotations(&[(ANN_STORAGE_PROVISIONER, driver_name)]);
    let class = StorageClass {
        provisioner: "kubernetes.io/gce-pd".into(),
        reclaim_policy: Some("Delete".into()),
        ..Default::default()
    };
    // The fake answers "test-volume-id"; translated back, GCE PD reads the disk name from a
    // handle of at least six parts.
    let options = ProvisionOptions {
        claim: &claim,
        storage_class: &class,
        selected_node: "",
        volume_attributes_class: None,
        data_source: DataSourceObjects::None,
        cluster: ClusterTopology::default(),
    };
    let err = provision(
        &config,
        &options,
        &driver,
        &Secrets(Vec::new()),
        &mut TopologyMemo::new(),
    )
    .await
    .expect_err("not translatable");
    assert_eq!(
        err.to_string(),
        "failed to get id components.Got: 1, wanted 6 components or more. "
    );
    assert_eq!(err.state(), ProvisioningState::Finished);
    assert_eq!(
        driver.deleted.lock().unwrap()[0].volume_id,
        "test-volume-id"
    );
    // CreateVolume is marked as migrated; the clean-up, as upstream's, is not marked.
    assert_eq!(*driver.marks.lock().unwrap(), [Some(true), None]);
}
