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
//!   namespace and whatever the caller describes;
//! - the API server's audit log ([`E2eEnv::audit_log`], [`AuditLog`]): requests per user and
//!   user agent, watches per resource, requests refused with 403;
//! - [`apply_rbac_manifest`]: a shipped RBAC manifest, server-side applied into a test's
//!   namespace, its cluster-scoped objects renamed per test, deleted again afterwards;
//! - what kube-controller-manager's attach/detach controller acts on: a CSI PV with a bound
//!   claim ([`create_bound_csi_volume`]), a pod on a fake node ([`create_pod_on_node`],
//!   [`force_delete_pod`]), the VolumeAttachments of a PV ([`volume_attachments_of`]) and
//!   one-line descriptions for failure messages; volumes created in the driver process
//!   ([`DriverProcess::create_volume`]) and the gRPC calls it logged
//!   ([`DriverProcess::grpc_calls`]).
//!
//! Every process started here is killed when its handle is dropped, including when a test fails.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use csi_test_support::{ChildProcess, wait_for_path};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Container, Event, Namespace, Node, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, Pod, PodSpec, ServiceAccount, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams,
};
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

// ---------------------------------------------------------------------------------------------
// The control plane's state directory and the API server's audit log

/// The environment variable `cargo xtask e2e` sets to the control plane's state directory
/// (`target/cluster`): logs, and the audit log in `logs/audit.log`.
pub const STATE_DIR_ENV: &str = "CSI_E2E_STATE_DIR";

impl E2eEnv {
    /// The control plane's state directory (`CSI_E2E_STATE_DIR`, set by `cargo xtask e2e`).
    pub fn state_dir(&self) -> anyhow::Result<PathBuf> {
        std::env::var_os(STATE_DIR_ENV)
            .map(PathBuf::from)
            .with_context(|| {
                format!(
                    "{STATE_DIR_ENV} is not set; the end-to-end tests run against the local \
                     control plane: use `cargo xtask e2e`"
                )
            })
    }

    /// The API server's audit log (`<state>/logs/audit.log`, Metadata level, one JSON
    /// `audit.k8s.io/v1` Event a line).
    pub fn audit_log(&self) -> anyhow::Result<AuditLog> {
        let path = self.state_dir()?.join("logs").join("audit.log");
        if !path.exists() {
            bail!(
                "{} does not exist: the API server runs without the audit log `cargo xtask \
                 cluster up` configures",
                path.display()
            );
        }
        Ok(AuditLog::at(path))
    }
}

/// The user name the API server gives a ServiceAccount's tokens.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

pub use csi_audit_log::{AuditEvent, AuditLog};

// ---------------------------------------------------------------------------------------------
// RBAC manifests

/// Kinds [`apply_rbac_manifest`] applies, and whether they are namespaced.
const RBAC_KINDS: &[(&str, bool)] = &[
    ("ServiceAccount", true),
    ("Role", true),
    ("RoleBinding", true),
    ("ClusterRole", false),
    ("ClusterRoleBinding", false),
];

/// One object [`apply_rbac_manifest`] applied.
#[derive(Clone, Debug)]
pub struct AppliedObject {
    /// Its kind (`ClusterRole`).
    pub kind: String,
    /// Its namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Its name as applied (cluster-scoped objects get a suffix).
    pub name: String,
    /// Its name in the manifest.
    pub manifest_name: String,
    resource: ApiResource,
}

/// What [`apply_rbac_manifest`] applied; [`AppliedManifest::delete`] removes it again.
pub struct AppliedManifest {
    client: Client,
    /// The objects, in manifest order.
    pub objects: Vec<AppliedObject>,
}

impl std::fmt::Debug for AppliedManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppliedManifest")
            .field("objects", &self.objects)
            .finish()
    }
}

impl AppliedManifest {
    /// The applied objects of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a AppliedObject> + 'a {
        self.objects.iter().filter(move |o| o.kind == kind)
    }

    /// The name of the manifest's only ServiceAccount.
    pub fn service_account(&self) -> anyhow::Result<&str> {
        let accounts: Vec<&AppliedObject> = self.of_kind("ServiceAccount").collect();
        match accounts.as_slice() {
            [one] => Ok(&one.name),
            other => bail!(
                "the manifest has {} ServiceAccounts, expected exactly one",
                other.len()
            ),
        }
    }

    /// Deletes every applied object (newest first), ignoring those already gone.
    pub async fn delete(self) -> anyhow::Result<()> {
        for object in self.objects.iter().rev() {
            let api: Api<DynamicObject> = match &object.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &object.resource),
                None => Api::all_with(self.client.clone(), &object.resource),
            };
            match api.delete(&object.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("deleting {} {}", object.kind, object.name));
                }
            }
        }
        Ok(())
    }
}

