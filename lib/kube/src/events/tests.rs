//! client-go's `events_cache_test.go` cases, ported, and the recorder's queue.

use std::sync::Mutex;

use tokio::sync::Notify;

use super::*;

/// client-go's `clock.IntervalClock`: every reading moves time forward by `step`.
struct IntervalClock {
    time: Mutex<Timestamp>,
    step: SignedDuration,
}

impl IntervalClock {
    fn new(step_seconds: i64) -> Arc<Self> {
        Arc::new(IntervalClock {
            time: Mutex::new(Timestamp::now()),
            step: SignedDuration::from_secs(step_seconds),
        })
    }
}

impl Clock for IntervalClock {
    fn now(&self) -> Timestamp {
        let mut time = self.time.lock().unwrap();
        *time = time.checked_add(self.step).unwrap();
        *time
    }
}

const DEFAULT_AGGREGATE_MAX_EVENTS: usize = 10;
const DEFAULT_SPAM_BURST: usize = 25;
const DEFAULT_AGGREGATE_INTERVAL_SECONDS: i64 = 600;

fn make_object_reference(kind: &str, name: &str, namespace: &str) -> ObjectReference {
    ObjectReference {
        kind: Some(kind.into()),
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        uid: Some("C934D34AFB20242".into()),
        api_version: Some("version".into()),
        field_path: Some("spec.containers{mycontainer}".into()),
        resource_version: None,
    }
}

fn make_event(reason: &str, message: &str, involved_object: ObjectReference) -> Event {
    let now = Time(Timestamp::now());
    Event {
        reason: Some(reason.into()),
        message: Some(message.into()),
        involved_object,
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some("kublet.node1".into()),
        }),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        type_: Some("Normal".into()),
        ..Event::default()
    }
}

fn make_events(n: usize, template: &Event) -> Vec<Event> {
    vec![template.clone(); n]
}

fn make_unique_events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            make_event(
                &format!("reason-{i}"),
                &format!("message-{i}"),
                make_object_reference("Pod", &format!("pod-{i}"), &format!("ns-{i}")),
            )
        })
        .collect()
}

fn make_similar_events(n: usize, template: &Event, prefix: &str) -> Vec<Event> {
    let mut events = make_events(n, template);
    for (i, event) in events.iter_mut().enumerate() {
        event.message = Some(format!(
            "{prefix}-{i}-{}",
            event.message.as_deref().unwrap_or_default()
        ));
    }
    events
}

fn set_count(mut event: Event, count: i32) -> Event {
    event.count = Some(count);
    event
}

/// client-go's `validateEvent`.
fn validate_event(scenario: &str, actual: &Event, expected: &Event) {
    let expect_compression = expected.count.unwrap_or_default() > 1;
    assert!(
        actual.first_timestamp.is_some() && actual.last_timestamp.is_some(),
        "{scenario}: timestamp wasn't set: {actual:?}"
    );
    if actual.first_timestamp == actual.last_timestamp {
        assert!(
            !expect_compression,
            "{scenario}: first and last timestamp must differ when the event was compressed: {actual:?}"
        );
    } else {
        assert_ne!(
            expected.count,
            Some(1),
            "{scenario}: first and last timestamp must be equal for one occurrence: {actual:?}"
        );
    }
    let mut received = actual.clone();
    received.first_timestamp = expected.first_timestamp.clone();
    received.last_timestamp = expected.last_timestamp.clone();
    let name = received.metadata.name.clone().unwrap_or_default();
    let expected_name = expected.metadata.name.clone().unwrap_or_default();
    assert!(
        name.starts_with(&expected_name),
        "{scenario}: name {name:?} does not start with {expected_name:?}"
    );
    received.metadata.name = expected.metadata.name.clone();
    assert_eq!(&received, expected, "{scenario}");
}

