//! Property tests of the admission endpoints, through the handler the HTTP server calls: any
//! body, and AdmissionReviews generated with random objects, operations and resources, give a
//! well-formed AdmissionReview answering the request's uid, or a 400 with a message; never a
//! panic.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use csi_test_support::fuzz::{config, json};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{admitter, class};
use crate::review::{self, Endpoint, GROUP_SNAPSHOT_GROUP, SNAPSHOT_GROUP};

/// Field names of snapshots, contents, classes and their group kinds.
const KEYS: &[&str] = &[
    "metadata",
    "name",
    "namespace",
    "annotations",
    "uid",
    "spec",
    "status",
    "source",
    "persistentVolumeClaimName",
    "volumeSnapshotContentName",
    "volumeSnapshotClassName",
    "volumeSnapshotRef",
    "snapshotHandle",
    "volumeHandle",
    "sourceVolumeMode",
    "driver",
    "deletionPolicy",
    "parameters",
    "selector",
    "volumeGroupSnapshotClassName",
    "volumeGroupSnapshotContentName",
    "volumeGroupSnapshotRef",
    "volumeGroupSnapshotHandle",
    "volumeHandles",
    "groupSnapshotHandles",
    "boundVolumeGroupSnapshotContentName",
    "snapshot.storage.kubernetes.io/is-default-class",
    "groupsnapshot.storage.kubernetes.io/is-default-class",
    "Delete",
    "Retain",
    "true",
];

fn resource() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(SNAPSHOT_GROUP.to_string()),
            Just(GROUP_SNAPSHOT_GROUP.to_string()),
            any::<String>(),
        ],
        prop_oneof![
            proptest::sample::select(&["v1", "v1beta1", "v1beta2", "v1alpha1"][..])
                .prop_map(str::to_string),
            any::<String>(),
        ],
        prop_oneof![
            proptest::sample::select(
                &[
                    "volumesnapshots",
                    "volumesnapshotcontents",
                    "volumesnapshotclasses",
                    "volumegroupsnapshots",
                    "volumegroupsnapshotcontents",
                    "volumegroupsnapshotclasses",
                ][..]
            )
            .prop_map(str::to_string),
            any::<String>(),
        ],
    )
        .prop_map(|(group, version, resource)| {
            json!({"group": group, "version": version, "resource": resource})
        })
}

/// An AdmissionReview with a random request.
fn review_doc() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            4 => Just("admission.k8s.io/v1".to_string()),
            1 => Just("admission.k8s.io/v1beta1".to_string()),
            1 => any::<String>(),
        ],
        prop_oneof![5 => Just("AdmissionReview".to_string()), 1 => any::<String>()],
        prop_oneof![
            Just(json!("CREATE")),
            Just(json!("UPDATE")),
            Just(json!("DELETE")),
            json(KEYS),
        ],
        prop_oneof![
            any::<String>().prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            Just(Value::Null),
        ],
        prop_oneof![4 => resource(), 1 => json(KEYS)],
        json(KEYS),
        json(KEYS),
    )
        .prop_map(
            |(api_version, kind, operation, uid, resource, object, old)| {
                json!({
                    "apiVersion": api_version,
                    "kind": kind,
                    "request": {
                        "uid": uid,
                        "operation": operation,
                        "resource": resource,
                        "object": object,
                        "oldObject": old,
                    },
                })
            },
        )
}

/// Calls the handler and checks the answer's shape; returns the decoded answer when 200.
fn exchange(endpoint: Endpoint, body: Vec<u8>) -> Result<Option<Value>, TestCaseError> {
    let admitter = admitter(
        vec![class("default-a", true, "test.csi.io")],
        vec![class("group-a", true, "test.csi.io")],
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let response = review::serve(&admitter, endpoint, &headers, &Bytes::from(body));
    let status = response.status();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let bytes = runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .expect("the body");
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    if status == StatusCode::BAD_REQUEST {
        prop_assert!(!text.trim().is_empty(), "a 400 without a message");
        return Ok(None);
    }
    prop_assert_eq!(status, StatusCode::OK, "{}", text);
    let answer: Value =
        serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&answer["kind"], "AdmissionReview");
    prop_assert!(answer["response"]["allowed"].is_boolean(), "{}", text);
    if answer["response"]["allowed"] == false {
        prop_assert!(
            answer["response"]["status"]["message"].is_string(),
            "{}",
            text
        );
    }
    Ok(Some(answer))
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_body_gets_an_answer_or_a_400(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            json(KEYS).prop_map(|v| v.to_string().into_bytes()),
        ],
        group in any::<bool>(),
    ) {
        let endpoint = if group { Endpoint::GroupSnapshot } else { Endpoint::Snapshot };
        exchange(endpoint, body)?;
    }

    #[test]
    fn any_admission_review_is_answered_with_its_uid(
        doc in review_doc(),
        group in any::<bool>(),
    ) {
        let endpoint = if group { Endpoint::GroupSnapshot } else { Endpoint::Snapshot };
        let answer = exchange(endpoint, doc.to_string().into_bytes())?;
        let well_formed = doc["kind"] == "AdmissionReview"
            && matches!(doc["apiVersion"].as_str(), Some("admission.k8s.io/v1" | "admission.k8s.io/v1beta1"));
        prop_assert_eq!(answer.is_some(), well_formed, "{}", doc);
        if let Some(answer) = answer {
            // The uid as the server decoded and encoded it, decoded again: serde_json reads
            // floats to the nearest but not exactly, so compare after the same two steps.
            let reread = |v: &Value| -> Value { serde_json::from_str(&v.to_string()).expect("JSON") };
            let sent = reread(&reread(&doc["request"]["uid"]));
            prop_assert_eq!(&answer["response"]["uid"], &sent);
            prop_assert_eq!(&answer["apiVersion"], &doc["apiVersion"]);
        }
    }
}
