//! Word-at-a-time (SWAR) byte searches and the skipping primitives of the walker.
//!
//! All searches load a machine word ([`Word`]: 8 bytes on 64-bit targets, 4 on 32-bit
//! firmware, where 64-bit arithmetic would be emulated) as a little-endian integer, so the
//! lowest set bit of a match mask belongs to the first matching byte. The masks below are exact for their lowest
//! set byte (false positives can only appear above a true one, through borrows), which is
//! all the searches use.

/// The word the searches work on.
pub(crate) type Word = usize;
/// Bytes in a [`Word`].
pub(crate) const WORD_BYTES: usize = core::mem::size_of::<Word>();
/// `0x01` in every byte.
pub(crate) const ONES: Word = Word::MAX / 0xFF;
/// `0x80` in every byte.
pub(crate) const HIGHS: Word = ONES * 0x80;

/// Loads the [`WORD_BYTES`] bytes at `pos`, if there are that many.
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline)]
pub(crate) fn load(bytes: &[u8], pos: usize) -> Option<Word> {
    bytes
        .get(pos..)
        .and_then(|rest| rest.first_chunk::<WORD_BYTES>())
        .map(|chunk| Word::from_le_bytes(*chunk))
}

/// High bit set in each byte of `word` that is zero (exact for the lowest one).
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline)]
pub(crate) const fn zero_bytes(word: Word) -> Word {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// High bit set in each byte of `word` equal to `byte` (exact for the lowest one).
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline)]
pub(crate) const fn eq_bytes(word: Word, byte: u8) -> Word {
    zero_bytes(word ^ (ONES * byte as Word))
}

/// Index of the first byte flagged in a non-zero mask.
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline)]
pub(crate) const fn first_flagged(mask: Word) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// Whether `byte` is JSON whitespace.
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline)]
pub(crate) const fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// The index of the first non-whitespace byte at or after `pos` (or `bytes.len()`).
#[inline]
pub(crate) fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(&byte) = bytes.get(pos) {
        if !is_whitespace(byte) {
            return pos;
        }
        pos += 1;
    }
    pos
}

/// In validated text, `pos` just after an opening quote: the index just after the closing
/// quote (or `bytes.len()` if there is none).
#[inline]
pub(crate) fn skip_string_body(bytes: &[u8], pos: usize) -> usize {
    skip_string_body_in::<WORD_AT_A_TIME>(bytes, pos)
}

/// Whether the skipping functions look at a machine word per step (hosts) or one byte
/// per step (firmware, where the word loop costs flash and the messages are short). Both
/// find the same positions (`tests::byte_and_word_skips_agree`; the framer's line search
/// too).
pub(crate) const WORD_AT_A_TIME: bool = !cfg!(target_os = "none");

#[inline]
fn skip_string_body_in<const WORDS: bool>(bytes: &[u8], mut pos: usize) -> usize {
    loop {
        while let Some(word) = if WORDS { load(bytes, pos) } else { None } {
            let mask = eq_bytes(word, b'"') | eq_bytes(word, b'\\');
            if mask != 0 {
                pos += first_flagged(mask);
                break;
            }
            pos += WORD_BYTES;
        }
        match bytes.get(pos) {
            None => return bytes.len(),
            Some(b'"') => return pos + 1,
            Some(b'\\') => pos += 2,
            Some(_) => pos += 1,
        }
    }
}

/// The index of the first LF or 0xFF byte at or after `pos` (the end of a line, or a
/// guest-agent sentinel), or `bytes.len()` if there is none (`pos` if it is past the end).
#[inline]
pub(crate) fn find_line_break(bytes: &[u8], pos: usize) -> usize {
    find_line_break_in::<WORD_AT_A_TIME>(bytes, pos)
}

#[inline]
fn find_line_break_in<const WORDS: bool>(bytes: &[u8], mut pos: usize) -> usize {
    loop {
        while let Some(word) = if WORDS { load(bytes, pos) } else { None } {
            let mask = eq_bytes(word, b'\n') | eq_bytes(word, 0xFF);
            if mask != 0 {
                pos += first_flagged(mask);
                break;
            }
            pos += WORD_BYTES;
        }
        match bytes.get(pos) {
            None | Some(b'\n' | 0xFF) => return pos,
            Some(_) => pos += 1,
        }
    }
}

/// Flags `"`, and the bracket candidates `[ ] { }` (plus `Y _ y DEL`, which share their
/// masked bit pattern and are filtered by the caller).
#[cfg_attr(not(target_os = "none"), inline(always))]
#[cfg_attr(target_os = "none", inline)]
const fn structural_mask(word: Word) -> Word {
    eq_bytes(word, b'"') | eq_bytes(word & (ONES * 0xD9), 0x59)
}

