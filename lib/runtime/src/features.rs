//! Feature gates: each component declares the gates upstream gives it; `--feature-gates` is
//! checked against the union of the enabled components' gates, and an unknown name is a start-up
//! error, as in Kubernetes' `featuregate` package. The gates are plain values handed to the
//! components: nothing here is process-global.
//!
//! Several upstream sidecars have the same gate (`ReleaseLeaderElectionOnExit`), so in
//! `csi-sidecars` one `--feature-gates=Name=value` sets that gate for every enabled component
//! that declares it. That only means one thing if they all declare it alike: as
//! `featuregate.Add` refuses a second spec that differs from the first, a gate declared twice by
//! one component, or by two components with a different default, stage or lock, is a start-up
//! error ([`check_declarations`]).

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// One component declares the same gate twice.
    #[error("feature gate {name} is declared twice by {component}")]
    DeclaredTwice {
        /// The component.
        component: String,
        /// The gate.
        name: String,
    },
    /// Two components declare the same gate differently, so one `--feature-gates` value
    /// cannot mean the same for both.
    #[error(
        "feature gate {name} is declared differently by {first} ({first_spec}) and {second} ({second_spec}); a gate shared by several controllers must have one default, stage and lock"
    )]
    Conflict {
        /// The gate.
        name: String,
        /// The component that declared it first.
        first: String,
        /// Its declaration, in words.
        first_spec: String,
        /// The component whose declaration differs.
        second: String,
        /// Its declaration, in words.
        second_spec: String,
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

impl FeatureSpec {
    fn describe(&self) -> String {
        let mut text = format!("default {}, {:?}", self.default, self.stage);
        if self.locked_to_default {
            text.push_str(", locked");
        }
        text
    }
}

/// Checks the gates of `components` (name, declared gates): none declared twice by one
/// component, and a gate several components declare declared alike by all of them. Returns the
/// union, each gate once, in declaration order.
pub fn check_declarations<'a>(
    components: impl IntoIterator<Item = (&'a str, &'a [FeatureSpec])>,
) -> Result<Vec<FeatureSpec>, Error> {
    let mut union: Vec<(FeatureSpec, &str)> = Vec::new();
    for (component, specs) in components {
        for (i, spec) in specs.iter().enumerate() {
            if specs[..i].iter().any(|s| s.name == spec.name) {
                return Err(Error::DeclaredTwice {
                    component: component.to_string(),
                    name: spec.name.to_string(),
                });
            }
            match union.iter().find(|(s, _)| s.name == spec.name) {
                None => union.push((*spec, component)),
                Some((first, _)) if first == spec => {}
                Some((first, first_component)) => {
                    return Err(Error::Conflict {
                        name: spec.name.to_string(),
                        first: first_component.to_string(),
                        first_spec: first.describe(),
                        second: component.to_string(),
                        second_spec: spec.describe(),
                    });
                }
            }
        }
    }
    Ok(union.into_iter().map(|(s, _)| s).collect())
}

/// The resolved gates of a process.
#[derive(Clone, Debug, Default)]
pub struct FeatureGates {
    values: BTreeMap<&'static str, bool>,
}

impl FeatureGates {
    /// Resolves `requested` (from `--feature-gates`) against the known `specs` (each gate once:
    /// see [`check_declarations`]).
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

    /// The warnings `--feature-gates` deserves once it is accepted: setting a GA or deprecated
    /// gate works but the gate is going away, which component-base's registry logs as a warning
    /// (`Topology=true` in KEP-4958's example manifest is such a gate of the provisioner).
    pub fn warnings(specs: &[FeatureSpec], requested: &[(String, bool)]) -> Vec<String> {
        requested
            .iter()
            .filter_map(|(name, value)| {
                let spec = specs.iter().find(|s| s.name == name)?;
                let stage = match spec.stage {
                    Stage::Ga => "GA",
                    Stage::Deprecated => "deprecated",
                    Stage::Alpha | Stage::Beta => return None,
                };
                Some(format!(
                    "Warning: setting {stage} feature gate {name}={value}. It will be removed in a future release."
                ))
            })
            .collect()
    }

    /// Whether `name` is on. An unknown name is off.
    pub fn enabled(&self, name: &str) -> bool {
        self.values.get(name).copied().unwrap_or(false)
    }

