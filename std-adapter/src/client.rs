//! The client: [`Client`] (QMP) and [`GuestAgentClient`] (QGA), blocking or async.
//!
//! One [`Client`] is a cheap handle (`Clone + Send + Sync`) to one session. Behind it
//! runs the one IO engine ([`crate::driver`]): a thread that owns the sans-IO core and
//! drives it over non-blocking descriptors. Callers hand it requests and wait for their
//! result in a slot of their own; callbacks run on another thread, started on first use,
//! so a slow callback never delays a reply.
//!
//! Blocking and async callers share everything but the wait. The mode is a type
//! parameter: `Client` (that is, `Client<Blocking>`) has methods that block the calling
//! thread, `AsyncClient` (`Client<Async>`, feature `tokio`) has the same methods as
//! `async fn`s, and every method that does not wait is written once for both. A
//! [`Pending`] call can be waited on ([`Pending::wait`]) or awaited.
//!
//! ```no_run
//! use std::time::Duration;
//! use qmp_std::qmp_core::commands::QueryVersion;
//! use qmp_std::{Client, ConnectOptions};
//!
//! let client = Client::connect_unix("/run/qemu/qmp.sock", ConnectOptions::new())?;
//! println!("QEMU {:?}", client.version());
//! let reply = client.execute(&QueryVersion)?;
//! println!("package {}", reply.get()?.package);
//! let status = client.execute_value("query-status", serde_json::Value::Null)?;
//! println!("{status}");
//! let jobs = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
//! let event = jobs.recv_timeout(Duration::from_secs(1));
//! # drop(event);
//! # Ok::<(), qmp_std::Error>(())
//! ```

use core::fmt;
use core::future::Future;
use core::hash::BuildHasher;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::collections::hash_map::RandomState;
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command as ProcessCommand, Stdio};
use std::sync::{Arc, Weak};
use std::time::Instant;

use qmp_core::client::{CloseReason, Protocol, Stats};
use qmp_core::commands::Command;
use qmp_core::message::{Capabilities, Version};

use crate::driver::{Driver, Link};
use crate::engine::{
    raw_message_body, typed_body, value_body, Body, Completer, Completion, Control, Engine,
    Request, Shared, Slot,
};
use crate::error::Error;
use crate::events::{CallbackId, Event, Subscription};
use crate::options::{deadline_after, CallOptions, ConnectOptions, ServerInfo};
use crate::reply::{to_raw, to_typed, to_value, Convert, RawReply, Reply};
use crate::transport::Transport;

/// How long `close()` (or dropping the last handle) waits for callbacks that are
/// running or queued before it returns: events still queued then are dropped and
/// counted in [`Client::callback_missed`].
pub const CLOSE_CALLBACK_GRACE: Duration = Duration::from_secs(1);

/// How long past a call's own deadline its waiting caller waits before it gives up by
/// itself (the engine fails the call at the deadline; this only bounds the wait should
/// that ever not happen).
const WAIT_MARGIN: Duration = Duration::from_millis(250);

mod sealed {
    pub trait Sealed {}
}

/// How a [`Client`] waits: [`Blocking`] or `Async` (feature `tokio`).
pub trait Mode: sealed::Sealed + Send + Sync + 'static {}

/// The blocking mode: methods that wait block the calling thread.
#[derive(Debug)]
pub enum Blocking {}

impl sealed::Sealed for Blocking {}
impl Mode for Blocking {}

/// The async mode: methods that wait are `async fn`s (feature `tokio`, which supplies
/// the timers of the waits that have a timeout).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub enum Async {}

#[cfg(feature = "tokio")]
impl sealed::Sealed for Async {}
#[cfg(feature = "tokio")]
impl Mode for Async {}

/// The part of a client that exists once per session; dropping it closes the session.
pub(crate) struct Inner {
    driver: Arc<Driver>,
    pub(crate) shared: Arc<Shared>,
    info: ServerInfo,
    default_timeout: Option<Duration>,
    fd_passing: bool,
}

impl Inner {
    /// Ends the session: everything pending is resolved with [`Error::ClientClosed`] and
    /// the background reader stops (nothing blocks on the peer, so this is quick);
    /// callbacks get [`CLOSE_CALLBACK_GRACE`].
    fn shutdown(&self) {
        self.driver.close();
        self.shared.hub.shutdown_dispatcher(CLOSE_CALLBACK_GRACE);
    }

