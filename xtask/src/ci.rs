//! `cargo xtask ci`: exactly what CI runs: formatting, clippy, every test, and the end-to-end
//! tests on the local control plane.

use std::time::Instant;

use anyhow::Context as _;
use xshell::{Shell, cmd};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        anyhow::bail!("cargo xtask ci takes no arguments (got {arg:?})");
    }
    let sh = Shell::new()?;
    sh.change_dir(crate::project_root());
    let started = Instant::now();

    step("cargo fmt --check", || {
        cmd!(sh, "cargo fmt --all -- --check").run()?;
        Ok(())
    })?;
    step("cargo clippy (warnings are errors)", || {
        cmd!(
            sh,
            "cargo clippy --workspace --all-targets --locked -- -D warnings"
        )
        .run()?;
        Ok(())
    })?;
    step(
        "cargo test (every crate: unit, mock-driver and process tests)",
        || {
            cmd!(sh, "cargo test --workspace --locked --exclude csi-e2e").run()?;
            Ok(())
        },
    )?;
    step(
        "cargo xtask new-sidecar: a generated skeleton builds in a copy of the workspace",
        || {
            cmd!(
                sh,
                "cargo test --locked -p xtask -- --ignored a_generated_skeleton_builds"
            )
            .run()?;
            Ok(())
        },
    )?;
    step("end-to-end tests on the local control plane", || {
        crate::e2e::run(&[])
    })?;
    step(
        "benchmark smoke test (cargo xtask bench --quick --only ours, tiny N)",
        bench_smoke,
    )?;
    println!("\nxtask ci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Keeps `cargo xtask bench` from rotting: our configurations only, five attachments, 20 PVs
/// and 20 PVCs for the scale part, one run, debug binaries (the figures of such a run mean
/// nothing; the tooling working does); and `--health-monitor` with five PVs.
fn bench_smoke() -> anyhow::Result<()> {
    let info = crate::cluster::up()?;
    let args: Vec<String> = [
        "--quick", "--only", "ours", "--n", "5", "--runs", "1", "--scale", "0,20", "--debug",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let health: Vec<String> = ["--health-monitor", "--n", "5", "--events", "10", "--debug"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let result = crate::bench::run(&args).and_then(|()| crate::bench::run(&health));
    if info.started {
        crate::cluster::down()?;
    }
    result
}

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    println!("\n==> {name}");
    let started = Instant::now();
    f().with_context(|| format!("step failed: {name}"))?;
    println!("==> {name}: ok ({:.0?})", started.elapsed());
    Ok(())
}
