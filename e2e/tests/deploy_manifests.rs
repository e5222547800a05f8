//! What we ship to run, run as shipped against the local control plane, with Kubernetes' mock
//! CSI driver as its own process:
//! - form (b), `deploy/aio`: the controller Deployment's `csi-sidecars` container;
//! - form (a), `deploy/separate`: each sidecar container of the controller Deployment, run by
//!   its standalone binary, all at once;
//! - a Deployment converted by `csi-sidecars migrate` (the binary, run on the cloud block
//!   driver's round-trip fixture with five sidecars);
//! - the node DaemonSets of both forms.
//!
//! Each leads (one lease per leader-electing process, or each controller's own with
//! `--leader-election-per-controller`), answers `/healthz` (and `/healthz/<controller>` for
//! every controller of `csi-sidecars`), and the controller side provisions a claim, with nothing
//! refused by the API server under the pod's RBAC: the ServiceAccount the workload names, with
//! the bindings of the rendered base that name it and the roles they refer to (the generated
//! union for the migrated Deployment, as `csi-sidecars migrate` reports).
//!
//! What a pod gives a container and a test cannot, and nothing else, is substituted, as in
//! `kep_manifests.rs`:
//! - `$(VAR)` in the arguments is expanded from the container's `env`, as the kubelet does;
//! - the volume that holds the driver's socket (the one the driver container's `--endpoint`
//!   lies in) is the driver process's socket directory: its mount paths in the arguments are
//!   replaced by that directory;
//! - the in-cluster config is a kubeconfig of the ServiceAccount (`--kubeconfig`, for the
//!   binaries that talk to the API server), and the pod's namespace is `POD_NAMESPACE`;
//! - listen addresses (`--http-endpoint`, `--metrics-address`, `--health-port`) are replaced by
//!   `--http-endpoint=127.0.0.1:<free port>`, since every process shares this host;
//! - the node side's registration directory (`/registration`) is a temporary directory
//!   (`--plugin-registration-path`), its kubelet a fake one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use csi_e2e_support::kustomize::{self, args, containers};
use csi_e2e_support::storage::{StorageFixture as Fixture, WAIT};
use csi_e2e_support::{
    DriverOptions, DriverProcess, E2eEnv, every_controller_healthy, has_exited, wait_until,
};
use csi_test_support::{ChildProcess, FakeKubelet, free_port, wait_for_status};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Our binaries that talk to the API server (the others have no `--kubeconfig`).
const KUBE_CLIENTS: &[&str] = &[
    "csi-sidecars",
    "csi-attacher",
    "csi-provisioner",
    "csi-resizer",
    "csi-snapshotter",
    "csi-external-health-monitor-controller",
];

/// Flags that open a listening port.
const LISTEN_FLAGS: &[&str] = &["http-endpoint", "metrics-address", "health-port"];

/// Upstream's lease name of each leader-electing sidecar, by its `--controllers` name, for a
/// sanitized driver name.
fn legacy_lease(controller: &str, driver: &str) -> String {
    match controller {
        "attacher" => format!("external-attacher-leader-{driver}"),
        "provisioner" => driver.to_string(),
        "resizer" => format!("external-resizer-{driver}"),
        "snapshotter" => format!("external-snapshotter-leader-{driver}"),
        "health-monitor" => format!("external-health-monitor-leader-{driver}"),
        other => panic!("{other} holds no lease"),
    }
}

/// csi-lib-utils' lease-name sanitizing: anything but letters, digits and '-' becomes '-'.
fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.ends_with('-') {
        s.push('X');
    }
    s
}

/// The binary a container's image runs: the image's last path element without its tag.
fn binary_of(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split(':').next().unwrap_or(last)
}

/// `$(VAR)` expanded from the container's `env` values.
fn expand(container: &Value, text: &str) -> String {
    let mut out = text.to_string();
    for var in container["env"].as_sequence().into_iter().flatten() {
        if let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) {
            out = out.replace(&format!("$({name})"), value);
        }
    }
    out
}

/// The mount paths of `volume` in `container`, without a trailing '/'.
fn mount_paths(container: &Value, volume: &str) -> Vec<String> {
    container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|m| m["name"] == volume)
        .filter_map(|m| m["mountPath"].as_str())
        .map(|p| p.trim_end_matches('/').to_string())
        .collect()
}

