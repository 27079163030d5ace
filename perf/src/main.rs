//! `qmp-perf`: qmp-std against a raw socket loop and the peers a user would otherwise
//! pick (the `qapi` crate, Python's `qemu.qmp`), all against real `qemu-storage-daemon`
//! processes, in one run, printing one table. See `perf/README.md`; run with
//! `perf/run.sh` (or `perf/run.sh --quick`).
//!
//! Every (workload, client, repetition) runs in a fresh child process (so peak RSS is
//! per workload) against a fresh `qemu-storage-daemon`; the daemon is pinned to CPU 0,
//! the client to CPU 1.

mod clients;
mod measure;
mod raw;
mod scale;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use measure::Sample;
use qmp_std::{Launcher, QemuProcess, ServerKind};

#[global_allocator]
static ALLOCATOR: measure::CountingAllocator = measure::CountingAllocator;

/// Buffers for a client that never asks for the schema: 16 KiB receive, 4 KiB transmit.
const SMALL_BUFFERS: (usize, usize) = (16 * 1024, 4 * 1024);

/// CPU the QEMU processes run on.
const SERVER_CPU: &str = "0";
/// CPU the clients run on.
pub const CLIENT_CPU: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `query-version`, one at a time.
    Sequential,
    /// `query-version` from 8 threads or tasks, OOB negotiated (QEMU queues up to 8).
    Pipelined,
    /// `query-qmp-schema` (117 KB replies), decoded into typed values.
    Schema,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Sequential, Workload::Pipelined, Workload::Schema];

    fn name(self) -> &'static str {
        match self {
            Workload::Sequential => "sequential",
            Workload::Pipelined => "pipelined",
            Workload::Schema => "schema",
        }
    }

    fn parse(name: &str) -> Workload {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .unwrap_or_else(|| panic!("unknown workload {name}"))
    }

    pub fn command(self) -> &'static str {
        match self {
            Workload::Schema => "query-qmp-schema",
            _ => "query-version",
        }
    }

    fn title(self, count: u64) -> String {
        match self {
            Workload::Sequential => format!("{count} sequential `query-version`"),
            Workload::Pipelined => {
                format!("{count} `query-version` pipelined from 8 threads/tasks, OOB on")
            }
            Workload::Schema => {
                format!("{count} `query-qmp-schema` (117 KB replies), decoded into typed values")
            }
        }
    }

    /// (measured, warm-up) command counts.
    fn counts(self, quick: bool) -> (u64, u64) {
        match (self, quick) {
            (Workload::Schema, false) => (200, 10),
            (Workload::Schema, true) => (20, 5),
            (_, false) => (20_000, 504),
            (_, true) => (2_000, 200),
        }
    }
}

/// A client under test: id (the child's subcommand argument), label, and whether it is
/// a peer (for the "best peer" ratios).
struct ClientSpec {
    id: &'static str,
    label: &'static str,
    peer: bool,
}

const CLIENTS: &[ClientSpec] = &[
    ClientSpec {
        id: "raw",
        label: "raw loop (limit)",
        peer: false,
    },
    ClientSpec {
        id: "std-blocking",
        label: "qmp-std blocking `Client`",
        peer: false,
    },
    ClientSpec {
        id: "std-tokio",
        label: "qmp-std tokio `AsyncClient`",
        peer: false,
    },
    ClientSpec {
        id: "eio-driver",
        label: "qmp-core `BlockingDriver` (embedded-io over std socket)",
        peer: false,
    },
    ClientSpec {
        id: "qapi-sync-doc",
        label: "qapi sync, as documented",
        peer: true,
    },
    ClientSpec {
        id: "qapi-sync-best",
        label: "qapi sync, best (`BufWriter`; hand pipelining)",
        peer: true,
    },
    ClientSpec {
        id: "qapi-tokio-doc",
        label: "qapi tokio, as documented",
        peer: true,
    },
    ClientSpec {
        id: "qapi-tokio-best",
        label: "qapi tokio, best (current-thread; OOB)",
        peer: true,
    },
    ClientSpec {
        id: "py-doc",
        label: "Python qemu.qmp, as documented",
        peer: true,
    },
    ClientSpec {
        id: "py-best",
        label: "Python qemu.qmp, best (uvloop, logging off)",
        peer: true,
    },
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("client") => client_main(&args[1..]),
        Some("scale-client") => scale::client_main(&args[1..]),
        Some("run") => run_main(&args[1..]),
        Some("sizes") => println!(
            "qmp-core Client<128>: {} bytes, Client<8>: {} bytes",
            std::mem::size_of::<qmp_core::client::Client<'static, 128>>(),
            std::mem::size_of::<qmp_core::client::Client<'static, 8>>()
        ),
        Some("scale") => {
            let quick = args.iter().any(|a| a == "--quick");
            scale::print(&scale::run(quick, None));
            scale::print(&scale::run(quick, Some(SMALL_BUFFERS)));
        }
        _ => {
            eprintln!("usage: qmp-perf run [--quick] [--reps N] [--only ID,ID] [--workloads W,W] [--no-scale]");
            std::process::exit(2);
        }
    }
}

