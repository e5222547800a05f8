//! The serving certificate: read from a certificate file and a key file, and read again when
//! either changes.
//!
//! Upstream's `CertWatcher` (a copy of controller-runtime's) reloads on fsnotify events. We poll
//! the files' metadata instead (device, inode, size, modification and change times, following
//! symlinks): no extra dependency, and a Secret volume's atomic symlink swap (`..data`) is seen
//! like an in-place write. Each TLS handshake takes the pair in service at that moment. A pair
//! that does not load (a half-written file, a key that does not match the certificate) is logged
//! and the previous pair stays in service; the next change of either file tries again.

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

/// How often the files are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Why a certificate and key pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("reading certificate file {path}: {message}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The key file could not be read or holds no PEM private key.
    #[error("reading private key file {path}: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The key is of an unsupported type or does not belong to the certificate.
    #[error("tls: private key in {key} does not match the certificate in {cert}: {source}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

/// What identifies one version of a file; `None` while the file is missing.
type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// A certificate and key pair read from files, reloaded when the files change. It is the
/// rustls certificate resolver of the server, so every handshake uses the current pair.
pub struct CertWatcher {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when they were last read.
    seen: Mutex<(Stamp, Stamp)>,
}

impl fmt::Debug for CertWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertWatcher")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl CertWatcher {
    /// Reads the pair once; an error here is fatal for the caller, as upstream's
    /// `NewCertWatcher` is.
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> Result<Self, Error> {
        let cert_path = cert_path.into();
        let key_path = key_path.into();
        let seen = (stamp(&cert_path), stamp(&key_path));
        let pair = load_pair(&cert_path, &key_path)?;
        info!("Updated current TLS certificate");
        Ok(CertWatcher {
            cert_path,
            key_path,
            current: RwLock::new(Arc::new(pair)),
            seen: Mutex::new(seen),
        })
    }

    /// The pair in service.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the pair again if either file changed since it was last read. Returns whether a
    /// new pair is in service; a pair that fails to load is an error and changes nothing.
    pub fn reload_if_changed(&self) -> Result<bool, Error> {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                return Ok(false);
            }
            // Recorded before reading: a write that lands while we read changes the stamp
            // again and is picked up by the next check.
            *seen = now;
        }
        debug!(cert = %self.cert_path.display(), key = %self.key_path.display(), "certificate event");
        let pair = load_pair(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        info!("Updated current TLS certificate");
        Ok(true)
    }

    /// Checks the files every `interval` until `shutdown`, logging a pair that fails to load.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(err) = self.reload_if_changed() {
                error!(%err, "error re-reading certificate");
            }
        }
    }
}

impl ResolvesServerCert for CertWatcher {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reads and checks a pair as Go's `tls.LoadX509KeyPair` does: every certificate of the file (the
/// serving certificate first, any CA after it), the first private key of the key file, and the
/// key must belong to the first certificate.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, Error> {
    let cert_err = |message: String| Error::Certificate {
        path: cert_path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err(
            "failed to find any PEM data in certificate input".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| Error::Key {
        path: key_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let pair = CertifiedKey::from_der(certs, key, &provider).map_err(|source| Error::Mismatch {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })?;
    // from_der lets a pair whose match cannot be judged through; Go refuses those too.
    pair.keys_match().map_err(|source| Error::Mismatch {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })?;
    Ok(pair)
}
