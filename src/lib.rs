//! canary-gate: a proxy-wasm HTTP filter that authenticates a request (none,
//! HTTP Basic, access keys, OAuth2 bearer tokens), picks the upstream version
//! (weighted random or sticky murmur3 hash) and writes the route header that
//! Envoy's `cluster_header` route (or an Istio VirtualService header match)
//! reads.
//!
//! Layout (each module uses only those listed before it; `wasm` uses them all):
//! - [`validate`]: configuration errors ([`validate::ConfigError`]) and the field
//!   validators every part of the configuration shares;
//! - [`secret`]: secret fields given inline or as `{"env": "NAME"}`, resolved at
//!   configure time through an injectable environment lookup;
//! - [`reply`]: every local reply the filter can send (401/403/503 refusals, 500s);
//! - [`request`]: the request as raw header bytes, and byte-level query and cookie parsers;
//! - [`split`]: bucket edges and the upstream choice;
//! - [`gateway`]: which gateway a request belongs to (host, normalized path), and
//!   the metric names that carry the gateway as a label;
//! - [`streak`], [`park`]: once-per-streak reporting, the queue of parked requests;
//! - [`watch`]: response classes, sliding windows, the canary guard and the ramp;
//! - [`auth`]: none, HTTP Basic, access-key and OAuth2 bearer-token
//!   authentication (JWTs verified against configured or fetched JWKS, or RFC 7662
//!   introspection); each mode owns and validates its part of the configuration;
//! - [`config`]: the JSON contract, parsed and validated once into an immutable
//!   [`config::Plan`];
//! - [`decide`]: the per-request decision ([`config::Plan::decide`]), written against
//!   the [`request::Request`] trait, and the per-VM [`decide::State`];
//! - [`canaries`]: the live canaries of a VM: ramp shares, guard windows and trips;
//! - [`host`]: the host calls the glue makes, as a trait;
//! - [`gate`]: the glue: each proxy-wasm callback, written against [`host::Host`]
//!   and tested natively with a mock host;
//! - `wasm` (wasm32 only): the proxy-wasm adapter, the only code that uses the SDK;
//! - `cli` (native only): the `canary-gate` command-line tool, on the same
//!   [`config::parse`] and [`config::Plan::decide`] as the filter.
//!
//! Everything but `wasm` compiles without `proxy-wasm` in its dependency graph.

pub mod auth;
pub mod canaries;
pub mod config;
pub mod decide;
pub mod gate;
pub mod gateway;
pub mod host;
pub mod park;
pub mod reply;
pub mod request;
pub mod secret;
pub mod split;
pub mod streak;
pub mod validate;
pub mod watch;
// The ABI's map encoding: used by the wasm adapter and the glue, tested
// natively (the decision benchmark reads headers through it as the filter does).
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(not(target_arch = "wasm32"))]
pub mod cli;

/// Crate version, logged when the VM starts.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
