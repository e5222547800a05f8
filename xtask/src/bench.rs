//! `cargo xtask bench`: our sidecars side by side with the upstream Go ones, on the local
//! control plane, against the same CSI driver process (Kubernetes' e2e mock driver).
//!
//! What is measured is a table: [`SIDECARS`] has one row per sidecar — its upstream Go binary
//! (pinned in release-tools/e2e-versions.toml), our binary, its `--controllers` name, its flags,
//! the watches that say its caches synced, the objects it caches and its workload. The next
//! sidecar joins as one row. The configurations are built from the rows (each run sequentially
//! on the same cluster, objects cleaned between runs):
//! 1. `go`: the upstream Go binary of every row whose section of the versions file is not
//!    marked `unavailable` (livenessprobe and node-driver-registrar are: the module proxy
//!    refuses them), built by [`crate::tools`], one process each.
//! 2. `ours-split`: our binary of every row, one process each.
//! 3. `ours-aio`: `csi-sidecars --controllers=<every row>`.
//!
//! A row whose binary of ours is not built (a sidecar still being written) is left out of
//! `ours-split` and `ours-aio`, and named in the report's "not run".
//!
//! Per run and configuration: idle RSS once the watches are open (from the audit log), peak RSS
//! and CPU seconds over the workloads, API requests from the audit log by user agent, and the
//! workloads' timings: attach/detach of N VolumeAttachments; when a provisioner runs, N
//! claims provisioned (created → Bound, p50/p99, all Bound) and deleted (until their volumes
//! are gone), with the requests per claim and the CPU seconds of that workload alone; when a
//! resizer runs next to the provisioner, N/2 claims of an expandable class provisioned, then
//! all their requests raised at once (patch → volume and claim at the new capacity, p50/p99,
//! all done), with the requests per expansion, the CPU seconds and the peak RSS of that window
//! alone. A workload whose Go sidecar is missing here has no Go figure, and the report says
//! why. Then the scale measurement: idle RSS of each configuration with 0, 5 000 and 20 000 PVs
//! and as many PVCs in the cluster, and from it the KiB of RSS per cached object (the slope of
//! RSS against the number of objects the process caches). The report is the median of the
//! runs, with min and max; a full run also writes the summary into README.md.

mod audit;
pub(crate) mod charts;
mod expand;
mod health;
pub(crate) mod procfs;
mod provision;
mod report;
mod snapshot;
mod snapshot_workload;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use csi_test_support::{ChildProcess, free_port, wait_for_path};
use serde::{Deserialize, Serialize};
use xshell::{Shell, cmd};

use crate::{cluster, tools};

const USAGE: &str = "\
usage: cargo xtask bench [--quick] [--only ours|go|all] [--n N] [--runs R] [--debug] [--scale-only]
       cargo xtask bench --health-monitor [--n N] [--events M] [--debug | --bin-dir DIR]

  --quick       N = 200 instead of 1000 (100 expansions instead of 500), scale with
                0/1000/5000 instead of 0/5000/20000
  --only        which configurations: ours (split and all-in-one), go, or all (default)
  --n N         VolumeAttachments, and claims to provision, per run (overrides --quick);
                half as many claims are expanded
  --runs R      runs per configuration (default 3); figures are medians, with min and max
  --debug       use debug builds of ours (fast to build; sizes and CPU are then not comparable)
  --scale-only  only the scale measurement (idle RSS with objects present), not the workload
  --scale LIST  the object counts of the scale measurement: that many PVs and as many PVCs,
                e.g. 0,5000,20000

  --health-monitor  only csi-external-health-monitor-controller (no Go figure): idle RSS and API
                requests per ListVolumes pass with N bound PVs (default 1000), healthy and
                abnormal, and its RSS and requests with M more Events present (default 1000)
  --events M    Events created for --health-monitor
  --bin-dir DIR with --health-monitor: measure the binary in DIR instead of building one, e.g.
                the static binaries of `cargo xtask release` (target/release-artifacts/
                vX.Y.Z/bin/linux-amd64)

Writes target/bench/<timestamp>/{report.md,report.json,memory.png,latency.png,scale.png};
a full run (--only all, release builds, workload and scale) also writes the summary into
README.md between <!-- bench:start --> and <!-- bench:end -->.
CI smoke test: cargo xtask bench --quick --only ours --n 5 --runs 1 --scale 0,20 --debug

cargo xtask bench --snapshots [...]: volume snapshots instead (snapshot-controller and
csi-snapshotter, Go against ours); `cargo xtask bench --snapshots --help` for its flags.
";

/// The same settings for every sidecar that talks to the API server.
const QPS: &str = "50";
const BURST: &str = "100";
const WORKERS: &str = "10";
/// Audit user of every contender: the admin kubeconfig's client certificate.
const AUDIT_USER: &str = "admin";
/// The sidecars measured, one row each: the upstream Go binary, ours, and what it does here.
/// Whether the Go one can be built (and its version) is read from [`VERSIONS_FILE`].
const SIDECARS: &[Sidecar] = &[
    Sidecar {
        upstream: "external-attacher",
        binary: "csi-attacher",
        package: "external-attacher",
        controller: "attacher",
        flags: kube_flags,
        watches: &["volumeattachments", "persistentvolumes"],
        caches: &[ScaleKind::PersistentVolume],
        workload: Some(Workload::AttachDetach),
    },
    Sidecar {
        upstream: "external-provisioner",
        binary: "csi-provisioner",
        package: "external-provisioner",
        controller: "provisioner",
        flags: kube_flags,
        // What upstream's csi-provisioner watches whatever the driver (without
        // VOLUME_ACCESSIBILITY_CONSTRAINTS it watches no CSINodes and Nodes).
        watches: &[
            "persistentvolumeclaims",
            "persistentvolumes",
            "storageclasses",
        ],
        caches: &[
            ScaleKind::PersistentVolume,
            ScaleKind::PersistentVolumeClaim,
        ],
        workload: Some(Workload::ProvisionDelete),
    },
    Sidecar {
        upstream: "external-resizer",
        binary: "csi-resizer",
        package: "external-resizer",
        controller: "resizer",
        flags: resizer_flags,
        // With --handle-volume-inuse-error (on by default) it watches Pods; with a driver that
        // modifies volumes (the mock driver does) and the VolumeAttributesClass v1 API, also
        // VolumeAttributesClasses.
        watches: &[
            "persistentvolumeclaims",
            "persistentvolumes",
            "pods",
            "volumeattributesclasses",
        ],
        caches: &[
            ScaleKind::PersistentVolume,
            ScaleKind::PersistentVolumeClaim,
        ],
        workload: Some(Workload::Expand),
    },
    Sidecar {
        upstream: "livenessprobe",
        binary: "livenessprobe",
        package: "livenessprobe",
        controller: "livenessprobe",
        flags: no_flags,
        watches: &[],
        caches: &[],
        workload: None,
    },
    Sidecar {
        upstream: "node-driver-registrar",
        binary: "csi-node-driver-registrar",
        package: "node-driver-registrar",
        controller: "node-driver-registrar",
        flags: registrar_flags,
        watches: &[],
        caches: &[],
        workload: None,
    },
];
const VERSIONS_FILE: &str = "release-tools/e2e-versions.toml";
/// Objects of each kind present for the scale measurement.
const SCALE_COUNTS: &[usize] = &[0, 5000, 20000];
const SCALE_COUNTS_QUICK: &[usize] = &[0, 1000, 5000];
/// After the caches synced, before idle RSS is read.
const SETTLE: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Only {
    Ours,
    Go,
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// The command as typed.
    pub command: String,
    pub n: usize,
    pub scale_pvs: Vec<usize>,
    pub scale_only: bool,
    pub runs: usize,
    pub only: String,
    pub profile: String,
    pub qps: String,
    pub burst: String,
    pub workers: String,
    pub driver: String,
}

