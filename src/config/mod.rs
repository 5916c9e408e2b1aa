//! The plugin configuration: the JSON contract users write (`raw.rs`), and
//! its validation into an immutable [`Plan`]. Everything that can be decided
//! or prepared ahead of a request (bucket edges, decoded digests, lowercased
//! header names) is done here, once, in [`parse`].
//!
//! Every error names the offending field path (`canaries[1].percent: ...`) and
//! never repeats a secret (password hash, key digest). The checks of single
//! fields are in [`crate::validate`]; each auth mode checks its own object.

mod canary;
mod plan;
mod raw;

pub use canary::{Canary, MAX_WINDOW_SECONDS};
pub use plan::{Gateway, Plan, Unmatched, DEFAULT_GATEWAY};
pub use raw::{DEFAULT_CONSUMER_HEADER, DEFAULT_ROUTE_HEADER};

use serde_json::Value;

use crate::auth::{Authenticator, OAuth2Auth};
use crate::gateway::{stats, GatewaySpec, GatewayTable};
use crate::secret::Lookup;
use crate::split::{KeySource, SplitPlan, TOTAL_BUCKETS};
use crate::validate::{
    basis_points, format_bp, from_json, header_name, non_empty, unique, upstream_name, ConfigError,
    Unique,
};
use canary::RawGuard;
use raw::{RawAuth, RawCanary, RawConfig, RawGateway, RawSplit, SplitBy};

/// What the filter says when it gets no configuration (an empty
/// `StringValue`, or none): `on_configure` refuses it before [`parse`], and the
/// CLI says the same.
pub const EMPTY_CONFIGURATION: &str =
    "the plugin configuration is empty; it must be a JSON object with at least \"primary\"";

/// Parses and validates the plugin configuration into an immutable plan.
/// Secrets given as `{"env": "NAME"}` are read from the process environment
/// (inside Envoy, the VM's: `vm_config.environment_variables`).
pub fn parse(bytes: &[u8]) -> Result<Plan, ConfigError> {
    parse_with_env(bytes, &crate::secret::process_env)
}

/// [`parse`], with secrets given as `{"env": "NAME"}` looked up with `env`.
pub fn parse_with_env(bytes: &[u8], env: Lookup<'_>) -> Result<Plan, ConfigError> {
    let mut raw: RawConfig = from_json(bytes)?;
    let headers = Headers {
        route: header_name("route_header", &raw.route_header)?,
        consumer: header_name("consumer_header", &raw.consumer_header)?,
    };
    let response_header = optional_header("response_header", raw.response_header.as_deref())?;
    let (gateways, table, jwks_objects) = match raw.gateways.take() {
        None => single_gateway(raw_single(&mut raw)?, bytes, &headers, env)?,
        Some(list) => {
            refuse_top_level_gateway_fields(&raw)?;
            gateway_table(&list, &headers, env)?
        }
    };
    if raw.unmatched.is_some() && table.is_none() {
        return Err(ConfigError::new(
            "unmatched",
            "only used with \"gateways\" (without them every request has a gateway); remove it",
        ));
    }
    let mut plan = Plan {
        route_header: headers.route,
        consumer_header: headers.consumer,
        response_header,
        unmatched: raw.unmatched.unwrap_or_default(),
        gateways,
        table,
        jwks_sources: Vec::new(),
    };
    share_jwks_sources(&mut plan, &jwks_objects);
    Ok(plan)
}

/// The listener-wide headers every gateway's header roles are checked against.
struct Headers {
    route: String,
    consumer: String,
}

type Built = (Vec<Gateway>, Option<GatewayTable>, Vec<Option<Value>>);

/// A configuration without `gateways`: one gateway, `default`, for every request.
fn single_gateway(
    raw: RawGateway,
    bytes: &[u8],
    headers: &Headers,
    env: Lookup<'_>,
) -> Result<Built, ConfigError> {
    let oauth2 = match raw.auth {
        RawAuth::Oauth2(_) => Some(crate::auth::oauth2::parse_config(bytes, env)?),
        _ => None,
    };
    let gateway = build_gateway(raw, oauth2, headers, env)?;
    let whole: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    Ok((vec![gateway], None, vec![jwks_uri_object(&whole)]))
}

