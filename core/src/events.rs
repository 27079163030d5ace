//! Typed QMP events.
//!
//! An event arrives as a name and an optional `data` object. [`DecodedEvent::decode`]
//! turns them into a typed view and never fails: a name this crate does not know gives
//! [`DecodedEvent::Unknown`], and a known name whose data does not decode (a newer QEMU
//! changed it) gives [`DecodedEvent::Undecodable`] with the reason. To wait for one kind
//! of event only, use its data type's [`EventData`] impl:
//! `ShutdownEvent::from_event(name, data)`.
//!
//! Strings are [`JsonStr`]: borrowed from the receive buffer, still escaped as on the
//! wire (compare them with `==` against a `&str`, or unescape them with
//! [`JsonStr::unescape_into`]). Enumerations (`status`, `reason`, `action`, ...) are kept
//! as strings so a value added by a newer QEMU still decodes.

use crate::commands::de;
use crate::json::{DecodeError, JsonStr, RawJson};

/// The data of one event type.
pub trait EventData<'a>: Sized {
    /// The event name on the wire.
    const NAME: &'static str;

    /// Decodes the event's `data` member (`None` when the event has none).
    fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError>;

    /// Decodes the event if it is named [`Self::NAME`], `None` otherwise.
    fn from_event(name: &str, data: Option<RawJson<'a>>) -> Option<Result<Self, DecodeError>> {
        if name == Self::NAME {
            Some(Self::decode(data))
        } else {
            None
        }
    }
}

