//! `cargo xtask upstream [--check]`: the maintainer's list of ports to do.
//!
//! For every component of `release-tools/upstream-versions.toml` it prints the upstream release
//! the component mirrors, the newest release the Go module proxy of this machine lists for the
//! upstream module (`go list -m -versions`, so the proxy is whatever `go env GOPROXY` says, read
//! at run time), and whether the two differ. A module the proxy does not serve is reported as
//! "not served here", not as an error; a component upstream removed (`removed_upstream = "vX"`
//! in its section) has nothing to port. With `--check` the exit status is non-zero when a
//! component is behind. It needs the network, so CI does not run it.

use std::cmp::Ordering;
use std::process::Command;

use anyhow::{Context as _, bail};

/// The version table, relative to the workspace root.
const VERSIONS_FILE: &str = "release-tools/upstream-versions.toml";

/// One row of the version table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Component {
    /// The section name (`attacher`).
    name: String,
    /// `owner/repo`, possibly with a note (`kubernetes/kubelet (pkg/apis/…)`).
    upstream: String,
    /// The mirrored tag (`v4.13.0`).
    version: String,
    /// The release that removed the component upstream (`removed_upstream`): newer releases
    /// have nothing to port.
    removed_upstream: Option<String>,
}

/// What the proxy says about one component.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// The newest release listed is the mirrored one.
    Current,
    /// A newer release is listed.
    Behind(String),
    /// The newest listed release is older than the mirrored one (the proxy lags).
    Ahead(String),
    /// The proxy lists no release of the module.
    NotServed,
    /// Upstream removed the component; the mirrored release is its last.
    Removed(String),
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask upstream [--check]"),
    };
    let path = crate::project_root().join(VERSIONS_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let components = parse_versions(&text)?;
    let proxy = go_env("GOPROXY")?;
    println!("Go module proxy (go env GOPROXY): {proxy}\n");
    println!(
        "{:<36} {:<10} {:<10} status",
        "component", "mirrors", "newest"
    );
    let mut behind = Vec::new();
    for component in &components {
        let (module, listed) = newest_listed(component)?;
        let status = match &component.removed_upstream {
            Some(release) => Status::Removed(release.clone()),
            None => compare(&component.version, listed.as_deref()),
        };
        let newest = listed.unwrap_or_else(|| "-".to_string());
        let text = match &status {
            Status::Current => "same".to_string(),
            Status::Behind(v) => format!("BEHIND: port {} -> {v}", component.version),
            Status::Ahead(v) => format!("differs: the proxy's newest is {v}, older"),
            Status::NotServed => "not served here".to_string(),
            Status::Removed(release) => format!("removed upstream in {release}: nothing to port"),
        };
        println!(
            "{:<36} {:<10} {:<10} {text}\n{:<36} ({module})",
            component.name, component.version, newest, ""
        );
        if matches!(status, Status::Behind(_)) {
            behind.push(component.name.clone());
        }
    }
    if check && !behind.is_empty() {
        bail!("behind upstream: {}", behind.join(", "));
    }
    Ok(())
}

fn parse_versions(text: &str) -> anyhow::Result<Vec<Component>> {
    let table: toml::Table = toml::from_str(text).context(VERSIONS_FILE)?;
    let mut out = Vec::new();
    for (name, value) in table {
        let section = value
            .as_table()
            .with_context(|| format!("[{name}] is not a table"))?;
        let field = |key: &str| -> anyhow::Result<String> {
            section
                .get(key)
                .and_then(toml::Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("[{name}] has no {key}"))
        };
        out.push(Component {
            upstream: field("upstream")?,
            version: field("version")?,
            removed_upstream: field("removed_upstream").ok(),
            name,
        });
    }
    Ok(out)
}

/// The Go module paths to ask for, most likely first: `kubernetes/<x>` is published as
/// `k8s.io/<x>`, `kubernetes-sigs/<x>` as `sigs.k8s.io/<x>`; any other repository as
/// `github.com/<owner>/<repo>`; each with the `/vN` suffix Go
/// requires from major version 2 on, then without it (a repository whose go.mod never took
/// the suffix).
fn module_candidates(upstream: &str, version: &str) -> Vec<String> {
    let repo = upstream.split_whitespace().next().unwrap_or(upstream);
    if let Some(name) = repo.strip_prefix("kubernetes/") {
        return vec![format!("k8s.io/{name}")];
    }
    let base = match repo.strip_prefix("kubernetes-sigs/") {
        Some(name) => format!("sigs.k8s.io/{name}"),
        None => format!("github.com/{repo}"),
    };
    match parse_version(version).map(|v| v.0[0]) {
        Some(major) if major >= 2 => vec![format!("{base}/v{major}"), base],
        _ => vec![base],
    }
}

