//! `snapshot-controller`: the cluster-wide half of external-snapshotter.

fn main() {
    csi_sidecar_runtime::main_standalone(&snapshot_controller::DESCRIPTOR)
}