/// Implements [`EventData`] for a type decoded from `data` with serde, or for a unit type
/// (events without data: any `data` a newer QEMU adds is ignored).
macro_rules! event_data {
    ($ty:ident<$lt:lifetime>, $name:literal) => {
        impl<$lt> EventData<$lt> for $ty<$lt> {
            const NAME: &'static str = $name;
            fn decode(data: Option<RawJson<$lt>>) -> Result<Self, DecodeError> {
                data.ok_or(DecodeError::NotAnObject)?.deserialize()
            }
        }
    };
    ($ty:ident, $name:literal) => {
        impl<'a> EventData<'a> for $ty {
            const NAME: &'static str = $name;
            fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {
                data.ok_or(DecodeError::NotAnObject)?.deserialize()
            }
        }
    };
    (unit $ty:ident, $name:literal) => {
        impl<'a> EventData<'a> for $ty {
            const NAME: &'static str = $name;
            fn decode(_data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {
                Ok($ty)
            }
        }
    };
}

/// Defines a data-less event type.
macro_rules! unit_event {
    ($(#[$attr:meta])* $ty:ident, $name:literal) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $ty;

        event_data!(unit $ty, $name);
    };
}

// ---------------------------------------------------------------------------------------
// Run state.

/// `SHUTDOWN`: the guest or host shut the machine down (QEMU exits unless
/// `-no-shutdown`; it is also sent on `quit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ShutdownEvent<'a> {
    /// Whether the guest asked for it.
    pub guest: bool,
    /// QAPI `ShutdownCause`: `host-qmp-quit`, `host-signal`, `guest-shutdown`,
    /// `guest-reset`, `guest-panic`, ...
    #[serde(borrow, deserialize_with = "de::string")]
    pub reason: JsonStr<'a>,
}
event_data!(ShutdownEvent<'a>, "SHUTDOWN");

/// `RESET`: the machine was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ResetEvent<'a> {
    /// Whether the guest asked for it.
    pub guest: bool,
    /// QAPI `ShutdownCause`: `host-qmp-system-reset`, `guest-reset`, ...
    #[serde(borrow, deserialize_with = "de::string")]
    pub reason: JsonStr<'a>,
}
event_data!(ResetEvent<'a>, "RESET");

unit_event!(
    /// `POWERDOWN`: `system_powerdown` pressed the virtual power button.
    PowerdownEvent,
    "POWERDOWN"
);
unit_event!(
    /// `STOP`: the vCPUs stopped.
    StopEvent,
    "STOP"
);
unit_event!(
    /// `RESUME`: the vCPUs run again.
    ResumeEvent,
    "RESUME"
);
unit_event!(
    /// `SUSPEND`: the guest suspended to RAM.
    SuspendEvent,
    "SUSPEND"
);
unit_event!(
    /// `SUSPEND_DISK`: the guest suspended to disk.
    SuspendDiskEvent,
    "SUSPEND_DISK"
);
unit_event!(
    /// `WAKEUP`: the guest woke up from suspend.
    WakeupEvent,
    "WAKEUP"
);
unit_event!(
    /// `GUEST_PVSHUTDOWN`: the guest asked for shutdown through a paravirtual device.
    GuestPvshutdownEvent,
    "GUEST_PVSHUTDOWN"
);

/// `WATCHDOG`: the guest's watchdog fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct WatchdogEvent<'a> {
    /// What QEMU does about it: `reset`, `shutdown`, `poweroff`, `pause`, `debug`,
    /// `none`, `inject-nmi`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub action: JsonStr<'a>,
}
event_data!(WatchdogEvent<'a>, "WATCHDOG");

/// `GUEST_PANICKED` and `GUEST_CRASHLOADED`: the guest reported a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct GuestPanicEvent<'a> {
    /// What QEMU does about it: `pause`, `poweroff` or `run`.
    pub action: JsonStr<'a>,
    /// Hypervisor-specific details (QAPI `GuestPanicInformation`, tagged by `type`).
    pub info: Option<RawJson<'a>>,
}

impl<'a> GuestPanicEvent<'a> {
    fn decode_data(data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {
        let data = data.ok_or(DecodeError::NotAnObject)?;
        let action = data
            .get("action")
            .and_then(|action| action.as_json_str())
            .ok_or(DecodeError::Json(serde_json_core::de::Error::InvalidType))?;
        Ok(GuestPanicEvent {
            action,
            info: data.get("info"),
        })
    }
}

/// `GUEST_PANICKED`, with the [`GuestPanicEvent`] data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestPanicked<'a>(pub GuestPanicEvent<'a>);

impl<'a> EventData<'a> for GuestPanicked<'a> {
    const NAME: &'static str = "GUEST_PANICKED";
    fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {
        GuestPanicEvent::decode_data(data).map(GuestPanicked)
    }
}

/// `GUEST_CRASHLOADED`, with the [`GuestPanicEvent`] data: the guest loaded a crash
/// kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestCrashloaded<'a>(pub GuestPanicEvent<'a>);

impl<'a> EventData<'a> for GuestCrashloaded<'a> {
    const NAME: &'static str = "GUEST_CRASHLOADED";
    fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {
        GuestPanicEvent::decode_data(data).map(GuestCrashloaded)
    }
}

/// `MEMORY_FAILURE`: a memory error was reported by the host or to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct MemoryFailureEvent<'a> {
    /// `hypervisor` or `guest`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub recipient: JsonStr<'a>,
    /// `ignore`, `inject`, `fatal` or `reset`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub action: JsonStr<'a>,
    /// Details.
    pub flags: MemoryFailureFlags,
}
event_data!(MemoryFailureEvent<'a>, "MEMORY_FAILURE");

/// The flags of a [`MemoryFailureEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct MemoryFailureFlags {
    /// Whether the failure must be handled at once.
    pub action_required: bool,
    /// Whether it happened while handling another failure.
    pub recursive: bool,
}

