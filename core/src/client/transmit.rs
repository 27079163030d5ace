//! The transmit side: commands encoded into the transmit buffer (held while the session
//! negotiates or a guest-agent sync is under way), and what the caller writes out.

use crate::commands::Command;
use crate::encode::{self, acceptable_to_qemu, encode_json_request, EncodeError, RequestKind};
use crate::json::RawJson;
use crate::time::Instant;
use crate::Buffer;

#[cfg(doc)]
use super::{Config, Output, Response, Stats, OOB_IN_BAND_LIMIT};

use super::NEGOTIATION_RESERVE;
use super::{
    seeded_value, Client, CommandId, ExecuteError, Protocol, Resolution, State, Sync, NOT_SENT,
};

impl<'buf, const N: usize, B: Buffer> Client<'buf, N, B> {
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

    /// Inserts `bytes` at the release point (after everything releasable, before held
    /// commands) and releases them. Err carries the free space.
    pub(super) fn insert_released(&mut self, bytes: &[u8]) -> Result<(), usize> {
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

    /// Queues a typed command (in-band). Returns its id; the reply comes as
    /// [`Output::Response`] with that id (decode it with [`Response::decode`]).
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

    /// Queues a command by name with its arguments as any serializable value (`None`: no
    /// `arguments` member). For commands this crate has no type for.
    pub fn execute_value<A: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<&A>,
    ) -> Result<CommandId, ExecuteError> {
        self.submit(now, RequestKind::Execute, name, arguments, true)
    }

    /// [`Client::execute_value`] with `exec-oob`.
    pub fn execute_value_oob<A: serde::Serialize + ?Sized>(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<&A>,
    ) -> Result<CommandId, ExecuteError> {
        self.submit(now, RequestKind::ExecOob, name, arguments, true)
    }

    /// Queues a command by name with its arguments as JSON text (`None`: no `arguments`
    /// member; otherwise one object). The text is validated and copied as is; what QEMU's
    /// parser would reject without telling which request it was (duplicate keys, Unicode
    /// non-characters, unpaired surrogate escapes such as `\ud800`, nesting deeper than
    /// [`RAW_ARGUMENTS_MAX_DEPTH`](encode::RAW_ARGUMENTS_MAX_DEPTH)) is refused with
    /// [`ExecuteError::InvalidArguments`], since such a command would never be answered.
    pub fn execute_json(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<&[u8]>,
    ) -> Result<CommandId, ExecuteError> {
        self.submit_json(now, RequestKind::Execute, name, arguments)
    }

    /// [`Client::execute_json`] with `exec-oob`.
    pub fn execute_json_oob(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<&[u8]>,
    ) -> Result<CommandId, ExecuteError> {
        self.submit_json(now, RequestKind::ExecOob, name, arguments)
    }

    fn submit_json(
        &mut self,
        now: Instant,
        kind: RequestKind,
        name: &str,
        arguments: Option<&[u8]>,
    ) -> Result<CommandId, ExecuteError> {
        let arguments = match arguments {
            Some(bytes) => match RawJson::parse(bytes) {
                Ok(raw) if raw.is_object() && acceptable_to_qemu(raw, 0) => Some(raw),
                _ => return Err(ExecuteError::InvalidArguments),
            },
            None => None,
        };
        let arguments = arguments.map(|raw| raw.as_bytes());
        self.submit_with(now, kind, name, true, |out, id| {
            encode_json_request(out, kind, name, arguments, id)
        })
    }

    /// Guest agent: resynchronise with `0xFF` + `guest-sync-delimited` carrying `value`, a
    /// random number the caller picks (or see [`Client::sync_seeded`]). Resolved by
    /// [`Output::Response`] whose value is `value`, by the agent's delimited answer only:
    /// its `0xFF` sentinel immediately followed by `{"return": value}`, arriving after
    /// the request was completely written. Until then new commands are held back (not
    /// transmitted), and everything else that arrives is dropped and counted in
    /// [`Stats::discarded_while_syncing`], except replies to commands transmitted before
    /// the sync, which are delivered as usual. See the module docs. Without the crate's
    /// `guest-agent` feature (on by default) it always fails with
    /// [`ExecuteError::SyncNotBuilt`].
    pub fn sync(&mut self, now: Instant, value: u64) -> Result<CommandId, ExecuteError> {
        self.start_sync(now, value, false)
    }

    /// [`Client::sync`], by the caller or (`automatic`) by the client itself.
    pub(super) fn start_sync(
        &mut self,
        now: Instant,
        value: u64,
        automatic: bool,
    ) -> Result<CommandId, ExecuteError> {
        if self.config.protocol != Protocol::GuestAgent {
            return Err(ExecuteError::NotGuestAgent);
        }
        if !cfg!(feature = "guest-agent") {
            return Err(ExecuteError::SyncNotBuilt);
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
        self.sync = Sync::new(id, value, automatic);
        Ok(CommandId(id))
    }

    /// [`Client::sync`] with the next value of a sequence seeded by
    /// [`Config::with_sync_seed`]: each below 2^53 (exact in every JSON implementation)
    /// and, for a random seed, unpredictable from one connection to the next.
    pub fn sync_seeded(&mut self, now: Instant) -> Result<CommandId, ExecuteError> {
        let value = seeded_value(self.config.sync_seed, self.seeded_syncs.wrapping_add(1));
        let id = self.sync(now, value)?;
        // Only a sync that went out takes a value of the sequence.
        self.seeded_syncs = self.seeded_syncs.wrapping_add(1);
        Ok(id)
    }

    pub(super) fn submit<A: serde::Serialize + ?Sized>(
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
    pub(super) fn submit_with(
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

    pub(super) fn compact_tx(&mut self) {
        self.tx_origin += self.tx_sent as u64;
        crate::json::move_to_front(self.tx.as_mut(), self.tx_sent, self.tx_len);
        self.tx_release -= self.tx_sent;
        self.tx_len -= self.tx_sent;
        self.tx_sent = 0;
    }
}
