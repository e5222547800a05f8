//! The AdmissionReview exchange (external-snapshotter v8.1 `pkg/validation-webhook/webhook.go`):
//! a JSON body only, `admission.k8s.io/v1` or `v1beta1` reviews (the answer has the version of
//! the question), CREATE and UPDATE judged, everything else admitted.
//!
//! Two endpoints, as upstream: `/volumesnapshot` for the `snapshot.storage.k8s.io/v1` kinds and
//! `/volumegroupsnapshot` for the `groupsnapshot.storage.k8s.io` kinds (every version the CRDs
//! have had). A resource an endpoint does not know is refused with upstream's message, so a
//! misconfigured ValidatingWebhookConfiguration shows at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::{debug, error};

use crate::classes::{
    self, ClassInfo, ClassKind, ClassLister, IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION,
    IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION,
};
use crate::rules::{self, Rule};

/// The snapshot group.
pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";
/// The group snapshot group.
pub const GROUP_SNAPSHOT_GROUP: &str = "groupsnapshot.storage.k8s.io";
/// Every version the group snapshot CRDs have served.
pub const GROUP_SNAPSHOT_VERSIONS: &[&str] = &["v1alpha1", "v1beta1", "v1beta2", "v1"];

/// Which endpoint a review came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/volumesnapshot`.
    Snapshot,
    /// `/volumegroupsnapshot`.
    GroupSnapshot,
}

/// What a resource is checked with.
enum Judge {
    Rules(&'static [Rule]),
    Class(ClassKind, &'static [Rule]),
}

/// Decides reviews.
#[derive(Clone)]
pub struct Admitter {
    /// Existing VolumeSnapshotClasses.
    pub snapshot_classes: Arc<dyn ClassLister>,
    /// Existing VolumeGroupSnapshotClasses.
    pub group_snapshot_classes: Arc<dyn ClassLister>,
    /// `--prevent-volume-mode-conversion`: `spec.sourceVolumeMode` of a content is immutable.
    pub prevent_volume_mode_conversion: bool,
}

impl std::fmt::Debug for Admitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitter")
            .field(
                "prevent_volume_mode_conversion",
                &self.prevent_volume_mode_conversion,
            )
            .finish_non_exhaustive()
    }
}

