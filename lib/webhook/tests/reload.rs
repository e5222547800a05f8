//! The serving certificate is reloaded when its files change: upstream's `TestWebhookCertReload`
//! (external-snapshotter v8.7.0 `pkg/webhook/webhook_test.go`, the same test as v8.1's
//! `pkg/validation-webhook/webhook_test.go`), plus what a TLS client is shown and what happens
//! to a pair that does not load.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use csi_webhook::{CertWatcher, ServerOptions, serve};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A fresh self-signed certificate for 127.0.0.1 with a new key, written as upstream's
/// `generateTestCertKeyPair` writes it (PEM certificate, PKCS#8 PEM key; ECDSA here, as rcgen
/// on ring cannot make RSA keys).
fn generate_pair(cert: &Path, key: &Path) {
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        format!("{:?}", Instant::now()),
    );
    let certificate = params.self_signed(&key_pair).unwrap();
    std::fs::write(cert, certificate.pem()).unwrap();
    std::fs::write(key, key_pair.serialize_pem()).unwrap();
}

async fn wait_for_change(watcher: &CertWatcher, old: &[u8]) -> Arc<rustls::sign::CertifiedKey> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = watcher.current();
        if current.cert[0].as_ref() != old {
            return current;
        }
        assert!(Instant::now() < deadline, "new cert was not updated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn test_webhook_cert_reload() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    generate_pair(&cert, &key);

    let watcher = Arc::new(CertWatcher::new(&cert, &key).unwrap());
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    tokio::spawn(serve(
        listener,
        watcher.clone(),
        Router::new(),
        ServerOptions::default(),
        shutdown.clone(),
    ));

    // Original cert should not change with no file changes.
    let original = watcher.current();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = watcher.current();
    assert_eq!(
        again.cert[0], original.cert[0],
        "new cert was updated when it should not have been"
    );
    assert_eq!(
        again.key.public_key(),
        original.key.public_key(),
        "new key was updated when it should not have been"
    );

    // Certificate should consistently change with a file change.
    let mut previous = original;
    for _ in 0..5 {
        generate_pair(&cert, &key);
        let new = wait_for_change(&watcher, previous.cert[0].as_ref()).await;
        assert_ne!(
            new.key.public_key(),
            previous.key.public_key(),
            "new key was not updated"
        );
        previous = new;
    }
    shutdown.cancel();
}

/// Records the certificate the server presented and accepts it.
#[derive(Debug, Default)]
struct Recorder(Mutex<Option<CertificateDer<'static>>>);

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One HTTPS GET of `path`; returns the certificate shown and the response.
async fn get_over_tls(port: u16, path: &str) -> (CertificateDer<'static>, String) {
    let recorder = Arc::new(Recorder::default());
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response).await;
    let shown = recorder.0.lock().unwrap().clone().unwrap();
    (shown, response)
}

#[tokio::test]
async fn handshakes_show_the_reloaded_certificate_and_a_bad_pair_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    generate_pair(&cert, &key);
    let watcher = Arc::new(CertWatcher::new(&cert, &key).unwrap());
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Router::new().route("/readyz", get(|| async { "ok" }));
    tokio::spawn(serve(
        listener,
        watcher.clone(),
        router,
        ServerOptions::default(),
        shutdown.clone(),
    ));

    let (first, response) = get_over_tls(port, "/readyz").await;
    assert_eq!(first, watcher.current().cert[0]);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");

    generate_pair(&cert, &key);
    let second = wait_for_change(&watcher, first.as_ref()).await;
    let (shown, _) = get_over_tls(port, "/readyz").await;
    assert_eq!(shown, second.cert[0]);

    // A key that does not belong to the certificate: the old pair stays in service.
    let other = dir.path().join("other.crt");
    generate_pair(&other, &key);
    // Several polls later the server still shows the last good pair.
    tokio::time::sleep(3 * csi_webhook::certs::POLL_INTERVAL).await;
    let (shown, response) = get_over_tls(port, "/readyz").await;
    assert_eq!(shown, second.cert[0]);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    shutdown.cancel();
}

#[test]
fn a_pair_that_fails_to_load_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    generate_pair(&cert, &key);
    let watcher = CertWatcher::new(&cert, &key).unwrap();
    let before = watcher.current();
    assert!(!watcher.reload_if_changed().unwrap(), "nothing changed yet");

    generate_pair(&dir.path().join("other.crt"), &key);
    let err = watcher.reload_if_changed().unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    assert_eq!(watcher.current().cert[0], before.cert[0]);

    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(watcher.reload_if_changed().is_err());
    assert_eq!(watcher.current().cert[0], before.cert[0]);

    generate_pair(&cert, &key);
    assert!(watcher.reload_if_changed().unwrap());
    assert_ne!(watcher.current().cert[0], before.cert[0]);
}

#[test]
fn a_missing_or_mismatched_pair_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let err = CertWatcher::new(&cert, &key).unwrap_err().to_string();
    assert!(err.contains("tls.crt"), "{err}");

    generate_pair(&cert, &key);
    let other_key = dir.path().join("other.key");
    generate_pair(&dir.path().join("other.crt"), &other_key);
    let err = CertWatcher::new(&cert, &other_key).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
}
