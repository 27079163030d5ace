//! The scanner's block-at-a-time fast path (hosts only) against its scalar path.
//!
//! The fast path only runs when at least 64 bytes are in the slice being scanned, so a
//! framer fed one byte at a time never takes it: its items are the reference. Seeded
//! random documents, mostly deep (the fast path works from depth 2), with long strings,
//! numbers and literals crossing block edges, then mutated with the bytes that make the
//! fast path stop (backslashes, control and non-ASCII bytes, 0xFF, stray structure), are
//! framed whole, in random pieces and one byte at a time, with roomy and small buffers
//! and several depth limits, and must give the same items.
//!
//! Not under Miri, which never takes the fast path (see `Scanner::scan`).
#![cfg(not(miri))]

use qmp_core::json::{Framer, Item, RawJson};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Whitespace between tokens: mostly QEMU's single space or none, sometimes a run.
fn whitespace(rng: &mut Rng, out: &mut Vec<u8>) {
    match rng.below(10) {
        0..=4 => {}
        5..=7 => out.push(b' '),
        8 => out.extend_from_slice(b"\r\n    "),
        _ => {
            for _ in 0..rng.below(70) {
                out.push(b"  \t\n\r"[rng.below(5)]);
            }
        }
    }
}

fn string(rng: &mut Rng, out: &mut Vec<u8>) {
    out.push(b'"');
    let len = match rng.below(10) {
        0..=6 => rng.below(12),
        7 | 8 => rng.below(80),
        _ => rng.below(300),
    };
    for _ in 0..len {
        match rng.below(60) {
            0 => out.extend_from_slice(b"\\\""),
            1 => out.extend_from_slice(b"\\\\"),
            2 => out.extend_from_slice(b"\\u00e9"),
            3 => out.extend_from_slice("é".as_bytes()),
            4 => out.extend_from_slice("€".as_bytes()),
            _ => out.push(b"abcdefghijklmnopqrstuvwxyz-_:,{}[] 0123456789"[rng.below(45)]),
        }
    }
    out.push(b'"');
}

fn number(rng: &mut Rng, out: &mut Vec<u8>) {
    let text = match rng.below(8) {
        0 => "0".to_string(),
        1 => format!("-{}", rng.next() % 1000),
        2 => format!("{}.{}", rng.next() % 100_000, rng.next() % 1000),
        3 => format!("{}e{}", rng.next() % 100, rng.below(30)),
        4 => format!(
            "-{}.{}E-{}",
            rng.below(10),
            rng.next() % 1_000_000,
            rng.below(9)
        ),
        _ => format!("{}", rng.next() >> rng.below(64)),
    };
    out.extend_from_slice(text.as_bytes());
}

fn value(rng: &mut Rng, out: &mut Vec<u8>, depth: usize) {
    let deep = depth < 8;
    match rng.below(if deep { 10 } else { 6 }) {
        0 | 1 => string(rng, out),
        2 => number(rng, out),
        3 => out.extend_from_slice([&b"true"[..], b"false", b"null"][rng.below(3)]),
        4 | 5 if !deep => string(rng, out),
        4..=6 => {
            out.push(b'[');
            let n = rng.below(if depth < 3 { 12 } else { 5 });
            for i in 0..n {
                if i > 0 {
                    whitespace(rng, out);
                    out.push(b',');
                }
                whitespace(rng, out);
                value(rng, out, depth + 1);
            }
            whitespace(rng, out);
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            let n = rng.below(if depth < 3 { 10 } else { 5 });
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                whitespace(rng, out);
                if rng.chance(30) {
                    out.extend_from_slice(b"\"id\"");
                } else {
                    string(rng, out);
                }
                whitespace(rng, out);
                out.push(b':');
                whitespace(rng, out);
                value(rng, out, depth + 1);
            }
            whitespace(rng, out);
            out.push(b'}');
        }
    }
}

/// A stream of messages like QEMU's (an object per line), some nested deeply.
fn stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 => value(rng, &mut out, 0),
            _ => {
                out.extend_from_slice(b"{\"return\": ");
                value(rng, &mut out, 1);
                out.extend_from_slice(format!(", \"id\": {}}}", rng.below(1000)).as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Bytes that stop the fast path or break the JSON.
const MUTATIONS: &[u8] = b"\"\\{}[],: \t\n0-.eE+tfnx\x00\x01\x1f\x7f\x80\xbf\xc3\xe2\xed\xf0\xff";

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.below(bytes.len());
        let byte = MUTATIONS[rng.below(MUTATIONS.len())];
        match rng.below(3) {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ => {
                bytes.remove(at);
            }
        }
    }
}

/// Everything a framer reports for `stream` fed in pieces of the given lengths (cycled).
fn items(stream: &[u8], capacity: usize, max_depth: usize, pieces: &[usize]) -> Vec<String> {
    let mut buffer = vec![0u8; capacity];
    let mut framer = Framer::new(&mut buffer).with_max_depth(max_depth);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut piece = 0;
    while !rest.is_empty() {
        let len = pieces[piece % pieces.len()].clamp(1, rest.len());
        piece += 1;
        let taken = framer.push(&rest[..len]);
        rest = &rest[taken..];
        while let Some(item) = framer.next_item() {
            out.push(match item {
                Item::Frame(frame) => {
                    let members: Vec<String> = frame
                        .members()
                        .map(|(key, value)| {
                            format!(
                                "{:?}={:?}",
                                key.raw(),
                                String::from_utf8_lossy(value.as_bytes())
                            )
                        })
                        .collect();
                    format!(
                        "frame {:?} members {members:?}",
                        String::from_utf8_lossy(frame.bytes())
                    )
                }
                other => format!("{other:?}"),
            });
        }
    }
    out.push(format!(
        "partial {} stats {:?}",
        framer.has_partial(),
        framer.stats()
    ));
    out
}

