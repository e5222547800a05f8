//! Port of upstream's `TestProvisionFromSnapshot` (`pkg/controller/controller_test.go`,
//! v6.4.0), all 38 cases with their names, through [`DataSourceObjects::Api`]. As upstream's
//! fake snapshot client, the VolumeSnapshot GET answers the one snapshot of the case whatever
//! namespace is asked, and the VolumeSnapshotContent GET the one content. Also checked: the
//! snapshot source-protection finalizer is added once the content source is resolved (and
//! only then), and removed again after a successful `CreateVolume`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_controller::ApiError;
use csi_crd_types::gateway::v1beta1::{ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo};
use csi_crd_types::snapshot::v1::{
    VolumeSnapshotContentSource, VolumeSnapshotContentSpec, VolumeSnapshotContentStatus,
    VolumeSnapshotSource, VolumeSnapshotSpec, VolumeSnapshotStatus,
};
use csi_crd_types::{ReferenceGrant, VolumeSnapshot, VolumeSnapshotContent};
use csi_proto::csi::v1::volume_content_source::{SnapshotSource, Type};
use csi_proto::csi::v1::{
    CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest, Volume, VolumeContentSource,
};
use csi_test_support::Secrets;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, TypedLocalObjectReference, TypedObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

use crate::csi::{CsiError, VolumeDriver};
use crate::data_source::*;
use crate::params::bytes_to_quantity;
use crate::provision::*;
use crate::topology::{ClusterTopology, TopologyMemo};

const DRIVER: &str = "test-driver";
const REQUESTED_BYTES: i64 = 1000;
const SNAP_NAME: &str = "test-snapshot";
const SNAP_CLASS: &str = "test-snapclass";
const CONTENT_NAME: &str = "snapcontent-snapuid";
const DATA_SOURCE_NAMESPACE: &str = "ns1";
const XNS_NAMESPACE: &str = "ns2";
const API_GROUP: &str = "snapshot.storage.k8s.io";

/// Upstream's fake snapshot client and ReferenceGrant lister for one case.
#[derive(Debug, Default)]
pub(crate) struct SnapshotApi {
    pub snapshot: Option<VolumeSnapshot>,
    pub content: Option<VolumeSnapshotContent>,
    pub grants: Vec<Arc<ReferenceGrant>>,
    /// Every snapshot PATCH: (namespace, name, JSON patch).
    pub patches: Mutex<Vec<(String, String, Value)>>,
    /// Makes every snapshot PATCH fail.
    pub patch_error: Option<ApiError>,
}

impl DataSourceClient for SnapshotApi {
    fn volume_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        let answer = self
            .snapshot
            .clone()
            .ok_or_else(|| ApiError::not_found("volumesnapshots.snapshot.storage.k8s.io", name));
        Box::pin(async move { answer })
    }

    fn volume_snapshot_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        let answer = self.content.clone().ok_or_else(|| {
            ApiError::not_found("volumesnapshotcontents.snapshot.storage.k8s.io", name)
        });
        Box::pin(async move { answer })
    }

    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move { Err(ApiError::not_found("persistentvolumes", name)) })
    }

    fn patch_claim<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
        _json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move { Err(ApiError::not_found("persistentvolumeclaims", name)) })
    }

    fn patch_volume_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        self.patches.lock().unwrap().push((
            namespace.to_string(),
            name.to_string(),
            json_patch.clone(),
        ));
        let answer = match &self.patch_error {
            Some(error) => Err(error.clone()),
            None => Ok(self.snapshot.clone().unwrap_or_default()),
        };
        Box::pin(async move { answer })
    }
}

