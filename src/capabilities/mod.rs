//! What a module may touch.
//!
//! A module asks for its capabilities in its own bytes, a
//! `hotwasm:capabilities` custom section, so the signature over those bytes
//! covers the request and a mod cannot widen it after signing. The game sets
//! a ceiling per asset source and per signing key ([`CapabilityPolicy`]); a
//! `.wasm.meta` may narrow what is left, never widen it. The grant is what
//! all of them allow, and the host checks it in every import.

use std::collections::BTreeMap;
use std::fmt;

use bevy::asset::io::AssetSourceId;
use bevy::prelude::Resource;
use thiserror::Error;

/// The name of the custom section a module asks for its capabilities in.
pub const SECTION: &str = "hotwasm:capabilities";

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
}

impl Right {
    /// Every right, in the order a manifest lists them.
    pub const ALL: [Right; 15] = [
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

    fn parse(text: &str) -> Result<Self, String> {
        let (text, prefix) = match text.strip_suffix('*') {
            Some(head) => (head, true),
            None => (text, false),
        };
        if text.contains('*') {
            return Err(format!("`{text}*`: `*` may only end a pattern"));
        }
        Ok(Self {
            text: text.into(),
            prefix,
        })
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

    /// Reads a manifest (see the type's documentation).
    pub fn parse(manifest: &str) -> Result<Self, ManifestError> {
        let mut capabilities = Self::none();
        for (index, line) in manifest.lines().enumerate() {
            let fail = |message: String| ManifestError {
                line: index + 1,
                message,
            };
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(name) = words.next() else {
                continue;
            };
            let values: Vec<&str> = words.collect();
            match name {
                "all" if values.is_empty() => capabilities = Self::all(),
                "frame" if values.is_empty() => capabilities.frame = true,
                "all" | "frame" => return Err(fail(format!("`{name}` takes no values"))),
                "tasks" => {
                    // Lines add up: the largest count of several stands.
                    let count = match values.as_slice() {
                        ["*"] => ANY_TASKS,
                        [count] => count.parse().map_err(|_| {
                            fail(format!("`tasks` takes a number or `*`, not `{count}`"))
                        })?,
                        _ => return Err(fail("`tasks` takes one number or `*`".to_owned())),
                    };
                    capabilities.tasks = capabilities.tasks.max(count);
                }
                _ => {
                    let right = Right::ALL
                        .into_iter()
                        .find(|right| right.name() == name)
                        .ok_or_else(|| {
                            fail(format!(
                                "unknown capability `{name}`; known: all, frame, tasks, {}",
                                Right::ALL.map(Right::name).join(", ")
                            ))
                        })?;
                    if values.is_empty() {
                        return Err(fail(format!("`{name}` names nothing it reaches")));
                    }
                    for value in values {
                        let pattern = parse_value(right, value).map_err(fail)?;
                        capabilities.reach.entry(right).or_default().push(pattern);
                    }
                }
            }
        }
        for patterns in capabilities.reach.values_mut() {
            tidy(patterns);
        }
        Ok(capabilities)
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

    /// What both allow.
    pub fn intersect(&self, other: &Capabilities) -> Capabilities {
        let reach = Right::ALL
            .into_iter()
            .filter_map(|right| {
                let mut patterns: Vec<Pattern> = self
                    .reach(right)
                    .iter()
                    .flat_map(|mine| {
                        other
                            .reach(right)
                            .iter()
                            .filter_map(|theirs| mine.intersect(theirs))
                    })
                    .collect();
                tidy(&mut patterns);
                (!patterns.is_empty()).then_some((right, patterns))
            })
            .collect();
        Capabilities {
            reach,
            tasks: self.tasks.min(other.tasks),
            frame: self.frame && other.frame,
        }
    }

    /// The lines of `self` that `within` does not wholly allow, as manifest
    /// lines (e.g. `component.write my_game::*`); empty when `within` allows
    /// all of `self`.
    pub fn beyond(&self, within: &Capabilities) -> Vec<String> {
        let mut lines: Vec<String> = Right::ALL
            .into_iter()
            .flat_map(|right| {
                self.reach(right)
                    .iter()
                    .filter(move |pattern| {
                        !within
                            .reach(right)
                            .iter()
                            .any(|outer| outer.contains(pattern))
                    })
                    .map(move |pattern| format!("{right} {pattern}"))
            })
            .collect();
        if self.tasks > within.tasks {
            lines.push(format!("tasks {}", TasksShown(self.tasks)));
        }
        if self.frame && !within.frame {
            lines.push("frame".to_owned());
        }
        lines
    }
}

/// A `kv.*` value that names a bucket alone means the whole bucket.
fn parse_value(right: Right, value: &str) -> Result<Pattern, String> {
    let pattern = Pattern::parse(value)?;
    if right.is_kv() && !pattern.text.contains('/') && !pattern.prefix {
        return Pattern::parse(&format!("{value}/*"));
    }
    if matches!(right, Right::Entities | Right::Despawn) {
        let known = matches!(&*pattern.text, "own" | "spawned") && !pattern.prefix
            || pattern == Pattern::everything()
            || right == Right::Despawn && pattern.text.starts_with("marked:");
        if !known {
            let marked = if right == Right::Despawn {
                ", `marked:<type path>`"
            } else {
                ""
            };
            return Err(format!(
                "`{right}` takes `own`, `spawned`{marked} or `*`, not `{value}`"
            ));
        }
    }
    Ok(pattern)
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

struct TasksShown(u32);

impl fmt::Display for TasksShown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ANY_TASKS => f.write_str("*"),
            count => write!(f, "{count}"),
        }
    }
}

impl fmt::Display for Capabilities {
    /// As a manifest that [`Capabilities::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return writeln!(f, "all");
        }
        for (right, patterns) in &self.reach {
            write!(f, "{right}")?;
            for pattern in patterns {
                write!(f, " {pattern}")?;
            }
            writeln!(f)?;
        }
        if self.tasks > 0 {
            writeln!(f, "tasks {}", TasksShown(self.tasks))?;
        }
        if self.frame {
            writeln!(f, "frame")?;
        }
        Ok(())
    }
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

