//! The snapshot's source: its PVC (and the PVC's `pvc-as-source-protection` finalizer while
//! snapshots of it are being taken), its PV, and with distributed snapshotting the node the
//! volume lives on; and whether a PVC is being restored from the snapshot.

use std::sync::Arc;

use csi_crd_types::snapshot::v1::VolumeSnapshot;
use csi_snapshot_utils as utils;
use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, PersistentVolume, PersistentVolumeClaim,
};
use tracing::{error, info, warn};

use super::{Result, SnapshotController, SyncError, name, namespace, uid};

const CLAIM_LISTER: &str = "persistentvolumeclaim";
/// How often a PVC finalizer change is tried on conflicts (client-go's `retry.DefaultRetry`).
const CONFLICT_RETRIES: usize = 5;

impl SnapshotController {
    /// The snapshot's source PVC, from the cache.
    pub(crate) fn claim_from_snapshot(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<Arc<PersistentVolumeClaim>> {
        let Some(pvc_name) = snapshot.spec.source.persistent_volume_claim_name.as_deref() else {
            return Err(SyncError::new(
                "the snapshot source PVC name is not specified",
            ));
        };
        if pvc_name.is_empty() {
            return Err(SyncError::new(format!(
                "the PVC name is not specified in snapshot {}",
                utils::snapshot_key(snapshot)
            )));
        }
        self.listers
            .pvc(namespace(&snapshot.metadata), pvc_name)
            .ok_or_else(|| {
                let err = csi_controller::ApiError::not_found(CLAIM_LISTER, pvc_name);
                SyncError::new(format!(
                    "failed to retrieve PVC {pvc_name} from the lister: {:?}",
                    err.message
                ))
            })
    }

    /// The snapshot's source PV: the PVC must be bound, and the PV bound to it.
    pub(crate) async fn volume_from_snapshot(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<PersistentVolume> {
        let pvc = self
            .claim_bound_afresh(self.claim_from_snapshot(snapshot)?)
            .await;
        if !claim_is_bound(&pvc) {
            return Err(SyncError::new(format!(
                "the PVC {} is not yet bound to a PV, will not attempt to take a snapshot",
                name(&pvc.metadata)
            )));
        }
        let pv_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        let pv = self.api.get_pv(&pv_name).await.map_err(|err| {
            SyncError::new(format!(
                "failed to retrieve PV {pv_name} from the API server: {:?}",
                err.message
            ))
        })?;
        if !volume_bound_to_claim(&pv, &pvc) {
            warn!(
                "binding between PV {pv_name} and PVC {} is broken",
                name(&pvc.metadata)
            );
            return Err(SyncError::new("claim in dataSource not bound or invalid"));
        }
        Ok(pv)
    }

    /// The claim itself when the cache has it bound; otherwise the claim as the API server
    /// has it now. A claim bound a moment ago may still be pending in the cache, and a snapshot
    /// of it must not fail (with a Warning Event) for that. Upstream reads only its lister and
    /// reports such a snapshot as failed until the next resync; one GET, only for claims the
    /// cache has unbound, avoids that. A failed GET leaves the cached claim.
    pub(crate) async fn claim_bound_afresh(
        &self,
        pvc: Arc<PersistentVolumeClaim>,
    ) -> Arc<PersistentVolumeClaim> {
        if claim_is_bound(&pvc) {
            return pvc;
        }
        match self
            .api
            .get_pvc(namespace(&pvc.metadata), name(&pvc.metadata))
            .await
        {
            Ok(fresh) => Arc::new(fresh),
            Err(err) => {
                info!(
                    "cannot read claim {}/{} afresh: {}",
                    namespace(&pvc.metadata),
                    name(&pvc.metadata),
                    err.message
                );
                pvc
            }
        }
    }

    /// The CSI driver of the snapshot's source PV.
    pub(crate) async fn pv_driver_from_snapshot(
        &self,
        snapshot: &VolumeSnapshot,
    ) -> Result<String> {
        let pv = self.volume_from_snapshot(snapshot).await?;
        match pv.spec.as_ref().and_then(|s| s.csi.as_ref()) {
            Some(csi) => Ok(csi.driver.clone()),
            None => Err(SyncError::new(format!(
                "snapshotting non-CSI volumes is not supported, snapshot:{}/{}",
                namespace(&snapshot.metadata),
                name(&snapshot.metadata)
            ))),
        }
    }

    /// Puts `pvc-as-source-protection` on the snapshot's source PVC (upstream's
    /// `ensurePVCFinalizer`); a PVC being deleted gets none, and that is an error.
    pub(crate) async fn ensure_pvc_finalizer(&self, snapshot: &VolumeSnapshot) -> Result<()> {
        if snapshot.spec.source.persistent_volume_claim_name.is_none() {
            return Ok(());
        }
        let pvc = match self.claim_from_snapshot(snapshot) {
            Ok(pvc) => pvc,
            Err(err) => {
                info!(
                    "cannot get claim from snapshot [{}]: [{err}] Claim may be deleted already.",
                    name(&snapshot.metadata)
                );
                return Err(SyncError::update(
                    name(&snapshot.metadata),
                    "cannot get claim from snapshot",
                ));
            }
        };
        let finalizers = pvc.metadata.finalizers.as_deref();
        if finalizers.is_some_and(|f| f.iter().any(|f| f == utils::PVC_FINALIZER)) {
            info!(
                "Protection finalizer already exists for persistent volume claim {}/{}",
                namespace(&pvc.metadata),
                name(&pvc.metadata)
            );
            return Ok(());
        }
        if pvc.metadata.deletion_timestamp.is_some() {
            error!(
                "cannot add finalizer on claim [{}/{}] for snapshot [{}/{}]: claim is being deleted",
                namespace(&pvc.metadata),
                name(&pvc.metadata),
                namespace(&snapshot.metadata),
                name(&snapshot.metadata)
            );
            return Err(SyncError::update(
                name(&pvc.metadata),
                "cannot add finalizer on claim because it is being deleted",
            ));
        }
        let mut clone = (*pvc).clone();
        clone
            .metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(utils::PVC_FINALIZER.to_string());
        let written = match self.api.update_pvc(&clone).await {
            Ok(_) => Ok(()),
            // The cached claim can be older than the server's (our own previous write of it
            // may not have reached the cache yet): add the finalizer to the claim read afresh,
            // as the removal does, instead of failing the sync with a Warning.
            Err(err) if err.is_conflict() => {
                self.change_fresh_claim(&pvc, |current| {
                    let finalizers = current.metadata.finalizers.get_or_insert_with(Vec::new);
                    if finalizers.iter().any(|f| f == utils::PVC_FINALIZER) {
                        return Ok(false);
                    }
                    if current.metadata.deletion_timestamp.is_some() {
                        return Err(SyncError::update(
                            name(&current.metadata),
                            "cannot add finalizer on claim because it is being deleted",
                        ));
                    }
                    finalizers.push(utils::PVC_FINALIZER.to_string());
                    Ok(true)
                })
                .await
            }
            Err(err) => Err(SyncError::update(name(&pvc.metadata), err)),
        };
        if let Err(err) = written {
            error!(
                "cannot add finalizer on claim [{}/{}] for snapshot [{}/{}]: [{err}]",
                namespace(&pvc.metadata),
                name(&pvc.metadata),
                namespace(&snapshot.metadata),
                name(&snapshot.metadata)
            );
            return Err(err);
        }
        info!(
            "Added protection finalizer to persistent volume claim {}/{}",
            namespace(&pvc.metadata),
            name(&pvc.metadata)
        );
        Ok(())
    }

    /// Removes `pvc-as-source-protection` from the PVC as the server has it.
    pub(crate) async fn remove_pvc_finalizer(&self, pvc: &PersistentVolumeClaim) -> Result<()> {
        self.change_fresh_claim(pvc, |current| {
            let finalizers = current.metadata.finalizers.take().unwrap_or_default();
            let finalizers = utils::remove_string(&finalizers, utils::PVC_FINALIZER);
            current.metadata.finalizers = (!finalizers.is_empty()).then_some(finalizers);
            Ok(true)
        })
        .await
    }

    /// Reads the claim afresh, applies `change` and writes it, again on conflicts (client-go's
    /// `RetryOnConflict` with `DefaultRetry`). `change` answers whether there is anything to
    /// write.
    async fn change_fresh_claim(
        &self,
        pvc: &PersistentVolumeClaim,
        change: impl Fn(&mut PersistentVolumeClaim) -> Result<bool>,
    ) -> Result<()> {
        let (ns, pvc_name) = (namespace(&pvc.metadata), name(&pvc.metadata));
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            let mut current = match self.api.get_pvc(ns, pvc_name).await {
                Ok(current) => current,
                Err(err) => return Err(SyncError::update(pvc_name, err)),
            };
            if !change(&mut current)? {
                return Ok(());
            }
            match self.api.update_pvc(&current).await {
                Ok(_) => return Ok(()),
                Err(err) if err.is_conflict() => last = Some(err),
                Err(err) => return Err(SyncError::update(pvc_name, err)),
            }
        }
        Err(SyncError::update(
            pvc_name,
            last.map(|e| e.message).unwrap_or_default(),
        ))
    }

    /// Whether a snapshot of the PVC (other than `snapshot` with `skip_current`) is still
    /// being taken (not ready).
    fn pvc_being_used(
        &self,
        pvc: &PersistentVolumeClaim,
        snapshot: &VolumeSnapshot,
        skip_current: bool,
    ) -> bool {
        for snap in self.listers.snapshots_in(namespace(&snapshot.metadata)) {
            if skip_current && name(&snap.metadata) == name(&snapshot.metadata) {
                continue;
            }
            let source = &snap.spec.source;
            if source.persistent_volume_claim_name.is_none()
                && source.volume_snapshot_content_name.is_some()
            {
                continue;
            }
            if source.persistent_volume_claim_name.as_deref() == Some(name(&pvc.metadata))
                && !utils::is_snapshot_ready(&snap)
            {
                info!(
                    "Keeping PVC {}/{}, it is used by snapshot {}/{}",
                    namespace(&pvc.metadata),
                    name(&pvc.metadata),
                    namespace(&snap.metadata),
                    name(&snap.metadata)
                );
                return true;
            }
        }
        false
    }

    /// Removes the PVC's finalizer once no snapshot of it is being taken any more (upstream's
    /// `checkandRemovePVCFinalizer`). A PVC that is gone needs nothing.
    pub(crate) async fn check_and_remove_pvc_finalizer(
        &self,
        snapshot: &VolumeSnapshot,
        skip_current: bool,
    ) -> Result<()> {
        if snapshot.spec.source.persistent_volume_claim_name.is_none() {
            return Ok(());
        }
        let pvc = match self.claim_from_snapshot(snapshot) {
            Ok(pvc) => pvc,
            Err(err) => {
                info!(
                    "cannot get claim from snapshot [{}]: [{err}] Claim may be deleted already. No need to remove finalizer on the claim.",
                    name(&snapshot.metadata)
                );
                return Ok(());
            }
        };
        let has = pvc
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == utils::PVC_FINALIZER);
        if has && !self.pvc_being_used(&pvc, snapshot, skip_current) {
            info!(
                "checkandRemovePVCFinalizer[{}]: Remove Finalizer for PVC {} as it is not used by snapshots in creation",
                name(&snapshot.metadata),
                name(&pvc.metadata)
            );
            self.remove_pvc_finalizer(&pvc).await?;
        }
        Ok(())
    }

