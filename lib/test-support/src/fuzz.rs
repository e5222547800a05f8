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

/// Arbitrary JSON: scalars of every type (numbers at the edges of what JSON decoders accept,
/// strings with any characters) nested in arrays and objects whose keys are drawn from `keys`
/// (the field names of the documents under test, so that generated objects look like them) or
/// are arbitrary.
pub fn json(keys: &'static [&'static str]) -> proptest::strategy::BoxedStrategy<serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        proptest::sample::select(keys).prop_map(|k| Value::String(k.to_string())),
    ];
    let key = prop_oneof![
        3 => proptest::sample::select(keys).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
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
