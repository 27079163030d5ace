//! [`JsonStr`]: a JSON string's escaped content, decoded on demand.

use core::fmt;

use super::BufferTooSmall;

/// A JSON string's content between the quotes, still escaped.
///
/// Obtained from validated JSON, so its escapes are well formed. Comparing it with a
/// `&str` ([`PartialEq`]), displaying it and [`chars`](JsonStr::chars) all decode the
/// escapes on the fly, without a buffer.
#[derive(Clone, Copy)]
pub struct JsonStr<'a> {
    escaped: &'a [u8],
}

impl<'a> JsonStr<'a> {
    /// Wraps the content of a string that was already validated (no checks).
    pub(crate) const fn from_validated(escaped: &'a [u8]) -> Self {
        JsonStr { escaped }
    }

    /// Wraps `escaped` (the text between the quotes) if it is a valid JSON string body.
    pub fn from_escaped(escaped: &'a str) -> Option<Self> {
        if super::scanner::is_valid_string_body(escaped.as_bytes()) {
            Some(JsonStr {
                escaped: escaped.as_bytes(),
            })
        } else {
            None
        }
    }

    /// The escaped text, exactly as on the wire (without the quotes).
    pub fn raw(&self) -> &'a str {
        core::str::from_utf8(self.escaped).unwrap_or("")
    }

    /// The escaped text as bytes.
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.escaped
    }

    /// Whether the text contains any escape sequence.
    pub fn has_escapes(&self) -> bool {
        self.escaped.contains(&b'\\')
    }

    /// The text itself when it has no escapes (zero-copy), `None` otherwise.
    pub fn as_plain(&self) -> Option<&'a str> {
        if self.has_escapes() {
            None
        } else {
            core::str::from_utf8(self.escaped).ok()
        }
    }

    /// The decoded characters: escapes resolved, surrogate pairs combined, and a lone
    /// surrogate escape decoded as U+FFFD.
    pub fn chars(&self) -> JsonChars<'a> {
        JsonChars {
            fragments: Fragments { rest: self.escaped },
            plain: "".chars(),
        }
    }

    /// The length in bytes of the UTF-8 text after unescaping.
    pub fn unescaped_len(&self) -> usize {
        let mut len = 0;
        for fragment in self.fragments() {
            len += match fragment {
                Fragment::Plain(text) => text.len(),
                Fragment::Char(c) => c.len_utf8(),
            };
        }
        len
    }

    /// Writes the unescaped text into `buffer` and returns it.
    pub fn unescape_into<'b>(&self, buffer: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
        let required = self.unescaped_len();
        let available = buffer.len();
        let Some(target) = buffer.get_mut(..required) else {
            return Err(BufferTooSmall {
                required,
                available,
            });
        };
        let mut written = 0;
        for fragment in self.fragments() {
            let mut encoded = [0u8; 4];
            let bytes = match fragment {
                Fragment::Plain(text) => text.as_bytes(),
                Fragment::Char(c) => c.encode_utf8(&mut encoded).as_bytes(),
            };
            let end = written + bytes.len();
            if let Some(slot) = target.get_mut(written..end) {
                slot.copy_from_slice(bytes);
            }
            written = end;
        }
        Ok(core::str::from_utf8(target).unwrap_or(""))
    }

    fn fragments(&self) -> Fragments<'a> {
        Fragments { rest: self.escaped }
    }

    /// Whether the unescaped text equals `other`, compared as UTF-8 bytes. Plain bytes
    /// are compared as they are (the text is valid UTF-8), escapes decoded one at a time.
    fn eq_unescaped(&self, other: &[u8]) -> bool {
        let mut rest = self.escaped;
        let mut other = other;
        while let Some((&first, tail)) = rest.split_first() {
            if first != b'\\' {
                match other.split_first() {
                    Some((&expected, other_tail)) if expected == first => {
                        rest = tail;
                        other = other_tail;
                        continue;
                    }
                    _ => return false,
                }
            }
            let (decoded, consumed) = decode_escape(rest);
            let mut encoded = [0u8; 4];
            match other.strip_prefix(decoded.encode_utf8(&mut encoded).as_bytes()) {
                Some(other_tail) => other = other_tail,
                None => return false,
            }
            rest = rest.get(consumed..).unwrap_or(&[]);
        }
        other.is_empty()
    }
}

impl PartialEq for JsonStr<'_> {
    /// Compares the unescaped texts.
    fn eq(&self, other: &JsonStr<'_>) -> bool {
        if !self.has_escapes() && !other.has_escapes() {
            return self.escaped == other.escaped;
        }
        self.chars().eq(other.chars())
    }
}

impl Eq for JsonStr<'_> {}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.eq_unescaped(other.as_bytes())
    }
}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.eq_unescaped(other.as_bytes())
    }
}

impl PartialEq<JsonStr<'_>> for str {
    fn eq(&self, other: &JsonStr<'_>) -> bool {
        other.eq_unescaped(self.as_bytes())
    }
}

impl PartialEq<JsonStr<'_>> for &str {
    fn eq(&self, other: &JsonStr<'_>) -> bool {
        other.eq_unescaped(self.as_bytes())
    }
}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for fragment in self.fragments() {
            match fragment {
                Fragment::Plain(text) => f.write_str(text)?,
                Fragment::Char(c) => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        f.write_str(self.raw())?;
        f.write_str("\"")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for JsonStr<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "\"{=str}\"", self.raw())
    }
}

