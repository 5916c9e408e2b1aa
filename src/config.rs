//! The plugin configuration: the JSON contract users write, and its validation
//! into an immutable [`Plan`]. Everything that can be decided or prepared ahead
//! of a request (bucket edges, decoded digests, lowercased header names) is done
//! here, once, in [`parse`].
//!
//! Every error names the offending field path (`canaries[1].percent: ...`) and
//! never repeats a secret (password hash, key digest).

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

use crate::auth::{AccessKeyAuth, Authenticator, BasicAuth, OAuth2Auth};
use crate::plan::Plan;
use crate::split::{KeySource, SplitPlan, WhenMissing, TOTAL_BUCKETS};

pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-upstream";
pub const DEFAULT_CONSUMER_HEADER: &str = "x-canary-consumer";
pub const DEFAULT_ACCESS_KEY_HEADER: &str = "x-api-key";
pub const DEFAULT_REALM: &str = "canary-gate";

/// A configuration error: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------
// The raw JSON shape (serde). Field names here are the documented contract.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_route_header")]
    route_header: String,
    primary: String,
    #[serde(default)]
    canaries: Vec<RawCanary>,
    #[serde(default)]
    split: RawSplit,
    #[serde(default)]
    select_header: Option<String>,
    #[serde(default = "default_consumer_header")]
    consumer_header: String,
    #[serde(default)]
    response_header: Option<String>,
    #[serde(default)]
    auth: RawAuth,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCanary {
    name: String,
    percent: f64,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum SplitBy {
    #[default]
    Random,
    Header,
    Query,
    Cookie,
    Consumer,
}

impl SplitBy {
    fn as_str(self) -> &'static str {
        match self {
            SplitBy::Random => "random",
            SplitBy::Header => "header",
            SplitBy::Query => "query",
            SplitBy::Cookie => "cookie",
            SplitBy::Consumer => "consumer",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSplit {
    #[serde(default)]
    by: SplitBy,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    when_missing: Option<WhenMissing>,
    #[serde(default)]
    hash_seed: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum RawAuth {
    #[default]
    None,
    Basic(RawBasic),
    AccessKey(RawAccessKey),
    /// Read again from the original bytes by [`crate::auth::oauth2`], so that
    /// errors name the full field path (`auth.jwks_uri.cluster`).
    Oauth2(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    #[serde(default = "default_realm")]
    realm: String,
    users: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessKey {
    #[serde(default = "default_realm")]
    realm: String,
    #[serde(default = "default_access_key_header")]
    header: String,
    #[serde(default)]
    query: Option<String>,
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKey {
    pub(crate) consumer: String,
    pub(crate) sha256: String,
}

fn default_route_header() -> String {
    DEFAULT_ROUTE_HEADER.to_string()
}
fn default_consumer_header() -> String {
    DEFAULT_CONSUMER_HEADER.to_string()
}
fn default_access_key_header() -> String {
    DEFAULT_ACCESS_KEY_HEADER.to_string()
}
fn default_realm() -> String {
    DEFAULT_REALM.to_string()
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Parses and validates the plugin configuration into an immutable plan.
pub fn parse(bytes: &[u8]) -> Result<Plan, ConfigError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, strip_position(&e.inner().to_string()))
    })?;
    let oauth2 = match raw.auth {
        RawAuth::Oauth2(_) => Some(crate::auth::oauth2::parse_config(bytes)?),
        _ => None,
    };
    build(raw, oauth2)
}

/// serde_json appends " at line L column C"; the field path says more.
pub(crate) fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg.len() > i => msg.get(..i).unwrap_or(msg).to_string(),
        _ => msg.to_string(),
    }
}

fn build(raw: RawConfig, oauth2: Option<OAuth2Auth>) -> Result<Plan, ConfigError> {
    let route_header = header_name("route_header", &raw.route_header)?;
    let consumer_header = header_name("consumer_header", &raw.consumer_header)?;
    let select_header = raw
        .select_header
        .as_deref()
        .map(|h| header_name("select_header", h))
        .transpose()?;
    let response_header = raw
        .response_header
        .as_deref()
        .map(|h| header_name("response_header", h))
        .transpose()?;

    // Upstreams: index 0 is the primary, canaries follow in listed order.
    upstream_name("primary", &raw.primary)?;
    let mut upstreams = vec![raw.primary.clone()];
    let mut percents_bp = Vec::with_capacity(raw.canaries.len());
    let mut total_bp: u32 = 0;
    for (i, canary) in raw.canaries.iter().enumerate() {
        let name_path = format!("canaries[{i}].name");
        upstream_name(&name_path, &canary.name)?;
        if canary.name == raw.primary {
            return Err(ConfigError::new(
                name_path,
                format!("\"{}\" is already the primary", canary.name),
            ));
        }
        if let Some(j) = raw
            .canaries
            .iter()
            .take(i)
            .position(|c| c.name == canary.name)
        {
            return Err(ConfigError::new(
                name_path,
                format!("\"{}\" is already used by canaries[{j}]", canary.name),
            ));
        }
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

    let auth = build_auth(raw.auth, oauth2)?;
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
    if let Authenticator::AccessKey(a) = &auth {
        roles.push(("auth.header", a.header()));
    }
    if matches!(auth, Authenticator::Basic(_)) {
        roles.push(("(basic auth)", "authorization"));
    }
    if matches!(auth, Authenticator::OAuth2(_)) {
        roles.push(("(oauth2 auth)", "authorization"));
    }
    for (i, (path, name)) in roles.iter().enumerate() {
        if let Some((other, _)) = roles.iter().take(i).find(|(_, n)| n == name) {
            return Err(ConfigError::new(
                *path,
                format!("header \"{name}\" is already used by {other}"),
            ));
        }
    }

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
            if n.is_empty() {
                return Err(ConfigError::new("split.name", "must not be empty"));
            }
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
        if raw.when_missing.is_some() {
            return Err(ConfigError::new(
                "split.when_missing",
                "not used when split.by is \"random\"; remove it",
            ));
        }
        if raw.hash_seed.is_some() {
            return Err(ConfigError::new(
                "split.hash_seed",
                "not used when split.by is \"random\"; remove it",
            ));
        }
    }
    Ok(SplitPlan::new(
        key,
        raw.when_missing.unwrap_or_default(),
        raw.hash_seed.unwrap_or(0),
        percents_bp,
    ))
}

fn build_auth(raw: RawAuth, oauth2: Option<OAuth2Auth>) -> Result<Authenticator, ConfigError> {
    match raw {
        RawAuth::None => Ok(Authenticator::None),
        RawAuth::Basic(b) => {
            let realm = realm("auth.realm", &b.realm)?;
            Ok(Authenticator::Basic(BasicAuth::new(realm, &b.users)?))
        }
        RawAuth::AccessKey(a) => {
            let realm = realm("auth.realm", &a.realm)?;
            let header = header_name("auth.header", &a.header)?;
            let query = match a.query {
                Some(q) if q.is_empty() => {
                    return Err(ConfigError::new("auth.query", "must not be empty"))
                }
                q => q,
            };
            Ok(Authenticator::AccessKey(AccessKeyAuth::new(
                realm, header, query, &a.keys,
            )?))
        }
        RawAuth::Oauth2(_) => match oauth2 {
            Some(o) => Ok(Authenticator::OAuth2(Box::new(o))),
            None => Err(ConfigError::new(
                "auth.mode",
                "oauth2 settings were not read",
            )),
        },
    }
}

/// Percent (0..=100, at most two decimals) to basis points (hundredths of a percent).
fn basis_points(path: &str, percent: f64) -> Result<u32, ConfigError> {
    if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
        return Err(ConfigError::new(
            path,
            format!("{percent} is not between 0 and 100"),
        ));
    }
    let scaled = percent * 100.0;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return Err(ConfigError::new(
            path,
            format!("{percent} has more than two decimals"),
        ));
    }
    // In range 0..=10000 by the checks above.
    Ok(rounded as u32)
}

