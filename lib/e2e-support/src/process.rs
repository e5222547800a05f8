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
