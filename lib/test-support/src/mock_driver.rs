//! [`MockCsiDriver`]: an in-process CSI driver on a unix socket, scripted per test.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use anyhow::Context as _;
use csi_proto::csi::v1::{
    self as csi, ControllerServiceCapability, GroupControllerServiceCapability,
    NodeServiceCapability, PluginCapability, controller_server::ControllerServer,
    controller_service_capability, group_controller_server::GroupControllerServer,
    group_controller_service_capability, identity_server::IdentityServer, node_server::NodeServer,
    node_service_capability, plugin_capability,
};
use futures::future::BoxFuture;
use tempfile::TempDir;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{UnixListener, UnixStream},
    sync::Notify,
    task::JoinHandle,
};
use tokio_stream::{StreamExt as _, wrappers::UnixListenerStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Request, Response, Status, transport::server::Connected};

/// The driver name reported by `GetPluginInfo` until [`MockCsiDriver::set_driver_name`].
pub const DEFAULT_DRIVER_NAME: &str = "mock.csi.k8s.io";

/// The vendor version reported by `GetPluginInfo` until
/// [`MockCsiDriver::set_vendor_version`].
pub const DEFAULT_VENDOR_VERSION: &str = "0.1.0";

/// How long [`MockCsiDriver::stop`] lets in-flight calls finish before cutting them off.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What `Probe` answers when no handler is registered for it.
#[derive(Debug, Clone)]
pub enum ProbeReply {
    /// `ready` is set to true.
    Ready,
    /// `ready` is set to false: the driver is still initialising.
    NotReady,
    /// `ready` is left unset, which callers must treat as ready.
    Absent,
    /// The call fails with this status.
    Error(Status),
}

/// One call received by the mock, recorded when it arrived (before any delay or handler).
#[derive(Clone)]
pub struct RecordedCall {
    method: &'static str,
    request_debug: String,
    request: Arc<dyn Any + Send + Sync>,
}

impl RecordedCall {
    /// The full gRPC method name, e.g. `/csi.v1.Identity/Probe`.
    pub fn method(&self) -> &str {
        self.method
    }

    /// The method name without its service, e.g. `Probe`.
    pub fn short_method(&self) -> &str {
        short_name(self.method)
    }

    /// The request as `{:?}` text (secrets included: this is a test double).
    pub fn request_debug(&self) -> &str {
        &self.request_debug
    }

    /// The request itself, if it is a `T`.
    pub fn request<T: Any>(&self) -> Option<&T> {
        self.request.downcast_ref()
    }
}

impl fmt::Debug for RecordedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.request_debug)
    }
}

type AnyBox = Box<dyn Any + Send>;
type Handler = Arc<dyn Fn(AnyBox) -> BoxFuture<'static, Result<AnyBox, Status>> + Send + Sync>;

/// Everything a test can change while the mock runs.
struct State {
    driver_name: String,
    vendor_version: String,
    manifest: HashMap<String, String>,
    plugin_capabilities: Vec<PluginCapability>,
    controller_capabilities: Vec<ControllerServiceCapability>,
    group_controller_capabilities: Vec<GroupControllerServiceCapability>,
    node_capabilities: Vec<NodeServiceCapability>,
    probe: ProbeReply,
    /// By short method name.
    delays: HashMap<String, Duration>,
    /// By short method name.
    handlers: HashMap<String, Handler>,
    calls: Vec<RecordedCall>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            driver_name: DEFAULT_DRIVER_NAME.to_owned(),
            vendor_version: DEFAULT_VENDOR_VERSION.to_owned(),
            manifest: HashMap::new(),
            plugin_capabilities: Vec::new(),
            controller_capabilities: Vec::new(),
            group_controller_capabilities: Vec::new(),
            node_capabilities: Vec::new(),
            probe: ProbeReply::Ready,
            delays: HashMap::new(),
            handlers: HashMap::new(),
            calls: Vec::new(),
        }
    }
}

/// The built-in replies, used when no handler is registered for the method.
impl State {
    fn plugin_info(&self) -> Result<csi::GetPluginInfoResponse, Status> {
        Ok(csi::GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: self.vendor_version.clone(),
            manifest: self.manifest.clone(),
        })
    }

    fn plugin_capabilities(&self) -> Result<csi::GetPluginCapabilitiesResponse, Status> {
        Ok(csi::GetPluginCapabilitiesResponse {
            capabilities: self.plugin_capabilities.clone(),
        })
    }

    fn probe(&self) -> Result<csi::ProbeResponse, Status> {
        let ready = match &self.probe {
            ProbeReply::Ready => Some(true),
            ProbeReply::NotReady => Some(false),
            ProbeReply::Absent => None,
            ProbeReply::Error(status) => return Err(status.clone()),
        };
        Ok(csi::ProbeResponse { ready })
    }

    fn controller_capabilities(&self) -> Result<csi::ControllerGetCapabilitiesResponse, Status> {
        Ok(csi::ControllerGetCapabilitiesResponse {
            capabilities: self.controller_capabilities.clone(),
        })
    }

    fn group_controller_capabilities(
        &self,
    ) -> Result<csi::GroupControllerGetCapabilitiesResponse, Status> {
        Ok(csi::GroupControllerGetCapabilitiesResponse {
            capabilities: self.group_controller_capabilities.clone(),
        })
    }

    fn node_capabilities(&self) -> Result<csi::NodeGetCapabilitiesResponse, Status> {
        Ok(csi::NodeGetCapabilitiesResponse {
            capabilities: self.node_capabilities.clone(),
        })
    }
}

