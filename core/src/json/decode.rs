//! Typed decoding through serde-json-core, with every string read one way.
//!
//! serde-json-core reads strings in `deserialize_str`, which is generic over the visitor
//! and carries its unescaper in every copy: one copy for each derived field-name visitor,
//! enum-variant visitor and skipped-member visitor in a program (about 1.6 KB of the
//! firmware probe's code). Its unescaper also rejects `\u` surrogate pairs, the only way
//! QEMU sends characters beyond U+FFFF.
//!
//! [`Decoder`] wraps serde-json-core's deserializer, and every map, sequence, option,
//! newtype and enum it hands out, so that each string — value, member name, enum variant
//! or skipped member — is read through the one visitor type [`Skim`], borrowed and still
//! escaped. It is then handed to the target type as it is (`RawJson::deserialize`), or
//! unescaped by [`JsonStr`] into the caller's scratch buffer
//! (`RawJson::deserialize_unescaped`). Numbers, literals and structure are still parsed
//! by serde-json-core.

use core::cell::Cell;
use core::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Visitor};
use serde_json_core::de::{Deserializer as JsonDeserializer, Error};

use super::string::JsonStr;

use super::string::JSON_STR;

/// Decodes one value from `bytes` (nothing may follow but whitespace), every string
/// handed over borrowed and still escaped.
pub(crate) fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    let mut inner = JsonDeserializer::new(bytes, None);
    let value = T::deserialize(Decoder {
        inner: &mut inner,
        strings: Escaped,
    })?;
    inner.end()?;
    Ok(value)
}

/// Decodes one value from `bytes` (nothing may follow but whitespace), strings with
/// escapes unescaped into `scratch` and handed over as transient `&str`s.
pub(crate) fn from_slice_unescaped<'de, T: de::Deserialize<'de>>(
    bytes: &'de [u8],
    scratch: &mut [u8],
) -> Result<T, Error> {
    let failure = Cell::new(None);
    let mut inner = JsonDeserializer::new(bytes, None);
    let decoder = Decoder {
        inner: &mut inner,
        strings: Unescaped {
            buffer: scratch,
            failure: &failure,
        },
    };
    match T::deserialize(decoder) {
        Ok(value) => inner.end().map(|_| value),
        // The decoder's own failure reached serde as a custom error: report what it was.
        Err(error) => Err(failure.get().unwrap_or(error)),
    }
}

/// What the decoder does with the strings it reads.
trait Strings {
    /// The same, borrowed again for a nested wrapper.
    type Reborrowed<'a>: Strings
    where
        Self: 'a;

    /// Borrows `self` again for a nested wrapper.
    fn reborrow(&mut self) -> Self::Reborrowed<'_>;

    /// Hands the string `escaped` (as on the wire) to `visitor`.
    fn visit_string<'de, V: Visitor<'de>, E: de::Error>(
        self,
        escaped: &'de str,
        visitor: V,
    ) -> Result<V::Value, E>;
}

/// Strings handed over borrowed and still escaped.
struct Escaped;

impl Strings for Escaped {
    type Reborrowed<'a> = Escaped;

    fn reborrow(&mut self) -> Escaped {
        Escaped
    }

    fn visit_string<'de, V: Visitor<'de>, E: de::Error>(
        self,
        escaped: &'de str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_borrowed_str(escaped)
    }
}

/// Strings with escapes unescaped into `buffer` (surrogate pairs combined, a lone surrogate
/// as U+FFFD, as [`JsonStr::chars`] decodes them) and handed over as transient `&str`s.
///
/// The deserializers serde hands to visitors have error types of their own, so a failure
/// of the decoder's own travels through them as a custom error; it is also recorded in
/// `failure`, from which [`from_slice_unescaped`] restores it.
struct Unescaped<'x> {
    buffer: &'x mut [u8],
    failure: &'x Cell<Option<Error>>,
}

