//! The group half of upstream's `framework_test.go`: the reactor's group snapshots and group
//! contents (with upstream's messages), and the VolumeSnapshot creation and deletion and the
//! PVC listing the group half does; the harness and runner of the group tables
//! (`group_harness.rs`) and their builders (`group_builders.rs`).

#[path = "group_builders.rs"]
mod builders;
#[path = "group_harness.rs"]
mod harness_impl;

pub use builders::*;
pub use harness_impl::*;

use std::collections::BTreeMap;

use csi_controller::ApiError;
use csi_crd_types::group_snapshot::v1::{VolumeGroupSnapshot, VolumeGroupSnapshotContent};
use csi_crd_types::snapshot::v1::{VolumeSnapshot, VolumeSnapshotContent};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::Value;

use super::{Reactor, conflict, patched, version};
use crate::group::api::GroupApi;

/// The reactor's group half.
#[derive(Default)]
pub struct GroupState {
    pub group_snapshots: BTreeMap<String, VolumeGroupSnapshot>,
    pub group_contents: BTreeMap<String, VolumeGroupSnapshotContent>,
    /// Errors by verb and resource, each answered once (client-go's `PrependReactor`).
    pub api_errors: Vec<(&'static str, &'static str, ApiError)>,
    /// A created VolumeSnapshot is returned as sent, without a UID, and not stored.
    pub snapshot_create_echo: bool,
}

impl Reactor {
    fn inject_group(&self, verb: &str, resource: &str) -> Result<(), ApiError> {
        {
            let mut state = self.state();
            if let Some(i) = state
                .group
                .api_errors
                .iter()
                .position(|(v, r, _)| *v == verb && *r == resource)
            {
                return Err(state.group.api_errors.remove(i).2);
            }
        }
        self.inject(verb, resource)
    }

    pub fn group_snapshots(&self) -> Vec<VolumeGroupSnapshot> {
        self.state()
            .group
            .group_snapshots
            .values()
            .cloned()
            .collect()
    }

    pub fn group_contents(&self) -> Vec<VolumeGroupSnapshotContent> {
        self.state()
            .group
            .group_contents
            .values()
            .cloned()
            .collect()
    }

    pub fn volumes(&self) -> Vec<PersistentVolume> {
        self.state().volumes.values().cloned().collect()
    }

    pub fn with_group_state<R>(&self, f: impl FnOnce(&mut GroupState) -> R) -> R {
        f(&mut self.state().group)
    }

    pub fn add_snapshot(&self, snapshot: VolumeSnapshot) {
        let key = snapshot.metadata.name.clone().unwrap_or_default();
        self.state().snapshots.insert(key, snapshot);
    }

    pub fn add_content(&self, content: VolumeSnapshotContent) {
        let key = content.metadata.name.clone().unwrap_or_default();
        self.state().contents.insert(key, content);
    }

    pub fn clear_snapshots_and_contents(&self) {
        let mut state = self.state();
        state.snapshots.clear();
        state.contents.clear();
    }

    fn update_group_snapshot_inner(
        &self,
        group: &VolumeGroupSnapshot,
    ) -> Result<VolumeGroupSnapshot, ApiError> {
        self.inject_group("update", "volumegroupsnapshots")?;
        let mut state = self.state();
        let group_name = group.metadata.name.clone().unwrap_or_default();
        let Some(stored) = state.group.group_snapshots.get(&group_name) else {
            return Err(ApiError::other(format!(
                "cannot update group snapshot {group_name}: snapshot not found"
            )));
        };
        let stored_version = version(&stored.metadata);
        if stored_version != version(&group.metadata) {
            return Err(conflict());
        }
        let mut group = group.clone();
        group.metadata.resource_version = Some((stored_version + 1).to_string());
        state
            .group
            .group_snapshots
            .insert(group_name, group.clone());
        Ok(group)
    }

