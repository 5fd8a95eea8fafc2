//! What the runtime costs per frame, next to the same work done by a plain
//! Rust Bevy system in the same app (the floor). Each iteration runs the
//! `Update` schedule, which holds `WasmSystems::Run` (and the plain system),
//! on a single thread: a whole `App::update` of this headless app costs
//! ≈ 0.7 ms of executor and asset bookkeeping on the test machine, which
//! would drown what is measured here.
//!
//! - `frame/*`: a whole `App::update` of `MinimalPlugins` and `AssetPlugin`
//!   with and without the plugin and no scripts (every schedule on one thread);
//!   100 loaded script instances with nothing due, against a
//!   plain system over 100 entities, and an empty `Update` for reference;
//!   100 instances of `drift`, each with the per-frame hook reading and
//!   writing its own entity's `Position` (a typed get and set), against a
//!   plain system moving 100 `Position`s, and the same hooks compiled by
//!   the baseline compiler (Winch) to price its slower code;
//! - `messages/*`: 10 000 messages to one instance in one frame (the guest
//!   counts them), against a plain system reading 10 000 Bevy messages of
//!   the same shape, reported per message.
//! - `events/*`: 10 000 key-value changes in one frame, all matching one
//!   instance's watch, against a plain system reading the same 10 000
//!   `KvChanged` messages; both include the 10 000 `KvStore::set` calls.
//!   And 10 000 changed components of a watched type, against a plain
//!   system finding them with `Changed<T>` and turning each into JSON the
//!   same way (`bevy_reflect`); both include changing them.
//! - `ecs/*`: a guest reading one component through the `ecs` import (1000
//!   reads in one call, reported per read) against a plain system reading it
//!   and encoding it the same way; a guest's typed get and update of one
//!   `Position` (1000 in one call, reported per pair); and a guest summing one field over 1 000,
//!   10 000 and 20 000 entities with `query-field` against a plain system's
//!   query, reported per entity, and the same sum of `Position::x` with a
//!   typed `ecs::query` (pages of JSON rows, each decoded with serde). Each guest case runs twice: granted
//!   everything (the host checks nothing), and `_granted_only_its_types`
//!   (a ceiling naming the component types it uses: the host checks every
//!   use and every entity against the grant), to price capabilities.
//!
//! - `messages/10000_game_messages_*`: the game's own Bevy message
//!   (`EnemyKilled`, registered with `add_script_message`) to a script
//!   subscribed to its type, its encoding both sides included.
//! - `requests/*`: the game asking the `echo` guest a question now
//!   (`ask_script`, typed both ways) against the same postcard round trip
//!   around a plain function, and 1 000 questions a system asks one script
//!   in a frame (`ScriptAsk`, answered as `ScriptAnswered`), per question.
//! - `sandbox/*`: the `events/10000_kv` frame with epoch interruption off,
//!   on (the default) and with fuel instead, to price the sandbox.
//! - `loading/*`: `WasmModule::from_bytes` of the `hello` guest, bytes the
//!   engine has not seen (compiled) against bytes it compiled before (kept);
//!   of the Zig guest `zig_hello` and its Rust twin `counter`, not seen;
//!   and a game's start: a new app with 100 entities, each running its own
//!   distinct version of `hello`, until every one has run `init` (frames
//!   every millisecond meanwhile, as a game's loop goes on while it loads).
//!   At a first start with each compiler (compiled modules written to an
//!   empty cache directory), and at a second start (all found there).
//!
//! ```sh
//! cargo bench --bench runtime
//! ```

use bevy::asset::io::AssetSourceId;
use bevy::ecs::message::Messages;
use bevy::ecs::reflect::AppTypeRegistry;
use bevy::ecs::schedule::SingleThreadedExecutor;
use bevy::prelude::*;
use bevy::reflect::serde::TypedReflectSerializer;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::{Capabilities, CapabilityPolicy, Compilation, Compiler, Sandbox, WasmEngine};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use game_types::{EnemyKilled, Position};
use hotwasm_test_support::*;

const INSTANCES: usize = 100;
const MESSAGES: usize = 10_000;

#[derive(Component, Reflect)]
#[reflect(Component)]
struct Plain(u64);