    /// The gates of one component: its own `specs`, with the values resolved for the process
    /// (a gate the process does not know keeps its default).
    pub fn for_component(&self, specs: &[FeatureSpec]) -> FeatureGates {
        FeatureGates {
            values: specs
                .iter()
                .map(|s| {
                    (
                        s.name,
                        self.values.get(s.name).copied().unwrap_or(s.default),
                    )
                })
                .collect(),
        }
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
    fn setting_a_ga_or_deprecated_gate_warns_and_others_do_not() {
        let deprecated = FeatureSpec {
            name: "Old",
            default: false,
            stage: Stage::Deprecated,
            locked_to_default: false,
        };
        let specs = [SPECS[0], SPECS[1], deprecated];
        let requested = [
            ("Topology".to_string(), true),
            ("HonorPVReclaimPolicy".to_string(), true),
            ("Old".to_string(), false),
        ];
        assert!(FeatureGates::new(&specs, &requested).is_ok());
        assert_eq!(
            FeatureGates::warnings(&specs, &requested),
            [
                "Warning: setting GA feature gate HonorPVReclaimPolicy=true. It will be removed in a future release.",
                "Warning: setting deprecated feature gate Old=false. It will be removed in a future release.",
            ]
        );
        assert!(FeatureGates::warnings(&specs, &[]).is_empty());
    }

    #[test]
    fn locked_gate_cannot_change() {
        let err = FeatureGates::new(SPECS, &[("HonorPVReclaimPolicy".into(), false)]).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }));
        assert!(FeatureGates::new(SPECS, &[("HonorPVReclaimPolicy".into(), true)]).is_ok());
    }

    const RELEASE: FeatureSpec = FeatureSpec {
        name: "ReleaseLeaderElectionOnExit",
        default: false,
        stage: Stage::Alpha,
        locked_to_default: false,
    };

    #[test]
    fn a_gate_several_components_declare_alike_is_one_gate_set_for_all() {
        let attacher: &[FeatureSpec] = &[RELEASE, SPECS[0]];
        let provisioner: &[FeatureSpec] = &[SPECS[1], RELEASE];
        let union =
            check_declarations([("attacher", attacher), ("provisioner", provisioner)]).unwrap();
        let names: Vec<&str> = union.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "ReleaseLeaderElectionOnExit",
                "Topology",
                "HonorPVReclaimPolicy"
            ]
        );
        let gates =
            FeatureGates::new(&union, &[("ReleaseLeaderElectionOnExit".into(), true)]).unwrap();
        for specs in [attacher, provisioner] {
            let own = gates.for_component(specs);
            assert!(own.enabled("ReleaseLeaderElectionOnExit"));
        }
        // Each component sees its own gates only.
        let own = gates.for_component(provisioner);
        assert_eq!(
            own.iter().collect::<Vec<_>>(),
            [
                ("HonorPVReclaimPolicy", true),
                ("ReleaseLeaderElectionOnExit", true)
            ]
        );
        assert!(!own.enabled("Topology"));
    }

    #[test]
    fn a_gate_declared_differently_by_two_components_is_an_error_naming_both() {
        let other = FeatureSpec {
            default: true,
            stage: Stage::Beta,
            ..RELEASE
        };
        let err = check_declarations([
            ("attacher", &[RELEASE][..]),
            ("livenessprobe", &[][..]),
            ("resizer", &[other][..]),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "feature gate ReleaseLeaderElectionOnExit is declared differently by attacher (default false, Alpha) and resizer (default true, Beta); a gate shared by several controllers must have one default, stage and lock"
        );
    }

    #[test]
    fn a_gate_declared_twice_by_one_component_is_an_error() {
        let err =
            check_declarations([("attacher", &[RELEASE, SPECS[0], RELEASE][..])]).unwrap_err();
        assert_eq!(
            err,
            Error::DeclaredTwice {
                component: "attacher".into(),
                name: "ReleaseLeaderElectionOnExit".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "feature gate ReleaseLeaderElectionOnExit is declared twice by attacher"
        );
    }

    #[test]
    fn a_gate_only_another_component_knows_keeps_its_default_in_a_component_view() {
        let gates = FeatureGates::default();
        let own = gates.for_component(SPECS);
        assert!(!own.enabled("Topology"));
        assert!(own.enabled("HonorPVReclaimPolicy"));
    }
}
