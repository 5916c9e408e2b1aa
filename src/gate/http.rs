//! One HTTP request: decide on the request headers, then forward, refuse,
//! park until the first key set, or send the introspection call and finish
//! when it answers; name the upstream on the response.

use std::cell::Cell;
use std::rc::Rc;

use super::root::read_body;
use super::{internal_error, send, Chosen, Routed, Shared, Waiting};
use crate::auth::oauth2::fetch;
use crate::auth::oauth2::{HttpCall, TokenDigest};
use crate::decide::{Outcome, Wait};
use crate::host::{Action, Host, HostError};
use crate::reply::Reply;
use crate::watch::class::{classify, is_grpc};

/// The largest introspection answer read from the host.
const MAX_CALL_BODY: usize = 64 * 1024;

pub struct Http {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    /// The upstream chosen for this request, for the response header.
    chosen: Chosen,
    /// The introspection call in flight: its token, the gateway, the digest
    /// of the bearer token.
    introspection: Option<(u32, usize, TokenDigest)>,
    /// A gRPC response waiting for its trailers: its status and latency.
    awaiting_trailers: Option<(u32, u64)>,
}

impl Http {
    pub(super) fn new(context_id: u32, shared: Option<Rc<Shared>>) -> Self {
        Self {
            context_id,
            shared,
            chosen: Rc::new(Cell::new(None)),
            introspection: None,
            awaiting_trailers: None,
        }
    }

    pub fn on_request_headers(&mut self, host: &dyn Host) -> Action {
        let Some(shared) = self.shared.clone() else {
            // Unreachable in practice: Envoy does not create HTTP contexts for a
            // plugin whose configuration failed. Fail closed anyway.
            return send(host, &Reply::not_configured());
        };
        match self.handle(host, &shared) {
            Ok(action) => action,
            Err(status) => internal_error(host, status),
        }
    }

    fn handle(&mut self, host: &dyn Host, shared: &Shared) -> Result<Action, HostError> {
        match shared.decide(host)? {
            Outcome::Forward(decision) => {
                shared.forward(host, &decision, &self.chosen)?;
                Ok(Action::Continue)
            }
            Outcome::Pass => {
                shared.pass(host)?;
                Ok(Action::Continue)
            }
            Outcome::Refuse { gateway, denial } => Ok(shared.refuse(host, gateway, &denial)),
            Outcome::Wait(Wait::Keys { gateway }) => self.park(host, shared, gateway),
            Outcome::Wait(Wait::Introspect {
                gateway,
                call,
                digest,
            }) => Ok(self.introspect(host, shared, gateway, &call, digest)),
        }
    }

    /// Waits for the first key set, with the fetch timeout as the deadline.
    fn park(
        &mut self,
        host: &dyn Host,
        shared: &Shared,
        gateway: usize,
    ) -> Result<Action, HostError> {
        let wait_ms = shared.plan.key_wait_ms(gateway);
        let now = host.now_ms()?;
        let waiting = Waiting {
            chosen: Rc::clone(&self.chosen),
            gateway,
        };
        let parked = shared
            .parked
            .borrow_mut()
            .park(self.context_id, now, wait_ms, waiting);
        if parked.is_err() {
            let denial = shared.plan.keys_unavailable(gateway);
            return Ok(shared.refuse(host, Some(gateway), &denial));
        }
        log::debug!("canary-gate: request waits for the JWKS");
        Ok(Action::Pause)
    }

    fn introspect(
        &mut self,
        host: &dyn Host,
        shared: &Shared,
        gateway: usize,
        call: &HttpCall,
        digest: TokenDigest,
    ) -> Action {
        match host.dispatch(call) {
            Ok(token) => {
                shared.metrics.introspection(host, gateway);
                self.introspection = Some((token, gateway, digest));
                Action::Pause
            }
            Err(status) => {
                let mut streak = shared.introspection.borrow_mut();
                let (level, message) =
                    fetch::introspection_unsendable(&mut streak, &call.cluster, status);
                drop(streak);
                log::log!(level, "{message}");
                let denial = shared.plan.introspection_unavailable(gateway);
                shared.refuse(host, Some(gateway), &denial)
            }
        }
    }

    /// The introspection endpoint answered (or the call failed).
    pub fn on_http_call_response(&mut self, host: &dyn Host, token: u32, body_size: usize) {
        let Some((pending, gateway, digest)) = self.introspection else {
            return;
        };
        if pending != token {
            return;
        }
        self.introspection = None;
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if let Err(status) = self.finish_introspection(host, &shared, gateway, digest, body_size) {
            internal_error(host, status);
        }
    }