#[derive(Message)]
struct PlainMessage {
    #[expect(
        dead_code,
        reason = "carried like a script message's topic, never read"
    )]
    topic: String,
    payload: Vec<u8>,
}

#[derive(Resource, Default)]
struct Counted(u64);

/// The test app, its `Update` on one thread.
fn bench_app(assets: &AssetDir) -> App {
    bench_app_with(assets, unsigned_plugin())
}

/// The same with the plugin's settings given.
fn bench_app_with(assets: &AssetDir, plugin: HotWasmPlugin) -> App {
    let mut app = app_with(assets, None, plugin, |_| {});
    app.edit_schedule(Update, |schedule| {
        schedule.set_executor(SingleThreadedExecutor::new());
    });
    app
}

fn with_plain_system(app: &mut App) {
    app.init_resource::<Counted>()
        .add_message::<PlainMessage>()
        .add_systems(
            Update,
            |plain: Query<&Plain>,
             mut messages: MessageReader<PlainMessage>,
             mut counted: ResMut<Counted>| {
                // An idle script's per-frame check, "anything due?", as one field read.
                for plain in &plain {
                    counted.0 += plain.0 & 1;
                }
                for message in messages.read() {
                    counted.0 += message.payload.len() as u64;
                }
            },
        );
}

/// Runs `Update`, then swaps the message buffers of `M` as `First` would.
fn run_update<M: Message>(app: &mut App) {
    app.world_mut().run_schedule(Update);
    app.world_mut().resource_mut::<Messages<M>>().update();
}

/// An app running the `echo` guest on `count` entities, `Update` on one thread.
fn echo_app(count: usize) -> (AssetDir, App, Vec<Entity>) {
    echo_app_granted(count, &Grants::Everything)
}

/// How much the benchmarked guest is granted: everything (the host checks
/// nothing), or only the component types it uses (the host checks each use).
#[derive(Clone, Copy)]
enum Grants {
    Everything,
    ItsTypes,
}

impl Grants {
    const BOTH: [Grants; 2] = [Grants::Everything, Grants::ItsTypes];

    /// Its suffix in a benchmark's name.
    fn suffix(self) -> &'static str {
        match self {
            Grants::Everything => "",
            Grants::ItsTypes => "_granted_only_its_types",
        }
    }

    /// The plugin, with the ceiling for local files this grant needs.
    fn plugin(self) -> HotWasmPlugin {
        let Grants::ItsTypes = self else {
            return unsigned_plugin();
        };
        let (plain, position) = (
            <Plain as TypePath>::type_path(),
            <Position as TypePath>::type_path(),
        );
        let manifest = format!(
            "component.read {plain} {position}\ncomponent.write {position}\nentities *\n\
             messages.send *\nmessages.subscribe *\nkv.read *\nkv.write *\nkv.watch *\ntasks *\nframe"
        );
        let ceiling = Capabilities::parse(&manifest).expect("a manifest");
        HotWasmPlugin {
            capabilities: CapabilityPolicy::new().limit_source(AssetSourceId::Default, ceiling),
            ..unsigned_plugin()
        }
    }
}

/// [`echo_app`] with the guest granted `grants`.
fn echo_app_granted(count: usize, grants: &Grants) -> (AssetDir, App, Vec<Entity>) {
    let (assets, mut app, entities) =
        start_scripts_with("echo.wasm", &guest_bytes("echo"), count, grants.plugin());
    app.edit_schedule(Update, |schedule| {
        schedule.set_executor(SingleThreadedExecutor::new());
    });
    (assets, app, entities)
}

/// Panics if the host refused the script anything or it faulted: a
/// benchmark of refusals would measure the wrong thing.
fn assert_no_refusals(app: &App, script: Entity) {
    let stats = runtime(app).script(script).unwrap().stats();
    assert!(
        stats.denied_host_calls == 0 && stats.faults == 0 && stats.calls > 0,
        "{stats:?}"
    );
}

fn payload() -> Vec<u8> {
    vec![7; 8]
}

