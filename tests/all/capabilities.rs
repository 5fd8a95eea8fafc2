//! Per-module capabilities: a module asks for what it needs in its own
//! bytes, the game's ceilings and a `.wasm.meta` can only take away, and
//! every host import refuses what was not granted with an error naming
//! the capability, leaving the game as it was.

use bevy::asset::io::AssetSourceId;
use bevy::prelude::*;
use bevy_hotwasm::capabilities;
use bevy_hotwasm::prelude::*;
use bevy_hotwasm::trust::{Signatures, sign_module};
use bevy_hotwasm::{Capabilities, CapabilityPolicy, FailureStage, KvStore, ModuleStatus};
use ed25519_dalek::SigningKey;
use game_types::{Boost, Health, Position};
use hotwasm_test_support::*;

/// What the narrow intruder is allowed, and does.
const ALLOWED: [&str; 4] = [
    "read own Position: ok",
    "write own Position: ok",
    "write intruder/note: ok",
    "send intruder/hello: ok",
];

const UNTOUCHED_BOOST: Boost = Boost {
    fire_rate: 1.0,
    secs_left: 0.0,
};

const UNTOUCHED_HEALTH: Health = Health {
    hp: 10,
    shield: None,
};

/// An app with the intruder's types and a game to reach for: a `Boost`,
/// and the victim, an entity the intruder did not spawn, named in
/// `tuning/victim`.
fn game(assets: &AssetDir, plugin: HotWasmPlugin) -> (App, Entity) {
    let mut app = game_with_fake_watcher(assets, plugin, |app| {
        app.register_type::<Position>()
            .register_type::<Health>()
            .register_type::<Boost>()
            .insert_resource(UNTOUCHED_BOOST);
    });
    let victim = app.world_mut().spawn(UNTOUCHED_HEALTH).id();
    let mut store = app.world_mut().resource_mut::<KvStore>();
    store
        .set("tuning", "victim", victim.to_bits().to_string().as_bytes())
        .unwrap();
    (app, victim)
}

/// Runs `modules/intruder.wasm` on an entity with a `Position` and a
/// `Health`, until it has logged its last attempt or failed to load.
fn run_intruder(app: &mut App) -> Entity {
    let handle = app
        .world()
        .resource::<AssetServer>()
        .load("modules/intruder.wasm");
    let entity = (app.world_mut())
        .spawn((WasmScript(handle), Position::default(), UNTOUCHED_HEALTH))
        .id();
    update_until(app, "the intruder's attempts or a failure", |app| {
        attempts(app, entity)
            .iter()
            .any(|line| line.starts_with("every frame"))
            || !seen(app).failed.is_empty()
    });
    entity
}

/// A game running `modules/intruder.wasm`, built from the guest `guest`,
/// after its attempts: the assets, the app, the intruder and the victim.
fn intruder_in_game(guest: &str, plugin: HotWasmPlugin) -> (AssetDir, App, Entity, Entity) {
    let assets = AssetDir::new();
    assets.write("intruder.wasm", &guest_bytes(guest));
    let (mut app, victim) = game(&assets, plugin);
    let intruder = run_intruder(&mut app);
    (assets, app, intruder, victim)
}

/// What the running module was granted.
fn granted(app: &App) -> &Capabilities {
    module_status(app).capabilities().expect("loaded").granted()
}

