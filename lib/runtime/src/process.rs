//! The one way a sidecar process runs, standalone or aggregated:
//!
//! 1. parse the flags (Go syntax) — a bad flag is exit code 2 before anything starts;
//! 2. `--version`, logging, deprecation warnings, flag validation (exit 1 on conflicts);
//! 3. connect to the driver once, create the metrics registry and the shutdown token;
//! 4. initialise every enabled component (a capability gap disables it in `csi-sidecars`,
//!    exits standalone, as upstream);
//! 5. start the HTTP server(s), run the components until SIGTERM/SIGINT (a second signal exits
//!    at once) or until the driver connection is lost where a component cannot live without it.
//!    Each component runs under its own [`crate::supervisor`]: in `csi-sidecars` one that fails
//!    (at initialisation or later, with an error or a panic) is reported under its name and
//!    restarted, and the others run on; a standalone sidecar exits 1, as upstream.
//!
//! Exits are decided here and only here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection};
use csi_metrics::{CsiOperationMetrics, ProcessCollector, Registry};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use crate::aggregate::{AGGREGATE_FLAGS, aggregate_process_flags};
use crate::controller::{
    self, Controller, Descriptor, DriverUse, InitContext, InitError, Validated,
};
use crate::features::{FeatureGates, FeatureSpec};
use crate::flags::{Flag, FlagSet, FlagView, LOGGING_FLAGS, ParsedFlags, Scope, Section, Value};
use crate::kube::KubeShared;
use crate::server::{self, Routes};
use crate::shared::{Mode, Shared, SharedParts};
use crate::supervisor::{self, Backoff, Failure, Policy, Report};

/// The file the kubelet shows as the container's termination message.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// How long components get to finish after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Runs a standalone sidecar: one component, upstream's flags, upstream's behaviour.
pub fn main_standalone(descriptor: &'static Descriptor) -> ! {
    let flags = standalone_flags(descriptor);
    let code = run(
        Mode::Standalone,
        descriptor.binary,
        &flags,
        std::env::args_os(),
        |_| Ok(vec![descriptor]),
    );
    std::process::exit(code)
}

