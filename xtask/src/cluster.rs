//! `cargo xtask cluster`: a real, local Kubernetes control plane without a kubelet or a
//! container runtime — etcd, kube-apiserver (RBAC enforced) and kube-controller-manager with
//! the storage controllers — for the end-to-end tests and the demo.
//!
//! Binaries come from [`crate::tools`] (pinned upstream versions, built once and cached); this
//! module never builds anything. Everything else lives in one state directory,
//! `<target>/cluster/` (`$CARGO_TARGET_DIR` respected):
//!
//! ```text
//! kubeconfig                  admin: client certificate CN=admin, O=system:masters
//! kubeconfig-<ns>-<name>      ServiceAccount kubeconfigs written by `cluster kubeconfig`
//! pki/                        CA, kube-apiserver serving cert, admin cert, SA signing key
//! etcd/                       etcd's data
//! flexvolume/                 kube-controller-manager's --flex-volume-plugin-dir (stays empty)
//! logs/<process>.log          stdout+stderr of each process; logs/audit.log (Metadata level)
//! audit-policy.yaml
//! pids                        "<process> <pid> <program>" per started process
//! ports                       "<what> <port>": etcd-client, etcd-peer, kube-apiserver
//! lock                        serialises `up` and `down` (parallel test binaries may race)
//! ```
//!
//! The processes outlive `cargo xtask` (own process group, so a Ctrl-C in the terminal does
//! not reach them); `down` stops exactly the pids recorded in `pids`, removes etcd's data, the
//! PKI and the kubeconfigs, and keeps the logs.

pub mod api;
mod pki;
mod process;
mod restart;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use self::pki::{Credentials, Pki};
use self::process::Stopped;

const ETCD: &str = "etcd";
const APISERVER: &str = "kube-apiserver";
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// Start order; `down` stops in reverse.
const PROCESSES: [&str; 3] = [ETCD, APISERVER, CONTROLLER_MANAGER];

/// kube-controller-manager's controllers, by their canonical names in Kubernetes 1.37
/// (`cmd/kube-controller-manager/names`; older aliases such as `attachdetach` also work).
/// Chosen for the storage flows the sidecars take part in, plus what a test cluster needs to
/// behave: the protection controllers remove the finalizers the StorageObjectInUseProtection
/// admission plugin adds (without them PV/PVC deletes hang), the serviceaccount controllers
/// create `default` ServiceAccounts and their tokens, the namespace controller finishes
/// namespace deletion (a test's namespace otherwise stays Terminating), and the clusterrole
/// aggregation controller fills the `admin`/`edit`/`view` ClusterRoles.
const CONTROLLERS: &[&str] = &[
    "persistentvolume-binder-controller",
    "persistentvolume-attach-detach-controller",
    "persistentvolume-expander-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "volumeattributesclass-protection-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "clusterrole-aggregation-controller",
    "ttl-controller",
];

/// Feature gates of the API server and the controller manager. `CSIVolumeHealth` (alpha, off by
/// default) keeps `PersistentVolumeClaimStatus.healthStatus`, which external-health-monitor
/// writes: without it the API server drops the field from every write of a claim that does not
/// store it yet.
const FEATURE_GATES: &str = "--feature-gates=CSIVolumeHealth=true";

