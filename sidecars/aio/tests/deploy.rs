//! The kustomize bases in `deploy/`: (a) separate sidecar images, (b) one csi-sidecars
//! container, and the cluster-wide snapshot-controller. Rendered with the subset of kustomize
//! they use (`csi_e2e_support::kustomize`; any other field fails the test rather than being
//! ignored), then checked: every container's arguments parse as its binary's, every binding
//! names a role that exists, the pods' ServiceAccounts hold the controllers' roles, (b) is what
//! `csi-sidecars migrate` makes of (a), the snapshot-controller's Deployment is upstream's, and
//! each controller's RBAC is upstream's file, rule for rule, but for the listed differences.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use csi_e2e_support::kustomize::{self, args, containers, documents};
use csi_sidecar_runtime::process::{aggregate_flags, standalone_flags};
use csi_sidecars::migrate::{self, descriptor_for_image};
use csi_sidecars::{NAME, TABLE};
use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn docs(text: &str) -> Vec<Value> {
    documents(text).unwrap()
}

/// `kustomize build dir`, for the fields our bases use.
fn render(dir: &Path) -> Vec<Value> {
    kustomize::render(dir).unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()))
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn workload<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let w = by_kind(docs, kind);
    assert_eq!(w.len(), 1, "one {kind}");
    w[0]
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
            "external-snapshotter-runner",
            "external-snapshotter-leaderelection",
            "external-health-monitor-controller-runner",
            "external-health-monitor-controller-cfg",
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
            "csi-external-health-monitor-controller",
            "csi-node-driver-registrar",
            "csi-provisioner",
            "csi-resizer",
            "csi-snapshotter",
            "livenessprobe",
            "livenessprobe"
        ]
    );
    // Every sidecar csi-sidecars runs has its container here.
    for d in TABLE {
        assert!(seen.contains(&d.binary), "no {} container", d.binary);
    }
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
        "deploy/snapshot-controller/deployment.yaml",
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
    for base in [
        "deploy/separate",
        "deploy/aio",
        "deploy/snapshot-controller",
    ] {
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

/// Where `go build` of the test tools left upstream's modules, if it did.
fn go_module(path: &str) -> Option<PathBuf> {
    let home = std::env::var_os("GOMODCACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join("go/pkg/mod")))?;
    let p = home.join("github.com/kubernetes-csi").join(path);
    p.exists().then_some(p)
}

/// The version `release-tools/upstream-versions.toml` pins for `section`.
fn pinned(section: &str) -> String {
    let text =
        std::fs::read_to_string(root().join("release-tools/upstream-versions.toml")).unwrap();
    let mut in_section = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_section = line == format!("[{section}]");
        } else if in_section && let Some(v) = line.strip_prefix("version = ") {
            return v.trim_matches('"').to_string();
        }
    }
    panic!("no version for {section}")
}

/// Per role (`Kind/name`): its rules as (API group, resource, verb) triples.
fn rules(docs: &[Value]) -> std::collections::BTreeMap<String, BTreeSet<(String, String, String)>> {
    let mut out = std::collections::BTreeMap::new();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "ClusterRole" | "Role") {
            continue;
        }
        let set: &mut BTreeSet<_> = out
            .entry(format!(
                "{kind}/{}",
                d["metadata"]["name"].as_str().unwrap()
            ))
            .or_default();
        for rule in d["rules"].as_sequence().into_iter().flatten() {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            for g in list("apiGroups") {
                for r in list("resources") {
                    for v in list("verbs") {
                        set.insert((g.clone(), r.clone(), v));
                    }
                }
            }
        }
    }
    out
}

/// A rule ours has that upstream's file lacks: (role `Kind/name`, API group, resource, verb).
type Extra = (&'static str, &'static str, &'static str, &'static str);

