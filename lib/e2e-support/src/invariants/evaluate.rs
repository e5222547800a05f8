//! The checks of [`super::InvariantReport`] as pure functions of an [`Observed`] state.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::ObjectMeta;

use super::{
    ATTACHMENTS, CLAIMS, CREATED_ONCE, CheckResult, DRIVER_SNAPSHOTS, FINALIZERS,
    GROUP_SNAPSHOT_CONTENTS, InvariantReport, Observed, PVS_HAVE_VOLUMES, SNAPSHOT_CONTENTS,
    VOLUMES_HAVE_PVS,
};

/// Runs every check on `observed`.
pub fn evaluate(observed: &Observed) -> InvariantReport {
    let pvs: Vec<&PersistentVolume> = observed
        .pvs
        .iter()
        .filter(|pv| pv_driver(pv) == Some(observed.driver_name.as_str()))
        .collect();
    InvariantReport {
        checks: vec![
            claims(observed),
            volumes_have_pvs(observed, &pvs),
            pvs_have_volumes(observed, &pvs),
            attachments(observed, &pvs),
            snapshot_contents(observed),
            group_snapshot_contents(observed),
            driver_snapshots(observed),
            finalizers(observed, &pvs),
            created_once(observed, &pvs),
        ],
    }
}

fn name(meta: &ObjectMeta) -> String {
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

fn pv_driver(pv: &PersistentVolume) -> Option<&str> {
    Some(pv.spec.as_ref()?.csi.as_ref()?.driver.as_str())
}

fn pv_handle(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.as_str())
        .unwrap_or_default()
}

fn claims(observed: &Observed) -> CheckResult {
    let mut violations = Vec::new();
    for claim in &observed.claims {
        if claim.metadata.deletion_timestamp.is_some() {
            continue; // the finalizers check covers it
        }
        let phase = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or_default();
        if phase == "Bound" {
            continue;
        }
        let claim_name = claim.metadata.name.as_deref().unwrap_or_default();
        let claim_ns = claim.metadata.namespace.as_deref();
        let warned = observed.events.iter().any(|e| {
            e.involved_object.kind.as_deref() == Some("PersistentVolumeClaim")
                && e.involved_object.name.as_deref() == Some(claim_name)
                && e.involved_object.namespace.as_deref() == claim_ns
                && e.type_.as_deref() == Some("Warning")
        });
        if phase != "Pending" || !warned {
            violations.push(format!(
                "claim {} is {phase:?}{}",
                name(&claim.metadata),
                if warned {
                    ""
                } else {
                    " without a Warning Event"
                }
            ));
        }
    }
    CheckResult {
        name: CLAIMS,
        checked: observed.claims.len(),
        violations,
    }
}

fn volumes_have_pvs(observed: &Observed, pvs: &[&PersistentVolume]) -> CheckResult {
    let handles: BTreeSet<&str> = pvs.iter().map(|pv| pv_handle(pv)).collect();
    let violations = observed
        .driver_volumes
        .iter()
        .filter(|(id, _)| !handles.contains(id.as_str()))
        .map(|(id, name)| format!("volume {id} ({name}) in the driver has no PV"))
        .collect();
    CheckResult {
        name: VOLUMES_HAVE_PVS,
        checked: observed.driver_volumes.len(),
        violations,
    }
}

fn pvs_have_volumes(observed: &Observed, pvs: &[&PersistentVolume]) -> CheckResult {
    let in_driver: BTreeSet<&str> = observed
        .driver_volumes
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    let violations = pvs
        .iter()
        .filter(|pv| !in_driver.contains(pv_handle(pv)))
        .map(|pv| {
            format!(
                "PV {} has volume {:?}, which the driver does not have",
                name(&pv.metadata),
                pv_handle(pv)
            )
        })
        .collect();
    CheckResult {
        name: PVS_HAVE_VOLUMES,
        checked: pvs.len(),
        violations,
    }
}