/// Runs `csi-sidecars` with the components in `table`.
pub fn main_aggregate(name: &'static str, table: &'static [&'static Descriptor]) -> ! {
    let flags = aggregate_flags(name, table);
    let code = run(
        Mode::Aggregate,
        name,
        &flags,
        std::env::args_os(),
        |process| {
            controller::select(table, &process.string("controllers")).map_err(|e| e.to_string())
        },
    );
    std::process::exit(code)
}

/// The standalone command of `descriptor`.
pub fn standalone_flags(descriptor: &'static Descriptor) -> FlagSet {
    let mut flags: Vec<Flag> = Vec::new();
    for flag in descriptor.flags() {
        // Groups may overlap (a component and a shared group both naming --http-endpoint).
        if !flags.iter().any(|f| f.name == flag.name) {
            flags.push(*flag);
        }
    }
    flags.extend(
        LOGGING_FLAGS
            .iter()
            .filter(|l| !descriptor.flags().any(|f| f.name == l.name)),
    );
    FlagSet::new(
        descriptor.binary,
        descriptor.about,
        &[Section {
            heading: format!("{} flags", descriptor.binary),
            prefix: None,
            flags,
        }],
    )
}

/// The `csi-sidecars` command: global flags once, then one section per controller.
pub fn aggregate_flags(name: &'static str, table: &'static [&'static Descriptor]) -> FlagSet {
    controller::check_table(table);
    let mut sections = vec![
        Section {
            heading: "Global flags".to_string(),
            prefix: None,
            flags: aggregate_process_flags(table),
        },
        Section {
            heading: "Logging flags".to_string(),
            prefix: None,
            flags: LOGGING_FLAGS.to_vec(),
        },
    ];
    for d in table {
        sections.push(Section {
            heading: format!(
                "{} flags (--{}-<flag>; {} {})",
                d.name, d.name, d.upstream.repo, d.upstream.version
            ),
            prefix: Some(d.name),
            flags: d.flags().filter(|f| f.scope != Scope::Process).fold(
                Vec::new(),
                |mut flags: Vec<Flag>, flag| {
                    if !flags.iter().any(|f| f.name == flag.name) {
                        flags.push(*flag);
                    }
                    flags
                },
            ),
        });
    }
    let mut controllers = String::from("Controllers (--controllers):\n");
    for d in table {
        let mut line = format!("  {:<24}{}", d.name, d.about);
        if !d.aliases.is_empty() {
            line.push_str(&format!(" [aliases: {}]", d.aliases.join(", ")));
        }
        if d.disabled_by_default {
            line.push_str(" (disabled by default)");
        }
        controllers.push_str(&line);
        controllers.push('\n');
    }
    FlagSet::new(
        name,
        "All CSI sidecars in one process: one driver connection, one HTTP server, one metrics registry.",
        &sections,
    )
    .after_help(controllers)
}

/// The logging configuration that the [`LOGGING_FLAGS`] in `process` ask for; an error names the
/// invalid flag. Binaries that are not built from a [`Descriptor`] (the webhooks) use it too.
pub fn logging_options(process: &FlagView) -> Result<csi_logging::LogOptions, String> {
    let format = match process.string("logging-format").as_str() {
        "text" | "" => csi_logging::LogFormat::Text,
        "json" => csi_logging::LogFormat::Json,
        other => {
            return Err(format!(
                "logging format {other:?} is not supported; use \"text\" or \"json\""
            ));
        }
    };
    let split_stream = match format {
        csi_logging::LogFormat::Text => process.bool("log-text-split-stream"),
        csi_logging::LogFormat::Json => process.bool("log-json-split-stream"),
    };
    let verbosity = u32::try_from(process.int("v"))
        .map_err(|_| format!("invalid -v={}: must be >= 0", process.int("v")))?;
    Ok(csi_logging::LogOptions {
        verbosity,
        format,
        split_stream,
    })
}

/// Parses `args` and runs the process; returns the exit code.
pub fn run(
    mode: Mode,
    binary: &'static str,
    flags: &FlagSet,
    args: impl IntoIterator<Item = std::ffi::OsString>,
    enabled: impl FnOnce(&FlagView) -> Result<Vec<&'static Descriptor>, String>,
) -> i32 {
    let args: Vec<_> = args.into_iter().collect();
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| binary.to_string());
    let parsed = match flags.parse(args) {
        Ok(parsed) => parsed,
        Err(err) => {
            let _ = err.print();
            return err.exit_code();
        }
    };
    let process = parsed.process();
    if process.bool("version") {
        println!("{argv0} {}", crate::VERSION);
        return 0;
    }
    match logging_options(&process) {
        Ok(options) => {
            if let Err(err) = csi_logging::init(&options) {
                eprintln!("LoggingConfiguration is invalid: {err}");
                return 1;
            }
        }
        Err(err) => {
            eprintln!("LoggingConfiguration is invalid: {err}");
            return 1;
        }
    }
    info!(version = crate::VERSION, "Version");
    for warning in parsed.deprecation_warnings() {
        warn!("{warning}");
    }
    let descriptors = match enabled(&process) {
        Ok(d) => d,
        Err(err) => {
            // An unknown controller name is a usage error, like an unknown flag.
            eprintln!("error: invalid value for --controllers: {err}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(binary)
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            error!(%err, "Failed to start the async runtime");
            return 1;
        }
    };
    runtime.block_on(run_async(mode, binary, parsed, descriptors))
}

fn views(parsed: &ParsedFlags, mode: Mode, d: &Descriptor) -> FlagView {
    match mode {
        Mode::Standalone => parsed.controller(None),
        Mode::Aggregate => parsed.controller(Some(d.name)),
    }
}

/// Where the HTTP servers listen and what they serve.
#[derive(Debug, PartialEq, Eq)]
struct HttpPlan {
    main: Option<String>,
    metrics_on_main: bool,
    metrics_server: Option<String>,
}

fn http_plan(
    process: &FlagView,
    mode: Mode,
    descriptors: &[&Descriptor],
) -> Result<HttpPlan, String> {
    let endpoint = process.string("http-endpoint");
    // Upstream compares with the default in force (livenessprobe: 9808, registrar: 0); the
    // control-plane sidecars have no --health-port at all.
    let health_port = if process.defines("health-port") {
        let port = process.int("health-port");
        if Value::Int(port) != process.default_value("health-port") && !endpoint.is_empty() {
            return Err(
                "Only one of `--health-port` and `--http-endpoint` can be explicitly set"
                    .to_string(),
            );
        }
        port
    } else {
        0
    };
    let metrics_address = if process.defines("metrics-address") {
        process.string("metrics-address")
    } else {
        String::new()
    };
    if !metrics_address.is_empty() && !endpoint.is_empty() {
        return Err(
            "Only one of `--metrics-address` and `--http-endpoint` can be explicitly set"
                .to_string(),
        );
    }
    if process.defines("enable-pprof") && process.bool("enable-pprof") {
        warn!("--enable-pprof has no effect: Go's pprof handlers do not exist in this binary");
    }
    let serves_metrics =
        mode == Mode::Aggregate || descriptors.iter().any(|d| d.http.serves_metrics);
    let main = if !endpoint.is_empty() {
        Some(endpoint.clone())
    } else if health_port > 0 {
        Some(format!(":{health_port}"))
    } else {
        descriptors
            .iter()
            .find_map(|d| d.http.default_port)
            .map(|port| format!(":{port}"))
    };
    Ok(HttpPlan {
        main,
        metrics_on_main: !endpoint.is_empty() && serves_metrics,
        metrics_server: (!metrics_address.is_empty() && serves_metrics).then_some(metrics_address),
    })
}

async fn run_async(
    mode: Mode,
    binary: &'static str,
    parsed: ParsedFlags,
    descriptors: Vec<&'static Descriptor>,
) -> i32 {
    let process = parsed.process();

    // Flag checks that upstream does before connecting anywhere.
    for d in &descriptors {
        match (d.validate)(&views(&parsed, mode, d)) {
            Ok(Validated::Run) => {}
            Ok(Validated::ExitSuccess) => return 0,
            Err(err) => {
                error!("{err}");
                return 1;
            }
        }
    }
    let plan = match http_plan(&process, mode, &descriptors) {
        Ok(plan) => plan,
        Err(err) => {
            error!("{err}");
            return 1;
        }
    };
    // Each component declares its gates; one `--feature-gates` value sets a gate for every
    // enabled component that declares it.
    let specs: Vec<FeatureSpec> =
        match crate::features::check_declarations(descriptors.iter().map(|d| (d.name, d.features)))
        {
            Ok(specs) => specs,
            Err(err) => {
                error!("{err}");
                return 1;
            }
        };
    let features = if process.defines("feature-gates") {
        let requested = process.map_string_bool("feature-gates");
        match FeatureGates::new(&specs, &requested) {
            Ok(f) => {
                for warning in FeatureGates::warnings(&specs, &requested) {
                    warn!("{warning}");
                }
                f
            }
            Err(err) => {
                error!("{err}");
                return 1;
            }
        }
    } else {
        FeatureGates::default()
    };

    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());

    // csi-lib-utils' metrics manager brings `process_start_time_seconds` ([ALPHA]); the
    // other process metrics come from the collector, without a second start time. Components
    // without a driver (snapshot-controller) expose only the start time and their own metrics,
    // as upstream's own registry does.
    let registry = Registry::new();
    let no_driver = descriptors.iter().all(|d| d.driver == DriverUse::None);
    let metrics = if no_driver {
        csi_metrics::register_process_start_time(&registry).and_then(|()| {
            CsiOperationMetrics::builder()
                .process_start_time(false)
                .register(&Registry::new())
        })
    } else {
        CsiOperationMetrics::for_sidecar(&registry).and_then(|m| {
            registry.register(ProcessCollector::new().without_start_time())?;
            Ok(m)
        })
    };
    let csi_metrics = match metrics {
        Ok(m) => m,
        Err(err) => {
            error!(%err, "Failed to register metrics");
            return 1;
        }
    };

    // One connection for every component. Waiting forever wins if any component needs it;
    // losing it is fatal if any component calls the driver all the time.
    let csi_address = if no_driver {
        String::new()
    } else {
        process.string("csi-address")
    };
    let wait_forever = descriptors.iter().any(|d| d.wait_forever());
    let long_lived = descriptors.iter().any(|d| d.driver == DriverUse::LongLived);
    let connect = async {
        if no_driver {
            return Ok(Connection::none());
        }
        info!(address = %csi_address, "Connecting to CSI driver");
        Connection::connect(
            &csi_address,
            ConnectOptions {
                timeout: (!wait_forever).then_some(csi_connection::DEFAULT_CONNECT_TIMEOUT),
                metrics: Some(csi_metrics.clone()),
                watch_loss: long_lived,
                max_log_length: if process.defines("max-grpc-log-length") {
                    usize::try_from(process.int("max-grpc-log-length")).ok()
                } else {
                    None
                },
            },
        )
        .await
    };
    let csi = match until_shutdown(&shutdown, connect).await {
        None => return 0,
        Some(Ok(conn)) => conn,
        Some(Err(err)) => {
            error!(%err, "Error connecting to CSI driver");
            return 1;
        }
    };
    let kube = if descriptors.iter().any(|d| d.kube.is_some()) {
        let kubeconfig_env = descriptors
            .iter()
            .any(|d| d.kube.is_some_and(|k| k.kubeconfig_env));
        match KubeShared::new(&process, binary, kubeconfig_env).await {
            Ok(kube) => Some(kube),
            Err(err) => {
                error!(%err, "Failed to create the Kubernetes client");
                return 1;
            }
        }
    } else {
        None
    };
    let shared = Arc::new(Shared::new(SharedParts {
        mode,
        csi_address,
        csi,
        metrics: registry.clone(),
        csi_metrics,
        features,
        shutdown: shutdown.clone(),
        kube,
    }));

    // Initialise the components. In csi-sidecars, one that fails is reported under its name and
    // restarted by its supervisor, and the others run on; standalone, the process exits 1.
    let (policy, report) = match mode {
        Mode::Aggregate => match Report::aggregate(shared.health.clone(), &registry) {
            Ok(report) => (Policy::Restart(Backoff::DEFAULT), report),
            Err(err) => {
                error!(%err, "Failed to register controller metrics");
                return 1;
            }
        },
        Mode::Standalone => (Policy::Exit, Report::standalone(shared.health.clone())),
    };
    let mut running = JoinSet::new();
    // Controllers that use the API server start once the caches are synced, and, with leader
    // election, only while this replica leads.
    let mut gated: Vec<Supervised> = Vec::new();
    for d in &descriptors {
        let ctx = InitContext {
            name: d.name,
            shared: shared.clone(),
            flags: views(&parsed, mode, d),
            features: shared.features.for_component(d.features),
        };
        let first = match until_shutdown(&shutdown, (d.init)(ctx.clone())).await {
            None => return 0,
            Some(Ok(controller)) => {
                report.initialised(d.name);
                Ok(controller)
            }
            Some(Err(InitError::Disabled(reason))) => match mode {
                Mode::Standalone => {
                    error!("{reason}");
                    return 1;
                }
                Mode::Aggregate => {
                    warn!(controller = d.name, %reason, "Controller disabled");
                    report.disabled(d.name, &reason);
                    continue;
                }
            },
            Some(Err(InitError::Failed(err))) => match mode {
                Mode::Standalone => {
                    error!(controller = d.name, "{err:#}");
                    return 1;
                }
                Mode::Aggregate => {
                    // Its supervisor restarts it once its turn comes (for a controller that uses
                    // the API server: while this replica leads); until then it is reported.
                    let failure = Failure::Error(err);
                    error!(controller = d.name, "Controller failed to start: {failure}");
                    report.failed(d.name, format!("{failure} (waiting to be restarted)"));
                    Err(failure)
                }
            },
        };
        let supervised = Supervised {
            descriptor: d,
            ctx,
            first,
            policy,
            report: report.clone(),
        };
        if d.kube.is_some() {
            gated.push(supervised);
        } else {
            running.spawn(supervised.run());
        }
    }

    if !gated.is_empty()
        && let Err(err) = start_gated(
            mode,
            binary,
            &shared,
            &parsed,
            gated,
            &registry,
            &mut running,
        )
        .await
    {
        error!("{err:#}");
        return 1;
    }

    // HTTP after the components, as upstream: until the driver answered, the kubelet's probe
    // gets "connection refused".
    let mut servers = JoinSet::new();
    if let Some(address) = &plan.main {
        let routes = Routes {
            health: Some(shared.health.clone()),
            metrics: plan
                .metrics_on_main
                .then(|| (process.string("metrics-path"), registry.clone())),
        };
        match start_server(address, routes, &shutdown, &mut servers).await {
            Ok(()) => {}
            Err(err) => {
                error!(%err, "Failed to start http server");
                return 1;
            }
        }
    }
    if let Some(address) = &plan.metrics_server {
        let routes = Routes {
            health: None,
            metrics: Some((process.string("metrics-path"), registry.clone())),
        };
        if let Err(err) = start_server(address, routes, &shutdown, &mut servers).await {
            error!(%err, "Failed to start prometheus metrics endpoint on specified address and path");
            return 1;
        }
    }

    let code = supervise(binary, &shared, &mut running, long_lived).await;
    shutdown.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while running.join_next().await.is_some() {}
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("Components did not stop within {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    code
}

async fn start_server(
    address: &str,
    routes: Routes,
    shutdown: &CancellationToken,
    servers: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    let listener = server::bind(address).await?;
    let router = server::router(routes);
    let token = shutdown.clone();
    servers.spawn(async move {
        if let Err(err) = server::serve(listener, router, token).await {
            error!(%err, "HTTP server failed");
        }
    });
    Ok(())
}

/// Waits for the shutdown signal, a lost driver connection, or the components; returns the
/// exit code.
async fn supervise(
    binary: &str,
    shared: &Arc<Shared>,
    running: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
    exit_on_lost_connection: bool,
) -> i32 {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                info!("Shutting down");
                return 0;
            }
            _ = shared.csi.lost(), if exit_on_lost_connection => {
                let message = "Lost connection to CSI driver, exiting";
                if let Err(err) = std::fs::write(TERMINATION_LOG, message) {
                    error!(%err, path = TERMINATION_LOG, "Failed to write a message to the termination logfile");
                }
                error!("{message}");
                // Here and now, as upstream's klog.FlushAndExit: a graceful shutdown could
                // wait (up to its grace period) on work stuck on the dead connection, while the
                // kubelet is waiting for the container to exit to restart it. Log lines are
                // written unbuffered, so nothing logged is lost.
                std::process::exit(1);
            }
            joined = running.join_next() => {
                let Some(joined) = joined else {
                    if shared.shutdown.is_cancelled() {
                        return 0;
                    }
                    error!("{binary}: no controller is running any more");
                    return 1;
                };
                match joined {
                    Ok((_, Ok(()))) => {}
                    // Only a standalone sidecar's controller, or a lost lease, ends with an
                    // error here (csi-sidecars restarts a failed controller): the process exits
                    // as upstream, and a restart campaigns afresh.
                    Ok((name, Err(err))) => {
                        error!(controller = name, "{err:#}");
                        return 1;
                    }
                    Err(err) => {
                        error!(%err, "A controller task panicked");
                        return 1;
                    }
                }
            }
        }
    }
}

