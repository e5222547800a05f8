//! What a component (a former sidecar) tells the runtime about itself, and the
//! kube-controller-manager-style `--controllers` selection.
//!
//! A component crate exports one [`Descriptor`]. Its standalone binary is
//! `csi_sidecar_runtime::main_standalone(&DESCRIPTOR)`; `csi-sidecars` is
//! `main_aggregate(&[&A, &B, ...])`. Both go through the same [`crate::process`] code.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::features::{FeatureGates, FeatureSpec};
use crate::flags::{Flag, FlagView};
use crate::shared::Shared;

/// The upstream release a component mirrors.
#[derive(Clone, Copy, Debug)]
pub struct Upstream {
    /// `kubernetes-csi/livenessprobe`.
    pub repo: &'static str,
    /// `v2.19.0`.
    pub version: &'static str,
}

/// How a component uses the CSI driver connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverUse {
    /// Only at start-up (driver name, capabilities). `wait_forever` waits for the socket without
    /// a deadline (livenessprobe must never crash while the driver starts).
    StartupOnly {
        /// Wait for the driver without a deadline.
        wait_forever: bool,
    },
    /// All the time: losing the connection is fatal for the process, as upstream exits (the
    /// kubelet restarts the container, and the driver state is read afresh).
    LongLived,
    /// Never: a cluster-wide controller that has no driver (snapshot-controller). A process
    /// of such components connects to nothing (its [`crate::Shared::csi`] fails every call),
    /// registers no `csi_sidecar_operations_seconds`, reads no `--csi-address`, and names its
    /// lease without a driver name.
    None,
}

/// The HTTP server a component expects.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpDefaults {
    /// A port the server listens on even without `--http-endpoint` (livenessprobe: 9808).
    pub default_port: Option<u16>,
    /// Whether its standalone binary serves metrics on `--http-endpoint`.
    pub serves_metrics: bool,
}

/// What [`Descriptor::validate`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validated {
    /// Go on.
    Run,
    /// Exit 0 now (node-driver-registrar's deprecated `--mode=kubelet-registration-probe`).
    ExitSuccess,
}

/// Why a component did not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The driver lacks what the component needs. Standalone, the binary exits as upstream
    /// does; in `csi-sidecars` the component is disabled and the others run on.
    #[error("{0}")]
    Disabled(String),
    /// Anything else.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// What a component's `init` gets.
#[derive(Clone, Debug)]
pub struct InitContext {
    /// The controller name (`livenessprobe`), used for health checks and logs.
    pub name: &'static str,
    /// Everything the process has once.
    pub shared: Arc<Shared>,
    /// This component's flags.
    pub flags: FlagView,
    /// This component's feature gates (the ones it declares), as `--feature-gates` set them.
    pub features: FeatureGates,
}

/// A boxed, `Send` future (the `futures` crate's, which every crate of the workspace uses), as
/// the descriptor table stores functions returning them.
pub use futures::future::BoxFuture;

/// A started component: the future that runs it until the shutdown token is cancelled.
///
/// The runtime polls `run` only while the component may work: for a component that uses the
/// API server, after the shared caches synced and, with leader election, while its lease is
/// held. When it stops being allowed to work, `run` is dropped. When it fails — returns `Err` or
/// panics — `csi-sidecars` reports the failure under the component's name, waits (exponential
/// backoff) and starts it again by calling `init` afresh and polling the new `run`; the other
/// components keep running. A standalone binary exits 1 instead, as upstream. So work that
/// must exist only while the component runs (a subscription to a shared watch, workers) belongs
/// in `run`, not in `init`.
pub struct Controller {
    /// Runs the component; returning `Err` means this run failed.
    pub run: BoxFuture<'static, anyhow::Result<()>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

impl Controller {
    /// Wraps a future.
    pub fn new(run: impl Future<Output = anyhow::Result<()>> + Send + 'static) -> Self {
        Controller { run: Box::pin(run) }
    }
}

/// Builds a component from its flags once the process is set up.
pub type InitFn = fn(InitContext) -> BoxFuture<'static, Result<Controller, InitError>>;

/// Everything the runtime needs to know about one component.
#[derive(Debug)]
pub struct Descriptor {
    /// The `--controllers` name and flag prefix (`livenessprobe`).
    pub name: &'static str,
    /// Other names `--controllers` accepts for it.
    pub aliases: &'static [&'static str],
    /// Left out of `--controllers=*`.
    pub disabled_by_default: bool,
    /// The standalone binary's name (`csi-node-driver-registrar`).
    pub binary: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// The upstream release this component mirrors.
    pub upstream: Upstream,
    /// Its flags, with upstream's names and defaults, in groups (a component's own table, and
    /// shared ones such as [`crate::kube::FLAGS`]).
    pub flag_groups: &'static [&'static [Flag]],
    /// Its feature gates.
    pub features: &'static [FeatureSpec],
    /// How it uses the driver.
    pub driver: DriverUse,
    /// Whether it talks to the API server (and so runs under leader election).
    pub kube: Option<crate::kube::KubeUse>,
    /// Its HTTP server expectations.
    pub http: HttpDefaults,
    /// Checks its flags before anything starts; an error is reported and the process exits 1.
    pub validate: fn(&FlagView) -> Result<Validated, String>,
    /// Starts it.
    pub init: InitFn,
}

impl Descriptor {
    /// Every flag of the component.
    pub fn flags(&self) -> impl Iterator<Item = &'static Flag> + use<> {
        self.flag_groups.iter().flat_map(|group| group.iter())
    }

    /// Whether it waits for the driver without a deadline.
    pub fn wait_forever(&self) -> bool {
        matches!(self.driver, DriverUse::StartupOnly { wait_forever: true })
    }
}