/// A manifest that could not be read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct ManifestError {
    /// Its line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Who vouched for a module, as far as capabilities care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vouched<'a> {
    /// Signed by the trusted key with this id.
    Signed(&'a str),
    /// The game's own: built into it, an unsigned file its trust policy
    /// allows, or bytes it handed over itself.
    Game,
}

/// The ceilings a game puts on modules: what a module may be granted,
/// whatever it asks for. Set on
/// [`HotWasmPlugin::capabilities`](crate::HotWasmPlugin::capabilities).
///
/// Without ceilings, a module gets what it asks for. A module that asks
/// for nothing (it has no `hotwasm:capabilities` section) gets everything
/// when it is the game's own (built in, or an unsigned local file the
/// trust policy allows: a development build), and nothing when it was
/// signed: a signed mod says what it needs, and in a release build, where
/// unsigned files are refused, every module from outside the game is
/// signed.
#[derive(Resource, Clone, Debug, Default)]
pub struct CapabilityPolicy {
    sources: BTreeMap<String, Capabilities>,
    keys: BTreeMap<String, Capabilities>,
}

impl CapabilityPolicy {
    /// No ceilings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Modules from `source` get at most `ceiling`.
    pub fn limit_source(mut self, source: AssetSourceId, ceiling: Capabilities) -> Self {
        self.sources.insert(source_name(&source), ceiling);
        self
    }

    /// Modules signed by the key trusted as `key_id` get at most `ceiling`.
    pub fn limit_key(mut self, key_id: impl Into<String>, ceiling: Capabilities) -> Self {
        self.keys.insert(key_id.into(), ceiling);
        self
    }

