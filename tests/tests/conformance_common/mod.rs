//! Helpers shared by the `conformance_*` tests: launching QEMU with generous timeouts, a
//! per-test watchdog, and a transcript recorder that puts events and replies in the
//! order the client received them, to compare with the captured vectors.
//!
//! The machine running these tests may be slow and shared: every wait here is bounded
//! but generous, and no test asserts on how long something took.
#![allow(dead_code, unreachable_pub)]

use core::time::Duration;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use qmp_std::qmp_core::commands::Command;
use qmp_std::{Client, ConnectOptions, Error, Event};
use qmp_tests::{
    expected_from_capture, launch, qemu_build, read_vector, split_lines, Launcher, QemuProcess,
    ServerKind,
};
use serde_json::{json, Value};

/// How long a test waits for something that should happen "now" (a reply, an event,
/// the end of a connection). Generous: the machine may be slow and shared.
pub const WAIT: Duration = Duration::from_secs(60);

/// Aborts the whole test binary if the guarded test runs longer than its limit, so no
/// test can hang whatever goes wrong.
pub struct Watchdog {
    done: mpsc::Sender<()>,
}

/// Starts a [`Watchdog`] for the test `name`.
pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (done, finished) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
            eprintln!("test {name} exceeded {limit:?}: aborting the test binary");
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

/// Connection options with generous timeouts for a loaded machine.
pub fn options() -> ConnectOptions {
    ConnectOptions::new()
        .connect_timeout(Some(Duration::from_secs(30)))
        .greeting_timeout(Some(Duration::from_secs(30)))
        .command_timeout(Some(Duration::from_secs(120)))
}

/// Starts a process (a missing binary fails the test, naming `scripts/setup.sh`).
pub fn start(launcher: Launcher) -> QemuProcess {
    launch(launcher.start_timeout(Duration::from_secs(120)))
}

/// A fresh `qemu-storage-daemon`.
pub fn qsd() -> QemuProcess {
    start(Launcher::new(ServerKind::StorageDaemon))
}

/// A fresh `qemu-system-x86_64 -M none`.
pub fn qsys() -> QemuProcess {
    start(Launcher::new(ServerKind::System))
}

/// A fresh `qemu-system-x86_64 -M pc -S -m 1024` (vector 31's machine: enough guest
/// memory for a slow `pmemsave`).
pub fn qsys_pc() -> QemuProcess {
    start(
        Launcher::new(ServerKind::System)
            .machine("pc")
            .args(["-S", "-m", "1024"]),
    )
}

/// Connects a blocking client to `process`'s primary monitor.
pub fn connect(process: &QemuProcess, options: ConnectOptions) -> Client {
    Client::connect_unix(process.socket_path(), options).unwrap_or_else(|error| {
        panic!(
            "cannot connect to {} at {}: {error}; its output: {}",
            process.kind(),
            process.socket_path().display(),
            process.output()
        )
    })
}

/// The size of the `return` value of qemu-storage-daemon 7.2.22's `query-qmp-schema`
/// (Debian 1:7.2+dfsg-7+deb12u18+b3, measured with a raw socket; 10.0.2's is the
/// 116,875-byte line of vector 07 less its envelope).
pub const SCHEMA_7_2_QSD_BYTES: usize = 110_330;

/// The `return` value of `query-qmp-schema` read straight off a fresh monitor of `kind`
/// with a raw socket, no client involved: what the client must hand over byte for byte.
pub fn raw_schema_return(kind: ServerKind) -> Vec<u8> {
    let server = start(Launcher::new(kind));
    let mut reader = qmp_tests::LineReader::new(qmp_tests::connect(&server));
    reader.expect_line(); // the greeting
    std::io::Write::write_all(
        reader.transport(),
        b"{\"execute\": \"qmp_capabilities\"}\r\n{\"execute\": \"query-qmp-schema\"}\r\n",
    )
    .unwrap();
    assert_eq!(reader.expect_line(), b"{\"return\": {}}\r\n");
    let line = reader.expect_line();
    let line = line.strip_suffix(b"\r\n").unwrap();
    qmp_std::qmp_core::json::RawJson::parse(line)
        .unwrap()
        .get("return")
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// Waits until `condition` holds, failing the test with `what` after [`WAIT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal to a process.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a valid pid");
    rustix::process::kill_process(pid, signal).expect("the signal is sent");
}

/// Gives a string the `'static` lifetime that `execute_with_callback` needs of typed commands
/// (tests only: the leak is a few bytes).
pub fn leak(text: impl Into<String>) -> &'static str {
    Box::leak(text.into().into_boxed_str())
}

/// An error reply as the vectors show it (`{"error": {"class", "desc"}}`); any other
/// failure fails the test.
pub fn error_value(error: &Error) -> Value {
    match error {
        Error::Qmp { class, desc } => json!({"error": {"class": class.name(), "desc": desc}}),
        other => panic!("expected a QMP error reply, got {other}"),
    }
}

/// An event as the vectors show it, without its timestamp.
pub fn event_value(event: &Event) -> Value {
    match event.data() {
        Some(_) => json!({"event": event.name(), "data": event.data_value()}),
        None => json!({"event": event.name()}),
    }
}

/// Records replies and events in the order the client received them.
///
/// Events reach an `on_any_event` callback and replies reach `execute_with_callback` callbacks;
/// both run on the client's one callback thread in arrival order, so the recorded list
/// is the order on the wire.
pub struct Transcript {
    client: Client,
    entries: Arc<Mutex<Vec<Value>>>,
}

