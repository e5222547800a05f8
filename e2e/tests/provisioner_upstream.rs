//! Ours against upstream: the same claims go through upstream's Go `csi-provisioner` v6.4.0
//! (built by `cargo xtask tools`, named by `cargo xtask e2e` in `CSI_E2E_GO_PROVISIONER`) and
//! through our `csi-provisioner`, side by side on one control plane, and what each writes is
//! compared: the PersistentVolumes (spec, annotations, labels, finalizers, status, field
//! managers), the claims, the Events on the claims, on the volumes and on the leader election
//! Lease (both run with `--leader-election` in their namespace), the CreateVolume and
//! DeleteVolume requests the driver received, and what deletion leaves behind (in the driver
//! and in the API). A difference is a bug in ours unless [`DELIBERATE`] names it with its reason.
//!
//! Each side has its own namespace, its own driver process (Kubernetes' e2e mock driver with
//! `--enable-topology`, named after the namespace), its own fake node with a CSINode carrying
//! the driver's topology key, and its own StorageClasses (`<namespace>-<case>`). Both
//! provisioners run at once, each seeing the other side's claims and leaving them alone. Both
//! run as the cluster admin: permissions are not compared here (our shipped RBAC is checked by
//! the provisioner's own end-to-end tests), so any difference is behaviour.
//!
//! Before comparing, each side's objects are normalised: the namespace, driver and node names
//! become `NS`, `DRIVER`, `NODE`; each volume's name becomes `PV(<claim>)` and its handle
//! `HANDLE(<claim>)`; UIDs, resource versions and timestamps are dropped; the digits of the
//! provisioner identity (a start time and a random number) become `N`.
//!
//! Until our `csi-provisioner` is built, only the Go side runs (its expectations checked, so the
//! harness itself is tested) and the comparison is skipped with a message saying so.
//!
//! The comparison is tested by setting `CSI_E2E_PROVISIONER_AS_OURS` to a binary that stands
//! for ours: upstream's own must agree with itself (nothing random survives normalisation), and
//! upstream's with one flag changed (a script adding `--default-fstype=xfs`) must not. Each
//! side's normalised snapshots are written to `target/debug/provisioner-upstream/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use csi_e2e_support::compare::{
    compare_values, digits_to_n, is_conflict_retry, normalize_conditions, strip_metadata,
    uuids_to_placeholder,
};
use csi_e2e_support::{
    DriverOptions, DriverProcess, E2eEnv, TestNamespace, create_fake_node, delete_nodes,
    describe_events, ignore_not_found, tail, wait_until,
};
use csi_test_support::ChildProcess;
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
/// The lines of a process log a failure message shows.
const LOG_TAIL: usize = 60;

/// The mock driver's topology (`service.TopologyKey`/`TopologyValue` of
/// `test/e2e/storage/drivers/csi-test/mock/service`): one segment, whatever `--name` it has.
const TOPOLOGY_KEY: &str = "io.kubernetes.storage.mock/node";
const TOPOLOGY_VALUE: &str = "some-mock-node";

/// The annotation a claim names its node secret with (used by a `${pvc.annotations[...]}`
/// template).
const PUBLISH_SECRET_ANNOTATION: &str = "e2e.example.com/publish-secret";

/// Differences between upstream and ours that are deliberate, each with its reason, as
/// `(what differs, why)`. Nothing yet: every difference found is a bug in ours.
const DELIBERATE: &[(&str, &str)] = &[];

/// The flags both provisioners get (besides `--csi-address` and `--kubeconfig`): everything
/// else at upstream's defaults.
const PROVISIONER_ARGS: &[&str] = &[
    "--extra-create-metadata",
    "--default-fstype=ext4",
    // The claims are few; a higher budget only keeps the test short.
    "--kube-api-qps=50",
    "--kube-api-burst=100",
    "-v=5",
];

/// How a claim ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Bound to a volume the provisioner created.
    Bound,
    /// Pending, with a `ProvisioningFailed` Event.
    Fails,
}

/// One StorageClass, as JSON without its name and provisioner (filled in per side; `NS` in a
/// string is the side's namespace).
struct Class {
    name: &'static str,
    spec: Value,
}

/// One claim: its class (a [`Class::name`]), size, modes and annotations, and how it ends.
struct Claim {
    name: &'static str,
    class: &'static str,
    size: &'static str,
    access_modes: &'static [&'static str],
    block: bool,
    /// `volume.kubernetes.io/selected-node`, as the scheduler would set it (there is none).
    selected_node: bool,
    /// A claim of this side to clone.
    clone_of: Option<&'static str>,
    annotations: &'static [(&'static str, &'static str)],
    outcome: Outcome,
}

const CLAIM: Claim = Claim {
    name: "",
    class: "",
    size: "1Gi",
    access_modes: &["ReadWriteOnce"],
    block: false,
    selected_node: false,
    clone_of: None,
    annotations: &[],
    outcome: Outcome::Bound,
};

