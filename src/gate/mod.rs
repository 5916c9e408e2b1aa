//! The glue: what the filter does at each proxy-wasm callback, written against
//! the [`Host`] trait so that it compiles and is tested natively with a mock
//! host (`tests.rs`), below the real-Envoy tier. It only translates: host calls
//! in, core decisions out.
//!
//! - [`root`]: the root context: configuration, metrics, JWKS fetches on the
//!   tick, and the requests parked until the first key set arrives;
//! - [`http`]: one HTTP request: decide, then forward, refuse, park, or
//!   introspect;
//! - this file: what every request of one configuration shares, and how a
//!   decision is applied to the request.
//!
//! `crate::wasm` (wasm32 only) is the adapter that implements [`Host`] with
//! proxy-wasm and hands each callback to these types.

mod http;
mod metrics;
mod root;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

pub use http::Http;
pub use root::Root;

use crate::canaries::Canaries;
use crate::config::Plan;
use crate::decide::{Decision, Outcome, State, Wait};
use crate::host::{Action, Host, HostError};
use crate::park::Parking;
use crate::reply::{Denial, Reply};
use crate::request::{single_in_map, Ambiguous, Request};
use crate::split::How;
use crate::streak::Streak;
use metrics::Metrics;

/// At most this many requests wait for the first key set per worker; more
/// get 503 at once.
const MAX_PARKED: usize = 4096;

/// Where a forwarded request went, for the response phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Routed {
    gateway: usize,
    upstream: usize,
    /// The split chose it (select-header traffic is monitored, not judged).
    by_split: bool,
    /// When the filter forwarded it (ms since the epoch): latency starts here.
    at_ms: u64,
}

/// The upstream chosen for a request. Shared with the root context while the
/// request is parked.
type Chosen = Rc<Cell<Option<Routed>>>;

/// A request parked until its gateway's first key set: where to record the
/// chosen (gateway, upstream), and the gateway.
struct Waiting {
    chosen: Chosen,
    gateway: usize,
}

/// What every HTTP context of one configuration shares.
struct Shared {
    plan: Plan,
    metrics: Metrics,
    state: RefCell<State>,
    parked: RefCell<Parking<Waiting>>,
    /// The introspection endpoint's failures, reported once per streak.
    introspection: RefCell<Streak>,
    /// Some gateway checks tokens, which needs the clock.
    needs_clock: bool,
    /// The canaries with a guard or a ramp: shares, windows, trips.
    canaries: RefCell<Canaries>,
}

/// Request headers read through the host (of the effective context).
struct HostRequest<'h>(&'h dyn Host);

impl Request for HostRequest<'_> {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.0.request_header(name)
    }

    fn header_values(&self, name: &str) -> Vec<Vec<u8>> {
        let map = self.0.request_header_map();
        crate::wire::values(&map, name)
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// One read of the whole map (Envoy's single-value read gives only the
    /// first copy), searched in place.
    fn single_header(&self, name: &str) -> Result<Option<Vec<u8>>, Ambiguous> {
        single_in_map(self.0.request_header_map(), name)
    }
}

