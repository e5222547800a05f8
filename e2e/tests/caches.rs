//! The shared caches against the real API server: deletions (seen, and missed while the watch
//! was down), index lookups, a stalled subscriber that holds nobody back, resync, and a custom
//! resource whose definition appears after the watch started.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use csi_e2e_support::E2eEnv;
use csi_kube::{Caches, Change, Events, Selector};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{HostPathVolumeSource, PersistentVolume, PersistentVolumeSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client, CustomResource, ResourceExt as _};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

/// What the fault layer does to watch requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Pass them on (with a one-second server-side timeout, so that watches restart often).
    Normal,
    /// Refuse them (the API server answers 404 for a path that does not exist): no watch is
    /// open while this lasts.
    Down,
    /// Answer the next one as the API server answers a watch from a resource version it no
    /// longer has: one 410 "Expired" event. The watcher then lists again.
    ExpireOnce,
}

/// What the API server sends for a watch from a compacted resource version.
const EXPIRED: &str = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}
"#;

/// A client-side fault injector for watch requests, shared by the test and the client's layer.
#[derive(Clone, Debug)]
struct Faults {
    mode: Arc<Mutex<Mode>>,
    refused: Arc<AtomicUsize>,
}

impl Faults {
    fn new() -> Self {
        Faults {
            mode: Arc::new(Mutex::new(Mode::Normal)),
            refused: Arc::default(),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The request to send instead, or `None` to answer "expired" without sending it.
    fn rewrite(&self, uri: &http::Uri) -> Option<http::Uri> {
        let Some(query) = uri.query() else {
            return Some(uri.clone());
        };
        if !query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
        {
            return Some(uri.clone());
        }
        let mut mode = self.mode.lock().unwrap();
        let mut path = uri.path().to_string();
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.starts_with("timeoutSeconds="))
            .map(str::to_string)
            .collect();
        params.push("timeoutSeconds=1".to_string());
        match *mode {
            Mode::Normal => {}
            Mode::Down => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                path.push_str("-unavailable");
            }
            Mode::ExpireOnce => {
                *mode = Mode::Normal;
                return None;
            }
        }
        format!("{path}?{}", params.join("&")).parse().ok()
    }
}

/// A body of one chunk.
struct Once(Option<bytes::Bytes>);

impl http_body::Body for Once {
    type Data = bytes::Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|data| Ok(http_body::Frame::data(data))))
    }
}

#[derive(Clone, Debug)]
struct FaultService<S> {
    inner: S,
    faults: Faults,
}

impl<S> tower::Layer<S> for Faults {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FaultService {
            inner,
            faults: self.clone(),
        }
    }
}

type Response = http::Response<Box<kube::client::DynBody>>;

impl<S, B> tower::Service<http::Request<B>> for FaultService<S>
where
    S: tower::Service<http::Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.faults.rewrite(request.uri()) {
            Some(uri) => {
                *request.uri_mut() = uri;
                Box::pin(self.inner.call(request))
            }
            None => {
                let body: Box<kube::client::DynBody> =
                    Box::new(Once(Some(bytes::Bytes::from_static(EXPIRED.as_bytes()))));
                let mut response = http::Response::new(body);
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

async fn faulty_client(env: &E2eEnv, faults: &Faults) -> anyhow::Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(faults)
        .build())
}

/// A label value unique to one test, so that tests sharing the control plane see only their
/// own objects.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}", nanos % 0xffff_ffff)
}

fn pv(name: &str, label: &str, class: &str) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "e2e-cache".to_string(),
                label.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity("1Gi".to_string()),
            )])),
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            host_path: Some(HostPathVolumeSource {
                path: format!("/tmp/{name}"),
                type_: None,
            }),
            storage_class_name: Some(class.to_string()),
            ..PersistentVolumeSpec::default()
        }),
        ..PersistentVolume::default()
    }
}

