use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::process::Command;

use super::*;

fn spec(binary: &[u8], created: u64) -> ImageSpec {
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.version".to_string(),
        "v1.2.3".to_string(),
    );
    labels.insert(
        "org.opencontainers.image.revision".to_string(),
        "abc".to_string(),
    );
    ImageSpec {
        repository: "example/csi-thing".to_string(),
        tag: "v1.2.3".to_string(),
        architecture: "amd64".to_string(),
        created,
        entrypoint: vec!["/csi-thing".to_string()],
        labels,
        entries: minimal_rootfs("/csi-thing", binary.to_vec()),
    }
}

/// Every file below `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// (path, mode, uid, mtime, typeflag, contents) of every member of a tar, checking each
/// header's checksum.
fn untar(bytes: &[u8]) -> Vec<(String, u32, u32, u64, u8, Vec<u8>)> {
    let field = |h: &[u8]| {
        let s = std::str::from_utf8(h)
            .unwrap()
            .trim_end_matches('\0')
            .trim();
        u64::from_str_radix(s, 8).unwrap()
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at..at + 512].iter().any(|&b| b != 0) {
        let h = &bytes[at..at + 512];
        let mut copy = h.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(field(&h[148..155]), sum, "header checksum");
        let name = String::from_utf8(h[..100].to_vec()).unwrap();
        let prefix = String::from_utf8(h[345..500].to_vec()).unwrap();
        let (name, prefix) = (name.trim_end_matches('\0'), prefix.trim_end_matches('\0'));
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let size = field(&h[124..136]) as usize;
        let data = bytes[at + 512..at + 512 + size].to_vec();
        out.push((
            path,
            field(&h[100..108]) as u32,
            field(&h[108..116]) as u32,
            field(&h[136..148]),
            h[156],
            data,
        ));
        at += 512 + size.div_ceil(512) * 512;
    }
    assert_eq!(bytes.len(), at + 1024, "two zero blocks end the archive");
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    fs::read(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

#[test]
fn two_runs_give_the_same_bytes_whatever_the_entry_order() {
    let tmp = tempfile::tempdir().unwrap();
    let a = spec(b"\x7fELF binary", 1_700_000_000);
    let mut b = a.clone();
    b.entries.reverse();
    let wa = write_layout(&a, &tmp.path().join("a")).unwrap();
    let wb = write_layout(&b, &tmp.path().join("b")).unwrap();
    assert_eq!(wa, wb);
    assert_eq!(tree(&tmp.path().join("a")), tree(&tmp.path().join("b")));
    let ta = write_archive(&a, &tmp.path().join("a.tar")).unwrap();
    let tb = write_archive(&b, &tmp.path().join("b.tar")).unwrap();
    assert_eq!(ta, wa, "the archive holds the same image as the layout");
    assert_eq!(tb, wa);
    assert_eq!(
        fs::read(tmp.path().join("a.tar")).unwrap(),
        fs::read(tmp.path().join("b.tar")).unwrap()
    );
}

#[test]
fn inputs_change_the_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let base = write_layout(&spec(b"one", 10), &tmp.path().join("a")).unwrap();
    let binary = write_layout(&spec(b"two", 10), &tmp.path().join("b")).unwrap();
    let time = write_layout(&spec(b"one", 11), &tmp.path().join("c")).unwrap();
    let mut labelled = spec(b"one", 10);
    labelled
        .labels
        .insert("org.opencontainers.image.revision".into(), "def".into());
    let label = write_layout(&labelled, &tmp.path().join("d")).unwrap();
    assert_ne!(base.layer_digest, binary.layer_digest);
    assert_ne!(base.manifest_digest, binary.manifest_digest);
    assert_ne!(
        base.layer_digest, time.layer_digest,
        "mtimes are in the layer"
    );
    assert_eq!(base.layer_digest, label.layer_digest);
    assert_ne!(base.config_digest, label.config_digest);
    assert_ne!(base.manifest_digest, label.manifest_digest);
}

#[test]
fn layout_is_consistent_and_the_layer_holds_the_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("img");
    let w = write_layout(&spec(b"#!binary", 1_700_000_000), &dir).unwrap();

    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(m["digest"], w.manifest_digest.as_str());
    assert_eq!(m["platform"]["architecture"], "amd64");
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        "v1.2.3"
    );
    // Every blob is stored under its own digest.
    for (path, bytes) in tree(&dir.join("blobs/sha256")) {
        assert_eq!(sha256_hex(&bytes), path);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(&dir, &w.manifest_digest)).unwrap();
    assert_eq!(m["size"], blob(&dir, &w.manifest_digest).len());
    assert_eq!(manifest["config"]["digest"], w.config_digest.as_str());
    assert_eq!(manifest["layers"][0]["digest"], w.layer_digest.as_str());
    assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_LAYER_GZIP);
    let config: serde_json::Value = serde_json::from_slice(&blob(&dir, &w.config_digest)).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"][0], "/csi-thing");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "v1.2.3"
    );
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(config["rootfs"]["diff_ids"][0], w.diff_id.as_str());

    let layer = gunzip(&blob(&dir, &w.layer_digest));
    assert_eq!(digest(&layer), w.diff_id);
    let members = untar(&layer);
    let paths: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "csi-thing",
            "etc/",
            "etc/group",
            "etc/passwd",
            "home/",
            "home/nonroot/",
            "root/",
            "tmp/"
        ]
    );
    for (path, mode, uid, mtime, kind, data) in &members {
        assert_eq!(*mtime, 1_700_000_000, "{path}");
        match path.as_str() {
            "csi-thing" => {
                assert_eq!((*mode, *uid, *kind), (0o755, 0, b'0'));
                assert_eq!(data, b"#!binary");
            }
            "home/nonroot/" => assert_eq!((*mode, *uid, *kind), (0o700, NONROOT, b'5')),
            "tmp/" => assert_eq!(*mode, 0o1777),
            "etc/passwd" => {
                let text = String::from_utf8(data.clone()).unwrap();
                assert!(text.contains("nonroot:x:65532:65532:"), "{text}");
            }
            _ => {}
        }
    }
}

