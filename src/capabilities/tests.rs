use bevy::asset::io::AssetSourceId;

use super::*;

fn parse(manifest: &str) -> Capabilities {
    Capabilities::parse(manifest).unwrap()
}

#[test]
fn patterns_reach_names_and_prefixes() {
    let caps = parse("component.read my_game::enemy::* my_game::Gold\nkv.write saves/high* tuning");
    assert!(caps.allows(Right::ComponentRead, "my_game::enemy::Health"));
    assert!(caps.allows(Right::ComponentRead, "my_game::Gold"));
    assert!(!caps.allows(Right::ComponentRead, "my_game::Golden"));
    assert!(!caps.allows(Right::ComponentRead, "my_game::enemy"));
    assert!(!caps.allows(Right::ComponentWrite, "my_game::Gold"));
    assert!(caps.allows_key(Right::KvWrite, "saves", "highscore"));
    assert!(!caps.allows_key(Right::KvWrite, "saves", "gold"));
    assert!(!caps.allows_key(Right::KvWrite, "saves2", "highscore"));
    // A bucket alone is the whole bucket, and only that bucket.
    assert!(caps.allows_key(Right::KvWrite, "tuning", "enemy_speed"));
    assert!(!caps.allows_key(Right::KvWrite, "tuning2", "x"));
    assert!(!caps.allows_key(Right::KvRead, "tuning", "enemy_speed"));
}

#[test]
fn a_bucket_is_reached_whole_in_part_or_not_at_all() {
    let caps = parse("kv.read tuning saves/high* sa*\nkv.write saves/high\nkv.atomics *");
    assert_eq!(caps.bucket_reach(Right::KvRead, "tuning"), BucketReach::All);
    assert_eq!(
        caps.bucket_reach(Right::KvRead, "tuning2"),
        BucketReach::None
    );
    // `sa*` reaches every bucket whose name starts with `sa`.
    assert_eq!(caps.bucket_reach(Right::KvRead, "saves"), BucketReach::All);
    assert_eq!(
        caps.bucket_reach(Right::KvWrite, "saves"),
        BucketReach::Some
    );
    assert_eq!(
        caps.bucket_reach(Right::KvWrite, "tuning"),
        BucketReach::None
    );
    assert_eq!(caps.bucket_reach(Right::KvAtomics, "x"), BucketReach::All);
    assert_eq!(caps.bucket_reach(Right::KvWatch, "x"), BucketReach::None);
}

#[test]
fn a_despawn_marker_is_what_a_pattern_reaches_after_marked() {
    let after = |text: &str| {
        let pattern = Pattern::parse(text).unwrap();
        pattern.after("marked:").map(|rest| rest.to_string())
    };
    assert_eq!(
        after("marked:my_game::Enemy").as_deref(),
        Some("my_game::Enemy")
    );
    assert_eq!(after("marked:my_game::*").as_deref(), Some("my_game::*"));
    // A prefix ending before the head reaches every marker.
    assert_eq!(after("mark*").as_deref(), Some("*"));
    assert_eq!(after("*").as_deref(), Some("*"));
    assert_eq!(after("own"), None);
    assert_eq!(after("marked"), None);
}

#[test]
fn a_manifest_reads_back_from_its_own_text() {
    let caps = parse(
        "# comment\ncomponent.write a::* a::B  # a::B is inside a::*\n\
         despawn spawned marked:a::Debris\nentities *\ntasks 4\nframe\n",
    );
    assert_eq!(
        caps.reach(Right::ComponentWrite).len(),
        1,
        "a::B is covered by a::*"
    );
    assert_eq!(caps.tasks(), 4);
    assert!(caps.frame());
    assert_eq!(Capabilities::parse(&caps.to_string()).unwrap(), caps);
    assert_eq!(parse("all").to_string(), "all\n");
    assert!(parse("all").is_all());
    assert_eq!(Capabilities::none().to_string(), "");
}

#[test]
fn bad_manifests_say_which_line_and_why() {
    let error = Capabilities::parse("kv.read saves\ncomponent.raed a::B").unwrap_err();
    assert_eq!(error.line, 2);
    assert!(
        error
            .message
            .starts_with("unknown capability `component.raed`"),
        "{error}"
    );
    for (manifest, why) in [
        ("tasks many", "`tasks` takes a number or `*`, not `many`"),
        ("frame yes", "`frame` takes no values"),
        (
            "component.read",
            "`component.read` names nothing it reaches",
        ),
        ("component.read a::*::B", "`*` may only end a pattern"),
        (
            "entities others",
            "`entities` takes `own`, `spawned` or `*`, not `others`",
        ),
        (
            "despawn everyone",
            "`despawn` takes `own`, `spawned`, `marked:<type path>` or `*`",
        ),
    ] {
        let error = Capabilities::parse(manifest).unwrap_err();
        assert!(error.message.contains(why), "{manifest}: {error}");
    }
}

#[test]
fn the_intersection_is_what_both_allow() {
    let asked = parse("component.write my_game::*\nkv.write saves\ntasks 10\nframe");
    let ceiling = parse("component.write my_game::cosmetic::* other::*\nkv.write saves/k\ntasks 2");
    let both = asked.intersect(&ceiling);
    assert_eq!(
        both,
        parse("component.write my_game::cosmetic::*\nkv.write saves/k\ntasks 2")
    );
    assert_eq!(
        asked.beyond(&both),
        [
            "component.write my_game::*",
            "kv.write saves/*",
            "tasks 10",
            "frame"
        ]
    );
    assert!(both.beyond(&asked).is_empty());
    assert_eq!(asked.intersect(&Capabilities::all()), asked);
    assert_eq!(asked.intersect(&Capabilities::none()), Capabilities::none());
}

