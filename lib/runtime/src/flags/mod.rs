//! Command-line flags, defined once per component and rendered two ways.
//!
//! A component lists its flags as a static table of [`Flag`]s with upstream's names, types and
//! defaults. From that one table we build:
//!
//! - the standalone command (`livenessprobe --probe-timeout=3s`), flag for flag as upstream, and
//! - a section of the `csi-sidecars` command, where each flag gets the controller's name as
//!   prefix (`--livenessprobe-probe-timeout`). A [`Scope::Shared`] flag also has one global twin
//!   (`--timeout`) that the prefixed form overrides; a [`Scope::Process`] flag exists only once
//!   for the whole process (`--csi-address`); an [`Scope::Own`] flag that no other controller
//!   has is also accepted without its prefix, so a manifest written for the standalone sidecar
//!   keeps working.
//!
//! Arguments are read with Go's `flag` syntax (`-v=5`, `-csi-address /csi.sock`,
//! `--leader-election=true`, a bare `--leader-election`), because that is what existing manifests
//! contain: [`normalize_go_args`] rewrites them into the form clap reads. Values are parsed by
//! [`go`] exactly as Go parses them.

pub mod go;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};

/// The type of a flag's value, with Go's parsing rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--flag`, `--flag=true`, `--flag=false` (never `--flag false`, as in Go).
    Bool,
    /// Any string.
    String,
    /// A Go integer.
    Int,
    /// A Go float.
    Float,
    /// A Go duration (`30s`, `1m30s`).
    Duration,
    /// `A=true,B=false`; repeated flags merge.
    MapStringBool,
    /// `k1:v1,k2:v2`; repeated flags merge.
    MapStringString,
}

impl Kind {
    fn value_name(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::String => "string",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Duration => "duration",
            Kind::MapStringBool => "mapStringBool",
            Kind::MapStringString => "mapStringString",
        }
    }

    fn parse(self, s: &str) -> Result<Value, String> {
        Ok(match self {
            Kind::Bool => Value::Bool(go::parse_bool(s)?),
            Kind::String => Value::String(s.to_string()),
            Kind::Int => Value::Int(go::parse_int(s)?),
            Kind::Float => Value::Float(go::parse_float(s)?),
            Kind::Duration => Value::Duration(go::parse_duration(s)?),
            Kind::MapStringBool => Value::MapStringBool(go::parse_map_string_bool(s)?),
            Kind::MapStringString => Value::MapStringString(go::parse_map_string_string(s)?),
        })
    }
}

/// Where a flag lives when several controllers share one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One value for the whole process: `--csi-address`, `--http-endpoint`, `-v`.
    Process,
    /// A per-controller setting with a global twin: `--timeout` for all, `--attacher-timeout`
    /// for one.
    Shared,
    /// Only this controller has it.
    Own,
}

/// One command-line flag, as upstream defines it.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    /// The upstream name, without dashes.
    pub name: &'static str,
    /// How its value is parsed.
    pub kind: Kind,
    /// The default, written as it would be on the command line (`""` for an empty string).
    pub default: &'static str,
    /// Help text.
    pub usage: &'static str,
    /// Where it lives in `csi-sidecars`.
    pub scope: Scope,
    /// A warning logged when the flag is set, for flags upstream deprecated.
    pub deprecated: Option<&'static str>,
}

impl Flag {
    /// A flag that only its controller has.
    pub const fn new(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        usage: &'static str,
    ) -> Self {
        Flag {
            name,
            kind,
            default,
            usage,
            scope: Scope::Own,
            deprecated: None,
        }
    }

    /// Marks the flag process-wide.
    pub const fn process(mut self) -> Self {
        self.scope = Scope::Process;
        self
    }

    /// Marks the flag as having a global twin.
    pub const fn shared(mut self) -> Self {
        self.scope = Scope::Shared;
        self
    }

    /// Marks the flag deprecated, with the warning logged when it is used.
    pub const fn deprecated(mut self, warning: &'static str) -> Self {
        self.deprecated = Some(warning);
        self
    }

    fn default_value(&self) -> Value {
        self.kind
            .parse(self.default)
            .unwrap_or_else(|e| panic!("default of flag --{} is invalid: {e}", self.name))
    }
}

/// A parsed flag value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A string.
    String(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A duration.
    Duration(Duration),
    /// `A=true,B=false`, in the order given.
    MapStringBool(Vec<(String, bool)>),
    /// `k:v,k2:v2`, in the order given.
    MapStringString(Vec<(String, String)>),
}

