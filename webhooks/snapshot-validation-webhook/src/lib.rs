//! snapshot-validation-webhook: the validating admission webhook of external-snapshotter v8.1
//! (`cmd/snapshot-validation-webhook`, removed upstream in v8.2 once the CRDs carried CEL rules),
//! for clusters whose snapshot CRDs predate those rules.
//!
//! It refuses a second default class for a driver ([`classes`]: VolumeSnapshotClasses, and
//! VolumeGroupSnapshotClasses with `--enable-volume-group-snapshot-webhook`), and holds
//! snapshots, contents and group snapshots to the rules the v8.7.0 CRDs state in CEL
//! ([`rules`]), which upstream's webhook held itself until v8.0. The classes are read from one
//! watch each, synced before the server opens, as upstream's informers are.
//!
//! HTTPS on `--port` with the certificate of `--tls-cert-file`/`--tls-private-key-file`,
//! reloaded when the files change; `/volumesnapshot`, `/volumegroupsnapshot` (with the flag
//! above) and `/readyz`.

#![deny(missing_docs)]

pub mod classes;
pub mod review;
pub mod rules;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::any;
use csi_crd_types::group_snapshot::v1::VolumeGroupSnapshotClass;
use csi_crd_types::snapshot::v1::VolumeSnapshotClass;
use csi_kube::cache::{Caches, Selector};
use csi_sidecar_runtime::flags::{Flag, FlagSet, Kind};
use csi_webhook::{CertWatcher, ServerOptions};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::classes::{ClassLister, FixedClasses, GroupSnapshotClasses, SnapshotClasses};
use crate::review::{Admitter, Endpoint};

/// The binary's name.
pub const BINARY: &str = "snapshot-validation-webhook";

/// The upstream repository and release this binary mirrors (also in
/// `release-tools/upstream-versions.toml`).
pub const UPSTREAM: (&str, &str) = ("kubernetes-csi/external-snapshotter", "v8.1.1");

/// Upstream's flags (v8.1.1), names, types and defaults unchanged; klog's flags come on top.
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "enable-volume-group-snapshot-webhook",
        Kind::Bool,
        "false",
        "Enables webhook for VolumeGroupSnapshotClass.",
    ),
    Flag::new(
        "kubeconfig",
        Kind::String,
        "",
        "kubeconfig file to use for volumesnapshotclasses",
    ),
    Flag::new(
        "port",
        Kind::Int,
        "443",
        "Secure port that the webhook listens on",
    ),
    Flag::new(
        "prevent-volume-mode-conversion",
        Kind::Bool,
        "true",
        "Prevents an unauthorised user from modifying the volume mode when creating a PVC from an existing VolumeSnapshot.",
    ),
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
];

/// Go's `klog.Fatal` exit code.
const FATAL: i32 = 255;

/// The command line.
pub fn flag_set() -> FlagSet {
    csi_webhook::cli::flag_set(
        BINARY,
        "Starts a HTTPS server, uses ValidatingAdmissionWebhook to validate VolumeSnapshots, VolumeSnapshotContents, their classes and the group snapshot kinds. After deploying it, register it with a ValidatingWebhookConfiguration.",
        FLAGS,
        csi_webhook::cli::KLOG_FLAGS,
    )
}

#[derive(Clone, Debug)]
struct Routes {
    admitter: Admitter,
}

async fn volume_snapshot(
    State(routes): State<Routes>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    review::serve(&routes.admitter, Endpoint::Snapshot, &headers, &body)
}

async fn volume_group_snapshot(
    State(routes): State<Routes>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    review::serve(&routes.admitter, Endpoint::GroupSnapshot, &headers, &body)
}

/// The HTTP routes: `/volumesnapshot`, `/volumegroupsnapshot` when `group_snapshots`, and
/// `/readyz`.
pub fn router(admitter: Admitter, group_snapshots: bool) -> Router {
    let mut router = Router::new()
        .route("/volumesnapshot", any(volume_snapshot))
        .route("/readyz", any(|| async { "ok" }));
    if group_snapshots {
        router = router.route("/volumegroupsnapshot", any(volume_group_snapshot));
    }
    router
        .layer(DefaultBodyLimit::disable())
        .with_state(Routes { admitter })
}

