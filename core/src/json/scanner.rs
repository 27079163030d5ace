//! Validation of JSON text (temporary slice validator; the streaming scanner replaces it).

use super::swar::{is_whitespace, skip_whitespace};
use super::{JsonError, JsonErrorKind};

fn error(kind: JsonErrorKind, offset: usize) -> JsonError {
    JsonError::new(kind, offset as u64)
}

/// Validates a string body starting at `pos` (just after the opening quote); returns the
/// index just after the closing quote.
fn string_end(bytes: &[u8], mut pos: usize) -> Result<usize, JsonError> {
    loop {
        let Some(&byte) = bytes.get(pos) else {
            return Err(error(JsonErrorKind::Truncated, pos));
        };
        match byte {
            b'"' => return Ok(pos + 1),
            b'\\' => match bytes.get(pos + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 2,
                Some(b'u') => {
                    for offset in 2..6 {
                        match bytes.get(pos + offset) {
                            Some(digit) if digit.is_ascii_hexdigit() => {}
                            Some(_) => return Err(error(JsonErrorKind::InvalidEscape, pos)),
                            None => return Err(error(JsonErrorKind::Truncated, pos)),
                        }
                    }
                    pos += 6;
                }
                Some(_) => return Err(error(JsonErrorKind::InvalidEscape, pos)),
                None => return Err(error(JsonErrorKind::Truncated, pos)),
            },
            0..=0x1F => return Err(error(JsonErrorKind::ControlInString { byte }, pos)),
            0x20..=0x7F => pos += 1,
            _ => {
                let rest = bytes.get(pos..).unwrap_or(&[]);
                let valid = match core::str::from_utf8(rest.get(..4.min(rest.len())).unwrap_or(&[]))
                {
                    Ok(_) => 4.min(rest.len()),
                    Err(e) => e.valid_up_to(),
                };
                if valid == 0 {
                    return Err(error(JsonErrorKind::InvalidUtf8, pos));
                }
                pos += 1;
            }
        }
    }
}

/// Whether `bytes` is a valid string body (the text between the quotes).
pub(crate) fn is_valid_string_body(bytes: &[u8]) -> bool {
    if core::str::from_utf8(bytes).is_err() {
        return false;
    }
    let mut pos = 0;
    while pos < bytes.len() {
        match bytes.get(pos) {
            Some(b'"') | Some(0..=0x1F) => return false,
            Some(b'\\') => match bytes.get(pos + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 2,
                Some(b'u') => {
                    if !bytes
                        .get(pos + 2..pos + 6)
                        .is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit))
                    {
                        return false;
                    }
                    pos += 6;
                }
                _ => return false,
            },
            _ => pos += 1,
        }
    }
    true
}

