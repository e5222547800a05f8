//! Golden tests of the text and JSON lines, with the clock and the pid fixed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use csi_logging::{KlogLayer, LogFormat, LogOptions, SharedBuffer};
use tracing_subscriber::layer::SubscriberExt as _;

/// 2024-11-25T02:46:06.357519300Z.
fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_732_502_766, 357_519_300)
}

/// Runs `f` with a layer for `opts` writing into a buffer, and returns what was written.
fn capture(opts: LogOptions, f: impl FnOnce()) -> String {
    let out = SharedBuffer::new();
    let layer = KlogLayer::new(&opts)
        .with_writer(out.clone())
        .with_clock(fixed_clock)
        .with_pid(13355);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    out.contents()
}

fn text(verbosity: u32, f: impl FnOnce()) -> String {
    let opts = LogOptions {
        verbosity,
        ..LogOptions::default()
    };
    capture(opts, f)
}

fn json(verbosity: u32, f: impl FnOnce()) -> String {
    let opts = LogOptions {
        verbosity,
        format: LogFormat::Json,
        split_stream: false,
    };
    capture(opts, f)
}

#[derive(Debug)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rpc error: code = Internal desc = \"boom\"")
    }
}

impl std::error::Error for Boom {}

#[test]
fn text_info_line() {
    let mut line = 0;
    let out = text(0, || {
        line = line!() + 1;
        tracing::info!(
            driver = "hostpath.csi.k8s.io",
            attempt = 3,
            ready = true,
            ratio = 0.25,
            "Connected to \"driver\""
        );
    });
    assert_eq!(
        out,
        format!(
            "I1125 02:46:06.357519   13355 format.rs:{line}] \"Connected to \\\"driver\\\"\" driver=\"hostpath.csi.k8s.io\" attempt=3 ready=true ratio=0.25\n"
        )
    );
}

#[test]
fn text_error_puts_err_first() {
    let mut line = 0;
    let out = text(0, || {
        line = line!() + 1;
        tracing::error!(
            volume = "pvc-1",
            error = &Boom as &dyn std::error::Error,
            "Attach failed"
        );
    });
    assert_eq!(
        out,
        format!(
            "E1125 02:46:06.357519   13355 format.rs:{line}] \"Attach failed\" err=\"rpc error: code = Internal desc = \\\"boom\\\"\" volume=\"pvc-1\"\n"
        )
    );
}

#[test]
fn text_warning_and_display_and_debug_values() {
    let mut line = 0;
    let path = std::path::Path::new("/csi/csi.sock");
    let out = text(0, || {
        line = line!() + 1;
        tracing::warn!(address = %path.display(), caps = ?["a", "b"], err = %Boom, "Still connecting");
    });
    assert_eq!(
        out,
        format!(
            "W1125 02:46:06.357519   13355 format.rs:{line}] \"Still connecting\" address=\"/csi/csi.sock\" caps=\"[\\\"a\\\", \\\"b\\\"]\" err=\"rpc error: code = Internal desc = \\\"boom\\\"\"\n"
        )
    );
}

#[test]
fn text_multi_line_value() {
    let mut line = 0;
    let out = text(0, || {
        line = line!() + 1;
        tracing::info!(config = "a: 1\nb: 2", "Loaded");
    });
    assert_eq!(
        out,
        format!(
            "I1125 02:46:06.357519   13355 format.rs:{line}] \"Loaded\" config=<\n\ta: 1\n\tb: 2\n >\n"
        )
    );
}

#[test]
fn span_fields_come_first_and_repeated_keys_keep_the_last_value() {
    let mut line = 0;
    let out = text(0, || {
        let span = tracing::info_span!("controller", controller = "attacher", worker = 1);
        let _entered = span.enter();
        line = line!() + 1;
        tracing::info!(
            worker = 2,
            controller = "attacher",
            volume = "pvc-1",
            "Processing"
        );
    });
    // klog: an identical pair keeps its first place; a changed value moves to the end.
    assert_eq!(
        out,
        format!(
            "I1125 02:46:06.357519   13355 format.rs:{line}] \"Processing\" controller=\"attacher\" worker=2 volume=\"pvc-1\"\n"
        )
    );
}

#[test]
fn verbosity_levels() {
    let log_all = || {
        tracing::info!("info");
        tracing::debug!("debug");
        tracing::debug!(v = 4, "debug v4");
        tracing::info!(v = 3, "info v3");
        tracing::trace!("trace");
        tracing::trace!(v = 1, "trace v1");
        tracing::warn!(v = 9, "warn ignores v");
        tracing::debug!(target: "h2::proto::streams", "dependency debug");
        tracing::trace!(target: "hyper_util::client", "dependency trace");
    };
    let messages = |verbosity: u32| -> Vec<String> {
        text(verbosity, log_all)
            .lines()
            .map(|l| l.split_once("] ").unwrap().1.to_string())
            .collect()
    };
    let q = |m: &str| format!("\"{m}\"");
    assert_eq!(messages(0), [q("info"), q("warn ignores v")]);
    assert_eq!(messages(1), [q("info"), q("trace v1"), q("warn ignores v")]);
    assert_eq!(
        messages(2),
        [q("info"), q("debug"), q("trace v1"), q("warn ignores v")]
    );
    assert_eq!(
        messages(4),
        [
            q("info"),
            q("debug"),
            q("debug v4"),
            q("info v3"),
            q("trace v1"),
            q("warn ignores v")
        ]
    );
    assert_eq!(messages(5).len(), 7);
    assert_eq!(messages(7).len(), 8);
    assert_eq!(messages(9).len(), 9);
}