async fn delete_and_wait(api: &Api<PersistentVolume>, name: &str) -> anyhow::Result<()> {
    let _ = api.delete(name, &DeleteParams::default()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while api.get_opt(name).await?.is_some() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{name} was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// One line per change: `added x`, `updated x`, `resync x`, `deleted x`, `tombstone x`.
fn describe<K: kube::Resource>(change: &Change<K>) -> String {
    match change {
        Change::Added(o) => format!("added {}", o.name_any()),
        Change::Updated { old, new } if Arc::ptr_eq(old, new) => {
            format!("resync {}", new.name_any())
        }
        Change::Updated { new, .. } => format!("updated {}", new.name_any()),
        Change::Deleted {
            last,
            final_state_unknown: false,
        } => format!("deleted {}", last.name_any()),
        Change::Deleted {
            last,
            final_state_unknown: true,
        } => format!("tombstone {}", last.name_any()),
    }
}

/// Reads changes until one described as `wanted` arrives; returns what came before it.
async fn wait_for_change<K>(events: &mut Events<K>, wanted: &str) -> anyhow::Result<Vec<String>>
where
    K: csi_kube::cache::Cacheable,
{
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let change = tokio::time::timeout_at(deadline, events.next())
            .await
            .with_context(|| format!("timed out waiting for {wanted:?}; saw {seen:?}"))?
            .with_context(|| format!("the stream ended before {wanted:?}; saw {seen:?}"))?;
        let line = describe(&change);
        if line == wanted {
            return Ok(seen);
        }
        seen.push(line);
    }
}

#[tokio::test]
async fn deletions_seen_and_missed_while_the_watch_was_down_reach_subscribers() -> anyhow::Result<()>
{
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let pvs: Api<PersistentVolume> = Api::all(admin.clone());
    let label = unique("deletes");
    let (a, b, c) = (
        format!("{label}-a"),
        format!("{label}-b"),
        format!("{label}-c"),
    );
    for name in [&a, &b, &c] {
        pvs.create(&PostParams::default(), &pv(name, &label, "gold"))
            .await?;
    }

    let faults = Faults::new();
    let caches = Caches::new(faulty_client(&env, &faults).await?);
    let selector = Selector::labels(format!("e2e-cache={label}"));
    let subscription = caches.subscribe::<PersistentVolume>(&selector)?;
    let shutdown = CancellationToken::new();
    let _watches = caches.start(&shutdown)?;
    tokio::time::timeout(WAIT, caches.wait_for_sync()).await?;
    let mut events = subscription.events();
    let mut added = Vec::new();
    for _ in 0..3 {
        added.push(describe(&events.next().await.context("stream ended")?));
    }
    added.sort();
    assert_eq!(
        added,
        [
            format!("added {a}"),
            format!("added {b}"),
            format!("added {c}")
        ]
    );

    // A deletion the watch sees.
    delete_and_wait(&pvs, &a).await?;
    wait_for_change(&mut events, &format!("deleted {a}")).await?;
    assert!(subscription.store().get_key(&a).is_none());

    // A deletion while no watch is open: noticed by the next list, delivered as a tombstone
    // with the last state the cache had.
    faults.set(Mode::Down);
    let refused = faults.refused.load(Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + WAIT;
    while faults.refused.load(Ordering::SeqCst) == refused {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the watch never restarted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delete_and_wait(&pvs, &b).await?;
    faults.set(Mode::ExpireOnce);
    let before = wait_for_change(&mut events, &format!("tombstone {b}")).await?;
    assert!(
        !before.contains(&format!("deleted {b}")),
        "the deletion of {b} cannot have been seen: {before:?}"
    );
    assert!(subscription.store().get_key(&b).is_none());
    assert!(subscription.store().get_key(&c).is_some());

    shutdown.cancel();
    delete_and_wait(&pvs, &c).await?;
    Ok(())
}

#[tokio::test]
async fn index_lookups_follow_the_objects() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let pvs: Api<PersistentVolume> = Api::all(admin.clone());
    let label = unique("index");
    let names: Vec<String> = (0..4).map(|i| format!("{label}-{i}")).collect();
    pvs.create(&PostParams::default(), &pv(&names[0], &label, "gold"))
        .await?;
    pvs.create(&PostParams::default(), &pv(&names[1], &label, "gold"))
        .await?;

    let caches = Caches::new(admin.clone());
    let selector = Selector::labels(format!("e2e-cache={label}"));
    caches.index::<PersistentVolume, _>(&selector, "by-class", |pv| {
        pv.spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .into_iter()
            .collect()
    })?;
    let store = caches.store::<PersistentVolume>(&selector)?;
    let shutdown = CancellationToken::new();
    let _watches = caches.start(&shutdown)?;
    tokio::time::timeout(WAIT, caches.wait_for_sync()).await?;
    assert_eq!(
        store.index_keys("by-class", "gold")?,
        vec![names[0].clone(), names[1].clone()]
    );

    pvs.create(&PostParams::default(), &pv(&names[2], &label, "silver"))
        .await?;
    pvs.create(&PostParams::default(), &pv(&names[3], &label, "gold"))
        .await?;
    delete_and_wait(&pvs, &names[0]).await?;
    let want_gold = vec![names[1].clone(), names[3].clone()];
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.index_keys("by-class", "gold")? != want_gold
        || store.index_keys("by-class", "silver")? != vec![names[2].clone()]
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "index never caught up: gold={:?} silver={:?}",
            store.index_keys("by-class", "gold")?,
            store.index_keys("by-class", "silver")?
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let silver = store.by_index("by-class", "silver")?;
    assert_eq!(silver.len(), 1);
    assert_eq!(silver[0].name_any(), names[2]);
    assert!(store.by_index("by-size", "1Gi").is_err());

    shutdown.cancel();
    for name in &names[1..] {
        delete_and_wait(&pvs, name).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_stalled_subscriber_holds_nobody_back_and_resync_redelivers() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let pvs: Api<PersistentVolume> = Api::all(admin.clone());
    let label = unique("stalled");

    let caches = Caches::new(admin.clone());
    let selector = Selector::labels(format!("e2e-cache={label}"));
    // One subscriber never starts its stream (a controller that does not lead), one starts it
    // and never reads it (a stuck controller), one reads, with a one-second resync.
    let idle = caches.subscribe::<PersistentVolume>(&selector)?;
    let stuck = caches.subscribe::<PersistentVolume>(&selector)?;
    let reader = caches
        .subscribe::<PersistentVolume>(&selector)?
        .with_resync(Duration::from_secs(1));
    let shutdown = CancellationToken::new();
    let _watches = caches.start(&shutdown)?;
    tokio::time::timeout(WAIT, caches.wait_for_sync()).await?;
    let stuck_events = stuck.events();
    let mut events = reader.events();

    // Far more changes than any fixed buffer would hold.
    let names: Vec<String> = (0..40).map(|i| format!("{label}-{i}")).collect();
    for name in &names {
        pvs.create(&PostParams::default(), &pv(name, &label, "gold"))
            .await?;
    }
    for name in &names {
        wait_for_change(&mut events, &format!("added {name}")).await?;
    }
    // Resync: every object again, as an update with itself (among the updates the
    // PersistentVolume controller makes).
    let mut resynced = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while resynced.len() < names.len() {
        let change = tokio::time::timeout_at(deadline, events.next())
            .await
            .with_context(|| format!("only {} objects were resynced", resynced.len()))?
            .context("the stream ended")?;
        if let Some(name) = describe(&change).strip_prefix("resync ") {
            resynced.insert(name.to_string());
        }
    }

    // The stuck stream kept everything, in order, for when it reads.
    let mut stuck_events = stuck_events;
    for name in &names {
        wait_for_change(&mut stuck_events, &format!("added {name}")).await?;
    }
    // The idle subscriber starts late: it begins with what the store holds.
    let mut late = idle.events();
    let mut added = Vec::new();
    for _ in 0..names.len() {
        added.push(describe(&late.next().await.context("stream ended")?));
    }
    assert!(
        added.iter().all(|line| line.starts_with("added ")),
        "{added:?}"
    );
    assert_eq!(added.len(), names.len());

    shutdown.cancel();
    for name in &names {
        delete_and_wait(&pvs, name).await?;
    }
    Ok(())
}

/// A custom resource nobody has defined when the watch starts.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default)]
#[kube(
    group = "caches.e2e.csi-sidecars.example.com",
    version = "v1",
    kind = "Gadget",
    namespaced,
    schema = "disabled"
)]
struct GadgetSpec {
    size: Option<String>,
}

fn gadget_crd() -> anyhow::Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.caches.e2e.csi-sidecars.example.com"},
        "spec": {
            "group": "caches.e2e.csi-sidecars.example.com",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }))?)
}

