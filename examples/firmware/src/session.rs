//! What the blocking and the async firmware share: the session's constants, the report
//! printed over semihosting, and the checks on what the server answered.

use core::fmt;

use cortex_m_semihosting::{debug, hprintln};
use qmp_core::client::{Output, Stats};
use qmp_core::commands::{
    BlockdevAdd, BlockdevCreate, BlockdevCreateOptions, BlockdevCreateOptionsFile, BlockdevOptions,
    BlockdevOptionsNull, Command, Empty, NoArguments,
};
use qmp_core::events::{EventData, JobStatusChangeEvent};
use qmp_core::io::DriverError;
use qmp_core::json::{DecodeError, RawJson};
use qmp_core::message::{ErrorClass, QmpError};
use qmp_core::time::Duration;

use crate::uart::UartError;

/// Receive buffer: one whole message plus the start of the next. The largest message of
/// this session is a `query-jobs` reply of ~150 bytes; 2 KiB leaves room for more jobs.
pub const RX_SIZE: usize = 2048;
/// Transmit buffer: the requests queued and not yet written (the longest is ~170 bytes).
pub const TX_SIZE: usize = 512;
/// In-flight table capacity: this firmware waits for each reply before the next command.
pub const IN_FLIGHT: usize = 2;

pub const NODE_NAME: &str = "null0";
pub const JOB_ID: &str = "job0";
/// Relative to the storage daemon's working directory (the test runs it in a temporary
/// directory).
pub const IMAGE_PATH: &str = "qmp-firmware.img";
pub const IMAGE_SIZE: u64 = 1 << 20;
/// How long to wait for the job's events after its `blockdev-create` returned.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(20);

/// The `blockdev-add` of the `null-co` node (sent twice: the second is a duplicate).
pub fn null_node() -> BlockdevAdd<BlockdevOptions<'static>> {
    BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull::new(
        NODE_NAME, IMAGE_SIZE,
    )))
}

/// The `blockdev-create` job that creates [`IMAGE_PATH`].
pub fn create_image() -> BlockdevCreate<'static, BlockdevCreateOptions<'static>> {
    BlockdevCreate::new(
        JOB_ID,
        BlockdevCreateOptionsFile {
            filename: IMAGE_PATH,
            size: IMAGE_SIZE,
            ..Default::default()
        },
    )
}

/// A command QEMU does not have, written by hand as a user would for a command the crate
/// has no type for; provokes a `CommandNotFound` reply.
pub struct NoSuchCommand;

impl Command for NoSuchCommand {
    const NAME: &'static str = "no-such-command";
    type Arguments = NoArguments;
    type Response<'a> = Empty;

    fn arguments(&self) -> Option<&NoArguments> {
        None
    }

    fn decode_response(_raw: RawJson<'_>) -> Result<Empty, DecodeError> {
        Ok(Empty)
    }
}

