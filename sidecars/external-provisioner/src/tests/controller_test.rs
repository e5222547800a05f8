//! Ports of upstream's `pkg/controller/controller_test.go` (v6.4.0) provisioning tables, with
//! their case names: `TestProvision` (the 33 cases of `provisionTestcases` that do not need
//! node deployment; the 8 that do are in `controller::tests::node_deployment`, through the
//! loop and its node check), `TestFSTypeProvision` (4), `TestProvisionErrorHandling` (16 codes
//! × 4 topology/node combinations), `TestCreateDriverReturnsInvalidCapacityDuringProvision`,
//! `TestProvisionWithTopologyEnabled` (3), `TestProvisionWithTopologyDisabled` and
//! `TestShouldProvision` (the same 33 cases).
//! Upstream's checks of the produced PV are kept (name, annotations, reclaim policy, access
//! modes, volume mode, capacity, mount options, the whole CSI source, VolumeAttributesClass);
//! the library's additions (claimRef, finalizer, provisioned-by, storageClassName) are checked
//! by our own case at the end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use csi_proto::csi::v1::volume_capability::{AccessType, access_mode::Mode};
use csi_proto::csi::v1::{CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest, Volume};
use csi_test_support::Secrets;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    Secret, SecretReference, TypedLocalObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttributesClass};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use tonic::{Code, Status};

use crate::csi::{CsiError, VolumeDriver};
use crate::provision::*;
use crate::topology::{ClusterTopology, TopologyMemo};

const DRIVER: &str = "test-driver";
const REQUESTED_BYTES: i64 = 100;
const FAKE_SC_NAME: &str = "fake-test-sc";
const DEFAULT_SECRET_NS: &str = "default";

/// A driver whose `CreateVolume` gives one answer and records the requests.
#[derive(Debug)]
pub(super) struct FakeDriver {
    answer: Result<CreateVolumeResponse, CsiError>,
    pub(super) created: Mutex<Vec<CreateVolumeRequest>>,
    pub(super) deleted: Mutex<Vec<DeleteVolumeRequest>>,
}

impl FakeDriver {
    pub(super) fn new(answer: Result<CreateVolumeResponse, CsiError>) -> Self {
        FakeDriver {
            answer,
            created: Mutex::new(Vec::new()),
            deleted: Mutex::new(Vec::new()),
        }
    }

    fn with_capacity(capacity: i64) -> Self {
        Self::new(Ok(CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: capacity,
                volume_id: "test-volume-id".into(),
                ..Default::default()
            }),
        }))
    }
}