#[test]
fn event_aggregator_by_reason_func() {
    let event1 = make_event(
        "end-of-world",
        "it was fun",
        make_object_reference("Pod", "pod1", "other"),
    );
    let event2 = make_event(
        "end-of-world",
        "it was awful",
        make_object_reference("Pod", "pod1", "other"),
    );
    let event3 = make_event(
        "nevermind",
        "it was a bug",
        make_object_reference("Pod", "pod1", "other"),
    );
    let (aggregate1, local1) = aggregate_keys(&event1);
    let (aggregate2, local2) = aggregate_keys(&event2);
    let (aggregate3, _) = aggregate_keys(&event3);
    assert_eq!(aggregate1, aggregate2);
    assert_ne!(local1, local2);
    assert_ne!(aggregate1, aggregate3);
}

#[test]
fn event_aggregator_by_reason_message_func() {
    let mut correlator = EventCorrelator::new(CorrelatorOptions {
        max_events: 1,
        ..CorrelatorOptions::default()
    });
    let event = make_event(
        "end-of-world",
        "it was fun",
        make_object_reference("Pod", "pod1", "other"),
    );
    let combined = correlator.correlate(event).unwrap().event;
    assert!(
        combined
            .message
            .unwrap()
            .starts_with("(combined from similar events): ")
    );
}

/// What the correlator remembers is bounded by `lru_cache_size` per cache, whatever the
/// number of objects it saw (the soak's RSS series of a long churn rises until the caches are
/// full, then stays): the least recently used entries go first.
#[test]
fn the_correlator_remembers_at_most_its_lru_size_per_cache() {
    let mut correlator = EventCorrelator::new(CorrelatorOptions {
        lru_cache_size: 64,
        ..CorrelatorOptions::default()
    });
    let mut last = None;
    for i in 0..1000 {
        let event = make_event(
            "ProvisioningSucceeded",
            &format!("Successfully provisioned volume pvc-{i}"),
            make_object_reference("PersistentVolumeClaim", &format!("claim-{i}"), "ns"),
        );
        let mut stored = correlator.correlate(event.clone()).unwrap().event;
        stored.metadata.name = Some(format!("claim-{i}.1"));
        correlator.update_state(&stored);
        last = Some(event);
    }
    assert_eq!(correlator.aggregates.len(), 64);
    assert_eq!(correlator.logs.len(), 64);
    assert_eq!(correlator.spam.len(), 64);
    // The latest object is still known: its repeat becomes a count patch.
    let repeat = correlator.correlate(last.unwrap()).unwrap();
    assert!(repeat.patch.is_some(), "{:?}", repeat.event);
    assert_eq!(repeat.event.count, Some(2));
    // The first one was evicted: its repeat is a new Event.
    let first = make_event(
        "ProvisioningSucceeded",
        "Successfully provisioned volume pvc-0",
        make_object_reference("PersistentVolumeClaim", "claim-0", "ns"),
    );
    assert!(correlator.correlate(first).unwrap().patch.is_none());
}

struct Scenario {
    name: &'static str,
    previous_events: Vec<Event>,
    new_event: Event,
    expected_event: Option<Event>,
    interval_seconds: i64,
}

#[test]
fn the_lru_forgets_the_least_recently_used_and_never_confuses_half_equal_keys() {
    let mut lru = Lru::new(2);
    lru.insert_hashed((1, 1), "a");
    lru.insert_hashed((2, 2), "b");
    assert_eq!(lru.get_hashed((1, 1)), Some(&mut "a"));
    lru.insert_hashed((3, 3), "c");
    assert_eq!(
        lru.get_hashed((2, 2)),
        None,
        "b was the least recently used"
    );
    assert_eq!(lru.get_hashed((1, 1)), Some(&mut "a"));
    assert_eq!(lru.get_hashed((3, 3)), Some(&mut "c"));
    assert_eq!(lru.len(), 2);

    // Same first half, other second half: not the same key ...
    assert_eq!(lru.get_hashed((1, 9)), None);
    // ... and storing it replaces the entry that shares its slot.
    lru.insert_hashed((1, 9), "d");
    assert_eq!(lru.get_hashed((1, 1)), None);
    assert_eq!(lru.get_hashed((1, 9)), Some(&mut "d"));
    assert_eq!(lru.get_hashed((3, 3)), Some(&mut "c"));
    assert_eq!(lru.len(), 2);
}

