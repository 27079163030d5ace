//! A polled driver for the ARM CMSDK APB UART (UART0 of the MPS2 boards), implementing
//! `embedded_io::{Read, ReadReady, Write}` so qmp-core's blocking driver can run over it.
//!
//! The UART has a one-byte buffer in each direction. Under QEMU that is also the flow
//! control: the emulator hands the next received byte over only once `DATA` was read, so
//! the receive side cannot overrun however slowly the firmware reads. Real hardware can
//! overrun; the driver reports that as [`UartError::RxOverrun`].
//!
//! Register access goes through [`crate::mmio`], the firmware's only `unsafe` code.

use crate::mmio::Registers;

/// The APB clock of the MPS2 AN385, in Hz.
pub const PCLK_HZ: u32 = 25_000_000;

/// Register offsets (CMSDK APB UART technical reference).
mod reg {
    pub const DATA: usize = 0x00;
    pub const STATE: usize = 0x04;
    pub const CTRL: usize = 0x08;
    pub const INTSTATUS: usize = 0x0C;
    pub const BAUDDIV: usize = 0x10;
}

/// `STATE` bits.
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const STATE_TX_OVERRUN: u32 = 1 << 2;
const STATE_RX_OVERRUN: u32 = 1 << 3;
/// `CTRL` bits.
const CTRL_TX_ENABLE: u32 = 1 << 0;
const CTRL_RX_ENABLE: u32 = 1 << 1;

/// What can go wrong on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartError {
    /// A received byte was lost because the previous one had not been read yet.
    RxOverrun,
}

impl core::fmt::Display for UartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UartError::RxOverrun => f.write_str("receive overrun: a byte was lost"),
        }
    }
}

impl core::error::Error for UartError {}

impl embedded_io::Error for UartError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

/// UART0, enabled in both directions.
pub struct CmsdkUart {
    registers: Registers,
}

impl CmsdkUart {
    /// UART0, configured for `baud` (QEMU ignores the rate but needs a valid divisor,
    /// at least 16, before it moves bytes). `None` if it was taken already.
    pub fn take(baud: u32) -> Option<Self> {
        let uart = CmsdkUart {
            registers: Registers::uart0()?,
        };
        uart.write_reg(reg::CTRL, 0);
        uart.write_reg(reg::BAUDDIV, (PCLK_HZ / baud.max(1)).max(16));
        // Clear stale overrun flags (write 1 to clear) and interrupt status.
        uart.write_reg(reg::STATE, STATE_TX_OVERRUN | STATE_RX_OVERRUN);
        uart.write_reg(reg::INTSTATUS, 0xF);
        uart.write_reg(reg::CTRL, CTRL_TX_ENABLE | CTRL_RX_ENABLE);
        Some(uart)
    }

    fn read_reg(&self, offset: usize) -> u32 {
        self.registers.read(offset)
    }

    fn write_reg(&self, offset: usize, value: u32) {
        self.registers.write(offset, value)
    }

    fn state(&self) -> u32 {
        self.read_reg(reg::STATE)
    }

    /// Whether the transmitter can take a byte now.
    pub fn tx_ready(&self) -> bool {
        self.state() & STATE_TX_FULL == 0
    }

    /// Takes the received byte if there is one; reports (and clears) an overrun.
    fn try_read_byte(&mut self) -> Result<Option<u8>, UartError> {
        let state = self.state();
        if state & STATE_RX_OVERRUN != 0 {
            self.write_reg(reg::STATE, STATE_RX_OVERRUN);
            return Err(UartError::RxOverrun);
        }
        if state & STATE_RX_FULL == 0 {
            return Ok(None);
        }
        Ok(Some((self.read_reg(reg::DATA) & 0xFF) as u8))
    }
}

impl embedded_io::ErrorType for CmsdkUart {
    type Error = UartError;
}

impl embedded_io::ReadReady for CmsdkUart {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        Ok(self.state() & (STATE_RX_FULL | STATE_RX_OVERRUN) != 0)
    }
}

impl embedded_io::Read for CmsdkUart {
    /// Blocks until a byte arrives, then takes every byte that is already there, up to
    /// `buf.len()`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        let mut filled = 0;
        for slot in buf.iter_mut() {
            let byte = loop {
                match self.try_read_byte()? {
                    Some(byte) => break Some(byte),
                    None if filled == 0 => continue,
                    None => break None,
                }
            };
            match byte {
                Some(byte) => {
                    *slot = byte;
                    filled += 1;
                }
                None => break,
            }
        }
        Ok(filled)
    }
}

impl embedded_io::Write for CmsdkUart {
    /// Blocks until the transmitter takes the first byte, then writes as many as it
    /// takes without waiting.
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        let mut written = 0;
        for &byte in buf {
            while self.state() & STATE_TX_FULL != 0 {
                if written > 0 {
                    return Ok(written);
                }
            }
            self.write_reg(reg::DATA, u32::from(byte));
            written += 1;
        }
        Ok(written)
    }

    /// Waits until the last byte left the transmit buffer.
    fn flush(&mut self) -> Result<(), UartError> {
        while self.state() & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
