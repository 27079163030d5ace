//! The async front (feature `tokio`): [`AsyncClient`] is `Connection<Async>`, the same
//! client as the blocking one over the same IO engine, whose waiting methods are
//! `async fn`s. Tokio supplies the timers of the waits that take a timeout and the
//! copying task of [`AsyncClient::connect_stream`]. Over a Unix socket, the task that
//! awaits a call drives the socket itself while nobody else does, reading when tokio
//! reports it readable, so a call costs no thread switch; over other transports (and
//! while no call is awaited) the engine's background reader thread reads and wakes the
//! waiting task. The runtime needs IO and time enabled (`enable_all`).
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
//! client.close();
//! # Ok(())
//! # }
//! ```

use core::time::Duration;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::net::{TcpStream, ToSocketAddrs, UnixStream};
use qmp_core::client::Protocol;
use qmp_core::commands::Command;

use crate::client::{start_transport, sync_value, Connecting};
use crate::driver::Link;
use crate::engine::typed_body;
use crate::error::Error;
use crate::events::{Event, Subscription};
use crate::options::{deadline_after, CallOptions, ConnectOptions};
use crate::reply::{to_raw, RawReply, Reply};
use crate::transport::Transport;

pub use crate::client::Async;

/// An async QMP client: [`Client`](crate::Client) in the [`Async`] mode.
pub type AsyncClient = crate::Connection<Async>;

/// An async guest-agent client.
pub type AsyncGuestAgentClient = crate::AgentConnection<Async>;

/// An async event listener.
pub type AsyncSubscription = Subscription<Async>;

/// Waits for the session to be ready without blocking the runtime, at most until the
/// connect deadline.
async fn ready(connecting: Connecting) -> Result<AsyncClient, Error> {
    connecting.let_tasks_lead();
    let outcome = match connecting.deadline() {
        Some(deadline) => ::tokio::time::timeout_at(deadline.into(), connecting.ready())
            .await
            .ok(),
        None => Some(connecting.ready().await),
    };
    connecting.finish(outcome).map(AsyncClient::from_inner)
}

/// Runs a blocking connect step on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    step: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, Error> {
    ::tokio::task::spawn_blocking(step)
        .await
        .map_err(|error| Error::Io(io::Error::other(error)))?
        .map_err(Error::Io)
}

/// Bridges any async stream to the IO engine through a socket pair and a copying task
/// (which ends when either side does).
fn bridge<S>(stream: S) -> Result<Link, Error>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    theirs.set_nonblocking(true)?;
    let mut theirs = UnixStream::from_std(theirs)?;
    ::tokio::spawn(async move {
        let mut stream = Box::pin(stream);
        let _ = ::tokio::io::copy_bidirectional(&mut stream, &mut theirs).await;
    });
    Ok(Link::unix(OwnedFd::from(ours), false)?)
}

async fn with_connect_timeout<T>(
    timeout: Option<Duration>,
    future: impl core::future::Future<Output = io::Result<T>>,
) -> Result<T, Error> {
    match timeout.and_then(deadline_after) {
        Some(deadline) => match ::tokio::time::timeout_at(deadline.into(), future).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection attempt timed out",
            ))),
        },
        None => Ok(future.await?),
    }
}