/// `RTC_CHANGE`: the guest changed its real-time clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct RtcChangeEvent<'a> {
    /// The RTC's offset from the host clock, in seconds.
    pub offset: i64,
    /// The RTC device's QOM path (QEMU 8.2 and later).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub qom_path: Option<JsonStr<'a>>,
}
event_data!(RtcChangeEvent<'a>, "RTC_CHANGE");

// ---------------------------------------------------------------------------------------
// Devices.

/// `DEVICE_DELETED`: a device unplug completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct DeviceDeletedEvent<'a> {
    /// The device's id, if it had one.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub device: Option<JsonStr<'a>>,
    /// The device's QOM path.
    #[serde(borrow, deserialize_with = "de::string")]
    pub path: JsonStr<'a>,
}
event_data!(DeviceDeletedEvent<'a>, "DEVICE_DELETED");

/// `DEVICE_UNPLUG_GUEST_ERROR`: the guest refused or failed an unplug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct DeviceUnplugGuestErrorEvent<'a> {
    /// The device's id, if it had one.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub device: Option<JsonStr<'a>>,
    /// The device's QOM path.
    #[serde(borrow, deserialize_with = "de::string")]
    pub path: JsonStr<'a>,
}
event_data!(DeviceUnplugGuestErrorEvent<'a>, "DEVICE_UNPLUG_GUEST_ERROR");

/// `DEVICE_TRAY_MOVED`: a removable-media tray opened or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct DeviceTrayMovedEvent<'a> {
    /// The block backend's name (may be empty).
    #[serde(borrow, deserialize_with = "de::string")]
    pub device: JsonStr<'a>,
    /// The device's id or QOM path.
    #[serde(borrow, deserialize_with = "de::string")]
    pub id: JsonStr<'a>,
    /// Whether the tray is now open.
    pub tray_open: bool,
}
event_data!(DeviceTrayMovedEvent<'a>, "DEVICE_TRAY_MOVED");

/// `NIC_RX_FILTER_CHANGED`: the guest changed a NIC's receive filter (query it with
/// `query-rx-filter`; rate-limited until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct NicRxFilterChangedEvent<'a> {
    /// The NIC's id, if it has one.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub name: Option<JsonStr<'a>>,
    /// The NIC's QOM path.
    #[serde(borrow, deserialize_with = "de::string")]
    pub path: JsonStr<'a>,
}
event_data!(NicRxFilterChangedEvent<'a>, "NIC_RX_FILTER_CHANGED");

/// `FAILOVER_NEGOTIATED`: a virtio-net failover standby device was negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct FailoverNegotiatedEvent<'a> {
    /// The standby device's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub device_id: JsonStr<'a>,
}
event_data!(FailoverNegotiatedEvent<'a>, "FAILOVER_NEGOTIATED");

/// `NETDEV_STREAM_CONNECTED`: a `stream` network backend connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct NetdevStreamConnectedEvent<'a> {
    /// The backend's id.
    pub netdev_id: JsonStr<'a>,
    /// The peer's address (QAPI `SocketAddress`, tagged by `type`).
    pub addr: RawJson<'a>,
}

impl<'a> EventData<'a> for NetdevStreamConnectedEvent<'a> {
    const NAME: &'static str = "NETDEV_STREAM_CONNECTED";
    fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {
        let data = data.ok_or(DecodeError::NotAnObject)?;
        let missing = DecodeError::Json(serde_json_core::de::Error::InvalidType);
        Ok(NetdevStreamConnectedEvent {
            netdev_id: data
                .get("netdev-id")
                .and_then(|id| id.as_json_str())
                .ok_or(missing)?,
            addr: data.get("addr").ok_or(missing)?,
        })
    }
}

/// `NETDEV_STREAM_DISCONNECTED`: a `stream` network backend lost its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct NetdevStreamDisconnectedEvent<'a> {
    /// The backend's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub netdev_id: JsonStr<'a>,
}
event_data!(
    NetdevStreamDisconnectedEvent<'a>,
    "NETDEV_STREAM_DISCONNECTED"
);

