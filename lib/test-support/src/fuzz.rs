//! Settings shared by the workspace's property tests (the fuzzing suite).
//!
//! Every property test lives in a module named `fuzz` (so `cargo test -- fuzz` selects them all)
//! and takes its configuration from [`config`]: a small number of cases by default, sized so that
//! all of them together stay within about a minute of `cargo test --workspace`, and the
//! `PROPTEST_CASES` environment variable to raise it (`cargo xtask fuzz` does). A failing input is
//! printed shrunk; it becomes a named unit test next to the fix rather than a
//! `proptest-regressions` file, so nothing is written into the source tree.

use proptest::test_runner::Config;

/// The environment variable that overrides every test's default number of cases.
pub const CASES_ENV: &str = "PROPTEST_CASES";

/// The number of cases to run: `PROPTEST_CASES` when set to a number, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A proptest configuration with [`cases`]`(default)` cases and no failure persistence.
pub fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        failure_persistence: None,
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_applies_without_the_variable() {
        if std::env::var_os(CASES_ENV).is_none() {
            assert_eq!(config(17).cases, 17);
            assert!(config(17).failure_persistence.is_none());
        }
    }
}
