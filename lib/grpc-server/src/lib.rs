//! gRPC servers on unix sockets that every client can call.
//!
//! Owns: turning an accepted unix socket into a connection tonic can serve and that accepts the
//! HTTP/2 `:authority` any gRPC client sends over a unix socket ([`authority`]). Every gRPC server
//! the product serves on a unix socket (today: the kubelet plugin-registration socket) takes its
//! connections from [`incoming`], so a foreign client — the kubelet's grpc-go, grpc-python,
//! grpc-java, grpcurl — is served the way the Go servers serve it.
//!
//! Does not own: creating, securing or removing the socket file (that is the caller's, which knows
//! its path rules), or the services themselves.

pub mod authority;

use std::io;

use futures::{Stream, StreamExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Connected;

pub use authority::LenientAuthority;

/// The connections accepted on `listener`, each wrapped so that `h2` accepts any `:authority`;
/// hand it to tonic's `serve_with_incoming` / `serve_with_incoming_shutdown`.
pub fn incoming(
    listener: UnixListener,
) -> impl Stream<Item = io::Result<LenientAuthority<UnixStream>>> + Send + 'static {
    UnixListenerStream::new(listener).map(|conn| conn.map(LenientAuthority::new))
}

impl<S: Connected> Connected for LenientAuthority<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}
