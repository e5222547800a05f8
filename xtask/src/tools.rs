//! `cargo xtask tools`: builds the third-party programs the end-to-end tests run (etcd,
//! kube-apiserver, kube-controller-manager, Kubernetes' mock CSI driver) from the Go module
//! versions pinned in `release-tools/e2e-versions.toml`, and fetches the snapshot CRDs.
//!
//! Go is used only here, and nothing it produces enters the repository: everything lands in
//! `${CSI_SIDECARS_TOOLS_DIR:-~/.cache/csi-sidecars/tools}`:
//!
//! ```text
//! <section>-<version>/<binary>      finished binaries (renamed into place when complete); a
//!                                   generated main's binary is <binary>-<digest of its source>
//! <section>-<version>/wrapper/      the generated go.mod + go.sum they were built from, and
//!                                   any generated main packages (`./cmd/<binary>/main.go`)
//! snapshot-crds-<version>/*.yaml    the CRDs, copied from the module cache
//! .locks/<section>-<version>.lock   serialises concurrent builds of the same section
//! ```
//!
//! Each section is built in a *wrapper module* that requires the upstream module at its pinned
//! version. Go honours `replace` directives only in the main module, so the upstream module's
//! own replaces are reproduced in the wrapper, generated from its go.mod; replaces pointing into
//! the upstream tree (k8s.io/kubernetes's `./staging/src/...`) become the published version of
//! that module. Go's caches (GOMODCACHE, GOCACHE) stay at their defaults so every build on the
//! machine shares them.
//!
//! A binary whose package is `./cmd/<binary>` has no main package upstream: its `main.go` is
//! generated here ([`GENERATED_MAINS`]) into the wrapper module, so it is built from the pinned
//! module's library packages with the same requirements and replaces as the section's other
//! binaries. Only the binaries asked for are built; the others of a section stay as cached.
//!
//! A section the module proxy cannot serve stays pinned but carries `unavailable = "<reason>"`:
//! asking for it fails at once with that reason instead of after a failed download.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{self, File, TryLockError};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Deserialize;

pub mod python;

/// The pinned versions, relative to the workspace root.
const VERSIONS_FILE: &str = "release-tools/e2e-versions.toml";
/// The section of [`VERSIONS_FILE`] holding the snapshot CRDs.
const SNAPSHOT_CRDS: &str = "snapshot-crds";
/// Overrides the cache directory.
const CACHE_ENV: &str = "CSI_SIDECARS_TOOLS_DIR";

const USAGE: &str = "\
usage: cargo xtask tools <command>

commands:
  build [name...]   build (or find cached) the named tools; all of them without names
  path <name>       print the path of a tool's binary (or of the snapshot CRD directory),
                    building it on first use; progress goes to stderr
  list              show every pinned tool, its version and whether it is cached

names: a binary (etcd, kube-apiserver, kube-controller-manager, csi-mock-driver,
snapshot-controller, csi-snapshotter, ...) or a section of release-tools/e2e-versions.toml
(kubernetes, snapshot-crds, external-snapshotter, ...). Sections marked `unavailable`
(hostpathplugin) fail with their reason; `build` without names skips them.
cache: $CSI_SIDECARS_TOOLS_DIR, default ~/.cache/csi-sidecars/tools
";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some((command, names)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    match (command.as_str(), names) {
        ("build", names) => build(names),
        ("path", [name]) => {
            let path = if name == SNAPSHOT_CRDS {
                snapshot_crd_dir()?
            } else {
                ensure(name)?
            };
            println!("{}", path.display());
            Ok(())
        }
        ("list", []) => list(),
        ("-h" | "--help" | "help", _) => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("{USAGE}");
            bail!("cargo xtask tools: bad arguments {args:?}")
        }
    }
}

/// The path of a tool, building it (or fetching its files) on first use; later calls only look
/// at the cache. `name` is a binary (`etcd`, `kube-apiserver`, `kube-controller-manager`,
/// `csi-mock-driver`) or a section that yields one path (`etcd`, `snapshot-crds`). A tool of a
/// section marked `unavailable` (`hostpathplugin`) is an error at once, carrying the reason.
pub fn ensure(name: &str) -> anyhow::Result<PathBuf> {
    Tools::load()?.ensure(name)
}

/// The directory holding the VolumeSnapshot* and VolumeGroupSnapshot* CRD YAMLs (and nothing
/// else, so every file in it can be applied).
pub fn snapshot_crd_dir() -> anyhow::Result<PathBuf> {
    ensure(SNAPSHOT_CRDS)
}

