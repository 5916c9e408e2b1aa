//! Request authentication: none, HTTP Basic (RFC 7617, htpasswd hashes) and
//! access keys (SHA-256 digests). Pure Rust, no host calls: the filter hands
//! in the credential it read and gets back an identity or an [`AuthError`].

mod access_key;
mod basic;

use std::fmt;

pub use access_key::AccessKeyAuth;
pub use basic::{BasicAuth, CredentialCache, CREDENTIAL_CACHE_CAPACITY};

/// The configured authenticator.
#[derive(Debug)]
pub enum Authenticator {
    None,
    Basic(BasicAuth),
    AccessKey(AccessKeyAuth),
}

impl Authenticator {
    pub fn mode(&self) -> &'static str {
        match self {
            Authenticator::None => "none",
            Authenticator::Basic(_) => "basic",
            Authenticator::AccessKey(_) => "access_key",
        }
    }

    /// The `WWW-Authenticate` challenge sent with a 401.
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
        }
    }
}

/// Why a request was refused. Each maps to one fixed response (401 and the
/// authenticator's challenge) and one metric label.
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
