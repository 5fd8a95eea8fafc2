//! Loading modules and running instances, without hot reload.

use bevy::prelude::*;
use bevy_hotwasm::sandbox::DEFAULT_MAX_WASM_STACK;
use bevy_hotwasm::{
    Compilation, FailureStage, HotWasmPlugin, Sandbox, WasmEngine, WasmModule,
    WasmModuleLoaderError, WasmScript,
};
use hotwasm_test_support::*;

#[test]
fn a_module_loads_and_init_runs() {
    let assets = AssetDir::new();
    assets.write("hello.wasm", &guest_bytes("hello"));
    let mut app = app(&assets, None);
    let entity = spawn_script(&mut app, "hello.wasm");

    update_until(&mut app, "hello to log", |app| {
        seen(app).lines_of(entity).len() >= 2
    });

    assert_eq!(
        seen(&app).lines_of(entity),
        [
            "Hello from modules/hello.wasm (generation 1)!".to_string(),
            format!("hello.wasm is running on entity {entity}"),
        ]
    );
    assert_eq!(generation(&app, entity), Some(1));
    assert!(seen(&app).failed.is_empty());
}

/// A game that keeps compiled modules on disk compiles nothing at its second
/// start, and its modules run as at the first.
#[test]
fn a_second_start_with_a_cache_directory_compiles_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let start = || {
        let assets = AssetDir::new();
        assets.write("hello.wasm", &guest_bytes("hello"));
        let plugin = HotWasmPlugin {
            compilation: Compilation::cached_in(cache.path()),
            ..unsigned_plugin()
        };
        let mut app = app_with(&assets, None, plugin, |_| {});
        let entity = spawn_script(&mut app, "hello.wasm");
        update_until(&mut app, "hello to log", |app| {
            seen(app).lines_of(entity).len() >= 2
        });
        assert_eq!(
            seen(&app).lines_of(entity)[0],
            "Hello from modules/hello.wasm (generation 1)!"
        );
        let engine = app.world().resource::<WasmEngine>();
        (engine.compiles(), engine.disk_cache_hits())
    };

    assert_eq!(start(), (1, 0), "the first start compiles");
    assert_eq!(start(), (0, 1), "the second finds it on disk");
}

#[test]
fn entities_running_one_module_have_separate_state() {
    let (_assets, app, entities) = start_scripts("counter.wasm", &guest_bytes("counter"), 2, None);
    let [first, second] = entities[..] else {
        unreachable!()
    };

    // One shared instance would have counted its second init as 2.
    assert_eq!(seen(&app).lines_of(first), ["starts=1"]);
    assert_eq!(seen(&app).lines_of(second), ["starts=1"]);
}

#[test]
fn despawning_or_removing_the_script_frees_the_instance() {
    let (_assets, mut app, entities) =
        start_scripts("counter.wasm", &guest_bytes("counter"), 3, None);
    let [despawned, stripped, kept] = entities[..] else {
        unreachable!()
    };

    app.world_mut().despawn(despawned);
    app.world_mut().entity_mut(stripped).remove::<WasmScript>();
    app.update();

    let running: Vec<Entity> = runtime(&app).scripts().map(|(entity, _)| entity).collect();
    assert_eq!(running, [kept]);
    assert_eq!(generation(&app, kept), Some(1));
}

#[test]
fn an_init_that_traps_on_first_start_runs_nothing_and_says_so() {
    let assets = AssetDir::new();
    assets.write("trap.wasm", &trapping_init());
    let mut app = app(&assets, None);
    let entity = spawn_script(&mut app, "trap.wasm");

    update_until(&mut app, "a failure", |app| !seen(app).failed.is_empty());

    let failure = &seen(&app).failed[0];
    assert_eq!(failure.stage, FailureStage::Init);
    assert_eq!(failure.entity, Some(entity));
    assert_eq!(&*failure.path, "modules/trap.wasm");
    assert!(failure.cause.contains("trapped"), "{}", failure.cause);
    assert_eq!(generation(&app, entity), None);
    let script = runtime(&app).script(entity).unwrap();
    assert_eq!(script.last_failure().unwrap().stage, FailureStage::Init);
}