fn class_list() -> Vec<Class> {
    vec![
        Class {
            name: "immediate",
            spec: json!({"volumeBindingMode": "Immediate", "reclaimPolicy": "Delete"}),
        },
        Class {
            name: "wffc",
            spec: json!({"volumeBindingMode": "WaitForFirstConsumer"}),
        },
        Class {
            name: "retain",
            spec: json!({"reclaimPolicy": "Retain", "parameters": {"e2e-param": "kept"}}),
        },
        Class {
            name: "mount-options",
            spec: json!({"mountOptions": ["debug", "noatime"]}),
        },
        Class {
            name: "fstype",
            spec: json!({"parameters": {"csi.storage.k8s.io/fstype": "xfs"}}),
        },
        Class {
            name: "topology",
            spec: json!({"allowedTopologies": [{"matchLabelExpressions": [
                {"key": TOPOLOGY_KEY, "values": [TOPOLOGY_VALUE]}
            ]}]}),
        },
        Class {
            name: "wffc-topology",
            spec: json!({
                "volumeBindingMode": "WaitForFirstConsumer",
                "allowedTopologies": [{"matchLabelExpressions": [
                    {"key": TOPOLOGY_KEY, "values": [TOPOLOGY_VALUE]}
                ]}]
            }),
        },
        Class {
            // Every secret kind, with the templates each allows.
            name: "secrets",
            spec: json!({"parameters": {
                "e2e-param": "value",
                "csi.storage.k8s.io/provisioner-secret-name": "${pvc.name}-prov",
                "csi.storage.k8s.io/provisioner-secret-namespace": "${pvc.namespace}",
                "csi.storage.k8s.io/controller-publish-secret-name": "cp-${pv.name}",
                "csi.storage.k8s.io/controller-publish-secret-namespace": "${pvc.namespace}",
                "csi.storage.k8s.io/node-stage-secret-name": "stage-${pvc.namespace}-${pvc.name}",
                "csi.storage.k8s.io/node-stage-secret-namespace": "NS",
                "csi.storage.k8s.io/node-publish-secret-name":
                    format!("${{pvc.annotations['{PUBLISH_SECRET_ANNOTATION}']}}"),
                "csi.storage.k8s.io/node-publish-secret-namespace": "${pvc.namespace}",
                "csi.storage.k8s.io/controller-expand-secret-name": "expand",
                "csi.storage.k8s.io/controller-expand-secret-namespace": "${pv.name}",
                "csi.storage.k8s.io/node-expand-secret-name": "node-expand",
                "csi.storage.k8s.io/node-expand-secret-namespace": "${pvc.namespace}",
                "csi.storage.k8s.io/controller-modify-secret-name": "modify",
                "csi.storage.k8s.io/controller-modify-secret-namespace": "${pvc.namespace}",
            }}),
        },
        Class {
            // The default secret stands for every kind that has none of its own.
            name: "default-secret",
            spec: json!({"parameters": {
                "csi.storage.k8s.io/secret-name": "default-secret",
                "csi.storage.k8s.io/secret-namespace": "${pvc.namespace}",
            }}),
        },
        Class {
            // The deprecated, unprefixed keys.
            name: "legacy-secret",
            spec: json!({"parameters": {
                "csiProvisionerSecretName": "default-secret",
                "csiProvisionerSecretNamespace": "NS",
                "csiNodePublishSecretName": "legacy-publish",
                "csiNodePublishSecretNamespace": "NS",
            }}),
        },
        Class {
            name: "missing-secret",
            spec: json!({"parameters": {
                "csi.storage.k8s.io/provisioner-secret-name": "absent",
                "csi.storage.k8s.io/provisioner-secret-namespace": "${pvc.namespace}",
            }}),
        },
        Class {
            name: "bad-parameter",
            spec: json!({"parameters": {"csi.storage.k8s.io/no-such-key": "x"}}),
        },
    ]
}

/// The claim every clone starts from; created and bound before the others.
const CLONE_SOURCE: &str = "clone-source";

