//! The controller toolkit: what every controller of the sidecars needs besides its own logic.
//!
//! - [`error`]: [`ApiError`], an API server or cache error with client-go's messages
//!   (`persistentvolume "pv1" not found`), which upstream stores verbatim in object statuses.
//! - [`patch`]: JSON merge patches computed as upstream computes them, JSON merge / strategic
//!   merge / JSON patch requests ([`Patcher`]), and how the API server applies merge and JSON
//!   patches (for fakes).
//! - [`finalizer`]: adding and removing a finalizer with a JSON patch whose `test` operations
//!   make a concurrent change fail the patch instead of being overwritten.
//! - [`semantic`]: apimachinery's `equality.Semantic.DeepEqual` ([`semantic_eq`]).
//! - [`names`]: csi-lib-utils' name sanitizing ([`sanitize_name`]), for lease names,
//!   identities and finalizers.
//! - [`strategic`]: strategic merge patches of whole objects, as client-go's
//!   `CreateTwoWayMergePatch` computes them (conditions merged by type), and applying them.
//! - [`quantity`]: resource quantities as byte counts, as apimachinery parses and writes them.
//! - [`slow_set`]: [`SlowSet`], objects retried at a slower rate after an infeasible error.
//! - [`secrets`]: secret references from StorageClass-style parameters
//!   (`csi.storage.k8s.io/<kind>-secret-name`, the deprecated forms, the `${pvc.name}` family
//!   of templates) with external-provisioner's validation, and fetching a secret's data.
//!
//! Not here: watches and caches (`csi-kube`), work queues and the worker loop
//! (`csi-workqueue`), Events (`csi-kube`). Nothing here logs a secret's value.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod finalizer;
pub mod names;
pub mod patch;
pub mod quantity;
pub mod random;
pub mod secrets;
pub mod semantic;
pub mod slow_set;
pub mod strategic;

pub use error::{ApiError, resources};
pub use names::sanitize_name;
pub use patch::{PatchBody, Patcher};
pub use quantity::{bytes_to_quantity, cmp_quantity, quantity_value};
pub use secrets::{SecretData, SecretGetter, SecretKind, SecretReferenceError};
pub use semantic::semantic_eq;
pub use slow_set::{SlowEntry, SlowSet};
pub use strategic::{OBJECT_MERGE_KEYS, apply_strategic_patch, two_way_merge_patch};
