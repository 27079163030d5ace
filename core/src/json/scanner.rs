//! The resumable, validating JSON scanner behind [`Framer`](super::Framer) and
//! [`RawJson::parse`](super::RawJson::parse): the crate's one implementation of the JSON
//! grammar, the same on every target (firmware, hosts, the fuzzers and Miri run this code).
//!
//! [`Scanner::scan`] consumes bytes from a position in a slice until a top-level value ends,
//! the input is invalid, a 0xFF sentinel byte appears, or the slice runs out. All state
//! lives in the scanner, so the next slice may continue anywhere, even inside a token.
//!
//! [`Scanner::scan`] follows the structure by code position: a key and its colon, a value,
//! or what follows a value (`,` or a close), each knowing which comes next; [`Expect`]
//! records where it stopped when a slice runs out, to come back in there.
//! Strings, numbers and literals are scanned by small state machines of their own
//! ([`Token`]), from where they start or, after a slice ran out inside one, from where it
//! stopped. The only shortcut is [`skip_plain_string`], which finds the next byte inside a
//! string that is not plain ASCII; it knows nothing of the grammar.
//!
//! While it scans, the scanner also records the spans of the first members of a top-level
//! object (for [`Frame::members`](super::Frame::members)) and reads its `id` member.

use super::raw::{parse_u64_digits, MemberSpan};
use super::swar::skip_plain_string;
use super::{JsonError, JsonErrorKind, JsonStr, MAX_DEPTH_LIMIT};

/// How many depth-1 members of an object the scanner records for `Frame::members`.
pub(crate) const RECORDED_MEMBERS: usize = 16;

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

/// Returns the step in `$step` if there is one.
macro_rules! return_if_some {
    ($step:expr) => {
        if let Some(step) = $step {
            return step;
        }
    };
}

/// The value in `$result`, or returns its error.
macro_rules! return_if_err {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(step) => return step,
        }
    };
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

/// A token being scanned, and how far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    None,
    String {
        key: bool,
        state: StringState,
    },
    Number(NumberState),
    /// `true`, `false` or `null` (by its first byte), `matched` bytes of it so far.
    Literal {
        first: u8,
        matched: u8,
    },
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
    /// `lo..=hi` (Unicode table 3-7).
    Utf8 {
        left: u8,
        lo: u8,
        hi: u8,
    },
}

/// Progress inside a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberState {
    /// Before the first byte.
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

/// What a token scanner below returns: `Ok(end)` when the token ends just before `end`,
/// `Err((at, state))` when it cannot go on at `at` in `state`: the slice ran out
/// (`at == data.len()`), or `data[at]` is invalid there (see `Scanner::bad_token`). The
/// state is passed by value, so a token that ends in the slice never stores it.
type Scanned<S> = Result<usize, (usize, S)>;

/// Scans string content from `pos` (after the opening quote, or where a slice ran out).
/// Plain ASCII up to the closing quote is found here; anything else (escapes, UTF-8, the
/// end of the slice) in [`scan_string_rest`].
#[inline(always)] // called from one place, `Scanner::token`
fn scan_string(data: &[u8], pos: usize, state: StringState) -> Scanned<StringState> {
    if state == StringState::Plain {
        let pos = skip_plain_string(data, pos);
        if data.get(pos) == Some(&b'"') {
            return Ok(pos + 1);
        }
        return scan_string_rest(data, pos, state);
    }
    scan_string_rest(data, pos, state)
}

