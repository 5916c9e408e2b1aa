//! The glue's own behaviour, through the [`Host`] trait with a mock host: what
//! it asks the proxy to do for each callback (headers set and removed, replies,
//! counters, HTTP calls, resumed and parked requests). The real-Envoy tests in
//! `tests/` check the same from the outside; these reach every branch cheaply.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde_json::{json, Value};
use sha2::Digest;

use super::{Http, Root};
use crate::auth::oauth2::HttpCall;
use crate::gateway::stats::{stat_name, Label};
use crate::host::{Action, Host, HostError};

const ROOT_ID: u32 = 1;
/// 2027-01-15, inside the fixture tokens' validity.
const NOW_MS: u64 = 1_800_000_000_000;

type Headers = Vec<(Vec<u8>, Vec<u8>)>;
type ResponseHeaders = HashMap<u32, Vec<(String, Vec<u8>)>>;
/// A call answer: the `:status` value and the body.
type Answer = (Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: u32,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
struct Call {
    token: u32,
    cluster: String,
    headers: Vec<(String, String)>,
}

/// A proxy in memory: request headers per context, and a record of every
/// effect the glue asked for.
#[derive(Default)]
struct Mock {
    now_ms: Cell<u64>,
    config: RefCell<Option<Vec<u8>>>,
    criticals: RefCell<Vec<String>>,
    effective: Cell<u32>,
    requests: RefCell<HashMap<u32, Headers>>,
    response_headers: RefCell<ResponseHeaders>,
    replies: RefCell<HashMap<u32, Reply>>,
    resumed: RefCell<Vec<u32>>,
    route_cache_cleared: Cell<u32>,
    calls: RefCell<Vec<Call>>,
    dispatch_error: Cell<Option<HostError>>,
    /// The answer delivered with the next `on_http_call_response`.
    answer: RefCell<Answer>,
    counters: RefCell<Vec<(String, u64)>>,
    /// Histogram samples and gauge values, by metric id (same ids as counters).
    recorded: RefCell<HashMap<u32, Vec<u64>>>,
    response: RefCell<HashMap<String, Vec<u8>>>,
    trailers: RefCell<HashMap<String, Vec<u8>>>,
    properties: RefCell<HashMap<(u32, String), Vec<u8>>>,
    shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    tick_ms: Cell<Option<u32>>,
    fail_header_writes: Cell<bool>,
}

impl Mock {
    fn new(config: &Value) -> Self {
        let m = Mock::default();
        m.now_ms.set(NOW_MS);
        *m.config.borrow_mut() = Some(config.to_string().into_bytes());
        m.effective.set(ROOT_ID);
        m
    }

    /// A new request on context `id` with `headers`; later calls act on it.
    fn request(&self, id: u32, headers: &[(&str, &str)]) {
        let h = headers
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        self.requests.borrow_mut().insert(id, h);
        self.effective.set(id);
    }

    fn header_of(&self, id: u32, name: &str) -> Option<String> {
        let requests = self.requests.borrow();
        let (_, v) = requests
            .get(&id)?
            .iter()
            .find(|(k, _)| k == name.as_bytes())?;
        Some(String::from_utf8_lossy(v).into_owned())
    }

    fn reply_of(&self, id: u32) -> Option<Reply> {
        self.replies.borrow().get(&id).cloned()
    }

    fn counter(&self, name: &str) -> u64 {
        self.counters
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(|| panic!("counter {name} was never defined"), |(_, v)| *v)
    }

    fn answer_with(&self, status: Option<&str>, body: Option<&[u8]>) {
        *self.answer.borrow_mut() = (
            status.map(|s| s.as_bytes().to_vec()),
            body.map(<[u8]>::to_vec),
        );
    }
}

impl Host for Mock {
    fn now_ms(&self) -> Result<u64, HostError> {
        Ok(self.now_ms.get())
    }
    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        self.config.borrow().clone()
    }
    fn log_critical(&self, message: &str) {
        self.criticals.borrow_mut().push(message.to_string());
    }
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        let requests = self.requests.borrow();
        let headers = requests.get(&self.effective.get())?;
        let (_, v) = headers.iter().find(|(k, _)| k == name.as_bytes())?;
        Some(v.clone())
    }
    fn request_header_map(&self) -> Vec<u8> {
        let requests = self.requests.borrow();
        requests
            .get(&self.effective.get())
            .map(|pairs| crate::wire::encode_map(pairs))
            .unwrap_or_default()
    }
    fn set_request_header(&self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        if self.fail_header_writes.get() {
            return Err(HostError::INTERNAL_FAILURE);
        }
        let mut requests = self.requests.borrow_mut();
        let headers = requests.entry(self.effective.get()).or_default();
        headers.retain(|(k, _)| k != name.as_bytes());
        if let Some(v) = value {
            headers.push((name.as_bytes().to_vec(), v.to_vec()));
        }
        Ok(())
    }
    fn set_response_header(&self, name: &str, value: &[u8]) -> Result<(), HostError> {
        let mut r = self.response_headers.borrow_mut();
        r.entry(self.effective.get())
            .or_default()
            .push((name.to_string(), value.to_vec()));
        Ok(())
    }
    fn clear_route_cache(&self) -> Result<(), HostError> {
        self.route_cache_cleared
            .set(self.route_cache_cleared.get() + 1);
        Ok(())
    }
    fn send_reply(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let reply = Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        };
        let previous = self
            .replies
            .borrow_mut()
            .insert(self.effective.get(), reply);
        assert!(previous.is_none(), "two replies to one request");
        Ok(())
    }
    fn reset_request(&self) {}
    fn resume_request(&self) -> Result<(), HostError> {
        self.resumed.borrow_mut().push(self.effective.get());
        Ok(())
    }
    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError> {
        if context_id != ROOT_ID && !self.requests.borrow().contains_key(&context_id) {
            return Err(HostError(1));
        }
        self.effective.set(context_id);
        Ok(())
    }
    fn dispatch(&self, call: &HttpCall) -> Result<u32, HostError> {
        if let Some(e) = self.dispatch_error.get() {
            return Err(e);
        }
        let token = u32::try_from(self.calls.borrow().len()).unwrap() + 100;
        self.calls.borrow_mut().push(Call {
            token,
            cluster: call.cluster.clone(),
            headers: call
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        });
        Ok(token)
    }
    fn call_header(&self, name: &str) -> Option<Vec<u8>> {
        assert_eq!(name, ":status");
        self.answer.borrow().0.clone()
    }
    fn call_body(&self, max: usize) -> Option<Vec<u8>> {
        let body = self.answer.borrow().1.clone()?;
        Some(body.into_iter().take(max).collect())
    }
    fn define_counter(&self, name: &str) -> Option<u32> {
        let mut c = self.counters.borrow_mut();
        c.push((name.to_string(), 0));
        u32::try_from(c.len() - 1).ok()
    }
    fn increment(&self, id: u32) {
        self.counters.borrow_mut()[id as usize].1 += 1;
    }
    fn set_tick_period_ms(&self, period: u32) -> Result<(), HostError> {
        self.tick_ms.set(Some(period));
        Ok(())
    }
    fn define_gauge(&self, name: &str) -> Option<u32> {
        self.define_counter(name)
    }
    fn define_histogram(&self, name: &str) -> Option<u32> {
        self.define_counter(name)
    }
    fn record(&self, id: u32, value: u64) {
        self.recorded
            .borrow_mut()
            .entry(id)
            .or_default()
            .push(value);
    }
    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.response.borrow().get(name).cloned()
    }
    fn response_trailer(&self, name: &str) -> Option<Vec<u8>> {
        self.trailers.borrow().get(name).cloned()
    }
    fn set_property(&self, name: &str, value: &[u8]) {
        let key = (self.effective.get(), name.to_string());
        self.properties.borrow_mut().insert(key, value.to_vec());
    }
    fn plugin_name(&self) -> Option<String> {
        Some("canary-gate".into())
    }
    fn shared_data(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.shared.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return Err(HostError(8)); // CasMismatch
        }
        let next = current.unwrap_or(0) + 1;
        shared.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

