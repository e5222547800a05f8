//! Golden tests: what `/metrics` shows, compared with text the Go sidecars print.

use std::time::Duration;

use csi_metrics::{
    Collector, Counter, CounterVec, CsiOperationMetrics, Error, Gauge, GaugeVec, Histogram,
    HistogramVec, MetricFamily, MetricType, Opts, ProcessCollector, Registry, Stability,
};

#[test]
fn counter_gauge_and_histogram() {
    let registry = Registry::new();
    let requests = CounterVec::new(
        Opts::new("requests_total", "Number of requests.").stability(Stability::Raw),
        &["method", "code"],
    )
    .unwrap();
    let depth = Gauge::new(Opts::new("depth", "Current depth of workqueue").subsystem("workqueue"))
        .unwrap();
    let latency = HistogramVec::new(
        Opts::new("latency_seconds", "How long it took.").stability(Stability::Stable),
        &[0.1, 1.0, 2.5],
        &["name"],
    )
    .unwrap();
    registry.register(requests.clone()).unwrap();
    registry.register(depth.clone()).unwrap();
    registry.register(latency.clone()).unwrap();

    requests.with_label_values(&["GET", "200"]).inc();
    requests.with_label_values(&["GET", "200"]).inc_by(2.0);
    requests.with_label_values(&["DELETE", "404"]).inc();
    depth.set(3.0);
    let volumes = latency.with_label_values(&["volumes"]);
    volumes.observe(0.05);
    volumes.observe(1.0);
    volumes.observe(7.0);

    assert_eq!(
        registry.gather_text(),
        r#"# HELP latency_seconds [STABLE] How long it took.
# TYPE latency_seconds histogram
latency_seconds_bucket{name="volumes",le="0.1"} 1
latency_seconds_bucket{name="volumes",le="1"} 2
latency_seconds_bucket{name="volumes",le="2.5"} 2
latency_seconds_bucket{name="volumes",le="+Inf"} 3
latency_seconds_sum{name="volumes"} 8.05
latency_seconds_count{name="volumes"} 3
# HELP requests_total Number of requests.
# TYPE requests_total counter
requests_total{code="200",method="GET"} 3
requests_total{code="404",method="DELETE"} 1
# HELP workqueue_depth [ALPHA] Current depth of workqueue
# TYPE workqueue_depth gauge
workqueue_depth 3
"#
    );
}

#[test]
fn families_without_series_are_left_out() {
    let registry = Registry::new();
    let empty = GaugeVec::new(Opts::new("empty", "Never set."), &["a"]).unwrap();
    registry.register(empty.clone()).unwrap();
    assert_eq!(registry.gather_text(), "");
    empty.with_label_values(&["x"]);
    assert_eq!(
        registry.gather_text(),
        "# HELP empty [ALPHA] Never set.\n# TYPE empty gauge\nempty{a=\"x\"} 0\n"
    );
    empty.reset();
    assert_eq!(registry.gather_text(), "");
}

#[test]
fn help_and_label_values_are_escaped() {
    let registry = Registry::new();
    let gauge = GaugeVec::new(
        Opts::new("escaped", "Back\\slash and\nnewline, \"quotes\" kept.")
            .stability(Stability::Raw)
            .const_label("const", "c"),
        &["path"],
    )
    .unwrap();
    registry.register(gauge.clone()).unwrap();
    gauge
        .with_label_values(&["C:\\dir\n\"quoted\" ünïcode"])
        .set(1.0);
    assert_eq!(
        registry.gather_text(),
        r#"# HELP escaped Back\\slash and\nnewline, "quotes" kept.
# TYPE escaped gauge
escaped{const="c",path="C:\\dir\n\"quoted\" ünïcode"} 1
"#
    );
}

