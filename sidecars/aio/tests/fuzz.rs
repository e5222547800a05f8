//! Property tests of every real flag table: the standalone command of each component and
//! `csi-sidecars` with its prefixed sections, shared twins and unprefixed aliases.
//!
//! A generated configuration (some flags of the table, each with a value of its kind) is rendered
//! to argv in every Go spelling (`-f v`, `--f v`, `-f=v`, `--f=v`, a bare `--b`, `--b=false`
//! with any of strconv's boolean spellings, durations and integers as Go writes them, map flags
//! split over repeats) and must parse back to exactly that configuration, every other flag at
//! its default. Arbitrary argv must give flags or a usage error, never a panic, and neither may
//! the components' flag validation, the logging options or `--controllers`, which is checked
//! against a small model of kube-controller-manager's selection.

use std::collections::BTreeMap;
use std::time::Duration;

use csi_sidecar_runtime::controller::{SelectionError, select};
use csi_sidecar_runtime::flags::go::format_duration;
use csi_sidecar_runtime::flags::{FlagSet, LOGGING_FLAGS, Scope, Value};
use csi_sidecar_runtime::process::{
    aggregate_flags, aggregate_process_flags, logging_options, standalone_flags,
};
use csi_sidecar_runtime::{Descriptor, Flag, Kind};
use csi_sidecars::{NAME, TABLE};
use csi_test_support::fuzz::config;
use proptest::prelude::*;

/// One flag of a command as the test sets and reads it.
#[derive(Clone, Debug)]
struct Target {
    /// The clap id (`timeout`, `attacher-timeout`).
    id: String,
    /// Every name it can be spelled with: the id and its aliases.
    spellings: Vec<String>,
    flag: Flag,
    /// The controller whose view reads it (`None`: the process view or a standalone binary).
    prefix: Option<&'static str>,
    /// A shared twin (`--timeout` in `csi-sidecars`): read through every controller that has
    /// the prefixed flag, when that is not set.
    twin: bool,
}

/// A command and its flags.
struct Command {
    set: FlagSet,
    targets: Vec<Target>,
}

fn aliases(set: &FlagSet, id: &str) -> Vec<String> {
    let arg = set
        .command()
        .get_arguments()
        .find(|a| a.get_id() == id)
        .unwrap_or_else(|| panic!("no argument {id}"));
    std::iter::once(id.to_string())
        .chain(
            arg.get_all_aliases()
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string),
        )
        .collect()
}

fn dedup(flags: impl Iterator<Item = Flag>) -> Vec<Flag> {
    let mut out: Vec<Flag> = Vec::new();
    for flag in flags {
        if !out.iter().any(|f| f.name == flag.name) {
            out.push(flag);
        }
    }
    out
}

fn standalone(d: &'static Descriptor) -> Command {
    let set = standalone_flags(d);
    let flags = dedup(d.flags().copied().chain(LOGGING_FLAGS.iter().copied()));
    let targets = flags
        .into_iter()
        .map(|flag| Target {
            id: flag.name.to_string(),
            spellings: aliases(&set, flag.name),
            flag,
            prefix: None,
            twin: false,
        })
        .collect();
    Command { set, targets }
}

fn aggregate() -> Command {
    let set = aggregate_flags(NAME, TABLE);
    let mut targets: Vec<Target> = aggregate_process_flags(TABLE)
        .into_iter()
        .chain(LOGGING_FLAGS.iter().copied())
        .map(|flag| Target {
            id: flag.name.to_string(),
            spellings: aliases(&set, flag.name),
            flag,
            prefix: None,
            twin: false,
        })
        .collect();
    let mut twins: Vec<Flag> = Vec::new();
    for d in TABLE {
        for flag in dedup(d.flags().copied().filter(|f| f.scope != Scope::Process)) {
            let id = format!("{}-{}", d.name, flag.name);
            if flag.scope == Scope::Shared
                && !targets.iter().any(|t| t.id == flag.name)
                && !twins.iter().any(|t| t.name == flag.name)
            {
                twins.push(flag);
            }
            targets.push(Target {
                spellings: aliases(&set, &id),
                id,
                flag,
                prefix: Some(d.name),
                twin: false,
            });
        }
    }
    for flag in twins {
        targets.push(Target {
            id: flag.name.to_string(),
            spellings: aliases(&set, flag.name),
            flag,
            prefix: None,
            twin: true,
        });
    }
    Command { set, targets }
}