/// Whether every access mode of the PV is a single-node one (unknown PVs count as such).
fn single_node(pv: Option<&&PersistentVolume>) -> bool {
    let modes = pv
        .and_then(|pv| pv.spec.as_ref())
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    modes
        .iter()
        .all(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod")
}

fn attachments(observed: &Observed, pvs: &[&PersistentVolume]) -> CheckResult {
    let ours: Vec<_> = observed
        .attachments
        .iter()
        .filter(|va| va.spec.attacher == observed.driver_name)
        .collect();
    let by_name: BTreeMap<String, &PersistentVolume> = pvs
        .iter()
        .map(|pv| (pv.metadata.name.clone().unwrap_or_default(), *pv))
        .collect();
    // PV → node → VolumeAttachment names; PV → nodes it is attached to.
    let mut objects: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut attached: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for va in &ours {
        let pv = va
            .spec
            .source
            .persistent_volume_name
            .clone()
            .unwrap_or_else(|| "(inline)".to_string());
        let node = va.spec.node_name.clone();
        objects
            .entry((pv.clone(), node.clone()))
            .or_default()
            .push(name(&va.metadata));
        if va.status.as_ref().is_some_and(|s| s.attached) {
            attached.entry(pv).or_default().insert(node);
        }
    }
    let mut violations: Vec<String> = objects
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|((pv, node), names)| {
            format!(
                "{} VolumeAttachments of {pv} on node {node}: {names:?}",
                names.len()
            )
        })
        .collect();
    for (pv, nodes) in &attached {
        if nodes.len() > 1 && single_node(by_name.get(pv)) {
            violations.push(format!(
                "single-node volume {pv} attached to {} nodes: {nodes:?}",
                nodes.len()
            ));
        }
    }
    CheckResult {
        name: ATTACHMENTS,
        checked: ours.len(),
        violations,
    }
}

/// A bound content as the leak checks see it: its name, deletion policy and the snapshot it is
/// bound to (namespace, name, UID).
struct Binding<'o> {
    content: String,
    deletion_policy: &'o str,
    namespace: String,
    name: String,
    uid: &'o str,
}

