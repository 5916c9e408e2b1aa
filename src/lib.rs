//! canary-gate: a proxy-wasm HTTP filter that authenticates a request (none,
//! HTTP Basic, access keys, OAuth2 bearer tokens), picks the upstream version
//! (weighted random or sticky murmur3 hash) and writes the route header that
//! Envoy's `cluster_header` route (or an Istio VirtualService header match)
//! reads.
//!
//! Layout (each module imports only those listed before it):
//! - [`request`]: the request as raw header bytes, and byte-level query and cookie parsers;
//! - [`split`]: bucket edges, murmur3, the upstream choice;
//! - [`streak`], [`park`]: once-per-streak reporting, the queue of parked requests;
//! - [`auth`]: none, HTTP Basic, access keys and OAuth2 (JWT, JWKS, introspection);
//! - [`config`]: the JSON contract, parsed and validated once into an immutable [`plan::Plan`];
//! - [`plan`]: the per-request decision, written against the [`request::Request`] trait;
//! - [`watch`]: response classes, sliding windows, the canary guard and the ramp;
//! - [`host`]: the host calls the glue makes, as a trait;
//! - [`gate`]: the glue: each proxy-wasm callback, written against [`host::Host`]
//!   and tested natively with a mock host;
//! - `wasm` (wasm32 only): the proxy-wasm adapter, the only code that uses the SDK.
//!
//! Everything but `wasm` compiles without `proxy-wasm` in its dependency graph.

pub mod auth;
pub mod config;
pub mod gate;
pub mod host;
pub mod park;
pub mod plan;
pub mod request;
pub mod split;
pub mod streak;
pub mod watch;
// The ABI's map encoding: used by the wasm adapter, tested natively.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod wire;

#[cfg(target_arch = "wasm32")]
mod wasm;

/// Crate version, logged when the VM starts.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
