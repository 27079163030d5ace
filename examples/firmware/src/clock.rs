//! A monotonic microsecond clock from TIMER0, the CMSDK APB timer of the MPS2 boards: a
//! free-running 32-bit down-counter at the 25 MHz APB clock, read and extended to 64 bits
//! on every [`now`]. Under QEMU's TCG the counter follows QEMU's virtual clock, which
//! tracks the host's. Reading a counter rather than counting tick interrupts keeps the
//! clock right on a loaded host, where QEMU delivers a late periodic interrupt once,
//! however many periods it missed.
//!
//! [`now`] must run at least once per counter period (171 s); the driver calls it all the
//! time while it waits.

use core::cell::Cell;

use cortex_m::interrupt::{self, Mutex};
use qmp_core::time::Instant;

use crate::mmio::Registers;

/// The APB clock that drives TIMER0 on the MPS2 AN385/AN386, in ticks per microsecond.
const TICKS_PER_MICRO: u32 = 25;

/// TIMER0 register offsets and `CTRL` bits (CMSDK APB timer).
const CTRL: usize = 0x00;
const VALUE: usize = 0x04;
const RELOAD: usize = 0x08;
const CTRL_ENABLE: u32 = 1 << 0;

/// The clock's state: the timer, its last reading, and the time up to that reading.
struct State {
    timer: Registers,
    last_value: u32,
    /// Ticks since the last whole microsecond (below [`TICKS_PER_MICRO`]).
    spare_ticks: u32,
    micros: u64,
}

static STATE: Mutex<Cell<Option<State>>> = Mutex::new(Cell::new(None));

/// Starts TIMER0 counting down from `u32::MAX`, wrapping forever. Returns `false` if the
/// timer was taken already.
pub fn start() -> bool {
    let Some(timer) = Registers::timer0() else {
        return false;
    };
    timer.write(CTRL, 0);
    timer.write(RELOAD, u32::MAX);
    timer.write(VALUE, u32::MAX);
    timer.write(CTRL, CTRL_ENABLE);
    let state = State {
        last_value: timer.read(VALUE),
        timer,
        spare_ticks: 0,
        micros: 0,
    };
    interrupt::free(|cs| STATE.borrow(cs).set(Some(state)));
    true
}

/// Time since [`start`] (zero before it): the [`qmp_core::io::Clock`] the driver reads.
pub fn now() -> Instant {
    interrupt::free(|cs| {
        let cell = STATE.borrow(cs);
        let Some(mut state) = cell.take() else {
            return Instant::ZERO;
        };
        let value = state.timer.read(VALUE);
        // A down-counter: elapsed ticks are last - now, modulo 2^32 (one wrap at most).
        let ticks = state.last_value.wrapping_sub(value);
        state.last_value = value;
        // 32-bit division only (Cortex-M has no 64-bit divide): ticks / 25 and the
        // remainder, whose sum with the spare ticks stays below 50.
        let spare = ticks % TICKS_PER_MICRO + state.spare_ticks;
        let whole = ticks / TICKS_PER_MICRO + spare / TICKS_PER_MICRO;
        state.spare_ticks = spare % TICKS_PER_MICRO;
        state.micros += u64::from(whole);
        let micros = state.micros;
        cell.set(Some(state));
        Instant::from_micros(micros)
    })
}
