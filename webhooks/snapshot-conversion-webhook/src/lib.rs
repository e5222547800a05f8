//! snapshot-conversion-webhook: converts VolumeGroupSnapshotContents between
//! `groupsnapshot.storage.k8s.io/v1beta1` and `v1beta2` for the API server, as external-snapshotter
//! v8.7.0's `cmd/snapshot-conversion-webhook` does. It is needed only while clients still use
//! v1beta1 group snapshots and the CRD is set to `conversion.strategy: Webhook` (the v8.6+
//! CRDs ship with `None`).
//!
//! HTTPS on `--port` with the certificate of `--tls-cert-file`/`--tls-private-key-file`,
//! reloaded when the files change; `/convert` answers ConversionReviews (see [`review`]),
//! `/readyz` answers `ok`.

#![deny(missing_docs)]

pub mod convert;
pub mod review;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::any;
use csi_sidecar_runtime::flags::{Flag, FlagSet, Kind};
use csi_webhook::{CertWatcher, ServerOptions};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// The binary's name.
pub const BINARY: &str = "snapshot-conversion-webhook";

/// The upstream repository and release this binary mirrors (also in
/// `release-tools/upstream-versions.toml`).
pub const UPSTREAM: (&str, &str) = ("kubernetes-csi/external-snapshotter", "v8.7.0");

/// Upstream's flags (v8.7.0), names, types and defaults unchanged; the logging flags of
/// component-base come on top (see [`flag_set`]).
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "tls-cert-file",
        Kind::String,
        "",
        "File containing the x509 Certificate for HTTPS. (CA cert, if any, concatenated after server cert). Required.",
    ),
    Flag::new(
        "tls-private-key-file",
        Kind::String,
        "",
        "File containing the x509 private key matching --tls-cert-file. Required.",
    ),
    Flag::new(
        "port",
        Kind::Int,
        "443",
        "Secure port that the webhook listens on",
    ),
];

/// Go's `klog.Fatal` exit code.
const FATAL: i32 = 255;

/// The command line.
pub fn flag_set() -> FlagSet {
    csi_webhook::cli::flag_set(
        BINARY,
        "Converts VolumeGroupSnapshotContents between groupsnapshot.storage.k8s.io/v1beta1 and v1beta2 (CRD conversion webhook)",
        FLAGS,
        &csi_webhook::cli::component_base_logging_flags(),
    )
}

/// The HTTP routes: `/convert` and `/readyz`. Any method is accepted, as Go's mux does; bodies
/// are not limited in size (a review of a long list can be large, and upstream reads it whole).
pub fn router() -> Router {
    Router::new()
        .route("/readyz", any(|| async { "ok" }))
        .route("/convert", any(review::serve))
        .layer(DefaultBodyLimit::disable())
}

/// The process: parse, check, serve until SIGTERM or SIGINT. Returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let view = match csi_webhook::cli::parse_and_init_logging(&flag_set(), args) {
        Ok(view) => view,
        Err(code) => return code,
    };
    info!("Starting conversion webhook server");
    let cert_file = view.string("tls-cert-file");
    let key_file = view.string("tls-private-key-file");
    if cert_file.is_empty() {
        error!("--tls-cert-file must be specified");
        return FATAL;
    }
    if key_file.is_empty() {
        error!("--tls-private-key-file must be specified");
        return FATAL;
    }
    let port = view.int("port");
    let certs = match CertWatcher::new(&cert_file, &key_file) {
        Ok(certs) => Arc::new(certs),
        Err(err) => {
            error!("failed to initialize new cert watcher: {err}");
            return FATAL;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            error!(%err, "Failed to start the async runtime");
            return 1;
        }
    };
    runtime.block_on(async move {
        let listener = match csi_sidecar_runtime::server::bind(&format!(":{port}")).await {
            Ok(listener) => listener,
            Err(err) => {
                error!("server stopped: {err}");
                return FATAL;
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(csi_webhook::server::cancel_on_signal(shutdown.clone()));
        let options = ServerOptions {
            read_timeout: Duration::from_secs(10),
            ..ServerOptions::default()
        };
        match csi_webhook::serve(listener, certs, router(), options, shutdown).await {
            Ok(()) => 0,
            Err(err) => {
                error!("server stopped: {err}");
                FATAL
            }
        }
    })
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
