//! Encoding QMP requests straight into the caller's transmit buffer.
//!
//! [`encode_request`] writes one request line,
//! `{"execute":NAME,"arguments":ARGS,"id":ID}` followed by a single LF, with no spaces and
//! the members in exactly that order (`"exec-oob"` replaces `"execute"` for
//! [`RequestKind::ExecOob`]; `arguments` and `id` are left out when `None`).
//! [`to_slice`] writes any [`serde::Serialize`] value as compact JSON, and
//! [`encoded_len`] / [`encoded_request_len`] tell how many bytes either would need.
//!
//! The serializer is our own rather than serde-json-core's, because the guarantees differ:
//!
//! - **No injection.** Every string is escaped: values, map keys, struct field and variant
//!   names, and the command name. `"` and `\` are escaped, so are all bytes below 0x20 and
//!   0x7F (`\b \f \n \r \t`, otherwise `\u00XX` in upper-case hex, as QEMU writes them).
//!   Whatever a caller puts in a string, it stays inside that string.
//! - **No panics**, whatever the value, and nothing is ever written past the end of `out`.
//!   When `out` is too small the serializer keeps counting, so
//!   [`EncodeError::BufferTooSmall`] reports the full size needed.
//! - **Nothing QEMU would reject or misread.** NaN and infinities are refused
//!   ([`EncodeError::NonFiniteFloat`]) rather than sent as `null`, and so are the Unicode
//!   non-characters that QEMU's parser rejects even when `\u`-escaped
//!   ([`EncodeError::NonCharacter`]). Map keys must be strings; integer, `bool` and `char`
//!   keys are written as strings, as serde_json does.
//!
//! The data model otherwise follows serde_json: unit and `None` are `null`, `char` is a
//! one-character string, byte slices are arrays of numbers, unit variants are strings, and
//! the other enum variants are externally tagged (`{"Variant":...}`). Finite floats use the
//! shortest representation that reads back to the same value (`1.0`, `0.1`, `1e300`).
//!
//! ```
//! use qmp_core::encode::{encode_request, RequestKind};
//!
//! #[derive(serde::Serialize)]
//! struct Enable<'a> {
//!     enable: &'a [&'a str],
//! }
//!
//! let mut tx = [0u8; 128];
//! let args = Enable { enable: &["oob"] };
//! let n = encode_request(&mut tx, RequestKind::Execute, "qmp_capabilities", Some(&args), Some(1))?;
//! assert_eq!(
//!     &tx[..n],
//!     b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},\"id\":1}\n"
//! );
//! # Ok::<(), qmp_core::encode::EncodeError>(())
//! ```

use core::fmt;

use serde::ser::{self, Impossible, Serialize};

/// Which envelope member names the command: `"execute"` or `"exec-oob"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestKind {
    /// An ordinary, in-band command: `{"execute":NAME,...}`.
    Execute,
    /// An out-of-band command: `{"exec-oob":NAME,...}` (needs the `oob` capability).
    ExecOob,
}

impl RequestKind {
    /// The envelope member that carries the command name: `"execute"` or `"exec-oob"`.
    pub const fn member_name(self) -> &'static str {
        match self {
            RequestKind::Execute => "execute",
            RequestKind::ExecOob => "exec-oob",
        }
    }
}

/// Why a value or request could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small; `required` is the full encoded length.
    BufferTooSmall {
        /// Bytes the complete encoding needs.
        required: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The request's `arguments` did not serialize to a JSON object.
    ArgumentsNotObject,
    /// A map key was neither a string nor an integer, `bool` or `char`.
    KeyNotString,
    /// A float was NaN or infinite; JSON cannot carry it.
    NonFiniteFloat,
    /// A string held a Unicode non-character (U+FDD0..=U+FDEF, U+xxFFFE, U+xxFFFF), which
    /// QEMU's parser rejects even when escaped.
    NonCharacter {
        /// The offending code point.
        code_point: u32,
    },
    /// A `Serialize` implementation reported its own error.
    Custom,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::BufferTooSmall {
                required,
                available,
            } => write!(
                f,
                "buffer too small: need {required} bytes, have {available}"
            ),
            EncodeError::ArgumentsNotObject => {
                f.write_str("command arguments are not a json object")
            }
            EncodeError::KeyNotString => f.write_str("map key is not a string"),
            EncodeError::NonFiniteFloat => f.write_str("float is nan or infinite"),
            EncodeError::NonCharacter { code_point } => {
                write!(f, "unicode non-character U+{code_point:04X} in a string")
            }
            EncodeError::Custom => f.write_str("value failed to serialize"),
        }
    }
}

impl core::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        EncodeError::Custom
    }
}

/// Encodes one QMP request line into `out` and returns the number of bytes written.
///
/// The line is `{"execute":NAME,"arguments":ARGS,"id":ID}` plus one LF (`"exec-oob"` instead
/// of `"execute"` for [`RequestKind::ExecOob`]), compact, members in that order. `arguments`
/// is omitted when `None` and must otherwise serialize to a JSON object; `id` is omitted
/// when `None`. `name` is escaped like any other string.
///
/// On error the content of `out` is unspecified. [`EncodeError::BufferTooSmall`] is only
/// reported when the request is otherwise encodable, and carries the full length needed.
pub fn encode_request<A: Serialize + ?Sized>(
    out: &mut [u8],
    kind: RequestKind,
    name: &str,
    arguments: Option<&A>,
    id: Option<u64>,
) -> Result<usize, EncodeError> {
    let mut writer = Writer::new(out);
    write_request(&mut writer, kind, name, arguments, id)?;
    writer.finish()
}

/// Encodes the guest agent's resynchronisation into `out`: the `0xFF` reset byte, then
/// `{"execute":"guest-sync-delimited","arguments":{"id":VALUE}}` and a LF (no request id:
/// the answer is matched by its value). Returns the number of bytes written.
pub(crate) fn encode_sync_request(out: &mut [u8], value: u64) -> Result<usize, EncodeError> {
    let mut writer = Writer::new(out);
    writer.push(b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":");
    write_integer(&mut writer, false, u128::from(value));
    writer.push(b"}}\n");
    writer.finish()
}

/// The exact number of bytes [`encode_request`] needs for this request.
///
/// Fails with the same errors as [`encode_request`], except
/// [`EncodeError::BufferTooSmall`].
pub fn encoded_request_len<A: Serialize + ?Sized>(
    kind: RequestKind,
    name: &str,
    arguments: Option<&A>,
    id: Option<u64>,
) -> Result<usize, EncodeError> {
    let mut writer = Writer::new(&mut []);
    write_request(&mut writer, kind, name, arguments, id)?;
    Ok(writer.len)
}

/// Serializes `value` as compact JSON into `out` and returns the number of bytes written.
///
/// No newline is appended. On error the content of `out` is unspecified.
/// [`EncodeError::BufferTooSmall`] is only reported when the value is otherwise
/// encodable, and carries the full length needed.
pub fn to_slice<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut writer = Writer::new(out);
    value.serialize(&mut Serializer::new(&mut writer))?;
    writer.finish()
}

/// The exact number of bytes [`to_slice`] needs for `value`.
///
/// Fails with the same errors as [`to_slice`], except [`EncodeError::BufferTooSmall`].
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, EncodeError> {
    let mut writer = Writer::new(&mut []);
    value.serialize(&mut Serializer::new(&mut writer))?;
    Ok(writer.len)
}

fn write_request<A: Serialize + ?Sized>(
    writer: &mut Writer<'_>,
    kind: RequestKind,
    name: &str,
    arguments: Option<&A>,
    id: Option<u64>,
) -> Result<(), EncodeError> {
    writer.push(b"{\"");
    writer.push(kind.member_name().as_bytes());
    writer.push(b"\":");
    write_string(writer, name)?;
    if let Some(arguments) = arguments {
        writer.push(b",\"arguments\":");
        let mut serializer = Serializer::new(writer);
        serializer.require_object = true;
        arguments.serialize(&mut serializer)?;
    }
    if let Some(id) = id {
        writer.push(b",\"id\":");
        write_integer(writer, false, u128::from(id));
    }
    writer.push(b"}\n");
    Ok(())
}

/// Appends to a byte slice; past its end, only counts.
struct Writer<'b> {
    out: &'b mut [u8],
    /// Bytes produced so far, including those that did not fit (saturating).
    len: usize,
}

impl<'b> Writer<'b> {
    fn new(out: &'b mut [u8]) -> Self {
        Writer { out, len: 0 }
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(destination) = self.out.get_mut(self.len..end) {
            destination.copy_from_slice(bytes);
        }
        self.len = end;
    }

