//! The session: one sans-IO state machine for a QMP monitor or a guest agent.
//!
//! [`Client`] takes bytes in ([`Client::handle_input`] or the zero-copy
//! [`Client::rx_window`] / [`Client::commit_rx`]), end of stream ([`Client::handle_eof`]) and
//! the passage of time ([`Client::handle_timeout`]); it gives bytes out
//! ([`Client::poll_transmit`] / [`Client::mark_transmitted`]), the next deadline
//! ([`Client::poll_timeout`]) and events ([`Client::poll_event`]). It never performs IO and
//! never reads a clock: every call that can start or expire a deadline takes `now`.
//!
//! # Life cycle (QMP)
//! `AwaitingGreeting -> Negotiating -> Ready -> Closed`. When the greeting arrives the
//! client queues `qmp_capabilities` itself (with `"enable": ["oob"]` only when
//! [`Config::with_oob`] asked for it *and* the server offered it). Commands executed before
//! the session is ready are encoded at once but held back: nothing except
//! `qmp_capabilities` ever reaches a server that is still negotiating (it would answer
//! `CommandNotFound`). They are released, in order, when negotiation succeeds.
//!
//! # Guest-agent mode
//! The agent sends no greeting, so the session starts `Ready`. Call [`Client::sync`] with a
//! random number first (the core has no random source; or [`Client::sync_seeded`] with a
//! seed from [`Config::with_sync_seed`]): it sends the `0xFF` reset byte and
//! `guest-sync-delimited`. The agent's pipe may still hold output for an earlier client
//! (a program that restarted, a half-read reply), so until the answer arrives the client
//! trusts nothing:
//! - the sync completes only with the delimited answer: the agent's `0xFF` sentinel
//!   *immediately* followed by `{"return": VALUE}` with this sync's value, begun after the
//!   sync request was completely written. A delimited answer with another value (an
//!   earlier client's sync), the same value without the sentinel, or a message after
//!   something else followed the sentinel is stale;
//! - a reply completes a command only if the command was transmitted (its request
//!   completely written, see [`Client::mark_transmitted`]) before the reply began to
//!   arrive. Commands executed during the sync are held back, so nothing can answer them;
//!   replies to commands transmitted before the sync are still delivered;
//! - everything else before the answer is dropped and counted in
//!   [`Stats::discarded_while_syncing`]: replies naming no such command (the sync's own id
//!   included: its request has none), id-less errors (the agent answers the `0xFF` of any
//!   client, this one's included, with one), stale sync answers, events, malformed and
//!   oversize messages that name no such command.
//!
//! An agent that refuses `guest-sync-delimited` (`--block-rpcs`) answers with an id-less
//! error that cannot be told from a stale one: the sync then ends at its deadline
//! ([`CommandFailure::TimedOut`]). For comparison: libvirt (`qemuAgentGuestSync` in
//! `src/qemu/qemu_agent.c`) sends plain `guest-sync` (no `0xFF`, so the agent's parser is
//! not reset) with the current time in milliseconds as the value, takes any `return`
//! equal to it, and matches other commands' replies by position alone; it does read
//! replies only once its request is completely written. QEMU's `qemu-ga-client` (on
//! qemu.qmp's legacy API) sends plain `guest-sync` with a random 32-bit value, repeating
//! it until an answer carries that value, and then takes the next reply as the answer
//! to each command.
//!
//! A command that times out may still be answered later, and that answer would then be
//! taken for the next command's if the agent were behind: so after a timeout the client
//! resynchronises by itself before anything executed later is sent (a seeded sync, see
//! [`Client::handle_timeout`]; its answer is [`Event::Resynchronised`]).
//!
//! Commands whose [`Command::REPLIES_ON_SUCCESS`] is `false` (`guest-shutdown`,
//! `guest-suspend-*`) are resolved as a success, with the value `{}`, by whichever comes
//! first: a reply to a *later* command (the agent answers strictly in order, so the silent
//! one has finished without error), their deadline passing without an error reply, or the
//! end of the stream (the guest went down). An error reply carrying their id resolves them
//! as that error.
//!
//! # Resolution guarantee
//! Every command id returned by `execute*` or `sync` is resolved exactly once, by either
//! [`Event::Response`] or [`Event::CommandFailed`] (timeout, connection closed, reply too
//! large for the receive buffer, malformed reply), unless the caller gives it up with
//! [`Client::cancel`]. Only bytes that began to arrive after a command's request was
//! completely written can resolve it. A message that names a command in flight but
//! cannot be its answer resolves it at once with [`CommandFailure::MalformedReply`]: its
//! `id` was read before the message turned out to be invalid JSON (invalid UTF-8, a raw
//! control byte, nesting deeper than [`Config::max_depth`], ...), or the message is
//! complete but ambiguous (`return` twice, `return` and `error`, `error` that is not an
//! object, `id` twice with one value). Such a message naming no command in flight is
//! reported as before ([`Event::Malformed`], [`Event::Unknown`]).
//! A reply that arrives after its command timed out or was cancelled is dropped and
//! counted ([`Stats::late_replies`]); it never reaches anyone as a response. After `quit`,
//! the end of the stream counts as its success.

use core::fmt;

use heapless::Vec;

use crate::commands::Command;
use crate::encode::{self, EncodeError, RequestKind};
use crate::json::{Framer, Item, JsonError, RawJson};
use crate::message::{AsyncEvent, Capabilities, Greeting, Message, QmpError, Version};
use crate::time::{Duration, Instant};
use crate::Buffer;

pub use crate::message::MalformedReason;

/// In-band commands the client keeps in flight once OOB is enabled, so that QEMU never
/// stops reading (and an `exec-oob` can always get through).
///
/// QEMU 10.0.2 (`monitor/qmp.c`, `handle_qmp_command`) queues each in-band request in a
/// queue of `QMP_REQ_QUEUE_LEN_MAX` (8) and *suspends reading* the monitor when it queues
/// one while 7 are already waiting; the dispatcher resumes it when it takes one out. The
/// dispatcher runs in the main loop: while that is busy (a slow command of another
/// monitor, a blocking device operation; the very cases OOB exists for) it takes
/// nothing out, so the 8th in-band request stops the reading and an `exec-oob` behind it
/// waits for the main loop. Measured on `qemu-system-x86_64` 10.0.2 (`-M pc -m 2G -S`, a
/// second monitor running `pmemsave` of 2 GiB to `/dev/null`, 0.3 s): with 7 in-band
/// requests queued on the first monitor the `exec-oob` behind them was answered after
/// 0.05 s, with 8 only when the `pmemsave` finished (three runs each). Vector 31 (8 in
/// flight, the OOB reply first) does not contradict it: there the slow command was the
/// first of the 8 and the dispatcher had already taken it out. Hence 7, not 8.
///
/// In-band commands given up (timed out or cancelled) still count, since QEMU still has
/// them queued, until a reply shows it is done with all of them: the late reply to the
/// one written last, or the reply to an in-band command written after them (QEMU
/// answers in-band requests in order).
pub const OOB_IN_BAND_LIMIT: usize = 7;

/// Room kept free in the transmit buffer while commands are held before negotiation, so
/// `qmp_capabilities` (at most 62 bytes) can always be put in front of them.
const NEGOTIATION_RESERVE: usize = 64;

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

    /// The guest agent with a 30 s command timeout.
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
pub struct CommandId(u64);

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
    /// Decodes the `return` value as command `C`'s response type.
    pub fn decode<C: Command>(
        &self,
    ) -> Result<Result<C::Response<'a>, QmpError<'a>>, crate::json::DecodeError> {
        match self.result {
            Ok(raw) => C::decode_response(raw).map(Ok),
            Err(error) => Ok(Err(error)),
        }
    }
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
    /// Replies to ids this client never sent (reported as [`Event::UnmatchedResponse`]).
    pub unmatched_replies: u64,
    /// Id-less error replies (reported as [`Event::UnattributedError`]).
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

