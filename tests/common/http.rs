//! The HTTP client of the tests: every status comes back as a [`Resp`] (2xx or not), and an
//! Envoy started by the launcher can be asked directly ([`Envoy::get`], [`Envoy::prometheus`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::envoy::Envoy;

/// Timeout of a single HTTP request made by the tests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response as a user sees it: status, headers (names lowercased; repeated headers joined
/// with ", "), body.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Resp {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {:?}",
                self.status, self.body
            )
        })
    }

    /// For a response relayed from an echo upstream: which upstream answered.
    pub fn upstream(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.get("upstream")?.as_str().map(str::to_owned)
    }

    /// For a response relayed from an echo upstream: a header as the upstream received it.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.get("headers")?
            .get(name.to_ascii_lowercase())?
            .as_str()
            .map(str::to_owned)
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .timeout_connect(Duration::from_secs(2))
        .redirects(0)
        .build()
}

/// Sends one request; returns status, headers and body for every status (2xx or not).
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, String> {
    let mut req = agent().request(method, url);
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    let status = resp.status();
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for name in resp.headers_names() {
        let joined = resp.all(&name).join(", ");
        map.insert(name.to_ascii_lowercase(), joined);
    }
    let body = resp
        .into_string()
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?;
    Ok(Resp {
        status,
        headers: map,
        body,
    })
}

impl Envoy {
    /// Any request to Envoy's listener; panics only on transport errors (every HTTP status
    /// comes back as a [`Resp`]).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let url = format!("http://127.0.0.1:{}{}", self.port(), path);
        http_request(method, &url, headers, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET path` on Envoy's listener.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers, None)
    }

    /// `/stats/prometheus`.
    pub fn prometheus(&self) -> String {
        self.admin_get("/stats/prometheus")
    }
}
