//! The fuzz targets `client_session` (QMP) and `guest_agent` (QGA): the whole sans-IO
//! `Client` driven by a fuzzer-chosen [`Script`] of operations, run twice (server bytes in
//! fuzzer-chosen fragments through one input path, and whole through the other) with
//! every invariant checked after every operation.
//!
//! Input: a [`Script`] in the byte format of [`crate::script`]: buffer sizes, timeouts, OOB, whether to write the
//! transmit buffer out after every operation, how to fragment the server bytes, then a
//! list of [`Op`]s: feed server bytes (built from realistic [`Piece`]s whose ids refer to
//! commands this client issued, or random bytes and dictionary tokens), execute (typed,
//! raw with arbitrary serde arguments, raw JSON text, OOB), sync, advance the clock,
//! handle timeouts, write part of the transmit buffer, cancel, change a deadline, end of
//! stream, close.
//!
//! Invariants:
//! - every id returned by `execute*`/`sync` is resolved exactly once (`Response` or
//!   `CommandFailed`) unless cancelled, then never; no event names an id never issued; ids
//!   are consecutive (a refused command uses none); when the session ends every command
//!   has been resolved, and `Closed` comes once, last;
//! - `in_flight()` equals the commands issued and not yet resolved, and never exceeds N;
//! - `poll_timeout()` is the earliest deadline of the commands in flight (and of the
//!   greeting while awaited); after `handle_timeout(now)` it is never at or before `now`;
//!   `TimedOut` only after the deadline; `ReplyTooLarge` only for replies longer than the
//!   receive buffer;
//! - a command is resolved by server bytes (a reply, `MalformedReply`, `ReplyTooLarge`,
//!   a sync's delimited answer) only if a message naming it (or, for a sync, its
//!   sentinel and answer) began to arrive after its request was completely transmitted:
//!   a reference framer (the same `Framer`, fed the same bytes) lists every message with
//!   its start offset and the ids it names, and the harness tracks when each request's
//!   last byte was written; a silent command or `quit` succeeds only once transmitted; a
//!   reply naming a transmitted command in flight is reported unmatched only if it began
//!   to arrive before that command was transmitted;
//! - refusals are the documented ones (arguments that are not an object, non-characters,
//!   NaN, invalid raw JSON, a closed session, a full table, OOB not negotiated);
//! - the transmitted bytes are a sequence of request lines, each valid JSON carrying
//!   exactly the name, arguments and id of one issued command (each id once), a `0xFF`
//!   before every `guest-sync-delimited` and nowhere else, and nothing but
//!   `qmp_capabilities` sent before the session is ready;
//! - the events and the transmitted bytes do not depend on how the server bytes were
//!   split or on the input path.

use std::collections::BTreeMap;

use qmp_core::client::{
    Client, CloseReason, CommandFailure, CommandId, Config, ExecuteError, Output, State,
};
use qmp_core::commands::{Command, MigratePause, QueryStatus, QueryVersion, QueryYank, Quit, Stop};
use qmp_core::encode::{self, EncodeError, RequestKind};
use qmp_core::json::{Framer, Item};
use qmp_core::qga::{GuestPing, GuestShutdown, GuestShutdownMode, GuestSuspendRam};
use qmp_core::time::{Duration, Instant};

use crate::encode::{compare, expect, Expected, Tree, MAX_TREE_DEPTH};
use crate::framer::Fragments;
use crate::reference::{self, Shape};

/// The in-flight table capacity used by the targets.
pub const N: usize = 8;

/// A whole fuzzed session.
#[derive(Debug, Clone)]
pub struct Script {
    /// Receive buffer size selector.
    pub rx: u16,
    /// Transmit buffer size selector.
    pub tx: u16,
    /// Ask for OOB.
    pub oob: bool,
    /// Command timeout in ms (`None`: no deadline).
    pub command_timeout: Option<u16>,
    /// Greeting timeout in ms.
    pub greeting_timeout: Option<u16>,
    /// Write the whole transmit buffer after every operation.
    pub auto_transmit: bool,
    /// Seed of the fragment sizes.
    pub seed: u16,
    /// Largest fragment selector.
    pub max_fragment: u8,
    /// Use the zero-copy input path for the fragmented run.
    pub zero_copy: bool,
    /// The operations.
    pub ops: Vec<Op>,
}

/// One operation.
#[derive(Debug, Clone)]
pub enum Op {
    /// Server bytes.
    Feed(Vec<Piece>),
    /// A command.
    Execute(Cmd),
    /// Guest-agent sync with this value.
    Sync(u64),
    /// Move the clock forward (ms).
    Advance(u16),
    /// `handle_timeout(now)`.
    Timeout,
    /// Jump to `poll_timeout()` and handle it.
    WaitDeadline,
    /// Write up to this many bytes of the transmit buffer.
    Transmit(u16),
    /// Give up on a command (index into the ids issued, from the most recent).
    Cancel(u8),
    /// Change a command's deadline (ms from now, `None`: none).
    SetDeadline(u8, Option<u16>),
    /// End of stream.
    Eof,
    /// Close locally.
    Close,
}

/// A command to execute.
#[derive(Debug, Clone)]
pub enum Cmd {
    /// `query-status`.
    QueryStatus,
    /// `query-version`.
    QueryVersion,
    /// `stop`.
    Stop,
    /// `quit`.
    Quit,
    /// `query-yank` out of band (allowed).
    QueryYankOob,
    /// `migrate-pause` out of band (allowed).
    MigratePauseOob,
    /// `query-status` out of band (not allowed).
    QueryStatusOob,
    /// `guest-ping`.
    GuestPing,
    /// `guest-shutdown` (silent on success).
    GuestShutdown(Option<bool>),
    /// `guest-suspend-ram` (silent on success).
    GuestSuspendRam,
    /// `execute_value` / `execute_value_oob` with serde arguments.
    Raw {
        /// The name.
        name: Name,
        /// The arguments.
        arguments: Option<Tree>,
        /// OOB.
        oob: bool,
    },
    /// `execute_json` / `execute_json_oob` with arguments as text.
    Json {
        /// The name.
        name: Name,
        /// The arguments.
        arguments: Option<JsonArguments>,
        /// OOB.
        oob: bool,
    },
}

/// A command name.
#[derive(Debug, Clone)]
pub enum Name {
    /// One of [`NAMES`].
    Known(u8),
    /// Anything.
    Any(String),
}

/// Realistic command names.
pub const NAMES: [&str; 8] = [
    "query-status",
    "quit",
    "stop",
    "guest-ping",
    "query-version",
    "qmp_capabilities",
    "guest-sync-delimited",
    "x-\"odd\"\n",
];

impl Name {
    fn get(&self) -> &str {
        match self {
            Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()],
            Name::Any(s) => s,
        }
    }
}

