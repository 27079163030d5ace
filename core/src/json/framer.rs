//! [`Framer`]: splits a byte stream into complete, validated top-level JSON values.

use core::fmt;
use core::marker::PhantomData;

use super::raw::{MemberSpan, Members};
use super::scanner::{Scanner, Step};
use super::swar::find_line_break;
use super::{JsonError, JsonErrorKind, RawJson, DEFAULT_MAX_DEPTH};
use crate::Buffer;

/// Splits a byte stream into complete top-level JSON values, validating them as bytes
/// arrive, inside the caller's receive buffer.
///
/// Feed bytes with [`push`](Framer::push) (copying) or [`window`](Framer::window) +
/// [`commit`](Framer::commit) (zero-copy), then call [`next_item`](Framer::next_item) until
/// it returns `None`. How the stream is split across calls never changes the items.
///
/// - Whitespace between values is skipped. Any JSON value is a frame; a top-level number
///   ends only when the byte after it arrives.
/// - A value longer than the buffer is validated and skipped without being stored
///   ([`Item::Oversize`]).
/// - Invalid input yields one [`Item::Malformed`]; the framer then discards the rest of
///   that line and every following line that does not start with `{` in column 0 (QEMU
///   writes one message per line, and in pretty mode only top-level braces sit in column
///   0), resuming at the next such line or at a 0xFF byte.
/// - A 0xFF byte anywhere (the guest agent's sync delimiter) discards any partial value
///   and yields [`Item::Sentinel`].
pub struct Framer<'buf, B: Buffer = &'buf mut [u8]> {
    buffer: B,
    _borrow: PhantomData<&'buf mut [u8]>,
    /// First byte still held (earlier ones were returned or discarded).
    start: usize,
    /// Where the next scan begins (`start <= scan_pos <= filled`).
    scan_pos: usize,
    /// End of the bytes held.
    filled: usize,
    /// Stream offset of `buffer[0]` (in skip mode: of the next byte to arrive).
    base: u64,
    scanner: Scanner,
    mode: Mode,
    /// An item produced while bytes were fed (skip mode), returned by the next
    /// `next_item` call.
    pending: Option<Pending>,
    /// The last byte seen in skip mode, to tell whether an error sits in column 0.
    last_skipped: u8,
    stats: FramerStats,
    /// The range of the frame the last `next_item` returned, while it is still held.
    last_frame: Option<(usize, usize)>,
    /// Where the value of the last item began and what it named.
    origin: Origin,
}

/// Where the value of an item began (see [`Framer::item_start`]), the `id` it names (see
/// [`Framer::item_id`]) and whether it has more than one `id` member.
#[derive(Debug, Clone, Copy, Default)]
struct Origin {
    start: u64,
    id: Option<u64>,
    repeated_id: bool,
}

impl Origin {
    /// An item that began at `start` in a value the scanner tracked the id of.
    fn of(start: u64, scanner: &Scanner) -> Origin {
        Origin {
            start,
            id: scanner.found_id(),
            repeated_id: scanner.id_repeated(),
        }
    }

    /// An item outside any value (a sentinel, a stray byte).
    fn at(start: u64) -> Origin {
        Origin {
            start,
            id: None,
            repeated_id: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Inside a value longer than the buffer, which started at this stream offset.
    Skipping {
        value_offset: u64,
    },
    /// Discarding input after an error; `line_start`: the next byte starts a line.
    Resync {
        line_start: bool,
    },
}

/// An item found while bytes were fed (skip mode), kept as the [`Item`] that
/// [`Framer::next_item`] returns: never an [`Item::Frame`], so it borrows nothing.
type Pending = Item<'static>;

/// Counters kept by a [`Framer`] since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct FramerStats {
    /// Frames returned.
    pub frames: u64,
    /// Values skipped for being longer than the buffer.
    pub oversize: u64,
    /// Malformed messages reported.
    pub malformed: u64,
    /// Stream bytes examined so far.
    pub bytes_scanned: u64,
}

/// What [`Framer::next_item`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Item<'a> {
    /// One complete, valid top-level value.
    Frame(Frame<'a>),
    /// A valid value longer than the buffer, skipped without being stored.
    Oversize {
        /// Its length in bytes.
        len: u64,
        /// The value of its top-level member `"id"`, when that is an unsigned integer.
        id: Option<u64>,
    },
    /// Invalid JSON; the framer has resynchronised.
    Malformed {
        /// What was wrong, and where in the stream.
        error: JsonError,
    },
    /// A 0xFF byte: any partial value was discarded.
    Sentinel,
}

/// One complete, valid top-level value, borrowed from the framer's buffer.
///
/// Its bytes are released when the framer is used again.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    /// Depth-1 member spans recorded while scanning (empty for non-objects).
    spans: &'a [MemberSpan],
    /// Where the member walk resumes after `spans` (`usize::MAX`: nothing more).
    resume: usize,
}

