//! The module loader against arbitrary bytes and against real components
//! with bytes changed: every input is a module or a clear error, never a
//! panic. 32 cases per property by default; `PROPTEST_CASES=20000 cargo
//! test --test fuzz` runs for minutes.

use bevy_hotwasm::{WasmEngine, WasmModule};
use hotwasm_test_support::guest_bytes;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(32);
    ProptestConfig::with_cases(cases)
}

fn engine() -> &'static WasmEngine {
    static ENGINE: std::sync::OnceLock<WasmEngine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| WasmEngine::new().unwrap())
}

fn counter() -> &'static [u8] {
    static COUNTER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    COUNTER.get_or_init(|| guest_bytes("counter"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_are_refused_with_an_error(
        prefix in prop_oneof![Just(b"\0asm\x0d\0\x01\0".to_vec()), Just(Vec::new())],
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let bytes = [prefix, tail].concat();
        let result = WasmModule::from_bytes(engine(), "fuzz.wasm", &bytes);
        if let Err(error) = result {
            prop_assert!(error.to_string().contains("fuzz.wasm"));
        }
    }

    #[test]
    fn a_component_with_changed_bytes_loads_or_is_refused(
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<proptest::sample::Index>()),
    ) {
        let mut bytes = counter().to_vec();
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let result = WasmModule::from_bytes(engine(), "fuzz.wasm", &bytes);
        if let Err(error) = result {
            prop_assert!(error.to_string().contains("fuzz.wasm"));
        }
    }
}
