//! Asynchronous events: owned [`Event`]s, bounded [`Subscription`]s and callbacks by name.
//!
//! The IO engine copies each event out of the core's receive buffer once and hands a
//! cheap clone (an `Arc`) to every listener whose filter accepts it. Each listener has
//! its own queue, bounded in events and in bytes: when it is full the *oldest* event is
//! dropped and counted
//! ([`Subscription::missed`]), so a listener that does not keep up loses old events but
//! never slows the client down. Callbacks registered with `on_event` run on one
//! dispatcher thread, in arrival order, together with the callbacks of
//! `execute_with_callback`; a slow callback delays other callbacks, never replies.

use core::fmt;
use core::marker::PhantomData;
use core::panic::AssertUnwindSafe;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::VecDeque;
use std::panic::catch_unwind;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Instant;

use qmp_core::json::RawJson;
use qmp_core::message::{AsyncEvent, Timestamp};
use serde::de::DeserializeOwned;

use crate::client::{Blocking, Mode};
use crate::error::{unescape, Error, SessionEnd};
use crate::options::deadline_after;

/// Locks a mutex, ignoring poisoning (a panicking callback must not wedge the client).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on a condition variable, ignoring poisoning.
fn wait<'a, T>(cond: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cond.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Waits on a condition variable until `deadline`, ignoring poisoning. Returns the
/// guard and whether the deadline has passed.
pub(crate) fn wait_until<'a, T>(
    cond: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Instant,
) -> (MutexGuard<'a, T>, bool) {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return (guard, true);
    }
    let (guard, _) = cond
        .wait_timeout(guard, left)
        .unwrap_or_else(PoisonError::into_inner);
    (guard, Instant::now() >= deadline)
}

/// An asynchronous event from the server, owned. Cloning is cheap (shared).
#[derive(Clone)]
pub struct Event {
    inner: Arc<EventInner>,
}

struct EventInner {
    name: String,
    data: Option<Box<[u8]>>,
    timestamp: Timestamp,
}

impl Event {
    /// Copies an event out of the core's receive buffer.
    pub(crate) fn from_core(event: &AsyncEvent<'_>) -> Self {
        Event {
            inner: Arc::new(EventInner {
                name: unescape(event.name),
                data: event.data.map(|data| data.as_bytes().into()),
                timestamp: event.timestamp,
            }),
        }
    }

