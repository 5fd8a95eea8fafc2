//! What a module may touch.
//!
//! A module asks for its capabilities in its own bytes, a
//! `hotwasm:capabilities` custom section, so the signature over those bytes
//! covers the request and a mod cannot widen it after signing. The game sets
//! a ceiling per asset source and per signing key ([`CapabilityPolicy`]); a
//! `.wasm.meta` may narrow what is left, never widen it. The grant is what
//! all of them allow, and the host checks it in every import.
//!
//! [`Capabilities`] and [`CapabilityPolicy`] are also at the crate root;
//! here are the rest: each [`Right`] and its [`Pattern`]s, what a module was
//! granted ([`Grant`]), the manifest's errors ([`ManifestError`],
//! [`NarrowingError`]), who vouches for a module ([`Vouched`]), and the
//! section itself ([`SECTION`], [`find_section`]) for tools that read it.
//!
//! The manifest's grammar is in `manifest`, the ceilings and narrowing in
//! `policy`, and finding the section in a module's bytes in `section`.

mod manifest;
mod policy;
mod section;

use std::collections::BTreeMap;
use std::fmt;

pub use self::manifest::ManifestError;
pub use self::policy::{CapabilityPolicy, NarrowingError, Vouched};
pub use self::section::{SECTION, find_section};

/// A capability that names what it reaches with patterns: type paths,
/// entities, buckets and keys, or topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Right {
    /// `component.read`: read components of these types (`ecs`).
    ComponentRead,
    /// `component.write`: write components of these types.
    ComponentWrite,
    /// `component.watch`: watch components of these types change, on every
    /// entity (events are not limited to the `entities` scope).
    ComponentWatch,
    /// `resource.read`: read these resources.
    ResourceRead,
    /// `resource.write`: write these resources.
    ResourceWrite,
    /// `resource.watch`: watch these resources change.
    ResourceWatch,
    /// `entities`: whose components it may read and write: `own` (its own
    /// entity), `spawned` (entities it spawned), or `*`.
    Entities,
    /// `spawn`: spawn entities, with components of these types only.
    Spawn,
    /// `despawn`: despawn `own`, `spawned`, `marked:<type path>` (entities
    /// with such a component), or `*`.
    Despawn,
    /// `kv.read`: read keys, as `bucket/key` patterns (`bucket` alone is
    /// the whole bucket).
    KvRead,
    /// `kv.write`: set and delete keys.
    KvWrite,
    /// `kv.atomics`: `increment` and compare-and-swap on keys.
    KvAtomics,
    /// `kv.watch`: watch keys change.
    KvWatch,
    /// `messages.send`: send on these topics.
    Send,
    /// `messages.subscribe`: subscribe to these topics.
    Subscribe,
    /// `requests.answer`: answer the game's requests on these topics.
    Answer,
    /// `game-message.read`: receive the game's Bevy messages of these
    /// types (`add_script_message`), by type path.
    GameMessageRead,
    /// `game-message.write`: write the game's Bevy messages of these types.
    GameMessageWrite,
}

impl Right {
    /// Every right, in the order a manifest lists them.
    pub const ALL: [Right; 18] = [
        Right::ComponentRead,
        Right::ComponentWrite,
        Right::ComponentWatch,
        Right::ResourceRead,
        Right::ResourceWrite,
        Right::ResourceWatch,
        Right::Entities,
        Right::Spawn,
        Right::Despawn,
        Right::KvRead,
        Right::KvWrite,
        Right::KvAtomics,
        Right::KvWatch,
        Right::Send,
        Right::Subscribe,
        Right::Answer,
        Right::GameMessageRead,
        Right::GameMessageWrite,
    ];

