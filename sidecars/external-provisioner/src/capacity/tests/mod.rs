//! Tests of capacity tracking: ports of upstream's table tests (v6.4.0, same case names) and a
//! few of our own.
//!
//! - `capacity_test`: `pkg/capacity/capacity_test.go` — `TestCapacityController` (28 cases),
//!   `TestTermToSegment` (6), `TestRefresh` (6); and the provision wrapper's refreshes.
//! - `nodes_test`: `pkg/capacity/topology/nodes_test.go` — `TestNodeTopology` (22 cases),
//!   `TestHasSynced`.
//! - `names_test`: `cmd/csi-provisioner/util_test.go` — `TestGetNameWithMaxLength` (8 cases).
//! - `pkg/owner/owner_test.go` is in `owner.rs`.

mod capacity_test;
mod names_test;
mod nodes_test;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Lister;

/// An in-memory lister: what a synced cache would hold.
pub(super) struct FakeLister<K> {
    objects: Mutex<BTreeMap<String, Arc<K>>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl<K: Metadata<Ty = ObjectMeta>> FakeLister<K> {
    /// A synced lister of `objects`.
    pub(super) fn new(objects: impl IntoIterator<Item = K>) -> Self {
        let lister = FakeLister {
            objects: Mutex::default(),
            synced: tokio::sync::watch::Sender::new(true),
        };
        for object in objects {
            lister.put(object);
        }
        lister
    }

    fn key(object: &K) -> String {
        let meta = object.metadata();
        match &meta.namespace {
            Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
            None => meta.name.clone().unwrap_or_default(),
        }
    }

    /// Stores `object`; returns the previous state.
    pub(super) fn put(&self, object: K) -> Option<Arc<K>> {
        let key = Self::key(&object);
        self.lock().insert(key, Arc::new(object))
    }

    /// Forgets the object with `key`; returns it.
    pub(super) fn remove(&self, key: &str) -> Option<Arc<K>> {
        self.lock().remove(key)
    }

    pub(super) fn set_synced(&self, synced: bool) {
        self.synced.send_replace(synced);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<K>>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Send + Sync + 'static> Lister<K> for FakeLister<K> {
    fn list(&self) -> Vec<Arc<K>> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn get(&self, key: &str) -> Option<Arc<K>> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn synced(&self) -> BoxFuture<'static, ()> {
        let mut synced = self.synced.subscribe();
        Box::pin(async move {
            let _ = synced.wait_for(|s| *s).await;
        })
    }

    fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }
}

/// The watches capacity tracking declares: upstream's informers, one watch each.
#[tokio::test]
async fn declared_watches() {
    use std::time::Duration;

    use csi_kube::Caches;
    use tokio_util::sync::CancellationToken;

    use crate::capacity::{Capacity, CapacityOptions, declare, managed_by_id};

    // Nothing is sent before the watches start: any address will do.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();

    let central = CapacityOptions::new("hostpath.csi.k8s.io", "kube-system");
    let caches = Caches::new(client.clone());
    let watches = declare(&caches, &central).unwrap();
    let mut described = caches.describe();
    described.sort();
    assert_eq!(
        described,
        vec![
            "csinodes.storage.k8s.io".to_string(),
            "csistoragecapacities.storage.k8s.io labels=\"csi.storage.k8s.io/drivername=hostpath.csi.k8s.io,csi.storage.k8s.io/managed-by=external-provisioner\" namespace=\"kube-system\"".to_string(),
            "nodes".to_string(),
            "storageclasses.storage.k8s.io".to_string(),
        ]
    );

    // A node deployment watches no Nodes: its one segment is fixed.
    let node = CapacityOptions {
        managed_by: managed_by_id(Some("node-1")),
        node_topology: Some(BTreeMap::from([("zone".to_string(), "a".to_string())])),
        ..CapacityOptions::new("hostpath.csi.k8s.io", "kube-system")
    };
    let node_caches = Caches::new(client);
    let node_watches = declare(&node_caches, &node).unwrap();
    assert_eq!(node_caches.watch_count(), 2);
    assert!(node_caches.describe().iter().any(|w| w.contains(
        "csi.storage.k8s.io/managed-by=external-provisioner-node-1\" namespace=\"kube-system\""
    )));
    #[derive(Debug)]
    struct NoDriver;
    impl crate::csi::CapacityDriver for NoDriver {
        fn get_capacity(
            &self,
            _request: csi_proto::csi::v1::GetCapacityRequest,
            _timeout: Duration,
        ) -> BoxFuture<'_, Result<csi_proto::csi::v1::GetCapacityResponse, crate::CsiError>>
        {
            Box::pin(async { Err(crate::CsiError::Other("no driver".into())) })
        }
    }
    let capacity = Capacity::new(
        node,
        node_watches,
        Arc::new(NoDriver),
        Arc::new(crate::capacity::KubeCapacityApi::new(
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap(),
        )),
        None,
    );
    // The fixed segment is known at once.
    let segments = capacity.controller().topology().list();
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].to_string(), "zone: a");
    // Waiting for caches that never sync ends at shutdown.
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    capacity.run(shutdown).await.unwrap();
    drop(watches);
}
