//! The script's own components that come with every frame
//! ([`Cx::prefetch`](crate::Cx::prefetch)): read from the frame, not from
//! the host, and written back when the call returns.
//!
//! While a frame is being handled, [`Entity::get`](crate::Entity::get),
//! `set`, `update` and `try_get` on [`me`](crate::me) use these copies for
//! the prefetched types; everything else goes to the host as usual.

use std::cell::RefCell;

use crate::Entity;

/// The length the host writes for a component the entity does not have.
const ABSENT: u32 = u32::MAX;

#[derive(Default)]
struct Own {
    /// The entity whose components these are.
    entity: Option<Entity>,
    /// The type paths asked for, in the order the host frames them.
    type_paths: Vec<String>,
    /// This frame's copies (`None`: the entity has none), and whether each
    /// was changed; empty outside a frame.
    copies: Vec<(Option<Vec<u8>>, bool)>,
}

thread_local! {
    static OWN: RefCell<Own> = RefCell::default();
}

/// Remembers what was asked for with `ecs.prefetch`.
pub(crate) fn asked(type_paths: Vec<String>) {
    OWN.with_borrow_mut(|own| own.type_paths = type_paths);
}

/// Takes the frame's framed copies (see the WIT `frame.components`).
pub(crate) fn begin(framed: Option<Vec<u8>>) {
    let Some(framed) = framed else { return };
    let entity = crate::me();
    OWN.with_borrow_mut(|own| {
        own.entity = Some(entity);
        let mut rest = framed.as_slice();
        own.copies.clear();
        while let Some((length, after)) = rest.split_first_chunk::<4>() {
            let length = u32::from_le_bytes(*length);
            if length == ABSENT {
                own.copies.push((None, false));
                rest = after;
                continue;
            }
            let (json, after) = after.split_at(after.len().min(length as usize));
            own.copies.push((Some(json.to_vec()), false));
            rest = after;
        }
    });
}

/// Ends the frame: the changed copies, by index, for the host to write.
pub(crate) fn end() -> Vec<(u32, Vec<u8>)> {
    OWN.with_borrow_mut(|own| {
        own.copies
            .drain(..)
            .enumerate()
            .filter_map(|(index, (json, changed))| Some((index as u32, json.filter(|_| changed)?)))
            .collect()
    })
}

/// `read` of this frame's copy of `entity`'s component `type_path` (`None`
/// when the entity has none); `None` when it is not one of this frame's
/// copies: ask the host.
pub(crate) fn read<T>(
    entity: Entity,
    type_path: &str,
    read: impl FnOnce(Option<&[u8]>) -> T,
) -> Option<T> {
    OWN.with_borrow(|own| {
        let copy = own.copies.get(own.index(entity, type_path)?)?;
        Some(read(copy.0.as_deref()))
    })
}

/// Replaces this frame's copy of `entity`'s component `type_path`; gives
/// `json` back when it is not one of this frame's copies: write it through
/// the host.
pub(crate) fn write(entity: Entity, type_path: &str, json: Vec<u8>) -> Result<(), Vec<u8>> {
    OWN.with_borrow_mut(|own| {
        let Some(index) = own.index(entity, type_path) else {
            return Err(json);
        };
        match own.copies.get_mut(index) {
            Some(copy) => {
                *copy = (Some(json), true);
                Ok(())
            }
            None => Err(json),
        }
    })
}

/// Marks this frame's copy of `entity`'s component `type_path`, if there
/// is one, as gone: read as missing, never written back.
pub(crate) fn removed(entity: Entity, type_path: &str) {
    OWN.with_borrow_mut(|own| {
        if let Some(index) = own.index(entity, type_path)
            && let Some(copy) = own.copies.get_mut(index)
        {
            *copy = (None, false);
        }
    })
}

impl Own {
    /// Where this frame's copy of `entity`'s `type_path` is, if it has one.
    fn index(&self, entity: Entity, type_path: &str) -> Option<usize> {
        if self.copies.is_empty() || self.entity != Some(entity) {
            return None;
        }
        self.type_paths.iter().position(|path| path == type_path)
    }
}