/// What happened. Drain [`Client::poll_event`] until `None` after every input and every
/// `execute*` call; each event borrows the client until the next call.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event<'a> {
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
    /// of ours is reported as [`Event::CommandFailed`] instead).
    Oversize {
        /// Its length in bytes.
        len: u64,
    },
    /// Valid JSON that is not a message this client expects in its current state.
    Unknown(RawJson<'a>),
    /// The server refused `qmp_capabilities`; [`Event::Closed`] follows.
    NegotiationFailed(QmpError<'a>),
    /// The session is over; reported once, after every command was resolved.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    /// [`CommandFailure::TimedOut`].
    TimedOut,
    /// [`CommandFailure::ConnectionClosed`].
    ConnectionClosed,
    SilentSuccess,
}

/// [`Pending::sent_at`] of a request not completely written yet.
const NOT_SENT: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    deadline: Option<Instant>,
    oob: bool,
    replies_on_success: bool,
    is_quit: bool,
    /// A resynchronisation the client started by itself: resolved without an event.
    automatic: bool,
    resolution: Option<Resolution>,
    /// Where the request ends in the transmitted stream (every byte ever queued, in the
    /// order written), so its bytes are out once that many are.
    tx_end: u64,
    /// How many bytes had been received when the request was completely written
    /// ([`NOT_SENT`] until then): only a message starting at or after that offset of the
    /// received stream can answer it.
    sent_at: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sync {
    id: u64,
    value: u64,
    /// Started by the client itself after a timeout (see [`Client::handle_timeout`]).
    automatic: bool,
    /// The stream offset of the agent's `0xFF` sentinel when it was the last item.
    sentinel: Option<u64>,
}

/// The QMP / guest-agent client state machine. `N` is the capacity of the in-flight
/// table (commands sent or queued and not yet resolved).
///
/// Buffers are the caller's: `rx` holds at most one complete message plus the start of
/// the next (a message longer than `rx` is skipped and reported, and the session goes on);
/// `tx` holds encoded requests not yet written. See the crate docs for sizing and the run
/// loop. `B` is how they are held: borrowed slices by default ([`Client::new`]), or any
/// [`Buffer`] the client owns ([`Client::with_buffers`]).
pub struct Client<'buf, const N: usize = 16, B: Buffer = &'buf mut [u8]> {
    config: Config,
    framer: Framer<'buf, B>,
    tx: B,
    /// `tx[..tx_sent]` is written; `tx[tx_sent..tx_release]` may be written;
    /// `tx[tx_release..tx_len]` is held until negotiation or a sync completes.
    tx_sent: usize,
    tx_release: usize,
    tx_len: usize,
    /// The offset of `tx[0]` in the transmitted stream (see [`Pending::tx_end`]).
    tx_origin: u64,
    state: State,
    next_id: u64,
    pending: Vec<Pending, N>,
    given_up: RecentIds<N>,
    greeting_deadline: Option<Instant>,
    version: Option<Version>,
    capabilities: Option<Capabilities>,
    oob_enabled: bool,
    sync: Option<Sync>,
    /// The value of the last sync given up (timed out, superseded or cancelled), so its
    /// late reply is dropped as late rather than reported as unmatched.
    abandoned_sync: Option<u64>,
    /// Syncs sent by [`Client::sync_seeded`] so far.
    seeded_syncs: u64,
    /// A guest-agent command timed out after it was queued: the agent may still answer
    /// it, so a resynchronisation is started as soon as the table and buffer have room.
    resync_due: bool,
    /// In-band commands given up while OOB was possible, until QEMU is done with them
    /// (see [`OOB_IN_BAND_LIMIT`]).
    given_up_in_band: GivenUpInBand,
    eof: bool,
    close_reason: Option<CloseReason>,
    closed_reported: bool,
    stats: Stats,
}

impl<'buf, const N: usize> Client<'buf, N> {
    /// A new session that starts now. `rx` receives, `tx` transmits.
    pub fn new(config: Config, now: Instant, rx: &'buf mut [u8], tx: &'buf mut [u8]) -> Self {
        Self::with_buffers(config, now, rx, tx)
    }
}

impl<'buf, const N: usize, B: Buffer> Client<'buf, N, B> {
    /// [`Client::new`] over buffers of any [`Buffer`] type, for instance `Box<[u8]>`s
    /// the client owns (so it can live in a `Mutex` shared between threads).
    pub fn with_buffers(config: Config, now: Instant, rx: B, tx: B) -> Self {
        let (state, greeting_deadline) = match config.protocol {
            Protocol::Qmp => (
                State::AwaitingGreeting,
                config.greeting_timeout.map(|t| now + t),
            ),
            Protocol::GuestAgent => (State::Ready, None),
        };
        Client {
            config,
            framer: Framer::with_buffer(rx).with_max_depth(config.max_depth),
            tx,
            tx_sent: 0,
            tx_release: 0,
            tx_len: 0,
            tx_origin: 0,
            state,
            next_id: config.first_id,
            pending: Vec::new(),
            given_up: RecentIds::new(),
            greeting_deadline,
            version: None,
            capabilities: None,
            oob_enabled: false,
            sync: None,
            abandoned_sync: None,
            seeded_syncs: 0,
            resync_due: false,
            given_up_in_band: GivenUpInBand::new(),
            eof: false,
            close_reason: None,
            closed_reported: false,
            stats: Stats::default(),
        }
    }

    // ---- getters ----

    /// The life-cycle state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether commands go out immediately (ready and not holding for a sync).
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready && self.sync.is_none()
    }

    /// Whether `execute*` can accept commands (anything but closed).
    pub fn can_execute(&self) -> bool {
        self.state != State::Closed
    }

    /// Commands queued or sent and not yet resolved.
    pub fn in_flight(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| p.resolution.is_none())
            .count()
    }

    /// The server's version from the greeting.
    pub fn server_version(&self) -> Option<Version> {
        self.version
    }

    /// The capabilities the server offered in its greeting.
    pub fn server_capabilities(&self) -> Option<Capabilities> {
        self.capabilities
    }

    /// Whether OOB execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.oob_enabled
    }

    /// Whether a guest-agent sync is in progress.
    pub fn is_syncing(&self) -> bool {
        self.sync.is_some()
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
    }

    /// Diagnostic counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Ends the session and gives the buffers back as `(rx, tx)`, so a host that owns
    /// them (a `static`, a pool) can start the next session on the same memory.
    ///
    /// ```
    /// use qmp_core::client::{Client, Config};
    /// use qmp_core::time::Instant;
    ///
    /// let (mut rx, mut tx) = ([0u8; 1024], [0u8; 256]);
    /// let first: Client<'_, 4> = Client::new(Config::qmp(), Instant::ZERO, &mut rx, &mut tx);
    /// let (rx, tx) = first.into_buffers();
    /// let second: Client<'_, 4> = Client::new(Config::qmp(), Instant::ZERO, rx, tx);
    /// # let _ = second;
    /// ```
    pub fn into_buffers(self) -> (B, B) {
        (self.framer.into_buffer(), self.tx)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- input ----

    /// Feeds received bytes. Returns how many were taken: fewer than offered only when
    /// the receive buffer is full of messages not yet drained with [`Client::poll_event`]
    /// (drain, then offer the rest again).
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<usize, SessionClosed> {
        let _ = now;
        self.check_open()?;
        Ok(self.framer.push(bytes))
    }

    /// The zero-copy receive path: free space to read into, followed by
    /// [`Client::commit_rx`]. Empty when the buffer is full of undrained messages.
    pub fn rx_window(&mut self) -> &mut [u8] {
        if self.state == State::Closed {
            return &mut [];
        }
        self.framer.window()
    }

    /// Declares `n` bytes of [`Client::rx_window`] filled.
    pub fn commit_rx(&mut self, now: Instant, n: usize) -> Result<(), SessionClosed> {
        let _ = now;
        self.check_open()?;
        self.framer.commit(n);
        Ok(())
    }

    /// The peer closed its side. Messages already received are still delivered; then every
    /// command still in flight is resolved and [`Event::Closed`] follows.
    pub fn handle_eof(&mut self, now: Instant) {
        let _ = now;
        self.eof = true;
    }

    /// Expires deadlines at `now`. Safe to call at any time, as often as convenient.
    ///
    /// A guest agent may still be busy with a command that timed out, and answer it
    /// later: after such a timeout the client resynchronises by itself (as
    /// [`Client::sync_seeded`] does, before anything queued later is sent), so no stale
    /// answer can be taken for a later command's. Its answer is reported as
    /// [`Event::Resynchronised`] (its timeout, or the session's end, as nothing); it counts
    /// in [`Stats::resyncs`], its deadline is [`Config::command_timeout`], and if the table
    /// or the transmit buffer has no room for it yet it starts at a later call.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.expire(now);
    }

    /// [`Client::handle_timeout`], returning whether a deadline was due (whether
    /// [`Client::poll_timeout`] was at or before `now`), so a driver needs no separate
    /// [`Client::poll_timeout`] check.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        if self.state == State::Closed {
            return false;
        }
        if self.state == State::AwaitingGreeting {
            if let Some(deadline) = self.greeting_deadline {
                if now >= deadline {
                    self.close(CloseReason::GreetingTimedOut);
                    return true;
                }
            }
        }
        let mut expired = false;
        let mut sync_expired = false;
        for p in self.pending.iter_mut() {
            if p.resolution.is_some() {
                continue;
            }
            if let Some(deadline) = p.deadline {
                if now >= deadline {
                    expired = true;
                    // A silent command succeeded if no error came by its deadline, but only
                    // if it was sent at all.
                    p.resolution = Some(if p.replies_on_success || p.sent_at == NOT_SENT {
                        Resolution::TimedOut
                    } else {
                        Resolution::SilentSuccess
                    });
                    if self.sync.is_some_and(|s| s.id == p.id) {
                        sync_expired = true;
                    } else if self.config.protocol == Protocol::GuestAgent {
                        self.resync_due = true;
                    }
                }
            }
        }
        if sync_expired {
            // The agent did not answer the sync: stop holding commands back so they meet
            // their own deadlines instead of waiting forever.
            self.abandon_sync();
        }
        // A sync already under way (the caller's) resynchronises too.
        if self.resync_due && self.sync.is_none() {
            self.seeded_syncs = self.seeded_syncs.wrapping_add(1);
            let value = seeded_value(self.config.sync_seed, self.seeded_syncs);
            if self.start_sync(now, value, true).is_ok() {
                count(&mut self.stats.resyncs);
            }
        }
        if self.sync.is_some() {
            self.resync_due = false;
        }
        expired
    }

    /// Closes the session from this side: every command in flight is resolved with
    /// [`CommandFailure::ConnectionClosed`] and [`Event::Closed`] follows.
    pub fn close(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        let end_of_stream = matches!(reason, CloseReason::EndOfStream { .. });
        self.state = State::Closed;
        self.given_up_in_band.len = 0;
        self.close_reason = Some(reason);
        self.sync = None;
        for p in self.pending.iter_mut() {
            if p.resolution.is_none() {
                let silent = p.is_quit || !p.replies_on_success;
                p.resolution = Some(if end_of_stream && silent && p.sent_at != NOT_SENT {
                    Resolution::SilentSuccess
                } else {
                    Resolution::ConnectionClosed
                });
            }
        }
        self.tx_sent = 0;
        self.tx_release = 0;
        self.tx_len = 0;
    }

    fn check_open(&self) -> Result<(), SessionClosed> {
        match self.close_reason {
            Some(reason) => Err(SessionClosed { reason }),
            None => Ok(()),
        }
    }

    // ---- output ----

    /// Whether a command refused with `error` will be accepted later, once replies come
    /// back or queued bytes are written, so a driver may hold it and retry: too many in
    /// flight, or a transmit buffer that is full now but large enough. Everything else
    /// (a request larger than the buffer, OOB not possible, bad arguments, a closed
    /// session) fails for good.
    pub fn is_retryable(&self, error: &ExecuteError) -> bool {
        match *error {
            ExecuteError::TooManyInFlight { .. } => true,
            // The negotiation reserve only applies until the greeting.
            ExecuteError::TxFull { required, .. } => required <= self.tx.as_ref().len(),
            _ => false,
        }
    }

    /// Bytes to write to the peer, if any. Write as many as the transport takes, then call
    /// [`Client::mark_transmitted`].
    #[must_use]
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        match self.tx.as_ref().get(self.tx_sent..self.tx_release) {
            Some(bytes) if !bytes.is_empty() => Some(bytes),
            _ => None,
        }
    }

    /// Declares `n` bytes of [`Client::poll_transmit`] written (clamped to what was
    /// offered).
    pub fn mark_transmitted(&mut self, n: usize) {
        self.tx_sent = self.tx_sent.saturating_add(n).min(self.tx_release);
        let sent = self.tx_origin + self.tx_sent as u64;
        let received = self.framer.received();
        for p in self.pending.iter_mut() {
            if p.sent_at == NOT_SENT && p.tx_end <= sent {
                p.sent_at = received;
            }
        }
        if self.tx_sent == self.tx_len {
            self.tx_origin += self.tx_len as u64;
            self.tx_sent = 0;
            self.tx_release = 0;
            self.tx_len = 0;
        }
    }

    /// The earliest deadline: call [`Client::handle_timeout`] then. `None`: no deadline
    /// pending. Changes after `execute*`, input and `handle_timeout`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let greeting = match self.state {
            State::AwaitingGreeting => self.greeting_deadline,
            _ => None,
        };
        self.pending
            .iter()
            .filter(|p| p.resolution.is_none())
            .filter_map(|p| p.deadline)
            .chain(greeting)
            .min()
    }

    /// The next event, or `None` when there is nothing more until new input, a command or a
    /// timeout. The event borrows the receive buffer until the next call on the client.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        match self.advance()? {
            Step::Owned(event) => Some(event),
            Step::FromFrame(tag) => Some(self.frame_event(tag)),
        }
    }

    /// Processes input until something is to be reported. Events that borrow the current
    /// frame are returned as a tag and built by [`Client::frame_event`] afterwards: a
    /// borrow returned from inside the loop would keep the framer borrowed for every
    /// later iteration.
    fn advance(&mut self) -> Option<Step> {
        loop {
            if let Some(event) = self.take_resolution() {
                return Some(Step::Owned(event));
            }
            if self.state == State::Closed {
                if self.closed_reported {
                    return None;
                }
                self.closed_reported = true;
                return self.close_reason.map(|r| Step::Owned(Event::Closed(r)));
            }
            let (summary, reason) = match self.framer.next_item() {
                None => {
                    if self.eof {
                        let truncated = self.framer.has_partial();
                        self.close(CloseReason::EndOfStream { truncated });
                        continue;
                    }
                    return None;
                }
                Some(Item::Frame(frame)) => {
                    let (message, reason) =
                        Message::classify_checked(frame.value(), frame.members());
                    (Summary::of(message), reason)
                }
                Some(Item::Oversize { len, .. }) => {
                    count(&mut self.stats.oversize);
                    (Summary::Oversize { len }, None)
                }
                Some(Item::Malformed { error }) => {
                    count(&mut self.stats.malformed);
                    (Summary::Malformed(error), None)
                }
                Some(Item::Sentinel) => {
                    match self.sync.as_mut() {
                        Some(sync) => sync.sentinel = Some(self.framer.item_start()),
                        None => count(&mut self.stats.stray_reset_bytes),
                    }
                    continue;
                }
            };
            let start = self.framer.item_start();
            let delimited = self.after_sentinel();
            // A message that names a command but cannot be its answer fails the command,
            // if one in flight was sent before the message began to arrive.
            let failure = match summary {
                Summary::Oversize { len } => Some(CommandFailure::ReplyTooLarge { len }),
                Summary::Malformed(error) => Some(CommandFailure::MalformedReply {
                    reason: MalformedReason::Json(error.kind),
                    offset: error.offset,
                }),
                // Replies are only expected once ready.
                _ if self.state != State::Ready => None,
                _ => reason
                    .or(self
                        .framer
                        .item_id_repeated()
                        .then_some(MalformedReason::DuplicateId))
                    .map(|reason| CommandFailure::MalformedReply {
                        reason,
                        offset: start,
                    }),
            };
            if let Some(failure) = failure {
                let id = self.framer.item_id();
                if let Some(index) = id.and_then(|id| self.answered(id, start)) {
                    return self.fail_reply(index, failure);
                }
                if self.discard_while_syncing() {
                    continue;
                }
                return Some(match summary {
                    Summary::Oversize { len } => Step::Owned(Event::Oversize { len }),
                    Summary::Malformed(error) => Step::Owned(Event::Malformed(error)),
                    _ => Step::FromFrame(FrameEvent::Unknown),
                });
            }
            if let Some(step) = self.on_message(summary, start, delimited) {
                return Some(step);
            }
        }
    }

    /// Called for every item but a sentinel: where the agent's sentinel was, if it was the
    /// item just before this one during a sync (which makes this one the delimited
    /// answer it starts).
    fn after_sentinel(&mut self) -> Option<u64> {
        self.sync.as_mut().and_then(|sync| sync.sentinel.take())
    }

    /// During a sync, counts a message that is dropped as stale and returns `true`.
    fn discard_while_syncing(&mut self) -> bool {
        if self.sync.is_some() {
            count(&mut self.stats.discarded_while_syncing);
            true
        } else {
            false
        }
    }

    /// Builds the event for `tag` from the frame [`Client::advance`] stopped at.
    fn frame_event(&mut self, tag: FrameEvent) -> Event<'_> {
        let Some(Item::Frame(frame)) = self.framer.current_item() else {
            // `advance` only returns a frame tag right after taking a frame.
            return Event::Closed(CloseReason::Local);
        };
        let root = frame.value();
        let message = Message::classify_members(root, frame.members());
        match (tag, message) {
            (FrameEvent::Greeting, Message::Greeting(greeting)) => Event::Greeting(greeting),
            (FrameEvent::Response(id), Message::Return { value, .. }) => {
                Event::Response(Response {
                    id,
                    result: Ok(value),
                })
            }
            (FrameEvent::Response(id), Message::Error { error, .. }) => Event::Response(Response {
                id,
                result: Err(error),
            }),
            (FrameEvent::AsyncEvent, Message::Event(event)) => Event::AsyncEvent(event),
            (FrameEvent::UnattributedError, Message::Error { error, .. }) => {
                Event::UnattributedError(error)
            }
            (FrameEvent::NegotiationFailed, Message::Error { error, .. }) => {
                Event::NegotiationFailed(error)
            }
            (FrameEvent::Unmatched, Message::Return { id, value }) => Event::UnmatchedResponse {
                id,
                result: Ok(value),
            },
            (FrameEvent::Unmatched, Message::Error { id, error }) => Event::UnmatchedResponse {
                id,
                result: Err(error),
            },
            _ => Event::Unknown(root),
        }
    }

    /// The command in flight that a message naming `id` and starting at offset `start`
    /// of the received stream can answer: one whose request was completely written
    /// before that message began to arrive. The current sync is never one (its request
    /// carries no id).
    fn answered(&self, id: u64, start: u64) -> Option<usize> {
        if self.sync.is_some_and(|sync| sync.id == id) {
            return None;
        }
        self.pending
            .iter()
            .position(|p| p.id == id && p.resolution.is_none() && p.sent_at <= start)
    }

    /// `pending[index]` was answered (or failed by a message naming it); resolves what the
    /// agent's in-order answers say is done before it.
    fn answered_in_order(&mut self, index: usize) {
        if let Some(&p) = self.pending.get(index) {
            if !p.oob {
                self.given_up_in_band.answered_through(p.tx_end);
            }
            self.resolve_silent_before(p.tx_end);
        }
    }

    /// Resolves `pending[index]` at once: a message naming it could not be its answer.
    fn fail_reply(&mut self, index: usize, reason: CommandFailure) -> Option<Step> {
        let p = *self.pending.get(index)?;
        self.answered_in_order(index);
        self.remove_pending(index);
        Some(Step::Owned(Event::CommandFailed {
            id: CommandId(p.id),
            reason,
        }))
    }

    /// Removes `pending[index]`, the last entry taking its place (`swap_remove` without
    /// its overlapping copy, which would link `memmove` into firmware).
    fn remove_pending(&mut self, index: usize) {
        if index < self.pending.len() {
            if let Some(last) = self.pending.pop() {
                if let Some(slot) = self.pending.get_mut(index) {
                    *slot = last;
                }
            }
        }
    }

    fn take_resolution(&mut self) -> Option<Event<'static>> {
        loop {
            let index = self.pending.iter().position(|p| p.resolution.is_some())?;
            let p = *self.pending.get(index)?;
            self.remove_pending(index);
            let id = CommandId(p.id);
            let reason = match p.resolution? {
                Resolution::TimedOut => {
                    self.give_up(p);
                    CommandFailure::TimedOut
                }
                Resolution::ConnectionClosed => CommandFailure::ConnectionClosed,
                Resolution::SilentSuccess => {
                    return Some(Event::Response(Response {
                        id,
                        result: Ok(RawJson::EMPTY_OBJECT),
                    }))
                }
            };
            // The client's own resync is nobody's call: nothing to report.
            if !p.automatic {
                return Some(Event::CommandFailed { id, reason });
            }
        }
    }

    fn on_message(&mut self, message: Summary, start: u64, delimited: Option<u64>) -> Option<Step> {
        match self.state {
            State::AwaitingGreeting => match message {
                Summary::Greeting {
                    version,
                    capabilities,
                } => {
                    self.version = Some(version);
                    self.capabilities = Some(capabilities);
                    let oob = self.config.enable_oob && capabilities.oob;
                    self.oob_enabled = oob;
                    let request: &[u8] = if oob {
                        b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n"
                    } else {
                        b"{\"execute\":\"qmp_capabilities\"}\n"
                    };
                    // Room for it is reserved while commands are held, so this cannot fail.
                    let _ = self.insert_released(request);
                    self.state = State::Negotiating;
                    Some(Step::FromFrame(FrameEvent::Greeting))
                }
                _ => {
                    self.close(CloseReason::Protocol(ProtocolError::MissingGreeting));
                    None
                }
            },
            State::Negotiating => match message {
                Summary::Return { .. } => {
                    self.state = State::Ready;
                    self.tx_release = self.tx_len;
                    Some(Step::Owned(Event::Ready))
                }
                Summary::Error { .. } => {
                    self.close(CloseReason::Protocol(ProtocolError::NegotiationFailed));
                    // The error text is reported before the resolutions and `Closed`.
                    Some(Step::FromFrame(FrameEvent::NegotiationFailed))
                }
                Summary::Event => {
                    count(&mut self.stats.events);
                    Some(Step::FromFrame(FrameEvent::AsyncEvent))
                }
                // Oversize and malformed items never get here.
                _ => Some(Step::FromFrame(FrameEvent::Unknown)),
            },
            State::Ready => self.on_ready_message(message, start, delimited),
            State::Closed => None,
        }
    }

    fn on_ready_message(
        &mut self,
        message: Summary,
        start: u64,
        delimited: Option<u64>,
    ) -> Option<Step> {
        match message {
            Summary::Return {
                id: ReplyId::Absent,
                value,
            } => {
                if let Some(sync) = self.sync {
                    if let (Some(sentinel), true) = (delimited, value == Some(sync.value)) {
                        if self.finish_sync(sync, sentinel) {
                            return Some(if sync.automatic {
                                Step::Owned(Event::Resynchronised)
                            } else {
                                Step::FromFrame(FrameEvent::Response(CommandId(sync.id)))
                            });
                        }
                    }
                    count(&mut self.stats.discarded_while_syncing);
                    return None;
                }
                if let (Some(value), Some(late)) = (value, self.abandoned_sync) {
                    if value == late {
                        self.abandoned_sync = None;
                        count(&mut self.stats.late_replies);
                        return None;
                    }
                }
                count(&mut self.stats.unmatched_replies);
                Some(Step::FromFrame(FrameEvent::Unmatched))
            }
            Summary::Error {
                id: ReplyId::Absent,
            } => {
                if self.discard_while_syncing() {
                    return None;
                }
                count(&mut self.stats.unattributed_errors);
                Some(Step::FromFrame(FrameEvent::UnattributedError))
            }
            Summary::Return { id, .. } | Summary::Error { id } => self.on_reply(id, start),
            _ if self.discard_while_syncing() => None,
            Summary::Event => {
                count(&mut self.stats.events);
                Some(Step::FromFrame(FrameEvent::AsyncEvent))
            }
            // Oversize and malformed items never get here.
            _ => Some(Step::FromFrame(FrameEvent::Unknown)),
        }
    }

    fn on_reply(&mut self, id: ReplyId, start: u64) -> Option<Step> {
        if let ReplyId::Integer(id) = id {
            if let Some(index) = self.answered(id, start) {
                self.answered_in_order(index);
                self.remove_pending(index);
                return Some(Step::FromFrame(FrameEvent::Response(CommandId(id))));
            }
            if self.given_up.contains(id) {
                self.given_up_in_band.late(id);
                count(&mut self.stats.late_replies);
                return None;
            }
        }
        if self.discard_while_syncing() {
            return None;
        }
        count(&mut self.stats.unmatched_replies);
        Some(Step::FromFrame(FrameEvent::Unmatched))
    }

    /// The agent answers in order: silent commands written before the request that ends
    /// at `tx_end` in the transmitted stream are done.
    fn resolve_silent_before(&mut self, tx_end: u64) {
        if self.config.protocol != Protocol::GuestAgent {
            return;
        }
        for p in self.pending.iter_mut() {
            if p.tx_end < tx_end && !p.replies_on_success && p.resolution.is_none() {
                p.resolution = Some(Resolution::SilentSuccess);
            }
        }
    }

    /// The delimited answer carrying the sync's value, its sentinel at `start`: completes
    /// the sync, unless it began to arrive before the sync request was out (then it is a
    /// stale answer to an earlier client's sync with the same value: `false`).
    fn finish_sync(&mut self, sync: Sync, start: u64) -> bool {
        let Some(index) = self
            .pending
            .iter()
            .position(|p| p.id == sync.id && p.resolution.is_none() && p.sent_at <= start)
        else {
            return false;
        };
        self.sync = None;
        self.tx_release = self.tx_len;
        self.answered_in_order(index);
        self.remove_pending(index);
        true
    }

    /// Inserts `bytes` at the release point (after everything releasable, before held
    /// commands) and releases them. Err carries the free space.
    fn insert_released(&mut self, bytes: &[u8]) -> Result<(), usize> {
        if self.tx.as_ref().len() - self.tx_len < bytes.len() && self.tx_sent > 0 {
            self.compact_tx();
        }
        let free = self.tx.as_ref().len() - self.tx_len;
        if free < bytes.len() {
            return Err(free);
        }
        let start = self.tx_release;
        let end = self.tx_len + bytes.len();
        // Held requests move back: so do their ends in the transmitted stream.
        let at = self.tx_origin + start as u64;
        for p in self.pending.iter_mut() {
            if p.tx_end > at {
                p.tx_end += bytes.len() as u64;
            }
        }
        crate::json::move_back(self.tx.as_mut(), start, self.tx_len, bytes.len());
        let Some(head) = self.tx.as_mut().get_mut(start..start + bytes.len()) else {
            return Err(free);
        };
        head.copy_from_slice(bytes);
        self.tx_len = end;
        self.tx_release = start + bytes.len();
        Ok(())
    }

    // ---- commands ----

    /// Queues a typed command (in-band). Returns its id; the reply comes as
    /// [`Event::Response`] with that id (decode it with [`Response::decode`]).
    pub fn execute<C: Command>(
        &mut self,
        now: Instant,
        command: &C,
    ) -> Result<CommandId, ExecuteError> {
        self.submit(
            now,
            RequestKind::Execute,
            C::NAME,
            command.arguments(),
            C::REPLIES_ON_SUCCESS,
        )
    }

    /// Queues a typed command for out-of-band execution (`exec-oob`). Needs OOB
    /// negotiated ([`Config::with_oob`]) and a command marked `allow-oob`.
    pub fn execute_oob<C: Command>(
        &mut self,
        now: Instant,
        command: &C,
    ) -> Result<CommandId, ExecuteError> {
        if !C::ALLOW_OOB {
            return Err(ExecuteError::OobNotAllowed);
        }
        self.submit(
            now,
            RequestKind::ExecOob,
            C::NAME,
            command.arguments(),
            C::REPLIES_ON_SUCCESS,
        )
    }

    /// Queues a command by name with any serializable arguments (`None`: no `arguments`
    /// member). For commands this crate has no type for.
    pub fn execute_raw<A: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<&A>,
    ) -> Result<CommandId, ExecuteError> {
        self.submit(now, RequestKind::Execute, name, arguments, true)
    }

    /// [`Client::execute_raw`] with `exec-oob`.
    pub fn execute_raw_oob<A: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<&A>,
    ) -> Result<CommandId, ExecuteError> {
        self.submit(now, RequestKind::ExecOob, name, arguments, true)
    }

    /// Queues a command whose arguments are already JSON text (must be one object). The
    /// text is validated and copied as is; what QEMU's parser would reject without telling
    /// which request it was (duplicate keys, Unicode non-characters, unpaired surrogate
    /// escapes such as `\ud800`, nesting deeper than
    /// [`RAW_ARGUMENTS_MAX_DEPTH`]) is refused with [`ExecuteError::InvalidArguments`],
    /// since such a command would never be answered.
    pub fn execute_json(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<&[u8]>,
        oob: bool,
    ) -> Result<CommandId, ExecuteError> {
        let arguments = match arguments {
            Some(bytes) => match RawJson::parse(bytes) {
                Ok(raw) if raw.is_object() && acceptable_to_qemu(raw, 0) => Some(raw),
                _ => return Err(ExecuteError::InvalidArguments),
            },
            None => None,
        };
        let kind = if oob {
            RequestKind::ExecOob
        } else {
            RequestKind::Execute
        };
        let arguments = arguments.map(|raw| raw.as_bytes());
        self.submit_with(now, kind, name, true, |out, id| {
            encode_json_request(out, kind, name, arguments, id)
        })
    }

    /// Changes a command's deadline (`None`: wait forever). Returns whether the command
    /// was still in flight.
    pub fn set_deadline(&mut self, id: CommandId, deadline: Option<Instant>) -> bool {
        match self
            .pending
            .iter_mut()
            .find(|p| p.id == id.0 && p.resolution.is_none())
        {
            Some(p) => {
                p.deadline = deadline;
                true
            }
            None => false,
        }
    }

    /// Gives up on a command: no event will be reported for it, and its reply, if it
    /// comes, is dropped (counted as late). The command may still run on the server.
    /// Returns whether it was in flight.
    pub fn cancel(&mut self, id: CommandId) -> bool {
        match self
            .pending
            .iter()
            .position(|p| p.id == id.0 && p.resolution.is_none())
        {
            Some(index) => {
                if let Some(&p) = self.pending.get(index) {
                    self.give_up(p);
                }
                self.remove_pending(index);
                if self.sync.is_some_and(|sync| sync.id == id.0) {
                    self.abandon_sync();
                }
                true
            }
            None => false,
        }
    }

    /// Remembers a command given up, so that its late reply is dropped as late, and an
    /// in-band one as still queued by QEMU while OOB is possible.
    fn give_up(&mut self, p: Pending) {
        self.given_up.remember(p.id);
        if !p.oob && self.oob_possible() {
            self.given_up_in_band.add(p.id, p.tx_end);
        }
    }

    /// Whether OOB is, or may become, enabled.
    fn oob_possible(&self) -> bool {
        self.oob_enabled || (self.config.enable_oob && self.state == State::AwaitingGreeting)
    }

    /// Stops waiting for the current guest-agent sync: held commands are released and its
    /// reply, if it still comes, is dropped as late.
    fn abandon_sync(&mut self) {
        if let Some(sync) = self.sync.take() {
            self.abandoned_sync = Some(sync.value);
            self.tx_release = self.tx_len;
        }
    }

    /// Guest agent: resynchronise with `0xFF` + `guest-sync-delimited` carrying `value`, a
    /// random number the caller picks (or see [`Client::sync_seeded`]). Resolved by
    /// [`Event::Response`] whose value is `value`, by the agent's delimited answer only:
    /// its `0xFF` sentinel immediately followed by `{"return": value}`, arriving after
    /// the request was completely written. Until then new commands are held back (not
    /// transmitted), and everything else that arrives is dropped and counted in
    /// [`Stats::discarded_while_syncing`], except replies to commands transmitted before
    /// the sync, which are delivered as usual. See the module docs.
    pub fn sync(&mut self, now: Instant, value: u64) -> Result<CommandId, ExecuteError> {
        self.start_sync(now, value, false)
    }

    /// [`Client::sync`], by the caller or (`automatic`) by the client itself.
    fn start_sync(
        &mut self,
        now: Instant,
        value: u64,
        automatic: bool,
    ) -> Result<CommandId, ExecuteError> {
        if self.config.protocol != Protocol::GuestAgent {
            return Err(ExecuteError::NotGuestAgent);
        }
        if self.state == State::Closed {
            return Err(ExecuteError::Closed);
        }
        self.reserve_slot(false, true)?;
        let mut request = [0u8; 80];
        let len = encode::encode_sync_request(&mut request, value)?;
        let request = request.get(..len).unwrap_or(&[]);
        self.insert_released(request)
            .map_err(|available| ExecuteError::TxFull {
                required: request.len(),
                available,
            })?;
        // An earlier sync still waiting is superseded: resolve it as timed out so its id
        // is not left hanging.
        if let Some(previous) = self.sync.take() {
            if let Some(p) = self.pending.iter_mut().find(|p| p.id == previous.id) {
                p.resolution = Some(Resolution::TimedOut);
            }
            self.abandoned_sync = Some(previous.value);
        }
        let tx_end = self.tx_origin + self.tx_release as u64;
        let id = self.allocate(now, false, true, false, tx_end);
        if let Some(entry) = self.pending.last_mut() {
            entry.automatic = automatic;
        }
        self.sync = Some(Sync {
            id,
            value,
            automatic,
            sentinel: None,
        });
        Ok(CommandId(id))
    }

    /// [`Client::sync`] with the next value of a sequence seeded by
    /// [`Config::with_sync_seed`]: each below 2^53 (exact in every JSON implementation)
    /// and, for a random seed, unpredictable from one connection to the next.
    pub fn sync_seeded(&mut self, now: Instant) -> Result<CommandId, ExecuteError> {
        self.seeded_syncs = self.seeded_syncs.wrapping_add(1);
        let value = seeded_value(self.config.sync_seed, self.seeded_syncs);
        self.sync(now, value)
    }

    /// Whether the table has room for one more command (a sync needs only a free entry;
    /// other commands also respect [`Config::max_in_flight`] and [`OOB_IN_BAND_LIMIT`]).
    fn reserve_slot(&self, oob: bool, sync: bool) -> Result<(), ExecuteError> {
        let in_flight = self.pending.len();
        if in_flight >= N {
            return Err(ExecuteError::TooManyInFlight { limit: N });
        }
        if sync {
            return Ok(());
        }
        let limit = self.config.max_in_flight;
        let is_sync = |p: &Pending| p.automatic || self.sync.is_some_and(|s| s.id == p.id);
        if self.pending.iter().filter(|p| !is_sync(p)).count() >= limit {
            return Err(ExecuteError::TooManyInFlight { limit });
        }
        if self.oob_possible() && !oob {
            let in_band = self.pending.iter().filter(|p| !p.oob).count()
                + usize::from(self.given_up_in_band.len);
            if in_band >= OOB_IN_BAND_LIMIT {
                return Err(ExecuteError::TooManyInFlight {
                    limit: OOB_IN_BAND_LIMIT,
                });
            }
        }
        Ok(())
    }

    fn allocate(
        &mut self,
        now: Instant,
        oob: bool,
        replies_on_success: bool,
        is_quit: bool,
        tx_end: u64,
    ) -> u64 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        let entry = Pending {
            id,
            deadline: self.config.command_timeout.map(|t| now + t),
            oob,
            replies_on_success,
            is_quit,
            automatic: false,
            resolution: None,
            tx_end,
            sent_at: NOT_SENT,
        };
        // `reserve_slot` checked the capacity.
        let _ = self.pending.push(entry);
        id
    }

    fn submit<A: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        kind: RequestKind,
        name: &str,
        arguments: Option<&A>,
        replies_on_success: bool,
    ) -> Result<CommandId, ExecuteError> {
        self.submit_with(now, kind, name, replies_on_success, |out, id| {
            encode::encode_request(out, kind, name, arguments, Some(id))
        })
    }

    /// Queues one request that `encode` writes into the free end of the transmit buffer
    /// (given the room and the id to use).
    fn submit_with(
        &mut self,
        now: Instant,
        kind: RequestKind,
        name: &str,
        replies_on_success: bool,
        encode: impl Fn(&mut [u8], u64) -> Result<usize, EncodeError>,
    ) -> Result<CommandId, ExecuteError> {
        if self.state == State::Closed {
            return Err(ExecuteError::Closed);
        }
        let oob = kind == RequestKind::ExecOob;
        if oob && !(self.state == State::Ready && self.oob_enabled) {
            return Err(ExecuteError::OobNotEnabled);
        }
        self.reserve_slot(oob, false)?;
        let id = self.next_id;
        // Keep room for `qmp_capabilities` in front of commands held before negotiation.
        let reserve = if self.state == State::AwaitingGreeting {
            NEGOTIATION_RESERVE
        } else {
            0
        };
        let attempt = |tx: &mut [u8], start: usize| {
            let end = tx.len().saturating_sub(reserve);
            encode(tx.get_mut(start..end).unwrap_or(&mut []), id)
        };
        let mut result = attempt(self.tx.as_mut(), self.tx_len);
        if matches!(result, Err(EncodeError::BufferTooSmall { .. })) && self.tx_sent > 0 {
            self.compact_tx();
            result = attempt(self.tx.as_mut(), self.tx_len);
        }
        let written = match result {
            Ok(n) => n,
            Err(EncodeError::BufferTooSmall { required, .. }) => {
                let available = self.tx.as_ref().len().saturating_sub(self.tx_len + reserve);
                return Err(ExecuteError::TxFull {
                    required,
                    available,
                });
            }
            Err(other) => return Err(ExecuteError::Encode(other)),
        };
        let holding = self.state != State::Ready || self.sync.is_some();
        self.tx_len += written;
        if !holding {
            self.tx_release = self.tx_len;
        }
        let is_quit = name == "quit";
        let tx_end = self.tx_origin + self.tx_len as u64;
        self.allocate(now, oob, replies_on_success, is_quit, tx_end);
        Ok(CommandId(id))
    }

    fn compact_tx(&mut self) {
        self.tx_origin += self.tx_sent as u64;
        crate::json::move_to_front(self.tx.as_mut(), self.tx_sent, self.tx_len);
        self.tx_release -= self.tx_sent;
        self.tx_len -= self.tx_sent;
        self.tx_sent = 0;
    }
}