/// State shared by the [`MockCsiDriver`] handle and its gRPC services.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken on every recorded call.
    call_recorded: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The gRPC side: one value serving all four CSI services.
#[derive(Clone)]
struct MockService {
    shared: Arc<Shared>,
}

/// What a built-in reply is made from.
type Builtin<Resp> = fn(&State) -> Result<Resp, Status>;

impl MockService {
    async fn call<Req, Resp>(
        &self,
        method: &'static str,
        request: Request<Req>,
        builtin: Option<Builtin<Resp>>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Clone + fmt::Debug + Send + Sync + 'static,
        Resp: Send + 'static,
    {
        let request = request.into_inner();
        let name = short_name(method);
        let delay = {
            let mut state = self.shared.lock();
            state.calls.push(RecordedCall {
                method,
                request_debug: format!("{request:?}"),
                request: Arc::new(request.clone()),
            });
            state.delays.get(name).copied()
        };
        self.shared.call_recorded.notify_waiters();

        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }

        // Looked up after the delay, so a test can change the reply while a call waits.
        let handler = self.shared.lock().handlers.get(name).cloned();
        let response = match (handler, builtin) {
            (Some(handler), _) => *handler(Box::new(request))
                .await?
                .downcast::<Resp>()
                .map_err(|_| Status::internal(format!("mock handler for {name}: wrong type")))?,
            (None, Some(builtin)) => builtin(&self.shared.lock())?,
            (None, None) => {
                return Err(Status::unimplemented(format!(
                    "mock CSI driver: no handler for {method}"
                )));
            }
        };
        Ok(Response::new(response))
    }
}

/// The part after the last `/`: `Probe` for both `Probe` and `/csi.v1.Identity/Probe`.
fn short_name(method: &str) -> &str {
    method.rsplit('/').next().unwrap_or(method)
}

/// A CSI method the mock serves, with the types a handler for it must use.
struct MethodInfo {
    request: TypeId,
    response: TypeId,
    request_name: &'static str,
    response_name: &'static str,
}

/// Implements the generated service traits by forwarding to [`MockService::call`], and builds
/// [`method_info`] from the same list, so the two cannot disagree.
macro_rules! csi_services {
    (@builtin) => { None };
    (@builtin $builtin:ident) => { Some(State::$builtin) };
    ($(
        $service:ident: $service_trait:path {
            $( $rpc:ident => $method:ident($req:ident) -> $resp:ident $(= $builtin:ident)?; )*
        }
    )*) => {
        $(
            #[tonic::async_trait]
            impl $service_trait for MockService {
                $(
                    async fn $rpc(
                        &self,
                        request: Request<csi::$req>,
                    ) -> Result<Response<csi::$resp>, Status> {
                        self.call(
                            concat!("/csi.v1.", stringify!($service), "/", stringify!($method)),
                            request,
                            csi_services!(@builtin $($builtin)?),
                        )
                        .await
                    }
                )*
            }
        )*

        /// The served method with this short name, if any.
        fn method_info(name: &str) -> Option<MethodInfo> {
            match name {
                $($(
                    stringify!($method) => Some(MethodInfo {
                        request: TypeId::of::<csi::$req>(),
                        response: TypeId::of::<csi::$resp>(),
                        request_name: stringify!($req),
                        response_name: stringify!($resp),
                    }),
                )*)*
                _ => None,
            }
        }
    };
}

