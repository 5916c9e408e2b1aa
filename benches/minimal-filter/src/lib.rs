//! The wasm floor for scripts/bench.sh.
//!
//! Without a plugin configuration it sets `x-canary-upstream: v1` on every
//! request, through the same hostcall canary-gate uses for its route header,
//! and continues: nothing is parsed, read or counted. That is what any
//! proxy-wasm filter costs at least.
//!
//! With a configuration, it replays a fixed list of hostcalls per request and
//! does nothing else, to tell the cost of canary-gate's hostcalls from the cost
//! of its logic (the "twin" rows). The list is `;`-separated, parsed once in
//! `on_configure`; the word `response` starts the list replayed on the
//! response headers:
//!
//! ```text
//! get NAME            read a request header (a response header after `response`)
//! map                 read the whole header map in one call, serialized (what
//!                     canary-gate does for a credential header, to see a copy)
//! set NAME VALUE      set a request header
//! remove NAME         remove a request header
//! counter NAME        define a counter once, increment it per request
//! histogram NAME      define a histogram once, record 1 per request
//! property NAME VALUE set a filter-state property (what the access log reads)
//! now                 read the clock
//! foreign NAME        call a foreign function without arguments
//! ```

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { ops: Rc::new(Ops {
            request: vec![Op::Set("x-canary-upstream".into(), "v1".into())],
            response: Vec::new(),
        }) })
    });
}}

enum Op {
    Get(String),
    Map,
    Set(String, String),
    Remove(String),
    Counter(u32),
    Histogram(u32),
    Property(String, Vec<u8>),
    Now,
    Foreign(String),
}

struct Ops {
    request: Vec<Op>,
    response: Vec<Op>,
}

struct Root {
    ops: Rc<Ops>,
}

impl Context for Root {}

fn parse(text: &str) -> Option<Ops> {
    let mut ops = Ops {
        request: Vec::new(),
        response: Vec::new(),
    };
    let mut response = false;
    for op in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let words: Vec<&str> = op.split_whitespace().collect();
        let op = match words.as_slice() {
            ["response"] => {
                response = true;
                continue;
            }
            ["get", name] => Op::Get(name.to_string()),
            ["map"] => Op::Map,
            ["set", name, value] => Op::Set(name.to_string(), value.to_string()),
            ["remove", name] => Op::Remove(name.to_string()),
            ["counter", name] => Op::Counter(hostcalls::define_metric(MetricType::Counter, name).ok()?),
            ["histogram", name] => {
                Op::Histogram(hostcalls::define_metric(MetricType::Histogram, name).ok()?)
            }
            ["property", name, value] => Op::Property(name.to_string(), value.as_bytes().to_vec()),
            ["now"] => Op::Now,
            ["foreign", name] => Op::Foreign(name.to_string()),
            _ => return None,
        };
        if response {
            ops.response.push(op);
        } else {
            ops.request.push(op);
        }
    }
    Some(ops)
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = self.get_plugin_configuration() else {
            return true;
        };
        let Some(ops) = String::from_utf8(config).ok().as_deref().and_then(parse) else {
            return false;
        };
        self.ops = Rc::new(ops);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Replay {
            ops: self.ops.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Replay {
    ops: Rc<Ops>,
}

impl Context for Replay {}

fn replay(ops: &[Op], headers: MapType) {
    for op in ops {
        match op {
            Op::Get(name) => {
                std::hint::black_box(hostcalls::get_map_value_bytes(headers, name).ok());
            }
            Op::Map => {
                std::hint::black_box(header_map(headers));
            }
            Op::Set(name, value) => {
                let _ = hostcalls::set_map_value_bytes(headers, name, Some(value.as_bytes()));
            }
            Op::Remove(name) => {
                let _ = hostcalls::set_map_value_bytes(headers, name, None);
            }
            Op::Counter(id) => {
                let _ = hostcalls::increment_metric(*id, 1);
            }
            Op::Histogram(id) => {
                let _ = hostcalls::record_metric(*id, 1);
            }
            Op::Property(name, value) => {
                let _ = hostcalls::set_property(vec![name], Some(value));
            }
            Op::Now => {
                std::hint::black_box(hostcalls::get_current_time().ok());
            }
            Op::Foreign(name) => {
                std::hint::black_box(hostcalls::call_foreign_function(name, None).ok());
            }
        }
    }
}

extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
}

/// The serialized map as the host hands it over (no decoding: canary-gate
/// searches these bytes in place), the same call canary-gate makes.
fn header_map(map: MapType) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: valid out-pointers; on status 0 the host allocated `data` of
    // `size` bytes with the SDK's allocator, which `Vec` then owns.
    unsafe {
        if proxy_get_header_map_pairs(map as u32, &mut data, &mut size) != 0 || data.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(data, size, size))
    }
}

impl HttpContext for Replay {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        replay(&self.ops.request, MapType::HttpRequestHeaders);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        replay(&self.ops.response, MapType::HttpResponseHeaders);
        Action::Continue
    }
}
