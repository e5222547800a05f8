//! CSI migration on the real control plane: the mock driver runs under the name of the AWS EBS
//! CSI driver (`ebs.csi.aws.com`), and `csi-sidecars --controllers=attacher,provisioner`
//! handles in-tree `awsElasticBlockStore` volumes for it, as kube-controller-manager v1.36
//! hands them over (CSI migration is GA and the in-tree plugins are gone):
//! - a pod using a claim bound to an in-tree PV: kube-controller-manager's attach/detach
//!   controller creates a VolumeAttachment for `ebs.csi.aws.com` naming the in-tree PV, and
//!   ours attaches and detaches it with the translated volume handle;
//! - a claim of a `kubernetes.io/aws-ebs` StorageClass: kube-controller-manager sets
//!   `volume.kubernetes.io/storage-provisioner: ebs.csi.aws.com`, ours creates the volume with
//!   the translated parameters and writes an in-tree PV, which kube-controller-manager binds;
//!   deleting the claim deletes the volume through the translation again.
//!
//! `/metrics` then shows those CSI calls with `migrated="true"` and the others with
//! `migrated="false"`, as upstream's sidecars label them for a driver of CSI migration.
//!
//! AWS EBS for the whole flow rather than GCE PD: GCE PD volume handles are `projects/…/disks/<name>`, while the
//! mock driver's volume IDs are counters, so it would answer NotFound to a translated GCE PD
//! handle and its new volumes could not be written back as GCE PD PVs (csi-translation-lib
//! fails on a handle without six parts, and so do we; `csi-translation`'s oracle test covers
//! every GCE PD rule); `gce_pd_volumes_reach_the_driver_in_gce_pd_form` follows GCE PD as far as
//! the mock driver can. A driver's name is fixed by the translation, so only one test uses each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use csi_e2e_support::{
    DriverOptions, Sandbox, create_csinode, create_fake_node, create_pod_on_node, delete_nodes,
    describe_events, describe_volume_attachments, force_delete_pod, has_exited, ignore_not_found,
    tail, volume_attachments_of, wait_until,
};
use csi_test_support::ChildProcess;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const DRIVER: &str = "ebs.csi.aws.com";
const GCE_DRIVER: &str = "pd.csi.storage.gke.io";
const IN_TREE: &str = "kubernetes.io/aws-ebs";
/// external-attacher's finalizer for the driver.
const ATTACHER_FINALIZER: &str = "external-attacher/ebs-csi-aws-com";
const WAIT: Duration = Duration::from_secs(90);

fn sidecars_rbac() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sidecars/aio/deploy/rbac.yaml")
}

fn has_finalizer(meta: &kube::api::ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == finalizer))
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

struct Test<'a> {
    sandbox: &'a Sandbox,
    node: String,
    sidecars: ChildProcess,
    driver: &'static str,
    /// csi-sidecars' `--http-endpoint`.
    metrics_address: String,
}

