//! What the snapshot webhooks (`snapshot-conversion-webhook`, `snapshot-validation-webhook`)
//! share, and nothing of their rules:
//!
//! - [`certs`]: the serving certificate and key, read from files and read again whenever
//!   either file changes (a renewed Secret, a cert-manager rotation), as upstream's
//!   `CertWatcher` does; a pair that fails to load leaves the previous one in service;
//! - [`server`]: HTTPS on a port with that certificate, serving an axum router;
//! - [`cli`]: the command line of a webhook binary, with Go's flag syntax and the logging flags.
//!
//! Nothing here exits the process: `main` decides that.

#![deny(missing_docs)]

pub mod certs;
pub mod cli;
pub mod server;

pub use certs::CertWatcher;
pub use server::{ServerOptions, serve};