impl DataSourceListers for SnapshotApi {
    fn claim(&self, _namespace: &str, _name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        None
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

/// Upstream's `newSnapshot`.
pub(crate) fn new_snapshot(namespace: &str, ready: bool) -> VolumeSnapshot {
    VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some(SNAP_NAME.into()),
            namespace: Some(namespace.into()),
            uid: Some("snapuid".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: VolumeSnapshotSpec {
            source: VolumeSnapshotSource {
                persistent_volume_claim_name: Some("claim".into()),
                ..Default::default()
            },
            volume_snapshot_class_name: Some(SNAP_CLASS.into()),
        },
        status: Some(VolumeSnapshotStatus {
            bound_volume_snapshot_content_name: Some(CONTENT_NAME.into()),
            creation_time: Some(Time(Default::default())),
            ready_to_use: Some(ready),
            restore_size: Some(bytes_to_quantity(REQUESTED_BYTES)),
            ..Default::default()
        }),
    }
}

/// Upstream's `newContent`, bound to the case's snapshot.
pub(crate) fn new_content(namespace: &str) -> VolumeSnapshotContent {
    VolumeSnapshotContent {
        metadata: ObjectMeta {
            name: Some(CONTENT_NAME.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: VolumeSnapshotContentSpec {
            volume_snapshot_ref: ObjectReference {
                kind: Some("VolumeSnapshot".into()),
                api_version: Some("snapshot.storage.k8s.io/v1beta1".into()),
                uid: Some("snapuid".into()),
                namespace: Some(namespace.into()),
                name: Some(SNAP_NAME.into()),
                ..Default::default()
            },
            driver: DRIVER.into(),
            source: VolumeSnapshotContentSource {
                snapshot_handle: Some("sid".into()),
                ..Default::default()
            },
            volume_snapshot_class_name: Some(SNAP_CLASS.into()),
            source_volume_mode: Some("Filesystem".into()),
            ..Default::default()
        },
        status: Some(VolumeSnapshotContentStatus {
            restore_size: Some(REQUESTED_BYTES),
            snapshot_handle: Some("sid".into()),
            creation_time: Some(0),
            ready_to_use: Some(true),
            ..Default::default()
        }),
    }
}

/// Answers `CreateVolume` with a restored volume (or one without content source).
#[derive(Debug, Default)]
struct FakeDriver {
    not_populated: bool,
    created: Mutex<Vec<CreateVolumeRequest>>,
    deleted: Mutex<Vec<DeleteVolumeRequest>>,
}

impl VolumeDriver for FakeDriver {
    fn create_volume(
        &self,
        request: CreateVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<CreateVolumeResponse, CsiError>> {
        self.created.lock().unwrap().push(request);
        let content_source = (!self.not_populated).then(|| VolumeContentSource {
            r#type: Some(Type::Snapshot(SnapshotSource {
                snapshot_id: "sid".into(),
            })),
        });
        Box::pin(async move {
            Ok(CreateVolumeResponse {
                volume: Some(Volume {
                    capacity_bytes: REQUESTED_BYTES,
                    volume_id: "test-volume-id".into(),
                    content_source,
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
        Box::pin(async { Ok(()) })
    }
}

/// How a case's data source is written.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `spec.dataSource` with the snapshot API group.
    Snapshot,
    /// `spec.dataSource` with this name, kind and API group.
    Other(&'static str, &'static str, &'static str),
    /// `spec.dataSourceRef` in this namespace (`None`: unset).
    Ref(Option<&'static str>),
}

#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    claim_namespace: Option<&'static str>,
    source: Source,
    request: i64,
    block: bool,
    provisioner: &'static str,
    snapshot_ready: bool,
    not_populated: bool,
    mis_bound_uid: bool,
    mis_bound_namespace: bool,
    mis_bound_name: bool,
    nil_bound_content_name: bool,
    nil_snapshot_status: bool,
    nil_ready_to_use: bool,
    nil_content_status: bool,
    nil_snapshot_handle: bool,
    allow_volume_mode_change: bool,
    being_deleted: bool,
    without_source_protection_finalizer: bool,
    with_different_finalizer: bool,
    xns_enabled: bool,
    snap_namespace: Option<&'static str>,
    grant: Option<(&'static str, Vec<ReferenceGrantFrom>, Vec<ReferenceGrantTo>)>,
    expect_err: bool,
    expect_csi_call: bool,
    expect_pv: bool,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        claim_namespace: None,
        source: Source::Snapshot,
        request: REQUESTED_BYTES,
        block: false,
        provisioner: DRIVER,
        snapshot_ready: true,
        not_populated: false,
        mis_bound_uid: false,
        mis_bound_namespace: false,
        mis_bound_name: false,
        nil_bound_content_name: false,
        nil_snapshot_status: false,
        nil_ready_to_use: false,
        nil_content_status: false,
        nil_snapshot_handle: false,
        allow_volume_mode_change: false,
        being_deleted: false,
        without_source_protection_finalizer: false,
        with_different_finalizer: false,
        xns_enabled: false,
        snap_namespace: None,
        grant: None,
        expect_err: true,
        expect_csi_call: false,
        expect_pv: false,
    }
}

impl Case {
    fn ok(mut self) -> Self {
        self.expect_err = false;
        self.expect_csi_call = true;
        self.expect_pv = true;
        self
    }

    /// A claim in ns2 whose `dataSourceRef` names the snapshot in ns1.
    fn xns(mut self) -> Self {
        self.claim_namespace = Some(XNS_NAMESPACE);
        self.source = Source::Ref(Some(DATA_SOURCE_NAMESPACE));
        self.snap_namespace = Some(DATA_SOURCE_NAMESPACE);
        self.xns_enabled = true;
        self
    }

    /// A ReferenceGrant in `namespace` with `from` and `to`.
    fn grant(
        mut self,
        namespace: &'static str,
        from: Vec<ReferenceGrantFrom>,
        to: Vec<ReferenceGrantTo>,
    ) -> Self {
        self.grant = Some((namespace, from, to));
        self
    }
}

fn from(group: &str, kind: &str, namespace: &str) -> Vec<ReferenceGrantFrom> {
    vec![ReferenceGrantFrom {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.into(),
    }]
}

fn to(group: &str, kind: &str, name: Option<&str>) -> Vec<ReferenceGrantTo> {
    vec![ReferenceGrantTo {
        group: group.into(),
        kind: kind.into(),
        name: name.map(str::to_string),
    }]
}

fn pvc_from() -> Vec<ReferenceGrantFrom> {
    from("", "PersistentVolumeClaim", XNS_NAMESPACE)
}

fn snapshot_to() -> Vec<ReferenceGrantTo> {
    to(API_GROUP, "VolumeSnapshot", None)
}

/// Upstream's `generateReferenceGrant`.
pub(crate) fn reference_grant(
    namespace: &str,
    from: Vec<ReferenceGrantFrom>,
    to: Vec<ReferenceGrantTo>,
) -> ReferenceGrant {
    ReferenceGrant {
        metadata: ObjectMeta {
            name: Some("refGrant".into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        spec: ReferenceGrantSpec { from, to },
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("provision with volume snapshot data source").ok(),
        Case {
            request: 100,
            ..case("fail vol size less than snapshot size")
        },
        Case {
            source: Source::Other("", "VolumeSnapshot", API_GROUP),
            ..case("fail empty snapshot name")
        },
        Case {
            source: Source::Other("", "UnsupportedKind", API_GROUP),
            ..case("fail unsupported datasource kind")
        },
        Case {
            source: Source::Other(SNAP_NAME, "VolumeSnapshot", "unsupported.group.io"),
            ..case("fail unsupported apigroup")
        },
        Case {
            request: 100,
            snapshot_ready: false,
            ..case("fail invalid snapshot status")
        },
        Case {
            not_populated: true,
            expect_csi_call: true,
            ..case("fail not populated volume content source")
        },
        Case {
            mis_bound_uid: true,
            ..case("fail snapshotContent bound to a different snapshot (by UID)")
        },
        Case {
            mis_bound_namespace: true,
            ..case("fail snapshotContent bound to a different snapshot (by namespace)")
        },
        Case {
            mis_bound_name: true,
            ..case("fail snapshotContent bound to a different snapshot (by name)")
        },
        Case {
            provisioner: "another-driver",
            ..case("fail snapshotContent uses different driver than StorageClass")
        },
        Case {
            nil_content_status: true,
            ..case("fail provision with no volume snapshot content status")
        },
        Case {
            nil_snapshot_handle: true,
            ..case("fail provision with no volume snapshot handle in content status")
        },
        Case {
            nil_snapshot_status: true,
            snapshot_ready: false,
            ..case("fail provision with no volume snapshot status")
        },
        Case {
            nil_bound_content_name: true,
            snapshot_ready: false,
            ..case("fail provision with no BoundVolumeSnapshotContentName in snapshot status")
        },
        Case {
            nil_ready_to_use: true,
            snapshot_ready: false,
            ..case("fail provision with nil ReadyToUse in snapshot status")
        },
        Case {
            block: true,
            allow_volume_mode_change: true,
            ..case("allow source volume mode conversion").ok()
        },
        Case {
            block: true,
            ..case("fail source volume mode conversion")
        },
        Case {
            xns_enabled: true,
            ..case("provision with volume snapshot data source when CrossNamespaceVolumeDataSource feature enabled").ok()
        },
        case("provision with xns volume snapshot data source with refgrant when CrossNamespaceVolumeDataSource feature enabled")
            .ok()
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, pvc_from(), snapshot_to()),
        case("provision with xns volume snapshot data source with refgrant of specify toName when CrossNamespaceVolumeDataSource feature enabled")
            .ok()
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, pvc_from(), to(API_GROUP, "VolumeSnapshot", Some(SNAP_NAME))),
        case("provision with xns volume snapshot data source with refgrant of specify nil when CrossNamespaceVolumeDataSource feature enabled")
            .ok()
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, pvc_from(), to(API_GROUP, "VolumeSnapshot", None)),
        case("provision with xns volume snapshot data source with refgrant of specify non when CrossNamespaceVolumeDataSource feature enabled")
            .ok()
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, pvc_from(), to(API_GROUP, "VolumeSnapshot", Some(""))),
        Case {
            claim_namespace: Some(DATA_SOURCE_NAMESPACE),
            source: Source::Ref(Some(DATA_SOURCE_NAMESPACE)),
            ..case("provision with same ns volume snapshot data source without refgrant when CrossNamespaceVolumeDataSource feature enabled").ok().xns()
        },
        Case {
            claim_namespace: Some(DATA_SOURCE_NAMESPACE),
            source: Source::Ref(None),
            ..case("provision with non-ns volume snapshot data source without refgrant when CrossNamespaceVolumeDataSource feature enabled").ok().xns()
        },
        case("fail provision with xns volume snapshot data source without refgrant when CrossNamespaceVolumeDataSource feature enabled").xns(),
        Case {
            xns_enabled: false,
            ..case("fail provision with xns volume snapshot data source with refgrant when CrossNamespaceVolumeDataSource feature disabled")
                .xns()
                .grant(DATA_SOURCE_NAMESPACE, pvc_from(), snapshot_to())
        },
        case("fail provision with xns volume snapshot data source with refgrant of wrong create namespace when CrossNamespaceVolumeDataSource feature enabled")
            .xns()
            .grant("wrong-reference-namespace", pvc_from(), snapshot_to()),
        case("fail provision with xns volume snapshot data source with refgrant of wrong fromaGroup when CrossNamespaceVolumeDataSource feature enabled")
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, from("wrong.apiGroup", "PersistentVolumeClaim", XNS_NAMESPACE), snapshot_to()),
        case("fail provision with xns volume snapshot data source with refgrant of wrong fromKind when CrossNamespaceVolumeDataSource feature enabled")
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, from("", "WrongKind", XNS_NAMESPACE), snapshot_to()),
        case("fail provision with xns volume snapshot data source with refgrant of wrong fromNamespace when CrossNamespaceVolumeDataSource feature enabled")
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, from("", "PersistentVolumeClaim", "wrong-namespace"), snapshot_to()),
        case("fail provision with xns volume snapshot data source with refgrant of wrong toKind when CrossNamespaceVolumeDataSource feature enabled")
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, pvc_from(), to(API_GROUP, "WrongKind", None)),
        case("fail provision with xns volume snapshot data source with refgrant of wrong toGroup when CrossNamespaceVolumeDataSource feature enabled")
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, pvc_from(), to("wrong.toGroup", "VolumeSnapshot", None)),
        case("fail provision with xns volume snapshot data source with refgrant of wrong toName when CrossNamespaceVolumeDataSource feature enabled")
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, pvc_from(), to(API_GROUP, "VolumeSnapshot", Some("wrong-dataSourceName"))),
        case("fail provision with xns volume snapshot data source with refgrant of referenceGrantFrom and referenceGrantTo empty when CrossNamespaceVolumeDataSource feature enabled")
            .xns()
            .grant(DATA_SOURCE_NAMESPACE, vec![], vec![]),
        Case {
            being_deleted: true,
            without_source_protection_finalizer: true,
            ..case("provision with snapshot being deleted without source-protection-finalizer should fail")
        },
        Case {
            being_deleted: true,
            with_different_finalizer: true,
            ..case("provision with snapshot being deleted with different finalizer (not source-protection) should fail")
        },
        Case {
            being_deleted: true,
            ..case("provision with snapshot being deleted with source-protection-finalizer should proceed for cleanup").ok()
        },
    ]
}

