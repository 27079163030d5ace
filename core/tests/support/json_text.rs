//! A tiny, independent JSON text walker for building test inputs: splitting captured server
//! streams into messages and rewriting the `id` member of replies and requests while keeping
//! every other byte as captured. Deliberately not the crate's own scanner, so a bug there
//! cannot hide in the inputs.

/// The byte ranges of one top-level member of an object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemberSpan {
    /// Index of the key's opening quote.
    pub(crate) key_start: usize,
    /// The key's text between the quotes, as raw bytes.
    pub(crate) key: (usize, usize),
    /// Start of the value.
    pub(crate) value_start: usize,
    /// One past the end of the value.
    pub(crate) value_end: usize,
}

fn is_ws(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while i < text.len() && is_ws(text[i]) {
        i += 1;
    }
    i
}

/// `text[i]` is an opening quote; returns the index after the closing one.
fn string_end(text: &[u8], i: usize) -> usize {
    let quote = text[i];
    let mut j = i + 1;
    while j < text.len() {
        match text[j] {
            b'\\' => j += 2,
            byte if byte == quote => return j + 1,
            _ => j += 1,
        }
    }
    panic!("unterminated string at {i}");
}

/// Returns the index one past the value starting at `i`.
pub(crate) fn value_end(text: &[u8], i: usize) -> usize {
    match text[i] {
        b'"' | b'\'' => string_end(text, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < text.len() {
                match text[j] {
                    b'"' | b'\'' => {
                        j = string_end(text, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            panic!("unterminated container at {i}");
        }
        _ => {
            let mut j = i;
            while j < text.len() && !matches!(text[j], b',' | b'}' | b']') && !is_ws(text[j]) {
                j += 1;
            }
            j
        }
    }
}

/// The members of the object that starts at `open` (a `{`), and the index of its `}`.
pub(crate) fn members(text: &[u8], open: usize) -> (Vec<MemberSpan>, usize) {
    assert_eq!(text[open], b'{', "not an object at {open}");
    let mut spans = Vec::new();
    let mut i = skip_ws(text, open + 1);
    if text[i] == b'}' {
        return (spans, i);
    }
    loop {
        let key_start = i;
        let key_end = string_end(text, i);
        i = skip_ws(text, key_end);
        assert_eq!(text[i], b':', "missing colon at {i}");
        let value_start = skip_ws(text, i + 1);
        let value_end = value_end(text, value_start);
        spans.push(MemberSpan {
            key_start,
            key: (key_start + 1, key_end - 1),
            value_start,
            value_end,
        });
        i = skip_ws(text, value_end);
        match text[i] {
            b',' => i = skip_ws(text, i + 1),
            b'}' => return (spans, i),
            other => panic!("unexpected byte {other:#x} at {i}"),
        }
    }
}

/// The first `{` of `text` (after whitespace and 0xFF bytes).
pub(crate) fn object_start(text: &[u8]) -> usize {
    text.iter()
        .position(|&b| b == b'{')
        .expect("no object in text")
}

/// The value of top-level member `key` of the object in `text`, as bytes.
pub(crate) fn member<'t>(text: &'t [u8], key: &str) -> Option<&'t [u8]> {
    let (spans, _) = members(text, object_start(text));
    spans
        .iter()
        .find(|s| &text[s.key.0..s.key.1] == key.as_bytes())
        .map(|s| &text[s.value_start..s.value_end])
}

/// How an inserted `id` member is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// QEMU's output: `", "` and `": "` separators; `id` first in errors, last otherwise.
    Server,
    /// A compact request: `,"id":N` at the end.
    Request,
}

/// `text` (one object, possibly with surrounding bytes) with its top-level `id` set to
/// `id` (`None`: removed). Every other byte is kept.
pub(crate) fn with_id(text: &[u8], id: Option<u64>, style: Style) -> Vec<u8> {
    let open = object_start(text);
    let (spans, close) = members(text, open);
    let existing = spans.iter().position(|s| &text[s.key.0..s.key.1] == b"id");
    let mut out = Vec::with_capacity(text.len() + 16);
    match (existing, id) {
        (Some(index), Some(id)) => {
            let span = spans[index];
            out.extend_from_slice(&text[..span.value_start]);
            out.extend_from_slice(id.to_string().as_bytes());
            out.extend_from_slice(&text[span.value_end..]);
        }
        (Some(index), None) => {
            let span = spans[index];
            let (cut_start, cut_end) = if index + 1 < spans.len() {
                // Remove up to the next key.
                (span.key_start, spans[index + 1].key_start)
            } else if index > 0 {
                // Last member: remove from the end of the previous value.
                (spans[index - 1].value_end, span.value_end)
            } else {
                (span.key_start, span.value_end)
            };
            out.extend_from_slice(&text[..cut_start]);
            out.extend_from_slice(&text[cut_end..]);
        }
        (None, Some(id)) => {
            let is_error = spans.iter().any(|s| &text[s.key.0..s.key.1] == b"error");
            match style {
                Style::Server if is_error && !spans.is_empty() => {
                    out.extend_from_slice(&text[..=open]);
                    out.extend_from_slice(format!("\"id\": {id}, ").as_bytes());
                    out.extend_from_slice(&text[open + 1..]);
                }
                Style::Server => {
                    out.extend_from_slice(&text[..close]);
                    out.extend_from_slice(format!(", \"id\": {id}").as_bytes());
                    out.extend_from_slice(&text[close..]);
                }
                Style::Request => {
                    out.extend_from_slice(&text[..close]);
                    out.extend_from_slice(format!(",\"id\":{id}").as_bytes());
                    out.extend_from_slice(&text[close..]);
                }
            }
        }
        (None, None) => out.extend_from_slice(text),
    }
    out
}

/// Splits a captured server stream into messages. Each piece holds any 0xFF bytes and
/// whitespace before its value, the value, and the line end after it, so concatenating the
/// pieces gives the stream back.
pub(crate) fn split_messages(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < stream.len() {
        match stream[i] {
            b if is_ws(b) || b == 0xFF => i += 1,
            b'{' | b'[' => {
                let mut end = value_end(stream, i);
                // The line end (CRLF or LF) belongs to this message.
                while end < stream.len() && matches!(stream[end], b'\r' | b' ') {
                    end += 1;
                }
                if end < stream.len() && stream[end] == b'\n' {
                    end += 1;
                }
                pieces.push(stream[start..end].to_vec());
                start = end;
                i = end;
            }
            other => panic!("unexpected top-level byte {other:#x} at {i}"),
        }
    }
    if start < stream.len() {
        match pieces.last_mut() {
            Some(last) => last.extend_from_slice(&stream[start..]),
            None => pieces.push(stream[start..].to_vec()),
        }
    }
    pieces
}

/// Splits client bytes into lines, each with its `\n`.
pub(crate) fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Removes whitespace outside strings: QEMU's compact and pretty output of the same value
/// become the same text.
pub(crate) fn minify(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !is_ws(b) {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