fn claim_list() -> Vec<Claim> {
    vec![
        Claim {
            name: CLONE_SOURCE,
            class: "immediate",
            ..CLAIM
        },
        Claim {
            name: "immediate",
            class: "immediate",
            ..CLAIM
        },
        Claim {
            name: "wffc",
            class: "wffc",
            selected_node: true,
            ..CLAIM
        },
        Claim {
            name: "block",
            class: "immediate",
            block: true,
            access_modes: &["ReadWriteOnce", "ReadOnlyMany"],
            ..CLAIM
        },
        Claim {
            name: "rwop",
            class: "immediate",
            access_modes: &["ReadWriteOncePod"],
            size: "1500Mi",
            ..CLAIM
        },
        Claim {
            name: "retain",
            class: "retain",
            ..CLAIM
        },
        Claim {
            name: "mount-options",
            class: "mount-options",
            ..CLAIM
        },
        Claim {
            name: "fstype",
            class: "fstype",
            ..CLAIM
        },
        Claim {
            name: "topology",
            class: "topology",
            ..CLAIM
        },
        Claim {
            name: "wffc-topology",
            class: "wffc-topology",
            selected_node: true,
            ..CLAIM
        },
        Claim {
            name: "secrets",
            class: "secrets",
            annotations: &[(PUBLISH_SECRET_ANNOTATION, "publish-secrets")],
            ..CLAIM
        },
        Claim {
            name: "default-secret",
            class: "default-secret",
            ..CLAIM
        },
        Claim {
            name: "legacy-secret",
            class: "legacy-secret",
            ..CLAIM
        },
        Claim {
            name: "clone",
            class: "immediate",
            size: "2Gi",
            clone_of: Some(CLONE_SOURCE),
            ..CLAIM
        },
        Claim {
            name: "missing-secret",
            class: "missing-secret",
            outcome: Outcome::Fails,
            ..CLAIM
        },
        Claim {
            name: "bad-parameter",
            class: "bad-parameter",
            outcome: Outcome::Fails,
            ..CLAIM
        },
        Claim {
            // The mock driver refuses 1 TiB or more with OutOfRange.
            name: "too-big",
            class: "immediate",
            size: "2Ti",
            outcome: Outcome::Fails,
            ..CLAIM
        },
    ]
}

/// Secrets the classes read at provisioning (the others are only referenced).
fn secret_list() -> Vec<(&'static str, &'static str)> {
    vec![
        ("secrets-prov", "provisioner"),
        ("default-secret", "default"),
    ]
}

fn reclaim_policy(class: &str) -> &'static str {
    let spec = class_list()
        .into_iter()
        .find(|c| c.name == class)
        .map(|c| c.spec)
        .unwrap_or_default();
    if spec["reclaimPolicy"] == "Retain" {
        "Retain"
    } else {
        "Delete"
    }
}

/// Which provisioner a side runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Go,
    Ours,
}

impl Which {
    fn label(self) -> &'static str {
        match self {
            Which::Go => "upstream Go csi-provisioner v6.4.0",
            Which::Ours => "our csi-provisioner",
        }
    }
}

/// One side: a namespace, driver, node, classes, secrets and a provisioner process.
struct Side {
    which: Which,
    admin: Client,
    ns: TestNamespace,
    driver: DriverProcess,
    node: String,
    provisioner: Option<ChildProcess>,
}

impl Side {
    async fn start(env: &E2eEnv, which: Which, binary: PathBuf) -> anyhow::Result<Side> {
        let admin = env.admin().await?;
        let prefix = match which {
            Which::Go => "prov-go",
            Which::Ours => "prov-ours",
        };
        let ns = TestNamespace::create(&admin, prefix).await?;
        let node = format!("{}-node", ns.name);
        let driver = match DriverProcess::start(
            env,
            DriverOptions {
                driver_name: format!("{}.csi.e2e.k8s.io", ns.name),
                attach: true,
                extra_args: vec!["--enable-topology".to_string()],
            },
        )
        .await
        {
            Ok(driver) => driver,
            Err(err) => {
                let _ = ns.delete().await;
                return Err(err);
            }
        };
        let mut side = Side {
            which,
            admin,
            ns,
            driver,
            node,
            provisioner: None,
        };
        if let Err(err) = side.set_up(env, &binary).await {
            return Err(side.finish(Err(err)).await.unwrap_err());
        }
        Ok(side)
    }

    fn driver_name(&self) -> &str {
        self.driver.driver_name()
    }

    fn class_name(&self, class: &str) -> String {
        format!("{}-{class}", self.ns.name)
    }

