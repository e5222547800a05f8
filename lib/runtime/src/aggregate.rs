//! The global flags of `csi-sidecars`, each defined once.
//!
//! They are [`AGGREGATE_FLAGS`] — the flags that exist only in `csi-sidecars` (`--controllers`,
//! `--leader-election-per-controller`) and those whose default or meaning differs there from
//! every sidecar's (`--http-endpoint`, `--health-port`, `--feature-gates`) — followed by the
//! process-wide flags of the control-plane sidecars' common group ([`crate::kube::FLAGS`]) and
//! of the components in the table, as the components define them (first definition of a name
//! wins). A component that gains a process-wide flag thus gains it in `csi-sidecars` too; there
//! is no second list to keep in step.

use crate::controller::Descriptor;
use crate::flags::{Flag, Kind, LOGGING_FLAGS, Scope};

/// The flags of `csi-sidecars` that no component defines the same way (see the
/// [module documentation](self)).
pub const AGGREGATE_FLAGS: &[Flag] = &[
    Flag::new(
        "controllers",
        Kind::String,
        "*",
        "A list of controllers to enable. '*' enables all on-by-default controllers, 'foo' enables the controller named 'foo', '-foo' disables the controller named 'foo'.",
    )
    .process(),
    Flag::new(
        "http-endpoint",
        Kind::String,
        "",
        "The TCP network address where the HTTP server for diagnostics, including health checks and metrics, will listen (example: `:8080`). The default is empty string, which means the server is disabled unless a controller needs it (livenessprobe listens on :9808).",
    )
    .process(),
    Flag::new(
        "health-port",
        Kind::Int,
        "0",
        "(deprecated) TCP port for healthz requests. Only one of `--health-port` and `--http-endpoint` can be set.",
    )
    .process(),
    Flag::new(
        "feature-gates",
        Kind::MapStringBool,
        "",
        "A set of key=value pairs that describe feature gates for alpha/experimental features of the enabled controllers.",
    )
    .process(),
    Flag::new(
        "leader-election-per-controller",
        Kind::Bool,
        "false",
        "Hold each controller's upstream lease (external-attacher-leader-<driver>, ...) instead of one lease for the process (csi-sidecars-<driver>). Use it while replacing separate sidecars by csi-sidecars, so that an old sidecar and the new process never both lead the same work.",
    )
    .process(),
];

/// Every process-wide flag of `csi-sidecars` with the components of `table`, each once:
/// [`AGGREGATE_FLAGS`], then the process-wide flags of [`crate::kube::FLAGS`] and of each
/// component, skipping names already taken and the logging flags (their own section).
pub fn aggregate_process_flags(table: &[&Descriptor]) -> Vec<Flag> {
    let mut flags = AGGREGATE_FLAGS.to_vec();
    let components = table.iter().flat_map(|d| d.flags());
    for flag in crate::kube::FLAGS
        .iter()
        .chain(components)
        .filter(|f| f.scope == Scope::Process)
    {
        let taken = flags
            .iter()
            .chain(LOGGING_FLAGS)
            .any(|f| f.name == flag.name);
        if !taken {
            flags.push(*flag);
        }
    }
    flags
}
