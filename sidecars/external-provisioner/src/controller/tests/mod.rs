//! The loop's tests, on in-memory fakes ([`fakes`]): the caches and the API server, the CSI
//! driver, the Events and the metrics registry.
//!
//! Ported from sig-storage-lib-external-provisioner v13.1.0's `controller_test.go`, with
//! upstream's case names (in each test's doc or table), upstream's expectations (PVs created
//! and deleted, claims, Events, finalizers, claims in progress, unsaved PVs, metrics) and, in
//! addition, whether the key is requeued:
//! - `TestController`: 38 of its 41 cases ([`provision`], [`delete`]; its two identical rows
//!   "ensure finalizer is added on statically provisioned, migrated, in-tree volumes" and "… if
//!   it is in a Bound state" are one test). The provisioner is
//!   external-provisioner's: "fails to provision" is a final `CreateVolume` error, "provisional"
//!   a DeadlineExceeded, "NoChange" a missing provisioner secret, "ignored" a claim an external
//!   populator fills, "reschedule" ResourceExhausted with topology and a selected node; PVs to
//!   delete are CSI PVs. A claim gets in progress only through a failed attempt, so the cases
//!   that start with a claim in progress count one failure more.
//! - `TestShouldProvision`: all 13 (the qualifier is the `--node-deployment` node check; "should
//!   provision based on additionalProvisionerNames" with CSI migration's in-tree name).
//! - `TestShouldDelete` (7), `TestShouldDeleteWithFinalizer` (4), `TestIsProvisionerForVolume`
//!   (11), `TestDeleteVolumeErrorHandling` (3).
//! - `TestAddFinalizer` (4) and `TestRemoveFinalizer` (5): as what `sync_volume` sends for a
//!   Bound PV with reclaim policy Delete or Retain.
//! - `TestCanProvision`: the 3 rows of a provisioner that supports Block.
//! - `TestTopologyParams` (4): as the `CreateVolume` accessibility requirements.
//! - `TestControllerSharedInformers` (2), `TestInfeasibleRetry` (3).
//!
//! 97 library cases in all; 9 not ported (below).
//!
//! From external-provisioner v6.4.0's `controller_test.go`: `TestDelete` (18, through
//! `sync_volume`: the `DeleteVolume` secrets, `VolumeFailedDelete`, `VolumeDelete` while
//! attached, another node's PV ignored) and `TestProvisionErrorHandling` (16 codes × topology ×
//! selected node, with what the loop does with each state).
//!
//! Not ported, because they cannot apply:
//! - `TestController` "don't provision, provisioner does not support raw block" and the six
//!   `TestCanProvision` rows of a provisioner without Block support: external-provisioner
//!   always supports Block (the driver decides).
//! - `TestController` "try to provision for claim-1 but fail to save the pv object": it runs
//!   the library's blocking backoff store; external-provisioner uses the queue store, whose
//!   cases ("PV save backoff: …") are ported.
//! - `TestController` "ensure finalizer is removed if the addFinalizer config option is
//!   false": external-provisioner always adds the finalizer; there is no such option.
//!
//! [`ours`]: what the loop does beyond upstream (the provisioning finalizer of claims, the
//! unsaved-PV queue, the metrics as exposed).

mod delete;
mod fakes;
mod node_deployment;
mod ours;
mod provision;