impl Test<'_> {
    fn admin(&self) -> kube::Client {
        self.sandbox.admin.clone()
    }

    fn ns(&self) -> &str {
        &self.sandbox.ns.name
    }

    async fn diagnostics(&self) -> String {
        format!(
            "--- events in {} ---\n{}\n--- VolumeAttachments ---\n{}\n--- driver log (tail) ---\n{}\n--- csi-sidecars ({}) log (tail) ---\n{}",
            self.ns(),
            describe_events(&self.admin(), self.ns()).await,
            describe_volume_attachments(&self.admin(), self.driver).await,
            tail(&self.sandbox.driver.logs(), 60),
            if has_exited(&self.sidecars) {
                "exited"
            } else {
                "running"
            },
            tail(&self.sidecars.logs(), 80),
        )
    }

    /// `/metrics` of csi-sidecars: every `csi_sidecar_operations_seconds` series has the
    /// `migrated` label (the attacher and the provisioner, as upstream's with
    /// `WithMigration()`), `methods` were called for in-tree volumes (`migrated="true"`), and
    /// the calls about no volume count as not migrated.
    async fn assert_migrated_metrics(&self, methods: &[&str]) -> anyhow::Result<()> {
        let (code, text) = csi_test_support::http_get(&self.metrics_address, "/metrics").await?;
        ensure!(code == 200, "GET /metrics: {code}\n{text}");
        let counts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("csi_sidecar_operations_seconds_count{"))
            .collect();
        ensure!(!counts.is_empty(), "no CSI operations in /metrics:\n{text}");
        let unlabelled: Vec<&&str> = counts
            .iter()
            .filter(|l| !l.contains(",migrated=\""))
            .collect();
        ensure!(
            unlabelled.is_empty(),
            "series without the migrated label: {unlabelled:?}"
        );
        for method in methods {
            let series = format!(
                r#"driver_name="{}",grpc_status_code="OK",method_name="/csi.v1.Controller/{method}",migrated="true"}}"#,
                self.driver
            );
            ensure!(
                counts.iter().any(|l| l.contains(&series)),
                "{series} in /metrics:\n{}",
                counts.join("\n")
            );
        }
        let probe = r#"method_name="/csi.v1.Identity/Probe",migrated="false"}"#;
        ensure!(
            counts.iter().any(|l| l.contains(probe)),
            "{probe} in /metrics:\n{}",
            counts.join("\n")
        );
        Ok(())
    }

    async fn create<K>(&self, api: &Api<K>, object: Value) -> anyhow::Result<()>
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let object: K = serde_json::from_value(object)?;
        api.create(&PostParams::default(), &object).await?;
        Ok(())
    }

    async fn wait_bound(&self, claim: &str) -> anyhow::Result<PersistentVolume> {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.admin(), self.ns());
        let volume = wait_until(
            &format!("claim {claim} to be Bound"),
            WAIT,
            || async {
                let claim = claims.get(claim).await.ok()?;
                if claim.status?.phase.as_deref() != Some("Bound") {
                    return None;
                }
                claim.spec?.volume_name
            },
            || self.diagnostics(),
        )
        .await?;
        Ok(Api::<PersistentVolume>::all(self.admin())
            .get(&volume)
            .await?)
    }

    /// The in-tree PV of a volume the driver has, a claim bound to it, a pod using it: attached
    /// and detached through the translation.
    async fn attach_and_detach(&self) -> anyhow::Result<()> {
        let handle = self.sandbox.driver.create_volume("static").await?;
        let pv_name = format!("{}-static", self.ns());
        self.create(
            &Api::<PersistentVolume>::all(self.admin()),
            json!({
                "metadata": {"name": pv_name},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "claimRef": {"namespace": self.ns(), "name": "static"},
                    "awsElasticBlockStore": {"volumeID": handle, "fsType": "ext4"},
                }
            }),
        )
        .await?;
        self.create(
            &Api::<PersistentVolumeClaim>::namespaced(self.admin(), self.ns()),
            json!({
                "metadata": {"name": "static"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": pv_name,
                    "resources": {"requests": {"storage": "1Gi"}},
                }
            }),
        )
        .await?;
        self.wait_bound("static").await?;
        create_pod_on_node(&self.admin(), self.ns(), "pod", &self.node, "static").await?;

        let va = wait_until(
            &format!("the VolumeAttachment of the in-tree PV {pv_name} to be attached"),
            WAIT,
            || async {
                let vas = volume_attachments_of(&self.admin(), &pv_name).await.ok()?;
                match vas.as_slice() {
                    [va] if va.status.as_ref().is_some_and(|s| s.attached)
                        && has_finalizer(&va.metadata, ATTACHER_FINALIZER) =>
                    {
                        Some(va.clone())
                    }
                    _ => None,
                }
            },
            || self.diagnostics(),
        )
        .await?;
        ensure!(va.spec.attacher == DRIVER, "attacher {}", va.spec.attacher);
        let publish = self
            .sandbox
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "ControllerPublishVolume" && c.error.is_empty())
            .context("no successful ControllerPublishVolume")?;
        ensure!(
            publish.request["volume_id"] == handle.as_str() && publish.request["node_id"] == DRIVER,
            "ControllerPublishVolume of the translated volume: {}",
            publish.request
        );
        let pv = Api::<PersistentVolume>::all(self.admin())
            .get(&pv_name)
            .await?;
        ensure!(
            has_finalizer(&pv.metadata, ATTACHER_FINALIZER),
            "the in-tree PV lacks {ATTACHER_FINALIZER}: {:?}",
            pv.metadata.finalizers
        );

        force_delete_pod(&self.admin(), self.ns(), "pod").await?;
        wait_until(
            &format!("the VolumeAttachment of {pv_name} to be detached and deleted"),
            WAIT,
            || async {
                volume_attachments_of(&self.admin(), &pv_name)
                    .await
                    .ok()?
                    .is_empty()
                    .then_some(())
            },
            || self.diagnostics(),
        )
        .await?;
        let unpublish = self
            .sandbox
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "ControllerUnpublishVolume")
            .context("no ControllerUnpublishVolume")?;
        ensure!(
            unpublish.request["volume_id"] == handle.as_str(),
            "ControllerUnpublishVolume of the translated volume: {}",
            unpublish.request
        );
        Ok(())
    }

    /// A claim of an in-tree StorageClass: provisioned by ours as an in-tree PV, deleted again.
    async fn provision_and_delete(&self, class: &str) -> anyhow::Result<()> {
        self.create(
            &Api::<StorageClass>::all(self.admin()),
            json!({
                "metadata": {"name": class},
                "provisioner": IN_TREE,
                "parameters": {"type": "gp3", "fsType": "xfs"},
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
            }),
        )
        .await?;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.admin(), self.ns());
        self.create(
            &claims,
            json!({
                "metadata": {"name": "dynamic"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": class,
                    "resources": {"requests": {"storage": "1Gi"}},
                }
            }),
        )
        .await?;
        let pv = self.wait_bound("dynamic").await?;
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        let claim = claims.get("dynamic").await?;
        ensure!(
            annotation(&claim.metadata, "volume.kubernetes.io/storage-provisioner") == Some(DRIVER),
            "kube-controller-manager hands the claim to the CSI driver: {:?}",
            claim.metadata.annotations
        );
        let create = self
            .sandbox
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "CreateVolume" && c.request["name"] == pv_name.as_str())
            .with_context(|| format!("no CreateVolume of {pv_name}"))?;
        ensure!(
            create.request["parameters"] == json!({"type": "gp3"}),
            "CreateVolume parameters (fsType is the capability's): {}",
            create.request
        );
        ensure!(
            create.request["volume_capabilities"][0]["AccessType"]["Mount"]["fs_type"] == "xfs",
            "CreateVolume capability: {}",
            create.request
        );
        let volume_id = create.response["volume"]["volume_id"]
            .as_str()
            .context("CreateVolume answered no volume ID")?
            .to_string();
        let spec = pv.spec.clone().unwrap_or_default();
        ensure!(spec.csi.is_none(), "a CSI source on the PV: {:?}", spec.csi);
        let ebs = spec
            .aws_elastic_block_store
            .as_ref()
            .context("the PV is not an in-tree AWS EBS PV")?;
        ensure!(
            ebs.volume_id == volume_id && ebs.fs_type.as_deref() == Some("xfs"),
            "in-tree source {ebs:?}, volume {volume_id}"
        );
        ensure!(
            annotation(&pv.metadata, "pv.kubernetes.io/provisioned-by") == Some(IN_TREE),
            "provisioned-by: {:?}",
            pv.metadata.annotations
        );

        claims.delete("dynamic", &DeleteParams::default()).await?;
        let pvs: Api<PersistentVolume> = Api::all(self.admin());
        wait_until(
            &format!("the in-tree PV {pv_name} to be deleted"),
            WAIT,
            || async { pvs.get_opt(&pv_name).await.ok()?.is_none().then_some(()) },
            || self.diagnostics(),
        )
        .await?;
        ensure!(
            self.sandbox.driver.grpc_calls().iter().any(|c| {
                c.short_method() == "DeleteVolume" && c.request["volume_id"] == volume_id.as_str()
            }),
            "no DeleteVolume of {volume_id}:\n{}",
            self.sandbox.driver.logs()
        );
        Ok(())
    }
}

