//! [`FaultProxy`]: a gRPC pass-through on a unix socket, put between a sidecar and a CSI
//! driver's socket, that fails or holds back a share of the calls of chosen methods — a driver
//! that errors or hangs now and then, for the reliability tests.
//!
//! Which calls get a fault is decided by a [`FaultPlan`]: per method, a percentage and a fault
//! ([`Fault::Fail`] with a gRPC status code, or [`Fault::Hang`] for a duration). The draw of
//! the `n`-th call of a method depends only on the plan's seed, the method and `n`, so a run
//! is repeatable. Every call is recorded ([`ProxyCall`]) with its time, its fault and its
//! request message, so a test can check retries and their backoff.
//!
//! The proxy speaks HTTP/2 on both sides and copies each unary call whole (headers, message,
//! trailers); it does not decode the messages it passes on.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// What happens to a call the plan picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer at once with this gRPC status code; the driver never sees the call.
    Fail(tonic::Code),
    /// Hold the call for this long, then pass it to the driver and answer with the driver's
    /// reply. The call reaches the driver even when the caller gave up meanwhile, as a slow
    /// driver finishes what it started.
    Hang(Duration),
}

/// One rule of a [`FaultPlan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// The method's short name (`CreateVolume`), or `*` for every method.
    pub method: String,
    /// The share of its calls that get the fault, 0 to 100.
    pub percent: u8,
    /// The fault.
    pub fault: Fault,
}

/// Which calls get which fault; see the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Makes the draws repeatable.
    pub seed: u64,
    /// Tried in order; the first rule of the method whose draw hits applies.
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    /// A plan with no faults yet.
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            rules: Vec::new(),
        }
    }

    /// `percent` % of the calls of `method` fail with `code`.
    pub fn fail(mut self, method: &str, percent: u8, code: tonic::Code) -> FaultPlan {
        self.rules.push(FaultRule {
            method: method.to_string(),
            percent,
            fault: Fault::Fail(code),
        });
        self
    }

    /// `percent` % of the calls of `method` are held for `duration` first.
    pub fn hang(mut self, method: &str, percent: u8, duration: Duration) -> FaultPlan {
        self.rules.push(FaultRule {
            method: method.to_string(),
            percent,
            fault: Fault::Hang(duration),
        });
        self
    }

    /// The fault of the `n`-th call (from 0) of `method` (short name), if any.
    pub fn decide(&self, method: &str, n: u64) -> Option<Fault> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.method == method || rule.method == "*")
            .find(|(index, rule)| {
                let draw = splitmix64(
                    self.seed
                        ^ fnv1a(method)
                        ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        ^ (*index as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
                );
                draw % 100 < u64::from(rule.percent)
            })
            .map(|(_, rule)| rule.fault)
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One call that reached the proxy.
#[derive(Clone, Debug)]
pub struct ProxyCall {
    /// The full method, `/csi.v1.Controller/CreateVolume`.
    pub method: String,
    /// When it arrived.
    pub at: Instant,
    /// The fault it got, if any.
    pub fault: Option<Fault>,
    /// The request message (protobuf, without the gRPC frame header).
    pub request: Bytes,
}

impl ProxyCall {
    /// The method's last path element, `CreateVolume`.
    pub fn short_method(&self) -> &str {
        self.method.rsplit('/').next().unwrap_or(&self.method)
    }

    /// The request decoded as `M`.
    pub fn decode<M: prost::Message + Default>(&self) -> anyhow::Result<M> {
        M::decode(self.request.clone()).with_context(|| format!("decoding {}", self.method))
    }
}

/// A running fault-injecting proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    socket: PathBuf,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
struct State {
    upstream: PathBuf,
    plan: Mutex<FaultPlan>,
    counters: Mutex<BTreeMap<String, u64>>,
    calls: Mutex<Vec<ProxyCall>>,
    sender: tokio::sync::Mutex<Option<SendRequest<Buffered>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on a new socket and passes calls on to the driver at `upstream` (connected on
    /// the first call, and again after the driver went away) as `plan` says.
    pub async fn start(upstream: &Path, plan: FaultPlan) -> anyhow::Result<FaultProxy> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("faults.sock");
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("listening on {}", socket.display()))?;
        let state = Arc::new(State {
            upstream: upstream.to_path_buf(),
            plan: Mutex::new(plan),
            counters: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
            sender: tokio::sync::Mutex::new(None),
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(FaultProxy {
            socket,
            state,
            task,
            _dir: dir,
        })
    }

    /// The proxy's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix:///...` for `--csi-address`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Replaces the plan (the call counters go on).
    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.state.plan) = plan;
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<ProxyCall> {
        lock(&self.state.calls).clone()
    }

    /// The calls of `method` (short name) so far.
    pub fn calls_to(&self, method: &str) -> Vec<ProxyCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.short_method() == method)
            .collect()
    }

    /// How many calls of `method` (short name) got a fault.
    pub fn faults_of(&self, method: &str) -> usize {
        self.calls_to(method)
            .iter()
            .filter(|c| c.fault.is_some())
            .count()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve(listener: UnixListener, state: Arc<State>) {
    // Dropped with this task: the connections end with the proxy.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(state.handle(request).await) }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap the finished ones.
        while connections.try_join_next().is_some() {}
    }
}

