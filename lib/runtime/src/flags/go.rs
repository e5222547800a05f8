//! Values the way Go's `flag` package and Kubernetes' flag types read them.
//!
//! Upstream manifests were written for Go binaries, so every value a manifest can hold must mean
//! the same here: Go durations (`1m30s`, `500ms`), Go booleans (`t`, `TRUE`, `0`), Go integers
//! (`0x1f`), `mapStringBool` (`A=true,B=false`) and `mapStringString` (`k1:v1,k2:v2` as
//! `--leader-election-labels` uses it).

use std::time::Duration;

/// Parses a Go boolean (`strconv.ParseBool`).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: {s:?} is not a boolean")),
    }
}

/// Parses a Go integer (`strconv.ParseInt(s, 0, 64)`): decimal, `0x`, `0o`, `0b`, leading `0`
/// for octal, and `_` between digits when a base prefix is present.
pub fn parse_int(s: &str) -> Result<i64, String> {
    let err = || format!("parse error: {s:?} is not an integer");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return Err(err());
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower, false)
    };
    let digits = if prefixed {
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(err());
    }
    let magnitude = i128::from_str_radix(&digits, radix).map_err(|_| err())?;
    let value = if neg { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| format!("parse error: {s:?} is out of range"))
}

/// Parses a Go float (`strconv.ParseFloat(s, 64)`), including `Inf` and `NaN` spellings.
pub fn parse_float(s: &str) -> Result<f64, String> {
    let cleaned = s.replace('_', "");
    cleaned
        .parse::<f64>()
        .map_err(|_| format!("parse error: {s:?} is not a number"))
}

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers with a unit each
/// (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), such as `300ms`, `1.5h` or `2h45m`; a bare `0`
/// is zero. As in Go, whole numbers are exact, a fraction is scaled in floating point and
/// truncated to the nanosecond (`1.5ns` is 1ns), and anything above 2^63-1 ns (about 292
/// years) is out of range. Negative durations are rejected: no sidecar flag can use one.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const MAX: u64 = 1 << 63;
    let invalid = || format!("invalid duration {s:?}");
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if let Some(r) = rest.strip_prefix('-') {
        rest = r;
        negative = true;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        // The whole part, exact.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for digit in rest[..int_len].bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(digit - b'0')))
                .filter(|w| *w <= MAX)
                .ok_or_else(invalid)?;
        }
        rest = &rest[int_len..];
        // The fraction: digits past what fits are ignored, as Go does.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_len = 0;
        if let Some(r) = rest.strip_prefix('.') {
            frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for digit in r[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(digit - b'0')))
                    .filter(|f| *f < MAX)
                {
                    Some(f) => {
                        fraction = f;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            rest = &r[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per_unit: u64 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {s:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {s:?}")),
        };
        let mut value = whole
            .checked_mul(nanos_per_unit)
            .filter(|v| *v <= MAX)
            .ok_or_else(invalid)?;
        if fraction > 0 {
            // At most 3.6e12 (the nanoseconds of an hour), so the cast cannot saturate.
            value += (fraction as f64 * (nanos_per_unit as f64 / scale)) as u64;
            if value > MAX {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= MAX)
            .ok_or_else(invalid)?;
    }
    if negative && total > 0 {
        return Err(format!("negative duration {s:?} is not allowed"));
    }
    if total > MAX - 1 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

/// Formats a duration as Go's `time.Duration.String()` does (`1m30s`, `500ms`, `0s`), for help
/// text and logs that must read like upstream's.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos as f64 / 1e6));
    }
    let total_secs = d.as_secs();
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = (total_secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim_fraction(secs)));
    out
}

fn trim_fraction(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Parses a Kubernetes `mapStringBool` (`--feature-gates=A=true,B=false`).
pub fn parse_map_string_bool(s: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    for pair in s.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("missing bool value for {pair}"))?;
        let value = parse_bool(value.trim())
            .map_err(|_| format!("invalid value of {key}: {value}, err: not a boolean"))?;
        out.push((key.trim().to_string(), value));
    }
    Ok(out)
}

