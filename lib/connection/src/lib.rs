//! The connection to a CSI driver (our counterpart of csi-lib-utils' `connection` and `rpc`).
//!
//! Owns: parsing the driver address, waiting for the driver's socket, one HTTP/2-multiplexed
//! gRPC channel that every controller of a process shares, noticing when the driver goes away,
//! the `-v=5` log of every call with secrets stripped, the `csi_sidecar_operations_seconds`
//! metric, and the small RPC helpers every sidecar needs ([`rpc`]).
//!
//! Does not own: what to do when the driver goes away. [`Connection::lost`] tells the binary,
//! and the binary decides (exit with a termination message, as upstream sidecars do, or carry on
//! and let the channel reconnect). Nothing here exits the process.

pub mod accessmodes;
pub mod rpc;

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use csi_metrics::CsiOperationMetrics;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};
use tracing::{Level, debug, error, info};

/// How long [`Connection::connect`] waits for the driver by default, as csi-lib-utils does.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest pause between two connection attempts (csi-lib-utils: backoff MaxDelay 1s).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// How often "Still connecting" is logged while waiting.
const STILL_CONNECTING_INTERVAL: Duration = Duration::from_secs(10);

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is not a unix socket address.
    #[error(
        "unsupported CSI address {0:?}: only unix domain sockets are supported (\"unix:///path\", \"unix:/path\" or \"/path\")"
    )]
    UnsupportedAddress(String),
    /// The driver did not answer in time.
    #[error(
        "failed to connect to the CSI driver at {address} within {timeout:?}: {}",
        error_chain(.source)
    )]
    Timeout {
        /// The socket path.
        address: String,
        /// How long we waited.
        timeout: Duration,
        /// The last connection error.
        #[source]
        source: tonic::transport::Error,
    },
    /// An RPC failed.
    #[error("{method} failed: {}", format_status(.status))]
    Rpc {
        /// The full method name.
        method: &'static str,
        /// What the driver (or the transport) said.
        status: Status,
    },
    /// The driver answered with something the CSI spec does not allow.
    #[error("{0}")]
    InvalidResponse(String),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a CSI address into a socket path: `unix:///csi/csi.sock`, `unix:/csi/csi.sock`,
/// `unix:csi.sock` (relative) or a bare path.
pub fn socket_path(address: &str) -> Result<PathBuf> {
    let path = if let Some(rest) = address.strip_prefix("unix://") {
        rest
    } else if let Some(rest) = address.strip_prefix("unix:") {
        rest
    } else if address.contains("://") || address.is_empty() {
        return Err(Error::UnsupportedAddress(address.to_string()));
    } else {
        address
    };
    if path.is_empty() {
        return Err(Error::UnsupportedAddress(address.to_string()));
    }
    Ok(PathBuf::from(path))
}

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// How long to wait for the driver; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Where operation durations go; `None` records nothing.
    pub metrics: Option<CsiOperationMetrics>,
    /// Watch the connection and report its loss through [`Connection::lost`].
    pub watch_loss: bool,
    /// Cut logged responses longer than this many characters (`None`: never).
    pub max_log_length: Option<usize>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            metrics: None,
            watch_loss: false,
            max_log_length: None,
        }
    }
}

/// A gRPC channel to the CSI driver. Cheap to clone; clones share one HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct Connection {
    channel: Channel,
    path: Arc<PathBuf>,
    metrics: Option<CsiOperationMetrics>,
    lost: watch::Receiver<u64>,
    /// Losses counted before the connection was established (failed handshakes).
    lost_baseline: u64,
    max_log_length: Option<usize>,
}

