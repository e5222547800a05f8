//! `cargo xtask <task>`: the project's own tooling, in Rust.
//!
//! - `ci`: everything CI checks: formatting, clippy with warnings as errors, every test.
//! - `demo`: the node side of `csi-sidecars` against a mock CSI driver and a fake kubelet,
//!   narrated step by step.

mod bench;
mod ci;
mod cluster;
mod demo;
mod e2e;
mod fuzz;
mod new_sidecar;
mod rbac;
mod release;
mod soak;
mod tools;
mod upstream;

use anyhow::bail;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  bench   our sidecars vs the upstream Go ones: memory, CPU, API load, attach/detach times
          (--quick, --only ours|go|all, --n N, --runs R): cargo xtask bench --help
  ci      cargo fmt --check, cargo clippy (-D warnings), every test of the workspace
  cluster a local control plane (etcd, kube-apiserver, kube-controller-manager; no kubelet):
          up | down | status | env | kubeconfig --service-account NS/NAME
  e2e     the end-to-end tests on the local control plane (starts and stops it if needed)
  soak    the reliability scenarios' long variants with RSS and open-fd series and a report
          (--duration 1h, --scenario NAME): cargo xtask soak --help
  fuzz    the property tests (argv, templates, webhook bodies, registration, CSI responses)
          with many cases, for rounds or a time budget (--cases N, --duration D): report in
          target/fuzz/report.md: cargo xtask fuzz --help
  demo    run csi-sidecars (livenessprobe + node-driver-registrar) against a mock CSI driver
          and a fake kubelet, and show what each step proves
  new-sidecar NAME --upstream OWNER/REPO --version vX.Y.Z [--binary BIN] [--dir sidecars|controllers]
          the skeleton of the next component (crate, descriptor, RBAC stub, failing test stubs,
          workspace and csi-sidecars table lines): docs/adding-a-sidecar.md
  rbac    generate sidecars/aio/deploy/rbac.yaml from the components' RBAC; --check: fail if stale
  release one release build: an OCI image per sidecar (layout + docker archive), checksums,
          SBOMs, release notes, verified with skopeo/umoci: cargo xtask release --help
  tools   build/locate pinned test tools (etcd, kube-apiserver, ...): cargo xtask tools help
  upstream for each component, the upstream release it mirrors and the newest one the Go module
          proxy (go env GOPROXY) lists; --check: fail when one is behind (needs the network)
";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("bench") => bench::run(&rest),
        Some("ci") => ci::run(&rest),
        Some("cluster") => cluster::run(&rest),
        Some("demo") => demo::run(&rest),
        Some("e2e") => e2e::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("new-sidecar") => new_sidecar::run(&rest),
        Some("rbac") => rbac::run(&rest),
        Some("release") => release::run(&rest),
        Some("soak") => soak::run(&rest),
        Some("tools") => tools::run(&rest),
        Some("upstream") => upstream::run(&rest),
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