/// Waiting methods, as `async fn`s.
impl AsyncClient {
    /// Connects to a QMP monitor on a Unix socket.
    ///
    /// # Errors
    /// As [`Client::connect_unix`](crate::Client::connect_unix).
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let path: PathBuf = path.as_ref().to_owned();
        let timeout = options.connect_timeout;
        let transport = blocking(move || Transport::connect_unix(path, timeout)).await?;
        Self::connect(transport, options).await
    }

    /// Connects to a QMP monitor over TCP.
    ///
    /// # Errors
    /// As [`AsyncClient::connect_unix`].
    pub async fn connect_tcp(
        addr: impl ToSocketAddrs,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let stream =
            with_connect_timeout(options.connect_timeout, TcpStream::connect(addr)).await?;
        let transport = Transport::from_tcp_stream(stream.into_std()?)?;
        Self::connect(transport, options).await
    }

    /// Starts a QMP session over a connected Unix socket (fd passing works).
    ///
    /// # Errors
    /// As [`AsyncClient::connect_unix`].
    pub async fn from_unix_stream(
        stream: UnixStream,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let transport = Transport::from_unix_stream(stream.into_std()?)?;
        Self::connect(transport, options).await
    }

    /// Spawns `command` with piped stdin/stdout and talks QMP over them (the command
    /// must serve a monitor on stdio, e.g. `-qmp stdio`). The child is returned (it is
    /// killed when dropped).
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
        let link = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => stdout
                .into_owned_fd()
                .and_then(|read| Link::pipes(read, stdin.into_owned_fd()?))
                .map_err(Error::Io),
            _ => Err(Error::Io(io::Error::other("child has no piped stdio"))),
        };
        let connected = match link {
            Ok(link) => match Connecting::start(link, &options, Protocol::Qmp) {
                Ok(connecting) => ready(connecting).await,
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        match connected {
            Ok(client) => Ok((client, child)),
            Err(error) => {
                let _ = child.kill().await;
                Err(error)
            }
        }
    }

    /// Starts a QMP session over any connected [`Transport`] with a descriptor.
    ///
    /// # Errors
    /// As [`AsyncClient::connect_unix`].
    pub async fn connect(transport: Transport, options: ConnectOptions) -> Result<Self, Error> {
        ready(start_transport(transport, &options, Protocol::Qmp)?).await
    }

    /// Starts a QMP session over any async byte stream (a task copies between it and
    /// the IO engine).
    ///
    /// # Errors
    /// As [`AsyncClient::connect_unix`].
    pub async fn connect_stream<S>(stream: S, options: ConnectOptions) -> Result<Self, Error>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        ready(Connecting::start(bridge(stream)?, &options, Protocol::Qmp)?).await
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
        Self::connect_stream(::tokio::io::join(reader, writer), options).await
    }

    /// Runs a typed command and waits for its reply.
    ///
    /// # Errors
    /// As [`Client::execute`](crate::Client::execute).
    pub async fn execute<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new()).await
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
        self.submit(command, CallOptions::new().timeout(timeout))
            .await
    }

    /// Runs a typed command out of band (`exec-oob`).
    ///
    /// # Errors
    /// As [`AsyncClient::execute`]; [`Error::Execute`] when OOB is not possible.
    pub async fn execute_oob<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().oob()).await
    }

    /// Runs a typed command with file descriptors attached (`SCM_RIGHTS`); Unix
    /// sockets only.
    ///
    /// # Errors
    /// As [`AsyncClient::execute`]; [`Error::Io`] (`Unsupported`) on other transports.
    pub async fn execute_with_fds<C: Command>(
        &self,
        command: &C,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply<C>, Error> {
        self.submit(command, CallOptions::new().fds(fds)).await
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
        self.inner
            .send(typed_body(command), CallOptions::new(), to_raw)
            .map(|raw| Ok(map(C::decode_response(raw.raw())?)))
            .await
    }

    /// Runs a command by name with `serde_json` arguments and returns the `return`
    /// value.
    ///
    /// # Errors
    /// As [`Client::execute_value`](crate::Client::execute_value).
    pub async fn execute_value(
        &self,
        name: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        self.submit_value(name, &arguments, CallOptions::new())
            .await
    }

    /// Runs a command by name with its arguments as JSON text and waits for its reply
    /// (see [`Client::submit_json`](crate::Client::submit_json)).
    ///
    /// # Errors
    /// As [`Client::execute_json`](crate::Client::execute_json).
    pub async fn execute_json(
        &self,
        name: &str,
        arguments: Option<&[u8]>,
    ) -> Result<RawReply, Error> {
        self.submit_json(name, arguments, CallOptions::new()).await
    }

    /// Sends a hand-built message and waits for its reply (see
    /// [`Client::submit_message`](crate::Client::submit_message)).
    ///
    /// # Errors
    /// As [`Client::execute_message`](crate::Client::execute_message).
    pub async fn execute_message(&self, message: &[u8]) -> Result<RawReply, Error> {
        self.submit_message(message, CallOptions::new()).await
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
        match deadline_after(timeout) {
            Some(deadline) => ::tokio::time::timeout_at(deadline.into(), idle)
                .await
                .map_err(|_| Error::Timeout),
            None => {
                idle.await;
                Ok(())
            }
        }
    }
}

/// Waiting methods of an async listener.
impl Subscription<Async> {
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
    /// [`Error::Timeout`] when none came in time; otherwise as [`Subscription::recv`].
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Event, Error> {
        match deadline_after(timeout) {
            Some(deadline) => ::tokio::time::timeout_at(deadline.into(), self.recv())
                .await
                .unwrap_or(Err(Error::Timeout)),
            None => self.recv().await,
        }
    }

