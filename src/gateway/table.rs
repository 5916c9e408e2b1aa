//! The gateway table: configured once, then asked for each request which gateway
//! (if any) it belongs to.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::host::{host_hash, split_authority, walk_name, Authority, HostMap, HostPattern};
use super::path::{check_prefix, normalize, prefix_matches, PathError};
use super::{validate_names, GatewayError};

/// The default `hosts` of a gateway: any host.
pub const DEFAULT_HOSTS: [&str; 1] = ["*"];
/// The default `path_prefix` of a gateway: every path.
pub const DEFAULT_PATH_PREFIX: &str = "/";

/// One gateway as configured (the integrator fills it from the JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySpec {
    /// Required, unique, `[a-z0-9-]`, at most 63 characters.
    pub name: String,
    /// Host patterns (`a.example.com`, `*.example.com`, `*`); default `["*"]`.
    pub hosts: Vec<String>,
    /// Path prefix matched on segment boundaries; default `/`.
    pub path_prefix: String,
    /// Remove the matched prefix from `:path` before forwarding; default false.
    pub strip_prefix: bool,
}

impl GatewaySpec {
    /// A gateway with the defaults: any host, every path, no stripping.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hosts: DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect(),
            path_prefix: DEFAULT_PATH_PREFIX.to_string(),
            strip_prefix: false,
        }
    }
}

/// The gateway a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match<'p> {
    /// `gateways[index]` matched. `strip` is `Some(path)` when that gateway has
    /// `strip_prefix`: the `:path` to forward instead of the received one (the
    /// normalized path without the prefix, plus the query as received). `None`:
    /// forward `:path` as it came.
    Gateway {
        index: usize,
        strip: Option<Cow<'p, [u8]>>,
    },
    /// No gateway: no host pattern matches the host, or none of the chosen host
    /// pattern's gateways matches the path (there is no fallback to a less
    /// specific host pattern).
    Unmatched,
    /// The path was refused before any matching (answer 400 `ambiguous_path`).
    BadPath(PathError),
}

/// One gateway under one host pattern.
#[derive(Debug)]
struct Route {
    /// The checked `path_prefix`; empty for `/`.
    prefix: Box<[u8]>,
    strip: bool,
    index: usize,
}

/// The compiled gateway table. Immutable once built; share it (`Rc`/`Arc`)
/// between requests.
///
/// Layout: every distinct host pattern is a *group* holding its gateways' routes
/// sorted longest prefix first. Exact hosts and wildcard suffixes are two
/// open-addressing maps ([`HostMap`]) from the canonical host to a group; `*` is
/// one optional group. A request host is walked once, right to left, which
/// checks it and hashes it and every suffix on the way; a wildcard lookup is
/// made only for suffixes with at most as many labels as the longest configured
/// wildcard, and the exact lookup once at the end. Then the chosen group's
/// prefixes are tried, longest first. With only `*` gateways the host is not
/// looked at.
#[derive(Debug)]
pub struct GatewayTable {
    names: Vec<String>,
    groups: Vec<Vec<Route>>,
    exact: HostMap,
    wildcard: HostMap,
    any: Option<usize>,
    /// Labels in the longest wildcard suffix (`*.a.example.com`: 3).
    wildcard_labels: usize,
}