/// [`scan_string`] from a byte that is not plain ASCII string content, or from inside an
/// escape or a UTF-8 sequence.
#[inline(never)]
fn scan_string_rest(data: &[u8], mut pos: usize, mut state: StringState) -> Scanned<StringState> {
    use StringState::*;
    loop {
        if state == Plain {
            pos = skip_plain_string(data, pos);
            if data.get(pos) == Some(&b'"') {
                return Ok(pos + 1);
            }
        }
        let Some(&byte) = data.get(pos) else {
            return Err((pos, state));
        };
        state = match (state, byte) {
            (Plain, b'"') => return Ok(pos + 1),
            (Plain, b'\\') => Escape,
            (Plain, 0x20..0x80) => Plain,
            (Plain, 0xC2..=0xDF) => Utf8 {
                left: 1,
                lo: 0x80,
                hi: 0xBF,
            },
            (Plain, 0xE0) => Utf8 {
                left: 2,
                lo: 0xA0,
                hi: 0xBF,
            },
            (Plain, 0xE1..=0xEC | 0xEE..=0xEF) => Utf8 {
                left: 2,
                lo: 0x80,
                hi: 0xBF,
            },
            (Plain, 0xED) => Utf8 {
                left: 2,
                lo: 0x80,
                hi: 0x9F,
            },
            (Plain, 0xF0) => Utf8 {
                left: 3,
                lo: 0x90,
                hi: 0xBF,
            },
            (Plain, 0xF1..=0xF3) => Utf8 {
                left: 3,
                lo: 0x80,
                hi: 0xBF,
            },
            (Plain, 0xF4) => Utf8 {
                left: 3,
                lo: 0x80,
                hi: 0x8F,
            },
            (Escape, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Plain,
            (Escape, b'u') => Hex { left: 4 },
            (Hex { left }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => match left {
                1 => Plain,
                _ => Hex { left: left - 1 },
            },
            (Utf8 { left, lo, hi }, _) if lo <= byte && byte <= hi => match left {
                1 => Plain,
                _ => Utf8 {
                    left: left - 1,
                    lo: 0x80,
                    hi: 0xBF,
                },
            },
            _ => return Err((pos, state)),
        };
        pos += 1;
    }
}

/// Scans a number from `pos` (its first byte, or where a slice ran out); the byte after
/// it is not consumed.
fn scan_number(data: &[u8], mut pos: usize, mut state: NumberState) -> Scanned<NumberState> {
    use NumberState::*;
    while let Some(&byte) = data.get(pos) {
        state = match (state, byte) {
            (Start, b'-') => Minus,
            (Start | Minus, b'0') => Zero,
            (Start | Minus | Int, b'0'..=b'9') => Int,
            (Zero | Int, b'.') => Dot,
            (Dot | Frac, b'0'..=b'9') => Frac,
            (Zero | Int | Frac, b'e' | b'E') => Exp,
            (Exp, b'+' | b'-') => ExpSign,
            (Exp | ExpSign | ExpDigits, b'0'..=b'9') => ExpDigits,
            (state, _) if state.is_complete() && !byte.is_ascii_digit() => return Ok(pos),
            _ => return Err((pos, state)),
        };
        pos += 1;
    }
    Err((pos, state))
}

/// The literal starting with `first` (`t`, `f` or `n`).
const fn literal(first: u8) -> &'static [u8] {
    match first {
        b't' => b"true",
        b'f' => b"false",
        _ => b"null",
    }
}

/// Matches the rest of a literal from `pos`, `matched` bytes of it matched so far.
fn scan_literal(data: &[u8], mut pos: usize, first: u8, mut matched: u8) -> Scanned<u8> {
    while let Some(&want) = literal(first).get(usize::from(matched)) {
        if data.get(pos) != Some(&want) {
            return Err((pos, matched));
        }
        matched += 1;
        pos += 1;
    }
    Ok(pos)
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

    /// Forgets the previous value's ids. The capture bytes need no clearing: only
    /// `capture[..len]` is ever read.
    fn reset(&mut self) {
        self.state = IdState::Idle;
        self.len = 0;
        self.overflow = false;
        self.found = None;
        self.conflict = false;
        self.repeated = false;
    }

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
    /// Where to come back in: written only when a scan stops between tokens (while
    /// `token` is not `Token::None`, the token is finished first and decides).
    expect: Expect,
    /// The token a slice ran out in (`Token::None` between tokens).
    token: Token,
    depth: usize,
    /// Bit `d` set: the container at depth `d + 1` is an object.
    containers: [u32; MAX_DEPTH_LIMIT / 32],
    /// Whether the innermost open container is an object (its bit in `containers`, read
    /// once per open and close rather than on every comma).
    in_object: bool,
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
            in_object: false,
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
        self.in_object = false;
        self.recording = false;
        self.spans_valid = false;
    }

    /// Whether a value has started and not ended.
    pub(crate) fn in_value(&self) -> bool {
        self.expect != Expect::TopValue || !matches!(self.token, Token::None)
    }

    /// Whether the scanner is inside a container (also right after an error).
    pub(crate) fn in_container(&self) -> bool {
        self.depth > 0
    }

    /// At end of input: whether the interrupted token is a complete top-level number.
    pub(crate) fn can_end_at_eof(&self) -> bool {
        self.depth == 0 && matches!(self.token, Token::Number(state) if state.is_complete())
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

    /// Whether the current (or just ended) top-level object has more than one `id`
    /// member at depth 1 so far.
    pub(crate) fn id_repeated(&self) -> bool {
        self.id.repeated
    }

    /// The member spans of the value that just ended, and where the walker resumes after
    /// them (`usize::MAX` when they are all the members). `None` if no spans apply.
    pub(crate) fn recorded_members(&self) -> Option<(&[MemberSpan], usize)> {
        if !self.spans_valid {
            return None;
        }
        let spans = self.spans.get(..self.span_count).unwrap_or(&[]);
        let resume = match spans.last() {
            Some(last) if self.span_count == RECORDED_MEMBERS => last.value_end as usize,
            _ => usize::MAX,
        };
        Some((spans, resume))
    }

    /// Scans `data` from `pos`. See [`Step`].
    ///
    /// The structure is followed by code position: each turn of the loop reads a key and
    /// its colon, a value, or what follows a value (`,` or a close), and knows which
    /// comes next; `self.expect` records where to come back in when a slice runs out.
    pub(crate) fn scan(&mut self, data: &[u8], mut pos: usize) -> Step {
        if !matches!(self.token, Token::None) {
            let token = self.token;
            self.token = Token::None;
            return_if_some!(self.token(data, &mut pos, token));
            // Only a scan that stops between tokens writes `self.expect`.
            self.expect = match token {
                Token::String { key: true, .. } => Expect::Colon,
                _ => Expect::CommaOrClose,
            };
        }
        // Where the previous slice stopped.
        let mut key_next = false;
        let mut after_value = false;
        let mut close_allowed = false;
        match self.expect {
            Expect::TopValue | Expect::Value => {}
            Expect::ValueOrClose => close_allowed = true,
            Expect::CommaOrClose => after_value = true,
            Expect::Colon => pos = return_if_err!(self.colon(data, pos)),
            Expect::Key => key_next = true,
            Expect::KeyOrClose => match next_byte(data, &mut pos) {
                None => return Step::NeedMore,
                Some(b'}') => {
                    return_if_some!(self.close(pos));
                    pos += 1;
                    after_value = true;
                }
                Some(_) => key_next = true,
            },
        }
        loop {
            if key_next {
                // A key, then its colon.
                key_next = false;
                let Some(byte) = next_byte(data, &mut pos) else {
                    self.expect = Expect::Key;
                    return Step::NeedMore;
                };
                if byte != b'"' {
                    return self.bad_byte(byte, pos);
                }
                if self.depth == 1 {
                    self.member_key_start(pos);
                }
                pos += 1;
                let key = Token::String {
                    key: true,
                    state: StringState::Plain,
                };
                return_if_some!(self.token(data, &mut pos, key));
                // QEMU writes the colon right after the key.
                pos = match data.get(pos) {
                    Some(b':') => pos + 1,
                    _ => return_if_err!(self.colon(data, pos)),
                };
            } else if after_value {
                // After a value inside a container: `,` or the container's close.
                after_value = false;
                close_allowed = false;
                let Some(byte) = next_byte(data, &mut pos) else {
                    self.expect = Expect::CommaOrClose;
                    return Step::NeedMore;
                };
                if byte == b',' {
                    pos += 1;
                    key_next = self.in_object;
                } else if byte == if self.in_object { b'}' } else { b']' } {
                    return_if_some!(self.close(pos));
                    pos += 1;
                    after_value = true;
                } else {
                    return self.bad_byte(byte, pos);
                }
                continue;
            }
            // A value (or `]` right after `[`).
            let Some(byte) = next_byte(data, &mut pos) else {
                self.expect = if self.depth == 0 {
                    Expect::TopValue
                } else if close_allowed {
                    Expect::ValueOrClose
                } else {
                    Expect::Value
                };
                return Step::NeedMore;
            };
            after_value = true;
            if byte == b']' && close_allowed {
                return_if_some!(self.close(pos));
                pos += 1;
                continue;
            }
            close_allowed = false;
            if self.depth < 2 {
                if self.depth == 0 {
                    self.begin_top(pos, byte);
                } else {
                    self.member_value_start(pos, byte);
                }
            }
            // Strings first: most values are. Each kind of token is scanned from a call
            // of its own, so that the inlined token step knows which it is.
            if byte == b'"' {
                pos += 1;
                let string = Token::String {
                    key: false,
                    state: StringState::Plain,
                };
                return_if_some!(self.token(data, &mut pos, string));
            } else if byte == b'{' {
                return_if_some!(self.open(true, pos));
                pos += 1;
                match next_byte(data, &mut pos) {
                    None => return Step::NeedMore,
                    Some(b'}') => {
                        return_if_some!(self.close(pos));
                        pos += 1;
                    }
                    Some(_) => {
                        after_value = false;
                        key_next = true;
                    }
                }
            } else if byte == b'[' {
                return_if_some!(self.open(false, pos));
                pos += 1;
                after_value = false;
                close_allowed = true;
            } else if matches!(byte, b'-' | b'0'..=b'9') {
                // Scanned from this byte, which the id capture needs too.
                let number = Token::Number(NumberState::Start);
                return_if_some!(self.token(data, &mut pos, number));
            } else if matches!(byte, b't' | b'f' | b'n') {
                pos += 1;
                let literal = Token::Literal {
                    first: byte,
                    matched: 1,
                };
                return_if_some!(self.token(data, &mut pos, literal));
            } else {
                return self.bad_byte(byte, pos);
            }
        }
    }

    /// The colon after a key, from `pos`. Returns the position after it.
    fn colon(&mut self, data: &[u8], mut pos: usize) -> Result<usize, Step> {
        match next_byte(data, &mut pos) {
            Some(b':') => Ok(pos + 1),
            Some(byte) => Err(self.bad_byte(byte, pos)),
            None => {
                self.expect = Expect::Colon;
                Err(Step::NeedMore)
            }
        }
    }

    /// Opens a container at `pos`, unless that exceeds the depth limit.
    fn open(&mut self, is_object: bool, pos: usize) -> Option<Step> {
        if self.depth >= self.max_depth {
            let limit = self.max_depth;
            return Some(Step::Error {
                kind: JsonErrorKind::TooDeep { limit },
                at: pos,
            });
        }
        let bit = 1 << (self.depth % 32);
        let word = &mut self.containers[(self.depth / 32) % 8];
        if is_object {
            *word |= bit;
            self.expect = Expect::KeyOrClose;
        } else {
            *word &= !bit;
            self.expect = Expect::ValueOrClose;
        }
        self.depth += 1;
        self.in_object = is_object;
        None
    }

    /// Closes the current container (its close is at `pos`). `Some`: the top-level value
    /// ended.
    fn close(&mut self, pos: usize) -> Option<Step> {
        self.depth = self.depth.saturating_sub(1);
        let level = self.depth.wrapping_sub(1);
        self.in_object = self.containers[(level / 32) % 8] & (1 << (level % 32)) != 0;
        self.value_done(pos + 1)
    }

    /// Scans `token` from `*pos`, feeding the id tracker, and moves `*pos` past it.
    /// `None`: the structure continues; `Some`: the step to return (a top-level value
    /// ended, the token is invalid, or the slice ran out inside it and it is kept).
    // The one target-dependent line: hosts inline the token step into its three callers
    // (without it a framing pass takes a third more instructions), firmware keeps one copy
    // of it (1.3 KB less flash). The code, and so the grammar, is the same everywhere.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn token(&mut self, data: &[u8], pos: &mut usize, token: Token) -> Option<Step> {
        let from = *pos;
        let stopped = match token {
            Token::None => return None,
            Token::String { key, state } => match scan_string(data, from, state) {
                Ok(after) => return self.token_ended(data, pos, after, key),
                Err((at, state)) => (at, Token::String { key, state }),
            },
            Token::Number(state) => match scan_number(data, from, state) {
                Ok(after) => return self.token_ended(data, pos, after, false),
                Err((at, state)) => (at, Token::Number(state)),
            },
            Token::Literal { first, matched } => match scan_literal(data, from, first, matched) {
                Ok(after) => return self.token_ended(data, pos, after, false),
                Err((at, matched)) => (at, Token::Literal { first, matched }),
            },
        };
        Some(self.token_stopped(data, from, stopped))
    }

    /// The token that started at `*pos` ended just before `after` (a key if `key`).
    #[inline(always)]
    fn token_ended(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        after: usize,
        key: bool,
    ) -> Option<Step> {
        let from = core::mem::replace(pos, after);
        if self.depth != 1 {
            return if key { None } else { self.value_done(after) };
        }
        // A member's key or value. The id tracker only ever captures one of these (a
        // depth-1 key, or the number after an `id` key), so deeper tokens skip it.
        if self.id.capturing() {
            // Not the closing quote of a key.
            let stop = if key { after - 1 } else { after };
            self.id.append(data.get(from..stop).unwrap_or(&[]));
        }
        if key {
            self.member_key_end(after);
            None
        } else {
            self.value_done(after)
        }
    }

    /// The token that started at `from` cannot go on at `at` in the state of `token`:
    /// the slice ran out (the token is kept for the next one), or the byte is invalid.
    #[cold]
    fn token_stopped(&mut self, data: &[u8], from: usize, (at, token): (usize, Token)) -> Step {
        if self.id.capturing() {
            self.id.append(data.get(from..).unwrap_or(&[]));
        }
        match data.get(at) {
            None => {
                self.token = token;
                Step::NeedMore
            }
            Some(&byte) => self.bad_token(token, byte, at),
        }
    }

    /// `byte` at `at` cannot go on `token`: the sentinel (except inside a number), or the
    /// error it is.
    #[cold]
    fn bad_token(&mut self, token: Token, byte: u8, at: usize) -> Step {
        let kind = match token {
            Token::Number(_) => JsonErrorKind::InvalidNumber,
            _ if byte == 0xFF => {
                self.reset();
                return Step::Sentinel { at };
            }
            Token::Literal { .. } => JsonErrorKind::InvalidLiteral,
            Token::String {
                state: StringState::Escape | StringState::Hex { .. },
                ..
            } => JsonErrorKind::InvalidEscape,
            Token::String {
                state: StringState::Plain,
                ..
            } if byte < 0x20 => JsonErrorKind::ControlInString { byte },
            _ => JsonErrorKind::InvalidUtf8,
        };
        self.token = Token::None;
        Step::Error { kind, at }
    }

    /// A value ended just before `end`: `Some(Step::ValueEnd)` if it was the top-level
    /// one (and then expects the next top-level value).
    #[inline]
    fn value_done(&mut self, end: usize) -> Option<Step> {
        if self.depth >= 2 {
            return None;
        }
        if self.depth == 0 {
            self.expect = Expect::TopValue;
            return Some(Step::ValueEnd { end });
        }
        self.member_value_end(end);
        None
    }

    /// A byte that does not fit: the sentinel, or an error.
    #[cold]
    fn bad_byte(&mut self, byte: u8, at: usize) -> Step {
        if byte == 0xFF {
            self.reset();
            Step::Sentinel { at }
        } else {
            Step::Error {
                kind: JsonErrorKind::UnexpectedByte { byte },
                at,
            }
        }
    }

    /// A top-level value starts at `pos` with `first`.
    fn begin_top(&mut self, pos: usize, first: u8) {
        self.value_start = pos;
        self.recording = self.record_enabled && first == b'{';
        self.spans_valid = self.recording;
        self.span_count = 0;
        self.id.reset();
    }

    /// Records `pos` (relative to the value's start) in `field` of the member span being
    /// recorded, if any; stops recording if the offset does not fit in `u32`.
    fn record(&mut self, pos: usize, field: fn(&mut MemberSpan) -> &mut u32) {
        if !self.recording {
            return;
        }
        match u32::try_from(pos.wrapping_sub(self.value_start)) {
            Ok(offset) => {
                if let Some(span) = self.spans.get_mut(self.span_count) {
                    *field(span) = offset;
                }
            }
            Err(_) => self.stop_recording(),
        }
    }

    /// A key starts at depth 1 (`pos` is its opening quote).
    fn member_key_start(&mut self, pos: usize) {
        self.record(pos + 1, |span| &mut span.key_start);
        self.id.key_start();
    }

    /// A key at depth 1 ends just before `end` (its closing quote is at `end - 1`).
    fn member_key_end(&mut self, end: usize) {
        self.record(end - 1, |span| &mut span.key_end);
        self.id.key_end();
    }

    /// A value at depth 1 starts at `pos` with `first`.
    fn member_value_start(&mut self, pos: usize, first: u8) {
        self.record(pos, |span| &mut span.value_start);
        self.id.value_start(first);
    }

    /// A value at depth 1 ends just before `end`.
    fn member_value_end(&mut self, end: usize) {
        self.record(end, |span| &mut span.value_end);
        if self.recording {
            self.span_count += 1;
            self.recording = self.span_count < RECORDED_MEMBERS;
        }
        self.id.value_end();
    }
}

