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

# cargo's build folder, wherever it is, reads as the repository's `target/`.
target_dir=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="--remap-path-prefix=$root=/hotwasm --remap-path-prefix=$target_dir=/hotwasm/target --remap-path-prefix=$cargo_home=/cargo"
cargo build --locked --profile guest --target wasm32-wasip2 $(printf -- '-p %s ' "${guests[@]}")

mkdir -p assets/modules
install_module() {
    cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/guest/$1.wasm" "assets/modules/$2.wasm"
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

# Zig guests (guests/zig-*): Zig 0.17.1 from PyPI
#   python3 -m pip install ziglang==0.17.1
# and the C bindings committed in guests/zig-bindings/ (scripts/zig-bindings.sh).
# The hotwasm command builds them and makes the components itself (with
# wasmtime's WASI preview1 adapter, a crate it depends on).
bindings="$root/guests/zig-bindings"
if [ "$(cat "$bindings/wit.sha256")" != "$(scripts/wit-hash.sh)" ]; then
    echo "guests/zig-bindings were made from another wit/: run scripts/zig-bindings.sh" >&2
    exit 1
fi
cargo build --locked -q -p hotwasm-cli
hotwasm="${CARGO_TARGET_DIR:-$root/target}/debug/hotwasm"
export ZIG="${ZIG:-python3 -m ziglang}"
zig_guests=()
for main in guests/zig-*/src/main.zig; do
    zig_guests+=("$(basename "$(dirname "$(dirname "$main")")")")
done
"$hotwasm" build "${zig_guests[@]}"

# The trapping twin of zig-hello: its options.zig says to trap in init.
variant="$root/target/zig-variant"
rm -rf "$variant" && mkdir -p "$variant/zig-hello-trapping"
cp -r guests/zig-hello/src "$variant/zig-hello-trapping/"
echo "pub const trap_in_init = true;" > "$variant/zig-hello-trapping/src/options.zig"
printf 'out = "%s"\nguests = ["zig-hello-trapping"]\nzig-bindings = "%s"\n' \
    "$root/assets/modules" "$bindings" > "$variant/hotwasm.toml"
(cd "$variant" && "$hotwasm" build)
