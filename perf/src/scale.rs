//! One tokio process driving 200 `qemu-storage-daemon` monitors at once: each client
//! runs a `query-version` loop while a job (`blockdev-create` of a small file, then
//! `job-dismiss`) keeps `JOB_STATUS_CHANGE` events coming.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qmp_core::commands::{BlockdevCreate, BlockdevCreateOptionsFile, JobDismiss, QueryVersion};
use qmp_std::tokio::AsyncClient;
use qmp_std::ConnectOptions;

use crate::measure::{cpu_micros, current_rss_kib, peak_rss_kib};

/// Monitors driven at once (`QMP_PERF_SCALE_CONNECTIONS` overrides, for diagnosis).
fn connections() -> usize {
    std::env::var("QMP_PERF_SCALE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// The client's options: the defaults, unless `QMP_PERF_SCALE_RX`/`QMP_PERF_SCALE_TX`
/// set the buffer sizes (for diagnosis).
fn scale_options() -> ConnectOptions {
    let size = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let mut options = ConnectOptions::new();
    if let Some(rx) = size("QMP_PERF_SCALE_RX") {
        options = options.rx_buffer_size(rx);
    }
    if let Some(tx) = size("QMP_PERF_SCALE_TX") {
        options = options.tx_buffer_size(tx);
    }
    options
}

/// Pause between one connection's jobs.
const JOB_PAUSE_MS: u64 = 1000;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScaleResult {
    /// Receive and transmit buffer sizes, when not the defaults.
    pub buffers: Option<(usize, usize)>,
    pub connections: usize,
    pub seconds: f64,
    pub commands: u64,
    pub jobs: u64,
    pub events: u64,
    pub slowest_reply_ms: f64,
    pub cpu_us_per_command: f64,
    pub baseline_rss_kib: u64,
    pub connected_rss_kib: u64,
    pub final_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub load: String,
}

/// Starts the daemons (on the server CPU), runs the client process (on the client CPU).
pub fn run(quick: bool, buffers: Option<(usize, usize)>) -> ScaleResult {
    let seconds = if quick { 5 } else { 20 };
    let count = connections();
    eprintln!("scale: starting {count} qemu-storage-daemon processes");
    let daemons: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let share = count / 4 + usize::from(w < count % 4);
                scope.spawn(move || (0..share).map(|_| crate::start_qsd()).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let list = tempfile_list(&daemons);
    eprintln!("scale: running {seconds} s");
    let mut command = Command::new("taskset");
    if let Some((rx, tx)) = buffers {
        command
            .env("QMP_PERF_SCALE_RX", rx.to_string())
            .env("QMP_PERF_SCALE_TX", tx.to_string());
    }
    let output = command
        .args(["-c", crate::CLIENT_CPU])
        .arg(std::env::current_exe().unwrap())
        .arg("scale-client")
        .arg(&list)
        .arg(seconds.to_string())
        .output()
        .expect("scale client");
    let _ = std::fs::remove_file(&list);
    drop(daemons);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    match line {
        Some(line) if output.status.success() => serde_json::from_str(line).unwrap(),
        _ => panic!(
            "scale client failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn tempfile_list(daemons: &[qmp_std::QemuProcess]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("qmp-perf-scale-{}.txt", std::process::id()));
    let text: String = daemons
        .iter()
        .map(|d| format!("{}\t{}\n", d.socket_path().display(), d.dir().display()))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

pub fn print(result: &ScaleResult) {
    let per_connection =
        |rss: u64| rss.saturating_sub(result.baseline_rss_kib) as f64 / result.connections as f64;
    let options = match result.buffers {
        None => "default `ConnectOptions` (256 KiB receive, 64 KiB transmit buffer)".to_string(),
        Some((rx, tx)) => format!(
            "`ConnectOptions::new().rx_buffer_size({}).tx_buffer_size({})`",
            rx, tx
        ),
    };
    println!(
        "### Scale: one tokio process (current-thread runtime), {} monitors at once, {options}\n",
        result.connections
    );
    println!("Each connection runs a `query-version` loop while a `blockdev-create` job (then `job-dismiss`, then {JOB_PAUSE_MS} ms pause) emits `JOB_STATUS_CHANGE` events; {:.0} s; load average {} at the end.\n", result.seconds, result.load);
    println!("| figure | value |");
    println!("|---|---:|");
    println!(
        "| total throughput | {:.0} cmds/s |",
        result.commands as f64 / result.seconds
    );
    println!(
        "| jobs run / events received | {} / {} |",
        result.jobs, result.events
    );
    println!(
        "| slowest `query-version` reply | {:.1} ms |",
        result.slowest_reply_ms
    );
    println!(
        "| client CPU per command | {:.1} µs |",
        result.cpu_us_per_command
    );
    println!("| client RSS: before connecting / connected / after the run / peak | {:.1} / {:.1} / {:.1} / {:.1} MiB |",
        result.baseline_rss_kib as f64 / 1024.0,
        result.connected_rss_kib as f64 / 1024.0,
        result.final_rss_kib as f64 / 1024.0,
        result.peak_rss_kib as f64 / 1024.0);
    println!(
        "| client memory per connection, connected (idle) | {:.1} KiB |",
        per_connection(result.connected_rss_kib)
    );
    println!(
        "| client memory per connection, after the run | {:.1} KiB |",
        per_connection(result.final_rss_kib)
    );
    println!(
        "| client memory per connection, peak | {:.1} KiB |",
        per_connection(result.peak_rss_kib)
    );
    println!();
}

/// The child: `scale-client LIST SECONDS`.
pub fn client_main(args: &[String]) {
    let list = std::fs::read_to_string(&args[0]).unwrap();
    let seconds: u64 = args[1].parse().unwrap();
    let targets: Vec<(String, String)> = list
        .lines()
        .map(|l| {
            let (socket, dir) = l.split_once('\t').unwrap();
            (socket.to_string(), dir.to_string())
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async move {
        let baseline_rss_kib = current_rss_kib();
        let mut clients = Vec::new();
        for (socket, _) in &targets {
            clients.push(
                AsyncClient::connect_unix(socket, scale_options())
                    .await
                    .expect("connect"),
            );
        }
        let connected_rss_kib = current_rss_kib();
        let commands = Arc::new(AtomicU64::new(0));
        let jobs = Arc::new(AtomicU64::new(0));
        let events = Arc::new(AtomicU64::new(0));
        let slowest_us = Arc::new(AtomicU64::new(0));
        let cpu_before = cpu_micros();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for (client, (_, dir)) in clients.iter().zip(&targets) {
            let (client2, commands, slowest_us) =
                (client.clone(), commands.clone(), slowest_us.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let major = client2
                        .call(&QueryVersion, |v| v.qemu.major)
                        .await
                        .expect("call");
                    assert!(major >= 1);
                    let took = sent.elapsed().as_micros() as u64;
                    slowest_us.fetch_max(took, Ordering::Relaxed);
                    commands.fetch_add(1, Ordering::Relaxed);
                }
            }));
            let (client, jobs, events, dir) =
                (client.clone(), jobs.clone(), events.clone(), dir.clone());
            tasks.push(tokio::spawn(async move {
                let changes = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let job = format!("job{n}");
                    let file = format!("{dir}/img{}", n % 4);
                    client
                        .execute(&BlockdevCreate::new(
                            &job,
                            BlockdevCreateOptionsFile {
                                filename: &file,
                                size: 1 << 20,
                                ..Default::default()
                            },
                        ))
                        .await
                        .expect("blockdev-create");
                    loop {
                        let event = changes.recv().await.expect("event");
                        events.fetch_add(1, Ordering::Relaxed);
                        let data = event.data_value();
                        if data["id"] == job.as_str() && data["status"] == "concluded" {
                            break;
                        }
                    }
                    client
                        .execute(&JobDismiss { id: &job })
                        .await
                        .expect("dismiss");
                    jobs.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(JOB_PAUSE_MS)).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_micros() - cpu_before;
        let final_rss_kib = current_rss_kib();
        let commands = commands.load(Ordering::Relaxed);
        for client in &clients {
            client.close();
        }
        super::scale::ScaleResult {
            buffers: std::env::var("QMP_PERF_SCALE_RX").ok().map(|_| {
                let options = scale_options();
                (options.rx_buffer_size, options.tx_buffer_size)
            }),
            connections: clients.len(),
            seconds: elapsed,
            commands,
            jobs: jobs.load(Ordering::Relaxed),
            events: events.load(Ordering::Relaxed),
            slowest_reply_ms: slowest_us.load(Ordering::Relaxed) as f64 / 1000.0,
            cpu_us_per_command: cpu as f64 / commands.max(1) as f64,
            baseline_rss_kib,
            connected_rss_kib,
            final_rss_kib,
            peak_rss_kib: peak_rss_kib(),
            load: String::new(),
        }
    });
    let mut result = result;
    result.load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    println!("{}", serde_json::to_string(&result).unwrap());
}
