//! Connecting to the chosen target (or launching one) and running commands on it,
//! with connection failures turned into advice on what to check.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qmp_std::qmp_core::commands::Command;
use qmp_std::{
    CallOptions, Client, ConnectOptions, Error, GuestAgentClient, Launcher, QemuProcess, ServerKind,
};
use serde_json::Value;

use crate::exit::Failure;
use crate::options::TargetArgs;

/// The largest reply accepted: `query-qmp-schema` of a full `qemu-system-*` is about
/// 240 KB; leave room for bigger machines.
const RX_BUFFER: usize = 4 * 1024 * 1024;

/// Where the session goes, resolved from the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A Unix socket.
    Socket(PathBuf),
    /// A TCP address.
    Tcp(String),
    /// A QEMU command line to start with a monitor added.
    Launch(Vec<OsString>),
    /// Nothing given: a private qemu-storage-daemon (or qemu-ga with `--qga`).
    Private,
}

impl Target {
    /// Resolves the target options; `$QMP_SOCKET` stands in for `--socket` when no
    /// target is given.
    ///
    /// # Errors
    /// [`Failure::Usage`] for more than one target, or `--launch` without a command.
    pub(crate) fn from_options(options: &TargetArgs) -> Result<Self, Failure> {
        Self::resolve(options, std::env::var_os("QMP_SOCKET"))
    }

    fn resolve(options: &TargetArgs, env_socket: Option<OsString>) -> Result<Self, Failure> {
        let given = usize::from(options.socket.is_some())
            + usize::from(options.tcp.is_some())
            + usize::from(options.launch);
        if given > 1 {
            return Err(Failure::Usage(String::from(
                "give only one of --socket, --tcp and --launch",
            )));
        }
        if options.launch {
            if options.launch_command.is_empty() {
                return Err(Failure::Usage(String::from(
                    "--launch needs the QEMU command after `--`, e.g. \
                     qmp --launch query-status -- qemu-system-x86_64 -M none",
                )));
            }
            return Ok(Self::Launch(options.launch_command.clone()));
        }
        if let Some(path) = &options.socket {
            return Ok(Self::Socket(path.clone()));
        }
        if let Some(address) = &options.tcp {
            return Ok(Self::Tcp(address.clone()));
        }
        match env_socket {
            Some(path) if !path.is_empty() => Ok(Self::Socket(PathBuf::from(path))),
            _ => Ok(Self::Private),
        }
    }
}

/// How long a QEMU started with `--launch` gets to exit after `SIGTERM` before it is
/// killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(3);

/// How long a launched QEMU gets to open its monitor.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A process started for this session, stopped when the session ends: the private
/// daemon is killed (it holds nothing), a `--launch`ed QEMU gets `SIGTERM` first so it
/// can flush its disk images.
#[derive(Debug)]
struct Started {
    process: QemuProcess,
    orderly_stop: bool,
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.orderly_stop && self.process.terminate().is_ok() {
            let _ = self.process.wait_exit(TERMINATE_GRACE);
        }
        // Dropping the process kills it if it still runs and removes its directory.
    }
}

/// The kind of server a `--launch` command line runs, from its program name (and
/// `--qga`): `qemu-storage-daemon` and `qemu-ga` take their own monitor options,
/// anything else is taken for a `qemu-system-*`.
fn launched_kind(program: &OsStr, qga: bool) -> ServerKind {
    let name = Path::new(program)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if qga || name.starts_with("qemu-ga") {
        ServerKind::GuestAgent
    } else if name.starts_with("qemu-storage-daemon") {
        ServerKind::StorageDaemon
    } else {
        ServerKind::System
    }
}

/// Starts the user's QEMU command line through qmp-std's launcher with only a monitor
/// added.
fn launch(command: &[OsString], qga: bool) -> Result<QemuProcess, Failure> {
    let Some((program, args)) = command.split_first() else {
        return Err(Failure::Usage(String::from(
            "--launch needs a QEMU command after `--`, e.g. \
             qmp --launch query-status -- qemu-system-x86_64 -M none",
        )));
    };
    Launcher::new(launched_kind(program, qga))
        .program(program)
        .monitors_only(true)
        .args(args)
        .start_timeout(LAUNCH_TIMEOUT)
        .spawn()
        .map_err(|error| Failure::Launch(crate::exit::with_causes(&error)))
}

