//! A reproducible OCI image writer: one layer (a tar of a minimal root filesystem, gzip'd), its
//! config and manifest, written as an OCI image layout directory and as one tar archive that is
//! both that layout and what `docker load` reads (`manifest.json`).
//!
//! Everything that could vary between two runs is fixed: file order (sorted by path), owners,
//! modes, timestamps (the caller's `created`, from SOURCE_DATE_EPOCH), the gzip header (no name,
//! no mtime) and the JSON key order. Two runs over the same inputs give the same bytes, so the
//! same digests.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::json;

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The user every image runs as: distroless' `nonroot`.
pub const NONROOT: u32 = 65532;

/// One entry of the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image, without a leading `/`; directories end without `/`.
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `None` for a directory.
    pub contents: Option<Vec<u8>>,
}

impl Entry {
    pub fn dir(path: &str, mode: u32, owner: u32) -> Self {
        Self {
            path: path.to_string(),
            mode,
            uid: owner,
            gid: owner,
            contents: None,
        }
    }

    pub fn file(path: &str, mode: u32, contents: Vec<u8>) -> Self {
        Self {
            path: path.to_string(),
            mode,
            uid: 0,
            gid: 0,
            contents: Some(contents),
        }
    }
}

/// What an image is made of.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// `repository/name`, e.g. `csi-sidecars/csi-attacher`.
    pub repository: String,
    /// The tag, e.g. `v0.1.0`.
    pub tag: String,
    /// OCI architecture name: `amd64`, `arm64`.
    pub architecture: String,
    /// Seconds since the epoch: every timestamp in the image.
    pub created: u64,
    pub entrypoint: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// The root filesystem; any order (it is sorted).
    pub entries: Vec<Entry>,
}

/// The digests of what was written (`sha256:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub config_digest: String,
    pub layer_digest: String,
    /// The digest of the uncompressed layer (the config's `rootfs.diff_ids`).
    pub diff_id: String,
}

/// A minimal root filesystem around one static binary: `/etc/passwd` and `/etc/group` with
/// root and nonroot (65532), `/tmp` (1777), nonroot's home, and the binary at `entrypoint`.
pub fn minimal_rootfs(entrypoint: &str, binary: Vec<u8>) -> Vec<Entry> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\n\
         nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nnonroot:x:{NONROOT}:\n");
    vec![
        Entry::dir("etc", 0o755, 0),
        Entry::file("etc/passwd", 0o644, passwd.into_bytes()),
        Entry::file("etc/group", 0o644, group.into_bytes()),
        Entry::dir("home", 0o755, 0),
        Entry::dir("home/nonroot", 0o700, NONROOT),
        Entry::dir("root", 0o700, 0),
        Entry::dir("tmp", 0o1777, 0),
        Entry::file(entrypoint.trim_start_matches('/'), 0o755, binary),
    ]
}

/// Writes the image as an OCI image layout in `dir` (created; must not exist yet).
pub fn write_layout(spec: &ImageSpec, dir: &Path) -> anyhow::Result<Written> {
    let blobs = Blobs::build(spec)?;
    fs::create_dir_all(dir.join("blobs/sha256"))
        .with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in blobs.files() {
        let path = dir.join(&name);
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(blobs.written)
}

/// Writes the image as one tar: the OCI layout plus docker's `manifest.json`, so that both
/// `docker load` and OCI tools (`skopeo … oci-archive:`) read it.
pub fn write_archive(spec: &ImageSpec, path: &Path) -> anyhow::Result<Written> {
    let blobs = Blobs::build(spec)?;
    let mut tar = Tar::default();
    tar.dir("blobs", 0o755, 0, spec.created);
    tar.dir("blobs/sha256", 0o755, 0, spec.created);
    let mut files = blobs.files();
    files.push(("manifest.json".to_string(), blobs.docker_manifest(spec)?));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, bytes) in &files {
        tar.file(name, 0o644, 0, spec.created, bytes);
    }
    let bytes = tar.finish();
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(blobs.written)
}

/// The blobs of one image, built in memory.
struct Blobs {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    index: Vec<u8>,
    written: Written,
}

