//! The arena's rules, headless: what the game does and the guests that make
//! its rules, as a plugin the window (`main.rs`) and the tests share.

pub mod logic;
pub mod trust;