/// Every request at Metadata level (who did what to which object, no bodies), so tests and
/// benchmarks can count requests and watches per user. RequestReceived is omitted: every
/// request would otherwise be logged twice.
const AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [\"RequestReceived\"]
rules:
- level: Metadata
";

const ETCD_READY: Duration = Duration::from_secs(30);
/// The API server's first start runs its bootstrap post-start hooks (RBAC roles, priority
/// levels, ...); on two busy cores that has taken tens of seconds.
const APISERVER_READY: Duration = Duration::from_secs(120);
const CONTROLLER_MANAGER_READY: Duration = Duration::from_secs(60);
const CRDS_ESTABLISHED: Duration = Duration::from_secs(60);
/// Long enough for a demo or a long benchmark; the API server's default maximum allows it.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const LOG_TAIL_LINES: usize = 40;

const USAGE: &str = "\
usage: cargo xtask cluster <command>

commands:
  up          start etcd, kube-apiserver and kube-controller-manager (if not running) and
              install the snapshot CRDs; prints where the kubeconfig is
  down        stop the processes `up` started; remove etcd's data, the PKI and kubeconfigs
              (logs stay in <target>/cluster/logs)
  restart etcd|kube-apiserver|kube-controller-manager
              stop one process of the running cluster and start it again (same flags, ports,
              certificates and data; its log continued); waits until the API server is ready
  status      which processes run, the API server's URL, /readyz
  env         shell lines: export KUBECONFIG=... and the tools' paths (eval \"$(...)\")
  kubeconfig --service-account NS/NAME [--output FILE]
              write a kubeconfig with a TokenRequest token for an existing ServiceAccount
              (default FILE: <target>/cluster/kubeconfig-NS-NAME); prints its path
";

/// A running cluster, as `up` leaves it.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    /// The admin kubeconfig (system:masters).
    pub kubeconfig: PathBuf,
    /// The API server, `https://127.0.0.1:<port>`.
    pub server: String,
    /// `<target>/cluster`: logs, PKI, pids and ports.
    pub state_dir: PathBuf,
    /// Whether this call started the cluster (false: it was already running).
    pub started: bool,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let no_args = |what: &str| -> anyhow::Result<()> {
        if let Some(arg) = rest.first() {
            bail!("cargo xtask cluster {what} takes no arguments (got {arg:?})");
        }
        Ok(())
    };
    match command.as_str() {
        "up" => {
            no_args("up")?;
            let start = Instant::now();
            let info = up()?;
            if info.started {
                println!(
                    "cluster running at {} (started in {:.1}s)",
                    info.server,
                    start.elapsed().as_secs_f64()
                );
            } else {
                println!("cluster already running at {}", info.server);
            }
            println!("  export KUBECONFIG={}", info.kubeconfig.display());
            println!("  state and logs: {}", info.state_dir.display());
            Ok(())
        }
        "down" => {
            no_args("down")?;
            down()
        }
        "restart" => match rest {
            [process] => restart::restart(process),
            _ => bail!(
                "cargo xtask cluster restart takes one process name (etcd, kube-apiserver, kube-controller-manager)"
            ),
        },
        "status" => {
            no_args("status")?;
            status()
        }
        "env" => {
            no_args("env")?;
            env()
        }
        "kubeconfig" => {
            let (namespace, name, output) = parse_kubeconfig_args(rest)?;
            let path = match output {
                None => service_account_kubeconfig(&namespace, &name)?,
                Some(output) => {
                    let state = State::locate()?;
                    block_on(write_service_account_kubeconfig(
                        &state, &namespace, &name, &output,
                    ))?;
                    output
                }
            };
            println!("{}", path.display());
            Ok(())
        }
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown cluster command {other:?}")
        }
    }
}

/// Starts the cluster unless one from this state directory is already running and ready;
/// either way, returns where it is. Blocks; may be called from inside a tokio runtime.
pub fn up() -> anyhow::Result<ClusterInfo> {
    let state = State::locate()?;
    let _lock = state.lock()?;
    block_on(up_locked(&state))
}

/// Stops the processes `up` started (SIGTERM, then SIGKILL after 10 s), then removes etcd's
/// data, the PKI and the kubeconfigs. Logs stay. Does nothing, successfully, when nothing runs.
pub fn down() -> anyhow::Result<()> {
    let state = State::locate()?;
    if !state.dir.exists() {
        eprintln!(
            "cluster: no state at {}; nothing to stop",
            state.dir.display()
        );
        return Ok(());
    }
    let _lock = state.lock()?;
    let start = Instant::now();
    let stop_result = stop_recorded(&state);
    reap_children();
    state.remove_cluster_files()?;
    if stop_result? == 0 {
        eprintln!("cluster: nothing was running");
    } else {
        eprintln!(
            "cluster: down in {:.1}s (logs kept in {})",
            start.elapsed().as_secs_f64(),
            state.logs_dir().display()
        );
    }
    Ok(())
}

/// Whether every process of the cluster runs and the API server answers `/readyz`.
pub fn is_running() -> bool {
    let Ok(state) = State::locate() else {
        return false;
    };
    block_on(async { Ok(running_cluster(&state).await) })
        .ok()
        .flatten()
        .is_some()
}

/// Writes `<target>/cluster/kubeconfig-<namespace>-<name>` for the existing ServiceAccount
/// `namespace/name`, with a token from the TokenRequest API (valid 24 h), and returns its path.
pub fn service_account_kubeconfig(namespace: &str, name: &str) -> anyhow::Result<PathBuf> {
    let state = State::locate()?;
    let output = state.service_account_kubeconfig(namespace, name);
    block_on(write_service_account_kubeconfig(
        &state, namespace, name, &output,
    ))?;
    Ok(output)
}

/// Paths inside the state directory.
#[derive(Debug, Clone)]
struct State {
    dir: PathBuf,
}