fn build(names: &[String]) -> anyhow::Result<()> {
    let tools = Tools::load()?;
    let names: Vec<&str> = if names.is_empty() {
        tools
            .sections
            .iter()
            .filter(|(name, section)| match &section.unavailable {
                Some(reason) => {
                    eprintln!("skipping {name}: {reason}");
                    false
                }
                None => true,
            })
            .map(|(name, _)| name.as_str())
            .collect()
    } else {
        names.iter().map(String::as_str).collect()
    };
    // Keep going after a failure: each build takes minutes, and the others are still useful.
    let mut failures = Vec::new();
    for name in names {
        let result = tools
            .resolve(name)
            .and_then(|target| tools.ensure_target(&target));
        match result {
            Ok(paths) => paths.iter().for_each(|p| eprintln!("  {}", p.display())),
            Err(e) => {
                eprintln!("error: {e:#}");
                failures.push(name);
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "cargo xtask tools build failed for: {}",
            failures.join(", ")
        );
    }
    Ok(())
}

fn list() -> anyhow::Result<()> {
    let tools = Tools::load()?;
    println!("cache: {}", tools.cache.display());
    for (name, section) in &tools.sections {
        let cached = if section.unavailable.is_some() {
            "unavailable"
        } else if tools.missing(name, section, None).is_empty() {
            "cached"
        } else if section.binaries.is_empty()
            || tools.missing(name, section, None).len() == section.binaries.len()
        {
            "not built"
        } else {
            "partly built"
        };
        let what = if section.binaries.is_empty() {
            format!("{} (files)", section.dir.as_deref().unwrap_or_default())
        } else {
            section.binary_list()
        };
        println!(
            "{name:<15} {:<9} {:<12} {} -> {what}",
            section.version, cached, section.module
        );
        if let Some(reason) = &section.unavailable {
            println!("{:<15} ({reason})", "");
        }
    }
    Ok(())
}

/// One section of [`VERSIONS_FILE`]: a Go module at a pinned version.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Section {
    module: String,
    version: String,
    /// Binary name -> main package. Built together in one `go build`, which shares the work.
    #[serde(default)]
    binaries: BTreeMap<String, String>,
    /// For a section that provides files rather than binaries: the directory in the module.
    dir: Option<String>,
    #[serde(default = "yes")]
    copy_replaces: bool,
    local_replace_version: Option<String>,
    /// `-X importpath.name=value` link settings, `{version}`/`{major}`/`{minor}` substituted.
    #[serde(default)]
    ldflags_x: Vec<String>,
    /// Why this section cannot be built here; asking for it fails at once with this reason.
    unavailable: Option<String>,
}

fn yes() -> bool {
    true
}