fn claim(case: &Case) -> PersistentVolumeClaim {
    let (data_source, data_source_ref) = match case.source {
        Source::Snapshot => (
            Some(TypedLocalObjectReference {
                name: SNAP_NAME.into(),
                kind: "VolumeSnapshot".into(),
                api_group: Some(API_GROUP.into()),
            }),
            None,
        ),
        Source::Other(name, kind, group) => (
            Some(TypedLocalObjectReference {
                name: name.into(),
                kind: kind.into(),
                api_group: Some(group.into()),
            }),
            None,
        ),
        Source::Ref(namespace) => (
            None,
            Some(TypedObjectReference {
                name: SNAP_NAME.into(),
                kind: "VolumeSnapshot".into(),
                api_group: Some(API_GROUP.into()),
                namespace: namespace.map(str::to_string),
            }),
        ),
    };
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            uid: Some("testid".into()),
            namespace: case.claim_namespace.map(str::to_string),
            annotations: Some(BTreeMap::from([(
                ANN_BETA_STORAGE_PROVISIONER.to_string(),
                DRIVER.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            storage_class_name: Some(SNAP_CLASS.into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(case.request.to_string()),
                )])),
                ..Default::default()
            }),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            data_source,
            data_source_ref,
            volume_mode: case.block.then(|| "Block".to_string()),
            ..Default::default()
        }),
        status: None,
    }
}

