//! The blocking client: [`Client`] (QMP) and [`GuestAgentClient`] (QGA).
//!
//! One [`Client`] is a cheap handle (`Clone + Send + Sync`) to one session. Behind it runs
//! the IO thread that owns the sans-IO core (it borrows its buffers, so it lives there as
//! a local): it waits in `poll(2)` on the transport and on an eventfd that callers signal
//! while it sleeps, reads straight into the core's receive buffer, feeds the core the
//! callers' requests and the passage of time, writes what it wants sent, and routes what
//! it reports: replies to the waiting caller, events to listeners, the end of the session
//! to everyone. A stream without a descriptor ([`Client::connect_io`]) gets a second
//! thread that only reads it into recycled chunks for the IO thread. Callbacks run on
//! another thread, started on first use, so a slow callback never delays a reply.
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
use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command as ProcessCommand, Stdio};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use qmp_core::client::{CloseReason, Protocol, Stats};
use qmp_core::commands::Command;
use qmp_core::message::{Capabilities, Version};

use crate::engine::{
    raw_message_body, typed_body, value_body, Body, Completer, Completion, Control, Core, Engine,
    Request, Shared, Slot,
};
use crate::error::Error;
use crate::events::{lock, CallbackId, Event, Subscription};
use crate::options::{CallOptions, ConnectOptions, ServerInfo, Timeout};
use crate::reply::{to_raw, to_typed, to_value, Convert, RawReply, Reply};
use crate::transport::Transport;
use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// Size of each chunk the reader thread reads into.
const CHUNK_SIZE: usize = 64 * 1024;
/// Chunks in circulation between the reader and the IO thread: the reader waits for a
/// free one, so a slow IO thread bounds memory instead of queueing without limit.
const CHUNKS: usize = 4;
/// Requests the IO thread takes before writing what they produced (batches pipelined
/// requests into few writes without starving the socket).
const CONTROL_BATCH: usize = 256;

/// What the IO thread waits for.
enum Input {
    Data(Vec<u8>, usize),
    Eof,
    Control(Control),
}

/// Wakes the IO thread of a polled session (see [`run_polled_io`]) when it sleeps in
/// `poll(2)`: a request sent while it works is picked up without a system call.
struct IoWaker {
    /// Set by the IO thread just before it sleeps, cleared by whoever wakes it.
    sleeping: AtomicBool,
    /// An eventfd the IO thread polls beside the transport.
    event: OwnedFd,
}

impl IoWaker {
    fn new() -> io::Result<Arc<Self>> {
        let event = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        Ok(Arc::new(IoWaker {
            sleeping: AtomicBool::new(false),
            event,
        }))
    }

    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let _ = rustix::io::write(&self.event, &1u64.to_ne_bytes());
        }
    }

    /// Clears a wake-up that was delivered.
    fn reset(&self) {
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&self.event, &mut count);
    }
}

/// How callers hand inputs to the IO thread: the channel, plus a wake-up for an IO
/// thread that polls the transport instead of waiting on the channel.
#[derive(Clone)]
struct ControlSender {
    inputs: Sender<Input>,
    waker: Option<Arc<IoWaker>>,
}

impl ControlSender {
    /// Hands `input` over. If the IO thread is gone, the input is dropped here, and a
    /// request's completer fails it with the session's end.
    fn send(&self, input: Input) {
        let _ = self.inputs.send(input);
        if let Some(waker) = &self.waker {
            waker.wake();
        }
    }
}

/// The read half the reader thread owns.
enum ReadHalf {
    Transport(Transport),
    Plain(Box<dyn Read + Send>),
}

impl ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Transport(transport) => transport.read_with_deadline(buf, None),
            ReadHalf::Plain(reader) => loop {
                match reader.read(buf) {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    other => return other,
                }
            },
        }
    }
}

/// The write half the IO thread owns.
enum WriteHalf {
    Transport(Transport),
    Plain(Box<dyn Write + Send>),
}