fn frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    // A whole `App::update`, as a game runs it.
    for (name, with_plugin) in [("without_plugin", false), ("plugin_no_scripts", true)] {
        group.bench_function(format!("app_update_{name}"), |b| {
            let assets = AssetDir::new();
            let mut app = App::new();
            app.add_plugins((
                MinimalPlugins,
                AssetPlugin {
                    file_path: assets.path().to_string_lossy().into_owned(),
                    ..default()
                },
            ));
            if with_plugin {
                app.add_plugins(unsigned_plugin());
            }
            app.finish();
            app.cleanup();
            // One thread for every schedule: the multi-threaded executor's
            // wake-ups on two cores vary more between runs than what is measured.
            app.update();
            for (_, schedule) in app.world_mut().resource_mut::<Schedules>().iter_mut() {
                schedule.set_executor(SingleThreadedExecutor::new());
            }
            b.iter(|| app.update());
        });
    }
    group.bench_function("empty_update", |b| {
        let assets = AssetDir::new();
        let mut app = bench_app(&assets);
        b.iter(|| run_update::<HostMessage>(&mut app));
    });
    group.bench_function("100_idle_script_instances", |b| {
        let (_assets, mut app, _) = echo_app(INSTANCES);
        b.iter(|| run_update::<HostMessage>(&mut app));
    });
    group.bench_function("plain_rust_system_100_entities", |b| {
        let assets = AssetDir::new();
        let mut app = bench_app(&assets);
        with_plain_system(&mut app);
        for n in 0..INSTANCES {
            app.world_mut().spawn(Plain(n as u64));
        }
        b.iter(|| run_update::<PlainMessage>(&mut app));
    });
    let compilers = [
        ("", Compiler::Optimizing),
        ("_baseline_compiler", Compiler::Baseline),
    ];
    for (suffix, compiler) in compilers {
        group.bench_function(
            format!("100_update_hooks_one_component_each{suffix}"),
            |b| {
                let assets = AssetDir::new();
                assets.write("drift.wasm", &guest_bytes("drift"));
                let plugin = HotWasmPlugin {
                    compilation: Compilation {
                        compiler,
                        ..default()
                    },
                    ..unsigned_plugin()
                };
                let mut app = bench_app_with(&assets, plugin);
                app.register_type::<Position>();
                let drifters: Vec<Entity> = (0..INSTANCES)
                    .map(|_| {
                        let entity = spawn_script(&mut app, "drift.wasm");
                        app.world_mut()
                            .entity_mut(entity)
                            .insert(Position::default());
                        entity
                    })
                    .collect();
                update_until(&mut app, "every drifter to start", |app| {
                    drifters
                        .iter()
                        .all(|&entity| generation(app, entity).is_some())
                });
                let calls = runtime(&app).script(drifters[0]).unwrap().stats().calls;
                b.iter(|| run_update::<HostMessage>(&mut app));
                let stats = runtime(&app).script(drifters[0]).unwrap().stats();
                assert!(stats.calls > calls && stats.faults == 0, "{stats:?}");
            },
        );
    }
    group.bench_function("plain_rust_system_moving_100_positions", |b| {
        let assets = AssetDir::new();
        let mut app = bench_app(&assets);
        app.add_systems(
            Update,
            |time: Res<Time>, mut positions: Query<&mut Position>| {
                for mut position in &mut positions {
                    position.x += 10.0 * time.delta_secs();
                }
            },
        );
        for _ in 0..INSTANCES {
            app.world_mut().spawn(Position::default());
        }
        b.iter(|| run_update::<HostMessage>(&mut app));
    });
    group.finish();
}

fn messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("messages");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("10000_to_one_script_instance", |b| {
        let (_assets, mut app, entities) = echo_app(1);
        b.iter(|| {
            let messages =
                (0..MESSAGES).map(|_| HostMessage::to_entity(entities[0], "count", payload()));
            app.world_mut().write_message_batch(messages);
            run_update::<HostMessage>(&mut app);
        });
    });
    group.bench_function("10000_game_messages_to_one_script_instance", |b| {
        // The game's own Bevy message, read by a script subscribed to its
        // type (`echo` reads `EnemyKilled`; east of 100 it writes none back).
        let (_assets, mut app, _) = echo_app(1);
        app.add_script_message::<EnemyKilled>();
        let at = Position { x: 200.0, y: 0.0 };
        b.iter(|| {
            let killed = (0..MESSAGES).map(|_| EnemyKilled { at });
            app.world_mut().write_message_batch(killed);
            run_update::<EnemyKilled>(&mut app);
        });
    });
    group.bench_function("10000_to_plain_rust_system", |b| {
        let assets = AssetDir::new();
        let mut app = bench_app(&assets);
        with_plain_system(&mut app);
        b.iter(|| {
            let messages = (0..MESSAGES).map(|_| PlainMessage {
                topic: "count".to_owned(),
                payload: payload(),
            });
            app.world_mut().write_message_batch(messages);
            run_update::<PlainMessage>(&mut app);
        });
    });
    group.finish();
}

