//! One watch per (resource type, selector) for the whole process, shared by every controller,
//! with the contract of client-go's shared informers.
//!
//! Controllers declare what they need before the watches start: [`Caches::store`] for a
//! read-only cache (a lister), [`Caches::subscribe`] for a cache plus a stream of [`Change`]s (an
//! informer with an event handler), [`Caches::index`] for a named index function (an indexer),
//! [`Caches::wait_for_definition`] for a custom resource whose definition may not exist yet. The
//! first declaration of a (type, selector) creates its watch; later ones share it.
//! [`Caches::start`] opens the watches — upstream starts its informers only while the replica
//! leads, and so does the runtime — and [`Caches::wait_for_sync`] returns once every cache holds
//! a complete list.
//!
//! What a subscriber sees is what client-go's `ResourceEventHandler` sees: [`Change::Added`],
//! [`Change::Updated`] with the previous and the new state, and [`Change::Deleted`] with the last
//! known state. An object that vanished while the watch was down is noticed when the watch lists
//! again and is delivered as a deletion whose final state is unknown (client-go's
//! `DeletedFinalStateUnknown` tombstone). A subscription may ask for a periodic resync: every
//! stored object delivered again as an update with itself, at the subscription's own period.
//!
//! The watch never waits for a subscriber. A subscription receives changes only while its
//! [`Events`] stream exists, and that stream's queue is unbounded, as client-go's listener
//! buffers are: a controller that is not running (not leading, disabled) has no stream, costs
//! nothing and holds nobody back. A stream starts with an `Added` for every stored object (what
//! client-go delivers to a handler added to a running informer) and then follows the watch.
//!
//! Objects are stored compactly: trimmed (`managedFields` and the `last-applied-configuration`
//! annotation, which no controller reads and which can be most of an object's size) and kept
//! as their JSON encoding, which is a fraction of the size of the decoded structs (a decoded
//! `PersistentVolume` is 3.4 KiB before any string or list it holds). Each object is packed as
//! soon as it is read off the wire, so that a list never holds thousands of decoded objects,
//! whose freed memory glibc would keep. Reads decode the object; every reader gets its own
//! `Arc`. `examples/cache_memory.rs` measures the cost: about 1.6 KiB of RSS per cached
//! PersistentVolume and 1.3 KiB per PersistentVolumeClaim, against 7.7 and 4.5 KiB for a
//! kube-runtime store of the same trimmed objects. Lists are served from the API server's
//! watch cache (`resourceVersion=0`, as client-go's informers ask).

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt as _};
use kube::api::{ListParams, ObjectMeta};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The annotation `kubectl apply` leaves on objects; never read by a controller.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The first and the longest wait between two checks for a resource's definition.
const DEFINITION_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(30));

/// Errors of the cache registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A new watch was declared after the watches started.
    #[error(
        "cannot declare a cache of {0} after the watches started: declare every cache before start"
    )]
    TooLate(String),
    /// `start` was called twice.
    #[error("the watches were already started")]
    AlreadyStarted,
    /// Two index functions were declared with one name.
    #[error("indexer conflict: an index named {name:?} already exists on {watch}")]
    IndexConflict {
        /// The index name.
        name: String,
        /// The watch.
        watch: String,
    },
    /// A lookup named an index nobody declared.
    #[error("index with name {name:?} does not exist on {watch}")]
    UnknownIndex {
        /// The index name.
        name: String,
        /// The watch.
        watch: String,
    },
}

/// Which objects of a type to watch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    /// A label selector (`app=x,tier!=y`), or empty for all.
    pub labels: String,
    /// A field selector, or empty for all.
    pub fields: String,
    /// The one namespace to watch (client-go's `informers.WithNamespace`), or empty for every
    /// namespace. A watch of one namespace needs only a namespaced Role.
    pub namespace: String,
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
            ..Selector::default()
        }
    }

    /// The same selector, restricted to the objects of one namespace.
    #[must_use]
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
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

/// The types a cache can hold: built-in types and typed custom resources.
pub trait Cacheable:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static
{
}

impl<K> Cacheable for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// The `namespace/name` (or `name`) key of an object, as client-go's
/// `MetaNamespaceKeyFunc` writes it: what work queues carry.
pub fn key_of<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

/// What happened to an object, as client-go's `ResourceEventHandler` is told.
#[derive(Debug, Clone)]
pub enum Change<K> {
    /// The object appeared (or the subscription's stream started and it was there).
    Added(Arc<K>),
    /// The object changed, was listed again, or is being resynced (then `old` and `new` are
    /// the same `Arc`).
    Updated {
        /// The state before.
        old: Arc<K>,
        /// The state now.
        new: Arc<K>,
    },
    /// The object is gone.
    Deleted {
        /// Its last known state: from the deletion itself, or, when the deletion happened
        /// while the watch was down, the last state the cache had.
        last: Arc<K>,
        /// The deletion was noticed by a new list, not seen: client-go's
        /// `DeletedFinalStateUnknown`.
        final_state_unknown: bool,
    },
}

