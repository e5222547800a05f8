//! external-resizer (kubernetes-csi/external-resizer v2.3.0) in Rust: `csi-resizer` and
//! `csi-sidecars --controllers=resizer`.
//!
//! - [`resize`]: volume expansion — PVCs bound to this driver's PVs whose requested size grew
//!   are expanded with `ControllerExpandVolume` (or marked for node expansion only), with
//!   recovery from a failed expansion.
//! - [`modify`]: volume modification — a PVC's `volumeAttributesClassName` change applied with
//!   `ControllerModifyVolume`.
//! - [`kube`]: the client both write through.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod component;
pub mod kube;
pub mod modify;
pub mod resize;

pub use component::DESCRIPTOR;
