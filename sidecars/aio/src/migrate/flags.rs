//! The flags of several sidecar containers turned into one `csi-sidecars` argument list:
//! process-wide flags once (they must agree, with a few rules where upstream's containers
//! usually differ), per-controller flags hoisted to their global twin when every controller that
//! has the flag set it to the same value, prefixed with the controller's name otherwise.

use std::collections::BTreeMap;

use csi_sidecar_runtime::Descriptor;
use csi_sidecar_runtime::flags::{Flag, Kind, LOGGING_FLAGS, Scope, go};
use csi_sidecar_runtime::process::{aggregate_process_flags, standalone_flags};

/// The flags one container set, in the order first given (a repeated flag keeps its first
/// place and its last value; repeated map flags merge, as Go's do).
#[derive(Clone, Debug)]
pub struct ContainerFlags {
    pub controller: &'static str,
    pub set: Vec<(&'static Flag, String)>,
    /// What a value means where the text can differ for the same thing: `--csi-address` as
    /// the volume and path it names (`$(ADDRESS)` expanded, the container's mounts resolved), so
    /// that two sidecars that mount the driver's socket directory at different paths agree.
    pub meaning: BTreeMap<&'static str, String>,
}

/// Every flag the standalone binary of `d` accepts: its own, then the logging flags.
fn standalone_flag_list(d: &Descriptor) -> Vec<&'static Flag> {
    let mut flags: Vec<&'static Flag> = Vec::new();
    for f in d.flags().chain(LOGGING_FLAGS.iter()) {
        if !flags.iter().any(|g| g.name == f.name) {
            flags.push(f);
        }
    }
    flags
}

/// Reads a sidecar container's `args` as its standalone binary would (Go flag syntax), or
/// says why they cannot be carried over (an unknown flag, a positional argument, a bad value).
pub fn read(d: &'static Descriptor, args: &[String]) -> Result<ContainerFlags, String> {
    standalone_flags(d)
        .parse(std::iter::once(d.binary.to_string()).chain(args.iter().cloned()))
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            format!("{} rejects its arguments: {first}", d.binary)
        })?;
    let known = standalone_flag_list(d);
    let mut set: Vec<(&'static Flag, String)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let body = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty() && !b.starts_with('-'))
            .ok_or_else(|| format!("argument {arg:?} is not a flag"))?;
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = known
            .iter()
            .copied()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("{} has no flag --{name}", d.binary))?;
        let value = match (inline, flag.kind) {
            (Some(v), _) => v,
            (None, Kind::Bool) => "true".to_string(),
            (None, _) => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| format!("--{name} needs a value"))?
            }
        };
        match set.iter_mut().find(|(f, _)| f.name == flag.name) {
            Some((_, old)) if matches!(flag.kind, Kind::MapStringBool | Kind::MapStringString) => {
                *old = format!("{old},{value}");
            }
            Some((_, old)) => *old = value,
            None => set.push((flag, value)),
        }
        i += 1;
    }
    Ok(ContainerFlags {
        controller: d.name,
        set,
        meaning: BTreeMap::new(),
    })
}

/// Two values of one flag mean the same (`true`/`1`/`t`, `60s`/`1m`).
fn same(kind: Kind, a: &str, b: &str) -> bool {
    match kind {
        Kind::Bool => go::parse_bool(a).ok() == go::parse_bool(b).ok(),
        Kind::Duration => go::parse_duration(a).ok() == go::parse_duration(b).ok(),
        _ => a == b,
    }
}

/// The merged argument list, and notes on what changed for whom.
#[derive(Debug, Default, PartialEq)]
pub struct Merged {
    pub args: Vec<String>,
    pub notes: Vec<String>,
}

