use std::time::Duration;

use csi_metrics::{CsiOperationMetrics, Registry};
use csi_proto::csi::v1 as csi;
use csi_test_support::{MockCsiDriver, ProbeReply};
use tonic::Status;

use super::*;

fn options(metrics: Option<CsiOperationMetrics>) -> ConnectOptions {
    ConnectOptions {
        timeout: Some(Duration::from_secs(10)),
        metrics,
        watch_loss: true,
        max_log_length: None,
    }
}

#[test]
fn addresses_as_csi_lib_utils_accepts_them() {
    let cases = [
        ("unix:///csi/csi.sock", "/csi/csi.sock"),
        ("unix:/csi/csi.sock", "/csi/csi.sock"),
        ("/csi/csi.sock", "/csi/csi.sock"),
        ("unix:relative.sock", "relative.sock"),
        ("csi.sock", "csi.sock"),
    ];
    for (address, want) in cases {
        assert_eq!(
            socket_path(address).unwrap(),
            PathBuf::from(want),
            "{address}"
        );
    }
    for bad in ["", "unix://", "tcp://127.0.0.1:10000", "dns:///driver:443"] {
        let err = socket_path(bad).unwrap_err();
        assert!(
            err.to_string().contains("unix domain sockets"),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn waits_for_a_driver_that_starts_late() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("csi.sock");
    let address = format!("unix://{}", path.display());
    let late = path.clone();
    let driver = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        MockCsiDriver::start_at(late).await.unwrap()
    });
    let conn = Connection::connect(&address, options(None)).await.unwrap();
    let _driver = driver.await.unwrap();
    assert_eq!(
        rpc::get_driver_name(&conn, Some(Duration::from_secs(5)))
            .await
            .unwrap(),
        csi_test_support::DEFAULT_DRIVER_NAME
    );
}

#[tokio::test]
async fn gives_up_after_the_timeout_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let address = dir.path().join("nobody.sock").display().to_string();
    let started = Instant::now();
    let err = Connection::connect(
        &address,
        ConnectOptions {
            timeout: Some(Duration::from_millis(600)),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = err.to_string();
    assert!(text.contains("nobody.sock"), "{text}");
    assert!(text.contains("failed to connect"), "{text}");
}

#[tokio::test]
async fn driver_name_must_not_be_empty() {
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_driver_name("");
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    let err = rpc::get_driver_name(&conn, None).await.unwrap_err();
    assert_eq!(err.to_string(), "driver name is empty");
}

#[tokio::test]
async fn probe_outcomes() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    driver.set_probe(ProbeReply::Ready);
    assert!(rpc::probe(&conn, None).await.unwrap());
    driver.set_probe(ProbeReply::Absent);
    assert!(
        rpc::probe(&conn, None).await.unwrap(),
        "absent ready means ready"
    );
    driver.set_probe(ProbeReply::NotReady);
    assert!(!rpc::probe(&conn, None).await.unwrap());
    driver.set_probe(ProbeReply::Error(Status::internal("disk on fire")));
    let err = rpc::probe(&conn, None).await.unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert!(err.to_string().contains("code = Internal"), "{err}");
}

