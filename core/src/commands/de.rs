//! serde helpers for borrowed [`JsonStr`] members.
//!
//! `JsonStr` implements `Deserialize<'de>` for `JsonStr<'de>` only, which a derived
//! `Deserialize<'de>` for a struct with lifetime `'a` (where `'de: 'a`) cannot call
//! directly: these functions decode a `JsonStr<'de>` and shorten its lifetime to `'a`.
//! Use them as `#[serde(borrow, deserialize_with = "de::string")]`, and for optional
//! members `#[serde(borrow, default, deserialize_with = "de::optional_string")]`.

use serde::{Deserialize, Deserializer};

use crate::json::JsonStr;

/// Decodes a string member, still escaped.
pub(crate) fn string<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<JsonStr<'a>, D::Error> {
    JsonStr::deserialize(deserializer)
}

/// Decodes an optional string member (`null` counts as absent), still escaped.
pub(crate) fn optional_string<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<JsonStr<'a>>, D::Error> {
    Option::<JsonStr<'de>>::deserialize(deserializer)
}