#[derive(Debug)]
struct Options {
    n: usize,
    runs: usize,
    only: Only,
    debug: bool,
    scale_only: bool,
    scale_pvs: Vec<usize>,
    health_monitor: bool,
    events: usize,
    bin_dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut quick = false;
    let mut n = None;
    let mut runs = 3;
    let mut only = Only::All;
    let mut debug = false;
    let mut scale_only = false;
    let mut scale_pvs: Option<Vec<usize>> = None;
    let mut health_monitor = false;
    let mut events = 1000;
    let mut bin_dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{name} needs a value"))
        };
        match name {
            "--quick" => quick = true,
            "--health-monitor" => health_monitor = true,
            "--events" => events = value()?.parse().context("--events")?,
            "--debug" => debug = true,
            "--bin-dir" => bin_dir = Some(std::path::absolute(PathBuf::from(value()?))?),
            "--scale-only" => scale_only = true,
            "--scale" => {
                let list = value()?;
                scale_pvs = Some(
                    list.split(',')
                        .map(|n| n.trim().parse::<usize>())
                        .collect::<Result<_, _>>()
                        .with_context(|| format!("--scale {list:?}: a list of object counts"))?,
                );
            }
            "--n" => n = Some(value()?.parse().context("--n")?),
            "--runs" => runs = value()?.parse().context("--runs")?,
            "--only" => {
                only = match value()?.as_str() {
                    "ours" => Only::Ours,
                    "go" => Only::Go,
                    "all" => Only::All,
                    other => bail!("--only {other:?}: ours, go or all"),
                }
            }
            "-h" | "--help" | "help" => return Ok(None),
            other => bail!("cargo xtask bench: unknown argument {other:?}\n{USAGE}"),
        }
    }
    let n = n.unwrap_or(if quick { 200 } else { 1000 });
    if n == 0 || runs == 0 {
        bail!("--n and --runs must be at least 1");
    }
    if bin_dir.is_some() && (!health_monitor || debug) {
        bail!("--bin-dir goes with --health-monitor, and not with --debug");
    }
    let scale_pvs = scale_pvs.unwrap_or_else(|| {
        if quick {
            SCALE_COUNTS_QUICK
        } else {
            SCALE_COUNTS
        }
        .to_vec()
    });
    Ok(Some(Options {
        n,
        runs,
        only,
        debug,
        scale_only,
        scale_pvs,
        health_monitor,
        events,
        bin_dir,
    }))
}

/// One sidecar of the bench: a row of [`SIDECARS`].
#[derive(Debug)]
struct Sidecar {
    /// Its section in [`VERSIONS_FILE`], which pins the upstream Go sidecar.
    upstream: &'static str,
    /// The binary's name, upstream's and ours (`csi-attacher`); also its user agent.
    binary: &'static str,
    /// Our package that builds it.
    package: &'static str,
    /// Its `--controllers` name in csi-sidecars.
    controller: &'static str,
    /// Its flags besides --csi-address and --http-endpoint: the same for Go and ours.
    flags: fn(&Paths) -> Vec<String>,
    /// The resources it watches (plural): once every watch of a configuration was opened
    /// (a watch opens after its list), its caches are synced.
    watches: &'static [&'static str],
    /// What it caches of the scale measurement's objects.
    caches: &'static [ScaleKind],
    /// What it is given to do.
    workload: Option<Workload>,
}

/// A workload of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// N VolumeAttachments created at once, timed until attached, then deleted
    /// ([`workload::attach_detach`]).
    AttachDetach,
    /// N PersistentVolumeClaims created at once, timed until Bound, then deleted, timed until
    /// their volumes are gone ([`provision::provision_delete`]).
    ProvisionDelete,
    /// N/2 PersistentVolumeClaims of an expandable class, provisioned by the configuration's
    /// provisioner, then all their requests raised at once, timed until the volume and the
    /// claim show the new capacity ([`expand::expand`]). Runs only next to a provisioner.
    Expand,
}

impl Workload {
    /// Its name in the report.
    pub fn key(self) -> &'static str {
        match self {
            Workload::AttachDetach => "attach",
            Workload::ProvisionDelete => "provision",
            Workload::Expand => "expand",
        }
    }
}

/// The kinds of object the scale measurement fills the cluster with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScaleKind {
    PersistentVolume,
    PersistentVolumeClaim,
}

impl ScaleKind {
    pub const ALL: [ScaleKind; 2] = [
        ScaleKind::PersistentVolume,
        ScaleKind::PersistentVolumeClaim,
    ];

    pub fn short(self) -> &'static str {
        match self {
            ScaleKind::PersistentVolume => "PVs",
            ScaleKind::PersistentVolumeClaim => "PVCs",
        }
    }
}

fn no_flags(_: &Paths) -> Vec<String> {
    Vec::new()
}