fn api(case: &Case) -> SnapshotApi {
    let namespace = case.snap_namespace.unwrap_or("default");
    let mut snapshot = new_snapshot(namespace, case.snapshot_ready);
    if case.nil_bound_content_name
        && let Some(status) = snapshot.status.as_mut()
    {
        status.bound_volume_snapshot_content_name = None;
    }
    if case.nil_ready_to_use
        && let Some(status) = snapshot.status.as_mut()
    {
        status.ready_to_use = None;
    }
    if case.nil_snapshot_status {
        snapshot.status = None;
    }
    if case.being_deleted {
        snapshot.metadata.deletion_timestamp = Some(Time(Default::default()));
        if case.with_different_finalizer {
            snapshot.metadata.finalizers = Some(vec!["some-other-finalizer".into()]);
        } else if !case.without_source_protection_finalizer {
            snapshot.metadata.finalizers = Some(vec![SNAPSHOT_SOURCE_FINALIZER.into()]);
        }
    }
    let mut content = new_content(namespace);
    let reference = &mut content.spec.volume_snapshot_ref;
    if case.mis_bound_uid {
        reference.uid = Some("another-snapshot-uid".into());
    }
    if case.mis_bound_name {
        reference.name = Some("another-snapshot-name".into());
    }
    if case.mis_bound_namespace {
        reference.namespace = Some("another-snapshot-namespace".into());
    }
    if case.nil_snapshot_handle
        && let Some(status) = content.status.as_mut()
    {
        status.snapshot_handle = None;
    }
    if case.nil_content_status {
        content.status = None;
    }
    if case.allow_volume_mode_change {
        content.metadata.annotations = Some(BTreeMap::from([(
            ANN_ALLOW_VOLUME_MODE_CHANGE.to_string(),
            "true".to_string(),
        )]));
    }
    let grants = case
        .grant
        .clone()
        .map(|(namespace, from, to)| Arc::new(reference_grant(namespace, from, to)))
        .into_iter()
        .collect();
    SnapshotApi {
        snapshot: Some(snapshot),
        content: Some(content),
        grants,
        ..Default::default()
    }
}