#[test]
fn what_a_module_is_granted() {
    let community =
        parse("component.read my_game::cosmetic::*\ncomponent.write my_game::cosmetic::*");
    let policy = CapabilityPolicy::new()
        .limit_key("community", community.clone())
        .limit_source(
            AssetSourceId::from("mods"),
            parse("component.read *\ncomponent.write *"),
        );
    let local = AssetSourceId::Default;
    let mods = AssetSourceId::from("mods");
    let asks_for_gold = parse("component.write my_game::Gold my_game::cosmetic::Hat");

    // The game's own modules: what they ask for, or everything.
    let grant = policy.grant(None, &local, Vouched::Game, None).unwrap();
    assert!(grant.is_everything());
    let grant = policy
        .grant(Some(&asks_for_gold), &local, Vouched::Game, None)
        .unwrap();
    assert_eq!(grant.granted(), &asks_for_gold);

    // A signed module that asks for nothing gets nothing.
    let grant = policy
        .grant(None, &local, Vouched::Signed("release"), None)
        .unwrap();
    assert_eq!(grant.granted(), &Capabilities::none());

    // A community mod asking for the gold gets only the hat, and is told.
    let grant = policy
        .grant(
            Some(&asks_for_gold),
            &mods,
            Vouched::Signed("community"),
            None,
        )
        .unwrap();
    assert_eq!(
        grant.granted(),
        &parse("component.write my_game::cosmetic::Hat")
    );
    assert_eq!(grant.denied_by_ceiling(), ["component.write my_game::Gold"]);
    // Both ceilings apply: the source's allows no spawning.
    let grant = policy
        .grant(
            Some(&parse("spawn *")),
            &mods,
            Vouched::Signed("release"),
            None,
        )
        .unwrap();
    assert_eq!(grant.granted(), &Capabilities::none());
}

#[test]
fn a_meta_file_narrows_and_never_widens() {
    let asked = parse("component.read a::*\nmessages.send hud/*\ntasks 4");
    let narrowed_to = |meta: &Capabilities| {
        CapabilityPolicy::new().grant(
            Some(&asked),
            &AssetSourceId::Default,
            Vouched::Signed("k"),
            Some(meta),
        )
    };
    let narrower = parse("component.read a::B\ntasks 1");
    assert_eq!(narrowed_to(&narrower).unwrap().granted(), &narrower);
    let wider = parse("component.read *\nmessages.send hud/score\ntasks 5\nframe");
    let refused = narrowed_to(&wider).unwrap_err();
    assert_eq!(refused.widening, ["component.read *", "tasks 5", "frame"]);
}

/// `bytes` with a custom section `name` holding `data` appended.
fn with_custom_section(bytes: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(data);
    with_section(bytes, 0, &payload)
}

/// `bytes` with a section `id` holding `payload` appended.
fn with_section(bytes: &[u8], id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.push(id);
    leb(payload.len(), &mut out);
    out.extend_from_slice(payload);
    out
}

/// `value` as unsigned LEB128, appended to `out`.
fn leb(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        out.push(if value == 0 { byte } else { byte | 0x80 });
        if value == 0 {
            break;
        }
    }
}

#[test]
fn sections_are_found_at_the_top_and_in_nested_modules() {
    let core = wat::parse_str("(module (@custom \"hotwasm:capabilities\" \"frame\\n\"))").unwrap();
    assert_eq!(find_section(&core).as_deref(), Some(&b"frame\n"[..]));
    let component = wat::parse_str(
        "(component (core module (@custom \"hotwasm:capabilities\" \"tasks 2\\n\")))",
    )
    .unwrap();
    assert_eq!(find_section(&component).as_deref(), Some(&b"tasks 2\n"[..]));
    let both = with_custom_section(&component, SECTION, b"frame\n");
    // The component's own sections first, then its nested modules'.
    assert_eq!(
        find_section(&both).as_deref(),
        Some(&b"frame\n\ntasks 2\n"[..])
    );
    let found = String::from_utf8(find_section(&both).unwrap()).unwrap();
    assert_eq!(parse(&found), parse("tasks 2\nframe"));
    let unrelated = with_custom_section(&component, "hotwasm:other", b"all");
    assert_eq!(find_section(&unrelated).as_deref(), Some(&b"tasks 2\n"[..]));
    let unterminated = with_custom_section(&component, SECTION, b"frame");
    let unterminated = with_custom_section(&unterminated, SECTION, b"tasks 3");
    let found = String::from_utf8(find_section(&unterminated).unwrap()).unwrap();
    assert_eq!(parse(&found), parse("tasks 3\nframe"), "{found:?}");
    assert_eq!(find_section(&wat::parse_str("(component)").unwrap()), None);
    // Damaged bytes: no panic, whatever came before the damage.
    for cut in 0..both.len() {
        let _ = find_section(&both[..cut]);
    }
    assert_eq!(
        find_section(b"\0asm\x0d\0\x01\0\0\xff\xff\xff\xff\xff"),
        None
    );
}

#[test]
fn damage_in_a_nested_module_hides_only_what_follows_it_there() {
    const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";
    const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
    let frame = with_custom_section(CORE_MODULE, SECTION, b"frame");
    // A malformed section id after its manifest.
    let mut damaged = with_custom_section(CORE_MODULE, SECTION, b"tasks 1");
    damaged.push(0xff);
    let component = with_section(COMPONENT, 1, &frame);
    let component = with_section(&component, 1, &damaged);
    let component = with_custom_section(&component, SECTION, b"spawn *");
    // The component's own section, then its modules, the last one first.
    assert_eq!(
        find_section(&component).as_deref(),
        Some(&b"spawn *\ntasks 1\nframe"[..])
    );
    // Bytes that are not Wasm hold no section.
    assert_eq!(find_section(b"not wasm, though long enough"), None);
}