#[test]
fn values_are_formatted_like_go() {
    let registry = Registry::new();
    let gauge = GaugeVec::new(
        Opts::new("v", "Values.").stability(Stability::Raw),
        &["case"],
    )
    .unwrap();
    registry.register(gauge.clone()).unwrap();
    let cases: &[(&str, f64)] = &[
        ("a_zero", 0.0),
        ("b_negative_zero", -0.0),
        ("c_one", 1.0),
        ("d_tenth", 0.1),
        ("e_small", 1e-05),
        ("f_start_time", 1.5e+09),
        ("g_big", 123456789.0),
        ("h_inf", f64::INFINITY),
        ("i_neg_inf", f64::NEG_INFINITY),
        ("j_nan", f64::NAN),
        ("k_six_digits", 123456.0),
        ("l_seven_digits", 1234567.0),
        ("m_ten_thousandth", 0.0001),
        ("n_negative", -2.5),
        ("o_unlimited", u64::MAX as f64),
        ("p_fraction", 1764500000.12),
    ];
    for (case, value) in cases {
        gauge.with_label_values(&[case]).set(*value);
    }
    // Values printed by Go's expfmt for the same floats.
    assert_eq!(
        registry.gather_text(),
        r#"# HELP v Values.
# TYPE v gauge
v{case="a_zero"} 0
v{case="b_negative_zero"} 0
v{case="c_one"} 1
v{case="d_tenth"} 0.1
v{case="e_small"} 1e-05
v{case="f_start_time"} 1.5e+09
v{case="g_big"} 1.23456789e+08
v{case="h_inf"} +Inf
v{case="i_neg_inf"} -Inf
v{case="j_nan"} NaN
v{case="k_six_digits"} 123456
v{case="l_seven_digits"} 1.234567e+06
v{case="m_ten_thousandth"} 0.0001
v{case="n_negative"} -2.5
v{case="o_unlimited"} 1.8446744073709552e+19
v{case="p_fraction"} 1.76450000012e+09
"#
    );
}

#[test]
fn histogram_counts_print_in_go_float_form() {
    let registry = Registry::new();
    let h = Histogram::new(Opts::new("h", "H.").stability(Stability::Raw), &[1.0]).unwrap();
    registry.register(h.clone()).unwrap();
    for _ in 0..1_234_567 {
        h.observe(0.5);
    }
    // Go writes cumulative counts through the same float formatting.
    assert_eq!(
        registry.gather_text(),
        "# HELP h H.\n# TYPE h histogram\n\
         h_bucket{le=\"1\"} 1.234567e+06\n\
         h_bucket{le=\"+Inf\"} 1.234567e+06\n\
         h_sum 617283.5\n\
         h_count 1.234567e+06\n"
    );
}

/// csi-lib-utils v0.24.0 `metrics_test.go` `TestRecordMetrics`: one 20 s call.
#[test]
fn csi_operation_histogram_matches_upstream_test() {
    let registry = Registry::new();
    let metrics = CsiOperationMetrics::builder()
        .driver_name("fake.csi.driver.io")
        .process_start_time(false)
        .register(&registry)
        .unwrap();
    metrics.record(
        "/csi.v1.Controller/ControllerGetCapabilities",
        csi_metrics::grpc_code_name(0),
        Duration::from_secs(20),
    );
    let labels = r#"driver_name="fake.csi.driver.io",grpc_status_code="OK",method_name="/csi.v1.Controller/ControllerGetCapabilities""#;
    let mut want = String::from(
        "# HELP csi_sidecar_operations_seconds [ALPHA] Container Storage Interface operation duration with gRPC error code status total\n\
         # TYPE csi_sidecar_operations_seconds histogram\n",
    );
    for (le, count) in [
        ("0.1", 0),
        ("0.25", 0),
        ("0.5", 0),
        ("1", 0),
        ("2.5", 0),
        ("5", 0),
        ("10", 0),
        ("15", 0),
        ("25", 1),
        ("50", 1),
        ("120", 1),
        ("300", 1),
        ("600", 1),
        ("+Inf", 1),
    ] {
        want.push_str(&format!(
            "csi_sidecar_operations_seconds_bucket{{{labels},le=\"{le}\"}} {count}\n"
        ));
    }
    want.push_str(&format!(
        "csi_sidecar_operations_seconds_sum{{{labels}}} 20\n"
    ));
    want.push_str(&format!(
        "csi_sidecar_operations_seconds_count{{{labels}}} 1\n"
    ));
    assert_eq!(registry.gather_text(), want);
}

