//! Patches: computing them as upstream does, sending them, and applying them as the API
//! server does (for fakes).
//!
//! - [`create_merge_patch`]: a JSON merge patch (RFC 7386) between an original and a modified
//!   document, as `evanphx/json-patch`'s `CreateMergePatch` (upstream's `createMergePatch`)
//!   computes it: only what changed, removed keys as `null`.
//! - [`Patcher`]: sends a [`PatchBody`] (JSON merge, strategic merge or JSON patch) to an
//!   object or its `status`, with our field manager, and returns the patched object. Patches
//!   are how controllers write objects someone else owns: a typed `replace` would drop the
//!   fields k8s-openapi does not know.
//! - [`apply_merge_patch`] / [`apply_json_patch`]: what the API server does with them.
//!
//! Finalizer patches are in [`crate::finalizer`].

use std::fmt;

use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ApiError;

/// The JSON merge patch (RFC 7386) that turns `original` into `modified`, as
/// `jsonpatch.CreateMergePatch` computes it: keys added or changed in `modified` with their new
/// value (objects recursively, arrays and scalars whole), keys missing from `modified` as
/// `null`. Identical documents give `{}`.
///
/// When either document is not an object, the patch is `modified` itself (a merge patch that
/// is not an object replaces the target).
pub fn create_merge_patch(original: &Value, modified: &Value) -> Value {
    match (original, modified) {
        (Value::Object(a), Value::Object(b)) => Value::Object(diff(a, b)),
        _ => modified.clone(),
    }
}

fn diff(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut into = Map::new();
    for (key, bv) in b {
        let Some(av) = a.get(key) else {
            // Added.
            into.insert(key.clone(), bv.clone());
            continue;
        };
        match (av, bv) {
            (Value::Object(ao), Value::Object(bo)) => {
                let d = diff(ao, bo);
                if !d.is_empty() {
                    into.insert(key.clone(), Value::Object(d));
                }
            }
            // Same type or not, anything else that differs is replaced whole.
            _ => {
                if av != bv {
                    into.insert(key.clone(), bv.clone());
                }
            }
        }
    }
    for key in a.keys() {
        if !b.contains_key(key) {
            into.insert(key.clone(), Value::Null);
        }
    }
    into
}

/// Applies a JSON merge patch (RFC 7386) to `target`.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(object) = target {
        for (key, value) in patch {
            if value.is_null() {
                object.remove(key);
            } else {
                apply_merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A patch and its encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchBody<'a> {
    /// `application/merge-patch+json` (RFC 7386).
    Merge(&'a Value),
    /// `application/strategic-merge-patch+json`: a merge patch in which lists with a merge
    /// key (`finalizers` is not one; `conditions` and most spec lists are) are merged by that
    /// key instead of replaced. For maps such as labels and annotations it is the same as a
    /// merge patch, so [`create_merge_patch`] makes valid strategic patches for them.
    Strategic(&'a Value),
    /// `application/json-patch+json` (RFC 6902): a list of operations, `test` included.
    Json(&'a Value),
}

impl PatchBody<'_> {
    /// The request's `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        match self {
            PatchBody::Merge(_) => "application/merge-patch+json",
            PatchBody::Strategic(_) => "application/strategic-merge-patch+json",
            PatchBody::Json(_) => "application/json-patch+json",
        }
    }

    /// The body.
    pub fn value(&self) -> &Value {
        match self {
            PatchBody::Merge(v) | PatchBody::Strategic(v) | PatchBody::Json(v) => v,
        }
    }
}

/// Sends patches to the API server: `PATCH <object>[/status]?fieldManager=<name>`.
///
/// One request path for every patch type: kube's typed `Patch::Json` needs its `jsonpatch`
/// feature and types, and the request is simple enough to send as it is.
#[derive(Clone)]
pub struct Patcher {
    client: kube::Client,
    field_manager: Option<String>,
}

impl fmt::Debug for Patcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patcher")
            .field("field_manager", &self.field_manager)
            .finish_non_exhaustive()
    }
}

impl Patcher {
    /// A patcher that sends no field manager (the API server then derives one from the user
    /// agent, as for client-go).
    pub fn new(client: kube::Client) -> Self {
        Patcher {
            client,
            field_manager: None,
        }
    }

    /// Sends `fieldManager=<name>` with every patch.
    pub fn with_field_manager(mut self, name: impl Into<String>) -> Self {
        self.field_manager = Some(name.into());
        self
    }

    /// The client the patches go through.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Patches the object `name` (in `namespace`, `None` for cluster-scoped types).
    pub async fn patch<K>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: PatchBody<'_>,
    ) -> Result<K, ApiError>
    where
        K: Resource + DeserializeOwned,
        K::DynamicType: Default,
    {
        self.send(namespace, name, None, patch).await
    }

    /// Patches the `status` subresource of the object `name`.
    pub async fn patch_status<K>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: PatchBody<'_>,
    ) -> Result<K, ApiError>
    where
        K: Resource + DeserializeOwned,
        K::DynamicType: Default,
    {
        self.send(namespace, name, Some("status"), patch).await
    }

    async fn send<K>(
        &self,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch: PatchBody<'_>,
    ) -> Result<K, ApiError>
    where
        K: Resource + DeserializeOwned,
        K::DynamicType: Default,
    {
        let url = patch_url::<K>(namespace, name, subresource, self.field_manager.as_deref());
        let body = serde_json::to_vec(patch.value())
            .map_err(|err| ApiError::other(format!("failed to encode patch: {err}")))?;
        let request = http::Request::patch(url)
            .header(http::header::CONTENT_TYPE, patch.content_type())
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .map_err(|err| ApiError::other(format!("failed to build request: {err}")))?;
        Ok(self.client.request::<K>(request).await?)
    }
}