/// The child: `client ID WORKLOAD SOCKET COUNT WARMUP`; prints one JSON [`Sample`].
fn client_main(args: &[String]) {
    let (id, workload, socket) = (&args[0], Workload::parse(&args[1]), Path::new(&args[2]));
    let count: u64 = args[3].parse().unwrap();
    let warmup: u64 = args[4].parse().unwrap();
    let sample = match id.as_str() {
        "raw" => raw::run(socket, workload, count, warmup),
        "std-blocking" => clients::std_blocking(socket, workload, count, warmup),
        "std-tokio" => clients::std_tokio(socket, workload, count, warmup),
        "eio-driver" => clients::eio_driver(socket, workload, count, warmup),
        "qapi-sync-doc" => clients::qapi_sync(socket, workload, count, warmup, false),
        "qapi-sync-best" => clients::qapi_sync(socket, workload, count, warmup, true),
        "qapi-tokio-doc" => clients::qapi_tokio(socket, workload, count, warmup, false),
        "qapi-tokio-best" => clients::qapi_tokio(socket, workload, count, warmup, true),
        other => panic!("unknown client {other}"),
    };
    println!("{}", serde_json::to_string(&sample).unwrap());
}

/// A fresh `qemu-storage-daemon`, all its threads pinned to [`SERVER_CPU`].
pub fn start_qsd() -> QemuProcess {
    let qsd = Launcher::new(ServerKind::StorageDaemon)
        .start_timeout(Duration::from_secs(60))
        .spawn()
        .expect("start qemu-storage-daemon");
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", SERVER_CPU, &qsd.pid().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("taskset");
    assert!(status.success(), "taskset failed");
    qsd
}

fn python() -> Option<PathBuf> {
    std::env::var_os("QMP_PERF_PYTHON").map(PathBuf::from)
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer_qemu_qmp.py")
}

