//! The one IO engine of qmp-std: a thread per session that owns the sans-IO core and
//! its buffers, and moves bytes and time through it.
//!
//! It waits in `poll(2)` on three things at once: the transport's read side, its write
//! side (only while the core has bytes to send) and an eventfd that callers signal when
//! they hand it a request while it sleeps. Every descriptor is non-blocking, so nothing
//! the peer does can stall it: a peer that stops reading only leaves bytes in the core's
//! transmit buffer, while deadlines still fire on time and `close()` is seen at once.
//! What the core reports is routed by the [`Engine`] (replies to their callers, events to
//! listeners, the end of the session to everyone); blocking and async callers differ only
//! in how they wait for their [`Slot`](crate::engine::Slot).
//!
//! A stream without a descriptor of its own (a TLS session, an in-memory fake, a tokio
//! stream) is bridged through a socket pair by two copying threads (or a tokio task), so
//! the engine only ever sees descriptors.

use core::time::Duration;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::engine::{Control, Core, Engine};

/// Requests the IO thread takes before writing what they produced (batches pipelined
/// requests into few writes without starving the socket).
const CONTROL_BATCH: usize = 256;

/// Size of the bridge threads' copy buffers.
const BRIDGE_CHUNK: usize = 64 * 1024;

/// Wakes the IO thread when it sleeps in `poll(2)`: a request sent while it works is
/// picked up without a system call.
pub(crate) struct IoWaker {
    /// Set by the IO thread just before it sleeps, cleared by whoever wakes it.
    sleeping: AtomicBool,
    /// An eventfd the IO thread polls beside the transport.
    event: OwnedFd,
}

