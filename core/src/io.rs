//! Drivers: run a [`Client`] over an `embedded-io` transport, so firmware needs no glue.
//!
//! [`BlockingDriver`] works over [`embedded_io::Read`] + [`embedded_io::Write`] +
//! [`embedded_io::ReadReady`] (readiness is polled so deadlines fire even when the peer
//! is silent) and [`AsyncDriver`] over their `embedded-io-async` counterparts plus a timer.
//! Both only move bytes and read the clock; every protocol decision stays in the client.
//!
//! `call` runs one command to its outcome (a reply, or its timeout from
//! [`Config`](crate::client::Config)); `wait_output(deadline, ..)` is the bounded wait of a
//! loop that only listens (for QMP events, say); `step` / `step_until` are the single turns both are
//! made of. Reply callbacks are best passed as closures: a generic `fn` item may not be
//! general enough over the reply's lifetime.
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

use crate::client::{Client, CloseReason, CommandFailure, CommandId, ExecuteError, Output, State};
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

/// Drains the client's outputs; those other than the awaited outcome go to `on_output`.
fn drain<const N: usize, E, R>(
    client: &mut Client<'_, N>,
    awaited: Option<CommandId>,
    on_output: &mut impl FnMut(&Output<'_>),
    on_reply: &mut Option<impl FnOnce(Result<RawReply<'_>, QmpError<'_>>) -> R>,
) -> Result<Found<R>, DriverError<E>> {
    while let Some(event) = client.poll_output() {
        match event {
            Output::Response(response) if Some(response.id) == awaited => {
                let reply = response.result.map(RawReply);
                return match on_reply.take() {
                    Some(f) => Ok(Found::Reply(f(reply))),
                    None => Ok(Found::Nothing),
                };
            }
            Output::CommandFailed { id, reason } if Some(id) == awaited => {
                return Err(DriverError::Failed { id, reason });
            }
            Output::Closed(reason) => {
                on_output(&event);
                return Err(DriverError::Closed(reason));
            }
            Output::Ready if awaited.is_none() => {
                on_output(&event);
                return Ok(Found::Ready);
            }
            other => on_output(&other),
        }
    }
    Ok(Found::Nothing)
}

/// Hands every output the client has to `on_output`; true if there was at least one.
fn deliver_all<const N: usize>(
    client: &mut Client<'_, N>,
    on_output: &mut impl FnMut(&Output<'_>),
) -> bool {
    let mut delivered = false;
    while let Some(event) = client.poll_output() {
        delivered = true;
        on_output(&event);
    }
    delivered
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
///
/// While it waits it polls [`embedded_io::ReadReady`] and the clock in a loop; give it an
/// idle hook ([`BlockingDriver::with_idle`], e.g. `cortex_m::asm::wfi`) to sleep between
/// polls.
pub struct BlockingDriver<'c, 'buf, T, K, const N: usize> {
    client: &'c mut Client<'buf, N>,
    io: T,
    clock: K,
    idle: fn(),
}

/// The default idle hook: keep polling.
fn keep_polling() {}

impl<'c, 'buf, T, K, const N: usize> BlockingDriver<'c, 'buf, T, K, N>
where
    T: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady,
    K: Clock,
{
    /// Wraps a client, a transport and a clock.
    pub fn new(client: &'c mut Client<'buf, N>, io: T, clock: K) -> Self {
        BlockingDriver {
            client,
            io,
            clock,
            idle: keep_polling,
        }
    }

    /// Calls `idle` each time a wait finds no input and no deadline reached (for example
    /// `cortex_m::asm::wfi`, woken by the UART or timer interrupt).
    #[must_use]
    pub fn with_idle(mut self, idle: fn()) -> Self {
        self.idle = idle;
        self
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
    /// to the client. Call [`Client::poll_output`] afterwards.
    pub fn step(&mut self) -> Result<(), DriverError<T::Error>> {
        self.step_until(None)
    }

    /// Like [`BlockingDriver::step`], but also returns once `deadline` passes with nothing
    /// received: the bounded wait of a loop that only listens.
    pub fn step_until(&mut self, deadline: Option<Instant>) -> Result<(), DriverError<T::Error>> {
        self.flush()?;
        loop {
            let now = self.clock.now();
            if self.client.expire(now) {
                // Resolved what timed out; the caller drains the outputs.
                return Ok(());
            }
            if self.io.read_ready().map_err(DriverError::Io)? {
                break;
            }
            if self.client.state() == State::Closed || deadline.is_some_and(|d| d <= now) {
                return Ok(());
            }
            (self.idle)();
        }
        let window = self.client.rx_window();
        if window.is_empty() {
            // The receive buffer is full of outputs not yet drained.
            return Ok(());
        }
        let n = self.io.read(window).map_err(DriverError::Io)?;
        if n == 0 {
            self.client.handle_eof();
        } else {
            // A closed session ignores input; `poll_output` reports why.
            let _ = self.client.commit_rx(n);
        }
        Ok(())
    }

    /// Runs until at least one output was handed to `on_output` (then returns `Ok(true)`
    /// after delivering every output already received) or until `deadline` passes with
    /// none (`Ok(false)`); `None` waits without limit. The session's end is delivered as
    /// [`Output::Closed`] once; waiting on a closed session is [`DriverError::Closed`].
    pub fn wait_output(
        &mut self,
        deadline: Option<Instant>,
        mut on_output: impl FnMut(&Output<'_>),
    ) -> Result<bool, DriverError<T::Error>> {
        loop {
            if deliver_all(self.client, &mut on_output) {
                return Ok(true);
            }
            if let Some(reason) = self.client.close_reason() {
                return Err(DriverError::Closed(reason));
            }
            if deadline.is_some_and(|d| d <= self.clock.now()) {
                return Ok(false);
            }
            self.step_until(deadline)?;
        }
    }

    /// Runs until the session is ready (QMP negotiation done, or a guest agent's first
    /// state). Other outputs go to `on_output`.
    pub fn wait_ready(
        &mut self,
        mut on_output: impl FnMut(&Output<'_>),
    ) -> Result<(), DriverError<T::Error>> {
        let mut no_reply: Option<fn(Result<RawReply<'_>, QmpError<'_>>)> = None;
        loop {
            if self.client.sends_at_once() {
                return Ok(());
            }
            if let Found::Ready = drain(self.client, None, &mut on_output, &mut no_reply)? {
                return Ok(());
            }
            if let Some(reason) = self.client.close_reason() {
                return Err(DriverError::Closed(reason));
            }
            self.step()?;
        }
    }

    /// Executes `command` and waits for its reply, which `on_reply` receives decoded
    /// (`Err` is the QMP error the server answered). Outputs arriving meanwhile go to
    /// `on_output`.
    pub fn call<C: Command, R>(
        &mut self,
        command: &C,
        mut on_output: impl FnMut(&Output<'_>),
        on_reply: impl FnOnce(Result<C::Response<'_>, QmpError<'_>>) -> R,
    ) -> Result<R, DriverError<T::Error>> {
        let id = self.client.execute(self.clock.now(), command)?;
        let mut on_reply = Some(move |reply: Result<RawReply<'_>, QmpError<'_>>| {
            decode_reply::<C>(reply).map(on_reply)
        });
        loop {
            match drain(self.client, Some(id), &mut on_output, &mut on_reply)? {
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
    ///
    /// Cancel-safe when the transport's `read` and `write` are: the client takes bytes
    /// only from a completed read and marks bytes sent only after a completed write, so
    /// dropping this future (e.g. in a `select`) loses no input, and the next call writes
    /// again from the last completed write.
    pub async fn step(&mut self) -> Result<(), DriverError<T::Error>> {
        self.step_until(None).await
    }

    /// Like [`AsyncDriver::step`], but also returns once `deadline` passes with nothing
    /// received.
    pub async fn step_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(), DriverError<T::Error>> {
        self.flush().await?;
        let now = self.clock.now();
        if self.client.poll_timeout().is_some_and(|due| due <= now) {
            self.client.handle_timeout(now);
            return Ok(());
        }
        if self.client.state() == State::Closed || deadline.is_some_and(|d| d <= now) {
            return Ok(());
        }
        let wake_at = match (self.client.poll_timeout(), deadline) {
            (Some(a), Some(b)) => Some(if a <= b { a } else { b }),
            (a, b) => a.or(b),
        };
        let window = self.client.rx_window();
        if window.is_empty() {
            return Ok(());
        }
        let read = {
            let mut read = pin!(self.io.read(window));
            let mut sleep = pin!(async {
                match wake_at {
                    Some(wake_at) => self.clock.sleep_until(wake_at).await,
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
        match read {
            Some(Ok(0)) => self.client.handle_eof(),
            Some(Ok(n)) => {
                let _ = self.client.commit_rx(n);
            }
            Some(Err(error)) => return Err(DriverError::Io(error)),
            None => self.client.handle_timeout(self.clock.now()),
        }
        Ok(())
    }

    /// Runs until at least one output was handed to `on_output` (`Ok(true)`) or `deadline`
    /// passes with none (`Ok(false)`); see [`BlockingDriver::wait_output`].
    pub async fn wait_output(
        &mut self,
        deadline: Option<Instant>,
        mut on_output: impl FnMut(&Output<'_>),
    ) -> Result<bool, DriverError<T::Error>> {
        loop {
            if deliver_all(self.client, &mut on_output) {
                return Ok(true);
            }
            if let Some(reason) = self.client.close_reason() {
                return Err(DriverError::Closed(reason));
            }
            if deadline.is_some_and(|d| d <= self.clock.now()) {
                return Ok(false);
            }
            self.step_until(deadline).await?;
        }
    }

    /// Runs until the session is ready. Other outputs go to `on_output`.
    pub async fn wait_ready(
        &mut self,
        mut on_output: impl FnMut(&Output<'_>),
    ) -> Result<(), DriverError<T::Error>> {
        let mut no_reply: Option<fn(Result<RawReply<'_>, QmpError<'_>>)> = None;
        loop {
            if self.client.sends_at_once() {
                return Ok(());
            }
            if let Found::Ready = drain(self.client, None, &mut on_output, &mut no_reply)? {
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
        mut on_output: impl FnMut(&Output<'_>),
        on_reply: impl FnOnce(Result<C::Response<'_>, QmpError<'_>>) -> R,
    ) -> Result<R, DriverError<T::Error>> {
        let id = self.client.execute(self.clock.now(), command)?;
        let mut on_reply = Some(move |reply: Result<RawReply<'_>, QmpError<'_>>| {
            decode_reply::<C>(reply).map(on_reply)
        });
        loop {
            match drain(self.client, Some(id), &mut on_output, &mut on_reply)? {
                Found::Reply(result) => return result.map_err(DriverError::Decode),
                Found::Nothing | Found::Ready => {}
            }
            self.step().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The drivers over an in-memory transport whose bytes arrive at scripted times, with
    //! a clock that advances one millisecond each time it is read (so waits end).
    use super::*;
    use crate::client::Config;
    use crate::commands::QueryStatus;
    use crate::time::Duration;
    use core::cell::{Cell, RefCell};
    use core::sync::atomic::{AtomicUsize, Ordering};
    use core::task::{Context, Waker};
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::string::String;
    use std::vec::Vec;

    const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";

    /// Milliseconds since the start of the test, shared by the clock and the transport.
    #[derive(Clone, Default)]
    struct TestClock(Rc<Cell<u64>>);

    impl TestClock {
        fn millis(&self) -> u64 {
            self.0.get()
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> Instant {
            let now = self.0.get();
            self.0.set(now + 1);
            Instant::from_millis(now)
        }
    }

    impl AsyncClock for TestClock {
        async fn sleep_until(&self, deadline: Instant) {
            let millis = deadline.as_millis();
            if self.0.get() < millis {
                self.0.set(millis);
            }
        }
    }

    /// Server bytes released at given times; what the client writes is kept, and every
    /// `qmp_capabilities` request is answered at once.
    struct ScriptedServer {
        clock: TestClock,
        incoming: VecDeque<(u64, Vec<u8>)>,
        end_of_stream_at: Option<u64>,
        written: Rc<RefCell<Vec<u8>>>,
    }

    impl ScriptedServer {
        fn new(clock: &TestClock) -> Self {
            ScriptedServer {
                clock: clock.clone(),
                incoming: VecDeque::from([(0, GREETING.to_vec())]),
                end_of_stream_at: None,
                written: Rc::default(),
            }
        }

        fn send_at(mut self, millis: u64, bytes: &[u8]) -> Self {
            self.incoming.push_back((millis, bytes.to_vec()));
            self
        }

        fn close_at(mut self, millis: u64) -> Self {
            self.end_of_stream_at = Some(millis);
            self
        }

        fn ready(&self) -> bool {
            let now = self.clock.millis();
            self.incoming.front().is_some_and(|(at, _)| *at <= now)
                || (self.incoming.is_empty() && self.end_of_stream_at.is_some_and(|at| at <= now))
        }

        fn take(&mut self, buf: &mut [u8]) -> usize {
            let Some((at, mut bytes)) = self.incoming.pop_front() else {
                return 0;
            };
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            if n < bytes.len() {
                bytes.drain(..n);
                self.incoming.push_front((at, bytes));
            }
            n
        }
    }

    impl embedded_io::ErrorType for ScriptedServer {
        type Error = embedded_io::ErrorKind;
    }

    impl embedded_io::ReadReady for ScriptedServer {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(self.ready())
        }
    }

    impl embedded_io::Read for ScriptedServer {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            assert!(
                self.ready(),
                "the blocking driver read before ReadReady said so"
            );
            Ok(self.take(buf))
        }
    }

    impl embedded_io_async::Read for ScriptedServer {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            core::future::poll_fn(|_| {
                if self.ready() {
                    Poll::Ready(Ok(self.take(buf)))
                } else {
                    Poll::Pending
                }
            })
            .await
        }
    }

    impl ScriptedServer {
        fn accept(&mut self, buf: &[u8]) -> usize {
            self.written.borrow_mut().extend_from_slice(buf);
            let text = String::from_utf8_lossy(&self.written.borrow()).into_owned();
            if buf.ends_with(b"\n")
                && text
                    .lines()
                    .last()
                    .is_some_and(|l| l.contains("qmp_capabilities"))
            {
                let now = self.clock.millis();
                self.incoming
                    .push_front((now, b"{\"return\": {}}\r\n".to_vec()));
            }
            buf.len()
        }
    }

    impl embedded_io::Write for ScriptedServer {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            Ok(self.accept(buf))
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    impl embedded_io_async::Write for ScriptedServer {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            Ok(self.accept(buf))
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// Polls `future` to completion, failing the test if it stays pending too long.
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut context = Context::from_waker(Waker::noop());
        for _ in 0..1_000_000 {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
        }
        panic!("the future never completed");
    }

    fn names(events: &[String]) -> Vec<&str> {
        events.iter().map(String::as_str).collect()
    }

    fn describe(event: &Output<'_>) -> String {
        match event {
            Output::AsyncEvent(event) => {
                std::format!("event {}", event.name.as_plain().unwrap_or("?"))
            }
            Output::Closed(reason) => std::format!("closed: {reason}"),
            other => std::format!("{other:?}"),
        }
    }

    #[test]
    fn blocking_wait_output_returns_at_its_deadline_when_the_peer_is_silent() {
        let clock = TestClock::default();
        let (mut rx, mut tx) = ([0u8; 512], [0u8; 256]);
        let mut client: Client<'_, 2> = Client::new(Config::qmp(), Instant::ZERO, &mut rx, &mut tx);
        let server = ScriptedServer::new(&clock);
        let mut driver = BlockingDriver::new(&mut client, server, clock.clone());
        driver.wait_ready(|_| {}).unwrap();
        let deadline = Instant::from_millis(clock.millis() + 100);
        let mut seen = Vec::new();
        assert_eq!(
            driver.wait_output(Some(deadline), |e| seen.push(describe(e))),
            Ok(false)
        );
        assert!(seen.is_empty(), "{seen:?}");
        assert!(clock.millis() >= deadline.as_millis());
        assert!(
            clock.millis() <= deadline.as_millis() + 3,
            "overslept to {}",
            clock.millis()
        );
    }

    #[test]
    fn blocking_wait_output_delivers_what_arrives_before_the_deadline() {
        let clock = TestClock::default();
        let (mut rx, mut tx) = ([0u8; 512], [0u8; 256]);
        let mut client: Client<'_, 2> = Client::new(Config::qmp(), Instant::ZERO, &mut rx, &mut tx);
        let server = ScriptedServer::new(&clock).send_at(
            50,
            b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n{\"timestamp\": {\"seconds\": 1, \"microseconds\": 3}, \"event\": \"RESUME\"}\r\n",
        );
        let mut driver = BlockingDriver::new(&mut client, server, clock.clone());
        driver.wait_ready(|_| {}).unwrap();
        let mut seen = Vec::new();
        let deadline = Some(Instant::from_millis(1_000));
        assert_eq!(
            driver.wait_output(deadline, |e| seen.push(describe(e))),
            Ok(true)
        );
        assert_eq!(names(&seen), ["event STOP", "event RESUME"]);
        assert!(
            (50..60).contains(&clock.millis()),
            "returned at {} ms",
            clock.millis()
        );
    }

    #[test]
    fn blocking_wait_output_reports_the_end_once_then_an_error() {
        let clock = TestClock::default();
        let (mut rx, mut tx) = ([0u8; 512], [0u8; 256]);
        let mut client: Client<'_, 2> = Client::new(Config::qmp(), Instant::ZERO, &mut rx, &mut tx);
        let server = ScriptedServer::new(&clock).close_at(20);
        let mut driver = BlockingDriver::new(&mut client, server, clock.clone());
        driver.wait_ready(|_| {}).unwrap();
        let mut seen = Vec::new();
        assert_eq!(
            driver.wait_output(None, |e| seen.push(describe(e))),
            Ok(true)
        );
        assert_eq!(seen.len(), 1);
        assert!(seen[0].starts_with("closed"), "{seen:?}");
        assert!(matches!(
            driver.wait_output(None, |_| {}),
            Err(DriverError::Closed(_))
        ));
    }

    #[test]
    fn blocking_wait_lets_a_command_time_out_inside_the_callers_deadline() {
        let clock = TestClock::default();
        let (mut rx, mut tx) = ([0u8; 512], [0u8; 256]);
        let config = Config::qmp().with_command_timeout(Some(Duration::from_millis(30)));
        let mut client: Client<'_, 2> = Client::new(config, Instant::ZERO, &mut rx, &mut tx);
        let server = ScriptedServer::new(&clock);
        let mut driver = BlockingDriver::new(&mut client, server, clock.clone());
        driver.wait_ready(|_| {}).unwrap();
        let id = driver.client().execute(clock.now(), &QueryStatus).unwrap();
        let mut failed = Vec::new();
        let found = driver.wait_output(Some(Instant::from_millis(10_000)), |event| {
            if let Output::CommandFailed { id, reason } = event {
                failed.push((*id, *reason));
            }
        });
        assert_eq!(found, Ok(true));
        assert_eq!(failed, [(id, CommandFailure::TimedOut)]);
        assert!(
            clock.millis() < 100,
            "timed out only at {} ms",
            clock.millis()
        );
    }

    static IDLE_CALLS: AtomicUsize = AtomicUsize::new(0);

    fn count_idle() {
        IDLE_CALLS.fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn blocking_driver_calls_the_idle_hook_while_it_waits() {
        let clock = TestClock::default();
        let (mut rx, mut tx) = ([0u8; 512], [0u8; 256]);
        let mut client: Client<'_, 2> = Client::new(Config::qmp(), Instant::ZERO, &mut rx, &mut tx);
        let server = ScriptedServer::new(&clock);
        let mut driver =
            BlockingDriver::new(&mut client, server, clock.clone()).with_idle(count_idle);
        driver.wait_ready(|_| {}).unwrap();
        let before = IDLE_CALLS.load(Ordering::Relaxed);
        let deadline = Instant::from_millis(clock.millis() + 40);
        assert_eq!(driver.wait_output(Some(deadline), |_| {}), Ok(false));
        assert!(IDLE_CALLS.load(Ordering::Relaxed) - before >= 10);
    }

    #[test]
    fn async_wait_output_sleeps_to_its_deadline_or_delivers_what_arrives() {
        let clock = TestClock::default();
        let (mut rx, mut tx) = ([0u8; 512], [0u8; 256]);
        let mut client: Client<'_, 2> = Client::new(Config::qmp(), Instant::ZERO, &mut rx, &mut tx);
        let server = ScriptedServer::new(&clock).send_at(
            500,
            b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n",
        );
        let mut driver = AsyncDriver::new(&mut client, server, clock.clone());
        block_on(driver.wait_ready(|_| {})).unwrap();
        let mut seen = Vec::new();
        let first = Instant::from_millis(200);
        assert_eq!(
            block_on(driver.wait_output(Some(first), |e| seen.push(describe(e)))),
            Ok(false)
        );
        assert!(seen.is_empty());
        assert!(
            (200..210).contains(&clock.millis()),
            "woke at {} ms",
            clock.millis()
        );
        clock.0.set(500);
        let second = Instant::from_millis(1_000);
        assert_eq!(
            block_on(driver.wait_output(Some(second), |e| seen.push(describe(e)))),
            Ok(true)
        );
        assert_eq!(names(&seen), ["event STOP"]);
    }
    /// A driver call that ended at its command timeout, within 100 ms of test time.
    fn assert_timed_out<T: core::fmt::Debug>(
        outcome: Result<T, DriverError<embedded_io::ErrorKind>>,
        clock: &TestClock,
    ) {
        assert!(
            matches!(
                outcome,
                Err(DriverError::Failed {
                    reason: CommandFailure::TimedOut,
                    ..
                })
            ),
            "{outcome:?}"
        );
        assert!(
            clock.millis() < 100,
            "the call ended at {} ms",
            clock.millis()
        );
    }

    #[test]
    fn a_call_to_a_silent_server_ends_at_the_command_timeout() {
        let config = Config::qmp().with_command_timeout(Some(Duration::from_millis(30)));
        let clock = TestClock::default();
        let (mut rx, mut tx) = ([0u8; 512], [0u8; 256]);
        let mut client: Client<'_, 2> = Client::new(config, Instant::ZERO, &mut rx, &mut tx);
        let mut driver =
            BlockingDriver::new(&mut client, ScriptedServer::new(&clock), clock.clone());
        driver.wait_ready(|_| {}).unwrap();
        assert_timed_out(
            driver.call(&QueryStatus, |_| {}, |reply| reply.is_ok()),
            &clock,
        );

        let clock = TestClock::default();
        let (mut rx, mut tx) = ([0u8; 512], [0u8; 256]);
        let mut client: Client<'_, 2> = Client::new(config, Instant::ZERO, &mut rx, &mut tx);
        let mut driver = AsyncDriver::new(&mut client, ScriptedServer::new(&clock), clock.clone());
        block_on(driver.wait_ready(|_| {})).unwrap();
        assert_timed_out(
            block_on(driver.call(&QueryStatus, |_| {}, |reply| reply.is_ok())),
            &clock,
        );
    }
}
