//! Ours against upstream: the snapshot workload ([`snapshots::Stack::workload`]: snapshots with
//! Delete and Retain, a pre-provisioned content, a group snapshot of two claims, a restore, every
//! deletion) runs through upstream's Go snapshot-controller and csi-snapshotter v8.7.0 (built by
//! `cargo xtask tools`, named by `cargo xtask e2e` in `CSI_E2E_GO_SNAPSHOT_CONTROLLER` and
//! `CSI_E2E_GO_SNAPSHOTTER`) and through our `snapshot-controller` and `csi-snapshotter`, on one
//! control plane, and what each writes is compared: the VolumeSnapshots, VolumeSnapshotContents,
//! VolumeGroupSnapshots, VolumeGroupSnapshotContents, claims and PVs (restored ones included)
//! once everything is ready and again once the snapshots are deleted (the retained content), the
//! Events (on the snapshot objects, the claims and the leader election Leases), and the requests
//! the driver received. A difference is a bug in ours unless [`DELIBERATE`] names it with its
//! reason.
//!
//! The snapshot-controller acts on the whole cluster, so the sides run one after the other, each
//! in its own namespace with its own driver; both use our csi-provisioner for the claims and the
//! restore, and every process runs as the admin (the shipped RBAC is checked by `snapshot.rs`),
//! so any difference is behaviour. Normalisation: see `snapshots/normalize.rs`.
//!
//! Until our snapshot binaries are built in this workspace, only upstream's side runs (proving
//! the workload) and the comparison is skipped with a message. The comparison is tested by
//! `CSI_E2E_SNAPSHOT_AS_OURS=go`: upstream's binaries on both sides must agree (nothing random
//! survives normalisation); `CSI_E2E_SNAPSHOTTER_EXTRA_ARGS` adds flags to the second side's
//! snapshotter (`--extra-create-metadata=false` must make them differ). Each side's normalised
//! capture is written to `target/debug/snapshot-upstream/`.

mod snapshots;

use std::path::PathBuf;

use anyhow::{Context as _, ensure};
use csi_e2e_support::E2eEnv;
use csi_e2e_support::compare::compare_values;
use snapshots::{Captured, Component, Identity, Keyed, Lines, Stack};

/// Differences between upstream and ours that are deliberate, each with its reason, as
/// `(what differs, why)`.
const DELIBERATE: &[(&str, &str)] = &[];

fn go_binary(variable: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .with_context(|| {
            format!("{variable} is not set: run the end-to-end tests with `cargo xtask e2e`")
        })
}

/// Runs the workload through `components`; returns what they wrote.
async fn side(label: &str, prefix: &str, components: Vec<Component>) -> anyhow::Result<Captured> {
    let stack = Stack::start(label, prefix, components).await?;
    let result = stack.workload().await;
    match result {
        Ok(captured) => {
            stack.finish(Ok(())).await?;
            Ok(captured)
        }
        Err(err) => Err(stack.finish(Err(err)).await.unwrap_err()),
    }
}

/// The differences between two captures, one paragraph each.
fn differences(go: &Captured, ours: &Captured) -> Vec<String> {
    fn sets(what: &str, go: &Keyed<Lines>, ours: &Keyed<Lines>, out: &mut Vec<String>) {
        let keys: std::collections::BTreeSet<&String> = go.keys().chain(ours.keys()).collect();
        for key in keys {
            let (a, b) = (go.get(key), ours.get(key));
            if a == b {
                continue;
            }
            let empty = Lines::new();
            let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
            let only = |x: &Lines, y: &Lines| -> String {
                x.difference(y).map(|l| format!("\n    {l}")).collect()
            };
            out.push(format!(
                "{what} of {key}:\n  only upstream:{}\n  only ours:{}",
                only(a, b),
                only(b, a)
            ));
        }
    }
    let mut out = Vec::new();
    compare_values("object", &go.objects, &ours.objects, &mut out);
    sets("Events", &go.events, &ours.events, &mut out);
    sets("driver requests", &go.calls, &ours.calls, &mut out);
    out
}

fn dump(captured: &Captured) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "objects": captured.objects,
        "events": captured.events,
        "driver requests": captured.calls,
    }))
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_write_what_upstream_writes() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let go_controller = go_binary("CSI_E2E_GO_SNAPSHOT_CONTROLLER")?;
    let go_snapshotter = go_binary("CSI_E2E_GO_SNAPSHOTTER")?;
    let provisioner = env.binary("csi-provisioner")?;
    let components = |controller: PathBuf, snapshotter: PathBuf, extra: &[String]| {
        let mut snapshotter = Component::snapshotter(snapshotter, Identity::Admin);
        snapshotter.args.extend(extra.iter().cloned());
        vec![
            Component::snapshot_controller(controller, Identity::Admin),
            Component::provisioner(provisioner.clone(), Identity::Admin),
            snapshotter,
        ]
    };
    let as_go = std::env::var("CSI_E2E_SNAPSHOT_AS_OURS").as_deref() == Ok("go");
    let (ours_controller, ours_snapshotter) = if as_go {
        (go_controller.clone(), go_snapshotter.clone())
    } else {
        (
            env.bin_dir.join("snapshot-controller"),
            env.bin_dir.join("csi-snapshotter"),
        )
    };
    let extra: Vec<String> = std::env::var("CSI_E2E_SNAPSHOTTER_EXTRA_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();

    let go = side(
        "upstream Go snapshot-controller and csi-snapshotter v8.7.0",
        "snap-go",
        components(go_controller.clone(), go_snapshotter.clone(), &[]),
    )
    .await?;
    let dump_dir = env.bin_dir.join("snapshot-upstream");
    std::fs::create_dir_all(&dump_dir)?;
    std::fs::write(dump_dir.join("upstream.txt"), dump(&go))?;
    if !ours_controller.exists() || !ours_snapshotter.exists() {
        eprintln!(
            "SKIPPED the comparison: our snapshot-controller and csi-snapshotter are not in this \
             workspace yet ({} / {}); upstream's side ran the workload",
            ours_controller.display(),
            ours_snapshotter.display()
        );
        return Ok(());
    }
    let ours = side(
        if as_go {
            "upstream Go (standing in for ours)"
        } else {
            "our snapshot-controller and csi-snapshotter"
        },
        "snap-ours",
        components(ours_controller, ours_snapshotter, &extra),
    )
    .await?;
    std::fs::write(dump_dir.join("ours.txt"), dump(&ours))?;
    let mut unexplained = Vec::new();
    for difference in differences(&go, &ours) {
        if !DELIBERATE
            .iter()
            .any(|(what, _)| difference.starts_with(what))
        {
            unexplained.push(difference);
        }
    }
    ensure!(
        unexplained.is_empty(),
        "our snapshot components differ from upstream's in {} place(s) (captures in {}):\n\n{}",
        unexplained.len(),
        dump_dir.display(),
        unexplained.join("\n\n")
    );
    Ok(())
}
