//! Property tests of `/convert`, through the handler the HTTP server calls: any body, and
//! ConversionReviews of generated VolumeGroupSnapshotContents (random status lists,
//! annotations and versions), give a well-formed ConversionReview answering the request's uid,
//! or a 400 with a message; never a panic. A v1beta2 object converted down and up again is the
//! object it was.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use csi_test_support::fuzz::{config, json};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::convert::{KIND, V1BETA1, V1BETA2, VOLUME_SNAPSHOT_INFO_ANNOTATION};
use crate::review;

const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "uid",
    "annotations",
    "spec",
    "status",
    "driver",
    "volumeSnapshotHandlePairList",
    "volumeSnapshotInfoList",
    "volumeHandle",
    "snapshotHandle",
    "creationTime",
    "readyToUse",
    "restoreSize",
    VOLUME_SNAPSHOT_INFO_ANNOTATION,
    KIND,
    V1BETA1,
    V1BETA2,
];

fn version() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(V1BETA1.to_string()),
        Just(V1BETA2.to_string()),
        Just("groupsnapshot.storage.k8s.io/v1".to_string()),
        any::<String>(),
    ]
}

/// A v1beta2 `volumeSnapshotInfoList` entry.
fn info() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9-]{1,10}",
        "[a-z0-9-]{1,10}",
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(volume, snapshot, created, ready, size)| {
            let mut entry = json!({"volumeHandle": volume, "snapshotHandle": snapshot});
            if let Some(c) = created {
                entry["creationTime"] = json!(c);
            }
            if let Some(r) = ready {
                entry["readyToUse"] = json!(r);
            }
            if let Some(s) = size {
                entry["restoreSize"] = json!(s);
            }
            entry
        })
}

/// A VolumeGroupSnapshotContent of `version` with random status and annotations.
fn content(version: String) -> impl Strategy<Value = Value> {
    (
        proptest::option::of(proptest::collection::vec(info(), 0..4)),
        proptest::option::of(json(KEYS)),
        proptest::option::of(json(KEYS)),
    )
        .prop_map(move |(list, annotation, extra)| {
            let mut object = json!({
                "apiVersion": version,
                "kind": KIND,
                "metadata": {"name": "c", "uid": "u"},
                "spec": {"driver": "d"},
            });
            if let Some(list) = list {
                let key = if version == V1BETA1 {
                    "volumeSnapshotHandlePairList"
                } else {
                    "volumeSnapshotInfoList"
                };
                object["status"] = json!({ key: list });
            }
            if let Some(a) = annotation {
                object["metadata"]["annotations"] =
                    json!({ VOLUME_SNAPSHOT_INFO_ANNOTATION: a.to_string() });
            }
            if let Some(extra) = extra {
                object["status"]["extra"] = extra;
            }
            object
        })
}

fn review_doc() -> impl Strategy<Value = Value> {
    (
        prop_oneof![5 => Just("apiextensions.k8s.io/v1".to_string()), 1 => any::<String>()],
        prop_oneof![5 => Just("ConversionReview".to_string()), 1 => any::<String>()],
        any::<String>(),
        version(),
        proptest::collection::vec(
            prop_oneof![4 => version().prop_flat_map(content), 1 => json(KEYS)],
            0..4,
        ),
    )
        .prop_map(|(api_version, kind, uid, desired, objects)| {
            json!({
                "apiVersion": api_version,
                "kind": kind,
                "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
            })
        })
}

fn without_floats(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => json!(0),
        Value::Array(items) => Value::Array(items.into_iter().map(without_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

fn exchange(content_type: &'static str, body: Vec<u8>) -> Result<Option<Value>, TestCaseError> {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let (status, bytes) = runtime.block_on(async {
        let response = review::serve(headers, Bytes::from(body)).await;
        let status = response.status();
        (
            status,
            axum::body::to_bytes(response.into_body(), usize::MAX).await,
        )
    });
    let text = String::from_utf8(bytes.expect("the body").to_vec()).expect("UTF-8");
    if status == StatusCode::BAD_REQUEST {
        prop_assert!(!text.trim().is_empty(), "a 400 without a message");
        return Ok(None);
    }
    prop_assert_eq!(status, StatusCode::OK, "{}", text);
    let answer: Value =
        serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&answer["kind"], "ConversionReview");
    let result = &answer["response"]["result"]["status"];
    prop_assert!(result == "Success" || result == "Failure", "{}", text);
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
        yaml in any::<bool>(),
    ) {
        exchange(if yaml { "application/yaml" } else { "application/json" }, body)?;
    }

    #[test]
    fn any_conversion_review_is_answered_with_its_uid(doc in review_doc(), yaml in any::<bool>()) {
        let (content_type, body) = if yaml {
            ("application/yaml", serde_yaml::to_string(&doc).expect("YAML").into_bytes())
        } else {
            ("application/json", doc.to_string().into_bytes())
        };
        let answer = exchange(content_type, body)?;
        let well_formed =
            doc["kind"] == "ConversionReview" && doc["apiVersion"] == "apiextensions.k8s.io/v1";
        prop_assert_eq!(answer.is_some(), well_formed, "{}", doc);
        if let Some(answer) = answer {
            prop_assert_eq!(&answer["response"]["uid"], &doc["request"]["uid"]);
            let objects = &answer["response"]["convertedObjects"];
            if answer["response"]["result"]["status"] == "Success" {
                let sent = doc["request"]["objects"].as_array().map_or(0, Vec::len);
                prop_assert_eq!(objects.as_array().map_or(0, Vec::len), sent);
            } else {
                prop_assert!(objects.is_null());
            }
        }
    }

    #[test]
    fn v1beta2_down_and_up_again_is_the_same_object(object in content(V1BETA2.to_string())) {
        // Without the annotation of a previous conversion; and serde_json reads floats to the
        // nearest, not exactly (without its float_roundtrip feature), so a float may change in
        // its last digit on the way through: integers only.
        let mut object = without_floats(object);
        object["metadata"].as_object_mut().expect("metadata").remove("annotations");
        let review = |object: &Value, to: &str| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                   "request": {"uid": "u", "desiredAPIVersion": to, "objects": [object]}})
        };
        let down = exchange("application/json", review(&object, V1BETA1).to_string().into_bytes())?
            .expect("an answer");
        let lowered = down["response"]["convertedObjects"][0].clone();
        prop_assert_eq!(&lowered["apiVersion"], V1BETA1);
        let up = exchange("application/json", review(&lowered, V1BETA2).to_string().into_bytes())?
            .expect("an answer");
        let mut back = up["response"]["convertedObjects"][0].clone();
        // An emptied annotations map may stay behind.
        if back.pointer("/metadata/annotations") == Some(&json!({})) {
            back["metadata"].as_object_mut().expect("metadata").remove("annotations");
        }
        prop_assert_eq!(back, object);
    }
}
