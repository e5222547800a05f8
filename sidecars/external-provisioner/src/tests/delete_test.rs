//! Port of upstream's `TestDelete` (`pkg/controller/controller_test.go`, v6.4.0), with its case
//! names: 17 of its 18 cases. Not ported: "fail - nil PV" (a PV reference cannot be nil here).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use csi_proto::csi::v1::{CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest};
use csi_test_support::Secrets;
use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeSpec, Secret, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::{
    StorageClass, VolumeAttachment, VolumeAttachmentSource, VolumeAttachmentSpec,
    VolumeAttachmentStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::csi::{CsiError, VolumeDriver};
use crate::delete::delete_volume;
use crate::provision::{
    ANN_DELETION_SECRET_NAME, ANN_DELETION_SECRET_NAMESPACE, DriverCapabilities, NodeDeployment,
    ProvisionerConfig,
};

/// The topology key of upstream's node-deployment cases.
const DRIVER_TOPOLOGY_KEY: &str = "test-driver-node";

#[derive(Debug, Default)]
struct FakeDriver {
    deleted: Mutex<Vec<DeleteVolumeRequest>>,
}

impl VolumeDriver for FakeDriver {
    fn create_volume(
        &self,
        _request: CreateVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<CreateVolumeResponse, CsiError>> {
        Box::pin(async { Err(CsiError::Other("unexpected CreateVolume".into())) })
    }

    fn delete_volume(
        &self,
        request: DeleteVolumeRequest,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(), CsiError>> {
        self.deleted.lock().unwrap().push(request);
        Box::pin(async { Ok(()) })
    }
}

fn config() -> ProvisionerConfig {
    ProvisionerConfig {
        driver_name: "test-driver".into(),
        identity: "test-provisioner".into(),
        volume_name_prefix: "test".into(),
        volume_name_uuid_length: 5,
        timeout: Duration::from_secs(5),
        strict_topology: false,
        immediate_topology: true,
        extra_create_metadata: false,
        default_fs_type: "ext4".into(),
        controller_publish_readonly: true,
        volume_attributes_class: true,
        capabilities: DriverCapabilities {
            controller_service: true,
            create_delete_volume: true,
            ..Default::default()
        },
        node_deployment: None,
        migration: None,
    }
}

/// Upstream's `getDefaultProvisinerSecrets`.
fn provisioner_secrets() -> Vec<Secret> {
    vec![Secret {
        metadata: ObjectMeta {
            name: Some("provisionersecret".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "provisionersecret-key".to_string(),
            ByteString(b"provisionersecret-val".to_vec()),
        )])),
        ..Default::default()
    }]
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[derive(Default)]
struct Pv {
    name: &'static str,
    annotations: &'static [(&'static str, &'static str)],
    claim: Option<(&'static str, &'static str)>,
    class: &'static str,
    csi: bool,
    /// Node affinity `test-driver-node In [<value>]`.
    on_node: Option<&'static str>,
}

impl Pv {
    fn build(&self) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(self.name.into()),
                annotations: (!self.annotations.is_empty()).then(|| map(self.annotations)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                csi: self.csi.then(|| CSIPersistentVolumeSource {
                    volume_handle: "vol-id-1".into(),
                    ..Default::default()
                }),
                claim_ref: self.claim.map(|(namespace, name)| ObjectReference {
                    namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
                    name: Some(name.into()),
                    ..Default::default()
                }),
                storage_class_name: (!self.class.is_empty()).then(|| self.class.to_string()),
                node_affinity: self.on_node.map(|node| VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: DRIVER_TOPOLOGY_KEY.into(),
                                operator: "In".into(),
                                values: Some(vec![node.into()]),
                            }]),
                            match_fields: None,
                        }],
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }
}

fn class(params: &[(&str, &str)]) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some("sc-name".into()),
            ..Default::default()
        },
        parameters: Some(map(params)),
        ..Default::default()
    }
}

fn attachment(pv: &str, attached: Option<bool>, deleting: bool) -> VolumeAttachment {
    VolumeAttachment {
        metadata: ObjectMeta {
            name: Some("va".into()),
            deletion_timestamp: deleting.then(|| Time(Default::default())),
            ..Default::default()
        },
        spec: VolumeAttachmentSpec {
            attacher: String::new(),
            node_name: "node".into(),
            source: VolumeAttachmentSource {
                persistent_volume_name: Some(pv.into()),
                ..Default::default()
            },
        },
        status: attached.map(|attached| VolumeAttachmentStatus {
            attached,
            ..Default::default()
        }),
    }
}

enum Expect {
    /// Deleted, with these secrets in the request.
    Deleted(BTreeMap<String, String>),
    Error,
    InUse,
}

struct Case {
    name: &'static str,
    pv: Pv,
    class: Option<StorageClass>,
    secrets: Vec<Secret>,
    attachment: Option<VolumeAttachment>,
    /// `--node-deployment` on this node.
    deployment_node: Option<&'static str>,
    expect: Expect,
}