impl VolumeDriver for FakeDriver {
    fn create_volume(
        &self,
        request: CreateVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<CreateVolumeResponse, CsiError>> {
        self.created.lock().unwrap().push(request);
        let answer = self.answer.clone();
        Box::pin(async move { answer })
    }

    fn delete_volume(
        &self,
        request: DeleteVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>> {
        self.deleted.lock().unwrap().push(request);
        Box::pin(async { Ok(()) })
    }
}

fn secret(name: &str, namespace: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub(super) fn provision_capabilities() -> DriverCapabilities {
    DriverCapabilities {
        controller_service: true,
        create_delete_volume: true,
        ..Default::default()
    }
}

pub(super) fn config(capabilities: DriverCapabilities) -> ProvisionerConfig {
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
        capabilities,
        node_deployment: None,
        migration: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Upstream's `createFakeNamedPVC`.
fn fake_named_pvc(name: &str, annotations: &[(&str, &str)]) -> PersistentVolumeClaim {
    let mut all = map(&[(ANN_BETA_STORAGE_PROVISIONER, DRIVER)]);
    all.extend(map(annotations));
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            uid: Some("testid".into()),
            name: Some(name.into()),
            namespace: Some("fake-ns".into()),
            annotations: Some(all),
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
            storage_class_name: Some(FAKE_SC_NAME.into()),
            ..Default::default()
        }),
        status: None,
    }
}

pub(super) fn fake_pvc() -> PersistentVolumeClaim {
    fake_named_pvc("fake-pvc", &[])
}

/// A claim without name and namespace, as upstream's access-mode cases build it.
fn bare_pvc(access_modes: &[&str]) -> PersistentVolumeClaim {
    let mut claim = fake_pvc();
    claim.metadata.name = None;
    claim.metadata.namespace = None;
    let spec = claim.spec.as_mut().unwrap();
    spec.access_modes = Some(strings(access_modes));
    spec.storage_class_name = None;
    claim
}

fn with_volume_mode(mut claim: PersistentVolumeClaim, mode: &str) -> PersistentVolumeClaim {
    claim.spec.as_mut().unwrap().volume_mode = Some(mode.into());
    claim
}

fn with_vac(mut claim: PersistentVolumeClaim, vac: &str) -> PersistentVolumeClaim {
    claim.spec.as_mut().unwrap().volume_attributes_class_name = Some(vac.into());
    claim
}

pub(super) fn storage_class(params: &[(&str, &str)]) -> StorageClass {
    StorageClass {
        reclaim_policy: Some("Delete".into()),
        parameters: Some(map(params)),
        ..Default::default()
    }
}

fn vac(driver: &str) -> VolumeAttributesClass {
    VolumeAttributesClass {
        metadata: ObjectMeta {
            name: Some("test-vac".into()),
            ..Default::default()
        },
        driver_name: driver.into(),
        parameters: Some(map(&[("test-param", "from-vac")])),
    }
}

/// Upstream's `pvSpec`: what a case checks of the PV.
#[derive(Debug, Clone)]
struct ExpectedPv {
    name: &'static str,
    annotations: Option<BTreeMap<String, String>>,
    reclaim_policy: &'static str,
    access_modes: Option<Vec<String>>,
    volume_mode: Option<String>,
    capacity: &'static str,
    mount_options: Option<Vec<String>>,
    csi: Option<CSIPersistentVolumeSource>,
    vac_name: Option<String>,
}

fn csi_source(fs_type: &str) -> CSIPersistentVolumeSource {
    CSIPersistentVolumeSource {
        driver: DRIVER.into(),
        volume_handle: "test-volume-id".into(),
        fs_type: (!fs_type.is_empty()).then(|| fs_type.to_string()),
        volume_attributes: Some(map(&[(PROVISIONER_IDENTITY_KEY, "test-provisioner")])),
        ..Default::default()
    }
}

fn expected_pv(fs_type: &str) -> ExpectedPv {
    ExpectedPv {
        name: "test-testi",
        annotations: None,
        reclaim_policy: "Delete",
        access_modes: None,
        volume_mode: None,
        capacity: "100",
        mount_options: None,
        csi: Some(csi_source(fs_type)),
        vac_name: None,
    }
}

fn no_secret_annotations() -> Option<BTreeMap<String, String>> {
    Some(map(&[
        (ANN_DELETION_SECRET_NAME, ""),
        (ANN_DELETION_SECRET_NAMESPACE, ""),
    ]))
}

fn secret_ref(name: &str, namespace: &str) -> Option<SecretReference> {
    Some(SecretReference {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
    })
}

type RequestCheck = fn(&CreateVolumeRequest);

/// Upstream's `provisioningTestcase`, for the fields the ported cases use.
struct Case {
    name: &'static str,
    claim: PersistentVolumeClaim,
    class: StorageClass,
    selected_node: &'static str,
    capabilities: DriverCapabilities,
    extra_metadata: bool,
    controller_publish_readonly: bool,
    vac_gate: bool,
    vacs: Vec<VolumeAttributesClass>,
    secrets: Vec<Secret>,
    driver: FakeDriver,
    expect_create: bool,
    check_request: Option<RequestCheck>,
    expected: Result<ExpectedPv, ProvisioningState>,
}

impl Case {
    fn new(name: &'static str, class: StorageClass, claim: PersistentVolumeClaim) -> Self {
        Case {
            name,
            claim,
            class,
            selected_node: "",
            capabilities: provision_capabilities(),
            extra_metadata: false,
            controller_publish_readonly: false,
            vac_gate: true,
            vacs: Vec::new(),
            secrets: Vec::new(),
            driver: FakeDriver::with_capacity(REQUESTED_BYTES),
            expect_create: true,
            check_request: None,
            expected: Err(ProvisioningState::Finished),
        }
    }
    fn pv(mut self, expected: ExpectedPv) -> Self {
        self.expected = Ok(expected);
        self
    }
    fn fails(mut self, state: ProvisioningState) -> Self {
        self.expected = Err(state);
        self
    }
    fn fails_before_create(mut self, state: ProvisioningState) -> Self {
        self.expect_create = false;
        self.fails(state)
    }
    fn check(mut self, check: RequestCheck) -> Self {
        self.check_request = Some(check);
        self
    }
    fn capabilities(mut self, capabilities: DriverCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Upstream's `getSecretRefErr`: `csiProvisionerSecretName` set to "".
    fn secret_ref_err(mut self) -> Self {
        self.class
            .parameters
            .get_or_insert_with(Default::default)
            .insert("csiProvisionerSecretName".into(), String::new());
        self
    }

    /// Upstream's `getCredentialsErr`: a provisioner secret that does not exist.
    fn credentials_err(mut self) -> Self {
        let params = self.class.parameters.get_or_insert_with(Default::default);
        params.insert("csiProvisionerSecretName".into(), "secretx".into());
        params.insert("csiProvisionerSecretNamespace".into(), "default".into());
        self
    }

    async fn run(self) {
        let name = self.name;
        let mut config = config(self.capabilities);
        config.extra_create_metadata = self.extra_metadata;
        config.controller_publish_readonly = self.controller_publish_readonly;
        config.volume_attributes_class = self.vac_gate;
        let vac_name = self
            .claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_attributes_class_name.clone());
        let vac = self.vacs.iter().find(|v| v.metadata.name == vac_name);
        let options = ProvisionOptions {
            claim: &self.claim,
            storage_class: &self.class,
            selected_node: self.selected_node,
            volume_attributes_class: vac,
            data_source: DataSourceObjects::None,
            cluster: ClusterTopology::default(),
        };
        let result = provision(
            &config,
            &options,
            &self.driver,
            &Secrets(self.secrets),
            &mut TopologyMemo::new(),
        )
        .await;
        let created = self.driver.created.lock().unwrap().clone();
        assert_eq!(
            created.len(),
            usize::from(self.expect_create),
            "{name}: CreateVolume calls"
        );
        if let (Some(check), Some(request)) = (self.check_request, created.first()) {
            check(request);
        }
        match (self.expected, result) {
            (Ok(expected), Ok(pv)) => check_pv(name, &expected, &pv),
            (Err(state), Err(error)) => {
                assert_eq!(error.state(), state, "{name}: state ({error})")
            }
            (Ok(_), Err(error)) => panic!("{name}: got error: {error}"),
            (Err(_), Ok(pv)) => panic!("{name}: expected error, got {pv:?}"),
        }
    }
}

fn check_pv(name: &str, expected: &ExpectedPv, pv: &PersistentVolume) {
    let spec = pv.spec.as_ref().unwrap();
    assert_eq!(
        pv.metadata.name.as_deref(),
        Some(expected.name),
        "{name}: PV name"
    );
    if let Some(annotations) = &expected.annotations {
        // Upstream's Provision returns these; the library adds provisioned-by.
        let mut annotations = annotations.clone();
        annotations.insert(ANN_PROVISIONED_BY.into(), String::new());
        assert_eq!(
            pv.metadata.annotations.as_ref(),
            Some(&annotations),
            "{name}: annotations"
        );
    }
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some(expected.reclaim_policy),
        "{name}: reclaim policy"
    );
    assert_eq!(
        spec.access_modes, expected.access_modes,
        "{name}: access modes"
    );
    assert_eq!(
        spec.volume_mode, expected.volume_mode,
        "{name}: volume mode"
    );
    assert_eq!(
        spec.capacity.as_ref().and_then(|c| c.get("storage")),
        Some(&Quantity(expected.capacity.into())),
        "{name}: capacity"
    );
    assert_eq!(
        spec.mount_options, expected.mount_options,
        "{name}: mount options"
    );
    if let Some(csi) = &expected.csi {
        assert_eq!(spec.csi.as_ref(), Some(csi), "{name}: CSI source");
    }
    assert_eq!(
        spec.volume_attributes_class_name, expected.vac_name,
        "{name}: VolumeAttributesClass"
    );
}

