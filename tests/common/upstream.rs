//! Echo upstreams: in-process HTTP servers that tell the test who answered and what arrived.

use std::io::Read;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use serde_json::{json, Value};

/// An HTTP server on 127.0.0.1 (ephemeral port) that answers every request with 200 and
/// `{"upstream": name, "method": .., "path": "<path?query>", "headers": {lowercased: value}, "body": ..}`.
/// Stops on drop.
pub struct EchoUpstream {
    name: String,
    port: u16,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl EchoUpstream {
    pub fn start(name: &str) -> EchoUpstream {
        let server = Arc::new(
            tiny_http::Server::http("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("echo upstream {name}: cannot listen: {e}")),
        );
        let port = server
            .server_addr()
            .to_ip()
            .expect("echo upstream listens on an IP address")
            .port();
        let thread = {
            let server = Arc::clone(&server);
            let name = name.to_owned();
            thread::Builder::new()
                .name(format!("echo-{name}"))
                .spawn(move || {
                    for req in server.incoming_requests() {
                        answer_echo(&name, req);
                    }
                })
                .expect("spawn echo upstream thread")
        };
        EchoUpstream {
            name: name.to_owned(),
            port,
            server,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `(cluster name, port)`, the shape `bootstrap::Gateway` takes.
    pub fn cluster(&self) -> (&str, u16) {
        (&self.name, self.port)
    }
}

fn answer_echo(name: &str, mut req: tiny_http::Request) {
    let mut headers = serde_json::Map::new();
    for h in req.headers() {
        let key = h.field.as_str().as_str().to_ascii_lowercase();
        let value = h.value.as_str().to_owned();
        let merged = match headers.get(&key).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {value}"),
            None => value,
        };
        headers.insert(key, Value::String(merged));
    }
    let mut body = String::new();
    let _ = req.as_reader().take(1 << 20).read_to_string(&mut body);
    let doc = json!({
        "upstream": name,
        "method": req.method().as_str(),
        "path": req.url(),
        "headers": headers,
        "body": body,
    });
    let content_type = tiny_http::Header::from_bytes("content-type", "application/json")
        .expect("static header is valid");
    let resp = tiny_http::Response::from_string(doc.to_string()).with_header(content_type);
    let _ = req.respond(resp);
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
