//! One table of snapshot objects and updates, each judged twice: by the API server with the
//! CRDs' CEL rules (nothing else registered for these objects), and by
//! `snapshot-validation-webhook` on the AdmissionReview the API server would send for the same
//! request. The verdicts must agree, a refusal must carry the API server's words, and each
//! verdict must be the one the table expects.

use anyhow::{Context as _, bail, ensure};
use kube::Client;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

use super::support::{Webhook, WebhookPki, api, object, suffix};

#[derive(Clone, Copy, Debug)]
struct Kind {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    /// The webhook's endpoint for it.
    path: &'static str,
}

const VS: Kind = Kind {
    group: "snapshot.storage.k8s.io",
    kind: "VolumeSnapshot",
    plural: "volumesnapshots",
    namespaced: true,
    path: "/volumesnapshot",
};
const VSC: Kind = Kind {
    group: "snapshot.storage.k8s.io",
    kind: "VolumeSnapshotContent",
    plural: "volumesnapshotcontents",
    namespaced: false,
    path: "/volumesnapshot",
};
const VGS: Kind = Kind {
    group: "groupsnapshot.storage.k8s.io",
    kind: "VolumeGroupSnapshot",
    plural: "volumegroupsnapshots",
    namespaced: true,
    path: "/volumegroupsnapshot",
};
const VGSC: Kind = Kind {
    group: "groupsnapshot.storage.k8s.io",
    kind: "VolumeGroupSnapshotContent",
    plural: "volumegroupsnapshotcontents",
    namespaced: false,
    path: "/volumegroupsnapshot",
};
const VGSCLASS: Kind = Kind {
    group: "groupsnapshot.storage.k8s.io",
    kind: "VolumeGroupSnapshotClass",
    plural: "volumegroupsnapshotclasses",
    namespaced: false,
    path: "/volumegroupsnapshot",
};

/// A case: an object to create, and optionally a change to make to it once created (then the
/// update is what is judged).
struct Case {
    name: &'static str,
    kind: Kind,
    /// The object's fields besides apiVersion, kind and metadata.
    body: Value,
    update: Option<fn(&mut Value)>,
    valid: bool,
}

fn create(name: &'static str, kind: Kind, body: Value, valid: bool) -> Case {
    Case {
        name,
        kind,
        body,
        update: None,
        valid,
    }
}

fn update(
    name: &'static str,
    kind: Kind,
    body: Value,
    change: fn(&mut Value),
    valid: bool,
) -> Case {
    Case {
        name,
        kind,
        body,
        update: Some(change),
        valid,
    }
}

fn vs(source: Value) -> Value {
    json!({"spec": {"source": source, "volumeSnapshotClassName": "class"}})
}

fn vsc(source: Value) -> Value {
    json!({"spec": {"driver": "d.csi.e2e.k8s.io", "deletionPolicy": "Delete", "source": source,
                    "volumeSnapshotRef": {"name": "snap", "namespace": "default"}}})
}

fn vsc_with_mode() -> Value {
    let mut body = vsc(json!({"snapshotHandle": "h"}));
    body["spec"]["sourceVolumeMode"] = json!("Filesystem");
    body
}

fn vgs(source: Value) -> Value {
    json!({"spec": {"source": source, "volumeGroupSnapshotClassName": "class"}})
}

fn vgsc(source: Value) -> Value {
    json!({"spec": {"driver": "d.csi.e2e.k8s.io", "deletionPolicy": "Delete", "source": source,
                    "volumeGroupSnapshotRef": {"name": "group", "namespace": "default"},
                    "volumeGroupSnapshotClassName": "class"}})
}

fn vgsc_handles() -> Value {
    vgsc(json!({"volumeHandles": ["vol-1", "vol-2"]}))
}

fn vgsc_with_uid() -> Value {
    let mut body = vgsc_handles();
    body["spec"]["volumeGroupSnapshotRef"]["uid"] = json!("uid-1");
    body
}

fn vgsclass() -> Value {
    json!({"driver": "d.csi.e2e.k8s.io", "deletionPolicy": "Delete", "parameters": {"a": "1"}})
}