/// A counter's name in gateway `default` (see `crate::gateway::stats`).
fn stat(metric: &str, labels: &[(Label, &str)]) -> String {
    let mut all = vec![(Label::Gateway, "default")];
    all.extend_from_slice(labels);
    stat_name(metric, &all).unwrap()
}

fn configured(config: &Value) -> (Mock, Root) {
    let host = Mock::new(config);
    let mut root = Root::new(ROOT_ID);
    assert!(root.on_vm_start());
    assert!(root.on_configure(&host), "{:?}", host.criticals.borrow());
    (host, root)
}

/// A request through the glue: headers in, the action out.
fn send(host: &Mock, root: &Root, id: u32, headers: &[(&str, &str)]) -> (Http, Action) {
    host.request(id, headers);
    let mut http = root.new_http(id);
    let action = http.on_request_headers(host);
    (http, action)
}

fn token(name: &str) -> String {
    let v: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/oauth2/tokens.json")).unwrap();
    format!("Bearer {}", v["tokens"][name].as_str().unwrap())
}

fn access_key_config() -> Value {
    json!({
        "primary": "v1", "canaries": [{"name": "v2", "percent": 100}],
        "response_header": "x-served-by",
        "auth": {"mode": "access_key", "keys": [
            {"consumer": "alice", "sha256": hex::encode(sha2::Sha256::digest(b"k1"))}]}
    })
}

