//! The rows (variants) and the Envoy configuration each one runs.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use sha1::Digest as _;

use crate::bootstrap;

pub const JWT_ISSUER: &str = "https://issuer.bench.canary-gate.test";
pub const JWT_AUDIENCE: &str = "canary-gate-bench";
// Credentials for the auth variants. Nothing here is secret: fixed bench values.
pub const BASIC_USER: &str = "bench";
pub const BASIC_PASSWORD: &str = "bench-password";
/// bcrypt cost 5 of BASIC_PASSWORD (htpasswd -B -C 5 writes the same format).
pub const BASIC_BCRYPT: &str = "$2b$05$lg/henqMEcqF2UbftNXUhOxxl5rgN2Sc15ozn1WN//YRA0tpSUIte";
pub const API_KEY: &str = "bench-access-key-0123456789";

#[derive(Debug, Clone, Copy)]
pub enum Route {
    /// cluster v1.
    Plain,
    /// weighted_clusters v1 90 / v2 10.
    Weighted,
    /// cluster_header x-canary-upstream (what canary-gate writes).
    Header,
}

#[derive(Debug, Clone)]
pub enum Filter {
    BasicAuth,
    ApiKeyAuth,
    JwtAuthn {
        cached: bool,
    },
    /// The minimal filter; with a configuration, the hostcalls it replays (see
    /// benches/minimal-filter).
    WasmMinimal(Option<String>),
    /// canary-gate with this JSON configuration.
    Gate(Value),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub name: &'static str,
    pub desc: &'static str,
    pub route: Route,
    pub filters: Vec<Filter>,
    /// `name: value`, as wrk's `-H` takes them.
    pub headers: Vec<String>,
    pub wrk_args: Vec<String>,
    /// The request path (default `/`).
    pub path: &'static str,
    /// The rows this one is compared with: the native equivalent, the wasm floor, and the twin
    /// that makes the same hostcalls with no logic (the gap to it is the logic's; the twin's
    /// gap to the floor is the extra hostcalls').
    pub native: Option<&'static str>,
    pub floor: Option<&'static str>,
    pub twin: Option<&'static str>,
    /// Another canary-gate row of the same build this one is held against (the random split,
    /// for the auth rows): their paired per-round ratio is reported.
    pub peer: Option<&'static str>,
    /// The canary-gate module this row loads, when not the run's (`BENCH_BUILDS`).
    pub gate_wasm: Option<PathBuf>,
    /// A request without the row's headers must be refused (401/403), checked once per proxy
    /// start, so an auth row can't silently measure an open door.
    pub auth: bool,
}

impl Row {
    pub fn new(name: &'static str, desc: &'static str, route: Route) -> Row {
        Row {
            name,
            desc,
            route,
            filters: Vec::new(),
            headers: Vec::new(),
            wrk_args: Vec::new(),
            path: "/",
            native: None,
            floor: None,
            twin: None,
            peer: None,
            gate_wasm: None,
            auth: false,
        }
    }
    pub fn filter(mut self, f: Filter) -> Row {
        self.filters.push(f);
        self
    }
    pub fn header(mut self, h: &str) -> Row {
        self.headers.push(h.to_owned());
        self
    }
    pub fn path(mut self, path: &'static str) -> Row {
        self.path = path;
        self
    }
    pub fn native(mut self, row: &'static str) -> Row {
        self.native = Some(row);
        self
    }
    pub fn floor(mut self, row: &'static str) -> Row {
        self.floor = Some(row);
        self
    }
    pub fn twin(mut self, row: &'static str) -> Row {
        self.twin = Some(row);
        self
    }
    pub fn peer(mut self, row: &'static str) -> Row {
        self.peer = Some(row);
        self
    }
    pub fn auth(mut self) -> Row {
        self.auth = true;
        self
    }
}

/// Credentials and keys the rows use.
pub struct Creds {
    pub basic_header: String,
    pub basic_sha: String,
    pub api_key_sha256: String,
    pub jwks: Value,
    pub rs256_token: String,
    pub es256_token: String,
}