    async fn set_up(&mut self, env: &E2eEnv, binary: &PathBuf) -> anyhow::Result<()> {
        // The node, labelled with the driver's topology, and its CSINode as the kubelet writes
        // it after registration (node ID = the mock driver's name).
        create_fake_node(&self.admin, &self.node).await?;
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.admin.clone());
        nodes
            .patch(
                &self.node,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {TOPOLOGY_KEY: TOPOLOGY_VALUE}}})),
            )
            .await?;
        let csinodes: Api<CSINode> = Api::all(self.admin.clone());
        let csinode: CSINode = serde_json::from_value(json!({
            "metadata": {"name": self.node},
            "spec": {"drivers": [{
                "name": self.driver_name(),
                "nodeID": self.driver_name(),
                "topologyKeys": [TOPOLOGY_KEY],
            }]}
        }))?;
        csinodes.create(&PostParams::default(), &csinode).await?;

        let secrets: Api<Secret> = Api::namespaced(self.admin.clone(), &self.ns.name);
        for (name, value) in secret_list() {
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {"name": name},
                "stringData": {"key": value},
            }))?;
            secrets.create(&PostParams::default(), &secret).await?;
        }

        let classes: Api<StorageClass> = Api::all(self.admin.clone());
        for class in class_list() {
            let mut spec = class.spec;
            spec["metadata"] = json!({"name": self.class_name(class.name)});
            spec["provisioner"] = json!(self.driver_name());
            let text =
                serde_json::to_string(&spec)?.replace("\"NS\"", &format!("{:?}", self.ns.name));
            let object: StorageClass = serde_json::from_str(&text)?;
            classes.create(&PostParams::default(), &object).await?;
        }

        let mut args = vec![
            format!("--csi-address={}", self.driver.endpoint()),
            format!("--kubeconfig={}", env.kubeconfig.display()),
            "--leader-election".to_string(),
            format!("--leader-election-namespace={}", self.ns.name),
        ];
        args.extend(PROVISIONER_ARGS.iter().map(ToString::to_string));
        self.provisioner = Some(ChildProcess::spawn(binary, &args)?);
        Ok(())
    }

    async fn create_claim(&self, claim: &Claim) -> anyhow::Result<()> {
        let mut annotations: BTreeMap<String, String> = claim
            .annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if claim.selected_node {
            annotations.insert(
                "volume.kubernetes.io/selected-node".to_string(),
                self.node.clone(),
            );
        }
        let mut spec = json!({
            "storageClassName": self.class_name(claim.class),
            "accessModes": claim.access_modes,
            "resources": {"requests": {"storage": claim.size}},
        });
        if claim.block {
            spec["volumeMode"] = json!("Block");
        }
        if let Some(source) = claim.clone_of {
            spec["dataSource"] = json!({"kind": "PersistentVolumeClaim", "name": source});
        }
        let object: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": claim.name, "annotations": annotations},
            "spec": spec,
        }))?;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.admin.clone(), &self.ns.name);
        claims
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating claim {}", claim.name))?;
        Ok(())
    }

    fn claims_api(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.admin.clone(), &self.ns.name)
    }

    async fn events(&self, namespace: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.admin.clone(), namespace);
        events
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    /// For failure messages: Events, the processes' logs.
    async fn diagnostics(&self) -> String {
        let provisioner = self
            .provisioner
            .as_ref()
            .map(ChildProcess::logs)
            .unwrap_or_default();
        format!(
            "--- {}: events in {} ---\n{}\n--- driver log (tail) ---\n{}\n--- provisioner log (tail) ---\n{}",
            self.which.label(),
            self.ns.name,
            describe_events(&self.admin, &self.ns.name).await,
            tail(&self.driver.logs(), LOG_TAIL),
            tail(&provisioner, LOG_TAIL),
        )
    }

    /// Fails at once, naming the side, when its provisioner has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(process) = self.provisioner.as_mut()
            && !process.is_running()
        {
            bail!(
                "{} exited:\n{}",
                self.which.label(),
                tail(&process.logs(), LOG_TAIL)
            );
        }
        Ok(())
    }

    /// Waits until every claim in `names` has its outcome: Bound with a
    /// `ProvisioningSucceeded` Event, or a `ProvisioningFailed` Event.
    async fn wait_for_outcomes(&mut self, names: &[&str]) -> anyhow::Result<()> {
        let expected: BTreeMap<&str, Outcome> = claim_list()
            .into_iter()
            .filter(|c| names.contains(&c.name))
            .map(|c| (c.name, c.outcome))
            .collect();
        self.check_running()?;
        let what = format!(
            "{}: claims {names:?} to reach their outcomes",
            self.which.label()
        );
        let claims = self.claims_api();
        let done = wait_until(
            &what,
            WAIT,
            || async {
                let list = claims.list(&ListParams::default()).await.ok()?;
                let events = self.events(&self.ns.name).await;
                let reasons = |claim: &str| -> BTreeSet<String> {
                    events
                        .iter()
                        .filter(|e| e.involved_object.name.as_deref() == Some(claim))
                        .filter_map(|e| e.reason.clone())
                        .collect()
                };
                let all = expected.iter().all(|(name, outcome)| {
                    let bound = list.items.iter().any(|c| {
                        c.metadata.name.as_deref() == Some(name)
                            && c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                    });
                    match outcome {
                        Outcome::Bound => bound && reasons(name).contains("ProvisioningSucceeded"),
                        Outcome::Fails => !bound && reasons(name).contains("ProvisioningFailed"),
                    }
                });
                all.then_some(())
            },
            || self.diagnostics(),
        )
        .await;
        self.check_running()?;
        done
    }
}

impl Side {
    /// Removes everything this side made, and returns `outcome` (a failed clean-up is added
    /// to a failure, or is the error of a success).
    async fn finish(self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        let cleanup = self.remove_everything().await;
        match (outcome, cleanup) {
            (Ok(()), cleanup) => cleanup,
            (Err(err), Ok(())) => Err(err),
            (Err(err), Err(cleanup)) => {
                Err(err.context(format!("cleaning up failed too: {cleanup:#}")))
            }
        }
    }

