//! The files `cargo xtask new-sidecar` writes, as text.

use super::Spec;

pub(super) fn cargo_toml(spec: &Spec) -> String {
    format!(
        r#"[package]
name = "{package}"
description = "{package} ({upstream}) in Rust"
version.workspace = true
edition.workspace = true
license.workspace = true
publish = false

[[bin]]
name = "{binary}"
path = "src/main.rs"

[dependencies]
anyhow.workspace = true
csi-sidecar-runtime.workspace = true

[dev-dependencies]

[lints]
workspace = true
"#,
        package = spec.package(),
        upstream = spec.upstream,
        binary = spec.binary,
    )
}

pub(super) fn main_rs(spec: &Spec) -> String {
    format!(
        r#"//! `{binary}`: the standalone binary, flag-compatible with {upstream}.

fn main() {{
    csi_sidecar_runtime::main_standalone(&{ident}::DESCRIPTOR)
}}
"#,
        binary = spec.binary,
        upstream = spec.upstream,
        ident = spec.ident(),
    )
}

pub(super) fn lib_rs(spec: &Spec) -> String {
    format!(
        r#"//! {package} ({upstream} {version}) in Rust: `{binary}` and
//! `csi-sidecars --controllers={name}`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod component;

pub use component::DESCRIPTOR;
"#,
        package = spec.package(),
        upstream = spec.upstream,
        version = spec.version,
        binary = spec.binary,
        name = spec.name,
    )
}

pub(super) fn component_rs(spec: &Spec) -> String {
    format!(
        r#"//! {package} as a component of our runtime: upstream {version}'s flags, the start-up its
//! `main` does, and the controller it runs.

use csi_sidecar_runtime::controller::{{Validated, no_validation}};
use csi_sidecar_runtime::features::FeatureSpec;
use csi_sidecar_runtime::kube::KubeUse;
use csi_sidecar_runtime::{{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, FlagView, HttpDefaults, InitContext,
    InitError, Upstream,
}};

/// {package} {version}'s own flags, with upstream's names, types, defaults and usage text
/// (the common ones are in [`csi_sidecar_runtime::kube::FLAGS`]). To fill in from
/// `{binary} --help`.
pub const FLAGS: &[Flag] = &[];

/// {package}'s feature gates, as upstream declares them. To fill in.
pub const FEATURES: &[FeatureSpec] = &[];

/// The {package} component.
pub static DESCRIPTOR: Descriptor = Descriptor {{
    name: "{name}",
    aliases: &["{package}", "{binary}"],
    disabled_by_default: false,
    binary: "{binary}",
    about: "{package} (not ported yet)",
    upstream: Upstream {{
        repo: "{upstream}",
        version: "{version}",
    }},
    flag_groups: &[csi_sidecar_runtime::kube::FLAGS, FLAGS],
    features: FEATURES,
    driver: DriverUse::LongLived,
    kube: Some(KubeUse {{
        lease_name,
        user_agent: "{binary}",
        kubeconfig_env: false,
    }}),
    http: HttpDefaults {{
        default_port: None,
        serves_metrics: true,
    }},
    validate,
    init,
}};

/// Upstream's lease name before sanitizing. To check against upstream's `main.go`.
pub fn lease_name(driver: &str) -> String {{
    format!("{package}-{{driver}}")
}}

fn validate(flags: &FlagView) -> Result<Validated, String> {{
    no_validation(flags)
}}

fn init(_ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {{
    Box::pin(async move {{
        Err(InitError::Failed(anyhow::anyhow!(
            "{package} is not ported yet"
        )))
    }})
}}
"#,
        package = spec.package(),
        upstream = spec.upstream,
        version = spec.version,
        binary = spec.binary,
        name = spec.name,
    )
}

pub(super) fn rbac_yaml(spec: &Spec) -> String {
    format!(
        r#"# The RBAC of {binary}: the rules of {upstream} {version}'s
# deploy/kubernetes/rbac.yaml, to be copied in (rules only; the names below are ours).
# `cargo xtask rbac` unites them into sidecars/aio/deploy/rbac.yaml.

apiVersion: v1
kind: ServiceAccount
metadata:
  name: {binary}
  namespace: default

---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: {package}-runner
rules: []

---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: {package}-role
subjects:
  - kind: ServiceAccount
    name: {binary}
    namespace: default
roleRef:
  kind: ClusterRole
  name: {package}-runner
  apiGroup: rbac.authorization.k8s.io

---
kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  namespace: default
  name: {package}-cfg
rules: []

---
kind: RoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: {package}-role-cfg
  namespace: default
subjects:
  - kind: ServiceAccount
    name: {binary}
    namespace: default
roleRef:
  kind: Role
  name: {package}-cfg
  apiGroup: rbac.authorization.k8s.io
"#,
        package = spec.package(),
        upstream = spec.upstream,
        version = spec.version,
        binary = spec.binary,
    )
}

pub(super) fn crate_test(spec: &Spec) -> String {
    format!(
        r#"//! `{binary}` against upstream {version}: these fail until the port is done.

use csi_sidecar_runtime::process::standalone_flags;

/// Every flag of upstream {version}'s `{binary} --help`, by name. To fill in.
const UPSTREAM_FLAGS: &[&str] = &[];

#[test]
fn every_upstream_flag_exists() {{
    assert!(
        !UPSTREAM_FLAGS.is_empty(),
        "fill in UPSTREAM_FLAGS from {binary} {version} --help"
    );
    for name in UPSTREAM_FLAGS {{
        assert!(
            {ident}::DESCRIPTOR.flags().any(|f| f.name == *name),
            "--{{name}} is missing"
        );
    }}
    standalone_flags(&{ident}::DESCRIPTOR)
        .command()
        .clone()
        .debug_assert();
}}

#[test]
fn the_shipped_rbac_has_upstreams_rules() {{
    let rbac = include_str!("../deploy/rbac.yaml");
    assert!(
        !rbac.contains("rules: []"),
        "copy upstream {version}'s RBAC rules into deploy/rbac.yaml"
    );
}}
"#,
        binary = spec.binary,
        version = spec.version,
        ident = spec.ident(),
    )
}

pub(super) fn e2e_test(spec: &Spec) -> String {
    format!(
        r#"//! {package} on the real control plane, under the RBAC it ships, with a real CSI driver
//! process (see e2e/tests/resizer.rs for the model: a `StorageFixture`, `{binary}` and
//! `csi-sidecars --controllers=...,{name}`, nothing forbidden in the audit log).

#[tokio::test]
async fn {test}_on_the_real_control_plane() -> anyhow::Result<()> {{
    anyhow::bail!("not written yet: {package}'s end-to-end test")
}}
"#,
        package = spec.package(),
        binary = spec.binary,
        name = spec.name,
        test = spec.test_ident(),
    )
}

pub(super) fn e2e_upstream_test(spec: &Spec) -> String {
    format!(
        r#"//! Upstream's Go `{binary}` {version} and ours side by side on the same objects (see
//! e2e/tests/resizer_upstream.rs: the Go binary is built by `cargo xtask tools` from its module
//! and named in a `CSI_E2E_GO_*` variable by `cargo xtask e2e`).

#[tokio::test]
async fn {test}_matches_upstream_side_by_side() -> anyhow::Result<()> {{
    anyhow::bail!("not written yet: {binary} side by side with upstream {version}")
}}
"#,
        binary = spec.binary,
        version = spec.version,
        test = spec.test_ident(),
    )
}
