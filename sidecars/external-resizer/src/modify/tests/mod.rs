//! The modify controller's tests, on in-memory fakes ([`fakes`]).
//!
//! Ported from external-resizer's `pkg/modifycontroller` and `pkg/modifier` tables, with
//! upstream's case names:
//! - [`controller`]: `TestController` (3), `TestModifyPVC` (2), `TestSyncPVC` (8),
//!   `TestInfeasibleRetry` (3), `TestConcurrentSync` (1: "uncertain"; upstream comments out
//!   "success" as flaky with its fake client).
//! - [`status`]: `TestMarkControllerModifyVolumeStatus` (5),
//!   `TestMarkControllerModifyVolumeCompleted` (2).
//! - [`volume`]: `TestModify` (4), `TestModifyUncertain` (1), `TestCancel` (1).
//! - [`modifier`]: `TestNewModifier` (2).
//!
//! [`ours`]: what upstream's tables do not check — the patches as sent, the Events, the
//! secrets of `ControllerModifyVolume`, the PVC handlers, the error messages.

mod controller;
mod fakes;
mod modifier;
mod ours;
mod status;
mod volume;