/// A connected client, and the QEMU started for it if any.
#[derive(Debug)]
pub(crate) struct Session {
    // Declared first: closed before the process below is stopped.
    client: Client,
    description: String,
    qga: bool,
    reply_timeout: Option<Duration>,
    started: Option<Started>,
    private: bool,
}

impl Session {
    /// Connects to (or starts) the target.
    ///
    /// # Errors
    /// [`Failure::Usage`], [`Failure::Launch`] or [`Failure::Connection`] with what to
    /// check.
    pub(crate) fn open(
        options: &TargetArgs,
        reply_timeout: Option<Duration>,
    ) -> Result<Self, Failure> {
        let target = Target::from_options(options)?;
        // A zero connect timeout would fail before trying.
        let connect_timeout = options
            .connect_timeout
            .limit
            .map(|limit| limit.max(Duration::from_millis(1)));
        let connect_options = ConnectOptions::new()
            .connect_timeout(connect_timeout)
            .greeting_timeout(connect_timeout)
            .command_timeout(reply_timeout)
            .rx_buffer_size(RX_BUFFER);
        let private = matches!(target, Target::Private);
        // `--launch -- qemu-ga` speaks the guest agent protocol without `--qga`.
        let qga = options.qga
            || matches!(&target, Target::Launch(command) if command.first().is_some_and(
                |program| launched_kind(program, false) == ServerKind::GuestAgent
            ));
        let (socket, description, started) = match target {
            Target::Socket(path) => {
                let description = format!("unix socket {}", path.display());
                (Some(path), description, None)
            }
            Target::Tcp(address) => {
                let client = Client::connect_tcp(address.as_str(), connect_options)
                    .map_err(|error| connect_failure(error, &Target::Tcp(address.clone()), qga))?;
                return Ok(Self {
                    client,
                    description: format!("tcp {address}"),
                    qga,
                    reply_timeout,
                    started: None,
                    private,
                });
            }
            Target::Launch(command) => {
                let process = launch(&command, qga)?;
                let description = format!(
                    "{} (pid {}, started by qmp)",
                    process.program().display(),
                    process.pid()
                );
                let socket = process.socket_path().to_owned();
                let started = Started {
                    process,
                    orderly_stop: true,
                };
                (Some(socket), description, Some(started))
            }
            Target::Private => {
                let kind = if qga {
                    ServerKind::GuestAgent
                } else {
                    ServerKind::StorageDaemon
                };
                let process = Launcher::new(kind)
                    .spawn()
                    .map_err(|error| Failure::Launch(crate::exit::with_causes(&error)))?;
                let description = format!(
                    "a private {} (pid {}, removed on exit)",
                    kind,
                    process.pid()
                );
                let socket = process.socket_path().to_owned();
                let started = Started {
                    process,
                    orderly_stop: false,
                };
                (Some(socket), description, Some(started))
            }
        };
        let socket = socket.unwrap_or_default();
        let connected = if qga {
            GuestAgentClient::connect_unix(&socket, connect_options)
                .map(|agent| agent.client().clone())
        } else {
            Client::connect_unix(&socket, connect_options)
        };
        let client = connected
            .map_err(|error| connect_failure(error, &Target::Socket(socket.clone()), qga))?;
        Ok(Self {
            client,
            description,
            qga,
            reply_timeout,
            started,
            private,
        })
    }

    /// The client.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// What we are connected to, for messages.
    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// Whether this is a guest agent session.
    pub(crate) fn is_guest_agent(&self) -> bool {
        self.qga
    }

    /// Whether qmp started the QEMU it talks to.
    pub(crate) fn started_qemu(&self) -> bool {
        self.started.is_some()
    }

    /// Whether this is the private `qemu-storage-daemon` (or `qemu-ga`) started because
    /// no target was given.
    pub(crate) fn is_private(&self) -> bool {
        self.private
    }

