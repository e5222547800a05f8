//! `csi-attacher`: the standalone binary, flag-compatible with kubernetes-csi/external-attacher.

fn main() {
    csi_sidecar_runtime::main_standalone(&external_attacher::DESCRIPTOR)
}
