//! What kube-controller-manager's attach/detach controller acts on: a CSI PV with a bound claim,
//! a pod on a fake node, the VolumeAttachments of a PV, and one-line descriptions of them for
//! failure messages.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Container, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, Pod,
    PodSpec, ServiceAccount, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::{describe_events, wait_until};

/// A CSI PersistentVolume and the claim bound to it.
#[derive(Clone, Debug)]
pub struct CsiVolume {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub claim: String,
    /// The PersistentVolume's name (`<namespace>-<claim>`, cluster-wide unique).
    pub pv: String,
    /// `spec.csi.driver`.
    pub driver: String,
    /// `spec.csi.volumeHandle`.
    pub volume_handle: String,
}

/// Creates a CSI PersistentVolume (`spec.csi.driver = driver`, `volumeHandle`, 1Gi,
/// ReadWriteOnce, Retain, no class) pre-bound to a claim `name` in `namespace`, and that
/// claim, and waits (at most `timeout`) until kube-controller-manager has bound them.
pub async fn create_bound_csi_volume(
    client: &Client,
    namespace: &str,
    name: &str,
    driver: &str,
    volume_handle: &str,
    timeout: Duration,
) -> anyhow::Result<CsiVolume> {
    let volume = CsiVolume {
        namespace: namespace.to_string(),
        claim: name.to_string(),
        pv: format!("{namespace}-{name}"),
        driver: driver.to_string(),
        volume_handle: volume_handle.to_string(),
    };
    let storage = BTreeMap::from([("storage".to_string(), Quantity("1Gi".to_string()))]);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.create(
        &PostParams::default(),
        &PersistentVolume {
            metadata: ObjectMeta {
                name: Some(volume.pv.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(storage.clone()),
                access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                persistent_volume_reclaim_policy: Some("Retain".to_string()),
                storage_class_name: Some(String::new()),
                claim_ref: Some(ObjectReference {
                    namespace: Some(namespace.to_string()),
                    name: Some(name.to_string()),
                    ..ObjectReference::default()
                }),
                csi: Some(CSIPersistentVolumeSource {
                    driver: driver.to_string(),
                    volume_handle: volume_handle.to_string(),
                    fs_type: Some("ext4".to_string()),
                    ..CSIPersistentVolumeSource::default()
                }),
                ..PersistentVolumeSpec::default()
            }),
            ..PersistentVolume::default()
        },
    )
    .await
    .with_context(|| format!("creating PersistentVolume {}", volume.pv))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    claims
        .create(
            &PostParams::default(),
            &PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                    storage_class_name: Some(String::new()),
                    volume_name: Some(volume.pv.clone()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(storage),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            },
        )
        .await
        .with_context(|| format!("creating PersistentVolumeClaim {namespace}/{name}"))?;
    wait_until(
        &format!("claim {namespace}/{name} to be Bound to {}", volume.pv),
        timeout,
        || async {
            let claim = claims.get(name).await.ok()?;
            (claim.status?.phase.as_deref() == Some("Bound")).then_some(())
        },
        || describe_events(client, namespace),
    )
    .await?;
    Ok(volume)
}

