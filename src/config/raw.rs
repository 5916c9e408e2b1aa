//! The raw JSON shape of the plugin configuration (serde). Field names here
//! are the documented contract; each auth mode owns the shape of its `auth`
//! object.

use serde::{Deserialize, Serialize};

use super::canary::{RawGuard, RawRamp};

use crate::auth::{RawAccessKey, RawBasic};
use crate::split::WhenMissing;

pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-upstream";
pub const DEFAULT_CONSUMER_HEADER: &str = "x-canary-consumer";

/// The whole configuration. Without `gateways` it is one gateway (`default`)
/// whose fields are at the top level; with `gateways`, those fields belong in
/// each gateway and are refused at the top level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default = "default_route_header")]
    pub(super) route_header: String,
    #[serde(default = "default_consumer_header")]
    pub(super) consumer_header: String,
    #[serde(default)]
    pub(super) response_header: Option<String>,
    #[serde(default)]
    pub(super) unmatched: Option<Unmatched>,
    /// Each gateway is kept as its JSON text and read again on its own
    /// ([`RawGateway`]), so that its errors are reported with the
    /// `gateways[i].` prefix, and a member given twice is refused there as at
    /// the top level (a `Value` would keep the last one silently).
    #[serde(default)]
    pub(super) gateways: Option<Vec<Box<serde_json::value::RawValue>>>,
    // The per-gateway fields, at the top level of a configuration without `gateways`.
    #[serde(default)]
    pub(super) primary: Option<String>,
    #[serde(default)]
    pub(super) canaries: Option<Vec<RawCanary>>,
    #[serde(default)]
    pub(super) split: Option<RawSplit>,
    #[serde(default)]
    pub(super) select_header: Option<String>,
    #[serde(default)]
    pub(super) auth: Option<RawAuth>,
}

/// One entry of `gateways`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub(super) name: String,
    #[serde(default = "default_hosts")]
    pub(super) hosts: Vec<String>,
    #[serde(default = "default_path_prefix")]
    pub(super) path_prefix: String,
    #[serde(default)]
    pub(super) strip_prefix: bool,
    pub(super) primary: String,
    #[serde(default)]
    pub(super) canaries: Vec<RawCanary>,
    #[serde(default)]
    pub(super) split: RawSplit,
    #[serde(default)]
    pub(super) select_header: Option<String>,
    #[serde(default)]
    pub(super) auth: RawAuth,
}

/// What happens to a request no gateway matches.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// 404 `{"error":"not_found","reason":"no_gateway"}`.
    #[default]
    Deny,
    /// Forwarded with no route header and no consumer header.
    Pass,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    pub(super) name: String,
    pub(super) percent: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) guard: Option<RawGuard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ramp: Option<RawRamp>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub(super) enum SplitBy {
    #[default]
    Random,
    Header,
    Query,
    Cookie,
    Consumer,
}

impl SplitBy {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            SplitBy::Random => "random",
            SplitBy::Header => "header",
            SplitBy::Query => "query",
            SplitBy::Cookie => "cookie",
            SplitBy::Consumer => "consumer",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSplit {
    #[serde(default)]
    pub(super) by: SplitBy,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) when_missing: Option<WhenMissing>,
    #[serde(default)]
    pub(super) hash_seed: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub(super) enum RawAuth {
    #[default]
    None,
    Basic(RawBasic),
    AccessKey(RawAccessKey),
    /// Read again from the original bytes by [`crate::auth::oauth2`] (its
    /// `RawOAuth2`), so that errors name the full field path
    /// (`auth.jwks_uri.cluster`).
    Oauth2(serde::de::IgnoredAny),
}

fn default_hosts() -> Vec<String> {
    crate::gateway::DEFAULT_HOSTS
        .iter()
        .map(|h| h.to_string())
        .collect()
}

fn default_path_prefix() -> String {
    crate::gateway::DEFAULT_PATH_PREFIX.to_string()
}

fn default_route_header() -> String {
    DEFAULT_ROUTE_HEADER.to_string()
}

fn default_consumer_header() -> String {
    DEFAULT_CONSUMER_HEADER.to_string()
}