    async fn remove_everything(mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.provisioner.take() {
            let _ = process.signal("TERM");
            let _ = process.wait(Duration::from_secs(10)).await;
        }
        // Without a provisioner nothing takes its finalizers off: this driver's PVs and claims
        // go with theirs removed.
        let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        let pvs: Api<PersistentVolume> = Api::all(self.admin.clone());
        for pv in pvs.list(&ListParams::default()).await?.items {
            let mine = pv
                .spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .is_some_and(|csi| csi.driver == self.driver_name());
            if !mine {
                continue;
            }
            let name = pv.metadata.name.unwrap_or_default();
            ignore_not_found(
                pvs.delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
            ignore_not_found(
                pvs.patch(&name, &PatchParams::default(), &no_finalizers)
                    .await
                    .map(|_| ()),
            )?;
        }
        let claims = self.claims_api();
        for claim in claims.list(&ListParams::default()).await?.items {
            let name = claim.metadata.name.unwrap_or_default();
            ignore_not_found(
                claims
                    .patch(&name, &PatchParams::default(), &no_finalizers)
                    .await
                    .map(|_| ()),
            )?;
        }
        let classes: Api<StorageClass> = Api::all(self.admin.clone());
        for class in class_list() {
            ignore_not_found(
                classes
                    .delete(&self.class_name(class.name), &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
        }
        delete_nodes(&self.admin, &[&self.node]).await;
        self.ns.delete().await
    }
}

/// What makes one side's objects comparable with the other's: names become placeholders.
struct Normalizer {
    /// `(text, placeholder)`, longest first.
    replacements: Vec<(String, String)>,
    /// Volume handle -> claim.
    handles: BTreeMap<String, String>,
}

impl Normalizer {
    /// From the side's claims (their UIDs name the volumes: `pvc-<uid>`, upstream's default
    /// `--volume-name-prefix`, no `--volume-name-uuid-length`) and the PVs bound to them.
    fn new(side: &Side, claims: &[PersistentVolumeClaim], pvs: &[PersistentVolume]) -> Self {
        let mut replacements = Vec::new();
        for claim in claims {
            let (Some(name), Some(uid)) = (&claim.metadata.name, &claim.metadata.uid) else {
                continue;
            };
            replacements.push((format!("pvc-{uid}"), format!("PV({name})")));
            replacements.push((uid.clone(), format!("UID({name})")));
        }
        replacements.push((side.driver_name().to_string(), "DRIVER".to_string()));
        replacements.push((side.node.clone(), "NODE".to_string()));
        replacements.push((side.ns.name.clone(), "NS".to_string()));
        let handles = pvs
            .iter()
            .filter_map(|pv| {
                let spec = pv.spec.as_ref()?;
                let claim = spec.claim_ref.as_ref()?.name.clone()?;
                Some((spec.csi.as_ref()?.volume_handle.clone(), claim))
            })
            .collect();
        Normalizer {
            replacements,
            handles,
        }
    }

    fn text(&self, text: &str) -> String {
        self.replacements
            .iter()
            .fold(text.to_string(), |text, (from, to)| text.replace(from, to))
    }

    fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn handle(&self, handle: &str) -> String {
        match self.handles.get(handle) {
            Some(claim) => format!("HANDLE({claim})"),
            None => format!("HANDLE(unknown {handle})"),
        }
    }
}

/// [`strip_metadata`], and the deletion timestamp (a released PV may be caught being deleted).
fn strip_run_metadata(object: &mut Value) {
    strip_metadata(object);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("deletionTimestamp");
    }
}

fn normalize_pv(pv: &PersistentVolume, n: &Normalizer) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(pv)?;
    strip_run_metadata(&mut value);
    if let Some(claim_ref) = value
        .pointer_mut("/spec/claimRef")
        .and_then(Value::as_object_mut)
    {
        claim_ref.remove("uid");
        claim_ref.remove("resourceVersion");
    }
    if let Some(status) = value.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("lastPhaseTransitionTime");
    }
    if let Some(handle) = value.pointer_mut("/spec/csi/volumeHandle") {
        *handle = json!(n.handle(handle.as_str().unwrap_or_default()));
    }
    let mut value = n.value(&value);
    // "<start time in ms>-<random number>-<driver>"
    if let Some(identity) = value
        .pointer_mut("/spec/csi/volumeAttributes/storage.kubernetes.io~1csiProvisionerIdentity")
    {
        *identity = json!(digits_to_n(identity.as_str().unwrap_or_default()));
    }
    Ok(value)
}

fn normalize_claim(claim: &PersistentVolumeClaim, n: &Normalizer) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(claim)?;
    strip_run_metadata(&mut value);
    normalize_conditions(&mut value);
    Ok(n.value(&value))
}

/// One Event as compared: who reported it, its type, reason and message. The count and times
/// are not compared (retries of a failing claim follow each run's timing). The reporter's name
/// is upstream's provisioner identity, `<driver>_<host name>_<random UUID>`: its UUID becomes
/// `UUID`.
fn describe_event(event: &Event, n: &Normalizer) -> String {
    let source = event.source.as_ref();
    let reporter = |text: Option<&str>| uuids_to_placeholder(&n.text(text.unwrap_or_default()));
    format!(
        "{} {} [source {}/{}, reporting {}/{}] {}",
        event.type_.as_deref().unwrap_or("?"),
        event.reason.as_deref().unwrap_or("?"),
        reporter(source.and_then(|s| s.component.as_deref())),
        reporter(source.and_then(|s| s.host.as_deref())),
        reporter(event.reporting_component.as_deref()),
        reporter(event.reporting_instance.as_deref()),
        n.text(event.message.as_deref().unwrap_or_default()),
    )
}