    /// The event name, e.g. `JOB_STATUS_CHANGE`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The `data` member as the core's zero-copy view (absent for events such as `STOP`).
    pub fn data(&self) -> Option<RawJson<'_>> {
        self.inner
            .data
            .as_deref()
            .map(|bytes| RawJson::parse(bytes).unwrap_or(RawJson::NULL))
    }

    /// The `data` member as a `serde_json::Value` (`Null` when absent).
    pub fn data_value(&self) -> serde_json::Value {
        self.inner
            .data
            .as_deref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Decodes the `data` member (`null` when absent) into any owned type.
    ///
    /// # Errors
    /// [`Error::Json`] when it does not fit `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let bytes = self.inner.data.as_deref().unwrap_or(b"null");
        Ok(serde_json::from_slice(bytes)?)
    }

    /// When the server built the event (may be unknown: `-1`/`-1`).
    pub fn timestamp(&self) -> Timestamp {
        self.inner.timestamp
    }

    /// The memory this event holds, as counted against a queue's byte bound.
    pub fn size(&self) -> usize {
        let data = self.inner.data.as_deref().map_or(0, <[u8]>::len);
        core::mem::size_of::<EventInner>() + self.inner.name.len() + data
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self
            .inner
            .data
            .as_deref()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        f.debug_struct("Event")
            .field("name", &self.inner.name)
            .field("data", &data)
            .field("timestamp", &self.inner.timestamp)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Subscriptions

/// What a listener's queue holds, behind its mutex.
struct ListenerState {
    queue: VecDeque<Event>,
    /// The [`Event::size`]s of the queued events, added up.
    queued_bytes: usize,
    missed: u64,
    missed_unreported: u64,
    closed: Option<SessionEnd>,
    cancelled: bool,
}

/// One listener: shared between the hub (which pushes) and its [`Subscription`].
pub(crate) struct Listener {
    state: Mutex<ListenerState>,
    cond: Condvar,
    filter: Option<Vec<String>>,
    capacity: usize,
    byte_capacity: usize,
    #[cfg(feature = "tokio")]
    pub(crate) notify: ::tokio::sync::Notify,
}

impl Listener {
    fn new(filter: Option<Vec<String>>, capacity: usize, byte_capacity: usize) -> Self {
        Listener {
            state: Mutex::new(ListenerState {
                queue: VecDeque::new(),
                queued_bytes: 0,
                missed: 0,
                missed_unreported: 0,
                closed: None,
                cancelled: false,
            }),
            cond: Condvar::new(),
            filter,
            capacity: capacity.max(1),
            byte_capacity,
            #[cfg(feature = "tokio")]
            notify: ::tokio::sync::Notify::new(),
        }
    }

    fn accepts(&self, name: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }

    fn push(&self, event: &Event) {
        {
            let mut state = lock(&self.state);
            if state.cancelled {
                return;
            }
            let size = event.size();
            if size > self.byte_capacity {
                // Could never be queued: lost, like an event pushed out by newer ones.
                state.missed += 1;
                state.missed_unreported += 1;
                return;
            }
            while state.queue.len() >= self.capacity
                || state.queued_bytes + size > self.byte_capacity
            {
                let Some(oldest) = state.queue.pop_front() else {
                    break;
                };
                state.queued_bytes -= oldest.size();
                state.missed += 1;
                state.missed_unreported += 1;
            }
            state.queued_bytes += size;
            state.queue.push_back(event.clone());
        }
        self.wake();
    }

    fn close(&self, end: SessionEnd) {
        {
            let mut state = lock(&self.state);
            if state.closed.is_none() {
                state.closed = Some(end);
            }
        }
        self.wake();
    }

    fn cancel(&self) {
        lock(&self.state).cancelled = true;
        self.wake();
    }

    fn wake(&self) {
        self.cond.notify_all();
        #[cfg(feature = "tokio")]
        self.notify.notify_waiters();
    }

    /// Takes the next event, or the reason there will be none (`Err`), or `Ok(None)`
    /// when the queue is empty for now.
    pub(crate) fn try_take(&self) -> Result<Option<Event>, Error> {
        let mut state = lock(&self.state);
        Self::take_locked(&mut state)
    }

    fn take_locked(state: &mut ListenerState) -> Result<Option<Event>, Error> {
        if state.cancelled {
            return Err(Error::Cancelled);
        }
        if let Some(event) = state.queue.pop_front() {
            state.queued_bytes -= event.size();
            return Ok(Some(event));
        }
        match state.closed {
            Some(end) => Err(end.error()),
            None => Ok(None),
        }
    }

    fn take_until(&self, deadline: Option<Instant>) -> Result<Event, Error> {
        let mut state = lock(&self.state);
        loop {
            if let Some(event) = Self::take_locked(&mut state)? {
                return Ok(event);
            }
            match deadline {
                None => state = wait(&self.cond, state),
                Some(deadline) => {
                    let (guard, passed) = wait_until(&self.cond, state, deadline);
                    state = guard;
                    if passed {
                        if let Some(event) = Self::take_locked(&mut state)? {
                            return Ok(event);
                        }
                        return Err(Error::Timeout);
                    }
                }
            }
        }
    }

    pub(crate) fn missed(&self) -> u64 {
        lock(&self.state).missed
    }

    pub(crate) fn take_missed(&self) -> u64 {
        core::mem::take(&mut lock(&self.state).missed_unreported)
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        lock(&self.state).queued_bytes
    }
}

/// A listener for events: a queue bounded in count and in bytes that drops its oldest
/// event when full and counts what it dropped.
///
/// Get one with [`Client::subscribe`](crate::Client::subscribe) or
/// [`Client::subscribe_filtered`](crate::Client::subscribe_filtered). Dropping it
/// unsubscribes. When the session ends, the events still queued are delivered, then
/// `recv` returns the reason ([`Error::Closed`] or [`Error::ClientClosed`]). `M` is the
/// client's [`Mode`]: `recv` blocks the thread for [`Blocking`], and is an `async fn`
/// for `Async` (feature `tokio`).
pub struct Subscription<M: Mode = Blocking> {
    pub(crate) listener: Arc<Listener>,
    _mode: PhantomData<fn() -> M>,
}

impl<M: Mode> Subscription<M> {
    pub(crate) fn new(listener: Arc<Listener>) -> Self {
        Subscription {
            listener,
            _mode: PhantomData,
        }
    }

    /// The next event if one is queued.
    ///
    /// # Errors
    /// [`Error::Closed`]/[`Error::ClientClosed`] when nothing is queued and the session
    /// is over; [`Error::Cancelled`] after [`SubscriptionCanceller::cancel`].
    pub fn try_recv(&self) -> Result<Option<Event>, Error> {
        self.listener.try_take()
    }

    /// How many events this listener has lost in total because its queue was full.
    pub fn missed(&self) -> u64 {
        self.listener.missed()
    }

    /// How many events were lost since the last call (and resets that count).
    pub fn take_missed(&self) -> u64 {
        self.listener.take_missed()
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        self.listener.len()
    }

    /// Whether no event is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's capacity in events.
    pub fn capacity(&self) -> usize {
        self.listener.capacity
    }

    /// The bytes the queued events hold (see [`Event::size`]).
    pub fn queued_bytes(&self) -> usize {
        self.listener.queued_bytes()
    }

    /// The queue's capacity in bytes
    /// ([`ConnectOptions::event_queue_bytes`](crate::ConnectOptions::event_queue_bytes)).
    pub fn byte_capacity(&self) -> usize {
        self.listener.byte_capacity
    }

    /// A handle that cancels this subscription from anywhere: a `recv` waiting on it
    /// returns [`Error::Cancelled`] at once (the Go `context` pattern).
    pub fn canceller(&self) -> SubscriptionCanceller {
        SubscriptionCanceller {
            listener: Arc::downgrade(&self.listener),
        }
    }
}

impl Subscription<Blocking> {
    /// Waits for the next event.
    ///
    /// # Errors
    /// [`Error::Closed`]/[`Error::ClientClosed`] once the session is over and the queue
    /// is empty; [`Error::Cancelled`] after [`SubscriptionCanceller::cancel`].
    pub fn recv(&self) -> Result<Event, Error> {
        self.listener.take_until(None)
    }

    /// Waits at most `timeout` for the next event (any `Duration`: one too large to
    /// add to now means no deadline).
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came in time; otherwise as [`Subscription::recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, Error> {
        self.listener.take_until(deadline_after(timeout))
    }

    /// Waits until `deadline` for the next event.
    ///
    /// # Errors
    /// As [`Subscription::recv_timeout`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Event, Error> {
        self.listener.take_until(Some(deadline))
    }

    /// Waits for the first event named `name`, discarding others, for at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscription::recv_timeout`].
    pub fn recv_named(&self, name: &str, timeout: Duration) -> Result<Event, Error> {
        let deadline = deadline_after(timeout);
        loop {
            let event = self.listener.take_until(deadline)?;
            if event.name() == name {
                return Ok(event);
            }
        }
    }

    /// A blocking iterator over events; it ends when the session ends or the
    /// subscription is cancelled.
    pub fn iter(&self) -> Iter<'_> {
        Iter { subscription: self }
    }
}

