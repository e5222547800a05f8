//! `csi-snapshotter`: the standalone binary, flag-compatible with kubernetes-csi/external-snapshotter's.

fn main() {
    csi_sidecar_runtime::main_standalone(&external_snapshotter::DESCRIPTOR)
}
