//! The plugin configuration: the JSON contract users write (`raw.rs`), and
//! its validation into an immutable [`Plan`]. Everything that can be decided
//! or prepared ahead of a request (bucket edges, decoded digests, lowercased
//! header names) is done here, once, in [`parse`].
//!
//! Every error names the offending field path (`canaries[1].percent: ...`) and
//! never repeats a secret (password hash, key digest). The checks of single
//! fields are in [`crate::validate`]; each auth mode checks its own object.

mod plan;
mod raw;

pub use plan::Plan;
pub use raw::{DEFAULT_CONSUMER_HEADER, DEFAULT_ROUTE_HEADER};

use crate::auth::{Authenticator, OAuth2Auth};
use crate::secret::Lookup;
use crate::split::{KeySource, SplitPlan, TOTAL_BUCKETS};
use crate::validate::{
    basis_points, format_bp, from_json, header_name, non_empty, unique, upstream_name, ConfigError,
    Unique,
};
use raw::{RawAuth, RawCanary, RawConfig, RawSplit, SplitBy};

/// Parses and validates the plugin configuration into an immutable plan.
/// Secrets given as `{"env": "NAME"}` are read from the process environment
/// (inside Envoy, the VM's: `vm_config.environment_variables`).
pub fn parse(bytes: &[u8]) -> Result<Plan, ConfigError> {
    parse_with_env(bytes, &crate::secret::process_env)
}

/// [`parse`], with secrets given as `{"env": "NAME"}` looked up with `env`.
pub fn parse_with_env(bytes: &[u8], env: Lookup<'_>) -> Result<Plan, ConfigError> {
    let raw: RawConfig = from_json(bytes)?;
    let oauth2 = match raw.auth {
        RawAuth::Oauth2(_) => Some(crate::auth::oauth2::parse_config(bytes, env)?),
        _ => None,
    };
    build(raw, oauth2, env)
}

fn build(raw: RawConfig, oauth2: Option<OAuth2Auth>, env: Lookup<'_>) -> Result<Plan, ConfigError> {
    let route_header = header_name("route_header", &raw.route_header)?;
    let consumer_header = header_name("consumer_header", &raw.consumer_header)?;
    let select_header = optional_header("select_header", raw.select_header.as_deref())?;
    let response_header = optional_header("response_header", raw.response_header.as_deref())?;
    let (upstreams, percents_bp) = upstreams(&raw.primary, &raw.canaries)?;
    let auth = build_auth(raw.auth, oauth2, env)?;
    let split = build_split(raw.split, &auth, &percents_bp)?;

    // Header roles must not overlap: a client-controlled header must never be
    // the one the filter writes, or the one carrying identity.
    let mut roles: Vec<(&str, &str)> = vec![
        ("route_header", route_header.as_str()),
        ("consumer_header", consumer_header.as_str()),
    ];
    if let Some(h) = select_header.as_deref() {
        roles.push(("select_header", h));
    }
    if let KeySource::Header(h) = split.key() {
        roles.push(("split.name", h.as_str()));
    }
    match &auth {
        Authenticator::None => {}
        Authenticator::Basic(_) => roles.push(("(basic auth)", "authorization")),
        Authenticator::AccessKey(a) => roles.push(("auth.header", a.header())),
        Authenticator::OAuth2(_) => roles.push(("(oauth2 auth)", "authorization")),
    }
    let role = |i: usize| roles.get(i).map_or("", |(path, _)| *path);
    unique(
        roles.iter().map(|(_, name)| *name),
        |i| role(i).to_string(),
        |name, j| format!("header \"{name}\" is already used by {}", role(j)),
    )?;

    Ok(Plan {
        route_header,
        consumer_header,
        select_header,
        response_header,
        upstreams,
        split,
        auth,
    })
}

fn optional_header(path: &str, name: Option<&str>) -> Result<Option<String>, ConfigError> {
    name.map(|h| header_name(path, h)).transpose()
}

