//! Run state: query-status, stop, cont, reset, powerdown, wakeup, NMI, quit.

use crate::json::JsonStr;

use super::de;
use super::macros::{command, empty, value};
use super::Empty;

command! {
    /// `query-status`: whether the guest runs, and the run state.
    pub struct QueryStatus;
    name: "query-status",
    response<'r>: StatusInfo<'r> = value
}

/// The return of [`QueryStatus`] (QAPI `StatusInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct StatusInfo<'a> {
    /// Whether the vCPUs are running.
    pub running: bool,
    /// The run state (QAPI `RunState`: `running`, `paused`, `prelaunch`, `shutdown`,
    /// `inmigrate`, `postmigrate`, `suspended`, `guest-panicked`, ...), kept as a string
    /// so a state added by a newer QEMU still decodes.
    #[serde(borrow, deserialize_with = "de::string")]
    pub status: JsonStr<'a>,
}

command! {
    /// `stop`: pauses all vCPUs (a `STOP` event follows unless already stopped).
    pub struct Stop;
    name: "stop",
    response<'r>: Empty = empty
}

command! {
    /// `cont`: resumes the vCPUs (a `RESUME` event follows).
    pub struct Cont;
    name: "cont",
    response<'r>: Empty = empty
}

command! {
    /// `system_reset`: resets the machine (a `RESET` event follows).
    pub struct SystemReset;
    name: "system_reset",
    response<'r>: Empty = empty
}

command! {
    /// `system_powerdown`: asks the guest to power down (ACPI power button; a `POWERDOWN`
    /// event follows).
    pub struct SystemPowerdown;
    name: "system_powerdown",
    response<'r>: Empty = empty
}

command! {
    /// `system_wakeup`: wakes a guest suspended to RAM.
    pub struct SystemWakeup;
    name: "system_wakeup",
    response<'r>: Empty = empty
}

command! {
    /// `inject-nmi`: injects a non-maskable interrupt into the guest.
    pub struct InjectNmi;
    name: "inject-nmi",
    response<'r>: Empty = empty
}

command! {
    /// `quit`: makes QEMU exit. QEMU answers, emits `SHUTDOWN` (system emulators) and
    /// closes the connection.
    pub struct Quit;
    name: "quit",
    response<'r>: Empty = empty
}
