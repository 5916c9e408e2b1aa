//! The root context: parses the configuration once, defines the counters,
//! fetches the JWKS on the tick, and decides the requests parked until the
//! first key set arrives.

use std::cell::RefCell;
use std::rc::Rc;

use super::{internal_error, Http, Shared, Waiting, MAX_PARKED};
use crate::auth::oauth2::fetch::{self, JwksOutcome, MAX_JWKS_READ};
use crate::auth::oauth2::{tick_period_ms, Refresh};
use crate::auth::{Authenticator, CREDENTIAL_CACHE_CAPACITY};
use crate::canaries::{self, Canaries, TripAction, TRIP_LEVEL};
use crate::config::Plan;
use crate::decide::State;
use crate::host::Host;
use crate::park::{Parked, Parking};
use crate::streak::Streak;

use super::metrics::Metrics;

/// The root context of one plugin configuration (one per worker).
pub struct Root {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    /// One per JWKS source of the plan (gateways with the same `jwks_uri`
    /// share one): its schedule and the fetch in flight.
    jwks: Vec<JwksFetch>,
}

struct JwksFetch {
    refresh: Refresh,
    call: Option<u32>,
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        Self {
            context_id,
            shared: None,
            jwks: Vec::new(),
        }
    }

    pub fn on_vm_start(&mut self) -> bool {
        log::info!("canary-gate {} started", crate::VERSION);
        true
    }

    /// Parses and validates the plugin configuration; `false` (after one
    /// critical line naming the field) makes Envoy refuse the plugin.
    pub fn on_configure(&mut self, host: &dyn Host) -> bool {
        let bytes = match host.plugin_configuration() {
            Some(b) if !b.is_empty() => b,
            _ => {
                host.log_critical(&format!(
                    "canary-gate: invalid configuration: {}",
                    crate::config::EMPTY_CONFIGURATION
                ));
                return false;
            }
        };
        let plan = match crate::config::parse(&bytes) {
            Ok(plan) => plan,
            Err(e) => {
                host.log_critical(&format!("canary-gate: invalid configuration: {e}"));
                return false;
            }
        };
        log_plan(&plan);
        let metrics = Metrics::define(host, &plan);
        let seed = fastrand::u64(..);
        let state = State::new(seed, CREDENTIAL_CACHE_CAPACITY, plan.gateways.len());
        self.jwks = (0..plan.jwks_sources.len())
            .map(|s| JwksFetch {
                refresh: Refresh::new(plan.jwks_uri(s).map_or(0, |u| u.refresh_seconds)),
                call: None,
            })
            .collect();
        let plugin = host
            .plugin_name()
            .unwrap_or_else(|| "canary-gate".to_string());
        let canaries = Canaries::new(&plan, &plugin);
        let watch_tick = canaries.need_tick().then_some(WATCH_TICK_MS);
        let tick = (0..plan.jwks_sources.len())
            .filter_map(|s| plan.jwks_uri(s))
            .map(|u| tick_period_ms(u.endpoint.timeout_ms))
            .chain(watch_tick)
            .min();
        forget_stale_keys(host, &plugin, &canaries);
        let needs_clock = plan
            .gateways
            .iter()
            .any(|g| matches!(g.auth, Authenticator::OAuth2(_)));
        self.shared = Some(Rc::new(Shared {
            needs_clock,
            canaries: RefCell::new(canaries),
            plan,
            metrics,
            state: RefCell::new(state),
            parked: RefCell::new(Parking::new(MAX_PARKED)),
            introspection: RefCell::new(Streak::default()),
        }));
        if let Some(shared) = self.shared.clone() {
            watch(host, &shared, false);
        }
        let Some(tick) = tick else {
            return true;
        };
        if host
            .set_tick_period_ms(u32::try_from(tick).unwrap_or(u32::MAX))
            .is_err()
        {
            host.log_critical("canary-gate: invalid configuration: cannot set the tick period needed to fetch the JWKS");
            return false;
        }
        if let Ok(now) = host.now_ms() {
            self.fetch_jwks(host, now);
        }
        true
    }

    pub fn on_tick(&mut self, host: &dyn Host) {
        let Ok(now) = host.now_ms() else {
            return;
        };
        self.fetch_jwks(host, now);
        if let Some(shared) = self.shared.clone() {
            self.expire_parked(host, &shared, now);
            watch(host, &shared, true);
        }
    }

    pub fn new_http(&self, context_id: u32) -> Http {
        Http::new(context_id, self.shared.clone())
    }

    /// Starts the JWKS fetches that are due.
    fn fetch_jwks(&mut self, host: &dyn Host, now_ms: u64) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        for (source, fetch) in self.jwks.iter_mut().enumerate() {
            if !fetch.refresh.due(now_ms) {
                continue;
            }
            let Some(uri) = shared.plan.jwks_uri(source) else {
                continue;
            };
            let call = uri.endpoint.jwks_call();
            match host.dispatch(&call) {
                Ok(token) => {
                    fetch.refresh.started();
                    fetch.call = Some(token);
                }
                Err(status) => {
                    let why = fetch::dispatch_failed(&call.cluster, status);
                    let have_keys = shared.plan.jwks_loaded(source, &shared.state.borrow());
                    let outcome = fetch::failure(&mut fetch.refresh, have_keys, now_ms, &why);
                    jwks_done(self.context_id, host, &shared, source, outcome);
                }
            }
        }
    }

    /// A JWKS endpoint answered (or the call failed).
    pub fn on_http_call_response(&mut self, host: &dyn Host, token: u32, body_size: usize) {
        let Some(source) = self.jwks.iter().position(|f| f.call == Some(token)) else {
            return;
        };
        let (Ok(now), Some(shared), Some(fetch)) = (
            host.now_ms(),
            self.shared.clone(),
            self.jwks.get_mut(source),
        ) else {
            return;
        };
        fetch.call = None;
        let status = fetch::call_status(host.call_header(":status").as_deref());
        let body = read_body(host, body_size, MAX_JWKS_READ);
        let outcome = {
            let mut state = shared.state.borrow_mut();
            let refresh = &mut fetch.refresh;
            shared
                .plan
                .jwks_answer(source, refresh, &mut state, now, status, body.as_deref())
        };
        jwks_done(self.context_id, host, &shared, source, outcome);
    }

    /// Replies 503 to parked requests whose wait is over.
    fn expire_parked(&self, host: &dyn Host, shared: &Shared, now_ms: u64) {
        let expired: Vec<Parked<Waiting>> = shared.parked.borrow_mut().take_expired(now_ms);
        if expired.is_empty() {
            return;
        }
        for p in &expired {
            if host.set_effective_context(p.context_id).is_ok() {
                let gateway = p.data.gateway;
                shared.refuse(host, Some(gateway), &shared.plan.keys_unavailable(gateway));
            }
        }
        let _ = host.set_effective_context(self.context_id);
        log::debug!(
            "canary-gate: {} requests got 503 after waiting for the JWKS",
            expired.len()
        );
    }
}