    /// Queues a request; its result goes to `completion`. Returns its ticket.
    fn enqueue(
        &self,
        body: Body,
        options: CallOptions<'_>,
        deadline: Option<Instant>,
        completion: Completion,
    ) -> Result<u64, Error> {
        if self.shared.close_reason().is_some() {
            return Err(self.shared.end_error());
        }
        let fds = if options.fds.is_empty() {
            Vec::new()
        } else {
            if !self.fd_passing {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "file descriptors can only be passed over a unix socket",
                )));
            }
            options
                .fds
                .iter()
                .map(|fd| fd.try_clone_to_owned())
                .collect::<io::Result<Vec<OwnedFd>>>()?
        };
        let shared = &self.shared;
        let ticket = shared.ticket();
        let request = Request {
            ticket,
            body,
            oob: options.oob,
            fds,
            deadline,
            completer: Completer::new(shared, completion),
        };
        // If the session is over, the engine fails the request with its end.
        self.driver.control(Control::Submit(request));
        Ok(ticket)
    }

    /// Queues a request whose caller waits on a [`Pending`].
    pub(crate) fn send<T>(
        &self,
        body: Result<Body, Error>,
        options: CallOptions<'_>,
        convert: Convert<T>,
    ) -> Pending<T> {
        let slot = Slot::for_call();
        let deadline = self.call_deadline(options);
        let ticket = match body.and_then(|body| {
            self.enqueue(body, options, deadline, Completion::Slot(Arc::clone(&slot)))
        }) {
            Ok(ticket) => ticket,
            Err(error) => {
                slot.fill(Err(error));
                0
            }
        };
        Pending {
            slot,
            ticket,
            deadline,
            driver: Arc::clone(&self.driver),
            convert,
        }
    }

    fn call_deadline(&self, options: CallOptions<'_>) -> Option<Instant> {
        match options.timeout {
            crate::options::Timeout::Default => self.default_timeout.and_then(deadline_after),
            crate::options::Timeout::Never => None,
            crate::options::Timeout::After(timeout) => deadline_after(timeout),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A session starting: the background reader leads, `connect` waits for the session to
/// be ready.
pub(crate) struct Connecting {
    inner: Inner,
    ready: Arc<Slot<ServerInfo>>,
    /// When `connect` gives up (greeting and negotiation included).
    deadline: Option<Instant>,
    waited: Duration,
}

impl Connecting {
    /// Starts the IO engine over `link`.
    pub(crate) fn start(
        link: Link,
        options: &ConnectOptions,
        protocol: Protocol,
    ) -> Result<Self, Error> {
        let shared = Shared::new(options);
        let ready = Slot::new();
        let signal = Arc::clone(&ready);
        let engine = Engine::new(
            Arc::clone(&shared),
            protocol,
            options,
            Box::new(move |result| {
                signal.fill(result);
            }),
        );
        let fd_passing = link.fd_passing();
        // Ids start at a random value below 2^20, so a restarted program does not reuse
        // the ids of the run before (a stale reply could only come from a guest agent's
        // pipe, and the agent's sync discards those anyway). Not higher: QEMU reads a
        // request one byte at a time, and 16-digit ids cost about 15% of the throughput
        // of a sequential `query-version` loop (measured with perf/run.sh).
        let first_id = (BuildHasher::hash_one(&RandomState::new(), 0u8) >> 44).max(1);
        // Guest-agent syncs (ours and the core's own after a timeout) send values from a
        // random seed, so a stale answer to an earlier run's sync is never taken for ours.
        let sync_seed = BuildHasher::hash_one(&RandomState::new(), 1u8);
        let config = options
            .core_config(protocol)
            .with_first_id(first_id)
            .with_sync_seed(sync_seed);
        let sizes = (options.rx_size(), options.tx_size());
        let driver = Driver::start(engine, config, sizes, link)?;
        let waited = options.ready_wait().unwrap_or(Duration::MAX);
        Ok(Connecting {
            inner: Inner {
                driver,
                shared,
                info: ServerInfo::new(protocol),
                default_timeout: options.command_timeout,
                fd_passing,
            },
            ready,
            deadline: options.ready_wait().and_then(deadline_after),
            waited,
        })
    }

    /// Blocks until the session is ready (or failed).
    pub(crate) fn wait(self) -> Result<Arc<Inner>, Error> {
        let outcome = self.ready.take(self.deadline);
        self.finish(outcome)
    }

    /// Waits without blocking: resolves when the session is ready (or failed); the
    /// deadline is the caller's to apply ([`Connecting::deadline`]).
    #[cfg(feature = "tokio")]
    pub(crate) async fn ready(&self) -> Result<ServerInfo, Error> {
        core::future::poll_fn(|context| self.ready.poll_take(context)).await
    }

    /// Lets the tasks that await this session's calls drive its link (the tokio front).
    #[cfg(feature = "tokio")]
    pub(crate) fn let_tasks_lead(&self) {
        self.inner.driver.let_tasks_lead();
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The client, given how the wait ended (`None`: the deadline passed). On an error
    /// the session is closed (`inner` is dropped).
    pub(crate) fn finish(
        mut self,
        outcome: Option<Result<ServerInfo, Error>>,
    ) -> Result<Arc<Inner>, Error> {
        match outcome {
            Some(Ok(info)) => {
                self.inner.info = info;
                Ok(Arc::new(self.inner))
            }
            Some(Err(error)) => Err(error),
            None if self.inner.shared.greeted() => Err(Error::NegotiationStalled {
                waited: self.waited,
            }),
            None if self.inner.info.protocol == Protocol::Qmp => Err(Error::AlreadyConnected),
            None => Err(Error::Timeout),
        }
    }
}

/// A blocking QMP client: [`Connection`] in the [`Blocking`] mode.
pub type Client = Connection<Blocking>;

/// A blocking guest-agent client: [`AgentConnection`] in the [`Blocking`] mode.
pub type GuestAgentClient = AgentConnection<Blocking>;

/// A QMP client; cheap to clone, usable from any number of threads (or tasks).
///
/// Every call waits only for itself; calls from many threads are pipelined on the one
/// connection and each reply reaches exactly the caller that sent the command (the core
/// matches ids; a reply arriving after its command timed out or was cancelled is
/// dropped). The session closes when [`Client::close`] is called or the last clone is
/// dropped; then every waiting call returns [`Error::ClientClosed`]. If the server
/// closes the connection, calls fail with [`Error::Closed`] (or [`Error::Io`] for a
/// reset).
///
/// Deadlines hold whatever the server does: the IO engine never blocks on the socket,
/// so a server that stops reading makes calls time out on time, and `close()` returns
/// at once.
///
/// `M` is the [`Mode`]: [`Client`] (`Connection<Blocking>`) blocks, `AsyncClient`
/// (`Connection<Async>`, feature `tokio`) awaits; both are used through these names.
pub struct Connection<M: Mode = Blocking> {
    pub(crate) inner: Arc<Inner>,
    _mode: PhantomData<fn() -> M>,
}

impl<M: Mode> Clone for Connection<M> {
    fn clone(&self) -> Self {
        Connection::from_inner(Arc::clone(&self.inner))
    }
}

impl<M: Mode> fmt::Debug for Connection<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.inner.info)
            .field("closed", &self.close_reason())
            .finish()
    }
}

