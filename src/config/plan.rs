//! The compiled configuration: immutable once [`super::parse`] has built it,
//! shared by every request.

use crate::auth::Authenticator;
use crate::gateway::GatewayTable;
use crate::split::SplitPlan;

pub use super::raw::Unmatched;

/// The name of the one gateway of a configuration without `gateways`.
pub const DEFAULT_GATEWAY: &str = "default";

/// The validated, immutable configuration. Built by [`crate::config::parse`].
#[derive(Debug)]
pub struct Plan {
    pub route_header: String,
    pub consumer_header: String,
    pub response_header: Option<String>,
    pub unmatched: Unmatched,
    /// In configured order; a configuration without `gateways` has one, `default`.
    pub gateways: Vec<Gateway>,
    /// How a request finds its gateway; `None` for a configuration without
    /// `gateways`: its one gateway takes every request, with no path checks.
    pub table: Option<GatewayTable>,
    /// The distinct `jwks_uri` objects: for each, the gateways that use it
    /// (they share one key set and one fetch).
    pub jwks_sources: Vec<Vec<usize>>,
}

/// One gateway: its own upstreams, split and authentication.
#[derive(Debug)]
pub struct Gateway {
    pub name: String,
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub strip_prefix: bool,
    pub select_header: Option<String>,
    /// Index 0 is the primary; canaries follow in listed order.
    pub upstreams: Vec<String>,
    /// The canaries (upstream `i + 1` is `canaries[i]`): shares, guards, ramps.
    pub canaries: Vec<super::Canary>,
    pub split: SplitPlan,
    pub auth: Authenticator,
    /// Index into [`Plan::jwks_sources`] when the gateway fetches a JWKS.
    pub jwks_source: Option<usize>,
}

impl Gateway {
    /// The name of upstream `index` (empty if there is none).
    pub fn upstream_name(&self, index: usize) -> &str {
        self.upstreams
            .get(index)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

impl Plan {
    pub fn gateway(&self, index: usize) -> Option<&Gateway> {
        self.gateways.get(index)
    }
}
