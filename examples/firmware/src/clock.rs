//! A monotonic millisecond clock from SysTick: the core clock (25 MHz on the MPS2 AN385)
//! divided down to a 1 kHz interrupt that counts milliseconds. Under QEMU's TCG the core
//! clock is emulated, so this is QEMU's virtual time: monotonic, roughly the host's.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use qmp_core::time::Instant;

/// The core clock of the MPS2 AN385, in Hz.
pub const CORE_CLOCK_HZ: u32 = 25_000_000;

/// Milliseconds since [`start`], advanced by the SysTick exception. Wraps after 49 days,
/// which this example never reaches; a product would widen it to 64 bits.
static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Starts the 1 kHz SysTick interrupt.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_CLOCK_HZ / 1_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// The current time (the [`qmp_core::io::Clock`] the driver reads).
pub fn now() -> Instant {
    Instant::from_millis(u64::from(MILLIS.load(Ordering::Relaxed)))
}

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}