impl WriteHalf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Transport(transport) => transport.write(bytes),
            WriteHalf::Plain(writer) => writer.write(bytes),
        }
    }

    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        match self {
            WriteHalf::Transport(transport) => transport.send_with_fds(bytes, fds),
            WriteHalf::Plain(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "file descriptors can only be passed over a unix socket",
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Transport(transport) => transport.flush(),
            WriteHalf::Plain(writer) => writer.flush(),
        }
    }
}

/// Writes what the core wants sent; `fds` ride on the first bytes (one command's
/// message, see [`Engine::pump`]). Returns whether anything was written.
fn transmit(
    core: &mut Core<'_>,
    writer: &mut WriteHalf,
    fds: Option<Vec<OwnedFd>>,
) -> io::Result<bool> {
    let mut wrote = false;
    if let Some(fds) = fds {
        let bytes = core.poll_transmit().unwrap_or_default();
        let len = bytes.len();
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        writer.send_with_fds(bytes, &borrowed)?;
        core.mark_transmitted(len);
        wrote = true;
    }
    while let Some(bytes) = core.poll_transmit() {
        let n = match writer.write(bytes) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "peer took no bytes",
                ))
            }
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        core.mark_transmitted(n);
        wrote = true;
    }
    if wrote {
        writer.flush()?;
    }
    Ok(wrote)
}

/// The IO thread: owns the core and its buffers.
/// Pumps the engine and writes until nothing more is to be written (descriptor-carrying
/// commands go one at a time, after everything before them). After a failed write the
/// peer is gone: what it sent before is still delivered, then everything waiting fails
/// with the end of the stream.
fn pump_and_transmit(
    engine: &mut Engine,
    core: &mut Core<'_>,
    writer: &mut WriteHalf,
    write_failed: &mut bool,
) {
    loop {
        let fds = engine.pump(core);
        let mut more = fds.is_some();
        if !*write_failed {
            match transmit(core, writer, fds) {
                // Writing made room in the transmit buffer: waiting requests may fit.
                Ok(wrote) => more |= wrote && engine.has_backlog(),
                Err(_) => {
                    *write_failed = true;
                    engine.on_eof(core);
                }
            }
        }
        if !more {
            return;
        }
    }
}

fn run_io(
    mut engine: Engine,
    config: qmp_core::client::Config,
    rx_size: usize,
    tx_size: usize,
    mut writer: WriteHalf,
    inputs: Receiver<Input>,
    free_chunks: Sender<Vec<u8>>,
) {
    let mut rx = vec![0u8; rx_size];
    let mut tx = vec![0u8; tx_size];
    let mut core = Core::new(config, engine.now(), &mut rx, &mut tx);
    engine.start();
    let mut write_failed = false;
    'session: loop {
        pump_and_transmit(&mut engine, &mut core, &mut writer, &mut write_failed);
        if engine.is_finished() {
            break;
        }
        let input = match engine.next_deadline(&core) {
            Some(deadline) => {
                match inputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(input) => input,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match inputs.recv() {
                Ok(input) => input,
                Err(_) => break,
            },
        };
        // Consecutive requests are taken in one go, so pipelined calls leave in few
        // writes; received data is handed over at once so replies are never delayed.
        let mut next = Some(input);
        let mut handled = 0;
        while let Some(input) = next.take() {
            let batchable = matches!(input, Input::Control(_));
            match input {
                Input::Data(chunk, len) => {
                    engine.on_input(&mut core, chunk.get(..len).unwrap_or_default());
                    let _ = free_chunks.send(chunk);
                }
                Input::Eof => engine.on_eof(&mut core),
                Input::Control(control) => engine.control(&mut core, control),
            }
            if engine.is_finished() {
                break 'session;
            }
            handled += 1;
            if batchable && handled < CONTROL_BATCH {
                next = inputs.try_recv().ok();
            }
        }
    }
    engine.shutdown(&mut core);
    // Requests still in the channel are dropped here; their completers fail them.
    drop(inputs);
}