#[test]
fn configuration_is_refused_with_one_critical_line() {
    for (config, line) in [
        (None, "canary-gate: invalid configuration: the plugin configuration is empty; it must be a JSON object with at least \"primary\""),
        (Some(&b""[..]), "canary-gate: invalid configuration: the plugin configuration is empty; it must be a JSON object with at least \"primary\""),
        (Some(b"{\"primary\": \"v1\", \"canaries\": [{\"name\": \"v2\", \"percent\": 101}]}"),
         "canary-gate: invalid configuration: canaries[0].percent: 101 is not between 0 and 100"),
    ] {
        let host = Mock::default();
        *host.config.borrow_mut() = config.map(<[u8]>::to_vec);
        assert!(!Root::new(ROOT_ID).on_configure(&host));
        assert_eq!(*host.criticals.borrow(), vec![line.to_string()]);
        assert!(host.counters.borrow().is_empty(), "nothing defined for a refused config");
    }
}

#[test]
fn forwarding_writes_the_route_and_the_identity_and_strips_the_credential() {
    let (host, root) = configured(&access_key_config());
    let (mut http, action) = send(
        &host,
        &root,
        2,
        &[
            ("x-api-key", "k1"),
            ("x-canary-upstream", "forged"),
            ("x-canary-consumer", "mallory"),
        ],
    );
    assert_eq!(action, Action::Continue);
    assert_eq!(
        host.header_of(2, "x-canary-upstream").as_deref(),
        Some("v2")
    );
    assert_eq!(
        host.header_of(2, "x-canary-consumer").as_deref(),
        Some("alice")
    );
    assert_eq!(host.header_of(2, "x-api-key"), None);
    assert_eq!(host.route_cache_cleared.get(), 1);
    assert_eq!(
        host.counter(&stat("requests", &[(Label::Upstream, "v2")])),
        1
    );
    assert_eq!(
        host.counter(&stat("requests", &[(Label::Upstream, "v1")])),
        0
    );
    assert_eq!(host.counter(&stat("auth_allowed", &[])), 1);
    assert_eq!(http.on_response_headers(&host, false), Action::Continue);
    assert_eq!(
        host.response_headers.borrow()[&2],
        vec![("x-served-by".to_string(), b"v2".to_vec())]
    );
    assert!(http.on_done(&host));
}

#[test]
fn refusals_reply_with_the_challenge_and_count_the_reason() {
    let (host, root) = configured(&access_key_config());
    let (mut http, action) = send(&host, &root, 2, &[("x-api-key", "wrong")]);
    assert_eq!(action, Action::Pause);
    let reply = host.reply_of(2).unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("ApiKey realm=\"canary-gate\", header=\"x-api-key\"")
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.body,
        r#"{"error":"unauthorized","reason":"invalid_credentials"}"#
    );
    assert_eq!(
        host.counter(&stat(
            "auth_denied",
            &[(Label::Reason, "invalid_credentials")]
        )),
        1
    );
    assert_eq!(host.route_cache_cleared.get(), 0);
    // No upstream was chosen: no response header.
    http.on_response_headers(&host, false);
    assert!(host.response_headers.borrow().is_empty());
}

#[test]
fn a_failing_host_call_refuses_the_request_with_500() {
    let (host, root) = configured(&access_key_config());
    host.fail_header_writes.set(true);
    let (_, action) = send(&host, &root, 2, &[("x-api-key", "k1")]);
    assert_eq!(action, Action::Pause);
    let reply = host.reply_of(2).unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, r#"{"error":"internal"}"#)
    );
}

