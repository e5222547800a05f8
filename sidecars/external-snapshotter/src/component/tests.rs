//! The component's static parts: lease name, flags, gates.

use csi_sidecar_runtime::process::standalone_flags;

use super::*;

#[test]
fn lease_name_is_upstreams() {
    let sanitized = |driver: &str| csi_controller::sanitize_name(&lease_name(driver));
    assert_eq!(
        sanitized("hostpath.csi.k8s.io"),
        "external-snapshotter-leader-hostpath-csi-k8s-io"
    );
    assert_eq!(sanitized("foo/bar"), "external-snapshotter-leader-foo-bar");
}

#[test]
fn flags_parse_as_upstreams() {
    let command = standalone_flags(&DESCRIPTOR);
    command.command().clone().debug_assert();
    let parsed = command
        .parse([
            "csi-snapshotter",
            "-v=5",
            "--csi-address=/csi/csi.sock",
            "--leader-election=true",
            "--snapshot-name-uuid-length=8",
            "--timeout",
            "30s",
            "--feature-gates=CSIVolumeGroupSnapshot=false",
            "--extra-create-metadata",
        ])
        .unwrap();
    let view = parsed.controller(None);
    assert_eq!(view.int("snapshot-name-uuid-length"), 8);
    assert_eq!(view.duration("timeout"), std::time::Duration::from_secs(30));
    assert!(view.bool("extra-create-metadata"));
    assert_eq!(view.string("snapshot-name-prefix"), "snapshot");
    assert_eq!(view.string("groupsnapshot-name-prefix"), "groupsnapshot");
    assert_eq!(view.int("groupsnapshot-name-uuid-length"), -1);
    assert_eq!(view.int("worker-threads"), 10);
    assert_eq!(
        view.duration("resync-period"),
        std::time::Duration::from_secs(900)
    );
    assert_eq!(
        view.duration("retry-interval-max"),
        std::time::Duration::from_secs(300)
    );
}

#[test]
fn group_snapshots_are_ga_and_on_by_default() {
    let gate = FEATURES
        .iter()
        .find(|f| f.name == VOLUME_GROUP_SNAPSHOT_GATE)
        .unwrap();
    assert!(gate.default);
    assert_eq!(gate.stage, Stage::Ga);
}
