//! Helpers shared by the end-to-end tests: run the built `qmp` binary with a time
//! limit, start real QEMU processes, and a scripted fake QMP server for the replies
//! real QEMU cannot be made to give.

#![allow(dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qmp_std::launch::{Launcher, QemuProcess, ServerKind};

/// The `qmp` binary under test.
pub fn qmp_binary() -> &'static str {
    env!("CARGO_BIN_EXE_qmp")
}

/// What a finished `qmp` run produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, showing the output when it differs.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// The stdout parsed as one JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", self.stdout))
    }
}

/// A `qmp` command with a clean environment for the variables it reads.
pub fn qmp_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(qmp_binary());
    command
        .args(args)
        .env_remove("QMP_SOCKET")
        .env_remove("QMP_HISTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `qmp` with `args`, killing it after `limit`.
pub fn run_qmp<I, S>(args: I, limit: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let child = qmp_command(args).spawn().expect("start qmp");
    wait_output(child, limit)
}

/// Waits for a started `qmp` (stdout/stderr piped), killing it after `limit`.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for qmp") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = stdout.map(|t| t.join().unwrap()).unwrap_or_default();
            let stderr = stderr.map(|t| t.join().unwrap()).unwrap_or_default();
            panic!("qmp still running after {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: status.code().unwrap_or(-1),
        stdout: stdout.map(|t| t.join().unwrap()).unwrap_or_default(),
        stderr: stderr.map(|t| t.join().unwrap()).unwrap_or_default(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// The usual limit for one `qmp` run.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A qemu-storage-daemon with `extra` more monitors.
pub fn storage_daemon(extra: usize) -> QemuProcess {
    Launcher::new(ServerKind::StorageDaemon)
        .extra_monitors(extra)
        .spawn()
        .expect("start qemu-storage-daemon")
}

/// A qemu-system-x86_64 -M none with a TCP monitor and `extra` more Unix monitors.
pub fn system(extra: usize) -> QemuProcess {
    Launcher::new(ServerKind::System)
        .extra_monitors(extra)
        .tcp_monitor(true)
        .spawn()
        .expect("start qemu-system-x86_64")
}

/// `["--socket", path]`.
pub fn socket_args(path: &Path) -> Vec<String> {
    vec![String::from("--socket"), path.display().to_string()]
}

/// A fake QMP server on a Unix socket: greets, accepts `qmp_capabilities`, then
/// answers every command with `reply(name)` (`None`: never answer). One client.
pub struct FakeServer {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(reply: impl Fn(&str) -> Option<String> + Send + 'static) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let thread = std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            serve(stream, &reply);
        });
        Self {
            path,
            _dir: dir,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // Unblock a server still waiting for its client.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: UnixStream, reply: &dyn Fn(&str) -> Option<String>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "fake"}, "capabilities": []}}"#;
    let _ = writer.write_all(format!("{greeting}\r\n").as_bytes());
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        let Ok(request) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let name = request["execute"].as_str().unwrap_or_default().to_owned();
        let id = request
            .get("id")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let body = if name == "qmp_capabilities" {
            Some(String::from(r#""return": {}"#))
        } else {
            reply(&name)
        };
        if let Some(body) = body {
            let message = format!("{{{body}, \"id\": {id}}}\r\n");
            if writer.write_all(message.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Waits (at most 20 s) until a client is connected to the monitor on `other`, as
/// `query-chardev` on the monitor at `main` shows it, then a little longer for the
/// client to finish negotiating and subscribe.
pub fn wait_for_client(main: &Path, other: &Path) {
    let other = other.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = run_qmp(
            ["--socket", &main.display().to_string(), "query-chardev"],
            LIMIT,
        );
        output.assert_code(0);
        let connected = output.json().as_array().unwrap().iter().any(|chardev| {
            let filename = chardev["filename"].as_str().unwrap_or_default();
            filename.contains(&other) && !filename.starts_with("disconnected:")
        });
        if connected {
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        assert!(Instant::now() < deadline, "no client connected to {other}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fake QMP server that greets with `greeting_package` as its package string,
/// accepts `qmp_capabilities`, and answers each command with the raw lines
/// `lines(name)` (each sent as it is, `{id}` replaced by the request's id): replies,
/// events, anything. Several clients, one after another.
pub struct ScriptedServer {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    thread: Option<JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ScriptedServer {
    pub fn start(
        greeting_package: &str,
        lines: impl Fn(&str) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scripted.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let greeting = format!(
            r#"{{"QMP": {{"version": {{"qemu": {{"micro": 2, "minor": 0, "major": 10}}, "package": {}}}, "capabilities": []}}}}"#,
            serde_json::Value::String(greeting_package.to_owned())
        );
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { return };
                serve_scripted(stream, &greeting, &lines);
            }
        });
        Self {
            path,
            _dir: dir,
            thread: Some(thread),
            stop,
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_scripted(stream: UnixStream, greeting: &str, lines: &dyn Fn(&str) -> Vec<String>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let _ = writer.write_all(format!("{greeting}\r\n").as_bytes());
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        let Ok(request) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let name = request["execute"].as_str().unwrap_or_default().to_owned();
        let id = request
            .get("id")
            .cloned()
            .unwrap_or(serde_json::Value::Null)
            .to_string();
        let replies = if name == "qmp_capabilities" {
            vec![String::from(r#"{"return": {}, "id": {id}}"#)]
        } else {
            lines(&name)
        };
        for reply in replies {
            let message = format!("{}\r\n", reply.replace("{id}", &id));
            if writer.write_all(message.as_bytes()).is_err() {
                return;
            }
        }
    }
}