/// What the intruder logged about its attempts.
fn attempts(app: &App, entity: Entity) -> Vec<String> {
    seen(app)
        .lines_of(entity)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn module_status(app: &App) -> &ModuleStatus {
    let mut modules = runtime(app).modules();
    let found = modules.find(|(_, module)| module.path() == "modules/intruder.wasm");
    found.expect("the intruder's module").1
}

/// The game as it was before the intruder ran, but for what it may change.
fn assert_untouched(app: &mut App, intruder: Entity, victim: Entity) {
    let world = app.world_mut();
    assert_eq!(world.get::<Health>(intruder), Some(&UNTOUCHED_HEALTH));
    assert_eq!(
        world.get::<Health>(victim),
        Some(&UNTOUCHED_HEALTH),
        "alive"
    );
    assert_eq!(*world.resource::<Boost>(), UNTOUCHED_BOOST);
    let healths = world.query::<&Health>().iter(world).count();
    assert_eq!(healths, 2, "nothing spawned");
    let store = world.resource::<KvStore>();
    assert_eq!(store.get("saves", "gold").unwrap(), None);
    assert_eq!(
        store.get("intruder", "note").unwrap().as_deref(),
        Some(&b"hi"[..])
    );
    let sent: Vec<&str> = (seen(app).sent.iter())
        .map(|message| message.topic.as_str())
        .collect();
    assert_eq!(sent, ["intruder/hello"]);
}

fn denied_lines(victim: Entity) -> Vec<String> {
    [
        "read own Health: denied: component.read game_types::Health".to_owned(),
        "remove own Health: denied: component.write game_types::Health".to_owned(),
        "write own Health: denied: component.write game_types::Health".to_owned(),
        "watch Health: denied: component.watch game_types::Health".to_owned(),
        "read Boost: denied: resource.read game_types::Boost".to_owned(),
        "write Boost: denied: resource.write game_types::Boost".to_owned(),
        "watch Boost: denied: resource.watch game_types::Boost".to_owned(),
        "spawn Health: denied: spawn".to_owned(),
        format!("despawn victim: denied: despawn {victim}"),
        // `wasi:keyvalue`'s `access-denied` carries no message.
        "write saves/gold: key-value access denied".to_owned(),
        "send game/gold: denied: messages.send game/gold".to_owned(),
        "subscribe game/gold: denied: messages.subscribe game/gold".to_owned(),
        "answer game/gold: denied: requests.answer game/gold".to_owned(),
        "write EnemyKilled: denied: game-message.write game_types::EnemyKilled".to_owned(),
        "task 1: ok".to_owned(),
        "task 2: ok".to_owned(),
        "task 3: denied: tasks 3 (granted 2, 2 pending)".to_owned(),
        "every frame: denied: frame".to_owned(),
    ]
    .into()
}

#[test]
fn a_guest_gets_an_error_for_each_thing_it_was_not_granted_and_the_game_is_unchanged() {
    let (_assets, mut app, intruder, victim) = intruder_in_game("intruder", unsigned_plugin());

    let mut expected: Vec<String> = ALLOWED.map(str::to_owned).into();
    expected.extend(denied_lines(victim));
    assert_eq!(attempts(&app, intruder), expected);
    assert_untouched(&mut app, intruder, victim);
    let stats = runtime(&app).script(intruder).unwrap().stats();
    assert_eq!(stats.denied_host_calls, 16, "every refusal counted");
    assert_eq!(granted(&app).tasks(), 2);
    let grant = module_status(&app).capabilities().expect("loaded");
    assert!(grant.denied_by_ceiling().is_empty(), "no ceiling");
}

#[test]
fn the_same_guest_asking_for_more_is_granted_it() {
    let (_assets, mut app, intruder, victim) =
        intruder_in_game("intruder_granted", unsigned_plugin());

    for line in attempts(&app, intruder) {
        assert!(line.ends_with(": ok"), "{line}");
    }
    assert_eq!(attempts(&app, intruder).len(), ALLOWED.len() + 18);
    let world = app.world_mut();
    assert!(world.get_entity(victim).is_err(), "despawned");
    assert_eq!(world.resource::<Boost>().fire_rate, 99.0);
    assert_eq!(world.get::<Health>(intruder).unwrap().hp, 1);
    let store = world.resource::<KvStore>();
    assert_eq!(
        store.get("saves", "gold").unwrap().as_deref(),
        Some(&b"1000000"[..])
    );
}

#[test]
fn a_ceiling_takes_away_what_a_module_asks_beyond_it() {
    // What the narrow intruder asks for, as the game's ceiling for local files.
    let narrow = guest_bytes("intruder");
    let narrow = String::from_utf8(capabilities::find_section(&narrow).unwrap()).unwrap();
    let ceiling = Capabilities::parse(&narrow).unwrap();
    let plugin = HotWasmPlugin {
        capabilities: CapabilityPolicy::new().limit_source(AssetSourceId::Default, ceiling),
        ..unsigned_plugin()
    };
    let (_assets, mut app, intruder, victim) = intruder_in_game("intruder_granted", plugin);

    let lines = attempts(&app, intruder);
    assert_eq!(lines[ALLOWED.len()..], denied_lines(victim)[..]);
    assert_untouched(&mut app, intruder, victim);
    let grant = module_status(&app).capabilities().unwrap();
    assert!(
        (grant.denied_by_ceiling().iter()).any(|line| line == "resource.write game_types::Boost"),
        "{:?}",
        grant.denied_by_ceiling()
    );
    assert!(grant.requested().frame() && !grant.granted().frame());
}

#[test]
fn what_a_signed_module_asks_for_cannot_change_without_signing_it_again() {
    let assets = AssetDir::new();
    let key = SigningKey::from_bytes(&[7; 32]);
    let original = guest_bytes("intruder");
    assets.write("intruder.wasm.sig", sign_module(&key, &original).as_bytes());
    assets.write("intruder.wasm", &original);
    let trusted = TrustedKey::from_bytes(key.verifying_key().as_bytes()).unwrap();
    let plugin = HotWasmPlugin {
        trust: TrustPolicy::new()
            .with_key("modder", trusted)
            .with_signatures(AssetSourceId::Default, Signatures::Required),
        ..default()
    };
    let (mut app, _) = game(&assets, plugin);
    let intruder = run_intruder(&mut app);
    assert_eq!(generation(&app, intruder), Some(1));
    assert_eq!(granted(&app).tasks(), 2);

    // Its own request widened in place, its signature kept: refused.
    // The last copy is the section's: the text is in the data section too.
    let position = (original.windows(7))
        .rposition(|window| window == b"tasks 2")
        .expect("the manifest in the module");
    let mut widened = original.clone();
    widened[position..position + 7].copy_from_slice(b"tasks 9");
    assert!(
        String::from_utf8(capabilities::find_section(&widened).unwrap())
            .unwrap()
            .contains("tasks 9")
    );
    assets.save(&app, "intruder.wasm", &widened);
    update_until(&mut app, "the refusal", |app| !seen(app).refused.is_empty());
    run_frames(&mut app, 5);
    assert_eq!(generation(&app, intruder), Some(1), "the old one runs on");
    assert_eq!(granted(&app).tasks(), 2);
}

#[test]
fn a_meta_file_may_narrow_a_grant_but_not_widen_it() {
    let meta = |capabilities: &str| {
        format!(
            r#"(
    meta_format_version: "1.0",
    asset: Load(
        loader: "bevy_hotwasm::asset::WasmModuleLoader",
        settings: (capabilities: Some({capabilities:?})),
    ),
)"#
        )
    };
    let assets = AssetDir::new();
    assets.write("intruder.wasm", &guest_bytes("intruder"));
    assets.write("intruder.wasm.meta", meta("all").as_bytes());
    let (mut app, _) = game(&assets, unsigned_plugin());
    run_intruder(&mut app);
    let failed = &seen(&app).failed[0];
    assert_eq!(failed.stage, FailureStage::Verify);
    assert!(
        failed.cause.contains("may only narrow")
            && failed.cause.contains("resource.read *")
            && failed.cause.contains("frame"),
        "{}",
        failed.cause
    );

    let assets = AssetDir::new();
    assets.write("intruder.wasm", &guest_bytes("intruder"));
    let narrower = "component.read game_types::Position\nkv.read tuning\ntasks 2";
    assets.write("intruder.wasm.meta", meta(narrower).as_bytes());
    let (mut app, _) = game(&assets, unsigned_plugin());
    let intruder = run_intruder(&mut app);
    let lines = attempts(&app, intruder);
    assert_eq!(lines[0], "read own Position: ok");
    assert_eq!(
        lines[1],
        "write own Position: denied: component.write game_types::Position"
    );
}

