use super::*;

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

fn h(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

fn request_headers(authority: Option<&str>) -> Headers {
    let mut headers = vec![h(":method", "POST"), h(":scheme", "http")];
    if let Some(authority) = authority {
        headers.push(h(":authority", authority));
    }
    headers.extend([
        h(":path", "/pluginregistration.Registration/GetInfo"),
        h("content-type", "application/grpc"),
        h("te", "trailers"),
        h("user-agent", "grpc-go/1.79.3"),
    ]);
    headers
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_frame_header(&mut out, payload.len(), kind, flags, stream_id);
    out.extend_from_slice(payload);
    out.to_vec()
}

/// A client's bytes: the preface, an empty SETTINGS frame, then `frames`.
fn client_stream(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x4, 0, 0, &[]));
    for f in frames {
        bytes.extend_from_slice(f);
    }
    bytes
}

fn rewrite_all(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut rewriter = Rewriter::new();
    let mut out = BytesMut::new();
    rewriter.push(bytes, &mut out)?;
    Ok(out.to_vec())
}

/// What the server sees: every frame, with the header blocks (HEADERS + CONTINUATIONs)
/// decoded by one decoder for the whole connection, as `h2` decodes them.
#[derive(Debug, PartialEq)]
enum Seen {
    Headers {
        stream_id: u32,
        end_stream: bool,
        priority: Option<[u8; 5]>,
        headers: Headers,
        frames: usize,
    },
    Other {
        kind: u8,
        flags: u8,
        payload: Vec<u8>,
    },
}

fn server_view(bytes: &[u8]) -> Vec<Seen> {
    assert!(bytes.starts_with(PREFACE), "the preface is passed on first");
    let mut rest = &bytes[PREFACE.len()..];
    let mut decoder = loona_hpack::Decoder::new();
    let mut seen = Vec::new();
    struct Open {
        stream_id: u32,
        end_stream: bool,
        priority: Option<[u8; 5]>,
        block: Vec<u8>,
        frames: usize,
    }
    let mut open: Option<Open> = None;
    while !rest.is_empty() {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let stream_id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        let payload = &rest[9..9 + len];
        assert!(len <= SAFE_FRAME_PAYLOAD || kind != FRAME_HEADERS && kind != FRAME_CONTINUATION);
        rest = &rest[9 + len..];
        match kind {
            FRAME_HEADERS => {
                assert!(open.is_none());
                assert_eq!(flags & FLAG_PADDED, 0, "padding is dropped");
                let (priority, fragment) = split_headers_payload(flags, payload).unwrap();
                open = Some(Open {
                    stream_id,
                    end_stream: flags & FLAG_END_STREAM != 0,
                    priority,
                    block: fragment.to_vec(),
                    frames: 1,
                });
            }
            FRAME_CONTINUATION => {
                let block = open.as_mut().expect("CONTINUATION inside a block");
                assert_eq!(block.stream_id, stream_id);
                block.block.extend_from_slice(payload);
                block.frames += 1;
            }
            _ => {
                assert!(open.is_none());
                seen.push(Seen::Other {
                    kind,
                    flags,
                    payload: payload.to_vec(),
                });
                continue;
            }
        }
        if flags & FLAG_END_HEADERS != 0 {
            let open = open.take().unwrap();
            seen.push(Seen::Headers {
                stream_id: open.stream_id,
                end_stream: open.end_stream,
                priority: open.priority,
                headers: decoder.decode(&open.block).unwrap(),
                frames: open.frames,
            });
        }
    }
    assert!(open.is_none(), "no header block is left open");
    seen
}

fn encode(encoder: &mut loona_hpack::Encoder<'_>, headers: &Headers) -> Vec<u8> {
    encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])))
}

fn only_headers(seen: &[Seen]) -> Vec<&Headers> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Headers { headers, .. } => Some(headers),
            Seen::Other { .. } => None,
        })
        .collect()
}

