#!/usr/bin/env bash
# One SHA-256 over every .wit file under wit/, by path and content: what the
# Zig guests' committed bindings were generated from (READMEs do not count).
set -euo pipefail
cd "$(dirname "$0")/.."
find wit -type f -name '*.wit' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
