//! The resumable, validating JSON scanner behind [`Framer`](super::Framer) and
//! [`RawJson::parse`](super::RawJson::parse).
//!
//! [`Scanner::scan`] consumes bytes from a position in a slice until a top-level value ends,
//! the input is invalid, a 0xFF sentinel byte appears, or the slice runs out. All state
//! lives in the scanner, so the next slice may continue anywhere, even inside a token;
//! while a token is whole in the slice it is scanned inline on fast paths (word-at-a-time
//! for strings). Firmware (`target_os = "none"`) gets a compact scanner instead, with the
//! same steps, errors, positions, spans and ids (`compact_tests` compares the two).

use super::raw::{parse_u64_digits, MemberSpan};
use super::swar::skip_whitespace;
#[cfg(not(target_os = "none"))]
use super::swar::{eq_bytes, first_flagged, is_whitespace, load, Word, HIGHS, ONES, WORD_BYTES};
use super::{JsonError, JsonErrorKind, JsonStr, MAX_DEPTH_LIMIT};

#[cfg(not(target_os = "none"))]
mod block;

/// How many depth-1 members of an object the scanner records for `Frame::members`.
pub(crate) const RECORDED_MEMBERS: usize = 16;

/// The initial span table: a constant, so that it is cleared in place rather than built
/// on the stack and copied.
const NO_SPANS: [MemberSpan; RECORDED_MEMBERS] = [MemberSpan {
    key_start: 0,
    key_end: 0,
    value_start: 0,
    value_end: 0,
}; RECORDED_MEMBERS];

/// What one [`Scanner::scan`] call ended on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The slice is exhausted; more bytes are needed.
    NeedMore,
    /// A top-level value ended just before `end` (it started at `Scanner::value_start`).
    ValueEnd { end: usize },
    /// The byte at `at` is invalid.
    Error { kind: JsonErrorKind, at: usize },
    /// The byte at `at` is 0xFF; the scanner has been reset.
    Sentinel { at: usize },
}

/// What the structure expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Between top-level values: whitespace or the start of a value.
    TopValue,
    /// A value (after `:` or after `,` in an array).
    Value,
    /// A value or `]` (after `[`).
    ValueOrClose,
    /// A key or `}` (after `{`).
    KeyOrClose,
    /// A key (after `,` in an object).
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or the close of the current container, after a value.
    CommaOrClose,
}

/// Progress inside a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringState {
    Plain,
    /// After a backslash.
    Escape,
    /// Inside `\uXXXX`, `left` hex digits to go.
    Hex {
        left: u8,
    },
    /// Inside a multi-byte UTF-8 sequence: `left` continuation bytes to go, the next one in
    /// `lo..=hi`.
    Utf8 {
        left: u8,
        lo: u8,
        hi: u8,
    },
}

/// Progress inside a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberState {
    /// Before the first byte (firmware's compact scanner starts numbers there, so the
    /// first byte is scanned, and captured for the id tracker, like the others; the
    /// host's scanner starts after the first byte).
    #[cfg_attr(not(any(target_os = "none", test)), allow(dead_code))]
    Start,
    /// After `-`.
    Minus,
    /// After a leading `0`.
    Zero,
    /// In the integer digits.
    Int,
    /// After `.`.
    Dot,
    /// In the fraction digits.
    Frac,
    /// After `e`/`E`.
    Exp,
    /// After the exponent sign.
    ExpSign,
    /// In the exponent digits.
    ExpDigits,
}

impl NumberState {
    /// Whether the number may end here.
    const fn is_complete(self) -> bool {
        matches!(
            self,
            NumberState::Zero | NumberState::Int | NumberState::Frac | NumberState::ExpDigits
        )
    }
}

/// What follows the first byte (`t`, `f` or `n`) of a literal.
#[cfg_attr(not(target_os = "none"), inline(always))]
const fn literal_rest(first: u8) -> &'static [u8] {
    match first {
        b't' => b"rue",
        b'f' => b"alse",
        _ => b"ull",
    }
}

/// The number state after its first byte (`-` or a digit), for the host's scanner
/// (firmware's starts a number at [`NumberState::Start`] and scans its first byte too).
#[cfg(not(target_os = "none"))]
#[inline(always)]
const fn number_after_first(first: u8) -> NumberState {
    match first {
        b'-' => NumberState::Minus,
        b'0' => NumberState::Zero,
        _ => NumberState::Int,
    }
}

/// A token interrupted by the end of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    None,
    String { key: bool, state: StringState },
    Number(NumberState),
    Literal { rest: &'static [u8] },
}

/// How a token scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenEnd {
    /// The token ends just before this index.
    Done(usize),
    /// The slice ran out inside the token.
    More,
    Fail(JsonErrorKind, usize),
    Sentinel(usize),
}

/// Tracks the value of a depth-1 member named `"id"` when it is an unsigned integer. Keys
/// are followed to the end of the object, so a second `"id"` member is seen: the same
/// integer again keeps the id, anything else (another value, a non-integer) makes the
/// message name no id at all (it cannot be told which request it answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdState {
    Idle,
    /// Capturing a depth-1 key.
    Key,
    /// The last depth-1 key was `id`; its value has not started.
    KeyIsId,
    /// Capturing the digits of the `id` value.
    Value,
}

#[derive(Debug, Clone, Copy)]
struct IdTracker {
    state: IdState,
    /// Raw bytes of the key (`\u0069\u0064` is the longest spelling of `id`: 12 bytes) or
    /// of the number (a `u64` has at most 20 digits).
    capture: [u8; 20],
    len: u8,
    overflow: bool,
    /// The first `id` value read, when it is an unsigned integer.
    found: Option<u64>,
    /// An `id` member that is not an unsigned integer, or a second one that differs.
    conflict: bool,
    /// More than one `id` member.
    repeated: bool,
}

impl IdTracker {
    const NEW: IdTracker = IdTracker {
        state: IdState::Idle,
        capture: [0; 20],
        len: 0,
        overflow: false,
        found: None,
        conflict: false,
        repeated: false,
    };

    #[inline]
    fn capturing(&self) -> bool {
        matches!(self.state, IdState::Key | IdState::Value)
    }

