//! The routing half of the IO engine ([`crate::driver`] is the other: it moves bytes
//! and decides who drives the link).
//!
//! Everything between the callers and the core is here, in [`Engine`]: queueing the
//! callers' requests into the core (ids, matching, deadlines and negotiation are the
//! core's), turning the core's events into owned replies for the waiting callers and
//! owned events for the listeners, and failing everything with one clear error when the
//! session ends. It runs under the driver's lock, on whichever thread leads.
//!
//! # Why arguments are rendered before the request reaches the engine
//! A command value may borrow the caller's data (`HumanMonitorCommand<'a>`), while the
//! request may wait in the engine's queue beyond the call that made it. So the caller
//! renders the command's arguments to JSON text (with `serde_json`), and the engine hands
//! that text to the core under the command's name and flags ([`submit_forward`]); the
//! core validates it, writes the envelope and owns the id. No protocol decision is made
//! outside the core.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant as StdInstant;

use qmp_core::client::{
    CloseReason, CommandFailure, CommandId, ExecuteError, Output, Protocol, Stats,
};
use qmp_core::commands::Command;
use qmp_core::json::{DecodeError, RawJson};
use qmp_core::message::{Capabilities, Version};
use qmp_core::time::Instant;

use crate::error::{unescape, Error, SessionEnd};
use crate::events::{lock, wait_until, Event, EventHub};
use crate::options::ServerInfo;
use crate::reply::RawReply;

/// The core's in-flight table size.
pub(crate) const CORE_CAPACITY: usize = 128;

/// The core as the std clients use it.
pub(crate) type Core = qmp_core::client::Client<'static, CORE_CAPACITY, Box<[u8]>>;

/// Queues a typed command into the core, given its arguments as JSON text. One
/// monomorphic function per command type, so the command's name and flags travel as a
/// plain function pointer.
pub(crate) type SubmitFn = for<'c, 'a> fn(
    &'c mut Core,
    Instant,
    Option<&'a [u8]>,
    bool,
) -> Result<CommandId, ExecuteError>;

/// Command `C`'s name and flags with its arguments as a `serde_json::Value`: how a
/// command whose success is silent (`guest-shutdown`, `guest-suspend-*`) reaches the
/// core's typed path, which is the one that knows that.
struct Forward<C: ?Sized> {
    arguments: Option<serde_json::Value>,
    _command: PhantomData<fn() -> C>,
}

impl<C: Command + ?Sized> Command for Forward<C> {
    const NAME: &'static str = C::NAME;
    const ALLOW_OOB: bool = C::ALLOW_OOB;
    const REPLIES_ON_SUCCESS: bool = C::REPLIES_ON_SUCCESS;
    type Arguments = serde_json::Value;
    type Response<'r> = RawJson<'r>;

    fn arguments(&self) -> Option<&serde_json::Value> {
        self.arguments.as_ref()
    }

    fn decode_response(raw: RawJson<'_>) -> Result<RawJson<'_>, DecodeError> {
        Ok(raw)
    }
}

/// Queues typed command `C` given its arguments as JSON text. Commands that answer
/// success go through the core's JSON path (the text is validated and copied as is);
/// silent ones through its typed path with the same name and flags ([`Forward`]).
fn submit_forward<C: Command + ?Sized>(
    core: &mut Core,
    now: Instant,
    arguments: Option<&[u8]>,
    oob: bool,
) -> Result<CommandId, ExecuteError> {
    if oob && !C::ALLOW_OOB {
        return Err(ExecuteError::OobNotAllowed);
    }
    if C::REPLIES_ON_SUCCESS {
        return if oob {
            core.execute_json_oob(now, C::NAME, arguments)
        } else {
            core.execute_json(now, C::NAME, arguments)
        };
    }
    let arguments = match arguments {
        Some(bytes) => {
            Some(serde_json::from_slice(bytes).map_err(|_| ExecuteError::InvalidArguments)?)
        }
        None => None,
    };
    let command = Forward::<C> {
        arguments,
        _command: PhantomData,
    };
    if oob {
        core.execute_oob(now, &command)
    } else {
        core.execute(now, &command)
    }
}

/// The request body for typed command `command`: its arguments rendered as JSON text.
pub(crate) fn typed_body<C: Command>(command: &C) -> Result<Body, Error> {
    let arguments = match command.arguments() {
        Some(arguments) => Some(serde_json::to_vec(arguments)?),
        None => None,
    };
    Ok(Body::Typed {
        submit: submit_forward::<C>,
        arguments,
    })
}

/// The request body for a command given by name with `serde_json` arguments (`Null`:
/// none).
pub(crate) fn value_body(name: &str, arguments: &serde_json::Value) -> Result<Body, Error> {
    let arguments = match arguments {
        serde_json::Value::Null => None,
        serde_json::Value::Object(_) => Some(serde_json::to_vec(arguments)?),
        _ => {
            return Err(Error::InvalidRequest(
                "arguments must be a JSON object (or null for none)".into(),
            ))
        }
    };
    Ok(Body::Json {
        name: name.to_owned(),
        arguments,
    })
}

/// The request body for a hand-built message `{"execute"|"exec-oob": NAME,
/// "arguments": {...}, "id": ...}`, and whether it asks for `exec-oob`. The core
/// assigns its own id, so a given `id` is ignored.
pub(crate) fn raw_message_body(message: &[u8]) -> Result<(Body, bool), Error> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Message<'a> {
        #[serde(borrow, default)]
        execute: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default, rename = "exec-oob")]
        exec_oob: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        arguments: Option<&'a serde_json::value::RawValue>,
        #[serde(default, rename = "id")]
        _id: Option<serde::de::IgnoredAny>,
    }
    let message: Message<'_> = serde_json::from_slice(message)
        .map_err(|error| Error::InvalidRequest(format!("not a QMP command: {error}")))?;
    let (name, oob) = match (message.execute, message.exec_oob) {
        (Some(name), None) => (name, false),
        (None, Some(name)) => (name, true),
        (Some(_), Some(_)) => {
            return Err(Error::InvalidRequest(
                "both `execute` and `exec-oob` given".into(),
            ))
        }
        (None, None) => {
            return Err(Error::InvalidRequest(
                "neither `execute` nor `exec-oob` given".into(),
            ))
        }
    };
    let arguments = message.arguments.map(|raw| raw.get().as_bytes().to_vec());
    Ok((
        Body::Json {
            name: name.into_owned(),
            arguments,
        },
        oob,
    ))
}