#[test]
fn event_correlator() {
    let first_event = make_event(
        "first",
        "i am first",
        make_object_reference("Pod", "my-pod", "my-ns"),
    );
    let duplicate_event = make_event(
        "duplicate",
        "me again",
        make_object_reference("Pod", "my-pod", "my-ns"),
    );
    let unique_event = make_event(
        "unique",
        "snowflake",
        make_object_reference("Pod", "my-pod", "my-ns"),
    );
    let mut similar_event = make_event(
        "similar",
        "similar message",
        make_object_reference("Pod", "my-pod", "my-ns"),
    );
    similar_event.involved_object.field_path = Some("spec.containers{container1}".into());
    let aggregate_event = make_event(
        similar_event.reason.as_deref().unwrap(),
        &format!(
            "{COMBINED_PREFIX}{}",
            similar_event.message.as_deref().unwrap()
        ),
        similar_event.involved_object.clone(),
    );
    let mut similar_but_different_container_event = similar_event.clone();
    similar_but_different_container_event
        .involved_object
        .field_path = Some("spec.containers{container2}".into());
    let similar_message = similar_event.message.clone().unwrap();

    let scenarios = vec![
        Scenario {
            name: "create-a-single-event",
            previous_events: vec![],
            new_event: first_event.clone(),
            expected_event: Some(set_count(first_event.clone(), 1)),
            interval_seconds: 5,
        },
        Scenario {
            name: "the-same-event-should-just-count",
            previous_events: make_events(1, &duplicate_event),
            new_event: duplicate_event.clone(),
            expected_event: Some(set_count(duplicate_event.clone(), 2)),
            interval_seconds: 5,
        },
        Scenario {
            name: "the-same-event-should-just-count-even-if-more-than-aggregate",
            previous_events: make_events(DEFAULT_AGGREGATE_MAX_EVENTS, &duplicate_event),
            new_event: duplicate_event.clone(),
            expected_event: Some(set_count(
                duplicate_event.clone(),
                DEFAULT_AGGREGATE_MAX_EVENTS as i32 + 1,
            )),
            // A larger interval induces aggregation but not spam.
            interval_seconds: 30,
        },
        Scenario {
            name: "the-same-event-is-spam-if-happens-too-frequently",
            previous_events: make_events(DEFAULT_SPAM_BURST + 1, &duplicate_event),
            new_event: duplicate_event.clone(),
            expected_event: None,
            interval_seconds: 1,
        },
        Scenario {
            name: "create-many-unique-events",
            previous_events: make_unique_events(30),
            new_event: unique_event.clone(),
            expected_event: Some(set_count(unique_event.clone(), 1)),
            interval_seconds: 5,
        },
        Scenario {
            name: "similar-events-should-aggregate-event",
            previous_events: make_similar_events(
                DEFAULT_AGGREGATE_MAX_EVENTS - 1,
                &similar_event,
                &similar_message,
            ),
            new_event: similar_event.clone(),
            expected_event: Some(set_count(aggregate_event.clone(), 1)),
            interval_seconds: 5,
        },
        Scenario {
            name: "similar-events-many-times-should-count-the-aggregate",
            previous_events: make_similar_events(
                DEFAULT_AGGREGATE_MAX_EVENTS,
                &similar_event,
                &similar_message,
            ),
            new_event: similar_event.clone(),
            expected_event: Some(set_count(aggregate_event.clone(), 2)),
            interval_seconds: 5,
        },
        Scenario {
            name: "events-from-different-containers-do-not-aggregate",
            previous_events: make_events(1, &similar_but_different_container_event),
            new_event: similar_event.clone(),
            expected_event: Some(set_count(similar_event.clone(), 1)),
            interval_seconds: 5,
        },
        Scenario {
            name: "similar-events-whose-interval-is-greater-than-aggregate-interval-do-not-aggregate",
            previous_events: make_similar_events(
                DEFAULT_AGGREGATE_MAX_EVENTS - 1,
                &similar_event,
                &similar_message,
            ),
            new_event: similar_event.clone(),
            expected_event: Some(set_count(similar_event.clone(), 1)),
            interval_seconds: DEFAULT_AGGREGATE_INTERVAL_SECONDS,
        },
    ];

    for scenario in scenarios {
        let clock = IntervalClock::new(scenario.interval_seconds);
        let mut correlator = EventCorrelator::new(CorrelatorOptions {
            clock: clock.clone(),
            ..CorrelatorOptions::default()
        });
        for mut event in scenario.previous_events {
            let now = Time(clock.now());
            event.first_timestamp = Some(now.clone());
            event.last_timestamp = Some(now);
            // A skipped event leaves no state to update.
            if let Some(result) = correlator.correlate(event) {
                correlator.update_state(&result.event);
            }
        }
        let mut new_event = scenario.new_event;
        let now = Time(clock.now());
        new_event.first_timestamp = Some(now.clone());
        new_event.last_timestamp = Some(now);
        let result = correlator.correlate(new_event);
        match (&result, &scenario.expected_event) {
            (None, None) => {}
            (Some(result), Some(expected)) => {
                validate_event(scenario.name, &result.event, expected)
            }
            _ => panic!(
                "{}: expected skip {}, got {result:?}",
                scenario.name,
                scenario.expected_event.is_none()
            ),
        }
    }
}