/// The distinct requests of `method` the driver received, normalised, by volume (the name in
/// the request or the volume ID); a volume with several distinct requests has them in an array.
fn driver_requests(side: &Side, method: &str, n: &Normalizer) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for call in side.driver.grpc_calls() {
        if call.short_method() != method {
            continue;
        }
        let mut request = call.request.clone();
        for pointer in ["/volume_id", "/volume_content_source/Type/Volume/volume_id"] {
            if let Some(id) = request.pointer_mut(pointer) {
                *id = json!(n.handle(id.as_str().unwrap_or_default()));
            }
        }
        let mut request = n.value(&request);
        let claim = match (request.get("name"), request.get("volume_id")) {
            (Some(Value::String(name)), _) => name.clone(),
            (_, Some(Value::String(id))) => id.clone(),
            _ => "?".to_string(),
        };
        if let Some(object) = request.as_object_mut() {
            object.insert("error".to_string(), json!(n.text(&call.error)));
        }
        out.entry(claim)
            .or_default()
            .insert(serde_json::to_string(&request).unwrap_or_default());
    }
    out.into_iter()
        .map(|(volume, requests)| {
            let mut requests: Vec<Value> = requests
                .iter()
                .filter_map(|r| serde_json::from_str(r).ok())
                .collect();
            let value = if requests.len() == 1 {
                requests.remove(0)
            } else {
                Value::Array(requests)
            };
            (volume, value)
        })
        .collect()
}

/// What one side wrote, normalised; each field compares one kind of thing, by claim.
#[derive(Debug, Default)]
struct Snapshot {
    pvs: BTreeMap<String, Value>,
    claims: BTreeMap<String, Value>,
    claim_events: BTreeMap<String, BTreeSet<String>>,
    pv_events: BTreeMap<String, BTreeSet<String>>,
    /// The LeaderElection Events, by Lease.
    lease_events: BTreeMap<String, BTreeSet<String>>,
    create_volume: BTreeMap<String, Value>,
    delete_volume: BTreeMap<String, Value>,
    /// The volumes left in the driver, by the name CreateVolume gave them.
    driver_volumes: BTreeSet<String>,
}