/// An index function: the index values of an object (client-go's `IndexFunc`).
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// An object as stored: its trimmed JSON encoding.
type Packed = Arc<[u8]>;

/// A change as queued for a subscriber: packed objects, decoded by the subscriber.
#[derive(Debug)]
enum Queued {
    Added(Packed),
    Updated(Packed, Packed),
    Deleted(Packed, bool),
    Resync(Packed),
}

struct Index<K> {
    function: IndexFn<K>,
    /// Index value → keys of the objects with that value.
    values: HashMap<String, BTreeSet<Box<str>>>,
}

impl<K> Index<K> {
    fn remove(&mut self, key: &str, object: &K) {
        for value in (self.function)(object) {
            if let Some(keys) = self.values.get_mut(&value) {
                keys.remove(key);
                if keys.is_empty() {
                    self.values.remove(&value);
                }
            }
        }
    }

    fn insert(&mut self, key: &str, object: &K) {
        for value in (self.function)(object) {
            self.values.entry(value).or_default().insert(key.into());
        }
    }
}

struct State<K> {
    objects: HashMap<Box<str>, Packed>,
    indexes: HashMap<String, Index<K>>,
    /// Keys listed since the watch (re)started listing; `None` outside a list.
    listing: Option<HashSet<Box<str>>>,
}

/// Where a subscription's stream is fed; `None` while no stream exists.
type Slot = Mutex<Option<mpsc::UnboundedSender<Queued>>>;

/// One watch's store, indexes and subscribers.
struct Shared<K> {
    what: String,
    state: RwLock<State<K>>,
    subscribers: Mutex<Vec<Arc<Slot>>>,
    synced: tokio::sync::watch::Sender<bool>,
    /// Set once the watch stopped: later streams end after the stored objects.
    stopped: std::sync::atomic::AtomicBool,
}

/// An object as the watch decodes it: trimmed and packed as soon as it is read, so that a list
/// of thousands of objects never holds more than one of them decoded. Only the metadata the
/// watcher reads (name, namespace, resource version) stays decoded.
struct Wire<K> {
    meta: ObjectMeta,
    packed: Packed,
    kind: PhantomData<fn() -> K>,
}

impl<K: Cacheable> Wire<K> {
    fn new(mut object: K) -> Result<Self, serde_json::Error> {
        trim(&mut object);
        let packed = serde_json::to_vec(&object)?.into();
        let meta = object.meta();
        Ok(Wire {
            meta: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                resource_version: meta.resource_version.clone(),
                ..ObjectMeta::default()
            },
            packed,
            kind: PhantomData,
        })
    }
}

