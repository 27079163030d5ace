//! Typed QEMU Guest Agent (`qemu-ga`) commands.
//!
//! They implement [`Command`] like the QMP ones and go over the guest agent's channel
//! (a virtio-serial port on the host side). The guest agent has no greeting and no
//! capabilities negotiation; a session starts with [`GuestSyncDelimited`] (see
//! [`crate::client`]). [`GuestShutdown`] and the `guest-suspend-*` commands do not answer
//! on success ([`Command::REPLIES_ON_SUCCESS`] is false).
//!
//! Response strings are [`JsonStr`]: borrowed from the receive buffer and still escaped.
//! File and process data travel base64-encoded (`buf-b64`, `input-data`, `out-data`); this
//! crate passes the base64 text through without decoding it.

use crate::commands::macros::{array, command, custom, empty, value, MISSING_MEMBER};
use crate::commands::{de, Command, Empty, FromRawJson, JsonArray};
use crate::json::{DecodeError, JsonStr, RawJson};

/// `guest-sync`: echoes `id`, to find the answer to it after stale output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestSync {
    /// A random value; the reply carries it back.
    pub id: i64,
}

command! {
    impl GuestSync;
    name: "guest-sync",
    response<'r>: i64 = value
}

/// `guest-sync-delimited`: like [`GuestSync`], but the agent sends a 0xFF byte before
/// the reply so the client can reset its parser there. Send a 0xFF byte before this
/// request too, to flush a partial request left by a previous client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestSyncDelimited {
    /// A random value; the reply carries it back.
    pub id: i64,
}

command! {
    impl GuestSyncDelimited;
    name: "guest-sync-delimited",
    response<'r>: i64 = value
}

command! {
    /// `guest-ping`: checks that the agent answers.
    pub struct GuestPing;
    name: "guest-ping",
    response<'r>: Empty = empty
}

command! {
    /// `guest-info`: the agent's version and commands.
    pub struct GuestInfo;
    name: "guest-info",
    response<'r>: GuestAgentInfo<'r> = custom
}

/// The return of [`GuestInfo`] (QAPI `GuestAgentInfo`).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct GuestAgentInfo<'a> {
    /// The agent's version, e.g. `10.0.2`.
    pub version: JsonStr<'a>,
    /// Every command the agent knows, with whether it is enabled.
    pub supported_commands: JsonArray<'a, GuestAgentCommandInfo<'a>>,
}

impl<'a> FromRawJson<'a> for GuestAgentInfo<'a> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        let version = raw
            .get("version")
            .and_then(|version| version.as_json_str())
            .ok_or(MISSING_MEMBER)?;
        let supported_commands = raw
            .get("supported_commands")
            .ok_or(MISSING_MEMBER)
            .and_then(JsonArray::new)?;
        Ok(GuestAgentInfo {
            version,
            supported_commands,
        })
    }
}

/// One command of [`GuestAgentInfo::supported_commands`] (QAPI `GuestAgentCommandInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GuestAgentCommandInfo<'a> {
    /// The command's name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub name: JsonStr<'a>,
    /// Whether the guest's administrator allows it.
    pub enabled: bool,
    /// Whether it answers on success.
    pub success_response: bool,
}

command! {
    /// `guest-get-osinfo`: the guest operating system.
    pub struct GuestGetOsinfo;
    name: "guest-get-osinfo",
    response<'r>: GuestOsInfo<'r> = value
}

/// The return of [`GuestGetOsinfo`] (QAPI `GuestOSInfo`). On POSIX guests the kernel
/// members come from `uname(2)` and the others from `os-release(5)`; each is absent when
/// unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GuestOsInfo<'a> {
    /// Kernel release (`uname -r`; the build number on Windows).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub kernel_release: Option<JsonStr<'a>>,
    /// Kernel version (`uname -v`).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub kernel_version: Option<JsonStr<'a>>,
    /// Machine (`uname -m`: `x86_64`, `aarch64`, ...).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub machine: Option<JsonStr<'a>>,
    /// `ID` (`debian`, `fedora`, `mswindows`, ...).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub id: Option<JsonStr<'a>>,
    /// `NAME`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub name: Option<JsonStr<'a>>,
    /// `PRETTY_NAME`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub pretty_name: Option<JsonStr<'a>>,
    /// `VERSION`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub version: Option<JsonStr<'a>>,
    /// `VERSION_ID`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub version_id: Option<JsonStr<'a>>,
    /// `VARIANT`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub variant: Option<JsonStr<'a>>,
    /// `VARIANT_ID`.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub variant_id: Option<JsonStr<'a>>,
}