impl Section {
    /// "kube-apiserver, kube-controller-manager"
    fn binary_list(&self) -> String {
        self.binaries.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// What a name given on the command line (or to [`ensure`]) refers to.
#[derive(Debug)]
enum Target<'a> {
    Binary { section: &'a str, binary: &'a str },
    Section(&'a str),
}

#[derive(Debug)]
struct Tools {
    sections: BTreeMap<String, Section>,
    cache: PathBuf,
}

impl Tools {
    fn load() -> anyhow::Result<Self> {
        let path = crate::project_root().join(VERSIONS_FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, cache_root()?).with_context(|| format!("in {}", path.display()))
    }

    fn parse(text: &str, cache: PathBuf) -> anyhow::Result<Self> {
        let sections: BTreeMap<String, Section> = toml::from_str(text)?;
        let tools = Self { sections, cache };
        tools.validate()?;
        Ok(tools)
    }

    /// Catches mistakes in the version file before a build spends minutes on them.
    fn validate(&self) -> anyhow::Result<()> {
        let mut binaries = BTreeSet::new();
        for (name, section) in &self.sections {
            let ctx = || format!("section [{name}]");
            semver_parts(&section.version).with_context(ctx)?;
            match (section.binaries.is_empty(), &section.dir) {
                (false, None) | (true, Some(_)) => {}
                _ => bail!("section [{name}] needs either `binaries` or `dir`"),
            }
            let mut exec_names = BTreeSet::new();
            for (binary, package) in &section.binaries {
                if !binaries.insert(binary.as_str()) {
                    bail!("binary {binary:?} is listed twice");
                }
                // `go build -o dir/ pkg...` names each binary after its package; two packages
                // with the same name would overwrite each other.
                if !exec_names.insert(go_exec_name(package)) {
                    bail!("section [{name}]: two packages would both build {package:?}'s name");
                }
                if package.starts_with("./") {
                    let expected = format!("./cmd/{binary}");
                    if *package != expected || generated_main(binary).is_none() {
                        bail!(
                            "section [{name}]: {binary} = {package:?} is a package of the wrapper \
                             module, which only xtask's generated mains provide (as ./cmd/<binary>; \
                             there are: {})",
                            GENERATED_MAINS
                                .iter()
                                .map(|(b, _)| *b)
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Binary names win over section names, so `etcd` is the binary of section `etcd`.
    fn resolve<'a>(&'a self, name: &'a str) -> anyhow::Result<Target<'a>> {
        if let Some((section, _)) = self
            .sections
            .iter()
            .find(|(_, section)| section.binaries.contains_key(name))
        {
            return Ok(Target::Binary {
                section,
                binary: name,
            });
        }
        if self.sections.contains_key(name) {
            return Ok(Target::Section(name));
        }
        let known: BTreeSet<&str> = self
            .sections
            .iter()
            .flat_map(|(name, s)| {
                std::iter::once(name.as_str()).chain(s.binaries.keys().map(String::as_str))
            })
            .collect();
        let known: Vec<&str> = known.into_iter().collect();
        bail!("unknown tool {name:?} (known: {})", known.join(", "))
    }

    fn ensure(&self, name: &str) -> anyhow::Result<PathBuf> {
        let target = self.resolve(name)?;
        let paths = self.ensure_target(&target)?;
        match (target, <[PathBuf; 1]>::try_from(paths)) {
            // A section name is enough when it yields a single path (the etcd section, the CRDs).
            (_, Ok([path])) => Ok(path),
            (Target::Binary { .. }, Err(_)) => unreachable!("a binary is one path"),
            (Target::Section(section), Err(_)) => bail!(
                "section {name:?} has several binaries; name one of: {}",
                self.sections[section].binary_list()
            ),
        }
    }

    /// Builds or fetches what `target` names unless the cache has it, and returns its paths:
    /// the binary; every binary of a section; or a section's files directory.
    fn ensure_target(&self, target: &Target<'_>) -> anyhow::Result<Vec<PathBuf>> {
        let (name, only) = match *target {
            Target::Binary { section, binary } => (section, Some(binary)),
            Target::Section(section) => (section, None),
        };
        let section = &self.sections[name];
        if let Some(reason) = &section.unavailable {
            bail!("{reason} (marked unavailable in {VERSIONS_FILE} [{name}])");
        }
        let out = self.out_dir(name, section);
        let paths: Vec<PathBuf> = match only {
            Some(binary) => vec![out.join(cached_name(binary))],
            None if section.binaries.is_empty() => vec![out.clone()],
            None => section
                .binaries
                .keys()
                .map(|b| out.join(cached_name(b)))
                .collect(),
        };
        // The fast path: no lock, no `go`, just a stat per binary.
        if self.missing(name, section, only).is_empty() {
            return Ok(paths);
        }
        let _lock = self.lock(name, section)?;
        // Someone else may have built some or all of it while we waited for the lock.
        let missing = self.missing(name, section, only);
        if missing.is_empty() {
            return Ok(paths);
        }
        let what = if section.binaries.is_empty() {
            name.to_owned()
        } else {
            missing.join(", ")
        };
        if section.binaries.is_empty() {
            self.fetch_files(name, section)
        } else {
            self.build_binaries(name, section, &missing)
        }
        .with_context(|| {
            format!(
                "{} {what} ({} {}) failed",
                if section.binaries.is_empty() {
                    "fetching"
                } else {
                    "building"
                },
                section.module,
                section.version
            )
        })?;
        Ok(paths)
    }

    fn out_dir(&self, name: &str, section: &Section) -> PathBuf {
        self.cache.join(format!("{name}-{}", section.version))
    }

    /// The binaries of a section (all of them, or only `only`) that are not in the cache yet;
    /// for a files section, `[name]` unless its directory is there. A binary or directory in
    /// the cache is complete: they are only ever renamed there whole.
    fn missing<'a>(
        &self,
        name: &'a str,
        section: &'a Section,
        only: Option<&'a str>,
    ) -> Vec<&'a str> {
        let out = self.out_dir(name, section);
        if section.binaries.is_empty() {
            return if out.is_dir() { vec![] } else { vec![name] };
        }
        section
            .binaries
            .keys()
            .map(String::as_str)
            .filter(|b| only.is_none_or(|only| only == *b))
            .filter(|b| !out.join(cached_name(b)).is_file())
            .collect()
    }

    /// An exclusive lock per section and version, so that two test processes needing the same
    /// tool build it once instead of twice at the same time on a small machine.
    fn lock(&self, name: &str, section: &Section) -> anyhow::Result<File> {
        let dir = self.cache.join(".locks");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}-{}.lock", section.version));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                eprintln!(
                    "waiting for another process building {} {} (lock {})",
                    what(name, section),
                    section.version,
                    path.display()
                );
                file.lock()
                    .with_context(|| format!("locking {}", path.display()))?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        Ok(file)
    }

    /// Builds `binaries` (some of the section's) in one `go build`.
    fn build_binaries(
        &self,
        name: &str,
        section: &Section,
        binaries: &[&str],
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        eprintln!(
            "building {} {} (first use; takes minutes)",
            binaries.join(", "),
            section.version
        );
        let out = self.out_dir(name, section);
        let wrapper = out.join("wrapper");
        recreate_dir(&wrapper)?;

        // The upstream go.mod, for its replaces.
        let info = go_mod_download(&wrapper, section)?;
        let upstream_go_mod = info.go_mod.context("`go mod download` gave no GoMod")?;
        let upstream_go_mod = fs::read_to_string(&upstream_go_mod)
            .with_context(|| format!("reading {upstream_go_mod}"))?;
        let go_mod = wrapper_go_mod(name, section, &upstream_go_mod)?;
        fs::write(wrapper.join("go.mod"), go_mod)?;
        let mut packages = Vec::new();
        for binary in binaries {
            let package = &section.binaries[*binary];
            if package.starts_with("./") {
                let source = generated_main(binary).expect("validated: a generated main");
                let dir = wrapper.join(package);
                fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                fs::write(dir.join("main.go"), source)?;
            }
            packages.push(package.as_str());
        }

        // Build into a scratch directory and rename each binary into place only once `go build`
        // succeeded, so an interrupted build never looks finished. (We hold the lock, so a
        // scratch directory left here is from an interrupted build: recreate_dir clears it.)
        let scratch = out.join(".build");
        recreate_dir(&scratch)?;
        let mut ldflags = String::from("-s -w");
        for x in &section.ldflags_x {
            write!(ldflags, " -X {}", expand(x, &section.version)?)?;
        }
        let mut go = go_command(&wrapper);
        go.arg("build")
            // The wrapper starts without a go.sum: let `go` record the checksums. Versions do
            // not drift: upstream's go.mod is tidy, so its requirements cover every import.
            .arg("-mod=mod")
            // Smaller binaries and link-time savings; the paths of this machine are of no use.
            .arg("-trimpath")
            .arg(format!("-ldflags={ldflags}"))
            .arg("-o")
            // The trailing slash makes `-o` a directory, as several packages need.
            .arg(format!("{}/", scratch.display()))
            .args(&packages);
        run_go(go)?;

        for (binary, package) in binaries.iter().zip(&packages) {
            let built = scratch.join(go_exec_name(package));
            let target = out.join(cached_name(binary));
            fs::rename(&built, &target)
                .with_context(|| format!("moving {} to {}", built.display(), target.display()))?;
            let size = fs::metadata(&target)?.len();
            eprintln!(
                "built {binary} {} in {:.0?} ({:.1} MiB): {}",
                section.version,
                started.elapsed(),
                size as f64 / (1024.0 * 1024.0),
                target.display()
            );
        }
        fs::remove_dir_all(&scratch).ok();
        Ok(())
    }

    fn fetch_files(&self, name: &str, section: &Section) -> anyhow::Result<()> {
        let dir = section
            .dir
            .as_deref()
            .expect("validated: dir without binaries");
        eprintln!(
            "fetching {name} {} ({} {dir})",
            section.version, section.module
        );
        let out = self.out_dir(name, section);
        let scratch = self.cache.join(format!(".{name}-{}.tmp", section.version));
        recreate_dir(&scratch)?;
        let info = go_mod_download(&scratch, section)?;
        let source = PathBuf::from(info.dir.context("`go mod download` gave no Dir")?).join(dir);
        let files = scratch.join("files");
        fs::create_dir(&files)?;
        let mut copied = 0;
        for entry in
            fs::read_dir(&source).with_context(|| format!("reading {}", source.display()))?
        {
            let entry = entry?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            // kustomization.yaml is not a Kubernetes object: leave it out so that callers can
            // apply every file of the directory.
            if file_name.ends_with(".yaml") && file_name != "kustomization.yaml" {
                let copy = files.join(&*file_name);
                fs::copy(entry.path(), &copy)?;
                // The module cache's files are read-only; the copies need not be.
                fs::set_permissions(&copy, fs::Permissions::from_mode(0o644))?;
                copied += 1;
            }
        }
        if copied == 0 {
            bail!("no YAML files in {}", source.display());
        }
        fs::rename(&files, &out)
            .with_context(|| format!("moving {} to {}", files.display(), out.display()))?;
        fs::remove_dir_all(&scratch).ok();
        eprintln!("fetched {copied} files: {}", out.display());
        Ok(())
    }
}

/// "kube-apiserver, kube-controller-manager", or the section name for files.
fn what(name: &str, section: &Section) -> String {
    if section.binaries.is_empty() {
        name.to_owned()
    } else {
        section.binary_list()
    }
}

fn cache_root() -> anyhow::Result<PathBuf> {
    let root = match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME")
                .context("neither $CSI_SIDECARS_TOOLS_DIR nor $HOME is set")?;
            Path::new(&home).join(".cache/csi-sidecars/tools")
        }
    };
    // Absolute, because it ends up in `replace ... => <dir>` lines of the wrapper go.mod.
    Ok(std::path::absolute(root)?)
}

fn recreate_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// `go` with the environment every invocation here wants; Go's own caches stay at their
/// defaults (or whatever the user set) so that builds share them.
fn go_command(dir: &Path) -> Command {
    let mut go = Command::new("go");
    go.current_dir(dir)
        // A go.work further up must not pull the wrapper into someone else's workspace.
        .env("GOWORK", "off")
        // Static binaries, as upstream releases them; no C toolchain needed.
        .env("CGO_ENABLED", "0");
    go
}

/// Runs `go` to completion, capturing what it prints.
fn go_output(go: &mut Command) -> anyhow::Result<Output> {
    go.output()
        .context("running go: the Go toolchain (on PATH) is needed to build the test tools")
}

/// Runs `go`; on failure the error carries everything `go` printed.
fn run_go(mut go: Command) -> anyhow::Result<()> {
    let output = go_output(&mut go)?;
    if !output.status.success() {
        let args: Vec<_> = go.get_args().map(|a| a.to_string_lossy()).collect();
        bail!(
            "`go {}` failed ({}) in {}:\n{}{}",
            args.join(" "),
            output.status,
            go.get_current_dir().unwrap_or(Path::new(".")).display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The fields of `go mod download -json` used here.
#[derive(Debug, Deserialize)]
struct ModuleDownload {
    #[serde(rename = "Dir")]
    dir: Option<String>,
    #[serde(rename = "GoMod")]
    go_mod: Option<String>,
    #[serde(rename = "Error")]
    error: Option<String>,
}

/// Downloads the module into the module cache (if it is not there yet).
fn go_mod_download(dir: &Path, section: &Section) -> anyhow::Result<ModuleDownload> {
    let mut go = go_command(dir);
    go.args(["mod", "download", "-json"])
        .arg(format!("{}@{}", section.module, section.version));
    let output = go_output(&mut go)?;
    // On failure `go mod download -json` still prints the JSON, with the reason in Error.
    let info: ModuleDownload = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "go mod download failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if let Some(error) = info.error {
        bail!(
            "go mod download: {error}\n(if the module proxy refuses this module, mark its \
             section in {VERSIONS_FILE} `unavailable = \"<reason>\"`)"
        );
    }
    Ok(info)
}

/// The default binary name of `go build -o dir/ <package>`: the last path element, except that
/// a major-version suffix (`/v3`) is skipped, as in cmd/go's `DefaultExecName`.
fn go_exec_name(package: &str) -> &str {
    let mut elements = package.rsplit('/');
    let last = elements.next().unwrap_or(package);
    let is_version = |e: &str| {
        e.len() >= 2
            && e.starts_with('v')
            && e[1..].bytes().all(|b| b.is_ascii_digit())
            && !e[1..].starts_with('0')
            && e != "v1"
    };
    match elements.next() {
        Some(previous) if is_version(last) => previous,
        _ => last,
    }
}

/// `v1.36.3` -> ("1", "36"); also validates the shape of a version.
fn semver_parts(version: &str) -> anyhow::Result<(&str, &str)> {
    let parse = || {
        let core = version.strip_prefix('v')?;
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (parts.next().is_none() && numeric(major) && numeric(minor) && numeric(patch))
            .then_some((major, minor))
    };
    parse().with_context(|| format!("version {version:?} is not of the form vMAJOR.MINOR.PATCH"))
}

/// Substitutes `{version}`, `{major}` and `{minor}` in an `ldflags-x` entry.
fn expand(template: &str, version: &str) -> anyhow::Result<String> {
    let (major, minor) = semver_parts(version)?;
    Ok(template
        .replace("{version}", version)
        .replace("{major}", major)
        .replace("{minor}", minor))
}

/// The directives of a go.mod that apply only when it is the main module, and so must be
/// carried over into a wrapper.
#[derive(Debug, Default, PartialEq)]
struct MainModuleDirectives {
    go: Option<String>,
    godebug: Vec<String>,
    exclude: Vec<String>,
    replace: Vec<Replace>,
}

#[derive(Debug, Clone, PartialEq)]
struct Replace {
    old: String,
    old_version: Option<String>,
    new: String,
    new_version: Option<String>,
}

impl Replace {
    /// `./staging/src/k8s.io/api`, `../api`: a directory, meaningless outside the upstream tree.
    fn points_into_tree(&self) -> bool {
        self.new_version.is_none()
            && (self.new.starts_with("./")
                || self.new.starts_with("../")
                || self.new == "."
                || self.new == "..")
    }

    fn render(&self) -> String {
        let side = |path: &str, version: &Option<String>| match version {
            Some(v) => format!("{path} {v}"),
            None => path.to_owned(),
        };
        format!(
            "{} => {}",
            side(&self.old, &self.old_version),
            side(&self.new, &self.new_version)
        )
    }
}

/// Reads the main-module-only directives of a go.mod, in both the one-line (`replace a => b`)
/// and the block (`replace ( ... )`) forms.
fn parse_go_mod(text: &str) -> anyhow::Result<MainModuleDirectives> {
    let mut directives = MainModuleDirectives::default();
    let mut block: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.split("//").next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let (verb, args) = match &block {
            Some(_) if line == ")" => {
                block = None;
                continue;
            }
            Some(verb) => (verb.clone(), line),
            None => {
                let (verb, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let args = args.trim();
                if args == "(" {
                    block = Some(verb.to_owned());
                    continue;
                }
                (verb.to_owned(), args)
            }
        };
        let ctx = || format!("go.mod line {}: {line:?}", number + 1);
        match verb.as_str() {
            "go" => directives.go = Some(args.to_owned()),
            "godebug" => directives.godebug.push(args.to_owned()),
            "exclude" => directives.exclude.push(args.to_owned()),
            "replace" => directives
                .replace
                .push(parse_replace(args).with_context(ctx)?),
            // module, require, retract, toolchain, tool, ignore: not needed in a wrapper (and a
            // toolchain line could make `go` download another toolchain).
            _ => {}
        }
    }
    if block.is_some() {
        bail!("go.mod ends inside a block");
    }
    Ok(directives)
}

fn parse_replace(args: &str) -> anyhow::Result<Replace> {
    let (old, new) = args.split_once("=>").context("replace without \"=>\"")?;
    let split = |side: &str| -> anyhow::Result<(String, Option<String>)> {
        let words: Vec<&str> = side
            .split_whitespace()
            .map(|w| w.trim_matches('"'))
            .collect();
        match words.as_slice() {
            [path] => Ok(((*path).to_owned(), None)),
            [path, version] => Ok(((*path).to_owned(), Some((*version).to_owned()))),
            _ => bail!("expected \"path [version]\", got {side:?}"),
        }
    };
    let (old, old_version) = split(old)?;
    let (new, new_version) = split(new)?;
    Ok(Replace {
        old,
        old_version,
        new,
        new_version,
    })
}

/// The wrapper's `replace` block, generated from the upstream go.mod: replaces to other modules
/// are kept as they are; replaces into the upstream tree (k8s.io/kubernetes's
/// `k8s.io/api => ./staging/src/k8s.io/api`) become the published module at
/// `local_replace_version`. Empty when upstream has no replaces.
fn replace_block(
    upstream_go_mod: &str,
    local_replace_version: Option<&str>,
) -> anyhow::Result<String> {
    let replaces = parse_go_mod(upstream_go_mod)?.replace;
    if replaces.is_empty() {
        return Ok(String::new());
    }
    let mut block = String::from("replace (\n");
    for replace in &replaces {
        let replace = if replace.points_into_tree() {
            let version = local_replace_version.with_context(|| {
                format!(
                    "upstream replaces {} with the directory {}; set local-replace-version \
                     to the published version to use instead",
                    replace.old, replace.new
                )
            })?;
            Replace {
                new: replace.old.clone(),
                new_version: Some(version.to_owned()),
                ..replace.clone()
            }
        } else {
            replace.clone()
        };
        writeln!(block, "\t{}", replace.render())?;
    }
    block.push_str(")\n");
    Ok(block)
}

/// The go.mod of the wrapper module for one section.
fn wrapper_go_mod(name: &str, section: &Section, upstream_go_mod: &str) -> anyhow::Result<String> {
    let upstream = parse_go_mod(upstream_go_mod)?;
    let lines = |verb: &str, args: &[String]| -> String {
        args.iter().map(|a| format!("{verb} {a}\n")).collect()
    };
    let mut paragraphs = vec![format!(
        "// Generated by `cargo xtask tools` from {VERSIONS_FILE} [{name}]; rebuilt on every build.\n\
         module csi-sidecars-e2e-tools/{name}\n"
    )];
    // `go` and `godebug` of the main module set the GODEBUG defaults the binaries run with:
    // keep upstream's, so they behave as upstream built them.
    if let Some(go) = &upstream.go {
        paragraphs.push(format!("go {go}\n"));
    }
    paragraphs.push(lines("godebug", &upstream.godebug));
    paragraphs.push(format!("require {} {}\n", section.module, section.version));
    paragraphs.push(lines("exclude", &upstream.exclude));
    if section.copy_replaces {
        let block = replace_block(upstream_go_mod, section.local_replace_version.as_deref())?;
        if !block.is_empty() {
            paragraphs.push(format!(
                "// From {}@{}'s go.mod.\n{block}",
                section.module, section.version
            ));
        }
    }
    paragraphs.retain(|p| !p.is_empty());
    Ok(paragraphs.join("\n"))
}

/// Main packages written into a wrapper module as `./cmd/<binary>/main.go`, for binaries whose
/// pinned module has the code but no main package. Generated on every build, never stored in
/// the repository.
const GENERATED_MAINS: &[(&str, &str)] = &[
    ("csi-mock-driver", CSI_MOCK_DRIVER_MAIN),
    ("foreign-clients", FOREIGN_CLIENTS_MAIN),
    ("csi-translation", CSI_TRANSLATION_MAIN),
];

/// `foreign-clients`: other programs' client code for what our sidecars serve — the kubelet's
/// plugin manager and plugin-socket dial, the kubelet's HTTP prober, Prometheus' metrics
/// decoder — as one test program; its commands are described at the top of the file.
const FOREIGN_CLIENTS_MAIN: &str = include_str!("tools/foreign_clients.go");

/// `csi-translation`: Kubernetes' csi-translation-lib run on a corpus of JSON lines, the oracle
/// our port of it (lib/translation) is compared with; its input is described at the top of the
/// file.
const CSI_TRANSLATION_MAIN: &str = include_str!("tools/csi_translation.go");

/// The file name of `binary` in its section's cache directory: the binary's name, and for a
/// generated main a digest of its source too, so that a changed main (a new flag of the mock
/// driver) is built anew instead of an older build being found in the shared cache.
fn cached_name(binary: &str) -> String {
    match generated_main(binary) {
        Some(source) => format!("{binary}-{:016x}", fnv1a(source.as_bytes())),
        None => binary.to_owned(),
    }
}

/// 64-bit FNV-1a: a stable digest (std's hashers may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn generated_main(binary: &str) -> Option<&'static str> {
    GENERATED_MAINS
        .iter()
        .find(|(b, _)| *b == binary)
        .map(|(_, source)| *source)
}

/// `csi-mock-driver`: Kubernetes' e2e mock CSI driver (the package the e2e suite embeds in its
/// test process) as a process serving one unix socket, configured by flags that map one to one
/// onto `service.Config`. The service takes its node ID from the driver name: there is no
/// separate node ID to set.
const CSI_MOCK_DRIVER_MAIN: &str = include_str!("tools/csi_mock_driver.go");

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &str = "\
// A comment.
module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api // the staging copy
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)

replace github.com/foo/bar v1.2.0 => github.com/fork/bar v1.2.1

exclude github.com/bad/mod v0.1.0
";

    #[test]
    fn replace_block_maps_tree_replaces_to_published_versions() {
        let block = replace_block(UPSTREAM, Some("v0.36.3")).unwrap();
        assert_eq!(
            block,
            "replace (\n\
             \tk8s.io/api => k8s.io/api v0.36.3\n\
             \tk8s.io/client-go => k8s.io/client-go v0.36.3\n\
             \tgithub.com/foo/bar v1.2.0 => github.com/fork/bar v1.2.1\n\
             )\n"
        );
    }

    #[test]
    fn replace_block_keeps_versioned_replaces_verbatim() {
        // The form csi-driver-host-path uses: one line per replace, already versioned.
        let go_mod = "module example.com/x\n\n\
                      replace k8s.io/api => k8s.io/api v0.36.1\n\n\
                      replace k8s.io/legacy-cloud-providers => k8s.io/legacy-cloud-providers v0.33.0\n";
        let block = replace_block(go_mod, None).unwrap();
        assert_eq!(
            block,
            "replace (\n\
             \tk8s.io/api => k8s.io/api v0.36.1\n\
             \tk8s.io/legacy-cloud-providers => k8s.io/legacy-cloud-providers v0.33.0\n\
             )\n"
        );
    }

    #[test]
    fn replace_block_needs_a_version_for_tree_replaces() {
        let err = replace_block(UPSTREAM, None).unwrap_err();
        assert!(
            format!("{err:#}").contains("local-replace-version"),
            "{err:#}"
        );
    }

    #[test]
    fn replace_block_is_empty_without_replaces() {
        assert_eq!(replace_block("module a\ngo 1.22\n", None).unwrap(), "");
    }

    #[test]
    fn parse_go_mod_reads_main_module_directives() {
        let d = parse_go_mod(UPSTREAM).unwrap();
        assert_eq!(d.go.as_deref(), Some("1.26.0"));
        assert_eq!(d.godebug, ["default=go1.26"]);
        assert_eq!(d.exclude, ["github.com/bad/mod v0.1.0"]);
        assert_eq!(d.replace.len(), 3);
        assert_eq!(d.replace[2].old_version.as_deref(), Some("v1.2.0"));
    }

    #[test]
    fn parse_go_mod_rejects_malformed_replaces() {
        assert!(parse_go_mod("replace a b c\n").is_err());
        assert!(parse_go_mod("replace a => b c d\n").is_err());
        assert!(parse_go_mod("replace (\n a => b\n").is_err());
    }

    fn section(toml_text: &str) -> Section {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn wrapper_go_mod_requires_the_module_and_carries_its_directives() {
        let s = section(
            "module = \"k8s.io/kubernetes\"\nversion = \"v1.36.3\"\n\
             local-replace-version = \"v0.36.3\"\nbinaries = { kube-apiserver = \"k8s.io/kubernetes/cmd/kube-apiserver\" }\n",
        );
        let text = wrapper_go_mod("kubernetes", &s, UPSTREAM).unwrap();
        assert!(
            text.contains("module csi-sidecars-e2e-tools/kubernetes\n"),
            "{text}"
        );
        assert!(text.contains("\ngo 1.26.0\n"), "{text}");
        assert!(text.contains("\ngodebug default=go1.26\n"), "{text}");
        assert!(
            text.contains("\nrequire k8s.io/kubernetes v1.36.3\n"),
            "{text}"
        );
        assert!(
            text.contains("\nexclude github.com/bad/mod v0.1.0\n"),
            "{text}"
        );
        assert!(
            text.contains("\tk8s.io/api => k8s.io/api v0.36.3\n"),
            "{text}"
        );
        // The wrapper is a go.mod itself: it must parse, with the tree replaces gone.
        let parsed = parse_go_mod(&text).unwrap();
        assert!(parsed.replace.iter().all(|r| !r.points_into_tree()));
    }

    #[test]
    fn wrapper_go_mod_without_copied_replaces() {
        let s = section(
            "module = \"go.etcd.io/etcd/server/v3\"\nversion = \"v3.6.16\"\ncopy-replaces = false\n\
             binaries = { etcd = \"go.etcd.io/etcd/server/v3\" }\n",
        );
        let upstream =
            "module go.etcd.io/etcd/server/v3\ngo 1.24\nreplace go.etcd.io/etcd/api/v3 => ../api\n";
        let text = wrapper_go_mod("etcd", &s, upstream).unwrap();
        assert_eq!(
            text,
            "// Generated by `cargo xtask tools` from release-tools/e2e-versions.toml [etcd]; \
             rebuilt on every build.\n\
             module csi-sidecars-e2e-tools/etcd\n\
             \n\
             go 1.24\n\
             \n\
             require go.etcd.io/etcd/server/v3 v3.6.16\n"
        );
        assert!(parse_go_mod(&text).unwrap().replace.is_empty(), "{text}");
    }

    #[test]
    fn go_exec_name_skips_major_version_suffixes() {
        assert_eq!(go_exec_name("go.etcd.io/etcd/server/v3"), "server");
        assert_eq!(
            go_exec_name("k8s.io/kubernetes/cmd/kube-apiserver"),
            "kube-apiserver"
        );
        assert_eq!(go_exec_name("example.com/tool/v1"), "v1");
        assert_eq!(go_exec_name("example.com/tool/v0"), "v0");
        assert_eq!(go_exec_name("v2"), "v2");
    }

    #[test]
    fn versions_and_ldflags() {
        assert_eq!(semver_parts("v1.36.3").unwrap(), ("1", "36"));
        assert_eq!(semver_parts("v3.6.0-rc.1").unwrap(), ("3", "6"));
        assert!(semver_parts("1.36.3").is_err());
        assert!(semver_parts("v1.36").is_err());
        assert_eq!(
            expand("pkg.gitVersion={version} pkg.gitMinor={minor}", "v1.36.3").unwrap(),
            "pkg.gitVersion=v1.36.3 pkg.gitMinor=36"
        );
    }

    fn pinned() -> Tools {
        let text = include_str!("../../release-tools/e2e-versions.toml");
        Tools::parse(text, PathBuf::from("/cache")).unwrap()
    }

    #[test]
    fn the_version_file_names_every_tool_the_tests_need() {
        let tools = pinned();
        for binary in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "csi-mock-driver",
            "kubectl",
            "foreign-clients",
            "csi-translation",
            "hostpathplugin",
            "csi-provisioner",
            "csi-resizer",
            "snapshot-controller",
            "csi-snapshotter",
        ] {
            assert!(
                matches!(tools.resolve(binary), Ok(Target::Binary { .. })),
                "{binary}"
            );
        }
        let crds = &tools.sections[SNAPSHOT_CRDS];
        assert!(crds.binaries.is_empty() && crds.dir.is_some());
        assert!(tools.resolve("kubelet").is_err());
    }

    #[test]
    fn kubernetes_staging_modules_use_the_matching_published_version() {
        // k8s.io/kubernetes v1.X.Y publishes its staging modules as v0.X.Y.
        let tools = pinned();
        let sections: Vec<_> = tools
            .sections
            .values()
            .filter(|s| s.module == "k8s.io/kubernetes")
            .collect();
        assert_eq!(
            sections.len(),
            1,
            "one pin: the control plane and the mock driver are of the same version"
        );
        for k in sections {
            let staging = k.version.replacen("v1.", "v0.", 1);
            assert_eq!(k.local_replace_version.as_deref(), Some(staging.as_str()));
        }
    }

    #[test]
    fn the_control_plane_is_kubernetes_1_37_with_its_clients_and_translation() {
        // PersistentVolumeClaimStatus.healthStatus (external-health-monitor) is 1.37's.
        let tools = pinned();
        for binary in [
            "kube-apiserver",
            "kube-controller-manager",
            "kubectl",
            "foreign-clients",
            "csi-translation",
        ] {
            let Ok(Target::Binary { section, .. }) = tools.resolve(binary) else {
                panic!("{binary} is not a binary");
            };
            assert_eq!(section, "kubernetes", "{binary}");
        }
        assert_eq!(
            semver_parts(&tools.sections["kubernetes"].version)
                .unwrap()
                .1,
            "37"
        );
    }

    #[test]
    fn cache_layout_is_keyed_by_section_and_version() {
        let tools = pinned();
        let k = &tools.sections["kubernetes"];
        assert_eq!(
            tools.out_dir("kubernetes", k),
            Path::new("/cache").join(format!("kubernetes-{}", k.version))
        );
    }

    #[test]
    fn validation_rejects_ambiguous_sections() {
        let cache = PathBuf::from("/cache");
        let both =
            "[a]\nmodule = \"m\"\nversion = \"v1.0.0\"\ndir = \"d\"\nbinaries = { a = \"m/a\" }\n";
        assert!(Tools::parse(both, cache.clone()).is_err());
        let neither = "[a]\nmodule = \"m\"\nversion = \"v1.0.0\"\n";
        assert!(Tools::parse(neither, cache.clone()).is_err());
        let twice = "[a]\nmodule = \"m\"\nversion = \"v1.0.0\"\nbinaries = { x = \"m/x\" }\n\
                     [b]\nmodule = \"n\"\nversion = \"v1.0.0\"\nbinaries = { x = \"n/x\" }\n";
        assert!(Tools::parse(twice, cache.clone()).is_err());
        let same_exec = "[a]\nmodule = \"m\"\nversion = \"v1.0.0\"\n\
                         binaries = { x = \"m/cmd/tool\", y = \"m/other/tool\" }\n";
        assert!(Tools::parse(same_exec, cache).is_err());
    }

    #[test]
    fn the_mock_driver_is_the_control_planes_kubernetes_version() {
        // From 1.37 on the mock speaks CSI 1.13's volume health, as lib/proto does; our main
        // serves the health RPCs it advertises.
        let tools = pinned();
        let Ok(Target::Binary { section, .. }) = tools.resolve("csi-mock-driver") else {
            panic!("csi-mock-driver is not a binary");
        };
        assert_eq!(section, "kubernetes");
        let k = &tools.sections[section];
        assert_eq!(k.module, "k8s.io/kubernetes");
        assert_eq!(semver_parts(&k.version).unwrap().1, "37");
        assert_eq!(k.binaries["csi-mock-driver"], "./cmd/csi-mock-driver");
        let main = generated_main("csi-mock-driver").unwrap();
        // The generated main imports the packages of the pinned module it requires.
        for package in [
            "test/e2e/storage/drivers/csi-test/driver",
            "test/e2e/storage/drivers/csi-test/mock/service",
        ] {
            assert!(
                main.contains(&format!("\"{}/{package}\"", k.module)),
                "{package}"
            );
        }
        assert!(main.starts_with("// Generated by `cargo xtask tools`"));
        for flag in ["\"volume-health-file\"", "\"list-volume-health\""] {
            assert!(main.contains(flag), "{flag}");
        }
        assert!(main.contains("\npackage main\n"));
        assert_eq!(go_exec_name("./cmd/csi-mock-driver"), "csi-mock-driver");
    }

    #[test]
    fn generated_packages_need_a_generated_main() {
        let cache = PathBuf::from("/cache");
        let section = |binary: &str, package: &str| {
            format!(
                "[a]\nmodule = \"m\"\nversion = \"v1.0.0\"\nbinaries = {{ {binary} = \"{package}\" }}\n"
            )
        };
        assert!(
            Tools::parse(
                &section("csi-mock-driver", "./cmd/csi-mock-driver"),
                cache.clone()
            )
            .is_ok()
        );
        assert!(Tools::parse(&section("other", "./cmd/other"), cache.clone()).is_err());
        assert!(Tools::parse(&section("csi-mock-driver", "./csi-mock-driver"), cache).is_err());
    }

    #[test]
    fn unavailable_sections_fail_at_once_with_their_reason() {
        // A cache that does not exist: nothing may be built, locked or created.
        let cache = std::env::temp_dir().join("csi-sidecars-tools-test-no-such-dir");
        let text = include_str!("../../release-tools/e2e-versions.toml");
        let tools = Tools::parse(text, cache.clone()).unwrap();
        let reason = "the Go module proxy refuses github.com/kubernetes-csi/csi-driver-host-path \
                      (403); hostpathplugin cannot be built here";
        assert_eq!(
            tools.sections["hostpathplugin"].unavailable.as_deref(),
            Some(reason)
        );
        let err = tools.ensure("hostpathplugin").unwrap_err();
        assert!(format!("{err:#}").contains(reason), "{err:#}");
        assert!(!cache.exists());
        // hostpathplugin and the Go sidecars the benchmark compares against but the module
        // proxy refuses: the other sections are all buildable.
        let unavailable: Vec<&str> = tools
            .sections
            .iter()
            .filter(|(_, s)| s.unavailable.is_some())
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            unavailable,
            ["hostpathplugin", "livenessprobe", "node-driver-registrar"]
        );
        for (section, binary) in [
            ("livenessprobe", "livenessprobe"),
            ("node-driver-registrar", "csi-node-driver-registrar"),
        ] {
            let reason = tools.sections[section].unavailable.as_deref().unwrap();
            assert!(reason.contains("403"), "{reason}");
            let err = tools.ensure(binary).unwrap_err();
            assert!(format!("{err:#}").contains(reason), "{err:#}");
        }
        assert!(!cache.exists());
    }

