//! The owner of the CSIStorageCapacity objects (upstream's `pkg/owner`): the provisioner's own
//! Pod, or an object up its chain of controlling owners (its StatefulSet, DaemonSet,
//! Deployment), so that the objects are garbage-collected with the deployment.
//!
//! Owns the walk and its messages. Reading an object of any kind is behind [`ObjectReader`]
//! (on a client: [`KubeObjectReader`], which needs GET on each object read: the Pod, and
//! for two or more levels the owners in between; the last owner is never read).

use std::fmt;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use tracing::info;

/// Why the owner could not be found.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// Reading an object on the chain failed.
    #[error("get object: {0}")]
    Get(String),
    /// An owner reference's `apiVersion` does not parse.
    #[error("parse OwnerReference.APIVersion: {0}")]
    ApiVersion(String),
    /// An object on the chain has no controlling owner, but the walk must go higher.
    #[error(
        "{api_version}/{kind} {name:?} in namespace {namespace:?} has no controlling owner, cannot unwind the ownership further"
    )]
    NoController {
        /// The object's `apiVersion`.
        api_version: String,
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
}

/// What the walk needs of an object: its UID and owner references.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectOwnership {
    /// The object's UID.
    pub uid: String,
    /// Its owner references.
    pub owner_references: Vec<OwnerReference>,
}

/// Reading a namespaced object of any kind.
pub trait ObjectReader: Send + Sync {
    /// The object `namespace/name` of `api_version` (`v1`, `apps/v1`) and `kind`; the error is
    /// the message of the failure.
    fn get<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<ObjectOwnership, String>>;
}

/// [`ObjectReader`] on a client: the kind's resource is found by discovery.
#[derive(Clone)]
pub struct KubeObjectReader {
    client: kube::Client,
}

impl fmt::Debug for KubeObjectReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeObjectReader").finish_non_exhaustive()
    }
}

impl KubeObjectReader {
    /// Reads through `client`.
    pub fn new(client: kube::Client) -> Self {
        KubeObjectReader { client }
    }
}

impl ObjectReader for KubeObjectReader {
    fn get<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<ObjectOwnership, String>> {
        Box::pin(async move {
            let (group, version) = split_api_version(api_version).map_err(|e| e.to_string())?;
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
                .await
                .map_err(|e| e.to_string())?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &resource);
            let object = api.get(name).await.map_err(|e| e.to_string())?;
            Ok(ObjectOwnership {
                uid: object.metadata.uid.unwrap_or_default(),
                owner_references: object.metadata.owner_references.unwrap_or_default(),
            })
        })
    }
}

/// apimachinery's `ParseGroupVersion`: `v1` → (`""`, `v1`), `apps/v1` → (`apps`, `v1`).
fn split_api_version(api_version: &str) -> Result<(&str, &str), OwnerError> {
    if api_version.is_empty() || api_version == "/" {
        return Ok(("", ""));
    }
    match api_version.split_once('/') {
        None => Ok(("", api_version)),
        Some((group, version)) if !version.contains('/') => Ok((group, version)),
        Some(_) => Err(OwnerError::ApiVersion(format!(
            "unexpected GroupVersion string: {api_version}"
        ))),
    }
}

/// The owner for the CSIStorageCapacity objects: starting at the Pod `namespace/pod`, walk
/// `levels` controlling owners up (0: the Pod itself, 1: its StatefulSet or DaemonSet, 2: a
/// Deployment's ReplicaSet's Deployment). A negative `levels` means no owner (`Ok(None)`).
/// The reference has `apiVersion`, `kind`, `name`, `uid` and `controller: true`.
pub async fn lookup_owner(
    reader: &dyn ObjectReader,
    namespace: &str,
    pod: &str,
    levels: i64,
) -> Result<Option<OwnerReference>, OwnerError> {
    if levels < 0 {
        return Ok(None);
    }
    let owner = lookup(reader, namespace, pod, "v1", "Pod", levels).await?;
    info!(
        "using {}/{} {} as owner of CSIStorageCapacity objects",
        owner.api_version, owner.kind, owner.name
    );
    Ok(Some(owner))
}