/// Validates that `bytes` hold exactly one value (whitespace around it allowed); returns
/// the value's start and end.
pub(crate) fn validate_one(bytes: &[u8], max_depth: usize) -> Result<(usize, usize), JsonError> {
    if core::str::from_utf8(bytes).is_err() {
        let at = core::str::from_utf8(bytes)
            .err()
            .map_or(0, |e| e.valid_up_to());
        return Err(error(JsonErrorKind::InvalidUtf8, at));
    }
    let start = skip_whitespace(bytes, 0);
    if start == bytes.len() {
        return Err(error(JsonErrorKind::Empty, start));
    }
    let mut stack = [false; super::MAX_DEPTH_LIMIT];
    let mut depth = 0usize;
    let mut pos = start;
    'value: loop {
        pos = skip_whitespace(bytes, pos);
        let Some(&byte) = bytes.get(pos) else {
            return Err(error(JsonErrorKind::Truncated, pos));
        };
        match byte {
            b'{' | b'[' => {
                if depth >= max_depth.min(super::MAX_DEPTH_LIMIT) {
                    return Err(error(JsonErrorKind::TooDeep { limit: max_depth }, pos));
                }
                let is_object = byte == b'{';
                if let Some(slot) = stack.get_mut(depth) {
                    *slot = is_object;
                }
                depth += 1;
                pos = skip_whitespace(bytes, pos + 1);
                let close = if is_object { b'}' } else { b']' };
                if bytes.get(pos) == Some(&close) {
                    depth -= 1;
                    pos += 1;
                } else if is_object {
                    pos = object_key(bytes, pos)?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            b'"' => pos = string_end(bytes, pos + 1)?,
            b't' | b'f' | b'n' => {
                let literal: &[u8] = match byte {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if bytes.get(pos..pos + literal.len()) != Some(literal) {
                    return Err(error(JsonErrorKind::InvalidLiteral, pos));
                }
                pos += literal.len();
            }
            b'-' | b'0'..=b'9' => pos = number_end(bytes, pos)?,
            _ => return Err(error(JsonErrorKind::UnexpectedByte { byte }, pos)),
        }
        // After a value: close containers or continue with the next element/member.
        loop {
            if depth == 0 {
                let end = pos;
                let rest = skip_whitespace(bytes, pos);
                return match bytes.get(rest) {
                    None => Ok((start, end)),
                    Some(_) => Err(error(JsonErrorKind::TrailingCharacters, rest)),
                };
            }
            pos = skip_whitespace(bytes, pos);
            let is_object = stack.get(depth - 1).copied().unwrap_or(false);
            match bytes.get(pos) {
                None => return Err(error(JsonErrorKind::Truncated, pos)),
                Some(b',') => {
                    pos += 1;
                    if is_object {
                        pos = object_key(bytes, skip_whitespace(bytes, pos))?;
                    }
                    continue 'value;
                }
                Some(b'}') if is_object => {
                    depth -= 1;
                    pos += 1;
                }
                Some(b']') if !is_object => {
                    depth -= 1;
                    pos += 1;
                }
                Some(&byte) => return Err(error(JsonErrorKind::UnexpectedByte { byte }, pos)),
            }
        }
    }
}

/// Validates `"key" :` at `pos`; returns the index after the colon.
fn object_key(bytes: &[u8], pos: usize) -> Result<usize, JsonError> {
    match bytes.get(pos) {
        Some(b'"') => {}
        Some(&byte) => return Err(error(JsonErrorKind::UnexpectedByte { byte }, pos)),
        None => return Err(error(JsonErrorKind::Truncated, pos)),
    }
    let after = skip_whitespace(bytes, string_end(bytes, pos + 1)?);
    match bytes.get(after) {
        Some(b':') => Ok(after + 1),
        Some(&byte) => Err(error(JsonErrorKind::UnexpectedByte { byte }, after)),
        None => Err(error(JsonErrorKind::Truncated, after)),
    }
}

/// Validates a number at `pos`; returns the index after it.
fn number_end(bytes: &[u8], mut pos: usize) -> Result<usize, JsonError> {
    let start = pos;
    let digits = |bytes: &[u8], mut pos: usize| -> usize {
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        pos
    };
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match bytes.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => pos = digits(bytes, pos),
        _ => return Err(error(JsonErrorKind::InvalidNumber, start)),
    }
    if bytes.get(pos) == Some(&b'.') {
        let after = digits(bytes, pos + 1);
        if after == pos + 1 {
            return Err(error(JsonErrorKind::InvalidNumber, start));
        }
        pos = after;
    }
    if matches!(bytes.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        if matches!(bytes.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        let after = digits(bytes, pos);
        if after == pos {
            return Err(error(JsonErrorKind::InvalidNumber, start));
        }
        pos = after;
    }
    match bytes.get(pos) {
        Some(&byte) if !is_whitespace(byte) && !matches!(byte, b',' | b']' | b'}') => {
            Err(error(JsonErrorKind::InvalidNumber, start))
        }
        _ => Ok(pos),
    }
}