fn judge(endpoint: Endpoint, group: &str, version: &str, resource: &str) -> Option<Judge> {
    use rules::*;
    match endpoint {
        Endpoint::Snapshot if group == SNAPSHOT_GROUP && version == "v1" => match resource {
            "volumesnapshots" => Some(Judge::Rules(VOLUME_SNAPSHOT)),
            "volumesnapshotcontents" => Some(Judge::Rules(VOLUME_SNAPSHOT_CONTENT)),
            "volumesnapshotclasses" => {
                Some(Judge::Class(ClassKind::Snapshot, VOLUME_SNAPSHOT_CLASS))
            }
            _ => None,
        },
        Endpoint::GroupSnapshot
            if group == GROUP_SNAPSHOT_GROUP && GROUP_SNAPSHOT_VERSIONS.contains(&version) =>
        {
            // v1beta1's CRD has fewer rules than v1beta2 and v1; v1alpha1 had none in its CRD
            // and got upstream's webhook checks, which the v1 rules include.
            let newer = version != "v1beta1";
            match resource {
                "volumegroupsnapshots" if newer => Some(Judge::Rules(VOLUME_GROUP_SNAPSHOT_V1)),
                "volumegroupsnapshots" => Some(Judge::Rules(VOLUME_GROUP_SNAPSHOT_V1BETA1)),
                "volumegroupsnapshotcontents" if newer => {
                    Some(Judge::Rules(VOLUME_GROUP_SNAPSHOT_CONTENT_V1))
                }
                "volumegroupsnapshotcontents" => {
                    Some(Judge::Rules(VOLUME_GROUP_SNAPSHOT_CONTENT_V1BETA1))
                }
                "volumegroupsnapshotclasses" => Some(Judge::Class(
                    ClassKind::GroupSnapshot,
                    if newer {
                        VOLUME_GROUP_SNAPSHOT_CLASS_V1
                    } else {
                        &[]
                    },
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

fn expected(endpoint: Endpoint) -> String {
    let gvrs: Vec<String> = match endpoint {
        Endpoint::Snapshot => [
            "volumesnapshots",
            "volumesnapshotcontents",
            "volumesnapshotclasses",
        ]
        .iter()
        .map(|r| format!("{{{SNAPSHOT_GROUP} v1 {r}}}"))
        .collect(),
        Endpoint::GroupSnapshot => [
            "volumegroupsnapshots",
            "volumegroupsnapshotcontents",
            "volumegroupsnapshotclasses",
        ]
        .iter()
        .map(|r| {
            format!(
                "{{{GROUP_SNAPSHOT_GROUP} <{}> {r}}}",
                GROUP_SNAPSHOT_VERSIONS.join("|")
            )
        })
        .collect(),
    };
    match gvrs.as_slice() {
        [a, b, c] => format!("{a}, {b}, or {c}"),
        _ => gvrs.join(", "),
    }
}

impl Admitter {
    /// Judges one AdmissionRequest: `Ok(())` admits, `Err` carries the message of the refusal.
    pub fn admit(&self, endpoint: Endpoint, request: &Value) -> Result<(), String> {
        let operation = request
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if operation != "CREATE" && operation != "UPDATE" {
            return Ok(());
        }
        let field = |name: &str| -> &str {
            request
                .get("resource")
                .and_then(|r| r.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let (group, version, resource) = (field("group"), field("version"), field("resource"));
        let Some(judge) = judge(endpoint, group, version, resource) else {
            let message = format!(
                "expect resource to be {}, but found {{{group} {version} {resource}}}",
                expected(endpoint)
            );
            error!("{message}");
            return Err(message);
        };
        debug!(group, version, resource, "admitting");
        let object = request.get("object").unwrap_or(&Value::Null);
        let old = request.get("oldObject").filter(|o| !o.is_null());
        let is_update = operation == "UPDATE";
        let rules = match judge {
            Judge::Rules(rules) => rules,
            Judge::Class(kind, rules) => {
                let (annotation, lister) = match kind {
                    ClassKind::Snapshot => {
                        (IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION, &self.snapshot_classes)
                    }
                    ClassKind::GroupSnapshot => (
                        IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION,
                        &self.group_snapshot_classes,
                    ),
                };
                let class = ClassInfo::from_json(object, annotation)?;
                let old_class = ClassInfo::from_json(old.unwrap_or(&Value::Null), annotation)?;
                classes::decide(kind, &class, &old_class, lister)?;
                rules
            }
        };
        if !object.is_object() {
            return Err(format!("cannot decode {resource} from {object}"));
        }
        let old = if is_update { old } else { None };
        let violations = rules::check(rules, object, old, self.prevent_volume_mode_conversion);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(rules::join(&violations))
        }
    }
}

fn bad_request(message: String) -> Response {
    error!("{message}");
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// Serves one review at `endpoint`.
pub fn serve(
    admitter: &Admitter,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/json" {
        return bad_request(format!(
            "contentType={content_type}, expect application/json"
        ));
    }
    debug!("handling request: {}", String::from_utf8_lossy(body));
    let review: Value = match serde_json::from_slice(body) {
        Ok(review @ Value::Object(_)) => review,
        Ok(other) => {
            return bad_request(format!(
                "Request could not be decoded: Object 'Kind' is missing in '{other}'"
            ));
        }
        Err(err) => return bad_request(format!("Request could not be decoded: {err}")),
    };
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = review
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind.is_empty() {
        return bad_request(format!(
            "Request could not be decoded: Object 'Kind' is missing in '{}'",
            String::from_utf8_lossy(body)
        ));
    }
    if kind != "AdmissionReview"
        || !matches!(
            api_version.as_str(),
            "admission.k8s.io/v1" | "admission.k8s.io/v1beta1"
        )
    {
        return bad_request(format!(
            "Unsupported group version kind: {}, Kind={kind}",
            go_group_version(&api_version)
        ));
    }
    let Some(request) = review.get("request").filter(|r| r.is_object()) else {
        return bad_request("the AdmissionReview has no request".to_string());
    };
    let uid = request.get("uid").cloned().unwrap_or(json!(""));
    let response = match admitter.admit(endpoint, request) {
        Ok(()) => json!({"uid": uid, "allowed": true, "status": {"metadata": {}}}),
        Err(message) => json!({
            "uid": uid,
            "allowed": false,
            "status": {"metadata": {}, "message": message},
        }),
    };
    let answer = json!({
        "kind": "AdmissionReview",
        "apiVersion": api_version,
        "response": response,
    });
    debug!("sending response: {answer}");
    (
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// An apiVersion as Go prints a GroupVersionKind's group and version: the core group is empty,
/// so `v1` reads `/v1`.
fn go_group_version(api_version: &str) -> String {
    if api_version.contains('/') {
        api_version.to_string()
    } else {
        format!("/{api_version}")
    }
}
