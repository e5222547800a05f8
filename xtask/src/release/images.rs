//! The image table (`release-tools/images.toml`) and which of its rows this workspace can
//! build: a row is built when some workspace crate has a `[[bin]]` target of its binary's name.

use std::collections::BTreeSet;

use anyhow::{Context as _, ensure};
use serde::Deserialize;
use serde_json::Value;

pub const TABLE_FILE: &str = "release-tools/images.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Where the images are published (`<repository>/<name>:<tag>`).
    pub repository: String,
    #[serde(rename = "image")]
    pub images: Vec<Row>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// The upstream image name.
    pub name: String,
    /// The binary (cargo `[[bin]]` name) the image runs.
    pub binary: String,
    /// Where the binary sits in the image: upstream's ENTRYPOINT.
    pub entrypoint: String,
    pub description: String,
    /// The upstream project the image replaces.
    pub upstream: String,
    /// Whether the binary has `--version`, as upstream's has (the snapshot webhooks' have not).
    #[serde(default = "yes")]
    pub version_flag: bool,
}

fn yes() -> bool {
    true
}

/// A row this workspace builds, with the crate that owns its binary.
#[derive(Debug, Clone)]
pub struct Present {
    pub row: Row,
    /// `cargo metadata` package id.
    pub package_id: String,
    pub package_name: String,
}

impl Table {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let table: Table = toml::from_str(text)?;
        let mut names = BTreeSet::new();
        let mut binaries = BTreeSet::new();
        for row in &table.images {
            ensure!(names.insert(&row.name), "image {} twice", row.name);
            ensure!(
                binaries.insert(&row.binary),
                "binary {} in two images",
                row.binary
            );
            ensure!(
                row.entrypoint.starts_with('/')
                    && !row.entrypoint.ends_with('/')
                    && !row.entrypoint.contains(".."),
                "image {}: entrypoint {:?} is not an absolute file path",
                row.name,
                row.entrypoint
            );
            ensure!(
                !row.name.is_empty()
                    && row
                        .name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "image name {:?}: lowercase letters, digits and '-' only",
                row.name
            );
        }
        Ok(table)
    }

    pub fn load() -> anyhow::Result<Self> {
        let path = crate::project_root().join(TABLE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The rows whose binary a workspace member builds, in table order, and the rows left out.
    pub fn present(&self, metadata: &Value) -> anyhow::Result<(Vec<Present>, Vec<Row>)> {
        let members: BTreeSet<&str> = metadata["workspace_members"]
            .as_array()
            .context("cargo metadata without workspace_members")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut present = Vec::new();
        let mut missing = Vec::new();
        for row in &self.images {
            let owner = metadata["packages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
                .find(|p| {
                    p["targets"].as_array().into_iter().flatten().any(|t| {
                        t["name"] == row.binary.as_str()
                            && t["kind"]
                                .as_array()
                                .is_some_and(|k| k.iter().any(|k| k == "bin"))
                    })
                });
            match owner {
                Some(p) => present.push(Present {
                    row: row.clone(),
                    package_id: p["id"].as_str().unwrap_or_default().to_string(),
                    package_name: p["name"].as_str().unwrap_or_default().to_string(),
                }),
                None => missing.push(row.clone()),
            }
        }
        Ok((present, missing))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_projects_table_parses_and_keeps_upstreams_entrypoints() {
        let table = Table::load().unwrap();
        let names: Vec<&str> = table.images.iter().map(|r| r.name.as_str()).collect();
        for name in [
            "csi-attacher",
            "csi-provisioner",
            "csi-resizer",
            "csi-snapshotter",
            "livenessprobe",
            "csi-node-driver-registrar",
            "csi-external-health-monitor-controller",
            "snapshot-controller",
            "snapshot-conversion-webhook",
            "snapshot-validation-webhook",
            "csi-sidecars",
        ] {
            assert!(names.contains(&name), "{name} has no row");
        }
        // Upstream's images run `/<binary>`, and every binary is named as its image.
        for row in &table.images {
            assert_eq!(row.entrypoint, format!("/{}", row.binary), "{}", row.name);
            assert_eq!(row.binary, row.name);
        }
        // Upstream's snapshot webhooks have no --version; every other binary has.
        let without: Vec<&str> = table
            .images
            .iter()
            .filter(|r| !r.version_flag)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            without,
            ["snapshot-conversion-webhook", "snapshot-validation-webhook"]
        );
    }

    #[test]
    fn the_workspace_builds_the_sidecars_that_exist() {
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(crate::project_root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (present, _) = Table::load().unwrap().present(&metadata).unwrap();
        let built: Vec<&str> = present.iter().map(|p| p.row.name.as_str()).collect();
        for name in [
            "csi-attacher",
            "csi-provisioner",
            "csi-resizer",
            "livenessprobe",
            "csi-node-driver-registrar",
            "csi-sidecars",
        ] {
            assert!(built.contains(&name), "{name} not found among {built:?}");
        }
    }

    #[test]
    fn rows_are_matched_by_binary_target_of_a_member() {
        let table = Table::parse(
            "repository = \"r\"\n\
             [[image]]\nname = \"a\"\nbinary = \"a\"\nentrypoint = \"/a\"\ndescription = \"\"\nupstream = \"\"\n\
             [[image]]\nname = \"b\"\nbinary = \"b\"\nentrypoint = \"/b\"\ndescription = \"\"\nupstream = \"\"\n\
             [[image]]\nname = \"c\"\nbinary = \"c\"\nentrypoint = \"/c\"\ndescription = \"\"\nupstream = \"\"\n",
        )
        .unwrap();
        let metadata = json!({
            "workspace_members": ["ws#x@1", "ws#y@1"],
            "packages": [
                { "id": "ws#x@1", "name": "x", "targets": [
                    { "name": "x", "kind": ["lib"] },
                    { "name": "a", "kind": ["bin"] },
                ]},
                // A library target of the binary's name is not the binary.
                { "id": "ws#y@1", "name": "y", "targets": [{ "name": "b", "kind": ["lib"] }] },
                // Not a workspace member.
                { "id": "dep#c@1", "name": "c", "targets": [{ "name": "c", "kind": ["bin"] }] },
            ],
        });
        let (present, missing) = table.present(&metadata).unwrap();
        assert_eq!(present.len(), 1);
        assert_eq!(present[0].row.name, "a");
        assert_eq!(present[0].package_name, "x");
        assert_eq!(present[0].package_id, "ws#x@1");
        let missing: Vec<&str> = missing.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(missing, ["b", "c"]);
    }

    #[test]
    fn bad_rows_are_refused() {
        let row = |name: &str, entry: &str| {
            format!(
                "[[image]]\nname = \"{name}\"\nbinary = \"{name}\"\nentrypoint = \"{entry}\"\ndescription = \"\"\nupstream = \"\"\n"
            )
        };
        let parse = |rows: &str| Table::parse(&format!("repository = \"r\"\n{rows}"));
        assert!(parse(&row("a", "a")).is_err(), "relative entrypoint");
        assert!(parse(&row("a", "/bin/")).is_err(), "directory entrypoint");
        assert!(parse(&row("A", "/a")).is_err(), "upper case");
        let twice = format!("{}{}", row("a", "/a"), row("a", "/b"));
        assert!(parse(&twice).unwrap_err().to_string().contains("twice"));
    }
}
