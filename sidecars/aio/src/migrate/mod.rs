//! `csi-sidecars migrate`: rewrites Deployments, StatefulSets and DaemonSets that run the
//! upstream sidecar images into the same workloads with one `csi-sidecars` container.
//!
//! The sidecar containers of a pod template (those whose image name is the standalone binary of
//! a controller in [`crate::TABLE`]) become one container: `--controllers` from the images
//! present, flags merged by [`flags::merge`], mounts/env/ports/resources by [`pod::merge`], and
//! `--leader-election-per-controller` whenever leader election is on. Every other container
//! — the driver, an image we do not know, a sidecar whose arguments we cannot carry over — is
//! kept as it was and named in the report. A workload whose sidecars cannot be merged (two
//! driver sockets, a mount path used two ways) is left unchanged, with the reason. Other
//! documents pass through.
//!
//! The output is the input text edited in place ([`text`]): documents nothing changed in are
//! copied byte for byte, and in a converted workload only the sidecars' items of `containers`
//! are rewritten, so comments and formatting elsewhere survive. A document whose layout the
//! editor does not follow is written anew instead, and the report says so.

pub mod flags;
pub mod pod;
pub mod text;

use std::io::Read as _;

use csi_sidecar_runtime::Descriptor;
use csi_sidecar_runtime::process::aggregate_flags;
use serde_yaml::{Mapping, Value};

const USAGE: &str = "\
usage: csi-sidecars migrate [-f FILE] [-o FILE] [--image IMAGE] [--container-name NAME]

Reads Kubernetes manifests (YAML, several documents) that run the upstream CSI sidecar images
and writes them with one csi-sidecars container per pod instead; a report of what changed, what
was kept and why, and the RBAC to check goes to stderr.

  -f FILE               input (default: standard input; '-' too)
  -o FILE               output (default: standard output)
  --image IMAGE         the csi-sidecars image (default: csi-sidecars/csi-sidecars:<this version>)
  --container-name NAME the merged container's name (default: csi-sidecars)
";

/// What a conversion did, for people.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub lines: Vec<String>,
    /// Workloads with sidecars that were left unchanged.
    pub not_converted: usize,
}

/// Options of a conversion.
#[derive(Debug, Clone)]
pub struct Options {
    pub image: String,
    pub container_name: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            image: format!(
                "csi-sidecars/csi-sidecars:v{}",
                csi_sidecar_runtime::VERSION.trim_start_matches('v')
            ),
            container_name: crate::NAME.to_string(),
        }
    }
}

/// `csi-sidecars migrate ARGS`: the exit code.
pub fn main(args: &[String]) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("csi-sidecars migrate: {e}");
            2
        }
    }
}

fn run(args: &[String]) -> Result<i32, String> {
    let mut input = None;
    let mut output = None;
    let mut options = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match name {
            "-f" | "--filename" => input = Some(value()?),
            "-o" | "--output" => output = Some(value()?),
            "--image" => options.image = value()?,
            "--container-name" => options.container_name = value()?,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let text = match input.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("reading standard input: {e}"))?;
            s
        }
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?,
    };
    let (converted, report) = convert(&text, crate::TABLE, &options)?;
    match output {
        Some(path) => {
            std::fs::write(&path, converted).map_err(|e| format!("writing {path}: {e}"))?
        }
        None => print!("{converted}"),
    }
    for line in &report.lines {
        eprintln!("{line}");
    }
    Ok(if report.not_converted > 0 { 1 } else { 0 })
}

/// Converts every document of `text`.
pub fn convert(
    text: &str,
    table: &'static [&'static Descriptor],
    options: &Options,
) -> Result<(String, Report), String> {
    let mut report = Report::default();
    let mut out = String::with_capacity(text.len());
    for (i, source) in text::split_documents(text).into_iter().enumerate() {
        let mut doc: Value =
            serde_yaml::from_str(source).map_err(|e| format!("document {}: {e}", i + 1))?;
        let Some(edit) = convert_document(&mut doc, table, options, &mut report) else {
            out.push_str(source);
            continue;
        };
        let edited = text::edit_containers(source, edit.replace, &edit.container, &edit.remove)
            .and_then(|t| match serde_yaml::from_str::<Value>(&t) {
                Ok(v) if v == doc => Ok(t),
                Ok(_) => Err("the edited text reads differently".to_string()),
                Err(e) => Err(format!("the edited text does not parse: {e}")),
            });
        match edited {
            Ok(t) => out.push_str(&t),
            Err(why) => {
                report.lines.push(format!(
                    "{}: written anew, without its comments and layout ({why})",
                    edit.who
                ));
                // Every document but the first starts with its `---` line.
                if source.starts_with("---") {
                    out.push_str("---\n");
                }
                out.push_str(&serde_yaml::to_string(&doc).map_err(|e| e.to_string())?);
            }
        }
    }
    Ok((out, report))
}