impl State {
    fn locate() -> anyhow::Result<Self> {
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            // Cargo reads a relative CARGO_TARGET_DIR from the current directory.
            Some(dir) => std::path::absolute(PathBuf::from(dir))?,
            None => crate::project_root().join("target"),
        };
        Ok(Self {
            dir: target.join("cluster"),
        })
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        self.dir.join(format!("kubeconfig-{namespace}-{name}"))
    }

    fn pki_dir(&self) -> PathBuf {
        self.dir.join("pki")
    }

    fn etcd_dir(&self) -> PathBuf {
        self.dir.join("etcd")
    }

    fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn log(&self, process: &str) -> PathBuf {
        self.logs_dir().join(format!("{process}.log"))
    }

    fn pids_file(&self) -> PathBuf {
        self.dir.join("pids")
    }

    fn ports_file(&self) -> PathBuf {
        self.dir.join("ports")
    }

    fn audit_policy(&self) -> PathBuf {
        self.dir.join("audit-policy.yaml")
    }

    /// An exclusive lock on the state directory, released when the file is dropped.
    fn lock(&self) -> anyhow::Result<File> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join("lock");
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
            eprintln!(
                "cluster: waiting for another `cluster up/down` on {}",
                self.dir.display()
            );
            file.lock()?;
        }
        Ok(file)
    }

    /// Processes recorded by the last `up`: (name, pid, program file name).
    fn read_pids(&self) -> anyhow::Result<Vec<Recorded>> {
        let text = match fs::read_to_string(self.pids_file()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).context("reading the pids file"),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let mut fields = line.split_whitespace();
                let (Some(name), Some(pid), Some(program)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    bail!("malformed line in {}: {line:?}", self.pids_file().display());
                };
                Ok(Recorded {
                    name: name.to_string(),
                    pid: pid
                        .parse()
                        .with_context(|| format!("bad pid in {line:?}"))?,
                    program: program.to_string(),
                })
            })
            .collect()
    }

    fn write_pids(&self, recorded: &[Recorded]) -> anyhow::Result<()> {
        let mut text = String::new();
        for r in recorded {
            writeln!(text, "{} {} {}", r.name, r.pid, r.program)?;
        }
        fs::write(self.pids_file(), text).context("writing the pids file")
    }

    fn read_ports(&self) -> anyhow::Result<Ports> {
        let path = self.ports_file();
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let port = |key: &str| -> anyhow::Result<u16> {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .with_context(|| format!("{} has no {key}", path.display()))?
                .trim()
                .parse()
                .with_context(|| format!("{}: bad {key}", path.display()))
        };
        Ok(Ports {
            etcd_client: port("etcd-client")?,
            etcd_peer: port("etcd-peer")?,
            apiserver: port("kube-apiserver")?,
        })
    }

    fn write_ports(&self, ports: &Ports) -> anyhow::Result<()> {
        let text = format!(
            "etcd-client {}\netcd-peer {}\nkube-apiserver {}\n",
            ports.etcd_client, ports.etcd_peer, ports.apiserver
        );
        fs::write(self.ports_file(), text).context("writing the ports file")
    }

    /// Everything a stopped cluster leaves but its logs.
    fn remove_cluster_files(&self) -> anyhow::Result<()> {
        for dir in [self.etcd_dir(), self.pki_dir(), self.dir.join("flexvolume")] {
            remove_if_present(&dir)?;
        }
        for file in [self.pids_file(), self.ports_file(), self.kubeconfig()] {
            remove_if_present(&file)?;
        }
        // ServiceAccount kubeconfigs hold tokens of a cluster that no longer exists.
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("kubeconfig-")
                {
                    remove_if_present(&entry.path())?;
                }
            }
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// A process `up` started, as the pids file records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    name: String,
    pid: u32,
    /// The file name of the program started: a pid is ours only while it still runs this.
    program: String,
}

impl Recorded {
    fn is_alive(&self) -> bool {
        process::is_alive(self.pid, &self.program)
    }
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
}

impl Ports {
    /// Three distinct free loopback ports: all listeners are held until each has a port, so
    /// the kernel cannot hand out the same one twice.
    fn pick() -> anyhow::Result<Self> {
        let listeners = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .context("finding free ports on 127.0.0.1")?;
        let port = |i: usize| -> anyhow::Result<u16> { Ok(listeners[i].local_addr()?.port()) };
        Ok(Self {
            etcd_client: port(0)?,
            etcd_peer: port(1)?,
            apiserver: port(2)?,
        })
    }

    fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver)
    }
}

/// Children started by this process. Kept so `down` in the same process (the e2e runner's
/// `up()` … `down()`) can reap them instead of leaving zombies until it exits.
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn reap_children() {
    if let Ok(mut children) = CHILDREN.lock() {
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }
}

/// Runs a future to completion on a fresh runtime in a scoped thread: callers of the public
/// API may be inside a tokio runtime already (the demo is), where `block_on` would panic.
fn block_on<T: Send>(future: impl Future<Output = anyhow::Result<T>> + Send) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The running cluster of this state directory, if all its processes are alive and the API
/// server is ready.
async fn running_cluster(state: &State) -> Option<ClusterInfo> {
    let recorded = state.read_pids().ok()?;
    let all_alive = PROCESSES
        .iter()
        .all(|name| recorded.iter().any(|r| r.name == *name && r.is_alive()));
    if !all_alive {
        return None;
    }
    let ports = state.read_ports().ok()?;
    let client = api::client(&state.kubeconfig()).await.ok()?;
    api::readyz(&client).await.ok()?;
    Some(ClusterInfo {
        kubeconfig: state.kubeconfig(),
        server: ports.server(),
        state_dir: state.dir.clone(),
        started: false,
    })
}

