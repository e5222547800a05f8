//! The `tracing` layer: verbosity filtering, field collection and klog/zap formatting.

use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::time::Utc;
use crate::{LogFormat, LogOptions};
use csi_gofmt::{quote_into, write_float, write_json_float};

/// Crates whose `debug!` and `trace!` events are much chattier than ours (HTTP/2 frames, every
/// poll of a connection): their `debug!` counts as klog V(7) and their `trace!` as V(9), like
/// client-go's request logging, so that `-v=5` shows our gRPC calls without drowning them.
/// A target belongs to a crate when its first `::` segment is the crate name.
pub const DEPENDENCY_TARGETS: &[&str] = &[
    "axum",
    "h2",
    "hyper",
    "hyper_util",
    "k8s_openapi",
    "kube",
    "kube_client",
    "kube_core",
    "kube_runtime",
    "mio",
    "prost",
    "reqwest",
    "rustls",
    "tokio",
    "tokio_stream",
    "tokio_util",
    "tonic",
    "tonic_prost",
    "tower",
    "tower_http",
    "tracing",
    "want",
];

/// The klog verbosity of an event without a `v` field.
fn level_verbosity(meta: &Metadata<'_>) -> u32 {
    let dependency = || {
        let krate = meta.target().split("::").next().unwrap_or_default();
        DEPENDENCY_TARGETS.contains(&krate)
    };
    match *meta.level() {
        Level::ERROR | Level::WARN | Level::INFO => 0,
        Level::DEBUG if dependency() => 7,
        Level::DEBUG => 2,
        _ if dependency() => 9,
        _ => 5,
    }
}

/// klog's severity letter: `E`, `W`, or `I` for info and below.
fn severity(level: &Level) -> char {
    match *level {
        Level::ERROR => 'E',
        Level::WARN => 'W',
        _ => 'I',
    }
}

/// A `tracing` layer that writes klog text lines or component-base JSON lines. See the crate
/// documentation for the formats and the verbosity rules.
///
/// It is meant to be the only filtering layer: callsites it does not want are disabled for the
/// whole subscriber.
pub struct KlogLayer {
    format: LogFormat,
    verbosity: u32,
    split_stream: bool,
    info: BoxMakeWriter,
    error: BoxMakeWriter,
    clock: fn() -> SystemTime,
    pid: u32,
}

