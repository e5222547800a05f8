//! `csi-sidecars`: every sidecar of this workspace in one process (KEP-4958).
//!
//! The binary is a table of component descriptors; everything else — flags, the driver
//! connection, the HTTP server, metrics, health, shutdown — is the same runtime each standalone
//! sidecar uses, built once for the whole process.

use csi_sidecar_runtime::Descriptor;

pub mod migrate;

/// The binary's name.
pub const NAME: &str = "csi-sidecars";

/// Every controller `--controllers` can name, in start-up order.
pub static TABLE: &[&Descriptor] = &[
    &external_attacher::DESCRIPTOR,
    &external_provisioner::DESCRIPTOR,
    &external_resizer::DESCRIPTOR,
    &external_snapshotter::DESCRIPTOR,
    &external_health_monitor::DESCRIPTOR,
    &livenessprobe::DESCRIPTOR,
    &node_driver_registrar::DESCRIPTOR,
];

#[cfg(test)]
mod tests {
    use csi_sidecar_runtime::controller::select;
    use csi_sidecar_runtime::flags::{LOGGING_FLAGS, Scope};
    use csi_sidecar_runtime::process::{
        aggregate_flags, aggregate_process_flags, standalone_flags,
    };

    use super::*;

    #[test]
    fn every_command_passes_clap_debug_asserts() {
        aggregate_flags(NAME, TABLE)
            .command()
            .clone()
            .debug_assert();
        for d in TABLE {
            standalone_flags(d).command().clone().debug_assert();
        }
    }

    #[test]
    fn every_process_flag_of_a_component_exists_once_in_csi_sidecars() {
        for d in TABLE {
            for f in d.flags().filter(|f| f.scope == Scope::Process) {
                assert!(
                    aggregate_process_flags(TABLE)
                        .iter()
                        .chain(LOGGING_FLAGS)
                        .any(|g| g.name == f.name),
                    "{}'s process flag --{} is missing in csi-sidecars",
                    d.name,
                    f.name
                );
            }
        }
    }

    #[test]
    fn global_flags_are_defined_once_and_csi_sidecars_own_versions_win() {
        let flags = aggregate_process_flags(TABLE);
        let mut names: Vec<&str> = flags.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let all = names.len();
        names.dedup();
        assert_eq!(names.len(), all, "a global flag is defined twice");
        // livenessprobe's own default is 9808; csi-sidecars opens no port unless asked.
        let health_port = flags.iter().find(|f| f.name == "health-port").unwrap();
        assert_eq!(health_port.default, "0");
        // Taken from the components as they define them.
        for name in [
            "enable-pprof",
            "kubeconfig",
            "max-grpc-log-length",
            "metrics-path",
        ] {
            assert!(names.contains(&name), "--{name} is missing");
        }
    }

    #[test]
    fn the_kep_node_manifest_is_accepted_as_written() {
        let args = [
            "csi-sidecars",
            "--csi-address=unix:/csi/csi.sock",
            "--controllers=node-driver-registrar",
            "--kubelet-registration-path=/var/lib/kubelet/plugins/<csi-driver>/csi.sock",
        ];
        let parsed = aggregate_flags(NAME, TABLE).parse(args).unwrap();
        let process = parsed.process();
        assert_eq!(process.string("csi-address"), "unix:/csi/csi.sock");
        let enabled = select(TABLE, &process.string("controllers")).unwrap();
        assert_eq!(enabled.len(), 1);
        assert_eq!(enabled[0].name, "node-driver-registrar");
        let registrar = parsed.controller(Some("node-driver-registrar"));
        assert_eq!(
            registrar.string("kubelet-registration-path"),
            "/var/lib/kubelet/plugins/<csi-driver>/csi.sock"
        );
        assert_eq!(
            registrar.string("plugin-registration-path"),
            "/registration"
        );
    }

    #[test]
    fn the_kep_controller_manifest_is_accepted_as_written() {
        let args = [
            "csi-sidecars",
            "--csi-address=unix:/csi/csi.sock",
            "--controllers=attacher,provisioner,resizer,snapshotter",
            "--feature-gates=Topology=true",
            "--leader-election",
            "--leader-election-namespace=kube-system",
            "--timeout=30s",
            "--attacher-timeout=30s",
            "--attacher-worker-thread=100",
            "--provisioner-timeout=30s",
        ];
        let parsed = aggregate_flags(NAME, TABLE).parse(args).unwrap();
        let enabled = select(TABLE, &parsed.process().string("controllers")).unwrap();
        let names: Vec<&str> = enabled.iter().map(|d| d.name).collect();
        assert_eq!(names, ["attacher", "provisioner", "resizer", "snapshotter"]);
        let attacher = parsed.controller(Some("attacher"));
        assert_eq!(attacher.int("worker-threads"), 100);
        assert_eq!(
            parsed.deprecation_warnings(),
            ["--attacher-worker-thread is not a flag; it is read as --attacher-worker-threads"]
        );
        // Topology is the provisioner's GA gate: accepted, with component-base's warning.
        let provisioner = &external_provisioner::DESCRIPTOR;
        let requested = parsed.process().map_string_bool("feature-gates");
        let gates =
            csi_sidecar_runtime::features::FeatureGates::new(provisioner.features, &requested)
                .unwrap();
        assert!(gates.enabled("Topology"));
        assert_eq!(
            csi_sidecar_runtime::features::FeatureGates::warnings(provisioner.features, &requested),
            [
                "Warning: setting GA feature gate Topology=true. It will be removed in a future release."
            ]
        );
        assert_eq!(
            parsed.controller(Some("provisioner")).duration("timeout"),
            std::time::Duration::from_secs(30)
        );
    }

