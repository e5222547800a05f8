//! Each image checked as a user would meet it, with packaged OCI tools rather than our own
//! reader: `skopeo` inspects the layout and the docker archive (digests, labels, user,
//! entrypoint), `umoci` unpacks the layout into a root filesystem, and the entrypoint is run from
//! that root filesystem with `--help` and, where upstream's has it, `--version`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use super::oci;

/// The Debian packages' tools; installed by `release-tools/install-release-tools` when missing.
pub fn ensure_tools() -> anyhow::Result<()> {
    let have = |t: &str| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("skopeo") && have("umoci") {
        return Ok(());
    }
    let script = crate::project_root().join("release-tools/install-release-tools");
    eprintln!("installing skopeo and umoci ({})", script.display());
    let status = Command::new("bash").arg(&script).status()?;
    ensure!(
        status.success() && have("skopeo") && have("umoci"),
        "skopeo and umoci are needed to verify the images: {} failed",
        script.display()
    );
    Ok(())
}

/// What the image must be.
#[derive(Debug)]
pub struct Expected<'a> {
    pub layout: &'a Path,
    pub archive: &'a Path,
    pub repository: &'a str,
    pub tag: &'a str,
    pub entrypoint: &'a str,
    pub version: &'a str,
    pub written: &'a oci::Written,
    pub labels: &'a std::collections::BTreeMap<String, String>,
    /// Whether the binaries can run here (the image is of this machine's architecture).
    pub run: bool,
    /// Whether the binary has `--version`; without it only `--help` is run.
    pub version_flag: bool,
}

/// Checks one image; `scratch` is an empty directory for the unpacked bundle, removed after.
pub fn image(e: &Expected<'_>, scratch: &Path) -> anyhow::Result<()> {
    let oci_ref = format!("oci:{}:{}", e.layout.display(), e.tag);
    let archive_ref = format!("docker-archive:{}", e.archive.display());

    let raw = run_bytes("skopeo", &["inspect", "--raw", &oci_ref])?;
    ensure!(
        oci::digest(&raw) == e.written.manifest_digest,
        "skopeo reads manifest {} from the layout, not {}",
        oci::digest(&raw),
        e.written.manifest_digest
    );
    let inspect: Value = serde_json::from_slice(&run_bytes("skopeo", &["inspect", &oci_ref])?)?;
    for (k, v) in e.labels {
        ensure!(
            inspect["Labels"][k] == v.as_str(),
            "skopeo sees label {k}={}, not {v}",
            inspect["Labels"][k]
        );
    }
    ensure!(inspect["Os"] == "linux", "os: {}", inspect["Os"]);
    for source in [&oci_ref, &archive_ref] {
        let config = run_bytes("skopeo", &["inspect", "--config", "--raw", source])?;
        ensure!(
            oci::digest(&config) == e.written.config_digest,
            "{source}: config {} is not {}",
            oci::digest(&config),
            e.written.config_digest
        );
        let config: Value = serde_json::from_slice(&config)?;
        ensure!(
            config["config"]["User"] == "65532:65532",
            "{source}: user {}",
            config["config"]["User"]
        );
        ensure!(
            config["config"]["Entrypoint"] == serde_json::json!([e.entrypoint]),
            "{source}: entrypoint {}",
            config["config"]["Entrypoint"]
        );
    }
    // skopeo finds the image in the archive by its tag (docker's manifest.json RepoTags).
    let want = format!("{}:{}", e.repository, e.tag);
    let tagged = format!("{archive_ref}:{want}");
    let raw = run_bytes("skopeo", &["inspect", "--config", "--raw", &tagged])
        .with_context(|| format!("the docker archive has no image tagged {want}"))?;
    ensure!(
        oci::digest(&raw) == e.written.config_digest,
        "{tagged}: another image"
    );

    let bundle = scratch.join("bundle");
    let mut unpack = vec!["unpack".to_string()];
    if !is_root() {
        unpack.push("--rootless".into());
    }
    unpack.extend([
        "--image".into(),
        format!("{}:{}", e.layout.display(), e.tag),
        bundle.display().to_string(),
    ]);
    let unpack: Vec<&str> = unpack.iter().map(String::as_str).collect();
    run_bytes("umoci", &unpack)?;
    let result = run_unpacked(e, &bundle);
    fs::remove_dir_all(&bundle).with_context(|| format!("removing {}", bundle.display()))?;
    result
}

/// The runtime bundle umoci made: its process is our entrypoint as 65532, and that binary runs
/// from the unpacked root filesystem.
fn run_unpacked(e: &Expected<'_>, bundle: &Path) -> anyhow::Result<()> {
    let runtime: Value = serde_json::from_slice(&fs::read(bundle.join("config.json"))?)?;
    ensure!(
        runtime["process"]["args"] == serde_json::json!([e.entrypoint]),
        "umoci's runtime config runs {}",
        runtime["process"]["args"]
    );
    if is_root() {
        ensure!(
            runtime["process"]["user"]["uid"] == oci::NONROOT,
            "umoci's runtime config runs as uid {}",
            runtime["process"]["user"]["uid"]
        );
    }
    if !e.run {
        return Ok(());
    }
    let binary: PathBuf = bundle
        .join("rootfs")
        .join(e.entrypoint.trim_start_matches('/'));
    let help = Command::new(&binary).arg("--help").env_clear().output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&help.stdout),
        String::from_utf8_lossy(&help.stderr)
    );
    let name = e.entrypoint.rsplit('/').next().unwrap_or_default();
    ensure!(
        help.status.success() && text.contains(name),
        "{} --help: {}\n{text}",
        binary.display(),
        help.status
    );
    if !e.version_flag {
        return Ok(());
    }
    ensure!(
        text.contains("-version"),
        "{} --help does not list --version:\n{text}",
        binary.display()
    );
    let version = Command::new(&binary)
        .arg("--version")
        .env_clear()
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let out = String::from_utf8_lossy(&version.stdout);
    ensure!(
        version.status.success() && out.contains(e.version),
        "{} --version: {} {out}{}",
        binary.display(),
        version.status,
        String::from_utf8_lossy(&version.stderr)
    );
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn run_bytes(tool: &str, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}
