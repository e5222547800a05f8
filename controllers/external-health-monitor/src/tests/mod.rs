//! Tests: upstream's tables (`pkg/csi-handler/*_test.go`, `pkg/controller/controller_test.go`,
//! `pkg/util/pvc_to_pods_cache_test.go`) with their case names, and ours.
//!
//! The driver is [`MockCsiDriver`] on a unix socket (upstream uses csi-test's gomock server
//! the same way), the caches are maps, the API a recording fake.

mod controller;
mod fixtures;
mod health;
mod health_mapping;
mod node_watcher;
mod pv_checker;
mod pv_handler;
mod volume_health;
