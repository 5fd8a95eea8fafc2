#!/usr/bin/env bash
# Builds every guest under guests/ for wasm32-wasip2 into assets/modules/.
#
# The bytes depend only on the sources, Cargo.lock and the toolchain: paths
# are remapped so the repository's and cargo's locations never reach the
# output. CI runs this and fails if a committed module differs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cargo_home=${CARGO_HOME:-$HOME/.cargo}

guests=()
for manifest in guests/*/Cargo.toml; do
    dir=$(dirname "$manifest")
    grep -q 'crate-type = \["cdylib"\]' "$manifest" && guests+=("$(basename "$dir")")
done

export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="--remap-path-prefix=$root=/hotwasm --remap-path-prefix=$cargo_home=/cargo"
cargo build --locked --profile guest --target wasm32-wasip2 $(printf -- '-p %s ' "${guests[@]}")

mkdir -p assets/modules
install_module() {
    cp "target/wasm32-wasip2/guest/$1.wasm" "assets/modules/$2.wasm"
    echo "assets/modules/$2.wasm: $(wc -c < "assets/modules/$2.wasm") bytes"
}
for guest in "${guests[@]}"; do
    install_module "${guest//-/_}" "${guest//-/_}"
done

# The arena's tests swap this variant in: enemies that home straight in.
cargo build --locked --profile guest --target wasm32-wasip2 -p enemy-ai --features homing
install_module enemy_ai enemy_ai_homing

# The capability tests: the intruder asking for all it tries.
cargo build --locked --profile guest --target wasm32-wasip2 -p intruder --features granted
install_module intruder intruder_granted
