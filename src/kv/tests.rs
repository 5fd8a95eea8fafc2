use super::directory::{decode_key, encode_key};
use super::*;

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

#[test]
fn any_key_becomes_a_portable_file_name_and_back() {
    for key in [
        "player/1",
        "CON",
        "a:b*c?",
        "ünïcode ✓",
        "%41",
        ".hidden",
        "x.y",
    ] {
        let name = encode_key(key);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_%".contains(&b)),
            "{name}"
        );
        assert_eq!(decode_key(&name).as_deref(), Some(key));
    }
    assert_eq!(
        decode_key(".player%2F1.tmp"),
        None,
        "temporary files are not keys"
    );
    assert_eq!(
        decode_key("notes.txt"),
        None,
        "names this store did not write are ignored"
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
