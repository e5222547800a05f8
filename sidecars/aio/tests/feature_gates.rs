//! Every component of `csi-sidecars` declares its feature gates so that one `--feature-gates`
//! value means the same for each component that has the gate: a conflict would stop the process
//! at start-up, so it is caught here first.

use csi_sidecar_runtime::features::check_declarations;

#[test]
fn the_components_declare_their_gates_consistently() {
    let union = check_declarations(csi_sidecars::TABLE.iter().map(|d| (d.name, d.features)))
        .unwrap_or_else(|err| panic!("{err}"));
    for d in csi_sidecars::TABLE {
        for gate in d.features {
            assert!(union.iter().any(|g| g.name == gate.name), "{}", gate.name);
        }
    }
}
