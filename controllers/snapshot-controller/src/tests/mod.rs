//! The ported upstream tables of `pkg/common-controller` (snapshot half) and their harness.

pub(crate) mod framework;
mod snapshot_controller_test;
mod snapshot_create_test;
mod snapshot_delete_test;
mod snapshot_finalizer_test;
mod snapshot_update_test;
mod snapshotclass_test;
