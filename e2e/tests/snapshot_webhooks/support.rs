//! What the webhook tests share: a CA and a serving certificate for 127.0.0.1, our webhook
//! binaries as processes, AdmissionReviews sent to them over verified TLS, and unstructured
//! access to the snapshot kinds in any version.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use csi_e2e_support::E2eEnv;
use csi_test_support::ChildProcess;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A CA the test makes, and a serving certificate for 127.0.0.1 it signed.
pub struct WebhookPki {
    _dir: tempfile::TempDir,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The serving certificate file.
    pub cert: PathBuf,
    /// Its key file.
    pub key: PathBuf,
}

impl WebhookPki {
    pub fn generate() -> anyhow::Result<WebhookPki> {
        let dir = tempfile::tempdir()?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "snapshot-webhooks-e2e-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, ca_key);

        let mut serving = CertificateParams::new(vec!["127.0.0.1".to_string()])?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "snapshot-webhook");
        serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_key = KeyPair::generate()?;
        let serving_cert = serving.signed_by(&serving_key, &ca)?;
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, serving_cert.pem())?;
        std::fs::write(&key, serving_key.serialize_pem())?;
        Ok(WebhookPki {
            _dir: dir,
            ca_pem: ca_cert.pem(),
            cert,
            key,
        })
    }

    /// The `caBundle` of a webhook registration.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

/// A port nobody listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One of our webhook binaries, serving on `port` with `pki`'s certificate.
pub struct Webhook {
    pub process: ChildProcess,
    pub port: u16,
}

impl Webhook {
    pub async fn start(
        env: &E2eEnv,
        binary: &str,
        pki: &WebhookPki,
        extra: &[String],
    ) -> anyhow::Result<Webhook> {
        let port = free_port()?;
        let mut args = vec![
            format!("--tls-cert-file={}", pki.cert.display()),
            format!("--tls-private-key-file={}", pki.key.display()),
            format!("--port={port}"),
            "-v=4".to_string(),
        ];
        args.extend(extra.iter().cloned());
        let process = ChildProcess::spawn(env.binary(binary)?, &args)?;
        let webhook = Webhook { process, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((status, body)) = webhook.request(pki, "GET", "/readyz", None).await
                && status == 200
                && body == "ok"
            {
                return Ok(webhook);
            }
            if csi_e2e_support::has_exited(&webhook.process) || Instant::now() > deadline {
                bail!(
                    "{binary} did not become ready:\n{}",
                    csi_e2e_support::tail(&webhook.process.logs(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One HTTPS request, the server verified against the test's CA for 127.0.0.1.
    pub async fn request(
        &self,
        pki: &WebhookPki,
        method: &str,
        path: &str,
        json: Option<&Value>,
    ) -> anyhow::Result<(u16, String)> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut tls = connector
            .connect(rustls::pki_types::ServerName::try_from("127.0.0.1")?, tcp)
            .await?;
        let body = json.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        let response = String::from_utf8(response)?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("malformed HTTP response")?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .context("no status")?
            .parse()?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    /// Sends `request` (an AdmissionRequest) to `path`; `Ok(())` if admitted, else the message.
    pub async fn admit(
        &self,
        pki: &WebhookPki,
        path: &str,
        request: Value,
    ) -> anyhow::Result<Result<(), String>> {
        let review = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        });
        let (status, body) = self.request(pki, "POST", path, Some(&review)).await?;
        if status != 200 {
            bail!("{path} answered {status}: {body}");
        }
        let answer: Value = serde_json::from_str(&body)?;
        let response = &answer["response"];
        if response["allowed"].as_bool() == Some(true) {
            Ok(Ok(()))
        } else {
            Ok(Err(response["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()))
        }
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// The API of `kind` (plural `plural`) in `group/version`, unstructured.
pub fn api(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// An object from JSON.
pub fn object(value: Value) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(value)?)
}

/// A random suffix for names.
pub fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}", std::process::id(), nanos)
}