/// Formats basis points as a percent without trailing zeros: 12050 -> "120.5".
fn format_bp(bp: u32) -> String {
    let (whole, frac) = (bp / 100, bp % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// A header name: an RFC 9110 token, stored lowercase (Envoy's header maps are lowercase).
fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(is_tchar) {
        return Err(ConfigError::new(
            path,
            format!("\"{}\" is not a valid header name", name.escape_debug()),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection"
    ) {
        return Err(ConfigError::new(
            path,
            format!("\"{lower}\" is reserved by HTTP and cannot be used"),
        ));
    }
    Ok(lower)
}

/// An upstream name is written into the route header and used in metric names:
/// visible ASCII, no spaces.
fn upstream_name(path: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    if !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::new(
            path,
            format!(
                "\"{}\" is not a valid header value (visible ASCII only, no spaces)",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// A realm is quoted inside `WWW-Authenticate`; keep it printable and quote-free.
pub(crate) fn realm(path: &str, realm: &str) -> Result<String, ConfigError> {
    if realm.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    if !realm
        .chars()
        .all(|c| (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\')
    {
        return Err(ConfigError::new(
            path,
            "must be printable ASCII without quotes or backslashes",
        ));
    }
    Ok(realm.to_string())
}

/// Collects duplicate detection for names within one list.
pub(crate) fn first_duplicate<'a, I: IntoIterator<Item = &'a str>>(
    items: I,
) -> Option<(usize, &'a str)> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .enumerate()
        .find(|(_, item)| !seen.insert(*item))
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
    fn format_bp_trims_zeros() {
        assert_eq!(format_bp(12000), "120");
        assert_eq!(format_bp(10050), "100.5");
        assert_eq!(format_bp(10001), "100.01");
    }
}
