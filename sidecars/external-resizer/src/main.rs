//! `csi-resizer`: the standalone binary, flag-compatible with kubernetes-csi/external-resizer.

fn main() {
    csi_sidecar_runtime::main_standalone(&external_resizer::DESCRIPTOR)
}