fn authority_of(headers: &Headers) -> Option<&[u8]> {
    headers
        .iter()
        .find(|(n, _)| n == b":authority")
        .map(|(_, v)| &v[..])
}

#[test]
fn authority_forms_the_go_server_accepts() {
    // (what the client sends, what the server gets)
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        (
            "socket path, as the kubelet's grpc-go sends it",
            Some("/var/lib/kubelet/plugins_registry/hostpath.csi.k8s.io-reg.sock"),
            Some("localhost"),
        ),
        (
            "unix: target as authority",
            Some("unix:/var/lib/kubelet/plugins_registry/x-reg.sock"),
            Some("localhost"),
        ),
        (
            "unix:// URL as authority",
            Some("unix:///csi/csi.sock"),
            Some("localhost"),
        ),
        (
            "percent-encoded path",
            Some("%2Fvar%2Flib%2Fkubelet%2Fplugins_registry%2Fx-reg.sock"),
            Some("localhost"),
        ),
        ("empty", Some(""), Some("localhost")),
        ("absent", None, None),
        ("localhost", Some("localhost"), Some("localhost")),
        (
            "host and port",
            Some("registration.sock:80"),
            Some("registration.sock:80"),
        ),
        ("space", Some("a b"), Some("localhost")),
    ];
    for (name, sent, want) in cases {
        let headers = request_headers(*sent);
        let block = encode(&mut loona_hpack::Encoder::new(), &headers);
        let bytes = client_stream(&[frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &block)]);
        let seen = server_view(&rewrite_all(&bytes).unwrap());
        let got = only_headers(&seen);
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(
            authority_of(got[0]),
            want.map(str::as_bytes),
            "{name}: :authority"
        );
        let others = |hs: &Headers| -> Headers {
            hs.iter()
                .filter(|(n, _)| n != b":authority")
                .cloned()
                .collect()
        };
        assert_eq!(
            others(got[0]),
            others(&headers),
            "{name}: the other fields, in order"
        );
        if let Some(want) = want {
            assert!(
                acceptable_authority(want.as_bytes()),
                "{name}: h2 accepts what we pass on"
            );
        }
    }
}

#[test]
fn other_frames_pass_unchanged() {
    let settings = frame(0x4, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]);
    let window_update = frame(0x8, 0, 0, &[0, 0x0f, 0, 0]);
    let data = frame(0x0, FLAG_END_STREAM, 1, &[0, 0, 0, 0, 0]);
    let ping = frame(0x6, 0, 0, b"12345678");
    let bytes = client_stream(&[settings.clone(), window_update, data.clone(), ping]);
    assert_eq!(rewrite_all(&bytes).unwrap(), bytes);
}

#[test]
fn dynamic_table_of_the_client_is_followed_across_blocks() {
    // The client indexes fields (its own names too) and refers to them in later blocks; the
    // server must decode every block to what the client meant.
    let mut encoder = loona_hpack::Encoder::new();
    let first = request_headers(Some("/run/x-reg.sock"));
    let mut second = request_headers(Some("/run/x-reg.sock"));
    second[3] = h(
        ":path",
        "/pluginregistration.Registration/NotifyRegistrationStatus",
    );
    second.push(h("x-custom", "v"));
    let mut third = second.clone();
    third.push(h("x-custom-2", "w"));
    let blocks: Vec<Vec<u8>> = [&first, &first, &second, &third]
        .iter()
        .map(|hs| encode(&mut encoder, hs))
        .collect();
    assert!(
        blocks[1].len() < blocks[0].len(),
        "the client really uses its dynamic table: {:?}",
        blocks.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let frames: Vec<Vec<u8>> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| frame(FRAME_HEADERS, FLAG_END_HEADERS, 1 + 2 * i as u32, b))
        .collect();
    let seen = server_view(&rewrite_all(&client_stream(&frames)).unwrap());
    let got = only_headers(&seen);
    assert_eq!(got.len(), 4);
    for (sent, got) in [&first, &first, &second, &third].iter().zip(got) {
        let mut want = (*sent).clone();
        want[2].1 = b"localhost".to_vec();
        assert_eq!(got, &want);
    }
}