impl<'a> Frame<'a> {
    /// The value's bytes, without surrounding whitespace.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The value.
    pub fn value(&self) -> RawJson<'a> {
        RawJson::from_validated(self.bytes)
    }

    /// The members of the value if it is an object (empty otherwise), in wire order. The
    /// first ones come from spans recorded while scanning, without a second walk.
    pub fn members(&self) -> Members<'a> {
        Members::with_recorded(self.bytes, self.spans, self.resume)
    }
}

impl PartialEq for Frame<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Frame<'_> {}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Frame").field(&self.value()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Frame<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Frame({})", self.value())
    }
}

impl<B: Buffer> fmt::Debug for Framer<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framer")
            .field("capacity", &self.buffer.as_ref().len())
            .field("buffered", &self.buffered())
            .field("max_depth", &self.scanner.max_depth())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<B: Buffer> defmt::Format for Framer<'_, B> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Framer {{ capacity: {}, buffered: {}, stats: {} }}",
            self.buffer.as_ref().len(),
            self.buffered(),
            self.stats()
        )
    }
}

impl<'buf> Framer<'buf> {
    /// A framer storing partial values in `buffer` (its size is the longest value that can
    /// be returned as a [`Frame`]), accepting nesting up to [`DEFAULT_MAX_DEPTH`].
    pub fn new(buffer: &'buf mut [u8]) -> Self {
        Self::with_buffer(buffer)
    }
}

