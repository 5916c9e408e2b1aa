//! Integration-test harness: real Envoy processes running the built filter, in front of
//! in-process upstreams.
//!
//! Run through `scripts/test.sh`, which builds the filter, fetches Envoy and exports
//! `ENVOY_BIN` and `CANARY_GATE_WASM`. Without them every Envoy test fails with a message
//! that says so (nothing is skipped silently).
//!
//! One module per concern:
//! - [`envoy`]: the one launcher (`Envoy::builder(bootstrap)...start()`): ephemeral ports, a
//!   distinct `--base-id`, readiness on admin `/ready` with a deadline, the log printed when a
//!   test fails, the process group killed on drop. The benchmark driver shares it.
//! - [`bootstrap`]: generated bootstraps ([`Gateway`]) and the pieces others reuse;
//! - [`http`]: the client ([`Resp`], [`http_request`], `Envoy::get`);
//! - [`upstream`]: echo upstreams; [`raw`]: byte-level HTTP/1.1 for non-UTF-8 requests;
//! - [`oracle`]: the documented split formula, written independently of the crate;
//! - [`ports`]: fixed free ports for the demo's bootstrap.
#![allow(
    dead_code, // each test crate uses a different part of the harness
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod bootstrap;
pub mod envoy;
pub mod http;
pub mod oracle;
pub mod ports;
pub mod raw;
pub mod upstream;

pub use bootstrap::{wasm_path, Gateway, DEFAULT_ROUTE_HEADER, GATEWAY_LISTENER};
pub use envoy::{Envoy, StartFailure, TempDir};
pub use http::{http_request, Resp};
pub use upstream::EchoUpstream;