/// How many questions a system asks one script in a frame, in `requests`.
const ASKS: u64 = 1000;

/// Asks `echo/double` of the entity in it [`ASKS`] times, when it holds one.
#[derive(Resource, Default)]
struct AskEcho(Option<Entity>);

fn ask_echo(asks: ScriptAsk, to: Res<AskEcho>) {
    if let Some(echo) = to.0 {
        for n in 0..ASKS {
            asks.ask(echo, "echo/double", &n).expect("a small request");
        }
    }
}

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("requests");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ask_now_round_trip", |b| {
        let (_assets, mut app, entities) = echo_app(1);
        let world = app.world_mut();
        b.iter(|| {
            let answer: u64 = world
                .ask_script(entities[0], "echo/double", &21u64)
                .unwrap();
            assert_eq!(answer, 42);
        });
    });
    // The host's part alone: every check, but no guest call.
    group.bench_function("ask_now_a_topic_it_does_not_answer", |b| {
        let (_assets, mut app, entities) = echo_app(1);
        let world = app.world_mut();
        b.iter(|| {
            let answer = world.ask_script::<_, u64>(entities[0], "echo/nothing", &21u64);
            assert!(answer.is_err());
        });
    });
    group.bench_function("plain_rust_postcard_round_trip", |b| {
        // The floor: the same encoding both ways around a plain function.
        let double = |bytes: &[u8]| -> Vec<u8> {
            let n: u64 = postcard::from_bytes(bytes).unwrap();
            postcard::to_allocvec(&(n * 2)).unwrap()
        };
        b.iter(|| {
            let request = postcard::to_allocvec(&21u64).unwrap();
            let answer: u64 = postcard::from_bytes(&double(&request)).unwrap();
            assert_eq!(answer, 42);
        });
    });
    group.throughput(Throughput::Elements(ASKS));
    group.bench_function("1000_asked_this_frame_of_one_script", |b| {
        let (_assets, mut app, entities) = echo_app(1);
        app.insert_resource(AskEcho(Some(entities[0])))
            .add_systems(Update, ask_echo.before(WasmSystems::Run));
        b.iter(|| run_update::<ScriptAnswered>(&mut app));
        app.world_mut().run_schedule(Update);
        let answered = app.world().resource::<Messages<ScriptAnswered>>();
        let last = answered.iter_current_update_messages().last();
        assert!(
            last.is_some_and(|answered| answered.result.is_ok()),
            "{last:?}"
        );
    });
    group.finish();
}

