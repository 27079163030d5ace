//! Starting private QEMU processes to talk to: `qemu-storage-daemon`,
//! `qemu-system-x86_64` and `qemu-ga`.
//!
//! Each [`QemuProcess`] lives in its own temporary directory (monitor sockets, log,
//! guest-agent state). [`Launcher::spawn`] returns only once the monitor socket
//! accepts connections, or fails with the process's stderr in the error. Dropping the
//! process kills it (`SIGKILL`), reaps it and removes the directory.
//!
//! ```no_run
//! use std::time::Duration;
//! use qmp_std::launch::{Launcher, ServerKind};
//!
//! let qsd = Launcher::new(ServerKind::StorageDaemon).spawn()?;
//! let transport = qsd.connect(Some(Duration::from_secs(5)))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The binaries are found on `PATH` under their usual names; the environment variables
//! `QMP_QSD`, `QMP_QEMU_SYSTEM` and `QMP_QGA` override them.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Instant;

use tempfile::TempDir;

use crate::transport::Transport;

/// Which QEMU program to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerKind {
    /// `qemu-storage-daemon`: block layer and QMP only, no guest.
    StorageDaemon,
    /// `qemu-system-x86_64`, by default `-M none` (no guest hardware at all).
    System,
    /// `qemu-ga`, the guest agent, run on this host and listening on a Unix socket.
    GuestAgent,
}

impl ServerKind {
    /// The program name looked up on `PATH` when no override is set.
    pub fn default_program(self) -> &'static str {
        match self {
            Self::StorageDaemon => "qemu-storage-daemon",
            Self::System => "qemu-system-x86_64",
            Self::GuestAgent => "qemu-ga",
        }
    }

    /// The environment variable that overrides the program path.
    pub fn env_var(self) -> &'static str {
        match self {
            Self::StorageDaemon => "QMP_QSD",
            Self::System => "QMP_QEMU_SYSTEM",
            Self::GuestAgent => "QMP_QGA",
        }
    }

    /// The program to run: the environment override if set and not empty, else
    /// [`ServerKind::default_program`] as found on `PATH`, else in `/usr/sbin` (where
    /// Debian puts `qemu-ga`, often not on a non-root `PATH`), else the bare name.
    pub fn program(self) -> PathBuf {
        if let Some(path) = std::env::var_os(self.env_var()).filter(|path| !path.is_empty()) {
            return PathBuf::from(path);
        }
        let name = self.default_program();
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
            .unwrap_or(false);
        let in_sbin = Path::new("/usr/sbin").join(name);
        if !on_path && in_sbin.is_file() {
            in_sbin
        } else {
            PathBuf::from(name)
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.default_program())
    }
}

/// Why a QEMU process could not be started or waited for.
#[derive(Debug)]
#[non_exhaustive]
pub enum LaunchError {
    /// The program does not exist (QEMU is not installed, or the override is wrong).
    ProgramNotFound {
        /// What was run.
        program: PathBuf,
        /// The environment variable that can point at another binary.
        env_var: &'static str,
    },
    /// Spawning failed for another reason.
    Spawn {
        /// What was run.
        program: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Preparing the private directory or its files failed.
    Setup {
        /// What was being prepared.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The socket path would not fit in `sockaddr_un` (108 bytes); set `TMPDIR` shorter.
    SocketPathTooLong {
        /// The path that was too long.
        path: PathBuf,
    },
    /// The requested option does not exist for this program.
    Unsupported {
        /// The program asked for.
        kind: ServerKind,
        /// The option it lacks.
        option: &'static str,
    },
    /// The process exited before its monitor accepted connections.
    ExitedEarly {
        /// What was run.
        program: PathBuf,
        /// How it exited.
        status: ExitStatus,
        /// Everything it wrote to stderr (and stdout, unless stdout was the monitor).
        stderr: String,
    },
    /// The monitor did not accept connections within the start timeout.
    NotReady {
        /// What was run.
        program: PathBuf,
        /// How long we waited.
        waited: Duration,
        /// What it wrote to stderr so far.
        stderr: String,
    },
    /// [`QemuProcess::wait_exit`] ran out of time.
    ExitTimeout {
        /// What was run.
        program: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// Waiting for or signalling the process failed.
    Wait {
        /// The underlying error.
        source: io::Error,
    },
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProgramNotFound { program, env_var } => write!(
                f,
                "{} not found: install QEMU 10.0.2 (run `bash scripts/setup.sh` in the qmp \
                 repository) or set {env_var} to the binary",
                program.display()
            ),
            // Variants with a `source()` do not repeat it here (a reporter that walks the
            // chain would print it twice).
            Self::Spawn { program, .. } => write!(f, "cannot start {}", program.display()),
            Self::Setup { what, .. } => write!(f, "cannot prepare {what}"),
            Self::SocketPathTooLong { path } => write!(
                f,
                "socket path {} is {} bytes, longer than the 107 a unix socket allows \
                 (set TMPDIR to a shorter directory)",
                path.display(),
                path.as_os_str().len()
            ),
            Self::Unsupported { kind, option } => write!(f, "{kind} has no {option}"),
            Self::ExitedEarly {
                program,
                status,
                stderr,
            } => write!(
                f,
                "{} exited ({status}) before its monitor was ready; its output: {}",
                program.display(),
                output_or_none(stderr)
            ),
            Self::NotReady {
                program,
                waited,
                stderr,
            } => write!(
                f,
                "{} did not accept monitor connections within {} ms; its output: {}",
                program.display(),
                waited.as_millis(),
                output_or_none(stderr)
            ),
            Self::ExitTimeout { program, waited } => write!(
                f,
                "{} still running after {} ms",
                program.display(),
                waited.as_millis()
            ),
            Self::Wait { .. } => f.write_str("cannot wait for the process"),
        }
    }
}

fn output_or_none(output: &str) -> &str {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        "(nothing)"
    } else {
        trimmed
    }
}

