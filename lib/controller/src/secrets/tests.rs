//! `TestGetSecretReference` and the secret cases of `TestProvision` of external-provisioner's
//! `pkg/controller/controller_test.go`, with their case names, and our own cases for the
//! messages, the templates and reading secrets.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

const PROVISIONER_SECRET_NAME_KEY: &str = "csiProvisionerSecretName";
const PROVISIONER_SECRET_NAMESPACE_KEY: &str = "csiProvisionerSecretNamespace";
const NODE_PUBLISH_SECRET_NAME_KEY: &str = "csiNodePublishSecretName";
const NODE_PUBLISH_SECRET_NAMESPACE_KEY: &str = "csiNodePublishSecretNamespace";
const PREFIXED_PROVISIONER_SECRET_NAME_KEY: &str = "csi.storage.k8s.io/provisioner-secret-name";
const PREFIXED_PROVISIONER_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/provisioner-secret-namespace";
const PREFIXED_NODE_PUBLISH_SECRET_NAME_KEY: &str = "csi.storage.k8s.io/node-publish-secret-name";
const PREFIXED_NODE_PUBLISH_SECRET_NAMESPACE_KEY: &str =
    "csi.storage.k8s.io/node-publish-secret-namespace";

struct Case {
    name: &'static str,
    secret_params: SecretParams,
    params: &'static [(&'static str, &'static str)],
    pv_name: &'static str,
    pvc: Option<PersistentVolumeClaim>,
    expect_ref: Option<(&'static str, &'static str)>,
    expect_err: bool,
}

impl Case {
    fn new(name: &'static str, secret_params: SecretParams) -> Self {
        Case {
            name,
            secret_params,
            params: &[],
            pv_name: "",
            pvc: None,
            expect_ref: None,
            expect_err: false,
        }
    }
    fn params(mut self, params: &'static [(&'static str, &'static str)]) -> Self {
        self.params = params;
        self
    }
    fn pv_name(mut self, pv_name: &'static str) -> Self {
        self.pv_name = pv_name;
        self
    }
    fn pvc(mut self, pvc: PersistentVolumeClaim) -> Self {
        self.pvc = Some(pvc);
        self
    }
    fn expect_ref(mut self, name: &'static str, namespace: &'static str) -> Self {
        self.expect_ref = Some((name, namespace));
        self
    }
    fn expect_err(mut self) -> Self {
        self.expect_err = true;
        self
    }
}

