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

use super::{scan_literal, scan_number, Expect, NumberState, Scanner, TokenEnd};

/// Bytes per block.
pub(super) const BLOCK: usize = 64;

/// The lowest set bit of each byte of a word of 0/1 bytes, gathered into one byte (bit
/// `k` from byte `k`).
const GATHER: u64 = 0x0102_0408_1020_4080;

/// One bit per byte of a block (bit `i` for byte `i`) from 0/1 flags.
#[inline(always)]
fn gather(flags: &[u8; BLOCK]) -> u64 {
    let mut mask = 0u64;
    for word in 0..BLOCK / 8 {
        let bytes = u64::from_le_bytes(core::array::from_fn(|i| flags[8 * word + i]));
        mask |= (bytes.wrapping_mul(GATHER) >> 56) << (8 * word);
    }
    mask
}

/// Bit `i` set for each byte `i` for which `test` holds.
#[inline(always)]
fn mask_of(block: &[u8; BLOCK], test: impl Fn(u8) -> bool) -> u64 {
    let flags: [u8; BLOCK] = core::array::from_fn(|i| test(block[i]) as u8);
    gather(&flags)
}

/// Bytes that need the scalar scanner inside a string: `\`, control bytes and bytes of
/// multi-byte UTF-8 (outside strings they are invalid or whitespace).
#[inline(always)]
const fn is_special(byte: u8) -> bool {
    byte == b'\\' || byte < 0x20 || byte >= 0x80
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

impl Scanner {
    /// Scans whole blocks of `data` from `pos`, where the structure expects
    /// `self.expect` (a value, a value or `]`, or `,` or a close) at depth 2 or more.
    /// Returns where the scalar scanner continues, with `self.expect` and `self.depth`
    /// set for that position, and the position before which the scalar scanner should not
    /// call the fast path again (past whatever stopped it).
    pub(super) fn scan_blocks(&mut self, data: &[u8], pos: usize) -> (usize, usize) {
        let mut expect = self.expect;
        let mut depth = self.depth;
        let mut block_start = pos;
        // Bits below this position are consumed (the inside of a number or literal that
        // crossed into the block).
        let mut consumed = pos;
        // All ones when the block starts inside a string.
        let mut carry = 0u64;
        // The last string opened: where, and what was expected before it (the scalar
        // scanner rescans it if its end is not seen).
        let mut string_at = pos;
        let mut string_expect = expect;
        while let Some(block) = data
            .get(block_start..)
            .and_then(|rest| rest.first_chunk::<BLOCK>())
        {
            let quotes = mask_of(block, |byte| byte == b'"');
            let solid = mask_of(block, |byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
            let in_string = prefix_xor(quotes) ^ carry;
            let any_special = block
                .iter()
                .fold(false, |any, &byte| any | is_special(byte));
            let stop = if any_special {
                // A special byte inside a string, or one outside that is not whitespace;
                // everything from the first one is left to the scalar scanner.
                let bad = mask_of(block, is_special) & (solid | in_string);
                if bad == 0 {
                    BLOCK
                } else {
                    bad.trailing_zeros() as usize
                }
            } else {
                BLOCK
            };
            let mut tokens = ((solid & !in_string & !quotes) | (quotes & in_string))
                & !from_bit(stop)
                & from_bit(consumed.saturating_sub(block_start));
            while tokens != 0 {
                let offset = tokens.trailing_zeros() as usize;
                tokens &= tokens - 1;
                let at = block_start + offset;
                let byte = block[offset & (BLOCK - 1)];
                let next = match (expect, byte) {
                    (Expect::Value | Expect::ValueOrClose, b'"') => {
                        string_at = at;
                        string_expect = expect;
                        Expect::CommaOrClose
                    }
                    (Expect::KeyOrClose | Expect::Key, b'"') => {
                        string_at = at;
                        string_expect = expect;
                        Expect::Colon
                    }
                    (Expect::Colon, b':') => Expect::Value,
                    (Expect::CommaOrClose, b',') => {
                        if self.in_object_at(depth) {
                            Expect::Key
                        } else {
                            Expect::Value
                        }
                    }
                    (Expect::Value | Expect::ValueOrClose, b'{' | b'[') => {
                        if depth >= self.max_depth {
                            return self.stop_blocks(at, expect, depth);
                        }
                        let is_object = byte == b'{';
                        let bit = 1u32 << (depth & 31);
                        let word = &mut self.containers[(depth >> 5) & 7];
                        if is_object {
                            *word |= bit;
                        } else {
                            *word &= !bit;
                        }
                        depth += 1;
                        if is_object {
                            Expect::KeyOrClose
                        } else {
                            Expect::ValueOrClose
                        }
                    }
                    (Expect::CommaOrClose | Expect::KeyOrClose, b'}')
                        if depth > 2 && self.in_object_at(depth) =>
                    {
                        depth -= 1;
                        Expect::CommaOrClose
                    }
                    (Expect::CommaOrClose | Expect::ValueOrClose, b']')
                        if depth > 2 && !self.in_object_at(depth) =>
                    {
                        depth -= 1;
                        Expect::CommaOrClose
                    }
                    (Expect::Value | Expect::ValueOrClose, b'-' | b'0'..=b'9') => {
                        let mut state = match byte {
                            b'-' => NumberState::Minus,
                            b'0' => NumberState::Zero,
                            _ => NumberState::Int,
                        };
                        match scan_number(data, at + 1, &mut state) {
                            TokenEnd::Done(end) => {
                                consumed = end;
                                tokens &= from_bit(end - block_start);
                                Expect::CommaOrClose
                            }
                            _ => return self.stop_blocks(at, expect, depth),
                        }
                    }
                    (Expect::Value | Expect::ValueOrClose, b't' | b'f' | b'n') => {
                        let mut rest: &'static [u8] = match byte {
                            b't' => b"rue",
                            b'f' => b"alse",
                            _ => b"ull",
                        };
                        match scan_literal(data, at + 1, &mut rest) {
                            TokenEnd::Done(end) => {
                                consumed = end;
                                tokens &= from_bit(end - block_start);
                                Expect::CommaOrClose
                            }
                            _ => return self.stop_blocks(at, expect, depth),
                        }
                    }
                    _ => return self.stop_blocks(at, expect, depth),
                };
                expect = next;
            }
            if stop < BLOCK {
                let at = block_start + stop;
                return if in_string & (1 << stop) != 0 {
                    // Inside the last string opened: the scalar scanner rescans it.
                    let (resume, _) = self.stop_blocks(string_at, string_expect, depth);
                    (resume, at + 1)
                } else {
                    self.stop_blocks(at, expect, depth)
                };
            }
            carry = ((in_string as i64) >> 63) as u64;
            block_start += BLOCK;
        }
        // Out of whole blocks.
        if carry != 0 {
            let (resume, _) = self.stop_blocks(string_at, string_expect, depth);
            (resume, data.len())
        } else {
            let (resume, _) = self.stop_blocks(consumed.max(block_start), expect, depth);
            (resume, data.len())
        }
    }

    /// Hands back to the scalar scanner at `at`.
    #[inline(always)]
    fn stop_blocks(&mut self, at: usize, expect: Expect, depth: usize) -> (usize, usize) {
        self.expect = expect;
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