/// The top-level per-gateway fields of a configuration without `gateways`.
fn raw_single(raw: &mut RawConfig) -> Result<RawGateway, ConfigError> {
    let Some(primary) = raw.primary.take() else {
        return Err(ConfigError::new("", "missing field `primary`"));
    };
    Ok(RawGateway {
        name: DEFAULT_GATEWAY.to_string(),
        hosts: Vec::new(),
        path_prefix: String::new(),
        strip_prefix: false,
        primary,
        canaries: raw.canaries.take().unwrap_or_default(),
        split: raw.split.take().unwrap_or_default(),
        select_header: raw.select_header.take(),
        auth: raw.auth.take().unwrap_or_default(),
    })
}

/// With `gateways`, the per-gateway fields have no meaning at the top level.
fn refuse_top_level_gateway_fields(raw: &RawConfig) -> Result<(), ConfigError> {
    for (field, set) in [
        ("primary", raw.primary.is_some()),
        ("canaries", raw.canaries.is_some()),
        ("split", raw.split.is_some()),
        ("select_header", raw.select_header.is_some()),
        ("auth", raw.auth.is_some()),
    ] {
        if set {
            return Err(ConfigError::new(
                field,
                "set per gateway when \"gateways\" is used; move it into each gateway",
            ));
        }
    }
    Ok(())
}

/// `gateways[i]` as an error path prefix.
fn within(i: usize) -> impl Fn(ConfigError) -> ConfigError {
    move |e| {
        let path = if e.path.is_empty() {
            format!("gateways[{i}]")
        } else {
            format!("gateways[{i}].{}", e.path)
        };
        ConfigError::new(path, e.message)
    }
}

fn gateway_table(
    list: &[Box<serde_json::value::RawValue>],
    headers: &Headers,
    env: Lookup<'_>,
) -> Result<Built, ConfigError> {
    if list.is_empty() {
        return Err(ConfigError::new(
            "gateways",
            "must list at least one gateway",
        ));
    }
    let mut gateways = Vec::with_capacity(list.len());
    let mut specs = Vec::with_capacity(list.len());
    let mut jwks_objects = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let bytes = text.get().as_bytes();
        let raw: RawGateway = from_json(bytes).map_err(within(i))?;
        let oauth2 = match raw.auth {
            RawAuth::Oauth2(_) => {
                Some(crate::auth::oauth2::parse_config(bytes, env).map_err(within(i))?)
            }
            _ => None,
        };
        specs.push(GatewaySpec {
            name: raw.name.clone(),
            hosts: raw.hosts.clone(),
            path_prefix: raw.path_prefix.clone(),
            strip_prefix: raw.strip_prefix,
        });
        gateways.push(build_gateway(raw, oauth2, headers, env).map_err(within(i))?);
        let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        jwks_objects.push(jwks_uri_object(&value));
    }
    let table = GatewayTable::compile(&specs).map_err(|e| ConfigError::new(e.path, e.message))?;
    Ok((gateways, Some(table), jwks_objects))
}

fn jwks_uri_object(gateway: &Value) -> Option<Value> {
    let auth = gateway.get("auth")?;
    if auth.get("mode")?.as_str()? != "oauth2" {
        return None;
    }
    auth.get("jwks_uri").cloned()
}

/// Gateways whose `jwks_uri` objects are identical share one key set and one fetch.
fn share_jwks_sources(plan: &mut Plan, objects: &[Option<Value>]) {
    let mut sources: Vec<(&Value, Vec<usize>)> = Vec::new();
    for (g, object) in objects.iter().enumerate() {
        let Some(object) = object else { continue };
        let uses_jwks_uri = plan.gateways.get(g).is_some_and(
            |gw| matches!(&gw.auth, Authenticator::OAuth2(o) if o.jwks_uri().is_some()),
        );
        if !uses_jwks_uri {
            continue;
        }
        let source = match sources.iter().position(|(o, _)| *o == object) {
            Some(s) => s,
            None => {
                sources.push((object, Vec::new()));
                sources.len() - 1
            }
        };
        if let Some((_, users)) = sources.get_mut(source) {
            users.push(g);
        }
        if let Some(gw) = plan.gateways.get_mut(g) {
            gw.jwks_source = Some(source);
        }
    }
    plan.jwks_sources = sources.into_iter().map(|(_, users)| users).collect();
}

