//! Port of upstream's `pkg/controller/csi_handler_test.go`: `TestCSIHandler` (61 cases),
//! `TestVolumeAttachmentWithErrorCode` (1), `TestCSIHandlerReconcileVA` (4) and
//! `TestCSIHandlerReadOnly` (2), with upstream's case names. `TestMarkAsMigrated` is ported
//! where the `migrated` label of the CSI call metric is set, in `csi-connection`
//! (`mark_as_migrated_as_upstream`). The CSI migration cases (a GCE PD PersistentVolume
//! attached and detached as the CSI volume it translates to) keep upstream's expectations.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, GCEPersistentDiskVolumeSource, PersistentVolume,
    PersistentVolumeSpec, Secret, SecretReference,
};
use k8s_openapi::api::storage::v1::{
    CSINode, CSINodeDriver, CSINodeSpec, VolumeAttachment, VolumeError,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tonic::{Code, Status};

use super::framework::*;
use crate::attacher::{Attacher, CsiError};
use crate::handler::{CsiHandler, CsiHandlerConfig, Handler};
use crate::kube::{ApiError, KubeClient, KubeListers, resources};
use crate::lister::VolumeLister;
use crate::tests::fake::{FakeKube, Verb, resource};
use crate::util::VA_NODE_ID_ANNOTATION;

const TIMEOUT: Duration = Duration::from_millis(10);

fn config(read_only: bool) -> CsiHandlerConfig {
    CsiHandlerConfig {
        attacher_name: TEST_ATTACHER_NAME.to_string(),
        timeout: TIMEOUT,
        supports_publish_read_only: read_only,
        supports_single_node_multi_writer: false,
        default_fs_type: DEFAULT_FS_TYPE.to_string(),
        attach_error_code: true,
    }
}

fn csi_handler_factory(
    client: Arc<dyn KubeClient>,
    listers: Arc<dyn KubeListers>,
    attacher: Arc<dyn Attacher>,
    lister: Arc<dyn VolumeLister>,
) -> Arc<dyn Handler> {
    Arc::new(CsiHandler::new(
        config(true), // supports PUBLISH_READONLY, not SINGLE_NODE_MULTI_WRITER
        client,
        listers,
        attacher,
        Some(lister),
    ))
}

fn csi_handler_factory_no_read_only(
    client: Arc<dyn KubeClient>,
    listers: Arc<dyn KubeListers>,
    attacher: Arc<dyn Attacher>,
    lister: Arc<dyn VolumeLister>,
) -> Arc<dyn Handler> {
    Arc::new(CsiHandler::new(
        config(false), // supports neither PUBLISH_READONLY nor SINGLE_NODE_MULTI_WRITER
        client,
        listers,
        attacher,
        Some(lister),
    ))
}

fn pv() -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(TEST_PV_NAME.to_string()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                driver: TEST_ATTACHER_NAME.to_string(),
                volume_handle: TEST_VOLUME_HANDLE.to_string(),
                read_only: Some(false),
                ..Default::default()
            }),
            access_modes: Some(vec!["ReadWriteMany".to_string()]),
            ..Default::default()
        }),
        status: None,
    }
}

fn gce_pd_pv() -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(TEST_PV_NAME.to_string()),
            labels: Some(BTreeMap::from([(
                "failure-domain.beta.kubernetes.io/zone".to_string(),
                "testZone".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            gce_persistent_disk: Some(GCEPersistentDiskVolumeSource {
                pd_name: "testpd".to_string(),
                fs_type: Some("ext4".to_string()),
                partition: Some(0),
                read_only: Some(false),
            }),
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            ..Default::default()
        }),
        status: None,
    }
}

pub(super) fn gce_pd_pv_with_finalizer() -> PersistentVolume {
    let mut pv = gce_pd_pv();
    pv.metadata.finalizers = Some(vec![FIN.to_string()]);
    pv
}

fn pv_with_driver_name(driver: &str) -> PersistentVolume {
    let mut pv = pv();
    csi_of(&mut pv).driver = driver.to_string();
    pv
}

pub(super) fn pv_with_finalizer() -> PersistentVolume {
    let mut pv = pv();
    pv.metadata.finalizers = Some(vec![FIN.to_string()]);
    pv
}

fn pv_with_finalizers(mut pv: PersistentVolume, finalizers: &[&str]) -> PersistentVolume {
    pv.metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .extend(finalizers.iter().map(|f| f.to_string()));
    pv
}

fn pv_deleted(mut pv: PersistentVolume) -> PersistentVolume {
    pv.metadata.deletion_timestamp = Some(zero_time());
    pv
}

fn csi_of(pv: &mut PersistentVolume) -> &mut CSIPersistentVolumeSource {
    pv.spec
        .as_mut()
        .and_then(|spec| spec.csi.as_mut())
        .expect("CSI PV")
}

fn inline_csi_of(va: &mut VolumeAttachment) -> &mut CSIPersistentVolumeSource {
    va.spec
        .source
        .inline_volume_spec
        .as_mut()
        .and_then(|spec| spec.csi.as_mut())
        .expect("inline CSI spec")
}

fn attributes(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    annotations(pairs)
}

fn pv_with_attributes(mut pv: PersistentVolume, attrs: &[(&str, &str)]) -> PersistentVolume {
    csi_of(&mut pv).volume_attributes = attributes(attrs);
    pv
}

fn va_inline_spec_with_attributes(
    mut va: VolumeAttachment,
    attrs: &[(&str, &str)],
) -> VolumeAttachment {
    inline_csi_of(&mut va).volume_attributes = attributes(attrs);
    va
}

fn secret_ref(name: &str) -> Option<SecretReference> {
    Some(SecretReference {
        name: Some(name.to_string()),
        namespace: Some("default".to_string()),
    })
}

fn pv_with_secret(mut pv: PersistentVolume, secret_name: &str) -> PersistentVolume {
    csi_of(&mut pv).controller_publish_secret_ref = secret_ref(secret_name);
    pv
}

fn va_inline_spec_with_secret(mut va: VolumeAttachment, secret_name: &str) -> VolumeAttachment {
    inline_csi_of(&mut va).controller_publish_secret_ref = secret_ref(secret_name);
    va
}

fn pv_read_only(mut pv: PersistentVolume) -> PersistentVolume {
    csi_of(&mut pv).read_only = Some(true);
    pv
}

