//! The live state of the canaries of one VM (one Envoy worker): their current
//! share (ramps), the responses of each guarded canary since the last merge,
//! and whether its guard has tripped. Pure: the glue hands in the clock and the
//! shared-data values, and carries out what this returns (write a value, log a
//! line, count a trip, route with a new split).
//!
//! Workers share evidence through proxy-wasm shared data, never on the request
//! path: each worker records into its own window, and on its tick merges that
//! window into the shared one (compare-and-swap), judges the shared window, and
//! writes a trip once. Keys are per plugin, gateway, canary and the digest of
//! the canary's configuration, so a re-pushed configuration keeps a trip and a
//! changed canary starts clean.

use log::Level;

use crate::config::Plan;
use crate::split::SplitPlan;
use crate::watch::class::Class;
use crate::watch::guard::{Guard, Verdict};
use crate::watch::window::Window;

/// One canary of one gateway with a guard or a ramp.
#[derive(Debug)]
struct Entry {
    gateway: usize,
    /// Index among the gateway's canaries (upstream `canary + 1`).
    canary: usize,
    guard: Option<Guard>,
    /// This worker's responses since its last merge into the shared window.
    local: Window,
    /// The share the canary had when its guard tripped (its range is frozen
    /// there and goes to the primary), if it has.
    tripped: Option<u32>,
    /// Shared-data key prefix for this canary's configuration.
    key: String,
    /// A dry-run guard said it would trip (logged once).
    would_trip: bool,
}

/// What a tick decided for one guarded canary, for the glue to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum TripAction {
    /// Nothing to do.
    None,
    /// Write [`trip_value`] to [`Canaries::trip_key`] if it is still empty;
    /// the worker that writes it logs this line and counts the trip.
    Trip { share_bp: u32, log: String },
    /// A dry-run guard would trip: log and count, route as before.
    DryRun { log: String },
}

/// The live canaries of one configuration.
#[derive(Debug)]
pub struct Canaries {
    entries: Vec<Entry>,
}

/// The value a trip key holds: the frozen share, in basis points.
pub fn trip_value(share_bp: u32) -> Vec<u8> {
    format!("tripped {share_bp}").into_bytes()
}

/// The frozen share in a trip key's value; `None` when it is empty (not
/// tripped, or cleared when the canary's configuration changed).
pub fn parse_trip(value: Option<&[u8]>) -> Option<u32> {
    let text = std::str::from_utf8(value?).ok()?;
    text.strip_prefix("tripped ")?.parse().ok()
}

