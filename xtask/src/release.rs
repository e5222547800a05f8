//! `cargo xtask release`: from one `cargo build --release --locked`, an OCI image per upstream
//! image name (the rows of `release-tools/images.toml` whose binary exists) plus `csi-sidecars`,
//! each as an OCI image layout directory and a `docker load`-able archive; SHA-256 checksums, an
//! SPDX SBOM per image, release notes; then every image verified with skopeo and umoci and its
//! entrypoint run from the unpacked root filesystem.
//!
//! Reproducible: binaries are static (`+crt-static`) with build paths remapped, and every
//! timestamp in the images is SOURCE_DATE_EPOCH (by default the commit time of HEAD), so two runs
//! from one commit give the same bytes; `--check-reproducible` proves it with a second build in
//! a scratch target directory.

mod images;
mod notes;
mod oci;
mod sbom;
mod verify;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

const USAGE: &str = "\
usage: cargo xtask release [--version X.Y.Z] [--out DIR] [--repository PREFIX] [--arch amd64|arm64]
                           [--no-verify] [--check-reproducible]

  --version X.Y.Z       the release's version (default: the workspace's); images are tagged vX.Y.Z
                        and every binary reports it in --version
  --out DIR             where to write (default target/release-artifacts/vX.Y.Z); replaced if it
                        holds an earlier release's output
  --repository PREFIX   image repository prefix (default: release-tools/images.toml's)
  --arch ARCH           amd64 or arm64 (default: this machine's); arm64 needs its Rust target
  --no-verify           skip the skopeo/umoci checks and running the entrypoints
  --check-reproducible  build a second time in a scratch target directory and compare every
                        checksum and image digest (doubles the time; the scratch is removed)

Output: bin/linux-ARCH/<binary>, images/<name>/ (OCI layout), images/<name>.tar (docker load),
sbom/<name>.spdx.json, RELEASE-NOTES.md, IMAGE-DIGESTS, SHA256SUMS.
";

#[derive(Debug, Default)]
struct Options {
    version: Option<String>,
    out: Option<PathBuf>,
    repository: Option<String>,
    arch: Option<String>,
    verify: bool,
    check_reproducible: bool,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut o = Options {
            verify: true,
            ..Default::default()
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let mut value = || -> anyhow::Result<String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it
                        .next()
                        .cloned()
                        .with_context(|| format!("{name} needs a value")),
                }
            };
            match name {
                "--version" => o.version = Some(check_version(&value()?)?),
                "--out" => o.out = Some(PathBuf::from(value()?)),
                "--repository" => o.repository = Some(value()?),
                "--arch" => o.arch = Some(value()?),
                "--no-verify" => o.verify = false,
                "--check-reproducible" => o.check_reproducible = true,
                "-h" | "--help" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        Ok(o)
    }
}

/// `X.Y.Z` with an optional `-pre.release` part; a leading `v` is accepted and dropped.
fn check_version(v: &str) -> anyhow::Result<String> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    ensure!(
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())),
        "version {v:?} is not X.Y.Z"
    );
    if let Some(pre) = pre {
        ensure!(
            !pre.is_empty()
                && pre
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "version {v:?}: bad pre-release part"
        );
    }
    Ok(v.to_string())
}