/// A [`Connection`] handle that does not keep the session open; see [`Client::downgrade`].
pub struct WeakClient<M: Mode = Blocking> {
    inner: Weak<Inner>,
    _mode: PhantomData<fn() -> M>,
}

impl<M: Mode> Clone for WeakClient<M> {
    fn clone(&self) -> Self {
        WeakClient {
            inner: Weak::clone(&self.inner),
            _mode: PhantomData,
        }
    }
}

impl<M: Mode> WeakClient<M> {
    /// The client, if the session is still open somewhere.
    pub fn upgrade(&self) -> Option<Connection<M>> {
        self.inner.upgrade().map(Connection::from_inner)
    }
}

impl<M: Mode> fmt::Debug for WeakClient<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakClient").finish_non_exhaustive()
    }
}

/// Everything that does not wait: the same for blocking and async clients.
impl<M: Mode> Connection<M> {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Connection {
            inner,
            _mode: PhantomData,
        }
    }

    /// What the server said about itself (version, capabilities, OOB).
    pub fn info(&self) -> &ServerInfo {
        &self.inner.info
    }

    /// The server's QEMU version from the greeting.
    pub fn version(&self) -> Option<Version> {
        self.inner.info.version
    }

    /// The capabilities the server offered.
    pub fn capabilities(&self) -> Option<Capabilities> {
        self.inner.info.capabilities
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.inner.info.oob_enabled
    }

    // ---- commands without waiting ----

    /// Sends a typed command without waiting: the returned [`Pending`] is waited on,
    /// awaited, given a shorter deadline or cancelled (the Go `context` pattern).
    /// Errors found before sending (arguments that cannot be serialized, descriptors on
    /// a transport that cannot pass them, a closed session) come out of the `Pending`.
    pub fn submit<C: Command>(&self, command: &C, options: CallOptions<'_>) -> Pending<Reply<C>> {
        self.inner.send(typed_body(command), options, to_typed::<C>)
    }

    /// [`Client::submit`] for a command by name with `serde_json` arguments
    /// (`Value::Null`: none); the `Pending` yields the `return` value.
    /// [`Error::InvalidRequest`] if `arguments` is neither an object nor null.
    pub fn submit_value(
        &self,
        name: &str,
        arguments: &serde_json::Value,
        options: CallOptions<'_>,
    ) -> Pending<serde_json::Value> {
        self.inner
            .send(value_body(name, arguments), options, to_value)
    }

    /// [`Client::submit`] for a command by name with its arguments as JSON text (`None`:
    /// none; otherwise one object), sent as written; the `Pending` yields the reply.
    /// Text that is not one object QEMU would accept (see the core's
    /// [`execute_json`](qmp_core::client::Client::execute_json)) fails with
    /// [`Error::Execute`].
    pub fn submit_json(
        &self,
        name: &str,
        arguments: Option<&[u8]>,
        options: CallOptions<'_>,
    ) -> Pending<RawReply> {
        let body = Body::Json {
            name: name.to_owned(),
            arguments: arguments.map(<[u8]>::to_vec),
        };
        self.inner.send(Ok(body), options, to_raw)
    }

    /// [`Client::submit`] for a hand-built message (`{"execute": NAME, "arguments":
    /// {...}}`, or `"exec-oob"`). The client assigns the id (an `id` in the message is
    /// ignored) so the reply can be matched; the name and arguments are sent as
    /// written. `options.oob` is ignored: the message says `execute` or `exec-oob`.
    /// [`Error::InvalidRequest`] if the message is not a QMP command.
    pub fn submit_message(&self, message: &[u8], options: CallOptions<'_>) -> Pending<RawReply> {
        match raw_message_body(message) {
            Ok((body, oob)) => self
                .inner
                .send(Ok(body), CallOptions { oob, ..options }, to_raw),
            Err(error) => self.inner.send(Err(error), options, to_raw),
        }
    }

    /// Runs a typed command; `callback` runs with the result on the callback thread when
    /// the reply comes, without waiting here. `wait_idle` waits for
    /// callbacks too; a callback that panics is counted ([`Client::callback_panics`])
    /// and still counts as done.
    ///
    /// # Errors
    /// Only errors found before sending (see [`Client::submit`]); then `callback` is
    /// not called.
    pub fn execute_with_callback<C, F>(&self, command: &C, callback: F) -> Result<(), Error>
    where
        C: Command + 'static,
        F: FnOnce(Result<Reply<C>, Error>) + Send + 'static,
    {
        let body = typed_body(command)?;
        let completion = Completion::Callback(Box::new(move |result: Result<RawReply, Error>| {
            callback(result.map(Reply::from_raw));
        }));
        let options = CallOptions::new();
        let deadline = self.inner.call_deadline(options);
        self.inner.enqueue(body, options, deadline, completion)?;
        // Nobody waits on this call: the reader must lead.
        self.inner.driver.ensure_leader();
        Ok(())
    }

    // ---- events ----

    /// A listener for every event, bounded by [`ConnectOptions::event_queue_size`] and
    /// [`ConnectOptions::event_queue_bytes`].
    pub fn subscribe(&self) -> Subscription<M> {
        Subscription::new(self.inner.shared.hub.listener(None, None))
    }

    /// A listener for the events named in `names` only.
    pub fn subscribe_filtered(&self, names: &[&str]) -> Subscription<M> {
        let names = names.iter().map(|name| (*name).to_owned()).collect();
        Subscription::new(self.inner.shared.hub.listener(Some(names), None))
    }

    /// A listener with its own queue capacity in events (`names`: `None` for every
    /// event).
    pub fn subscribe_with_capacity(
        &self,
        names: Option<&[&str]>,
        capacity: usize,
    ) -> Subscription<M> {
        let names = names.map(|names| names.iter().map(|name| (*name).to_owned()).collect());
        Subscription::new(self.inner.shared.hub.listener(names, Some(capacity)))
    }

    /// Runs `callback` on the callback thread for every event named `name`.
    pub fn on_event(
        &self,
        name: &str,
        callback: impl Fn(&Event) + Send + Sync + 'static,
    ) -> CallbackId {
        self.inner
            .shared
            .hub
            .on_event(Some(name.to_owned()), Arc::new(callback))
    }

    /// Runs `callback` on the callback thread for every event.
    pub fn on_any_event(&self, callback: impl Fn(&Event) + Send + Sync + 'static) -> CallbackId {
        self.inner.shared.hub.on_event(None, Arc::new(callback))
    }

    /// Removes a callback; whether it was registered.
    pub fn remove_callback(&self, id: CallbackId) -> bool {
        self.inner.shared.hub.remove_callback(id)
    }

    /// Events the callbacks lost: because they did not keep up (the callback queue is
    /// bounded like a listener's and drops the oldest), or because they were still
    /// queued [`CLOSE_CALLBACK_GRACE`] after `close()`.
    pub fn callback_missed(&self) -> u64 {
        self.inner.shared.hub.callback_missed()
    }

    /// Callbacks (event or `execute_with_callback`) that panicked. Each panic is contained: the
    /// callback thread goes on, and the call counts as done.
    pub fn callback_panics(&self) -> u64 {
        self.inner.shared.hub.callback_panics()
    }

    // ---- session ----

    /// Calls submitted and not yet answered (`execute_with_callback` callbacks count until
    /// they have run).
    pub fn outstanding(&self) -> u64 {
        self.inner.shared.outstanding()
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.shared.close_reason()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.close_reason().is_some()
    }

    /// The core's diagnostic counters (late and unmatched replies, id-less errors,
    /// malformed and oversize messages, events).
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// A handle that does not keep the session open.
    pub fn downgrade(&self) -> WeakClient<M> {
        WeakClient {
            inner: Arc::downgrade(&self.inner),
            _mode: PhantomData,
        }
    }

    /// Closes the session for every clone, at once whatever the server does: waiting
    /// calls return [`Error::ClientClosed`], later ones too; listeners end; the
    /// background reader ends. Callbacks get at most [`CLOSE_CALLBACK_GRACE`] to finish; events
    /// still queued for them then are dropped and counted in
    /// [`Client::callback_missed`]. Idempotent; never blocks longer than that grace.
    pub fn close(&self) {
        self.inner.shutdown();
    }

    /// The same session as a client of another mode (e.g. a blocking handle for a
    /// thread of an async program).
    pub fn with_mode<N: Mode>(&self) -> Connection<N> {
        Connection::from_inner(Arc::clone(&self.inner))
    }

    pub(crate) fn sync_body(&self) -> Pending<RawReply> {
        self.inner.send(Ok(Body::Sync), CallOptions::new(), to_raw)
    }
}

