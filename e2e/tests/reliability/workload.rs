//! The mixed workload of a round: `count` claims provisioned, each attached to a pod on one of
//! the two nodes, snapshotted and expanded from 1Gi to 2Gi, then pods, snapshots and claims
//! deleted until nothing of the round is left. Each phase has a `start_*` that only asks
//! (creates, patches, deletes) and a `wait_*` that waits until it is done, so a scenario can
//! inject a fault between them, while the work is in flight.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use csi_e2e_support::{create_pod_on_node, force_delete_pod, ignore_not_found, wait_until};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Rig, snapshot_resource};

/// How long one phase may take (after a fault: a takeover, a restart, a relist).
pub const PHASE: Duration = Duration::from_secs(180);

/// One round of the workload in `rig`'s namespace; object names carry the round's tag.
pub struct Round {
    pub tag: String,
    pub claims: Vec<String>,
}

impl Round {
    pub fn new(tag: &str, count: usize) -> Round {
        Round {
            tag: tag.to_string(),
            claims: (0..count).map(|i| format!("{tag}-c{i}")).collect(),
        }
    }

    fn claims_api(rig: &Rig) -> Api<PersistentVolumeClaim> {
        Api::namespaced(rig.admin().clone(), rig.ns())
    }

    fn snapshots_api(rig: &Rig) -> Api<DynamicObject> {
        Api::namespaced_with(
            rig.admin().clone(),
            rig.ns(),
            &snapshot_resource("VolumeSnapshot", "volumesnapshots"),
        )
    }

    fn pod(claim: &str) -> String {
        format!("pod-{claim}")
    }

    fn snapshot(claim: &str) -> String {
        format!("snap-{claim}")
    }

    /// Creates the claims.
    pub async fn start_provision(&self, rig: &Rig) -> anyhow::Result<()> {
        for claim in &self.claims {
            rig.fixture.claim(claim, &rig.class, json!({})).await?;
        }
        Ok(())
    }