impl<K> Clone for Wire<K> {
    fn clone(&self) -> Self {
        Wire {
            meta: self.meta.clone(),
            packed: self.packed.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Debug for Wire<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("name", &self.meta.name)
            .field("namespace", &self.meta.namespace)
            .finish_non_exhaustive()
    }
}

impl<K: Cacheable> Resource for Wire<K> {
    type DynamicType = ();
    // Dynamic, so that one generic watch can be built for every namespace or for one.
    type Scope = kube::core::DynamicResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

impl<'de, K: Cacheable> Deserialize<'de> for Wire<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Wire::new(K::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

fn unpack<K: DeserializeOwned>(packed: &[u8]) -> Option<Arc<K>> {
    match serde_json::from_slice(packed) {
        Ok(object) => Some(Arc::new(object)),
        Err(err) => {
            warn!(%err, "Cannot decode a cached object; skipping it");
            None
        }
    }
}

impl<K: Cacheable> Shared<K> {
    fn new(what: String) -> Self {
        Shared {
            what,
            state: RwLock::new(State {
                objects: HashMap::new(),
                indexes: HashMap::new(),
                listing: None,
            }),
            subscribers: Mutex::default(),
            synced: tokio::sync::watch::Sender::new(false),
            stopped: Default::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<K>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<K>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `change` to every running stream. Called with the state locked, so that every
    /// stream sees changes in the store's order.
    fn fan_out(&self, change: impl Fn() -> Queued) {
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for slot in subscribers.iter() {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(sender) = slot.as_ref()
                && sender.send(change()).is_err()
            {
                // The stream was dropped: the subscriber stopped.
                *slot = None;
            }
        }
    }

    /// Stores `object` (added or changed), updates the indexes and tells the subscribers.
    fn upsert(&self, object: Wire<K>, listing: bool) {
        let key: Box<str> = key_of(&object).into();
        let packed = object.packed;
        let mut state = self.write();
        if listing && let Some(listed) = state.listing.as_mut() {
            listed.insert(key.clone());
        }
        let old = state.objects.insert(key.clone(), packed.clone());
        if !state.indexes.is_empty() {
            let old_object = old.as_deref().and_then(unpack::<K>);
            let new_object = unpack::<K>(&packed);
            for index in state.indexes.values_mut() {
                if let Some(old_object) = &old_object {
                    index.remove(&key, old_object);
                }
                if let Some(new_object) = &new_object {
                    index.insert(&key, new_object);
                }
            }
        }
        match old {
            None => self.fan_out(|| Queued::Added(packed.clone())),
            Some(old) => self.fan_out(|| Queued::Updated(old.clone(), packed.clone())),
        }
    }

    /// Forgets an object the watch saw deleted; `object` is its final state.
    fn delete(&self, object: Wire<K>) {
        let key = key_of(&object);
        let packed = object.packed;
        let mut state = self.write();
        if let Some(old) = state.objects.remove(key.as_str())
            && !state.indexes.is_empty()
            && let Some(old_object) = unpack::<K>(&old)
        {
            for index in state.indexes.values_mut() {
                index.remove(&key, &old_object);
            }
        }
        // client-go tells the handlers about every deletion the watch reports, known or not.
        self.fan_out(|| Queued::Deleted(packed.clone(), false));
    }

    fn list_started(&self) {
        self.write().listing = Some(HashSet::new());
    }

    /// Ends a list: what the cache holds but the list did not return was deleted while the
    /// watch was down.
    fn list_done(&self) {
        let mut state = self.write();
        let listed = state.listing.take().unwrap_or_default();
        let gone: Vec<Box<str>> = state
            .objects
            .keys()
            .filter(|key| !listed.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            let Some(old) = state.objects.remove(&key) else {
                continue;
            };
            if !state.indexes.is_empty()
                && let Some(old_object) = unpack::<K>(&old)
            {
                for index in state.indexes.values_mut() {
                    index.remove(&key, &old_object);
                }
            }
            debug!(watch = %self.what, key = %key, "Deleted while the watch was down");
            self.fan_out(|| Queued::Deleted(old.clone(), true));
        }
        drop(state);
        self.synced.send_replace(true);
    }

    /// Starts (or restarts) a subscription's stream: an `Added` for every stored object, then
    /// every change.
    fn activate(&self, slot: &Slot) -> mpsc::UnboundedReceiver<Queued> {
        let (sender, receiver) = mpsc::unbounded_channel();
        // The read lock keeps changes out until the stream is in place.
        let state = self.read();
        for packed in state.objects.values() {
            let _ = sender.send(Queued::Added(packed.clone()));
        }
        if !self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
        }
        receiver
    }

    /// Queues every stored object for one stream as an update with itself.
    fn resync(&self, slot: &Slot) {
        let state = self.read();
        let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = slot.as_ref() {
            for packed in state.objects.values() {
                let _ = sender.send(Queued::Resync(packed.clone()));
            }
        }
    }

    fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for slot in subscribers.iter() {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    fn add_index(&self, name: &str, function: IndexFn<K>) -> Result<(), Error> {
        let mut state = self.write();
        if state.indexes.contains_key(name) {
            return Err(Error::IndexConflict {
                name: name.to_string(),
                watch: self.what.clone(),
            });
        }
        let mut index = Index {
            function,
            values: HashMap::new(),
        };
        for (key, packed) in &state.objects {
            if let Some(object) = unpack::<K>(packed) {
                index.insert(key, &object);
            }
        }
        state.indexes.insert(name.to_string(), index);
        Ok(())
    }

    fn apply(&self, event: watcher::Event<Wire<K>>) {
        match event {
            watcher::Event::Apply(object) => self.upsert(object, false),
            watcher::Event::Delete(object) => self.delete(object),
            watcher::Event::Init => self.list_started(),
            watcher::Event::InitApply(object) => self.upsert(object, true),
            watcher::Event::InitDone => self.list_done(),
        }
    }
}

/// A read-only view of one watch's objects (a lister with its indexers). Cheap to clone.
pub struct Store<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            shared: self.shared.clone(),
        }
    }
}

impl<K> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("watch", &self.shared.what)
            .finish_non_exhaustive()
    }
}

impl<K: Cacheable> Store<K> {
    /// The object `reference` names, if the cache holds it.
    pub fn get(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
        match &reference.namespace {
            Some(ns) => self.get_key(&format!("{ns}/{}", reference.name)),
            None => self.get_key(&reference.name),
        }
    }

    /// The object with `key` (`namespace/name` or `name`), if the cache holds it.
    pub fn get_key(&self, key: &str) -> Option<Arc<K>> {
        let packed = self.shared.read().objects.get(key).cloned()?;
        unpack(&packed)
    }

    /// Every object in the cache.
    pub fn state(&self) -> Vec<Arc<K>> {
        let packed: Vec<Packed> = self.shared.read().objects.values().cloned().collect();
        packed.iter().filter_map(|p| unpack(p)).collect()
    }

