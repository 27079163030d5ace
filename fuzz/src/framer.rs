//! The fuzz target `framer`: a byte stream through `Framer`, whole and in fragments.
//!
//! Input: byte 0 picks the receive buffer size (`CAPACITIES[b & 15]`) and the input path
//! of the fragmented run (bit 4: zero-copy `window`/`commit`, else `push`); byte 1 picks
//! the largest fragment (`MAX_FRAGMENT[b & 7]`) and seeds the fragment sizes with byte 2;
//! the rest is the stream.
//!
//! Invariants:
//! - the same items whatever the split and input path (compared with the whole stream
//!   pushed at once);
//! - nothing reported beyond what was received: frame lengths plus skipped lengths add up
//!   to at most the bytes fed, error offsets lie inside the stream and increase, and the
//!   counters match the items;
//! - every frame is valid JSON per serde_json (and UTF-8), no longer than the buffer, and
//!   its recorded member spans equal a fresh walk; every oversize value is at least as
//!   long as the buffer; every 0xFF byte yields exactly one `Sentinel`;
//! - differential: when serde_json reads the stream as a sequence of values (and nothing
//!   nests deeper than the framer's limit), the framer delimits exactly the same values
//!   (those longer than the buffer as `Oversize` with the same length and `id`, the
//!   `id` only when every top-level `id` member holds the same unsigned integer);
//! - liveness: feeding never gets stuck.

use qmp_core::json::{Framer, Item, JsonError, DEFAULT_MAX_DEPTH};

use crate::reference::{self, Shape};

/// Receive buffer sizes, chosen by the low nibble of byte 0.
pub const CAPACITIES: [usize; 16] = [
    1, 2, 3, 8, 16, 31, 64, 100, 128, 255, 512, 1000, 4096, 4096, 65536, 17,
];

/// Largest fragment sizes, chosen by the low 3 bits of byte 1.
pub const MAX_FRAGMENT: [usize; 8] = [1, 2, 3, 5, 8, 16, 64, 1000];

/// One item, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// A frame's bytes.
    Frame(Vec<u8>),
    /// A skipped value.
    Oversize {
        /// Its length.
        len: u64,
        /// Its `id`.
        id: Option<u64>,
    },
    /// Invalid input.
    Malformed(JsonError),
    /// A 0xFF byte.
    Sentinel,
}

/// A small deterministic generator for fragment sizes (xorshift).
pub struct Fragments {
    state: u64,
    max: usize,
}

impl Fragments {
    /// Sizes in `1..=max`, from `seed`.
    pub fn new(seed: u64, max: usize) -> Self {
        Fragments {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            max: max.max(1),
        }
    }

    /// The next size.
    pub fn next_size(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        1 + (self.state % self.max as u64) as usize
    }
}

/// Drains the framer into `out`, checking each frame on the way. Returns how many items.
fn drain(framer: &mut Framer<'_>, capacity: usize, out: &mut Vec<Owned>) -> usize {
    let mut count = 0;
    while let Some(item) = framer.next_item() {
        count += 1;
        out.push(match item {
            Item::Frame(frame) => {
                let bytes = frame.bytes();
                assert!(!bytes.is_empty(), "empty frame");
                assert!(bytes.len() <= capacity, "frame longer than the buffer");
                assert!(
                    reference::is_valid_json(bytes),
                    "frame serde_json rejects: {:?}",
                    String::from_utf8_lossy(bytes)
                );
                assert!(reference::max_depth(bytes) <= DEFAULT_MAX_DEPTH);
                let recorded: Vec<_> = frame
                    .members()
                    .map(|(k, v)| (k.raw_bytes(), v.as_bytes()))
                    .collect();
                let walked: Vec<_> = frame
                    .value()
                    .members()
                    .map(|(k, v)| (k.raw_bytes(), v.as_bytes()))
                    .collect();
                assert_eq!(recorded, walked, "recorded member spans differ from a walk");
                Owned::Frame(bytes.to_vec())
            }
            Item::Oversize { len, id } => {
                assert!(
                    len >= capacity as u64,
                    "value of {len} bytes skipped by a {capacity}-byte buffer"
                );
                Owned::Oversize { len, id }
            }
            Item::Malformed { error } => Owned::Malformed(error),
            Item::Sentinel => Owned::Sentinel,
            _ => panic!("an item kind this check does not know"),
        });
    }
    count
}

/// Feeds `stream` through a framer with a `capacity`-byte buffer, cut by `fragments`
/// (`None`: offered whole), through `push` or `window`/`commit`. Returns the items.
pub fn run(
    stream: &[u8],
    capacity: usize,
    mut fragments: Option<Fragments>,
    zero_copy: bool,
) -> Vec<Owned> {
    let mut buffer = vec![0u8; capacity];
    let mut framer = Framer::new(&mut buffer);
    let mut items = Vec::new();
    let mut fed = 0usize;
    let mut stuck = 0;
    while fed < stream.len() {
        let want = match fragments.as_mut() {
            Some(f) => f.next_size(),
            None => stream.len(),
        };
        let piece = &stream[fed..(fed + want).min(stream.len())];
        let mut offset = 0;
        while offset < piece.len() {
            let taken = if zero_copy {
                let window = framer.window();
                let n = window.len().min(piece.len() - offset);
                window[..n].copy_from_slice(&piece[offset..offset + n]);
                framer.commit(n);
                n
            } else {
                framer.push(&piece[offset..])
            };
            offset += taken;
            let drained = drain(&mut framer, capacity, &mut items);
            if taken == 0 && drained == 0 {
                stuck += 1;
                assert!(stuck < 3, "framer takes no bytes and yields no item");
            } else {
                stuck = 0;
            }
        }
        fed += piece.len();
    }
    drain(&mut framer, capacity, &mut items);
    check_accounting(&framer, stream, &items);
    items
}

