//! Exit codes, one per kind of failure, and the error type that carries them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | QMP `GenericError`; `watch`: a job or migration failed |
//! | 2 | usage error: bad options or `key=value` arguments, a malformed request |
//! | 3 | QMP `CommandNotFound` (unknown or disabled command); `schema`: unknown name |
//! | 4 | QMP `DeviceNotFound` or `DeviceNotActive`; `watch --job`: no such job |
//! | 5 | QMP `KVMMissingCap` |
//! | 6 | any other QMP error class |
//! | 7 | `watch`: a job or migration was cancelled (and none failed) |
//! | 10 | connection problem: cannot connect, connection lost, not a QMP server |
//! | 11 | timeout: no reply in time; `events --count`/`watch` ran out of time |
//! | 12 | QEMU could not be started (no target, or `--launch`) |
//! | 130 | interrupted (Ctrl-C, `SIGTERM`, `SIGHUP`) |

use core::fmt;

use qmp_std::qmp_core::client::ExecuteError;
use qmp_std::Error;

/// The exit-code table as shown in `--help` and the README.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  success
   1  QMP GenericError; watch: a job or migration failed
   2  usage error (bad options or key=value arguments, a malformed request)
   3  QMP CommandNotFound (unknown or disabled command); schema: unknown name
   4  QMP DeviceNotFound or DeviceNotActive; watch --job: no such job
   5  QMP KVMMissingCap
   6  any other QMP error class
   7  watch: a job or migration was cancelled (and none failed)
  10  connection problem (cannot connect, connection lost, not a QMP server)
  11  timeout (no reply in time; events --count or watch ran out of time)
  12  QEMU could not be started (no target given, or --launch)
 130  interrupted (Ctrl-C, SIGTERM or SIGHUP)
A shell script (qmp shell < FILE) exits with the code of its first failed line.";

/// Why `qmp` stops with a non-zero exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad command line or arguments (exit 2).
    Usage(String),
    /// The server answered with a QMP error.
    Qmp {
        /// The error class as on the wire.
        class: String,
        /// QEMU's description.
        desc: String,
    },
    /// The connection could not be made or was lost (exit 10); the text says what to
    /// check.
    Connection(String),
    /// Something did not happen in time (exit 11).
    Timeout(String),
    /// QEMU could not be started (exit 12).
    Launch(String),
    /// `watch` saw a job or migration fail (exit 1).
    JobFailed(String),
    /// `watch` saw a job or migration cancelled, and none fail (exit 7).
    JobCancelled(String),
    /// `watch --job` named a job that does not exist (exit 4).
    UnknownJob(String),
    /// `schema` was asked for a name it does not have (exit 3).
    UnknownName(String),
    /// Lines of a shell script failed; the code is the first failed line's.
    Script {
        /// The exit code.
        code: u8,
        /// The summary.
        message: String,
    },
}

impl Failure {
    /// The process exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Qmp { class, .. } => qmp_class_exit_code(class),
            Self::Connection(_) => 10,
            Self::Timeout(_) => 11,
            Self::Launch(_) => 12,
            Self::JobFailed(_) => 1,
            Self::JobCancelled(_) => 7,
            Self::UnknownJob(_) => 4,
            Self::UnknownName(_) => 3,
            Self::Script { code, .. } => *code,
        }
    }

    /// A client error seen while talking to `target` (a description such as
    /// `unix socket /run/vm.sock`).
    pub(crate) fn from_client(error: Error, target: &str) -> Self {
        match error {
            Error::Qmp { class, desc } => Self::Qmp {
                class: class.name().to_owned(),
                desc,
            },
            Error::Timeout => Self::Timeout(format!("no reply from {target} in time")),
            Error::AlreadyConnected => Self::Connection(format!(
                "{target} accepted the connection but sent no greeting: another client is \
                 probably connected to this monitor (QEMU serves one client per monitor; \
                 add another -qmp/--monitor, or close the other client)"
            )),
            Error::Closed(reason) => Self::Connection(format!(
                "the connection to {target} ended ({reason}): did QEMU exit or crash?"
            )),
            Error::ClientClosed => {
                Self::Connection(format!("the connection to {target} was closed"))
            }
            Error::Io(io) => Self::Connection(format!("talking to {target} failed: {io}")),
            Error::ConnectionFailed(io) => Self::Connection(format!(
                "the connection to {target} failed ({io}): did QEMU exit or crash?"
            )),
            Error::NegotiationStalled { .. } => Self::Connection(format!(
                "{target} sent its greeting but did not answer qmp_capabilities in time"
            )),
            Error::Execute(ExecuteError::Closed) => {
                Self::Connection(format!("the connection to {target} is closed"))
            }
            Error::Execute(ExecuteError::OobNotEnabled) => Self::Usage(String::from(
                "qmp does not negotiate out-of-band execution: send it with \"execute\"",
            )),
            // Refused before anything was sent: the request, not the connection, is bad.
            Error::Execute(reason) => Self::Usage(format!("cannot send this request: {reason}")),
            Error::InvalidRequest(reason) => Self::Usage(format!("not a QMP request: {reason}")),
            Error::Json(reason) => Self::Usage(format!("bad arguments: {reason}")),
            other => Self::Connection(format!("talking to {target} failed: {other}")),
        }
    }
}