csi_services! {
    Identity: csi::identity_server::Identity {
        get_plugin_info => GetPluginInfo(GetPluginInfoRequest) -> GetPluginInfoResponse
            = plugin_info;
        get_plugin_capabilities => GetPluginCapabilities(GetPluginCapabilitiesRequest)
            -> GetPluginCapabilitiesResponse = plugin_capabilities;
        probe => Probe(ProbeRequest) -> ProbeResponse = probe;
    }
    Controller: csi::controller_server::Controller {
        create_volume => CreateVolume(CreateVolumeRequest) -> CreateVolumeResponse;
        delete_volume => DeleteVolume(DeleteVolumeRequest) -> DeleteVolumeResponse;
        controller_publish_volume => ControllerPublishVolume(ControllerPublishVolumeRequest)
            -> ControllerPublishVolumeResponse;
        controller_unpublish_volume => ControllerUnpublishVolume(ControllerUnpublishVolumeRequest)
            -> ControllerUnpublishVolumeResponse;
        validate_volume_capabilities => ValidateVolumeCapabilities(
            ValidateVolumeCapabilitiesRequest) -> ValidateVolumeCapabilitiesResponse;
        list_volumes => ListVolumes(ListVolumesRequest) -> ListVolumesResponse;
        get_capacity => GetCapacity(GetCapacityRequest) -> GetCapacityResponse;
        controller_get_capabilities => ControllerGetCapabilities(ControllerGetCapabilitiesRequest)
            -> ControllerGetCapabilitiesResponse = controller_capabilities;
        create_snapshot => CreateSnapshot(CreateSnapshotRequest) -> CreateSnapshotResponse;
        delete_snapshot => DeleteSnapshot(DeleteSnapshotRequest) -> DeleteSnapshotResponse;
        list_snapshots => ListSnapshots(ListSnapshotsRequest) -> ListSnapshotsResponse;
        get_snapshot => GetSnapshot(GetSnapshotRequest) -> GetSnapshotResponse;
        controller_expand_volume => ControllerExpandVolume(ControllerExpandVolumeRequest)
            -> ControllerExpandVolumeResponse;
        controller_get_volume => ControllerGetVolume(ControllerGetVolumeRequest)
            -> ControllerGetVolumeResponse;
        controller_modify_volume => ControllerModifyVolume(ControllerModifyVolumeRequest)
            -> ControllerModifyVolumeResponse;
        controller_list_volume_health => ControllerListVolumeHealth(
            ControllerListVolumeHealthRequest) -> ControllerListVolumeHealthResponse;
        controller_get_volume_health => ControllerGetVolumeHealth(
            ControllerGetVolumeHealthRequest) -> ControllerGetVolumeHealthResponse;
    }
    GroupController: csi::group_controller_server::GroupController {
        group_controller_get_capabilities => GroupControllerGetCapabilities(
            GroupControllerGetCapabilitiesRequest) -> GroupControllerGetCapabilitiesResponse
            = group_controller_capabilities;
        create_volume_group_snapshot => CreateVolumeGroupSnapshot(
            CreateVolumeGroupSnapshotRequest) -> CreateVolumeGroupSnapshotResponse;
        delete_volume_group_snapshot => DeleteVolumeGroupSnapshot(
            DeleteVolumeGroupSnapshotRequest) -> DeleteVolumeGroupSnapshotResponse;
        get_volume_group_snapshot => GetVolumeGroupSnapshot(GetVolumeGroupSnapshotRequest)
            -> GetVolumeGroupSnapshotResponse;
    }
    Node: csi::node_server::Node {
        node_stage_volume => NodeStageVolume(NodeStageVolumeRequest) -> NodeStageVolumeResponse;
        node_unstage_volume => NodeUnstageVolume(NodeUnstageVolumeRequest)
            -> NodeUnstageVolumeResponse;
        node_publish_volume => NodePublishVolume(NodePublishVolumeRequest)
            -> NodePublishVolumeResponse;
        node_unpublish_volume => NodeUnpublishVolume(NodeUnpublishVolumeRequest)
            -> NodeUnpublishVolumeResponse;
        node_get_volume_stats => NodeGetVolumeStats(NodeGetVolumeStatsRequest)
            -> NodeGetVolumeStatsResponse;
        node_expand_volume => NodeExpandVolume(NodeExpandVolumeRequest)
            -> NodeExpandVolumeResponse;
        node_get_capabilities => NodeGetCapabilities(NodeGetCapabilitiesRequest)
            -> NodeGetCapabilitiesResponse = node_capabilities;
        node_get_info => NodeGetInfo(NodeGetInfoRequest) -> NodeGetInfoResponse;
        node_get_volume_health => NodeGetVolumeHealth(NodeGetVolumeHealthRequest)
            -> NodeGetVolumeHealthResponse;
        node_get_storage_health => NodeGetStorageHealth(NodeGetStorageHealthRequest)
            -> NodeGetStorageHealthResponse;
    }
}