/// The module that answered (or the first candidate) and its newest listed release.
fn newest_listed(component: &Component) -> anyhow::Result<(String, Option<String>)> {
    let candidates = module_candidates(&component.upstream, &component.version);
    for module in &candidates {
        if let Some(versions) = go_list_versions(module)?
            && let Some(newest) = newest_release(&versions)
        {
            return Ok((module.clone(), Some(newest)));
        }
    }
    Ok((candidates[0].clone(), None))
}

/// `go list -m -versions MODULE`: the versions listed, or `None` when the proxy refuses or
/// does not know the module.
fn go_list_versions(module: &str) -> anyhow::Result<Option<Vec<String>>> {
    let output = Command::new("go")
        .args(["list", "-m", "-versions", module])
        .current_dir(std::env::temp_dir())
        .output()
        .context("running go (is Go installed?)")?;
    if !output.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(Some(
        text.split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect(),
    ))
}

fn go_env(name: &str) -> anyhow::Result<String> {
    let output = Command::new("go")
        .args(["env", name])
        .output()
        .context("running go env (is Go installed?)")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A release version `vX.Y.Z` (pre-releases and `+incompatible` builds are not releases).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version([u64; 3]);

fn parse_version(text: &str) -> Option<Version> {
    let rest = text.strip_prefix('v')?;
    let mut parts = rest.split('.');
    let mut out = [0u64; 3];
    for slot in &mut out {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(Version(out))
}

/// The highest release among `versions`.
fn newest_release(versions: &[String]) -> Option<String> {
    versions
        .iter()
        .filter_map(|v| parse_version(v).map(|p| (p, v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v.clone())
}

fn compare(mirrored: &str, newest: Option<&str>) -> Status {
    let Some(newest) = newest else {
        return Status::NotServed;
    };
    match (parse_version(mirrored), parse_version(newest)) {
        (Some(m), Some(n)) => match n.cmp(&m) {
            Ordering::Greater => Status::Behind(newest.to_string()),
            Ordering::Equal => Status::Current,
            Ordering::Less => Status::Ahead(newest.to_string()),
        },
        _ if mirrored == newest => Status::Current,
        _ => Status::Behind(newest.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_follow_go_major_version_rules() {
        assert_eq!(
            module_candidates("kubernetes-csi/external-attacher", "v4.13.0"),
            [
                "github.com/kubernetes-csi/external-attacher/v4",
                "github.com/kubernetes-csi/external-attacher"
            ]
        );
        assert_eq!(
            module_candidates(
                "kubernetes-sigs/sig-storage-lib-external-provisioner",
                "v13.1.0"
            ),
            [
                "sigs.k8s.io/sig-storage-lib-external-provisioner/v13",
                "sigs.k8s.io/sig-storage-lib-external-provisioner"
            ]
        );
        assert_eq!(
            module_candidates("kubernetes-csi/csi-lib-utils", "v0.24.0"),
            ["github.com/kubernetes-csi/csi-lib-utils"]
        );
        assert_eq!(
            module_candidates("container-storage-interface/spec", "v1.12.0"),
            ["github.com/container-storage-interface/spec"]
        );
        assert_eq!(
            module_candidates(
                "kubernetes/kubelet (pkg/apis/pluginregistration/v1)",
                "v0.36.1"
            ),
            ["k8s.io/kubelet"]
        );
    }

    #[test]
    fn the_newest_release_ignores_pre_releases() {
        let listed: Vec<String> = [
            "v1.12.0",
            "v1.13.0-rc1",
            "v1.9.0",
            "v1.10.0",
            "v2.0.0+incompatible",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(newest_release(&listed).as_deref(), Some("v1.12.0"));
        assert_eq!(newest_release(&[]), None);
        assert_eq!(newest_release(&["v0.38.0-beta.0".to_string()]), None);
    }

    #[test]
    fn status_says_whether_a_port_is_due() {
        assert_eq!(compare("v4.13.0", Some("v4.13.0")), Status::Current);
        assert_eq!(
            compare("v4.13.0", Some("v4.14.0")),
            Status::Behind("v4.14.0".into())
        );
        // Numeric, not textual, order.
        assert_eq!(
            compare("v0.9.0", Some("v0.10.0")),
            Status::Behind("v0.10.0".into())
        );
        assert_eq!(
            compare("v8.7.0", Some("v8.6.0")),
            Status::Ahead("v8.6.0".into())
        );
        assert_eq!(compare("v2.3.0", None), Status::NotServed);
    }

    #[test]
    fn the_committed_version_table_parses() {
        let text = include_str!("../../release-tools/upstream-versions.toml");
        let components = parse_versions(text).unwrap();
        assert!(components.iter().any(|c| c.name == "attacher"
            && c.upstream == "kubernetes-csi/external-attacher"
            && parse_version(&c.version).is_some()));
        for c in &components {
            assert!(!module_candidates(&c.upstream, &c.version).is_empty());
        }
        let webhook = components
            .iter()
            .find(|c| c.name == "snapshot-validation-webhook")
            .unwrap();
        assert_eq!(webhook.removed_upstream.as_deref(), Some("v8.2.0"));
    }
}
