//! Provisioning one claim: from a PVC and its StorageClass to a `CreateVolume` request, and from
//! the driver's answer to the PersistentVolume, exactly as upstream writes it (the
//! provisioner's `Provision` plus what sig-storage-lib-external-provisioner adds before saving:
//! claimRef, the HonorPVReclaimPolicy finalizer, `pv.kubernetes.io/provisioned-by`,
//! `storageClassName`), and the provisioning state each failure leaves the claim in.
//!
//! Takes every object as an argument: reading the StorageClass, the VolumeAttributesClass,
//! the data source and the CSINodes/Nodes, saving the PV, Events and requeueing are the
//! controller loop's. Secrets are read through [`SecretGetter`], the driver is a
//! [`VolumeDriver`].

use std::collections::BTreeMap;
use std::time::Duration;

use csi_controller::secrets::{
    GetSecretError, SecretReferenceError, secret_data, secret_reference,
};
use csi_controller::{ApiError, SecretGetter, SecretKind};
use csi_proto::csi::v1::{
    CapacityRange, CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest,
    VolumeContentSource, volume_capability::access_mode::Mode,
};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec, SecretReference,
};
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttributesClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tonic::Code;
use tracing::{debug, warn};

use crate::csi::{CsiError, VolumeDriver};
use crate::data_source::{DataSourceRef, DataSources, ReferenceError};
use crate::migration::Migration;
use crate::params::{self, ParamsError};
use crate::source::{SourceError, clone_source};
use crate::topology::{
    AccessibilityRequest, ClusterTopology, TopologyError, TopologyMemo,
    generate_accessibility_requirements, volume_node_affinity,
};

/// `volume.kubernetes.io/storage-provisioner`: the provisioner a claim asks for.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// `volume.beta.kubernetes.io/storage-provisioner`: the older form.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// `pv.kubernetes.io/migrated-to`: the CSI driver an in-tree claim was migrated to.
pub const ANN_MIGRATED_TO: &str = "pv.kubernetes.io/migrated-to";
/// `volume.kubernetes.io/selected-node`: the node the scheduler chose (WaitForFirstConsumer).
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// `volume.beta.kubernetes.io/storage-class`: the claim's class in its legacy form.
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// `pv.kubernetes.io/provisioned-by`: the provisioner that made a PV.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The name of the secret `DeleteVolume` needs (empty when none).
pub const ANN_DELETION_SECRET_NAME: &str = "volume.kubernetes.io/provisioner-deletion-secret-name";
/// The namespace of the secret `DeleteVolume` needs (empty when none).
pub const ANN_DELETION_SECRET_NAMESPACE: &str =
    "volume.kubernetes.io/provisioner-deletion-secret-namespace";
/// The name of the secret `ControllerModifyVolume` needs (only when there is one).
pub const ANN_MODIFY_SECRET_NAME: &str = "volume.kubernetes.io/controller-modify-secret-name";
/// The namespace of the secret `ControllerModifyVolume` needs (only when there is one).
pub const ANN_MODIFY_SECRET_NAMESPACE: &str =
    "volume.kubernetes.io/controller-modify-secret-namespace";
/// The volume attribute naming the provisioner instance that created the volume.
pub const PROVISIONER_IDENTITY_KEY: &str = "storage.kubernetes.io/csiProvisionerIdentity";
/// The HonorPVReclaimPolicy finalizer, on every PV this provisioner creates.
pub const PV_FINALIZER: &str = "external-provisioner.volume.kubernetes.io/finalizer";
/// The API group of VolumeSnapshots as a data source.
pub const SNAPSHOT_API_GROUP: &str = "snapshot.storage.k8s.io";

/// How many times a volume the provisioner must give up on is deleted before it reports the
/// volume as orphaned.
pub const DELETE_VOLUME_RETRY_COUNT: usize = 5;

/// Where a claim stands after a provisioning attempt (the library's `ProvisioningState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProvisioningState {
    /// The attempt is over, with a PV or an error that leaves nothing in the driver.
    Finished,
    /// A `CreateVolume` may still be running in the driver: the claim must be retried even if
    /// it is deleted meanwhile, so that the volume is found and deleted, never leaked.
    InBackground,
    /// Nothing happened in the driver; retry as usual.
    NoChange,
    /// The selected node cannot get the volume: remove `volume.kubernetes.io/selected-node` so
    /// that the scheduler picks again.
    Reschedule,
}

impl ProvisioningState {
    /// The library's spelling (`Finished`, `InBackground`, `NoChange`, `Reschedule`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisioningState::Finished => "Finished",
            ProvisioningState::InBackground => "InBackground",
            ProvisioningState::NoChange => "NoChange",
            ProvisioningState::Reschedule => "Reschedule",
        }
    }
}

