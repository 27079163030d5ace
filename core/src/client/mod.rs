//! The session: one sans-IO state machine for a QMP monitor or a guest agent.
//!
//! [`Client`] takes bytes in ([`Client::handle_input`] or the zero-copy
//! [`Client::rx_window`] / [`Client::commit_rx`]), end of stream ([`Client::handle_eof`]) and
//! the passage of time ([`Client::handle_timeout`]); it gives bytes out
//! ([`Client::poll_transmit`] / [`Client::mark_transmitted`]), the next deadline
//! ([`Client::poll_timeout`]) and what happened ([`Client::poll_output`]: replies, QMP
//! events, failures, the end of the session). It never performs IO and
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
//! [`Client::handle_timeout`]; its answer is [`Output::Resynchronised`]).
//!
//! Commands whose [`Command::REPLIES_ON_SUCCESS`](crate::commands::Command::REPLIES_ON_SUCCESS) is `false` (`guest-shutdown`,
//! `guest-suspend-*`) are resolved as a success, with the value `{}`, by whichever comes
//! first: a reply to a *later* command (the agent answers strictly in order, so the silent
//! one has finished without error), their deadline passing without an error reply, or the
//! end of the stream (the guest went down). An error reply carrying their id resolves them
//! as that error.
//!
//! # Resolution guarantee
//! Every command id returned by `execute*` or `sync` is resolved exactly once, by either
//! [`Output::Response`] or [`Output::CommandFailed`] (timeout, connection closed, reply too
//! large for the receive buffer, malformed reply), unless the caller gives it up with
//! [`Client::cancel`]. Only bytes that began to arrive after a command's request was
//! completely written can resolve it. A message that names a command in flight but
//! cannot be its answer resolves it at once with [`CommandFailure::MalformedReply`]: its
//! `id` was read before the message turned out to be invalid JSON (invalid UTF-8, a raw
//! control byte, nesting deeper than [`Config::max_depth`], ...), or the message is
//! complete but ambiguous (`return` twice, `return` and `error`, `error` that is not an
//! object, `id` twice with one value). Such a message naming no command in flight is
//! reported as before ([`Output::Malformed`], [`Output::Unknown`]).
//! A reply that arrives after its command timed out or was cancelled is dropped and
//! counted ([`Stats::late_replies`]); it never reaches anyone as a response. After `quit`,
//! the end of the stream counts as its success.

mod receive;
mod table;
mod transmit;
mod types;

use heapless::Vec;

use crate::json::Framer;
use crate::message::{Capabilities, Version};
use crate::time::Instant;
use crate::Buffer;

use table::{GivenUpInBand, Pending, RecentIds, Resolution, Sync, NOT_SENT};
pub use types::{
    CloseReason, CommandFailure, CommandId, Config, ExecuteError, Outcome, Output, Protocol,
    ProtocolError, Response, SessionClosed, State, Stats,
};

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

    /// Whether a command executed now is transmitted at once: the session is ready and no
    /// guest-agent sync holds commands back.
    pub fn sends_at_once(&self) -> bool {
        self.state == State::Ready && self.sync.is_none()
    }

    /// Whether the session is open (anything but closed): `execute*` accepts commands.
    pub fn is_open(&self) -> bool {
        self.state != State::Closed
    }

    /// The caller's commands queued or sent and not yet resolved (the client's own
    /// resync after a timeout is not one).
    pub fn in_flight(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| p.resolution.is_none() && !p.automatic)
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
    /// the receive buffer is full of messages not yet drained with [`Client::poll_output`]
    /// (drain, then offer the rest again). Input needs no clock: deadlines are only
    /// checked by [`Client::handle_timeout`].
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<usize, SessionClosed> {
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
    pub fn commit_rx(&mut self, n: usize) -> Result<(), SessionClosed> {
        self.check_open()?;
        self.framer.commit(n);
        Ok(())
    }

    /// The peer closed its side. Messages already received are still delivered; then every
    /// command still in flight is resolved and [`Output::Closed`] follows.
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// Expires deadlines at `now`. Safe to call at any time, as often as convenient.
    ///
    /// A guest agent may still be busy with a command that timed out, and answer it
    /// later: after such a timeout the client resynchronises by itself (as
    /// [`Client::sync_seeded`] does, before anything queued later is sent), so no stale
    /// answer can be taken for a later command's. Its answer is reported as
    /// [`Output::Resynchronised`] (its timeout, or the session's end, as nothing); it counts
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
        let mut expired = self.expire_commands(now);
        if self.resync_due && self.sync.is_none() {
            let value = seeded_value(self.config.sync_seed, self.seeded_syncs.wrapping_add(1));
            if self.start_sync(now, value, true).is_ok() {
                self.seeded_syncs = self.seeded_syncs.wrapping_add(1);
                self.resync_due = false;
                count(&mut self.stats.resyncs);
                // Due at once with a zero command timeout.
                expired |= self.expire_commands(now);
            }
        }
        // A sync under way (the caller's) resynchronises too.
        if self.sync.is_some() {
            self.resync_due = false;
        }
        expired
    }

    /// Resolves the commands whose deadline is at or before `now`; returns whether any
    /// was. A guest-agent command timing out makes a resync due.
    fn expire_commands(&mut self, now: Instant) -> bool {
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
        expired
    }

    /// Closes the session from this side: every command in flight is resolved with
    /// [`CommandFailure::ConnectionClosed`] and [`Output::Closed`] follows.
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
}

/// The `n`th value of the sequence seeded by `seed` (SplitMix64), below 2^53.
pub(super) fn seeded_value(seed: u64, n: u64) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
                client.execute_json(Instant::ZERO, "guest-ping", Some(arguments)),
                Err(ExecuteError::InvalidArguments),
                "{}",
                core::str::from_utf8(arguments).unwrap_or("?")
            );
        }
        let paired = br#"{"a": "\ud83d\ude00 \\ud800"}"#;
        assert!(client
            .execute_json(Instant::ZERO, "guest-ping", Some(paired))
            .is_ok());
    }

    /// A refusal that waiting cures is retryable; one that it cannot is not.
    #[test]
    fn retryable_refusals_are_those_that_waiting_cures() {
        let (mut rx, mut tx) = ([0u8; 256], [0u8; 128]);
        let mut client: Client<'_, 2> =
            Client::new(Config::guest_agent(), Instant::ZERO, &mut rx, &mut tx);
        let small = br#"{"text": "0123456789012345678901234567890123456789"}"#;
        assert!(client.execute_json(Instant::ZERO, "a", Some(small)).is_ok());
        // The buffer holds one such request: the second fits once the first is written.
        let full = client
            .execute_json(Instant::ZERO, "b", Some(small))
            .unwrap_err();
        assert!(matches!(full, ExecuteError::TxFull { .. }), "{full:?}");
        assert!(client.is_retryable(&full));
        let sent = client.poll_transmit().map_or(0, <[u8]>::len);
        client.mark_transmitted(sent);
        assert!(client.execute_json(Instant::ZERO, "b", Some(small)).is_ok());
        // The table holds two: a third waits for a reply.
        let busy = client.execute_json(Instant::ZERO, "c", None).unwrap_err();
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
            .execute_json(Instant::ZERO, "a", Some(&big))
            .unwrap_err();
        assert!(matches!(never, ExecuteError::TxFull { .. }), "{never:?}");
        assert!(!fresh.is_retryable(&never));
        assert!(!client.is_retryable(&ExecuteError::OobNotEnabled));
        assert!(!client.is_retryable(&ExecuteError::Closed));
    }
}