fn only_mode(request: &CreateVolumeRequest, mode: Mode) {
    assert_eq!(request.volume_capabilities.len(), 1);
    assert_eq!(
        request.volume_capabilities[0].access_mode.map(|m| m.mode),
        Some(mode as i32)
    );
}

fn test_provision_cases() -> Vec<Case> {
    let default_secret_params = [
        ("csiControllerPublishSecretName", "ctrlpublishsecret"),
        ("csiControllerPublishSecretNamespace", DEFAULT_SECRET_NS),
        ("csiNodeStageSecretName", "nodestagesecret"),
        ("csiNodeStageSecretNamespace", DEFAULT_SECRET_NS),
        ("csiNodePublishSecretName", "nodepublishsecret"),
        ("csiNodePublishSecretNamespace", DEFAULT_SECRET_NS),
        (
            "csi.storage.k8s.io/controller-expand-secret-name",
            "controllerexpandsecret",
        ),
        (
            "csi.storage.k8s.io/controller-expand-secret-namespace",
            DEFAULT_SECRET_NS,
        ),
        (
            "csi.storage.k8s.io/provisioner-secret-name",
            "provisionersecret",
        ),
        (
            "csi.storage.k8s.io/provisioner-secret-namespace",
            DEFAULT_SECRET_NS,
        ),
        (
            "csi.storage.k8s.io/node-expand-secret-name",
            "nodeexpandsecret",
        ),
        (
            "csi.storage.k8s.io/node-expand-secret-namespace",
            DEFAULT_SECRET_NS,
        ),
        (
            "csi.storage.k8s.io/controller-modify-secret-name",
            "ctrlmodifysecret",
        ),
        (
            "csi.storage.k8s.io/controller-modify-secret-namespace",
            DEFAULT_SECRET_NS,
        ),
    ];
    let default_secrets: Vec<Secret> = [
        "ctrlpublishsecret",
        "nodestagesecret",
        "nodepublishsecret",
        "controllerexpandsecret",
        "provisionersecret",
        "nodeexpandsecret",
    ]
    .iter()
    .map(|n| secret(n, DEFAULT_SECRET_NS))
    .collect();
    let all_secrets = |name: &str, namespace: &str| CSIPersistentVolumeSource {
        controller_publish_secret_ref: secret_ref(name, namespace),
        node_stage_secret_ref: secret_ref(name, namespace),
        node_publish_secret_ref: secret_ref(name, namespace),
        controller_expand_secret_ref: secret_ref(name, namespace),
        node_expand_secret_ref: secret_ref(name, namespace),
        ..csi_source("ext4")
    };
    let secret_annotations = |deletion: (&str, &str), modify: (&str, &str)| {
        Some(map(&[
            (ANN_MODIFY_SECRET_NAME, modify.0),
            (ANN_MODIFY_SECRET_NAMESPACE, modify.1),
            (ANN_DELETION_SECRET_NAME, deletion.0),
            (ANN_DELETION_SECRET_NAMESPACE, deletion.1),
        ]))
    };
    let single_node_multi_writer = DriverCapabilities {
        single_node_multi_writer: true,
        ..provision_capabilities()
    };
    let vac_capabilities = DriverCapabilities {
        modify_volume: true,
        ..provision_capabilities()
    };
    let empty_sc = || storage_class(&[]);
    let with_modes = |modes: &[&str]| ExpectedPv {
        access_modes: Some(strings(modes)),
        ..expected_pv("ext4")
    };

    vec![
        Case::new("normal provision", storage_class(&[("fstype", "ext3")]), fake_pvc()).pv(
            ExpectedPv {
                annotations: no_secret_annotations(),
                ..expected_pv("ext3")
            },
        ),
        Case {
            extra_metadata: true,
            ..Case::new(
                "normal provision with extra metadata",
                storage_class(&[("fstype", "ext3")]),
                fake_pvc(),
            )
        }
        .pv(expected_pv("ext3"))
        .check(|request| {
            let expected = map(&[
                ("csi.storage.k8s.io/pvc/name", "fake-pvc"),
                ("csi.storage.k8s.io/pvc/namespace", "fake-ns"),
                ("csi.storage.k8s.io/pv/name", "test-testi"),
                ("fstype", "ext3"),
            ]);
            assert_eq!(
                request.parameters.clone().into_iter().collect::<BTreeMap<_, _>>(),
                expected
            );
        }),
        Case::new(
            "multiple fsType provision",
            storage_class(&[("fstype", "ext3"), ("csi.storage.k8s.io/fstype", "ext4")]),
            fake_pvc(),
        )
        .fails_before_create(ProvisioningState::Finished),
        Case::new(
            "provision with prefixed FS Type key",
            storage_class(&[("csi.storage.k8s.io/fstype", "ext3")]),
            fake_pvc(),
        )
        .pv(expected_pv("ext3"))
        .check(|request| assert!(request.parameters.is_empty(), "parameters not stripped")),
        Case::new(
            "provision with access mode multi node multi writer",
            empty_sc(),
            bare_pvc(&["ReadWriteMany"]),
        )
        .pv(with_modes(&["ReadWriteMany"]))
        .check(|r| only_mode(r, Mode::MultiNodeMultiWriter)),
        Case {
            controller_publish_readonly: false,
            ..Case::new(
                "provision with access mode multi node multi readonly with sidecar arg false",
                empty_sc(),
                bare_pvc(&["ReadOnlyMany"]),
            )
        }
        .pv(with_modes(&["ReadOnlyMany"]))
        .check(|r| only_mode(r, Mode::MultiNodeReaderOnly)),
        Case {
            controller_publish_readonly: true,
            ..Case::new(
                "provision with access mode multi node multi readonly with sidecar arg true",
                empty_sc(),
                bare_pvc(&["ReadOnlyMany"]),
            )
        }
        .pv(ExpectedPv {
            csi: Some(CSIPersistentVolumeSource {
                read_only: Some(true),
                ..csi_source("ext4")
            }),
            ..with_modes(&["ReadOnlyMany"])
        })
        .check(|r| only_mode(r, Mode::MultiNodeReaderOnly)),
        Case::new(
            "provision with access mode single node writer",
            empty_sc(),
            bare_pvc(&["ReadWriteOnce"]),
        )
        .pv(with_modes(&["ReadWriteOnce"]))
        .check(|r| only_mode(r, Mode::SingleNodeWriter)),
        Case::new(
            "provision with access mode single node writer and single node multi writer capability",
            empty_sc(),
            bare_pvc(&["ReadWriteOnce"]),
        )
        .capabilities(single_node_multi_writer)
        .pv(with_modes(&["ReadWriteOnce"]))
        .check(|r| only_mode(r, Mode::SingleNodeMultiWriter)),
        Case::new(
            "provision with access mode single node single writer and single node multi writer capability",
            empty_sc(),
            bare_pvc(&["ReadWriteOncePod"]),
        )
        .capabilities(single_node_multi_writer)
        .pv(with_modes(&["ReadWriteOncePod"]))
        .check(|r| only_mode(r, Mode::SingleNodeSingleWriter)),
        Case::new(
            "provision with multiple access modes",
            empty_sc(),
            bare_pvc(&["ReadOnlyMany", "ReadWriteOnce"]),
        )
        .pv(with_modes(&["ReadOnlyMany", "ReadWriteOnce"]))
        .check(|r| {
            let modes: Vec<i32> = r
                .volume_capabilities
                .iter()
                .map(|c| c.access_mode.unwrap().mode)
                .collect();
            assert_eq!(
                modes,
                [Mode::MultiNodeReaderOnly as i32, Mode::SingleNodeWriter as i32]
            );
        }),
        Case {
            secrets: default_secrets.clone(),
            ..Case::new(
                "provision with secrets",
                storage_class(&default_secret_params),
                fake_pvc(),
            )
        }
        .pv(ExpectedPv {
            annotations: secret_annotations(
                ("provisionersecret", DEFAULT_SECRET_NS),
                ("ctrlmodifysecret", DEFAULT_SECRET_NS),
            ),
            csi: Some(CSIPersistentVolumeSource {
                controller_publish_secret_ref: secret_ref("ctrlpublishsecret", "default"),
                node_stage_secret_ref: secret_ref("nodestagesecret", "default"),
                node_publish_secret_ref: secret_ref("nodepublishsecret", "default"),
                controller_expand_secret_ref: secret_ref("controllerexpandsecret", "default"),
                node_expand_secret_ref: secret_ref("nodeexpandsecret", "default"),
                ..csi_source("ext4")
            }),
            ..expected_pv("ext4")
        }),
        Case {
            secrets: vec![secret("default-secret", "default-ns")],
            ..Case::new(
                "provision with default secrets",
                storage_class(&[
                    ("csi.storage.k8s.io/secret-name", "default-secret"),
                    ("csi.storage.k8s.io/secret-namespace", "default-ns"),
                ]),
                fake_pvc(),
            )
        }
        .pv(ExpectedPv {
            annotations: secret_annotations(
                ("default-secret", "default-ns"),
                ("default-secret", "default-ns"),
            ),
            csi: Some(all_secrets("default-secret", "default-ns")),
            ..expected_pv("ext4")
        }),
        Case {
            secrets: vec![secret("my-pvc", "default-ns")],
            ..Case::new(
                "provision with default secrets with template",
                storage_class(&[
                    ("csi.storage.k8s.io/secret-name", "${pvc.name}"),
                    ("csi.storage.k8s.io/secret-namespace", "default-ns"),
                ]),
                fake_named_pvc("my-pvc", &[]),
            )
        }
        .pv(ExpectedPv {
            annotations: secret_annotations(("my-pvc", "default-ns"), ("my-pvc", "default-ns")),
            csi: Some(all_secrets("my-pvc", "default-ns")),
            ..expected_pv("ext4")
        }),
        Case::new(
            "provision with volume mode(Filesystem)",
            empty_sc(),
            with_volume_mode(fake_pvc(), "Filesystem"),
        )
        .pv(ExpectedPv {
            volume_mode: Some("Filesystem".into()),
            ..expected_pv("ext4")
        }),
        Case::new(
            "provision with volume mode(Block)",
            empty_sc(),
            with_volume_mode(fake_pvc(), "Block"),
        )
        .pv(ExpectedPv {
            volume_mode: Some("Block".into()),
            csi: Some(csi_source("")),
            ..expected_pv("ext4")
        })
        .check(|r| {
            assert!(
                r.volume_capabilities
                    .iter()
                    .all(|c| matches!(c.access_type, Some(AccessType::Block(_))))
            )
        }),
        Case::new("fail to get secret reference", empty_sc(), fake_pvc())
            .secret_ref_err()
            .fails_before_create(ProvisioningState::NoChange),
        Case::new("fail not nil selector", empty_sc(), {
            let mut claim = fake_pvc();
            claim.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
            claim
        })
        .fails_before_create(ProvisioningState::Finished),
        Case::new("fail to make volume name", empty_sc(), {
            let mut claim = fake_pvc();
            claim.metadata.uid = Some(String::new());
            claim
        })
        .fails_before_create(ProvisioningState::Finished),
        Case::new("fail to get credentials", empty_sc(), fake_pvc())
            .credentials_err()
            .fails_before_create(ProvisioningState::NoChange),
        Case {
            secrets: vec![secret("default-secret-from-annotation", "default-ns")],
            ..Case::new(
                "fail to get secret reference for invalid default secret parameter template",
                storage_class(&[
                    (
                        "csi.storage.k8s.io/secret-name",
                        "default-${pvc.annotations['team.example.com/key']}",
                    ),
                    ("csi.storage.k8s.io/secret-namespace", "default-ns"),
                ]),
                fake_named_pvc("fake-pvc", &[("team.example.com/key", "secret-from-annotation")]),
            )
        }
        .secret_ref_err()
        .fails_before_create(ProvisioningState::NoChange),
        Case {
            driver: FakeDriver::with_capacity(80),
            ..Case::new("fail vol with less capacity", empty_sc(), fake_pvc())
        }
        .fails(ProvisioningState::InBackground),
        Case::new(
            "provision with mount options",
            StorageClass {
                mount_options: Some(strings(&["foo=bar", "baz=qux"])),
                ..empty_sc()
            },
            bare_pvc(&["ReadWriteOnce"]),
        )
        .pv(ExpectedPv {
            mount_options: Some(strings(&["foo=bar", "baz=qux"])),
            ..with_modes(&["ReadWriteOnce"])
        })
        .check(|r| {
            only_mode(r, Mode::SingleNodeWriter);
            match &r.volume_capabilities[0].access_type {
                Some(AccessType::Mount(mount)) => {
                    assert_eq!(mount.mount_flags, ["foo=bar", "baz=qux"])
                }
                other => panic!("expected access type mount, got {other:?}"),
            }
        }),
        Case {
            driver: FakeDriver::new(Err(CsiError::Status(Status::new(
                Code::Unauthenticated,
                "Mock final error",
            )))),
            ..Case::new(
                "provision with final error",
                empty_sc(),
                bare_pvc(&["ReadWriteOnce"]),
            )
        }
        .fails(ProvisioningState::Finished),
        Case {
            driver: FakeDriver::new(Err(CsiError::Status(Status::new(
                Code::DeadlineExceeded,
                "Mock timeout",
            )))),
            ..Case::new(
                "provision with transient error",
                empty_sc(),
                bare_pvc(&["ReadWriteOnce"]),
            )
        }
        .fails(ProvisioningState::InBackground),
        Case {
            driver: FakeDriver::with_capacity(0),
            ..Case::new("provision with size 0", storage_class(&[("fstype", "ext3")]), fake_pvc())
        }
        .pv(expected_pv("ext3")),
        Case::new(
            "provision with any volume data source",
            StorageClass {
                provisioner: DRIVER.into(),
                ..empty_sc()
            },
            {
                let mut claim = bare_pvc(&["ReadWriteOnce"]);
                claim.spec.as_mut().unwrap().data_source = Some(TypedLocalObjectReference {
                    name: "testPopulator".into(),
                    kind: "MyPopulator".into(),
                    api_group: Some("my.example.io".into()),
                });
                claim
            },
        )
        .fails_before_create(ProvisioningState::Finished),
        Case {
            vacs: vec![vac(DRIVER)],
            ..Case::new(
                "normal provision with VolumeAttributesClass",
                storage_class(&[("fstype", "ext3"), ("test-param", "from-sc")]),
                with_vac(fake_pvc(), "test-vac"),
            )
        }
        .capabilities(vac_capabilities)
        .pv(ExpectedPv {
            annotations: no_secret_annotations(),
            vac_name: Some("test-vac".into()),
            ..expected_pv("ext3")
        })
        .check(|r| {
            assert_eq!(
                r.mutable_parameters.clone().into_iter().collect::<BTreeMap<_, _>>(),
                map(&[("test-param", "from-vac")])
            )
        }),
        Case {
            vacs: vec![vac(DRIVER)],
            vac_gate: false,
            ..Case::new(
                "normal provision with VolumeAttributesClass but feature gate is disabled",
                storage_class(&[("fstype", "ext3"), ("test-param", "from-sc")]),
                with_vac(fake_pvc(), "test-vac"),
            )
        }
        .capabilities(vac_capabilities)
        .pv(ExpectedPv {
            annotations: no_secret_annotations(),
            ..expected_pv("ext3")
        })
        .check(|r| assert!(r.mutable_parameters.is_empty())),
        Case::new(
            "fail with VolumeAttributesClass but driver does not support MODIFY_VOLUME",
            storage_class(&[("fstype", "ext3")]),
            with_vac(fake_pvc(), "test-vac"),
        )
        .fails_before_create(ProvisioningState::Finished),
        Case {
            vacs: vec![vac(DRIVER)],
            ..Case::new(
                "fail with VolumeAttributesClass but VAC does not exist",
                storage_class(&[("fstype", "ext3")]),
                with_vac(fake_pvc(), "does-not-exist"),
            )
        }
        .capabilities(vac_capabilities)
        .fails_before_create(ProvisioningState::NoChange),
        Case {
            vacs: vec![vac(&format!("not-{DRIVER}"))],
            ..Case::new(
                "fail with VolumeAttributesClass but driver name does not match",
                storage_class(&[("fstype", "ext3")]),
                with_vac(fake_pvc(), "test-vac"),
            )
        }
        .capabilities(vac_capabilities)
        .fails_before_create(ProvisioningState::Finished),
        Case {
            selected_node: "bar",
            ..Case::new(
                "fail with selected node but node doesn't exist",
                StorageClass {
                    metadata: ObjectMeta {
                        name: Some(FAKE_SC_NAME.into()),
                        ..Default::default()
                    },
                    ..storage_class(&[("fstype", "ext3")])
                },
                fake_named_pvc("fake-pvc", &[(ANN_SELECTED_NODE, "bar")]),
            )
        }
        .capabilities(DriverCapabilities {
            topology: true,
            ..provision_capabilities()
        })
        .fails_before_create(ProvisioningState::Reschedule),
    ]
}

