//! The scanner's one accelerator: finding the next byte of interest a machine word at a
//! time. It knows nothing of JSON and only returns positions (as httparse's SIMD does);
//! the scanner decides what the byte found means.
//!
//! A word ([`usize`]: 8 bytes on 64-bit hosts, 4 on 32-bit firmware) is loaded as a
//! little-endian integer, so the lowest set bit of a match mask belongs to the first
//! matching byte. The masks are exact for their lowest flagged byte (borrows can only
//! flag bytes above a true match), which is all a search uses.

type Word = usize;
const WORD_BYTES: usize = core::mem::size_of::<Word>();
/// `0x01` in every byte.
const ONES: Word = Word::MAX / 0xFF;
/// `0x80` in every byte.
const HIGHS: Word = ONES * 0x80;

/// High bit set in each byte of `word` below `n` (exact for the lowest one; `n <= 0x80`).
const fn below(word: Word, n: u8) -> Word {
    word.wrapping_sub(ONES * n as Word) & !word & HIGHS
}

/// High bit set in each byte of `word` equal to `byte` (exact for the lowest one).
const fn equal(word: Word, byte: u8) -> Word {
    below(word ^ (ONES * byte as Word), 1)
}

/// The index of the first byte at or after `pos` for which `hit` holds (`pos` itself if
/// there is none, once past the end), `word_hits` flagging the same bytes in a word.
#[inline]
fn find(bytes: &[u8], mut pos: usize, word_hits: fn(Word) -> Word, hit: fn(u8) -> bool) -> usize {
    while let Some(chunk) = bytes.get(pos..).and_then(<[u8]>::first_chunk) {
        let mask = word_hits(Word::from_le_bytes(*chunk));
        if mask != 0 {
            return pos + (mask.trailing_zeros() / 8) as usize;
        }
        pos += WORD_BYTES;
    }
    while let Some(&byte) = bytes.get(pos) {
        if hit(byte) {
            return pos;
        }
        pos += 1;
    }
    pos
}

/// The index of the first byte at or after `pos` that is not plain ASCII string content:
/// `"`, `\`, a control byte (below 0x20) or a byte at or above 0x80 (`bytes.len()` if
/// there is none).
#[inline]
pub(crate) fn skip_plain_string(bytes: &[u8], pos: usize) -> usize {
    find(
        bytes,
        pos,
        |word| equal(word, b'"') | equal(word, b'\\') | below(word, 0x20) | (word & HIGHS),
        |byte| matches!(byte, b'"' | b'\\' | 0..0x20 | 0x80..),
    )
}

/// The index of the first LF or 0xFF byte at or after `pos` (the end of a line, or a
/// guest-agent sentinel), or `bytes.len()` if there is none (`pos` if it is past the end).
#[inline]
pub(crate) fn find_line_break(bytes: &[u8], pos: usize) -> usize {
    find(
        bytes,
        pos,
        |word| equal(word, b'\n') | equal(word, 0xFF),
        |byte| matches!(byte, b'\n' | 0xFF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both searches return the first byte they look for, from every start, on inputs
    /// dense in those bytes and their neighbours (borrows across lanes included).
    #[test]
    fn searches_find_the_first_byte() {
        const ALPHABET: &[u8] = b"\"\\\n\x00\x01\x1F !#[]\x7F\x80\xC3\xFEa\xFF";
        let mut rng = crate::json::tests::Rng(0x2545_F491_4F6C_DD1D);
        let mut text = [0u8; 40];
        let rounds = if cfg!(miri) { 40 } else { 4_000 };
        for _ in 0..rounds {
            let len = rng.below(text.len() + 1);
            for byte in text.iter_mut() {
                let pick = rng.next() as usize;
                *byte = if pick.is_multiple_of(4) {
                    ALPHABET[(pick >> 8) % ALPHABET.len()]
                } else {
                    b'a' + (pick % 26) as u8
                };
            }
            let bytes = &text[..len];
            for pos in 0..=len + 2 {
                let first = |hit: fn(&u8) -> bool| {
                    bytes
                        .get(pos..)
                        .and_then(|rest| rest.iter().position(hit))
                        .map_or(pos.max(len), |at| pos + at)
                };
                let plain = first(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b));
                let line = first(|&b| b == b'\n' || b == 0xFF);
                assert_eq!(skip_plain_string(bytes, pos), plain, "{bytes:?} from {pos}");
                assert_eq!(find_line_break(bytes, pos), line, "{bytes:?} from {pos}");
            }
        }
    }
}
