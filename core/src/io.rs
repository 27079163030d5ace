//! Drivers: run a [`Client`] over an `embedded-io` transport, so firmware needs no glue.
//!
//! [`BlockingDriver`] works over [`embedded_io::Read`] + [`embedded_io::Write`] +
//! [`embedded_io::ReadReady`] (readiness is polled so deadlines fire even when the peer
//! is silent) and [`AsyncDriver`] over their `embedded-io-async` counterparts plus a timer.
//! Both only move bytes and read the clock; every protocol decision stays in the client.
//!
//! ```no_run
//! use qmp_core::client::{Client, Config};
//! use qmp_core::commands::QueryStatus;
//! use qmp_core::io::{BlockingDriver, DriverError};
//! use qmp_core::time::Instant;
//!
//! /// The board's UART (here a stand-in that never has data).
//! struct Uart;
//! impl embedded_io::ErrorType for Uart {
//!     type Error = embedded_io::ErrorKind;
//! }
//! impl embedded_io::Read for Uart {
//!     fn read(&mut self, _buf: &mut [u8]) -> Result<usize, Self::Error> { Ok(0) }
//! }
//! impl embedded_io::ReadReady for Uart {
//!     fn read_ready(&mut self) -> Result<bool, Self::Error> { Ok(true) }
//! }
//! impl embedded_io::Write for Uart {
//!     fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> { Ok(buf.len()) }
//!     fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! }
//! /// The board's monotonic clock.
//! fn ticks() -> Instant { Instant::ZERO }
//!
//! let (mut rx, mut tx) = ([0u8; 4096], [0u8; 512]);
//! let mut client: Client<'_, 4> = Client::new(Config::qmp(), ticks(), &mut rx, &mut tx);
//! let mut driver = BlockingDriver::new(&mut client, Uart, ticks);
//! driver.wait_ready(|_event| {})?;
//! let running = driver.call(&QueryStatus, |_event| {}, |reply| match reply {
//!     Ok(status) => status.running,
//!     Err(_qmp_error) => false,
//! })?;
//! # let _ = running;
//! # Ok::<(), DriverError<embedded_io::ErrorKind>>(())
//! ```

use core::fmt;
use core::future::Future;
use core::pin::pin;
use core::task::Poll;

use crate::client::{Client, CloseReason, CommandFailure, CommandId, Event, ExecuteError, State};
use crate::commands::Command;
use crate::json::DecodeError;
use crate::message::QmpError;
use crate::time::Instant;

/// The caller's clock, read by the drivers (the client itself never reads one).
pub trait Clock {
    /// The current time on a monotonic clock.
    fn now(&self) -> Instant;
}

impl<F: Fn() -> Instant> Clock for F {
    fn now(&self) -> Instant {
        self()
    }
}

/// A clock that can also wait, for [`AsyncDriver`].
pub trait AsyncClock: Clock {
    /// Completes at or after `deadline`.
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()>;
}

/// Why a driver call did not produce a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DriverError<E> {
    /// The transport failed.
    Io(E),
    /// The transport accepted no bytes of a non-empty write.
    WriteZero,
    /// The session closed.
    Closed(CloseReason),
    /// The command could not be queued.
    Execute(ExecuteError),
    /// The command was resolved without a reply.
    Failed {
        /// The command.
        id: CommandId,
        /// Why.
        reason: CommandFailure,
    },
    /// The reply did not decode into the command's response type.
    Decode(DecodeError),
}