/// What a converted workload's text needs: item `replace` of its containers becomes
/// `container`, the items in `remove` go.
struct Edit {
    who: String,
    replace: usize,
    remove: Vec<usize>,
    container: Mapping,
}

fn convert_document(
    doc: &mut Value,
    table: &'static [&'static Descriptor],
    options: &Options,
    report: &mut Report,
) -> Option<Edit> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") {
        return None;
    }
    let who = format!(
        "{kind} {}{}",
        doc["metadata"]
            .get("namespace")
            .and_then(Value::as_str)
            .map(|n| format!("{n}/"))
            .unwrap_or_default(),
        doc["metadata"]
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    );
    let service_account = doc["spec"]["template"]["spec"]
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    // get_mut, not indexing: indexing a Value mutably adds the keys it lacks.
    let containers = doc
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(|s| s.get_mut("containers"))
        .and_then(Value::as_sequence_mut)?;
    match convert_containers(containers, table, options) {
        Ok(None) => {
            report
                .lines
                .push(format!("{who}: no sidecar images; unchanged"));
            None
        }
        Ok(Some(done)) => {
            report.lines.push(format!(
                "{who}: {} merged into one {} container (--controllers={})",
                done.merged.join(", "),
                options.container_name,
                done.controllers.join(",")
            ));
            for kept in done.kept {
                report.lines.push(format!("{who}:   kept {kept}"));
            }
            for note in done.notes {
                report.lines.push(format!("{who}:   note: {note}"));
            }
            let leases = if done.leader_election {
                "; the leases stay the sidecars' own while --leader-election-per-controller is \
                 set, and without it csi-sidecars holds one lease (csi-sidecars-<driver>) that the \
                 same rules allow"
            } else {
                ""
            };
            report.lines.push(format!(
                "{who}:   RBAC: ServiceAccount {service_account} needs the union of the rules of \
                 {} (csi-sidecars' generated union, sidecars/aio/deploy/rbac.yaml, holds them){leases}",
                done.controllers.join(", ")
            ));
            Some(Edit {
                who,
                replace: done.replace,
                remove: done.remove,
                container: done.container,
            })
        }
        Err(e) => {
            report.not_converted += 1;
            report
                .lines
                .push(format!("{who}: NOT converted, left unchanged: {e}"));
            None
        }
    }
}

/// What [`convert_containers`] did.
#[derive(Debug)]
struct Done {
    merged: Vec<String>,
    leader_election: bool,
    controllers: Vec<String>,
    kept: Vec<String>,
    notes: Vec<String>,
    /// The index of the container that became the merged one.
    replace: usize,
    /// The indexes of the other merged containers, now gone.
    remove: Vec<usize>,
    /// The merged container.
    container: Mapping,
}

/// The descriptor whose standalone binary is the image's name (`…/csi-attacher:v4.13.0`).
pub fn descriptor_for_image(
    table: &'static [&'static Descriptor],
    image: &str,
) -> Option<&'static Descriptor> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let name = last.split(':').next().unwrap_or(last);
    table.iter().copied().find(|d| d.binary == name)
}