#[tokio::test]
async fn test_provision() {
    let cases = test_provision_cases();
    assert_eq!(cases.len(), 33);
    for case in cases {
        case.run().await;
    }
}

/// Every one of these cases is for this driver (the node-deployment cases, where upstream
/// expects a `false` for 6 of 8, are in `controller::tests::node_deployment`).
#[test]
fn test_should_provision() {
    let cases = test_provision_cases();
    assert_eq!(cases.len(), 33);
    for case in cases {
        let config = config(case.capabilities);
        assert!(should_provision(&config, &case.claim), "{}", case.name);
    }
    let mut other = fake_pvc();
    other.metadata.annotations = Some(map(&[(ANN_STORAGE_PROVISIONER, "other-driver")]));
    assert!(!should_provision(&config(provision_capabilities()), &other));
    other
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(ANN_MIGRATED_TO.into(), DRIVER.into());
    assert!(should_provision(&config(provision_capabilities()), &other));
}

#[tokio::test]
async fn test_fs_type_provision() {
    let cases = [
        (
            "fstype not set/'nil' in SC to provision",
            None,
            "ext4",
            "ext4",
        ),
        (
            "Other fstype(ex:'xfs') set in SC",
            Some("xfs"),
            "ext4",
            "xfs",
        ),
        (
            "fstype not set/Nil in SC and defaultFSType arg unset for provisioner",
            None,
            "",
            "",
        ),
        (
            "fstype set in SC and defaultFSType arg unset for provisioner",
            Some("xfs"),
            "",
            "xfs",
        ),
    ];
    for (name, fs_type, default_fs_type, expected) in cases {
        let params: Vec<(&str, &str)> = fs_type.map(|f| ("fstype", f)).into_iter().collect();
        let class = storage_class(&params);
        let claim = fake_pvc();
        let mut config = config(provision_capabilities());
        config.default_fs_type = default_fs_type.into();
        let options = ProvisionOptions {
            claim: &claim,
            storage_class: &class,
            selected_node: "",
            volume_attributes_class: None,
            data_source: DataSourceObjects::None,
            cluster: ClusterTopology::default(),
        };
        let driver = FakeDriver::with_capacity(REQUESTED_BYTES);
        let pv = provision(
            &config,
            &options,
            &driver,
            &Secrets::default(),
            &mut TopologyMemo::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_pv(name, &expected_pv(expected), &pv);
    }
}

#[tokio::test]
async fn test_provision_error_handling() {
    let codes = [
        (Code::Cancelled, ProvisioningState::InBackground),
        (Code::DeadlineExceeded, ProvisioningState::InBackground),
        (Code::Unavailable, ProvisioningState::InBackground),
        (Code::Aborted, ProvisioningState::InBackground),
        (Code::ResourceExhausted, ProvisioningState::Finished),
        (Code::Unknown, ProvisioningState::Finished),
        (Code::InvalidArgument, ProvisioningState::Finished),
        (Code::NotFound, ProvisioningState::Finished),
        (Code::AlreadyExists, ProvisioningState::Finished),
        (Code::PermissionDenied, ProvisioningState::Finished),
        (Code::FailedPrecondition, ProvisioningState::Finished),
        (Code::OutOfRange, ProvisioningState::Finished),
        (Code::Unimplemented, ProvisioningState::Finished),
        (Code::Internal, ProvisioningState::Finished),
        (Code::DataLoss, ProvisioningState::Finished),
        (Code::Unauthenticated, ProvisioningState::Finished),
    ];
    let nodes = super_nodes();
    for (topology, node_selected) in [(false, false), (false, true), (true, false), (true, true)] {
        for (code, expected) in codes {
            let name = format!("topology={topology} node={node_selected}/{code:?}");
            let capabilities = DriverCapabilities {
                topology,
                ..provision_capabilities()
            };
            let class = StorageClass::default();
            let claim = fake_pvc();
            let selected = if node_selected { "node-0" } else { "" };
            let options = ProvisionOptions {
                claim: &claim,
                storage_class: &class,
                selected_node: selected,
                volume_attributes_class: None,
                data_source: DataSourceObjects::None,
                cluster: ClusterTopology {
                    csi_nodes: &nodes.1,
                    nodes: &nodes.0,
                },
            };
            let driver = FakeDriver::new(Err(CsiError::Status(Status::new(code, "fake error"))));
            let err = provision(
                &config(capabilities),
                &options,
                &driver,
                &Secrets::default(),
                &mut TopologyMemo::new(),
            )
            .await
            .expect_err(&name);
            let ProvisionError::CreateVolume { error, .. } = &err else {
                panic!("{name}: expected a CreateVolume error, got {err}");
            };
            assert_eq!(error.code(), Some(code), "{name}");
            let expected = if topology && node_selected && code == Code::ResourceExhausted {
                ProvisioningState::Reschedule
            } else {
                expected
            };
            assert_eq!(err.state(), expected, "{name}");

            // What the library does next.
            let outcome = err.outcome(node_selected);
            let want = match (code, expected) {
                (Code::InvalidArgument, _) => FailureOutcome::SlowRetry,
                (_, ProvisioningState::Reschedule) => FailureOutcome::Reschedule,
                (_, state) => FailureOutcome::Retry(state),
            };
            assert_eq!(outcome, want, "{name}: outcome");
        }
    }
}

/// The nodes of `TestProvisionErrorHandling`: two in zone1, racks 1 and 2.
fn super_nodes() -> (
    Vec<k8s_openapi::api::core::v1::Node>,
    Vec<k8s_openapi::api::storage::v1::CSINode>,
) {
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
    let keys = strings(&["com.example.csi/zone", "com.example.csi/rack"]);
    (0..2)
        .map(|i| {
            let name = format!("node-{i}");
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(map(&[
                        ("com.example.csi/zone", "zone1"),
                        (
                            "com.example.csi/rack",
                            if i == 0 { "rack1" } else { "rack2" },
                        ),
                    ])),
                    ..Default::default()
                },
                ..Default::default()
            };
            let csi_node = CSINode {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                spec: CSINodeSpec {
                    drivers: vec![CSINodeDriver {
                        name: DRIVER.into(),
                        node_id: name,
                        topology_keys: Some(keys.clone()),
                        ..Default::default()
                    }],
                },
            };
            (node, csi_node)
        })
        .unzip()
}

