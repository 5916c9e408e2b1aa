//! Integration-test harness: a real Envoy process running the built filter, in front of
//! in-process echo upstreams.
//!
//! Run through `scripts/test.sh`, which builds the filter, fetches Envoy and exports
//! `ENVOY_BIN` and `CANARY_GATE_WASM`. Without them every Envoy test fails with a message
//! that says so (nothing is skipped silently).
//!
//! Rules this harness keeps (see STYLE.md, Tests):
//! - every socket is on 127.0.0.1 with an ephemeral port (admin, listeners, upstreams);
//! - each Envoy gets its own `--base-id`, so tests run in parallel;
//! - readiness is Envoy's admin `/ready` returning 200, polled with a deadline;
//! - Envoy is always killed on drop, and its log is printed when the test is failing;
//! - every wait is bounded in time.
#![allow(
    dead_code, // each test crate uses a different part of the harness
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod oracle;
pub mod raw;

/// Name of the listener the filter runs on (see [`Envoy::port`]).
pub const GATEWAY_LISTENER: &str = "gateway";
/// Route header used when the plugin config has no `route_header`.
pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-upstream";
/// How long an Envoy may take to become ready before the start counts as failed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of a single HTTP request made by the harness.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The stats tags of envoy/demo.yaml (read from it, so the tests and the demo cannot drift):
/// they turn the labels the filter encodes in its stat names into Prometheus labels, e.g.
/// `canary_gate_requests{gateway="default",upstream="model-v1"}`.
pub fn stats_tags() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("envoy/demo.yaml");
    let template = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The template's `${NAME}` placeholders are not YAML until rendered: any value will do.
    let mut text = String::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("${") {
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        text.push_str(&rest[..start]);
        text.push('0');
        rest = &rest[end..];
    }
    text.push_str(rest);
    let yaml: Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    let tags = yaml["stats_config"]["stats_tags"].clone();
    assert!(
        tags.is_array(),
        "no stats_config.stats_tags in {}",
        path.display()
    );
    tags
}

fn required_file(var: &str, what: &str) -> PathBuf {
    let hint = "run the tests with scripts/test.sh, which builds the filter, fetches Envoy \
                and exports ENVOY_BIN and CANARY_GATE_WASM";
    let value =
        std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set ({what}); {hint}"));
    let path = PathBuf::from(value);
    if !path.is_file() {
        panic!("{var}={} does not exist ({what}); {hint}", path.display());
    }
    // Absolute, because Envoy resolves relative paths against its own working directory.
    fs::canonicalize(&path).unwrap_or(path)
}

/// The Envoy executable (`$ENVOY_BIN`). Panics with instructions if missing.
/// A connection cap for the bootstrap; without one Envoy logs a warning at every start.
pub fn overload_manager() -> Value {
    json!({"resource_monitors": [{
        "name": "envoy.resource_monitors.global_downstream_max_connections",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            "max_active_downstream_connections": 1000
        }
    }]})
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "canary-gate-{tag}-{}-{}",
            std::process::id(),
            next_id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn envoy_bin() -> PathBuf {
    required_file("ENVOY_BIN", "path of the Envoy binary")
}

/// The built filter (`$CANARY_GATE_WASM`). Panics with instructions if missing.
pub fn wasm_path() -> PathBuf {
    required_file("CANARY_GATE_WASM", "path of canary_gate.wasm")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number unique within this process (and, combined with the pid, across processes).
fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

/// A response as a user sees it: status, headers (names lowercased; repeated headers joined
/// with ", "), body.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Resp {
    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {:?}",
                self.status, self.body
            )
        })
    }

    /// For a response relayed from an [`EchoUpstream`]: which upstream answered.
    pub fn upstream(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.get("upstream")?.as_str().map(str::to_owned)
    }

    /// For a response relayed from an [`EchoUpstream`]: a header as the upstream received it.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.get("headers")?
            .get(name.to_ascii_lowercase())?
            .as_str()
            .map(str::to_owned)
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .timeout_connect(Duration::from_secs(2))
        .redirects(0)
        .build()
}