impl Side {
    /// The claims and the PVs of this side's driver, as they are now.
    async fn objects(&self) -> anyhow::Result<(Vec<PersistentVolumeClaim>, Vec<PersistentVolume>)> {
        let claims = self.claims_api().list(&ListParams::default()).await?.items;
        let pvs: Api<PersistentVolume> = Api::all(self.admin.clone());
        let pvs = pvs
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.csi.as_ref())
                    .is_some_and(|csi| csi.driver == self.driver_name())
            })
            .collect();
        Ok((claims, pvs))
    }

    /// Everything this side wrote so far, normalised with `n`.
    async fn snapshot(
        &self,
        n: &Normalizer,
        claims: &[PersistentVolumeClaim],
        pvs: &[PersistentVolume],
    ) -> anyhow::Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        for pv in pvs {
            let claim = pv
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|c| c.name.clone())
                .unwrap_or_else(|| "?".to_string());
            snapshot.pvs.insert(claim, normalize_pv(pv, n)?);
        }
        for claim in claims {
            let name = claim.metadata.name.clone().unwrap_or_default();
            snapshot.claims.insert(name, normalize_claim(claim, n)?);
        }
        for event in self.events(&self.ns.name).await {
            if is_conflict_retry(&event) {
                continue;
            }
            let name = event.involved_object.name.clone().unwrap_or_default();
            let events = match event.involved_object.kind.as_deref() {
                Some("PersistentVolumeClaim") => snapshot.claim_events.entry(name),
                Some("Lease") => snapshot.lease_events.entry(n.text(&name)),
                _ => continue,
            };
            events.or_default().insert(describe_event(&event, n));
        }
        // A PV's Events are in `default`, as for every cluster-scoped object.
        let pv_names: BTreeMap<String, String> = n
            .replacements
            .iter()
            .filter(|(_, to)| to.starts_with("PV("))
            .cloned()
            .collect();
        for event in self.events("default").await {
            let Some(name) = event.involved_object.name.as_deref() else {
                continue;
            };
            if let Some(claim) = pv_names.get(name) {
                snapshot
                    .pv_events
                    .entry(claim.clone())
                    .or_default()
                    .insert(describe_event(&event, n));
            }
        }
        snapshot.create_volume = driver_requests(self, "CreateVolume", n);
        snapshot.delete_volume = driver_requests(self, "DeleteVolume", n);
        snapshot.driver_volumes = self
            .driver
            .list_volume_names()
            .await?
            .into_iter()
            .map(|(_, name)| n.text(&name))
            .filter(|name| !name.starts_with("Mock Volume "))
            .collect();
        Ok(snapshot)
    }

    /// Provisions every claim: the clone source first (a clone of an unbound claim fails and
    /// is retried, with Events that depend on timing), then the rest at once.
    async fn provision(&mut self) -> anyhow::Result<()> {
        let all = claim_list();
        let source = all.iter().find(|c| c.name == CLONE_SOURCE).unwrap();
        self.create_claim(source).await?;
        self.wait_for_outcomes(&[CLONE_SOURCE]).await?;
        for claim in all.iter().filter(|c| c.name != CLONE_SOURCE) {
            self.create_claim(claim).await?;
        }
        let names: Vec<&str> = all.iter().map(|c| c.name).collect();
        self.wait_for_outcomes(&names).await?;
        // Events are sent in the background: give the last ones time to arrive.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    }

    /// Deletes every claim and waits until each volume has gone as its reclaim policy says:
    /// Delete, the PV and the driver's volume gone; Retain, the PV Released.
    async fn delete_claims(&mut self) -> anyhow::Result<()> {
        let claims = self.claims_api();
        for claim in claim_list() {
            claims
                .delete(claim.name, &DeleteParams::default())
                .await
                .with_context(|| format!("deleting claim {}", claim.name))?;
        }
        self.check_running()?;
        let retained: BTreeSet<&str> = claim_list()
            .iter()
            .filter(|c| c.outcome == Outcome::Bound && reclaim_policy(c.class) == "Retain")
            .map(|c| c.name)
            .collect();
        let what = format!(
            "{}: every claim gone, every PV deleted but those of {retained:?}, which are Released",
            self.which.label()
        );
        let done = wait_until(
            &what,
            WAIT,
            || async {
                let (claims, pvs) = self.objects().await.ok()?;
                let pvs_ok = pvs.iter().all(|pv| {
                    let claim = pv
                        .spec
                        .as_ref()
                        .and_then(|s| s.claim_ref.as_ref())
                        .and_then(|c| c.name.as_deref())
                        .unwrap_or_default();
                    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
                    retained.contains(claim) && phase == Some("Released")
                });
                (claims.is_empty() && pvs_ok && pvs.len() == retained.len()).then_some(())
            },
            || self.diagnostics(),
        )
        .await;
        self.check_running()?;
        done?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    }

    /// What must hold for either provisioner after provisioning; the test of the harness when
    /// only the Go side runs.
    fn check_provisioned(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let label = self.which.label();
        for claim in claim_list() {
            let pv = snapshot.pvs.get(claim.name);
            match claim.outcome {
                Outcome::Bound => {
                    let pv = pv.with_context(|| format!("{label}: no PV for {}", claim.name))?;
                    ensure!(
                        pv["spec"]["persistentVolumeReclaimPolicy"] == reclaim_policy(claim.class),
                        "{label}: PV of {} has the wrong reclaim policy: {pv:#}",
                        claim.name
                    );
                    ensure!(
                        pv["metadata"]["name"] == format!("PV({})", claim.name),
                        "{label}: PV of {} is not named pvc-<claim UID>: {pv:#}",
                        claim.name
                    );
                    ensure!(
                        snapshot
                            .create_volume
                            .contains_key(&format!("PV({})", claim.name)),
                        "{label}: no CreateVolume for {}",
                        claim.name
                    );
                }
                Outcome::Fails => ensure!(
                    pv.is_none(),
                    "{label}: {} was expected to fail but has a PV: {pv:#?}",
                    claim.name
                ),
            }
        }
        Ok(())
    }

    fn check_deleted(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let label = self.which.label();
        let retained: BTreeSet<String> = claim_list()
            .iter()
            .filter(|c| c.outcome == Outcome::Bound && reclaim_policy(c.class) == "Retain")
            .map(|c| format!("PV({})", c.name))
            .collect();
        ensure!(
            snapshot.driver_volumes == retained,
            "{label}: the driver holds {:?} after deletion; expected only the retained {retained:?}",
            snapshot.driver_volumes
        );
        Ok(())
    }
}

