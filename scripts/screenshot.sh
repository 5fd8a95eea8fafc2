#!/usr/bin/env bash
# Plays the arena by itself in a virtual X display with Mesa's software
# Vulkan, saves the window after a few seconds of play and checks the
# picture shows the game: mostly arena floor, the player, enemies and the
# HUD's text (the example exits non-zero if one is missing).
#
# Needs xvfb (xvfb-run, xauth), mesa-vulkan-drivers and libvulkan1.
#
#   scripts/screenshot.sh [FILE] [ARGS...]   # default: target/screenshots/arena.png
#
# ARGS go to the game, e.g. `--panel` to open the debug panel.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/screenshots/arena.png}
shift || true
mkdir -p "$(dirname "$out")"
# A fresh save, so the picture does not depend on earlier games.
save=$(mktemp -d)
trap 'rm -rf "$save"' EXIT
cargo build --locked -p arena
WGPU_BACKEND=${WGPU_BACKEND:-vulkan} timeout 300 \
    xvfb-run -a -s "-screen 0 1280x720x24" \
    cargo run --locked -p arena -- \
    --autoplay --screenshot "$out" --save-dir "$save" "$@"
echo "screenshot: $out"