    /// Whether a PVC of the snapshot's namespace is pending with the snapshot as its data
    /// source (being restored from it).
    pub(crate) fn volume_being_created_from_snapshot(&self, snapshot: &VolumeSnapshot) -> bool {
        for pvc in self.listers.pvcs_in(namespace(&snapshot.metadata)) {
            let Some(source) = pvc.spec.as_ref().and_then(|s| s.data_source.as_ref()) else {
                continue;
            };
            if source.name == name(&snapshot.metadata)
                && source.kind == "VolumeSnapshot"
                && source.api_group.as_deref() == Some("snapshot.storage.k8s.io")
                && pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
            {
                info!(
                    "isVolumeBeingCreatedFromSnapshot: volume {} is being created from snapshot {}",
                    name(&pvc.metadata),
                    source.name
                );
                return true;
            }
        }
        false
    }

    /// The node whose labels match the PV's required node affinity (distributed
    /// snapshotting); empty when the PV has none or no node matches.
    pub(crate) fn managed_by_node(&self, pv: &PersistentVolume) -> String {
        let Some(required) = pv
            .spec
            .as_ref()
            .and_then(|s| s.node_affinity.as_ref())
            .and_then(|a| a.required.as_ref())
        else {
            return String::new();
        };
        for node in self.listers.nodes() {
            if node_matches(&node, &required.node_selector_terms) {
                return name(&node.metadata).to_string();
            }
        }
        error!(
            "failed to find nodes that match the node affinity requirements for pv[{}]",
            name(&pv.metadata)
        );
        String::new()
    }
}