    /// Waits until every claim is Bound.
    pub async fn wait_provisioned(&self, rig: &Rig) -> anyhow::Result<()> {
        self.wait(
            rig,
            "every claim of the round to be Bound",
            |claims, _, _, _| {
                claims
                    .iter()
                    .all(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
            },
        )
        .await
    }

    /// Starts a pod on a node for each claim (the attach/detach controller then asks for a
    /// VolumeAttachment), a VolumeSnapshot of each, and an expansion of each to 2Gi.
    pub async fn start_use(&self, rig: &Rig) -> anyhow::Result<()> {
        let admin = rig.admin();
        for (i, claim) in self.claims.iter().enumerate() {
            let node = &rig.nodes[i % rig.nodes.len()];
            create_pod_on_node(admin, rig.ns(), &Self::pod(claim), node, claim).await?;
            let snapshot: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshot",
                "metadata": {"name": Self::snapshot(claim), "namespace": rig.ns()},
                "spec": {
                    "volumeSnapshotClassName": rig.snapshot_class,
                    "source": {"persistentVolumeClaimName": claim},
                },
            }))?;
            Self::snapshots_api(rig)
                .create(&PostParams::default(), &snapshot)
                .await
                .with_context(|| format!("creating VolumeSnapshot of {claim}"))?;
            let grow = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}});
            Self::claims_api(rig)
                .patch(claim, &PatchParams::default(), &Patch::Merge(&grow))
                .await
                .with_context(|| format!("expanding {claim}"))?;
        }
        Ok(())
    }

    /// Waits until every claim's volume is attached, snapshotted (ready to use) and 2Gi.
    pub async fn wait_used(&self, rig: &Rig) -> anyhow::Result<()> {
        let snapshots = Self::snapshots_api(rig);
        let wanted: BTreeSet<String> = self.claims.iter().map(|c| Self::snapshot(c)).collect();
        self.wait(
            rig,
            "every volume of the round attached, snapshotted and expanded to 2Gi",
            |claims, pvs, attachments, _| {
                claims.iter().all(|c| {
                    let expanded = c
                        .status
                        .as_ref()
                        .and_then(|s| s.capacity.as_ref())
                        .and_then(|c| c.get("storage"))
                        .is_some_and(|q| q.0 == "2Gi");
                    let pv = c.spec.as_ref().and_then(|s| s.volume_name.clone());
                    let attached = pvs.iter().any(|p| p.metadata.name == pv)
                        && attachments.iter().any(|va| {
                            va.spec.source.persistent_volume_name == pv
                                && va.status.as_ref().is_some_and(|s| s.attached)
                        });
                    expanded && attached
                })
            },
        )
        .await?;
        wait_until(
            "every VolumeSnapshot of the round to be ready to use",
            PHASE,
            || async {
                let list = snapshots.list(&ListParams::default()).await.ok()?;
                let ready: BTreeSet<String> = list
                    .items
                    .iter()
                    .filter(|s| s.data["status"]["readyToUse"] == json!(true))
                    .filter_map(|s| s.metadata.name.clone())
                    .collect();
                wanted.is_subset(&ready).then_some(())
            },
            || rig.diagnostics(),
        )
        .await
    }

    /// Deletes the pods, the snapshots and the claims.
    pub async fn start_teardown(&self, rig: &Rig) -> anyhow::Result<()> {
        for claim in &self.claims {
            force_delete_pod(rig.admin(), rig.ns(), &Self::pod(claim)).await?;
            ignore_not_found(
                Self::snapshots_api(rig)
                    .delete(&Self::snapshot(claim), &DeleteParams::default())
                    .await,
            )?;
            ignore_not_found(
                Self::claims_api(rig)
                    .delete(claim, &DeleteParams::default())
                    .await,
            )?;
        }
        Ok(())
    }

    /// Waits until no claim, PV, VolumeAttachment or VolumeSnapshot of the round is left.
    pub async fn wait_gone(&self, rig: &Rig) -> anyhow::Result<()> {
        self.wait(
            rig,
            "nothing of the round to be left",
            |claims, pvs, attachments, snapshots| {
                claims.is_empty() && pvs.is_empty() && attachments.is_empty() && snapshots == 0
            },
        )
        .await
    }

    /// How far the round got, for a fault's line in the report: claims Bound, volumes
    /// attached, snapshots ready, claims expanded.
    pub async fn progress(&self, rig: &Rig) -> String {
        let lp = ListParams::default();
        let ours: BTreeSet<&str> = self.claims.iter().map(String::as_str).collect();
        let claims: Vec<PersistentVolumeClaim> = Self::claims_api(rig)
            .list(&lp)
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| ours.contains(c.metadata.name.as_deref().unwrap_or_default()))
            .collect();
        let bound = claims
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
            .count();
        let expanded = claims
            .iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.capacity.as_ref())
                    .and_then(|c| c.get("storage"))
                    .is_some_and(|q| q.0 == "2Gi")
            })
            .count();
        let pvs: BTreeSet<String> = claims
            .iter()
            .filter_map(|c| c.spec.as_ref()?.volume_name.clone())
            .collect();
        let attached = Api::<VolumeAttachment>::all(rig.admin().clone())
            .list(&lp)
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .filter(|va| {
                va.spec
                    .source
                    .persistent_volume_name
                    .as_ref()
                    .is_some_and(|pv| pvs.contains(pv))
                    && va.status.as_ref().is_some_and(|s| s.attached)
            })
            .count();
        let ready = Self::snapshots_api(rig)
            .list(&lp)
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .filter(|s| s.data["status"]["readyToUse"] == json!(true))
            .count();
        format!(
            "{bound}/{n} claims Bound, {attached} attached, {ready} snapshots ready, {expanded} \
             expanded",
            n = self.claims.len()
        )
    }

    /// Polls the round's claims, their PVs, those PVs' VolumeAttachments and the round's
    /// snapshot count until `done`.
    async fn wait<F>(&self, rig: &Rig, what: &str, done: F) -> anyhow::Result<()>
    where
        F: Fn(&[PersistentVolumeClaim], &[PersistentVolume], &[VolumeAttachment], usize) -> bool,
    {
        let ours: BTreeSet<&str> = self.claims.iter().map(String::as_str).collect();
        let snapshot_names: BTreeSet<String> =
            self.claims.iter().map(|c| Self::snapshot(c)).collect();
        let ns = rig.ns().to_string();
        let driver = rig.fixture.driver_name().to_string();
        wait_until(
            what,
            PHASE,
            || async {
                let lp = ListParams::default();
                let claims: Vec<PersistentVolumeClaim> = Self::claims_api(rig)
                    .list(&lp)
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .filter(|c| ours.contains(c.metadata.name.as_deref().unwrap_or_default()))
                    .collect();
                let pvs: Vec<PersistentVolume> = Api::<PersistentVolume>::all(rig.admin().clone())
                    .list(&lp)
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .filter(|pv| {
                        pv.spec
                            .as_ref()
                            .and_then(|s| s.claim_ref.as_ref())
                            .is_some_and(|r| {
                                r.namespace.as_deref() == Some(ns.as_str())
                                    && ours.contains(r.name.as_deref().unwrap_or_default())
                            })
                    })
                    .collect();
                let pv_names: BTreeSet<String> =
                    pvs.iter().filter_map(|p| p.metadata.name.clone()).collect();
                let attachments: Vec<VolumeAttachment> =
                    Api::<VolumeAttachment>::all(rig.admin().clone())
                        .list(&lp)
                        .await
                        .ok()?
                        .items
                        .into_iter()
                        .filter(|va| {
                            va.spec.attacher == driver
                                && va
                                    .spec
                                    .source
                                    .persistent_volume_name
                                    .as_ref()
                                    .is_some_and(|pv| pv_names.contains(pv))
                        })
                        .collect();
                let snapshots = Self::snapshots_api(rig)
                    .list(&lp)
                    .await
                    .ok()?
                    .items
                    .iter()
                    .filter(|s| {
                        snapshot_names.contains(s.metadata.name.as_deref().unwrap_or_default())
                    })
                    .count();
                done(&claims, &pvs, &attachments, snapshots).then_some(())
            },
            || rig.diagnostics(),
        )
        .await
    }
}