#[test]
fn archive_is_the_layout_plus_dockers_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(b"bin", 5);
    let w = write_archive(&s, &tmp.path().join("img.tar")).unwrap();
    write_layout(&s, &tmp.path().join("dir")).unwrap();
    let members = untar(&fs::read(tmp.path().join("img.tar")).unwrap());
    let files: BTreeMap<String, Vec<u8>> = members
        .into_iter()
        .filter(|m| m.4 == b'0')
        .map(|m| (m.0, m.5))
        .collect();
    let layout = tree(&tmp.path().join("dir"));
    let docker: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "example/csi-thing:v1.2.3");
    for path in [&docker[0]["Config"], &docker[0]["Layers"][0]] {
        assert!(files.contains_key(path.as_str().unwrap()), "{path}");
    }
    assert_eq!(
        docker[0]["Config"],
        format!(
            "blobs/sha256/{}",
            w.config_digest.trim_start_matches("sha256:")
        )
    );
    let mut without_docker = files.clone();
    without_docker.remove("manifest.json");
    assert_eq!(without_docker, layout);
}

#[test]
fn gnu_tar_reads_the_layer_and_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("img");
    let w = write_layout(&spec(b"bin", 5), &dir).unwrap();
    let layer = tmp.path().join("layer.tar.gz");
    fs::write(&layer, blob(&dir, &w.layer_digest)).unwrap();
    let out = Command::new("tar")
        .args(["-tvzf"])
        .arg(&layer)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.contains("-rwxr-xr-x root/root"), "{listing}");
    assert!(listing.contains("csi-thing"), "{listing}");
    assert!(listing.contains("nonroot/nonroot"), "{listing}");
    assert!(listing.contains("1970-01-01"), "{listing}");
}

#[test]
fn long_paths_use_the_prefix_field() {
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(50));
    let mut tar = Tar::default();
    tar.file(&long, 0o644, 0, 0, b"x");
    let members = untar(&tar.finish());
    assert_eq!(members[0].0, long);
}

#[test]
fn rfc3339_dates() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
}

#[test]
fn a_path_twice_is_refused() {
    let mut s = spec(b"x", 0);
    s.entries.push(Entry::dir("tmp", 0o755, 0));
    let tmp = tempfile::tempdir().unwrap();
    let err = write_layout(&s, &tmp.path().join("x")).unwrap_err();
    assert!(
        err.to_string().contains("tmp is in the image twice"),
        "{err}"
    );
}