#[test]
fn a_request_on_an_unconfigured_plugin_fails_closed() {
    let host = Mock::new(&json!({}));
    let root = Root::new(ROOT_ID);
    let (_, action) = send(&host, &root, 2, &[]);
    assert_eq!(action, Action::Pause);
    assert_eq!(host.reply_of(2).unwrap().status, 500);
}

fn jwks_uri_config() -> Value {
    json!({
        "primary": "v1",
        "auth": {"mode": "oauth2", "issuer": "https://idp.example.com", "audiences": ["models"],
                 "jwks_uri": {"cluster": "idp", "path": "/jwks.json", "timeout_ms": 2000}}
    })
}

const JWKS: &[u8] = include_bytes!("../../tests/fixtures/oauth2/jwks.json");

#[test]
fn jwts_wait_for_the_first_key_set_and_resume_when_it_arrives() {
    let (host, mut root) = configured(&jwks_uri_config());
    assert_eq!(
        host.tick_ms.get(),
        Some(500),
        "a quarter of the fetch timeout"
    );
    let first = host.calls.borrow()[0].clone();
    assert_eq!(first.cluster, "idp");
    assert!(first
        .headers
        .contains(&(":path".into(), "/jwks.json".into())));

    let bearer = token("rs256");
    let (_, a2) = send(&host, &root, 2, &[("authorization", &bearer)]);
    let (mut gone, a3) = send(&host, &root, 3, &[("authorization", &bearer)]);
    let (_, a4) = send(&host, &root, 4, &[("authorization", &bearer)]);
    assert_eq!((a2, a3, a4), (Action::Pause, Action::Pause, Action::Pause));
    assert!(gone.on_done(&host), "request 3 goes away while it waits");

    host.now_ms.set(NOW_MS + 1_000);
    host.effective.set(ROOT_ID);
    root.on_tick(&host);
    assert!(
        host.replies.borrow().is_empty(),
        "nothing expires before the timeout"
    );

    host.answer_with(Some("200"), Some(JWKS));
    root.on_http_call_response(&host, first.token, JWKS.len());
    assert_eq!(
        *host.resumed.borrow(),
        vec![2, 4],
        "request 3 is not resumed"
    );
    assert_eq!(
        host.header_of(2, "x-canary-upstream").as_deref(),
        Some("v1")
    );
    assert_eq!(
        host.header_of(4, "x-canary-consumer").as_deref(),
        Some("alice")
    );
    assert_eq!(
        host.header_of(2, "authorization"),
        None,
        "the token is removed"
    );
    assert_eq!(
        host.effective.get(),
        ROOT_ID,
        "the root's context is restored"
    );
    assert_eq!(host.counter(&stat("oauth2_jwks_fetch_ok", &[])), 1);

    // With keys, a JWT is decided at once.
    let (_, action) = send(&host, &root, 5, &[("authorization", &bearer)]);
    assert_eq!(action, Action::Continue);
}

#[test]
fn jwts_get_503_when_no_key_set_arrives_in_time() {
    let (host, mut root) = configured(&jwks_uri_config());
    let first = host.calls.borrow()[0].token;
    let (_, action) = send(&host, &root, 2, &[("authorization", &token("rs256"))]);
    assert_eq!(action, Action::Pause);

    host.effective.set(ROOT_ID);
    host.answer_with(Some("503"), None);
    root.on_http_call_response(&host, first, 0);
    assert_eq!(host.counter(&stat("oauth2_jwks_fetch_failed", &[])), 1);
    assert!(host.replies.borrow().is_empty());

    host.now_ms.set(NOW_MS + 2_000);
    root.on_tick(&host);
    let reply = host.reply_of(2).expect("503 after the fetch timeout");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("keys_unavailable"), "{}", reply.body);
    assert_eq!(
        host.counter(&stat("auth_denied", &[(Label::Reason, "keys_unavailable")])),
        1
    );
    assert_eq!(host.calls.borrow().len(), 2, "the tick retried the fetch");
}

#[test]
fn an_undispatchable_jwks_fetch_is_counted_as_a_failure() {
    let host = Mock::new(&jwks_uri_config());
    host.dispatch_error.set(Some(HostError(2)));
    let mut root = Root::new(ROOT_ID);
    assert!(root.on_configure(&host));
    assert_eq!(host.counter(&stat("oauth2_jwks_fetch_failed", &[])), 1);
}