pub(crate) fn config() -> ProvisionerConfig {
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
        volume_attributes_class: false,
        capabilities: DriverCapabilities {
            controller_service: true,
            create_delete_volume: true,
            create_delete_snapshot: true,
            ..Default::default()
        },
        node_deployment: None,
        migration: None,
    }
}

#[tokio::test]
async fn test_provision_from_snapshot() {
    let cases = cases();
    assert_eq!(cases.len(), 38);
    for case in cases {
        let name = case.name;
        let api = Arc::new(api(&case));
        let sources = DataSources::new(
            DataSourceConfig {
                cross_namespace: case.xns_enabled,
                prevent_volume_mode_conversion: true,
            },
            api.clone(),
            api.clone(),
        );
        let claim = claim(&case);
        let class = StorageClass {
            reclaim_policy: Some("Delete".into()),
            parameters: Some(BTreeMap::new()),
            provisioner: case.provisioner.into(),
            ..Default::default()
        };
        let options = ProvisionOptions {
            claim: &claim,
            storage_class: &class,
            selected_node: "",
            volume_attributes_class: None,
            data_source: DataSourceObjects::Api(&sources),
            cluster: ClusterTopology::default(),
        };
        let driver = FakeDriver {
            not_populated: case.not_populated,
            ..Default::default()
        };
        let result = provision(
            &config(),
            &options,
            &driver,
            &Secrets::default(),
            &mut TopologyMemo::new(),
        )
        .await;
        let created = driver.created.lock().unwrap().clone();
        assert_eq!(
            !created.is_empty(),
            case.expect_csi_call,
            "{name}: CSI call"
        );
        if case.not_populated {
            assert_eq!(driver.deleted.lock().unwrap().len(), 1, "{name}: cleanup");
        }
        let patches = api.patches.lock().unwrap().clone();
        match result {
            Err(e) if !case.expect_err => panic!("{name}: got error: {e}"),
            Ok(pv) if case.expect_err => panic!("{name}: expected an error, got {pv:?}"),
            Err(e) => {
                if !case.expect_csi_call {
                    assert!(
                        patches.is_empty(),
                        "{name}: finalizer set before failing: {e}"
                    );
                }
            }
            Ok(pv) => {
                assert_eq!(
                    created[0].volume_content_source,
                    Some(VolumeContentSource {
                        r#type: Some(Type::Snapshot(SnapshotSource {
                            snapshot_id: "sid".into()
                        }))
                    }),
                    "{name}"
                );
                assert!(case.expect_pv);
                assert_eq!(pv.metadata.name.as_deref(), Some("test-testi"), "{name}");
                let spec = pv.spec.unwrap();
                assert_eq!(
                    spec.capacity,
                    Some(BTreeMap::from([(
                        "storage".to_string(),
                        bytes_to_quantity(REQUESTED_BYTES)
                    )])),
                    "{name}"
                );
                assert_eq!(
                    spec.csi,
                    Some(CSIPersistentVolumeSource {
                        driver: DRIVER.into(),
                        volume_handle: "test-volume-id".into(),
                        fs_type: (!case.block).then(|| "ext4".into()),
                        volume_attributes: Some(BTreeMap::from([(
                            PROVISIONER_IDENTITY_KEY.to_string(),
                            "test-provisioner".to_string(),
                        )])),
                        read_only: None,
                        ..Default::default()
                    }),
                    "{name}"
                );
                // The finalizer goes on once the source is resolved: here the fake snapshot
                // never keeps it, so it is added again at the end only if it was there.
                let adds = patches
                    .iter()
                    .filter(|(_, _, p)| p.to_string().contains("\"add\""))
                    .count();
                if case.being_deleted {
                    assert_eq!(adds, 0, "{name}: the finalizer was there");
                } else {
                    assert_eq!(adds, 1, "{name}: finalizer added once");
                }
            }
        }
    }
}