impl Creds {
    /// RS256 (2048-bit) and ES256 (P-256) keys made once with openssl and kept in
    /// `.tmp/bench/keys`, a JWKS holding both, and one token per key.
    pub fn make(keys: &Path) -> Result<Creds, String> {
        fs::create_dir_all(keys).map_err(|e| format!("create {}: {e}", keys.display()))?;
        let pem = |file: &str, algorithm: &str, opt: &str| -> Result<String, String> {
            let path = keys.join(file);
            if !path.exists() {
                let status = Command::new("openssl")
                    .args(["genpkey", "-algorithm", algorithm, "-pkeyopt", opt, "-out"])
                    .arg(&path)
                    .stderr(Stdio::null())
                    .status()
                    .map_err(|e| format!("openssl: {e}"))?;
                if !status.success() {
                    return Err(format!("openssl genpkey {algorithm} failed"));
                }
            }
            fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))
        };
        let rs = RS256KeyPair::from_pem(&pem("rs256.pem", "RSA", "rsa_keygen_bits:2048")?)
            .map_err(|e| format!("rs256.pem: {e}"))?
            .with_key_id("bench-rs256");
        let es = ES256KeyPair::from_pem(&pem("es256.pem", "EC", "ec_paramgen_curve:P-256")?)
            .map_err(|e| format!("es256.pem: {e}"))?
            .with_key_id("bench-es256");
        let b64u = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let rsa = rs.public_key().to_components();
        let point = es.public_key().public_key().to_bytes_uncompressed(); // 04 || x || y
        let jwks = json!({"keys": [
            {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "bench-rs256",
             "n": b64u(&rsa.n), "e": b64u(&rsa.e)},
            {"kty": "EC", "alg": "ES256", "use": "sig", "kid": "bench-es256", "crv": "P-256",
             "x": b64u(&point[1..33]), "y": b64u(&point[33..65])}
        ]});
        let claims = || {
            let mut c = Claims::create(jwt_simple::prelude::Duration::from_secs(1))
                .with_issuer(JWT_ISSUER)
                .with_audience(JWT_AUDIENCE)
                .with_subject("bench-user");
            c.issued_at = Some(UnixTimeStamp::from_secs(1_700_000_000));
            c.expires_at = Some(UnixTimeStamp::from_secs(4_102_444_800)); // 2100-01-01
            c.invalid_before = None;
            c
        };
        let rs256_token = rs.sign(claims()).map_err(|e| format!("RS256: {e}"))?;
        let es256_token = es.sign(claims()).map_err(|e| format!("ES256: {e}"))?;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Ok(Creds {
            basic_header: format!(
                "authorization: Basic {}",
                b64(format!("{BASIC_USER}:{BASIC_PASSWORD}").as_bytes())
            ),
            basic_sha: format!(
                "{{SHA}}{}",
                b64(&sha1::Sha1::digest(BASIC_PASSWORD.as_bytes()))
            ),
            api_key_sha256: hex::encode(sha2::Sha256::digest(API_KEY.as_bytes())),
            jwks,
            rs256_token,
            es256_token,
        })
    }
}

/// A twin's hostcall list (see benches/minimal-filter): `own`, then what every forwarded request
/// of canary-gate does after its own reads and writes (src/gate: count the route, the access-log
/// properties, the clock for the latency), then the response phase (the clock, `:status`,
/// `grpc-status` and `content-type` read, the response counted and its latency recorded).
/// `clear_route_cache` is not called by this build (ABI 0.2.1; see src/wasm/mod.rs).
fn twin(own: &[&str]) -> String {
    let mut ops: Vec<&str> = own.to_vec();
    ops.extend([
        "counter bench.routed",
        "property canary_gate_gateway default",
        "property canary_gate_upstream v1",
        "property canary_gate_bucket 4321",
        "now",
        "response",
        "now",
        "get :status",
        "get grpc-status",
        "get content-type",
        "counter bench.responses",
        "histogram bench.response_ms",
    ]);
    ops.join("; ")
}