/// What every sidecar that talks to the API server gets.
fn kube_flags(paths: &Paths) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", paths.kubeconfig.display()),
        format!("--kube-api-qps={QPS}"),
        format!("--kube-api-burst={BURST}"),
        format!("--worker-threads={WORKERS}"),
    ]
}

/// external-resizer names its worker count `--workers` (the others `--worker-threads`).
fn resizer_flags(paths: &Paths) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", paths.kubeconfig.display()),
        format!("--kube-api-qps={QPS}"),
        format!("--kube-api-burst={BURST}"),
        format!("--workers={WORKERS}"),
    ]
}

fn registrar_flags(paths: &Paths) -> Vec<String> {
    vec![
        format!(
            "--kubelet-registration-path=/var/lib/kubelet/plugins/{}/csi.sock",
            workload::DRIVER
        ),
        format!(
            "--plugin-registration-path={}",
            paths.registration.display()
        ),
    ]
}

/// The upstream Go binary of a row of [`SIDECARS`], as pinned in [`VERSIONS_FILE`].
#[derive(Debug, Clone)]
struct GoSidecar {
    sidecar: &'static Sidecar,
    version: String,
    /// Why it cannot be built here (the section's `unavailable`).
    unavailable: Option<String>,
}

fn go_sidecars(versions: &str) -> anyhow::Result<Vec<GoSidecar>> {
    let table: toml::Table = toml::from_str(versions).context(VERSIONS_FILE)?;
    SIDECARS
        .iter()
        .map(|sidecar| {
            let section = sidecar.upstream;
            let s = table
                .get(section)
                .and_then(toml::Value::as_table)
                .with_context(|| format!("no [{section}] in {VERSIONS_FILE}"))?;
            let text = |key: &str| s.get(key).and_then(toml::Value::as_str).map(String::from);
            Ok(GoSidecar {
                sidecar,
                version: text("version").unwrap_or_default(),
                unavailable: text("unavailable"),
            })
        })
        .collect()
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "--snapshots") {
        return snapshot::run(args);
    }
    let Some(options) = parse(args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let started = Instant::now();
    let root = crate::project_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| std::path::absolute(PathBuf::from(d)))
        .transpose()?
        .unwrap_or_else(|| root.join("target"));
    if options.health_monitor {
        return run_health_monitor(&options, &root, &target);
    }

    let driver_bin = tools::ensure("csi-mock-driver")?;
    let sidecars = go_sidecars(&std::fs::read_to_string(root.join(VERSIONS_FILE))?)?;
    let mut not_run = Vec::new();
    // The Go sidecars that can be built here, with their binaries.
    let mut go = Vec::new();
    // Why a Go sidecar is not in the Go configuration, by its workload (`Workload::key`): that
    // workload then has no Go figure, and the report says why.
    let mut go_absent = BTreeMap::new();
    for sidecar in &sidecars {
        let binary = sidecar.sidecar.binary;
        let mut absent = |why: String| {
            if let Some(workload) = sidecar.sidecar.workload {
                go_absent.insert(workload.key().to_string(), why);
            }
        };
        if let Some(reason) = &sidecar.unavailable {
            not_run.push(format!(
                "upstream Go {binary} {}: {reason} (marked unavailable in {VERSIONS_FILE})",
                sidecar.version
            ));
            absent(format!(
                "upstream Go {binary} {} cannot be built here: {reason} (see {VERSIONS_FILE})",
                sidecar.version
            ));
        } else if options.only == Only::Ours {
            absent("the Go configuration was not run (--only ours)".to_string());
        } else {
            match tools::ensure(binary) {
                Ok(path) => go.push((sidecar.clone(), path)),
                Err(e) => {
                    not_run.push(format!("upstream Go {binary} {}: {e:#}", sidecar.version));
                    absent(format!(
                        "upstream Go {binary} {} could not be built: {e:#}",
                        sidecar.version
                    ));
                }
            }
        }
    }
    if options.only != Only::Ours && go.is_empty() {
        bail!("no upstream Go sidecar can be built here: nothing to compare against");
    }
    // Our rows: those whose binary exists (a sidecar still being written has none yet, and
    // then neither csi-sidecars has its controller).
    let mut ours_rows: Vec<&'static Sidecar> = Vec::new();
    let ours_dir = if options.only == Only::Go {
        None
    } else {
        let sh = Shell::new()?;
        sh.change_dir(&root);
        let profile: &[&str] = if options.debug { &[] } else { &["--release"] };
        eprintln!("bench: building ours ({})", profile_name(options.debug));
        let packages: Vec<String> = std::iter::once("csi-sidecars")
            .chain(SIDECARS.iter().map(|s| s.package))
            .flat_map(|p| ["-p".to_string(), p.to_string()])
            .collect();
        cmd!(sh, "cargo build --quiet {profile...} {packages...} --bins").run()?;
        let dir = target.join(profile_name(options.debug));
        for sidecar in SIDECARS {
            if dir.join(sidecar.binary).exists() {
                ours_rows.push(sidecar);
            } else {
                not_run.push(format!(
                    "our {}: package {} builds no such binary yet",
                    sidecar.binary, sidecar.package
                ));
            }
        }
        Some(dir)
    };

    let info = cluster::up()?;
    let audit_log = info.state_dir.join("logs/audit.log");
    let stamp = timestamp();
    let out = target.join("bench").join(&stamp);
    std::fs::create_dir_all(&out)?;
    let work = tempfile::tempdir()?;

    let mut configs = Vec::new();
    if !go.is_empty() {
        configs.push(Config::go(&go, &sidecars));
    }
    if let Some(dir) = &ours_dir {
        configs.push(Config::ours_split(dir, &ours_rows));
        configs.push(Config::ours_aio(dir, &ours_rows));
    }
    let settings = Settings {
        command: std::iter::once("cargo xtask bench".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        n: options.n,
        scale_pvs: options.scale_pvs.clone(),
        scale_only: options.scale_only,
        runs: options.runs,
        only: format!("{:?}", options.only).to_lowercase(),
        profile: profile_name(options.debug).to_string(),
        qps: QPS.into(),
        burst: BURST.into(),
        workers: WORKERS.into(),
        driver: format!(
            "csi-mock-driver (k8s.io/kubernetes e2e mock) --name={}",
            workload::DRIVER
        ),
    };
    eprintln!(
        "bench: {} configuration(s) x {} run(s), N = {}; output {}",
        configs.len(),
        options.runs,
        options.n,
        out.display()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (results, scale) = rt.block_on(async {
        let client = cluster::api::client(&info.kubeconfig).await?;
        let has_workload = SIDECARS.iter().any(|s| s.workload.is_some());
        let results = if options.scale_only || !has_workload {
            Vec::new()
        } else {
            workload_runs(
                &configs,
                &options,
                &driver_bin,
                &info,
                &audit_log,
                work.path(),
                &client,
            )
            .await?
        };
        let scale = scale_runs(
            &configs,
            &options,
            &driver_bin,
            &info,
            &audit_log,
            work.path(),
            &client,
        )
        .await?;
        anyhow::Ok((results, scale))
    })?;

    let mut binaries = Vec::new();
    for (sidecar, path) in &go {
        binaries.push(report::Binary::new("go", sidecar.sidecar.binary, path)?);
    }
    if let Some(dir) = &ours_dir {
        for name in ours_rows.iter().map(|s| s.binary).chain(["csi-sidecars"]) {
            binaries.push(report::Binary::new("ours", name, &dir.join(name))?);
        }
    }
    let report = report::Report::new(
        stamp,
        settings,
        SIDECARS.iter().map(|s| s.binary.to_string()).collect(),
        configs.iter().map(|c| c.describe()).collect(),
        results,
        scale,
        binaries,
        not_run,
        go_absent,
        started.elapsed().as_secs_f64(),
    );
    report.write(&out)?;
    println!("{}", report.summary());
    println!("report: {}", out.join("report.md").display());
    if options.only == Only::All && !options.debug && !options.scale_only {
        let readme = root.join("README.md");
        report.write_readme(&readme, &out)?;
        println!("README table: {}", readme.display());
    }
    Ok(())
}

/// `--health-monitor`: [`health`] alone.
fn run_health_monitor(options: &Options, root: &Path, target: &Path) -> anyhow::Result<()> {
    let (bin_dir, build) = match &options.bin_dir {
        Some(dir) => (dir.clone(), format!("the binary in {}", dir.display())),
        None => {
            let sh = Shell::new()?;
            sh.change_dir(root);
            let profile: &[&str] = if options.debug { &[] } else { &["--release"] };
            eprintln!(
                "bench: building csi-external-health-monitor-controller ({})",
                profile_name(options.debug)
            );
            cmd!(
                sh,
                "cargo build --quiet {profile...} -p external-health-monitor --bins"
            )
            .run()?;
            (
                target.join(profile_name(options.debug)),
                format!("{} build", profile_name(options.debug)),
            )
        }
    };
    let info = cluster::up()?;
    let audit_log = info.state_dir.join("logs/audit.log");
    let figures = health::run(options.n, options.events, &bin_dir, &audit_log, &info)?;
    let text = figures.markdown(options.n, &build);
    let out = target
        .join("bench")
        .join(format!("{}-health-monitor", timestamp()));
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("report.md"), &text)?;
    println!("{text}");
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

/// The workload: every configuration `--runs` times, interleaved.
#[allow(clippy::too_many_arguments)]
async fn workload_runs(
    configs: &[Config],
    options: &Options,
    driver_bin: &Path,
    info: &cluster::ClusterInfo,
    audit_log: &Path,
    work: &Path,
    client: &kube::Client,
) -> anyhow::Result<Vec<RunResult>> {
    workload::setup(client, options.n).await?;
    provision::setup(client).await?;
    expand::setup(client).await?;
    let mut results = Vec::new();
    let outcome: anyhow::Result<()> = async {
        // Interleaved (run 1 of each, run 2 of each, ...) so drift hits all alike.
        for run in 0..options.runs {
            for config in configs {
                eprintln!("bench: run {}/{}: {}", run + 1, options.runs, config.key);
                let result = config
                    .run(run, options, driver_bin, info, audit_log, work, client)
                    .await
                    .with_context(|| format!("{} run {}", config.key, run + 1))?;
                eprintln!(
                    "bench:   attach {:.2}s p99 {:.0}ms, detach {:.2}s, {} API requests",
                    result.attach.total_s,
                    result.attach.quantile_ms(0.99),
                    result.detach.total_s,
                    result.api.total
                );
                if let Some(p) = &result.provision {
                    eprintln!(
                        "bench:   provision {:.2}s p50 {:.0}ms p99 {:.0}ms, volumes deleted {:.2}s, {:.1} API requests per claim, {:.2} CPU s",
                        p.bound.total_s,
                        p.bound.quantile_ms(0.5),
                        p.bound.quantile_ms(0.99),
                        p.deleted.total_s,
                        p.requests_per_claim(),
                        p.cpu_s
                    );
                }
                if let Some(e) = &result.expand {
                    eprintln!(
                        "bench:   expand {} {:.2}s p50 {:.0}ms p99 {:.0}ms, {:.1} API requests per expansion, {:.2} CPU s, peak {:.1} MiB",
                        e.n,
                        e.done.total_s,
                        e.done.quantile_ms(0.5),
                        e.done.quantile_ms(0.99),
                        e.requests_per_expansion(),
                        e.cpu_s,
                        e.peak_rss_kib as f64 / 1024.0
                    );
                }
                results.push(result);
            }
        }
        Ok(())
    }
    .await;
    workload::cleanup(client).await?;
    provision::cleanup(client).await?;
    expand::cleanup(client).await?;
    outcome.map(|()| results)
}

/// Idle RSS with 0, 5 000 and 20 000 (quick: 1 000, 5 000) PVs and as many PVCs present: the
/// objects are created first, then each configuration is started `--runs` times (interleaved)
/// and measured once its caches synced. The objects are removed at the end, whatever happened.
#[allow(clippy::too_many_arguments)]
async fn scale_runs(
    configs: &[Config],
    options: &Options,
    driver_bin: &Path,
    info: &cluster::ClusterInfo,
    audit_log: &Path,
    work: &Path,
    client: &kube::Client,
) -> anyhow::Result<Vec<ScaleResult>> {
    workload::cleanup_scale(client).await?;
    let mut results = Vec::new();
    let outcome: anyhow::Result<()> = async {
        let mut present = 0;
        for &count in &options.scale_pvs {
            if count > present {
                let t = Instant::now();
                workload::create_scale_objects(client, present, count).await?;
                eprintln!(
                    "bench: scale: {} PVs and {} PVCs created in {:.1}s",
                    count - present,
                    count - present,
                    t.elapsed().as_secs_f64()
                );
                present = count;
            }
            let in_cluster = workload::count_scale_kinds(client).await?;
            for run in 0..options.runs {
                for config in configs {
                    let result = config
                        .idle(run, count, &in_cluster, driver_bin, info, audit_log, work)
                        .await
                        .with_context(|| {
                            format!("scale, {count} objects: {} run {}", config.key, run + 1)
                        })?;
                    eprintln!(
                        "bench: scale {count} PVs+PVCs, run {}/{}: {} idle {:.1} MiB",
                        run + 1,
                        options.runs,
                        config.key,
                        result.processes.iter().map(|p| p.idle_rss_kib).sum::<u64>() as f64
                            / 1024.0
                    );
                    results.push(result);
                }
            }
        }
        Ok(())
    }
    .await;
    workload::cleanup_scale(client).await?;
    outcome.map(|()| results)
}

fn profile_name(debug: bool) -> &'static str {
    if debug { "debug" } else { "release" }
}

