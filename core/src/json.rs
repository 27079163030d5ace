//! Streaming, allocation-free, validating JSON.
//!
//! Two layers:
//! - [`Framer`] splits a byte stream into complete top-level JSON values ([`Frame`]s),
//!   validating them strictly (RFC 8259, UTF-8) as bytes arrive, without ever holding more
//!   than the caller's receive buffer. Values longer than the buffer are validated and
//!   skipped ([`Item::Oversize`]); invalid input is reported once per message
//!   ([`Item::Malformed`]) and the framer resynchronises on the next line.
//! - [`RawJson`] is one complete, valid value, walked lazily: [`RawJson::members`],
//!   [`RawJson::get`], [`RawJson::elements`], scalar accessors, and serde decoding through
//!   serde-json-core ([`RawJson::deserialize`]). [`JsonStr`] is a string still escaped,
//!   decoded on demand.

use core::fmt;

mod decode;
mod framer;
mod raw;
mod scanner;
mod string;
mod swar;
#[cfg(test)]
mod tests;

pub use framer::{Frame, Framer, FramerStats, Item};
pub use raw::{Elements, JsonKind, Members, RawJson};
pub use string::{JsonChars, JsonStr};

/// Moves `buffer[from..to]` to the front of `buffer` (like `copy_within(from..to, 0)`)
/// as forward copies of non-overlapping chunks, so firmware links `memcpy` only and not
/// `memmove` as well. Never panics: a range reaching past `buffer` stops moving there.
pub(crate) fn move_to_front(buffer: &mut [u8], from: usize, to: usize) {
    let mut done = 0;
    while from > 0 && from + done < to {
        let chunk = from.min(to - from - done);
        let Some((front, back)) = buffer.split_at_mut_checked(from + done) else {
            return;
        };
        if let (Some(target), Some(source)) = (front.get_mut(done..done + chunk), back.get(..chunk))
        {
            target.copy_from_slice(source);
        } else {
            return;
        }
        done += chunk;
    }
}

/// Moves `buffer[from..to]` `by` bytes towards the end (like
/// `copy_within(from..to, from + by)`) as backward copies of non-overlapping chunks (see
/// [`move_to_front`]). Never panics: a range that does not fit stops moving there.
pub(crate) fn move_back(buffer: &mut [u8], from: usize, to: usize, by: usize) {
    let mut left = to.saturating_sub(from);
    while by > 0 && left > 0 {
        let chunk = by.min(left);
        let source_start = from + left - chunk;
        let Some((front, back)) = buffer.split_at_mut_checked(from + left) else {
            return;
        };
        if let (Some(source), Some(target)) =
            (front.get(source_start..), back.get_mut(by - chunk..by))
        {
            target.copy_from_slice(source);
        } else {
            return;
        }
        left -= chunk;
    }
}

/// The largest nesting depth any scanner accepts (objects and arrays count one level each).
pub const MAX_DEPTH_LIMIT: usize = 256;

/// The nesting depth a [`Framer`] accepts unless told otherwise.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Invalid JSON, and where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct JsonError {
    /// What is wrong.
    pub kind: JsonErrorKind,
    /// Offset of the offending byte: in the stream for a [`Framer`], in the input for
    /// [`RawJson::parse`].
    pub offset: u64,
}

impl JsonError {
    /// An error of `kind` at `offset`.
    pub const fn new(kind: JsonErrorKind, offset: u64) -> Self {
        JsonError { kind, offset }
    }
}

/// The ways JSON text can be invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// A byte that cannot appear here (structure, commas, colons, stray characters).
    UnexpectedByte {
        /// The byte.
        byte: u8,
    },
    /// A backslash escape other than `\" \\ \/ \b \f \n \r \t \uXXXX`.
    InvalidEscape,
    /// Bytes that are not well-formed UTF-8 (overlong, surrogate, above U+10FFFF,
    /// truncated).
    InvalidUtf8,
    /// A number that breaks the JSON grammar (`01`, `1.`, `-`, `1e`, `-inf`, ...).
    InvalidNumber,
    /// A misspelt `true`, `false` or `null` (also `nan`).
    InvalidLiteral,
    /// Containers nested deeper than the limit.
    TooDeep {
        /// The depth limit in force.
        limit: usize,
    },
    /// A raw control byte (below 0x20) inside a string.
    ControlInString {
        /// The byte.
        byte: u8,
    },
    /// Something other than whitespace after the value.
    TrailingCharacters,
    /// No value at all (only whitespace).
    Empty,
    /// The input ends inside a value.
    Truncated,
}

impl fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonErrorKind::UnexpectedByte { byte } => write!(f, "unexpected byte 0x{byte:02x}"),
            JsonErrorKind::InvalidEscape => f.write_str("invalid escape sequence"),
            JsonErrorKind::InvalidUtf8 => f.write_str("invalid utf-8"),
            JsonErrorKind::InvalidNumber => f.write_str("invalid number"),
            JsonErrorKind::InvalidLiteral => f.write_str("invalid literal"),
            JsonErrorKind::TooDeep { limit } => write!(f, "nesting deeper than {limit}"),
            JsonErrorKind::ControlInString { byte } => {
                write!(f, "control byte 0x{byte:02x} in string")
            }
            JsonErrorKind::TrailingCharacters => f.write_str("trailing characters after value"),
            JsonErrorKind::Empty => f.write_str("no value"),
            JsonErrorKind::Truncated => f.write_str("truncated value"),
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl core::error::Error for JsonError {}

/// Errors decoding a JSON value into a Rust type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// serde-json-core rejected the value for the target type.
    Json(serde_json_core::de::Error),
    /// An array was expected.
    NotAnArray,
    /// An object was expected.
    NotAnObject,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json(error) => write!(f, "cannot decode value: {error}"),
            DecodeError::NotAnArray => f.write_str("value is not an array"),
            DecodeError::NotAnObject => f.write_str("value is not an object"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl From<serde_json_core::de::Error> for DecodeError {
    fn from(error: serde_json_core::de::Error) -> Self {
        DecodeError::Json(error)
    }
}

/// A buffer too small for the bytes to be written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct BufferTooSmall {
    /// Bytes needed.
    pub required: usize,
    /// Bytes available.
    pub available: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer too small: {} bytes needed, {} available",
            self.required, self.available
        )
    }
}

impl core::error::Error for BufferTooSmall {}
