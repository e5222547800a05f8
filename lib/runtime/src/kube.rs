//! The Kubernetes part of the runtime, for components that talk to the API server: the common
//! flags csi-lib-utils' `standardflags` gives every control-plane sidecar, the process's
//! clients and shared watch caches ([`KubeShared`]), and leader election.
//!
//! Leader election follows upstream: a standalone sidecar holds its upstream lease
//! (`external-attacher-leader-<driver>`), its caches and controllers start only while it leads,
//! and losing the lease ends the process (exit 1, so the kubelet restarts it). `csi-sidecars`
//! holds one lease for the whole process (`csi-sidecars-<driver>`) or, with
//! `--leader-election-per-controller`, each controller's upstream lease: run that way while
//! replacing separate sidecars by `csi-sidecars`, so an old sidecar and the new process never
//! both lead the same work.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use csi_kube::{Caches, ClientOptions, Recorder};
use csi_leader_election::{Config as ElectionConfig, LeaderElector, LeaderState};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::flags::{Flag, FlagView, Kind};

/// csi-lib-utils' common flags of the control-plane sidecars (`standardflags`), with their
/// upstream defaults.
pub const FLAGS: &[Flag] = &[
    Flag::new(
        "kubeconfig",
        Kind::String,
        "",
        "Absolute path to the kubeconfig file. Required only when running out of cluster.",
    )
    .process(),
    Flag::new(
        "csi-address",
        Kind::String,
        "/run/csi/socket",
        "Address of the CSI driver socket.",
    )
    .process(),
    Flag::new(
        "leader-election",
        Kind::Bool,
        "false",
        "Enable leader election.",
    )
    .process(),
    Flag::new(
        "leader-election-namespace",
        Kind::String,
        "",
        "Namespace where the leader election resource lives. Defaults to the pod namespace if not set.",
    )
    .process(),
    Flag::new(
        "leader-election-lease-duration",
        Kind::Duration,
        "15s",
        "Duration, in seconds, that non-leader candidates will wait to force acquire leadership.",
    )
    .process(),
    Flag::new(
        "leader-election-renew-deadline",
        Kind::Duration,
        "10s",
        "Duration, in seconds, that the acting leader will retry refreshing leadership before giving up.",
    )
    .process(),
    Flag::new(
        "leader-election-retry-period",
        Kind::Duration,
        "5s",
        "Duration, in seconds, the LeaderElector clients should wait between tries of actions.",
    )
    .process(),
    Flag::new(
        "leader-election-identity",
        Kind::String,
        "",
        "The holder identity in the lease. Default: the host name (the pod name in Kubernetes), as upstream. Set it when several replicas share a host name.",
    )
    .process(),
    Flag::new(
        "leader-election-labels",
        Kind::MapStringString,
        "",
        "List of labels to add to lease when given replica becomes leader. Formatted as a comma seperated list of key:value labels. Example: 'my-label:my-value,my-second-label:my-second-value'",
    )
    .process(),
    Flag::new(
        "kube-api-qps",
        Kind::Float,
        "5",
        "QPS to use while communicating with the kubernetes apiserver.",
    )
    .shared(),
    Flag::new(
        "kube-api-burst",
        Kind::Int,
        "10",
        "Burst to use while communicating with the kubernetes apiserver.",
    )
    .shared(),
    Flag::new(
        "http-endpoint",
        Kind::String,
        "",
        "The TCP network address where the HTTP server for diagnostics, including metrics and leader election health check, will listen (example: `:8080`). The default is empty string, which means the server is disabled. Only one of `--metrics-address` and `--http-endpoint` can be set.",
    )
    .process(),
    Flag::new(
        "metrics-address",
        Kind::String,
        "",
        "(deprecated) The TCP network address where the prometheus metrics endpoint will listen (example: `:8080`). The default is empty string, which means metrics endpoint is disabled. Only one of `--metrics-address` and `--http-endpoint` can be set.",
    )
    .process(),
    Flag::new(
        "metrics-path",
        Kind::String,
        "/metrics",
        "The HTTP path where prometheus metrics will be exposed. Default is `/metrics`.",
    )
    .process(),
];