command! {
    /// `guest-get-host-name`: the guest's host name.
    pub struct GuestGetHostName;
    name: "guest-get-host-name",
    response<'r>: GuestHostName<'r> = value
}

/// The return of [`GuestGetHostName`] (QAPI `GuestHostName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GuestHostName<'a> {
    /// The host name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub host_name: JsonStr<'a>,
}

command! {
    /// `guest-get-time`: the guest's clock, in nanoseconds since the Unix epoch.
    pub struct GuestGetTime;
    name: "guest-get-time",
    response<'r>: i64 = value
}

/// `guest-set-time`: sets the guest's clock (and then its RTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestSetTime {
    /// Nanoseconds since the Unix epoch; absent: read the time from the RTC (after a
    /// migration or a restore from file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
}

command! {
    impl GuestSetTime;
    name: "guest-set-time",
    response<'r>: Empty = empty
}

command! {
    /// `guest-get-timezone`: the guest's time zone.
    pub struct GuestGetTimezone;
    name: "guest-get-timezone",
    response<'r>: GuestTimezone<'r> = value
}

/// The return of [`GuestGetTimezone`] (QAPI `GuestTimezone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct GuestTimezone<'a> {
    /// The zone's name, informational only.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub zone: Option<JsonStr<'a>>,
    /// Offset from UTC in seconds (east positive).
    pub offset: i64,
}

// ---------------------------------------------------------------------------------------
// Processes.

/// What [`GuestExec`] captures of the process's output (QAPI `GuestExecCaptureOutput`:
/// a boolean, or a mode name since QEMU 8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(untagged)]
pub enum GuestExecCaptureOutput<'a> {
    /// `true` captures stdout and stderr separately; `false` captures nothing.
    Bool(bool),
    /// `none`, `stdout`, `stderr`, `separated` or `merged`.
    Mode(&'a str),
}

/// `guest-exec`: starts a process in the guest. Poll it with [`GuestExecStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct GuestExec<'a> {
    /// The executable's path or name.
    pub path: &'a str,
    /// Its arguments (without `argv[0]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<&'a [&'a str]>,
    /// Its environment, as `NAME=value` strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<&'a [&'a str]>,
    /// Its standard input, base64-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_data: Option<&'a str>,
    /// Whether to capture its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_output: Option<GuestExecCaptureOutput<'a>>,
}

impl<'a> GuestExec<'a> {
    /// Runs `path` with arguments `arg`, capturing its output.
    pub fn new(path: &'a str, arg: &'a [&'a str]) -> Self {
        GuestExec {
            path,
            arg: Some(arg),
            env: None,
            input_data: None,
            capture_output: Some(GuestExecCaptureOutput::Bool(true)),
        }
    }
}

command! {
    impl GuestExec<'a>;
    name: "guest-exec",
    response<'r>: GuestExecStarted = value
}

/// The return of [`GuestExec`] (QAPI `GuestExec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct GuestExecStarted {
    /// The process id in the guest.
    pub pid: i64,
}

/// `guest-exec-status`: a process's state; once it has exited, this also reaps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestExecStatus {
    /// The pid [`GuestExec`] returned.
    pub pid: i64,
}

command! {
    impl GuestExecStatus;
    name: "guest-exec-status",
    response<'r>: GuestExecStatusInfo<'r> = value
}

/// The return of [`GuestExecStatus`] (QAPI `GuestExecStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GuestExecStatusInfo<'a> {
    /// Whether the process has terminated.
    pub exited: bool,
    /// Its exit code, when it exited normally.
    #[serde(default)]
    pub exitcode: Option<i64>,
    /// The signal (or Windows exception code) that ended it.
    #[serde(default)]
    pub signal: Option<i64>,
    /// Captured stdout, base64-encoded.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub out_data: Option<JsonStr<'a>>,
    /// Captured stderr, base64-encoded.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub err_data: Option<JsonStr<'a>>,
    /// Whether stdout was cut at the agent's capture limit.
    #[serde(default)]
    pub out_truncated: Option<bool>,
    /// Whether stderr was cut at the agent's capture limit.
    #[serde(default)]
    pub err_truncated: Option<bool>,
}

// ---------------------------------------------------------------------------------------
// Files.

/// `guest-file-open`: opens a file in the guest and returns its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestFileOpen<'a> {
    /// The file's path in the guest.
    pub path: &'a str,
    /// An `fopen()` mode (`r` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'a str>,
}

