//! Running our binaries as real processes in tests, and talking HTTP to them.
//!
//! A [`ChildProcess`] is killed when dropped, so a failing test never leaves one behind; its
//! stderr goes to a file that [`ChildProcess::logs`] reads, for assertions and failure messages.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// One HTTP/1.1 GET; returns the status code and the body. The request runs on a blocking
/// thread, so a mock driver served by the test's own runtime keeps answering meanwhile.
pub async fn http_get(address: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let address = address.to_string();
    let path = path.to_string();
    tokio::task::spawn_blocking(move || http_get_blocking(&address, &path)).await?
}

fn http_get_blocking(address: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream =
        TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .context("no status code")?
        .parse()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `GET path` until it answers (any status), for at most `timeout`.
pub async fn wait_for_http(
    address: &str,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        match http_get(address, path).await {
            Ok(answer) => return Ok(answer),
            Err(err) if Instant::now() >= deadline => {
                return Err(err.context(format!("no HTTP answer within {timeout:?}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Polls `GET path` until it answers with `status`, for at most `timeout`; returns the body.
pub async fn wait_for_status(
    address: &str,
    path: &str,
    status: u16,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        match http_get(address, path).await {
            Ok((got, body)) if got == status => return Ok(body),
            other => last = Some(format!("{other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("GET {address}{path} did not answer {status} within {timeout:?}; last answer: {last:?}")
}

/// A child process that is killed when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl ChildProcess {
    /// Starts `program` with `args`; stdout and stderr go to a log file.
    pub fn spawn<I, S>(program: impl AsRef<Path>, args: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn_with_env(program, args, std::iter::empty::<(&str, &str)>())
    }

    /// [`ChildProcess::spawn`] with more environment variables (`NODE_NAME`, `NAMESPACE`).
    pub fn spawn_with_env<I, S, E, K, V>(
        program: impl AsRef<Path>,
        args: I,
        env: E,
    ) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let log_dir = tempfile::tempdir()?;
        let log = log_dir.path().join("output.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(program.as_ref())
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", program.as_ref().display()))?;
        Ok(ChildProcess {
            child,
            log,
            _log_dir: log_dir,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (`"TERM"`, `"INT"`, `"KILL"`) with the `kill` command.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {} failed", self.id());
        }
        Ok(())
    }

    /// Waits for the process to exit, for at most `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "process {} still running after {timeout:?}; its output:\n{}",
                    self.id(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `program` to completion with a timeout; returns its exit code and output.
pub async fn run_to_exit<I, S>(
    program: impl AsRef<Path>,
    args: I,
    timeout: Duration,
) -> anyhow::Result<(i32, String)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child = ChildProcess::spawn(program, args)?;
    let status = child.wait(timeout).await?;
    Ok((status.code().unwrap_or(-1), child.logs()))
}
