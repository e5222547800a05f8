//! The ported upstream tables of `pkg/common-controller` (snapshot and group halves) and
//! their harness.

pub(crate) mod framework;
mod group_loop_test;
mod group_validation_test;
mod groupsnapshot_create_test;
mod groupsnapshot_delete_test;
mod groupsnapshot_finalizer_test;
mod groupsnapshot_helper_test;
mod groupsnapshot_sync_test;
mod groupsnapshot_update_test;
mod snapshot_controller_test;
mod snapshot_create_test;
mod snapshot_delete_test;
mod snapshot_finalizer_test;
mod snapshot_update_test;
mod snapshotclass_test;
