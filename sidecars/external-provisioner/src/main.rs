//! `csi-provisioner`: the standalone binary, flag-compatible with kubernetes-csi/external-provisioner.

fn main() {
    csi_sidecar_runtime::main_standalone(&external_provisioner::DESCRIPTOR)
}
