//! Port of upstream's `TestProvisionFromPVC` (`pkg/controller/controller_test.go`, v6.4.0),
//! all 49 cases with their names: the 27 without `CrossNamespaceVolumeDataSource` and the 22
//! that name it.
//!
//! The 27 run twice: with the source PVC and PV handed in ([`DataSourceObjects::Clone`]), where
//! "finalizer set" (upstream's `expectFinalizers`) is "the source was accepted and
//! `CreateVolume` called", and, with the 22, through [`DataSourceObjects::Api`] (the
//! ReferenceGrants, the PVC cache, the PV GET and the finalizer patch, as the controller loop
//! provisions), where "finalizer set" is the clone-protection finalizer patched onto the source
//! PVC.
//!
//! Upstream declares the ReferenceGrant of most failing cross-namespace cases but, without
//! `withreferenceGrants`, never creates it, so those cases fail for want of any grant. Here the
//! grant of every case that declares one is created, so each fails for what is wrong in its
//! grant (or its claim); the case without a grant is "… without refgrant …".
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_controller::{ApiError, SecretGetter};
use csi_crd_types::gateway::v1beta1::{ReferenceGrantFrom, ReferenceGrantTo};
use csi_crd_types::{ReferenceGrant, VolumeSnapshot, VolumeSnapshotContent};
use csi_proto::csi::v1::volume_content_source::{Type, VolumeSource};
use csi_proto::csi::v1::{
    CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest, Volume, VolumeContentSource,
};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    PersistentVolumeStatus, Secret, TypedLocalObjectReference, TypedObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::csi::{CsiError, VolumeDriver};
use crate::data_source::{
    CLONE_FINALIZER, DataSourceClient, DataSourceConfig, DataSourceListers, DataSources, PVC_KIND,
};
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
const XNS_NAMESPACE: &str = "ns2";

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

/// Upstream's fake client set and listers for one case: the fixture's claims (the PVC cache),
/// its PVs (the PV GET), the case's ReferenceGrant, and every claim patch.
#[derive(Debug, Default)]
struct CloneApi {
    claims: Vec<PersistentVolumeClaim>,
    volumes: Vec<PersistentVolume>,
    grants: Vec<Arc<ReferenceGrant>>,
    /// Every claim PATCH: (namespace, name, JSON patch).
    patches: Mutex<Vec<(String, String, Value)>>,
}

impl CloneApi {
    fn find_claim(&self, namespace: &str, name: &str) -> Option<&PersistentVolumeClaim> {
        self.claims.iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(name)
        })
    }

    /// Whether the clone-protection finalizer was patched onto `namespace/name`.
    fn finalizer_added(&self, namespace: &str, name: &str) -> bool {
        self.patches.lock().unwrap().iter().any(|(ns, n, patch)| {
            ns == namespace
                && n == name
                && patch.as_array().is_some_and(|ops| {
                    ops.iter().any(|op| {
                        op["op"] == "add"
                            && (op["value"] == CLONE_FINALIZER
                                || op["value"]
                                    .as_array()
                                    .is_some_and(|v| v.iter().any(|f| f == CLONE_FINALIZER)))
                    })
                })
        })
    }
}

impl DataSourceClient for CloneApi {
    fn volume_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            Err(ApiError::not_found(
                "volumesnapshots.snapshot.storage.k8s.io",
                name,
            ))
        })
    }

    fn volume_snapshot_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            Err(ApiError::not_found(
                "volumesnapshotcontents.snapshot.storage.k8s.io",
                name,
            ))
        })
    }

    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        let answer = self
            .volumes
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
            .cloned()
            .ok_or_else(|| ApiError::not_found("persistentvolumes", name));
        Box::pin(async move { answer })
    }

    fn patch_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        self.patches.lock().unwrap().push((
            namespace.to_string(),
            name.to_string(),
            json_patch.clone(),
        ));
        let answer = self
            .find_claim(namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found("persistentvolumeclaims", name));
        Box::pin(async move { answer })
    }

    fn patch_volume_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
        _json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            Err(ApiError::not_found(
                "volumesnapshots.snapshot.storage.k8s.io",
                name,
            ))
        })
    }
}