/// The state a failed `CreateVolume` leaves (upstream's `checkError`): Canceled,
/// DeadlineExceeded, Unavailable, Aborted and errors without a gRPC code may still be running
/// → InBackground; ResourceExhausted → Reschedule when `may_reschedule` (the driver has
/// topology and a node was selected), else Finished; every other code → Finished.
pub fn state_of_create_error(error: &CsiError, may_reschedule: bool) -> ProvisioningState {
    match error.code() {
        None => ProvisioningState::InBackground,
        Some(Code::ResourceExhausted) if may_reschedule => ProvisioningState::Reschedule,
        Some(Code::Cancelled | Code::DeadlineExceeded | Code::Unavailable | Code::Aborted) => {
            ProvisioningState::InBackground
        }
        Some(_) => ProvisioningState::Finished,
    }
}

/// The driver capabilities provisioning looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverCapabilities {
    /// Plugin `CONTROLLER_SERVICE`.
    pub controller_service: bool,
    /// Controller `CREATE_DELETE_VOLUME`.
    pub create_delete_volume: bool,
    /// Controller `SINGLE_NODE_MULTI_WRITER`.
    pub single_node_multi_writer: bool,
    /// Controller `CREATE_DELETE_SNAPSHOT`.
    pub create_delete_snapshot: bool,
    /// Controller `CLONE_VOLUME`.
    pub clone_volume: bool,
    /// Controller `MODIFY_VOLUME`.
    pub modify_volume: bool,
    /// Plugin `VOLUME_ACCESSIBILITY_CONSTRAINTS` with the `Topology` gate on (upstream's
    /// `SupportsTopology`).
    pub topology: bool,
}

/// The provisioner's settings (its flags and identity).
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// The driver's name: the provisioner name claims must ask for.
    pub driver_name: String,
    /// This instance's identity (`storage.kubernetes.io/csiProvisionerIdentity`).
    pub identity: String,
    /// `--volume-name-prefix`.
    pub volume_name_prefix: String,
    /// `--volume-name-uuid-length` (-1: the whole UID).
    pub volume_name_uuid_length: i32,
    /// `--timeout` of each CSI call.
    pub timeout: Duration,
    /// `--strict-topology`.
    pub strict_topology: bool,
    /// `--immediate-topology`.
    pub immediate_topology: bool,
    /// `--extra-create-metadata`.
    pub extra_create_metadata: bool,
    /// `--default-fstype`.
    pub default_fs_type: String,
    /// `--controller-publish-readonly`.
    pub controller_publish_readonly: bool,
    /// The `VolumeAttributesClass` gate.
    pub volume_attributes_class: bool,
    /// The driver's capabilities.
    pub capabilities: DriverCapabilities,
    /// `--node-deployment`: this node's name and accessible topology (from `NodeGetInfo`).
    pub node_deployment: Option<NodeDeployment>,
    /// CSI migration: the in-tree plugin the driver replaced, when it replaced one.
    pub migration: Option<Migration>,
}

impl ProvisionerConfig {
    /// The library's `knownProvisioner`: the driver, or the in-tree plugin it replaced
    /// (`AdditionalProvisionerNames`).
    pub fn known_provisioner(&self, name: &str) -> bool {
        name == self.driver_name
            || self
                .migration
                .as_ref()
                .is_some_and(|m| m.in_tree_plugin_name == name)
    }
}

/// The node a `--node-deployment` provisioner runs on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeDeployment {
    /// `NODE_NAME`.
    pub node_name: String,
    /// The node's accessible topology from `NodeGetInfo`, if it reported one.
    pub accessible_topology: Option<csi_proto::csi::v1::Topology>,
}

/// One claim to provision, with what the controller loop read for it.
#[derive(Debug, Clone, Copy)]
pub struct ProvisionOptions<'a> {
    /// The claim.
    pub claim: &'a PersistentVolumeClaim,
    /// Its StorageClass.
    pub storage_class: &'a StorageClass,
    /// `volume.kubernetes.io/selected-node`, empty for Immediate binding.
    pub selected_node: &'a str,
    /// The claim's VolumeAttributesClass, when it names one and it exists.
    pub volume_attributes_class: Option<&'a VolumeAttributesClass>,
    /// The objects the claim's data source refers to, as the controller loop read them.
    pub data_source: DataSourceObjects<'a>,
    /// The CSINodes and Nodes, for topology.
    pub cluster: ClusterTopology<'a>,
}