/// Writes `{"execute":NAME,"arguments":ARGUMENTS,"id":ID}\n` with `arguments` already JSON
/// text (validated by the caller), in the same layout as [`encode::encode_request`].
fn encode_json_request(
    out: &mut [u8],
    kind: RequestKind,
    name: &str,
    arguments: Option<&[u8]>,
    id: u64,
) -> Result<usize, EncodeError> {
    // Encode the envelope without arguments, then splice the arguments in before `,"id"`.
    let envelope_len = encode::encode_request::<()>(out, kind, name, None, Some(id));
    let insertion = match arguments {
        None => return envelope_len,
        Some(arguments) => arguments,
    };
    let extra = b",\"arguments\":".len() + insertion.len();
    let envelope_len = match envelope_len {
        Ok(n) => n,
        Err(EncodeError::BufferTooSmall {
            required,
            available,
        }) => {
            return Err(EncodeError::BufferTooSmall {
                required: required + extra,
                available,
            })
        }
        Err(other) => return Err(other),
    };
    let total = envelope_len + extra;
    let Some(region) = out.get_mut(..total) else {
        return Err(EncodeError::BufferTooSmall {
            required: total,
            available: out.len(),
        });
    };
    // The id member starts at the last `,"id":` of the envelope.
    let id_member = region
        .get(..envelope_len)
        .and_then(|envelope| envelope.windows(6).rposition(|w| w == b",\"id\":"))
        .unwrap_or(envelope_len.saturating_sub(2));
    crate::json::move_back(region, id_member, envelope_len, extra);
    let mut at = id_member;
    for part in [&b",\"arguments\":"[..], insertion] {
        if let Some(slot) = region.get_mut(at..at + part.len()) {
            slot.copy_from_slice(part);
        }
        at += part.len();
    }
    Ok(total)
}

