//! The receive side: each framed message classified, matched to the command it answers
//! (or refused as stale, late or malformed) and reported as an [`Output`].

use crate::json::{Item, JsonError, JsonStr, RawJson};
use crate::message::{
    AsyncEvent, Capabilities, ErrorClass, Greeting, Message, QmpError, Timestamp, Version,
};
use crate::Buffer;

use super::{
    count, Client, CloseReason, CommandFailure, CommandId, MalformedReason, Output, ProtocolError,
    Response, State, Sync,
};

/// What [`Client::advance`] found to report.
pub(super) enum Step {
    /// An output that borrows nothing.
    Owned(Output<'static>),
    /// An output built from the current frame, classified as `Summary`.
    FromFrame(FrameOutput, Summary),
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

/// A part of the current frame (a value, or a string's content) by its position, so that
/// it outlives the borrow of the framer that found it.
#[derive(Clone, Copy)]
pub(super) struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// Where `part`, taken from `frame`, lies in it; empty for a part from elsewhere (the
    /// `""` that stands for a missing string member).
    fn of(frame: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr().addr().wrapping_sub(frame.as_ptr().addr());
        match start.checked_add(part.len()) {
            Some(end) if end <= frame.len() => Span { start, end },
            _ => Span { start: 0, end: 0 },
        }
    }

    fn bytes(self, frame: &[u8]) -> &[u8] {
        frame.get(self.start..self.end).unwrap_or_default()
    }

    fn raw(self, frame: &[u8]) -> RawJson<'_> {
        RawJson::from_validated(self.bytes(frame))
    }

    fn str(self, frame: &[u8]) -> JsonStr<'_> {
        JsonStr::from_validated(self.bytes(frame))
    }
}

/// An error reply's contents by position (see [`Span`]).
#[derive(Clone, Copy)]
pub(super) struct ErrorSpans {
    class: ErrorClass<Span>,
    desc: Span,
}

impl ErrorSpans {
    fn of(frame: &[u8], error: QmpError<'_>) -> Self {
        ErrorSpans {
            class: error
                .class
                .map_other(|name| Span::of(frame, name.raw_bytes())),
            desc: Span::of(frame, error.desc.raw_bytes()),
        }
    }

    fn view(self, frame: &[u8]) -> QmpError<'_> {
        QmpError {
            class: self.class.map_other(|name| name.str(frame)),
            desc: self.desc.str(frame),
        }
    }
}

/// A message classified once: what the state machine needs to know of it, and where its
/// parts are, so that the output can be built from the frame without borrowing it
/// meanwhile.
#[derive(Clone, Copy)]
pub(super) enum Summary {
    Greeting {
        version: Version,
        capabilities: Capabilities,
        package: Span,
        raw: Span,
    },
    Return {
        id: ReplyId,
        /// The value when it is an unsigned integer (guest-agent sync replies).
        value: Option<u64>,
        raw_id: Option<Span>,
        raw_value: Span,
    },
    Error {
        id: ReplyId,
        raw_id: Option<Span>,
        error: ErrorSpans,
    },
    Event {
        name: Span,
        data: Option<Span>,
        timestamp: Timestamp,
    },
    Unknown,
    /// [`Item::Oversize`].
    Oversize {
        len: u64,
    },
    /// [`Item::Malformed`].
    Malformed(JsonError),
}

