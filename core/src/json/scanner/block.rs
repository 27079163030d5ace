//! The block-at-a-time fast path of the scanner (hosts only; firmware keeps the scalar
//! scanner alone, for size).
//!
//! Inside containers nested at depth 2 or more nothing is recorded (member spans and the
//! `id` only concern depth 1), so there the scanner hands whole 64-byte blocks to
//! [`Scanner::scan_blocks`]. Each block is classified into bitmasks by loops the compiler
//! vectorises (quotes, non-whitespace, and, only when the block holds any, backslashes,
//! control and non-ASCII bytes); a prefix XOR of the quote mask, carried from block to
//! block, marks the bytes inside strings. The tokens (structure, opening quotes, the
//! first byte of numbers and literals) are then walked by their bits, following the same
//! grammar as the scalar scanner, with the same depth and container bits.
//!
//! The fast path never reports anything itself: whatever it does not handle (a backslash,
//! a byte >= 0x80 or a control byte in a string, an invalid or unexpected token, a close
//! back to depth 1, the depth limit, a token cut by the end of the whole blocks) makes it
//! stop before the token concerned, with `expect` and `depth` exactly as the scalar
//! scanner would have left them there. The scalar scanner then continues from that point
//! and reports any error at the same position, with the same kind, as without the fast
//! path.

use super::{
    literal_rest, number_after_first, scan_literal, scan_number, Expect, Scanner, TokenEnd,
};

/// Bytes per block.
pub(super) const BLOCK: usize = 64;

/// Transposes the 8 x 8 bit matrix in `x` (byte `r` = row `r`, bit `c` = column `c`).
#[inline(always)]
const fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^= t ^ (t << 28);
    x
}

/// Bit `i` set for each byte `i` of the block for which `test` holds.
///
/// Byte `8k + j` sets bit `k` of byte `j` of a folded word (a byte compare, a mask and an
/// OR of the block's eight 8-byte rows: vector instructions), which a bit-matrix
/// transpose then puts in place.
#[inline(always)]
fn mask_of(block: &[u8; BLOCK], test: impl Fn(u8) -> bool) -> u64 {
    // Plain loops rather than `array::from_fn`, which is not always inlined (then nothing
    // is vectorised).
    let mut weighted = [0u8; BLOCK];
    for (i, (slot, &byte)) in weighted.iter_mut().zip(block).enumerate() {
        *slot = (test(byte) as u8) << (i / 8);
    }
    let mut folded = 0u64;
    for row in weighted.chunks_exact(8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(row);
        folded |= u64::from_le_bytes(bytes);
    }
    transpose8(folded)
}

/// A block's bytes by class, one bit per byte.
struct Classes {
    /// `"`.
    quotes: u64,
    /// Not whitespace.
    solid: u64,
    /// Whether any byte [`is_special`].
    any_special: bool,
}

/// Classifies a block (inlined: the loops stay vectorised, and the classes stay in
/// registers rather than going through a returned struct in memory). `solid` is exact
/// only when no byte [`is_special`] (then the only whitespace is the space); otherwise
/// [`other_whitespace`] completes it.
#[inline(always)]
fn classify(block: &[u8; BLOCK]) -> Classes {
    Classes {
        quotes: mask_of(block, |byte| byte == b'"'),
        solid: mask_of(block, |byte| byte != b' '),
        any_special: block
            .iter()
            .fold(false, |any, &byte| any | is_special(byte)),
    }
}

/// The tabs, line feeds and carriage returns of a block.
#[inline(never)]
fn other_whitespace(block: &[u8; BLOCK]) -> u64 {
    mask_of(block, |byte| byte == b'\t')
        | mask_of(block, |byte| byte == b'\n')
        | mask_of(block, |byte| byte == b'\r')
}

/// The bytes of a block that are [`is_special`].
#[inline(never)]
fn special_mask(block: &[u8; BLOCK]) -> u64 {
    mask_of(block, is_special)
}

/// Bytes that need the scalar scanner inside a string: `\`, control bytes and bytes of
/// multi-byte UTF-8 (outside strings they are invalid or whitespace).
#[inline(always)]
const fn is_special(byte: u8) -> bool {
    (byte == b'\\') | (byte < 0x20) | (byte >= 0x80)
}

/// Each bit set from the first set bit of `quotes` to the next (excluded), and so on:
/// the prefix XOR.
#[inline(always)]
const fn prefix_xor(mut bits: u64) -> u64 {
    bits ^= bits << 1;
    bits ^= bits << 2;
    bits ^= bits << 4;
    bits ^= bits << 8;
    bits ^= bits << 16;
    bits ^= bits << 32;
    bits
}

/// Bits at and above `offset` (none when `offset >= 64`).
#[inline(always)]
const fn from_bit(offset: usize) -> u64 {
    if offset >= 64 {
        0
    } else {
        u64::MAX << offset
    }
}

