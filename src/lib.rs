//! canary-gate: a proxy-wasm HTTP filter that authenticates a request, picks the
//! upstream version (weighted random or sticky murmur3 hash) and writes the
//! route header that Envoy's `cluster_header` route (or an Istio VirtualService
//! header match) reads.
//!
//! Layout:
//! - [`config`]: the JSON contract, parsed and validated once into an immutable [`plan::Plan`];
//! - [`split`]: bucket edges and the upstream choice;
//! - [`auth`]: none, HTTP Basic and access-key authentication;
//! - [`request`]: the request as raw header bytes, and byte-level query and cookie parsers;
//! - [`plan`]: the per-request decision, written against the [`request::Request`] trait;
//! - `filter` (wasm only): the thin proxy-wasm layer, the only code that talks to Envoy.

pub mod auth;
pub mod config;
pub mod gateway;
pub mod plan;
pub mod request;
pub mod split;
// The ABI's map encoding: used by the wasm-only filter, tested natively.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod wire;

#[cfg(target_arch = "wasm32")]
mod filter;

/// Crate version, logged when the VM starts.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