    #[test]
    fn upstream_manifest_arguments_parse_in_the_standalone_binaries() {
        let parsed = standalone_flags(&livenessprobe::DESCRIPTOR)
            .parse([
                "livenessprobe",
                "--csi-address=/csi/csi.sock",
                "--health-port=9898",
            ])
            .unwrap();
        assert_eq!(parsed.process().int("health-port"), 9898);
        assert_eq!(parsed.process().string("csi-address"), "/csi/csi.sock");

        let parsed = standalone_flags(&node_driver_registrar::DESCRIPTOR)
            .parse([
                "csi-node-driver-registrar",
                "--v=5",
                "--csi-address=/csi/csi.sock",
                "--kubelet-registration-path=/var/lib/kubelet/plugins/csi-hostpath/csi.sock",
                "--http-endpoint=:9809",
            ])
            .unwrap();
        let view = parsed.controller(None);
        assert_eq!(view.int("v"), 5);
        assert_eq!(view.string("http-endpoint"), ":9809");
        assert_eq!(
            view.string("kubelet-registration-path"),
            "/var/lib/kubelet/plugins/csi-hostpath/csi.sock"
        );
        assert_eq!(view.duration("timeout"), std::time::Duration::from_secs(1));
    }

    #[test]
    fn the_leader_election_flags_of_csi_sidecars() {
        let parsed = aggregate_flags(NAME, TABLE)
            .parse([
                "csi-sidecars",
                "--controllers=attacher",
                "--leader-election",
                "--leader-election-per-controller",
                "--leader-election-namespace=kube-system",
                "--leader-election-identity=replica-1",
                "--leader-election-labels=app:csi,tier:storage",
                "--leader-election-lease-duration=30s",
                "--kube-api-qps=20",
                "--attacher-kube-api-qps=50",
            ])
            .unwrap();
        let process = parsed.process();
        assert!(process.bool("leader-election"));
        assert!(process.bool("leader-election-per-controller"));
        assert_eq!(process.string("leader-election-namespace"), "kube-system");
        assert_eq!(process.string("leader-election-identity"), "replica-1");
        assert_eq!(process.map_string_string("leader-election-labels").len(), 2);
        assert_eq!(
            process.duration("leader-election-lease-duration"),
            std::time::Duration::from_secs(30)
        );
        // The process budget (watches) and the attacher's own.
        assert_eq!(process.float("kube-api-qps"), 20.0);
        assert_eq!(
            parsed.controller(Some("attacher")).float("kube-api-qps"),
            50.0
        );
        assert_eq!(
            parsed.controller(Some("attacher")).int("kube-api-burst"),
            10
        );
    }

    #[test]
    fn prefixed_timeout_overrides_the_global_one_for_the_registrar_only() {
        let parsed = aggregate_flags(NAME, TABLE)
            .parse([
                "csi-sidecars",
                "--timeout=30s",
                "--node-driver-registrar-timeout=2s",
            ])
            .unwrap();
        assert_eq!(
            parsed
                .controller(Some("node-driver-registrar"))
                .duration("timeout"),
            std::time::Duration::from_secs(2)
        );
    }
}

#[cfg(test)]
mod upstream_versions {
    use super::TABLE;

    /// `release-tools/upstream-versions.toml` and the descriptors must agree.
    #[test]
    fn descriptors_name_the_versions_in_release_tools() {
        let text = include_str!("../../../release-tools/upstream-versions.toml");
        for d in TABLE {
            let section = format!("[{}]", d.name);
            let body = text
                .split(&section)
                .nth(1)
                .unwrap_or_else(|| panic!("{section} missing in upstream-versions.toml"));
            let body = body.split("\n[").next().unwrap_or_default();
            assert!(
                body.contains(&format!("upstream = \"{}\"", d.upstream.repo)),
                "{}: repo differs",
                d.name
            );
            assert!(
                body.contains(&format!("version = \"{}\"", d.upstream.version)),
                "{}: version differs",
                d.name
            );
        }
    }
}
