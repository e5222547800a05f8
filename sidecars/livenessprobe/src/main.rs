//! `livenessprobe`: the standalone binary, flag-compatible with kubernetes-csi/livenessprobe.

fn main() {
    csi_sidecar_runtime::main_standalone(&livenessprobe::DESCRIPTOR)
}