/// Creates a pod on `node` (`spec.nodeName`; no kubelet runs it) that mounts `claim`. Waits
/// first for the namespace's `default` ServiceAccount, which the ServiceAccount admission
/// plugin requires.
pub async fn create_pod_on_node(
    client: &Client,
    namespace: &str,
    name: &str,
    node: &str,
    claim: &str,
) -> anyhow::Result<Pod> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    wait_until(
        &format!("the default ServiceAccount of namespace {namespace}"),
        Duration::from_secs(60),
        || async { accounts.get_opt("default").await.ok().flatten() },
        || describe_events(client, namespace),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_string()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(0),
            containers: vec![Container {
                name: "c".to_string(),
                // Never pulled: no kubelet runs this pod.
                image: Some("pause".to_string()),
                volume_mounts: Some(vec![VolumeMount {
                    name: "data".to_string(),
                    mount_path: "/data".to_string(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "data".to_string(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.to_string(),
                    read_only: None,
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {namespace}/{name} on node {node}"))
}

/// Deletes a pod at once (grace period 0): no kubelet would ever confirm a graceful
/// deletion. A pod already gone is fine.
pub async fn force_delete_pod(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods
        .delete(
            name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err).with_context(|| format!("deleting pod {namespace}/{name}")),
    }
}

/// Deletes the claim and then the PersistentVolume, ignoring those already gone (neither
/// waits for finalizers).
pub async fn delete_csi_volume(client: &Client, volume: &CsiVolume) -> anyhow::Result<()> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &volume.namespace);
    match claims.delete(&volume.claim, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(err) => return Err(err).context("deleting the claim"),
    }
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    match pvs.delete(&volume.pv, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err).context("deleting the PersistentVolume"),
    }
}

/// The VolumeAttachments whose source is the PersistentVolume `pv` (kube-controller-manager
/// names them `csi-<sha256(volumeHandle + driver + node)>`).
pub async fn volume_attachments_of(
    client: &Client,
    pv: &str,
) -> anyhow::Result<Vec<VolumeAttachment>> {
    let attachments: Api<VolumeAttachment> = Api::all(client.clone());
    Ok(attachments
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|va| va.spec.source.persistent_volume_name.as_deref() == Some(pv))
        .collect())
}

/// The VolumeAttachments of `attacher` (`spec.attacher`), one line each: name, PV, node,
/// attached, finalizers, deletion, errors. For failure messages.
pub async fn describe_volume_attachments(client: &Client, attacher: &str) -> String {
    let attachments: Api<VolumeAttachment> = Api::all(client.clone());
    match attachments.list(&ListParams::default()).await {
        Ok(list) => {
            let mut lines: Vec<String> = list
                .items
                .iter()
                .filter(|va| va.spec.attacher == attacher)
                .map(describe_volume_attachment)
                .collect();
            if lines.is_empty() {
                lines.push(format!("(no VolumeAttachments of {attacher})"));
            }
            lines.join("\n")
        }
        Err(err) => format!("(listing VolumeAttachments failed: {err})"),
    }
}

/// One line about a VolumeAttachment.
pub fn describe_volume_attachment(va: &VolumeAttachment) -> String {
    let status = va.status.as_ref();
    format!(
        "VolumeAttachment {} pv={} node={} attached={} metadata={:?} finalizers={:?} \
         deleting={} attachError={:?} detachError={:?}",
        va.metadata.name.as_deref().unwrap_or("?"),
        va.spec
            .source
            .persistent_volume_name
            .as_deref()
            .unwrap_or("-"),
        va.spec.node_name,
        status.is_some_and(|s| s.attached),
        status.and_then(|s| s.attachment_metadata.as_ref()),
        va.metadata.finalizers.as_deref().unwrap_or_default(),
        va.metadata.deletion_timestamp.is_some(),
        status
            .and_then(|s| s.attach_error.as_ref())
            .and_then(|e| e.message.as_deref()),
        status
            .and_then(|s| s.detach_error.as_ref())
            .and_then(|e| e.message.as_deref()),
    )
}

/// One line about a PersistentVolume (phase, claim, finalizers, deletion), or why there is
/// none.
pub async fn describe_persistent_volume(client: &Client, name: &str) -> String {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    match pvs.get_opt(name).await {
        Ok(Some(pv)) => format!(
            "PersistentVolume {name} phase={:?} finalizers={:?} deleting={}",
            pv.status.as_ref().and_then(|s| s.phase.as_deref()),
            pv.metadata.finalizers.as_deref().unwrap_or_default(),
            pv.metadata.deletion_timestamp.is_some()
        ),
        Ok(None) => format!("PersistentVolume {name} is gone"),
        Err(err) => format!("(reading PersistentVolume {name} failed: {err})"),
    }
}
