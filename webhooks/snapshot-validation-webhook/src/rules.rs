//! The rules the snapshot CRDs state as CEL expressions (`x-kubernetes-validations` in
//! external-snapshotter v8.7.0's `client/config/crd`), for clusters whose CRDs predate them.
//!
//! Upstream's webhook held these rules itself until v8.0 (immutable sources and handles, a
//! non-empty class name, both halves of a content's snapshot reference) and dropped them once
//! the CRDs carried them as CEL ("Remove duplicate validation logic from webhook"). We keep them,
//! written as the CEL rules are, so that a cluster gets the same verdict with old CRDs and this
//! webhook as with new CRDs alone; the end-to-end test runs both on one table to hold us to it.
//!
//! How the API server applies a CEL rule, and so how we do:
//! - a rule belongs to a node of the object (`spec.source`); a node that is absent (or `null`)
//!   is not checked;
//! - a transition rule (one that reads `oldSelf`) is checked only on UPDATE and only when the
//!   node exists in the old object too;
//! - any other rule is checked on CREATE and UPDATE, except that on UPDATE a node equal to its
//!   old value is let through even if invalid (CRD validation ratcheting, on by default since
//!   Kubernetes 1.30): an object stored before a rule existed can still be updated elsewhere.

use serde_json::Value;

/// What a rule checks on its node (`self`) and, for transition rules, its old value (`oldSelf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `self == oldSelf`.
    Immutable,
    /// `!has(oldSelf.f) || has(self.f)`.
    RequiredOnceSet(&'static str),
    /// `(has(self.a) && !has(self.b)) || (!has(self.a) && has(self.b))`.
    ExactlyOne(&'static str, &'static str),
    /// `size(self) > 0` on a string.
    NotEmpty,
    /// `has(self.a) && has(self.b)`.
    BothSet(&'static str, &'static str),
    /// `self.a == oldSelf.a && self.b == oldSelf.b` (a missing field is an evaluation error,
    /// which fails the rule).
    FieldsUnchanged(&'static str, &'static str),
    /// `!has(oldSelf.f) || (has(self.f) && self.f == oldSelf.f)`.
    UnchangedOnceSet(&'static str),
}

impl Check {
    fn is_transition(self) -> bool {
        matches!(
            self,
            Check::Immutable
                | Check::RequiredOnceSet(_)
                | Check::FieldsUnchanged(..)
                | Check::UnchangedOnceSet(_)
        )
    }
}

/// One rule: where, what, and the message the CRD gives.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// The node, from the object's root.
    pub path: &'static [&'static str],
    /// The check.
    pub check: Check,
    /// The CRD's message.
    pub message: &'static str,
    /// Only with `--prevent-volume-mode-conversion` (the `sourceVolumeMode` rules; upstream's
    /// webhook made them depend on that flag).
    pub volume_mode: bool,
}

const fn rule(path: &'static [&'static str], check: Check, message: &'static str) -> Rule {
    Rule {
        path,
        check,
        message,
        volume_mode: false,
    }
}

use Check::*;

/// `snapshot.storage.k8s.io/v1` VolumeSnapshot.
pub const VOLUME_SNAPSHOT: &[Rule] = &[
    rule(
        &["spec", "source"],
        RequiredOnceSet("persistentVolumeClaimName"),
        "persistentVolumeClaimName is required once set",
    ),
    rule(
        &["spec", "source"],
        RequiredOnceSet("volumeSnapshotContentName"),
        "volumeSnapshotContentName is required once set",
    ),
    rule(
        &["spec", "source"],
        ExactlyOne("volumeSnapshotContentName", "persistentVolumeClaimName"),
        "exactly one of volumeSnapshotContentName and persistentVolumeClaimName must be set",
    ),
    rule(
        &["spec", "source", "persistentVolumeClaimName"],
        Immutable,
        "persistentVolumeClaimName is immutable",
    ),
    rule(
        &["spec", "source", "volumeSnapshotContentName"],
        Immutable,
        "volumeSnapshotContentName is immutable",
    ),
    rule(
        &["spec", "volumeSnapshotClassName"],
        NotEmpty,
        "volumeSnapshotClassName must not be the empty string when set",
    ),
];

