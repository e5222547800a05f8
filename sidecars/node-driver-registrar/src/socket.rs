//! The registration socket file: stale-socket clean-up, and creating the socket owner-only
//! without touching the process-wide umask.
//!
//! Upstream sets `umask(0077)` around `listen()`. In a multi-threaded process (every Rust
//! binary with a tokio runtime, and above all `csi-sidecars`) the umask is process-wide and
//! would race with any other thread creating files. Instead we bind the socket inside a fresh
//! directory only we can enter (so nobody can connect before the mode is right), set the
//! socket's mode to upstream's result (`srwx------`), and rename it into place. The rename is
//! atomic, so the kubelet's plugin watcher sees one complete, correctly-protected socket appear.
//! The temporary directory starts with a dot: the kubelet's plugin watcher ignores such entries.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// The mode upstream's `umask(0077)` gives the socket.
pub const SOCKET_MODE: u32 = 0o700;

/// Errors about the socket file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something that is not a socket is in the way; we never delete it.
    #[error("file exists in socketPath {0} but it's not a socket")]
    NotASocket(PathBuf),
    /// A filesystem operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What we tried.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a socket exists at `path`: `Ok(false)` if nothing is there, an error if something
/// that is not a socket is.
pub fn socket_exists(path: &Path) -> Result<bool, Error> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(true),
        Ok(_) => Err(Error::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("failed to stat the socket", path)(e)),
    }
}

/// Removes a stale socket at `path`; refuses to remove anything else.
pub fn remove_stale(path: &Path) -> Result<(), Error> {
    if socket_exists(path)? {
        std::fs::remove_file(path).map_err(io_err("failed to remove stale socket", path))?;
    }
    Ok(())
}

/// Removes the socket at `path` if it is there (shutdown).
pub fn remove(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("failed to remove socket", path)(e)),
    }
}

/// Creates a listening socket at `path` with mode [`SOCKET_MODE`], replacing a stale socket.
pub fn listen(path: &Path) -> Result<UnixListener, Error> {
    remove_stale(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    // A leftover from a crash of an earlier process with our pid would block the mkdir.
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(io_err("failed to create staging directory", &staging))?;
    let result = (|| {
        let staged = staging.join("reg.sock");
        let listener =
            UnixListener::bind(&staged).map_err(io_err("failed to listen on socket", &staged))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(io_err("failed to set the mode of socket", &staged))?;
        std::fs::rename(&staged, path)
            .map_err(io_err("failed to move socket into place at", path))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_an_owner_only_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drv-reg.sock");
        let _listener = listen(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, SOCKET_MODE);
        // Nothing else is left behind in the directory.
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        // The socket accepts connections under its final name.
        tokio::net::UnixStream::connect(&path).await.unwrap();
    }

    #[tokio::test]
    async fn replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drv-reg.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(socket_exists(&path).unwrap());
        let _listener = listen(&path).unwrap();
        tokio::net::UnixStream::connect(&path).await.unwrap();
    }

    #[test]
    fn refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drv-reg.sock");
        std::fs::write(&path, b"precious").unwrap();
        let err = listen(&path).unwrap_err();
        assert!(matches!(err, Error::NotASocket(_)), "{err}");
        assert!(err.to_string().contains("not a socket"));
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn missing_socket_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        assert!(!socket_exists(&path).unwrap());
        remove(&path).unwrap();
        remove_stale(&path).unwrap();
    }
}
