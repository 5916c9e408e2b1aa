#!/usr/bin/env bash
# Package the filter as an OCI image Istio's WasmPlugin can pull (`url: oci://...`), without a
# Docker daemon: Istio's "compat" image variant, i.e. one layer
# (application/vnd.oci.image.layer.v1.tar+gzip) whose tar holds the module as `plugin.wasm`.
#
#   scripts/package.sh [--out DIR] [--tag TAG]
#
#   --out DIR   the OCI image layout to (re)create (default: target/oci/canary-gate)
#   --tag TAG   the image tag (default: the crate version from Cargo.toml)
#
# Builds the filter (scripts/build.sh), installs umoci and skopeo from Debian if missing
# (scripts/oci-tools.sh), writes the image, checks it with skopeo, and prints the image's manifest
# digest (hex) on stdout: the value for the WasmPlugin's `sha256` field, which Istio compares with
# the digest of the manifest it pulls. The image is reproducible: the same module gives the same
# digest. Push it with skopeo, e.g.
#   skopeo copy oci:target/oci/canary-gate:0.1.0 docker://registry.example.com/canary-gate:0.1.0
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "package.sh: $*" >&2; }
die() { log "$*"; exit 1; }

out="target/oci/canary-gate"
tag="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
while (($# > 0)); do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    *) die "usage: scripts/package.sh [--out DIR] [--tag TAG]" ;;
  esac
done
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid tag '$tag'"

wasm="$(scripts/build.sh)" || die "scripts/build.sh failed"
scripts/oci-tools.sh umoci skopeo || die "cannot install umoci and skopeo"

# Fixed timestamps and platform, so that the digest depends on the module only.
epoch=1970-01-01T00:00:00Z
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$wasm" "$stage/plugin.wasm"
chmod 0644 "$stage/plugin.wasm"
touch -d "$epoch" "$stage/plugin.wasm"

rm -rf "$out"
mkdir -p "$(dirname "$out")"
umoci init --layout "$out"
umoci new --image "$out:$tag"
umoci config --image "$out:$tag" --no-history \
  --created "$epoch" --architecture wasm --os wasip1 \
  --config.label "org.opencontainers.image.title=canary-gate" \
  --config.label "org.opencontainers.image.version=$tag"
# The layer: a plain tar with the one file, written by GNU tar with fixed owner and time (umoci
# adds it verbatim and gzips it). (umoci 0.4.7's `insert` writes a tar without its end blocks.)
tar --create --file "$stage/layer.tar" --directory "$stage" --format=ustar \
  --owner=0 --group=0 --numeric-owner --mtime="$epoch" plugin.wasm
umoci raw add-layer --image "$out:$tag" --history.created "$epoch" \
  --history.created_by "scripts/package.sh: plugin.wasm" "$stage/layer.tar"
umoci gc --layout "$out"

# Check the result with a second standard tool, the one that pushes it.
manifest="$(skopeo inspect --raw "oci:$out:$tag")" || die "skopeo cannot read the image at $out"
layers="$(grep -o '"mediaType":"[^"]*layer[^"]*"' <<<"$manifest" || true)"
[[ "$layers" == '"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"' ]] \
  || die "expected exactly one tar+gzip layer, manifest is: $manifest"
digest="$(skopeo inspect --format '{{.Digest}}' "oci:$out:$tag")"
[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "unexpected digest '$digest'"

log "image: oci:$out:$tag (module $wasm, $(wc -c <"$wasm") bytes, as plugin.wasm)"
log "push:  skopeo copy oci:$out:$tag docker://REGISTRY/canary-gate:$tag"
log "WasmPlugin: url: oci://REGISTRY/canary-gate:$tag   sha256: ${digest#sha256:}"
echo "${digest#sha256:}"