    fn finish(self) -> Result<usize, EncodeError> {
        if self.len <= self.out.len() {
            Ok(self.len)
        } else {
            Err(EncodeError::BufferTooSmall {
                required: self.len,
                available: self.out.len(),
            })
        }
    }
}

/// Whether QEMU rejects `c` as a Unicode non-character (QMP.md §8.2).
fn is_non_character(c: char) -> bool {
    let code_point = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&code_point) || code_point & 0xFFFE == 0xFFFE
}

/// Writes the escaped body of a string (no quotes); chunks may be written one after another.
fn write_escaped(writer: &mut Writer<'_>, text: &str) -> Result<(), EncodeError> {
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (index, c) in text.char_indices() {
        if c.is_ascii() {
            let byte = c as u8;
            if byte >= 0x20 && byte != b'"' && byte != b'\\' && byte != 0x7F {
                continue;
            }
            writer.push(bytes.get(run_start..index).unwrap_or_default());
            run_start = index + 1;
            write_escape(writer, byte);
        } else if is_non_character(c) {
            return Err(EncodeError::NonCharacter {
                code_point: u32::from(c),
            });
        }
    }
    writer.push(bytes.get(run_start..).unwrap_or_default());
    Ok(())
}

/// Writes the escape for an ASCII byte that cannot appear raw in a string.
fn write_escape(writer: &mut Writer<'_>, byte: u8) {
    let short: &[u8] = match byte {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x0C => b"\\f",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        _ => {
            writer.push(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                upper_hex_digit(byte >> 4),
                upper_hex_digit(byte & 0xF),
            ]);
            return;
        }
    };
    writer.push(short);
}

/// The upper-case hex digit for `nibble` (0..=15).
fn upper_hex_digit(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + (nibble - 10)
    }
}

fn write_string(writer: &mut Writer<'_>, text: &str) -> Result<(), EncodeError> {
    writer.push(b"\"");
    write_escaped(writer, text)?;
    writer.push(b"\"");
    Ok(())
}

/// Writes `magnitude` in decimal, preceded by `-` when `negative`.
///
/// The number is divided by 10 as four 32-bit limbs, 16 bits at a time, so that every
/// division is a 32-bit one: 64- and 128-bit division would pull a large routine into
/// 32-bit firmware.
fn write_integer(writer: &mut Writer<'_>, negative: bool, magnitude: u128) {
    // u128::MAX has 39 digits; one more byte for the sign.
    let mut digits = [0u8; 40];
    let mut start = digits.len();
    // Most significant limb first.
    let mut limbs = [
        (magnitude >> 96) as u32,
        (magnitude >> 64) as u32,
        (magnitude >> 32) as u32,
        magnitude as u32,
    ];
    loop {
        let mut remainder = 0u32;
        for limb in &mut limbs {
            // `remainder < 10`, so each partial dividend fits in 20 bits.
            let high = (remainder << 16) | (*limb >> 16);
            remainder = high % 10;
            let low = (remainder << 16) | (*limb & 0xFFFF);
            remainder = low % 10;
            *limb = ((high / 10) << 16) | (low / 10);
        }
        start = start.saturating_sub(1);
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' + remainder as u8;
        }
        if limbs == [0; 4] {
            break;
        }
    }
    if negative {
        start = start.saturating_sub(1);
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'-';
        }
    }
    writer.push(digits.get(start..).unwrap_or_default());
}

fn write_signed(writer: &mut Writer<'_>, value: i128) {
    write_integer(writer, value < 0, value.unsigned_abs());
}

/// Adapts [`write_escaped`] to `fmt::Write`, for `collect_str`.
struct EscapingFmtWriter<'w, 'b> {
    writer: &'w mut Writer<'b>,
    error: Option<EncodeError>,
}

impl fmt::Write for EscapingFmtWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(self.writer, text).map_err(|error| {
            self.error = Some(error);
            fmt::Error
        })
    }
}

fn write_display<T: fmt::Display + ?Sized>(
    writer: &mut Writer<'_>,
    value: &T,
) -> Result<(), EncodeError> {
    writer.push(b"\"");
    let mut adapter = EscapingFmtWriter {
        writer,
        error: None,
    };
    if fmt::write(&mut adapter, format_args!("{value}")).is_err() {
        return Err(adapter.error.unwrap_or(EncodeError::Custom));
    }
    adapter.writer.push(b"\"");
    Ok(())
}

/// The compact JSON serializer over a [`Writer`].
struct Serializer<'w, 'b> {
    writer: &'w mut Writer<'b>,
    /// Set for a request's `arguments`: the next value must be a JSON object.
    require_object: bool,
}

impl<'w, 'b> Serializer<'w, 'b> {
    fn new(writer: &'w mut Writer<'b>) -> Self {
        Serializer {
            writer,
            require_object: false,
        }
    }

    /// Called as every value starts (wrappers like `Some` and newtype structs excepted).
    fn begin_value(&mut self, is_object: bool) -> Result<(), EncodeError> {
        if core::mem::take(&mut self.require_object) && !is_object {
            Err(EncodeError::ArgumentsNotObject)
        } else {
            Ok(())
        }
    }

    fn scalar(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.begin_value(false)?;
        self.writer.push(bytes);
        Ok(())
    }

    fn signed(&mut self, value: i128) -> Result<(), EncodeError> {
        self.begin_value(false)?;
        write_signed(self.writer, value);
        Ok(())
    }

    fn unsigned(&mut self, value: u128) -> Result<(), EncodeError> {
        self.begin_value(false)?;
        write_integer(self.writer, false, value);
        Ok(())
    }

    fn float<F: ryu::Float>(&mut self, value: F, is_finite: bool) -> Result<(), EncodeError> {
        self.begin_value(false)?;
        if !is_finite {
            return Err(EncodeError::NonFiniteFloat);
        }
        let mut buffer = ryu::Buffer::new();
        self.writer.push(buffer.format_finite(value).as_bytes());
        Ok(())
    }

    fn string(&mut self, text: &str) -> Result<(), EncodeError> {
        self.begin_value(false)?;
        write_string(self.writer, text)
    }

    /// Opens `{"variant":` for an externally tagged enum variant.
    fn open_variant(&mut self, variant: &str) -> Result<(), EncodeError> {
        self.begin_value(true)?;
        self.writer.push(b"{");
        write_string(self.writer, variant)?;
        self.writer.push(b":");
        Ok(())
    }
}

/// Serializes the elements of an array or the entries of an object.
struct Compound<'s, 'w, 'b> {
    serializer: &'s mut Serializer<'w, 'b>,
    first: bool,
    /// Extra closing bytes for a tagged variant: `}` after the inner `]` or `}`.
    close_variant: bool,
}

impl<'s, 'w, 'b> Compound<'s, 'w, 'b> {
    fn open(serializer: &'s mut Serializer<'w, 'b>, opener: &[u8], close_variant: bool) -> Self {
        serializer.writer.push(opener);
        Compound {
            serializer,
            first: true,
            close_variant,
        }
    }

    fn separator(&mut self) {
        if !core::mem::replace(&mut self.first, false) {
            self.serializer.writer.push(b",");
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.separator();
        value.serialize(&mut *self.serializer)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), EncodeError> {
        self.separator();
        write_string(self.serializer.writer, key)?;
        self.serializer.writer.push(b":");
        value.serialize(&mut *self.serializer)
    }

    fn close(self, closer: &[u8]) -> Result<(), EncodeError> {
        self.serializer.writer.push(closer);
        if self.close_variant {
            self.serializer.writer.push(b"}");
        }
        Ok(())
    }
}

impl<'s, 'w, 'b> ser::Serializer for &'s mut Serializer<'w, 'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Compound<'s, 'w, 'b>;
    type SerializeTuple = Compound<'s, 'w, 'b>;
    type SerializeTupleStruct = Compound<'s, 'w, 'b>;
    type SerializeTupleVariant = Compound<'s, 'w, 'b>;
    type SerializeMap = Compound<'s, 'w, 'b>;
    type SerializeStruct = Compound<'s, 'w, 'b>;
    type SerializeStructVariant = Compound<'s, 'w, 'b>;

    fn serialize_bool(self, value: bool) -> Result<(), EncodeError> {
        self.scalar(if value { b"true" } else { b"false" })
    }

    fn serialize_i8(self, value: i8) -> Result<(), EncodeError> {
        self.signed(value.into())
    }

    fn serialize_i16(self, value: i16) -> Result<(), EncodeError> {
        self.signed(value.into())
    }

