use super::*;

const ALPHA: &[Flag] = &[
    Flag::new("csi-address", Kind::String, "/run/csi/socket", "socket").process(),
    Flag::new("timeout", Kind::Duration, "15s", "timeout").shared(),
    Flag::new("worker-threads", Kind::Int, "10", "workers").shared(),
    Flag::new("probe-timeout", Kind::Duration, "3s", "probe timeout"),
    Flag::new("leader-election", Kind::Bool, "false", "le").process(),
    Flag::new("feature-gates", Kind::MapStringBool, "", "gates").process(),
    Flag::new("old", Kind::Duration, "0", "old")
        .deprecated("--old is deprecated and will have no effect"),
];

const BETA: &[Flag] = &[
    Flag::new("timeout", Kind::Duration, "1s", "timeout").shared(),
    Flag::new("registration-path", Kind::String, "/registration", "dir"),
    Flag::new("probe-timeout", Kind::Duration, "9s", "clashes with alpha"),
];

pub(super) fn standalone() -> FlagSet {
    FlagSet::new(
        "alpha",
        "test",
        &[
            Section {
                heading: "alpha".into(),
                prefix: None,
                flags: ALPHA.to_vec(),
            },
            Section {
                heading: "logging".into(),
                prefix: None,
                flags: LOGGING_FLAGS.to_vec(),
            },
        ],
    )
}

pub(super) fn aggregate() -> FlagSet {
    let process: Vec<Flag> = ALPHA
        .iter()
        .filter(|f| f.scope == Scope::Process)
        .copied()
        .chain(LOGGING_FLAGS.iter().copied())
        .collect();
    let own = |flags: &[Flag]| -> Vec<Flag> {
        flags
            .iter()
            .filter(|f| f.scope != Scope::Process)
            .copied()
            .collect()
    };
    FlagSet::new(
        "csi-sidecars",
        "test",
        &[
            Section {
                heading: "global".into(),
                prefix: None,
                flags: process,
            },
            Section {
                heading: "alpha".into(),
                prefix: Some("alpha"),
                flags: own(ALPHA),
            },
            Section {
                heading: "beta".into(),
                prefix: Some("beta"),
                flags: own(BETA),
            },
        ],
    )
}

fn args(list: &[&str]) -> Vec<String> {
    std::iter::once("prog")
        .chain(list.iter().copied())
        .map(str::to_string)
        .collect()
}

#[test]
fn commands_pass_clap_debug_asserts() {
    standalone().command().clone().debug_assert();
    aggregate().command().clone().debug_assert();
}

#[test]
fn go_flag_syntax_is_accepted() {
    let set = standalone();
    let cases: &[(&[&str], Duration)] = &[
        (&["--timeout=30s"], Duration::from_secs(30)),
        (&["--timeout", "30s"], Duration::from_secs(30)),
        (&["-timeout=1m30s"], Duration::from_secs(90)),
        (&["-timeout", "500ms"], Duration::from_millis(500)),
    ];
    for (input, want) in cases {
        let parsed = set.parse(args(input)).unwrap();
        assert_eq!(parsed.process().duration("timeout"), *want, "{input:?}");
    }
    let parsed = set
        .parse(args(&[
            "-v=5",
            "-csi-address=/csi/csi.sock",
            "--leader-election=true",
        ]))
        .unwrap();
    let view = parsed.process();
    assert_eq!(view.int("v"), 5);
    assert_eq!(view.string("csi-address"), "/csi/csi.sock");
    assert!(view.bool("leader-election"));

    let parsed = set.parse(args(&["--v", "3", "--leader-election"])).unwrap();
    assert_eq!(parsed.process().int("v"), 3);
    assert!(parsed.process().bool("leader-election"));

    let parsed = set.parse(args(&["-leader-election=false"])).unwrap();
    assert!(!parsed.process().bool("leader-election"));
}

#[test]
fn defaults_apply_when_unset() {
    let parsed = standalone().parse(args(&[])).unwrap();
    let view = parsed.process();
    assert_eq!(view.duration("timeout"), Duration::from_secs(15));
    assert_eq!(view.string("csi-address"), "/run/csi/socket");
    assert!(!view.is_set("timeout"));
    assert_eq!(view.map_string_bool("feature-gates"), vec![]);
}

#[test]
fn last_value_wins_as_in_go() {
    let parsed = standalone()
        .parse(args(&["--timeout=1s", "--timeout=2s"]))
        .unwrap();
    assert_eq!(parsed.process().duration("timeout"), Duration::from_secs(2));
}

#[test]
fn feature_gates_merge_across_repeats() {
    let parsed = standalone()
        .parse(args(&[
            "--feature-gates=A=true,B=false",
            "--feature-gates",
            "C=true",
        ]))
        .unwrap();
    assert_eq!(
        parsed.process().map_string_bool("feature-gates"),
        vec![
            ("A".to_string(), true),
            ("B".to_string(), false),
            ("C".to_string(), true)
        ]
    );
}

#[test]
fn a_value_that_looks_like_a_flag_is_taken_as_the_value() {
    let parsed = standalone()
        .parse(args(&["--csi-address", "-weird-path"]))
        .unwrap();
    assert_eq!(parsed.process().string("csi-address"), "-weird-path");
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let set = standalone();
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag"], "--no-such-flag"),
        (&["-no-such-flag=1"], "--no-such-flag"),
        (&["--timeout=30"], "timeout"),
        (&["--timeout=abc"], "timeout"),
        (&["--leader-election=maybe"], "leader-election"),
        (&["--v=high"], "--v"),
        (&["--feature-gates=A"], "feature-gates"),
        (&["--timeout"], "timeout"),
        (&["stray-positional"], "stray-positional"),
    ];
    for (input, needle) in cases {
        let err = set.parse(args(input)).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{input:?}");
        let text = err.to_string();
        assert!(text.contains(needle), "{input:?}: {text}");
    }
}