/// What to send.
pub(crate) enum Body {
    /// A typed command (see [`SubmitFn`]).
    Typed {
        submit: SubmitFn,
        arguments: Option<Vec<u8>>,
    },
    /// A command by name with JSON arguments.
    Json {
        name: String,
        arguments: Option<Vec<u8>>,
    },
    /// A guest-agent resynchronisation (`0xFF` + `guest-sync-delimited`).
    Sync,
}

/// One caller's request, on its way into the engine.
pub(crate) struct Request {
    pub(crate) ticket: u64,
    pub(crate) body: Body,
    pub(crate) oob: bool,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) deadline: Option<StdInstant>,
    pub(crate) completer: Completer,
}

/// Where one result waits for its caller, who either blocks on it ([`Slot::take`]) or
/// polls it from a future ([`Slot::poll_take`]).
pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
    cond: Condvar,
}

struct SlotState<T> {
    result: Option<Result<T, Error>>,
    /// The IO engine was handed to this slot's waiting caller: it drives the link now
    /// (see [`crate::driver`]).
    baton: bool,
    /// The task of an async caller polling for the result.
    waker: Option<Waker>,
    /// Threads blocked in [`Slot::take`] (a wake-up is a system call even with nobody
    /// waiting, so `fill` only makes one when there is somebody).
    sleepers: u32,
    /// A result the caller is done with, given back so the next one reuses its memory
    /// ([`Slot::give_back`]).
    spare: Option<T>,
}

/// The largest reply buffer kept for reuse ([`Slot::give_back`]); a larger one is freed.
const SPARE_REPLY_CAPACITY: usize = 64 * 1024;

/// How many idle reply slots a thread keeps for its next calls (each with the reply buffer
/// it last held, at most [`SPARE_REPLY_CAPACITY`]): enough for the calls one thread
/// usually has in flight at once (tasks on a runtime thread, for instance).
const SLOTS_KEPT: usize = 8;

std::thread_local! {
    /// The reply slots of this thread's recent calls, reused by its next calls once
    /// nobody else holds them (so a call allocates no slot; see [`Slot::for_call`]).
    static KEPT_SLOTS: core::cell::RefCell<Vec<Arc<Slot<RawReply>>>> =
        const { core::cell::RefCell::new(Vec::new()) };
}

impl Slot<RawReply> {
    /// A slot for one call: one of this thread's recent ones that nobody holds any more
    /// (its caller is done and the engine let go), with the reply buffer it kept, else a
    /// new one.
    pub(crate) fn for_call() -> Arc<Self> {
        let reused = KEPT_SLOTS.try_with(|kept| {
            let mut kept = kept.try_borrow_mut().ok()?;
            let slot = kept.iter_mut().find_map(|slot| {
                let state = Arc::get_mut(slot)?
                    .state
                    .get_mut()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                state.result = None;
                state.baton = false;
                state.waker = None;
                state.sleepers = 0;
                Some(Arc::clone(slot))
            });
            if slot.is_none() && kept.len() < SLOTS_KEPT {
                let slot = Slot::new();
                kept.push(Arc::clone(&slot));
                return Some(slot);
            }
            slot
        });
        reused.ok().flatten().unwrap_or_else(Slot::new)
    }

    /// Gives a reply the caller is done with back, so the next reply into this slot
    /// reuses its buffer (if it is not too large to keep).
    pub(crate) fn give_back(&self, reply: RawReply) {
        if reply.capacity() <= SPARE_REPLY_CAPACITY {
            lock(&self.state).spare = Some(reply);
        }
    }

