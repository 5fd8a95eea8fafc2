//! Built as is: `zig_hello.wasm`. `scripts/build-guests.sh` also builds a
//! copy whose options.zig sets this, as `zig_hello_trapping.wasm`.
pub const trap_in_init = false;