fn snapshot_reference() -> DataSourceRef {
    DataSourceRef {
        kind: "VolumeSnapshot".into(),
        name: SNAP_NAME.into(),
        api_group: API_GROUP.into(),
        namespace: "default".into(),
    }
}

#[tokio::test]
async fn snapshot_source_messages_are_upstreams() {
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some("sc".into()),
            ..Default::default()
        },
        provisioner: DRIVER.into(),
        ..Default::default()
    };
    let mut claim = claim(&case("messages"));
    claim.metadata.namespace = Some("default".into());
    claim.metadata.name = Some("pvc".into());
    let run = |api: SnapshotApi, claim: PersistentVolumeClaim, class: StorageClass| async move {
        snapshot_source(&api, &claim, &class, &snapshot_reference(), true)
            .await
            .unwrap_err()
            .to_string()
    };

    let missing = SnapshotApi::default();
    assert_eq!(
        run(missing, claim.clone(), class.clone()).await,
        "error getting snapshot test-snapshot from api server: volumesnapshots.snapshot.storage.k8s.io \"test-snapshot\" not found"
    );

    let mut api = api(&case("x"));
    api.snapshot
        .as_mut()
        .unwrap()
        .status
        .as_mut()
        .unwrap()
        .restore_size = Some(Quantity("2k".into()));
    assert_eq!(
        run(api, claim.clone(), class.clone()).await,
        "requested volume size 1000 is less than the size 2000 for the source snapshot test-snapshot"
    );

    let mut other = class.clone();
    other.provisioner = "another-driver".into();
    assert_eq!(
        run(api_for_default(), claim.clone(), other).await,
        "snapshotcontent snapcontent-snapuid for snapshot test-snapshot is not handled by CSI driver of StorageClass sc"
    );

    let mut block = claim.clone();
    block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
    assert_eq!(
        run(api_for_default(), block.clone(), class.clone()).await,
        "requested volume default/pvc modifies the mode of the source volume but does not have permission to do so. snapshot.storage.kubernetes.io/allow-volume-mode-change annotation is not present on snapshotcontent snapcontent-snapuid"
    );
    for (value, message) in [
        (
            "maybe",
            "requested volume default/pvc modifies the mode of the source volume but does not have permission to do so. failed to convert snapshot.storage.kubernetes.io/allow-volume-mode-change annotation value to boolean with error: strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        (
            "false",
            "requested volume default/pvc modifies the mode of the source volume but does not have permission to do so. snapshot.storage.kubernetes.io/allow-volume-mode-change is set to false on snapshotcontent snapcontent-snapuid",
        ),
    ] {
        let mut api = api_for_default();
        api.content.as_mut().unwrap().metadata.annotations = Some(BTreeMap::from([(
            ANN_ALLOW_VOLUME_MODE_CHANGE.to_string(),
            value.to_string(),
        )]));
        assert_eq!(run(api, block.clone(), class.clone()).await, message);
    }

    // Without --prevent-volume-mode-conversion the mode may change.
    let api = api_for_default();
    assert!(
        snapshot_source(&api, &block, &class, &snapshot_reference(), false)
            .await
            .is_ok()
    );
}

