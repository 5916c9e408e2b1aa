//! The raw JSON shape of the plugin configuration (serde). Field names here
//! are the documented contract; each auth mode owns the shape of its `auth`
//! object.

use serde::Deserialize;

use crate::auth::{RawAccessKey, RawBasic};
use crate::split::WhenMissing;

pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-upstream";
pub const DEFAULT_CONSUMER_HEADER: &str = "x-canary-consumer";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default = "default_route_header")]
    pub(super) route_header: String,
    pub(super) primary: String,
    #[serde(default)]
    pub(super) canaries: Vec<RawCanary>,
    #[serde(default)]
    pub(super) split: RawSplit,
    #[serde(default)]
    pub(super) select_header: Option<String>,
    #[serde(default = "default_consumer_header")]
    pub(super) consumer_header: String,
    #[serde(default)]
    pub(super) response_header: Option<String>,
    #[serde(default)]
    pub(super) auth: RawAuth,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    pub(super) name: String,
    pub(super) percent: f64,
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

fn default_route_header() -> String {
    DEFAULT_ROUTE_HEADER.to_string()
}

fn default_consumer_header() -> String {
    DEFAULT_CONSUMER_HEADER.to_string()
}