impl<M: Mode> fmt::Debug for Subscription<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("filter", &self.listener.filter)
            .field("capacity", &self.listener.capacity)
            .field("queued", &self.len())
            .field("missed", &self.missed())
            .finish()
    }
}

/// Blocking iterator over a [`Subscription`]'s events; see [`Subscription::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    subscription: &'a Subscription<Blocking>,
}

impl Iterator for Iter<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.subscription.recv().ok()
    }
}

impl<'a> IntoIterator for &'a Subscription<Blocking> {
    type Item = Event;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Cancels a [`Subscription`] from anywhere; see [`Subscription::canceller`].
#[derive(Debug, Clone)]
pub struct SubscriptionCanceller {
    listener: Weak<Listener>,
}

impl SubscriptionCanceller {
    /// Cancels the subscription: pending and later `recv` calls return
    /// [`Error::Cancelled`], and no more events are queued.
    pub fn cancel(&self) {
        if let Some(listener) = self.listener.upgrade() {
            listener.cancel();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Callbacks and the dispatcher thread

/// Identifies a callback registered with `on_event`, to remove it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

type EventCallback = Arc<dyn Fn(&Event) + Send + Sync>;

struct CallbackEntry {
    id: u64,
    name: Option<String>,
    callback: EventCallback,
}

/// Work for the dispatcher thread.
enum Job {
    Event(Event),
    /// An `execute_with_callback` callback, already bound to its result.
    /// The guard is dropped after the callback has run (or panicked and been counted).
    Reply(Box<dyn FnOnce() + Send>, Box<dyn Send>),
}

struct DispatchState {
    jobs: VecDeque<Job>,
    queued_events: usize,
    queued_event_bytes: usize,
    missed_events: u64,
    /// Callbacks that panicked (each was contained; the dispatcher went on).
    panics: u64,
    /// No new work: the dispatcher runs what is queued and ends.
    closed: bool,
    /// The dispatcher thread is running.
    running: bool,
}

/// The dispatcher's queue: reply callbacks are never dropped; events are bounded like a
/// listener's queue (oldest event dropped first).
struct DispatchQueue {
    state: Mutex<DispatchState>,
    cond: Condvar,
    /// Signalled when the dispatcher thread ends.
    ended: Condvar,
    event_capacity: usize,
    event_byte_capacity: usize,
    callbacks: Mutex<Vec<CallbackEntry>>,
}

impl DispatchQueue {
    fn push(&self, job: Job) {
        let mut state = lock(&self.state);
        if state.closed {
            // The dispatcher is ending or gone: an event is dropped (counted); a reply
            // callback runs here so its caller still hears.
            match job {
                Job::Event(_) => state.missed_events += 1,
                Job::Reply(callback, guard) => {
                    drop(state);
                    self.run_guarded(callback);
                    drop(guard);
                }
            }
            return;
        }
        if let Job::Event(event) = &job {
            let size = event.size();
            while state.queued_events >= self.event_capacity
                || (state.queued_events > 0
                    && state.queued_event_bytes + size > self.event_byte_capacity)
            {
                let Some(index) = state.jobs.iter().position(|j| matches!(j, Job::Event(_))) else {
                    break;
                };
                if let Some(Job::Event(oldest)) = state.jobs.remove(index) {
                    state.queued_events -= 1;
                    state.queued_event_bytes -= oldest.size();
                    state.missed_events += 1;
                }
            }
            state.queued_events += 1;
            state.queued_event_bytes += size;
        }
        state.jobs.push_back(job);
        drop(state);
        self.cond.notify_one();
    }

    fn run(&self) {
        loop {
            let job = {
                let mut state = lock(&self.state);
                loop {
                    if let Some(job) = state.jobs.pop_front() {
                        if let Job::Event(event) = &job {
                            state.queued_events -= 1;
                            state.queued_event_bytes -= event.size();
                        }
                        break job;
                    }
                    if state.closed {
                        state.running = false;
                        drop(state);
                        self.ended.notify_all();
                        return;
                    }
                    state = wait(&self.cond, state);
                }
            };
            match job {
                Job::Reply(callback, guard) => {
                    self.run_guarded(callback);
                    drop(guard);
                }
                Job::Event(event) => {
                    let matching: Vec<EventCallback> = lock(&self.callbacks)
                        .iter()
                        .filter(|entry| entry.name.as_deref().is_none_or(|n| n == event.name()))
                        .map(|entry| Arc::clone(&entry.callback))
                        .collect();
                    for callback in matching {
                        self.run_guarded(|| callback(&event));
                    }
                }
            }
        }
    }

    /// Runs a callback, containing and counting a panic so the dispatcher survives it.
    fn run_guarded(&self, callback: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(callback)).is_err() {
            lock(&self.state).panics += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The hub

/// Routes events to listeners and callbacks; one per client, shared by the IO engine and
/// the client handles.
pub(crate) struct EventHub {
    listeners: Mutex<Vec<Weak<Listener>>>,
    default_capacity: usize,
    byte_capacity: usize,
    closed: Mutex<Option<SessionEnd>>,
    queue: Arc<DispatchQueue>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    dispatcher_id: Mutex<Option<ThreadId>>,
    next_callback: AtomicU64,
}

impl EventHub {
    /// A hub whose listeners hold `capacity` events and `byte_capacity` bytes by
    /// default.
    pub(crate) fn new(capacity: usize, byte_capacity: usize) -> Self {
        EventHub {
            listeners: Mutex::new(Vec::new()),
            default_capacity: capacity.max(1),
            byte_capacity,
            closed: Mutex::new(None),
            queue: Arc::new(DispatchQueue {
                state: Mutex::new(DispatchState {
                    jobs: VecDeque::new(),
                    queued_events: 0,
                    queued_event_bytes: 0,
                    missed_events: 0,
                    panics: 0,
                    closed: false,
                    running: false,
                }),
                cond: Condvar::new(),
                ended: Condvar::new(),
                event_capacity: capacity.max(1),
                event_byte_capacity: byte_capacity,
                callbacks: Mutex::new(Vec::new()),
            }),
            dispatcher: Mutex::new(None),
            dispatcher_id: Mutex::new(None),
            next_callback: AtomicU64::new(1),
        }
    }

    /// A new listener (`None`: all events), capacity `capacity` or the default.
    pub(crate) fn listener(
        &self,
        filter: Option<Vec<String>>,
        capacity: Option<usize>,
    ) -> Arc<Listener> {
        let listener = Arc::new(Listener::new(
            filter,
            capacity.unwrap_or(self.default_capacity),
            self.byte_capacity,
        ));
        // Registered under the same lock `close` takes, so a listener is either closed
        // here or by `close`, never missed.
        let closed = lock(&self.closed);
        match *closed {
            Some(end) => listener.close(end),
            None => {
                let mut listeners = lock(&self.listeners);
                listeners.retain(|weak| weak.strong_count() > 0);
                listeners.push(Arc::downgrade(&listener));
            }
        }
        listener
    }

    /// Delivers an event to every listener and callback that wants it.
    pub(crate) fn publish(&self, event: Event) {
        {
            let mut listeners = lock(&self.listeners);
            listeners.retain(|weak| match weak.upgrade() {
                Some(listener) => {
                    if listener.accepts(event.name()) {
                        listener.push(&event);
                    }
                    true
                }
                None => false,
            });
        }
        let wanted = lock(&self.queue.callbacks)
            .iter()
            .any(|entry| entry.name.as_deref().is_none_or(|n| n == event.name()));
        if wanted {
            self.queue.push(Job::Event(event));
        }
    }

    /// Registers a callback for events named `name` (`None`: all events).
    pub(crate) fn on_event(&self, name: Option<String>, callback: EventCallback) -> CallbackId {
        let id = self.next_callback.fetch_add(1, Ordering::Relaxed);
        lock(&self.queue.callbacks).push(CallbackEntry { id, name, callback });
        self.ensure_dispatcher();
        CallbackId(id)
    }

    /// Removes a callback; whether it was registered.
    pub(crate) fn remove_callback(&self, id: CallbackId) -> bool {
        let mut callbacks = lock(&self.queue.callbacks);
        let before = callbacks.len();
        callbacks.retain(|entry| entry.id != id.0);
        callbacks.len() != before
    }

    /// Runs a reply callback on the dispatcher thread.
    pub(crate) fn dispatch_reply(&self, callback: Box<dyn FnOnce() + Send>, guard: Box<dyn Send>) {
        self.ensure_dispatcher();
        self.queue.push(Job::Reply(callback, guard));
    }

    /// Events dropped because callbacks did not keep up (or were still queued when
    /// the session closed).
    pub(crate) fn callback_missed(&self) -> u64 {
        lock(&self.queue.state).missed_events
    }

    /// Callbacks that panicked.
    pub(crate) fn callback_panics(&self) -> u64 {
        lock(&self.queue.state).panics
    }

    fn ensure_dispatcher(&self) {
        let mut dispatcher = lock(&self.dispatcher);
        if dispatcher.is_some() || lock(&self.queue.state).closed {
            return;
        }
        let queue = Arc::clone(&self.queue);
        let spawned = thread::Builder::new()
            .name("qmp-dispatch".into())
            .spawn(move || queue.run());
        match spawned {
            Ok(handle) => {
                lock(&self.queue.state).running = true;
                *lock(&self.dispatcher_id) = Some(handle.thread().id());
                *dispatcher = Some(handle);
            }
            Err(_) => {
                // No thread: callbacks run inline from now on.
                lock(&self.queue.state).closed = true;
            }
        }
    }

    /// The session is over: listeners deliver what they hold, then report `end`.
    pub(crate) fn close(&self, end: impl Into<SessionEnd>) {
        let end = end.into();
        let mut closed = lock(&self.closed);
        if closed.is_none() {
            *closed = Some(end);
        }
        let listeners = core::mem::take(&mut *lock(&self.listeners));
        drop(closed);
        for listener in listeners.iter().filter_map(Weak::upgrade) {
            listener.close(end);
        }
    }

    /// Stops the dispatcher: it runs what is queued and ends. Waits for that at most
    /// `grace` (never on the dispatcher thread itself: the last client handle may be
    /// dropped in a callback); then the events still queued are dropped and counted in
    /// [`EventHub::callback_missed`], and the reply callbacks still queued run on the
    /// dispatcher in the background (their callers are owed a result).
    pub(crate) fn shutdown_dispatcher(&self, grace: Duration) {
        let mut state = lock(&self.queue.state);
        state.closed = true;
        self.queue.cond.notify_all();
        let on_dispatcher = Some(thread::current().id()) == *lock(&self.dispatcher_id);
        let deadline = deadline_after(grace);
        while state.running && !on_dispatcher {
            let Some(deadline) = deadline else {
                state = wait(&self.queue.ended, state);
                continue;
            };
            let (guard, passed) = wait_until(&self.queue.ended, state, deadline);
            state = guard;
            if passed {
                break;
            }
        }
        let before = state.jobs.len();
        state.jobs.retain(|job| matches!(job, Job::Reply(..)));
        let dropped = before - state.jobs.len();
        state.missed_events += dropped as u64;
        state.queued_events = 0;
        state.queued_event_bytes = 0;
        drop(state);
        // Detached if still running: it ends after the reply callbacks.
        drop(lock(&self.dispatcher).take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_core::client::CloseReason;
    use qmp_core::json::JsonStr;
    use std::sync::mpsc;

    fn event(name: &'static str, data: Option<&'static [u8]>) -> Event {
        Event::from_core(&AsyncEvent {
            name: JsonStr::from_escaped(name).unwrap(),
            data: data.map(|d| RawJson::parse(d).unwrap()),
            timestamp: Timestamp {
                seconds: 1,
                microseconds: 2,
            },
        })
    }

    #[test]
    fn events_expose_name_data_and_timestamp() {
        let e = event(
            "JOB_STATUS_CHANGE",
            Some(br#"{"status":"created","id":"j"}"#),
        );
        assert_eq!(e.name(), "JOB_STATUS_CHANGE");
        assert_eq!(e.data_value()["status"], "created");
        assert_eq!(e.data().unwrap().get("id").unwrap().as_bytes(), b"\"j\"");
        assert_eq!(e.timestamp().microseconds, 2);
        let stop = event("STOP", None);
        assert!(stop.data().is_none());
        assert_eq!(stop.data_value(), serde_json::Value::Null);
        assert_eq!(stop.data_as::<Option<u8>>().unwrap(), None);
    }

    #[test]
    fn full_listener_drops_oldest_and_counts() {
        let hub = EventHub::new(3, usize::MAX);
        let sub = Subscription::<crate::Blocking>::new(hub.listener(None, None));
        for name in ["A", "B", "C", "D", "E"] {
            hub.publish(event(name, None));
        }
        assert_eq!(sub.len(), 3);
        assert_eq!(sub.missed(), 2);
        assert_eq!(sub.take_missed(), 2);
        assert_eq!(sub.take_missed(), 0);
        let names: Vec<String> = (0..3)
            .map(|_| sub.recv().unwrap().name().to_owned())
            .collect();
        assert_eq!(names, ["C", "D", "E"]);
        assert!(matches!(
            sub.recv_timeout(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
    }

    #[test]
    fn filters_and_close() {
        let hub = EventHub::new(8, usize::MAX);
        let jobs = Subscription::<crate::Blocking>::new(
            hub.listener(Some(vec!["JOB_STATUS_CHANGE".into()]), None),
        );
        let all = Subscription::<crate::Blocking>::new(hub.listener(None, Some(1)));
        hub.publish(event("STOP", None));
        hub.publish(event("JOB_STATUS_CHANGE", None));
        hub.close(CloseReason::EndOfStream { truncated: false });
        assert_eq!(jobs.recv().unwrap().name(), "JOB_STATUS_CHANGE");
        assert!(matches!(jobs.recv(), Err(Error::Closed(_))));
        assert_eq!(
            all.iter().map(|e| e.name().to_owned()).collect::<Vec<_>>(),
            ["JOB_STATUS_CHANGE"]
        );
        assert_eq!(all.missed(), 1);
        // A listener made after the end reports it at once.
        let late = Subscription::<crate::Blocking>::new(hub.listener(None, None));
        assert!(matches!(late.recv(), Err(Error::Closed(_))));
        hub.close(CloseReason::Local);
        assert!(matches!(late.try_recv(), Err(Error::Closed(_))));
    }

    #[test]
    fn canceller_wakes_a_blocked_receiver() {
        let hub = EventHub::new(8, usize::MAX);
        let sub = Subscription::<crate::Blocking>::new(hub.listener(None, None));
        let canceller = sub.canceller();
        let waiter = thread::spawn(move || sub.recv_timeout(Duration::from_secs(10)));
        thread::sleep(Duration::from_millis(30));
        canceller.cancel();
        assert!(matches!(waiter.join().unwrap(), Err(Error::Cancelled)));
    }

    #[test]
    fn callbacks_run_by_name_on_the_dispatcher_and_survive_panics() {
        let hub = EventHub::new(8, usize::MAX);
        let (tx, rx) = mpsc::channel();
        let tx2 = Mutex::new(tx.clone());
        let only_stop = hub.on_event(
            Some("STOP".into()),
            Arc::new(move |e: &Event| {
                let _ = lock(&tx2).send(format!("stop:{}", e.name()));
            }),
        );
        hub.on_event(None, Arc::new(|_: &Event| panic!("a broken callback")));
        let tx3 = Mutex::new(tx);
        hub.on_event(
            None,
            Arc::new(move |e: &Event| {
                let _ = lock(&tx3).send(format!("any:{}", e.name()));
            }),
        );
        hub.publish(event("STOP", None));
        hub.publish(event("RESUME", None));
        let (reply_tx, reply_rx) = mpsc::channel();
        hub.dispatch_reply(
            Box::new(move || {
                let _ = reply_tx.send(thread::current().name().map(str::to_owned));
            }),
            Box::new(()),
        );
        let got: Vec<String> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(got, ["stop:STOP", "any:STOP", "any:RESUME"]);
        assert_eq!(
            reply_rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap()
                .as_deref(),
            Some("qmp-dispatch")
        );
        assert!(hub.remove_callback(only_stop));
        assert!(!hub.remove_callback(only_stop));
        hub.shutdown_dispatcher(Duration::from_secs(5));
        // After shutdown, reply callbacks still run (inline).
        let (tx, rx) = mpsc::channel();
        hub.dispatch_reply(Box::new(move || tx.send(1).unwrap()), Box::new(()));
        assert_eq!(rx.try_recv().unwrap(), 1);
    }

    #[test]
    fn slow_callbacks_lose_oldest_events_not_replies() {
        let hub = EventHub::new(2, usize::MAX);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate_rx = Mutex::new(gate_rx);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        hub.on_event(
            None,
            Arc::new(move |e: &Event| {
                if e.name() == "FIRST" {
                    let _ = lock(&gate_rx).recv();
                }
                lock(&seen2).push(e.name().to_owned());
            }),
        );
        hub.publish(event("FIRST", None));
        thread::sleep(Duration::from_millis(50)); // the dispatcher is now blocked in FIRST
        let (done_tx, done_rx) = mpsc::channel();
        hub.dispatch_reply(Box::new(move || done_tx.send(()).unwrap()), Box::new(()));
        for name in ["A", "B", "C", "D"] {
            hub.publish(event(name, None));
        }
        gate_tx.send(()).unwrap();
        done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        hub.shutdown_dispatcher(Duration::from_secs(5));
        assert_eq!(*lock(&seen), ["FIRST", "C", "D"]);
        assert_eq!(hub.callback_missed(), 2);
    }
}