/// UTC `YYYYMMDD-HHMMSS`.
pub(crate) fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// How one process of a configuration is started: a binary running one row of [`SIDECARS`],
/// or csi-sidecars running several.
#[derive(Debug, Clone)]
struct ProcessSpec {
    name: &'static str,
    binary: PathBuf,
    /// The rows it runs.
    sidecars: Vec<&'static Sidecar>,
    /// csi-sidecars: `--controllers=` the rows.
    aggregate: bool,
}

impl ProcessSpec {
    fn one(name: &'static str, binary: PathBuf, sidecar: &'static Sidecar) -> Self {
        ProcessSpec {
            name,
            binary,
            sidecars: vec![sidecar],
            aggregate: false,
        }
    }

    /// The kinds of scale object it caches.
    fn caches(&self) -> Vec<ScaleKind> {
        let mut kinds: Vec<ScaleKind> = self
            .sidecars
            .iter()
            .flat_map(|s| s.caches.iter().copied())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }
}

#[derive(Debug)]
struct Config {
    key: &'static str,
    title: String,
    processes: Vec<ProcessSpec>,
    /// User agents of its API clients (program names).
    agents: Vec<&'static str>,
}

/// Idle RSS of one configuration with `count` scale PVs and as many PVCs present.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleResult {
    pub config: String,
    pub count: usize,
    /// All objects of each kind in the cluster at the time (others' included).
    pub in_cluster: BTreeMap<ScaleKind, usize>,
    pub run: usize,
    pub processes: Vec<IdleProcess>,
    /// Objects the configuration caches: of the kinds any of its processes caches.
    pub cached: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleProcess {
    pub name: String,
    pub idle_rss_kib: u64,
    /// Objects in the cluster of the kinds it caches.
    pub cached: usize,
}