impl Unescaped<'_> {
    /// Records `error` and returns it as `E`.
    fn fail<E: de::Error>(&self, error: Error) -> E {
        self.failure.set(Some(error));
        E::custom(error)
    }
}

impl Strings for Unescaped<'_> {
    type Reborrowed<'a>
        = Unescaped<'a>
    where
        Self: 'a;

    fn reborrow(&mut self) -> Unescaped<'_> {
        Unescaped {
            buffer: self.buffer,
            failure: self.failure,
        }
    }

    fn visit_string<'de, V: Visitor<'de>, E: de::Error>(
        self,
        escaped: &'de str,
        visitor: V,
    ) -> Result<V::Value, E> {
        if !escaped.as_bytes().contains(&b'\\') {
            return visitor.visit_borrowed_str(escaped);
        }
        let Some(text) = JsonStr::from_escaped(escaped) else {
            return Err(self.fail(Error::InvalidEscapeSequence));
        };
        match text.unescape_into(self.buffer) {
            Ok(unescaped) => visitor.visit_str(unescaped),
            Err(_) => Err(self.fail(Error::EscapedStringIsTooLong)),
        }
    }
}

/// Reads a string still escaped (any deserializer's `deserialize_str`), or skips any
/// other value (`deserialize_ignored_any`): the one visitor serde-json-core's string
/// reading is instantiated for.
struct Skim;

impl<'de> Visitor<'de> for Skim {
    /// The string, or `None` for a skipped value that is not a string.
    type Value = Option<&'de str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Some(text))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element_seed(Skim)?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_key_seed(SkimKey)?.is_some() {
            map.next_value_seed(Skim)?;
        }
        Ok(None)
    }
}

/// Skips one value (an element or a member's value).
impl<'de> DeserializeSeed<'de> for Skim {
    type Value = Option<&'de str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_ignored_any(Skim)
    }
}

/// Reads one member name (serde-json-core's key deserializer reads strings only).
struct SkimKey;

impl<'de> DeserializeSeed<'de> for SkimKey {
    type Value = Option<&'de str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(Skim)
    }
}

/// A serde-json-core deserializer (or one it hands out) whose strings are read through
/// [`Skim`] and whose visitors are wrapped, so that theirs are too.
struct Decoder<S, D> {
    inner: D,
    strings: S,
}

/// Reads a string through [`Skim`], still escaped.
fn read_escaped<'de, D: de::Deserializer<'de>>(inner: D) -> Result<&'de str, D::Error> {
    inner
        .deserialize_str(Skim)?
        .ok_or_else(|| de::Error::custom("expected a string"))
}

impl<'de, S: Strings, D: de::Deserializer<'de>> Decoder<S, D> {
    /// Reads a string through [`Skim`] and hands it to `visitor`.
    fn read_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let escaped = read_escaped(self.inner)?;
        self.strings.visit_string(escaped, visitor)
    }
}

/// Forwards `deserialize_*` methods to the inner deserializer with the visitor wrapped.
macro_rules! forward_wrapped {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(
            mut self,
            $($arg: $ty,)*
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            let visitor = wrap(&mut self.strings, visitor);
            self.inner.$method($($arg,)* visitor)
        }
    )*};
}

/// Forwards `deserialize_*` methods of strings to `read_string`.
macro_rules! forward_strings {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.read_string(visitor)
        }
    )*};
}

impl<'de, S: Strings, D: de::Deserializer<'de>> de::Deserializer<'de> for Decoder<S, D> {
    type Error = D::Error;

    forward_wrapped! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }

    forward_strings! { deserialize_char deserialize_str deserialize_string deserialize_identifier }

    /// A [`JsonStr`] gets the string still escaped, read through [`Skim`], in either mode.
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        if name == JSON_STR {
            let escaped = read_escaped(self.inner)?;
            return visitor.visit_newtype_struct(BorrowedStrDeserializer::new(escaped));
        }
        let visitor = wrap(&mut self.strings, visitor);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_ignored_any(Skim)?;
        visitor.visit_unit()
    }
}

