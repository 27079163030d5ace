#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! qmp-core: a `no_std`, allocation-free, sans-IO client for the QEMU Machine Protocol (QMP)
//! and the QEMU Guest Agent protocol (QGA).

#[cfg(test)]
extern crate std;

pub mod commands;
pub mod events;
pub mod json;
pub mod qga;
pub mod time;
