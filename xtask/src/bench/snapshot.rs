//! `cargo xtask bench --snapshots`: volume snapshots, upstream's Go snapshot-controller and
//! csi-snapshotter (pinned in release-tools/e2e-versions.toml) against ours, on the local
//! control plane with the mock driver. Configurations, each a snapshot-controller and a
//! snapshotter:
//! 1. `go`: upstream's two Go binaries;
//! 2. `ours-split`: our `snapshot-controller` and `csi-snapshotter`;
//! 3. `ours-aio`: our `snapshot-controller` and `csi-sidecars --controllers=snapshotter`.
//!
//! Ours are left out (and the report says so) while their binaries are not built.
//!
//! Per run and configuration: idle RSS once the watches are open, then N VolumeSnapshots of
//! one claim created at once (timed until each is readyToUse) and deleted at once (timed until
//! each is gone, the phase ending when the driver's contents are gone too), with the
//! configuration's API requests (audit log), CPU seconds and peak RSS over both phases. Then
//! the idle measurement: RSS of each configuration, once its watches are open and it has made
//! no request for two seconds, with 0 and 10 000 (quick: 1 000) ready VolumeSnapshots and as
//! many contents present. The report (median of the runs, min and max) goes to
//! `target/bench/<timestamp>/snapshots.{md,json}`; the README is not touched.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use csi_test_support::{ChildProcess, free_port, wait_for_path};
use serde::Serialize;
use xshell::{Shell, cmd};

use super::snapshot_workload as objects;
use super::workload::{self, DRIVER, Phase};
use super::{audit, procfs};
use crate::{cluster, tools};

pub const USAGE: &str = "\
usage: cargo xtask bench --snapshots [--quick] [--only ours|go|all] [--n N] [--runs R]
                         [--debug | --bin-dir DIR] [--scale LIST]

  --quick       N = 100 instead of 500, idle with 0 and 1000 snapshots instead of 0 and 10000
  --only        which configurations: ours (split and all-in-one), go, or all (default)
  --n N         VolumeSnapshots created and deleted per run
  --runs R      runs per configuration (default 3); figures are medians, with min and max
  --debug       debug builds of ours (fast to build; sizes and CPU are then not comparable)
  --bin-dir DIR our binaries from DIR instead of a build, e.g. the static binaries of
                `cargo xtask release` (target/release-artifacts/vX.Y.Z/bin/linux-amd64)
  --scale LIST  the numbers of ready VolumeSnapshots (and contents) of the idle measurement

Writes target/bench/<timestamp>/snapshots.{md,json}.
";

const QPS: &str = "50";
const BURST: &str = "100";
const WORKERS: &str = "10";
const AUDIT_USER: &str = "admin";
/// The user agents of both configurations' API clients.
const AGENTS: &[&str] = &["snapshot-controller", "csi-snapshotter", "csi-sidecars"];
/// The watches that say a configuration's caches synced.
const WATCHES: &[&str] = &["volumesnapshots", "volumesnapshotcontents"];
const WAIT: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Only {
    Ours,
    Go,
    All,
}

#[derive(Debug)]
struct Options {
    n: usize,
    runs: usize,
    only: Only,
    debug: bool,
    scale: Vec<usize>,
    bin_dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut quick = false;
    let mut n = None;
    let mut runs = 3;
    let mut only = Only::All;
    let mut debug = false;
    let mut scale: Option<Vec<usize>> = None;
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
            "--snapshots" => {}
            "--quick" => quick = true,
            "--debug" => debug = true,
            "--bin-dir" => bin_dir = Some(std::path::absolute(PathBuf::from(value()?))?),
            "--n" => n = Some(value()?.parse().context("--n")?),
            "--runs" => runs = value()?.parse().context("--runs")?,
            "--scale" => {
                let list = value()?;
                scale = Some(
                    list.split(',')
                        .map(|n| n.trim().parse::<usize>())
                        .collect::<Result<_, _>>()
                        .with_context(|| format!("--scale {list:?}: a list of counts"))?,
                );
            }
            "--only" => {
                only = match value()?.as_str() {
                    "ours" => Only::Ours,
                    "go" => Only::Go,
                    "all" => Only::All,
                    other => bail!("--only {other:?}: ours, go or all"),
                }
            }
            "-h" | "--help" | "help" => return Ok(None),
            other => bail!("cargo xtask bench --snapshots: unknown argument {other:?}\n{USAGE}"),
        }
    }
    let n = n.unwrap_or(if quick { 100 } else { 500 });
    if n == 0 || runs == 0 {
        bail!("--n and --runs must be at least 1");
    }
    if bin_dir.is_some() && debug {
        bail!("--bin-dir and --debug: one or the other");
    }
    let scale = scale.unwrap_or_else(|| {
        if quick {
            vec![0, 1000]
        } else {
            vec![0, 10_000]
        }
    });
    Ok(Some(Options {
        n,
        runs,
        only,
        debug,
        scale,
        bin_dir,
    }))
}