    #[test]
    fn generated_mains_are_cached_under_a_digest_of_their_source() {
        assert_eq!(cached_name("etcd"), "etcd");
        let name = cached_name("csi-mock-driver");
        let digest = format!("{:016x}", fnv1a(CSI_MOCK_DRIVER_MAIN.as_bytes()));
        assert_eq!(name, format!("csi-mock-driver-{digest}"));
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        // FNV-1a's published test vector: the digest must not change between builds of xtask.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn missing_binaries_are_counted_per_binary() {
        let dir =
            std::env::temp_dir().join(format!("csi-sidecars-tools-test-{}", std::process::id()));
        let text = "[k]\nmodule = \"m\"\nversion = \"v1.0.0\"\n\
                    binaries = { a = \"m/cmd/a\", b = \"m/cmd/b\" }\n";
        let tools = Tools::parse(text, dir.clone()).unwrap();
        let k = &tools.sections["k"];
        assert_eq!(tools.missing("k", k, None), ["a", "b"]);
        let out = tools.out_dir("k", k);
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("a"), "").unwrap();
        assert_eq!(tools.missing("k", k, None), ["b"]);
        assert!(tools.missing("k", k, Some("a")).is_empty());
        assert_eq!(tools.missing("k", k, Some("b")), ["b"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
