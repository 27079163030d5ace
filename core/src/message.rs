//! Messages: one framed JSON value classified as a greeting, a reply, an error, an event,
//! or something this crate does not know.
//!
//! Classification never fails: members it does not know are ignored, and a value that fits
//! no known shape is [`Message::Unknown`]. QEMU prints members in hash order (`id` may come
//! first or last), so nothing here depends on member order.

use core::fmt;

use crate::json::{JsonErrorKind, JsonStr, RawJson};

/// The empty string, for members a message lacks.
const EMPTY_STR: JsonStr<'static> = JsonStr::from_validated(b"");

/// One server message, borrowing the receive buffer.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Message<'a> {
    /// The `{"QMP": {...}}` greeting sent once when a client connects.
    Greeting(Greeting<'a>),
    /// A successful reply: `{"return": VALUE, "id": ID}`.
    Return {
        /// The request's `id`, exactly as the server echoed it (absent when the request
        /// had none).
        id: Option<RawJson<'a>>,
        /// The `return` value.
        value: RawJson<'a>,
    },
    /// An error reply: `{"error": {"class": C, "desc": D}, "id": ID}`.
    Error {
        /// The request's `id`; QEMU omits it for input it could not parse.
        id: Option<RawJson<'a>>,
        /// The error.
        error: QmpError<'a>,
    },
    /// An asynchronous event.
    Event(AsyncEvent<'a>),
    /// Valid JSON that is none of the above (kept whole for the caller to inspect).
    Unknown(RawJson<'a>),
}

impl<'a> Message<'a> {
    /// Classifies one complete JSON value.
    pub fn classify(value: RawJson<'a>) -> Message<'a> {
        Self::classify_members(value, value.members())
    }

    /// Classifies a value given an iterator over its top-level members (the framer
    /// records them while scanning, which saves a second walk).
    pub fn classify_members<I>(value: RawJson<'a>, members: I) -> Message<'a>
    where
        I: IntoIterator<Item = (JsonStr<'a>, RawJson<'a>)>,
    {
        Self::classify_checked(value, members).0
    }

    /// [`Message::classify_members`], also telling why a message that looks like a reply
    /// is [`Message::Unknown`]: `return`, `error`, `event` or `QMP` more than once in all,
    /// or `error` that is not an object. (A repeated `id` is the framer's to tell:
    /// [`crate::json::Framer::item_id_repeated`].)
    pub(crate) fn classify_checked<I>(
        value: RawJson<'a>,
        members: I,
    ) -> (Message<'a>, Option<MalformedReason>)
    where
        I: IntoIterator<Item = (JsonStr<'a>, RawJson<'a>)>,
    {
        if !value.is_object() {
            return (Message::Unknown(value), None);
        }
        let mut kind: Option<(Kind, RawJson<'a>)> = None;
        let mut ambiguous = false;
        let mut id = None;
        let mut data = None;
        let mut timestamp = None;
        for (key, member) in members {
            // Unescaped comparison: an escaped key is legal JSON, though QEMU never sends
            // one.
            let Some(&(_, name)) = MEMBER_NAMES.iter().find(|(text, _)| key == *text) else {
                continue;
            };
            let found = match name {
                MemberName::Id => {
                    id = Some(member);
                    continue;
                }
                MemberName::Data => {
                    data = Some(member);
                    continue;
                }
                MemberName::Timestamp => {
                    timestamp = Some(member);
                    continue;
                }
                MemberName::Kind(found) => found,
            };
            if kind.is_some() {
                ambiguous = true;
            }
            kind = Some((found, member));
        }
        let Some((kind, member)) = kind else {
            return (Message::Unknown(value), None);
        };
        if ambiguous {
            let reason = MalformedReason::ConflictingMembers;
            return (Message::Unknown(value), Some(reason));
        }
        let message = match kind {
            Kind::Return => Message::Return { id, value: member },
            Kind::Error => match QmpError::from_json(member) {
                Some(error) => Message::Error { id, error },
                None => {
                    let reason = MalformedReason::ErrorNotObject;
                    return (Message::Unknown(value), Some(reason));
                }
            },
            Kind::Event => match member.as_json_str() {
                Some(name) => Message::Event(AsyncEvent {
                    name,
                    data,
                    timestamp: timestamp.map_or(Timestamp::UNKNOWN, Timestamp::from_json),
                }),
                None => Message::Unknown(value),
            },
            Kind::Greeting => match Greeting::from_json(member) {
                Some(greeting) => Message::Greeting(greeting),
                None => Message::Unknown(value),
            },
        };
        (message, None)
    }
}

/// Why a reply that names one of the client's commands cannot be delivered as its answer
/// (see [`crate::client::CommandFailure::MalformedReply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum MalformedReason {
    /// The reply is not valid JSON after its `id` member (invalid UTF-8, a raw control
    /// byte such as NUL in a string, nesting deeper than the limit, ...).
    Json(JsonErrorKind),
    /// More than one of `return`, `error`, `event` and `QMP` (`return` twice, or
    /// `return` and `error`): what the server answered cannot be told.
    ConflictingMembers,
    /// `error` is not an object.
    ErrorNotObject,
    /// `id` twice (with the same value; with different values the message names no
    /// command and is reported as [`crate::client::Output::Unknown`]).
    DuplicateId,
}

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedReason::Json(kind) => write!(f, "invalid JSON: {kind}"),
            MalformedReason::ConflictingMembers => {
                f.write_str("more than one of return, error, event and QMP")
            }
            MalformedReason::ErrorNotObject => f.write_str("error member is not an object"),
            MalformedReason::DuplicateId => f.write_str("id member twice"),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Return,
    Error,
    Event,
    Greeting,
}

/// A top-level member that classification looks at.
#[derive(Clone, Copy)]
enum MemberName {
    Id,
    Data,
    Timestamp,
    /// The member that decides the kind of message.
    Kind(Kind),
}

/// The names of the members classification looks at (one table, one comparison loop:
/// smaller in flash than a `match` per spelling).
const MEMBER_NAMES: [(&str, MemberName); 7] = [
    ("id", MemberName::Id),
    ("return", MemberName::Kind(Kind::Return)),
    ("error", MemberName::Kind(Kind::Error)),
    ("event", MemberName::Kind(Kind::Event)),
    ("data", MemberName::Data),
    ("timestamp", MemberName::Timestamp),
    ("QMP", MemberName::Kind(Kind::Greeting)),
];

// Member accessors, each kept out of line: one copy serves every member it reads.

/// The string member `key` of `object`, still escaped.
#[inline(never)]
fn string_member<'a>(object: RawJson<'a>, key: &str) -> Option<JsonStr<'a>> {
    object.get(key).and_then(|value| value.as_json_str())
}

/// The member `key` of `object` as a `u32`; 0 if absent or not one.
#[inline(never)]
fn u32_member(object: RawJson<'_>, key: &str) -> u32 {
    object
        .get(key)
        .and_then(|n| n.as_u64())
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// The member `key` of `object` as an `i64`.
#[inline(never)]
fn i64_member(object: RawJson<'_>, key: &str) -> Option<i64> {
    object.get(key).and_then(|value| value.as_i64())
}

/// The server's greeting: its version and the capabilities this monitor offers.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Greeting<'a> {
    /// `QMP.version.qemu`.
    pub version: Version,
    /// `QMP.version.package`: free-form, may be empty.
    pub package: JsonStr<'a>,
    /// The capabilities offered.
    pub capabilities: Capabilities,
    /// The whole `QMP` object, for members this crate does not know.
    pub raw: RawJson<'a>,
}

impl<'a> Greeting<'a> {
    fn from_json(qmp: RawJson<'a>) -> Option<Self> {
        if !qmp.is_object() {
            return None;
        }
        let mut version = Version::default();
        let mut package = EMPTY_STR;
        if let Some(v) = qmp.get("version") {
            if let Some(qemu) = v.get("qemu") {
                version = Version {
                    major: u32_member(qemu, "major"),
                    minor: u32_member(qemu, "minor"),
                    micro: u32_member(qemu, "micro"),
                };
            }
            if let Some(p) = string_member(v, "package") {
                package = p;
            }
        }
        let mut capabilities = Capabilities::default();
        if let Some(list) = qmp.get("capabilities") {
            for capability in list.elements() {
                match capability.as_json_str() {
                    Some(name) if name == "oob" => capabilities.oob = true,
                    _ => capabilities.unknown = capabilities.unknown.saturating_add(1),
                }
            }
        }
        Some(Greeting {
            version,
            package,
            capabilities,
            raw: qmp,
        })
    }
}

/// A QEMU version triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version.
    pub micro: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Capabilities a monitor offers in its greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Capabilities {
    /// `oob`: out-of-band execution can be enabled.
    pub oob: bool,
    /// How many capabilities this crate does not know (ignored, as the spec asks).
    pub unknown: u16,
}

/// An error reply's contents.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QmpError<'a> {
    /// The error class.
    pub class: ErrorClass<JsonStr<'a>>,
    /// The human-readable description (do not parse it).
    pub desc: JsonStr<'a>,
}

impl<'a> QmpError<'a> {
    fn from_json(error: RawJson<'a>) -> Option<Self> {
        if !error.is_object() {
            return None;
        }
        let class = string_member(error, "class")
            .map_or(ErrorClass::Other(EMPTY_STR), ErrorClass::from_name);
        let desc = string_member(error, "desc").unwrap_or(EMPTY_STR);
        Some(QmpError { class, desc })
    }
}

impl fmt::Display for QmpError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

/// The `class` of an error reply. QEMU 10.0.2 defines five; any other is kept as
/// [`ErrorClass::Other`] (the spec allows new classes at any time: treat them as generic).
///
/// `S` holds the name of a class this crate does not know: the core borrows it from the
/// receive buffer ([`JsonStr`], as escaped on the wire); an owner of the text (qmp-std)
/// keeps a `String` ([`ErrorClass::map_other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorClass<S> {
    /// `GenericError`: most errors.
    GenericError,
    /// `CommandNotFound`: unknown or disabled command, or a command sent before
    /// negotiation.
    CommandNotFound,
    /// `DeviceNotActive`.
    DeviceNotActive,
    /// `DeviceNotFound`.
    DeviceNotFound,
    /// `KVMMissingCap`.
    KvmMissingCap,
    /// A class this crate does not know, by name.
    Other(S),
}