/// One process of a configuration.
#[derive(Debug, Clone)]
struct Process {
    name: &'static str,
    binary: PathBuf,
    /// Whether it talks to the driver.
    csi: bool,
    /// Besides the common flags.
    args: Vec<String>,
}

#[derive(Debug, Clone)]
struct Config {
    key: &'static str,
    title: String,
    processes: Vec<Process>,
}

impl Config {
    fn args(process: &Process, kubeconfig: &Path, socket: &Path) -> Vec<String> {
        let mut args = vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--kube-api-qps={QPS}"),
            format!("--kube-api-burst={BURST}"),
            format!("--worker-threads={WORKERS}"),
            format!("--http-endpoint=127.0.0.1:{}", free_port()),
        ];
        if process.csi {
            args.push(format!("--csi-address={}", socket.display()));
        }
        args.extend(process.args.iter().cloned());
        args
    }
}

fn go_config(controller: PathBuf, snapshotter: PathBuf, version: &str) -> Config {
    Config {
        key: "go",
        title: format!("upstream Go snapshot-controller and csi-snapshotter {version}"),
        processes: vec![
            Process {
                name: "snapshot-controller",
                binary: controller,
                csi: false,
                args: Vec::new(),
            },
            Process {
                name: "csi-snapshotter",
                binary: snapshotter,
                csi: true,
                args: Vec::new(),
            },
        ],
    }
}

fn ours_configs(dir: &Path) -> Vec<Config> {
    let controller = Process {
        name: "snapshot-controller",
        binary: dir.join("snapshot-controller"),
        csi: false,
        args: Vec::new(),
    };
    vec![
        Config {
            key: "ours-split",
            title: "ours, snapshot-controller and csi-snapshotter".into(),
            processes: vec![
                controller.clone(),
                Process {
                    name: "csi-snapshotter",
                    binary: dir.join("csi-snapshotter"),
                    csi: true,
                    args: Vec::new(),
                },
            ],
        },
        Config {
            key: "ours-aio",
            title: "ours, snapshot-controller and csi-sidecars --controllers=snapshotter".into(),
            processes: vec![
                controller,
                Process {
                    name: "csi-sidecars",
                    binary: dir.join("csi-sidecars"),
                    csi: true,
                    args: vec!["--controllers=snapshotter".into()],
                },
            ],
        },
    ]
}

/// The package name in `<dir>/Cargo.toml`, if the crate exists yet.
fn package(root: &Path, dir: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join(dir).join("Cargo.toml")).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    Some(table.get("package")?.get("name")?.as_str()?.to_string())
}

/// One run of one configuration.
#[derive(Debug, Clone, Serialize)]
struct RunResult {
    config: String,
    run: usize,
    /// Per process: (name, idle RSS KiB, peak RSS KiB, CPU s).
    processes: Vec<(String, u64, u64, f64)>,
    ready: Phase,
    deleted: Phase,
    api: audit::ApiLoad,
}

