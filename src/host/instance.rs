//! `hotwasm:script/instance`: what an instance knows about itself.

use super::HostState;
use super::bindings::hotwasm::script::instance::Host;

impl Host for HostState {
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