fn introspection_config() -> Value {
    json!({
        "primary": "v1", "canaries": [{"name": "v2", "percent": 50}], "split": {"by": "consumer"},
        "auth": {"mode": "oauth2", "introspection": {"cluster": "idp", "path": "/introspect",
                 "client_id": "gate", "client_secret": "s3cret"}}
    })
}

#[test]
fn opaque_tokens_are_introspected_then_forwarded() {
    let (host, root) = configured(&introspection_config());
    let (mut http, action) = send(&host, &root, 2, &[("authorization", "Bearer opaque-1")]);
    assert_eq!(action, Action::Pause);
    let call = host.calls.borrow()[0].clone();
    assert_eq!(call.cluster, "idp");
    assert_eq!(host.counter(&stat("oauth2_introspection_requests", &[])), 1);

    let body = br#"{"active": true, "sub": "dave"}"#;
    host.answer_with(Some("200"), Some(body));
    http.on_http_call_response(&host, call.token + 1, body.len());
    assert!(
        host.resumed.borrow().is_empty(),
        "another call's answer is ignored"
    );
    http.on_http_call_response(&host, call.token, body.len());
    assert_eq!(*host.resumed.borrow(), vec![2]);
    assert_eq!(
        host.header_of(2, "x-canary-consumer").as_deref(),
        Some("dave")
    );

    // The verdict is cached: the same token is decided at once, no call.
    let (_, action) = send(&host, &root, 3, &[("authorization", "Bearer opaque-1")]);
    assert_eq!(action, Action::Continue);
    assert_eq!(host.calls.borrow().len(), 1);
    assert_eq!(host.counter(&stat("oauth2_token_cache_hits", &[])), 1);
}

#[test]
fn introspection_failures_get_503() {
    let (host, root) = configured(&introspection_config());
    let (mut http, _) = send(&host, &root, 2, &[("authorization", "Bearer opaque-1")]);
    let call = host.calls.borrow()[0].clone();
    host.answer_with(None, None);
    http.on_http_call_response(&host, call.token, 0);
    let reply = host.reply_of(2).unwrap();
    assert_eq!(reply.status, 503);
    assert!(
        reply.body.contains("introspection_unavailable"),
        "{}",
        reply.body
    );

    host.dispatch_error.set(Some(HostError(2)));
    let (_, action) = send(&host, &root, 3, &[("authorization", "Bearer opaque-2")]);
    assert_eq!(action, Action::Pause);
    assert_eq!(host.reply_of(3).unwrap().status, 503);
    assert_eq!(
        host.counter(&stat(
            "auth_denied",
            &[(Label::Reason, "introspection_unavailable")]
        )),
        2
    );
}

fn gateways_config(unmatched: &str) -> Value {
    let jwks_uri = json!({"cluster": "idp", "path": "/jwks.json", "timeout_ms": 2000});
    let oauth2 = json!({"mode": "oauth2", "issuer": "https://idp.example.com",
                        "audiences": ["models"], "jwks_uri": jwks_uri});
    json!({
        "unmatched": unmatched,
        "response_header": "x-served-by",
        "gateways": [
            {"name": "fraud", "hosts": ["models.example.com"], "path_prefix": "/fraud",
             "strip_prefix": true, "primary": "fraud-v1", "auth": oauth2},
            {"name": "chat", "hosts": ["models.example.com"], "path_prefix": "/chat",
             "primary": "chat-v1", "auth": oauth2},
            {"name": "open", "hosts": ["open.example.com"], "primary": "open-v1"}
        ]
    })
}

fn named(gateway: &str, metric: &str, labels: &[(Label, &str)]) -> String {
    let mut all = vec![(Label::Gateway, gateway)];
    all.extend_from_slice(labels);
    stat_name(metric, &all).unwrap()
}

