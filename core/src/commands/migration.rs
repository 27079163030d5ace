//! Live migration: start, receive, cancel, pause and recover, capabilities, parameters
//! and progress. `MIGRATION` events report status changes when the `events` capability
//! is on.
//!
//! `migrate`, `migrate-incoming`, `migrate_cancel`, `migrate-pause` and `migrate-recover`
//! are the generated types of [`crate::qapi`], re-exported ([`Migrate::new`] and
//! [`MigrateIncoming::new`] kept on them: `uri` is optional in the schema, next to
//! `channels`). Still hand-written: `query-migrate`, the capabilities and the parameters.

use crate::json::JsonStr;

use super::de;
use super::macros::{array, command, empty, value};
use super::{Empty, JsonArray};

pub use crate::qapi::qmp::{Migrate, MigrateCancel, MigrateIncoming, MigratePause, MigrateRecover};

impl<'a> Migrate<'a> {
    /// Migrates to `uri`.
    pub fn new(uri: &'a str) -> Self {
        Migrate {
            uri: Some(uri),
            channels: None,
            detach: None,
            resume: None,
        }
    }
}

impl<'a> MigrateIncoming<'a> {
    /// Listens on `uri`.
    pub fn new(uri: &'a str) -> Self {
        MigrateIncoming {
            uri: Some(uri),
            channels: None,
            exit_on_error: None,
        }
    }
}

command! {
    /// `query-migrate`: the state and statistics of the current (or last) migration.
    pub struct QueryMigrate;
    name: "query-migrate",
    response<'r>: MigrationInfo<'r> = value
}

/// The return of [`QueryMigrate`] (QAPI `MigrationInfo`; block-job, VFIO, socket-address
/// and blocktime lists are not decoded). Every member is absent before the first
/// migration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct MigrationInfo<'a> {
    /// `none`, `setup`, `active`, `postcopy-active`, `postcopy-paused`, `completed`,
    /// `failed`, `cancelling`, `cancelled`, `device`, `wait-unplug`, ...
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub status: Option<JsonStr<'a>>,
    /// RAM transfer statistics.
    #[serde(default)]
    pub ram: Option<MigrationStats>,
    /// XBZRLE cache statistics.
    #[serde(default)]
    pub xbzrle_cache: Option<XbzrleCacheStats>,
    /// Milliseconds since the migration started (or its total duration once done).
    #[serde(default)]
    pub total_time: Option<u64>,
    /// Expected downtime in milliseconds, while active.
    #[serde(default)]
    pub expected_downtime: Option<u64>,
    /// Actual downtime in milliseconds, once completed.
    #[serde(default)]
    pub downtime: Option<u64>,
    /// Setup time in milliseconds.
    #[serde(default)]
    pub setup_time: Option<u64>,
    /// vCPU throttling applied by auto-converge, in percent.
    #[serde(default)]
    pub cpu_throttle_percentage: Option<u64>,
    /// Why the migration failed.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub error_desc: Option<JsonStr<'a>>,
}

/// RAM migration statistics (QAPI `MigrationStats`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct MigrationStats {
    /// Bytes transferred.
    pub transferred: u64,
    /// Bytes remaining.
    pub remaining: u64,
    /// Total RAM in bytes.
    pub total: u64,
    /// Pages that were all the same byte.
    pub duplicate: u64,
    /// Pages sent whole.
    pub normal: u64,
    /// Bytes sent as whole pages.
    pub normal_bytes: u64,
    /// Pages dirtied per second.
    pub dirty_pages_rate: u64,
    /// Throughput in megabits per second.
    pub mbps: f64,
    /// Dirty-bitmap synchronisations so far.
    pub dirty_sync_count: u64,
    /// Page requests from the destination during postcopy.
    pub postcopy_requests: u64,
    /// Target page size.
    pub page_size: u64,
    /// Bytes sent over multifd channels.
    #[serde(default)]
    pub multifd_bytes: Option<u64>,
    /// Pages sent per second.
    #[serde(default)]
    pub pages_per_second: Option<u64>,
    /// Bytes sent during precopy.
    #[serde(default)]
    pub precopy_bytes: Option<u64>,
    /// Bytes sent while the guest was stopped.
    #[serde(default)]
    pub downtime_bytes: Option<u64>,
    /// Bytes sent during postcopy.
    #[serde(default)]
    pub postcopy_bytes: Option<u64>,
}

