#!/usr/bin/env bash
# Make sure Prometheus and promtool are installed, from Debian's `prometheus` package (2.42 on
# bookworm): tests/observability.rs runs its own Prometheus against a real Envoy and checks
# envoy/observability/ with promtool. Nothing is printed on stdout.
#
#   scripts/observability-tools.sh
#
# Installs the package with apt-get when either tool is missing (running `apt-get update` first
# if the install fails on stale lists); exits non-zero, saying what to install, when that is
# not possible. The package's own service (prometheus on :9090) is not used: the test starts
# Prometheus itself, on a free loopback port, with a temporary storage directory.
set -euo pipefail

log() { echo "observability-tools.sh: $*" >&2; }
die() { log "$*"; exit 1; }

(($# == 0)) || die "usage: scripts/observability-tools.sh (no arguments)"

tools=(prometheus promtool)
have_all() {
  local tool
  for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || return 1
  done
}
have_all && exit 0

command -v apt-get >/dev/null 2>&1 \
  || die "missing ${tools[*]}, and there is no apt-get here: install Prometheus 2.x (prometheus and promtool on PATH) yourself"
sudo=()
if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "missing ${tools[*]}: run as root or install sudo"
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# Without recommends: no node exporter, no web console assets.
install() { "${sudo[@]}" apt-get install -y --no-install-recommends prometheus >&2; }
log "installing prometheus (prometheus, promtool) with apt-get"
if ! install; then
  log "apt-get install failed; running apt-get update and trying again"
  "${sudo[@]}" apt-get update >&2 || die "apt-get update failed"
  install || die "apt-get install prometheus failed"
fi
have_all || die "prometheus or promtool is still missing after installing the prometheus package"
