//! One watch per (resource type, selector) for the whole process, shared by every controller.
//!
//! Controllers declare what they need before anything starts: [`Caches::store`] for a read-only
//! cache (a lister), [`Caches::subscribe`] for a cache plus a stream of changes (an informer with
//! an event handler). The first declaration of a (type, selector) creates its watch; later ones
//! share it. [`Caches::start`] opens the watches — upstream starts its informers only while the
//! replica leads, and so does the runtime — and [`Caches::wait_for_sync`] returns once every cache
//! holds a complete list.
//!
//! Objects are trimmed before they are stored (`managedFields` and the
//! `last-applied-configuration` annotation, which no controller reads and which can be most of an
//! object's size), and lists are served from the API server's watch cache (`resourceVersion=0`,
//! as client-go's informers ask).
//!
//! Two things kube-runtime's shared streams require, handled here: every subscriber must exist
//! before its watch starts (a late one would miss the initial list, so it is an error), and
//! deletions are not broadcast to subscribers (controllers see objects going away through their
//! finalizers, or by looking the key up in the store).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The annotation `kubectl apply` leaves on objects; never read by a controller.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How many changes a subscriber may lag behind before the shared watch waits for it.
const SUBSCRIBER_BUFFER: usize = 1024;

/// Errors of the cache registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A subscription came after the watches started.
    #[error("cannot subscribe to {0} after the watches started: declare every cache before start")]
    TooLate(String),
    /// `start` was called twice.
    #[error("the watches were already started")]
    AlreadyStarted,
}

/// Which objects of a type to watch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    /// A label selector (`app=x,tier!=y`), or empty for all.
    pub labels: String,
    /// A field selector, or empty for all.
    pub fields: String,
}

impl Selector {
    /// Every object.
    pub fn all() -> Self {
        Selector::default()
    }

    /// Objects matching a label selector.
    pub fn labels(labels: impl Into<String>) -> Self {
        Selector {
            labels: labels.into(),
            fields: String::new(),
        }
    }
}

/// Removes what no controller reads before an object is stored.
pub fn trim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// The types a cache can hold.
pub trait Cacheable:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Cacheable for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// The writer of a watch: kept here until start so subscribers can be added, then moved
/// into the watch's task.
type SharedWriter<K> = Arc<Mutex<Option<reflector::store::Writer<K>>>>;

struct Watch<K: Cacheable> {
    writer: SharedWriter<K>,
    store: Store<K>,
    selector: Selector,
}

trait StartWatch: Send {
    fn describe(&self) -> String;
    fn start(
        &mut self,
        client: Client,
        shutdown: CancellationToken,
    ) -> Option<BoxFuture<'static, ()>>;
    fn synced(&self) -> BoxFuture<'static, ()>;
}

impl<K> StartWatch for Watch<K>
where
    K: Cacheable,
    K::DynamicType: Eq + Hash + Clone,
{
    fn describe(&self) -> String {
        describe::<K>(&self.selector)
    }

    fn start(
        &mut self,
        client: Client,
        shutdown: CancellationToken,
    ) -> Option<BoxFuture<'static, ()>> {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let mut config = watcher::Config::default().any_semantic();
        if !self.selector.labels.is_empty() {
            config = config.labels(&self.selector.labels);
        }
        if !self.selector.fields.is_empty() {
            config = config.fields(&self.selector.fields);
        }
        let what = self.describe();
        let api: Api<K> = Api::all(client);
        Some(Box::pin(async move {
            let stream = watcher(api, config)
                .default_backoff()
                .modify(trim::<K>)
                .reflect_shared(writer);
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = stream.next() => match next {
                        Some(Ok(_)) => {}
                        Some(Err(err)) => warn!(watch = %what, %err, "Watch failed; retrying with backoff"),
                        None => break,
                    },
                }
            }
            debug!(watch = %what, "Watch stopped");
        }))
    }

    fn synced(&self) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        Box::pin(async move {
            let _ = store.wait_until_ready().await;
        })
    }
}

