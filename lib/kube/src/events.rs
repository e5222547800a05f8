//! Kubernetes Events (core/v1), written as client-go's `record.EventRecorder` writes them, with
//! the component name upstream uses, so `kubectl describe` and event-based alerts read the same.
//!
//! [`Recorder::record`] never waits: the Event goes into a bounded queue (1000, as client-go's
//! broadcaster) that a background task drains; when the queue is full the Event is dropped and
//! counted ([`Recorder::dropped`]). The task passes each Event through an [`EventCorrelator`], a
//! port of client-go's: an Event repeated for the same object, reason and message becomes one
//! Event whose `count` and `lastTimestamp` are patched; more than ten Events that differ only
//! in their message within ten minutes are combined into one
//! (`(combined from similar events): <message>`); and one source may write 25 Events about
//! one object in a burst, then one every five minutes.
//!
//! client-go keeps one correlator per broadcaster, and each upstream sidecar has its own; here
//! every [`Recorder::new`] of a process shares one ([`process_correlator`]), so its three caches
//! of 4096 entries bound the memory of correlation however many controllers run in the process
//! (1.9 MiB when full, measured with 4096 distinct Events; the all-in-one binary has five or six
//! recorders). The keys name the source component, so sharing changes no Event, only which old
//! entry is evicted first.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use futures::future::BoxFuture;

/// How many Events may wait to be written before new ones are dropped (client-go's
/// `maxQueuedEvents`).
pub const MAX_QUEUED_EVENTS: usize = 1000;

/// How often writing one Event is tried (client-go's `maxTriesPerEvent`).
const MAX_TRIES_PER_EVENT: u32 = 12;

/// The wait between two tries (client-go's default `sleepDuration`).
const RETRY_SLEEP: Duration = Duration::from_secs(10);

/// The prefix of a combined Event's message (client-go's `EventAggregatorByReasonMessageFunc`).
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something went as it should.
    Normal,
    /// Something needs attention.
    Warning,
}

impl EventType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Writes Events as one component (`csi-attacher`, `csi-snapshotter <driver>`). Cheap to clone;
/// clones share the queue, the background task and the correlation state.
#[derive(Clone)]
pub struct Recorder {
    component: String,
    host: String,
    queue: Option<mpsc::Sender<Event>>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for `component` (`source.component` and `reportingController`), reporting
    /// from `host` (`source.host` and `reportingInstance`), writing with `client` and
    /// correlating with the process's [`process_correlator`]. Its background task runs on the
    /// current tokio runtime until every clone is dropped; outside a runtime, Events are
    /// dropped and counted.
    pub fn new(client: Client, component: impl Into<String>, host: impl Into<String>) -> Self {
        Self::sharing(
            Arc::new(ApiSink(client)),
            process_correlator(),
            component,
            host,
        )
    }

    /// A recorder writing to `sink`, with a correlator of its own.
    pub fn with_sink(
        sink: Arc<dyn EventSink>,
        component: impl Into<String>,
        host: impl Into<String>,
    ) -> Self {
        let correlator = EventCorrelator::new(CorrelatorOptions::default());
        Self::sharing(sink, Arc::new(Mutex::new(correlator)), component, host)
    }