/// Idle RSS of one configuration with `count` ready snapshots present.
#[derive(Debug, Clone, Serialize)]
struct IdleResult {
    config: String,
    count: usize,
    run: usize,
    /// Per process: (name, RSS KiB).
    processes: Vec<(String, u64)>,
    /// Seconds from start until its requests went quiet.
    quiet_after_s: f64,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
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
    let driver_bin = tools::ensure("csi-mock-driver")?;
    let mut not_run = Vec::new();
    let mut configs = Vec::new();
    if options.only != Only::Ours {
        let versions: toml::Table =
            toml::from_str(&std::fs::read_to_string(root.join(super::VERSIONS_FILE))?)?;
        let version = versions
            .get("external-snapshotter")
            .and_then(|s| s.get("version"))
            .and_then(toml::Value::as_str)
            .unwrap_or("?")
            .to_string();
        configs.push(go_config(
            tools::ensure("snapshot-controller")?,
            tools::ensure("csi-snapshotter")?,
            &version,
        ));
    }
    if options.only != Only::Go {
        let packages: Vec<String> = [
            "controllers/snapshot-controller",
            "sidecars/external-snapshotter",
            "sidecars/aio",
        ]
        .iter()
        .filter_map(|dir| package(&root, dir))
        .flat_map(|p| ["-p".to_string(), p])
        .collect();
        let dir = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => {
                let sh = Shell::new()?;
                sh.change_dir(&root);
                let profile: &[&str] = if options.debug { &[] } else { &["--release"] };
                eprintln!("bench: building ours ({packages:?})");
                cmd!(sh, "cargo build --quiet {profile...} {packages...} --bins").run()?;
                target.join(if options.debug { "debug" } else { "release" })
            }
        };
        for config in ours_configs(&dir) {
            let missing: Vec<&str> = config
                .processes
                .iter()
                .filter(|p| !p.binary.exists())
                .map(|p| p.name)
                .collect();
            // csi-sidecars exists before it has a snapshotter: the standalone binary says
            // whether the snapshotter has landed.
            let snapshotter_missing = !dir.join("csi-snapshotter").exists();
            if missing.is_empty() && !snapshotter_missing {
                configs.push(config);
            } else {
                not_run.push(format!(
                    "{}: our snapshot binaries are not built yet (missing: {})",
                    config.key,
                    if missing.is_empty() {
                        "csi-snapshotter".to_string()
                    } else {
                        missing.join(", ")
                    }
                ));
            }
        }
    }
    if configs.is_empty() {
        bail!("nothing to measure: {}", not_run.join("; "));
    }

    let info = cluster::up()?;
    let audit_log = info.state_dir.join("logs/audit.log");
    let out = target.join("bench").join(super::timestamp());
    std::fs::create_dir_all(&out)?;
    let work = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (runs, idle) = rt.block_on(async {
        let client = cluster::api::client(&info.kubeconfig).await?;
        objects::cleanup(&client).await?;
        objects::setup(&client).await?;
        let outcome = measure(
            &configs,
            &options,
            &driver_bin,
            &info.kubeconfig,
            &audit_log,
            work.path(),
            &client,
        )
        .await;
        objects::cleanup(&client).await?;
        outcome
    })?;
    let report = report(&configs, &options, &runs, &idle, &not_run, started);
    std::fs::write(out.join("snapshots.md"), &report)?;
    std::fs::write(
        out.join("snapshots.json"),
        serde_json::to_string_pretty(&serde_json::json!({"runs": runs, "idle": idle}))?,
    )?;
    println!("{report}");
    println!("report: {}", out.join("snapshots.md").display());
    Ok(())
}

