//! [`RawJson`]: the exact bytes of one valid JSON value, walked lazily.

use core::fmt;

use super::scanner::{is_whitespace, skip_whitespace};
use super::swar::skip_plain_string;
use super::{DecodeError, JsonError, JsonStr};

/// The exact bytes of one valid JSON value, without surrounding whitespace.
///
/// It borrows the bytes it was made from (usually the receive buffer of a
/// [`Framer`](super::Framer)). Accessors walk the text lazily and never allocate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawJson<'a> {
    bytes: &'a [u8],
}

/// The kind of a JSON value, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum JsonKind {
    /// `{ ... }`
    Object,
    /// `[ ... ]`
    Array,
    /// `"..."`
    String,
    /// A number.
    Number,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Object => "object",
            JsonKind::Array => "array",
            JsonKind::String => "string",
            JsonKind::Number => "number",
            JsonKind::Bool => "boolean",
            JsonKind::Null => "null",
        })
    }
}

impl<'a> RawJson<'a> {
    /// `null`.
    pub const NULL: RawJson<'static> = RawJson { bytes: b"null" };
    /// `{}`.
    pub const EMPTY_OBJECT: RawJson<'static> = RawJson { bytes: b"{}" };

    /// Validates that `bytes` hold exactly one JSON value (RFC 8259, strict UTF-8, depth at
    /// most [`MAX_DEPTH_LIMIT`](super::MAX_DEPTH_LIMIT)), with optional whitespace around
    /// it, which is trimmed.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, JsonError> {
        let (start, end) = super::scanner::validate_one(bytes, super::MAX_DEPTH_LIMIT)?;
        Ok(RawJson {
            bytes: bytes.get(start..end).unwrap_or(&[]),
        })
    }

    /// Wraps bytes that the caller has already validated as one value (no checks).
    pub(crate) const fn from_validated(bytes: &'a [u8]) -> Self {
        RawJson { bytes }
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The value's JSON text.
    pub fn as_str(&self) -> &'a str {
        core::str::from_utf8(self.bytes).unwrap_or("")
    }

    /// The kind of value.
    pub fn kind(&self) -> JsonKind {
        match self.bytes.first() {
            Some(b'{') => JsonKind::Object,
            Some(b'[') => JsonKind::Array,
            Some(b'"') => JsonKind::String,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'n') => JsonKind::Null,
            _ => JsonKind::Number,
        }
    }

    /// Whether the value is an object.
    pub fn is_object(&self) -> bool {
        self.bytes.first() == Some(&b'{')
    }

    /// Whether the value is an array.
    pub fn is_array(&self) -> bool {
        self.bytes.first() == Some(&b'[')
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        self.bytes == b"null"
    }

    /// The value as an unsigned integer, if it is a number without sign, fraction or
    /// exponent that fits in a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        parse_u64_digits(self.bytes)
    }

    /// The value as a signed integer, if it is a number without fraction or exponent that
    /// fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self.bytes.split_first() {
            Some((b'-', digits)) => {
                let magnitude = parse_u64_digits(digits)?;
                0i64.checked_sub_unsigned(magnitude)
            }
            _ => i64::try_from(parse_u64_digits(self.bytes)?).ok(),
        }
    }

    /// The value as a float, if it is a number (precision as serde-json-core parses it).
    pub fn as_f64(&self) -> Option<f64> {
        if self.kind() != JsonKind::Number {
            return None;
        }
        serde_json_core::from_slice::<f64>(self.bytes)
            .ok()
            .map(|(value, _)| value)
    }

    /// The value as a boolean, if it is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self.bytes {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    /// The value as a still-escaped string, if it is a string.
    pub fn as_json_str(&self) -> Option<JsonStr<'a>> {
        match self.bytes {
            [b'"', content @ .., b'"'] => Some(JsonStr::from_validated(content)),
            _ => None,
        }
    }

    /// The members of an object in wire order (empty if the value is not an object).
    pub fn members(&self) -> Members<'a> {
        Members::walk(self.bytes, if self.is_object() { 1 } else { usize::MAX })
    }

    /// The value of the first member whose unescaped key equals `key` (`None` if there is
    /// none or if the value is not an object).
    pub fn get(&self, key: &str) -> Option<RawJson<'a>> {
        self.members()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }

    /// The elements of an array in order (empty if the value is not an array).
    pub fn elements(&self) -> Elements<'a> {
        Elements {
            bytes: self.bytes,
            pos: if self.is_array() { 1 } else { usize::MAX },
        }
    }

    /// Decodes the value into `T` with serde-json-core.
    ///
    /// Strings are not unescaped: a `&'a str` field receives the escaped text as on the
    /// wire (`a\"b` stays `a\"b`). Use [`JsonStr`] fields to decode them later, or
    /// [`deserialize_unescaped`](RawJson::deserialize_unescaped).
    pub fn deserialize<T: serde::Deserialize<'a>>(&self) -> Result<T, DecodeError> {
        super::decode::from_slice(self.bytes).map_err(DecodeError::Json)
    }

    /// Decodes the value into `T`, unescaping strings through `scratch`.
    ///
    /// A string without escapes is still borrowed from the value. A string with escapes is
    /// unescaped into `scratch` and handed over as a transient `&str`: owned fields such as
    /// `heapless::String<N>` accept it, but a `&'a str` field then fails with an invalid
    /// type error. Escapes decode as [`JsonStr::chars`] decodes them: surrogate pairs
    /// combined, a lone surrogate as U+FFFD. [`JsonStr`] fields stay escaped.
    pub fn deserialize_unescaped<T: serde::Deserialize<'a>>(
        &self,
        scratch: &mut [u8],
    ) -> Result<T, DecodeError> {
        super::decode::from_slice_unescaped(self.bytes, scratch).map_err(DecodeError::Json)
    }
}

