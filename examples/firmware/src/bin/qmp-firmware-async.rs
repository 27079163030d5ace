//! The example firmware's async variant: the same conversation as `src/main.rs`, through
//! qmp-core's `AsyncDriver` over `embedded-io-async`, on a minimal polling executor
//! (`qmp_firmware::asynch`). It prints the same report, preceded by `MODE async`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use qmp_core::client::{Client, Config};
use qmp_core::commands::{BlockdevDel, Command, JobDismiss, QueryJobs, QueryVersion};
use qmp_core::io::AsyncDriver;
use qmp_core::time::Duration;

use qmp_firmware::asynch::{block_on, with_deadline, TimerClock};
use qmp_firmware::clock;
use qmp_firmware::session::{
    self, check_error, check_success, create_image, null_node, print_error, print_jobs,
    print_version, success_or_class, Failure, NoSuchCommand, Observer, IN_FLIGHT, JOB_ID,
    JOB_TIMEOUT, NODE_NAME, RX_SIZE, TX_SIZE,
};
use qmp_firmware::uart::CmsdkUart;

type Driver<'c, 'buf> = AsyncDriver<'c, 'buf, CmsdkUart, TimerClock, IN_FLIGHT>;

/// Runs `command`, which must succeed; prints `RETURN <label>`.
// The reply callback must be a closure: the fn item `success_or_class` would fix the
// response lifetime, and the driver needs a callback for every lifetime.
#[allow(clippy::redundant_closure)]
async fn expect_success<C: Command>(
    driver: &mut Driver<'_, '_>,
    observer: &mut Observer,
    label: &'static str,
    command: &C,
) -> Result<(), Failure> {
    let outcome = driver
        .call(
            command,
            |event| observer.observe(event),
            |reply| success_or_class(reply),
        )
        .await?;
    check_success(label, outcome)
}

/// Runs `command`, which must fail with class `expected`; prints `ERROR <label> ...`.
async fn expect_error<C: Command>(
    driver: &mut Driver<'_, '_>,
    observer: &mut Observer,
    label: &'static str,
    command: &C,
    expected: &'static str,
) -> Result<(), Failure> {
    let outcome = driver
        .call(
            command,
            |event| observer.observe(event),
            |reply| print_error(label, reply),
        )
        .await?;
    check_error(label, expected, outcome)
}

/// Pumps the session (no command in flight) until job [`JOB_ID`] reports `status`: each
/// `step` waits for input, raced against the deadline.
async fn wait_for_job_status(
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
        match with_deadline(deadline, driver.step()).await {
            Some(stepped) => stepped?,
            None => return Err(Failure::JobTimeout(status)),
        }
    }
}

/// The whole conversation.
async fn run(driver: &mut Driver<'_, '_>) -> Result<(), Failure> {
    let mut observer = Observer::new();
    driver.wait_ready(|event| observer.observe(event)).await?;

    driver
        .call(
            &QueryVersion,
            |event| observer.observe(event),
            print_version,
        )
        .await?
        .map_err(|class| Failure::Rejected("query-version", class))?;

    let null_node = null_node();
    expect_success(driver, &mut observer, "blockdev-add null0", &null_node).await?;
    expect_error(
        driver,
        &mut observer,
        "blockdev-add",
        &null_node,
        "GenericError",
    )
    .await?;
    expect_error(
        driver,
        &mut observer,
        "no-such-command",
        &NoSuchCommand,
        "CommandNotFound",
    )
    .await?;

    expect_success(
        driver,
        &mut observer,
        "blockdev-create job0",
        &create_image(),
    )
    .await?;
    wait_for_job_status(driver, &mut observer, "concluded").await?;
    driver
        .call(&QueryJobs, |event| observer.observe(event), print_jobs)
        .await?
        .map_err(|class| Failure::Rejected("query-jobs", class))?;
    expect_success(
        driver,
        &mut observer,
        "job-dismiss job0",
        &JobDismiss { id: JOB_ID },
    )
    .await?;
    wait_for_job_status(driver, &mut observer, "null").await?;
    expect_success(
        driver,
        &mut observer,
        "blockdev-del null0",
        &BlockdevDel {
            node_name: NODE_NAME,
        },
    )
    .await?;
    session::print_stats(driver.client().stats());
    Ok(())
}

#[entry]
fn main() -> ! {
    hprintln!("MODE async");
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
    let mut driver: Driver<'_, '_> = AsyncDriver::new(&mut client, uart, TimerClock);
    let outcome = block_on(run(&mut driver));
    if let Err(Failure::Driver(_)) = &outcome {
        if let Some(reason) = driver.client().close_reason() {
            hprintln!("CLOSE_REASON {}", reason);
        }
    }
    outcome
}