pub fn rows(c: &Creds) -> Vec<Row> {
    use Route::{Header, Plain, Weighted};
    let split = json!({"primary": "v1", "canaries": [{"name": "v2", "percent": 10}]});
    let gate = |extra: Value| {
        let mut cfg = split.clone();
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        Filter::Gate(cfg)
    };
    let rs256 = format!("authorization: Bearer {}", c.rs256_token);
    let es256 = format!("authorization: Bearer {}", c.es256_token);
    let api_key = format!("x-api-key: {API_KEY}");
    let oauth2 = json!({"auth": {"mode": "oauth2", "issuer": JWT_ISSUER,
                                 "audiences": [JWT_AUDIENCE], "jwks": c.jwks}});
    vec![
        Row::new("none", "no filter, plain route (the limit)", Plain),
        Row::new("native-split", "Envoy weighted_clusters 90/10", Weighted),
        Row::new("native-basic", "native basic_auth ({SHA}) + weighted_clusters", Weighted)
            .filter(Filter::BasicAuth)
            .header(&c.basic_header)
            .auth(),
        Row::new("native-apikey", "native api_key_auth + weighted_clusters", Weighted)
            .filter(Filter::ApiKeyAuth)
            .header(&api_key)
            .auth(),
        Row::new(
            "native-jwt",
            "native jwt_authn RS256, local JWKS, no JWT cache (default)",
            Weighted,
        )
        .filter(Filter::JwtAuthn { cached: false })
        .header(&rs256)
        .auth(),
        Row::new(
            "native-jwt-cached",
            "native jwt_authn RS256, local JWKS, jwt_cache_config",
            Weighted,
        )
        .filter(Filter::JwtAuthn { cached: true })
        .header(&rs256)
        .auth(),
        Row::new(
            "native-jwt-es256",
            "native jwt_authn ES256, local JWKS, no JWT cache (default)",
            Weighted,
        )
        .filter(Filter::JwtAuthn { cached: false })
        .header(&es256)
        .auth(),
        Row::new(
            "wasm-minimal",
            "minimal wasm filter: sets one request header (the wasm floor)",
            Header,
        )
        .filter(Filter::WasmMinimal(None)),
        // The twins: the minimal filter replaying, per request, the hostcalls the gate row makes
        // (benches/minimal-filter: after `response`, the response-phase list), with no logic. A
        // gate row's gap to its twin is its logic's; the twin's gap to the floor, the hostcalls'.
        Row::new(
            "wasm-hostcalls-random",
            "minimal wasm filter replaying gate-random's 13 hostcalls, no logic",
            Header,
        )
        .filter(Filter::WasmMinimal(Some(twin(&[
            "remove x-canary-consumer",
            "set x-canary-upstream v1",
        ]))))
        .floor("wasm-minimal"),
        // gate-gateways-1's twin: gate-random's calls plus the two reads that find the gateway,
        // on the gateway rows' request.
        Row::new(
            "wasm-hostcalls-gateways",
            "minimal wasm filter replaying gate-gateways-1's 15 hostcalls, no logic",
            Header,
        )
        .filter(Filter::WasmMinimal(Some(twin(&[
            "get :authority",
            "get :path",
            "remove x-canary-consumer",
            "set x-canary-upstream v1",
        ]))))
        .header("Host: m17.example.com")
        .path("/vision/predict")
        .floor("wasm-minimal"),
        Row::new(
            "wasm-hostcalls-key",
            "minimal wasm filter replaying gate-header-key's 18 hostcalls, no logic",
            Header,
        )
        .filter(Filter::WasmMinimal(Some(twin(&[
            "map",
            "get x-user",
            "remove x-api-key",
            "set x-canary-consumer alice",
            "counter bench.allowed",
            "set x-canary-upstream v1",
            "property canary_gate_consumer alice",
        ]))))
        .header("x-user: user-42")
        .header(&api_key)
        .floor("wasm-minimal"),
        Row::new(
            "wasm-hostcalls-basic",
            "minimal wasm filter replaying gate-basic's 17 hostcalls, no logic",
            Header,
        )
        .filter(Filter::WasmMinimal(Some(twin(&[
            "map",
            "remove authorization",
            "set x-canary-consumer bench",
            "counter bench.allowed",
            "set x-canary-upstream v1",
            "property canary_gate_consumer bench",
        ]))))
        .header(&c.basic_header)
        .floor("wasm-minimal"),
        Row::new(
            "wasm-hostcalls-jwt",
            "minimal wasm filter replaying gate-jwt-rs256's 19 hostcalls, no logic",
            Header,
        )
        .filter(Filter::WasmMinimal(Some(twin(&[
            "now",
            "map",
            "remove authorization",
            "set x-canary-consumer bench-user",
            "counter bench.allowed",
            "counter bench.token_cache_hits",
            "set x-canary-upstream v1",
            "property canary_gate_consumer bench-user",
        ]))))
        .header(&rs256)
        .floor("wasm-minimal"),
        Row::new("gate-random", "canary-gate: random split 90/10, no auth", Header)
            .filter(gate(json!({})))
            .native("native-split")
            .floor("wasm-minimal")
            .twin("wasm-hostcalls-random"),
        // The response phase's guard bookkeeping (a window per guarded canary, in shared data),
        // against the same split without a guard. The upstream answers 200: never a trip.
        Row::new(
            "gate-guard",
            "canary-gate: random split 90/10, the canary guarded (errors and latency)",
            Header,
        )
        .filter(gate(json!({"canaries": [{"name": "v2", "percent": 10, "guard": {
            "max_error_rate": 0.5, "slow_ms": 800, "max_slow_rate": 0.5, "min_requests": 20}}]})))
        .floor("wasm-minimal")
        .peer("gate-random"),
        // The control for the gateway rows: gate-random's configuration (no `gateways`) on the
        // gateway rows' request (`Host` and path), so that a difference between the gateway rows
        // and this one is the filter's and not Envoy's handling of another request.
        Row::new(
            "gate-random-m17",
            "canary-gate: random split 90/10, no gateways, the gateway rows' request (m17.example.com /vision/predict)",
            Header,
        )
        .filter(gate(json!({})))
        .header("Host: m17.example.com")
        .path("/vision/predict")
        .floor("wasm-minimal")
        .peer("gate-random"),
        // One gateway in a `gateways` table: the same host calls as the 100-gateway row (the
        // request's `:authority` and `:path` are read), one host and one prefix to match.
        Row::new(
            "gate-gateways-1",
            "canary-gate: 1 gateway in a gateways table (a host and a prefix), random split 90/10",
            Header,
        )
        .filter(Filter::Gate(json!({"gateways": [{"name": "m17-vision",
            "hosts": ["m17.example.com"], "path_prefix": "/vision", "primary": "v1",
            "canaries": [{"name": "v2", "percent": 10}]}]})))
        .header("Host: m17.example.com")
        .path("/vision/predict")
        .floor("wasm-minimal")
        .twin("wasm-hostcalls-gateways")
        .peer("gate-random-m17"),
        // A table of 100 gateways (25 hosts x 4 path prefixes); the request matches one in the
        // middle (`m17.example.com`, `/vision`), against the single gateway of gate-random.
        Row::new(
            "gate-gateways-100",
            "canary-gate: 100 gateways (25 hosts x 4 prefixes), random split 90/10, no auth",
            Header,
        )
        .filter(Filter::Gate(hundred_gateways()))
        .header("Host: m17.example.com")
        .path("/vision/predict")
        .floor("wasm-minimal")
        .twin("wasm-hostcalls-gateways")
        .peer("gate-random-m17"),
        Row::new(
            "gate-header-key",
            "canary-gate: header-hash split 90/10 + access key",
            Header,
        )
        .filter(gate(json!({
            "split": {"by": "header", "name": "x-user"},
            "auth": {"mode": "access_key", "keys": [{"consumer": "alice", "sha256": c.api_key_sha256}]}
        })))
        .header("x-user: user-42")
        .header(&api_key)
        .native("native-apikey")
        .floor("wasm-minimal")
        .twin("wasm-hostcalls-key")
        .peer("gate-random")
        .auth(),
        Row::new(
            "gate-basic",
            "canary-gate: random split 90/10 + Basic bcrypt cost 5 (repeat client, cached)",
            Header,
        )
        .filter(gate(json!({
            "auth": {"mode": "basic", "users": [format!("{BASIC_USER}:{BASIC_BCRYPT}")]}
        })))
        .header(&c.basic_header)
        .native("native-basic")
        .floor("wasm-minimal")
        .twin("wasm-hostcalls-basic")
        .peer("gate-random")
        .auth(),
        // OAuth2: the same token on every request, so the verdict cache answers (the repeat
        // client). A fresh token per request would need a wrk script; the uncached cost is in
        // `cargo bench --bench decide`.
        Row::new(
            "gate-jwt-rs256",
            "canary-gate: random split 90/10 + OAuth2 JWT RS256, same token (cache hit)",
            Header,
        )
        .filter(gate(oauth2.clone()))
        .header(&rs256)
        .native("native-jwt-cached")
        .floor("wasm-minimal")
        .twin("wasm-hostcalls-jwt")
        .peer("gate-random")
        .auth(),
        Row::new(
            "gate-jwt-es256",
            "canary-gate: random split 90/10 + OAuth2 JWT ES256, same token (cache hit)",
            Header,
        )
        .filter(gate(oauth2))
        .header(&es256)
        .native("native-jwt-es256")
        .floor("wasm-minimal")
        .peer("gate-random")
        .auth(),
    ]
}

