//! What `cluster` asks the API server: readiness, the snapshot CRDs, ServiceAccount tokens.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config};
use serde::Deserialize as _;

/// Our field manager for server-side apply, so the CRDs' fields have a recognisable owner.
pub const FIELD_MANAGER: &str = "csi-sidecars-xtask";

/// A client from a kubeconfig file, with short timeouts: everything here polls, and a
/// request that hangs should become the next attempt rather than a stuck `up`.
pub async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let file = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", kubeconfig.display()))?;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(10));
    Client::try_from(config).context("building a Kubernetes client")
}

/// `GET /readyz`: `Ok` when the API server says it is ready; otherwise the reason, with the
/// failing checks when the server answered (`/readyz?verbose` lists them).
pub async fn readyz(client: &Client) -> anyhow::Result<()> {
    let request = http::Request::get("/readyz").body(Vec::new())?;
    match client.request_text(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => {
            let verbose = http::Request::get("/readyz?verbose").body(Vec::new())?;
            let failing: Vec<String> = match client.request_text(verbose).await {
                Err(kube::Error::Api(s)) => s
                    .message
                    .lines()
                    .filter(|l| l.contains("failed"))
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            };
            bail!("/readyz answered {}: {}", status.code, failing.join("; "))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether the ServiceAccount `default/default` exists: the serviceaccount controller of
/// kube-controller-manager creates it, so it shows that the controller manager is connected
/// and running its controllers (it serves no health endpoint with `--secure-port=0`). Pods
/// cannot be created before it exists, either.
pub async fn default_service_account_exists(client: &Client) -> anyhow::Result<bool> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    Ok(api.get_opt("default").await?.is_some())
}

/// The CRD manifests in `dir`: every `*.yaml`/`*.yml` except kustomization.yaml, each file
/// possibly holding several documents, sorted by file name so the order is stable. Parsed as
/// untyped JSON so that no field the typed struct does not know is dropped on the way.
pub fn read_crds(dir: &Path) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let mut crds = Vec::new();
    for path in files {
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let is_yaml = file_name.ends_with(".yaml") || file_name.ends_with(".yml");
        if !is_yaml || file_name.starts_with("kustomization.") {
            continue;
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(document)
                .with_context(|| format!("parsing {}", path.display()))?;
            if value.is_null() {
                continue; // an empty document, e.g. after a trailing `---`
            }
            if value["kind"] != "CustomResourceDefinition" {
                bail!(
                    "{} holds a {} where a CustomResourceDefinition was expected",
                    path.display(),
                    value["kind"]
                );
            }
            let name = value["metadata"]["name"]
                .as_str()
                .with_context(|| format!("{}: a CRD without metadata.name", path.display()))?
                .to_string();
            crds.push((name, value));
        }
    }
    if crds.is_empty() {
        bail!("no CRD manifests in {}", dir.display());
    }
    Ok(crds)
}

/// Server-side applies the CRDs and waits until each is Established (served by the API
/// server), for at most `timeout` in all.
pub async fn install_crds(
    client: &Client,
    crds: &[(String, serde_json::Value)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    // force: a re-apply after someone else edited a field must not stop `up`.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (name, crd) in crds {
        api.patch(name, &params, &Patch::Apply(crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
    }
    let established = async {
        for (name, _) in crds {
            await_condition(api.clone(), name, conditions::is_crd_established())
                .await
                .with_context(|| format!("waiting for CRD {name}"))?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, established)
        .await
        .with_context(|| format!("the snapshot CRDs were not Established within {timeout:?}"))?
}

/// A token for the ServiceAccount `namespace/name` from the TokenRequest API. The
/// ServiceAccount must exist: creating it here would hide a test's mistake.
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    name: &str,
    expiration: Duration,
) -> anyhow::Result<String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    if api.get_opt(name).await?.is_none() {
        bail!(
            "ServiceAccount {namespace}/{name} does not exist; create it first \
             (kubectl -n {namespace} create serviceaccount {name})"
        );
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(expiration.as_secs() as i64),
            ..Default::default()
        },
        ..Default::default()
    };
    let response = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?;
    let status = response
        .status
        .context("the TokenRequest response has no status")?;
    Ok(status.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: volumesnapshotclasses.snapshot.storage.k8s.io
  annotations:
    api-approved.kubernetes.io: \"https://github.com/kubernetes-csi/external-snapshotter/pull/814\"
spec:
  group: snapshot.storage.k8s.io
";

    #[test]
    fn reads_crds_but_not_kustomization() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b.yaml"), format!("---\n{CRD}---\n")).unwrap();
        fs::write(
            dir.path().join("kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
        )
        .unwrap();
        fs::write(dir.path().join("README.md"), "not yaml").unwrap();
        let crds = read_crds(dir.path()).unwrap();
        assert_eq!(crds.len(), 1);
        assert_eq!(crds[0].0, "volumesnapshotclasses.snapshot.storage.k8s.io");
        assert_eq!(crds[0].1["spec"]["group"], "snapshot.storage.k8s.io");
    }

    #[test]
    fn rejects_what_is_not_a_crd_and_an_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_crds(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no CRD manifests"), "{err}");
        fs::write(dir.path().join("a.yaml"), "kind: ConfigMap\n").unwrap();
        let err = read_crds(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ConfigMap"), "{err}");
    }
}
