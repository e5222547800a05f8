//! Test doubles for the sidecars' tests, all in-process and on unix sockets in temp dirs:
//!
//! - [`MockCsiDriver`]: a programmable CSI driver (Identity, Controller, Node, GroupController)
//!   whose replies, delays and per-RPC handlers can be changed while it runs, and which records
//!   every call.
//! - [`FakeKubelet`]: the kubelet plugin watcher's side of plugin registration.
//! - [`fake_api::FakeApi`]: an in-memory Kubernetes API (watch cache and server) for
//!   controllers' table tests, recording every call.
//! - [`Secrets`]: an in-memory `SecretGetter` for code that reads Secrets.
//! - [`FakeRecorder`]: an in-memory `EventRecorder`, the Events controllers record.
//! - [`fuzz`]: the configuration every property test of the fuzzing suite shares.
//! - [`wait_for_path`] and [`unix_channel`]: the small helpers both of them need.
//! - [`ChildProcess`] and [`http_get`]: our binaries as real processes (killed when dropped),
//!   and a minimal HTTP client for their health and metrics endpoints.
//!
//! Not for production code: errors are `anyhow`, misuse panics.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

mod events;
pub mod fake_api;
mod fake_kubelet;
pub mod fuzz;
mod mock_driver;
mod process;
mod secrets;

pub use events::{FakeRecorder, RecordedEvent};
pub use fake_kubelet::{FakeKubelet, SUPPORTED_CSI_VERSION};
pub use mock_driver::{
    DEFAULT_DRIVER_NAME, DEFAULT_VENDOR_VERSION, MockCsiDriver, ProbeReply, RecordedCall,
    plugin_service_capability, volume_expansion_capability,
};
pub use process::{ChildProcess, free_port, http_get, run_to_exit, wait_for_http, wait_for_status};
pub use secrets::Secrets;

/// How often [`wait_for_path`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Waits until `path` exists, checking every 10 ms, for at most `timeout`.
pub async fn wait_for_path(path: impl AsRef<Path>, timeout: Duration) -> anyhow::Result<()> {
    let path = path.as_ref();
    tokio::time::timeout(timeout, async {
        while !tokio::fs::try_exists(path).await.unwrap_or(false) {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await
    .with_context(|| format!("{} did not appear within {timeout:?}", path.display()))
}

/// Connects a gRPC channel to the unix socket at `path` (the connection is made now, so this
/// fails if nothing listens there).
pub async fn unix_channel(path: impl Into<PathBuf>) -> anyhow::Result<Channel> {
    let path = path.into();
    let display = path.display().to_string();
    // The URI is required by tonic but unused: the connector below ignores it.
    Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .with_context(|| format!("connecting to {display}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_for_path_sees_a_late_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late");
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tokio::fs::write(path, b"").await.unwrap();
            })
        };
        wait_for_path(&path, Duration::from_secs(5)).await.unwrap();
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn wait_for_path_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let err = wait_for_path(dir.path().join("never"), Duration::from_millis(30))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not appear"), "{err}");
    }

    #[tokio::test]
    async fn unix_channel_fails_without_listener() {
        let dir = tempfile::tempdir().unwrap();
        assert!(unix_channel(dir.path().join("none.sock")).await.is_err());
    }
}