/// One gateway's upstreams, split and auth. Paths are relative to the gateway
/// (the caller prefixes `gateways[i].`).
fn build_gateway(
    raw: RawGateway,
    oauth2: Option<OAuth2Auth>,
    headers: &Headers,
    env: Lookup<'_>,
) -> Result<Gateway, ConfigError> {
    let select_header = optional_header("select_header", raw.select_header.as_deref())?;
    let (upstreams, percents_bp) = upstreams(&raw.primary, &raw.canaries)?;
    let canaries = canaries(raw.canaries, &percents_bp)?;
    let auth = build_auth(raw.auth, oauth2, env)?;
    let split = build_split(raw.split, &auth, &percents_bp)?;
    check_header_roles(headers, select_header.as_deref(), &split, &auth)?;
    Ok(Gateway {
        name: raw.name,
        hosts: raw.hosts,
        path_prefix: raw.path_prefix,
        strip_prefix: raw.strip_prefix,
        select_header,
        upstreams,
        canaries,
        split,
        auth,
        jwks_source: None,
    })
}

/// Header roles must not overlap: a client-controlled header must never be
/// the one the filter writes, or the one carrying identity.
fn check_header_roles(
    headers: &Headers,
    select_header: Option<&str>,
    split: &SplitPlan,
    auth: &Authenticator,
) -> Result<(), ConfigError> {
    let mut roles: Vec<(&str, &str)> = vec![
        ("route_header", headers.route.as_str()),
        ("consumer_header", headers.consumer.as_str()),
    ];
    if let Some(h) = select_header {
        roles.push(("select_header", h));
    }
    if let KeySource::Header(h) = split.key() {
        roles.push(("split.name", h.as_str()));
    }
    match auth {
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
    )
}