#[test]
fn a_reload_changes_the_grant_and_an_unreadable_manifest_keeps_the_old_generation() {
    let (assets, mut app, intruder, victim) = intruder_in_game("intruder", unsigned_plugin());
    assert!(app.world().get_entity(victim).is_ok());

    // A manifest with a misspelt capability: a load error naming it.
    let misspelt = with_section(&guest_bytes("intruder"), b"component.raed game_types::*\n");
    assets.save(&app, "intruder.wasm", &misspelt);
    update_until(&mut app, "the failure", |app| !seen(app).failed.is_empty());
    let cause = &seen(&app).failed[0].cause;
    assert!(
        cause.contains("unknown capability `component.raed`")
            && cause.contains("modules/intruder.wasm"),
        "{cause}"
    );
    run_frames(&mut app, 3);
    assert_eq!(generation(&app, intruder), Some(1));

    // The granted build: its new generation may do all it tries.
    assets.save(&app, "intruder.wasm", &guest_bytes("intruder_granted"));
    update_until(&mut app, "the new generation", |app| {
        generation(app, intruder) == Some(3)
    });
    assert!(
        app.world().get_entity(victim).is_err(),
        "despawned by generation 3"
    );
    assert!(granted(&app).frame());
}

/// `component` with a `hotwasm:capabilities` section holding `manifest`
/// appended: read together with the one inside it.
fn with_section(component: &[u8], manifest: &[u8]) -> Vec<u8> {
    let name = capabilities::SECTION.as_bytes();
    let mut payload = vec![name.len() as u8];
    payload.extend(name);
    payload.extend(manifest);
    let mut bytes = component.to_vec();
    // Custom section: id 0, then its size; sizes here fit one LEB128 byte.
    assert!(payload.len() < 128);
    bytes.extend([0, payload.len() as u8]);
    bytes.extend(payload);
    bytes
}