/// Raw JSON arguments.
#[derive(Debug, Clone)]
pub enum JsonArguments {
    /// Arbitrary bytes (mostly invalid).
    Bytes(Vec<u8>),
    /// A value serialized by serde_json (NaN becomes `null`), with optional padding.
    Tree(Tree, bool),
    /// An object with a duplicate key.
    Duplicate,
}

/// A piece of server output.
#[derive(Debug, Clone)]
pub enum Piece {
    /// The QMP greeting.
    Greeting {
        /// Offer OOB.
        oob: bool,
    },
    /// A success reply.
    Return {
        /// The id.
        id: IdRef,
        /// The value.
        value: Value,
        /// Print it the way `pretty=on` monitors do.
        pretty: bool,
    },
    /// An error reply.
    Error {
        /// The id.
        id: IdRef,
        /// The class (index into the known ones, or an unknown one).
        class: u8,
        /// Put the id first, as QEMU does for errors.
        id_first: bool,
    },
    /// An event.
    Event {
        /// The name (index).
        name: u8,
        /// With data.
        data: bool,
    },
    /// The agent's answer to the last sync: `0xFF` then `{"return": VALUE}`.
    SyncAnswer {
        /// Answer with the current sync value (else a stale one).
        current: bool,
        /// The stale value.
        stale: u64,
    },
    /// A reply larger than most receive buffers.
    Big {
        /// Length of its string.
        len: u16,
        /// The id.
        id: IdRef,
    },
    /// A lone `0xFF`.
    Sentinel,
    /// A dictionary token.
    Token(u8),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

/// How a server message names its id.
#[derive(Debug, Clone)]
pub enum IdRef {
    /// No id.
    Absent,
    /// An id issued by the client (index from the most recent).
    Issued(u8),
    /// An id in flight (index), or absent if none.
    InFlight(u8),
    /// Any integer.
    Literal(u64),
    /// A string id (never ours).
    Text(String),
    /// A negative or fractional id.
    Odd(bool),
}

/// A reply value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `{}`.
    Empty,
    /// An integer.
    Int(u64),
    /// A status object.
    Status,
    /// A string.
    Text(String),
    /// An array.
    List(u8),
}

/// Tokens the `Token` piece picks from (also in fuzz/dictionary.txt).
pub const TOKENS: [&[u8]; 20] = [
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\r\n",
    b"\n",
    b"\"return\": ",
    b"\"error\": ",
    b"\"event\": ",
    b"\"id\": ",
    b"\"QMP\": ",
    b"\"data\": {}",
    b"\\u",
    b"1e400",
    b"-0",
    b"inf",
    b"\xff",
];

const EVENTS: [&str; 6] = [
    "STOP",
    "RESUME",
    "SHUTDOWN",
    "JOB_STATUS_CHANGE",
    "BLOCK_JOB_READY",
    "weird \\\"name\\\"",
];

const CLASSES: [&str; 7] = [
    "GenericError",
    "CommandNotFound",
    "DeviceNotActive",
    "DeviceNotFound",
    "KVMMissingCap",
    "SomethingNew",
    "Generic\\u0045rror",
];

/// Longest string in a `Big` piece: past every receive buffer the scripts choose (at most
/// 5,119 bytes), short enough to keep runs fast.
const BIG_MAX: usize = 6144;

/// Server bytes one `Feed` operation sends at most (the rest is dropped, the same way in
/// both runs): bounds the work per input.
const FEED_MAX: usize = 64 * 1024;

/// Which protocol a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// QMP.
    Qmp,
    /// The guest agent.
    GuestAgent,
}

/// What one issued command must look like on the wire, and what is known about it.
#[derive(Debug, Clone)]
struct Issued {
    /// `execute` or `exec-oob`; `None` for a sync.
    member: &'static str,
    name: String,
    arguments: ExpectedArguments,
    sync_value: Option<u64>,
    /// A resync the client started by itself after a timeout: reported only by
    /// [`Output::Resynchronised`], ended silently by its deadline, a newer sync or the end.
    automatic: bool,
    deadline: Option<Instant>,
    resolved: bool,
    cancelled: bool,
    transmitted: bool,
    /// Server bytes taken by the client when the request's last byte was written.
    transmitted_at: Option<u64>,
    /// Succeeds without a reply (`guest-shutdown`, `guest-suspend-*`) or is `quit`.
    silent: bool,
}

/// One message as the reference framer saw it.
#[derive(Debug)]
struct Seen {
    /// Stream offset of its first byte.
    start: u64,
    /// The integer ids it names (every top-level `id` member, or the id a malformed or
    /// oversize message named).
    ids: Vec<u64>,
    /// For an id-less integer `return` right after a sentinel: its value and the
    /// sentinel's offset.
    sync_answer: Option<(u64, u64)>,
    /// Already taken as the source of an event.
    used: bool,
}

#[derive(Debug, Clone)]
enum ExpectedArguments {
    None,
    Value(serde_json::Value),
    Tree(Expected),
    Text(String),
}

/// What a run produced, for comparing runs.
#[derive(Debug, PartialEq, Eq)]
pub struct Transcript {
    /// Every event and call result, in order.
    pub log: Vec<String>,
    /// Every transmitted byte.
    pub tx: Vec<u8>,
}

struct Harness<'s, 'b> {
    client: Client<'b, N>,
    mode: Mode,
    script: &'s Script,
    rx_capacity: usize,
    now: Instant,
    start: Instant,
    issued: BTreeMap<u64, Issued>,
    last_id: u64,
    current_sync: Option<u64>,
    closed_reported: bool,
    greetings: usize,
    log: Vec<String>,
    tx: Vec<u8>,
    /// For each transmit call: the offset in `tx` where its bytes start, and whether the
    /// session was ready then.
    tx_ready: Vec<(usize, bool)>,
    fragments: Option<Fragments>,
    zero_copy: bool,
    /// The first id the client hands out.
    first_id: u64,
    /// Ids in the order they were issued (ids wrap, so the map's order may differ).
    issue_order: Vec<u64>,
    /// Server bytes the client took so far.
    fed: u64,
    /// The reference framer and what it found.
    oracle: Framer<'b>,
    seen: Vec<Seen>,
    /// The offset of a sentinel that was the reference framer's last item.
    oracle_sentinel: Option<u64>,
    /// Where the next unparsed request starts in `tx`, and how many sync requests were
    /// found before it.
    tx_parsed: usize,
    syncs_found: usize,
    /// A guest-agent command timed out and no sync has been under way since: the client
    /// is to resynchronise by itself once it has room.
    resync_due: bool,
    /// Resyncs the client started by itself so far.
    resyncs: u64,
}

fn rx_size(selector: u16) -> usize {
    match selector % 4 {
        0 => 64 + usize::from(selector % 64),
        1 => 200 + usize::from(selector % 300),
        _ => 1024 + usize::from(selector % 4096),
    }
}

fn tx_size(selector: u16) -> usize {
    match selector % 3 {
        0 => 64 + usize::from(selector % 128),
        _ => 256 + usize::from(selector % 4096),
    }
}

