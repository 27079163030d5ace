//! Time as the caller's clock reports it.
//!
//! The core never reads a clock. Every input that can start or expire a deadline takes an
//! [`Instant`], a count of microseconds since an epoch the caller chooses (boot, process
//! start, anything monotonic). [`Duration`] is the matching span. Both saturate instead of
//! overflowing, so no arithmetic on them can panic.

use core::fmt;

/// A point in time: microseconds since an arbitrary, caller-chosen epoch.
///
/// Instants must come from a monotonic clock: the client assumes that `now` never goes
/// backwards between calls (it tolerates it, but deadlines then fire late).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant { micros: 0 };

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }

    /// An instant `millis` milliseconds after the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// An instant `secs` seconds after the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Instant {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// Milliseconds since the epoch (truncated).
    pub const fn as_millis(self) -> u64 {
        self.micros / 1_000
    }

    /// `self + duration`, saturating at the far future.
    pub const fn saturating_add(self, duration: Duration) -> Self {
        Instant {
            micros: self.micros.saturating_add(duration.micros),
        }
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration {
            micros: self.micros.saturating_sub(earlier.micros),
        }
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

/// A span of time in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration {
    micros: u64,
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration { micros: 0 };

    /// A span of `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        Duration { micros }
    }

    /// A span of `millis` milliseconds (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Duration {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// A span of `secs` seconds (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// The span in microseconds.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// The span in milliseconds (truncated).
    pub const fn as_millis(self) -> u64 {
        self.micros / 1_000
    }
}

impl From<core::time::Duration> for Duration {
    fn from(d: core::time::Duration) -> Self {
        Duration {
            micros: u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        core::time::Duration::from_micros(d.micros)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.micros.is_multiple_of(1_000_000) {
            write!(f, "{}s", self.micros / 1_000_000)
        } else if self.micros.is_multiple_of(1_000) {
            write!(f, "{}ms", self.micros / 1_000)
        } else {
            write!(f, "{}us", self.micros)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let far = Instant::from_micros(u64::MAX - 1);
        assert_eq!(far + Duration::from_secs(5), Instant::from_micros(u64::MAX));
        assert_eq!(
            Instant::from_secs(1).saturating_duration_since(Instant::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(Duration::from_secs(u64::MAX).as_micros(), u64::MAX);
    }

    #[test]
    fn conversions() {
        assert_eq!(
            Duration::from(core::time::Duration::from_millis(1500)),
            Duration::from_millis(1500)
        );
        assert_eq!(Instant::from_millis(2).as_micros(), 2_000);
    }
}