#[test]
fn huffman_coded_request_of_rfc_7541() {
    // RFC 7541, appendix C.4.1: a request header block with Huffman-coded strings.
    let block = [
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
    ];
    let bytes = client_stream(&[frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &block)]);
    let seen = server_view(&rewrite_all(&bytes).unwrap());
    assert_eq!(
        only_headers(&seen)[0],
        &vec![
            h(":method", "GET"),
            h(":scheme", "http"),
            h(":path", "/"),
            h(":authority", "www.example.com"),
        ]
    );
}

#[test]
fn continuation_padding_priority_and_end_stream_are_kept_in_meaning() {
    let headers = request_headers(Some("/a/b.sock"));
    let block = encode(&mut loona_hpack::Encoder::new(), &headers);
    let (a, b) = block.split_at(block.len() / 2);
    let (b, c) = b.split_at(b.len() / 2);
    // HEADERS with PADDED (3 bytes of padding) and PRIORITY, then two CONTINUATIONs.
    let mut payload = vec![3u8];
    payload.extend_from_slice(&[0x80, 0, 0, 0x03, 42]);
    payload.extend_from_slice(a);
    payload.extend_from_slice(&[0, 0, 0]);
    let frames = vec![
        frame(
            FRAME_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            5,
            &payload,
        ),
        frame(FRAME_CONTINUATION, 0, 5, b),
        frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 5, c),
    ];
    let seen = server_view(&rewrite_all(&client_stream(&frames)).unwrap());
    let Seen::Headers {
        stream_id,
        end_stream,
        priority,
        headers: got,
        frames,
    } = &seen[1]
    else {
        panic!("expected headers, got {seen:?}");
    };
    assert_eq!(*stream_id, 5);
    assert!(*end_stream);
    assert_eq!(*priority, Some([0x80, 0, 0, 0x03, 42]));
    assert_eq!(*frames, 1, "a small block goes out as one frame");
    assert_eq!(authority_of(got), Some(&b"localhost"[..]));
}

#[test]
fn a_large_block_goes_out_in_continuation_frames() {
    let mut headers = request_headers(Some("/a/b.sock"));
    headers.push(h("x-big", &"v".repeat(40_000)));
    let block = encode(&mut loona_hpack::Encoder::new(), &headers);
    let frames: Vec<Vec<u8>> = block
        .chunks(10_000)
        .enumerate()
        .map(|(i, chunk)| {
            let last = (i + 1) * 10_000 >= block.len();
            let kind = if i == 0 {
                FRAME_HEADERS
            } else {
                FRAME_CONTINUATION
            };
            frame(kind, if last { FLAG_END_HEADERS } else { 0 }, 1, chunk)
        })
        .collect();
    let seen = server_view(&rewrite_all(&client_stream(&frames)).unwrap());
    let Seen::Headers {
        headers: got,
        frames,
        ..
    } = &seen[1]
    else {
        panic!("expected headers");
    };
    assert_eq!(*frames, 3, "40 KB of literals in 16 KiB frames");
    assert_eq!(got.last(), headers.last());
}

#[test]
fn bytes_arriving_one_at_a_time_give_the_same_result() {
    let mut encoder = loona_hpack::Encoder::new();
    let frames = vec![
        frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS,
            1,
            &encode(&mut encoder, &request_headers(Some("/x.sock"))),
        ),
        frame(0x0, FLAG_END_STREAM, 1, &[0, 0, 0, 0, 0]),
        frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS,
            3,
            &encode(&mut encoder, &request_headers(Some("/x.sock"))),
        ),
    ];
    let bytes = client_stream(&frames);
    let whole = rewrite_all(&bytes).unwrap();
    let mut rewriter = Rewriter::new();
    let mut out = BytesMut::new();
    for byte in &bytes {
        rewriter.push(std::slice::from_ref(byte), &mut out).unwrap();
    }
    assert_eq!(out.to_vec(), whole);
}

