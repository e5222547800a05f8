//! The Prometheus text exposition format 0.0.4, byte for byte as the Go client's `expfmt`
//! (prometheus/common v0.67) writes it.

use crate::family::{MetricFamily, MetricType, Sample, SampleValue};

/// The `Content-Type` the Go sidecars send with the text format when the scraper states no
/// preference (no `Accept` header), as `expfmt.Negotiate` builds it: the text format, version
/// 0.0.4, UTF-8, and the default name escaping scheme (`underscores`).
///
/// A scraper that asks for an escaping scheme gets it echoed back by Go; use
/// [`negotiate_text_content_type`] to do the same.
pub const TEXT_CONTENT_TYPE: &str =
    "text/plain; version=0.0.4; charset=utf-8; escaping=underscores";

/// The text format's `Content-Type` without the escaping term (`expfmt.FmtText`).
const FMT_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `Content-Type` that Go's `promhttp` sends for the text format in answer to a request with
/// this `Accept` header (Go's `expfmt.Negotiate`, without the protobuf formats, which we do not
/// serve).
///
/// Go echoes an `escaping=` parameter that names a known scheme (`allow-utf-8`, `underscores`,
/// `dots`, `values`). Prometheus 3 asks for `allow-utf-8`, so it gets
/// `text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8`. Our metric names are all
/// valid legacy names, so the body is the same whatever the scheme. Clauses are visited in
/// decreasing `q` order, as Go does after sorting them.
pub fn negotiate_text_content_type(accept: Option<&str>) -> String {
    let mut escaping = "underscores".to_string();
    let mut clauses = accept.map(parse_accept).unwrap_or_default();
    // Go sorts by q (and by specificity) with an unstable sort; a stable sort by q gives the same
    // result for every header a real scraper sends.
    clauses.sort_by(|a, b| b.q.total_cmp(&a.q));
    for clause in &clauses {
        if let Some(scheme) = clause.param("escaping")
            && matches!(scheme, "allow-utf-8" | "underscores" | "dots" | "values")
        {
            escaping = scheme.to_string();
        }
        let version = clause.param("version").unwrap_or("");
        if clause.media_type == "text/plain" && (version == "0.0.4" || version.is_empty()) {
            break;
        }
    }
    format!("{FMT_TEXT}; escaping={escaping}")
}

struct AcceptClause<'a> {
    media_type: String,
    q: f64,
    params: Vec<(&'a str, &'a str)>,
}

impl AcceptClause<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

/// Parses an `Accept` header as goautoneg's `ParseAccept` does (without its sort).
fn parse_accept(header: &str) -> Vec<AcceptClause<'_>> {
    let mut clauses = Vec::new();
    for part in header.split(',') {
        let mut pieces = part.trim_matches(' ').split(';');
        let media_range = pieces.next().unwrap_or("");
        let mut types = media_range.split('/');
        let main = types.next().unwrap_or("").trim_matches(' ');
        let media_type = match (types.next(), types.next()) {
            (None, None) if main == "*" => "*/*".to_string(),
            (Some(sub), None) => format!("{main}/{}", sub.trim_matches(' ')),
            _ => continue,
        };
        let mut clause = AcceptClause {
            media_type,
            q: 1.0,
            params: Vec::new(),
        };
        for param in pieces {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim_matches(' ');
            if key == "q" {
                // Go parses the raw text: " 0.5" is not a number there either.
                clause.q = value.parse().unwrap_or(0.0);
            } else {
                clause.params.push((key, value.trim_matches(' ')));
            }
        }
        clauses.push(clause);
    }
    clauses
}

/// Appends `families` (already sorted and normalized) in the text format.
pub(crate) fn encode(out: &mut String, families: &[MetricFamily]) {
    for family in families {
        encode_family(out, family);
    }
}

fn encode_family(out: &mut String, family: &MetricFamily) {
    out.push_str("# HELP ");
    out.push_str(&family.name);
    out.push(' ');
    escape_into(out, &family.help, false);
    out.push_str("\n# TYPE ");
    out.push_str(&family.name);
    out.push(' ');
    out.push_str(family.metric_type.as_str());
    out.push('\n');
    for sample in &family.samples {
        encode_sample(out, family, sample);
    }
}

