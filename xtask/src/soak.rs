//! `cargo xtask soak [--duration 1h] [--scenario NAME]... [--sample-every 5s]`: the long
//! variants of the reliability scenarios on the local control plane, one after another, each
//! churning for `--duration`, while every product process's RSS and open-fd count are sampled
//! from /proc. Writes `target/soak/<run>/`:
//!
//! - `report.md`: per scenario what it did, the faults, what it checked and the invariant
//!   counts (the scenario's own section), its processes' figures after warm-up with the RSS
//!   verdict (flat within ±5 %), the open-fd verdict (no growth beyond a few fds), and the chart;
//! - `samples.csv`, `<scenario>.png`, `<scenario>.log` (the test's output).
//!
//! A scenario is a test of `e2e/tests/` that reads `CSI_SOAK_DURATION` and `CSI_SOAK_DIR`
//! (`csi_e2e_support::SoakMode`) and writes its outcome (`ScenarioOutcome::write`); adding one
//! is a row of [`SCENARIOS`].

mod chart;
mod series;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{cluster, tools};

/// A scenario: a test (run alone, with `--exact`) and what it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// `--scenario` name; also the name the test writes its outcome under.
    pub name: &'static str,
    /// The test file under `e2e/tests/` (without `.rs`).
    pub test_file: &'static str,
    /// The test function.
    pub test: &'static str,
}

/// Every scenario, in the order a soak runs them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "churn",
        test_file: "reliability_churn",
        test: "steady_churn",
    },
    Scenario {
        name: "leader",
        test_file: "reliability_leader",
        test: "leader_killed_twice_mid_workload",
    },
    Scenario {
        name: "driver-restart",
        test_file: "reliability_driver_restart",
        test: "driver_killed_and_restarted_mid_workload",
    },
    Scenario {
        name: "apiserver-restart",
        test_file: "reliability_apiserver_restart",
        test: "apiserver_and_etcd_restarted_mid_workload",
    },
    Scenario {
        name: "throttling",
        test_file: "reliability_throttling",
        test: "csi_sidecars_attacher_and_provisioner_at_one_request_a_second",
    },
    Scenario {
        name: "faulty-driver",
        test_file: "reliability_faults",
        test: "csi_provisioner_through_a_failing_and_hanging_driver",
    },
];

const USAGE: &str = "\
usage: cargo xtask soak [--duration D] [--scenario NAME]... [--sample-every D]

  --duration D       how long each scenario churns (default 10m; 90s, 10m, 1h, 1h30m)
  --scenario NAME    run only these (repeatable; default all): churn, leader, driver-restart,
                     apiserver-restart
  --sample-every D   RSS and open-fd sampling interval (default 5s)

Writes target/soak/<run>/report.md, samples.csv, a chart and the test output per scenario.
";

#[derive(Debug, PartialEq)]
struct Options {
    duration: Duration,
    scenarios: Vec<Scenario>,
    every: Duration,
}

/// `90s`, `10m`, `1h`, `1h30m`, or plain seconds.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => bail!("bad duration {text:?}: use 90s, 10m, 1h or 1h30m"),
        };
        let n: u64 = number
            .parse()
            .with_context(|| format!("bad duration {text:?}"))?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        bail!("bad duration {text:?}: use 90s, 10m, 1h or 1h30m");
    }
    Ok(Duration::from_secs(total))
}

fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        duration: Duration::from_secs(600),
        scenarios: Vec::new(),
        every: Duration::from_secs(5),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag {
            "--duration" => options.duration = parse_duration(&value()?)?,
            "--sample-every" => options.every = parse_duration(&value()?)?,
            "--scenario" => {
                let name = value()?;
                let scenario = SCENARIOS
                    .iter()
                    .find(|s| s.name == name)
                    .with_context(|| format!("unknown scenario {name:?}\n{USAGE}"))?;
                options.scenarios.push(*scenario);
            }
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if options.scenarios.is_empty() {
        options.scenarios = SCENARIOS.to_vec();
    }
    Ok(Some(options))
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(options) = parse(args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let root = crate::project_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::path::absolute(PathBuf::from(dir))?,
        None => root.join("target"),
    };
    let dir = target.join("soak").join(crate::bench::timestamp());
    std::fs::create_dir_all(&dir)?;
    println!("==> soak: tools, our binaries, the test binaries");
    let driver = tools::ensure("csi-mock-driver")?;
    let status = Command::new("cargo")
        .args(["build", "--locked", "--bins"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("cargo build --bins failed");
    }
    let info = cluster::up()?;
    let result = soak(&options, &dir, &target, &driver, &info);
    if info.started {
        println!("==> soak: stopping the control plane this run started");
        cluster::down()?;
    }
    let failed = result?;
    println!("==> soak: report in {}", dir.join("report.md").display());
    if !failed.is_empty() {
        bail!("soak failed: {}", failed.join("; "));
    }
    Ok(())
}

/// Runs the scenarios; returns what failed (scenarios, RSS verdicts).
fn soak(
    options: &Options,
    dir: &Path,
    target: &Path,
    driver: &Path,
    info: &cluster::ClusterInfo,
) -> anyhow::Result<Vec<String>> {
    let sampler = series::Sampler::start(target.join("debug"), options.every);
    let mut runs = Vec::new();
    for scenario in &options.scenarios {
        println!(
            "==> soak: {} for {:?} ({})",
            scenario.name, options.duration, scenario.test_file
        );
        sampler.set_scenario(Some(scenario.name));
        let began = Instant::now();
        let output = Command::new("cargo")
            .args([
                "test",
                "--locked",
                "-p",
                "csi-e2e",
                "--test",
                scenario.test_file,
            ])
            .args(["--", "--exact", scenario.test, "--nocapture"])
            .env("CSI_E2E_KUBECONFIG", &info.kubeconfig)
            .env("CSI_E2E_DRIVER", driver)
            .env("CSI_E2E_STATE_DIR", &info.state_dir)
            .env("CSI_SOAK_DURATION", options.duration.as_secs().to_string())
            .env("CSI_SOAK_DIR", dir)
            .current_dir(crate::project_root())
            .output()?;
        sampler.set_scenario(None);
        let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&output.stderr));
        std::fs::write(dir.join(format!("{}.log", scenario.name)), &log)?;
        println!(
            "    {} in {:.0?}",
            if output.status.success() {
                "passed"
            } else {
                "FAILED"
            },
            began.elapsed()
        );
        runs.push((*scenario, output.status.success(), began.elapsed()));
    }
    let samples = sampler.finish();
    std::fs::write(dir.join("samples.csv"), series::csv(&samples))?;
    let (report, failed) = report(options, dir, &runs, &samples)?;
    std::fs::write(dir.join("report.md"), report)?;
    Ok(failed)
}

