//! The filter's counters, defined once per configuration, every one labelled
//! with its gateway in the name encoding Istio's tag extractors read
//! ([`crate::gateway::stats`]): `canary_gate_requests{gateway,upstream}`,
//! `canary_gate_auth_allowed{gateway}`, `canary_gate_auth_denied{gateway,reason}`,
//! the OAuth2 counters with `gateway`, and `canary_gate_unmatched`,
//! `canary_gate_bad_path` (no gateway took the request).

use crate::auth::{denial_reasons, Authenticator};
use crate::config::{Gateway, Plan};
use crate::gateway::stats::{stat_name, Label};
use crate::host::Host;
use crate::watch::class::Class;

/// Counter ids (`None` where the host refused to define one: it is skipped).
#[derive(Debug)]
pub struct Metrics {
    gateways: Vec<GatewayMetrics>,
    unmatched: Option<u32>,
    bad_path: Option<u32>,
}

#[derive(Debug)]
struct GatewayMetrics {
    /// Requests routed, per upstream (same order as the gateway's upstreams).
    routed: Vec<Option<u32>>,
    /// Per upstream: responses per class (in `Class::ALL` order), and latency.
    responses: Vec<[Option<u32>; 6]>,
    response_ms: Vec<Option<u32>>,
    /// Per canary (upstream `i + 1`): its current share, guard state and trips.
    basis_points: Vec<Option<u32>>,
    guard_tripped: Vec<Option<u32>>,
    guard_trips: Vec<Option<u32>>,
    guard_dry_run_trips: Vec<Option<u32>>,
    auth_allowed: Option<u32>,
    /// Denials per reason label.
    auth_denied: Vec<(&'static str, Option<u32>)>,
    /// OAuth2 only.
    token_cache_hits: Option<u32>,
    introspections: Option<u32>,
    jwks_fetched: Option<u32>,
    jwks_failed: Option<u32>,
}

fn counter(host: &dyn Host, metric: &str, labels: &[(Label, &str)]) -> Option<u32> {
    // Names and label values were checked at configure time; a name that
    // cannot be built is skipped like one the host refuses.
    let name = stat_name(metric, labels).ok()?;
    host.define_counter(&name)
}

impl GatewayMetrics {
    fn define(host: &dyn Host, gateway: &Gateway) -> Self {
        let g = (Label::Gateway, gateway.name.as_str());
        let oauth2 = matches!(gateway.auth, Authenticator::OAuth2(_));
        let oauth2_counter = |metric: &str| {
            if oauth2 {
                counter(host, metric, &[g])
            } else {
                None
            }
        };
        let per_upstream = |f: &dyn Fn(&str) -> Option<u32>| -> Vec<Option<u32>> {
            gateway.upstreams.iter().map(|u| f(u)).collect()
        };
        let per_canary = |f: &dyn Fn(&str) -> Option<u32>| -> Vec<Option<u32>> {
            gateway.canaries.iter().map(|c| f(&c.name)).collect()
        };
        let guarded = |name: &str| {
            gateway
                .canaries
                .iter()
                .any(|c| c.name == name && c.guard.is_some())
        };
        let guard_metric = |kind: fn(&dyn Host, &str) -> Option<u32>, metric: &'static str| {
            move |u: &str| {
                let name = stat_name(metric, &[g, (Label::Upstream, u)]).ok()?;
                if guarded(u) {
                    kind(host, &name)
                } else {
                    None
                }
            }
        };
        Self {
            routed: per_upstream(&|u| counter(host, "requests", &[g, (Label::Upstream, u)])),
            responses: gateway
                .upstreams
                .iter()
                .map(|u| {
                    Class::ALL.map(|c| {
                        let labels = [g, (Label::Upstream, u), (Label::Class, c.label())];
                        counter(host, "responses", &labels)
                    })
                })
                .collect(),
            response_ms: per_upstream(&|u| {
                let name = stat_name("response_ms", &[g, (Label::Upstream, u)]).ok()?;
                host.define_histogram(&name)
            }),
            basis_points: per_canary(&|u| {
                let name = stat_name("canary_basis_points", &[g, (Label::Upstream, u)]).ok()?;
                host.define_gauge(&name)
            }),
            guard_tripped: per_canary(&guard_metric(|h, n| h.define_gauge(n), "guard_tripped")),
            guard_trips: per_canary(&guard_metric(|h, n| h.define_counter(n), "guard_trips")),
            guard_dry_run_trips: per_canary(&guard_metric(
                |h, n| h.define_counter(n),
                "guard_dry_run_trips",
            )),
            auth_allowed: counter(host, "auth_allowed", &[g]),
            auth_denied: denial_reasons()
                .into_iter()
                .map(|r| (r, counter(host, "auth_denied", &[g, (Label::Reason, r)])))
                .collect(),
            token_cache_hits: oauth2_counter("oauth2_token_cache_hits"),
            introspections: oauth2_counter("oauth2_introspection_requests"),
            jwks_fetched: oauth2_counter("oauth2_jwks_fetch_ok"),
            jwks_failed: oauth2_counter("oauth2_jwks_fetch_failed"),
        }
    }
}

