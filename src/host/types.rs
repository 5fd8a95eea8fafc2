//! `hotwasm:script/types`: only types, so nothing to implement.

use super::HostState;
use super::bindings::hotwasm::script::types::Host;

impl Host for HostState {}