/// Sends one request; returns status, headers and body for every status (2xx or not).
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, String> {
    let mut req = agent().request(method, url);
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    let status = resp.status();
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for name in resp.headers_names() {
        let joined = resp.all(&name).join(", ");
        map.insert(name.to_ascii_lowercase(), joined);
    }
    let body = resp
        .into_string()
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?;
    Ok(Resp {
        status,
        headers: map,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// Echo upstream
// ---------------------------------------------------------------------------------------------

/// An HTTP server on 127.0.0.1 (ephemeral port) that answers every request with 200 and
/// `{"upstream": name, "method": .., "path": "<path?query>", "headers": {lowercased: value}, "body": ..}`.
/// Stops on drop.
pub struct EchoUpstream {
    name: String,
    port: u16,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl EchoUpstream {
    pub fn start(name: &str) -> EchoUpstream {
        let server = Arc::new(
            tiny_http::Server::http("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("echo upstream {name}: cannot listen: {e}")),
        );
        let port = server
            .server_addr()
            .to_ip()
            .expect("echo upstream listens on an IP address")
            .port();
        let thread = {
            let server = Arc::clone(&server);
            let name = name.to_owned();
            thread::Builder::new()
                .name(format!("echo-{name}"))
                .spawn(move || {
                    for req in server.incoming_requests() {
                        answer_echo(&name, req);
                    }
                })
                .expect("spawn echo upstream thread")
        };
        EchoUpstream {
            name: name.to_owned(),
            port,
            server,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `(cluster name, port)`, the shape [`Envoy::start`] takes.
    pub fn cluster(&self) -> (&str, u16) {
        (&self.name, self.port)
    }
}

fn answer_echo(name: &str, mut req: tiny_http::Request) {
    let mut headers = serde_json::Map::new();
    for h in req.headers() {
        let key = h.field.as_str().as_str().to_ascii_lowercase();
        let value = h.value.as_str().to_owned();
        let merged = match headers.get(&key).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {value}"),
            None => value,
        };
        headers.insert(key, Value::String(merged));
    }
    let mut body = String::new();
    let _ = req.as_reader().take(1 << 20).read_to_string(&mut body);
    let doc = json!({
        "upstream": name,
        "method": req.method().as_str(),
        "path": req.url(),
        "headers": headers,
        "body": body,
    });
    let content_type = tiny_http::Header::from_bytes("content-type", "application/json")
        .expect("static header is valid");
    let resp = tiny_http::Response::from_string(doc.to_string()).with_header(content_type);
    let _ = req.respond(resp);
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Envoy
// ---------------------------------------------------------------------------------------------

/// Command-line side of an Envoy launch.
#[derive(Debug, Clone)]
pub struct Launch {
    /// `--concurrency` (worker threads). Default 1.
    pub concurrency: u32,
    /// `--log-level`. Default `info`, or `$CANARY_GATE_ENVOY_LOG_LEVEL`.
    pub log_level: String,
    /// `--component-log-level`, e.g. `wasm:debug`. Default none, or
    /// `$CANARY_GATE_ENVOY_COMPONENT_LOG_LEVEL`.
    pub component_log_level: Option<String>,
    /// How long to wait for `/ready`. Default [`READY_TIMEOUT`].
    pub ready_timeout: Duration,
    /// Any further command-line arguments.
    pub extra_args: Vec<String>,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            concurrency: 1,
            log_level: std::env::var("CANARY_GATE_ENVOY_LOG_LEVEL")
                .unwrap_or_else(|_| "info".to_owned()),
            component_log_level: std::env::var("CANARY_GATE_ENVOY_COMPONENT_LOG_LEVEL").ok(),
            ready_timeout: READY_TIMEOUT,
            extra_args: Vec::new(),
        }
    }
}

/// What to put in the generated bootstrap, plus how to launch it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin configuration (sent as compact JSON). `None` leaves the wasm filter out,
    /// which tests the harness's own routing.
    pub plugin_config: Option<Value>,
    /// `(cluster name, port on 127.0.0.1)`; one STATIC cluster each.
    pub upstreams: Vec<(String, u16)>,
    /// Header the route takes the cluster name from (`cluster_header`).
    pub route_header: String,
    /// The Wasm file; default `$CANARY_GATE_WASM`.
    pub wasm: Option<PathBuf>,
    pub launch: Launch,
}

impl Options {
    /// Filter on, route header from `plugin_config["route_header"]` (default `x-canary-upstream`).
    pub fn new(plugin_config: &Value, upstreams: &[(&str, u16)]) -> Options {
        let route_header = plugin_config
            .get("route_header")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_ROUTE_HEADER)
            .to_owned();
        Options {
            plugin_config: Some(plugin_config.clone()),
            upstreams: upstreams
                .iter()
                .map(|(n, p)| ((*n).to_owned(), *p))
                .collect(),
            route_header,
            wasm: None,
            launch: Launch::default(),
        }
    }

    /// No wasm filter: only the router, routing on `x-canary-upstream`.
    pub fn without_wasm(upstreams: &[(&str, u16)]) -> Options {
        Options {
            plugin_config: None,
            upstreams: upstreams
                .iter()
                .map(|(n, p)| ((*n).to_owned(), *p))
                .collect(),
            route_header: DEFAULT_ROUTE_HEADER.to_owned(),
            wasm: None,
            launch: Launch::default(),
        }
    }

    /// The Envoy bootstrap these options describe (admin and listener on 127.0.0.1:0).
    pub fn bootstrap(&self) -> Value {
        let mut http_filters = Vec::new();
        if let Some(cfg) = &self.plugin_config {
            let wasm = self.wasm.clone().unwrap_or_else(wasm_path);
            http_filters.push(json!({
                "name": "envoy.filters.http.wasm",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {
                        "name": "canary-gate",
                        "root_id": "canary-gate",
                        "vm_config": {
                            "vm_id": "canary-gate",
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": {"local": {"filename": wasm.to_string_lossy()}}
                        },
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": cfg.to_string()
                        },
                        "failure_policy": "FAIL_CLOSED"
                    }
                }
            }));
        }
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
        }));

        let clusters: Vec<Value> = self
            .upstreams
            .iter()
            .map(|(name, port)| {
                json!({
                    "name": name,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": name,
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                            "socket_address": {"address": "127.0.0.1", "port_value": port}
                        }}}]}]
                    }
                })
            })
            .collect();

        json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "stats_config": {"stats_tags": stats_tags()},
            "overload_manager": overload_manager(),
            "static_resources": {
                "listeners": [{
                    "name": GATEWAY_LISTENER,
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": GATEWAY_LISTENER,
                            "route_config": {
                                "name": "local_route",
                                "virtual_hosts": [{
                                    "name": "all",
                                    "domains": ["*"],
                                    "routes": [{
                                        "match": {"prefix": "/"},
                                        "route": {"cluster_header": self.route_header}
                                    }]
                                }]
                            },
                            "http_filters": http_filters
                        }
                    }]}]
                }],
                "clusters": clusters
            }
        })
    }
}