fn events(c: &mut Criterion) {
    let mut group = c.benchmark_group("events");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    let keys: Vec<String> = (0..MESSAGES).map(|n| format!("key/{n}")).collect();
    let set_all = |app: &mut App| {
        let mut store = app.world_mut().resource_mut::<KvStore>();
        for key in &keys {
            store.set("bench", key, b"12345678").unwrap();
        }
    };
    group.bench_function("10000_kv_changes_to_one_watching_instance", |b| {
        let (_assets, mut app, _) = echo_app(1);
        b.iter(|| {
            set_all(&mut app);
            run_update::<KvChanged>(&mut app);
        });
    });
    group.bench_function("10000_kv_changes_to_plain_rust_system", |b| {
        let assets = AssetDir::new();
        let mut app = bench_app(&assets);
        app.init_resource::<Counted>().add_systems(
            Update,
            (|mut changes: MessageReader<KvChanged>, mut counted: ResMut<Counted>| {
                for change in changes.read() {
                    if change.bucket == "bench" {
                        counted.0 += 1;
                    }
                }
            })
            .after(WasmSystems::Run),
        );
        b.iter(|| {
            set_all(&mut app);
            run_update::<KvChanged>(&mut app);
        });
    });
    group.bench_function("10000_changed_components_to_one_watching_instance", |b| {
        let (_assets, mut app, entities) = echo_app(1);
        app.register_type::<Plain>()
            .add_systems(Update, bump.before(WasmSystems::Run));
        app.world_mut().spawn_batch((0..MESSAGES as u64).map(Plain));
        let type_path = <Plain as TypePath>::type_path();
        app.world_mut().write_message(HostMessage::to_entity(
            entities[0],
            "count-component",
            type_path,
        ));
        run_update::<HostMessage>(&mut app);
        b.iter(|| run_update::<HostMessage>(&mut app));
    });
    group.bench_function("10000_changed_components_to_plain_rust_system", |b| {
        let assets = AssetDir::new();
        let mut app = bench_app(&assets);
        app.register_type::<Plain>()
            .init_resource::<Counted>()
            .add_systems(
                Update,
                (
                    bump,
                    |changed: Query<&Plain, Changed<Plain>>,
                     registry: Res<AppTypeRegistry>,
                     mut counted: ResMut<Counted>| {
                        let registry = registry.read();
                        for plain in &changed {
                            let json =
                                serde_json::to_vec(&TypedReflectSerializer::new(plain, &registry))
                                    .unwrap();
                            counted.0 += json.len() as u64;
                        }
                    },
                )
                    .chain(),
            );
        app.world_mut().spawn_batch((0..MESSAGES as u64).map(Plain));
        b.iter(|| run_update::<HostMessage>(&mut app));
    });
    group.finish();
}

fn bump(mut plains: Query<&mut Plain>) {
    for mut plain in &mut plains {
        plain.0 += 1;
    }
}

fn ecs(c: &mut Criterion) {
    const READS: u64 = 1000;
    let mut group = c.benchmark_group("ecs");
    group.throughput(Throughput::Elements(READS));
    for grants in Grants::BOTH {
        let name = format!("1000_component_reads_by_a_guest{}", grants.suffix());
        group.bench_function(name, |b| {
            let (_assets, mut app, entities) = echo_app_granted(1, &grants);
            app.register_type::<Plain>();
            let target = app.world_mut().spawn(Plain(42)).id();
            let request = format!(
                "{} {} {READS}",
                target.to_bits(),
                <Plain as TypePath>::type_path()
            );
            b.iter(|| {
                let message =
                    HostMessage::to_entity(entities[0], "read-component", request.clone());
                app.world_mut().write_message(message);
                run_update::<HostMessage>(&mut app);
            });
            assert_no_refusals(&app, entities[0]);
        });
    }
    group.bench_function("1000_component_reads_by_plain_rust_system", |b| {
        let assets = AssetDir::new();
        let mut app = bench_app(&assets);
        let target = app.world_mut().spawn(Plain(42)).id();
        app.register_type::<Plain>()
            .init_resource::<Counted>()
            .add_systems(
                Update,
                move |plains: Query<&Plain>,
                      registry: Res<AppTypeRegistry>,
                      mut counted: ResMut<Counted>| {
                    let registry = registry.read();
                    for _ in 0..READS {
                        let plain = plains.get(target).unwrap();
                        let json =
                            serde_json::to_vec(&TypedReflectSerializer::new(plain, &registry))
                                .unwrap();
                        counted.0 += json.len() as u64;
                    }
                },
            );
        b.iter(|| run_update::<HostMessage>(&mut app));
    });
    for grants in Grants::BOTH {
        let name = format!("1000_typed_get_and_update_by_a_guest{}", grants.suffix());
        group.bench_function(name, |b| {
            let (_assets, mut app, scripts) = echo_app_granted(1, &grants);
            app.register_type::<Position>();
            let target = app.world_mut().spawn(Position::default()).id();
            let request = format!("{} {READS}", target.to_bits());
            b.iter(|| {
                let message = HostMessage::to_entity(scripts[0], "move-position", request.clone());
                app.world_mut().write_message(message);
                run_update::<HostMessage>(&mut app);
            });
            let moved = app.world().get::<Position>(target).unwrap().x;
            assert!(moved >= READS as f32, "moved {moved}");
            assert_no_refusals(&app, scripts[0]);
        });
    }
    for entities in [1_000u64, 10_000, 20_000] {
        group.throughput(Throughput::Elements(entities));
        for grants in Grants::BOTH {
            let name = format!(
                "sum_field_over_{entities}_entities_by_a_guest{}",
                grants.suffix()
            );
            group.bench_function(name, |b| {
                let (_assets, mut app, scripts) = echo_app_granted(1, &grants);
                app.register_type::<Plain>();
                app.world_mut().spawn_batch((0..entities).map(Plain));
                let request = format!("{} 0", <Plain as TypePath>::type_path());
                b.iter(|| {
                    let message = HostMessage::to_entity(scripts[0], "sum-field", request.clone());
                    app.world_mut().write_message(message);
                    run_update::<HostMessage>(&mut app);
                });
                assert_no_refusals(&app, scripts[0]);
            });
        }
        group.bench_function(
            format!("typed_query_over_{entities}_entities_by_a_guest"),
            |b| {
                let (_assets, mut app, scripts) = echo_app_granted(1, &Grants::Everything);
                app.register_type::<Position>();
                app.world_mut().spawn_batch((0..entities).map(|i| Position {
                    x: i as f32,
                    ..default()
                }));
                b.iter(|| {
                    let message = HostMessage::to_entity(scripts[0], "sum-positions", "");
                    app.world_mut().write_message(message);
                    run_update::<HostMessage>(&mut app);
                });
                assert_no_refusals(&app, scripts[0]);
            },
        );
        group.bench_function(
            format!("sum_field_over_{entities}_entities_by_plain_rust_system"),
            |b| {
                let assets = AssetDir::new();
                let mut app = bench_app(&assets);
                app.init_resource::<Counted>().add_systems(
                    Update,
                    |plains: Query<&Plain>, mut counted: ResMut<Counted>| {
                        counted.0 += plains.iter().map(|plain| plain.0).sum::<u64>();
                    },
                );
                app.world_mut().spawn_batch((0..entities).map(Plain));
                b.iter(|| run_update::<HostMessage>(&mut app));
            },
        );
    }
    group.finish();
}

