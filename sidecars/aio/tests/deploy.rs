//! The kustomize bases in `deploy/`: (a) separate sidecar images, (b) one csi-sidecars
//! container. Rendered with the subset of kustomize they use (`resources`, `images`,
//! `namespace`; any other field fails the test rather than being ignored), then checked: every
//! container's arguments parse as its binary's, every binding names a role that exists, the
//! pods' ServiceAccounts hold the controllers' roles, and (b) is what `csi-sidecars migrate`
//! makes of (a).

use std::path::{Path, PathBuf};

use csi_sidecar_runtime::process::{aggregate_flags, standalone_flags};
use csi_sidecars::migrate::{self, descriptor_for_image};
use csi_sidecars::{NAME, TABLE};
use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

const CLUSTER_SCOPED: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "CSIDriver",
    "StorageClass",
    "Namespace",
];

/// `kustomize build dir`, for the fields our bases use.
fn render(dir: &Path) -> Vec<Value> {
    let k: Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("kustomization.yaml"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display())),
    )
    .unwrap();
    for key in k.as_mapping().unwrap().keys() {
        let key = key.as_str().unwrap();
        assert!(
            ["apiVersion", "kind", "resources", "images", "namespace"].contains(&key),
            "{}: this test's renderer does not implement {key}",
            dir.display()
        );
    }
    let mut out = Vec::new();
    for r in k["resources"].as_sequence().unwrap() {
        let path = dir.join(r.as_str().unwrap());
        if path.is_dir() {
            out.extend(render(&path));
        } else {
            out.extend(docs(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    for image in k["images"].as_sequence().into_iter().flatten() {
        let name = image["name"].as_str().unwrap();
        for doc in &mut out {
            // get_mut, not indexing: indexing a Value mutably adds the missing keys.
            let containers = doc
                .get_mut("spec")
                .and_then(|s| s.get_mut("template"))
                .and_then(|t| t.get_mut("spec"))
                .and_then(|s| s.get_mut("containers"))
                .and_then(Value::as_sequence_mut);
            for c in containers.into_iter().flatten() {
                let current = c["image"].as_str().unwrap().to_string();
                let (repo, tag) = match current.rsplit_once(':') {
                    Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
                    _ => (current.clone(), None),
                };
                if repo != name {
                    continue;
                }
                let repo = image
                    .get("newName")
                    .and_then(Value::as_str)
                    .map_or(repo.clone(), str::to_string);
                let tag = image
                    .get("newTag")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or(tag);
                c["image"] = Value::from(match tag {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo,
                });
            }
        }
    }
    if let Some(ns) = k.get("namespace").and_then(Value::as_str) {
        for doc in &mut out {
            let kind = doc["kind"].as_str().unwrap().to_string();
            if !CLUSTER_SCOPED.contains(&kind.as_str()) {
                doc["metadata"]["namespace"] = Value::from(ns);
            }
            let subjects = doc.get_mut("subjects").and_then(Value::as_sequence_mut);
            for s in subjects.into_iter().flatten() {
                if s["kind"] == "ServiceAccount" {
                    s["namespace"] = Value::from(ns);
                }
            }
        }
    }
    out
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn workload<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let w = by_kind(docs, kind);
    assert_eq!(w.len(), 1, "one {kind}");
    w[0]
}

fn containers(w: &Value) -> Vec<Value> {
    w["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .clone()
}

fn args(c: &Value) -> Vec<String> {
    c["args"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Every binding names an existing role, and `sa` holds every role in `roles`.
fn check_rbac(docs: &[Value], sa: &str, roles: &[&str]) {
    let names = |kind: &str| -> Vec<String> {
        by_kind(docs, kind)
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        names("ServiceAccount").contains(&sa.to_string()),
        "no ServiceAccount {sa}"
    );
    let mut held = Vec::new();
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for b in by_kind(docs, kind) {
            let role_kind = b["roleRef"]["kind"].as_str().unwrap();
            let role = b["roleRef"]["name"].as_str().unwrap();
            assert!(
                names(role_kind).contains(&role.to_string()),
                "{kind} {} names a missing {role_kind} {role}",
                b["metadata"]["name"].as_str().unwrap()
            );
            if b["subjects"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa)
            {
                held.push(role.to_string());
            }
        }
    }
    for role in roles {
        assert!(
            held.contains(&role.to_string()),
            "{sa} lacks {role}: {held:?}"
        );
    }
}

/// Every container has a memory and CPU request.
fn check_requests(w: &Value) {
    for c in containers(w) {
        if c["image"] == "csi-driver" {
            continue;
        }
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"]["requests"][r].as_str().is_some(),
                "{} has no {r} request",
                c["name"].as_str().unwrap()
            );
        }
    }
}

#[test]
fn separate_sidecars_base() {
    let docs = render(&root().join("deploy/separate"));
    check_rbac(
        &docs,
        "csi-controller",
        &[
            "external-attacher-runner",
            "external-attacher-cfg",
            "external-provisioner-runner",
            "external-provisioner-cfg",
            "external-resizer-runner",
            "external-resizer-cfg",
        ],
    );
    let mut seen = Vec::new();
    for kind in ["Deployment", "DaemonSet"] {
        let w = workload(&docs, kind);
        check_requests(w);
        for c in containers(w) {
            let image = c["image"].as_str().unwrap();
            let Some(d) = descriptor_for_image(TABLE, image) else {
                assert_eq!(image, "csi-driver");
                continue;
            };
            assert!(image.ends_with(":v0.1.0"), "{image}: the tag is set");
            standalone_flags(d)
                .parse(std::iter::once(d.binary.to_string()).chain(args(&c)))
                .unwrap_or_else(|e| panic!("{image}: {e}"));
            seen.push(d.binary);
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            "csi-attacher",
            "csi-node-driver-registrar",
            "csi-provisioner",
            "csi-resizer",
            "livenessprobe",
            "livenessprobe"
        ]
    );
}

#[test]
fn csi_sidecars_base_is_the_migrated_separate_base() {
    let separate = render(&root().join("deploy/separate"));
    let aio = render(&root().join("deploy/aio"));
    check_rbac(
        &aio,
        "csi-sidecars",
        &["csi-sidecars-runner", "csi-sidecars-cfg"],
    );
    for kind in ["Deployment", "DaemonSet"] {
        let w = workload(&aio, kind);
        check_requests(w);
        let ours: Vec<Value> = containers(w)
            .into_iter()
            .filter(|c| c["name"] == NAME)
            .collect();
        assert_eq!(ours.len(), 1);
        let ours = &ours[0];
        assert_eq!(ours["image"], "csi-sidecars/csi-sidecars:v0.1.0");
        let our_args = args(ours);
        aggregate_flags(NAME, TABLE)
            .parse(std::iter::once(NAME.to_string()).chain(our_args.clone()))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));

        // What migrate makes of (a), but for the lease: (b) starts with one lease.
        let text = serde_yaml::to_string(workload(&separate, kind)).unwrap();
        let (converted, report) =
            migrate::convert(&text, TABLE, &migrate::Options::default()).unwrap();
        assert_eq!(report.not_converted, 0, "{report:?}");
        let converted: Value = serde_yaml::from_str(&converted).unwrap();
        let theirs: Vec<Value> = containers(&converted)
            .into_iter()
            .filter(|c| c["name"] == NAME)
            .collect();
        let mut migrated = args(&theirs[0]);
        migrated.retain(|a| a != "--leader-election-per-controller");
        let mut expected = our_args.clone();
        expected.sort();
        migrated.sort();
        assert_eq!(expected, migrated, "{kind}");
        assert_eq!(
            ours["volumeMounts"], theirs[0]["volumeMounts"],
            "{kind}: mounts"
        );
        // The driver container is the same in both.
        assert_eq!(containers(w)[0], containers(workload(&separate, kind))[0]);
    }
}

#[test]
fn the_resource_comments_quote_the_bench() {
    for file in [
        "deploy/separate/controller.yaml",
        "deploy/separate/node.yaml",
        "deploy/aio/controller.yaml",
        "deploy/aio/node.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(
            text.contains("cargo xtask bench") && text.contains("MiB"),
            "{file}"
        );
    }
}

/// Our renderer and kustomize itself (`kubectl kustomize`, where kubectl is installed) agree.
#[test]
fn kubectl_kustomize_renders_the_same() {
    let Ok(version) = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
    else {
        eprintln!("kubectl is not installed: only our renderer was checked");
        return;
    };
    assert!(version.status.success());
    for base in ["deploy/separate", "deploy/aio"] {
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(root().join(base))
            .output()
            .unwrap();
        assert!(out.status.success(), "{base}: {out:?}");
        let key = |d: &Value| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        };
        let mut theirs = docs(&String::from_utf8(out.stdout).unwrap());
        let mut ours = render(&root().join(base));
        theirs.sort_by_key(key);
        ours.sort_by_key(key);
        assert_eq!(ours.len(), theirs.len(), "{base}");
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b, "{base}: {}", key(a));
        }
    }
}