async fn measure(
    configs: &[Config],
    options: &Options,
    driver_bin: &Path,
    kubeconfig: &Path,
    audit_log: &Path,
    work: &Path,
    client: &kube::Client,
) -> anyhow::Result<(Vec<RunResult>, Vec<IdleResult>)> {
    let mut runs = Vec::new();
    for run in 0..options.runs {
        for config in configs {
            eprintln!(
                "bench: snapshots run {}/{}: {}",
                run + 1,
                options.runs,
                config.key
            );
            let started =
                Started::new(config, driver_bin, kubeconfig, audit_log, work, run).await?;
            let result = started.workload(options.n, audit_log, client).await;
            started.stop().await;
            if result.is_err() {
                objects::clear(client, objects::NAMESPACE).await?;
            }
            let result = result.with_context(|| format!("{} run {}", config.key, run + 1))?;
            eprintln!(
                "bench:   {} ready {:.2}s p50 {:.0}ms p99 {:.0}ms, deleted {:.2}s, {} API requests",
                options.n,
                result.ready.total_s,
                result.ready.quantile_ms(0.5),
                result.ready.quantile_ms(0.99),
                result.deleted.total_s,
                result.api.total
            );
            runs.push(result);
        }
    }
    let mut idle = Vec::new();
    let mut present = 0;
    for &count in &options.scale {
        if count > present {
            let t = Instant::now();
            objects::create_scale_snapshots(client, present, count).await?;
            eprintln!(
                "bench: {} ready snapshots created in {:.1}s",
                count - present,
                t.elapsed().as_secs_f64()
            );
            present = count;
        }
        for run in 0..options.runs {
            for config in configs {
                let started =
                    Started::new(config, driver_bin, kubeconfig, audit_log, work, run).await?;
                let result = started.idle(count, audit_log).await;
                started.stop().await;
                let result = result?;
                eprintln!(
                    "bench: idle with {count} snapshots, run {}: {} {:.1} MiB (quiet after {:.1}s)",
                    run + 1,
                    config.key,
                    result.processes.iter().map(|p| p.1).sum::<u64>() as f64 / 1024.0,
                    result.quiet_after_s
                );
                idle.push(result);
            }
        }
    }
    Ok((runs, idle))
}

/// A configuration running against a fresh driver.
struct Started<'a> {
    config: &'a Config,
    run: usize,
    driver: ChildProcess,
    children: Vec<ChildProcess>,
    from: u64,
    started: Instant,
}