impl<'s, 'b> Harness<'s, 'b> {
    fn record(&mut self, entry: String) {
        self.log.push(entry);
    }

    fn in_flight_ids(&self) -> Vec<u64> {
        self.issued
            .iter()
            .filter(|(_, c)| !c.resolved && !c.cancelled)
            .map(|(&id, _)| id)
            .collect()
    }

    fn id_text(&self, id: &IdRef) -> Option<String> {
        match id {
            IdRef::Absent => None,
            IdRef::Issued(k) => {
                let ids = &self.issue_order;
                if ids.is_empty() {
                    Some("1".into())
                } else {
                    Some(ids[ids.len() - 1 - usize::from(*k) % ids.len()].to_string())
                }
            }
            IdRef::InFlight(k) => {
                let ids = self.in_flight_ids();
                if ids.is_empty() {
                    None
                } else {
                    Some(ids[usize::from(*k) % ids.len()].to_string())
                }
            }
            IdRef::Literal(n) => Some(n.to_string()),
            IdRef::Text(s) => Some(serde_json::to_string(s).unwrap_or_default()),
            IdRef::Odd(negative) => Some(if *negative { "-1".into() } else { "1.5".into() }),
        }
    }

    fn piece_bytes(&self, piece: &Piece, out: &mut Vec<u8>) {
        let eol: &[u8] = match self.mode {
            Mode::Qmp => b"\r\n",
            Mode::GuestAgent => b"\n",
        };
        match piece {
            Piece::Greeting { oob } => {
                out.extend_from_slice(
                    b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}, \"capabilities\": [",
                );
                if *oob {
                    out.extend_from_slice(b"\"oob\"");
                }
                out.extend_from_slice(b"]}}");
                out.extend_from_slice(eol);
            }
            Piece::Return { id, value, pretty } => {
                let value = match value {
                    Value::Empty => "{}".to_owned(),
                    Value::Int(n) => n.to_string(),
                    Value::Status => {
                        "{\"status\": \"running\", \"singlestep\": false, \"running\": true}"
                            .to_owned()
                    }
                    Value::Text(s) => serde_json::to_string(s).unwrap_or_default(),
                    Value::List(n) => format!("[{}]", vec!["{}"; usize::from(*n % 8)].join(", ")),
                };
                let id = self.id_text(id);
                if *pretty {
                    let mut text = format!("{{\r\n    \"return\": {value}");
                    if let Some(id) = id {
                        text.push_str(&format!(",\r\n    \"id\": {id}"));
                    }
                    text.push_str("\r\n}\r\n");
                    out.extend_from_slice(text.as_bytes());
                } else {
                    let text = match id {
                        Some(id) => format!("{{\"return\": {value}, \"id\": {id}}}"),
                        None => format!("{{\"return\": {value}}}"),
                    };
                    out.extend_from_slice(text.as_bytes());
                    out.extend_from_slice(eol);
                }
            }
            Piece::Error {
                id,
                class,
                id_first,
            } => {
                let class = CLASSES[usize::from(*class) % CLASSES.len()];
                let error = format!(
                    "\"error\": {{\"class\": \"{class}\", \"desc\": \"it \\\"failed\\\"\"}}"
                );
                let text = match (self.id_text(id), id_first) {
                    (Some(id), true) => format!("{{\"id\": {id}, {error}}}"),
                    (Some(id), false) => format!("{{{error}, \"id\": {id}}}"),
                    (None, _) => format!("{{{error}}}"),
                };
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(eol);
            }
            Piece::Event { name, data } => {
                let name = EVENTS[usize::from(*name) % EVENTS.len()];
                let data = if *data {
                    ", \"data\": {\"id\": \"job0\", \"status\": \"running\"}"
                } else {
                    ""
                };
                let text = format!(
                    "{{\"timestamp\": {{\"seconds\": 1795000000, \"microseconds\": 12345}}, \"event\": \"{name}\"{data}}}"
                );
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(eol);
            }
            Piece::SyncAnswer { current, stale } => {
                let value = match (current, self.current_sync) {
                    (true, Some(value)) => value,
                    _ => *stale,
                };
                out.push(0xFF);
                out.extend_from_slice(format!("{{\"return\": {value}}}").as_bytes());
                out.extend_from_slice(eol);
            }
            Piece::Big { len, id } => {
                let text = match self.id_text(id) {
                    Some(id) => format!(
                        "{{\"return\": \"{}\", \"id\": {id}}}",
                        "x".repeat(usize::from(*len) % BIG_MAX)
                    ),
                    None => format!(
                        "{{\"return\": \"{}\"}}",
                        "x".repeat(usize::from(*len) % BIG_MAX)
                    ),
                };
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(eol);
            }
            Piece::Sentinel => out.push(0xFF),
            Piece::Token(t) => out.extend_from_slice(TOKENS[usize::from(*t) % TOKENS.len()]),
            Piece::Bytes(bytes) => out.extend_from_slice(bytes),
        }
    }

    fn expected_in_flight(&self) -> usize {
        self.issued
            .values()
            .filter(|c| !c.resolved && !c.cancelled && !c.automatic)
            .count()
    }

    /// Ends the client's own resync without an event (a newer sync, its deadline, the
    /// end of the session).
    fn end_automatic_syncs(&mut self, ended: impl Fn(&Issued) -> bool) {
        for command in self.issued.values_mut() {
            if command.automatic && !command.resolved && !command.cancelled && ended(command) {
                command.resolved = true;
            }
        }
    }

    /// Drains every event, checking each; then the table and deadline invariants.
    fn drain(&mut self) {
        let mut entries = Vec::new();
        let mut resolutions = Vec::new();
        let mut closed = false;
        let mut guard = 0usize;
        while let Some(event) = self.client.poll_output() {
            guard += 1;
            assert!(guard < 1_000_000, "poll_output never returns None");
            assert!(
                !self.closed_reported && !closed,
                "event after Closed: {event:?}"
            );
            entries.push(format!("{event:?}"));
            match event {
                Output::Response(response) => resolutions.push((response.id, None)),
                Output::CommandFailed { id, reason } => resolutions.push((id, Some(reason))),
                Output::Closed(_) => closed = true,
                Output::Greeting(_) => {
                    assert_eq!(self.mode, Mode::Qmp);
                    self.greetings += 1;
                    assert_eq!(self.greetings, 1, "two greetings reported");
                }
                Output::Ready => assert_eq!(self.mode, Mode::Qmp),
                Output::Resynchronised => {
                    let open: Vec<u64> = self
                        .issued
                        .iter()
                        .filter(|(_, c)| c.automatic && !c.resolved && !c.cancelled)
                        .map(|(&id, _)| id)
                        .collect();
                    assert_eq!(open.len(), 1, "Resynchronised without one resync: {open:?}");
                    resolutions.push((CommandId::new(open[0]), None));
                }
                Output::UnmatchedResponse { id: Some(raw), .. } => {
                    if let Some(id) = raw.as_u64() {
                        // One of ours still in flight and transmitted (resolutions
                        // reported earlier in this drain are applied below, so look at
                        // both): only a reply that began to arrive before it was sent.
                        let pending_resolution = resolutions.iter().any(|(r, _)| r.get() == id);
                        let sent_at = self
                            .issued
                            .get(&id)
                            .filter(|c| !c.resolved && !c.cancelled && !pending_resolution)
                            .and_then(|c| c.transmitted_at);
                        if let Some(sent_at) = sent_at {
                            let stale = take_seen(&mut self.seen, |m| {
                                m.ids.contains(&id) && m.start < sent_at
                            });
                            assert!(
                                stale,
                                "reply to in-flight command {id} (sent at byte {sent_at}) \
                                 reported as unmatched, and no message naming it began \
                                 before that"
                            );
                        }
                    }
                }
                Output::Oversize { len } => {
                    assert!(len >= self.rx_capacity as u64, "oversize of {len} bytes")
                }
                _ => {}
            }
        }
        for (id, reason) in resolutions {
            self.resolve(id, reason);
        }
        if closed {
            self.end_automatic_syncs(|_| true);
            self.closed_reported = true;
            assert_eq!(self.client.state(), State::Closed);
            let open: Vec<_> = self.in_flight_ids();
            assert!(open.is_empty(), "Closed with commands unresolved: {open:?}");
        }
        self.log.extend(entries);
        self.check_table();
    }

    fn resolve(&mut self, id: CommandId, reason: Option<CommandFailure>) {
        let now = self.now;
        let rx = self.rx_capacity as u64;
        let state = self.client.state();
        let command = self
            .issued
            .get_mut(&id.get())
            .unwrap_or_else(|| panic!("event for id {id} never issued"));
        assert!(!command.cancelled, "event for cancelled command {id}");
        assert!(!command.resolved, "command {id} resolved twice");
        command.resolved = true;
        // Resolved by server bytes: they must have begun to arrive after the request was
        // transmitted.
        let by_bytes = matches!(
            reason,
            None | Some(
                CommandFailure::ReplyTooLarge { .. } | CommandFailure::MalformedReply { .. }
            )
        );
        if by_bytes {
            let sent_at = command.transmitted_at;
            if command.silent {
                // Success without a reply, or an error reply: either way it was sent.
                assert!(
                    sent_at.is_some(),
                    "silent command {id} resolved but never sent"
                );
            } else {
                let sent_at = sent_at.unwrap_or_else(|| {
                    panic!("command {id} resolved by a reply ({reason:?}) but never transmitted")
                });
                let found = match (command.sync_value, reason) {
                    (Some(value), None) => take_seen(&mut self.seen, |m| {
                        m.sync_answer
                            .is_some_and(|(v, sentinel)| v == value && sentinel >= sent_at)
                    }),
                    _ => {
                        let id = id.get();
                        take_seen(&mut self.seen, |m| {
                            m.ids.contains(&id) && m.start >= sent_at
                        })
                    }
                };
                assert!(
                    found,
                    "command {id} resolved ({reason:?}) by no message that began after its \
                     request was transmitted (at byte {sent_at})"
                );
            }
        }
        match reason {
            None => {}
            // A superseded sync is resolved as timed out before any deadline.
            Some(CommandFailure::TimedOut) if command.sync_value.is_some() => {}
            Some(CommandFailure::TimedOut) => {
                let deadline = command.deadline.expect("timed out without a deadline");
                assert!(deadline <= now, "timed out before its deadline");
            }
            Some(CommandFailure::ReplyTooLarge { len }) => assert!(len >= rx),
            Some(CommandFailure::ConnectionClosed) => assert_eq!(state, State::Closed),
            Some(CommandFailure::MalformedReply { offset, .. }) => {
                assert!(
                    offset < self.fed,
                    "malformed reply at {offset} beyond the input"
                )
            }
            Some(other) => panic!("unknown failure {other:?}"),
        }
    }

    fn check_table(&mut self) {
        let in_flight = self.client.in_flight();
        assert!(in_flight <= N);
        assert_eq!(in_flight, self.expected_in_flight(), "in_flight()");
        let greeting = match self.client.state() {
            State::AwaitingGreeting => self
                .script
                .greeting_timeout
                .map(|ms| self.start + Duration::from_millis(u64::from(ms))),
            _ => None,
        };
        let expected = self
            .issued
            .values()
            .filter(|c| !c.resolved && !c.cancelled)
            .filter_map(|c| c.deadline)
            .chain(greeting)
            .min();
        if self.client.state() != State::Closed {
            assert_eq!(self.client.poll_timeout(), expected, "poll_timeout()");
        }
    }

    fn transmit(&mut self, limit: usize) {
        let ready = self.client.state() == State::Ready;
        let Some(bytes) = self.client.poll_transmit() else {
            return;
        };
        let n = bytes.len().min(limit);
        self.tx_ready.push((self.tx.len(), ready));
        self.tx.extend_from_slice(&bytes[..n]);
        self.client.mark_transmitted(n);
        self.note_transmitted();
    }

    /// Finds the requests written completely (their LF included) since the last call and
    /// notes how many server bytes had arrived by then.
    fn note_transmitted(&mut self) {
        loop {
            let mut at = self.tx_parsed;
            let sync_marker = self.tx.get(at) == Some(&0xFF);
            if sync_marker {
                at += 1;
            }
            let mut stream = serde_json::Deserializer::from_slice(&self.tx[at..])
                .into_iter::<serde::de::IgnoredAny>();
            let Some(Ok(_)) = stream.next() else {
                return;
            };
            let end = at + stream.byte_offset();
            if self.tx.get(end) != Some(&b'\n') {
                return;
            }
            self.tx_parsed = end + 1;
            let request: serde_json::Value =
                serde_json::from_slice(&self.tx[at..end]).expect("a request");
            let id = if sync_marker {
                let issued = &self.issued;
                let sync = self
                    .issue_order
                    .iter()
                    .copied()
                    .filter(|id| issued.get(id).is_some_and(|c| c.sync_value.is_some()))
                    .nth(self.syncs_found);
                self.syncs_found += 1;
                sync
            } else {
                request.get("id").and_then(serde_json::Value::as_u64)
            };
            if let Some(command) = id.and_then(|id| self.issued.get_mut(&id)) {
                command.transmitted_at.get_or_insert(self.fed);
            }
        }
    }

    /// Feeds what the client took to the reference framer and lists its messages.
    fn observe(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        loop {
            let taken = self.oracle.push(rest);
            rest = &rest[taken..];
            while let Some(item) = self.oracle.next_item() {
                let (ids, sync_answer) = match item {
                    Item::Frame(frame) => {
                        let ids = frame
                            .members()
                            .filter(|(key, _)| *key == "id")
                            .filter_map(|(_, value)| value.as_u64())
                            .collect::<Vec<_>>();
                        let answer = match (self.oracle_sentinel, frame.value().get("return")) {
                            (Some(sentinel), Some(value)) if ids.is_empty() => {
                                value.as_u64().map(|v| (v, sentinel))
                            }
                            _ => None,
                        };
                        (ids, answer)
                    }
                    Item::Sentinel => {
                        self.oracle_sentinel = Some(self.oracle.item_start());
                        continue;
                    }
                    _ => (self.oracle.item_id().into_iter().collect(), None),
                };
                self.oracle_sentinel = None;
                self.seen.push(Seen {
                    start: self.oracle.item_start(),
                    ids,
                    sync_answer,
                    used: false,
                });
            }
            if rest.is_empty() {
                return;
            }
            assert!(taken > 0, "the reference framer takes nothing");
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let mut offset = 0;
        let mut stuck = 0;
        while offset < bytes.len() {
            let want = match self.fragments.as_mut() {
                Some(f) => f.next_size(),
                None => bytes.len(),
            };
            let end = (offset + want).min(bytes.len());
            while offset < end {
                let taken = if self.zero_copy {
                    let window = self.client.rx_window();
                    let n = window.len().min(end - offset);
                    window[..n].copy_from_slice(&bytes[offset..offset + n]);
                    match self.client.commit_rx(n) {
                        Ok(()) => n,
                        // Closed: the rest is refused (how much of it was offered depends
                        // on the split, so it is not logged).
                        Err(_) => return,
                    }
                } else {
                    match self.client.handle_input(&bytes[offset..end]) {
                        Ok(n) => n,
                        // Closed: the rest is refused (how much of it was offered depends
                        // on the split, so it is not logged).
                        Err(_) => return,
                    }
                };
                self.fed += taken as u64;
                self.observe(&bytes[offset..offset + taken]);
                offset += taken;
                let events_before = self.log.len();
                self.drain();
                if taken == 0 && self.log.len() == events_before {
                    stuck += 1;
                    assert!(stuck < 3, "client takes no bytes and reports nothing");
                } else {
                    stuck = 0;
                }
            }
        }
    }

    /// Checks a call's result against what the documented rules allow, and records it.
    fn after_call(
        &mut self,
        what: &str,
        result: Result<CommandId, ExecuteError>,
        content: Result<Issued, ExecuteError>,
        oob: bool,
        state_before: State,
        in_flight_before: usize,
    ) {
        self.record(format!("{what}: {result:?}"));
        match result {
            Ok(id) => {
                let expected = if self.issued.is_empty() {
                    self.first_id
                } else {
                    self.last_id.wrapping_add(1)
                };
                assert_eq!(id.get(), expected, "ids not consecutive");
                self.last_id = id.get();
                let mut issued = content.unwrap_or_else(|e| {
                    panic!("{what} accepted although the documented rules refuse it: {e}")
                });
                issued.deadline = self
                    .script
                    .command_timeout
                    .map(|ms| self.now + Duration::from_millis(u64::from(ms)));
                if let Some(value) = issued.sync_value {
                    // A sync supersedes the previous one (the client's own silently).
                    self.current_sync = Some(value);
                    self.end_automatic_syncs(|_| true);
                }
                if issued.name == "quit" {
                    issued.silent = true;
                }
                self.issued.insert(id.get(), issued);
                self.issue_order.push(id.get());
            }
            Err(error) => match error {
                ExecuteError::Closed => assert_eq!(state_before, State::Closed),
                ExecuteError::OobNotEnabled => {
                    assert!(oob && !(state_before == State::Ready && self.client.oob_enabled()))
                }
                ExecuteError::TooManyInFlight { limit } => {
                    assert!(limit == N || limit == qmp_core::client::OOB_IN_BAND_LIMIT);
                    let _ = in_flight_before;
                }
                ExecuteError::TxFull {
                    required,
                    available,
                } => {
                    assert!(required > available);
                    assert!(
                        content.is_ok(),
                        "TxFull for a request that cannot be encoded"
                    );
                }
                ExecuteError::NotGuestAgent => assert_eq!(self.mode, Mode::Qmp),
                ExecuteError::OobNotAllowed => assert_eq!(what, "QueryStatusOob"),
                other => assert_eq!(
                    content.as_ref().err(),
                    Some(&other),
                    "{what}: refused with {other}, expected {content:?}"
                ),
            },
        }
    }

    fn typed<C: Command>(&mut self, what: &str, command: &C, oob: bool)
    where
        C::Arguments: serde::Serialize,
    {
        let arguments = match command.arguments() {
            Some(arguments) => {
                ExpectedArguments::Value(serde_json::to_value(arguments).expect("typed arguments"))
            }
            None => ExpectedArguments::None,
        };
        let content = Ok(Issued {
            silent: !C::REPLIES_ON_SUCCESS,
            ..Issued::new(
                if oob { "exec-oob" } else { "execute" },
                C::NAME.to_owned(),
                arguments,
            )
        });
        let (state, in_flight) = (self.client.state(), self.client.in_flight());
        let result = if oob {
            self.client.execute_oob(self.now, command)
        } else {
            self.client.execute(self.now, command)
        };
        self.after_call(what, result, content, oob, state, in_flight);
    }

    fn execute(&mut self, cmd: &Cmd) {
        match cmd {
            Cmd::QueryStatus => self.typed("QueryStatus", &QueryStatus, false),
            Cmd::QueryVersion => self.typed("QueryVersion", &QueryVersion, false),
            Cmd::Stop => self.typed("Stop", &Stop, false),
            Cmd::Quit => self.typed("Quit", &Quit, false),
            Cmd::QueryYankOob => self.typed("QueryYankOob", &QueryYank, true),
            Cmd::MigratePauseOob => self.typed("MigratePauseOob", &MigratePause, true),
            Cmd::QueryStatusOob => self.typed("QueryStatusOob", &QueryStatus, true),
            Cmd::GuestPing => self.typed("GuestPing", &GuestPing, false),
            Cmd::GuestShutdown(mode) => {
                let command = GuestShutdown {
                    mode: mode.map(|reboot| {
                        if reboot {
                            GuestShutdownMode::Reboot
                        } else {
                            GuestShutdownMode::Powerdown
                        }
                    }),
                };
                self.typed("GuestShutdown", &command, false)
            }
            Cmd::GuestSuspendRam => self.typed("GuestSuspendRam", &GuestSuspendRam, false),
            Cmd::Raw {
                name,
                arguments,
                oob,
            } => {
                let mut arguments = arguments.clone();
                if let Some(tree) = arguments.as_mut() {
                    tree.truncate(MAX_TREE_DEPTH);
                }
                let name = name.get();
                let member = if *oob { "exec-oob" } else { "execute" };
                let content = raw_content(member, name, arguments.as_ref());
                let (state, in_flight) = (self.client.state(), self.client.in_flight());
                let result = if *oob {
                    self.client
                        .execute_value_oob(self.now, name, arguments.as_ref())
                } else {
                    self.client
                        .execute_value(self.now, name, arguments.as_ref())
                };
                if let Err(ExecuteError::TxFull { required, .. }) = result {
                    let kind = if *oob {
                        RequestKind::ExecOob
                    } else {
                        RequestKind::Execute
                    };
                    let next = if self.issued.is_empty() {
                        self.first_id
                    } else {
                        self.last_id.wrapping_add(1)
                    };
                    let exact =
                        encode::encoded_request_len(kind, name, arguments.as_ref(), Some(next));
                    assert_eq!(exact, Ok(required), "TxFull.required");
                }
                self.after_call("Raw", result, content, *oob, state, in_flight);
            }
            Cmd::Json {
                name,
                arguments,
                oob,
            } => {
                let bytes = match arguments {
                    None => None,
                    Some(JsonArguments::Bytes(b)) => Some(b.clone()),
                    Some(JsonArguments::Tree(tree, padded)) => {
                        let mut tree = tree.clone();
                        tree.truncate(MAX_TREE_DEPTH);
                        let text = serde_json::to_vec(&tree).unwrap_or_default();
                        Some(if *padded {
                            [b" \r\n".as_slice(), &text, b"\t\n"].concat()
                        } else {
                            text
                        })
                    }
                    Some(JsonArguments::Duplicate) => {
                        Some(b"{\"a\": 1, \"b\": {\"c\": 2, \"c\": 3}}".to_vec())
                    }
                };
                let name = name.get();
                let member = if *oob { "exec-oob" } else { "execute" };
                let content = json_content(member, name, bytes.as_deref());
                let (state, in_flight) = (self.client.state(), self.client.in_flight());
                let result = if *oob {
                    self.client
                        .execute_json_oob(self.now, name, bytes.as_deref())
                } else {
                    self.client.execute_json(self.now, name, bytes.as_deref())
                };
                if content.as_ref().err() == Some(&ExecuteError::InvalidArguments) {
                    // Refused before anything else is looked at.
                    assert_eq!(
                        result,
                        Err(ExecuteError::InvalidArguments),
                        "execute_json with arguments {:?}",
                        bytes.as_deref().map(String::from_utf8_lossy)
                    );
                }
                self.after_call("Json", result, content, *oob, state, in_flight);
            }
        }
    }

    fn run_op(&mut self, op: &Op) {
        match op {
            Op::Feed(pieces) => {
                let mut bytes = Vec::new();
                for piece in pieces {
                    self.piece_bytes(piece, &mut bytes);
                }
                bytes.truncate(FEED_MAX);
                self.record(format!("feed {} bytes", bytes.len()));
                self.feed(&bytes);
            }
            Op::Execute(cmd) => self.execute(cmd),
            Op::Sync(value) => {
                let (state, in_flight) = (self.client.state(), self.client.in_flight());
                let content = Ok(Issued {
                    sync_value: Some(*value),
                    ..Issued::new(
                        "execute",
                        "guest-sync-delimited".to_owned(),
                        ExpectedArguments::Value(serde_json::json!({ "id": value })),
                    )
                });
                let result = self.client.sync(self.now, *value);
                self.after_call("Sync", result, content, false, state, in_flight);
            }
            Op::Advance(ms) => {
                self.now = self.now + Duration::from_millis(u64::from(*ms));
                self.record(format!("advance {ms} ms"));
            }
            Op::Timeout => self.timeout(),
            Op::WaitDeadline => {
                if let Some(deadline) = self.client.poll_timeout() {
                    if deadline > self.now {
                        self.now = deadline;
                    }
                }
                self.record("wait for deadline".to_owned());
                self.timeout();
            }
            Op::Transmit(n) => self.transmit(usize::from(*n)),
            Op::Cancel(k) => {
                let ids: Vec<_> = self.issued.keys().copied().collect();
                if ids.is_empty() {
                    return;
                }
                let id = ids[ids.len() - 1 - usize::from(*k) % ids.len()];
                let was_in_flight = self
                    .issued
                    .get(&id)
                    .is_some_and(|c| !c.resolved && !c.cancelled);
                let cancelled = self.client.cancel(CommandId::new(id));
                assert_eq!(cancelled, was_in_flight, "cancel({id})");
                if cancelled {
                    if let Some(c) = self.issued.get_mut(&id) {
                        c.cancelled = true;
                    }
                }
                self.record(format!("cancel {id}: {cancelled}"));
            }
            Op::SetDeadline(k, ms) => {
                let ids: Vec<_> = self.issued.keys().copied().collect();
                if ids.is_empty() {
                    return;
                }
                let id = ids[ids.len() - 1 - usize::from(*k) % ids.len()];
                let deadline = ms.map(|ms| self.now + Duration::from_millis(u64::from(ms)));
                let was_in_flight = self
                    .issued
                    .get(&id)
                    .is_some_and(|c| !c.resolved && !c.cancelled);
                let changed = self.client.set_deadline(CommandId::new(id), deadline);
                assert_eq!(changed, was_in_flight, "set_deadline({id})");
                if changed {
                    if let Some(c) = self.issued.get_mut(&id) {
                        c.deadline = deadline;
                    }
                }
                self.record(format!("set_deadline {id}: {changed}"));
            }
            Op::Eof => {
                self.record("eof".to_owned());
                self.client.handle_eof();
            }
            Op::Close => {
                self.record("close".to_owned());
                self.client.close(CloseReason::Local);
            }
        }
        self.drain();
        if self.script.auto_transmit {
            self.transmit(usize::MAX);
        }
    }

    fn timeout(&mut self) {
        self.record(format!("handle_timeout at {} ms", self.now.as_millis()));
        let now = self.now;
        let resyncs = self.client.stats().resyncs;
        // A guest-agent command of the caller's timing out makes the client resync.
        let expiring = |c: &Issued| {
            !c.resolved && !c.cancelled && c.deadline.is_some_and(|deadline| deadline <= now)
        };
        if self.mode == Mode::GuestAgent
            && self
                .issued
                .values()
                .any(|c| expiring(c) && c.sync_value.is_none())
        {
            self.resync_due = true;
        }
        self.client.handle_timeout(self.now);
        match self.client.stats().resyncs - resyncs {
            0 => {}
            1 => {
                assert!(self.resync_due, "a resync nothing called for");
                self.resync_due = false;
                self.start_automatic_sync();
            }
            more => panic!("{more} resyncs started at once"),
        }
        // Including the one just started, with a zero command timeout.
        self.end_automatic_syncs(expiring);
        if self.client.is_syncing() {
            self.resync_due = false;
        }
        self.drain();
        if let Some(next) = self.client.poll_timeout() {
            assert!(
                next > self.now,
                "poll_timeout {} ms not after handle_timeout at {} ms",
                next.as_millis(),
                self.now.as_millis()
            );
        }
    }

    /// Notes the resync the client just started by itself: the next id, the next value
    /// of the seeded sequence (the default seed, 0), the command timeout.
    fn start_automatic_sync(&mut self) {
        self.resyncs += 1;
        let value = seeded_value(0, self.resyncs);
        let id = if self.issued.is_empty() {
            self.first_id
        } else {
            self.last_id.wrapping_add(1)
        };
        self.record(format!("resync #{id} with {value}"));
        self.last_id = id;
        let issued = Issued {
            sync_value: Some(value),
            automatic: true,
            deadline: self
                .script
                .command_timeout
                .map(|ms| self.now + Duration::from_millis(u64::from(ms))),
            ..Issued::new(
                "execute",
                "guest-sync-delimited".to_owned(),
                ExpectedArguments::Value(serde_json::json!({ "id": value })),
            )
        };
        self.current_sync = Some(value);
        self.issued.insert(id, issued);
        self.issue_order.push(id);
    }

    /// Ends the session (end of stream) and checks the resolution guarantee and the
    /// transmitted bytes.
    fn finish(&mut self) {
        self.client.handle_eof();
        self.drain();
        assert!(self.closed_reported, "no Closed after end of stream");
        for (id, c) in &self.issued {
            assert!(c.resolved || c.cancelled, "command {id} never resolved");
        }
        self.check_transmitted();
    }

    /// Whether the session was ready when the byte at `offset` of `tx` was written.
    fn ready_at(&self, offset: usize) -> bool {
        self.tx_ready
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .is_some_and(|(_, ready)| *ready)
    }

    /// Walks the transmitted bytes request by request (each a JSON object followed by
    /// LF; `0xFF` only right before a sync) and matches each with what was issued.
    fn check_transmitted(&mut self) {
        let tx = self.tx.clone();
        let mut syncs: Vec<u64> = self
            .issue_order
            .iter()
            .filter_map(|id| self.issued.get(id).and_then(|c| c.sync_value))
            .collect();
        syncs.reverse();
        let mut seen = BTreeMap::new();
        let mut capabilities = 0;
        let mut index = 0;
        let mut at = 0;
        while at < tx.len() {
            let sync_marker = tx[at] == 0xFF;
            if sync_marker {
                at += 1;
            }
            let mut stream = serde_json::Deserializer::from_slice(&tx[at..])
                .into_iter::<serde::de::IgnoredAny>();
            match stream.next() {
                Some(Ok(_)) => {}
                // A request cut short by the end of the session: nothing may follow.
                Some(Err(error)) if error.is_eof() => break,
                None => break,
                Some(Err(error)) => panic!(
                    "transmitted bytes are not JSON at {at}: {error}: {:?}",
                    String::from_utf8_lossy(&tx[at..])
                ),
            }
            let end = at + stream.byte_offset();
            let request = &tx[at..end];
            let ready = self.ready_at(at);
            match tx.get(end) {
                Some(b'\n') => {}
                None => break,
                Some(other) => panic!("request not followed by LF but {other:#x}"),
            }
            at = end + 1;
            assert!(!request.contains(&0xFF), "0xFF inside a request");
            let text = std::str::from_utf8(request).expect("request not UTF-8");
            assert!(
                reference::is_valid_json(request),
                "transmitted request is not JSON: {text:?}"
            );
            let Shape::Object(members) = reference::shape(text) else {
                panic!("transmitted request is not an object: {text}")
            };
            let member = members.first().map(|(k, _)| k.as_str()).unwrap_or("");
            let name = match members.first().map(|(_, v)| reference::shape(v.get())) {
                Some(Shape::String(name)) => name,
                _ => panic!("request without a name first: {text}"),
            };
            let arguments = members
                .iter()
                .find(|(k, _)| k == "arguments")
                .map(|(_, v)| v.get().to_owned());
            let id = members
                .iter()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v.get().parse::<u64>().expect("integer id"));
            let first = index == 0;
            index += 1;
            if name == "qmp_capabilities" && id.is_none() {
                assert_eq!(self.mode, Mode::Qmp);
                assert_eq!(capabilities, 0, "qmp_capabilities sent twice");
                assert!(first, "qmp_capabilities is not the first request");
                capabilities += 1;
                continue;
            }
            if self.mode == Mode::Qmp {
                assert!(ready, "{text} sent before the session was ready");
            }
            if name == "guest-sync-delimited" && id.is_none() {
                assert!(sync_marker, "sync without its 0xFF");
                let value = syncs.pop().expect("a sync request for no sync issued");
                assert_eq!(
                    text,
                    format!(
                        "{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{value}}}}}"
                    )
                );
                continue;
            }
            assert!(!sync_marker, "0xFF before {text}");
            let id = id.unwrap_or_else(|| panic!("request without id: {text}"));
            assert!(seen.insert(id, ()).is_none(), "id {id} sent twice");
            let issued = self
                .issued
                .get_mut(&id)
                .unwrap_or_else(|| panic!("request with id {id} never issued"));
            issued.transmitted = true;
            assert_eq!(member, issued.member, "{text}");
            assert_eq!(name, issued.name, "{text}");
            match (&issued.arguments, arguments) {
                (ExpectedArguments::Text(expected), Some(sent)) => assert_eq!(&sent, expected),
                (expected, sent) => {
                    // Requests the encoder wrote: one compact line, every string escaped.
                    assert!(
                        request.iter().all(|&b| b >= 0x20 && b != 0x7F),
                        "raw control byte in {text:?}"
                    );
                    match (expected, sent) {
                        (ExpectedArguments::None, None) => {}
                        (ExpectedArguments::Value(value), Some(sent)) => {
                            let sent: serde_json::Value =
                                serde_json::from_str(&sent).expect("arguments");
                            assert_eq!(&sent, value);
                        }
                        (ExpectedArguments::Tree(expected), Some(sent)) => compare(&sent, expected),
                        (expected, sent) => panic!("arguments {sent:?}, expected {expected:?}"),
                    }
                }
            }
        }
    }
}

