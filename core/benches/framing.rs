//! Framing throughput on a real QEMU reply stream, against serde_json baselines.
//!
//! Data: `shared/bench/qmp-reply-stream.bin` (1,000 compact replies, CRLF-terminated).

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use core::hint::black_box;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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

fn bench(c: &mut Criterion) {
    let stream = stream();
    let lines: Vec<&[u8]> = stream
        .split(|&byte| byte == b'\n')
        .filter(|line| line.len() > 1)
        .collect();
    let mut group = c.benchmark_group("qmp-reply-stream");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(30);

    let mut buffer = vec![0u8; 256 * 1024];
    group.bench_function("framer+members", |b| {
        b.iter(|| frame_and_walk(black_box(&stream), &mut buffer))
    });
    group.bench_function("serde_json::Value per line", |b| {
        b.iter(|| {
            let mut count = 0;
            for line in &lines {
                let value: serde_json::Value = serde_json::from_slice(black_box(line)).unwrap();
                count += value.as_object().map_or(0, |object| object.len());
            }
            count
        })
    });
    group.bench_function("serde_json IgnoredAny stream", |b| {
        b.iter(|| {
            serde_json::Deserializer::from_slice(black_box(&stream))
                .into_iter::<serde::de::IgnoredAny>()
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