/// Per-run results of one configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub config: String,
    pub run: usize,
    pub processes: Vec<ProcessResult>,
    pub attach: workload::Phase,
    pub detach: workload::Phase,
    pub api: audit::ApiLoad,
    /// The provisioning workload, when the configuration runs a provisioner.
    #[serde(default)]
    pub provision: Option<ProvisionResult>,
    /// The expansion workload, when the configuration runs a resizer and a provisioner.
    #[serde(default)]
    pub expand: Option<ExpandResult>,
}

/// One run of the provisioning workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvisionResult {
    pub n: usize,
    /// Claim created -> Bound.
    pub bound: workload::Phase,
    /// Claim deleted -> its volume gone.
    pub deleted: workload::Phase,
    /// The configuration's requests while provisioning and deleting.
    pub api: audit::ApiLoad,
    /// CPU seconds of all the configuration's processes while provisioning and deleting.
    pub cpu_s: f64,
}

impl ProvisionResult {
    pub fn requests_per_claim(&self) -> f64 {
        self.api.total as f64 / self.n.max(1) as f64
    }
}

/// One run of the expansion workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpandResult {
    /// Claims expanded.
    pub n: usize,
    /// Request raised -> volume and claim at the new capacity.
    pub done: workload::Phase,
    /// The configuration's requests from the first patch until the last claim was done and
    /// its requests stopped for a second.
    pub api: audit::ApiLoad,
    /// CPU seconds of all the configuration's processes over the same window.
    pub cpu_s: f64,
    /// The sum of its processes' peak RSS over the same window, KiB.
    pub peak_rss_kib: u64,
}