fn cases() -> Vec<Case> {
    let selector = json!({"selector": {"matchLabels": {"app": "db"}}});
    vec![
        // VolumeSnapshot
        create(
            "snapshot of a claim",
            VS,
            vs(json!({"persistentVolumeClaimName": "claim"})),
            true,
        ),
        create(
            "pre-provisioned snapshot",
            VS,
            vs(json!({"volumeSnapshotContentName": "content"})),
            true,
        ),
        create(
            "both sources",
            VS,
            vs(json!({"persistentVolumeClaimName": "c", "volumeSnapshotContentName": "s"})),
            false,
        ),
        create("no source", VS, vs(json!({})), false),
        create(
            "empty class name",
            VS,
            json!({"spec": {"source": {"persistentVolumeClaimName": "c"}, "volumeSnapshotClassName": ""}}),
            false,
        ),
        update(
            "claim name changed",
            VS,
            vs(json!({"persistentVolumeClaimName": "claim"})),
            |o| o["spec"]["source"]["persistentVolumeClaimName"] = json!("other"),
            false,
        ),
        update(
            "content name added to a claim's snapshot",
            VS,
            vs(json!({"persistentVolumeClaimName": "claim"})),
            |o| o["spec"]["source"]["volumeSnapshotContentName"] = json!("content"),
            false,
        ),
        update(
            "claim name swapped for a content name",
            VS,
            vs(json!({"persistentVolumeClaimName": "claim"})),
            |o| o["spec"]["source"] = json!({"volumeSnapshotContentName": "content"}),
            false,
        ),
        update(
            "class name changed",
            VS,
            vs(json!({"persistentVolumeClaimName": "claim"})),
            |o| o["spec"]["volumeSnapshotClassName"] = json!("other"),
            true,
        ),
        update(
            "label added to a snapshot",
            VS,
            vs(json!({"persistentVolumeClaimName": "claim"})),
            |o| o["metadata"]["labels"] = json!({"a": "b"}),
            true,
        ),
        // VolumeSnapshotContent
        create(
            "pre-provisioned content",
            VSC,
            vsc(json!({"snapshotHandle": "h"})),
            true,
        ),
        create(
            "dynamic content",
            VSC,
            vsc(json!({"volumeHandle": "v"})),
            true,
        ),
        create(
            "both handles",
            VSC,
            vsc(json!({"volumeHandle": "v", "snapshotHandle": "h"})),
            false,
        ),
        create(
            "snapshot reference without a name",
            VSC,
            json!({"spec": {"driver": "d", "deletionPolicy": "Delete", "source": {"snapshotHandle": "h"},
                            "volumeSnapshotRef": {"namespace": "default"}}}),
            false,
        ),
        update(
            "snapshot handle changed",
            VSC,
            vsc(json!({"snapshotHandle": "h"})),
            |o| o["spec"]["source"]["snapshotHandle"] = json!("other"),
            false,
        ),
        update(
            "source volume mode set for the first time",
            VSC,
            vsc(json!({"snapshotHandle": "h"})),
            |o| o["spec"]["sourceVolumeMode"] = json!("Block"),
            true,
        ),
        update(
            "source volume mode changed",
            VSC,
            vsc_with_mode(),
            |o| o["spec"]["sourceVolumeMode"] = json!("Block"),
            false,
        ),
        update(
            "source volume mode removed",
            VSC,
            vsc_with_mode(),
            |o| {
                o["spec"]
                    .as_object_mut()
                    .map(|s| s.remove("sourceVolumeMode"));
            },
            false,
        ),
        update(
            "deletion policy changed",
            VSC,
            vsc(json!({"snapshotHandle": "h"})),
            |o| o["spec"]["deletionPolicy"] = json!("Retain"),
            true,
        ),
        update(
            "snapshot reference moved",
            VSC,
            vsc(json!({"snapshotHandle": "h"})),
            |o| o["spec"]["volumeSnapshotRef"]["name"] = json!("other"),
            true,
        ),
        // VolumeGroupSnapshot
        create(
            "group snapshot of a selector",
            VGS,
            vgs(selector.clone()),
            true,
        ),
        create(
            "pre-provisioned group snapshot",
            VGS,
            vgs(json!({"volumeGroupSnapshotContentName": "c"})),
            true,
        ),
        create(
            "selector and content name",
            VGS,
            vgs(
                json!({"selector": {"matchLabels": {"app": "db"}}, "volumeGroupSnapshotContentName": "c"}),
            ),
            false,
        ),
        create(
            "empty group class name",
            VGS,
            json!({"spec": {"source": {"volumeGroupSnapshotContentName": "c"}, "volumeGroupSnapshotClassName": ""}}),
            false,
        ),
        update(
            "selector changed",
            VGS,
            vgs(selector.clone()),
            |o| o["spec"]["source"]["selector"] = json!({"matchLabels": {"app": "web"}}),
            false,
        ),
        update(
            "selector swapped for a content name",
            VGS,
            vgs(selector),
            |o| o["spec"]["source"] = json!({"volumeGroupSnapshotContentName": "c"}),
            false,
        ),
        // VolumeGroupSnapshotContent
        create("dynamic group content", VGSC, vgsc_handles(), true),
        create(
            "pre-provisioned group content",
            VGSC,
            vgsc(
                json!({"groupSnapshotHandles": {"volumeGroupSnapshotHandle": "g", "volumeSnapshotHandles": ["s"]}}),
            ),
            true,
        ),
        create(
            "volume handles and group handles",
            VGSC,
            vgsc(
                json!({"volumeHandles": ["v"], "groupSnapshotHandles": {"volumeGroupSnapshotHandle": "g", "volumeSnapshotHandles": ["s"]}}),
            ),
            false,
        ),
        create(
            "group reference without a namespace",
            VGSC,
            json!({"spec": {"driver": "d", "deletionPolicy": "Delete", "source": {"volumeHandles": ["v"]},
                            "volumeGroupSnapshotRef": {"name": "group"}}}),
            false,
        ),
        update(
            "group content driver changed",
            VGSC,
            vgsc_handles(),
            |o| o["spec"]["driver"] = json!("other.csi.e2e.k8s.io"),
            false,
        ),
        update(
            "volume handles changed",
            VGSC,
            vgsc_handles(),
            |o| o["spec"]["source"]["volumeHandles"] = json!(["vol-1"]),
            false,
        ),
        update(
            "group reference renamed",
            VGSC,
            vgsc_handles(),
            |o| o["spec"]["volumeGroupSnapshotRef"]["name"] = json!("other"),
            false,
        ),
        update(
            "group reference uid set for the first time",
            VGSC,
            vgsc_handles(),
            |o| o["spec"]["volumeGroupSnapshotRef"]["uid"] = json!("uid-1"),
            true,
        ),
        update(
            "group reference uid changed",
            VGSC,
            vgsc_with_uid(),
            |o| o["spec"]["volumeGroupSnapshotRef"]["uid"] = json!("uid-2"),
            false,
        ),
        update(
            "group content class changed",
            VGSC,
            vgsc_handles(),
            |o| o["spec"]["volumeGroupSnapshotClassName"] = json!("other"),
            false,
        ),
        update(
            "group content deletion policy changed",
            VGSC,
            vgsc_handles(),
            |o| o["spec"]["deletionPolicy"] = json!("Retain"),
            true,
        ),
        // VolumeGroupSnapshotClass
        create("group snapshot class", VGSCLASS, vgsclass(), true),
        update(
            "group class driver changed",
            VGSCLASS,
            vgsclass(),
            |o| o["driver"] = json!("other"),
            false,
        ),
        update(
            "group class parameters changed",
            VGSCLASS,
            vgsclass(),
            |o| o["parameters"] = json!({"a": "2"}),
            false,
        ),
        update(
            "group class deletion policy changed",
            VGSCLASS,
            vgsclass(),
            |o| o["deletionPolicy"] = json!("Retain"),
            false,
        ),
        update(
            "group class label added",
            VGSCLASS,
            vgsclass(),
            |o| o["metadata"]["labels"] = json!({"a": "b"}),
            true,
        ),
    ]
}