/// The differences between two snapshots, one paragraph each.
fn differences(go: &Snapshot, ours: &Snapshot) -> Vec<String> {
    fn compare<V: PartialEq + std::fmt::Debug>(
        what: &str,
        go: &BTreeMap<String, V>,
        ours: &BTreeMap<String, V>,
        show: impl Fn(&V) -> String,
        out: &mut Vec<String>,
    ) {
        let keys: BTreeSet<&String> = go.keys().chain(ours.keys()).collect();
        for key in keys {
            match (go.get(key), ours.get(key)) {
                (Some(a), Some(b)) if a == b => {}
                (a, b) => out.push(format!(
                    "{what} of {key}:\n  upstream: {}\n  ours:     {}",
                    a.map(&show).unwrap_or_else(|| "(none)".into()),
                    b.map(&show).unwrap_or_else(|| "(none)".into()),
                )),
            }
        }
    }
    let lines =
        |set: &BTreeSet<String>| set.iter().map(|s| format!("\n    {s}")).collect::<String>();
    let mut out = Vec::new();
    compare_values("PersistentVolume", &go.pvs, &ours.pvs, &mut out);
    compare_values("PersistentVolumeClaim", &go.claims, &ours.claims, &mut out);
    compare(
        "Events",
        &go.claim_events,
        &ours.claim_events,
        lines,
        &mut out,
    );
    compare("PV Events", &go.pv_events, &ours.pv_events, lines, &mut out);
    compare(
        "Lease Events",
        &go.lease_events,
        &ours.lease_events,
        lines,
        &mut out,
    );
    compare_values(
        "CreateVolume",
        &go.create_volume,
        &ours.create_volume,
        &mut out,
    );
    compare_values(
        "DeleteVolume",
        &go.delete_volume,
        &ours.delete_volume,
        &mut out,
    );
    if go.driver_volumes != ours.driver_volumes {
        out.push(format!(
            "volumes left in the driver:\n  upstream: {:?}\n  ours:     {:?}",
            go.driver_volumes, ours.driver_volumes
        ));
    }
    out
}

/// Fails with every difference that [`DELIBERATE`] does not name.
fn compare_sides(stage: &str, go: &Snapshot, ours: &Snapshot) -> anyhow::Result<()> {
    let unexplained: Vec<String> = differences(go, ours)
        .into_iter()
        .filter(|d| !DELIBERATE.iter().any(|(what, _)| d.starts_with(what)))
        .collect();
    ensure!(
        unexplained.is_empty(),
        "{stage}: our csi-provisioner differs from upstream's in {} place(s):\n\n{}",
        unexplained.len(),
        unexplained.join("\n\n")
    );
    Ok(())
}

/// Go (and ours, when built) through provisioning and deletion; the snapshots after each.
async fn run_side(side: &mut Side) -> anyhow::Result<(Snapshot, Snapshot)> {
    side.provision().await?;
    let (claims, pvs) = side.objects().await?;
    let n = Normalizer::new(side, &claims, &pvs);
    let provisioned = side.snapshot(&n, &claims, &pvs).await?;
    side.check_provisioned(&provisioned)?;
    side.delete_claims().await?;
    let (claims_after, pvs_after) = side.objects().await?;
    let deleted = side.snapshot(&n, &claims_after, &pvs_after).await?;
    side.check_deleted(&deleted)?;
    Ok((provisioned, deleted))
}

/// Writes a side's snapshots to `dir/<name>.txt`, to read or diff after a run.
fn dump(
    dir: &std::path::Path,
    name: &str,
    provisioned: &Snapshot,
    deleted: &Snapshot,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = format!(
        "=== after provisioning\n{provisioned:#?}\n=== after deleting the claims\n{deleted:#?}\n"
    );
    std::fs::write(dir.join(format!("{name}.txt")), text)?;
    Ok(())
}

#[tokio::test]
async fn provisioner_writes_what_upstream_writes() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let go_binary = std::env::var_os("CSI_E2E_GO_PROVISIONER")
        .map(PathBuf::from)
        .context(
            "CSI_E2E_GO_PROVISIONER is not set: run the end-to-end tests with `cargo xtask e2e`",
        )?;
    // To test the comparison itself: with upstream's binary here, the sides must agree.
    let ours_binary = match std::env::var_os("CSI_E2E_PROVISIONER_AS_OURS") {
        Some(path) => Some(PathBuf::from(path)),
        None => env.binary("csi-provisioner").ok(),
    };
    if ours_binary.is_none() {
        eprintln!(
            "SKIPPING the comparison: our csi-provisioner is not built in {}; only upstream's \
             Go csi-provisioner runs, against the test's own expectations",
            env.bin_dir.display()
        );
    }

    let dump_dir = env.bin_dir.join("provisioner-upstream");
    let mut go = Side::start(&env, Which::Go, go_binary).await?;
    let mut ours = match ours_binary {
        Some(binary) => match Side::start(&env, Which::Ours, binary).await {
            Ok(side) => Some(side),
            Err(err) => return go.finish(Err(err)).await,
        },
        None => None,
    };

    let outcome = async {
        let (go_result, ours_result) = tokio::join!(run_side(&mut go), async {
            match ours.as_mut() {
                Some(side) => Some(run_side(side).await),
                None => None,
            }
        });
        let (go_provisioned, go_deleted) = go_result?;
        dump(&dump_dir, "upstream", &go_provisioned, &go_deleted)?;
        let Some(ours_result) = ours_result else {
            return Ok(());
        };
        let (ours_provisioned, ours_deleted) = ours_result?;
        dump(&dump_dir, "ours", &ours_provisioned, &ours_deleted)?;
        compare_sides("after provisioning", &go_provisioned, &ours_provisioned)?;
        compare_sides("after deleting the claims", &go_deleted, &ours_deleted)
    }
    .await;

    let outcome = match ours {
        Some(side) => side.finish(outcome).await,
        None => outcome,
    };
    go.finish(outcome).await
}