impl core::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } | Self::Setup { source, .. } | Self::Wait { source } => {
                Some(source)
            }
            _ => None,
        }
    }
}

impl From<LaunchError> for io::Error {
    fn from(error: LaunchError) -> Self {
        let kind = match &error {
            LaunchError::ProgramNotFound { .. } => io::ErrorKind::NotFound,
            LaunchError::NotReady { .. } | LaunchError::ExitTimeout { .. } => {
                io::ErrorKind::TimedOut
            }
            LaunchError::Unsupported { .. } => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// The RPCs a launched guest agent allows unless told otherwise: harmless ones only, as
/// the agent runs on this host, not in a guest.
pub const DEFAULT_QGA_RPCS: &[&str] = &[
    "guest-sync",
    "guest-sync-delimited",
    "guest-info",
    "guest-ping",
];

/// Longest path a Unix socket address can hold (without the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Options for starting a [`QemuProcess`]; finish with [`Launcher::spawn`].
///
/// By default: one monitor on a Unix socket, compact output, `-M none` for
/// `qemu-system-x86_64`, [`DEFAULT_QGA_RPCS`] for `qemu-ga`, a 30 s start timeout.
#[derive(Debug, Clone)]
pub struct Launcher {
    kind: ServerKind,
    program: Option<PathBuf>,
    pretty: bool,
    extra_monitors: usize,
    tcp_monitor: bool,
    stdio_monitor: bool,
    machine: String,
    args: Vec<OsString>,
    allowed_rpcs: Vec<String>,
    agent_device: Option<PathBuf>,
    start_timeout: Duration,
    monitors_only: bool,
}

impl Launcher {
    /// Default options for `kind`.
    pub fn new(kind: ServerKind) -> Self {
        Self {
            kind,
            program: None,
            pretty: false,
            extra_monitors: 0,
            tcp_monitor: false,
            stdio_monitor: false,
            machine: String::from("none"),
            args: Vec::new(),
            allowed_rpcs: DEFAULT_QGA_RPCS
                .iter()
                .map(|rpc| String::from(*rpc))
                .collect(),
            agent_device: None,
            start_timeout: Duration::from_secs(30),
            monitors_only: false,
        }
    }

    /// Runs this binary instead of [`ServerKind::program`].
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Asks the primary monitor for pretty-printed (multi-line) JSON (QMP only).
    pub fn pretty(mut self, pretty: bool) -> Self {
        self.pretty = pretty;
        self
    }

    /// Adds `count` more monitors, each on its own Unix socket
    /// ([`QemuProcess::extra_socket_paths`]) (QMP only).
    pub fn extra_monitors(mut self, count: usize) -> Self {
        self.extra_monitors = count;
        self
    }

    /// Adds a monitor listening on a free TCP port of 127.0.0.1
    /// ([`QemuProcess::tcp_address`]) (QMP only).
    pub fn tcp_monitor(mut self, enabled: bool) -> Self {
        self.tcp_monitor = enabled;
        self
    }

    /// Adds a monitor on the process's stdin/stdout
    /// ([`QemuProcess::take_stdio_transport`]) (QMP only).
    pub fn stdio_monitor(mut self, enabled: bool) -> Self {
        self.stdio_monitor = enabled;
        self
    }

    /// The machine type for `qemu-system-x86_64` (`-M`), `"none"` by default; e.g.
    /// `"pc"` together with `.args(["-S", "-m", "1024"])`.
    pub fn machine(mut self, machine: impl Into<String>) -> Self {
        self.machine = machine.into();
        self
    }

    /// Appends one command-line argument after the generated ones.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends command-line arguments after the generated ones.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The RPCs `qemu-ga` allows (`--allow-rpcs`); all others answer "disabled". A
    /// `qemu-ga` older than 8.0, which has no `--allow-rpcs`, gets `--block-rpcs` with
    /// every other RPC it lists instead: the same policy.
    pub fn allow_rpcs<I, S>(mut self, rpcs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_rpcs = rpcs.into_iter().map(Into::into).collect();
        self
    }

    /// Runs `qemu-ga` on a serial device (`-m isa-serial -p DEVICE`, e.g. the slave side
    /// of a pty) instead of a Unix socket; talk to it through the other side with
    /// [`Transport::from_device`]. [`QemuProcess::socket_path`] is then this device, and
    /// the agent counts as ready once it has the device open.
    pub fn agent_serial_device(mut self, device: impl Into<PathBuf>) -> Self {
        self.agent_device = Some(device.into());
        self
    }

    /// Adds nothing to the command line but the monitors (and, for `qemu-ga`, its
    /// socket, state directory and pid file in the private directory): no `-M`,
    /// `-nodefaults`, `-display none` or `-accel tcg` for `qemu-system-x86_64`, no
    /// `--allow-rpcs` for `qemu-ga`. For running someone's own QEMU command line, given
    /// with [`Launcher::program`] and [`Launcher::args`], as it is (the `qmp` tool's
    /// `--launch`).
    pub fn monitors_only(mut self, enabled: bool) -> Self {
        self.monitors_only = enabled;
        self
    }

    /// How long [`Launcher::spawn`] waits for the monitor to accept connections.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the process and waits until its monitor (and TCP monitor, if any) accepts
    /// connections.
    ///
    /// # Errors
    /// See [`LaunchError`]; a missing binary is [`LaunchError::ProgramNotFound`].
    pub fn spawn(self) -> Result<QemuProcess, LaunchError> {
        let is_agent = self.kind == ServerKind::GuestAgent;
        if !is_agent && self.agent_device.is_some() {
            return Err(LaunchError::Unsupported {
                kind: self.kind,
                option: "serial device mode",
            });
        }
        if is_agent {
            let unsupported = [
                (self.pretty, "pretty monitor"),
                (self.extra_monitors > 0, "extra monitors"),
                (self.tcp_monitor, "tcp monitor"),
                (self.stdio_monitor, "stdio monitor"),
            ];
            if let Some((_, option)) = unsupported.iter().find(|(asked, _)| *asked) {
                return Err(LaunchError::Unsupported {
                    kind: self.kind,
                    option,
                });
            }
        }
        let program = self.program.clone().unwrap_or_else(|| self.kind.program());
        let dir = tempfile::Builder::new()
            .prefix("qmp-")
            .tempdir()
            .map_err(|source| LaunchError::Setup {
                what: "a temporary directory",
                source,
            })?;
        let socket_path = match &self.agent_device {
            Some(device) => device.clone(),
            None => dir.path().join("monitor.sock"),
        };
        let extra_socket_paths: Vec<PathBuf> = (1..=self.extra_monitors)
            .map(|index| dir.path().join(format!("monitor{index}.sock")))
            .collect();
        for path in core::iter::once(&socket_path).chain(&extra_socket_paths) {
            if path.as_os_str().len() > MAX_SOCKET_PATH {
                return Err(LaunchError::SocketPathTooLong { path: path.clone() });
            }
        }
        let tcp_address = if self.tcp_monitor {
            Some(free_local_port().map_err(|source| LaunchError::Setup {
                what: "a free tcp port",
                source,
            })?)
        } else {
            None
        };

        let log_path = dir.path().join("output.log");
        let log = File::create(&log_path).map_err(|source| LaunchError::Setup {
            what: "the output log",
            source,
        })?;
        let mut command = Command::new(&program);
        match self.kind {
            ServerKind::StorageDaemon | ServerKind::System => {
                self.add_monitor_args(&mut command, &socket_path, &extra_socket_paths, tcp_address);
            }
            ServerKind::GuestAgent => {
                self.add_agent_args(&mut command, dir.path(), &socket_path)?;
            }
        }
        command.args(&self.args);
        if self.stdio_monitor {
            command.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            let log_copy = log.try_clone().map_err(|source| LaunchError::Setup {
                what: "the output log",
                source,
            })?;
            command.stdin(Stdio::null()).stdout(log_copy);
        }
        command.stderr(log);

        let mut child = command.spawn().map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                LaunchError::ProgramNotFound {
                    program: program.clone(),
                    env_var: self.kind.env_var(),
                }
            } else {
                LaunchError::Spawn {
                    program: program.clone(),
                    source,
                }
            }
        })?;
        let stdio = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => Some((stdin, stdout)),
            _ => None,
        };
        let mut process = QemuProcess {
            kind: self.kind,
            program,
            child,
            exit_status: None,
            serial_device: self.agent_device.is_some(),
            socket_path,
            extra_socket_paths,
            tcp_address,
            stdio,
            log_path,
            dir,
        };
        process.wait_until_ready(self.start_timeout)?;
        Ok(process)
    }

    fn add_monitor_args(
        &self,
        command: &mut Command,
        socket_path: &Path,
        extra_socket_paths: &[PathBuf],
        tcp_address: Option<SocketAddr>,
    ) {
        let system = self.kind == ServerKind::System;
        if system && !self.monitors_only {
            command.args(["-M", &self.machine, "-nodefaults", "-display", "none"]);
            command.args(["-accel", "tcg"]);
        }
        let (chardev_flag, monitor_flag, control) = if system {
            ("-chardev", "-mon", ",mode=control")
        } else {
            ("--chardev", "--monitor", "")
        };
        let mut add_monitor = |chardev: OsString, id: &str, pretty: bool| {
            let pretty = if pretty { ",pretty=on" } else { "" };
            command.arg(chardev_flag).arg(chardev);
            command
                .arg(monitor_flag)
                .arg(format!("chardev={id}{control}{pretty}"));
        };
        add_monitor(socket_chardev(socket_path, "m0"), "m0", self.pretty);
        for (index, path) in extra_socket_paths.iter().enumerate() {
            let id = format!("m{}", index + 1);
            add_monitor(socket_chardev(path, &id), &id, false);
        }
        if let Some(address) = tcp_address {
            let chardev = format!(
                "socket,host={},port={},server=on,wait=off,id=mtcp",
                address.ip(),
                address.port()
            );
            add_monitor(chardev.into(), "mtcp", false);
        }
        if self.stdio_monitor {
            add_monitor("stdio,id=mstdio".into(), "mstdio", false);
        }
    }

    fn add_agent_args(
        &self,
        command: &mut Command,
        dir: &Path,
        socket_path: &Path,
    ) -> Result<(), LaunchError> {
        let state_dir = dir.join("qga-state");
        std::fs::create_dir(&state_dir).map_err(|source| LaunchError::Setup {
            what: "the guest agent state directory",
            source,
        })?;
        let config = dir.join("qga.conf");
        File::create(&config).map_err(|source| LaunchError::Setup {
            what: "the guest agent config file",
            source,
        })?;
        command.env("QGA_CONF", &config);
        let method = if self.agent_device.is_some() {
            "isa-serial"
        } else {
            "unix-listen"
        };
        command.args(["-m", method, "-p"]).arg(socket_path);
        command.arg("-t").arg(&state_dir);
        command.arg("-f").arg(dir.join("qga.pid"));
        if !self.monitors_only {
            let program = self.program.clone().unwrap_or_else(|| self.kind.program());
            match agent_rpc_options(&program)? {
                AgentRpcOptions::Allow => {
                    command.arg(format!("--allow-rpcs={}", self.allowed_rpcs.join(",")));
                }
                AgentRpcOptions::BlockOnly(known) => {
                    let blocked: Vec<&str> = known
                        .iter()
                        .map(String::as_str)
                        .filter(|rpc| !self.allowed_rpcs.iter().any(|allowed| allowed == rpc))
                        .collect();
                    if !blocked.is_empty() {
                        command.arg(format!("--block-rpcs={}", blocked.join(",")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// How a `qemu-ga` takes the RPCs to allow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AgentRpcOptions {
    /// `--allow-rpcs` (qemu-ga 8.0 and later).
    Allow,
    /// Only `--block-rpcs` (7.2 and earlier, which reject `--allow-rpcs`): every RPC it
    /// has (`--block-rpcs=help`), so all but the allowed ones can be blocked.
    BlockOnly(Vec<String>),
}

/// Asks `program` (a `qemu-ga`) once, from its `--help`, whether it has `--allow-rpcs`;
/// if not, which RPCs it has. A program that cannot be run counts as having it (starting
/// it then fails with the reason).
fn agent_rpc_options(program: &Path) -> Result<AgentRpcOptions, LaunchError> {
    use std::sync::{Mutex, PoisonError};
    static PROBED: Mutex<Vec<(PathBuf, AgentRpcOptions)>> = Mutex::new(Vec::new());
    let cached = PROBED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(path, _)| path == program)
        .map(|(_, options)| options.clone());
    if let Some(options) = cached {
        return Ok(options);
    }
    let quiet = |arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
    };
    let Ok(help) = quiet("--help") else {
        return Ok(AgentRpcOptions::Allow);
    };
    let options = if String::from_utf8_lossy(&help.stdout).contains("--allow-rpcs") {
        AgentRpcOptions::Allow
    } else {
        let known: Vec<String> = quiet("--block-rpcs=help")
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        // Without the list, nothing could be blocked: refuse rather than allow all.
        if known.is_empty() {
            return Err(LaunchError::Unsupported {
                kind: ServerKind::GuestAgent,
                option: "RPC allowlist (neither --allow-rpcs nor --block-rpcs=help)",
            });
        }
        AgentRpcOptions::BlockOnly(known)
    };
    PROBED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((program.to_path_buf(), options.clone()));
    Ok(options)
}

/// `socket,path=P,server=on,wait=off,id=ID` with commas in `P` doubled, as QEMU's
/// option syntax requires.
fn socket_chardev(path: &Path, id: &str) -> OsString {
    let mut chardev = OsString::from("socket,path=");
    chardev.push(escape_commas(path.as_os_str()));
    chardev.push(format!(",server=on,wait=off,id={id}"));
    chardev
}

fn escape_commas(value: &OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut escaped = Vec::with_capacity(value.len());
    for &byte in value.as_bytes() {
        escaped.push(byte);
        if byte == b',' {
            escaped.push(b',');
        }
    }
    OsString::from_vec(escaped)
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_local_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Whether the monitor socket at `path` is ready for a client, checked once, waiting
/// at most until `deadline`.
///
/// For the guest agent (`kind` [`ServerKind::GuestAgent`], which sends nothing unasked):
/// whether something listens on `path`. For a QMP server: whether a probe connection
/// receives a whole greeting, and the server has then closed its end of the probe.
/// Listening alone is not enough: QEMU 10.0.2 listens before its monitor is fully set
/// up (a client connecting then can be greeted twice), and a client connecting while
/// QEMU still tears down an earlier connection can be accepted and dropped at once.
/// [`Launcher::spawn`] waits for this on every monitor; use it for a QEMU started
/// another way. Linux only (reads `/proc/net/unix`).
///
/// ```no_run
/// use std::path::Path;
/// use std::time::{Duration, Instant};
/// use qmp_std::launch::{monitor_ready, ServerKind};
///
/// let socket = Path::new("/run/vm1/qmp.sock");
/// let deadline = Instant::now() + Duration::from_secs(10);
/// while !monitor_ready(socket, ServerKind::System, deadline) {
///     assert!(Instant::now() < deadline, "QEMU did not open its monitor");
///     std::thread::sleep(Duration::from_millis(10));
/// }
/// ```
pub fn monitor_ready(path: &Path, kind: ServerKind, deadline: Instant) -> bool {
    if !listening_unix_sockets()
        .iter()
        .any(|listener| listener == path)
    {
        return false;
    }
    if kind == ServerKind::GuestAgent {
        return true;
    }
    let probe_timeout = deadline.saturating_duration_since(Instant::now());
    Transport::connect_unix(path, Some(probe_timeout))
        .is_ok_and(|probe| reads_whole_greeting(probe, deadline))
        && probe_connection_closed(path, deadline)
}

/// Reads from `probe` until one whole message has come, and tells whether it is a QMP
/// greeting (the only thing a QMP server sends unasked). The message's end is found by
/// the core's framer, whatever its layout.
fn reads_whole_greeting(mut probe: Transport, deadline: Instant) -> bool {
    use qmp_core::json::{Framer, Item};
    use qmp_core::message::Message;
    // Greetings are about 150 bytes; a larger first message is no greeting.
    let mut framer = Framer::with_buffer(vec![0u8; 4096]);
    loop {
        let window = framer.window();
        if window.is_empty() {
            return false;
        }
        match probe.read_with_deadline(window, Some(deadline)) {
            Ok(0) | Err(_) => return false,
            Ok(n) => framer.commit(n),
        }
        if let Some(item) = framer.next_item() {
            return matches!(item, Item::Frame(frame)
                if matches!(Message::classify(frame.value()), Message::Greeting(_)));
        }
    }
}

/// Waits (until `deadline`) for the server to close its end of our probe connection to
/// `path`. A client connecting while QEMU is still tearing the probe's connection down
/// can be accepted and dropped at once (seen under load as an end of stream before the
/// greeting); once QEMU's accepted socket is gone from `/proc/net/unix`, its socket
/// chardev takes the next client normally.
fn probe_connection_closed(path: &Path, deadline: Instant) -> bool {
    loop {
        if connected_unix_sockets(path) == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How many connected (not listening) Unix stream sockets are bound to `path`: a
/// server's accepted connections (`St` 03, `SS_CONNECTED`, in `/proc/net/unix`).
fn connected_unix_sockets(path: &Path) -> usize {
    /// `SS_CONNECTED`.
    const CONNECTED: &str = "03";
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let state = fields.nth(5);
            let bound = fields.nth(1);
            state == Some(CONNECTED) && bound.is_some_and(|bound| Path::new(bound) == path)
        })
        .count()
}

/// The paths of all listening Unix stream sockets in this network namespace, from
/// `/proc/net/unix` (columns: Num RefCount Protocol Flags Type St Inode Path).
fn listening_unix_sockets() -> Vec<PathBuf> {
    /// `__SO_ACCEPTCON`: the socket is listening.
    const ACCEPTING: &str = "00010000";
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.splitn(8, ' ').filter(|field| !field.is_empty());
            let flags = fields.nth(3)?;
            let path = line.split_whitespace().nth(7)?;
            (flags == ACCEPTING).then(|| PathBuf::from(path))
        })
        .collect()
}

/// Whether some socket listens on TCP `port` (IPv4 or IPv6), from `/proc/net/tcp{,6}`
/// (columns: sl local_address rem_address st ...; port in hex; state 0A is LISTEN).
fn is_listening_tcp(port: u16) -> bool {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let mut fields = line.split_whitespace();
                let local = fields.nth(1).unwrap_or_default();
                let state = fields.nth(1).unwrap_or_default();
                local.ends_with(&port) && state == "0A"
            })
    })
}