/// How deeply raw JSON arguments may nest (QMP arguments are shallow; the limit bounds
/// the validation's recursion on small stacks).
pub const RAW_ARGUMENTS_MAX_DEPTH: usize = 32;

/// Whether QEMU's JSON parser accepts `value`: no duplicate keys in any object (QEMU
/// answers "duplicate key" without an id), no non-characters U+FDD0..U+FDEF or U+xxFFFE /
/// U+xxFFFF in any string, raw or escaped, and no surrogate escape that is not half of a
/// pair (QMP.md §8.2).
fn acceptable_to_qemu(value: RawJson<'_>, depth: usize) -> bool {
    if depth >= RAW_ARGUMENTS_MAX_DEPTH {
        return false;
    }
    let text_ok = |text: crate::json::JsonStr<'_>| {
        !has_lone_surrogate_escape(text.raw_bytes())
            && text.chars().all(|c| {
                let c = u32::from(c);
                !((0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE)
            })
    };
    if value.is_object() {
        let earlier = value.members();
        for (index, (key, member)) in value.members().enumerate() {
            if !text_ok(key) || !acceptable_to_qemu(member, depth + 1) {
                return false;
            }
            // Compare the key with every earlier key of this object (objects are small).
            let duplicate = earlier
                .clone()
                .take(index)
                .any(|(other, _)| other.chars().eq(key.chars()));
            if duplicate {
                return false;
            }
        }
        true
    } else if value.is_array() {
        value
            .elements()
            .all(|element| acceptable_to_qemu(element, depth + 1))
    } else {
        value.as_json_str().is_none_or(text_ok)
    }
}

