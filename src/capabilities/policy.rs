//! The ceilings a game puts on modules, and the grant each module gets
//! within them.

use std::collections::BTreeMap;

use bevy::asset::io::AssetSourceId;
use bevy::prelude::Resource;
use thiserror::Error;

use super::manifest::TasksShown;
use super::{Capabilities, Grant, Pattern, Right, tidy};

impl Capabilities {
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
#[non_exhaustive]
pub struct NarrowingError {
    /// The lines it asked for beyond the grant.
    pub widening: Vec<String>,
}
