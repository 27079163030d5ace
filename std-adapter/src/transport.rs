//! Byte transports to a QMP or QGA server: Unix and TCP sockets, a child process's
//! stdio, serial/character devices, and any `Read + Write` stream.
//!
//! [`Transport`] is one type for all of them, so the clients above it are written once
//! (they hand it to the IO engine, which drives its descriptors without blocking).
//! It offers what a client needs and nothing more: reads with an optional deadline,
//! writes, [`Transport::send_with_fds`] (Unix sockets only), a [`Transport::shutdown`]
//! that wakes a reader blocked in another clone, and [`Transport::try_clone`] so one
//! reader thread and any number of writers can share the connection.
//!
//! Deadlines are implemented with `poll(2)` on the descriptor rather than with
//! `SO_RCVTIMEO`: socket options are shared by every clone of a socket, so a timeout set
//! by one user would leak into the others.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    connect, socket_with, sockopt, AddressFamily, SendFlags, SocketAddrUnix, SocketFlags,
    SocketType,
};

use crate::fdpass;

/// Which kind of channel a [`Transport`] runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// A Unix stream socket (the only kind that can pass file descriptors).
    Unix,
    /// A TCP connection.
    Tcp,
    /// The stdin/stdout pipes of a child process (`qemu ... -qmp stdio`).
    ChildStdio,
    /// A character device or FIFO opened read-write (serial port, pty).
    Device,
    /// A caller-supplied `Read + Write` stream.
    Stream,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unix => "unix socket",
            Self::Tcp => "tcp connection",
            Self::ChildStdio => "child process stdio",
            Self::Device => "character device",
            Self::Stream => "custom stream",
        })
    }
}

/// A `Read + Write + Send` stream behind a [`Transport`].
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// The channel itself.
enum Channel {
    Unix(UnixStream),
    Tcp(TcpStream),
    Pipes { reader: File, writer: File },
    Device(File),
    Stream(Box<dyn Stream>),
}

/// State shared by all clones of one transport.
#[derive(Debug)]
struct Shared {
    /// Set by [`Transport::shutdown`]; reads then return end of stream, writes fail.
    shut_down: AtomicBool,
    /// Read end of a wake-up pipe, polled beside the data descriptor of channels that
    /// have no `shutdown(2)` (pipes, devices). It turns readable (hang-up) when
    /// `wake_write` is dropped.
    wake_read: Option<OwnedFd>,
    /// Write end of the wake-up pipe; dropped by [`Transport::shutdown`].
    wake_write: Mutex<Option<OwnedFd>>,
}

impl Shared {
    fn new(with_wake_pipe: bool) -> io::Result<Arc<Self>> {
        let (wake_read, wake_write) = if with_wake_pipe {
            let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            (Some(read), Some(write))
        } else {
            (None, None)
        };
        Ok(Arc::new(Self {
            shut_down: AtomicBool::new(false),
            wake_read,
            wake_write: Mutex::new(wake_write),
        }))
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }
}

/// A bidirectional byte channel to a QMP or QGA server.
///
/// Reads and writes take `&mut self`; to read on one thread and write on others, make a
/// clone per user with [`Transport::try_clone`]. [`Read`] and [`Write`] are implemented
/// (a plain `read` waits without a deadline).
pub struct Transport {
    channel: Channel,
    shared: Arc<Shared>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("kind", &self.kind())
            .field("shut_down", &self.shared.is_shut_down())
            .finish()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "read deadline passed")
}

fn shut_down_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "transport was shut down")
}

/// Time left until `deadline`, or a timed-out error if it has passed.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(timed_out())
    } else {
        Ok(left)
    }
}

impl Transport {
    fn new(channel: Channel) -> io::Result<Self> {
        let needs_wake_pipe = matches!(channel, Channel::Pipes { .. } | Channel::Device(_));
        Ok(Self {
            channel,
            shared: Shared::new(needs_wake_pipe)?,
        })
    }