#[tokio::test]
async fn a_slow_call_ends_at_its_timeout_as_deadline_exceeded() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    driver.set_delay(rpc::methods::PROBE, Duration::from_secs(5));
    let err = rpc::probe(&conn, Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    match err {
        Error::Rpc { status, .. } => assert_eq!(status.code(), Code::DeadlineExceeded),
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn probe_forever_retries_until_ready() {
    let driver = std::sync::Arc::new(MockCsiDriver::start().await.unwrap());
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    driver.set_probe(ProbeReply::NotReady);
    let flip = driver.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        flip.set_probe(ProbeReply::Ready);
    });
    rpc::probe_forever(&conn, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(driver.calls_to(rpc::methods::PROBE).len() >= 2);
}

#[tokio::test]
async fn probe_forever_stops_at_a_real_error() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    driver.set_probe(ProbeReply::Error(Status::unimplemented("no probe")));
    let err = rpc::probe_forever(&conn, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no probe"), "{err}");
    assert_eq!(driver.calls_to(rpc::methods::PROBE).len(), 1);
}

#[tokio::test]
async fn capabilities_come_back_as_sets() {
    use csi::controller_service_capability::rpc::Type as Ctrl;
    use csi::node_service_capability::rpc::Type as Node;
    use csi::plugin_capability::service::Type as Plugin;
    let driver = MockCsiDriver::start().await.unwrap();
    driver.set_plugin_capabilities([csi_test_support::plugin_service_capability(
        Plugin::ControllerService,
    )]);
    driver.set_controller_capabilities([Ctrl::PublishUnpublishVolume, Ctrl::ListVolumes]);
    driver.set_node_capabilities([Node::StageUnstageVolume]);
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    let plugin = rpc::get_plugin_capabilities(&conn, None).await.unwrap();
    assert!(plugin.contains(&Plugin::ControllerService));
    let ctrl = rpc::get_controller_capabilities(&conn, None).await.unwrap();
    assert_eq!(ctrl.len(), 2);
    assert!(ctrl.contains(&Ctrl::PublishUnpublishVolume));
    let node = rpc::get_node_capabilities(&conn, None).await.unwrap();
    assert!(node.contains(&Node::StageUnstageVolume));
    // No handler and no capabilities configured: an empty set, not an error.
    let group = rpc::get_group_controller_capabilities(&conn, None)
        .await
        .unwrap();
    assert!(group.is_empty());
}

#[tokio::test]
async fn every_call_is_measured_with_method_and_status_code() {
    let registry = Registry::new();
    let metrics = CsiOperationMetrics::for_sidecar(&registry).unwrap();
    metrics.set_driver_name("mock.csi.k8s.io");
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(Some(metrics)))
        .await
        .unwrap();
    rpc::probe(&conn, None).await.unwrap();
    driver.set_probe(ProbeReply::Error(Status::unavailable("down")));
    let _ = rpc::probe(&conn, None).await;
    let text = registry.gather_text();
    assert!(
        text.contains(r#"csi_sidecar_operations_seconds_count{driver_name="mock.csi.k8s.io",grpc_status_code="OK",method_name="/csi.v1.Identity/Probe"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"csi_sidecar_operations_seconds_count{driver_name="mock.csi.k8s.io",grpc_status_code="Unavailable",method_name="/csi.v1.Identity/Probe"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn losing_the_driver_is_noticed_without_a_call() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    rpc::probe(&conn, None).await.unwrap();
    let lost = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.lost().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!lost.is_finished());
    driver.stop().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), lost)
        .await
        .expect("loss noticed")
        .unwrap();
}

#[tokio::test]
async fn the_channel_reconnects_when_the_driver_comes_back() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(None))
        .await
        .unwrap();
    rpc::probe(&conn, None).await.unwrap();
    driver.stop().await.unwrap();
    assert!(
        rpc::probe(&conn, Some(Duration::from_millis(500)))
            .await
            .is_err()
    );
    driver.start_again().await.unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if rpc::probe(&conn, Some(Duration::from_millis(500)))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the channel reconnected");
}

#[test]
fn long_responses_are_capped_in_logs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let driver = MockCsiDriver::start().await.unwrap();
        let mut opts = options(None);
        opts.max_log_length = Some(10);
        let conn = Connection::connect(&driver.endpoint(), opts).await.unwrap();
        assert_eq!(
            conn.cap("0123456789abcdef".to_string()),
            "0123456789 [response body too large, log capped to 10 chars]"
        );
        assert_eq!(conn.cap("short".to_string()), "short");
    });
}