/// Runs one client in a child process pinned to [`CLIENT_CPU`].
fn run_child(
    client: &ClientSpec,
    workload: Workload,
    socket: &Path,
    count: u64,
    warmup: u64,
) -> Option<Sample> {
    let mut command = Command::new("taskset");
    command.args(["-c", CLIENT_CPU]);
    if let Some(mode) = client.id.strip_prefix("py-") {
        command.arg(python()?).arg(peer_script()).arg(mode);
    } else {
        command
            .arg(std::env::current_exe().unwrap())
            .arg("client")
            .arg(client.id);
    }
    command
        .arg(workload.name())
        .arg(socket)
        .arg(count.to_string())
        .arg(warmup.to_string());
    let output = command.output().expect("spawn client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    match (output.status.success(), line) {
        (true, Some(line)) => Some(serde_json::from_str(line).expect("sample")),
        _ => {
            eprintln!(
                "  {} / {} failed: {}\n{}",
                client.id,
                workload.name(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            None
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Medians of one (workload, client) cell.
#[derive(Clone, Copy)]
struct Figures {
    per_sec: f64,
    cpu_us: f64,
    rss_mib: f64,
    allocs: Option<f64>,
}

fn figures(samples: &[Sample]) -> Option<Figures> {
    if samples.is_empty() {
        return None;
    }
    let mut per_sec: Vec<f64> = samples
        .iter()
        .map(|s| s.commands as f64 / s.wall_secs)
        .collect();
    let mut cpu: Vec<f64> = samples
        .iter()
        .map(|s| s.cpu_micros as f64 / s.commands as f64)
        .collect();
    let mut rss: Vec<f64> = samples
        .iter()
        .map(|s| s.peak_rss_kib as f64 / 1024.0)
        .collect();
    let mut allocs: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.allocations.map(|a| a as f64 / s.commands as f64))
        .collect();
    Some(Figures {
        per_sec: median(&mut per_sec),
        cpu_us: median(&mut cpu),
        rss_mib: median(&mut rss),
        allocs: (!allocs.is_empty()).then(|| median(&mut allocs)),
    })
}

fn shell(command: &str) -> String {
    Command::new("sh")
        .args(["-c", command])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_main(args: &[String]) {
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let reps: usize = value("--reps").map_or(3, |v| v.parse().unwrap());
    let only: Option<Vec<String>> =
        value("--only").map(|v| v.split(',').map(String::from).collect());
    let workloads: Vec<Workload> = value("--workloads").map_or(Workload::ALL.to_vec(), |v| {
        v.split(',').map(Workload::parse).collect()
    });
    let clients: Vec<&ClientSpec> = CLIENTS
        .iter()
        .filter(|c| only.as_ref().is_none_or(|o| o.iter().any(|id| id == c.id)))
        .filter(|c| !c.id.starts_with("py-") || python().is_some())
        .collect();

    let load_before = load_average();
    let started = std::time::Instant::now();
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); clients.len()]; workloads.len()];
    for rep in 0..reps {
        for (w, &workload) in workloads.iter().enumerate() {
            let (count, warmup) = workload.counts(quick);
            for (c, client) in clients.iter().enumerate() {
                let qsd = start_qsd();
                eprint!(
                    "rep {}/{reps} {:<10} {:<16}",
                    rep + 1,
                    workload.name(),
                    client.id
                );
                if let Some(sample) = run_child(client, workload, qsd.socket_path(), count, warmup)
                {
                    eprintln!(
                        " {:>9.0} cmds/s {:>7.1} µs CPU/cmd",
                        sample.commands as f64 / sample.wall_secs,
                        sample.cpu_micros as f64 / sample.commands as f64
                    );
                    samples[w][c].push(sample);
                } else {
                    eprintln!(" failed");
                }
                drop(qsd);
            }
        }
    }
    let load_after = load_average();

    println!("## qmp-perf results\n");
    println!(
        "Machine: {} CPUs, {}, Linux {}, {}. Load average (1/5/15 min) {} before, {} after; {} repetitions, {:.0} s{}.",
        shell("nproc"),
        shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs"),
        shell("uname -r"),
        shell("qemu-storage-daemon --version | head -1"),
        load_before,
        load_after,
        reps,
        started.elapsed().as_secs_f64(),
        if quick { ", --quick" } else { "" }
    );
    println!("Server pinned to CPU {SERVER_CPU}, client to CPU {CLIENT_CPU}; fresh qemu-storage-daemon and fresh client process per cell and repetition; medians.\n");
    for (w, &workload) in workloads.iter().enumerate() {
        let (count, _) = workload.counts(quick);
        println!("### {}\n", workload.title(count));
        println!("| client | cmds/s | ×raw | ×best peer | CPU µs/cmd | ×raw | ×best peer | peak RSS MiB | ×raw | ×best peer | allocs/cmd |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let cells: Vec<Option<Figures>> = samples[w].iter().map(|s| figures(s)).collect();
        let raw = clients
            .iter()
            .position(|c| c.id == "raw")
            .and_then(|i| cells[i]);
        let peers: Vec<Figures> = clients
            .iter()
            .zip(&cells)
            .filter(|(c, _)| c.peer)
            .filter_map(|(_, f)| *f)
            .collect();
        let best = |pick: fn(&Figures) -> f64, higher: bool| {
            peers
                .iter()
                .map(pick)
                .fold(None, |acc: Option<f64>, v| match acc {
                    None => Some(v),
                    Some(a) if (higher && v > a) || (!higher && v < a) => Some(v),
                    keep => keep,
                })
        };
        let best_rate = best(|f| f.per_sec, true);
        let best_cpu = best(|f| f.cpu_us, false);
        let best_rss = best(|f| f.rss_mib, false);
        let ratio =
            |v: f64, base: Option<f64>| base.map_or("–".into(), |b| format!("{:.2}", v / b));
        for (client, cell) in clients.iter().zip(&cells) {
            let Some(f) = cell else {
                println!("| {} | failed | | | | | | | | | |", client.label);
                continue;
            };
            println!(
                "| {} | {:.0} | {} | {} | {:.1} | {} | {} | {:.1} | {} | {} | {} |",
                client.label,
                f.per_sec,
                ratio(f.per_sec, raw.map(|r| r.per_sec)),
                ratio(f.per_sec, best_rate),
                f.cpu_us,
                ratio(f.cpu_us, raw.map(|r| r.cpu_us)),
                ratio(f.cpu_us, best_cpu),
                f.rss_mib,
                ratio(f.rss_mib, raw.map(|r| r.rss_mib)),
                ratio(f.rss_mib, best_rss),
                f.allocs.map_or("–".into(), |a| format!("{a:.2}")),
            );
        }
        println!();
    }
    if !args.iter().any(|a| a == "--no-scale") {
        scale::print(&scale::run(quick, None));
        scale::print(&scale::run(quick, Some(SMALL_BUFFERS)));
    }
}