fn va_inline_spec_read_only(mut va: VolumeAttachment) -> VolumeAttachment {
    inline_csi_of(&mut va).read_only = Some(true);
    va
}

pub(super) fn csi_node() -> CSINode {
    CSINode {
        metadata: ObjectMeta {
            name: Some(TEST_NODE_NAME.to_string()),
            ..Default::default()
        },
        spec: CSINodeSpec {
            drivers: vec![CSINodeDriver {
                name: TEST_ATTACHER_NAME.to_string(),
                node_id: TEST_NODE_ID.to_string(),
                ..Default::default()
            }],
        },
    }
}

fn csi_node_empty() -> CSINode {
    CSINode {
        metadata: ObjectMeta {
            name: Some(TEST_NODE_NAME.to_string()),
            ..Default::default()
        },
        spec: CSINodeSpec { drivers: vec![] },
    }
}

fn empty_secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("emptySecret".to_string()),
            namespace: Some("default".to_string()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("secret".to_string()),
            namespace: Some("default".to_string()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "foo".to_string(),
            ByteString(b"bar".to_vec()),
        )])),
        ..Default::default()
    }
}

fn va_with_attach_error_and_code(
    mut va: VolumeAttachment,
    message: &str,
    code: Code,
) -> VolumeAttachment {
    va.status.get_or_insert_with(Default::default).attach_error = Some(VolumeError {
        message: Some(message.to_string()),
        error_code: Some(code as i32),
        ..Default::default()
    });
    va
}

fn pv_forbidden() -> ApiError {
    ApiError::forbidden("persistentvolume", "pv1", "Mock error")
}

fn pvs_forbidden() -> ApiError {
    ApiError::forbidden("persistentvolumes", "pv1", "mock error")
}

fn va_forbidden() -> ApiError {
    ApiError::forbidden(resources::VOLUME_ATTACHMENTS, "pv1-node1", "Mock error")
}

fn va_forbidden_lowercase() -> ApiError {
    ApiError::forbidden(resources::VOLUME_ATTACHMENTS, "pv1-node1", "mock error")
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

// upstream's named values for csiCall fields
const READ_WRITE: bool = false;
const READ_ONLY: bool = true;
const NOT_DETACHED: bool = false;
const DETACHED: bool = true;
/// The value is irrelevant for the call.
const IGNORED: bool = false;
const SUCCESS: Option<CsiError> = None;

fn no_attrs() -> std::collections::HashMap<String, String> {
    m(&[])
}

fn no_secrets() -> std::collections::HashMap<String, String> {
    m(&[])
}

fn no_metadata() -> std::collections::HashMap<String, String> {
    m(&[])
}

fn fin() -> &'static str {
    FIN
}

// Checks of the resulting objects (not in upstream's tables).

fn server_va(kube: &FakeKube) -> Result<VolumeAttachment, String> {
    kube.server_volume_attachment(VA_NAME)
        .ok_or_else(|| "the VolumeAttachment is gone".to_string())
}

fn check_attached(kube: &FakeKube) -> Result<(), String> {
    let va = server_va(kube)?;
    let status = va.status.clone().unwrap_or_default();
    let node_id = va
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(VA_NODE_ID_ANNOTATION));
    if !status.attached
        || status.attach_error.is_some()
        || va.metadata.finalizers.as_deref() != Some(&[FIN.to_string()][..])
        || node_id.map(String::as_str) != Some(TEST_NODE_ID)
    {
        return Err(format!("not attached as expected: {va:?}"));
    }
    Ok(())
}

fn check_attached_with_metadata(kube: &FakeKube) -> Result<(), String> {
    check_attached(kube)?;
    let va = server_va(kube)?;
    let metadata = va.status.and_then(|s| s.attachment_metadata);
    if metadata != attributes(&[("foo", "bar")]) {
        return Err(format!("attachment metadata: {metadata:?}"));
    }
    Ok(())
}

fn check_detached(kube: &FakeKube) -> Result<(), String> {
    let va = server_va(kube)?;
    let status = va.status.clone().unwrap_or_default();
    if status.attached || status.detach_error.is_some() || va.metadata.finalizers.is_some() {
        return Err(format!("not detached as expected: {va:?}"));
    }
    Ok(())
}

fn check_pv_finalizer_added(kube: &FakeKube) -> Result<(), String> {
    let pv = kube.server_persistent_volume(TEST_PV_NAME).ok_or("no PV")?;
    if pv.metadata.finalizers.as_deref() != Some(&[FIN.to_string()][..]) {
        return Err(format!("PV finalizers: {:?}", pv.metadata.finalizers));
    }
    check_attached(kube)
}

fn check_pv_finalizer_removed(kube: &FakeKube) -> Result<(), String> {
    let pv = kube.server_persistent_volume(TEST_PV_NAME).ok_or("no PV")?;
    if pv
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&FIN.to_string())
    {
        return Err("the PV finalizer is still there".to_string());
    }
    Ok(())
}

fn check_other_pv_finalizers_preserved(kube: &FakeKube) -> Result<(), String> {
    let pv = kube.server_persistent_volume(TEST_PV_NAME).ok_or("no PV")?;
    let expected = vec!["foo/bar".to_string(), "bar/baz".to_string()];
    if pv.metadata.finalizers != Some(expected) {
        return Err(format!("PV finalizers: {:?}", pv.metadata.finalizers));
    }
    Ok(())
}

#[test]
fn test_csi_handler() {
    run_table(csi_handler_factory, || {
        let tests = csi_handler_cases();
        assert_eq!(tests.len(), 61, "upstream's TestCSIHandler has 61 cases");
        tests
    });
}

