#!/usr/bin/env bash
# Make sure the OCI tools named on the command line are installed, from Debian packages:
#   skopeo (copy/inspect images), umoci (build an OCI image layout), docker-registry (a local
#   registry, for the OCI round-trip test). Nothing is printed on stdout.
#
#   scripts/oci-tools.sh skopeo umoci
#
# Installs what is missing with apt-get (running `apt-get update` first if the install fails
# on stale lists); exits non-zero, saying what to install, when that is not possible.
set -euo pipefail

log() { echo "oci-tools.sh: $*" >&2; }
die() { log "$*"; exit 1; }

declare -A package=([skopeo]=skopeo [umoci]=umoci [docker-registry]=docker-registry)
(($# > 0)) || die "usage: scripts/oci-tools.sh TOOL... (one of: ${!package[*]})"

missing=()
for tool in "$@"; do
  [[ -n "${package[$tool]:-}" ]] || die "unknown tool '$tool' (one of: ${!package[*]})"
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]}")
done
((${#missing[@]} == 0)) && exit 0

command -v apt-get >/dev/null 2>&1 \
  || die "missing ${missing[*]}, and there is no apt-get here: install the package(s) ${missing[*]} yourself"
sudo=()
if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run as root or install sudo"
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
install() { "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
log "installing ${missing[*]} with apt-get"
if ! install; then
  log "apt-get install failed; running apt-get update and trying again"
  "${sudo[@]}" apt-get update >&2 || die "apt-get update failed"
  install || die "apt-get install ${missing[*]} failed"
fi
for tool in "$@"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after installing ${package[$tool]}"
done
