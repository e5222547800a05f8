//! Each shipped role's rules are needed: for one permission per component, the component runs
//! under its shipped RBAC with just that permission taken out, and the API server's audit log
//! shows the request it then refuses (403 Forbidden) — the request the component needs the
//! permission for. The components run side by side, each in its own namespace.
//!
//! `reliability_secrets.rs` proves the rest from the audit log of a full workload: every
//! permission of every role authorized a request, or is upstream's optional one.

mod checks;

use std::time::Duration;

use anyhow::Context as _;
use csi_e2e_support::rbac_coverage::{Permission, permissions, without_permission};
use csi_e2e_support::{DriverOptions, Sandbox, has_exited, tail, wait_until};
use csi_test_support::ChildProcess;

use checks::repo_path;

/// How long a component may take to make the request.
const WAIT: Duration = Duration::from_secs(60);

/// One row: the binary, its manifest, its flags, and the permission taken out
/// (`<verb> <group or core>/<resource>`).
struct Case {
    binary: &'static str,
    manifest: &'static str,
    args: &'static [&'static str],
    removed: &'static str,
}

const CASES: &[Case] = &[
    Case {
        binary: "csi-provisioner",
        manifest: "sidecars/external-provisioner/deploy/rbac.yaml",
        args: &[],
        removed: "list storage.k8s.io/storageclasses",
    },
    Case {
        binary: "csi-attacher",
        manifest: "sidecars/external-attacher/deploy/rbac.yaml",
        args: &[],
        removed: "create coordination.k8s.io/leases",
    },
    Case {
        binary: "csi-resizer",
        manifest: "sidecars/external-resizer/deploy/rbac.yaml",
        args: &[],
        removed: "list core/persistentvolumeclaims",
    },
    Case {
        binary: "csi-snapshotter",
        manifest: "sidecars/external-snapshotter/deploy/rbac.yaml",
        args: &[],
        removed: "list snapshot.storage.k8s.io/volumesnapshotcontents",
    },
    Case {
        binary: "snapshot-controller",
        manifest: "controllers/snapshot-controller/deploy/rbac.yaml",
        args: &[],
        removed: "list snapshot.storage.k8s.io/volumesnapshots",
    },
    Case {
        binary: "csi-external-health-monitor-controller",
        manifest: "controllers/external-health-monitor/deploy/rbac.yaml",
        args: &["--enable-node-watcher"],
        removed: "list core/nodes",
    },
    Case {
        binary: "csi-sidecars",
        manifest: "sidecars/aio/deploy/rbac.yaml",
        args: &["--controllers=attacher,provisioner,resizer"],
        removed: "list storage.k8s.io/volumeattachments",
    },
];

#[tokio::test(flavor = "multi_thread")]
async fn without_one_permission_each_component_is_forbidden_a_request() -> anyhow::Result<()> {
    let runs = CASES.iter().map(|case| async move {
        one_case(case)
            .await
            .with_context(|| format!("{} without {}", case.binary, case.removed))
    });
    for result in futures::future::join_all(runs).await {
        result?;
    }
    Ok(())
}

async fn one_case(case: &Case) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(repo_path(case.manifest))?;
    let permission: Permission = permissions(&text)?
        .into_iter()
        .find(|p| p.to_string() == case.removed)
        .with_context(|| format!("{} grants no {}", case.manifest, case.removed))?;
    let dir = tempfile::tempdir()?;
    let reduced = dir.path().join("rbac.yaml");
    std::fs::write(&reduced, without_permission(&text, &permission)?)?;
    let prefix = format!("rbac-{}", case.binary.trim_start_matches("csi-"));
    let prefix: String = prefix.chars().take(20).collect();
    let sandbox = Sandbox::new(&prefix, &reduced, DriverOptions::default()).await?;
    let outcome = async {
        let env = &sandbox.env;
        let mut args = vec![
            format!("--kubeconfig={}", sandbox.kubeconfig.display()),
            "--leader-election".to_string(),
            format!("--leader-election-namespace={}", sandbox.ns.name),
        ];
        if case.binary != "snapshot-controller" {
            args.push(format!("--csi-address={}", sandbox.driver.endpoint()));
        }
        args.extend(case.args.iter().map(ToString::to_string));
        let process = ChildProcess::spawn(env.binary(case.binary)?, &args)?;
        let username = sandbox.username();
        let refused = wait_until(
            &format!("a Forbidden {} of {username}", case.removed),
            WAIT,
            || async {
                let forbidden = env.audit_log().ok()?.forbidden(&username).ok()?;
                forbidden
                    .into_iter()
                    .find(|e| {
                        let mut allowed = e.clone();
                        allowed.code = Some(200);
                        permission.authorized(&allowed)
                    })
                    .map(Some)
                    .or_else(|| has_exited(&process).then_some(None))
            },
            || async { tail(&process.logs(), 40) },
        )
        .await?;
        let event = refused.with_context(|| {
            format!(
                "{} exited before the request:\n{}",
                case.binary,
                tail(&process.logs(), 40)
            )
        })?;
        println!("{} without {}: {event}", case.binary, case.removed);
        drop(process);
        anyhow::Ok(())
    }
    .await;
    let cleanup = sandbox.delete().await;
    outcome.and(cleanup)
}