/// Parses ASCII digits (one or more) into a `u64`, rejecting leading zeros and overflow.
pub(crate) fn parse_u64_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || (digits.len() > 1 && digits.first() == Some(&b'0')) {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    Some(value)
}

impl fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The JSON text itself; bytes that are not UTF-8 (never the case for validated
        // values) show as U+FFFD.
        for chunk in self.bytes.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RawJson<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

/// The span of one member inside a frame, recorded while scanning: byte offsets of the key
/// content (between the quotes) and of the value, relative to the frame start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MemberSpan {
    pub(crate) key_start: u32,
    pub(crate) key_end: u32,
    pub(crate) value_start: u32,
    pub(crate) value_end: u32,
}

/// Iterator over an object's members as `(key, value)` pairs, in wire order.
///
/// Returned by [`RawJson::members`] and [`Frame::members`](super::Frame::members).
#[derive(Clone)]
pub struct Members<'a> {
    bytes: &'a [u8],
    /// Spans recorded by the scanner, served first.
    recorded: &'a [MemberSpan],
    /// Where the walker resumes once `recorded` is exhausted (`usize::MAX`: done).
    pos: usize,
}

impl<'a> Members<'a> {
    /// Walks the object in `bytes` from `pos` (just after `{` or after a member).
    pub(crate) fn walk(bytes: &'a [u8], pos: usize) -> Self {
        Members {
            bytes,
            recorded: &[],
            pos,
        }
    }

    /// Serves `recorded` first, then walks from `resume` (`usize::MAX` if the recorded
    /// spans are all the members).
    pub(crate) fn with_recorded(
        bytes: &'a [u8],
        recorded: &'a [MemberSpan],
        resume: usize,
    ) -> Self {
        Members {
            bytes,
            recorded,
            pos: resume,
        }
    }

    fn walk_next(&mut self) -> Option<(JsonStr<'a>, RawJson<'a>)> {
        let bytes = self.bytes;
        let mut pos = skip_whitespace(bytes, self.pos);
        if bytes.get(pos) == Some(&b',') {
            pos = skip_whitespace(bytes, pos + 1);
        }
        if bytes.get(pos) != Some(&b'"') {
            self.pos = usize::MAX;
            return None;
        }
        let key_end = skip_string_body(bytes, pos + 1);
        let key = bytes.get(pos + 1..key_end.saturating_sub(1))?;
        pos = skip_whitespace(bytes, key_end);
        if bytes.get(pos) != Some(&b':') {
            self.pos = usize::MAX;
            return None;
        }
        let value_start = skip_whitespace(bytes, pos + 1);
        let value_end = skip_value(bytes, value_start);
        let value = bytes.get(value_start..value_end)?;
        self.pos = value_end;
        Some((JsonStr::from_validated(key), RawJson::from_validated(value)))
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (JsonStr<'a>, RawJson<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if let Some((span, rest)) = self.recorded.split_first() {
            self.recorded = rest;
            let key = self
                .bytes
                .get(span.key_start as usize..span.key_end as usize);
            let value = self
                .bytes
                .get(span.value_start as usize..span.value_end as usize);
            if let (Some(key), Some(value)) = (key, value) {
                return Some((JsonStr::from_validated(key), RawJson::from_validated(value)));
            }
            self.recorded = &[];
            self.pos = usize::MAX;
            return None;
        }
        if self.pos == usize::MAX {
            return None;
        }
        let item = self.walk_next();
        if item.is_none() {
            self.pos = usize::MAX;
        }
        item
    }
}