command! {
    impl GuestFileOpen<'a>;
    name: "guest-file-open",
    response<'r>: i64 = value
}

/// `guest-file-close`: closes a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestFileClose {
    /// The handle from [`GuestFileOpen`].
    pub handle: i64,
}

command! {
    impl GuestFileClose;
    name: "guest-file-close",
    response<'r>: Empty = empty
}

/// `guest-file-read`: reads from a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestFileRead {
    /// The handle from [`GuestFileOpen`].
    pub handle: i64,
    /// Bytes to read at most (4096 when absent, at most 48 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

command! {
    impl GuestFileRead;
    name: "guest-file-read",
    response<'r>: GuestFileReadInfo<'r> = value
}

/// The return of [`GuestFileRead`] (QAPI `GuestFileRead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GuestFileReadInfo<'a> {
    /// Bytes read (before base64 encoding).
    pub count: u64,
    /// The bytes, base64-encoded (base64 has no JSON escapes, so this is the plain text).
    #[serde(borrow, deserialize_with = "de::string")]
    pub buf_b64: JsonStr<'a>,
    /// Whether the end of the file was reached.
    pub eof: bool,
}

/// `guest-file-write`: writes base64-encoded bytes to a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct GuestFileWrite<'a> {
    /// The handle from [`GuestFileOpen`].
    pub handle: i64,
    /// The bytes, base64-encoded.
    pub buf_b64: &'a str,
    /// Bytes to write (all of `buf_b64` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

command! {
    impl GuestFileWrite<'a>;
    name: "guest-file-write",
    response<'r>: GuestFileWriteInfo = value
}

/// The return of [`GuestFileWrite`] (QAPI `GuestFileWrite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct GuestFileWriteInfo {
    /// Bytes written.
    pub count: u64,
    /// Whether the end of the file was reached.
    pub eof: bool,
}

/// Where [`GuestFileSeek`]'s offset counts from (QAPI `QGASeek`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum GuestFileWhence {
    /// The start of the file.
    Set,
    /// The current position.
    Cur,
    /// The end of the file.
    End,
}

/// `guest-file-seek`: moves a handle's position and returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestFileSeek {
    /// The handle from [`GuestFileOpen`].
    pub handle: i64,
    /// The offset in bytes.
    pub offset: i64,
    /// What the offset counts from.
    pub whence: GuestFileWhence,
}

command! {
    impl GuestFileSeek;
    name: "guest-file-seek",
    response<'r>: GuestFileSeekInfo = value
}

/// The return of [`GuestFileSeek`] (QAPI `GuestFileSeek`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct GuestFileSeekInfo {
    /// The new position.
    pub position: u64,
    /// Whether it is at the end of the file.
    pub eof: bool,
}

/// `guest-file-flush`: flushes a handle's buffered writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestFileFlush {
    /// The handle from [`GuestFileOpen`].
    pub handle: i64,
}

command! {
    impl GuestFileFlush;
    name: "guest-file-flush",
    response<'r>: Empty = empty
}

// ---------------------------------------------------------------------------------------
// File systems.

command! {
    /// `guest-fsfreeze-status`: `thawed` or `frozen`.
    pub struct GuestFsfreezeStatus;
    name: "guest-fsfreeze-status",
    response<'r>: JsonStr<'r> = value
}

command! {
    /// `guest-fsfreeze-freeze`: syncs and freezes the guest's local file systems (for a
    /// consistent snapshot); returns how many are frozen.
    pub struct GuestFsfreezeFreeze;
    name: "guest-fsfreeze-freeze",
    response<'r>: i64 = value
}

/// `guest-fsfreeze-freeze-list`: freezes the file systems mounted at `mountpoints` only;
/// returns how many are frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestFsfreezeFreezeList<'a> {
    /// The mount points (all file systems when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mountpoints: Option<&'a [&'a str]>,
}

command! {
    impl GuestFsfreezeFreezeList<'a>;
    name: "guest-fsfreeze-freeze-list",
    response<'r>: i64 = value
}

command! {
    /// `guest-fsfreeze-thaw`: thaws the frozen file systems; returns how many.
    pub struct GuestFsfreezeThaw;
    name: "guest-fsfreeze-thaw",
    response<'r>: i64 = value
}

// ---------------------------------------------------------------------------------------
// Network and users.

command! {
    /// `guest-network-get-interfaces`: the guest's network interfaces and addresses.
    pub struct GuestNetworkGetInterfaces;
    name: "guest-network-get-interfaces",
    response<'r>: JsonArray<'r, GuestNetworkInterface<'r>> = custom
}