/// Applies the RBAC manifest at `path` (multi-document YAML: ServiceAccounts, Roles,
/// RoleBindings, ClusterRoles, ClusterRoleBindings) with server-side apply as the admin,
/// isolated for one test:
///
/// - namespaced objects go into `namespace` (the shipped manifests say `default`), and so do
///   the ServiceAccount subjects of every binding;
/// - cluster-scoped objects are named `<name>-<namespace>`, and bindings that refer to a
///   ClusterRole of the manifest refer to the renamed one.
///
/// The rules themselves are applied unchanged: what the test checks is the shipped RBAC.
pub async fn apply_rbac_manifest(
    client: &Client,
    path: &Path,
    namespace: &str,
) -> anyhow::Result<AppliedManifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let planned = plan_rbac_manifest(&text, namespace)
        .with_context(|| format!("reading the RBAC manifest {}", path.display()))?;

    let mut applied = AppliedManifest {
        client: client.clone(),
        objects: Vec::new(),
    };
    for (object, document) in planned {
        let api: Api<DynamicObject> = match &object.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &object.resource),
            None => Api::all_with(client.clone(), &object.resource),
        };
        if let Err(err) = api
            .patch(
                &object.name,
                &PatchParams::apply("csi-e2e").force(),
                &Patch::Apply(&document),
            )
            .await
        {
            // Leave nothing half-applied behind.
            let _ = applied.delete().await;
            return Err(err).with_context(|| {
                format!(
                    "applying {} {} from {}",
                    object.kind,
                    object.name,
                    path.display()
                )
            });
        }
        applied.objects.push(object);
    }
    Ok(applied)
}

/// What [`apply_rbac_manifest`] applies for the manifest `text` in `namespace`: each object
/// and its rewritten document, in manifest order. Fails on anything but the RBAC kinds.
pub fn plan_rbac_manifest(
    text: &str,
    namespace: &str,
) -> anyhow::Result<Vec<(AppliedObject, serde_json::Value)>> {
    let documents = parse_yaml_documents(text).context("parsing the manifest as YAML")?;
    let cluster_roles: Vec<String> = documents
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let suffixed = |name: &str| format!("{name}-{namespace}");

    // Everything is checked and rewritten before anything is applied.
    let mut planned = Vec::with_capacity(documents.len());
    for mut document in documents {
        let api_version = document["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        let manifest_name = document["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(&(_, namespaced)) = RBAC_KINDS.iter().find(|(k, _)| *k == kind) else {
            bail!("{kind} {manifest_name:?} is not an RBAC kind this helper applies");
        };
        if manifest_name.is_empty() {
            bail!("a {kind} without a name");
        }
        let name = if namespaced {
            document["metadata"]["namespace"] = namespace.into();
            manifest_name.clone()
        } else {
            suffixed(&manifest_name)
        };
        document["metadata"]["name"] = name.clone().into();
        // `get_mut`, not `document["subjects"]`: indexing a JSON object mutably inserts a
        // null, which the API server rejects for kinds without that field.
        if let Some(subjects) = document
            .get_mut("subjects")
            .and_then(serde_json::Value::as_array_mut)
        {
            for subject in subjects {
                if subject["kind"] == "ServiceAccount" {
                    subject["namespace"] = namespace.into();
                }
            }
        }
        if document["roleRef"]["kind"] == "ClusterRole"
            && let Some(role) = document["roleRef"]["name"].as_str()
            && cluster_roles.iter().any(|r| r == role)
        {
            document["roleRef"]["name"] = suffixed(role).into();
        }
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version.as_str()),
        };
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
        planned.push((
            AppliedObject {
                kind,
                namespace: namespaced.then(|| namespace.to_string()),
                name,
                manifest_name,
                resource,
            },
            document,
        ));
    }
    if planned.is_empty() {
        bail!("the manifest holds no objects");
    }
    Ok(planned)
}