/// Stops every recorded process that still runs, last started first, and forgets the pids.
/// Returns how many were running.
fn stop_recorded(state: &State) -> anyhow::Result<usize> {
    let recorded = state.read_pids()?;
    let mut failures = Vec::new();
    let mut stopped = 0;
    for r in recorded.iter().rev() {
        let outcome = process::stop(r.pid, &r.program, process::STOP_GRACE);
        if matches!(outcome, Ok(Stopped::Terminated(_) | Stopped::Killed)) {
            stopped += 1;
        }
        match outcome {
            Ok(Stopped::NotRunning) => {}
            Ok(Stopped::Terminated(took)) => eprintln!(
                "cluster: stopped {} (pid {}) in {:.1}s",
                r.name,
                r.pid,
                took.as_secs_f64()
            ),
            Ok(Stopped::Killed) => eprintln!(
                "cluster: killed {} (pid {}): it ignored SIGTERM for {}s",
                r.name,
                r.pid,
                process::STOP_GRACE.as_secs()
            ),
            Err(e) => failures.push(format!("{} (pid {}): {e:#}", r.name, r.pid)),
        }
    }
    if !failures.is_empty() {
        bail!("could not stop: {}", failures.join("; "));
    }
    remove_if_present(&state.pids_file())?;
    Ok(stopped)
}

/// The binaries and files `up` needs from [`crate::tools`].
#[derive(Debug)]
struct Tools {
    etcd: PathBuf,
    apiserver: PathBuf,
    controller_manager: PathBuf,
    snapshot_crds: PathBuf,
}

impl Tools {
    fn ensure() -> anyhow::Result<Self> {
        Ok(Self {
            etcd: crate::tools::ensure(ETCD)?,
            apiserver: crate::tools::ensure(APISERVER)?,
            controller_manager: crate::tools::ensure(CONTROLLER_MANAGER)?,
            snapshot_crds: crate::tools::snapshot_crd_dir()?,
        })
    }
}

async fn up_locked(state: &State) -> anyhow::Result<ClusterInfo> {
    if let Some(info) = running_cluster(state).await {
        return Ok(info);
    }
    // A cluster that is partly up (a process died, or a previous `up` was killed half-way)
    // is not reused: stop what remains and start afresh.
    if state.read_pids()?.iter().any(Recorded::is_alive) {
        eprintln!("cluster: a previous cluster is only partly running; stopping it");
    }
    stop_recorded(state)?;
    let tools = Tools::ensure()?;
    let crds = api::read_crds(&tools.snapshot_crds)?;

    let mut started = Starting::default();
    match start(state, &tools, &crds, &mut started).await {
        Ok(info) => {
            started.keep();
            Ok(info)
        }
        Err(e) => {
            started.stop_all();
            // Keep the logs (the error shows their end); the rest belongs to no cluster now.
            if let Err(cleanup) = state.remove_cluster_files() {
                eprintln!("cluster: cleaning up after the failed start: {cleanup:#}");
            }
            Err(e)
        }
    }
}

/// The processes of one `up`, until it succeeds or fails.
#[derive(Debug, Default)]
struct Starting {
    recorded: Vec<Recorded>,
    children: Vec<Child>,
}

impl Starting {
    fn stop_all(&mut self) {
        for r in self.recorded.iter().rev() {
            if let Err(e) = process::stop(r.pid, &r.program, process::STOP_GRACE) {
                eprintln!("cluster: could not stop {} (pid {}): {e:#}", r.name, r.pid);
            }
        }
        for child in &mut self.children {
            let _ = child.try_wait();
        }
    }

    /// The processes keep running; remember the handles so a `down` in this process reaps them.
    fn keep(self) {
        if let Ok(mut children) = CHILDREN.lock() {
            children.extend(self.children);
        }
    }
}

