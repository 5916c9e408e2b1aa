//! When to fetch the remote JWKS, and when to say so in the log. Pure: the
//! glue passes the time in (milliseconds) and reports what happened.
//!
//! - The first fetch is due at once. Until a key set has arrived, a failed
//!   fetch is retried every [`RETRY_WITHOUT_KEYS_MS`].
//! - With a key set, the next fetch is due `refresh_seconds` after the last
//!   success; a failure keeps the keys and retries after
//!   `min(refresh_seconds, RETRY_WITH_KEYS_MAX_MS)`.
//! - Only the first failure of a streak is reported for a warning, so an
//!   unreachable provider does not flood the log.

pub const RETRY_WITHOUT_KEYS_MS: u64 = 1_000;
pub const RETRY_WITH_KEYS_MAX_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    refresh_ms: u64,
    next_at_ms: u64,
    in_flight: bool,
    have_keys: bool,
    failures: u32,
}

impl Refresh {
    pub fn new(refresh_seconds: u64) -> Self {
        Self {
            refresh_ms: refresh_seconds.saturating_mul(1000),
            next_at_ms: 0,
            in_flight: false,
            have_keys: false,
            failures: 0,
        }
    }

    /// Whether a fetch should start now.
    pub fn due(&self, now_ms: u64) -> bool {
        !self.in_flight && now_ms >= self.next_at_ms
    }

    pub fn started(&mut self) {
        self.in_flight = true;
    }

    /// A usable key set arrived. Returns the number of failures that preceded
    /// it (non-zero: worth an "recovered" log line).
    pub fn succeeded(&mut self, now_ms: u64) -> u32 {
        let streak = self.failures;
        self.in_flight = false;
        self.have_keys = true;
        self.failures = 0;
        self.next_at_ms = now_ms.saturating_add(self.refresh_ms);
        streak
    }

    /// The fetch failed (no answer, bad status, unusable document, or could
    /// not be dispatched). Returns true for the first failure of a streak.
    pub fn failed(&mut self, now_ms: u64) -> bool {
        self.in_flight = false;
        self.failures = self.failures.saturating_add(1);
        let retry = if self.have_keys {
            self.refresh_ms.min(RETRY_WITH_KEYS_MAX_MS)
        } else {
            RETRY_WITHOUT_KEYS_MS
        };
        self.next_at_ms = now_ms.saturating_add(retry);
        self.failures == 1
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The tick period for a filter that fetches a JWKS and parks requests for up
/// to `timeout_ms`: a quarter of the timeout, between 50 ms and 1 s.
pub fn tick_period_ms(timeout_ms: u64) -> u64 {
    (timeout_ms / 4).clamp(50, 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_and_failure_streaks() {
        let mut r = Refresh::new(300);
        assert!(r.due(0));
        r.started();
        assert!(!r.due(10_000), "one fetch at a time");
        assert!(r.failed(1_000), "first failure is reported");
        assert!(!r.due(1_999));
        assert!(r.due(2_000), "retried after 1 s while there are no keys");
        r.started();
        assert!(!r.failed(2_000), "second failure of the streak is quiet");
        r.started();
        assert_eq!(r.succeeded(3_500), 2);
        assert!(!r.due(303_499));
        assert!(r.due(303_500));
        r.started();
        assert!(r.failed(303_500), "a new streak is reported again");
        assert!(!r.due(333_499));
        assert!(r.due(333_500), "with keys, retried after 30 s");
        r.started();
        assert_eq!(r.succeeded(334_000), 1);
        assert_eq!(r.failures(), 0);
    }

    #[test]
    fn short_refresh_retries_at_refresh_pace() {
        let mut r = Refresh::new(5);
        r.started();
        r.succeeded(0);
        r.started();
        r.failed(5_000);
        assert!(r.due(10_000));
    }

    #[test]
    fn tick_period() {
        assert_eq!(tick_period_ms(2_000), 500);
        assert_eq!(tick_period_ms(100), 50);
        assert_eq!(tick_period_ms(60_000), 1_000);
    }
}
