//! The host calls the filter makes, owned here so that none of them can panic.
//!
//! The proxy-wasm SDK (0.2.5) wraps every host call in a function that
//! `panic!`s on a status it did not expect, and its map getters turn every
//! header name and value into a `String` with `unwrap()`: one non-UTF-8 byte
//! in a request header, sent by anyone, panics the VM and takes the plugin
//! down for every request on that worker. This module declares the ABI
//! functions itself and gives the rest of the filter safe wrappers that:
//! - return header names and values, buffers and foreign-function results as
//!   raw bytes (the core decides what non-UTF-8 means);
//! - map every status other than `Ok` (and `NotFound` where it means "absent")
//!   to an `Err` carrying the raw status, never a panic;
//! - parse the host's serialized header maps with bounds checks.
//!
//! It is the only module of the crate where `unsafe` is allowed. What stays
//! with the SDK, and why, is listed in the README's security notes: the
//! dispatcher and its exported `proxy_on_*` entry points, the allocator the
//! host calls back into, and `dispatch_http_call` (the dispatcher must
//! register the call's token to route its answer back).
//!
//! Memory handed back by the host was allocated through the SDK's exported
//! `proxy_on_memory_allocate` as a boxed slice of exactly the returned size,
//! so it is taken back with `Vec::from_raw_parts(ptr, size, size)`, as the
//! SDK itself does.
#![allow(unsafe_code)]

use std::ptr::{null, null_mut};

use crate::host::HostError;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

/// `MapType` values of the ABI.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
#[allow(clippy::enum_variant_names)] // the ABI's names
pub enum Map {
    RequestHeaders = 0,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    HttpCallResponseHeaders = 6,
}

/// `BufferType` values of the ABI.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
}

/// `LogLevel` values of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

const STREAM_HTTP_REQUEST: u32 = 0;

/// `MetricType` values of the ABI.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Metric {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
}

fn check(status: u32) -> Result<(), HostError> {
    if status == OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// Takes ownership of a host-allocated buffer (see the module docs).
///
/// # Safety
/// `data` must be null or come from the host's answer to a call that returned
/// `Ok`, allocated through `proxy_on_memory_allocate` with `size` bytes.
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// Writes a log line. Errors are ignored: there is nowhere to report them.
pub fn log(level: Level, message: &str) {
    // SAFETY: the pointer and length describe `message`, alive for the call.
    unsafe {
        proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

/// Envoy's log level for this plugin's logger (`Info` if the host won't say).
pub fn log_level() -> Level {
    let mut raw: u32 = Level::Info as u32;
    // SAFETY: `raw` is a valid out-pointer for the call.
    let status = unsafe { proxy_get_log_level(&mut raw) };
    if status != OK {
        return Level::Info;
    }
    match raw {
        0 => Level::Trace,
        1 => Level::Debug,
        2 => Level::Info,
        3 => Level::Warn,
        4 => Level::Error,
        _ => Level::Critical,
    }
}

/// Host time in nanoseconds since the Unix epoch.
pub fn now_nanos() -> Result<u64, HostError> {
    let mut nanos: u64 = 0;
    // SAFETY: `nanos` is a valid out-pointer for the call.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos)
}

pub fn set_tick_period_ms(period: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_tick_period_milliseconds(period) })
}

/// Up to `max` bytes of a buffer; `None` when the host has none.
pub fn buffer(kind: Buffer, max: usize) -> Result<Option<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: valid out-pointers; on `Ok` the host handed us `data`/`size`.
    unsafe {
        match proxy_get_buffer_bytes(kind as u32, 0, max, &mut data, &mut size) {
            OK if data.is_null() => Ok(None),
            OK => Ok(Some(take(data, size))),
            NOT_FOUND => Ok(None),
            status => Err(HostError(status)),
        }
    }
}

/// The first value of header `name` (lowercase), as raw bytes; `None` if absent.
pub fn header(map: Map, name: &str) -> Result<Option<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: `name` is alive for the call; valid out-pointers; on `Ok` the
    // host handed us `data`/`size`.
    unsafe {
        match proxy_get_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            &mut data,
            &mut size,
        ) {
            OK => Ok(Some(take(data, size))),
            NOT_FOUND => Ok(None),
            status => Err(HostError(status)),
        }
    }
}

