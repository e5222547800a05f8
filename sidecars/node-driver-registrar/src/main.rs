//! `csi-node-driver-registrar`: the standalone binary, flag-compatible with
//! kubernetes-csi/node-driver-registrar.

fn main() {
    csi_sidecar_runtime::main_standalone(&node_driver_registrar::DESCRIPTOR)
}