/// Starts the IO engine over a transport.
pub(crate) fn start_transport(
    transport: Transport,
    options: &ConnectOptions,
    protocol: Protocol,
) -> Result<Connecting, Error> {
    Connecting::start(transport.into_link()?, options, protocol)
}

/// Starts the IO engine over any two halves of a byte stream (bridged).
pub(crate) fn start_io(
    reader: impl Read + Send + 'static,
    writer: impl Write + Send + 'static,
    options: &ConnectOptions,
    protocol: Protocol,
) -> Result<Connecting, Error> {
    Connecting::start(Link::bridge(reader, writer)?, options, protocol)
}

/// Waiting methods, blocking the calling thread.
impl Connection<Blocking> {
    /// Connects to a QMP monitor on the Unix socket at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be reached; [`Error::AlreadyConnected`] if no
    /// greeting comes within [`ConnectOptions::greeting_timeout`] (another client holds
    /// the monitor); [`Error::NegotiationStalled`] if the greeting came but negotiation
    /// did not finish in time; [`Error::Closed`] if the server closes or breaks the
    /// protocol during negotiation.
    pub fn connect_unix(path: impl AsRef<Path>, options: ConnectOptions) -> Result<Self, Error> {
        let transport = Transport::connect_unix(path, options.connect_timeout)?;
        Self::connect(transport, options)
    }