#[test]
fn json_lines() {
    let mut line = 0;
    let mut rest = 0;
    let out = json(5, || {
        let span = tracing::info_span!("controller", controller = "attacher");
        let _entered = span.enter();
        line = line!() + 1;
        tracing::info!(
            volume = "pvc-1",
            attempt = 3,
            ratio = 0.5,
            ok = true,
            "Attached <volume> & \"more\""
        );
        rest = line!() + 1;
        tracing::debug!(v = 4, "Detail");
        tracing::trace!("GRPC call");
        tracing::warn!("Careful");
        tracing::error!(err = %Boom, volume = "pvc-1", "Attach failed");
        tracing::error!("No error value");
    });
    let caller = |offset: u32| match offset {
        0 => format!("tests/format.rs:{line}"),
        _ => format!("tests/format.rs:{}", rest + offset - 1),
    };
    let expected = [
        format!(
            r#"{{"ts":1732502766357.5193,"caller":"{}","msg":"Attached <volume> & \"more\"","controller":"attacher","v":0,"volume":"pvc-1","attempt":3,"ratio":0.5,"ok":true}}"#,
            caller(0)
        ),
        format!(
            r#"{{"ts":1732502766357.5193,"caller":"{}","msg":"Detail","controller":"attacher","v":4}}"#,
            caller(1)
        ),
        format!(
            r#"{{"ts":1732502766357.5193,"caller":"{}","msg":"GRPC call","controller":"attacher","v":5}}"#,
            caller(2)
        ),
        format!(
            r#"{{"ts":1732502766357.5193,"caller":"{}","msg":"Careful","controller":"attacher","v":0}}"#,
            caller(3)
        ),
        format!(
            r#"{{"ts":1732502766357.5193,"caller":"{}","msg":"Attach failed","controller":"attacher","volume":"pvc-1","err":"rpc error: code = Internal desc = \"boom\""}}"#,
            caller(4)
        ),
        format!(
            r#"{{"ts":1732502766357.5193,"caller":"{}","msg":"No error value","controller":"attacher"}}"#,
            caller(5)
        ),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, expected);
    for line in lines {
        serde_json::from_str::<serde_json::Value>(line).expect("each line is a JSON object");
    }
}

#[test]
fn split_streams() {
    let run = |format: LogFormat| {
        let info = SharedBuffer::new();
        let error = SharedBuffer::new();
        let opts = LogOptions {
            verbosity: 0,
            format,
            split_stream: true,
        };
        let layer = KlogLayer::new(&opts)
            .with_info_writer(info.clone())
            .with_error_writer(error.clone())
            .with_clock(fixed_clock);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        });
        (
            info.contents().lines().count(),
            error.contents().lines().count(),
        )
    };
    // Text: I to stdout, W and E to stderr (klog's router); JSON: warnings are info lines.
    assert_eq!(run(LogFormat::Text), (1, 2));
    assert_eq!(run(LogFormat::Json), (2, 1));

    // Without split_stream everything goes to the error stream (stderr).
    let info = SharedBuffer::new();
    let error = SharedBuffer::new();
    let layer = KlogLayer::new(&LogOptions::default())
        .with_info_writer(info.clone())
        .with_error_writer(error.clone());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!("i");
        tracing::error!("e");
    });
    assert_eq!(info.contents(), "");
    assert_eq!(error.contents().lines().count(), 2);
}

/// Lines printed by klog v2.140.0's text logger and component-base v0.36.0's JSON logger for
/// the same calls (header and caller aside).
#[test]
fn floats_and_quoting_match_go() {
    let out = text(0, || {
        tracing::info!(
            a = 1e-7,
            b = 1e21,
            c = f64::NAN,
            d = 123456789.0,
            f = f64::INFINITY,
            "floats"
        );
        tracing::info!(
            "quote \u{a0}\u{ad}\u{200b}\u{2028}\u{feff}\u{e000}\u{10ffff} 😀 ünï \x07\x08\x0c\n\r\t\x0b\x00\x1b\x7f"
        );
    });
    let bodies: Vec<&str> = out.lines().map(|l| l.split_once("] ").unwrap().1).collect();
    assert_eq!(
        bodies,
        [
            r#""floats" a=1e-7 b=1e+21 c="<internal error: json: unsupported value: NaN>" d=123456789 f="<internal error: json: unsupported value: +Inf>""#,
            r#""quote \u00a0\u00ad\u200b\u2028\ufeff\ue000\U0010ffff 😀 ünï \a\b\f\n\r\t\v\x00\x1b\x7f""#,
        ]
    );

    let out = json(0, || {
        tracing::info!(
            s = "<a&b>\t\"q\"\\\u{1}\u{2028}",
            f = 1e21,
            inf = f64::INFINITY,
            neg = -1,
            "esc"
        );
    });
    let (_, rest) = out.split_once(r#""msg""#).unwrap();
    assert_eq!(
        rest,
        ":\"esc\",\"v\":0,\"s\":\"<a&b>\\t\\\"q\\\"\\\\\\u0001\u{2028}\",\"f\":1000000000000000000000,\"inf\":\"+Inf\",\"neg\":-1}\n"
    );
}