/// Everything a run needs to know, fixed before it starts.
#[derive(Debug)]
struct Release {
    tag: String,
    revision: String,
    epoch: u64,
    arch: String,
    triple: String,
    repository: String,
    source_url: String,
    license: String,
    verify: bool,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = Options::parse(args)?;
    let root = crate::project_root();
    let sh = Shell::new()?;
    sh.change_dir(&root);
    let table = images::Table::load()?;
    let workspace: Value = serde_json::from_str(
        &cmd!(sh, "cargo metadata --format-version 1 --no-deps --locked")
            .quiet()
            .read()?,
    )?;
    let aio = workspace["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "csi-sidecars")
        .context("the csi-sidecars package is missing")?;
    let version = match opts.version {
        Some(v) => v,
        None => aio["version"].as_str().unwrap_or_default().to_string(),
    };
    let arch = match opts.arch.as_deref() {
        Some(a) => a.to_string(),
        None => match std::env::consts::ARCH {
            "x86_64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            other => bail!("no image architecture for {other}: pass --arch"),
        },
    };
    let triple = match arch.as_str() {
        "amd64" => "x86_64-unknown-linux-gnu",
        "arm64" => "aarch64-unknown-linux-gnu",
        other => bail!("--arch {other}: amd64 or arm64"),
    }
    .to_string();
    let mut revision = cmd!(sh, "git rev-parse HEAD").quiet().read()?;
    if !cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .read()?
        .is_empty()
    {
        eprintln!("warning: the work tree has uncommitted changes; the revision is marked -dirty");
        revision.push_str("-dirty");
    }
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.parse().context("SOURCE_DATE_EPOCH is not a number")?,
        Err(_) => cmd!(sh, "git log -1 --format=%ct HEAD")
            .quiet()
            .read()?
            .parse()?,
    };
    let release = Release {
        tag: format!("v{version}"),
        revision,
        epoch,
        arch,
        triple,
        repository: opts.repository.unwrap_or_else(|| table.repository.clone()),
        source_url: aio["repository"].as_str().unwrap_or_default().to_string(),
        license: aio["license"].as_str().unwrap_or_default().to_string(),
        verify: opts.verify,
    };
    let out = opts
        .out
        .unwrap_or_else(|| root.join("target/release-artifacts").join(&release.tag));
    let out = if out.is_absolute() {
        out
    } else {
        std::env::current_dir()?.join(out)
    };
    let digests = release_once(&sh, &release, &table, &out, &root.join("target"))?;
    if opts.check_reproducible {
        let scratch = root.join("target/release-reproducibility");
        let result = (|| {
            let again = Release {
                verify: false,
                ..release
            };
            let second = release_once(&sh, &again, &table, &scratch.join("out"), &scratch)?;
            compare(&out, &scratch.join("out"), &digests, &second)
        })();
        if scratch.exists() {
            fs::remove_dir_all(&scratch)
                .with_context(|| format!("removing {}", scratch.display()))?;
        }
        result?;
        println!("reproducible: a second build gave the same checksums and image digests");
    }
    Ok(())
}

/// One full run into `out`, building in `target_dir`; the image digests by image name.
fn release_once(
    sh: &Shell,
    r: &Release,
    table: &images::Table,
    out: &Path,
    target_dir: &Path,
) -> anyhow::Result<BTreeMap<String, oci::Written>> {
    let triple = &r.triple;
    let metadata: Value = serde_json::from_str(
        &cmd!(
            sh,
            "cargo metadata --format-version 1 --locked --filter-platform {triple}"
        )
        .quiet()
        .read()?,
    )?;
    let (present, missing) = table.present(&metadata)?;
    for row in &missing {
        println!(
            "not built: {} (no workspace crate has a binary {:?} yet)",
            row.name, row.binary
        );
    }
    let started = std::time::Instant::now();
    build(sh, r, &present, target_dir)?;
    println!(
        "built {} binaries in {:.0?}",
        present.len(),
        started.elapsed()
    );
    let started = std::time::Instant::now();
    prepare_out(out)?;
    let lock = fs::read_to_string(crate::project_root().join("Cargo.lock"))?;
    let checksums = sbom::lock_checksums(&lock)?;
    let bin_dir = out.join("bin").join(format!("linux-{}", r.arch));
    for dir in [&bin_dir, &out.join("images"), &out.join("sbom")] {
        fs::create_dir_all(dir)?;
    }
    let mut written = BTreeMap::new();
    for p in &present {
        let row = &p.row;
        let built = target_dir.join(&r.triple).join("release").join(&row.binary);
        let binary = fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
        fs::write(bin_dir.join(&row.binary), &binary)?;
        set_executable(&bin_dir.join(&row.binary))?;
        let spec = image_spec(r, row, binary.clone());
        let layout = out.join("images").join(&row.name);
        let w = oci::write_layout(&spec, &layout)?;
        let a = oci::write_archive(&spec, &out.join("images").join(format!("{}.tar", row.name)))?;
        ensure!(w == a, "{}: the layout and the archive differ", row.name);
        let facts = sbom::ImageFacts {
            name: &row.name,
            version: &r.tag,
            revision: &r.revision,
            created: r.epoch,
            manifest_digest: &w.manifest_digest,
            binary_sha256: &oci::sha256_hex(&binary),
            repository_url: &r.source_url,
        };
        let doc = sbom::spdx(&metadata, &checksums, &p.package_id, &facts)?;
        let mut doc = serde_json::to_vec_pretty(&doc)?;
        doc.push(b'\n');
        fs::write(
            out.join("sbom").join(format!("{}.spdx.json", row.name)),
            doc,
        )?;
        println!(
            "image {}/{}:{} {}",
            r.repository, row.name, r.tag, w.manifest_digest
        );
        written.insert(row.name.clone(), w);
    }
    let image_lines: String = written
        .iter()
        .map(|(name, w)| format!("{}/{name}:{} {}\n", r.repository, r.tag, w.manifest_digest))
        .collect();
    fs::write(out.join("IMAGE-DIGESTS"), &image_lines)?;
    write_notes(sh, r, out, &present, &written)?;
    write_sums(out)?;
    println!(
        "images, SBOMs, notes and checksums written in {:.0?}",
        started.elapsed()
    );
    if r.verify {
        let started = std::time::Instant::now();
        verify_all(r, &present, out, &written)?;
        println!("verified in {:.0?}", started.elapsed());
    }
    println!("release {} written to {}", r.tag, out.display());
    Ok(written)
}