impl<'a> Started<'a> {
    async fn new(
        config: &'a Config,
        driver_bin: &Path,
        kubeconfig: &Path,
        audit_log: &Path,
        work: &Path,
        run: usize,
    ) -> anyhow::Result<Started<'a>> {
        let dir = work.join(format!("snap-{}-{run}-{}", config.key, free_port()));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("csi.sock");
        let driver = ChildProcess::spawn(
            driver_bin,
            [
                format!("--endpoint={}", socket.display()),
                format!("--name={DRIVER}"),
                "-v=0".to_string(),
            ],
        )?;
        wait_for_path(&socket, WAIT).await?;
        let from = audit::offset(audit_log);
        let mut children = Vec::new();
        for process in &config.processes {
            children.push(ChildProcess::spawn(
                &process.binary,
                Config::args(process, kubeconfig, &socket),
            )?);
        }
        let mut started = Started {
            config,
            run,
            driver,
            children,
            from,
            started: Instant::now(),
        };
        if let Err(e) = started.wait_synced(audit_log).await {
            started.print_logs();
            started.stop().await;
            return Err(e);
        }
        Ok(started)
    }

    fn print_logs(&self) {
        for (process, child) in self.config.processes.iter().zip(&self.children) {
            eprintln!(
                "--- {} output:\n{}",
                process.name,
                super::tail(&child.logs(), 40)
            );
        }
        eprintln!(
            "--- driver output:\n{}",
            super::tail(&self.driver.logs(), 20)
        );
    }

    async fn wait_synced(&mut self, audit_log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        while !WATCHES
            .iter()
            .all(|r| audit::watch_seen(audit_log, self.from, AUDIT_USER, AGENTS, r))
        {
            for child in &mut self.children {
                if !child.is_running() {
                    bail!("process {} exited early", child.id());
                }
            }
            if Instant::now() > deadline {
                bail!("not every watch of {WATCHES:?} was opened within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(SETTLE).await;
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(ChildProcess::id).collect()
    }

    async fn workload(
        &self,
        n: usize,
        audit_log: &Path,
        client: &kube::Client,
    ) -> anyhow::Result<RunResult> {
        let pids = self.pids();
        let idle: Vec<u64> = pids
            .iter()
            .map(|p| procfs::rss_kib(*p).unwrap_or(0))
            .collect();
        let cpu = |pid: &u32| procfs::cpu_ticks(*pid).unwrap_or(0);
        let before: Vec<u64> = pids.iter().map(cpu).collect();
        let from = audit::offset(audit_log);
        let sampler = procfs::Sampler::start(pids.clone());
        let phases = objects::create_delete(client, n).await;
        let peaks = sampler.finish();
        let after: Vec<u64> = pids.iter().map(cpu).collect();
        if phases.is_err() {
            self.print_logs();
        }
        let (ready, deleted) = phases?;
        // Let the audit backend write the last events.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let api = audit::load_since(audit_log, from, AUDIT_USER, AGENTS)?;
        let processes = self
            .config
            .processes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.name.to_string(),
                    idle[i],
                    peaks[i].max(idle[i]),
                    after[i].saturating_sub(before[i]) as f64 / procfs::USER_HZ,
                )
            })
            .collect();
        Ok(RunResult {
            config: self.config.key.to_string(),
            run: self.run,
            processes,
            ready,
            deleted,
            api,
        })
    }

    /// RSS once the configuration made no request for two seconds (at most [`WAIT`]).
    async fn idle(&self, count: usize, audit_log: &Path) -> anyhow::Result<IdleResult> {
        let deadline = Instant::now() + WAIT;
        loop {
            let from = audit::offset(audit_log);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let load = audit::load_since(audit_log, from, AUDIT_USER, AGENTS)?;
            if load.total == 0 {
                break;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "bench: {} still makes requests after {WAIT:?}: measured anyway",
                    self.config.key
                );
                break;
            }
        }
        Ok(IdleResult {
            config: self.config.key.to_string(),
            count,
            run: self.run,
            processes: self
                .config
                .processes
                .iter()
                .zip(self.pids())
                .map(|(p, pid)| (p.name.to_string(), procfs::rss_kib(pid).unwrap_or(0)))
                .collect(),
            quiet_after_s: self.started.elapsed().as_secs_f64(),
        })
    }

    async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.signal("TERM");
            if child.wait(Duration::from_secs(10)).await.is_err() {
                let _ = child.signal("KILL");
            }
        }
    }
}

/// `median (min–max)` of `values`.
fn spread(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "—".into();
    }
    let median = workload::quantile(values, 0.5);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() == 1 {
        format!("{median:.digits$}")
    } else {
        format!("{median:.digits$} ({min:.digits$}–{max:.digits$})")
    }
}

