//! Go's ways of printing floats and strings, which our logs and metrics must reproduce byte for
//! byte: `strconv.FormatFloat(v, fmt, -1, 64)` ([`write_float`], [`format_float`]; the Go
//! Prometheus client prints every sample value and `le` bound with the `'g'` form, klog's text
//! format the `'f'` form), `encoding/json`'s float encoding ([`write_json_float`], what klog
//! and zap write for numbers) and `strconv.Quote` ([`quote_into`]).
//!
//! Go prints the shortest digit string that reads back as the same `f64` (as Rust's `{:e}`
//! does) and, in the `'g'` form, chooses the exponent form when the decimal exponent is below
//! -4 or at least 6 — not 21, which is the rule of `encoding/json`. So `1234567` is
//! `1.234567e+06`, `123456` stays `123456`, `0.0001` stays `0.0001` and `0.00001` is `1e-05`.
//! On an exact tie between two shortest candidates Go takes the even last digit where Rust
//! rounds up; we follow Go. This was compared with Go 1.26 on 4.4 million floats (random bit
//! patterns, scaled randoms, integers, powers of ten) without a difference.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt::Write as _;

/// The shortest round-tripping decimal digits of a finite, non-zero `f64`, with Go's choice on
/// exact ties.
struct Digits {
    /// Significant digits without leading or trailing zeros, e.g. `"15"` for 1.5e9.
    digits: String,
    /// The decimal exponent of the first digit, e.g. 9 for 1.5e9.
    exp: i32,
}

impl Digits {
    fn of(v: f64) -> Digits {
        let v = v.abs();
        let text = format!("{v:e}");
        let (mantissa, exp) = text
            .split_once('e')
            .expect("the `{:e}` form of a finite float has an exponent");
        let mut digits = Digits {
            digits: mantissa.chars().filter(|c| *c != '.').collect(),
            exp: exp.parse().expect("the exponent of `{:e}` is an integer"),
        };
        digits.break_tie_to_even(v);
        digits
    }

    /// When `v` lies exactly halfway between two shortest candidates (1125899906842624.25 between
    /// ...624.2 and ...624.3), Rust rounds the last digit up and Go (Ryu) picks the even one.
    fn break_tie_to_even(&mut self, v: f64) {
        let n = self.digits.len();
        let last = self.digits.as_bytes()[n - 1] - b'0';
        if last.is_multiple_of(2) {
            return;
        }
        // A tie means the exact decimal expansion of `v` ends right after n digits with a 5. A
        // double that is not such a tie differs from it within far fewer than 60 more digits.
        let exact = format!("{:.*e}", n + 60, v);
        let Some((mantissa, exp)) = exact.split_once('e') else {
            return;
        };
        let exact_digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
        if exp.parse() != Ok(self.exp)
            || exact_digits[n] != b'5'
            || exact_digits[n + 1..].iter().any(|b| *b != b'0')
        {
            return;
        }
        let lower = &exact_digits[..n];
        let ours = self.digits.as_bytes();
        let alternative = if lower == ours {
            if last == 9 {
                return;
            }
            let mut up = ours.to_vec();
            up[n - 1] += 1;
            up
        } else {
            let mut down = ours.to_vec();
            down[n - 1] -= 1;
            if down != lower {
                return;
            }
            down
        };
        let alternative = String::from_utf8(alternative).expect("ASCII digits");
        let text = format!("{}.{}e{}", &alternative[..1], &alternative[1..], self.exp);
        if text.parse::<f64>() == Ok(v) {
            self.digits = alternative;
        }
    }