    /// Connects to the Unix socket at `path`.
    ///
    /// With a `timeout`, the connection attempt is bounded: a listener whose backlog is
    /// full (QEMU serves one client per monitor and queues the next ones) is retried
    /// until the timeout passes, then [`io::ErrorKind::TimedOut`] is returned. Without
    /// one, this blocks like [`UnixStream::connect`]. A missing socket or a refused
    /// connection fails at once either way.
    ///
    /// # Errors
    /// `connect(2)` errors, [`io::ErrorKind::TimedOut`], or an invalid path.
    pub fn connect_unix(path: impl AsRef<Path>, timeout: Option<Duration>) -> io::Result<Self> {
        let path = path.as_ref();
        let Some(deadline) = timeout.and_then(|t| Instant::now().checked_add(t)) else {
            return Self::new(Channel::Unix(UnixStream::connect(path)?));
        };
        let address = SocketAddrUnix::new(path)?;
        loop {
            let socket = socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )?;
            match connect(&socket, &address) {
                Ok(()) => return Self::from_connected_unix_fd(socket),
                Err(Errno::INPROGRESS) => {
                    wait_writable(socket.as_fd(), deadline)?;
                    sockopt::socket_error(&socket)??;
                    return Self::from_connected_unix_fd(socket);
                }
                Err(Errno::AGAIN | Errno::INTR) => {
                    // Backlog full: the server is busy with other clients. Try again.
                    let left = remaining(deadline)?;
                    std::thread::sleep(left.min(Duration::from_millis(10)));
                }
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    fn from_connected_unix_fd(socket: OwnedFd) -> io::Result<Self> {
        rustix::io::ioctl_fionbio(&socket, false)?;
        Self::new(Channel::Unix(UnixStream::from(socket)))
    }

    /// Connects to a TCP address, trying each resolved address in turn.
    ///
    /// Each attempt is bounded by `timeout` (via [`TcpStream::connect_timeout`]) when one
    /// is given. `TCP_NODELAY` is set: QMP is request/response and must not wait for
    /// Nagle's algorithm.
    ///
    /// # Errors
    /// The last connection error, or [`io::ErrorKind::InvalidInput`] if the address
    /// resolves to nothing.
    pub fn connect_tcp(addr: impl ToSocketAddrs, timeout: Option<Duration>) -> io::Result<Self> {
        let mut last_error = None;
        for address in addr.to_socket_addrs()? {
            let attempt = match timeout {
                Some(timeout) => TcpStream::connect_timeout(&address, timeout),
                None => TcpStream::connect(address),
            };
            match attempt {
                Ok(stream) => return Self::from_tcp_stream(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
        }))
    }

    /// Wraps a connected Unix socket.
    ///
    /// # Errors
    /// Only if the shutdown bookkeeping cannot be allocated.
    pub fn from_unix_stream(stream: UnixStream) -> io::Result<Self> {
        Self::new(Channel::Unix(stream))
    }

    /// Wraps a connected TCP stream, setting `TCP_NODELAY`.
    ///
    /// # Errors
    /// If `TCP_NODELAY` cannot be set.
    pub fn from_tcp_stream(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Self::new(Channel::Tcp(stream))
    }

    /// Talks to a child process over its stdio: writes go to `stdin`, reads come from
    /// `stdout` (`qemu-system-x86_64 ... -qmp stdio`).
    ///
    /// # Errors
    /// If the wake-up pipe for [`Transport::shutdown`] cannot be created.
    pub fn from_child_stdio(stdin: ChildStdin, stdout: ChildStdout) -> io::Result<Self> {
        Self::new(Channel::Pipes {
            reader: File::from(OwnedFd::from(stdout)),
            writer: File::from(OwnedFd::from(stdin)),
        })
    }

    /// Takes the piped stdin and stdout out of `child` and talks over them, as
    /// [`Transport::from_child_stdio`].
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] if the child was not spawned with both
    /// `stdin(Stdio::piped())` and `stdout(Stdio::piped())` (or they were taken already).
    pub fn from_child(child: &mut Child) -> io::Result<Self> {
        match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => Self::from_child_stdio(stdin, stdout),
            (stdin, stdout) => {
                child.stdin = stdin;
                child.stdout = stdout;
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "child process needs piped stdin and stdout",
                ))
            }
        }
    }

    /// Opens a character device, FIFO or pty at `path` read-write (for the guest agent
    /// over a chardev), as [`Transport::from_device`].
    ///
    /// The device is opened with `O_NOCTTY` so it never becomes the controlling terminal.
    ///
    /// # Errors
    /// `open(2)` errors, or a terminal whose mode cannot be set.
    pub fn open_device(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
            .open(path)?;
        Self::from_device(file)
    }

    /// Talks over an already open character device, FIFO or pty.
    ///
    /// A terminal is switched to raw mode (no echo, no line editing, no CR/LF
    /// translation), since QMP and QGA are byte streams.
    ///
    /// # Errors
    /// If a terminal's mode cannot be set, or the wake-up pipe cannot be created.
    pub fn from_device(file: File) -> io::Result<Self> {
        if rustix::termios::isatty(&file) {
            let mut mode = rustix::termios::tcgetattr(&file)?;
            mode.make_raw();
            rustix::termios::tcsetattr(&file, rustix::termios::OptionalActions::Now, &mode)?;
        }
        Self::new(Channel::Device(file))
    }

    /// Talks over any `Read + Write + Send` stream (a TLS session, an in-memory fake).
    ///
    /// Such a transport cannot be cloned or pass file descriptors, and a read deadline
    /// is checked only before the read starts: the read itself blocks as the stream does.
    pub fn from_stream(stream: impl Read + Write + Send + 'static) -> Self {
        Self {
            channel: Channel::Stream(Box::new(stream)),
            shared: Arc::new(Shared {
                shut_down: AtomicBool::new(false),
                wake_read: None,
                wake_write: Mutex::new(None),
            }),
        }
    }

    /// Which kind of channel this is.
    pub fn kind(&self) -> TransportKind {
        match self.channel {
            Channel::Unix(_) => TransportKind::Unix,
            Channel::Tcp(_) => TransportKind::Tcp,
            Channel::Pipes { .. } => TransportKind::ChildStdio,
            Channel::Device(_) => TransportKind::Device,
            Channel::Stream(_) => TransportKind::Stream,
        }
    }

    /// Whether [`Transport::send_with_fds`] can attach descriptors (Unix sockets only).
    pub fn supports_fd_passing(&self) -> bool {
        matches!(self.channel, Channel::Unix(_))
    }

    /// Whether [`Transport::shutdown`] has been called on this transport or a clone.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_shut_down()
    }

    /// The descriptor reads come from, if the channel has one.
    pub(crate) fn read_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.channel {
            Channel::Unix(stream) => Some(stream.as_fd()),
            Channel::Tcp(stream) => Some(stream.as_fd()),
            Channel::Pipes { reader, .. } => Some(reader.as_fd()),
            Channel::Device(file) => Some(file.as_fd()),
            Channel::Stream(_) => None,
        }
    }

    /// Reads into `buf`, waiting at most until `deadline` for the first byte.
    ///
    /// Returns the number of bytes read; 0 means end of stream (the peer closed, or
    /// [`Transport::shutdown`] was called on this transport or a clone — a reader
    /// blocked here in another thread wakes up with 0). An empty `buf` returns 0 at once.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when the deadline passes with nothing to read (no
    /// bytes are lost: call again); otherwise the channel's read error. Interrupted
    /// system calls are retried.
    pub fn read_with_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> io::Result<usize> {
        if buf.is_empty() || self.shared.is_shut_down() {
            return Ok(0);
        }
        if deadline.is_some() || self.shared.wake_read.is_some() {
            if let Some(fd) = self.read_fd() {
                if !wait_readable(fd, self.shared.wake_read.as_ref(), deadline)? {
                    return Ok(0);
                }
            } else if let Some(deadline) = deadline {
                remaining(deadline)?;
            }
        }
        loop {
            let result = match &mut self.channel {
                Channel::Unix(stream) => stream.read(buf),
                Channel::Tcp(stream) => stream.read(buf),
                Channel::Pipes { reader, .. } => reader.read(buf),
                Channel::Device(file) => file.read(buf),
                Channel::Stream(stream) => stream.read(buf),
            };
            match result {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(_) | Err(_) if self.shared.is_shut_down() => return Ok(0),
                other => return other,
            }
        }
    }

    /// Sends all of `bytes` with `fds` attached to the first byte (`SCM_RIGHTS`), so
    /// QEMU hands them to the command these bytes carry (`add-fd`, `getfd`).
    ///
    /// With an empty `fds` this is `write_all` on any transport.
    ///
    /// # Errors
    /// [`io::ErrorKind::Unsupported`] if `fds` is not empty and this is not a Unix
    /// socket; the errors of [`fdpass::send_with_fds`] otherwise.
    pub fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if self.shared.is_shut_down() {
            return Err(shut_down_error());
        }
        match &self.channel {
            Channel::Unix(stream) => fdpass::send_with_fds(stream, bytes, fds),
            _ if fds.is_empty() => self.write_all(bytes),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "file descriptors can only be passed over a unix socket, not a {}",
                    self.kind()
                ),
            )),
        }
    }

    /// Shuts the transport down for this handle and all its clones.
    ///
    /// Afterwards reads return end of stream (a reader blocked in
    /// [`Transport::read_with_deadline`] on another thread wakes up) and writes fail with
    /// [`io::ErrorKind::BrokenPipe`]. Sockets are also shut down in both directions, so
    /// the server sees the connection close. A custom stream only gets the flag: a read
    /// already blocked in it is not woken. Calling it again is harmless.
    ///
    /// # Errors
    /// The socket's `shutdown(2)` error (an already disconnected socket is not an error).
    pub fn shutdown(&self) -> io::Result<()> {
        self.shared.shut_down.store(true, Ordering::Release);
        drop(
            self.shared
                .wake_write
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let result = match &self.channel {
            Channel::Unix(stream) => stream.shutdown(Shutdown::Both),
            Channel::Tcp(stream) => stream.shutdown(Shutdown::Both),
            Channel::Pipes { .. } | Channel::Device(_) | Channel::Stream(_) => Ok(()),
        };
        match result {
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    /// The transport as the IO engine drives it (non-blocking descriptors).
    ///
    /// # Errors
    /// [`io::ErrorKind::Unsupported`] for a custom stream, which has no descriptor
    /// (`Client::connect_io` bridges one); `fcntl(2)`/`dup(2)` errors otherwise.
    pub(crate) fn into_link(self) -> io::Result<crate::driver::Link> {
        use crate::driver::Link;
        match self.channel {
            Channel::Unix(stream) => Link::unix(OwnedFd::from(stream), true),
            Channel::Tcp(stream) => Link::tcp(OwnedFd::from(stream)),
            Channel::Pipes { reader, writer } => {
                Link::pipes(OwnedFd::from(reader), OwnedFd::from(writer))
            }
            Channel::Device(file) => {
                let writer = file.try_clone()?;
                Link::pipes(OwnedFd::from(file), OwnedFd::from(writer))
            }
            Channel::Stream(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a custom stream transport has no descriptor: use Client::connect_io with its \
                 read and write halves",
            )),
        }
    }

    /// Makes another handle to the same channel (the descriptors are duplicated), sharing
    /// the shutdown state.
    ///
    /// # Errors
    /// [`io::ErrorKind::Unsupported`] for a custom stream; `dup(2)` errors otherwise.
    pub fn try_clone(&self) -> io::Result<Self> {
        let channel = match &self.channel {
            Channel::Unix(stream) => Channel::Unix(stream.try_clone()?),
            Channel::Tcp(stream) => Channel::Tcp(stream.try_clone()?),
            Channel::Pipes { reader, writer } => Channel::Pipes {
                reader: reader.try_clone()?,
                writer: writer.try_clone()?,
            },
            Channel::Device(file) => Channel::Device(file.try_clone()?),
            Channel::Stream(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a custom stream transport cannot be cloned",
                ))
            }
        };
        Ok(Self {
            channel,
            shared: Arc::clone(&self.shared),
        })
    }
}

