//! The snapshot webhooks, called by the API server itself (the foreign client of a webhook):
//!
//! - `snapshot-conversion-webhook` wired into the cluster's VolumeGroupSnapshotContent CRD
//!   (`conversion.strategy: Webhook`, a caBundle of a CA this test makes): an object written as
//!   v1beta1 is read as v1beta2 and back, through our webhook. The CRD's conversion is restored
//!   afterwards;
//! - `snapshot-validation-webhook` registered with a ValidatingWebhookConfiguration whose object
//!   selector matches only this test's objects: it refuses a second default class for a driver
//!   (VolumeSnapshotClass and VolumeGroupSnapshotClass), which no CEL rule can express;
//! - the same validation webhook judged against the CRDs' own CEL rules: for one table of valid
//!   and invalid objects and updates, the API server's verdict without the webhook equals the
//!   webhook's verdict on the same request.
//!
//! Tests of this file run in parallel threads; the ones that write VolumeGroupSnapshotContents
//! hold [`GROUP_CONTENT_CRD`], because while the conversion test has the CRD pointed at the
//! conversion webhook, v1 requests for that kind fail (upstream's webhook converts only between
//! v1beta1 and v1beta2). Other test binaries never run at the same time (`cargo test` runs them
//! one after another).

mod snapshot_webhooks {
    pub mod cel_table;
    pub mod support;
}

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use std::path::{Path, PathBuf};

use csi_e2e_support::{E2eEnv, TestNamespace, apply_rbac_manifest, service_account_kubeconfig};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use snapshot_webhooks::cel_table;
use snapshot_webhooks::support::{Webhook, WebhookPki, api, object, suffix};

const WAIT: Duration = Duration::from_secs(60);
const GROUP: &str = "groupsnapshot.storage.k8s.io";
const VGSC_CRD: &str = "volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io";
const INFO_ANNOTATION: &str = "groupsnapshot.storage.kubernetes.io/volume-snapshot-info-list";

/// The RBAC shipped for the validation webhook.
const VALIDATION_RBAC: &str = "webhooks/snapshot-validation-webhook/deploy/rbac.yaml";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// Held while a test changes the VolumeGroupSnapshotContent CRD or writes such objects.
static GROUP_CONTENT_CRD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn group_content(name: &str, version: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{version}"),
        "kind": "VolumeGroupSnapshotContent",
        "metadata": {"name": name},
        "spec": {
            "driver": "conversion.csi.e2e.k8s.io",
            "deletionPolicy": "Retain",
            "source": {"groupSnapshotHandles": {
                "volumeGroupSnapshotHandle": "group-1",
                "volumeSnapshotHandles": ["snap-1", "snap-2"],
            }},
            "volumeGroupSnapshotRef": {"name": "group", "namespace": "default"},
        },
    })
}

#[tokio::test]
async fn conversion_webhook_converts_group_snapshot_contents_for_the_api_server()
-> anyhow::Result<()> {
    let _crd = GROUP_CONTENT_CRD.lock().await;
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let pki = WebhookPki::generate()?;
    let webhook = Webhook::start(&env, "snapshot-conversion-webhook", &pki, &[]).await?;

    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let original = crds.get(VGSC_CRD).await?;
    let mut original_conversion = serde_json::to_value(&original.spec.conversion)?;
    if original_conversion["webhook"]["clientConfig"]["url"]
        .as_str()
        .is_some_and(|url| url.starts_with("https://127.0.0.1:"))
    {
        // Left behind by a run of this test that was killed: the CRDs we install have None.
        original_conversion = json!({"strategy": "None"});
    }
    let wired = json!({
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {
                "url": format!("https://127.0.0.1:{}/convert", webhook.port),
                "caBundle": pki.ca_bundle(),
            },
        },
    });
    let content_api = |version| {
        api(
            &admin,
            GROUP,
            version,
            "VolumeGroupSnapshotContent",
            "volumegroupsnapshotcontents",
            None,
        )
    };
    let name = format!("conversion-{}", suffix());
    // A probe object, written in the storage version (no conversion): reading it as v1 tells
    // which conversion the API server uses.
    let probe = format!("{name}-probe");
    content_api("v1beta2")
        .create(
            &PostParams::default(),
            &object(group_content(&probe, "v1beta2"))?,
        )
        .await?;
    set_conversion(&crds, wired).await?;

    let result = convert_through_the_api_server(&admin, &name, &probe).await;

    // Clean up whatever happened: the CRD's conversion as it was, then the objects, once the
    // API server converts without the webhook again (it switches a moment after the CRD
    // changes, and the next test must not meet the webhook).
    set_conversion(&crds, original_conversion.clone()).await?;
    let restored = crds.get(VGSC_CRD).await?;
    ensure!(
        serde_json::to_value(&restored.spec.conversion)? == original_conversion,
        "the CRD's conversion was not restored: {:?}",
        restored.spec.conversion
    );
    let deadline = Instant::now() + WAIT;
    while let Err(err) = content_api("v1").get(&probe).await {
        ensure!(
            Instant::now() < deadline,
            "v1 still fails after the CRD was restored: {err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for name in [&name, &probe] {
        csi_e2e_support::ignore_not_found(
            content_api("v1beta2")
                .delete(name, &DeleteParams::default())
                .await,
        )?;
    }
    result.with_context(|| {
        format!(
            "conversion webhook log:\n{}",
            csi_e2e_support::tail(&webhook.process.logs(), 40)
        )
    })
}