impl<E: fmt::Debug> fmt::Display for DriverError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Io(error) => write!(f, "transport error: {error:?}"),
            DriverError::WriteZero => f.write_str("transport accepted no bytes"),
            DriverError::Closed(reason) => write!(f, "session closed: {reason}"),
            DriverError::Execute(error) => write!(f, "{error}"),
            DriverError::Failed { id, reason } => write!(f, "command {id}: {reason}"),
            DriverError::Decode(error) => write!(f, "cannot decode reply: {error}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for DriverError<E> {}

impl<E> From<ExecuteError> for DriverError<E> {
    fn from(error: ExecuteError) -> Self {
        DriverError::Execute(error)
    }
}

/// What the drain loop found for the awaited command.
enum Found<R> {
    Nothing,
    Ready,
    Reply(R),
}

/// Drains the client's events; events other than the awaited outcome go to `on_event`.
fn drain<const N: usize, E, R>(
    client: &mut Client<'_, N>,
    awaited: Option<CommandId>,
    on_event: &mut impl FnMut(&Event<'_>),
    on_reply: &mut Option<impl FnOnce(Result<RawReply<'_>, QmpError<'_>>) -> R>,
) -> Result<Found<R>, DriverError<E>> {
    while let Some(event) = client.poll_event() {
        match event {
            Event::Response(response) if Some(response.id) == awaited => {
                let reply = response.result.map(RawReply);
                return match on_reply.take() {
                    Some(f) => Ok(Found::Reply(f(reply))),
                    None => Ok(Found::Nothing),
                };
            }
            Event::CommandFailed { id, reason } if Some(id) == awaited => {
                return Err(DriverError::Failed { id, reason });
            }
            Event::Closed(reason) => {
                on_event(&event);
                return Err(DriverError::Closed(reason));
            }
            Event::Ready if awaited.is_none() => {
                on_event(&event);
                return Ok(Found::Ready);
            }
            other => on_event(&other),
        }
    }
    Ok(Found::Nothing)
}

/// A raw `return` value handed to a driver's reply callback before decoding.
struct RawReply<'a>(crate::json::RawJson<'a>);

fn decode_reply<'a, C: Command>(
    reply: Result<RawReply<'a>, QmpError<'a>>,
) -> Result<Result<C::Response<'a>, QmpError<'a>>, DecodeError> {
    match reply {
        Ok(RawReply(raw)) => C::decode_response(raw).map(Ok),
        Err(error) => Ok(Err(error)),
    }
}

/// Runs a client over a blocking `embedded-io` transport.
pub struct BlockingDriver<'c, 'buf, T, K, const N: usize> {
    client: &'c mut Client<'buf, N>,
    io: T,
    clock: K,
}