    /// The keys of every object in the cache.
    pub fn keys(&self) -> Vec<String> {
        self.shared
            .read()
            .objects
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.shared.read().objects.len()
    }

    /// Whether the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the stored objects take, without the map around them.
    pub fn stored_bytes(&self) -> usize {
        self.shared.read().objects.values().map(|p| p.len()).sum()
    }

    /// The keys of the objects whose index `index` has `value`, sorted (client-go's
    /// `IndexKeys`).
    pub fn index_keys(&self, index: &str, value: &str) -> Result<Vec<String>, Error> {
        let state = self.shared.read();
        let index = state
            .indexes
            .get(index)
            .ok_or_else(|| Error::UnknownIndex {
                name: index.to_string(),
                watch: self.shared.what.clone(),
            })?;
        Ok(index
            .values
            .get(value)
            .map(|keys| keys.iter().map(|k| k.to_string()).collect())
            .unwrap_or_default())
    }

    /// The objects whose index `index` has `value` (client-go's `ByIndex`).
    pub fn by_index(&self, index: &str, value: &str) -> Result<Vec<Arc<K>>, Error> {
        let packed: Vec<Packed> = {
            let state = self.shared.read();
            let found = state
                .indexes
                .get(index)
                .ok_or_else(|| Error::UnknownIndex {
                    name: index.to_string(),
                    watch: self.shared.what.clone(),
                })?;
            found
                .values
                .get(value)
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| state.objects.get(k).cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(packed.iter().filter_map(|p| unpack(p)).collect())
    }

    /// Whether the cache has held a complete list.
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until the cache holds a complete list.
    pub async fn wait_until_ready(&self) {
        let mut synced = self.shared.synced.subscribe();
        let _ = synced.wait_for(|synced| *synced).await;
    }
}

/// One controller's subscription to a watch: its store and, once [`Subscription::events`] is
/// called, its stream of changes.
pub struct Subscription<K> {
    shared: Arc<Shared<K>>,
    slot: Arc<Slot>,
    resync: Option<Duration>,
}

impl<K> std::fmt::Debug for Subscription<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("watch", &self.shared.what)
            .field("resync", &self.resync)
            .finish_non_exhaustive()
    }
}

impl<K: Cacheable> Subscription<K> {
    /// Resync every `period` (client-go's per-handler resync period); zero turns it off.
    #[must_use]
    pub fn with_resync(mut self, period: Duration) -> Self {
        self.resync = (!period.is_zero()).then_some(period);
        self
    }

    /// The watch's store.
    pub fn store(&self) -> Store<K> {
        Store {
            shared: self.shared.clone(),
        }
    }

    /// Starts receiving changes: an `Added` for every stored object, then every change, and the
    /// resyncs. Changes are dropped for this subscription while no stream exists; a new call
    /// replaces (and ends) the previous stream. The stream ends when the watch stops.
    pub fn events(&self) -> Events<K> {
        let receiver = self.shared.activate(&self.slot);
        let resync = self.resync.map(|period| {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        Events {
            shared: self.shared.clone(),
            slot: self.slot.clone(),
            receiver,
            resync,
        }
    }
}

/// A subscription's changes, in the store's order. Dropping it stops the subscription.
pub struct Events<K> {
    shared: Arc<Shared<K>>,
    slot: Arc<Slot>,
    receiver: mpsc::UnboundedReceiver<Queued>,
    resync: Option<tokio::time::Interval>,
}

impl<K> std::fmt::Debug for Events<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("watch", &self.shared.what)
            .finish_non_exhaustive()
    }
}

impl<K: Cacheable> Stream for Events<K> {
    type Item = Change<K>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // A stream replaced by a newer one of the same subscription resyncs no more.
        if let Some(resync) = this.resync.as_mut()
            && !this.receiver.is_closed()
            && resync.poll_tick(cx).is_ready()
        {
            this.shared.resync(&this.slot);
        }
        loop {
            let Some(queued) = std::task::ready!(this.receiver.poll_recv(cx)) else {
                return Poll::Ready(None);
            };
            let change = match queued {
                Queued::Added(new) => unpack(&new).map(Change::Added),
                Queued::Updated(old, new) => unpack(&old)
                    .zip(unpack(&new))
                    .map(|(old, new)| Change::Updated { old, new }),
                Queued::Resync(object) => unpack::<K>(&object).map(|object| Change::Updated {
                    old: object.clone(),
                    new: object,
                }),
                Queued::Deleted(last, final_state_unknown) => {
                    unpack(&last).map(|last| Change::Deleted {
                        last,
                        final_state_unknown,
                    })
                }
            };
            if let Some(change) = change {
                return Poll::Ready(Some(change));
            }
        }
    }
}