fn spam_key_based_on_objects_and_reason(event: &Event) -> String {
    let (component, host) = source(event);
    let o = &event.involved_object;
    [
        component,
        host,
        o.kind.as_deref().unwrap_or_default(),
        o.namespace.as_deref().unwrap_or_default(),
        o.name.as_deref().unwrap_or_default(),
        o.uid.as_deref().unwrap_or_default(),
        o.api_version.as_deref().unwrap_or_default(),
        event.reason.as_deref().unwrap_or_default(),
    ]
    .concat()
}

#[test]
fn event_spam_filter() {
    let original_event = make_event(
        "original",
        "i am first",
        make_object_reference("Pod", "my-pod", "my-ns"),
    );
    let different_reason_event = make_event(
        "duplicate",
        "me again",
        make_object_reference("Pod", "my-pod", "my-ns"),
    );
    let spam_event = make_event(
        "original",
        "me again",
        make_object_reference("Pod", "my-pod", "my-ns"),
    );
    let cases: Vec<(&str, Event, Option<Event>, Option<KeyFn>)> = vec![
        (
            "event should be reported as spam if object reference is the same for default spam filter",
            different_reason_event.clone(),
            None,
            None,
        ),
        (
            "event should not be reported as spam if object reference is the same, but reason is different for custom spam filter",
            different_reason_event.clone(),
            Some(different_reason_event.clone()),
            Some(spam_key_based_on_objects_and_reason),
        ),
        (
            "event should be reported as spam if object reference and reason is the same, but message is different for custom spam filter",
            spam_event.clone(),
            None,
            Some(spam_key_based_on_objects_and_reason),
        ),
    ];
    for (name, new_event, expected, key) in cases {
        let mut options = CorrelatorOptions {
            clock: IntervalClock::new(1),
            burst: 1,
            ..CorrelatorOptions::default()
        };
        if let Some(key) = key {
            options.spam_key = key;
        }
        let mut correlator = EventCorrelator::new(options);
        if let Some(result) = correlator.correlate(original_event.clone()) {
            correlator.update_state(&result.event);
        }
        let result = correlator.correlate(new_event);
        match (&result, &expected) {
            (None, None) => {}
            (Some(result), Some(expected)) => validate_event(name, &result.event, expected),
            _ => panic!(
                "{name}: expected skip {}, got {result:?}",
                expected.is_none()
            ),
        }
    }
}