/// The reader thread: reads chunks and hands them to the IO thread.
fn run_reader(mut reader: ReadHalf, inputs: Sender<Input>, free_chunks: Receiver<Vec<u8>>) {
    loop {
        let Ok(mut chunk) = free_chunks.recv() else {
            return;
        };
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let _ = inputs.send(Input::Eof);
                return;
            }
            Ok(n) => {
                if inputs.send(Input::Data(chunk, n)).is_err() {
                    return;
                }
            }
        }
    }
}

/// The IO thread of a session over a transport with a descriptor: it owns the core and
/// the transport, and waits in `poll(2)` on the transport and the [`IoWaker`] together,
/// reading straight into the core's receive window. No reader thread, so a reply costs
/// one thread switch (IO thread to caller) instead of two.
fn run_polled_io(
    mut engine: Engine,
    config: qmp_core::client::Config,
    (rx_size, tx_size): (usize, usize),
    mut transport: Transport,
    mut writer: WriteHalf,
    inputs: Receiver<Input>,
    waker: Arc<IoWaker>,
) {
    let mut rx = vec![0u8; rx_size];
    let mut tx = vec![0u8; tx_size];
    let mut core = Core::new(config, engine.now(), &mut rx, &mut tx);
    engine.start();
    let mut write_failed = false;
    let mut read_done = false;
    'session: loop {
        pump_and_transmit(&mut engine, &mut core, &mut writer, &mut write_failed);
        if engine.is_finished() {
            break;
        }
        // Requests first, in batches, without sleeping.
        let mut handled = 0;
        let mut disconnected = false;
        while handled < CONTROL_BATCH {
            match inputs.try_recv() {
                Ok(input) => {
                    handle_input(&mut engine, &mut core, input);
                    handled += 1;
                    if engine.is_finished() {
                        break 'session;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        if disconnected {
            break;
        }
        if handled > 0 {
            continue;
        }
        // Announce the sleep, then look once more: a request sent before the
        // announcement is seen here, one sent after it wakes the poll.
        waker.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        match inputs.try_recv() {
            Ok(input) => {
                waker.sleeping.store(false, Ordering::SeqCst);
                handle_input(&mut engine, &mut core, input);
                if engine.is_finished() {
                    break;
                }
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let timeout = engine.next_deadline(&core).map(|deadline| {
            let left = deadline.saturating_duration_since(Instant::now());
            // Round up so the deadline has passed when poll returns.
            Timespec::try_from(left + Duration::from_micros(999)).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            })
        });
        let (readable, woken) = {
            let Some(fd) = transport.read_fd() else {
                break;
            };
            let mut fds = [
                PollFd::new(&waker.event, PollFlags::IN),
                PollFd::from_borrowed_fd(fd, PollFlags::IN),
            ];
            if read_done {
                fds[1] = PollFd::new(&waker.event, PollFlags::IN);
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    waker.sleeping.store(false, Ordering::SeqCst);
                    break;
                }
            }
            (
                !read_done && !fds[1].revents().is_empty(),
                !fds[0].revents().is_empty(),
            )
        };
        waker.sleeping.store(false, Ordering::SeqCst);
        if woken {
            waker.reset();
            // Requests that came while we slept go first, as they would through the
            // channel: a `close()` that also shut the socket down must be seen as the
            // local close it is, not as the end of the stream it caused.
            while let Ok(input) = inputs.try_recv() {
                handle_input(&mut engine, &mut core, input);
                if engine.is_finished() {
                    break 'session;
                }
            }
        }
        if readable {
            let window = core.rx_window();
            // The core's window is empty only once its session is closed (its framer
            // skips what does not fit): reading stops, and the end of stream reported to
            // the closed core changes nothing.
            let read = if window.is_empty() {
                Ok(0)
            } else {
                transport.read_with_deadline(window, None)
            };
            match read {
                Ok(0) | Err(_) => {
                    read_done = true;
                    engine.on_eof(&mut core);
                }
                Ok(n) => engine.on_received(&mut core, n),
            }
        }
    }
    engine.shutdown(&mut core);
    drop(inputs);
}

/// One input taken from the channel by [`run_polled_io`].
fn handle_input(engine: &mut Engine, core: &mut Core<'_>, input: Input) {
    match input {
        Input::Data(chunk, len) => engine.on_input(core, chunk.get(..len).unwrap_or_default()),
        Input::Eof => engine.on_eof(core),
        Input::Control(control) => engine.control(core, control),
    }
}

/// The part of a client that exists once per session; dropping it closes the session.
struct Inner {
    inputs: ControlSender,
    shared: Arc<Shared>,
    info: ServerInfo,
    default_timeout: Option<Duration>,
    fd_passing: bool,
    /// A clone of the transport, to wake the reader on close.
    closer: Mutex<Option<Transport>>,
    io_thread: Mutex<Option<JoinHandle<()>>>,
    reader_thread: Mutex<Option<JoinHandle<()>>>,
    /// A reader over a plain `Read` cannot be woken: it is left to end by itself.
    join_reader: bool,
}

impl Inner {
    fn shutdown(&self) {
        self.inputs.send(Input::Control(Control::Close));
        if let Some(closer) = &*lock(&self.closer) {
            let _ = closer.shutdown();
        }
        // Never join oneself: a callback run inline on the IO thread (when no callback
        // thread could be started) may drop the last handle.
        let current = thread::current().id();
        let io_thread = lock(&self.io_thread).take();
        if let Some(handle) = io_thread {
            if handle.thread().id() != current {
                let _ = handle.join();
            }
        }
        let reader = lock(&self.reader_thread).take();
        if let Some(handle) = reader {
            if self.join_reader && handle.thread().id() != current {
                let _ = handle.join();
            }
        }
        self.shared.hub.shutdown_dispatcher(true);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A blocking QMP client; cheap to clone, usable from any number of threads.
///
/// Every call blocks only its own thread; calls from many threads are pipelined on the
/// one connection and each reply reaches exactly the caller that sent the command (the
/// core matches ids; a reply arriving after its command timed out or was cancelled is
/// dropped). The session closes when [`Client::close`] is called or the last clone is
/// dropped; then every waiting call returns [`Error::ClientClosed`]. If the server
/// closes or dies, every waiting call returns [`Error::Closed`] at once.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("info", &self.inner.info)
            .field("closed", &self.close_reason())
            .finish()
    }
}

/// A client that does not keep the session open (see [`Client::downgrade`]).
#[derive(Clone)]
pub struct WeakClient {
    inner: Weak<Inner>,
}

impl WeakClient {
    /// The client, if the session is still open.
    pub fn upgrade(&self) -> Option<Client> {
        self.inner.upgrade().map(|inner| Client { inner })
    }
}

impl fmt::Debug for WeakClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeakClient")
    }
}