/// A watch as the registry starts it, whatever its type.
trait StartWatch: Send + Sync {
    fn describe(&self) -> String;
    fn start(&self, client: Client, shutdown: CancellationToken) -> BoxFuture<'static, ()>;
    fn synced(&self) -> BoxFuture<'static, ()>;
}

struct Watch<K: Cacheable> {
    shared: Arc<Shared<K>>,
    selector: Selector,
    wait_for_definition: std::sync::atomic::AtomicBool,
    paged: std::sync::atomic::AtomicBool,
}

/// How many objects one page of a paged list holds (client-go's pager default).
pub const LIST_PAGE_SIZE: u32 = 500;

/// How a watch lists: from the API server's watch cache in one response (`resourceVersion=0`,
/// which ignores `limit`, as client-go's informers ask), or, for a paged watch, in pages of
/// [`LIST_PAGE_SIZE`] with `limit`/`continue` and no resource version (a consistent list, which
/// current API servers page from their watch cache too). Paging bounds the size and duration
/// of each request when a type has tens of thousands of objects.
fn watcher_config(selector: &Selector, paged: bool) -> watcher::Config {
    let mut config = if paged {
        watcher::Config::default().page_size(LIST_PAGE_SIZE)
    } else {
        watcher::Config::default().any_semantic()
    };
    if !selector.labels.is_empty() {
        config = config.labels(&selector.labels);
    }
    if !selector.fields.is_empty() {
        config = config.fields(&selector.fields);
    }
    config
}

impl<K: Cacheable> StartWatch for Watch<K> {
    fn describe(&self) -> String {
        self.shared.what.clone()
    }

    fn start(&self, client: Client, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        let config = watcher_config(
            &self.selector,
            self.paged.load(std::sync::atomic::Ordering::SeqCst),
        );
        let shared = self.shared.clone();
        let wait = self
            .wait_for_definition
            .load(std::sync::atomic::Ordering::SeqCst);
        let wire = wire_api::<K>(client, &self.selector);
        let api = wire.clone();
        Box::pin(async move {
            let what = shared.what.clone();
            if wait {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        shared.stop();
                        return;
                    }
                    _ = wait_until_served(&api, &what) => {}
                }
            }
            let stream = watcher(wire, config).default_backoff();
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = stream.next() => match next {
                        Some(Ok(event)) => shared.apply(event),
                        Some(Err(err)) => warn!(watch = %what, %err, "Watch failed; retrying with backoff"),
                        None => break,
                    },
                }
            }
            shared.stop();
            debug!(watch = %what, "Watch stopped");
        })
    }

    fn synced(&self) -> BoxFuture<'static, ()> {
        let store = Store {
            shared: self.shared.clone(),
        };
        Box::pin(async move { store.wait_until_ready().await })
    }
}

/// Where a watch lists and watches: every namespace, or the selector's one.
fn wire_api<K: Cacheable>(client: Client, selector: &Selector) -> Api<Wire<K>> {
    if selector.namespace.is_empty() {
        Api::all(client)
    } else {
        Api::namespaced_with(client, &selector.namespace, &())
    }
}

/// Waits until the API server serves `api`'s resource, as upstream's snapshot-controller waits
/// for the snapshot CRDs before it starts its informers (upstream gives up and exits after a
/// while; here one missing definition must not end a process that runs other controllers, so
/// the wait goes on, logged).
async fn wait_until_served<K: Cacheable>(api: &Api<Wire<K>>, what: &str) {
    let mut delay = DEFINITION_BACKOFF.0;
    let mut logged = false;
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {
                if logged {
                    info!(watch = %what, "The resource is served now");
                }
                return;
            }
            Err(err) => {
                if !logged {
                    info!(watch = %what, %err, "Waiting for the resource's definition");
                    logged = true;
                } else {
                    debug!(watch = %what, %err, "Still waiting for the resource's definition");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(DEFINITION_BACKOFF.1);
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
    if !selector.namespace.is_empty() {
        text.push_str(&format!(" namespace={:?}", selector.namespace));
    }
    text
}

#[derive(Default)]
struct Inner {
    watches: Vec<Arc<dyn StartWatch>>,
    /// Each watch by (type, selector), kept as `Any` so each typed lookup can downcast.
    entries: HashMap<(TypeId, Selector), Arc<dyn Any + Send + Sync>>,
    started: bool,
}

/// The process's watches. Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct Caches {
    client: Client,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("watches", &self.describe())
            .finish()
    }
}

