//! One default class per driver (external-snapshotter v8.1 `pkg/validation-webhook/snapshot.go`
//! `decideSnapshotClassV1` and `groupsnapshot.go` `decideGroupSnapshotClassV1Alpha1`): a class
//! that becomes a default is refused while another default class of the same driver exists.
//! This is the one rule CEL cannot state (it reads other objects), and the reason the webhook
//! still matters on clusters whose CRDs have the CEL rules.

use std::sync::Arc;

use csi_crd_types::group_snapshot::v1::VolumeGroupSnapshotClass;
use csi_crd_types::snapshot::v1::VolumeSnapshotClass;
use csi_kube::cache::Store;
use serde_json::Value;

/// The annotation that makes a VolumeSnapshotClass its driver's default.
pub const IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION: &str =
    "snapshot.storage.kubernetes.io/is-default-class";
/// The annotation that makes a VolumeGroupSnapshotClass its driver's default.
pub const IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION: &str =
    "groupsnapshot.storage.kubernetes.io/is-default-class";

/// What the rule reads of a class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassInfo {
    /// The class's name.
    pub name: String,
    /// The default-class annotation's value (`Some("true")` makes it a default).
    pub default_annotation: Option<String>,
    /// Its driver.
    pub driver: String,
}

impl ClassInfo {
    fn is_default(&self) -> bool {
        self.default_annotation.as_deref() == Some("true")
    }

    /// Reads a class from its JSON (any version: the fields read are the same in all), with
    /// the default annotation of its kind. `null` or nothing (the old object of a CREATE) is an
    /// empty class.
    pub fn from_json(object: &Value, annotation: &str) -> Result<ClassInfo, String> {
        if object.is_null() {
            return Ok(ClassInfo::default());
        }
        if !object.is_object() {
            return Err(format!("cannot decode a class from {object}"));
        }
        let string = |v: Option<&Value>, what: &str| -> Result<String, String> {
            match v {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!("{what}: expected a string, got {other}")),
            }
        };
        let metadata = object.get("metadata");
        let name = string(metadata.and_then(|m| m.get("name")), "metadata.name")?;
        let default_annotation = match metadata
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(annotation))
        {
            None | Some(Value::Null) => None,
            Some(value) => Some(string(Some(value), "metadata.annotations")?),
        };
        let driver = string(object.get("driver"), "driver")?;
        Ok(ClassInfo {
            name,
            default_annotation,
            driver,
        })
    }
}

/// The existing classes of one kind (upstream's class lister).
pub trait ClassLister: Send + Sync {
    /// Every class known now.
    fn list(&self) -> Result<Vec<ClassInfo>, String>;
}

/// The shared cache's VolumeSnapshotClasses.
#[derive(Clone, Debug)]
pub struct SnapshotClasses(pub Store<VolumeSnapshotClass>);

impl ClassLister for SnapshotClasses {
    fn list(&self) -> Result<Vec<ClassInfo>, String> {
        Ok(self
            .0
            .state()
            .iter()
            .map(|c| ClassInfo {
                name: c.metadata.name.clone().unwrap_or_default(),
                default_annotation: annotation(&c.metadata, IS_DEFAULT_SNAPSHOT_CLASS_ANNOTATION),
                driver: c.driver.clone(),
            })
            .collect())
    }
}

/// The shared cache's VolumeGroupSnapshotClasses.
#[derive(Clone, Debug)]
pub struct GroupSnapshotClasses(pub Store<VolumeGroupSnapshotClass>);

impl ClassLister for GroupSnapshotClasses {
    fn list(&self) -> Result<Vec<ClassInfo>, String> {
        Ok(self
            .0
            .state()
            .iter()
            .map(|c| ClassInfo {
                name: c.metadata.name.clone().unwrap_or_default(),
                default_annotation: annotation(
                    &c.metadata,
                    IS_DEFAULT_GROUP_SNAPSHOT_CLASS_ANNOTATION,
                ),
                driver: c.driver.clone(),
            })
            .collect())
    }
}

fn annotation(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<String> {
    metadata.annotations.as_ref()?.get(key).cloned()
}

/// A fixed list, for tests.
#[derive(Clone, Debug, Default)]
pub struct FixedClasses(pub Vec<ClassInfo>);

impl ClassLister for FixedClasses {
    fn list(&self) -> Result<Vec<ClassInfo>, String> {
        Ok(self.0.clone())
    }
}

/// Which of the two kinds: only the wording of the refusal differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassKind {
    /// VolumeSnapshotClass.
    Snapshot,
    /// VolumeGroupSnapshotClass.
    GroupSnapshot,
}

/// `Ok(())` admits; `Err` carries the refusal.
pub fn decide(
    kind: ClassKind,
    class: &ClassInfo,
    old: &ClassInfo,
    lister: &Arc<dyn ClassLister>,
) -> Result<(), String> {
    // Only a class that is (becoming) a default is checked.
    if !class.is_default() {
        return Ok(());
    }
    // A default that already was one for the same driver was checked when it became one.
    if old.is_default() && old.driver == class.driver {
        return Ok(());
    }
    for existing in lister.list()? {
        if existing.is_default() && existing.driver == class.driver {
            let what = match kind {
                ClassKind::Snapshot => "default snapshot class",
                ClassKind::GroupSnapshot => "default group snapshot class",
            };
            return Err(format!(
                "{what}: {} already exists for driver: {}",
                existing.name, class.driver
            ));
        }
    }
    Ok(())
}