impl Connection {
    /// Connects to the driver at `address`, retrying (at most a second apart) until it answers
    /// or `options.timeout` passes. The HTTP/2 handshake has completed when this returns.
    pub async fn connect(address: &str, options: ConnectOptions) -> Result<Connection> {
        let path = Arc::new(socket_path(address)?);
        let (lost_tx, lost_rx) = watch::channel(0u64);
        let lost_tx = Arc::new(lost_tx);
        let watch_loss = options.watch_loss;
        let connector_path = path.clone();
        let connector = tower::service_fn(move |_: http::Uri| {
            let path = connector_path.clone();
            let lost_tx = lost_tx.clone();
            async move {
                let stream = UnixStream::connect(path.as_path()).await?;
                let on_eof = watch_loss.then_some(lost_tx);
                Ok::<_, io::Error>(TokioIo::new(WatchedStream::new(stream, on_eof)))
            }
        });
        // The URI is required by tonic but never used: the connector dials the socket.
        let endpoint = Endpoint::from_static("http://csi.sock")
            .connect_timeout(MAX_RETRY_DELAY)
            .keep_alive_while_idle(false);

        debug!(address = %path.display(), "Connecting");
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut last_log = Instant::now();
        loop {
            match endpoint.connect_with_connector(connector.clone()).await {
                Ok(channel) => {
                    let lost_baseline = *lost_rx.borrow();
                    return Ok(Connection {
                        channel,
                        path,
                        metrics: options.metrics,
                        lost: lost_rx,
                        lost_baseline,
                        max_log_length: options.max_log_length,
                    });
                }
                Err(err) => {
                    if let Some(timeout) = options.timeout
                        && started.elapsed() >= timeout
                    {
                        return Err(Error::Timeout {
                            address: path.display().to_string(),
                            timeout,
                            source: err,
                        });
                    }
                    if last_log.elapsed() >= STILL_CONNECTING_INTERVAL {
                        info!(address = %path.display(), "Still connecting");
                        last_log = Instant::now();
                    }
                }
            }
            let mut pause = delay;
            if let Some(timeout) = options.timeout {
                pause = pause.min(timeout.saturating_sub(started.elapsed()));
            }
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }

    /// A connection to no driver, for a component that has none (the snapshot-controller runs
    /// in the same runtime as the sidecars but never calls a driver). Nothing is dialled; every
    /// call fails with `Unavailable`, and [`Connection::lost`] never resolves.
    pub fn none() -> Connection {
        let connector = tower::service_fn(|_: http::Uri| async {
            Err::<TokioIo<UnixStream>, io::Error>(io::Error::new(
                io::ErrorKind::NotConnected,
                "this component has no CSI driver",
            ))
        });
        let channel =
            Endpoint::from_static("http://csi.sock").connect_with_connector_lazy(connector);
        // The sender is dropped: `lost` waits forever.
        let (_, lost) = watch::channel(0u64);
        Connection {
            channel,
            path: Arc::new(PathBuf::new()),
            metrics: None,
            lost,
            lost_baseline: 0,
            max_log_length: None,
        }
    }

    /// The socket path this connection dials.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying channel, for clients this crate does not wrap.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The metrics this connection records into.
    pub fn metrics(&self) -> Option<&CsiOperationMetrics> {
        self.metrics.as_ref()
    }

    /// Resolves once the established connection to the driver has broken (the driver exited
    /// or closed the socket), and at once after that. Only meaningful with
    /// [`ConnectOptions::watch_loss`].
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        let baseline = self.lost_baseline;
        if rx.wait_for(|count| *count > baseline).await.is_err() {
            // The channel (and with it the connection) is gone: nothing will ever be lost.
            std::future::pending::<()>().await;
        }
    }

    /// Calls one unary RPC: applies `timeout`, logs the call at `-v=5` with secrets stripped,
    /// and records its duration and status code.
    ///
    /// `call` performs the request on a client built from the channel, e.g.
    /// `|ch, req| async move { IdentityClient::new(ch).probe(req).await }`.
    pub async fn unary<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        timeout: Option<Duration>,
        request: Req,
        call: F,
    ) -> std::result::Result<Resp, Status>
    where
        Req: prost::Message + prost::Name,
        Resp: prost::Message + prost::Name,
        F: FnOnce(Channel, Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<Resp>, Status>>,
    {
        let log = tracing::enabled!(Level::TRACE);
        if log {
            tracing::trace!(
                method,
                request = %csi_proto::sanitize::strip_secrets(&request),
                "GRPC call"
            );
        }
        let mut req = Request::new(request);
        if let Some(timeout) = timeout {
            req.set_timeout(timeout);
        }
        let started = Instant::now();
        let fut = call(self.channel.clone(), req);
        let result = match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, fut).await {
                // The driver (a tonic server, say) may answer "cancelled" when our deadline
                // header expires: from our side the deadline was exceeded, as grpc-go reports.
                Ok(Err(_)) if started.elapsed() >= timeout => Err(deadline_exceeded()),
                Ok(result) => result,
                Err(_) => Err(deadline_exceeded()),
            },
            None => fut.await,
        }
        .map(Response::into_inner);
        let elapsed = started.elapsed();
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        if let Some(metrics) = &self.metrics {
            let code = csi_metrics::grpc_code_name(code as i32);
            // csi-lib-utils' client interceptor: with the `migrated` label, a call not marked
            // by `mark_as_migrated` counts as not migrated.
            if metrics.records_migration() {
                let migrated = if migrated() == Some(true) {
                    "true"
                } else {
                    "false"
                };
                metrics.record_with_labels(
                    method,
                    code,
                    elapsed,
                    &[(csi_metrics::LABEL_MIGRATED, migrated)],
                );
            } else {
                metrics.record(method, code, elapsed);
            }
        }
        if log {
            let response = match &result {
                Ok(resp) => self.cap(csi_proto::sanitize::strip_secrets(resp)),
                Err(_) => "{}".to_string(),
            };
            match &result {
                Ok(_) => tracing::trace!(method, response, "GRPC response"),
                Err(status) => tracing::trace!(
                    method,
                    response,
                    err = %format_status(status),
                    "GRPC response"
                ),
            }
        }
        result
    }

    fn cap(&self, text: String) -> String {
        match self.max_log_length {
            Some(max) if text.chars().count() > max => {
                let cut: String = text.chars().take(max).collect();
                format!("{cut} [response body too large, log capped to {max} chars]")
            }
            _ => text,
        }
    }
}