/// `VSERPORT_CHANGE`: the guest opened or closed a virtio-serial port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct VserportChangeEvent<'a> {
    /// The port's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub id: JsonStr<'a>,
    /// Whether the guest has it open.
    pub open: bool,
}
event_data!(VserportChangeEvent<'a>, "VSERPORT_CHANGE");

/// `BALLOON_CHANGE`: the guest's memory size changed through the balloon (rate-limited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct BalloonChangeEvent {
    /// Memory the guest has now, in bytes.
    pub actual: i64,
}
event_data!(BalloonChangeEvent, "BALLOON_CHANGE");

/// `MEMORY_DEVICE_SIZE_CHANGE`: a memory device (virtio-mem) changed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct MemoryDeviceSizeChangeEvent<'a> {
    /// The device's id, if it has one.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub id: Option<JsonStr<'a>>,
    /// The new size in bytes.
    pub size: u64,
    /// The device's QOM path.
    #[serde(borrow, deserialize_with = "de::string")]
    pub qom_path: JsonStr<'a>,
}
event_data!(MemoryDeviceSizeChangeEvent<'a>, "MEMORY_DEVICE_SIZE_CHANGE");

/// `ACPI_DEVICE_OST`: the guest's ACPI `_OST` status for a hot-plug operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct AcpiDeviceOstEvent<'a> {
    /// The status record.
    #[serde(borrow)]
    pub info: AcpiOstInfo<'a>,
}
event_data!(AcpiDeviceOstEvent<'a>, "ACPI_DEVICE_OST");

/// An ACPI `_OST` record (QAPI `ACPIOSTInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct AcpiOstInfo<'a> {
    /// The device's id, if it has one.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub device: Option<JsonStr<'a>>,
    /// The slot's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub slot: JsonStr<'a>,
    /// `DIMM` or `CPU`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub slot_type: JsonStr<'a>,
    /// The ACPI event code.
    pub source: i64,
    /// The ACPI status code.
    pub status: i64,
}

// ---------------------------------------------------------------------------------------
// Block layer and jobs.

/// `JOB_STATUS_CHANGE`: a job moved to another state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct JobStatusChangeEvent<'a> {
    /// The job's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub id: JsonStr<'a>,
    /// The new state: `created`, `running`, `paused`, `ready`, `standby`, `waiting`,
    /// `pending`, `aborting`, `concluded`, `null`, ...
    #[serde(borrow, deserialize_with = "de::string")]
    pub status: JsonStr<'a>,
}
event_data!(JobStatusChangeEvent<'a>, "JOB_STATUS_CHANGE");

/// `BLOCK_JOB_COMPLETED`, `BLOCK_JOB_CANCELLED` and `BLOCK_JOB_READY`: a block job's
/// progress at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct BlockJobEvent<'a> {
    /// `type`: `mirror`, `commit`, `stream`, `backup`, ...
    #[serde(borrow, rename = "type", deserialize_with = "de::string")]
    pub job_type: JsonStr<'a>,
    /// The job's id (named `device` for historical reasons).
    #[serde(borrow, deserialize_with = "de::string")]
    pub device: JsonStr<'a>,
    /// Estimated total work, in bytes.
    pub len: u64,
    /// Work done, in bytes.
    pub offset: u64,
    /// Speed limit in bytes per second.
    pub speed: u64,
    /// `BLOCK_JOB_COMPLETED` only: why the job failed.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub error: Option<JsonStr<'a>>,
}

/// `BLOCK_JOB_COMPLETED`: a block job finished (successfully unless `error` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockJobCompleted<'a>(pub BlockJobEvent<'a>);

/// `BLOCK_JOB_CANCELLED`: a block job was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockJobCancelled<'a>(pub BlockJobEvent<'a>);

/// `BLOCK_JOB_READY`: a mirror or active commit is in sync and can be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockJobReady<'a>(pub BlockJobEvent<'a>);

/// Implements [`EventData`] for a newtype over a shared data struct.
macro_rules! newtype_event_data {
    ($ty:ident, $name:literal) => {
        impl<'a> EventData<'a> for $ty<'a> {
            const NAME: &'static str = $name;
            fn decode(data: Option<RawJson<'a>>) -> Result<Self, DecodeError> {
                data.ok_or(DecodeError::NotAnObject)?.deserialize().map($ty)
            }
        }
    };
}