    /// The buffer given back, if any (see [`Slot::give_back`]).
    fn take_spare(&self) -> Option<RawReply> {
        lock(&self.state).spare.take()
    }
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                result: None,
                baton: false,
                waker: None,
                sleepers: 0,
                spare: None,
            }),
            cond: Condvar::new(),
        })
    }

    /// Stores the result unless one is there already (a cancellation wins a race with
    /// the reply). Returns whether it was stored.
    pub(crate) fn fill(&self, result: Result<T, Error>) -> bool {
        let mut state = lock(&self.state);
        if state.result.is_some() {
            return false;
        }
        state.result = Some(result);
        let waker = state.waker.take();
        let sleepers = state.sleepers > 0;
        drop(state);
        if sleepers {
            self.cond.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Hands the IO engine to the caller waiting on this slot ([`Slot::wait_turn`]).
    pub(crate) fn pass_baton(&self) {
        let mut state = lock(&self.state);
        state.baton = true;
        let sleepers = state.sleepers > 0;
        drop(state);
        if sleepers {
            self.cond.notify_all();
        }
    }

    /// Waits until `deadline` (`None`: forever) for the result or for the baton.
    pub(crate) fn wait_turn(&self, deadline: Option<StdInstant>) -> Turn<T> {
        let mut state = lock(&self.state);
        loop {
            if let Some(result) = state.result.take() {
                return Turn::Done(result);
            }
            if core::mem::take(&mut state.baton) {
                return Turn::Lead;
            }
            state.sleepers += 1;
            let passed = match deadline {
                None => {
                    state = self
                        .cond
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    false
                }
                Some(deadline) => {
                    let (guard, passed) = wait_until(&self.cond, state, deadline);
                    state = guard;
                    passed
                }
            };
            state.sleepers -= 1;
            if passed {
                return match state.result.take() {
                    Some(result) => Turn::Done(result),
                    None => Turn::TimedOut,
                };
            }
        }
    }

    /// Takes the result if it is there.
    pub(crate) fn try_take(&self) -> Option<Result<T, Error>> {
        lock(&self.state).result.take()
    }

    /// Waits for the result until `deadline` (`None`: forever); `None` if it passed.
    pub(crate) fn take(&self, deadline: Option<StdInstant>) -> Option<Result<T, Error>> {
        loop {
            match self.wait_turn(deadline) {
                Turn::Done(result) => return Some(result),
                Turn::TimedOut => return None,
                // Nobody hands the baton to a slot waited on this way.
                Turn::Lead => {}
            }
        }
    }

    /// The result if it is there; otherwise the task of `context` is woken when it is.
    pub(crate) fn poll_take(&self, context: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let mut state = lock(&self.state);
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                match &mut state.waker {
                    Some(waker) => waker.clone_from(context.waker()),
                    None => state.waker = Some(context.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Whether a result is waiting.
    pub(crate) fn is_filled(&self) -> bool {
        lock(&self.state).result.is_some()
    }
}

/// What ended a [`Slot::wait_turn`].
pub(crate) enum Turn<T> {
    /// The result.
    Done(Result<T, Error>),
    /// The caller is to drive the IO engine.
    Lead,
    /// The deadline passed.
    TimedOut,
}

/// Where a request's result goes.
pub(crate) enum Completion {
    /// A caller's slot (blocking or async).
    Slot(Arc<Slot<RawReply>>),
    /// An `execute_with_callback` callback (run on the dispatcher thread).
    Callback(Box<dyn FnOnce(Result<RawReply, Error>) + Send>),
    /// The guest-agent sync `connect` waits for.
    Connect,
}

/// Delivers a request's result exactly once; a request dropped unanswered (the session
/// ended while it sat in a channel) is failed with the session's end.
pub(crate) struct Completer {
    shared: Arc<Shared>,
    completion: Option<Completion>,
}

impl Completer {
    /// A completer for a caller's request (counted as outstanding until delivered).
    pub(crate) fn new(shared: &Arc<Shared>, completion: Completion) -> Self {
        if counts(&completion) {
            shared.begin();
        }
        Completer {
            shared: Arc::clone(shared),
            completion: Some(completion),
        }
    }

    fn is_connect(&self) -> bool {
        matches!(self.completion, Some(Completion::Connect))
    }

    /// The buffer the caller gave back after its last call, for this reply.
    fn spare(&self) -> Option<RawReply> {
        match &self.completion {
            Some(Completion::Slot(slot)) => slot.take_spare(),
            _ => None,
        }
    }

    /// Delivers `result`.
    pub(crate) fn complete(mut self, result: Result<RawReply, Error>) {
        if let Some(completion) = self.completion.take() {
            deliver(&self.shared, completion, result);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(completion) = self.completion.take() {
            let error = self.shared.end_error();
            deliver(&self.shared, completion, Err(error));
        }
    }
}

fn counts(completion: &Completion) -> bool {
    !matches!(completion, Completion::Connect)
}

fn deliver(shared: &Arc<Shared>, completion: Completion, result: Result<RawReply, Error>) {
    match completion {
        // Counted as done before the caller can wake up, so a caller that has its reply
        // never sees its own call as outstanding.
        Completion::Slot(slot) => {
            shared.done();
            slot.fill(result);
        }
        Completion::Callback(callback) => {
            // Counted as done when the job ends however it ends: run, panicked, or
            // dropped unrun by a closing dispatcher.
            let done = Done(Arc::clone(shared));
            shared
                .hub
                .dispatch_reply(Box::new(move || callback(result)), Box::new(done));
        }
        Completion::Connect => {}
    }
}

/// Marks one outstanding call done when dropped.
struct Done(Arc<Shared>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// State shared by the IO engine and every handle of one client.
pub(crate) struct Shared {
    pub(crate) hub: EventHub,
    state: Mutex<SharedState>,
    idle: Condvar,
    #[cfg(feature = "tokio")]
    pub(crate) idle_notify: ::tokio::sync::Notify,
    next_ticket: AtomicU64,
    /// Whether the QMP greeting came (tells a stalled negotiation from a silent server).
    greeted: AtomicBool,
}

struct SharedState {
    outstanding: u64,
    /// Threads blocked in [`Shared::wait_idle`]: `done` wakes the condition variable
    /// only when there are some (a wake is a system call even with nobody waiting).
    idle_waiters: u32,
    closed: Option<CloseReason>,
    /// The transport error that ended the session, if one did (a reset, not an end).
    transport_error: Option<io::ErrorKind>,
    stats: Stats,
}

impl Shared {
    pub(crate) fn new(options: &crate::options::ConnectOptions) -> Arc<Self> {
        Arc::new(Shared {
            hub: EventHub::new(options.event_queue_size, options.event_queue_bytes),
            state: Mutex::new(SharedState {
                outstanding: 0,
                idle_waiters: 0,
                closed: None,
                transport_error: None,
                stats: Stats::default(),
            }),
            idle: Condvar::new(),
            #[cfg(feature = "tokio")]
            idle_notify: ::tokio::sync::Notify::new(),
            next_ticket: AtomicU64::new(1),
            greeted: AtomicBool::new(false),
        })
    }

    /// Whether the QMP greeting came.
    pub(crate) fn greeted(&self) -> bool {
        self.greeted.load(Ordering::Acquire)
    }

    /// A fresh ticket number (identifies a request for cancellation).
    pub(crate) fn ticket(&self) -> u64 {
        self.next_ticket.fetch_add(1, Ordering::Relaxed)
    }

    fn begin(&self) {
        lock(&self.state).outstanding += 1;
    }

    fn done(&self) {
        let mut state = lock(&self.state);
        state.outstanding = state.outstanding.saturating_sub(1);
        let idle = state.outstanding == 0;
        let waiters = state.idle_waiters > 0;
        drop(state);
        if idle && waiters {
            self.idle.notify_all();
        }
        #[cfg(feature = "tokio")]
        if idle {
            self.idle_notify.notify_waiters();
        }
    }

    /// Calls submitted and not yet answered (callbacks count until they have run).
    pub(crate) fn outstanding(&self) -> u64 {
        lock(&self.state).outstanding
    }

    /// Waits until nothing is outstanding, at most until `deadline`.
    pub(crate) fn wait_idle(&self, deadline: Option<StdInstant>) -> Result<(), Error> {
        let mut state = lock(&self.state);
        state.idle_waiters += 1;
        let result = loop {
            if state.outstanding == 0 {
                break Ok(());
            }
            match deadline {
                None => {
                    state = self
                        .idle
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                }
                Some(deadline) => {
                    let (guard, passed) = wait_until(&self.idle, state, deadline);
                    state = guard;
                    if passed && state.outstanding != 0 {
                        break Err(Error::Timeout);
                    }
                }
            }
        };
        state.idle_waiters -= 1;
        result
    }

    /// Why the session closed, once it has.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        lock(&self.state).closed
    }

    /// How the session ended (as a local close until it has).
    fn end(&self) -> SessionEnd {
        let state = lock(&self.state);
        SessionEnd {
            reason: state.closed.unwrap_or(CloseReason::Local),
            transport_error: state.transport_error,
        }
    }

    /// The error for a call made (or left waiting) after the session ended.
    pub(crate) fn end_error(&self) -> Error {
        self.end().error()
    }

    /// The core's counters as of the engine's last round.
    pub(crate) fn stats(&self) -> Stats {
        lock(&self.state).stats
    }

    fn mark_closed(&self, reason: CloseReason) {
        let mut state = lock(&self.state);
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
    }
}

/// Tells `connect` how the session start went.
pub(crate) type ConnectSignal = Box<dyn FnOnce(Result<ServerInfo, Error>) + Send>;

/// What the drivers hand to the engine besides bytes.
pub(crate) enum Control {
    /// A new request.
    Submit(Request),
    /// Give up on the request with this ticket.
    Cancel(u64),
    /// Close the session (`close()` or the last handle dropped).
    Close,
}

/// An event of the core, copied out of the receive buffer so the core can be used again.
enum Routed {
    Greeting {
        version: Version,
        package: String,
        capabilities: Capabilities,
    },
    Ready,
    /// A reply, with the request it answers if that is still in flight.
    Reply {
        request: Option<Completer>,
        result: Result<RawReply, Error>,
    },
    Event(Event),
    Failed {
        id: CommandId,
        reason: CommandFailure,
    },
    NegotiationFailed(Error),
    Closed(CloseReason),
    Other,
}

impl Routed {
    fn from_core(event: Output<'_>) -> Self {
        match event {
            Output::Greeting(greeting) => Routed::Greeting {
                version: greeting.version,
                package: unescape(greeting.package),
                capabilities: greeting.capabilities,
            },
            Output::Ready => Routed::Ready,
            Output::AsyncEvent(event) => Routed::Event(Event::from_core(&event)),
            Output::CommandFailed { id, reason } => Routed::Failed { id, reason },
            Output::NegotiationFailed(error) => Routed::NegotiationFailed(Error::from_qmp(&error)),
            Output::Closed(reason) => Routed::Closed(reason),
            // Unattributed errors, unmatched replies, malformed and oversize messages are
            // counted in the core's `Stats`.
            _ => Routed::Other,
        }
    }
}

/// Whether a request went into the core.
enum Submitted {
    /// Queued in the core; the descriptors (if any) must ride on what
    /// `poll_transmit` now returns.
    Yes(Vec<OwnedFd>),
    /// Not now (table or buffer full): retry after replies come back.
    Later(Request),
    /// Failed for good (the caller has its error).
    Failed,
}

/// The engine's routing state; see the module docs.
pub(crate) struct Engine {
    epoch: StdInstant,
    protocol: Protocol,
    shared: Arc<Shared>,
    in_flight: HashMap<u64, (u64, Completer)>,
    backlog: VecDeque<Request>,
    oob_backlog: VecDeque<Request>,
    backlog_deadline: Option<StdInstant>,
    sync_timeout: Option<Duration>,
    connect: Option<ConnectSignal>,
    info: ServerInfo,
    received_any: bool,
    negotiation_error: Option<Error>,
    finished: Option<CloseReason>,
}

impl Engine {
    /// An engine for a session that starts now.
    pub(crate) fn new(
        shared: Arc<Shared>,
        protocol: Protocol,
        options: &crate::options::ConnectOptions,
        connect: ConnectSignal,
    ) -> Self {
        Engine {
            epoch: StdInstant::now(),
            protocol,
            shared,
            in_flight: HashMap::new(),
            backlog: VecDeque::new(),
            oob_backlog: VecDeque::new(),
            backlog_deadline: None,
            sync_timeout: options.greeting_timeout.or(options.command_timeout),
            connect: Some(connect),
            info: ServerInfo::new(protocol),
            received_any: false,
            negotiation_error: None,
            finished: None,
        }
    }

    /// The core's clock: microseconds since this engine's epoch.
    pub(crate) fn now(&self) -> Instant {
        self.core_time(StdInstant::now())
    }

    fn core_time(&self, at: StdInstant) -> Instant {
        let micros = at.saturating_duration_since(self.epoch).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    fn std_time(&self, at: Instant) -> StdInstant {
        self.epoch
            .checked_add(Duration::from_micros(at.as_micros()))
            .unwrap_or_else(|| StdInstant::now() + Duration::from_secs(86_400 * 365))
    }

    /// Starts the session: a guest agent is synchronised first (QMP negotiates by
    /// itself when the greeting comes).
    pub(crate) fn start(&mut self) {
        if self.protocol == Protocol::GuestAgent {
            let request = self.connect_sync();
            self.enqueue(request);
        }
    }

    /// The sync `connect` waits for (its deadline: the greeting timeout, the agent's
    /// counterpart of a greeting, or else the command timeout).
    fn connect_sync(&mut self) -> Request {
        Request {
            ticket: 0,
            body: Body::Sync,
            oob: false,
            fds: Vec::new(),
            // Too far away to represent (`Duration::MAX`): no deadline.
            deadline: self.sync_timeout.and_then(crate::options::deadline_after),
            completer: Completer::new(&self.shared, Completion::Connect),
        }
    }

    /// Whether requests wait in the engine for room in the core (the driver pumps
    /// again after a write, which may have made room in the transmit buffer).
    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty() || !self.oob_backlog.is_empty()
    }

    /// Whether requests wait for a reply, or for room in the core.
    pub(crate) fn has_work(&self) -> bool {
        !self.in_flight.is_empty() || self.has_backlog()
    }

    /// The error for a request that meets the end of the session.
    pub(crate) fn end_error(&self) -> Error {
        self.shared.end_error()
    }

    /// Whether the session is over (the driver stops).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Handles one control message.
    pub(crate) fn control(&mut self, core: &mut Core, control: Control) {
        match control {
            Control::Submit(request) => self.enqueue(request),
            Control::Cancel(ticket) => self.cancel(core, ticket),
            Control::Close => {
                core.close(CloseReason::Local);
                self.drain(core);
            }
        }
    }

    fn enqueue(&mut self, request: Request) {
        if let Some(reason) = self.finished {
            request.completer.complete(Err(Error::closed(reason)));
            return;
        }
        if let Some(deadline) = request.deadline {
            self.backlog_deadline =
                Some(self.backlog_deadline.map_or(deadline, |d| d.min(deadline)));
        }
        if request.oob {
            self.oob_backlog.push_back(request);
        } else {
            self.backlog.push_back(request);
        }
    }

    fn cancel(&mut self, core: &mut Core, ticket: u64) {
        for queue in [&mut self.backlog, &mut self.oob_backlog] {
            if let Some(index) = queue.iter().position(|r| r.ticket == ticket) {
                if let Some(request) = queue.remove(index) {
                    request.completer.complete(Err(Error::Cancelled));
                }
                return;
            }
        }
        let found = self
            .in_flight
            .iter()
            .find(|(_, (t, _))| *t == ticket)
            .map(|(id, _)| *id);
        if let Some(id) = found {
            core.cancel(CommandId::new(id));
            if let Some((_, completer)) = self.in_flight.remove(&id) {
                completer.complete(Err(Error::Cancelled));
            }
        }
    }

    /// `n` bytes were read straight into the core's receive window
    /// ([`Core::rx_window`]): hands them to the core and delivers what they complete.
    pub(crate) fn on_received(&mut self, core: &mut Core, n: usize) {
        if n > 0 {
            self.received_any = true;
        }
        // A closed core ignores input; the drain reports why.
        let _ = core.commit_rx(n);
        self.drain(core);
    }

    /// Feeds received bytes to the core, draining events whenever its buffer is full.
    #[cfg(test)]
    pub(crate) fn on_input(&mut self, core: &mut Core, mut bytes: &[u8]) {
        if !bytes.is_empty() {
            self.received_any = true;
        }
        let mut stalls = 0;
        while !bytes.is_empty() {
            match core.handle_input(bytes) {
                Ok(taken) => {
                    bytes = bytes.get(taken..).unwrap_or_default();
                    stalls = if taken == 0 { stalls + 1 } else { 0 };
                }
                Err(_closed) => break,
            }
            self.drain(core);
            if stalls > 2 {
                // Cannot happen with the core's framer (it skips what does not fit);
                // never spin if it did.
                break;
            }
        }
    }

    /// Reading or writing failed: the session ends as at the end of the stream, and
    /// callers are told what failed (a reset is a reset, not an end) when it cost them
    /// something: while calls wait. With nothing waiting it is the end it looks like:
    /// QEMU reads a command's bytes only up to its closing brace, so after `quit` the
    /// line break behind it is still unread when QEMU exits, and Linux reports that as a
    /// reset.
    pub(crate) fn on_transport_error(&mut self, core: &mut Core, error: &io::Error) {
        let calls_wait = !self.in_flight.is_empty() || self.has_backlog();
        if calls_wait {
            let mut state = lock(&self.shared.state);
            if state.closed.is_none() && state.transport_error.is_none() {
                state.transport_error = Some(error.kind());
            }
        }
        self.on_eof(core);
    }

    /// The peer closed the stream.
    pub(crate) fn on_eof(&mut self, core: &mut Core) {
        core.handle_eof();
        self.drain(core);
    }

    /// One round of work after any input: expire deadlines, move waiting requests into
    /// the core, deliver what the core reports. Returns descriptors that must be sent
    /// with the bytes `poll_transmit` returns now (exactly one command's message).
    pub(crate) fn pump(&mut self, core: &mut Core) -> Option<Vec<OwnedFd>> {
        core.handle_timeout(self.now());
        self.expire_backlog();
        self.drain(core);
        let fds = self.submit_backlog(core);
        self.drain(core);
        self.publish_stats(core);
        fds
    }

    fn publish_stats(&self, core: &Core) {
        lock(&self.shared.state).stats = core.stats();
    }

    /// When the driver must call [`Engine::pump`] again even if nothing arrives.
    pub(crate) fn next_deadline(&self, core: &Core) -> Option<StdInstant> {
        let core_deadline = core.poll_timeout().map(|at| self.std_time(at));
        match (core_deadline, self.backlog_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn expire_backlog(&mut self) {
        let Some(deadline) = self.backlog_deadline else {
            return;
        };
        let now = StdInstant::now();
        if now < deadline {
            return;
        }
        let mut next: Option<StdInstant> = None;
        for queue in [&mut self.backlog, &mut self.oob_backlog] {
            let mut kept = VecDeque::with_capacity(queue.len());
            for request in queue.drain(..) {
                match request.deadline {
                    Some(d) if d <= now => request.completer.complete(Err(Error::Timeout)),
                    Some(d) => {
                        next = Some(next.map_or(d, |n| n.min(d)));
                        kept.push_back(request);
                    }
                    None => kept.push_back(request),
                }
            }
            *queue = kept;
        }
        self.backlog_deadline = next;
    }

    fn submit_backlog(&mut self, core: &mut Core) -> Option<Vec<OwnedFd>> {
        // Out-of-band requests first: they are meant to overtake.
        while let Some(request) = self.oob_backlog.pop_front() {
            match self.submit(core, request) {
                Submitted::Yes(_) | Submitted::Failed => {}
                Submitted::Later(request) => {
                    self.oob_backlog.push_front(request);
                    break;
                }
            }
        }
        while let Some(request) = self.backlog.pop_front() {
            let fds_can_go = core.sends_at_once() && core.poll_transmit().is_none();
            if !request.fds.is_empty() && !fds_can_go {
                // Descriptors must ride on this command's own bytes: wait until the
                // session is ready and everything before it is written.
                self.backlog.push_front(request);
                return None;
            }
            match self.submit(core, request) {
                Submitted::Yes(fds) => {
                    if !fds.is_empty() {
                        return Some(fds);
                    }
                }
                Submitted::Failed => {}
                Submitted::Later(request) => {
                    self.backlog.push_front(request);
                    return None;
                }
            }
        }
        None
    }

    fn submit(&mut self, core: &mut Core, mut request: Request) -> Submitted {
        let now = self.now();
        let result = match &request.body {
            Body::Typed { submit, arguments } => {
                submit(core, now, arguments.as_deref(), request.oob)
            }
            Body::Json { name, arguments } if request.oob => {
                core.execute_json_oob(now, name, arguments.as_deref())
            }
            Body::Json { name, arguments } => core.execute_json(now, name, arguments.as_deref()),
            Body::Sync => core.sync_seeded(now),
        };
        match result {
            Ok(id) => {
                let deadline = request.deadline.map(|d| self.core_time(d));
                core.set_deadline(id, deadline);
                let fds = core::mem::take(&mut request.fds);
                self.in_flight
                    .insert(id.get(), (request.ticket, request.completer));
                Submitted::Yes(fds)
            }
            // The core's rule: fits once replies come back or queued bytes are written.
            Err(error) if core.is_retryable(&error) => Submitted::Later(request),
            Err(error) => {
                request.completer.complete(Err(Error::Execute(error)));
                Submitted::Failed
            }
        }
    }

    /// Delivers every event the core has.
    fn drain(&mut self, core: &mut Core) {
        loop {
            let routed = match core.poll_output() {
                // Copied into the buffer the caller gave back after its last call.
                Some(Output::Response(response)) => {
                    let request = self.in_flight.remove(&response.id.get()).map(|(_, c)| c);
                    let result = match response.result {
                        Ok(value) => Ok(RawReply::copy_of(
                            value,
                            request.as_ref().and_then(Completer::spare),
                        )),
                        Err(error) => Err(Error::from_qmp(&error)),
                    };
                    Routed::Reply { request, result }
                }
                Some(event) => Routed::from_core(event),
                None => return,
            };
            self.route(core, routed);
        }
    }

    fn route(&mut self, core: &mut Core, routed: Routed) {
        if let Some(reason) = core.close_reason() {
            // The core resolves every command before it reports `Closed`: whoever wakes
            // up from those resolutions must already see the session as closed.
            self.shared.mark_closed(reason);
        }
        match routed {
            Routed::Greeting {
                version,
                package,
                capabilities,
            } => {
                self.shared.greeted.store(true, Ordering::Release);
                self.info.version = Some(version);
                self.info.package = package;
                self.info.capabilities = Some(capabilities);
            }
            Routed::Ready => {
                self.info.oob_enabled = core.oob_enabled();
                if let Some(signal) = self.connect.take() {
                    signal(Ok(self.info.clone()));
                }
            }
            Routed::Reply { request, result } => {
                // Whoever wakes up sees counters that include everything before its reply.
                self.publish_stats(core);
                if let Some(completer) = request {
                    if completer.is_connect() {
                        if let Some(signal) = self.connect.take() {
                            signal(result.map(|_| self.info.clone()));
                        }
                        return;
                    }
                    completer.complete(result);
                }
            }
            Routed::Event(event) => self.shared.hub.publish(event),
            Routed::Failed { id, reason } => {
                self.publish_stats(core);
                let Some((_, completer)) = self.in_flight.remove(&id.get()) else {
                    return;
                };
                let shared = Arc::clone(&self.shared);
                let error = || match reason {
                    CommandFailure::TimedOut => Error::Timeout,
                    CommandFailure::ReplyTooLarge { len } => Error::ReplyTooLarge { len },
                    _ => shared.end_error(),
                };
                if completer.is_connect() {
                    if let Some(signal) = self.connect.take() {
                        signal(Err(error()));
                    }
                }
                completer.complete(Err(error()));
            }
            Routed::NegotiationFailed(error) => self.negotiation_error = Some(error),
            Routed::Closed(reason) => self.finish(reason),
            Routed::Other => {}
        }
    }

    /// The session is over: everyone waiting gets the reason, listeners are told.
    fn finish(&mut self, reason: CloseReason) {
        if self.finished.is_some() {
            return;
        }
        self.finished = Some(reason);
        self.shared.mark_closed(reason);
        self.shared.hub.close(self.shared.end());
        let error = || self.shared.end_error();
        for (_, (_, completer)) in self.in_flight.drain() {
            completer.complete(Err(error()));
        }
        for request in self.backlog.drain(..).chain(self.oob_backlog.drain(..)) {
            request.completer.complete(Err(error()));
        }
        if let Some(signal) = self.connect.take() {
            let failure = match reason {
                CloseReason::GreetingTimedOut if !self.received_any => Error::AlreadyConnected,
                _ => self.negotiation_error.take().unwrap_or_else(error),
            };
            signal(Err(failure));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_core::commands::QueryVersion;
    use std::sync::mpsc;

    fn engine(
        protocol: Protocol,
    ) -> (
        Engine,
        Arc<Shared>,
        mpsc::Receiver<Result<ServerInfo, Error>>,
    ) {
        let shared = Shared::new(&crate::options::ConnectOptions::new().event_queue_size(16));
        let (tx, rx) = mpsc::channel();
        let engine = Engine::new(
            Arc::clone(&shared),
            protocol,
            &options(),
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        (engine, shared, rx)
    }

    /// The tests' options: a 200 ms greeting timeout, at most 2 commands in flight.
    fn options() -> crate::options::ConnectOptions {
        crate::options::ConnectOptions::new()
            .greeting_timeout(Some(Duration::from_millis(200)))
            .max_in_flight(2)
    }

    fn request(shared: &Arc<Shared>, body: Body) -> (Request, Arc<Slot<RawReply>>) {
        let slot = Slot::new();
        let request = Request {
            ticket: shared.ticket(),
            body,
            oob: false,
            fds: Vec::new(),
            deadline: None,
            completer: Completer::new(shared, Completion::Slot(Arc::clone(&slot))),
        };
        (request, slot)
    }

    fn take_tx(core: &mut Core) -> String {
        let bytes = core.poll_transmit().unwrap_or_default().to_vec();
        core.mark_transmitted(bytes.len());
        String::from_utf8(bytes).unwrap()
    }

    const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"pkg\"}, \"capabilities\": [\"oob\"]}}\r\n";

    #[test]
    fn negotiates_routes_replies_and_events_and_fails_on_eof() {
        let (mut engine, shared, connected) = engine(Protocol::Qmp);
        let (rx, tx) = (vec![0u8; 4096], vec![0u8; 4096]);
        let mut core = Core::with_buffers(
            options().core_config(Protocol::Qmp),
            engine.now(),
            rx.into_boxed_slice(),
            tx.into_boxed_slice(),
        );
        engine.start();
        // Requests made before the greeting are held by the core, and the in-flight limit
        // (2) keeps the third in the engine's backlog.
        let mut slots = Vec::new();
        for _ in 0..3 {
            let (request, slot) = request(&shared, typed_body(&QueryVersion).unwrap());
            engine.control(&mut core, Control::Submit(request));
            slots.push(slot);
        }
        assert!(engine.pump(&mut core).is_none());
        assert_eq!(shared.outstanding(), 3);
        assert!(core.poll_transmit().is_none());
        engine.on_input(&mut core, GREETING);
        engine.pump(&mut core);
        assert_eq!(take_tx(&mut core), "{\"execute\":\"qmp_capabilities\"}\n");
        engine.on_input(&mut core, b"{\"return\": {}}\r\n");
        engine.pump(&mut core);
        let info = connected.try_recv().unwrap().unwrap();
        assert_eq!(info.version.unwrap().major, 10);
        assert_eq!(info.package, "pkg");
        assert!(!info.oob_enabled);
        let sent = take_tx(&mut core);
        assert_eq!(sent.matches("query-version").count(), 2, "{sent}");
        let sub =
            crate::events::Subscription::<crate::Blocking>::new(shared.hub.listener(None, None));
        engine.on_input(
            &mut core,
            b"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n{\"return\": {\"x\": 1}, \"id\": 1}\r\n{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n",
        );
        engine.pump(&mut core);
        assert_eq!(sub.try_recv().unwrap().unwrap().name(), "STOP");
        assert_eq!(slots[0].take(None).unwrap().unwrap().as_str(), "{\"x\": 1}");
        assert!(matches!(
            slots[1].take(None).unwrap(),
            Err(Error::Qmp { .. })
        ));
        // The third went out once the first two were answered.
        assert!(take_tx(&mut core).contains("\"id\":3"));
        engine.on_eof(&mut core);
        assert!(engine.is_finished());
        assert!(matches!(
            slots[2].take(None).unwrap(),
            Err(Error::Closed(CloseReason::EndOfStream { truncated: false }))
        ));
        assert_eq!(shared.outstanding(), 0);
        assert!(matches!(sub.recv(), Err(Error::Closed(_))));
        // Late requests fail at once with the same reason.
        let (late, slot) = request(&shared, value_body("x", &serde_json::Value::Null).unwrap());
        engine.control(&mut core, Control::Submit(late));
        assert!(matches!(slot.take(None).unwrap(), Err(Error::Closed(_))));
    }

    #[test]
    fn silent_server_is_already_connected() {
        let (mut engine, _shared, connected) = engine(Protocol::Qmp);
        let (rx, tx) = (vec![0u8; 1024], vec![0u8; 1024]);
        let config = crate::options::ConnectOptions::new()
            .greeting_timeout(Some(Duration::from_millis(10)))
            .core_config(Protocol::Qmp);
        let mut core = Core::with_buffers(
            config,
            engine.now(),
            rx.into_boxed_slice(),
            tx.into_boxed_slice(),
        );
        let deadline = engine.next_deadline(&core).unwrap();
        std::thread::sleep(deadline.saturating_duration_since(StdInstant::now()));
        engine.pump(&mut core);
        assert!(matches!(
            connected.try_recv().unwrap(),
            Err(Error::AlreadyConnected)
        ));
    }

    #[test]
    fn cancel_and_backlog_deadlines() {
        let (mut engine, shared, _connected) = engine(Protocol::Qmp);
        let (rx, tx) = (vec![0u8; 1024], vec![0u8; 1024]);
        let config = options().core_config(Protocol::Qmp);
        let mut core = Core::with_buffers(
            config,
            engine.now(),
            rx.into_boxed_slice(),
            tx.into_boxed_slice(),
        );
        let (first, first_slot) =
            request(&shared, value_body("a", &serde_json::json!({})).unwrap());
        let ticket = first.ticket;
        engine.control(&mut core, Control::Submit(first));
        let (mut second, second_slot) =
            request(&shared, value_body("b", &serde_json::Value::Null).unwrap());
        second.deadline = Some(StdInstant::now());
        engine.control(&mut core, Control::Submit(second));
        engine.pump(&mut core);
        assert!(matches!(
            second_slot.take(None).unwrap(),
            Err(Error::Timeout)
        ));
        engine.control(&mut core, Control::Cancel(ticket));
        assert!(matches!(
            first_slot.take(None).unwrap(),
            Err(Error::Cancelled)
        ));
        assert_eq!(shared.outstanding(), 0);
        assert!(shared.wait_idle(Some(StdInstant::now())).is_ok());
        engine.control(&mut core, Control::Close);
        assert!(engine.is_finished());
        assert!(matches!(shared.end_error(), Error::ClientClosed));
    }

    #[test]
    fn guest_agent_syncs_at_start() {
        let (mut engine, _shared, connected) = engine(Protocol::GuestAgent);
        let (rx, tx) = (vec![0u8; 1024], vec![0u8; 1024]);
        let config = options().core_config(Protocol::GuestAgent);
        let mut core = Core::with_buffers(
            config,
            engine.now(),
            rx.into_boxed_slice(),
            tx.into_boxed_slice(),
        );
        engine.start();
        engine.pump(&mut core);
        let bytes = core.poll_transmit().unwrap().to_vec();
        core.mark_transmitted(bytes.len());
        assert_eq!(bytes[0], 0xFF);
        let text = String::from_utf8(bytes[1..].to_vec()).unwrap();
        let request: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(request["execute"], "guest-sync-delimited");
        let id = request["arguments"]["id"].as_u64().unwrap();
        assert!(id < (1 << 53));
        let mut reply = vec![0xFF];
        reply.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
        engine.on_input(&mut core, &reply);
        engine.pump(&mut core);
        let info = connected.try_recv().unwrap().unwrap();
        assert_eq!(info.protocol, Protocol::GuestAgent);
        assert!(info.version.is_none());
    }

    #[test]
    fn raw_messages_are_checked() {
        let (body, oob) =
            raw_message_body(br#"{"exec-oob":"query-yank","id":"x","arguments":{"a":[1]}}"#)
                .unwrap();
        assert!(oob);
        match body {
            Body::Json { name, arguments } => {
                assert_eq!(name, "query-yank");
                assert_eq!(arguments.unwrap(), br#"{"a":[1]}"#);
            }
            _ => panic!("wrong body"),
        }
        assert!(raw_message_body(br#"{"arguments":{}}"#).is_err());
        assert!(raw_message_body(br#"{"execute":"a","exec-oob":"b"}"#).is_err());
        assert!(raw_message_body(br#"{"execute":"a","control":{}}"#).is_err());
        assert!(raw_message_body(b"[1]").is_err());
        assert!(value_body("a", &serde_json::json!([1])).is_err());
    }
}
