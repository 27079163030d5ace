//! The one error type of the std clients, [`Error`], and [`ErrorClass`] with the class name owned.
//!
//! A QMP `{"error": ...}` reply becomes [`Error::Qmp`] with its class and description
//! (owned, unescaped). Failures of the connection carry the core's
//! [`CloseReason`]; the two situations users of the Go `qmp` package test for have their
//! own variants: [`Error::AlreadyConnected`] (another client holds the monitor, so the
//! greeting never came) and [`Error::ClientClosed`] (this client was closed).

use core::fmt;
use std::io;

use qmp_core::client::{CloseReason, ExecuteError};
use qmp_core::json::{DecodeError, JsonStr};
use qmp_core::message::{self, QmpError};

/// Everything a call on a [`Client`](crate::Client) or
/// `AsyncClient` (feature `tokio`) can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (connecting, reading or writing).
    Io(io::Error),
    /// The server answered with a QMP error.
    Qmp {
        /// The error class.
        class: ErrorClass,
        /// The human-readable description, unescaped (do not parse it).
        desc: String,
    },
    /// The command's deadline (or the wait's) passed without a reply. A reply arriving
    /// later is dropped; the command may still have run on the server.
    Timeout,
    /// The call was cancelled with [`Pending::cancel`](crate::Pending::cancel) or a
    /// [`Canceller`](crate::Canceller), or a subscription was cancelled.
    Cancelled,
    /// The session ended (the server closed the connection, died, or broke the
    /// protocol) before the reply came.
    Closed(CloseReason),
    /// The transport failed while the session ran: the connection was reset (a server
    /// killed with requests unread), a pipe broke, a device failed. The session is
    /// over; `source()` is the system's error.
    ConnectionFailed(io::Error),
    /// No greeting arrived within the greeting timeout and the server sent nothing at
    /// all: QEMU serves one client per monitor, and another client is connected.
    AlreadyConnected,
    /// The server greeted but did not complete the session's start (QMP: no answer to
    /// `qmp_capabilities`) within
    /// [`ConnectOptions::greeting_timeout`](crate::ConnectOptions::greeting_timeout).
    NegotiationStalled {
        /// How long `connect` waited.
        waited: core::time::Duration,
    },
    /// This client was closed with `close()` (or dropped) before or while the call
    /// waited.
    ClientClosed,
    /// The core refused to queue the command (transmit buffer too small, OOB not
    /// negotiated or not allowed for this command, ...).
    Execute(ExecuteError),
    /// The reply could not be decoded as the command's response type.
    Decode(DecodeError),
    /// JSON conversion with `serde_json` failed (arguments that cannot be serialized, a
    /// value that does not fit the requested type).
    Json(serde_json::Error),
    /// The reply was larger than the receive buffer
    /// ([`ConnectOptions::rx_buffer_size`](crate::ConnectOptions::rx_buffer_size)); it
    /// was skipped.
    ReplyTooLarge {
        /// The reply's length in bytes.
        len: u64,
    },
    /// A hand-built request was not a QMP command (`{"execute": NAME, ...}`).
    InvalidRequest(String),
}

impl Error {
    /// The QMP error class, if this is a QMP error reply.
    pub fn qmp_class(&self) -> Option<&ErrorClass> {
        match self {
            Error::Qmp { class, .. } => Some(class),
            _ => None,
        }
    }

    /// Whether the session is over (nothing more can be sent on this client).
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            Error::Closed(_)
                | Error::ConnectionFailed(_)
                | Error::ClientClosed
                | Error::AlreadyConnected
                | Error::NegotiationStalled { .. }
        )
    }

    /// Builds [`Error::Qmp`] from the core's borrowed error.
    pub(crate) fn from_qmp(error: &QmpError<'_>) -> Self {
        Error::Qmp {
            class: owned_class(error.class),
            desc: unescape(error.desc),
        }
    }

    /// The error for a session that closed for `reason`.
    pub(crate) fn closed(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Local => Error::ClientClosed,
            other => Error::Closed(other),
        }
    }

    /// The error for a session that closed for `reason` after the transport failed with
    /// `transport_error` (if it did): a reset is reported as the reset it is, not as an
    /// end of stream.
    pub(crate) fn ended(reason: CloseReason, transport_error: Option<io::ErrorKind>) -> Self {
        match (reason, transport_error) {
            (CloseReason::EndOfStream { .. }, Some(kind)) => {
                Error::ConnectionFailed(io::Error::from(kind))
            }
            (reason, _) => Error::closed(reason),
        }
    }
}

/// How a session ended: the core's reason, and the transport error behind an end of
/// stream if there was one. Copied to everyone who reports the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionEnd {
    pub(crate) reason: CloseReason,
    pub(crate) transport_error: Option<io::ErrorKind>,
}

impl SessionEnd {
    /// The error for a call made (or left waiting) after this end.
    pub(crate) fn error(self) -> Error {
        Error::ended(self.reason, self.transport_error)
    }
}

impl From<CloseReason> for SessionEnd {
    fn from(reason: CloseReason) -> Self {
        SessionEnd {
            reason,
            transport_error: None,
        }
    }
}