impl Transcript {
    /// Starts recording every event of `client` (and the replies of
    /// [`Transcript::execute`]).
    pub fn record(client: &Client) -> Self {
        let entries = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&entries);
        client.on_any_event(move |event| sink.lock().unwrap().push(event_value(event)));
        Transcript {
            client: client.clone(),
            entries,
        }
    }

    /// Runs `command`, records its reply where it arrived and returns it
    /// (`{"return": ...}` or `{"error": ...}`).
    pub fn execute<C: Command + 'static>(&self, command: &C) -> Value {
        let sink = Arc::clone(&self.entries);
        let (done, reply) = mpsc::channel();
        self.client
            .execute_with_callback(command, move |result| {
                let entry = match result {
                    Ok(reply) => json!({"return": reply.raw().to_value()}),
                    Err(error) => error_value(&error),
                };
                sink.lock().unwrap().push(entry.clone());
                let _ = done.send(entry);
            })
            .unwrap_or_else(|error| panic!("{} not sent: {error}", C::NAME));
        reply
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no reply to {}", C::NAME))
    }

    /// Waits until `count` entries are recorded.
    pub fn wait_for(&self, count: usize) {
        wait_until(&format!("{count} transcript entries"), || {
            self.entries.lock().unwrap().len() >= count
        });
    }

    /// What was recorded so far.
    pub fn entries(&self) -> Vec<Value> {
        self.entries.lock().unwrap().clone()
    }
}

/// The server a vector was captured from (by the naming of `INDEX.md`: `qsys`
/// scenarios ran qemu-system-x86_64, `qga` ones qemu-ga, the rest qemu-storage-daemon).
pub fn vector_server(name: &str) -> ServerKind {
    if name.contains("qsys") {
        ServerKind::System
    } else if name.contains("qga") {
        ServerKind::GuestAgent
    } else {
        ServerKind::StorageDaemon
    }
}

/// What the server under test sends where vector `name` (captured from 10.0.2) has
/// its server bytes: the capture itself on 10.0.2, and on 7.2 the capture with the
/// version, the package string and the known differences of 7.2's replies
/// ([`qmp_tests::expected_from_capture`]).
pub fn expected_server_bytes(name: &str) -> Vec<u8> {
    let bytes = read_vector(&format!("{name}.s2c"));
    expected_from_capture(&bytes, qemu_build(vector_server(name)))
}

/// Server line `index` of vector `name` (a compact capture) as JSON, as the server
/// under test sends it ([`expected_server_bytes`]).
pub fn vector_message(name: &str, index: usize) -> Value {
    let bytes = expected_server_bytes(name);
    let line = split_lines(&bytes)
        .get(index)
        .unwrap_or_else(|| panic!("{name}.s2c has no line {index}"))
        .to_vec();
    serde_json::from_slice(&line).unwrap_or_else(|error| panic!("{name}.s2c:{index}: {error}"))
}

/// What the server sent in vector `name` after the greeting and the negotiation reply,
/// as the transcript records it: timestamps and ids removed; as the server under test
/// sends it ([`expected_server_bytes`]).
pub fn vector_transcript(name: &str) -> Vec<Value> {
    let bytes = expected_server_bytes(name);
    split_lines(&bytes)
        .into_iter()
        .skip(2)
        .map(|line| {
            let mut message: Value =
                serde_json::from_slice(line).unwrap_or_else(|error| panic!("{name}.s2c: {error}"));
            let object = message.as_object_mut().expect("every message is an object");
            object.remove("timestamp");
            object.remove("id");
            message
        })
        .collect()
}

/// Compares two transcripts entry by entry, showing both in full on a mismatch.
pub fn assert_transcripts_eq(got: &[Value], expected: &[Value]) {
    let show = |entries: &[Value]| {
        entries
            .iter()
            .map(|entry| format!("  {entry}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        got == expected,
        "transcript differs from the capture\ngot:\n{}\nexpected:\n{}",
        show(got),
        show(expected)
    );
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

/// A serial line to `agent`: the path of a pty's device, whose other end two threads
/// bridge to the agent's socket, so a client opens it as it would the host side of a
/// serial chardev. The returned file is the test's own handle on the device, which keeps
/// the line up while the client is not connected (on Linux, reads on a pty's other end
/// fail with `EIO` once nobody has its device open).
pub fn serial_line_to(agent: &QemuProcess) -> (std::path::PathBuf, std::fs::File) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::net::UnixStream;

    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&controller).expect("grantpt");
    unlockpt(&controller).expect("unlockpt");
    let name = ptsname(&controller, Vec::new()).expect("ptsname");
    let path = std::path::PathBuf::from(name.to_str().expect("pty path is UTF-8"));
    let device = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(&path)
        .expect("open the pty's device");
    let mut mode = rustix::termios::tcgetattr(&device).expect("tcgetattr");
    mode.make_raw();
    rustix::termios::tcsetattr(&device, rustix::termios::OptionalActions::Now, &mode)
        .expect("raw mode");
    let socket = UnixStream::connect(agent.socket_path()).expect("connect to qemu-ga");
    let controller = File::from(controller);
    let (mut from_line, mut to_line) = (controller.try_clone().expect("dup"), controller);
    let (mut from_agent, mut to_agent) = (socket.try_clone().expect("dup"), socket);
    thread::spawn(move || std::io::copy(&mut from_line, &mut to_agent));
    thread::spawn(move || std::io::copy(&mut from_agent, &mut to_line));
    (path, device)
}