    /// The most a module from `source`, vouched for by `vouched`, may get.
    pub fn ceiling(&self, source: &AssetSourceId, vouched: Vouched) -> Capabilities {
        let by_source = self.sources.get(&source_name(source));
        let by_key = match vouched {
            Vouched::Signed(key_id) => self.keys.get(key_id),
            Vouched::Game => None,
        };
        match (by_source, by_key) {
            (Some(source), Some(key)) => source.intersect(key),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => Capabilities::all(),
        }
    }

    /// What a module gets: what it asked for (`None`: it has no section)
    /// within its ceiling, narrowed by its `.wasm.meta` if that says so.
    pub fn grant(
        &self,
        requested: Option<&Capabilities>,
        source: &AssetSourceId,
        vouched: Vouched,
        narrowed: Option<&Capabilities>,
    ) -> Result<Grant, NarrowingError> {
        let unstated = match vouched {
            Vouched::Game => Capabilities::all(),
            Vouched::Signed(_) => Capabilities::none(),
        };
        let requested = requested.cloned().unwrap_or(unstated);
        let within_ceiling = requested.intersect(&self.ceiling(source, vouched));
        let denied_by_ceiling = requested.beyond(&within_ceiling);
        let granted = match narrowed {
            None => within_ceiling,
            Some(narrowed) => {
                let widening = narrowed.beyond(&within_ceiling);
                if !widening.is_empty() {
                    return Err(NarrowingError { widening });
                }
                narrowed.clone()
            }
        };
        Ok(Grant {
            everything: granted.is_all(),
            granted,
            requested,
            denied_by_ceiling,
        })
    }
}

fn source_name(source: &AssetSourceId) -> String {
    match source {
        AssetSourceId::Default => String::new(),
        AssetSourceId::Name(name) => name.to_string(),
    }
}

/// A `.wasm.meta` asked for more than the module may have.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "its .wasm.meta may only narrow what the module is granted, and asks for more: {}",
    widening.join("; ")
)]
pub struct NarrowingError {
    /// The lines it asked for beyond the grant.
    pub widening: Vec<String>,
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

/// The `hotwasm:capabilities` sections of a component, its nested
/// components and its core modules, joined by line breaks (a manifest
/// split over several sections reads as one); `None` when it has none. Bytes that are not a
/// well-formed binary yield what was found before the damage: compiling
/// refuses such bytes anyway.
pub fn find_section(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut found: Option<Vec<u8>> = None;
    let mut pending = vec![bytes];
    while let Some(binary) = pending.pop() {
        let Some(mut rest) = binary.get(8..) else {
            continue;
        };
        while let Some((&id, after_id)) = rest.split_first() {
            let Some((size, after_size)) = leb_u32(after_id) else {
                break;
            };
            let Some(payload) = after_size.get(..size as usize) else {
                break;
            };
            rest = &after_size[size as usize..];
            const CUSTOM: u8 = 0;
            // In a component, sections 1 and 4 hold a core module and a
            // component; in a core module, no section nests.
            const CORE_MODULE: u8 = 1;
            const COMPONENT: u8 = 4;
            let is_component = binary.get(6..8) == Some(&[1, 0][..]);
            match id {
                CUSTOM => {
                    let Some((length, after_length)) = leb_u32(payload) else {
                        continue;
                    };
                    let Some(name) = after_length.get(..length as usize) else {
                        continue;
                    };
                    if name == SECTION.as_bytes() {
                        let manifest = found.get_or_insert_with(Vec::new);
                        if !manifest.is_empty() {
                            manifest.push(b'\n');
                        }
                        manifest.extend_from_slice(&after_length[length as usize..]);
                    }
                }
                CORE_MODULE | COMPONENT if is_component => pending.push(payload),
                _ => {}
            }
        }
    }
    found
}

/// An unsigned LEB128 number of at most 32 bits, and the bytes after it.
fn leb_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (index, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f).checked_shl(7 * index as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[index + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests;