/// Whether escaped string text holds a `\uD800`..`\uDFFF` escape that is not a high
/// surrogate directly followed by a low one (QEMU rejects it; `JsonStr::chars` would
/// quietly decode it as U+FFFD).
fn has_lone_surrogate_escape(escaped: &[u8]) -> bool {
    let unit = |at: usize| -> Option<u32> {
        match escaped.get(at..at.checked_add(6)?)? {
            [b'\\', b'u', digits @ ..] => digits.iter().try_fold(0u32, |value, &digit| {
                Some(value * 16 + (digit as char).to_digit(16)?)
            }),
            _ => None,
        }
    };
    let mut at = 0;
    while let Some(offset) = escaped
        .get(at..)
        .and_then(|rest| rest.iter().position(|&byte| byte == b'\\'))
    {
        at += offset;
        match unit(at) {
            Some(0xD800..=0xDBFF) => {
                if !matches!(unit(at + 6), Some(0xDC00..=0xDFFF)) {
                    return true;
                }
                at += 12;
            }
            Some(0xDC00..=0xDFFF) => return true,
            Some(_) => at += 6,
            // Any other escape is two bytes long.
            None => at += 2,
        }
    }
    false
}

/// The last `N` command ids given up on (the oldest forgotten first), to recognise their
/// late replies. A plain ring: smaller in firmware than a `heapless::Deque`.
struct RecentIds<const N: usize> {
    ids: [u64; N],
    /// How many of `ids` hold an id (at most `N`).
    len: usize,
    /// Where the next id goes.
    next: usize,
}

