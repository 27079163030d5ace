//! The limit: a hand-written loop over a Unix socket. Requests are preformatted bytes
//! (the same bytes qmp-std sends: `{"execute":NAME,"id":N}\n`), replies are found by
//! counting line ends, nothing is parsed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::measure::{Meter, Sample};
use crate::Workload;

/// Reads until `lines` more line ends have arrived; returns how many arrived beyond.
fn read_lines(stream: &mut UnixStream, buf: &mut [u8], lines: usize) -> usize {
    let mut seen = 0;
    while seen < lines {
        let n = stream.read(buf).expect("read");
        assert!(n > 0, "server closed");
        seen += memchr::memchr_iter(b'\n', &buf[..n]).count();
    }
    seen - lines
}

fn connect(socket: &Path, oob: bool) -> UnixStream {
    let mut stream = UnixStream::connect(socket).expect("connect");
    let mut buf = vec![0u8; 64 * 1024];
    read_lines(&mut stream, &mut buf, 1);
    let negotiate: &[u8] = if oob {
        b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n"
    } else {
        b"{\"execute\":\"qmp_capabilities\"}\n"
    };
    stream.write_all(negotiate).expect("write");
    read_lines(&mut stream, &mut buf, 1);
    stream
}

/// `count` requests for `name` with ids `first..`, back to back, and where each ends.
fn preformat(name: &str, first: u64, count: u64) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::with_capacity(count as usize);
    for id in first..first + count {
        writeln!(bytes, "{{\"execute\":\"{name}\",\"id\":{id}}}").unwrap();
        ends.push(bytes.len());
    }
    (bytes, ends)
}

/// One request at a time.
fn sequential(stream: &mut UnixStream, (bytes, ends): &(Vec<u8>, Vec<usize>), buf: &mut [u8]) {
    let mut start = 0;
    for &end in ends {
        stream.write_all(&bytes[start..end]).expect("write");
        start = end;
        let extra = read_lines(stream, buf, 1);
        debug_assert_eq!(extra, 0);
    }
}

/// Up to `depth` requests in flight; each write sends every request the window allows.
fn pipelined(
    stream: &mut UnixStream,
    (bytes, ends): &(Vec<u8>, Vec<usize>),
    depth: usize,
    buf: &mut [u8],
) {
    let (mut sent, mut answered) = (0usize, 0usize);
    let total = ends.len();
    while answered < total {
        let window_end = (answered + depth).min(total);
        if sent < window_end {
            let from = if sent == 0 { 0 } else { ends[sent - 1] };
            stream
                .write_all(&bytes[from..ends[window_end - 1]])
                .expect("write");
            sent = window_end;
        }
        let n = stream.read(buf).expect("read");
        assert!(n > 0, "server closed");
        answered += memchr::memchr_iter(b'\n', &buf[..n]).count();
    }
}

pub fn run(socket: &Path, workload: Workload, count: u64, warmup: u64) -> Sample {
    let oob = workload == Workload::Pipelined;
    let mut stream = connect(socket, oob);
    let mut buf = vec![0u8; 64 * 1024];
    let name = workload.command();
    match workload {
        Workload::Sequential | Workload::Schema => {
            sequential(&mut stream, &preformat(name, 1, warmup), &mut buf);
            let requests = preformat(name, 1 + warmup, count);
            let meter = Meter::start();
            sequential(&mut stream, &requests, &mut buf);
            meter.finish(count)
        }
        Workload::Pipelined => {
            pipelined(&mut stream, &preformat(name, 1, warmup), 8, &mut buf);
            let requests = preformat(name, 1 + warmup, count);
            let meter = Meter::start();
            pipelined(&mut stream, &requests, 8, &mut buf);
            meter.finish(count)
        }
    }
}