async fn lookup(
    reader: &dyn ObjectReader,
    namespace: &str,
    name: &str,
    api_version: &str,
    kind: &str,
    levels: i64,
) -> Result<OwnerReference, OwnerError> {
    let mut name = name.to_string();
    let mut api_version = api_version.to_string();
    let mut kind = kind.to_string();
    let mut levels = levels;
    loop {
        let object = reader
            .get(&api_version, &kind, namespace, &name)
            .await
            .map_err(OwnerError::Get)?;
        if levels == 0 {
            return Ok(OwnerReference {
                api_version,
                kind,
                name,
                uid: object.uid,
                controller: Some(true),
                block_owner_deletion: None,
            });
        }
        let Some(owner) = object
            .owner_references
            .into_iter()
            .find(|o| o.controller == Some(true))
        else {
            return Err(OwnerError::NoController {
                api_version,
                kind,
                name,
                namespace: namespace.to_string(),
            });
        };
        split_api_version(&owner.api_version)?;
        if levels == 1 {
            // The owner itself is not read: GET on Pods is all one level needs.
            return Ok(OwnerReference {
                api_version: owner.api_version,
                kind: owner.kind,
                name: owner.name,
                uid: owner.uid,
                controller: Some(true),
                block_owner_deletion: None,
            });
        }
        api_version = owner.api_version;
        kind = owner.kind;
        name = owner.name;
        levels -= 1;
    }
}

#[cfg(test)]
mod tests {
    //! Upstream's `pkg/owner/owner_test.go` (`TestNodeTopology`, 8 cases).

    use std::collections::HashMap;

    use super::*;

    #[derive(Clone)]
    struct Object {
        namespace: &'static str,
        name: &'static str,
        api_version: &'static str,
        kind: &'static str,
        uid: String,
        owner: Option<Box<Object>>,
    }

    fn object(
        namespace: &'static str,
        name: &'static str,
        api_version: &'static str,
        kind: &'static str,
        uid: u32,
        owner: Option<&Object>,
    ) -> Object {
        Object {
            namespace,
            name,
            api_version,
            kind,
            uid: format!("FAKE-UID-{uid}"),
            owner: owner.map(|o| Box::new(o.clone())),
        }
    }

    #[derive(Default)]
    struct FakeReader {
        objects: HashMap<(String, String, String, String), ObjectOwnership>,
    }

    impl FakeReader {
        fn new(objects: &[&Object]) -> Self {
            let mut reader = FakeReader::default();
            for o in objects {
                let owner_references = o
                    .owner
                    .iter()
                    .map(|owner| OwnerReference {
                        api_version: owner.api_version.into(),
                        kind: owner.kind.into(),
                        name: owner.name.into(),
                        uid: owner.uid.clone(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    })
                    .collect();
                reader.objects.insert(
                    (
                        o.api_version.into(),
                        o.kind.into(),
                        o.namespace.into(),
                        o.name.into(),
                    ),
                    ObjectOwnership {
                        uid: o.uid.clone(),
                        owner_references,
                    },
                );
            }
            reader
        }
    }

    impl ObjectReader for FakeReader {
        fn get<'a>(
            &'a self,
            api_version: &'a str,
            kind: &'a str,
            namespace: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<ObjectOwnership, String>> {
            let key = (
                api_version.to_string(),
                kind.to_string(),
                namespace.to_string(),
                name.to_string(),
            );
            let found =
                self.objects.get(&key).cloned().ok_or_else(|| {
                    format!("{}.{api_version} {name:?} not found", kind.to_lowercase())
                });
            Box::pin(async move { found })
        }
    }