impl ExpandResult {
    pub fn requests_per_expansion(&self) -> f64 {
        self.api.total as f64 / self.n.max(1) as f64
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessResult {
    pub name: String,
    pub idle_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub cpu_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigInfo {
    pub key: String,
    pub title: String,
    pub processes: Vec<String>,
    /// One example command line per process (paths as on this machine).
    pub commands: Vec<String>,
    /// Per process, the kinds of scale object it caches.
    pub caches: Vec<Vec<ScaleKind>>,
}

impl Config {
    /// The upstream sidecars that can be built here (`built`), one process each.
    fn go(built: &[(GoSidecar, PathBuf)], all: &[GoSidecar]) -> Self {
        let names = |v: &mut dyn Iterator<Item = &GoSidecar>| {
            v.map(|s| format!("{} {}", s.sidecar.binary, s.version))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let missing = names(&mut all.iter().filter(|s| s.unavailable.is_some()));
        let mut title = format!("upstream Go {}", names(&mut built.iter().map(|(s, _)| s)));
        if !missing.is_empty() {
            title.push_str(&format!(" ({missing}: unavailable here)"));
        }
        Config {
            key: "go",
            title,
            processes: built
                .iter()
                .map(|(s, path)| ProcessSpec::one(s.sidecar.binary, path.clone(), s.sidecar))
                .collect(),
            agents: built.iter().map(|(s, _)| s.sidecar.binary).collect(),
        }
    }

    /// Our binary of each row in `rows`, one process each.
    fn ours_split(dir: &Path, rows: &[&'static Sidecar]) -> Self {
        Config {
            key: "ours-split",
            title: "ours, one process per sidecar".into(),
            processes: rows
                .iter()
                .map(|s| ProcessSpec::one(s.binary, dir.join(s.binary), s))
                .collect(),
            agents: rows.iter().map(|s| s.binary).collect(),
        }
    }

    /// csi-sidecars with the controller of each row in `rows`.
    fn ours_aio(dir: &Path, rows: &[&'static Sidecar]) -> Self {
        let controllers: Vec<&str> = rows.iter().map(|s| s.controller).collect();
        Config {
            key: "ours-aio",
            title: format!("ours, csi-sidecars --controllers={}", controllers.join(",")),
            processes: vec![ProcessSpec {
                name: "csi-sidecars",
                binary: dir.join("csi-sidecars"),
                sidecars: rows.to_vec(),
                aggregate: true,
            }],
            // Each controller's clients say its upstream binary name, the process client
            // csi-sidecars.
            agents: std::iter::once("csi-sidecars")
                .chain(rows.iter().map(|s| s.binary))
                .collect(),
        }
    }

    /// Whether one of its processes runs a row with `workload`.
    fn runs(&self, workload: Workload) -> bool {
        self.processes
            .iter()
            .flat_map(|p| &p.sidecars)
            .any(|s| s.workload == Some(workload))
    }

    /// The resources whose watches say the configuration's caches synced.
    fn watches(&self) -> Vec<&'static str> {
        let mut watches: Vec<&'static str> = self
            .processes
            .iter()
            .flat_map(|p| p.sidecars.iter().flat_map(|s| s.watches.iter().copied()))
            .collect();
        watches.sort_unstable();
        watches.dedup();
        watches
    }

    fn describe(&self) -> ConfigInfo {
        let paths = Paths {
            socket: PathBuf::from("/tmp/csi.sock"),
            kubeconfig: PathBuf::from("<kubeconfig>"),
            registration: PathBuf::from("/tmp/registration"),
        };
        ConfigInfo {
            key: self.key.into(),
            title: self.title.clone(),
            processes: self.processes.iter().map(|p| p.name.to_string()).collect(),
            commands: self
                .processes
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p.name,
                        args(p, &paths, "127.0.0.1:<port>").join(" ")
                    )
                })
                .collect(),
            caches: self.processes.iter().map(ProcessSpec::caches).collect(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        run: usize,
        options: &Options,
        driver_bin: &Path,
        info: &cluster::ClusterInfo,
        audit_log: &Path,
        work: &Path,
        client: &kube::Client,
    ) -> anyhow::Result<RunResult> {
        let dir = work.join(format!("{}-{run}", self.key));
        let paths = Paths {
            socket: dir.join("csi.sock"),
            kubeconfig: info.kubeconfig.clone(),
            registration: dir.join("registration"),
        };
        std::fs::create_dir_all(&paths.registration)?;
        // A fresh driver each time: the volume ids are then the same in every run.
        let driver = ChildProcess::spawn(
            driver_bin,
            [
                format!("--endpoint={}", paths.socket.display()),
                format!("--name={}", workload::DRIVER),
                "-v=0".to_string(),
            ],
        )?;
        wait_for_path(&paths.socket, WAIT).await?;
        workload::create_volumes(&paths.socket, options.n).await?;

        workload::reset_pvs(client).await?;
        let from = audit::offset(audit_log);
        let mut children = Vec::new();
        for spec in &self.processes {
            let endpoint = format!("127.0.0.1:{}", free_port());
            let child = ChildProcess::spawn(&spec.binary, args(spec, &paths, &endpoint))?;
            children.push(child);
        }
        let result = self
            .measure(run, options, audit_log, from, &mut children, client)
            .await;
        if result.is_err() {
            for (spec, child) in self.processes.iter().zip(&children) {
                eprintln!("--- {} output:\n{}", spec.name, tail(&child.logs(), 40));
            }
            eprintln!("--- driver output:\n{}", tail(&driver.logs(), 20));
        }
        for child in &mut children {
            let _ = child.signal("TERM");
            if child.wait(Duration::from_secs(10)).await.is_err() {
                let _ = child.signal("KILL");
            }
        }
        drop(driver);
        // Whatever a failed run left behind, keep the PVs for the next one.
        let lp = kube::api::ListParams::default().labels("csi-bench=true");
        let vas: kube::Api<k8s_openapi::api::storage::v1::VolumeAttachment> =
            kube::Api::all(client.clone());
        if !vas.list_metadata(&lp).await?.items.is_empty() {
            workload::cleanup(client).await?;
            workload::setup(client, options.n).await?;
        }
        result
    }

    /// Waits until the caches synced: every watch of its rows was opened (a watch opens after
    /// its list), then [`SETTLE`].
    async fn wait_synced(
        &self,
        audit_log: &Path,
        from: u64,
        children: &mut [ChildProcess],
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        let watches = self.watches();
        while !watches
            .iter()
            .all(|r| audit::watch_seen(audit_log, from, AUDIT_USER, &self.agents, r))
        {
            for child in children.iter_mut() {
                if !child.is_running() {
                    bail!("process {} exited early", child.id());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "not every watch of {watches:?} was opened by {:?} within {WAIT:?}",
                    self.agents
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(SETTLE).await;
        Ok(())
    }

    /// Starts the configuration against a fresh driver, waits until its caches synced, reads
    /// the RSS of each process, stops it.
    #[allow(clippy::too_many_arguments)]
    async fn idle(
        &self,
        run: usize,
        count: usize,
        in_cluster: &BTreeMap<ScaleKind, usize>,
        driver_bin: &Path,
        info: &cluster::ClusterInfo,
        audit_log: &Path,
        work: &Path,
    ) -> anyhow::Result<ScaleResult> {
        let dir = work.join(format!("scale-{}-{count}-{run}", self.key));
        let paths = Paths {
            socket: dir.join("csi.sock"),
            kubeconfig: info.kubeconfig.clone(),
            registration: dir.join("registration"),
        };
        std::fs::create_dir_all(&paths.registration)?;
        let driver = ChildProcess::spawn(
            driver_bin,
            [
                format!("--endpoint={}", paths.socket.display()),
                format!("--name={}", workload::DRIVER),
                "-v=0".to_string(),
            ],
        )?;
        wait_for_path(&paths.socket, WAIT).await?;
        let from = audit::offset(audit_log);
        let mut children = Vec::new();
        for spec in &self.processes {
            let endpoint = format!("127.0.0.1:{}", free_port());
            children.push(ChildProcess::spawn(
                &spec.binary,
                args(spec, &paths, &endpoint),
            )?);
        }
        let cached = |kinds: &[ScaleKind]| -> usize {
            kinds
                .iter()
                .map(|k| in_cluster.get(k).copied().unwrap_or(0))
                .sum()
        };
        let mut all_kinds: Vec<ScaleKind> = self
            .processes
            .iter()
            .flat_map(ProcessSpec::caches)
            .collect();
        all_kinds.sort_unstable();
        all_kinds.dedup();
        let result = match self.wait_synced(audit_log, from, &mut children).await {
            Ok(()) => Ok(ScaleResult {
                config: self.key.to_string(),
                count,
                in_cluster: in_cluster.clone(),
                run,
                processes: self
                    .processes
                    .iter()
                    .zip(&children)
                    .map(|(spec, child)| IdleProcess {
                        name: spec.name.to_string(),
                        idle_rss_kib: procfs::rss_kib(child.id()).unwrap_or(0),
                        cached: cached(&spec.caches()),
                    })
                    .collect(),
                cached: cached(&all_kinds),
            }),
            Err(e) => {
                for (spec, child) in self.processes.iter().zip(&children) {
                    eprintln!("--- {} output:\n{}", spec.name, tail(&child.logs(), 40));
                }
                Err(e)
            }
        };
        for child in &mut children {
            let _ = child.signal("TERM");
            if child.wait(Duration::from_secs(10)).await.is_err() {
                let _ = child.signal("KILL");
            }
        }
        drop(driver);
        result
    }

    async fn measure(
        &self,
        run: usize,
        options: &Options,
        audit_log: &Path,
        from: u64,
        children: &mut [ChildProcess],
        client: &kube::Client,
    ) -> anyhow::Result<RunResult> {
        self.wait_synced(audit_log, from, children).await?;
        let pids: Vec<u32> = children.iter().map(ChildProcess::id).collect();
        let idle: Vec<u64> = pids
            .iter()
            .map(|pid| procfs::rss_kib(*pid).unwrap_or(0))
            .collect();
        let cpu_before: Vec<u64> = pids
            .iter()
            .map(|pid| procfs::cpu_ticks(*pid).unwrap_or(0))
            .collect();
        let sampler = procfs::Sampler::start(pids.clone());
        let timings = workload::attach_detach(client, options.n).await;
        let provision = match &timings {
            Ok(_) if self.runs(Workload::ProvisionDelete) => {
                Some(self.provision(options.n, audit_log, &pids, client).await)
            }
            _ => None,
        };
        let expand = match (&timings, &provision) {
            (Ok(_), Some(Ok(_))) if self.runs(Workload::Expand) => Some(
                self.expand(expand::count(options.n), audit_log, &pids, client)
                    .await,
            ),
            _ => None,
        };
        let peaks = sampler.finish();
        let cpu_after: Vec<u64> = pids
            .iter()
            .map(|pid| procfs::cpu_ticks(*pid).unwrap_or(0))
            .collect();
        let (attach, detach) = timings?;
        let provision = match provision {
            Some(Ok(result)) => Some(result),
            Some(Err(e)) => {
                // The next run starts without the claims and volumes this one left.
                provision::clear(client).await?;
                return Err(e);
            }
            None => None,
        };
        let expand = match expand {
            Some(Ok(result)) => Some(result),
            Some(Err(e)) => {
                expand::clear(client).await?;
                return Err(e);
            }
            None => None,
        };
        // Let the audit backend write the last events.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let api = audit::load_since(audit_log, from, AUDIT_USER, &self.agents)?;
        let processes = self
            .processes
            .iter()
            .enumerate()
            .map(|(i, spec)| ProcessResult {
                name: spec.name.to_string(),
                idle_rss_kib: idle[i],
                peak_rss_kib: peaks[i].max(idle[i]),
                cpu_s: cpu_after[i].saturating_sub(cpu_before[i]) as f64 / procfs::USER_HZ,
            })
            .collect();
        Ok(RunResult {
            config: self.key.to_string(),
            run,
            processes,
            attach,
            detach,
            api,
            provision,
            expand,
        })
    }

    /// The provisioning workload, with the configuration's requests and CPU while it runs.
    async fn provision(
        &self,
        n: usize,
        audit_log: &Path,
        pids: &[u32],
        client: &kube::Client,
    ) -> anyhow::Result<ProvisionResult> {
        let cpu = || -> u64 {
            pids.iter()
                .map(|pid| procfs::cpu_ticks(*pid).unwrap_or(0))
                .sum()
        };
        let from = audit::offset(audit_log);
        let before = cpu();
        let (bound, deleted) = provision::provision_delete(client, n).await?;
        let cpu_s = cpu().saturating_sub(before) as f64 / procfs::USER_HZ;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let api = audit::load_since(audit_log, from, AUDIT_USER, &self.agents)?;
        Ok(ProvisionResult {
            n,
            bound,
            deleted,
            api,
            cpu_s,
        })
    }

    /// Waits until the configuration made no request for a second, at most [`WAIT`].
    async fn quiet(&self, audit_log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let from = audit::offset(audit_log);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let load = audit::load_since(audit_log, from, AUDIT_USER, &self.agents)?;
            if load.total == 0 || Instant::now() > deadline {
                return Ok(());
            }
        }
    }

    /// The expansion workload: `n` claims provisioned (not measured), then expanded, with the
    /// configuration's requests, CPU and peak RSS from the first patch until the last claim
    /// is done and the configuration has made no request for a second (its Events); then
    /// deleted.
    async fn expand(
        &self,
        n: usize,
        audit_log: &Path,
        pids: &[u32],
        client: &kube::Client,
    ) -> anyhow::Result<ExpandResult> {
        let cpu = || -> u64 {
            pids.iter()
                .map(|pid| procfs::cpu_ticks(*pid).unwrap_or(0))
                .sum()
        };
        expand::provision(client, n).await?;
        // The provisioner's Events about these claims are written behind its rate limit, after
        // they are Bound: let them out of the window.
        self.quiet(audit_log).await?;
        let from = audit::offset(audit_log);
        let before = cpu();
        let sampler = procfs::Sampler::start(pids.to_vec());
        let done = expand::expand(client, n).await;
        if done.is_ok() {
            // The Events of the expansions, written behind the client's rate limit.
            self.quiet(audit_log).await?;
        }
        let peaks = sampler.finish();
        let cpu_s = cpu().saturating_sub(before) as f64 / procfs::USER_HZ;
        let done = done?;
        let api = audit::load_since(audit_log, from, AUDIT_USER, &self.agents)?;
        expand::delete(client, n).await?;
        Ok(ExpandResult {
            n,
            done,
            api,
            cpu_s,
            peak_rss_kib: peaks.iter().sum(),
        })
    }
}

struct Paths {
    socket: PathBuf,
    kubeconfig: PathBuf,
    registration: PathBuf,
}

/// The flags of one process: the addresses, then its rows' flags (the same for Go and ours),
/// each once; csi-sidecars also gets `--controllers`.
fn args(spec: &ProcessSpec, paths: &Paths, endpoint: &str) -> Vec<String> {
    let mut args = vec![
        format!("--csi-address={}", paths.socket.display()),
        format!("--http-endpoint={endpoint}"),
    ];
    if spec.aggregate {
        let controllers: Vec<&str> = spec.sidecars.iter().map(|s| s.controller).collect();
        args.push(format!("--controllers={}", controllers.join(",")));
    }
    for sidecar in &spec.sidecars {
        for flag in (sidecar.flags)(paths) {
            if !args.contains(&flag) {
                args.push(flag);
            }
        }
    }
    args
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags() {
        let o = parse(&strings(&["--quick"])).unwrap().unwrap();
        assert_eq!((o.n, o.runs, o.only), (200, 3, Only::All));
        let o = parse(&strings(&[
            "--quick", "--n", "5", "--runs=1", "--only", "ours",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((o.n, o.runs, o.only), (5, 1, Only::Ours));
        assert_eq!(o.scale_pvs, [0, 1000, 5000]);
        assert!(!o.scale_only);
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!((o.n, o.scale_pvs.as_slice()), (1000, &[0, 5000, 20000][..]));
        let o = parse(&strings(&["--scale", "0,20"])).unwrap().unwrap();
        assert_eq!(o.scale_pvs, [0, 20]);
        assert!(
            parse(&strings(&["--scale-only"]))
                .unwrap()
                .unwrap()
                .scale_only
        );
        assert!(parse(&strings(&["--only", "rust"])).is_err());
        assert!(parse(&strings(&["--n", "0"])).is_err());
        assert!(parse(&strings(&["--frobnicate"])).is_err());
        assert!(parse(&strings(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn every_process_gets_its_rows_flags_and_csi_sidecars_all_of_them() {
        let paths = Paths {
            socket: "/s".into(),
            kubeconfig: "/k".into(),
            registration: "/r".into(),
        };
        let dir = Path::new("/bin");
        let rows: Vec<&'static Sidecar> = SIDECARS.iter().collect();
        let split = Config::ours_split(dir, &rows);
        let aio = Config::ours_aio(dir, &rows);
        let all = args(&aio.processes[0], &paths, "e");
        assert!(
            all.contains(
                &"--controllers=attacher,provisioner,resizer,livenessprobe,node-driver-registrar"
                    .to_string()
            )
        );
        // Each row's own worker flag, in csi-sidecars too.
        assert!(all.contains(&"--worker-threads=10".to_string()));
        assert!(all.contains(&"--workers=10".to_string()));
        let resizer = args(&split.processes[2], &paths, "e");
        assert!(!resizer.contains(&"--worker-threads=10".to_string()));
        for spec in &split.processes {
            for flag in args(spec, &paths, "e") {
                assert!(all.contains(&flag), "{flag}");
            }
        }
        let attacher = args(&split.processes[0], &paths, "e");
        assert!(attacher.contains(&"--kube-api-qps=50".to_string()));
        assert_eq!(
            all.iter()
                .filter(|a| a.starts_with("--csi-address"))
                .count(),
            1
        );
        // A row's watches say when its caches synced; what it caches drives the per-object
        // figures.
        assert_eq!(
            aio.watches(),
            [
                "persistentvolumeclaims",
                "persistentvolumes",
                "pods",
                "storageclasses",
                "volumeattachments",
                "volumeattributesclasses"
            ]
        );
        assert_eq!(aio.processes[0].caches(), ScaleKind::ALL);
        assert_eq!(split.processes[0].caches(), [ScaleKind::PersistentVolume]);
        assert!(split.processes[3].caches().is_empty());
        assert_eq!(
            split.agents,
            [
                "csi-attacher",
                "csi-provisioner",
                "csi-resizer",
                "livenessprobe",
                "csi-node-driver-registrar"
            ]
        );
        assert!(
            aio.runs(Workload::AttachDetach)
                && aio.runs(Workload::ProvisionDelete)
                && aio.runs(Workload::Expand)
        );
        // A sidecar whose binary is not built yet is left out of ours, workload included.
        let without: Vec<&'static Sidecar> = SIDECARS
            .iter()
            .filter(|s| s.binary != "csi-provisioner")
            .collect();
        let aio = Config::ours_aio(dir, &without);
        assert!(!aio.runs(Workload::ProvisionDelete));
        assert!(args(&aio.processes[0], &paths, "e").contains(
            &"--controllers=attacher,resizer,livenessprobe,node-driver-registrar".to_string()
        ));
    }

    #[test]
    fn go_availability_comes_from_the_versions_file() {
        let text = include_str!("../../release-tools/e2e-versions.toml");
        let sidecars = go_sidecars(text).unwrap();
        let summary: Vec<(&str, &str, bool)> = sidecars
            .iter()
            .map(|s| {
                (
                    s.sidecar.binary,
                    s.version.as_str(),
                    s.unavailable.is_some(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("csi-attacher", "v4.13.0", false),
                ("csi-provisioner", "v6.4.0", false),
                ("csi-resizer", "v2.3.0", false),
                ("livenessprobe", "v2.20.0", true),
                ("csi-node-driver-registrar", "v2.17.0", true),
            ]
        );
        let text = text.replace(
            "unavailable = \"the Go module proxy refuses github.com/kubernetes-csi/livenessprobe",
            "# ",
        );
        assert!(go_sidecars(&text).unwrap()[3].unavailable.is_none());
    }

    #[test]
    fn timestamps_are_sortable() {
        let t = timestamp();
        assert_eq!(t.len(), 15, "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
