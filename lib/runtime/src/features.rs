//! Feature gates: each component declares the gates upstream gives it; `--feature-gates` is
//! checked against the union of the enabled components' gates, and an unknown name is a start-up
//! error, as in Kubernetes' `featuregate` package. The gates are plain values handed to the
//! components: nothing here is process-global.

use std::collections::BTreeMap;

/// How mature a gate is (shown in help, and GA gates cannot be turned off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Off by default, may change.
    Alpha,
    /// Usually on by default.
    Beta,
    /// Always on; the gate will be removed.
    Ga,
    /// Going away.
    Deprecated,
}

/// One feature gate a component understands.
#[derive(Clone, Copy, Debug)]
pub struct FeatureSpec {
    /// The gate's name, as upstream spells it (`Topology`).
    pub name: &'static str,
    /// Its default value.
    pub default: bool,
    /// Its maturity.
    pub stage: Stage,
    /// Whether the value is locked to the default (GA gates are).
    pub locked_to_default: bool,
}

/// An error in `--feature-gates`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// No enabled component knows this gate.
    #[error("unrecognized feature gate: {name} (known gates: {known})")]
    Unknown {
        /// The name given.
        name: String,
        /// The names that would have been accepted.
        known: String,
    },
    /// The gate is locked to its default and cannot be changed.
    #[error("cannot set feature gate {name} to {value}, feature is locked to {default}")]
    Locked {
        /// The gate.
        name: String,
        /// The value asked for.
        value: bool,
        /// The locked value.
        default: bool,
    },
}

/// The resolved gates of a process.
#[derive(Clone, Debug, Default)]
pub struct FeatureGates {
    values: BTreeMap<&'static str, bool>,
}

impl FeatureGates {
    /// Resolves `requested` (from `--feature-gates`) against the known `specs`.
    pub fn new(specs: &[FeatureSpec], requested: &[(String, bool)]) -> Result<Self, Error> {
        let mut values: BTreeMap<&'static str, bool> =
            specs.iter().map(|s| (s.name, s.default)).collect();
        for (name, value) in requested {
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                let known: Vec<&str> = values.keys().copied().collect();
                return Err(Error::Unknown {
                    name: name.clone(),
                    known: if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                });
            };
            if spec.locked_to_default && *value != spec.default {
                return Err(Error::Locked {
                    name: name.clone(),
                    value: *value,
                    default: spec.default,
                });
            }
            values.insert(spec.name, *value);
        }
        Ok(FeatureGates { values })
    }

    /// Whether `name` is on. An unknown name is off.
    pub fn enabled(&self, name: &str) -> bool {
        self.values.get(name).copied().unwrap_or(false)
    }

    /// Every gate with its value, for the start-up log.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, bool)> + '_ {
        self.values.iter().map(|(k, v)| (*k, *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FeatureSpec] = &[
        FeatureSpec {
            name: "Topology",
            default: false,
            stage: Stage::Alpha,
            locked_to_default: false,
        },
        FeatureSpec {
            name: "HonorPVReclaimPolicy",
            default: true,
            stage: Stage::Ga,
            locked_to_default: true,
        },
    ];

    #[test]
    fn defaults_and_overrides() {
        let gates = FeatureGates::new(SPECS, &[("Topology".into(), true)]).unwrap();
        assert!(gates.enabled("Topology"));
        assert!(gates.enabled("HonorPVReclaimPolicy"));
        assert!(!gates.enabled("Nothing"));
    }

    #[test]
    fn unknown_gate_is_an_error_naming_it() {
        let err = FeatureGates::new(SPECS, &[("Toplogy".into(), true)]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unrecognized feature gate: Toplogy"),
            "{text}"
        );
        assert!(text.contains("Topology"), "{text}");
        let err = FeatureGates::new(&[], &[("X".into(), true)]).unwrap_err();
        assert!(err.to_string().contains("known gates: none"));
    }

    #[test]
    fn locked_gate_cannot_change() {
        let err = FeatureGates::new(SPECS, &[("HonorPVReclaimPolicy".into(), false)]).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }));
        assert!(FeatureGates::new(SPECS, &[("HonorPVReclaimPolicy".into(), true)]).is_ok());
    }
}
