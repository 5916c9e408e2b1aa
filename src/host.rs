//! The proxy as the glue sees it: a small trait with one method per host call
//! the filter makes. [`crate::gate`] is written against it; `crate::wasm`
//! implements it with proxy-wasm, and the glue's tests with a mock. Header
//! names and values cross it as raw bytes; every failure is a [`HostError`],
//! never a panic.

use crate::auth::oauth2::HttpCall;

/// A host call that did not succeed: the raw proxy-wasm status (1 NotFound,
/// 2 BadArgument, 3 SerializationFailure, 4 ParseFailure, 7 Empty,
/// 10 InternalFailure, or anything else a host returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            1 => f.write_str("NotFound"),
            2 => f.write_str("BadArgument"),
            3 => f.write_str("SerializationFailure"),
            4 => f.write_str("ParseFailure"),
            7 => f.write_str("Empty"),
            8 => f.write_str("CasMismatch"),
            10 => f.write_str("InternalFailure"),
            n => write!(f, "status {n}"),
        }
    }
}

impl HostError {
    /// What the glue reports when the host sent something it cannot read.
    pub const PARSE_FAILURE: HostError = HostError(4);
    pub const INTERNAL_FAILURE: HostError = HostError(10);
}

/// What the request or response does next, after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

/// One method per host call. `&self` throughout: the host is a handle to the
/// proxy, whose state lives on the other side of the ABI. Header calls act on
/// the current (effective) context.
pub trait Host {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Result<u64, HostError>;
    /// The plugin configuration, if any.
    fn plugin_configuration(&self) -> Option<Vec<u8>>;
    /// Critical log line (configuration refused). Other lines go through `log`.
    fn log_critical(&self, message: &str);

    /// The first value of a request header, as raw bytes.
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    /// Every request header in one read: the map serialized as the ABI
    /// carries it (`crate::wire`; read with [`crate::wire::values`]), empty
    /// when the host has none or the read fails.
    fn request_header_map(&self) -> Vec<u8>;
    /// Replaces a request header, or removes it when `value` is `None`.
    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError>;
    fn set_response_header(&self, name: &str, value: &[u8]) -> Result<(), HostError>;
    /// Makes Envoy pick the route again (the `clear_route_cache` foreign function).
    fn clear_route_cache(&self) -> Result<(), HostError>;
    /// Answers the request locally.
    fn send_reply(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;
    /// Resets the request: the last resort when a reply cannot be sent.
    fn reset_request(&self);
    /// Resumes the paused request.
    fn resume_request(&self) -> Result<(), HostError>;
    /// Makes later calls act on `context_id` (a parked request).
    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError>;

    /// Sends an HTTP call; the answer comes to the calling context with the token.
    fn dispatch(&self, call: &HttpCall) -> Result<u32, HostError>;
    /// A header of the HTTP call answer being delivered.
    fn call_header(&self, name: &str) -> Option<Vec<u8>>;
    /// Up to `max` bytes of the HTTP call answer's body being delivered.
    fn call_body(&self, max: usize) -> Option<Vec<u8>>;

    /// Defines a counter; `None` if the host refuses (the counter is then skipped).
    fn define_counter(&self, name: &str) -> Option<u32>;
    fn define_gauge(&self, name: &str) -> Option<u32>;
    fn define_histogram(&self, name: &str) -> Option<u32>;
    fn increment(&self, id: u32);
    /// Sets a gauge, or records a value in a histogram.
    fn record(&self, id: u32, value: u64);
    fn set_tick_period_ms(&self, period: u32) -> Result<(), HostError>;

    /// The first value of a response header (of the current context).
    fn response_header(&self, name: &str) -> Option<Vec<u8>>;
    /// The first value of a response trailer.
    fn response_trailer(&self, name: &str) -> Option<Vec<u8>>;
    /// Writes a value the access log can print (`%FILTER_STATE(wasm.NAME:PLAIN)%`).
    fn set_property(&self, name: &str, value: &[u8]);
    /// The plugin's name (`name` of the plugin configuration).
    fn plugin_name(&self) -> Option<String>;

    /// A value every worker of this VM sees, and its compare-and-swap token.
    fn shared_data(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes a shared value; with `cas`, fails if another worker wrote since.
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError>;
}
