//! `cargo xtask <task>`: the project's own tooling, in Rust.
//!
//! - `ci`: everything CI checks: formatting, clippy with warnings as errors, every test.
//! - `demo`: the node side of `csi-sidecars` against a mock CSI driver and a fake kubelet,
//!   narrated step by step.

mod ci;
mod demo;

use anyhow::bail;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci      cargo fmt --check, cargo clippy (-D warnings), every test of the workspace
  demo    run csi-sidecars (livenessprobe + node-driver-registrar) against a mock CSI driver
          and a fake kubelet, and show what each step proves
";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("ci") => ci::run(&rest),
        Some("demo") => demo::run(&rest),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            eprint!("{USAGE}");
            bail!("unknown task {other:?}")
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}