/// 25 hosts x 4 path prefixes, each gateway a random split 90/10 of its own upstreams
/// (all named v1/v2, which the bench upstream serves).
fn hundred_gateways() -> Value {
    let mut gateways = Vec::new();
    for h in 0..25 {
        for prefix in ["/fraud", "/chat", "/vision", "/speech"] {
            gateways.push(json!({
                "name": format!("m{h}-{}", prefix.trim_start_matches('/')),
                "hosts": [format!("m{h}.example.com")],
                "path_prefix": prefix,
                "primary": "v1",
                "canaries": [{"name": "v2", "percent": 10}],
            }));
        }
    }
    json!({ "gateways": gateways })
}

/// `BENCH_VARIANTS`: a subset, plus the rows it is compared with and `none`, in table order.
pub fn select(all: &[Row], variants: Option<&str>) -> Result<Vec<Row>, String> {
    let Some(variants) = variants.filter(|v| !v.trim().is_empty()) else {
        return Ok(all.to_vec());
    };
    let known: Vec<&str> = all.iter().map(|r| r.name).collect();
    let mut want: BTreeSet<&str> = BTreeSet::from(["none"]);
    for v in variants.split_whitespace() {
        let row = all
            .iter()
            .find(|r| r.name == v)
            .ok_or_else(|| format!("unknown variant {v} (known: {})", known.join(" ")))?;
        want.insert(row.name);
        want.extend(
            row.native
                .iter()
                .chain(&row.floor)
                .chain(&row.twin)
                .chain(&row.peer),
        );
    }
    Ok(all
        .iter()
        .filter(|r| want.contains(r.name))
        .cloned()
        .collect())
}