#[test]
fn gateways_route_count_and_strip_per_gateway() {
    let (host, root) = configured(&gateways_config("deny"));
    let (mut http, action) = send(
        &host,
        &root,
        2,
        &[
            (":authority", "open.example.com"),
            (":path", "/x?y=1"),
            ("x-canary-upstream", "fraud-v1"),
        ],
    );
    assert_eq!(action, Action::Continue);
    assert_eq!(
        host.header_of(2, "x-canary-upstream").as_deref(),
        Some("open-v1")
    );
    assert_eq!(
        host.header_of(2, ":path").as_deref(),
        Some("/x?y=1"),
        "no strip_prefix"
    );
    assert_eq!(
        host.counter(&named("open", "requests", &[(Label::Upstream, "open-v1")])),
        1
    );
    http.on_response_headers(&host, false);
    assert_eq!(
        host.response_headers.borrow()[&2],
        vec![("x-served-by".into(), b"open-v1".to_vec())]
    );

    // No gateway: 404, counted as unmatched; an ambiguous path: 400, counted as bad path.
    let (_, action) = send(
        &host,
        &root,
        3,
        &[(":authority", "models.example.com"), (":path", "/other")],
    );
    assert_eq!(action, Action::Pause);
    let reply = host.reply_of(3).unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (404, r#"{"error":"not_found","reason":"no_gateway"}"#)
    );
    assert_eq!(host.counter("canary_gate.unmatched"), 1);
    send(
        &host,
        &root,
        4,
        &[(":authority", "open.example.com"), (":path", "/a%2fb")],
    );
    let reply = host.reply_of(4).unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (400, r#"{"error":"bad_request","reason":"ambiguous_path"}"#)
    );
    assert_eq!(host.counter("canary_gate.bad_path"), 1);
    assert_eq!(host.counter("canary_gate.unmatched"), 1);
}

#[test]
fn unmatched_pass_removes_the_route_and_consumer_headers() {
    let (host, root) = configured(&gateways_config("pass"));
    let (_, action) = send(
        &host,
        &root,
        2,
        &[
            (":authority", "nowhere.example.com"),
            (":path", "/"),
            ("x-canary-upstream", "fraud-v1"),
            ("x-canary-consumer", "admin"),
        ],
    );
    assert_eq!(action, Action::Continue);
    assert_eq!(host.header_of(2, "x-canary-upstream"), None);
    assert_eq!(host.header_of(2, "x-canary-consumer"), None);
    assert_eq!(host.route_cache_cleared.get(), 1);
    assert_eq!(host.counter("canary_gate.unmatched"), 1);
}

#[test]
fn gateways_with_the_same_jwks_uri_share_one_fetch() {
    let (host, mut root) = configured(&gateways_config("deny"));
    assert_eq!(host.calls.borrow().len(), 1, "one fetch for two gateways");
    let call = host.calls.borrow()[0].clone();
    let bearer = token("rs256");
    let fraud = [
        (":authority", "models.example.com"),
        (":path", "/fraud/score?a=1"),
        ("authorization", bearer.as_str()),
    ];
    let chat = [
        (":authority", "models.example.com"),
        (":path", "/chat"),
        ("authorization", bearer.as_str()),
    ];
    let (_, a2) = send(&host, &root, 2, &fraud);
    let (_, a3) = send(&host, &root, 3, &chat);
    assert_eq!((a2, a3), (Action::Pause, Action::Pause));

    host.effective.set(ROOT_ID);
    host.answer_with(Some("200"), Some(JWKS));
    root.on_http_call_response(&host, call.token, JWKS.len());
    assert_eq!(*host.resumed.borrow(), vec![2, 3]);
    assert_eq!(
        host.header_of(2, "x-canary-upstream").as_deref(),
        Some("fraud-v1")
    );
    assert_eq!(
        host.header_of(2, ":path").as_deref(),
        Some("/score?a=1"),
        "strip_prefix"
    );
    assert_eq!(
        host.header_of(3, "x-canary-upstream").as_deref(),
        Some("chat-v1")
    );
    for g in ["fraud", "chat"] {
        assert_eq!(
            host.counter(&named(g, "oauth2_jwks_fetch_ok", &[])),
            1,
            "{g}"
        );
        assert_eq!(host.counter(&named(g, "auth_allowed", &[])), 1, "{g}");
    }
}

fn guarded_config() -> Value {
    json!({
        "primary": "v1",
        "split": {"by": "header", "name": "x-user"},
        "select_header": "x-select",
        "canaries": [
            {"name": "v2", "percent": 50, "revision": "a",
             "guard": {"max_error_rate": 0.2, "min_requests": 10, "window_seconds": 60}},
            {"name": "v3", "percent": 10}
        ]
    })
}