/// The one `cargo build --release --locked` of every package that owns an image's binary.
fn build(
    sh: &Shell,
    r: &Release,
    present: &[images::Present],
    target_dir: &Path,
) -> anyhow::Result<()> {
    let root = crate::project_root();
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let mut packages: Vec<String> = Vec::new();
    for p in present {
        if !packages.contains(&p.package_name) {
            packages.extend(["-p".to_string(), p.package_name.clone()]);
        }
    }
    let rustflags = rustflags(&root, &cargo_home, target_dir);
    if std::env::var_os("RUSTFLAGS").is_some() {
        eprintln!("note: RUSTFLAGS from the environment is replaced by the release's own");
    }
    let triple = &r.triple;
    let mut build = cmd!(
        sh,
        "cargo build --release --locked --target {triple} {packages...} --bins"
    )
    .env("RUSTFLAGS", rustflags)
    .env("CARGO_TARGET_DIR", target_dir)
    .env("CARGO_INCREMENTAL", "0")
    .env("SOURCE_DATE_EPOCH", r.epoch.to_string())
    .env("CSI_SIDECARS_VERSION", &r.tag);
    let host = std::env::consts::ARCH;
    if triple.starts_with("aarch64") && host != "aarch64" {
        let var = "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER";
        if std::env::var_os(var).is_none() {
            build = build.env(var, "aarch64-linux-gnu-gcc");
        }
    }
    build.run().context("cargo build --release")?;
    Ok(())
}

/// Static binaries (an empty base image has no libc), with the machine's paths out of them.
/// The target directory comes last: rustc applies the last matching remapping.
fn rustflags(root: &Path, cargo_home: &Path, target_dir: &Path) -> String {
    format!(
        "-C target-feature=+crt-static --remap-path-prefix={}=/build/csi-sidecars \
         --remap-path-prefix={}=/build/cargo --remap-path-prefix={}=/build/target",
        root.display(),
        cargo_home.display(),
        target_dir.display()
    )
}

fn image_spec(r: &Release, row: &images::Row, binary: Vec<u8>) -> oci::ImageSpec {
    let labels: BTreeMap<String, String> = [
        ("created", oci::rfc3339(r.epoch)),
        ("description", row.description.clone()),
        ("licenses", r.license.clone()),
        ("revision", r.revision.clone()),
        ("source", r.source_url.clone()),
        ("title", row.name.clone()),
        ("url", r.source_url.clone()),
        ("version", r.tag.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("org.opencontainers.image.{k}"), v))
    .collect();
    oci::ImageSpec {
        repository: format!("{}/{}", r.repository, row.name),
        tag: r.tag.clone(),
        architecture: r.arch.clone(),
        created: r.epoch,
        entrypoint: vec![row.entrypoint.clone()],
        labels,
        entries: oci::minimal_rootfs(&row.entrypoint, binary),
    }
}

/// The output directory, emptied if it holds an earlier release (it has a SHA256SUMS) and
/// refused if it holds anything else.
fn prepare_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let empty = fs::read_dir(out)?.next().is_none();
        ensure!(
            empty || out.join("SHA256SUMS").is_file(),
            "{} exists and is not an earlier release's output: choose another --out",
            out.display()
        );
        fs::remove_dir_all(out)?;
    }
    fs::create_dir_all(out)?;
    Ok(())
}