async fn start(
    state: &State,
    tools: &Tools,
    crds: &[(String, serde_json::Value)],
    started: &mut Starting,
) -> anyhow::Result<ClusterInfo> {
    let begin = Instant::now();
    // A fresh cluster each time: data and credentials of an older one must not leak in.
    state.remove_cluster_files()?;
    fs::create_dir_all(state.logs_dir())?;
    let pki = Pki::generate(&state.pki_dir())?;
    let ports = Ports::pick()?;
    state.write_ports(&ports)?;
    let server = ports.server();
    let admin = pki::kubeconfig(
        &server,
        &fs::read_to_string(&pki.ca_cert)?,
        "admin",
        &Credentials::ClientCertificate {
            cert_pem: fs::read_to_string(&pki.admin_cert)?,
            key_pem: fs::read_to_string(&pki.admin_key)?,
        },
    );
    pki::write_private(&state.kubeconfig(), &admin)?;
    fs::write(state.audit_policy(), AUDIT_POLICY)?;

    let etcd_address = format!("127.0.0.1:{}", ports.etcd_client);
    let etcd = spawn(state, started, ETCD, &tools.etcd, &etcd_args(state, &ports))?;
    let etcd = &mut started.children[etcd];
    wait_ready(state, ETCD, etcd, ETCD_READY, || async {
        let (status, body) = csi_test_support::http_get(&etcd_address, "/health").await?;
        if status != 200 || !body.contains("\"true\"") {
            bail!("GET /health answered {status}: {body}");
        }
        Ok(())
    })
    .await?;

    let apiserver_args = apiserver_args(state, &pki, &ports);
    let apiserver = spawn(state, started, APISERVER, &tools.apiserver, &apiserver_args)?;
    let apiserver = &mut started.children[apiserver];
    let client = api::client(&state.kubeconfig()).await?;
    wait_ready(state, APISERVER, apiserver, APISERVER_READY, || {
        api::readyz(&client)
    })
    .await?;

    let kcm_args = controller_manager_args(state, &pki);
    let kcm = &tools.controller_manager;
    let controller_manager = spawn(state, started, CONTROLLER_MANAGER, kcm, &kcm_args)?;
    let controller_manager = &mut started.children[controller_manager];
    wait_ready(
        state,
        CONTROLLER_MANAGER,
        controller_manager,
        CONTROLLER_MANAGER_READY,
        || async {
            if api::default_service_account_exists(&client).await? {
                Ok(())
            } else {
                bail!("the ServiceAccount default/default does not exist yet")
            }
        },
    )
    .await?;

    let crds_start = Instant::now();
    api::install_crds(&client, crds, CRDS_ESTABLISHED).await?;
    eprintln!(
        "cluster: {} snapshot CRDs Established in {:.1}s",
        crds.len(),
        crds_start.elapsed().as_secs_f64()
    );
    eprintln!(
        "cluster: up in {:.1}s at {server}",
        begin.elapsed().as_secs_f64()
    );
    Ok(ClusterInfo {
        kubeconfig: state.kubeconfig(),
        server,
        state_dir: state.dir.clone(),
        started: true,
    })
}

/// Starts one process and records its pid at once, so a `down` finds it even if this `up`
/// is killed before it finishes. Returns its index in `started.children`.
fn spawn(
    state: &State,
    started: &mut Starting,
    name: &str,
    program: &Path,
    args: &[String],
) -> anyhow::Result<usize> {
    let child = process::spawn(program, args, &state.log(name), &state.dir)
        .with_context(|| format!("starting {name}"))?;
    let program_name = program
        .file_name()
        .context("a program path without a file name")?
        .to_string_lossy()
        .into_owned();
    started.recorded.push(Recorded {
        name: name.to_string(),
        pid: child.id(),
        program: program_name,
    });
    state.write_pids(&started.recorded)?;
    started.children.push(child);
    Ok(started.children.len() - 1)
}

/// Polls `check` until it succeeds. Fails early when the process exits, and after `timeout`;
/// either error names the process and shows the end of its log.
async fn wait_ready<F, Fut>(
    state: &State,
    name: &str,
    child: &mut Child,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    let log = state.log(name);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited during start-up ({status}){}",
                log_excerpt(&log)
            );
        }
        let last_error = match check().await {
            Ok(()) => {
                eprintln!(
                    "cluster: {name} ready in {:.1}s (pid {}, log {})",
                    start.elapsed().as_secs_f64(),
                    child.id(),
                    log.display()
                );
                return Ok(());
            }
            Err(e) => e,
        };
        if start.elapsed() > timeout {
            bail!(
                "{name} was not ready within {}s (last check: {last_error:#}){}",
                timeout.as_secs(),
                log_excerpt(&log)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn log_excerpt(log: &Path) -> String {
    format!(
        "\n--- last {LOG_TAIL_LINES} lines of {} ---\n{}\n---",
        log.display(),
        process::log_tail(log, LOG_TAIL_LINES)
    )
}

fn etcd_args(state: &State, ports: &Ports) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    vec![
        "--name=csi-sidecars-local".into(),
        format!("--data-dir={}", state.etcd_dir().display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=csi-sidecars-local={peer}"),
        // A throw-away test cluster: durability is not worth an fsync per write.
        "--unsafe-no-fsync=true".into(),
    ]
}

fn apiserver_args(state: &State, pki: &Pki, ports: &Ports) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.apiserver),
        format!("--tls-cert-file={}", path(&pki.apiserver_cert)),
        format!("--tls-private-key-file={}", path(&pki.apiserver_key)),
        format!("--client-ca-file={}", path(&pki.ca_cert)),
        "--authorization-mode=RBAC".into(),
        format!("--service-account-issuer={}", ports.server()),
        format!(
            "--service-account-key-file={}",
            path(&pki.service_account_pub)
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&pki.service_account_key)
        ),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--allow-privileged=true".into(),
        FEATURE_GATES.into(),
        format!("--audit-policy-file={}", path(&state.audit_policy())),
        format!(
            "--audit-log-path={}",
            path(&state.logs_dir().join("audit.log"))
        ),
        // Tests and benches count requests from a byte offset of audit.log; the default
        // rotation at 100 MB moved them to another file mid-measurement. A test cluster's
        // log is never rotated (its size is in MB).
        format!("--audit-log-maxsize={AUDIT_LOG_NEVER_ROTATED_MB}"),
    ]
}