impl IoWaker {
    pub(crate) fn new() -> io::Result<Arc<Self>> {
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

/// How callers hand requests to the IO thread.
#[derive(Clone)]
pub(crate) struct ControlSender {
    controls: Sender<Control>,
    waker: Arc<IoWaker>,
}

impl ControlSender {
    /// A channel to a new IO thread: the sender, and what [`run`] takes.
    pub(crate) fn channel() -> io::Result<(Self, Receiver<Control>, Arc<IoWaker>)> {
        let (controls, receiver) = mpsc::channel();
        let waker = IoWaker::new()?;
        Ok((
            ControlSender {
                controls,
                waker: Arc::clone(&waker),
            },
            receiver,
            waker,
        ))
    }

    /// Hands `control` over. If the IO thread is gone, a request is dropped here, and
    /// its completer fails it with the session's end.
    pub(crate) fn send(&self, control: Control) {
        let _ = self.controls.send(control);
        self.waker.wake();
    }
}

/// The transport as the IO thread drives it: non-blocking descriptors.
pub(crate) struct Link {
    read: OwnedFd,
    write: OwnedFd,
    /// A socket: written with `send(2)` (`MSG_NOSIGNAL`) and shut down on close.
    socket: bool,
    /// A Unix socket: can carry descriptors (`SCM_RIGHTS`).
    fd_passing: bool,
}

impl Link {
    /// A link over one socket (Unix when `fd_passing`).
    pub(crate) fn socket(socket: OwnedFd, fd_passing: bool) -> io::Result<Self> {
        let write = socket.try_clone()?;
        Self::new(socket, write, true, fd_passing)
    }

    /// A link over two descriptors that are not sockets (a child's stdout and stdin, or
    /// one character device opened twice).
    pub(crate) fn pipes(read: OwnedFd, write: OwnedFd) -> io::Result<Self> {
        Self::new(read, write, false, false)
    }

    fn new(read: OwnedFd, write: OwnedFd, socket: bool, fd_passing: bool) -> io::Result<Self> {
        rustix::io::ioctl_fionbio(&read, true)?;
        rustix::io::ioctl_fionbio(&write, true)?;
        Ok(Link {
            read,
            write,
            socket,
            fd_passing,
        })
    }

    /// Whether descriptors can be passed over this link.
    pub(crate) fn fd_passing(&self) -> bool {
        self.fd_passing
    }

    /// A link over any byte stream given as two halves: a socket pair, with one thread
    /// copying the stream's input into it and one copying its output to the stream.
    ///
    /// The copying threads are never joined: one blocked in the stream's `read` ends when
    /// the stream yields (its next write into the closed pair fails).
    pub(crate) fn bridge(
        mut reader: impl Read + Send + 'static,
        mut writer: impl Write + Send + 'static,
    ) -> io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let mut inbound = theirs.try_clone()?;
        let mut outbound = theirs;
        thread::Builder::new()
            .name("qmp-bridge-in".into())
            .spawn(move || {
                let mut chunk = vec![0u8; BRIDGE_CHUNK];
                loop {
                    match reader.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            if inbound
                                .write_all(chunk.get(..n).unwrap_or_default())
                                .is_err()
                            {
                                break;
                            }
                        }
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = inbound.shutdown(std::net::Shutdown::Write);
            })?;
        thread::Builder::new()
            .name("qmp-bridge-out".into())
            .spawn(move || {
                let mut chunk = vec![0u8; BRIDGE_CHUNK];
                loop {
                    match outbound.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            let bytes = chunk.get(..n).unwrap_or_default();
                            if writer
                                .write_all(bytes)
                                .and_then(|()| writer.flush())
                                .is_err()
                            {
                                break;
                            }
                        }
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                // The engine is gone or the stream failed: stop reading from it too.
                let _ = outbound.shutdown(std::net::Shutdown::Both);
            })?;
        Self::socket(OwnedFd::from(ours), false)
    }

    /// One non-blocking read; `WouldBlock` when nothing is there.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::io::read(&self.read, &mut *buf) {
                Err(Errno::INTR) => {}
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// One non-blocking write of a prefix of `bytes`, carrying `fds` if given.
    fn write(&self, bytes: &[u8], fds: Option<&[OwnedFd]>) -> io::Result<usize> {
        if let Some(fds) = fds {
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
            return crate::fdpass::send_once_with_fds(self.write.as_fd(), bytes, &borrowed);
        }
        loop {
            let result = if self.socket {
                rustix::net::send(&self.write, bytes, rustix::net::SendFlags::NOSIGNAL)
            } else {
                rustix::io::write(&self.write, bytes)
            };
            match result {
                Err(Errno::INTR) => {}
                other => return other.map_err(io::Error::from),
            }
        }
    }
}

/// Writes what the core wants sent until it is all written or the link would block.
/// `fds` ride on the first bytes written (they belong to the command at the head of the
/// transmit buffer) and are cleared once sent. Returns whether anything was written.
fn transmit(core: &mut Core<'_>, link: &Link, fds: &mut Option<Vec<OwnedFd>>) -> io::Result<bool> {
    let mut wrote = false;
    while let Some(bytes) = core.poll_transmit() {
        match link.write(bytes, fds.as_deref()) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "peer took no bytes",
                ))
            }
            Ok(n) => {
                core.mark_transmitted(n);
                *fds = None;
                wrote = true;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => return Err(error),
        }
    }
    Ok(wrote)
}

/// The IO thread's state besides the core and the engine.
struct Io {
    link: Link,
    /// Descriptors waiting to ride on the head of the transmit buffer.
    fds: Option<Vec<OwnedFd>>,
    write_failed: bool,
    read_done: bool,
}

impl Io {
    /// Pumps the engine and writes until nothing more can be done without waiting.
    /// After a failed write the peer is gone: what it sent before is still delivered,
    /// then everything waiting fails with the end of the stream.
    fn work(&mut self, engine: &mut Engine, core: &mut Core<'_>) {
        loop {
            if let Some(fds) = engine.pump(core) {
                self.fds = Some(fds);
            }
            if self.write_failed {
                return;
            }
            match transmit(core, &self.link, &mut self.fds) {
                // Writing made room in the transmit buffer: waiting requests may fit.
                Ok(wrote) if wrote && engine.has_backlog() => {}
                Ok(_) => return,
                Err(error) => {
                    self.write_failed = true;
                    engine.on_transport_error(core, &error);
                }
            }
        }
    }