/// Waits until `fd` is readable (true) or `wake` hangs up (false), or `deadline` passes.
fn wait_readable(
    fd: BorrowedFd<'_>,
    wake: Option<&OwnedFd>,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    loop {
        let timeout = deadline.map(remaining).transpose()?;
        let timeout = timeout.map(Timespec::try_from).transpose().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "read deadline too far away")
        })?;
        let mut fds = [
            PollFd::from_borrowed_fd(fd, PollFlags::IN),
            // An unused slot polls nothing when there is no wake pipe.
            PollFd::from_borrowed_fd(wake.map_or(fd, |w| w.as_fd()), PollFlags::IN),
        ];
        let used = if wake.is_some() { 2 } else { 1 };
        match poll(&mut fds[..used], timeout.as_ref()) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(timed_out());
                }
            }
            Ok(_) => {
                if used == 2 && !fds[1].revents().is_empty() {
                    return Ok(false);
                }
                if !fds[0].revents().is_empty() {
                    return Ok(true);
                }
            }
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Waits until `fd` is writable (a non-blocking connect finished) or `deadline` passes.
fn wait_writable(fd: BorrowedFd<'_>, deadline: Instant) -> io::Result<()> {
    loop {
        let timeout = Timespec::try_from(remaining(deadline)?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timeout too far away"))?;
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(Errno::INTR) => {}
            Ok(_) => return Ok(()),
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// `send(2)` with `MSG_NOSIGNAL`, so a closed peer is an error and never a `SIGPIPE`.
fn send_no_signal(socket: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(socket, bytes, SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}

impl Read for Transport {
    /// Reads without a deadline; see [`Transport::read_with_deadline`].
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with_deadline(buf, None)
    }
}

impl Write for Transport {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.shared.is_shut_down() {
            return Err(shut_down_error());
        }
        match &mut self.channel {
            Channel::Unix(stream) => send_no_signal(stream.as_fd(), bytes),
            Channel::Tcp(stream) => send_no_signal(stream.as_fd(), bytes),
            Channel::Pipes { writer, .. } => writer.write(bytes),
            Channel::Device(file) => file.write(bytes),
            Channel::Stream(stream) => stream.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.channel {
            Channel::Stream(stream) => stream.flush(),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::os::unix::net::UnixListener;
    use std::process::{Command, Stdio};
    use std::thread;

    fn soon(ms: u64) -> Option<Instant> {
        Some(Instant::now() + Duration::from_millis(ms))
    }

    #[test]
    fn unix_round_trip_and_deadline() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut transport = Transport::from_unix_stream(ours).unwrap();
        assert_eq!(transport.kind(), TransportKind::Unix);
        assert!(transport.supports_fd_passing());

        let mut buf = [0u8; 16];
        let started = Instant::now();
        let err = transport
            .read_with_deadline(&mut buf, soon(50))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(50));

        theirs.write_all(b"pong").unwrap();
        let n = transport.read_with_deadline(&mut buf, soon(1000)).unwrap();
        assert_eq!(&buf[..n], b"pong");

        transport.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
    }

    #[test]
    fn past_deadline_times_out_even_with_data_absent() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let mut transport = Transport::from_unix_stream(ours).unwrap();
        let mut buf = [0u8; 4];
        let past = Instant::now() - Duration::from_millis(1);
        let err = transport
            .read_with_deadline(&mut buf, Some(past))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn shutdown_wakes_a_reader_in_a_clone() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let transport = Transport::from_unix_stream(ours).unwrap();
        let mut reader = transport.try_clone().unwrap();
        let handle = thread::spawn(move || {
            let mut buf = [0u8; 8];
            reader.read_with_deadline(&mut buf, soon(10_000))
        });
        thread::sleep(Duration::from_millis(50));
        transport.shutdown().unwrap();
        assert_eq!(handle.join().unwrap().unwrap(), 0);
        let mut writer = transport.try_clone().unwrap();
        assert!(writer.is_shut_down());
        let err = writer.write_all(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        transport.shutdown().unwrap();
    }

    #[test]
    fn connect_unix_with_timeout_reaches_a_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let mut client = Transport::connect_unix(&path, Some(Duration::from_secs(2))).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"{}\r\n").unwrap();
        let mut buf = [0u8; 8];
        let n = client.read_with_deadline(&mut buf, soon(2000)).unwrap();
        assert_eq!(&buf[..n], b"{}\r\n");
        // The socket was switched back to blocking mode: a plain read waits.
        server.write_all(b"z").unwrap();
        assert_eq!(client.read(&mut buf).unwrap(), 1);
    }

    #[test]
    fn connect_unix_fails_fast_on_missing_socket() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let err = Transport::connect_unix(dir.path().join("nope"), Some(Duration::from_secs(5)))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn connect_unix_times_out_on_a_full_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        // Fill the backlog (never accepting) until a non-blocking connect would block.
        let mut held = Vec::new();
        let err = loop {
            match Transport::connect_unix(&path, Some(Duration::from_millis(100))) {
                Ok(transport) => held.push(transport),
                Err(err) => break err,
            }
            assert!(held.len() < 10_000, "backlog never filled");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(listener);
    }

    #[test]
    fn tcp_round_trip() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let mut client = Transport::connect_tcp(address, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(client.kind(), TransportKind::Tcp);
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        let (pipe_read, _pipe_write) = rustix::pipe::pipe().unwrap();
        let err = client
            .send_with_fds(b"x", &[pipe_read.as_fd()])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        client.send_with_fds(b" again", &[]).unwrap();
        let mut got = [0u8; 6];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b" again");
    }

    #[test]
    fn child_stdio_echo_through_cat() {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut transport = Transport::from_child(&mut child).unwrap();
        assert_eq!(transport.kind(), TransportKind::ChildStdio);
        let mut reader = transport.try_clone().unwrap();

        let mut buf = [0u8; 16];
        let err = reader.read_with_deadline(&mut buf, soon(30)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        transport.write_all(b"echo me\n").unwrap();
        let n = reader.read_with_deadline(&mut buf, soon(5000)).unwrap();
        assert_eq!(&buf[..n], b"echo me\n");

        // Shutdown wakes a reader blocked on the pipe (no shutdown(2) for pipes).
        let handle = thread::spawn(move || {
            let mut buf = [0u8; 8];
            reader.read_with_deadline(&mut buf, None)
        });
        thread::sleep(Duration::from_millis(50));
        transport.shutdown().unwrap();
        assert_eq!(handle.join().unwrap().unwrap(), 0);
        drop(transport);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn from_child_needs_pipes() {
        let mut child = Command::new("true").stdin(Stdio::null()).spawn().unwrap();
        let err = Transport::from_child(&mut child).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        child.wait().unwrap();
    }

    #[test]
    fn pty_device_is_raw() {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let mut device = Transport::open_device(name.to_str().unwrap()).unwrap();
        assert_eq!(device.kind(), TransportKind::Device);
        let mut master = Transport::from_device(File::from(master)).unwrap();

        // Raw mode: "\n" is not turned into "\r\n" and nothing is echoed back.
        device.write_all(b"{\"x\":1}\n").unwrap();
        let mut buf = [0u8; 32];
        let n = master.read_with_deadline(&mut buf, soon(2000)).unwrap();
        assert_eq!(&buf[..n], b"{\"x\":1}\n");
        master.write_all(b"\xff{}\n").unwrap();
        let n = device.read_with_deadline(&mut buf, soon(2000)).unwrap();
        assert_eq!(&buf[..n], b"\xff{}\n");
        let err = device.read_with_deadline(&mut buf, soon(30)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn custom_stream_reads_and_refuses_clone() {
        let mut transport = Transport::from_stream(Cursor::new(b"abc".to_vec()));
        assert_eq!(transport.kind(), TransportKind::Stream);
        assert!(!transport.supports_fd_passing());
        let mut buf = [0u8; 8];
        assert_eq!(
            transport.read_with_deadline(&mut buf, soon(100)).unwrap(),
            3
        );
        assert_eq!(
            transport.try_clone().unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        transport.shutdown().unwrap();
        assert_eq!(transport.read(&mut buf).unwrap(), 0);
        assert_eq!(
            format!("{transport:?}"),
            "Transport { kind: Stream, shut_down: true }"
        );
    }
}
