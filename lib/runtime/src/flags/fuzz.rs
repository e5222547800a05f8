//! Property tests of the Go value parsers and of argv normalization: any input gives a value or
//! an error, never a panic, and generated Go spellings read back as the value they were made
//! from. The round trip through every component's real flag table is in `sidecars/aio`.

use std::time::Duration;

use csi_test_support::fuzz::config;
use proptest::prelude::*;

use super::go::*;
use super::tests::{aggregate, standalone};

/// Strings made of the characters Go values are written with, so that near-misses (`1.s`,
/// `0x_`, `A=t,`) are common rather than rare.
fn go_ish() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[-+0-9._xobeEµμnsmhuTtFfalrAB=:, ]{0,20}",]
}

/// One component of a Go duration: whole part, fraction digits, unit and its nanoseconds.
#[derive(Clone, Debug)]
struct Component {
    whole: u64,
    fraction: String,
    unit: &'static str,
    nanos: u64,
}

const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// A component whose fraction is exact in nanoseconds (at most as many digits as the unit has
/// powers of ten), so the expected value is plain integer arithmetic.
fn component() -> impl Strategy<Value = Component> {
    (0..UNITS.len(), 0u64..100_000).prop_flat_map(|(i, whole)| {
        let (unit, nanos) = UNITS[i];
        let exact_digits = nanos
            .trailing_zeros()
            .min(nanos.to_string().len() as u32 - 1);
        let digits = (nanos as f64).log10() as usize;
        let max = digits.min(exact_digits as usize);
        proptest::string::string_regex(&format!("[0-9]{{0,{max}}}"))
            .expect("valid regex")
            .prop_map(move |fraction| Component {
                whole,
                fraction,
                unit,
                nanos,
            })
    })
}

impl Component {
    fn render(&self) -> String {
        if self.fraction.is_empty() {
            format!("{}{}", self.whole, self.unit)
        } else {
            format!("{}.{}{}", self.whole, self.fraction, self.unit)
        }
    }

    fn value(&self) -> u64 {
        let mut v = self.whole * self.nanos;
        if !self.fraction.is_empty() {
            let f: u128 = self.fraction.parse().expect("digits");
            let part = f * u128::from(self.nanos) / 10u128.pow(self.fraction.len() as u32);
            v += u64::try_from(part).expect("less than the unit");
        }
        v
    }
}

fn int_spelling(v: i64) -> impl Strategy<Value = String> {
    let magnitude = v.unsigned_abs();
    let sign = if v < 0 { "-" } else { "" };
    prop_oneof![
        Just(format!("{sign}{magnitude}")),
        Just(format!("{sign}0x{magnitude:x}")),
        Just(format!("{sign}0X{magnitude:X}")),
        Just(format!("{sign}0o{magnitude:o}")),
        Just(format!("{sign}0b{magnitude:b}")),
        Just(if magnitude == 0 {
            format!("{sign}0")
        } else {
            format!("{sign}0{magnitude:o}")
        }),
        Just(if v >= 0 {
            format!("+{magnitude}")
        } else {
            format!("{sign}{magnitude}")
        }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn go_value_parsers_never_panic(s in go_ish()) {
        let _ = parse_bool(&s);
        let _ = parse_int(&s);
        let _ = parse_float(&s);
        let _ = parse_duration(&s);
        let _ = parse_map_string_bool(&s);
        let _ = parse_map_string_string(&s);
    }

    #[test]
    fn go_durations_read_as_their_components_add_up(
        components in proptest::collection::vec(component(), 1..4),
        plus in any::<bool>(),
    ) {
        let text: String = components.iter().map(Component::render).collect();
        let text = if plus { format!("+{text}") } else { text };
        let want: u64 = components.iter().map(Component::value).sum();
        prop_assert_eq!(parse_duration(&text), Ok(Duration::from_nanos(want)), "{}", text);
    }

    #[test]
    fn printed_durations_read_back_equal(nanos in 0u64..(1u64 << 50)) {
        let d = Duration::from_nanos(nanos);
        let text = format_duration(d);
        prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
    }

    #[test]
    fn negative_durations_are_refused(
        components in proptest::collection::vec(component(), 1..3),
    ) {
        let text: String = components.iter().map(Component::render).collect();
        let value: u64 = components.iter().map(Component::value).sum();
        let result = parse_duration(&format!("-{text}"));
        if value == 0 {
            prop_assert_eq!(result, Ok(Duration::ZERO));
        } else {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn go_integers_in_every_base_read_back_equal(
        (v, text) in any::<i64>().prop_flat_map(|v| (Just(v), int_spelling(v))),
    ) {
        prop_assert_eq!(parse_int(&text), Ok(v), "{}", text);
    }

    #[test]
    fn go_booleans_are_exactly_strconv_spellings(s in go_ish()) {
        let t = ["1", "t", "T", "TRUE", "true", "True"];
        let f = ["0", "f", "F", "FALSE", "false", "False"];
        match parse_bool(&s) {
            Ok(true) => prop_assert!(t.contains(&s.as_str())),
            Ok(false) => prop_assert!(f.contains(&s.as_str())),
            Err(_) => prop_assert!(!t.contains(&s.as_str()) && !f.contains(&s.as_str())),
        }
    }

    #[test]
    fn feature_gate_lists_read_back_in_order(
        gates in proptest::collection::vec(("[A-Z][A-Za-z0-9]{0,12}", any::<bool>()), 0..6),
        spaces in any::<bool>(),
    ) {
        let sep = if spaces { " , " } else { "," };
        let text = gates
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(sep);
        prop_assert_eq!(parse_map_string_bool(&text), Ok(gates));
    }

    #[test]
    fn label_lists_read_back_in_order(
        labels in proptest::collection::vec(("[a-z][a-z0-9./-]{0,12}", "[A-Za-z0-9._=-]{0,12}"), 0..6),
    ) {
        let text = labels
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(",");
        prop_assert_eq!(parse_map_string_string(&text), Ok(labels));
    }

    #[test]
    fn arbitrary_argv_gives_flags_or_an_error(
        argv in proptest::collection::vec(
            prop_oneof![
                go_ish(),
                "-{1,2}(timeout|v|csi-address|leader-election|feature-gates|alpha-timeout|beta-timeout|probe-timeout|help|h)(=[-a-z0-9.=,]{0,8})?",
                Just("--".to_string()),
                Just("-".to_string()),
            ],
            0..8,
        ),
    ) {
        let args = std::iter::once("prog".to_string()).chain(argv);
        for set in [standalone(), aggregate()] {
            match set.parse(args.clone()) {
                Ok(parsed) => {
                    // Every view reads without panicking.
                    let _ = parsed.process().value("v");
                    let _ = parsed.deprecation_warnings();
                }
                Err(err) => {
                    let _ = err.to_string();
                }
            }
        }
    }
}
