//! An SPDX 2.3 (JSON) software bill of materials per image, from `cargo metadata`: the crate
//! that owns the image's binary and every crate linked into it (normal dependencies for the
//! release's target platform; build scripts, proc macros' own dependencies and dev-dependencies
//! are left out, they are not in the binary), with versions, declared licences, package URLs and
//! the Cargo.lock checksums.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use serde_json::{Value, json};

/// What the SBOM says about the image itself.
#[derive(Debug)]
pub struct ImageFacts<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub revision: &'a str,
    pub created: u64,
    pub manifest_digest: &'a str,
    pub binary_sha256: &'a str,
    pub repository_url: &'a str,
}

/// Package ids (`cargo metadata`'s) and the dependency edges between them.
type Graph = (BTreeSet<String>, BTreeSet<(String, String)>);

/// The crates linked into the binary of package `root` (a `cargo metadata` package id),
/// `root` included, as ids in sorted order, and the dependency edges between them.
pub fn closure(metadata: &Value, root: &str) -> anyhow::Result<Graph> {
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata without resolve.nodes")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut edges = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let node = nodes
            .get(id.as_str())
            .with_context(|| format!("{id} is not in cargo metadata's resolve graph"))?;
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if let (true, Some(pkg)) = (normal, dep["pkg"].as_str()) {
                edges.insert((id.clone(), pkg.to_string()));
                todo.push(pkg.to_string());
            }
        }
    }
    Ok((seen, edges))
}

/// `name version → sha256` from Cargo.lock's `checksum` fields.
pub fn lock_checksums(lock: &str) -> anyhow::Result<BTreeMap<(String, String), String>> {
    let lock: toml::Value = toml::from_str(lock).context("parsing Cargo.lock")?;
    Ok(lock
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                (
                    p.get("name")?.as_str()?.to_string(),
                    p.get("version")?.as_str()?.to_string(),
                ),
                p.get("checksum")?.as_str()?.to_string(),
            ))
        })
        .collect())
}

/// The SPDX document for one image whose binary belongs to package `root`.
pub fn spdx(
    metadata: &Value,
    checksums: &BTreeMap<(String, String), String>,
    root: &str,
    image: &ImageFacts<'_>,
) -> anyhow::Result<Value> {
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .context("cargo metadata without packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let (ids, edges) = closure(metadata, root)?;
    let spdx_id = |id: &str| -> anyhow::Result<String> {
        let p = packages
            .get(id)
            .with_context(|| format!("{id} is not among cargo metadata's packages"))?;
        Ok(format!(
            "SPDXRef-Crate-{}-{}",
            sanitize(p["name"].as_str().unwrap_or_default()),
            sanitize(p["version"].as_str().unwrap_or_default())
        ))
    };
    let image_id = "SPDXRef-Image";
    let mut spdx_packages = vec![json!({
        "SPDXID": image_id,
        "name": image.name,
        "versionInfo": image.version,
        "primaryPackagePurpose": "CONTAINER",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "checksums": [{
            "algorithm": "SHA256",
            "checksumValue": image.manifest_digest.trim_start_matches("sha256:"),
        }],
        "comment": format!(
            "OCI image manifest digest {}; its entrypoint binary has SHA-256 {}",
            image.manifest_digest, image.binary_sha256
        ),
    })];
    for id in &ids {
        let p = packages[id.as_str()];
        let name = p["name"].as_str().unwrap_or_default();
        let version = p["version"].as_str().unwrap_or_default();
        let source = p["source"].as_str();
        let download = match source {
            // A workspace crate: this repository at the release's revision.
            None => format!("git+{}@{}", image.repository_url, image.revision),
            Some(s) if s.starts_with("git+") => s.to_string(),
            // Registry crates are named by their package URL below.
            Some(_) => "NOASSERTION".to_string(),
        };
        let mut package = json!({
            "SPDXID": spdx_id(id)?,
            "name": name,
            "versionInfo": version,
            "downloadLocation": download,
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license(p["license"].as_str()),
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": if id == root { "APPLICATION" } else { "LIBRARY" },
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!("pkg:cargo/{name}@{version}"),
            }],
        });
        if let Some(sum) = checksums.get(&(name.to_string(), version.to_string())) {
            package["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": sum }]);
        }
        spdx_packages.push(package);
    }
    let mut relationships = vec![
        json!({ "spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id }),
        json!({ "spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": spdx_id(root)? }),
    ];
    for (from, to) in &edges {
        relationships.push(json!({
            "spdxElementId": spdx_id(from)?,
            "relationshipType": "DEPENDS_ON",
            "relatedSpdxElement": spdx_id(to)?,
        }));
    }
    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", image.name, image.version),
        "documentNamespace": format!(
            "{}/spdx/{}-{}-{}",
            image.repository_url, image.name, image.version, image.revision
        ),
        "creationInfo": {
            "created": super::oci::rfc3339(image.created),
            "creators": ["Tool: cargo-xtask-release"],
        },
        "documentDescribes": [image_id],
        "packages": spdx_packages,
        "relationships": relationships,
    }))
}

