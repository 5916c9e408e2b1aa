//! A canary's optional `revision`, `guard` and `ramp`, validated into the
//! compiled [`Guard`] and [`Ramp`] of [`crate::watch`]. Paths are relative to
//! the canary (the caller prefixes `canaries[i].`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::validate::{basis_points, in_range, non_empty, ConfigError};
use crate::watch::class::Failures;
use crate::watch::guard::{Guard, SlowBound, DEFAULT_MIN_REQUESTS, DEFAULT_WINDOW_SECONDS};
use crate::watch::ramp::Ramp;

/// The longest window a guard may look back over.
pub const MAX_WINDOW_SECONDS: u64 = 3_600;

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuard {
    max_error_rate: f64,
    #[serde(default)]
    failure_statuses: Option<Vec<String>>,
    #[serde(default)]
    slow_ms: Option<u64>,
    #[serde(default)]
    max_slow_rate: Option<f64>,
    #[serde(default)]
    min_requests: Option<u64>,
    #[serde(default)]
    window_seconds: Option<u64>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRamp {
    start: String,
    step: f64,
    every_seconds: u64,
    until: f64,
}

/// A compiled canary: its share, and what watches and moves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    pub name: String,
    /// The configured share, in basis points.
    pub percent_bp: u32,
    pub revision: Option<String>,
    pub guard: Option<Guard>,
    pub ramp: Option<Ramp>,
    /// SHA-256 of the canary's configuration object (its JSON with sorted
    /// keys): a changed canary is a new canary for its guard's state.
    pub digest: [u8; 32],
}

fn rate(path: &str, value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::new(
            path,
            format!("{value} is not between 0 and 1"),
        ))
    }
}

impl RawGuard {
    pub(crate) fn build(self) -> Result<Guard, ConfigError> {
        let max_error_rate = rate("guard.max_error_rate", self.max_error_rate)?;
        let failures = match &self.failure_statuses {
            None => Failures::default(),
            Some(list) => Failures::parse(list).map_err(|(i, message)| {
                ConfigError::new(format!("guard.failure_statuses[{i}]"), message)
            })?,
        };
        let slow =
            match (self.slow_ms, self.max_slow_rate) {
                (None, None) => None,
                (Some(slow_ms), Some(max)) => {
                    in_range("guard.slow_ms", slow_ms, 1, 3_600_000)?;
                    let max_slow_rate = rate("guard.max_slow_rate", max)?;
                    Some(SlowBound {
                        slow_ms,
                        max_slow_rate,
                    })
                }
                (Some(_), None) => return Err(ConfigError::new(
                    "guard.max_slow_rate",
                    "required with slow_ms (the share of responses slower than slow_ms that trips)",
                )),
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        "guard.slow_ms",
                        "required with max_slow_rate",
                    ))
                }
            };
        let min_requests = self.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS);
        in_range("guard.min_requests", min_requests, 1, u64::from(u32::MAX))?;
        let window = self
            .window_seconds
            .unwrap_or(u64::from(DEFAULT_WINDOW_SECONDS));
        in_range("guard.window_seconds", window, 1, MAX_WINDOW_SECONDS)?;
        Ok(Guard {
            max_error_rate,
            failures,
            slow,
            min_requests,
            window_seconds: u32::try_from(window).unwrap_or(DEFAULT_WINDOW_SECONDS),
            dry_run: self.dry_run,
        })
    }
}

impl RawRamp {
    /// `percent_bp` is the canary's configured share (the ramp starts there).
    pub(crate) fn build(self, percent_bp: u32) -> Result<Ramp, ConfigError> {
        let start = OffsetDateTime::parse(&self.start, &Rfc3339).map_err(|e| {
            ConfigError::new(
                "ramp.start",
                format!("\"{}\" is not an RFC 3339 time ({e})", self.start),
            )
        })?;
        let start_s = u64::try_from(start.unix_timestamp()).map_err(|_| {
            ConfigError::new("ramp.start", format!("\"{}\" is before 1970", self.start))
        })?;
        let step_bp = basis_points("ramp.step", self.step)?;
        if step_bp == 0 {
            return Err(ConfigError::new("ramp.step", "must be more than 0"));
        }
        in_range("ramp.every_seconds", self.every_seconds, 1, 366 * 86_400)?;
        let until_bp = basis_points("ramp.until", self.until)?;
        if until_bp < percent_bp {
            return Err(ConfigError::new(
                "ramp.until",
                format!("{} is below the canary's percent", self.until),
            ));
        }
        Ok(Ramp {
            start_s,
            step_bp,
            every_s: self.every_seconds,
            until_bp,
        })
    }
}

/// The digest of a canary's configuration (as parsed: defaults not filled in).
pub(crate) fn digest(canary: &impl Serialize) -> [u8; 32] {
    let json = serde_json::to_vec(canary).unwrap_or_default();
    Sha256::digest(&json).into()
}

/// A `revision` is any non-empty label the operator changes to re-arm a guard.
pub(crate) fn revision(value: Option<String>) -> Result<Option<String>, ConfigError> {
    if let Some(r) = &value {
        non_empty("revision", r)?;
    }
    Ok(value)
}