impl<const N: usize> RecentIds<N> {
    const fn new() -> Self {
        RecentIds {
            ids: [0; N],
            len: 0,
            next: 0,
        }
    }

    fn remember(&mut self, id: u64) {
        if let Some(slot) = self.ids.get_mut(self.next) {
            *slot = id;
            self.next += 1;
            if self.next == N {
                self.next = 0;
            }
            self.len = N.min(self.len + 1);
        }
    }

    fn contains(&self, id: u64) -> bool {
        self.ids.get(..self.len).unwrap_or(&[]).contains(&id)
    }
}

/// In-band commands given up while OOB was possible that QEMU may still hold (at most
/// [`OOB_IN_BAND_LIMIT`]: they count against it). QEMU answers in-band requests in order,
/// so they are all done once it answers the last of them (the one written last) or any
/// in-band request written after it. Earlier late replies free nothing: counting them
/// one by one would need a table; this way a slot is at worst freed late, never early.
struct GivenUpInBand {
    len: u8,
    /// The id of the one whose request ends last in the transmitted stream, and where.
    last_id: u64,
    last_end: u64,
}

impl GivenUpInBand {
    const fn new() -> Self {
        GivenUpInBand {
            len: 0,
            last_id: 0,
            last_end: 0,
        }
    }

    fn add(&mut self, id: u64, tx_end: u64) {
        if self.len == 0 || tx_end > self.last_end {
            self.last_id = id;
            self.last_end = tx_end;
        }
        self.len = self.len.saturating_add(1);
    }