/// A running QEMU process in a private directory; killed and cleaned up on drop.
#[derive(Debug)]
pub struct QemuProcess {
    kind: ServerKind,
    program: PathBuf,
    child: Child,
    exit_status: Option<ExitStatus>,
    /// `qemu-ga` on a serial device: `socket_path` is that device.
    serial_device: bool,
    socket_path: PathBuf,
    extra_socket_paths: Vec<PathBuf>,
    tcp_address: Option<SocketAddr>,
    stdio: Option<(ChildStdin, ChildStdout)>,
    log_path: PathBuf,
    // Last, so the directory is removed after everything else is dropped.
    dir: TempDir,
}

impl QemuProcess {
    /// Starts a `qemu-storage-daemon` with default options (see [`Launcher`]).
    ///
    /// # Errors
    /// See [`Launcher::spawn`].
    pub fn storage_daemon() -> Result<Self, LaunchError> {
        Launcher::new(ServerKind::StorageDaemon).spawn()
    }

    /// Starts a `qemu-system-x86_64 -M none` with default options (see [`Launcher`]).
    ///
    /// # Errors
    /// See [`Launcher::spawn`].
    pub fn system() -> Result<Self, LaunchError> {
        Launcher::new(ServerKind::System).spawn()
    }

    /// Starts a `qemu-ga` on a Unix socket with default options (see [`Launcher`]).
    ///
    /// # Errors
    /// See [`Launcher::spawn`].
    pub fn guest_agent() -> Result<Self, LaunchError> {
        Launcher::new(ServerKind::GuestAgent).spawn()
    }

    fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), LaunchError> {
        let started = Instant::now();
        // Too far away to represent (`Duration::MAX`): a year is as good as no limit.
        let deadline = started
            .checked_add(timeout)
            .unwrap_or_else(|| started + Duration::from_secs(86_400 * 365));
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_exit_status()? {
                return Err(LaunchError::ExitedEarly {
                    program: self.program.clone(),
                    status,
                    stderr: self.output(),
                });
            }
            let listening = if self.serial_device {
                self.has_open(&self.socket_path)
            } else {
                let listening = listening_unix_sockets();
                core::iter::once(&self.socket_path)
                    .chain(&self.extra_socket_paths)
                    .all(|path| listening.iter().any(|listener| listener == path))
            };
            let tcp_ready = self
                .tcp_address
                .is_none_or(|address| is_listening_tcp(address.port()));
            if listening && tcp_ready && self.greets_on_every_monitor(deadline) {
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(LaunchError::NotReady {
                    program: self.program.clone(),
                    waited,
                    stderr: self.output(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// For QMP servers: whether a probe connection to every monitor socket receives a
    /// whole greeting (always true for the guest agent, which sends none).
    ///
    /// Listening is not enough. QEMU 10.0.2 listens before its monitor is fully set up,
    /// and a client that connects in that window can receive the greeting twice; a
    /// probe that connects and closes without reading can also leave its greeting to be
    /// flushed into the next client's connection. Both were seen under load (a few runs
    /// in a hundred). A probe that reads its whole greeting before closing leaves the
    /// monitor in its steady state: no duplicate was seen in 600 runs.
    fn greets_on_every_monitor(&self, deadline: Instant) -> bool {
        if self.kind == ServerKind::GuestAgent {
            return true;
        }
        let unix = core::iter::once(&self.socket_path)
            .chain(&self.extra_socket_paths)
            .all(|path| monitor_ready(path, self.kind, deadline));
        unix && self.tcp_address.is_none_or(|address| {
            let probe_timeout = deadline.saturating_duration_since(Instant::now());
            Transport::connect_tcp(address, Some(probe_timeout))
                .is_ok_and(|probe| reads_whole_greeting(probe, deadline))
        })
    }

    /// Whether the process has `path` open (read from `/proc/PID/fd`).
    fn has_open(&self, path: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())) else {
            return false;
        };
        entries
            .filter_map(Result::ok)
            .any(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target == path))
    }

    /// Which program this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The binary that was started.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The private temporary directory (a place for disk images and other scratch files;
    /// removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The primary monitor's Unix socket (for `qemu-ga`, the agent's socket, or its
    /// device with [`Launcher::agent_serial_device`]).
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The sockets of the monitors added with [`Launcher::extra_monitors`].
    pub fn extra_socket_paths(&self) -> &[PathBuf] {
        &self.extra_socket_paths
    }

    /// The address of the monitor added with [`Launcher::tcp_monitor`].
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp_address
    }

    /// Connects to the primary monitor's Unix socket.
    ///
    /// # Errors
    /// See [`Transport::connect_unix`].
    pub fn connect(&self, timeout: Option<Duration>) -> io::Result<Transport> {
        Transport::connect_unix(&self.socket_path, timeout)
    }

    /// Takes the stdio monitor added with [`Launcher::stdio_monitor`] as a transport;
    /// `None` if there is none or it was taken already.
    ///
    /// # Errors
    /// See [`Transport::from_child_stdio`].
    pub fn take_stdio_transport(&mut self) -> Option<io::Result<Transport>> {
        self.stdio
            .take()
            .map(|(stdin, stdout)| Transport::from_child_stdio(stdin, stdout))
    }

    /// Everything the process wrote to stderr (and to stdout, unless stdout is the
    /// stdio monitor) so far, lossily decoded.
    pub fn output(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Sends `SIGKILL` (a crash, as far as clients can tell). Does nothing if the
    /// process has already exited.
    ///
    /// # Errors
    /// If the signal cannot be sent.
    pub fn kill(&mut self) -> Result<(), LaunchError> {
        if self.try_exit_status()?.is_none() {
            self.child
                .kill()
                .map_err(|source| LaunchError::Wait { source })?;
        }
        Ok(())
    }

    /// Sends `SIGTERM` (an orderly shutdown request). Does nothing if the process has
    /// already exited.
    ///
    /// # Errors
    /// If the signal cannot be sent.
    pub fn terminate(&mut self) -> Result<(), LaunchError> {
        if self.try_exit_status()?.is_none() {
            let pid = rustix::process::Pid::from_child(&self.child);
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).map_err(|errno| {
                LaunchError::Wait {
                    source: errno.into(),
                }
            })?;
        }
        Ok(())
    }

    /// The exit status if the process has exited (reaping it), without waiting.
    ///
    /// # Errors
    /// If `waitpid(2)` fails.
    pub fn try_exit_status(&mut self) -> Result<Option<ExitStatus>, LaunchError> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .map_err(|source| LaunchError::Wait { source })?;
        }
        Ok(self.exit_status)
    }

    /// Waits up to `timeout` for the process to exit and returns its status.
    ///
    /// # Errors
    /// [`LaunchError::ExitTimeout`] if it is still running then (it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, LaunchError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_exit_status()? {
                return Ok(status);
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(LaunchError::ExitTimeout {
                    program: self.program.clone(),
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        if self.exit_status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_found_in_proc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("listening.sock");
        assert!(!listening_unix_sockets().contains(&path));
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(listening_unix_sockets().contains(&path));
        // A connected (not listening) socket does not count.
        let (_a, _b) = std::os::unix::net::UnixStream::pair().unwrap();

        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert!(is_listening_tcp(port));
    }

    #[test]
    fn accepted_connections_are_counted_until_the_server_closes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(connected_unix_sockets(&path), 0);
        let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(connected_unix_sockets(&path), 1);
        drop(client);
        // The client is gone but the server has not closed its end yet.
        assert_eq!(connected_unix_sockets(&path), 1);
        assert!(!probe_connection_closed(
            &path,
            Instant::now() + Duration::from_millis(20)
        ));
        drop(accepted);
        assert!(probe_connection_closed(
            &path,
            Instant::now() + Duration::from_secs(5)
        ));
    }

    #[test]
    fn commas_are_doubled_for_qemu_options() {
        let chardev = socket_chardev(Path::new("/tmp/a,b/s"), "m0");
        assert_eq!(chardev, "socket,path=/tmp/a,,b/s,server=on,wait=off,id=m0");
    }

    #[test]
    fn names_and_override_variables() {
        assert_eq!(ServerKind::GuestAgent.env_var(), "QMP_QGA");
        assert_eq!(ServerKind::System.default_program(), "qemu-system-x86_64");
        assert_eq!(ServerKind::StorageDaemon.to_string(), "qemu-storage-daemon");
    }

    /// A fake server: a shell script that ignores the generated arguments.
    fn fake_program(dir: &TempDir, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("fake-qemu");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn missing_program_is_reported_with_the_setup_hint() {
        let err = Launcher::new(ServerKind::StorageDaemon)
            .program("/nonexistent/qemu-storage-daemon")
            .spawn()
            .unwrap_err();
        assert!(matches!(
            err,
            LaunchError::ProgramNotFound {
                env_var: "QMP_QSD",
                ..
            }
        ));
        let message = err.to_string();
        assert!(message.contains("scripts/setup.sh"), "{message}");
        assert!(message.contains("QMP_QSD"), "{message}");
    }

    #[test]
    fn early_exit_carries_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let err = Launcher::new(ServerKind::StorageDaemon)
            .program(fake_program(&dir, "echo broken config >&2; exit 3"))
            .spawn()
            .unwrap_err();
        match &err {
            LaunchError::ExitedEarly { status, stderr, .. } => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr.trim(), "broken config");
            }
            other => panic!("unexpected: {other}"),
        }
        assert!(err.to_string().contains("broken config"));
    }

    #[test]
    fn never_ready_times_out_and_kills() {
        let dir = tempfile::tempdir().unwrap();
        let err = Launcher::new(ServerKind::StorageDaemon)
            .program(fake_program(&dir, "echo waiting >&2; exec sleep 30"))
            .start_timeout(Duration::from_millis(200))
            .spawn()
            .unwrap_err();
        match &err {
            LaunchError::NotReady { waited, stderr, .. } => {
                assert!(*waited >= Duration::from_millis(200));
                assert_eq!(stderr.trim(), "waiting");
            }
            other => panic!("unexpected: {other}"),
        }
    }

    #[test]
    fn agent_options_are_checked() {
        let err = Launcher::new(ServerKind::GuestAgent)
            .tcp_monitor(true)
            .spawn()
            .unwrap_err();
        assert!(matches!(
            err,
            LaunchError::Unsupported {
                option: "tcp monitor",
                ..
            }
        ));
    }
}
