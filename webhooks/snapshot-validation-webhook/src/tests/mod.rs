//! Upstream's tables (v8.1.1 `pkg/validation-webhook/snapshot_test.go` and `groupsnapshot_test.go`
//! for the classes; v7.0.2's tables of the same files for the snapshots, contents and group
//! snapshot kinds whose rules moved into the CRDs' CEL in v8.0), and the HTTP exchange.

mod fuzz;
mod groupsnapshot;
mod snapshot;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;
use crate::classes::{ClassInfo, FixedClasses};

/// One case of an upstream table.
pub(crate) struct Case {
    pub name: &'static str,
    pub operation: &'static str,
    pub object: Value,
    pub old: Value,
    pub should_admit: bool,
    /// The whole message (upstream's, for the class rules) or, prefixed with `~`, a part of
    /// it (the CEL rule's message, where upstream's webhook worded it differently).
    pub msg: &'static str,
}

pub(crate) fn class(name: &str, default: bool, driver: &str) -> ClassInfo {
    ClassInfo {
        name: name.to_string(),
        default_annotation: default.then(|| "true".to_string()),
        driver: driver.to_string(),
    }
}

pub(crate) fn admitter(snapshot: Vec<ClassInfo>, group: Vec<ClassInfo>) -> Admitter {
    Admitter {
        snapshot_classes: Arc::new(FixedClasses(snapshot)),
        group_snapshot_classes: Arc::new(FixedClasses(group)),
        prevent_volume_mode_conversion: true,
    }
}

pub(crate) fn run(
    admitter: &Admitter,
    endpoint: Endpoint,
    (group, version, resource): (&str, &str, &str),
    case: &Case,
) {
    let request = json!({
        "uid": "u",
        "operation": case.operation,
        "resource": {"group": group, "version": version, "resource": resource},
        "object": case.object,
        "oldObject": case.old,
    });
    let result = admitter.admit(endpoint, &request);
    let name = case.name;
    assert_eq!(
        result.is_ok(),
        case.should_admit,
        "{name}: expected admit={}, got {result:?}",
        case.should_admit
    );
    let msg = result.err().unwrap_or_default();
    match case.msg.strip_prefix('~') {
        Some(part) => assert!(msg.contains(part), "{name}: {msg:?} lacks {part:?}"),
        None => assert_eq!(msg, case.msg, "{name}"),
    }
}

#[test]
fn command_builds_and_has_upstream_flags() {
    let set = flag_set();
    set.command().clone().debug_assert();
    let help = set.command().clone().render_long_help().to_string();
    for flag in [
        "--tls-cert-file",
        "--tls-private-key-file",
        "--port",
        "--kubeconfig",
        "--prevent-volume-mode-conversion",
        "--enable-volume-group-snapshot-webhook",
        "--v",
        "--logtostderr",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
    let view = set.parse(["x"]).unwrap().process();
    assert_eq!(view.int("port"), 443);
    assert!(view.bool("prevent-volume-mode-conversion"));
    assert!(!view.bool("enable-volume-group-snapshot-webhook"));
    let view = set
        .parse([
            "x",
            "--prevent-volume-mode-conversion=false",
            "--enable-volume-group-snapshot-webhook",
            "--port",
            "8443",
        ])
        .unwrap()
        .process();
    assert!(!view.bool("prevent-volume-mode-conversion"));
    assert!(view.bool("enable-volume-group-snapshot-webhook"));
    assert_eq!(view.int("port"), 8443);
}

async fn post(router: Router, path: &str, content_type: &str, body: Value) -> (StatusCode, String) {
    let response = router
        .oneshot(
            Request::post(path)
                .header("Content-Type", content_type)
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn default_class_review(api_version: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "abc",
            "operation": "CREATE",
            "resource": {"group": "snapshot.storage.k8s.io", "version": "v1", "resource": "volumesnapshotclasses"},
            "object": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                       "metadata": {"name": "new", "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
                       "driver": "d", "deletionPolicy": "Delete"},
            "oldObject": null,
        }
    })
}

