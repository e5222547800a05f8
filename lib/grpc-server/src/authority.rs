//! The server side of an HTTP/2 connection, with every request's `:authority` made acceptable
//! to `h2` before `h2` reads it.
//!
//! gRPC clients that dial a unix socket send all kinds of `:authority`: grpc-go as the kubelet
//! dials its plugin-registration sockets sends the socket path (`/var/lib/kubelet/...`), other
//! clients send a percent-encoded path or `unix:/path`, some send nothing or an empty value.
//! The Go gRPC server accepts them all. `h2` (under tonic and hyper) parses `:authority` as a URI
//! authority and answers anything else with `RST_STREAM(PROTOCOL_ERROR)`, so those clients fail
//! with "stream terminated by RST_STREAM" before the request reaches a service.
//!
//! [`LenientAuthority`] sits between the accepted socket and `h2`. It passes the client's bytes
//! through frame by frame; header blocks (`HEADERS` and their `CONTINUATION`s) are decoded with
//! an HPACK decoder that follows the client's dynamic table, an `:authority` that is not a valid
//! URI authority (or is empty) is replaced by `localhost`, and the block is encoded again with
//! literal fields only ("without indexing"). The server's HPACK decoder therefore never sees a
//! dynamic-table entry, which keeps it consistent however the client indexes. What the server
//! writes goes to the client untouched.
//!
//! Re-encoding costs one HPACK decode and one plain encode per header block (a gRPC call has two
//! or three small ones); every other frame is copied as it is.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, BufMut as _, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;
use tracing::debug;

/// What a client sends first on an HTTP/2 connection (RFC 9113, section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The `:authority` that replaces one `h2` would reject.
pub const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";