/// The objects behind a claim's data source.
#[derive(Debug, Clone, Copy, Default)]
pub enum DataSourceObjects<'a> {
    /// The claim has no data source (or the caller read nothing).
    #[default]
    None,
    /// A PersistentVolumeClaim data source: the source PVC and the PV it is bound to (`None`
    /// when not found).
    Clone {
        /// The source PVC.
        pvc: Option<&'a PersistentVolumeClaim>,
        /// The PV named by the source PVC's `spec.volumeName`.
        pv: Option<&'a PersistentVolume>,
    },
    /// A VolumeSnapshot data source: the content source the caller resolved, if it could.
    Snapshot(Option<&'a VolumeContentSource>),
    /// Read every data source from Kubernetes, with cross-namespace sources and the source
    /// finalizers, each step where upstream does it (what the controller loop passes).
    Api(&'a DataSources),
}

/// Why a claim was not provisioned. The messages are upstream's; [`ProvisionError::state`]
/// says what the failure leaves.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProvisionError {
    /// The claim is for another provisioner (nothing to do, not an error for the claim).
    #[error(
        "PVC annotated with external-provisioner name {provisioner} does not match provisioner driver name {driver}. This could mean the PVC is not migrated"
    )]
    NotOurs {
        /// The provisioner the claim asks for.
        provisioner: String,
        /// Ours.
        driver: String,
    },
    /// `--node-deployment`: the claim is not (or not yet) this node's (nothing to do here, not
    /// an error for the claim; state NoChange, so nothing else is refreshed).
    #[error(
        "not responsible for provisioning of PVC {claim} because it is not assigned to node {node:?}"
    )]
    NotResponsible {
        /// `namespace/name`.
        claim: String,
        /// This node.
        node: String,
    },
    /// The data source names no object.
    #[error("the PVC source not found for PVC {0}")]
    DataSourceWithoutName(String),
    /// The data source may not be used: a cross-namespace `dataSourceRef` without the
    /// `CrossNamespaceVolumeDataSource` gate or without a ReferenceGrant that allows it.
    #[error(transparent)]
    DataSourceReference(ReferenceError),
    /// A VolumeSnapshot data source from another API group.
    #[error(
        "the PVC source does not belong to the right APIGroup. Expected snapshot.storage.k8s.io, Got {0}"
    )]
    DataSourceApiGroup(String),
    /// A data source the provisioner does not handle: an external populator's (not an error
    /// for the claim; upstream records a Normal `Provisioning` Event "Assuming an external
    /// populator will provision the volume").
    #[error(
        "data source ({0}) is not handled by the provisioner, assuming an external populator will provision it"
    )]
    ExternalPopulator(String),
    /// The driver lacks a capability the claim needs.
    #[error("{0}")]
    MissingCapability(&'static str),
    /// The claim has a label selector.
    #[error("claim Selector is not supported")]
    Selector,
    /// A parameter or claim field is wrong.
    #[error(transparent)]
    Params(ParamsError),
    /// The selected node's CSINode is missing: reschedule.
    #[error(transparent)]
    TopologyNotFound(TopologyError),
    /// Any other topology failure.
    #[error("error generating accessibility requirements: {0}")]
    Topology(TopologyError),
    /// A secret parameter is wrong.
    #[error(transparent)]
    SecretReference(SecretReferenceError),
    /// The provisioner secret could not be read.
    #[error(transparent)]
    Credentials(GetSecretError),
    /// Stripping the parameters failed.
    #[error("failed to strip CSI Parameters of prefixed keys: {0}")]
    StripParameters(ParamsError),
    /// The data source cannot be used (state NoChange: the source may still become usable).
    #[error("error getting handle for DataSource Type {kind} by Name {name}: {error}")]
    ContentSource {
        /// The data source's kind.
        kind: String,
        /// Its name.
        name: String,
        /// What is wrong (boxed: snapshot errors are large).
        error: Box<SourceError>,
    },
    /// The finalizer that protects the source could not be added (state NoChange).
    #[error("{0}")]
    SourceFinalizer(ApiError),
    /// The claim's VolumeAttributesClass could not be read.
    #[error("{0}")]
    VolumeAttributesClass(ApiError),
    /// The claim's VolumeAttributesClass is another driver's.
    #[error(
        "VAC {name} referenced in PVC is for driver {vac_driver} which does not match driver name {driver}"
    )]
    VolumeAttributesClassDriver {
        /// The class.
        name: String,
        /// Its driver.
        vac_driver: String,
        /// Ours.
        driver: String,
    },
    /// CSI migration: the in-tree StorageClass could not be translated.
    #[error("failed to translate storage class: {0}")]
    TranslateStorageClass(csi_translation::Error),
    /// CSI migration: the provisioned CSI PV could not be written back in the in-tree form; the
    /// volume was deleted (or not: `cleanup`, and the claim keeps being retried).
    #[error("{error}")]
    TranslatePv {
        /// Why.
        error: csi_translation::Error,
        /// Why the volume could not be deleted.
        cleanup: Option<CsiError>,
    },
    /// `CreateVolume` failed.
    #[error("{error}")]
    CreateVolume {
        /// The driver's error.
        error: CsiError,
        /// What it leaves.
        state: ProvisioningState,
    },
    /// The driver made a smaller volume than asked; it was deleted (or not: `cleanup`).
    #[error("created volume capacity {got} less than requested capacity {requested}{}", orphaned(.volume, .cleanup, "Cleanup"))]
    CapacityTooSmall {
        /// The volume's capacity.
        got: i64,
        /// The request.
        requested: i64,
        /// The PV name.
        volume: String,
        /// Why the volume could not be deleted.
        cleanup: Option<CsiError>,
    },
    /// A volume from a data source came back without its content source; it was deleted (or
    /// not: `cleanup`).
    #[error("volume content source missing{}", orphaned(.volume, .cleanup, "cleanup"))]
    ContentSourceMissing {
        /// The PV name.
        volume: String,
        /// Why the volume could not be deleted.
        cleanup: Option<CsiError>,
    },
}

