#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![doc = include_str!("../README.md")]

// `#![no_std]` is unconditional, and `alloc` is never linked: the compiler proves the crate
// allocates nothing. Tests may use std.
#[cfg(test)]
extern crate std;

pub mod client;
pub mod commands;
pub mod encode;
pub mod events;
pub mod io;
pub mod json;
pub mod message;
pub mod qga;
pub mod time;
