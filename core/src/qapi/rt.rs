//! What the generated code builds on: the decoding of built-in types, serialization of
//! the borrowed wire types, and the decoders' shared errors.

use core::marker::PhantomData;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::commands::{Empty, FromRawJson, JsonArray};
use crate::json::{DecodeError, JsonKind, JsonStr, RawJson};

/// A required member is absent (serde-json-core reports it the same way).
pub(crate) const MISSING_MEMBER: DecodeError =
    DecodeError::Json(serde_json_core::de::Error::InvalidType);

/// A value of the wrong JSON type.
pub(crate) const WRONG_TYPE: DecodeError =
    DecodeError::Json(serde_json_core::de::Error::InvalidType);

/// Decodes the `{}` of commands that return nothing; any object is accepted.
pub(crate) fn empty(raw: RawJson<'_>) -> Result<Empty, DecodeError> {
    crate::commands::macros::empty(raw)
}

/// Types that write their members into an object being serialized: structs, and unions
/// (base members, discriminator, then the variant's members).
pub trait SerializeMembers {
    /// Writes the members into `map`.
    fn serialize_members<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;
}

/// `impl Serialize` as an object made of [`SerializeMembers`].
macro_rules! serialize_as_map {
    ($ty:ident $(<$lt:lifetime>)?) => {
        impl$(<$lt>)? serde::Serialize for $ty$(<$lt>)? {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serde::Serializer::serialize_map(serializer, None)?;
                $crate::qapi::rt::SerializeMembers::serialize_members(self, &mut map)?;
                serde::ser::SerializeMap::end(map)
            }
        }
    };
}
pub(crate) use serialize_as_map;

/// Written unescaped, then escaped again by the encoder: the same text on the wire.
impl Serialize for JsonStr<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Written value by value, so the encoder's guarantees (escaping, no non-characters)
/// hold for passed-through JSON too.
impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.kind() {
            JsonKind::Null => serializer.serialize_unit(),
            JsonKind::Bool => serializer.serialize_bool(self.as_bool() == Some(true)),
            JsonKind::Number => {
                if let Some(value) = self.as_u64() {
                    serializer.serialize_u64(value)
                } else if let Some(value) = self.as_i64() {
                    serializer.serialize_i64(value)
                } else {
                    match self.as_f64() {
                        Some(value) => serializer.serialize_f64(value),
                        None => Err(serde::ser::Error::custom("number out of range")),
                    }
                }
            }
            JsonKind::String => match self.as_json_str() {
                Some(text) => text.serialize(serializer),
                None => Err(serde::ser::Error::custom("bad string")),
            },
            JsonKind::Array => {
                let mut seq = serializer.serialize_seq(None)?;
                for element in self.elements() {
                    seq.serialize_element(&element)?;
                }
                seq.end()
            }
            JsonKind::Object => {
                let mut map = serializer.serialize_map(None)?;
                for (key, value) in self.members() {
                    map.serialize_entry(&key, &value)?;
                }
                map.end()
            }
        }
    }
}

/// Written element by element, each decoded and serialized again; an element that does
/// not decode fails the serialization.
impl<'a, T: FromRawJson<'a> + Serialize> Serialize for JsonArray<'a, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for element in self.iter() {
            let element =
                element.map_err(|_| serde::ser::Error::custom("element does not decode"))?;
            seq.serialize_element(&element)?;
        }
        seq.end()
    }
}

/// A member whose type contains the containing type again (`ImageInfo`'s
/// `backing-image`, `BlockStats`'s `parent`): kept as raw JSON and decoded on demand, so
/// the containing type has a finite size.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lazy<'a, T> {
    raw: RawJson<'a>,
    _value: PhantomData<fn() -> T>,
}

impl<'a, T: FromRawJson<'a>> Lazy<'a, T> {
    /// Decodes the value.
    pub fn get(&self) -> Result<T, DecodeError> {
        T::from_raw_json(self.raw)
    }

    /// The value's exact bytes.
    pub fn raw(&self) -> RawJson<'a> {
        self.raw
    }
}

impl<'a, T: FromRawJson<'a>> FromRawJson<'a> for Lazy<'a, T> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        Ok(Lazy {
            raw,
            _value: PhantomData,
        })
    }
}

impl<'a, T: FromRawJson<'a> + Serialize> Serialize for Lazy<'a, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get()
            .map_err(|_| serde::ser::Error::custom("value does not decode"))?
            .serialize(serializer)
    }
}

/// What every generated module imports.
pub(crate) mod prelude {
    pub(crate) use super::{Lazy, SerializeMembers};
    pub(crate) use crate::commands::{Command, Empty, FromRawJson, JsonArray, NoArguments};
    pub(crate) use crate::events::EventData;
    pub(crate) use crate::json::{DecodeError, JsonKind, JsonStr, RawJson};
    pub(crate) use serde::ser::SerializeMap;
}
