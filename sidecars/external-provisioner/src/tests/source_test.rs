//! Port of upstream's `TestProvisionFromPVC` (`pkg/controller/controller_test.go`, v6.4.0),
//! with its case names: the 27 cases without `CrossNamespaceVolumeDataSource` (the 22
//! cross-namespace cases need ReferenceGrants, which are not written yet). "Finalizer set"
//! (upstream's `expectFinalizers`) is: the source was accepted and `CreateVolume` called, which
//! is where upstream has put the clone-protection finalizer on the source PVC.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use csi_controller::{ApiError, SecretGetter};
use csi_proto::csi::v1::volume_content_source::{Type, VolumeSource};
use csi_proto::csi::v1::{
    CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest, Volume, VolumeContentSource,
};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    PersistentVolumeStatus, Secret, TypedLocalObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::csi::{CsiError, VolumeDriver};
use crate::params::bytes_to_quantity;
use crate::provision::*;
use crate::topology::{ClusterTopology, TopologyMemo};

const DRIVER: &str = "test-driver";
const REQUESTED_BYTES: i64 = 1000;
const SRC_NAME: &str = "fake-pvc";
const SRC_NAMESPACE: &str = "fake-pvc-namespace";
const PV_NAME: &str = "test-testi";
const FAKE_SC_1: &str = "fake-sc-1";
const FAKE_SC_2: &str = "fake-sc-2";

#[derive(Debug)]
struct FakeDriver {
    content_source: String,
    created: Mutex<Vec<CreateVolumeRequest>>,
}

impl VolumeDriver for FakeDriver {
    fn create_volume(
        &self,
        request: CreateVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<CreateVolumeResponse, CsiError>> {
        self.created.lock().unwrap().push(request);
        let volume_id = self.content_source.clone();
        Box::pin(async move {
            Ok(CreateVolumeResponse {
                volume: Some(Volume {
                    capacity_bytes: REQUESTED_BYTES,
                    volume_id: "test-volume-id".into(),
                    content_source: Some(VolumeContentSource {
                        r#type: Some(Type::Volume(VolumeSource { volume_id })),
                    }),
                    ..Default::default()
                }),
            })
        })
    }

    fn delete_volume(
        &self,
        _request: DeleteVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>> {
        Box::pin(async { Ok(()) })
    }
}

struct NoSecrets;

impl SecretGetter for NoSecrets {
    fn get_secret<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move {
            Err(ApiError::not_found(
                csi_controller::resources::SECRETS,
                name,
            ))
        })
    }
}

fn storage(bytes: i64) -> Option<VolumeResourceRequirements> {
    Some(VolumeResourceRequirements {
        requests: Some(BTreeMap::from([(
            "storage".to_string(),
            bytes_to_quantity(bytes),
        )])),
        ..Default::default()
    })
}

fn mode(mode: &str) -> Option<String> {
    match mode {
        "block" => Some("Block".into()),
        "filesystem" => Some("Filesystem".into()),
        _ => None,
    }
}

/// Upstream's `fakeClaim`.
fn fake_claim(
    name: &str,
    uid: &str,
    bound_to: &str,
    phase: &str,
    class: Option<&str>,
    volume_mode: &str,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(SRC_NAMESPACE.into()),
            uid: Some(uid.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into(), "ReadOnlyMany".into()]),
            resources: storage(REQUESTED_BYTES),
            volume_name: Some(bound_to.into()),
            storage_class_name: class.map(str::to_string),
            volume_mode: mode(volume_mode),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