const FRAME_HEADER_LEN: usize = 9;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The largest frame payload every HTTP/2 peer accepts (SETTINGS_MAX_FRAME_SIZE's minimum), so
/// the re-encoded blocks we write fit whatever the server announced.
const SAFE_FRAME_PAYLOAD: usize = 16_384;
/// The largest header block we collect before giving up on the connection. `h2` itself refuses
/// header lists past 16 KiB by default; this only bounds memory against a hostile client.
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// The largest dynamic table a client may ask our decoder for.
const MAX_DYNAMIC_TABLE: u32 = 1 << 16;
/// How many bytes one read of the socket asks for.
const READ_CHUNK: usize = 16 * 1024;

/// A server-side connection whose header blocks are rewritten so that `h2` accepts any
/// `:authority`; see the module documentation.
pub struct LenientAuthority<S> {
    inner: S,
    rewriter: Rewriter,
    /// Bytes ready for the server (`h2`).
    out: BytesMut,
    /// The client closed its side: nothing more will come after `out`.
    eof: bool,
}

impl<S> std::fmt::Debug for LenientAuthority<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LenientAuthority")
            .field("buffered_in", &self.rewriter.input.len())
            .field("buffered_out", &self.out.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<S> LenientAuthority<S> {
    /// Wraps an accepted connection.
    pub fn new(inner: S) -> Self {
        LenientAuthority {
            inner,
            rewriter: Rewriter::new(),
            out: BytesMut::new(),
            eof: false,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LenientAuthority<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // Read straight into the rewriter's input, without zeroing a buffer first.
            this.rewriter.input.reserve(READ_CHUNK);
            let read = ready!(poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.rewriter.input
            ))?;
            if read == 0 {
                this.eof = true;
                // Whatever is left is an incomplete frame; `h2` reports it as such.
                let rest = this.rewriter.input.split();
                this.out.unsplit(rest);
                continue;
            }
            this.rewriter.process(&mut this.out)?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LenientAuthority<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where the rewriter is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the connection preface; the number is how much of it has matched so far.
    Preface(usize),
    /// Reading frames.
    Frames,
    /// Not HTTP/2 with prior knowledge: everything is passed through for the server to refuse.
    PassThrough,
}

/// A header block whose `CONTINUATION` frames are still coming.
#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    /// END_STREAM and PRIORITY of the `HEADERS` frame.
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The client-to-server transformation, independent of any I/O: bytes in, bytes out.
pub struct Rewriter {
    phase: Phase,
    input: BytesMut,
    decoder: httlib_hpack::Decoder<'static>,
    pending: Option<PendingBlock>,
    /// How many `:authority` values were replaced (for the log line, once per connection).
    rewritten: u64,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter")
            .field("phase", &self.phase)
            .field("buffered", &self.input.len())
            .field("pending", &self.pending)
            .field("rewritten", &self.rewritten)
            .finish_non_exhaustive()
    }
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewriter {
    /// A rewriter at the start of a connection.
    pub fn new() -> Self {
        let mut decoder = httlib_hpack::Decoder::default();
        decoder.set_max_dynamic_size(MAX_DYNAMIC_TABLE);
        Rewriter {
            phase: Phase::Preface(0),
            input: BytesMut::new(),
            decoder,
            pending: None,
            rewritten: 0,
        }
    }

    /// Takes the next bytes the client sent and appends what the server should read to `out`.
    /// Incomplete frames are kept until the rest arrives.
    pub fn push(&mut self, bytes: &[u8], out: &mut BytesMut) -> io::Result<()> {
        self.input.extend_from_slice(bytes);
        self.process(out)
    }

    /// Handles what has accumulated in the input.
    fn process(&mut self, out: &mut BytesMut) -> io::Result<()> {
        if self.phase == Phase::PassThrough {
            out.unsplit(self.input.split());
            return Ok(());
        }
        if let Phase::Preface(matched) = self.phase {
            let want = PREFACE.len() - matched;
            let have = self.input.len().min(want);
            if self.input[..have] != PREFACE[matched..matched + have] {
                self.phase = Phase::PassThrough;
                out.unsplit(self.input.split());
                return Ok(());
            }
            out.extend_from_slice(&self.input.split_to(have));
            if have < want {
                self.phase = Phase::Preface(matched + have);
                return Ok(());
            }
            self.phase = Phase::Frames;
        }
        self.frames(out)
    }

    /// Handles every complete frame in the input.
    fn frames(&mut self, out: &mut BytesMut) -> io::Result<()> {
        while self.input.len() >= FRAME_HEADER_LEN {
            let len = (usize::from(self.input[0]) << 16)
                | (usize::from(self.input[1]) << 8)
                | usize::from(self.input[2]);
            if self.input.len() < FRAME_HEADER_LEN + len {
                break;
            }
            let kind = self.input[3];
            let flags = self.input[4];
            let stream_id =
                u32::from_be_bytes([self.input[5], self.input[6], self.input[7], self.input[8]])
                    & 0x7fff_ffff;
            let frame = self.input.split_to(FRAME_HEADER_LEN + len);
            let payload = &frame[FRAME_HEADER_LEN..];
            match kind {
                FRAME_HEADERS => {
                    if self.pending.is_some() {
                        return Err(protocol_error("HEADERS frame while a header block is open"));
                    }
                    let (priority, fragment) = split_headers_payload(flags, payload)?;
                    let block = PendingBlock {
                        stream_id,
                        flags: flags & (FLAG_END_STREAM | FLAG_PRIORITY),
                        priority,
                        fragment: fragment.to_vec(),
                    };
                    if flags & FLAG_END_HEADERS != 0 {
                        self.emit(block, out)?;
                    } else {
                        self.pending = Some(block);
                    }
                }
                FRAME_CONTINUATION => {
                    let Some(mut block) = self.pending.take() else {
                        return Err(protocol_error("CONTINUATION frame without a header block"));
                    };
                    if block.stream_id != stream_id {
                        return Err(protocol_error("CONTINUATION frame for another stream"));
                    }
                    if block.fragment.len() + payload.len() > MAX_HEADER_BLOCK {
                        return Err(protocol_error("header block too large"));
                    }
                    block.fragment.extend_from_slice(payload);
                    if flags & FLAG_END_HEADERS != 0 {
                        self.emit(block, out)?;
                    } else {
                        self.pending = Some(block);
                    }
                }
                _ if self.pending.is_some() => {
                    return Err(protocol_error(
                        "a frame other than CONTINUATION inside a header block",
                    ));
                }
                _ => out.extend_from_slice(&frame),
            }
        }
        Ok(())
    }

    /// Decodes a complete header block, fixes `:authority`, and writes it out as a `HEADERS`
    /// frame and as many `CONTINUATION` frames as it needs.
    fn emit(&mut self, block: PendingBlock, out: &mut BytesMut) -> io::Result<()> {
        let mut fields = Vec::new();
        let mut fragment = block.fragment;
        self.decoder
            .decode(&mut fragment, &mut fields)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("HPACK decoding of the client's headers failed: {e:?}"),
                )
            })?;
        let mut encoded =
            Vec::with_capacity(fields.iter().map(|(n, v, _)| n.len() + v.len() + 4).sum());
        let mut rewritten = false;
        for (name, value, flags) in &fields {
            let value: &[u8] = if name == b":authority" && !acceptable_authority(value) {
                rewritten = true;
                REPLACEMENT_AUTHORITY
            } else {
                value
            };
            let never_indexed = flags & httlib_hpack::Decoder::NEVER_INDEXED != 0;
            encode_literal(name, value, never_indexed, &mut encoded);
        }
        if rewritten {
            if self.rewritten == 0 {
                debug!(
                    replacement = "localhost",
                    "Replaced a client's HTTP/2 :authority that is not a host name (a socket path)"
                );
            }
            self.rewritten += 1;
        }

        let mut rest = &encoded[..];
        let first_room = SAFE_FRAME_PAYLOAD - block.priority.map_or(0, |p| p.len());
        let first = rest.len().min(first_room);
        let mut flags = block.flags;
        if first == rest.len() {
            flags |= FLAG_END_HEADERS;
        }
        let priority_len = block.priority.map_or(0, |p| p.len());
        write_frame_header(
            out,
            first + priority_len,
            FRAME_HEADERS,
            flags,
            block.stream_id,
        );
        if let Some(priority) = block.priority {
            out.extend_from_slice(&priority);
        }
        out.extend_from_slice(&rest[..first]);
        rest = &rest[first..];
        while !rest.is_empty() {
            let n = rest.len().min(SAFE_FRAME_PAYLOAD);
            let flags = if n == rest.len() { FLAG_END_HEADERS } else { 0 };
            write_frame_header(out, n, FRAME_CONTINUATION, flags, block.stream_id);
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        Ok(())
    }
}

/// Whether `h2` accepts `value` as `:authority`: a non-empty URI authority.
pub fn acceptable_authority(value: &[u8]) -> bool {
    !value.is_empty() && http::uri::Authority::try_from(value).is_ok()
}

/// Splits a `HEADERS` payload into its priority fields (if any) and its header block fragment,
/// dropping the padding.
fn split_headers_payload(flags: u8, payload: &[u8]) -> io::Result<(Option<[u8; 5]>, &[u8])> {
    let mut body = payload;
    let mut pad = 0usize;
    if flags & FLAG_PADDED != 0 {
        let (&n, rest) = body
            .split_first()
            .ok_or_else(|| protocol_error("PADDED HEADERS frame without a pad length"))?;
        pad = usize::from(n);
        body = rest;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        if body.len() < 5 {
            return Err(protocol_error(
                "HEADERS frame too short for its priority fields",
            ));
        }
        let mut p = [0u8; 5];
        p.copy_from_slice(&body[..5]);
        priority = Some(p);
        body = &body[5..];
    }
    if pad > body.len() {
        return Err(protocol_error(
            "HEADERS frame padding longer than its payload",
        ));
    }
    Ok((priority, &body[..body.len() - pad]))
}

fn write_frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: u32) {
    debug_assert!(len < 1 << 24);
    out.put_u8((len >> 16) as u8);
    out.put_u8((len >> 8) as u8);
    out.put_u8(len as u8);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream_id & 0x7fff_ffff);
}

/// A "literal header field without indexing — new name" (RFC 7541, section 6.2.2), or "never
/// indexed" (section 6.2.3) for a field the client marked so, with both strings sent raw (no
/// Huffman coding).
fn encode_literal(name: &[u8], value: &[u8], never_indexed: bool, out: &mut Vec<u8>) {
    out.push(if never_indexed { 0x10 } else { 0 });
    encode_string(name, out);
    encode_string(value, out);
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    encode_integer(s.len(), 7, 0, out);
    out.extend_from_slice(s);
}

/// An HPACK integer with an `prefix`-bit prefix (RFC 7541, section 5.1); `high` holds the bits
/// above the prefix in the first octet.
fn encode_integer(mut value: usize, prefix: u8, high: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("HTTP/2 protocol error from the client: {what}"),
    )
}

#[cfg(test)]
mod tests;
