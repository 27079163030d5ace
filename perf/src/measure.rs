//! What every client run reports: wall time, CPU time, peak RSS and allocations, measured
//! inside the process that ran the client (one fresh process per run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counts every allocation (and reallocation) made by this process.
pub struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Allocations so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// User + system CPU time of this process, in microseconds.
pub fn cpu_micros() -> u64 {
    let usage = rusage();
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// Peak resident set size of this process, in KiB.
pub fn peak_rss_kib() -> u64 {
    rusage().ru_maxrss as u64
}

/// Current resident set size of this process, in KiB (from /proc/self/statm).
pub fn current_rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn rusage() -> libc::rusage {
    // SAFETY: getrusage fills the zeroed struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

/// A measurement in progress.
pub struct Meter {
    started: Instant,
    cpu: u64,
    allocations: u64,
}

impl Meter {
    pub fn start() -> Self {
        Meter {
            allocations: allocations(),
            cpu: cpu_micros(),
            started: Instant::now(),
        }
    }

    /// Ends the measurement of `commands` commands; prints the JSON line the parent reads.
    pub fn finish(self, commands: u64) -> Sample {
        let wall = self.started.elapsed();
        let cpu = cpu_micros() - self.cpu;
        let allocations = allocations() - self.allocations;
        Sample {
            commands,
            wall_secs: wall.as_secs_f64(),
            cpu_micros: cpu,
            peak_rss_kib: peak_rss_kib(),
            allocations: Some(allocations),
        }
    }
}

/// One run's figures, as printed by the child (and by the Python peer).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub commands: u64,
    pub wall_secs: f64,
    pub cpu_micros: u64,
    pub peak_rss_kib: u64,
    pub allocations: Option<u64>,
}