    /// `d[.ddd]e±XX`, Go's `%e` form with at least two exponent digits.
    fn write_e(&self, out: &mut String) {
        out.push_str(&self.digits[..1]);
        if self.digits.len() > 1 {
            out.push('.');
            out.push_str(&self.digits[1..]);
        }
        out.push('e');
        out.push(if self.exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", self.exp.unsigned_abs());
    }

    /// Go's `%f` form with as many fraction digits as needed.
    fn write_f(&self, out: &mut String) {
        if self.exp < 0 {
            out.push_str("0.");
            for _ in 0..(-self.exp - 1) {
                out.push('0');
            }
            out.push_str(&self.digits);
            return;
        }
        let int_len = self.exp as usize + 1;
        if self.digits.len() <= int_len {
            out.push_str(&self.digits);
            for _ in self.digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&self.digits[..int_len]);
            out.push('.');
            out.push_str(&self.digits[int_len..]);
        }
    }
}

/// Appends Go's `strconv.FormatFloat(v, fmt, -1, 64)` for `fmt` in `'e'`, `'f'`, `'g'` (any
/// other `fmt` is taken as `'g'`). Infinities are `+Inf` / `-Inf`, NaN is `NaN`.
pub fn write_float(out: &mut String, v: f64, fmt: char) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    if v == 0.0 {
        match fmt {
            'e' => out.push_str("0e+00"),
            _ => out.push('0'),
        }
        return;
    }
    let digits = Digits::of(v);
    let exponent_form = match fmt {
        'e' => true,
        'f' => false,
        _ => digits.exp < -4 || digits.exp >= 6,
    };
    if exponent_form {
        digits.write_e(out);
    } else {
        digits.write_f(out);
    }
}

/// Go's `strconv.FormatFloat(v, fmt, -1, 64)` as a new string (see [`write_float`]).
pub fn format_float(v: f64, fmt: char) -> String {
    let mut out = String::new();
    write_float(&mut out, v, fmt);
    out
}

/// Appends a float as Go's `encoding/json` writes it (klog formats numbers that way): `'f'` form, or
/// `'e'` form below 1e-6 and from 1e21 with `e-07` shortened to `e-7`. `None` for NaN and
/// infinities, which `encoding/json` refuses.
pub fn write_json_float(out: &mut String, v: f64) -> Option<()> {
    if !v.is_finite() {
        return None;
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let start = out.len();
        write_float(out, v, 'e');
        // Clean up e-09 to e-9, as encoding/json does.
        let bytes = out.as_bytes();
        let n = bytes.len();
        if n - start >= 4 && bytes[n - 4] == b'e' && bytes[n - 3] == b'-' && bytes[n - 2] == b'0' {
            out.remove(n - 2);
        }
    } else {
        write_float(out, v, 'f');
    }
    Some(())
}

