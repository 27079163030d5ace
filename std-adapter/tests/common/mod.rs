//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use core::time::Duration;
use std::sync::mpsc;
use std::thread;

use qmp_std::launch::{Launcher, QemuProcess, ServerKind};
use qmp_std::{Client, ConnectOptions};

/// Aborts the whole test binary if the guarded test runs longer than `limit`: no test
/// may hang, whatever goes wrong.
pub struct Watchdog {
    done: mpsc::Sender<()>,
}

pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (done, finished) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
            eprintln!("test {name} exceeded {limit:?}: aborting");
            std::process::exit(101);
        }
    });
    Watchdog { done }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.done.send(());
    }
}

/// Options with short timeouts for tests.
pub fn options() -> ConnectOptions {
    ConnectOptions::new()
        .connect_timeout(Some(Duration::from_secs(5)))
        .greeting_timeout(Some(Duration::from_secs(5)))
        .command_timeout(Some(Duration::from_secs(20)))
}

/// A fresh qemu-storage-daemon.
pub fn qsd() -> QemuProcess {
    Launcher::new(ServerKind::StorageDaemon)
        .spawn()
        .expect("qemu-storage-daemon starts (run scripts/setup.sh)")
}

/// A fresh qemu-storage-daemon and a client connected to it.
pub fn qsd_client() -> (QemuProcess, Client) {
    let qsd = qsd();
    let client = Client::connect_unix(qsd.socket_path(), options()).expect("connect to qsd");
    (qsd, client)
}

/// Sends a signal to a process.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("valid pid");
    rustix::process::kill_process(pid, signal).expect("signal sent");
}

/// Whether `result` says the server went away: the end of the stream, or a reset (a
/// server killed while our requests sat unread in its socket resets the connection).
#[allow(dead_code)]
pub fn server_gone<T>(result: &Result<T, qmp_std::Error>) -> bool {
    match result {
        Err(qmp_std::Error::Closed(qmp_std::CloseReason::EndOfStream { .. })) => true,
        Err(qmp_std::Error::ConnectionFailed(error)) => {
            error.kind() == std::io::ErrorKind::ConnectionReset
        }
        _ => false,
    }
}
