//! The filter's counters, defined once per configuration.

use crate::auth::{denial_reasons, Authenticator};
use crate::config::Plan;
use crate::host::Host;

/// Counter ids (`None` where the host refused to define one: it is skipped).
#[derive(Debug)]
pub struct Metrics {
    /// Requests routed, per upstream (same order as `Plan::upstreams`).
    routed: Vec<Option<u32>>,
    auth_allowed: Option<u32>,
    /// Denials per reason label.
    auth_denied: Vec<(&'static str, Option<u32>)>,
    /// OAuth2 only.
    token_cache_hits: Option<u32>,
    introspections: Option<u32>,
    jwks_fetched: Option<u32>,
    jwks_failed: Option<u32>,
}

impl Metrics {
    pub fn define(host: &dyn Host, plan: &Plan) -> Self {
        let counter = |name: String| host.define_counter(&name);
        let oauth2 = matches!(plan.auth, Authenticator::OAuth2(_));
        let oauth2_counter = |name: &str| {
            if oauth2 {
                counter(format!("canary_gate.oauth2.{name}"))
            } else {
                None
            }
        };
        Self {
            routed: plan
                .upstreams
                .iter()
                .map(|u| counter(format!("canary_gate.upstream.{u}.requests")))
                .collect(),
            auth_allowed: counter("canary_gate.auth_allowed".to_string()),
            auth_denied: denial_reasons()
                .into_iter()
                .map(|r| (r, counter(format!("canary_gate.reason.{r}.auth_denied"))))
                .collect(),
            token_cache_hits: oauth2_counter("token_cache_hits"),
            introspections: oauth2_counter("introspection_requests"),
            jwks_fetched: oauth2_counter("jwks_fetch_ok"),
            jwks_failed: oauth2_counter("jwks_fetch_failed"),
        }
    }

    fn inc(host: &dyn Host, id: Option<u32>) {
        if let Some(id) = id {
            host.increment(id);
        }
    }

    pub fn routed(&self, host: &dyn Host, upstream: usize) {
        Self::inc(host, self.routed.get(upstream).copied().flatten());
    }

    pub fn denied(&self, host: &dyn Host, reason: &str) {
        let id = self
            .auth_denied
            .iter()
            .find(|(r, _)| *r == reason)
            .and_then(|(_, id)| *id);
        Self::inc(host, id);
    }

    pub fn auth_allowed(&self, host: &dyn Host) {
        Self::inc(host, self.auth_allowed);
    }

    pub fn token_cache_hit(&self, host: &dyn Host) {
        Self::inc(host, self.token_cache_hits);
    }

    pub fn introspection(&self, host: &dyn Host) {
        Self::inc(host, self.introspections);
    }

    pub fn jwks_fetch(&self, host: &dyn Host, ok: bool) {
        Self::inc(
            host,
            if ok {
                self.jwks_fetched
            } else {
                self.jwks_failed
            },
        );
    }
}
