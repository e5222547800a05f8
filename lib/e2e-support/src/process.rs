//! Small helpers for the processes and objects of a test: a log's tail, whether a process has
//! exited, clean-up that tolerates "not found".

use csi_test_support::ChildProcess;

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether the process has exited: a zombie until its handle reaps it (or gone).
pub fn has_exited(process: &ChildProcess) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", process.id())) {
        // pid (comm) state ...; comm may hold spaces and parentheses.
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("Z")
        }
        Err(_) => true,
    }
}

/// `Ok` for "not found" too: clean-up of what may be gone already.
pub fn ignore_not_found<T>(result: Result<T, kube::Error>) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Waits until `/healthz/<name>` of the process serving `address` answers 200 `ok` for each of
/// `names`, and each is enabled, not only healthy: a controller that `csi-sidecars` disabled
/// for a missing driver capability answers ok too, with a note (`[+]name ok: disabled …`).
pub async fn every_controller_healthy(
    address: &str,
    names: &[&str],
    process: &ChildProcess,
) -> anyhow::Result<()> {
    use csi_test_support::{http_get, wait_for_status};
    for name in names {
        let body = wait_for_status(
            address,
            &format!("/healthz/{name}"),
            200,
            crate::storage::WAIT,
        )
        .await
        .map_err(|e| e.context(format!("/healthz/{name}:\n{}", process.logs())))?;
        anyhow::ensure!(body == "ok", "/healthz/{name}: {body}");
    }
    let mut last = String::new();
    for _ in 0..50 {
        let (_, all) = http_get(address, "/healthz?verbose").await?;
        if names
            .iter()
            .all(|name| all.contains(&format!("[+]{name} ok\n")))
        {
            return Ok(());
        }
        last = all;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    anyhow::bail!(
        "not every one of {names:?} is enabled and healthy:\n{last}\n{}",
        process.logs()
    )
}
