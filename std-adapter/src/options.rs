//! Settings shared by the blocking and tokio clients: [`ConnectOptions`],
//! [`CallOptions`] and what the server told us about itself, [`ServerInfo`].

use core::time::Duration;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use qmp_core::client::Protocol;
use qmp_core::message::{Capabilities, Version};

/// How to connect and how the session behaves.
///
/// Defaults: connect timeout 10 s, greeting timeout 10 s, command timeout 30 s, OOB off,
/// 256 KiB receive buffer (the 236 KB `query-qmp-schema` of `qemu-system-x86_64`
/// fits), 64 KiB transmit buffer, 64 commands in flight, 1024 events and 4 MiB per
/// listener. Every timeout takes any `Duration`: one too large to represent as a
/// deadline means none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Bound on establishing the socket connection (`None`: the OS default).
    pub connect_timeout: Option<Duration>,
    /// How long to wait for the QMP greeting (and then for negotiation), or for the
    /// guest agent to answer the initial sync. QEMU serves one client per monitor: a
    /// second client connects fine and then hears nothing, which this turns into
    /// [`Error::AlreadyConnected`](crate::Error::AlreadyConnected). `None`: wait forever.
    pub greeting_timeout: Option<Duration>,
    /// The default deadline of every command (`None`: none). Per call, see
    /// [`CallOptions::timeout`].
    pub command_timeout: Option<Duration>,
    /// Ask for out-of-band execution if the server offers it.
    pub enable_oob: bool,
    /// Receive buffer: the largest message the client can take; larger replies fail
    /// with [`Error::ReplyTooLarge`](crate::Error::ReplyTooLarge) and the session goes
    /// on.
    pub rx_buffer_size: usize,
    /// Transmit buffer: the largest request that can be sent.
    pub tx_buffer_size: usize,
    /// Commands in flight at once (at most [`MAX_IN_FLIGHT`]). Further calls wait in the
    /// client, in order, and are sent as replies come back.
    pub max_in_flight: usize,
    /// Capacity of each event listener's queue (and of the callback queue), in events.
    pub event_queue_size: usize,
    /// Capacity of each event listener's queue (and of the callback queue), in bytes
    /// ([`Event::size`](crate::Event::size)): a listener that does not keep up holds at
    /// most this much, whatever the size of the events.
    pub event_queue_bytes: usize,
}

/// The default [`ConnectOptions::event_queue_bytes`]: 4 MiB.
pub const DEFAULT_EVENT_QUEUE_BYTES: usize = 4 << 20;

/// The deadline `timeout` from now; `None` (no deadline) when that is too far away to
/// represent: every `Duration` is accepted, `Duration::MAX` included.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The most commands the client keeps in flight (the core's in-flight table size).
pub const MAX_IN_FLIGHT: usize = crate::engine::CORE_CAPACITY;

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            greeting_timeout: Some(Duration::from_secs(10)),
            command_timeout: Some(Duration::from_secs(30)),
            enable_oob: false,
            rx_buffer_size: 256 * 1024,
            tx_buffer_size: 64 * 1024,
            max_in_flight: 64,
            event_queue_size: 1024,
            event_queue_bytes: DEFAULT_EVENT_QUEUE_BYTES,
        }
    }
}

