//! Typed QEMU Guest Agent (`qemu-ga`) commands: every command of QEMU's guest-agent
//! schema, generated (see [`crate::qapi::qga`]) and re-exported here.
//!
//! They implement [`Command`] like the QMP ones and go over the
//! guest agent's channel (a virtio-serial port on the host side). The guest agent has no
//! greeting and no capabilities negotiation; a session starts with
//! [`GuestSyncDelimited`] (see [`crate::client`]). [`GuestShutdown`] and the
//! `guest-suspend-*` commands do not answer on success
//! ([`Command::REPLIES_ON_SUCCESS`] is false).
//!
//! Response strings are [`JsonStr`](crate::json::JsonStr): borrowed from the receive
//! buffer and still escaped. File and process data travel base64-encoded (`buf-b64`,
//! `input-data`, `out-data`); this crate passes the base64 text through without decoding
//! it.

pub use crate::qapi::qga::*;

use crate::commands::macros::empty;
use crate::commands::{Command, Empty};
use crate::json::{DecodeError, RawJson};

// `guest-shutdown`'s `mode` is a free-form string in QAPI; the typed mode below is kept
// as a convenience and shadows the generated `GuestShutdown` (whose `mode` is a `&str`).

/// How [`GuestShutdown`] shuts the guest down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum GuestShutdownMode {
    /// Halt.
    Halt,
    /// Power off (the default).
    Powerdown,
    /// Reboot.
    Reboot,
}

/// `guest-shutdown`: shuts the guest down from inside. No answer on success: watch for
/// QMP's `SHUTDOWN` event (or the connection closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestShutdown {
    /// How (power off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<GuestShutdownMode>,
}

impl Command for GuestShutdown {
    const NAME: &'static str = "guest-shutdown";
    const REPLIES_ON_SUCCESS: bool = false;
    type Arguments = Self;
    type Response<'r> = Empty;

    fn arguments(&self) -> Option<&Self> {
        self.mode.map(|_| self)
    }

    fn decode_response(raw: RawJson<'_>) -> Result<Empty, DecodeError> {
        empty(raw)
    }
}

impl<'a> GuestExecCommand<'a> {
    /// Runs `path` with arguments `arg`, capturing its output (fetch it with
    /// [`GuestExecStatusCommand`]).
    pub fn new(path: &'a str, arg: &'a [&'a str]) -> Self {
        GuestExecCommand {
            path,
            arg: Some(arg),
            env: None,
            input_data: None,
            capture_output: Some(GuestExecCaptureOutput::Flag(true)),
        }
    }
}