fn encode_sample(out: &mut String, family: &MetricFamily, sample: &Sample) {
    let name = &family.name;
    match (&sample.value, family.metric_type) {
        (SampleValue::Value(v), MetricType::Counter | MetricType::Gauge) => {
            write_line(out, name, "", &sample.labels, None, *v);
        }
        (SampleValue::Histogram(h), MetricType::Histogram) => {
            let mut inf_seen = false;
            for (bound, cumulative) in &h.buckets {
                write_line(
                    out,
                    name,
                    "_bucket",
                    &sample.labels,
                    Some(*bound),
                    *cumulative as f64,
                );
                inf_seen |= *bound == f64::INFINITY;
            }
            if !inf_seen {
                write_line(
                    out,
                    name,
                    "_bucket",
                    &sample.labels,
                    Some(f64::INFINITY),
                    h.count as f64,
                );
            }
            write_line(out, name, "_sum", &sample.labels, None, h.sum);
            write_line(out, name, "_count", &sample.labels, None, h.count as f64);
        }
        // A value that does not fit its family's type cannot be written; Go refuses the whole
        // family at gather time, we drop the sample.
        _ => {}
    }
}

/// `name{labels,le="bound"} value\n`; `labels` are already sorted by name.
fn write_line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    le: Option<f64>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        let mut separator = '{';
        for (label, label_value) in labels {
            out.push(separator);
            out.push_str(label);
            out.push_str("=\"");
            escape_into(out, label_value, true);
            out.push('"');
            separator = ',';
        }
        if let Some(bound) = le {
            out.push(separator);
            out.push_str("le=\"");
            write_sample_value(out, bound);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    write_sample_value(out, value);
    out.push('\n');
}

/// Escapes `\` and newline (and `"` in label values) as the text format requires.
fn escape_into(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Appends `v` as the Go client's `writeFloat` does: `strconv.FormatFloat(v, 'g', -1, 64)`, except
/// that negative zero is printed as `0`.
fn write_sample_value(out: &mut String, v: f64) {
    if v == 0.0 {
        out.push('0');
    } else {
        csi_gofmt::write_float(out, v, 'g');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_without_accept_is_gos_default() {
        assert_eq!(negotiate_text_content_type(None), TEXT_CONTENT_TYPE);
        assert_eq!(negotiate_text_content_type(Some("")), TEXT_CONTENT_TYPE);
        assert_eq!(negotiate_text_content_type(Some("*/*")), TEXT_CONTENT_TYPE);
    }

    #[test]
    fn content_type_echoes_prometheus_3_escaping() {
        // The Accept header Prometheus 3 sends by default.
        let accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
                      application/openmetrics-text;version=0.0.1;q=0.5,\
                      text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
                      text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(
            negotiate_text_content_type(Some(accept)),
            "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"
        );
    }

    #[test]
    fn content_type_ignores_unknown_escaping() {
        assert_eq!(
            negotiate_text_content_type(Some("text/plain;version=0.0.4;escaping=bogus")),
            TEXT_CONTENT_TYPE
        );
        assert_eq!(
            negotiate_text_content_type(Some("text/plain; version=0.0.4; escaping=dots")),
            "text/plain; version=0.0.4; charset=utf-8; escaping=dots"
        );
    }

    #[test]
    fn escapes_help_and_label_values() {
        let mut out = String::new();
        escape_into(&mut out, "a\\b\n\"c\"", false);
        assert_eq!(out, "a\\\\b\\n\"c\"");
        out.clear();
        escape_into(&mut out, "a\\b\n\"c\"", true);
        assert_eq!(out, "a\\\\b\\n\\\"c\\\"");
    }

    #[test]
    fn sample_value_prints_negative_zero_as_zero() {
        let mut s = String::new();
        write_sample_value(&mut s, -0.0);
        assert_eq!(s, "0");
        write_sample_value(&mut s, -2.5e-7);
        assert_eq!(s, "0-2.5e-07");
    }
}