    fn append(&mut self, bytes: &[u8]) {
        let len = self.len as usize;
        match self.capture.get_mut(len..len + bytes.len()) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len = (len + bytes.len()) as u8;
            }
            None => self.overflow = true,
        }
    }

    fn captured(&self) -> Option<&[u8]> {
        if self.overflow {
            None
        } else {
            self.capture.get(..self.len as usize)
        }
    }

    #[inline]
    fn key_start(&mut self) {
        self.state = IdState::Key;
        self.len = 0;
        self.overflow = false;
    }

    #[inline]
    fn key_end(&mut self) {
        if self.state == IdState::Key {
            let is_id = self
                .captured()
                .is_some_and(|key| JsonStr::from_validated(key) == "id");
            self.state = if is_id {
                // Every `id` member sets `found` or `conflict` by its end.
                self.repeated |= self.found.is_some() || self.conflict;
                IdState::KeyIsId
            } else {
                IdState::Idle
            };
        }
    }

    #[inline]
    fn value_start(&mut self, first: u8) {
        if self.state == IdState::KeyIsId {
            if first.is_ascii_digit() {
                self.state = IdState::Value;
                self.len = 0;
                self.overflow = false;
            } else {
                self.state = IdState::Idle;
                self.conflict = true;
            }
        }
    }

    #[inline]
    fn value_end(&mut self) {
        if self.state == IdState::Value {
            self.state = IdState::Idle;
            match (self.captured().and_then(parse_u64_digits), self.found) {
                (Some(id), None) => self.found = Some(id),
                (Some(id), Some(first)) if id == first => {}
                _ => self.conflict = true,
            }
        }
    }

    fn found(&self) -> Option<u64> {
        if self.conflict {
            None
        } else {
            self.found
        }
    }
}

/// The resumable scanner. See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Scanner {
    max_depth: usize,
    expect: Expect,
    token: Token,
    depth: usize,
    /// Bit `d` set: the container at depth `d + 1` is an object.
    containers: [u32; MAX_DEPTH_LIMIT / 32],
    /// Where the current top-level value starts, in the coordinates of the slices scanned
    /// (the framer shifts it when it compacts its buffer).
    pub(crate) value_start: usize,
    /// Whether member spans are wanted at all (off for plain validation).
    record_enabled: bool,
    /// Whether depth-1 member spans are being recorded now.
    recording: bool,
    /// Whether the recorded spans describe the current value (it is an object whose
    /// offsets fit in `u32`).
    spans_valid: bool,
    span_count: usize,
    spans: [MemberSpan; RECORDED_MEMBERS],
    id: IdTracker,
}

impl Scanner {
    /// A scanner accepting nesting up to `max_depth` (clamped to [`MAX_DEPTH_LIMIT`]).
    pub(crate) const fn new(max_depth: usize) -> Self {
        Scanner {
            max_depth: if max_depth > MAX_DEPTH_LIMIT {
                MAX_DEPTH_LIMIT
            } else {
                max_depth
            },
            expect: Expect::TopValue,
            token: Token::None,
            depth: 0,
            containers: [0; MAX_DEPTH_LIMIT / 32],
            value_start: 0,
            record_enabled: true,
            recording: false,
            spans_valid: false,
            span_count: 0,
            spans: NO_SPANS,
            id: IdTracker::NEW,
        }
    }

    /// A scanner that does not record member spans.
    pub(crate) const fn validator(max_depth: usize) -> Self {
        let mut scanner = Scanner::new(max_depth);
        scanner.record_enabled = false;
        scanner
    }

    pub(crate) fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Forgets any partial value.
    pub(crate) fn reset(&mut self) {
        self.expect = Expect::TopValue;
        self.token = Token::None;
        self.depth = 0;
        self.recording = false;
        self.spans_valid = false;
    }

    /// Whether a value has started and not ended.
    pub(crate) fn in_value(&self) -> bool {
        self.expect != Expect::TopValue || self.token != Token::None
    }

    /// Whether the current (or just ended) top-level object has more than one `id`
    /// member at depth 1 so far.
    pub(crate) fn id_repeated(&self) -> bool {
        self.id.repeated
    }

    /// Whether the scanner is inside a container. Unlike [`Scanner::in_value`], also right
    /// after an error: the nesting depth is kept as bytes are scanned, the expected token
    /// only when a slice runs out.
    pub(crate) fn in_container(&self) -> bool {
        self.depth > 0
    }

    /// Stops recording member spans for the current value (it will not become a frame).
    pub(crate) fn stop_recording(&mut self) {
        self.recording = false;
        self.spans_valid = false;
    }

    /// The `id` of the current (or just ended) top-level object, when it is an unsigned
    /// integer member at depth 1 (and any other `id` member seen so far is the same
    /// integer).
    pub(crate) fn found_id(&self) -> Option<u64> {
        self.id.found()
    }

    /// The member spans of the value that just ended, and where the walker resumes after
    /// them (`usize::MAX` when they are all the members). `None` if no spans apply.
    pub(crate) fn recorded_members(&self) -> Option<(&[MemberSpan], usize)> {
        if !self.spans_valid {
            return None;
        }
        let spans = self.spans.get(..self.span_count).unwrap_or(&[]);
        let resume = if self.span_count == RECORDED_MEMBERS {
            spans
                .last()
                .map_or(usize::MAX, |last| last.value_end as usize)
        } else {
            usize::MAX
        };
        Some((spans, resume))
    }

    /// At end of input: whether the interrupted token is a complete top-level number.
    pub(crate) fn can_end_at_eof(&self) -> bool {
        self.depth == 0 && matches!(self.token, Token::Number(state) if state.is_complete())
    }

    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    fn in_object(&self) -> bool {
        let level = self.depth.wrapping_sub(1);
        let word = self.containers[(level >> 5) & 7];
        word & (1 << (level & 31)) != 0
    }

