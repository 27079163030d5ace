//! The async client (feature `tokio`): [`AsyncClient`] and [`AsyncGuestAgentClient`].
//!
//! Same design as the blocking [`Client`](crate::Client): one IO actor, here a tokio
//! task, owns the sans-IO core and its buffers and waits with `tokio::select!` on the
//! transport, the callers' requests and the core's next deadline; handles are cheap
//! clones. The routing (replies to callers, events to listeners, the end of the session
//! to everyone) is the same code as the blocking client's.
//!
//! ```no_run
//! # async fn demo() -> Result<(), qmp_std::Error> {
//! use std::time::Duration;
//! use qmp_std::qmp_core::commands::QueryVersion;
//! use qmp_std::tokio::AsyncClient;
//! use qmp_std::ConnectOptions;
//!
//! let client = AsyncClient::connect_unix("/tmp/qmp.sock", ConnectOptions::new()).await?;
//! let version = client.call(&QueryVersion, |v| v.qemu).await?;
//! let events = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
//! let value = client.execute_value("query-jobs", serde_json::Value::Null).await?;
//! match events.recv_timeout(Duration::from_secs(1)).await {
//!     Ok(event) => println!("{version}: {} {value}", event.name()),
//!     Err(error) => println!("no event: {error}"),
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```

use core::fmt;
use core::mem::MaybeUninit;
use core::time::Duration;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ::tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use ::tokio::net::unix::OwnedWriteHalf;
use ::tokio::net::{TcpStream, ToSocketAddrs, UnixStream};
use ::tokio::sync::{mpsc, oneshot};
use ::tokio::task::JoinHandle;
use qmp_core::client::{CloseReason, Protocol, Stats};
use qmp_core::commands::Command;
use qmp_core::message::{Capabilities, Version};

use crate::engine::{
    raw_message_body, typed_body, value_body, Body, Completer, Completion, Control, Core, Engine,
    Request, Shared,
};
use crate::error::Error;
use crate::events::{lock, CallbackId, Event, Listener, SubscriptionCanceller};
use crate::options::{CallOptions, ConnectOptions, ServerInfo, Timeout};
use crate::reply::{to_raw, to_typed, to_value, Convert, RawReply, Reply};

/// Requests the actor takes before writing what they produced (batches pipelined
/// requests into few writes).
const CONTROL_BATCH: usize = 256;

/// The write half the actor owns.
enum Writer {
    /// A Unix socket: can pass file descriptors.
    Unix(OwnedWriteHalf),
    /// Anything else.
    Other(Box<dyn AsyncWrite + Send + Unpin>),
}

impl Writer {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Unix(half) => half.write(bytes).await,
            Writer::Other(writer) => writer.write(bytes).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Writer::Unix(half) => half.flush().await,
            Writer::Other(writer) => writer.flush().await,
        }
    }

    /// Writes all of `bytes` with `fds` attached to the first byte.
    async fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let Writer::Unix(half) = self else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "file descriptors can only be passed over a unix socket",
            ));
        };
        let stream: &UnixStream = half.as_ref();
        let sent = loop {
            stream.writable().await?;
            match stream.try_io(::tokio::io::Interest::WRITABLE, || {
                send_once_with_fds(stream.as_fd(), bytes, fds)
            }) {
                Ok(n) => break n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        };
        half.write_all(bytes.get(sent..).unwrap_or_default()).await
    }
}

/// One `sendmsg(2)` of `bytes` with `fds` attached; returns the bytes taken.
fn send_once_with_fds(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    const MAX: usize = crate::fdpass::MAX_FDS_PER_MESSAGE;
    if fds.len() > MAX || bytes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot pass {} descriptors with {} bytes",
                fds.len(),
                bytes.len()
            ),
        ));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("control buffer too small"));
    }
    loop {
        match sendmsg(
            socket,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket took no bytes",
                ))
            }
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Writes what the core wants sent (see the blocking client's `transmit`).
async fn transmit(
    core: &mut Core<'_>,
    writer: &mut Writer,
    fds: Option<Vec<OwnedFd>>,
) -> io::Result<bool> {
    let mut wrote = false;
    if let Some(fds) = fds {
        let bytes = core.poll_transmit().unwrap_or_default();
        let len = bytes.len();
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        writer.send_with_fds(bytes, &borrowed).await?;
        core.mark_transmitted(len);
        wrote = true;
    }
    while let Some(bytes) = core.poll_transmit() {
        let n = writer.write(bytes).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "peer took no bytes",
            ));
        }
        core.mark_transmitted(n);
        wrote = true;
    }
    if wrote {
        writer.flush().await?;
    }
    Ok(wrote)
}

/// Reads from `reader` straight into the core's receive window (no intermediate buffer,
/// no copy). Resolves to the number of bytes read; 0 is the end of the stream, and so is
/// a window with no room (the engine drains after every read, so that means a closed
/// session).
fn read_into_core<'a, 'buf>(
    reader: &'a mut (dyn AsyncRead + Send + Unpin),
    core: &'a mut Core<'buf>,
) -> impl core::future::Future<Output = io::Result<usize>> + use<'a, 'buf> {
    core::future::poll_fn(move |cx| {
        let window = core.rx_window();
        if window.is_empty() {
            return core::task::Poll::Ready(Ok(0));
        }
        let mut buf = ::tokio::io::ReadBuf::new(window);
        match core::pin::Pin::new(&mut *reader).poll_read(cx, &mut buf) {
            core::task::Poll::Ready(Ok(())) => core::task::Poll::Ready(Ok(buf.filled().len())),
            core::task::Poll::Ready(Err(error)) => core::task::Poll::Ready(Err(error)),
            core::task::Poll::Pending => core::task::Poll::Pending,
        }
    })
}

/// The IO actor: owns the core and its buffers.
async fn run_actor(
    mut engine: Engine,
    config: qmp_core::client::Config,
    rx_size: usize,
    tx_size: usize,
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    mut writer: Writer,
    mut controls: mpsc::UnboundedReceiver<Control>,
) {
    let mut rx = vec![0u8; rx_size];
    let mut tx = vec![0u8; tx_size];
    let mut core = Core::new(config, engine.now(), &mut rx, &mut tx);
    engine.start();
    let mut write_failed = false;
    let mut read_done = false;
    // One timer for the whole session, moved when the next deadline changes (creating
    // a timer per round would register and cancel one per command).
    let timer = ::tokio::time::sleep_until(::tokio::time::Instant::now());
    ::tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        loop {
            let fds = engine.pump(&mut core);
            let mut more = fds.is_some();
            if !write_failed {
                match transmit(&mut core, &mut writer, fds).await {
                    // Writing made room in the transmit buffer: waiting requests may fit.
                    Ok(wrote) => more |= wrote && engine.has_backlog(),
                    Err(_) => {
                        write_failed = true;
                        engine.on_eof(&mut core);
                    }
                }
            }
            if !more {
                break;
            }
        }
        if engine.is_finished() {
            break;
        }
        let deadline = engine.next_deadline(&core);
        if deadline.is_some() && deadline != armed {
            if let Some(at) = deadline {
                timer.as_mut().reset(::tokio::time::Instant::from_std(at));
            }
        }
        armed = deadline;
        ::tokio::select! {
            read = read_into_core(&mut *reader, &mut core), if !read_done => match read {
                Ok(0) | Err(_) => {
                    read_done = true;
                    engine.on_eof(&mut core);
                }
                Ok(n) => engine.on_received(&mut core, n),
            },
            control = controls.recv() => {
                engine.control(&mut core, control.unwrap_or(Control::Close));
                // Take what else is queued, so pipelined requests leave in one write.
                let mut taken = 1;
                while taken < CONTROL_BATCH && !engine.is_finished() {
                    let Ok(control) = controls.try_recv() else { break };
                    engine.control(&mut core, control);
                    taken += 1;
                }
            }
            () = &mut timer, if armed.is_some() => {
                // Fired: re-armed (if still needed) at the top of the next round.
                armed = None;
            }
        }
    }
    engine.shutdown(&mut core);
    // Requests still queued are dropped here; their completers fail them.
    controls.close();
    while controls.try_recv().is_ok() {}
}

/// The part of an async client that exists once per session.
struct Inner {
    controls: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
    info: ServerInfo,
    default_timeout: Option<Duration>,
    fd_passing: bool,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.controls.send(Control::Close);
        // Callbacks are not joined here: this may run inside the runtime.
        self.shared.hub.shutdown_dispatcher(false);
    }
}

/// An async QMP client; cheap to clone, usable from any number of tasks.
///
/// The same surface as the blocking [`Client`](crate::Client), with `async fn`s. The IO
/// actor is a task on the current tokio runtime; it ends when the session does, when
/// [`AsyncClient::close`] is called, or when the last clone is dropped.
#[derive(Clone)]
pub struct AsyncClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("info", &self.inner.info)
            .field("closed", &self.close_reason())
            .finish()
    }
}

impl AsyncClient {
    /// Connects to a QMP monitor on a Unix socket.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be reached (or [`Error::Timeout`] after
    /// [`ConnectOptions::connect_timeout`]); [`Error::AlreadyConnected`] if no greeting
    /// comes within [`ConnectOptions::greeting_timeout`]; [`Error::Closed`] if the
    /// server closes or breaks the protocol during negotiation.
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let stream =
            with_timeout(options.connect_timeout, UnixStream::connect(path.as_ref())).await?;
        Self::from_unix_stream(stream, options).await
    }

    /// Connects to a QMP monitor over TCP.
    ///
    /// # Errors
    /// As [`AsyncClient::connect_unix`].
    pub async fn connect_tcp(
        addr: impl ToSocketAddrs,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let stream = with_timeout(options.connect_timeout, TcpStream::connect(addr)).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        start(
            Box::new(reader),
            Writer::Other(Box::new(writer)),
            options,
            Protocol::Qmp,
        )
        .await
    }

    /// Starts a QMP session over a connected Unix socket (fd passing works).
    ///
    /// # Errors
    /// As [`AsyncClient::connect_unix`].
    pub async fn from_unix_stream(
        stream: UnixStream,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let (reader, writer) = stream.into_split();
        start(
            Box::new(reader),
            Writer::Unix(writer),
            options,
            Protocol::Qmp,
        )
        .await
    }

    /// Spawns `command` with piped stdin/stdout and talks QMP over them (the command
    /// must serve a monitor on stdio, e.g. `-qmp stdio`). The child is returned.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be spawned; otherwise as [`AsyncClient::connect_unix`]
    /// (the child is killed if the session cannot start).
    pub async fn spawn(
        command: &mut ::tokio::process::Command,
        options: ConnectOptions,
    ) -> Result<(Self, ::tokio::process::Child), Error> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill().await;
            return Err(Error::Io(io::Error::other("child has no piped stdio")));
        };
        match start(
            Box::new(stdout),
            Writer::Other(Box::new(stdin)),
            options,
            Protocol::Qmp,
        )
        .await
        {
            Ok(client) => Ok((client, child)),
            Err(error) => {
                let _ = child.kill().await;
                Err(error)
            }
        }
    }

    /// Starts a QMP session over any async byte stream.
    ///
    /// # Errors
    /// As [`AsyncClient::connect_unix`].
    pub async fn connect_stream<S>(stream: S, options: ConnectOptions) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = ::tokio::io::split(stream);
        start(
            Box::new(reader),
            Writer::Other(Box::new(writer)),
            options,
            Protocol::Qmp,
        )
        .await
    }

    /// Starts a QMP session over separate read and write halves.
    ///
    /// # Errors
    /// As [`AsyncClient::connect_unix`].
    pub async fn connect_io(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        start(
            Box::new(reader),
            Writer::Other(Box::new(writer)),
            options,
            Protocol::Qmp,
        )
        .await
    }

    /// What the server said about itself.
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

    /// Runs a typed command and waits for its reply.
    ///
    /// # Errors
    /// As [`Client::execute`](crate::Client::execute).
    pub async fn execute<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new())?.wait().await
    }

    /// [`AsyncClient::execute`] with its own deadline.
    ///
    /// # Errors
    /// As [`AsyncClient::execute`].
    pub async fn execute_timeout<C: Command>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().timeout(timeout))?
            .wait()
            .await
    }

    /// Runs a typed command out of band (`exec-oob`).
    ///
    /// # Errors
    /// As [`AsyncClient::execute`]; [`Error::Execute`] when OOB is not possible.
    pub async fn execute_oob<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().oob())?.wait().await
    }

    /// Runs a typed command with file descriptors attached to its own message (Unix
    /// sockets only).
    ///
    /// # Errors
    /// As [`AsyncClient::execute`]; [`Error::Io`] (`Unsupported`) on other transports.
    pub async fn execute_with_fds<C: Command>(
        &self,
        command: &C,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().fds(fds))?
            .wait()
            .await
    }

    /// Runs a typed command and maps its borrowed, typed response to an owned value.
    ///
    /// # Errors
    /// As [`AsyncClient::execute`]; [`Error::Decode`] when the reply does not decode.
    pub async fn call<C, R, F>(&self, command: &C, map: F) -> Result<R, Error>
    where
        C: Command,
        F: for<'r> FnOnce(C::Response<'r>) -> R,
    {
        let reply = self.execute(command).await?;
        let response = reply.get()?;
        Ok(map(response))
    }

    /// Sends a typed command; the returned [`AsyncPending`] waits, times out or cancels.
    ///
    /// # Errors
    /// As [`Client::submit`](crate::Client::submit).
    pub fn submit<C: Command>(
        &self,
        command: &C,
        options: CallOptions<'_>,
    ) -> Result<AsyncPending<Reply<C>>, Error> {
        let body = typed_body(command)?;
        self.send(body, options, to_typed::<C>)
    }

    /// Runs a typed command; `callback` runs with the result on the callback thread.
    ///
    /// # Errors
    /// As [`AsyncClient::submit`].
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

    /// Runs a command by name with `serde_json` arguments (`Value::Null`: none).
    ///
    /// # Errors
    /// As [`Client::execute_value`](crate::Client::execute_value).
    pub async fn execute_value(
        &self,
        name: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        self.submit_value(name, &arguments, CallOptions::new())?
            .wait()
            .await
    }

    /// [`AsyncClient::execute_value`] without waiting.
    ///
    /// # Errors
    /// As [`Client::submit_value`](crate::Client::submit_value).
    pub fn submit_value(
        &self,
        name: &str,
        arguments: &serde_json::Value,
        options: CallOptions<'_>,
    ) -> Result<AsyncPending<serde_json::Value>, Error> {
        let body = value_body(name, arguments)?;
        self.send(body, options, to_value)
    }

    /// Sends a hand-built message and waits for its reply (the client assigns the id).
    ///
    /// # Errors
    /// As [`Client::execute_raw_json`](crate::Client::execute_raw_json).
    pub async fn execute_raw_json(&self, message: &[u8]) -> Result<RawReply, Error> {
        self.submit_raw_json(message, CallOptions::new())?
            .wait()
            .await
    }

    /// [`AsyncClient::execute_raw_json`] without waiting.
    ///
    /// # Errors
    /// As [`Client::submit_raw_json`](crate::Client::submit_raw_json).
    pub fn submit_raw_json(
        &self,
        message: &[u8],
        options: CallOptions<'_>,
    ) -> Result<AsyncPending<RawReply>, Error> {
        let (body, oob) = raw_message_body(message)?;
        self.send(body, CallOptions { oob, ..options }, to_raw)
    }

    /// A listener for every event.
    pub fn subscribe(&self) -> AsyncSubscription {
        AsyncSubscription {
            listener: self.inner.shared.hub.listener(None, None),
        }
    }

    /// A listener for the events named in `names` only.
    pub fn subscribe_filtered(&self, names: &[&str]) -> AsyncSubscription {
        let names = names.iter().map(|name| (*name).to_owned()).collect();
        AsyncSubscription {
            listener: self.inner.shared.hub.listener(Some(names), None),
        }
    }

    /// A listener with its own queue capacity (`names`: `None` for every event).
    pub fn subscribe_with_capacity(
        &self,
        names: Option<&[&str]>,
        capacity: usize,
    ) -> AsyncSubscription {
        let names = names.map(|names| names.iter().map(|name| (*name).to_owned()).collect());
        AsyncSubscription {
            listener: self.inner.shared.hub.listener(names, Some(capacity)),
        }
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

    /// Waits until no call is outstanding, at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if calls are still outstanding then.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<(), Error> {
        let shared = &self.inner.shared;
        let idle = async {
            loop {
                let notified = shared.idle_notify.notified();
                ::tokio::pin!(notified);
                notified.as_mut().enable();
                if shared.outstanding() == 0 {
                    return;
                }
                notified.await;
            }
        };
        ::tokio::time::timeout(timeout, idle)
            .await
            .map_err(|_| Error::Timeout)
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

    /// The core's diagnostic counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// Closes the session for every clone and waits for the IO task to end: waiting
    /// calls return [`Error::ClientClosed`], listeners end. Idempotent.
    pub async fn close(&self) {
        let _ = self.inner.controls.send(Control::Close);
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

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
        let _ = self.inner.controls.send(Control::Submit(request));
        Ok(ticket)
    }

    fn send<T>(
        &self,
        body: Body,
        options: CallOptions<'_>,
        convert: Convert<T>,
    ) -> Result<AsyncPending<T>, Error> {
        let (sender, receiver) = oneshot::channel();
        let ticket = self.enqueue(body, options, Completion::Oneshot(sender))?;
        Ok(AsyncPending {
            receiver,
            ticket,
            controls: self.inner.controls.clone(),
            convert,
        })
    }
}

async fn with_timeout<T>(
    timeout: Option<Duration>,
    future: impl core::future::Future<Output = io::Result<T>>,
) -> Result<T, Error> {
    match timeout {
        Some(timeout) => match ::tokio::time::timeout(timeout, future).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection attempt timed out",
            ))),
        },
        None => Ok(future.await?),
    }
}

async fn start(
    reader: Box<dyn AsyncRead + Send + Unpin>,
    writer: Writer,
    options: ConnectOptions,
    protocol: Protocol,
) -> Result<AsyncClient, Error> {
    let shared = Shared::new(options.event_queue_size);
    let (controls_tx, controls_rx) = mpsc::unbounded_channel();
    let (connected_tx, connected_rx) = oneshot::channel();
    let engine = Engine::new(
        Arc::clone(&shared),
        protocol,
        &options,
        Box::new(move |result| {
            let _ = connected_tx.send(result);
        }),
    );
    let fd_passing = matches!(writer, Writer::Unix(_));
    let config = options.core_config(protocol).with_first_id(
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
            >> 11,
    );
    let task = ::tokio::spawn(run_actor(
        engine,
        config,
        options.rx_size(),
        options.tx_size(),
        reader,
        writer,
        controls_rx,
    ));
    let mut inner = Inner {
        controls: controls_tx,
        shared,
        info: ServerInfo::new(protocol),
        default_timeout: options.command_timeout,
        fd_passing,
        task: Mutex::new(Some(task)),
    };
    let outcome = match options.ready_wait() {
        Some(wait) => ::tokio::time::timeout(wait, connected_rx)
            .await
            .map_err(|_| Error::Timeout)?,
        None => connected_rx.await,
    };
    // Dropping `inner` on an error closes the session.
    inner.info = outcome.map_err(|_| Error::ClientClosed)??;
    Ok(AsyncClient {
        inner: Arc::new(inner),
    })
}

/// A call in flight on an [`AsyncClient`].
///
/// Dropping it without waiting lets the command run; its reply is discarded.
#[must_use = "an AsyncPending does nothing unless waited on"]
pub struct AsyncPending<T> {
    receiver: oneshot::Receiver<Result<RawReply, Error>>,
    ticket: u64,
    controls: mpsc::UnboundedSender<Control>,
    convert: Convert<T>,
}

impl<T> AsyncPending<T> {
    /// Waits for the reply.
    ///
    /// # Errors
    /// As [`AsyncClient::execute`]; [`Error::Cancelled`] after a cancellation.
    pub async fn wait(self) -> Result<T, Error> {
        let result = self.receiver.await.unwrap_or(Err(Error::ClientClosed));
        result.and_then(self.convert)
    }

    /// Waits at most `timeout`; then cancels the command and returns
    /// [`Error::Timeout`].
    ///
    /// # Errors
    /// As [`AsyncPending::wait`], or [`Error::Timeout`].
    pub async fn wait_timeout(self, timeout: Duration) -> Result<T, Error> {
        let AsyncPending {
            receiver,
            ticket,
            controls,
            convert,
        } = self;
        match ::tokio::time::timeout(timeout, receiver).await {
            Ok(result) => result.unwrap_or(Err(Error::ClientClosed)).and_then(convert),
            Err(_) => {
                let _ = controls.send(Control::Cancel(ticket));
                Err(Error::Timeout)
            }
        }
    }

    /// Gives up on the call (its reply, if it comes, is dropped).
    pub fn cancel(self) {
        self.canceller().cancel();
    }

    /// A handle that cancels this call from anywhere; a [`AsyncPending::wait`] in
    /// progress then returns [`Error::Cancelled`].
    pub fn canceller(&self) -> AsyncCanceller {
        AsyncCanceller {
            ticket: self.ticket,
            controls: self.controls.clone(),
        }
    }
}

impl<T> fmt::Debug for AsyncPending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPending")
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// Cancels one async call; see [`AsyncPending::canceller`].
#[derive(Clone)]
pub struct AsyncCanceller {
    ticket: u64,
    controls: mpsc::UnboundedSender<Control>,
}

impl AsyncCanceller {
    /// Cancels the call (no effect once the reply is in).
    pub fn cancel(&self) {
        let _ = self.controls.send(Control::Cancel(self.ticket));
    }
}

impl fmt::Debug for AsyncCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncCanceller")
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// An async event listener: the same bounded, drop-oldest queue as
/// [`Subscription`](crate::Subscription), with `async` receives.
pub struct AsyncSubscription {
    listener: Arc<Listener>,
}

impl AsyncSubscription {
    /// Waits for the next event.
    ///
    /// # Errors
    /// [`Error::Closed`]/[`Error::ClientClosed`] once the session is over and the queue
    /// is empty; [`Error::Cancelled`] after a cancellation.
    pub async fn recv(&self) -> Result<Event, Error> {
        loop {
            let notified = self.listener.notify.notified();
            ::tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(event) = self.listener.try_take()? {
                return Ok(event);
            }
            notified.await;
        }
    }

    /// Waits at most `timeout` for the next event.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came in time; otherwise as [`AsyncSubscription::recv`].
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Event, Error> {
        ::tokio::time::timeout(timeout, self.recv())
            .await
            .unwrap_or(Err(Error::Timeout))
    }

    /// The next event if one is queued.
    ///
    /// # Errors
    /// As [`AsyncSubscription::recv`], when nothing is queued and nothing will come.
    pub fn try_recv(&self) -> Result<Option<Event>, Error> {
        self.listener.try_take()
    }

    /// Events lost in total because the queue was full.
    pub fn missed(&self) -> u64 {
        self.listener.missed()
    }

    /// Events lost since the last call (and resets that count).
    pub fn take_missed(&self) -> u64 {
        self.listener.take_missed()
    }

    /// A handle that cancels this subscription from anywhere.
    pub fn canceller(&self) -> SubscriptionCanceller {
        crate::events::Subscription::canceller_of(&self.listener)
    }
}

impl fmt::Debug for AsyncSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSubscription")
            .field("queued", &self.listener.len())
            .field("missed", &self.missed())
            .finish()
    }
}

/// An async client for the QEMU guest agent (see
/// [`GuestAgentClient`](crate::GuestAgentClient)); dereferences to [`AsyncClient`].
#[derive(Clone, Debug)]
pub struct AsyncGuestAgentClient {
    client: AsyncClient,
}

impl AsyncGuestAgentClient {
    /// Connects to an agent listening on a Unix socket and synchronises with it.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be reached; [`Error::Timeout`] if the agent
    /// does not answer the sync within [`ConnectOptions::greeting_timeout`].
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let stream =
            with_timeout(options.connect_timeout, UnixStream::connect(path.as_ref())).await?;
        let (reader, writer) = stream.into_split();
        let client = start(
            Box::new(reader),
            Writer::Unix(writer),
            options,
            Protocol::GuestAgent,
        )
        .await?;
        Ok(AsyncGuestAgentClient { client })
    }

    /// Starts a guest-agent session over separate read and write halves (a serial
    /// line, a pty).
    ///
    /// # Errors
    /// As [`AsyncGuestAgentClient::connect_unix`].
    pub async fn connect_io(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let client = start(
            Box::new(reader),
            Writer::Other(Box::new(writer)),
            options,
            Protocol::GuestAgent,
        )
        .await?;
        Ok(AsyncGuestAgentClient { client })
    }

    /// Synchronises again and returns the id the agent echoed.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the agent does not answer in time.
    pub async fn sync(&self) -> Result<u64, Error> {
        let reply = self
            .client
            .send(Body::Sync, CallOptions::new(), to_raw)?
            .wait()
            .await?;
        reply
            .raw()
            .as_u64()
            .ok_or_else(|| Error::InvalidRequest("sync reply is not a number".into()))
    }

    /// The underlying client.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }
}

impl core::ops::Deref for AsyncGuestAgentClient {
    type Target = AsyncClient;

    fn deref(&self) -> &AsyncClient {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn handles_cross_tasks() {
        assert_shareable::<AsyncClient>();
        assert_shareable::<AsyncGuestAgentClient>();
        assert_shareable::<AsyncCanceller>();
        assert_send::<AsyncPending<Reply<qmp_core::commands::QueryVersion>>>();
        assert_send::<AsyncSubscription>();
    }

    #[test]
    fn a_server_that_closes_at_once_fails_the_connect() {
        let runtime = ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (ours, theirs) = UnixStream::pair().unwrap();
            drop(theirs);
            let error = AsyncClient::from_unix_stream(ours, ConnectOptions::new())
                .await
                .unwrap_err();
            assert!(
                matches!(error, Error::Closed(CloseReason::EndOfStream { .. })),
                "{error:?}"
            );
        });
    }
}