impl<B: Buffer> Framer<'_, B> {
    /// [`Framer::new`] over a buffer of any [`Buffer`] type (one the framer owns, for
    /// instance a `Box<[u8]>` on a host with an allocator).
    pub fn with_buffer(buffer: B) -> Self {
        Framer {
            buffer,
            _borrow: PhantomData,
            start: 0,
            scan_pos: 0,
            filled: 0,
            base: 0,
            scanner: Scanner::new(DEFAULT_MAX_DEPTH),
            mode: Mode::Normal,
            pending: None,
            last_skipped: b'\n',
            stats: FramerStats::default(),
            last_frame: None,
            origin: Origin::at(0),
        }
    }

    /// Sets the nesting limit (clamped to [`MAX_DEPTH_LIMIT`](super::MAX_DEPTH_LIMIT)).
    /// Deeper values are [`Item::Malformed`] with [`JsonErrorKind::TooDeep`].
    pub fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.scanner = Scanner::new(max_depth);
        self.reset();
        self
    }

    /// The buffer size.
    pub fn capacity(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Ends the framer and gives its buffer back (for reuse by a new one).
    pub fn into_buffer(self) -> B {
        self.buffer
    }

    /// Bytes held (not yet returned or discarded).
    pub fn buffered(&self) -> usize {
        self.filled - self.start
    }

    /// Whether a value has started and not ended (at end of stream: a truncated message).
    pub fn has_partial(&self) -> bool {
        match self.mode {
            Mode::Normal => self.scanner.in_value(),
            Mode::Skipping { .. } => true,
            Mode::Resync { .. } => false,
        }
    }

    /// The stream offset of the next byte to arrive (how many bytes were fed so far).
    pub(crate) fn received(&self) -> u64 {
        match self.mode {
            Mode::Skipping { .. } => self.base,
            _ => self.base + self.filled as u64,
        }
    }

    /// The stream offset where the value of the item the last
    /// [`next_item`](Framer::next_item) returned began: a frame's or an oversize value's
    /// first byte; for a malformed message, the first byte of the value the fault was
    /// found in (or the faulty byte itself outside any value); a sentinel's own offset.
    pub fn item_start(&self) -> u64 {
        self.origin.start
    }

    /// For the frame, [`Item::Oversize`] or [`Item::Malformed`] the last
    /// [`next_item`](Framer::next_item) returned: the unsigned integer its top-level
    /// `id` member holds (read before the fault, for a malformed one), unless another
    /// `id` member holds anything else. `None` for sentinels.
    pub fn item_id(&self) -> Option<u64> {
        self.origin.id
    }

    /// Whether the value of the item the last [`next_item`](Framer::next_item) returned
    /// has more than one top-level `id` member (up to its fault, for a malformed one).
    pub fn item_id_repeated(&self) -> bool {
        self.origin.repeated_id
    }

    /// The counters.
    pub fn stats(&self) -> FramerStats {
        let mut stats = self.stats;
        stats.bytes_scanned = match self.mode {
            Mode::Skipping { .. } => self.base,
            _ => self.base + self.scan_pos as u64,
        };
        stats
    }

    /// Drops every buffered byte, any pending item and any partial value.
    pub fn reset(&mut self) {
        self.last_frame = None;
        if !matches!(self.mode, Mode::Skipping { .. }) {
            self.base += self.filled as u64;
        }
        self.start = 0;
        self.scan_pos = 0;
        self.filled = 0;
        self.scanner.reset();
        self.mode = Mode::Normal;
        self.pending = None;
    }

    /// Copies bytes in. Returns how many were taken: fewer than offered only when the
    /// buffer is full of bytes not yet returned by [`next_item`](Framer::next_item), which
    /// must then be called before the rest can be pushed.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.last_frame = None;
        let mut taken = 0;
        loop {
            let rest = bytes.get(taken..).unwrap_or(&[]);
            if rest.is_empty() {
                return taken;
            }
            if matches!(self.mode, Mode::Skipping { .. }) && self.pending.is_none() {
                let consumed = self.skip(rest);
                self.base += consumed as u64;
                taken += consumed;
                continue;
            }
            let window = self.window();
            let n = window.len().min(rest.len());
            if n == 0 {
                return taken;
            }
            if let (Some(target), Some(source)) = (window.get_mut(..n), rest.get(..n)) {
                target.copy_from_slice(source);
            }
            self.filled += n;
            taken += n;
        }
    }

    /// The free space at the end of the buffer, for reading into directly (then call
    /// [`commit`](Framer::commit)). Compacts the buffer first when useful; empty when the
    /// buffer is full of bytes not yet returned by [`next_item`](Framer::next_item).
    pub fn window(&mut self) -> &mut [u8] {
        self.last_frame = None;
        if self.start == self.filled && self.scan_pos == self.filled {
            // Nothing held: start over at the front for free.
            self.base += self.filled as u64;
            self.start = 0;
            self.scan_pos = 0;
            self.filled = 0;
        } else if self.start > 0
            && (self.filled == self.buffer.as_ref().len()
                || self.start >= self.buffer.as_ref().len() / 2)
        {
            self.compact();
        }
        self.buffer
            .as_mut()
            .get_mut(self.filled..)
            .unwrap_or(&mut [])
    }

    /// Records that `n` bytes were written at the start of [`window`](Framer::window)
    /// (clamped to its length).
    pub fn commit(&mut self, n: usize) {
        self.last_frame = None;
        let n = n.min(self.buffer.as_ref().len() - self.filled);
        if matches!(self.mode, Mode::Skipping { .. }) && self.pending.is_none() {
            // The buffer is empty in skip mode: scan the new bytes where they lie and keep
            // only what follows the end of the skipped value.
            let data = self.buffer.as_ref().get(..n).unwrap_or(&[]);
            let consumed = skip_scan(
                &mut self.scanner,
                &mut self.mode,
                &mut self.pending,
                &mut self.last_skipped,
                &mut self.stats,
                &mut self.origin,
                self.base,
                data,
            );
            if consumed == n {
                self.base += n as u64;
            } else {
                self.start = consumed;
                self.scan_pos = consumed;
                self.filled = n;
            }
            return;
        }
        self.filled += n;
    }

    /// The frame the last [`next_item`](Framer::next_item) call returned, again, as long
    /// as no other call has changed the framer since (`None` otherwise, or when that call
    /// returned something other than a frame). Lets a caller that inspected a frame in a
    /// loop hand it out afterwards without keeping the first borrow alive.
    pub fn current_item(&self) -> Option<Item<'_>> {
        let (value_start, end) = self.last_frame?;
        let bytes = self.buffer.as_ref().get(value_start..end)?;
        let (spans, resume) = match self.scanner.recorded_members() {
            Some(recorded) => recorded,
            // An object too long for recorded offsets: walk it.
            None if bytes.first() == Some(&b'{') => (&[][..], 1),
            None => (&[][..], usize::MAX),
        };
        Some(Item::Frame(Frame {
            bytes,
            spans,
            resume,
        }))
    }

    /// The next complete item, or `None` when more bytes are needed.
    pub fn next_item(&mut self) -> Option<Item<'_>> {
        self.last_frame = None;
        if let Some(pending) = self.pending.take() {
            return Some(pending);
        }
        loop {
            match self.mode {
                Mode::Skipping { .. } => return None,
                Mode::Resync { line_start } => {
                    if !self.resync(line_start) {
                        return None;
                    }
                    if self.mode != Mode::Normal {
                        // Stopped on a sentinel.
                        self.mode = Mode::Normal;
                        return Some(Item::Sentinel);
                    }
                }
                Mode::Normal => break,
            }
        }
        let data = self.buffer.as_ref().get(..self.filled).unwrap_or(&[]);
        match self.scanner.scan(data, self.scan_pos) {
            Step::NeedMore => {
                self.scan_pos = self.filled;
                if !self.scanner.in_value() {
                    self.start = self.filled;
                } else {
                    self.start = self.scanner.value_start;
                    if self.start == 0 && self.filled == self.buffer.as_ref().len() {
                        self.enter_skip_mode();
                    }
                }
                None
            }
            Step::ValueEnd { end } => {
                let value_start = self.scanner.value_start;
                self.start = end;
                self.scan_pos = end;
                self.origin = Origin::of(self.base + value_start as u64, &self.scanner);
                self.stats.frames += 1;
                self.last_frame = Some((value_start, end));
                self.current_item()
            }
            Step::Error { kind, at } => {
                let previous = if at > 0 {
                    data.get(at - 1).copied().unwrap_or(b'\n')
                } else {
                    b'\n'
                };
                let resume_here = previous == b'\n'
                    && matches!(kind, JsonErrorKind::UnexpectedByte { byte: b'{' });
                self.origin = if self.scanner.in_container() {
                    Origin::of(self.base + self.scanner.value_start as u64, &self.scanner)
                } else {
                    Origin::at(self.base + at as u64)
                };
                self.scanner.reset();
                self.mode = if resume_here {
                    Mode::Normal
                } else {
                    Mode::Resync { line_start: false }
                };
                self.start = at;
                self.scan_pos = at;
                self.stats.malformed += 1;
                Some(Item::Malformed {
                    error: JsonError::new(kind, self.base + at as u64),
                })
            }
            Step::Sentinel { at } => {
                self.start = at + 1;
                self.scan_pos = at + 1;
                self.origin = Origin::at(self.base + at as u64);
                Some(Item::Sentinel)
            }
        }
    }

    /// Discards lines after an error. Returns `true` when it stopped on a line starting
    /// with `{` (mode back to `Normal`) or on a 0xFF byte (consumed; mode left as is), and
    /// `false` when it ran out of bytes.
    fn resync(&mut self, mut line_start: bool) -> bool {
        let data = self.buffer.as_ref().get(..self.filled).unwrap_or(&[]);
        let mut pos = self.scan_pos;
        loop {
            if line_start {
                match data.get(pos) {
                    None => break,
                    Some(b'{') => {
                        self.mode = Mode::Normal;
                        self.start = pos;
                        self.scan_pos = pos;
                        return true;
                    }
                    Some(_) => line_start = false,
                }
            }
            pos = find_line_break(data, pos);
            match data.get(pos) {
                None => {
                    line_start = false;
                    break;
                }
                Some(b'\n') => {
                    pos += 1;
                    line_start = true;
                }
                Some(0xFF) => {
                    self.origin = Origin::at(self.base + pos as u64);
                    self.start = pos + 1;
                    self.scan_pos = pos + 1;
                    self.scanner.reset();
                    return true;
                }
                Some(_) => pos += 1,
            }
        }
        self.mode = Mode::Resync { line_start };
        self.start = pos;
        self.scan_pos = pos;
        false
    }

    /// The partial value fills the whole buffer: drop it and scan the rest of it as it
    /// arrives, without storing it.
    fn enter_skip_mode(&mut self) {
        self.scanner.stop_recording();
        self.mode = Mode::Skipping {
            value_offset: self.base,
        };
        self.base += self.filled as u64;
        self.last_skipped = self
            .buffer
            .as_ref()
            .get(self.filled.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        self.start = 0;
        self.scan_pos = 0;
        self.filled = 0;
    }

    /// Scans `data` in skip mode; returns how many bytes it consumed (all unless the
    /// skipped value ended, turned out invalid, or a sentinel came).
    fn skip(&mut self, data: &[u8]) -> usize {
        skip_scan(
            &mut self.scanner,
            &mut self.mode,
            &mut self.pending,
            &mut self.last_skipped,
            &mut self.stats,
            &mut self.origin,
            self.base,
            data,
        )
    }

    /// Moves the held bytes to the front of the buffer.
    fn compact(&mut self) {
        let shift = self.start;
        if shift == 0 {
            return;
        }
        super::move_to_front(self.buffer.as_mut(), shift, self.filled);
        self.filled -= shift;
        self.scan_pos -= shift;
        self.start = 0;
        self.scanner.value_start = self.scanner.value_start.saturating_sub(shift);
        self.base += shift as u64;
    }
}

