//! Go's value semantics where the translation depends on them: an absent string is the empty
//! string, an empty string or `false` is not written, `strconv.Atoi`, `%v` of a string set, and
//! the part of `net/url.Parse` the AWS EBS volume ID needs.

use std::collections::BTreeSet;

/// The string Go sees for an optional field (`""` when absent).
pub(crate) fn str(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

/// The name Go sees for an object without one.
pub(crate) fn name(value: &Option<String>) -> &str {
    str(value)
}

/// A Go string field with `omitempty`: the empty string is not written.
pub(crate) fn some_str(value: impl Into<String>) -> Option<String> {
    let value = value.into();
    (!value.is_empty()).then_some(value)
}

/// A Go bool field with `omitempty`: `false` is not written.
pub(crate) fn some_true(value: bool) -> Option<bool> {
    value.then_some(true)
}

/// `strconv.Atoi` on a 64-bit platform, then Go's `int32(...)` conversion (which wraps).
pub(crate) fn atoi_i32(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            quote(s)
        ));
    }
    match s.parse::<i64>() {
        Ok(v) => Ok(v as i32),
        Err(_) => Err(format!(
            "strconv.Atoi: parsing {}: value out of range",
            quote(s)
        )),
    }
}

/// Go's `%q` for the strings these messages quote (printable ASCII and common escapes).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `%v` of a `sets.String` (a map to empty structs): `map[a:{} b:{}]`, keys sorted.
pub(crate) fn set_string(set: &BTreeSet<String>) -> String {
    let items: Vec<String> = set.iter().map(|k| format!("{k}:{{}}")).collect();
    format!("map[{}]", items.join(" "))
}

/// The scheme and unescaped path of a URL as `net/url.Parse` reads them, or Go's error text.
/// Only URLs of the form `scheme://authority/path` are asked for (the caller checked the
/// `aws://` prefix).
pub(crate) fn parse_url_path(raw: &str) -> Result<(String, String), String> {
    let parse_err = |what: String| format!("parse {}: {what}", quote(raw));
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(parse_err(
            "net/url: invalid control character in URL".to_owned(),
        ));
    }
    // The fragment is cut off first, then the query.
    let (without_fragment, _) = raw.split_once('#').unwrap_or((raw, ""));
    let (rest, _) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    let (scheme, rest) = rest
        .split_once(':')
        .ok_or_else(|| parse_err("missing protocol scheme".to_owned()))?;
    let scheme = scheme.to_ascii_lowercase();
    let after = rest.strip_prefix("//").unwrap_or(rest);
    let (authority, path) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let host = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            if !userinfo.bytes().all(valid_userinfo_byte) {
                return Err(parse_err("net/url: invalid userinfo".to_owned()));
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    check_host(host).map_err(parse_err)?;
    let path = unescape(path, false).map_err(parse_err)?;
    Ok((scheme, path))
}

fn valid_userinfo_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b)
}

fn check_host(host: &str) -> Result<(), String> {
    if host.starts_with('[') {
        let Some(end) = host.rfind(']') else {
            return Err("missing ']' in host".to_owned());
        };
        let port = &host[end + 1..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {} after host", quote(port)));
        }
        return unescape(&host[..=end], true).map(|_| ());
    }
    if let Some(i) = host.rfind(':') {
        let port = &host[i..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {} after host", quote(port)));
        }
    }
    unescape(host, true).map(|_| ())
}

fn valid_optional_port(port: &str) -> bool {
    if port.is_empty() {
        return true;
    }
    match port.strip_prefix(':') {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Go's `shouldEscape` for a host: what may stand unescaped in one.
fn host_byte_allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&b)
}

fn unescape(s: &str, host: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let valid =
                i + 2 < bytes.len() && hex(bytes[i + 1]).is_some() && hex(bytes[i + 2]).is_some();
            if !valid {
                let end = (i + 3).min(bytes.len());
                let bad = String::from_utf8_lossy(&bytes[i..end]).into_owned();
                return Err(format!("invalid URL escape {}", quote(&bad)));
            }
            let v = (hex(bytes[i + 1]).unwrap_or(0) * 16 + hex(bytes[i + 2]).unwrap_or(0)) as u8;
            if host && v < 0x80 && v != b'%' {
                let bad = String::from_utf8_lossy(&bytes[i..i + 3]).into_owned();
                return Err(format!("invalid URL escape {}", quote(&bad)));
            }
            out.push(v);
            i += 3;
            continue;
        }
        if host && b < 0x80 && !host_byte_allowed(b) {
            return Err(format!(
                "invalid character {} in host name",
                quote(&(b as char).to_string())
            ));
        }
        out.push(b);
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_matches_go() {
        assert_eq!(atoi_i32("3"), Ok(3));
        assert_eq!(atoi_i32("+3"), Ok(3));
        assert_eq!(atoi_i32("-3"), Ok(-3));
        assert_eq!(atoi_i32("4294967297"), Ok(1));
        assert!(atoi_i32("").is_err());
        assert!(atoi_i32(" 3").is_err());
        assert!(
            atoi_i32("99999999999999999999")
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn url_path() {
        assert_eq!(
            parse_url_path("aws://us-east-1a/vol-1").unwrap(),
            ("aws".to_owned(), "/vol-1".to_owned())
        );
        assert_eq!(
            parse_url_path("aws:///vol-%41").unwrap().1,
            "/vol-A".to_owned()
        );
        assert!(parse_url_path("aws://a b/vol-1").is_err());
        assert!(parse_url_path("aws://host/vol-%zz").is_err());
    }
}
