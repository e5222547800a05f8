//! `csi-sidecars --controllers=...`: the all-in-one binary; `csi-sidecars migrate` rewrites
//! manifests that use the separate sidecar images.

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "migrate") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        std::process::exit(csi_sidecars::migrate::main(&args));
    }
    csi_sidecar_runtime::main_aggregate(csi_sidecars::NAME, csi_sidecars::TABLE)
}
