//! Log output for `tracing` in the formats of the Go sidecars: klog's text lines and
//! component-base's JSON lines, filtered by klog's `-v` verbosity.
//!
//! This crate owns the global subscriber ([`init`]) and the line formats. It registers no flags
//! (the runtime crate maps `-v`, `--logging-format` and `--log-*-split-stream` onto
//! [`LogOptions`]) and has no `log`-crate bridge.
//!
//! # Verbosity
//!
//! klog shows a `V(n)` message when `-v` is at least `n`. `tracing` levels map onto that:
//!
//! | event | klog verbosity | shown when |
//! |---|---|---|
//! | `error!`, `warn!`, `info!` | 0 | always |
//! | `debug!` | V(2) (klog's V(2)–V(4) range) | `-v=2` and up |
//! | `trace!` | V(5), e.g. the gRPC call and response logs | `-v=5` and up |
//! | `debug!` / `trace!` from a crate in [`DEPENDENCY_TARGETS`] (hyper, h2, tonic, kube, ...) | V(7) / V(9) | `-v=7` / `-v=9` and up |
//!
//! An explicit `v` field sets the verbosity of an `info!`, `debug!` or `trace!` event and
//! overrides the table, so code can mirror upstream exactly where it matters:
//! `tracing::debug!(v = 4, volume, "Attaching")` is shown from `-v=4` on, like
//! `klog.V(4).InfoS`. The `v` field is not printed as a pair (JSON prints it as `"v"`, as
//! upstream does). On `error!` and `warn!` it is ignored: those are always shown. Supporting it
//! costs one field visit for callsites that have a `v` field, nothing for the others.
//!
//! # Text format
//!
//! As klog's text logger (`klog/v2` v2.140 `textlogger`):
//!
//! ```text
//! I1125 02:46:06.357519   13355 controller.rs:214] "Attached volume" volume="pvc-1" attempt=3
//! E1125 02:46:06.357800   13355 controller.rs:230] "Attach failed" err="rpc error: code = Internal desc = boom" volume="pvc-1"
//! ```
//!
//! - severity letter `E`, `W` or `I` (debug and trace are `I`), month and day, time to the
//!   microsecond **in UTC** (klog uses the local zone; containers run in UTC), the process id
//!   right-aligned in seven columns, the source file's base name and line;
//! - the message always quoted as Go's `strconv.Quote` does;
//! - then ` key=value` pairs: strings (and anything recorded with `%` or `?`) quoted, or for a
//!   value with line breaks klog's block form (`key=<`, tab-indented lines, ` >`); integers,
//!   floats (as `encoding/json` writes them) and booleans bare;
//! - a field named `err` or `error` is printed as `err`; on `error!` it comes first, as in
//!   `klog.ErrorS(err, ...)`. An error recorded as `&dyn Error` prints its sources too,
//!   `outer: inner`, as Go's wrapped errors read;
//! - fields of the enclosing spans come before the event's own (klog's `WithValues`), and a key
//!   given twice keeps its last value (klog's de-duplication).
//!
//! Unlike klog's printf-style calls (`klog.Infof`), the message is always quoted: every line is
//! in the structured form.
//!
//! # JSON format
//!
//! As component-base's JSON logger (zap through zapr), one object per line:
//!
//! ```text
//! {"ts":1732502766357.5193,"caller":"controller/mod.rs:214","msg":"Attached volume","v":0,"volume":"pvc-1"}
//! {"ts":1732502766357.8,"caller":"controller/mod.rs:230","msg":"Attach failed","volume":"pvc-1","err":"boom"}
//! ```
//!
//! `ts` is milliseconds since the epoch as a float; `caller` is the file with its last directory
//! (zap's short caller); then `msg`, the span fields, `v` (omitted on errors), the event's
//! fields, and on errors `err` last. There is no level key: like upstream, a warning is an info
//! line with `"v":0`. Strings are escaped as zap does (`<`, `>`, `&` are not escaped).
//!
//! # Streams
//!
//! Everything goes to stderr, as klog does. With `split_stream` (`--log-text-split-stream`,
//! `--log-json-split-stream`), info lines go to stdout and the rest to stderr: in text, `W` and
//! `E` lines to stderr; in JSON only errors, since upstream logs warnings as info.

#![deny(missing_docs)]

mod layer;
mod time;

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

pub use layer::{DEPENDENCY_TARGETS, KlogLayer};

/// The line format (`--logging-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// klog's text lines (`text`, the default).
    #[default]
    Text,
    /// component-base's JSON lines (`json`).
    Json,
}

/// How to log: what the logging flags say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogOptions {
    /// klog's `-v`: the highest verbosity shown (see the crate documentation).
    pub verbosity: u32,
    /// Text or JSON.
    pub format: LogFormat,
    /// Info lines to stdout and the rest to stderr, instead of everything to stderr.
    pub split_stream: bool,
}

/// What can go wrong setting up logging.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A global `tracing` subscriber is already installed, by an earlier [`init`] or by other
    /// code; the process keeps that one.
    #[error("logging is already initialized")]
    AlreadyInitialized(#[source] tracing::subscriber::SetGlobalDefaultError),
}

/// Installs the global `tracing` subscriber for `opts`. Fails if one is already installed, so
/// it works once per process (like component-base's `ValidateAndApply`).
pub fn init(opts: &LogOptions) -> Result<(), Error> {
    let subscriber = tracing_subscriber::registry().with(KlogLayer::new(opts));
    tracing::subscriber::set_global_default(subscriber).map_err(Error::AlreadyInitialized)
}

/// An in-memory writer shared by its clones, for tests: hand a clone to
/// [`KlogLayer::with_writer`] and read what was logged.
#[derive(Clone, Debug, Default)]
pub struct SharedBuffer {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl SharedBuffer {
    /// An empty buffer.
    pub fn new() -> SharedBuffer {
        SharedBuffer::default()
    }

    /// Everything written so far (lossily decoded as UTF-8).
    pub fn contents(&self) -> String {
        let bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Everything written so far, leaving the buffer empty.
    pub fn take(&self) -> String {
        let mut bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        bytes.clear();
        text
    }
}

impl io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SharedBuffer {
    type Writer = SharedBuffer;

    fn make_writer(&'a self) -> SharedBuffer {
        self.clone()
    }
}