/// `BENCH_BUILDS="label=path ..."`: every canary-gate row once per build, named `row@label`
/// (its peer too), so builds are compared within the same rounds, interleaved.
pub fn per_build(rows: Vec<Row>, builds: &[(String, PathBuf)]) -> Vec<Row> {
    if builds.is_empty() {
        return rows;
    }
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let mut out = Vec::new();
    for row in rows {
        if !row.filters.iter().any(|f| matches!(f, Filter::Gate(_))) {
            out.push(row);
            continue;
        }
        for (label, path) in builds {
            let mut copy = row.clone();
            copy.name = leak(format!("{}@{label}", row.name));
            copy.peer = row.peer.map(|p| leak(format!("{p}@{label}")));
            copy.gate_wasm = Some(path.clone());
            out.push(copy);
        }
    }
    out
}

/// Checks the rows without running anything: references name rows, canary-gate accepts every
/// configuration. (What `cargo test --all-targets` runs.)
pub fn check_rows(all: &[Row]) -> Result<usize, String> {
    let names: BTreeSet<&str> = all.iter().map(|r| r.name).collect();
    if names.len() != all.len() {
        return Err("two rows share a name".into());
    }
    let mut gates = 0;
    for r in all {
        for reference in r
            .native
            .iter()
            .chain(&r.floor)
            .chain(&r.twin)
            .chain(&r.peer)
        {
            if !names.contains(reference) {
                return Err(format!("{}: no row named {reference}", r.name));
            }
        }
        for f in &r.filters {
            if let Filter::Gate(cfg) = f {
                canary_gate::config::parse(cfg.to_string().as_bytes()).map_err(|e| {
                    format!("{}: canary-gate refuses its configuration: {e}", r.name)
                })?;
                gates += 1;
            }
        }
        if r.auth && r.headers.is_empty() {
            return Err(format!("{}: an auth row without credentials", r.name));
        }
    }
    Ok(gates)
}

