//! Request authentication: none, HTTP Basic (RFC 7617, htpasswd hashes),
//! access keys (SHA-256 digests) and OAuth2 bearer tokens (RFC 6750). Pure
//! Rust, no host calls: the filter hands in the credential it read and gets
//! back an identity or a [`Denial`] (the complete local reply).
//!
//! Each mode owns its JSON shape (`RawBasic`, `RawAccessKey`, the OAuth2
//! `auth` object) and builds itself from it, validating with
//! [`crate::validate`]; nothing here reads the rest of the configuration.

mod access_key;
mod basic;
pub mod oauth2;
pub mod verified;

use std::fmt;

pub(crate) use access_key::RawAccessKey;
pub use access_key::{AccessKeyAuth, KeyCache, DEFAULT_ACCESS_KEY_HEADER, KEY_CACHE_BYTES};
pub(crate) use basic::RawBasic;
pub use basic::{BasicAuth, CredentialCache, CREDENTIAL_CACHE_BYTES, CREDENTIAL_CACHE_CAPACITY};
pub use oauth2::{OAuth2Auth, TokenError};

use crate::reply::Denial;

/// The realm of every mode's challenge when `auth.realm` is not set.
pub const DEFAULT_REALM: &str = "canary-gate";

fn default_realm() -> String {
    DEFAULT_REALM.to_string()
}

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
        Denial::unauthorized(self.challenge(), "unauthorized", error.reason())
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
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for AuthError {}
