//! The command line of a webhook binary: its flags with upstream's names, types and defaults,
//! read with Go's flag syntax (`-port=8443`, `--tls-cert-file /x`), then logging set up from
//! the logging flags.

use std::ffi::OsString;

use csi_sidecar_runtime::flags::{Flag, FlagSet, FlagView, Kind, LOGGING_FLAGS, Section};

/// The logging flags of a binary built on component-base's `logsapi.AddGoFlags` (the conversion
/// webhook): the sidecars' logging flags without `--version`, which such a binary lacks.
pub fn component_base_logging_flags() -> Vec<Flag> {
    LOGGING_FLAGS
        .iter()
        .filter(|f| f.name != "version")
        .copied()
        .collect()
}

/// The flags `klog.InitFlags` registers (klog v2.130.1, the version the validation webhook of
/// external-snapshotter v8.1 was built with). Only `-v` changes anything here: our logs always
/// go to standard error, in klog's text format.
pub const KLOG_FLAGS: &[Flag] = &[
    Flag::new(
        "add_dir_header",
        Kind::Bool,
        "false",
        "If true, adds the file directory to the header of the log messages",
    ),
    Flag::new(
        "alsologtostderr",
        Kind::Bool,
        "false",
        "log to standard error as well as files (no effect when -logtostderr=true)",
    ),
    Flag::new(
        "log_backtrace_at",
        Kind::String,
        ":0",
        "when logging hits line file:N, emit a stack trace (accepted; no effect here)",
    ),
    Flag::new(
        "log_dir",
        Kind::String,
        "",
        "If non-empty, write log files in this directory (no effect when -logtostderr=true)",
    ),
    Flag::new(
        "log_file",
        Kind::String,
        "",
        "If non-empty, use this log file (no effect when -logtostderr=true)",
    ),
    Flag::new(
        "log_file_max_size",
        Kind::Int,
        "1800",
        "Defines the maximum size a log file can grow to (no effect when -logtostderr=true). Unit is megabytes. If the value is 0, the maximum file size is unlimited.",
    ),
    Flag::new(
        "logtostderr",
        Kind::Bool,
        "true",
        "log to standard error instead of files",
    ),
    Flag::new(
        "one_output",
        Kind::Bool,
        "false",
        "If true, only write logs to their native severity level (vs also writing to each lower severity level; no effect when -logtostderr=true)",
    ),
    Flag::new(
        "skip_headers",
        Kind::Bool,
        "false",
        "If true, avoid header prefixes in the log messages",
    ),
    Flag::new(
        "skip_log_headers",
        Kind::Bool,
        "false",
        "If true, avoid headers when opening log files (no effect when -logtostderr=true)",
    ),
    Flag::new(
        "stderrthreshold",
        Kind::String,
        "2",
        "logs at or above this threshold go to stderr when writing to files and stderr (no effect when -logtostderr=true or -alsologtostderr=true)",
    ),
    Flag::new("v", Kind::Int, "0", "number for the log level verbosity"),
    Flag::new(
        "vmodule",
        Kind::String,
        "",
        "comma-separated list of pattern=N settings for file-filtered logging (accepted; Go file patterns do not apply here)",
    ),
];

/// The command `binary` with its own flags, then the logging flags in a section of their own.
pub fn flag_set(
    binary: &'static str,
    about: &'static str,
    own: &[Flag],
    logging: &[Flag],
) -> FlagSet {
    FlagSet::new(
        binary,
        about,
        &[
            Section {
                heading: format!("{binary} flags"),
                prefix: None,
                flags: own.to_vec(),
            },
            Section {
                heading: "Logging flags".to_string(),
                prefix: None,
                flags: logging.to_vec(),
            },
        ],
    )
}

/// Parses `args` (program name first) and sets up logging. `Err` carries the exit code after
/// the message (or `--help`) has been printed.
pub fn parse_and_init_logging(
    flags: &FlagSet,
    args: impl IntoIterator<Item = OsString>,
) -> Result<FlagView, i32> {
    let parsed = match flags.parse(args) {
        Ok(parsed) => parsed,
        Err(err) => {
            let _ = err.print();
            return Err(err.exit_code());
        }
    };
    let view = parsed.process();
    let options = if view.defines("logging-format") {
        csi_sidecar_runtime::process::logging_options(&view)
    } else {
        u32::try_from(view.int("v"))
            .map(|verbosity| csi_logging::LogOptions {
                verbosity,
                ..csi_logging::LogOptions::default()
            })
            .map_err(|_| format!("invalid -v={}: must be >= 0", view.int("v")))
    };
    let options = options.map_err(|err| {
        eprintln!("{err}");
        1
    })?;
    if let Err(err) = csi_logging::init(&options) {
        eprintln!("{err}");
        return Err(1);
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_sets_build() {
        flag_set("a", "b", &[], &component_base_logging_flags())
            .command()
            .clone()
            .debug_assert();
        flag_set("a", "b", &[], KLOG_FLAGS)
            .command()
            .clone()
            .debug_assert();
    }

    #[test]
    fn klog_flags_parse_with_go_syntax() {
        let set = flag_set("a", "b", &[], KLOG_FLAGS);
        let parsed = set
            .parse(["a", "-v=5", "-logtostderr=false", "--log_dir", "/tmp"])
            .unwrap();
        let view = parsed.process();
        assert_eq!(view.int("v"), 5);
        assert!(!view.bool("logtostderr"));
        assert_eq!(view.string("log_dir"), "/tmp");
    }
}