/// Upstream's `generatePVCForProvisionFromPVC`: the class and the new claim.
fn request(
    source: &str,
    class: &str,
    bytes: i64,
    volume_mode: &str,
) -> (StorageClass, PersistentVolumeClaim) {
    let class_object = StorageClass {
        reclaim_policy: Some("Delete".into()),
        parameters: Some(BTreeMap::from([("fstype".to_string(), "ext4".to_string())])),
        provisioner: DRIVER.into(),
        ..Default::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("my-pvc".into()),
            namespace: Some(SRC_NAMESPACE.into()),
            uid: Some("testid".into()),
            annotations: Some(BTreeMap::from([(
                ANN_BETA_STORAGE_PROVISIONER.to_string(),
                DRIVER.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            resources: storage(bytes),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            data_source: Some(TypedLocalObjectReference {
                name: source.into(),
                kind: "PersistentVolumeClaim".into(),
                api_group: None,
            }),
            storage_class_name: (!class.is_empty()).then(|| class.to_string()),
            volume_mode: mode(volume_mode),
            ..Default::default()
        }),
        status: None,
    };
    (class_object, claim)
}

/// The PVs of upstream's fixture, with the source PV in `phase`.
fn volumes(phase: &str) -> Vec<PersistentVolume> {
    let pv = |name: &str| PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                driver: DRIVER.into(),
                volume_handle: "test-volume-id".into(),
                fs_type: Some("ext3".into()),
                volume_attributes: Some(BTreeMap::from([(
                    PROVISIONER_IDENTITY_KEY.to_string(),
                    "test-provisioner".to_string(),
                )])),
                ..Default::default()
            }),
            claim_ref: Some(ObjectReference {
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(SRC_NAMESPACE.into()),
                name: Some(SRC_NAME.into()),
                uid: Some("fake-claim-uid".into()),
                ..Default::default()
            }),
            storage_class_name: Some(FAKE_SC_1.into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    };
    let with = |name: &str, change: &dyn Fn(&mut PersistentVolumeSpec)| {
        let mut volume = pv(name);
        change(volume.spec.as_mut().unwrap());
        volume
    };
    vec![
        pv(PV_NAME),
        with("block-pv", &|s| {
            s.volume_mode = Some("Block".into());
            let csi = s.csi.as_mut().unwrap();
            csi.volume_handle = String::new();
            csi.fs_type = None;
            let claim_ref = s.claim_ref.as_mut().unwrap();
            claim_ref.name = Some("block-pv".into());
            claim_ref.uid = Some("fake-block-claim-uid".into());
        }),
        with("unbound-pv", &|s| s.claim_ref = None),
        with("another-class", &|s| {
            s.csi.as_mut().unwrap().driver = "wrong.com".into()
        }),
        with("pv-bound-to-another-pvc-by-UID", &|s| {
            s.claim_ref.as_mut().unwrap().uid = Some("another-claim-uid".into())
        }),
        with("pv-bound-to-another-pvc-by-namespace", &|s| {
            s.claim_ref.as_mut().unwrap().namespace = Some("another-claim-namespace".into())
        }),
        with("pv-bound-to-another-pvc-by-name", &|s| {
            s.claim_ref.as_mut().unwrap().name = Some("another-claim-name".into())
        }),
        with("filesystem-pv", &|s| {
            s.volume_mode = Some("Filesystem".into());
            s.claim_ref.as_mut().unwrap().name = Some("filesystem-pv".into());
        }),
    ]
}

/// The PVCs of upstream's fixture, the sources bound to `clone_pv`.
fn claims(clone_pv: &str) -> Vec<PersistentVolumeClaim> {
    let sc = Some(FAKE_SC_1);
    vec![
        fake_claim(SRC_NAME, "fake-claim-uid", clone_pv, "Bound", sc, ""),
        fake_claim(
            "invalid-pv",
            "fake-claim-uid",
            "pv-not-present",
            "Bound",
            sc,
            "",
        ),
        fake_claim("pvc-sc-nil", "fake-claim-uid", PV_NAME, "Bound", None, ""),
        fake_claim("lost-pvc", "fake-claim-uid", clone_pv, "Lost", sc, ""),
        fake_claim("pending-pvc", "fake-claim-uid", clone_pv, "Pending", sc, ""),
        fake_claim(
            "filesystem-pv",
            "fake-claim-uid",
            clone_pv,
            "Bound",
            sc,
            "filesystem",
        ),
        fake_claim(
            "block-pv",
            "fake-block-claim-uid",
            clone_pv,
            "Bound",
            sc,
            "block",
        ),
    ]
}

