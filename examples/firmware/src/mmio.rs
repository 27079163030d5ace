//! Memory-mapped registers of the two MPS2 peripherals the firmware uses, each handed out
//! once. This is the only module with `unsafe` code: volatile reads and writes of
//! peripheral registers, which no safe API can express (qmp-core itself forbids `unsafe`).

use core::sync::atomic::{AtomicBool, Ordering};

/// UART0 (CMSDK APB UART) on the MPS2 AN385/AN386.
const UART0_BASE: usize = 0x4000_4000;
/// TIMER0 (CMSDK APB timer) on the MPS2 AN385/AN386.
const TIMER0_BASE: usize = 0x4000_0000;
/// Both peripherals have five 32-bit registers or fewer in their first 0x14 bytes.
const REGISTER_BLOCK_LEN: usize = 0x14;

static UART0_TAKEN: AtomicBool = AtomicBool::new(false);
static TIMER0_TAKEN: AtomicBool = AtomicBool::new(false);

/// The register block of one peripheral, owned by one driver.
pub struct Registers {
    base: usize,
}

impl Registers {
    /// The registers of UART0; `None` if they were handed out already.
    pub fn uart0() -> Option<Registers> {
        (!UART0_TAKEN.swap(true, Ordering::AcqRel)).then_some(Registers { base: UART0_BASE })
    }

    /// The registers of TIMER0; `None` if they were handed out already.
    pub fn timer0() -> Option<Registers> {
        (!TIMER0_TAKEN.swap(true, Ordering::AcqRel)).then_some(Registers { base: TIMER0_BASE })
    }

    fn address(&self, offset: usize) -> usize {
        assert!(
            offset < REGISTER_BLOCK_LEN && offset.is_multiple_of(4),
            "bad register offset"
        );
        self.base + offset
    }

    /// Reads the register at `offset` (may have side effects, e.g. taking a UART byte).
    pub fn read(&self, offset: usize) -> u32 {
        let address = self.address(offset) as *const u32;
        // SAFETY: `address` is an aligned register inside the block of a peripheral that
        // exists on this board (checked above), and only the owner of this `Registers`
        // (handed out once) accesses it.
        unsafe { core::ptr::read_volatile(address) }
    }

    /// Writes the register at `offset`.
    pub fn write(&self, offset: usize, value: u32) {
        let address = self.address(offset) as *mut u32;
        // SAFETY: as in `read`; these registers only configure and feed this peripheral.
        unsafe { core::ptr::write_volatile(address, value) }
    }
}