impl ConnectOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`ConnectOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ConnectOptions::greeting_timeout`].
    pub fn greeting_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.greeting_timeout = timeout;
        self
    }

    /// Sets [`ConnectOptions::command_timeout`].
    pub fn command_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets [`ConnectOptions::enable_oob`].
    pub fn enable_oob(mut self, enable: bool) -> Self {
        self.enable_oob = enable;
        self
    }

    /// Sets [`ConnectOptions::rx_buffer_size`] (at least 1 KiB is used).
    pub fn rx_buffer_size(mut self, bytes: usize) -> Self {
        self.rx_buffer_size = bytes;
        self
    }

    /// Sets [`ConnectOptions::tx_buffer_size`] (at least 1 KiB is used).
    pub fn tx_buffer_size(mut self, bytes: usize) -> Self {
        self.tx_buffer_size = bytes;
        self
    }

    /// Sets [`ConnectOptions::max_in_flight`] (clamped to 1..=[`MAX_IN_FLIGHT`]).
    pub fn max_in_flight(mut self, count: usize) -> Self {
        self.max_in_flight = count;
        self
    }

    /// Sets [`ConnectOptions::event_queue_size`].
    pub fn event_queue_size(mut self, events: usize) -> Self {
        self.event_queue_size = events;
        self
    }

    /// Sets [`ConnectOptions::event_queue_bytes`].
    pub fn event_queue_bytes(mut self, bytes: usize) -> Self {
        self.event_queue_bytes = bytes;
        self
    }

    /// The core's session configuration for `protocol`.
    pub(crate) fn core_config(&self, protocol: Protocol) -> qmp_core::client::Config {
        let base = match protocol {
            Protocol::GuestAgent => qmp_core::client::Config::guest_agent(),
            _ => qmp_core::client::Config::qmp()
                .with_greeting_timeout(self.greeting_timeout.map(Into::into))
                .with_oob(self.enable_oob),
        };
        base.with_command_timeout(self.command_timeout.map(Into::into))
            .with_max_in_flight(self.in_flight_limit())
    }

    pub(crate) fn rx_size(&self) -> usize {
        self.rx_buffer_size.max(1024)
    }

    pub(crate) fn tx_size(&self) -> usize {
        self.tx_buffer_size.max(1024)
    }

    pub(crate) fn in_flight_limit(&self) -> usize {
        self.max_in_flight.clamp(1, MAX_IN_FLIGHT)
    }

    /// How long `connect` waits for the session to become ready, all steps included:
    /// the greeting timeout (enforced by the core) and as much again for negotiation.
    pub(crate) fn ready_wait(&self) -> Option<Duration> {
        self.greeting_timeout.map(|t| {
            t.saturating_mul(2)
                .saturating_add(Duration::from_millis(500))
        })
    }
}

/// A per-call deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timeout {
    /// [`ConnectOptions::command_timeout`].
    #[default]
    Default,
    /// No deadline: wait until the reply comes or the session ends.
    Never,
    /// This long from the call.
    After(Duration),
}

/// Options of one call: deadline, out-of-band execution, file descriptors to pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallOptions<'a> {
    /// The deadline.
    pub timeout: Timeout,
    /// Send with `exec-oob` (needs OOB negotiated and an `allow-oob` command).
    pub oob: bool,
    /// File descriptors to attach (`SCM_RIGHTS`) to this very command's message, for
    /// `add-fd` and `getfd`; Unix sockets only. The client duplicates them, so the
    /// caller keeps ownership of its own.
    pub fds: &'a [BorrowedFd<'a>],
}

impl<'a> CallOptions<'a> {
    /// Default options: default timeout, in-band, no descriptors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deadline `timeout` from now.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Timeout::After(timeout);
        self
    }

    /// No deadline at all.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Timeout::Never;
        self
    }

    /// Out-of-band execution.
    pub fn oob(mut self) -> Self {
        self.oob = true;
        self
    }

    /// File descriptors to pass with the command.
    pub fn fds(mut self, fds: &'a [BorrowedFd<'a>]) -> Self {
        self.fds = fds;
        self
    }
}

/// What the server said about itself when the session started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// QMP or guest agent.
    pub protocol: Protocol,
    /// The QEMU version from the greeting (`None` for the guest agent, which sends none).
    pub version: Option<Version>,
    /// The `package` string from the greeting (free-form, often empty).
    pub package: String,
    /// The capabilities offered in the greeting.
    pub capabilities: Option<Capabilities>,
    /// Whether out-of-band execution was negotiated.
    pub oob_enabled: bool,
}

impl ServerInfo {
    pub(crate) fn new(protocol: Protocol) -> Self {
        ServerInfo {
            protocol,
            version: None,
            package: String::new(),
            capabilities: None,
            oob_enabled: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_and_clamps() {
        let options = ConnectOptions::new()
            .greeting_timeout(Some(Duration::from_millis(100)))
            .max_in_flight(10_000)
            .rx_buffer_size(10)
            .enable_oob(true);
        assert_eq!(options.rx_size(), 1024);
        assert_eq!(options.ready_wait(), Some(Duration::from_millis(700)));
        let config = options.core_config(Protocol::Qmp);
        assert_eq!(config.max_in_flight, MAX_IN_FLIGHT);
        assert!(config.enable_oob);
        assert_eq!(
            config.greeting_timeout,
            Some(qmp_core::time::Duration::from_millis(100))
        );
        let agent = options.core_config(Protocol::GuestAgent);
        assert_eq!(agent.protocol, Protocol::GuestAgent);
        assert_eq!(
            agent.command_timeout,
            Some(qmp_core::time::Duration::from_secs(30))
        );
        let call = CallOptions::new().timeout(Duration::from_secs(1)).oob();
        assert_eq!(call.timeout, Timeout::After(Duration::from_secs(1)));
        assert!(call.oob);
        assert_eq!(CallOptions::new().no_timeout().timeout, Timeout::Never);
    }
}