fn api_for_default() -> SnapshotApi {
    api(&case("default"))
}

#[tokio::test]
async fn the_snapshot_finalizer_is_added_and_removed_by_patches() {
    let api = Arc::new(api_for_default());
    let sources = DataSources::new(DataSourceConfig::default(), api.clone(), api.clone());
    sources.add_finalizer(&snapshot_reference()).await.unwrap();
    let patches = api.patches.lock().unwrap().clone();
    assert_eq!(
        patches,
        [(
            "default".to_string(),
            SNAP_NAME.to_string(),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [SNAPSHOT_SOURCE_FINALIZER]},
            ])
        )]
    );

    // Forbidden: provisioning goes on without protection; other errors fail it.
    let mut forbidden = api_for_default();
    forbidden.patch_error = Some(ApiError::forbidden(
        "volumesnapshots.snapshot.storage.k8s.io",
        SNAP_NAME,
        "no",
    ));
    let forbidden = Arc::new(forbidden);
    let sources = DataSources::new(DataSourceConfig::default(), forbidden.clone(), forbidden);
    sources.add_finalizer(&snapshot_reference()).await.unwrap();
    let mut failing = api_for_default();
    failing.patch_error = Some(ApiError::other("connection refused"));
    let failing = Arc::new(failing);
    let sources = DataSources::new(DataSourceConfig::default(), failing.clone(), failing);
    assert_eq!(
        sources
            .add_finalizer(&snapshot_reference())
            .await
            .unwrap_err()
            .to_string(),
        "connection refused"
    );

    // Removal after a restore: only the finalizer's index is removed.
    let mut api = api_for_default();
    api.snapshot.as_mut().unwrap().metadata.finalizers =
        Some(vec!["other".into(), SNAPSHOT_SOURCE_FINALIZER.into()]);
    let api = Arc::new(api);
    let sources = DataSources::new(DataSourceConfig::default(), api.clone(), api.clone());
    let mut claim = claim(&case("x"));
    claim.metadata.namespace = Some("default".into());
    sources.remove_snapshot_finalizer(&claim).await.unwrap();
    assert_eq!(
        api.patches.lock().unwrap()[0].2,
        json!([
            {"op": "test", "path": "/metadata/finalizers/1", "value": SNAPSHOT_SOURCE_FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/1"},
        ])
    );
}

#[tokio::test]
async fn a_failed_finalizer_leaves_the_claim_unchanged() {
    let mut api = api_for_default();
    api.patch_error = Some(ApiError::conflict(
        "volumesnapshots.snapshot.storage.k8s.io",
        SNAP_NAME,
        "the object has been modified",
    ));
    let api = Arc::new(api);
    let sources = DataSources::new(
        DataSourceConfig {
            cross_namespace: false,
            prevent_volume_mode_conversion: true,
        },
        api.clone(),
        api,
    );
    let claim = claim(&case("x"));
    let class = StorageClass {
        provisioner: DRIVER.into(),
        ..Default::default()
    };
    let options = ProvisionOptions {
        claim: &claim,
        storage_class: &class,
        selected_node: "",
        volume_attributes_class: None,
        data_source: DataSourceObjects::Api(&sources),
        cluster: ClusterTopology::default(),
    };
    let driver = FakeDriver::default();
    let error = provision(
        &config(),
        &options,
        &driver,
        &Secrets::default(),
        &mut TopologyMemo::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, ProvisionError::SourceFinalizer(_)),
        "{error}"
    );
    assert_eq!(error.state(), ProvisioningState::NoChange);
    assert!(driver.created.lock().unwrap().is_empty());
}
