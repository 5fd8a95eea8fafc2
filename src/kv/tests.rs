use super::directory::{DirectoryBackend, RECENT_DELETES};
use super::names::{decode, encode};
use super::*;
use crate::files::synced;

/// Both backends, for the tests every backend must pass.
fn stores() -> Vec<(&'static str, KvStore, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let on_disk = KvStore::open_dir(dir.path()).unwrap();
    vec![
        ("memory", KvStore::in_memory(), None),
        ("directory", on_disk, Some(dir)),
    ]
}

#[test]
fn values_are_set_read_and_deleted() {
    for (name, mut store, _dir) in stores() {
        assert_eq!(store.get("scores", "player/1").unwrap(), None, "{name}");
        store.set("scores", "player/1", b"10").unwrap();
        assert_eq!(
            store.get("scores", "player/1").unwrap().as_deref(),
            Some(&b"10"[..]),
            "{name}"
        );
        assert!(store.exists("scores", "player/1").unwrap(), "{name}");
        store.delete("scores", "player/1").unwrap();
        store.delete("scores", "player/1").unwrap();
        assert!(!store.exists("scores", "player/1").unwrap(), "{name}");
        let changes: Vec<_> = store
            .take_changes()
            .into_iter()
            .map(|c| (c.key, c.value))
            .collect();
        assert_eq!(
            changes,
            [
                ("player/1".to_string(), Some(b"10".to_vec())),
                ("player/1".to_string(), None)
            ],
            "{name}: a delete of nothing is no change"
        );
    }
}

#[test]
fn keys_come_in_sorted_pages() {
    for (name, mut store, _dir) in stores() {
        let count = KEYS_PER_PAGE + KEYS_PER_PAGE / 2;
        for n in 0..count {
            store.set("big", &format!("key-{n:05}"), b"x").unwrap();
        }
        let first = store.list_keys("big", None).unwrap();
        assert_eq!(first.keys.len(), KEYS_PER_PAGE, "{name}");
        assert_eq!(first.keys[0], "key-00000", "{name}");
        let second = store.list_keys("big", first.cursor).unwrap();
        assert_eq!(second.keys.len(), count - KEYS_PER_PAGE, "{name}");
        assert_eq!(second.cursor, None, "{name}");
        assert_eq!(
            second.keys.last().unwrap(),
            &format!("key-{:05}", count - 1),
            "{name}"
        );
        assert!(
            store.list_keys("empty", None).unwrap().keys.is_empty(),
            "{name}"
        );
    }
}

#[test]
fn increment_and_compare_and_swap_are_atomic_to_the_game() {
    for (name, mut store, _dir) in stores() {
        assert_eq!(store.increment("c", "hits", 5).unwrap(), 5, "{name}");
        assert_eq!(store.increment("c", "hits", -2).unwrap(), 3, "{name}");
        assert_eq!(
            store.get("c", "hits").unwrap().as_deref(),
            Some(&b"3"[..]),
            "{name}"
        );
        store.set("c", "text", b"hello").unwrap();
        assert!(
            matches!(
                store.increment("c", "text", 1),
                Err(KvError::NotANumber { .. })
            ),
            "{name}"
        );
        store
            .set("c", "max", i64::MAX.to_string().as_bytes())
            .unwrap();
        assert!(
            matches!(
                store.increment("c", "max", 1),
                Err(KvError::Overflow { .. })
            ),
            "{name}"
        );

        assert!(
            store.compare_and_swap("c", "lock", None, b"me").unwrap(),
            "{name}"
        );
        assert!(
            !store.compare_and_swap("c", "lock", None, b"you").unwrap(),
            "{name}"
        );
        assert!(
            !store
                .compare_and_swap("c", "lock", Some(b"you"), b"you")
                .unwrap(),
            "{name}"
        );
        assert!(
            store
                .compare_and_swap("c", "lock", Some(b"me"), b"you")
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            store.get("c", "lock").unwrap().as_deref(),
            Some(&b"you"[..]),
            "{name}"
        );
    }
}