impl Summary {
    /// Summarises `message`, classified from `frame`.
    pub(super) fn of(message: Message<'_>, frame: &[u8]) -> Summary {
        let span = |raw: RawJson<'_>| Span::of(frame, raw.as_bytes());
        let reply_id = |id: Option<RawJson<'_>>| match id {
            None => ReplyId::Absent,
            Some(raw) => raw.as_u64().map_or(ReplyId::Foreign, ReplyId::Integer),
        };
        match message {
            Message::Greeting(greeting) => Summary::Greeting {
                version: greeting.version,
                capabilities: greeting.capabilities,
                package: Span::of(frame, greeting.package.raw_bytes()),
                raw: span(greeting.raw),
            },
            Message::Return { id, value } => Summary::Return {
                id: reply_id(id),
                value: value.as_u64(),
                raw_id: id.map(span),
                raw_value: span(value),
            },
            Message::Error { id, error } => Summary::Error {
                id: reply_id(id),
                raw_id: id.map(span),
                error: ErrorSpans::of(frame, error),
            },
            Message::Event(event) => Summary::Event {
                name: Span::of(frame, event.name.raw_bytes()),
                data: event.data.map(span),
                timestamp: event.timestamp,
            },
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
            Step::FromFrame(tag, summary) => Some(self.frame_output(tag, summary)),
        }
    }

    /// Processes input until something is to be reported. Each frame is classified once,
    /// into a [`Summary`] that borrows nothing; outputs that borrow the current frame are
    /// returned as a tag and that summary, and built by [`Client::frame_output`] afterwards:
    /// a borrow returned from inside the loop would keep the framer borrowed for every
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
                    let root = frame.value();
                    let (message, reason) = Message::classify_checked(root, frame.members());
                    (Summary::of(message, root.as_bytes()), reason)
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
                    _ => Step::FromFrame(FrameOutput::Unknown, summary),
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

    /// Builds the output for `tag` from the frame [`Client::advance`] stopped at and
    /// classified as `summary` (without classifying it again).
    pub(super) fn frame_output(&self, tag: FrameOutput, summary: Summary) -> Output<'_> {
        let Some(Item::Frame(frame)) = self.framer.current_item() else {
            // `advance` only returns a frame tag right after taking a frame.
            return Output::Closed(CloseReason::Local);
        };
        let root = frame.value();
        let bytes = root.as_bytes();
        match (tag, summary) {
            (
                FrameOutput::Greeting,
                Summary::Greeting {
                    version,
                    capabilities,
                    package,
                    raw,
                },
            ) => Output::Greeting(Greeting {
                version,
                package: package.str(bytes),
                capabilities,
                raw: raw.raw(bytes),
            }),
            (FrameOutput::Response(id), Summary::Return { raw_value, .. }) => {
                Output::Response(Response {
                    id,
                    result: Ok(raw_value.raw(bytes)),
                })
            }
            (FrameOutput::Response(id), Summary::Error { error, .. }) => {
                Output::Response(Response {
                    id,
                    result: Err(error.view(bytes)),
                })
            }
            (
                FrameOutput::AsyncEvent,
                Summary::Event {
                    name,
                    data,
                    timestamp,
                },
            ) => Output::AsyncEvent(AsyncEvent {
                name: name.str(bytes),
                data: data.map(|data| data.raw(bytes)),
                timestamp,
            }),
            (FrameOutput::UnattributedError, Summary::Error { error, .. }) => {
                Output::UnattributedError(error.view(bytes))
            }
            (FrameOutput::NegotiationFailed, Summary::Error { error, .. }) => {
                Output::NegotiationFailed(error.view(bytes))
            }
            (
                FrameOutput::Unmatched,
                Summary::Return {
                    raw_id, raw_value, ..
                },
            ) => Output::UnmatchedResponse {
                id: raw_id.map(|id| id.raw(bytes)),
                result: Ok(raw_value.raw(bytes)),
            },
            (FrameOutput::Unmatched, Summary::Error { raw_id, error, .. }) => {
                Output::UnmatchedResponse {
                    id: raw_id.map(|id| id.raw(bytes)),
                    result: Err(error.view(bytes)),
                }
            }
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
                    ..
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
                    Some(Step::FromFrame(FrameOutput::Greeting, message))
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
                    Some(Step::FromFrame(FrameOutput::NegotiationFailed, message))
                }
                Summary::Event { .. } => {
                    count(&mut self.stats.events);
                    Some(Step::FromFrame(FrameOutput::AsyncEvent, message))
                }
                // Oversize and malformed items never get here.
                _ => Some(Step::FromFrame(FrameOutput::Unknown, message)),
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
                ..
            } => {
                if let Some(sync) = self.sync {
                    if let (Some(sentinel), true) = (delimited, value == Some(sync.value)) {
                        if self.finish_sync(sync, sentinel) {
                            return Some(if sync.automatic {
                                Step::Owned(Output::Resynchronised)
                            } else {
                                Step::FromFrame(FrameOutput::Response(CommandId(sync.id)), message)
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
                Some(Step::FromFrame(FrameOutput::Unmatched, message))
            }
            Summary::Error {
                id: ReplyId::Absent,
                ..
            } => {
                if self.discard_while_syncing() {
                    return None;
                }
                count(&mut self.stats.unattributed_errors);
                Some(Step::FromFrame(FrameOutput::UnattributedError, message))
            }
            Summary::Return { id, .. } | Summary::Error { id, .. } => {
                self.on_reply(message, id, start)
            }
            _ if self.discard_while_syncing() => None,
            Summary::Event { .. } => {
                count(&mut self.stats.events);
                Some(Step::FromFrame(FrameOutput::AsyncEvent, message))
            }
            // Oversize and malformed items never get here.
            _ => Some(Step::FromFrame(FrameOutput::Unknown, message)),
        }
    }

    pub(super) fn on_reply(&mut self, message: Summary, id: ReplyId, start: u64) -> Option<Step> {
        if let ReplyId::Integer(id) = id {
            if let Some(index) = self.answered(id, start) {
                self.answered_in_order(index);
                self.remove_pending(index);
                return Some(Step::FromFrame(
                    FrameOutput::Response(CommandId(id)),
                    message,
                ));
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
        Some(Step::FromFrame(FrameOutput::Unmatched, message))
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