    /// Connects to a QMP monitor over TCP.
    ///
    /// # Errors
    /// As [`Client::connect_unix`].
    pub fn connect_tcp(addr: impl ToSocketAddrs, options: ConnectOptions) -> Result<Self, Error> {
        let transport = Transport::connect_tcp(addr, options.connect_timeout)?;
        Self::connect(transport, options)
    }

    /// Starts a QMP session over a connected Unix socket (fd passing works).
    ///
    /// # Errors
    /// As [`Client::connect_unix`].
    pub fn from_unix_stream(stream: UnixStream, options: ConnectOptions) -> Result<Self, Error> {
        Self::connect(Transport::from_unix_stream(stream)?, options)
    }

    /// Spawns `command` with piped stdin/stdout and talks QMP over them; the command
    /// must serve a monitor on stdio (`qemu-system-x86_64 ... -qmp stdio`, or
    /// `qemu-storage-daemon --chardev stdio,id=m --monitor chardev=m`). The child is
    /// returned for the caller to wait on or kill.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be spawned; otherwise as [`Client::connect_unix`] (the
    /// child is killed if the session cannot start).
    pub fn spawn(
        command: &mut ProcessCommand,
        options: ConnectOptions,
    ) -> Result<(Self, Child), Error> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let connected = Transport::from_child(&mut child)
            .map_err(Error::Io)
            .and_then(|t| Self::connect(t, options));
        match connected {
            Ok(client) => Ok((client, child)),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(error)
            }
        }
    }

    /// Starts a QMP session over any connected [`Transport`] with a descriptor (a
    /// transport made with [`Transport::from_stream`] has none: use
    /// [`Client::connect_io`]).
    ///
    /// # Errors
    /// As [`Client::connect_unix`].
    pub fn connect(transport: Transport, options: ConnectOptions) -> Result<Self, Error> {
        start_transport(transport, &options, Protocol::Qmp)?
            .wait()
            .map(Connection::from_inner)
    }

    /// Starts a QMP session over any byte stream given as its two halves (e.g. the two
    /// ends of a TLS session). Two threads copy between them and the IO engine; one
    /// blocked in `reader.read` when the session closes ends when that read returns.
    ///
    /// # Errors
    /// As [`Client::connect_unix`].
    pub fn connect_io(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        start_io(reader, writer, &options, Protocol::Qmp)?
            .wait()
            .map(Connection::from_inner)
    }

    /// Runs a typed command and waits for its reply (deadline:
    /// [`ConnectOptions::command_timeout`]).
    ///
    /// # Errors
    /// [`Error::Qmp`] for an error reply, [`Error::Timeout`], [`Error::Closed`],
    /// [`Error::ClientClosed`], [`Error::Execute`] when the core refuses it,
    /// [`Error::Json`] when the arguments cannot be serialized.
    pub fn execute<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new()).wait()
    }

    /// [`Client::execute`] with its own deadline (any `Duration`; too large means none).
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn execute_timeout<C: Command>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().timeout(timeout))
            .wait()
    }

    /// Runs a typed command out of band (`exec-oob`); needs
    /// [`ConnectOptions::enable_oob`] and a command marked `allow-oob`.
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::Execute`] when OOB is not possible.
    pub fn execute_oob<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().oob()).wait()
    }

    /// Runs a typed command with file descriptors attached to its own message
    /// (`SCM_RIGHTS`), for `add-fd` and `getfd`. The descriptors are duplicated; the
    /// caller keeps its own. Unix sockets only.
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::Io`] (`Unsupported`) on other transports.
    pub fn execute_with_fds<C: Command>(
        &self,
        command: &C,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().fds(fds)).wait()
    }

    /// Runs a typed command and maps its borrowed, typed response to an owned value.
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::Decode`] when the reply does not decode.
    pub fn call<C, R, F>(&self, command: &C, map: F) -> Result<R, Error>
    where
        C: Command,
        F: for<'r> FnOnce(C::Response<'r>) -> R,
    {
        self.inner
            .send(typed_body(command), CallOptions::new(), to_raw)
            .wait_map(|raw| Ok(map(C::decode_response(raw.raw())?)))
    }

    /// Runs a command by name with `serde_json` arguments (`Value::Null`: no arguments)
    /// and returns the `return` value.
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::InvalidRequest`] if `arguments` is neither an
    /// object nor null.
    pub fn execute_value(
        &self,
        name: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        self.submit_value(name, &arguments, CallOptions::new())
            .wait()
    }

    /// Runs a command by name with its arguments as JSON text (see
    /// [`Client::submit_json`]) and waits for its reply.
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::Execute`] if `arguments` is not one JSON object
    /// QEMU would accept.
    pub fn execute_json(&self, name: &str, arguments: Option<&[u8]>) -> Result<RawReply, Error> {
        self.submit_json(name, arguments, CallOptions::new()).wait()
    }

    /// Sends a hand-built message (see [`Client::submit_message`]) and waits for its
    /// reply.
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::InvalidRequest`] if the message is not a QMP
    /// command.
    pub fn execute_message(&self, message: &[u8]) -> Result<RawReply, Error> {
        self.submit_message(message, CallOptions::new()).wait()
    }

    /// Waits until no call is outstanding (every reply delivered, every async callback
    /// run), at most `timeout` (any `Duration`; too large means no limit).
    ///
    /// # Errors
    /// [`Error::Timeout`] if calls are still outstanding then.
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), Error> {
        self.inner.shared.wait_idle(deadline_after(timeout))
    }
}