    /// `pos - value_start` as a recorded offset; stops recording if it does not fit.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    fn relative(&mut self, pos: usize) -> u32 {
        match u32::try_from(pos.wrapping_sub(self.value_start)) {
            Ok(offset) => offset,
            Err(_) => {
                self.stop_recording();
                0
            }
        }
    }

    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    fn current_span(&mut self) -> Option<&mut MemberSpan> {
        self.spans.get_mut(self.span_count)
    }

    /// A top-level value starts at `pos` with `first`.
    #[inline]
    fn begin_top(&mut self, pos: usize, first: u8) {
        self.value_start = pos;
        self.recording = self.record_enabled && first == b'{';
        self.spans_valid = self.recording;
        self.span_count = 0;
        // The capture bytes need no clearing: only `capture[..len]` is ever read.
        self.id.state = IdState::Idle;
        self.id.len = 0;
        self.id.overflow = false;
        self.id.found = None;
        self.id.conflict = false;
        self.id.repeated = false;
    }

    /// A key starts at depth 1 (`pos` is its opening quote).
    #[inline]
    fn member_key_start(&mut self, pos: usize) {
        if self.recording {
            let offset = self.relative(pos + 1);
            if let Some(span) = self.current_span() {
                span.key_start = offset;
            }
        }
        self.id.key_start();
    }

    /// A key at depth 1 ends just before `end` (its closing quote is at `end - 1`).
    #[inline]
    fn member_key_end(&mut self, end: usize) {
        if self.recording {
            let offset = self.relative(end - 1);
            if let Some(span) = self.current_span() {
                span.key_end = offset;
            }
        }
        self.id.key_end();
    }

    /// A value at depth 1 starts at `pos` with `first`.
    #[inline]
    fn member_value_start(&mut self, pos: usize, first: u8) {
        if self.recording {
            let offset = self.relative(pos);
            if let Some(span) = self.current_span() {
                span.value_start = offset;
            }
        }
        self.id.value_start(first);
    }

    /// A value at depth 1 ends just before `end`.
    #[inline]
    fn member_value_end(&mut self, end: usize) {
        if self.recording {
            let offset = self.relative(end);
            if let Some(span) = self.current_span() {
                span.value_end = offset;
            }
            if self.recording {
                self.span_count += 1;
                if self.span_count >= RECORDED_MEMBERS {
                    self.recording = false;
                }
            }
        }
        self.id.value_end();
    }

    /// A value ended just before `end`: returns `Some(end)` if it was the top-level one
    /// (and then expects the next top-level value).
    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    fn value_done(&mut self, end: usize) -> Option<usize> {
        if self.depth > 1 {
            return None;
        }
        if self.depth == 0 {
            self.expect = Expect::TopValue;
            return Some(end);
        }
        if self.depth == 1 {
            self.member_value_end(end);
        }
        // `self.expect` is left alone: `scan` tracks the structure by code position and
        // records `CommaOrClose` itself if the slice runs out here.
        None
    }

    /// Scans a string from `from` (inside it) and feeds the id tracker.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    fn string_token(&mut self, data: &[u8], from: usize, state: &mut StringState) -> TokenEnd {
        let end = scan_string(data, from, state);
        if self.id.capturing() {
            let stop = match end {
                TokenEnd::Done(after) => after - 1,
                _ => data.len(),
            };
            self.id.append(data.get(from..stop).unwrap_or(&[]));
        }
        end
    }

    /// Scans a number from `from` (inside it; it started at `start`) and feeds the id
    /// tracker.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    fn number_token(
        &mut self,
        data: &[u8],
        start: usize,
        from: usize,
        state: &mut NumberState,
    ) -> TokenEnd {
        let end = scan_number(data, from, state);
        if self.id.capturing() {
            let stop = match end {
                TokenEnd::Done(after) => after,
                _ => data.len(),
            };
            self.id.append(data.get(start..stop).unwrap_or(&[]));
        }
        end
    }

    /// Continues an interrupted token at `pos`. `Ok(Some(end))`: the top-level value ended;
    /// `Ok(None)`: structure continues at `*pos`.
    fn resume_token(&mut self, data: &[u8], pos: &mut usize) -> Result<Option<usize>, Step> {
        let token = self.token;
        let (end, key) = match token {
            Token::None => return Ok(None),
            Token::String { key, mut state } => {
                let end = self.string_token(data, *pos, &mut state);
                self.token = Token::String { key, state };
                (end, key)
            }
            Token::Number(mut state) => {
                let end = self.number_token(data, *pos, *pos, &mut state);
                if end == TokenEnd::More {
                    self.token = Token::Number(state);
                }
                (end, false)
            }
            Token::Literal { mut rest } => {
                let end = scan_literal(data, *pos, &mut rest);
                self.token = Token::Literal { rest };
                (end, false)
            }
        };
        match end {
            TokenEnd::More => Err(Step::NeedMore),
            TokenEnd::Fail(kind, at) => Err(Step::Error { kind, at }),
            TokenEnd::Sentinel(at) => {
                self.reset();
                Err(Step::Sentinel { at })
            }
            TokenEnd::Done(after) => {
                self.token = Token::None;
                *pos = after;
                if key {
                    if self.depth == 1 {
                        self.member_key_end(after);
                    }
                    self.expect = Expect::Colon;
                    Ok(None)
                } else {
                    self.expect = Expect::CommaOrClose;
                    Ok(self.value_done(after))
                }
            }
        }
    }

    /// Scans `data` from `pos`. See [`Step`]. Firmware: the compact scanner.
    #[cfg(target_os = "none")]
    #[inline]
    pub(crate) fn scan(&mut self, data: &[u8], pos: usize) -> Step {
        self.scan_compact(data, pos)
    }

    /// The compact scanner (firmware's [`Scanner::scan`]; on hosts only built for the
    /// tests that compare it with the fast one): one loop that dispatches on
    /// [`Expect`] for every structural byte and starts every token through
    /// [`Scanner::resume_token`], so each token is scanned from one place. The same
    /// steps, errors, positions, member spans and ids as the host's scanner.
    #[cfg(any(target_os = "none", test))]
    fn scan_compact(&mut self, data: &[u8], mut pos: usize) -> Step {
        loop {
            match self.resume_token(data, &mut pos) {
                Ok(Some(end)) => return Step::ValueEnd { end },
                Ok(None) => {}
                Err(step) => return step,
            }
            pos = skip_ws(data, pos);
            let Some(&byte) = data.get(pos) else {
                return Step::NeedMore;
            };
            let expect = self.expect;
            let mut close = false;
            match expect {
                Expect::Colon => {
                    if byte != b':' {
                        return self.bad_byte(byte, pos);
                    }
                    self.expect = Expect::Value;
                }
                Expect::CommaOrClose => {
                    let in_object = self.in_object();
                    if byte == b',' {
                        self.expect = if in_object {
                            Expect::Key
                        } else {
                            Expect::Value
                        };
                    } else if byte == if in_object { b'}' } else { b']' } {
                        close = true;
                    } else {
                        return self.bad_byte(byte, pos);
                    }
                }
                Expect::Key | Expect::KeyOrClose => {
                    if byte == b'}' && expect == Expect::KeyOrClose {
                        close = true;
                    } else if byte == b'"' {
                        if self.depth == 1 {
                            self.member_key_start(pos);
                        }
                        self.token = Token::String {
                            key: true,
                            state: StringState::Plain,
                        };
                    } else {
                        return self.bad_byte(byte, pos);
                    }
                }
                Expect::TopValue | Expect::Value | Expect::ValueOrClose => {
                    if byte == b']' && expect == Expect::ValueOrClose {
                        close = true;
                    } else {
                        if self.depth <= 1 {
                            if self.depth == 0 {
                                self.begin_top(pos, byte);
                            } else {
                                self.member_value_start(pos, byte);
                            }
                        }
                        self.token = match byte {
                            b'"' => Token::String {
                                key: false,
                                state: StringState::Plain,
                            },
                            b'{' | b'[' => {
                                let is_object = byte == b'{';
                                if let Err(step) = self.open(is_object, pos) {
                                    return step;
                                }
                                self.expect = if is_object {
                                    Expect::KeyOrClose
                                } else {
                                    Expect::ValueOrClose
                                };
                                Token::None
                            }
                            b'-' | b'0'..=b'9' => {
                                // `resume_token` scans the number from its first byte.
                                self.token = Token::Number(NumberState::Start);
                                continue;
                            }
                            b't' | b'f' | b'n' => Token::Literal {
                                rest: literal_rest(byte),
                            },
                            _ => return self.bad_byte(byte, pos),
                        };
                    }
                }
            }
            pos += 1;
            if close {
                self.depth = self.depth.saturating_sub(1);
                self.expect = Expect::CommaOrClose;
                if let Some(end) = self.value_done(pos) {
                    return Step::ValueEnd { end };
                }
            }
        }
    }

    /// Scans `data` from `pos`. See [`Step`].
    ///
    /// The structure is followed by code position (value, then "after value", with keys
    /// and colons inline), not by dispatching on [`Expect`] for every byte: `self.expect`
    /// is read once on entry and written only when the slice runs out.
    #[cfg(not(target_os = "none"))]
    pub(crate) fn scan(&mut self, data: &[u8], mut pos: usize) -> Step {
        if self.token != Token::None {
            match self.resume_token(data, &mut pos) {
                Ok(Some(end)) => return Step::ValueEnd { end },
                Ok(None) => {}
                Err(step) => return step,
            }
        }
        // Where the fast path may next start (it stopped before this point).
        #[cfg(not(target_os = "none"))]
        let mut blocks_from = 0;
        'entry: loop {
            // Entry: where in the structure the previous slice stopped.
            let mut after_value = false;
            let mut close_allowed = false;
            match self.expect {
                Expect::TopValue | Expect::Value => {}
                Expect::ValueOrClose => close_allowed = true,
                Expect::CommaOrClose => after_value = true,
                Expect::Colon => match self.colon(data, pos) {
                    Ok(after) => pos = after,
                    Err(step) => return step,
                },
                Expect::Key => match self.member_key(data, pos) {
                    Ok(after) => pos = after,
                    Err(step) => return step,
                },
                Expect::KeyOrClose => {
                    pos = skip_ws(data, pos);
                    match data.get(pos) {
                        None => return Step::NeedMore,
                        Some(b'}') => {
                            pos += 1;
                            self.depth = self.depth.saturating_sub(1);
                            if let Some(end) = self.value_done(pos) {
                                return Step::ValueEnd { end };
                            }
                            after_value = true;
                        }
                        Some(_) => match self.member_key(data, pos) {
                            Ok(after) => pos = after,
                            Err(step) => return step,
                        },
                    }
                }
            }
            loop {
                // Deep inside a value, whole blocks at a time while they last. Not under
                // Miri: it interprets the 64-lane loops lane by lane (the qmp-core suite
                // took 60% longer), and the fast path is safe code with nothing for it to
                // find that the native differential tests and the fuzzer do not.
                #[cfg(not(target_os = "none"))]
                if !cfg!(miri)
                    && self.depth >= 2
                    && pos >= blocks_from
                    && data.len().saturating_sub(pos) >= block::BLOCK
                {
                    self.expect = if after_value {
                        Expect::CommaOrClose
                    } else if close_allowed {
                        Expect::ValueOrClose
                    } else {
                        Expect::Value
                    };
                    (pos, blocks_from) = self.scan_blocks(data, pos);
                    continue 'entry;
                }
                if !after_value {
                    // A value (or `]` right after `[`).
                    pos = skip_ws(data, pos);
                    let Some(&byte) = data.get(pos) else {
                        self.expect = if self.depth == 0 {
                            Expect::TopValue
                        } else if close_allowed {
                            Expect::ValueOrClose
                        } else {
                            Expect::Value
                        };
                        return Step::NeedMore;
                    };
                    if byte == b']' && close_allowed {
                        // `[]` closed: what follows is `,` or a close, and after a `,` a value
                        // must come (`[[],]` is invalid).
                        close_allowed = false;
                        pos += 1;
                        self.depth = self.depth.saturating_sub(1);
                        if let Some(end) = self.value_done(pos) {
                            return Step::ValueEnd { end };
                        }
                    } else {
                        close_allowed = false;
                        if self.depth <= 1 {
                            if self.depth == 0 {
                                self.begin_top(pos, byte);
                            } else {
                                self.member_value_start(pos, byte);
                            }
                        }
                        match byte {
                            b'"' => {
                                let mut state = StringState::Plain;
                                // A string value never feeds the id tracker (only keys and
                                // numbers do).
                                match scan_string(data, pos + 1, &mut state) {
                                    TokenEnd::Done(after) => {
                                        pos = after;
                                        if let Some(end) = self.value_done(after) {
                                            return Step::ValueEnd { end };
                                        }
                                    }
                                    other => {
                                        self.token = Token::String { key: false, state };
                                        return self.token_step(other);
                                    }
                                }
                            }
                            b'{' => {
                                if let Err(step) = self.open(true, pos) {
                                    return step;
                                }
                                pos = skip_ws(data, pos + 1);
                                match data.get(pos) {
                                    Some(b'}') => {
                                        pos += 1;
                                        self.depth = self.depth.saturating_sub(1);
                                        if let Some(end) = self.value_done(pos) {
                                            return Step::ValueEnd { end };
                                        }
                                    }
                                    Some(_) => {
                                        match self.member_key(data, pos) {
                                            Ok(after) => pos = after,
                                            Err(step) => return step,
                                        }
                                        continue;
                                    }
                                    None => {
                                        self.expect = Expect::KeyOrClose;
                                        return Step::NeedMore;
                                    }
                                }
                            }
                            b'[' => {
                                if let Err(step) = self.open(false, pos) {
                                    return step;
                                }
                                pos += 1;
                                close_allowed = true;
                                continue;
                            }
                            b'-' | b'0'..=b'9' => {
                                let mut state = number_after_first(byte);
                                match self.number_token(data, pos, pos + 1, &mut state) {
                                    TokenEnd::Done(after) => {
                                        pos = after;
                                        if let Some(end) = self.value_done(after) {
                                            return Step::ValueEnd { end };
                                        }
                                    }
                                    other => {
                                        self.token = Token::Number(state);
                                        return self.token_step(other);
                                    }
                                }
                            }
                            b't' | b'f' | b'n' => {
                                let mut rest = literal_rest(byte);
                                match scan_literal(data, pos + 1, &mut rest) {
                                    TokenEnd::Done(after) => {
                                        pos = after;
                                        if let Some(end) = self.value_done(after) {
                                            return Step::ValueEnd { end };
                                        }
                                    }
                                    other => {
                                        self.token = Token::Literal { rest };
                                        return self.token_step(other);
                                    }
                                }
                            }
                            _ => return self.bad_byte(byte, pos),
                        }
                    }
                }
                after_value = false;
                // After a value inside a container: `,` or the container's close.
                loop {
                    pos = skip_ws(data, pos);
                    let Some(&byte) = data.get(pos) else {
                        self.expect = Expect::CommaOrClose;
                        return Step::NeedMore;
                    };
                    match byte {
                        b',' => {
                            if self.in_object() {
                                match self.member_key(data, pos + 1) {
                                    Ok(after) => pos = after,
                                    Err(step) => return step,
                                }
                            } else {
                                pos += 1;
                            }
                            break;
                        }
                        b'}' | b']' if (byte == b'}') == self.in_object() => {
                            pos += 1;
                            self.depth = self.depth.saturating_sub(1);
                            if let Some(end) = self.value_done(pos) {
                                return Step::ValueEnd { end };
                            }
                        }
                        _ => return self.bad_byte(byte, pos),
                    }
                }
            }
        }
    }

    /// Opens a container at `pos`, unless that exceeds the depth limit.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    fn open(&mut self, is_object: bool, pos: usize) -> Result<(), Step> {
        if self.depth >= self.max_depth {
            return Err(Step::Error {
                kind: JsonErrorKind::TooDeep {
                    limit: self.max_depth,
                },
                at: pos,
            });
        }
        let bit = 1u32 << (self.depth & 31);
        let word = &mut self.containers[(self.depth >> 5) & 7];
        if is_object {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        self.depth += 1;
        Ok(())
    }

    /// A key, then its colon, from `pos` (whitespace allowed before each). Returns the
    /// position after the colon; on running out, records where it stopped.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    #[cfg(not(target_os = "none"))]
    fn member_key(&mut self, data: &[u8], pos: usize) -> Result<usize, Step> {
        let pos = skip_ws(data, pos);
        let Some(&byte) = data.get(pos) else {
            self.expect = Expect::Key;
            return Err(Step::NeedMore);
        };
        if byte != b'"' {
            return Err(self.bad_byte(byte, pos));
        }
        if self.depth == 1 {
            self.member_key_start(pos);
        }
        let mut state = StringState::Plain;
        match self.string_token(data, pos + 1, &mut state) {
            TokenEnd::Done(after) => {
                if self.depth == 1 {
                    self.member_key_end(after);
                }
                self.colon(data, after)
            }
            other => {
                self.token = Token::String { key: true, state };
                Err(self.token_step(other))
            }
        }
    }

    /// The colon after a key, from `pos`. Returns the position after it.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    #[cfg_attr(target_os = "none", inline)]
    #[cfg(not(target_os = "none"))]
    fn colon(&mut self, data: &[u8], pos: usize) -> Result<usize, Step> {
        // QEMU's usual `": "` and a value, checked at once (the value's first byte is then
        // found without skipping whitespace).
        #[cfg(not(target_os = "none"))]
        if let Some(&[b':', b' ', first]) = data.get(pos..pos + 3) {
            if first > b' ' {
                return Ok(pos + 2);
            }
        }
        let pos = skip_ws(data, pos);
        match data.get(pos) {
            Some(b':') => Ok(pos + 1),
            Some(&byte) => Err(self.bad_byte(byte, pos)),
            None => {
                self.expect = Expect::Colon;
                Err(Step::NeedMore)
            }
        }
    }

    /// A byte that does not fit: the sentinel, or an error.
    #[cold]
    fn bad_byte(&mut self, byte: u8, at: usize) -> Step {
        if byte == 0xFF {
            self.reset();
            Step::Sentinel { at }
        } else {
            unexpected(byte, at)
        }
    }

    /// The step for a token that did not finish in this slice.
    #[cold]
    #[cfg(not(target_os = "none"))]
    fn token_step(&mut self, end: TokenEnd) -> Step {
        match end {
            TokenEnd::Fail(kind, at) => Step::Error { kind, at },
            TokenEnd::Sentinel(at) => {
                self.reset();
                Step::Sentinel { at }
            }
            TokenEnd::More | TokenEnd::Done(_) => Step::NeedMore,
        }
    }
}