impl State {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Buffered> {
        let method = request.uri().path().to_string();
        let (parts, body) = request.into_parts();
        let (message, _) = match collect(body).await {
            Ok(collected) => collected,
            Err(err) => {
                return status_response(tonic::Code::Internal, &format!("fault proxy: {err}"));
            }
        };
        let short = method.rsplit('/').next().unwrap_or(&method).to_string();
        let n = {
            let mut counters = lock(&self.counters);
            let counter = counters.entry(short.clone()).or_insert(0);
            *counter += 1;
            *counter - 1
        };
        let fault = lock(&self.plan).decide(&short, n);
        lock(&self.calls).push(ProxyCall {
            method,
            at: Instant::now(),
            fault,
            request: message
                .get(5..)
                .map(Bytes::copy_from_slice)
                .unwrap_or_default(),
        });
        match fault {
            Some(Fault::Fail(code)) => status_response(code, "injected by the fault proxy"),
            Some(Fault::Hang(duration)) => {
                let state = self.clone();
                let held = tokio::spawn(async move {
                    tokio::time::sleep(duration).await;
                    state.forward(parts, message).await
                });
                held.await.unwrap_or_else(|err| {
                    status_response(tonic::Code::Internal, &format!("fault proxy: {err}"))
                })
            }
            None => self.forward(parts, message).await,
        }
    }

    /// Passes the call on to the driver and returns its whole reply.
    async fn forward(&self, mut parts: http::request::Parts, message: Bytes) -> Response<Buffered> {
        let path = parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default();
        parts.uri = match Uri::try_from(format!("http://localhost{path}")) {
            Ok(uri) => uri,
            Err(err) => {
                return status_response(tonic::Code::Internal, &format!("fault proxy: {err}"));
            }
        };
        let request = Request::from_parts(parts, Buffered::new(message, None));
        let reply = async {
            let mut sender = self.sender().await?;
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let (message, trailers) = collect(body).await?;
            anyhow::Ok(Response::from_parts(
                parts,
                Buffered::new(message, trailers),
            ))
        }
        .await;
        match reply {
            Ok(response) => response,
            Err(err) => {
                *self.sender.lock().await = None;
                status_response(
                    tonic::Code::Unavailable,
                    &format!("fault proxy: the driver is unreachable: {err:#}"),
                )
            }
        }
    }

    /// A connection to the driver: the current one, or a new one if it closed.
    async fn sender(&self) -> anyhow::Result<SendRequest<Buffered>> {
        let mut current = self.sender.lock().await;
        if let Some(sender) = current.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let stream = UnixStream::connect(&self.upstream)
            .await
            .with_context(|| format!("connecting to {}", self.upstream.display()))?;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        *current = Some(sender.clone());
        Ok(sender)
    }
}

/// A trailers-only gRPC reply with `code` and `message`.
fn status_response(code: tonic::Code, message: &str) -> Response<Buffered> {
    let mut response = Response::new(Buffered::default());
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code as i32));
    // grpc-message is percent-encoded; keep to characters that need no encoding.
    let safe: String = message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&safe) {
        headers.insert("grpc-message", value);
    }
    response
}

/// Reads a body to its end: its data, and its trailers if it has any.
async fn collect(mut body: Incoming) -> Result<(Bytes, Option<HeaderMap>), hyper::Error> {
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        match frame?.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = Some(map);
                }
            }
        }
    }
    Ok((Bytes::from(data), trailers))
}

/// A whole body held in memory: its data, then its trailers.
#[derive(Debug, Default)]
pub struct Buffered {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Buffered {
    fn new(data: Bytes, trailers: Option<HeaderMap>) -> Buffered {
        Buffered {
            data: (!data.is_empty()).then_some(data),
            trailers,
        }
    }
}

impl Body for Buffered {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
#[path = "faults_tests.rs"]
mod tests;
