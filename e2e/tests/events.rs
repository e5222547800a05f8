//! The Event recorder against the real API server: a repeated Event is one Event with a count,
//! and similar Events with different messages are combined.

use std::time::Duration;

use csi_e2e_support::{E2eEnv, TestNamespace, wait_until};
use csi_kube::{EventType, Recorder};
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};

const WAIT: Duration = Duration::from_secs(60);

async fn events_of(api: &Api<Event>, name: &str) -> Vec<Event> {
    api.list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
async fn repeated_events_become_one_event_with_a_count_and_similar_ones_are_combined()
-> anyhow::Result<()> {
    let env = E2eEnv::from_env()?;
    let admin = env.admin().await?;
    let ns = TestNamespace::create(&admin, "events").await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns.name);
    let object = config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("subject".into()),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            },
        )
        .await?;
    let recorder = Recorder::new(admin.clone(), "csi-e2e", "e2e-host");
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns.name);

    for _ in 0..3 {
        recorder.record(&object, EventType::Warning, "Repeated", "the same message");
    }
    let repeated = wait_until(
        "one Repeated Event with count 3",
        WAIT,
        || async {
            let found = events_of(&events, "subject").await;
            let repeated: Vec<_> = found
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("Repeated"))
                .collect();
            (repeated.len() == 1 && repeated[0].count == Some(3)).then(|| repeated[0].clone())
        },
        || async { ns.events().await },
    )
    .await?;
    assert_eq!(repeated.message.as_deref(), Some("the same message"));
    assert_eq!(
        repeated
            .source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("csi-e2e")
    );
    assert_eq!(repeated.reporting_component.as_deref(), Some("csi-e2e"));

    // Ten messages for one reason: the tenth and later are combined into one Event.
    for i in 0..12 {
        recorder.record(
            &object,
            EventType::Normal,
            "Similar",
            &format!("message {i}"),
        );
    }
    let combined = wait_until(
        "a combined Similar Event with count 3",
        WAIT,
        || async {
            events_of(&events, "subject").await.into_iter().find(|e| {
                e.reason.as_deref() == Some("Similar")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("(combined from similar events): "))
                    && e.count == Some(3)
            })
        },
        || async { ns.events().await },
    )
    .await?;
    assert_eq!(
        combined.message.as_deref(),
        Some("(combined from similar events): message 11")
    );
    let similar = events_of(&events, "subject")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Similar"))
        .count();
    // Nine single Events, and the combined one.
    assert_eq!(similar, 10);
    assert_eq!(recorder.dropped(), 0);
    ns.delete().await
}