#[cold]
fn unexpected(byte: u8, at: usize) -> Step {
    Step::Error {
        kind: JsonErrorKind::UnexpectedByte { byte },
        at,
    }
}

/// Skips whitespace from `pos`: the usual single space inline, longer runs (indentation)
/// a word at a time.
#[cfg(not(target_os = "none"))]
#[inline(always)]
fn skip_ws(data: &[u8], mut pos: usize) -> usize {
    match data.get(pos) {
        Some(&byte) if byte > b' ' => return pos,
        Some(b' ') => pos += 1,
        _ => {}
    }
    match data.get(pos) {
        Some(&byte) if byte > b' ' => pos,
        _ => skip_whitespace_run(data, pos),
    }
}

/// Skips whitespace from `pos` (firmware: the one plain loop, for size).
#[cfg(target_os = "none")]
fn skip_ws(data: &[u8], pos: usize) -> usize {
    skip_whitespace(data, pos)
}

/// Skips a whitespace run from `pos`, a word of spaces at a time on indentation.
#[cfg(not(target_os = "none"))]
#[cold]
fn skip_whitespace_run(data: &[u8], mut pos: usize) -> usize {
    loop {
        if load(data, pos) == Some(ONES * b' ' as Word) {
            pos += WORD_BYTES;
            continue;
        }
        match data.get(pos) {
            Some(&byte) if is_whitespace(byte) => pos += 1,
            _ => return pos,
        }
    }
}