impl Test<'_> {
    async fn gce_pd_attach(&self) -> anyhow::Result<()> {
        let pv_name = format!("{}-gce", self.ns());
        // kube-controller-manager runs one attach per volume name at a time, and waits two
        // minutes for one that fails: a disk name of its own keeps runs apart.
        let disk = format!("{}-disk", self.ns());
        self.create(
            &Api::<PersistentVolume>::all(self.admin()),
            json!({
                "metadata": {"name": pv_name, "labels": {"topology.kubernetes.io/zone": "us-central1-a"}},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "claimRef": {"namespace": self.ns(), "name": "gce"},
                    "gcePersistentDisk": {"pdName": disk, "fsType": "ext4"},
                }
            }),
        )
        .await?;
        self.create(
            &Api::<PersistentVolumeClaim>::namespaced(self.admin(), self.ns()),
            json!({
                "metadata": {"name": "gce"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": pv_name,
                    "resources": {"requests": {"storage": "1Gi"}},
                }
            }),
        )
        .await?;
        self.wait_bound("gce").await?;
        create_pod_on_node(&self.admin(), self.ns(), "gce-pod", &self.node, "gce").await?;
        let handle = format!("projects/UNSPECIFIED/zones/us-central1-a/disks/{disk}");
        let va = wait_until(
            &format!("the VolumeAttachment of the GCE PD PV {pv_name} to fail attaching"),
            WAIT,
            || async {
                let vas = volume_attachments_of(&self.admin(), &pv_name).await.ok()?;
                let va = vas.first()?;
                let error = va.status.as_ref()?.attach_error.as_ref()?.message.clone()?;
                Some((va.clone(), error))
            },
            || self.diagnostics(),
        )
        .await?;
        ensure!(
            va.0.spec.attacher == GCE_DRIVER,
            "attacher {}",
            va.0.spec.attacher
        );
        ensure!(
            va.1 == format!("rpc error: code = NotFound desc = {handle}"),
            "attachError: {}",
            va.1
        );
        let publish = self
            .sandbox
            .driver
            .grpc_calls()
            .into_iter()
            .find(|c| c.short_method() == "ControllerPublishVolume")
            .context("no ControllerPublishVolume")?;
        ensure!(
            publish.request["volume_id"] == handle.as_str()
                && publish.request["node_id"] == GCE_DRIVER
                && publish.request["volume_context"] == json!({"partition": ""}),
            "ControllerPublishVolume of the translated GCE PD volume: {}",
            publish.request
        );
        force_delete_pod(&self.admin(), self.ns(), "gce-pod").await
    }

    async fn gce_pd_provision(&self, class: &str) -> anyhow::Result<()> {
        self.create(
            &Api::<StorageClass>::all(self.admin()),
            json!({
                "metadata": {"name": class},
                "provisioner": "kubernetes.io/gce-pd",
                "parameters": {"type": "pd-ssd", "fsType": "ext4"},
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
            }),
        )
        .await?;
        self.create(
            &Api::<PersistentVolumeClaim>::namespaced(self.admin(), self.ns()),
            json!({
                "metadata": {"name": "gce-dynamic"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": class,
                    "resources": {"requests": {"storage": "1Gi"}},
                }
            }),
        )
        .await?;
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.admin(), self.ns());
        let message = wait_until(
            "a ProvisioningFailed Event on the GCE PD claim",
            WAIT,
            || async {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| {
                        e.involved_object.name.as_deref() == Some("gce-dynamic")
                            && e.reason.as_deref() == Some("ProvisioningFailed")
                    })?
                    .message
            },
            || self.diagnostics(),
        )
        .await?;
        ensure!(
            message == "failed to get id components.Got: 1, wanted 6 components or more. ",
            "ProvisioningFailed: {message}"
        );
        let calls = self.sandbox.driver.grpc_calls();
        let create = calls
            .iter()
            .find(|c| c.short_method() == "CreateVolume")
            .context("no CreateVolume")?;
        ensure!(
            create.request["parameters"] == json!({"type": "pd-ssd"}),
            "CreateVolume parameters: {}",
            create.request
        );
        let volume_id = create.response["volume"]["volume_id"].clone();
        ensure!(
            calls
                .iter()
                .any(|c| c.short_method() == "DeleteVolume" && c.request["volume_id"] == volume_id),
            "the volume {volume_id} that cannot be a GCE PD PV was not deleted:\n{}",
            self.sandbox.driver.logs()
        );
        Ok(())
    }
}

