//! The proxy-wasm layer: the only module that talks to Envoy.
//!
//! The root context parses the plugin configuration once (`on_configure`) into
//! an immutable [`Plan`] shared by every HTTP context; each request is decided
//! by [`Plan::decide`] and the result applied here. Host calls go through
//! `hostcalls::*` directly so that a failing call is handled (fail closed with a
//! 500) instead of panicking inside the VM.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType, Status};

use crate::auth::{AuthError, CREDENTIAL_CACHE_CAPACITY};
use crate::plan::{Plan, Request, State};

proxy_wasm::main! {{
    // No host calls here: Envoy refuses them during `_initialize`.
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Follow Envoy's own log level so disabled debug lines cost nothing.
fn host_log_level() -> LogLevel {
    hostcalls::get_log_level().unwrap_or(LogLevel::Info)
}

fn critical(message: &str) {
    // Nothing sensible to do if logging itself fails.
    let _ = hostcalls::log(LogLevel::Critical, message);
}

/// Counter ids, defined once per configuration.
#[derive(Debug)]
struct Metrics {
    /// Requests routed, per upstream (same order as `Plan::upstreams`).
    routed: Vec<Option<u32>>,
    auth_allowed: Option<u32>,
    /// Denials per [`AuthError::ALL`] reason.
    auth_denied: Vec<Option<u32>>,
}

impl Metrics {
    fn define(plan: &Plan) -> Self {
        let counter = |name: String| hostcalls::define_metric(MetricType::Counter, &name).ok();
        Self {
            routed: plan
                .upstreams
                .iter()
                .map(|u| counter(format!("canary_gate.upstream.{u}.requests")))
                .collect(),
            auth_allowed: counter("canary_gate.auth_allowed".to_string()),
            auth_denied: AuthError::ALL
                .iter()
                .map(|e| counter(format!("canary_gate.reason.{}.auth_denied", e.reason())))
                .collect(),
        }
    }

    fn inc(id: Option<u32>) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn routed(&self, upstream: usize) {
        Self::inc(self.routed.get(upstream).copied().flatten());
    }

    fn denied(&self, error: AuthError) {
        let i = AuthError::ALL.iter().position(|e| *e == error);
        Self::inc(i.and_then(|i| self.auth_denied.get(i)).copied().flatten());
    }
}

/// What every HTTP context of one configuration shares.
struct Shared {
    plan: Plan,
    metrics: Metrics,
    state: RefCell<State>,
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        proxy_wasm::set_log_level(host_log_level());
        log::info!("canary-gate {} started", crate::VERSION);
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        proxy_wasm::set_log_level(host_log_level());
        let bytes = match hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        ) {
            Ok(Some(b)) if !b.is_empty() => b,
            _ => {
                critical("canary-gate: invalid configuration: the plugin configuration is empty; it must be a JSON object with at least \"primary\"");
                return false;
            }
        };
        match crate::config::parse(&bytes) {
            Ok(plan) => {
                let metrics = Metrics::define(&plan);
                log::info!(
                    "canary-gate configured: primary {}, {} canaries, auth {}, route header {}",
                    plan.upstream_name(0),
                    plan.upstreams.len().saturating_sub(1),
                    plan.auth.mode(),
                    plan.route_header
                );
                let state = State::new(fastrand::u64(..), CREDENTIAL_CACHE_CAPACITY);
                self.shared = Some(Rc::new(Shared {
                    plan,
                    metrics,
                    state: RefCell::new(state),
                }));
                true
            }
            Err(e) => {
                critical(&format!("canary-gate: invalid configuration: {e}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Gate {
            shared: self.shared.clone(),
            upstream: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Gate {
    shared: Option<Rc<Shared>>,
    /// The upstream chosen for this request, for the response header.
    upstream: Option<usize>,
}

impl Context for Gate {}

/// Request headers read through the host.
struct HostRequest;

impl Request for HostRequest {
    fn header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }

    fn cookie_headers(&self) -> Vec<String> {
        hostcalls::get_map(MapType::HttpRequestHeaders)
            .map(|all| {
                all.into_iter()
                    .filter(|(k, _)| k == "cookie")
                    .map(|(_, v)| v)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn set_header(name: &str, value: Option<&str>) -> Result<(), Status> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value)
}

fn local_reply(status: u32, headers: Vec<(&str, &str)>, body: &str) -> Action {
    if hostcalls::send_http_response(status, headers, Some(body.as_bytes())).is_err() {
        let _ = hostcalls::reset_http_request();
    }
    Action::Pause
}

impl Gate {
    fn handle(&mut self, shared: &Shared) -> Result<Action, Status> {
        let plan = &shared.plan;
        // Identity is the filter's to assert: never forward a client's copy.
        set_header(&plan.consumer_header, None)?;
        let decision = {
            let mut state = shared.state.borrow_mut();
            plan.decide(&HostRequest, &mut state)
        };
        let decision = match decision {
            Ok(d) => d,
            Err(error) => {
                shared.metrics.denied(error);
                log::debug!("canary-gate: denied ({error})");
                let challenge = plan.auth.challenge().unwrap_or_default();
                return Ok(local_reply(
                    401,
                    vec![
                        ("www-authenticate", challenge.as_str()),
                        ("content-type", "application/json"),
                        ("cache-control", "no-store"),
                    ],
                    &error.body(),
                ));
            }
        };
        for name in &decision.remove_headers {
            set_header(name, None)?;
        }
        if let Some(path) = decision.new_path.as_deref() {
            set_header(":path", Some(path))?;
        }
        if let Some(consumer) = decision.consumer {
            set_header(&plan.consumer_header, Some(consumer))?;
            Metrics::inc(shared.metrics.auth_allowed);
        }
        // Always overwrite: a route header sent by the client is never trusted.
        set_header(&plan.route_header, Some(decision.upstream_name))?;
        shared.metrics.routed(decision.upstream);
        self.upstream = Some(decision.upstream);
        log::debug!(
            "canary-gate: {} -> {} ({:?}, bucket {:?})",
            decision.consumer.unwrap_or("-"),
            decision.upstream_name,
            decision.how,
            decision.bucket
        );
        Ok(Action::Continue)
    }
}

impl HttpContext for Gate {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            // Unreachable in practice: Envoy does not create HTTP contexts for a
            // plugin whose configuration failed. Fail closed anyway.
            return local_reply(
                500,
                vec![("content-type", "application/json")],
                "{\"error\":\"canary-gate is not configured\"}",
            );
        };
        match self.handle(&shared) {
            Ok(action) => action,
            Err(status) => {
                log::warn!("canary-gate: host call failed ({status:?}); refusing the request");
                local_reply(
                    500,
                    vec![("content-type", "application/json")],
                    "{\"error\":\"internal\"}",
                )
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(shared), Some(upstream)) = (self.shared.as_ref(), self.upstream) {
            if let Some(header) = shared.plan.response_header.as_deref() {
                let name = shared.plan.upstream_name(upstream);
                let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, header, Some(name));
            }
        }
        Action::Continue
    }
}
