//! The receive side: each framed message classified, matched to the command it answers
//! (or refused as stale, late or malformed) and reported as an [`Output`].

use crate::json::{Item, JsonError, RawJson};
use crate::message::{Capabilities, Message, Version};
use crate::Buffer;

use super::{
    count, Client, CloseReason, CommandFailure, CommandId, MalformedReason, Output, ProtocolError,
    Response, State, Sync,
};

/// What [`Client::advance`] found to report.
pub(super) enum Step {
    /// An output that borrows nothing.
    Owned(Output<'static>),
    /// An output built from the current frame.
    FromFrame(FrameOutput),
}

/// Which output to build from the current frame.
#[derive(Clone, Copy)]
pub(super) enum FrameOutput {
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
pub(super) enum ReplyId {
    Absent,
    Integer(u64),
    /// Present but not an integer this client could have sent.
    Foreign,
}

/// What the state machine needs to know of a message, without borrowing it.
#[derive(Clone, Copy)]
pub(super) enum Summary {
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
    pub(super) fn of(message: Message<'_>) -> Summary {
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

impl<'buf, const N: usize, B: Buffer> Client<'buf, N, B> {
    /// What happened next, or `None` when there is nothing more until new input, a command
    /// or a timeout. The output borrows the receive buffer until the next call on the client.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<'_>> {
        match self.advance()? {
            Step::Owned(event) => Some(event),
            Step::FromFrame(tag) => Some(self.frame_output(tag)),
        }
    }

    /// Processes input until something is to be reported. Outputs that borrow the current
    /// frame are returned as a tag and built by [`Client::frame_output`] afterwards: a
    /// borrow returned from inside the loop would keep the framer borrowed for every
    /// later iteration.
    pub(super) fn advance(&mut self) -> Option<Step> {
        loop {
            if let Some(event) = self.take_resolution() {
                return Some(Step::Owned(event));
            }
            if self.state == State::Closed {
                if self.closed_reported {
                    return None;
                }
                self.closed_reported = true;
                return self.close_reason.map(|r| Step::Owned(Output::Closed(r)));
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
                    Summary::Oversize { len } => Step::Owned(Output::Oversize { len }),
                    Summary::Malformed(error) => Step::Owned(Output::Malformed(error)),
                    _ => Step::FromFrame(FrameOutput::Unknown),
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
    pub(super) fn after_sentinel(&mut self) -> Option<u64> {
        self.sync.as_mut().and_then(|sync| sync.sentinel.take())
    }

    /// During a sync, counts a message that is dropped as stale and returns `true`.
    pub(super) fn discard_while_syncing(&mut self) -> bool {
        if self.sync.is_some() {
            count(&mut self.stats.discarded_while_syncing);
            true
        } else {
            false
        }
    }

    /// Builds the output for `tag` from the frame [`Client::advance`] stopped at.
    pub(super) fn frame_output(&mut self, tag: FrameOutput) -> Output<'_> {
        let Some(Item::Frame(frame)) = self.framer.current_item() else {
            // `advance` only returns a frame tag right after taking a frame.
            return Output::Closed(CloseReason::Local);
        };
        let root = frame.value();
        let message = Message::classify_members(root, frame.members());
        match (tag, message) {
            (FrameOutput::Greeting, Message::Greeting(greeting)) => Output::Greeting(greeting),
            (FrameOutput::Response(id), Message::Return { value, .. }) => {
                Output::Response(Response {
                    id,
                    result: Ok(value),
                })
            }
            (FrameOutput::Response(id), Message::Error { error, .. }) => {
                Output::Response(Response {
                    id,
                    result: Err(error),
                })
            }
            (FrameOutput::AsyncEvent, Message::Event(event)) => Output::AsyncEvent(event),
            (FrameOutput::UnattributedError, Message::Error { error, .. }) => {
                Output::UnattributedError(error)
            }
            (FrameOutput::NegotiationFailed, Message::Error { error, .. }) => {
                Output::NegotiationFailed(error)
            }
            (FrameOutput::Unmatched, Message::Return { id, value }) => Output::UnmatchedResponse {
                id,
                result: Ok(value),
            },
            (FrameOutput::Unmatched, Message::Error { id, error }) => Output::UnmatchedResponse {
                id,
                result: Err(error),
            },
            _ => Output::Unknown(root),
        }
    }

    /// Resolves `pending[index]` at once: a message naming it could not be its answer.
    pub(super) fn fail_reply(&mut self, index: usize, reason: CommandFailure) -> Option<Step> {
        let p = *self.pending.get(index)?;
        self.answered_in_order(index);
        self.remove_pending(index);
        Some(Step::Owned(Output::CommandFailed {
            id: CommandId(p.id),
            reason,
        }))
    }

    pub(super) fn on_message(
        &mut self,
        message: Summary,
        start: u64,
        delimited: Option<u64>,
    ) -> Option<Step> {
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
                    Some(Step::FromFrame(FrameOutput::Greeting))
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
                    Some(Step::Owned(Output::Ready))
                }
                Summary::Error { .. } => {
                    self.close(CloseReason::Protocol(ProtocolError::NegotiationFailed));
                    // The error text is reported before the resolutions and `Closed`.
                    Some(Step::FromFrame(FrameOutput::NegotiationFailed))
                }
                Summary::Event => {
                    count(&mut self.stats.events);
                    Some(Step::FromFrame(FrameOutput::AsyncEvent))
                }
                // Oversize and malformed items never get here.
                _ => Some(Step::FromFrame(FrameOutput::Unknown)),
            },
            State::Ready => self.on_ready_message(message, start, delimited),
            State::Closed => None,
        }
    }

    pub(super) fn on_ready_message(
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
                                Step::Owned(Output::Resynchronised)
                            } else {
                                Step::FromFrame(FrameOutput::Response(CommandId(sync.id)))
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
                Some(Step::FromFrame(FrameOutput::Unmatched))
            }
            Summary::Error {
                id: ReplyId::Absent,
            } => {
                if self.discard_while_syncing() {
                    return None;
                }
                count(&mut self.stats.unattributed_errors);
                Some(Step::FromFrame(FrameOutput::UnattributedError))
            }
            Summary::Return { id, .. } | Summary::Error { id } => self.on_reply(id, start),
            _ if self.discard_while_syncing() => None,
            Summary::Event => {
                count(&mut self.stats.events);
                Some(Step::FromFrame(FrameOutput::AsyncEvent))
            }
            // Oversize and malformed items never get here.
            _ => Some(Step::FromFrame(FrameOutput::Unknown)),
        }
    }

    pub(super) fn on_reply(&mut self, id: ReplyId, start: u64) -> Option<Step> {
        if let ReplyId::Integer(id) = id {
            if let Some(index) = self.answered(id, start) {
                self.answered_in_order(index);
                self.remove_pending(index);
                return Some(Step::FromFrame(FrameOutput::Response(CommandId(id))));
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
        Some(Step::FromFrame(FrameOutput::Unmatched))
    }

    /// The delimited answer carrying the sync's value, its sentinel at `start`: completes
    /// the sync, unless it began to arrive before the sync request was out (then it is a
    /// stale answer to an earlier client's sync with the same value: `false`).
    pub(super) fn finish_sync(&mut self, sync: Sync, start: u64) -> bool {
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
}
