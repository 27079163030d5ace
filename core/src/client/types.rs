//! The client's public types: configuration, life-cycle state, command ids, what it
//! reports ([`Output`]) and its errors and counters.

use core::fmt;

use crate::commands::Command;
use crate::encode::EncodeError;
use crate::json::{JsonError, RawJson};
use crate::message::{AsyncEvent, Greeting, QmpError};
use crate::time::Duration;

use super::MalformedReason;
#[cfg(doc)]
use super::{Client, OOB_IN_BAND_LIMIT};

/// Which protocol the peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Protocol {
    /// A QMP monitor: greeting, negotiation, events, OOB.
    Qmp,
    /// The QEMU guest agent: no greeting, `0xFF` resynchronisation, no events.
    GuestAgent,
}

/// Session settings. Start from [`Config::qmp`] or [`Config::guest_agent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// The protocol spoken.
    pub protocol: Protocol,
    /// How long to wait for the greeting after the session starts (`None`: forever).
    /// QEMU serves one client per monitor; a second client connects fine and then hears
    /// nothing, so this is what turns that into an error.
    pub greeting_timeout: Option<Duration>,
    /// The default deadline of each command, counted from `execute` (`None`: none).
    pub command_timeout: Option<Duration>,
    /// Ask for out-of-band execution if the server offers it.
    pub enable_oob: bool,
    /// The deepest JSON nesting accepted from the server (at most
    /// [`crate::json::MAX_DEPTH_LIMIT`]; a larger value acts as that limit).
    pub max_depth: usize,
    /// The id of the first command (see [`Config::with_first_id`]).
    pub first_id: u64,
    /// The seed of the values [`Client::sync_seeded`] sends (see
    /// [`Config::with_sync_seed`]).
    pub sync_seed: u64,
    /// How many commands may be in flight at once (see [`Config::with_max_in_flight`]).
    pub max_in_flight: usize,
}

impl Config {
    /// QMP with a 10 s greeting timeout, a 30 s command timeout and OOB off.
    pub const fn qmp() -> Self {
        Config {
            protocol: Protocol::Qmp,
            greeting_timeout: Some(Duration::from_secs(10)),
            command_timeout: Some(Duration::from_secs(30)),
            enable_oob: false,
            max_depth: crate::json::DEFAULT_MAX_DEPTH,
            first_id: 1,
            sync_seed: 0,
            max_in_flight: usize::MAX,
        }
    }

    /// The guest agent with a 30 s command timeout (a session starts with a sync, which
    /// needs the crate's `guest-agent` feature, on by default).
    pub const fn guest_agent() -> Self {
        Config {
            protocol: Protocol::GuestAgent,
            greeting_timeout: None,
            command_timeout: Some(Duration::from_secs(30)),
            enable_oob: false,
            max_depth: crate::json::DEFAULT_MAX_DEPTH,
            first_id: 1,
            sync_seed: 0,
            max_in_flight: usize::MAX,
        }
    }