/// Decodes a still-escaped JSON string into an owned `String`.
pub(crate) fn unescape(text: JsonStr<'_>) -> String {
    match text.as_plain() {
        Some(plain) => plain.to_owned(),
        None => text.chars().collect(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Variants with a `source()` do not repeat it here: a reporter that walks the
            // chain would print it twice.
            Error::Io(_) => f.write_str("i/o error on the transport"),
            Error::Qmp { class, desc } => write!(f, "qmp error {class}: {desc}"),
            Error::Timeout => f.write_str("timed out waiting for the reply"),
            Error::Cancelled => f.write_str("cancelled"),
            Error::Closed(reason) => write!(f, "connection closed: {reason}"),
            Error::ConnectionFailed(_) => f.write_str("the connection failed"),
            Error::AlreadyConnected => f.write_str(
                "no greeting from the server: another client is connected to this monitor",
            ),
            Error::NegotiationStalled { waited } => write!(
                f,
                "the server greeted but did not complete negotiation within {:.1} s",
                waited.as_secs_f64()
            ),
            Error::ClientClosed => f.write_str("client closed"),
            Error::Execute(_) => f.write_str("cannot send the command"),
            Error::Decode(_) => f.write_str("cannot decode the reply"),
            Error::Json(_) => f.write_str("json conversion failed"),
            Error::ReplyTooLarge { len } => {
                write!(f, "reply of {len} bytes is larger than the receive buffer")
            }
            Error::InvalidRequest(why) => write!(f, "invalid request: {why}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Io(error) | Error::ConnectionFailed(error) => Some(error),
            Error::Execute(error) => Some(error),
            Error::Decode(error) => Some(error),
            Error::Json(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error::Io(error)
    }
}

impl From<ExecuteError> for Error {
    fn from(error: ExecuteError) -> Self {
        Error::Execute(error)
    }
}

impl From<DecodeError> for Error {
    fn from(error: DecodeError) -> Self {
        Error::Decode(error)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Json(error)
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::Io(_) => {
                let Error::Io(inner) = error else {
                    unreachable!("matched above")
                };
                return inner;
            }
            Error::Timeout | Error::NegotiationStalled { .. } => io::ErrorKind::TimedOut,
            Error::Cancelled => io::ErrorKind::Interrupted,
            Error::Closed(_) => io::ErrorKind::ConnectionAborted,
            Error::ConnectionFailed(inner) => inner.kind(),
            Error::AlreadyConnected => io::ErrorKind::ResourceBusy,
            Error::ClientClosed => io::ErrorKind::NotConnected,
            Error::Execute(_) | Error::InvalidRequest(_) => io::ErrorKind::InvalidInput,
            Error::Decode(_) | Error::Json(_) | Error::ReplyTooLarge { .. } => {
                io::ErrorKind::InvalidData
            }
            Error::Qmp { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// The class of a QMP error reply, owning the name of a class this crate does not know
/// (the core's [`qmp_core::message::ErrorClass`], unescaped into a `String`).
pub type ErrorClass = message::ErrorClass<String>;

/// Owns an error class read from the receive buffer.
pub(crate) fn owned_class(class: message::ErrorClass<JsonStr<'_>>) -> ErrorClass {
    class.map_other(unescape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::error::Error as _;

    #[test]
    fn classes_round_trip_through_their_names() {
        let other = JsonStr::from_escaped("Weird\\u0041").unwrap();
        assert_eq!(
            owned_class(message::ErrorClass::Other(other)),
            ErrorClass::Other("WeirdA".into())
        );
        assert_eq!(
            owned_class(message::ErrorClass::KvmMissingCap).name(),
            "KVMMissingCap"
        );
        let generic =
            message::ErrorClass::from_name(JsonStr::from_escaped("GenericError").unwrap());
        assert_eq!(owned_class(generic), ErrorClass::GenericError);
    }

    #[test]
    fn qmp_errors_are_unescaped_and_displayed() {
        let error = QmpError {
            class: message::ErrorClass::CommandNotFound,
            desc: JsonStr::from_escaped("no \\\"x\\\" \\u00e9").unwrap(),
        };
        let error = Error::from_qmp(&error);
        assert_eq!(error.to_string(), "qmp error CommandNotFound: no \"x\" é");
        assert_eq!(error.qmp_class(), Some(&ErrorClass::CommandNotFound));
        assert!(!error.is_closed());
    }

    #[test]
    fn io_conversion_keeps_kind_and_source() {
        let io: io::Error = Error::Timeout.into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        let io: io::Error = Error::AlreadyConnected.into();
        assert_eq!(io.kind(), io::ErrorKind::ResourceBusy);
        let original = io::Error::new(io::ErrorKind::BrokenPipe, "gone");
        let io: io::Error = Error::Io(original).into();
        assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(io.to_string(), "gone");
        let wrapped = Error::Execute(ExecuteError::OobNotEnabled);
        assert!(wrapped.source().is_some());
        assert_eq!(
            Error::closed(CloseReason::Local).to_string(),
            "client closed"
        );
        assert!(Error::closed(CloseReason::GreetingTimedOut).is_closed());
    }
}