#[tokio::test]
async fn test_create_driver_returns_invalid_capacity_during_provision() {
    let class = StorageClass {
        reclaim_policy: Some("Delete".into()),
        parameters: Some(BTreeMap::new()),
        ..Default::default()
    };
    let claim = fake_pvc();
    let options = ProvisionOptions {
        claim: &claim,
        storage_class: &class,
        selected_node: "",
        volume_attributes_class: None,
        data_source: DataSourceObjects::None,
        cluster: ClusterTopology::default(),
    };
    let driver = FakeDriver::with_capacity(REQUESTED_BYTES - 1);
    let err = provision(
        &config(provision_capabilities()),
        &options,
        &driver,
        &Secrets::default(),
        &mut TopologyMemo::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.state(), ProvisioningState::InBackground);
    assert_eq!(
        err.to_string(),
        "created volume capacity 99 less than requested capacity 100"
    );
    // The volume is deleted again.
    let deleted = driver.deleted.lock().unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].volume_id, "test-volume-id");
}

/// What the library adds to the PV before saving it, and the volume's topology as node
/// affinity.
#[tokio::test]
async fn library_completes_the_pv() {
    let mut claim = fake_pvc();
    claim.metadata.resource_version = Some("7".into());
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(FAKE_SC_NAME.into()),
            ..Default::default()
        },
        provisioner: DRIVER.into(),
        reclaim_policy: Some("Retain".into()),
        ..Default::default()
    };
    let nodes = super_nodes();
    let options = ProvisionOptions {
        claim: &claim,
        storage_class: &class,
        selected_node: "",
        volume_attributes_class: None,
        data_source: DataSourceObjects::None,
        cluster: ClusterTopology {
            csi_nodes: &nodes.1,
            nodes: &nodes.0,
        },
    };
    let driver = FakeDriver::new(Ok(CreateVolumeResponse {
        volume: Some(Volume {
            capacity_bytes: 1 << 30,
            volume_id: "vol-1".into(),
            volume_context: [("a".to_string(), "b".to_string())].into(),
            accessible_topology: vec![csi_proto::csi::v1::Topology {
                segments: [("com.example.csi/zone".to_string(), "zone1".to_string())].into(),
            }],
            ..Default::default()
        }),
    }));
    let pv = provision(
        &config(DriverCapabilities {
            topology: true,
            ..provision_capabilities()
        }),
        &options,
        &driver,
        &Secrets::default(),
        &mut TopologyMemo::new(),
    )
    .await
    .unwrap();
    // Immediate binding with --immediate-topology: requisite from the two nodes.
    let request = &driver.created.lock().unwrap()[0];
    assert_eq!(
        request
            .accessibility_requirements
            .as_ref()
            .unwrap()
            .requisite
            .len(),
        2
    );

    let value = serde_json_value(&pv);
    let expected = r#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"annotations":{"pv.kubernetes.io/provisioned-by":"test-driver","volume.kubernetes.io/provisioner-deletion-secret-name":"","volume.kubernetes.io/provisioner-deletion-secret-namespace":""},"finalizers":["external-provisioner.volume.kubernetes.io/finalizer"],"name":"test-testi"},"spec":{"capacity":{"storage":"1Gi"},"claimRef":{"apiVersion":"v1","kind":"PersistentVolumeClaim","name":"fake-pvc","namespace":"fake-ns","resourceVersion":"7","uid":"testid"},"csi":{"driver":"test-driver","fsType":"ext4","volumeAttributes":{"a":"b","storage.kubernetes.io/csiProvisionerIdentity":"test-provisioner"},"volumeHandle":"vol-1"},"nodeAffinity":{"required":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"com.example.csi/zone","operator":"In","values":["zone1"]}]}]}},"persistentVolumeReclaimPolicy":"Retain","storageClassName":"fake-test-sc"}}"#;
    assert_eq!(value, expected);
}