/// A user the 50% canary v2 gets (bucket < 5000), and one that v3 gets.
fn users() -> (String, String) {
    let bucket = |k: &str| crate::split::bucket_of(k, 0);
    let v2 = (0..)
        .map(|i| format!("u{i}"))
        .find(|k| bucket(k) < 5000)
        .unwrap();
    let v3 = (0..)
        .map(|i| format!("u{i}"))
        .find(|k| (5000..6000).contains(&bucket(k)))
        .unwrap();
    (v2, v3)
}

/// One request through a root: forwarded, then answered with `status`.
fn answered(host: &Mock, root: &Root, id: u32, headers: &[(&str, &str)], status: &str) -> Http {
    let (mut http, action) = send(host, root, id, headers);
    assert_eq!(action, Action::Continue);
    host.response.borrow_mut().clear();
    host.response
        .borrow_mut()
        .insert(":status".into(), status.as_bytes().to_vec());
    host.now_ms.set(host.now_ms.get() + 7);
    http.on_response_headers(host, true);
    http
}

#[test]
fn responses_are_counted_per_class_with_their_latency() {
    let (host, root) = configured(&guarded_config());
    let (v2_user, _) = users();
    answered(&host, &root, 2, &[("x-user", &v2_user)], "503");
    answered(&host, &root, 3, &[("x-user", &v2_user)], "200");
    let id = |name: String| {
        host.counters
            .borrow()
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap() as u32
    };
    let responses = |class: &str| {
        stat(
            "responses",
            &[(Label::Upstream, "v2"), (Label::Class, class)],
        )
    };
    assert_eq!(host.counter(&responses("5xx")), 1);
    assert_eq!(host.counter(&responses("2xx")), 1);
    let histogram = id(stat("response_ms", &[(Label::Upstream, "v2")]));
    assert_eq!(host.recorded.borrow()[&histogram], vec![7, 7]);
    // A local reply is not an upstream's response.
    let (mut http, _) = send(
        &host,
        &root,
        4,
        &[("x-user", &v2_user), ("x-select", "nope")],
    );
    http.on_response_headers(&host, true);
    assert_eq!(
        host.counter(&responses("2xx")),
        2,
        "answered by the split's choice"
    );
    // The access log's filter state.
    let props = host.properties.borrow();
    assert_eq!(
        props[&(2, "canary_gate_upstream".to_string())],
        b"v2".to_vec()
    );
    assert_eq!(
        props[&(2, "canary_gate_gateway".to_string())],
        b"default".to_vec()
    );
    assert!(props.contains_key(&(2, "canary_gate_bucket".to_string())));
}

#[test]
fn grpc_status_in_trailers_or_headers() {
    let (host, root) = configured(&guarded_config());
    let (v2_user, _) = users();
    let (mut http, _) = send(&host, &root, 2, &[("x-user", &v2_user)]);
    host.response
        .borrow_mut()
        .insert(":status".into(), b"200".to_vec());
    host.response
        .borrow_mut()
        .insert("content-type".into(), b"application/grpc".to_vec());
    http.on_response_headers(&host, false);
    let grpc_errors = stat(
        "responses",
        &[(Label::Upstream, "v2"), (Label::Class, "grpc_error")],
    );
    assert_eq!(host.counter(&grpc_errors), 0, "waits for the trailers");
    host.trailers
        .borrow_mut()
        .insert("grpc-status".into(), b"14".to_vec());
    http.on_response_trailers(&host);
    assert_eq!(host.counter(&grpc_errors), 1);
    // Trailers-only: the status is in the headers.
    let (mut http, _) = send(&host, &root, 3, &[("x-user", &v2_user)]);
    host.response
        .borrow_mut()
        .insert("grpc-status".into(), b"0".to_vec());
    http.on_response_headers(&host, true);
    assert_eq!(
        host.counter(&stat(
            "responses",
            &[(Label::Upstream, "v2"), (Label::Class, "2xx")]
        )),
        1
    );
}

