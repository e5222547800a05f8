//! `csi-external-health-monitor-controller`: the standalone binary, flag-compatible with
//! kubernetes-csi/external-health-monitor.

fn main() {
    csi_sidecar_runtime::main_standalone(&external_health_monitor::DESCRIPTOR)
}
