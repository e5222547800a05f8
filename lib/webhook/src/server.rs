//! HTTPS with a [`CertWatcher`]'s certificate, serving an axum router (HTTP/1.1, which is what
//! the API server's webhook client speaks when the server offers nothing else).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::certs::{CertWatcher, POLL_INTERVAL};

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// The TLS handshake and the request headers must arrive within this time (Go's
    /// `ReadTimeout` where upstream sets one; Go's TLS server has no handshake limit of its own,
    /// we keep one so a silent client cannot hold a connection forever).
    pub read_timeout: Duration,
    /// How often the certificate files are checked for changes.
    pub poll_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            read_timeout: Duration::from_secs(10),
            poll_interval: POLL_INTERVAL,
        }
    }
}

/// The rustls configuration: TLS 1.2 and 1.3 with the ring provider, no client certificates
/// (as upstream), the certificate from `certs` at every handshake.
pub fn tls_config(certs: Arc<CertWatcher>) -> Result<ServerConfig, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `router` over TLS on `listener` until `shutdown`, and watches the certificate files
/// meanwhile (upstream's `StartServer` starts its certificate watcher the same way).
pub async fn serve(
    listener: TcpListener,
    certs: Arc<CertWatcher>,
    router: Router,
    options: ServerOptions,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let config = tls_config(certs.clone()).map_err(io::Error::other)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    info!("Starting certificate watcher");
    tokio::spawn(certs.watch(options.poll_interval, shutdown.clone()));
    if let Ok(address) = listener.local_addr() {
        info!(%address, "Serving HTTPS");
    }
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little, as Go's server does.
                    debug!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // As Go's server does: answers go out at once, not held back for more to send.
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(options.read_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        debug!(%peer, %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(options.read_timeout)
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router));
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        debug!(%peer, %err, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("Received SIGTERM, shutting down"),
        _ = int.recv() => info!("Received SIGINT, shutting down"),
        _ = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}
