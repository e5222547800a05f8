//! Tests: ports of upstream's table tests (v6.4.0, same case names; each file says which
//! functions and how many cases) and a few of our own.
//!
//! Not ported yet: the 22 cross-namespace cases of `TestProvisionFromPVC` (ReferenceGrants
//! are covered by `TestIsGranted` and the cross-namespace cases of
//! `TestProvisionFromSnapshot`); because what they test is not written yet: the
//! node-deployment cases of `TestProvision` and `TestShouldProvision`
//! (claim ownership, capacity checks), `TestMarkAsMigrated`, `TestProvisionWithMigration` and
//! `TestDeleteMigration` (CSI migration), `TestGetPluginName` and `TestGetDriverName` (the
//! driver connection, tested in `csi-connection`). The secret cases of `TestProvision` and
//! `TestGetSecretReference` are in `csi-controller`.

mod controller_test;
mod delete_test;
mod driver_name_test;
mod params_test;
mod protection_test;
mod snapshot_test;
mod source_test;
mod topology_test;
