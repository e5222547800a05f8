use super::*;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn versions() {
    assert_eq!(check_version("1.2.3").unwrap(), "1.2.3");
    assert_eq!(check_version("v1.2.3").unwrap(), "1.2.3");
    assert_eq!(check_version("1.2.3-rc.1").unwrap(), "1.2.3-rc.1");
    for bad in ["1.2", "1.2.3.4", "1.x.3", "", "1.2.3-", "1.2.3-a b"] {
        assert!(check_version(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn options() {
    let o = Options::parse(&args(&[
        "--version",
        "2.0.0",
        "--out=/tmp/x",
        "--no-verify",
        "--arch",
        "arm64",
    ]))
    .unwrap();
    assert_eq!(o.version.as_deref(), Some("2.0.0"));
    assert_eq!(o.out, Some(PathBuf::from("/tmp/x")));
    assert_eq!(o.arch.as_deref(), Some("arm64"));
    assert!(!o.verify && !o.check_reproducible);
    assert!(Options::parse(&args(&["--out"])).is_err());
    assert!(Options::parse(&args(&["--bogus"])).is_err());
    assert!(Options::parse(&args(&["--version", "1"])).is_err());
}

#[test]
fn rustflags_remap_the_target_dir_last() {
    let f = rustflags(
        Path::new("/src"),
        Path::new("/home/u/.cargo"),
        Path::new("/src/target"),
    );
    assert!(f.starts_with("-C target-feature=+crt-static "), "{f}");
    let root = f.find("/src=/build/csi-sidecars").unwrap();
    let target = f.find("/src/target=/build/target").unwrap();
    assert!(root < target, "{f}");
    assert!(f.contains("/home/u/.cargo=/build/cargo"), "{f}");
}

fn release() -> Release {
    Release {
        tag: "v1.0.0".into(),
        revision: "abc".into(),
        epoch: 86_400,
        arch: "amd64".into(),
        triple: "x86_64-unknown-linux-gnu".into(),
        repository: "example".into(),
        source_url: "https://example.org/src".into(),
        license: "Apache-2.0".into(),
        verify: false,
    }
}

#[test]
fn image_labels_and_entrypoint() {
    let row = images::Row {
        name: "csi-thing".into(),
        binary: "csi-thing".into(),
        entrypoint: "/csi-thing".into(),
        description: "does things".into(),
        upstream: "u".into(),
        version_flag: true,
    };
    let spec = image_spec(&release(), &row, b"bin".to_vec());
    assert_eq!(spec.repository, "example/csi-thing");
    assert_eq!(spec.tag, "v1.0.0");
    assert_eq!(spec.entrypoint, ["/csi-thing"]);
    let label = |k: &str| spec.labels[&format!("org.opencontainers.image.{k}")].as_str();
    assert_eq!(label("version"), "v1.0.0");
    assert_eq!(label("revision"), "abc");
    assert_eq!(label("source"), "https://example.org/src");
    assert_eq!(label("created"), "1970-01-02T00:00:00Z");
    assert_eq!(label("licenses"), "Apache-2.0");
    assert!(
        spec.entries
            .iter()
            .any(|e| e.path == "csi-thing" && e.contents.as_deref() == Some(b"bin".as_slice()))
    );
}

#[test]
fn sums_cover_files_but_not_layout_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    fs::create_dir_all(out.join("bin/linux-amd64")).unwrap();
    fs::create_dir_all(out.join("images/a/blobs")).unwrap();
    fs::write(out.join("bin/linux-amd64/a"), b"binary").unwrap();
    fs::write(out.join("images/a.tar"), b"tar").unwrap();
    fs::write(out.join("images/a/index.json"), b"{}").unwrap();
    fs::write(out.join("RELEASE-NOTES.md"), b"notes").unwrap();
    write_sums(out).unwrap();
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let names: Vec<&str> = sums.lines().map(|l| &l[66..]).collect();
    assert_eq!(
        names,
        ["RELEASE-NOTES.md", "bin/linux-amd64/a", "images/a.tar"]
    );
    assert!(sums.starts_with(&format!(
        "{}  RELEASE-NOTES.md\n",
        oci::sha256_hex(b"notes")
    )));
    // sha256sum itself agrees.
    let check = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(out)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn out_dir_with_foreign_files_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("precious"), b"x").unwrap();
    assert!(prepare_out(&out).is_err());
    assert!(out.join("precious").exists());
    fs::write(out.join("SHA256SUMS"), b"").unwrap();
    prepare_out(&out).unwrap();
    assert!(!out.join("precious").exists());
}
