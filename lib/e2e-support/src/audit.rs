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
