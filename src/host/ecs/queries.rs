//! `ecs.query`, `ecs.query-filtered` and `ecs.query-field`: the entities
//! with given components (with `With`, `Without`, `Added` and `Changed`
//! filters), a page of [`QUERY_PAGE_ROWS`] at a time, or one number field
//! of each.
//! Entities out of the grant's reach are left out, not refused.

use std::any::TypeId;

use bevy::ecs::component::ComponentId;
use bevy::prelude::*;
use bevy::reflect::{ParsedPath, PartialReflect};

use super::{EcsView, component, not_lent};
use crate::capabilities::Right;
use crate::host::bindings::hotwasm::script::ecs::{Error, QueryPage, QueryRow};
use crate::host::reflect::to_json;

/// How many rows one `query` page holds.
pub const QUERY_PAGE_ROWS: usize = 1000;

/// A reflected number as `f64`, whatever its primitive type.
fn number(value: &dyn PartialReflect) -> Option<f64> {
    macro_rules! try_numbers {
        ($($ty:ty),*) => {
            $(if let Some(n) = value.try_downcast_ref::<$ty>() {
                return Some(*n as f64);
            })*
        };
    }
    try_numbers!(f32, f64, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
    None
}

impl EcsView<'_> {
    /// `ecs.query-field`: the number at `field` of every reachable entity's
    /// component `type_path`.
    pub(super) fn field_values(
        &mut self,
        type_path: &str,
        field: &str,
    ) -> Result<Vec<(u64, f64)>, Error> {
        let registry = self.registry;
        let registry = registry.read();
        let component = component(&registry, type_path)?;
        self.check_type(Right::ComponentRead, &component)?;
        let type_id = component.type_id;
        let path = ParsedPath::parse(field)
            .map_err(|error| Error::InvalidField(format!("{field}: {error}")))?;
        let world = self.world.as_deref_mut().ok_or_else(not_lent)?;
        let Some(component_id) = world.components().get_valid_id(type_id) else {
            return Ok(Vec::new());
        };
        let mut query = QueryBuilder::<Entity>::new(world)
            .with_id(component_id)
            .build();
        let mut values = Vec::new();
        let world: &World = world;
        for entity in query.iter(world) {
            // Entities out of the grant's reach are left out, not refused.
            if !self.access.reaches(self.identity, world, entity) {
                continue;
            }
            let Ok(value) = world.get_reflect(entity, type_id) else {
                continue;
            };
            let number = value
                .reflect_path(&path)
                .ok()
                .and_then(number)
                .ok_or_else(|| {
                    Error::InvalidField(format!("{type_path} has no number at `{field}`"))
                })?;
            values.push((entity.to_bits(), number));
        }
        Ok(values)
    }

    /// `ecs.query` and `ecs.query-filtered`: from `cursor` on, a page of
    /// the reachable entities with every component of `read` that pass
    /// `filter`, with the JSON of each of `read`.
    pub(super) fn query_page(
        &mut self,
        filter: &QueryFilter,
        read: &[String],
        cursor: u64,
    ) -> Result<QueryPage, Error> {
        let registry = self.registry;
        let registry = registry.read();
        let mut type_ids = |paths: &[String]| {
            paths
                .iter()
                .map(|path| {
                    let component = component(&registry, path)?;
                    self.check_type(Right::ComponentRead, &component)?;
                    Ok(component.type_id)
                })
                .collect::<Result<Vec<_>, Error>>()
        };
        let with = type_ids(filter.with)?;
        let without = type_ids(filter.without)?;
        let added = type_ids(filter.added)?;
        let changed = type_ids(filter.changed)?;
        let read = type_ids(read)?;
        let (last_run, this_run) = (self.last_call_tick, self.world()?.read_change_tick());
        let world = self.world.as_deref_mut().ok_or_else(not_lent)?;
        let valid = |world: &World, ids: &[TypeId]| -> Option<Vec<ComponentId>> {
            ids.iter()
                .map(|type_id| world.components().get_valid_id(*type_id))
                .collect()
        };
        // A type never added to the world matches no entity (and excludes none).
        let (Some(required), Some(added), Some(changed)) = (
            valid(
                world,
                &[&with[..], &read[..], &added[..], &changed[..]].concat(),
            ),
            valid(world, &added),
            valid(world, &changed),
        ) else {
            return Ok(QueryPage {
                rows: Vec::new(),
                next: None,
            });
        };
        let excluded: Vec<ComponentId> = (without.iter())
            .filter_map(|type_id| world.components().get_valid_id(*type_id))
            .collect();
        let mut builder = QueryBuilder::<Entity>::new(world);
        for component_id in required {
            builder.with_id(component_id);
        }
        for component_id in excluded {
            builder.without_id(component_id);
        }
        let mut query = builder.build();
        let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
        let world: &World = world;
        let ticks =
            |entity: Entity, id: ComponentId| world.entity(entity).get_change_ticks_by_id(id);
        let passes = |entity: Entity| {
            (added.iter())
                .all(|&id| ticks(entity, id).is_some_and(|t| t.is_added(last_run, this_run)))
                && (changed.iter())
                    .all(|&id| ticks(entity, id).is_some_and(|t| t.is_changed(last_run, this_run)))
        };
        // Entities out of the grant's reach are left out, not refused.
        let mut entities = (query.iter(world))
            .filter(|&entity| passes(entity) && self.access.reaches(self.identity, world, entity))
            .skip(skip)
            .take(QUERY_PAGE_ROWS + 1);
        let mut rows = Vec::new();
        for entity in entities.by_ref().take(QUERY_PAGE_ROWS) {
            let values = read
                .iter()
                .map(|&type_id| {
                    let value = world
                        .get_reflect(entity, type_id)
                        .map_err(|error| Error::UnsupportedType(format!("{entity}: {error}")))?;
                    Ok(to_json(value, &registry)?)
                })
                .collect::<Result<_, Error>>()?;
            rows.push(QueryRow {
                entity: entity.to_bits(),
                values,
            });
        }
        let next = entities.next().map(|_| cursor + rows.len() as u64);
        Ok(QueryPage { rows, next })
    }
}

/// Which entities a query matches besides having its `read` components,
/// by type paths: Bevy's `With`, `Without`, `Added` and `Changed`.
#[derive(Default)]
pub(super) struct QueryFilter<'a> {
    pub with: &'a [String],
    pub without: &'a [String],
    pub added: &'a [String],
    pub changed: &'a [String],
}
