//! `hotwasm:script/types`: only types, so nothing to implement, and
//! nothing of the instance's state to see.

use wasmtime::component::HasData;

use super::bindings::hotwasm::script::types::Host;

/// The marker `types` is linked with: it has no functions, so its host is
/// `()`.
pub(super) struct Types;

impl HasData for Types {
    type Data<'a> = ();
}

impl Host for () {}
