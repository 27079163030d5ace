//! Typed QMP events: every event of QEMU's QAPI schema, generated (see
//! [`crate::qapi`]) and re-exported here.
//!
//! An event arrives as a name and an optional `data` object. [`DecodedEvent::decode`]
//! turns them into a typed view and never fails: a name this crate does not know gives
//! [`DecodedEvent::Unknown`], and a known name whose data does not decode gives
//! [`DecodedEvent::Undecodable`] with the reason. To wait for one kind of event only, use
//! its data type's [`EventData`] impl: `ShutdownEvent::from_event(name, data)`.
//!
//! Strings are [`JsonStr`](crate::json::JsonStr): borrowed from the receive buffer,
//! still escaped as on the wire (compare them with `==` against a `&str`, or unescape
//! them with [`JsonStr::unescape_into`](crate::json::JsonStr::unescape_into)).
//! Enumerations (`status`, `reason`, `action`, ...) are the generated enums, whose
//! `Unknown` variant keeps a value added by a newer QEMU, so it still decodes.

use crate::json::{DecodeError, RawJson};

pub use crate::qapi::qmp::events::*;

/// The data of one event type.
pub trait EventData<'a>: Sized {
    /// The event name on the wire.
    const NAME: &'static str;

    /// Decodes the event's `data` member (`None` when the event has none).
    fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError>;

    /// Decodes the event if it is named [`Self::NAME`], `None` otherwise.
    fn from_event(name: &str, data: Option<RawJson<'a>>) -> Option<Result<Self, DecodeError>> {
        if name == Self::NAME {
            Some(Self::decode(data))
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// The typed view.

/// Defines [`DecodedEvent`] and its decoder from a table of variants.
macro_rules! decoded_event {
    (
        $(#[$attr:meta])*
        pub enum $name:ident<$lt:lifetime> {
            $(
                $(#[$variant_attr:meta])*
                $variant:ident($ty:ty),
            )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        #[non_exhaustive]
        pub enum $name<$lt> {
            $(
                $(#[$variant_attr])*
                $variant($ty),
            )*
            /// An event this crate does not know.
            Unknown {
                /// Its name.
                name: &$lt str,
                /// Its `data` member.
                data: Option<RawJson<$lt>>,
            },
            /// A known event whose data did not decode (a newer QEMU changed it).
            Undecodable {
                /// Its name.
                name: &$lt str,
                /// Its `data` member.
                data: Option<RawJson<$lt>>,
                /// Why decoding failed.
                error: DecodeError,
            },
        }

        impl<$lt> $name<$lt> {
            /// Decodes an event from its name and `data` member. Never fails: see
            /// [`Unknown`](Self::Unknown) and [`Undecodable`](Self::Undecodable).
            pub fn decode(name: &$lt str, data: Option<RawJson<$lt>>) -> Self {
                $(
                    if name == <$ty as EventData<$lt>>::NAME {
                        return match <$ty as EventData<$lt>>::decode(data) {
                            Ok(decoded) => $name::$variant(decoded),
                            Err(error) => $name::Undecodable { name, data, error },
                        };
                    }
                )*
                $name::Unknown { name, data }
            }

            /// The event's name on the wire.
            pub fn name(&self) -> &$lt str {
                match self {
                    $( $name::$variant(_) => <$ty as EventData<$lt>>::NAME, )*
                    $name::Unknown { name, .. } | $name::Undecodable { name, .. } => name,
                }
            }

            /// The names of every event this enum decodes.
            pub const KNOWN_NAMES: &'static [&'static str] =
                &[$( <$ty as EventData<$lt>>::NAME, )*];
        }

        /// The event's name (the generated data types have no `defmt::Format`: deriving
        /// it for the whole schema costs minutes of compile time).
        #[cfg(feature = "defmt")]
        impl defmt::Format for $name<'_> {
            fn format(&self, f: defmt::Formatter<'_>) {
                defmt::write!(f, "{=str}", self.name())
            }
        }
    };
}
pub(crate) use decoded_event;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qapi::JobStatus;

    fn parse(json: &str) -> RawJson<'_> {
        RawJson::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn known_names_are_decoded_to_their_variant() {
        let data = parse(r#"{"id": "j", "status": "running"}"#);
        let event = DecodedEvent::decode("JOB_STATUS_CHANGE", Some(data));
        let DecodedEvent::JobStatusChange(change) = event else {
            panic!("{event:?}")
        };
        assert_eq!((change.id.raw(), change.status), ("j", JobStatus::Running));
        assert_eq!(event.name(), "JOB_STATUS_CHANGE");
        assert_eq!(
            DecodedEvent::decode("POWERDOWN", None),
            DecodedEvent::Powerdown(PowerdownEvent)
        );
    }

    #[test]
    fn never_fails() {
        let samples = [
            None,
            Some(parse("{}")),
            Some(parse("[]")),
            Some(parse("1")),
            Some(parse(r#"{"action": 1, "info": {}}"#)),
            Some(parse(r#"{"netdev-id": "n", "addr": {"type": "unix"}}"#)),
        ];
        for name in DecodedEvent::KNOWN_NAMES.iter().copied().chain(["NEW"]) {
            for data in samples {
                let event = DecodedEvent::decode(name, data);
                assert_eq!(event.name(), name);
            }
        }
        let event = DecodedEvent::decode(
            "NETDEV_STREAM_CONNECTED",
            Some(parse(
                r#"{"netdev-id": "n", "addr": {"type": "unix", "path": "/run/n.sock"}}"#,
            )),
        );
        assert!(matches!(event, DecodedEvent::NetdevStreamConnected(_)));
    }

    #[test]
    fn one_type_can_be_asked_for() {
        let data = Some(parse(r#"{"guest": true, "reason": "guest-shutdown"}"#));
        assert!(ShutdownEvent::from_event("RESET", data).is_none());
        let shutdown = ShutdownEvent::from_event("SHUTDOWN", data)
            .unwrap()
            .unwrap();
        assert!(shutdown.guest);
        assert_eq!(shutdown.reason, crate::qapi::ShutdownCause::GuestShutdown);
        assert!(ShutdownEvent::from_event("SHUTDOWN", None)
            .unwrap()
            .is_err());
    }
}