/// Why the run failed.
pub enum Failure {
    /// The driver (transport, session or decoding) failed.
    Driver(DriverError<UartError>),
    /// The server answered `command` with an error where success was expected.
    Rejected(&'static str, ErrorClassName),
    /// The server accepted `command` where an error was expected.
    Accepted(&'static str),
    /// The server answered `command` with another error class than expected.
    WrongClass(&'static str, ErrorClassName),
    /// A job status was not reported in time.
    JobTimeout(&'static str),
    /// The session closed while waiting for events.
    Closed,
}

impl From<DriverError<UartError>> for Failure {
    fn from(error: DriverError<UartError>) -> Self {
        Failure::Driver(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Driver(error) => write!(f, "driver: {error}"),
            Failure::Rejected(command, class) => write!(f, "{command} rejected: {}", class.0),
            Failure::Accepted(command) => write!(f, "{command} succeeded, an error was expected"),
            Failure::WrongClass(command, class) => {
                write!(f, "{command} failed with unexpected class {}", class.0)
            }
            Failure::JobTimeout(status) => write!(f, "job never reached {status}"),
            Failure::Closed => f.write_str("session closed"),
        }
    }
}

/// An error class name that outlives the receive buffer (unknown classes are `Other`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ErrorClassName(pub &'static str);

impl ErrorClassName {
    pub fn of(error: &QmpError<'_>) -> Self {
        ErrorClassName(match error.class {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
            ErrorClass::DeviceNotActive => "DeviceNotActive",
            ErrorClass::DeviceNotFound => "DeviceNotFound",
            ErrorClass::KvmMissingCap => "KVMMissingCap",
            _ => "Other",
        })
    }
}

/// The job statuses this firmware tracks, as bits of [`Observer::job_statuses`].
pub const JOB_STATUSES: [&str; 10] = [
    "created",
    "running",
    "paused",
    "ready",
    "standby",
    "waiting",
    "pending",
    "aborting",
    "concluded",
    "null",
];

/// What the firmware saw outside replies: events and oddities.
pub struct Observer {
    /// Bit `i` set: job [`JOB_ID`] reported status `JOB_STATUSES[i]`.
    pub job_statuses: u16,
    /// Events of any kind.
    pub events: u32,
    /// Whether the session closed.
    pub closed: bool,
}

impl Default for Observer {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer {
    /// Nothing seen yet.
    pub const fn new() -> Self {
        Observer {
            job_statuses: 0,
            events: 0,
            closed: false,
        }
    }

    /// Whether job [`JOB_ID`] reported `status`.
    pub fn has_seen(&self, status: &str) -> bool {
        JOB_STATUSES
            .iter()
            .position(|known| *known == status)
            .is_some_and(|bit| self.job_statuses & (1 << bit) != 0)
    }

    /// Prints one line per event and records job statuses.
    pub fn observe(&mut self, event: &Output<'_>) {
        match event {
            Output::Greeting(greeting) => {
                hprintln!(
                    "GREETING {} oob={}",
                    greeting.version,
                    greeting.capabilities.oob
                );
            }
            Output::Ready => hprintln!("READY"),
            Output::AsyncEvent(event) => {
                self.events += 1;
                let name = event.name.raw();
                match JobStatusChangeEvent::from_event(name, event.data) {
                    Some(Ok(change)) => {
                        hprintln!("EVENT {} {} {}", name, change.id, change.status);
                        if change.id == JOB_ID {
                            if let Some(bit) = JOB_STATUSES
                                .iter()
                                .position(|known| change.status.as_str() == *known)
                            {
                                self.job_statuses |= 1 << bit;
                            }
                        }
                    }
                    Some(Err(error)) => hprintln!("EVENT {} undecodable: {}", name, error),
                    None => hprintln!("EVENT {}", name),
                }
            }
            Output::Response(response) => hprintln!("UNAWAITED_RESPONSE {}", response.id),
            Output::CommandFailed { id, reason } => hprintln!("COMMAND_FAILED {} {}", id, reason),
            Output::UnattributedError(error) => hprintln!("UNATTRIBUTED_ERROR {}", error),
            Output::UnmatchedResponse { .. } => hprintln!("UNMATCHED_RESPONSE"),
            Output::Malformed(error) => hprintln!("MALFORMED {}", error),
            Output::Oversize { len } => hprintln!("OVERSIZE {}", len),
            Output::Unknown(raw) => hprintln!("UNKNOWN {}", raw),
            Output::NegotiationFailed(error) => hprintln!("NEGOTIATION_FAILED {}", error),
            Output::Closed(reason) => {
                self.closed = true;
                hprintln!("CLOSED {}", reason);
            }
            _ => hprintln!("OTHER_EVENT"),
        }
    }
}

/// Checks a reply that must be a success; prints `RETURN <label>`.
pub fn check_success(
    label: &'static str,
    outcome: Result<(), ErrorClassName>,
) -> Result<(), Failure> {
    match outcome {
        Ok(()) => {
            hprintln!("RETURN {}", label);
            Ok(())
        }
        Err(class) => Err(Failure::Rejected(label, class)),
    }
}

/// Reduces a reply to success or its error class (the reply callback of the drivers).
pub fn success_or_class<T>(reply: Result<T, QmpError<'_>>) -> Result<(), ErrorClassName> {
    reply
        .map(|_| ())
        .map_err(|error| ErrorClassName::of(&error))
}

/// The reply callback for a command that must fail: prints
/// `ERROR <label> <class> <desc>` and gives the class (`None`: it succeeded).
pub fn print_error<T>(
    label: &'static str,
    reply: Result<T, QmpError<'_>>,
) -> Option<ErrorClassName> {
    match reply {
        Ok(_) => None,
        Err(error) => {
            let class = ErrorClassName::of(&error);
            hprintln!("ERROR {} {} {}", label, class.0, error.desc);
            Some(class)
        }
    }
}

/// Checks the class of a reply that must be an error.
pub fn check_error(
    label: &'static str,
    expected: &'static str,
    outcome: Option<ErrorClassName>,
) -> Result<(), Failure> {
    match outcome {
        None => Err(Failure::Accepted(label)),
        Some(class) if class.0 == expected => Ok(()),
        Some(class) => Err(Failure::WrongClass(label, class)),
    }
}

/// The reply callback of `query-version`: prints `VERSION <x.y.z> package=<...>`.
pub fn print_version(
    reply: Result<qmp_core::commands::VersionInfo<'_>, QmpError<'_>>,
) -> Result<(), ErrorClassName> {
    match reply {
        Ok(info) => {
            hprintln!("VERSION {} package={}", info.qemu, info.package);
            Ok(())
        }
        Err(error) => Err(ErrorClassName::of(&error)),
    }
}

/// The reply callback of `query-jobs`: prints one `JOB` line per job.
pub fn print_jobs(
    reply: Result<qmp_core::commands::JsonArray<'_, qmp_core::commands::JobInfo<'_>>, QmpError<'_>>,
) -> Result<(), ErrorClassName> {
    match reply {
        Ok(jobs) => {
            for job in jobs.iter().flatten() {
                hprintln!(
                    "JOB {} type={} status={} progress={}/{}",
                    job.id,
                    job.r#type,
                    job.status,
                    job.current_progress,
                    job.total_progress
                );
            }
            Ok(())
        }
        Err(error) => Err(ErrorClassName::of(&error)),
    }
}

/// Prints the client's counters: `STATS events=N late=N ...`.
pub fn print_stats(stats: Stats) {
    hprintln!(
        "STATS events={} late={} unmatched={} unattributed={} malformed={} oversize={}",
        stats.events,
        stats.late_replies,
        stats.unmatched_replies,
        stats.unattributed_errors,
        stats.malformed,
        stats.oversize
    );
}

/// Prints `PASS` or `FAIL <why>` and exits the emulator with status 0 or 1.
pub fn exit(outcome: Result<(), Failure>) -> ! {
    let status = match outcome {
        Ok(()) => {
            hprintln!("PASS");
            debug::EXIT_SUCCESS
        }
        Err(failure) => {
            hprintln!("FAIL {}", failure);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}