/// A call in flight: wait for it (blocking, [`Pending::wait`]), await it, or cancel it.
///
/// Waiting is bounded by the call's own deadline: the IO engine fails the call with
/// [`Error::Timeout`] when it passes. Dropping a `Pending` without waiting lets the
/// command run; its reply is discarded.
#[must_use = "a Pending does nothing unless waited on; drop it to discard the reply"]
pub struct Pending<T> {
    slot: Arc<Slot<RawReply>>,
    ticket: u64,
    deadline: Option<Instant>,
    driver: Arc<Driver>,
    convert: Convert<T>,
}

impl<T> Pending<T> {
    /// Blocks until the reply comes or the call's deadline passes.
    ///
    /// # Errors
    /// See [`Client::execute`].
    pub fn wait(self) -> Result<T, Error> {
        let backstop = self
            .deadline
            .and_then(|deadline| deadline.checked_add(WAIT_MARGIN));
        self.wait_until(backstop)
    }

    /// Blocks at most `timeout` (or less if the call's own deadline comes first); if
    /// the reply has not come by then, the command is cancelled (its reply will be
    /// dropped) and [`Error::Timeout`] is returned.
    ///
    /// # Errors
    /// As [`Pending::wait`], or [`Error::Timeout`].
    pub fn wait_timeout(self, timeout: Duration) -> Result<T, Error> {
        match deadline_after(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            None => self.wait(),
        }
    }

    /// [`Pending::wait_timeout`] with an absolute deadline.
    ///
    /// # Errors
    /// As [`Pending::wait_timeout`].
    pub fn wait_deadline(self, deadline: Instant) -> Result<T, Error> {
        let backstop = self
            .deadline
            .and_then(|own| own.checked_add(WAIT_MARGIN))
            .map_or(deadline, |own| own.min(deadline));
        self.wait_until(Some(backstop))
    }

    fn wait_until(self, deadline: Option<Instant>) -> Result<T, Error> {
        match self.driver.wait(&self.slot, deadline) {
            Some(result) => result.and_then(self.convert),
            None => {
                self.canceller().cancel_with(Error::Timeout);
                Err(Error::Timeout)
            }
        }
    }

    /// Whether the reply (or the failure) is there, so [`Pending::wait`] returns at once.
    pub fn is_ready(&self) -> bool {
        self.slot.is_filled()
    }

    /// Gives up on the call: the command may still run on the server, its reply is
    /// dropped.
    pub fn cancel(self) {
        self.canceller().cancel();
    }

    /// A handle that cancels this call from another thread; a wait in progress returns
    /// [`Error::Cancelled`] at once.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            slot: Arc::downgrade(&self.slot),
            ticket: self.ticket,
            driver: Arc::downgrade(&self.driver),
        }
    }
}

impl Pending<RawReply> {
    /// [`Pending::wait`], then `map` reads the reply in place; its buffer goes back to
    /// the call's slot, so this thread's next call copies its reply into the same memory.
    pub(crate) fn wait_map<R>(
        self,
        map: impl FnOnce(&RawReply) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let slot = Arc::clone(&self.slot);
        let reply = self.wait()?;
        let mapped = map(&reply);
        slot.give_back(reply);
        mapped
    }

    /// [`Pending::wait_map`], awaiting the reply.
    #[cfg(feature = "tokio")]
    pub(crate) async fn map<R>(
        self,
        map: impl FnOnce(&RawReply) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let slot = Arc::clone(&self.slot);
        let reply = self.await?;
        let mapped = map(&reply);
        slot.give_back(reply);
        mapped
    }
}

/// Awaiting a `Pending` waits for the reply without blocking the thread (any executor;
/// the IO engine wakes the task).
impl<T> Future for Pending<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let convert = self.convert;
        self.driver
            .poll_wait(&self.slot, self.ticket, context)
            .map(|result| result.and_then(convert))
    }
}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("ticket", &self.ticket)
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// Cancels one call from anywhere; see [`Pending::canceller`].
#[derive(Clone)]
pub struct Canceller {
    slot: Weak<Slot<RawReply>>,
    ticket: u64,
    driver: Weak<Driver>,
}

