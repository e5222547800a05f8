//! The reliability scenarios' two variants: the fast one of the CI end-to-end suite, and the
//! long one `cargo xtask soak` runs with steady churn. The xtask tells a scenario's test which
//! through the environment ([`SoakMode::from_env`]); the test writes what it did and checked
//! into the run's directory ([`ScenarioOutcome::write`]), which the xtask puts into the run's
//! `report.md` with the processes' RSS and open-fd series.
//!
//! - `CSI_SOAK_DURATION`: seconds of churn; unset in CI (the fast variant: one round).
//! - `CSI_SOAK_DIR`: the run's directory, `target/soak/<run>/`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::InvariantReport;

/// Seconds of churn of the long variant.
pub const DURATION_ENV: &str = "CSI_SOAK_DURATION";
/// The soak run's directory.
pub const DIR_ENV: &str = "CSI_SOAK_DIR";

/// How long a scenario runs and where its outcome goes.
#[derive(Clone, Debug)]
pub struct SoakMode {
    /// How long to churn; `None`: the fast variant (one round).
    pub duration: Option<Duration>,
    /// Where [`ScenarioOutcome::write`] writes; `None` outside a soak run.
    pub dir: Option<PathBuf>,
}

impl SoakMode {
    /// From `CSI_SOAK_DURATION` and `CSI_SOAK_DIR`.
    pub fn from_env() -> anyhow::Result<SoakMode> {
        let duration = match std::env::var(DURATION_ENV) {
            Ok(text) => {
                Some(Duration::from_secs(text.trim().parse().with_context(
                    || format!("{DURATION_ENV}={text:?}: seconds expected"),
                )?))
            }
            Err(_) => None,
        };
        Ok(SoakMode {
            duration,
            dir: std::env::var_os(DIR_ENV).map(PathBuf::from),
        })
    }

    /// Whether this is the long variant.
    pub fn is_soak(&self) -> bool {
        self.duration.is_some()
    }

    /// Whether another round should start, `started` being when the first did: always before
    /// the first round; in the fast variant only then.
    pub fn another_round(&self, started: Instant, rounds_done: usize) -> bool {
        match self.duration {
            None => rounds_done == 0,
            Some(duration) => rounds_done == 0 || started.elapsed() < duration,
        }
    }
}

/// What a scenario did and found, for the soak report.
#[derive(Clone, Debug, Default)]
pub struct ScenarioOutcome {
    /// The scenario's name (the soak's `--scenario` name).
    pub scenario: String,
    /// One sentence: the workload and the faults.
    pub description: String,
    /// Rounds of the workload run.
    pub rounds: usize,
    /// The faults injected, one line each (`SIGKILL leader replica-a at 12.3 s; replica-b led 7.9 s later`).
    pub faults: Vec<String>,
    /// What else was checked besides the invariants, one line each, with its figure.
    pub checks: Vec<String>,
    /// The invariants, summed over the rounds.
    pub invariants: InvariantReport,
    /// How long it ran.
    pub elapsed: Duration,
}

impl ScenarioOutcome {
    /// A Markdown section: `## <scenario>`, the description, rounds, faults, checks, and the
    /// invariant table.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {}\n\n{}\n", self.scenario, self.description);
        let verdict = if self.invariants.is_clean() {
            "all invariants held"
        } else {
            "**invariants violated**"
        };
        let _ = writeln!(
            out,
            "{} round(s) in {:.0?}; {verdict}.\n",
            self.rounds, self.elapsed
        );
        if !self.faults.is_empty() {
            let _ = writeln!(out, "Faults ({}):\n", self.faults.len());
            for f in &self.faults {
                let _ = writeln!(out, "- {f}");
            }
            out.push('\n');
        }
        if !self.checks.is_empty() {
            let _ = writeln!(out, "Checked besides the invariants:\n");
            for c in &self.checks {
                let _ = writeln!(out, "- {c}");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Invariants (summed over the rounds):\n\n{}",
            self.invariants.to_markdown()
        );
        out
    }

    /// Writes [`ScenarioOutcome::to_markdown`] to `<dir>/scenario-<name>.md` when `mode` has a
    /// directory, and prints it either way.
    pub fn write(&self, mode: &SoakMode) -> anyhow::Result<()> {
        let text = self.to_markdown();
        eprintln!("{text}");
        if let Some(dir) = &mode.dir {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("scenario-{}.md", self.scenario));
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_variant_runs_one_round_the_soak_until_its_duration() {
        let fast = SoakMode {
            duration: None,
            dir: None,
        };
        let started = Instant::now();
        assert!(fast.another_round(started, 0));
        assert!(!fast.another_round(started, 1));
        let soak = SoakMode {
            duration: Some(Duration::from_secs(3600)),
            dir: None,
        };
        assert!(soak.another_round(started, 5));
        let over = SoakMode {
            duration: Some(Duration::ZERO),
            dir: None,
        };
        assert!(over.another_round(started, 0));
        assert!(!over.another_round(started, 1));
    }

    #[test]
    fn an_outcome_is_a_markdown_section_with_the_invariant_table() {
        let outcome = ScenarioOutcome {
            scenario: "leader".into(),
            description: "Two replicas.".into(),
            rounds: 2,
            faults: vec!["SIGKILL replica-a".into()],
            checks: vec!["takeover 7 s".into()],
            invariants: InvariantReport::default(),
            elapsed: Duration::from_secs(61),
        };
        let text = outcome.to_markdown();
        assert!(text.starts_with("## leader\n\nTwo replicas.\n"), "{text}");
        assert!(
            text.contains("2 round(s) in 61s; all invariants held."),
            "{text}"
        );
        assert!(text.contains("- SIGKILL replica-a\n"), "{text}");
        assert!(text.contains("| check | checked | violations |"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let mode = SoakMode {
            duration: None,
            dir: Some(dir.path().to_path_buf()),
        };
        outcome.write(&mode).unwrap();
        let written = std::fs::read_to_string(dir.path().join("scenario-leader.md")).unwrap();
        assert_eq!(written, text);
    }
}