impl fmt::Debug for KlogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KlogLayer")
            .field("format", &self.format)
            .field("verbosity", &self.verbosity)
            .field("split_stream", &self.split_stream)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl KlogLayer {
    /// A layer for these options, writing to stderr, or with `split_stream` info lines to stdout
    /// and the rest to stderr.
    pub fn new(opts: &LogOptions) -> KlogLayer {
        KlogLayer {
            format: opts.format,
            verbosity: opts.verbosity,
            split_stream: opts.split_stream,
            info: if opts.split_stream {
                BoxMakeWriter::new(std::io::stdout)
            } else {
                BoxMakeWriter::new(std::io::stderr)
            },
            error: BoxMakeWriter::new(std::io::stderr),
            clock: SystemTime::now,
            pid: std::process::id(),
        }
    }

    /// Writes every line to `writer` (both streams), e.g. a [`SharedBuffer`](crate::SharedBuffer)
    /// in tests.
    pub fn with_writer<W>(self, writer: W) -> KlogLayer
    where
        W: for<'a> MakeWriter<'a> + Clone + Send + Sync + 'static,
    {
        self.with_info_writer(writer.clone())
            .with_error_writer(writer)
    }

    /// Where lines go that the split stream sends to stdout (see the crate documentation);
    /// without `split_stream` this writer is not used.
    pub fn with_info_writer<W>(mut self, writer: W) -> KlogLayer
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        self.info = BoxMakeWriter::new(writer);
        self
    }

    /// Where lines go that the split stream sends to stderr, and every line without
    /// `split_stream`.
    pub fn with_error_writer<W>(mut self, writer: W) -> KlogLayer
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        self.error = BoxMakeWriter::new(writer);
        self
    }

    /// Takes the time from `clock` instead of the system clock, for tests.
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> KlogLayer {
        self.clock = clock;
        self
    }

    /// Prints `pid` in the text header instead of this process's id, for tests.
    pub fn with_pid(mut self, pid: u32) -> KlogLayer {
        self.pid = pid;
        self
    }

    /// `Some(enabled)` when the callsite's metadata decides, `None` when its `v` field does.
    fn callsite_enabled(&self, meta: &Metadata<'_>) -> Option<bool> {
        if meta.is_event() && matches!(*meta.level(), Level::ERROR | Level::WARN) {
            return Some(true);
        }
        if meta.is_event() && meta.fields().field("v").is_some() {
            return None;
        }
        Some(level_verbosity(meta) <= self.verbosity)
    }

    /// Formats one event into a line, or `None` if its verbosity is too high.
    fn format_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Option<(String, bool)>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let is_error = *meta.level() == Level::ERROR;
        let info_like = !matches!(*meta.level(), Level::ERROR | Level::WARN);
        let v = match fields.v {
            Some(v) if info_like => v,
            _ if info_like => level_verbosity(meta),
            _ => 0,
        };
        if v > self.verbosity {
            return None;
        }
        let mut context = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    context.extend(span_fields.0.iter().cloned());
                }
            }
        }
        let line = match self.format {
            LogFormat::Text => self.text_line(meta, &fields, &context, is_error),
            LogFormat::Json => {
                let v = (!is_error).then_some(v);
                self.json_line(meta, &fields, &context, v)
            }
        };
        // Text splits by severity letter (klog's router), JSON by zap level (warnings are info).
        let to_error_stream = match self.format {
            LogFormat::Text => *meta.level() <= Level::WARN,
            LogFormat::Json => is_error,
        };
        Some((line, to_error_stream))
    }

    /// `I1125 02:46:06.357519   13355 file.rs:214] "msg" err="..." key="value"`, as klog's
    /// text logger writes it.
    fn text_line(
        &self,
        meta: &Metadata<'_>,
        fields: &EventFields,
        context: &[(&'static str, Value)],
        is_error: bool,
    ) -> String {
        let mut line = String::with_capacity(128);
        let t = Utc::from((self.clock)());
        let file = meta
            .file()
            .map_or("???", |f| f.rsplit('/').next().unwrap_or(f));
        let line_no = if meta.file().is_some() {
            meta.line().unwrap_or(0)
        } else {
            1
        };
        // klog writes the pid with `nDigits(7, ...)`: right-aligned, the last seven digits.
        let _ = write!(
            line,
            "{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {:>7} {}:{}] ",
            severity(meta.level()),
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            t.micros,
            self.pid % 10_000_000,
            file,
            line_no
        );
        quote_into(&mut line, fields.message.as_deref().unwrap_or(""));

        // klog's order: the error of ErrorS first, then WithValues (our spans), then the call's
        // pairs; a repeated key keeps its last value, or its first place if the value is the same.
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let mut push = |key: &'static str, value: &Value| {
            let mut text = String::new();
            value.write_klog(&mut text);
            if let Some(i) = pairs.iter().position(|(k, _)| *k == key) {
                if pairs[i].1 == text {
                    return;
                }
                pairs.remove(i);
            }
            pairs.push((key, text));
        };
        let error_first = is_error.then(|| fields.error()).flatten();
        if let Some((key, value)) = error_first {
            push(key, value);
        }
        for (key, value) in context {
            push(key, value);
        }
        for (i, (key, value)) in fields.pairs.iter().enumerate() {
            if error_first.is_some() && Some(i) == fields.error_index() {
                continue;
            }
            push(key, value);
        }
        for (key, text) in pairs {
            line.push(' ');
            line.push_str(key);
            line.push_str(&text);
        }
        line.push('\n');
        line
    }

    /// `{"ts":1732502766357.5193,"caller":"src/lib.rs:214","msg":"...","v":0,"key":"value"}`, as
    /// component-base's zap-based JSON logger writes it.
    fn json_line(
        &self,
        meta: &Metadata<'_>,
        fields: &EventFields,
        context: &[(&'static str, Value)],
        v: Option<u32>,
    ) -> String {
        let mut line = String::with_capacity(160);
        let nanos = (self.clock)()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        line.push_str("{\"ts\":");
        write_float(&mut line, nanos as f64 / 1e6, 'f');
        if let Some(file) = meta.file() {
            line.push_str(",\"caller\":");
            // zap's ShortCallerEncoder: the file with its last directory.
            let short = match file.rfind('/') {
                Some(last) => match file[..last].rfind('/') {
                    Some(before) => &file[before + 1..],
                    None => file,
                },
                None => file,
            };
            let mut caller = String::from(short);
            let _ = write!(caller, ":{}", meta.line().unwrap_or(0));
            zap_string(&mut line, &caller);
        }
        line.push_str(",\"msg\":");
        zap_string(&mut line, fields.message.as_deref().unwrap_or(""));
        // zapr: logger.WithValues pairs (our spans), then "v" for info, the call's pairs, and
        // for errors "err" last.
        for (key, value) in context {
            json_pair(&mut line, key, value);
        }
        if let Some(v) = v {
            let _ = write!(line, ",\"v\":{v}");
        }
        let error_last = v.is_none().then(|| fields.error_index()).flatten();
        for (i, (key, value)) in fields.pairs.iter().enumerate() {
            if Some(i) != error_last {
                json_pair(&mut line, key, value);
            }
        }
        if let Some(i) = error_last {
            let (key, value) = &fields.pairs[i];
            json_pair(&mut line, key, value);
        }
        line.push_str("}\n");
        line
    }
}

fn json_pair(line: &mut String, key: &str, value: &Value) {
    line.push(',');
    zap_string(line, key);
    line.push(':');
    value.write_zap(line);
}

/// A JSON string as zap's encoder escapes it: `\\`, `\"`, `\n`, `\r`, `\t`, other control bytes
/// as `\u00xx`; everything else, including `<`, `>`, `&` and U+2028, as is.
fn zap_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<S> Layer<S> for KlogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        match self.callsite_enabled(meta) {
            Some(true) => Interest::always(),
            Some(false) => Interest::never(),
            None => Interest::sometimes(),
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.callsite_enabled(meta) != Some(false)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // An explicit `v` field may enable a trace! event at any verbosity.
        Some(LevelFilter::TRACE)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some((line, to_error_stream)) = self.format_event(event, &ctx) else {
            return;
        };
        let writer = if to_error_stream || !self.split_stream {
            &self.error
        } else {
            &self.info
        };
        // One write per line, so that lines of concurrent events do not interleave. A failed
        // write has nowhere to be reported.
        let _ = writer.make_writer().write_all(line.as_bytes());
    }
}

/// A field value, kept typed so that each format can print it its own way.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    /// A string, or anything recorded with `%` or `?`.
    Str(String),
    /// A signed integer.
    Int(i128),
    /// An unsigned integer.
    Uint(u128),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Value {
    /// After the key, as klog's `KVFormat` writes it: `="quoted"` (or `=<` multi-line block) for
    /// strings, bare numbers and booleans through `encoding/json`.
    fn write_klog(&self, out: &mut String) {
        match self {
            Value::Str(s) => write_klog_string(out, s),
            Value::Int(i) => {
                let _ = write!(out, "={i}");
            }
            Value::Uint(u) => {
                let _ = write!(out, "={u}");
            }
            Value::Float(f) => {
                out.push('=');
                if write_json_float(out, *f).is_none() {
                    out.push_str("\"<internal error: json: unsupported value: ");
                    write_float(out, *f, 'g');
                    out.push_str(">\"");
                }
            }
            Value::Bool(b) => {
                let _ = write!(out, "={b}");
            }
        }
    }

    /// As zap's JSON encoder writes it.
    fn write_zap(&self, out: &mut String) {
        match self {
            Value::Str(s) => zap_string(out, s),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(out, "{u}");
            }
            Value::Float(f) if f.is_finite() => write_float(out, *f, 'f'),
            Value::Float(f) => {
                out.push('"');
                write_float(out, *f, 'g');
                out.push('"');
            }
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
        }
    }
}