/// Removes the test's objects, finalizers included, whatever happened.
async fn clean_up(sandbox: &Sandbox, driver: &str, node: &str, class: &str) -> anyhow::Result<()> {
    let admin = sandbox.admin.clone();
    let ns = &sandbox.ns.name;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    for pod in pods.list(&ListParams::default()).await?.items {
        if let Some(name) = pod.metadata.name {
            force_delete_pod(&admin, ns, &name).await?;
        }
    }
    let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    let attachments: Api<k8s_openapi::api::storage::v1::VolumeAttachment> = Api::all(admin.clone());
    for va in attachments.list(&ListParams::default()).await?.items {
        if va.spec.attacher != driver {
            continue;
        }
        let name = va.metadata.name.unwrap_or_default();
        ignore_not_found(attachments.delete(&name, &DeleteParams::default()).await)?;
        ignore_not_found(
            attachments
                .patch(&name, &PatchParams::default(), &no_finalizers)
                .await,
        )?;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), ns);
    ignore_not_found(
        claims
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await,
    )?;
    let pvs: Api<PersistentVolume> = Api::all(admin.clone());
    for pv in pvs.list(&ListParams::default()).await?.items {
        let ours = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some_and(|c| c.namespace.as_deref() == Some(ns.as_str()));
        if !ours {
            continue;
        }
        let name = pv.metadata.name.clone().unwrap_or_default();
        ignore_not_found(pvs.delete(&name, &DeleteParams::default()).await)?;
        ignore_not_found(
            pvs.patch(&name, &PatchParams::default(), &no_finalizers)
                .await,
        )?;
    }
    ignore_not_found(
        Api::<StorageClass>::all(admin.clone())
            .delete(class, &DeleteParams::default())
            .await,
    )?;
    delete_nodes(&admin, &[node]).await;
    Ok(())
}