/// XBZRLE compression cache statistics (QAPI `XBZRLECacheStats`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct XbzrleCacheStats {
    /// Cache size in bytes.
    pub cache_size: u64,
    /// Bytes sent XBZRLE-encoded.
    pub bytes: u64,
    /// Pages sent XBZRLE-encoded.
    pub pages: u64,
    /// Cache misses.
    pub cache_miss: u64,
    /// Cache miss rate.
    pub cache_miss_rate: f64,
    /// Encoding rate.
    pub encoding_rate: f64,
    /// Overflows.
    pub overflow: u64,
}

/// One capability to switch for [`MigrateSetCapabilities`] (QAPI
/// `MigrationCapabilityStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MigrationCapabilityStatus<'a> {
    /// The capability (`events`, `postcopy-ram`, `multifd`, `auto-converge`, `xbzrle`,
    /// `return-path`, `dirty-bitmaps`, `x-ignore-shared`, ...).
    pub capability: &'a str,
    /// On or off.
    pub state: bool,
}

/// `migrate-set-capabilities`: switches migration capabilities (before migrating, on
/// both sides as needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MigrateSetCapabilities<'a> {
    /// The capabilities to set; others keep their state.
    pub capabilities: &'a [MigrationCapabilityStatus<'a>],
}

command! {
    impl MigrateSetCapabilities<'a>;
    name: "migrate-set-capabilities",
    response<'r>: Empty = empty
}

command! {
    /// `query-migrate-capabilities`: every migration capability and its state.
    pub struct QueryMigrateCapabilities;
    name: "query-migrate-capabilities",
    response<'r>: JsonArray<'r, MigrationCapabilityInfo<'r>> = array
}

/// One element of [`QueryMigrateCapabilities`]' return (QAPI
/// `MigrationCapabilityStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct MigrationCapabilityInfo<'a> {
    /// The capability's name.
    #[serde(borrow, deserialize_with = "de::string")]
    pub capability: JsonStr<'a>,
    /// Whether it is on.
    pub state: bool,
}

/// `migrate-set-parameters`: tunes the migration (QAPI `MigrateSetParameters`; members
/// left `None` keep their value). The TLS members take `Some("")` to clear them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct MigrateSetParameters<'a> {
    /// First self-announce delay after migration, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_initial: Option<u64>,
    /// Largest self-announce delay, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_max: Option<u64>,
    /// Number of self-announce rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_rounds: Option<u64>,
    /// Self-announce delay increase per round, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_step: Option<u64>,
    /// Dirty rate, in percent of bandwidth, above which auto-converge throttles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_trigger_threshold: Option<u8>,
    /// Initial auto-converge throttle, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_throttle_initial: Option<u8>,
    /// Auto-converge throttle increment, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_throttle_increment: Option<u8>,
    /// Compute the throttle increment from the dirty ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_throttle_tailslow: Option<bool>,
    /// The id of the `tls-creds-*` object that secures the migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_creds: Option<&'a str>,
    /// The host name to check the destination's certificate against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_hostname: Option<&'a str>,
    /// The id of the `authz-*` object that authorises clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_authz: Option<&'a str>,
    /// Bandwidth limit in bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bandwidth: Option<u64>,
    /// Bandwidth available for the switchover, in bytes per second (0: measure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avail_switchover_bandwidth: Option<u64>,
    /// Largest downtime allowed, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_limit: Option<u64>,
    /// Number of multifd channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multifd_channels: Option<u8>,
    /// XBZRLE cache size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xbzrle_cache_size: Option<u64>,
    /// Bandwidth limit during postcopy, in bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_postcopy_bandwidth: Option<u64>,
    /// Highest auto-converge throttle, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cpu_throttle: Option<u8>,
    /// `none`, `zlib`, `zstd`, ... for multifd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multifd_compression: Option<&'a str>,
    /// zlib level for multifd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multifd_zlib_level: Option<u8>,
    /// zstd level for multifd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multifd_zstd_level: Option<u8>,
    /// `normal`, `cpr-reboot` or `cpr-transfer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'a str>,
    /// `none`, `legacy` or `multifd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_page_detection: Option<&'a str>,
    /// Use `O_DIRECT` for `file:` migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_io: Option<bool>,
}

