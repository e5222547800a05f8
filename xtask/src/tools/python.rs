//! A Python virtualenv with the pinned packages of `release-tools/e2e-python-requirements.txt`,
//! for the end-to-end tests' foreign clients written in Python. Lives in the tools cache as
//! `python-<pins>/`, made once by `python3 -m venv` and `pip install --requirement`, and only
//! renamed into place once complete.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

/// The pinned requirements, relative to the workspace root.
const REQUIREMENTS_FILE: &str = "release-tools/e2e-python-requirements.txt";

/// The virtualenv's interpreter, creating the virtualenv on first use.
pub fn ensure() -> anyhow::Result<PathBuf> {
    let path = crate::project_root().join(REQUIREMENTS_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let pins = pins(&text).with_context(|| format!("in {}", path.display()))?;
    let dir = super::cache_root()?.join(format!("python-{}", pins.join("-").replace("==", "-")));
    let python = dir.join("bin/python");
    if python.is_file() {
        return Ok(python);
    }
    let scratch = dir.with_extension("partial");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    eprintln!(
        "creating a Python virtualenv with {} (first use)",
        pins.join(", ")
    );
    run(Command::new("python3").args(["-m", "venv"]).arg(&scratch))
        .context("python3 -m venv (Python 3 with its venv module is needed for the e2e tests)")?;
    run(Command::new(scratch.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--requirement",
        ])
        .arg(&path))
    .context("pip install of the e2e Python packages")?;
    // Renamed into place only once complete, so an interrupted install is never taken for a
    // finished one. The interpreter finds its packages relative to itself, so it works from the
    // new place (the scripts in bin/ name the old path in their first line: use `python -m`).
    fs::rename(&scratch, &dir).with_context(|| format!("moving into {}", dir.display()))?;
    Ok(python)
}

/// The `name==version` lines of a requirements file; anything else (ranges, URLs) is refused,
/// so that every run installs the same versions.
fn pins(text: &str) -> anyhow::Result<Vec<&str>> {
    let pins: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .collect();
    for pin in &pins {
        let Some((name, version)) = pin.split_once("==") else {
            bail!("{pin:?} is not pinned as name==version");
        };
        if name.is_empty()
            || version.is_empty()
            || !pin
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "=.-_".contains(c))
        {
            bail!("{pin:?} is not pinned as name==version");
        }
    }
    if pins.is_empty() {
        bail!("no packages pinned");
    }
    Ok(pins)
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_pins_are_accepted() {
        assert_eq!(
            pins("# comment\ngrpcio==1.85.3  # why\n\nprotobuf==6.1.0\n").unwrap(),
            ["grpcio==1.85.3", "protobuf==6.1.0"]
        );
        for bad in [
            "grpcio>=1.0",
            "grpcio",
            "==1.0",
            "grpcio==",
            "git+https://x==1",
            "",
        ] {
            assert!(pins(bad).is_err(), "{bad:?}");
        }
    }
}
