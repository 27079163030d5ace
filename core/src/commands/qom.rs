//! The QEMU Object Model: listing, reading and writing object properties.

use crate::json::{DecodeError, JsonStr, RawJson};

use super::de;
use super::macros::{array, command, custom, empty, raw};
use super::{Command, Empty, FromRawJson, JsonArray};

/// `qom-list`: the properties of the object at `path` (`/machine`,
/// `/machine/peripheral/<id>`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QomList<'a> {
    /// The object's QOM path.
    pub path: &'a str,
}

command! {
    impl QomList<'a>;
    name: "qom-list",
    response<'r>: JsonArray<'r, ObjectPropertyInfo<'r>> = custom
}

/// One property of a QOM object or type (QAPI `ObjectPropertyInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ObjectPropertyInfo<'a> {
    /// The property's name.
    pub name: JsonStr<'a>,
    /// Its type: a builtin (`bool`, `uint32`, `str`, ...), `child<TYPE>` or `link<TYPE>`.
    pub property_type: JsonStr<'a>,
    /// A description, when the class has one.
    pub description: Option<JsonStr<'a>>,
    /// The default value, when known (any JSON value).
    pub default_value: Option<RawJson<'a>>,
}

#[derive(serde::Deserialize)]
struct ObjectPropertyInfoWire<'a> {
    #[serde(borrow, deserialize_with = "de::string")]
    name: JsonStr<'a>,
    #[serde(borrow, rename = "type", deserialize_with = "de::string")]
    property_type: JsonStr<'a>,
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    description: Option<JsonStr<'a>>,
}

impl<'a> FromRawJson<'a> for ObjectPropertyInfo<'a> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        let wire: ObjectPropertyInfoWire<'a> = raw.deserialize()?;
        Ok(ObjectPropertyInfo {
            name: wire.name,
            property_type: wire.property_type,
            description: wire.description,
            default_value: raw.get("default-value"),
        })
    }
}

/// `qom-get`: reads one property. The value can be any JSON value, returned undecoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QomGet<'a> {
    /// The object's QOM path.
    pub path: &'a str,
    /// The property's name.
    pub property: &'a str,
}

command! {
    impl QomGet<'a>;
    name: "qom-get",
    response<'r>: RawJson<'r> = raw
}

/// `qom-set`: writes one property; `value` is any serializable value of the property's
/// type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QomSet<'a, V> {
    /// The object's QOM path.
    pub path: &'a str,
    /// The property's name.
    pub property: &'a str,
    /// The new value.
    pub value: V,
}

impl<V: serde::Serialize> Command for QomSet<'_, V> {
    const NAME: &'static str = "qom-set";
    type Arguments = Self;
    type Response<'r> = Empty;

    fn arguments(&self) -> Option<&Self> {
        Some(self)
    }

    fn decode_response(raw: RawJson<'_>) -> Result<Empty, DecodeError> {
        empty(raw)
    }
}

/// `qom-list-types`: the QOM types, optionally only those implementing a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QomListTypes<'a> {
    /// Only types that implement this type or interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implements: Option<&'a str>,
    /// Include abstract types.
    #[serde(rename = "abstract", skip_serializing_if = "Option::is_none")]
    pub include_abstract: Option<bool>,
}

command! {
    impl QomListTypes<'a>;
    name: "qom-list-types",
    response<'r>: JsonArray<'r, ObjectTypeInfo<'r>> = array
}

/// One element of [`QomListTypes`]' return (QAPI `ObjectTypeInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ObjectTypeInfo<'a> {
    /// The type's name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub name: JsonStr<'a>,
    /// Whether it is abstract.
    #[serde(default, rename = "abstract")]
    pub is_abstract: Option<bool>,
    /// Its parent type.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub parent: Option<JsonStr<'a>>,
}

impl ObjectPropertyInfo<'_> {
    /// Whether the property is a child object (`child<TYPE>`).
    pub fn is_child(&self) -> bool {
        self.property_type.raw().starts_with("child<")
    }

    /// Whether the property is a link to another object (`link<TYPE>`).
    pub fn is_link(&self) -> bool {
        self.property_type.raw().starts_with("link<")
    }
}

super::from_raw_json_via_serde!(ObjectTypeInfo<'a>);