    /// A recorder writing to `sink` and correlating with `correlator`, which other recorders
    /// may share.
    pub fn sharing(
        sink: Arc<dyn EventSink>,
        correlator: Arc<Mutex<EventCorrelator>>,
        component: impl Into<String>,
        host: impl Into<String>,
    ) -> Self {
        let queue = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (sender, receiver) = mpsc::channel(MAX_QUEUED_EVENTS);
            runtime.spawn(write_events(receiver, correlator, sink, RETRY_SLEEP));
            sender
        });
        Recorder {
            component: component.into(),
            host: host.into(),
            queue,
            dropped: Arc::default(),
        }
    }

    /// Records an Event on `object`, without waiting. Failures are logged, never returned: an
    /// Event is a courtesy, and the work it describes must not fail or wait because of it.
    pub fn record<K>(&self, object: &K, event_type: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        self.record_for(object_reference(object), event_type, reason, message);
    }

    /// Records an Event on the object `reference` names, as [`Recorder::record`] does.
    pub fn record_for(
        &self,
        reference: ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        let object = reference.name.clone().unwrap_or_default();
        let event = self.make_event(reference, event_type, reason, message);
        let sent = self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.try_send(event).is_ok());
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            error!(
                reason,
                object = %object,
                "Unable to record event: too many queued events, dropped event"
            );
        }
    }

    /// How many Events were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The Event client-go's recorder makes (`makeEvent` plus the source and the reporting
    /// fields).
    fn make_event(
        &self,
        reference: ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) -> Event {
        let now = Timestamp::now();
        // Events of cluster-scoped objects go to "default", as client-go puts them.
        let namespace = reference
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_string());
        Event {
            metadata: ObjectMeta {
                name: Some(event_name(reference.name.as_deref(), now)),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: reference,
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(event_type.as_str().to_string()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: Some(self.host.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone()),
            ..Event::default()
        }
    }
}

/// Where a controller's Events go: a [`Recorder`] in the process, a recording fake in tests.
/// Object-safe, so controllers hold an `Arc<dyn EventRecorder>`; [`record`](#method.record)
/// on `dyn EventRecorder` takes the object itself.
pub trait EventRecorder: Send + Sync + std::fmt::Debug {
    /// Records an Event on the object `object` refers to (its `involvedObject`), without
    /// waiting.
    fn record_for(
        &self,
        object: ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
    );
}

impl dyn EventRecorder + '_ {
    /// Records an Event on `object`, its `involvedObject` being [`object_reference`]`(object)`.
    pub fn record<K>(&self, object: &K, event_type: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        self.record_for(object_reference(object), event_type, reason, message);
    }
}

impl EventRecorder for Recorder {
    fn record_for(
        &self,
        object: ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        Recorder::record_for(self, object, event_type, reason, message);
    }
}

/// `<object name>.<nanoseconds in hex>`, as client-go names Events.
fn event_name(object: Option<&str>, now: Timestamp) -> String {
    format!("{}.{:x}", object.unwrap_or_default(), now.as_nanosecond())
}

/// The `ObjectReference` of `object`.
pub fn object_reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: object.meta().name.clone(),
        namespace: object.meta().namespace.clone(),
        uid: object.meta().uid.clone(),
        resource_version: object.meta().resource_version.clone(),
        field_path: None,
    }
}

/// Why the API server did not take an Event.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The Event to patch does not exist (any more): create it instead.
    #[error("the event does not exist")]
    NotFound,
    /// The API server refused it for good (invalid, namespace terminating, already exists).
    #[error("the server rejected the event: {0}")]
    Rejected(String),
    /// It may work later (no connection, server error).
    #[error("unable to write the event: {0}")]
    Transient(String),
}

/// Where Events are written (client-go's `EventSink`).
pub trait EventSink: Send + Sync {
    /// Creates `event`; returns it as stored.
    fn create(&self, event: Event) -> BoxFuture<'_, Result<Event, SinkError>>;
    /// Applies the strategic merge `patch` to the stored `event`; returns it as stored.
    fn patch(
        &self,
        event: Event,
        patch: serde_json::Value,
    ) -> BoxFuture<'_, Result<Event, SinkError>>;
}

/// The API server as an [`EventSink`].
struct ApiSink(Client);

fn sink_error(err: kube::Error) -> SinkError {
    match err {
        kube::Error::Api(status) if status.code == 404 => SinkError::NotFound,
        kube::Error::Api(status) if status.code < 500 && status.code != 429 => {
            SinkError::Rejected(status.message.clone())
        }
        other => SinkError::Transient(other.to_string()),
    }
}

