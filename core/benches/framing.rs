//! Framing throughput on a real QEMU reply stream, against serde_json baselines.
//!
//! Data: `shared/bench/qmp-reply-stream.bin` (1,000 compact replies, CRLF-terminated).
//!
//! `FRAMING_PASSES=framer:N` (or `ignored:N`, `value:N`) skips criterion and runs N plain
//! passes of one of the three, for instruction counts that do not depend on the machine's
//! load: under `valgrind --tool=callgrind`, the count for N = 2 minus the count for N = 1
//! is one pass.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use core::hint::black_box;
use criterion::{criterion_group, Criterion, Throughput};
use qmp_core::json::{Framer, Item};

fn stream() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/bench/qmp-reply-stream.bin"
    );
    std::fs::read(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// Frames the whole stream through a 256 KiB buffer in 64 KiB reads (zero-copy path) and
/// walks every frame's members; returns a checksum.
fn frame_and_walk(stream: &[u8], buffer: &mut [u8]) -> usize {
    let mut framer = Framer::new(buffer);
    let mut checksum = 0usize;
    for chunk in stream.chunks(64 * 1024) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let window = framer.window();
            let n = window.len().min(rest.len());
            window[..n].copy_from_slice(&rest[..n]);
            framer.commit(n);
            rest = &rest[n..];
            while let Some(item) = framer.next_item() {
                if let Item::Frame(frame) = item {
                    for (key, value) in frame.members() {
                        checksum += key.raw().len() + value.as_bytes().len();
                    }
                }
            }
        }
    }
    checksum
}

/// serde_json into a `Value` per line; returns the number of top-level members.
fn value_per_line(lines: &[&[u8]]) -> usize {
    let mut count = 0;
    for line in lines {
        let value: serde_json::Value = serde_json::from_slice(black_box(line)).unwrap();
        count += value.as_object().map_or(0, |object| object.len());
    }
    count
}

/// serde_json's validation only, as a stream of `IgnoredAny`; returns the value count.
fn ignored_any_stream(stream: &[u8]) -> usize {
    serde_json::Deserializer::from_slice(black_box(stream))
        .into_iter::<serde::de::IgnoredAny>()
        .count()
}

/// The lines of the stream, as the `Value` baseline parses them.
fn lines(stream: &[u8]) -> Vec<&[u8]> {
    stream
        .split(|&byte| byte == b'\n')
        .filter(|line| line.len() > 1)
        .collect()
}

/// `FRAMING_PASSES=WHICH:N`: N plain passes of one path, no criterion.
fn plain_passes(spec: &str) {
    let (which, passes) = spec.split_once(':').unwrap_or((spec, "1"));
    let passes: usize = passes
        .parse()
        .unwrap_or_else(|_| panic!("FRAMING_PASSES: bad pass count in {spec:?}"));
    let stream = stream();
    let lines = lines(&stream);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut checksum = 0;
    for _ in 0..passes {
        checksum += match which {
            "framer" => frame_and_walk(black_box(&stream), &mut buffer),
            "ignored" => ignored_any_stream(&stream),
            "value" => value_per_line(&lines),
            _ => panic!("FRAMING_PASSES: expected framer, ignored or value, got {which:?}"),
        };
    }
    println!("{which}: {passes} passes, checksum {checksum}");
}

fn bench(c: &mut Criterion) {
    let stream = stream();
    let lines = lines(&stream);
    let mut group = c.benchmark_group("qmp-reply-stream");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(30);

    let mut buffer = vec![0u8; 256 * 1024];
    group.bench_function("framer+members", |b| {
        b.iter(|| frame_and_walk(black_box(&stream), &mut buffer))
    });
    group.bench_function("serde_json::Value per line", |b| {
        b.iter(|| value_per_line(&lines))
    });
    group.bench_function("serde_json IgnoredAny stream", |b| {
        b.iter(|| ignored_any_stream(&stream))
    });
    group.finish();
}

criterion_group!(benches, bench);

// `criterion_main!` with the plain-passes switch in front.
fn main() {
    if let Ok(spec) = std::env::var("FRAMING_PASSES") {
        plain_passes(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