tokio::task_local! {
    static MIGRATED: bool;
}

/// Runs `call` with its CSI calls marked as being for a volume of CSI migration (`true`: an
/// in-tree volume translated to CSI) or not: the `migrated` label of
/// `csi_sidecar_operations_seconds` when the metrics record it
/// ([`CsiOperationMetrics::enable_migration`]). Upstream's sidecars' `markAsMigrated`, which puts
/// csi-lib-utils' `AdditionalInfo{Migrated}` into the call's context; here the mark holds for
/// every call made while `call` runs (a task-local value), and calls outside it count as not
/// migrated.
pub async fn mark_as_migrated<F: Future>(migrated: bool, call: F) -> F::Output {
    MIGRATED.scope(migrated, call).await
}

/// The mark [`mark_as_migrated`] put on the calls made now, if any.
pub fn migrated() -> Option<bool> {
    MIGRATED.try_with(|migrated| *migrated).ok()
}

/// An error and its causes, `outer: inner: root`, as Go's wrapped errors print (tonic's
/// transport errors say only "transport error" at the top).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("context deadline exceeded")
}

/// Formats a status as grpc-go prints one: `rpc error: code = NotFound desc = no such volume`.
pub fn format_status(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        csi_metrics::grpc_code_name(status.code() as i32),
        status.message()
    )
}

/// A failed CSI call, as the controllers keep and classify it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CsiError {
    /// The driver (or the transport, or our deadline) answered with a gRPC status. Shown as
    /// grpc-go shows one: `rpc error: code = NotFound desc = no such volume`.
    #[error("{}", format_status(.0))]
    Status(Status),
    /// The call failed without a gRPC status (it never reached the driver). Test doubles use
    /// it for upstream's plain Go errors.
    #[error("{0}")]
    Other(String),
}

impl CsiError {
    /// The gRPC code, when there is one (upstream: `status.FromError`).
    pub fn code(&self) -> Option<Code> {
        match self {
            CsiError::Status(status) => Some(status.code()),
            CsiError::Other(_) => None,
        }
    }

    /// Whether the operation has failed for sure and cannot still be in progress in the
    /// driver: a gRPC status with a final code ([`is_final_code`]). An error without a gRPC
    /// status is not final: the call may never have been made.
    pub fn is_final(&self) -> bool {
        self.code().is_some_and(is_final_code)
    }
}

/// Upstream's `isFinalError` on a gRPC code: `false` for `Canceled`, `DeadlineExceeded`,
/// `Unavailable`, `ResourceExhausted` and `Aborted` (a previous call may still be running),
/// `true` for every other code.
pub fn is_final_code(code: Code) -> bool {
    !matches!(
        code,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Unavailable
            | Code::ResourceExhausted
            | Code::Aborted
    )
}

/// A unix stream that reports end-of-file, a read error or its end once: that is how we learn,
/// without sending anything, that the driver went away.
#[derive(Debug)]
struct WatchedStream {
    inner: UnixStream,
    on_eof: Option<Arc<watch::Sender<u64>>>,
    reported: AtomicBool,
}

impl WatchedStream {
    fn new(inner: UnixStream, on_eof: Option<Arc<watch::Sender<u64>>>) -> Self {
        WatchedStream {
            inner,
            on_eof,
            reported: AtomicBool::new(false),
        }
    }

    fn report(&self) {
        if let Some(tx) = &self.on_eof
            && !self.reported.swap(true, Ordering::SeqCst)
        {
            error!("Lost connection to CSI driver");
            tx.send_modify(|count| *count += 1);
        }
    }
}

impl Drop for WatchedStream {
    // The channel drops a connection when the driver closed it in an orderly way (HTTP/2
    // GOAWAY) without our reading end-of-file; the channel itself lives as long as anyone can
    // wait for `lost`, so a drop means the driver went away.
    fn drop(&mut self) {
        self.report();
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.report()
            }
            Poll::Ready(Err(_)) => self.report(),
            _ => {}
        }
        result
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
