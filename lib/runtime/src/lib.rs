//! What every sidecar binary shares, standalone or in `csi-sidecars`: Go-compatible flags
//! ([`flags`]), feature gates ([`features`]), the component descriptor and `--controllers`
//! ([`controller`]), the process state ([`shared`]), health checks ([`health`]), the HTTP
//! diagnostics server ([`server`]), one controller's failure kept its own ([`supervisor`]), the
//! global flags of `csi-sidecars` ([`aggregate`]) and the one place that decides exits
//! ([`process`]).

pub mod aggregate;
pub mod controller;
pub mod features;
pub mod flags;
pub mod health;
pub mod kube;
pub mod process;
pub mod server;
pub mod shared;
pub mod supervisor;

pub use controller::{
    BoxFuture, Controller, Descriptor, DriverUse, HttpDefaults, InitContext, InitError, Upstream,
    Validated,
};
pub use flags::{Flag, FlagView, Kind};
pub use health::CheckResult;
pub use process::{main_aggregate, main_standalone};
pub use shared::{Mode, Shared};

/// The version every binary reports (`--version`, its start-up log line, its API user agent):
/// the release's version when `cargo xtask release --version X.Y.Z` built it (it sets
/// `CSI_SIDECARS_VERSION`), else the workspace's version.
pub const VERSION: &str = match option_env!("CSI_SIDECARS_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
