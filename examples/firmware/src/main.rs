//! Example firmware: a Cortex-M3 (QEMU `mps2-an385`) that manages a QEMU storage daemon
//! over its UART with qmp-core's blocking driver, static buffers and no allocator.
//!
//! It negotiates, reads the version, adds a `null-co` node, provokes two error replies
//! (a duplicate node and an unknown command), creates an image with a `blockdev-create`
//! job, follows the job's `JOB_STATUS_CHANGE` events to `concluded`, dismisses it, deletes
//! the node, and exits through semihosting with status 0 if everything went as expected.
//! Everything it sees is printed over semihosting, one fact per line, for
//! `scripts/firmware-test.sh` to check:
//!
//! ```text
//! GREETING 10.0.2 oob=true
//! READY
//! VERSION 10.0.2
//! RETURN blockdev-add null0
//! ERROR blockdev-add GenericError Duplicate nodes with node-name='null0'
//! EVENT JOB_STATUS_CHANGE job0 created
//! ...
//! PASS
//! ```
#![no_std]
#![no_main]

mod clock;
mod mmio;
mod uart;

use core::fmt;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;
use qmp_core::client::{Client, Config, Event};
use qmp_core::commands::{
    BlockdevAdd, BlockdevCreate, BlockdevCreateOptionsFile, BlockdevDel, BlockdevOptions,
    BlockdevOptionsNull, Command, Empty, JobDismiss, NoArguments, QueryJobs, QueryVersion,
};
use qmp_core::events::{EventData, JobStatusChangeEvent};
use qmp_core::io::{BlockingDriver, DriverError};
use qmp_core::json::{DecodeError, RawJson};
use qmp_core::message::{ErrorClass, QmpError};
use qmp_core::time::{Duration, Instant};

use uart::{CmsdkUart, UartError};

/// Receive buffer: one whole message plus the start of the next. The largest message of
/// this session is a `query-jobs` reply of ~150 bytes; 2 KiB leaves room for more jobs.
const RX_SIZE: usize = 2048;
/// Transmit buffer: the requests queued and not yet written (the longest is ~170 bytes).
const TX_SIZE: usize = 512;
/// In-flight table capacity: this firmware waits for each reply before the next command.
const IN_FLIGHT: usize = 2;

const NODE_NAME: &str = "null0";
const JOB_ID: &str = "job0";
/// Relative to the storage daemon's working directory (the test runs it in a temporary
/// directory).
const IMAGE_PATH: &str = "qmp-firmware.img";
const IMAGE_SIZE: u64 = 1 << 20;
/// How long to wait for the job's events after its `blockdev-create` returned.
const JOB_TIMEOUT: Duration = Duration::from_secs(20);

/// The clock type handed to the driver.
type Clock = fn() -> Instant;
type Driver<'c, 'buf> = BlockingDriver<'c, 'buf, CmsdkUart, Clock, IN_FLIGHT>;