fn jwks_done(root_id: u32, host: &dyn Host, shared: &Shared, source: usize, outcome: JwksOutcome) {
    let users = shared.plan.jwks_users(source);
    shared.metrics.jwks_fetch(host, users, outcome.ok);
    let (level, message) = outcome.log;
    log::log!(level, "{message}");
    if outcome.wake_parked {
        wake_parked(root_id, host, shared, users);
    }
}

/// Decides again every request parked for one of `gateways` now that their
/// keys are here.
fn wake_parked(root_id: u32, host: &dyn Host, shared: &Shared, gateways: &[usize]) {
    let parked = shared
        .parked
        .borrow_mut()
        .take_if(|w| gateways.contains(&w.gateway));
    if parked.is_empty() {
        return;
    }
    log::debug!(
        "canary-gate: resuming {} requests that waited for the JWKS",
        parked.len()
    );
    for p in parked {
        if host.set_effective_context(p.context_id).is_err() {
            continue; // The request is gone.
        }
        let result = shared
            .decide(host)
            .and_then(|outcome| shared.finish(host, outcome, &p.data.chosen));
        if let Err(status) = result {
            internal_error(host, status);
        }
    }
    let _ = host.set_effective_context(root_id);
}

/// How often a worker merges its guard windows and steps its ramps.
const WATCH_TICK_MS: u64 = 1_000;

/// A new configuration writes an empty value to the keys of the previous
/// one that it no longer uses (a changed canary starts clean), and lists its own.
fn forget_stale_keys(host: &dyn Host, plugin: &str, canaries: &Canaries) {
    let index = canaries::index_key(plugin);
    let current = canaries.keys();
    let (old, _) = host.shared_data(&index);
    for key in canaries::stale_keys(old.as_deref(), &current) {
        let _ = host.set_shared_data(&key, b"", None);
    }
    let _ = host.set_shared_data(&index, current.join("\n").as_bytes(), None);
}