/// The fast path's structural states, as row offsets into [`TRANSITIONS`] (a row of 256
/// entries per state): what comes next, and in which kind of container.
mod state {
    /// After `{`: a key or `}`.
    pub(super) const OBJECT_KEY_OR_CLOSE: usize = 0;
    /// After `,` in an object: a key.
    pub(super) const OBJECT_KEY: usize = 1 << 8;
    /// After a key: `:`.
    pub(super) const OBJECT_COLON: usize = 2 << 8;
    /// After `:`: a value.
    pub(super) const OBJECT_VALUE: usize = 3 << 8;
    /// After a member's value: `,` or `}`.
    pub(super) const OBJECT_AFTER: usize = 4 << 8;
    /// After `[`: a value or `]`.
    pub(super) const ARRAY_VALUE_OR_CLOSE: usize = 5 << 8;
    /// After `,` in an array: a value.
    pub(super) const ARRAY_VALUE: usize = 6 << 8;
    /// After an element: `,` or `]`.
    pub(super) const ARRAY_AFTER: usize = 7 << 8;
    /// The states' offsets all lie below this.
    pub(super) const STATES: usize = 8 << 8;
}

/// A [`TRANSITIONS`] entry: the next state (a string, `:` or `,`), or one of these kinds
/// (at and above [`state::STATES`]) with the state that follows in the low bits.
mod entry {
    use super::state::STATES;
    /// `{` or `[` where a value may start (the low bits: the state inside it).
    pub(super) const OPEN: usize = STATES;
    /// `}` or `]` closing the current container (the next state depends on the parent).
    pub(super) const CLOSE: usize = 2 * STATES;
    /// The first byte of a number or literal where a value may start (the low bits: the
    /// state after it).
    pub(super) const SCALAR: usize = 3 * STATES;
    /// Anything else: the scalar scanner takes over before this token.
    pub(super) const STOP: usize = 4 * STATES;
    /// The state in an entry's low bits.
    pub(super) const STATE_BITS: usize = STATES - 1;
}

/// The table entry for a token byte in a state (see [`entry`]).
const fn transition(state: usize, byte: u8) -> usize {
    use entry::*;
    use state::*;
    let value_allowed = matches!(state, OBJECT_VALUE | ARRAY_VALUE_OR_CLOSE | ARRAY_VALUE);
    let after_value = if state == OBJECT_VALUE {
        OBJECT_AFTER
    } else {
        ARRAY_AFTER
    };
    match (state, byte) {
        (OBJECT_KEY_OR_CLOSE | OBJECT_KEY, b'"') => OBJECT_COLON,
        (OBJECT_COLON, b':') => OBJECT_VALUE,
        (OBJECT_AFTER, b',') => OBJECT_KEY,
        (ARRAY_AFTER, b',') => ARRAY_VALUE,
        (OBJECT_KEY_OR_CLOSE | OBJECT_AFTER, b'}') | (ARRAY_VALUE_OR_CLOSE | ARRAY_AFTER, b']') => {
            CLOSE
        }
        (_, b'"') if value_allowed => after_value,
        (_, b'{') if value_allowed => OPEN | OBJECT_KEY_OR_CLOSE,
        (_, b'[') if value_allowed => OPEN | ARRAY_VALUE_OR_CLOSE,
        (_, b'-' | b'0'..=b'9' | b't' | b'f' | b'n') if value_allowed => SCALAR | after_value,
        _ => STOP,
    }
}

/// Entry `state + byte`: what a token byte does in a state, so that a plain token costs
/// one load. 256 entries past the last state's row: a state below [`state::STATES`] plus
/// any byte is an index in bounds, which the compiler sees without a mask.
static TRANSITIONS: [u16; state::STATES + 256] = {
    let mut table = [entry::STOP as u16; state::STATES + 256];
    let mut state = 0;
    while state < state::STATES {
        let mut byte = 0;
        while byte < 256 {
            table[state + byte] = transition(state, byte as u8) as u16;
            byte += 1;
        }
        state += 256;
    }
    table
};

/// The scalar scanner's expectation in a fast-path state.
const fn expect_of(state: usize) -> Expect {
    match state {
        state::OBJECT_KEY_OR_CLOSE => Expect::KeyOrClose,
        state::OBJECT_KEY => Expect::Key,
        state::OBJECT_COLON => Expect::Colon,
        state::OBJECT_VALUE | state::ARRAY_VALUE => Expect::Value,
        state::ARRAY_VALUE_OR_CLOSE => Expect::ValueOrClose,
        _ => Expect::CommaOrClose,
    }
}

/// The state before a string token, from the state after it (the scalar scanner rescans
/// a string the fast path stopped in from its opening quote; `Key` and `KeyOrClose`, or
/// `Value` and `ValueOrClose`, read a `"` alike).
const fn state_before_string(after: usize) -> usize {
    match after {
        state::OBJECT_COLON => state::OBJECT_KEY,
        state::OBJECT_AFTER => state::OBJECT_VALUE,
        _ => state::ARRAY_VALUE,
    }
}

