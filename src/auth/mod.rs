//! Request authentication: none, HTTP Basic (RFC 7617, htpasswd hashes),
//! access keys (SHA-256 digests) and OAuth2 bearer tokens (RFC 6750). Pure
//! Rust, no host calls: the filter hands in the credential it read and gets
//! back an identity or a [`Denial`] (the complete local reply).

mod access_key;
mod basic;
pub mod oauth2;

use std::fmt;

pub use access_key::AccessKeyAuth;
pub use basic::{BasicAuth, CredentialCache, CREDENTIAL_CACHE_CAPACITY};
pub use oauth2::{OAuth2Auth, TokenError};

/// The configured authenticator.
#[derive(Debug)]
pub enum Authenticator {
    None,
    Basic(BasicAuth),
    AccessKey(AccessKeyAuth),
    /// Boxed: by far the largest variant (prepared keys, endpoints).
    OAuth2(Box<OAuth2Auth>),
}

impl Authenticator {
    pub fn mode(&self) -> &'static str {
        match self {
            Authenticator::None => "none",
            Authenticator::Basic(_) => "basic",
            Authenticator::AccessKey(_) => "access_key",
            Authenticator::OAuth2(_) => "oauth2",
        }
    }

    /// The `WWW-Authenticate` challenge sent with a 401 when no credential
    /// was presented.
    pub fn challenge(&self) -> Option<String> {
        match self {
            Authenticator::None => None,
            Authenticator::Basic(b) => {
                Some(format!("Basic realm=\"{}\", charset=\"UTF-8\"", b.realm()))
            }
            Authenticator::AccessKey(a) => Some(format!(
                "ApiKey realm=\"{}\", header=\"{}\"",
                a.realm(),
                a.header()
            )),
            Authenticator::OAuth2(o) => Some(format!("Bearer realm=\"{}\"", o.realm())),
        }
    }

    /// The local reply for a Basic or access-key failure: always 401 with the
    /// authenticator's challenge.
    pub fn deny(&self, error: AuthError) -> Denial {
        Denial {
            status: 401,
            challenge: self.challenge(),
            body: error.body(),
            reason: error.reason(),
        }
    }
}

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
    /// The reply's headers: the challenge (if any), a JSON body, and no caching.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        let mut headers = Vec::with_capacity(3);
        if let Some(challenge) = self.challenge.as_deref() {
            headers.push(("www-authenticate", challenge));
        }
        headers.push(("content-type", "application/json"));
        headers.push(("cache-control", "no-store"));
        headers
    }

    /// 500 when a host call fails during a request (the filter fails closed).
    pub fn internal() -> Self {
        Denial {
            status: 500,
            challenge: None,
            body: "{\"error\":\"internal\"}".to_string(),
            reason: "internal",
        }
    }

    /// 500 for a request on a plugin that has no configuration (Envoy does not
    /// create requests for a plugin it refused; fail closed anyway).
    pub fn not_configured() -> Self {
        Denial {
            status: 500,
            challenge: None,
            body: "{\"error\":\"canary-gate is not configured\"}".to_string(),
            reason: "not_configured",
        }
    }
}

/// Every [`Denial::reason`] any authenticator can give, for defining metrics.
pub fn denial_reasons() -> Vec<&'static str> {
    let mut reasons: Vec<&'static str> = AuthError::ALL.iter().map(|e| e.reason()).collect();
    for e in TokenError::ALL {
        if !reasons.contains(&e.reason()) {
            reasons.push(e.reason());
        }
    }
    reasons
}

/// Why a Basic or access-key request was refused. Each maps to one fixed
/// response (401 and the authenticator's challenge) and one metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No credential was sent.
    Missing,
    /// A credential was sent but cannot be parsed (wrong scheme, bad base64, no colon).
    Malformed,
    /// Well-formed, but no user or key matches.
    Invalid,
}

impl AuthError {
    pub const ALL: [AuthError; 3] = [AuthError::Missing, AuthError::Malformed, AuthError::Invalid];

    /// Stable label, used in metrics and response bodies.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credentials",
            AuthError::Malformed => "malformed_credentials",
            AuthError::Invalid => "invalid_credentials",
        }
    }

    /// The short JSON body of the 401 response.
    pub fn body(self) -> String {
        format!(
            "{{\"error\":\"unauthorized\",\"reason\":\"{}\"}}",
            self.reason()
        )
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for AuthError {}