    /// QEMU answered the in-band request ending at `tx_end`.
    fn answered_through(&mut self, tx_end: u64) {
        if tx_end >= self.last_end {
            self.len = 0;
        }
    }

    /// The late reply to a given-up command `id` arrived.
    fn late(&mut self, id: u64) {
        if id == self.last_id {
            self.len = 0;
        }
    }
}

/// The `n`th value of the sequence seeded by `seed` (SplitMix64), below 2^53.
fn seeded_value(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 11
}

/// Adds one to a statistics counter (the client's and the framer's): out of line in
/// firmware, where each of the many 64-bit increments inline is larger than a call.
#[cfg_attr(target_os = "none", inline(never))]
pub(crate) fn count(counter: &mut u64) {
    *counter += 1;
}

/// What [`Client::advance`] found to report.
enum Step {
    /// An event that borrows nothing.
    Owned(Event<'static>),
    /// An event built from the current frame.
    FromFrame(FrameEvent),
}

/// Which event to build from the current frame.
#[derive(Clone, Copy)]
enum FrameEvent {
    Greeting,
    Response(CommandId),
    AsyncEvent,
    UnattributedError,
    Unmatched,
    NegotiationFailed,
    Unknown,
}

/// How a reply identified its request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReplyId {
    Absent,
    Integer(u64),
    /// Present but not an integer this client could have sent.
    Foreign,
}

