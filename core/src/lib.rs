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
pub mod qapi;
pub mod qga;
pub mod time;

/// Storage for a buffer of the client (receive and transmit) or of a
/// [`Framer`](json::Framer): a byte slice they borrow (the default; on firmware the bytes
/// can live in a `static`), or anything that owns one, such as a `Box<[u8]>` on a host
/// with an allocator, so that a client can own its buffers and be moved or shared.
pub trait Buffer: AsRef<[u8]> + AsMut<[u8]> {}

impl<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized> Buffer for T {}