/// The literal block of upstream's `TestRecordMetrics_Labels`-style output, with extra labels
/// (`WithLabelNames("a", "b")`-like) and the driver name unknown.
#[test]
fn csi_operation_histogram_with_extra_and_constant_labels() {
    let registry = Registry::new();
    let metrics = CsiOperationMetrics::builder()
        .label_names(&["b"])
        .labels([("a", "111")])
        .process_start_time(false)
        .register(&registry)
        .unwrap();
    assert_eq!(&*metrics.driver_name(), "unknown-driver");
    assert!(metrics.has_additional_label("b"));
    metrics.record_with_labels(
        "myOperation",
        "OK",
        Duration::from_millis(300),
        &[("b", "222"), ("undeclared", "x")],
    );
    let text = registry.gather_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[2],
        r#"csi_sidecar_operations_seconds_bucket{a="111",b="222",driver_name="unknown-driver",grpc_status_code="OK",method_name="myOperation",le="0.1"} 0"#
    );
    assert_eq!(
        lines[4],
        r#"csi_sidecar_operations_seconds_bucket{a="111",b="222",driver_name="unknown-driver",grpc_status_code="OK",method_name="myOperation",le="0.5"} 1"#
    );
    assert_eq!(
        lines[16],
        r#"csi_sidecar_operations_seconds_sum{a="111",b="222",driver_name="unknown-driver",grpc_status_code="OK",method_name="myOperation"} 0.3"#
    );

    // A missing extra value is recorded empty; the driver name can change later.
    metrics.set_driver_name("hostpath.csi.k8s.io");
    metrics.record(
        "/csi.v1.Identity/Probe",
        "DeadlineExceeded",
        Duration::from_secs(1),
    );
    assert!(registry.gather_text().contains(
        r#"csi_sidecar_operations_seconds_count{a="111",b="",driver_name="hostpath.csi.k8s.io",grpc_status_code="DeadlineExceeded",method_name="/csi.v1.Identity/Probe"} 1"#
    ));
}

/// csi-lib-utils v0.25.0 `connection_test.go` `TestConnectMetrics`, case "connection test with
/// migrated metrics" (the manager made `WithMigration()`), byte for byte; and the switch to it
/// that upstream's sidecars make with a second manager once the driver's name is known.
#[test]
fn csi_operation_histogram_with_migration_matches_upstream_test() {
    let labels = r#"driver_name="fake.csi.driver.io",grpc_status_code="Unimplemented",method_name="/csi.v1.Identity/GetPluginInfo",migrated="true""#;
    let mut want = String::from(
        "# HELP csi_sidecar_operations_seconds [ALPHA] Container Storage Interface operation duration with gRPC error code status total\n\
         # TYPE csi_sidecar_operations_seconds histogram\n",
    );
    for le in [
        "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "15", "25", "50", "120", "300", "600", "+Inf",
    ] {
        want.push_str(&format!(
            "csi_sidecar_operations_seconds_bucket{{{labels},le=\"{le}\"}} 1\n"
        ));
    }
    want.push_str(&format!(
        "csi_sidecar_operations_seconds_sum{{{labels}}} 0\n"
    ));
    want.push_str(&format!(
        "csi_sidecar_operations_seconds_count{{{labels}}} 1\n"
    ));

    // NewCSIMetricsManagerWithOptions("fake.csi.driver.io", WithMigration())
    let registry = Registry::new();
    let metrics = CsiOperationMetrics::builder()
        .driver_name("fake.csi.driver.io")
        .migration()
        .process_start_time(false)
        .register(&registry)
        .unwrap();
    assert!(metrics.records_migration());
    metrics.record_with_labels(
        "/csi.v1.Identity/GetPluginInfo",
        "Unimplemented",
        Duration::ZERO,
        &[("migrated", "true")],
    );
    assert_eq!(registry.gather_text(), want);

    // The same from a manager without the label, switched after a first call.
    let registry = Registry::new();
    let metrics = CsiOperationMetrics::builder()
        .process_start_time(false)
        .register(&registry)
        .unwrap();
    metrics.record("/csi.v1.Identity/GetPluginInfo", "OK", Duration::ZERO);
    metrics.set_driver_name("fake.csi.driver.io");
    assert!(!metrics.records_migration());
    assert!(metrics.enable_migration());
    assert!(metrics.records_migration());
    assert!(!metrics.enable_migration());
    assert_eq!(registry.gather_text(), "");
    metrics.record_with_labels(
        "/csi.v1.Identity/GetPluginInfo",
        "Unimplemented",
        Duration::ZERO,
        &[("migrated", "true")],
    );
    assert_eq!(registry.gather_text(), want);
    // Still one family of that name in the registry.
    assert!(matches!(
        CsiOperationMetrics::builder()
            .process_start_time(false)
            .register(&registry),
        Err(Error::AlreadyRegistered { .. })
    ));
}

