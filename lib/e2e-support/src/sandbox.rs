//! [`Sandbox`]: what a controller's end-to-end test runs in — its own namespace, the RBAC a
//! component ships applied into it (cluster-scoped objects renamed for the namespace), a
//! kubeconfig of its ServiceAccount, and a CSI driver process with a name of its own — so that
//! tests run in parallel without seeing each other's objects.

use std::path::{Path, PathBuf};

use kube::Client;

use crate::{
    AppliedManifest, DriverOptions, DriverProcess, E2eEnv, TestNamespace, apply_rbac_manifest,
    service_account_kubeconfig, service_account_username,
};

/// A test's namespace, RBAC, ServiceAccount kubeconfig and driver process.
pub struct Sandbox {
    /// The test environment.
    pub env: E2eEnv,
    /// The admin client.
    pub admin: Client,
    /// The test's namespace.
    pub ns: TestNamespace,
    /// The RBAC objects applied for it.
    pub rbac: AppliedManifest,
    /// The ServiceAccount of the RBAC.
    pub account: String,
    /// A kubeconfig of that ServiceAccount.
    pub kubeconfig: PathBuf,
    /// The driver process, named `<namespace>.csi.e2e.k8s.io`.
    pub driver: DriverProcess,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("ns", &self.ns.name)
            .field("driver", &self.driver_name())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A namespace `e2e-<prefix>-…`, the manifest `rbac` applied into it, and a driver started
    /// with `options` (its name is set here).
    pub async fn new(prefix: &str, rbac: &Path, options: DriverOptions) -> anyhow::Result<Sandbox> {
        Self::create(prefix, rbac, options, None).await
    }

    /// As [`Sandbox::new`], with the driver named as `options` says: for a name that matters,
    /// such as the CSI driver of a migrated in-tree plugin (`ebs.csi.aws.com`). Two tests with
    /// one such name must not run at the same time.
    pub async fn with_driver_name(
        prefix: &str,
        rbac: &Path,
        options: DriverOptions,
    ) -> anyhow::Result<Sandbox> {
        let name = options.driver_name.clone();
        Self::create(prefix, rbac, options, Some(name)).await
    }

    async fn create(
        prefix: &str,
        rbac: &Path,
        options: DriverOptions,
        driver_name: Option<String>,
    ) -> anyhow::Result<Sandbox> {
        let env = E2eEnv::from_env()?;
        let admin = env.admin().await?;
        let ns = TestNamespace::create(&admin, prefix).await?;
        let rbac = match apply_rbac_manifest(&admin, rbac, &ns.name).await {
            Ok(rbac) => rbac,
            Err(err) => {
                let _ = ns.delete().await;
                return Err(err);
            }
        };
        let driver_name = driver_name.unwrap_or_else(|| format!("{}.csi.e2e.k8s.io", ns.name));
        let rest = async {
            let account = rbac.service_account()?.to_string();
            let dir = tempfile::tempdir()?;
            let kubeconfig =
                service_account_kubeconfig(&env, &ns.name, &account, dir.path()).await?;
            let driver = DriverProcess::start(
                &env,
                DriverOptions {
                    driver_name,
                    ..options
                },
            )
            .await?;
            anyhow::Ok((account, dir, kubeconfig, driver))
        }
        .await;
        match rest {
            Ok((account, dir, kubeconfig, driver)) => Ok(Sandbox {
                env,
                admin,
                ns,
                rbac,
                account,
                kubeconfig,
                driver,
                _dir: dir,
            }),
            Err(err) => {
                let _ = rbac.delete().await;
                let _ = ns.delete().await;
                Err(err)
            }
        }
    }

    /// The driver's name.
    pub fn driver_name(&self) -> &str {
        self.driver.driver_name()
    }

    /// The ServiceAccount's user name, as the audit log shows it.
    pub fn username(&self) -> String {
        service_account_username(&self.ns.name, &self.account)
    }

    /// Deletes the RBAC objects and the namespace (the driver stops when dropped).
    pub async fn delete(self) -> anyhow::Result<()> {
        self.rbac.delete().await?;
        self.ns.delete().await
    }
}