/// The flags every binary has for logging, as component-base's `logsapi.AddGoFlags` registers
/// them, plus `--automaxprocs` (csi-lib-utils), which has no meaning for a Rust binary.
pub const LOGGING_FLAGS: &[Flag] = &[
    Flag::new("v", Kind::Int, "0", "number for the log level verbosity").process(),
    Flag::new(
        "vmodule",
        Kind::String,
        "",
        "comma-separated list of pattern=N settings for file-filtered logging (accepted for compatibility; Go file patterns do not apply to this binary)",
    )
    .process(),
    Flag::new(
        "logging-format",
        Kind::String,
        "text",
        "Sets the log format. Permitted formats: \"json\", \"text\".",
    )
    .process(),
    Flag::new(
        "log-flush-frequency",
        Kind::Duration,
        "5s",
        "Maximum number of seconds between log flushes (logs are written unbuffered here)",
    )
    .process(),
    Flag::new(
        "log-text-split-stream",
        Kind::Bool,
        "false",
        "[Alpha] In text format, write error messages to stderr and info messages to stdout. The default is to write a single stream to stdout.",
    )
    .process(),
    Flag::new(
        "log-text-info-buffer-size",
        Kind::String,
        "0",
        "[Alpha] In text format with split output streams, the info messages can be buffered for a while to increase performance (accepted; output is unbuffered here)",
    )
    .process(),
    Flag::new(
        "log-json-split-stream",
        Kind::Bool,
        "false",
        "[Alpha] In JSON format, write error messages to stderr and info messages to stdout. The default is to write a single stream to stdout.",
    )
    .process(),
    Flag::new(
        "log-json-info-buffer-size",
        Kind::String,
        "0",
        "[Alpha] In JSON format with split output streams, the info messages can be buffered for a while to increase performance (accepted; output is unbuffered here)",
    )
    .process(),
    Flag::new(
        "automaxprocs",
        Kind::Bool,
        "false",
        "Accepted for compatibility with the Go sidecars; the Rust runtime sizes its thread pool from the CPU quota itself.",
    )
    .process(),
    Flag::new("version", Kind::Bool, "false", "Show version.").process(),
];

/// A group of flags shown under one heading, optionally with a name prefix.
#[derive(Clone, Debug)]
pub struct Section {
    /// Help heading.
    pub heading: String,
    /// `Some("livenessprobe")` turns `probe-timeout` into `--livenessprobe-probe-timeout`.
    pub prefix: Option<&'static str>,
    /// The flags.
    pub flags: Vec<Flag>,
}

#[derive(Clone, Debug)]
struct Entry {
    flag: Flag,
    /// Explicitly-set values of this entry are looked up under this id.
    id: String,
}

/// Spellings of flag names that published manifests use although no upstream binary has them,
/// accepted as the flag they mean with a warning naming the right one: KEP-4958's example
/// controller manifest writes `--attacher-worker-thread` for upstream's `--worker-threads`.
/// (misspelled name, flag name)
pub const MISSPELLINGS: &[(&str, &str)] = &[("worker-thread", "worker-threads")];

/// Builds a command from sections and parses arguments with it.
#[derive(Debug)]
pub struct FlagSet {
    command: Command,
    entries: BTreeMap<String, Entry>,
    /// A misspelled long name accepted as an alias → the id it stands for.
    misspelled: BTreeMap<String, String>,
}

