//! `ListVolumes` with paging: which nodes each volume is published on, as the driver sees it
//! (upstream's `CSIVolumeLister`). Only used when the driver has the
//! `LIST_VOLUMES_PUBLISHED_NODES` controller capability.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use csi_connection::Connection;
use csi_proto::csi::v1::ListVolumesRequest;
use csi_proto::csi::v1::controller_client::ControllerClient;
use tokio::time::Instant;
use tonic::Status;

use crate::attacher::{CsiError, methods};
use futures::future::BoxFuture;

/// Volume ID → the IDs of the nodes it is published on.
pub type PublishedNodes = HashMap<String, Vec<String>>;

/// Why listing volumes failed: `failed to list volumes: <error>`, as upstream.
#[derive(Debug, Clone, thiserror::Error)]
#[error("failed to list volumes: {0}")]
pub struct ListVolumesError(#[source] pub CsiError);

/// Lists the volumes the driver knows with the nodes they are published on (upstream's
/// `VolumeLister`).
pub trait VolumeLister: Send + Sync + fmt::Debug {
    /// All volumes, following `next_token` until the driver returns none; the whole listing
    /// must finish within `timeout`.
    fn list_volumes(
        &self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<PublishedNodes, ListVolumesError>>;
}

/// [`VolumeLister`] over the driver connection.
#[derive(Clone, Debug)]
pub struct CsiVolumeLister {
    connection: Connection,
    max_entries: i32,
}

impl CsiVolumeLister {
    /// A lister asking for at most `max_entries` volumes per page (`--max-entries`; 0 lets the
    /// driver choose).
    pub fn new(connection: Connection, max_entries: i32) -> Self {
        CsiVolumeLister {
            connection,
            max_entries,
        }
    }
}

impl VolumeLister for CsiVolumeLister {
    fn list_volumes(
        &self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<PublishedNodes, ListVolumesError>> {
        Box::pin(async move {
            // One deadline for all pages, as upstream's context.WithTimeout around the loop.
            let deadline = Instant::now() + timeout;
            let mut published = PublishedNodes::new();
            let mut token = String::new();
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Err(ListVolumesError(CsiError::Status(
                        Status::deadline_exceeded("context deadline exceeded"),
                    )));
                }
                let request = ListVolumesRequest {
                    max_entries: self.max_entries,
                    starting_token: std::mem::take(&mut token),
                };
                let response = self
                    .connection
                    .unary(
                        methods::LIST_VOLUMES,
                        Some(remaining),
                        request,
                        |ch, req| async move { ControllerClient::new(ch).list_volumes(req).await },
                    )
                    .await
                    .map_err(|status| ListVolumesError(CsiError::Status(status)))?;
                for entry in response.entries {
                    let (Some(volume), Some(status)) = (entry.volume, entry.status) else {
                        continue;
                    };
                    published.insert(volume.volume_id, status.published_node_ids);
                }
                if response.next_token.is_empty() {
                    return Ok(published);
                }
                token = response.next_token;
            }
        })
    }
}