/// The sandbox of a migrated driver: the mock driver under that name, a node, and
/// `csi-sidecars --controllers=attacher,provisioner`.
async fn sandbox(prefix: &str, driver: &'static str) -> anyhow::Result<Sandbox> {
    Sandbox::with_driver_name(
        prefix,
        &sidecars_rbac(),
        DriverOptions {
            driver_name: driver.to_string(),
            attach: true,
            ..DriverOptions::default()
        },
    )
    .await
}

async fn start<'a>(sandbox: &'a Sandbox, node: &str) -> anyhow::Result<Test<'a>> {
    let driver: &'static str = match sandbox.driver_name() {
        DRIVER => DRIVER,
        GCE_DRIVER => GCE_DRIVER,
        other => anyhow::bail!("not a migrated driver here: {other}"),
    };
    create_fake_node(&sandbox.admin, node).await?;
    // The mock driver's node ID is its name.
    create_csinode(&sandbox.admin, node, driver, driver).await?;
    let metrics_address = format!("127.0.0.1:{}", csi_test_support::free_port());
    let sidecars = ChildProcess::spawn(
        sandbox.env.binary("csi-sidecars")?,
        &[
            format!("--csi-address={}", sandbox.driver.endpoint()),
            format!("--kubeconfig={}", sandbox.kubeconfig.display()),
            "--leader-election".to_string(),
            format!("--leader-election-namespace={}", sandbox.ns.name),
            "--controllers=attacher,provisioner".to_string(),
            format!("--http-endpoint={metrics_address}"),
        ],
    )?;
    Ok(Test {
        sandbox,
        node: node.to_string(),
        sidecars,
        driver,
        metrics_address,
    })
}

#[tokio::test]
async fn migrated_driver_attaches_provisions_and_deletes_in_tree_volumes() -> anyhow::Result<()> {
    let sandbox = sandbox("migration", DRIVER).await?;
    let node = format!("{}-node", sandbox.ns.name);
    let class = format!("{}-in-tree", sandbox.ns.name);
    let outcome = async {
        let test = start(&sandbox, &node).await?;
        test.attach_and_detach().await?;
        test.provision_and_delete(&class).await?;
        test.assert_migrated_metrics(&[
            "ControllerPublishVolume",
            "ControllerUnpublishVolume",
            "CreateVolume",
            "DeleteVolume",
        ])
        .await?;
        let forbidden = sandbox.env.audit_log()?.forbidden(&sandbox.username())?;
        ensure!(
            forbidden.is_empty(),
            "refused under the shipped RBAC:\n{}",
            forbidden
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        anyhow::Ok(())
    }
    .await;
    let cleanup = clean_up(&sandbox, DRIVER, &node, &class).await;
    let deleted = sandbox.delete().await;
    outcome?;
    cleanup?;
    deleted
}

/// GCE PD through the same flow, as far as the mock driver can follow: the in-tree PV reaches
/// `ControllerPublishVolume` as the GCE PD handle `projects/UNSPECIFIED/zones/<zone>/disks/<name>`
/// (which the mock does not know: the attach error is saved), and a claim of a
/// `kubernetes.io/gce-pd` StorageClass reaches `CreateVolume` with the translated parameters;
/// the mock's volume ID is no GCE PD handle, so the PV cannot be written back as a GCE PD PV:
/// the volume is deleted again and the claim gets upstream's error as a `ProvisioningFailed`
/// Event.
#[tokio::test]
async fn gce_pd_volumes_reach_the_driver_in_gce_pd_form() -> anyhow::Result<()> {
    let sandbox = sandbox("migration-gce", GCE_DRIVER).await?;
    let node = format!("{}-node", sandbox.ns.name);
    let class = format!("{}-gce-pd", sandbox.ns.name);
    let outcome = async {
        let test = start(&sandbox, &node).await?;
        test.gce_pd_attach().await?;
        test.gce_pd_provision(&class).await
    }
    .await;
    let cleanup = clean_up(&sandbox, GCE_DRIVER, &node, &class).await;
    let deleted = sandbox.delete().await;
    outcome?;
    cleanup?;
    deleted
}
