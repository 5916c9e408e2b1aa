//! HTTP/1.1 at the byte level, for requests no well-behaved client sends: header names and
//! values that are not UTF-8 (HTTP allows obs-text, and Envoy forwards it), odd paths.
//!
//! [`RawUpstream`] accepts whatever Envoy forwards (the echo upstream's HTTP library refuses
//! non-ASCII header values) and answers 200 with the request head it received as the body, so
//! a test can check what reached the upstream byte for byte.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The largest request head the upstream reads, and the largest response the client reads.
const MAX_BYTES: usize = 4 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct RawResp {
    pub status: u16,
    /// Names lowercased, values lossily decoded (the filter's and Envoy's are ASCII).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `reason` of a JSON error body (the filter's local replies).
    pub fn reason(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("reason")?.as_str().map(str::to_owned)
    }

    /// The upstream that answered ([`RawUpstream`] names itself in `x-raw-upstream`).
    pub fn upstream(&self) -> Option<&str> {
        self.header("x-raw-upstream")
    }

    /// A request header as the [`RawUpstream`] received it: the raw bytes of its first value.
    pub fn upstream_saw(&self, name: &str) -> Option<Vec<u8>> {
        self.upstream()?;
        head_lines(&self.body).find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (k, v) = line.split_at(colon);
            if !k.eq_ignore_ascii_case(name.as_bytes()) {
                return None;
            }
            Some(v[1..].trim_ascii().to_vec())
        })
    }
}

fn head_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads until the end of the head (`\r\n\r\n`), EOF, or [`MAX_BYTES`].
fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while find(&buf, b"\r\n\r\n").is_none() && buf.len() < MAX_BYTES {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

/// Sends `request` (the whole request, head and any body, as bytes) to 127.0.0.1:`port` and
/// reads the response until the server closes the connection. The request should carry
/// `connection: close`.
pub fn send(port: u16, request: &[u8]) -> Result<RawResp, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_BYTES as u64)
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    parse_response(&raw)
}

/// A GET of `path` with `headers` (name, raw value bytes), `host: gw` unless given, and
/// `connection: close`.
pub fn get(port: u16, path: &[u8], headers: &[(&str, &[u8])]) -> RawResp {
    let mut req = Vec::new();
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.extend_from_slice(b"host: gw\r\n");
    }
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"connection: close\r\n\r\n");
    send(port, &req).unwrap_or_else(|e| panic!("GET {}: {e}", String::from_utf8_lossy(path)))
}

fn parse_response(raw: &[u8]) -> Result<RawResp, String> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| {
        format!(
            "no complete response head in {} bytes: {:?}",
            raw.len(),
            String::from_utf8_lossy(raw)
        )
    })?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(RawResp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| format!("bad chunk size {size_hex:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// An upstream on 127.0.0.1 (ephemeral port) that takes any request head, answers 200 with
/// `x-raw-upstream: <name>` and the head it received as the body, and closes the
/// connection. Stops on drop.
pub struct RawUpstream {
    name: String,
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawUpstream {
    pub fn start(name: &str) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("raw upstream {name}: cannot listen: {e}"));
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let name = name.to_owned();
            thread::Builder::new()
                .name(format!("raw-{name}"))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Ok(stream) = stream {
                            answer(&name, stream);
                        }
                    }
                })
                .expect("spawn raw upstream thread")
        };
        RawUpstream {
            name: name.to_owned(),
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// `(cluster name, port)`, the shape `Envoy::start` takes.
    pub fn cluster(&self) -> (&str, u16) {
        (&self.name, self.port)
    }
}

fn answer(name: &str, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let Ok(head) = read_head(&mut stream) else {
        return;
    };
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nx-raw-upstream: {name}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        head.len()
    )
    .into_bytes();
    resp.extend_from_slice(&head);
    let _ = stream.write_all(&resp);
    let _ = stream.shutdown(Shutdown::Both);
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