/// The accepted range of the second byte and the number of continuation bytes for a UTF-8
/// lead byte (Unicode table 3-7), or `None` if it cannot start a sequence.
#[inline]
const fn utf8_lead(byte: u8) -> Option<(u8, u8, u8)> {
    match byte {
        0xC2..=0xDF => Some((1, 0x80, 0xBF)),
        0xE0 => Some((2, 0xA0, 0xBF)),
        0xE1..=0xEC | 0xEE..=0xEF => Some((2, 0x80, 0xBF)),
        0xED => Some((2, 0x80, 0x9F)),
        0xF0 => Some((3, 0x90, 0xBF)),
        0xF1..=0xF3 => Some((3, 0x80, 0xBF)),
        0xF4 => Some((3, 0x80, 0x8F)),
        _ => None,
    }
}

/// Scans string content from `pos` (after the opening quote or a resumed point).
/// Firmware: the compact loop.
#[cfg(target_os = "none")]
#[inline]
fn scan_string(data: &[u8], pos: usize, state: &mut StringState) -> TokenEnd {
    scan_string_compact(data, pos, state)
}

/// [`scan_string`] in one loop of one byte per step (firmware's; on hosts only built
/// for the test that compares the two): the sentinel is checked once for every state.
#[cfg(any(target_os = "none", test))]
fn scan_string_compact(data: &[u8], mut pos: usize, state: &mut StringState) -> TokenEnd {
    loop {
        let Some(&byte) = data.get(pos) else {
            return TokenEnd::More;
        };
        if byte == 0xFF {
            return TokenEnd::Sentinel(pos);
        }
        let invalid = match *state {
            StringState::Plain => match byte {
                b'"' => return TokenEnd::Done(pos + 1),
                b'\\' => {
                    *state = StringState::Escape;
                    None
                }
                0x20..=0x7F => None,
                0..=0x1F => Some(JsonErrorKind::ControlInString { byte }),
                _ => match utf8_lead(byte) {
                    Some((left, lo, hi)) => {
                        *state = StringState::Utf8 { left, lo, hi };
                        None
                    }
                    None => Some(JsonErrorKind::InvalidUtf8),
                },
            },
            StringState::Escape => match byte {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                    *state = StringState::Plain;
                    None
                }
                b'u' => {
                    *state = StringState::Hex { left: 4 };
                    None
                }
                _ => Some(JsonErrorKind::InvalidEscape),
            },
            StringState::Hex { left } => {
                if byte.is_ascii_hexdigit() {
                    *state = if left <= 1 {
                        StringState::Plain
                    } else {
                        StringState::Hex { left: left - 1 }
                    };
                    None
                } else {
                    Some(JsonErrorKind::InvalidEscape)
                }
            }
            StringState::Utf8 { left, lo, hi } => {
                if byte < lo || byte > hi {
                    Some(JsonErrorKind::InvalidUtf8)
                } else {
                    *state = if left <= 1 {
                        StringState::Plain
                    } else {
                        StringState::Utf8 {
                            left: left - 1,
                            lo: 0x80,
                            hi: 0xBF,
                        }
                    };
                    None
                }
            }
        };
        if let Some(kind) = invalid {
            return TokenEnd::Fail(kind, pos);
        }
        pos += 1;
    }
}

