//! The in-flight table: one entry per command queued or sent and not yet resolved, the
//! ids recently given up (so their late replies are dropped as late), and the rules for
//! room in the table.

use crate::json::RawJson;
use crate::time::Instant;
use crate::Buffer;

use super::OOB_IN_BAND_LIMIT;
use super::{Client, CommandFailure, CommandId, ExecuteError, Output, Protocol, Response, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolution {
    /// [`CommandFailure::TimedOut`].
    TimedOut,
    /// [`CommandFailure::ConnectionClosed`].
    ConnectionClosed,
    SilentSuccess,
}

/// [`Pending::sent_at`] of a request not completely written yet.
pub(super) const NOT_SENT: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) id: u64,
    pub(super) deadline: Option<Instant>,
    pub(super) oob: bool,
    pub(super) replies_on_success: bool,
    pub(super) is_quit: bool,
    /// A resynchronisation the client started by itself: resolved without an output.
    pub(super) automatic: bool,
    pub(super) resolution: Option<Resolution>,
    /// Where the request ends in the transmitted stream (every byte ever queued, in the
    /// order written), so its bytes are out once that many are.
    pub(super) tx_end: u64,
    /// How many bytes had been received when the request was completely written
    /// ([`NOT_SENT`] until then): only a message starting at or after that offset of the
    /// received stream can answer it.
    pub(super) sent_at: u64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Sync {
    pub(super) id: u64,
    pub(super) value: u64,
    /// Started by the client itself after a timeout (see [`Client::handle_timeout`]).
    pub(super) automatic: bool,
    /// The stream offset of the agent's `0xFF` sentinel when it was the last item.
    pub(super) sentinel: Option<u64>,
    /// Without the `guest-agent` feature no sync can exist, so the compiler leaves out
    /// every path that handles one.
    #[cfg(not(feature = "guest-agent"))]
    #[allow(dead_code)] // only its type matters
    never: core::convert::Infallible,
}

impl Sync {
    /// A sync waiting for its answer (`None` without the `guest-agent` feature).
    pub(super) fn new(id: u64, value: u64, automatic: bool) -> Option<Sync> {
        #[cfg(feature = "guest-agent")]
        return Some(Sync {
            id,
            value,
            automatic,
            sentinel: None,
        });
        #[cfg(not(feature = "guest-agent"))]
        {
            let _ = (id, value, automatic);
            None
        }
    }
}

/// The last `N` command ids given up on (the oldest forgotten first), to recognise their
/// late replies. A plain ring: smaller in firmware than a `heapless::Deque`.
pub(super) struct RecentIds<const N: usize> {
    pub(super) ids: [u64; N],
    /// How many of `ids` hold an id (at most `N`).
    pub(super) len: usize,
    /// Where the next id goes.
    pub(super) next: usize,
}

impl<const N: usize> RecentIds<N> {
    pub(super) const fn new() -> Self {
        RecentIds {
            ids: [0; N],
            len: 0,
            next: 0,
        }
    }

    pub(super) fn remember(&mut self, id: u64) {
        if let Some(slot) = self.ids.get_mut(self.next) {
            *slot = id;
            self.next += 1;
            if self.next == N {
                self.next = 0;
            }
            self.len = N.min(self.len + 1);
        }
    }

    pub(super) fn contains(&self, id: u64) -> bool {
        self.ids.get(..self.len).unwrap_or(&[]).contains(&id)
    }
}

/// In-band commands given up while OOB was possible that QEMU may still hold (at most
/// [`OOB_IN_BAND_LIMIT`]: they count against it). QEMU answers in-band requests in order,
/// so they are all done once it answers the last of them (the one written last) or any
/// in-band request written after it. Earlier late replies free nothing: counting them
/// one by one would need a table; this way a slot is at worst freed late, never early.
pub(super) struct GivenUpInBand {
    pub(super) len: u8,
    /// The id of the one whose request ends last in the transmitted stream, and where.
    pub(super) last_id: u64,
    pub(super) last_end: u64,
}

impl GivenUpInBand {
    pub(super) const fn new() -> Self {
        GivenUpInBand {
            len: 0,
            last_id: 0,
            last_end: 0,
        }
    }