    /// Sets the greeting timeout.
    pub const fn with_greeting_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.greeting_timeout = timeout;
        self
    }

    /// Sets the default command timeout.
    pub const fn with_command_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Asks for OOB execution when the server offers it.
    pub const fn with_oob(mut self, enable: bool) -> Self {
        self.enable_oob = enable;
        self
    }

    /// Sets the JSON nesting limit. The scanner's ceiling is
    /// [`crate::json::MAX_DEPTH_LIMIT`] (256): a larger value is lowered to it, here and in
    /// [`Config::max_depth`], so the configuration says what is in force.
    pub const fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = if max_depth > crate::json::MAX_DEPTH_LIMIT {
            crate::json::MAX_DEPTH_LIMIT
        } else {
            max_depth
        };
        self
    }

    /// Sets the id of the first command (1 by default); later ones count up from it
    /// (wrapping after `u64::MAX`). A program that may restart, or share a guest agent's
    /// channel with an earlier client, should start each connection at a random id: a
    /// reply left over from the run before (its numbering started at 1 too) then names
    /// no command of this one and is reported or dropped instead of taken as an answer.
    /// Keep it below 2^53 if anything between the client and QEMU reads JSON numbers as
    /// doubles. `qmp-std` does this for every connection.
    pub const fn with_first_id(mut self, first_id: u64) -> Self {
        self.first_id = first_id;
        self
    }

    /// Seeds the values [`Client::sync_seeded`] sends (the core has no random source):
    /// give it a random number per connection, so that no two runs send the same
    /// sequence and a stale answer to an earlier run's sync is never taken for this one's.
    pub const fn with_sync_seed(mut self, seed: u64) -> Self {
        self.sync_seed = seed;
        self
    }

    /// Limits the commands in flight (queued or sent, not yet resolved) to `limit`, below
    /// the table's capacity `N`: one more is refused with
    /// [`ExecuteError::TooManyInFlight`], which [`Client::is_retryable`] calls retryable,
    /// so a driver holds it until a reply comes back. Guest-agent syncs do not count
    /// against it (they must overtake what waits). By default the table's capacity is
    /// the only limit.
    pub const fn with_max_in_flight(mut self, limit: usize) -> Self {
        self.max_in_flight = limit;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::qmp()
    }
}

/// Where the session is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum State {
    /// Connected, waiting for the server's greeting.
    AwaitingGreeting,
    /// `qmp_capabilities` queued or sent, waiting for its reply.
    Negotiating,
    /// Commands flow.
    Ready,
    /// The session is over; see [`Client::close_reason`].
    Closed,
}

/// The id the client gave a command. Ids are integers it allocates, counting up from
/// [`Config::first_id`] (1 unless set), so they round-trip through QEMU exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CommandId(pub(super) u64);

impl CommandId {
    /// The id as sent on the wire.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Wraps an id, e.g. one decoded from a reply.
    pub const fn new(id: u64) -> Self {
        CommandId(id)
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A reply to one of this client's commands.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Response<'a> {
    /// The command it answers.
    pub id: CommandId,
    /// The `return` value, or the error the server reported. A QMP error is data here,
    /// not a Rust error of the client.
    pub result: Result<RawJson<'a>, QmpError<'a>>,
}

impl<'a> Response<'a> {
    /// Decodes the reply as command `C`'s: its `return` value as `C`'s response type, or
    /// the error QEMU reported. Fails only when the `return` value does not have the
    /// documented shape.
    ///
    /// ```
    /// use qmp_core::client::{CommandId, Outcome, Response};
    /// use qmp_core::commands::QueryStatus;
    /// use qmp_core::json::RawJson;
    ///
    /// let value = RawJson::parse(br#"{"running": true, "status": "running"}"#).unwrap();
    /// let response = Response { id: CommandId::new(1), result: Ok(value) };
    /// match response.decode::<QueryStatus>().unwrap() {
    ///     Outcome::Return(status) => assert!(status.running),
    ///     Outcome::Error(error) => panic!("QEMU said {}", error.desc),
    /// }
    /// ```
    pub fn decode<C: Command>(
        &self,
    ) -> Result<Outcome<'a, C::Response<'a>>, crate::json::DecodeError> {
        match self.result {
            Ok(raw) => C::decode_response(raw).map(Outcome::Return),
            Err(error) => Ok(Outcome::Error(error)),
        }
    }
}

/// What a reply says ([`Response::decode`]): the command's `return` value, or the error
/// QEMU reported (data, not a failure of the client).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome<'a, T> {
    /// The `return` value.
    Return(T),
    /// The `error` member: its class and description.
    Error(QmpError<'a>),
}

/// Why a command was resolved without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CommandFailure {
    /// Its deadline passed. A reply arriving later is dropped.
    TimedOut,
    /// The connection ended (or the session closed) before the reply came.
    ConnectionClosed,
    /// The reply was larger than the receive buffer; it was skipped.
    ReplyTooLarge {
        /// The reply's length in bytes.
        len: u64,
    },
    /// A message naming this command (its `id` read before the fault, or a complete
    /// message with an unambiguous `id`) could not be taken as its answer; it was
    /// dropped. Whether the command ran on the server is unknown.
    MalformedReply {
        /// What was wrong with it.
        reason: MalformedReason,
        /// Where, as an offset in the received stream: the offending byte for invalid
        /// JSON, else the message's first byte.
        offset: u64,
    },
}

impl fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandFailure::TimedOut => f.write_str("command timed out"),
            CommandFailure::ConnectionClosed => f.write_str("connection closed before the reply"),
            CommandFailure::ReplyTooLarge { len } => {
                write!(f, "reply of {len} bytes is larger than the receive buffer")
            }
            CommandFailure::MalformedReply { reason, offset } => {
                write!(f, "malformed reply at byte {offset}: {reason}")
            }
        }
    }
}

