//! The configure-time error of the gateway table: a field path and a message.

use std::fmt;

/// What is wrong with the `gateways` configuration, and where.
///
/// `path` is the JSON field path of the offending value (`gateways[2].hosts[0]`,
/// `gateways[3]`); `message` says what is wrong. [`fmt::Display`] gives
/// `path: message`, the line an operator reads. The integrator converts it into
/// the crate's `ConfigError` (same two fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub path: String,
    pub message: String,
}

impl GatewayError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for GatewayError {}