    fn finish_introspection(
        &self,
        host: &dyn Host,
        shared: &Shared,
        gateway: usize,
        digest: TokenDigest,
        body_size: usize,
    ) -> Result<(), HostError> {
        let status = fetch::call_status(host.call_header(":status").as_deref());
        let body = read_body(host, body_size, MAX_CALL_BODY);
        let now = host.now_ms()? / 1000;
        let (outcome, problem) = {
            let mut state = shared.state.borrow_mut();
            let request = super::HostRequest(host);
            let plan = &shared.plan;
            plan.after_introspection(
                gateway,
                &request,
                &mut state,
                now,
                digest,
                status,
                body.as_deref(),
            )
        };
        let mut streak = shared.introspection.borrow_mut();
        if let Some((level, message)) =
            fetch::introspection_answered(&mut streak, problem.as_deref())
        {
            log::log!(level, "{message}");
        }
        drop(streak);
        shared.finish(host, outcome, &self.chosen)
    }

    /// The response of a forwarded request: name the upstream (if
    /// configured), then count its class and latency; a gRPC response whose
    /// status comes in the trailers waits for them.
    pub fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let (Some(shared), Some(routed)) = (self.shared.clone(), self.chosen.get()) else {
            return Action::Continue;
        };
        if let Some(header) = shared.plan.response_header.as_deref() {
            let name = shared
                .plan
                .gateway(routed.gateway)
                .map_or("", |g| g.upstream_name(routed.upstream));
            let _ = host.set_response_header(header, name.as_bytes());
        }
        let now = host.now_ms().unwrap_or(routed.at_ms);
        let latency_ms = now.saturating_sub(routed.at_ms);
        let status = fetch::call_status(host.response_header(":status").as_deref()).unwrap_or(0);
        let grpc_status = host.response_header("grpc-status");
        if grpc_status.is_none()
            && !end_of_stream
            && is_grpc(host.response_header("content-type").as_deref())
        {
            self.awaiting_trailers = Some((status, latency_ms));
            return Action::Continue;
        }
        self.observed(
            host,
            &shared,
            routed,
            status,
            grpc_status.as_deref(),
            latency_ms,
            now,
        );
        Action::Continue
    }

    /// The trailers of a gRPC response whose status was not in the headers.
    pub fn on_response_trailers(&mut self, host: &dyn Host) -> Action {
        let (Some(shared), Some(routed), Some((status, latency_ms))) = (
            self.shared.clone(),
            self.chosen.get(),
            self.awaiting_trailers.take(),
        ) else {
            return Action::Continue;
        };
        let grpc_status = host.response_trailer("grpc-status");
        let now = host.now_ms().unwrap_or(routed.at_ms);
        // gRPC without any status is an error (the call did not complete).
        let grpc_status = grpc_status.unwrap_or_else(|| b"2".to_vec());
        self.observed(
            host,
            &shared,
            routed,
            status,
            Some(&grpc_status),
            latency_ms,
            now,
        );
        Action::Continue
    }

    #[allow(clippy::too_many_arguments)]
    fn observed(
        &self,
        host: &dyn Host,
        shared: &Shared,
        routed: Routed,
        status: u32,
        grpc_status: Option<&[u8]>,
        latency_ms: u64,
        now_ms: u64,
    ) {
        let class = classify(status, grpc_status);
        shared
            .metrics
            .response(host, routed.gateway, routed.upstream, class, latency_ms);
        if routed.by_split {
            shared.canaries.borrow_mut().record(
                routed.gateway,
                routed.upstream,
                status,
                class,
                latency_ms,
                now_ms / 1000,
            );
        }
    }

    /// The request is gone: a parked request must not be resumed later; a
    /// gRPC response that never sent its trailers is counted as failed.
    pub fn on_done(&mut self, host: &dyn Host) -> bool {
        if let Some(shared) = self.shared.clone() {
            shared.parked.borrow_mut().forget(self.context_id);
            if let (Some(routed), Some((status, latency_ms))) =
                (self.chosen.get(), self.awaiting_trailers.take())
            {
                let now = host.now_ms().unwrap_or(routed.at_ms);
                self.observed(host, &shared, routed, status, Some(b"2"), latency_ms, now);
            }
        }
        true
    }
}