/// One element of [`GuestNetworkGetInterfaces`]' return (QAPI `GuestNetworkInterface`).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct GuestNetworkInterface<'a> {
    /// The interface's name.
    pub name: JsonStr<'a>,
    /// Its MAC address.
    pub hardware_address: Option<JsonStr<'a>>,
    /// Its IP addresses.
    pub ip_addresses: Option<JsonArray<'a, GuestIpAddress<'a>>>,
    /// Its counters.
    pub statistics: Option<GuestNetworkInterfaceStat>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct GuestNetworkInterfaceWire<'a> {
    #[serde(borrow, deserialize_with = "de::string")]
    name: JsonStr<'a>,
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    hardware_address: Option<JsonStr<'a>>,
    #[serde(default)]
    statistics: Option<GuestNetworkInterfaceStat>,
}

impl<'a> FromRawJson<'a> for GuestNetworkInterface<'a> {
    fn from_raw_json(raw: RawJson<'a>) -> Result<Self, DecodeError> {
        let wire: GuestNetworkInterfaceWire<'a> = raw.deserialize()?;
        Ok(GuestNetworkInterface {
            name: wire.name,
            hardware_address: wire.hardware_address,
            ip_addresses: raw.get("ip-addresses").map(JsonArray::new).transpose()?,
            statistics: wire.statistics,
        })
    }
}

/// An interface's address (QAPI `GuestIpAddress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GuestIpAddress<'a> {
    /// The address.
    #[serde(borrow, deserialize_with = "de::string")]
    pub ip_address: JsonStr<'a>,
    /// `ipv4` or `ipv6`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub ip_address_type: JsonStr<'a>,
    /// Prefix length.
    pub prefix: u64,
}

/// An interface's counters (QAPI `GuestNetworkInterfaceStat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GuestNetworkInterfaceStat {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bad packets received.
    pub rx_errs: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errs: u64,
    /// Transmit packets dropped.
    pub tx_dropped: u64,
}

command! {
    /// `guest-get-users`: the users logged in to the guest.
    pub struct GuestGetUsers;
    name: "guest-get-users",
    response<'r>: JsonArray<'r, GuestUser<'r>> = array
}

/// One element of [`GuestGetUsers`]' return (QAPI `GuestUser`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GuestUser<'a> {
    /// The user name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub user: JsonStr<'a>,
    /// Earliest login, in seconds since the Unix epoch (fractional).
    pub login_time: f64,
    /// Logon domain (Windows).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub domain: Option<JsonStr<'a>>,
}

// ---------------------------------------------------------------------------------------
// Power.

/// How [`GuestShutdown`] shuts the guest down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "lowercase")]
pub enum GuestShutdownMode {
    /// Halt.
    Halt,
    /// Power off (the default).
    Powerdown,
    /// Reboot.
    Reboot,
}

/// `guest-shutdown`: shuts the guest down from inside. No answer on success: watch for
/// QMP's `SHUTDOWN` event (or the connection closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestShutdown {
    /// How (power off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<GuestShutdownMode>,
}

impl Command for GuestShutdown {
    const NAME: &'static str = "guest-shutdown";
    const REPLIES_ON_SUCCESS: bool = false;
    type Arguments = Self;
    type Response<'r> = Empty;

    fn arguments(&self) -> Option<&Self> {
        self.mode.map(|_| self)
    }

    fn decode_response(raw: RawJson<'_>) -> Result<Empty, DecodeError> {
        empty(raw)
    }
}

command! {
    /// `guest-suspend-disk`: hibernates the guest. No answer on success.
    pub struct GuestSuspendDisk;
    name: "guest-suspend-disk",
    response<'r>: Empty = empty,
    replies_on_success: false
}

command! {
    /// `guest-suspend-ram`: suspends the guest to RAM (QMP `SUSPEND` follows; wake it with
    /// `system_wakeup`). No answer on success.
    pub struct GuestSuspendRam;
    name: "guest-suspend-ram",
    response<'r>: Empty = empty,
    replies_on_success: false
}

command! {
    /// `guest-suspend-hybrid`: saves to disk and suspends to RAM. No answer on success.
    pub struct GuestSuspendHybrid;
    name: "guest-suspend-hybrid",
    response<'r>: Empty = empty,
    replies_on_success: false
}

crate::commands::from_raw_json_via_serde!(
    GuestAgentCommandInfo<'a>,
    GuestIpAddress<'a>,
    GuestUser<'a>
);
