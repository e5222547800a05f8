//! `csi-sidecars --controllers=...`: the all-in-one binary.

fn main() {
    csi_sidecar_runtime::main_aggregate(csi_sidecars::NAME, csi_sidecars::TABLE)
}
