//! [`FakeApi`]: an in-memory Kubernetes API for controllers' table tests, the way upstream's
//! tests use client-go's fake clientset with informers. Any k8s-openapi type can be stored.
//!
//! It keeps two sets of objects:
//!
//! - the **cache** (what listers read), filled by the test, and by default *not* updated by
//!   writes (upstream's informers are not started in its tests, so a patch is never seen by
//!   the listers; upstream's expected actions depend on that);
//!   [`FakeApi::set_write_through`] makes writes update it, as a running watch would;
//! - the **server** (what the client reads and patches): patches are applied to it (merge and
//!   strategic merge patches per RFC 7386 — no list is merged by key —, JSON patches per RFC
//!   6902, with the toolkit's `apply_*_patch`) and the patched object is returned.
//!
//! Every client call is recorded as an [`Action`] (verb, resource, subresource, namespace,
//! name, patch) before anything else happens, and reactors ([`FakeApi::prepend_reactor`]) can
//! make a call fail, as with client-go's `PrependReactor`. A controller's own client trait is
//! implemented over it in that controller's tests.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use csi_controller::ApiError;
use csi_controller::patch::{apply_json_patch, apply_merge_patch};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What [`FakeApi`] stores: any API object type.
pub trait Object: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned {}

impl<K> Object for K where K: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned {}

/// The verb of a recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET.
    Get,
    /// PATCH.
    Patch,
}

/// How a patch is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json` (applied here as a merge patch).
    Strategic,
    /// `application/json-patch+json` (RFC 6902).
    Json,
}

/// One recorded client call (client-go's `testing.Action`).
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// GET or PATCH.
    pub verb: Verb,
    /// The resource (`persistentvolumes`, `volumeattachments`, ...: the URL path segment).
    pub resource: &'static str,
    /// `""` or `"status"`.
    pub subresource: &'static str,
    /// `""` for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// For a PATCH: its type and body.
    pub patch: Option<(PatchType, Value)>,
}

impl Action {
    /// client-go's `NewGetAction`.
    pub fn get(resource: &'static str, namespace: &str, name: &str) -> Self {
        Action {
            verb: Verb::Get,
            resource,
            subresource: "",
            namespace: namespace.to_string(),
            name: name.to_string(),
            patch: None,
        }
    }

    /// client-go's `NewPatchAction` on a cluster-scoped object.
    pub fn patch(resource: &'static str, name: &str, patch_type: PatchType, patch: Value) -> Self {
        Self::patch_subresource(resource, name, patch_type, patch, "")
    }

    /// client-go's `NewPatchSubresourceAction` on a cluster-scoped object.
    pub fn patch_subresource(
        resource: &'static str,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        subresource: &'static str,
    ) -> Self {
        Action {
            verb: Verb::Patch,
            resource,
            subresource,
            namespace: String::new(),
            name: name.to_string(),
            patch: Some((patch_type, patch)),
        }
    }

    /// The same action on a namespaced object.
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_string();
        self
    }
}

/// A reactor: sees every call with its verb and resource, and fails it by returning an error
/// (`None` lets the call proceed).
pub type Reactor = Box<dyn FnMut(&Action) -> Option<ApiError> + Send>;

struct RegisteredReactor {
    verb: Verb,
    /// A resource name, or `*`.
    resource: String,
    react: Reactor,
}

/// (resource, namespace, name).
type Key = (&'static str, String, String);

#[derive(Default)]
struct State {
    cache: BTreeMap<Key, Value>,
    server: BTreeMap<Key, Value>,
    actions: Vec<Action>,
    reactors: Vec<RegisteredReactor>,
    write_through: bool,
}

/// An in-memory API server and watch cache (see the [module documentation](self)). Clones
/// share the same state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeApi")
            .field("actions", &state.actions.len())
            .field("write_through", &state.write_through)
            .finish_non_exhaustive()
    }
}