fn check_accounting(framer: &Framer<'_>, stream: &[u8], items: &[Owned]) {
    let fed = stream.len() as u64;
    let mut used = 0u64;
    let mut last_error: Option<u64> = None;
    let (mut frames, mut oversize, mut malformed, mut sentinels) = (0u64, 0u64, 0u64, 0usize);
    for item in items {
        match item {
            Owned::Frame(bytes) => {
                frames += 1;
                used += bytes.len() as u64;
            }
            Owned::Oversize { len, .. } => {
                oversize += 1;
                used += len;
            }
            Owned::Malformed(error) => {
                malformed += 1;
                assert!(
                    error.offset < fed,
                    "error at {} of {fed} bytes",
                    error.offset
                );
                if let Some(previous) = last_error {
                    assert!(error.offset > previous, "error offsets do not increase");
                }
                last_error = Some(error.offset);
            }
            Owned::Sentinel => sentinels += 1,
        }
    }
    assert!(
        used <= fed,
        "frames and skipped values cover {used} of {fed} bytes"
    );
    let stats = framer.stats();
    assert_eq!(
        (stats.frames, stats.oversize, stats.malformed),
        (frames, oversize, malformed)
    );
    assert!(stats.bytes_scanned <= fed);
    let ff = stream.iter().filter(|&&b| b == 0xFF).count();
    assert_eq!(sentinels, ff, "{ff} 0xFF bytes but {sentinels} sentinels");
}

/// The `id` the framer should report for a skipped value: that of its depth-1 members
/// whose decoded key is `id`, when every one of them holds the same unsigned integer
/// written plainly (none when there is no such member, when one holds anything else, or
/// when two differ: it could not be told which request the value answers).
fn expected_id(text: &str) -> Option<u64> {
    let Shape::Object(members) = reference::shape(text) else {
        return None;
    };
    let mut ids = members
        .iter()
        .filter(|(key, _)| key == "id")
        .map(|(_, value)| {
            let v = value.get();
            if v.bytes().all(|b| b.is_ascii_digit()) {
                v.parse::<u64>().ok()
            } else {
                None
            }
        });
    let first = ids.next()??;
    ids.all(|id| id == Some(first)).then_some(first)
}

/// The whole check on one fuzz input.
pub fn check(data: &[u8]) {
    let (Some(&b0), Some(&b1), Some(&b2)) = (data.first(), data.get(1), data.get(2)) else {
        return;
    };
    let stream = &data[3..];
    let capacity = CAPACITIES[usize::from(b0 & 15)];
    let zero_copy = b0 & 16 != 0;
    let max = MAX_FRAGMENT[usize::from(b1 & 7)];
    let seed = u64::from(b1) << 8 | u64::from(b2);

    let whole = run(stream, capacity, None, false);
    let split = run(stream, capacity, Some(Fragments::new(seed, max)), zero_copy);
    assert_eq!(whole, split, "items depend on how the stream is split");
    let other_path = run(stream, capacity, None, true);
    assert_eq!(whole, other_path, "items depend on the input path");

    // Differential: a stream serde_json reads as values, with a final delimiter so that a
    // trailing top-level number ends.
    let Some(spans) = reference::stream_spans(stream) else {
        return;
    };
    if reference::max_depth(stream) > DEFAULT_MAX_DEPTH {
        return;
    }
    let mut delimited = stream.to_vec();
    delimited.push(b'\n');
    let items = run(&delimited, capacity, None, false);
    assert_eq!(
        items.len(),
        spans.len(),
        "serde_json sees {} values, the framer {items:?}",
        spans.len()
    );
    for (item, &(start, end)) in items.iter().zip(&spans) {
        let value = &stream[start..end];
        let len = value.len();
        match item {
            Owned::Frame(bytes) => {
                assert_eq!(
                    bytes.as_slice(),
                    value,
                    "framed differently from serde_json"
                );
                assert!(len <= capacity);
            }
            Owned::Oversize { len: skipped, id } => {
                assert_eq!(*skipped, len as u64, "skipped length differs");
                assert!(
                    len >= capacity,
                    "{len}-byte value skipped by a {capacity}-byte buffer"
                );
                let text = std::str::from_utf8(value).expect("utf-8");
                assert_eq!(*id, expected_id(text), "id of a skipped value {text:?}");
            }
            other => panic!("serde_json reads a value where the framer reports {other:?}"),
        }
        if len < capacity {
            assert!(
                matches!(item, Owned::Frame(_)),
                "{len}-byte value not framed"
            );
        }
    }
}
