//! The `command!` macro that implements [`Command`](super::Command) without boilerplate,
//! and the response decoders it plugs in.

use crate::json::{DecodeError, RawJson};

use super::{Empty, JsonArray};

/// Implements [`Command`](crate::commands::Command).
///
/// Two forms:
/// - `command! { #[doc] pub struct Name; name: "wire-name", response<'r>: Type<'r> = decoder }`
///   defines a unit struct for a command without arguments;
/// - `command! { impl Name<'a>; name: "wire-name", response<'r>: Type<'r> = decoder }`
///   implements the trait for an existing struct that is its own arguments object.
///
/// Both take optional trailing `allow_oob: true` and `replies_on_success: false`. The
/// response lifetime is named by the caller (`'r`) so it never clashes with the struct's.
macro_rules! command {
    (
        $(#[$attr:meta])*
        pub struct $ty:ident;
        name: $name:literal,
        response<$r:lifetime>: $resp:ty = $decode:expr
        $(, allow_oob: $oob:literal)?
        $(, replies_on_success: $replies:literal)?
        $(,)?
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $ty;

        impl $crate::commands::Command for $ty {
            const NAME: &'static str = $name;
            $(const ALLOW_OOB: bool = $oob;)?
            $(const REPLIES_ON_SUCCESS: bool = $replies;)?
            type Arguments = $crate::commands::NoArguments;
            type Response<$r> = $resp;

            fn arguments(&self) -> Option<&Self::Arguments> {
                None
            }

            fn decode_response<$r>(
                raw: $crate::json::RawJson<$r>,
            ) -> Result<$resp, $crate::json::DecodeError> {
                ($decode)(raw)
            }
        }
    };
    (
        impl $ty:ident $(<$lt:lifetime>)?;
        name: $name:literal,
        response<$r:lifetime>: $resp:ty = $decode:expr
        $(, allow_oob: $oob:literal)?
        $(, replies_on_success: $replies:literal)?
        $(,)?
    ) => {
        impl $(<$lt>)? $crate::commands::Command for $ty $(<$lt>)? {
            const NAME: &'static str = $name;
            $(const ALLOW_OOB: bool = $oob;)?
            $(const REPLIES_ON_SUCCESS: bool = $replies;)?
            type Arguments = Self;
            type Response<$r> = $resp;

            fn arguments(&self) -> Option<&Self::Arguments> {
                Some(self)
            }

            fn decode_response<$r>(
                raw: $crate::json::RawJson<$r>,
            ) -> Result<$resp, $crate::json::DecodeError> {
                ($decode)(raw)
            }
        }
    };
}

pub(crate) use command;

/// Decodes the `{}` of commands without a declared return value. Any object is accepted,
/// so members a newer QEMU might add do not turn a success into an error.
pub(crate) fn empty(raw: RawJson<'_>) -> Result<Empty, DecodeError> {
    if raw.is_object() {
        Ok(Empty)
    } else {
        Err(DecodeError::NotAnObject)
    }
}

/// Wraps an array for lazy, element-by-element decoding.
pub(crate) fn array<'a, T: super::FromRawJson<'a>>(
    raw: RawJson<'a>,
) -> Result<JsonArray<'a, T>, DecodeError> {
    JsonArray::new(raw)
}

/// Decodes a value with a hand-written [`FromRawJson`](super::FromRawJson) impl.
pub(crate) fn custom<'a, T: super::FromRawJson<'a>>(raw: RawJson<'a>) -> Result<T, DecodeError> {
    T::from_raw_json(raw)
}

/// The error for a required member that is absent or of the wrong kind in a hand-decoded
/// object (serde-json-core reports the same situation as an invalid type).
pub(crate) const MISSING_MEMBER: DecodeError =
    DecodeError::Json(serde_json_core::de::Error::InvalidType);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> RawJson<'_> {
        RawJson::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn empty_accepts_any_object_only() {
        assert_eq!(empty(parse("{}")), Ok(Empty));
        assert_eq!(empty(parse(r#"{"added-later": 1}"#)), Ok(Empty));
        assert_eq!(empty(parse("[]")), Err(DecodeError::NotAnObject));
        assert_eq!(empty(parse("null")), Err(DecodeError::NotAnObject));
    }
}
