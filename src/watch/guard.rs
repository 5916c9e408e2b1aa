//! The canary guard: over a sliding window of the responses the split sent to
//! a canary, trip when the failure share or the slow share exceeds its bound,
//! but only with enough evidence (`min_requests`).

use std::fmt;

use super::class::{Class, Failures};
use super::window::Counts;

pub const DEFAULT_MIN_REQUESTS: u64 = 20;
pub const DEFAULT_WINDOW_SECONDS: u32 = 60;

/// A compiled `guard`.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub max_error_rate: f64,
    pub failures: Failures,
    /// A response slower than this is slow; with `max_slow_rate`.
    pub slow: Option<SlowBound>,
    pub min_requests: u64,
    pub window_seconds: u32,
    /// Log and count what would trip, and route as before.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowBound {
    pub slow_ms: u64,
    pub max_slow_rate: f64,
}

/// The guard's verdict on a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Fewer than `min_requests` completed: no verdict, never a trip.
    TooFew,
    Healthy,
    Trip(Trip),
}

/// The figures that tripped a canary, for the operator's log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    pub counts: Counts,
    pub error_rate: f64,
    pub slow_rate: f64,
    pub max_error_rate: f64,
    pub slow: Option<SlowBound>,
    /// Which bound was exceeded: the error rate (else the slow rate).
    pub by_errors: bool,
}

impl fmt::Display for Trip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.counts;
        if self.by_errors {
            write!(
                f,
                "error rate {:.3} ({} of {}) exceeds {}",
                self.error_rate, c.failed, c.total, self.max_error_rate
            )
        } else {
            let (ms, max) = self.slow.map_or((0, 0.0), |s| (s.slow_ms, s.max_slow_rate));
            write!(
                f,
                "share slower than {ms} ms {:.3} ({} of {}) exceeds {max}",
                self.slow_rate, c.slow, c.total
            )
        }
    }
}

fn rate(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

impl Guard {
    /// What one completed response adds to the window.
    pub fn count(&self, status: u32, class: Class, latency_ms: u64) -> Counts {
        Counts {
            total: 1,
            failed: u64::from(self.failures.is_failure(status, class)),
            slow: u64::from(self.slow.is_some_and(|s| latency_ms > s.slow_ms)),
        }
    }

    pub fn judge(&self, counts: Counts) -> Verdict {
        if counts.total < self.min_requests {
            return Verdict::TooFew;
        }
        let error_rate = rate(counts.failed, counts.total);
        let slow_rate = rate(counts.slow, counts.total);
        let by_errors = error_rate > self.max_error_rate;
        let by_slowness = self.slow.is_some_and(|s| slow_rate > s.max_slow_rate);
        if !by_errors && !by_slowness {
            return Verdict::Healthy;
        }
        Verdict::Trip(Trip {
            counts,
            error_rate,
            slow_rate,
            max_error_rate: self.max_error_rate,
            slow: self.slow,
            by_errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard {
            max_error_rate: 0.05,
            failures: Failures::default(),
            slow: Some(SlowBound {
                slow_ms: 800,
                max_slow_rate: 0.01,
            }),
            min_requests: 50,
            window_seconds: 60,
            dry_run: false,
        }
    }

    fn counts(total: u64, failed: u64, slow: u64) -> Counts {
        Counts {
            total,
            failed,
            slow,
        }
    }

    #[test]
    fn trips_only_past_the_bounds_with_enough_evidence() {
        let g = guard();
        assert_eq!(g.judge(counts(49, 49, 49)), Verdict::TooFew);
        assert_eq!(
            g.judge(counts(100, 5, 1)),
            Verdict::Healthy,
            "5% is not above 5%"
        );
        let Verdict::Trip(t) = g.judge(counts(100, 6, 0)) else {
            panic!("6% errors trip")
        };
        assert!(t.by_errors);
        assert_eq!(t.to_string(), "error rate 0.060 (6 of 100) exceeds 0.05");
        let Verdict::Trip(t) = g.judge(counts(100, 0, 2)) else {
            panic!("2% slow trips")
        };
        assert_eq!(
            t.to_string(),
            "share slower than 800 ms 0.020 (2 of 100) exceeds 0.01"
        );
    }

    #[test]
    fn counting_a_response() {
        let g = guard();
        assert_eq!(g.count(503, Class::ServerError, 10), counts(1, 1, 0));
        assert_eq!(g.count(200, Class::Success, 801), counts(1, 0, 1));
        assert_eq!(
            g.count(200, Class::Success, 800),
            counts(1, 0, 0),
            "800 ms is not slower"
        );
        let no_slow = Guard {
            slow: None,
            ..guard()
        };
        assert_eq!(no_slow.count(200, Class::Success, 10_000), counts(1, 0, 0));
    }
}