fn describe<K: Resource<DynamicType = ()>>(selector: &Selector) -> String {
    let mut text = K::plural(&()).into_owned();
    let group = K::group(&());
    if !group.is_empty() {
        text = format!("{text}.{group}");
    }
    if !selector.labels.is_empty() {
        text.push_str(&format!(" labels={:?}", selector.labels));
    }
    if !selector.fields.is_empty() {
        text.push_str(&format!(" fields={:?}", selector.fields));
    }
    text
}

#[derive(Default)]
struct Inner {
    watches: Vec<Box<dyn StartWatch>>,
    started: bool,
}

/// Each watch's entry, by (type, selector), kept as `Any` so each typed lookup can downcast.
type Entries = HashMap<(TypeId, Selector), Box<dyn Any + Send + Sync>>;

/// The process's watches. Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct Caches {
    client: Client,
    inner: Arc<Mutex<Inner>>,
    stores: Arc<Mutex<Entries>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("watches", &self.describe())
            .finish()
    }
}

/// A watch's store and writer, kept so later declarations of the same watch share it.
struct Entry<K: Cacheable> {
    store: Store<K>,
    writer: SharedWriter<K>,
}

impl Caches {
    /// A registry whose watches use `client`.
    pub fn new(client: Client) -> Self {
        Caches {
            client,
            inner: Arc::default(),
            stores: Arc::default(),
        }
    }

    fn entry<K>(&self, selector: &Selector) -> Result<Arc<Entry<K>>, Error>
    where
        K: Cacheable,
        K::DynamicType: Eq + Hash + Clone,
    {
        let key = (TypeId::of::<K>(), selector.clone());
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = stores
            .get(&key)
            .and_then(|existing| existing.downcast_ref::<Arc<Entry<K>>>())
        {
            return Ok(entry.clone());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.started {
            return Err(Error::TooLate(describe::<K>(selector)));
        }
        let (store, writer) = reflector::store_shared::<K>(SUBSCRIBER_BUFFER);
        let writer: SharedWriter<K> = Arc::new(Mutex::new(Some(writer)));
        let entry = Arc::new(Entry {
            store: store.clone(),
            writer: writer.clone(),
        });
        inner.watches.push(Box::new(Watch {
            writer,
            store,
            selector: selector.clone(),
        }));
        stores.insert(key, Box::new(entry.clone()));
        Ok(entry)
    }

    /// A read-only cache of `K` objects matching `selector`.
    pub fn store<K>(&self, selector: &Selector) -> Result<Store<K>, Error>
    where
        K: Cacheable,
        K::DynamicType: Eq + Hash + Clone,
    {
        Ok(self.entry::<K>(selector)?.store.clone())
    }

    /// A cache of `K` objects matching `selector` and a stream of every object applied to it.
    /// Poll the stream: an unread subscriber holds the shared watch back for everyone.
    pub fn subscribe<K>(&self, selector: &Selector) -> Result<(Store<K>, ReflectHandle<K>), Error>
    where
        K: Cacheable,
        K::DynamicType: Eq + Hash + Clone,
    {
        if self.started() {
            return Err(Error::TooLate(describe::<K>(selector)));
        }
        let entry = self.entry::<K>(selector)?;
        let handle = entry
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|w| w.subscribe())
            .ok_or_else(|| Error::TooLate(describe::<K>(selector)))?;
        Ok((entry.store.clone(), handle))
    }

    fn started(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).started
    }

    /// What is watched, one line per watch.
    pub fn describe(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.watches.iter().map(|w| w.describe()).collect()
    }

    /// How many watches the process opens.
    pub fn watch_count(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watches
            .len()
    }

    /// Opens every declared watch; they run until `shutdown`.
    pub fn start(&self, shutdown: &CancellationToken) -> Result<JoinSet<()>, Error> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.started {
            return Err(Error::AlreadyStarted);
        }
        inner.started = true;
        let mut set = JoinSet::new();
        for watch in &mut inner.watches {
            if let Some(run) = watch.start(self.client.clone(), shutdown.clone()) {
                debug!(watch = %watch.describe(), "Starting watch");
                set.spawn(run);
            }
        }
        Ok(set)
    }

    /// Waits until every cache has its initial list.
    pub async fn wait_for_sync(&self) {
        let waits: Vec<_> = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.watches.iter().map(|w| w.synced()).collect()
        };
        futures::future::join_all(waits).await;
    }
}

