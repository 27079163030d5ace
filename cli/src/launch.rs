//! `--launch -- QEMU-COMMAND...`: start the user's QEMU command line with a private
//! monitor socket added, wait until it listens, and stop it on exit.
//!
//! The monitor option added depends on the program:
//! - `qemu-storage-daemon`: `--chardev socket,path=P,server=on,wait=off,id=qmp-cli
//!   --monitor chardev=qmp-cli`;
//! - `qemu-ga` (or `--qga`): `-m unix-listen -p P`;
//! - anything else (`qemu-system-*`): `-qmp unix:P,server=on,wait=off`.
//!
//! QEMU's output goes to a log file in the private directory and is shown when QEMU
//! fails to start. On exit QEMU gets `SIGTERM` (so it can flush disk images), and
//! `SIGKILL` if it is still running 3 s later.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qmp_std::launch::{monitor_ready, ServerKind};
use tempfile::TempDir;

use crate::exit::Failure;

/// How long QEMU gets to exit after `SIGTERM` before it is killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(3);

/// Which monitor option the program understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MonitorStyle {
    /// `qemu-system-*`: `-qmp unix:...`.
    System,
    /// `qemu-storage-daemon`: `--chardev ... --monitor ...`.
    StorageDaemon,
    /// `qemu-ga`: `-m unix-listen -p ...`.
    GuestAgent,
}

impl MonitorStyle {
    /// Picks the style from the program name (and `--qga`).
    pub(crate) fn for_program(program: &OsStr, qga: bool) -> Self {
        let name = Path::new(program)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if qga || name.starts_with("qemu-ga") {
            Self::GuestAgent
        } else if name.starts_with("qemu-storage-daemon") {
            Self::StorageDaemon
        } else {
            Self::System
        }
    }

    /// The server kind whose readiness this monitor signals.
    fn server_kind(self) -> ServerKind {
        match self {
            Self::System => ServerKind::System,
            Self::StorageDaemon => ServerKind::StorageDaemon,
            Self::GuestAgent => ServerKind::GuestAgent,
        }
    }

    /// The arguments that add a monitor on `socket`.
    pub(crate) fn monitor_args(self, socket: &Path) -> Vec<OsString> {
        let path = escape_commas(socket.as_os_str());
        match self {
            Self::System => {
                let mut spec = OsString::from("unix:");
                spec.push(&path);
                spec.push(",server=on,wait=off");
                vec![OsString::from("-qmp"), spec]
            }
            Self::StorageDaemon => {
                let mut chardev = OsString::from("socket,path=");
                chardev.push(&path);
                chardev.push(",server=on,wait=off,id=qmp-cli");
                vec![
                    OsString::from("--chardev"),
                    chardev,
                    OsString::from("--monitor"),
                    OsString::from("chardev=qmp-cli"),
                ]
            }
            Self::GuestAgent => vec![
                OsString::from("-m"),
                OsString::from("unix-listen"),
                OsString::from("-p"),
                socket.as_os_str().to_owned(),
            ],
        }
    }
}

/// Doubles commas, as QEMU's option syntax requires inside a value.
fn escape_commas(value: &OsStr) -> OsString {
    let mut escaped = Vec::with_capacity(value.len());
    for &byte in value.as_bytes() {
        escaped.push(byte);
        if byte == b',' {
            escaped.push(b',');
        }
    }
    OsString::from_vec(escaped)
}

/// A QEMU started from the user's command line; stopped and cleaned up on drop.
#[derive(Debug)]
pub(crate) struct LaunchedQemu {
    child: Child,
    program: PathBuf,
    style: MonitorStyle,
    socket: PathBuf,
    log: PathBuf,
    exited: bool,
    // Last: removed after the process is gone.
    _dir: TempDir,
}