impl FlagSet {
    /// Builds the command `name` from its sections. In a prefixed section, process-scoped flags
    /// must not appear (they belong to an unprefixed section), shared flags get a global twin
    /// (unless an unprefixed section already defines the name) and own flags get an unprefixed
    /// alias when no other flag in the command has that name.
    pub fn new(name: &'static str, about: &'static str, sections: &[Section]) -> Self {
        let mut command = Command::new(name)
            .about(about)
            .disable_version_flag(true)
            .args_override_self(true)
            .max_term_width(100);
        let mut entries = BTreeMap::new();
        let mut misspelled = BTreeMap::new();

        // Count every unprefixed name any section could claim, to decide which own flags may
        // also be used without their prefix.
        let mut name_uses: HashMap<&str, usize> = HashMap::new();
        for section in sections {
            for flag in &section.flags {
                *name_uses.entry(flag.name).or_default() += 1;
            }
        }
        let global_names: Vec<&str> = sections
            .iter()
            .filter(|s| s.prefix.is_none())
            .flat_map(|s| s.flags.iter().map(|f| f.name))
            .collect();

        let mut shared_twins: Vec<Flag> = Vec::new();
        for section in sections {
            command = command.next_help_heading(section.heading.clone());
            for flag in &section.flags {
                let id = match section.prefix {
                    None => flag.name.to_string(),
                    Some(prefix) => {
                        assert!(
                            flag.scope != Scope::Process,
                            "process flag --{} must not be prefixed",
                            flag.name
                        );
                        format!("{prefix}-{}", flag.name)
                    }
                };
                let mut arg = arg_for(&id, flag);
                for (wrong, right) in MISSPELLINGS {
                    if flag.name == *right {
                        let alias = match section.prefix {
                            None => wrong.to_string(),
                            Some(prefix) => format!("{prefix}-{wrong}"),
                        };
                        arg = arg.alias(alias.clone());
                        misspelled.insert(alias, id.clone());
                    }
                }
                if section.prefix.is_some() {
                    match flag.scope {
                        Scope::Own
                            if name_uses.get(flag.name) == Some(&1)
                                && !global_names.contains(&flag.name) =>
                        {
                            arg = arg.alias(flag.name);
                        }
                        Scope::Shared
                            if !global_names.contains(&flag.name)
                                && !shared_twins.iter().any(|t| t.name == flag.name) =>
                        {
                            shared_twins.push(*flag);
                        }
                        _ => {}
                    }
                }
                command = command.arg(arg);
                entries.insert(
                    id.clone(),
                    Entry {
                        flag: *flag,
                        id: id.clone(),
                    },
                );
            }
        }
        if !shared_twins.is_empty() {
            command = command.next_help_heading(
                "Shared controller flags (a prefixed flag overrides its global twin)",
            );
            for twin in shared_twins {
                let mut flag = twin;
                flag.default = "";
                flag.usage = twin.usage;
                let arg = arg_for(twin.name, &flag)
                    .help(format!("{} (default: per controller)", twin.usage));
                command = command.arg(arg);
                entries.insert(
                    twin.name.to_string(),
                    Entry {
                        flag: twin,
                        id: twin.name.to_string(),
                    },
                );
            }
        }
        FlagSet {
            command,
            entries,
            misspelled,
        }
    }

    /// The clap command, for help output and `debug_assert` tests.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// Adds text after the flag list in `--help`.
    pub fn after_help(mut self, text: String) -> Self {
        self.command = self.command.after_help(text);
        self
    }

    /// Parses `args` (including the program name) with Go flag syntax.
    pub fn parse<I, T>(&self, args: I) -> Result<ParsedFlags, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args = normalize_go_args(&self.command, args.into_iter().map(Into::into));
        let misspellings = self.misspellings_used(&args);
        let matches = self.command.clone().try_get_matches_from(args)?;
        Ok(ParsedFlags {
            inner: Arc::new(Inner {
                matches,
                entries: self.entries.clone(),
                misspellings,
            }),
        })
    }

    /// One warning per misspelled flag name in `args` (normalized: every flag is `--name`),
    /// skipping values and everything after `--`.
    fn misspellings_used(&self, args: &[OsString]) -> Vec<String> {
        if self.misspelled.is_empty() {
            return Vec::new();
        }
        let takes_value = value_flags(&self.command);
        let mut warnings = Vec::new();
        let mut value_expected = false;
        for arg in args.iter().skip(1) {
            if value_expected {
                value_expected = false;
                continue;
            }
            let Some(long) = arg.to_str().and_then(|s| s.strip_prefix("--")) else {
                continue;
            };
            if long.is_empty() {
                break;
            }
            let (name, has_value) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            value_expected = !has_value && takes_value.get(name).copied().unwrap_or(false);
            if let Some(right) = self.misspelled.get(name) {
                let warning = format!("--{name} is not a flag; it is read as --{right}");
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
        }
        warnings
    }
}

/// Every long name and alias of `command`, with whether it takes a value.
fn value_flags(command: &Command) -> HashMap<String, bool> {
    command
        .get_arguments()
        .flat_map(|a| {
            let is_bool = a
                .get_num_args()
                .map(|r| r.min_values() == 0)
                .unwrap_or(false);
            let mut names: Vec<String> = a.get_long().into_iter().map(str::to_string).collect();
            names.extend(
                a.get_all_aliases()
                    .unwrap_or_default()
                    .into_iter()
                    .map(str::to_string),
            );
            names.into_iter().map(move |n| (n, !is_bool))
        })
        .collect()
}