/// Scans string content from `pos` (after the opening quote or a resumed point).
#[cfg(not(target_os = "none"))]
#[inline(always)]
fn scan_string(data: &[u8], mut pos: usize, state: &mut StringState) -> TokenEnd {
    loop {
        match *state {
            StringState::Plain => loop {
                // A word at a time to the next quote, backslash, control or non-ASCII
                // byte.
                while let Some(word) = load(data, pos) {
                    let mask = eq_bytes(word, b'"')
                        | eq_bytes(word, b'\\')
                        | ((word.wrapping_sub(ONES * 0x20) | word) & HIGHS);
                    if mask != 0 {
                        pos += first_flagged(mask);
                        break;
                    }
                    pos += WORD_BYTES;
                }
                let Some(&byte) = data.get(pos) else {
                    return TokenEnd::More;
                };
                match byte {
                    b'"' => return TokenEnd::Done(pos + 1),
                    b'\\' => {
                        pos += 1;
                        *state = StringState::Escape;
                        break;
                    }
                    0x20..=0x7F => pos += 1,
                    0..=0x1F => {
                        return TokenEnd::Fail(JsonErrorKind::ControlInString { byte }, pos)
                    }
                    0xFF => return TokenEnd::Sentinel(pos),
                    _ => match utf8_lead(byte) {
                        Some((left, lo, hi)) => {
                            pos += 1;
                            *state = StringState::Utf8 { left, lo, hi };
                            break;
                        }
                        None => return TokenEnd::Fail(JsonErrorKind::InvalidUtf8, pos),
                    },
                }
            },
            StringState::Escape => {
                let Some(&byte) = data.get(pos) else {
                    return TokenEnd::More;
                };
                *state = match byte {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => StringState::Plain,
                    b'u' => StringState::Hex { left: 4 },
                    0xFF => return TokenEnd::Sentinel(pos),
                    _ => return TokenEnd::Fail(JsonErrorKind::InvalidEscape, pos),
                };
                pos += 1;
            }
            StringState::Hex { left } => {
                let Some(&byte) = data.get(pos) else {
                    return TokenEnd::More;
                };
                if !byte.is_ascii_hexdigit() {
                    return if byte == 0xFF {
                        TokenEnd::Sentinel(pos)
                    } else {
                        TokenEnd::Fail(JsonErrorKind::InvalidEscape, pos)
                    };
                }
                *state = if left <= 1 {
                    StringState::Plain
                } else {
                    StringState::Hex { left: left - 1 }
                };
                pos += 1;
            }
            StringState::Utf8 { left, lo, hi } => {
                let Some(&byte) = data.get(pos) else {
                    return TokenEnd::More;
                };
                if byte < lo || byte > hi {
                    return if byte == 0xFF {
                        TokenEnd::Sentinel(pos)
                    } else {
                        TokenEnd::Fail(JsonErrorKind::InvalidUtf8, pos)
                    };
                }
                *state = if left <= 1 {
                    StringState::Plain
                } else {
                    StringState::Utf8 {
                        left: left - 1,
                        lo: 0x80,
                        hi: 0xBF,
                    }
                };
                pos += 1;
            }
        }
    }
}