/// The non-empty documents of a multi-document YAML text, as JSON values.
pub fn parse_yaml_documents(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    use serde::Deserialize as _;
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

// ---------------------------------------------------------------------------------------------
// CSI volumes, claims and pods the attach/detach controller acts on

/// A CSI PersistentVolume and the claim bound to it.
#[derive(Clone, Debug)]
pub struct CsiVolume {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub claim: String,
    /// The PersistentVolume's name (`<namespace>-<claim>`, cluster-wide unique).
    pub pv: String,
    /// `spec.csi.driver`.
    pub driver: String,
    /// `spec.csi.volumeHandle`.
    pub volume_handle: String,
}

/// Creates a CSI PersistentVolume (`spec.csi.driver = driver`, `volumeHandle`, 1Gi,
/// ReadWriteOnce, Retain, no class) pre-bound to a claim `name` in `namespace`, and that
/// claim, and waits (at most `timeout`) until kube-controller-manager has bound them.
pub async fn create_bound_csi_volume(
    client: &Client,
    namespace: &str,
    name: &str,
    driver: &str,
    volume_handle: &str,
    timeout: Duration,
) -> anyhow::Result<CsiVolume> {
    let volume = CsiVolume {
        namespace: namespace.to_string(),
        claim: name.to_string(),
        pv: format!("{namespace}-{name}"),
        driver: driver.to_string(),
        volume_handle: volume_handle.to_string(),
    };
    let storage = BTreeMap::from([("storage".to_string(), Quantity("1Gi".to_string()))]);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.create(
        &PostParams::default(),
        &PersistentVolume {
            metadata: ObjectMeta {
                name: Some(volume.pv.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(storage.clone()),
                access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                persistent_volume_reclaim_policy: Some("Retain".to_string()),
                storage_class_name: Some(String::new()),
                claim_ref: Some(ObjectReference {
                    namespace: Some(namespace.to_string()),
                    name: Some(name.to_string()),
                    ..ObjectReference::default()
                }),
                csi: Some(CSIPersistentVolumeSource {
                    driver: driver.to_string(),
                    volume_handle: volume_handle.to_string(),
                    fs_type: Some("ext4".to_string()),
                    ..CSIPersistentVolumeSource::default()
                }),
                ..PersistentVolumeSpec::default()
            }),
            ..PersistentVolume::default()
        },
    )
    .await
    .with_context(|| format!("creating PersistentVolume {}", volume.pv))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    claims
        .create(
            &PostParams::default(),
            &PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                    storage_class_name: Some(String::new()),
                    volume_name: Some(volume.pv.clone()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(storage),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            },
        )
        .await
        .with_context(|| format!("creating PersistentVolumeClaim {namespace}/{name}"))?;
    wait_until(
        &format!("claim {namespace}/{name} to be Bound to {}", volume.pv),
        timeout,
        || async {
            let claim = claims.get(name).await.ok()?;
            (claim.status?.phase.as_deref() == Some("Bound")).then_some(())
        },
        || describe_events(client, namespace),
    )
    .await?;
    Ok(volume)
}

/// Creates a pod on `node` (`spec.nodeName`; no kubelet runs it) that mounts `claim`. Waits
/// first for the namespace's `default` ServiceAccount, which the ServiceAccount admission
/// plugin requires.
pub async fn create_pod_on_node(
    client: &Client,
    namespace: &str,
    name: &str,
    node: &str,
    claim: &str,
) -> anyhow::Result<Pod> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    wait_until(
        &format!("the default ServiceAccount of namespace {namespace}"),
        Duration::from_secs(60),
        || async { accounts.get_opt("default").await.ok().flatten() },
        || describe_events(client, namespace),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_string()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(0),
            containers: vec![Container {
                name: "c".to_string(),
                // Never pulled: no kubelet runs this pod.
                image: Some("pause".to_string()),
                volume_mounts: Some(vec![VolumeMount {
                    name: "data".to_string(),
                    mount_path: "/data".to_string(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "data".to_string(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.to_string(),
                    read_only: None,
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {namespace}/{name} on node {node}"))
}

/// Deletes a pod at once (grace period 0): no kubelet would ever confirm a graceful
/// deletion. A pod already gone is fine.
pub async fn force_delete_pod(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods
        .delete(
            name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err).with_context(|| format!("deleting pod {namespace}/{name}")),
    }
}

/// Deletes the claim and then the PersistentVolume, ignoring those already gone (neither
/// waits for finalizers).
pub async fn delete_csi_volume(client: &Client, volume: &CsiVolume) -> anyhow::Result<()> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &volume.namespace);
    match claims.delete(&volume.claim, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(err) => return Err(err).context("deleting the claim"),
    }
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    match pvs.delete(&volume.pv, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err).context("deleting the PersistentVolume"),
    }
}

/// The VolumeAttachments whose source is the PersistentVolume `pv` (kube-controller-manager
/// names them `csi-<sha256(volumeHandle + driver + node)>`).
pub async fn volume_attachments_of(
    client: &Client,
    pv: &str,
) -> anyhow::Result<Vec<VolumeAttachment>> {
    let attachments: Api<VolumeAttachment> = Api::all(client.clone());
    Ok(attachments
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|va| va.spec.source.persistent_volume_name.as_deref() == Some(pv))
        .collect())
}

/// The VolumeAttachments of `attacher` (`spec.attacher`), one line each: name, PV, node,
/// attached, finalizers, deletion, errors. For failure messages.
pub async fn describe_volume_attachments(client: &Client, attacher: &str) -> String {
    let attachments: Api<VolumeAttachment> = Api::all(client.clone());
    match attachments.list(&ListParams::default()).await {
        Ok(list) => {
            let mut lines: Vec<String> = list
                .items
                .iter()
                .filter(|va| va.spec.attacher == attacher)
                .map(describe_volume_attachment)
                .collect();
            if lines.is_empty() {
                lines.push(format!("(no VolumeAttachments of {attacher})"));
            }
            lines.join("\n")
        }
        Err(err) => format!("(listing VolumeAttachments failed: {err})"),
    }
}

/// One line about a VolumeAttachment.
pub fn describe_volume_attachment(va: &VolumeAttachment) -> String {
    let status = va.status.as_ref();
    format!(
        "VolumeAttachment {} pv={} node={} attached={} metadata={:?} finalizers={:?} \
         deleting={} attachError={:?} detachError={:?}",
        va.metadata.name.as_deref().unwrap_or("?"),
        va.spec
            .source
            .persistent_volume_name
            .as_deref()
            .unwrap_or("-"),
        va.spec.node_name,
        status.is_some_and(|s| s.attached),
        status.and_then(|s| s.attachment_metadata.as_ref()),
        va.metadata.finalizers.as_deref().unwrap_or_default(),
        va.metadata.deletion_timestamp.is_some(),
        status
            .and_then(|s| s.attach_error.as_ref())
            .and_then(|e| e.message.as_deref()),
        status
            .and_then(|s| s.detach_error.as_ref())
            .and_then(|e| e.message.as_deref()),
    )
}

/// One line about a PersistentVolume (phase, claim, finalizers, deletion), or why there is
/// none.
pub async fn describe_persistent_volume(client: &Client, name: &str) -> String {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    match pvs.get_opt(name).await {
        Ok(Some(pv)) => format!(
            "PersistentVolume {name} phase={:?} finalizers={:?} deleting={}",
            pv.status.as_ref().and_then(|s| s.phase.as_deref()),
            pv.metadata.finalizers.as_deref().unwrap_or_default(),
            pv.metadata.deletion_timestamp.is_some()
        ),
        Ok(None) => format!("PersistentVolume {name} is gone"),
        Err(err) => format!("(reading PersistentVolume {name} failed: {err})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Talking to the driver process

/// One gRPC call the driver process logged (a `gRPCCall:` line on its stderr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverCall {
    /// The full method, `/csi.v1.Controller/ControllerPublishVolume`.
    pub method: String,
    /// The error it answered, empty on success.
    pub error: String,
}

impl DriverCall {
    /// The method's last path element, `ControllerPublishVolume`.
    pub fn short_method(&self) -> &str {
        self.method.rsplit('/').next().unwrap_or(&self.method)
    }
}

impl DriverProcess {
    /// Creates a volume named `name` in the driver (CreateVolume, single-node-writer mount
    /// capability) and returns its ID: the mock driver publishes only volumes it knows (its
    /// three built-in ones, `1` to `3`, and those created).
    pub async fn create_volume(&self, name: &str) -> anyhow::Result<String> {
        use csi_proto::csi::v1::controller_client::ControllerClient;
        use csi_proto::csi::v1::volume_capability::{
            AccessMode, AccessType, MountVolume, access_mode::Mode,
        };
        use csi_proto::csi::v1::{CreateVolumeRequest, VolumeCapability};

        let channel = csi_test_support::unix_channel(&self.socket).await?;
        let request = CreateVolumeRequest {
            name: name.to_string(),
            volume_capabilities: vec![VolumeCapability {
                access_mode: Some(AccessMode {
                    mode: Mode::SingleNodeWriter as i32,
                }),
                access_type: Some(AccessType::Mount(MountVolume::default())),
            }],
            ..CreateVolumeRequest::default()
        };
        let response = ControllerClient::new(channel)
            .create_volume(request)
            .await
            .with_context(|| format!("CreateVolume {name:?}"))?
            .into_inner();
        let id = response
            .volume
            .map(|v| v.volume_id)
            .filter(|id| !id.is_empty())
            .with_context(|| format!("CreateVolume {name:?} returned no volume ID"))?;
        Ok(id)
    }

    /// The gRPC calls the driver logged so far, oldest first.
    pub fn grpc_calls(&self) -> Vec<DriverCall> {
        self.logs()
            .lines()
            .filter_map(|line| {
                let json = line.split_once("gRPCCall: ")?.1;
                let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
                Some(DriverCall {
                    method: value["Method"].as_str()?.to_string(),
                    error: value["Error"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect()
    }

    /// How many times `method` (short name, `ControllerPublishVolume`) was called.
    pub fn calls_to(&self, method: &str) -> usize {
        self.grpc_calls()
            .iter()
            .filter(|c| c.short_method() == method)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rbac_manifest_is_isolated_in_the_test_namespace() {
        let manifest = "\
# a comment
apiVersion: v1
kind: ServiceAccount
metadata:
  name: csi-attacher
  namespace: default
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: external-attacher-runner
rules:
  - apiGroups: [\"\"]
    resources: [\"persistentvolumes\"]
    verbs: [\"get\"]
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: csi-attacher-role
subjects:
  - kind: ServiceAccount
    name: csi-attacher
    namespace: default
roleRef:
  kind: ClusterRole
  name: external-attacher-runner
  apiGroup: rbac.authorization.k8s.io
---
kind: RoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: csi-attacher-role-cfg
  namespace: default
subjects:
  - kind: ServiceAccount
    name: csi-attacher
    namespace: default
roleRef:
  kind: Role
  name: external-attacher-cfg
  apiGroup: rbac.authorization.k8s.io
---
";
        let planned = plan_rbac_manifest(manifest, "e2e-x").unwrap();
        let names: Vec<(&str, Option<&str>, &str)> = planned
            .iter()
            .map(|(o, _)| (o.kind.as_str(), o.namespace.as_deref(), o.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("ServiceAccount", Some("e2e-x"), "csi-attacher"),
                ("ClusterRole", None, "external-attacher-runner-e2e-x"),
                ("ClusterRoleBinding", None, "csi-attacher-role-e2e-x"),
                ("RoleBinding", Some("e2e-x"), "csi-attacher-role-cfg"),
            ]
        );
        let (_, account) = &planned[0];
        assert_eq!(account["metadata"]["namespace"], "e2e-x");
        assert!(account.get("subjects").is_none(), "{account}");
        let (_, binding) = &planned[2];
        assert_eq!(binding["roleRef"]["name"], "external-attacher-runner-e2e-x");
        assert_eq!(binding["subjects"][0]["namespace"], "e2e-x");
        assert_eq!(binding["metadata"]["name"], "csi-attacher-role-e2e-x");
        let (_, role_binding) = &planned[3];
        assert_eq!(role_binding["roleRef"]["name"], "external-attacher-cfg");
        assert_eq!(role_binding["subjects"][0]["namespace"], "e2e-x");

        assert!(plan_rbac_manifest("kind: Deployment\nmetadata: {name: x}\n", "n").is_err());
        assert!(plan_rbac_manifest("---\n", "n").is_err());
    }

    #[test]
    fn the_shipped_rbac_manifests_plan() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for manifest in [
            "sidecars/external-attacher/deploy/rbac.yaml",
            "sidecars/aio/deploy/rbac.yaml",
        ] {
            let path = root.join(manifest);
            let text = std::fs::read_to_string(&path).unwrap();
            let planned = plan_rbac_manifest(&text, "e2e-x").unwrap();
            let accounts = planned
                .iter()
                .filter(|(o, _)| o.kind == "ServiceAccount")
                .count();
            assert_eq!(accounts, 1, "{manifest}");
        }
    }
}