/// An SPDX id may hold letters, digits, `.` and `-`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Cargo's licence field as an SPDX expression (the old `A/B` form means `A OR B`).
fn license(declared: Option<&str>) -> String {
    match declared {
        None | Some("") => "NOASSERTION".to_string(),
        Some(l) => l.split('/').map(str::trim).collect::<Vec<_>>().join(" OR "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolve graph: app → lib (normal), app → gen (build), app → check (dev),
    /// lib → leaf (normal and build), gen → genlib (normal).
    fn metadata() -> Value {
        let node = |id: &str, deps: &[(&str, &str)]| {
            json!({
                "id": id,
                "deps": deps.iter().map(|(pkg, kind)| json!({
                    "name": pkg,
                    "pkg": pkg,
                    "dep_kinds": if *kind == "normal+build" {
                        json!([{ "kind": null }, { "kind": "build" }])
                    } else if *kind == "normal" {
                        json!([{ "kind": null }])
                    } else {
                        json!([{ "kind": kind }])
                    },
                })).collect::<Vec<_>>(),
            })
        };
        let pkg = |id: &str, version: &str, license: Value, source: Value| json!({ "id": id, "name": id, "version": version, "license": license, "source": source });
        json!({
            "packages": [
                pkg("app", "0.1.0", json!("Apache-2.0"), Value::Null),
                pkg("lib", "1.2.3", json!("MIT/Apache-2.0"), json!("registry+index")),
                pkg("leaf", "0.0.1", Value::Null, json!("git+https://example.org/leaf#abc")),
                pkg("gen", "2.0.0", json!("MIT"), json!("registry+index")),
                pkg("genlib", "2.0.0", json!("MIT"), json!("registry+index")),
                pkg("check", "1.0.0", json!("MIT"), json!("registry+index")),
            ],
            "resolve": { "nodes": [
                node("app", &[("lib", "normal"), ("gen", "build"), ("check", "dev")]),
                node("lib", &[("leaf", "normal+build")]),
                node("leaf", &[]),
                node("gen", &[("genlib", "normal")]),
                node("genlib", &[]),
                node("check", &[]),
            ]},
        })
    }

    #[test]
    fn closure_follows_normal_dependencies_only() {
        let (ids, edges) = closure(&metadata(), "app").unwrap();
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["app", "leaf", "lib"]);
        let edges: Vec<(String, String)> = edges.into_iter().collect();
        assert_eq!(
            edges,
            [
                ("app".to_string(), "lib".to_string()),
                ("lib".to_string(), "leaf".to_string())
            ]
        );
    }

    #[test]
    fn unknown_root_is_an_error() {
        let err = closure(&metadata(), "nope").unwrap_err();
        assert!(err.to_string().contains("nope is not in"), "{err}");
    }

    #[test]
    fn spdx_document_names_every_linked_crate() {
        let mut sums = BTreeMap::new();
        sums.insert(("lib".to_string(), "1.2.3".to_string()), "ab12".to_string());
        let facts = ImageFacts {
            name: "csi-thing",
            version: "v1.0.0",
            revision: "0123abc",
            created: 0,
            manifest_digest: "sha256:ff00",
            binary_sha256: "ee11",
            repository_url: "https://example.org/repo",
        };
        let doc = spdx(&metadata(), &sums, "app", &facts).unwrap();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        let packages = doc["packages"].as_array().unwrap();
        let names: Vec<&str> = packages
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["csi-thing", "app", "leaf", "lib"]);
        let by_name = |n: &str| packages.iter().find(|p| p["name"] == n).unwrap();
        assert_eq!(
            by_name("csi-thing")["checksums"][0]["checksumValue"],
            "ff00"
        );
        assert_eq!(
            by_name("app")["downloadLocation"],
            "git+https://example.org/repo@0123abc"
        );
        assert_eq!(by_name("app")["primaryPackagePurpose"], "APPLICATION");
        assert_eq!(by_name("lib")["licenseDeclared"], "MIT OR Apache-2.0");
        assert_eq!(by_name("lib")["downloadLocation"], "NOASSERTION");
        assert_eq!(by_name("lib")["checksums"][0]["checksumValue"], "ab12");
        assert_eq!(
            by_name("lib")["externalRefs"][0]["referenceLocator"],
            "pkg:cargo/lib@1.2.3"
        );
        assert_eq!(by_name("leaf")["licenseDeclared"], "NOASSERTION");
        assert_eq!(
            by_name("leaf")["downloadLocation"],
            "git+https://example.org/leaf#abc"
        );
        assert!(by_name("leaf").get("checksums").is_none());
        let rels: Vec<String> = doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["spdxElementId"].as_str().unwrap(),
                    r["relationshipType"].as_str().unwrap(),
                    r["relatedSpdxElement"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            rels,
            [
                "SPDXRef-DOCUMENT DESCRIBES SPDXRef-Image",
                "SPDXRef-Image CONTAINS SPDXRef-Crate-app-0.1.0",
                "SPDXRef-Crate-app-0.1.0 DEPENDS_ON SPDXRef-Crate-lib-1.2.3",
                "SPDXRef-Crate-lib-1.2.3 DEPENDS_ON SPDXRef-Crate-leaf-0.0.1",
            ]
        );
        // The same inputs give the same document.
        assert_eq!(doc, spdx(&metadata(), &sums, "app", &facts).unwrap());
    }

    #[test]
    fn lock_checksums_are_read() {
        let lock = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\nchecksum = \"00ff\"\n\n[[package]]\nname = \"b\"\nversion = \"0.1.0\"\n";
        let sums = lock_checksums(lock).unwrap();
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[&("a".to_string(), "1.0.0".to_string())], "00ff");
    }

    #[test]
    fn ids_are_sanitized() {
        assert_eq!(sanitize("foo_bar+x"), "foo-bar-x");
        assert_eq!(license(Some("MIT OR Apache-2.0")), "MIT OR Apache-2.0");
        assert_eq!(license(Some("")), "NOASSERTION");
    }
}
