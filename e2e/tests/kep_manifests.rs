//! KEP-4958's two example commands ("Proposal": the controller Deployment and the node
//! DaemonSet), run as written against the local control plane and Kubernetes' mock CSI driver
//! as its own process: the process starts, leads (controller side), and every controller the
//! command lists is enabled and healthy at `/healthz/<controller>`.
//!
//! What a pod gives the container and a test cannot, and nothing else, is substituted:
//! - the socket `/csi/csi.sock` (the `socket-dir` / `plugin-dir` mount) is the driver's socket
//!   in a temporary directory; `--csi-address=unix:/csi/csi.sock` keeps its form;
//! - the in-cluster config is a kubeconfig of the ServiceAccount of `csi-sidecars`' shipped RBAC
//!   (applied into the test's namespace), given through `KUBECONFIG` (no flag is added); as a
//!   deployer with leases in `kube-system` would, the test also puts the shipped Role (leases)
//!   into `kube-system`, bound to that ServiceAccount;
//! - the node side's `registration-dir` mount (`/registration`, the registrar's default) is a
//!   temporary directory, `--plugin-registration-path=<dir>`;
//! - `--http-endpoint=127.0.0.1:<free port>` is appended so that `/healthz/<controller>` can be
//!   read (the KEP's commands open no port).

use anyhow::{Context as _, ensure};
use csi_e2e_support::storage::{StorageFixture as Fixture, WAIT};
use csi_e2e_support::{
    DRIVER_NAME, DriverOptions, DriverProcess, E2eEnv, every_controller_healthy, has_exited,
    wait_until,
};
use csi_test_support::{ChildProcess, FakeKubelet, free_port};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

/// The controller Deployment's `csi-sidecars` command, as the KEP writes it.
const KEP_CONTROLLER_COMMAND: &[&str] = &[
    "--csi-address=unix:/csi/csi.sock",
    "--controllers=attacher,provisioner,resizer,snapshotter",
    "--feature-gates=Topology=true",
    "--leader-election",
    "--leader-election-namespace=kube-system",
    "--timeout=30s",
    "--attacher-timeout=30s",
    "--attacher-worker-thread=100",
    "--provisioner-timeout=30s",
];

/// The node DaemonSet's `csi-sidecars` command, as the KEP writes it.
const KEP_NODE_COMMAND: &[&str] = &[
    "--csi-address=unix:/csi/csi.sock",
    "--controllers=node-driver-registrar",
    "--kubelet-registration-path=/var/lib/kubelet/plugins/<csi-driver>/csi.sock",
];

/// The socket path of the KEP's pods.
const KEP_SOCKET: &str = "/csi/csi.sock";

/// `command` with the KEP's socket replaced by `socket`; every other argument unchanged.
fn with_socket(command: &[&str], socket: &std::path::Path) -> Vec<String> {
    let socket = socket.display().to_string();
    command
        .iter()
        .map(|arg| arg.replace(KEP_SOCKET, &socket))
        .collect()
}

/// The shipped Roles of the test's namespace, copied into `kube-system` (named after the test's
/// namespace) and bound to its ServiceAccount: the RBAC of a deployment whose leases are there.
/// Returns the names, to delete afterwards.
async fn roles_in_kube_system(fixture: &Fixture) -> anyhow::Result<Vec<String>> {
    let shipped: Api<Role> = Api::namespaced(fixture.admin.clone(), &fixture.ns.name);
    let roles: Api<Role> = Api::namespaced(fixture.admin.clone(), "kube-system");
    let bindings: Api<RoleBinding> = Api::namespaced(fixture.admin.clone(), "kube-system");
    let mut names = Vec::new();
    for role in shipped.list(&ListParams::default()).await?.items {
        let name = format!(
            "{}-{}",
            fixture.ns.name,
            role.metadata.name.as_deref().unwrap_or_default()
        );
        let copy: Role = serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": role.rules,
        }))?;
        roles.create(&PostParams::default(), &copy).await?;
        names.push(name.clone());
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "subjects": [{"kind": "ServiceAccount", "name": fixture.account, "namespace": fixture.ns.name}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        }))?;
        bindings.create(&PostParams::default(), &binding).await?;
    }
    ensure!(!names.is_empty(), "the shipped RBAC has no Role");
    Ok(names)
}

