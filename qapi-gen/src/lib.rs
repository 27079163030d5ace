//! Generates qmp-core's typed vocabulary from QEMU's QAPI schema. See README.md.

pub mod history;
pub mod parser;
pub mod rust;
pub mod schema;
