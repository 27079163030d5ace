//! Async support for the firmware's `embedded-io-async` variant: the UART and the clock as
//! futures, and the smallest executor that runs one.
//!
//! The futures are polled, not interrupt-driven: a future that cannot finish yet asks to
//! be polled again at once, and [`block_on`] keeps polling. An embassy-style executor with
//! the UART's RX interrupt wired to a waker would sleep in between instead; qmp-core's
//! `AsyncDriver` works the same over either.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use qmp_core::io::{AsyncClock, Clock};
use qmp_core::time::Instant;

use crate::clock;
use crate::uart::{CmsdkUart, UartError};

/// Runs `future` to completion on the current core, polling it continuously.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// Completes with `future`'s output, or with `None` once the clock reaches `deadline`.
pub async fn with_deadline<F: Future>(deadline: Instant, future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if clock::now() >= deadline {
            return Poll::Ready(None);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// TIMER0's clock ([`clock::now`]) as the async driver's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimerClock;

impl Clock for TimerClock {
    fn now(&self) -> Instant {
        clock::now()
    }
}

impl AsyncClock for TimerClock {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> {
        poll_fn(move |cx| {
            if clock::now() >= deadline {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }
}

impl embedded_io_async::Read for CmsdkUart {
    /// Waits for the first byte, then takes every byte already there (as the blocking
    /// `read`). Cancel-safe: a byte is only taken by the poll that completes.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| match embedded_io::ReadReady::read_ready(self) {
            Ok(true) => Poll::Ready(embedded_io::Read::read(self, buf)),
            Ok(false) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(error) => Poll::Ready(Err(error)),
        })
        .await
    }
}

impl embedded_io_async::Write for CmsdkUart {
    /// Waits until the transmitter takes a byte, then writes as many as it takes.
    async fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            if self.tx_ready() {
                Poll::Ready(embedded_io::Write::write(self, buf))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), UartError> {
        poll_fn(|cx| {
            if self.tx_ready() {
                Poll::Ready(Ok(()))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }
}
