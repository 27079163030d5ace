//! The one IO engine of qmp-std: the sans-IO core, its buffers and the link, driven by
//! whichever thread needs it (leader/follower).
//!
//! A caller blocked in [`Pending::wait`](crate::Pending::wait) drives the link itself
//! while no one else does: it writes what the core wants sent, waits in `poll(2)` for the
//! link and the core's next deadline, reads straight into the core's receive window and
//! routes what the core reports (replies to their callers, events to listeners). Other
//! callers wait for their own result, or for the baton when the leader's call is done.
//! So a call costs no thread switch. An async caller of the tokio front leads the same
//! way from its task without blocking: it reads when tokio reports the link readable
//! (a Unix socket registered with the task's runtime) and holds nothing between polls,
//! so anyone may take the link over from it. A background reader leads when no caller
//! does: after the last call has been quiet for [`READER_GRACE`] (also when a leading
//! task has not been heard of for that long: it may no longer be polled), or at once
//! when callbacks, unwaited calls or async waits that cannot lead need someone to.
//!
//! Every descriptor is non-blocking, so nothing the peer does can stall whoever leads: a
//! peer that stops reading only leaves bytes in the core's transmit buffer, deadlines
//! still fire on time and `close()` is seen at once. A request is written by the thread
//! that submits it, right away.
//!
//! A stream without a descriptor of its own (a TLS session, an in-memory fake, a tokio
//! stream) is bridged through a socket pair by two copying threads (or a tokio task), so
//! the engine only ever sees descriptors.

use core::time::Duration;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
#[cfg(feature = "tokio")]
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(feature = "tokio")]
use std::task::Waker;
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::engine::{Control, Core, Engine, Slot, Turn};
use crate::error::Error;
use crate::events::{lock, wait_until};
use crate::reply::RawReply;

/// How long the background reader leaves the link to callers after the last one
/// resigned, before it leads again to read events (and deadlines of calls nobody waits
/// on). Events arriving meanwhile wait at most this long; a busy caller never has to
/// wake the reader.
pub(crate) const READER_GRACE: Duration = Duration::from_millis(2);

/// The longest a leader sleeps in `poll(2)` when no deadline is nearer: a call whose
/// deadline is later than that does not have to interrupt it (most calls, with the
/// default 30 s timeout), which saves a wake-up per call while the background reader
/// leads for async callers. An idle session's reader wakes this often.
const LEADER_NAP: Duration = Duration::from_secs(5);

/// Size of the bridge threads' copy buffers.
const BRIDGE_CHUNK: usize = 64 * 1024;

/// The transport as the IO engine drives it: non-blocking descriptors, closed when the
/// session ends.
pub(crate) struct Link {
    read: OwnedFd,
    write: OwnedFd,
    /// A socket: written with `send(2)` and `MSG_NOSIGNAL`, so a peer that is gone is an
    /// error, never a `SIGPIPE`.
    socket: bool,
    /// A Unix socket: can carry descriptors (`SCM_RIGHTS`).
    fd_passing: bool,
    /// A Unix socket (with or without descriptor passing): async callers may lead.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    unix: bool,
}

impl Link {
    /// A link over a Unix socket; descriptors are passed over it if `fd_passing`.
    pub(crate) fn unix(socket: OwnedFd, fd_passing: bool) -> io::Result<Self> {
        let write = socket.try_clone()?;
        Self::new(socket, write, true, fd_passing, true)
    }

    /// A link over a TCP socket.
    pub(crate) fn tcp(socket: OwnedFd) -> io::Result<Self> {
        let write = socket.try_clone()?;
        Self::new(socket, write, true, false, false)
    }

    /// A link over two descriptors that are not sockets (a child's stdout and stdin, or
    /// one character device opened twice).
    pub(crate) fn pipes(read: OwnedFd, write: OwnedFd) -> io::Result<Self> {
        Self::new(read, write, false, false, false)
    }

