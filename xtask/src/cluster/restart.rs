//! `cargo xtask cluster restart etcd|kube-apiserver|kube-controller-manager`: stops one process
//! of the running cluster (SIGTERM, SIGKILL after the grace period) and starts it again with the
//! same flags, ports, certificates and data, its log continued; waits until it is ready and
//! records its new pid. The reliability tests restart the API server and etcd mid-workload
//! this way (`csi_e2e_support::E2eEnv::restart_control_plane`).

use std::time::Instant;

use anyhow::{Context as _, bail};

use super::pki::Pki;
use super::{
    APISERVER, APISERVER_READY, CHILDREN, CONTROLLER_MANAGER, CONTROLLER_MANAGER_READY, ETCD,
    ETCD_READY, State, Tools, api, apiserver_args, block_on, controller_manager_args, etcd_args,
    process, wait_ready,
};

/// The process a `restart` argument names: `etcd`, `kube-apiserver` (or `apiserver`),
/// `kube-controller-manager` (or `controller-manager`).
pub(super) fn process_name(argument: &str) -> anyhow::Result<&'static str> {
    Ok(match argument {
        "etcd" => ETCD,
        "apiserver" | "kube-apiserver" => APISERVER,
        "controller-manager" | "kube-controller-manager" => CONTROLLER_MANAGER,
        other => bail!(
            "cargo xtask cluster restart: unknown process {other:?} (etcd, kube-apiserver, \
             kube-controller-manager)"
        ),
    })
}

/// Restarts the process `argument` names; see the module documentation.
pub fn restart(argument: &str) -> anyhow::Result<()> {
    let name = process_name(argument)?;
    let state = State::locate()?;
    let _lock = state.lock()?;
    let tools = Tools::ensure()?;
    block_on(restart_locked(&state, &tools, name))
}

async fn restart_locked(state: &State, tools: &Tools, name: &'static str) -> anyhow::Result<()> {
    let mut recorded = state.read_pids()?;
    let Some(entry) = recorded.iter_mut().find(|r| r.name == name) else {
        bail!(
            "no {name} recorded in {}: `cargo xtask cluster up` first",
            state.pids_file().display()
        );
    };
    if !entry.is_alive() {
        bail!(
            "{name} (pid {}) does not run: the cluster is down or broken (`cargo xtask cluster \
             status`)",
            entry.pid
        );
    }
    let ports = state.read_ports()?;
    let pki = Pki::in_dir(&state.pki_dir());
    let (program, args, timeout) = match name {
        ETCD => (&tools.etcd, etcd_args(state, &ports), ETCD_READY),
        APISERVER => (
            &tools.apiserver,
            apiserver_args(state, &pki, &ports),
            APISERVER_READY,
        ),
        _ => (
            &tools.controller_manager,
            controller_manager_args(state, &pki),
            CONTROLLER_MANAGER_READY,
        ),
    };
    let began = Instant::now();
    let old_pid = entry.pid;
    let stopped = process::stop(entry.pid, &entry.program, process::STOP_GRACE)?;
    let mut child = process::spawn_appending(program, &args, &state.log(name), &state.dir)
        .with_context(|| format!("starting {name} again"))?;
    entry.pid = child.id();
    state.write_pids(&recorded)?;
    let client = api::client(&state.kubeconfig()).await?;
    let etcd_address = format!("127.0.0.1:{}", ports.etcd_client);
    wait_ready(state, name, &mut child, timeout, || async {
        if name == ETCD {
            let (status, body) = csi_test_support::http_get(&etcd_address, "/health").await?;
            if status != 200 || !body.contains("\"true\"") {
                bail!("GET /health answered {status}: {body}");
            }
        }
        // Every process is only back when the API server answers ready again (it serves
        // from etcd; the controller manager needs it).
        api::readyz(&client).await
    })
    .await?;
    if let Ok(mut children) = CHILDREN.lock() {
        children.push(child);
    }
    eprintln!(
        "cluster: restarted {name} (pid {old_pid} → {}; stopped: {stopped:?}) in {:.1}s",
        entry_pid(&recorded, name),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

fn entry_pid(recorded: &[super::Recorded], name: &str) -> u32 {
    recorded
        .iter()
        .find(|r| r.name == name)
        .map_or(0, |r| r.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_names_the_three_processes() {
        assert_eq!(process_name("etcd").unwrap(), ETCD);
        assert_eq!(process_name("apiserver").unwrap(), APISERVER);
        assert_eq!(process_name("kube-apiserver").unwrap(), APISERVER);
        assert_eq!(
            process_name("controller-manager").unwrap(),
            CONTROLLER_MANAGER
        );
        let err = process_name("kubelet").unwrap_err().to_string();
        assert!(err.contains("unknown process \"kubelet\""), "{err}");
    }
}