impl DataSourceListers for CloneApi {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.find_claim(namespace, name).cloned().map(Arc::new)
    }

    fn reference_grants(&self, namespace: &str) -> Result<Vec<Arc<ReferenceGrant>>, ApiError> {
        Ok(self
            .grants
            .iter()
            .filter(|g| g.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .collect())
    }
}

/// Upstream's `generatePVCForProvisionFromXnsdataSource`: the class and the new claim in
/// `namespace` with `reference` as its `dataSourceRef`.
fn xns_request(
    class: &str,
    namespace: &str,
    reference: TypedObjectReference,
    bytes: i64,
    volume_mode: &str,
) -> (StorageClass, PersistentVolumeClaim) {
    let (mut class_object, mut claim) = request("", class, bytes, volume_mode);
    class_object.parameters = Some(BTreeMap::from([(
        "csi.storage.k8s.io/fstype".to_string(),
        "ext4".to_string(),
    )]));
    claim.metadata.namespace = Some(namespace.into());
    let spec = claim.spec.as_mut().unwrap();
    spec.data_source = None;
    spec.data_source_ref = Some(reference);
    (class_object, claim)
}

/// A `dataSourceRef` to a PVC; `group` and `namespace` `None` are unset.
fn pvc_ref(
    group: Option<&str>,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> TypedObjectReference {
    TypedObjectReference {
        api_group: group.map(str::to_string),
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.map(str::to_string),
    }
}

fn grant_from(group: &str, kind: &str, namespace: &str) -> Vec<ReferenceGrantFrom> {
    vec![ReferenceGrantFrom {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.into(),
    }]
}

fn grant_to(group: &str, kind: &str, name: Option<&str>) -> Vec<ReferenceGrantTo> {
    vec![ReferenceGrantTo {
        group: group.into(),
        kind: kind.into(),
        name: name.map(str::to_string),
    }]
}

type Grant = (&'static str, Vec<ReferenceGrantFrom>, Vec<ReferenceGrantTo>);

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
    /// Upstream's `expectedPVSpec` is set.
    expect_spec: bool,
    /// A claim in this namespace with this `dataSourceRef` (the cross-namespace cases).
    reference: Option<(&'static str, TypedObjectReference)>,
    /// The `CrossNamespaceVolumeDataSource` gate.
    xns_enabled: bool,
    /// The ReferenceGrant: its namespace, from and to.
    grant: Option<Grant>,
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
        expect_spec: false,
        reference: None,
        xns_enabled: false,
        grant: None,
    }
}

/// A cross-namespace case: a claim in `namespace` whose `dataSourceRef` is `reference`.
fn xns_case(name: &'static str, namespace: &'static str, reference: TypedObjectReference) -> Case {
    Case {
        reference: Some((namespace, reference)),
        xns_enabled: true,
        ..case(name, PV_NAME, SRC_NAME)
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
    fn spec(mut self) -> Self {
        self.expect_spec = true;
        self
    }
    fn grant(
        mut self,
        namespace: &'static str,
        from: Vec<ReferenceGrantFrom>,
        to: Vec<ReferenceGrantTo>,
    ) -> Self {
        self.grant = Some((namespace, from, to));
        self
    }
    /// The grant most cases use: PVCs of [`XNS_NAMESPACE`] may refer to every PVC of
    /// [`SRC_NAMESPACE`].
    fn pvc_grant(self) -> Self {
        self.grant(
            SRC_NAMESPACE,
            grant_from("", PVC_KIND, XNS_NAMESPACE),
            grant_to("", PVC_KIND, None),
        )
    }

    /// The class and the claim to provision.
    fn request(&self) -> (StorageClass, PersistentVolumeClaim) {
        match &self.reference {
            Some((namespace, reference)) => xns_request(
                self.class,
                namespace,
                reference.clone(),
                self.bytes,
                self.mode,
            ),
            None => request(self.source, self.class, self.bytes, self.mode),
        }
    }

    /// Where the source PVC is looked for: upstream checks its finalizer there.
    fn source_key(&self, claim: &PersistentVolumeClaim) -> (String, String) {
        match &self.reference {
            Some((_, reference)) => (
                reference
                    .namespace
                    .clone()
                    .unwrap_or_else(|| claim.metadata.namespace.clone().unwrap_or_default()),
                reference.name.clone(),
            ),
            None => (SRC_NAMESPACE.to_string(), self.source.to_string()),
        }
    }

    fn config(&self) -> ProvisionerConfig {
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
            controller_publish_readonly: true,
            volume_attributes_class: true,
            capabilities: DriverCapabilities {
                controller_service: true,
                create_delete_volume: true,
                clone_volume: !self.clone_unsupported,
                ..Default::default()
            },
            node_deployment: None,
            migration: None,
        }
    }

    fn driver(&self) -> FakeDriver {
        let source = match &self.reference {
            Some((_, reference)) => reference.name.clone(),
            None => self.source.to_string(),
        };
        FakeDriver {
            content_source: source,
            created: Mutex::new(Vec::new()),
        }
    }

    /// Upstream's checks of the result and of the produced PV.
    fn check(
        &self,
        result: Result<PersistentVolume, ProvisionError>,
        created: &[CreateVolumeRequest],
    ) {
        let name = self.name;
        match result {
            Err(e) if !self.expect_err => panic!("{name}: got error: {e}"),
            Ok(pv) if self.expect_err => panic!("{name}: expected an error, got {pv:?}"),
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
                if self.expect_spec {
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

/// The 27 cases without the cross-namespace gate.
fn cases() -> Vec<Case> {
    vec![
        case("provision with pvc data source", PV_NAME, SRC_NAME)
            .ok()
            .spec(),
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
    ]
}

/// The 22 cases that name `CrossNamespaceVolumeDataSource`.
fn cross_namespace_cases() -> Vec<Case> {
    let src = Some(SRC_NAMESPACE);
    let core = Some("");
    let to_pvc = |name| pvc_ref(core, PVC_KIND, name, src);
    vec![
        // The first four use `dataSource`, as the cases above (only the first has the gate).
        Case {
            xns_enabled: true,
            ..case(
                "provision with pvc data source when CrossNamespaceVolumeDataSource feature enabled",
                PV_NAME,
                SRC_NAME,
            )
        }
        .ok()
        .spec(),
        Case {
            class: FAKE_SC_2,
            ..case(
                "provision with pvc data source different storage classes when CrossNamespaceVolumeDataSource feature enabled",
                PV_NAME,
                SRC_NAME,
            )
        }
        .ok(),
        case(
            "provision filesystem data source is filesystem when CrossNamespaceVolumeDataSource feature enabled",
            "filesystem-pv",
            "filesystem-pv",
        )
        .mode("filesystem")
        .ok(),
        case(
            "provision nil mode data source is nil when CrossNamespaceVolumeDataSource feature enabled",
            PV_NAME,
            SRC_NAME,
        )
        .ok(),
        xns_case(
            "provision with xns PersitentVolumeClaim data source with refgrant when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .pvc_grant()
        .ok()
        .spec(),
        xns_case(
            "provision with xns PersitentVolumeClaim data source with refgrant of specify toName when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(
            SRC_NAMESPACE,
            grant_from("", PVC_KIND, XNS_NAMESPACE),
            grant_to("", PVC_KIND, Some(SRC_NAME)),
        )
        .ok()
        .spec(),
        xns_case(
            "provision with same ns PersitentVolumeClaim data source without refgrant when CrossNamespaceVolumeDataSource feature enabled",
            SRC_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .ok()
        .spec(),
        xns_case(
            "provision with PersitentVolumeClaim data source without ns without refgrant when CrossNamespaceVolumeDataSource feature enabled",
            SRC_NAMESPACE,
            pvc_ref(core, PVC_KIND, SRC_NAME, None),
        )
        .ok()
        .spec(),
        xns_case(
            "provision PersitentVolumeClaim data source of nil ns without refgrant when CrossNamespaceVolumeDataSource feature enabled",
            SRC_NAMESPACE,
            pvc_ref(core, PVC_KIND, SRC_NAME, None),
        )
        .ok()
        .spec(),
        xns_case(
            "provision with xns PersitentVolumeClaim data source of nil apiGroup with refgrant when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            pvc_ref(None, PVC_KIND, SRC_NAME, src),
        )
        .pvc_grant()
        .ok()
        .spec(),
        // Upstream's Go struct leaves `APIGroup` out here: the same as nil.
        xns_case(
            "provision with xns PersitentVolumeClaim data source without apiGroup with refgrant when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            pvc_ref(None, PVC_KIND, SRC_NAME, src),
        )
        .pvc_grant()
        .ok()
        .spec(),
        xns_case(
            "fail provision xns PersistentVolumeClaim data source of nil apiGroup and wrong Kind with refgrant when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            pvc_ref(None, "WrongKind", SRC_NAME, src),
        )
        .pvc_grant(),
        xns_case(
            "fail provision with xns PersistentVolumeClaim data source with refgrant of wrong create namespace when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(
            "wrong-reference-namespace",
            grant_from("", PVC_KIND, XNS_NAMESPACE),
            grant_to("", PVC_KIND, None),
        ),
        xns_case(
            "fail provision with xns PersistentVolumeClaim data source with refgrant of wrong fromGroup when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(
            SRC_NAMESPACE,
            grant_from("wrong.fromGroup", PVC_KIND, XNS_NAMESPACE),
            grant_to("", PVC_KIND, None),
        ),
        xns_case(
            "fail provision with xns PersistentVolumeClaim data source with refgrant of wrong fromKind when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(
            SRC_NAMESPACE,
            grant_from("", "WrongfromKind", XNS_NAMESPACE),
            grant_to("", PVC_KIND, None),
        ),
        xns_case(
            "fail provision with xns PersistentVolumeClaim data source with refgrant of wrong fromNamespace when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(
            SRC_NAMESPACE,
            grant_from("", PVC_KIND, "wrong-namespace"),
            grant_to("", PVC_KIND, None),
        ),
        xns_case(
            "fail provision with xns PersistentVolumeClaim data source with refgrant of wrong toGroup when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(
            SRC_NAMESPACE,
            grant_from("", PVC_KIND, XNS_NAMESPACE),
            grant_to("wrong.toGroup", PVC_KIND, None),
        ),
        xns_case(
            "fail provision with xns PersistentVolumeClaim data source with refgrant of wrong toKind when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(
            SRC_NAMESPACE,
            grant_from("", PVC_KIND, XNS_NAMESPACE),
            grant_to("", "WrongtoKind", None),
        ),
        xns_case(
            "fail provision with xns PersistentVolumeClaim data source with refgrant of wrong toName when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(
            SRC_NAMESPACE,
            grant_from("", PVC_KIND, XNS_NAMESPACE),
            grant_to("", PVC_KIND, Some("wrong-toName")),
        ),
        xns_case(
            "fail provision with xns PersistentVolumeClaim data source with refgrant referenceGrantFrom and referenceGrantTo empty when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        )
        .grant(SRC_NAMESPACE, Vec::new(), Vec::new()),
        xns_case(
            "fail provision with xns PersistentVolumeClaim PersitentVolumeClaim data source without refgrant when CrossNamespaceVolumeDataSource feature enabled",
            XNS_NAMESPACE,
            to_pvc(SRC_NAME),
        ),
        Case {
            xns_enabled: false,
            ..xns_case(
                "fail provision with xns PersistentVolumeClaim data source with refgrant when CrossNamespaceVolumeDataSource feature disabled",
                XNS_NAMESPACE,
                to_pvc(SRC_NAME),
            )
        }
        .pvc_grant(),
    ]
}

/// The source PVC and PV of `case`'s fixture, as the controller loop would hand them in.
fn fixture(case: &Case) -> (Vec<PersistentVolumeClaim>, Vec<PersistentVolume>) {
    (claims(case.clone_pv), volumes(case.source_pv_phase))
}

/// The 27 cases with the source PVC and PV handed in.
#[tokio::test]
async fn test_provision_from_pvc() {
    let cases = cases();
    assert_eq!(cases.len(), 27);
    for case in cases {
        let name = case.name;
        let (claims, volumes) = fixture(&case);
        let (class, claim) = case.request();
        let source_pvc = claims
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(case.source));
        let source_pv = source_pvc.and_then(|c| {
            let volume = c.spec.as_ref()?.volume_name.clone()?;
            volumes
                .iter()
                .find(|v| v.metadata.name.as_deref() == Some(volume.as_str()))
        });
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
        let driver = case.driver();
        let result = provision(
            &case.config(),
            &options,
            &driver,
            &NoSecrets,
            &mut TopologyMemo::new(),
        )
        .await;
        let created = driver.created.lock().unwrap().clone();
        assert_eq!(
            !created.is_empty(),
            case.expect_finalizers,
            "{name}: finalizer set (CreateVolume called)"
        );
        case.check(result, &created);
    }
}

/// All 49 cases as the controller loop provisions: the data source read from Kubernetes.
#[tokio::test]
async fn test_provision_from_pvc_through_the_api() {
    let mut cases = cases();
    let cross_namespace = cross_namespace_cases();
    assert_eq!(cross_namespace.len(), 22);
    cases.extend(cross_namespace);
    for case in cases {
        let name = case.name;
        let (claims, volumes) = fixture(&case);
        let api = Arc::new(CloneApi {
            claims,
            volumes,
            grants: case
                .grant
                .clone()
                .map(|(namespace, from, to)| {
                    Arc::new(super::snapshot_test::reference_grant(namespace, from, to))
                })
                .into_iter()
                .collect(),
            ..Default::default()
        });
        let sources = DataSources::new(
            DataSourceConfig {
                cross_namespace: case.xns_enabled,
                prevent_volume_mode_conversion: true,
            },
            api.clone(),
            api.clone(),
        );
        let (class, claim) = case.request();
        let options = ProvisionOptions {
            claim: &claim,
            storage_class: &class,
            selected_node: "",
            volume_attributes_class: None,
            data_source: DataSourceObjects::Api(&sources),
            cluster: ClusterTopology::default(),
        };
        let driver = case.driver();
        let result = provision(
            &case.config(),
            &options,
            &driver,
            &NoSecrets,
            &mut TopologyMemo::new(),
        )
        .await;
        let created = driver.created.lock().unwrap().clone();
        let (namespace, source) = case.source_key(&claim);
        if api.find_claim(&namespace, &source).is_some() {
            assert_eq!(
                api.finalizer_added(&namespace, &source),
                case.expect_finalizers,
                "{name}: clone finalizer on {namespace}/{source}"
            );
        } else {
            assert!(
                !case.expect_finalizers,
                "{name}: no source {namespace}/{source}"
            );
        }
        // Nothing but the source is patched.
        for (ns, n, _) in api.patches.lock().unwrap().iter() {
            assert_eq!((ns, n), (&namespace, &source), "{name}: patched");
        }
        // A volume is made only from a source that got its finalizer.
        if !created.is_empty() {
            assert!(
                case.expect_finalizers,
                "{name}: CreateVolume without finalizer"
            );
        }
        case.check(result, &created);
    }
}