    fn serialize_i32(self, value: i32) -> Result<(), EncodeError> {
        self.signed(value.into())
    }

    fn serialize_i64(self, value: i64) -> Result<(), EncodeError> {
        self.signed(value.into())
    }

    fn serialize_i128(self, value: i128) -> Result<(), EncodeError> {
        self.signed(value)
    }

    fn serialize_u8(self, value: u8) -> Result<(), EncodeError> {
        self.unsigned(value.into())
    }

    fn serialize_u16(self, value: u16) -> Result<(), EncodeError> {
        self.unsigned(value.into())
    }

    fn serialize_u32(self, value: u32) -> Result<(), EncodeError> {
        self.unsigned(value.into())
    }

    fn serialize_u64(self, value: u64) -> Result<(), EncodeError> {
        self.unsigned(value.into())
    }

    fn serialize_u128(self, value: u128) -> Result<(), EncodeError> {
        self.unsigned(value)
    }

    fn serialize_f32(self, value: f32) -> Result<(), EncodeError> {
        self.float(value, value.is_finite())
    }

    fn serialize_f64(self, value: f64) -> Result<(), EncodeError> {
        self.float(value, value.is_finite())
    }

    fn serialize_char(self, value: char) -> Result<(), EncodeError> {
        self.string(value.encode_utf8(&mut [0u8; 4]))
    }

    fn serialize_str(self, value: &str) -> Result<(), EncodeError> {
        self.string(value)
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), EncodeError> {
        self.begin_value(false)?;
        let mut array = Compound::open(self, b"[", false);
        for byte in value {
            array.separator();
            write_integer(array.serializer.writer, false, u128::from(*byte));
        }
        array.close(b"]")
    }

    fn serialize_none(self) -> Result<(), EncodeError> {
        self.scalar(b"null")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.scalar(b"null")
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        self.scalar(b"null")
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.string(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.open_variant(variant)?;
        value.serialize(&mut *self)?;
        self.writer.push(b"}");
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        self.begin_value(false)?;
        Ok(Compound::open(self, b"[", false))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, EncodeError> {
        self.begin_value(false)?;
        Ok(Compound::open(self, b"[", false))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, EncodeError> {
        self.begin_value(false)?;
        Ok(Compound::open(self, b"[", false))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        self.open_variant(variant)?;
        Ok(Compound::open(self, b"[", true))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        self.begin_value(true)?;
        Ok(Compound::open(self, b"{", false))
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, EncodeError> {
        self.begin_value(true)?;
        Ok(Compound::open(self, b"{", false))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        self.open_variant(variant)?;
        Ok(Compound::open(self, b"{", true))
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.begin_value(false)?;
        write_display(self.writer, value)
    }
}

impl ser::SerializeSeq for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.element(value)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.close(b"]")
    }
}

impl ser::SerializeTuple for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.element(value)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.close(b"]")
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.element(value)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.close(b"]")
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.element(value)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.close(b"]")
    }
}

impl ser::SerializeMap for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.separator();
        key.serialize(MapKeySerializer {
            writer: &mut *self.serializer.writer,
        })?;
        self.serializer.writer.push(b":");
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut *self.serializer)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.close(b"}")
    }
}

impl ser::SerializeStruct for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.close(b"}")
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.close(b"}")
    }
}

/// Serializes a map key: strings as they are; integers, `bool` and `char` as strings;
/// anything else is [`EncodeError::KeyNotString`].
struct MapKeySerializer<'w, 'b> {
    writer: &'w mut Writer<'b>,
}

impl MapKeySerializer<'_, '_> {
    fn quoted_signed(self, value: i128) -> Result<(), EncodeError> {
        self.writer.push(b"\"");
        write_signed(self.writer, value);
        self.writer.push(b"\"");
        Ok(())
    }

    fn quoted_unsigned(self, value: u128) -> Result<(), EncodeError> {
        self.writer.push(b"\"");
        write_integer(self.writer, false, value);
        self.writer.push(b"\"");
        Ok(())
    }
}

impl ser::Serializer for MapKeySerializer<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Impossible<(), EncodeError>;
    type SerializeTuple = Impossible<(), EncodeError>;
    type SerializeTupleStruct = Impossible<(), EncodeError>;
    type SerializeTupleVariant = Impossible<(), EncodeError>;
    type SerializeMap = Impossible<(), EncodeError>;
    type SerializeStruct = Impossible<(), EncodeError>;
    type SerializeStructVariant = Impossible<(), EncodeError>;

    fn serialize_bool(self, value: bool) -> Result<(), EncodeError> {
        self.writer
            .push(if value { b"\"true\"" } else { b"\"false\"" });
        Ok(())
    }

    fn serialize_i8(self, value: i8) -> Result<(), EncodeError> {
        self.quoted_signed(value.into())
    }

    fn serialize_i16(self, value: i16) -> Result<(), EncodeError> {
        self.quoted_signed(value.into())
    }

    fn serialize_i32(self, value: i32) -> Result<(), EncodeError> {
        self.quoted_signed(value.into())
    }

    fn serialize_i64(self, value: i64) -> Result<(), EncodeError> {
        self.quoted_signed(value.into())
    }

    fn serialize_i128(self, value: i128) -> Result<(), EncodeError> {
        self.quoted_signed(value)
    }

    fn serialize_u8(self, value: u8) -> Result<(), EncodeError> {
        self.quoted_unsigned(value.into())
    }

    fn serialize_u16(self, value: u16) -> Result<(), EncodeError> {
        self.quoted_unsigned(value.into())
    }

    fn serialize_u32(self, value: u32) -> Result<(), EncodeError> {
        self.quoted_unsigned(value.into())
    }

    fn serialize_u64(self, value: u64) -> Result<(), EncodeError> {
        self.quoted_unsigned(value.into())
    }

    fn serialize_u128(self, value: u128) -> Result<(), EncodeError> {
        self.quoted_unsigned(value)
    }

    fn serialize_f32(self, _value: f32) -> Result<(), EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_f64(self, _value: f64) -> Result<(), EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_char(self, value: char) -> Result<(), EncodeError> {
        write_string(self.writer, value.encode_utf8(&mut [0u8; 4]))
    }

    fn serialize_str(self, value: &str) -> Result<(), EncodeError> {
        write_string(self.writer, value)
    }

    fn serialize_bytes(self, _value: &[u8]) -> Result<(), EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_none(self) -> Result<(), EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_unit(self) -> Result<(), EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        write_string(self.writer, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _variant_index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(EncodeError::KeyNotString)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        write_display(self.writer, value)
    }
}

/// Writes `{"execute":NAME,"arguments":ARGUMENTS,"id":ID}\n` with `arguments` already JSON
/// text (validated by the caller), in the same layout as [`encode::encode_request`].
pub(crate) fn encode_json_request(
    out: &mut [u8],
    kind: RequestKind,
    name: &str,
    arguments: Option<&[u8]>,
    id: u64,
) -> Result<usize, EncodeError> {
    // Encode the envelope without arguments, then splice the arguments in before `,"id"`.
    let envelope_len = encode_request::<()>(out, kind, name, None, Some(id));
    let insertion = match arguments {
        None => return envelope_len,
        Some(arguments) => arguments,
    };
    let extra = b",\"arguments\":".len() + insertion.len();
    let envelope_len = match envelope_len {
        Ok(n) => n,
        Err(EncodeError::BufferTooSmall {
            required,
            available,
        }) => {
            return Err(EncodeError::BufferTooSmall {
                required: required + extra,
                available,
            })
        }
        Err(other) => return Err(other),
    };
    let total = envelope_len + extra;
    let Some(region) = out.get_mut(..total) else {
        return Err(EncodeError::BufferTooSmall {
            required: total,
            available: out.len(),
        });
    };
    // The id member starts at the last `,"id":` of the envelope.
    let id_member = region
        .get(..envelope_len)
        .and_then(|envelope| envelope.windows(6).rposition(|w| w == b",\"id\":"))
        .unwrap_or(envelope_len.saturating_sub(2));
    crate::json::move_back(region, id_member, envelope_len, extra);
    let mut at = id_member;
    for part in [&b",\"arguments\":"[..], insertion] {
        if let Some(slot) = region.get_mut(at..at + part.len()) {
            slot.copy_from_slice(part);
        }
        at += part.len();
    }
    Ok(total)
}

/// How deeply raw JSON arguments may nest (QMP arguments are shallow; the limit bounds
/// the validation's recursion on small stacks).
pub const RAW_ARGUMENTS_MAX_DEPTH: usize = 32;