fn orphaned(volume: &str, cleanup: &Option<CsiError>, word: &str) -> String {
    match cleanup {
        Some(e) => format!(". {word} of volume {volume} failed, volume is orphaned: {e}"),
        None => String::new(),
    }
}

impl ProvisionError {
    /// The provisioning state this failure leaves.
    pub fn state(&self) -> ProvisioningState {
        use ProvisionError::*;
        match self {
            NotOurs { .. }
            | DataSourceWithoutName(_)
            | DataSourceReference(_)
            | DataSourceApiGroup(_)
            | ExternalPopulator(_)
            | MissingCapability(_)
            | Selector
            | Params(_)
            | StripParameters(_)
            | VolumeAttributesClassDriver { .. }
            | TranslateStorageClass(_)
            | TranslatePv { cleanup: None, .. } => ProvisioningState::Finished,
            TranslatePv {
                cleanup: Some(_), ..
            } => ProvisioningState::InBackground,
            TopologyNotFound(_) => ProvisioningState::Reschedule,
            NotResponsible { .. }
            | Topology(_)
            | SecretReference(_)
            | Credentials(_)
            | VolumeAttributesClass(_)
            | SourceFinalizer(_)
            | ContentSource { .. } => ProvisioningState::NoChange,
            CreateVolume { state, .. } => *state,
            CapacityTooSmall { .. } | ContentSourceMissing { .. } => {
                ProvisioningState::InBackground
            }
        }
    }

    /// Whether the claim is simply not ours to provision (upstream's `IgnoredError`): no
    /// `ProvisioningFailed` Event, no retry.
    pub fn is_ignored(&self) -> bool {
        matches!(
            self,
            ProvisionError::NotOurs { .. }
                | ProvisionError::NotResponsible { .. }
                | ProvisionError::ExternalPopulator(_)
        )
    }

    /// Whether the driver called the request infeasible (`InvalidArgument`): the library then
    /// waits `--retry-interval-max` before the next try, unless the StorageClass changes.
    pub fn is_infeasible(&self) -> bool {
        matches!(self, ProvisionError::CreateVolume { error, .. } if error.code() == Some(Code::InvalidArgument))
    }

    /// What the controller loop does with the claim after this failure (the library's
    /// `provisionClaimOperation` and `provisionVolumeErrorHandling`), given whether the claim
    /// has `volume.kubernetes.io/selected-node`.
    pub fn outcome(&self, has_selected_node: bool) -> FailureOutcome {
        if self.is_ignored() {
            return FailureOutcome::Ignore;
        }
        if self.is_infeasible() {
            return FailureOutcome::SlowRetry;
        }
        match self.state() {
            ProvisioningState::Reschedule if has_selected_node => FailureOutcome::Reschedule,
            ProvisioningState::Reschedule => FailureOutcome::Retry(ProvisioningState::Finished),
            state => FailureOutcome::Retry(state),
        }
    }
}

/// What happens to a claim after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Not ours: stop, no Event.
    Ignore,
    /// Infeasible: Warning `ProvisioningFailed` "Volume provisioning failed with infeasible
    /// error. Retries will be delayed. …", state Finished, next try after
    /// `--retry-interval-max` unless the StorageClass's UID changes.
    SlowRetry,
    /// Warning `ProvisioningFailed`, then remove `volume.kubernetes.io/selected-node` (a PVC
    /// Update) and stop; if that fails, retry as Finished.
    Reschedule,
    /// Warning `ProvisioningFailed` and retry with backoff, in this state (InBackground keeps
    /// the claim even after its PVC is deleted).
    Retry(ProvisioningState),
}

/// What [`prepare`] computed: the request and the parts of the PV known before `CreateVolume`.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The PV name (also the CSI volume name).
    pub pv_name: String,
    /// The filesystem type.
    pub fs_type: String,
    /// The `CreateVolume` request (secrets included: never log it unstripped).
    pub request: CreateVolumeRequest,
    /// The PV's CSI source without handle and attributes: driver and secret references.
    pub csi_source: CSIPersistentVolumeSource,
    /// The provisioner secret (for `DeleteVolume`), if any.
    pub deletion_secret: Option<SecretReference>,
    /// The controller-modify secret, if any.
    pub modify_secret: Option<SecretReference>,
    /// CSI migration: the StorageClass was the in-tree plugin's and was translated; the PV is
    /// written back in the in-tree form.
    pub migrated: bool,
}

