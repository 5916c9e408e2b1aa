#!/usr/bin/env bash
# Run the demo gateway: build the filter, fetch Envoy, start ONE Envoy with
#   - the gateway on 127.0.0.1:$PORT (default 10000): canary-gate filter, then the router
#     (routes on the x-canary-upstream header the filter sets),
#   - three model versions model-v1..3 on 127.0.0.1:$PORT+1..$PORT+3 (direct responses),
#   - admin on 127.0.0.1:$ADMIN_PORT (default 9901).
# Plugin configuration: envoy/demo-config.json. Bootstrap template: envoy/demo.yaml.
#
#   scripts/run.sh           Envoy in the foreground (Ctrl-C to stop); the curl commands to try
#                            are printed once it is ready, then the filter's log lines
#   scripts/run.sh --check   start it in the background, run the demo requests, check the
#                            answers, stop it; exit non-zero if anything is wrong
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  *) echo "usage: scripts/run.sh [--check]" >&2; exit 2 ;;
esac

wasm="$(scripts/build.sh)"
envoy="$(scripts/envoy.sh)"

export PORT="${PORT:-10000}"
export ADMIN_PORT="${ADMIN_PORT:-9901}"
export MODEL_V1_PORT="${MODEL_V1_PORT:-$((PORT + 1))}"
export MODEL_V2_PORT="${MODEL_V2_PORT:-$((PORT + 2))}"
export MODEL_V3_PORT="${MODEL_V3_PORT:-$((PORT + 3))}"

mkdir -p .tmp
config=.tmp/demo.yaml
CANARY_GATE_WASM="$wasm" python3 - envoy/demo.yaml envoy/demo-config.json "$config" <<'PY'
import json, os, re, sys
template, plugin_config, out = sys.argv[1:4]
with open(plugin_config) as f:
    cfg = json.load(f)  # fails loudly on a malformed demo-config.json
values = {k: os.environ[k] for k in ("PORT", "ADMIN_PORT", "MODEL_V1_PORT", "MODEL_V2_PORT", "MODEL_V3_PORT")}
# JSON strings are valid YAML scalars, so quoting with json.dumps is safe for any path/config.
values["CANARY_GATE_WASM"] = json.dumps(os.environ["CANARY_GATE_WASM"])
values["PLUGIN_CONFIG"] = json.dumps(json.dumps(cfg, separators=(",", ":")))
with open(template) as f:
    # Only ${NAME} placeholders are replaced (a bare "$" is left alone: the stats regexes use it).
    text = re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: values[m.group(1)], f.read())
with open(out, "w") as f:
    f.write(text)
PY

gw="http://127.0.0.1:$PORT"
admin="http://127.0.0.1:$ADMIN_PORT"

suggestions() {
  cat <<EOT

canary-gate demo: gateway $gw, admin $admin, Envoy config $config
Keys: alice-key (consumer alice), bob-key (consumer bob). Try:

  # the split: 20 users, count which model version answered (about 85% v1, 10% v2, 5% v3)
  for i in \$(seq 1 20); do curl -s -H 'x-api-key: alice-key' -H "x-user-id: user-\$i" $gw/v1/chat; done | sort | uniq -c

  # a sticky user: the same x-user-id gets the same version every time
  for i in 1 2 3 4 5; do curl -s -H 'x-api-key: alice-key' -H 'x-user-id: user-42' $gw/v1/chat; done

  # pick a version explicitly
  curl -si -H 'x-api-key: bob-key' -H 'x-canary-select: model-v3' $gw/v1/chat

  # no key: 401
  curl -si $gw/v1/chat

  # the filter's metrics
  curl -s $admin/stats/prometheus | grep canary_gate

EOT
  $check || echo "Envoy is ready. Its log continues below: the filter's lines and Envoy's warnings (Ctrl-C stops Envoy)."
}

# One set of Envoy arguments whatever runs it: scripts/envoy.sh gives either an Envoy binary or
# the func-e wrapper (which runs `func-e run <these arguments>`). Envoy's own start-up chatter
# (the extension list, ~100 lines at info) is left out: warnings, plus the filter's own lines
# (the wasm component at info).
# The access log is flushed every second (Envoy's default is 10 s), as Istio does.
envoy_args=(-c "$config" --disable-hot-restart --log-level warning --component-log-level wasm:info
  --file-flush-interval-msec 1000)

# Waits (up to 30 s) until Envoy answers 200 on /ready; says why not on stdout.
wait_ready() {
  local _
  for _ in $(seq 1 300); do
    if ! kill -0 "$envoy_pid" 2>/dev/null; then
      echo "FAIL: Envoy exited at startup (a refused config? ports $PORT-$MODEL_V3_PORT and $ADMIN_PORT must be free)"
      return 1
    fi
    if [[ "$(curl -s --max-time 1 "$admin/ready" || true)" == LIVE* ]]; then return 0; fi
    sleep 0.1
  done
  echo "FAIL: Envoy did not become ready within 30 s"
  return 1
}