    fn patch_snapshot_inner(&self, name: &str, patch: &Value) -> Result<VolumeSnapshot, ApiError> {
        self.inject_group("patch", "volumesnapshots")?;
        let mut state = self.state();
        let Some(stored) = state.snapshots.get(name) else {
            return Err(ApiError::other(format!(
                "cannot update snapshot {name}: snapshot not found"
            )));
        };
        let mut new = patched(stored, patch)?;
        new.metadata.resource_version = Some((version(&stored.metadata) + 1).to_string());
        state.snapshots.insert(name.to_string(), new.clone());
        Ok(new)
    }

    fn patch_content_inner(
        &self,
        name: &str,
        patch: &Value,
    ) -> Result<VolumeSnapshotContent, ApiError> {
        self.inject_group("patch", "volumesnapshotcontents")?;
        let mut state = self.state();
        let Some(stored) = state.contents.get(name) else {
            return Err(ApiError::other(format!(
                "cannot update snapshot content {name}: snapshot content not found"
            )));
        };
        let mut new = patched(stored, patch)?;
        new.metadata.resource_version = Some((version(&stored.metadata) + 1).to_string());
        state.contents.insert(name.to_string(), new.clone());
        Ok(new)
    }
}

/// An object as the API server stores a new one: with a resource version (upstream's
/// reactor leaves it empty, which its controller's own stores cannot order; its tables
/// compare objects without it).
fn created<K: kube::Resource>(mut object: K) -> K {
    object
        .meta_mut()
        .resource_version
        .get_or_insert_with(|| "1".to_string());
    object
}

/// Whether the claim's labels carry every `k=v` of `selector` (a `matchLabels` selector as
/// upstream sends it).
fn labels_match(claim: &PersistentVolumeClaim, selector: &str) -> bool {
    let labels = claim.metadata.labels.clone().unwrap_or_default();
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|pair| match pair.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => false,
        })
}

impl GroupApi for Reactor {
    fn get_group_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>> {
        Box::pin(async move {
            self.inject_group("get", "volumegroupsnapshots")?;
            self.state()
                .group
                .group_snapshots
                .get(name)
                .cloned()
                .ok_or_else(|| ApiError::other(format!("cannot find snapshot {name}")))
        })
    }