    /// Waits for the first event named `name`, discarding others, for at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscription::recv_timeout`].
    pub async fn recv_named(&self, name: &str, timeout: Duration) -> Result<Event, Error> {
        let named = async {
            loop {
                let event = self.recv().await?;
                if event.name() == name {
                    return Ok(event);
                }
            }
        };
        match deadline_after(timeout) {
            Some(deadline) => ::tokio::time::timeout_at(deadline.into(), named)
                .await
                .unwrap_or(Err(Error::Timeout)),
            None => named.await,
        }
    }
}

/// Waiting methods of an async guest-agent client.
impl AsyncGuestAgentClient {
    /// Connects to an agent listening on a Unix socket and synchronises with it.
    ///
    /// # Errors
    /// As [`GuestAgentClient::connect_unix`](crate::GuestAgentClient::connect_unix).
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let path: PathBuf = path.as_ref().to_owned();
        let timeout = options.connect_timeout;
        let transport = blocking(move || Transport::connect_unix(path, timeout)).await?;
        Self::connect(transport, options).await
    }

    /// Opens a serial device or pty connected to the agent and synchronises with it.
    ///
    /// # Errors
    /// As [`AsyncGuestAgentClient::connect_unix`].
    pub async fn open_serial(
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let path: PathBuf = path.as_ref().to_owned();
        let transport = blocking(move || Transport::open_device(path)).await?;
        Self::connect(transport, options).await
    }

    /// Starts a guest-agent session over any transport with a descriptor.
    ///
    /// # Errors
    /// As [`AsyncGuestAgentClient::connect_unix`].
    pub async fn connect(transport: Transport, options: ConnectOptions) -> Result<Self, Error> {
        let client = ready(start_transport(transport, &options, Protocol::GuestAgent)?).await?;
        Ok(crate::AgentConnection { client })
    }

    /// Starts a guest-agent session over separate async read and write halves.
    ///
    /// # Errors
    /// As [`AsyncGuestAgentClient::connect_unix`].
    pub async fn connect_io(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let link = bridge(::tokio::io::join(reader, writer))?;
        let client = ready(Connecting::start(link, &options, Protocol::GuestAgent)?).await?;
        Ok(crate::AgentConnection { client })
    }

    /// Synchronises again and waits for the agent's answer.
    ///
    /// # Errors
    /// As [`GuestAgentClient::sync`](crate::GuestAgentClient::sync).
    pub async fn sync(&self) -> Result<u64, Error> {
        sync_value(&self.client.sync_body().await?)
    }

    /// Runs a typed command and waits for its reply.
    ///
    /// # Errors
    /// As [`Client::execute`](crate::Client::execute).
    pub async fn execute<C: Command>(&self, command: &C) -> Result<Reply<C>, Error> {
        self.client.execute(command).await
    }

    /// [`AsyncGuestAgentClient::execute`] with its own deadline.
    ///
    /// # Errors
    /// As [`AsyncGuestAgentClient::execute`].
    pub async fn execute_timeout<C: Command>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<Reply<C>, Error> {
        self.client.execute_timeout(command, timeout).await
    }

    /// Runs a typed command and maps its borrowed, typed response to an owned value.
    ///
    /// # Errors
    /// As [`AsyncClient::call`].
    pub async fn call<C, R, F>(&self, command: &C, map: F) -> Result<R, Error>
    where
        C: Command,
        F: for<'r> FnOnce(C::Response<'r>) -> R,
    {
        self.client.call(command, map).await
    }

    /// Runs a command by name with `serde_json` arguments and returns the `return`
    /// value.
    ///
    /// # Errors
    /// As [`Client::execute_value`](crate::Client::execute_value).
    pub async fn execute_value(
        &self,
        name: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        self.client.execute_value(name, arguments).await
    }

    /// Runs a command by name with its arguments as JSON text and waits for its reply.
    ///
    /// # Errors
    /// As [`Client::execute_json`](crate::Client::execute_json).
    pub async fn execute_json(
        &self,
        name: &str,
        arguments: Option<&[u8]>,
    ) -> Result<RawReply, Error> {
        self.client.execute_json(name, arguments).await
    }

    /// Sends a hand-built message and waits for its reply.
    ///
    /// # Errors
    /// As [`Client::execute_message`](crate::Client::execute_message).
    pub async fn execute_message(&self, message: &[u8]) -> Result<RawReply, Error> {
        self.client.execute_message(message).await
    }

    /// Waits until no call is outstanding, at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if calls are still outstanding then.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<(), Error> {
        self.client.wait_idle(timeout).await
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
        assert_send::<AsyncSubscription>();
        assert_send::<crate::Pending<Reply<qmp_core::commands::QueryVersion>>>();
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
            assert!(error.is_closed(), "{error:?}");
        });
    }
}
