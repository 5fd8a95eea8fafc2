//! `hotwasm:script/watch`: what an instance watches, and which changes
//! match.

use std::collections::BTreeMap;

use bevy::prelude::Entity;

use super::HostState;
use super::bindings::hotwasm::script::watch::{Error, Host};
use crate::kv::{self, KvChanged, KvOrigin};

/// The most watches one instance may hold.
pub const MAX_WATCHES: u32 = 256;

/// An instance's watches, by id (ids grow with creation, so matches come
/// out in creation order).
#[derive(Default)]
pub(crate) struct Watches {
    last_id: u64,
    kv: BTreeMap<u64, KvWatch>,
}

struct KvWatch {
    bucket: String,
    key: KeyPattern,
    skip_own_writes: bool,
}

enum KeyPattern {
    Exact(String),
    Prefix(String),
}

impl Watches {
    fn add_kv(&mut self, watch: KvWatch) -> Result<u64, Error> {
        if self.kv.len() >= MAX_WATCHES as usize {
            return Err(Error::TooManyWatches(MAX_WATCHES));
        }
        self.last_id += 1;
        self.kv.insert(self.last_id, watch);
        Ok(self.last_id)
    }

    fn remove(&mut self, id: u64) -> Result<(), Error> {
        self.kv.remove(&id).map(drop).ok_or(Error::UnknownWatch(id))
    }

    /// Calls `matched` with the id of every watch of `owner`'s that `change`
    /// matches.
    pub fn match_kv(&self, change: &KvChanged, owner: Entity, mut matched: impl FnMut(u64)) {
        for (id, watch) in &self.kv {
            let own = change.origin == KvOrigin::Guest(owner);
            let key_matches = match &watch.key {
                KeyPattern::Exact(key) => *key == change.key,
                KeyPattern::Prefix(prefix) => change.key.starts_with(prefix.as_str()),
            };
            if watch.bucket == change.bucket && key_matches && !(own && watch.skip_own_writes) {
                matched(*id);
            }
        }
    }
}

fn checked_kv_watch(
    bucket: String,
    key: KeyPattern,
    skip_own_writes: bool,
) -> Result<KvWatch, Error> {
    kv::check_bucket(&bucket).map_err(|error| Error::InvalidBucket(error.to_string()))?;
    let key_to_check = match &key {
        KeyPattern::Exact(key) => Some(key),
        KeyPattern::Prefix(prefix) => (!prefix.is_empty()).then_some(prefix),
    };
    if let Some(key) = key_to_check {
        kv::check_key(key).map_err(|error| Error::InvalidKey(error.to_string()))?;
    }
    Ok(KvWatch {
        bucket,
        key,
        skip_own_writes,
    })
}

impl Host for HostState {
    fn watch_key(
        &mut self,
        bucket: String,
        key: String,
        skip_own_writes: bool,
    ) -> Result<u64, Error> {
        let watch = checked_kv_watch(bucket, KeyPattern::Exact(key), skip_own_writes)?;
        self.watches.add_kv(watch)
    }

    fn watch_prefix(
        &mut self,
        bucket: String,
        prefix: String,
        skip_own_writes: bool,
    ) -> Result<u64, Error> {
        let watch = checked_kv_watch(bucket, KeyPattern::Prefix(prefix), skip_own_writes)?;
        self.watches.add_kv(watch)
    }

    fn unwatch(&mut self, id: u64) -> Result<(), Error> {
        self.watches.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(bucket: &str, key: &str, origin: KvOrigin) -> KvChanged {
        KvChanged {
            bucket: bucket.into(),
            key: key.into(),
            value: None,
            origin,
        }
    }

    fn matches(watches: &Watches, change: &KvChanged, owner: Entity) -> Vec<u64> {
        let mut ids = Vec::new();
        watches.match_kv(change, owner, |id| ids.push(id));
        ids
    }

    #[test]
    fn keys_prefixes_and_own_writes() {
        let me = Entity::from_raw_u32(7).unwrap();
        let mut watches = Watches::default();
        let exact = watches
            .add_kv(
                checked_kv_watch("s".into(), KeyPattern::Exact("player/1".into()), false).unwrap(),
            )
            .unwrap();
        let prefix = watches
            .add_kv(
                checked_kv_watch("s".into(), KeyPattern::Prefix("player/".into()), true).unwrap(),
            )
            .unwrap();

        assert_eq!(
            matches(&watches, &change("s", "player/1", KvOrigin::Host), me),
            [exact, prefix]
        );
        assert_eq!(
            matches(&watches, &change("s", "player/2", KvOrigin::External), me),
            [prefix]
        );
        assert!(matches(&watches, &change("s", "team/1", KvOrigin::Host), me).is_empty());
        assert!(matches(&watches, &change("t", "player/1", KvOrigin::Host), me).is_empty());
        // The prefix watch skips this instance's own writes; the exact one does not.
        assert_eq!(
            matches(&watches, &change("s", "player/1", KvOrigin::Guest(me)), me),
            [exact]
        );

        watches.remove(exact).unwrap();
        assert!(matches!(watches.remove(exact), Err(Error::UnknownWatch(id)) if id == exact));
        assert!(matches!(
            checked_kv_watch("..".into(), KeyPattern::Prefix(String::new()), false),
            Err(Error::InvalidBucket(_))
        ));
        assert!(matches!(
            checked_kv_watch("s".into(), KeyPattern::Exact("../x".into()), false),
            Err(Error::InvalidKey(_))
        ));
    }
}