/// A visitor, map, sequence, enum or seed whose deserializers get wrapped in [`Decoder`].
struct Wrapped<S, T> {
    inner: T,
    strings: S,
}

/// Wraps `inner` with a reborrow of `strings`, for a nested wrapper.
fn wrap<S: Strings, T>(strings: &mut S, inner: T) -> Wrapped<S::Reborrowed<'_>, T> {
    Wrapped {
        inner,
        strings: strings.reborrow(),
    }
}

/// Forwards `visit_*` methods of scalars to the inner visitor unchanged.
macro_rules! forward_scalars {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
            self.inner.$method(value)
        }
    )*};
}

impl<'de, S: Strings, V: Visitor<'de>> Visitor<'de> for Wrapped<S, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_scalars! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Decoder {
            inner: deserializer,
            strings: self.strings,
        })
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Decoder {
            inner: deserializer,
            strings: self.strings,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Wrapped {
            inner: seq,
            strings: self.strings,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Wrapped {
            inner: map,
            strings: self.strings,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Wrapped {
            inner: data,
            strings: self.strings,
        })
    }
}

/// A seed whose deserializer is wrapped.
impl<'de, S: Strings, K: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrapped<S, K> {
    type Value = K::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<K::Value, D::Error> {
        self.inner.deserialize(Decoder {
            inner: deserializer,
            strings: self.strings,
        })
    }
}

/// A member name's seed: its deserializer is a [`KeyDecoder`].
struct KeySeed<S, K>(Wrapped<S, K>);

impl<'de, S: Strings, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<S, K> {
    type Value = K::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<K::Value, D::Error> {
        self.0.inner.deserialize(KeyDecoder(Decoder {
            inner: deserializer,
            strings: self.0.strings,
        }))
    }
}

/// A member name's deserializer: strings (and newtypes around them) as [`Decoder`] reads
/// them, anything else a custom error. serde-json-core's own key deserializer reads strings
/// only (`deserialize_str`) and panics when asked for anything else, such as the `u32` or
/// even the `String` keys of a map type.
struct KeyDecoder<S, D>(Decoder<S, D>);

impl<'de, S: Strings, D: de::Deserializer<'de>> KeyDecoder<S, D> {
    /// Reads a string as [`Decoder::read_string`] does.
    fn read_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.read_string(visitor)
    }
}

impl<'de, S: Strings, D: de::Deserializer<'de>> de::Deserializer<'de> for KeyDecoder<S, D> {
    type Error = D::Error;

    /// Every kind of key that is not a string.
    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, D::Error> {
        Err(de::Error::custom(Error::KeyMustBeAString))
    }

    forward_strings! { deserialize_char deserialize_str deserialize_string deserialize_identifier }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        if name == JSON_STR {
            return self.0.deserialize_newtype_struct(name, visitor);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_ignored_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 bytes byte_buf option unit
        unit_struct seq tuple tuple_struct map struct enum
    }
}

impl<'de, S: Strings, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Wrapped<S, A> {
    type Error = A::Error;

    fn next_element_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = wrap(&mut self.strings, seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, S: Strings, A: de::MapAccess<'de>> de::MapAccess<'de> for Wrapped<S, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = KeySeed(wrap(&mut self.strings, seed));
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<K::Value, A::Error> {
        let seed = wrap(&mut self.strings, seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, S: Strings, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Wrapped<S, A> {
    type Error = A::Error;
    type Variant = Wrapped<S, A::Variant>;

    fn variant_seed<K: DeserializeSeed<'de>>(
        mut self,
        seed: K,
    ) -> Result<(K::Value, Self::Variant), A::Error> {
        let seed = wrap(&mut self.strings, seed);
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            Wrapped {
                inner: variant,
                strings: self.strings,
            },
        ))
    }
}