#[tokio::test]
async fn answers_v1_and_v1beta1_reviews_in_their_own_version() {
    let router = router(admitter(vec![class("old", true, "d")], vec![]), false);
    for version in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
        let (status, body) = post(
            router.clone(),
            "/volumesnapshot",
            "application/json",
            default_class_review(version),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            answer,
            json!({
                "kind": "AdmissionReview",
                "apiVersion": version,
                "response": {
                    "uid": "abc",
                    "allowed": false,
                    "status": {"metadata": {}, "message": "default snapshot class: old already exists for driver: d"},
                }
            })
        );
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_400() {
    let router = router(admitter(vec![], vec![]), false);
    let (status, body) = post(
        router.clone(),
        "/volumesnapshot",
        "application/yaml",
        default_class_review("admission.k8s.io/v1"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        "contentType=application/yaml, expect application/json\n"
    );

    let (status, body) = post(
        router.clone(),
        "/volumesnapshot",
        "application/json",
        json!({"apiVersion": "v1", "kind": "Pod"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("Unsupported group version kind: /v1, Kind=Pod"),
        "{body}"
    );

    let (status, body) = post(router, "/volumesnapshot", "application/json", json!([1])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("Request could not be decoded"), "{body}");
}

#[tokio::test]
async fn group_snapshot_endpoint_only_with_its_flag() {
    let (status, _) = post(
        router(admitter(vec![], vec![]), false),
        "/volumegroupsnapshot",
        "application/json",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "g", "operation": "CREATE",
                    "resource": {"group": "groupsnapshot.storage.k8s.io", "version": "v1", "resource": "volumegroupsnapshotclasses"},
                    "object": {"metadata": {"name": "n", "annotations": {"groupsnapshot.storage.kubernetes.io/is-default-class": "true"}}, "driver": "d"}}
    });
    let (status, body) = post(
        router(admitter(vec![], vec![class("other", true, "d")]), true),
        "/volumegroupsnapshot",
        "application/json",
        review,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["status"]["message"],
        "default group snapshot class: other already exists for driver: d"
    );
}

#[test]
fn a_resource_the_endpoint_does_not_know_is_refused() {
    let admitter = admitter(vec![], vec![]);
    let request = json!({"operation": "CREATE",
        "resource": {"group": "groupsnapshot.storage.k8s.io", "version": "v1", "resource": "volumegroupsnapshots"},
        "object": {}});
    let err = admitter.admit(Endpoint::Snapshot, &request).unwrap_err();
    assert_eq!(
        err,
        "expect resource to be {snapshot.storage.k8s.io v1 volumesnapshots}, {snapshot.storage.k8s.io v1 volumesnapshotcontents}, or {snapshot.storage.k8s.io v1 volumesnapshotclasses}, but found {groupsnapshot.storage.k8s.io v1 volumegroupsnapshots}"
    );
    // DELETE and CONNECT are admitted whatever they name, as upstream.
    let request =
        json!({"operation": "DELETE", "resource": {"group": "x", "version": "y", "resource": "z"}});
    assert!(admitter.admit(Endpoint::Snapshot, &request).is_ok());
}

#[tokio::test]
async fn readyz_answers_ok() {
    let response = router(admitter(vec![], vec![]), false)
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn release_tools_name_the_upstream_version() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../release-tools/upstream-versions.toml"
    ));
    let body = text
        .split(&format!("[{BINARY}]"))
        .nth(1)
        .expect("section missing in upstream-versions.toml");
    let body = body.split("\n[").next().unwrap_or_default();
    assert!(
        body.contains(&format!("upstream = \"{}\"", UPSTREAM.0)),
        "{body}"
    );
    assert!(
        body.contains(&format!("version = \"{}\"", UPSTREAM.1)),
        "{body}"
    );
}
