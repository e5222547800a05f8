//! The soak's resource series: every product process's RSS and open file descriptors, read from
//! /proc every few seconds on a thread of its own ([`Sampler`]), written as CSV, and judged for
//! growth after warm-up ([`judge`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bench::procfs::rss_kib;

/// One reading of one process.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the soak started.
    pub t: f64,
    /// The scenario running then.
    pub scenario: String,
    /// The binary's file name (`csi-sidecars`).
    pub process: String,
    pub pid: u32,
    pub rss_kib: u64,
    pub fds: usize,
}

impl Sample {
    /// `process[pid]`: one series.
    pub fn series(&self) -> String {
        format!("{}[{}]", self.process, self.pid)
    }
}

/// Samples the processes whose executable is a file directly in `bin_dir` (our binaries;
/// `xtask` excluded) every `every`, until stopped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    scenario: Arc<Mutex<Option<String>>>,
    stop: Arc<Mutex<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(bin_dir: PathBuf, every: Duration) -> Sampler {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let scenario: Arc<Mutex<Option<String>>> = Arc::default();
        let stop: Arc<Mutex<bool>> = Arc::default();
        let began = Instant::now();
        let thread = {
            let (samples, scenario, stop) = (samples.clone(), scenario.clone(), stop.clone());
            std::thread::spawn(move || {
                while !*stop.lock().expect("not poisoned") {
                    let current = scenario.lock().expect("not poisoned").clone();
                    if let Some(current) = current {
                        let t = began.elapsed().as_secs_f64();
                        let mut taken = read_all(&bin_dir, t, &current);
                        samples.lock().expect("not poisoned").append(&mut taken);
                    }
                    let next = Instant::now() + every;
                    while Instant::now() < next && !*stop.lock().expect("not poisoned") {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        };
        Sampler {
            samples,
            scenario,
            stop,
            thread: Some(thread),
        }
    }

    /// Tags the samples from now on with `scenario` (`None`: sample nothing).
    pub fn set_scenario(&self, scenario: Option<&str>) {
        *self.scenario.lock().expect("not poisoned") = scenario.map(str::to_string);
    }

    /// Stops sampling; returns every sample.
    pub fn finish(mut self) -> Vec<Sample> {
        *self.stop.lock().expect("not poisoned") = true;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.samples.lock().expect("not poisoned"))
    }
}

/// One sample of every matching process.
fn read_all(bin_dir: &Path, t: f64, scenario: &str) -> Vec<Sample> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        // A binary rebuilt while its process runs reads as `<path> (deleted)`.
        let exe = PathBuf::from(
            exe.to_string_lossy()
                .strip_suffix(" (deleted)")
                .map(str::to_string)
                .unwrap_or_else(|| exe.to_string_lossy().into_owned()),
        );
        if exe.parent() != Some(bin_dir) {
            continue;
        }
        let process = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if process == "xtask" {
            continue;
        }
        let (Some(rss_kib), Ok(fds)) = (rss_kib(pid), std::fs::read_dir(entry.path().join("fd")))
        else {
            continue;
        };
        out.push(Sample {
            t,
            scenario: scenario.to_string(),
            process,
            pid,
            rss_kib,
            fds: fds.count(),
        });
    }
    out
}

/// `t_s,scenario,process,pid,rss_kib,fds` lines with a header.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("t_s,scenario,process,pid,rss_kib,fds\n");
    for s in samples {
        let _ = writeln!(
            out,
            "{:.1},{},{},{},{},{}",
            s.t, s.scenario, s.process, s.pid, s.rss_kib, s.fds
        );
    }
    out
}

/// The share of a series' time that is warm-up, not judged.
pub const WARM_UP: f64 = 0.2;
/// The largest drift of RSS after warm-up that counts as flat.
pub const FLAT: f64 = 0.05;
/// The largest growth of the open-fd count after warm-up that counts as steady: connections
/// come and go (a watch reconnecting, a lease renewal on a fresh stream), a leak keeps growing.
pub const FD_SLACK: f64 = 4.0;
/// ... or this share of the early count, when that is larger.
pub const FD_SLACK_SHARE: f64 = 0.10;

/// A series' figures after warm-up.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub series: String,
    pub samples: usize,
    /// Seconds the series spans.
    pub span: f64,
    /// Mean RSS (MiB) of the first and last quarter after warm-up.
    pub early_mib: f64,
    pub late_mib: f64,
    pub min_mib: f64,
    pub max_mib: f64,
    /// (late − early) / early.
    pub drift: f64,
    pub fds_min: usize,
    pub fds_max: usize,
    /// Mean open fds of the first and last quarter after warm-up.
    pub fds_early: f64,
    pub fds_late: f64,
    /// Whether it lived long enough (half the scenario, 8 samples) to be judged.
    pub judged: bool,
}

impl Verdict {
    /// RSS within ±[`FLAT`] after warm-up (or not judged).
    pub fn flat(&self) -> bool {
        !self.judged || self.drift.abs() <= FLAT
    }

    /// Open fds grew by at most [`FD_SLACK`] or [`FD_SLACK_SHARE`] after warm-up (or not
    /// judged).
    pub fn fds_steady(&self) -> bool {
        !self.judged
            || self.fds_late - self.fds_early <= FD_SLACK.max(self.fds_early * FD_SLACK_SHARE)
    }
}