/// The process: parse, check, sync the class caches, serve until SIGTERM or SIGINT. Returns
/// the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let view = match csi_webhook::cli::parse_and_init_logging(&flag_set(), args) {
        Ok(view) => view,
        Err(code) => return code,
    };
    let missing: Vec<String> = ["tls-cert-file", "tls-private-key-file"]
        .iter()
        .filter(|f| !view.is_set(f))
        .map(|f| format!("{f:?}"))
        .collect();
    if !missing.is_empty() {
        // cobra's wording for flags marked required.
        eprintln!("Error: required flag(s) {} not set", missing.join(", "));
        return 1;
    }
    let certs = match CertWatcher::new(
        view.string("tls-cert-file"),
        view.string("tls-private-key-file"),
    ) {
        Ok(certs) => Arc::new(certs),
        Err(err) => {
            error!("failed to initialize new cert watcher: {err}");
            return FATAL;
        }
    };
    let kubeconfig = Some(view.string("kubeconfig"))
        .filter(|k| !k.is_empty())
        .map(PathBuf::from);
    let port = view.int("port");
    let group_snapshots = view.bool("enable-volume-group-snapshot-webhook");
    let prevent_volume_mode_conversion = view.bool("prevent-volume-mode-conversion");
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
        let config = match csi_kube::client::load_config(kubeconfig.as_ref()).await {
            Ok(config) => config,
            Err(err) => {
                error!("{err}");
                return 1;
            }
        };
        let options = csi_kube::client::ClientOptions {
            kubeconfig: kubeconfig.clone(),
            // client-go's defaults: upstream sets no rate of its own.
            qps: 5.0,
            burst: 10,
            user_agent: format!("{BINARY}/v{}", env!("CARGO_PKG_VERSION")),
            separate_budgets: &[],
        };
        let client = match csi_kube::client::client(config, &options) {
            Ok(client) => client,
            Err(err) => {
                error!("Error building snapshot clientset: {err}");
                return 1;
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(csi_webhook::server::cancel_on_signal(shutdown.clone()));
        let caches = Caches::new(client);
        let snapshot_classes = match caches.store::<VolumeSnapshotClass>(&Selector::all()) {
            Ok(store) => Arc::new(SnapshotClasses(store)) as Arc<dyn ClassLister>,
            Err(err) => {
                error!("{err}");
                return 1;
            }
        };
        let group_snapshot_classes = if group_snapshots {
            match caches.store::<VolumeGroupSnapshotClass>(&Selector::all()) {
                Ok(store) => Arc::new(GroupSnapshotClasses(store)) as Arc<dyn ClassLister>,
                Err(err) => {
                    error!("{err}");
                    return 1;
                }
            }
        } else {
            Arc::new(FixedClasses::default()) as Arc<dyn ClassLister>
        };
        let _watches = match caches.start(&shutdown) {
            Ok(watches) => watches,
            Err(err) => {
                error!("{err}");
                return 1;
            }
        };
        tokio::select! {
            _ = caches.wait_for_sync() => {}
            _ = shutdown.cancelled() => return 0,
        }
        let admitter = Admitter {
            snapshot_classes,
            group_snapshot_classes,
            prevent_volume_mode_conversion,
        };
        let listener = match csi_sidecar_runtime::server::bind(&format!(":{port}")).await {
            Ok(listener) => listener,
            Err(err) => {
                error!("server stopped: {err}");
                return FATAL;
            }
        };
        info!("Starting webhook server");
        match csi_webhook::serve(
            listener,
            certs,
            router(admitter, group_snapshots),
            ServerOptions::default(),
            shutdown,
        )
        .await
        {
            Ok(()) => 0,
            Err(err) => {
                error!("server stopped: {err}");
                FATAL
            }
        }
    })
}

#[cfg(test)]
mod tests;