/// Envoy did not become ready: it exited (`exit_status` is `Some`) or `/ready` never
/// answered 200 within the timeout (`None`; the process has been killed).
pub struct StartFailure {
    pub log: String,
    pub exit_status: Option<ExitStatus>,
}

impl fmt::Display for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exit_status {
            Some(s) => write!(f, "Envoy exited ({s}) before becoming ready")?,
            None => write!(f, "Envoy did not become ready in time")?,
        }
        write!(
            f,
            "\n----- Envoy log -----\n{}\n----- end of Envoy log -----",
            self.log
        )
    }
}

impl fmt::Debug for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A running Envoy. Killed (and its temp dir removed) on drop; prints its log on drop when
/// the current thread is panicking (a failing test).
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    base_id: u32,
    admin_port: u16,
    listeners: BTreeMap<String, u16>,
}

impl Envoy {
    /// Envoy with the filter configured by `plugin_config`, one cluster per `(name, port)`.
    /// Panics (with Envoy's log) if it does not become ready.
    pub fn start(plugin_config: &Value, upstreams: &[(&str, u16)]) -> Envoy {
        Self::start_with(&Options::new(plugin_config, upstreams))
    }

    /// Like [`Envoy::start`], but returns the failure (log and exit status) instead of
    /// panicking, so a test can assert that Envoy refuses a configuration.
    pub fn try_start(
        plugin_config: &Value,
        upstreams: &[(&str, u16)],
    ) -> Result<Envoy, StartFailure> {
        Self::try_start_with(&Options::new(plugin_config, upstreams))
    }

    pub fn start_with(opts: &Options) -> Envoy {
        Self::try_start_with(opts).unwrap_or_else(|f| panic!("{f}"))
    }

    pub fn try_start_with(opts: &Options) -> Result<Envoy, StartFailure> {
        let yaml = serde_json::to_string_pretty(&opts.bootstrap()).expect("bootstrap serializes");
        Self::try_start_yaml(&yaml, &opts.launch)
    }

    /// Start from a complete bootstrap (YAML or JSON text). Use `127.0.0.1` and port 0 for
    /// the admin and every listener; ports are discovered from the admin endpoint.
    pub fn start_yaml(yaml: &str) -> Envoy {
        Self::try_start_yaml(yaml, &Launch::default()).unwrap_or_else(|f| panic!("{f}"))
    }