command! {
    impl MigrateSetParameters<'a>;
    name: "migrate-set-parameters",
    response<'r>: Empty = empty
}

command! {
    /// `query-migrate-parameters`: the current migration parameters.
    pub struct QueryMigrateParameters;
    name: "query-migrate-parameters",
    response<'r>: MigrationParameters<'r> = value
}

/// The return of [`QueryMigrateParameters`] (QAPI `MigrationParameters`, without the
/// block-bitmap mapping and the dirty-limit members).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct MigrationParameters<'a> {
    /// First self-announce delay, in milliseconds.
    #[serde(default)]
    pub announce_initial: Option<u64>,
    /// Largest self-announce delay, in milliseconds.
    #[serde(default)]
    pub announce_max: Option<u64>,
    /// Number of self-announce rounds.
    #[serde(default)]
    pub announce_rounds: Option<u64>,
    /// Self-announce delay increase per round, in milliseconds.
    #[serde(default)]
    pub announce_step: Option<u64>,
    /// Auto-converge trigger threshold, in percent.
    #[serde(default)]
    pub throttle_trigger_threshold: Option<u8>,
    /// Initial auto-converge throttle, in percent.
    #[serde(default)]
    pub cpu_throttle_initial: Option<u8>,
    /// Auto-converge throttle increment, in percent.
    #[serde(default)]
    pub cpu_throttle_increment: Option<u8>,
    /// Whether the throttle increment follows the dirty ratio.
    #[serde(default)]
    pub cpu_throttle_tailslow: Option<bool>,
    /// TLS credentials object id (empty: none).
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub tls_creds: Option<JsonStr<'a>>,
    /// TLS host name.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub tls_hostname: Option<JsonStr<'a>>,
    /// TLS authorisation object id.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub tls_authz: Option<JsonStr<'a>>,
    /// Bandwidth limit in bytes per second.
    #[serde(default)]
    pub max_bandwidth: Option<u64>,
    /// Bandwidth available for the switchover.
    #[serde(default)]
    pub avail_switchover_bandwidth: Option<u64>,
    /// Largest downtime allowed, in milliseconds.
    #[serde(default)]
    pub downtime_limit: Option<u64>,
    /// Number of multifd channels.
    #[serde(default)]
    pub multifd_channels: Option<u8>,
    /// XBZRLE cache size in bytes.
    #[serde(default)]
    pub xbzrle_cache_size: Option<u64>,
    /// Bandwidth limit during postcopy.
    #[serde(default)]
    pub max_postcopy_bandwidth: Option<u64>,
    /// Highest auto-converge throttle, in percent.
    #[serde(default)]
    pub max_cpu_throttle: Option<u8>,
    /// Multifd compression method.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub multifd_compression: Option<JsonStr<'a>>,
    /// zlib level for multifd.
    #[serde(default)]
    pub multifd_zlib_level: Option<u8>,
    /// zstd level for multifd.
    #[serde(default)]
    pub multifd_zstd_level: Option<u8>,
    /// Migration mode.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub mode: Option<JsonStr<'a>>,
    /// Zero page detection method.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub zero_page_detection: Option<JsonStr<'a>>,
    /// `O_DIRECT` for `file:` migration.
    #[serde(default)]
    pub direct_io: Option<bool>,
}

super::from_raw_json_via_serde!(MigrationCapabilityInfo<'a>);