/// A controller with what its supervisor needs.
struct Supervised {
    descriptor: &'static Descriptor,
    ctx: InitContext,
    first: Result<Controller, Failure>,
    policy: Policy,
    report: Report,
}

impl Supervised {
    async fn run(self) -> (&'static str, anyhow::Result<()>) {
        let name = self.descriptor.name;
        let result = supervisor::supervise(
            self.descriptor,
            self.ctx,
            self.first,
            self.policy,
            self.report,
        )
        .await;
        (
            name,
            result.map_err(|failure| {
                anyhow::Error::new(failure).context(format!("controller {name}"))
            }),
        )
    }
}

/// One lease (sanitized), the `name` label of its metrics, and the controllers it gates.
type Election = (String, String, Vec<Supervised>);

/// The error a leader election task ends with when its lease was lost.
#[derive(Debug, thiserror::Error)]
#[error("leaderelection lost")]
pub struct LeadershipLost;

/// Starts the controllers that use the API server: right away (after the caches synced)
/// without leader election; otherwise under one lease for the process, or under each
/// controller's upstream lease with `--leader-election-per-controller`.
async fn start_gated(
    mode: Mode,
    binary: &'static str,
    shared: &Arc<Shared>,
    parsed: &ParsedFlags,
    gated: Vec<Supervised>,
    registry: &Registry,
    running: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
) -> anyhow::Result<()> {
    let process = parsed.process();
    let kube = shared.kube();
    if !process.bool("leader-election") {
        for supervised in gated {
            let shared = shared.clone();
            running.spawn(async move {
                shared.kube().start_caches(&shared.shutdown).await;
                supervised.run().await
            });
        }
        return Ok(());
    }

    // A component without a driver names its lease without one.
    let driver = if gated.iter().all(|s| s.descriptor.driver == DriverUse::None) {
        String::new()
    } else {
        shared.driver_name(None).await?
    };
    let per_controller = mode == Mode::Aggregate && process.bool("leader-election-per-controller");
    // Lease names as upstream gives them, before sanitizing: the elector sanitizes them for
    // the Lease, and its Events name them as they are.
    let upstream_lease = |s: &Supervised| {
        let kube_use = s
            .descriptor
            .kube
            .expect("gated controllers use the API server");
        (kube_use.lease_name)(&driver)
    };
    // (lease, metrics name, controllers)
    let mut elections: Vec<Election> = Vec::new();
    match mode {
        Mode::Standalone => {
            let lease = upstream_lease(&gated[0]);
            // Upstream leaves client-go's election name empty: so does the metric label.
            elections.push((lease, String::new(), gated));
        }
        Mode::Aggregate if per_controller => {
            for supervised in gated {
                let lease = upstream_lease(&supervised);
                let name = csi_leader_election::sanitize_name(&lease);
                elections.push((lease, name, vec![supervised]));
            }
        }
        Mode::Aggregate => {
            let lease = format!("csi-sidecars-{driver}");
            let name = csi_leader_election::sanitize_name(&lease);
            elections.push((lease, name, gated));
        }
    }

    let metrics = csi_leader_election::LeaderElectionMetrics::register(registry)?;
    let release = shared.features.enabled("ReleaseLeaderElectionOnExit");
    let election_client = kube.client_for(&process, binary)?;
    let mut states = Vec::new();
    for (lease, metrics_name, controllers) in elections {
        let mut elector = crate::kube::elector(
            election_client.clone(),
            &process,
            &lease,
            &metrics_name,
            release,
        )?
        .with_metrics(&metrics);
        states.push(elector.state());
        let shared = shared.clone();
        running.spawn(async move {
            let failure: Arc<std::sync::Mutex<Option<anyhow::Error>>> = Arc::default();
            let stop = shared.shutdown.child_token();
            let outcome = {
                let failure = failure.clone();
                let stop_on_error = stop.clone();
                let shared = shared.clone();
                elector
                    .run(stop.clone(), move |leading| async move {
                        info!(%lease, "Started leading");
                        shared.kube().start_caches(&shared.shutdown).await;
                        // Each controller under its own supervisor: in csi-sidecars one
                        // that fails is restarted and the others keep running; only a
                        // standalone sidecar's failure ends the election (and the process).
                        let mut set = JoinSet::new();
                        for supervised in controllers {
                            set.spawn(supervised.run());
                        }
                        loop {
                            tokio::select! {
                                _ = leading.cancelled() => break,
                                joined = set.join_next() => match joined {
                                    None => break,
                                    Some(Ok((_, Ok(())))) => {}
                                    Some(Ok((_, Err(err)))) => {
                                        *failure.lock().unwrap_or_else(|e| e.into_inner()) =
                                            Some(err);
                                        stop_on_error.cancel();
                                        break;
                                    }
                                    Some(Err(err)) => {
                                        *failure.lock().unwrap_or_else(|e| e.into_inner()) =
                                            Some(anyhow::anyhow!("controller task failed: {err}"));
                                        stop_on_error.cancel();
                                        break;
                                    }
                                },
                            }
                        }
                        set.abort_all();
                    })
                    .await
            };
            let failure = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
            let result = match (failure, outcome) {
                (Some(err), _) => Err(err),
                (None, csi_leader_election::Outcome::LeadershipLost) => {
                    Err(anyhow::Error::new(LeadershipLost))
                }
                (None, csi_leader_election::Outcome::ShutDown) => Ok(()),
            };
            ("leader-election", result)
        });
    }
    let states = Arc::new(states);
    shared.health.register(
        csi_leader_election::HEALTH_CHECK_NAME,
        crate::kube::leader_health(states),
    );
    Ok(())
}

/// Runs `fut` unless shutdown comes first.
async fn until_shutdown<T>(
    shutdown: &CancellationToken,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        out = fut => Some(out),
    }
}

/// SIGTERM or SIGINT starts a graceful shutdown; a second one exits at once.
fn spawn_signal_handler(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("Failed to install signal handlers");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!(signal = "SIGTERM", "Received signal, shutting down gracefully"),
            _ = int.recv() => info!(signal = "SIGINT", "Received signal, shutting down gracefully"),
        }
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        eprintln!("Received a second signal, exiting immediately");
        std::process::exit(1);
    });
}