#[test]
fn limits_and_escapes_are_refused_and_nothing_is_written() {
    for (name, mut store, dir) in stores() {
        for key in ["../escape", "a/../../b", "./x", "a\\b", "nul\0byte", ""] {
            assert!(
                matches!(store.set("b", key, b"x"), Err(KvError::InvalidKey { .. })),
                "{name}: {key:?}"
            );
        }
        for bucket in ["..", ".", "a/b", "", "with space", "ü"] {
            assert!(
                matches!(
                    store.set(bucket, "k", b"x"),
                    Err(KvError::InvalidBucket { .. })
                ),
                "{name}: {bucket:?}"
            );
        }
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(
            matches!(
                store.set("b", &long_key, b"x"),
                Err(KvError::KeyTooLong { .. })
            ),
            "{name}"
        );
        let big = vec![0; MAX_VALUE_BYTES + 1];
        assert!(
            matches!(
                store.set("b", "k", &big),
                Err(KvError::ValueTooLarge { .. })
            ),
            "{name}"
        );
        for n in 0..MAX_BUCKETS {
            store.set(&format!("bucket{n}"), "k", b"x").unwrap();
        }
        assert!(
            matches!(
                store.set("one-more", "k", b"x"),
                Err(KvError::TooManyBuckets { .. })
            ),
            "{name}"
        );
        if let Some(dir) = dir {
            // Only the buckets: nothing escaped, no temporary file stayed.
            let root = dir.path();
            let parent_entries = fs_names(root.parent().unwrap());
            assert!(!parent_entries.contains(&"escape".to_string()));
            assert_eq!(fs_names(root).len(), MAX_BUCKETS);
            assert_eq!(fs_names(&root.join("bucket0")), ["k"]);
        }
    }
}

fn fs_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether `name` is a file name every desktop filesystem keeps as it is:
/// the encoding's alphabet, no trailing dot or space, not a Windows device.
fn portable(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let device = ["con", "prn", "aux", "nul"].contains(&lower.as_str())
        || (lower.len() == 4
            && (lower.starts_with("com") || lower.starts_with("lpt"))
            && lower.as_bytes()[3].is_ascii_digit());
    let alphabet = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_%ABCDEF".contains(&b));
    alphabet && !device && !name.ends_with(['.', ' '])
}

/// Keys of one or two characters from an alphabet of both cases, digits,
/// punctuation and non-ASCII, and longer pseudo-random ones.
fn generated_keys() -> Vec<String> {
    let alphabet: Vec<char> = "aAbBzZ019-_./ %:~éÉ✓".chars().collect();
    let mut keys: Vec<String> = alphabet.iter().map(char::to_string).collect();
    for first in &alphabet {
        for second in &alphabet {
            keys.push(format!("{first}{second}"));
        }
    }
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let len = 1 + (seed >> 60) as usize;
        let key: String = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                alphabet[(seed >> 33) as usize % alphabet.len()]
            })
            .collect();
        keys.push(key);
    }
    for device in [
        "CON", "con", "Nul", "aux", "PRN", "com1", "COM9", "lpt0", "a..", "...",
    ] {
        keys.push(device.to_owned());
    }
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn names_stay_apart_ignoring_case_and_are_portable_everywhere() {
    let keys = generated_keys();
    let mut folded = std::collections::HashMap::new();
    for key in &keys {
        let name = encode(key);
        assert!(portable(&name), "{key:?} → {name:?}");
        assert_eq!(decode(&name).as_ref(), Some(key), "{name:?}");
        if let Some(other) = folded.insert(name.to_ascii_lowercase(), key) {
            panic!("{other:?} and {key:?} are one file where case is ignored: {name:?}");
        }
    }
    assert!(keys.len() > 10_000, "{} keys", keys.len());
    assert_eq!(encode("A"), "%41");
    assert_eq!(
        encode("nul"),
        "%6Eul",
        "a device name's first letter escaped"
    );
    assert_eq!(encode("a.."), "a%2E%2E", "no trailing dots");
    assert_eq!(encode("player_1"), "player_1", "plain names stay readable");
    for foreign in [".player%2F1.tmp", "notes.txt", "Player", "nul", "%6eul"] {
        assert_eq!(
            decode(foreign),
            None,
            "{foreign:?} is no name this store writes"
        );
    }
}