newtype_event_data!(BlockJobCompleted, "BLOCK_JOB_COMPLETED");
newtype_event_data!(BlockJobCancelled, "BLOCK_JOB_CANCELLED");
newtype_event_data!(BlockJobReady, "BLOCK_JOB_READY");

/// `BLOCK_JOB_ERROR`: a block job hit an I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct BlockJobErrorEvent<'a> {
    /// The job's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub device: JsonStr<'a>,
    /// `read` or `write`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub operation: JsonStr<'a>,
    /// `ignore`, `report` or `stop`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub action: JsonStr<'a>,
}
event_data!(BlockJobErrorEvent<'a>, "BLOCK_JOB_ERROR");

/// `BLOCK_JOB_PENDING`: a block job waits for `job-finalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct BlockJobPendingEvent<'a> {
    /// `type`: `mirror`, `commit`, `stream`, `backup`, ...
    #[serde(borrow, rename = "type", deserialize_with = "de::string")]
    pub job_type: JsonStr<'a>,
    /// The job's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub id: JsonStr<'a>,
}
event_data!(BlockJobPendingEvent<'a>, "BLOCK_JOB_PENDING");

/// `BLOCK_IO_ERROR`: a guest I/O request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct BlockIoErrorEvent<'a> {
    /// The device's QOM path (QEMU 8.2 and later).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub qom_path: Option<JsonStr<'a>>,
    /// The block backend's name (may be empty).
    #[serde(borrow, deserialize_with = "de::string")]
    pub device: JsonStr<'a>,
    /// The node where the error happened.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub node_name: Option<JsonStr<'a>>,
    /// `read` or `write`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub operation: JsonStr<'a>,
    /// `ignore`, `report` or `stop`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub action: JsonStr<'a>,
    /// Whether the error was ENOSPC.
    #[serde(default)]
    pub nospace: Option<bool>,
    /// The error message.
    #[serde(borrow, deserialize_with = "de::string")]
    pub reason: JsonStr<'a>,
}
event_data!(BlockIoErrorEvent<'a>, "BLOCK_IO_ERROR");

/// `BLOCK_IMAGE_CORRUPTED`: an image's metadata is corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct BlockImageCorruptedEvent<'a> {
    /// The block backend's name (may be empty).
    #[serde(borrow, deserialize_with = "de::string")]
    pub device: JsonStr<'a>,
    /// The node's name.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub node_name: Option<JsonStr<'a>>,
    /// What is wrong.
    #[serde(borrow, deserialize_with = "de::string")]
    pub msg: JsonStr<'a>,
    /// Where, in bytes from the image start.
    #[serde(default)]
    pub offset: Option<i64>,
    /// How many bytes.
    #[serde(default)]
    pub size: Option<i64>,
    /// Whether the image was marked corrupt and further access is refused.
    pub fatal: bool,
}
event_data!(BlockImageCorruptedEvent<'a>, "BLOCK_IMAGE_CORRUPTED");

/// `BLOCK_WRITE_THRESHOLD`: a write went past a node's threshold (which is then
/// cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct BlockWriteThresholdEvent<'a> {
    /// The node's name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub node_name: JsonStr<'a>,
    /// Bytes written past the threshold.
    pub amount_exceeded: u64,
    /// The threshold that was crossed.
    pub write_threshold: u64,
}
event_data!(BlockWriteThresholdEvent<'a>, "BLOCK_WRITE_THRESHOLD");

/// `BLOCK_EXPORT_DELETED`: a block export is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct BlockExportDeletedEvent<'a> {
    /// The export's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub id: JsonStr<'a>,
}
event_data!(BlockExportDeletedEvent<'a>, "BLOCK_EXPORT_DELETED");

/// `QUORUM_FAILURE`: a quorum node could not reach a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct QuorumFailureEvent<'a> {
    /// The quorum node's name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub reference: JsonStr<'a>,
    /// First sector of the failed read.
    pub sector_num: i64,
    /// Number of sectors.
    pub sectors_count: i64,
}
event_data!(QuorumFailureEvent<'a>, "QUORUM_FAILURE");

/// `QUORUM_REPORT_BAD`: one quorum child failed or disagreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct QuorumReportBadEvent<'a> {
    /// `read`, `write` or `flush`.
    #[serde(borrow, rename = "type", deserialize_with = "de::string")]
    pub operation: JsonStr<'a>,
    /// The error, when the child failed (absent when it returned other data).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub error: Option<JsonStr<'a>>,
    /// The child's node name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub node_name: JsonStr<'a>,
    /// First sector.
    pub sector_num: i64,
    /// Number of sectors.
    pub sectors_count: i64,
}
event_data!(QuorumReportBadEvent<'a>, "QUORUM_REPORT_BAD");

/// `PR_MANAGER_STATUS_CHANGED`: a persistent-reservation manager (dis)connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct PrManagerStatusChangedEvent<'a> {
    /// The manager object's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub id: JsonStr<'a>,
    /// Whether it is connected to its helper.
    pub connected: bool,
}
event_data!(PrManagerStatusChangedEvent<'a>, "PR_MANAGER_STATUS_CHANGED");

// ---------------------------------------------------------------------------------------
// Migration and dump.

/// `MIGRATION`: the migration changed state (needs the `events` capability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct MigrationEvent<'a> {
    /// The new state: `setup`, `active`, `postcopy-active`, `completed`, `failed`,
    /// `cancelled`, ...
    #[serde(borrow, deserialize_with = "de::string")]
    pub status: JsonStr<'a>,
}
event_data!(MigrationEvent<'a>, "MIGRATION");

/// `MIGRATION_PASS`: a new RAM pass began (needs the `events` capability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct MigrationPassEvent {
    /// The pass number, from 1.
    pub pass: u64,
}
event_data!(MigrationPassEvent, "MIGRATION_PASS");

