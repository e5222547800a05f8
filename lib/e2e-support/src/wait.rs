//! [`wait_until`]: polling with a timeout whose failure message carries the Events of the
//! namespace and whatever the caller describes.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;

/// Polls `check` every 200 ms until it returns `Some`, for at most `timeout`. On timeout the
/// error says what was awaited and includes `diagnostics()` (objects, Events, process logs).
pub async fn wait_until<T, F, Fut, D, DFut>(
    what: &str,
    timeout: Duration,
    mut check: F,
    diagnostics: D,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
    D: FnOnce() -> DFut,
    DFut: Future<Output = String>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}\n--- diagnostics ---\n{}",
                diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
