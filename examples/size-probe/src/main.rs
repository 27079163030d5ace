//! The smallest firmware-shaped qmp-core client, built by `scripts/firmware-size.sh` for
//! thumbv7em-none-eabihf with `opt-level = "z"` to measure what the core costs in flash.
//!
//! It does what every firmware user does and nothing else: negotiate through the blocking
//! driver over a UART, run one typed command (`query-version`, decoded into a struct),
//! and watch `JOB_STATUS_CHANGE` events through the event callback. There is no text
//! output (`core::fmt` would dominate the image): the result is the exit status, through
//! semihosting, so the script can also run the probe under QEMU (`mps2-an386`, a
//! Cortex-M4F with the same UART as the AN385 of `examples/firmware`) against a real
//! qemu-storage-daemon. Status 0: version 10.x read; 1: anything else.
#![no_std]
#![no_main]

// The UART driver and clock of the full example firmware, shared rather than copied.
#[path = "../../firmware/src/clock.rs"]
mod clock;
#[path = "../../firmware/src/mmio.rs"]
mod mmio;
#[allow(dead_code)] // the async variant's helpers
#[path = "../../firmware/src/uart.rs"]
mod uart;

use core::hint::black_box;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use panic_halt as _;
#[cfg(not(feature = "baseline"))]
use qmp_core::{
    client::{Client, Config, Output},
    events::EventData,
    io::BlockingDriver,
    qapi::{JobStatus, JobStatusChangeEvent, QueryVersion},
};

/// Enough for the greeting and the `query-version` reply (~170 bytes each).
const RX_SIZE: usize = 512;
/// Enough for `qmp_capabilities` plus one request.
const TX_SIZE: usize = 128;

#[entry]
fn main() -> ! {
    let success = run().unwrap_or(false);
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// Negotiates and reads the version; `None` if the session failed.
#[cfg(not(feature = "baseline"))]
fn run() -> Option<bool> {
    clock::start().then_some(())?;
    let uart = uart::CmsdkUart::take(115_200)?;
    let rx = cortex_m::singleton!(: [u8; RX_SIZE] = [0; RX_SIZE])?;
    let tx = cortex_m::singleton!(: [u8; TX_SIZE] = [0; TX_SIZE])?;

    let mut client: Client<'_, 2> = Client::new(Config::qmp(), clock::now(), rx, tx);
    let mut driver = BlockingDriver::new(&mut client, uart, clock::now);

    let mut concluded_jobs = 0u32;
    let mut on_output = |event: &Output<'_>| {
        if let Output::AsyncEvent(event) = event {
            if let Some(Ok(change)) = JobStatusChangeEvent::from_event(event.name.raw(), event.data)
            {
                if change.status == JobStatus::Concluded {
                    concluded_jobs += 1;
                }
            }
        }
    };
    driver.wait_ready(&mut on_output).ok()?;
    let major = driver
        .call(&QueryVersion, &mut on_output, |reply| {
            reply.map(|info| info.qemu.major).unwrap_or(0)
        })
        .ok()?;
    black_box(concluded_jobs);
    Some(major == 10)
}

/// The baseline: the same hardware set-up, and the UART used without qmp-core (waits for
/// the greeting's first byte, answers with an empty line, reads one byte with a timeout).
#[cfg(feature = "baseline")]
fn run() -> Option<bool> {
    use embedded_io::{Read, ReadReady, Write};
    clock::start().then_some(())?;
    let mut uart = uart::CmsdkUart::take(115_200)?;
    let rx = cortex_m::singleton!(: [u8; RX_SIZE] = [0; RX_SIZE])?;
    let tx = cortex_m::singleton!(: [u8; TX_SIZE] = [0; TX_SIZE])?;
    let deadline = clock::now().saturating_add(qmp_core::time::Duration::from_secs(1));
    while !uart.read_ready().ok()? {
        if clock::now() > deadline {
            return None;
        }
    }
    let n = uart.read(rx).ok()?;
    tx[0] = b'\n';
    uart.write_all(&tx[..1]).ok()?;
    Some(black_box(n) > 0)
}