/// The Delete-policy contents (of `kind`) bound to a snapshot (of `snapshot_kind`) that is gone
/// or was replaced by one of the same name. `snapshots` are `((namespace, name), UID)` of the
/// namespaces observed; a content bound elsewhere cannot be told leaked.
fn leaked_contents<'o>(
    check: &'static str,
    (kind, snapshot_kind): (&str, &str),
    bindings: Vec<Binding<'o>>,
    snapshots: impl Iterator<Item = &'o ObjectMeta>,
    observed: &Observed,
) -> CheckResult {
    let snapshots: BTreeMap<(String, String), String> = snapshots
        .map(|meta| {
            (
                (
                    meta.namespace.clone().unwrap_or_default(),
                    meta.name.clone().unwrap_or_default(),
                ),
                meta.uid.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut namespaces: BTreeSet<&str> = observed
        .claims
        .iter()
        .filter_map(|c| c.metadata.namespace.as_deref())
        .collect();
    namespaces.extend(snapshots.keys().map(|(ns, _)| ns.as_str()));
    let mut violations = Vec::new();
    for b in &bindings {
        if b.deletion_policy != "Delete" || b.uid.is_empty() {
            continue; // kept on purpose, or pre-provisioned and never bound
        }
        // Only snapshots of the namespaces observed can be told missing.
        if !namespaces.is_empty() && !namespaces.contains(b.namespace.as_str()) {
            continue;
        }
        let key = (b.namespace.clone(), b.name.clone());
        match snapshots.get(&key) {
            Some(live) if live == b.uid => {}
            _ => violations.push(format!(
                "{kind} {} (Delete) outlives its {snapshot_kind} {}/{}",
                b.content, b.namespace, b.name
            )),
        }
    }
    CheckResult {
        name: check,
        checked: bindings.len(),
        violations,
    }
}

fn snapshot_contents(observed: &Observed) -> CheckResult {
    let bindings = observed
        .contents
        .iter()
        .filter(|c| c.spec.driver == observed.driver_name)
        .map(|c| {
            let reference = &c.spec.volume_snapshot_ref;
            Binding {
                content: name(&c.metadata),
                deletion_policy: &c.spec.deletion_policy,
                namespace: reference.namespace.clone().unwrap_or_default(),
                name: reference.name.clone().unwrap_or_default(),
                uid: reference.uid.as_deref().unwrap_or_default(),
            }
        })
        .collect();
    leaked_contents(
        SNAPSHOT_CONTENTS,
        ("VolumeSnapshotContent", "VolumeSnapshot"),
        bindings,
        observed.snapshots.iter().map(|s| &s.metadata),
        observed,
    )
}

fn group_snapshot_contents(observed: &Observed) -> CheckResult {
    let bindings = observed
        .group_contents
        .iter()
        .filter(|c| c.spec.driver == observed.driver_name)
        .map(|c| {
            let reference = &c.spec.volume_group_snapshot_ref;
            Binding {
                content: name(&c.metadata),
                deletion_policy: &c.spec.deletion_policy,
                namespace: reference.namespace.clone().unwrap_or_default(),
                name: reference.name.clone().unwrap_or_default(),
                uid: reference.uid.as_deref().unwrap_or_default(),
            }
        })
        .collect();
    leaked_contents(
        GROUP_SNAPSHOT_CONTENTS,
        ("VolumeGroupSnapshotContent", "VolumeGroupSnapshot"),
        bindings,
        observed.group_snapshots.iter().map(|s| &s.metadata),
        observed,
    )
}

fn driver_snapshots(observed: &Observed) -> CheckResult {
    let handles: BTreeSet<&str> = observed
        .contents
        .iter()
        .filter(|c| c.spec.driver == observed.driver_name)
        .flat_map(|c| {
            [
                c.status.as_ref().and_then(|s| s.snapshot_handle.as_deref()),
                c.spec.source.snapshot_handle.as_deref(),
            ]
        })
        .flatten()
        .collect();
    let violations = observed
        .driver_snapshots
        .iter()
        .filter(|id| !handles.contains(id.as_str()))
        .map(|id| format!("snapshot {id} in the driver has no VolumeSnapshotContent"))
        .collect();
    CheckResult {
        name: DRIVER_SNAPSHOTS,
        checked: observed.driver_snapshots.len(),
        violations,
    }
}

fn terminating(kind: &str, meta: &ObjectMeta) -> Option<String> {
    meta.deletion_timestamp.as_ref()?;
    Some(format!(
        "{kind} {} is still terminating with finalizers {:?}",
        name(meta),
        meta.finalizers.clone().unwrap_or_default()
    ))
}

fn finalizers(observed: &Observed, pvs: &[&PersistentVolume]) -> CheckResult {
    let driver = observed.driver_name.as_str();
    let mut metas: Vec<(&str, &ObjectMeta)> = Vec::new();
    metas.extend(observed.claims.iter().map(|c| ("claim", c.metadata())));
    metas.extend(pvs.iter().map(|pv| ("PV", pv.metadata())));
    metas.extend(
        observed
            .attachments
            .iter()
            .filter(|va| va.spec.attacher == driver)
            .map(|va| ("VolumeAttachment", va.metadata())),
    );
    metas.extend(
        observed
            .snapshots
            .iter()
            .map(|s| ("VolumeSnapshot", &s.metadata)),
    );
    metas.extend(
        observed
            .contents
            .iter()
            .filter(|c| c.spec.driver == driver)
            .map(|c| ("VolumeSnapshotContent", &c.metadata)),
    );
    metas.extend(
        observed
            .group_snapshots
            .iter()
            .map(|g| ("VolumeGroupSnapshot", &g.metadata)),
    );
    metas.extend(
        observed
            .group_contents
            .iter()
            .filter(|c| c.spec.driver == driver)
            .map(|c| ("VolumeGroupSnapshotContent", &c.metadata)),
    );
    CheckResult {
        name: FINALIZERS,
        checked: metas.len(),
        violations: metas
            .iter()
            .filter_map(|(kind, meta)| terminating(kind, meta))
            .collect(),
    }
}

fn created_once(observed: &Observed, pvs: &[&PersistentVolume]) -> CheckResult {
    // name → IDs answered, per create method.
    let mut created: BTreeMap<(&str, String), BTreeSet<String>> = BTreeMap::new();
    for call in &observed.calls {
        if !call.error.is_empty() {
            continue;
        }
        let id = match call.short_method() {
            "CreateVolume" => &call.response["volume"]["volume_id"],
            "CreateSnapshot" => &call.response["snapshot"]["snapshot_id"],
            "CreateVolumeGroupSnapshot" => &call.response["group_snapshot"]["group_snapshot_id"],
            _ => continue,
        };
        let (Some(request_name), Some(id)) = (call.request["name"].as_str(), id.as_str()) else {
            continue;
        };
        created
            .entry((call.short_method(), request_name.to_string()))
            .or_default()
            .insert(id.to_string());
    }
    let mut violations: Vec<String> = created
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|((method, name), ids)| {
            format!("{method} {name:?} answered {} IDs: {ids:?}", ids.len())
        })
        .collect();
    // One volume per name in the driver (the driver itself is idempotent by name).
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, volume_name) in &observed.driver_volumes {
        names.entry(volume_name).or_default().push(id);
    }
    violations.extend(
        names
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(n, ids)| format!("the driver has {} volumes named {n:?}: {ids:?}", ids.len())),
    );
    // One PV per claim.
    let mut per_claim: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pv in pvs {
        let Some(claim) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
            continue;
        };
        let Some(uid) = claim.uid.clone() else {
            continue;
        };
        per_claim
            .entry(format!(
                "{}/{} ({uid})",
                claim.namespace.as_deref().unwrap_or_default(),
                claim.name.as_deref().unwrap_or_default()
            ))
            .or_default()
            .push(name(&pv.metadata));
    }
    violations.extend(
        per_claim
            .iter()
            .filter(|(_, pvs)| pvs.len() > 1)
            .map(|(claim, pvs)| format!("claim {claim} has {} PVs: {pvs:?}", pvs.len())),
    );
    CheckResult {
        name: CREATED_ONCE,
        checked: created.len() + pvs.len(),
        violations,
    }
}

#[cfg(test)]
mod tests;