/// The wire names of the classes [`ErrorClass::from_name`] knows, in declaration order.
const KNOWN_CLASSES: [&str; 5] = [
    "GenericError",
    "CommandNotFound",
    "DeviceNotActive",
    "DeviceNotFound",
    "KVMMissingCap",
];

impl<'a> ErrorClass<JsonStr<'a>> {
    /// Maps a class name to the enum.
    pub fn from_name(name: JsonStr<'a>) -> Self {
        let known = name
            .as_plain()
            .and_then(|text| KNOWN_CLASSES.iter().position(|known| *known == text));
        match known {
            Some(0) => ErrorClass::GenericError,
            Some(1) => ErrorClass::CommandNotFound,
            Some(2) => ErrorClass::DeviceNotActive,
            Some(3) => ErrorClass::DeviceNotFound,
            Some(4) => ErrorClass::KvmMissingCap,
            _ => ErrorClass::Other(name),
        }
    }

    /// The class name as on the wire (escaped, for [`ErrorClass::Other`]).
    pub fn name(&self) -> &'a str {
        match self {
            ErrorClass::Other(name) => name.raw(),
            known => known.known_name().unwrap_or_default(),
        }
    }
}

impl<S> ErrorClass<S> {
    /// The wire name of a class this crate knows; `None` for [`ErrorClass::Other`].
    pub fn known_name(&self) -> Option<&'static str> {
        match self {
            ErrorClass::GenericError => Some("GenericError"),
            ErrorClass::CommandNotFound => Some("CommandNotFound"),
            ErrorClass::DeviceNotActive => Some("DeviceNotActive"),
            ErrorClass::DeviceNotFound => Some("DeviceNotFound"),
            ErrorClass::KvmMissingCap => Some("KVMMissingCap"),
            ErrorClass::Other(_) => None,
        }
    }

    /// The same class, with an unknown class's name converted by `convert` (to own it,
    /// for instance).
    pub fn map_other<T>(self, convert: impl FnOnce(S) -> T) -> ErrorClass<T> {
        match self {
            ErrorClass::GenericError => ErrorClass::GenericError,
            ErrorClass::CommandNotFound => ErrorClass::CommandNotFound,
            ErrorClass::DeviceNotActive => ErrorClass::DeviceNotActive,
            ErrorClass::DeviceNotFound => ErrorClass::DeviceNotFound,
            ErrorClass::KvmMissingCap => ErrorClass::KvmMissingCap,
            ErrorClass::Other(name) => ErrorClass::Other(convert(name)),
        }
    }
}

