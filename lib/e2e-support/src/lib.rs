//! What the end-to-end tests need around the local control plane started by
//! `cargo xtask cluster up`:
//!
//! - [`E2eEnv`]: where the cluster's kubeconfig, the tools and our binaries are;
//! - clients: the admin's, and a ServiceAccount's (token from the TokenRequest API), so a
//!   sidecar can be checked under the RBAC we ship;
//! - [`TestNamespace`], fake [`Node`]s the attach/detach controller accepts, CSINode objects;
//! - [`DriverProcess`]: a real CSI driver as a separate process. csi-driver-host-path cannot be
//!   built here (the Go module proxy refuses its module), so this is Kubernetes' own e2e mock CSI
//!   driver (`k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock`, the driver behind the
//!   upstream "CSI mock volume" e2e tests), built from the same pinned Kubernetes version as
//!   kube-apiserver by `cargo xtask tools`;
//! - [`wait_until`]: polling with a timeout whose failure message carries the Events of the
//!   namespace and whatever the caller describes.
//!
//! Every process started here is killed when its handle is dropped, including when a test fails.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use csi_test_support::{ChildProcess, wait_for_path};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, ServiceAccount};
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The annotation that lets kube-controller-manager's attach/detach controller manage a Node
/// that no kubelet runs.
pub const CONTROLLER_MANAGED_ATTACH_DETACH: &str =
    "volumes.kubernetes.io/controller-managed-attach-detach";

/// Where things are, as `cargo xtask e2e` tells the tests.
#[derive(Clone, Debug)]
pub struct E2eEnv {
    /// The admin kubeconfig of the local control plane.
    pub kubeconfig: PathBuf,
    /// The CSI driver binary (`csi-mock-driver`) built by `cargo xtask tools`.
    pub driver: PathBuf,
    /// Where our binaries (`csi-sidecars`, `livenessprobe`, ...) are.
    pub bin_dir: PathBuf,
}

impl E2eEnv {
    /// Reads `CSI_E2E_KUBECONFIG` and `CSI_E2E_DRIVER` (set by `cargo xtask e2e`); our
    /// binaries are next to the test executable's `deps/` directory.
    pub fn from_env() -> anyhow::Result<E2eEnv> {
        let hint =
            "the end-to-end tests run against the local control plane: use `cargo xtask e2e`";
        let kubeconfig = std::env::var_os("CSI_E2E_KUBECONFIG")
            .map(PathBuf::from)
            .with_context(|| format!("CSI_E2E_KUBECONFIG is not set; {hint}"))?;
        if !kubeconfig.exists() {
            bail!("{} does not exist; {hint}", kubeconfig.display());
        }
        let driver = std::env::var_os("CSI_E2E_DRIVER")
            .map(PathBuf::from)
            .with_context(|| format!("CSI_E2E_DRIVER is not set; {hint}"))?;
        let exe = std::env::current_exe()?;
        // target/debug/deps/<test> -> target/debug
        let bin_dir = exe
            .parent()
            .and_then(Path::parent)
            .context("unexpected test executable location")?
            .to_path_buf();
        Ok(E2eEnv {
            kubeconfig,
            driver,
            bin_dir,
        })
    }

    /// One of our binaries, built by `cargo xtask e2e` before the tests.
    pub fn binary(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.bin_dir.join(name);
        if !path.exists() {
            bail!(
                "{} is missing: build it first (cargo xtask e2e does: cargo build --bins)",
                path.display()
            );
        }
        Ok(path)
    }

    /// The admin client.
    pub async fn admin(&self) -> anyhow::Result<Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }
}

/// A client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A token for `namespace/name` from the TokenRequest API (the ServiceAccount must exist).
pub async fn service_account_token(
    admin: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        metadata: ObjectMeta::default(),
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        status: None,
    };
    let response = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for serviceaccount {namespace}/{name}"))?;
    response
        .status
        .map(|s| s.token)
        .context("TokenRequest returned no token")
}

/// A client that authenticates as `namespace/name`, with the admin's server and CA.
pub async fn service_account_client(
    env: &E2eEnv,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Client> {
    let admin = env.admin().await?;
    let token = service_account_token(&admin, namespace, name).await?;
    let kubeconfig = Kubeconfig::read_from(&env.kubeconfig)?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Ok(Client::try_from(config)?)
}

/// Writes a kubeconfig for `namespace/name` next to `dir`, for a sidecar process to use.
pub async fn service_account_kubeconfig(
    env: &E2eEnv,
    namespace: &str,
    name: &str,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let admin = env.admin().await?;
    let token = service_account_token(&admin, namespace, name).await?;
    let mut kubeconfig = Kubeconfig::read_from(&env.kubeconfig)?;
    let user = format!("{namespace}-{name}");
    kubeconfig.auth_infos = vec![kube::config::NamedAuthInfo {
        name: user.clone(),
        auth_info: Some(kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        }),
        ..Default::default()
    }];
    for context in &mut kubeconfig.contexts {
        if let Some(ctx) = context.context.as_mut() {
            ctx.user = Some(user.clone());
        }
    }
    let path = dir.join(format!("kubeconfig-{user}"));
    std::fs::write(&path, serde_json::to_string(&kubeconfig)?)?;
    Ok(path)
}