#[test]
fn status_text_reads_like_grpc_go() {
    assert_eq!(
        format_status(&Status::not_found("volume vol-1 not found")),
        "rpc error: code = NotFound desc = volume vol-1 not found"
    );
}

#[test]
fn csi_errors_read_and_classify_like_upstream() {
    let status = CsiError::Status(Status::not_found("no such volume"));
    assert_eq!(
        status.to_string(),
        "rpc error: code = NotFound desc = no such volume"
    );
    assert_eq!(status.code(), Some(Code::NotFound));
    assert!(status.is_final());

    let other = CsiError::Other("connection refused".into());
    assert_eq!(other.to_string(), "connection refused");
    assert_eq!(other.code(), None);
    assert!(!other.is_final());

    for code in [
        Code::Cancelled,
        Code::DeadlineExceeded,
        Code::Unavailable,
        Code::ResourceExhausted,
        Code::Aborted,
    ] {
        assert!(!is_final_code(code), "{code:?}");
        assert!(
            !CsiError::Status(Status::new(code, "")).is_final(),
            "{code:?}"
        );
    }
    for code in [
        Code::Internal,
        Code::InvalidArgument,
        Code::FailedPrecondition,
    ] {
        assert!(is_final_code(code), "{code:?}");
    }
}

#[tokio::test]
async fn a_connection_to_no_driver_fails_every_call_and_is_never_lost() {
    let conn = Connection::none();
    let err = rpc::get_driver_name(&conn, Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rpc { status, .. } if status.code() == tonic::Code::Unavailable),
        "{err}"
    );
    let lost = tokio::time::timeout(Duration::from_millis(100), conn.lost()).await;
    assert!(lost.is_err(), "a connection to no driver is never lost");
}

/// The histogram block csi-lib-utils' `TestConnectMetrics` expects for one `GetPluginInfo` that
/// failed with `Unimplemented`, `labels` being the extra labels before `le` (with their commas).
fn get_plugin_info_block(extra: &str) -> String {
    let labels = format!(
        r#"driver_name="fake.csi.driver.io",grpc_status_code="Unimplemented",method_name="/csi.v1.Identity/GetPluginInfo"{extra}"#
    );
    let mut text = String::from(
        "# HELP csi_sidecar_operations_seconds [ALPHA] Container Storage Interface operation duration with gRPC error code status total\n\
         # TYPE csi_sidecar_operations_seconds histogram\n",
    );
    for le in [
        "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "15", "25", "50", "120", "300", "600", "+Inf",
    ] {
        text.push_str(&format!(
            "csi_sidecar_operations_seconds_bucket{{{labels},le=\"{le}\"}} 1\n"
        ));
    }
    text.push_str(&format!(
        "csi_sidecar_operations_seconds_sum{{{labels}}} 0\n"
    ));
    text.push_str(&format!(
        "csi_sidecar_operations_seconds_count{{{labels}}} 1\n"
    ));
    text
}