/// An upstream name is also a metric label value.
fn label_value(path: &str, name: &str) -> Result<(), ConfigError> {
    stats::check_label_value(name)
        .map_err(|why| ConfigError::new(path, format!("\"{name}\" {why}")))
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
    label_value("primary", primary)?;
    let mut upstreams = vec![primary.to_string()];
    let mut percents_bp = Vec::with_capacity(canaries.len());
    let mut total_bp: u32 = 0;
    let mut names = Unique::default();
    for (i, canary) in canaries.iter().enumerate() {
        let name_path = |i| format!("canaries[{i}].name");
        upstream_name(&name_path(i), &canary.name)?;
        label_value(&name_path(i), &canary.name)?;
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

/// Each canary's revision, guard and ramp. All canaries at their ramp ends
/// must still fit in 100%.
fn canaries(raw: Vec<RawCanary>, percents_bp: &[u32]) -> Result<Vec<Canary>, ConfigError> {
    let mut compiled = Vec::with_capacity(raw.len());
    let mut total_at_ends: u32 = 0;
    for (i, (canary, bp)) in raw.into_iter().zip(percents_bp).enumerate() {
        let at = |e: ConfigError| ConfigError::new(format!("canaries[{i}].{}", e.path), e.message);
        let digest = canary::digest(&canary);
        let ramp = canary.ramp.map(|r| r.build(*bp)).transpose().map_err(at)?;
        let end = ramp.map_or(*bp, |r| r.until_bp);
        total_at_ends += end;
        if ramp.is_some() && total_at_ends > TOTAL_BUCKETS {
            return Err(ConfigError::new(
                format!("canaries[{i}].ramp.until"),
                format!(
                    "total {} at the ramp ends exceeds 100",
                    format_bp(total_at_ends)
                ),
            ));
        }
        compiled.push(Canary {
            name: canary.name,
            percent_bp: *bp,
            revision: canary::revision(canary.revision).map_err(at)?,
            guard: canary.guard.map(RawGuard::build).transpose().map_err(at)?,
            ramp,
            digest,
        });
    }
    Ok(compiled)
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
        assert_eq!(plan.response_header, None);
        assert_eq!(plan.unmatched, Unmatched::Deny);
        assert!(plan.table.is_none(), "one gateway for every request");
        let g = &plan.gateways[0];
        assert_eq!(g.name, "default");
        assert_eq!(g.select_header, None);
        assert_eq!(g.upstreams, vec!["v1".to_string()]);
        assert!(matches!(g.auth, Authenticator::None));
        assert!(matches!(g.split.key(), KeySource::Random));
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
        assert_eq!(plan.gateways[0].split.edges(), &[9750, 10000]);
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
        assert_eq!(plan.gateways[0].split.edges(), &[7]);
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
            "canaries[0].percnt: unknown field `percnt`, expected one of `name`, `percent`, `revision`, `guard`, `ramp`"
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
        assert!(matches!(plan.gateways[0].split.key(), KeySource::Header(h) if h == "x-user"));
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

    #[test]
    fn gateways_errors_name_the_gateway_and_field() {
        let gw = |extra: &str| {
            format!(
                r#"{{"gateways":[{{"name":"a","primary":"a1"}},{{"name":"b","primary":"b1"{extra}}}]}}"#
            )
        };
        for (config, message) in [
            (r#"{"primary":"v1","gateways":[{"name":"a","primary":"a1"}]}"#.to_string(),
             "primary: set per gateway when \"gateways\" is used; move it into each gateway"),
            (r#"{"auth":{"mode":"none"},"gateways":[{"name":"a","primary":"a1"}]}"#.to_string(),
             "auth: set per gateway when \"gateways\" is used; move it into each gateway"),
            (r#"{"gateways":[]}"#.to_string(), "gateways: must list at least one gateway"),
            (r#"{"primary":"v1","unmatched":"pass"}"#.to_string(),
             "unmatched: only used with \"gateways\" (without them every request has a gateway); remove it"),
            (r#"{"gateways":[{"name":"a"}]}"#.to_string(), "gateways[0]: missing field `primary`"),
            (gw(r#","canaries":[{"name":"b2","percent":60},{"name":"b3","percent":60}]"#),
             "gateways[1].canaries[1].percent: total 120 exceeds 100"),
            (gw(r#","select_header":"x-canary-consumer""#),
             "gateways[1].select_header: header \"x-canary-consumer\" is already used by consumer_header"),
            (gw(r#","auth":{"mode":"oauth2","issuer":"i","jwks_uri":{"cluster":"","path":"/k"}}"#),
             "gateways[1].auth.jwks_uri.cluster: must not be empty"),
            (gw(r#","surprise":1"#),
             "gateways[1].surprise: unknown field `surprise`, expected one of `name`, `hosts`, `path_prefix`, `strip_prefix`, `primary`, `canaries`, `split`, `select_header`, `auth`"),
            (r#"{"gateways":[{"name":"a","primary":"a1"},{"name":"a","primary":"b1"}]}"#.to_string(),
             "gateways[1].name: \"a\" is already used by gateways[0]"),
            (r#"{"gateways":[{"name":"a","primary":"a1","hosts":["x.com"],"path_prefix":"/p"},{"name":"b","primary":"b1","hosts":["X.com"],"path_prefix":"/p"}]}"#.to_string(),
             "gateways[1]: host \"X.com\" with path_prefix \"/p\" is already used by gateways[0]"),
            (gw(r#","primary":"b=.=1""#), ""),
        ] {
            let got = err(&config);
            if message.is_empty() {
                assert!(got.starts_with("gateways[1]"), "{got}");
            } else {
                assert_eq!(got, message, "{config}");
            }
        }
    }

    #[test]
    fn upstream_names_are_usable_as_metric_labels() {
        assert_eq!(
            err(r#"{"primary":"v1","canaries":[{"name":"a;.;b","percent":1}]}"#)
                .split(':')
                .next(),
            Some("canaries[0].name")
        );
        // Istio cluster names survive.
        assert!(
            parse(br#"{"primary":"outbound|8080|v1|model.default.svc.cluster.local"}"#).is_ok()
        );
    }

    #[test]
    fn gateways_with_the_same_jwks_uri_share_one_source() {
        let uri = r#"{"cluster":"idp","path":"/jwks"}"#;
        let other = r#"{"cluster":"idp2","path":"/jwks"}"#;
        let oauth = |u: &str| {
            format!(r#""auth":{{"mode":"oauth2","issuer":"i","audiences":["m"],"jwks_uri":{u}}}"#)
        };
        let config = format!(
            r#"{{"gateways":[
                {{"name":"a","primary":"a1","path_prefix":"/a",{}}},
                {{"name":"b","primary":"b1","path_prefix":"/b"}},
                {{"name":"c","primary":"c1","path_prefix":"/c",{}}},
                {{"name":"d","primary":"d1","path_prefix":"/d",{}}}]}}"#,
            oauth(uri),
            oauth(other),
            oauth(uri)
        );
        let plan = parse(config.as_bytes()).unwrap();
        assert_eq!(plan.jwks_sources, vec![vec![0, 3], vec![2]]);
        assert_eq!(plan.gateways[3].jwks_source, Some(0));
        assert_eq!(plan.gateways[1].jwks_source, None);
        let single = parse(format!(r#"{{"primary":"v1",{}}}"#, oauth(uri)).as_bytes()).unwrap();
        assert_eq!(single.jwks_sources, vec![vec![0]]);
    }

    #[test]
    fn guards_and_ramps_are_validated_naming_the_field() {
        let c = |canary: &str| {
            format!(r#"{{"primary":"v1","canaries":[{{"name":"v2","percent":10}},{canary}]}}"#)
        };
        for (canary, message) in [
            (r#"{"name":"v3","percent":5,"guard":{"max_error_rate":1.5}}"#,
             "canaries[1].guard.max_error_rate: 1.5 is not between 0 and 1"),
            (r#"{"name":"v3","percent":5,"guard":{"max_error_rate":0.1,"slow_ms":800}}"#,
             "canaries[1].guard.max_slow_rate: required with slow_ms (the share of responses slower than slow_ms that trips)"),
            (r#"{"name":"v3","percent":5,"guard":{"max_error_rate":0.1,"failure_statuses":["5xx","teapot"]}}"#,
             "canaries[1].guard.failure_statuses[1]: \"teapot\" is neither a status class (1xx, 2xx, 3xx, 4xx, 5xx, grpc_error) nor a status code 100-599"),
            (r#"{"name":"v3","percent":5,"guard":{"max_error_rate":0.1,"window_seconds":0}}"#,
             "canaries[1].guard.window_seconds: 0 is not between 1 and 3600"),
            (r#"{"name":"v3","percent":5,"ramp":{"start":"yesterday","step":5,"every_seconds":60,"until":20}}"#,
             ""),
            (r#"{"name":"v3","percent":5,"ramp":{"start":"2026-12-01T10:00:00Z","step":0,"every_seconds":60,"until":20}}"#,
             "canaries[1].ramp.step: must be more than 0"),
            (r#"{"name":"v3","percent":5,"ramp":{"start":"2026-12-01T10:00:00Z","step":5,"every_seconds":60,"until":2}}"#,
             "canaries[1].ramp.until: 2 is below the canary's percent"),
            (r#"{"name":"v3","percent":5,"ramp":{"start":"2026-12-01T10:00:00Z","step":5,"every_seconds":60,"until":95}}"#,
             "canaries[1].ramp.until: total 105 at the ramp ends exceeds 100"),
            (r#"{"name":"v3","percent":5,"revision":""}"#, "canaries[1].revision: must not be empty"),
            (r#"{"name":"v3","percent":5,"guard":{"max_error_rate":0.1,"minimum":3}}"#, ""),
        ] {
            let got = err(&c(canary));
            if message.is_empty() {
                assert!(got.starts_with("canaries[1]"), "{got}");
            } else {
                assert_eq!(got, message, "{canary}");
            }
        }
        let plan = parse(c(r#"{"name":"v3","percent":5,"ramp":{"start":"2026-12-01T10:00:00+01:00","step":5,"every_seconds":60,"until":90},"guard":{"max_error_rate":0.1}}"#).as_bytes()).unwrap();
        let v3 = &plan.gateways[0].canaries[1];
        assert_eq!(
            v3.ramp.unwrap().start_s,
            1_796_115_600,
            "09:00 UTC: offsets are honoured"
        );
        assert_eq!(v3.guard.as_ref().unwrap().min_requests, 20);
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_whole_configuration_resolves_through_the_lookup_it_is_given() {
        let doc = br#"{"primary":"v1","auth":{"mode":"basic","users":[{"env":"HTPASSWD"}]}}"#;
        let lookup = env_of(&[("HTPASSWD", "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=")]);
        let plan = parse_with_env(doc, &lookup).unwrap();
        assert_eq!(plan.gateways[0].auth.mode(), "basic");
        let e = parse_with_env(doc, &env_of(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "auth.users[0]: environment variable HTPASSWD is not set"
        );
    }
}
