//! [`FakeRecorder`]: an [`EventRecorder`] that keeps every Event in memory, for controllers'
//! table tests (client-go's `record.FakeRecorder`).

use std::sync::{Mutex, MutexGuard, PoisonError};

use csi_kube::{EventRecorder, EventType};
use k8s_openapi::api::core::v1::ObjectReference;

/// One recorded Event.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// The object the Event is about (its `involvedObject`).
    pub object: ObjectReference,
    /// `Normal` or `Warning`.
    pub event_type: EventType,
    /// The reason.
    pub reason: String,
    /// The message.
    pub message: String,
}

impl RecordedEvent {
    /// `<type> <reason> <message>`, as client-go's `FakeRecorder` writes an Event.
    pub fn line(&self) -> String {
        format!(
            "{} {} {}",
            self.event_type.as_str(),
            self.reason,
            self.message
        )
    }

    /// `<kind> <namespace>/<name>`, or `<kind> <name>` for a cluster-scoped object
    /// (`PersistentVolumeClaim default/claim-1`, `PersistentVolume volume-1`).
    pub fn object_key(&self) -> String {
        let kind = self.object.kind.as_deref().unwrap_or_default();
        let name = self.object.name.as_deref().unwrap_or_default();
        match self.object.namespace.as_deref() {
            Some(namespace) if !namespace.is_empty() => format!("{kind} {namespace}/{name}"),
            _ => format!("{kind} {name}"),
        }
    }
}

/// An [`EventRecorder`] that records in memory.
#[derive(Debug, Default)]
pub struct FakeRecorder {
    events: Mutex<Vec<RecordedEvent>>,
}

impl FakeRecorder {
    fn events(&self) -> MutexGuard<'_, Vec<RecordedEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every Event so far, in order.
    pub fn all(&self) -> Vec<RecordedEvent> {
        self.events().clone()
    }

    /// Every Event so far, forgetting them.
    pub fn take(&self) -> Vec<RecordedEvent> {
        std::mem::take(&mut *self.events())
    }

    /// The [`RecordedEvent::line`] of every Event.
    pub fn lines(&self) -> Vec<String> {
        self.events().iter().map(RecordedEvent::line).collect()
    }

    /// The reason of every Event.
    pub fn reasons(&self) -> Vec<String> {
        self.events().iter().map(|e| e.reason.clone()).collect()
    }
}

impl EventRecorder for FakeRecorder {
    fn record_for(
        &self,
        object: ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        self.events().push(RecordedEvent {
            object,
            event_type,
            reason: reason.to_string(),
            message: message.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn records_what_the_controllers_record() {
        let recorder = FakeRecorder::default();
        let events: &dyn EventRecorder = &recorder;
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("claim-1".into()),
                namespace: Some("default".into()),
                uid: Some("uid-1".into()),
                ..ObjectMeta::default()
            },
            ..PersistentVolumeClaim::default()
        };
        let pv = PersistentVolume {
            metadata: ObjectMeta {
                name: Some("volume-1".into()),
                ..ObjectMeta::default()
            },
            ..PersistentVolume::default()
        };
        events.record(&claim, EventType::Normal, "Provisioning", "started");
        events.record(&pv, EventType::Warning, "VolumeFailedDelete", "no");

        let all = recorder.all();
        assert_eq!(all[0].object, csi_kube::events::object_reference(&claim));
        assert_eq!(all[0].object_key(), "PersistentVolumeClaim default/claim-1");
        assert_eq!(all[1].object_key(), "PersistentVolume volume-1");
        assert_eq!(
            recorder.lines(),
            vec![
                "Normal Provisioning started",
                "Warning VolumeFailedDelete no"
            ]
        );
        assert_eq!(
            recorder.reasons(),
            vec!["Provisioning", "VolumeFailedDelete"]
        );
        assert_eq!(recorder.take().len(), 2);
        assert!(recorder.all().is_empty());
    }
}