impl Issued {
    fn new(member: &'static str, name: String, arguments: ExpectedArguments) -> Self {
        Issued {
            member,
            name,
            arguments,
            sync_value: None,
            automatic: false,
            deadline: None,
            resolved: false,
            cancelled: false,
            transmitted: false,
            transmitted_at: None,
            silent: false,
        }
    }
}

/// The `n`-th value of the client's seeded sync sequence (`Client::sync_seeded`, a
/// SplitMix64 step kept below 2^53), written out independently of the client.
fn seeded_value(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 11
}

fn non_character(text: &str) -> Option<EncodeError> {
    text.chars()
        .find(|&c| {
            let cp = u32::from(c);
            (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE
        })
        .map(|c| EncodeError::NonCharacter {
            code_point: u32::from(c),
        })
}

fn raw_content(
    member: &'static str,
    name: &str,
    arguments: Option<&Tree>,
) -> Result<Issued, ExecuteError> {
    if let Some(error) = non_character(name) {
        return Err(ExecuteError::Encode(error));
    }
    let arguments = match arguments {
        None => ExpectedArguments::None,
        Some(tree) => match first_error(tree) {
            Some(error) => return Err(ExecuteError::Encode(error)),
            None => match expect(tree) {
                Ok(expected) => ExpectedArguments::Tree(expected),
                Err(error) => return Err(ExecuteError::Encode(error)),
            },
        },
    };
    Ok(Issued::new(member, name.to_owned(), arguments))
}

/// The error `arguments` fail with: not an object (checked first), else the contents'.
fn first_error(tree: &Tree) -> Option<EncodeError> {
    match tree {
        Tree::Some(t) | Tree::NewtypeStruct(t) => first_error(t),
        Tree::Map(_)
        | Tree::Struct(_)
        | Tree::NewtypeVariant(..)
        | Tree::TupleVariant(..)
        | Tree::StructVariant(..) => expect(tree).err(),
        _ => Some(EncodeError::ArgumentsNotObject),
    }
}

/// The deepest value in `text` counted the way `execute_json` does (the object itself at
/// 0), and whether any key repeats in one object or any string holds a non-character.
fn json_arguments_acceptable(text: &str, depth: usize) -> bool {
    if depth >= qmp_core::encode::RAW_ARGUMENTS_MAX_DEPTH || has_unpaired_surrogate(text) {
        return false;
    }
    match reference::shape(text) {
        Shape::Object(members) => {
            let mut keys = std::collections::BTreeSet::new();
            members.iter().all(|(key, value)| {
                non_character(key).is_none()
                    && keys.insert(key.clone())
                    && json_arguments_acceptable(value.get(), depth + 1)
            })
        }
        Shape::Array(elements) => elements
            .iter()
            .all(|element| json_arguments_acceptable(element.get(), depth + 1)),
        Shape::String(s) => non_character(&s).is_none(),
        _ => true,
    }
}

/// Whether JSON text holds a `\\u` escape of a surrogate that is not a high one followed
/// at once by a low one (QEMU rejects those; serde_json's lossy view shows U+FFFD).
fn has_unpaired_surrogate(text: &str) -> bool {
    let bytes = text.as_bytes();
    let code_unit = |at: usize| {
        let hex = bytes.get(at..at + 6)?.strip_prefix(b"\\u")?;
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            at += 1;
            continue;
        }
        match code_unit(at) {
            Some(0xD800..=0xDBFF) if matches!(code_unit(at + 6), Some(0xDC00..=0xDFFF)) => at += 12,
            Some(0xD800..=0xDFFF) => return true,
            Some(_) => at += 6,
            None => at += 2,
        }
    }
    false
}