/// What the state machine needs to know of a message, without borrowing it.
#[derive(Clone, Copy)]
enum Summary {
    Greeting {
        version: Version,
        capabilities: Capabilities,
    },
    Return {
        id: ReplyId,
        /// The value when it is an unsigned integer (guest-agent sync replies).
        value: Option<u64>,
    },
    Error {
        id: ReplyId,
    },
    Event,
    Unknown,
    /// [`Item::Oversize`].
    Oversize {
        len: u64,
    },
    /// [`Item::Malformed`].
    Malformed(JsonError),
}

impl Summary {
    fn of(message: Message<'_>) -> Summary {
        let reply_id = |id: Option<RawJson<'_>>| match id {
            None => ReplyId::Absent,
            Some(raw) => raw.as_u64().map_or(ReplyId::Foreign, ReplyId::Integer),
        };
        match message {
            Message::Greeting(greeting) => Summary::Greeting {
                version: greeting.version,
                capabilities: greeting.capabilities,
            },
            Message::Return { id, value } => Summary::Return {
                id: reply_id(id),
                value: value.as_u64(),
            },
            Message::Error { id, .. } => Summary::Error { id: reply_id(id) },
            Message::Event(_) => Summary::Event,
            Message::Unknown(_) => Summary::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogate_escapes_are_found_and_pairs_are_not() {
        for (text, lone) in [
            (&br"plain"[..], false),
            (br"\ud83d\ude00", false),
            (br"\uD83D\uDE00 and \u00e9", false),
            (br"\\ud800", false),
            (br"\ud800", true),
            (br"x\ud800y", true),
            (br"\udc00", true),
            (br"\ud800\u0041", true),
            (br"\ud800\ud800\udc00", true),
            (br"\ude00\ud83d", true),
            (br"\\\ud800", true),
            (br"\u12", false),
        ] {
            assert_eq!(
                has_lone_surrogate_escape(text),
                lone,
                "{}",
                core::str::from_utf8(text).unwrap_or("?")
            );
        }
    }

    /// `expire` (the drivers' `handle_timeout`) reports a due deadline exactly when
    /// `poll_timeout` is at or before `now`, for the greeting's and commands' deadlines.
    #[test]
    fn expire_reports_what_poll_timeout_says_is_due() {
        use crate::commands::QueryStatus;
        use crate::time::Duration;
        let at = Instant::from_millis;
        let check = |client: &mut Client<'_, 4>, now: Instant| {
            let due = client
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now);
            assert_eq!(client.expire(now), due, "at {} ms", now.as_millis());
            due
        };
        let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
        let config = Config::qmp().with_greeting_timeout(Some(Duration::from_millis(1_000)));
        let mut client: Client<'_, 4> = Client::new(config, at(0), &mut rx, &mut tx);
        assert!(!check(&mut client, at(999)));
        assert!(check(&mut client, at(1_000)));
        assert_eq!(client.state(), State::Closed);
        assert!(!check(&mut client, at(5_000)));

        let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
        let config = Config::guest_agent().with_command_timeout(Some(Duration::from_millis(1_000)));
        let mut client: Client<'_, 4> = Client::new(config, at(0), &mut rx, &mut tx);
        assert!(client.execute(at(0), &QueryStatus).is_ok());
        assert!(client.execute(at(100), &QueryStatus).is_ok());
        let mut expired = 0;
        for now in [
            0, 500, 999, 1_000, 1_000, 1_050, 1_100, 1_101, 1_999, 2_000, 2_001,
        ] {
            if check(&mut client, at(now)) {
                expired += 1;
            }
        }
        // Both commands, then the resync the first timeout started at 1,000.
        assert_eq!(expired, 3);
        assert_eq!(client.stats().resyncs, 1);
    }

    #[test]
    fn execute_json_refuses_what_qemu_would_reject_without_an_id() {
        let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
        let mut client: Client<'_, 2> =
            Client::new(Config::guest_agent(), Instant::ZERO, &mut rx, &mut tx);
        for arguments in [
            &br#"{"path": "\ud800"}"#[..],
            br#"{"\udfff": 1}"#,
            br#"{"a": ["\ud83d"]}"#,
            br#"{"a": "\ufdd0"}"#,
            br#"{"a": 1, "a": 2}"#,
            br#"[1]"#,
        ] {
            assert_eq!(
                client.execute_json(Instant::ZERO, "guest-ping", Some(arguments), false),
                Err(ExecuteError::InvalidArguments),
                "{}",
                core::str::from_utf8(arguments).unwrap_or("?")
            );
        }
        let paired = br#"{"a": "\ud83d\ude00 \\ud800"}"#;
        assert!(client
            .execute_json(Instant::ZERO, "guest-ping", Some(paired), false)
            .is_ok());
    }

    /// A refusal that waiting cures is retryable; one that it cannot is not.
    #[test]
    fn retryable_refusals_are_those_that_waiting_cures() {
        let (mut rx, mut tx) = ([0u8; 256], [0u8; 128]);
        let mut client: Client<'_, 2> =
            Client::new(Config::guest_agent(), Instant::ZERO, &mut rx, &mut tx);
        let small = br#"{"text": "0123456789012345678901234567890123456789"}"#;
        assert!(client
            .execute_json(Instant::ZERO, "a", Some(small), false)
            .is_ok());
        // The buffer holds one such request: the second fits once the first is written.
        let full = client
            .execute_json(Instant::ZERO, "b", Some(small), false)
            .unwrap_err();
        assert!(matches!(full, ExecuteError::TxFull { .. }), "{full:?}");
        assert!(client.is_retryable(&full));
        let sent = client.poll_transmit().map_or(0, <[u8]>::len);
        client.mark_transmitted(sent);
        assert!(client
            .execute_json(Instant::ZERO, "b", Some(small), false)
            .is_ok());
        // The table holds two: a third waits for a reply.
        let busy = client
            .execute_json(Instant::ZERO, "c", None, false)
            .unwrap_err();
        assert_eq!(busy, ExecuteError::TooManyInFlight { limit: 2 });
        assert!(client.is_retryable(&busy));
        // Larger than the whole buffer: never.
        let mut big = [b'a'; 200];
        big[..6].copy_from_slice(br#"{"x":""#);
        big[198..].copy_from_slice(br#""}"#);
        let (mut rx, mut tx) = ([0u8; 256], [0u8; 128]);
        let mut fresh: Client<'_, 2> =
            Client::new(Config::guest_agent(), Instant::ZERO, &mut rx, &mut tx);
        let never = fresh
            .execute_json(Instant::ZERO, "a", Some(&big), false)
            .unwrap_err();
        assert!(matches!(never, ExecuteError::TxFull { .. }), "{never:?}");
        assert!(!fresh.is_retryable(&never));
        assert!(!client.is_retryable(&ExecuteError::OobNotEnabled));
        assert!(!client.is_retryable(&ExecuteError::Closed));
    }
}