/// Whether QEMU's JSON parser accepts `value`: no duplicate keys in any object (QEMU
/// answers "duplicate key" without an id), no non-characters U+FDD0..U+FDEF or U+xxFFFE /
/// U+xxFFFF in any string, raw or escaped, and no surrogate escape that is not half of a
/// pair (QMP.md §8.2).
pub(crate) fn acceptable_to_qemu(value: crate::json::RawJson<'_>, depth: usize) -> bool {
    if depth >= RAW_ARGUMENTS_MAX_DEPTH {
        return false;
    }
    let text_ok = |text: crate::json::JsonStr<'_>| {
        !has_lone_surrogate_escape(text.raw_bytes())
            && text.chars().all(|c| {
                let c = u32::from(c);
                !((0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE)
            })
    };
    if value.is_object() {
        let earlier = value.members();
        for (index, (key, member)) in value.members().enumerate() {
            if !text_ok(key) || !acceptable_to_qemu(member, depth + 1) {
                return false;
            }
            // Compare the key with every earlier key of this object (objects are small).
            let duplicate = earlier
                .clone()
                .take(index)
                .any(|(other, _)| other.chars().eq(key.chars()));
            if duplicate {
                return false;
            }
        }
        true
    } else if value.is_array() {
        value
            .elements()
            .all(|element| acceptable_to_qemu(element, depth + 1))
    } else {
        value.as_json_str().is_none_or(text_ok)
    }
}