/// klog's `writeStringValue`: `="quoted"` on one line, or for a value with line breaks a block
/// of tab-indented lines closed by ` >`.
fn write_klog_string(out: &mut String, s: &str) {
    if !s.contains('\n') {
        out.push('=');
        quote_into(out, s);
        return;
    }
    out.push_str("=<\n");
    let mut rest = s;
    while let Some(i) = rest.find('\n') {
        out.push('\t');
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
    }
    if rest.is_empty() {
        out.push_str(" >");
    } else {
        out.push('\t');
        out.push_str(rest);
        out.push_str("\n >");
    }
}

/// The text of an error and its sources, `outer: inner: root`, as Go's wrapped errors read;
/// a source whose text already ends the message is not repeated.
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Field names that mean "the error": both become `err`, as klog and zapr name it.
fn is_error_field(name: &str) -> bool {
    name == "err" || name == "error"
}

/// An event's fields: the message, the `v` field, and the rest in order.
#[derive(Debug, Default)]
struct EventFields {
    message: Option<String>,
    v: Option<u32>,
    pairs: Vec<(&'static str, Value)>,
}

impl EventFields {
    /// The position of the last error field, if any.
    fn error_index(&self) -> Option<usize> {
        self.pairs.iter().rposition(|(key, _)| *key == "err")
    }