/// The API server's verdict: `Ok(true)` admitted, `Ok(false)` refused as invalid (422).
fn verdict<T>(result: Result<T, kube::Error>) -> anyhow::Result<(bool, String)> {
    match result {
        Ok(_) => Ok((true, String::new())),
        Err(kube::Error::Api(status)) if status.code == 422 => Ok((false, status.message)),
        Err(err) => Err(err.into()),
    }
}

pub async fn run(
    admin: &Client,
    namespace: &str,
    webhook: &Webhook,
    pki: &WebhookPki,
) -> anyhow::Result<()> {
    let id = suffix();
    let mut report = Vec::new();
    let mut disagreements = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for (i, case) in cases().into_iter().enumerate() {
        let kind = case.kind;
        let ns = kind.namespaced.then_some(namespace);
        let objects = api(admin, kind.group, "v1", kind.kind, kind.plural, ns);
        let name = format!("cel-{i}-{id}");
        let mut body = case.body.clone();
        body["apiVersion"] = json!(format!("{}/v1", kind.group));
        body["kind"] = json!(kind.kind);
        body["metadata"] = json!({"name": name});
        if let Some(ns) = ns {
            body["metadata"]["namespace"] = json!(ns);
        }
        let resource = json!({"group": kind.group, "version": "v1", "resource": kind.plural});
        let (cel, cel_message, request) = match case.update {
            None => {
                let (ok, message) = verdict(
                    objects
                        .create(&PostParams::default(), &object(body.clone())?)
                        .await,
                )?;
                let request = json!({"uid": name, "operation": "CREATE", "resource": resource,
                                     "name": name, "object": body, "oldObject": null});
                (ok, message, request)
            }
            Some(change) => {
                let stored = objects
                    .create(&PostParams::default(), &object(body)?)
                    .await
                    .with_context(|| format!("{}: creating the object to update", case.name))?;
                let old = serde_json::to_value(&stored)?;
                let mut new = old.clone();
                change(&mut new);
                let new_object: DynamicObject = serde_json::from_value(new.clone())?;
                let (ok, message) = verdict(
                    objects
                        .replace(&name, &PostParams::default(), &new_object)
                        .await,
                )?;
                let request = json!({"uid": name, "operation": "UPDATE", "resource": resource,
                                     "name": name, "object": new, "oldObject": old});
                (ok, message, request)
            }
        };
        let _ = objects.delete(&name, &DeleteParams::default()).await;
        let hook = webhook.admit(pki, kind.path, request).await?;
        let hook_ok = hook.is_ok();
        let hook_message = hook.clone().err();
        let word = |ok| if ok { "admit" } else { "refuse" };
        report.push(format!(
            "{:<45} CEL: {:<7} webhook: {:<7}{}{}",
            case.name,
            word(cel),
            word(hook_ok),
            if cel_message.is_empty() {
                String::new()
            } else {
                format!("\n    API server: {cel_message}")
            },
            hook_message
                .as_ref()
                .map(|m| format!("\n    webhook:    {m}"))
                .unwrap_or_default(),
        ));
        if cel != hook_ok {
            disagreements.push(case.name);
        }
        // Refused by both: in the same words (the API server prefixes what it refused).
        if let Some(message) = &hook_message
            && !cel
            && !cel_message.ends_with(&format!("is invalid: {message}"))
        {
            disagreements.push(case.name);
        }
        ensure!(
            cel == case.valid,
            "{}: the table expects {}, the API server said {}",
            case.name,
            case.valid,
            cel
        );
        if case.valid {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    eprintln!("{}", report.join("\n"));
    if !disagreements.is_empty() {
        bail!(
            "the webhook and the CRDs' CEL rules disagree on {disagreements:?}:\n{}",
            report.join("\n")
        );
    }
    ensure!(
        valid >= 10 && invalid >= 10,
        "the table must judge both ways ({valid} valid, {invalid} invalid)"
    );
    Ok(())
}