#[test]
fn bool_flags_do_not_consume_the_next_argument() {
    // Go: `--leader-election false` sets the flag and leaves "false" as a positional argument,
    // which no sidecar accepts.
    let err = standalone()
        .parse(args(&["--leader-election", "false"]))
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn help_is_available_in_go_spellings() {
    for spelling in ["-h", "-help", "--help"] {
        let err = standalone().parse(args(&[spelling])).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::DisplayHelp,
            "{spelling}"
        );
        assert_eq!(err.exit_code(), 0);
    }
}

#[test]
fn prefixed_flags_override_their_global_twin() {
    let set = aggregate();
    let parsed = set
        .parse(args(&["--timeout=30s", "--alpha-timeout=5s"]))
        .unwrap();
    assert_eq!(
        parsed.controller(Some("alpha")).duration("timeout"),
        Duration::from_secs(5)
    );
    assert_eq!(
        parsed.controller(Some("beta")).duration("timeout"),
        Duration::from_secs(30)
    );

    // Neither set: each controller keeps its own upstream default.
    let parsed = set.parse(args(&[])).unwrap();
    assert_eq!(
        parsed.controller(Some("alpha")).duration("timeout"),
        Duration::from_secs(15)
    );
    assert_eq!(
        parsed.controller(Some("beta")).duration("timeout"),
        Duration::from_secs(1)
    );
}

#[test]
fn a_flag_only_one_controller_has_works_without_prefix() {
    let set = aggregate();
    let parsed = set.parse(args(&["--registration-path=/reg"])).unwrap();
    assert_eq!(
        parsed.controller(Some("beta")).string("registration-path"),
        "/reg"
    );
    let parsed = set
        .parse(args(&["--beta-registration-path=/reg2"]))
        .unwrap();
    assert_eq!(
        parsed.controller(Some("beta")).string("registration-path"),
        "/reg2"
    );
    // Two controllers define probe-timeout: the unprefixed form is ambiguous and rejected.
    let err = set.parse(args(&["--probe-timeout=1s"])).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let parsed = set.parse(args(&["--alpha-probe-timeout=1s"])).unwrap();
    assert_eq!(
        parsed.controller(Some("alpha")).duration("probe-timeout"),
        Duration::from_secs(1)
    );
    assert_eq!(
        parsed.controller(Some("beta")).duration("probe-timeout"),
        Duration::from_secs(9)
    );
}

#[test]
fn process_flags_are_read_from_controller_views() {
    let parsed = aggregate()
        .parse(args(&["--csi-address=unix:/csi/csi.sock"]))
        .unwrap();
    assert_eq!(
        parsed.controller(Some("alpha")).string("csi-address"),
        "unix:/csi/csi.sock"
    );
}

#[test]
fn deprecated_flags_warn_when_used() {
    let set = standalone();
    let parsed = set.parse(args(&[])).unwrap();
    assert!(parsed.deprecation_warnings().is_empty());
    let parsed = set.parse(args(&["--old=1s"])).unwrap();
    assert_eq!(
        parsed.deprecation_warnings(),
        vec!["--old is deprecated and will have no effect".to_string()]
    );
}

#[test]
fn help_lists_each_section() {
    let help = aggregate().command().clone().render_help().to_string();
    for needle in [
        "--alpha-timeout",
        "--beta-registration-path",
        "--csi-address",
        "Shared controller flags",
        "--worker-threads",
    ] {
        assert!(help.contains(needle), "{needle} missing in:\n{help}");
    }
}

#[test]
fn the_singular_worker_thread_is_read_as_worker_threads_with_a_warning() {
    let parsed = aggregate()
        .parse(args(&["--alpha-worker-thread=100"]))
        .unwrap();
    assert_eq!(parsed.controller(Some("alpha")).int("worker-threads"), 100);
    assert_eq!(
        parsed.deprecation_warnings(),
        ["--alpha-worker-thread is not a flag; it is read as --alpha-worker-threads"]
    );
    // Go syntax: a single dash and the value as the next argument.
    let parsed = aggregate()
        .parse(args(&["-alpha-worker-thread", "7", "--v=2"]))
        .unwrap();
    assert_eq!(parsed.controller(Some("alpha")).int("worker-threads"), 7);
    assert_eq!(parsed.deprecation_warnings().len(), 1);
    // The standalone binary too.
    let parsed = standalone().parse(args(&["--worker-thread=3"])).unwrap();
    assert_eq!(parsed.controller(None).int("worker-threads"), 3);
    assert_eq!(
        parsed.deprecation_warnings(),
        ["--worker-thread is not a flag; it is read as --worker-threads"]
    );
    // The right spelling warns about nothing.
    let parsed = aggregate()
        .parse(args(&["--alpha-worker-threads=4"]))
        .unwrap();
    assert!(parsed.deprecation_warnings().is_empty());
    // A controller without --worker-threads gets no such alias.
    assert!(
        aggregate()
            .parse(args(&["--beta-worker-thread=4"]))
            .is_err()
    );
}