/// A running gRPC server task.
struct Running {
    shutdown: CancellationToken,
    /// Severs every accepted connection, as the death of a driver process would.
    sever: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// An accepted connection that [`MockCsiDriver::stop`] can cut: a stopped server would
/// otherwise keep serving connections it accepted earlier, which a dead driver cannot.
struct SeverableStream {
    inner: Option<UnixStream>,
    severed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl SeverableStream {
    fn new(inner: UnixStream, sever: &CancellationToken) -> Self {
        SeverableStream {
            inner: Some(inner),
            severed: Box::pin(sever.clone().cancelled_owned()),
        }
    }

    /// Drops the socket once severed (the peer sees end-of-file); true if it is gone.
    fn poll_cut(&mut self, cx: &mut Context<'_>) -> bool {
        if self.inner.is_some() && self.severed.as_mut().poll(cx).is_ready() {
            self.inner = None;
        }
        self.inner.is_none()
    }
}

impl AsyncRead for SeverableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.poll_cut(cx) {
            return Poll::Ready(Ok(()));
        }
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for SeverableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.poll_cut(cx) {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_write(cx, buf),
            None => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl Connected for SeverableStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// A programmable CSI driver serving Identity, Controller, Node and GroupController on a unix
/// socket, in-process.
///
/// Every setting can be changed while it runs and applies to the next call. Replies:
///
/// - `GetPluginInfo`, `GetPluginCapabilities`, `Probe` and the three `*GetCapabilities` answer
///   from the settings ([`set_driver_name`](Self::set_driver_name), [`set_probe`](Self::set_probe),
///   ...);
/// - any method answers through a handler registered with [`handle`](Self::handle) or
///   [`handle_async`](Self::handle_async), which takes precedence over the settings;
/// - every other method fails with `Unimplemented`.
///
/// Every call is recorded on arrival ([`calls`](Self::calls)); a delay per method
/// ([`set_delay`](Self::set_delay)) is applied before the reply. [`stop`](Self::stop) simulates
/// a dead driver; [`start_again`](Self::start_again) brings it back on the same socket.
///
/// ```no_run
/// # async fn example() -> anyhow::Result<()> {
/// use csi_proto::csi::v1::{ControllerPublishVolumeRequest, ControllerPublishVolumeResponse};
/// use csi_test_support::MockCsiDriver;
///
/// let mock = MockCsiDriver::start().await?;
/// mock.handle("ControllerPublishVolume", |req: ControllerPublishVolumeRequest| {
///     Ok(ControllerPublishVolumeResponse {
///         publish_context: [("device".to_string(), format!("/dev/{}", req.volume_id))].into(),
///     })
/// });
/// // ... point the sidecar under test at mock.endpoint() ...
/// assert_eq!(mock.calls_to("ControllerPublishVolume").len(), 1);
/// # Ok(())
/// # }
/// ```
pub struct MockCsiDriver {
    shared: Arc<Shared>,
    socket_path: PathBuf,
    running: Mutex<Option<Running>>,
    /// Holds the socket's directory when the mock made it; removed on drop.
    _dir: Option<TempDir>,
}

impl fmt::Debug for MockCsiDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockCsiDriver")
            .field("socket_path", &self.socket_path)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl MockCsiDriver {
    /// Starts a mock on `csi.sock` in a new temp dir (removed when the mock is dropped).
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temp dir for the mock CSI socket")?;
        let socket_path = dir.path().join("csi.sock");
        Self::start_inner(socket_path, Some(dir)).await
    }

    /// Starts a mock listening on `socket_path`, creating its parent dirs and replacing a stale
    /// socket there. The socket is removed when the mock stops or is dropped.
    pub async fn start_at(socket_path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        Self::start_inner(socket_path.into(), None).await
    }

    async fn start_inner(socket_path: PathBuf, dir: Option<TempDir>) -> anyhow::Result<Self> {
        let mock = Self {
            shared: Arc::default(),
            socket_path,
            running: Mutex::new(None),
            _dir: dir,
        };
        mock.start_again().await?;
        Ok(mock)
    }

    /// Starts serving again on the same socket after [`stop`](Self::stop), keeping settings,
    /// handlers and recorded calls. Does nothing if it is running.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let path = &self.socket_path;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        remove_socket(path)?;
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;

        let service = MockService {
            shared: Arc::clone(&self.shared),
        };
        let shutdown = CancellationToken::new();
        let sever = CancellationToken::new();
        let incoming = {
            let sever = sever.clone();
            UnixListenerStream::new(listener)
                .map(move |conn| conn.map(|stream| SeverableStream::new(stream, &sever)))
        };
        let server = tonic::transport::Server::builder()
            .add_service(IdentityServer::new(service.clone()))
            .add_service(ControllerServer::new(service.clone()))
            .add_service(GroupControllerServer::new(service.clone()))
            .add_service(NodeServer::new(service))
            .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
        let task = tokio::spawn(server);
        *self.running_lock() = Some(Running {
            shutdown,
            sever,
            task,
        });
        Ok(())
    }

    /// Stops serving and removes the socket, as if the driver died. In-flight calls get a
    /// second to finish. Settings, handlers and recorded calls are kept.
    pub async fn stop(&self) -> anyhow::Result<()> {
        let running = self.running_lock().take();
        if let Some(Running {
            shutdown,
            sever,
            mut task,
        }) = running
        {
            shutdown.cancel();
            let finished = tokio::time::timeout(STOP_GRACE, &mut task).await;
            // Whatever the server did with its open connections, a dead driver has none.
            sever.cancel();
            match finished {
                Ok(result) => result
                    .context("mock CSI server task failed")?
                    .context("mock CSI server failed")?,
                Err(_) => task.abort(),
            }
        }
        remove_socket(&self.socket_path)
    }

    /// Stops, then starts again on the same socket.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.stop().await?;
        self.start_again().await
    }

    /// Whether the server is serving.
    pub fn is_running(&self) -> bool {
        self.running_lock()
            .as_ref()
            .is_some_and(|running| !running.task.is_finished())
    }