impl Client {
    /// Connects to a QMP monitor on the Unix socket at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be reached; [`Error::AlreadyConnected`] if no
    /// greeting comes within [`ConnectOptions::greeting_timeout`] (another client holds
    /// the monitor); [`Error::Closed`] if the server closes or breaks the protocol
    /// during negotiation.
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
        let transport = match Transport::from_child(&mut child) {
            Ok(transport) => transport,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(error.into());
            }
        };
        match Self::connect(transport, options) {
            Ok(client) => Ok((client, child)),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(error)
            }
        }
    }

    /// Starts a QMP session over any connected [`Transport`].
    ///
    /// A transport made with [`Transport::from_stream`] cannot be cloned for the reader
    /// thread: use [`Client::connect_io`] with separate read and write halves instead.
    ///
    /// # Errors
    /// As [`Client::connect_unix`].
    pub fn connect(transport: Transport, options: ConnectOptions) -> Result<Self, Error> {
        start_transport(transport, options, Protocol::Qmp).map(|inner| Client { inner })
    }

    /// Starts a QMP session over any byte stream given as its two halves (e.g. the two
    /// ends of a TLS session, or `try_clone`d sockets). A reader blocked in `read` cannot
    /// be interrupted: on close its thread is left to end when the stream does.
    ///
    /// # Errors
    /// As [`Client::connect_unix`].
    pub fn connect_io(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        start(
            ReadHalf::Plain(Box::new(reader)),
            WriteHalf::Plain(Box::new(writer)),
            None,
            options,
            Protocol::Qmp,
        )
        .map(|inner| Client { inner })
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

    // ---- typed commands ----

    /// Runs a typed command and waits for its reply (deadline:
    /// [`ConnectOptions::command_timeout`]).
    ///
    /// # Errors
    /// [`Error::Qmp`] for an error reply, [`Error::Timeout`], [`Error::Closed`],
    /// [`Error::ClientClosed`], [`Error::Execute`] when the core refuses it,
    /// [`Error::Json`] when the arguments cannot be serialized.
    pub fn execute<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new())?.wait()
    }

    /// [`Client::execute`] with its own deadline.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn execute_timeout<C: Command>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().timeout(timeout))?
            .wait()
    }

    /// Runs a typed command out of band (`exec-oob`); needs
    /// [`ConnectOptions::enable_oob`] and a command marked `allow-oob`.
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::Execute`] when OOB is not possible.
    pub fn execute_oob<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().oob())?.wait()
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
        self.submit(command, CallOptions::new().fds(fds))?.wait()
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
        let reply = self.execute(command)?;
        let response = reply.get()?;
        Ok(map(response))
    }

    /// Sends a typed command without waiting: the returned [`Pending`] waits, times out
    /// or cancels (the Go `context` pattern).
    ///
    /// # Errors
    /// Only errors found before sending: [`Error::Json`] for arguments that cannot be
    /// serialized, [`Error::Io`] for descriptors on a transport that cannot pass them.
    /// Everything else comes from [`Pending::wait`].
    pub fn submit<C: Command>(
        &self,
        command: &C,
        options: CallOptions<'_>,
    ) -> Result<Pending<Reply<C>>, Error> {
        let body = typed_body(command)?;
        self.send(body, options, to_typed::<C>)
    }

    /// Runs a typed command; `callback` runs with the result on the callback thread when
    /// the reply comes (the Ruby `execute_async` pattern). [`Client::wait_idle`] waits
    /// for callbacks too.
    ///
    /// # Errors
    /// As [`Client::submit`].
    pub fn execute_async<C, F>(&self, command: &C, callback: F) -> Result<(), Error>
    where
        C: Command + 'static,
        F: FnOnce(Result<Reply<C>, Error>) + Send + 'static,
    {
        let body = typed_body(command)?;
        let completion = Completion::Callback(Box::new(move |result: Result<RawReply, Error>| {
            callback(result.map(Reply::from_raw));
        }));
        self.enqueue(body, CallOptions::new(), completion)
            .map(|_| ())
    }

    // ---- untyped commands ----

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
        self.submit_value(name, &arguments, CallOptions::new())?
            .wait()
    }

    /// [`Client::execute_value`] without waiting.
    ///
    /// # Errors
    /// As [`Client::submit`]; [`Error::InvalidRequest`] for arguments that are not an
    /// object.
    pub fn submit_value(
        &self,
        name: &str,
        arguments: &serde_json::Value,
        options: CallOptions<'_>,
    ) -> Result<Pending<serde_json::Value>, Error> {
        let body = value_body(name, arguments)?;
        self.send(body, options, to_value)
    }

    /// Sends a hand-built message (`{"execute": NAME, "arguments": {...}}`, or
    /// `"exec-oob"`) and waits for its reply. The client assigns the id (an `id` in the
    /// message is ignored) so the reply can be matched; the name and arguments are sent
    /// as written.
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::InvalidRequest`] if the message is not a QMP
    /// command.
    pub fn execute_raw_json(&self, message: &[u8]) -> Result<RawReply, Error> {
        self.submit_raw_json(message, CallOptions::new())?.wait()
    }

    /// [`Client::execute_raw_json`] without waiting. `options.oob` is ignored: the
    /// message says `execute` or `exec-oob` itself.
    ///
    /// # Errors
    /// As [`Client::execute_raw_json`], for what is found before sending.
    pub fn submit_raw_json(
        &self,
        message: &[u8],
        options: CallOptions<'_>,
    ) -> Result<Pending<RawReply>, Error> {
        let (body, oob) = raw_message_body(message)?;
        self.send(body, CallOptions { oob, ..options }, to_raw)
    }

    // ---- events ----

    /// A listener for every event, with [`ConnectOptions::event_queue_size`] capacity.
    pub fn subscribe(&self) -> Subscription {
        Subscription::new(self.inner.shared.hub.listener(None, None))
    }

    /// A listener for the events named in `names` only.
    pub fn subscribe_filtered(&self, names: &[&str]) -> Subscription {
        let names = names.iter().map(|name| (*name).to_owned()).collect();
        Subscription::new(self.inner.shared.hub.listener(Some(names), None))
    }

    /// A listener with its own queue capacity (`names`: `None` for every event).
    pub fn subscribe_with_capacity(&self, names: Option<&[&str]>, capacity: usize) -> Subscription {
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

    /// Events the callbacks lost because they did not keep up (the callback queue holds
    /// [`ConnectOptions::event_queue_size`] events and drops the oldest).
    pub fn callback_missed(&self) -> u64 {
        self.inner.shared.hub.callback_missed()
    }

    // ---- session ----

    /// Waits until no call is outstanding (every reply delivered, every async callback
    /// run), at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if calls are still outstanding then.
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), Error> {
        self.inner.shared.wait_idle(Some(Instant::now() + timeout))
    }

    /// Calls submitted and not yet answered.
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
    pub fn downgrade(&self) -> WeakClient {
        WeakClient {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Closes the session for every clone: waiting calls return
    /// [`Error::ClientClosed`], later ones too; listeners end; the transport is shut
    /// down and the threads are joined. Idempotent.
    pub fn close(&self) {
        self.inner.shutdown();
    }

    // ---- plumbing ----

    fn enqueue(
        &self,
        body: Body,
        options: CallOptions<'_>,
        completion: Completion,
    ) -> Result<u64, Error> {
        if let Some(reason) = self.close_reason() {
            return Err(Error::closed(reason));
        }
        let fds = if options.fds.is_empty() {
            Vec::new()
        } else {
            if !self.inner.fd_passing {
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
        let deadline = match options.timeout {
            Timeout::Default => self.inner.default_timeout.map(|t| Instant::now() + t),
            Timeout::Never => None,
            Timeout::After(timeout) => Some(Instant::now() + timeout),
        };
        let shared = &self.inner.shared;
        let ticket = shared.ticket();
        let request = Request {
            ticket,
            body,
            oob: options.oob,
            fds,
            deadline,
            completer: Completer::new(shared, completion),
        };
        // If the IO thread is gone, the request comes back in the error and its
        // completer fails it with the session's end.
        self.inner
            .inputs
            .send(Input::Control(Control::Submit(request)));
        Ok(ticket)
    }

    fn send<T>(
        &self,
        body: Body,
        options: CallOptions<'_>,
        convert: Convert<T>,
    ) -> Result<Pending<T>, Error> {
        let slot = Slot::new();
        let ticket = self.enqueue(body, options, Completion::Slot(Arc::clone(&slot)))?;
        Ok(Pending {
            slot,
            ticket,
            inputs: self.inner.inputs.clone(),
            convert,
        })
    }
}

/// Connects the reader and IO threads to `transport`.
fn start_transport(
    transport: Transport,
    options: ConnectOptions,
    protocol: Protocol,
) -> Result<Arc<Inner>, Error> {
    let reader = transport.try_clone().map_err(|error| {
        if error.kind() == io::ErrorKind::Unsupported {
            Error::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "this transport cannot be cloned for the reader thread: use Client::connect_io",
            ))
        } else {
            Error::Io(error)
        }
    })?;
    let closer = transport.try_clone()?;
    start(
        ReadHalf::Transport(reader),
        WriteHalf::Transport(transport),
        Some(closer),
        options,
        protocol,
    )
}

fn start(
    reader: ReadHalf,
    writer: WriteHalf,
    closer: Option<Transport>,
    options: ConnectOptions,
    protocol: Protocol,
) -> Result<Arc<Inner>, Error> {
    let shared = Shared::new(options.event_queue_size);
    let (inputs_tx, inputs_rx) = mpsc::channel();
    let (connected_tx, connected_rx) = mpsc::channel();
    let engine = Engine::new(
        Arc::clone(&shared),
        protocol,
        &options,
        Box::new(move |result| {
            let _ = connected_tx.send(result);
        }),
    );
    let fd_passing = match &writer {
        WriteHalf::Transport(transport) => transport.supports_fd_passing(),
        WriteHalf::Plain(_) => false,
    };
    let join_reader = matches!(reader, ReadHalf::Transport(_));
    let config = options.core_config(protocol).with_first_id(
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
            >> 11,
    );
    let (rx_size, tx_size) = (options.rx_size(), options.tx_size());
    // A transport with a descriptor is polled by the IO thread itself; anything else
    // gets a reader thread.
    let polled = match reader {
        ReadHalf::Transport(transport) if transport.read_fd().is_some() => Ok(transport),
        other => Err(other),
    };
    let (io_thread, reader_thread, waker) = match polled {
        Ok(transport) => {
            let waker = IoWaker::new()?;
            let io_waker = Arc::clone(&waker);
            let io_thread = thread::Builder::new()
                .name("qmp-io".into())
                .spawn(move || {
                    run_polled_io(
                        engine,
                        config,
                        (rx_size, tx_size),
                        transport,
                        writer,
                        inputs_rx,
                        io_waker,
                    )
                })?;
            (io_thread, None, Some(waker))
        }
        Err(reader) => {
            let (free_tx, free_rx) = mpsc::channel();
            for _ in 0..CHUNKS {
                let _ = free_tx.send(vec![0u8; CHUNK_SIZE]);
            }
            let io_thread = thread::Builder::new()
                .name("qmp-io".into())
                .spawn(move || {
                    run_io(engine, config, rx_size, tx_size, writer, inputs_rx, free_tx)
                })?;
            let reader_inputs = inputs_tx.clone();
            let reader_thread = thread::Builder::new()
                .name("qmp-reader".into())
                .spawn(move || run_reader(reader, reader_inputs, free_rx));
            (io_thread, Some(reader_thread), None)
        }
    };
    let mut inner = Inner {
        inputs: ControlSender {
            inputs: inputs_tx,
            waker,
        },
        shared,
        info: ServerInfo::new(protocol),
        default_timeout: options.command_timeout,
        fd_passing,
        closer: Mutex::new(closer),
        io_thread: Mutex::new(Some(io_thread)),
        reader_thread: Mutex::new(None),
        join_reader,
    };
    // From here on, dropping `inner` on an error shuts everything down.
    if let Some(reader_thread) = reader_thread {
        *lock(&inner.reader_thread) = Some(reader_thread?);
    }
    let outcome = match options.ready_wait() {
        Some(wait) => connected_rx.recv_timeout(wait).map_err(|_| Error::Timeout),
        None => connected_rx.recv().map_err(|_| Error::ClientClosed),
    };
    inner.info = outcome??;
    Ok(Arc::new(inner))
}

/// A call in flight: wait for it, with or without a deadline, or cancel it.
///
/// Dropping a `Pending` without waiting lets the command run; its reply is discarded.
#[must_use = "a Pending does nothing unless waited on; drop it to discard the reply"]
pub struct Pending<T> {
    slot: Arc<Slot>,
    ticket: u64,
    inputs: ControlSender,
    convert: Convert<T>,
}

impl<T> Pending<T> {
    /// Waits for the reply (bounded by the call's own deadline, if it has one).
    ///
    /// # Errors
    /// See [`Client::execute`].
    pub fn wait(self) -> Result<T, Error> {
        let result = self.slot.take(None).unwrap_or(Err(Error::Timeout));
        result.and_then(self.convert)
    }

    /// Waits at most `timeout`; if the reply has not come by then, the command is
    /// cancelled (its reply will be dropped) and [`Error::Timeout`] is returned.
    ///
    /// # Errors
    /// As [`Pending::wait`], or [`Error::Timeout`].
    pub fn wait_timeout(self, timeout: Duration) -> Result<T, Error> {
        self.wait_deadline(Instant::now() + timeout)
    }

    /// [`Pending::wait_timeout`] with an absolute deadline.
    ///
    /// # Errors
    /// As [`Pending::wait_timeout`].
    pub fn wait_deadline(self, deadline: Instant) -> Result<T, Error> {
        match self.slot.take(Some(deadline)) {
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

    /// A handle that cancels this call from another thread; a [`Pending::wait`] in
    /// progress returns [`Error::Cancelled`] at once.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            slot: Arc::downgrade(&self.slot),
            ticket: self.ticket,
            inputs: self.inputs.clone(),
        }
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
    slot: Weak<Slot>,
    ticket: u64,
    inputs: ControlSender,
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
        self.inputs
            .send(Input::Control(Control::Cancel(self.ticket)));
    }
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller")
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// A blocking client for the QEMU guest agent, over its Unix socket or a serial device.
///
/// The agent has no greeting and its parser may hold half a request from an earlier
/// client, so the session starts with `0xFF` + `guest-sync-delimited` carrying a random
/// id, and synchronises again by itself after any command times out. Everything else is
/// the [`Client`] API (it dereferences to one): `execute`, `call`, `execute_value`,
/// `execute_raw_json`, `submit`, ...
///
/// ```no_run
/// use qmp_std::{ConnectOptions, GuestAgentClient};
///
/// let agent = GuestAgentClient::connect_unix("/run/qga.sock", ConnectOptions::new())?;
/// let info = agent.execute_value("guest-info", serde_json::Value::Null)?;
/// println!("agent {}", info["version"]);
/// # Ok::<(), qmp_std::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GuestAgentClient {
    client: Client,
}

impl GuestAgentClient {
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

    /// Starts a guest-agent session over any transport.
    ///
    /// # Errors
    /// As [`GuestAgentClient::connect_unix`].
    pub fn connect(transport: Transport, options: ConnectOptions) -> Result<Self, Error> {
        let inner = start_transport(transport, options, Protocol::GuestAgent)?;
        Ok(GuestAgentClient {
            client: Client { inner },
        })
    }

    /// Synchronises again (`0xFF` + `guest-sync-delimited` with a fresh random id) and
    /// waits for the agent's answer; commands sent meanwhile wait behind it.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the agent does not answer in time; as [`Client::execute`].
    pub fn sync(&self) -> Result<u64, Error> {
        let pending = self.client.send(Body::Sync, CallOptions::new(), to_raw)?;
        let reply = pending.wait()?;
        reply
            .raw()
            .as_u64()
            .ok_or_else(|| Error::InvalidRequest("sync reply is not a number".into()))
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl core::ops::Deref for GuestAgentClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
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
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(theirs);
        let started = Instant::now();
        let error = Client::connect(
            Transport::from_unix_stream(ours).unwrap(),
            ConnectOptions::new(),
        )
        .unwrap_err();
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
