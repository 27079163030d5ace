//! The parts of the example firmware that its blocking (`src/main.rs`) and async
//! (`src/bin/qmp-firmware-async.rs`) variants share: the MPS2 peripherals (UART0, TIMER0),
//! a minimal async executor, and the session's constants and semihosting report.
#![no_std]

pub mod asynch;
pub mod clock;
pub mod mmio;
pub mod session;
pub mod uart;
