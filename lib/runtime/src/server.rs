//! The HTTP diagnostics server: `/healthz`, `/healthz/<check>` and the metrics path, on the
//! address Go's `net/http` would listen on for the same flag value.

use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use csi_metrics::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::health::{CheckResult, Health};

/// Errors of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound.
    #[error("failed to listen on {address:?}: {source}")]
    Listen {
        /// The address as given on the command line.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Binds `address` as Go's `net.Listen("tcp", address)` would: `:9808` means every interface
/// (IPv6 and IPv4 where the host has both), `host:port` that host.
pub async fn bind(address: &str) -> Result<TcpListener, Error> {
    let err = |source| Error::Listen {
        address: address.to_string(),
        source,
    };
    if let Some(port) = address.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| {
            err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the port is not a number",
            ))
        })?;
        // Prefer a dual-stack socket; fall back to IPv4 where IPv6 is disabled.
        return match TcpListener::bind(SocketAddr::from(([0u16; 8], port))).await {
            Ok(listener) => Ok(listener),
            Err(_) => TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
                .await
                .map_err(err),
        };
    }
    TcpListener::bind(address).await.map_err(err)
}

/// What one HTTP server serves.
#[derive(Clone, Debug)]
pub struct Routes {
    /// Serve `/healthz` and `/healthz/<name>`.
    pub health: Option<Health>,
    /// Serve the registry at this path.
    pub metrics: Option<(String, Registry)>,
}

#[derive(Clone)]
struct AppState {
    health: Option<Health>,
    metrics: Option<Registry>,
}

/// The router for `routes`.
pub fn router(routes: Routes) -> Router {
    let state = AppState {
        health: routes.health.clone(),
        metrics: routes.metrics.as_ref().map(|(_, r)| r.clone()),
    };
    let mut router = Router::new();
    if routes.health.is_some() {
        router = router
            .route("/healthz", get(healthz_all))
            .route("/healthz/{name}", get(healthz_one));
    }
    if let Some((path, _)) = &routes.metrics {
        router = router.route(path, get(metrics));
    }
    router.with_state(state)
}

async fn healthz_all(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(health) = state.health else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let verbose = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let (status, body) = health.check_all(verbose).await;
    if status != StatusCode::OK {
        tracing::error!(status = status.as_u16(), reason = %body.trim_end(), "Health check failed");
    } else {
        tracing::trace!("Health check succeeded");
    }
    text(status, body)
}

async fn healthz_one(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(health) = state.health else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match health.check_one(&name).await {
        None => text(
            StatusCode::NOT_FOUND,
            format!("no health check named {name:?}"),
        ),
        Some(CheckResult::Ok | CheckResult::OkWithNote(_)) => text(StatusCode::OK, "ok".into()),
        Some(CheckResult::Failed { status, reason }) => text(status, reason),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics {
        Some(registry) => (
            [(header::CONTENT_TYPE, csi_metrics::TEXT_CONTENT_TYPE)],
            registry.gather_text(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then finishes the requests in
/// flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        info!(address = %addr, "ServeMux listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
