//! The proxy-wasm adapter (wasm32 only): the only code that uses the SDK.
//!
//! - [`AbiHost`] implements [`Host`] with the host calls of [`abi`], which
//!   read headers as raw bytes and turn every failure into an `Err`;
//! - [`RootAdapter`] and [`HttpAdapter`] implement the SDK's context traits by
//!   handing each callback to [`crate::gate`], one line each;
//! - [`logger`] is the `log` backend.
//!
//! From the SDK it takes the dispatcher (the exported `proxy_on_*` entry
//! points), its allocator, and `dispatch_http_call`, whose token the
//! dispatcher must register to route the answer back.

mod abi;
mod logger;

use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action as SdkAction, ContextType};

use crate::auth::oauth2::HttpCall;
use crate::gate::{Http, Root};
use crate::host::{Action, Host, HostError};
use abi::{Buffer, Level, Map, Metric};

proxy_wasm::main! {{
    // No host calls here: Envoy refuses them during `_initialize`.
    logger::install();
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(RootAdapter(Root::new(context_id)))
    });
}}

// The ABI version the SDK exports, by its marker function: an SDK that exports
// another version fails to compile here until `REPICKS_BY_ITSELF` is decided
// again for it.
const _: extern "C" fn() = proxy_wasm::proxy_abi_version_0_2_1;
/// Whether Envoy re-picks the route after a request-header change without
/// being asked: true for the ABI this build exports, 0.2.1 (see above).
const REPICKS_BY_ITSELF: bool = true;

/// The host, through the ABI.
struct AbiHost;

impl Host for AbiHost {
    fn now_ms(&self) -> Result<u64, HostError> {
        Ok(abi::now_nanos()? / 1_000_000)
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        abi::buffer(Buffer::PluginConfiguration, usize::MAX)
            .ok()
            .flatten()
    }

    fn log_critical(&self, message: &str) {
        abi::log(Level::Critical, message);
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        abi::header(Map::RequestHeaders, name).ok().flatten()
    }

    fn request_header_map(&self) -> Vec<u8> {
        abi::header_map(Map::RequestHeaders).unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        abi::set_header(Map::RequestHeaders, name, value)
    }

    fn set_response_header(&self, name: &str, value: &[u8]) -> Result<(), HostError> {
        abi::set_header(Map::ResponseHeaders, name, Some(value))
    }

    /// The rule: Envoy re-picks the route by itself after a plugin changes a
    /// request header when the plugin exports proxy-wasm ABI 0.2.1 or older
    /// (measured on Envoy 1.36.2 and 1.40.0), and stops doing so for newer
    /// ABIs (Envoy 1.33 on), which must call the `clear_route_cache` foreign
    /// function. This build exports 0.2.1 ([`REPICKS_BY_ITSELF`]), so the call
    /// would only repeat what Envoy already did: it is skipped (measured in
    /// BENCHMARKS.md; `tests/istio.rs` checks that forged route headers lose).
    fn clear_route_cache(&self) -> Result<(), HostError> {
        if REPICKS_BY_ITSELF {
            return Ok(());
        }
        abi::call_foreign("clear_route_cache")
    }

    fn send_reply(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        abi::send_reply(status, headers, body)
    }

    fn reset_request(&self) {
        let _ = abi::reset_request();
    }

    fn resume_request(&self) -> Result<(), HostError> {
        abi::resume_request()
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError> {
        abi::set_effective_context(context_id)
    }

    /// The one host call left to the SDK (see the module docs). Its inputs are
    /// the filter's own, from the validated configuration; it panics only on a
    /// status Envoy does not return for this call (`Ok`, `BadArgument`,
    /// `InternalFailure`).
    fn dispatch(&self, call: &HttpCall) -> Result<u32, HostError> {
        let headers: Vec<(&str, &str)> =
            call.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        proxy_wasm::hostcalls::dispatch_http_call(
            &call.cluster,
            headers,
            call.body.as_deref(),
            vec![],
            Duration::from_millis(call.timeout_ms),
        )
        .map_err(|status| HostError(status as u32))
    }

    fn call_header(&self, name: &str) -> Option<Vec<u8>> {
        abi::header(Map::HttpCallResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn call_body(&self, max: usize) -> Option<Vec<u8>> {
        abi::buffer(Buffer::HttpCallResponseBody, max)
            .ok()
            .flatten()
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        abi::define_metric(Metric::Counter, name).ok()
    }

    fn define_gauge(&self, name: &str) -> Option<u32> {
        abi::define_metric(Metric::Gauge, name).ok()
    }

    fn define_histogram(&self, name: &str) -> Option<u32> {
        abi::define_metric(Metric::Histogram, name).ok()
    }

    fn increment(&self, id: u32) {
        let _ = abi::increment(id, 1);
    }

    fn record(&self, id: u32, value: u64) {
        let _ = abi::record(id, value);
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        abi::header(Map::ResponseHeaders, name).ok().flatten()
    }

    fn response_trailer(&self, name: &str) -> Option<Vec<u8>> {
        abi::header(Map::ResponseTrailers, name).ok().flatten()
    }

    fn set_property(&self, name: &str, value: &[u8]) {
        let _ = abi::set_property(name, value);
    }

    fn plugin_name(&self) -> Option<String> {
        let bytes = abi::property("plugin_name").ok().flatten()?;
        String::from_utf8(bytes).ok()
    }

    fn shared_data(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        abi::shared_data(key).unwrap_or((None, None))
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        abi::set_shared_data(key, value, cas)
    }

    fn set_tick_period_ms(&self, period: u32) -> Result<(), HostError> {
        abi::set_tick_period_ms(period)
    }
}

fn action(a: Action) -> SdkAction {
    match a {
        Action::Continue => SdkAction::Continue,
        Action::Pause => SdkAction::Pause,
    }
}

struct RootAdapter(Root);

impl Context for RootAdapter {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body: usize, _: usize) {
        self.0.on_http_call_response(&AbiHost, token, body);
    }
}

impl RootContext for RootAdapter {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        logger::follow_host_level();
        self.0.on_vm_start()
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        logger::follow_host_level();
        self.0.on_configure(&AbiHost)
    }

    fn on_tick(&mut self) {
        self.0.on_tick(&AbiHost);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpAdapter(self.0.new_http(context_id))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct HttpAdapter(Http);

impl Context for HttpAdapter {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body: usize, _: usize) {
        self.0.on_http_call_response(&AbiHost, token, body);
    }

    fn on_done(&mut self) -> bool {
        self.0.on_done(&AbiHost)
    }
}

impl HttpContext for HttpAdapter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> SdkAction {
        action(self.0.on_request_headers(&AbiHost))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> SdkAction {
        action(self.0.on_response_headers(&AbiHost, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> SdkAction {
        action(self.0.on_response_trailers(&AbiHost))
    }
}
