//! [`StorageFixture`]: a [`Sandbox`] for tests of the controllers that work on claims and
//! volumes (provisioner, resizer): StorageClasses of the test's driver, claims, nodes with the
//! mock driver's topology, waiting for claims to bind, their Events, and a clean-up that leaves
//! nothing behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use csi_test_support::ChildProcess;
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::{
    DriverOptions, Sandbox, create_csinode_with_topology, create_fake_node_with_labels,
    delete_nodes, describe_events, has_exited, ignore_not_found, tail, wait_until,
};

/// How long one step may take.
pub const WAIT: Duration = Duration::from_secs(60);
/// The lines of a process log a failure message shows.
const LOG_TAIL: usize = 60;
/// The mock driver's topology key and the one value it reports (`--enable-topology`).
pub const MOCK_TOPOLOGY_KEY: &str = "io.kubernetes.storage.mock/node";
/// The one topology value of the mock driver.
pub const MOCK_TOPOLOGY_VALUE: &str = "some-mock-node";

/// A PV's annotations (empty when it has none).
pub fn annotations(pv: &PersistentVolume) -> BTreeMap<String, String> {
    pv.metadata.annotations.clone().unwrap_or_default()
}

/// A claim's phase (empty when it has no status).
pub fn phase(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// A test's [`Sandbox`], and the nodes and StorageClasses it made: what a test of a
/// controller that provisions, resizes or modifies claims starts from.
#[derive(Debug)]
pub struct StorageFixture {
    /// The namespace, RBAC, kubeconfig and driver.
    pub sandbox: Sandbox,
    nodes: Vec<String>,
    classes: Vec<String>,
}

impl std::ops::Deref for StorageFixture {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl StorageFixture {
    /// A sandbox for `prefix` with the RBAC `rbac` and a driver started with `driver_args`.
    pub async fn new(
        prefix: &str,
        rbac: &Path,
        driver_args: &[&str],
    ) -> anyhow::Result<StorageFixture> {
        let options = DriverOptions {
            extra_args: driver_args.iter().map(|a| a.to_string()).collect(),
            ..DriverOptions::default()
        };
        Ok(StorageFixture {
            sandbox: Sandbox::new(prefix, rbac, options).await?,
            nodes: Vec::new(),
            classes: Vec::new(),
        })
    }

    /// The flags every provisioner process here gets.
    pub fn common_args(&self) -> Vec<String> {
        vec![
            format!("--csi-address={}", self.driver.endpoint()),
            format!("--kubeconfig={}", self.kubeconfig.display()),
            "--leader-election".to_string(),
            format!("--leader-election-namespace={}", self.ns.name),
        ]
    }

    /// A node that the driver registered with the mock driver's topology.
    pub async fn topology_node(&mut self, suffix: &str) -> anyhow::Result<String> {
        let name = format!("{}-{suffix}", self.ns.name);
        self.nodes.push(name.clone());
        create_fake_node_with_labels(
            &self.admin,
            &name,
            &[(MOCK_TOPOLOGY_KEY, MOCK_TOPOLOGY_VALUE)],
        )
        .await?;
        create_csinode_with_topology(
            &self.admin,
            &name,
            self.driver_name(),
            self.driver_name(),
            &[MOCK_TOPOLOGY_KEY],
        )
        .await?;
        Ok(name)
    }

    /// A StorageClass of this test's driver, `<namespace>-<suffix>`, with `extra` merged in.
    pub async fn storage_class(&mut self, suffix: &str, extra: Value) -> anyhow::Result<String> {
        let name = format!("{}-{suffix}", self.ns.name);
        let mut class = json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": self.driver_name(),
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        });
        merge(&mut class, extra);
        let class: StorageClass = serde_json::from_value(class)?;
        Api::<StorageClass>::all(self.admin.clone())
            .create(&PostParams::default(), &class)
            .await
            .with_context(|| format!("creating StorageClass {name}"))?;
        self.classes.push(name.clone());
        Ok(name)
    }

    /// A 1 GiB ReadWriteOnce claim of `class`, with `extra` merged in.
    pub async fn claim(&self, name: &str, class: &str, extra: Value) -> anyhow::Result<()> {
        let mut claim = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": self.ns.name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": class,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        });
        merge(&mut claim, extra);
        let claim: PersistentVolumeClaim = serde_json::from_value(claim)?;
        self.claims()
            .create(&PostParams::default(), &claim)
            .await
            .with_context(|| format!("creating claim {name}"))?;
        Ok(())
    }

    /// The claims of the namespace.
    pub fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.admin.clone(), &self.ns.name)
    }

    /// Every PV.
    pub fn pvs(&self) -> Api<PersistentVolume> {
        Api::all(self.admin.clone())
    }

    /// Waits until every claim in `names` is Bound; returns their PVs by claim name.
    pub async fn wait_bound(
        &self,
        names: &[String],
        timeout: Duration,
        processes: &[(&str, &ChildProcess)],
    ) -> anyhow::Result<BTreeMap<String, PersistentVolume>> {
        let what = format!("{} claims to be Bound", names.len());
        let bound = wait_until(
            &what,
            timeout,
            || async {
                if processes.iter().any(|(_, p)| has_exited(p)) {
                    return Some(None);
                }
                let claims = self.claims().list(&ListParams::default()).await.ok()?;
                let bound: BTreeMap<String, String> = claims
                    .items
                    .iter()
                    .filter(|c| phase(c) == "Bound")
                    .filter_map(|c| {
                        Some((
                            c.metadata.name.clone()?,
                            c.spec.as_ref()?.volume_name.clone()?,
                        ))
                    })
                    .collect();
                names
                    .iter()
                    .all(|n| bound.contains_key(n))
                    .then_some(Some(bound))
            },
            || self.diagnostics(processes),
        )
        .await?;
        let Some(bound) = bound else {
            anyhow::bail!(
                "a process exited while waiting for {what}\n{}",
                self.diagnostics(processes).await
            );
        };
        let mut pvs = BTreeMap::new();
        for name in names {
            pvs.insert(name.clone(), self.pvs().get(&bound[name]).await?);
        }
        Ok(pvs)
    }

    /// The Events of the namespace's object `name`, as `type reason: message`.
    pub async fn events_of(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let events: Api<Event> = Api::namespaced(self.admin.clone(), &self.ns.name);
        let mut list: Vec<Event> = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect();
        list.sort_by_key(|e| e.first_timestamp.clone().map(|t| t.0));
        Ok(list
            .iter()
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e.type_.as_deref().unwrap_or_default(),
                    e.reason.as_deref().unwrap_or_default(),
                    e.message.as_deref().unwrap_or_default()
                )
            })
            .collect())
    }

    /// Events, claims, the driver's and the processes' logs.
    pub async fn diagnostics(&self, processes: &[(&str, &ChildProcess)]) -> String {
        let claims = match self.claims().list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .map(|c| {
                    format!(
                        "{} {} {}",
                        c.metadata.name.as_deref().unwrap_or_default(),
                        phase(c),
                        c.spec
                            .as_ref()
                            .and_then(|s| s.volume_name.as_deref())
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(err) => format!("listing claims failed: {err}"),
        };
        let mut out = format!(
            "--- events in {} ---\n{}\n--- claims ---\n{claims}\n--- driver log (tail) ---\n{}",
            self.ns.name,
            describe_events(&self.admin, &self.ns.name).await,
            tail(&self.driver.logs(), LOG_TAIL),
        );
        for (name, process) in processes {
            let state = if has_exited(process) {
                "exited"
            } else {
                "running"
            };
            out.push_str(&format!(
                "\n--- {name} ({state}) log (tail) ---\n{}",
                tail(&process.logs(), LOG_TAIL)
            ));
        }
        out
    }

    /// Deletes the claim and waits until its PV is gone (reclaim Delete).
    pub async fn delete_and_wait_for_pv(
        &self,
        claim: &str,
        pv: &str,
        processes: &[(&str, &ChildProcess)],
    ) -> anyhow::Result<()> {
        self.claims()
            .delete(claim, &DeleteParams::default())
            .await?;
        wait_until(
            &format!("PersistentVolume {pv} of the deleted claim {claim} to be deleted"),
            WAIT,
            || async { matches!(self.pvs().get_opt(pv).await, Ok(None)).then_some(()) },
            || self.diagnostics(processes),
        )
        .await
    }

    /// Fails if the API server refused the ServiceAccount anything.
    pub fn assert_nothing_forbidden(&self) -> anyhow::Result<()> {
        let forbidden = self.env.audit_log()?.forbidden(&self.username())?;
        ensure!(
            forbidden.is_empty(),
            "the API server refused {} these requests under the shipped RBAC:\n{}",
            self.username(),
            forbidden
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        Ok(())
    }

    /// Removes everything the test made, whatever its `outcome`, and returns that outcome.
    pub async fn finish(self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        let cleanup = self.remove_everything().await;
        match (outcome, cleanup) {
            (Ok(()), cleanup) => cleanup,
            (Err(err), Ok(())) => Err(err),
            (Err(err), Err(cleanup)) => {
                Err(err.context(format!("cleaning up failed too: {cleanup:#}")))
            }
        }
    }

    /// Removes the claims, this driver's PVs, the StorageClasses and nodes, the RBAC and the
    /// namespace (finalizers taken off what is left).
    pub async fn remove_everything(self) -> anyhow::Result<()> {
        let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        for claim in self.claims().list(&ListParams::default()).await?.items {
            let name = claim.metadata.name.unwrap_or_default();
            ignore_not_found(self.claims().delete(&name, &DeleteParams::default()).await)?;
            ignore_not_found(
                self.claims()
                    .patch(&name, &PatchParams::default(), &no_finalizers)
                    .await,
            )?;
        }
        for pv in self.pvs().list(&ListParams::default()).await?.items {
            let ours = pv
                .spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .is_some_and(|csi| csi.driver == self.driver_name());
            if !ours {
                continue;
            }
            let name = pv.metadata.name.clone().unwrap_or_default();
            ignore_not_found(self.pvs().delete(&name, &DeleteParams::default()).await)?;
            ignore_not_found(
                self.pvs()
                    .patch(&name, &PatchParams::default(), &no_finalizers)
                    .await,
            )?;
        }
        let classes: Api<StorageClass> = Api::all(self.admin.clone());
        for class in &self.classes {
            ignore_not_found(classes.delete(class, &DeleteParams::default()).await)?;
        }
        let nodes: Vec<&str> = self.nodes.iter().map(String::as_str).collect();
        delete_nodes(&self.admin, &nodes).await;
        self.sandbox.delete().await
    }
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch,
    }
}