    /// Its name in a manifest, e.g. `component.write`.
    pub fn name(self) -> &'static str {
        match self {
            Right::ComponentRead => "component.read",
            Right::ComponentWrite => "component.write",
            Right::ComponentWatch => "component.watch",
            Right::ResourceRead => "resource.read",
            Right::ResourceWrite => "resource.write",
            Right::ResourceWatch => "resource.watch",
            Right::Entities => "entities",
            Right::Spawn => "spawn",
            Right::Despawn => "despawn",
            Right::KvRead => "kv.read",
            Right::KvWrite => "kv.write",
            Right::KvAtomics => "kv.atomics",
            Right::KvWatch => "kv.watch",
            Right::Send => "messages.send",
            Right::Subscribe => "messages.subscribe",
            Right::Answer => "requests.answer",
            Right::GameMessageRead => "game-message.read",
            Right::GameMessageWrite => "game-message.write",
        }
    }

    fn is_kv(self) -> bool {
        matches!(
            self,
            Right::KvRead | Right::KvWrite | Right::KvAtomics | Right::KvWatch
        )
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing a right reaches: a name, or every name that starts with a
/// prefix (`my_game::enemy::*`; `*` alone is everything).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pattern {
    text: Box<str>,
    prefix: bool,
}

impl Pattern {
    fn everything() -> Self {
        Self {
            text: "".into(),
            prefix: true,
        }
    }

    /// Whether it reaches `value`.
    pub fn covers(&self, value: &str) -> bool {
        self.covers_parts(&[value])
    }

    /// Whether it reaches the parts joined, without joining them.
    fn covers_parts(&self, parts: &[&str]) -> bool {
        let mut text = self.text.as_bytes();
        for (index, part) in parts.iter().enumerate() {
            let part = part.as_bytes();
            if text.len() <= part.len() {
                if part[..text.len()] != *text {
                    return false;
                }
                let nothing_after = text.len() == part.len()
                    && parts[index + 1..].iter().all(|rest| rest.is_empty());
                return self.prefix || nothing_after;
            }
            if text[..part.len()] != *part {
                return false;
            }
            text = &text[part.len()..];
        }
        false
    }

    /// What it reaches after `head`: `marked:my_game::*` after `marked:` is
    /// `my_game::*`; `m*` after `marked:` is everything; `own` nothing.
    pub(crate) fn after(&self, head: &str) -> Option<Pattern> {
        if let Some(rest) = self.text.strip_prefix(head) {
            Some(Pattern {
                text: rest.into(),
                prefix: self.prefix,
            })
        } else if self.prefix && head.starts_with(&*self.text) {
            Some(Pattern::everything())
        } else {
            None
        }
    }

    /// Whether it reaches everything `other` reaches.
    fn contains(&self, other: &Pattern) -> bool {
        if self.prefix {
            other.text.starts_with(&*self.text)
        } else {
            !other.prefix && other.text == self.text
        }
    }

    /// What both reach, when that is one pattern or nothing (always so for
    /// prefix patterns).
    fn intersect(&self, other: &Pattern) -> Option<Pattern> {
        if self.contains(other) {
            Some(other.clone())
        } else if other.contains(self) {
            Some(self.clone())
        } else {
            None
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.prefix {
            f.write_str("*")?;
        }
        Ok(())
    }
}

/// What a module asks for, what a ceiling allows, or what a module was
/// granted. Written as a manifest, one capability per line:
///
/// ```text
/// # a cosmetic mod: recolours enemies, counts its own kills
/// component.read   my_game::enemy::* bevy_sprite::sprite::Sprite
/// component.write  bevy_sprite::sprite::Sprite
/// component.watch  my_game::enemy::Health
/// entities         *
/// spawn            my_game::fx::*
/// despawn          spawned
/// kv.read          tuning
/// kv.write         cosmetic/kills
/// messages.send    hud/*
/// tasks            4
/// frame
/// ```
///
/// A line is a capability's name and what it reaches, patterns separated by
/// spaces: a name, or a prefix ending in `*` (`*` alone is everything). The
/// pattern-taking names are those of [`Right`]; `tasks N` is how many
/// scheduler tasks it may have at once (`*`: as many as the host allows);
/// `frame` lets it ask for a call every frame; `all` is everything. What a
/// manifest leaves out is not allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    reach: BTreeMap<Right, Vec<Pattern>>,
    tasks: u32,
    frame: bool,
}

/// How many tasks `tasks *` allows: no cap beyond the host's.
const ANY_TASKS: u32 = u32::MAX;

impl Capabilities {
    /// Nothing: a module with only this may log, keep its state and read
    /// its own entity's id.
    pub fn none() -> Self {
        Self::default()
    }