#[test]
fn a_store_in_the_old_encoding_is_renamed_once_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |path: &str, bytes: &[u8]| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    // Old names: upper case and `.` kept in bucket names, upper case in keys.
    write("Scores/Player%2F1", b"10");
    write("tuning/enemy_speed", b"90");
    write("v1.2/CON", b"x");
    write("tuning/notes.txt", b"not a key");
    let store = KvStore::open_dir(root).unwrap();
    assert_eq!(
        store.get("Scores", "Player/1").unwrap(),
        Some(b"10".to_vec())
    );
    assert_eq!(
        store.get("tuning", "enemy_speed").unwrap(),
        Some(b"90".to_vec())
    );
    assert_eq!(store.get("v1.2", "CON").unwrap(), Some(b"x".to_vec()));
    assert_eq!(fs_names(root), ["%53cores", "tuning", "v1%2E2"]);
    assert_eq!(fs_names(&root.join("%53cores")), ["%50layer%2F1"]);
    assert_eq!(fs_names(&root.join("tuning")), ["enemy_speed", "notes.txt"]);
    assert_eq!(fs_names(&root.join("v1%2E2")), ["%43%4F%4E"]);
    drop(store);
    let again = KvStore::open_dir(root).unwrap();
    assert_eq!(again.list_keys("Scores", None).unwrap().keys, ["Player/1"]);
}

#[test]
fn deletes_and_new_buckets_are_made_durable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("saves").join("game");
    synced::take();
    let mut store = KvStore::open_dir(&root).unwrap();
    assert_eq!(
        synced::take(),
        [dir.path().to_owned(), dir.path().join("saves")],
        "each new directory, in its parent"
    );
    store.set("scores", "high", b"1").unwrap();
    assert_eq!(
        synced::take(),
        [root.clone(), root.join("scores")],
        "the new bucket in the root, then the renamed value in the bucket"
    );
    store.delete("scores", "high").unwrap();
    assert_eq!(synced::take(), [root.join("scores")], "the delete");
    store.delete("scores", "high").unwrap();
    assert_eq!(
        synced::take(),
        Vec::<std::path::PathBuf>::new(),
        "nothing deleted"
    );
}

#[test]
fn set_and_delete_cycles_leave_the_bookkeeping_flat() {
    // In memory where there is a tmpfs: 200 000 synced file operations on a
    // disk take minutes, and what is counted here is the same.
    let shm = std::path::Path::new("/dev/shm");
    let dir = match shm.is_dir() {
        true => tempfile::tempdir_in(shm),
        false => tempfile::tempdir(),
    }
    .unwrap();
    let mut backend = DirectoryBackend::open(dir.path()).unwrap();
    let mut changes = Vec::new();
    for n in 0..100_000 {
        let key = format!("key-{n}");
        backend.set("churn", &key, b"x").unwrap();
        backend.delete("churn", &key).unwrap();
        if n % 1000 == 0 {
            // What the store does each frame: the watcher's echoes.
            backend.external_changes(&mut changes);
        }
    }
    backend.external_changes(&mut changes);
    assert!(
        backend.bookkeeping_len() <= 2 * RECENT_DELETES,
        "{} entries after 100 000 keys came and went",
        backend.bookkeeping_len()
    );
}

#[test]
fn a_directory_store_keeps_its_values_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = KvStore::open_dir(dir.path()).unwrap();
        store.set("save", "level", b"3").unwrap();
        store.set("save", "name/with/slashes", b"ok").unwrap();
    }
    let store = KvStore::open_dir(dir.path()).unwrap();
    assert_eq!(
        store.get("save", "level").unwrap().as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(
        store.list_keys("save", None).unwrap().keys,
        ["level", "name/with/slashes"]
    );
}

