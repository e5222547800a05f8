//! The command line and the `/convert` exchange, through the router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;
use crate::convert::{V1BETA1, V1BETA2, VOLUME_SNAPSHOT_INFO_ANNOTATION};

#[test]
fn command_builds_and_has_upstream_flags() {
    let set = flag_set();
    set.command().clone().debug_assert();
    let help = set.command().clone().render_long_help().to_string();
    for flag in [
        "--tls-cert-file",
        "--tls-private-key-file",
        "--port",
        "--v",
        "--logging-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
    assert!(!help.contains("--version"), "upstream has no --version");
    let parsed = set
        .parse(["x", "-port=8443", "-tls-cert-file", "/c"])
        .unwrap();
    assert_eq!(parsed.process().int("port"), 8443);
    assert_eq!(parsed.process().string("tls-cert-file"), "/c");
    assert_eq!(set.parse(["x"]).unwrap().process().int("port"), 443);
}

async fn call(content_type: &str, accept: Option<&str>, body: String) -> (StatusCode, String) {
    let mut request = Request::post("/convert").header("Content-Type", content_type);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = router()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn content(version: &str, status: Value) -> Value {
    json!({"apiVersion": version, "kind": "VolumeGroupSnapshotContent",
           "metadata": {"name": "c1", "uid": "u1"}, "spec": {"driver": "d"}, "status": status})
}

fn review(desired: &str, objects: Vec<Value>) -> String {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
           "request": {"uid": "req-1", "desiredAPIVersion": desired, "objects": objects}})
    .to_string()
}

#[tokio::test]
async fn converts_every_object_and_echoes_the_uid() {
    let beta2 = content(
        V1BETA2,
        json!({"volumeSnapshotInfoList": [{"snapshotHandle": "s", "volumeHandle": "v", "readyToUse": true}]}),
    );
    let (status, body) = call(
        "application/json",
        Some("application/json, */*"),
        review(V1BETA1, vec![beta2.clone(), beta2]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["kind"], "ConversionReview");
    assert_eq!(answer["apiVersion"], "apiextensions.k8s.io/v1");
    let response = &answer["response"];
    assert_eq!(response["uid"], "req-1");
    assert_eq!(
        response["result"],
        json!({"metadata": {}, "status": "Success"})
    );
    let objects = response["convertedObjects"].as_array().unwrap();
    assert_eq!(objects.len(), 2);
    for object in objects {
        assert_eq!(object["apiVersion"], V1BETA1);
        assert_eq!(
            object["status"]["volumeSnapshotHandlePairList"],
            json!([{"snapshotHandle": "s", "volumeHandle": "v"}])
        );
        assert!(object["metadata"]["annotations"][VOLUME_SNAPSHOT_INFO_ANNOTATION].is_string());
        assert_eq!(object["metadata"]["uid"], "u1");
    }
}

#[tokio::test]
async fn a_failed_object_fails_the_review_with_its_message() {
    let snapshot =
        json!({"apiVersion": V1BETA1, "kind": "VolumeGroupSnapshot", "metadata": {"name": "g"}});
    let (status, body) = call(
        "application/json",
        None,
        review(V1BETA2, vec![content(V1BETA1, json!({})), snapshot]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "req-1");
    assert_eq!(
        answer["response"]["result"],
        json!({"metadata": {}, "status": "Failure",
               "message": "unexpected conversion kind \"VolumeGroupSnapshot\""})
    );
    assert_eq!(answer["response"]["convertedObjects"], Value::Null);

    // v1 is not converted (upstream's webhook knows only v1beta1 and v1beta2).
    let (_, body) = call(
        "application/json",
        None,
        review(
            "groupsnapshot.storage.k8s.io/v1",
            vec![content(V1BETA2, json!({}))],
        ),
    )
    .await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["result"]["status"], "Failure");
}

#[tokio::test]
async fn an_empty_review_succeeds_with_null_objects_as_go_encodes_them() {
    let (status, body) = call("application/json", None, review(V1BETA2, vec![])).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["response"],
        json!({"uid": "req-1", "convertedObjects": null, "result": {"metadata": {}, "status": "Success"}})
    );
}

#[tokio::test]
async fn yaml_in_and_out() {
    let body = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: ConversionReview\nrequest:\n  uid: y1\n  desiredAPIVersion: {V1BETA2}\n  objects:\n  - apiVersion: {V1BETA1}\n    kind: VolumeGroupSnapshotContent\n    metadata: {{name: c}}\n    status:\n      volumeSnapshotHandlePairList: [{{snapshotHandle: s, volumeHandle: v}}]\n"
    );
    let (status, body) = call("application/yaml", Some("application/yaml"), body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_yaml::from_str(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "y1");
    assert_eq!(
        answer["response"]["convertedObjects"][0]["status"]["volumeSnapshotInfoList"],
        json!([{"snapshotHandle": "s", "volumeHandle": "v"}])
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_400() {
    let ok = review(V1BETA2, vec![]);
    let (status, body) = call("text/plain", None, ok.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("invalid Content-Type header `text/plain`"),
        "{body}"
    );

    let (status, body) = call("application/json", Some("text/html"), ok).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("invalid accept header `text/html`"),
        "{body}"
    );

    let (status, body) = call("application/json", None, "{".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("failed to deserialize body ({) with error"),
        "{body}"
    );

    let beta1_review = json!({"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "ConversionReview",
                              "request": {"uid": "1", "desiredAPIVersion": V1BETA2, "objects": []}});
    let (status, body) = call("application/json", None, beta1_review.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with(
            "Unsupported group version kind: apiextensions.k8s.io/v1beta1, Kind=ConversionReview"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn readyz_answers_ok() {
    let response = router()
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"ok");
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