/// `DUMP_COMPLETED`: a background `dump-guest-memory` finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct DumpCompletedEvent<'a> {
    /// The final progress.
    #[serde(borrow)]
    pub result: DumpQueryResult<'a>,
    /// Why it failed.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub error: Option<JsonStr<'a>>,
}
event_data!(DumpCompletedEvent<'a>, "DUMP_COMPLETED");

/// A dump's progress (QAPI `DumpQueryResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct DumpQueryResult<'a> {
    /// `none`, `active`, `completed` or `failed`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub status: JsonStr<'a>,
    /// Bytes written.
    pub completed: u64,
    /// Bytes to write.
    pub total: u64,
}

// ---------------------------------------------------------------------------------------
// The typed view.

/// Defines [`DecodedEvent`] and its decoder from a table of variants.
macro_rules! decoded_event {
    (
        $(#[$attr:meta])*
        pub enum $name:ident<$lt:lifetime> {
            $(
                $(#[$variant_attr:meta])*
                $variant:ident($ty:ty),
            )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[non_exhaustive]
        pub enum $name<$lt> {
            $(
                $(#[$variant_attr])*
                $variant($ty),
            )*
            /// An event this crate does not know.
            Unknown {
                /// Its name.
                name: &$lt str,
                /// Its `data` member.
                data: Option<RawJson<$lt>>,
            },
            /// A known event whose data did not decode (a newer QEMU changed it).
            Undecodable {
                /// Its name.
                name: &$lt str,
                /// Its `data` member.
                data: Option<RawJson<$lt>>,
                /// Why decoding failed.
                error: DecodeError,
            },
        }

        impl<$lt> $name<$lt> {
            /// Decodes an event from its name and `data` member. Never fails: see
            /// [`Unknown`](Self::Unknown) and [`Undecodable`](Self::Undecodable).
            pub fn decode(name: &$lt str, data: Option<RawJson<$lt>>) -> Self {
                $(
                    if name == <$ty as EventData<$lt>>::NAME {
                        return match <$ty as EventData<$lt>>::decode(data) {
                            Ok(decoded) => $name::$variant(decoded),
                            Err(error) => $name::Undecodable { name, data, error },
                        };
                    }
                )*
                $name::Unknown { name, data }
            }

            /// The event's name on the wire.
            pub fn name(&self) -> &$lt str {
                match self {
                    $( $name::$variant(_) => <$ty as EventData<$lt>>::NAME, )*
                    $name::Unknown { name, .. } | $name::Undecodable { name, .. } => name,
                }
            }

            /// The names of every event this enum decodes.
            pub const KNOWN_NAMES: &'static [&'static str] =
                &[$( <$ty as EventData<$lt>>::NAME, )*];
        }
    };
}

decoded_event! {
    /// A typed view of a QMP event, built by [`DecodedEvent::decode`].
    pub enum DecodedEvent<'a> {
        /// `SHUTDOWN`.
        Shutdown(ShutdownEvent<'a>),
        /// `POWERDOWN`.
        Powerdown(PowerdownEvent),
        /// `RESET`.
        Reset(ResetEvent<'a>),
        /// `STOP`.
        Stop(StopEvent),
        /// `RESUME`.
        Resume(ResumeEvent),
        /// `SUSPEND`.
        Suspend(SuspendEvent),
        /// `SUSPEND_DISK`.
        SuspendDisk(SuspendDiskEvent),
        /// `WAKEUP`.
        Wakeup(WakeupEvent),
        /// `WATCHDOG`.
        Watchdog(WatchdogEvent<'a>),
        /// `GUEST_PANICKED`.
        GuestPanicked(GuestPanicked<'a>),
        /// `GUEST_CRASHLOADED`.
        GuestCrashloaded(GuestCrashloaded<'a>),
        /// `GUEST_PVSHUTDOWN`.
        GuestPvshutdown(GuestPvshutdownEvent),
        /// `MEMORY_FAILURE`.
        MemoryFailure(MemoryFailureEvent<'a>),
        /// `RTC_CHANGE`.
        RtcChange(RtcChangeEvent<'a>),
        /// `DEVICE_DELETED`.
        DeviceDeleted(DeviceDeletedEvent<'a>),
        /// `DEVICE_UNPLUG_GUEST_ERROR`.
        DeviceUnplugGuestError(DeviceUnplugGuestErrorEvent<'a>),
        /// `DEVICE_TRAY_MOVED`.
        DeviceTrayMoved(DeviceTrayMovedEvent<'a>),
        /// `NIC_RX_FILTER_CHANGED`.
        NicRxFilterChanged(NicRxFilterChangedEvent<'a>),
        /// `FAILOVER_NEGOTIATED`.
        FailoverNegotiated(FailoverNegotiatedEvent<'a>),
        /// `NETDEV_STREAM_CONNECTED`.
        NetdevStreamConnected(NetdevStreamConnectedEvent<'a>),
        /// `NETDEV_STREAM_DISCONNECTED`.
        NetdevStreamDisconnected(NetdevStreamDisconnectedEvent<'a>),
        /// `VSERPORT_CHANGE`.
        VserportChange(VserportChangeEvent<'a>),
        /// `BALLOON_CHANGE`.
        BalloonChange(BalloonChangeEvent),
        /// `MEMORY_DEVICE_SIZE_CHANGE`.
        MemoryDeviceSizeChange(MemoryDeviceSizeChangeEvent<'a>),
        /// `ACPI_DEVICE_OST`.
        AcpiDeviceOst(AcpiDeviceOstEvent<'a>),
        /// `JOB_STATUS_CHANGE`.
        JobStatusChange(JobStatusChangeEvent<'a>),
        /// `BLOCK_JOB_COMPLETED`.
        BlockJobCompleted(BlockJobCompleted<'a>),
        /// `BLOCK_JOB_CANCELLED`.
        BlockJobCancelled(BlockJobCancelled<'a>),
        /// `BLOCK_JOB_READY`.
        BlockJobReady(BlockJobReady<'a>),
        /// `BLOCK_JOB_ERROR`.
        BlockJobError(BlockJobErrorEvent<'a>),
        /// `BLOCK_JOB_PENDING`.
        BlockJobPending(BlockJobPendingEvent<'a>),
        /// `BLOCK_IO_ERROR`.
        BlockIoError(BlockIoErrorEvent<'a>),
        /// `BLOCK_IMAGE_CORRUPTED`.
        BlockImageCorrupted(BlockImageCorruptedEvent<'a>),
        /// `BLOCK_WRITE_THRESHOLD`.
        BlockWriteThreshold(BlockWriteThresholdEvent<'a>),
        /// `BLOCK_EXPORT_DELETED`.
        BlockExportDeleted(BlockExportDeletedEvent<'a>),
        /// `QUORUM_FAILURE`.
        QuorumFailure(QuorumFailureEvent<'a>),
        /// `QUORUM_REPORT_BAD`.
        QuorumReportBad(QuorumReportBadEvent<'a>),
        /// `PR_MANAGER_STATUS_CHANGED`.
        PrManagerStatusChanged(PrManagerStatusChangedEvent<'a>),
        /// `MIGRATION`.
        Migration(MigrationEvent<'a>),
        /// `MIGRATION_PASS`.
        MigrationPass(MigrationPassEvent),
        /// `DUMP_COMPLETED`.
        DumpCompleted(DumpCompletedEvent<'a>),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> RawJson<'_> {
        RawJson::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn known_names_are_decoded_to_their_variant() {
        let data = parse(r#"{"id": "j", "status": "running"}"#);
        let event = DecodedEvent::decode("JOB_STATUS_CHANGE", Some(data));
        let DecodedEvent::JobStatusChange(change) = event else {
            panic!("{event:?}")
        };
        assert_eq!((change.id.raw(), change.status.raw()), ("j", "running"));
        assert_eq!(event.name(), "JOB_STATUS_CHANGE");
        assert_eq!(
            DecodedEvent::decode("POWERDOWN", None),
            DecodedEvent::Powerdown(PowerdownEvent)
        );
    }

    #[test]
    fn never_fails() {
        let samples = [
            None,
            Some(parse("{}")),
            Some(parse("[]")),
            Some(parse("1")),
            Some(parse(r#"{"action": 1, "info": {}}"#)),
            Some(parse(r#"{"netdev-id": "n", "addr": {"type": "unix"}}"#)),
        ];
        for name in DecodedEvent::KNOWN_NAMES.iter().copied().chain(["NEW"]) {
            for data in samples {
                let event = DecodedEvent::decode(name, data);
                assert_eq!(event.name(), name);
            }
        }
        let event = DecodedEvent::decode(
            "NETDEV_STREAM_CONNECTED",
            Some(parse(r#"{"netdev-id": "n", "addr": {"type": "unix"}}"#)),
        );
        assert!(matches!(event, DecodedEvent::NetdevStreamConnected(_)));
    }

    #[test]
    fn one_type_can_be_asked_for() {
        let data = Some(parse(r#"{"guest": true, "reason": "guest-shutdown"}"#));
        assert!(ShutdownEvent::from_event("RESET", data).is_none());
        let shutdown = ShutdownEvent::from_event("SHUTDOWN", data)
            .unwrap()
            .unwrap();
        assert!(shutdown.guest);
        assert_eq!(shutdown.reason, "guest-shutdown");
        assert!(ShutdownEvent::from_event("SHUTDOWN", None)
            .unwrap()
            .is_err());
    }
}
