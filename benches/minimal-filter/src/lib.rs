//! Sets `x-canary-upstream: v1` on every request, through the same hostcall
//! canary-gate uses for its route header, and continues. Nothing is parsed,
//! read or counted: this is what any proxy-wasm filter costs at least.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(SetHeader))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct SetHeader;

impl Context for SetHeader {}

impl HttpContext for SetHeader {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_request_header("x-canary-upstream", Some("v1"));
        Action::Continue
    }
}
