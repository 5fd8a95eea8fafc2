//! `hotwasm:script/instance`: what an instance knows about itself.

use wasmtime::component::HasData;

use super::bindings::hotwasm::script::instance::Host;
use super::{HostState, InstanceIdentity};

/// The marker `instance` is linked with: its host is an [`InstanceView`].
pub(super) struct Instance;

impl HasData for Instance {
    type Data<'a> = InstanceView<'a>;
}

/// What `instance` sees of an instance's state: who it is.
pub(crate) struct InstanceView<'a> {
    identity: &'a InstanceIdentity,
}

impl InstanceView<'_> {
    pub fn of(state: &mut HostState) -> InstanceView<'_> {
        InstanceView {
            identity: &state.identity,
        }
    }
}

impl Host for InstanceView<'_> {
    fn entity(&mut self) -> u64 {
        self.identity.entity.to_bits()
    }

    fn generation(&mut self) -> u32 {
        self.identity.generation
    }

    fn module_path(&mut self) -> String {
        self.identity.module_path.to_string()
    }
}