impl Scanner {
    /// Scans whole blocks of `data` from `pos`, where the structure expects
    /// `self.expect` at depth 2 or more. Returns where the scalar scanner continues, with
    /// `self.expect` and `self.depth` set for that position, and the position before which
    /// the scalar scanner should not call the fast path again (past whatever stopped it).
    pub(super) fn scan_blocks(&mut self, data: &[u8], pos: usize) -> (usize, usize) {
        use state::*;
        let mut depth = self.depth;
        let in_object = self.in_object_at(depth);
        let mut state = match self.expect {
            Expect::KeyOrClose => OBJECT_KEY_OR_CLOSE,
            Expect::Key => OBJECT_KEY,
            Expect::Colon => OBJECT_COLON,
            Expect::Value | Expect::TopValue if in_object => OBJECT_VALUE,
            Expect::Value | Expect::TopValue => ARRAY_VALUE,
            Expect::ValueOrClose => ARRAY_VALUE_OR_CLOSE,
            Expect::CommaOrClose if in_object => OBJECT_AFTER,
            Expect::CommaOrClose => ARRAY_AFTER,
        };
        let mut block_start = pos;
        // Bits below this position are consumed (the inside of a number or literal that
        // crossed into the block).
        let mut consumed = pos;
        // All ones when the block starts inside a string.
        let mut carry = 0u64;
        // The opening quote of the string the block starts in, when it does.
        let mut string_start = pos;
        while let Some(block) = data
            .get(block_start..)
            .and_then(|rest| rest.first_chunk::<BLOCK>())
        {
            let Classes {
                quotes,
                mut solid,
                any_special,
            } = classify(block);
            let in_string = prefix_xor(quotes) ^ carry;
            let stop = if any_special {
                solid &= !other_whitespace(block);
                // A special byte inside a string, or one outside that is not whitespace;
                // everything from the first one is left to the scalar scanner.
                let bad = special_mask(block) & (solid | in_string);
                if bad == 0 {
                    BLOCK
                } else {
                    bad.trailing_zeros() as usize
                }
            } else {
                BLOCK
            };
            let openings = quotes & in_string;
            let mut tokens = ((solid & !in_string & !quotes) | openings)
                & !from_bit(stop)
                & from_bit(consumed.saturating_sub(block_start));
            while tokens != 0 {
                let offset = tokens.trailing_zeros() as usize;
                tokens &= tokens - 1;
                let byte = block[offset & (BLOCK - 1)];
                let entry = TRANSITIONS[state + byte as usize] as usize;
                if entry < STATES {
                    state = entry;
                    continue;
                }
                let at = block_start + offset;
                state = match entry & !entry::STATE_BITS {
                    entry::OPEN => {
                        if depth >= self.max_depth {
                            return self.stop_blocks(at, state, depth);
                        }
                        let bit = 1u32 << (depth & 31);
                        let word = &mut self.containers[(depth >> 5) & 7];
                        if byte == b'{' {
                            *word |= bit;
                        } else {
                            *word &= !bit;
                        }
                        depth += 1;
                        entry & entry::STATE_BITS
                    }
                    entry::CLOSE if depth > 2 => {
                        depth -= 1;
                        if self.in_object_at(depth) {
                            OBJECT_AFTER
                        } else {
                            ARRAY_AFTER
                        }
                    }
                    entry::SCALAR => {
                        let ended = if byte >= b'a' {
                            let mut rest = literal_rest(byte);
                            scan_literal(data, at + 1, &mut rest)
                        } else {
                            let mut number = number_after_first(byte);
                            scan_number(data, at + 1, &mut number)
                        };
                        let TokenEnd::Done(end) = ended else {
                            return self.stop_blocks(at, state, depth);
                        };
                        consumed = end;
                        tokens &= from_bit(end - block_start);
                        entry & entry::STATE_BITS
                    }
                    _ => return self.stop_blocks(at, state, depth),
                };
            }
            if stop < BLOCK {
                let at = block_start + stop;
                return if in_string & (1 << stop) != 0 {
                    // Inside the last string opened: the scalar scanner rescans it.
                    let before = openings & !from_bit(stop + 1);
                    let opening = if before == 0 {
                        string_start
                    } else {
                        block_start + 63 - before.leading_zeros() as usize
                    };
                    let (resume, _) = self.stop_blocks(opening, state_before_string(state), depth);
                    (resume, at + 1)
                } else {
                    self.stop_blocks(at, state, depth)
                };
            }
            carry = ((in_string as i64) >> 63) as u64;
            if openings != 0 {
                string_start = block_start + 63 - openings.leading_zeros() as usize;
            }
            block_start += BLOCK;
        }
        // Out of whole blocks.
        let (resume, _) = if carry != 0 {
            self.stop_blocks(string_start, state_before_string(state), depth)
        } else {
            self.stop_blocks(consumed.max(block_start), state, depth)
        };
        (resume, data.len())
    }

    /// Hands back to the scalar scanner at `at`, in `state`.
    #[inline(always)]
    fn stop_blocks(&mut self, at: usize, state: usize, depth: usize) -> (usize, usize) {
        self.expect = expect_of(state);
        self.depth = depth;
        (at, at + 1)
    }

    /// Whether the container at `depth` (at least 1) is an object.
    #[inline(always)]
    fn in_object_at(&self, depth: usize) -> bool {
        let level = depth.wrapping_sub(1);
        self.containers[(level >> 5) & 7] & (1 << (level & 31)) != 0
    }
}