#[test]
fn a_bad_file_fails_at_its_stage_naming_the_module() {
    let cases: [(&str, Vec<u8>, FailureStage, &str); 5] = [
        (
            "text.wasm",
            b"(module)".to_vec(),
            FailureStage::Compile,
            "not WebAssembly",
        ),
        (
            "core.wasm",
            core_module(),
            FailureStage::Compile,
            "core WebAssembly module",
        ),
        (
            "cut.wasm",
            cut_in_half("counter"),
            FailureStage::Compile,
            "not a valid component",
        ),
        (
            "other.wasm",
            other_world(),
            FailureStage::Link,
            "acme:missing/thing",
        ),
        (
            "missing.wasm",
            Vec::new(),
            FailureStage::Read,
            "missing.wasm",
        ),
    ];
    let assets = AssetDir::new();
    for (file, bytes, ..) in &cases {
        if *file != "missing.wasm" {
            assets.write(file, bytes);
        }
    }
    let mut app = app(&assets, None);
    let entities: Vec<Entity> = cases
        .iter()
        .map(|(file, ..)| spawn_script(&mut app, file))
        .collect();

    update_until(&mut app, "every load to fail", |app| {
        seen(app).failed.len() == cases.len()
    });

    for (file, _, stage, cause) in &cases {
        let path = format!("modules/{file}");
        let failure = seen(&app).failed.iter().find(|f| *f.path == path).unwrap();
        assert_eq!(failure.stage, *stage, "{file}");
        assert_eq!(failure.entity, None, "{file}");
        assert!(failure.cause.contains(cause), "{file}: {}", failure.cause);
        assert!(failure.cause.contains(&path), "{file}: {}", failure.cause);
    }
    assert!(
        entities
            .iter()
            .all(|&entity| generation(&app, entity).is_none())
    );
}

/// The first half of a guest: cut inside its core module (most of its
/// bytes), never on a section boundary, where what is left could parse.
fn cut_in_half(guest: &str) -> Vec<u8> {
    let bytes = guest_bytes(guest);
    bytes[..bytes.len() / 2].to_vec()
}

/// Each kind of bad component gets its own loader error.
#[test]
fn the_loader_tells_each_kind_of_bad_component_apart() {
    let engine = WasmEngine::new().unwrap();
    let load = |bytes: &[u8]| WasmModule::from_bytes(&engine, "modules/x.wasm", bytes).err();

    assert!(matches!(
        load(b"hello"),
        Some(WasmModuleLoaderError::NotWasm { .. })
    ));
    assert!(matches!(
        load(&core_module()),
        Some(WasmModuleLoaderError::CoreModule { .. })
    ));
    assert!(matches!(
        load(&cut_in_half("counter")),
        Some(WasmModuleLoaderError::Compile { .. })
    ));
    let no_exports = wat::parse_str("(component)").unwrap();
    assert!(matches!(
        load(&no_exports),
        Some(WasmModuleLoaderError::MissingExport { export, .. }) if export == "init"
    ));
    let unlinked = load(&other_world()).unwrap();
    let WasmModuleLoaderError::UnsatisfiedImport { error, .. } = &unlinked else {
        panic!("expected a link error, got {unlinked}");
    };
    assert!(
        format!("{error:#}").contains("acme:missing/thing"),
        "{error:#}"
    );
    // wasmtime's error is the source, for a game to inspect without parsing text.
    let source = std::error::Error::source(&unlinked).expect("wasmtime's error as the source");
    assert_eq!(source.to_string(), error.to_string());
    let wrong_init = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func (export "init") (canon lift (core func $i "f")))
            (func (export "save-state") (canon lift (core func $i "f")))
            (func (export "restore-state") (canon lift (core func $i "f")))
            (func (export "handle-batch") (canon lift (core func $i "f")))
            (func (export "handle-frame") (canon lift (core func $i "f")))
            (func (export "handle-requests") (canon lift (core func $i "f"))))"#,
    )
    .unwrap();
    assert!(matches!(
        load(&wrong_init),
        Some(WasmModuleLoaderError::ExportMismatch { .. })
    ));
    assert!(load(&guest_bytes("hello")).is_none());
    assert!(load(&script_wat("", ZEROES, SAVES_ABC, "")).is_none());
}

/// A script whose `init` (core function 0) recurses 5 000 calls deep,
/// counting in memory at address 128.
fn deep_init() -> Vec<u8> {
    script_wat(
        "",
        "(i32.store (i32.const 128) (i32.add (i32.load (i32.const 128)) (i32.const 1)))
         (if (i32.lt_u (i32.load (i32.const 128)) (i32.const 5000)) (then (drop (call 0))))
         (i32.const 16)",
        ZEROES,
        "",
    )
}

#[test]
fn the_wasm_stack_limit_is_a_plugin_setting() {
    let start = |max_wasm_stack| {
        let assets = AssetDir::new();
        assets.write("deep.wasm", &deep_init());
        let plugin = HotWasmPlugin {
            sandbox: Sandbox {
                max_wasm_stack,
                ..default()
            },
            ..unsigned_plugin()
        };
        let mut app = app_with(&assets, None, plugin, |_| {});
        let entity = spawn_script(&mut app, "deep.wasm");
        update_until(&mut app, "init to run or fail", |app| {
            generation(app, entity).is_some() || !seen(app).failed.is_empty()
        });
        (generation(&app, entity), seen(&app).failed.clone())
    };

    let (generation, failed) = start(DEFAULT_MAX_WASM_STACK);
    assert_eq!(generation, Some(1), "{failed:?}");

    let (generation, failed) = start(32 * 1024);
    assert_eq!(generation, None);
    assert_eq!(failed[0].stage, FailureStage::Init);
    assert!(failed[0].cause.contains("stack"), "{}", failed[0].cause);
}