fn report(
    configs: &[Config],
    options: &Options,
    runs: &[RunResult],
    idle: &[IdleResult],
    not_run: &[String],
    started: Instant,
) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut out = format!(
        "# Snapshot bench\n\n{} VolumeSnapshots created and deleted per run, {} run(s), \
         QPS {QPS} burst {BURST} workers {WORKERS}, {} of ours; {:.0}s in all.\n\n",
        options.n,
        options.runs,
        match (&options.bin_dir, options.debug) {
            (Some(dir), _) => format!("the binaries in {}", dir.display()),
            (None, true) => "debug builds".to_string(),
            (None, false) => "release builds".to_string(),
        },
        started.elapsed().as_secs_f64()
    );
    out.push_str(
        "| configuration | all ready (s) | ready p50 / p99 (ms) | all deleted (s) | API requests | \
         per snapshot | CPU (s) | idle RSS (MiB) | peak RSS (MiB) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for config in configs {
        let of: Vec<&RunResult> = runs.iter().filter(|r| r.config == config.key).collect();
        let v = |f: &dyn Fn(&RunResult) -> f64| of.iter().map(|r| f(r)).collect::<Vec<f64>>();
        out.push_str(&format!(
            "| {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |\n",
            config.title,
            spread(&v(&|r| r.ready.total_s), 2),
            spread(&v(&|r| r.ready.quantile_ms(0.5)), 0),
            spread(&v(&|r| r.ready.quantile_ms(0.99)), 0),
            spread(&v(&|r| r.deleted.total_s), 2),
            spread(&v(&|r| r.api.total as f64), 0),
            spread(&v(&|r| r.api.total as f64 / options.n as f64), 1),
            spread(&v(&|r| r.processes.iter().map(|p| p.3).sum()), 2),
            spread(&v(&|r| mib(r.processes.iter().map(|p| p.1).sum())), 1),
            spread(&v(&|r| mib(r.processes.iter().map(|p| p.2).sum())), 1),
        ));
    }
    out.push_str("\nIdle RSS (MiB, sum of the configuration's processes; per process in brackets) with ready VolumeSnapshots present:\n\n| configuration |");
    for count in &options.scale {
        out.push_str(&format!(" {count} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(options.scale.len()));
    out.push('\n');
    for config in configs {
        out.push_str(&format!("| {} |", config.title));
        for &count in &options.scale {
            let of: Vec<&IdleResult> = idle
                .iter()
                .filter(|r| r.config == config.key && r.count == count)
                .collect();
            let total: Vec<f64> = of
                .iter()
                .map(|r| mib(r.processes.iter().map(|p| p.1).sum()))
                .collect();
            let per_process: Vec<String> = config
                .processes
                .iter()
                .map(|p| {
                    let values: Vec<f64> = of
                        .iter()
                        .flat_map(|r| r.processes.iter().filter(|q| q.0 == p.name))
                        .map(|q| mib(q.1))
                        .collect();
                    format!("{} {:.1}", p.name, workload::quantile(&values, 0.5))
                })
                .collect();
            out.push_str(&format!(
                " {} [{}] |",
                spread(&total, 1),
                per_process.join(", ")
            ));
        }
        out.push('\n');
    }
    if let Some(first) = runs.first() {
        out.push_str(&format!(
            "\nRequests of the first run of {}, by verb and resource: {:?}\n",
            first.config, first.api.by_verb_resource
        ));
    }
    for line in not_run {
        out.push_str(&format!("\nNot run: {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags() {
        let o = parse(&strings(&["--snapshots"])).unwrap().unwrap();
        assert_eq!(
            (o.n, o.runs, o.only, o.scale.as_slice()),
            (500, 3, Only::All, &[0, 10_000][..])
        );
        let o = parse(&strings(&[
            "--snapshots",
            "--quick",
            "--only=go",
            "--runs",
            "1",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (o.n, o.runs, o.only, o.scale.as_slice()),
            (100, 1, Only::Go, &[0, 1000][..])
        );
        let o = parse(&strings(&["--n", "5", "--scale", "0,20", "--debug"]))
            .unwrap()
            .unwrap();
        assert_eq!((o.n, o.scale.as_slice(), o.debug), (5, &[0, 20][..], true));
        assert!(parse(&strings(&["--n", "0"])).is_err());
        assert!(parse(&strings(&["--scale-only"])).is_err());
        assert!(parse(&strings(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn both_sides_get_the_same_flags() {
        let go = go_config("/go/sc".into(), "/go/snap".into(), "v8.7.0");
        let ours = ours_configs(Path::new("/bin"));
        let (k, s) = (Path::new("/k"), Path::new("/s"));
        let strip_port = |args: Vec<String>| -> Vec<String> {
            args.into_iter()
                .filter(|a| !a.starts_with("--http-endpoint"))
                .collect()
        };
        assert_eq!(
            strip_port(Config::args(&go.processes[0], k, s)),
            strip_port(Config::args(&ours[0].processes[0], k, s))
        );
        assert_eq!(
            strip_port(Config::args(&go.processes[1], k, s)),
            strip_port(Config::args(&ours[0].processes[1], k, s))
        );
        let aio = Config::args(&ours[1].processes[1], k, s);
        assert!(aio.contains(&"--controllers=snapshotter".to_string()));
        assert!(aio.contains(&"--csi-address=/s".to_string()));
        assert!(
            !Config::args(&go.processes[0], k, s)
                .iter()
                .any(|a| a.starts_with("--csi-address"))
        );
    }
}