/// Whether escaped string text holds a `\uD800`..`\uDFFF` escape that is not a high
/// surrogate directly followed by a low one (QEMU rejects it; `JsonStr::chars` would
/// quietly decode it as U+FFFD).
fn has_lone_surrogate_escape(escaped: &[u8]) -> bool {
    let unit = |at: usize| -> Option<u32> {
        match escaped.get(at..at.checked_add(6)?)? {
            [b'\\', b'u', digits @ ..] => digits.iter().try_fold(0u32, |value, &digit| {
                Some(value * 16 + (digit as char).to_digit(16)?)
            }),
            _ => None,
        }
    };
    let mut at = 0;
    while let Some(offset) = escaped
        .get(at..)
        .and_then(|rest| rest.iter().position(|&byte| byte == b'\\'))
    {
        at += offset;
        match unit(at) {
            Some(0xD800..=0xDBFF) => {
                if !matches!(unit(at + 6), Some(0xDC00..=0xDFFF)) {
                    return true;
                }
                at += 12;
            }
            Some(0xDC00..=0xDFFF) => return true,
            Some(_) => at += 6,
            // Any other escape is two bytes long.
            None => at += 2,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogate_escapes_are_found_and_pairs_are_not() {
        for (text, lone) in [
            (&br"plain"[..], false),
            (br"\ud83d\ude00", false),
            (br"\uD83D\uDE00 and \u00e9", false),
            (br"\\ud800", false),
            (br"\ud800", true),
            (br"x\ud800y", true),
            (br"\udc00", true),
            (br"\ud800\u0041", true),
            (br"\ud800\ud800\udc00", true),
            (br"\ude00\ud83d", true),
            (br"\\\ud800", true),
            (br"\u12", false),
        ] {
            assert_eq!(
                has_lone_surrogate_escape(text),
                lone,
                "{}",
                core::str::from_utf8(text).unwrap_or("?")
            );
        }
    }
    use serde::Serialize;
    use std::collections::BTreeMap;
    use std::string::{String, ToString};
    use std::vec::Vec;
    use std::{format, vec};

    /// Encodes into a buffer larger than needed, checking that the bytes past the result
    /// are untouched and that the length functions agree.
    fn request<A: Serialize + ?Sized>(
        kind: RequestKind,
        name: &str,
        arguments: Option<&A>,
        id: Option<u64>,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut buffer = vec![0xAAu8; 4096];
        let result = encode_request(&mut buffer, kind, name, arguments, id);
        assert_eq!(
            result.map_err(|_| ()),
            encoded_request_len(kind, name, arguments, id).map_err(|_| ()),
        );
        let written = result?;
        assert!(buffer[written..].iter().all(|&byte| byte == 0xAA));
        buffer.truncate(written);
        Ok(buffer)
    }

    fn json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
        // Under Miri (which interprets every byte check) the buffer is sized to the value.
        let size = if cfg!(miri) {
            encoded_len(value).map_or(256, |len| len + 16)
        } else {
            4096
        };
        let mut buffer = vec![0xAAu8; size];
        let result = to_slice(value, &mut buffer);
        assert_eq!(result.map_err(|_| ()), encoded_len(value).map_err(|_| ()));
        let written = result?;
        assert!(buffer[written..].iter().all(|&byte| byte == 0xAA));
        buffer.truncate(written);
        Ok(buffer)
    }

    fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
        String::from_utf8(json(value).expect("encodes")).expect("utf-8")
    }

    const NO_ARGUMENTS: Option<&()> = None;

    #[derive(Serialize)]
    struct Enable<'a> {
        enable: &'a [&'a str],
    }

    #[derive(Serialize)]
    struct Empty {}

    #[derive(Serialize)]
    struct GuestSync {
        id: u64,
    }

    #[derive(Serialize)]
    struct Pmemsave<'a> {
        val: u64,
        size: u64,
        filename: &'a str,
    }

    #[derive(Serialize)]
    struct BlockdevAdd<'a> {
        driver: &'a str,
        #[serde(rename = "node-name")]
        node_name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    }

    #[derive(Serialize)]
    struct CreateOptions<'a> {
        driver: &'a str,
        filename: &'a str,
        size: u64,
    }

    #[derive(Serialize)]
    struct BlockdevCreate<'a> {
        #[serde(rename = "job-id")]
        job_id: &'a str,
        options: CreateOptions<'a>,
    }

    /// (vector file, client line as captured, expected output after dropping a string id).
    fn vector_cases() -> Vec<(&'static str, &'static str, Vec<u8>)> {
        use RequestKind::{ExecOob, Execute};
        let oob = Enable { enable: &["oob"] };
        vec![
            (
                "02-negotiation.c2s",
                "{\"execute\":\"qmp_capabilities\"}\n",
                request(Execute, "qmp_capabilities", NO_ARGUMENTS, None).unwrap(),
            ),
            (
                "03-negotiation-oob.c2s",
                "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n",
                request(Execute, "qmp_capabilities", Some(&oob), None).unwrap(),
            ),
            (
                "05-query-version.c2s",
                "{\"execute\":\"query-version\",\"id\":1}\n",
                request(Execute, "query-version", NO_ARGUMENTS, Some(1)).unwrap(),
            ),
            (
                "05-query-version.c2s",
                "{\"execute\":\"query-version\"}\n",
                request(Execute, "query-version", NO_ARGUMENTS, None).unwrap(),
            ),
            (
                "05-query-version.c2s",
                "{\"execute\":\"query-version\",\"arguments\":{}}\n",
                request(Execute, "query-version", Some(&Empty {}), None).unwrap(),
            ),
            (
                "08-unknown-command.c2s",
                "{\"execute\":\"no-such-command\",\"id\":42}\n",
                request(Execute, "no-such-command", NO_ARGUMENTS, Some(42)).unwrap(),
            ),
            (
                "14-blockdev-add-null-co.c2s",
                "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"null-co\",\"node-name\":\"null0\",\"size\":1048576}}\n",
                request(
                    Execute,
                    "blockdev-add",
                    Some(&BlockdevAdd {
                        driver: "null-co",
                        node_name: "null0",
                        size: Some(1_048_576),
                    }),
                    None,
                )
                .unwrap(),
            ),
            (
                "14-blockdev-add-null-co.c2s",
                "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"null-co\",\"node-name\":\"null0\"}}\n",
                request(
                    Execute,
                    "blockdev-add",
                    Some(&BlockdevAdd {
                        driver: "null-co",
                        node_name: "null0",
                        size: None,
                    }),
                    None,
                )
                .unwrap(),
            ),
            (
                "15-job-blockdev-create.c2s",
                "{\"execute\":\"blockdev-create\",\"arguments\":{\"job-id\":\"job0\",\"options\":{\"driver\":\"file\",\"filename\":\"/tmp/qmpvec/create-test.img\",\"size\":1048576}}}\n",
                request(
                    Execute,
                    "blockdev-create",
                    Some(&BlockdevCreate {
                        job_id: "job0",
                        options: CreateOptions {
                            driver: "file",
                            filename: "/tmp/qmpvec/create-test.img",
                            size: 1_048_576,
                        },
                    }),
                    None,
                )
                .unwrap(),
            ),
            (
                "17-exec-oob-qsd.c2s",
                "{\"exec-oob\":\"query-version\"}\n",
                request(ExecOob, "query-version", NO_ARGUMENTS, None).unwrap(),
            ),
            (
                "31-qsys-oob.c2s",
                "{\"execute\":\"pmemsave\",\"arguments\":{\"val\":0,\"size\":1073741824,\"filename\":\"/dev/null\"}}\n",
                request(
                    Execute,
                    "pmemsave",
                    Some(&Pmemsave {
                        val: 0,
                        size: 1_073_741_824,
                        filename: "/dev/null",
                    }),
                    None,
                )
                .unwrap(),
            ),
            (
                "31-qsys-oob.c2s",
                "{\"exec-oob\":\"query-yank\"}\n",
                request(ExecOob, "query-yank", NO_ARGUMENTS, None).unwrap(),
            ),
            (
                "40-qga-session.c2s",
                "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":1234567890123}}\n",
                request(
                    Execute,
                    "guest-sync-delimited",
                    Some(&GuestSync { id: 1_234_567_890_123 }),
                    None,
                )
                .unwrap(),
            ),
            (
                "40-qga-session.c2s",
                "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":42}}\n",
                request(Execute, "guest-sync", Some(&GuestSync { id: 42 }), None).unwrap(),
            ),
            (
                "40-qga-session.c2s",
                "{\"execute\":\"guest-info\",\"id\":1}\n",
                request(Execute, "guest-info", NO_ARGUMENTS, Some(1)).unwrap(),
            ),
            (
                "40-qga-session.c2s",
                "{\"exec-oob\":\"guest-ping\"}\n",
                request(ExecOob, "guest-ping", NO_ARGUMENTS, None).unwrap(),
            ),
        ]
    }

    #[test]
    fn requests_match_captured_client_lines() {
        for (file, expected, encoded) in vector_cases() {
            assert_eq!(
                String::from_utf8_lossy(&encoded),
                expected,
                "request from {file}"
            );
        }
    }

    /// `line` with a trailing string `"id"` member removed, as our requests carry only
    /// integer ids.
    fn drop_string_id(line: &[u8]) -> Vec<u8> {
        let text = core::str::from_utf8(line).unwrap_or_default();
        if let Some(start) = text.rfind(",\"id\":\"") {
            let tail = &text[start + 7..];
            if tail.ends_with("\"}") && !tail[..tail.len() - 2].contains('"') {
                return format!("{}}}", &text[..start]).into_bytes();
            }
        }
        line.to_vec()
    }

    /// The expected lines above are the captures themselves (minus string ids), when the
    /// shared vectors are checked out beside the repository.
    #[test]
    #[cfg_attr(miri, ignore = "reads files")]
    fn expected_lines_come_from_the_vectors() {
        let directory =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/protocol/vectors");
        if !directory.is_dir() {
            std::eprintln!("skipped: {} not found", directory.display());
            return;
        }
        for (file, expected, _) in vector_cases() {
            let capture = std::fs::read(directory.join(file)).expect("vector file");
            let expected_line = expected.as_bytes().strip_suffix(b"\n").unwrap();
            let found = capture
                .split(|&byte| byte == b'\n')
                // 40-qga-session starts with the 0xFF reset byte.
                .map(|line| line.strip_prefix(b"\xFF").unwrap_or(line))
                .any(|line| drop_string_id(line) == expected_line);
            assert!(found, "{expected:?} not in {file}");
        }
    }

    #[test]
    fn arguments_and_id_members_are_optional_and_ordered() {
        let cases: [(Option<&Empty>, Option<u64>, &str); 4] = [
            (None, None, "{\"execute\":\"x\"}\n"),
            (
                Some(&Empty {}),
                None,
                "{\"execute\":\"x\",\"arguments\":{}}\n",
            ),
            (None, Some(0), "{\"execute\":\"x\",\"id\":0}\n"),
            (
                Some(&Empty {}),
                Some(u64::MAX),
                "{\"execute\":\"x\",\"arguments\":{},\"id\":18446744073709551615}\n",
            ),
        ];
        for (arguments, id, expected) in cases {
            let encoded = request(RequestKind::Execute, "x", arguments, id).unwrap();
            assert_eq!(String::from_utf8(encoded).unwrap(), expected);
        }
    }

    /// Strings that would break out of a naively written JSON string.
    fn hostile_strings() -> Vec<String> {
        let all_controls: String = (0u8..0x20).chain([0x7F]).map(char::from).collect();
        vec![
            String::new(),
            "\"".into(),
            "\\".into(),
            "\\\"".into(),
            "\"},\"execute\":\"quit".into(),
            "\"}}\n{\"execute\":\"quit\"}\n".into(),
            "x\",\"id\":\"y".into(),
            "'single' \\' quoted".into(),
            all_controls,
            "\u{0}".into(),
            "tab\there\r\nnew\u{8}\u{c}".into(),
            "\\u0022 not an escape".into(),
            "/slash/ and %d %s %p".into(),
            "é ü ß 日本語 🦀 \u{2028}\u{2029} \u{FEFF} \u{FFFD} \u{10FFFD}".into(),
            "\u{FDCF}\u{FDF0}\u{FFFD}".into(),
        ]
    }

    fn control_free(encoded: &[u8]) -> bool {
        encoded.iter().all(|&byte| byte >= 0x20 && byte != 0x7F)
    }

    #[test]
    fn hostile_strings_stay_inside_their_strings() {
        let strings = hostile_strings();
        let mut arguments = BTreeMap::new();
        for (index, text) in strings.iter().enumerate() {
            arguments.insert(text.clone(), text.clone());
            arguments.insert(format!("{index}{text}"), format!("{text}{index}"));
        }
        let nested = BTreeMap::from([("outer\"key", &arguments)]);
        // Every string is in the arguments of every request; under Miri (13 s a request)
        // a third of them are also tried as the command's name.
        for name in strings.iter().step_by(if cfg!(miri) { 3 } else { 1 }) {
            let encoded = request(RequestKind::Execute, name, Some(&nested), Some(7)).unwrap();
            let (line, newline) = encoded.split_at(encoded.len() - 1);
            assert_eq!(newline, b"\n");
            assert!(control_free(line), "raw control byte in {line:?}");
            let parsed: serde_json::Value = serde_json::from_slice(line).unwrap();
            // Our own validating parser accepts it as one complete value too.
            assert_eq!(
                crate::json::RawJson::parse(line).map(|raw| raw.as_bytes()),
                Ok(line)
            );
            let envelope = parsed.as_object().unwrap();
            let members: Vec<&str> = envelope.keys().map(String::as_str).collect();
            assert_eq!(members, ["arguments", "execute", "id"]);
            assert_eq!(envelope["execute"], serde_json::Value::from(name.as_str()));
            assert_eq!(
                envelope["arguments"],
                serde_json::to_value(&nested).unwrap()
            );
            assert_eq!(envelope["id"], serde_json::Value::from(7));
            // Member order on the wire: execute, arguments, id.
            let execute_at = find(line, b"\"execute\":").unwrap();
            assert_eq!(execute_at, 1);
            assert!(line.ends_with(b",\"id\":7}"));
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack
            .windows(needle.len())
            .position(|window| window == needle)
    }

    #[test]
    fn escapes_are_exactly_the_specified_ones() {
        assert_eq!(
            json_text("\u{0}\u{1}\u{1f}\u{7f}\"\\\u{8}\u{c}\n\r\t/é\u{80}\u{9f}"),
            "\"\\u0000\\u0001\\u001F\\u007F\\\"\\\\\\b\\f\\n\\r\\t/é\u{80}\u{9f}\""
        );
        assert_eq!(json_text("\u{b}\u{1a}\u{1b}"), "\"\\u000B\\u001A\\u001B\"");
        assert_eq!(json_text("plain"), "\"plain\"");
        for byte in 0u8..0x80 {
            let text = json_text(&char::from(byte));
            let parsed: String = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, char::from(byte).to_string());
            assert!(control_free(text.as_bytes()), "{byte:#x} → {text}");
        }
    }

    #[test]
    fn keys_and_names_are_escaped_too() {
        let map = BTreeMap::from([("a\"b\n", 1)]);
        assert_eq!(json_text(&map), "{\"a\\\"b\\n\":1}");
        #[derive(Serialize)]
        struct Renamed {
            #[serde(rename = "x\"y")]
            field: u8,
        }
        assert_eq!(json_text(&Renamed { field: 1 }), "{\"x\\\"y\":1}");
        #[derive(Serialize)]
        enum Variant {
            #[serde(rename = "q\"")]
            Unit,
            #[serde(rename = "n\\")]
            Newtype(u8),
        }
        assert_eq!(json_text(&Variant::Unit), "\"q\\\"\"");
        assert_eq!(json_text(&Variant::Newtype(1)), "{\"n\\\\\":1}");
        let encoded = request(RequestKind::ExecOob, "a\"}\n", NO_ARGUMENTS, None).unwrap();
        assert_eq!(encoded, b"{\"exec-oob\":\"a\\\"}\\n\"}\n");
    }

    fn check_every_buffer_size(
        expected: &[u8],
        encode: impl Fn(&mut [u8]) -> Result<usize, EncodeError>,
    ) {
        let len = expected.len();
        let mut backing = vec![0u8; len + 8];
        // Every size natively; under Miri the small ones, every 7th and the last few.
        let sampled =
            |size: &usize| !cfg!(miri) || *size < 8 || size.is_multiple_of(7) || *size + 4 >= len;
        for size in (0..len).filter(sampled) {
            backing.fill(0x5A);
            assert_eq!(
                encode(&mut backing[..size]),
                Err(EncodeError::BufferTooSmall {
                    required: len,
                    available: size
                })
            );
            assert!(
                backing[size..].iter().all(|&byte| byte == 0x5A),
                "wrote past {size}"
            );
        }
        for size in [len, len + 1, len + 8] {
            backing.fill(0x5A);
            assert_eq!(encode(&mut backing[..size]), Ok(len));
            assert_eq!(&backing[..len], expected);
            assert!(backing[len..].iter().all(|&byte| byte == 0x5A));
        }
    }

    #[test]
    fn buffer_too_small_reports_the_full_length_at_every_size() {
        let arguments = BlockdevAdd {
            driver: "null\"co\u{1}",
            node_name: "日本🦀",
            size: Some(u64::MAX),
        };
        let expected = request(
            RequestKind::Execute,
            "blockdev-add",
            Some(&arguments),
            Some(99),
        )
        .unwrap();
        assert_eq!(
            encoded_request_len(
                RequestKind::Execute,
                "blockdev-add",
                Some(&arguments),
                Some(99)
            ),
            Ok(expected.len())
        );
        check_every_buffer_size(&expected, |out| {
            encode_request(
                out,
                RequestKind::Execute,
                "blockdev-add",
                Some(&arguments),
                Some(99),
            )
        });

        let value = (
            vec![1.5f64, -0.0, 1e300],
            BTreeMap::from([(-5i32, "\u{7f}")]),
            Bytes(&[0, 255]),
            i128::MIN,
        );
        let expected = json(&value).unwrap();
        assert_eq!(encoded_len(&value), Ok(expected.len()));
        check_every_buffer_size(&expected, |out| to_slice(&value, out));
    }

    #[test]
    fn semantic_errors_win_over_buffer_too_small() {
        let mut tiny = [0u8; 2];
        assert_eq!(
            to_slice(&[1.0, f64::NAN], &mut tiny),
            Err(EncodeError::NonFiniteFloat)
        );
        assert_eq!(
            encode_request(&mut tiny, RequestKind::Execute, "x", Some(&3), None),
            Err(EncodeError::ArgumentsNotObject)
        );
        assert_eq!(
            encoded_request_len(RequestKind::Execute, "\u{FFFF}", NO_ARGUMENTS, None),
            Err(EncodeError::NonCharacter { code_point: 0xFFFF })
        );
    }

    #[test]
    fn non_characters_are_refused_everywhere() {
        let refused = [
            0xFDD0u32, 0xFDE0, 0xFDEF, 0xFFFE, 0xFFFF, 0x1FFFE, 0x1FFFF, 0x2FFFE, 0x10FFFE,
            0x10FFFF,
        ];
        let accepted = [
            0xFDCFu32, 0xFDF0, 0xFFFD, 0xFFFC, 0x10000, 0x1FFFD, 0x20000, 0x10FFFD,
        ];
        for code_point in refused {
            let c = char::from_u32(code_point).unwrap();
            let error = Err(EncodeError::NonCharacter { code_point });
            let text = format!("ok{c}ok");
            assert_eq!(json(&text), error);
            assert_eq!(json(&c), error);
            assert_eq!(json(&BTreeMap::from([(text.as_str(), 1)])), error);
            assert_eq!(json(&BTreeMap::from([(c, 1)])), error);
            assert_eq!(json(&Displayed(&text)), error);
            assert_eq!(
                request(RequestKind::Execute, &text, NO_ARGUMENTS, None),
                error
            );
        }
        for code_point in accepted {
            let c = char::from_u32(code_point).unwrap();
            let expected = format!("\"{c}\"");
            assert_eq!(json_text(&c), expected);
            assert_eq!(json_text(&Displayed(&c)), expected);
        }
    }

    #[test]
    fn floats_are_shortest_and_non_finite_is_refused() {
        let cases: [(f64, &str); 8] = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (1e300, "1e300"),
            (-2.5e-7, "-2.5e-7"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e308"),
            (123456.789, "123456.789"),
        ];
        for (value, expected) in cases {
            assert_eq!(json_text(&value), expected);
            let parsed: f64 = serde_json::from_str(expected).unwrap();
            assert_eq!(parsed.to_bits(), value.to_bits());
        }
        assert_eq!(json_text(&0.1f32), "0.1");
        assert_eq!(json_text(&16777216f32), "16777216.0");
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(json(&value), Err(EncodeError::NonFiniteFloat));
            assert_eq!(json(&[value]), Err(EncodeError::NonFiniteFloat));
            assert_eq!(json(&(value as f32)), Err(EncodeError::NonFiniteFloat));
            assert_eq!(
                request(
                    RequestKind::Execute,
                    "x",
                    Some(&BTreeMap::from([("f", value)])),
                    None
                ),
                Err(EncodeError::NonFiniteFloat)
            );
        }
    }

    #[test]
    fn integers_cover_every_width() {
        assert_eq!(json_text(&0u8), "0");
        assert_eq!(json_text(&u8::MAX), "255");
        assert_eq!(json_text(&i8::MIN), "-128");
        assert_eq!(json_text(&i16::MIN), "-32768");
        assert_eq!(json_text(&u32::MAX), "4294967295");
        assert_eq!(json_text(&i64::MIN), "-9223372036854775808");
        assert_eq!(json_text(&i64::MAX), "9223372036854775807");
        assert_eq!(json_text(&u64::MAX), "18446744073709551615");
        assert_eq!(
            json_text(&u128::MAX),
            "340282366920938463463374607431768211455"
        );
        assert_eq!(
            json_text(&i128::MIN),
            "-170141183460469231731687303715884105728"
        );
        assert_eq!(json_text(&-1i128), "-1");
        assert_eq!(
            json_text(&(u128::from(u64::MAX) + 1)),
            "18446744073709551616"
        );
        assert_eq!(
            json_text(&-(i128::from(u64::MAX) + 1)),
            "-18446744073709551616"
        );
        assert_eq!(json_text(&-i128::from(u64::MAX)), "-18446744073709551615");
        for value in [
            0i64,
            7,
            -7,
            10,
            -10,
            99,
            100,
            1_000_000_007,
            -999_999_999_999,
        ] {
            assert_eq!(json_text(&value), value.to_string());
            assert_eq!(json_text(&(value as i128)), value.to_string());
        }
    }

    /// Serializes as a map from a list of pairs, so any key type can be tried.
    struct Pairs<K, V>(Vec<(K, V)>);

    impl<K: Serialize, V: Serialize> Serialize for Pairs<K, V> {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
        }
    }

    #[derive(Serialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum KeyKind {
        Alpha,
        #[serde(rename = "beta-b")]
        Beta,
    }

    #[derive(Serialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct KeyNewtype(u16);

    #[test]
    fn scalar_keys_become_strings_like_serde_json() {
        fn same_as_serde_json<K: Serialize + Clone>(key: K) {
            let value = Pairs(vec![(key.clone(), 1u8), (key, 2u8)]);
            assert_eq!(json_text(&value), serde_json::to_string(&value).unwrap());
        }
        same_as_serde_json(i8::MIN);
        same_as_serde_json(-42i64);
        same_as_serde_json(u64::MAX);
        same_as_serde_json(0u32);
        same_as_serde_json(true);
        same_as_serde_json(false);
        same_as_serde_json('x');
        same_as_serde_json('"');
        same_as_serde_json(KeyKind::Alpha);
        same_as_serde_json(KeyKind::Beta);
        same_as_serde_json(KeyNewtype(513));
        assert_eq!(
            json_text(&Pairs(vec![(i128::MIN, 0), (u128::MAX as i128, 1)])),
            "{\"-170141183460469231731687303715884105728\":0,\"-1\":1}"
        );
        assert_eq!(
            json_text(&Pairs(vec![(u128::MAX, 0)])),
            "{\"340282366920938463463374607431768211455\":0}"
        );
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(u8, &'static str),
        Struct { a: u8, b: Option<u8> },
    }

    #[test]
    fn other_keys_are_refused() {
        let refused = EncodeError::KeyNotString;
        assert_eq!(json(&Pairs(vec![(1.5f64, 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![(1.5f32, 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![((), 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![(None::<u8>, 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![(Some("a"), 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![((1, 2), 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![(vec![1], 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![(Bytes(b"k"), 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![(Empty {}, 0)])), Err(refused));
        assert_eq!(
            json(&Pairs(vec![(BTreeMap::from([(1, 2)]), 0)])),
            Err(refused)
        );
        assert_eq!(json(&Pairs(vec![(Shape::Newtype(1), 0)])), Err(refused));
        assert_eq!(json(&Pairs(vec![(Shape::Tuple(1, "a"), 0)])), Err(refused));
        assert_eq!(
            json(&Pairs(vec![(Shape::Struct { a: 1, b: None }, 0)])),
            Err(refused)
        );
        #[derive(Serialize)]
        struct UnitStruct;
        assert_eq!(json(&Pairs(vec![(UnitStruct, 0)])), Err(refused));
        // Unit variants are strings, so they are accepted.
        assert_eq!(json_text(&Pairs(vec![(Shape::Unit, 0)])), "{\"Unit\":0}");
    }

    /// Serializes through `serialize_bytes`.
    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    /// Serializes through `collect_str`.
    struct Displayed<'a, T: ?Sized>(&'a T);

    impl<T: fmt::Display + ?Sized> Serialize for Displayed<'_, T> {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self.0)
        }
    }

    #[test]
    fn chars_bytes_units_and_options() {
        assert_eq!(json_text(&'a'), "\"a\"");
        assert_eq!(json_text(&'"'), "\"\\\"\"");
        assert_eq!(json_text(&'\u{0}'), "\"\\u0000\"");
        assert_eq!(json_text(&'🦀'), "\"🦀\"");
        assert_eq!(json_text(&Bytes(b"")), "[]");
        assert_eq!(json_text(&Bytes(&[0, 1, 34, 92, 255])), "[0,1,34,92,255]");
        assert_eq!(
            json_text(&Bytes(b"\"}")),
            serde_json::to_string(&Bytes(b"\"}")).unwrap()
        );
        assert_eq!(json_text(&()), "null");
        assert_eq!(json_text(&None::<u8>), "null");
        assert_eq!(json_text(&Some(Some(3u8))), "3");
        #[derive(Serialize)]
        struct UnitStruct;
        assert_eq!(json_text(&UnitStruct), "null");
        assert_eq!(json_text(&(1u8, "two", [3u8])), "[1,\"two\",[3]]");
        assert_eq!(json_text(&Vec::<u8>::new()), "[]");
        assert_eq!(json_text(&BTreeMap::<u8, u8>::new()), "{}");
    }

    #[test]
    fn enums_are_externally_tagged_like_serde_json() {
        #[derive(Serialize)]
        struct TupleStruct(u8, i8);
        #[derive(Serialize)]
        struct Wrapper(Shape);
        let values = [
            Shape::Unit,
            Shape::Newtype(7),
            Shape::Tuple(1, "a\"b"),
            Shape::Struct { a: 1, b: None },
            Shape::Struct { a: 2, b: Some(3) },
        ];
        for value in &values {
            assert_eq!(json_text(value), serde_json::to_string(value).unwrap());
        }
        assert_eq!(json_text(&values[2]), "{\"Tuple\":[1,\"a\\\"b\"]}");
        assert_eq!(json_text(&values[3]), "{\"Struct\":{\"a\":1,\"b\":null}}");
        assert_eq!(json_text(&TupleStruct(1, -1)), "[1,-1]");
        assert_eq!(json_text(&Wrapper(Shape::Unit)), "\"Unit\"");
        let nested = vec![
            vec![Shape::Newtype(1)],
            vec![Shape::Unit, Shape::Tuple(0, "")],
        ];
        assert_eq!(json_text(&nested), serde_json::to_string(&nested).unwrap());
    }

    #[test]
    fn collect_str_is_escaped_across_chunks() {
        struct Pieces;
        impl fmt::Display for Pieces {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a\"")?;
                f.write_str("\n\\")?;
                write!(f, "{}", 42)
            }
        }
        assert_eq!(json_text(&Displayed(&Pieces)), "\"a\\\"\\n\\\\42\"");
        assert_eq!(
            json_text(&Pairs(vec![(Displayed(&Pieces), 1)])),
            "{\"a\\\"\\n\\\\42\":1}"
        );

        struct Failing;
        impl fmt::Display for Failing {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("partial")?;
                Err(fmt::Error)
            }
        }
        assert_eq!(json(&Displayed(&Failing)), Err(EncodeError::Custom));
    }

    #[test]
    fn custom_errors_surface_as_custom() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: ser::Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no"))
            }
        }
        assert_eq!(json(&Refuses), Err(EncodeError::Custom));
        assert_eq!(json(&[Refuses]), Err(EncodeError::Custom));
        assert_eq!(json(&Pairs(vec![(Refuses, 1)])), Err(EncodeError::Custom));
        assert_eq!(
            request(
                RequestKind::Execute,
                "x",
                Some(&BTreeMap::from([("k", Refuses)])),
                None
            ),
            Err(EncodeError::Custom)
        );
    }

    #[test]
    fn arguments_must_be_an_object() {
        #[derive(Serialize)]
        struct UnitStruct;
        #[derive(Serialize)]
        struct Wrapper<T>(T);
        let refused = Err(EncodeError::ArgumentsNotObject);
        fn go<A: Serialize + ?Sized>(arguments: &A) -> Result<Vec<u8>, EncodeError> {
            request(RequestKind::Execute, "x", Some(arguments), None)
        }
        assert_eq!(go(&5u8), refused);
        assert_eq!(go(&-5i64), refused);
        assert_eq!(go(&1.5f64), refused);
        assert_eq!(go(&true), refused);
        assert_eq!(go(&'c'), refused);
        assert_eq!(go(&"{}"), refused);
        assert_eq!(go(&Displayed("{}")), refused);
        assert_eq!(go(&Bytes(b"{}")), refused);
        assert_eq!(go(&()), refused);
        assert_eq!(go(&None::<Empty>), refused);
        assert_eq!(go(&Some(())), refused);
        assert_eq!(go(&UnitStruct), refused);
        assert_eq!(go(&Shape::Unit), refused);
        assert_eq!(go(&[1u8]), refused);
        assert_eq!(go(&(1u8,)), refused);
        assert_eq!(go(&Wrapper(5u8)), refused);
        assert_eq!(
            encoded_request_len(RequestKind::ExecOob, "x", Some(&[0u8; 0]), None),
            refused.map(|_: Vec<u8>| 0)
        );

        assert_eq!(
            go(&Empty {}).unwrap(),
            b"{\"execute\":\"x\",\"arguments\":{}}\n"
        );
        assert_eq!(
            go(&Some(Empty {})).unwrap(),
            b"{\"execute\":\"x\",\"arguments\":{}}\n"
        );
        assert_eq!(
            go(&Wrapper(BTreeMap::from([("a", [1u8])]))).unwrap(),
            b"{\"execute\":\"x\",\"arguments\":{\"a\":[1]}}\n"
        );
        // Externally tagged variants other than unit ones are objects.
        assert_eq!(
            go(&Shape::Newtype(1)).unwrap(),
            b"{\"execute\":\"x\",\"arguments\":{\"Newtype\":1}}\n"
        );
        assert_eq!(
            go(&Shape::Struct { a: 1, b: None }).unwrap(),
            b"{\"execute\":\"x\",\"arguments\":{\"Struct\":{\"a\":1,\"b\":null}}}\n"
        );
        // The rule applies to the top level only.
        assert_eq!(
            go(&BTreeMap::from([("a", 5u8)])).unwrap(),
            b"{\"execute\":\"x\",\"arguments\":{\"a\":5}}\n"
        );
    }

    #[test]
    fn display_messages() {
        let cases = [
            (
                EncodeError::BufferTooSmall {
                    required: 120,
                    available: 64,
                },
                "buffer too small: need 120 bytes, have 64",
            ),
            (
                EncodeError::ArgumentsNotObject,
                "command arguments are not a json object",
            ),
            (EncodeError::KeyNotString, "map key is not a string"),
            (EncodeError::NonFiniteFloat, "float is nan or infinite"),
            (
                EncodeError::NonCharacter { code_point: 0xFDD0 },
                "unicode non-character U+FDD0 in a string",
            ),
            (
                EncodeError::NonCharacter {
                    code_point: 0x10FFFF,
                },
                "unicode non-character U+10FFFF in a string",
            ),
            (EncodeError::Custom, "value failed to serialize"),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
        }
        assert_eq!(RequestKind::Execute.member_name(), "execute");
        assert_eq!(RequestKind::ExecOob.member_name(), "exec-oob");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        fn config() -> ProptestConfig {
            if cfg!(miri) {
                ProptestConfig {
                    cases: 3,
                    failure_persistence: None,
                    ..ProptestConfig::default()
                }
            } else {
                ProptestConfig::with_cases(512)
            }
        }

        /// Characters biased towards the ones that need care.
        fn interesting_char() -> impl Strategy<Value = char> {
            prop_oneof![
                3 => any::<char>(),
                2 => proptest::char::range('\u{0}', '\u{7f}'),
                2 => proptest::sample::select(vec![
                    '"', '\\', '/', '\'', '{', '}', ':', ',', '\u{7f}', '\u{80}', '\u{2028}',
                    '\u{FDCF}', '\u{FDD0}', '\u{FDEF}', '\u{FFFD}', '\u{FFFE}', '\u{FFFF}',
                    '\u{1FFFF}', '\u{10FFFF}', 'é', '🦀',
                ]),
            ]
        }

        fn interesting_string() -> impl Strategy<Value = String> {
            proptest::collection::vec(interesting_char(), 0..12)
                .prop_map(|chars| chars.into_iter().collect())
        }

        fn finite_f64() -> impl Strategy<Value = f64> {
            prop_oneof![
                any::<f64>().prop_filter("finite", |value| value.is_finite()),
                proptest::sample::select(vec![0.0, -0.0, 1.0, 0.1, 1e300, 5e-324, f64::MAX]),
            ]
        }

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                finite_f64().prop_map(Value::from),
                interesting_string().prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::btree_map(interesting_string(), inner, 0..6)
                        .prop_map(|map| Value::Object(map.into_iter().collect())),
                ]
            })
        }

        /// Whether QEMU's parser would reject some string in `value` (serde_json writes
        /// non-characters raw, so its output shows them).
        fn has_non_character<T: Serialize + ?Sized>(value: &T) -> bool {
            serde_json::to_string(value)
                .unwrap()
                .chars()
                .any(qemu_rejects)
        }

        /// The test's own statement of QMP.md §8.2, independent of `is_non_character`.
        fn qemu_rejects(c: char) -> bool {
            let code_point = u32::from(c);
            (0xFDD0..=0xFDEF).contains(&code_point) || code_point % 0x10000 >= 0xFFFE
        }

        fn is_non_character_error(result: &Result<usize, EncodeError>) -> bool {
            matches!(
                result,
                Err(EncodeError::NonCharacter { code_point })
                    if char::from_u32(*code_point).is_some_and(qemu_rejects)
            )
        }

        fn round_trip<T: Serialize + ?Sized>(value: &T) -> Result<(), TestCaseError> {
            let mut buffer = vec![0u8; 1 << 16];
            let result = to_slice(value, &mut buffer);
            if has_non_character(value) {
                prop_assert!(is_non_character_error(&result), "{result:?}");
                prop_assert_eq!(encoded_len(value), result);
                return Ok(());
            }
            let written = result.unwrap();
            prop_assert_eq!(encoded_len(value), Ok(written));
            let encoded = &buffer[..written];
            prop_assert!(control_free(encoded));
            let parsed: Value = serde_json::from_slice(encoded).unwrap();
            prop_assert_eq!(
                crate::json::RawJson::parse(encoded).map(|raw| raw.as_bytes()),
                Ok(encoded)
            );
            prop_assert_eq!(parsed, serde_json::to_value(value).unwrap());
            if written > 0 {
                let mut short = vec![0u8; written - 1];
                prop_assert_eq!(
                    to_slice(value, &mut short),
                    Err(EncodeError::BufferTooSmall {
                        required: written,
                        available: written - 1
                    })
                );
            }
            Ok(())
        }

        #[derive(Serialize, Debug, Clone)]
        enum MixedShape {
            Unit,
            Newtype(String),
            Tuple(i16, String),
            Struct { name: String, value: f64 },
        }

        #[derive(Serialize, Debug)]
        struct Mixed {
            text: String,
            letter: char,
            small: i8,
            wide: u64,
            flag: Option<bool>,
            shape: MixedShape,
            shapes: Vec<MixedShape>,
            int_keys: BTreeMap<i32, String>,
            char_keys: BTreeMap<char, u8>,
            bool_keys: BTreeMap<bool, ()>,
        }

        fn mixed_shape() -> impl Strategy<Value = MixedShape> {
            prop_oneof![
                Just(MixedShape::Unit),
                interesting_string().prop_map(MixedShape::Newtype),
                (any::<i16>(), interesting_string())
                    .prop_map(|(number, text)| MixedShape::Tuple(number, text)),
                (interesting_string(), finite_f64())
                    .prop_map(|(name, value)| MixedShape::Struct { name, value }),
            ]
        }

        fn mixed() -> impl Strategy<Value = Mixed> {
            (
                (
                    interesting_string(),
                    interesting_char(),
                    any::<i8>(),
                    any::<u64>(),
                ),
                (any::<Option<bool>>(), mixed_shape()),
                proptest::collection::vec(mixed_shape(), 0..4),
                proptest::collection::btree_map(any::<i32>(), interesting_string(), 0..4),
                proptest::collection::btree_map(interesting_char(), any::<u8>(), 0..4),
                proptest::collection::btree_map(any::<bool>(), Just(()), 0..3),
            )
                .prop_map(
                    |(
                        (text, letter, small, wide),
                        (flag, shape),
                        shapes,
                        int_keys,
                        char_keys,
                        bool_keys,
                    )| Mixed {
                        text,
                        letter,
                        small,
                        wide,
                        flag,
                        shape,
                        shapes,
                        int_keys,
                        char_keys,
                        bool_keys,
                    },
                )
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn values_round_trip_through_serde_json(value in json_value()) {
                round_trip(&value)?;
            }

            #[test]
            fn derived_types_round_trip_through_serde_json(value in mixed()) {
                round_trip(&value)?;
            }

            #[test]
            fn requests_have_exactly_the_envelope_members(
                name in interesting_string(),
                arguments in proptest::option::of(
                    proptest::collection::btree_map(interesting_string(), json_value(), 0..5)
                ),
                id in proptest::option::of(any::<u64>()),
                out_of_band in any::<bool>(),
            ) {
                let kind = if out_of_band { RequestKind::ExecOob } else { RequestKind::Execute };
                let mut buffer = vec![0u8; 1 << 16];
                let result = encode_request(&mut buffer, kind, &name, arguments.as_ref(), id);
                prop_assert_eq!(encoded_request_len(kind, &name, arguments.as_ref(), id), result);
                if has_non_character(&name) || has_non_character(&arguments) {
                    prop_assert!(is_non_character_error(&result), "{result:?}");
                    return Ok(());
                }
                let written = result.unwrap();
                let (line, newline) = buffer[..written].split_at(written - 1);
                prop_assert_eq!(newline, b"\n");
                prop_assert!(control_free(line));
                let parsed: Value = serde_json::from_slice(line).unwrap();
                prop_assert_eq!(
                    crate::json::RawJson::parse(line).map(|raw| raw.as_bytes()),
                    Ok(line)
                );
                let mut expected = serde_json::Map::new();
                expected.insert(kind.member_name().into(), Value::from(name.as_str()));
                if let Some(arguments) = &arguments {
                    expected.insert("arguments".into(), serde_json::to_value(arguments).unwrap());
                }
                if let Some(id) = id {
                    expected.insert("id".into(), Value::from(id));
                }
                prop_assert_eq!(parsed, Value::Object(expected));
                let opening = format!("{{\"{}\":", kind.member_name());
                prop_assert!(line.starts_with(opening.as_bytes()));
            }
        }
    }
}