/// A command QEMU does not have, written by hand as a user would for a command the crate
/// has no type for; provokes a `CommandNotFound` reply.
struct NoSuchCommand;

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
enum Failure {
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
struct ErrorClassName(&'static str);

impl ErrorClassName {
    fn of(error: &QmpError<'_>) -> Self {
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
const JOB_STATUSES: [&str; 10] = [
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
#[derive(Default)]
struct Observer {
    /// Bit `i` set: job [`JOB_ID`] reported status `JOB_STATUSES[i]`.
    job_statuses: u16,
    /// Events of any kind.
    events: u32,
    /// Whether the session closed.
    closed: bool,
}

impl Observer {
    fn has_seen(&self, status: &str) -> bool {
        JOB_STATUSES
            .iter()
            .position(|known| *known == status)
            .is_some_and(|bit| self.job_statuses & (1 << bit) != 0)
    }

    /// Prints one line per event and records job statuses.
    fn observe(&mut self, event: &Event<'_>) {
        match event {
            Event::Greeting(greeting) => {
                hprintln!(
                    "GREETING {} oob={}",
                    greeting.version,
                    greeting.capabilities.oob
                );
            }
            Event::Ready => hprintln!("READY"),
            Event::AsyncEvent(event) => {
                self.events += 1;
                let name = event.name.raw();
                match JobStatusChangeEvent::from_event(name, event.data) {
                    Some(Ok(change)) => {
                        hprintln!("EVENT {} {} {}", name, change.id, change.status);
                        if change.id == JOB_ID {
                            if let Some(bit) = JOB_STATUSES
                                .iter()
                                .position(|known| change.status == *known)
                            {
                                self.job_statuses |= 1 << bit;
                            }
                        }
                    }
                    Some(Err(error)) => hprintln!("EVENT {} undecodable: {}", name, error),
                    None => hprintln!("EVENT {}", name),
                }
            }
            Event::Response(response) => hprintln!("UNAWAITED_RESPONSE {}", response.id),
            Event::CommandFailed { id, reason } => hprintln!("COMMAND_FAILED {} {}", id, reason),
            Event::UnattributedError(error) => hprintln!("UNATTRIBUTED_ERROR {}", error),
            Event::UnmatchedResponse { .. } => hprintln!("UNMATCHED_RESPONSE"),
            Event::Malformed(error) => hprintln!("MALFORMED {}", error),
            Event::Oversize { len } => hprintln!("OVERSIZE {}", len),
            Event::Unknown(raw) => hprintln!("UNKNOWN {}", raw),
            Event::NegotiationFailed(error) => hprintln!("NEGOTIATION_FAILED {}", error),
            Event::Closed(reason) => {
                self.closed = true;
                hprintln!("CLOSED {}", reason);
            }
            _ => hprintln!("OTHER_EVENT"),
        }
    }
}

/// Runs `command`, which must succeed; prints `RETURN <label>`.
fn expect_success<C: Command>(
    driver: &mut Driver<'_, '_>,
    observer: &mut Observer,
    label: &'static str,
    command: &C,
) -> Result<(), Failure> {
    let outcome = driver.call(
        command,
        |event| observer.observe(event),
        |reply| {
            reply
                .map(|_| ())
                .map_err(|error| ErrorClassName::of(&error))
        },
    )?;
    match outcome {
        Ok(()) => {
            hprintln!("RETURN {}", label);
            Ok(())
        }
        Err(class) => Err(Failure::Rejected(label, class)),
    }
}

/// Runs `command`, which must fail with `expected`; prints `ERROR <label> <class> <desc>`.
fn expect_error<C: Command>(
    driver: &mut Driver<'_, '_>,
    observer: &mut Observer,
    label: &'static str,
    command: &C,
    expected: &'static str,
) -> Result<(), Failure> {
    let outcome = driver.call(
        command,
        |event| observer.observe(event),
        |reply| match reply {
            Ok(_) => None,
            Err(error) => {
                let class = ErrorClassName::of(&error);
                hprintln!("ERROR {} {} {}", label, class.0, error.desc);
                Some(class)
            }
        },
    )?;
    match outcome {
        None => Err(Failure::Accepted(label)),
        Some(class) if class.0 == expected => Ok(()),
        Some(class) => Err(Failure::WrongClass(label, class)),
    }
}

/// Pumps the session (no command in flight) until job [`JOB_ID`] reports `status`.
///
/// The blocking driver's `step` waits for input without a time limit when nothing is in
/// flight, so this polls the UART's readiness itself and only steps when bytes are there.
fn wait_for_job_status(
    driver: &mut Driver<'_, '_>,
    observer: &mut Observer,
    status: &'static str,
) -> Result<(), Failure> {
    let deadline = clock::now().saturating_add(JOB_TIMEOUT);
    loop {
        while let Some(event) = driver.client().poll_event() {
            observer.observe(&event);
        }
        if observer.has_seen(status) {
            return Ok(());
        }
        if observer.closed {
            return Err(Failure::Closed);
        }
        if clock::now() >= deadline {
            return Err(Failure::JobTimeout(status));
        }
        let ready = embedded_io::ReadReady::read_ready(driver.io())
            .map_err(|error| Failure::Driver(DriverError::Io(error)))?;
        if ready {
            driver.step()?;
        }
    }
}

/// The whole conversation.
fn run(driver: &mut Driver<'_, '_>) -> Result<(), Failure> {
    let mut observer = Observer::default();

    driver.wait_ready(|event| observer.observe(event))?;

    let version = driver.call(
        &QueryVersion,
        |event| observer.observe(event),
        |reply| match reply {
            Ok(info) => {
                hprintln!("VERSION {} package={}", info.qemu, info.package);
                Ok(())
            }
            Err(error) => Err(ErrorClassName::of(&error)),
        },
    )?;
    version.map_err(|class| Failure::Rejected("query-version", class))?;

    let null_node = BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull::new(
        NODE_NAME, IMAGE_SIZE,
    )));
    expect_success(driver, &mut observer, "blockdev-add null0", &null_node)?;
    expect_error(
        driver,
        &mut observer,
        "blockdev-add",
        &null_node,
        "GenericError",
    )?;
    expect_error(
        driver,
        &mut observer,
        "no-such-command",
        &NoSuchCommand,
        "CommandNotFound",
    )?;

    let create = BlockdevCreate::new(
        JOB_ID,
        BlockdevCreateOptionsFile {
            filename: IMAGE_PATH,
            size: IMAGE_SIZE,
            ..Default::default()
        },
    );
    expect_success(driver, &mut observer, "blockdev-create job0", &create)?;
    wait_for_job_status(driver, &mut observer, "concluded")?;

    let jobs = driver.call(
        &QueryJobs,
        |event| observer.observe(event),
        |reply| match reply {
            Ok(jobs) => {
                for job in jobs.iter().flatten() {
                    hprintln!(
                        "JOB {} type={} status={} progress={}/{}",
                        job.id,
                        job.job_type,
                        job.status,
                        job.current_progress,
                        job.total_progress
                    );
                }
                Ok(())
            }
            Err(error) => Err(ErrorClassName::of(&error)),
        },
    )?;
    jobs.map_err(|class| Failure::Rejected("query-jobs", class))?;

    expect_success(
        driver,
        &mut observer,
        "job-dismiss job0",
        &JobDismiss { id: JOB_ID },
    )?;
    // QEMU sends the `null` status before the job-dismiss return (vector 15), but wait
    // for it in case a newer one does not.
    wait_for_job_status(driver, &mut observer, "null")?;
    expect_success(
        driver,
        &mut observer,
        "blockdev-del null0",
        &BlockdevDel {
            node_name: NODE_NAME,
        },
    )?;

    let stats = driver.client().stats();
    hprintln!(
        "STATS events={} late={} unmatched={} unattributed={} malformed={} oversize={}",
        stats.events,
        stats.late_replies,
        stats.unmatched_replies,
        stats.unattributed_errors,
        stats.malformed,
        stats.oversize
    );
    Ok(())
}

#[entry]
fn main() -> ! {
    let status = match start() {
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

/// Sets up the hardware and the static buffers, then runs the conversation.
fn start() -> Result<(), Failure> {
    assert!(clock::start(), "TIMER0 taken once");
    let uart = CmsdkUart::take(115_200).expect("UART0 taken once");
    let rx = cortex_m::singleton!(: [u8; RX_SIZE] = [0; RX_SIZE]).expect("rx buffer");
    let tx = cortex_m::singleton!(: [u8; TX_SIZE] = [0; TX_SIZE]).expect("tx buffer");

    let config = Config::qmp().with_command_timeout(Some(Duration::from_secs(20)));
    let mut client: Client<'_, IN_FLIGHT> = Client::new(config, clock::now(), rx, tx);
    let mut driver: Driver<'_, '_> = BlockingDriver::new(&mut client, uart, clock::now);
    let outcome = run(&mut driver);
    if let Err(Failure::Driver(_)) = &outcome {
        if let Some(reason) = driver.client().close_reason() {
            hprintln!("CLOSE_REASON {}", reason);
        }
    }
    outcome
}