fn csi_handler_cases() -> Vec<TestCase> {
    vec![
        //
        // ATTACH
        //
        TestCase {
            name: "VolumeAttachment added -> successful attachment",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(
                false, /*attached*/
                "",    /*finalizer*/
                None,  /* annotations */
            )),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_attached),
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with InlineVolumeSpec -> successful attachment",
            initial_objects: vec![csi_node().into()],
            added_va: Some(va_with_inline_spec(va(false, "", None))),
            expected_actions: vec![
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "readOnly VolumeAttachment added -> successful attachment",
            initial_objects: vec![pv_read_only(pv_with_finalizer()).into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_ONLY,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "readOnly VolumeAttachment with InlineVolumeSpec -> successful attachment",
            initial_objects: vec![csi_node().into()],
            added_va: Some(va_inline_spec_read_only(va_with_inline_spec(va(
                false, "", None,
            )))),
            expected_actions: vec![
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_ONLY,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment updated -> successful attachment",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            updated_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with InlineVolumeSpec updated -> successful attachment",
            initial_objects: vec![csi_node().into()],
            updated_va: Some(va_with_inline_spec(va(false, "", None))),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with attributes -> successful attachment",
            initial_objects: vec![
                pv_with_attributes(pv_with_finalizer(), &[("foo", "bar")]).into(),
                csi_node().into(),
            ],
            updated_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                m(&[("foo", "bar")]),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with InlineVolumeSpec and attributes -> successful attachment",
            initial_objects: vec![csi_node().into()],
            updated_va: Some(va_inline_spec_with_attributes(
                va_with_inline_spec(va(false, "", None)),
                &[("foo", "bar")],
            )),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                m(&[("foo", "bar")]),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with secrets -> successful attachment",
            initial_objects: vec![
                pv_with_secret(pv_with_finalizer(), "secret").into(),
                secret().into(),
                csi_node().into(),
            ],
            updated_va: Some(va(false, "", None)),
            expected_actions: vec![
                secret_get_action("default", "secret"),
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                m(&[("foo", "bar")]),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with InlineVolumeSpec and secrets -> successful attachment",
            initial_objects: vec![secret().into(), csi_node().into()],
            updated_va: Some(va_inline_spec_with_secret(
                va_with_inline_spec(va(false, "", None)),
                "secret",
            )),
            expected_actions: vec![
                secret_get_action("default", "secret"),
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                m(&[("foo", "bar")]),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with empty secrets -> successful attachment",
            initial_objects: vec![
                pv_with_secret(pv_with_finalizer(), "emptySecret").into(),
                empty_secret().into(),
                csi_node().into(),
            ],
            updated_va: Some(va(false, "", None)),
            expected_actions: vec![
                secret_get_action("default", "emptySecret"),
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                m(&[]),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with InlineVolumeSpec and empty secrets -> successful attachment",
            initial_objects: vec![empty_secret().into(), csi_node().into()],
            updated_va: Some(va_inline_spec_with_secret(
                va_with_inline_spec(va(false, "", None)),
                "emptySecret",
            )),
            expected_actions: vec![
                secret_get_action("default", "emptySecret"),
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                m(&[]),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with missing secrets -> error",
            initial_objects: vec![
                pv_with_secret(pv_with_finalizer(), "unknownSecret").into(),
                csi_node().into(),
            ],
            updated_va: Some(va(false, "", None)),
            expected_actions: vec![
                secret_get_action("default", "unknownSecret"),
                va_status_patch_action(
                    va(false, "", None),
                    va_with_attach_error(
                        va(false, "", None),
                        "failed to load secret \"default/unknownSecret\": secrets \"unknownSecret\" not found",
                    ),
                ),
            ],
            expected_csi_calls: vec![],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment updated -> PV finalizer is added",
            initial_objects: vec![pv().into(), csi_node().into()],
            updated_va: Some(va(false, "", None)),
            expected_actions: vec![
                // PV Finalizer after VA
                pv_add_finalizer_action(pv()),
                // VA Finalizer is saved last
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_pv_finalizer_added),
            ..Default::default()
        },
        TestCase {
            name: "error saving PV finalizer -> controller retries",
            initial_objects: vec![pv().into(), csi_node().into()],
            updated_va: Some(va(false, "", None)),
            // Update fails once, succeeds the 2nd time.
            reactors: vec![fail_first(
                Verb::Patch,
                resource::PERSISTENT_VOLUMES,
                1,
                pv_forbidden,
            )],
            expected_actions: vec![
                // PV Finalizer - fails
                pv_add_finalizer_action(pv()),
                // Error is saved
                va_status_patch_action(
                    va(false, "", None),
                    va_with_attach_error(
                        va(false, "", None),
                        "could not add PersistentVolume finalizer: persistentvolume \"pv1\" is forbidden: Mock error",
                    ),
                ),
                // Second PV Finalizer - succeeds
                pv_add_finalizer_action(pv()),
                // VA Finalizer is saved first, error remains
                va_patch_action(
                    va_with_attach_error(
                        va(false, "", None),
                        "could not add PersistentVolume finalizer: persistentvolume \"pv1\" is forbidden: Mock error",
                    ),
                    va_with_attach_error(
                        va(false, fin(), ann()),
                        "could not add PersistentVolume finalizer: persistentvolume \"pv1\" is forbidden: Mock error",
                    ),
                ),
                // Attach succeeds, error is deleted
                va_status_patch_action(
                    va_with_attach_error(
                        va(false, fin(), ann()),
                        "could not add PersistentVolume finalizer: persistentvolume \"pv1\" is forbidden: Mock error",
                    ),
                    va(true, fin(), ann()),
                ),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_pv_finalizer_added),
            ..Default::default()
        },
        TestCase {
            name: "already attached volume -> ignored",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            updated_va: Some(va(true, fin(), ann())),
            expected_actions: vec![],
            expected_csi_calls: vec![],
            ..Default::default()
        },
        TestCase {
            name: "PV with deletion timestamp -> ignored with error",
            initial_objects: vec![pv_deleted(pv()).into(), csi_node().into()],
            updated_va: Some(va(false, fin(), ann())),
            expected_actions: vec![va_status_patch_action(
                va(false, fin(), ann()),
                va_with_attach_error(
                    va(false, fin(), ann()),
                    "PersistentVolume \"pv1\" is marked for deletion",
                ),
            )],
            expected_csi_calls: vec![],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment added -> successful attachment incl. metadata",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(
                    va(false, fin(), ann()),
                    va_with_metadata(va(true, fin(), ann()), &[("foo", "bar")]),
                ),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                m(&[("foo", "bar")]),
                ms(0),
            )],
            additional_check: Some(check_attached_with_metadata),
            ..Default::default()
        },
        TestCase {
            name: "unknown driver -> ignored",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va_with_invalid_driver(va(false, fin(), ann()))),
            expected_actions: vec![],
            ..Default::default()
        },
        TestCase {
            name: "unknown PV -> error",
            initial_objects: vec![csi_node().into()],
            added_va: Some(va(false, fin(), ann())),
            expected_actions: vec![va_status_patch_action(
                va(false, fin(), ann()),
                va_with_attach_error(
                    va(false, fin(), ann()),
                    "persistentvolume \"pv1\" not found",
                ),
            )],
            ..Default::default()
        },
        TestCase {
            name: "unknown PV -> error + error saving the error",
            initial_objects: vec![csi_node().into()],
            added_va: Some(va(false, fin(), ann())),
            // Update fails 2 times, succeeds the 3rd time.
            reactors: vec![fail_first(
                Verb::Patch,
                resource::VOLUME_ATTACHMENTS,
                2,
                va_forbidden,
            )],
            expected_actions: vec![
                va_status_patch_action(
                    va(false, fin(), ann()),
                    va_with_attach_error(
                        va(false, fin(), ann()),
                        "persistentvolume \"pv1\" not found",
                    ),
                ),
                va_status_patch_action(
                    va(false, fin(), ann()),
                    va_with_attach_error(
                        va(false, fin(), ann()),
                        "persistentvolume \"pv1\" not found",
                    ),
                ),
                va_status_patch_action(
                    va(false, fin(), ann()),
                    va_with_attach_error(
                        va(false, fin(), ann()),
                        "persistentvolume \"pv1\" not found",
                    ),
                ),
            ],
            ..Default::default()
        },
        TestCase {
            name: "neither PV nor InlineVolumeSpec reference-> error",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va_with_no_pv_reference_nor_inline_volume_spec(va(
                false,
                fin(),
                ann(),
            ))),
            expected_actions: vec![va_status_patch_action(
                va_with_no_pv_reference_nor_inline_volume_spec(va(false, fin(), ann())),
                va_with_attach_error(
                    va_with_no_pv_reference_nor_inline_volume_spec(va(false, fin(), ann())),
                    "neither InlineCSIVolumeSource nor PersistentVolumeName specified in VA source",
                ),
            )],
            ..Default::default()
        },
        TestCase {
            name: "both PV and InlineVolumeSpec reference-> error",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va_add_inline_spec(va(false, fin(), ann()))),
            expected_actions: vec![va_status_patch_action(
                va_with_no_pv_reference_nor_inline_volume_spec(va(false, fin(), ann())),
                va_with_attach_error(
                    va_with_no_pv_reference_nor_inline_volume_spec(va(false, fin(), ann())),
                    "both InlineCSIVolumeSource and PersistentVolumeName specified in VA source",
                ),
            )],
            ..Default::default()
        },
        TestCase {
            name: "unknown node -> error",
            initial_objects: vec![pv_with_finalizer().into()],
            added_va: Some(va(false, fin(), ann())),
            expected_actions: vec![va_status_patch_action(
                va(false, fin(), ann()),
                va_with_attach_error(
                    va(false, fin(), ann()),
                    "csinode.storage.k8s.io \"node1\" not found",
                ),
            )],
            ..Default::default()
        },
        TestCase {
            name: "failed write with VA finializers -> controller retries",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            // Update fails 2 times, succeeds the 3rd time.
            reactors: vec![fail_first(
                Verb::Patch,
                resource::VOLUME_ATTACHMENTS,
                2,
                va_forbidden,
            )],
            expected_actions: vec![
                // Controller tries to save VA finalizer, it fails
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                // Controller tries to save error, it fails too
                va_status_patch_action(
                    va(false, "", None),
                    va_with_attach_error(
                        va(false, "", None),
                        "could not save VolumeAttachment: volumeattachments.storage.k8s.io \"pv1-node1\" is forbidden: Mock error",
                    ),
                ),
                // Controller tries to save VA finalizer again, it succeeds
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_attached),
            ..Default::default()
        },
        TestCase {
            name: "failed write with attached=true -> controller retries",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            reactors: vec![fail_nth(
                Verb::Patch,
                resource::VOLUME_ATTACHMENTS,
                2,
                || ApiError::forbidden(resources::VOLUME_ATTACHMENTS, "pv1-node1", "mock error"),
            )],
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                // Second save with attached=true fails
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
                // Our implementation of fake PATCH did not store the first VA with annotation +
                // finalizer, the controller tries to save it again.
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                // Final save that succeeds.
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![
                call(
                    "attach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    NOT_DETACHED,
                    no_metadata(),
                    ms(0),
                ),
                call(
                    "attach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    NOT_DETACHED,
                    no_metadata(),
                    ms(0),
                ),
            ],
            additional_check: Some(check_attached),
            ..Default::default()
        },
        TestCase {
            name: "CSI attach fails -> controller retries",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(
                    va(false, fin(), ann()),
                    va_with_attach_error(va(false, fin(), ann()), "mock error"),
                ),
                // Our implementation of fake PATCH did not store the first VA with annotation +
                // finalizer, the controller tries to save it again.
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                // Final save that succeeds.
                va_status_patch_action(
                    va_with_attach_error(va(false, fin(), ann()), "mock error"),
                    va(true, fin(), ann()),
                ),
            ],
            expected_csi_calls: vec![
                call(
                    "attach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    plain_error("mock error"),
                    NOT_DETACHED,
                    no_metadata(),
                    ms(0),
                ),
                call(
                    "attach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    NOT_DETACHED,
                    no_metadata(),
                    ms(0),
                ),
            ],
            additional_check: Some(check_attached),
            ..Default::default()
        },
        TestCase {
            name: "CSI attach times out -> controller retries",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                // Add finalizer again (see: https://github.com/kubernetes-csi/external-attacher/issues/228)
                va_status_patch_action(
                    va(false, fin(), ann()),
                    va_with_attach_error(va(false, fin(), ann()), "context deadline exceeded"),
                ),
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(
                    va_with_attach_error(va(false, fin(), ann()), "context deadline exceeded"),
                    va(true, fin(), ann()),
                ),
            ],
            expected_csi_calls: vec![
                call(
                    "attach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    NOT_DETACHED,
                    no_metadata(),
                    ms(500),
                ),
                call(
                    "attach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    NOT_DETACHED,
                    no_metadata(),
                    ms(0),
                ),
            ],
            additional_check: Some(check_attached),
            ..Default::default()
        },
        TestCase {
            name: "Node without CSINode -> error",
            // upstream also has a Node object here; nothing in the attacher reads Nodes.
            initial_objects: vec![pv_with_finalizer().into()],
            added_va: Some(va(false, fin(), ann())),
            expected_actions: vec![va_status_patch_action(
                va(false, fin(), ann()),
                va_with_attach_error(
                    va(false, fin(), ann()),
                    "csinode.storage.k8s.io \"node1\" not found",
                ),
            )],
            ..Default::default()
        },
        TestCase {
            name: "CSINode exists without the driver -> error",
            initial_objects: vec![pv_with_finalizer().into(), csi_node_empty().into()],
            added_va: Some(va(false, fin(), ann())),
            expected_actions: vec![va_status_patch_action(
                va(false, fin(), ann()),
                va_with_attach_error(
                    va(false, fin(), ann()),
                    "CSINode node1 does not contain driver csi/test",
                ),
            )],
            ..Default::default()
        },
        TestCase {
            name: "CSINode exists with the driver, Node without annotations -> success",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with GCEPersistentDiskVolumeSource -> successful attachment",
            initial_objects: vec![gce_pd_pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                "projects/UNSPECIFIED/zones/testZone/disks/testpd",
                TEST_NODE_ID,
                m(&[("partition", "")]),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        //
        // DETACH
        //
        TestCase {
            name: "VolumeAttachment marked for deletion -> successful detach",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(deleted(va(true, fin(), ann()))),
            expected_actions: vec![
                va_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va(true /*attached*/, "", ann())),
                ),
                va_status_patch_action(
                    deleted(va(true, "", ann())),
                    deleted(va(false /*attached*/, "", ann())),
                ),
            ],
            expected_csi_calls: vec![call(
                "detach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                IGNORED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_detached),
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with InlineVolumeSpec marked for deletion -> successful detach",
            initial_objects: vec![csi_node().into()],
            added_va: Some(deleted(va_with_inline_spec(va(true, fin(), ann())))),
            expected_actions: vec![
                va_patch_action(
                    deleted(va_with_inline_spec(va(true, fin(), ann()))),
                    deleted(va_with_inline_spec(va(true, "", ann()))),
                ),
                va_status_patch_action(
                    deleted(va_with_inline_spec(va(true, "", ann()))),
                    deleted(va_with_inline_spec(va(false, "", ann()))),
                ),
            ],
            expected_csi_calls: vec![call(
                "detach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                IGNORED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_detached),
            ..Default::default()
        },
        TestCase {
            name: "volume with secrets -> successful detach",
            initial_objects: vec![
                pv_with_secret(pv_with_finalizer(), "secret").into(),
                secret().into(),
            ],
            added_va: Some(deleted(va(true, fin(), ann()))),
            expected_actions: vec![
                secret_get_action("default", "secret"),
                va_patch_action(
                    deleted(va_with_inline_spec(va(true, fin(), ann()))),
                    deleted(va_with_inline_spec(va(true, "", ann()))),
                ),
                va_status_patch_action(deleted(va(true, "", ann())), deleted(va(false, "", ann()))),
            ],
            expected_csi_calls: vec![call(
                "detach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                m(&[("foo", "bar")]),
                READ_WRITE,
                SUCCESS,
                IGNORED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_detached),
            ..Default::default()
        },
        TestCase {
            name: "volume attachment with InlineVolumeSpec and secrets -> successful detach",
            initial_objects: vec![secret().into()],
            added_va: Some(deleted(va_inline_spec_with_secret(
                va_with_inline_spec(va(true, fin(), ann())),
                "secret",
            ))),
            expected_actions: vec![
                secret_get_action("default", "secret"),
                va_patch_action(
                    deleted(va_inline_spec_with_secret(
                        va_with_inline_spec(va(true, fin(), ann())),
                        "secret",
                    )),
                    deleted(va_inline_spec_with_secret(
                        va_with_inline_spec(va(true, "", ann())),
                        "secret",
                    )),
                ),
                va_status_patch_action(
                    deleted(va_inline_spec_with_secret(
                        va_with_inline_spec(va(true, "", ann())),
                        "secret",
                    )),
                    deleted(va_inline_spec_with_secret(
                        va_with_inline_spec(va(false, "", ann())),
                        "secret",
                    )),
                ),
            ],
            expected_csi_calls: vec![call(
                "detach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                m(&[("foo", "bar")]),
                READ_WRITE,
                SUCCESS,
                IGNORED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "volume with empty secrets -> successful detach",
            initial_objects: vec![
                pv_with_secret(pv_with_finalizer(), "emptySecret").into(),
                empty_secret().into(),
            ],
            added_va: Some(deleted(va(true, fin(), ann()))),
            expected_actions: vec![
                secret_get_action("default", "emptySecret"),
                va_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va(true, "", ann())),
                ),
                va_status_patch_action(deleted(va(true, "", ann())), deleted(va(false, "", ann()))),
            ],
            expected_csi_calls: vec![call(
                "detach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                m(&[]),
                READ_WRITE,
                SUCCESS,
                IGNORED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "volume attachment with InlineVolumeSpec and empty secrets -> successful detach",
            initial_objects: vec![empty_secret().into()],
            added_va: Some(deleted(va_inline_spec_with_secret(
                va_with_inline_spec(va(true, fin(), ann())),
                "emptySecret",
            ))),
            expected_actions: vec![
                secret_get_action("default", "emptySecret"),
                va_patch_action(
                    deleted(va_inline_spec_with_secret(
                        va_with_inline_spec(va(true, fin(), ann())),
                        "emptySecret",
                    )),
                    deleted(va_inline_spec_with_secret(
                        va_with_inline_spec(va(true, "", ann())),
                        "emptySecret",
                    )),
                ),
                va_status_patch_action(
                    deleted(va_inline_spec_with_secret(
                        va_with_inline_spec(va(true, "", ann())),
                        "emptySecret",
                    )),
                    deleted(va_inline_spec_with_secret(
                        va_with_inline_spec(va(false, "", ann())),
                        "emptySecret",
                    )),
                ),
            ],
            expected_csi_calls: vec![call(
                "detach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                m(&[]),
                READ_WRITE,
                SUCCESS,
                IGNORED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "volume with missing secrets -> error",
            initial_objects: vec![
                pv_with_secret(pv_with_finalizer(), "unknownSecret").into(),
                csi_node().into(),
            ],
            added_va: Some(deleted(va(true, fin(), ann()))),
            expected_actions: vec![
                secret_get_action("default", "unknownSecret"),
                va_status_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va_with_detach_error(
                        va(true, fin(), ann()),
                        "failed to load secret \"default/unknownSecret\": secrets \"unknownSecret\" not found",
                    )),
                ),
            ],
            expected_csi_calls: vec![],
            ..Default::default()
        },
        TestCase {
            name: "CSI detach fails with an error -> controller retries",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(deleted(va(true, fin(), ann()))),
            expected_actions: vec![
                va_status_patch_action(
                    deleted(va(true, "", ann())),
                    deleted(va_with_detach_error(va(true, "", ann()), "mock error")),
                ),
                va_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va(true, "", ann())),
                ),
                va_status_patch_action(
                    deleted(va_with_detach_error(va(true, "", ann()), "mock error")),
                    deleted(va(false, "", ann())),
                ),
            ],
            expected_csi_calls: vec![
                call(
                    "detach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    plain_error("mock error"),
                    IGNORED,
                    no_metadata(),
                    ms(0),
                ),
                call(
                    "detach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    IGNORED,
                    no_metadata(),
                    ms(0),
                ),
            ],
            additional_check: Some(check_detached),
            ..Default::default()
        },
        TestCase {
            name: "CSI detach times out -> controller retries",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(deleted(va(true, fin(), ann()))),
            expected_actions: vec![
                va_status_patch_action(
                    deleted(va(true, "", ann())),
                    deleted(va_with_detach_error(
                        va(true, "", ann()),
                        "context deadline exceeded",
                    )),
                ),
                va_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va(true, "", ann())),
                ),
                va_status_patch_action(
                    deleted(va_with_detach_error(
                        va(true, "", ann()),
                        "context deadline exceeded",
                    )),
                    deleted(va(false, "", ann())),
                ),
            ],
            expected_csi_calls: vec![
                call(
                    "detach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    IGNORED,
                    no_metadata(),
                    ms(500),
                ),
                call(
                    "detach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    IGNORED,
                    no_metadata(),
                    ms(0),
                ),
            ],
            additional_check: Some(check_detached),
            ..Default::default()
        },
        TestCase {
            name: "already detached volume -> ignored",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            updated_va: Some(deleted(va(false, "", None))),
            expected_actions: vec![],
            expected_csi_calls: vec![],
            ..Default::default()
        },
        TestCase {
            name: "detach unknown PV -> error",
            initial_objects: vec![csi_node().into()],
            added_va: Some(deleted(va(true, fin(), ann()))),
            expected_actions: vec![
                va_status_patch_action(
                    deleted(va(true, "", ann())),
                    deleted(va_with_detach_error(
                        va(true, "", ann()),
                        "persistentvolume \"pv1\" not found",
                    )),
                ),
                va_status_patch_action(
                    deleted(va(false, "", ann())),
                    deleted(va_with_detach_error(
                        va(false, "", ann()),
                        "persistentvolume \"pv1\" not found",
                    )),
                ),
            ],
            ..Default::default()
        },
        TestCase {
            name: "detach unknown PV -> error + error saving the error",
            initial_objects: vec![csi_node().into()],
            added_va: Some(deleted(va(true, fin(), ann()))),
            // Update fails 2 times, succeeds the 3rd time.
            reactors: vec![fail_first(
                Verb::Patch,
                resource::VOLUME_ATTACHMENTS,
                2,
                va_forbidden,
            )],
            // The handler will perform the same patch regardless of whether the error save was
            // successful or not. The only difference is in the errors logged (which are not
            // checked here). Because the detach never succeeds, the test will loop as long as
            // there are expected actions remaining. 4 such loops are tested below: two when
            // the error save fails, and then two when the error succeeds.
            expected_actions: vec![
                va_status_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va_with_detach_error(
                        va(true, fin(), ann()),
                        "persistentvolume \"pv1\" not found",
                    )),
                ),
                va_status_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va_with_detach_error(
                        va(true, fin(), ann()),
                        "persistentvolume \"pv1\" not found",
                    )),
                ),
                va_status_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va_with_detach_error(
                        va(true, fin(), ann()),
                        "persistentvolume \"pv1\" not found",
                    )),
                ),
                va_status_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va_with_detach_error(
                        va(true, fin(), ann()),
                        "persistentvolume \"pv1\" not found",
                    )),
                ),
            ],
            ..Default::default()
        },
        TestCase {
            name: "detach VA with neither PV nor InlineCSIVolumeSource reference-> error",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(deleted(va_with_no_pv_reference_nor_inline_volume_spec(va(
                true,
                fin(),
                ann(),
            )))),
            expected_actions: vec![va_status_patch_action(
                deleted(va_with_no_pv_reference_nor_inline_volume_spec(va(
                    true,
                    fin(),
                    ann(),
                ))),
                deleted(va_with_detach_error(
                    va_with_no_pv_reference_nor_inline_volume_spec(va(true, fin(), ann())),
                    "neither InlineCSIVolumeSource nor PersistentVolumeName specified in VA source",
                )),
            )],
            ..Default::default()
        },
        TestCase {
            name: "detach VA with both PV and InlineCSIVolumeSource reference-> error",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(deleted(va_add_inline_spec(va(true, fin(), ann())))),
            expected_actions: vec![va_status_patch_action(
                deleted(va_add_inline_spec(va(true, fin(), ann()))),
                deleted(va_with_detach_error(
                    va_add_inline_spec(va(true, fin(), ann())),
                    "both InlineCSIVolumeSource and PersistentVolumeName specified in VA source",
                )),
            )],
            ..Default::default()
        },
        TestCase {
            name: "detach unknown node -> error",
            initial_objects: vec![pv_with_finalizer().into()],
            added_va: Some(deleted(va(true, fin(), None))),
            expected_actions: vec![va_status_patch_action(
                deleted(va(true, fin(), None)),
                deleted(va_with_detach_error(
                    va(true, fin(), None),
                    "csinode.storage.k8s.io \"node1\" not found",
                )),
            )],
            ..Default::default()
        },
        TestCase {
            name: "detach unknown node -> use annotation",
            initial_objects: vec![pv_with_finalizer().into()],
            added_va: Some(deleted(va(
                true,
                fin(),
                annotations(&[(VA_NODE_ID_ANNOTATION, "annotatedNodeID")]),
            ))),
            expected_actions: vec![
                va_patch_action(
                    deleted(va(
                        true,
                        fin(),
                        annotations(&[(VA_NODE_ID_ANNOTATION, "annotatedNodeID")]),
                    )),
                    deleted(va(
                        true,
                        "",
                        annotations(&[(VA_NODE_ID_ANNOTATION, "annotatedNodeID")]),
                    )),
                ),
                va_status_patch_action(
                    deleted(va(
                        true,
                        "",
                        annotations(&[(VA_NODE_ID_ANNOTATION, "annotatedNodeID")]),
                    )),
                    deleted(va(
                        false,
                        "",
                        annotations(&[(VA_NODE_ID_ANNOTATION, "annotatedNodeID")]),
                    )),
                ),
            ],
            expected_csi_calls: vec![call(
                "detach",
                TEST_VOLUME_HANDLE,
                "annotatedNodeID",
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                DETACHED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_detached),
            ..Default::default()
        },
        TestCase {
            name: "failed write with finalizer removal -> controller retries",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(deleted(va(true, fin(), ann()))),
            reactors: vec![fail_first(
                Verb::Patch,
                resource::VOLUME_ATTACHMENTS,
                1,
                va_forbidden_lowercase,
            )],
            expected_actions: vec![
                // This fails
                va_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va(true, "", ann())),
                ),
                // Saving error succeeds
                va_status_patch_action(
                    deleted(va(true, fin(), ann())),
                    va_with_detach_error(
                        deleted(va(true, fin(), ann())),
                        "could not mark as detached: volumeattachments.storage.k8s.io \"pv1-node1\" is forbidden: mock error",
                    ),
                ),
                // Second save of attached=false succeeds and the finalizer is subsequently deleted.
                va_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va(true, "", ann())),
                ),
                va_status_patch_action(
                    va_with_detach_error(
                        deleted(va(true, "", ann())),
                        "could not mark as detached: volumeattachments.storage.k8s.io \"pv1-node1\" is forbidden: mock error",
                    ),
                    deleted(va(false, "", ann())),
                ),
            ],
            expected_csi_calls: vec![
                call(
                    "detach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    DETACHED,
                    no_metadata(),
                    ms(0),
                ),
                call(
                    "detach",
                    TEST_VOLUME_HANDLE,
                    TEST_NODE_ID,
                    no_attrs(),
                    no_secrets(),
                    READ_WRITE,
                    SUCCESS,
                    DETACHED,
                    no_metadata(),
                    ms(0),
                ),
            ],
            additional_check: Some(check_detached),
            ..Default::default()
        },
        TestCase {
            name: "VolumeAttachment with GCEPersistentDiskVolumeSource marked for deletion -> successful detach",
            initial_objects: vec![gce_pd_pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(deleted(va(true, fin(), ann()))),
            expected_actions: vec![
                va_patch_action(
                    deleted(va(true, fin(), ann())),
                    deleted(va(true /*attached*/, "", ann())),
                ),
                va_status_patch_action(
                    deleted(va(true, "", ann())),
                    deleted(va(false /*attached*/, "", ann())),
                ),
            ],
            expected_csi_calls: vec![call(
                "detach",
                "projects/UNSPECIFIED/zones/testZone/disks/testpd",
                TEST_NODE_ID,
                m(&[("partition", "0")]),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                DETACHED,
                no_metadata(),
                ms(0),
            )],
            additional_check: Some(check_detached),
            ..Default::default()
        },
        //
        // PV finalizers
        //
        TestCase {
            name: "VA deleted -> PV finalizer removed",
            initial_objects: vec![pv_deleted(pv_with_finalizer()).into()],
            deleted_va: Some(va(false, "", None)),
            expected_actions: vec![pv_remove_finalizer_action(pv_with_finalizer())],
            additional_check: Some(check_pv_finalizer_removed),
            ..Default::default()
        },
        TestCase {
            name: "VA deleted -> PV finalizer removed (GCE PD PV)",
            initial_objects: vec![pv_deleted(gce_pd_pv_with_finalizer()).into()],
            deleted_va: Some(va(false, "", None)),
            expected_actions: vec![pv_remove_finalizer_action(gce_pd_pv_with_finalizer())],
            additional_check: Some(check_pv_finalizer_removed),
            ..Default::default()
        },
        TestCase {
            name: "VA deleted -> PV finalizer not removed",
            initial_objects: vec![pv_deleted(pv()).into()],
            deleted_va: Some(va(false, "", None)),
            ..Default::default()
        },
        TestCase {
            name: "VA deleted -> PV finalizer not removed (GCE PD PV)",
            initial_objects: vec![pv_deleted(gce_pd_pv()).into()],
            deleted_va: Some(va(false, "", None)),
            ..Default::default()
        },
        TestCase {
            name: "PV updated -> PV finalizer removed",
            initial_objects: vec![],
            updated_pv: Some(pv_deleted(pv_with_finalizer())),
            expected_actions: vec![pv_remove_finalizer_action(pv_with_finalizer())],
            additional_check: Some(check_pv_finalizer_removed),
            ..Default::default()
        },
        TestCase {
            name: "PV finalizer removed -> other finalizers preserved",
            initial_objects: vec![
                pv_deleted(pv_with_finalizers(
                    pv_with_finalizer(),
                    &["foo/bar", "bar/baz"],
                ))
                .into(),
            ],
            deleted_va: Some(va(false, "", None)),
            expected_actions: vec![pv_remove_finalizer_action(pv_with_finalizers(
                pv_with_finalizer(),
                &["foo/bar", "bar/baz"],
            ))],
            additional_check: Some(check_other_pv_finalizers_preserved),
            ..Default::default()
        },
        TestCase {
            name: "finalizer removal fails -> controller retries",
            initial_objects: vec![pv_deleted(pv_with_finalizer()).into()],
            deleted_va: Some(va(false, "", None)),
            reactors: vec![fail_first(
                Verb::Patch,
                resource::PERSISTENT_VOLUMES,
                2,
                pvs_forbidden,
            )],
            expected_actions: vec![
                // This update fails
                pv_remove_finalizer_action(pv_with_finalizer()),
                // This one fails too
                pv_remove_finalizer_action(pv_with_finalizer()),
                // This one succeeds
                pv_remove_finalizer_action(pv_with_finalizer()),
            ],
            additional_check: Some(check_pv_finalizer_removed),
            ..Default::default()
        },
        TestCase {
            name: "no PV finalizer -> ignored",
            initial_objects: vec![pv_deleted(pv()).into()],
            deleted_va: Some(va(false, "", None)),
            expected_actions: vec![],
            ..Default::default()
        },
        TestCase {
            name: "no deletion timestamp -> ignored",
            initial_objects: vec![pv().into()],
            deleted_va: Some(va(false, "", None)),
            expected_actions: vec![],
            ..Default::default()
        },
        TestCase {
            name: "VA exists -> ignored",
            initial_objects: vec![
                pv_deleted(pv_with_finalizer()).into(),
                va(false, "", None).into(),
            ],
            deleted_va: Some(va(false, "", None)),
            expected_actions: vec![],
            ..Default::default()
        },
        TestCase {
            name: "PV created by other CSI drivers or in-tree provisioners -> ignored",
            initial_objects: vec![],
            updated_pv: Some(pv_with_driver_name("dummy")),
            expected_actions: vec![],
            ..Default::default()
        },
    ]
}