struct Case {
    name: &'static str,
    clone_pv: &'static str,
    source: &'static str,
    class: &'static str,
    bytes: i64,
    mode: &'static str,
    source_pv_phase: &'static str,
    clone_unsupported: bool,
    expect_finalizers: bool,
    expect_err: bool,
}

fn case(name: &'static str, clone_pv: &'static str, source: &'static str) -> Case {
    Case {
        name,
        clone_pv,
        source,
        class: FAKE_SC_1,
        bytes: REQUESTED_BYTES,
        mode: "",
        source_pv_phase: "Bound",
        clone_unsupported: false,
        expect_finalizers: false,
        expect_err: true,
    }
}

impl Case {
    fn ok(mut self) -> Self {
        self.expect_err = false;
        self.expect_finalizers = true;
        self
    }
    fn finalizers(mut self) -> Self {
        self.expect_finalizers = true;
        self
    }
    fn mode(mut self, mode: &'static str) -> Self {
        self.mode = mode;
        self
    }
    fn phase(mut self, phase: &'static str) -> Self {
        self.source_pv_phase = phase;
        self
    }
}

#[tokio::test]
async fn test_provision_from_pvc() {
    let cases = vec![
        case("provision with pvc data source", PV_NAME, SRC_NAME).ok(),
        Case {
            clone_unsupported: true,
            ..case(
                "provision with pvc data source no clone capability",
                PV_NAME,
                SRC_NAME,
            )
        },
        Case {
            class: FAKE_SC_2,
            ..case(
                "provision with pvc data source different storage classes",
                PV_NAME,
                SRC_NAME,
            )
        }
        .ok(),
        Case {
            bytes: REQUESTED_BYTES + 1,
            ..case(
                "provision with pvc data source destination too small",
                PV_NAME,
                SRC_NAME,
            )
        }
        .finalizers(),
        Case {
            bytes: REQUESTED_BYTES - 1,
            ..case(
                "provision with pvc data source destination too large",
                PV_NAME,
                SRC_NAME,
            )
        },
        case(
            "provision with pvc data source not found",
            PV_NAME,
            "source-not-found",
        ),
        case(
            "provision with source pvc storageclass nil",
            PV_NAME,
            "pvc-sc-nil",
        ),
        Case {
            class: "",
            ..case(
                "provision with requested pvc storageclass nil",
                PV_NAME,
                SRC_NAME,
            )
        },
        case(
            "provision with pvc data source when source pv not found",
            "invalid-pv",
            "invalid-pv",
        ),
        case(
            "provision with pvc data source when pvc status is claim pending",
            PV_NAME,
            "pending-pvc",
        ),
        case(
            "provision with pvc data source when pvc status is claim lost",
            PV_NAME,
            "lost-pvc",
        ),
        case(
            "provision with pvc data source when clone pv has released status",
            PV_NAME,
            SRC_NAME,
        )
        .phase("Released"),
        case(
            "provision with pvc data source when clone pv has failed status",
            PV_NAME,
            SRC_NAME,
        )
        .phase("Failed"),
        case(
            "provision with pvc data source when clone pv has pending status",
            PV_NAME,
            SRC_NAME,
        )
        .phase("Pending"),
        case(
            "provision with pvc data source when clone pv has available status",
            PV_NAME,
            SRC_NAME,
        )
        .phase("Available"),
        case(
            "provision with PVC using unbound PV",
            "unbound-pv",
            SRC_NAME,
        ),
        case(
            "provision with PVC using PV bound to another PVC (with wrong UID)",
            "pv-bound-to-another-pvc-by-UID",
            SRC_NAME,
        ),
        case(
            "provision with PVC using PV bound to another PVC (with wrong namespace)",
            "pv-bound-to-another-pvc-by-namespace",
            SRC_NAME,
        ),
        case(
            "provision with PVC using PV bound to another PVC (with wrong name)",
            "pv-bound-to-another-pvc-by-name",
            SRC_NAME,
        ),
        case(
            "provision with PVC bound to PV with wrong provisioner",
            "another-class",
            SRC_NAME,
        ),
        case(
            "provision block data source is block",
            "block-pv",
            "block-pv",
        )
        .mode("block")
        .ok(),
        case(
            "provision block but data source is filesystem",
            "filesystem-pv",
            "filesystem-pv",
        )
        .mode("block"),
        case("provision block but data source is nil", PV_NAME, SRC_NAME).mode("block"),
        case("provision nil mode data source is nil", PV_NAME, SRC_NAME).ok(),
        case(
            "provision filesystem data source is filesystem",
            "filesystem-pv",
            "filesystem-pv",
        )
        .mode("filesystem")
        .ok(),
        case(
            "provision filesystem but data source is block",
            "block-pv",
            "block-pv",
        )
        .mode("filesystem"),
        case("provision filesystem data source is nil", PV_NAME, SRC_NAME)
            .mode("filesystem")
            .ok(),
    ];
    assert_eq!(cases.len(), 27);
    for case in cases {
        let name = case.name;
        let claims = claims(case.clone_pv);
        let volumes = volumes(case.source_pv_phase);
        let (class, claim) = request(case.source, case.class, case.bytes, case.mode);
        let source_pvc = claims
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(case.source));
        let source_pv = source_pvc.and_then(|c| {
            let volume = c.spec.as_ref()?.volume_name.clone()?;
            volumes
                .iter()
                .find(|v| v.metadata.name.as_deref() == Some(volume.as_str()))
        });
        let config = ProvisionerConfig {
            driver_name: DRIVER.into(),
            identity: "test-provisioner".into(),
            volume_name_prefix: "test".into(),
            volume_name_uuid_length: 5,
            timeout: Duration::from_secs(5),
            strict_topology: false,
            immediate_topology: true,
            extra_create_metadata: false,
            default_fs_type: "ext4".into(),
            controller_publish_readonly: true,
            volume_attributes_class: true,
            capabilities: DriverCapabilities {
                controller_service: true,
                create_delete_volume: true,
                clone_volume: !case.clone_unsupported,
                ..Default::default()
            },
            node_deployment: None,
        };
        let options = ProvisionOptions {
            claim: &claim,
            storage_class: &class,
            selected_node: "",
            volume_attributes_class: None,
            data_source: DataSourceObjects::Clone {
                pvc: source_pvc,
                pv: source_pv,
            },
            cluster: ClusterTopology::default(),
        };
        let driver = FakeDriver {
            content_source: case.source.into(),
            created: Mutex::new(Vec::new()),
        };
        let result = provision(
            &config,
            &options,
            &driver,
            &NoSecrets,
            &mut TopologyMemo::new(),
        )
        .await;
        let created = driver.created.lock().unwrap();
        assert_eq!(
            !created.is_empty(),
            case.expect_finalizers,
            "{name}: finalizer set (CreateVolume called)"
        );
        match result {
            Err(e) if !case.expect_err => panic!("{name}: got error: {e}"),
            Ok(pv) if case.expect_err => panic!("{name}: expected an error, got {pv:?}"),
            Err(_) => {}
            Ok(pv) => {
                // The request names the source volume.
                assert!(
                    matches!(
                        &created[0].volume_content_source,
                        Some(VolumeContentSource {
                            r#type: Some(Type::Volume(_))
                        })
                    ),
                    "{name}"
                );
                assert_eq!(pv.metadata.name.as_deref(), Some(PV_NAME), "{name}");
                let spec = pv.spec.unwrap();
                assert_eq!(
                    spec.capacity.unwrap().get("storage"),
                    Some(&Quantity(bytes_to_quantity(REQUESTED_BYTES).0)),
                    "{name}"
                );
                if case.name == "provision with pvc data source" {
                    assert_eq!(
                        spec.csi,
                        Some(CSIPersistentVolumeSource {
                            driver: DRIVER.into(),
                            volume_handle: "test-volume-id".into(),
                            fs_type: Some("ext4".into()),
                            volume_attributes: Some(BTreeMap::from([(
                                PROVISIONER_IDENTITY_KEY.to_string(),
                                "test-provisioner".to_string(),
                            )])),
                            ..Default::default()
                        }),
                        "{name}"
                    );
                }
            }
        }
    }
}