#[test]
fn a_repeated_event_is_patched_with_its_count_last_timestamp_and_message() {
    let clock = IntervalClock::new(1);
    let mut correlator = EventCorrelator::new(CorrelatorOptions {
        clock,
        ..CorrelatorOptions::default()
    });
    let event = make_event("r", "m", make_object_reference("Pod", "p", "ns"));
    let first = correlator.correlate(event.clone()).unwrap();
    assert!(first.patch.is_none());
    let mut stored = first.event.clone();
    stored.metadata.name = Some("p.1".into());
    stored.metadata.resource_version = Some("7".into());
    correlator.update_state(&stored);
    let mut again = event;
    again.last_timestamp = Some(Time("2030-01-02T03:04:05Z".parse().unwrap()));
    let second = correlator.correlate(again).unwrap();
    assert_eq!(second.event.metadata.name.as_deref(), Some("p.1"));
    assert_eq!(second.event.metadata.resource_version.as_deref(), Some("7"));
    assert_eq!(
        serde_json::to_string(&second.patch.unwrap()).unwrap(),
        r#"{"count":2,"lastTimestamp":"2030-01-02T03:04:05Z","message":"m"}"#
    );
}

/// A sink that stores Events in memory, as the API server would.
#[derive(Default)]
struct MemorySink {
    calls: Mutex<Vec<String>>,
    stored: Mutex<HashMap<String, Event>>,
    written: Notify,
}

impl EventSink for MemorySink {
    fn create(&self, mut event: Event) -> BoxFuture<'_, Result<Event, SinkError>> {
        Box::pin(async move {
            let name = event.metadata.name.clone().unwrap_or_default();
            event.metadata.resource_version = Some("1".into());
            self.calls.lock().unwrap().push(format!(
                "create {name} count={}",
                event.count.unwrap_or_default()
            ));
            self.stored.lock().unwrap().insert(name, event.clone());
            self.written.notify_one();
            Ok(event)
        })
    }

    fn patch(
        &self,
        event: Event,
        patch: serde_json::Value,
    ) -> BoxFuture<'_, Result<Event, SinkError>> {
        Box::pin(async move {
            let name = event.metadata.name.clone().unwrap_or_default();
            let mut stored = self.stored.lock().unwrap();
            let Some(existing) = stored.get_mut(&name) else {
                return Err(SinkError::NotFound);
            };
            existing.count = patch["count"].as_i64().map(|c| c as i32);
            self.calls.lock().unwrap().push(format!(
                "patch {name} count={}",
                existing.count.unwrap_or_default()
            ));
            let updated = existing.clone();
            drop(stored);
            self.written.notify_one();
            Ok(updated)
        })
    }
}

