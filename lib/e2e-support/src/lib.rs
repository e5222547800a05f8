//! What the end-to-end tests need around the local control plane started by
//! `cargo xtask cluster up`:
//!
//! - [`E2eEnv`]: where the cluster's kubeconfig, the tools and our binaries are;
//! - clients: the admin's, and a ServiceAccount's (token from the TokenRequest API), so a
//!   sidecar can be checked under the RBAC we ship;
//! - [`TestNamespace`], fake Nodes the attach/detach controller accepts, CSINode objects;
//! - [`DriverProcess`]: a real CSI driver as a separate process. csi-driver-host-path cannot be
//!   built here (the Go module proxy refuses its module), so this is Kubernetes' own e2e mock CSI
//!   driver (`k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock`, the driver behind the
//!   upstream "CSI mock volume" e2e tests), built from the same pinned Kubernetes version as
//!   kube-apiserver by `cargo xtask tools`;
//! - [`wait_until`]: polling with a timeout whose failure message carries the Events of the
//!   namespace and whatever the caller describes;
//! - the API server's audit log ([`E2eEnv::audit_log`], [`AuditLog`]): requests per user and
//!   user agent, watches per resource, requests refused with 403;
//! - [`FaultProxy`]: a gRPC pass-through between a sidecar and the driver that fails or holds
//!   back a seeded share of chosen methods' calls, and records every call;
//! - [`apply_rbac_manifest`]: a shipped RBAC manifest, server-side applied into a test's
//!   namespace, its cluster-scoped objects renamed per test, deleted again afterwards;
//! - what kube-controller-manager's attach/detach controller acts on: a CSI PV with a bound
//!   claim ([`create_bound_csi_volume`]), a pod on a fake node ([`create_pod_on_node`],
//!   [`force_delete_pod`]), the VolumeAttachments of a PV ([`volume_attachments_of`]) and
//!   one-line descriptions for failure messages; volumes created in the driver process
//!   ([`DriverProcess::create_volume`]) and the gRPC calls it logged
//!   ([`DriverProcess::grpc_calls`]).
//!
//! Every process started here is killed when its handle is dropped, including when a test fails.
//!
//! - the end-of-scenario invariants of the reliability suite ([`InvariantChecker`],
//!   [`InvariantReport`]): nothing leaked, stuck or created twice.
//! - [`kustomize::render`]: `kustomize build` of our `deploy/` bases, for the tests that run what
//!   they ship.
//!
//! One module per concern: [`env`](mod@env) (where things are, clients), [`namespace`], [`nodes`],
//! [`driver`], [`wait`], [`audit`], [`rbac`], [`volumes`], [`kustomize`]; everything else is
//! re-exported here.

pub mod audit;
pub mod compare;
pub mod control_plane;
pub mod driver;
pub mod env;
pub mod faults;
pub mod invariants;
pub mod kustomize;
pub mod namespace;
pub mod nodes;
pub mod process;
pub mod rbac;
pub mod rbac_coverage;
pub mod sandbox;
pub mod soak;
pub mod storage;
pub mod volumes;
pub mod wait;

pub use audit::{AuditEvent, AuditLog};
pub use control_plane::ControlPlaneProcess;
pub use driver::{DRIVER_NAME, DriverCall, DriverOptions, DriverProcess};
pub use env::{
    E2eEnv, STATE_DIR_ENV, client_from_kubeconfig, service_account_client,
    service_account_kubeconfig, service_account_token, service_account_username,
};
pub use faults::{Fault, FaultPlan, FaultProxy, ProxyCall};
pub use invariants::{InvariantChecker, InvariantReport};
pub use namespace::{TestNamespace, describe_events};
pub use nodes::{
    CONTROLLER_MANAGED_ATTACH_DETACH, create_csinode, create_csinode_with_topology,
    create_fake_node, create_fake_node_with_labels, delete_nodes,
};
pub use process::{every_controller_healthy, has_exited, ignore_not_found, tail};
pub use rbac::{
    AppliedManifest, AppliedObject, apply_rbac_manifest, parse_yaml_documents, plan_rbac_manifest,
};
pub use sandbox::Sandbox;
pub use soak::{ScenarioOutcome, SoakMode};
pub use storage::StorageFixture;
pub use volumes::{
    CsiVolume, create_bound_csi_volume, create_pod_on_node, delete_csi_volume,
    describe_persistent_volume, describe_volume_attachment, describe_volume_attachments,
    force_delete_pod, volume_attachments_of,
};
pub use wait::wait_until;
