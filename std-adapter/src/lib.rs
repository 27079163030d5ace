//! The std adapter for [`qmp_core`]: real IO for the sans-IO QMP/QGA client.
//!
//! - [`transport`]: one [`Transport`] type over Unix and TCP sockets, a child process's
//!   stdio, character devices and any `Read + Write` stream, with read deadlines,
//!   shutdown that wakes blocked readers, and clones for reader/writer threads.
//! - [`fdpass`]: `SCM_RIGHTS` file-descriptor passing, attached to the bytes of the
//!   command that consumes the descriptors (`add-fd`, `getfd`).
//! - [`launch`]: start private `qemu-storage-daemon`, `qemu-system-x86_64` and `qemu-ga`
//!   processes and wait until their monitors accept connections.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use qmp_core;

pub mod fdpass;
pub mod launch;
pub mod transport;

pub use launch::{LaunchError, Launcher, QemuProcess, ServerKind};
pub use transport::{Transport, TransportKind};