fn commands() -> Vec<Command> {
    TABLE
        .iter()
        .map(|d| standalone(d))
        .chain(std::iter::once(aggregate()))
        .collect()
}

/// A value and the argv words of one occurrence of its flag.
#[derive(Clone, Debug)]
struct Occurrence {
    target: usize,
    value: Value,
    words: Vec<String>,
}

fn int_text(v: i64) -> BoxedStrategy<String> {
    let m = v.unsigned_abs();
    let sign = if v < 0 { "-" } else { "" };
    prop_oneof![
        Just(format!("{sign}{m}")),
        Just(format!("{sign}0x{m:x}")),
        Just(format!("{sign}0o{m:o}")),
        Just(format!("{sign}0b{m:b}")),
    ]
    .boxed()
}

fn duration_text(d: Duration) -> BoxedStrategy<String> {
    let nanos = d.as_nanos();
    prop_oneof![
        Just(format_duration(d)),
        Just(format!("{nanos}ns")),
        Just(if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else {
            format!("{nanos}ns")
        }),
        Just(if nanos == 0 {
            "0".to_string()
        } else {
            format!("+{}", format_duration(d))
        }),
    ]
    .boxed()
}

/// A value of `kind` and its Go spelling.
fn value(kind: Kind) -> BoxedStrategy<(Value, String)> {
    match kind {
        Kind::Bool => (any::<bool>(), prop_oneof![Just(0usize), Just(1), Just(2)])
            .prop_map(|(b, style)| {
                let text = match (b, style) {
                    (true, 0) => "true",
                    (true, 1) => "T",
                    (true, _) => "1",
                    (false, 0) => "false",
                    (false, 1) => "F",
                    (false, _) => "0",
                };
                (Value::Bool(b), text.to_string())
            })
            .boxed(),
        Kind::String => any::<String>()
            .prop_map(|s| (Value::String(s.clone()), s))
            .boxed(),
        Kind::Int => any::<i64>()
            .prop_flat_map(|v| int_text(v).prop_map(move |t| (Value::Int(v), t)))
            .boxed(),
        Kind::Float => prop_oneof![any::<f64>(), -1e6f64..1e6]
            .prop_filter("finite", |f| f.is_finite())
            .prop_flat_map(|f| {
                prop_oneof![Just(format!("{f}")), Just(format!("{f:e}"))]
                    .prop_map(move |t| (Value::Float(f), t))
            })
            .boxed(),
        Kind::Duration => (0u64..(1u64 << 50))
            .prop_flat_map(|n| {
                let d = Duration::from_nanos(n);
                duration_text(d).prop_map(move |t| (Value::Duration(d), t))
            })
            .boxed(),
        Kind::MapStringBool => {
            proptest::collection::vec(("[A-Z][A-Za-z0-9]{0,10}", any::<bool>()), 1..4)
                .prop_map(|pairs| {
                    let text = pairs
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    (Value::MapStringBool(pairs), text)
                })
                .boxed()
        }
        Kind::MapStringString => {
            proptest::collection::vec(("[a-z][a-z0-9./-]{0,10}", "[A-Za-z0-9._-]{0,10}"), 1..4)
                .prop_map(|pairs| {
                    let text = pairs
                        .iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    (Value::MapStringString(pairs), text)
                })
                .boxed()
        }
    }
}

/// One occurrence of `target` in a random Go spelling.
fn occurrence(index: usize, target: &Target) -> BoxedStrategy<Occurrence> {
    let spellings = target.spellings.clone();
    let is_bool = target.flag.kind == Kind::Bool;
    (
        value(target.flag.kind),
        proptest::sample::select(spellings),
        any::<bool>(),
        0usize..3,
    )
        .prop_map(move |((value, text), name, one_dash, style)| {
            let dashes = if one_dash { "-" } else { "--" };
            let words = match (is_bool, style, &value) {
                (true, 0, Value::Bool(true)) => vec![format!("{dashes}{name}")],
                (true, _, _) | (false, 0, _) => vec![format!("{dashes}{name}={text}")],
                (false, _, _) => vec![format!("{dashes}{name}"), text],
            };
            Occurrence {
                target: index,
                value,
                words,
            }
        })
        .boxed()
}

