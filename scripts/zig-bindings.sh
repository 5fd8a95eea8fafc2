#!/usr/bin/env bash
# Regenerates the C bindings the Zig guests build against, from wit/, into
# guests/zig-bindings/ (committed), with the SHA-256 of wit/ they were made
# from, which scripts/build-guests.sh checks against wit/.
#
# Needs wit-bindgen 0.63.0:
#   cargo install --locked wit-bindgen-cli@0.63.0 --no-default-features --features c
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(wit-bindgen --version)
case "$version" in
    "wit-bindgen-cli 0.63.0"*) ;;
    *) echo "wit-bindgen 0.63.0 needed, found: $version" >&2; exit 1 ;;
esac
bindings=guests/zig-bindings
wit-bindgen c wit --world script --out-dir "$bindings"
scripts/wit-hash.sh > "$bindings/wit.sha256"
