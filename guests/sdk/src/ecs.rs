//! The game's ECS, typed: components and resources are Rust types with
//! their Bevy type path, read and written as JSON through serde.
//!
//! ```ignore
//! use hotwasm_sdk::{Component, ecs, me};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Health { hp: u32 }
//! hotwasm_sdk::component!(Health = "my_game::Health");
//!
//! let hp = me().get::<Health>()?.hp;
//! me().update::<Health, _>(|health| health.hp -= 1)?;
//! for row in ecs::query::<(Health,)>() {
//!     let (entity, (health,)) = row?;
//! }
//! ```
//!
//! The host's types must be registered (`app.register_type::<Health>()`)
//! with `#[reflect(Component)]` or `#[reflect(Resource)]`. [`raw`] is the
//! same interface by type path and JSON bytes.

use std::collections::VecDeque;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Entity, Error};

/// The `hotwasm:script/ecs` import as it is: type paths and JSON bytes.
pub use crate::bindings::hotwasm::script::ecs as raw;

/// A component type of the game, mirrored in the guest. Its JSON is what
/// `bevy_reflect` writes for the host's type; [`component!`](crate::component)
/// implements it.
pub trait Component: Serialize + DeserializeOwned {
    /// The host type's `TypePath::type_path()`, e.g. `my_game::Health`.
    const TYPE_PATH: &'static str;
}

/// A resource type of the game, mirrored in the guest;
/// [`resource!`](crate::resource) implements it.
pub trait Resource: Serialize + DeserializeOwned {
    /// The host type's `TypePath::type_path()`.
    const TYPE_PATH: &'static str;
}

/// Implements [`Component`] for types: `component!(Health = "my_game::Health")`
/// names the host's type path; `component!(Health)` takes this crate's
/// module path and the type's name, which is `bevy_reflect`'s type path
/// when the same definition is compiled into the game.
#[macro_export]
macro_rules! component {
    ($($ty:ident $(= $path:literal)?),* $(,)?) => {
        $crate::__typed!($crate::Component: $($ty $(= $path)?),*);
    };
}

/// Implements [`Resource`] for types, like [`component!`](crate::component).
#[macro_export]
macro_rules! resource {
    ($($ty:ident $(= $path:literal)?),* $(,)?) => {
        $crate::__typed!($crate::Resource: $($ty $(= $path)?),*);
    };
}

/// Implements a trait with a `TYPE_PATH` for each type.
#[doc(hidden)]
#[macro_export]
macro_rules! __typed {
    ($trait:path: $($ty:ident $(= $path:literal)?),*) => {
        $(impl $trait for $ty {
            const TYPE_PATH: &'static str = $crate::__type_path!($ty $(= $path)?);
        })*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __type_path {
    ($ty:ident = $path:literal) => {
        $path
    };
    ($ty:ident) => {
        ::core::concat!(::core::module_path!(), "::", ::core::stringify!($ty))
    };
}

pub(crate) fn from_json<T: DeserializeOwned>(json: &[u8]) -> Result<T, Error> {
    Ok(serde_json::from_slice(json)?)
}

/// The resource `R`.
pub fn resource<R: Resource>() -> Result<R, Error> {
    from_json(&raw::get_resource(R::TYPE_PATH)?)
}

/// Inserts the resource `R`, or replaces it.
pub fn set_resource<R: Resource>(value: &R) -> Result<(), Error> {
    Ok(raw::set_resource(
        R::TYPE_PATH,
        &serde_json::to_vec(value)?,
    )?)
}

/// Components to spawn an entity with: a tuple of one to six components
/// (`(health,)` for one).
pub trait Bundle {
    /// Each component's type path and JSON.
    fn to_json(&self) -> Result<Vec<(String, Vec<u8>)>, Error>;
}

/// Types that name the components a [`query`] reads: a tuple of one to six
/// components (`(Health,)` for one).
pub trait QueryData: Sized {
    /// The components' type paths, in order.
    fn type_paths() -> Vec<String>;
    /// The values from one row's JSON, in order.
    fn from_row(values: &[Vec<u8>]) -> Result<Self, Error>;
}

macro_rules! tuples {
    ($(($($c:ident $i:tt),+)),* $(,)?) => {
        $(
            impl<$($c: Component),+> Bundle for ($($c,)+) {
                fn to_json(&self) -> Result<Vec<(String, Vec<u8>)>, Error> {
                    Ok(vec![$(($c::TYPE_PATH.to_owned(), serde_json::to_vec(&self.$i)?)),+])
                }
            }

            impl<$($c: Component),+> QueryData for ($($c,)+) {
                fn type_paths() -> Vec<String> {
                    vec![$($c::TYPE_PATH.to_owned()),+]
                }

                fn from_row(values: &[Vec<u8>]) -> Result<Self, Error> {
                    let missing = || Error::Json("a query row has too few values".to_owned());
                    Ok(($(from_json::<$c>(values.get($i).ok_or_else(missing)?)?,)+))
                }
            }
        )*
    };
}

tuples!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5),
);

