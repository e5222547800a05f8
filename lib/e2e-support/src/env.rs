//! Where the control plane and our binaries are ([`E2eEnv`], from the environment `cargo xtask
//! e2e` sets), and the API clients the tests use: the admin's, and a ServiceAccount's (token from
//! the TokenRequest API) so a sidecar can be checked under the RBAC we ship.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

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
}

/// The user name the API server gives a ServiceAccount's tokens.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}