/// The number states after each state on each byte class of [`number_byte_class`]
/// (`None`: the number ends before the byte if it may end there and the byte is not a
/// digit, and is invalid otherwise). The same transitions as the host's `scan_number`;
/// a table is smaller in firmware than the match.
#[cfg(any(target_os = "none", test))]
const NUMBER_NEXT: [[Option<NumberState>; 7]; 9] = {
    use NumberState::*;
    const N: Option<NumberState> = None;
    [
        // `0`, `1`-`9`, `.`, `e`/`E`, `+`, `-`, other
        [Some(Zero), Some(Int), N, N, N, Some(Minus), N], // Start
        [Some(Zero), Some(Int), N, N, N, N, N],           // Minus
        [N, N, Some(Dot), Some(Exp), N, N, N],            // Zero
        [Some(Int), Some(Int), Some(Dot), Some(Exp), N, N, N], // Int
        [Some(Frac), Some(Frac), N, N, N, N, N],          // Dot
        [Some(Frac), Some(Frac), N, Some(Exp), N, N, N],  // Frac
        [
            Some(ExpDigits),
            Some(ExpDigits),
            N,
            N,
            Some(ExpSign),
            Some(ExpSign),
            N,
        ], // Exp
        [Some(ExpDigits), Some(ExpDigits), N, N, N, N, N], // ExpSign
        [Some(ExpDigits), Some(ExpDigits), N, N, N, N, N], // ExpDigits
    ]
};

/// The column of [`NUMBER_NEXT`] for `byte`.
#[cfg(any(target_os = "none", test))]
fn number_byte_class(byte: u8) -> usize {
    match byte {
        b'0' => 0,
        b'1'..=b'9' => 1,
        b'.' => 2,
        b'e' | b'E' => 3,
        b'+' => 4,
        b'-' => 5,
        _ => 6,
    }
}

/// Scans a number from `pos` through [`NUMBER_NEXT`]; the terminating byte is not
/// consumed. Firmware's `scan_number` (the same results as the host's, one byte per step).
#[cfg(any(target_os = "none", test))]
#[cfg_attr(target_os = "none", inline)]
fn scan_number_table(data: &[u8], mut pos: usize, state: &mut NumberState) -> TokenEnd {
    loop {
        let Some(&byte) = data.get(pos) else {
            return TokenEnd::More;
        };
        let next = NUMBER_NEXT
            .get(*state as usize)
            .and_then(|row| row.get(number_byte_class(byte)))
            .copied()
            .flatten();
        match next {
            Some(next) => *state = next,
            None if state.is_complete() && !byte.is_ascii_digit() => return TokenEnd::Done(pos),
            None => return TokenEnd::Fail(JsonErrorKind::InvalidNumber, pos),
        }
        pos += 1;
    }
}

#[cfg(target_os = "none")]
use scan_number_table as scan_number;

/// Scans a number from `pos`; the terminating byte is not consumed.
#[cfg(not(target_os = "none"))]
#[inline(always)]
fn scan_number(data: &[u8], mut pos: usize, state: &mut NumberState) -> TokenEnd {
    use NumberState::*;
    loop {
        let Some(&byte) = data.get(pos) else {
            return TokenEnd::More;
        };
        *state = match (*state, byte) {
            (Int | Frac | ExpDigits, b'0'..=b'9') => {
                pos += 1;
                while data.get(pos).is_some_and(u8::is_ascii_digit) {
                    pos += 1;
                }
                continue;
            }
            (Start, b'-') => Minus,
            (Start | Minus, b'0') => Zero,
            (Start | Minus, b'1'..=b'9') => Int,
            (Zero | Int, b'.') => Dot,
            (Zero | Int | Frac, b'e' | b'E') => Exp,
            (Dot, b'0'..=b'9') => Frac,
            (Exp, b'+' | b'-') => ExpSign,
            (Exp | ExpSign, b'0'..=b'9') => ExpDigits,
            (Zero | Int | Frac | ExpDigits, _) if !byte.is_ascii_digit() => {
                return TokenEnd::Done(pos)
            }
            _ => return TokenEnd::Fail(JsonErrorKind::InvalidNumber, pos),
        };
        pos += 1;
    }
}

/// Matches the rest of a literal from `pos`.
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline)]
fn scan_literal(data: &[u8], mut pos: usize, rest: &mut &'static [u8]) -> TokenEnd {
    loop {
        let Some((&want, tail)) = rest.split_first() else {
            return TokenEnd::Done(pos);
        };
        let Some(&byte) = data.get(pos) else {
            return TokenEnd::More;
        };
        if byte != want {
            return if byte == 0xFF {
                TokenEnd::Sentinel(pos)
            } else {
                TokenEnd::Fail(JsonErrorKind::InvalidLiteral, pos)
            };
        }
        *rest = tail;
        pos += 1;
    }
}

/// Validates that `bytes` hold exactly one value (whitespace around it allowed); returns
/// the value's start and end.
pub(crate) fn validate_one(bytes: &[u8], max_depth: usize) -> Result<(usize, usize), JsonError> {
    let error = |kind, at: usize| JsonError::new(kind, at as u64);
    let mut scanner = Scanner::validator(max_depth);
    match scanner.scan(bytes, 0) {
        Step::ValueEnd { end } => {
            let rest = skip_whitespace(bytes, end);
            if rest < bytes.len() {
                Err(error(JsonErrorKind::TrailingCharacters, rest))
            } else {
                Ok((scanner.value_start, end))
            }
        }
        Step::NeedMore if scanner.can_end_at_eof() => Ok((scanner.value_start, bytes.len())),
        Step::NeedMore if scanner.in_value() => Err(error(JsonErrorKind::Truncated, bytes.len())),
        Step::NeedMore => Err(error(JsonErrorKind::Empty, bytes.len())),
        Step::Error { kind, at } => Err(error(kind, at)),
        Step::Sentinel { at } => Err(error(JsonErrorKind::InvalidUtf8, at)),
    }
}

/// Whether `bytes` is a valid string body (the text between the quotes).
pub(crate) fn is_valid_string_body(bytes: &[u8]) -> bool {
    let mut scanner = Scanner::validator(0);
    // `matches!` rather than `==`: no comparison function in firmware images.
    matches!(scanner.scan(b"\"", 0), Step::NeedMore)
        && matches!(scanner.scan(bytes, 0), Step::NeedMore)
        && matches!(scanner.scan(b"\"", 0), Step::ValueEnd { end: 1 })
}

