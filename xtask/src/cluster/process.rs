//! Starting the control-plane processes so they outlive `cargo xtask`, finding them again by
//! pid, and stopping exactly them.
//!
//! Without `unsafe` there is no `kill(2)`: signals go through the `kill` command, and liveness
//! is read from `/proc`. A pid is only trusted while `/proc/<pid>/cmdline` still names the
//! program we started, so a recycled pid (after a reboot, say) is never signalled.

use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long `stop` waits after SIGTERM before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Starts `program` with `args`, stdout and stderr appended to `log` (truncated first: a new
/// process, a new log).
///
/// The child gets a process group of its own: a Ctrl-C in the terminal goes to the foreground
/// group only, so the control plane keeps running after `cargo xtask cluster up` returns and
/// while its caller is interrupted. Its stdin is closed.
pub fn spawn(program: &Path, args: &[String], log: &Path, cwd: &Path) -> anyhow::Result<Child> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    spawn_logging_to(program, args, out, cwd)
}

/// [`spawn`], appending to `log` instead: a restarted process continues its predecessor's log.
pub fn spawn_appending(
    program: &Path,
    args: &[String],
    log: &Path,
    cwd: &Path,
) -> anyhow::Result<Child> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    spawn_logging_to(program, args, out, cwd)
}

fn spawn_logging_to(
    program: &Path,
    args: &[String],
    out: File,
    cwd: &Path,
) -> anyhow::Result<Child> {
    let err = out.try_clone()?;
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// Whether `pid` is a live process started from a program whose file name is `name`.
/// Zombies count as dead: a child we started in this process and that exited stays a zombie
/// until we reap it.
pub fn is_alive(pid: u32, name: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself contain ") ".
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    if matches!(state, Some('Z' | 'X') | None) {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0);
    Path::new(argv0.as_ref())
        .file_name()
        .is_some_and(|f| f == name)
}

/// What [`stop`] had to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running (or the pid now belongs to another program).
    NotRunning,
    /// It exited after SIGTERM, within this time.
    Terminated(Duration),
    /// It ignored SIGTERM for [`STOP_GRACE`] and was killed.
    Killed,
}

/// Stops the process `pid` if it is still `name`: SIGTERM, up to `grace` to exit, then SIGKILL.
pub fn stop(pid: u32, name: &str, grace: Duration) -> anyhow::Result<Stopped> {
    if !is_alive(pid, name) {
        return Ok(Stopped::NotRunning);
    }
    let start = Instant::now();
    signal(pid, "TERM")?;
    while start.elapsed() < grace {
        if !is_alive(pid, name) {
            return Ok(Stopped::Terminated(start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, "KILL")?;
    let killed = Instant::now();
    while is_alive(pid, name) {
        if killed.elapsed() > Duration::from_secs(5) {
            bail!("{name} (pid {pid}) is still running 5s after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Stopped::Killed)
}

fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let output = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .output()
        .context("running kill")?;
    // The process may exit between our check and the signal: that is not an error.
    if !output.status.success() && fs::metadata(format!("/proc/{pid}")).is_ok() {
        bail!(
            "kill -s {signal} {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_terminates_a_spawned_process() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let mut child = spawn(
            Path::new("/bin/sh"),
            &["-c".into(), "echo started; exec sleep 30".into()],
            &log,
            dir.path(),
        )
        .unwrap();
        let pid = child.id();
        // `sh` execs `sleep`, so argv0 becomes "sleep".
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_alive(pid, "sleep") {
            assert!(Instant::now() < deadline, "sleep never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!is_alive(pid, "etcd"), "a pid is only alive as its program");
        let outcome = stop(pid, "sleep", STOP_GRACE).unwrap();
        assert!(matches!(outcome, Stopped::Terminated(_)), "{outcome:?}");
        child.wait().unwrap();
        assert_eq!(stop(pid, "sleep", STOP_GRACE).unwrap(), Stopped::NotRunning);
        assert_eq!(log_tail(&log, 5), "started");
    }

    #[test]
    fn stop_kills_what_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stubborn.log");
        let mut child = spawn(
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                "trap '' TERM; echo ready; while :; do sleep 1; done".into(),
            ],
            &log,
            dir.path(),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while log_tail(&log, 1) != "ready" {
            assert!(Instant::now() < deadline, "shell never trapped TERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        let outcome = stop(child.id(), "sh", Duration::from_millis(300)).unwrap();
        assert_eq!(outcome, Stopped::Killed);
        child.wait().unwrap();
    }

    #[test]
    fn dead_and_foreign_pids_are_not_alive() {
        assert!(!is_alive(u32::MAX - 1, "etcd"));
        // Our own pid is alive, but it is not etcd.
        assert!(!is_alive(std::process::id(), "etcd"));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&path, 2), "c\nd");
        assert_eq!(log_tail(&path, 10), "a\nb\nc\nd");
        assert!(log_tail(&dir.path().join("missing"), 3).contains("cannot read"));
    }
}