fn arg_for(id: &str, flag: &Flag) -> Arg {
    let mut help = flag.usage.to_string();
    if !flag.default.is_empty() && flag.kind != Kind::Bool || flag.default == "true" {
        help.push_str(&format!(" (default {:?})", flag.default));
    }
    let parser_kind = flag.kind;
    let arg = Arg::new(id.to_string())
        .long(id.to_string())
        .help(help)
        .value_name(flag.kind.value_name())
        .value_parser(clap::builder::ValueParser::new(move |s: &str| {
            parser_kind.parse(s)
        }));
    match flag.kind {
        Kind::Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .action(ArgAction::Set),
        Kind::MapStringBool | Kind::MapStringString => arg
            .num_args(1)
            .allow_hyphen_values(true)
            .action(ArgAction::Append),
        _ => arg
            .num_args(1)
            .allow_hyphen_values(true)
            .action(ArgAction::Set),
    }
}

/// Rewrites Go `flag` syntax into the form clap reads: a single-dash long flag (`-v=5`,
/// `-csi-address /csi.sock`) gets a second dash, `-h`/`-help` become `--help`. The value of a
/// flag that takes one and was written without `=` is left untouched, whatever it looks like
/// (`--timeout -1s` passes `-1s` on, as Go does). Parsing stops at `--`.
pub fn normalize_go_args(command: &Command, args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let takes_value = value_flags(command);

    let mut out = Vec::new();
    let mut args = args.peekable();
    if let Some(program) = args.next() {
        out.push(program);
    }
    let mut value_expected = false;
    let mut passthrough = false;
    for arg in args {
        if passthrough || value_expected {
            value_expected = false;
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let long = if let Some(rest) = s.strip_prefix("--") {
            rest
        } else if let Some(rest) = s.strip_prefix('-') {
            if rest.is_empty() {
                out.push(arg);
                continue;
            }
            rest
        } else {
            out.push(arg);
            continue;
        };
        let (name, has_value) = match long.split_once('=') {
            Some((n, _)) => (n, true),
            None => (long, false),
        };
        if matches!(name, "h" | "help") && !takes_value.contains_key(name) {
            out.push("--help".into());
            continue;
        }
        if !has_value && takes_value.get(name).copied().unwrap_or(false) {
            value_expected = true;
        }
        out.push(format!("--{long}").into());
    }
    out
}

#[derive(Debug)]
struct Inner {
    matches: ArgMatches,
    entries: BTreeMap<String, Entry>,
    misspellings: Vec<String>,
}

/// The result of parsing: cheap to clone, read through [`FlagView`]s.
#[derive(Clone, Debug)]
pub struct ParsedFlags {
    inner: Arc<Inner>,
}

impl ParsedFlags {
    /// The process-wide view: unprefixed flags.
    pub fn process(&self) -> FlagView {
        FlagView {
            parsed: self.clone(),
            prefix: None,
        }
    }

    /// The view of one controller: its prefixed flags, falling back to their global twins.
    /// `prefix` is `None` in a standalone binary.
    pub fn controller(&self, prefix: Option<&'static str>) -> FlagView {
        FlagView {
            parsed: self.clone(),
            prefix,
        }
    }

    fn explicit(&self, id: &str) -> Option<Value> {
        let entry = self.inner.entries.get(id)?;
        if self.inner.matches.value_source(id) != Some(clap::parser::ValueSource::CommandLine) {
            return None;
        }
        match entry.flag.kind {
            Kind::MapStringBool => {
                let merged = self
                    .inner
                    .matches
                    .get_many::<Value>(id)?
                    .flat_map(|v| match v {
                        Value::MapStringBool(pairs) => pairs.clone(),
                        _ => Vec::new(),
                    })
                    .collect();
                Some(Value::MapStringBool(merged))
            }
            Kind::MapStringString => {
                let merged = self
                    .inner
                    .matches
                    .get_many::<Value>(id)?
                    .flat_map(|v| match v {
                        Value::MapStringString(pairs) => pairs.clone(),
                        _ => Vec::new(),
                    })
                    .collect();
                Some(Value::MapStringString(merged))
            }
            _ => self.inner.matches.get_one::<Value>(id).cloned(),
        }
    }

    /// Warnings for every deprecated flag that was set and every misspelled flag name that
    /// was accepted ([`MISSPELLINGS`]), to log once logging is up.
    pub fn deprecation_warnings(&self) -> Vec<String> {
        self.inner
            .entries
            .values()
            .filter(|e| e.flag.deprecated.is_some() && self.explicit(&e.id).is_some())
            .map(|e| e.flag.deprecated.unwrap_or_default().to_string())
            .chain(self.inner.misspellings.iter().cloned())
            .collect()
    }
}

/// Reads flag values for one component (or the process), applying prefixes, global twins and
/// defaults.
#[derive(Clone, Debug)]
pub struct FlagView {
    parsed: ParsedFlags,
    prefix: Option<&'static str>,
}

impl FlagView {
    /// The ids to look at for `name`, most specific first, and the definition whose default
    /// applies when none is set.
    fn resolve(&self, name: &str) -> (Vec<String>, &Flag) {
        let entries = &self.parsed.inner.entries;
        if let Some(prefix) = self.prefix {
            let id = format!("{prefix}-{name}");
            if let Some(entry) = entries.get(&id) {
                let mut ids = vec![id];
                if entry.flag.scope == Scope::Shared {
                    ids.push(name.to_string());
                }
                return (ids, &entry.flag);
            }
        }
        match entries.get(name) {
            Some(entry) => (vec![name.to_string()], &entry.flag),
            None => panic!(
                "flag --{name} is not defined for {}",
                self.prefix.unwrap_or("this binary")
            ),
        }
    }

    /// The value of `name`: set on the command line (prefixed first), else the default.
    ///
    /// # Panics
    /// If the flag is not defined: that is a bug in the component's flag table.
    pub fn value(&self, name: &str) -> Value {
        let (ids, flag) = self.resolve(name);
        ids.iter()
            .find_map(|id| self.parsed.explicit(id))
            .unwrap_or_else(|| flag.default_value())
    }

    /// Whether this view has a flag called `name` at all.
    pub fn defines(&self, name: &str) -> bool {
        let entries = &self.parsed.inner.entries;
        self.prefix
            .is_some_and(|p| entries.contains_key(&format!("{p}-{name}")))
            || entries.contains_key(name)
    }

    /// The default of `name` in this view (each controller keeps its upstream default).
    pub fn default_value(&self, name: &str) -> Value {
        self.resolve(name).1.default_value()
    }

    /// Whether `name` (or its global twin) was given on the command line.
    pub fn is_set(&self, name: &str) -> bool {
        let (ids, _) = self.resolve(name);
        ids.iter().any(|id| self.parsed.explicit(id).is_some())
    }

    /// A string flag.
    pub fn string(&self, name: &str) -> String {
        match self.value(name) {
            Value::String(s) => s,
            other => panic!("flag --{name} is not a string: {other:?}"),
        }
    }

    /// A bool flag.
    pub fn bool(&self, name: &str) -> bool {
        match self.value(name) {
            Value::Bool(b) => b,
            other => panic!("flag --{name} is not a bool: {other:?}"),
        }
    }

    /// A duration flag.
    pub fn duration(&self, name: &str) -> Duration {
        match self.value(name) {
            Value::Duration(d) => d,
            other => panic!("flag --{name} is not a duration: {other:?}"),
        }
    }

    /// An int flag.
    pub fn int(&self, name: &str) -> i64 {
        match self.value(name) {
            Value::Int(i) => i,
            other => panic!("flag --{name} is not an int: {other:?}"),
        }
    }

    /// A float flag.
    pub fn float(&self, name: &str) -> f64 {
        match self.value(name) {
            Value::Float(f) => f,
            other => panic!("flag --{name} is not a float: {other:?}"),
        }
    }

    /// A `mapStringBool` flag (`--feature-gates`).
    pub fn map_string_bool(&self, name: &str) -> Vec<(String, bool)> {
        match self.value(name) {
            Value::MapStringBool(m) => m,
            other => panic!("flag --{name} is not a mapStringBool: {other:?}"),
        }
    }

    /// A `mapStringString` flag (`--leader-election-labels`).
    pub fn map_string_string(&self, name: &str) -> Vec<(String, String)> {
        match self.value(name) {
            Value::MapStringString(m) => m,
            other => panic!("flag --{name} is not a mapStringString: {other:?}"),
        }
    }

    /// The whole parse, to look at other sections (the process flags from a controller view).
    pub fn parsed(&self) -> &ParsedFlags {
        &self.parsed
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
