//! The API server's audit log ([`E2eEnv::audit_log`]); the parser ([`AuditLog`], [`AuditEvent`])
//! is `csi-audit-log`'s, shared with the bench.

use anyhow::bail;
pub use csi_audit_log::{AuditEvent, AuditLog, one_per_request};

use crate::E2eEnv;

impl E2eEnv {
    /// The API server's audit log (`<state>/logs/audit.log`, Metadata level, one JSON
    /// `audit.k8s.io/v1` Event a line).
    pub fn audit_log(&self) -> anyhow::Result<AuditLog> {
        let path = self.state_dir()?.join("logs").join("audit.log");
        if !path.exists() {
            bail!(
                "{} does not exist: the API server runs without the audit log `cargo xtask \
                 cluster up` configures",
                path.display()
            );
        }
        Ok(AuditLog::at(path))
    }
}

/// Whether `refused` is the creation of an Event, as the LeaderElection Event on a Lease is.
/// Upstream's external-attacher role grants no Events while client-go's leader election (and
/// ours) records one on the Lease: under that role both binaries are refused it alike, and the
/// attacher's tests excuse exactly that.
pub fn event_creation_refused(refused: &AuditEvent) -> bool {
    refused.verb == "create" && refused.api_group.is_empty() && refused.resource == "events"
}