/// The `events/10000_kv` frame under three ways of metering guest code.
fn sandbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("sandbox");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    let keys: Vec<String> = (0..MESSAGES).map(|n| format!("key/{n}")).collect();
    let metering = [
        ("epoch_off", false, false),
        ("epoch_on", true, false),
        ("fuel", false, true),
    ];
    for (name, epoch_interruption, fuel) in metering {
        let sandbox = Sandbox {
            epoch_interruption,
            fuel,
            ..Default::default()
        };
        let assets = AssetDir::new();
        assets.write("echo.wasm", &guest_bytes("echo"));
        let plugin = HotWasmPlugin {
            sandbox,
            ..unsigned_plugin()
        };
        let mut app = app_with(&assets, None, plugin, |_| {});
        let echo = spawn_script(&mut app, "echo.wasm");
        update_until(&mut app, "echo to start", |app| {
            generation(app, echo).is_some()
        });
        app.edit_schedule(Update, |schedule| {
            schedule.set_executor(SingleThreadedExecutor::new());
        });
        group.bench_function(format!("10000_kv_changes_{name}"), |b| {
            b.iter(|| {
                let mut store = app.world_mut().resource_mut::<KvStore>();
                for key in &keys {
                    store.set("bench", key, b"12345678").unwrap();
                }
                run_update::<KvChanged>(&mut app);
            });
        });
    }
    group.finish();
}

/// More versions of `component` than the engine keeps compiled, so each,
/// taken in turn, is new to it.
fn new_versions(component: &[u8]) -> Vec<Vec<u8>> {
    (0..=WasmEngine::COMPILED_KEPT as u8)
        .map(|n| rebuilt(component, n))
        .collect()
}

