//! Example firmware: a Cortex-M3 (QEMU `mps2-an385`) that manages a QEMU storage daemon
//! over its UART with qmp-core's blocking driver, static buffers and no allocator.
//!
//! It negotiates, reads the version, adds a `null-co` node, provokes two error replies
//! (a duplicate node and an unknown command), creates an image with a `blockdev-create`
//! job, follows the job's `JOB_STATUS_CHANGE` events to `concluded`, lists the jobs,
//! dismisses the job, deletes the node, and exits through semihosting with status 0 if
//! everything went as expected. Everything it sees is printed over semihosting, one fact
//! per line, for `scripts/firmware-test.sh` to check:
//!
//! ```text
//! GREETING 10.0.2 oob=true
//! READY
//! VERSION 10.0.2 package=...
//! RETURN blockdev-add null0
//! ERROR blockdev-add GenericError Duplicate nodes with node-name='null0'
//! ERROR no-such-command CommandNotFound The command no-such-command has not been found
//! EVENT JOB_STATUS_CHANGE job0 created
//! ...
//! PASS
//! ```
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use qmp_core::client::{Client, Config};
use qmp_core::commands::{BlockdevDel, Command, JobDismiss, QueryJobs, QueryVersion};
use qmp_core::io::{BlockingDriver, DriverError};
use qmp_core::time::{Duration, Instant};

use qmp_firmware::clock;
use qmp_firmware::session::{
    self, check_error, check_success, create_image, null_node, print_error, print_jobs,
    print_version, success_or_class, Failure, NoSuchCommand, Observer, IN_FLIGHT, JOB_ID,
    JOB_TIMEOUT, NODE_NAME, RX_SIZE, TX_SIZE,
};
use qmp_firmware::uart::CmsdkUart;

type Driver<'c, 'buf> = BlockingDriver<'c, 'buf, CmsdkUart, fn() -> Instant, IN_FLIGHT>;

/// Runs `command`, which must succeed; prints `RETURN <label>`.
// The reply callback must be a closure: the fn item `success_or_class` would fix the
// response lifetime, and the driver needs a callback for every lifetime.
#[allow(clippy::redundant_closure)]
fn expect_success<C: Command>(
    driver: &mut Driver<'_, '_>,
    observer: &mut Observer,
    label: &'static str,
    command: &C,
) -> Result<(), Failure> {
    let outcome = driver.call(
        command,
        |event| observer.observe(event),
        |reply| success_or_class(reply),
    )?;
    check_success(label, outcome)
}

/// Runs `command`, which must fail with class `expected`; prints `ERROR <label> ...`.
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
        |reply| print_error(label, reply),
    )?;
    check_error(label, expected, outcome)
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
        while let Some(event) = driver.client().poll_output() {
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
    let mut observer = Observer::new();
    driver.wait_ready(|event| observer.observe(event))?;

    driver
        .call(
            &QueryVersion,
            |event| observer.observe(event),
            print_version,
        )?
        .map_err(|class| Failure::Rejected("query-version", class))?;

    let null_node = null_node();
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

    expect_success(
        driver,
        &mut observer,
        "blockdev-create job0",
        &create_image(),
    )?;
    wait_for_job_status(driver, &mut observer, "concluded")?;
    driver
        .call(&QueryJobs, |event| observer.observe(event), print_jobs)?
        .map_err(|class| Failure::Rejected("query-jobs", class))?;
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
    session::print_stats(driver.client().stats());
    Ok(())
}

#[entry]
fn main() -> ! {
    session::exit(start())
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
