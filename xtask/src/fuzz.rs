//! `cargo xtask fuzz`: the workspace's property tests (the fuzzing suite) with many more cases
//! than `cargo test` gives them, for a number of rounds or a time budget, with a report.
//!
//! The suite is every test in a module named `fuzz` (`cargo test --lib -- fuzz::`) and every
//! integration test target named `fuzz` (`tests/fuzz.rs`). Each round runs all of them with
//! `PROPTEST_CASES` cases per test and its own `PROPTEST_RNG_SEED`, so rounds explore different
//! inputs and any round can be replayed. The report goes to `target/fuzz/report.md`, each
//! round's output to `target/fuzz/round-<n>.log`.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

const USAGE: &str = "\
usage: cargo xtask fuzz [--cases N] [--duration D] [--rounds R] [--seed S]

Runs the property tests of the workspace (modules named `fuzz`, test targets named `fuzz`)
with N cases per test (default 2000) for R rounds (default 1), or round after round until the
duration D has passed (`90s`, `30m`, `2h`; a round that starts in time finishes). Round n uses
the RNG seed S+n (S defaults to the current time). Stops at the first failing round.
Report: target/fuzz/report.md; each round's output: target/fuzz/round-<n>.log.
";

#[derive(Debug)]
struct Options {
    cases: u32,
    duration: Option<Duration>,
    rounds: u32,
    seed: u64,
}

fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("invalid duration {s:?}: use a number with s, m or h"),
    };
    Ok(Duration::from_secs(secs))
}

fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        cases: 2000,
        duration: None,
        rounds: 1,
        seed: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{name} needs a value"))
        };
        match name {
            "--cases" => options.cases = value()?.parse().context("--cases")?,
            "--duration" => options.duration = Some(parse_duration(&value()?)?),
            "--rounds" => options.rounds = value()?.parse().context("--rounds")?,
            "--seed" => options.seed = value()?.parse().context("--seed")?,
            "-h" | "--help" | "help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => {
                eprint!("{USAGE}");
                bail!("unknown argument {other:?}")
            }
        }
    }
    Ok(Some(options))
}

/// The two cargo invocations that make up the suite.
fn commands() -> [Vec<&'static str>; 2] {
    [
        vec![
            "test",
            "--workspace",
            "--exclude",
            "csi-e2e",
            "--locked",
            "--test",
            "fuzz",
        ],
        vec![
            "test",
            "--workspace",
            "--exclude",
            "csi-e2e",
            "--locked",
            "--lib",
            "--",
            "fuzz::",
        ],
    ]
}

/// One round's outcome.
#[derive(Debug)]
struct Round {
    seed: u64,
    passed: usize,
    failed: usize,
    elapsed: Duration,
    /// The names of the tests that failed.
    failures: Vec<String>,
}