/// Merges the flags of the containers (in pod order) for a `csi-sidecars` of `table`.
pub fn merge(
    table: &[&'static Descriptor],
    containers: &[ContainerFlags],
) -> Result<Merged, String> {
    let process_names: Vec<&str> = aggregate_process_flags(table)
        .iter()
        .map(|f| f.name)
        .chain(LOGGING_FLAGS.iter().map(|f| f.name))
        .collect();
    let descriptor = |name: &str| table.iter().find(|d| d.name == name).copied();
    let mut out = Merged::default();
    let controllers: Vec<&str> = containers.iter().map(|c| c.controller).collect();
    out.args
        .push(format!("--controllers={}", controllers.join(",")));

    // Every flag name in first-appearance order, with who set it to what.
    let mut order: Vec<&'static str> = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<(&'static str, &'static Flag, &str)>> = BTreeMap::new();
    let mut meanings: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for c in containers {
        for (flag, value) in &c.set {
            if flag.name == "version" {
                continue;
            }
            if !order.contains(&flag.name) {
                order.push(flag.name);
            }
            by_name
                .entry(flag.name)
                .or_default()
                .push((c.controller, flag, value));
            if let Some(m) = c.meaning.get(flag.name) {
                meanings.insert((c.controller, flag.name), m);
            }
        }
    }
    let mut prefixed: Vec<(usize, String)> = Vec::new();
    for name in order {
        let setters = &by_name[name];
        let (_, flag, first) = setters[0];
        let meaning = |c: &str, v: &str| -> String {
            meanings
                .get(&(c, name))
                .map_or_else(|| v.to_string(), |m| m.to_string())
        };
        let agree = setters
            .iter()
            .all(|(c, _, v)| same(flag.kind, &meaning(setters[0].0, first), &meaning(c, v)));
        if process_names.contains(&name) {
            let value = if agree {
                first.to_string()
            } else {
                process_value(name, flag.kind, setters, &mut out.notes)?
            };
            // Whoever did not set it gets it now too.
            let others: Vec<&str> = containers
                .iter()
                .map(|c| c.controller)
                .filter(|c| !setters.iter().any(|(s, _, _)| s == c))
                .filter(|c| descriptor(c).is_some_and(|d| d.flags().any(|f| f.name == name)))
                .collect();
            // Feature gates reach only the controllers that declare them: no note.
            if !others.is_empty()
                && flag.scope == Scope::Process
                && name != "feature-gates"
                && !process_default(flag, &value)
            {
                out.notes.push(format!(
                    "--{name}={value} is process-wide in csi-sidecars: it now applies to {} too",
                    others.join(", ")
                ));
            }
            out.args.push(format_flag(name, flag.kind, &value));
            continue;
        }
        // A per-controller flag: global when every controller that has it agrees on it.
        let definers: Vec<&str> = controllers
            .iter()
            .copied()
            .filter(|c| descriptor(c).is_some_and(|d| d.flags().any(|f| f.name == name)))
            .collect();
        let everyone = definers
            .iter()
            .all(|c| setters.iter().any(|(s, _, _)| s == c));
        // Only a flag every setter declares shared has a global twin that reaches them all.
        let all_shared = setters.iter().all(|(_, f, _)| f.scope == Scope::Shared);
        if all_shared && agree && everyone && definers.len() > 1 {
            out.args.push(format_flag(name, flag.kind, first));
        } else {
            for (controller, flag, value) in setters {
                let at = controllers
                    .iter()
                    .position(|c| c == controller)
                    .unwrap_or(0);
                prefixed.push((
                    at,
                    format_flag(&format!("{controller}-{}", flag.name), flag.kind, value),
                ));
            }
        }
    }
    if out
        .args
        .iter()
        .any(|a| a == "--leader-election" || a == "--leader-election=true")
        && !out
            .args
            .iter()
            .any(|a| a.starts_with("--leader-election-per-controller"))
    {
        out.args
            .push("--leader-election-per-controller".to_string());
        out.notes.push(
            "--leader-election-per-controller: each controller holds its sidecar's own lease, so \
             during the rolling update an old pod's sidecar and the new csi-sidecars never both \
             lead; drop it (one lease for the process) once no old pod is left"
                .to_string(),
        );
    }
    prefixed.sort_by_key(|(at, _)| *at);
    out.args.extend(prefixed.into_iter().map(|(_, a)| a));
    Ok(out)
}

/// A process-wide flag the containers set differently: the rules for the usual cases, an
/// error for the rest (one process cannot use two driver sockets or two kubeconfigs).
fn process_value(
    name: &str,
    kind: Kind,
    setters: &[(&'static str, &'static Flag, &str)],
    notes: &mut Vec<String>,
) -> Result<String, String> {
    let listing = setters
        .iter()
        .map(|(c, _, v)| format!("{c}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    match name {
        "v" => {
            let max = setters
                .iter()
                .filter_map(|(_, _, v)| v.parse::<i64>().ok())
                .max()
                .unwrap_or(0);
            notes.push(format!(
                "-v differed ({listing}); csi-sidecars logs at the highest, -v={max}"
            ));
            Ok(max.to_string())
        }
        "http-endpoint" | "metrics-address" | "health-port" => {
            let (c, _, v) = setters[0];
            notes.push(format!(
                "--{name} differed ({listing}); csi-sidecars has one HTTP server, on {c}'s {v}: \
                 update probes and scrape configurations that used the other ports"
            ));
            Ok(v.to_string())
        }
        "feature-gates" if kind == Kind::MapStringBool => {
            let mut gates: Vec<(String, bool)> = Vec::new();
            for (c, _, v) in setters {
                for (gate, on) in go::parse_map_string_bool(v).map_err(|e| format!("{c}: {e}"))? {
                    match gates.iter().find(|(g, _)| *g == gate) {
                        Some((_, was)) if *was != on => {
                            return Err(format!(
                                "feature gate {gate} is on in one sidecar and off in another \
                                 ({listing})"
                            ));
                        }
                        Some(_) => {}
                        None => gates.push((gate, on)),
                    }
                }
            }
            Ok(gates
                .iter()
                .map(|(g, on)| format!("{g}={on}"))
                .collect::<Vec<_>>()
                .join(","))
        }
        _ => Err(format!(
            "--{name} differs between the sidecars ({listing}) and is process-wide in csi-sidecars"
        )),
    }
}

/// Whether `value` is the flag's own default (then giving it to more controllers changes nothing).
fn process_default(flag: &Flag, value: &str) -> bool {
    same(flag.kind, flag.default, value)
}

/// `--name=value`, or `--name` for a true boolean.
fn format_flag(name: &str, kind: Kind, value: &str) -> String {
    if kind == Kind::Bool && go::parse_bool(value) == Ok(true) {
        format!("--{name}")
    } else {
        format!("--{name}={value}")
    }
}