/// The URL of a PATCH of `name` (and `subresource`), with `fieldManager`.
fn patch_url<K>(
    namespace: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    field_manager: Option<&str>,
) -> String
where
    K: Resource,
    K::DynamicType: Default,
{
    let mut url = K::url_path(&K::DynamicType::default(), namespace);
    url.push('/');
    url.push_str(&escape_path(name));
    if let Some(subresource) = subresource {
        url.push('/');
        url.push_str(subresource);
    }
    if let Some(manager) = field_manager {
        url.push_str("?fieldManager=");
        url.push_str(&escape_path(manager));
    }
    url
}

/// Percent-encodes everything but unreserved URL characters.
fn escape_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Why a JSON patch did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchError {
    /// The patch is not an array of operations, or an operation is malformed.
    #[error("invalid JSON patch: {0}")]
    Invalid(String),
    /// A path does not exist (or cannot be created).
    #[error("JSON patch path {0:?} does not exist")]
    Missing(String),
    /// A `test` operation failed.
    #[error("testing value {0} failed")]
    TestFailed(String),
}

/// Applies a JSON patch (RFC 6902; operations `add`, `remove`, `replace` and `test`) to
/// `target`, atomically: on error `target` is unchanged.
///
/// `test` with the value `null` also passes when the path does not exist, as the API server's
/// `evanphx/json-patch` v4 does (upstream's `addFinalizerPatch` relies on it).
pub fn apply_json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let Value::Array(ops) = patch else {
        return Err(JsonPatchError::Invalid("not an array".into()));
    };
    let mut doc = target.clone();
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::Invalid("operation without \"op\"".into()))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::Invalid("operation without \"path\"".into()))?;
        let value = op.get("value");
        match name {
            "test" => {
                let current = pointer(&doc, path);
                let expected = value.unwrap_or(&Value::Null);
                let ok = match current {
                    None => expected.is_null(),
                    Some(current) => current == expected,
                };
                if !ok {
                    return Err(JsonPatchError::TestFailed(path.to_string()));
                }
            }
            "add" | "replace" => {
                let value = value
                    .ok_or_else(|| JsonPatchError::Invalid(format!("{name} without \"value\"")))?
                    .clone();
                set(&mut doc, path, value, name == "replace")?;
            }
            "remove" => remove(&mut doc, path)?,
            other => {
                return Err(JsonPatchError::Invalid(format!(
                    "unsupported operation {other:?}"
                )));
            }
        }
    }
    *target = doc;
    Ok(())
}

/// The unescaped reference tokens of a JSON pointer.
fn tokens(path: &str) -> Result<Vec<String>, JsonPatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(JsonPatchError::Invalid(format!("bad path {path:?}")));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn pointer<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = doc;
    for token in tokens(path).ok()? {
        current = match current {
            Value::Object(map) => map.get(&token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The parent container of `path` and the last token.
fn parent_mut<'a>(
    doc: &'a mut Value,
    path: &str,
) -> Result<(&'a mut Value, String), JsonPatchError> {
    let mut tokens = tokens(path)?;
    let Some(last) = tokens.pop() else {
        return Err(JsonPatchError::Invalid(
            "operation on the whole document".into(),
        ));
    };
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(&token),
            Value::Array(items) => token
                .parse::<usize>()
                .ok()
                .and_then(move |i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| JsonPatchError::Missing(path.to_string()))?;
    }
    Ok((current, last))
}

fn set(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), JsonPatchError> {
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        // `replace` of a missing member of an object sets it, as the API server's
        // evanphx/json-patch v4 does (upstream's snapshotter replaces `/status` that way).
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            if last == "-" && !replace {
                items.push(value);
            } else {
                let index: usize = last
                    .parse()
                    .map_err(|_| JsonPatchError::Invalid(format!("bad index in {path:?}")))?;
                if replace {
                    let slot = items
                        .get_mut(index)
                        .ok_or_else(|| JsonPatchError::Missing(path.to_string()))?;
                    *slot = value;
                } else if index <= items.len() {
                    items.insert(index, value);
                } else {
                    return Err(JsonPatchError::Missing(path.to_string()));
                }
            }
        }
        _ => return Err(JsonPatchError::Missing(path.to_string())),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<(), JsonPatchError> {
    let (parent, last) = parent_mut(doc, path)?;
    let removed = match parent {
        Value::Object(map) => map.remove(&last).is_some(),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(index) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(JsonPatchError::Missing(path.to_string()))
    }
}

#[cfg(test)]
mod tests;