fn va(name: &str) -> k8s_openapi::api::storage::v1::VolumeAttachment {
    k8s_openapi::api::storage::v1::VolumeAttachment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some("uid-1".into()),
            ..ObjectMeta::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn the_recorder_writes_a_repeated_event_once_with_a_count() {
    let sink = Arc::new(MemorySink::default());
    let recorder = Recorder::with_sink(sink.clone(), "csi-attacher", "host-1");
    for _ in 0..3 {
        recorder.record(
            &va("va-1"),
            EventType::Warning,
            "MigrationUnsupported",
            "in-tree volumes are not supported",
        );
    }
    while sink.calls.lock().unwrap().len() < 3 {
        sink.written.notified().await;
    }
    let calls = sink.calls.lock().unwrap().clone();
    assert!(calls[0].starts_with("create va-1.") && calls[0].ends_with("count=1"));
    let name = calls[0]
        .strip_prefix("create ")
        .unwrap()
        .strip_suffix(" count=1")
        .unwrap();
    assert_eq!(
        calls[1..],
        [
            format!("patch {name} count=2"),
            format!("patch {name} count=3")
        ]
    );
    let stored = sink.stored.lock().unwrap();
    let event = &stored[name];
    assert_eq!(event.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        event.source.as_ref().unwrap().component.as_deref(),
        Some("csi-attacher")
    );
    assert_eq!(event.reporting_component.as_deref(), Some("csi-attacher"));
    assert_eq!(event.reporting_instance.as_deref(), Some("host-1"));
    assert_eq!(
        event.involved_object.kind.as_deref(),
        Some("VolumeAttachment")
    );
    assert_eq!(recorder.dropped(), 0);
}

/// Waits until `sink` has seen `n` writes and returns them.
async fn calls_after(sink: &MemorySink, n: usize) -> Vec<String> {
    while sink.calls.lock().unwrap().len() < n {
        sink.written.notified().await;
    }
    sink.calls.lock().unwrap().clone()
}

#[tokio::test]
async fn recorders_sharing_a_correlator_share_its_lru_bound() {
    let sink = Arc::new(MemorySink::default());
    let correlator = Arc::new(Mutex::new(EventCorrelator::new(CorrelatorOptions {
        lru_cache_size: 1,
        ..CorrelatorOptions::default()
    })));
    let attacher = Recorder::sharing(sink.clone(), correlator.clone(), "csi-attacher", "");
    let resizer = Recorder::sharing(sink.clone(), correlator, "external-resizer", "");
    let repeat = || attacher.record(&va("va-1"), EventType::Warning, "R", "m");

    repeat();
    repeat();
    let calls = calls_after(&sink, 2).await;
    let name = calls[0]
        .strip_prefix("create ")
        .unwrap()
        .strip_suffix(" count=1")
        .unwrap();
    assert_eq!(calls[1], format!("patch {name} count=2"));

    // The other recorder's Event takes the only entry of each cache ...
    resizer.record(&va("va-2"), EventType::Normal, "R", "m");
    calls_after(&sink, 3).await;
    // ... so the attacher's repeat is no longer known: a new Event, not a third count.
    repeat();
    let calls = calls_after(&sink, 4).await;
    assert!(
        calls[3].starts_with("create va-1.") && calls[3].ends_with("count=1"),
        "{calls:?}"
    );
}

#[test]
fn recorders_of_a_process_share_one_correlator() {
    assert!(Arc::ptr_eq(&process_correlator(), &process_correlator()));
}

/// A sink that never answers.
struct StuckSink;

impl EventSink for StuckSink {
    fn create(&self, _: Event) -> BoxFuture<'_, Result<Event, SinkError>> {
        Box::pin(std::future::pending())
    }

    fn patch(&self, _: Event, _: serde_json::Value) -> BoxFuture<'_, Result<Event, SinkError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn recording_never_waits_a_full_queue_drops_and_counts() {
    let recorder = Recorder::with_sink(Arc::new(StuckSink), "csi-attacher", "host-1");
    let extra = 100;
    for i in 0..MAX_QUEUED_EVENTS + extra {
        recorder.record(&va("va-1"), EventType::Normal, "R", &format!("m{i}"));
    }
    // At most one Event is in the sink's hands; the queue holds the limit.
    assert!(
        recorder.dropped() >= (extra - 1) as u64,
        "{}",
        recorder.dropped()
    );
}

#[test]
fn outside_a_runtime_events_are_dropped_and_counted() {
    let recorder = Recorder::with_sink(Arc::new(StuckSink), "csi-attacher", "host-1");
    recorder.record(&va("va-1"), EventType::Normal, "R", "m");
    assert_eq!(recorder.dropped(), 1);
}