impl EventSink for ApiSink {
    fn create(&self, event: Event) -> BoxFuture<'_, Result<Event, SinkError>> {
        Box::pin(async move {
            let namespace = event.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Event> = Api::namespaced(self.0.clone(), &namespace);
            api.create(&PostParams::default(), &event)
                .await
                .map_err(sink_error)
        })
    }

    fn patch(
        &self,
        event: Event,
        patch: serde_json::Value,
    ) -> BoxFuture<'_, Result<Event, SinkError>> {
        Box::pin(async move {
            let namespace = event.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Event> = Api::namespaced(self.0.clone(), &namespace);
            api.patch(
                &event.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .map_err(sink_error)
        })
    }
}

/// The process's correlator, which every [`Recorder::new`] shares.
pub fn process_correlator() -> Arc<Mutex<EventCorrelator>> {
    static CORRELATOR: OnceLock<Arc<Mutex<EventCorrelator>>> = OnceLock::new();
    CORRELATOR
        .get_or_init(|| {
            Arc::new(Mutex::new(EventCorrelator::new(
                CorrelatorOptions::default(),
            )))
        })
        .clone()
}

fn lock(correlator: &Mutex<EventCorrelator>) -> std::sync::MutexGuard<'_, EventCorrelator> {
    correlator.lock().unwrap_or_else(|e| e.into_inner())
}