/// Sets the VolumeGroupSnapshotContent CRD's `spec.conversion` to `conversion` as a whole: a
/// `webhook` it lacks is removed (strategy `None` forbids one), which a plain merge would keep.
async fn set_conversion(
    crds: &Api<CustomResourceDefinition>,
    mut conversion: Value,
) -> anyhow::Result<()> {
    if conversion.get("webhook").is_none() {
        conversion["webhook"] = Value::Null;
    }
    let patch = json!({"spec": {"conversion": conversion}});
    crds.patch(VGSC_CRD, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn convert_through_the_api_server(
    admin: &kube::Client,
    name: &str,
    probe: &str,
) -> anyhow::Result<()> {
    let kind = "VolumeGroupSnapshotContent";
    let plural = "volumegroupsnapshotcontents";
    let v1beta1 = api(admin, GROUP, "v1beta1", kind, plural, None);
    let v1beta2 = api(admin, GROUP, "v1beta2", kind, plural, None);
    let v1 = api(admin, GROUP, "v1", kind, plural, None);

    // The API server switches to the webhook a moment after the CRD changed: wait until a v1
    // read of the probe goes through it (and fails: upstream's webhook does not know v1).
    let deadline = Instant::now() + WAIT;
    loop {
        match v1.get(probe).await {
            Err(kube::Error::Api(status))
                if status.message.contains("unexpected conversion version") =>
            {
                break;
            }
            other => {
                ensure!(
                    Instant::now() < deadline,
                    "the API server does not call the webhook: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    v1beta1
        .create(
            &PostParams::default(),
            &object(group_content(name, "v1beta1"))?,
        )
        .await
        .context("creating via v1beta1")?;

    // v1beta1 status as the old snapshot-controller writes it.
    let pairs = json!([
        {"snapshotHandle": "snap-1", "volumeHandle": "vol-1"},
        {"snapshotHandle": "snap-2", "volumeHandle": "vol-2"},
    ]);
    let status = json!({"status": {"readyToUse": true, "volumeGroupSnapshotHandle": "group-1",
                                   "volumeSnapshotHandlePairList": pairs}});
    v1beta1
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .context("writing the v1beta1 status")?;

    // Read as v1beta2: the list was renamed.
    let read = serde_json::to_value(v1beta2.get(name).await?)?;
    ensure!(read["apiVersion"] == format!("{GROUP}/v1beta2"), "{read}");
    ensure!(
        read["status"]["volumeSnapshotInfoList"] == pairs,
        "v1beta2 should carry the pairs as volumeSnapshotInfoList: {read}"
    );
    ensure!(
        read["status"].get("volumeSnapshotHandlePairList").is_none(),
        "{read}"
    );

    // v1beta2 status with the fields v1beta1 lacks.
    let info = json!([
        {"snapshotHandle": "snap-1", "volumeHandle": "vol-1", "creationTime": 1700000000, "readyToUse": true, "restoreSize": 1024},
        {"snapshotHandle": "snap-2", "volumeHandle": "vol-2", "creationTime": 1700000001, "readyToUse": false, "restoreSize": 2048},
    ]);
    let status = json!({"status": {"volumeSnapshotInfoList": info}});
    v1beta2
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .context("writing the v1beta2 status")?;

    // Read as v1beta1: pairs only, and the whole list kept in the annotation.
    let read = serde_json::to_value(v1beta1.get(name).await?)?;
    ensure!(
        read["status"]["volumeSnapshotHandlePairList"] == pairs,
        "v1beta1 should carry the handles only: {read}"
    );
    let annotation = read["metadata"]["annotations"][INFO_ANNOTATION]
        .as_str()
        .with_context(|| format!("the v1beta1 object lacks the annotation: {read}"))?;
    ensure!(
        serde_json::from_str::<Value>(annotation)? == info,
        "{annotation}"
    );

    // An update through v1beta1 (a label) loses nothing of the v1beta2 status.
    let label = json!({"metadata": {"labels": {"touched": "v1beta1"}}});
    v1beta1
        .patch(name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .context("updating via v1beta1")?;
    let read = serde_json::to_value(v1beta2.get(name).await?)?;
    ensure!(read["status"]["volumeSnapshotInfoList"] == info, "{read}");
    ensure!(read["metadata"]["labels"]["touched"] == "v1beta1", "{read}");
    ensure!(
        read["metadata"]["annotations"]
            .get(INFO_ANNOTATION)
            .is_none(),
        "the annotation must not reach v1beta2: {read}"
    );

    // Upstream's webhook converts only between v1beta1 and v1beta2: with the CRD wired to it,
    // v1 (served, not stored) cannot be read. Our webhook does the same.
    match v1.get(name).await {
        Err(kube::Error::Api(status)) => ensure!(
            status.message.contains("unexpected conversion version"),
            "{status:?}"
        ),
        other => bail!("a v1 read should fail through the webhook, got {other:?}"),
    }
    Ok(())
}

/// The default-class rule, through the API server: a second default for the same driver is
/// refused, with upstream's message, for both kinds of class; the webhook runs under the RBAC
/// we ship and meets no Forbidden.
#[tokio::test]
async fn validation_webhook_refuses_a_second_default_class_through_the_api_server()
-> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let pki = WebhookPki::generate()?;
    // Under the RBAC we ship: its ServiceAccount's token is all the webhook has.
    let ns = TestNamespace::create(&admin, "webhook-rbac").await?;
    let rbac = apply_rbac_manifest(&admin, &repo_path(VALIDATION_RBAC), &ns.name).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig =
        service_account_kubeconfig(&env, &ns.name, rbac.service_account()?, dir.path()).await?;
    let webhook = Webhook::start(
        &env,
        "snapshot-validation-webhook",
        &pki,
        &[
            format!("--kubeconfig={}", kubeconfig.display()),
            "--enable-volume-group-snapshot-webhook".to_string(),
        ],
    )
    .await?;
    let id = suffix();
    let label = format!("webhook-e2e-{id}");
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
    let config_name = format!("snapshot-validation-e2e-{id}");
    let registration = |name: &str, group: &str, version: &str, resource: &str, path: &str| {
        json!({
            "name": name,
            "rules": [{"apiGroups": [group], "apiVersions": [version], "operations": ["CREATE", "UPDATE"],
                       "resources": [resource], "scope": "*"}],
            "clientConfig": {"url": format!("https://127.0.0.1:{}{path}", webhook.port), "caBundle": pki.ca_bundle()},
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            // Only this test's objects: other tests on the cluster never meet this webhook.
            "objectSelector": {"matchLabels": {"e2e-webhook": label}},
        })
    };
    let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": config_name},
        "webhooks": [
            registration("validation-webhook.snapshot.storage.k8s.io", "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "/volumesnapshot"),
            registration("validation-webhook.groupsnapshot.storage.k8s.io", GROUP, "*", "volumegroupsnapshotclasses", "/volumegroupsnapshot"),
        ],
    }))?;
    configs.create(&PostParams::default(), &config).await?;

    let mut result = second_default_refused(&admin, &id, &label).await;
    let _ = configs.delete(&config_name, &DeleteParams::default()).await;
    let logs = webhook.process.logs().to_lowercase();
    if result.is_ok() && logs.contains("forbidden") {
        result = Err(anyhow::anyhow!(
            "the webhook met Forbidden under the shipped RBAC"
        ));
    }
    drop(webhook);
    rbac.delete().await?;
    ns.delete().await?;
    result.with_context(|| {
        format!(
            "validation webhook log:\n{}",
            csi_e2e_support::tail(&logs, 40)
        )
    })
}

async fn second_default_refused(admin: &kube::Client, id: &str, label: &str) -> anyhow::Result<()> {
    let driver = format!("{id}.webhook.csi.e2e.k8s.io");
    for (group, version, kind, plural, annotation, wording) in [
        (
            "snapshot.storage.k8s.io",
            "v1",
            "VolumeSnapshotClass",
            "volumesnapshotclasses",
            "snapshot.storage.kubernetes.io/is-default-class",
            "default snapshot class",
        ),
        (
            GROUP,
            "v1",
            "VolumeGroupSnapshotClass",
            "volumegroupsnapshotclasses",
            "groupsnapshot.storage.kubernetes.io/is-default-class",
            "default group snapshot class",
        ),
    ] {
        let classes = api(admin, group, version, kind, plural, None);
        let class = |name: &str, default: bool, labelled: bool| -> anyhow::Result<_> {
            let mut metadata =
                json!({"name": name, "annotations": {annotation: default.to_string()}});
            if labelled {
                metadata["labels"] = json!({"e2e-webhook": label});
            }
            object(
                json!({"apiVersion": format!("{group}/{version}"), "kind": kind, "metadata": metadata,
                          "driver": driver, "deletionPolicy": "Delete"}),
            )
        };
        let first = format!("first-{id}");
        let second = format!("second-{id}");
        let unlabelled = format!("unlabelled-{id}");
        let outcome = async {
            classes
                .create(&PostParams::default(), &class(&first, true, true)?)
                .await?;
            // The webhook reads classes from its watch: retry until it has seen the first.
            let deadline = Instant::now() + WAIT;
            loop {
                match classes
                    .create(&PostParams::default(), &class(&second, true, true)?)
                    .await
                {
                    Err(kube::Error::Api(status)) => {
                        let expected =
                            format!("{wording}: {first} already exists for driver: {driver}");
                        ensure!(
                            status.message.contains(&expected)
                                && status.message.contains("denied the request"),
                            "unexpected refusal: {status:?}"
                        );
                        break;
                    }
                    Err(err) => return Err(err.into()),
                    Ok(_) => {
                        classes.delete(&second, &DeleteParams::default()).await?;
                        ensure!(
                            Instant::now() < deadline,
                            "a second default {kind} was admitted"
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            // Not a default: admitted.
            classes
                .create(&PostParams::default(), &class(&second, false, true)?)
                .await?;
            // Becoming a default: refused.
            let promote = json!({"metadata": {"annotations": {annotation: "true"}}});
            match classes
                .patch(&second, &PatchParams::default(), &Patch::Merge(&promote))
                .await
            {
                Err(kube::Error::Api(status)) => {
                    ensure!(status.message.contains(wording), "{status:?}")
                }
                other => bail!("promoting a second default {kind} should fail, got {other:?}"),
            }
            // Outside the object selector the webhook is not asked (the CRD alone decides).
            classes
                .create(&PostParams::default(), &class(&unlabelled, true, false)?)
                .await?;
            anyhow::Ok(())
        }
        .await;
        for name in [&first, &second, &unlabelled] {
            let _ = classes.delete(name, &DeleteParams::default()).await;
        }
        outcome.with_context(|| kind.to_string())?;
    }
    Ok(())
}

/// For every case of the table, the API server's verdict from the CRD's CEL rules alone (no
/// webhook registered for these objects) equals the webhook's verdict on the same request.
#[tokio::test]
async fn validation_webhook_agrees_with_the_crds_cel_rules() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let pki = WebhookPki::generate()?;
    let webhook = Webhook::start(
        &env,
        "snapshot-validation-webhook",
        &pki,
        &[
            format!("--kubeconfig={}", env.kubeconfig.display()),
            "--enable-volume-group-snapshot-webhook".to_string(),
        ],
    )
    .await?;
    let ns = TestNamespace::create(&admin, "webhook-cel").await?;
    let _crd = GROUP_CONTENT_CRD.lock().await;
    let result = cel_table::run(&admin, &ns.name, &webhook, &pki).await;
    ns.delete().await?;
    result
}
