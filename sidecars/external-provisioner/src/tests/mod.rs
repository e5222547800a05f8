//! Tests: ports of upstream's table tests (external-provisioner v6.4.0, same test and case
//! names; each file says which functions and how many cases) and a few of our own.
//!
//! # Inventory
//!
//! Every `func Test*` of upstream's `pkg/controller/controller_test.go`, `topology_test.go`,
//! `util_test.go`, `clone_controller_test.go`, `snapshot_finalizer_controller_test.go` and
//! `cmd/csi-provisioner/util_test.go`. "Cases" counts the entries of the test's table (a test
//! without a table is one case); "where" is the module under `src/` (`tests::` here,
//! `controller::tests::` for the loop, `capacity::tests::`) or another crate.
//!
//! | upstream test | cases | ported | where | not ported, and why |
//! |---|---:|---:|---|---|
//! | **controller_test.go** | | | | |
//! | `TestGetPluginName` | 1 | 1 | `tests::driver_name_test` | |
//! | `TestStripPrefixedCSIParams` | 7 | 7 | `tests::params_test` | |
//! | `TestGetDriverName` | 3 | 3 | `tests::driver_name_test` | |
//! | `TestBytesToQuantity` | 5 | 5 | `csi-controller`: `quantity::tests` (the quantity code lives there) | |
//! | `TestCreateDriverReturnsInvalidCapacityDuringProvision` | 1 | 1 | `tests::controller_test` | |
//! | `TestGetSecretReference` | 25 | 25 | `csi-controller`: `secrets::tests` (the secret code lives there) | |
//! | `TestFSTypeProvision` | 4 | 4 | `tests::controller_test` | |
//! | `TestProvision` (`provisionTestcases`) | 41 | 41 | `tests::controller_test` (33); the 8 "distributed, …" in `controller::tests::node_deployment` (the loop's `provision_volume` with the real `NodeOwner`); the secret cases also in `csi-controller` | |
//! | `TestShouldProvision` (`provisionTestcases`) | 41 | 41 | as `TestProvision` (the loop's `should_provision`) | |
//! | `TestProvisionFromSnapshot` | 38 | 38 | `tests::snapshot_test` | |
//! | `TestProvisionWithTopologyEnabled` | 3 | 3 | `tests::controller_test` | |
//! | `TestProvisionErrorHandling` | 16 (× 4 topology/node runs) | 16 | `tests::controller_test`; through the loop in `controller::tests::provision` | |
//! | `TestProvisionWithTopologyDisabled` | 1 | 1 | `tests::controller_test` | |
//! | `TestDelete` | 18 | 18 | `tests::delete_test` (17) and, all 18, `controller::tests::delete` | "fail - nil PV" only through the loop (a PV gone): `delete_volume` takes a PV, never nil |
//! | `TestProvisionFromPVC` | 49 | 49 | `tests::source_test` (27 also with the objects handed in) | |
//! | `TestProvisionWithMigration` | 9 | 9 | `tests::migration_test` | |
//! | `TestDeleteMigration` | 2 | 2 | `tests::migration_test` | |
//! | `TestMarkAsMigrated` | 1 | 1 | `csi-connection`: `tests::mark_as_migrated_as_upstream` (where the `migrated` label of `csi_sidecar_operations_seconds` is set) | |
//! | **topology_test.go** (all in `tests::topology_test`) | | | | |
//! | `TestGenerateVolumeNodeAffinity` | 5 | 5 | | |
//! | `TestStatefulSetSpreading` | 7 (× strict/immediate) | 7 | | |
//! | `TestAllowedTopologies` | 10 (× strict/immediate) | 10 | | |
//! | `TestTopologyAggregation` | 24 (× strict/immediate) | 24 | | |
//! | `TestDistinctTopologyKeySets` | 7 | 7 | | |
//! | `TestRegisteredTopologyKeys` | 5 | 5 | | |
//! | `TestPreferredTopologies` | 8 (× strict/immediate) | 8 | | |
//! | `TestProvisionWithDeletedNodeFromCache` | 9 | 9 | | |
//! | `TestNodeTopologyLabelFallback` | 1 (2 steps) | 1 | | |
//! | `TestTopologyTermSort` | 4 | 4 | | |
//! | `TestTopologyTermCompare` | 3 | 3 | | |
//! | `TestTopologyTermSubset` | 9 | 9 | | |
//! | **util_test.go** | | | | |
//! | `TestIsGranted` | 23 | 23 | `tests::protection_test` | |
//! | **clone_controller_test.go** | | | | |
//! | `TestCloneFinalizerRemoval` | 6 | 6 | `tests::protection_test` | |
//! | `TestEnqueueClaimUpadate` | 2 | 2 | `tests::protection_test` | |
//! | **snapshot_finalizer_controller_test.go** (all in `tests::protection_test`) | | | | |
//! | `TestSyncSnapshot_RemoveFinalizerWhenNoPendingPVC` | 1 | 1 | | |
//! | `TestSyncSnapshot_KeepFinalizerWhenPVCPending` | 1 | 1 | | |
//! | `TestSyncSnapshot_RemoveFinalizerWhenNoPVCExists` | 1 | 1 | | |
//! | `TestSyncSnapshot_MultiplePVCs` | 1 | 1 | | |
//! | `TestNewSnapshotFinalizerController_NilSnapshotClient` | 1 | 1 | | (no VolumeSnapshot API stands for the nil client) |
//! | `TestNewSnapshotFinalizerController_NoSnapshotCapability` | 1 | 1 | | |
//! | `TestSweepOrphanedFinalizers` | 1 | 1 | | |
//! | `TestSweepOrphanedFinalizers_RetainsPendingPVC` | 1 | 1 | | |
//! | `TestIsSnapshotSourcePVC` | 6 | 6 | | |
//! | `TestSnapshotNameFromPVC_CrossNamespace` | 1 | 1 | | |
//! | `TestSyncSnapshot_DataSourceRefPending` | 1 | 1 | | |
//! | **cmd/csi-provisioner/util_test.go** | | | | |
//! | `TestGetNameWithMaxLength` | 8 | 8 | `capacity::tests::names_test` | |
//!
//! Totals: 45 test functions with 412 cases, all ported.
//!
//! The library's (sig-storage-lib-external-provisioner v13.1.0) tests of the loop are listed in
//! `controller::tests`; those of capacity tracking (`pkg/capacity`) in `capacity::tests`.

mod controller_test;
mod delete_test;
mod driver_name_test;
mod fuzz;
mod migration_test;
mod params_test;
mod protection_test;
mod snapshot_test;
mod source_test;
mod topology_test;