    /// The call options for one command: the reply timeout, or none.
    fn call_options(&self, timeout: Option<Duration>) -> CallOptions<'static> {
        match timeout {
            Some(timeout) => CallOptions::new().timeout(timeout),
            None => CallOptions::new().no_timeout(),
        }
    }

    /// Runs a typed command and maps its borrowed response to an owned value.
    ///
    /// # Errors
    /// As [`Session::execute`]; [`Failure::Connection`] when the reply does not decode.
    pub(crate) fn call<C, R>(
        &self,
        command: &C,
        map: impl for<'r> FnOnce(C::Response<'r>) -> R,
    ) -> Result<R, Failure>
    where
        C: Command,
    {
        let reply = self
            .client
            .submit(command, self.call_options(self.reply_timeout))
            .wait()
            .map_err(|error| Failure::from_client(error, &self.description))?;
        let response = reply.get().map_err(|error| {
            Failure::Connection(format!(
                "{} sent a reply to {} that does not decode: {error}",
                self.description,
                C::NAME
            ))
        })?;
        Ok(map(response))
    }

    /// Runs `name` with `arguments` (an object, or null for none) and returns the
    /// `return` value.
    ///
    /// # Errors
    /// [`Failure::Qmp`] for a QMP error, [`Failure::Timeout`], [`Failure::Connection`].
    pub(crate) fn execute(&self, name: &str, arguments: &Value) -> Result<Value, Failure> {
        self.execute_timeout(name, arguments, self.reply_timeout)
    }

    /// [`Session::execute`] with its own reply timeout.
    ///
    /// # Errors
    /// As [`Session::execute`].
    pub(crate) fn execute_timeout(
        &self,
        name: &str,
        arguments: &Value,
        timeout: Option<Duration>,
    ) -> Result<Value, Failure> {
        let result = self
            .client
            .submit_value(name, arguments, self.call_options(timeout))
            .wait();
        // `quit` answered by the connection's end is the core's rule: it succeeds.
        result.map_err(|error| Failure::from_client(error, &self.description))
    }

    /// Sends a hand-written JSON request (a whole message) and returns the `return` value.
    ///
    /// # Errors
    /// As [`Session::execute`]; [`Failure::Usage`] if it is not a QMP command.
    pub(crate) fn execute_message(&self, request: &str) -> Result<Value, Failure> {
        let result = self
            .client
            .submit_message(request.as_bytes(), self.call_options(self.reply_timeout))
            .wait();
        match result {
            Ok(reply) => Ok(reply.to_value()),
            Err(Error::InvalidRequest(reason)) => Err(Failure::Usage(format!(
                "not a QMP request ({reason}); expected {{\"execute\": NAME, \"arguments\": {{...}}}}"
            ))),
            Err(error) => Err(Failure::from_client(error, &self.description)),
        }
    }

    /// Closes the connection (and so stops a started QEMU when dropped).
    pub(crate) fn close(&self) {
        self.client.close();
    }
}

/// Turns a connection failure into advice on what to check.
fn connect_failure(error: Error, target: &Target, qga: bool) -> Failure {
    let protocol_hint = if qga {
        "is it a guest agent socket? (without --qga, qmp expects a QMP monitor)"
    } else {
        "is it a QMP monitor? (a guest agent socket needs --qga; an HMP monitor is not QMP)"
    };
    match (&error, target) {
        (Error::Io(io_error), Target::Socket(path)) => {
            Failure::Connection(explain_socket_error(io_error, path, qga))
        }
        (Error::Io(io_error), Target::Tcp(address)) => Failure::Connection(match io_error.kind() {
            io::ErrorKind::ConnectionRefused => format!(
                "nothing is listening on {address}: is QEMU running with \
                 -qmp tcp:{address},server=on,wait=off?"
            ),
            io::ErrorKind::TimedOut => {
                format!("connecting to {address} timed out: is the address right and reachable?")
            }
            _ => format!("cannot connect to {address}: {io_error}"),
        }),
        (Error::AlreadyConnected, _) | (Error::Timeout, _) => {
            let what = describe(target);
            if qga {
                Failure::Connection(format!(
                    "{what} did not answer guest-sync: is qemu-ga running in the guest, and \
                     is this its socket? (another client may also be connected)"
                ))
            } else {
                Failure::Connection(format!(
                    "{what} accepted the connection but sent no QMP greeting: another client \
                     is probably connected (QEMU serves one client per monitor), or {protocol_hint}"
                ))
            }
        }
        (Error::Closed(reason), _) => Failure::Connection(format!(
            "{} closed the session during the handshake ({reason}): {protocol_hint}",
            describe(target)
        )),
        _ => Failure::Connection(format!("cannot connect to {}: {error}", describe(target))),
    }
}