fn write_notes(
    sh: &Shell,
    r: &Release,
    out: &Path,
    present: &[images::Present],
    written: &BTreeMap<String, oci::Written>,
) -> anyhow::Result<()> {
    let path = crate::project_root().join(notes::RULES_FILE);
    let rules = notes::Rules::parse(&fs::read_to_string(&path)?)
        .with_context(|| format!("in {}", path.display()))?;
    let (since, commits) = notes::history(sh, &rules, &r.tag)?;
    let mut text = notes::render(&rules, &r.tag, since.as_deref(), &commits);
    text.push_str(&format!(
        "\n## Images\n\nBuilt from {} for linux/{}; each runs as user 65532.\n\n\
         | image | in place of | digest |\n|---|---|---|\n",
        r.revision, r.arch
    ));
    for p in present {
        let name = &p.row.name;
        text.push_str(&format!(
            "| `{}/{name}:{}` | {} | `{}` |\n",
            r.repository, r.tag, p.row.upstream, written[name].manifest_digest
        ));
    }
    fs::write(out.join("RELEASE-NOTES.md"), text)?;
    Ok(())
}

/// `SHA256SUMS` (the `sha256sum -c` format) of every file of the release but the layout
/// directories' own files (their blobs are named by their digests already).
fn write_sums(out: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                // images/<name>/ is an OCI layout.
                if path.parent() != Some(&out.join("images")) {
                    stack.push(path);
                }
            } else if path != out.join("SHA256SUMS") {
                files.push(path);
            }
        }
    }
    let mut lines: Vec<String> = files
        .iter()
        .map(|p| -> anyhow::Result<String> {
            let rel = p.strip_prefix(out)?.display().to_string();
            Ok(format!("{}  {rel}\n", oci::sha256_hex(&fs::read(p)?)))
        })
        .collect::<anyhow::Result<_>>()?;
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    fs::write(out.join("SHA256SUMS"), lines.concat())?;
    Ok(())
}

fn verify_all(
    r: &Release,
    present: &[images::Present],
    out: &Path,
    written: &BTreeMap<String, oci::Written>,
) -> anyhow::Result<()> {
    verify::ensure_tools()?;
    let scratch = tempfile::tempdir()?;
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    if host != r.arch {
        println!(
            "note: {} binaries are not run on this {host} machine",
            r.arch
        );
    }
    for p in present {
        let row = &p.row;
        let spec = image_spec(r, row, Vec::new());
        verify::image(
            &verify::Expected {
                layout: &out.join("images").join(&row.name),
                archive: &out.join("images").join(format!("{}.tar", row.name)),
                repository: &spec.repository,
                tag: &r.tag,
                entrypoint: &row.entrypoint,
                version: &r.tag,
                written: &written[&row.name],
                labels: &spec.labels,
                run: host == r.arch,
                version_flag: row.version_flag,
            },
            scratch.path(),
        )
        .with_context(|| format!("verifying image {}", row.name))?;
        println!(
            "verified {}: skopeo, umoci, {} {}",
            row.name,
            row.entrypoint,
            if row.version_flag {
                "--help/--version"
            } else {
                "--help (it has no --version)"
            }
        );
    }
    Ok(())
}

/// Two runs' outputs: every checksum and image digest the same.
fn compare(
    first: &Path,
    second: &Path,
    a: &BTreeMap<String, oci::Written>,
    b: &BTreeMap<String, oci::Written>,
) -> anyhow::Result<()> {
    let mut differences = Vec::new();
    for file in ["SHA256SUMS", "IMAGE-DIGESTS"] {
        let x = fs::read_to_string(first.join(file))?;
        let y = fs::read_to_string(second.join(file))?;
        for (l1, l2) in x.lines().zip(y.lines()) {
            if l1 != l2 {
                differences.push(format!("{file}: {l1}\n   vs {l2}"));
            }
        }
        if x.lines().count() != y.lines().count() {
            differences.push(format!("{file}: different number of lines"));
        }
    }
    if a != b {
        differences.push("image digests differ".to_string());
    }
    ensure!(
        differences.is_empty(),
        "the two builds differ:\n{}",
        differences.join("\n")
    );
    Ok(())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
#[path = "release/release_tests.rs"]
mod tests;
