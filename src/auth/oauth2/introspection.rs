//! Calls to the identity provider through an Envoy cluster: the JWKS fetch
//! and RFC 7662 token introspection. This module only builds the requests and
//! reads the answers; the filter glue sends them.

use std::fmt;

use base64::Engine;
use serde_json::{Map, Value};

/// The largest introspection answer read.
pub const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

/// An Envoy cluster and the request target on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub cluster: String,
    pub path: String,
    /// The `:authority` sent; defaults to the cluster name.
    pub authority: String,
    pub timeout_ms: u64,
}

/// An HTTP call for the glue to dispatch (`proxy_http_call`).
pub struct HttpCall {
    pub cluster: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

impl fmt::Debug for HttpCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body carries the token and the headers the client secret.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| *k).collect();
        f.debug_struct("HttpCall")
            .field("cluster", &self.cluster)
            .field("headers", &names)
            .field("body", &self.body.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl Endpoint {
    /// `GET` of the JWKS document.
    pub fn jwks_call(&self) -> HttpCall {
        HttpCall {
            cluster: self.cluster.clone(),
            headers: vec![
                (":method", "GET".to_string()),
                (":path", self.path.clone()),
                (":authority", self.authority.clone()),
                ("accept", "application/json".to_string()),
            ],
            body: None,
            timeout_ms: self.timeout_ms,
        }
    }
}

/// A string that is never printed (client secret, HMAC secret, credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// RFC 7662 introspection with `client_secret_basic` client authentication.
#[derive(Debug)]
pub struct Introspection {
    pub endpoint: Endpoint,
    /// The complete `Authorization` header value, prepared once.
    authorization: Secret,
    /// How long an active answer is reused (never beyond the token's `exp`).
    pub cache_seconds: u64,
}

/// How long an `active: false` answer is reused.
pub const NEGATIVE_CACHE_SECONDS: u64 = 5;

impl Introspection {
    pub fn new(
        endpoint: Endpoint,
        client_id: &str,
        client_secret: &Secret,
        cache_seconds: u64,
    ) -> Self {
        // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(client_id), encode(client_secret.expose()));
        let authorization = Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ));
        Self {
            endpoint,
            authorization,
            cache_seconds,
        }
    }

    /// The `POST` that asks whether `token` is active.
    pub fn call(&self, token: &str) -> HttpCall {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        HttpCall {
            cluster: self.endpoint.cluster.clone(),
            headers: vec![
                (":method", "POST".to_string()),
                (":path", self.endpoint.path.clone()),
                (":authority", self.endpoint.authority.clone()),
                (
                    "content-type",
                    "application/x-www-form-urlencoded".to_string(),
                ),
                ("accept", "application/json".to_string()),
                ("authorization", self.authorization.expose().to_string()),
            ],
            body: Some(body.into_bytes()),
            timeout_ms: self.endpoint.timeout_ms,
        }
    }
}

/// The identity provider's answer about a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Inactive,
    /// `active: true` and every other member of the response.
    Active(Map<String, Value>),
}

/// Reads an introspection response. `Err` (with a reason for the operator's
/// log, never containing the token) means the provider could not answer: the
/// request then gets 503, never an accept.
pub fn parse_response(status: Option<u32>, body: Option<&[u8]>) -> Result<Answer, String> {
    match status {
        Some(200) => {}
        Some(other) => return Err(format!("HTTP {other} from the introspection endpoint")),
        None => {
            return Err(
                "no response from the introspection endpoint (unreachable or timed out)".into(),
            )
        }
    }
    let body = body.unwrap_or_default();
    if body.len() > MAX_INTROSPECTION_BYTES {
        return Err(format!(
            "introspection response of {} bytes is too large",
            body.len()
        ));
    }
    let mut map: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => return Err("introspection response is not a JSON object".into()),
    };
    match map.remove("active") {
        Some(Value::Bool(true)) => Ok(Answer::Active(map)),
        Some(Value::Bool(false)) => Ok(Answer::Inactive),
        _ => Err("introspection response has no boolean \"active\" member".into()),
    }
}

/// A NumericDate claim (seconds; fractions dropped). `None` when absent or not a number.
pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Option<u64> {
    match claims.get(name)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.is_finite())
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            cluster: "idp".into(),
            path: "/oauth2/introspect".into(),
            authority: "idp.example.com".into(),
            timeout_ms: 1500,
        }
    }

    #[test]
    fn request_is_a_form_post_with_client_secret_basic() {
        let i = Introspection::new(endpoint(), "gate way", &Secret::new("s3:cr%t".into()), 30);
        let call = i.call("tok+en/=");
        assert_eq!(call.cluster, "idp");
        assert_eq!(call.timeout_ms, 1500);
        let h = |name: &str| {
            call.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(h(":method"), "POST");
        assert_eq!(h(":path"), "/oauth2/introspect");
        assert_eq!(h(":authority"), "idp.example.com");
        assert_eq!(h("content-type"), "application/x-www-form-urlencoded");
        // base64("gate+way:s3%3Acr%25t")
        let expected = base64::engine::general_purpose::STANDARD.encode("gate+way:s3%3Acr%25t");
        assert_eq!(h("authorization"), format!("Basic {expected}"));
        assert_eq!(
            String::from_utf8(call.body.clone().unwrap()).unwrap(),
            "token=tok%2Ben%2F%3D&token_type_hint=access_token"
        );
        let debug = format!("{call:?} {i:?}");
        assert!(!debug.contains("tok"), "{debug}");
        assert!(!debug.contains("s3"), "{debug}");
        assert!(!debug.contains(&expected), "{debug}");
    }

    #[test]
    fn jwks_call_is_a_get() {
        let call = endpoint().jwks_call();
        assert_eq!(call.headers[0], (":method", "GET".to_string()));
        assert!(call.body.is_none());
    }

    #[test]
    fn responses() {
        assert_eq!(
            parse_response(Some(200), Some(br#"{"active":false}"#)),
            Ok(Answer::Inactive)
        );
        match parse_response(
            Some(200),
            Some(br#"{"active":true,"sub":"alice","exp":12.5}"#),
        ) {
            Ok(Answer::Active(m)) => {
                assert_eq!(m.get("sub"), Some(&Value::String("alice".into())));
                assert_eq!(numeric_date(&m, "exp"), Some(12));
                assert_eq!(numeric_date(&m, "nbf"), None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_response(Some(401), Some(b"{}")),
            Err("HTTP 401 from the introspection endpoint".into())
        );
        assert_eq!(
            parse_response(None, None),
            Err("no response from the introspection endpoint (unreachable or timed out)".into())
        );
        assert_eq!(
            parse_response(Some(200), Some(b"<html>")),
            Err("introspection response is not a JSON object".into())
        );
        assert_eq!(
            parse_response(Some(200), Some(br#"{"active":"true"}"#)),
            Err("introspection response has no boolean \"active\" member".into())
        );
    }
}