impl GatewayTable {
    /// Validates and compiles the gateways (the `gateways` list, in order; a
    /// gateway's index is its position). Errors name the field:
    /// `gateways[2].hosts[0]: "*.": not a valid host pattern (empty name)`,
    /// `gateways[3]: host "a.example.com" with path_prefix "/fraud" is already used by gateways[1]`.
    pub fn compile(specs: &[GatewaySpec]) -> Result<Self, GatewayError> {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        validate_names(&names)?;

        let mut group_of: HashMap<HostPattern, usize> = HashMap::new();
        let mut groups: Vec<Vec<Route>> = Vec::new();
        // (group, prefix) -> (gateway, hosts index) that claimed it first.
        let mut owners: HashMap<(usize, &[u8]), (usize, usize)> = HashMap::new();

        for (i, spec) in specs.iter().enumerate() {
            if spec.hosts.is_empty() {
                return Err(GatewayError::new(
                    format!("gateways[{i}].hosts"),
                    "must list at least one host pattern (\"*\" for any host)",
                ));
            }
            let prefix = check_prefix(&spec.path_prefix)
                .map_err(|m| GatewayError::new(format!("gateways[{i}].path_prefix"), m))?;
            for (j, host) in spec.hosts.iter().enumerate() {
                let pattern = HostPattern::parse(host).map_err(|reason| {
                    GatewayError::new(
                        format!("gateways[{i}].hosts[{j}]"),
                        format!("{host:?}: not a valid host pattern ({reason})"),
                    )
                })?;
                let group = *group_of.entry(pattern).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                match owners.entry((group, prefix)) {
                    Entry::Occupied(first) => {
                        let (gateway, k) = *first.get();
                        return Err(if gateway == i {
                            GatewayError::new(
                                format!("gateways[{i}].hosts[{j}]"),
                                format!("{host:?} is the same host pattern as hosts[{k}]"),
                            )
                        } else {
                            GatewayError::new(
                                format!("gateways[{i}]"),
                                format!(
                                    "host {host:?} with path_prefix {:?} is already used by gateways[{gateway}]",
                                    spec.path_prefix
                                ),
                            )
                        });
                    }
                    Entry::Vacant(slot) => {
                        slot.insert((i, j));
                    }
                }
                if let Some(routes) = groups.get_mut(group) {
                    routes.push(Route {
                        prefix: prefix.into(),
                        strip: spec.strip_prefix,
                        index: i,
                    });
                }
            }
        }

        for routes in &mut groups {
            // Longest first; equal lengths cannot both match one path.
            routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        }
        let (mut exact, mut wildcard, mut any, mut wildcard_labels) =
            (Vec::new(), Vec::new(), None, 0);
        for (pattern, group) in group_of {
            match pattern {
                HostPattern::Any => any = Some(group),
                HostPattern::Exact(host) => exact.push((host.into_bytes(), group)),
                HostPattern::Wildcard(suffix) => {
                    wildcard_labels = wildcard_labels.max(suffix.split('.').count());
                    wildcard.push((suffix.into_bytes(), group));
                }
            }
        }
        let table = GatewayTable {
            names: specs.iter().map(|s| s.name.clone()).collect(),
            groups,
            exact: HostMap::new(exact),
            wildcard: HostMap::new(wildcard),
            any,
            wildcard_labels,
        };
        Ok(table)
    }

    /// The gateway for a request. `authority` is `:authority` (or `host`) as
    /// received, `None` when absent; `path` is `:path` as received. Both are raw
    /// bytes and may be anything (non-UTF-8 included).
    ///
    /// Order: the path is checked and normalized first (a refused path is
    /// [`Match::BadPath`] whatever the host); then the most specific host pattern
    /// that matches is chosen (exact, then the longest wildcard suffix, then
    /// `*`); then, among that pattern's gateways only, the longest `path_prefix`
    /// that matches the normalized path on a segment boundary.
    ///
    /// No heap allocation unless the path needs normalization (one buffer) or a
    /// stripped path cannot borrow from `:path` (`/fraud?x=1` -> `/?x=1`).
    pub fn select<'p>(&self, authority: Option<&[u8]>, path: &'p [u8]) -> Match<'p> {
        let normalized = match normalize(path) {
            Ok(normalized) => normalized,
            Err(error) => return Match::BadPath(error),
        };
        let Some(routes) = self.host_group(authority).and_then(|g| self.groups.get(g)) else {
            return Match::Unmatched;
        };
        match routes
            .iter()
            .find(|route| prefix_matches(normalized.path(), &route.prefix))
        {
            Some(route) => Match::Gateway {
                index: route.index,
                strip: route.strip.then(|| normalized.strip(route.prefix.len())),
            },
            None => Match::Unmatched,
        }
    }

    /// The group of the most specific host pattern matching `authority`.
    fn host_group(&self, authority: Option<&[u8]>) -> Option<usize> {
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return self.any;
        }
        let found = match authority.map(split_authority) {
            Some(Authority::Name(name)) => {
                let mut longest_wildcard = None;
                // Suffixes come shortest first: the last hit is the longest.
                let max_labels = if self.wildcard.is_empty() {
                    0
                } else {
                    self.wildcard_labels
                };
                let hash = walk_name(name, max_labels, |hash, suffix| {
                    if let Some(group) = self.wildcard.get(hash, suffix) {
                        longest_wildcard = Some(group);
                    }
                });
                hash.and_then(|hash| self.exact.get(hash, name).or(longest_wildcard))
            }
            Some(Authority::Ipv6(text)) => {
                let text = text.as_bytes();
                self.exact.get(host_hash(text), text)
            }
            Some(Authority::Unusable) | None => None,
        };
        found.or(self.any)
    }

    /// How many gateways the table has.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the table has no gateway (every request is unmatched).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of `gateways[index]`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// Every gateway name, by index (for defining metrics at configure time).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}