fn annotation<'a>(claim: &'a PersistentVolumeClaim, key: &str) -> Option<&'a str> {
    claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The provisioner a claim asks for: `volume.kubernetes.io/storage-provisioner`, else the beta
/// annotation (empty when neither is set).
pub fn claim_provisioner(claim: &PersistentVolumeClaim) -> &str {
    annotation(claim, ANN_STORAGE_PROVISIONER)
        .or_else(|| annotation(claim, ANN_BETA_STORAGE_PROVISIONER))
        .unwrap_or_default()
}

/// Whether this provisioner handles `claim` at all (upstream's `ShouldProvision` without node
/// deployment): the claim asks for this driver, or was migrated to it
/// (`pv.kubernetes.io/migrated-to`). A claim that fails this is skipped without an Event.
pub fn should_provision(config: &ProvisionerConfig, claim: &PersistentVolumeClaim) -> bool {
    claim_provisioner(claim) == config.driver_name
        || annotation(claim, ANN_MIGRATED_TO) == Some(config.driver_name.as_str())
}

/// The claim's class: the beta annotation, else `spec.storageClassName`, else empty
/// (component-helpers' `GetPersistentVolumeClaimClass`).
pub fn claim_class(claim: &PersistentVolumeClaim) -> String {
    annotation(claim, ANN_BETA_STORAGE_CLASS)
        .map(str::to_string)
        .or_else(|| {
            claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone())
        })
        .unwrap_or_default()
}

/// The claim's data source, `dataSourceRef` first (as the API server mirrors them), in the
/// claim's namespace (cross-namespace sources need [`DataSourceObjects::Api`]).
fn data_source(claim: &PersistentVolumeClaim) -> Option<DataSourceRef> {
    let spec = claim.spec.as_ref()?;
    let (kind, name, api_group) = if let Some(r) = &spec.data_source_ref {
        (r.kind.clone(), r.name.clone(), r.api_group.clone())
    } else {
        let r = spec.data_source.as_ref()?;
        (r.kind.clone(), r.name.clone(), r.api_group.clone())
    };
    Some(DataSourceRef {
        kind,
        name,
        api_group: api_group.unwrap_or_default(),
        namespace: claim.metadata.namespace.clone().unwrap_or_default(),
    })
}