#[test]
fn test_volume_attachment_with_error_code() {
    run_table(csi_handler_factory, error_code_cases);
}

fn error_code_cases() -> Vec<TestCase> {
    // Feature gate MutableCSINodeAllocatableCount on (config().attach_error_code).
    let message = "rpc error: code = ResourceExhausted desc = mock rpc error";
    let test = TestCase {
        name: "CSI attach fails with gRPC error -> controller saves ErrorCode and retries",
        initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
        added_va: Some(va(false, "", None)),
        expected_actions: vec![
            va_patch_action(va(false, "", None), va(false, fin(), ann())),
            // The CSI call fails, so the controller saves the error status.
            va_status_patch_action(
                va(false, fin(), ann()),
                va_with_attach_error_and_code(
                    va(false, fin(), ann()),
                    message,
                    Code::ResourceExhausted,
                ),
            ),
            // On retry, the controller reads the original VA again and tries to re-apply the
            // finalizer/annotation.
            va_patch_action(
                va_with_attach_error_and_code(
                    va(false, "", None),
                    message,
                    Code::ResourceExhausted,
                ),
                va_with_attach_error_and_code(
                    va(false, fin(), ann()),
                    message,
                    Code::ResourceExhausted,
                ),
            ),
            // The CSI call succeeds now, and the controller clears the error and marks the VA
            // as attached.
            va_status_patch_action(
                va_with_attach_error_and_code(
                    va(false, fin(), ann()),
                    message,
                    Code::ResourceExhausted,
                ),
                va(true, fin(), ann()),
            ),
        ],
        expected_csi_calls: vec![
            call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                Some(CsiError::Status(Status::resource_exhausted(
                    "mock rpc error",
                ))),
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            ),
            call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            ),
        ],
        additional_check: Some(check_attached),
        ..Default::default()
    };
    vec![test]
}