    /// The unix socket the mock listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The socket as a CSI endpoint, `unix:///path/to/csi.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket_path.display())
    }

    fn running_lock(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // Settings.

    /// Sets the name returned by `GetPluginInfo` (default [`DEFAULT_DRIVER_NAME`]).
    pub fn set_driver_name(&self, name: impl Into<String>) {
        self.shared.lock().driver_name = name.into();
    }

    /// Sets the vendor version returned by `GetPluginInfo` (default [`DEFAULT_VENDOR_VERSION`]).
    pub fn set_vendor_version(&self, version: impl Into<String>) {
        self.shared.lock().vendor_version = version.into();
    }

    /// Sets the manifest returned by `GetPluginInfo` (default empty).
    pub fn set_manifest(&self, manifest: impl IntoIterator<Item = (String, String)>) {
        self.shared.lock().manifest = manifest.into_iter().collect();
    }

    /// Sets the capabilities returned by `GetPluginCapabilities` (default none); see
    /// [`plugin_service_capability`] and [`volume_expansion_capability`].
    pub fn set_plugin_capabilities(
        &self,
        capabilities: impl IntoIterator<Item = PluginCapability>,
    ) {
        self.shared.lock().plugin_capabilities = capabilities.into_iter().collect();
    }

    /// Sets the RPCs returned by `ControllerGetCapabilities` (default none).
    pub fn set_controller_capabilities(
        &self,
        rpcs: impl IntoIterator<Item = controller_service_capability::rpc::Type>,
    ) {
        use controller_service_capability::{Rpc, Type};
        self.shared.lock().controller_capabilities = rpcs
            .into_iter()
            .map(|rpc| ControllerServiceCapability {
                r#type: Some(Type::Rpc(Rpc { r#type: rpc.into() })),
            })
            .collect();
    }

    /// Sets the RPCs returned by `GroupControllerGetCapabilities` (default none).
    pub fn set_group_controller_capabilities(
        &self,
        rpcs: impl IntoIterator<Item = group_controller_service_capability::rpc::Type>,
    ) {
        use group_controller_service_capability::{Rpc, Type};
        self.shared.lock().group_controller_capabilities = rpcs
            .into_iter()
            .map(|rpc| GroupControllerServiceCapability {
                r#type: Some(Type::Rpc(Rpc { r#type: rpc.into() })),
            })
            .collect();
    }

    /// Sets the RPCs returned by `NodeGetCapabilities` (default none).
    pub fn set_node_capabilities(
        &self,
        rpcs: impl IntoIterator<Item = node_service_capability::rpc::Type>,
    ) {
        use node_service_capability::{Rpc, Type};
        self.shared.lock().node_capabilities = rpcs
            .into_iter()
            .map(|rpc| NodeServiceCapability {
                r#type: Some(Type::Rpc(Rpc { r#type: rpc.into() })),
            })
            .collect();
    }

    /// Sets what `Probe` answers (default [`ProbeReply::Ready`]).
    pub fn set_probe(&self, reply: ProbeReply) {
        self.shared.lock().probe = reply;
    }

    /// Delays every reply of `method` (short, `Probe`, or full, `/csi.v1.Identity/Probe`) by
    /// `delay`; `Duration::ZERO` removes the delay.
    pub fn set_delay(&self, method: &str, delay: Duration) {
        let name = short_name(method).to_owned();
        let mut state = self.shared.lock();
        if delay.is_zero() {
            state.delays.remove(&name);
        } else {
            state.delays.insert(name, delay);
        }
    }

    /// Answers `method` (short or full name) with `handler` from now on, replacing any earlier
    /// handler and the built-in reply.
    ///
    /// # Panics
    ///
    /// If `method` is not a CSI method the mock serves, or `Req`/`Resp` are not its request and
    /// response types, so that a typo fails the test at once instead of answering
    /// `Unimplemented`.
    pub fn handle<Req, Resp, F>(&self, method: &str, handler: F)
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        F: Fn(Req) -> Result<Resp, Status> + Send + Sync + 'static,
    {
        self.handle_async(method, move |req| std::future::ready(handler(req)));
    }

    /// Like [`handle`](Self::handle), for a handler that needs to wait (e.g. for a signal from
    /// the test).
    ///
    /// # Panics
    ///
    /// As [`handle`](Self::handle).
    pub fn handle_async<Req, Resp, F, Fut>(&self, method: &str, handler: F)
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    {
        let name = short_name(method);
        let Some(info) = method_info(name) else {
            panic!("MockCsiDriver::handle: {method:?} is not a CSI method served by the mock");
        };
        assert!(
            info.request == TypeId::of::<Req>() && info.response == TypeId::of::<Resp>(),
            "MockCsiDriver::handle: a handler for {name} must take {} and return {}, not {} and {}",
            info.request_name,
            info.response_name,
            std::any::type_name::<Req>(),
            std::any::type_name::<Resp>(),
        );
        let handler: Handler = Arc::new(move |request: AnyBox| {
            let request = *request
                .downcast::<Req>()
                .expect("request type checked at registration");
            let reply = handler(request);
            Box::pin(async move { reply.await.map(|response| Box::new(response) as AnyBox) })
        });
        self.shared.lock().handlers.insert(name.to_owned(), handler);
    }

    /// Removes the handler for `method`, going back to the built-in reply or `Unimplemented`.
    pub fn remove_handler(&self, method: &str) {
        self.shared.lock().handlers.remove(short_name(method));
    }

    // Recorded calls.

    /// Every call received so far, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.lock().calls.clone()
    }

    /// The calls of `method` (short or full name), oldest first.
    pub fn calls_to(&self, method: &str) -> Vec<RecordedCall> {
        let name = short_name(method);
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|call| call.short_method() == name)
            .cloned()
            .collect()
    }

    /// The full method names of all calls so far, oldest first.
    pub fn call_methods(&self) -> Vec<String> {
        self.shared
            .lock()
            .calls
            .iter()
            .map(|call| call.method.to_owned())
            .collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.shared.lock().calls.clear();
    }

    /// Waits until at least `count` calls of `method` (short or full name) were received, and
    /// returns them; fails after `timeout`.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedCall>> {
        let wait = async {
            loop {
                let recorded = self.shared.call_recorded.notified();
                tokio::pin!(recorded);
                // Registered before looking, so a call arriving in between is not missed.
                recorded.as_mut().enable();
                let calls = self.calls_to(method);
                if calls.len() >= count {
                    return calls;
                }
                recorded.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.with_context(|| {
            format!(
                "waiting for {count} call(s) of {method}; got {:?}",
                self.call_methods()
            )
        })
    }
}