impl fmt::Debug for Members<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.clone()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Members<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Members({=str})",
            core::str::from_utf8(self.bytes).unwrap_or("")
        )
    }
}

/// Iterator over an array's elements, in order. Returned by [`RawJson::elements`].
#[derive(Clone)]
pub struct Elements<'a> {
    bytes: &'a [u8],
    /// Where the next element search starts (`usize::MAX`: done).
    pos: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = RawJson<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawJson<'a>> {
        if self.pos == usize::MAX {
            return None;
        }
        let bytes = self.bytes;
        let mut pos = skip_whitespace(bytes, self.pos);
        if bytes.get(pos) == Some(&b',') {
            pos = skip_whitespace(bytes, pos + 1);
        }
        match bytes.get(pos) {
            None | Some(b']') => {
                self.pos = usize::MAX;
                None
            }
            Some(_) => {
                let end = skip_value(bytes, pos);
                self.pos = end;
                bytes.get(pos..end).map(RawJson::from_validated)
            }
        }
    }
}

impl fmt::Debug for Elements<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Elements<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Elements({=str})",
            core::str::from_utf8(self.bytes).unwrap_or("")
        )
    }
}

// The walkers below read text the scanner has already validated, so they only look for
// where strings, containers and scalars end; they never fail and never panic, whatever
// they are given.

/// `pos` just after an opening quote: the index just after the closing quote (or
/// `bytes.len()` if there is none).
fn skip_string_body(bytes: &[u8], mut pos: usize) -> usize {
    loop {
        pos = skip_plain_string(bytes, pos);
        match bytes.get(pos) {
            None => return bytes.len(),
            Some(b'"') => return pos + 1,
            Some(b'\\') => pos += 2,
            Some(_) => pos += 1,
        }
    }
}

/// `pos` at a `{` or `[`: the index just after the matching close.
fn skip_container(bytes: &[u8], mut pos: usize) -> usize {
    let mut depth = 0usize;
    loop {
        match bytes.get(pos) {
            None => return bytes.len(),
            Some(b'"') => {
                pos = skip_string_body(bytes, pos + 1);
                continue;
            }
            Some(b'{' | b'[') => depth += 1,
            Some(b'}' | b']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return pos + 1;
                }
            }
            Some(_) => {}
        }
        pos += 1;
    }
}

/// `pos` at the first byte of a value: the index just after it.
fn skip_value(bytes: &[u8], pos: usize) -> usize {
    match bytes.get(pos) {
        None => pos,
        Some(b'"') => skip_string_body(bytes, pos + 1),
        Some(b'{' | b'[') => skip_container(bytes, pos),
        Some(_) => {
            let mut end = pos + 1;
            while bytes
                .get(end)
                .is_some_and(|&byte| !matches!(byte, b',' | b']' | b'}') && !is_whitespace(byte))
            {
                end += 1;
            }
            end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips() {
        let text = br#"{"a\"}": [1, {"b": "]"}], "c": tru}"#;
        assert_eq!(skip_value(text, 0), text.len());
        assert_eq!(skip_string_body(br#""abc\\"x"#, 1), 7);
        assert_eq!(skip_value(b"123,", 0), 3);
        assert_eq!(skip_value(b"[[YyDEL_]]x", 0), 10);
        assert_eq!(skip_value(br#""unterminated"#, 0), 13);
        assert_eq!(skip_value(b"", 3), 3);
    }
}