/// The index of the first byte at or after `pos` that is not whitespace (or `data.len()`).
#[inline]
pub(crate) fn skip_whitespace(data: &[u8], mut pos: usize) -> usize {
    next_byte(data, &mut pos);
    pos
}

/// Moves `*pos` past whitespace and returns the byte there (`None`, with `*pos` at the
/// end, when the slice runs out first).
#[inline]
fn next_byte(data: &[u8], pos: &mut usize) -> Option<u8> {
    loop {
        let byte = *data.get(*pos)?;
        if !is_whitespace(byte) {
            return Some(byte);
        }
        *pos += 1;
    }
}

/// Whether `byte` is JSON whitespace.
pub(crate) const fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Validates that `bytes` hold exactly one value (whitespace around it allowed); returns
/// the value's start and end.
pub(crate) fn validate_one(bytes: &[u8], max_depth: usize) -> Result<(usize, usize), JsonError> {
    let error = |kind, at: usize| JsonError::new(kind, at as u64);
    let mut scanner = Scanner::validator(max_depth);
    match scanner.scan(bytes, 0) {
        Step::ValueEnd { end } => match bytes
            .get(end..)
            .and_then(|rest| rest.iter().position(|&byte| !is_whitespace(byte)))
        {
            Some(rest) => Err(error(JsonErrorKind::TrailingCharacters, end + rest)),
            None => Ok((scanner.value_start, end)),
        },
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
    matches!(scanner.scan(b"\"", 0), Step::NeedMore)
        && matches!(scanner.scan(bytes, 0), Step::NeedMore)
        && matches!(scanner.scan(b"\"", 0), Step::ValueEnd { end: 1 })
}