/// The background task: correlates each Event and writes it, with client-go's retries.
async fn write_events(
    mut queue: mpsc::Receiver<Event>,
    correlator: Arc<Mutex<EventCorrelator>>,
    sink: Arc<dyn EventSink>,
    sleep: Duration,
) {
    while let Some(event) = queue.recv().await {
        let Some(result) = lock(&correlator).correlate(event) else {
            continue;
        };
        let mut tries = 0;
        loop {
            if write_event(&*sink, &result, &correlator).await {
                break;
            }
            tries += 1;
            if tries >= MAX_TRIES_PER_EVENT {
                error!(reason = ?result.event.reason, "Unable to write event (retry limit exceeded!)");
                break;
            }
            // The first wait is random so that clients do not retry in step.
            let wait = if tries == 1 {
                sleep.mul_f64(jitter())
            } else {
                sleep
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A number in [0, 1) good enough to spread retries.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

/// client-go's `recordEvent`: patch a repeated Event, create a new one (or one whose earlier
/// occurrence is gone). True when done, false when worth trying again.
async fn write_event(
    sink: &dyn EventSink,
    result: &Correlated,
    correlator: &Mutex<EventCorrelator>,
) -> bool {
    let mut event = result.event.clone();
    let mut written = None;
    if let Some(patch) = &result.patch {
        written = Some(sink.patch(event.clone(), patch.clone()).await);
    }
    if matches!(written, None | Some(Err(SinkError::NotFound))) {
        event.metadata.resource_version = None;
        written = Some(sink.create(event).await);
    }
    match written {
        Some(Ok(stored)) => {
            lock(correlator).update_state(&stored);
            true
        }
        Some(Err(SinkError::Rejected(reason))) => {
            debug!(%reason, "Server rejected event (will not retry!)");
            true
        }
        Some(Err(err)) => {
            warn!(%err, "Unable to write event (may retry after sleeping)");
            false
        }
        None => true,
    }
}

// ---------------------------------------------------------------------------------------------
// The correlator

/// Where the correlator reads the time (a fake one in tests).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A key function over an Event.
pub type KeyFn = fn(&Event) -> String;

/// The correlator's settings; the defaults are client-go's.
#[derive(Clone)]
pub struct CorrelatorOptions {
    /// Entries kept by each of its caches (4096).
    pub lru_cache_size: usize,
    /// Events one source may write about one object in a burst (25).
    pub burst: u32,
    /// How fast that budget refills, per second (one every five minutes).
    pub qps: f64,
    /// How many distinct messages of similar Events before they are combined (10).
    pub max_events: usize,
    /// How long similar Events are remembered (10 minutes).
    pub max_interval: Duration,
    /// What counts as one source and object for the spam filter.
    pub spam_key: KeyFn,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CorrelatorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorrelatorOptions")
            .field("lru_cache_size", &self.lru_cache_size)
            .field("burst", &self.burst)
            .field("qps", &self.qps)
            .field("max_events", &self.max_events)
            .field("max_interval", &self.max_interval)
            .finish_non_exhaustive()
    }
}

impl Default for CorrelatorOptions {
    fn default() -> Self {
        CorrelatorOptions {
            lru_cache_size: 4096,
            burst: 25,
            qps: 1.0 / 300.0,
            max_events: 10,
            max_interval: Duration::from_secs(600),
            spam_key,
            clock: Arc::new(SystemClock),
        }
    }
}

fn source(event: &Event) -> (&str, &str) {
    let source = event.source.as_ref();
    (
        source
            .and_then(|s| s.component.as_deref())
            .unwrap_or_default(),
        source.and_then(|s| s.host.as_deref()).unwrap_or_default(),
    )
}

fn object_fields(event: &Event) -> [&str; 4] {
    let o = &event.involved_object;
    [
        o.kind.as_deref().unwrap_or_default(),
        o.namespace.as_deref().unwrap_or_default(),
        o.name.as_deref().unwrap_or_default(),
        o.field_path.as_deref().unwrap_or_default(),
    ]
}

/// The full key of an Event: source, object, type, reason and message (client-go's
/// `getEventKey`, fields joined without a separator as there).
pub fn event_key(event: &Event) -> String {
    let (component, host) = source(event);
    let [kind, namespace, name, field_path] = object_fields(event);
    let o = &event.involved_object;
    [
        component,
        host,
        kind,
        namespace,
        name,
        field_path,
        o.uid.as_deref().unwrap_or_default(),
        o.api_version.as_deref().unwrap_or_default(),
        event.type_.as_deref().unwrap_or_default(),
        event.reason.as_deref().unwrap_or_default(),
        event.message.as_deref().unwrap_or_default(),
    ]
    .concat()
}

/// The spam filter's key: source and object (client-go's `getSpamKey`).
pub fn spam_key(event: &Event) -> String {
    let (component, host) = source(event);
    let [kind, namespace, name, _] = object_fields(event);
    let o = &event.involved_object;
    [
        component,
        host,
        kind,
        namespace,
        name,
        o.uid.as_deref().unwrap_or_default(),
        o.api_version.as_deref().unwrap_or_default(),
    ]
    .concat()
}

/// The aggregation key (source, object, type, reason, reporting controller and instance) and
/// the local key (the message) of an Event (client-go's `EventAggregatorByReasonFunc`).
pub fn aggregate_keys(event: &Event) -> (String, String) {
    let (component, host) = source(event);
    let [kind, namespace, name, _] = object_fields(event);
    let o = &event.involved_object;
    let key = [
        component,
        host,
        kind,
        namespace,
        name,
        o.uid.as_deref().unwrap_or_default(),
        o.api_version.as_deref().unwrap_or_default(),
        event.type_.as_deref().unwrap_or_default(),
        event.reason.as_deref().unwrap_or_default(),
        event.reporting_component.as_deref().unwrap_or_default(),
        event.reporting_instance.as_deref().unwrap_or_default(),
    ]
    .concat();
    (key, event.message.clone().unwrap_or_default())
}

/// A least-recently-used map of bounded size (groupcache's `lru.Cache`, which client-go uses),
/// keyed by a 128-bit hash of the key (two SipHash functions with this process's random keys)
/// rather than the key itself: the correlator's keys join an Event's source, object, reason and
/// message, a few hundred bytes each, and each cache holds thousands of them.
///
/// The entries sit side by side in a list that only grows until the bound, then reuses the
/// least recently used slot; a small index maps the key's first half to its slot, and the slot
/// keeps the second half. So memory follows the number of entries, with no hash-table slack
/// around the values, and a key whose first half matches another's but not its second is
/// never taken for it (it replaces that entry instead; odds about n² / 2⁶⁵).
struct Lru<V> {
    capacity: usize,
    tick: u64,
    hashers: (RandomState, RandomState),
    index: HashMap<u64, u32>,
    slots: Vec<Slot<V>>,
}

struct Slot<V> {
    high: u64,
    low: u64,
    used: u64,
    value: V,
}

impl<V> Lru<V> {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Lru {
            capacity,
            tick: 0,
            hashers: (RandomState::new(), RandomState::new()),
            index: HashMap::new(),
            slots: Vec::new(),
        }
    }

    fn hash(&self, key: &str) -> (u64, u64) {
        (self.hashers.0.hash_one(key), self.hashers.1.hash_one(key))
    }

    fn insert(&mut self, key: &str, value: V) {
        let hash = self.hash(key);
        self.insert_hashed(hash, value);
    }

    fn get_hashed(&mut self, (high, low): (u64, u64)) -> Option<&mut V> {
        self.tick += 1;
        let slot = &mut self.slots[*self.index.get(&high)? as usize];
        if slot.low != low {
            return None;
        }
        slot.used = self.tick;
        Some(&mut slot.value)
    }

    fn insert_hashed(&mut self, (high, low): (u64, u64), value: V) {
        self.tick += 1;
        let slot = Slot {
            high,
            low,
            used: self.tick,
            value,
        };
        if let Some(&at) = self.index.get(&high) {
            self.slots[at as usize] = slot;
        } else if self.slots.len() < self.capacity {
            self.index.insert(high, self.slots.len() as u32);
            self.slots.push(slot);
        } else if let Some((at, oldest)) = self
            .slots
            .iter_mut()
            .enumerate()
            .min_by_key(|(_, slot)| slot.used)
        {
            self.index.remove(&oldest.high);
            self.index.insert(high, at as u32);
            *oldest = slot;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }
}

struct AggregateRecord {
    local_keys: LocalKeys,
    last: Timestamp,
}

/// The distinct messages of an aggregate (by hash: only their number matters), at most
/// `max_events`: the first inline, as most aggregates see one message, the others in a list.
#[derive(Default)]
struct LocalKeys {
    first: Option<u64>,
    rest: Vec<u64>,
}

impl LocalKeys {
    fn insert(&mut self, key: u64) {
        match self.first {
            None => self.first = Some(key),
            Some(first) if first == key => {}
            Some(_) if self.rest.contains(&key) => {}
            Some(_) => self.rest.push(key),
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Forgets one of them (client-go's `PopAny`).
    fn pop_any(&mut self) {
        if self.rest.pop().is_none() {
            self.first = None;
        }
    }
}

#[derive(Clone)]
struct EventLog {
    count: i32,
    first: Option<Time>,
    name: Option<Box<str>>,
    resource_version: Option<Box<str>>,
}

impl EventLog {
    /// What is remembered of `event`.
    fn of(event: &Event) -> Self {
        EventLog {
            count: event.count.unwrap_or_default(),
            first: event.first_timestamp.clone(),
            name: event.metadata.name.as_deref().map(Box::from),
            resource_version: event.metadata.resource_version.as_deref().map(Box::from),
        }
    }
}

/// A token bucket over the correlator's clock (client-go's token bucket rate limiter).
struct Bucket {
    tokens: f64,
    last: Timestamp,
}

/// What the correlator made of an Event.
#[derive(Clone, Debug)]
pub struct Correlated {
    /// The Event to write.
    pub event: Event,
    /// For a repeated Event: the strategic merge patch to apply to the stored one
    /// (`count`, `lastTimestamp`, `message`).
    pub patch: Option<serde_json::Value>,
}

/// client-go's `EventCorrelator`: spam filtering, aggregation of similar Events and counting of
/// repeated ones.
pub struct EventCorrelator {
    options: CorrelatorOptions,
    aggregates: Lru<AggregateRecord>,
    logs: Lru<EventLog>,
    spam: Lru<Bucket>,
    local_hasher: RandomState,
}

impl std::fmt::Debug for EventCorrelator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCorrelator")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl EventCorrelator {
    /// A correlator with `options`.
    pub fn new(options: CorrelatorOptions) -> Self {
        EventCorrelator {
            aggregates: Lru::new(options.lru_cache_size),
            logs: Lru::new(options.lru_cache_size),
            spam: Lru::new(options.lru_cache_size),
            local_hasher: RandomState::new(),
            options,
        }
    }

    /// Filters, aggregates and counts `event` (client-go's `EventCorrelate`); `None` when the
    /// spam filter drops it.
    pub fn correlate(&mut self, event: Event) -> Option<Correlated> {
        let (aggregated, key) = self.aggregate(event);
        let (observed, patch) = self.observe(aggregated, &key);
        if self.filtered(&observed) {
            return None;
        }
        Some(Correlated {
            event: observed,
            patch,
        })
    }

    /// Remembers the Event as the server stored it (client-go's `UpdateState`): its name and
    /// resource version are what the next repeat patches.
    pub fn update_state(&mut self, event: &Event) {
        self.logs.insert(&event_key(event), EventLog::of(event));
    }

    /// client-go's `EventAggregator.EventAggregate`.
    fn aggregate(&mut self, event: Event) -> (Event, String) {
        let now = self.options.clock.now();
        let event_key = event_key(&event);
        let (aggregate_key, local_key) = aggregate_keys(&event);
        let max_interval =
            SignedDuration::try_from(self.options.max_interval).unwrap_or(SignedDuration::MAX);
        let hash = self.aggregates.hash(&aggregate_key);
        let fresh = match self.aggregates.get_hashed(hash) {
            Some(record) => now.duration_since(record.last) > max_interval,
            None => true,
        };
        if fresh {
            self.aggregates.insert_hashed(
                hash,
                AggregateRecord {
                    local_keys: Default::default(),
                    last: now,
                },
            );
        }
        let Some(record) = self.aggregates.get_hashed(hash) else {
            return (event, event_key);
        };
        record
            .local_keys
            .insert(self.local_hasher.hash_one(&local_key));
        record.last = now;
        if record.local_keys.len() < self.options.max_events {
            return (event, event_key);
        }
        // Do not let the set grow past the limit.
        record.local_keys.pop_any();
        let combined = Event {
            metadata: ObjectMeta {
                name: Some(event_name(event.involved_object.name.as_deref(), now)),
                namespace: event.metadata.namespace.clone(),
                ..ObjectMeta::default()
            },
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            message: Some(format!(
                "{COMBINED_PREFIX}{}",
                event.message.as_deref().unwrap_or_default()
            )),
            type_: event.type_.clone(),
            reason: event.reason.clone(),
            source: event.source.clone(),
            involved_object: event.involved_object,
            ..Event::default()
        };
        (combined, aggregate_key)
    }

    /// client-go's `eventLogger.eventObserve`.
    fn observe(&mut self, mut event: Event, key: &str) -> (Event, Option<serde_json::Value>) {
        let mut patch = None;
        let hash = self.logs.hash(key);
        if let Some(last) = self.logs.get_hashed(hash).filter(|last| last.count > 0) {
            event.metadata.name = last.name.as_deref().map(str::to_owned);
            event.metadata.resource_version = last.resource_version.as_deref().map(str::to_owned);
            event.first_timestamp = last.first.clone();
            event.count = Some(last.count + 1);
            patch = Some(json!({
                "count": event.count,
                "lastTimestamp": event.last_timestamp,
                "message": event.message,
            }));
        }
        self.logs.insert_hashed(hash, EventLog::of(&event));
        (event, patch)
    }

    /// client-go's `EventSourceObjectSpamFilter.Filter`: true when the Event must be dropped.
    fn filtered(&mut self, event: &Event) -> bool {
        let key = (self.options.spam_key)(event);
        let now = self.options.clock.now();
        let burst = f64::from(self.options.burst);
        let qps = self.options.qps;
        let hash = self.spam.hash(&key);
        if self.spam.get_hashed(hash).is_none() {
            self.spam.insert_hashed(
                hash,
                Bucket {
                    tokens: burst,
                    last: now,
                },
            );
        }
        let Some(bucket) = self.spam.get_hashed(hash) else {
            return false;
        };
        let elapsed = now.duration_since(bucket.last).as_secs_f64().max(0.0);
        bucket.tokens = (bucket.tokens + elapsed * qps).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            false
        } else {
            true
        }
    }
}

#[cfg(test)]
mod tests;