fn hex16(digest: &[u8; 32]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Canaries {
    /// The canaries of `plan` that have a guard or a ramp. `plugin` names the
    /// plugin (its keys are its own).
    pub fn new(plan: &Plan, plugin: &str) -> Self {
        let mut entries = Vec::new();
        for (g, gateway) in plan.gateways.iter().enumerate() {
            for (c, canary) in gateway.canaries.iter().enumerate() {
                if canary.guard.is_none() && canary.ramp.is_none() {
                    continue;
                }
                let window = canary.guard.as_ref().map_or(1, |g| g.window_seconds);
                entries.push(Entry {
                    gateway: g,
                    canary: c,
                    guard: canary.guard.clone(),
                    local: Window::new(window),
                    tripped: None,
                    key: format!(
                        "canary-gate/{plugin}/{}/{}/{}",
                        gateway.name,
                        canary.name,
                        hex16(&canary.digest)
                    ),
                    would_trip: false,
                });
            }
        }
        Self { entries }
    }

    /// Number of watched canaries; `index` below ranges over them.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the glue must tick at least every second (a guard merges and
    /// judges on the tick; a ramp steps on it).
    pub fn need_tick(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Whether `index` has a guard (only those have windows and trip keys).
    pub fn guarded(&self, index: usize) -> bool {
        self.entries.get(index).is_some_and(|e| e.guard.is_some())
    }

    /// The shared-data key of `index`'s window (all workers' responses).
    pub fn window_key(&self, index: usize) -> Option<String> {
        self.entries.get(index).map(|e| format!("{}/window", e.key))
    }

    /// The shared-data key of `index`'s trip.
    pub fn trip_key(&self, index: usize) -> Option<String> {
        self.entries.get(index).map(|e| format!("{}/trip", e.key))
    }

    /// Every key this configuration uses, for the index that lets a later
    /// configuration clear the keys of canaries that changed.
    pub fn keys(&self) -> Vec<String> {
        (0..self.entries.len())
            .filter(|i| self.guarded(*i))
            .flat_map(|i| [self.window_key(i), self.trip_key(i)])
            .flatten()
            .collect()
    }

    /// A response of a request the split sent to `upstream` of `gateway`
    /// (select-header traffic is not judged). `latency_ms` from forwarding to
    /// the response headers.
    pub fn record(
        &mut self,
        gateway: usize,
        upstream: usize,
        status: u32,
        class: Class,
        latency_ms: u64,
        now_s: u64,
    ) {
        let Some(canary) = upstream.checked_sub(1) else {
            return;
        };
        for e in &mut self.entries {
            if e.gateway == gateway && e.canary == canary {
                if let Some(guard) = &e.guard {
                    e.local
                        .record(now_s, guard.count(status, class, latency_ms));
                }
            }
        }
    }

    /// This worker's window merged into the shared one (`shared`: its current
    /// value): the bytes to write back with compare-and-swap, or `None` when
    /// there is nothing new. After a successful write call [`Self::merged`].
    pub fn merge_into(&self, index: usize, shared: Option<&[u8]>) -> Option<Vec<u8>> {
        let e = self.entries.get(index)?;
        let guard = e.guard.as_ref()?;
        if e.local.is_empty() {
            return None;
        }
        let mut window = shared
            .and_then(|b| Window::from_bytes(b, guard.window_seconds))
            .unwrap_or_else(|| Window::new(guard.window_seconds));
        window.merge(&e.local);
        Some(window.to_bytes())
    }

    /// The local window went into the shared one: start a new one.
    pub fn merged(&mut self, index: usize) {
        if let Some(e) = self.entries.get_mut(index) {
            e.local.clear();
        }
    }

    /// Judges `index` on the shared window at `now_s`; `share_bp` is its
    /// current share (frozen there if it trips).
    pub fn judge(
        &mut self,
        plan: &Plan,
        index: usize,
        shared: Option<&[u8]>,
        now_s: u64,
    ) -> TripAction {
        let Some(e) = self.entries.get_mut(index) else {
            return TripAction::None;
        };
        let Some(guard) = &e.guard else {
            return TripAction::None;
        };
        if e.tripped.is_some() {
            return TripAction::None;
        }
        let counts = shared
            .and_then(|b| Window::from_bytes(b, guard.window_seconds))
            .map(|w| w.total(now_s))
            .unwrap_or_default();
        let Verdict::Trip(trip) = guard.judge(counts) else {
            return TripAction::None;
        };
        let (gateway, canary) = names(plan, e.gateway, e.canary);
        if guard.dry_run {
            if std::mem::replace(&mut e.would_trip, true) {
                return TripAction::None;
            }
            let log = format!(
                "canary-gate: guard (dry run) of gateway {gateway} canary {canary} would trip: {trip}; routing as before"
            );
            return TripAction::DryRun { log };
        }
        let share_bp = share_at(plan, e.gateway, e.canary, now_s);
        let log = format!(
            "canary-gate: guard tripped for gateway {gateway} canary {canary}: {trip}; its traffic goes to the primary until the canary's configuration changes"
        );
        TripAction::Trip { share_bp, log }
    }

    /// The trip key's current value (read on every tick): a trip written by
    /// any worker takes effect here. Returns whether it changed.
    pub fn observe_trip(&mut self, index: usize, value: Option<&[u8]>) -> bool {
        let Some(e) = self.entries.get_mut(index) else {
            return false;
        };
        let tripped = parse_trip(value);
        let changed = e.tripped != tripped;
        e.tripped = tripped;
        changed
    }

    /// Gateway and upstream index of `index`, for metrics.
    pub fn target(&self, index: usize) -> Option<(usize, usize)> {
        self.entries.get(index).map(|e| (e.gateway, e.canary + 1))
    }

    pub fn is_tripped(&self, index: usize) -> bool {
        self.entries.get(index).is_some_and(|e| e.tripped.is_some())
    }

    /// Each gateway's live split at `now_s` (ramps stepped, tripped canaries
    /// diverted to the primary), for the gateways that have watched canaries;
    /// `None` for a gateway routed as configured.
    pub fn splits(&self, plan: &Plan, now_s: u64) -> Vec<(usize, Option<SplitPlan>)> {
        let mut gateways: Vec<usize> = self.entries.iter().map(|e| e.gateway).collect();
        gateways.dedup();
        gateways
            .into_iter()
            .filter_map(|g| {
                let gateway = plan.gateways.get(g)?;
                let mut shares = Vec::with_capacity(gateway.canaries.len());
                let mut diverted = Vec::with_capacity(gateway.canaries.len());
                for c in 0..gateway.canaries.len() {
                    let tripped = self
                        .entries
                        .iter()
                        .find(|e| e.gateway == g && e.canary == c)
                        .and_then(|e| e.tripped);
                    shares.push(tripped.unwrap_or_else(|| share_at(plan, g, c, now_s)));
                    diverted.push(tripped.is_some());
                }
                let live = (shares != gateway.split.shares_bp() || diverted.contains(&true))
                    .then(|| gateway.split.reshaped(&shares, &diverted));
                Some((g, live))
            })
            .collect()
    }

    /// The share each watched canary gets now (0 when tripped), for the
    /// `canary_basis_points` gauge.
    pub fn effective_share(&self, plan: &Plan, index: usize, now_s: u64) -> u32 {
        match self.entries.get(index) {
            Some(e) if e.tripped.is_some() => 0,
            Some(e) => share_at(plan, e.gateway, e.canary, now_s),
            None => 0,
        }
    }
}

/// A canary's share at `now_s`: its ramp's, else its configured percent.
pub fn share_at(plan: &Plan, gateway: usize, canary: usize, now_s: u64) -> u32 {
    let Some(c) = plan
        .gateways
        .get(gateway)
        .and_then(|g| g.canaries.get(canary))
    else {
        return 0;
    };
    c.ramp
        .map_or(c.percent_bp, |r| r.share_bp(c.percent_bp, now_s))
}

fn names(plan: &Plan, gateway: usize, canary: usize) -> (&str, &str) {
    let g = plan.gateways.get(gateway);
    (
        g.map_or("-", |g| g.name.as_str()),
        g.and_then(|g| g.canaries.get(canary))
            .map_or("-", |c| c.name.as_str()),
    )
}

/// The level of a trip line: an operator must act on it.
pub const TRIP_LEVEL: Level = Level::Warn;

/// The index of this plugin's keys (shared data has no delete: a later
/// configuration writes an empty value to every key it no longer uses).
pub fn index_key(plugin: &str) -> String {
    format!("canary-gate/{plugin}/keys")
}

/// The keys listed in an index value that `current` no longer uses.
pub fn stale_keys(index: Option<&[u8]>, current: &[String]) -> Vec<String> {
    let Some(text) = index.and_then(|b| std::str::from_utf8(b).ok()) else {
        return Vec::new();
    };
    text.lines()
        .filter(|k| !k.is_empty() && !current.iter().any(|c| c == k))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn plan() -> Plan {
        parse(
            br#"{"primary":"v1","split":{"by":"header","name":"x-user"},"canaries":[
                {"name":"v2","percent":10,"guard":{"max_error_rate":0.1,"min_requests":10,"window_seconds":5}},
                {"name":"v3","percent":5,"ramp":{"start":"1970-01-01T00:16:40Z","step":5,"every_seconds":100,"until":20}},
                {"name":"v4","percent":1,"guard":{"max_error_rate":0.1,"min_requests":10,"dry_run":true}}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn ramps_step_with_the_clock() {
        let p = plan();
        let c = Canaries::new(&p, "gate");
        assert_eq!(c.len(), 3);
        assert_eq!(share_at(&p, 0, 1, 999), 500);
        assert_eq!(share_at(&p, 0, 1, 1_100), 1_000);
        assert_eq!(share_at(&p, 0, 1, 99_999), 2_000, "stops at until");
        let splits = c.splits(&p, 999);
        assert_eq!(
            splits,
            vec![(0, None)],
            "before the first step: as configured"
        );
        let splits = c.splits(&p, 1_200);
        let live = splits[0].1.as_ref().expect("the ramp moved the split");
        assert_eq!(live.shares_bp(), vec![1_000, 1_500, 100]);
    }

    #[test]
    fn a_guard_trips_once_on_the_shared_window_and_diverts_its_range() {
        let p = plan();
        let mut c = Canaries::new(&p, "gate");
        // Below min_requests: no verdict.
        for _ in 0..9 {
            c.record(0, 1, 503, Class::ServerError, 5, 100);
        }
        let shared = c.merge_into(0, None).unwrap();
        c.merged(0);
        assert_eq!(c.merge_into(0, Some(&shared)), None, "nothing new");
        assert_eq!(c.judge(&p, 0, Some(&shared), 100), TripAction::None);
        // Another worker's responses, merged through the bytes.
        let mut other = Canaries::new(&p, "gate");
        other.record(0, 1, 200, Class::Success, 5, 101);
        let shared = other.merge_into(0, Some(&shared)).unwrap();
        let TripAction::Trip { share_bp, log } = c.judge(&p, 0, Some(&shared), 101) else {
            panic!("9 of 10 failed")
        };
        assert_eq!(share_bp, 1_000);
        assert_eq!(log, "canary-gate: guard tripped for gateway default canary v2: error rate 0.900 (9 of 10) exceeds 0.1; its traffic goes to the primary until the canary's configuration changes");
        // Out of the window (5 s), the evidence is gone.
        assert_eq!(c.judge(&p, 0, Some(&shared), 106), TripAction::None);

        assert!(c.observe_trip(0, Some(&trip_value(share_bp))));
        assert!(!c.observe_trip(0, Some(&trip_value(share_bp))));
        assert!(c.is_tripped(0));
        assert_eq!(c.effective_share(&p, 0, 101), 0);
        let live = c.splits(&p, 101)[0].1.clone().unwrap();
        assert_eq!(live.shares_bp(), vec![1_000, 500, 100], "the range stays");
        assert_eq!(live.upstream_for_bucket(0), 0, "and goes to the primary");
        assert_eq!(live.upstream_for_bucket(1_000), 2, "v3's users stay");
        assert_eq!(
            c.judge(&p, 0, Some(&shared), 101),
            TripAction::None,
            "trips once"
        );
        // Cleared (the configuration changed): routed again.
        assert!(c.observe_trip(0, Some(b"")));
        assert_eq!(c.splits(&p, 101)[0].1, None);
    }

    #[test]
    fn select_header_and_primary_traffic_is_not_judged_and_dry_runs_only_log() {
        let p = plan();
        let mut c = Canaries::new(&p, "gate");
        c.record(0, 0, 503, Class::ServerError, 5, 100);
        assert_eq!(
            c.merge_into(0, None),
            None,
            "the primary is not a guarded canary"
        );
        for _ in 0..10 {
            c.record(0, 3, 503, Class::ServerError, 5, 100);
        }
        let shared = c.merge_into(2, None).unwrap();
        let TripAction::DryRun { log } = c.judge(&p, 2, Some(&shared), 100) else {
            panic!("dry run")
        };
        assert!(log.contains("would trip"), "{log}");
        assert_eq!(
            c.judge(&p, 2, Some(&shared), 100),
            TripAction::None,
            "logged once"
        );
        assert!(!c.is_tripped(2));
    }

    #[test]
    fn keys_name_the_plugin_gateway_canary_and_configuration() {
        let p = plan();
        let c = Canaries::new(&p, "gate");
        let key = c.trip_key(0).unwrap();
        assert!(key.starts_with("canary-gate/gate/default/v2/"), "{key}");
        assert_eq!(
            c.keys().len(),
            4,
            "window and trip of the two guarded canaries"
        );
        // A changed canary (another revision) has other keys.
        let changed = parse(
            br#"{"primary":"v1","canaries":[{"name":"v2","percent":10,"revision":"b",
            "guard":{"max_error_rate":0.1,"min_requests":10,"window_seconds":5}}]}"#,
        )
        .unwrap();
        let c2 = Canaries::new(&changed, "gate");
        assert_ne!(c2.trip_key(0), c.trip_key(0));
        let index = c.keys().join("\n");
        let stale = stale_keys(Some(index.as_bytes()), &c2.keys());
        assert_eq!(stale.len(), 4);
        assert_eq!(parse_trip(Some(b"")), None);
        assert_eq!(parse_trip(Some(b"tripped 250")), Some(250));
    }
}