impl<'de, S: Strings, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Wrapped<S, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<K: DeserializeSeed<'de>>(self, seed: K) -> Result<K::Value, A::Error> {
        self.inner.newtype_variant_seed(Wrapped {
            inner: seed,
            strings: self.strings,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(
            len,
            Wrapped {
                inner: visitor,
                strings: self.strings,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(
            fields,
            Wrapped {
                inner: visitor,
                strings: self.strings,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::String;
    use std::vec::Vec;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Triple {
        major: u32,
        minor: i64,
        micro: Option<u8>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Status {
        Running,
        Paused,
        InMigrate,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Shape {
        Unit,
        Newtype(u16),
        Tuple(u8, bool),
        Struct { side: f64 },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Seconds(u64);

    #[derive(Debug, PartialEq, Deserialize)]
    struct Everything<'a> {
        name: &'a str,
        owned: String,
        #[serde(borrow)]
        raw: JsonStr<'a>,
        version: Triple,
        status: Status,
        shapes: Vec<Shape>,
        pair: (bool, char),
        maybe: Option<Triple>,
        seconds: Seconds,
        #[serde(default)]
        absent: Option<u8>,
        unit: (),
    }

    /// Inputs for `Everything` and for the smaller types: valid ones, members to skip
    /// (nested, with escapes), and every kind of error serde-json-core reports.
    const EVERYTHING: &[&str] = &[
        r#"{"name": "qemu", "owned": "o", "raw": "r", "version": {"major": 10, "minor": -1, "micro": null},
            "status": "in-migrate", "shapes": ["Unit", {"Newtype": 7}, {"Tuple": [1, true]}, {"Struct": {"side": 1.5}}],
            "pair": [false, "x"], "maybe": {"major": 1, "minor": 2, "micro": 3}, "seconds": 9, "unit": null}"#,
        r#"{"skip": {"a": ["\"}", {"b": "\\"}, [], {}], "c": -1.5e3}, "name": "ab", "owned": "p\u006cain\"",
            "raw": "x\\ny", "version": {"micro": 0, "minor": 0, "major": 0, "extra": "\u00e9"},
            "status": "paused", "shapes": [], "pair": [true, "é"], "maybe": null, "seconds": 0,
            "unit": null, "more": [null, true, false, "s"]}"#,
        r#"{"name": "n", "owned": "\t", "raw": "\u00e9", "version": {"major": 1, "minor": 1},
            "status": "running", "shapes": ["Unit"], "pair": [true, "A"], "maybe": null, "seconds": 1,
            "unit": null}"#,
        // Errors: a wrong type, a missing field, an unknown variant, an overflow, a
        // trailing character.
        r#"{"name": 1}"#,
        r#"{"name": "n"}"#,
        r#"{"name": "n", "owned": "o", "raw": "r", "version": {"major": 1, "minor": 1},
            "status": "stopped"}"#,
        r#"{"name": "n", "owned": "o", "raw": "r", "version": {"major": 4294967296, "minor": 1}}"#,
        r#"{"name": "n"} x"#,
        r#"[1, 2]"#,
        r#""str""#,
    ];

    /// `Everything` without its [`JsonStr`]: serde-json-core alone unescapes a string into
    /// its buffer when it has one, so only the crate's decoder can hand a `JsonStr` over
    /// in unescaped mode (tested on its own below).
    #[derive(Debug, PartialEq, Deserialize)]
    struct EverythingOwned<'a> {
        name: &'a str,
        owned: String,
        version: Triple,
        status: Status,
        shapes: Vec<Shape>,
        pair: (bool, char),
        maybe: Option<Triple>,
        seconds: Seconds,
        #[serde(default)]
        absent: Option<u8>,
        unit: (),
    }

    /// Decodes `input` with the decoder and with serde-json-core alone, strings escaped.
    fn escaped_same<'a, T: Deserialize<'a> + PartialEq + core::fmt::Debug>(input: &'a str) {
        let bytes = input.as_bytes();
        let ours = from_slice::<T>(bytes);
        let theirs = serde_json_core::from_slice::<T>(bytes).map(|(value, _)| value);
        assert_eq!(ours, theirs, "escaped mode, input {input}");
    }

    /// Decodes `input` with the decoder and with serde-json-core alone, strings
    /// unescaped.
    fn unescaped_same<'a, T: Deserialize<'a> + PartialEq + core::fmt::Debug>(input: &'a str) {
        let bytes = input.as_bytes();
        let (mut ours_scratch, mut theirs_scratch) = ([0u8; 64], [0u8; 64]);
        let ours = from_slice_unescaped::<T>(bytes, &mut ours_scratch);
        let theirs = serde_json_core::from_slice_escaped::<T>(bytes, &mut theirs_scratch)
            .map(|(value, _)| value);
        assert_eq!(ours, theirs, "unescaped mode, input {input}");
    }

    /// Both modes.
    fn both<'a, T: Deserialize<'a> + PartialEq + core::fmt::Debug>(input: &'a str) {
        escaped_same::<T>(input);
        unescaped_same::<T>(input);
    }

    #[test]
    fn decodes_as_serde_json_core_does_without_surrogates() {
        for (index, input) in EVERYTHING.iter().enumerate() {
            if index < 3 {
                let mut scratch = [0u8; 64];
                assert!(from_slice::<Everything<'_>>(input.as_bytes()).is_ok());
                assert!(
                    from_slice_unescaped::<Everything<'_>>(input.as_bytes(), &mut scratch).is_ok()
                );
            }
            escaped_same::<Everything<'_>>(input);
            unescaped_same::<EverythingOwned<'_>>(input);
            both::<Triple>(input);
            both::<Vec<Shape>>(input);
            both::<Option<Status>>(input);
            both::<String>(input);
            both::<serde::de::IgnoredAny>(input);
        }
        for input in [
            r#""running""#,
            r#""in-migrate""#,
            r#""Paused""#,
            r#"{"Struct": {"side": 2}}"#,
            r#"{"Tuple": [1]}"#,
            r#"["Unit", "Newtype"]"#,
            r#"7"#,
            r#"null"#,
            r#""\u0041""#,
        ] {
            both::<Status>(input);
            both::<Shape>(input);
            both::<Vec<Shape>>(input);
            both::<Seconds>(input);
            both::<Option<u8>>(input);
            both::<char>(input);
            both::<String>(input);
        }
    }

    #[test]
    fn escaped_mode_hands_strings_over_as_on_the_wire() {
        let input = br#"{"name": "a\u00e9\"", "owned": "\ud83d\ude00", "raw": "\ud800",
            "version": {"major": 1, "minor": 2}, "status": "running", "shapes": [],
            "pair": [true, "c"], "maybe": null, "seconds": 3, "unit": null}"#;
        let value = from_slice::<Everything<'_>>(input).unwrap();
        assert_eq!(value.name, r#"a\u00e9\""#);
        assert_eq!(value.owned, r"\ud83d\ude00");
        assert_eq!(value.raw.raw(), r"\ud800");
    }

    #[test]
    fn unescaped_mode_combines_surrogate_pairs_where_serde_json_core_fails() {
        let input =
            br#"{"text": "smile \uD83D\uDE00!", "lone": "\ud800x", "skipped": "\uD83D\uDE00"}"#;
        #[derive(Debug, Deserialize)]
        struct Texts {
            text: String,
            lone: String,
        }
        let mut scratch = [0u8; 32];
        let texts = from_slice_unescaped::<Texts>(input, &mut scratch).unwrap();
        assert_eq!(texts.text, "smile \u{1F600}!");
        assert_eq!(texts.lone, "\u{FFFD}x");
        assert!(serde_json_core::from_slice_escaped::<Texts>(input, &mut [0u8; 32]).is_err());
    }

    #[test]
    fn unescaped_mode_matches_escaped_names_and_variants() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Named {
            status: Status,
        }
        let input = br#"{"st\u0061tus": "in\u002dmigrate"}"#;
        let named = from_slice_unescaped::<Named>(input, &mut [0u8; 16]).unwrap();
        assert_eq!(named.status, Status::InMigrate);
        assert!(
            from_slice::<Named>(input).is_err(),
            "escaped names stay escaped"
        );
    }

    #[test]
    fn unescaped_mode_keeps_borrowed_and_raw_strings_where_it_can() {
        #[derive(Debug, Deserialize)]
        struct Borrowed<'a> {
            plain: &'a str,
            #[serde(borrow)]
            raw: JsonStr<'a>,
        }
        let input = br#"{"plain": "no escapes", "raw": "a\nb"}"#;
        let borrowed = from_slice_unescaped::<Borrowed<'_>>(input, &mut [0u8; 4]).unwrap();
        assert_eq!(borrowed.plain, "no escapes");
        assert_eq!(borrowed.raw.raw(), r"a\nb");
        // A `&str` cannot borrow text that had to be unescaped.
        let escaped = br#"{"plain": "a\nb", "raw": ""}"#;
        assert!(from_slice_unescaped::<Borrowed<'_>>(escaped, &mut [0u8; 4]).is_err());
    }

    #[test]
    fn keys_that_are_not_strings_are_an_error_not_a_panic() {
        use std::collections::BTreeMap;
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
        struct Name(String);

        let input = br#"{"1": 2, "b\u0063": 3}"#;
        assert_eq!(
            from_slice::<BTreeMap<u32, u32>>(input),
            Err(Error::CustomError)
        );
        assert_eq!(
            from_slice_unescaped::<BTreeMap<u32, u32>>(input, &mut [0u8; 8]),
            Err(Error::CustomError)
        );
        // serde-json-core's key deserializer panics even for `String` keys.
        let panicked = std::panic::catch_unwind(|| {
            serde_json_core::from_slice::<BTreeMap<String, u32>>(input).ok();
        });
        assert!(panicked.is_err());
        let strings = from_slice::<BTreeMap<String, u32>>(input).unwrap();
        assert_eq!(strings.get("1"), Some(&2));
        let names = from_slice_unescaped::<BTreeMap<Name, u32>>(input, &mut [0u8; 8]).unwrap();
        let keys: Vec<&str> = names.keys().map(|name| name.0.as_str()).collect();
        assert_eq!(keys, ["1", "bc"]);
        let raw = from_slice::<BTreeMap<Name, u32>>(input).unwrap();
        assert!(raw.contains_key(&Name(r"b\u0063".into())));
        let skipped = from_slice::<serde::de::IgnoredAny>(input);
        assert!(skipped.is_ok());
    }

    #[test]
    fn unescaped_mode_reports_a_scratch_buffer_too_small() {
        let input = br#"["\u00e9\u00e9\u00e9"]"#;
        let mut scratch = [0u8; 5];
        assert_eq!(
            from_slice_unescaped::<Vec<String>>(input, &mut scratch),
            Err(Error::EscapedStringIsTooLong)
        );
        let mut scratch = [0u8; 6];
        assert_eq!(
            from_slice_unescaped::<Vec<String>>(input, &mut scratch).unwrap(),
            ["\u{e9}\u{e9}\u{e9}"]
        );
        // Inside an option and an enum too: the failure is restored from wherever it
        // travelled as a custom error.
        let input = br#"{"Newtype": "\u00e9\u00e9\u00e9"}"#;
        #[derive(Debug, PartialEq, Deserialize)]
        enum Wrapper {
            Newtype(Option<String>),
        }
        assert_eq!(
            from_slice_unescaped::<Wrapper>(input, &mut [0u8; 5]).unwrap_err(),
            Error::EscapedStringIsTooLong
        );
        assert_eq!(
            from_slice_unescaped::<Wrapper>(input, &mut [0u8; 6]).unwrap(),
            Wrapper::Newtype(Some("\u{e9}\u{e9}\u{e9}".into()))
        );
    }
}