fn run_round(cases: u32, seed: u64, log: &std::path::Path) -> anyhow::Result<Round> {
    let started = Instant::now();
    let mut output = String::new();
    let mut round = Round {
        seed,
        passed: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        failures: Vec::new(),
    };
    for args in commands() {
        let result = Command::new("cargo")
            .args(&args)
            .current_dir(crate::project_root())
            .env("PROPTEST_CASES", cases.to_string())
            .env("PROPTEST_RNG_SEED", seed.to_string())
            .env("CARGO_INCREMENTAL", "0")
            .output()
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&result.stdout);
        let stderr = String::from_utf8_lossy(&result.stderr);
        let _ = writeln!(output, "$ cargo {}\n{stdout}\n{stderr}", args.join(" "));
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("test ") else {
                continue;
            };
            if let Some(name) = rest.strip_suffix(" ... ok") {
                let _ = name;
                round.passed += 1;
            } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
                round.failed += 1;
                round.failures.push(name.to_string());
            }
        }
        if !result.status.success() && round.failed == 0 {
            // A build error or a crash outside any test.
            round.failed += 1;
            round.failures.push(format!("cargo {}", args.join(" ")));
        }
    }
    round.elapsed = started.elapsed();
    std::fs::write(log, output).with_context(|| format!("writing {}", log.display()))?;
    Ok(round)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(options) = parse(args)? else {
        return Ok(());
    };
    let dir = crate::project_root().join("target/fuzz");
    std::fs::create_dir_all(&dir)?;

    // Build once, outside the time budget.
    for args in commands() {
        let mut build: Vec<&str> = args.iter().take_while(|a| **a != "--").copied().collect();
        build.push("--no-run");
        let status = Command::new("cargo")
            .args(&build)
            .current_dir(crate::project_root())
            .env("CARGO_INCREMENTAL", "0")
            .status()
            .context("building the tests")?;
        if !status.success() {
            bail!("cargo {} failed", build.join(" "));
        }
    }

    let started = Instant::now();
    let mut rounds: Vec<Round> = Vec::new();
    let mut n: u32 = 0;
    loop {
        let in_budget = match options.duration {
            Some(d) => started.elapsed() < d,
            None => n < options.rounds,
        };
        if !in_budget {
            break;
        }
        let seed = options.seed.wrapping_add(u64::from(n));
        let log = dir.join(format!("round-{n}.log"));
        eprintln!(
            "fuzz round {n}: {} cases per test, seed {seed}",
            options.cases
        );
        let round = run_round(options.cases, seed, &log)?;
        eprintln!(
            "fuzz round {n}: {} passed, {} failed in {:.1?}",
            round.passed, round.failed, round.elapsed
        );
        let failed = round.failed > 0;
        rounds.push(round);
        n += 1;
        if failed {
            break;
        }
    }

    let report = report(&options, &rounds, started.elapsed());
    let path = dir.join("report.md");
    std::fs::write(&path, &report)?;
    print!("{report}");
    eprintln!("report: {}", path.display());
    if rounds.iter().any(|r| r.failed > 0) {
        bail!("the fuzzing suite found a failure (see the report)");
    }
    Ok(())
}

fn report(options: &Options, rounds: &[Round], elapsed: Duration) -> String {
    let mut out = String::from("# Fuzzing report\n\n");
    let _ = writeln!(
        out,
        "{} cases per property test, {} round(s) in {:.0?}{}.\n",
        options.cases,
        rounds.len(),
        elapsed,
        options
            .duration
            .map(|d| format!(" (budget {d:?})"))
            .unwrap_or_default()
    );
    out.push_str("| round | seed | tests passed | failed | time |\n|---|---|---|---|---|\n");
    for (i, r) in rounds.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {i} | {} | {} | {} | {:.1?} |",
            r.seed, r.passed, r.failed, r.elapsed
        );
    }
    let failures: Vec<(usize, &Round)> = rounds
        .iter()
        .enumerate()
        .filter(|(_, r)| r.failed > 0)
        .collect();
    if failures.is_empty() {
        out.push_str("\nNo failures.\n");
    } else {
        out.push_str("\n## Failures\n\n");
        for (i, r) in failures {
            for name in &r.failures {
                let _ = writeln!(
                    out,
                    "- `{name}` in round {i} (output in `target/fuzz/round-{i}.log`); replay with \
                     `PROPTEST_CASES={} PROPTEST_RNG_SEED={} cargo test --workspace -- {}`",
                    options.cases,
                    r.seed,
                    name.rsplit("::").next().unwrap_or(name)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("m").is_err());
        let o = parse(&[
            "--cases=50".into(),
            "--duration".into(),
            "1m".into(),
            "--seed".into(),
            "7".into(),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (o.cases, o.duration, o.seed),
            (50, Some(Duration::from_secs(60)), 7)
        );
        assert!(parse(&["--bogus".into()]).is_err());
    }

    #[test]
    fn the_report_names_failures_with_their_seed() {
        let options = Options {
            cases: 10,
            duration: None,
            rounds: 1,
            seed: 3,
        };
        let rounds = [Round {
            seed: 3,
            passed: 4,
            failed: 1,
            elapsed: Duration::from_secs(2),
            failures: vec!["flags::fuzz::go_value_parsers_never_panic".into()],
        }];
        let report = report(&options, &rounds, Duration::from_secs(2));
        assert!(report.contains("| 0 | 3 | 4 | 1 |"), "{report}");
        assert!(
            report.contains("PROPTEST_CASES=10 PROPTEST_RNG_SEED=3 cargo test --workspace -- go_value_parsers_never_panic"),
            "{report}"
        );
    }
}