/// What a component that talks to the API server declares.
#[derive(Clone, Copy, Debug)]
pub struct KubeUse {
    /// Its upstream lease name for a driver, before sanitizing
    /// (`|d| format!("external-attacher-leader-{d}")`).
    pub lease_name: fn(&str) -> String,
    /// Its upstream binary name, for the user agent (`csi-attacher`).
    pub user_agent: &'static str,
    /// Whether the `KUBECONFIG` environment variable overrides `--kubeconfig`, as in
    /// external-provisioner's `main`.
    pub kubeconfig_env: bool,
}

/// The API-server side of [`crate::Shared`].
pub struct KubeShared {
    config: kube::Config,
    /// The process's client (its own QPS budget): watches use it.
    pub client: kube::Client,
    /// One watch per (type, selector) for every controller.
    pub caches: Caches,
    user_agent_version: String,
    host: String,
    watches: Mutex<Option<JoinSet<()>>>,
}

impl std::fmt::Debug for KubeShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeShared")
            .field("caches", &self.caches)
            .finish_non_exhaustive()
    }
}

/// Errors setting up the Kubernetes side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client could not be built.
    #[error(transparent)]
    Client(#[from] csi_kube::client::Error),
    /// `--master` is not a URL.
    #[error("invalid --master: {0}")]
    Master(String),
    /// The leader election settings are invalid.
    #[error("invalid leader election settings: {0}")]
    LeaderElection(#[from] csi_leader_election::Error),
}

impl KubeShared {
    /// Loads `--kubeconfig` (or the in-cluster config) and builds the process client.
    /// With `kubeconfig_env`, a non-empty `KUBECONFIG` environment variable wins over
    /// `--kubeconfig`; a process flag `--master`, when set, replaces the API server URL.
    pub async fn new(
        process: &FlagView,
        binary: &str,
        kubeconfig_env: bool,
    ) -> Result<KubeShared, Error> {
        let mut kubeconfig = process.string("kubeconfig");
        if kubeconfig_env
            && let Ok(env) = std::env::var("KUBECONFIG")
            && !env.is_empty()
        {
            kubeconfig = env;
        }
        let path = (!kubeconfig.is_empty()).then(|| PathBuf::from(kubeconfig));
        let mut config = csi_kube::load_config(path.as_ref()).await?;
        if process.defines("master") && !process.string("master").is_empty() {
            config.cluster_url = process
                .string("master")
                .parse()
                .map_err(|e| Error::Master(format!("{e}")))?;
        }
        let version = crate::VERSION.to_string();
        let client = csi_kube::client(
            config.clone(),
            &client_options(process, &format!("{binary}/{version}")),
        )?;
        Ok(KubeShared {
            config,
            caches: Caches::new(client.clone()),
            client,
            user_agent_version: version,
            host: csi_leader_election::default_identity().unwrap_or_default(),
            watches: Mutex::new(None),
        })
    }

    /// A client with the budget of `flags` (`--<controller>-kube-api-qps`, else the global
    /// value, else the upstream default) and the component's user agent.
    pub fn client_for(&self, flags: &FlagView, user_agent: &str) -> Result<kube::Client, Error> {
        self.client_for_clientsets(flags, user_agent, &[])
    }

    /// [`KubeShared::client_for`] where upstream's component builds more than one clientset
    /// from its flags: the API groups of each entry of `separate` get a budget of their own.
    pub fn client_for_clientsets(
        &self,
        flags: &FlagView,
        user_agent: &str,
        separate: &'static [&'static [&'static str]],
    ) -> Result<kube::Client, Error> {
        let agent = format!("{user_agent}/{}", self.user_agent_version);
        let options = ClientOptions {
            separate_budgets: separate,
            ..client_options(flags, &agent)
        };
        Ok(csi_kube::client(self.config.clone(), &options)?)
    }

    /// A client with a budget of its own (`qps`, `burst`), whatever the flags say: for work
    /// upstream gives a separate client (the provisioner's capacity objects).
    pub fn client_with_budget(
        &self,
        qps: f64,
        burst: u32,
        user_agent: &str,
    ) -> Result<kube::Client, Error> {
        let options = ClientOptions {
            kubeconfig: None,
            qps,
            burst,
            user_agent: format!("{user_agent}/{}", self.user_agent_version),
            separate_budgets: &[],
        };
        Ok(csi_kube::client(self.config.clone(), &options)?)
    }

    /// An Event recorder for `component`.
    pub fn recorder(&self, client: kube::Client, component: impl Into<String>) -> Recorder {
        Recorder::new(client, component, self.host.clone())
    }

    /// Opens the declared watches (the first call does) and waits until every cache is
    /// complete.
    pub async fn start_caches(&self, shutdown: &CancellationToken) {
        {
            let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
            if watches.is_none()
                && let Ok(set) = self.caches.start(shutdown)
            {
                tracing::info!(watches = ?self.caches.describe(), "Started shared watches");
                *watches = Some(set);
            }
        }
        self.caches.wait_for_sync().await;
    }
}

fn client_options(flags: &FlagView, user_agent: &str) -> ClientOptions {
    ClientOptions {
        kubeconfig: None,
        qps: flags.float("kube-api-qps"),
        burst: u32::try_from(flags.int("kube-api-burst")).unwrap_or(0),
        user_agent: user_agent.to_string(),
        separate_budgets: &[],
    }
}

/// Builds an elector for `lease` (upstream's name, before sanitizing) from the process's
/// leader election flags; `metrics_name` is the `name` label of its metrics (upstream leaves
/// it empty). Its LeaderElection Events go to the Lease through `client`.
pub fn elector(
    client: kube::Client,
    process: &FlagView,
    lease: &str,
    metrics_name: &str,
    release_on_cancel: bool,
) -> Result<LeaderElector, Error> {
    // Components with a flag set of their own (snapshot-controller) may lack the identity and
    // labels flags: then the host name and no labels, as upstream.
    let flag = if process.defines("leader-election-identity") {
        process.string("leader-election-identity")
    } else {
        String::new()
    };
    // As given: the elector sanitizes it for the Lease, its Events name it as it is.
    let identity = if flag.is_empty() {
        csi_leader_election::hostname()?
    } else {
        flag
    };
    let namespace =
        csi_leader_election::default_namespace(&process.string("leader-election-namespace"));
    let mut config = ElectionConfig::new(lease, namespace, identity);
    config.lease_duration = process.duration("leader-election-lease-duration");
    config.renew_deadline = process.duration("leader-election-renew-deadline");
    config.retry_period = process.duration("leader-election-retry-period");
    if process.defines("leader-election-labels") {
        config.labels = process
            .map_string_string("leader-election-labels")
            .into_iter()
            .collect::<BTreeMap<_, _>>();
    }
    config.release_on_cancel = release_on_cancel;
    config.name = metrics_name.to_string();
    Ok(LeaderElector::new(client, config)?)
}

/// The `/healthz/leader-election` check over every elector of the process.
pub fn leader_health(
    states: Arc<Vec<LeaderState>>,
) -> impl Fn() -> std::future::Ready<crate::CheckResult> {
    move || {
        let failures: Vec<String> = states.iter().filter_map(|s| s.check().err()).collect();
        std::future::ready(if failures.is_empty() {
            crate::CheckResult::Ok
        } else {
            crate::CheckResult::failed(format!("internal server error: {}", failures.join("; ")))
        })
    }
}
