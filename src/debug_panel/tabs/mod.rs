//! The panel's tabs, a file each: each holds its tab's `ui_for_*`
//! function and the pieces only it draws.

pub(super) mod console;
pub(super) mod diagnostics;
pub(super) mod events;
pub(super) mod faults;
pub(super) mod instances;
pub(super) mod key_value;
pub(super) mod modules;
pub(super) mod time;