/// The body of [`Framer::skip`], over disjoint fields so `commit` can scan bytes that lie in
/// the buffer. `base` is the stream offset of `data[0]`.
#[allow(clippy::too_many_arguments)]
fn skip_scan(
    scanner: &mut Scanner,
    mode: &mut Mode,
    pending: &mut Option<Pending>,
    last_skipped: &mut u8,
    stats: &mut FramerStats,
    origin: &mut Origin,
    base: u64,
    data: &[u8],
) -> usize {
    let Mode::Skipping { value_offset } = *mode else {
        return 0;
    };
    match scanner.scan(data, 0) {
        Step::NeedMore => {
            if let Some(&last) = data.last() {
                *last_skipped = last;
            }
            data.len()
        }
        Step::ValueEnd { end } => {
            stats.oversize += 1;
            *origin = Origin::of(value_offset, scanner);
            *pending = Some(Item::Oversize {
                len: base + end as u64 - value_offset,
                id: scanner.found_id(),
            });
            *mode = Mode::Normal;
            end
        }
        Step::Error { kind, at } => {
            let previous = match at.checked_sub(1) {
                Some(index) => data.get(index).copied().unwrap_or(0),
                None => *last_skipped,
            };
            let resume_here =
                previous == b'\n' && matches!(kind, JsonErrorKind::UnexpectedByte { byte: b'{' });
            *origin = Origin::of(value_offset, scanner);
            scanner.reset();
            stats.malformed += 1;
            *pending = Some(Item::Malformed {
                error: JsonError::new(kind, base + at as u64),
            });
            *mode = if resume_here {
                Mode::Normal
            } else {
                Mode::Resync { line_start: false }
            };
            at
        }
        Step::Sentinel { at } => {
            *origin = Origin::at(base + at as u64);
            *pending = Some(Item::Sentinel);
            *mode = Mode::Normal;
            at + 1
        }
    }
}