impl<S: AsRef<str>> ErrorClass<S> {
    /// The class name (for [`ErrorClass::Other`], the text `S` holds).
    pub fn name(&self) -> &str {
        match self {
            ErrorClass::Other(name) => name.as_ref(),
            known => known.known_name().unwrap_or_default(),
        }
    }
}

impl<S: fmt::Display> fmt::Display for ErrorClass<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.known_name()) {
            (ErrorClass::Other(name), _) => fmt::Display::fmt(name, f),
            (_, known) => f.write_str(known.unwrap_or_default()),
        }
    }
}

/// An asynchronous event: `{"event": NAME, "data": {...}, "timestamp": {...}}`.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AsyncEvent<'a> {
    /// The event name, e.g. `JOB_STATUS_CHANGE`.
    pub name: JsonStr<'a>,
    /// The `data` member; absent for events such as `STOP` and `RESUME`.
    pub data: Option<RawJson<'a>>,
    /// When the server built the event.
    pub timestamp: Timestamp,
}

/// An event's wall-clock timestamp. The spec allows `-1`/`-1` when the host clock could
/// not be read, and rate-limited events may arrive out of timestamp order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timestamp {
    /// Whole seconds since the Unix epoch, or -1.
    pub seconds: i64,
    /// Microseconds within the second, or -1.
    pub microseconds: i64,
}