/// The upstream names (index 0 is the primary, canaries follow in listed
/// order) and each canary's share in basis points.
fn upstreams(
    primary: &str,
    canaries: &[RawCanary],
) -> Result<(Vec<String>, Vec<u32>), ConfigError> {
    upstream_name("primary", primary)?;
    let mut upstreams = vec![primary.to_string()];
    let mut percents_bp = Vec::with_capacity(canaries.len());
    let mut total_bp: u32 = 0;
    let mut names = Unique::default();
    for (i, canary) in canaries.iter().enumerate() {
        let name_path = |i| format!("canaries[{i}].name");
        upstream_name(&name_path(i), &canary.name)?;
        if canary.name == primary {
            return Err(ConfigError::new(
                name_path(i),
                format!("\"{}\" is already the primary", canary.name),
            ));
        }
        names.check(i, canary.name.as_str(), name_path, |name, j| {
            format!("\"{name}\" is already used by canaries[{j}]")
        })?;
        let percent_path = format!("canaries[{i}].percent");
        let bp = basis_points(&percent_path, canary.percent)?;
        total_bp += bp;
        if total_bp > TOTAL_BUCKETS {
            return Err(ConfigError::new(
                percent_path,
                format!("total {} exceeds 100", format_bp(total_bp)),
            ));
        }
        percents_bp.push(bp);
        upstreams.push(canary.name.clone());
    }
    Ok((upstreams, percents_bp))
}

fn build_split(
    raw: RawSplit,
    auth: &Authenticator,
    percents_bp: &[u32],
) -> Result<SplitPlan, ConfigError> {
    let by = raw.by;
    let key = match (by, raw.name) {
        (SplitBy::Random, None) => KeySource::Random,
        (SplitBy::Consumer, None) => {
            if matches!(auth, Authenticator::None) {
                return Err(ConfigError::new(
                    "split.by",
                    "\"consumer\" needs an authenticated consumer; set auth.mode to basic, access_key or oauth2",
                ));
            }
            KeySource::Consumer
        }
        (SplitBy::Random | SplitBy::Consumer, Some(_)) => {
            return Err(ConfigError::new(
                "split.name",
                format!("not used when split.by is \"{}\"; remove it", by.as_str()),
            ))
        }
        (SplitBy::Header, Some(n)) => KeySource::Header(header_name("split.name", &n)?),
        (SplitBy::Query | SplitBy::Cookie, Some(n)) => {
            non_empty("split.name", &n)?;
            if by == SplitBy::Query {
                KeySource::Query(n)
            } else {
                KeySource::Cookie(n)
            }
        }
        (SplitBy::Header | SplitBy::Query | SplitBy::Cookie, None) => {
            return Err(ConfigError::new(
                "split.name",
                format!("required when split.by is \"{}\"", by.as_str()),
            ))
        }
    };
    if matches!(key, KeySource::Random) {
        for (path, set) in [
            ("split.when_missing", raw.when_missing.is_some()),
            ("split.hash_seed", raw.hash_seed.is_some()),
        ] {
            if set {
                return Err(ConfigError::new(
                    path,
                    "not used when split.by is \"random\"; remove it",
                ));
            }
        }
    }
    Ok(SplitPlan::new(
        key,
        raw.when_missing.unwrap_or_default(),
        raw.hash_seed.unwrap_or(0),
        percents_bp,
    ))
}