impl Drop for MockCsiDriver {
    fn drop(&mut self) {
        if let Some(running) = self.running_lock().take() {
            running.shutdown.cancel();
            running.sever.cancel();
            running.task.abort();
        }
        let _ = remove_socket(&self.socket_path);
    }
}

/// Removes the socket file if there is one.
fn remove_socket(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A plugin capability naming a service, e.g. `CONTROLLER_SERVICE`.
pub fn plugin_service_capability(service: plugin_capability::service::Type) -> PluginCapability {
    PluginCapability {
        r#type: Some(plugin_capability::Type::Service(
            plugin_capability::Service {
                r#type: service.into(),
            },
        )),
    }
}

/// A plugin capability for volume expansion, e.g. `ONLINE`.
pub fn volume_expansion_capability(
    expansion: plugin_capability::volume_expansion::Type,
) -> PluginCapability {
    PluginCapability {
        r#type: Some(plugin_capability::Type::VolumeExpansion(
            plugin_capability::VolumeExpansion {
                r#type: expansion.into(),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use csi::{
        controller_client::ControllerClient, group_controller_client::GroupControllerClient,
        identity_client::IdentityClient, node_client::NodeClient,
    };
    use tonic::{Code, transport::Channel};

    use super::*;
    use crate::unix_channel;

    async fn connect(mock: &MockCsiDriver) -> Channel {
        unix_channel(mock.socket_path()).await.unwrap()
    }

    #[tokio::test]
    async fn get_plugin_info_defaults_and_settings() {
        let mock = MockCsiDriver::start().await.unwrap();
        assert!(mock.endpoint().starts_with("unix:///"));
        assert!(mock.endpoint().ends_with("/csi.sock"));
        let mut identity = IdentityClient::new(connect(&mock).await);

        let info = identity
            .get_plugin_info(csi::GetPluginInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.name, DEFAULT_DRIVER_NAME);
        assert_eq!(info.vendor_version, DEFAULT_VENDOR_VERSION);

        mock.set_driver_name("other.csi.example.com");
        mock.set_vendor_version("v9");
        mock.set_manifest([("k".to_string(), "v".to_string())]);
        let info = identity
            .get_plugin_info(csi::GetPluginInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.name, "other.csi.example.com");
        assert_eq!(info.vendor_version, "v9");
        assert_eq!(info.manifest["k"], "v");
    }

    #[tokio::test]
    async fn probe_variants() {
        let mock = MockCsiDriver::start().await.unwrap();
        let mut identity = IdentityClient::new(connect(&mock).await);
        let mut probe = async || identity.probe(csi::ProbeRequest {}).await;

        assert_eq!(probe().await.unwrap().into_inner().ready, Some(true));
        mock.set_probe(ProbeReply::NotReady);
        assert_eq!(probe().await.unwrap().into_inner().ready, Some(false));
        mock.set_probe(ProbeReply::Absent);
        assert_eq!(probe().await.unwrap().into_inner().ready, None);
        mock.set_probe(ProbeReply::Error(Status::unavailable("warming up")));
        let err = probe().await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.message(), "warming up");
    }

    #[tokio::test]
    async fn capabilities() {
        use controller_service_capability::rpc::Type as C;
        use group_controller_service_capability::rpc::Type as G;
        use node_service_capability::rpc::Type as N;
        use plugin_capability::{service::Type as S, volume_expansion::Type as E};

        let mock = MockCsiDriver::start().await.unwrap();
        let channel = connect(&mock).await;
        mock.set_plugin_capabilities([
            plugin_service_capability(S::ControllerService),
            volume_expansion_capability(E::Online),
        ]);
        mock.set_controller_capabilities([C::PublishUnpublishVolume, C::ListVolumes]);
        mock.set_group_controller_capabilities([G::CreateDeleteGetVolumeGroupSnapshot]);
        mock.set_node_capabilities([N::StageUnstageVolume]);

        let plugin = IdentityClient::new(channel.clone())
            .get_plugin_capabilities(csi::GetPluginCapabilitiesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            plugin.capabilities,
            [
                plugin_service_capability(S::ControllerService),
                volume_expansion_capability(E::Online)
            ]
        );

        let controller = ControllerClient::new(channel.clone())
            .controller_get_capabilities(csi::ControllerGetCapabilitiesRequest {})
            .await
            .unwrap()
            .into_inner();
        let rpcs: Vec<i32> = controller
            .capabilities
            .iter()
            .filter_map(|c| {
                let controller_service_capability::Type::Rpc(rpc) = c.r#type.as_ref()?;
                Some(rpc.r#type)
            })
            .collect();
        assert_eq!(
            rpcs,
            [C::PublishUnpublishVolume as i32, C::ListVolumes as i32]
        );

        let group = GroupControllerClient::new(channel.clone())
            .group_controller_get_capabilities(csi::GroupControllerGetCapabilitiesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(group.capabilities.len(), 1);

        let node = NodeClient::new(channel)
            .node_get_capabilities(csi::NodeGetCapabilitiesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(node.capabilities.len(), 1);
    }

    #[tokio::test]
    async fn unhandled_methods_are_unimplemented() {
        let mock = MockCsiDriver::start().await.unwrap();
        let channel = connect(&mock).await;
        let err = ControllerClient::new(channel.clone())
            .create_volume(csi::CreateVolumeRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        let err = NodeClient::new(channel)
            .node_get_info(csi::NodeGetInfoRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    }

    #[tokio::test]
    async fn serves_the_v1_13_health_rpcs_through_handlers() {
        let mock = MockCsiDriver::start().await.unwrap();
        let channel = connect(&mock).await;
        let err = ControllerClient::new(channel.clone())
            .controller_list_volume_health(csi::ControllerListVolumeHealthRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        mock.handle(
            "ControllerGetVolumeHealth",
            |req: csi::ControllerGetVolumeHealthRequest| {
                Ok(csi::ControllerGetVolumeHealthResponse {
                    volume_health: Some(csi::VolumeHealth {
                        volume_id: req.volume_id,
                        health_statuses: vec![csi::volume_health::VolumeHealthEntry {
                            status: csi::VolumeHealthErrorType::DataLoss as i32,
                            reason: "DiskLost".to_string(),
                            message: String::new(),
                        }],
                    }),
                })
            },
        );
        let health = ControllerClient::new(channel.clone())
            .controller_get_volume_health(csi::ControllerGetVolumeHealthRequest {
                volume_id: "v1".to_string(),
                secrets: HashMap::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .volume_health
            .unwrap();
        assert_eq!(health.volume_id, "v1");
        assert_eq!(health.health_statuses[0].reason, "DiskLost");
        mock.handle(
            "NodeGetVolumeHealth",
            |req: csi::NodeGetVolumeHealthRequest| {
                Ok(csi::NodeGetVolumeHealthResponse {
                    volume_health: Some(csi::VolumeHealth {
                        volume_id: req.volume_id,
                        health_statuses: Vec::new(),
                    }),
                })
            },
        );
        NodeClient::new(channel)
            .node_get_volume_health(csi::NodeGetVolumeHealthRequest::default())
            .await
            .unwrap();
        assert_eq!(mock.calls_to("ControllerListVolumeHealth").len(), 1);
        assert_eq!(mock.calls_to("NodeGetVolumeHealth").len(), 1);
    }

    #[tokio::test]
    async fn handler_answers_and_can_be_replaced() {
        let mock = MockCsiDriver::start().await.unwrap();
        let mut controller = ControllerClient::new(connect(&mock).await);
        mock.handle(
            "ControllerPublishVolume",
            |req: csi::ControllerPublishVolumeRequest| {
                Ok(csi::ControllerPublishVolumeResponse {
                    publish_context: [("node".to_string(), req.node_id)].into(),
                })
            },
        );
        let publish = |node: &str| csi::ControllerPublishVolumeRequest {
            volume_id: "vol-1".into(),
            node_id: node.into(),
            ..Default::default()
        };
        let resp = controller
            .controller_publish_volume(publish("node-a"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.publish_context["node"], "node-a");

        mock.handle(
            "/csi.v1.Controller/ControllerPublishVolume",
            |_: csi::ControllerPublishVolumeRequest| -> Result<csi::ControllerPublishVolumeResponse, Status> {
                Err(Status::not_found("no such volume"))
            },
        );
        let err = controller
            .controller_publish_volume(publish("node-b"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);

        mock.remove_handler("ControllerPublishVolume");
        let err = controller
            .controller_publish_volume(publish("node-c"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    }

    #[tokio::test]
    async fn handler_overrides_builtin_reply() {
        let mock = MockCsiDriver::start().await.unwrap();
        mock.handle("GetPluginInfo", |_: csi::GetPluginInfoRequest| {
            Err::<csi::GetPluginInfoResponse, _>(Status::internal("broken driver"))
        });
        let err = IdentityClient::new(connect(&mock).await)
            .get_plugin_info(csi::GetPluginInfoRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }

    #[tokio::test]
    async fn async_handler_waits_for_the_test() {
        let mock = MockCsiDriver::start().await.unwrap();
        let release = Arc::new(Notify::new());
        {
            let release = Arc::clone(&release);
            mock.handle_async("NodeGetInfo", move |_: csi::NodeGetInfoRequest| {
                let release = Arc::clone(&release);
                async move {
                    release.notified().await;
                    Ok(csi::NodeGetInfoResponse {
                        node_id: "node-1".into(),
                        ..Default::default()
                    })
                }
            });
        }
        let mut node = NodeClient::new(connect(&mock).await);
        let call =
            tokio::spawn(async move { node.node_get_info(csi::NodeGetInfoRequest {}).await });
        mock.wait_for_calls("NodeGetInfo", 1, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!call.is_finished());
        release.notify_one();
        let resp = call.await.unwrap().unwrap().into_inner();
        assert_eq!(resp.node_id, "node-1");
    }

    #[test]
    #[should_panic(expected = "not a CSI method")]
    fn handler_for_unknown_method_panics() {
        let mock = unstarted_mock();
        mock.handle(
            "ControllerPublish",
            |_: csi::ControllerPublishVolumeRequest| {
                Ok(csi::ControllerPublishVolumeResponse::default())
            },
        );
    }

    #[test]
    #[should_panic(expected = "must take ControllerPublishVolumeRequest")]
    fn handler_with_wrong_types_panics() {
        let mock = unstarted_mock();
        mock.handle("ControllerPublishVolume", |_: csi::CreateVolumeRequest| {
            Ok(csi::CreateVolumeResponse::default())
        });
    }

    /// A mock that is never started, for tests of registration only.
    fn unstarted_mock() -> MockCsiDriver {
        MockCsiDriver {
            shared: Arc::default(),
            socket_path: PathBuf::from("/nonexistent/csi.sock"),
            running: Mutex::new(None),
            _dir: None,
        }
    }

    #[tokio::test]
    async fn delay_per_method() {
        let mock = MockCsiDriver::start().await.unwrap();
        let mut identity = IdentityClient::new(connect(&mock).await);
        let delay = Duration::from_millis(400);
        mock.set_delay("/csi.v1.Identity/Probe", delay);

        let started = Instant::now();
        identity.probe(csi::ProbeRequest {}).await.unwrap();
        assert!(started.elapsed() >= delay);

        // Other methods are not delayed.
        let started = Instant::now();
        identity
            .get_plugin_info(csi::GetPluginInfoRequest {})
            .await
            .unwrap();
        assert!(started.elapsed() < delay);

        // A client deadline shorter than the delay fails the call.
        let mut request = Request::new(csi::ProbeRequest {});
        request.set_timeout(Duration::from_millis(20));
        let err = identity.probe(request).await.unwrap_err();
        assert!(
            matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
            "{err:?}"
        );

        mock.set_delay("Probe", Duration::ZERO);
        let started = Instant::now();
        identity.probe(csi::ProbeRequest {}).await.unwrap();
        assert!(started.elapsed() < delay);
    }

    #[tokio::test]
    async fn calls_are_recorded() {
        let mock = MockCsiDriver::start().await.unwrap();
        let channel = connect(&mock).await;
        IdentityClient::new(channel.clone())
            .probe(csi::ProbeRequest {})
            .await
            .unwrap();
        let _ = ControllerClient::new(channel)
            .delete_volume(csi::DeleteVolumeRequest {
                volume_id: "vol-9".into(),
                secrets: [("user".to_string(), "admin".to_string())].into(),
            })
            .await;

        assert_eq!(
            mock.call_methods(),
            ["/csi.v1.Identity/Probe", "/csi.v1.Controller/DeleteVolume"]
        );
        let calls = mock.calls_to("DeleteVolume");
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(call.method(), "/csi.v1.Controller/DeleteVolume");
        assert_eq!(call.short_method(), "DeleteVolume");
        assert!(call.request_debug().contains("vol-9"), "{call:?}");
        let req = call.request::<csi::DeleteVolumeRequest>().unwrap();
        assert_eq!(req.secrets["user"], "admin");
        assert!(call.request::<csi::ProbeRequest>().is_none());

        mock.clear_calls();
        assert!(mock.calls().is_empty());
    }

    #[tokio::test]
    async fn stop_removes_socket_and_start_again_serves() {
        let mock = MockCsiDriver::start().await.unwrap();
        let path = mock.socket_path().to_owned();
        let mut identity = IdentityClient::new(connect(&mock).await);
        identity.probe(csi::ProbeRequest {}).await.unwrap();

        mock.stop().await.unwrap();
        assert!(!mock.is_running());
        assert!(!path.exists());
        assert!(identity.probe(csi::ProbeRequest {}).await.is_err());
        assert!(unix_channel(&path).await.is_err());

        mock.set_driver_name("back.csi.k8s.io");
        mock.start_again().await.unwrap();
        assert!(mock.is_running());
        let info = IdentityClient::new(connect(&mock).await)
            .get_plugin_info(csi::GetPluginInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.name, "back.csi.k8s.io");

        mock.restart().await.unwrap();
        IdentityClient::new(connect(&mock).await)
            .probe(csi::ProbeRequest {})
            .await
            .unwrap();
        // Probe before stop, probe after restart; the failed one never reached the server.
        assert_eq!(mock.calls_to("Probe").len(), 2);
    }

    #[tokio::test]
    async fn start_at_replaces_stale_socket_and_drop_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugins/mock/csi.sock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"stale").unwrap();

        let mock = MockCsiDriver::start_at(&path).await.unwrap();
        IdentityClient::new(connect(&mock).await)
            .probe(csi::ProbeRequest {})
            .await
            .unwrap();
        drop(mock);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn stop_does_not_wait_forever_for_a_stuck_call() {
        let mock = MockCsiDriver::start().await.unwrap();
        mock.set_delay("Probe", Duration::from_secs(3600));
        let mut identity = IdentityClient::new(connect(&mock).await);
        let stuck = tokio::spawn(async move { identity.probe(csi::ProbeRequest {}).await });
        mock.wait_for_calls("Probe", 1, Duration::from_secs(5))
            .await
            .unwrap();
        tokio::time::timeout(STOP_GRACE * 3, mock.stop())
            .await
            .expect("stop is bounded")
            .unwrap();
        assert!(!mock.socket_path().exists());
        stuck.abort();
    }

    #[tokio::test]
    async fn wait_for_calls_times_out_with_the_calls_seen() {
        let mock = MockCsiDriver::start().await.unwrap();
        let err = mock
            .wait_for_calls("Probe", 1, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Probe"), "{err}");
    }
}