    /// Reads what is there straight into the core's receive window.
    fn receive(&mut self, engine: &mut Engine, core: &mut Core<'_>) {
        let window = core.rx_window();
        // The core's window is empty only once its session is closed (its framer skips
        // what does not fit): reading stops.
        if window.is_empty() {
            self.read_done = true;
            return;
        }
        match self.link.read(window) {
            Ok(0) => {
                self.read_done = true;
                engine.on_eof(core);
            }
            Ok(n) => engine.on_received(core, n),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => {
                self.read_done = true;
                engine.on_transport_error(core, &error);
            }
        }
    }
}

/// How long `poll(2)` may sleep before `deadline` (rounded up, so the deadline has
/// passed when it returns); `None`: no deadline.
fn poll_timeout(deadline: Option<Instant>) -> Option<Timespec> {
    deadline.map(|deadline| {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .saturating_add(Duration::from_micros(999));
        Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        })
    })
}

/// The IO thread: owns the core, its buffers and the link until the session ends.
pub(crate) fn run(
    mut engine: Engine,
    config: qmp_core::client::Config,
    (rx_size, tx_size): (usize, usize),
    link: Link,
    controls: Receiver<Control>,
    waker: Arc<IoWaker>,
) {
    let mut rx = vec![0u8; rx_size];
    let mut tx = vec![0u8; tx_size];
    let mut core = Core::new(config, engine.now(), &mut rx, &mut tx);
    engine.start();
    let mut io = Io {
        link,
        fds: None,
        write_failed: false,
        read_done: false,
    };
    'session: loop {
        io.work(&mut engine, &mut core);
        if engine.is_finished() {
            break;
        }
        // Requests first, in batches, without sleeping.
        let mut handled = 0;
        while handled < CONTROL_BATCH {
            match controls.try_recv() {
                Ok(control) => {
                    engine.control(&mut core, control);
                    handled += 1;
                    if engine.is_finished() {
                        break 'session;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => break 'session,
            }
        }
        if handled > 0 {
            continue;
        }
        // Announce the sleep, then look once more: a request sent before the
        // announcement is seen here, one sent after it wakes the poll.
        waker.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        match controls.try_recv() {
            Ok(control) => {
                waker.sleeping.store(false, Ordering::SeqCst);
                engine.control(&mut core, control);
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let timeout = poll_timeout(engine.next_deadline(&core));
        let want_write = !io.write_failed && core.poll_transmit().is_some();
        let (readable, writable, woken) = {
            let mut fds = [
                PollFd::new(&waker.event, PollFlags::IN),
                PollFd::new(&io.link.read, PollFlags::IN),
                PollFd::new(&io.link.write, PollFlags::OUT),
            ];
            // Slots not wanted poll the waker again, which changes nothing.
            if io.read_done {
                fds[1] = PollFd::new(&waker.event, PollFlags::IN);
            }
            if !want_write {
                fds[2] = PollFd::new(&waker.event, PollFlags::IN);
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => {
                    waker.sleeping.store(false, Ordering::SeqCst);
                    break;
                }
            }
            (
                !io.read_done && !fds[1].revents().is_empty(),
                want_write && !fds[2].revents().is_empty(),
                !fds[0].revents().is_empty(),
            )
        };
        waker.sleeping.store(false, Ordering::SeqCst);
        if woken {
            waker.reset();
            // Requests that came while we slept go first: a `close()` that also shut the
            // socket down must be seen as the local close it is, not as the end of the
            // stream it caused.
            while let Ok(control) = controls.try_recv() {
                engine.control(&mut core, control);
                if engine.is_finished() {
                    break 'session;
                }
            }
        }
        if readable {
            io.receive(&mut engine, &mut core);
        }
        // A writable link is written at the top of the loop.
        let _ = writable;
    }
    engine.shutdown(&mut core);
    // Requests still in the channel are dropped here; their completers fail them.
    drop(controls);
}