    pub(super) fn add(&mut self, id: u64, tx_end: u64) {
        if self.len == 0 || tx_end > self.last_end {
            self.last_id = id;
            self.last_end = tx_end;
        }
        self.len = self.len.saturating_add(1);
    }

    /// QEMU answered the in-band request ending at `tx_end`.
    pub(super) fn answered_through(&mut self, tx_end: u64) {
        if tx_end >= self.last_end {
            self.len = 0;
        }
    }

    /// The late reply to a given-up command `id` arrived.
    pub(super) fn late(&mut self, id: u64) {
        if id == self.last_id {
            self.len = 0;
        }
    }
}

impl<'buf, const N: usize, B: Buffer> Client<'buf, N, B> {
    /// The command in flight that a message naming `id` and starting at offset `start`
    /// of the received stream can answer: one whose request was completely written
    /// before that message began to arrive. The current sync is never one (its request
    /// carries no id).
    pub(super) fn answered(&self, id: u64, start: u64) -> Option<usize> {
        if self.sync.is_some_and(|sync| sync.id == id) {
            return None;
        }
        self.pending
            .iter()
            .position(|p| p.id == id && p.resolution.is_none() && p.sent_at <= start)
    }

    /// `pending[index]` was answered (or failed by a message naming it); resolves what the
    /// agent's in-order answers say is done before it.
    pub(super) fn answered_in_order(&mut self, index: usize) {
        if let Some(&p) = self.pending.get(index) {
            if !p.oob {
                self.given_up_in_band.answered_through(p.tx_end);
            }
            self.resolve_silent_before(p.tx_end);
        }
    }

    /// Removes `pending[index]`, the last entry taking its place (`swap_remove` without
    /// its overlapping copy, which would link `memmove` into firmware).
    pub(super) fn remove_pending(&mut self, index: usize) {
        if index < self.pending.len() {
            if let Some(last) = self.pending.pop() {
                if let Some(slot) = self.pending.get_mut(index) {
                    *slot = last;
                }
            }
        }
    }

    pub(super) fn take_resolution(&mut self) -> Option<Output<'static>> {
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
                    return Some(Output::Response(Response {
                        id,
                        result: Ok(RawJson::EMPTY_OBJECT),
                    }))
                }
            };
            // The client's own resync is nobody's call: nothing to report.
            if !p.automatic {
                return Some(Output::CommandFailed { id, reason });
            }
        }
    }

    /// The agent answers in order: silent commands written before the request that ends
    /// at `tx_end` in the transmitted stream are done.
    pub(super) fn resolve_silent_before(&mut self, tx_end: u64) {
        if self.config.protocol != Protocol::GuestAgent {
            return;
        }
        for p in self.pending.iter_mut() {
            if p.tx_end < tx_end && !p.replies_on_success && p.resolution.is_none() {
                p.resolution = Some(Resolution::SilentSuccess);
            }
        }
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

    /// Gives up on a command: nothing will be reported for it, and its reply, if it
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
    pub(super) fn give_up(&mut self, p: Pending) {
        self.given_up.remember(p.id);
        if !p.oob && self.oob_possible() {
            self.given_up_in_band.add(p.id, p.tx_end);
        }
    }

    /// Whether OOB is, or may become, enabled.
    pub(super) fn oob_possible(&self) -> bool {
        self.oob_enabled || (self.config.enable_oob && self.state == State::AwaitingGreeting)
    }

    /// Stops waiting for the current guest-agent sync: held commands are released and its
    /// reply, if it still comes, is dropped as late.
    pub(super) fn abandon_sync(&mut self) {
        if let Some(sync) = self.sync.take() {
            self.abandoned_sync = Some(sync.value);
            self.tx_release = self.tx_len;
        }
    }

    /// Whether the table has room for one more command (a sync needs only a free entry;
    /// other commands also respect [`Config::max_in_flight`] and [`OOB_IN_BAND_LIMIT`]).
    pub(super) fn reserve_slot(&self, oob: bool, sync: bool) -> Result<(), ExecuteError> {
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

    pub(super) fn allocate(
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
}
