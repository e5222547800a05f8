//! Upstream's expansion tests (external-resizer v2.3.0's July 2026 tree), ported with their
//! case names, on the in-memory fakes of [`fakes`]:
//!
//! | upstream | here | cases |
//! |---|---|---|
//! | `pkg/resizer/csi_resizer_test.go` | [`csi_resizer`] | 32 |
//! | `pkg/controller/controller_test.go` | [`controller`] | 23 |
//! | `pkg/controller/expand_and_recover_test.go` | [`expand_and_recover`] | 13 + the concurrent one |
//! | `pkg/controller/resize_status_test.go` | [`resize_status`] | 5 |
//! | `pkg/controller/inuse_pvc_store_test.go` | [`inuse_pvc_store`] | 5 |
//! | `pkg/util/util_test.go` | `util::tests` | 11 |
//!
//! Where our expectations differ from upstream's:
//! - v2.3.0 removed the `RecoverVolumeExpansionFailure` gate: recovery is always on, and the
//!   legacy `resizePVC` path is gone. `TestResizePVC` runs through `expand_and_recover`; its
//!   case "Resize PVC with resource version conflict should not emit event" therefore emits
//!   the `VolumeResizeFailed` Event, as `expandAndRecover` does for every failure (the legacy
//!   path skipped it for Conflicts). `TestController`'s "PV nodeExpand Complete" finishes the
//!   expansion with `markOverallExpansionAsFinished` instead of the legacy
//!   `markPVCResizeFinished`.
//! - Upstream's tests run informers for two seconds; here a test calls `sync_pvc` itself, and
//!   the fake cluster writes patched objects back into the caches, as upstream's controller
//!   does with `claims.Update`.

// The tables are tuples, as upstream's are anonymous structs.
#![allow(clippy::type_complexity)]

mod controller;
mod csi_resizer;
mod expand_and_recover;
pub mod fakes;
mod fuzz;
mod inuse_pvc_store;
mod ours;
mod resize_status;