#[test]
fn the_store_refuses_writes_past_its_ceiling_whoever_writes() {
    for (name, store, _dir) in stores() {
        let mut store = store.with_max_bytes(100);
        store.set("b", "one", &[0; 60]).unwrap();
        store.set("b", "two", &[0; 40]).unwrap();
        assert_eq!(store.used_bytes(), 100, "{name}");
        let full = store
            .by(KvOrigin::Tool)
            .set("b", "three", &[0; 1])
            .unwrap_err();
        assert!(
            matches!(full, KvError::StoreFull { max: 100, .. }),
            "{name}: {full}"
        );
        assert_eq!(store.get("b", "three").unwrap(), None, "{name}");
        store.set("b", "one", &[0; 10]).unwrap();
        store.set("b", "three", &[0; 50]).unwrap();
        store.delete("b", "two").unwrap();
        assert_eq!(store.used_bytes(), 60, "{name}");
    }
}

#[test]
fn a_reopened_directory_store_knows_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = KvStore::open_dir(dir.path()).unwrap();
        store.set("a", "x", &[1; 300]).unwrap();
        store.set("b", "y", &[1; 20]).unwrap();
    }
    let store = KvStore::open_dir(dir.path()).unwrap();
    assert_eq!(store.used_bytes(), 320);
}

#[test]
fn a_modules_keys_count_against_its_totals_until_someone_else_takes_them() {
    let mut store = KvStore::in_memory();
    let writer = |module: &str| Writer {
        module: module.into(),
        limits: crate::sandbox::GuestLimits {
            max_kv_keys_per_bucket: 2,
            max_kv_bytes: 10,
            ..Default::default()
        },
    };
    let write = |store: &mut KvStore, module: &str, bucket: &str, key: &str, value: &[u8]| {
        store.written_by(writer(module), |store| {
            store.by(KvOrigin::Tool).set(bucket, key, value)
        })
    };
    write(&mut store, "a.wasm", "b", "1", b"x").unwrap();
    write(&mut store, "a.wasm", "b", "2", b"x").unwrap();
    let refused = write(&mut store, "a.wasm", "b", "3", b"x").unwrap_err();
    assert_eq!(
        refused.to_string(),
        "module a.wasm writing b/3 would keep more than 2 keys in one bucket \
         (GuestLimits::max_kv_keys_per_bucket)"
    );
    write(&mut store, "a.wasm", "b", "1", b"xyz").unwrap();
    write(&mut store, "a.wasm", "c", "1", b"x").unwrap();
    write(&mut store, "other.wasm", "b", "3", b"x").unwrap();
    let too_big = write(&mut store, "a.wasm", "c", "2", &[0; 6]).unwrap_err();
    assert!(too_big.to_string().contains("10 bytes in all"), "{too_big}");
    assert_eq!(store.kept_by("a.wasm"), KvUsage { keys: 3, bytes: 5 });

    // The game writes over one of its keys and deletes another.
    store.set("b", "1", b"host").unwrap();
    store.delete("b", "2").unwrap();
    assert_eq!(store.kept_by("a.wasm"), KvUsage { keys: 1, bytes: 1 });
    write(&mut store, "a.wasm", "b", "4", b"x").unwrap();
    write(&mut store, "a.wasm", "b", "5", b"x").unwrap();
}

#[test]
fn writes_that_do_not_land_leave_no_bucket_behind() {
    for (name, mut store, _dir) in stores() {
        store.set("kept", "key", b"x").unwrap();
        for n in 0..100 {
            let bucket = format!("never-{n}");
            let swapped = store.compare_and_swap(&bucket, "key", Some(b"x"), b"y");
            assert!(!swapped.unwrap(), "{name}: nothing to swap");
        }
        assert_eq!(store.buckets().collect::<Vec<_>>(), ["kept"], "{name}");
        // The room is still there for buckets that do get written.
        store.set("later", "key", b"x").unwrap();
        assert_eq!(store.buckets().count(), 2, "{name}");
    }
}