impl LaunchedQemu {
    /// Starts `command` with a monitor added and waits until the monitor accepts
    /// connections.
    ///
    /// # Errors
    /// [`Failure::Usage`] for an empty command, [`Failure::Launch`] when QEMU does not
    /// start, exits, or does not listen within `timeout`.
    pub(crate) fn spawn(
        command: &[OsString],
        qga: bool,
        timeout: Duration,
    ) -> Result<Self, Failure> {
        let Some((program, args)) = command.split_first() else {
            return Err(Failure::Usage(String::from(
                "--launch needs a QEMU command after `--`, e.g. \
                 qmp --launch query-status -- qemu-system-x86_64 -M none",
            )));
        };
        let dir = tempfile::Builder::new()
            .prefix("qmp-cli-")
            .tempdir()
            .map_err(|error| {
                Failure::Launch(format!("cannot create a temporary directory: {error}"))
            })?;
        let socket = dir.path().join("monitor.sock");
        let log = dir.path().join("qemu.log");
        let log_file = File::create(&log).map_err(|error| {
            Failure::Launch(format!("cannot create {}: {error}", log.display()))
        })?;
        let log_copy = log_file
            .try_clone()
            .map_err(|error| Failure::Launch(format!("cannot share the log file: {error}")))?;
        let style = MonitorStyle::for_program(program, qga);
        let child = Command::new(program)
            .args(args)
            .args(style.monitor_args(&socket))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_copy)
            // Its own process group: Ctrl-C reaches qmp, which stops QEMU in order.
            .process_group(0)
            .spawn()
            .map_err(|error| {
                Failure::Launch(format!(
                    "cannot start {}: {error}{}",
                    Path::new(program).display(),
                    if error.kind() == std::io::ErrorKind::NotFound {
                        " (is QEMU installed and on PATH?)"
                    } else {
                        ""
                    }
                ))
            })?;
        let mut launched = Self {
            child,
            program: PathBuf::from(program),
            style,
            socket,
            log,
            exited: false,
            _dir: dir,
        };
        launched.wait_until_listening(timeout)?;
        Ok(launched)
    }

    fn wait_until_listening(&mut self, timeout: Duration) -> Result<(), Failure> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = true;
                return Err(Failure::Launch(format!(
                    "{} exited ({status}) before its monitor was ready; its output:\n{}",
                    self.program.display(),
                    self.output_or_none()
                )));
            }
            // A probe that reads the whole greeting and sees QEMU close its end: the next
            // client is greeted normally (qmp-std's `Launcher` waits the same way).
            if monitor_ready(&self.socket, self.style.server_kind(), started + timeout) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Failure::Launch(format!(
                    "{} did not open its monitor within {} s; its output:\n{}",
                    self.program.display(),
                    timeout.as_secs_f64(),
                    self.output_or_none()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn output_or_none(&self) -> String {
        let output = std::fs::read_to_string(&self.log).unwrap_or_default();
        let output = output.trim();
        if output.is_empty() {
            String::from("(nothing)")
        } else {
            output.to_owned()
        }
    }

    /// The monitor socket.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The program that was started.
    pub(crate) fn program(&self) -> &Path {
        &self.program
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LaunchedQemu {
    fn drop(&mut self) {
        if self.exited || matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + TERMINATE_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_style_follows_the_program_name() {
        let style = |program: &str, qga| MonitorStyle::for_program(OsStr::new(program), qga);
        assert_eq!(style("qemu-system-x86_64", false), MonitorStyle::System);
        assert_eq!(
            style("/usr/bin/qemu-system-aarch64", false),
            MonitorStyle::System
        );
        assert_eq!(
            style("/usr/bin/qemu-storage-daemon", false),
            MonitorStyle::StorageDaemon
        );
        assert_eq!(style("/usr/sbin/qemu-ga", false), MonitorStyle::GuestAgent);
        assert_eq!(style("my-agent", true), MonitorStyle::GuestAgent);
    }

    #[test]
    fn monitor_arguments_escape_commas() {
        let socket = Path::new("/tmp/a,b/monitor.sock");
        assert_eq!(
            MonitorStyle::System.monitor_args(socket),
            vec![
                OsString::from("-qmp"),
                OsString::from("unix:/tmp/a,,b/monitor.sock,server=on,wait=off")
            ]
        );
        assert_eq!(
            MonitorStyle::StorageDaemon.monitor_args(socket)[1],
            OsString::from("socket,path=/tmp/a,,b/monitor.sock,server=on,wait=off,id=qmp-cli")
        );
        assert_eq!(
            MonitorStyle::GuestAgent.monitor_args(socket)[3],
            OsString::from("/tmp/a,b/monitor.sock")
        );
    }

    #[test]
    fn failures_to_start_are_launch_failures() {
        let error = LaunchedQemu::spawn(
            &[OsString::from("/nonexistent/qemu-system-x86_64")],
            false,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(error.exit_code(), 12);
        assert!(error.to_string().contains("is QEMU installed"), "{error}");

        let error = LaunchedQemu::spawn(
            &["sh", "-c", "echo bad option >&2; exit 1"].map(OsString::from),
            false,
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(error.exit_code(), 12);
        assert!(error.to_string().contains("bad option"), "{error}");

        let error = LaunchedQemu::spawn(
            &["sh", "-c", "exec sleep 30"].map(OsString::from),
            false,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("did not open its monitor"),
            "{error}"
        );

        assert_eq!(
            LaunchedQemu::spawn(&[], false, Duration::from_secs(1))
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
