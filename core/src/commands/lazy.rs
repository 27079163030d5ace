//! Hand-decoded values: [`FromRawJson`], which [`JsonArray`](super::JsonArray) decodes
//! its elements with.
//!
//! serde-json-core cannot hand a struct member over as [`RawJson`], nor decode a nested
//! list without a capacity. Types with free-form members (`any` in QAPI) or list members
//! implement [`FromRawJson`] instead of `Deserialize`: they decode their scalar members with
//! serde and keep the rest as `RawJson` or [`JsonArray`](super::JsonArray). A list of such
//! values is a [`JsonArray`](super::JsonArray).

use crate::json::{DecodeError, JsonStr, RawJson};

/// A value decoded from its raw JSON by hand.
pub trait FromRawJson<'a>: Sized {
    /// Decodes `raw`, borrowing from it.
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError>;
}

impl<'a> FromRawJson<'a> for RawJson<'a> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        Ok(raw)
    }
}

// Built-in types: a value of the wrong JSON type (or out of range) is an error.
macro_rules! from_raw_int {
    ($($ty:ty),*) => {$(
        impl<'a> FromRawJson<'a> for $ty {
            fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
                if let Some(value) = raw.as_u64() {
                    return <$ty>::try_from(value).map_err(|_| super::macros::MISSING_MEMBER);
                }
                let value = raw.as_i64().ok_or(super::macros::MISSING_MEMBER)?;
                <$ty>::try_from(value).map_err(|_| super::macros::MISSING_MEMBER)
            }
        }
    )*};
}

from_raw_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl<'a> FromRawJson<'a> for f64 {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        raw.as_f64().ok_or(super::macros::MISSING_MEMBER)
    }
}

impl<'a> FromRawJson<'a> for bool {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        raw.as_bool().ok_or(super::macros::MISSING_MEMBER)
    }
}

impl<'a> FromRawJson<'a> for () {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        if raw.is_null() {
            Ok(())
        } else {
            Err(super::macros::MISSING_MEMBER)
        }
    }
}

impl<'a> FromRawJson<'a> for JsonStr<'a> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        raw.as_json_str().ok_or(super::macros::MISSING_MEMBER)
    }
}

/// Implements [`FromRawJson`] with serde, for hand-written types that derive
/// `Deserialize` and appear in a [`JsonArray`](super::JsonArray).
macro_rules! from_raw_json_via_serde {
    ($($ty:ident$(<$lt:lifetime>)?),* $(,)?) => {$(
        impl<'a> $crate::commands::FromRawJson<'a> for $ty$(<$lt>)? {
            fn from_raw_json(
                raw: $crate::json::RawJson<'a>,
            ) -> Result<Self, $crate::json::DecodeError> {
                raw.deserialize()
            }
        }
    )*};
}
pub(crate) use from_raw_json_via_serde;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonStr;

    /// A hand-decoded element: the string member `k`, required.
    #[derive(Debug, PartialEq)]
    struct Keyed<'a>(JsonStr<'a>);

    impl<'a> FromRawJson<'a> for Keyed<'a> {
        fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
            raw.get("k")
                .and_then(|k| k.as_json_str())
                .map(Keyed)
                .ok_or(DecodeError::NotAnObject)
        }
    }

    #[test]
    fn decodes_each_element_when_reached() {
        let raw = RawJson::parse(br#"[{"k": "a"}, 1, {"k": "b\"", "x": [1]}]"#).unwrap();
        let array = super::super::JsonArray::<Keyed<'_>>::new(raw).unwrap();
        assert_eq!(array.len(), 3);
        assert!(!array.is_empty());
        let mut elements = array.iter();
        assert_eq!(elements.next().unwrap().unwrap().0, "a");
        assert!(elements.next().unwrap().is_err());
        assert_eq!(elements.next().unwrap().unwrap().0, "b\"");
        assert!(elements.next().is_none());
        assert_eq!(array.raw(), raw);
    }

    #[test]
    fn rejects_what_is_not_an_array() {
        let raw = RawJson::parse(br#"{"k": "a"}"#).unwrap();
        assert_eq!(
            super::super::JsonArray::<Keyed<'_>>::new(raw).unwrap_err(),
            DecodeError::NotAnArray
        );
        let empty =
            super::super::JsonArray::<RawJson<'_>>::new(RawJson::parse(b"[]").unwrap()).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.iter().count(), 0);
    }
}