fn describe(target: &Target) -> String {
    match target {
        Target::Socket(path) => format!("unix socket {}", path.display()),
        Target::Tcp(address) => format!("tcp {address}"),
        Target::Launch(_) | Target::Private => String::from("the launched QEMU"),
    }
}

/// What to check when a Unix socket cannot be connected (`qga`: a guest agent's).
fn explain_socket_error(error: &io::Error, path: &Path, qga: bool) -> String {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let program = if qga { "qemu-ga" } else { "QEMU" };
    match std::fs::metadata(path) {
        Err(meta_error) if meta_error.kind() == io::ErrorKind::NotFound && qga => format!(
            "no socket at {shown}: check the path: it is the host side of the guest's \
             agent channel (-chardev socket,path={shown},server=on,wait=off,id=qga0 with \
             -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0), or the \
             socket of a qemu-ga running with -m unix-listen -p {shown}"
        ),
        Err(meta_error) if meta_error.kind() == io::ErrorKind::NotFound => format!(
            "no socket at {shown}: check the path, and that QEMU is running with \
             -qmp unix:{shown},server=on,wait=off (or --chardev socket,path=... --monitor)"
        ),
        Ok(meta) if !meta.file_type().is_socket() => {
            format!("{shown} exists but is not a socket: check the path")
        }
        _ => match error.kind() {
            io::ErrorKind::ConnectionRefused => format!(
                "nothing is listening on {shown}: {program} has probably exited and left the \
                 socket file behind (is it still running?)"
            ),
            io::ErrorKind::PermissionDenied => format!(
                "permission denied on {shown}: run qmp as the user {program} runs as, or fix \
                 the socket's permissions"
            ),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                "connecting to {shown} timed out: another client is probably connected and \
                 QEMU's backlog is full"
            ),
            _ => format!("cannot connect to {shown}: {error}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn options() -> TargetArgs {
        TargetArgs {
            socket: None,
            tcp: None,
            launch: false,
            qga: false,
            connect_timeout: crate::options::Seconds::none(),
            launch_command: Vec::new(),
        }
    }

    #[test]
    fn targets_resolve_with_the_environment_as_fallback() {
        assert_eq!(Target::resolve(&options(), None).unwrap(), Target::Private);
        assert_eq!(
            Target::resolve(&options(), Some(OsString::from("/env.sock"))).unwrap(),
            Target::Socket(PathBuf::from("/env.sock"))
        );
        let mut tcp = options();
        tcp.tcp = Some("127.0.0.1:1".into());
        assert_eq!(
            Target::resolve(&tcp, Some(OsString::from("/env.sock"))).unwrap(),
            Target::Tcp("127.0.0.1:1".into())
        );
        let mut both = tcp.clone();
        both.socket = Some("/s".into());
        assert_eq!(Target::resolve(&both, None).unwrap_err().exit_code(), 2);
        let mut launch = options();
        launch.launch = true;
        assert_eq!(Target::resolve(&launch, None).unwrap_err().exit_code(), 2);
        launch.launch_command = vec![OsString::from("qemu-system-x86_64")];
        assert!(matches!(
            Target::resolve(&launch, None).unwrap(),
            Target::Launch(_)
        ));
    }

    #[test]
    fn socket_errors_say_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        let refused = io::Error::from(io::ErrorKind::NotFound);
        assert!(explain_socket_error(&refused, &missing, false).contains("no socket at"));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(explain_socket_error(&refused, &file, false).contains("not a socket"));
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(explain_socket_error(&refused, &stale, false).contains("still running"));
        let agent = explain_socket_error(&refused, &missing, true);
        assert!(agent.contains("org.qemu.guest_agent.0"), "{agent}");
        assert!(!agent.contains("-qmp"), "{agent}");
    }

    #[test]
    fn handshake_failures_hint_at_the_protocol() {
        let target = Target::Socket(PathBuf::from("/s"));
        let failure = connect_failure(Error::AlreadyConnected, &target, false);
        assert_eq!(failure.exit_code(), 10);
        assert!(failure.to_string().contains("another client"), "{failure}");
        let failure = connect_failure(Error::Timeout, &target, true);
        assert!(failure.to_string().contains("guest-sync"), "{failure}");
    }
}