#[test]
fn test_csi_handler_reconcile_va() {
    run_table(csi_handler_factory, reconcile_va_cases);
}

fn reconcile_va_cases() -> Vec<TestCase> {
    let n_id = || annotations(&[(VA_NODE_ID_ANNOTATION, TEST_NODE_ID)]);
    vec![
        // TODO (upstream): Add a test with volume type that supports migration
        // (Ref: https://github.com/kubernetes-csi/external-attacher/issues/247)
        TestCase {
            name: "va attached actual state not attached",
            initial_objects: vec![
                va(true /*attached*/, fin() /*finalizer*/, n_id()).into(),
                pv_with_finalizer().into(),
                csi_node().into(),
            ],
            lister_response: Some(Default::default()), // Intentionally empty
            expected_actions: vec![va_status_patch_action(
                va(true, "", None),
                va(true, "", None),
            )],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                m(&[]),
                m(&[]),
                false,
                None,
                false,
                m(&[]),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "va attached actual state attached",
            initial_objects: vec![va(true, "", n_id()).into(), pv_with_finalizer().into()],
            lister_response: Some(
                [(
                    TEST_VOLUME_HANDLE.to_string(),
                    vec![TEST_NODE_ID.to_string()],
                )]
                .into(),
            ),
            expected_actions: vec![], // Intentionally empty
            ..Default::default()
        },
        TestCase {
            name: "va not attached actual state attached",
            initial_objects: vec![
                deleted(va(false, "", n_id())).into(),
                pv_with_finalizer().into(),
            ],
            lister_response: Some(
                [(
                    TEST_VOLUME_HANDLE.to_string(),
                    vec![TEST_NODE_ID.to_string()],
                )]
                .into(),
            ),
            expected_actions: vec![],
            expected_csi_calls: vec![call(
                "detach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                m(&[]),
                m(&[]),
                false,
                None,
                true,
                m(&[]),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "no volume attachments but existing lister response results in no action",
            initial_objects: vec![],
            lister_response: Some(
                [(
                    TEST_VOLUME_HANDLE.to_string(),
                    vec![TEST_NODE_ID.to_string()],
                )]
                .into(),
            ),
            expected_actions: vec![],
            ..Default::default()
        },
    ]
}

#[test]
fn test_csi_handler_read_only() {
    run_table(csi_handler_factory_no_read_only, read_only_cases);
}

fn read_only_cases() -> Vec<TestCase> {
    vec![
        //
        // ATTACH with driver that does not support PUBLISH_READONLY
        //
        TestCase {
            name: "read-write PV -> attached as read-write",
            initial_objects: vec![pv_with_finalizer().into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
        TestCase {
            name: "read-only PV -> attached as read-write",
            initial_objects: vec![pv_read_only(pv_with_finalizer()).into(), csi_node().into()],
            added_va: Some(va(false, "", None)),
            expected_actions: vec![
                // Finalizer is saved first
                va_patch_action(va(false, "", None), va(false, fin(), ann())),
                va_status_patch_action(va(false, fin(), ann()), va(true, fin(), ann())),
            ],
            expected_csi_calls: vec![call(
                "attach",
                TEST_VOLUME_HANDLE,
                TEST_NODE_ID,
                no_attrs(),
                no_secrets(),
                READ_WRITE,
                SUCCESS,
                NOT_DETACHED,
                no_metadata(),
                ms(0),
            )],
            ..Default::default()
        },
    ]
}
