//! The calls to the identity provider, decided: what an answer of the JWKS
//! endpoint means (new keys, the same document, a failure), what to install,
//! what to count and what to log; and what to log when introspection fails.
//! The glue sends the calls and hands the answers in; every choice is here.

use std::fmt;
use std::rc::Rc;

use log::Level;

use super::{digest_bytes, parse_remote_jwks, JwksUri, OAuth2State, Refresh, MAX_JWKS_BYTES};
use crate::streak::Streak;

/// The largest JWKS document read from the host (one byte more is read, to
/// recognise an oversized answer).
pub const MAX_JWKS_READ: usize = MAX_JWKS_BYTES;

/// What happened to a JWKS fetch, for the glue to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksOutcome {
    /// The fetch succeeded (count `jwks_fetch_ok`), or failed (`jwks_fetch_failed`).
    pub ok: bool,
    /// New keys were installed: decide the parked requests again.
    pub wake_parked: bool,
    /// The line for the operator's log.
    pub log: (Level, String),
}

/// The HTTP status in a call answer's `:status` header.
pub fn call_status(value: Option<&[u8]>) -> Option<u32> {
    std::str::from_utf8(value?).ok()?.parse().ok()
}

/// Applies an answer of the JWKS endpoint to the states of every gateway that
/// shares it (one key set, installed in each). `status` is `None` when the
/// call failed or timed out (Envoy then delivers no headers).
pub fn answer(
    refresh: &mut Refresh,
    states: &mut [&mut OAuth2State],
    now_ms: u64,
    status: Option<u32>,
    body: Option<&[u8]>,
) -> JwksOutcome {
    let have_keys = states.iter().any(|s| s.has_remote_keys());
    let body = match (status, body) {
        (Some(200), Some(body)) => body,
        (Some(200), None) => return failure(refresh, have_keys, now_ms, "empty response"),
        (Some(status), _) => return failure(refresh, have_keys, now_ms, &format!("HTTP {status}")),
        (None, _) => {
            let why = "no response (unreachable or timed out)";
            return failure(refresh, have_keys, now_ms, why);
        }
    };
    let fingerprint = digest_bytes(body);
    if !states.is_empty() && states.iter().all(|s| s.remote_keys_are(&fingerprint)) {
        let failures = refresh.succeeded(now_ms);
        let log = if failures > 0 {
            let m = format!(
                "canary-gate: JWKS fetched again (unchanged), after {failures} failed attempts"
            );
            (Level::Info, m)
        } else {
            (Level::Debug, "canary-gate: JWKS unchanged".to_string())
        };
        return JwksOutcome {
            ok: true,
            wake_parked: false,
            log,
        };
    }
    let keys = match parse_remote_jwks(body) {
        Ok(keys) => Rc::new(keys),
        Err(why) => return failure(refresh, have_keys, now_ms, &why),
    };
    let failures = refresh.succeeded(now_ms);
    let first = !have_keys;
    let log = if first || failures > 0 {
        let after = if failures > 0 {
            format!(", after {failures} failed attempts")
        } else {
            String::new()
        };
        let m = format!(
            "canary-gate: JWKS loaded: {} keys (kids: {}){after}",
            keys.len(),
            keys.kids().join(", ")
        );
        (Level::Info, m)
    } else {
        let m = format!("canary-gate: JWKS refreshed: {} keys", keys.len());
        (Level::Debug, m)
    };
    for state in states.iter_mut() {
        state.install_remote_keys(Rc::clone(&keys), fingerprint);
    }
    JwksOutcome {
        ok: true,
        wake_parked: true,
        log,
    }
}

/// A fetch that failed (no usable answer, or the call could not be sent):
/// retry on the schedule, keep any keys, warn once per streak.
pub fn failure(refresh: &mut Refresh, have_keys: bool, now_ms: u64, why: &str) -> JwksOutcome {
    let first = refresh.failed(now_ms);
    let keeping = if have_keys {
        "keeping the last good keys"
    } else {
        "no keys yet; JWTs wait, then get 503"
    };
    let log = if first {
        let m = format!("canary-gate: JWKS fetch failed: {why} ({keeping}; retrying)");
        (Level::Warn, m)
    } else {
        (
            Level::Debug,
            format!("canary-gate: JWKS fetch failed again: {why}"),
        )
    };
    JwksOutcome {
        ok: false,
        wake_parked: false,
        log,
    }
}

/// Why a call could not be sent, for [`failure`].
pub fn dispatch_failed(cluster: &str, status: impl fmt::Display) -> String {
    format!("cannot call cluster \"{cluster}\" ({status}); is it defined in Envoy?")
}

/// How long a JWT waits for the first key set before 503: the fetch timeout.
pub fn key_wait_ms(jwks_uri: Option<&JwksUri>) -> u64 {
    jwks_uri.map_or(0, |u| u.endpoint.timeout_ms)
}

/// The log line when the introspection call cannot be sent.
pub fn introspection_unsendable(
    streak: &mut Streak,
    cluster: &str,
    status: impl fmt::Display,
) -> (Level, String) {
    if streak.fail() {
        let m = format!(
            "canary-gate: cannot call introspection cluster \"{cluster}\" ({status}); is it defined in Envoy? Requests with opaque tokens get 503"
        );
        (Level::Warn, m)
    } else {
        let m = format!("canary-gate: cannot call introspection cluster ({status})");
        (Level::Debug, m)
    }
}

