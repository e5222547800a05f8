//! The local control plane behaves like a real cluster where our sidecars need it to.

use std::collections::BTreeMap;
use std::time::Duration;

use csi_e2e_support::{E2eEnv, TestNamespace, describe_events, service_account_client, wait_until};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, ServiceAccount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, PostParams,
};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn rbac_is_enforced() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let ns = TestNamespace::create(&admin, "rbac").await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("nobody".into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await?;
    let nobody = service_account_client(&env, &ns.name, "nobody").await?;
    let pods: Api<Pod> = Api::namespaced(nobody, &ns.name);
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("a ServiceAccount without roles must get 403, got {other:?}"),
    }
    ns.delete().await
}

#[tokio::test]
async fn a_pvc_nobody_provisions_stays_pending_with_the_provisioner_annotation()
-> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let ns = TestNamespace::create(&admin, "pending").await?;
    let provisioner = "e2e.example.com/nobody";
    let class_name = format!("{}-nobody", ns.name);
    let classes: Api<StorageClass> = Api::all(admin.clone());
    classes
        .create(
            &PostParams::default(),
            &StorageClass {
                metadata: ObjectMeta {
                    name: Some(class_name.clone()),
                    ..ObjectMeta::default()
                },
                provisioner: provisioner.to_string(),
                volume_binding_mode: Some("Immediate".into()),
                ..StorageClass::default()
            },
        )
        .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns.name);
    claims
        .create(
            &PostParams::default(),
            &PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("claim".into()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: Some(class_name.clone()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".into(),
                            Quantity("1Gi".into()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            },
        )
        .await?;
    let claim = wait_until(
        "kube-controller-manager to annotate the claim with its provisioner",
        WAIT,
        || async {
            let claim = claims.get("claim").await.ok()?;
            let annotations = claim.metadata.annotations.as_ref()?;
            (annotations
                .get("volume.kubernetes.io/storage-provisioner")
                .map(String::as_str)
                == Some(provisioner))
            .then_some(claim)
        },
        || describe_events(&admin, &ns.name),
    )
    .await?;
    let phase = claim.status.and_then(|s| s.phase);
    assert_eq!(phase.as_deref(), Some("Pending"));
    classes
        .delete(&class_name, &DeleteParams::default())
        .await?;
    ns.delete().await
}

#[tokio::test]
async fn snapshot_crds_are_served() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let ns = TestNamespace::create(&admin, "snapshot").await?;
    let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot");
    let resource = ApiResource::from_gvk(&gvk);
    let snapshots: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns.name, &resource);
    let mut snapshot = DynamicObject::new("snap", &resource);
    snapshot.data = serde_json::json!({
        "spec": {
            "volumeSnapshotClassName": "e2e-class",
            "source": {"persistentVolumeClaimName": "claim"}
        }
    });
    snapshots.create(&PostParams::default(), &snapshot).await?;
    let read = snapshots.get("snap").await?;
    assert_eq!(
        read.data["spec"]["source"]["persistentVolumeClaimName"],
        serde_json::json!("claim")
    );
    ns.delete().await
}