/// Some flags of `command`, each once or twice, in random order.
fn configuration(command: &Command) -> BoxedStrategy<Vec<Occurrence>> {
    let indices: Vec<usize> = (0..command.targets.len()).collect();
    let targets = command.targets.clone();
    proptest::sample::subsequence(indices, 0..=command.targets.len().min(12))
        .prop_flat_map(move |chosen| {
            let strategies: Vec<BoxedStrategy<Occurrence>> = chosen
                .iter()
                .flat_map(|i| {
                    let twice = targets[*i].flag.kind != Kind::Bool && i % 3 == 0;
                    let n = if twice { 2 } else { 1 };
                    (0..n).map(|_| occurrence(*i, &targets[*i]))
                })
                .collect();
            strategies.prop_shuffle()
        })
        .boxed()
}

fn merge(previous: Option<Value>, next: Value) -> Value {
    match (previous, next) {
        (Some(Value::MapStringBool(mut a)), Value::MapStringBool(b)) => {
            a.extend(b);
            Value::MapStringBool(a)
        }
        (Some(Value::MapStringString(mut a)), Value::MapStringString(b)) => {
            a.extend(b);
            Value::MapStringString(a)
        }
        (_, next) => next,
    }
}

fn default_of(flag: &Flag) -> Value {
    let parse = |s: &str| -> Value {
        match flag.kind {
            Kind::Bool => Value::Bool(csi_sidecar_runtime::flags::go::parse_bool(s).unwrap()),
            Kind::String => Value::String(s.to_string()),
            Kind::Int => Value::Int(csi_sidecar_runtime::flags::go::parse_int(s).unwrap()),
            Kind::Float => Value::Float(csi_sidecar_runtime::flags::go::parse_float(s).unwrap()),
            Kind::Duration => {
                Value::Duration(csi_sidecar_runtime::flags::go::parse_duration(s).unwrap())
            }
            Kind::MapStringBool => Value::MapStringBool(
                csi_sidecar_runtime::flags::go::parse_map_string_bool(s).unwrap(),
            ),
            Kind::MapStringString => Value::MapStringString(
                csi_sidecar_runtime::flags::go::parse_map_string_string(s).unwrap(),
            ),
        }
    };
    parse(flag.default)
}

fn check_round_trip(command: &Command, occurrences: &[Occurrence]) -> Result<(), TestCaseError> {
    let argv: Vec<String> = std::iter::once("prog".to_string())
        .chain(occurrences.iter().flat_map(|o| o.words.clone()))
        .collect();
    let parsed = command
        .set
        .parse(argv.clone())
        .map_err(|e| TestCaseError::fail(format!("{argv:?} was refused: {e}")))?;
    let mut set: BTreeMap<usize, Value> = BTreeMap::new();
    for o in occurrences {
        let previous = set.remove(&o.target);
        set.insert(o.target, merge(previous, o.value.clone()));
    }
    for (i, target) in command.targets.iter().enumerate() {
        if target.twin {
            continue;
        }
        let twin = command
            .targets
            .iter()
            .position(|t| t.twin && t.flag.name == target.flag.name && target.prefix.is_some());
        let want = set
            .get(&i)
            .or_else(|| {
                (target.flag.scope == Scope::Shared)
                    .then(|| twin.and_then(|t| set.get(&t)))
                    .flatten()
            })
            .cloned()
            .unwrap_or_else(|| default_of(&target.flag));
        let view = match target.prefix {
            Some(p) => parsed.controller(Some(p)),
            None => parsed.process(),
        };
        let got = view.value(target.flag.name);
        prop_assert_eq!(&got, &want, "--{} from {:?}", target.id, argv);
    }
    Ok(())
}

/// Words that look like flags of the tables, values, and noise.
fn word(names: Vec<String>) -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        (
            proptest::sample::select(names),
            "-{1,2}",
            proptest::option::of("=[-a-zA-Z0-9.:,=_/]{0,10}")
        )
            .prop_map(|(n, d, v)| format!("{d}{n}{}", v.unwrap_or_default())),
        "[-+0-9.a-zA-Z=,:*]{0,12}",
        Just("--".to_string()),
        Just("-".to_string()),
        Just("-h".to_string()),
    ]
    .boxed()
}

