//! The ramp: a canary's share as a function of the clock, so every replica
//! computes the same share with no coordination.
//!
//! Before `start` the share is the configured percent; from `start` on it is
//! `min(until, percent + step * floor((t - start) / every))`, so the first rise
//! comes `every` after `start`. Shares are in basis points (percent x 100).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ramp {
    /// Unix seconds.
    pub start_s: u64,
    pub step_bp: u32,
    pub every_s: u64,
    pub until_bp: u32,
}

impl Ramp {
    /// The share at `now_s` of a canary configured at `base_bp`.
    pub fn share_bp(&self, base_bp: u32, now_s: u64) -> u32 {
        if now_s < self.start_s || self.every_s == 0 {
            return base_bp;
        }
        let steps = (now_s - self.start_s) / self.every_s;
        let raised =
            u64::from(base_bp).saturating_add(u64::from(self.step_bp).saturating_mul(steps));
        let capped = raised.min(u64::from(self.until_bp.max(base_bp)));
        u32::try_from(capped).unwrap_or(self.until_bp)
    }

    /// When the share next changes (Unix seconds), or `None` once it is at `until`.
    pub fn next_change_s(&self, base_bp: u32, now_s: u64) -> Option<u64> {
        if self.share_bp(base_bp, now_s) >= self.until_bp || self.every_s == 0 || self.step_bp == 0
        {
            return None;
        }
        if now_s < self.start_s {
            return self.start_s.checked_add(self.every_s);
        }
        let steps = (now_s - self.start_s) / self.every_s;
        self.start_s
            .checked_add(steps.checked_add(1)?.checked_mul(self.every_s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAMP: Ramp = Ramp {
        start_s: 1_000,
        step_bp: 500,
        every_s: 600,
        until_bp: 5_000,
    };

    #[test]
    fn the_formula() {
        assert_eq!(
            RAMP.share_bp(1_000, 0),
            1_000,
            "before start: the configured percent"
        );
        assert_eq!(
            RAMP.share_bp(1_000, 1_000),
            1_000,
            "the first rise comes every_s after start"
        );
        assert_eq!(RAMP.share_bp(1_000, 1_599), 1_000);
        assert_eq!(RAMP.share_bp(1_000, 1_600), 1_500);
        assert_eq!(RAMP.share_bp(1_000, 1_000 + 600 * 7), 4_500);
        assert_eq!(RAMP.share_bp(1_000, 1_000 + 600 * 8), 5_000);
        assert_eq!(RAMP.share_bp(1_000, u64::MAX), 5_000, "stops at until");
    }

    #[test]
    fn next_change() {
        assert_eq!(RAMP.next_change_s(1_000, 0), Some(1_600));
        assert_eq!(RAMP.next_change_s(1_000, 1_600), Some(2_200));
        assert_eq!(RAMP.next_change_s(1_000, 1_000 + 600 * 8), None);
    }
}
