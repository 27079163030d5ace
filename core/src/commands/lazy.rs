//! Hand-decoded values: [`FromRawJson`] and the array that decodes them lazily.
//!
//! serde-json-core cannot hand a struct member over as [`RawJson`], nor decode a nested
//! list without a capacity. Types with free-form members (`any` in QAPI) or list members
//! implement [`FromRawJson`] instead of `Deserialize`: they decode their scalar members with
//! serde and keep the rest as `RawJson` or [`JsonArray`](super::JsonArray). A list of such
//! values is a [`LazyArray`].

use core::marker::PhantomData;

use crate::json::{DecodeError, Elements, RawJson};

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

/// A JSON array whose elements are decoded with [`FromRawJson`] as the iterator reaches
/// them: the counterpart of [`JsonArray`](super::JsonArray) for element types that serde
/// cannot decode in place.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LazyArray<'a, T> {
    raw: RawJson<'a>,
    _element: PhantomData<fn() -> T>,
}

impl<'a, T: FromRawJson<'a>> LazyArray<'a, T> {
    /// Wraps `raw`, which must be an array.
    pub fn new(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        if raw.is_array() {
            Ok(LazyArray {
                raw,
                _element: PhantomData,
            })
        } else {
            Err(DecodeError::NotAnArray)
        }
    }

    /// The array's exact bytes.
    pub fn raw(&self) -> RawJson<'a> {
        self.raw
    }

    /// The number of elements (walks the array once).
    pub fn len(&self) -> usize {
        self.raw.elements().count()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.raw.elements().next().is_none()
    }

    /// The elements, each decoded as it is reached.
    pub fn iter(&self) -> LazyArrayIter<'a, T> {
        LazyArrayIter {
            elements: self.raw.elements(),
            _element: PhantomData,
        }
    }
}

impl<'a, T: FromRawJson<'a>> FromRawJson<'a> for LazyArray<'a, T> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        LazyArray::new(raw)
    }
}

impl<'a, T: FromRawJson<'a>> IntoIterator for LazyArray<'a, T> {
    type Item = Result<T, DecodeError>;
    type IntoIter = LazyArrayIter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a [`LazyArray`]'s decoded elements.
#[derive(Debug, Clone)]
pub struct LazyArrayIter<'a, T> {
    elements: Elements<'a>,
    _element: PhantomData<fn() -> T>,
}

impl<'a, T: FromRawJson<'a>> Iterator for LazyArrayIter<'a, T> {
    type Item = Result<T, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.elements.next().map(T::from_raw_json)
    }
}

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
        let array = LazyArray::<Keyed<'_>>::new(raw).unwrap();
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
            LazyArray::<Keyed<'_>>::new(raw).unwrap_err(),
            DecodeError::NotAnArray
        );
        let empty = LazyArray::<RawJson<'_>>::new(RawJson::parse(b"[]").unwrap()).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.iter().count(), 0);
    }
}
