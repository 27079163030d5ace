//! Typed QMP commands.
//!
//! Every command is a type implementing [`Command`]: its wire name, its arguments (the type
//! itself, serialized with serde), its decoded response and whether it may run out of band.
//! [`Client::execute`](crate::client::Client::execute) takes any `Command`, and a reply is
//! decoded with [`Command::decode_response`].
//!
//! The vocabulary here covers what VMM and orchestrator authors use daily; every command
//! of QEMU's schema is typed in [`crate::qapi`], generated from it (events and guest-agent
//! commands come from there only). Most commands here are those generated types,
//! re-exported under the same names (a few with a `new` constructor kept on them): the
//! run-state, QOM, job, misc and migration commands, `chardev-remove` and
//! `query-chardev`, the block queries, `blockdev-del`, `block_resize` and the block-job
//! starters, `device_del`, `netdev_del` and `object-del`. Hand-written, because they add
//! something over the schema (see `core/VOCABULARY.md`):
//!
//! - `QomSet` (any serializable value) and `ChardevAdd` with its backend builders;
//! - `QueryVersion` (the greeting's `Version`), `QueryQmpSchema` (entries kept raw) and
//!   `Yank`/`QueryYank` (targets named with a plain `&str`);
//! - `DeviceAdd`, `NetdevAdd` and `ObjectAdd` (free-form properties for any device,
//!   backend or object type);
//! - `BlockdevAdd` and `BlockdevCreate` with their per-driver option builders
//!   (`BlockdevAdd::new(BlockdevOptionsNull::new("null0", size))`, where the generated
//!   union has no `Default` and spells out every base member), and `with_options` for any
//!   serializable options.
//!
//! Anything else, and anything a newer QEMU adds, goes through the raw path
//! ([`Client::execute_value`](crate::client::Client::execute_value) and
//! [`RawJson`]), so a newer server never breaks parsing: response types skip members
//! they do not know, an enum value they do not know decodes to `Unknown(text)` (a union
//! variant to `Unknown { tag, raw }`; the hand-written types keep such fields as
//! strings), and lists are decoded lazily element by element ([`JsonArray`]) so no
//! capacity limit applies to them.

use core::marker::PhantomData;

use crate::json::{DecodeError, Elements, RawJson};

/// A QMP (or guest-agent) command with typed arguments and a typed response.
///
/// Implementations are usually generated with the crate's internal macros; implement it by
/// hand for commands this crate does not know yet.
pub trait Command {
    /// The command name as it appears after `"execute"` on the wire.
    const NAME: &'static str;
    /// Whether the server allows this command with `exec-oob` (QAPI `allow-oob`).
    const ALLOW_OOB: bool = false;
    /// Whether the server answers a successful run. Only a few guest-agent commands
    /// (`guest-shutdown`, `guest-suspend-*`) do not; see [`crate::client`] for how the
    /// client resolves them.
    const REPLIES_ON_SUCCESS: bool = true;

    /// The `arguments` object, serialized with serde. Use [`NoArguments`] for commands
    /// that take none.
    type Arguments: serde::Serialize + ?Sized;
    /// The decoded `return` value, which may borrow the receive buffer.
    type Response<'a>;

    /// The arguments to send, or `None` to omit the `arguments` member (shorter requests:
    /// QEMU spends about 3 µs of its own time per request byte).
    fn arguments(&self) -> Option<&Self::Arguments>;

    /// Decodes the `return` value of a successful reply.
    fn decode_response(raw: RawJson<'_>) -> Result<Self::Response<'_>, DecodeError>;
}

/// The arguments of a command that takes none; never serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoArguments {}

/// The `{}` returned by commands without a declared return type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Empty;

/// Written as `{}`.
impl serde::Serialize for Empty {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::ser::SerializeMap::end(serializer.serialize_map(Some(0))?)
    }
}

/// A JSON array decoded lazily: each element is decoded with [`FromRawJson`] when the
/// iterator reaches it, so arrays of any length decode without a capacity limit or an
/// allocation. The one array type of the vocabulary, hand-written and generated alike.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JsonArray<'a, T> {
    raw: RawJson<'a>,
    _element: PhantomData<fn() -> T>,
}

impl<'a, T: FromRawJson<'a>> JsonArray<'a, T> {
    /// Wraps `raw`, which must be an array.
    pub fn new(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        if raw.is_array() {
            Ok(JsonArray {
                raw,
                _element: PhantomData,
            })
        } else {
            Err(DecodeError::NotAnArray)
        }
    }

    /// The array's exact bytes.
    pub fn raw(&self) -> RawJson<'a> {
        self.raw
    }

    /// The number of elements (walks the array once).
    pub fn len(&self) -> usize {
        self.raw.elements().count()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.raw.elements().next().is_none()
    }

    /// The elements, each decoded as it is reached.
    pub fn iter(&self) -> JsonArrayIter<'a, T> {
        JsonArrayIter {
            elements: self.raw.elements(),
            _element: PhantomData,
        }
    }
}

impl<'a, T: FromRawJson<'a>> FromRawJson<'a> for JsonArray<'a, T> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        JsonArray::new(raw)
    }
}

impl<'a, T: FromRawJson<'a>> IntoIterator for JsonArray<'a, T> {
    type Item = Result<T, DecodeError>;
    type IntoIter = JsonArrayIter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a [`JsonArray`]'s decoded elements.
#[derive(Debug, Clone)]
pub struct JsonArrayIter<'a, T> {
    elements: Elements<'a>,
    _element: PhantomData<fn() -> T>,
}

impl<'a, T: FromRawJson<'a>> Iterator for JsonArrayIter<'a, T> {
    type Item = Result<T, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.elements.next().map(T::from_raw_json)
    }
}

mod block;
mod chardev;
pub(crate) mod de;
mod devices;
mod jobs;
mod lazy;
pub(crate) mod macros;
mod migration;
mod misc;
mod qom;
mod run_state;

pub use block::*;
pub use chardev::*;
pub use devices::*;
pub use jobs::*;
pub(crate) use lazy::from_raw_json_via_serde;
pub use lazy::FromRawJson;
pub use migration::*;
pub use misc::*;
pub use qom::*;
pub use run_state::*;