/// `--audit-log-maxsize` of the test cluster: far above what any run writes.
const AUDIT_LOG_NEVER_ROTATED_MB: u32 = 1 << 20;

fn controller_manager_args(state: &State, pki: &Pki) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        format!("--kubeconfig={}", path(&state.kubeconfig())),
        format!("--controllers={}", CONTROLLERS.join(",")),
        "--leader-elect=false".into(),
        FEATURE_GATES.into(),
        // One identity (admin) for every controller: no per-controller RBAC to debug here.
        "--use-service-account-credentials=false".into(),
        // Its default 20 QPS would make the PV binder (about four writes per provisioned
        // claim, plus an Event) the bottleneck of the bench's provisioning workload: a claim
        // would wait for the binder, not for the provisioner measured.
        "--kube-api-qps=500".into(),
        "--kube-api-burst=1000".into(),
        format!(
            "--service-account-private-key-file={}",
            path(&pki.service_account_key)
        ),
        format!("--root-ca-file={}", path(&pki.ca_cert)),
        // Its default is /usr/libexec/kubernetes/kubelet-plugins/volume/exec/, which the volume
        // controllers create when it is missing: keep the host untouched.
        format!(
            "--flex-volume-plugin-dir={}",
            path(&state.dir.join("flexvolume"))
        ),
        // No health/metrics server: it would need its own serving certificate and port, and
        // readiness is judged by what the controllers do (see `default_service_account_exists`).
        "--secure-port=0".into(),
    ]
}

async fn write_service_account_kubeconfig(
    state: &State,
    namespace: &str,
    name: &str,
    output: &Path,
) -> anyhow::Result<()> {
    let Some(info) = running_cluster(state).await else {
        bail!("the cluster is not running: run `cargo xtask cluster up` first");
    };
    let client = api::client(&info.kubeconfig).await?;
    let token = api::service_account_token(&client, namespace, name, TOKEN_LIFETIME).await?;
    let ca = fs::read_to_string(Pki::in_dir(&state.pki_dir()).ca_cert)?;
    let user = format!("system:serviceaccount:{namespace}:{name}");
    let text = pki::kubeconfig(&info.server, &ca, &user, &Credentials::Token(token));
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    pki::write_private(output, &text)
}

fn parse_kubeconfig_args(args: &[String]) -> anyhow::Result<(String, String, Option<PathBuf>)> {
    let mut service_account = None;
    let mut output = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "--service-account" => service_account = Some(value()?),
            "--output" | "-o" => output = Some(PathBuf::from(value()?)),
            _ => bail!(
                "unknown argument {arg:?}; usage: cargo xtask cluster kubeconfig \
                 --service-account NS/NAME [--output FILE]"
            ),
        }
    }
    let service_account = service_account.context(
        "usage: cargo xtask cluster kubeconfig --service-account NS/NAME [--output FILE]",
    )?;
    let Some((namespace, name)) = service_account
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
    else {
        bail!("--service-account wants NAMESPACE/NAME, got {service_account:?}");
    };
    Ok((namespace.to_string(), name.to_string(), output))
}

fn status() -> anyhow::Result<()> {
    let state = State::locate()?;
    let recorded = state.read_pids()?;
    let mut all_alive = true;
    for name in PROCESSES {
        match recorded.iter().find(|r| r.name == name) {
            Some(r) if r.is_alive() => println!("{name:<24} running (pid {})", r.pid),
            Some(r) => {
                all_alive = false;
                println!("{name:<24} not running (was pid {})", r.pid);
            }
            None => {
                all_alive = false;
                println!("{name:<24} not running");
            }
        }
    }
    let Ok(ports) = state.read_ports() else {
        println!("no cluster state in {}", state.dir.display());
        bail!("the cluster is not running");
    };
    println!("{:<24} {}", "server", ports.server());
    println!("{:<24} {}", "kubeconfig", state.kubeconfig().display());
    println!("{:<24} {}", "logs", state.logs_dir().display());
    let ready = block_on(async {
        let client = api::client(&state.kubeconfig()).await?;
        api::readyz(&client).await
    });
    match &ready {
        Ok(()) => println!("{:<24} ok", "/readyz"),
        Err(e) => println!("{:<24} {e:#}", "/readyz"),
    }
    if !all_alive || ready.is_err() {
        bail!("the cluster is not (fully) running");
    }
    Ok(())
}