impl Timestamp {
    /// The `-1`/`-1` timestamp: unknown (also used when the member is missing or not
    /// numeric).
    pub const UNKNOWN: Timestamp = Timestamp {
        seconds: -1,
        microseconds: -1,
    };

    /// Whether the server did not know the time.
    pub fn is_unknown(&self) -> bool {
        self.seconds < 0 || self.microseconds < 0
    }

    fn from_json(value: RawJson<'_>) -> Timestamp {
        let seconds = i64_member(value, "seconds");
        let microseconds = i64_member(value, "microseconds");
        match (seconds, microseconds) {
            (Some(seconds), Some(microseconds)) => Timestamp {
                seconds,
                microseconds,
            },
            _ => Timestamp::UNKNOWN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes_are_known_by_their_exact_wire_names() {
        for (text, class) in [
            ("GenericError", ErrorClass::<JsonStr<'_>>::GenericError),
            ("CommandNotFound", ErrorClass::CommandNotFound),
            ("DeviceNotActive", ErrorClass::DeviceNotActive),
            ("DeviceNotFound", ErrorClass::DeviceNotFound),
            ("KVMMissingCap", ErrorClass::KvmMissingCap),
        ] {
            let found = ErrorClass::from_name(JsonStr::from_validated(text.as_bytes()));
            assert!(
                matches!(
                    (found, class),
                    (ErrorClass::GenericError, ErrorClass::GenericError)
                        | (ErrorClass::CommandNotFound, ErrorClass::CommandNotFound)
                        | (ErrorClass::DeviceNotActive, ErrorClass::DeviceNotActive)
                        | (ErrorClass::DeviceNotFound, ErrorClass::DeviceNotFound)
                        | (ErrorClass::KvmMissingCap, ErrorClass::KvmMissingCap)
                ),
                "{text}"
            );
            assert_eq!(found.name(), text);
        }
        // Escaped spellings, other cases and prefixes are not the known classes.
        for text in [
            r"Generic\u0045rror",
            "genericerror",
            "Generic",
            "GenericErrors",
            "",
        ] {
            let found = ErrorClass::from_name(JsonStr::from_validated(text.as_bytes()));
            assert!(matches!(found, ErrorClass::Other(_)), "{text}");
            assert_eq!(found.name(), text);
        }
    }
}