/// Parses `k1:v1,k2:v2` (csi-lib-utils' `--leader-election-labels`).
pub fn parse_map_string_string(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in s.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once(':')
            .ok_or_else(|| format!("{pair:?} is not of the form key:value"))?;
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_reads_them() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("1s", Duration::from_secs(1)),
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            ("2h45m", Duration::from_secs(9900)),
            ("1h0m0s", Duration::from_secs(3600)),
            ("100us", Duration::from_micros(100)),
            ("100µs", Duration::from_micros(100)),
            ("15ns", Duration::from_nanos(15)),
            ("+5s", Duration::from_secs(5)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn durations_at_gos_edges() {
        // A fraction is truncated to the nanosecond, not rounded.
        assert_eq!(parse_duration("1.5ns"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_duration("0.9ns"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.0000000009s"), Ok(Duration::from_secs(1)));
        // Negative zero is zero.
        assert_eq!(parse_duration("-0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("-0"), Ok(Duration::ZERO));
        // The range of Go's time.Duration.
        assert_eq!(
            parse_duration("9223372036854775807ns"),
            Ok(Duration::from_nanos(i64::MAX as u64))
        );
        assert_eq!(
            parse_duration("2562047h"),
            Ok(Duration::from_secs(2_562_047 * 3600))
        );
        for input in [
            "9223372036854775808ns",
            "2562048h",
            "99999999999999999999s",
            "2562047h48m",
        ] {
            assert!(parse_duration(input).is_err(), "{input:?}");
        }
        // Fraction digits past what fits are ignored rather than overflowing.
        assert_eq!(
            parse_duration("1.00000000000000000000000000001s"),
            Ok(Duration::from_secs(1))
        );
    }

    #[test]
    fn bad_durations_are_rejected() {
        for input in ["", "1", "30", "s", "1x", "1.2.3s", "-1s", "1s2", "abc", "."] {
            assert!(
                parse_duration(input).is_err(),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn durations_format_as_go_prints_them() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(15 * 60), "15m0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_micros(3), "3µs"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(*d), *want);
        }
    }

    #[test]
    fn booleans_as_go_reads_them() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        for bad in ["yes", "no", "tRUE", "", "2"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_as_go_reads_them() {
        let cases: &[(&str, i64)] = &[
            ("10", 10),
            ("-3", -3),
            ("+7", 7),
            ("0x1f", 31),
            ("0o17", 15),
            ("017", 15),
            ("0b101", 5),
            ("0", 0),
            ("1_000", 1000),
        ];
        for (input, want) in cases {
            if *input == "1_000" {
                // Underscores are only allowed after a base prefix, as in Go.
                assert!(parse_int(input).is_err());
                continue;
            }
            assert_eq!(parse_int(input), Ok(*want), "{input}");
        }
        assert_eq!(parse_int("0x_1f"), Ok(31));
        for bad in ["", "-", "ten", "1.5", "0x", "99999999999999999999"] {
            assert!(parse_int(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn feature_gate_maps() {
        assert_eq!(
            parse_map_string_bool("A=true,B=false"),
            Ok(vec![("A".into(), true), ("B".into(), false)])
        );
        assert_eq!(
            parse_map_string_bool(" Topology = true "),
            Ok(vec![("Topology".into(), true)])
        );
        assert!(parse_map_string_bool("A").is_err());
        assert!(parse_map_string_bool("A=maybe").is_err());
        assert_eq!(parse_map_string_bool(""), Ok(vec![]));
    }

    #[test]
    fn label_maps() {
        assert_eq!(
            parse_map_string_string("app:csi,tier:storage"),
            Ok(vec![
                ("app".into(), "csi".into()),
                ("tier".into(), "storage".into())
            ])
        );
        assert!(parse_map_string_string("app=csi").is_err());
    }
}