fn env() -> anyhow::Result<()> {
    let state = State::locate()?;
    if !is_running() {
        eprintln!("# note: the cluster is not running (cargo xtask cluster up)");
    }
    println!("export KUBECONFIG={}", shell_quote(&state.kubeconfig()));
    for tool in [ETCD, APISERVER, CONTROLLER_MANAGER, "csi-mock-driver"] {
        let path = crate::tools::ensure(tool)?;
        println!("export {}={}", tool_variable(tool), shell_quote(&path));
    }
    let crds = crate::tools::snapshot_crd_dir()?;
    println!("export CSI_SIDECARS_SNAPSHOT_CRDS={}", shell_quote(&crds));
    Ok(())
}

/// `kube-apiserver` → `CSI_SIDECARS_KUBE_APISERVER`.
fn tool_variable(tool: &str) -> String {
    format!(
        "CSI_SIDECARS_{}",
        tool.to_ascii_uppercase().replace('-', "_")
    )
}

/// A path as one shell word: bare when it is plainly safe, single-quoted otherwise.
fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State {
            dir: dir.path().join("cluster"),
        };
        fs::create_dir_all(&state.dir).unwrap();
        (dir, state)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pids_round_trip_and_missing_file_is_empty() {
        let (_dir, state) = state();
        assert!(state.read_pids().unwrap().is_empty());
        let recorded = vec![
            Recorded {
                name: ETCD.into(),
                pid: 10,
                program: "etcd".into(),
            },
            Recorded {
                name: APISERVER.into(),
                pid: 11,
                program: "kube-apiserver".into(),
            },
        ];
        state.write_pids(&recorded).unwrap();
        assert_eq!(state.read_pids().unwrap(), recorded);
        fs::write(state.pids_file(), "etcd notapid etcd\n").unwrap();
        assert!(state.read_pids().is_err());
    }

    #[test]
    fn ports_round_trip_and_are_distinct() {
        let (_dir, state) = state();
        let ports = Ports::pick().unwrap();
        assert_ne!(ports.etcd_client, ports.etcd_peer);
        assert_ne!(ports.etcd_peer, ports.apiserver);
        assert_ne!(ports.etcd_client, ports.apiserver);
        state.write_ports(&ports).unwrap();
        let read = state.read_ports().unwrap();
        assert_eq!(read.apiserver, ports.apiserver);
        assert_eq!(read.etcd_client, ports.etcd_client);
        assert_eq!(
            read.server(),
            format!("https://127.0.0.1:{}", ports.apiserver)
        );
    }

    #[test]
    fn remove_cluster_files_keeps_logs() {
        let (_dir, state) = state();
        fs::create_dir_all(state.logs_dir()).unwrap();
        fs::write(state.log(ETCD), "log").unwrap();
        fs::create_dir_all(state.etcd_dir().join("member")).unwrap();
        Pki::generate(&state.pki_dir()).unwrap();
        for file in [state.kubeconfig(), state.pids_file(), state.ports_file()] {
            fs::write(file, "x").unwrap();
        }
        fs::write(state.service_account_kubeconfig("default", "sa"), "x").unwrap();
        state.remove_cluster_files().unwrap();
        let mut left: Vec<String> = fs::read_dir(&state.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["logs"]);
        assert!(state.log(ETCD).exists());
        // Nothing to remove is fine too.
        state.remove_cluster_files().unwrap();
    }

    #[test]
    fn kubeconfig_args() {
        let (ns, name, out) =
            parse_kubeconfig_args(&strings(&["--service-account", "kube-system/attacher"]))
                .unwrap();
        assert_eq!(
            (ns.as_str(), name.as_str(), out),
            ("kube-system", "attacher", None)
        );
        let (_, _, out) = parse_kubeconfig_args(&strings(&[
            "--service-account=default/x",
            "--output=/tmp/k",
        ]))
        .unwrap();
        assert_eq!(out, Some(PathBuf::from("/tmp/k")));
        for bad in [
            &[][..],
            &["--service-account"][..],
            &["--service-account", "nonamespace"][..],
            &["--service-account", "a/b/c"][..],
            &["--service-account", "/x"][..],
            &["--bogus"][..],
        ] {
            assert!(parse_kubeconfig_args(&strings(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn process_arguments_follow_the_brief() {
        let (_dir, state) = state();
        let pki = Pki::in_dir(&state.pki_dir());
        let ports = Ports {
            etcd_client: 1,
            etcd_peer: 2,
            apiserver: 3,
        };
        let apiserver = apiserver_args(&state, &pki, &ports);
        for expected in [
            "--authorization-mode=RBAC",
            "--bind-address=127.0.0.1",
            "--secure-port=3",
            "--etcd-servers=http://127.0.0.1:1",
            "--service-account-issuer=https://127.0.0.1:3",
        ] {
            assert!(apiserver.iter().any(|a| a == expected), "{expected}");
        }
        // ServiceAccount admission must stay on: no plugin is disabled.
        assert!(
            !apiserver
                .iter()
                .any(|a| a.starts_with("--disable-admission"))
        );
        let etcd = etcd_args(&state, &ports);
        assert!(etcd.contains(&"--unsafe-no-fsync=true".to_string()));
        assert!(etcd.contains(&"--listen-peer-urls=http://127.0.0.1:2".to_string()));
        let kcm = controller_manager_args(&state, &pki);
        let controllers = kcm
            .iter()
            .find_map(|a| a.strip_prefix("--controllers="))
            .unwrap();
        assert!(controllers.contains("persistentvolume-binder-controller"));
        assert!(controllers.contains("persistentvolume-attach-detach-controller"));
        assert!(kcm.contains(&"--leader-elect=false".to_string()));
        // PVC health status (external-health-monitor) is kept by both.
        for args in [&apiserver, &kcm] {
            assert!(args.contains(&"--feature-gates=CSIVolumeHealth=true".to_string()));
        }
    }

    #[test]
    fn env_lines() {
        assert_eq!(
            tool_variable("kube-apiserver"),
            "CSI_SIDECARS_KUBE_APISERVER"
        );
        assert_eq!(
            tool_variable("csi-mock-driver"),
            "CSI_SIDECARS_CSI_MOCK_DRIVER"
        );
        assert_eq!(shell_quote(Path::new("/a/b-c/d.e")), "/a/b-c/d.e");
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }

    #[test]
    fn block_on_works_inside_a_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let value = rt.block_on(async { block_on(async { Ok(7) }) }).unwrap();
        assert_eq!(value, 7);
    }

    /// The whole promise against a real cluster, through the public API and kube-rs. Needs the
    /// Go-built tools (minutes on first use), so it is not part of `cargo test`:
    /// `cargo test -p xtask -- --ignored real_cluster`. Reuses a running cluster and leaves it
    /// running; stops only a cluster it started itself.
    #[test]
    #[ignore = "starts a real control plane (needs the Go-built tools)"]
    fn real_cluster_enforces_rbac_binds_pvcs_and_serves_snapshot_crds() {
        let info = up().unwrap();
        assert!(is_running());
        let again = up().unwrap();
        assert!(!again.started, "a second up reuses the running cluster");
        assert_eq!(again.server, info.server);
        let result = block_on(exercise(info.kubeconfig.clone()));
        if info.started {
            down().unwrap();
            assert!(!is_running());
        }
        result.unwrap();
    }

    async fn exercise(admin: PathBuf) -> anyhow::Result<()> {
        use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
        use k8s_openapi::api::storage::v1::StorageClass;
        use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
        use kube::runtime::wait::await_condition;
        use serde_json::json;

        let client = api::client(&admin).await?;
        let namespaces: kube::Api<Namespace> = kube::Api::all(client.clone());
        let names: Vec<_> = namespaces.list(&ListParams::default()).await?.items;
        assert!(
            names
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some("kube-system"))
        );

        // RBAC: a ServiceAccount with no bindings may not list pods.
        let suffix = std::process::id();
        let sa_name = format!("rbac-probe-{suffix}");
        let sas: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(client.clone(), "default");
        sas.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": sa_name}
            }))?,
        )
        .await?;
        let sa_kubeconfig = tokio::task::spawn_blocking({
            let sa_name = sa_name.clone();
            move || service_account_kubeconfig("default", &sa_name)
        })
        .await??;
        let sa_client = api::client(&sa_kubeconfig).await?;
        let pods: kube::Api<Pod> = kube::Api::namespaced(sa_client, "default");
        match pods.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("listing pods as {sa_name}: expected 403, got {other:?}"),
        }

        // The PV binder of kube-controller-manager hands the claim to its provisioner.
        let class = format!("none-{suffix}");
        let classes: kube::Api<StorageClass> = kube::Api::all(client.clone());
        classes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": class},
                    "provisioner": "example.com/none"
                }))?,
            )
            .await?;
        let claims: kube::Api<PersistentVolumeClaim> =
            kube::Api::namespaced(client.clone(), "default");
        let claim = format!("claim-{suffix}");
        claims
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": claim},
                    "spec": {
                        "storageClassName": class,
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}
                    }
                }))?,
            )
            .await?;
        let annotated = |pvc: Option<&PersistentVolumeClaim>| {
            pvc.and_then(|p| p.metadata.annotations.as_ref())
                .and_then(|a| a.get("volume.kubernetes.io/storage-provisioner"))
                .is_some_and(|p| p == "example.com/none")
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(claims.clone(), &claim, annotated),
        )
        .await??;

        // The snapshot CRDs are served.
        let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass");
        let vsc: kube::Api<DynamicObject> =
            kube::Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": format!("snap-{suffix}")},
            "driver": "example.com/none",
            "deletionPolicy": "Delete"
        }))?;
        vsc.create(&PostParams::default(), &object).await?;
        Ok(())
    }

    #[test]
    fn down_without_state_is_fine() {
        // Only the pieces `down` uses, on an empty state dir: no pids, nothing to stop.
        let (_dir, state) = state();
        assert_eq!(stop_recorded(&state).unwrap(), 0);
        state.remove_cluster_files().unwrap();
    }
}
