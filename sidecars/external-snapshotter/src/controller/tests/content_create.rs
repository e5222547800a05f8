//! `content_create_test.go`: `TestSyncContent` (9 cases).

use csi_crd_types::snapshot::v1::VolumeSnapshotContentStatus;
use csi_test_support::fake_api::Verb;

use super::framework::*;
use csi_snapshot_utils::{
    ANN_DELETION_SECRET_REF_NAME, ANN_DELETION_SECRET_REF_NAMESPACE,
    PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY, PREFIXED_VOLUME_SNAPSHOT_NAME_KEY,
    PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY,
};

fn metadata(snapshot: &str, content: &str) -> Vec<(&'static str, String)> {
    vec![
        (PREFIXED_VOLUME_SNAPSHOT_NAME_KEY, snapshot.to_string()),
        (
            PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY,
            "default".to_string(),
        ),
        (
            PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY,
            content.to_string(),
        ),
    ]
}

fn with_metadata(
    base: &[(&str, &str)],
    snapshot: &str,
    content: &str,
) -> std::collections::HashMap<String, String> {
    let mut all = params(base);
    for (k, v) in metadata(snapshot, content) {
        all.insert(k.to_string(), v);
    }
    all
}

fn create(
    volume_handle: &'static str,
    snapshot_name: &'static str,
    snapshot_id: &'static str,
    snapshot: &str,
    content: &str,
    ready_to_use: bool,
    size: i64,
) -> CreateCall {
    CreateCall {
        volume_handle,
        snapshot_name,
        driver_name: DRIVER,
        snapshot_id,
        parameters: with_metadata(&[], snapshot, content),
        creation_time: Some(crate::controller::now_nanos()),
        ready_to_use,
        size,
        ..Default::default()
    }
}

fn status(handle: &str, ready: bool) -> Option<VolumeSnapshotContentStatus> {
    Some(VolumeSnapshotContentStatus {
        snapshot_handle: Some(handle.into()),
        restore_size: Some(DEFAULT_SIZE),
        ready_to_use: Some(ready),
        ..Default::default()
    })
}