fn check(stream: &[u8], rng: &mut Rng) {
    check_with(stream, rng, &[(1 << 16, 64), (200, 64), (1 << 16, 5)]);
}

fn check_with(stream: &[u8], rng: &mut Rng, configurations: &[(usize, usize)]) {
    for &(capacity, max_depth) in configurations {
        let reference = items(stream, capacity, max_depth, &[1]);
        let whole = items(stream, capacity, max_depth, &[usize::MAX]);
        assert_eq!(
            whole,
            reference,
            "whole vs one byte at a time, capacity {capacity}, depth {max_depth}, stream {:?}",
            String::from_utf8_lossy(stream)
        );
        let pieces: Vec<usize> = (0..8).map(|_| 1 + rng.below(300)).collect();
        let split = items(stream, capacity, max_depth, &pieces);
        assert_eq!(
            split,
            reference,
            "pieces {pieces:?} vs one byte at a time, capacity {capacity}, depth {max_depth}, stream {:?}",
            String::from_utf8_lossy(stream)
        );
    }
}

#[test]
fn valid_streams_frame_alike_whole_and_byte_by_byte() {
    let cases = 600;
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..cases {
        let stream = stream(&mut rng);
        check(&stream, &mut rng);
    }
}

#[test]
fn mutated_streams_frame_alike_whole_and_byte_by_byte() {
    let cases = 3000;
    let mut rng = Rng(0x5EED_0002);
    for _ in 0..cases {
        let mut stream = stream(&mut rng);
        mutate(&mut rng, &mut stream);
        check(&stream, &mut rng);
    }
}

#[test]
fn generated_values_parse() {
    let cases = 2000;
    let mut rng = Rng(0x5EED_0003);
    for _ in 0..cases {
        let mut text = Vec::new();
        value(&mut rng, &mut text, 2);
        let parsed = RawJson::parse(&text);
        let expected = serde_json::from_slice::<serde::de::IgnoredAny>(&text).is_ok();
        assert_eq!(
            parsed.is_ok(),
            expected,
            "{:?}",
            String::from_utf8_lossy(&text)
        );
    }
}

#[test]
fn deep_arrays_and_objects_at_every_block_offset() {
    // A fixed deep shape shifted across block edges, with a token of each kind cut at
    // every offset by a one-byte change.
    let base: &[u8] = br#"{"return": [[{"a": [1, -2.5e3, true, false, null, "text", {"k": "v"}, []], "b": {}}, ["x", 12345678901234567890, 0.5]]], "id": 7}"#;
    let shifts = 70;
    let mut rng = Rng(0x5EED_0004);
    for shift in 0..shifts {
        let mut stream = vec![b' '; shift];
        stream.extend_from_slice(base);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(base);
        check(&stream, &mut rng);
        let positions = base.len();
        for at in 0..positions {
            let mut changed = stream.clone();
            let index = shift + at;
            changed[index] = MUTATIONS[(shift + at) % MUTATIONS.len()];
            check(&changed, &mut rng);
        }
    }
}

#[test]
fn nesting_across_depth_64_and_the_depth_limit() {
    // The fast path keeps the kinds of depths 1 to 64 in a register and deeper ones in
    // memory: containers of both kinds opened and closed on each side of depth 64, under
    // limits below, at and above the nesting.
    let mut rng = Rng(0x5EED_0006);
    for levels in [2, 3, 30, 62, 63, 64, 65, 66, 67, 90, 130, 200] {
        for pattern in 0..4 {
            let mut value = Vec::new();
            let mut closes = Vec::new();
            for level in 0..levels {
                let object = (level + pattern) % (2 + pattern % 2) == 0;
                if object {
                    value.extend_from_slice(b"{\"k\": 1, \"v\": ");
                    closes.push(&b", \"e\": [true, \"x\"]}"[..]);
                } else {
                    value.extend_from_slice(b"[\"a\", null, ");
                    closes.push(&b", {\"z\": -0.5}]"[..]);
                }
            }
            value.extend_from_slice(b"\"middle\"");
            for close in closes.iter().rev() {
                value.extend_from_slice(close);
            }
            let mut stream = b"{\"return\": ".to_vec();
            stream.extend_from_slice(&value);
            stream.extend_from_slice(b", \"id\": 3}\r\n");
            stream.extend_from_slice(&stream.clone());
            check_with(
                &stream,
                &mut rng,
                &[
                    (1 << 16, 64),
                    (1 << 16, 66),
                    (1 << 16, 100),
                    (1 << 16, 256),
                    (300, 256),
                ],
            );
            let at = rng.below(stream.len());
            let mut changed = stream.clone();
            changed[at] = MUTATIONS[rng.below(MUTATIONS.len())];
            check_with(&changed, &mut rng, &[(1 << 16, 100), (1 << 16, 256)]);
        }
    }
}