#[test]
fn csi_plugin_subsystem_and_process_start_time() {
    let registry = Registry::new();
    let metrics = CsiOperationMetrics::for_plugin(&registry).unwrap();
    metrics.record(
        "/csi.v1.Node/NodeStageVolume",
        "Unavailable",
        Duration::ZERO,
    );
    let text = registry.gather_text();
    assert!(text.contains(
        "# HELP csi_plugin_operations_seconds [ALPHA] Container Storage Interface operation duration with gRPC error code status total\n"
    ));
    let start_help = "# HELP process_start_time_seconds [ALPHA] Start time of the process since unix epoch in seconds.\n\
                      # TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ";
    let start = text
        .find(start_help)
        .expect("the [ALPHA] start time is registered");
    let value: f64 = text[start + start_help.len()..]
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(value > 1.5e9, "start time {value}");
}

#[test]
fn grpc_code_names_are_gos() {
    let names: Vec<&str> = (0..=16).map(csi_metrics::grpc_code_name).collect();
    assert_eq!(
        names,
        [
            "OK",
            "Canceled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ]
    );
    assert_eq!(csi_metrics::grpc_code_name(17), "Unknown");
}

#[test]
fn duplicate_registration_is_an_error() {
    let registry = Registry::new();
    let first = Counter::new(Opts::new("ops_total", "Ops.")).unwrap();
    let second = CounterVec::new(Opts::new("ops_total", "Other ops."), &["x"]).unwrap();
    registry.register(first.clone()).unwrap();
    assert_eq!(
        registry.register(second),
        Err(Error::AlreadyRegistered {
            name: "ops_total".to_string()
        })
    );
    assert_eq!(
        registry.register(first),
        Err(Error::AlreadyRegistered {
            name: "ops_total".to_string()
        })
    );

    // The [ALPHA] start time and the process collector's cannot both be registered.
    CsiOperationMetrics::for_sidecar(&registry).unwrap();
    assert_eq!(
        registry.register(ProcessCollector::new()),
        Err(Error::AlreadyRegistered {
            name: "process_start_time_seconds".to_string()
        })
    );
    registry
        .register(ProcessCollector::new().without_start_time())
        .unwrap();
    // A second CSI histogram in the same registry clashes too, registering nothing.
    assert!(matches!(
        CsiOperationMetrics::builder()
            .process_start_time(false)
            .register(&registry),
        Err(Error::AlreadyRegistered { .. })
    ));
}

/// A collector computing its value at scrape time, as upstream's workqueue and capacity
/// collectors do.
#[derive(Debug)]
struct Unfinished;

impl Collector for Unfinished {
    fn family_names(&self) -> Vec<String> {
        vec!["unfinished_work_seconds".to_string()]
    }

    fn collect(&self, out: &mut Vec<MetricFamily>) {
        let mut family = MetricFamily::new(
            "unfinished_work_seconds",
            "How many seconds of work has been done that is in progress.",
            Stability::Alpha,
            MetricType::Gauge,
        );
        family.push_value(&[("name", "volumes")], 2.5);
        family.push_value(&[("name", "claims")], 0.0);
        out.push(family);
    }
}

#[test]
fn custom_collector() {
    let registry = Registry::new();
    registry.register(Unfinished).unwrap();
    assert_eq!(
        registry.gather_text(),
        "# HELP unfinished_work_seconds [ALPHA] How many seconds of work has been done that is in progress.\n\
         # TYPE unfinished_work_seconds gauge\n\
         unfinished_work_seconds{name=\"claims\"} 0\n\
         unfinished_work_seconds{name=\"volumes\"} 2.5\n"
    );
}

#[test]
fn process_collector_reads_this_process() {
    let registry = Registry::new();
    registry.register(ProcessCollector::new()).unwrap();
    let text = registry.gather_text();
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"));
        line[name.len() + 1..].parse().unwrap()
    };
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_virtual_memory_bytes") > value("process_resident_memory_bytes"));
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_virtual_memory_max_bytes") > 0.0);
    let start = value("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start > now - 3600.0 && start <= now + 1.0,
        "start {start}, now {now}"
    );
    assert!(text.contains(
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
    ));
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
}