    fn new(
        read: OwnedFd,
        write: OwnedFd,
        socket: bool,
        fd_passing: bool,
        unix: bool,
    ) -> io::Result<Self> {
        rustix::io::ioctl_fionbio(&read, true)?;
        rustix::io::ioctl_fionbio(&write, true)?;
        Ok(Link {
            read,
            write,
            socket,
            fd_passing,
            unix,
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
                copy(&mut reader, &mut inbound);
                let _ = inbound.shutdown(std::net::Shutdown::Write);
            })?;
        thread::Builder::new()
            .name("qmp-bridge-out".into())
            .spawn(move || {
                copy(&mut outbound, &mut writer);
                // The engine is gone or the stream failed: stop reading from it too.
                let _ = outbound.shutdown(std::net::Shutdown::Both);
            })?;
        Self::unix(OwnedFd::from(ours), false)
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

/// Copies `from` to `to` (flushing after each chunk) until either ends or fails.
fn copy(from: &mut impl Read, to: &mut impl Write) {
    let mut chunk = vec![0u8; BRIDGE_CHUNK];
    loop {
        match from.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                let bytes = chunk.get(..n).unwrap_or_default();
                if to.write_all(bytes).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes what the core wants sent until it is all written or the link would block.
/// `fds` ride on the first bytes written (they belong to the command at the head of the
/// transmit buffer) and are cleared once sent. Returns whether anything was written.
fn transmit(core: &mut Core, link: &Link, fds: &mut Option<Vec<OwnedFd>>) -> io::Result<bool> {
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

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Who drives the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leader {
    /// Nobody: the next caller to wait takes it, or the reader after its grace.
    Nobody,
    /// A caller blocked in `wait`.
    Caller,
    /// The background reader.
    Reader,
    /// The task awaiting the call with this ticket (tokio front): it holds nothing
    /// between polls, so any other leader may take over.
    #[cfg(feature = "tokio")]
    Task(u64),
}

/// The link's read side as a task that leads sees it (feature `tokio`).
#[cfg(feature = "tokio")]
enum TaskLink {
    /// Tasks do not lead: the blocking front, a link that is not a Unix socket, or a
    /// runtime that could not (or no longer can) watch it.
    Off,
    /// Tasks may lead; the link is registered with the runtime of the first that does.
    Unregistered,
    /// A copy of the read side's descriptor, registered with a tokio runtime.
    Registered(::tokio::net::UnixStream),
}

/// What a task found when it tried to lead (without the `tokio` feature, tasks never do).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
enum TaskRound {
    /// It read (or the session ended): look at the result again.
    Progress,
    /// It leads and waits for the link to become readable.
    Waiting,
    /// It does not lead.
    Following,
}

/// What the driver's mutex protects.
struct Session {
    core: Core,
    engine: Engine,
    /// The link, until the session ends (dropping it closes the descriptors, so the peer
    /// sees the end even while client handles live on).
    link: Option<Arc<Link>>,
    /// Descriptors waiting to ride on the head of the transmit buffer.
    fds: Option<Vec<OwnedFd>>,
    write_failed: bool,
    read_done: bool,
    leader: Leader,
    /// The leader's `poll(2)` includes the link's write side.
    polling_out: bool,
    /// When the leader's `poll(2)` returns by itself (`None`: never).
    polling_until: Option<Instant>,
    /// Slots of callers waiting for their result while another leads; the first gets
    /// the baton when the leader is done.
    followers: Vec<Arc<Slot<RawReply>>>,
    /// Someone needs a leader now and no caller will be one: the reader is to lead
    /// without waiting for its grace.
    reader_wanted: bool,
    /// Bumped each time a caller leads: the reader's grace starts again.
    caller_rounds: u64,
    #[cfg(feature = "tokio")]
    task_link: TaskLink,
    /// A task that wants to lead once the current leader is done.
    #[cfg(feature = "tokio")]
    task_waiting: Option<Waker>,
}

impl Session {
    /// Pumps the engine and writes until nothing more can be done without waiting.
    /// After a failed write the peer is gone: what it sent before is still delivered,
    /// then everything waiting fails with the end of the stream.
    fn work(&mut self) {
        loop {
            if let Some(fds) = self.engine.pump(&mut self.core) {
                self.fds = Some(fds);
            }
            if self.engine.is_finished() {
                self.end_link();
                return;
            }
            let Some(link) = self.link.as_deref() else {
                return;
            };
            if self.write_failed {
                return;
            }
            match transmit(&mut self.core, link, &mut self.fds) {
                // Writing made room in the transmit buffer: waiting requests may fit.
                Ok(wrote) if wrote && self.engine.has_backlog() => {}
                Ok(_) => return,
                Err(error) => {
                    self.write_failed = true;
                    self.engine.on_transport_error(&mut self.core, &error);
                }
            }
        }
    }

    /// Closes the link's descriptors (the task's copy too), so the peer sees the end.
    fn end_link(&mut self) {
        self.link = None;
        #[cfg(feature = "tokio")]
        {
            self.task_link = TaskLink::Off;
        }
    }

    /// Reads what is there straight into the core's receive window.
    fn receive(&mut self) {
        let Some(link) = self.link.as_deref() else {
            return;
        };
        let window = self.core.rx_window();
        // The core's window is empty only once its session is closed (its framer skips
        // what does not fit): reading stops.
        if window.is_empty() {
            self.read_done = true;
            return;
        }
        match link.read(window) {
            Ok(0) => {
                self.read_done = true;
                self.engine.on_eof(&mut self.core);
            }
            Ok(n) => self.engine.on_received(&mut self.core, n),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => {
                self.read_done = true;
                self.engine.on_transport_error(&mut self.core, &error);
            }
        }
    }

    /// Whether requests wait for a reply or for room: if no caller waits on them, the
    /// reader must lead.
    fn needs_reader(&self) -> bool {
        self.engine.has_work()
    }

    /// Whether a task leads (and may be taken over from).
    fn task_leads(&self) -> bool {
        #[cfg(feature = "tokio")]
        let leads = matches!(self.leader, Leader::Task(_));
        #[cfg(not(feature = "tokio"))]
        let leads = false;
        leads
    }

    /// Whether a blocked caller or a task waits for the link.
    fn someone_waits_to_lead(&self) -> bool {
        #[cfg(feature = "tokio")]
        if self.task_waiting.is_some() {
            return true;
        }
        !self.followers.is_empty()
    }

    /// One round of leadership by the task awaiting `ticket`: write, then read what
    /// the link has. The task's waker is registered for the link's readiness when
    /// nothing is there (the short read that drained it already told tokio so, which
    /// saves a read that would block).
    #[cfg(feature = "tokio")]
    fn task_round(&mut self, ticket: u64, context: &mut Context<'_>) -> TaskRound {
        match self.leader {
            Leader::Nobody => {}
            Leader::Task(leader) if leader == ticket => {}
            _ => return TaskRound::Following,
        }
        if !self.register_task_link() {
            return self.stop_leading(ticket);
        }
        if self.leader == Leader::Nobody {
            self.leader = Leader::Task(ticket);
            self.caller_rounds += 1;
        }
        self.work();
        if self.engine.is_finished() {
            return TaskRound::Progress;
        }
        // Bytes the link would not take, or a link that was read to its end: the reader
        // watches those (a task only watches readability).
        let stuck = !self.write_failed && self.core.poll_transmit().is_some();
        if stuck || self.read_done {
            return self.stop_leading(ticket);
        }
        let Session {
            core,
            engine,
            task_link,
            read_done,
            ..
        } = self;
        let TaskLink::Registered(stream) = task_link else {
            return TaskRound::Following;
        };
        let window = core.rx_window();
        if window.is_empty() {
            *read_done = true;
            return self.stop_leading(ticket);
        }
        let mut buffer = ::tokio::io::ReadBuf::new(window);
        match ::tokio::io::AsyncRead::poll_read(Pin::new(stream), context, &mut buffer) {
            Poll::Pending => TaskRound::Waiting,
            Poll::Ready(Ok(())) => {
                let n = buffer.filled().len();
                if n == 0 {
                    *read_done = true;
                    engine.on_eof(core);
                } else {
                    engine.on_received(core, n);
                }
                self.work();
                TaskRound::Progress
            }
            Poll::Ready(Err(_)) => {
                // The runtime cannot watch the link (it shut down), or the read failed:
                // the reader reads from now on and meets any failure itself.
                self.task_link = TaskLink::Off;
                self.stop_leading(ticket)
            }
        }
    }

    /// Tasks never lead without the `tokio` feature.
    #[cfg(not(feature = "tokio"))]
    fn task_round(&mut self, _ticket: u64, _context: &mut Context<'_>) -> TaskRound {
        TaskRound::Following
    }

    /// Registers the link with the current tokio runtime on the first task's round.
    /// Whether tasks may lead.
    #[cfg(feature = "tokio")]
    fn register_task_link(&mut self) -> bool {
        if matches!(self.task_link, TaskLink::Unregistered) {
            self.task_link = TaskLink::Off;
            let copy = self.link.as_deref().map(|link| link.read.try_clone());
            if let (Some(Ok(copy)), Ok(_)) = (copy, ::tokio::runtime::Handle::try_current()) {
                let stream = std::os::unix::net::UnixStream::from(copy);
                if let Ok(stream) = ::tokio::net::UnixStream::from_std(stream) {
                    self.task_link = TaskLink::Registered(stream);
                }
            }
        }
        matches!(self.task_link, TaskLink::Registered(_))
    }

    /// The task awaiting `ticket` stops leading (if it did) and the reader leads.
    #[cfg(feature = "tokio")]
    fn stop_leading(&mut self, ticket: u64) -> TaskRound {
        if self.leader == Leader::Task(ticket) {
            self.leader = Leader::Nobody;
        }
        TaskRound::Following
    }
}

/// The shared IO engine of one session.
pub(crate) struct Driver {
    session: Mutex<Session>,
    /// An eventfd that interrupts the leader's `poll(2)`.
    interrupt: OwnedFd,
    /// Where the background reader waits while it does not lead.
    reader_cond: Condvar,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Driver {
    /// Starts the engine over `link` with its background reader (which leads first, for
    /// the session's start).
    pub(crate) fn start(
        engine: Engine,
        config: qmp_core::client::Config,
        (rx_size, tx_size): (usize, usize),
        link: Link,
    ) -> Result<Arc<Self>, Error> {
        let interrupt = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(io::Error::from)?;
        let core = Core::with_buffers(
            config,
            engine.now(),
            vec![0u8; rx_size].into_boxed_slice(),
            vec![0u8; tx_size].into_boxed_slice(),
        );
        let mut session = Session {
            core,
            engine,
            link: Some(Arc::new(link)),
            fds: None,
            write_failed: false,
            read_done: false,
            leader: Leader::Nobody,
            polling_out: false,
            polling_until: None,
            followers: Vec::new(),
            reader_wanted: true,
            caller_rounds: 0,
            #[cfg(feature = "tokio")]
            task_link: TaskLink::Off,
            #[cfg(feature = "tokio")]
            task_waiting: None,
        };
        session.engine.start();
        let driver = Arc::new(Driver {
            session: Mutex::new(session),
            interrupt,
            reader_cond: Condvar::new(),
            reader: Mutex::new(None),
        });
        // The reader holds only a weak handle, so dropping every client ends it.
        let weak = Arc::downgrade(&driver);
        let reader = thread::Builder::new()
            .name("qmp-io".into())
            .spawn(move || run_reader(&weak))?;
        *lock(&driver.reader) = Some(reader);
        Ok(driver)
    }

    fn lock(&self) -> MutexGuard<'_, Session> {
        lock(&self.session)
    }

    /// Interrupts the leader's `poll(2)`.
    fn interrupt(&self) {
        let _ = rustix::io::write(&self.interrupt, &1u64.to_ne_bytes());
    }

    /// Wakes the background reader to lead now.
    fn want_reader(&self, session: &mut Session) {
        session.reader_wanted = true;
        self.reader_cond.notify_one();
    }

    /// Hands a request (or a cancellation, or the close) to the engine and writes what
    /// it produced at once. Nobody is woken for a request: its caller leads when it waits
    /// (an async caller wakes the reader, see [`Driver::ensure_leader`]).
    pub(crate) fn control(&self, control: Control) {
        let closing = matches!(control, Control::Close);
        let cancelling = matches!(control, Control::Cancel(_));
        let mut session = self.lock();
        let Session { core, engine, .. } = &mut *session;
        engine.control(core, control);
        session.work();
        if closing || session.engine.is_finished() {
            session.end_link();
            self.wake_everyone(&mut session);
            return;
        }
        // Bytes the link would not take now (requests held for room in the core wait for
        // replies, which the leader reads anyway).
        let stuck = session.core.poll_transmit().is_some();
        // A leading task does not sleep in `poll(2)`: the reader takes over from it after
        // its grace, then sees all of this.
        let leading = matches!(session.leader, Leader::Caller | Leader::Reader);
        let sooner = match (
            session.engine.next_deadline(&session.core),
            session.polling_until,
        ) {
            (Some(deadline), Some(until)) => deadline < until,
            (Some(_), None) => true,
            (None, _) => false,
        };
        // The leader must look again: at the link's write side, at a deadline sooner
        // than it sleeps, or at a caller that cancelled and may be the leader itself.
        if leading && (cancelling || sooner || (stuck && !session.polling_out)) {
            self.interrupt();
        }
    }

    /// The session is over: every follower and the reader look again.
    fn wake_everyone(&self, session: &mut Session) {
        for follower in session.followers.drain(..) {
            follower.pass_baton();
        }
        session.reader_wanted = true;
        self.reader_cond.notify_all();
        self.interrupt();
        #[cfg(feature = "tokio")]
        if let Some(task) = session.task_waiting.take() {
            task.wake();
        }
    }

    /// Lets the tasks of async callers lead (the tokio front; see the module docs) when
    /// the link is a Unix socket.
    #[cfg(feature = "tokio")]
    pub(crate) fn let_tasks_lead(&self) {
        let mut session = self.lock();
        if session.link.as_deref().is_some_and(|link| link.unix) {
            session.task_link = TaskLink::Unregistered;
        }
    }

    /// An async caller polls for its result (never blocking): its task leads if it may
    /// and nobody else does ([`Driver::let_tasks_lead`]); otherwise someone else is made
    /// to lead.
    pub(crate) fn poll_wait(
        &self,
        slot: &Arc<Slot<RawReply>>,
        ticket: u64,
        context: &mut Context<'_>,
    ) -> Poll<Result<RawReply, Error>> {
        let mut session = self.lock();
        let outcome = loop {
            if let Poll::Ready(result) = slot.poll_take(context) {
                break Poll::Ready(result);
            }
            if session.engine.is_finished() {
                break Poll::Ready(Err(session.engine.end_error()));
            }
            match session.task_round(ticket, context) {
                TaskRound::Progress => continue,
                TaskRound::Waiting => break Poll::Pending,
                TaskRound::Following => {}
            }
            self.follow(&mut session, context);
            break Poll::Pending;
        };
        #[cfg(feature = "tokio")]
        if outcome.is_ready() {
            if session
                .task_waiting
                .as_ref()
                .is_some_and(|task| task.will_wake(context.waker()))
            {
                session.task_waiting = None;
            }
            if session.leader == Leader::Task(ticket) {
                session.leader = Leader::Nobody;
                self.pass_on(&mut session);
            }
        }
        outcome
    }

    /// An async caller that does not lead waits for its slot: someone must lead, and a
    /// task that could lead asks for the link.
    fn follow(&self, session: &mut Session, context: &mut Context<'_>) {
        #[cfg(feature = "tokio")]
        if !matches!(session.task_link, TaskLink::Off) && session.leader != Leader::Nobody {
            let known = session
                .task_waiting
                .as_ref()
                .is_some_and(|task| task.will_wake(context.waker()));
            if !known {
                session.task_waiting = Some(context.waker().clone());
                if session.leader == Leader::Reader {
                    // The reader steps aside for a task as for a blocked caller.
                    self.interrupt();
                }
            }
            return;
        }
        let _ = context;
        if session.leader == Leader::Nobody {
            self.want_reader(session);
        }
    }

    /// An async caller waits on a slot: someone must lead.
    pub(crate) fn ensure_leader(&self) {
        let mut session = self.lock();
        if session.leader == Leader::Nobody && !session.engine.is_finished() {
            self.want_reader(&mut session);
        }
    }

    /// Blocks until `slot` has its result or `deadline` passes, driving the link
    /// whenever nobody else does. `None` if the deadline passed.
    pub(crate) fn wait(
        &self,
        slot: &Arc<Slot<RawReply>>,
        deadline: Option<Instant>,
    ) -> Option<Result<RawReply, Error>> {
        let mut session = self.lock();
        let outcome = loop {
            if let Some(result) = slot.try_take() {
                break Some(result);
            }
            if session.engine.is_finished() {
                // Every request is resolved when the engine finishes; this one never
                // reached it.
                break Some(Err(session.engine.end_error()));
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break None;
            }
            if session.leader == Leader::Nobody || session.task_leads() {
                session.leader = Leader::Caller;
                session.caller_rounds += 1;
                session = self.round(session, deadline, Some(slot));
                session.leader = Leader::Nobody;
                continue;
            }
            // Someone else leads: wait for the result or the baton.
            session.followers.push(Arc::clone(slot));
            if session.leader == Leader::Reader {
                // The reader steps aside for a waiting caller.
                self.interrupt();
            }
            drop(session);
            let turn = slot.wait_turn(deadline);
            session = self.lock();
            session
                .followers
                .retain(|follower| !Arc::ptr_eq(follower, slot));
            match turn {
                Turn::Done(result) => break Some(result),
                Turn::Lead => {}
                Turn::TimedOut => break None,
            }
        };
        // Whatever ended the wait, the link must not be left without a leader.
        self.pass_on(&mut session);
        outcome
    }

    /// If nobody leads, hands the link to the first waiting caller, or to the reader when
    /// work is left that no caller waits on.
    fn pass_on(&self, session: &mut Session) {
        if session.leader != Leader::Nobody {
            return;
        }
        if !session.followers.is_empty() {
            session.followers.remove(0).pass_baton();
            return;
        }
        #[cfg(feature = "tokio")]
        if let Some(task) = session.task_waiting.take() {
            // It leads when it is polled; if it is not, the reader takes over after its
            // grace.
            task.wake();
            return;
        }
        if session.needs_reader() || session.engine.is_finished() {
            self.want_reader(session);
        }
    }

    /// One round of leadership: write, wait for the link, the engine's next deadline,
    /// `deadline` or an interruption, then read. The lock is released while waiting.
    fn round<'a>(
        &'a self,
        mut session: MutexGuard<'a, Session>,
        deadline: Option<Instant>,
        own: Option<&Arc<Slot<RawReply>>>,
    ) -> MutexGuard<'a, Session> {
        session.work();
        if session.engine.is_finished() || own.is_some_and(|slot| slot.is_filled()) {
            return session;
        }
        if session.leader == Leader::Reader && session.someone_waits_to_lead() {
            return session;
        }
        let nap = Instant::now().checked_add(LEADER_NAP);
        let until = earliest(
            earliest(session.engine.next_deadline(&session.core), deadline),
            nap,
        );
        let timeout = poll_timeout(until);
        let Some(link) = session.link.clone() else {
            return session;
        };
        let want_write = !session.write_failed && session.core.poll_transmit().is_some();
        let want_read = !session.read_done;
        session.polling_out = want_write;
        session.polling_until = until;
        drop(session);
        let (readable, woken) = {
            let mut fds = [
                PollFd::new(&self.interrupt, PollFlags::IN),
                PollFd::new(&link.read, PollFlags::IN),
                PollFd::new(&link.write, PollFlags::OUT),
            ];
            // Slots not wanted poll the interrupt again, which changes nothing.
            if !want_read {
                fds[1] = PollFd::new(&self.interrupt, PollFlags::IN);
            }
            if !want_write {
                fds[2] = PollFd::new(&self.interrupt, PollFlags::IN);
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => {
                    // Cannot happen with valid descriptors; never spin if it did.
                    thread::sleep(Duration::from_millis(1));
                }
            }
            (
                want_read && !fds[1].revents().is_empty(),
                !fds[0].revents().is_empty(),
            )
        };
        drop(link);
        let mut session = self.lock();
        session.polling_out = false;
        session.polling_until = None;
        if woken {
            let mut count = [0u8; 8];
            let _ = rustix::io::read(&self.interrupt, &mut count);
        }
        if readable {
            session.receive();
        }
        // Deadlines, and what reading made possible, are handled at once.
        session.work();
        session
    }

    /// Ends the session (the last handle is gone, or `close()`): everything pending is
    /// resolved with [`Error::ClientClosed`], the reader ends.
    pub(crate) fn close(&self) {
        self.control(Control::Close);
        let reader = lock(&self.reader).take();
        if let Some(reader) = reader {
            if reader.thread().id() != thread::current().id() {
                let _ = reader.join();
            }
        }
    }
}

/// The background reader: leads when no caller does, after [`READER_GRACE`] (or at once
/// when wanted), and hands the link to any caller that comes to wait.
fn run_reader(driver: &std::sync::Weak<Driver>) {
    loop {
        let Some(driver) = driver.upgrade() else {
            return;
        };
        let mut session = driver.lock();
        if session.engine.is_finished() {
            return;
        }
        let idle = session.leader == Leader::Nobody && session.followers.is_empty();
        if idle && session.reader_wanted {
            session.reader_wanted = false;
            session.leader = Leader::Reader;
            session = driver.round(session, None, None);
            session.leader = Leader::Nobody;
            if session.someone_waits_to_lead() {
                driver.pass_on(&mut session);
            } else if !session.engine.is_finished() {
                // Nobody came: keep leading.
                session.reader_wanted = true;
            }
            continue;
        }
        // A caller leads (or is about to): wait for the grace to pass quietly.
        let rounds = session.caller_rounds;
        let until = Instant::now() + READER_GRACE;
        let (mut session, passed) = wait_until(&driver.reader_cond, session, until);
        if passed && session.caller_rounds == rounds {
            if session.task_leads() {
                // A leading task may no longer be polled: take the link over from it.
                session.leader = Leader::Nobody;
            }
            if session.leader == Leader::Nobody {
                session.reader_wanted = true;
            }
        }
        drop(session);
    }
}
