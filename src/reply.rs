//! Local replies: what the filter answers instead of forwarding a request.
//! Each kind is built here and only here; the auth modes and the decision
//! call these constructors, and the glue sends [`Reply`]s as they are.
//!
//! A leaf: it uses no other module of the crate.

/// A refused request: the complete local reply, computed by the pure code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 401, 403 or 503.
    pub status: u32,
    /// The `WWW-Authenticate` value, if any.
    pub challenge: Option<String>,
    /// A short JSON body.
    pub body: String,
    /// Stable label for the metric and the log.
    pub reason: &'static str,
}

impl Denial {
    /// 401: no usable credential. `error` is the body's `error` member
    /// (`unauthorized`, or RFC 6750's `invalid_token`).
    pub fn unauthorized(challenge: Option<String>, error: &str, reason: &'static str) -> Self {
        Self::new(401, challenge, error, reason)
    }

    /// 403: authenticated, but not allowed (RFC 6750 `insufficient_scope`).
    pub fn forbidden(challenge: String, error: &str, reason: &'static str) -> Self {
        Self::new(403, Some(challenge), error, reason)
    }

    /// 503 `temporarily_unavailable`: the identity provider could not be asked.
    pub fn unavailable(reason: &'static str) -> Self {
        Self::new(503, None, "temporarily_unavailable", reason)
    }

    /// 404 `not_found`: no gateway takes the request (`reason`: `no_gateway`).
    pub fn not_found(reason: &'static str) -> Self {
        Self::new(404, None, "not_found", reason)
    }

    /// 400 `bad_request`: the request cannot be matched safely
    /// (`reason`: `ambiguous_path`).
    pub fn bad_request(reason: &'static str) -> Self {
        Self::new(400, None, "bad_request", reason)
    }

    fn new(status: u32, challenge: Option<String>, error: &str, reason: &'static str) -> Self {
        Self {
            status,
            challenge,
            body: json_body(error, Some(reason)),
            reason,
        }
    }

    /// The reply to send: the challenge (if any) first, then a JSON body
    /// that no cache may keep.
    pub fn reply(&self) -> Reply {
        let mut headers = Vec::with_capacity(3);
        if let Some(challenge) = &self.challenge {
            headers.push(("www-authenticate", challenge.clone()));
        }
        headers.push(("content-type", JSON.to_string()));
        headers.push(("cache-control", "no-store".to_string()));
        Reply {
            status: self.status,
            headers,
            body: self.body.clone(),
        }
    }
}

/// A complete local reply: status, headers in the order they are sent, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    /// 500: a host call failed while the request was being handled.
    pub fn internal() -> Self {
        Self::server_error("internal")
    }

    /// 500: a request reached a filter whose configuration failed (Envoy
    /// does not normally create it; fail closed anyway).
    pub fn not_configured() -> Self {
        Self::server_error("canary-gate is not configured")
    }

    fn server_error(error: &str) -> Self {
        Self {
            status: 500,
            headers: vec![("content-type", JSON.to_string())],
            body: json_body(error, None),
        }
    }

    /// The headers as the host wants them.
    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect()
    }
}

const JSON: &str = "application/json";

/// `{"error":"...","reason":"..."}`. Both are fixed labels, never request data.
fn json_body(error: &str, reason: Option<&str>) -> String {
    match reason {
        Some(reason) => format!("{{\"error\":\"{error}\",\"reason\":\"{reason}\"}}"),
        None => format!("{{\"error\":\"{error}\"}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_carry_status_challenge_and_body() {
        let d = Denial::unauthorized(
            Some("Basic realm=\"r\"".into()),
            "unauthorized",
            "missing_credentials",
        );
        assert_eq!(
            d,
            Denial {
                status: 401,
                challenge: Some("Basic realm=\"r\"".into()),
                body: r#"{"error":"unauthorized","reason":"missing_credentials"}"#.into(),
                reason: "missing_credentials",
            }
        );
        let d = Denial::forbidden(
            "Bearer x".into(),
            "insufficient_scope",
            "insufficient_scope",
        );
        assert_eq!((d.status, d.challenge.as_deref()), (403, Some("Bearer x")));
        assert_eq!(
            d.body,
            r#"{"error":"insufficient_scope","reason":"insufficient_scope"}"#
        );
        assert_eq!(
            Denial::unavailable("keys_unavailable"),
            Denial {
                status: 503,
                challenge: None,
                body: r#"{"error":"temporarily_unavailable","reason":"keys_unavailable"}"#.into(),
                reason: "keys_unavailable",
            }
        );
    }

    #[test]
    fn a_denial_is_sent_with_its_challenge_first_and_no_store() {
        let r =
            Denial::unauthorized(Some("Bearer realm=\"r\"".into()), "invalid_token", "x").reply();
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header_pairs(),
            vec![
                ("www-authenticate", "Bearer realm=\"r\""),
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
            ]
        );
        assert_eq!(r.body, r#"{"error":"invalid_token","reason":"x"}"#);
        let r = Denial::unavailable("introspection_unavailable").reply();
        assert_eq!(
            r.header_pairs(),
            vec![
                ("content-type", "application/json"),
                ("cache-control", "no-store")
            ]
        );
    }

    #[test]
    fn server_errors_are_500_with_a_json_body() {
        assert_eq!(
            Reply::internal(),
            Reply {
                status: 500,
                headers: vec![("content-type", "application/json".into())],
                body: r#"{"error":"internal"}"#.into(),
            }
        );
        let r = Reply::not_configured();
        assert_eq!(r.status, 500);
        assert_eq!(r.header_pairs(), vec![("content-type", "application/json")]);
        assert_eq!(r.body, r#"{"error":"canary-gate is not configured"}"#);
    }
}