/// A validation that accepts anything.
pub fn no_validation(_: &FlagView) -> Result<Validated, String> {
    Ok(Validated::Run)
}

/// An error in `--controllers`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectionError {
    /// A name no component has.
    #[error("{name:?} is not in the list of known controllers: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// Nothing would run.
    #[error("no controller is enabled by --controllers={given:?}; known controllers: {known}")]
    Empty {
        /// The flag value.
        given: String,
        /// The known names.
        known: String,
    },
}

/// Resolves `--controllers` as kube-controller-manager does: `name` turns a controller on,
/// `-name` off, `*` turns on every controller that is not disabled by default; an explicit
/// choice wins over `*`; unknown names are rejected. Returns the enabled descriptors in table
/// order.
pub fn select<'a>(
    table: &[&'a Descriptor],
    value: &str,
) -> Result<Vec<&'a Descriptor>, SelectionError> {
    let known = || {
        table
            .iter()
            .map(|d| {
                if d.disabled_by_default {
                    format!("{} (disabled by default)", d.name)
                } else {
                    d.name.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let canonical = |name: &str| -> Option<&'static str> {
        table
            .iter()
            .find(|d| d.name == name || d.aliases.contains(&name))
            .map(|d| d.name)
    };
    let mut on = BTreeSet::new();
    let mut off = BTreeSet::new();
    let mut star = false;
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            star = true;
            continue;
        }
        let (negated, name) = match item.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        let Some(name) = canonical(name) else {
            return Err(SelectionError::Unknown {
                name: name.to_string(),
                known: known(),
            });
        };
        // The first explicit choice for a name wins, as in kube-controller-manager.
        if on.contains(name) || off.contains(name) {
            continue;
        }
        if negated {
            off.insert(name);
        } else {
            on.insert(name);
        }
    }
    let enabled: Vec<&Descriptor> = table
        .iter()
        .filter(|d| {
            on.contains(d.name) || (star && !off.contains(d.name) && !d.disabled_by_default)
        })
        .copied()
        .collect();
    if enabled.is_empty() {
        return Err(SelectionError::Empty {
            given: value.to_string(),
            known: known(),
        });
    }
    Ok(enabled)
}

/// Panics if two descriptors share a name or alias (kube-controller-manager panics at start-up
/// for the same mistake; a test of every binary catches it first).
pub fn check_table(table: &[&Descriptor]) {
    let mut seen = BTreeSet::new();
    for d in table {
        for name in std::iter::once(&d.name).chain(d.aliases) {
            assert!(seen.insert(*name), "controller name {name:?} is used twice");
        }
    }
}

/// A helper for descriptors: `Some(d)` unless `d` is zero.
pub fn non_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(_: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
        Box::pin(async { Ok(Controller::new(async { Ok(()) })) })
    }

    const fn desc(name: &'static str, aliases: &'static [&'static str], off: bool) -> Descriptor {
        Descriptor {
            name,
            aliases,
            disabled_by_default: off,
            binary: name,
            about: "",
            upstream: Upstream {
                repo: "",
                version: "",
            },
            flag_groups: &[],
            features: &[],
            driver: DriverUse::LongLived,
            kube: None,
            http: HttpDefaults {
                default_port: None,
                serves_metrics: false,
            },
            validate: no_validation,
            init,
        }
    }

    static ATTACHER: Descriptor = desc("attacher", &["external-attacher"], false);
    static PROBE: Descriptor = desc("livenessprobe", &[], false);
    static REGISTRAR: Descriptor = desc("node-driver-registrar", &["registrar"], true);
    const TABLE: &[&Descriptor] = &[&ATTACHER, &PROBE, &REGISTRAR];

    fn names(value: &str) -> Result<Vec<&'static str>, SelectionError> {
        select(TABLE, value).map(|v| v.iter().map(|d| d.name).collect())
    }

    #[test]
    fn controllers_flag_semantics_follow_kube_controller_manager() {
        let cases: &[(&str, &[&str])] = &[
            ("*", &["attacher", "livenessprobe"]),
            ("attacher", &["attacher"]),
            ("attacher,livenessprobe", &["attacher", "livenessprobe"]),
            ("*,-attacher", &["livenessprobe"]),
            ("-attacher,*", &["livenessprobe"]),
            (
                "*,node-driver-registrar",
                &["attacher", "livenessprobe", "node-driver-registrar"],
            ),
            ("registrar", &["node-driver-registrar"]),
            ("external-attacher", &["attacher"]),
            (" attacher , livenessprobe ", &["attacher", "livenessprobe"]),
            ("attacher,-attacher", &["attacher"]),
        ];
        for (value, want) in cases {
            assert_eq!(names(value).as_deref(), Ok(*want), "--controllers={value}");
        }
    }

    #[test]
    fn unknown_controller_is_rejected_with_the_known_list() {
        let err = names("attacher,provisoner").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"provisoner\""), "{text}");
        assert!(
            text.contains("attacher, livenessprobe, node-driver-registrar (disabled by default)"),
            "{text}"
        );
        assert!(names("-nothing").is_err());
    }

    #[test]
    fn an_empty_selection_is_an_error() {
        assert!(matches!(names(""), Err(SelectionError::Empty { .. })));
        assert!(matches!(
            names("*,-attacher,-livenessprobe"),
            Err(SelectionError::Empty { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "used twice")]
    fn duplicate_names_panic() {
        static DUP: Descriptor = desc("registrar", &[], false);
        check_table(&[&REGISTRAR, &DUP]);
    }
}