/// The newtype name under which [`JsonStr`] asks a deserializer for a string still
/// escaped. The crate's decoder (`RawJson::deserialize`) recognises it and hands the string
/// over as it is on the wire, whatever its mode.
pub(crate) const JSON_STR: &str = "qmp_core::json::JsonStr";

impl<'de: 'a, 'a> serde::Deserialize<'de> for JsonStr<'a> {
    /// Borrows the string still escaped, then checks that it is a valid JSON string body.
    /// Through a deserializer other than the crate's own, a string that deserializer
    /// unescapes into a buffer of its own cannot be borrowed, and is an error.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(JSON_STR, JsonStrVisitor)
    }
}

/// Reads a [`JsonStr`]: a newtype around a string, or the string itself.
struct JsonStrVisitor;

impl<'de> serde::de::Visitor<'de> for JsonStrVisitor {
    type Value = JsonStr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, escaped: &'de str) -> Result<Self::Value, E> {
        JsonStr::from_escaped(escaped).ok_or_else(|| E::custom("invalid escape sequence in string"))
    }
}

/// A piece of a string: a run of unescaped text or one escaped character.
#[derive(Clone, Copy)]
enum Fragment<'a> {
    Plain(&'a str),
    Char(char),
}

/// Splits escaped text into [`Fragment`]s. Tolerates malformed input (no panics): a bad
/// escape decodes to U+FFFD.
#[derive(Clone)]
struct Fragments<'a> {
    rest: &'a [u8],
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for &digit in digits.get(..4)? {
        value = value * 16 + (digit as char).to_digit(16)?;
    }
    Some(value)
}

impl<'a> Iterator for Fragments<'a> {
    type Item = Fragment<'a>;

    fn next(&mut self) -> Option<Fragment<'a>> {
        let rest = self.rest;
        let first = *rest.first()?;
        if first != b'\\' {
            let run = rest
                .iter()
                .position(|&byte| byte == b'\\')
                .unwrap_or(rest.len());
            let (plain, tail) = rest.split_at(run);
            self.rest = tail;
            return Some(match core::str::from_utf8(plain) {
                Ok(text) => Fragment::Plain(text),
                Err(error) => {
                    let valid = error.valid_up_to();
                    if valid == 0 {
                        // Skip one undecodable byte.
                        self.rest = rest.get(1..).unwrap_or(&[]);
                        Fragment::Char(char::REPLACEMENT_CHARACTER)
                    } else {
                        self.rest = rest.get(valid..).unwrap_or(&[]);
                        Fragment::Plain(
                            core::str::from_utf8(plain.get(..valid).unwrap_or(&[])).unwrap_or(""),
                        )
                    }
                }
            });
        }
        let (decoded, consumed) = decode_escape(rest);
        self.rest = rest.get(consumed..).unwrap_or(&[]);
        Some(Fragment::Char(decoded))
    }
}

/// The escapes of one letter after the backslash, and the byte each stands for (a table:
/// smaller in flash than a `match`).
const SHORT_ESCAPES: [(u8, u8); 8] = [
    (b'"', b'"'),
    (b'\\', b'\\'),
    (b'/', b'/'),
    (b'b', 0x08),
    (b'f', 0x0C),
    (b'n', b'\n'),
    (b'r', b'\r'),
    (b't', b'\t'),
];

/// Decodes the escape at the start of `rest` (which starts with a backslash): the
/// character and how many bytes it took. Surrogate pairs are combined; a lone surrogate or
/// a malformed escape decodes to U+FFFD.
fn decode_escape(rest: &[u8]) -> (char, usize) {
    // The code point and the length, converted to a `char` in one place.
    let (code, len) = match rest.get(1) {
        Some(b'u') => match rest.get(2..).and_then(hex_value) {
            Some(high @ 0xD800..=0xDBFF) => {
                match (rest.get(6..8), rest.get(8..).and_then(hex_value)) {
                    (Some(b"\\u"), Some(low @ 0xDC00..=0xDFFF)) => {
                        (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), 12)
                    }
                    _ => (0xFFFD, 6),
                }
            }
            Some(code) => (code, 6),
            None => (0xFFFD, 2),
        },
        Some(&byte) => SHORT_ESCAPES
            .iter()
            .find(|&&(letter, _)| letter == byte)
            .map_or((0xFFFD, 1), |&(_, decoded)| (u32::from(decoded), 2)),
        None => (0xFFFD, 1),
    };
    (
        char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
        len,
    )
}

/// The decoded characters of a [`JsonStr`]; see [`JsonStr::chars`].
#[derive(Clone)]
pub struct JsonChars<'a> {
    fragments: Fragments<'a>,
    plain: core::str::Chars<'a>,
}

impl Iterator for JsonChars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        loop {
            if let Some(c) = self.plain.next() {
                return Some(c);
            }
            match self.fragments.next()? {
                Fragment::Plain(text) => self.plain = text.chars(),
                Fragment::Char(c) => return Some(c),
            }
        }
    }
}

impl fmt::Debug for JsonChars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonChars").finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for JsonChars<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "JsonChars")
    }
}
