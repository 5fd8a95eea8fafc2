//! Entities as a typed handle that prints the way Bevy prints them.

use std::fmt;

use crate::ecs::{self, Component};
use crate::{Error, own};

/// A Bevy entity: `Entity::to_bits()` on the host, printed as Bevy prints
/// it (`11v2`: index 11, generation 2).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Entity(u64);

impl Entity {
    /// Bevy's `Entity::PLACEHOLDER`.
    pub const PLACEHOLDER: Self = Self(1);

    /// The entity whose `Entity::to_bits()` is `bits`.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// `Entity::to_bits()`.
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// The index, as Bevy's `Entity::index()` (stored inverted in the bits).
    pub const fn index(self) -> u32 {
        !(self.0 as u32)
    }

    /// The generation, as Bevy's `Entity::generation()`.
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The component `C` on this entity.
    pub fn get<C: Component>(self) -> Result<C, Error> {
        let copy = own::read(self, C::TYPE_PATH, |json| match json {
            Some(json) => ecs::from_json(json),
            None => Err(ecs::raw::Error::Missing(format!("{self} has no {}", C::TYPE_PATH)).into()),
        });
        copy.unwrap_or_else(|| ecs::from_json(&ecs::raw::get_component(self.0, C::TYPE_PATH)?))
    }

    /// Inserts `C`, or replaces it.
    pub fn set<C: Component>(self, component: &C) -> Result<(), Error> {
        let json = serde_json::to_vec(component)?;
        match own::write(self, C::TYPE_PATH, json) {
            Ok(()) => Ok(()),
            Err(json) => Ok(ecs::raw::set_component(self.0, C::TYPE_PATH, &json)?),
        }
    }

    /// Reads `C`, changes it with `change` and writes it back; returns what
    /// `change` returned.
    pub fn update<C: Component, R>(self, change: impl FnOnce(&mut C) -> R) -> Result<R, Error> {
        let mut component = self.get::<C>()?;
        let returned = change(&mut component);
        self.set(&component)?;
        Ok(returned)
    }

    /// The component `C` on this entity, or `None` when it has none.
    pub fn try_get<C: Component>(self) -> Result<Option<C>, Error> {
        match self.get() {
            Ok(component) => Ok(Some(component)),
            Err(Error::Ecs(ecs::raw::Error::Missing(_))) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Removes the component `C` (a write of `C`: `component.write`);
    /// removing one the entity does not have is not an error.
    pub fn remove<C: Component>(self) -> Result<(), Error> {
        ecs::raw::remove_component(self.0, C::TYPE_PATH)?;
        own::removed(self, C::TYPE_PATH);
        Ok(())
    }

    /// Spawns an entity with `components` (a tuple) as a child of this
    /// one: it is despawned with it.
    pub fn spawn_child(self, components: impl ecs::Bundle) -> Result<Entity, Error> {
        Ok(Entity::from_bits(ecs::raw::spawn_child(
            self.0,
            &components.to_json()?,
        )?))
    }

    /// Despawns the entity and its children.
    pub fn despawn(self) -> Result<(), Error> {
        Ok(ecs::raw::despawn(self.0)?)
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::PLACEHOLDER {
            f.pad("PLACEHOLDER")
        } else {
            f.pad(&format!("{}v{}", self.index(), self.generation()))
        }
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