/// The log line, if any, after an introspection answer (`problem`: why the
/// answer was unusable).
pub fn introspection_answered(
    streak: &mut Streak,
    problem: Option<&str>,
) -> Option<(Level, String)> {
    match problem {
        Some(p) if streak.fail() => Some((
            Level::Warn,
            format!(
                "canary-gate: token introspection failed: {p}; requests get 503 until it answers"
            ),
        )),
        Some(p) => Some((
            Level::Debug,
            format!("canary-gate: token introspection failed again: {p}"),
        )),
        None if streak.recover() => Some((
            Level::Info,
            "canary-gate: token introspection answers again".to_string(),
        )),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &[u8] = include_bytes!("../../../tests/fixtures/oauth2/jwks.json");

    fn fresh() -> (Refresh, OAuth2State) {
        let mut r = Refresh::new(300);
        r.started();
        (r, OAuth2State::default())
    }

    #[test]
    fn first_keys_are_installed_and_wake_the_parked() {
        let (mut r, mut s) = fresh();
        let out = answer(&mut r, &mut [&mut s], 1_000, Some(200), Some(JWKS));
        assert!(out.ok && out.wake_parked);
        assert_eq!(out.log.0, Level::Info);
        assert!(
            out.log.1.starts_with("canary-gate: JWKS loaded: "),
            "{}",
            out.log.1
        );
        assert!(s.has_remote_keys());
        assert!(!r.due(300_999) && r.due(301_000), "next fetch on schedule");
        // The same document again: nothing to parse, nothing to wake, debug only.
        r.started();
        let out = answer(&mut r, &mut [&mut s], 301_000, Some(200), Some(JWKS));
        assert_eq!(
            out,
            JwksOutcome {
                ok: true,
                wake_parked: false,
                log: (Level::Debug, "canary-gate: JWKS unchanged".into())
            }
        );
    }

    #[test]
    fn failures_warn_once_and_keep_keys() {
        let (mut r, mut s) = fresh();
        let out = answer(&mut r, &mut [&mut s], 0, Some(503), None);
        assert_eq!(
            out,
            JwksOutcome {
                ok: false,
                wake_parked: false,
                log: (
                    Level::Warn,
                    "canary-gate: JWKS fetch failed: HTTP 503 (no keys yet; JWTs wait, then get 503; retrying)".into()
                )
            }
        );
        r.started();
        let out = answer(&mut r, &mut [&mut s], 1_000, None, None);
        assert_eq!(
            out.log,
            (
                Level::Debug,
                "canary-gate: JWKS fetch failed again: no response (unreachable or timed out)"
                    .into()
            )
        );
        r.started();
        let out = answer(
            &mut r,
            &mut [&mut s],
            2_000,
            Some(200),
            Some(b"{\"keys\": 7}"),
        );
        assert!(!out.ok);
        r.started();
        let out = answer(&mut r, &mut [&mut s], 3_000, Some(200), Some(JWKS));
        assert!(out.ok && out.wake_parked);
        assert!(
            out.log.1.ends_with(", after 3 failed attempts"),
            "{}",
            out.log.1
        );
        r.started();
        let out = answer(&mut r, &mut [&mut s], 303_000, Some(200), None);
        assert_eq!(
            out.log,
            (Level::Warn, "canary-gate: JWKS fetch failed: empty response (keeping the last good keys; retrying)".into())
        );
        assert!(s.has_remote_keys());
        let why = dispatch_failed("idp", "BadArgument");
        r.started();
        let out = failure(&mut r, s.has_remote_keys(), 304_000, &why);
        assert_eq!(out.log.1, "canary-gate: JWKS fetch failed again: cannot call cluster \"idp\" (BadArgument); is it defined in Envoy?");
    }

    #[test]
    fn status_header() {
        assert_eq!(call_status(Some(b"200")), Some(200));
        assert_eq!(call_status(Some(b"2\xff0")), None);
        assert_eq!(call_status(Some(b"")), None);
        assert_eq!(call_status(None), None);
    }

    #[test]
    fn introspection_streaks() {
        let mut s = Streak::default();
        assert_eq!(introspection_answered(&mut s, None), None);
        let (level, m) = introspection_unsendable(&mut s, "idp", "BadArgument");
        assert_eq!(level, Level::Warn);
        assert!(m.contains("\"idp\""), "{m}");
        assert_eq!(
            introspection_unsendable(&mut s, "idp", "BadArgument").0,
            Level::Debug
        );
        assert_eq!(
            introspection_answered(&mut s, Some("HTTP 500")).map(|l| l.0),
            Some(Level::Debug)
        );
        assert_eq!(
            introspection_answered(&mut s, None),
            Some((
                Level::Info,
                "canary-gate: token introspection answers again".into()
            ))
        );
        assert_eq!(
            introspection_answered(&mut s, Some("HTTP 500")).map(|l| l.0),
            Some(Level::Warn)
        );
    }
}