/// `snapshot.storage.k8s.io/v1` VolumeSnapshotContent.
pub const VOLUME_SNAPSHOT_CONTENT: &[Rule] = &[
    Rule {
        volume_mode: true,
        ..rule(
            &["spec"],
            RequiredOnceSet("sourceVolumeMode"),
            "sourceVolumeMode is required once set",
        )
    },
    rule(
        &["spec", "source"],
        RequiredOnceSet("volumeHandle"),
        "volumeHandle is required once set",
    ),
    rule(
        &["spec", "source"],
        RequiredOnceSet("snapshotHandle"),
        "snapshotHandle is required once set",
    ),
    rule(
        &["spec", "source"],
        ExactlyOne("volumeHandle", "snapshotHandle"),
        "exactly one of volumeHandle and snapshotHandle must be set",
    ),
    rule(
        &["spec", "source", "snapshotHandle"],
        Immutable,
        "snapshotHandle is immutable",
    ),
    rule(
        &["spec", "source", "volumeHandle"],
        Immutable,
        "volumeHandle is immutable",
    ),
    Rule {
        volume_mode: true,
        ..rule(
            &["spec", "sourceVolumeMode"],
            Immutable,
            "sourceVolumeMode is immutable",
        )
    },
    rule(
        &["spec", "volumeSnapshotRef"],
        BothSet("name", "namespace"),
        "both spec.volumeSnapshotRef.name and spec.volumeSnapshotRef.namespace must be set",
    ),
];

/// `snapshot.storage.k8s.io/v1` VolumeSnapshotClass: no CEL rules.
pub const VOLUME_SNAPSHOT_CLASS: &[Rule] = &[];

/// VolumeGroupSnapshot `v1alpha1` and `v1beta1`.
pub const VOLUME_GROUP_SNAPSHOT_V1BETA1: &[Rule] = &[
    rule(
        &["spec", "source"],
        RequiredOnceSet("selector"),
        "selector is required once set",
    ),
    rule(
        &["spec", "source"],
        RequiredOnceSet("volumeGroupSnapshotContentName"),
        "volumeGroupSnapshotContentName is required once set",
    ),
    rule(
        &["spec", "source"],
        ExactlyOne("selector", "volumeGroupSnapshotContentName"),
        "exactly one of selector and volumeGroupSnapshotContentName must be set",
    ),
    rule(
        &["spec", "source", "selector"],
        Immutable,
        "selector is immutable",
    ),
    rule(
        &["spec", "source", "volumeGroupSnapshotContentName"],
        Immutable,
        "volumeGroupSnapshotContentName is immutable",
    ),
    rule(
        &["spec", "volumeGroupSnapshotClassName"],
        NotEmpty,
        "volumeGroupSnapshotClassName must not be the empty string when set",
    ),
];

/// VolumeGroupSnapshot `v1beta2` and `v1`: v1beta1's rules and an immutable bound content.
pub const VOLUME_GROUP_SNAPSHOT_V1: &[Rule] = &[
    VOLUME_GROUP_SNAPSHOT_V1BETA1[0],
    VOLUME_GROUP_SNAPSHOT_V1BETA1[1],
    VOLUME_GROUP_SNAPSHOT_V1BETA1[2],
    VOLUME_GROUP_SNAPSHOT_V1BETA1[3],
    VOLUME_GROUP_SNAPSHOT_V1BETA1[4],
    VOLUME_GROUP_SNAPSHOT_V1BETA1[5],
    rule(
        &["status", "boundVolumeGroupSnapshotContentName"],
        Immutable,
        "boundVolumeGroupSnapshotContentName is immutable once set",
    ),
];

/// VolumeGroupSnapshotContent `v1alpha1` and `v1beta1`.
pub const VOLUME_GROUP_SNAPSHOT_CONTENT_V1BETA1: &[Rule] = &[
    rule(
        &["spec", "source"],
        RequiredOnceSet("volumeHandles"),
        "volumeHandles is required once set",
    ),
    rule(
        &["spec", "source"],
        RequiredOnceSet("groupSnapshotHandles"),
        "groupSnapshotHandles is required once set",
    ),
    rule(
        &["spec", "source"],
        ExactlyOne("volumeHandles", "groupSnapshotHandles"),
        "exactly one of volumeHandles and groupSnapshotHandles must be set",
    ),
    rule(
        &["spec", "source", "groupSnapshotHandles"],
        Immutable,
        "groupSnapshotHandles is immutable",
    ),
    rule(
        &["spec", "source", "volumeHandles"],
        Immutable,
        "volumeHandles is immutable",
    ),
    rule(
        &["spec", "volumeGroupSnapshotRef"],
        BothSet("name", "namespace"),
        "both volumeGroupSnapshotRef.name and volumeGroupSnapshotRef.namespace must be set",
    ),
];

