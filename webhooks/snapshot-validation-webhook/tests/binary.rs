//! The binary's start-up failures.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_snapshot-validation-webhook"))
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn tls_files_are_required() {
    let (code, text) = run(&[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(r#"required flag(s) "tls-cert-file", "tls-private-key-file" not set"#),
        "{text}"
    );
    let (code, text) = run(&["--tls-cert-file=/x"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(r#"required flag(s) "tls-private-key-file" not set"#),
        "{text}"
    );
}

#[test]
fn unreadable_tls_files_are_fatal() {
    let (code, text) = run(&[
        "--tls-cert-file=/nonexistent.crt",
        "--tls-private-key-file=/nonexistent.key",
    ]);
    assert_eq!(code, 255, "{text}");
    assert!(
        text.contains("failed to initialize new cert watcher"),
        "{text}"
    );
}