/// Everything before `CreateVolume` (upstream's `prepareProvision`), in upstream's order:
/// data source (with [`DataSourceObjects::Api`]: cross-namespace checks), its kind,
/// capabilities, selector, name, fsType, capabilities, content source, the source's
/// finalizer (with [`DataSourceObjects::Api`]: the only write), topology, secrets (the
/// provisioner secret is read), stripped parameters, `--extra-create-metadata`,
/// VolumeAttributesClass.
pub async fn prepare(
    config: &ProvisionerConfig,
    options: &ProvisionOptions<'_>,
    secrets: &dyn SecretGetter,
    memo: &mut TopologyMemo,
) -> Result<Prepared, ProvisionError> {
    let claim = options.claim;
    let caps = &config.capabilities;
    let claim_name = claim.metadata.name.clone().unwrap_or_default();
    let (class, migrated) = match config
        .migration
        .as_ref()
        .and_then(|m| m.translate_class(options.storage_class))
    {
        Some(translated) => {
            debug!(
                v = 2,
                "translating storage class for in-tree plugin {} to CSI",
                options.storage_class.provisioner
            );
            (
                std::borrow::Cow::Owned(translated.map_err(ProvisionError::TranslateStorageClass)?),
                true,
            )
        }
        None => (std::borrow::Cow::Borrowed(options.storage_class), false),
    };
    let class: &StorageClass = &class;

    let (mut needs_snapshot, mut needs_clone) = (false, false);
    let reference = match options.data_source {
        DataSourceObjects::Api(sources) => sources
            .reference(claim)
            .map_err(ProvisionError::DataSourceReference)?,
        _ => data_source(claim),
    };
    let source = reference
        .as_ref()
        .map(|r| (r.kind.clone(), r.name.clone(), r.api_group.clone()));
    if let Some((kind, name, group)) = source.clone() {
        if name.is_empty() {
            return Err(ProvisionError::DataSourceWithoutName(claim_name));
        }
        match kind.as_str() {
            "VolumeSnapshot" => {
                if group != SNAPSHOT_API_GROUP {
                    return Err(ProvisionError::DataSourceApiGroup(group));
                }
                needs_snapshot = true;
            }
            "PersistentVolumeClaim" => needs_clone = true,
            _ => return Err(ProvisionError::ExternalPopulator(kind)),
        }
    }
    let vac_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_attributes_class_name.clone())
        .filter(|n| config.volume_attributes_class && !n.is_empty());

    if !caps.controller_service {
        return Err(ProvisionError::MissingCapability(
            "CSI driver does not support dynamic provisioning: plugin CONTROLLER_SERVICE capability is not reported",
        ));
    }
    if !caps.create_delete_volume {
        return Err(ProvisionError::MissingCapability(
            "CSI driver does not support dynamic provisioning: controller CREATE_DELETE_VOLUME capability is not reported",
        ));
    }
    if needs_snapshot && !caps.create_delete_snapshot {
        return Err(ProvisionError::MissingCapability(
            "CSI driver does not support snapshot restore: controller CREATE_DELETE_SNAPSHOT capability is not reported",
        ));
    }
    if needs_clone && !caps.clone_volume {
        return Err(ProvisionError::MissingCapability(
            "CSI driver does not support clone operations: controller CLONE_VOLUME capability is not reported",
        ));
    }
    if vac_name.is_some() && !caps.modify_volume {
        return Err(ProvisionError::MissingCapability(
            "CSI driver does not support VolumeAttributesClass: controller MODIFY_VOLUME capability is not reported",
        ));
    }
    if claim.spec.as_ref().is_some_and(|s| s.selector.is_some()) {
        return Err(ProvisionError::Selector);
    }

    let pv_name = params::volume_name(
        &config.volume_name_prefix,
        claim.metadata.uid.as_deref().unwrap_or_default(),
        config.volume_name_uuid_length,
    )
    .map_err(ProvisionError::Params)?;
    let parameters = class.parameters.clone().unwrap_or_default();
    let fs_type =
        params::fs_type(&parameters, &config.default_fs_type).map_err(ProvisionError::Params)?;
    let mount_options = class.mount_options.clone().unwrap_or_default();
    let capabilities = params::volume_capabilities(
        claim,
        &mount_options,
        &fs_type,
        caps.single_node_multi_writer,
    )
    .map_err(ProvisionError::Params)?;

    let mut request = CreateVolumeRequest {
        name: pv_name.clone(),
        volume_capabilities: capabilities,
        capacity_range: Some(CapacityRange {
            required_bytes: params::requested_bytes(claim),
            limit_bytes: 0,
        }),
        ..Default::default()
    };

    if let Some((kind, name, _)) = source.filter(|_| needs_clone || needs_snapshot) {
        let content = match options.data_source {
            DataSourceObjects::Clone { pvc, pv } if needs_clone => {
                clone_source(claim, class, &name, pvc, pv)
            }
            DataSourceObjects::Snapshot(Some(content)) if needs_snapshot => Ok(content.clone()),
            DataSourceObjects::Api(sources) => match &reference {
                Some(reference) => sources
                    .content_source(claim, class, reference)
                    .await
                    .and_then(|c| c.ok_or(SourceError::NotResolved)),
                None => Err(SourceError::NotResolved),
            },
            _ => Err(SourceError::NotResolved),
        }
        .map_err(|error| ProvisionError::ContentSource {
            kind,
            name,
            error: Box::new(error),
        })?;
        request.volume_content_source = Some(content);
        if let (DataSourceObjects::Api(sources), Some(reference)) =
            (options.data_source, &reference)
        {
            sources
                .add_finalizer(reference)
                .await
                .map_err(ProvisionError::SourceFinalizer)?;
        }
    }

    if caps.topology {
        let allowed = class.allowed_topologies.clone().unwrap_or_default();
        let requirements = generate_accessibility_requirements(
            &AccessibilityRequest {
                driver_name: &config.driver_name,
                pvc_uid: claim.metadata.uid.as_deref().unwrap_or_default(),
                pvc_name: &claim_name,
                allowed_topologies: &allowed,
                selected_node: options.selected_node,
                strict_topology: config.strict_topology,
                immediate_topology: config.immediate_topology,
            },
            &options.cluster,
            memo,
        )
        .map_err(|e| {
            if e.is_not_found() {
                ProvisionError::TopologyNotFound(e)
            } else {
                ProvisionError::Topology(e)
            }
        })?;
        request.accessibility_requirements = requirements;
    }

    let reference = |kind: SecretKind| {
        secret_reference(&kind.params(), &parameters, &pv_name, Some(claim))
            .map_err(ProvisionError::SecretReference)
    };
    let provisioner_secret = reference(SecretKind::Provisioner)?;
    if let Some(secret) = &provisioner_secret {
        request.secrets = secret_data(secrets, secret)
            .await
            .map_err(ProvisionError::Credentials)?
            .into_map();
    }
    let csi_source = CSIPersistentVolumeSource {
        driver: config.driver_name.clone(),
        controller_publish_secret_ref: reference(SecretKind::ControllerPublish)?,
        node_stage_secret_ref: reference(SecretKind::NodeStage)?,
        node_publish_secret_ref: reference(SecretKind::NodePublish)?,
        controller_expand_secret_ref: reference(SecretKind::ControllerExpand)?,
        node_expand_secret_ref: reference(SecretKind::NodeExpand)?,
        ..Default::default()
    };
    let modify_secret = reference(SecretKind::ControllerModify)?;

    request.parameters =
        params::strip_prefixed_parameters(&parameters).map_err(ProvisionError::StripParameters)?;
    if config.extra_create_metadata {
        params::add_extra_create_metadata(&mut request.parameters, claim, &pv_name);
    }

    if let Some(vac_name) = vac_name {
        let vac = options.volume_attributes_class.ok_or_else(|| {
            ProvisionError::VolumeAttributesClass(ApiError::not_found(
                "volumeattributesclasses.storage.k8s.io",
                &vac_name,
            ))
        })?;
        if vac.driver_name != config.driver_name {
            return Err(ProvisionError::VolumeAttributesClassDriver {
                name: vac_name,
                vac_driver: vac.driver_name.clone(),
                driver: config.driver_name.clone(),
            });
        }
        request.mutable_parameters = vac
            .parameters
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
    }

    Ok(Prepared {
        pv_name,
        fs_type,
        request,
        csi_source,
        deletion_secret: provisioner_secret,
        modify_secret,
        migrated,
    })
}

