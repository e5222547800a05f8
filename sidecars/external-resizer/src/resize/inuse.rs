//! `--handle-volume-inuse-error`: which claims are used by a Pod that has not terminated
//! (upstream's `inUsePVCStore`), and which claims' last expansion failed because the driver
//! expands only volumes that are not in use.
//!
//! Upstream keeps every Pod of the cluster, whole, in an informer cache (external-resizer
//! #211: the resizer was OOM-killed in clusters with thousands of Pods). Here the Pod watch
//! decodes each Pod into [`PodClaims`] — name, namespace, UID, resource version, the names of
//! the claims it mounts, its phase — so the shared cache holds about a hundred bytes per Pod
//! whatever its size, and [`InUseClaims`] keeps, per namespace, only the claims in use and the
//! UIDs of the Pods using them (Pods without claims cost nothing there).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize};

/// What the resizer reads of a Pod: a Pod decoded without everything else. Its JSON form is a
/// Pod's (`metadata`, `spec.volumes[].persistentVolumeClaim.claimName`, `status.phase`), so it
/// is watched and cached as `pods`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodClaims {
    /// Name, namespace, UID and resource version only.
    #[serde(deserialize_with = "slim_metadata")]
    pub metadata: ObjectMeta,
    /// The claims the Pod mounts.
    #[serde(default)]
    pub spec: PodClaimsSpec,
    /// The Pod's phase.
    #[serde(default)]
    pub status: PodClaimsStatus,
}

/// The volumes of [`PodClaims`] that are PVCs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodClaimsSpec {
    /// Only the volumes with a `persistentVolumeClaim` source.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "claim_volumes"
    )]
    pub volumes: Vec<ClaimVolume>,
}

/// A Pod volume backed by a PVC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimVolume {
    /// The claim.
    pub persistent_volume_claim: ClaimSource,
}

/// A volume's `persistentVolumeClaim`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSource {
    /// The claim's name, in the Pod's namespace.
    pub claim_name: String,
}

/// The phase of [`PodClaims`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodClaimsStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

fn slim_metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Slim {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
    }
    let slim = Slim::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: slim.name,
        namespace: slim.namespace,
        uid: slim.uid,
        resource_version: slim.resource_version,
        ..ObjectMeta::default()
    })
}

fn claim_volumes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ClaimVolume>, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct AnyVolume {
        persistent_volume_claim: Option<ClaimSource>,
    }
    let volumes: Option<Vec<AnyVolume>> = Option::deserialize(deserializer)?;
    Ok(volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.persistent_volume_claim)
        .map(|persistent_volume_claim| ClaimVolume {
            persistent_volume_claim,
        })
        .collect())
}

impl kube::Resource for PodClaims {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl PodClaims {
    /// Upstream's `isPodTerminated`: the Pod failed or succeeded.
    pub fn is_terminated(&self) -> bool {
        matches!(
            self.status.phase.as_deref(),
            Some("Failed") | Some("Succeeded")
        )
    }

    /// The names of the claims the Pod mounts.
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.spec
            .volumes
            .iter()
            .map(|v| v.persistent_volume_claim.claim_name.as_str())
    }
}

/// Namespace → claim name → UIDs of the Pods using it.
type InUse = HashMap<String, HashMap<String, HashSet<String>>>;

/// Claims in use by Pods, and claims whose expansion failed with an in-use error.
#[derive(Debug, Default)]
pub struct InUseClaims {
    in_use: Mutex<InUse>,
    in_use_errors: Mutex<HashSet<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InUseClaims {
    /// An empty store.
    pub fn new() -> Self {
        InUseClaims::default()
    }

    /// A Pod appeared or changed: its claims are in use, unless it terminated.
    pub fn add_pod(&self, pod: &PodClaims) {
        if pod.is_terminated() {
            return;
        }
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut in_use = lock(&self.in_use);
        for claim in pod.claim_names() {
            in_use
                .entry(namespace.clone())
                .or_default()
                .entry(claim.to_string())
                .or_default()
                .insert(uid.clone());
        }
    }

    /// A Pod was deleted or terminated: it uses its claims no more.
    pub fn remove_pod(&self, pod: &PodClaims) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let mut in_use = lock(&self.in_use);
        let Some(claims) = in_use.get_mut(namespace) else {
            return;
        };
        for claim in pod.claim_names() {
            if let Some(pods) = claims.get_mut(claim) {
                pods.remove(uid);
                if pods.is_empty() {
                    claims.remove(claim);
                }
            }
        }
        if claims.is_empty() {
            in_use.remove(namespace);
        }
    }

    /// Upstream's `checkForUse`: whether a Pod that has not terminated uses the claim.
    pub fn check_for_use(&self, namespace: &str, name: &str) -> bool {
        lock(&self.in_use)
            .get(namespace)
            .is_some_and(|claims| claims.contains_key(name))
    }

    /// The claims in use, as `namespace/name` → Pod UIDs (for tests and debugging).
    pub fn snapshot(&self) -> HashMap<String, HashSet<String>> {
        lock(&self.in_use)
            .iter()
            .flat_map(|(namespace, claims)| {
                claims
                    .iter()
                    .map(move |(claim, pods)| (format!("{namespace}/{claim}"), pods.clone()))
            })
            .collect()
    }

    /// Whether the claim (by UID) last failed to expand because it was in use.
    pub fn has_in_use_errors(&self, claim_uid: &str) -> bool {
        lock(&self.in_use_errors).contains(claim_uid)
    }

    /// The claim failed to expand because it is in use.
    pub fn add_claim_with_in_use_error(&self, claim_uid: &str) {
        lock(&self.in_use_errors).insert(claim_uid.to_string());
    }

    /// Forget an in-use error (before each expansion attempt).
    pub fn remove_claim_with_in_use_error(&self, claim_uid: &str) {
        lock(&self.in_use_errors).remove(claim_uid);
    }
}