const PV_NAME: &str = "pv";
const TEMPLATED: (&str, &str) = (
    "csi.storage.k8s.io/provisioner-secret-name",
    "static-${pv.name}-${pvc.namespace}-${pvc.name}",
);

#[tokio::test]
async fn test_delete() {
    let secret_value = || map(&[("provisionersecret-key", "provisionersecret-val")]);
    let cases = vec![
        Case {
            name: "fail - nil volume.Spec.CSI",
            pv: Pv {
                name: "pv",
                annotations: &[(
                    "csi.storage.k8s.io/provisioner-secret-name",
                    "static-${pv.name}-${pvc.namespace}-${pvc.name}-${pvc.annotations['akey']}",
                )],
                ..Default::default()
            },
            class: None,
            secrets: vec![],
            attachment: None,
            deployment_node: None,
            expect: Expect::Error,
        },
        Case {
            name: "fail - pvc.annotations not supported for Create/Delete Volume Secret",
            pv: Pv {
                name: "pv",
                claim: Some(("", "sc-name")),
                class: "sc-name",
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[(
                "csi.storage.k8s.io/provisioner-secret-name",
                "static-${pv.name}-${pvc.namespace}-${pvc.name}-${pvc.annotations['akey']}",
            )])),
            secrets: vec![],
            attachment: None,
            deployment_node: None,
            expect: Expect::Error,
        },
        Case {
            name: "fail - delete when attached to node",
            pv: Pv {
                name: PV_NAME,
                claim: Some(("pvc-namespace", "pvc-name")),
                class: "sc-name",
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[
                TEMPLATED,
                (
                    "csi.storage.k8s.io/provisioner-secret-namespace",
                    "${pvc.namespace}",
                ),
            ])),
            secrets: vec![],
            attachment: Some(attachment(PV_NAME, Some(true), false)),
            deployment_node: None,
            expect: Expect::InUse,
        },
        Case {
            name: "fail - delete when volumeattachment exists but not attached to node",
            pv: Pv {
                name: PV_NAME,
                claim: Some(("pvc-namespace", "pvc-name")),
                class: "sc-name",
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[
                TEMPLATED,
                (
                    "csi.storage.k8s.io/provisioner-secret-namespace",
                    "${pvc.namespace}",
                ),
            ])),
            secrets: vec![],
            attachment: Some(attachment(PV_NAME, Some(false), false)),
            deployment_node: None,
            expect: Expect::InUse,
        },
        Case {
            name: "fail - delete when volumeattachment exists with deletionTimestamp set",
            pv: Pv {
                name: PV_NAME,
                claim: Some(("pvc-namespace", "pvc-name")),
                class: "sc-name",
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[
                TEMPLATED,
                (
                    "csi.storage.k8s.io/provisioner-secret-namespace",
                    "${pvc.namespace}",
                ),
            ])),
            secrets: vec![],
            attachment: Some(attachment(PV_NAME, None, true)),
            deployment_node: None,
            expect: Expect::InUse,
        },
        Case {
            name: "simple - valid case",
            pv: Pv {
                name: "pv",
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[TEMPLATED])),
            secrets: vec![],
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(map(&[])),
        },
        Case {
            name: "simple - valid case with existing volumeattachment on different pv",
            pv: Pv {
                name: "pv-without-attachment",
                claim: Some(("", "pvc-name")),
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[TEMPLATED])),
            secrets: vec![],
            attachment: Some(attachment(PV_NAME, Some(true), false)),
            deployment_node: None,
            expect: Expect::Deleted(map(&[])),
        },
        Case {
            name: "simple - valid case with ClaimRef set",
            pv: Pv {
                name: "pv",
                claim: Some(("", "pvc-name")),
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[TEMPLATED])),
            secrets: vec![],
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(map(&[])),
        },
        Case {
            name: "Empty provisioner secret is set as PV annotation and StorageClass exists",
            pv: Pv {
                name: "pv",
                annotations: &[
                    (ANN_DELETION_SECRET_NAME, ""),
                    (ANN_DELETION_SECRET_NAMESPACE, ""),
                ],
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[])),
            secrets: vec![],
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(map(&[])),
        },
        Case {
            name: "Empty provisioner secret is set as PV annotation and StorageClass doesn't exist on deletion",
            pv: Pv {
                name: "pv",
                annotations: &[
                    (ANN_DELETION_SECRET_NAME, ""),
                    (ANN_DELETION_SECRET_NAMESPACE, ""),
                ],
                csi: true,
                ..Default::default()
            },
            class: None,
            secrets: vec![],
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(map(&[])),
        },
        Case {
            name: "Non-empty provisioner secret is set as PV annotation and StorageClass exists",
            pv: Pv {
                name: "pv",
                annotations: &[
                    (ANN_DELETION_SECRET_NAME, "provisionersecret"),
                    (ANN_DELETION_SECRET_NAMESPACE, "default"),
                ],
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[
                (
                    "csi.storage.k8s.io/provisioner-secret-name",
                    "provisionersecret",
                ),
                ("csi.storage.k8s.io/provisioner-secret-namespace", "default"),
            ])),
            secrets: provisioner_secrets(),
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(secret_value()),
        },
        Case {
            name: "Non-empty provisioner secret is set as PV annotation and StorageClass doesn't exist",
            pv: Pv {
                name: "pv",
                annotations: &[
                    (ANN_DELETION_SECRET_NAME, "provisionersecret"),
                    (ANN_DELETION_SECRET_NAMESPACE, "default"),
                ],
                csi: true,
                ..Default::default()
            },
            class: None,
            secrets: provisioner_secrets(),
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(secret_value()),
        },
        Case {
            name: "Non-empty provisioner secret is set as PV annotation and modified StorageClass exists",
            pv: Pv {
                name: "pv",
                annotations: &[
                    (ANN_DELETION_SECRET_NAME, "provisionersecret"),
                    (ANN_DELETION_SECRET_NAMESPACE, "default"),
                ],
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[
                (
                    "csi.storage.k8s.io/provisioner-secret-name",
                    "modified-provisionersecret",
                ),
                (
                    "csi.storage.k8s.io/provisioner-secret-namespace",
                    "modified-namespace",
                ),
            ])),
            secrets: provisioner_secrets(),
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(secret_value()),
        },
        Case {
            name: "Non-existent provisioner secret is set as PV annotation",
            pv: Pv {
                name: "pv",
                annotations: &[
                    (ANN_DELETION_SECRET_NAME, "non-existent-provisionersecret"),
                    (ANN_DELETION_SECRET_NAMESPACE, "default"),
                ],
                csi: true,
                ..Default::default()
            },
            class: None,
            secrets: provisioner_secrets(),
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(map(&[])),
        },
        Case {
            name: "Provisioner secret isn't set as PV annotation",
            pv: Pv {
                name: "pv",
                annotations: &[("volume.beta.kubernetes.io/storage-class", "sc-name")],
                claim: Some(("pvc-namespace", "pvc-name")),
                csi: true,
                ..Default::default()
            },
            class: Some(class(&[
                (
                    "csi.storage.k8s.io/provisioner-secret-name",
                    "provisionersecret",
                ),
                ("csi.storage.k8s.io/provisioner-secret-namespace", "default"),
            ])),
            secrets: provisioner_secrets(),
            attachment: None,
            deployment_node: None,
            expect: Expect::Deleted(secret_value()),
        },
        Case {
            name: "distributed, ignore PV from other host",
            pv: Pv {
                name: "pv",
                claim: Some(("", "pvc-name")),
                csi: true,
                on_node: Some("bar"),
                ..Default::default()
            },
            class: Some(class(&[TEMPLATED])),
            secrets: vec![],
            attachment: None,
            deployment_node: Some("foo"),
            expect: Expect::Error,
        },
        Case {
            name: "distributed, delete PV from our host",
            pv: Pv {
                name: "pv",
                claim: Some(("", "pvc-name")),
                csi: true,
                on_node: Some("foo"),
                ..Default::default()
            },
            class: Some(class(&[TEMPLATED])),
            secrets: vec![],
            attachment: None,
            deployment_node: Some("foo"),
            expect: Expect::Deleted(map(&[])),
        },
    ];
    assert_eq!(cases.len(), 17);
    for case in cases {
        let name = case.name;
        let driver = FakeDriver::default();
        let classes: Vec<StorageClass> = case.class.into_iter().collect();
        let attachments: Vec<VolumeAttachment> = case.attachment.into_iter().collect();
        let mut config = config();
        config.node_deployment = case.deployment_node.map(|node| NodeDeployment {
            node_name: node.into(),
            accessible_topology: Some(csi_proto::csi::v1::Topology {
                segments: [(DRIVER_TOPOLOGY_KEY.to_string(), node.to_string())].into(),
            }),
        });
        let result = delete_volume(
            &config,
            &case.pv.build(),
            &classes,
            Some(&attachments),
            &driver,
            &Secrets(case.secrets),
        )
        .await;
        let deleted = driver.deleted.lock().unwrap();
        match case.expect {
            Expect::Deleted(secrets) => {
                result.unwrap_or_else(|e| panic!("{name}: got error: {e}"));
                assert_eq!(deleted.len(), 1, "{name}");
                assert_eq!(deleted[0].volume_id, "vol-id-1", "{name}");
                let got: BTreeMap<String, String> =
                    deleted[0].secrets.clone().into_iter().collect();
                assert_eq!(got, secrets, "{name}: secrets");
            }
            Expect::Error => {
                let err = result.expect_err(name);
                assert!(!err.is_in_use(), "{name}: {err}");
                assert!(deleted.is_empty(), "{name}");
            }
            Expect::InUse => {
                let err = result.expect_err(name);
                assert!(err.is_in_use(), "{name}: {err}");
                assert_eq!(
                    err.to_string(),
                    "persistentvolume pv is still attached to node node, waiting for detach"
                );
                assert!(deleted.is_empty(), "{name}");
            }
        }
    }
}
