//! What a stack wrote, made comparable with another stack's: names, UIDs and handles become
//! placeholders, times go.
//!
//! - the namespace becomes `NS`, the driver `DRIVER` (so the classes become `NS-delete`, ...);
//! - a member VolumeSnapshot of the group (upstream names it after a hash of UIDs) becomes
//!   `MEMBER(<claim>)`, its content `MEMBER-CONTENT(<claim>)`;
//! - every UID becomes `UID(<Kind>/<name>)` (so `snapcontent-<uid>` becomes
//!   `snapcontent-UID(VolumeSnapshot/snap)` and `pvc-<uid>` `pvc-UID(PersistentVolumeClaim/x)`);
//! - handles, which the driver numbers in the order calls arrive, become `VOLUME(<claim>)`,
//!   `SNAPSHOT(<snapshot>)` and `GROUP(<group snapshot>)`, by the field they are in (volume and
//!   snapshot IDs are both small numbers in the mock driver);
//! - UIDs, resource versions (also of references), creation times (metadata and status),
//!   conditions' times go; the
//!   field managers stay (who wrote, with which operation); lists whose order is not meaningful
//!   are sorted.

use std::collections::BTreeMap;

use csi_e2e_support::compare::{
    digits_to_n, is_conflict_retry, strip_metadata, uuids_to_placeholder,
};
use k8s_openapi::api::core::v1::Event;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{GROUP, Keyed, Kind, Lines, Stack};

/// Fields holding volume handles, snapshot handles and group snapshot handles (the objects'
/// and the CSI requests' spelling), alone or as lists.
const VOLUME_FIELDS: &[&str] = &[
    "volumeHandle",
    "volumeHandles",
    "volume_id",
    "source_volume_id",
    "source_volume_ids",
];
const SNAPSHOT_FIELDS: &[&str] = &[
    "snapshotHandle",
    "volumeSnapshotHandles",
    "snapshot_id",
    "snapshot_ids",
];
const GROUP_FIELDS: &[&str] = &["volumeGroupSnapshotHandle", "group_snapshot_id"];
/// Fields dropped wherever they are: times, and the resource versions of references (they
/// follow the cluster's write count).
const DROPPED_FIELDS: &[&str] = &[
    "resourceVersion",
    "creationTime",
    "creation_time",
    "deletionTimestamp",
    "lastTransitionTime",
    "lastProbeTime",
    "lastPhaseTransitionTime",
    "time",
];
/// Lists whose order says nothing.
const SET_FIELDS: &[&str] = &[
    "finalizers",
    "volumeHandles",
    "volumeSnapshotHandles",
    "volumeSnapshotInfoList",
    "source_volume_ids",
    "snapshot_ids",
    "snapshots",
];

/// Names to placeholders, accumulated over a run (objects are gone by the end, their names
/// are still needed for the driver's requests).
#[derive(Debug, Default)]
pub struct Normalizer {
    /// `(text, placeholder)`, longest first once sorted.
    replacements: Vec<(String, String)>,
    volumes: BTreeMap<String, String>,
    snapshots: BTreeMap<String, String>,
    groups: BTreeMap<String, String>,
}

impl Normalizer {
    fn replace(&mut self, from: &str, to: String) {
        if !from.is_empty() && !self.replacements.iter().any(|(f, _)| f == from) {
            self.replacements.push((from.to_string(), to));
            self.replacements
                .sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        }
    }

    fn text(&self, text: &str) -> String {
        let text = self
            .replacements
            .iter()
            .fold(text.to_string(), |text, (from, to)| text.replace(from, to));
        uuids_to_placeholder(&text)
    }

    fn handle(&self, field: &str, value: &str) -> Option<String> {
        let table = if VOLUME_FIELDS.contains(&field) {
            &self.volumes
        } else if SNAPSHOT_FIELDS.contains(&field) {
            &self.snapshots
        } else if GROUP_FIELDS.contains(&field) {
            &self.groups
        } else {
            return None;
        };
        Some(
            table
                .get(value)
                .cloned()
                .unwrap_or_else(|| format!("UNKNOWN({field}={value})")),
        )
    }