fn report(
    options: &Options,
    dir: &Path,
    runs: &[(Scenario, bool, Duration)],
    samples: &[series::Sample],
) -> anyhow::Result<(String, Vec<String>)> {
    let mut failed = Vec::new();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Soak {}\n\nEach scenario churned for {:?}; RSS and open fds of every process of ours \
         sampled every {:?} (`samples.csv`). RSS verdict: after a warm-up of the first {:.0} % of a \
         process's life, the mean of the last quarter within ±{:.0} % of the mean of the first \
         quarter; open fds steady: the mean of the last quarter at most {} fds or {:.0} % above \
         the first quarter's; processes living less than half the scenario (replicas killed on \
         purpose) are shown, not judged.\n",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        options.duration,
        options.every,
        series::WARM_UP * 100.0,
        series::FLAT * 100.0,
        series::FD_SLACK,
        series::FD_SLACK_SHARE * 100.0
    );
    for (scenario, passed, took) in runs {
        let section = std::fs::read_to_string(dir.join(format!("scenario-{}.md", scenario.name)))
            .unwrap_or_else(|_| {
                format!(
                    "## {}\n\nThe test wrote no outcome; see `{}.log`.\n",
                    scenario.name, scenario.name
                )
            });
        out.push_str(&section);
        let _ = writeln!(
            out,
            "\nTest `{}::{}`: **{}** in {:.0?} (output: `{}.log`).\n",
            scenario.test_file,
            scenario.test,
            if *passed { "passed" } else { "failed" },
            took,
            scenario.name
        );
        if !passed {
            failed.push(format!("scenario {} failed", scenario.name));
        }
        let mine: Vec<series::Sample> = samples
            .iter()
            .filter(|s| s.scenario == scenario.name)
            .cloned()
            .collect();
        let verdicts = series::judge(&mine);
        out.push_str(
            "| process | samples | span | RSS early → late (MiB) | min–max | drift | verdict | fds min–max | fds early → late | fds |\n\
             |---|---:|---:|---:|---:|---:|---|---:|---:|---|\n",
        );
        for v in verdicts.iter().filter(|v| v.judged) {
            let verdict = if v.flat() { "flat" } else { "**grew**" };
            if !v.flat() {
                failed.push(format!(
                    "{}: {} RSS drift {:+.1} %",
                    scenario.name,
                    v.series,
                    v.drift * 100.0
                ));
            }
            let fds = if v.fds_steady() { "steady" } else { "**grew**" };
            if !v.fds_steady() {
                failed.push(format!(
                    "{}: {} open fds {:.1} → {:.1}",
                    scenario.name, v.series, v.fds_early, v.fds_late
                ));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} s | {:.1} → {:.1} | {:.1}–{:.1} | {:+.1} % | {verdict} | {}–{} | {:.1} → {:.1} | {fds} |",
                v.series,
                v.samples,
                v.span,
                v.early_mib,
                v.late_mib,
                v.min_mib,
                v.max_mib,
                v.drift * 100.0,
                v.fds_min,
                v.fds_max,
                v.fds_early,
                v.fds_late
            );
        }
        // Processes killed or restarted on purpose: one row per binary.
        let mut short: BTreeMap<String, Vec<&series::Verdict>> = BTreeMap::new();
        for v in verdicts.iter().filter(|v| !v.judged) {
            let binary = v.series.split('[').next().unwrap_or_default().to_string();
            short.entry(binary).or_default().push(v);
        }
        for (binary, group) in short {
            let _ = writeln!(
                out,
                "| {binary} ×{} (short-lived) | {} | ≤ {:.0} s each | | {:.1}–{:.1} | | not judged | {}–{} | | not judged |",
                group.len(),
                group.iter().map(|v| v.samples).sum::<usize>(),
                group.iter().map(|v| v.span).fold(0.0, f64::max),
                group.iter().map(|v| v.min_mib).fold(f64::MAX, f64::min),
                group.iter().map(|v| v.max_mib).fold(0.0, f64::max),
                group.iter().map(|v| v.fds_min).min().unwrap_or(0),
                group.iter().map(|v| v.fds_max).max().unwrap_or(0)
            );
        }
        if !mine.is_empty() {
            let png = format!("{}.png", scenario.name);
            match chart::draw_series(scenario.name, &mine, &dir.join(&png)) {
                Ok(()) => {
                    let _ = writeln!(out, "\n![{} RSS and fds]({png})\n", scenario.name);
                }
                Err(err) => {
                    let _ = writeln!(out, "\n(no chart: {err:#})\n");
                }
            }
        }
    }
    Ok((out, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_scenarios_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("10").is_ok() && parse_duration("m").is_err());
        let options = parse(&["--duration=1h".into(), "--scenario".into(), "leader".into()])
            .unwrap()
            .unwrap();
        assert_eq!(options.duration, Duration::from_secs(3600));
        assert_eq!(options.scenarios.len(), 1);
        assert_eq!(options.scenarios[0].name, "leader");
        let all = parse(&[]).unwrap().unwrap();
        assert_eq!(all.scenarios.len(), SCENARIOS.len());
        assert!(parse(&["--scenario=nope".into()]).is_err());
    }

    #[test]
    fn every_scenario_is_a_test_file() {
        for s in SCENARIOS {
            let path = crate::project_root()
                .join("e2e/tests")
                .join(format!("{}.rs", s.test_file));
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains(&format!("async fn {}(", s.test)),
                "{}",
                path.display()
            );
            assert!(
                text.contains(&format!("scenario: \"{}\"", s.name)),
                "{}",
                path.display()
            );
        }
    }
}