/// The compact scanner (firmware's) against the host's, step by step: the same steps,
/// value starts, ids and member spans on the captured vectors and on random input, at
/// many split points.
#[cfg(test)]
mod compact_tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use super::super::tests::{vector, vector_names, Rng};
    use super::*;

    /// What the caller can see of a scanner after one step.
    type Observed = (
        Step,
        usize,
        bool,
        bool,
        Option<u64>,
        Option<(Vec<MemberSpan>, usize)>,
    );

    fn run(stream: &[u8], splits: &[usize], max_depth: usize, compact: bool) -> Vec<Observed> {
        let mut scanner = Scanner::new(max_depth);
        let mut seen = Vec::new();
        let mut pos = 0;
        for &limit in splits.iter().chain(Some(&stream.len())) {
            let data = &stream[..limit.max(pos).min(stream.len())];
            loop {
                let step = if compact {
                    scanner.scan_compact(data, pos)
                } else {
                    scanner.scan(data, pos)
                };
                // After an error every caller resets the scanner: where it was in the
                // structure then is not compared (the host's scanner does not write it).
                let failed = matches!(step, Step::Error { .. });
                seen.push((
                    step,
                    scanner.value_start,
                    scanner.in_value() && !failed,
                    scanner.can_end_at_eof() && !failed,
                    scanner.found_id(),
                    scanner
                        .recorded_members()
                        .map(|(spans, resume)| (spans.to_vec(), resume)),
                ));
                match step {
                    Step::NeedMore => {
                        pos = data.len();
                        break;
                    }
                    Step::ValueEnd { end } => pos = end,
                    Step::Error { at, .. } => {
                        scanner.reset();
                        pos = at + 1;
                    }
                    Step::Sentinel { at } => pos = at + 1,
                }
            }
        }
        seen
    }

    fn check(stream: &[u8], splits: &[usize]) {
        for max_depth in [3, MAX_DEPTH_LIMIT] {
            let host = run(stream, splits, max_depth, false);
            let compact = run(stream, splits, max_depth, true);
            assert_eq!(
                host,
                compact,
                "{:?} split at {splits:?}, depth limit {max_depth}",
                std::string::String::from_utf8_lossy(stream)
            );
        }
    }

    #[test]
    fn compact_string_scanner_matches() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let pieces: [&[u8]; 16] = [
            b"a",
            b" ",
            b"\"",
            b"\\",
            b"u",
            b"0",
            b"F",
            b"g",
            b"n",
            b"\x01",
            b"\x7F",
            b"\xFF",
            b"\xC3\xA9",
            b"\xE0\xA0\x80",
            b"\xED\xA0",
            b"\xF4\x90\x80",
        ];
        let states = [
            StringState::Plain,
            StringState::Escape,
            StringState::Hex { left: 1 },
            StringState::Hex { left: 4 },
            StringState::Utf8 {
                left: 1,
                lo: 0x80,
                hi: 0xBF,
            },
            StringState::Utf8 {
                left: 2,
                lo: 0xA0,
                hi: 0xBF,
            },
        ];
        let rounds = if cfg!(miri) { 50 } else { 20_000 };
        for _ in 0..rounds {
            let mut data = vec![];
            for _ in 0..rng.below(24) {
                data.extend_from_slice(pieces[rng.below(pieces.len())]);
            }
            let from = rng.below(data.len() + 1);
            for initial in states {
                let (mut host, mut compact) = (initial, initial);
                let host_end = scan_string(&data, from, &mut host);
                let compact_end = scan_string_compact(&data, from, &mut compact);
                assert_eq!(
                    (host_end, host),
                    (compact_end, compact),
                    "{data:?} from {from} in {initial:?}"
                );
            }
        }
    }

    /// Firmware's table-driven number scanner and the host's agree on the end, the error
    /// and the state reached, from every state: on every single byte, and on every
    /// sequence of up to four bytes around the number alphabet (digits, their neighbours
    /// `/` and `:`, `.`, `e`, `E`, signs, terminators, the sentinel).
    #[test]
    #[cfg_attr(miri, ignore)]
    fn table_number_scanner_matches_the_host_one() {
        use NumberState::*;
        let states = [Start, Minus, Zero, Int, Dot, Frac, Exp, ExpSign, ExpDigits];
        let agree = |start: NumberState, data: &[u8]| {
            let (mut host, mut table) = (start, start);
            let host_end = scan_number(data, 0, &mut host);
            let table_end = scan_number_table(data, 0, &mut table);
            assert_eq!(
                (host_end, host),
                (table_end, table),
                "from {start:?} on {data:?}"
            );
        };
        let alphabet = b"019/:.eE+-x, }\xFF";
        for &start in &states {
            for byte in 0..=u8::MAX {
                agree(start, &[byte]);
            }
            let mut data = Vec::new();
            for len in 1..=4u32 {
                for mut index in 0..alphabet.len().pow(len) {
                    data.clear();
                    for _ in 0..len {
                        data.push(alphabet[index % alphabet.len()]);
                        index /= alphabet.len();
                    }
                    agree(start, &data);
                }
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn compact_scanner_matches_on_vectors() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for name in vector_names() {
            let stream = vector(&name);
            check(&stream, &[]);
            let step = (stream.len() / 40).max(1);
            for split in (0..=stream.len()).step_by(step) {
                check(&stream, &[split]);
            }
            for _ in 0..5 {
                let mut splits: Vec<usize> = (0..6).map(|_| rng.below(stream.len() + 1)).collect();
                splits.sort_unstable();
                check(&stream, &splits);
            }
        }
    }

    #[test]
    fn compact_scanner_matches_on_random_input() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let pieces: [&[u8]; 34] = [
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"",
            b":",
            b",",
            b" ",
            b"\n",
            b"\\",
            b"\\u00e9",
            b"\\u",
            b"\\n",
            b"0",
            b"7",
            b"-",
            b"+",
            b".",
            b"e",
            b"E",
            b"12",
            b"true",
            b"fals",
            b"null",
            b"\"id\":",
            b"\"\\u0069d\": ",
            b"18446744073709551616",
            b"\xFF",
            b"\xC3\xA9",
            b"\xE0\xA0\x80",
            b"\xED\xA0",
            b"\xF4\x90",
            b"\x01",
            b"{\"id\": 42, \"a\": [1, {}]}",
        ];
        let rounds = if cfg!(miri) { 4 } else { 5_000 };
        for _ in 0..rounds {
            let mut stream = vec![];
            for _ in 0..rng.below(24) {
                stream.extend_from_slice(pieces[rng.below(pieces.len())]);
            }
            check(&stream, &[]);
            let splits: Vec<usize> = if stream.len() < 40 {
                (0..=stream.len()).collect()
            } else {
                (0..8).map(|_| rng.below(stream.len() + 1)).collect()
            };
            for &split in &splits {
                check(&stream, &[split]);
            }
            let mut many = splits.clone();
            many.sort_unstable();
            check(&stream, &many);
        }
    }
}
