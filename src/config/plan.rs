//! The compiled configuration: immutable once [`super::parse`] has built it,
//! shared by every request.

use crate::auth::Authenticator;
use crate::split::SplitPlan;

/// The validated, immutable configuration. Built by [`crate::config::parse`].
#[derive(Debug)]
pub struct Plan {
    pub route_header: String,
    pub consumer_header: String,
    pub select_header: Option<String>,
    pub response_header: Option<String>,
    /// Index 0 is the primary; canaries follow in listed order.
    pub upstreams: Vec<String>,
    pub split: SplitPlan,
    pub auth: Authenticator,
}

impl Plan {
    /// The name of upstream `index` (empty if there is none).
    pub fn upstream_name(&self, index: usize) -> &str {
        self.upstreams
            .get(index)
            .map(String::as_str)
            .unwrap_or_default()
    }
}
