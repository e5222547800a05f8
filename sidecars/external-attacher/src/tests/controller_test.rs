//! Port of upstream's `pkg/controller/controller_test.go`: `TestShouldEnqueueVAChange`
//! (8 cases) and `TestProcessFinalizers` (6 cases).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    GCEPersistentDiskVolumeSource, PersistentVolume, PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::{
    VolumeAttachment, VolumeAttachmentSpec, VolumeAttachmentStatus, VolumeError,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, ObjectMeta, Time,
};
use k8s_openapi::jiff::Timestamp;

use crate::controller::{AttachController, should_enqueue_va_change};
use crate::handler::TrivialHandler;
use crate::tests::fake::FakeKube;

fn volume_error(message: &str) -> Option<VolumeError> {
    Some(VolumeError {
        message: Some(message.to_string()),
        ..Default::default()
    })
}

fn status_of(va: &mut VolumeAttachment) -> &mut VolumeAttachmentStatus {
    va.status.get_or_insert_with(Default::default)
}

#[test]
fn test_should_enqueue_va_change() {
    let mut va1 = VolumeAttachment {
        metadata: ObjectMeta {
            name: Some("foo".to_string()),
            resource_version: Some("1".to_string()),
            ..Default::default()
        },
        spec: VolumeAttachmentSpec {
            attacher: "1".to_string(),
            ..Default::default()
        },
        status: Some(VolumeAttachmentStatus {
            attached: false,
            ..Default::default()
        }),
    };

    // (Named as upstream: this copy is taken before va1 gets its attach error.)
    let va1_with_attach_error = va1.clone();
    status_of(&mut va1).attach_error = volume_error("mock error1");

    let va1_with_detach_error = va1.clone();
    status_of(&mut va1).detach_error = volume_error("mock error1");

    let mut va2_changed_spec = va1.clone();
    va2_changed_spec.metadata.resource_version = Some("2".to_string());
    va2_changed_spec.spec.attacher = "2".to_string();

    let mut va2_changed_metadata = va1.clone();
    va2_changed_metadata.metadata.resource_version = Some("2".to_string());
    va2_changed_metadata.metadata.annotations =
        Some(BTreeMap::from([("foo".to_string(), "bar".to_string())]));

    let mut va2_changed_attach_error = va1.clone();
    va2_changed_attach_error.metadata.resource_version = Some("2".to_string());
    status_of(&mut va2_changed_attach_error).attach_error = volume_error("mock error2");

    let mut va2_changed_detach_error = va1.clone();
    va2_changed_detach_error.metadata.resource_version = Some("2".to_string());
    status_of(&mut va2_changed_detach_error).detach_error = volume_error("mock error2");

    let mut va2_append_managed_fields = va1.clone();
    va2_append_managed_fields.metadata.resource_version = Some("2".to_string());
    va2_append_managed_fields
        .metadata
        .managed_fields
        .get_or_insert_with(Vec::new)
        .push(ManagedFieldsEntry {
            api_version: Some("storage.k8s.io/v1beta1".to_string()),
            manager: Some("csi-attacher".to_string()),
            operation: Some("Update".to_string()),
            fields_type: Some("FieldsV1".to_string()),
            fields_v1: Some(FieldsV1(
                serde_json::from_str(r#"{"f:metadata":{"f:annotations":{".":{},"f:csi.alpha.kubernetes.io/node-id":{}},"f:finalizers":{".":{},"v:\"external-attacher/csi-cdsplugin\"":{}}},"f:status":{"f:attached":{},"f:attachmentMetadata":{".":{},"f:devName":{},"f:serial":{}}}}"#)
                    .expect("valid JSON"),
            )),
            ..Default::default()
        });

    let tests: [(&str, &VolumeAttachment, &VolumeAttachment, bool); 8] = [
        ("periodic sync", &va1, &va1, true),
        ("changed spec", &va1, &va2_changed_spec, true),
        ("changed metadata", &va1, &va2_changed_metadata, true),
        ("added attachError", &va1, &va2_changed_attach_error, false),
        ("added detachError", &va1, &va2_changed_detach_error, false),
        (
            "changed attachError",
            &va1_with_attach_error,
            &va2_changed_attach_error,
            false,
        ),
        (
            "changed detachError",
            &va1_with_detach_error,
            &va2_changed_detach_error,
            false,
        ),
        (
            "appended managedFields",
            &va1,
            &va2_append_managed_fields,
            false,
        ),
    ];
    for (name, old, new, expected) in tests {
        assert_eq!(
            should_enqueue_va_change(old, new),
            expected,
            "{name}: expected result {expected}"
        );
    }
}

#[test]
fn test_process_finalizers() {
    let kube = FakeKube::new();
    let c = AttachController::new(
        "pd.csi.storage.gke.io",
        Arc::new(TrivialHandler::new(Arc::new(kube.clone()))),
        Arc::new(kube),
    );
    let time = Some(Time(Timestamp::now()));
    let finalizers = || Some(vec!["external-attacher/pd-csi-storage-gke-io".to_string()]);
    let gce_pd = || {
        Some(PersistentVolumeSpec {
            gce_persistent_disk: Some(GCEPersistentDiskVolumeSource::default()),
            ..Default::default()
        })
    };

    let testcases: Vec<(&str, PersistentVolume, bool)> = vec![
        (
            "nothing interesting in the PV",
            PersistentVolume::default(),
            false,
        ),
        (
            "no deletion timestamp, has finalizer",
            PersistentVolume {
                metadata: ObjectMeta {
                    finalizers: finalizers(),
                    ..Default::default()
                },
                ..Default::default()
            },
            false,
        ),
        (
            "Has deletion timestamp, has finalizer",
            PersistentVolume {
                metadata: ObjectMeta {
                    deletion_timestamp: time.clone(),
                    finalizers: finalizers(),
                    ..Default::default()
                },
                ..Default::default()
            },
            true,
        ),
        (
            "no deletion timestamp, has finalizer, migrated PV, no migrated-to annotation",
            PersistentVolume {
                metadata: ObjectMeta {
                    finalizers: finalizers(),
                    ..Default::default()
                },
                spec: gce_pd(),
                ..Default::default()
            },
            true,
        ),
        (
            "no deletion timestamp, has finalizer, migrated PV, no migrated-to annotation with random anno",
            PersistentVolume {
                metadata: ObjectMeta {
                    finalizers: finalizers(),
                    annotations: Some(BTreeMap::from([(
                        "random".to_string(),
                        "random".to_string(),
                    )])),
                    ..Default::default()
                },
                spec: gce_pd(),
                ..Default::default()
            },
            true,
        ),
        (
            "no deletion timestamp, has finalizer, migrated PV, has migrated-to annotation",
            PersistentVolume {
                metadata: ObjectMeta {
                    finalizers: finalizers(),
                    annotations: Some(BTreeMap::from([(
                        "pv.kubernetes.io/migrated-to".to_string(),
                        "pd.csi.storage.gke.io".to_string(),
                    )])),
                    ..Default::default()
                },
                spec: gce_pd(),
                ..Default::default()
            },
            false,
        ),
    ];
    for (name, pv, expected) in testcases {
        assert_eq!(
            c.process_finalizers(&pv),
            expected,
            "Error executing test {name}"
        );
    }
}