/// The volume holding the socket the driver container serves (its `--endpoint` or
/// `--csi-endpoint`, after `$(VAR)` expansion), and the socket's file name in it.
fn socket_volume(driver: &Value) -> anyhow::Result<(String, String)> {
    let endpoint = args(driver)
        .iter()
        .map(|a| expand(driver, a))
        .find_map(|a| {
            a.strip_prefix("--endpoint=")
                .or_else(|| a.strip_prefix("--csi-endpoint="))
                .map(str::to_string)
        })
        .context("the driver container has no --endpoint")?;
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(&endpoint);
    for m in driver["volumeMounts"].as_sequence().into_iter().flatten() {
        let mount = m["mountPath"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/');
        if let Some(rest) = path.strip_prefix(&format!("{mount}/")) {
            return Ok((
                m["name"].as_str().unwrap_or_default().to_string(),
                rest.to_string(),
            ));
        }
    }
    bail!("no mount of the driver container holds its socket {path}")
}

/// One container of the manifest, ready to run as a process.
struct Runnable {
    name: String,
    binary: String,
    args: Vec<String>,
    address: String,
}

/// The container's arguments with only what a pod gives substituted (see the module's doc).
fn runnable(
    container: &Value,
    socket: (&str, &str),
    socket_dir: &Path,
    kubeconfig: Option<&Path>,
) -> anyhow::Result<Runnable> {
    let (volume, file) = socket;
    ensure!(
        file == "csi.sock",
        "the driver process serves csi.sock, the manifest {file}"
    );
    let binary = binary_of(container["image"].as_str().unwrap_or_default()).to_string();
    let mounts = mount_paths(container, volume);
    let mut out = Vec::new();
    for arg in args(container) {
        let name = arg
            .trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or_default();
        if LISTEN_FLAGS.contains(&name) {
            ensure!(
                arg.contains('='),
                "{arg}: a listen flag with a separate value"
            );
            continue;
        }
        let mut arg = expand(container, &arg);
        for mount in &mounts {
            arg = arg.replace(&format!("{mount}/"), &format!("{}/", socket_dir.display()));
        }
        out.push(arg);
    }
    if KUBE_CLIENTS.contains(&binary.as_str())
        && let Some(kubeconfig) = kubeconfig
    {
        out.push(format!("--kubeconfig={}", kubeconfig.display()));
    }
    let address = format!("127.0.0.1:{}", free_port());
    out.push(format!("--http-endpoint={address}"));
    Ok(Runnable {
        name: container["name"].as_str().unwrap_or_default().to_string(),
        binary,
        args: out,
        address,
    })
}

/// The objects of `docs` that give `account` its rights: the ServiceAccount, the bindings
/// that name it and the roles they refer to, as one manifest.
fn rbac_of(docs: &[Value], account: &str) -> anyhow::Result<String> {
    let mut picked: Vec<&Value> = Vec::new();
    let mut roles = BTreeSet::new();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let binds_it = d["subjects"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == account);
        if (kind == "ServiceAccount" && name == account)
            || (matches!(kind, "RoleBinding" | "ClusterRoleBinding") && binds_it)
        {
            picked.push(d);
            if binds_it {
                roles.insert((
                    d["roleRef"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    d["roleRef"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
        }
    }
    for (kind, name) in &roles {
        let role = docs
            .iter()
            .find(|d| d["kind"] == kind.as_str() && d["metadata"]["name"] == name.as_str())
            .with_context(|| format!("a binding of {account} names a missing {kind} {name}"))?;
        picked.push(role);
    }
    ensure!(
        picked.iter().any(|d| d["kind"] == "ServiceAccount"),
        "no ServiceAccount {account}"
    );
    let mut text = String::new();
    for d in picked {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(d)?);
    }
    Ok(text)
}

fn workload<'a>(docs: &'a [Value], kind: &str) -> anyhow::Result<&'a Value> {
    match kustomize::of_kind(docs, kind).as_slice() {
        [one] => Ok(one),
        other => bail!("{} {kind}s", other.len()),
    }
}

/// The container that is the driver: the one whose image is none of ours.
fn driver_container(pod: &[Value]) -> anyhow::Result<&Value> {
    pod.iter()
        .find(|c| {
            let image = c["image"].as_str().unwrap_or_default();
            !KUBE_CLIENTS.contains(&binary_of(image))
                && !["livenessprobe", "csi-node-driver-registrar"].contains(&binary_of(image))
        })
        .context("no driver container")
}

/// The leases of the namespace that have a holder.
async fn held_leases(fixture: &Fixture) -> anyhow::Result<BTreeSet<String>> {
    let leases: Api<Lease> = Api::namespaced(fixture.admin.clone(), &fixture.ns.name);
    Ok(leases
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|l| {
            l.spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                .is_some_and(|h| !h.is_empty())
        })
        .filter_map(|l| l.metadata.name)
        .collect())
}

/// Runs the sidecar containers of the controller Deployment `deployment` (every container but
/// the driver) under the RBAC in `rbac`, and checks that the leases in `expected_leases` are
/// held, every process is healthy, a claim is provisioned and nothing was forbidden.
async fn run_controller_side(
    prefix: &str,
    deployment: &Value,
    rbac: &str,
    expected_leases: impl Fn(&str) -> BTreeSet<String>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rbac_file = dir.path().join("rbac.yaml");
    std::fs::write(&rbac_file, rbac)?;
    let mut fixture = Fixture::new(prefix, &rbac_file, &[]).await?;
    let outcome = async {
        let pod = containers(deployment);
        let driver = driver_container(&pod)?;
        let (volume, file) = socket_volume(driver)?;
        let socket_dir = fixture
            .driver
            .socket()
            .parent()
            .context("socket without a directory")?
            .to_path_buf();
        let mut processes: Vec<(Runnable, ChildProcess)> = Vec::new();
        for c in &pod {
            if std::ptr::eq(c, driver) {
                continue;
            }
            let r = runnable(c, (&volume, &file), &socket_dir, Some(&fixture.kubeconfig))?;
            let process = ChildProcess::spawn_with_env(
                fixture.env.binary(&r.binary)?,
                &r.args,
                [("POD_NAMESPACE", fixture.ns.name.as_str())],
            )?;
            processes.push((r, process));
        }
        ensure!(!processes.is_empty(), "no sidecar container");
        let logs = || {
            processes
                .iter()
                .map(|(r, p)| format!("--- {} ({}) ---\n{}", r.name, r.binary, p.logs()))
                .collect::<Vec<_>>()
                .join("\n")
        };

        // Each leads.
        let want = expected_leases(&sanitize(fixture.driver_name()));
        wait_until(
            &format!("the leases {want:?} to be held"),
            WAIT,
            || async {
                if processes.iter().any(|(_, p)| has_exited(p)) {
                    return Some(Err(anyhow::anyhow!("a process exited")));
                }
                let held = held_leases(&fixture).await.ok()?;
                want.is_subset(&held).then_some(Ok(held))
            },
            || async { logs() },
        )
        .await?
        .map_err(|e| e.context(logs()))?;
        let held = held_leases(&fixture).await?;
        ensure!(held == want, "leases held: {held:?}, expected {want:?}");

        // Each is healthy; csi-sidecars with every controller it was asked for enabled.
        for (r, p) in &processes {
            if r.binary == "csi-sidecars" {
                let controllers = r
                    .args
                    .iter()
                    .find_map(|a| a.strip_prefix("--controllers="))
                    .context("csi-sidecars without --controllers")?;
                let names: Vec<&str> = controllers.split(',').collect();
                every_controller_healthy(&r.address, &names, p).await?;
            } else {
                let body = wait_for_status(&r.address, "/healthz", 200, WAIT)
                    .await
                    .map_err(|e| e.context(format!("{} /healthz:\n{}", r.name, p.logs())))?;
                ensure!(body.trim() == "ok", "{} /healthz: {body}", r.name);
            }
        }

        // It provisions.
        let class = fixture.storage_class("deploy", json!({})).await?;
        fixture.claim("data", &class, json!({})).await?;
        let named: Vec<(&str, &ChildProcess)> = processes
            .iter()
            .map(|(r, p)| (r.name.as_str(), p))
            .collect();
        fixture
            .wait_bound(&["data".to_string()], WAIT, &named)
            .await?;
        fixture.assert_nothing_forbidden()?;
        anyhow::Ok(())
    }
    .await;
    fixture.finish(outcome).await
}

/// The controllers a `--controllers` list names, in order.
fn controllers_of(args: &[String]) -> Vec<String> {
    args.iter()
        .find_map(|a| a.strip_prefix("--controllers="))
        .map(|l| l.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csi_sidecars_container_of_the_aio_base() -> anyhow::Result<()> {
    let docs = kustomize::render(&root().join("deploy/aio"))?;
    let deployment = workload(&docs, "Deployment")?;
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .context("no serviceAccountName")?;
    let rbac = rbac_of(&docs, account)?;
    // One lease for the process: csi-sidecars-<driver>.
    run_controller_side("deploy-aio", deployment, &rbac, |driver| {
        BTreeSet::from([format!("csi-sidecars-{driver}")])
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn each_sidecar_container_of_the_separate_base() -> anyhow::Result<()> {
    let docs = kustomize::render(&root().join("deploy/separate"))?;
    let deployment = workload(&docs, "Deployment")?;
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .context("no serviceAccountName")?;
    let rbac = rbac_of(&docs, account)?;
    let leading: Vec<String> = containers(deployment)
        .iter()
        .filter(|c| args(c).iter().any(|a| a.starts_with("--leader-election")))
        .map(
            |c| match binary_of(c["image"].as_str().unwrap_or_default()) {
                "csi-attacher" => "attacher",
                "csi-provisioner" => "provisioner",
                "csi-resizer" => "resizer",
                "csi-snapshotter" => "snapshotter",
                "csi-external-health-monitor-controller" => "health-monitor",
                other => panic!("{other} with --leader-election"),
            },
        )
        .map(str::to_string)
        .collect();
    assert_eq!(leading.len(), 5, "{leading:?}");
    run_controller_side("deploy-separate", deployment, &rbac, |driver| {
        leading.iter().map(|c| legacy_lease(c, driver)).collect()
    })
    .await
}

/// `csi-sidecars migrate -f <fixture>`: the converted documents.
fn migrated(fixture: &str) -> anyhow::Result<Vec<Value>> {
    let env = E2eEnv::from_env()?;
    let out = std::process::Command::new(env.binary("csi-sidecars")?)
        .arg("migrate")
        .arg("-f")
        .arg(
            root()
                .join("sidecars/aio/tests/fixtures/migrate")
                .join(fixture),
        )
        .output()?;
    ensure!(
        out.status.success(),
        "csi-sidecars migrate: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    kustomize::documents(&String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_converted_by_csi_sidecars_migrate() -> anyhow::Result<()> {
    let docs = migrated("cloud-block.yaml")?;
    let deployment = workload(&docs, "Deployment")?;
    let ours: Vec<Value> = containers(deployment)
        .into_iter()
        .filter(|c| binary_of(c["image"].as_str().unwrap_or_default()) == "csi-sidecars")
        .collect();
    ensure!(ours.len() == 1, "one csi-sidecars container");
    let sidecar_args = args(&ours[0]);
    ensure!(
        sidecar_args
            .iter()
            .any(|a| a == "--leader-election-per-controller"),
        "{sidecar_args:?}"
    );
    let leading: Vec<String> = controllers_of(&sidecar_args)
        .into_iter()
        .filter(|c| c != "livenessprobe")
        .collect();
    // The RBAC the report names: csi-sidecars' generated union.
    let rbac = std::fs::read_to_string(root().join("sidecars/aio/deploy/rbac.yaml"))?;
    // Each controller holds its sidecar's own lease, so that an old pod's sidecar and the new
    // csi-sidecars never lead at once during the rolling update.
    run_controller_side("deploy-migrated", deployment, &rbac, |driver| {
        leading.iter().map(|c| legacy_lease(c, driver)).collect()
    })
    .await
}

/// Runs the node DaemonSet's containers (but the driver) against a driver process and a fake
/// kubelet: the registrar registers the driver, and every process is healthy.
async fn run_node_side(base: &str) -> anyhow::Result<()> {
    let docs = kustomize::render(&root().join(base))?;
    let daemonset = workload(&docs, "DaemonSet")?;
    let env = E2eEnv::from_env()?;
    let driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let registry = tempfile::tempdir()?;
    let pod = containers(daemonset);
    let driver_c = driver_container(&pod)?;
    let (volume, file) = socket_volume(driver_c)?;
    let socket_dir = driver
        .socket()
        .parent()
        .context("socket dir")?
        .to_path_buf();
    let mut processes = Vec::new();
    for c in &pod {
        if std::ptr::eq(c, driver_c) {
            continue;
        }
        let mut r = runnable(c, (&volume, &file), &socket_dir, None)?;
        let registers = r.binary == "csi-node-driver-registrar"
            || controllers_of(&r.args)
                .iter()
                .any(|c| c == "node-driver-registrar");
        if registers {
            ensure!(
                mount_paths(c, "registration-dir") == ["/registration"],
                "{}: the registration directory is not /registration",
                r.name
            );
            r.args.push(format!(
                "--plugin-registration-path={}",
                registry.path().display()
            ));
        }
        let process = ChildProcess::spawn(env.binary(&r.binary)?, &r.args)?;
        processes.push((r, process));
    }
    let registrations = processes
        .iter()
        .filter(|(r, _)| {
            r.binary == "csi-node-driver-registrar"
                || controllers_of(&r.args)
                    .iter()
                    .any(|c| c == "node-driver-registrar")
        })
        .count();
    ensure!(registrations == 1, "{registrations} registrars");
    let all_logs = || {
        processes
            .iter()
            .map(|(r, p)| format!("--- {} ---\n{}", r.name, p.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let info = FakeKubelet::register(registry.path(), driver.driver_name(), WAIT)
        .await
        .map_err(|e| e.context(all_logs()))?;
    ensure!(
        info.endpoint == "/var/lib/kubelet/plugins/csi.example.com/csi.sock",
        "the registrar reports {}",
        info.endpoint
    );
    for (r, p) in &processes {
        if r.binary == "csi-sidecars" {
            let names = controllers_of(&r.args);
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            every_controller_healthy(&r.address, &names, p).await?;
        } else {
            let body = wait_for_status(&r.address, "/healthz", 200, WAIT)
                .await
                .map_err(|e| e.context(format!("{} /healthz:\n{}", r.name, p.logs())))?;
            ensure!(body.trim() == "ok", "{} /healthz: {body}", r.name);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_daemonset_of_the_aio_base() -> anyhow::Result<()> {
    run_node_side("deploy/aio").await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_daemonset_of_the_separate_base() -> anyhow::Result<()> {
    run_node_side("deploy/separate").await
}

#[test]
fn only_what_a_pod_gives_is_substituted() {
    let container: Value = serde_yaml::from_str(
        "
name: x
image: registry.example/sig-storage/csi-provisioner:v6.4.0
args:
  - --csi-address=$(ADDRESS)
  - -v=5
  - --http-endpoint=:8080
  - --extra-create-metadata
env:
  - {name: ADDRESS, value: /var/lib/csi/sockets/pluginproxy/csi.sock}
volumeMounts:
  - {name: socket-dir, mountPath: /var/lib/csi/sockets/pluginproxy/}
",
    )
    .unwrap();
    let r = runnable(
        &container,
        ("socket-dir", "csi.sock"),
        Path::new("/tmp/t"),
        Some(Path::new("/tmp/k")),
    )
    .unwrap();
    assert_eq!(r.binary, "csi-provisioner");
    assert_eq!(
        &r.args[..4],
        [
            "--csi-address=/tmp/t/csi.sock",
            "-v=5",
            "--extra-create-metadata",
            "--kubeconfig=/tmp/k"
        ]
    );
    assert!(r.args[4].starts_with("--http-endpoint=127.0.0.1:"));
    assert_eq!(r.args.len(), 5);

    let driver: Value = serde_yaml::from_str(
        "
args: [--endpoint=$(CSI_ENDPOINT)]
env: [{name: CSI_ENDPOINT, value: 'unix:///var/lib/csi/sockets/pluginproxy/csi.sock'}]
volumeMounts: [{name: socket-dir, mountPath: /var/lib/csi/sockets/pluginproxy/}]
",
    )
    .unwrap();
    assert_eq!(
        socket_volume(&driver).unwrap(),
        ("socket-dir".to_string(), "csi.sock".to_string())
    );
    assert_eq!(sanitize("e2e-x.csi.e2e.k8s.io"), "e2e-x-csi-e2e-k8s-io");
}