/// Per series of `samples` (one scenario's), the figures after warm-up: the first
/// [`WARM_UP`] of the series' time is skipped; RSS is flat when the mean of the last quarter of
/// the rest is within ±[`FLAT`] of the mean of its first quarter. Series that span less than
/// half the scenario (replicas killed on purpose) are shown but not judged.
pub fn judge(samples: &[Sample]) -> Vec<Verdict> {
    let (Some(first), Some(last)) = (
        samples.iter().map(|s| s.t).reduce(f64::min),
        samples.iter().map(|s| s.t).reduce(f64::max),
    ) else {
        return Vec::new();
    };
    let scenario_span = last - first;
    let mut by_series: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by_series.entry(s.series()).or_default().push(s);
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mean = |part: &[&Sample]| {
        part.iter().map(|s| mib(s.rss_kib)).sum::<f64>() / part.len().max(1) as f64
    };
    let mean_fds = |part: &[&Sample]| {
        part.iter().map(|s| s.fds as f64).sum::<f64>() / part.len().max(1) as f64
    };
    by_series
        .into_iter()
        .map(|(series, points)| {
            let start = points.first().map_or(0.0, |s| s.t);
            let span = points.last().map_or(0.0, |s| s.t) - start;
            let warm = start + span * WARM_UP;
            let rest: Vec<&Sample> = points.iter().copied().filter(|s| s.t >= warm).collect();
            let quarter = (rest.len() / 4).max(1);
            let first_quarter = &rest[..quarter.min(rest.len())];
            let last_quarter = &rest[rest.len().saturating_sub(quarter)..];
            let early = mean(first_quarter);
            let late = mean(last_quarter);
            Verdict {
                samples: points.len(),
                span,
                early_mib: early,
                late_mib: late,
                min_mib: rest.iter().map(|s| mib(s.rss_kib)).fold(f64::MAX, f64::min),
                max_mib: rest.iter().map(|s| mib(s.rss_kib)).fold(0.0, f64::max),
                drift: if early > 0.0 {
                    (late - early) / early
                } else {
                    0.0
                },
                fds_min: rest.iter().map(|s| s.fds).min().unwrap_or(0),
                fds_max: rest.iter().map(|s| s.fds).max().unwrap_or(0),
                fds_early: mean_fds(first_quarter),
                fds_late: mean_fds(last_quarter),
                judged: span >= scenario_span * 0.5 && points.len() >= 8,
                series,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pid: u32, from: u64, to: u64, rss: impl Fn(u64) -> u64) -> Vec<Sample> {
        with_fds(pid, from, to, rss, |_| 20)
    }

    fn with_fds(
        pid: u32,
        from: u64,
        to: u64,
        rss: impl Fn(u64) -> u64,
        fds: impl Fn(u64) -> usize,
    ) -> Vec<Sample> {
        (from..to)
            .map(|i| Sample {
                t: i as f64 * 5.0,
                scenario: "churn".into(),
                process: "csi-sidecars".into(),
                pid,
                rss_kib: rss(i),
                fds: fds(i),
            })
            .collect()
    }

    #[test]
    fn open_fds_that_come_and_go_are_steady_a_growing_count_is_not() {
        // Connections open and close: 20 to 26 fds, no trend.
        let mut samples = with_fds(1, 0, 100, |_| 20_000, |i| 20 + (i % 7) as usize);
        // One more fd every fifth sample: a leak of 20 over the run.
        samples.extend(with_fds(2, 0, 100, |_| 20_000, |i| 20 + (i / 5) as usize));
        // Many fds: 10 % of 300 is the slack.
        samples.extend(with_fds(3, 0, 100, |_| 20_000, |i| 300 + (i / 4) as usize));
        let verdicts = judge(&samples);
        assert!(verdicts[0].fds_steady(), "{:?}", verdicts[0]);
        assert!(!verdicts[1].fds_steady(), "{:?}", verdicts[1]);
        assert!(verdicts[1].flat(), "RSS stays flat: {:?}", verdicts[1]);
        assert!(verdicts[2].fds_steady(), "{:?}", verdicts[2]);
    }

    #[test]
    fn flat_growing_and_short_lived_series() {
        // Warm-up growth, then flat with noise.
        let mut samples = series(1, 0, 100, |i| {
            if i < 10 {
                10_000 + i * 1000
            } else {
                20_000 + (i % 3) * 100
            }
        });
        // Grows 1 % per sample: a leak.
        samples.extend(series(2, 0, 100, |i| 20_000 + i * 200));
        // A replica killed early: shown, not judged.
        samples.extend(series(3, 0, 20, |i| 10_000 + i * 5000));
        let verdicts = judge(&samples);
        assert_eq!(verdicts.len(), 3);
        let flat = &verdicts[0];
        assert_eq!(flat.series, "csi-sidecars[1]");
        assert!(flat.judged && flat.flat(), "{flat:?}");
        assert!(flat.drift.abs() < 0.01, "{flat:?}");
        let leak = &verdicts[1];
        assert!(leak.judged && !leak.flat(), "{leak:?}");
        let short = &verdicts[2];
        assert!(!short.judged && short.flat(), "{short:?}");
    }

    #[test]
    fn csv_has_a_header_and_a_line_per_sample() {
        let text = csv(&series(7, 0, 2, |_| 1024));
        assert_eq!(
            text,
            "t_s,scenario,process,pid,rss_kib,fds\n0.0,churn,csi-sidecars,7,1024,20\n5.0,churn,csi-sidecars,7,1024,20\n"
        );
    }

    #[test]
    fn the_sampler_finds_nothing_in_an_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_all(dir.path(), 0.0, "x").is_empty());
    }
}