impl Canceller {
    /// Cancels the call: its waiter gets [`Error::Cancelled`] now; the core forgets the
    /// command (a reply arriving later is dropped). No effect once the reply is in.
    pub fn cancel(&self) {
        self.cancel_with(Error::Cancelled);
    }

    fn cancel_with(&self, error: Error) {
        if let Some(slot) = self.slot.upgrade() {
            slot.fill(Err(error));
        }
        if let Some(driver) = self.driver.upgrade() {
            driver.control(Control::Cancel(self.ticket));
        }
    }
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller")
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// A client for the QEMU guest agent, over its Unix socket or a serial device; used as
/// [`GuestAgentClient`] (blocking) or `AsyncGuestAgentClient` (feature `tokio`).
///
/// The agent has no greeting and its parser may hold half a request from an earlier
/// client, so the session starts with `0xFF` + `guest-sync-delimited` carrying a random
/// id, and synchronises again by itself after any command times out. Its methods are
/// those of [`Client`] that mean something to an agent (`execute`, `call`,
/// `execute_value`, `execute_message`, `submit`, ...); QMP-only ones (events, OOB, fd
/// passing, the greeting's version) are not offered. Code written once for both kinds
/// of session can take the session as a [`Client`], explicitly: [`AgentConnection::client`].
///
/// ```no_run
/// use qmp_std::{ConnectOptions, GuestAgentClient};
///
/// let agent = GuestAgentClient::connect_unix("/run/qga.sock", ConnectOptions::new())?;
/// let info = agent.execute_value("guest-info", serde_json::Value::Null)?;
/// println!("agent {}", info["version"]);
/// # Ok::<(), qmp_std::Error>(())
/// ```
pub struct AgentConnection<M: Mode = Blocking> {
    pub(crate) client: Connection<M>,
}

impl<M: Mode> Clone for AgentConnection<M> {
    fn clone(&self) -> Self {
        AgentConnection {
            client: self.client.clone(),
        }
    }
}

impl<M: Mode> fmt::Debug for AgentConnection<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConnection")
            .field("client", &self.client)
            .finish()
    }
}

/// Everything that does not wait: the same for blocking and async agent clients.
impl<M: Mode> AgentConnection<M> {
    /// The same session as a [`Client`] (of the same mode), for code written once for
    /// both kinds of session. Its QMP-only methods have nothing to act on here: the agent
    /// sends no events and has no OOB, fd passing or greeting.
    pub fn client(&self) -> &Connection<M> {
        &self.client
    }

    /// What the session knows of the agent (no version or capabilities: the agent has
    /// no greeting).
    pub fn info(&self) -> &ServerInfo {
        self.client.info()
    }

    /// Sends a typed command without waiting; see [`Client::submit`].
    pub fn submit<C: Command>(&self, command: &C, options: CallOptions<'_>) -> Pending<Reply<C>> {
        self.client.submit(command, options)
    }

    /// Sends a command by name with `serde_json` arguments without waiting; see
    /// [`Client::submit_value`].
    pub fn submit_value(
        &self,
        name: &str,
        arguments: &serde_json::Value,
        options: CallOptions<'_>,
    ) -> Pending<serde_json::Value> {
        self.client.submit_value(name, arguments, options)
    }

    /// Sends a command by name with JSON-text arguments without waiting; see
    /// [`Client::submit_json`].
    pub fn submit_json(
        &self,
        name: &str,
        arguments: Option<&[u8]>,
        options: CallOptions<'_>,
    ) -> Pending<RawReply> {
        self.client.submit_json(name, arguments, options)
    }

    /// Sends a hand-built message without waiting; see [`Client::submit_message`].
    pub fn submit_message(&self, message: &[u8], options: CallOptions<'_>) -> Pending<RawReply> {
        self.client.submit_message(message, options)
    }

    /// Runs a typed command, `callback` taking the result; see [`Client::execute_with_callback`].
    ///
    /// # Errors
    /// As [`Client::execute_with_callback`].
    pub fn execute_with_callback<C, F>(&self, command: &C, callback: F) -> Result<(), Error>
    where
        C: Command + 'static,
        F: FnOnce(Result<Reply<C>, Error>) + Send + 'static,
    {
        self.client.execute_with_callback(command, callback)
    }

    /// `execute_with_callback` callbacks that panicked; see [`Client::callback_panics`].
    pub fn callback_panics(&self) -> u64 {
        self.client.callback_panics()
    }

