//! Gateways: which configured gateway a request belongs to, chosen by host and
//! path prefix, and the metric names that carry the gateway as a label.
//!
//! Pure Rust with no dependency on the rest of the crate or on proxy-wasm, so it
//! is tested natively (`cargo test --lib gateway`). Configure time:
//! [`GatewayTable::compile`] validates the gateways ([`GatewaySpec`]) and
//! builds an immutable table; errors are [`GatewayError`]s naming the field
//! (`gateways[2].hosts[0]: ...`). Request time: [`GatewayTable::select`] takes
//! the raw `:authority` and `:path` bytes and returns a [`Match`].
//!
//! # Matching, in order
//!
//! 1. **The path is checked and normalized** ([`path`]); an ambiguous path is
//!    [`Match::BadPath`] (400 `ambiguous_path`) before anything is matched.
//! 2. **The host pattern is chosen** ([`host`]): the most specific pattern that
//!    matches the request host: an exact host, else the longest matching
//!    wildcard suffix, else `*`.
//! 3. **The gateway is chosen among that host pattern's gateways only**: the
//!    longest `path_prefix` matching the normalized path on a segment boundary.
//!    If none matches, the request is [`Match::Unmatched`]; a less specific host
//!    pattern is never tried (no fallback). A (host pattern, `path_prefix`) pair
//!    appears at most once in a table, so the winner is unique.
//! 4. **Forwarding**: without `strip_prefix` the request goes on with `:path` as
//!    it came. With `strip_prefix` the caller sets `:path` to
//!    `Match::Gateway::strip`: the *normalized* path with the prefix removed (an
//!    empty rest becomes `/`), plus the query as received. `/fraud/score` ->
//!    `/score`, `/fraud` -> `/`, `/fraud?x=1` -> `/?x=1`, `//fraud/./score?x=1`
//!    -> `/score?x=1`. Building it from the normalized path is what makes the
//!    removed part exactly the part that was matched.
//!
//! # Cost per request
//!
//! No heap allocation for a path that needs no normalization; one buffer (at
//! most the length of `:path`) when it does, reused for a stripped path. The
//! path is scanned once (runs of ordinary bytes in a tight loop); an exact host
//! is hashed eight bytes at a time and looked up once; wildcards cost one
//! right-to-left walk and a lookup per label of the longest configured
//! wildcard. `benches/gateways.rs` measures it (`cargo bench --bench gateways`).
//!
//! # Metrics
//!
//! [`stats`] builds the metric names with the gateway, upstream, reason or class
//! as labels, in the `TAG=.=VALUE;.;` encoding Istio's stats tags extract, and
//! gives the `stats_tags` a plain Envoy bootstrap needs for the same series.

mod error;
pub mod host;
mod name;
pub mod path;
pub mod stats;
mod table;

pub use error::GatewayError;
pub use name::{validate_name, validate_names, MAX_NAME_LEN};
pub use path::{normalize, NormalizedPath, PathError};
pub use table::{GatewaySpec, GatewayTable, Match, DEFAULT_HOSTS, DEFAULT_PATH_PREFIX};

#[cfg(test)]
mod tests;