    pub fn try_start_yaml(yaml: &str, launch: &Launch) -> Result<Envoy, StartFailure> {
        let bin = envoy_bin();
        let id = next_id();
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("canary-gate-envoy-{pid}-{id}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let config = dir.join("bootstrap.yaml");
        fs::write(&config, yaml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let admin_file = dir.join("admin-address");
        // Distinct per process and per Envoy within it; stays well inside u32 (Envoy
        // multiplies base ids for its shared-memory names).
        let base_id = (pid % 1_000_000) * 100 + id % 100;

        let mut cmd = Command::new(&bin);
        cmd.arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--base-id")
            .arg(base_id.to_string())
            .arg("--concurrency")
            .arg(launch.concurrency.to_string())
            .arg("--log-level")
            .arg(&launch.log_level);
        if let Some(c) = &launch.component_log_level {
            cmd.arg("--component-log-level").arg(c);
        }
        cmd.args(&launch.extra_args);
        // Envoy logs to stderr, redirected to a file. (`--log-path` buffers its writes for
        // up to `--file-flush-interval-msec` and loses the tail when the process is killed,
        // so the log read during a test or after a failure would be incomplete.)
        let out = fs::File::create(dir.join("stdout.log")).expect("create stdout.log");
        let err = fs::File::create(dir.join("envoy.log")).expect("create envoy.log");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // Own process group, so teardown also reaches an Envoy started through a wrapper
        // (e.g. the func-e wrapper from scripts/envoy.sh).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));

        let mut envoy = Envoy {
            child,
            dir,
            base_id,
            admin_port: 0,
            listeners: BTreeMap::new(),
        };
        match envoy.wait_ready(&admin_file, launch.ready_timeout) {
            Ok(()) => Ok(envoy),
            Err(exit_status) => {
                envoy.kill();
                let log = envoy.log();
                Err(StartFailure { log, exit_status })
                // `envoy` drops here: temp dir removed (not panicking, so no log printed).
            }
        }
    }

    /// Polls until `/ready` answers 200, then records listener ports. `Err(Some(status))` if
    /// Envoy exited, `Err(None)` on timeout.
    fn wait_ready(
        &mut self,
        admin_file: &Path,
        timeout: Duration,
    ) -> Result<(), Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Some(status));
            }
            if self.admin_port == 0 {
                if let Ok(text) = fs::read_to_string(admin_file) {
                    if let Some(port) = text
                        .trim()
                        .rsplit_once(':')
                        .and_then(|(_, p)| p.parse::<u16>().ok())
                    {
                        self.admin_port = port;
                    }
                }
            }
            if self.admin_port != 0 {
                let url = format!("http://127.0.0.1:{}/ready", self.admin_port);
                if let Ok(r) = http_request("GET", &url, &[], None) {
                    if r.status == 200 {
                        if let Ok(listeners) = self.read_listeners() {
                            self.listeners = listeners;
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(None);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn read_listeners(&self) -> Result<BTreeMap<String, u16>, String> {
        let url = format!("http://127.0.0.1:{}/listeners?format=json", self.admin_port);
        let r = http_request("GET", &url, &[], None)?;
        let v: Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for l in v["listener_statuses"].as_array().into_iter().flatten() {
            let name = l["name"].as_str().unwrap_or_default().to_owned();
            let port = l["local_address"]["socket_address"]["port_value"]
                .as_u64()
                .unwrap_or(0);
            if port == 0 {
                return Err(format!("listener {name} has no port yet: {l}"));
            }
            out.insert(name, port as u16);
        }
        Ok(out)
    }

    /// Port of the gateway listener (the one running the filter).
    pub fn port(&self) -> u16 {
        self.listener_port(GATEWAY_LISTENER)
    }

    /// Port of a listener by name (for bootstraps given to [`Envoy::start_yaml`]).
    pub fn listener_port(&self, name: &str) -> u16 {
        *self
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("no listener named {name:?}; have {:?}", self.listeners))
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Any request to the gateway listener; panics only on transport errors (every HTTP
    /// status comes back as a [`Resp`]).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let url = format!("http://127.0.0.1:{}{}", self.port(), path);
        http_request(method, &url, headers, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET path` on the gateway listener.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers, None)
    }

    /// Body of `GET path` on the admin endpoint (panics unless 200).
    pub fn admin_get(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{}", self.admin_port, path);
        let r = http_request("GET", &url, &[], None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "admin GET {path}: {}", r.body);
        r.body
    }

    /// `/stats/prometheus`.
    pub fn prometheus(&self) -> String {
        self.admin_get("/stats/prometheus")
    }

    /// Envoy's log so far (its stderr, plus stdout if it printed anything there).
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default();
        if let Ok(t) = fs::read_to_string(self.dir.join("stdout.log")) {
            if !t.trim().is_empty() {
                s.push_str(&format!("\n----- stdout -----\n{t}"));
            }
        }
        s
    }

    /// Waits (bounded) until `pred(log)` holds; returns whether it did.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.log()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills Envoy's process group (Envoy and any wrapper around it), then reaps it.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.child.id());
            let killed_group = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !killed_group {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        // The hot-restart shared memory Envoy creates for its base id outlives the process
        // (even on SIGTERM); remove it so test runs do not pile up segments in /dev/shm.
        let shm = format!(
            "/dev/shm/envoy_shared_memory_{}",
            u64::from(self.base_id) * 10
        );
        let _ = fs::remove_file(shm);
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "----- Envoy log ({}) -----\n{}\n----- end of Envoy log -----",
                self.dir.display(),
                self.log()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