impl core::error::Error for CommandFailure {}

/// Why the session closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the stream. `truncated` tells whether a message was cut off.
    EndOfStream {
        /// A message had started but not ended.
        truncated: bool,
    },
    /// No greeting within [`Config::greeting_timeout`] (typically: another client holds
    /// the monitor).
    GreetingTimedOut,
    /// The server broke the protocol.
    Protocol(ProtocolError),
    /// The caller closed the session with [`Client::close`].
    Local,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::EndOfStream { truncated: false } => f.write_str("end of stream"),
            CloseReason::EndOfStream { truncated: true } => {
                f.write_str("end of stream in the middle of a message")
            }
            CloseReason::GreetingTimedOut => {
                f.write_str("no greeting from the server (is another client connected?)")
            }
            CloseReason::Protocol(error) => write!(f, "protocol error: {error}"),
            CloseReason::Local => f.write_str("closed by the caller"),
        }
    }
}

/// The server broke the protocol; the session is over. Sticky: every later input call
/// reports it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first message of a QMP session was not a greeting.
    MissingGreeting,
    /// The server refused `qmp_capabilities`.
    NegotiationFailed,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::MissingGreeting => {
                f.write_str("the first message from the server was not a QMP greeting")
            }
            ProtocolError::NegotiationFailed => f.write_str("the server refused qmp_capabilities"),
        }
    }
}

impl core::error::Error for ProtocolError {}

/// Input was offered to a session that is already closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct SessionClosed {
    /// Why it closed.
    pub reason: CloseReason,
}

impl fmt::Display for SessionClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session closed: {}", self.reason)
    }
}

impl core::error::Error for SessionClosed {}

/// A command could not be queued. Nothing was sent and no id was used up; the session
/// goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ExecuteError {
    /// The session is closed.
    Closed,
    /// The transmit buffer cannot hold the request: `required` bytes, `available` free
    /// (after writing out what is queued, up to the buffer's size).
    TxFull {
        /// Bytes the encoded request needs.
        required: usize,
        /// Bytes free now.
        available: usize,
    },
    /// The in-flight table is full (its capacity, or [`OOB_IN_BAND_LIMIT`] in-band
    /// commands once OOB is enabled). Wait for replies.
    TooManyInFlight {
        /// The limit that applies.
        limit: usize,
    },
    /// `exec-oob` needs OOB, which was not negotiated (or not yet: the session is not
    /// ready).
    OobNotEnabled,
    /// The typed command is not marked `allow-oob`.
    OobNotAllowed,
    /// Guest-agent sync was asked of a QMP session.
    NotGuestAgent,
    /// Guest-agent sync was asked of a crate built without its `guest-agent` feature.
    SyncNotBuilt,
    /// The arguments could not be encoded.
    Encode(EncodeError),
    /// Raw arguments were not one JSON object.
    InvalidArguments,
}