#[test]
fn process_collector_golden() {
    let root = tempfile::tempdir().unwrap();
    let own = root.path().join("self");
    std::fs::create_dir_all(own.join("fd")).unwrap();
    std::fs::create_dir_all(own.join("net")).unwrap();
    for fd in ["0", "1", "2", "3", "7"] {
        std::fs::write(own.join("fd").join(fd), "").unwrap();
    }
    std::fs::write(
        own.join("stat"),
        "4242 (csi-sidecars) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
         1234 567 0 0 20 0 8 0 98765 123456789 2500 18446744073709551615 \
         1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("stat"),
        "cpu  1 2 3 4\nintr 1\nctxt 5\nbtime 1764500000\nprocesses 9\n",
    )
    .unwrap();
    // AT_PAGESZ (6) = 16384, then AT_NULL.
    let mut auxv = Vec::new();
    for word in [6usize, 16384, 0, 0] {
        auxv.extend_from_slice(&word.to_ne_bytes());
    }
    std::fs::write(own.join("auxv"), auxv).unwrap();
    std::fs::write(
        own.join("limits"),
        "Limit                     Soft Limit           Hard Limit           Units     \n\
         Max open files            1024                 1048576              files     \n\
         Max address space         unlimited            unlimited            bytes     \n",
    )
    .unwrap();
    std::fs::write(
        own.join("net/netstat"),
        "IpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 123456789 4242\n",
    )
    .unwrap();

    let registry = Registry::new();
    registry
        .register(ProcessCollector::new().with_proc_root(root.path()))
        .unwrap();
    assert_eq!(
        registry.gather_text(),
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 18.01
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 1024
# HELP process_network_receive_bytes_total Number of bytes received by the process over the network.
# TYPE process_network_receive_bytes_total counter
process_network_receive_bytes_total 1.23456789e+08
# HELP process_network_transmit_bytes_total Number of bytes sent by the process over the network.
# TYPE process_network_transmit_bytes_total counter
process_network_transmit_bytes_total 4242
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 5
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.096e+07
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.76450098765e+09
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 1.23456789e+08
# HELP process_virtual_memory_max_bytes Maximum amount of virtual memory available in bytes.
# TYPE process_virtual_memory_max_bytes gauge
process_virtual_memory_max_bytes 1.8446744073709552e+19
"
    );
}