/// On the tick: merge this worker's guard windows into the shared ones, judge
/// them, write a trip once, see trips written by any worker, and route with the
/// live split (ramps stepped, tripped canaries diverted).
fn watch(host: &dyn Host, shared: &Shared, merge: bool) {
    let Ok(now_ms) = host.now_ms() else { return };
    let now_s = now_ms / 1000;
    let mut canaries = shared.canaries.borrow_mut();
    for i in 0..canaries.len() {
        if !canaries.guarded(i) {
            continue;
        }
        let (Some(window_key), Some(trip_key)) = (canaries.window_key(i), canaries.trip_key(i))
        else {
            continue;
        };
        let (mut window, cas) = host.shared_data(&window_key);
        if merge {
            if let Some(merged) = canaries.merge_into(i, window.as_deref()) {
                // A lost race keeps the deltas for the next tick.
                if host.set_shared_data(&window_key, &merged, cas).is_ok() {
                    canaries.merged(i);
                    window = Some(merged);
                }
            }
        }
        let (gateway, upstream) = canaries.target(i).unwrap_or((0, 0));
        match canaries.judge(&shared.plan, i, window.as_deref(), now_s) {
            TripAction::None => {}
            TripAction::DryRun { log } => {
                // Once per process too: the first worker to mark the key says it.
                let (current, cas) = host.shared_data(&trip_key);
                let unmarked = current.as_deref().is_none_or(<[u8]>::is_empty);
                if unmarked
                    && host
                        .set_shared_data(&trip_key, canaries::DRY_RUN_MARK, cas)
                        .is_ok()
                {
                    log::log!(TRIP_LEVEL, "{log}");
                    shared.metrics.guard_trip(host, gateway, upstream, true);
                }
            }
            TripAction::Trip { share_bp, log } => {
                let (current, cas) = host.shared_data(&trip_key);
                let untripped = canaries::parse_trip(current.as_deref()).is_none();
                let value = canaries::trip_value(share_bp);
                // The worker whose write lands logs and counts: once per process.
                if untripped && host.set_shared_data(&trip_key, &value, cas).is_ok() {
                    log::log!(TRIP_LEVEL, "{log}");
                    shared.metrics.guard_trip(host, gateway, upstream, false);
                }
            }
        }
        let (trip, _) = host.shared_data(&trip_key);
        canaries.observe_trip(i, trip.as_deref());
    }
    let mut state = shared.state.borrow_mut();
    for (gateway, split) in canaries.splits(&shared.plan, now_s) {
        state.set_split(gateway, split);
    }
    drop(state);
    for (g, gateway) in shared.plan.gateways.iter().enumerate() {
        for c in 0..gateway.canaries.len() {
            let watched = (0..canaries.len()).find(|i| canaries.target(*i) == Some((g, c + 1)));
            let share = match watched {
                Some(i) => canaries.effective_share(&shared.plan, i, now_s),
                None => canaries::share_at(&shared.plan, g, c, now_s),
            };
            let tripped = watched
                .filter(|i| canaries.guarded(*i))
                .map(|i| canaries.is_tripped(i));
            shared.metrics.canary_state(host, g, c + 1, share, tripped);
        }
    }
}

/// Up to `max` bytes of a call answer's body, and one byte more so that an
/// oversized answer is recognised; `None` if there is none.
pub(super) fn read_body(host: &dyn Host, body_size: usize, max: usize) -> Option<Vec<u8>> {
    if body_size == 0 {
        return None;
    }
    host.call_body(body_size.min(max.saturating_add(1)))
}

fn log_plan(plan: &Plan) {
    log::info!(
        "canary-gate configured: {} gateways, route header {}",
        plan.gateways.len(),
        plan.route_header
    );
    for g in &plan.gateways {
        log::info!(
            "canary-gate: gateway {}: primary {}, {} canaries, auth {}",
            g.name,
            g.upstream_name(0),
            g.upstreams.len().saturating_sub(1),
            g.auth.mode(),
        );
        let Authenticator::OAuth2(o) = &g.auth else {
            continue;
        };
        if let Some(i) = o.introspection() {
            log::info!(
                "canary-gate: gateway {}: oauth2 introspection via cluster {} {} (cache {} s)",
                g.name,
                i.endpoint.cluster,
                i.endpoint.path,
                i.cache_seconds
            );
        }
        if let Some(uri) = o.jwks_uri() {
            log::info!(
                "canary-gate: gateway {}: oauth2 JWKS from cluster {} {} every {} s",
                g.name,
                uri.endpoint.cluster,
                uri.endpoint.path,
                uri.refresh_seconds
            );
        }
    }
}