impl Shared {
    /// Decides the request of the current (effective) context.
    fn decide(&self, host: &dyn Host) -> Result<Outcome<'_>, HostError> {
        // Only token checks need the clock: spare the host call otherwise.
        let now = if self.needs_clock {
            host.now_ms()? / 1000
        } else {
            0
        };
        let mut state = self.state.borrow_mut();
        Ok(self.plan.decide(&HostRequest(host), &mut state, now))
    }

    /// Applies a forward decision to the request headers of the current
    /// (effective) context.
    fn forward(
        &self,
        host: &dyn Host,
        decision: &Decision<'_>,
        chosen: &Cell<Option<Routed>>,
    ) -> Result<(), HostError> {
        let plan = &self.plan;
        let gateway = decision.gateway;
        for name in decision.remove_headers() {
            host.set_request_header(name, None)?;
        }
        if let Some(path) = decision.new_path.as_deref() {
            host.set_request_header(":path", Some(path))?;
        }
        // Identity is the filter's to assert: the client's copy is replaced by the
        // authenticated consumer, or removed when there is none.
        let consumer = decision.consumer.as_deref().map(str::as_bytes);
        host.set_request_header(&plan.consumer_header, consumer)?;
        if decision.consumer.is_some() {
            self.metrics.auth_allowed(host, gateway);
        }
        if decision.cached {
            self.metrics.token_cache_hit(host, gateway);
        }
        // Always overwrite: a route header sent by the client is never trusted.
        let upstream = decision.upstream_name.as_bytes();
        host.set_request_header(&plan.route_header, Some(upstream))?;
        clear_route_cache(host);
        self.metrics.routed(host, gateway, decision.upstream);
        self.record_for_access_log(host, decision);
        chosen.set(Some(Routed {
            gateway,
            upstream: decision.upstream,
            by_split: decision.how != How::Selected,
            at_ms: host.now_ms().unwrap_or(0),
        }));
        log::debug!(
            "canary-gate: {} -> {} ({:?}, bucket {:?}, gateway {})",
            decision.consumer.as_deref().unwrap_or("-"),
            decision.upstream_name,
            decision.how,
            decision.bucket,
            plan.gateway(gateway).map_or("-", |g| g.name.as_str()),
        );
        Ok(())
    }

    /// What the access log can print: `%FILTER_STATE(wasm.canary_gate_gateway:PLAIN)%`,
    /// `..._upstream`, `..._bucket`, `..._consumer`.
    fn record_for_access_log(&self, host: &dyn Host, decision: &Decision<'_>) {
        if let Some(g) = self.plan.gateway(decision.gateway) {
            host.set_property("canary_gate_gateway", g.name.as_bytes());
        }
        host.set_property("canary_gate_upstream", decision.upstream_name.as_bytes());
        if let Some(bucket) = decision.bucket {
            host.set_property("canary_gate_bucket", bucket.to_string().as_bytes());
        }
        if let Some(consumer) = decision.consumer.as_deref() {
            host.set_property("canary_gate_consumer", consumer.as_bytes());
        }
    }

    /// An unmatched request with `unmatched: pass`: forwarded with neither
    /// the route header nor the consumer header (the client's copies removed).
    fn pass(&self, host: &dyn Host) -> Result<(), HostError> {
        host.set_request_header(&self.plan.route_header, None)?;
        host.set_request_header(&self.plan.consumer_header, None)?;
        clear_route_cache(host);
        self.metrics.passed(host);
        log::debug!("canary-gate: no gateway; passed on");
        Ok(())
    }

    /// Sends the local reply of a refusal, and counts it (per gateway, or as
    /// unmatched / bad path when no gateway took the request).
    fn refuse(&self, host: &dyn Host, gateway: Option<usize>, denial: &Denial) -> Action {
        self.metrics.denied(host, gateway, denial.reason);
        log::debug!(
            "canary-gate: denied with {} ({})",
            denial.status,
            denial.reason
        );
        send(host, &denial.reply())
    }

    /// Carries out an outcome that comes after a pause (a parked request, an
    /// introspection answer): forward and resume, or refuse.
    fn finish(
        &self,
        host: &dyn Host,
        outcome: Outcome<'_>,
        chosen: &Cell<Option<Routed>>,
    ) -> Result<(), HostError> {
        match outcome {
            Outcome::Forward(decision) => {
                self.forward(host, &decision, chosen)?;
                host.resume_request()
            }
            Outcome::Pass => {
                self.pass(host)?;
                host.resume_request()
            }
            Outcome::Refuse { gateway, denial } => {
                self.refuse(host, gateway, &denial);
                Ok(())
            }
            // Nothing is waited for twice: a JWT once keys exist, an opaque
            // token once introspected. Fail closed.
            Outcome::Wait(Wait::Keys { gateway } | Wait::Introspect { gateway, .. }) => {
                self.refuse(host, Some(gateway), &self.plan.keys_unavailable(gateway));
                Ok(())
            }
        }
    }
}

/// Makes Envoy pick the route again now that the route header is set. Envoy does this by itself
/// after any request-header change for plugins on ABI 0.2.1 (this SDK), but not for newer ABIs
/// (Envoy 1.33 on), so an SDK upgrade must not silently route on the client's headers. A host
/// without the `clear_route_cache` foreign function answers `NotFound`: nothing to do then.
fn clear_route_cache(host: &dyn Host) {
    if let Err(status) = host.clear_route_cache() {
        log::debug!("canary-gate: clear_route_cache unavailable ({status})");
    }
}

/// Sends a local reply; resets the request if even that fails.
fn send(host: &dyn Host, reply: &Reply) -> Action {
    let headers = reply.header_pairs();
    if host
        .send_reply(reply.status, &headers, reply.body.as_bytes())
        .is_err()
    {
        host.reset_request();
    }
    Action::Pause
}

/// A host call failed during a request: refuse it (fail closed).
fn internal_error(host: &dyn Host, status: HostError) -> Action {
    log::warn!("canary-gate: host call failed ({status}); refusing the request");
    send(host, &Reply::internal())
}