    /// Calls submitted and not yet answered; see [`Client::outstanding`].
    pub fn outstanding(&self) -> u64 {
        self.client.outstanding()
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.client.close_reason()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The core's diagnostic counters; see [`Client::stats`].
    pub fn stats(&self) -> Stats {
        self.client.stats()
    }

    /// Closes the session for every clone; see [`Client::close`].
    pub fn close(&self) {
        self.client.close();
    }

    /// The same session as an agent client of another mode.
    pub fn with_mode<N: Mode>(&self) -> AgentConnection<N> {
        AgentConnection {
            client: self.client.with_mode(),
        }
    }
}

/// The sync's answer: the value the agent echoed.
pub(crate) fn sync_value(reply: &RawReply) -> Result<u64, Error> {
    reply
        .raw()
        .as_u64()
        .ok_or_else(|| Error::InvalidRequest("sync reply is not a number".into()))
}

impl AgentConnection<Blocking> {
    /// Connects to an agent listening on a Unix socket (`qemu-ga -m unix-listen`, or the
    /// host side of a virtio-serial chardev).
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be reached; [`Error::Timeout`] if the agent
    /// does not answer the sync within [`ConnectOptions::greeting_timeout`].
    pub fn connect_unix(path: impl AsRef<Path>, options: ConnectOptions) -> Result<Self, Error> {
        let transport = Transport::connect_unix(path, options.connect_timeout)?;
        Self::connect(transport, options)
    }

    /// Opens a serial device or pty connected to the agent.
    ///
    /// # Errors
    /// As [`GuestAgentClient::connect_unix`].
    pub fn open_serial(path: impl AsRef<Path>, options: ConnectOptions) -> Result<Self, Error> {
        let transport = Transport::open_device(path)?;
        Self::connect(transport, options)
    }

    /// Starts a guest-agent session over any transport with a descriptor.
    ///
    /// # Errors
    /// As [`GuestAgentClient::connect_unix`].
    pub fn connect(transport: Transport, options: ConnectOptions) -> Result<Self, Error> {
        let inner = start_transport(transport, &options, Protocol::GuestAgent)?.wait()?;
        Ok(AgentConnection {
            client: Connection::from_inner(inner),
        })
    }

    /// Starts a guest-agent session over any byte stream given as its two halves; see
    /// [`Client::connect_io`].
    ///
    /// # Errors
    /// As [`GuestAgentClient::connect_unix`].
    pub fn connect_io(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let inner = start_io(reader, writer, &options, Protocol::GuestAgent)?.wait()?;
        Ok(AgentConnection {
            client: Connection::from_inner(inner),
        })
    }

    /// Synchronises again (`0xFF` + `guest-sync-delimited` with a fresh random id) and
    /// waits for the agent's answer; commands sent meanwhile wait behind it.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the agent does not answer in time; as [`Client::execute`].
    pub fn sync(&self) -> Result<u64, Error> {
        sync_value(&self.client.sync_body().wait()?)
    }

    /// Runs a typed command and waits for its reply; see [`Client::execute`].
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn execute<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.client.execute(command)
    }

    /// [`GuestAgentClient::execute`] with its own deadline.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn execute_timeout<C: Command>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<Reply<C>, Error> {
        self.client.execute_timeout(command, timeout)
    }

    /// Runs a typed command and maps its borrowed, typed response to an owned value.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn call<C, R, F>(&self, command: &C, map: F) -> Result<R, Error>
    where
        C: Command,
        F: for<'r> FnOnce(C::Response<'r>) -> R,
    {
        self.client.call(command, map)
    }

    /// Runs a command by name with `serde_json` arguments; see [`Client::execute_value`].
    ///
    /// # Errors
    /// As [`Client::execute_value`].
    pub fn execute_value(
        &self,
        name: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        self.client.execute_value(name, arguments)
    }

    /// Runs a command by name with JSON-text arguments; see [`Client::execute_json`].
    ///
    /// # Errors
    /// As [`Client::execute_json`].
    pub fn execute_json(&self, name: &str, arguments: Option<&[u8]>) -> Result<RawReply, Error> {
        self.client.execute_json(name, arguments)
    }

    /// Sends a hand-built message and waits for its reply; see [`Client::execute_message`].
    ///
    /// # Errors
    /// As [`Client::execute_message`].
    pub fn execute_message(&self, message: &[u8]) -> Result<RawReply, Error> {
        self.client.execute_message(message)
    }

    /// Waits until no call is outstanding; see [`Client::wait_idle`].
    ///
    /// # Errors
    /// [`Error::Timeout`] if calls are still outstanding then.
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), Error> {
        self.client.wait_idle(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn handles_cross_threads() {
        assert_shareable::<Client>();
        assert_shareable::<GuestAgentClient>();
        assert_shareable::<WeakClient>();
        assert_shareable::<Canceller>();
        assert_send::<Pending<Reply<qmp_core::commands::QueryVersion>>>();
        assert_send::<Subscription>();
    }

    #[test]
    fn a_custom_stream_transport_needs_connect_io() {
        let transport = Transport::from_stream(std::io::Cursor::new(Vec::new()));
        let error = Client::connect(transport, ConnectOptions::new()).unwrap_err();
        match error {
            Error::Io(error) => {
                assert_eq!(error.kind(), io::ErrorKind::Unsupported);
                assert!(error.to_string().contains("connect_io"));
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn a_server_that_closes_at_once_fails_the_connect() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let started = Instant::now();
        let error = Client::from_unix_stream(ours, ConnectOptions::new()).unwrap_err();
        assert!(
            matches!(
                error,
                Error::Closed(CloseReason::EndOfStream { truncated: false })
            ),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