fn serde_json_value(pv: &PersistentVolume) -> String {
    k8s_openapi::serde_json::to_string(pv).unwrap()
}

fn topology_response() -> FakeDriver {
    FakeDriver::new(Ok(CreateVolumeResponse {
        volume: Some(Volume {
            capacity_bytes: REQUESTED_BYTES,
            volume_id: "test-volume-id".into(),
            accessible_topology: vec![csi_proto::csi::v1::Topology {
                segments: [
                    ("com.example.csi/zone".to_string(), "zone1".to_string()),
                    ("com.example.csi/rack".to_string(), "rack2".to_string()),
                ]
                .into(),
            }],
            ..Default::default()
        }),
    }))
}

#[tokio::test]
async fn test_provision_with_topology_enabled() {
    let (nodes, csi_nodes) = super_nodes();
    // name, driver supports topology, Nodes present, expected affinity (key, value) or error
    type Affinity = Option<&'static [(&'static str, &'static str)]>;
    let cases: [(&str, bool, bool, Affinity); 3] = [
        (
            "topology success",
            true,
            true,
            Some(&[
                ("com.example.csi/rack", "rack2"),
                ("com.example.csi/zone", "zone1"),
            ]),
        ),
        ("topology fail", true, false, None),
        ("driver doesn't support topology", false, false, Some(&[])),
    ];
    for (name, topology, with_nodes, expected) in cases {
        let class = StorageClass::default();
        let claim = fake_pvc();
        let no_nodes = Vec::new();
        let options = ProvisionOptions {
            claim: &claim,
            storage_class: &class,
            selected_node: "",
            volume_attributes_class: None,
            data_source: DataSourceObjects::None,
            cluster: ClusterTopology {
                csi_nodes: if topology { &csi_nodes } else { &[] },
                nodes: if with_nodes { &nodes } else { &no_nodes },
            },
        };
        let capabilities = DriverCapabilities {
            topology,
            ..provision_capabilities()
        };
        let driver = topology_response();
        let result = provision(
            &config(capabilities),
            &options,
            &driver,
            &Secrets::default(),
            &mut TopologyMemo::new(),
        )
        .await;
        match expected {
            None => {
                assert!(result.is_err(), "{name}: expected an error");
                assert!(driver.created.lock().unwrap().is_empty(), "{name}");
            }
            Some(expected) => {
                let pv = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let affinity = pv.spec.unwrap().node_affinity;
                if expected.is_empty() {
                    assert_eq!(affinity, None, "{name}");
                    continue;
                }
                let terms = affinity.unwrap().required.unwrap().node_selector_terms;
                assert_eq!(terms.len(), 1, "{name}");
                let got: Vec<(String, String, Vec<String>)> = terms[0]
                    .match_expressions
                    .iter()
                    .flatten()
                    .map(|e| {
                        (
                            e.key.clone(),
                            e.operator.clone(),
                            e.values.clone().unwrap_or_default(),
                        )
                    })
                    .collect();
                let want: Vec<(String, String, Vec<String>)> = expected
                    .iter()
                    .map(|(k, v)| (k.to_string(), "In".to_string(), vec![v.to_string()]))
                    .collect();
                assert_eq!(got, want, "{name}");
            }
        }
    }
}