/// Every header of a map in one read, serialized as the ABI carries it (read
/// it with `crate::wire`, which checks its bounds).
pub fn header_map(map: Map) -> Result<Vec<u8>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: valid out-pointers; on `Ok` the host handed us `data`/`size`.
    unsafe {
        match proxy_get_header_map_pairs(map as u32, &mut data, &mut size) {
            OK => Ok(take(data, size)),
            NOT_FOUND => Ok(Vec::new()),
            status => Err(HostError(status)),
        }
    }
}

/// Sets (replaces) header `name`, or removes it when `value` is `None`.
pub fn set_header(map: Map, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
    // SAFETY: `name` and `value` are alive for the call.
    let status = unsafe {
        match value {
            Some(v) => proxy_replace_header_map_value(
                map as u32,
                name.as_ptr(),
                name.len(),
                v.as_ptr(),
                v.len(),
            ),
            None => proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()),
        }
    };
    check(status)
}

/// Resumes the paused request.
pub fn resume_request() -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_continue_stream(STREAM_HTTP_REQUEST) })
}

/// Resets the request (the last resort when a local reply cannot be sent).
pub fn reset_request() -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_close_stream(STREAM_HTTP_REQUEST) })
}

/// Sends a local reply instead of forwarding the request.
pub fn send_reply(status: u32, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
    let serialized = crate::wire::encode_map(headers);
    // SAFETY: every pointer and length describes a live local for the call.
    check(unsafe {
        proxy_send_local_response(
            status,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            -1,
        )
    })
}

/// Makes `context_id` the context later host calls act on.
pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// Calls a host foreign function with no arguments; its result is ignored.
pub fn call_foreign(name: &str) -> Result<(), HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: `name` is alive for the call; valid out-pointers; on `Ok` any
    // result buffer is the host's to give us, and is freed here.
    unsafe {
        let status =
            proxy_call_foreign_function(name.as_ptr(), name.len(), null(), 0, &mut data, &mut size);
        if status == OK {
            drop(take(data, size));
        }
        check(status)
    }
}

/// Defines a metric and returns its id.
pub fn define_metric(kind: Metric, name: &str) -> Result<u32, HostError> {
    let mut id: u32 = 0;
    // SAFETY: `name` is alive for the call; `id` is a valid out-pointer.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Sets a gauge, or records a value in a histogram.
pub fn record(id: u32, value: u64) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_record_metric(id, value) })
}

/// A shared-data value (`None` if absent) and its compare-and-swap token.
pub fn shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: `key` is alive for the call; valid out-pointers; on `Ok` the
    // host handed us `data`/`size`.
    unsafe {
        match proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) {
            OK => {
                let value = (!data.is_null()).then(|| take(data, size));
                Ok((value, (cas != 0).then_some(cas)))
            }
            NOT_FOUND => Ok((None, None)),
            status => Err(HostError(status)),
        }
    }
}

/// Writes a shared-data value; with `cas`, only if nobody wrote since it was read.
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
    // SAFETY: `key` and `value` are alive for the call.
    check(unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    })
}

/// A property of one path segment (`plugin_name`, ...), as bytes.
pub fn property(name: &str) -> Result<Option<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: `name` is alive for the call (a one-segment path needs no
    // separator); valid out-pointers; on `Ok` the host handed us `data`/`size`.
    unsafe {
        match proxy_get_property(name.as_ptr(), name.len(), &mut data, &mut size) {
            OK => Ok((!data.is_null()).then(|| take(data, size))),
            NOT_FOUND => Ok(None),
            status => Err(HostError(status)),
        }
    }
}

/// Sets a property of one path segment (filter state Envoy's access log reads
/// as `%FILTER_STATE(wasm.NAME:PLAIN)%`).
pub fn set_property(name: &str, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: `name` and `value` are alive for the call.
    check(unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

pub fn increment(id: u32, by: i64) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_increment_metric(id, by) })
}