impl fmt::Display for ExecuteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::Closed => f.write_str("session closed"),
            ExecuteError::TxFull {
                required,
                available,
            } => write!(
                f,
                "transmit buffer full: request needs {required} bytes, {available} free"
            ),
            ExecuteError::TooManyInFlight { limit } => {
                write!(f, "too many commands in flight (limit {limit})")
            }
            ExecuteError::OobNotEnabled => f.write_str("out-of-band execution is not enabled"),
            ExecuteError::OobNotAllowed => {
                f.write_str("command does not allow out-of-band execution")
            }
            ExecuteError::NotGuestAgent => f.write_str("sync is only for guest-agent sessions"),
            ExecuteError::SyncNotBuilt => {
                f.write_str("sync needs qmp-core's `guest-agent` feature, which is off")
            }
            ExecuteError::Encode(error) => write!(f, "cannot encode arguments: {error}"),
            ExecuteError::InvalidArguments => f.write_str("arguments must be one JSON object"),
        }
    }
}

impl core::error::Error for ExecuteError {}

impl From<EncodeError> for ExecuteError {
    fn from(error: EncodeError) -> Self {
        ExecuteError::Encode(error)
    }
}

/// Counters of what the client dropped or saw, for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Replies that came after their command timed out or was cancelled (dropped).
    pub late_replies: u64,
    /// Replies to ids this client never sent (reported as [`Output::UnmatchedResponse`]).
    pub unmatched_replies: u64,
    /// Id-less error replies (reported as [`Output::UnattributedError`]).
    pub unattributed_errors: u64,
    /// Invalid JSON messages skipped.
    pub malformed: u64,
    /// Messages larger than the receive buffer skipped.
    pub oversize: u64,
    /// Events received.
    pub events: u64,
    /// Messages dropped while a guest-agent sync was in progress, before its answer:
    /// replies that name no transmitted command of this client, id-less errors, stale
    /// sync answers, anything malformed or oversize that names no such command.
    pub discarded_while_syncing: u64,
    /// `0xFF` bytes seen outside a guest-agent sync (the framer resets on them).
    pub stray_reset_bytes: u64,
    /// Guest-agent resynchronisations the client started by itself after a command timed
    /// out (see [`Client::handle_timeout`]).
    pub resyncs: u64,
}

/// What happened. Drain [`Client::poll_output`] until `None` after every input and every
/// `execute*` call; each output borrows the client until the next call. (QMP events are
/// one kind of output, [`Output::AsyncEvent`]; [`crate::events`] decodes them.)
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Output<'a> {
    /// The QMP greeting arrived; `qmp_capabilities` is now queued for transmission.
    Greeting(Greeting<'a>),
    /// Negotiation succeeded: held commands are released, new ones go out at once.
    Ready,
    /// A reply to one of this client's commands (success or QMP error).
    Response(Response<'a>),
    /// The guest agent answered the resynchronisation the client started by itself after
    /// a command timed out (see [`Client::handle_timeout`]): commands held behind it are
    /// released.
    Resynchronised,
    /// An asynchronous event from the server.
    AsyncEvent(AsyncEvent<'a>),
    /// A command was resolved without a reply.
    CommandFailed {
        /// The command.
        id: CommandId,
        /// Why.
        reason: CommandFailure,
    },
    /// An error reply without an id: QEMU's answer to input it could not parse, or that
    /// was not a JSON object. It cannot be tied to a command.
    UnattributedError(QmpError<'a>),
    /// A reply whose id this client never sent (or already resolved).
    UnmatchedResponse {
        /// The id as the server sent it (absent for an id-less success reply).
        id: Option<RawJson<'a>>,
        /// The reply.
        result: Result<RawJson<'a>, QmpError<'a>>,
    },
    /// The server sent invalid JSON (QEMU can print `inf`); the message was dropped and
    /// the framer resynchronised at the next line.
    Malformed(JsonError),
    /// A message larger than the receive buffer was skipped (one that answered a command
    /// of ours is reported as [`Output::CommandFailed`] instead).
    Oversize {
        /// Its length in bytes.
        len: u64,
    },
    /// Valid JSON that is not a message this client expects in its current state.
    Unknown(RawJson<'a>),
    /// The server refused `qmp_capabilities`; [`Output::Closed`] follows.
    NegotiationFailed(QmpError<'a>),
    /// The session is over; reported once, after every command was resolved.
    Closed(CloseReason),
}