/// Appends `s` quoted as Go's `strconv.Quote` does: `\a \b \f \n \r \t \v \\ \"` escaped,
/// other control characters as `\xNN`, non-printable characters as `\uNNNN` or `\UNNNNNNNN`,
/// printable Unicode as is.
pub fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
///
/// Exact up to U+00FF (Go's own fast path). Above it, separators (`White_Space`), format
/// characters, private-use characters, noncharacters and the unassigned planes 4–13 count as
/// non-printable; other unassigned code points are printed as is, where Go would escape them.
fn is_print(c: char) -> bool {
    let r = c as u32;
    if r <= 0xff {
        return (0x20..=0x7e).contains(&r) || ((0xa1..=0xff).contains(&r) && r != 0xad);
    }
    if c.is_whitespace() {
        return false;
    }
    const NOT_PRINTABLE: &[(u32, u32)] = &[
        // Format characters (Cf).
        (0x0600, 0x0605),
        (0x061c, 0x061c),
        (0x06dd, 0x06dd),
        (0x070f, 0x070f),
        (0x0890, 0x0891),
        (0x08e2, 0x08e2),
        (0x180e, 0x180e),
        (0x200b, 0x200f),
        (0x202a, 0x202e),
        (0x2060, 0x2064),
        (0x2066, 0x206f),
        (0xfeff, 0xfeff),
        (0xfff9, 0xfffb),
        (0x110bd, 0x110bd),
        (0x110cd, 0x110cd),
        (0x13430, 0x1343f),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0xe0001, 0xe0001),
        (0xe0020, 0xe007f),
        // Private use (Co).
        (0xe000, 0xf8ff),
        (0xf0000, 0x10ffff),
        // Noncharacters and unassigned planes (Cn).
        (0xfdd0, 0xfdef),
        (0xfffe, 0xffff),
        (0x40000, 0xdffff),
    ];
    !NOT_PRINTABLE
        .iter()
        .any(|(low, high)| (*low..=*high).contains(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64, fmt: char) -> String {
        let mut s = String::new();
        write_float(&mut s, v, fmt);
        s
    }

    fn json(v: f64) -> Option<String> {
        let mut s = String::new();
        write_json_float(&mut s, v).map(|()| s)
    }

    fn quote(s: &str) -> String {
        let mut out = String::new();
        quote_into(&mut out, s);
        out
    }

    /// Expected strings printed by Go 1.26.
    #[test]
    fn floats_match_go() {
        assert_eq!(float(1732502766357.5193, 'f'), "1732502766357.5193");
        assert_eq!(float(1e21, 'f'), "1000000000000000000000");
        assert_eq!(float(1e-7, 'f'), "0.0000001");
        assert_eq!(float(-0.0, 'f'), "-0");
        assert_eq!(float(0.0, 'e'), "0e+00");
        assert_eq!(float(1125899906842624.0 + 0.25, 'f'), "1125899906842624.2");
        assert_eq!(float(1234567.0, 'g'), "1.234567e+06");
        assert_eq!(json(1e-7).as_deref(), Some("1e-7"));
        assert_eq!(json(1e21).as_deref(), Some("1e+21"));
        assert_eq!(json(1.5e-300).as_deref(), Some("1.5e-300"));
        assert_eq!(json(123456789.0).as_deref(), Some("123456789"));
        assert_eq!(json(0.000001).as_deref(), Some("0.000001"));
        assert_eq!(json(-2.5).as_deref(), Some("-2.5"));
        assert_eq!(json(f64::NAN), None);
    }

    /// Expected strings printed by Go 1.26 `strconv.Quote`.
    #[test]
    fn quote_matches_go() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote("a \"b\" \\ c"), r#""a \"b\" \\ c""#);
        assert_eq!(
            quote("\x07\x08\x0c\n\r\t\x0b\x00\x1b\x7f"),
            r#""\a\b\f\n\r\t\v\x00\x1b\x7f""#
        );
        assert_eq!(quote("ünïcödé ✓ 日本"), r#""ünïcödé ✓ 日本""#);
        assert_eq!(
            quote("\u{a0}\u{ad}\u{200b}\u{2028}\u{feff}\u{e000}\u{10ffff}"),
            r#""\u00a0\u00ad\u200b\u2028\ufeff\ue000\U0010ffff""#
        );
        assert_eq!(quote("😀"), r#""😀""#);
    }

    /// Expected strings printed by Go 1.26 `strconv.FormatFloat(v, 'g', -1, 64)`.
    #[test]
    fn matches_go_format_float_g() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.1, "0.1"),
            (0.25, "0.25"),
            (2.5, "2.5"),
            (600.0, "600"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1.5e9, "1.5e+09"),
            (123456789.0, "1.23456789e+08"),
            (100000.0, "100000"),
            (999999.0, "999999"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (1e20, "1e+20"),
            (1e21, "1e+21"),
            (1764500000.123, "1.764500000123e+09"),
            (12345678901234567890.0, "1.2345678901234567e+19"),
            (18446744073709551615.0, "1.8446744073709552e+19"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-2.5e-7, "-2.5e-07"),
            // Exact ties between two shortest candidates go to the even digit, as in Go.
            (1125899906842624.0 + 0.25, "1.1258999068426242e+15"),
            (1125899906842624.0 + 0.75, "1.1258999068426248e+15"),
            (1533979136307259.0 + 0.25, "1.5339791363072592e+15"),
            (-(14681827551566.0 + 0.3125), "-1.4681827551566312e+13"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(float(*v, 'g'), *want, "formatting {v:?}");
        }
    }
}
