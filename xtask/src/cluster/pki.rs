//! The local cluster's certificates and keys, and the kubeconfig files that carry them.
//!
//! One CA signs everything: the kube-apiserver's serving certificate and the admin client
//! certificate (the API server trusts it through `--client-ca-file`). The ServiceAccount token
//! signing key is separate, as in a real cluster. All keys are ECDSA P-256: rcgen on ring cannot
//! generate RSA keys, and every Kubernetes component here accepts EC keys in PKCS#8 PEM.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Names the kube-apiserver's serving certificate is valid for: how we reach it (127.0.0.1,
/// localhost) and how in-cluster clients name it (the `kubernetes` Service and its ClusterIP,
/// the first address of `--service-cluster-ip-range=10.0.0.0/24`).
const APISERVER_NAMES: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "10.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Where each file of the PKI lives; every path is inside one directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    /// Kept so a test can sign a client certificate for a user of its own.
    pub ca_key: PathBuf,
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// Signs ServiceAccount tokens (kube-apiserver `--service-account-signing-key-file`,
    /// kube-controller-manager `--service-account-private-key-file`).
    pub service_account_key: PathBuf,
    /// Verifies them (kube-apiserver `--service-account-key-file`).
    pub service_account_pub: PathBuf,
}

impl Pki {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            apiserver_cert: dir.join("apiserver.crt"),
            apiserver_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            service_account_key: dir.join("service-account.key"),
            service_account_pub: dir.join("service-account.pub"),
        }
    }

    /// Generates a fresh CA, serving and client certificates and the token signing key into
    /// `dir` (created if missing). Every `up` that starts processes makes a new PKI: etcd's
    /// data is fresh too, so nothing signed by an older CA survives.
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pki = Self::in_dir(dir);

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name = name("csi-sidecars-local-ca", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        write_private(&pki.ca_key, &ca_key.serialize_pem())?;
        let ca = Issuer::new(ca_params, ca_key);
        write_public(&pki.ca_cert, &ca_cert.pem())?;

        let names: Vec<String> = APISERVER_NAMES.iter().map(|s| s.to_string()).collect();
        let mut serving = CertificateParams::new(names)?;
        serving.distinguished_name = name("kube-apiserver", None);
        serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_key = KeyPair::generate()?;
        let serving_cert = serving.signed_by(&serving_key, &ca)?;
        write_public(&pki.apiserver_cert, &serving_cert.pem())?;
        write_private(&pki.apiserver_key, &serving_key.serialize_pem())?;

        // The API server maps a client certificate's CN to the user and each O to a group;
        // system:masters is bound to cluster-admin by RBAC's bootstrap policy.
        let mut admin = CertificateParams::new(Vec::<String>::new())?;
        admin.distinguished_name = name("admin", Some("system:masters"));
        admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_key = KeyPair::generate()?;
        let admin_cert = admin.signed_by(&admin_key, &ca)?;
        write_public(&pki.admin_cert, &admin_cert.pem())?;
        write_private(&pki.admin_key, &admin_key.serialize_pem())?;

        let sa_key = KeyPair::generate()?;
        write_private(&pki.service_account_key, &sa_key.serialize_pem())?;
        write_public(&pki.service_account_pub, &sa_key.public_key_pem())?;

        Ok(pki)
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn write_public(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_mode(path, contents, 0o644)
}

/// Private keys and kubeconfigs (which embed keys or tokens) are readable by their owner only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_mode(path, contents, 0o600)
}

fn write_mode(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    // Remove first: `mode` only applies when the file is created.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing old {}", path.display())),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// How a kubeconfig's user proves who it is.
#[derive(Debug)]
pub enum Credentials {
    ClientCertificate { cert_pem: String, key_pem: String },
    Token(String),
}

/// A kubeconfig with one cluster, one user and one context, certificates embedded so the file
/// works from any directory and can be copied. Every value is either base64, a URL we built or
/// a Kubernetes name, none of which needs YAML quoting; we still quote the strings.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, credentials: &Credentials) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user_fields = match credentials {
        Credentials::ClientCertificate { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        ),
        Credentials::Token(token) => format!("    token: {token}\n"),
    };
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: csi-sidecars-local\n\
         \x20 cluster:\n\
         \x20   server: {server}\n\
         \x20   certificate-authority-data: {ca}\n\
         users:\n\
         - name: \"{user}\"\n\
         \x20 user:\n\
         {user_fields}\
         contexts:\n\
         - name: csi-sidecars-local\n\
         \x20 context:\n\
         \x20   cluster: csi-sidecars-local\n\
         \x20   user: \"{user}\"\n\
         current-context: csi-sidecars-local\n",
        ca = b64(ca_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_every_file_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path()).unwrap();
        for path in [
            &pki.ca_cert,
            &pki.ca_key,
            &pki.apiserver_cert,
            &pki.apiserver_key,
            &pki.admin_cert,
            &pki.admin_key,
            &pki.service_account_key,
            &pki.service_account_pub,
        ] {
            let text = fs::read_to_string(path).unwrap();
            assert!(
                text.starts_with("-----BEGIN "),
                "{}: {text}",
                path.display()
            );
        }
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&pki.admin_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            fs::read_to_string(&pki.service_account_pub)
                .unwrap()
                .contains("PUBLIC KEY")
        );
    }

    #[test]
    fn regenerating_replaces_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::generate(dir.path()).unwrap();
        let before = fs::read_to_string(&first.ca_cert).unwrap();
        let second = Pki::generate(dir.path()).unwrap();
        assert_ne!(before, fs::read_to_string(&second.ca_cert).unwrap());
    }

    #[test]
    fn kubeconfig_parses_with_kube() {
        let text = kubeconfig(
            "https://127.0.0.1:6443",
            "-----BEGIN CERTIFICATE-----\n",
            "system:serviceaccount:default:x",
            &Credentials::Token("abc.def".into()),
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(
            parsed.current_context.as_deref(),
            Some("csi-sidecars-local")
        );
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(parsed.auth_infos[0].name, "system:serviceaccount:default:x");
        let cert = kubeconfig(
            "https://127.0.0.1:1",
            "ca",
            "admin",
            &Credentials::ClientCertificate {
                cert_pem: "c".into(),
                key_pem: "k".into(),
            },
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&cert).unwrap();
        let auth = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(auth.client_certificate_data.as_deref(), Some("Yw=="));
    }
}