/// `oauth2` is the `auth` object already read by [`parse`] when the mode is oauth2.
fn build_auth(
    raw: RawAuth,
    oauth2: Option<OAuth2Auth>,
    env: Lookup<'_>,
) -> Result<Authenticator, ConfigError> {
    Ok(match raw {
        RawAuth::None => Authenticator::None,
        RawAuth::Basic(b) => Authenticator::Basic(b.build(env)?),
        RawAuth::AccessKey(a) => Authenticator::AccessKey(a.build()?),
        RawAuth::Oauth2(_) => match oauth2 {
            Some(o) => Authenticator::OAuth2(Box::new(o)),
            None => {
                return Err(ConfigError::new(
                    "auth.mode",
                    "oauth2 settings were not read",
                ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match parse(json.as_bytes()) {
            Ok(_) => panic!("config should be rejected: {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_config_uses_documented_defaults() {
        let plan = parse(br#"{"primary":"v1"}"#).unwrap();
        assert_eq!(plan.route_header, "x-canary-upstream");
        assert_eq!(plan.consumer_header, "x-canary-consumer");
        assert_eq!(plan.select_header, None);
        assert_eq!(plan.response_header, None);
        assert_eq!(plan.upstreams, vec!["v1".to_string()]);
        assert!(matches!(plan.auth, Authenticator::None));
        assert!(matches!(plan.split.key(), KeySource::Random));
    }

    #[test]
    fn total_over_100_names_the_canary_that_crosses() {
        let e = err(
            r#"{"primary":"a","canaries":[{"name":"b","percent":60},{"name":"c","percent":60}]}"#,
        );
        assert_eq!(e, "canaries[1].percent: total 120 exceeds 100");
        let e = err(
            r#"{"primary":"a","canaries":[{"name":"b","percent":99.5},{"name":"c","percent":1}]}"#,
        );
        assert_eq!(e, "canaries[1].percent: total 100.5 exceeds 100");
    }

    #[test]
    fn exactly_100_is_accepted() {
        let plan =
            parse(br#"{"primary":"a","canaries":[{"name":"b","percent":97.5},{"name":"c","percent":2.5}]}"#)
                .unwrap();
        assert_eq!(plan.split.edges(), &[9750, 10000]);
    }

    #[test]
    fn percent_precision_and_range() {
        assert_eq!(
            err(r#"{"primary":"a","canaries":[{"name":"b","percent":2.555}]}"#),
            "canaries[0].percent: 2.555 has more than two decimals"
        );
        assert_eq!(
            err(r#"{"primary":"a","canaries":[{"name":"b","percent":-1}]}"#),
            "canaries[0].percent: -1 is not between 0 and 100"
        );
        assert_eq!(
            err(r#"{"primary":"a","canaries":[{"name":"b","percent":100.01}]}"#),
            "canaries[0].percent: 100.01 is not between 0 and 100"
        );
        // 0.07 * 100 is 7.000000000000001 in binary floating point: still two decimals.
        let plan = parse(br#"{"primary":"a","canaries":[{"name":"b","percent":0.07}]}"#).unwrap();
        assert_eq!(plan.split.edges(), &[7]);
    }

    #[test]
    fn names_must_be_unique_and_valid() {
        assert_eq!(
            err(r#"{"primary":"a","canaries":[{"name":"a","percent":1}]}"#),
            "canaries[0].name: \"a\" is already the primary"
        );
        assert_eq!(
            err(
                r#"{"primary":"a","canaries":[{"name":"b","percent":1},{"name":"b","percent":1}]}"#
            ),
            "canaries[1].name: \"b\" is already used by canaries[0]"
        );
        assert_eq!(err(r#"{"primary":""}"#), "primary: must not be empty");
        assert_eq!(
            err(r#"{"primary":"model v1"}"#),
            "primary: \"model v1\" is not a valid header value (visible ASCII only, no spaces)"
        );
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(err(r#"{}"#), "missing field `primary`");
        let e = err(r#"{"primary":"a","canaries":[{"name":"b","percnt":1}]}"#);
        assert_eq!(
            e,
            "canaries[0].percnt: unknown field `percnt`, expected `name` or `percent`"
        );
        let e = err(r#"{"primary":"a","split":{"by":"hash"}}"#);
        assert!(e.starts_with("split.by: unknown variant `hash`"), "{e}");
        let e = err(r#"{"primary":"a","routeHeader":"x"}"#);
        assert!(
            e.starts_with("routeHeader: unknown field `routeHeader`, expected one of"),
            "{e}"
        );
        let e = err(r#"{"primary":"a","canaries":[{"name":"b","percent":"10"}]}"#);
        assert!(
            e.starts_with("canaries[0].percent: invalid type: string"),
            "{e}"
        );
    }

    #[test]
    fn not_json_is_an_error() {
        let e = err("primary: a");
        assert!(e.starts_with("expected value"), "{e}");
    }

    #[test]
    fn split_fields_are_checked_per_mode() {
        assert_eq!(
            err(r#"{"primary":"a","split":{"by":"header"}}"#),
            "split.name: required when split.by is \"header\""
        );
        assert_eq!(
            err(r#"{"primary":"a","split":{"by":"random","name":"x"}}"#),
            "split.name: not used when split.by is \"random\"; remove it"
        );
        assert_eq!(
            err(r#"{"primary":"a","split":{"by":"consumer"}}"#),
            "split.by: \"consumer\" needs an authenticated consumer; set auth.mode to basic, access_key or oauth2"
        );
        assert_eq!(
            err(r#"{"primary":"a","split":{"when_missing":"primary"}}"#),
            "split.when_missing: not used when split.by is \"random\"; remove it"
        );
        let e = err(r#"{"primary":"a","split":{"by":"header","name":"x","when_missing":"never"}}"#);
        assert!(
            e.starts_with("split.when_missing: unknown variant `never`"),
            "{e}"
        );
        assert_eq!(
            err(r#"{"primary":"a","split":{"by":"header","name":"x y"}}"#),
            "split.name: \"x y\" is not a valid header name"
        );
    }

    #[test]
    fn header_names_are_lowercased_and_roles_do_not_overlap() {
        let plan = parse(
            br#"{"primary":"a","route_header":"X-Route","split":{"by":"header","name":"X-User"}}"#,
        )
        .unwrap();
        assert_eq!(plan.route_header, "x-route");
        assert!(matches!(plan.split.key(), KeySource::Header(h) if h == "x-user"));
        assert_eq!(
            err(r#"{"primary":"a","select_header":"X-Canary-Upstream"}"#),
            "select_header: header \"x-canary-upstream\" is already used by route_header"
        );
        assert_eq!(
            err(r#"{"primary":"a","split":{"by":"header","name":"x-canary-consumer"}}"#),
            "split.name: header \"x-canary-consumer\" is already used by consumer_header"
        );
        assert_eq!(
            err(r#"{"primary":"a","route_header":""}"#),
            "route_header: must not be empty"
        );
        assert_eq!(
            err(r#"{"primary":"a","route_header":"host"}"#),
            "route_header: \"host\" is reserved by HTTP and cannot be used"
        );
    }

    #[test]
    fn unknown_auth_mode_is_named() {
        let e = err(r#"{"primary":"a","auth":{"mode":"ldap"}}"#);
        assert!(e.starts_with("auth.mode: unknown variant `ldap`"), "{e}");
    }

    #[test]
    fn auth_errors_come_through_unchanged() {
        assert_eq!(
            err(r#"{"primary":"a","auth":{"mode":"basic","users":[]}}"#),
            "auth.users: must list at least one user"
        );
        assert_eq!(
            err(r#"{"primary":"a","auth":{"mode":"access_key","query":"","keys":[]}}"#),
            "auth.query: must not be empty"
        );
        assert_eq!(
            err(
                r#"{"primary":"a","auth":{"mode":"oauth2","jwks_uri":{"cluster":"","path":"/j"}}}"#
            ),
            "auth.jwks_uri.cluster: must not be empty"
        );
        assert_eq!(
            err(
                r#"{"primary":"a","auth":{"mode":"oauth2","introspection":{"cluster":"i","path":"/i","client_id":"g","client_secret":7}}}"#
            ),
            "auth.introspection.client_secret: must be a string or {\"env\": \"NAME\"}"
        );
        // The oauth2 object is read first, so its errors come before the others.
        assert_eq!(
            err(r#"{"primary":"","auth":{"mode":"oauth2","audiences":["m"]}}"#),
            "auth: oauth2 needs at least one of jwks, jwks_uri, hs256_secret or introspection"
        );
        assert_eq!(
            err(
                r#"{"primary":"a","select_header":"authorization","auth":{"mode":"oauth2","introspection":{"cluster":"i","path":"/i","client_id":"g","client_secret":"s"}}}"#
            ),
            "(oauth2 auth): header \"authorization\" is already used by select_header"
        );
    }
}