/// The exit code for a QMP error class.
pub(crate) fn qmp_class_exit_code(class: &str) -> u8 {
    match class {
        "GenericError" => 1,
        "CommandNotFound" => 3,
        "DeviceNotFound" | "DeviceNotActive" => 4,
        "KVMMissingCap" => 5,
        _ => 6,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message)
            | Self::Connection(message)
            | Self::Timeout(message)
            | Self::Launch(message)
            | Self::JobFailed(message)
            | Self::JobCancelled(message)
            | Self::UnknownJob(message)
            | Self::UnknownName(message)
            | Self::Script { message, .. } => f.write_str(message),
            Self::Qmp { class, desc } => write!(f, "{class}: {desc}"),
        }
    }
}

impl From<crate::arguments::ArgumentError> for Failure {
    fn from(error: crate::arguments::ArgumentError) -> Self {
        Self::Usage(error.to_string())
    }
}

/// An error and the errors behind it (`source()`), as one line: "a: b: c".
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        line.push_str(": ");
        line.push_str(&error.to_string());
        cause = error.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_std::ErrorClass;

    fn class_code(class: &ErrorClass) -> u8 {
        qmp_class_exit_code(class.name())
    }

    #[test]
    fn causes_follow_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = qmp_std::Error::ConnectionFailed(io);
        assert_eq!(with_causes(&error), "the connection failed: no such file");
    }

    #[test]
    fn every_class_has_its_code() {
        assert_eq!(class_code(&ErrorClass::GenericError), 1);
        assert_eq!(class_code(&ErrorClass::CommandNotFound), 3);
        assert_eq!(class_code(&ErrorClass::DeviceNotFound), 4);
        assert_eq!(class_code(&ErrorClass::DeviceNotActive), 4);
        assert_eq!(class_code(&ErrorClass::KvmMissingCap), 5);
        assert_eq!(class_code(&ErrorClass::Other("NewClass".into())), 6);
    }

    #[test]
    fn client_errors_map_to_codes_and_hints() {
        let qmp = Failure::from_client(
            Error::Qmp {
                class: ErrorClass::DeviceNotFound,
                desc: "Device 'x' not found".into(),
            },
            "t",
        );
        assert_eq!(qmp.exit_code(), 4);
        assert_eq!(qmp.to_string(), "DeviceNotFound: Device 'x' not found");
        assert_eq!(Failure::from_client(Error::Timeout, "t").exit_code(), 11);
        let busy = Failure::from_client(Error::AlreadyConnected, "unix socket /s");
        assert_eq!(busy.exit_code(), 10);
        assert!(busy.to_string().contains("another client"), "{busy}");
        let io = Failure::from_client(
            Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            "t",
        );
        assert_eq!(io.exit_code(), 10);
    }

    #[test]
    fn the_help_table_lists_every_code() {
        for code in [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 130] {
            assert!(
                EXIT_CODES_HELP.contains(&format!("{code:>4}  ")),
                "code {code} missing"
            );
        }
        assert_eq!(Failure::Usage(String::new()).exit_code(), 2);
        assert_eq!(Failure::Launch(String::new()).exit_code(), 12);
        assert_eq!(Failure::JobFailed(String::new()).exit_code(), 1);
        assert_eq!(Failure::UnknownName(String::new()).exit_code(), 3);
        assert_eq!(Failure::JobCancelled(String::new()).exit_code(), 7);
        assert_eq!(Failure::UnknownJob(String::new()).exit_code(), 4);
    }

    #[test]
    fn refused_requests_are_usage_errors() {
        let refused = Failure::from_client(
            Error::InvalidRequest(String::from("arguments must be an object")),
            "t",
        );
        assert_eq!(refused.exit_code(), 2);
    }
}