#[test]
fn the_socket_is_the_only_argument_substituted() {
    let socket = std::path::Path::new("/tmp/x/csi.sock");
    let args = with_socket(KEP_CONTROLLER_COMMAND, socket);
    assert_eq!(args[0], "--csi-address=unix:/tmp/x/csi.sock");
    assert_eq!(&args[1..], &KEP_CONTROLLER_COMMAND[1..]);
    let args = with_socket(KEP_NODE_COMMAND, socket);
    assert_eq!(args[0], "--csi-address=unix:/tmp/x/csi.sock");
    assert_eq!(&args[1..], &KEP_NODE_COMMAND[1..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kep_controller_deployment_command() -> anyhow::Result<()> {
    let mut fixture = Fixture::new(
        "kep-controller",
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sidecars/aio/deploy/rbac.yaml"),
        &[],
    )
    .await?;
    let leases: Api<Lease> = Api::namespaced(fixture.admin.clone(), "kube-system");
    let lease_suffix = fixture.ns.name.clone();
    let kube_system_roles = roles_in_kube_system(&fixture).await;
    let outcome = async {
        kube_system_roles
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let address = format!("127.0.0.1:{}", free_port());
        let mut args = with_socket(KEP_CONTROLLER_COMMAND, fixture.driver.socket());
        args.push(format!("--http-endpoint={address}"));
        let sidecars = ChildProcess::spawn_with_env(
            fixture.env.binary("csi-sidecars")?,
            &args,
            [("KUBECONFIG", &fixture.kubeconfig)],
        )?;

        // It leads: one lease in kube-system, named for csi-sidecars and this test's driver.
        let lease = wait_until(
            "csi-sidecars holds its lease in kube-system",
            WAIT,
            || async {
                if has_exited(&sidecars) {
                    return Some(Err(anyhow::anyhow!("csi-sidecars exited")));
                }
                let list = leases.list(&ListParams::default()).await.ok()?;
                list.items
                    .into_iter()
                    .find(|l| {
                        let name = l.metadata.name.as_deref().unwrap_or_default();
                        name.starts_with("csi-sidecars-")
                            && name.contains(&lease_suffix)
                            && l.spec
                                .as_ref()
                                .and_then(|s| s.holder_identity.as_deref())
                                .is_some_and(|h| !h.is_empty())
                    })
                    .map(Ok)
            },
            || async { sidecars.logs() },
        )
        .await?
        .map_err(|e| e.context(sidecars.logs()))?;
        let lease_name = lease.metadata.name.clone().unwrap_or_default();

        every_controller_healthy(
            &address,
            &["attacher", "provisioner", "resizer", "snapshotter"],
            &sidecars,
        )
        .await?;

        // The provisioner works under this command: a claim gets bound.
        let class = fixture.storage_class("kep", json!({})).await?;
        fixture.claim("data", &class, json!({})).await?;
        fixture
            .wait_bound(&["data".to_string()], WAIT, &[("csi-sidecars", &sidecars)])
            .await?;

        // The two spellings the KEP uses that no upstream binary has are accepted with a
        // warning naming the right one.
        let logs = sidecars.logs();
        ensure!(
            logs.contains(
                "--attacher-worker-thread is not a flag; it is read as --attacher-worker-threads"
            ),
            "no warning about --attacher-worker-thread:\n{logs}"
        );
        ensure!(
            logs.contains("setting GA feature gate Topology=true"),
            "no warning about the GA gate Topology:\n{logs}"
        );
        // One watch per resource type, shared by the four controllers. The audit log shows a
        // watch a moment after it starts.
        let username = fixture.username();
        let types = [
            "csinodes",
            "persistentvolumeclaims",
            "persistentvolumes",
            "pods",
            "storageclasses",
            "volumeattachments",
            "volumeattributesclasses",
            "volumegroupsnapshotclasses",
            "volumegroupsnapshotcontents",
            "volumesnapshotclasses",
            "volumesnapshotcontents",
            "volumesnapshots",
        ];
        let audit = || async {
            let log = fixture.env.audit_log()?;
            anyhow::Ok(log.watches_per_resource("csi-sidecars/", Some(&username))?)
        };
        let watches = wait_until(
            "a watch of every type in the audit log",
            WAIT,
            || async {
                let watches = audit().await.ok()?;
                types
                    .iter()
                    .all(|t| watches.contains_key(*t))
                    .then_some(watches)
            },
            || async { format!("{:?}", audit().await) },
        )
        .await?;
        let expected: std::collections::BTreeMap<String, usize> =
            types.iter().map(|t| (t.to_string(), 1)).collect();
        ensure!(watches == expected, "not one watch per type: {watches:?}");
        fixture.assert_nothing_forbidden()?;
        drop(sidecars);
        let _ = leases.delete(&lease_name, &DeleteParams::default()).await;
        anyhow::Ok(())
    }
    .await;
    let roles: Api<Role> = Api::namespaced(fixture.admin.clone(), "kube-system");
    let bindings: Api<RoleBinding> = Api::namespaced(fixture.admin.clone(), "kube-system");
    for name in kube_system_roles.iter().flatten() {
        let _ = bindings.delete(name, &DeleteParams::default()).await;
        let _ = roles.delete(name, &DeleteParams::default()).await;
    }
    // A lease left behind by a failure.
    if let Ok(list) = leases.list(&ListParams::default()).await {
        for lease in list.items {
            let name = lease.metadata.name.unwrap_or_default();
            if name.starts_with("csi-sidecars-") && name.contains(&lease_suffix) {
                let _ = leases.delete(&name, &DeleteParams::default()).await;
            }
        }
    }
    fixture.finish(outcome).await
}

#[tokio::test]
async fn the_kep_node_daemonset_command() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let driver = DriverProcess::start(&env, DriverOptions::default()).await?;
    let registry = tempfile::tempdir()?;
    let address = format!("127.0.0.1:{}", free_port());
    let mut args = with_socket(KEP_NODE_COMMAND, driver.socket());
    args.push(format!(
        "--plugin-registration-path={}",
        registry.path().display()
    ));
    args.push(format!("--http-endpoint={address}"));
    let sidecars = ChildProcess::spawn(env.binary("csi-sidecars")?, &args)?;
    let info = FakeKubelet::register(registry.path(), DRIVER_NAME, WAIT)
        .await
        .map_err(|e| e.context(sidecars.logs()))?;
    assert_eq!(info.name, DRIVER_NAME);
    assert_eq!(
        info.endpoint,
        "/var/lib/kubelet/plugins/<csi-driver>/csi.sock"
    );
    every_controller_healthy(&address, &["node-driver-registrar"], &sidecars)
        .await
        .context("csi-sidecars of the KEP's DaemonSet")?;
    // No error logged (klog's error lines start with `E<month><day>`).
    let logs = sidecars.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.starts_with('E') && l[1..].starts_with(|c: char| c.is_ascii_digit())),
        "{logs}"
    );
    Ok(())
}