if ! $check; then
  echo "Starting Envoy..."
  "$envoy" "${envoy_args[@]}" --concurrency "${CONCURRENCY:-2}" &
  envoy_pid=$!
  # A background command ignores Ctrl-C in a script: pass it on.
  trap 'kill -TERM "$envoy_pid" 2>/dev/null || true' INT TERM
  if ! wait_ready; then
    kill -TERM "$envoy_pid" 2>/dev/null || true
    wait "$envoy_pid" 2>/dev/null || true
    exit 1
  fi
  suggestions
  status=0
  wait "$envoy_pid" || status=$?
  # Interrupted: the trap has signalled Envoy; wait for it to finish.
  wait "$envoy_pid" 2>/dev/null || true
  exit "$status"
fi

# --check: run the demo against a background Envoy.
log=.tmp/demo-envoy.log
"$envoy" "${envoy_args[@]}" --concurrency 1 >"$log" 2>&1 &
envoy_pid=$!
failed=0
cleanup() {
  kill "$envoy_pid" 2>/dev/null || true
  wait "$envoy_pid" 2>/dev/null || true
  if [[ $failed -ne 0 ]]; then
    echo "----- Envoy log ($log) -----"
    cat "$log"
    echo "----- end of Envoy log -----"
  fi
}
trap cleanup EXIT

if ! wait_ready; then
  failed=1
  exit 1
fi
suggestions

fail() { echo "FAIL: $*"; failed=1; }
ok() { echo "ok:   $*"; }
# GET on the gateway; sets $status, $hdrs (lowercase names) and $body.
get() {
  local out
  out="$(curl -s --max-time 5 -D - "$@" "$gw/v1/chat")" || { status=000; hdrs=""; body=""; return; }
  status="$(head -n1 <<<"$out" | awk '{print $2}')"
  hdrs="$(sed -n '1,/^\r$/p' <<<"$out" | tr -d '\r' | tr '[:upper:]' '[:lower:]')"
  body="$(sed '1,/^\r$/d' <<<"$out")"
}
model_of() { sed -n 's/.*"model":"\([^"]*\)".*/\1/p' <<<"$1"; }

echo "== the split: 20 users"
seen=""
for i in $(seq 1 20); do
  get -H 'x-api-key: alice-key' -H "x-user-id: user-$i"
  m="$(model_of "$body")"
  announced="$(sed -n 's/^x-canary-upstream: //p' <<<"$hdrs")"
  if [[ "$status" != 200 || -z "$m" ]]; then fail "user-$i: status $status, body $body"; continue; fi
  [[ "$announced" == "$m" ]] || fail "user-$i: answered by $m but x-canary-upstream says '$announced'"
  seen+="$m"$'\n'
done
{ sort <<<"$seen" | grep . | uniq -c | sed 's/^/  /'; } || true
grep -qx model-v1 <<<"$seen" && ok "split: primary model-v1 served users" || fail "split: model-v1 never answered"

echo "== a sticky user: user-42 five times"
first=""
sticky=true
for i in 1 2 3 4 5; do
  get -H 'x-api-key: alice-key' -H 'x-user-id: user-42'
  m="$(model_of "$body")"
  echo "      $status $m"
  [[ "$status" == 200 && -n "$m" ]] || { fail "user-42 request $i: status $status, body $body"; sticky=false; }
  [[ -n "$first" ]] || first="$m"
  [[ "$m" == "$first" ]] || { fail "user-42 moved from $first to $m"; sticky=false; }
done
! $sticky || ok "sticky: user-42 always got $first"

echo "== select header: x-canary-select: model-v3"
get -H 'x-api-key: bob-key' -H 'x-canary-select: model-v3'
echo "      $status $body"
[[ "$status" == 200 && "$(model_of "$body")" == model-v3 ]] && ok "select: model-v3 answered" \
  || fail "select: expected model-v3, got status $status, body $body"

echo "== no key"
get
echo "      $status $(grep '^www-authenticate' <<<"$hdrs" || true)"
[[ "$status" == 401 ]] && ok "auth: no key -> 401" || fail "auth: no key gave $status"
get -H 'x-api-key: mallory-key'
[[ "$status" == 401 ]] && ok "auth: unknown key -> 401" || fail "auth: unknown key gave $status"

echo "== metrics"
metrics="$(curl -s --max-time 5 "$admin/stats/prometheus" | grep '^canary_gate' || true)"
sed 's/^/      /' <<<"$metrics"
grep -q '^canary_gate_requests{gateway="default",upstream="model-v1"}' <<<"$metrics" \
  && ok 'metrics: canary_gate_requests{gateway="default",upstream="model-v1"}' || fail "metrics: no canary_gate_requests{gateway=\"default\",upstream=\"model-v1\"}"
grep -q '^canary_gate_auth_denied{gateway="default",reason="' <<<"$metrics" \
  && ok 'metrics: canary_gate_auth_denied{gateway="default",reason=...}' || fail 'metrics: no canary_gate_auth_denied{gateway="default",reason=...}'

if [[ $failed -ne 0 ]]; then echo "demo check FAILED"; exit 1; fi
echo "demo check passed"