    fn error(&self) -> Option<(&'static str, &Value)> {
        self.error_index()
            .map(|i| (self.pairs[i].0, &self.pairs[i].1))
    }

    fn push(&mut self, field: &Field, value: Value) {
        let name = if is_error_field(field.name()) {
            "err"
        } else {
            field.name()
        };
        self.pairs.push((name, value));
    }

    fn set_v(&mut self, field: &Field, v: i128) -> bool {
        if field.name() != "v" {
            return false;
        }
        self.v = Some(u32::try_from(v.max(0)).unwrap_or(u32::MAX));
        true
    }
}

impl Visit for EventFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.set_v(field, value.into()) {
            self.push(field, Value::Int(value.into()));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.set_v(field, value.into()) {
            self.push(field, Value::Uint(value.into()));
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if !self.set_v(field, value) {
            self.push(field, Value::Int(value));
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if !self.set_v(field, i128::try_from(value).unwrap_or(i128::MAX)) {
            self.push(field, Value::Uint(value));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::Float(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.push(field, Value::Str(value.to_string()));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn StdError + 'static)) {
        self.push(field, Value::Str(error_chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.push(field, Value::Str(format!("{value:?}")));
        }
    }
}

/// The fields of a span, shown on every event inside it (klog's `WithValues`).
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, Value)>);

impl SpanFields {
    fn set(&mut self, field: &Field, value: Value) {
        let name = if is_error_field(field.name()) {
            "err"
        } else {
            field.name()
        };
        match self.0.iter_mut().find(|(key, _)| *key == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for SpanFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Value::Int(value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, Value::Uint(value.into()));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.set(field, Value::Int(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.set(field, Value::Uint(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, Value::Float(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Value::Str(value.to_string()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn StdError + 'static)) {
        self.set(field, Value::Str(error_chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, Value::Str(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn klog(value: Value) -> String {
        let mut out = String::new();
        value.write_klog(&mut out);
        out
    }

    fn zap(value: Value) -> String {
        let mut out = String::new();
        value.write_zap(&mut out);
        out
    }

    #[test]
    fn klog_values() {
        assert_eq!(klog(Value::Str("a \"b\"".into())), r#"="a \"b\"""#);
        assert_eq!(klog(Value::Int(-3)), "=-3");
        assert_eq!(klog(Value::Uint(3)), "=3");
        assert_eq!(klog(Value::Bool(true)), "=true");
        assert_eq!(klog(Value::Float(0.5)), "=0.5");
        assert_eq!(klog(Value::Float(1e-7)), "=1e-7");
        assert_eq!(
            klog(Value::Float(f64::NAN)),
            r#"="<internal error: json: unsupported value: NaN>""#
        );
        assert_eq!(
            klog(Value::Str("line 1\nline 2".into())),
            "=<\n\tline 1\n\tline 2\n >"
        );
        assert_eq!(
            klog(Value::Str("line 1\nline 2\n".into())),
            "=<\n\tline 1\n\tline 2\n >"
        );
    }

    #[test]
    fn zap_values() {
        assert_eq!(
            zap(Value::Str("<a&b>\t\"q\"\\\u{1}\u{2028}".into())),
            r#""<a&b>\t\"q\"\\\u0001 ""#.replace(' ', "\u{2028}")
        );
        assert_eq!(zap(Value::Float(1e21)), "1000000000000000000000");
        assert_eq!(zap(Value::Float(f64::INFINITY)), r#""+Inf""#);
        assert_eq!(zap(Value::Int(-1)), "-1");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot connect")
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chains_read_like_go() {
        let err = Wrapped(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&err), "cannot connect: connection refused");
    }
}