impl<'c, 'buf, T, K, const N: usize> BlockingDriver<'c, 'buf, T, K, N>
where
    T: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady,
    K: Clock,
{
    /// Wraps a client, a transport and a clock.
    pub fn new(client: &'c mut Client<'buf, N>, io: T, clock: K) -> Self {
        BlockingDriver { client, io, clock }
    }

    /// The client, for direct use between calls.
    pub fn client(&mut self) -> &mut Client<'buf, N> {
        self.client
    }

    /// The transport.
    pub fn io(&mut self) -> &mut T {
        &mut self.io
    }

    /// Gives the transport back.
    pub fn into_io(self) -> T {
        self.io
    }

    /// Writes everything the client has queued.
    pub fn flush(&mut self) -> Result<(), DriverError<T::Error>> {
        while let Some(bytes) = self.client.poll_transmit() {
            let n = self.io.write(bytes).map_err(DriverError::Io)?;
            if n == 0 {
                return Err(DriverError::WriteZero);
            }
            self.client.mark_transmitted(n);
        }
        self.io.flush().map_err(DriverError::Io)
    }

    /// Waits for input until the client's next deadline, then feeds it (or the timeout)
    /// to the client. Call [`Client::poll_event`] afterwards.
    pub fn step(&mut self) -> Result<(), DriverError<T::Error>> {
        self.flush()?;
        loop {
            let now = self.clock.now();
            self.client.handle_timeout(now);
            if self
                .client
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now)
            {
                return Ok(());
            }
            if self.io.read_ready().map_err(DriverError::Io)? {
                break;
            }
            if self.client.state() == State::Closed {
                return Ok(());
            }
        }
        let window = self.client.rx_window();
        if window.is_empty() {
            // The receive buffer is full of events not yet drained.
            return Ok(());
        }
        let n = self.io.read(window).map_err(DriverError::Io)?;
        let now = self.clock.now();
        if n == 0 {
            self.client.handle_eof(now);
        } else {
            // A closed session ignores input; `poll_event` reports why.
            let _ = self.client.commit_rx(now, n);
        }
        Ok(())
    }

    /// Runs until the session is ready (QMP negotiation done, or a guest agent's first
    /// state). Other events go to `on_event`.
    pub fn wait_ready(
        &mut self,
        mut on_event: impl FnMut(&Event<'_>),
    ) -> Result<(), DriverError<T::Error>> {
        let mut no_reply: Option<fn(Result<RawReply<'_>, QmpError<'_>>)> = None;
        loop {
            if self.client.is_ready() {
                return Ok(());
            }
            if let Found::Ready = drain(self.client, None, &mut on_event, &mut no_reply)? {
                return Ok(());
            }
            if let Some(reason) = self.client.close_reason() {
                return Err(DriverError::Closed(reason));
            }
            self.step()?;
        }
    }

    /// Executes `command` and waits for its reply, which `on_reply` receives decoded
    /// (`Err` is the QMP error the server answered). Events arriving meanwhile go to
    /// `on_event`.
    pub fn call<C: Command, R>(
        &mut self,
        command: &C,
        mut on_event: impl FnMut(&Event<'_>),
        on_reply: impl FnOnce(Result<C::Response<'_>, QmpError<'_>>) -> R,
    ) -> Result<R, DriverError<T::Error>> {
        let id = self.client.execute(self.clock.now(), command)?;
        let mut on_reply = Some(move |reply: Result<RawReply<'_>, QmpError<'_>>| {
            decode_reply::<C>(reply).map(on_reply)
        });
        loop {
            match drain(self.client, Some(id), &mut on_event, &mut on_reply)? {
                Found::Reply(result) => return result.map_err(DriverError::Decode),
                Found::Nothing | Found::Ready => {}
            }
            self.step()?;
        }
    }
}

/// Runs a client over an `embedded-io-async` transport and an async timer.
pub struct AsyncDriver<'c, 'buf, T, K, const N: usize> {
    client: &'c mut Client<'buf, N>,
    io: T,
    clock: K,
}

impl<'c, 'buf, T, K, const N: usize> AsyncDriver<'c, 'buf, T, K, N>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
    K: AsyncClock,
{
    /// Wraps a client, a transport and a clock.
    pub fn new(client: &'c mut Client<'buf, N>, io: T, clock: K) -> Self {
        AsyncDriver { client, io, clock }
    }

    /// The client, for direct use between calls.
    pub fn client(&mut self) -> &mut Client<'buf, N> {
        self.client
    }

    /// Gives the transport back.
    pub fn into_io(self) -> T {
        self.io
    }

    /// Writes everything the client has queued.
    pub async fn flush(&mut self) -> Result<(), DriverError<T::Error>> {
        while let Some(bytes) = self.client.poll_transmit() {
            let n = self.io.write(bytes).await.map_err(DriverError::Io)?;
            if n == 0 {
                return Err(DriverError::WriteZero);
            }
            self.client.mark_transmitted(n);
        }
        self.io.flush().await.map_err(DriverError::Io)
    }

    /// Waits for input or the client's next deadline, whichever comes first, and feeds it
    /// to the client.
    pub async fn step(&mut self) -> Result<(), DriverError<T::Error>> {
        self.flush().await?;
        let now = self.clock.now();
        self.client.handle_timeout(now);
        if self.client.state() == State::Closed {
            return Ok(());
        }
        let deadline = self.client.poll_timeout();
        let window = self.client.rx_window();
        if window.is_empty() {
            return Ok(());
        }
        let read = {
            let mut read = pin!(self.io.read(window));
            let mut sleep = pin!(async {
                match deadline {
                    Some(deadline) => self.clock.sleep_until(deadline).await,
                    None => core::future::pending::<()>().await,
                }
            });
            core::future::poll_fn(|cx| {
                if let Poll::Ready(result) = read.as_mut().poll(cx) {
                    return Poll::Ready(Some(result));
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await
        };
        let now = self.clock.now();
        match read {
            Some(Ok(0)) => self.client.handle_eof(now),
            Some(Ok(n)) => {
                let _ = self.client.commit_rx(now, n);
            }
            Some(Err(error)) => return Err(DriverError::Io(error)),
            None => self.client.handle_timeout(now),
        }
        Ok(())
    }

    /// Runs until the session is ready. Other events go to `on_event`.
    pub async fn wait_ready(
        &mut self,
        mut on_event: impl FnMut(&Event<'_>),
    ) -> Result<(), DriverError<T::Error>> {
        let mut no_reply: Option<fn(Result<RawReply<'_>, QmpError<'_>>)> = None;
        loop {
            if self.client.is_ready() {
                return Ok(());
            }
            if let Found::Ready = drain(self.client, None, &mut on_event, &mut no_reply)? {
                return Ok(());
            }
            if let Some(reason) = self.client.close_reason() {
                return Err(DriverError::Closed(reason));
            }
            self.step().await?;
        }
    }

    /// Executes `command` and waits for its reply (see [`BlockingDriver::call`]).
    pub async fn call<C: Command, R>(
        &mut self,
        command: &C,
        mut on_event: impl FnMut(&Event<'_>),
        on_reply: impl FnOnce(Result<C::Response<'_>, QmpError<'_>>) -> R,
    ) -> Result<R, DriverError<T::Error>> {
        let id = self.client.execute(self.clock.now(), command)?;
        let mut on_reply = Some(move |reply: Result<RawReply<'_>, QmpError<'_>>| {
            decode_reply::<C>(reply).map(on_reply)
        });
        loop {
            match drain(self.client, Some(id), &mut on_event, &mut on_reply)? {
                Found::Reply(result) => return result.map_err(DriverError::Decode),
                Found::Nothing | Found::Ready => {}
            }
            self.step().await?;
        }
    }
}
