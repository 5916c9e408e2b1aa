//! The filter's live splits at a given time, computed by the filter's own code
//! ([`Canaries::splits`], what its tick routes with: ramps stepped), with no
//! guard tripped (the tool cannot see a running Envoy's trips).

use crate::canaries::Canaries;
use crate::config::Plan;
use crate::decide::State;
use crate::split::SplitPlan;

/// A decision state whose splits are the live ones at `now_s` (Unix seconds).
pub fn state_at(plan: &Plan, now_s: u64) -> State {
    let mut state = State::new(fastrand::u64(..), 16, plan.gateways.len());
    for (g, split) in Canaries::new(plan, "canary-gate-cli").splits(plan, now_s) {
        state.set_split(g, split);
    }
    state
}

/// Gateway `g`'s live split at `now_s` (its configured split when no ramp
/// moves it).
pub fn split_at(plan: &Plan, g: usize, now_s: u64) -> Option<SplitPlan> {
    let configured = plan.gateway(g)?.split.clone();
    let live = Canaries::new(plan, "canary-gate-cli")
        .splits(plan, now_s)
        .into_iter()
        .find(|(x, _)| *x == g)
        .and_then(|(_, s)| s);
    Some(live.unwrap_or(configured))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn a_ramp_moves_the_share_at_its_steps() {
        let plan = parse(
            br#"{"primary":"v1","canaries":[{"name":"v2","percent":10,
                 "ramp":{"start":"2030-01-01T00:00:00Z","step":5,"every_seconds":600,"until":50}}]}"#,
        )
        .unwrap();
        let start = 1_893_456_000;
        let share = |t| split_at(&plan, 0, t).unwrap().shares_bp();
        assert_eq!(
            share(start - 1),
            vec![1000],
            "before the start: the configured percent"
        );
        assert_eq!(share(start + 600), vec![1500]);
        assert_eq!(share(start + 600 * 100), vec![5000], "stops at until");
        assert!(split_at(&plan, 1, start).is_none());
    }
}