    /// `value` with names, handles and times replaced; `field` is the key it is under.
    pub fn value(&self, field: &str, value: &Value) -> Value {
        match value {
            Value::String(s) => match self.handle(field, s) {
                Some(placeholder) => Value::String(placeholder),
                None => Value::String(self.text(s)),
            },
            Value::Array(items) => {
                let mut items: Vec<Value> = items.iter().map(|v| self.value(field, v)).collect();
                if SET_FIELDS.contains(&field) {
                    items.sort_by_key(Value::to_string);
                }
                Value::Array(items)
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| !DROPPED_FIELDS.contains(&k.as_str()))
                    .map(|(k, v)| (self.text(k), self.value(k, v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Learns the names of what the stack holds now.
    async fn learn(&mut self, stack: &Stack) -> anyhow::Result<()> {
        self.replace(stack.fixture.driver_name(), "DRIVER".into());
        self.replace(stack.ns(), "NS".into());
        let (claims, pvs) = stack.claims_and_volumes().await?;
        for claim in &claims {
            let name = claim.metadata.name.clone().unwrap_or_default();
            if let Some(uid) = &claim.metadata.uid {
                self.replace(uid, format!("UID(PersistentVolumeClaim/{name})"));
            }
        }
        for pv in &pvs {
            let claim = pv
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|c| c.name.clone())
                .unwrap_or_default();
            if let Ok(handle) = super::handle_of(pv) {
                self.volumes
                    .entry(handle)
                    .or_insert(format!("VOLUME({claim})"));
            }
        }
        // Members first: their names are hashes, and the other names refer to them.
        let snapshots = stack.objects(Kind::VolumeSnapshot).await?;
        for vs in &snapshots {
            if vs.data["status"]["volumeGroupSnapshotName"].as_str() != Some(GROUP) {
                continue;
            }
            let claim = vs.data["spec"]["source"]["persistentVolumeClaimName"]
                .as_str()
                .unwrap_or("?");
            let name = vs.metadata.name.clone().unwrap_or_default();
            self.replace(&name, format!("MEMBER({claim})"));
            if let Some(content) = vs.data["status"]["boundVolumeSnapshotContentName"].as_str() {
                self.replace(content, format!("MEMBER-CONTENT({claim})"));
            }
        }
        for kind in [
            Kind::VolumeSnapshot,
            Kind::VolumeSnapshotContent,
            Kind::VolumeGroupSnapshot,
            Kind::VolumeGroupSnapshotContent,
        ] {
            for object in stack.objects(kind).await? {
                let name = self.text(object.metadata.name.as_deref().unwrap_or_default());
                if let Some(uid) = &object.metadata.uid {
                    self.replace(uid, format!("UID({}/{name})", kind.name()));
                }
                let status = &object.data["status"];
                let spec = &object.data["spec"];
                match kind {
                    Kind::VolumeSnapshotContent => {
                        let of =
                            self.text(spec["volumeSnapshotRef"]["name"].as_str().unwrap_or("?"));
                        for handle in [&status["snapshotHandle"], &spec["source"]["snapshotHandle"]]
                        {
                            if let Some(handle) = handle.as_str() {
                                self.snapshots
                                    .entry(handle.to_string())
                                    .or_insert(format!("SNAPSHOT({of})"));
                            }
                        }
                    }
                    Kind::VolumeGroupSnapshotContent => {
                        let of = self.text(
                            spec["volumeGroupSnapshotRef"]["name"]
                                .as_str()
                                .unwrap_or("?"),
                        );
                        if let Some(handle) = status["volumeGroupSnapshotHandle"].as_str() {
                            self.groups
                                .entry(handle.to_string())
                                .or_insert(format!("GROUP({of})"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// An object as compared.
    fn object(&self, object: &DynamicObject) -> anyhow::Result<Value> {
        let mut value = serde_json::to_value(object)?;
        strip_metadata(&mut value);
        if let Some(claim_ref) = value
            .pointer_mut("/spec/claimRef")
            .and_then(Value::as_object_mut)
        {
            claim_ref.remove("uid");
            claim_ref.remove("resourceVersion");
        }
        let mut value = self.value("", &value);
        // "<start time in ms>-<random number>-<driver>"
        if let Some(identity) = value
            .pointer_mut("/spec/csi/volumeAttributes/storage.kubernetes.io~1csiProvisionerIdentity")
        {
            *identity = json!(digits_to_n(identity.as_str().unwrap_or_default()));
        }
        Ok(value)
    }

    /// One Event as compared: type, reason, reporters and message (count and times follow
    /// each run's timing).
    fn event(&self, event: &Event) -> String {
        let source = event.source.as_ref();
        let text = |t: Option<&str>| self.text(t.unwrap_or_default());
        format!(
            "{} {} [source {}/{}, reporting {}/{}] {}",
            event.type_.as_deref().unwrap_or("?"),
            event.reason.as_deref().unwrap_or("?"),
            text(source.and_then(|s| s.component.as_deref())),
            text(source.and_then(|s| s.host.as_deref())),
            text(event.reporting_component.as_deref()),
            text(event.reporting_instance.as_deref()),
            text(event.message.as_deref()),
        )
    }
}

/// What a stack wrote, normalised: objects by `<phase>/<Kind>/<name>`, Events by the object
/// they are about, the driver's requests by method.
#[derive(Debug, Default)]
pub struct Captured {
    pub normalizer: Normalizer,
    pub objects: Keyed<Value>,
    pub events: Keyed<Lines>,
    pub calls: Keyed<Lines>,
}

impl Captured {
    /// Every snapshot object, claim and PV of the stack now, and the Events so far, under
    /// `phase`.
    pub async fn add_state(&mut self, stack: &Stack, phase: &str) -> anyhow::Result<()> {
        self.normalizer.learn(stack).await?;
        let n = &self.normalizer;
        let mut objects: Vec<(&str, DynamicObject)> = Vec::new();
        for kind in [
            Kind::VolumeSnapshot,
            Kind::VolumeSnapshotContent,
            Kind::VolumeGroupSnapshot,
            Kind::VolumeGroupSnapshotContent,
        ] {
            for object in stack.objects(kind).await? {
                objects.push((kind.name(), object));
            }
        }
        let (claims, pvs) = stack.claims_and_volumes().await?;
        for claim in claims {
            objects.push(("PersistentVolumeClaim", to_dynamic(&claim)?));
        }
        for pv in pvs {
            objects.push(("PersistentVolume", to_dynamic(&pv)?));
        }
        for (kind, object) in objects {
            let name = n.text(object.metadata.name.as_deref().unwrap_or_default());
            self.objects
                .insert(format!("{phase}/{kind}/{name}"), n.object(&object)?);
        }
        for event in stack.events().await? {
            if is_conflict_retry(&event) {
                continue;
            }
            let about = format!(
                "{}/{}",
                event.involved_object.kind.as_deref().unwrap_or("?"),
                n.text(event.involved_object.name.as_deref().unwrap_or("?"))
            );
            self.events
                .entry(about)
                .or_default()
                .insert(n.event(&event));
        }
        Ok(())
    }

    /// The distinct requests the driver received (with the error each got), by method.
    pub fn add_calls(&mut self, stack: &Stack) {
        for call in stack.fixture.driver.grpc_calls() {
            let mut request = self.normalizer.value("", &call.request);
            request["error"] = json!(self.normalizer.text(&call.error));
            self.calls
                .entry(call.short_method().to_string())
                .or_default()
                .insert(request.to_string());
        }
    }
}

fn to_dynamic<K: serde::Serialize>(object: &K) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(serde_json::to_value(object)?)?)
}