pub struct Wasm {
    pub gate: PathBuf,
    pub minimal: PathBuf,
    pub runtime: String,
}

pub fn wasm_filter(name: &str, file: &Path, configuration: Option<String>, runtime: &str) -> Value {
    let mut config = json!({
        "name": name,
        "vm_config": {
            "runtime": format!("envoy.wasm.runtime.{runtime}"),
            "code": {"local": {"filename": file.to_string_lossy()}}
        }
    });
    if let Some(c) = configuration {
        config["configuration"] =
            json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": c});
    }
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {"@type": bootstrap::WASM_TYPE, "config": config}
    })
}

pub fn filter_json(f: &Filter, c: &Creds, wasm: &Wasm, gate: Option<&Path>) -> Value {
    match f {
        Filter::BasicAuth => json!({
            "name": "envoy.filters.http.basic_auth",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
                "users": {"inline_string": format!("{BASIC_USER}:{}", c.basic_sha)}
            }
        }),
        Filter::ApiKeyAuth => json!({
            "name": "envoy.filters.http.api_key_auth",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
                "credentials": [{"key": API_KEY, "client": "alice"}],
                "key_sources": [{"header": "x-api-key"}]
            }
        }),
        Filter::JwtAuthn { cached } => {
            let mut provider = json!({
                "issuer": JWT_ISSUER,
                "audiences": [JWT_AUDIENCE],
                "local_jwks": {"inline_string": c.jwks.to_string()}
            });
            if *cached {
                provider["jwt_cache_config"] = json!({"jwt_cache_size": 100});
            }
            json!({
                "name": "envoy.filters.http.jwt_authn",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                    "providers": {"bench": provider},
                    "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]
                }
            })
        }
        Filter::WasmMinimal(cfg) => {
            wasm_filter("minimal-filter", &wasm.minimal, cfg.clone(), &wasm.runtime)
        }
        Filter::Gate(cfg) => wasm_filter(
            "canary-gate",
            gate.unwrap_or(&wasm.gate),
            Some(cfg.to_string()),
            &wasm.runtime,
        ),
    }
}

pub fn route_config(route: Value) -> Value {
    json!({"virtual_hosts": [{
        "name": "all",
        "domains": ["*"],
        "routes": [{"match": {"prefix": "/"}, "route": route}]
    }]})
}

pub fn upstream_bootstrap() -> Value {
    let route_config = json!({"virtual_hosts": [{
        "name": "all",
        "domains": ["*"],
        "routes": [{"match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]
    }]});
    json!({
        "admin": bootstrap::admin(),
        "static_resources": {"listeners": [
            bootstrap::http_listener("upstream", "upstream", route_config, vec![bootstrap::router()])
        ]}
    })
}

pub fn proxy_bootstrap(row: &Row, upstream_port: u16, c: &Creds, wasm: &Wasm) -> Value {
    let route = match row.route {
        Route::Plain => json!({"cluster": "v1"}),
        Route::Weighted => json!({"weighted_clusters": {"clusters": [
            {"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}]}}),
        Route::Header => json!({"cluster_header": "x-canary-upstream"}),
    };
    let mut filters: Vec<Value> = row
        .filters
        .iter()
        .map(|f| filter_json(f, c, wasm, row.gate_wasm.as_deref()))
        .collect();
    filters.push(bootstrap::router());
    json!({
        "admin": bootstrap::admin(),
        "static_resources": {
            "listeners": [bootstrap::http_listener("bench", "bench", route_config(route), filters)],
            "clusters": [
                bootstrap::static_cluster("v1", upstream_port),
                bootstrap::static_cluster("v2", upstream_port)
            ]
        }
    })
}