/// With the Topology gate off (or without the capability) neither a selected node nor the
/// volume's topology matters: no node affinity.
#[tokio::test]
async fn test_provision_with_topology_disabled() {
    let class = StorageClass::default();
    let claim = fake_pvc();
    let options = ProvisionOptions {
        claim: &claim,
        storage_class: &class,
        selected_node: "some-node",
        volume_attributes_class: None,
        data_source: DataSourceObjects::None,
        cluster: ClusterTopology::default(),
    };
    let driver = topology_response();
    let pv = provision(
        &config(provision_capabilities()),
        &options,
        &driver,
        &Secrets::default(),
        &mut TopologyMemo::new(),
    )
    .await
    .unwrap();
    assert_eq!(pv.spec.unwrap().node_affinity, None);
}

/// An error without a gRPC status (the call may never have reached the driver, or may still
/// run) keeps the claim in the background, as upstream's `checkError` does.
#[test]
fn errors_without_status_are_in_background() {
    let error = CsiError::Other("connection lost".into());
    assert_eq!(
        state_of_create_error(&error, true),
        ProvisioningState::InBackground
    );
    let err = ProvisionError::CreateVolume {
        error,
        state: ProvisioningState::InBackground,
    };
    assert!(!err.is_infeasible());
    assert_eq!(
        err.outcome(true),
        FailureOutcome::Retry(ProvisioningState::InBackground)
    );
}
