//! Owned replies: the `return` value of a command, copied out of the core's receive
//! buffer so it can cross threads, and decoded on demand.
//!
//! The core's typed responses borrow the bytes they were decoded from
//! ([`Command::Response<'a>`](qmp_core::commands::Command::Response)). A [`Reply<C>`]
//! owns those bytes, and [`Reply::get`] decodes the typed response borrowing the reply,
//! so decoding stays zero-copy and allocation-free past the one copy out of the buffer.

use core::fmt;
use core::marker::PhantomData;

use qmp_core::commands::Command;
use qmp_core::json::{DecodeError, RawJson};
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The `return` value of a command, as the exact JSON text the server sent.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawReply {
    bytes: Vec<u8>,
}

impl RawReply {
    /// Copies a value out of the receive buffer, into `reuse`'s memory if given.
    pub(crate) fn copy_of(raw: RawJson<'_>, reuse: Option<RawReply>) -> Self {
        let mut bytes = reuse.map(RawReply::into_bytes).unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(raw.as_bytes());
        RawReply { bytes }
    }

    /// The memory held for the text, in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The JSON text as a string (always valid UTF-8: the core validated it).
    pub fn as_str(&self) -> &str {
        self.raw().as_str()
    }

    /// The value as the core's zero-copy view, for [`RawJson::get`],
    /// [`RawJson::elements`] and friends.
    pub fn raw(&self) -> RawJson<'_> {
        // The bytes are a copy of a value the core already validated, so this parse
        // cannot fail; `null` is a harmless fallback that decodes to nothing useful.
        RawJson::parse(&self.bytes).unwrap_or(RawJson::NULL)
    }

    /// Decodes the value with `serde_json` into any owned type.
    ///
    /// # Errors
    /// [`Error::Json`] when the value does not fit `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.bytes)?)
    }

    /// The value as a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes).unwrap_or(serde_json::Value::Null)
    }

    /// The JSON text, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl fmt::Debug for RawReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawReply").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RawReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reply to typed command `C`: owns the `return` value and decodes
/// `C::Response` from it on demand with [`Reply::get`].
pub struct Reply<C: ?Sized> {
    raw: RawReply,
    _command: PhantomData<fn() -> C>,
}

impl<C: ?Sized> Reply<C> {
    /// Wraps a raw reply as the reply of `C`.
    pub fn from_raw(raw: RawReply) -> Self {
        Reply {
            raw,
            _command: PhantomData,
        }
    }

    /// The untyped reply.
    pub fn raw(&self) -> &RawReply {
        &self.raw
    }

    /// Gives up the type.
    pub fn into_raw(self) -> RawReply {
        self.raw
    }
}

impl<C: Command + ?Sized> Reply<C> {
    /// Decodes the typed response, borrowing this reply.
    ///
    /// # Errors
    /// The core's [`DecodeError`] when the value does not have the documented shape.
    pub fn get(&self) -> Result<C::Response<'_>, DecodeError> {
        C::decode_response(self.raw.raw())
    }
}

impl<C: ?Sized> Clone for Reply<C> {
    fn clone(&self) -> Self {
        Reply::from_raw(self.raw.clone())
    }
}

impl<C: ?Sized> fmt::Debug for Reply<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Reply").field(&self.raw.as_str()).finish()
    }
}

/// Builds the value a [`Pending`](crate::Pending) call resolves to from the raw reply.
pub(crate) type Convert<T> = fn(RawReply) -> Result<T, Error>;

/// [`Convert`] for typed replies.
pub(crate) fn to_typed<C: ?Sized>(raw: RawReply) -> Result<Reply<C>, Error> {
    Ok(Reply::from_raw(raw))
}

/// [`Convert`] for raw replies.
pub(crate) fn to_raw(raw: RawReply) -> Result<RawReply, Error> {
    Ok(raw)
}

/// [`Convert`] for `serde_json::Value` replies.
pub(crate) fn to_value(raw: RawReply) -> Result<serde_json::Value, Error> {
    Ok(serde_json::from_slice(raw.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_core::commands::QueryVersion;

    #[test]
    fn typed_reply_decodes_borrowing_itself() {
        let bytes = br#"{"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "p\u00e9"}"#;
        let raw = RawReply::copy_of(RawJson::parse(bytes).unwrap(), None);
        let reply: Reply<QueryVersion> = Reply::from_raw(raw.clone());
        let version = reply.get().unwrap();
        assert_eq!(version.qemu.major, 10);
        assert_eq!(version.package, "pé");
        assert_eq!(raw.to_value()["qemu"]["micro"], 2);
        #[derive(serde::Deserialize)]
        struct Triple {
            major: u32,
        }
        #[derive(serde::Deserialize)]
        struct Info {
            qemu: Triple,
        }
        assert_eq!(raw.deserialize::<Info>().unwrap().qemu.major, 10);
        assert!(raw.deserialize::<Vec<u8>>().is_err());
        assert_eq!(format!("{reply:?}"), format!("Reply({:?})", raw.as_str()));
    }

    #[test]
    fn wrong_shape_is_a_decode_error() {
        let raw = RawReply::copy_of(RawJson::parse(b"[1]").unwrap(), None);
        let reply: Reply<QueryVersion> = Reply::from_raw(raw);
        assert!(reply.get().is_err());
        assert_eq!(reply.raw().to_string(), "[1]");
    }
}