#[tokio::test]
async fn a_custom_resource_is_watched_once_its_definition_exists() -> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let crd = gadget_crd()?;
    let crd_name = crd.name_any();
    if crds.get_opt(&crd_name).await?.is_some() {
        crds.delete(&crd_name, &DeleteParams::default()).await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        while crds.get_opt(&crd_name).await?.is_some() {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "CRD not deleted");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let caches = Caches::new(admin.clone());
    let all = Selector::all();
    caches.wait_for_definition::<Gadget>(&all)?;
    let subscription = caches.subscribe::<Gadget>(&all)?;
    let shutdown = CancellationToken::new();
    let _watches = caches.start(&shutdown)?;
    let mut events = subscription.events();

    crds.create(&PostParams::default(), &crd).await?;
    tokio::time::timeout(WAIT, caches.wait_for_sync())
        .await
        .context("the cache never synced after the definition appeared")?;
    let gadgets: Api<Gadget> = Api::namespaced(admin.clone(), "default");
    let gadget = Gadget::new(
        "g1",
        GadgetSpec {
            size: Some("big".into()),
        },
    );
    // The resource may take a moment to be served for writes too.
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Err(err) = gadgets.create(&PostParams::default(), &gadget).await {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "cannot create a Gadget: {err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_change(&mut events, "added g1").await?;
    let stored = subscription
        .store()
        .get_key("default/g1")
        .context("g1 is not in the store")?;
    assert_eq!(stored.spec.size.as_deref(), Some("big"));

    shutdown.cancel();
    crds.delete(&crd_name, &DeleteParams::default()).await?;
    Ok(())
}
