//! The reference the checks compare qmp-core with: serde_json, plus a few small,
//! independent helpers (nesting depth, WTF-8 decoding of what serde_json hands back for
//! strings with lone surrogate escapes).
//!
//! Nothing here uses qmp-core, so a bug there cannot hide in the expectations.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Whether `bytes` are exactly one JSON value (surrounding whitespace allowed) per
/// serde_json, with strings in valid UTF-8. serde_json's `IgnoredAny` path checks the
/// grammar and escapes but neither UTF-8 (checked here on the whole text: outside strings
/// valid JSON is ASCII) nor nesting depth (see [`max_depth`]); lone surrogate escapes are
/// accepted, as RFC 8259's grammar does.
pub fn is_valid_json(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok() && serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
}

/// The deepest nesting of arrays and objects in `bytes`, read as JSON text (brackets inside
/// strings do not count). Meaningful for valid JSON; never panics on anything.
pub fn max_depth(bytes: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// JSON whitespace (RFC 8259).
pub fn is_json_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// The spans `(start, end)` of the values in `bytes` read as a stream of JSON values the
/// way `serde_json::Deserializer::into_iter` delimits them, or `None` if serde_json
/// reports an error anywhere or the text is not UTF-8.
pub fn stream_spans(bytes: &[u8]) -> Option<Vec<(usize, usize)>> {
    std::str::from_utf8(bytes).ok()?;
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<IgnoredAny>();
    let mut spans = Vec::new();
    let mut previous_end = 0;
    while let Some(item) = stream.next() {
        item.ok()?;
        let end = stream.byte_offset();
        let mut start = previous_end;
        while bytes.get(start).is_some_and(|&b| is_json_whitespace(b)) {
            start += 1;
        }
        spans.push((start, end));
        previous_end = end;
    }
    Some(spans)
}

/// Decodes the generalised UTF-8 serde_json produces for strings read as bytes (lone
/// surrogate escapes become 3-byte surrogate sequences), mapping each surrogate to U+FFFD,
/// which is what qmp-core's `JsonStr` decodes a lone surrogate escape to.
pub fn decode_wtf8_lossy(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b0 = bytes[i];
        let (len, initial) = match b0 {
            0x00..=0x7F => (1, u32::from(b0)),
            0xC0..=0xDF => (2, u32::from(b0 & 0x1F)),
            0xE0..=0xEF => (3, u32::from(b0 & 0x0F)),
            _ => (4, u32::from(b0 & 0x07)),
        };
        let mut code = initial;
        for k in 1..len {
            code = (code << 6) | u32::from(bytes.get(i + k).copied().unwrap_or(0x80) & 0x3F);
        }
        out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
        i += len;
    }
    out
}

/// What serde_json sees at the top of one value, with the raw text of every member or
/// element (exactly as serde_json delimits it) and decoded strings.
#[derive(Debug)]
pub enum Shape {
    /// An object's members in wire order, duplicates kept: decoded key, raw value text.
    Object(Vec<(String, Box<RawValue>)>),
    /// An array's elements' raw texts.
    Array(Vec<Box<RawValue>>),
    /// A string, decoded (lone surrogates as U+FFFD).
    String(String),
    /// A number: its value as `u64` and as `i64` where serde_json reads it as one.
    Number {
        /// `serde_json::from_str::<u64>`.
        as_u64: Option<u64>,
        /// `serde_json::from_str::<i64>`.
        as_i64: Option<i64>,
    },
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl Shape {
    /// The decoded value of the first member named `key`, as qmp-core's `get` finds it.
    pub fn first(&self, key: &str) -> Option<&RawValue> {
        match self {
            Shape::Object(members) => members
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, v)| &**v),
            _ => None,
        }
    }

    /// The value of the last member named `key`.
    pub fn last(&self, key: &str) -> Option<&RawValue> {
        match self {
            Shape::Object(members) => members
                .iter()
                .rev()
                .find(|(name, _)| name == key)
                .map(|(_, v)| &**v),
            _ => None,
        }
    }
}

/// serde_json's view of `text`, one valid JSON value. Panics if serde_json cannot read a
/// value that [`is_valid_json`] accepted (a bug in this reference, not in qmp-core).
pub fn shape(text: &str) -> Shape {
    let trimmed = text.trim_matches(|c: char| c.is_ascii() && is_json_whitespace(c as u8));
    match trimmed.as_bytes().first() {
        Some(b'{') => {
            let mut de = serde_json::Deserializer::from_str(text);
            Shape::Object(
                de.deserialize_map(MembersVisitor)
                    .unwrap_or_else(|e| panic!("serde_json cannot walk {text:?}: {e}")),
            )
        }
        Some(b'[') => Shape::Array(
            serde_json::from_str::<Vec<Box<RawValue>>>(text)
                .unwrap_or_else(|e| panic!("serde_json cannot walk {text:?}: {e}")),
        ),
        Some(b'"') => {
            let mut de = serde_json::Deserializer::from_str(text);
            let bytes = de
                .deserialize_bytes(BytesVisitor)
                .unwrap_or_else(|e| panic!("serde_json cannot read {text:?}: {e}"));
            Shape::String(decode_wtf8_lossy(&bytes))
        }
        Some(b't') => Shape::Bool(true),
        Some(b'f') => Shape::Bool(false),
        Some(b'n') => Shape::Null,
        _ => Shape::Number {
            as_u64: serde_json::from_str::<u64>(text).ok(),
            as_i64: serde_json::from_str::<i64>(text).ok(),
        },
    }
}

/// A string's bytes, read without UTF-8 validation of surrogates.
struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }
}

/// A map key read as bytes (lone surrogates allowed), then decoded lossily.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer
            .deserialize_bytes(BytesVisitor)
            .map(|bytes| decode_wtf8_lossy(&bytes))
    }
}

/// An object's members in order, duplicates kept.
struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(String, Box<RawValue>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: Box<RawValue> = map.next_value()?;
            members.push((key, value));
        }
        Ok(members)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("not an object"))
    }
}