    fn update_group_snapshot<'a>(
        &'a self,
        group: &'a VolumeGroupSnapshot,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>> {
        Box::pin(async move { self.update_group_snapshot_inner(group) })
    }

    fn update_group_snapshot_status<'a>(
        &'a self,
        group: &'a VolumeGroupSnapshot,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>> {
        Box::pin(async move { self.update_group_snapshot_inner(group) })
    }

    fn patch_group_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshot, ApiError>> {
        Box::pin(async move {
            self.inject_group("patch", "volumegroupsnapshots")?;
            let mut state = self.state();
            let Some(stored) = state.group.group_snapshots.get(name) else {
                return Err(ApiError::other(format!(
                    "cannot update group snapshot {name}: snapshot not found"
                )));
            };
            let mut new = patched(stored, patch)?;
            new.metadata.resource_version = Some((version(&stored.metadata) + 1).to_string());
            state
                .group
                .group_snapshots
                .insert(name.to_string(), new.clone());
            Ok(new)
        })
    }

    fn create_group_content<'a>(
        &'a self,
        content: &'a VolumeGroupSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(async move {
            self.inject_group("create", "volumegroupsnapshotcontents")?;
            let mut state = self.state();
            let content_name = content.metadata.name.clone().unwrap_or_default();
            if state.group.group_contents.contains_key(&content_name) {
                return Err(ApiError::other(format!(
                    "cannot create content {content_name}: content already exists"
                )));
            }
            let content = created(content.clone());
            state
                .group
                .group_contents
                .insert(content_name, content.clone());
            Ok(content)
        })
    }

    fn patch_group_content<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeGroupSnapshotContent, ApiError>> {
        Box::pin(async move {
            self.inject_group("patch", "volumegroupsnapshotcontents")?;
            let mut state = self.state();
            let Some(stored) = state.group.group_contents.get(name) else {
                return Err(ApiError::other(format!(
                    "cannot update group snapshot content {name}: group snapshot content not found"
                )));
            };
            let mut new = patched(stored, patch)?;
            new.metadata.resource_version = Some((version(&stored.metadata) + 1).to_string());
            state
                .group
                .group_contents
                .insert(name.to_string(), new.clone());
            Ok(new)
        })
    }

    fn delete_group_content<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            self.inject_group("delete", "volumegroupsnapshotcontents")?;
            match self.state().group.group_contents.remove(name) {
                Some(_) => Ok(()),
                None => Err(ApiError::other(format!(
                    "cannot delete group snapshot content {name}: not found"
                ))),
            }
        })
    }

    fn create_snapshot<'a>(
        &'a self,
        snapshot: &'a VolumeSnapshot,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            self.inject_group("create", "volumesnapshots")?;
            let mut state = self.state();
            if state.group.snapshot_create_echo {
                return Ok(snapshot.clone());
            }
            let snapshot_name = snapshot.metadata.name.clone().unwrap_or_default();
            if state.snapshots.contains_key(&snapshot_name) {
                return Err(ApiError::already_exists(
                    "volumesnapshots.snapshot.storage.k8s.io",
                    &snapshot_name,
                ));
            }
            let mut snapshot = created(snapshot.clone());
            if snapshot
                .metadata
                .uid
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                snapshot.metadata.uid = Some(format!("{snapshot_name}-uid"));
            }
            state.snapshots.insert(snapshot_name, snapshot.clone());
            Ok(snapshot)
        })
    }

    fn get_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            self.inject_group("get", "volumesnapshots")?;
            self.state()
                .snapshots
                .get(name)
                .cloned()
                .ok_or_else(|| ApiError::other(format!("cannot find snapshot {name}")))
        })
    }

    fn delete_snapshot<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            self.inject_group("delete", "volumesnapshots")?;
            match self.state().snapshots.remove(name) {
                Some(_) => Ok(()),
                None => Err(ApiError::other(format!(
                    "cannot delete snapshot {name}: not found"
                ))),
            }
        })
    }

    fn patch_snapshot_status<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move { self.patch_snapshot_inner(name, patch) })
    }

    fn create_content<'a>(
        &'a self,
        content: &'a VolumeSnapshotContent,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            self.inject_group("create", "volumesnapshotcontents")?;
            let mut state = self.state();
            let content_name = content.metadata.name.clone().unwrap_or_default();
            if state.contents.contains_key(&content_name) {
                return Err(ApiError::other(format!(
                    "cannot create content {content_name}: content already exists"
                )));
            }
            let content = created(content.clone());
            state.contents.insert(content_name, content.clone());
            Ok(content)
        })
    }

    fn get_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move {
            self.inject_group("get", "volumesnapshotcontents")?;
            self.state()
                .contents
                .get(name)
                .cloned()
                .ok_or_else(|| ApiError::other(format!("cannot find content {name}")))
        })
    }

    fn patch_content<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move { self.patch_content_inner(name, patch) })
    }

    fn patch_content_status<'a>(
        &'a self,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move { self.patch_content_inner(name, patch) })
    }

    fn list_pvcs<'a>(
        &'a self,
        namespace: &'a str,
        label_selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PersistentVolumeClaim>, ApiError>> {
        Box::pin(async move {
            self.inject_group("list", "persistentvolumeclaims")?;
            Ok(self
                .state()
                .claims
                .values()
                .filter(|c| c.metadata.namespace.as_deref() == Some(namespace))
                .filter(|c| labels_match(c, label_selector))
                .cloned()
                .collect())
        })
    }

    fn get_pv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move {
            self.inject_group("get", "persistentvolumes")?;
            self.state()
                .volumes
                .get(name)
                .cloned()
                .ok_or_else(|| ApiError::other(format!("cannot find volume {name}")))
        })
    }
}