fn json_content(
    member: &'static str,
    name: &str,
    arguments: Option<&[u8]>,
) -> Result<Issued, ExecuteError> {
    let arguments = match arguments {
        None => ExpectedArguments::None,
        Some(bytes) => {
            let valid = reference::is_valid_json(bytes)
                && reference::max_depth(bytes) <= crate::json_checks::COMPARABLE_DEPTH;
            if !valid {
                return Err(ExecuteError::InvalidArguments);
            }
            let text = std::str::from_utf8(bytes).expect("utf-8");
            let trimmed =
                text.trim_matches(|c: char| c.is_ascii() && reference::is_json_whitespace(c as u8));
            if !trimmed.starts_with('{') || !json_arguments_acceptable(trimmed, 0) {
                return Err(ExecuteError::InvalidArguments);
            }
            ExpectedArguments::Text(trimmed.to_owned())
        }
    };
    if let Some(error) = non_character(name) {
        return Err(ExecuteError::Encode(error));
    }
    Ok(Issued::new(member, name.to_owned(), arguments))
}

/// Runs the script once; `split`: fragment the server bytes and use the script's input
/// path, else feed each operation's bytes whole through the other path.
pub fn run(script: &Script, mode: Mode, split: bool) -> Transcript {
    let rx_capacity = rx_size(script.rx);
    let mut rx = vec![0u8; rx_capacity];
    let mut tx = vec![0u8; tx_size(script.tx)];
    let base = match mode {
        Mode::Qmp => Config::qmp(),
        Mode::GuestAgent => Config::guest_agent(),
    };
    let config = base
        .with_oob(script.oob)
        .with_command_timeout(
            script
                .command_timeout
                .map(|ms| Duration::from_millis(u64::from(ms))),
        )
        .with_greeting_timeout(
            script
                .greeting_timeout
                .map(|ms| Duration::from_millis(u64::from(ms))),
        );
    // Some scripts count ids down from the top, through the wrap to 0.
    let first_id = if script.seed & 0x8000 != 0 {
        u64::MAX - u64::from(script.seed & 3)
    } else {
        1
    };
    let config = config.with_first_id(first_id);
    let start = Instant::from_millis(1_000);
    let client = Client::<N>::new(config, start, &mut rx, &mut tx);
    let mut oracle_rx = vec![0u8; rx_capacity];
    let max_fragment = crate::framer::MAX_FRAGMENT[usize::from(script.max_fragment & 7)];
    let mut harness = Harness {
        client,
        mode,
        script,
        rx_capacity,
        now: start,
        start,
        issued: BTreeMap::new(),
        last_id: 0,
        current_sync: None,
        closed_reported: false,
        greetings: 0,
        log: Vec::new(),
        tx: Vec::new(),
        tx_ready: Vec::new(),
        fragments: split.then(|| Fragments::new(u64::from(script.seed), max_fragment)),
        zero_copy: if split {
            script.zero_copy
        } else {
            !script.zero_copy
        },
        first_id,
        issue_order: Vec::new(),
        fed: 0,
        oracle: Framer::new(&mut oracle_rx),
        seen: Vec::new(),
        oracle_sentinel: None,
        tx_parsed: 0,
        syncs_found: 0,
        resync_due: false,
        resyncs: 0,
    };
    harness.drain();
    for op in &script.ops {
        harness.run_op(op);
    }
    harness.finish();
    Transcript {
        log: harness.log,
        tx: harness.tx,
    }
}

/// The whole check on one fuzz input, in `mode`.
pub fn check(data: &[u8], mode: Mode) {
    check_script(&Script::decode(data), mode);
}

/// Runs `script` split and whole, each with every invariant checked, and compares them.
pub fn check_script(script: &Script, mode: Mode) {
    let split = run(script, mode, true);
    let whole = run(script, mode, false);
    if split != whole {
        for (i, (a, b)) in split.log.iter().zip(&whole.log).enumerate() {
            if a != b {
                panic!("runs differ at entry {i}:\n split: {a}\n whole: {b}");
            }
        }
        assert_eq!(split.log.len(), whole.log.len(), "runs differ in length");
        panic!("transmitted bytes differ between the split and the whole run");
    }
}

/// Marks as used the first unused message that `matches`, and every unused message
/// before it that names the same thing (dropped stale ones); returns whether there was
/// one.
fn take_seen(seen: &mut [Seen], matches: impl Fn(&Seen) -> bool) -> bool {
    match seen.iter().position(|m| !m.used && matches(m)) {
        Some(index) => {
            seen[index].used = true;
            true
        }
        None => false,
    }
}