impl Metrics {
    pub fn define(host: &dyn Host, plan: &Plan) -> Self {
        let with_table = plan.table.is_some();
        Self {
            gateways: plan
                .gateways
                .iter()
                .map(|g| GatewayMetrics::define(host, g))
                .collect(),
            unmatched: with_table
                .then(|| counter(host, "unmatched", &[]))
                .flatten(),
            bad_path: with_table.then(|| counter(host, "bad_path", &[])).flatten(),
        }
    }

    fn inc(host: &dyn Host, id: Option<u32>) {
        if let Some(id) = id {
            host.increment(id);
        }
    }

    fn of(&self, gateway: usize) -> Option<&GatewayMetrics> {
        self.gateways.get(gateway)
    }

    pub fn routed(&self, host: &dyn Host, gateway: usize, upstream: usize) {
        let id = self
            .of(gateway)
            .and_then(|m| m.routed.get(upstream).copied().flatten());
        Self::inc(host, id);
    }

    /// A refusal: per gateway and reason, or (no gateway) unmatched / bad path.
    pub fn denied(&self, host: &dyn Host, gateway: Option<usize>, reason: &str) {
        let id = match gateway {
            Some(g) => self.of(g).and_then(|m| {
                m.auth_denied
                    .iter()
                    .find(|(r, _)| *r == reason)
                    .and_then(|(_, id)| *id)
            }),
            None if reason == "ambiguous_path" => self.bad_path,
            None => self.unmatched,
        };
        Self::inc(host, id);
    }

    /// A request no gateway took, passed on (`unmatched: pass`).
    pub fn passed(&self, host: &dyn Host) {
        Self::inc(host, self.unmatched);
    }

    pub fn auth_allowed(&self, host: &dyn Host, gateway: usize) {
        Self::inc(host, self.of(gateway).and_then(|m| m.auth_allowed));
    }

    pub fn token_cache_hit(&self, host: &dyn Host, gateway: usize) {
        Self::inc(host, self.of(gateway).and_then(|m| m.token_cache_hits));
    }

    pub fn introspection(&self, host: &dyn Host, gateway: usize) {
        Self::inc(host, self.of(gateway).and_then(|m| m.introspections));
    }

    /// A response of `upstream`: its class, and its latency in the histogram.
    pub fn response(
        &self,
        host: &dyn Host,
        gateway: usize,
        upstream: usize,
        class: Class,
        ms: u64,
    ) {
        let Some(m) = self.of(gateway) else { return };
        let slot = Class::ALL.iter().position(|c| *c == class).unwrap_or(0);
        let id = m
            .responses
            .get(upstream)
            .and_then(|ids| ids.get(slot))
            .copied()
            .flatten();
        Self::inc(host, id);
        if let Some(id) = m.response_ms.get(upstream).copied().flatten() {
            host.record(id, ms);
        }
    }

    /// A canary's current share (basis points), its guard state (0 or 1).
    pub fn canary_state(
        &self,
        host: &dyn Host,
        gateway: usize,
        upstream: usize,
        share_bp: u32,
        tripped: Option<bool>,
    ) {
        let Some(m) = self.of(gateway) else { return };
        let Some(canary) = upstream.checked_sub(1) else {
            return;
        };
        if let Some(id) = m.basis_points.get(canary).copied().flatten() {
            host.record(id, u64::from(share_bp));
        }
        if let (Some(t), Some(id)) = (tripped, m.guard_tripped.get(canary).copied().flatten()) {
            host.record(id, u64::from(t));
        }
    }

    /// A trip this worker wrote (once per Envoy process), or a dry-run one.
    pub fn guard_trip(&self, host: &dyn Host, gateway: usize, upstream: usize, dry_run: bool) {
        let Some(m) = self.of(gateway) else { return };
        let Some(canary) = upstream.checked_sub(1) else {
            return;
        };
        let ids = if dry_run {
            &m.guard_dry_run_trips
        } else {
            &m.guard_trips
        };
        Self::inc(host, ids.get(canary).copied().flatten());
    }

    /// A JWKS fetch of a source, counted for every gateway that uses it.
    pub fn jwks_fetch(&self, host: &dyn Host, gateways: &[usize], ok: bool) {
        for g in gateways {
            let id = self
                .of(*g)
                .and_then(|m| if ok { m.jwks_fetched } else { m.jwks_failed });
            Self::inc(host, id);
        }
    }
}