fn loading(c: &mut Criterion) {
    let mut group = c.benchmark_group("loading");
    group.sample_size(10);
    let engine = WasmEngine::new().unwrap();
    let hello = guest_bytes("hello");
    let versions = new_versions(&hello);
    let mut next = versions.iter().cycle();
    group.bench_function("a_module_not_seen_before", |b| {
        b.iter(|| WasmModule::from_bytes(&engine, "new.wasm", next.next().unwrap()).unwrap());
    });
    // The Zig guest against its Rust twin, each new to the engine.
    for twin in ["zig_hello", "counter"] {
        let versions = new_versions(&guest_bytes(twin));
        let mut next = versions.iter().cycle();
        group.bench_function(format!("{twin}_not_seen_before"), |b| {
            b.iter(|| WasmModule::from_bytes(&engine, "twin.wasm", next.next().unwrap()).unwrap());
        });
    }
    WasmModule::from_bytes(&engine, "hello.wasm", &hello).unwrap();
    group.bench_function("the_same_module_again", |b| {
        b.iter(|| WasmModule::from_bytes(&engine, "again.wasm", &hello).unwrap());
    });

    // A game's start.
    group.throughput(Throughput::Elements(INSTANCES as u64));
    let assets = AssetDir::new();
    for n in 0..INSTANCES {
        assets.write(&format!("hello_{n}.wasm"), &rebuilt(&hello, n as u8));
    }
    let first_starts = [
        ("optimizing", Compiler::Optimizing),
        ("baseline", Compiler::Baseline),
    ];
    for (name, compiler) in first_starts {
        group.bench_function(format!("100_modules_first_start_{name}"), |b| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |cache| start_game(&assets, compiler, cache.path()),
                criterion::BatchSize::PerIteration,
            );
        });
    }
    let cache = tempfile::tempdir().unwrap();
    // Fills the cache.
    drop(start_game(&assets, Compiler::Optimizing, cache.path()));
    group.bench_function("100_modules_second_start", |b| {
        b.iter(|| start_game(&assets, Compiler::Optimizing, cache.path()));
    });
    group.finish();
}

/// Starts a game running each `modules/hello_<n>.wasm` in `assets` on an
/// entity of its own, with `compiler` and compiled modules kept in `cache`,
/// and runs frames until every one has run `init`.
fn start_game(assets: &AssetDir, compiler: Compiler, cache: &std::path::Path) -> App {
    let plugin = HotWasmPlugin {
        compilation: Compilation {
            compiler,
            cache_dir: Some(cache.to_owned()),
        },
        ..unsigned_plugin()
    };
    let mut app = app_with(assets, None, plugin, |_| {});
    let entities: Vec<Entity> = (0..INSTANCES)
        .map(|n| spawn_script(&mut app, &format!("hello_{n}.wasm")))
        .collect();
    while !entities
        .iter()
        .all(|&entity| generation(&app, entity).is_some())
    {
        app.update();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    app
}

/// New instances of a loaded module: how long until 1 000 entities given
/// the `echo` module have each run `init`, and the memory they hold.
fn instances(c: &mut Criterion) {
    const NEW: usize = 1_000;
    let mut group = c.benchmark_group("instances");
    group.sample_size(10);
    group.throughput(Throughput::Elements(NEW as u64));
    let spawn = |app: &mut App| -> Vec<Entity> {
        let entities: Vec<Entity> = (0..NEW).map(|_| spawn_script(app, "echo.wasm")).collect();
        while !entities
            .iter()
            .all(|&entity| generation(app, entity).is_some())
        {
            app.update();
        }
        entities
    };
    // Criterion calls the closure more than once; the memory is measured once.
    let mut memory_measured = false;
    group.bench_function("1000_new_instances_of_a_loaded_module", |b| {
        let (_assets, mut app, _) = echo_app(1);
        // Resident memory: the first thousand, then a second thousand
        // beside them (the first may still be growing the allocator's pools).
        let mut held = Vec::new();
        let rounds = if memory_measured {
            &[][..]
        } else {
            &["first", "second"][..]
        };
        memory_measured = true;
        for round in rounds {
            let before = resident_bytes();
            held.extend(spawn(&mut app));
            let each = resident_bytes().saturating_sub(before) / NEW as u64;
            println!(
                "instances: a {round} {NEW} new instances of echo hold {} KB each",
                each / 1024
            );
        }
        for entity in held {
            app.world_mut().despawn(entity);
        }
        app.update();
        b.iter_custom(|iterations| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iterations {
                let started = std::time::Instant::now();
                let entities = spawn(&mut app);
                spent += started.elapsed();
                for entity in entities {
                    app.world_mut().despawn(entity);
                }
                app.update();
            }
            spent
        });
    });
    group.finish();
}

/// This process's resident memory (Linux's `/proc/self/statm`; 0 elsewhere).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

criterion_group!(
    benches, frame, messages, requests, events, ecs, sandbox, loading, instances
);
criterion_main!(benches);