/// A namespace for one test, with a generated name.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    client: Client,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish()
    }
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>`.
    pub async fn create(client: &Client, prefix: &str) -> anyhow::Result<TestNamespace> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("e2e-{prefix}-")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = namespaces.create(&PostParams::default(), &ns).await?;
        Ok(TestNamespace {
            name: created.metadata.name.context("namespace without name")?,
            client: client.clone(),
        })
    }

    /// Deletes it (its objects go with it).
    pub async fn delete(self) -> anyhow::Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .delete(&self.name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// The Events in this namespace, one line each, oldest first: what a failure message needs.
    pub async fn events(&self) -> String {
        describe_events(&self.client, &self.name).await
    }
}

/// The Events of `namespace`, one line each.
pub async fn describe_events(client: &Client, namespace: &str) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let mut lines: Vec<String> = list
                .items
                .iter()
                .map(|e| {
                    format!(
                        "{} {}/{} {}: {}",
                        e.type_.as_deref().unwrap_or("?"),
                        e.involved_object.kind.as_deref().unwrap_or("?"),
                        e.involved_object.name.as_deref().unwrap_or("?"),
                        e.reason.as_deref().unwrap_or("?"),
                        e.message.as_deref().unwrap_or("")
                    )
                })
                .collect();
            if lines.is_empty() {
                lines.push("(no events)".to_string());
            }
            lines.join("\n")
        }
        Err(err) => format!("(listing events failed: {err})"),
    }
}

/// Creates a Node object that no kubelet runs, annotated so the attach/detach controller
/// manages its volumes.
pub async fn create_fake_node(client: &Client, name: &str) -> anyhow::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: Some(BTreeMap::from([(
                CONTROLLER_MANAGED_ATTACH_DETACH.to_string(),
                "true".to_string(),
            )])),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    Ok(nodes.create(&PostParams::default(), &node).await?)
}

/// Creates the CSINode of `node` with one driver entry, as the kubelet would after
/// registration.
pub async fn create_csinode(
    client: &Client,
    node: &str,
    driver: &str,
    node_id: &str,
) -> anyhow::Result<CSINode> {
    let csinodes: Api<CSINode> = Api::all(client.clone());
    let object = CSINode {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            ..ObjectMeta::default()
        },
        spec: CSINodeSpec {
            drivers: vec![CSINodeDriver {
                name: driver.to_string(),
                node_id: node_id.to_string(),
                topology_keys: None,
                allocatable: None,
            }],
        },
    };
    Ok(csinodes.create(&PostParams::default(), &object).await?)
}

/// Deletes cluster-scoped objects a test created (nodes, CSINodes), ignoring "not found".
pub async fn delete_nodes(client: &Client, names: &[&str]) {
    let nodes: Api<Node> = Api::all(client.clone());
    let csinodes: Api<CSINode> = Api::all(client.clone());
    for name in names {
        let _ = csinodes.delete(name, &DeleteParams::default()).await;
        let _ = nodes.delete(name, &DeleteParams::default()).await;
    }
}

/// The driver name the e2e tests give the driver.
pub const DRIVER_NAME: &str = "csi-mock.e2e.csi.k8s.io";

/// How to start the driver.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// `--name`: the name `GetPluginInfo` reports. The mock driver also uses it as its node
    /// ID (NodeGetInfo), and publishes only to that node ID.
    pub driver_name: String,
    /// Whether the driver has the PUBLISH_UNPUBLISH_VOLUME capability.
    pub attach: bool,
    /// Anything else.
    pub extra_args: Vec<String>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            driver_name: DRIVER_NAME.to_string(),
            attach: true,
            extra_args: Vec::new(),
        }
    }
}

/// A real CSI driver, running as its own process on a socket in a temp dir.
#[derive(Debug)]
pub struct DriverProcess {
    process: Option<ChildProcess>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    binary: PathBuf,
    options: DriverOptions,
}

impl DriverProcess {
    /// Starts the driver and waits for its socket.
    pub async fn start(env: &E2eEnv, options: DriverOptions) -> anyhow::Result<DriverProcess> {
        let dir = tempfile::tempdir()?;
        let mut driver = DriverProcess {
            process: None,
            socket: dir.path().join("csi.sock"),
            binary: env.driver.clone(),
            _dir: dir,
            options,
        };
        driver.launch().await?;
        Ok(driver)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mut args = vec![
            format!("--endpoint={}", self.socket.display()),
            format!("--name={}", self.options.driver_name),
        ];
        if !self.options.attach {
            args.push("--disable-attach".to_string());
        }
        args.extend(self.options.extra_args.iter().cloned());
        let process = ChildProcess::spawn(&self.binary, &args)?;
        if let Err(err) = wait_for_path(&self.socket, Duration::from_secs(30)).await {
            bail!("{err:#}\ndriver output:\n{}", process.logs());
        }
        self.process = Some(process);
        Ok(())
    }

    /// The driver's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix:///...` for `--csi-address`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The driver name it reports.
    pub fn driver_name(&self) -> &str {
        &self.options.driver_name
    }

    /// Kills it (SIGKILL), as a crashed driver; the socket file stays behind, as it would.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.signal("KILL")?;
            process.wait(Duration::from_secs(10)).await?;
        }
        Ok(())
    }

    /// Starts it again on the same socket and state.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        let _ = std::fs::remove_file(&self.socket);
        self.launch().await
    }

    /// What it logged.
    pub fn logs(&self) -> String {
        self.process
            .as_ref()
            .map(ChildProcess::logs)
            .unwrap_or_default()
    }
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `timeout`. On timeout the
/// error says what was awaited and includes `diagnostics()` (objects, Events, process logs).
pub async fn wait_until<T, F, Fut, D, DFut>(
    what: &str,
    timeout: Duration,
    mut check: F,
    diagnostics: D,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
    D: FnOnce() -> DFut,
    DFut: Future<Output = String>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}\n--- diagnostics ---\n{}",
                diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
