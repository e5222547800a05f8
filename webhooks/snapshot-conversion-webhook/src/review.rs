//! `/convert`: the ConversionReview exchange with the API server (external-snapshotter v8.7.0
//! `pkg/webhook/framework.go`): the body is read as JSON or YAML after its `Content-Type`, only
//! `apiextensions.k8s.io/v1` ConversionReviews are answered, every object is converted or the
//! whole review fails with the first error, and the answer is written as the `Accept` header
//! asks (JSON by default).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::{debug, error};

use crate::convert::convert_group_snapshot_crd;

/// The group and version of the reviews answered.
pub const CONVERSION_REVIEW_V1: &str = "apiextensions.k8s.io/v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

fn input_format(content_type: &str) -> Option<Format> {
    match content_type.split_once('/') {
        Some(("application", "json")) => Some(Format::Json),
        Some(("application", "yaml")) => Some(Format::Yaml),
        _ => None,
    }
}

/// The first clause of `Accept` (highest quality first) that JSON or YAML satisfies; an empty
/// header means JSON.
fn output_format(accept: &str) -> Option<Format> {
    if accept.trim().is_empty() {
        return Some(Format::Json);
    }
    let mut clauses: Vec<(f32, &str, &str)> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';');
            let media = parts.next()?.trim();
            let (kind, sub) = media.split_once('/').unwrap_or((media, "*"));
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((q, kind.trim(), sub.trim()))
        })
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0));
    clauses
        .into_iter()
        .find_map(|(_, kind, sub)| match (kind, sub) {
            ("application", "json") | ("application", "*") | ("*", "*") => Some(Format::Json),
            ("application", "yaml") => Some(Format::Yaml),
            _ => None,
        })
}

fn bad_request(message: String) -> Response {
    error!("{message}");
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// A `metav1.Status` as Go encodes it.
fn status(success: Result<(), String>) -> Value {
    match success {
        Ok(()) => json!({"metadata": {}, "status": "Success"}),
        Err(message) => json!({"metadata": {}, "status": "Failure", "message": message}),
    }
}

/// Converts every object of `request` (a ConversionRequest) or fails on the first error.
pub fn do_conversion_v1(request: &Value) -> Value {
    let desired = request
        .get("desiredAPIVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let objects = match request.get("objects") {
        Some(Value::Array(objects)) => objects.as_slice(),
        _ => &[],
    };
    let mut converted = Vec::with_capacity(objects.len());
    for object in objects {
        if !object.is_object() || object.get("kind").and_then(Value::as_str).is_none() {
            let message = format!(
                "failed to unmarshall object ({object}) with error: Object 'Kind' is missing in '{object}'"
            );
            error!("{message}");
            return json!({"convertedObjects": null, "result": status(Err(message))});
        }
        match convert_group_snapshot_crd(object, desired) {
            Ok(mut object) => {
                object["apiVersion"] = Value::String(desired.to_string());
                converted.push(object);
            }
            Err(message) => {
                error!("{message}");
                return json!({"convertedObjects": null, "result": status(Err(message))});
            }
        }
    }
    // Go leaves an empty list nil, which encodes as null.
    let converted = if converted.is_empty() {
        Value::Null
    } else {
        Value::Array(converted)
    };
    json!({"convertedObjects": converted, "result": status(Ok(()))})
}

/// The `/convert` handler.
pub async fn serve(headers: HeaderMap, body: Bytes) -> Response {
    let header_value = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header_value(header::CONTENT_TYPE);
    let Some(format) = input_format(&content_type) else {
        return bad_request(format!("invalid Content-Type header `{content_type}`"));
    };
    let text = String::from_utf8_lossy(&body);
    debug!("handling request: {text}");
    let decoded: Result<Value, String> = match format {
        Format::Json => serde_json::from_slice(&body).map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml::from_slice(&body).map_err(|e| e.to_string()),
    };
    let review = match decoded {
        Ok(review @ Value::Object(_)) => review,
        Ok(other) => {
            return bad_request(format!(
                "failed to deserialize body ({text}) with error Object 'Kind' is missing in '{other}'"
            ));
        }
        Err(err) => {
            return bad_request(format!(
                "failed to deserialize body ({text}) with error {err}"
            ));
        }
    };
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = review
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind.is_empty() {
        return bad_request(format!(
            "failed to deserialize body ({text}) with error Object 'Kind' is missing in '{text}'"
        ));
    }
    if api_version != CONVERSION_REVIEW_V1 || kind != "ConversionReview" {
        return bad_request(format!(
            "Unsupported group version kind: {}, Kind={kind}",
            go_group_version(api_version)
        ));
    }
    let Some(request) = review.get("request").filter(|r| r.is_object()) else {
        return bad_request("the ConversionReview has no request".to_string());
    };
    let mut response = do_conversion_v1(request);
    response["uid"] = request.get("uid").cloned().unwrap_or(json!(""));
    debug!("sending response: {response}");
    let answer = json!({
        "kind": "ConversionReview",
        "apiVersion": CONVERSION_REVIEW_V1,
        // The request is not needed in a response; upstream sends it back emptied.
        "request": {"uid": "", "desiredAPIVersion": "", "objects": null},
        "response": response,
    });

    let accept = header_value(header::ACCEPT);
    match output_format(&accept) {
        Some(Format::Json) => (
            [(header::CONTENT_TYPE, "application/json")],
            format!("{answer}\n"),
        )
            .into_response(),
        Some(Format::Yaml) => match serde_yaml::to_string(&answer) {
            Ok(yaml) => ([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response(),
            Err(err) => {
                error!(%err, "encoding the response");
                (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
            }
        },
        None => bad_request(format!("invalid accept header `{accept}`")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert_eq!(output_format(""), Some(Format::Json));
        assert_eq!(output_format("application/json, */*"), Some(Format::Json));
        assert_eq!(output_format("application/yaml"), Some(Format::Yaml));
        assert_eq!(
            output_format("application/json;q=0.5, application/yaml"),
            Some(Format::Yaml)
        );
        assert_eq!(output_format("*/*"), Some(Format::Json));
        assert_eq!(output_format("text/plain"), None);
        assert_eq!(input_format("application/json"), Some(Format::Json));
        assert_eq!(input_format("application/yaml"), Some(Format::Yaml));
        assert_eq!(input_format("application/json; charset=utf-8"), None);
        assert_eq!(input_format("json"), None);
    }
}
