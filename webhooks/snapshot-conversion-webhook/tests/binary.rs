//! The binary's start-up failures: what upstream makes fatal (`klog.Fatal`, exit code 255).

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_snapshot-conversion-webhook"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn tls_files_are_required() {
    let (code, text) = run(&[]);
    assert_eq!(code, 255, "{text}");
    assert!(text.contains("--tls-cert-file must be specified"), "{text}");

    let (code, text) = run(&["--tls-cert-file=/x.crt"]);
    assert_eq!(code, 255, "{text}");
    assert!(
        text.contains("--tls-private-key-file must be specified"),
        "{text}"
    );
}

#[test]
fn unreadable_tls_files_are_fatal() {
    let (code, text) = run(&[
        "-tls-cert-file=/nonexistent.crt",
        "-tls-private-key-file=/nonexistent.key",
        "-port=0",
    ]);
    assert_eq!(code, 255, "{text}");
    assert!(
        text.contains("failed to initialize new cert watcher"),
        "{text}"
    );
    assert!(text.contains("/nonexistent.crt"), "{text}");
}

#[test]
fn unknown_flags_are_usage_errors() {
    let (code, text) = run(&["--no-such-flag"]);
    assert_eq!(code, 2, "{text}");
}