/// Replaces the sidecar containers by one; `None` when there is none.
fn convert_containers(
    containers: &mut Vec<Value>,
    table: &'static [&'static Descriptor],
    options: &Options,
) -> Result<Option<Done>, String> {
    let mut kept = Vec::new();
    let mut chosen: Vec<(usize, flags::ContainerFlags)> = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let Some(d) = descriptor_for_image(table, image) else {
            kept.push(format!(
                "container {name} ({image}): not a sidecar csi-sidecars runs"
            ));
            continue;
        };
        if chosen.iter().any(|(_, f)| f.controller == d.name) {
            kept.push(format!(
                "container {name} ({image}): a second {} in the pod",
                d.binary
            ));
            continue;
        }
        let args: Vec<String> = c
            .get("args")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            })
            .collect();
        match flags::read(d, &args) {
            Ok(mut f) => {
                if let Some((_, address)) = f.set.iter().find(|(f, _)| f.name == "csi-address") {
                    f.meaning.insert("csi-address", socket_meaning(c, address));
                }
                chosen.push((i, f))
            }
            Err(e) => kept.push(format!("container {name} ({image}) unchanged: {e}")),
        }
    }
    if chosen.is_empty() {
        return if kept.iter().any(|k| k.contains("unchanged:")) {
            Err(kept.join("; "))
        } else {
            Ok(None)
        };
    }
    let set: Vec<flags::ContainerFlags> = chosen.iter().map(|(_, f)| f.clone()).collect();
    let merged_flags = flags::merge(table, &set)?;
    // The merged arguments must be what csi-sidecars itself accepts.
    aggregate_flags(crate::NAME, table)
        .parse(std::iter::once(crate::NAME.to_string()).chain(merged_flags.args.iter().cloned()))
        .map_err(|e| {
            format!(
                "csi-sidecars rejects the merged arguments: {}",
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
    let leader_election = merged_flags
        .args
        .iter()
        .any(|a| a == "--leader-election-per-controller");
    let mut notes = merged_flags.notes;
    let originals: Vec<&Mapping> = chosen
        .iter()
        .filter_map(|(i, _)| containers[*i].as_mapping())
        .collect();
    let merged_names: Vec<String> = originals
        .iter()
        .map(|c| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    let mut container = pod::merge(
        &originals,
        &options.container_name,
        &options.image,
        merged_flags.args,
        &mut notes,
    )?;
    rewrite_exec_probes(&mut container, table, &mut notes)?;
    let first = chosen[0].0;
    let drop: Vec<usize> = chosen.iter().map(|(i, _)| *i).collect();
    let mut rebuilt = Vec::new();
    for (i, c) in containers.drain(..).enumerate() {
        if i == first {
            rebuilt.push(Value::Mapping(container.clone()));
        } else if !drop.contains(&i) {
            rebuilt.push(c);
        }
    }
    *containers = rebuilt;
    Ok(Some(Done {
        merged: merged_names,
        leader_election,
        controllers: set.iter().map(|f| f.controller.to_string()).collect(),
        kept,
        notes,
        replace: first,
        remove: drop.into_iter().filter(|&i| i != first).collect(),
        container,
    }))
}

/// A probe that execs a sidecar's binary (node-driver-registrar's deprecated
/// `--mode=kubelet-registration-probe`) would find no such file in the csi-sidecars image: it
/// runs `/csi-sidecars --controllers=<that controller>` with the same flags instead.
fn rewrite_exec_probes(
    container: &mut Mapping,
    table: &'static [&'static Descriptor],
    notes: &mut Vec<String>,
) -> Result<(), String> {
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(command) = container
            .get_mut(probe)
            .and_then(|p| p.get_mut("exec"))
            .and_then(|e| e.get_mut("command"))
            .and_then(Value::as_sequence_mut)
        else {
            continue;
        };
        let words: Vec<String> = command
            .iter()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect();
        let Some(program) = words.first() else {
            continue;
        };
        let binary = program.rsplit('/').next().unwrap_or(program);
        let Some(d) = table.iter().copied().find(|d| d.binary == binary) else {
            continue;
        };
        let read = flags::read(d, &words[1..]).map_err(|e| format!("{probe}: {e}"))?;
        let merged = flags::merge(table, &[read])?;
        let mut rewritten = vec![format!("/{}", crate::NAME)];
        rewritten.extend(merged.args);
        aggregate_flags(crate::NAME, table)
            .parse(rewritten.iter().cloned())
            .map_err(|e| format!("{probe}: csi-sidecars rejects {rewritten:?}: {e}"))?;
        notes.push(format!(
            "{probe} ran {program}, which the csi-sidecars image does not have: it runs {} now",
            rewritten.join(" ")
        ));
        *command = rewritten.into_iter().map(Value::from).collect();
    }
    Ok(())
}

/// `--csi-address` as `volume <name>: <path inside it>`: `$(VAR)` expanded from the
/// container's `env` values, a `unix://` prefix dropped, the longest mount path that holds it
/// resolved to its volume. The address itself when no mount holds it.
fn socket_meaning(container: &Value, address: &str) -> String {
    let mut path = address.to_string();
    for var in container
        .get("env")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        if let (Some(name), Some(value)) = (
            var.get("name").and_then(Value::as_str),
            var.get("value").and_then(Value::as_str),
        ) {
            path = path.replace(&format!("$({name})"), value);
        }
    }
    let path = path
        .strip_prefix("unix://")
        .or_else(|| path.strip_prefix("unix:"))
        .unwrap_or(&path)
        .to_string();
    let best = container
        .get("volumeMounts")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let mount = m.get("mountPath")?.as_str()?.trim_end_matches('/');
            let rest = path.strip_prefix(mount)?;
            (rest.starts_with('/') || rest.is_empty()).then(|| {
                let sub = m.get("subPath").and_then(Value::as_str).unwrap_or_default();
                (
                    mount.len(),
                    m.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    format!("{sub}{rest}"),
                )
            })
        })
        .max_by_key(|(len, _, _)| *len);
    match best {
        Some((_, volume, rest)) => format!("volume {volume}: {rest}"),
        None => path,
    }
}

#[cfg(test)]
mod tests;
