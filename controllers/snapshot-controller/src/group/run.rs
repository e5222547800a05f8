//! The group half at run time (upstream's group informers' handlers and
//! `groupSnapshotWorker` / `groupSnapshotContentWorker`): every change of a VolumeGroupSnapshot
//! or VolumeGroupSnapshotContent (added, updated, resynced, deleted) queues its key; the
//! workers sync keys, a failed key coming back with the queue's backoff.

use std::sync::Arc;

use csi_kube::Change;
use csi_snapshot_utils as utils;
use csi_workqueue::Outcome;
use futures::StreamExt as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{GroupCaches, GroupController};

/// Fills the group half's own stores from its caches, then feeds its queues from the watches
/// and runs `workers` workers per queue, on `tasks`, until `shutdown`.
pub fn spawn(
    tasks: &mut JoinSet<()>,
    group: Arc<GroupController>,
    caches: &GroupCaches,
    workers: usize,
    shutdown: CancellationToken,
) {
    group.initialize_caches(
        caches.group_snapshots.state(),
        caches.group_contents.state(),
    );
    {
        let queue = group.group_snapshot_queue.clone();
        let mut events = caches.group_snapshot_events.events();
        tasks.spawn(async move {
            while let Some(change) = events.next().await {
                let object = match &change {
                    Change::Added(g) => g,
                    Change::Updated { new, .. } => new,
                    Change::Deleted { last, .. } => last,
                };
                queue.add(utils::group_snapshot_key(object));
            }
        });
    }
    {
        let queue = group.group_content_queue.clone();
        let mut events = caches.group_content_events.events();
        tasks.spawn(async move {
            while let Some(change) = events.next().await {
                let object = match &change {
                    Change::Added(c) => c,
                    Change::Updated { new, .. } => new,
                    Change::Deleted { last, .. } => last,
                };
                queue.add(object.metadata.name.clone().unwrap_or_default());
            }
        });
    }
    {
        let g = group.clone();
        tasks.spawn(csi_workqueue::run_workers(
            group.group_snapshot_queue.clone(),
            workers,
            shutdown.clone(),
            move |key: String| {
                let g = g.clone();
                async move {
                    match g.sync_group_snapshot_by_key(&key).await {
                        Ok(()) => Outcome::Forget,
                        Err(err) => {
                            debug!(
                                "Failed to sync group snapshot {key:?}, will retry again: {err}"
                            );
                            Outcome::Requeue
                        }
                    }
                }
            },
        ));
    }
    {
        let g = group.clone();
        tasks.spawn(csi_workqueue::run_workers(
            group.group_content_queue.clone(),
            workers,
            shutdown,
            move |name: String| {
                let g = g.clone();
                async move {
                    match g.sync_group_content_by_key(&name).await {
                        Ok(()) => Outcome::Forget,
                        Err(err) => {
                            debug!(
                                "Failed to sync group snapshot content {name:?}, will retry again: {err}"
                            );
                            Outcome::Requeue
                        }
                    }
                }
            },
        ));
    }
}
