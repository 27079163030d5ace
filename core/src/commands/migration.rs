//! Live migration: start, receive, cancel, pause and recover, capabilities, parameters
//! and progress. `MIGRATION` events report status changes when the `events` capability
//! is on.
//!
//! Every command here is the generated type of [`crate::qapi`], re-exported:
//!
//! - `migrate`, `migrate-incoming`, `migrate_cancel`, `migrate-pause` and
//!   `migrate-recover` ([`Migrate::new`] and [`MigrateIncoming::new`] kept on them: `uri`
//!   is optional in the schema, next to `channels`);
//! - [`QueryMigrate`] returning a [`MigrationInfo`] (its `status` a [`MigrationStatus`],
//!   RAM and XBZRLE statistics as [`MigrationStats`] and [`XBZRLECacheStats`], QAPI
//!   `int`s as `i64`);
//! - [`MigrateSetCapabilities`] and [`QueryMigrateCapabilities`], with
//!   [`MigrationCapabilityStatus`] (its `capability` a [`MigrationCapability`]);
//! - `migrate-set-parameters` as [`MigrateSetParametersCommand`] around the schema's
//!   [`MigrateSetParameters`] (that name is also a QAPI type; members left `None` keep
//!   their value; the TLS members are a [`StrOrNull`], and an empty string turns TLS
//!   off), and [`QueryMigrateParameters`] returning [`MigrationParameters`];
//!   enum-valued members are the schema's [`MultiFDCompression`], [`MigMode`] and
//!   [`ZeroPageDetection`].

pub use crate::qapi::qmp::{
    MigMode, Migrate, MigrateCancel, MigrateIncoming, MigratePause, MigrateRecover,
    MigrateSetCapabilities, MigrateSetParameters, MigrateSetParametersCommand, MigrationCapability,
    MigrationCapabilityStatus, MigrationInfo, MigrationParameters, MigrationStats, MigrationStatus,
    MultiFDCompression, QueryMigrate, QueryMigrateCapabilities, QueryMigrateParameters, StrOrNull,
    XBZRLECacheStats, ZeroPageDetection,
};

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