#[tokio::test]
async fn test_sync_content() {
    let size = Some(DEFAULT_SIZE);
    let secret_annotations = [
        (ANN_DELETION_SECRET_REF_NAME, "secret"),
        (ANN_DELETION_SECRET_REF_NAMESPACE, "default"),
    ];
    let empty_annotations = [
        (ANN_DELETION_SECRET_REF_NAME, ""),
        (ANN_DELETION_SECRET_REF_NAMESPACE, ""),
    ];
    let tests = vec![
        ControllerTest {
            name: "1-1: Basic content update ready to use",
            initial_contents: content_array_with_ready_to_use(
                "content1-1",
                "snapuid1-1",
                "snap1-1",
                "sid1-1",
                DEFAULT_CLASS,
                "",
                "volume-handle-1-1",
                RETAIN,
                None,
                size,
                Some(false),
                true,
            ),
            expected_contents: with_annotations(
                content_array_with_ready_to_use(
                    "content1-1",
                    "snapuid1-1",
                    "snap1-1",
                    "sid1-1",
                    DEFAULT_CLASS,
                    "",
                    "volume-handle-1-1",
                    RETAIN,
                    None,
                    size,
                    Some(true),
                    true,
                ),
                &[],
            ),
            expected_create_calls: vec![create(
                "volume-handle-1-1",
                "snapshot-snapuid1-1",
                "snapuid1-1",
                "snap1-1",
                "content1-1",
                true,
                0,
            )],
            expected_list_calls: vec![list_call("sid1-1", true, 1)],
            expect_success: true,
            ..Default::default()
        },
        ControllerTest {
            name: "1-2: Basic sync content create snapshot",
            initial_contents: with_status(
                content_array(
                    "content1-2",
                    "snapuid1-2",
                    "snap1-2",
                    "sid1-2",
                    DEFAULT_CLASS,
                    "",
                    "volume-handle-1-2",
                    RETAIN,
                    None,
                    size,
                    true,
                ),
                None,
            ),
            expected_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-2",
                        "snapuid1-2",
                        "snap1-2",
                        "sid1-2",
                        DEFAULT_CLASS,
                        "",
                        "volume-handle-1-2",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    status("snapuid1-2", true),
                ),
                &[],
            ),
            expected_create_calls: vec![create(
                "volume-handle-1-2",
                "snapshot-snapuid1-2",
                "snapuid1-2",
                "snap1-2",
                "content1-2",
                true,
                DEFAULT_SIZE,
            )],
            expected_list_calls: vec![list_call("sid1-2", true, 1)],
            expect_success: true,
            ..Default::default()
        },
        ControllerTest {
            name: "1-3: Basic sync content create snapshot with non-existent secret",
            initial_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-3",
                        "snapuid1-3",
                        "snap1-3",
                        "sid1-3",
                        INVALID_SECRET_CLASS,
                        "",
                        "volume-handle-1-3",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    Some(Default::default()),
                ),
                &empty_annotations,
            ),
            expected_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-3",
                        "snapuid1-3",
                        "snap1-3",
                        "sid1-3",
                        INVALID_SECRET_CLASS,
                        "",
                        "volume-handle-1-3",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    Some(VolumeSnapshotContentStatus {
                        ready_to_use: Some(false),
                        error: snapshot_error(
                            "Failed to check and update snapshot content: failed to get input parameters to create snapshot for content content1-3: \"cannot retrieve secrets for snapshot content \\\"content1-3\\\", err: secret name or namespace not specified\"",
                        ),
                        ..Default::default()
                    }),
                ),
                &empty_annotations,
            ),
            expected_events: vec!["Warning SnapshotContentCheckandUpdateFailed"],
            ..Default::default()
        },
        ControllerTest {
            name: "1-4: Basic sync content create snapshot with valid secret",
            initial_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-4",
                        "snapuid1-4",
                        "snap1-4",
                        "sid1-4",
                        VALID_SECRET_CLASS,
                        "",
                        "volume-handle-1-4",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    None,
                ),
                &secret_annotations,
            ),
            expected_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-4",
                        "snapuid1-4",
                        "snap1-4",
                        "sid1-4",
                        VALID_SECRET_CLASS,
                        "",
                        "volume-handle-1-4",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    status("snapuid1-4", true),
                ),
                &secret_annotations,
            ),
            expected_create_calls: vec![CreateCall {
                volume_handle: "volume-handle-1-4",
                snapshot_name: "snapshot-snapuid1-4",
                parameters: with_metadata(&secret_annotations, "snap1-4", "content1-4"),
                secrets: params(&[("foo", "bar")]),
                driver_name: DRIVER,
                snapshot_id: "snapuid1-4",
                creation_time: Some(crate::controller::now_nanos()),
                ready_to_use: true,
                size: DEFAULT_SIZE,
                ..Default::default()
            }],
            expect_success: true,
            initial_secrets: vec![secret()],
            ..Default::default()
        },
        ControllerTest {
            name: "1-5: Basic sync content create snapshot with failed secret call",
            initial_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-5",
                        "snapuid1-5",
                        "snap1-5",
                        "sid1-5",
                        INVALID_SECRET_CLASS,
                        "",
                        "volume-handle-1-5",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    Some(Default::default()),
                ),
                &secret_annotations,
            ),
            expected_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-5",
                        "snapuid1-5",
                        "snap1-5",
                        "sid1-5",
                        INVALID_SECRET_CLASS,
                        "",
                        "volume-handle-1-5",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    Some(VolumeSnapshotContentStatus {
                        ready_to_use: Some(false),
                        error: snapshot_error(
                            r#"Failed to check and update snapshot content: failed to get input parameters to create snapshot for content content1-5: "cannot get credentials for snapshot content \"content1-5\"""#,
                        ),
                        ..Default::default()
                    }),
                ),
                &secret_annotations,
            ),
            expected_events: vec!["Warning SnapshotContentCheckandUpdateFailed"],
            errors: vec![(Verb::Get, "secrets", "mock secrets error")],
            ..Default::default()
        },
        ControllerTest {
            name: "1-6: Basic content update ready to use bad snapshot class",
            initial_contents: content_array_with_ready_to_use(
                "content1-6",
                "snapuid1-6",
                "snap1-6",
                "sid1-6",
                "bad-class",
                "",
                "volume-handle-1-6",
                RETAIN,
                None,
                size,
                Some(false),
                true,
            ),
            expected_contents: with_status(
                content_array(
                    "content1-6",
                    "snapuid1-6",
                    "snap1-6",
                    "sid1-6",
                    "bad-class",
                    "",
                    "volume-handle-1-6",
                    RETAIN,
                    None,
                    size,
                    true,
                ),
                Some(VolumeSnapshotContentStatus {
                    snapshot_handle: Some("sid1-6".into()),
                    restore_size: Some(DEFAULT_SIZE),
                    ready_to_use: Some(false),
                    error: snapshot_error(
                        "Failed to check and update snapshot content: failed to get input parameters to create snapshot for content content1-6: \"volumesnapshotclass.snapshot.storage.k8s.io \\\"bad-class\\\" not found\"",
                    ),
                    ..Default::default()
                }),
            ),
            expected_events: vec!["Warning SnapshotContentCheckandUpdateFailed"],
            expected_create_calls: vec![CreateCall {
                volume_handle: "volume-handle-1-6",
                snapshot_name: "snapshot-snapuid1-6",
                driver_name: DRIVER,
                snapshot_id: "snapuid1-6",
                ready_to_use: true,
                ..Default::default()
            }],
            expected_list_calls: vec![list_call("sid1-6", true, 1)],
            ..Default::default()
        },
        ControllerTest {
            name: "1-7: Just created un-ready snapshot should be requeued",
            initial_contents: with_status(
                content_array(
                    "content1-7",
                    "snapuid1-7",
                    "snap1-7",
                    "sid1-7",
                    DEFAULT_CLASS,
                    "",
                    "volume-handle-1-7",
                    RETAIN,
                    None,
                    size,
                    true,
                ),
                None,
            ),
            expected_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-7",
                        "snapuid1-7",
                        "snap1-7",
                        "sid1-7",
                        DEFAULT_CLASS,
                        "",
                        "volume-handle-1-7",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    status("snapuid1-7", false),
                ),
                &[],
            ),
            expected_create_calls: vec![create(
                "volume-handle-1-7",
                "snapshot-snapuid1-7",
                "snapuid1-7",
                "snap1-7",
                "content1-7",
                false,
                DEFAULT_SIZE,
            )],
            expect_requeue: true,
            expect_success: true,
            ..Default::default()
        },
        ControllerTest {
            name: "1-8: Un-ready snapshot that remains un-ready should be requeued",
            initial_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-8",
                        "snapuid1-8",
                        "snap1-8",
                        "sid1-8",
                        DEFAULT_CLASS,
                        "",
                        "volume-handle-1-8",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    status("snapuid1-8", false),
                ),
                &[],
            ),
            expected_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-8",
                        "snapuid1-8",
                        "snap1-8",
                        "sid1-8",
                        DEFAULT_CLASS,
                        "",
                        "volume-handle-1-8",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    status("snapuid1-8", false),
                ),
                &[],
            ),
            expected_create_calls: vec![create(
                "volume-handle-1-8",
                "snapshot-snapuid1-8",
                "snapuid1-8",
                "snap1-8",
                "content1-8",
                false,
                DEFAULT_SIZE,
            )],
            expect_requeue: true,
            expect_success: true,
            ..Default::default()
        },
        ControllerTest {
            name: "1-9: Un-ready snapshot that becomes ready should not be requeued",
            initial_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-9",
                        "snapuid1-9",
                        "snap1-9",
                        "sid1-9",
                        DEFAULT_CLASS,
                        "",
                        "volume-handle-1-9",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    status("snapuid1-9", false),
                ),
                &[],
            ),
            expected_contents: with_annotations(
                with_status(
                    content_array(
                        "content1-9",
                        "snapuid1-9",
                        "snap1-9",
                        "sid1-9",
                        DEFAULT_CLASS,
                        "",
                        "volume-handle-1-9",
                        RETAIN,
                        None,
                        size,
                        true,
                    ),
                    status("snapuid1-9", true),
                ),
                &[],
            ),
            expected_create_calls: vec![create(
                "volume-handle-1-9",
                "snapshot-snapuid1-9",
                "snapuid1-9",
                "snap1-9",
                "content1-9",
                true,
                DEFAULT_SIZE,
            )],
            expect_requeue: false,
            expect_success: true,
            ..Default::default()
        },
    ];
    run_sync_content_tests(tests, &snapshot_classes()).await;
}