impl Blobs {
    fn build(spec: &ImageSpec) -> anyhow::Result<Self> {
        let tar = rootfs_tar(&spec.entries, spec.created)?;
        let diff_id = digest(&tar);
        let layer = gzip(&tar)?;
        let layer_digest = digest(&layer);
        let created = rfc3339(spec.created);
        let config = json!({
            "architecture": spec.architecture,
            "os": "linux",
            "created": created,
            "author": "cargo xtask release",
            "config": {
                "User": format!("{NONROOT}:{NONROOT}"),
                "Entrypoint": spec.entrypoint,
                "WorkingDir": "/",
                "Labels": spec.labels,
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": created, "created_by": "cargo xtask release" }],
        });
        let config = serde_json::to_vec(&config)?;
        let config_digest = digest(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": { "mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": MEDIA_LAYER_GZIP, "digest": layer_digest, "size": layer.len() }],
            "annotations": {
                "org.opencontainers.image.created": created,
            },
        });
        let manifest = serde_json::to_vec(&manifest)?;
        let manifest_digest = digest(&manifest);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [{
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": manifest.len(),
                "platform": { "architecture": spec.architecture, "os": "linux" },
                "annotations": {
                    "io.containerd.image.name": format!("{}:{}", spec.repository, spec.tag),
                    "org.opencontainers.image.ref.name": spec.tag,
                },
            }],
        });
        let index = serde_json::to_vec(&index)?;
        let written = Written {
            manifest_size: manifest.len() as u64,
            manifest_digest,
            config_digest,
            layer_digest,
            diff_id,
        };
        Ok(Self {
            layer,
            config,
            manifest,
            index,
            written,
        })
    }

    /// Every file of the layout, by its path inside it.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        vec![
            (blob(&self.written.layer_digest), self.layer.clone()),
            (blob(&self.written.config_digest), self.config.clone()),
            (blob(&self.written.manifest_digest), self.manifest.clone()),
            ("index.json".to_string(), self.index.clone()),
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
        ]
    }

    /// docker's `manifest.json`: where `docker load` finds the config and the layers.
    fn docker_manifest(&self, spec: &ImageSpec) -> anyhow::Result<Vec<u8>> {
        let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        Ok(serde_json::to_vec(&json!([{
            "Config": blob(&self.written.config_digest),
            "RepoTags": [format!("{}:{}", spec.repository, spec.tag)],
            "Layers": [blob(&self.written.layer_digest)],
        }]))?)
    }
}

/// The layer: every entry sorted by path, each parent directory before its children.
fn rootfs_tar(entries: &[Entry], mtime: u64) -> anyhow::Result<Vec<u8>> {
    let mut entries: Vec<&Entry> = entries.iter().collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    for pair in entries.windows(2) {
        anyhow::ensure!(
            pair[0].path != pair[1].path,
            "{} is in the image twice",
            pair[0].path
        );
    }
    let mut tar = Tar::default();
    for e in entries {
        anyhow::ensure!(
            !e.path.is_empty() && !e.path.starts_with('/') && !e.path.contains(".."),
            "bad path in the image: {:?}",
            e.path
        );
        match &e.contents {
            None => tar.dir(&e.path, e.mode, e.uid, mtime),
            Some(bytes) => tar.file(&e.path, e.mode, e.uid, mtime, bytes),
        }
    }
    Ok(tar.finish())
}

/// gzip with a fixed header (no file name, mtime 0) and a fixed level.
fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `1970-01-01T00:00:00Z` form of seconds since the epoch (UTC; no leap seconds, as Unix time).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A POSIX ustar writer: enough for short paths, regular files and directories.
#[derive(Debug, Default)]
struct Tar {
    out: Vec<u8>,
}

impl Tar {
    fn dir(&mut self, path: &str, mode: u32, owner: u32, mtime: u64) {
        self.header(&format!("{path}/"), mode, owner, mtime, 0, b'5');
    }

    fn file(&mut self, path: &str, mode: u32, owner: u32, mtime: u64, bytes: &[u8]) {
        self.header(path, mode, owner, mtime, bytes.len() as u64, b'0');
        self.out.extend_from_slice(bytes);
        let pad = (512 - bytes.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    fn header(&mut self, path: &str, mode: u32, owner: u32, mtime: u64, size: u64, kind: u8) {
        let mut h = [0u8; 512];
        // Paths longer than the name field go into the prefix field (split at a `/`).
        let (prefix, name) = if path.len() > 100 {
            let cut = path[..path.len().min(156)]
                .rfind('/')
                .expect("a long path has a directory");
            (&path[..cut], &path[cut + 1..])
        } else {
            ("", path)
        };
        assert!(
            name.len() <= 100 && prefix.len() <= 155,
            "path too long: {path}"
        );
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], u64::from(owner));
        octal(&mut h[116..124], u64::from(owner));
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], mtime);
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let user: &[u8] = if owner == 0 { b"root" } else { b"nonroot" };
        h[265..265 + user.len()].copy_from_slice(user);
        h[297..297 + user.len()].copy_from_slice(user);
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        // The checksum is computed with its own field as spaces.
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h[148..155], sum);
        h[155] = b' ';
        self.out.extend_from_slice(&h);
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }
}

/// A zero-padded octal number filling `field` but its last byte (NUL).
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    assert!(text.len() == width, "{value} does not fit a tar field");
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
}

#[cfg(test)]
#[path = "oci_tests.rs"]
mod tests;