/// The exposition with the `_sum` values zeroed: the call's duration varies (upstream's test
/// ignores the sum too).
fn without_sums(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once("_sum{") {
            Some(_) if !line.starts_with('#') => {
                let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
                format!("{series} 0\n")
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

/// csi-lib-utils `connection_test.go` `TestConnectMetrics`: a `GetPluginInfo` the driver does
/// not implement, recorded without and with the `migrated` label.
#[tokio::test]
async fn connect_metrics_as_csi_lib_utils() {
    struct Case {
        name: &'static str,
        migration: bool,
        mark: Option<bool>,
        extra_labels: &'static str,
    }
    for case in [
        Case {
            name: "Regular connection test",
            migration: false,
            mark: None,
            extra_labels: "",
        },
        Case {
            name: "connection test with migrated metrics",
            migration: true,
            mark: Some(true),
            extra_labels: r#",migrated="true""#,
        },
        // Ours: a call nobody marked counts as not migrated, as the interceptor defaults it.
        Case {
            name: "unmarked call with migrated metrics",
            migration: true,
            mark: None,
            extra_labels: r#",migrated="false""#,
        },
        Case {
            name: "call marked as not migrated",
            migration: true,
            mark: Some(false),
            extra_labels: r#",migrated="false""#,
        },
        // A mark without the label changes nothing.
        Case {
            name: "marked call without migrated metrics",
            migration: false,
            mark: Some(true),
            extra_labels: "",
        },
    ] {
        let driver = MockCsiDriver::start().await.unwrap();
        driver.handle(
            "GetPluginInfo",
            |_: csi::GetPluginInfoRequest| -> Result<csi::GetPluginInfoResponse, Status> {
                Err(Status::unimplemented("unknown method GetPluginInfo"))
            },
        );
        let registry = Registry::new();
        let mut builder = CsiOperationMetrics::builder()
            .driver_name("fake.csi.driver.io")
            .process_start_time(false);
        if case.migration {
            builder = builder.migration();
        }
        let metrics = builder.register(&registry).unwrap();
        let conn = Connection::connect(&driver.endpoint(), options(Some(metrics)))
            .await
            .unwrap();
        let call = rpc::get_driver_name(&conn, None);
        let result = match case.mark {
            Some(migrated) => mark_as_migrated(migrated, call).await,
            None => call.await,
        };
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Rpc { status, .. } if status.code() == Code::Unimplemented),
            "{}: {err}",
            case.name
        );
        assert_eq!(
            without_sums(&registry.gather_text()),
            get_plugin_info_block(case.extra_labels),
            "{}",
            case.name
        );
    }
}

/// external-attacher's and external-provisioner's `TestMarkAsMigrated`.
#[tokio::test]
async fn mark_as_migrated_as_upstream() {
    // "context has the migrated label for the migratable plugins"
    assert_eq!(
        mark_as_migrated(true, async { migrated() }).await,
        Some(true)
    );
    // Ours: the other value, nesting, and no mark at all.
    assert_eq!(
        mark_as_migrated(false, async { migrated() }).await,
        Some(false)
    );
    assert_eq!(
        mark_as_migrated(true, mark_as_migrated(false, async { migrated() })).await,
        Some(false)
    );
    assert_eq!(migrated(), None);
}

/// Switching a live histogram to the `migrated` label, as upstream's second metrics manager:
/// what was recorded before is gone, later calls carry the label.
#[tokio::test]
async fn migration_metrics_start_afresh_with_the_label() {
    let driver = MockCsiDriver::start().await.unwrap();
    let registry = Registry::new();
    let metrics = CsiOperationMetrics::builder()
        .process_start_time(false)
        .register(&registry)
        .unwrap();
    let conn = Connection::connect(&driver.endpoint(), options(Some(metrics.clone())))
        .await
        .unwrap();
    rpc::probe(&conn, None).await.unwrap();
    let name = rpc::get_driver_name(&conn, None).await.unwrap();
    metrics.set_driver_name(&name);
    assert!(registry.gather_text().contains("GetPluginInfo"));
    assert!(metrics.enable_migration());
    assert!(!metrics.enable_migration(), "only once");
    assert_eq!(registry.gather_text(), "");
    rpc::probe(&conn, None).await.unwrap();
    mark_as_migrated(true, rpc::probe(&conn, None))
        .await
        .unwrap();
    let text = registry.gather_text();
    for series in [
        format!(
            r#"csi_sidecar_operations_seconds_count{{driver_name="{name}",grpc_status_code="OK",method_name="/csi.v1.Identity/Probe",migrated="false"}} 1"#
        ),
        format!(
            r#"csi_sidecar_operations_seconds_count{{driver_name="{name}",grpc_status_code="OK",method_name="/csi.v1.Identity/Probe",migrated="true"}} 1"#
        ),
    ] {
        assert!(text.contains(&series), "{series} in\n{text}");
    }
    assert!(!text.contains("GetPluginInfo"), "{text}");
}