fn pvc(name: &str, namespace: &str, annotations: &[(&str, &str)]) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: (!name.is_empty()).then(|| name.to_string()),
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            annotations: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn empty_pvc() -> PersistentVolumeClaim {
    PersistentVolumeClaim::default()
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn test_get_secret_reference() {
    let cases = vec![
        Case::new("no params", NODE_PUBLISH_SECRET_PARAMS),
        Case::new("empty err", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, ""),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, ""),
            ])
            .expect_err(),
        Case::new(
            "[deprecated] name, no namespace",
            NODE_PUBLISH_SECRET_PARAMS,
        )
        .params(&[(NODE_PUBLISH_SECRET_NAME_KEY, "foo")])
        .expect_err(),
        Case::new("name, no namespace", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[(PREFIXED_NODE_PUBLISH_SECRET_NAME_KEY, "foo")])
            .expect_err(),
        Case::new(
            "[deprecated] namespace, no name",
            NODE_PUBLISH_SECRET_PARAMS,
        )
        .params(&[(NODE_PUBLISH_SECRET_NAMESPACE_KEY, "foo")])
        .expect_err(),
        Case::new("namespace, no name", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[(PREFIXED_NODE_PUBLISH_SECRET_NAMESPACE_KEY, "foo")])
            .expect_err(),
        Case::new("[deprecated] simple - valid", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, "name"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ])
            .pvc(empty_pvc())
            .expect_ref("name", "ns"),
        Case::new("deprecated and new both", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, "name"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
                (PREFIXED_NODE_PUBLISH_SECRET_NAME_KEY, "name"),
                (PREFIXED_NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ])
            .expect_err(),
        Case::new("deprecated and new names", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, "name"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
                (PREFIXED_NODE_PUBLISH_SECRET_NAME_KEY, "name"),
            ])
            .expect_err(),
        Case::new("deprecated and new namespace", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, "name"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
                (PREFIXED_NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ])
            .expect_err(),
        Case::new("deprecated and new mixed", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, "name"),
                (PREFIXED_NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ])
            .pvc(empty_pvc())
            .expect_ref("name", "ns"),
        Case::new("simple - valid", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (PREFIXED_NODE_PUBLISH_SECRET_NAME_KEY, "name"),
                (PREFIXED_NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ])
            .pvc(empty_pvc())
            .expect_ref("name", "ns"),
        Case::new("simple - valid, no pvc", PROVISIONER_SECRET_PARAMS)
            .params(&[
                (PROVISIONER_SECRET_NAME_KEY, "name"),
                (PROVISIONER_SECRET_NAMESPACE_KEY, "ns"),
            ])
            .expect_ref("name", "ns"),
        Case::new(
            "simple - valid, pvc name and namespace",
            PROVISIONER_SECRET_PARAMS,
        )
        .params(&[
            (PROVISIONER_SECRET_NAME_KEY, "param-name"),
            (PROVISIONER_SECRET_NAMESPACE_KEY, "param-ns"),
        ])
        .pvc(pvc("name", "ns", &[]))
        .expect_ref("param-name", "param-ns"),
        Case::new("simple - invalid name", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, "bad name"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ])
            .pvc(empty_pvc())
            .expect_err(),
        Case::new("simple - invalid namespace", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, "name"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "bad ns"),
            ])
            .pvc(empty_pvc())
            .expect_err(),
        Case::new(
            "template - PVC name annotations not supported for Provision and Delete",
            PROVISIONER_SECRET_PARAMS,
        )
        .params(&[(
            PREFIXED_PROVISIONER_SECRET_NAME_KEY,
            "static-${pv.name}-${pvc.namespace}-${pvc.name}-${pvc.annotations['akey']}",
        )])
        .pvc(pvc("name", "ns", &[]))
        .expect_err(),
        Case::new(
            "template - valid PVC annotations for Provision and Delete",
            PROVISIONER_SECRET_PARAMS,
        )
        .params(&[
            (
                PREFIXED_PROVISIONER_SECRET_NAMESPACE_KEY,
                "static-${pvc.namespace}",
            ),
            (
                PREFIXED_PROVISIONER_SECRET_NAME_KEY,
                "static-${pvc.name}-${pvc.annotations['akey']}",
            ),
        ])
        .pv_name("pvname")
        .pvc(pvc("name", "pvcnamespace", &[("akey", "avalue")]))
        .expect_ref("static-name-avalue", "static-pvcnamespace"),
        Case::new(
            "template - valid nodepublish secret ref",
            NODE_PUBLISH_SECRET_PARAMS,
        )
        .params(&[
            (
                NODE_PUBLISH_SECRET_NAME_KEY,
                "static-${pv.name}-${pvc.namespace}-${pvc.name}-${pvc.annotations['akey']}",
            ),
            (
                NODE_PUBLISH_SECRET_NAMESPACE_KEY,
                "static-${pv.name}-${pvc.namespace}",
            ),
        ])
        .pv_name("pvname")
        .pvc(pvc("pvcname", "pvcnamespace", &[("akey", "avalue")]))
        .expect_ref(
            "static-pvname-pvcnamespace-pvcname-avalue",
            "static-pvname-pvcnamespace",
        ),
        Case::new(
            "template - valid provisioner secret ref",
            PROVISIONER_SECRET_PARAMS,
        )
        .params(&[
            (
                PROVISIONER_SECRET_NAME_KEY,
                "static-provisioner-${pv.name}-${pvc.namespace}-${pvc.name}",
            ),
            (
                PROVISIONER_SECRET_NAMESPACE_KEY,
                "static-provisioner-${pv.name}-${pvc.namespace}",
            ),
        ])
        .pv_name("pvname")
        .pvc(pvc("pvcname", "pvcnamespace", &[]))
        .expect_ref(
            "static-provisioner-pvname-pvcnamespace-pvcname",
            "static-provisioner-pvname-pvcnamespace",
        ),
        Case::new("template - valid, with pvc.name", PROVISIONER_SECRET_PARAMS)
            .params(&[
                (PROVISIONER_SECRET_NAME_KEY, "${pvc.name}"),
                (PROVISIONER_SECRET_NAMESPACE_KEY, "ns"),
            ])
            .pvc(pvc("pvcname", "pvcns", &[]))
            .expect_ref("pvcname", "ns"),
        Case::new(
            "template - valid, provisioner with pvc name and namespace",
            PROVISIONER_SECRET_PARAMS,
        )
        .params(&[
            (PROVISIONER_SECRET_NAME_KEY, "${pvc.name}"),
            (PROVISIONER_SECRET_NAMESPACE_KEY, "${pvc.namespace}"),
        ])
        .pvc(pvc("pvcname", "pvcns", &[]))
        .expect_ref("pvcname", "pvcns"),
        Case::new(
            "template - valid, static pvc name and templated namespace",
            PROVISIONER_SECRET_PARAMS,
        )
        .params(&[
            (PROVISIONER_SECRET_NAME_KEY, "static-name-1"),
            (PROVISIONER_SECRET_NAMESPACE_KEY, "${pvc.namespace}"),
        ])
        .pvc(pvc("name", "ns", &[]))
        .expect_ref("static-name-1", "ns"),
        Case::new(
            "template - invalid namespace tokens",
            NODE_PUBLISH_SECRET_PARAMS,
        )
        .params(&[
            (NODE_PUBLISH_SECRET_NAME_KEY, "myname"),
            (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "mynamespace${bar}"),
        ])
        .pvc(empty_pvc())
        .expect_err(),
        Case::new("template - invalid name tokens", NODE_PUBLISH_SECRET_PARAMS)
            .params(&[
                (NODE_PUBLISH_SECRET_NAME_KEY, "myname${foo}"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "mynamespace"),
            ])
            .pvc(empty_pvc())
            .expect_err(),
    ];

    let mut failures = Vec::new();
    for case in cases {
        let result = secret_reference(
            &case.secret_params,
            &params(case.params),
            case.pv_name,
            case.pvc.as_ref(),
        );
        let expected = case.expect_ref.map(|(name, namespace)| SecretReference {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
        });
        match (result, case.expect_err) {
            (Err(_), true) => {}
            (Err(err), false) => failures.push(format!(
                "{}: did not expect error but got: {err}",
                case.name
            )),
            (Ok(_), true) => failures.push(format!("{}: expected error but got none", case.name)),
            (Ok(got), false) if got != expected => {
                failures.push(format!("{}: expected {expected:?}, got {got:?}", case.name))
            }
            (Ok(_), false) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_messages_are_upstreams() {
    let message = |pairs: &[(&str, &str)], pvc: Option<&PersistentVolumeClaim>| {
        secret_reference(&NODE_PUBLISH_SECRET_PARAMS, &params(pairs), "pv", pvc)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        message(&[(NODE_PUBLISH_SECRET_NAME_KEY, "foo")], None),
        "failed to get name and namespace template from params: either name and namespace for NodePublish secrets specified, Both must be specified"
    );
    assert_eq!(
        message(
            &[
                (NODE_PUBLISH_SECRET_NAME_KEY, "a"),
                (PREFIXED_NODE_PUBLISH_SECRET_NAME_KEY, "b"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "c"),
            ],
            None
        ),
        "failed to get name and namespace template from params: NodePublish secrets specified in parameters with both \"csi\" and \"csi.storage.k8s.io/\" keys"
    );
    assert_eq!(
        message(
            &[
                (NODE_PUBLISH_SECRET_NAME_KEY, ""),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ],
            None
        ),
        "failed to get name and namespace template from params: NodePublish secrets specified in parameters but value of either namespace or name is empty"
    );
    assert_eq!(
        message(&[("csi.storage.k8s.io/secret-name", "n"),], None),
        "failed to get default name and namespace template from params: either name and namespace for Default secrets specified, Both must be specified"
    );
    assert_eq!(
        message(
            &[
                (NODE_PUBLISH_SECRET_NAME_KEY, "myname${foo}${bar}"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ],
            None
        ),
        "error resolving value \"myname${foo}${bar}\": invalid tokens: [\"bar\" \"foo\"]"
    );
    assert_eq!(
        message(
            &[
                (NODE_PUBLISH_SECRET_NAME_KEY, "n"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "${pvc.namespace}"),
            ],
            None
        ),
        "error resolving value \"${pvc.namespace}\": invalid tokens: [\"pvc.namespace\"]"
    );
    assert_eq!(
        message(
            &[
                (NODE_PUBLISH_SECRET_NAME_KEY, "n"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "Bad-${pv.name}"),
            ],
            None
        ),
        "\"Bad-${pv.name}\" resolved to \"Bad-pv\" which is not a valid namespace name"
    );
    assert_eq!(
        message(
            &[
                (NODE_PUBLISH_SECRET_NAME_KEY, "bad name"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ],
            None
        ),
        "\"bad name\" is not a valid secret name"
    );
    let claim = pvc("c", "ns", &[("k", "Not_Valid")]);
    assert_eq!(
        message(
            &[
                (NODE_PUBLISH_SECRET_NAME_KEY, "${pvc.annotations['k']}"),
                (NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
            ],
            Some(&claim)
        ),
        "\"${pvc.annotations['k']}\" resolved to \"Not_Valid\" which is not a valid secret name"
    );
}

#[test]
fn the_name_tokens_are_not_namespace_tokens() {
    let claim = pvc("c", "ns", &[("k", "v")]);
    for token in ["${pvc.name}", "${pvc.annotations['k']}"] {
        let result = secret_reference(
            &PROVISIONER_SECRET_PARAMS,
            &params(&[
                (PREFIXED_PROVISIONER_SECRET_NAME_KEY, "n"),
                (PREFIXED_PROVISIONER_SECRET_NAMESPACE_KEY, token),
            ]),
            "pv",
            Some(&claim),
        );
        assert!(
            matches!(result, Err(SecretReferenceError::Resolve { .. })),
            "{token}"
        );
    }
}

#[test]
fn default_keys_are_the_fallback() {
    let both = params(&[
        ("csi.storage.k8s.io/secret-name", "default-${pv.name}"),
        ("csi.storage.k8s.io/secret-namespace", "kube-system"),
        (PREFIXED_NODE_PUBLISH_SECRET_NAME_KEY, "own"),
        (PREFIXED_NODE_PUBLISH_SECRET_NAMESPACE_KEY, "ns"),
    ]);
    let own = secret_reference(&NODE_PUBLISH_SECRET_PARAMS, &both, "pv1", None).unwrap();
    assert_eq!(own.unwrap().name.as_deref(), Some("own"));
    for kind in SecretKind::ALL {
        let reference = secret_reference(&kind.params(), &both, "pv1", None)
            .unwrap()
            .unwrap();
        if kind != SecretKind::NodePublish {
            assert_eq!(reference.name.as_deref(), Some("default-pv1"), "{kind:?}");
            assert_eq!(reference.namespace.as_deref(), Some("kube-system"));
        }
    }
}

#[test]
fn every_kind_has_its_prefixed_keys() {
    let kinds = [
        (SecretKind::Provisioner, "provisioner", true),
        (SecretKind::ControllerPublish, "controller-publish", true),
        (SecretKind::NodeStage, "node-stage", true),
        (SecretKind::NodePublish, "node-publish", true),
        (SecretKind::ControllerExpand, "controller-expand", false),
        (SecretKind::NodeExpand, "node-expand", false),
        (SecretKind::ControllerModify, "controller-modify", false),
    ];
    for (kind, prefix, deprecated) in kinds {
        let p = kind.params();
        assert_eq!(
            p.name_key,
            format!("csi.storage.k8s.io/{prefix}-secret-name")
        );
        assert_eq!(
            p.namespace_key,
            format!("csi.storage.k8s.io/{prefix}-secret-namespace")
        );
        assert_eq!(p.deprecated_name_key.is_some(), deprecated, "{kind:?}");
        if let Some(key) = p.deprecated_name_key {
            assert_eq!(key, format!("csi{}SecretName", p.name));
            assert_eq!(
                p.deprecated_namespace_key,
                Some(format!("csi{}SecretNamespace", p.name).as_str())
            );
        }
    }
}

#[test]
fn templates_expand_as_os_expand() {
    let p: HashMap<String, String> = [("a", "1"), ("pv.name", "pv"), ("x_y", "2")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ok = |t: &str| resolve_template(t, &p).unwrap();
    assert_eq!(ok("plain"), "plain");
    assert_eq!(ok("${pv.name}-$a-${a}"), "pv-1-1");
    assert_eq!(ok("$x_y."), "2.");
    assert_eq!(ok("cost$"), "cost$");
    assert_eq!(ok("a$%b"), "a$%b");
    assert_eq!(ok("a${}b"), "ab");
    assert_eq!(ok("a${b"), "ab");
    assert_eq!(
        resolve_template("$1 ${*}", &p).unwrap_err().missing,
        ["*", "1"]
    );
}

#[test]
fn dns_names() {
    assert!(is_dns1123_label("ns-1"));
    assert!(!is_dns1123_label("-ns"));
    assert!(!is_dns1123_label("a.b"));
    assert!(!is_dns1123_label(""));
    assert!(!is_dns1123_label(&"a".repeat(64)));
    assert!(is_dns1123_subdomain("a.b-c.d"));
    assert!(!is_dns1123_subdomain("a..b"));
    assert!(!is_dns1123_subdomain("A"));
    assert!(!is_dns1123_subdomain(&"a".repeat(254)));
}

#[derive(Default)]
struct Secrets(Vec<Secret>);

impl SecretGetter for Secrets {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move {
            self.0
                .iter()
                .find(|s| {
                    s.metadata.namespace.as_deref() == Some(namespace)
                        && s.metadata.name.as_deref() == Some(name)
                })
                .cloned()
                .ok_or_else(|| ApiError::not_found(crate::resources::SECRETS, name))
        })
    }
}

#[tokio::test]
async fn secret_data_is_read_and_never_shown() {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(b"hunter2".to_vec()),
        )])),
        ..Default::default()
    };
    let getter = Secrets(vec![secret]);
    let reference = SecretReference {
        name: Some("s".into()),
        namespace: Some("ns".into()),
    };
    let data = secret_data(&getter, &reference).await.unwrap();
    let shown = format!("{data:?}");
    assert!(shown.contains("password"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(data.into_map()["password"], "hunter2");

    let missing = SecretReference {
        name: Some("gone".into()),
        namespace: Some("ns".into()),
    };
    let err = secret_data(&getter, &missing).await.unwrap_err();
    assert!(err.error.is_not_found());
    assert_eq!(
        err.to_string(),
        "error getting secret gone in namespace ns: secrets \"gone\" not found"
    );
}

/// The secret parts of external-provisioner's `TestProvision` cases, with their names: the
/// references `Provision` resolves for every kind (the PVC passed whole), and the parameter
/// its `getSecretRefErr` / `getCredentialsErr` switches add.
#[tokio::test]
async fn test_provision_secret_cases() {
    let claim = |name: &str, annotations: &[(&str, &str)]| {
        let mut claim = pvc(name, "fake-ns", annotations);
        claim
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                "volume.beta.kubernetes.io/storage-provisioner".into(),
                "test-driver".into(),
            );
        claim
    };

    // "provision with default secrets with template": every kind gets the default secret.
    let sc = params(&[
        ("csi.storage.k8s.io/secret-name", "${pvc.name}"),
        ("csi.storage.k8s.io/secret-namespace", "default-ns"),
    ]);
    let my_pvc = claim("my-pvc", &[]);
    for kind in SecretKind::ALL {
        let reference = secret_reference(&kind.params(), &sc, "test-name", Some(&my_pvc))
            .unwrap()
            .unwrap();
        assert_eq!(reference.name.as_deref(), Some("my-pvc"), "{kind:?}");
        assert_eq!(
            reference.namespace.as_deref(),
            Some("default-ns"),
            "{kind:?}"
        );
    }

    // "fail to get secret reference": `csiProvisionerSecretName` set to "" alone.
    let sc = params(&[(PROVISIONER_SECRET_NAME_KEY, "")]);
    assert!(
        secret_reference(
            &PROVISIONER_SECRET_PARAMS,
            &sc,
            "test-name",
            Some(&claim("fake-pvc", &[]))
        )
        .is_err(),
        "fail to get secret reference"
    );

    // "fail to get secret reference for invalid default secret parameter template".
    let sc = params(&[
        (
            "csi.storage.k8s.io/secret-name",
            "default-${pvc.annotations['team.example.com/key']}",
        ),
        ("csi.storage.k8s.io/secret-namespace", "default-ns"),
        (PROVISIONER_SECRET_NAME_KEY, ""),
    ]);
    let annotated = claim(
        "fake-pvc",
        &[("team.example.com/key", "secret-from-annotation")],
    );
    assert!(
        secret_reference(
            &PROVISIONER_SECRET_PARAMS,
            &sc,
            "test-name",
            Some(&annotated)
        )
        .is_err(),
        "fail to get secret reference for invalid default secret parameter template"
    );
    // Without the broken provisioner key, the default template resolves from the annotation.
    let sc = params(&[
        (
            "csi.storage.k8s.io/secret-name",
            "default-${pvc.annotations['team.example.com/key']}",
        ),
        ("csi.storage.k8s.io/secret-namespace", "default-ns"),
    ]);
    let reference = secret_reference(
        &PROVISIONER_SECRET_PARAMS,
        &sc,
        "test-name",
        Some(&annotated),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        reference.name.as_deref(),
        Some("default-secret-from-annotation")
    );

    // "fail to get credentials": the referenced secret does not exist.
    let sc = params(&[
        (PROVISIONER_SECRET_NAME_KEY, "secretx"),
        (PROVISIONER_SECRET_NAMESPACE_KEY, "default"),
    ]);
    let reference = secret_reference(
        &PROVISIONER_SECRET_PARAMS,
        &sc,
        "test-name",
        Some(&claim("fake-pvc", &[])),
    )
    .unwrap()
    .unwrap();
    let err = secret_data(&Secrets::default(), &reference)
        .await
        .unwrap_err();
    assert!(err.error.is_not_found(), "fail to get credentials");
}
