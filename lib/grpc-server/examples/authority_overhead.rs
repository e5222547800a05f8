//! What the `:authority` rewriting costs: `cargo run --release -p csi-grpc-server --example
//! authority_overhead [calls]`.
//!
//! 1. The rewriter alone: nanoseconds per header block of a gRPC request as grpc-go writes it.
//! 2. Whole calls: `GetInfo` round trips over a unix socket with tonic's client, served from
//!    plain accepted sockets and from `csi_grpc_server::incoming`, alternating in rounds so both
//!    see the same machine load; the median per-call time of each and their ratio.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use csi_grpc_server::authority::{PREFACE, Rewriter};
use csi_proto::pluginregistration::v1 as reg;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

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
            name: "hostpath.csi.k8s.io".into(),
            endpoint: "/var/lib/kubelet/plugins/csi-hostpath/csi.sock".into(),
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

fn rewriter_ns_per_block() -> f64 {
    let fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/pluginregistration.Registration/GetInfo"),
        (
            b":authority",
            b"/var/lib/kubelet/plugins_registry/hostpath.csi.k8s.io-reg.sock",
        ),
        (b"content-type", b"application/grpc"),
        (b"user-agent", b"grpc-go/1.79.3"),
        (b"te", b"trailers"),
        (b"grpc-timeout", b"999952u"),
    ];
    // Huffman-coded and indexed, as grpc-go writes its headers.
    let mut encoder = httlib_hpack::Encoder::default();
    let flags = httlib_hpack::Encoder::BEST_FORMAT
        | httlib_hpack::Encoder::WITH_INDEXING
        | httlib_hpack::Encoder::HUFFMAN_NAME
        | httlib_hpack::Encoder::HUFFMAN_VALUE;
    let blocks = 100_000;
    let mut input = PREFACE.to_vec();
    for i in 0..blocks {
        let mut block = Vec::new();
        for (name, value) in &fields {
            encoder
                .encode((name.to_vec(), value.to_vec(), flags), &mut block)
                .expect("encodable");
        }
        let len = block.len();
        input.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, 1, 4]);
        input.extend_from_slice(&(1 + 2 * i as u32).to_be_bytes());
        input.extend_from_slice(&block);
    }
    let mut out = BytesMut::with_capacity(input.len() * 4);
    let mut rewriter = Rewriter::new();
    let started = Instant::now();
    rewriter.push(&input, &mut out).expect("valid input");
    started.elapsed().as_nanos() as f64 / f64::from(blocks)
}

async fn serve(lenient: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let router = tonic::transport::Server::builder().add_service(
        reg::registration_server::RegistrationServer::new(Registration),
    );
    if lenient {
        tokio::spawn(router.serve_with_incoming(csi_grpc_server::incoming(listener)));
    } else {
        tokio::spawn(router.serve_with_incoming(UnixListenerStream::new(listener)));
    }
    (dir, path)
}

async fn client(
    path: std::path::PathBuf,
) -> reg::registration_client::RegistrationClient<tonic::transport::Channel> {
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .unwrap();
    reg::registration_client::RegistrationClient::new(channel)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("calls: a number"))
        .unwrap_or(20_000);
    println!(
        "rewriter: {:.0} ns per request header block",
        rewriter_ns_per_block()
    );

    let (_plain_dir, plain_path) = serve(false).await;
    let (_lenient_dir, lenient_path) = serve(true).await;
    let mut plain = client(plain_path).await;
    let mut lenient = client(lenient_path).await;
    let (mut plain_times, mut lenient_times) = (Vec::new(), Vec::new());
    let rounds = 20;
    for _ in 0..rounds {
        for (client, times) in [
            (&mut plain, &mut plain_times),
            (&mut lenient, &mut lenient_times),
        ] {
            for _ in 0..calls / rounds {
                let started = Instant::now();
                client.get_info(reg::InfoRequest {}).await.unwrap();
                times.push(started.elapsed());
            }
        }
    }
    let (p, l) = (median(plain_times), median(lenient_times));
    println!(
        "GetInfo over a unix socket, median of {calls} calls each: plain {:.1} µs, with the rewriting {:.1} µs (×{:.3})",
        p.as_secs_f64() * 1e6,
        l.as_secs_f64() * 1e6,
        l.as_secs_f64() / p.as_secs_f64()
    );
}