    /// Everything the host offers.
    pub fn all() -> Self {
        Self {
            reach: Right::ALL
                .into_iter()
                .map(|right| (right, vec![Pattern::everything()]))
                .collect(),
            tasks: ANY_TASKS,
            frame: true,
        }
    }

    /// The patterns `right` reaches (empty: nothing).
    pub fn reach(&self, right: Right) -> &[Pattern] {
        self.reach.get(&right).map_or(&[], Vec::as_slice)
    }

    /// Whether `right` reaches `value` (a type path, a topic, `own`…).
    pub fn allows(&self, right: Right, value: &str) -> bool {
        self.reach(right)
            .iter()
            .any(|pattern| pattern.covers(value))
    }

    /// Whether `right` (a `kv.*` one) reaches `key` in `bucket`.
    pub fn allows_key(&self, right: Right, bucket: &str, key: &str) -> bool {
        self.reach(right)
            .iter()
            .any(|pattern| pattern.covers_parts(&[bucket, "/", key]))
    }

    /// Whether `right` reaches every value that starts with `prefix` (for a
    /// `kv.*` right, `bucket/key-prefix`).
    pub fn allows_prefix(&self, right: Right, prefix: &str) -> bool {
        let asked = Pattern {
            text: prefix.into(),
            prefix: true,
        };
        self.reach(right)
            .iter()
            .any(|pattern| pattern.contains(&asked))
    }

    /// How much of `bucket` a `kv.*` right reaches: every key, none, or
    /// some (its patterns name keys or key prefixes in it).
    pub fn bucket_reach(&self, right: Right, bucket: &str) -> BucketReach {
        let all_of = format!("{bucket}/");
        if self.allows_prefix(right, &all_of) {
            return BucketReach::All;
        }
        let some = self.reach(right).iter().any(|pattern| {
            pattern.text.starts_with(&all_of)
                || pattern.prefix && all_of.starts_with(&*pattern.text)
        });
        if some {
            BucketReach::Some
        } else {
            BucketReach::None
        }
    }

    /// How many scheduler tasks it may have at once (`u32::MAX`: no cap
    /// beyond the host's).
    pub fn tasks(&self) -> u32 {
        self.tasks
    }

    /// Whether it may ask for a call every frame.
    pub fn frame(&self) -> bool {
        self.frame
    }

    /// Whether it allows everything [`Capabilities::all`] does.
    pub fn is_all(&self) -> bool {
        *self == Self::all()
    }
}

/// Sorted, without patterns another one in the list already covers.
fn tidy(patterns: &mut Vec<Pattern>) {
    patterns.sort();
    patterns.dedup();
    let all = patterns.clone();
    patterns.retain(|pattern| {
        !all.iter()
            .any(|other| other != pattern && other.contains(pattern))
    });
}

/// How much of one bucket a `kv.*` right reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketReach {
    /// Every key.
    All,
    /// Some keys: each use is checked against the patterns.
    Some,
    /// No key.
    None,
}

/// What one module was granted, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    granted: Capabilities,
    requested: Capabilities,
    denied_by_ceiling: Vec<String>,
    everything: bool,
}

impl Grant {
    /// A grant of everything, for modules the game made itself.
    pub fn everything() -> Self {
        Self::as_requested(Capabilities::all())
    }

    /// Exactly what a module asks for, for modules the game made itself.
    pub fn as_requested(requested: Capabilities) -> Self {
        Self {
            everything: requested.is_all(),
            granted: requested.clone(),
            requested,
            denied_by_ceiling: Vec::new(),
        }
    }

    /// What the module may do.
    pub fn granted(&self) -> &Capabilities {
        &self.granted
    }

    /// What it asked for (everything or nothing when it has no section; see
    /// [`CapabilityPolicy`]).
    pub fn requested(&self) -> &Capabilities {
        &self.requested
    }

    /// What it asked for that the ceilings refused, as manifest lines.
    pub fn denied_by_ceiling(&self) -> &[String] {
        &self.denied_by_ceiling
    }

    /// Whether it may do everything: the host checks nothing more.
    pub fn is_everything(&self) -> bool {
        self.everything
    }
}

#[cfg(test)]
mod tests;