/// Spawns an entity with `components` (a tuple) and returns it; if any is
/// refused, nothing is spawned.
pub fn spawn(components: impl Bundle) -> Result<Entity, Error> {
    Ok(Entity::from_bits(raw::spawn(&components.to_json()?)?))
}

/// Every entity having the components `Q` (a tuple) and those added with
/// [`Query::with`], with the values of `Q`, a page at a time.
pub fn query<Q: QueryData>() -> Query<Q> {
    Query {
        filter: raw::QueryFilter {
            having: Vec::new(),
            without: Vec::new(),
            added: Vec::new(),
            changed: Vec::new(),
        },
        next: Some(0),
        rows: VecDeque::new(),
        data: PhantomData,
    }
}

/// An iterator over a [`query`]: `(entity, values)` for each match, or the
/// error that ended it. Filters, like Bevy's: [`with`](Query::with),
/// [`without`](Query::without), [`added`](Query::added) and
/// [`changed`](Query::changed); added and changed count since this
/// instance's previous call.
pub struct Query<Q> {
    filter: raw::QueryFilter,
    next: Option<u64>,
    rows: VecDeque<raw::QueryRow>,
    data: PhantomData<Q>,
}

impl<Q: QueryData> Query<Q> {
    /// Only entities that also have the component `F`, not read.
    pub fn with<F: Component>(mut self) -> Self {
        self.filter.having.push(F::TYPE_PATH.to_owned());
        self
    }

    /// Only entities without the component `F`.
    pub fn without<F: Component>(mut self) -> Self {
        self.filter.without.push(F::TYPE_PATH.to_owned());
        self
    }

    /// Only entities whose `F` was added since this instance's previous
    /// call.
    pub fn added<F: Component>(mut self) -> Self {
        self.filter.added.push(F::TYPE_PATH.to_owned());
        self
    }

    /// Only entities whose `F` was added or changed since this instance's
    /// previous call.
    pub fn changed<F: Component>(mut self) -> Self {
        self.filter.changed.push(F::TYPE_PATH.to_owned());
        self
    }
}

impl<Q: QueryData> Iterator for Query<Q> {
    type Item = Result<(Entity, Q), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rows.is_empty() {
            let cursor = self.next.take()?;
            let filtered = [
                &self.filter.without,
                &self.filter.added,
                &self.filter.changed,
            ];
            let page = if filtered.iter().all(|paths| paths.is_empty()) {
                raw::query(&self.filter.having, &Q::type_paths(), cursor)
            } else {
                raw::query_filtered(&self.filter, &Q::type_paths(), cursor)
            };
            match page {
                Ok(page) => {
                    self.next = page.next;
                    self.rows.extend(page.rows);
                }
                Err(error) => return Some(Err(error.into())),
            }
        }
        let row = self.rows.pop_front()?;
        Some(Q::from_row(&row.values).map(|values| (Entity::from_bits(row.entity), values)))
    }
}