/// The `namespace/name` (or `name`) key of an object, as client-go's
/// `MetaNamespaceKeyFunc` writes it: what work queues carry.
pub fn key_of<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::PersistentVolume;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    use super::*;

    #[test]
    fn trimming_drops_managed_fields_and_last_applied() {
        let mut pv = PersistentVolume {
            metadata: ObjectMeta {
                name: Some("pv-1".into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                annotations: Some(BTreeMap::from([
                    (LAST_APPLIED_ANNOTATION.to_string(), "{...}".to_string()),
                    ("keep".to_string(), "me".to_string()),
                ])),
                ..ObjectMeta::default()
            },
            ..PersistentVolume::default()
        };
        trim(&mut pv);
        assert!(pv.metadata.managed_fields.is_none());
        assert_eq!(
            pv.metadata.annotations,
            Some(BTreeMap::from([("keep".to_string(), "me".to_string())]))
        );
    }

    fn registry() -> Caches {
        // Nothing is sent before `start`: any address will do.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Caches::new(Client::try_from(config).unwrap())
    }

    #[tokio::test]
    async fn one_watch_per_type_and_selector_whatever_the_number_of_controllers() {
        let caches = registry();
        let all = Selector::all();
        // Two controllers subscribe to VolumeAttachments, one reads PersistentVolumes, another
        // subscribes to them: two watches.
        let (_va_store_1, _va_events_1) = caches
            .subscribe::<k8s_openapi::api::storage::v1::VolumeAttachment>(&all)
            .unwrap();
        let (_va_store_2, _va_events_2) = caches
            .subscribe::<k8s_openapi::api::storage::v1::VolumeAttachment>(&all)
            .unwrap();
        let _pv_store = caches.store::<PersistentVolume>(&all).unwrap();
        let (_pv_store_2, _pv_events) = caches.subscribe::<PersistentVolume>(&all).unwrap();
        assert_eq!(caches.watch_count(), 2);
        // Another selector is another watch.
        let _labelled = caches
            .store::<PersistentVolume>(&Selector::labels("app=x"))
            .unwrap();
        assert_eq!(caches.watch_count(), 3);
        assert_eq!(
            caches.describe(),
            vec![
                "volumeattachments.storage.k8s.io".to_string(),
                "persistentvolumes".to_string(),
                "persistentvolumes labels=\"app=x\"".to_string(),
            ]
        );
    }

    #[tokio::test]
    async fn declaring_after_start_is_an_error() {
        let caches = registry();
        let _pv = caches.store::<PersistentVolume>(&Selector::all()).unwrap();
        let shutdown = CancellationToken::new();
        let _watches = caches.start(&shutdown).unwrap();
        assert!(matches!(
            caches.start(&shutdown),
            Err(Error::AlreadyStarted)
        ));
        // A late subscriber would miss the initial list.
        let Err(err) = caches.subscribe::<PersistentVolume>(&Selector::all()) else {
            panic!("a subscription after start must fail");
        };
        assert!(
            err.to_string().contains("after the watches started"),
            "{err}"
        );
        let err = caches
            .store::<k8s_openapi::api::storage::v1::CSINode>(&Selector::all())
            .unwrap_err();
        assert!(matches!(err, Error::TooLate(_)));
        shutdown.cancel();
    }

    #[test]
    fn keys_are_namespace_slash_name() {
        let pv = PersistentVolume {
            metadata: ObjectMeta {
                name: Some("pv-1".into()),
                ..ObjectMeta::default()
            },
            ..PersistentVolume::default()
        };
        assert_eq!(key_of(&pv), "pv-1");
        let pod = k8s_openapi::api::core::v1::Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            ..Default::default()
        };
        assert_eq!(key_of(&pod), "ns/p");
    }
}
