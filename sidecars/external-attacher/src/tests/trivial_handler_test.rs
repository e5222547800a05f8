//! Port of upstream's `pkg/controller/trivial_handler_test.go`: `TestTrivialHandler` (4 cases).

use std::sync::Arc;

use super::framework::*;
use crate::attacher::Attacher;
use crate::handler::{Handler, TrivialHandler};
use crate::kube::{ApiError, KubeClient, KubeListers, resources};
use crate::lister::VolumeLister;
use crate::tests::fake::{Verb, resource};

fn trivial_handler_factory(
    client: Arc<dyn KubeClient>,
    _listers: Arc<dyn KubeListers>,
    _attacher: Arc<dyn Attacher>,
    _lister: Arc<dyn VolumeLister>,
) -> Arc<dyn Handler> {
    Arc::new(TrivialHandler::new(client))
}

fn va_forbidden() -> ApiError {
    ApiError::forbidden(resources::VOLUME_ATTACHMENTS, "pv1-node1", "Mock error")
}

#[test]
fn test_trivial_handler() {
    run_table(trivial_handler_factory, trivial_handler_cases);
}

fn trivial_handler_cases() -> Vec<TestCase> {
    vec![
        TestCase {
            name: "add -> successful write",
            added_va: Some(va(false, "", None)),
            expected_actions: vec![va_status_patch_action(
                va(false, "", None),
                va(true, "", None),
            )],
            ..Default::default()
        },
        TestCase {
            name: "update -> successful write",
            updated_va: Some(va(false, "", None)),
            expected_actions: vec![va_status_patch_action(
                va(false, "", None),
                va(true, "", None),
            )],
            ..Default::default()
        },
        TestCase {
            name: "unknown driver -> controller ignores",
            added_va: Some(va_with_invalid_driver(va(false, "", None))),
            expected_actions: vec![],
            ..Default::default()
        },
        TestCase {
            name: "failed write -> controller retries",
            added_va: Some(va(false, "", None)),
            // Update fails 2 times, succeeds the 3rd time.
            reactors: vec![fail_first(
                Verb::Patch,
                resource::VOLUME_ATTACHMENTS,
                2,
                va_forbidden,
            )],
            expected_actions: vec![
                va_status_patch_action(va(false, "", None), va(true, "", None)),
                va_status_patch_action(va(false, "", None), va(true, "", None)),
                va_status_patch_action(va(false, "", None), va(true, "", None)),
            ],
            additional_check: Some(|kube| {
                let va = kube.server_volume_attachment(VA_NAME).ok_or("no VA")?;
                if va.status.is_some_and(|s| s.attached) && va.metadata.finalizers.is_none() {
                    Ok(())
                } else {
                    Err("not attached (or with a finalizer)".into())
                }
            }),
            ..Default::default()
        },
    ]
}