/// The PV's claim reference names the PVC (and its UID, when the reference has one).
pub(crate) fn volume_bound_to_claim(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(claim_ref) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    if claim_ref.name.as_deref() != Some(name(&pvc.metadata))
        || claim_ref.namespace.as_deref() != Some(namespace(&pvc.metadata))
    {
        return false;
    }
    let ref_uid = claim_ref.uid.as_deref().unwrap_or_default();
    ref_uid.is_empty() || ref_uid == uid(&pvc.metadata)
}

/// component-helpers' `MatchNodeSelectorTerms`: some term whose expressions (on the labels)
/// and fields (`metadata.name`) all match; a term with neither matches nothing.
fn node_matches(node: &Node, terms: &[k8s_openapi::api::core::v1::NodeSelectorTerm]) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let node_name = name(&node.metadata).to_string();
    terms.iter().any(|term| {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if expressions.is_empty() && fields.is_empty() {
            return false;
        }
        expressions
            .iter()
            .all(|r| requirement_matches(r, labels.get(&r.key)))
            && fields
                .iter()
                .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(&node_name)))
    })
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => !value.is_some_and(|v| values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(value), [bound]) = (value, values) else {
                return false;
            };
            match (value.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) => {
                    if op == "Gt" {
                        v > b
                    } else {
                        v < b
                    }
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether the claim's phase is `Bound`.
pub(crate) fn claim_is_bound(pvc: &PersistentVolumeClaim) -> bool {
    pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}