/// VolumeGroupSnapshotContent `v1beta2` and `v1`: v1beta1's rules and more immutable fields.
pub const VOLUME_GROUP_SNAPSHOT_CONTENT_V1: &[Rule] = &[
    rule(
        &["spec", "driver"],
        Immutable,
        "driver is immutable once set",
    ),
    VOLUME_GROUP_SNAPSHOT_CONTENT_V1BETA1[0],
    VOLUME_GROUP_SNAPSHOT_CONTENT_V1BETA1[1],
    VOLUME_GROUP_SNAPSHOT_CONTENT_V1BETA1[2],
    VOLUME_GROUP_SNAPSHOT_CONTENT_V1BETA1[3],
    VOLUME_GROUP_SNAPSHOT_CONTENT_V1BETA1[4],
    rule(
        &["spec", "volumeGroupSnapshotClassName"],
        Immutable,
        "volumeGroupSnapshotClassName is immutable once set",
    ),
    VOLUME_GROUP_SNAPSHOT_CONTENT_V1BETA1[5],
    rule(
        &["spec", "volumeGroupSnapshotRef"],
        FieldsUnchanged("name", "namespace"),
        "volumeGroupSnapshotRef.name and volumeGroupSnapshotRef.namespace are immutable",
    ),
    rule(
        &["spec", "volumeGroupSnapshotRef"],
        UnchangedOnceSet("uid"),
        "volumeGroupSnapshotRef.uid is immutable once set",
    ),
    rule(
        &["status", "volumeGroupSnapshotHandle"],
        Immutable,
        "volumeGroupSnapshotHandle is immutable once set",
    ),
];

/// VolumeGroupSnapshotClass `v1beta2` and `v1` (`v1alpha1` and `v1beta1` have none).
pub const VOLUME_GROUP_SNAPSHOT_CLASS_V1: &[Rule] = &[
    rule(
        &["deletionPolicy"],
        Immutable,
        "deletionPolicy is immutable once set",
    ),
    rule(&["driver"], Immutable, "driver is immutable once set"),
    rule(
        &["parameters"],
        Immutable,
        "parameters are immutable once set",
    ),
];

/// The node at `path`; `null` counts as absent (the API server drops nulls of non-nullable
/// fields before validating).
fn node<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = object;
    for step in path {
        current = current.get(step)?;
    }
    (!current.is_null()).then_some(current)
}

fn has(value: &Value, field: &str) -> bool {
    value.get(field).is_some_and(|v| !v.is_null())
}

fn holds(check: Check, this: &Value, old: Option<&Value>) -> bool {
    match check {
        Immutable => old.is_none_or(|old| this == old),
        RequiredOnceSet(f) => old.is_none_or(|old| !has(old, f) || has(this, f)),
        ExactlyOne(a, b) => has(this, a) != has(this, b),
        NotEmpty => this.as_str().is_none_or(|s| !s.is_empty()),
        BothSet(a, b) => has(this, a) && has(this, b),
        FieldsUnchanged(a, b) => old.is_none_or(|old| {
            [a, b].iter().all(|f| match (this.get(f), old.get(f)) {
                (Some(new), Some(old)) => new == old,
                _ => false,
            })
        }),
        UnchangedOnceSet(f) => {
            old.is_none_or(|old| !has(old, f) || (has(this, f) && this.get(f) == old.get(f)))
        }
    }
}

/// A broken rule, worded as the API server (1.36) words a CEL failure: the field, the value if
/// it is a scalar (`spec.source.volumeHandle: Invalid value: "v2": volumeHandle is immutable`),
/// the message (`spec.source: Invalid value: exactly one of ... must be set`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `spec.source`.
    pub field: String,
    /// The value, as the API server shows a scalar (a quoted string, a number, a bool);
    /// `None` for objects and lists, which it does not show.
    pub value: Option<String>,
    /// The CRD's message.
    pub message: &'static str,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "{}: Invalid value: {value}: {}",
                self.field, self.message
            ),
            None => write!(f, "{}: Invalid value: {}", self.field, self.message),
        }
    }
}

fn shown(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(format!("{s:?}")),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The rules of `rules` that `object` breaks; `old` is the stored object on UPDATE.
pub fn check(
    rules: &[Rule],
    object: &Value,
    old: Option<&Value>,
    prevent_volume_mode_conversion: bool,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for rule in rules {
        if rule.volume_mode && !prevent_volume_mode_conversion {
            continue;
        }
        let Some(this) = node(object, rule.path) else {
            continue;
        };
        let old_node = old.and_then(|old| node(old, rule.path));
        if rule.check.is_transition() {
            if old_node.is_none() {
                continue;
            }
        } else if old_node == Some(this) {
            // Ratcheting: an unchanged node is not judged again.
            continue;
        }
        if !holds(rule.check, this, old_node) {
            violations.push(Violation {
                field: rule.path.join("."),
                value: shown(this),
                message: rule.message,
            });
        }
    }
    violations
}

/// Several violations as the API server lists them: one alone, or `[a, b]`.
pub fn join(violations: &[Violation]) -> String {
    match violations {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
