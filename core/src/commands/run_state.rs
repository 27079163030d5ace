//! Run state: query-status, stop, cont, reset, powerdown, wakeup, NMI, quit — the
//! generated types of [`crate::qapi`] (QAPI module `run-state`), re-exported here. The
//! run state is the schema's [`RunState`] enum, with `Unknown(text)` for a state a newer
//! QEMU adds; it compares with a wire value (`status.status == "running"`).

pub use crate::qapi::qmp::{
    Cont, InjectNmi, QueryStatus, Quit, RunState, StatusInfo, Stop, SystemPowerdown, SystemReset,
    SystemWakeup,
};