/// Provisions `options.claim` (upstream's `Provision` and the library's completion of the PV):
/// checks the claim is for this driver, [`prepare`]s, calls `CreateVolume`, checks the answer
/// (a smaller volume, or a cloned/restored one without content source, is deleted again) and
/// returns the PV to save. The claim's topology memo is forgotten once the attempt is final.
pub async fn provision(
    config: &ProvisionerConfig,
    options: &ProvisionOptions<'_>,
    driver: &dyn VolumeDriver,
    secrets: &dyn SecretGetter,
    memo: &mut TopologyMemo,
) -> Result<PersistentVolume, ProvisionError> {
    let claim = options.claim;
    if !should_provision(config, claim) {
        return Err(ProvisionError::NotOurs {
            provisioner: claim_provisioner(claim).to_string(),
            driver: config.driver_name.clone(),
        });
    }
    let uid = claim.metadata.uid.clone().unwrap_or_default();

    let prepared = prepare(config, options, secrets, memo).await?;
    let requested = prepared
        .request
        .capacity_range
        .as_ref()
        .map(|c| c.required_bytes)
        .unwrap_or(0);

    // The metrics' `migrated` label: only CreateVolume is marked, as upstream (a clean-up
    // DeleteVolume after a failure counts as not migrated).
    let create = driver.create_volume(prepared.request.clone(), config.timeout);
    let response = match csi_connection::mark_as_migrated(prepared.migrated, create).await {
        Ok(response) => response,
        Err(error) => {
            let may_reschedule = config.capabilities.topology && !options.selected_node.is_empty();
            let state = state_of_create_error(&error, may_reschedule);
            debug!(
                "CreateVolume failed, supports topology = {}, node selected {} => may reschedule = {may_reschedule} => state = {}: {error}",
                config.capabilities.topology,
                options.selected_node,
                state.as_str()
            );
            if config.capabilities.topology
                && matches!(
                    state,
                    ProvisioningState::Finished | ProvisioningState::Reschedule
                )
            {
                memo.forget(&uid);
            }
            return Err(ProvisionError::CreateVolume { error, state });
        }
    };

    let volume = response.volume.clone().unwrap_or_default();
    let mut capacity = volume.capacity_bytes;
    if capacity == 0 {
        capacity = requested;
    } else if capacity < requested {
        let cleanup = cleanup_volume(config, driver, &volume.volume_id, &prepared).await;
        return Err(ProvisionError::CapacityTooSmall {
            got: capacity,
            requested,
            volume: prepared.pv_name,
            cleanup,
        });
    }
    let spec = claim.spec.as_ref();
    if spec.is_some_and(|s| s.data_source.is_some()) && volume.content_source.is_none() {
        let cleanup = cleanup_volume(config, driver, &volume.volume_id, &prepared).await;
        return Err(ProvisionError::ContentSourceMissing {
            volume: prepared.pv_name,
            cleanup,
        });
    }

    let migrated = prepared.migrated;
    let cleanup_request = DeleteVolumeRequest {
        volume_id: volume.volume_id.clone(),
        secrets: prepared.request.secrets.clone(),
    };
    let mut pv = build_pv(config, options, prepared, &response, capacity);
    if migrated && let Some(migration) = &config.migration {
        pv = match migration.translator.translate_csi_pv_to_in_tree(&pv) {
            Ok(pv) => pv,
            Err(error) => {
                warn!(
                    "failed to translate CSI PV to in-tree due to: {error}. Deleting provisioned PV"
                );
                let cleanup = driver
                    .delete_volume(cleanup_request, config.timeout)
                    .await
                    .err();
                if let Some(e) = &cleanup {
                    warn!("failed to delete partly provisioned PV: {e}");
                }
                return Err(ProvisionError::TranslatePv { error, cleanup });
            }
        };
    }
    if config.capabilities.topology {
        memo.forget(&uid);
    }
    if let DataSourceObjects::Api(sources) = options.data_source
        && let Err(error) = sources.remove_snapshot_finalizer(claim).await
    {
        // The sweep controller removes it later.
        let source = claim.spec.as_ref().and_then(|s| s.data_source.as_ref());
        warn!(
            "Failed to remove snapshot finalizer from {}/{}: {error}",
            claim.metadata.namespace.as_deref().unwrap_or_default(),
            source.map(|s| s.name.as_str()).unwrap_or_default()
        );
    }
    Ok(pv)
}

