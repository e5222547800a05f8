//! A tonic server fed by `incoming()` answers requests whatever `:authority` they carry, where
//! the same server on plain accepted sockets resets the stream. The client here writes HTTP/2
//! frames by hand, so it can send what grpc-go and others send over unix sockets; the foreign
//! clients themselves (the kubelet's code, grpc-python) are exercised in the e2e suite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use csi_proto::pluginregistration::v1 as reg;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug)]
struct Registration;

#[tonic::async_trait]
impl reg::registration_server::Registration for Registration {
    async fn get_info(
        &self,
        _: Request<reg::InfoRequest>,
    ) -> Result<Response<reg::PluginInfo>, Status> {
        Ok(Response::new(reg::PluginInfo {
            r#type: "CSIPlugin".into(),
            name: "io.kubernetes.storage.mock".into(),
            endpoint: "/var/lib/kubelet/plugins/mock/csi.sock".into(),
            supported_versions: vec!["1.0.0".into()],
        }))
    }

    async fn notify_registration_status(
        &self,
        _: Request<reg::RegistrationStatus>,
    ) -> Result<Response<reg::RegistrationStatusResponse>, Status> {
        Ok(Response::new(reg::RegistrationStatusResponse {}))
    }
}

fn server() -> tonic::transport::server::Router {
    tonic::transport::Server::builder().add_service(
        reg::registration_server::RegistrationServer::new(Registration),
    )
}

/// How a call written frame by frame ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The response: grpc-status and the message bytes.
    Answered {
        grpc_status: String,
        message: Vec<u8>,
    },
    /// The server reset the stream with this HTTP/2 error code.
    Reset(u32),
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Calls `GetInfo` over `socket` with `authority` as `:authority` (absent for `None`).
async fn get_info(socket: &Path, authority: Option<&str>) -> Outcome {
    let mut conn = UnixStream::connect(socket).await.unwrap();
    let mut fields: Vec<(&[u8], &[u8])> = vec![(b":method", b"POST"), (b":scheme", b"http")];
    if let Some(authority) = authority {
        fields.push((b":authority", authority.as_bytes()));
    }
    fields.extend([
        (
            &b":path"[..],
            &b"/pluginregistration.Registration/GetInfo"[..],
        ),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]);
    let block = loona_hpack::Encoder::new().encode(fields);
    let mut request = PREFACE.to_vec();
    request.extend(frame(0x4, 0, 0, &[]));
    request.extend(frame(0x1, 0x4, 1, &block));
    request.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]));
    conn.write_all(&request).await.unwrap();

    let mut decoder = loona_hpack::Decoder::new();
    let mut message = Vec::new();
    let mut grpc_status = None;
    loop {
        let mut header = [0u8; 9];
        conn.read_exact(&mut header).await.unwrap();
        let len =
            (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload).await.unwrap();
        match header[3] {
            // SETTINGS: acknowledge, as every client must.
            0x4 if header[4] & 0x1 == 0 => conn.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap(),
            0x0 => message.extend_from_slice(&payload),
            0x1 => {
                for (name, value) in decoder.decode(&payload).unwrap() {
                    if name == b"grpc-status" {
                        grpc_status = Some(String::from_utf8(value).unwrap());
                    }
                }
                if header[4] & 0x1 != 0 {
                    return Outcome::Answered {
                        grpc_status: grpc_status.unwrap_or_default(),
                        message,
                    };
                }
            }
            0x3 => return Outcome::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap())),
            _ => {}
        }
    }
}

fn socket(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("plugin-reg.sock")
}

const AUTHORITIES: &[Option<&str>] = &[
    Some("/var/lib/kubelet/plugins_registry/io.kubernetes.storage.mock-reg.sock"),
    Some("unix:/var/lib/kubelet/plugins_registry/io.kubernetes.storage.mock-reg.sock"),
    Some(""),
    Some("localhost"),
    None,
];

#[tokio::test]
async fn every_authority_form_gets_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket(&dir);
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(server().serve_with_incoming(csi_grpc_server::incoming(listener)));
    let want = prost::Message::encode_to_vec(&reg::PluginInfo {
        r#type: "CSIPlugin".into(),
        name: "io.kubernetes.storage.mock".into(),
        endpoint: "/var/lib/kubelet/plugins/mock/csi.sock".into(),
        supported_versions: vec!["1.0.0".into()],
    });
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(want.len() as u32).to_be_bytes());
    framed.extend_from_slice(&want);
    for authority in AUTHORITIES {
        let outcome = tokio::time::timeout(Duration::from_secs(20), get_info(&path, *authority))
            .await
            .expect("an answer");
        assert_eq!(
            outcome,
            Outcome::Answered {
                grpc_status: "0".into(),
                message: framed.clone()
            },
            "authority {authority:?}"
        );
    }
    server.abort();
}

#[tokio::test]
async fn without_it_h2_resets_the_kubelets_request() {
    // The failure this crate exists for, kept as a test so that an `h2` that starts accepting
    // such authorities is noticed (the layer could then go).
    let dir = tempfile::tempdir().unwrap();
    let path = socket(&dir);
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(server().serve_with_incoming(UnixListenerStream::new(listener)));
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        get_info(&path, Some("/var/lib/kubelet/plugins_registry/x-reg.sock")),
    )
    .await
    .expect("an answer");
    assert_eq!(outcome, Outcome::Reset(0x1), "RST_STREAM(PROTOCOL_ERROR)");
    server.abort();
}