    #[tokio::test]
    async fn owner_lookup_table() {
        let test_namespace = "test-namespace";
        let other_namespace = "other-namespace";
        let pod = object(test_namespace, "foo", "v1", "Pod", 1, None);
        let statefulset = object(test_namespace, "foo", "apps/v1", "StatefulSet", 2, None);
        let statefulset_pod = object(test_namespace, "foo", "v1", "Pod", 3, Some(&statefulset));
        let deployment = object(test_namespace, "foo", "apps/v1", "Deployment", 4, None);
        let replicaset = object(
            test_namespace,
            "foo",
            "apps/v1",
            "ReplicaSet",
            5,
            Some(&deployment),
        );
        let other_replicaset = object(
            test_namespace,
            "bar",
            "apps/v1",
            "ReplicaSet",
            6,
            Some(&deployment),
        );
        let yet_another_replicaset = object(
            other_namespace,
            "foo",
            "apps/v1",
            "ReplicaSet",
            7,
            Some(&deployment),
        );
        let deploymentset_pod = object(test_namespace, "foo", "v1", "Pod", 8, Some(&replicaset));

        struct Case<'a> {
            name: &'a str,
            objects: Vec<&'a Object>,
            start: &'a Object,
            levels: i64,
            expect_owner: Option<&'a Object>,
        }
        let cases = [
            Case {
                name: "empty",
                objects: vec![],
                start: &pod,
                levels: 0,
                expect_owner: None,
            },
            Case {
                name: "pod-itself",
                objects: vec![&pod],
                start: &pod,
                levels: 0,
                expect_owner: Some(&pod),
            },
            Case {
                name: "no-parent",
                objects: vec![&pod],
                start: &pod,
                levels: 1,
                expect_owner: None,
            },
            Case {
                name: "parent",
                objects: vec![&statefulset_pod],
                start: &statefulset_pod,
                levels: 1,
                // The owner itself need not exist.
                expect_owner: Some(&statefulset),
            },
            Case {
                name: "missing-parent",
                objects: vec![&deploymentset_pod],
                start: &deploymentset_pod,
                levels: 2,
                expect_owner: None,
            },
            Case {
                name: "wrong-parent",
                objects: vec![&deploymentset_pod, &other_replicaset],
                start: &deploymentset_pod,
                levels: 2,
                expect_owner: None,
            },
            Case {
                name: "another-wrong-parent",
                objects: vec![&deploymentset_pod, &yet_another_replicaset],
                start: &deploymentset_pod,
                levels: 2,
                expect_owner: None,
            },
            Case {
                name: "grandparent",
                objects: vec![&deploymentset_pod, &replicaset],
                start: &deploymentset_pod,
                levels: 2,
                // The owner itself need not exist.
                expect_owner: Some(&deployment),
            },
        ];
        for case in cases {
            let reader = FakeReader::new(&case.objects);
            let result = lookup(
                &reader,
                case.start.namespace,
                case.start.name,
                case.start.api_version,
                case.start.kind,
                case.levels,
            )
            .await;
            match (result, case.expect_owner) {
                (Err(_), None) => {}
                (Ok(owner), None) => panic!("{}: unexpected success: {owner:?}", case.name),
                (Err(err), Some(_)) => panic!("{}: unexpected error: {err}", case.name),
                (Ok(owner), Some(expected)) => {
                    assert_eq!(owner.api_version, expected.api_version, "{}", case.name);
                    assert_eq!(owner.kind, expected.kind, "{}", case.name);
                    assert_eq!(owner.name, expected.name, "{}", case.name);
                    assert_eq!(owner.uid, expected.uid, "{}", case.name);
                    assert_eq!(owner.controller, Some(true), "{}", case.name);
                    assert_ne!(owner.block_owner_deletion, Some(true), "{}", case.name);
                }
            }
        }
    }

    #[tokio::test]
    async fn negative_levels_mean_no_owner_and_nothing_is_read() {
        let reader = FakeReader::default();
        assert!(
            lookup_owner(&reader, "ns", "pod", -1)
                .await
                .unwrap()
                .is_none()
        );
        let err = lookup_owner(&reader, "ns", "pod", 0).await.unwrap_err();
        assert_eq!(err.to_string(), "get object: pod.v1 \"pod\" not found");
    }

    #[tokio::test]
    async fn the_error_names_the_object_without_a_controlling_owner() {
        let pod = object("ns", "p", "v1", "Pod", 1, None);
        let reader = FakeReader::new(&[&pod]);
        let err = lookup_owner(&reader, "ns", "p", 1).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "v1/Pod \"p\" in namespace \"ns\" has no controlling owner, cannot unwind the ownership further"
        );
    }

    #[test]
    fn api_versions_split_as_apimachinery_does() {
        assert_eq!(split_api_version("v1").unwrap(), ("", "v1"));
        assert_eq!(split_api_version("apps/v1").unwrap(), ("apps", "v1"));
        assert!(split_api_version("a/b/c").is_err());
    }
}