/// Each controller's RBAC is upstream's, rule for rule, from the file of the release it
/// mirrors (in the Go module cache, where `cargo xtask tools` put it; the health monitor's from
/// the git mirror), but for the differences listed here with their reason. The kustomize bases
/// bind these files' roles, and the generated union is built from them.
#[test]
fn each_controllers_rbac_is_upstreams() {
    let mut compared = 0;
    let cases: &[(&str, &str, Option<PathBuf>, &[Extra])] = &[
        (
            "sidecars/external-attacher/deploy/rbac.yaml",
            "attacher",
            go_module(&format!(
                "external-attacher/v4@{}/deploy/kubernetes/rbac.yaml",
                pinned("attacher")
            )),
            &[],
        ),
        (
            "sidecars/external-provisioner/deploy/rbac.yaml",
            "provisioner",
            go_module(&format!(
                "external-provisioner/v6@{}/deploy/kubernetes/rbac.yaml",
                pinned("provisioner")
            )),
            // Every provision of a claim that names a VolumeAttributesClass reads it (upstream's
            // code too, refused without this rule); upstream's file lacks it.
            &[(
                "ClusterRole/external-provisioner-runner",
                "storage.k8s.io",
                "volumeattributesclasses",
                "get",
            )],
        ),
        (
            "sidecars/external-resizer/deploy/rbac.yaml",
            "resizer",
            go_module(&format!(
                "external-resizer/v2@{}/deploy/kubernetes/rbac.yaml",
                pinned("resizer")
            )),
            &[],
        ),
        (
            "sidecars/external-snapshotter/deploy/rbac.yaml",
            "snapshotter",
            go_module(&format!(
                "external-snapshotter/v8@{}/deploy/kubernetes/csi-snapshotter/rbac-csi-snapshotter.yaml",
                pinned("snapshotter")
            )),
            &[],
        ),
        (
            "controllers/snapshot-controller/deploy/rbac.yaml",
            "snapshot-controller",
            go_module(&format!(
                "external-snapshotter/v8@{}/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml",
                pinned("snapshot-controller")
            )),
            &[],
        ),
        (
            "controllers/external-health-monitor/deploy/rbac.yaml",
            "health-monitor",
            None,
            // v0.19 writes the claim's status.healthStatus (KEP-1432), which its deploy file
            // in the mirror does not grant yet.
            &[(
                "ClusterRole/external-health-monitor-controller-runner",
                "",
                "persistentvolumeclaims/status",
                "patch",
            )],
        ),
    ];
    for (ours, section, upstream, extra) in cases {
        let upstream_text = match upstream {
            Some(path) => std::fs::read_to_string(path).ok(),
            None => health_monitor_upstream_rbac(),
        };
        let Some(upstream_text) = upstream_text else {
            eprintln!("{section}: upstream's RBAC file is not on this machine: not compared");
            continue;
        };
        let mut want = rules(&docs(&upstream_text));
        for (role, g, r, v) in *extra {
            want.get_mut(*role)
                .unwrap_or_else(|| panic!("{ours}: upstream has no {role}"))
                .insert((g.to_string(), r.to_string(), v.to_string()));
        }
        let got = rules(&docs(&std::fs::read_to_string(root().join(ours)).unwrap()));
        assert_eq!(got, want, "{ours} against upstream's {section} RBAC");
        compared += 1;
    }
    eprintln!("{compared} RBAC files compared with upstream's");
}

/// external-health-monitor's deploy/kubernetes/external-health-monitor-controller/rbac.yaml
/// from the git mirror, if there is one.
fn health_monitor_upstream_rbac() -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("--git-dir=/work/.mirror/kubernetes-csi+external-health-monitor/repo")
        .args([
            "show",
            "HEAD:deploy/kubernetes/external-health-monitor-controller/rbac.yaml",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).ok())
        .flatten()
}

/// The snapshot-controller base: cluster-wide, its own ServiceAccount with its roles, and
/// upstream's Deployment (deploy/kubernetes/snapshot-controller) with our image.
#[test]
fn snapshot_controller_base() {
    let docs = render(&root().join("deploy/snapshot-controller"));
    check_rbac(
        &docs,
        "snapshot-controller",
        &[
            "snapshot-controller-runner",
            "snapshot-controller-leaderelection",
        ],
    );
    let d = workload(&docs, "Deployment");
    assert_eq!(d["metadata"]["namespace"], "kube-system");
    check_requests(d);
    let c = &containers(d)[0];
    assert_eq!(c["image"], "csi-sidecars/snapshot-controller:v0.1.0");
    // The lease and Role are in the Deployment's namespace.
    let role = by_kind(&docs, "Role")[0];
    assert_eq!(role["metadata"]["namespace"], d["metadata"]["namespace"]);
    let Some(upstream) = go_module(&format!(
        "external-snapshotter/v8@{}/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml",
        pinned("snapshot-controller")
    )) else {
        eprintln!("upstream's snapshot-controller Deployment is not on this machine: not compared");
        return;
    };
    let theirs = docs_of(&upstream);
    let theirs = workload(&theirs, "Deployment");
    for path in [
        &["metadata", "name"][..],
        &["metadata", "namespace"],
        &["spec", "replicas"],
        &["spec", "minReadySeconds"],
        &["spec", "strategy"],
        &["spec", "selector"],
        &["spec", "template", "metadata"],
        &["spec", "template", "spec", "serviceAccountName"],
    ] {
        let get = |v: &Value| path.iter().fold(v.clone(), |v, k| v[*k].clone());
        assert_eq!(get(d), get(theirs), "{path:?}");
    }
    let theirs_c = &containers(theirs)[0];
    assert_eq!(args(c), args(theirs_c));
    assert_eq!(c["name"], theirs_c["name"]);
}

fn docs_of(path: &Path) -> Vec<Value> {
    docs(&std::fs::read_to_string(path).unwrap())
}