#[test]
fn a_guard_trips_once_for_all_workers_and_sends_its_users_to_the_primary() {
    let host = Mock::new(&guarded_config());
    let mut workers: Vec<Root> = (0..2).map(|_| Root::new(ROOT_ID)).collect();
    for w in &mut workers {
        assert!(w.on_configure(&host));
    }
    assert_eq!(host.tick_ms.get(), Some(1000));
    let (v2_user, v3_user) = users();
    // 12 failures on worker 0, 2 successes on worker 1 (select-header traffic is not judged).
    for i in 0..12 {
        answered(&host, &workers[0], 10 + i, &[("x-user", &v2_user)], "503");
    }
    for i in 0..2 {
        answered(&host, &workers[1], 30 + i, &[("x-user", &v2_user)], "200");
    }
    answered(&host, &workers[1], 40, &[("x-select", "v2")], "200");
    host.effective.set(ROOT_ID);
    workers[1].on_tick(&host);
    let trips = stat("guard_trips", &[(Label::Upstream, "v2")]);
    assert_eq!(
        host.counter(&trips),
        0,
        "2 of 14 responses merged so far: no verdict"
    );
    workers[0].on_tick(&host);
    assert_eq!(host.counter(&trips), 1, "12 of 14 failed");
    workers[1].on_tick(&host);
    workers[0].on_tick(&host);
    assert_eq!(host.counter(&trips), 1, "once per process");
    // Both workers send v2's users to the primary; v3's users stay.
    for (n, w) in workers.iter().enumerate() {
        let id = 100 + n as u32;
        send(&host, w, id, &[("x-user", &v2_user)]);
        assert_eq!(
            host.header_of(id, "x-canary-upstream").as_deref(),
            Some("v1"),
            "worker {n}"
        );
        send(&host, w, id + 10, &[("x-user", &v3_user)]);
        assert_eq!(
            host.header_of(id + 10, "x-canary-upstream").as_deref(),
            Some("v3"),
            "worker {n}"
        );
        // The select header still reaches it, for debugging.
        send(&host, w, id + 20, &[("x-select", "v2")]);
        assert_eq!(
            host.header_of(id + 20, "x-canary-upstream").as_deref(),
            Some("v2")
        );
    }
    let gauge = host
        .counters
        .borrow()
        .iter()
        .position(|(n, _)| *n == stat("guard_tripped", &[(Label::Upstream, "v2")]))
        .unwrap() as u32;
    assert_eq!(host.recorded.borrow()[&gauge].last(), Some(&1));

    // The same configuration again (a VM reload, a re-push): still tripped.
    let mut again = Root::new(ROOT_ID);
    assert!(again.on_configure(&host));
    send(&host, &again, 200, &[("x-user", &v2_user)]);
    assert_eq!(
        host.header_of(200, "x-canary-upstream").as_deref(),
        Some("v1")
    );
    // A new revision re-arms it.
    let mut rearmed = guarded_config();
    rearmed["canaries"][0]["revision"] = json!("b");
    *host.config.borrow_mut() = Some(rearmed.to_string().into_bytes());
    let mut fresh = Root::new(ROOT_ID);
    assert!(fresh.on_configure(&host));
    send(&host, &fresh, 201, &[("x-user", &v2_user)]);
    assert_eq!(
        host.header_of(201, "x-canary-upstream").as_deref(),
        Some("v2")
    );
}

#[test]
fn a_ramp_in_the_past_is_at_its_computed_step() {
    // Started 25 minutes ago, +10 every 10 minutes: two steps, 5 -> 25.
    let start = time_rfc3339(NOW_MS / 1000 - 25 * 60);
    let config = json!({
        "primary": "v1", "split": {"by": "header", "name": "x-user"},
        "canaries": [{"name": "v2", "percent": 5,
                      "ramp": {"start": start, "step": 10, "every_seconds": 600, "until": 50}}]
    });
    let (host, root) = configured(&config);
    let gauge = host
        .counters
        .borrow()
        .iter()
        .position(|(n, _)| *n == stat("canary_basis_points", &[(Label::Upstream, "v2")]))
        .unwrap() as u32;
    assert_eq!(host.recorded.borrow()[&gauge].last(), Some(&2500));
    for i in 0..200u32 {
        let user = format!("user-{i}");
        let expected = if crate::split::bucket_of(&user, 0) < 2500 {
            "v2"
        } else {
            "v1"
        };
        send(&host, &root, 1000 + i, &[("x-user", &user)]);
        assert_eq!(
            host.header_of(1000 + i, "x-canary-upstream").as_deref(),
            Some(expected),
            "{user}"
        );
    }
}

/// Unix seconds as RFC 3339 (UTC).
fn time_rfc3339(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