fn key_of<K: Object>(object: &K) -> Key {
    let meta = object.metadata();
    (
        K::URL_PATH_SEGMENT,
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn key<K: Object>(namespace: &str, name: &str) -> Key {
    (K::URL_PATH_SEGMENT, namespace.to_string(), name.to_string())
}

/// The resource as the API server names it in messages: `persistentvolumes`,
/// `volumeattachments.storage.k8s.io`.
pub fn qualified_resource<K: Resource>() -> String {
    if K::GROUP.is_empty() {
        K::URL_PATH_SEGMENT.to_string()
    } else {
        format!("{}.{}", K::URL_PATH_SEGMENT, K::GROUP)
    }
}

fn to_value<K: Object>(object: &K) -> Value {
    serde_json::to_value(object).expect("API objects serialize")
}

fn from_value<K: Object>(value: &Value) -> Result<K, ApiError> {
    serde_json::from_value(value.clone()).map_err(|err| ApiError::invalid(err.to_string()))
}

impl FakeApi {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an object to the server and the cache.
    pub fn add<K: Object>(&self, object: &K) {
        let mut state = self.lock();
        let value = to_value(object);
        state.cache.insert(key_of(object), value.clone());
        state.server.insert(key_of(object), value);
    }

    /// Adds an object to the server only (a type that is not cached, such as Secrets).
    pub fn add_to_server<K: Object>(&self, object: &K) {
        self.lock().server.insert(key_of(object), to_value(object));
    }

    /// Removes an object from the server only (deleted by someone else; the cache has not
    /// seen it yet).
    pub fn remove_from_server<K: Object>(&self, namespace: &str, name: &str) {
        self.lock().server.remove(&key::<K>(namespace, name));
    }

    /// Puts an object in the cache only (a watch event the server has not seen).
    pub fn add_to_cache<K: Object>(&self, object: &K) {
        self.lock().cache.insert(key_of(object), to_value(object));
    }

    /// Removes an object from the cache (a watch delete event).
    pub fn remove_from_cache<K: Object>(&self, namespace: &str, name: &str) {
        self.lock().cache.remove(&key::<K>(namespace, name));
    }

    /// The cache's copy of an object (what a lister returns).
    pub fn cached<K: Object>(&self, namespace: &str, name: &str) -> Option<K> {
        let state = self.lock();
        let value = state.cache.get(&key::<K>(namespace, name))?;
        from_value(value).ok()
    }

    /// Every cached object of type `K`, by namespace and name.
    pub fn cached_list<K: Object>(&self) -> Vec<K> {
        self.lock()
            .cache
            .iter()
            .filter(|((resource, _, _), _)| *resource == K::URL_PATH_SEGMENT)
            .filter_map(|(_, value)| from_value(value).ok())
            .collect()
    }

    /// The server's copy of an object.
    pub fn server_object<K: Object>(&self, namespace: &str, name: &str) -> Option<K> {
        let state = self.lock();
        let value = state.server.get(&key::<K>(namespace, name))?;
        from_value(value).ok()
    }

    /// Whether writes also update the cache (default: no, as in upstream's tests).
    pub fn set_write_through(&self, write_through: bool) {
        self.lock().write_through = write_through;
    }

    /// Adds a reactor before all others (client-go's `PrependReactor`). `resource` is a
    /// resource name ([`Action::resource`]) or `*`.
    pub fn prepend_reactor(
        &self,
        verb: Verb,
        resource: &str,
        react: impl FnMut(&Action) -> Option<ApiError> + Send + 'static,
    ) {
        self.lock().reactors.insert(
            0,
            RegisteredReactor {
                verb,
                resource: resource.to_string(),
                react: Box::new(react),
            },
        );
    }

    /// Every client call so far, oldest first.
    pub fn actions(&self) -> Vec<Action> {
        self.lock().actions.clone()
    }

    /// How many client calls so far.
    pub fn action_count(&self) -> usize {
        self.lock().actions.len()
    }

    /// Forgets the recorded calls.
    pub fn clear_actions(&self) {
        self.lock().actions.clear();
    }

    /// Records `action` and runs the reactors; an error from one fails the call.
    fn invoke(state: &mut State, action: Action) -> Result<(), ApiError> {
        let (verb, resource) = (action.verb, action.resource);
        state.actions.push(action.clone());
        for reactor in &mut state.reactors {
            if reactor.verb == verb
                && (reactor.resource == "*" || reactor.resource == resource)
                && let Some(err) = (reactor.react)(&action)
            {
                return Err(err);
            }
        }
        Ok(())
    }

    /// A client GET: the server's copy, or client-go's not-found error.
    pub fn get<K: Object>(&self, namespace: &str, name: &str) -> Result<K, ApiError> {
        let mut state = self.lock();
        Self::invoke(
            &mut state,
            Action::get(K::URL_PATH_SEGMENT, namespace, name),
        )?;
        let value = state
            .server
            .get(&key::<K>(namespace, name))
            .ok_or_else(|| ApiError::not_found(&qualified_resource::<K>(), name))?;
        from_value(value)
    }

    /// A client PATCH of the object (`subresource` `""`) or its `"status"`: applied to the
    /// server's copy (as client-go's object tracker: the whole patch, whatever the
    /// subresource), and to the cache with [`FakeApi::set_write_through`]. A JSON patch that
    /// does not apply (a failed `test`) is a 422 `Invalid`, as from the API server.
    pub fn patch<K: Object>(
        &self,
        namespace: &str,
        name: &str,
        subresource: &'static str,
        patch_type: PatchType,
        patch: &Value,
    ) -> Result<K, ApiError> {
        let mut state = self.lock();
        Self::invoke(
            &mut state,
            Action::patch_subresource(
                K::URL_PATH_SEGMENT,
                name,
                patch_type,
                patch.clone(),
                subresource,
            )
            .in_namespace(namespace),
        )?;
        let key = key::<K>(namespace, name);
        let mut doc = state
            .server
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&qualified_resource::<K>(), name))?;
        match patch_type {
            PatchType::Merge | PatchType::Strategic => apply_merge_patch(&mut doc, patch),
            PatchType::Json => apply_json_patch(&mut doc, patch)
                .map_err(|err| ApiError::invalid(err.to_string()))?,
        }
        let patched: K = from_value(&doc)?;
        // Stored as the type serializes it, as the API server would.
        let doc = to_value(&patched);
        if state.write_through {
            state.cache.insert(key.clone(), doc.clone());
        }
        state.server.insert(key, doc);
        Ok(patched)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
    use serde_json::json;

    use super::*;

    fn pv(name: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn patches_reach_the_server_not_the_cache() {
        let api = FakeApi::new();
        api.add(&pv("pv1"));
        let patched: PersistentVolume = api
            .patch(
                "",
                "pv1",
                "",
                PatchType::Json,
                &json!([{"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]),
            )
            .unwrap();
        assert_eq!(patched.metadata.finalizers, Some(vec!["f".to_string()]));
        let cached: PersistentVolume = api.cached("", "pv1").unwrap();
        assert_eq!(cached.metadata.finalizers, None);
        let server: PersistentVolume = api.server_object("", "pv1").unwrap();
        assert_eq!(server.metadata.finalizers, Some(vec!["f".to_string()]));
        assert_eq!(
            api.actions(),
            [Action::patch(
                "persistentvolumes",
                "pv1",
                PatchType::Json,
                json!([{"op": "add", "path": "/metadata/finalizers", "value": ["f"]}])
            )]
        );

        api.set_write_through(true);
        let _: PersistentVolume = api
            .patch(
                "",
                "pv1",
                "",
                PatchType::Merge,
                &json!({"metadata": {"labels": {"a": "b"}}}),
            )
            .unwrap();
        let cached: PersistentVolume = api.cached("", "pv1").unwrap();
        assert!(cached.metadata.labels.is_some());
        assert_eq!(api.cached_list::<PersistentVolume>().len(), 1);
    }

    #[test]
    fn missing_objects_failed_tests_and_reactors() {
        let api = FakeApi::new();
        let err = api.get::<Secret>("ns", "s").unwrap_err();
        assert_eq!(err.to_string(), "secrets \"s\" not found");
        api.add(&pv("pv1"));
        let err = api
            .patch::<PersistentVolume>(
                "",
                "pv1",
                "",
                PatchType::Json,
                &json!([{"op": "test", "path": "/metadata/finalizers", "value": ["x"]}]),
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
        api.prepend_reactor(Verb::Patch, "*", |action| {
            (action.subresource == "status").then(|| ApiError::forbidden("x", "y", "no"))
        });
        let err = api
            .patch::<PersistentVolume>("", "pv1", "status", PatchType::Merge, &json!({}))
            .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(api.action_count(), 3);
        api.clear_actions();
        assert_eq!(api.action_count(), 0);
        assert_eq!(
            qualified_resource::<k8s_openapi::api::storage::v1::VolumeAttachment>(),
            "volumeattachments.storage.k8s.io"
        );
    }
}