impl Caches {
    /// A registry whose watches use `client`.
    pub fn new(client: Client) -> Self {
        Caches {
            client,
            inner: Arc::default(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watch of `K` objects matching `selector`; declared here unless it exists.
    fn watch<K: Cacheable>(&self, selector: &Selector) -> Result<Arc<Watch<K>>, Error> {
        let key = (TypeId::of::<K>(), selector.clone());
        let mut inner = self.inner();
        if let Some(watch) = inner
            .entries
            .get(&key)
            .and_then(|entry| entry.clone().downcast::<Watch<K>>().ok())
        {
            return Ok(watch);
        }
        if inner.started {
            return Err(Error::TooLate(describe::<K>(selector)));
        }
        let watch = Arc::new(Watch {
            shared: Arc::new(Shared::new(describe::<K>(selector))),
            selector: selector.clone(),
            wait_for_definition: Default::default(),
            paged: Default::default(),
        });
        inner.watches.push(watch.clone());
        inner.entries.insert(key, watch.clone());
        Ok(watch)
    }

    /// A read-only cache of `K` objects matching `selector`.
    pub fn store<K: Cacheable>(&self, selector: &Selector) -> Result<Store<K>, Error> {
        Ok(Store {
            shared: self.watch::<K>(selector)?.shared.clone(),
        })
    }

    /// A subscription to the changes of `K` objects matching `selector`. It receives nothing
    /// until its [`Subscription::events`] stream is created, so a controller that is not
    /// running never holds the watch back. Subscribing to a started watch is fine: the stream
    /// starts with the stored objects.
    pub fn subscribe<K: Cacheable>(&self, selector: &Selector) -> Result<Subscription<K>, Error> {
        let shared = self.watch::<K>(selector)?.shared.clone();
        let slot: Arc<Slot> = Arc::default();
        {
            let mut subscribers = shared.subscribers.lock().unwrap_or_else(|e| e.into_inner());
            // Forget the subscriptions nobody holds any more (a controller restarted after a
            // failure subscribes again).
            subscribers.retain(|slot| Arc::strong_count(slot) > 1);
            subscribers.push(slot.clone());
        }
        Ok(Subscription {
            shared,
            slot,
            resync: None,
        })
    }

    /// Declares the index `name` on the cache of `K` objects matching `selector`: `function`
    /// gives an object's index values, and [`Store::by_index`] finds objects by value. Two
    /// functions with one name are an error, as client-go's `AddIndexers` says.
    pub fn index<K, F>(&self, selector: &Selector, name: &str, function: F) -> Result<(), Error>
    where
        K: Cacheable,
        F: Fn(&K) -> Vec<String> + Send + Sync + 'static,
    {
        self.watch::<K>(selector)?
            .shared
            .add_index(name, Arc::new(function))
    }

    /// Makes the watch of `K` objects matching `selector` wait until the API server serves the
    /// resource (a custom resource whose definition may be installed later) before it lists.
    pub fn wait_for_definition<K: Cacheable>(&self, selector: &Selector) -> Result<(), Error> {
        self.watch::<K>(selector)?
            .wait_for_definition
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Makes the watch of `K` objects matching `selector` list in pages of [`LIST_PAGE_SIZE`]
    /// (for types that may have tens of thousands of objects: the snapshot controller's
    /// VolumeSnapshots and VolumeSnapshotContents) instead of in one response.
    pub fn paged_list<K: Cacheable>(&self, selector: &Selector) -> Result<(), Error> {
        self.watch::<K>(selector)?
            .paged
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// What is watched, one line per watch.
    pub fn describe(&self) -> Vec<String> {
        self.inner().watches.iter().map(|w| w.describe()).collect()
    }

    /// How many watches the process opens.
    pub fn watch_count(&self) -> usize {
        self.inner().watches.len()
    }

    /// Opens every declared watch; they run until `shutdown`.
    pub fn start(&self, shutdown: &CancellationToken) -> Result<JoinSet<()>, Error> {
        let mut inner = self.inner();
        if inner.started {
            return Err(Error::AlreadyStarted);
        }
        inner.started = true;
        let mut set = JoinSet::new();
        for watch in &inner.watches {
            debug!(watch = %watch.describe(), "Starting watch");
            set.spawn(watch.start(self.client.clone(), shutdown.clone()));
        }
        Ok(set)
    }

    /// Waits until every cache has its initial list.
    pub async fn wait_for_sync(&self) {
        let waits: Vec<_> = self.inner().watches.iter().map(|w| w.synced()).collect();
        futures::future::join_all(waits).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::PersistentVolume;
    use k8s_openapi::api::storage::v1::VolumeAttachment;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    use super::*;

    fn pv(name: &str, class: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some("1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(k8s_openapi::api::core::v1::PersistentVolumeSpec {
                storage_class_name: Some(class.into()),
                ..Default::default()
            }),
            ..PersistentVolume::default()
        }
    }

    fn wire(pv: PersistentVolume) -> Wire<PersistentVolume> {
        Wire::new(pv).unwrap()
    }

    fn class_of(pv: &PersistentVolume) -> Vec<String> {
        pv.spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .into_iter()
            .collect()
    }

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

    #[test]
    fn paged_watches_list_in_pages_without_a_resource_version() {
        let selector = Selector::labels("app=x");
        let paged = watcher_config(&selector, true);
        assert_eq!(paged.page_size, Some(LIST_PAGE_SIZE));
        assert!(
            matches!(paged.list_semantic, watcher::ListSemantic::MostRecent),
            "no resourceVersion: a consistent list can be paged"
        );
        assert_eq!(paged.label_selector.as_deref(), Some("app=x"));
        // resourceVersion=0: served from the watch cache, which ignores the limit.
        let cached = watcher_config(&selector, false);
        assert!(matches!(cached.list_semantic, watcher::ListSemantic::Any));
    }

    #[tokio::test]
    async fn one_watch_per_type_and_selector_whatever_the_number_of_controllers() {
        let caches = registry();
        let all = Selector::all();
        // Two controllers subscribe to VolumeAttachments, one reads PersistentVolumes, another
        // subscribes to them: two watches.
        let _va_1 = caches.subscribe::<VolumeAttachment>(&all).unwrap();
        let _va_2 = caches.subscribe::<VolumeAttachment>(&all).unwrap();
        let _pv_store = caches.store::<PersistentVolume>(&all).unwrap();
        let _pv_events = caches.subscribe::<PersistentVolume>(&all).unwrap();
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
    async fn a_namespace_is_part_of_the_selector() {
        use k8s_openapi::api::storage::v1::CSIStorageCapacity;
        let caches = registry();
        let labels = "csi.storage.k8s.io/drivername=d,csi.storage.k8s.io/managed-by=m";
        let in_ns = Selector::labels(labels).in_namespace("kube-system");
        // Two controllers asking for the same namespace and labels share one watch; the same
        // labels in every namespace, or in another one, are other watches.
        let _first = caches.subscribe::<CSIStorageCapacity>(&in_ns).unwrap();
        let _second = caches.store::<CSIStorageCapacity>(&in_ns).unwrap();
        assert_eq!(caches.watch_count(), 1);
        let _everywhere = caches
            .store::<CSIStorageCapacity>(&Selector::labels(labels))
            .unwrap();
        let _other = caches
            .store::<CSIStorageCapacity>(&Selector::labels(labels).in_namespace("other"))
            .unwrap();
        assert_eq!(caches.watch_count(), 3);
        assert_eq!(
            caches.describe()[0],
            format!(
                "csistoragecapacities.storage.k8s.io labels={labels:?} namespace=\"kube-system\""
            )
        );
        // The watch of one namespace lists and watches under that namespace only.
        let client = caches.client.clone();
        assert_eq!(
            wire_api::<CSIStorageCapacity>(client.clone(), &in_ns).resource_url(),
            "/apis/storage.k8s.io/v1/namespaces/kube-system/csistoragecapacities"
        );
        assert_eq!(
            wire_api::<CSIStorageCapacity>(client, &Selector::labels(labels)).resource_url(),
            "/apis/storage.k8s.io/v1/csistoragecapacities"
        );
    }

    #[tokio::test]
    async fn dropped_subscriptions_are_forgotten() {
        let caches = registry();
        let all = Selector::all();
        let kept = caches.subscribe::<PersistentVolume>(&all).unwrap();
        for _ in 0..3 {
            drop(caches.subscribe::<PersistentVolume>(&all).unwrap());
        }
        let last = caches.subscribe::<PersistentVolume>(&all).unwrap();
        assert_eq!(kept.shared.subscribers.lock().unwrap().len(), 2);
        drop(last);
    }

    #[tokio::test]
    async fn a_new_watch_after_start_is_an_error_a_new_subscriber_is_not() {
        let caches = registry();
        let _pv = caches.store::<PersistentVolume>(&Selector::all()).unwrap();
        let shutdown = CancellationToken::new();
        let _watches = caches.start(&shutdown).unwrap();
        assert!(matches!(
            caches.start(&shutdown),
            Err(Error::AlreadyStarted)
        ));
        // A late subscriber to a started watch starts from the store.
        caches
            .subscribe::<PersistentVolume>(&Selector::all())
            .unwrap();
        let err = caches
            .store::<k8s_openapi::api::storage::v1::CSINode>(&Selector::all())
            .unwrap_err();
        assert!(matches!(err, Error::TooLate(_)));
        assert!(
            err.to_string().contains("after the watches started"),
            "{err}"
        );
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

    #[test]
    fn objects_are_trimmed_and_packed_as_they_are_read() {
        let json = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": "pv-1",
                "resourceVersion": "42",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "annotations": {LAST_APPLIED_ANNOTATION: "{}"}
            },
            "spec": {"storageClassName": "gold"}
        });
        let wire: Wire<PersistentVolume> = serde_json::from_value(json).unwrap();
        assert_eq!(wire.meta.name.as_deref(), Some("pv-1"));
        assert_eq!(wire.meta.resource_version.as_deref(), Some("42"));
        let packed = std::str::from_utf8(&wire.packed).unwrap();
        assert!(!packed.contains("managedFields"), "{packed}");
        assert!(!packed.contains(LAST_APPLIED_ANNOTATION), "{packed}");
        let pv = unpack::<PersistentVolume>(&wire.packed).unwrap();
        assert_eq!(class_of(&pv), vec!["gold".to_string()]);
    }

    /// The store's side of the watch, fed by hand: what each subscriber sees, in order.
    #[tokio::test]
    async fn subscribers_see_adds_updates_deletes_and_tombstones_after_a_relist() {
        let shared = Arc::new(Shared::<PersistentVolume>::new("persistentvolumes".into()));
        let subscription = Subscription {
            shared: shared.clone(),
            slot: Arc::default(),
            resync: None,
        };
        shared
            .subscribers
            .lock()
            .unwrap()
            .push(subscription.slot.clone());
        shared.add_index("class", Arc::new(class_of)).unwrap();
        let mut events = subscription.events();
        shared.apply(watcher::Event::Init);
        shared.apply(watcher::Event::InitApply(wire(pv("a", "gold"))));
        shared.apply(watcher::Event::InitApply(wire(pv("b", "gold"))));
        shared.apply(watcher::Event::InitDone);
        let mut b2 = pv("b", "silver");
        b2.metadata.resource_version = Some("2".into());
        shared.apply(watcher::Event::Apply(wire(b2)));
        shared.apply(watcher::Event::Delete(wire(pv("a", "gold"))));
        shared.apply(watcher::Event::Apply(wire(pv("c", "gold"))));
        // The watch restarts; "c" went away meanwhile.
        shared.apply(watcher::Event::Init);
        shared.apply(watcher::Event::InitApply(wire(pv("b", "silver"))));
        shared.apply(watcher::Event::InitDone);

        let store = subscription.store();
        assert!(store.is_synced());
        assert_eq!(store.keys(), vec!["b".to_string()]);
        assert_eq!(store.index_keys("class", "silver").unwrap(), vec!["b"]);
        assert!(store.index_keys("class", "gold").unwrap().is_empty());
        assert!(matches!(
            store.by_index("size", "x"),
            Err(Error::UnknownIndex { .. })
        ));
        assert!(matches!(
            shared.add_index("class", Arc::new(class_of)),
            Err(Error::IndexConflict { .. })
        ));

        let mut seen = Vec::new();
        for _ in 0..7 {
            let change = events.next().await.unwrap();
            seen.push(match change {
                Change::Added(o) => format!("added {}", o.name_any()),
                Change::Updated { old, new } => format!(
                    "updated {} {}->{}",
                    new.name_any(),
                    old.resource_version().unwrap(),
                    new.resource_version().unwrap()
                ),
                Change::Deleted {
                    last,
                    final_state_unknown,
                } => format!("deleted {} {final_state_unknown}", last.name_any()),
            });
        }
        assert_eq!(
            seen,
            vec![
                "added a",
                "added b",
                "updated b 1->2",
                "deleted a false",
                "added c",
                "updated b 2->1",
                "deleted c true",
            ]
        );
        // A stream started now begins with what is stored.
        drop(events);
        let mut again = subscription.events();
        assert!(matches!(again.next().await, Some(Change::Added(o)) if o.name_any() == "b"));
        shared.stop();
        assert!(again.next().await.is_none());
    }

    #[tokio::test]
    async fn a_subscription_without_a_stream_queues_nothing() {
        let shared = Arc::new(Shared::<PersistentVolume>::new("persistentvolumes".into()));
        let idle: Arc<Slot> = Arc::default();
        shared.subscribers.lock().unwrap().push(idle.clone());
        for i in 0..10_000 {
            shared.apply(watcher::Event::Apply(wire(pv(&format!("pv-{i}"), "gold"))));
        }
        assert!(idle.lock().unwrap().is_none());
        assert_eq!(shared.read().objects.len(), 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn resync_delivers_every_object_as_an_update_with_itself() {
        let shared = Arc::new(Shared::<PersistentVolume>::new("persistentvolumes".into()));
        let subscription = Subscription {
            shared: shared.clone(),
            slot: Arc::default(),
            resync: None,
        }
        .with_resync(Duration::from_secs(60));
        shared
            .subscribers
            .lock()
            .unwrap()
            .push(subscription.slot.clone());
        shared.apply(watcher::Event::Apply(wire(pv("a", "gold"))));
        let mut events = subscription.events();
        assert!(matches!(events.next().await, Some(Change::Added(_))));
        // The next change is the resync, a minute later.
        match events.next().await {
            Some(Change::Updated { old, new }) => assert!(Arc::ptr_eq(&old, &new)),
            other => panic!("expected a resync, got {other:?}"),
        }
    }
}
