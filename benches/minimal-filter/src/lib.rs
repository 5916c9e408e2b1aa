//! The wasm floor for scripts/bench.sh.
//!
//! Without a plugin configuration it sets `x-canary-upstream: v1` on every
//! request, through the same hostcall canary-gate uses for its route header,
//! and continues: nothing is parsed, read or counted. That is what any
//! proxy-wasm filter costs at least.
//!
//! With a configuration, it replays a fixed list of hostcalls per request and
//! does nothing else, to tell the cost of canary-gate's hostcalls from the cost
//! of its logic. The list is `;`-separated, parsed once in `on_configure`:
//! `get NAME`, `set NAME VALUE`, `remove NAME`, `counter NAME`.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { ops: Rc::new(vec![Op::Set("x-canary-upstream".into(), "v1".into())]) })
    });
}}

enum Op {
    Get(String),
    Set(String, String),
    Remove(String),
    Counter(u32),
}

struct Root {
    ops: Rc<Vec<Op>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = self.get_plugin_configuration() else {
            return true;
        };
        let Ok(text) = String::from_utf8(config) else {
            return false;
        };
        let mut ops = Vec::new();
        for op in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let words: Vec<&str> = op.split_whitespace().collect();
            ops.push(match words.as_slice() {
                ["get", name] => Op::Get(name.to_string()),
                ["set", name, value] => Op::Set(name.to_string(), value.to_string()),
                ["remove", name] => Op::Remove(name.to_string()),
                ["counter", name] => match hostcalls::define_metric(MetricType::Counter, name) {
                    Ok(id) => Op::Counter(id),
                    Err(_) => return false,
                },
                _ => return false,
            });
        }
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
    ops: Rc<Vec<Op>>,
}

impl Context for Replay {}

impl HttpContext for Replay {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for op in self.ops.iter() {
            match op {
                Op::Get(name) => {
                    std::hint::black_box(self.get_http_request_header(name));
                }
                Op::Set(name, value) => self.set_http_request_header(name, Some(value)),
                Op::Remove(name) => self.set_http_request_header(name, None),
                Op::Counter(id) => {
                    let _ = hostcalls::increment_metric(*id, 1);
                }
            }
        }
        Action::Continue
    }
}