/// In validated text, `pos` at a `{` or `[`: the index just after the matching close.
#[inline]
pub(crate) fn skip_container(bytes: &[u8], pos: usize) -> usize {
    skip_container_in::<WORD_AT_A_TIME>(bytes, pos)
}

#[inline]
fn skip_container_in<const WORDS: bool>(bytes: &[u8], mut pos: usize) -> usize {
    let mut depth: usize = 0;
    loop {
        while let Some(word) = if WORDS { load(bytes, pos) } else { None } {
            let mask = structural_mask(word);
            if mask != 0 {
                pos += first_flagged(mask);
                break;
            }
            pos += WORD_BYTES;
        }
        match bytes.get(pos) {
            None => return bytes.len(),
            Some(b'"') => pos = skip_string_body_in::<WORDS>(bytes, pos + 1),
            Some(b'{' | b'[') => {
                depth += 1;
                pos += 1;
            }
            Some(b'}' | b']') => {
                pos += 1;
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return pos;
                }
            }
            Some(_) => pos += 1,
        }
    }
}

/// In validated text, `pos` at the first byte of a value: the index just after it.
#[inline]
pub(crate) fn skip_value(bytes: &[u8], pos: usize) -> usize {
    match bytes.get(pos) {
        None => pos,
        Some(b'"') => skip_string_body(bytes, pos + 1),
        Some(b'{' | b'[') => skip_container(bytes, pos),
        Some(_) => {
            let mut end = pos + 1;
            while let Some(&byte) = bytes.get(end) {
                if matches!(byte, b',' | b']' | b'}') || is_whitespace(byte) {
                    break;
                }
                end += 1;
            }
            end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_find_first_byte() {
        let word = u64::from_le_bytes(*b"ab\"d\\f\x01\x80") as Word;
        assert_eq!(first_flagged(eq_bytes(word, b'"')), 2);
        assert_eq!(first_flagged(eq_bytes(word, b'\\')), 4);
        assert_eq!(
            first_flagged(word.wrapping_sub(ONES * 0x20) & !word & HIGHS),
            6
        );
        assert_eq!(first_flagged(word & HIGHS), 7);
        assert_eq!(eq_bytes(word, b'z'), 0);
        // A zero byte followed by 0x01: the borrow may flag the 0x01 too, never earlier.
        let word = u64::from_le_bytes([b'x', 0, 1, b'x', b'x', b'x', b'x', b'x']) as Word;
        assert_eq!(first_flagged(zero_bytes(word)), 1);
    }

    /// The byte-per-step variants (firmware) find the same positions as the word-per-step
    /// ones (hosts), from every start, on inputs dense in the bytes they look for.
    #[test]
    fn byte_and_word_skips_agree() {
        const ALPHABET: &[u8] = b"\"\\{}[]\nYy\x7F\xFFa ,:0";
        let mut rng = crate::json::tests::Rng(0x2545_F491_4F6C_DD1D);
        let fixed: [&[u8]; 4] = [
            br#"{"a\"}": [1, {"b": "]"}], "c": tru}"#,
            b"line one\nline two\xFFrest",
            br#""abc\\"x"#,
            b"",
        ];
        let mut text = [0u8; 40];
        let rounds = if cfg!(miri) { 40 } else { 4_000 };
        for round in 0..rounds {
            let len = rng.below(40);
            for byte in text.iter_mut() {
                let pick = rng.next() as usize;
                *byte = if pick.is_multiple_of(3) {
                    ALPHABET[(pick >> 8) % ALPHABET.len()]
                } else {
                    b'a' + (pick % 26) as u8
                };
            }
            let bytes: &[u8] = if round < fixed.len() {
                fixed[round]
            } else {
                &text[..len]
            };
            for pos in 0..=bytes.len() + 2 {
                assert_eq!(
                    skip_string_body_in::<false>(bytes, pos),
                    skip_string_body_in::<true>(bytes, pos),
                    "string {bytes:?} from {pos}"
                );
                assert_eq!(
                    skip_container_in::<false>(bytes, pos),
                    skip_container_in::<true>(bytes, pos),
                    "container {bytes:?} from {pos}"
                );
                assert_eq!(
                    find_line_break_in::<false>(bytes, pos),
                    find_line_break_in::<true>(bytes, pos),
                    "line break {bytes:?} from {pos}"
                );
            }
        }
    }

    #[test]
    fn skips() {
        let text = br#"{"a\"}": [1, {"b": "]"}], "c": tru}"#;
        assert_eq!(skip_container(text, 0), text.len());
        assert_eq!(skip_string_body(br#""abc\\"x"#, 1), 7);
        assert_eq!(skip_value(b"123,", 0), 3);
        assert_eq!(skip_value(b"[[YyDEL_]]x", 0), 10);
        assert_eq!(skip_value(br#""unterminated"#, 0), 13);
    }
}