async fn cleanup_volume(
    config: &ProvisionerConfig,
    driver: &dyn VolumeDriver,
    volume_id: &str,
    prepared: &Prepared,
) -> Option<CsiError> {
    let request = DeleteVolumeRequest {
        volume_id: volume_id.to_string(),
        secrets: prepared.request.secrets.clone(),
    };
    let mut last = None;
    for _ in 0..DELETE_VOLUME_RETRY_COUNT {
        match driver.delete_volume(request.clone(), config.timeout).await {
            Ok(()) => return None,
            Err(e) => {
                warn!("Cleanup of volume {volume_id} failed: {e}");
                last = Some(e);
            }
        }
    }
    last
}

/// The claim reference of a PV (client-go's `ref.GetReference` of the claim).
pub fn claim_ref(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: claim.metadata.name.clone(),
        namespace: claim.metadata.namespace.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The PV for a created volume, as upstream writes it before saving: name, annotations
/// (deletion secret always, modify secret when there is one, `pv.kubernetes.io/provisioned-by`),
/// the finalizer, access modes, mount options, capacity (`capacity` bytes), the CSI source
/// (handle, fsType unless Block, attributes with the provisioner identity, secret
/// references, read-only for a single ReadOnlyMany capability with
/// `--controller-publish-readonly`), reclaim policy, node affinity (with topology), volume
/// mode, VolumeAttributesClass name, claimRef and storageClassName.
pub fn build_pv(
    config: &ProvisionerConfig,
    options: &ProvisionOptions<'_>,
    prepared: Prepared,
    response: &CreateVolumeResponse,
    capacity: i64,
) -> PersistentVolume {
    let claim = options.claim;
    let class = options.storage_class;
    let volume = response.volume.clone().unwrap_or_default();
    let spec = claim.spec.clone().unwrap_or_default();

    let mut attributes = BTreeMap::from([(
        PROVISIONER_IDENTITY_KEY.to_string(),
        config.identity.clone(),
    )]);
    attributes.extend(volume.volume_context.clone());

    let capabilities = &prepared.request.volume_capabilities;
    let read_only = config.controller_publish_readonly
        && capabilities.len() == 1
        && capabilities[0].access_mode.as_ref().map(|m| m.mode)
            == Some(Mode::MultiNodeReaderOnly as i32);

    let block = params::is_block(claim);
    let mut csi = prepared.csi_source;
    csi.volume_handle = volume.volume_id.clone();
    csi.volume_attributes = Some(attributes);
    csi.read_only = read_only.then_some(true);
    if !block {
        csi.fs_type = non_empty(&prepared.fs_type);
    }

    let (deletion_name, deletion_namespace) = match &prepared.deletion_secret {
        Some(r) => (
            r.name.clone().unwrap_or_default(),
            r.namespace.clone().unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    let mut annotations = BTreeMap::from([
        (ANN_DELETION_SECRET_NAME.to_string(), deletion_name),
        (
            ANN_DELETION_SECRET_NAMESPACE.to_string(),
            deletion_namespace,
        ),
    ]);
    if let Some(r) = &prepared.modify_secret {
        annotations.insert(
            ANN_MODIFY_SECRET_NAME.to_string(),
            r.name.clone().unwrap_or_default(),
        );
        annotations.insert(
            ANN_MODIFY_SECRET_NAMESPACE.to_string(),
            r.namespace.clone().unwrap_or_default(),
        );
    }
    annotations.insert(ANN_PROVISIONED_BY.to_string(), class.provisioner.clone());

    let vac_name = spec
        .volume_attributes_class_name
        .clone()
        .filter(|n| config.volume_attributes_class && !n.is_empty());
    let class_name = claim_class(claim);

    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(prepared.pv_name),
            annotations: Some(annotations),
            finalizers: Some(vec![PV_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            mount_options: class.mount_options.clone(),
            capacity: Some(BTreeMap::from([(
                "storage".to_string(),
                params::bytes_to_quantity(capacity),
            )])),
            csi: Some(csi),
            persistent_volume_reclaim_policy: class.reclaim_policy.clone(),
            node_affinity: if config.capabilities.topology {
                volume_node_affinity(&volume.accessible_topology)
            } else {
                None
            },
            volume_mode: spec.volume_mode.clone(),
            volume_attributes_class_name: vac_name,
            claim_ref: Some(claim_ref(claim)),
            storage_class_name: non_empty(&class_name),
            ..Default::default()
        }),
        status: None,
    }
}