#[test]
fn not_http2_passes_through_for_the_server_to_refuse() {
    let bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(rewrite_all(bytes).unwrap(), bytes);
}

#[test]
fn broken_framing_is_an_error() {
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "CONTINUATION without HEADERS",
            vec![frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, &[0x82])],
        ),
        (
            "DATA inside a header block",
            vec![frame(FRAME_HEADERS, 0, 1, &[0x82]), frame(0x0, 0, 1, &[0])],
        ),
        (
            "CONTINUATION of another stream",
            vec![
                frame(FRAME_HEADERS, 0, 1, &[0x82]),
                frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 3, &[0x86]),
            ],
        ),
        (
            "index out of the table",
            vec![frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &[0xff, 0x10])],
        ),
        (
            "padding longer than the frame",
            vec![frame(
                FRAME_HEADERS,
                FLAG_END_HEADERS | FLAG_PADDED,
                1,
                &[9, 0x82],
            )],
        ),
    ];
    for (name, frames) in cases {
        let err = rewrite_all(&client_stream(&frames)).expect_err(name);
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{name}");
    }
}

#[test]
fn hpack_integers_of_rfc_7541() {
    // RFC 7541, C.1.1 to C.1.3 (10 and 1337 with a 5-bit prefix, 42 with an 8-bit prefix).
    let mut out = Vec::new();
    encode_integer(10, 5, 0, &mut out);
    assert_eq!(out, [0x0a]);
    out.clear();
    encode_integer(1337, 5, 0, &mut out);
    assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    out.clear();
    encode_integer(42, 8, 0, &mut out);
    assert_eq!(out, [0x2a]);
}

#[test]
fn huffman_coded_and_indexed_blocks_as_grpc_go_writes_them() {
    let mut encoder = httlib_hpack::Encoder::default();
    let flags = httlib_hpack::Encoder::BEST_FORMAT
        | httlib_hpack::Encoder::WITH_INDEXING
        | httlib_hpack::Encoder::HUFFMAN_NAME
        | httlib_hpack::Encoder::HUFFMAN_VALUE;
    let mut sensitive = request_headers(Some("%2Frun%2Fplugins_registry%2Fx-reg.sock"));
    sensitive.push(h("authorization", "Bearer not-to-be-indexed"));
    let requests = [
        request_headers(Some("%2Frun%2Fplugins_registry%2Fx-reg.sock")),
        request_headers(Some("%2Frun%2Fplugins_registry%2Fx-reg.sock")),
        sensitive,
    ];
    let frames: Vec<Vec<u8>> = requests
        .iter()
        .enumerate()
        .map(|(i, headers)| {
            let mut block = Vec::new();
            for (name, value) in headers {
                let flags = if name == b"authorization" {
                    httlib_hpack::Encoder::NEVER_INDEXED | httlib_hpack::Encoder::HUFFMAN_VALUE
                } else {
                    flags
                };
                encoder
                    .encode((name.clone(), value.clone(), flags), &mut block)
                    .unwrap();
            }
            frame(FRAME_HEADERS, FLAG_END_HEADERS, 1 + 2 * i as u32, &block)
        })
        .collect();
    let rewritten = rewrite_all(&client_stream(&frames)).unwrap();
    let seen = server_view(&rewritten);
    let got = only_headers(&seen);
    assert_eq!(got.len(), 3);
    for (sent, got) in requests.iter().zip(got) {
        let mut want = sent.clone();
        want[2].1 = b"localhost".to_vec();
        assert_eq!(got, &want);
    }
    // The sensitive field stays "never indexed" for the server.
    let never_indexed = [&[0x10u8][..], &[13], b"authorization"].concat();
    assert!(
        rewritten
            .windows(never_indexed.len())
            .any(|w| w == never_indexed),
        "authorization is passed on as a never-indexed literal"
    );
}