/// What `--controllers` should select, by kube-controller-manager's rules: the first explicit
/// mention of a controller decides it, `*` enables the rest unless disabled by default, an
/// unknown name is an error, and so is selecting nothing.
fn model_select(value: &str) -> Result<Vec<&'static str>, &'static str> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let canonical = |n: &str| {
        TABLE
            .iter()
            .find(|d| d.name == n || d.aliases.contains(&n))
            .map(|d| d.name)
    };
    for item in &items {
        if *item != "*" && canonical(item.strip_prefix('-').unwrap_or(item)).is_none() {
            return Err("unknown");
        }
    }
    let star = items.contains(&"*");
    let enabled: Vec<&str> = TABLE
        .iter()
        .filter(|d| {
            let first = items
                .iter()
                .find(|item| canonical(item.strip_prefix('-').unwrap_or(item)) == Some(d.name));
            match first {
                Some(item) => !item.starts_with('-'),
                None => star && !d.disabled_by_default,
            }
        })
        .map(|d| d.name)
        .collect();
    if enabled.is_empty() {
        Err("empty")
    } else {
        Ok(enabled)
    }
}

fn controller_item() -> impl Strategy<Value = String> {
    let names: Vec<String> = TABLE
        .iter()
        .flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()))
        .map(str::to_string)
        .chain(["*".to_string(), "unknown".to_string(), String::new()])
        .collect();
    (proptest::sample::select(names), any::<bool>(), " ?").prop_map(|(n, neg, pad)| {
        if neg && n != "*" {
            format!("{pad}-{n}")
        } else {
            format!("{pad}{n}")
        }
    })
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn generated_argv_parses_to_what_it_says(
        (index, occurrences) in (0..TABLE.len() + 1).prop_flat_map(|i| {
            let commands = COMMANDS.with(|c| c.clone());
            (Just(i), configuration(&commands[i]))
        }),
    ) {
        let commands = COMMANDS.with(|c| c.clone());
        check_round_trip(&commands[index], &occurrences)?;
    }

    #[test]
    fn arbitrary_argv_never_panics_parsing_or_validating(
        (index, argv) in (0..TABLE.len() + 1).prop_flat_map(|i| {
            let commands = COMMANDS.with(|c| c.clone());
            let names: Vec<String> = commands[i]
                .targets
                .iter()
                .flat_map(|t| t.spellings.clone())
                .collect();
            (Just(i), proptest::collection::vec(word(names), 0..8))
        }),
    ) {
        let commands = COMMANDS.with(|c| c.clone());
        let command = &commands[index];
        let args = std::iter::once("prog".to_string()).chain(argv);
        if let Ok(parsed) = command.set.parse(args) {
            let _ = logging_options(&parsed.process());
            let _ = parsed.deprecation_warnings();
            if index < TABLE.len() {
                let _ = (TABLE[index].validate)(&parsed.controller(None));
            } else {
                if let Ok(enabled) = select(TABLE, &parsed.process().string("controllers")) {
                    for d in enabled {
                        let _ = (d.validate)(&parsed.controller(Some(d.name)));
                    }
                }
            }
        }
    }

    #[test]
    fn controllers_lists_select_as_kube_controller_manager(
        items in proptest::collection::vec(controller_item(), 0..6),
    ) {
        let value = items.join(",");
        let got = select(TABLE, &value);
        match (model_select(&value), got) {
            (Ok(want), Ok(got)) => {
                let got: Vec<&str> = got.iter().map(|d| d.name).collect();
                prop_assert_eq!(got, want, "{:?}", value);
            }
            (Err("unknown"), Err(SelectionError::Unknown { .. }))
            | (Err("empty"), Err(SelectionError::Empty { .. })) => {}
            (want, got) => prop_assert!(false, "{value:?}: want {want:?}, got {got:?}"),
        }
    }
}

thread_local! {
    static COMMANDS: std::rc::Rc<Vec<Command>> = std::rc::Rc::new(commands());
}
