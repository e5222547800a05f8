//! Upstream's sidecar-controller tests (external-snapshotter v8.7.0, `pkg/sidecar-controller`),
//! ported with their case names, on the in-memory collaborators of [`framework`] (upstream's
//! `framework_test.go`):
//!
//! | upstream | here | cases |
//! |---|---|---|
//! | `content_create_test.go` `TestSyncContent` | [`content_create`] | 9 |
//! | `snapshot_delete_test.go` `TestDeleteSync` | [`snapshot_delete`] | 17 |
//! | `snapshot_controller_test.go` | [`snapshot_controller`] | 2 + 4 |
//! | `csi_handler_test.go` | [`csi_handler`] | 15 subtests |
//! | `groupsnapshot_helper_test.go` | [`groupsnapshot_helper`] | see the module |
//! | `groupsnapshot_controller_test.go` | [`groupsnapshot_controller`] | see the module |
//!
//! As upstream's framework: the API server is an in-memory store (csi-test-support's
//! `FakeApi`), the CSI calls go to a scripted snapshotter that checks each call against the
//! case's expected calls in order (expected calls that are never made are not an error, as
//! upstream's), and each case checks the contents the API server holds at the end (ignoring
//! `resourceVersion`, creation times and error times) and the Events (by prefix; as upstream's
//! `checkEvents` reads only as many Events as a case expects, an Event past those is not
//! noticed — `snapshot_delete` 1-4 and 1-6 emit one).
//!
//! Where ours differs: upstream's fake compares secrets with `reflect.DeepEqual`, which tells
//! a nil map from an empty one; a CSI request cannot (an empty map and no map are the same
//! message), so ours compares them as equal. The API server's `UpdateStatus` is a JSON patch of
//! `/status` in the fake (after the same `resourceVersion` check).

// The tables are built like upstream's, with long argument lists.
#![allow(clippy::too_many_arguments)]

pub mod framework;

mod content_create;
mod csi_handler;
mod groupsnapshot_controller;
mod groupsnapshot_fixture;
mod groupsnapshot_helper;
mod snapshot_controller;
mod snapshot_delete;
