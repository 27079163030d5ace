//! Job management: the generic `job-*` commands and the older `block-job-*` ones — the
//! generated types of [`crate::qapi`] (QAPI modules `job` and `block-core`), re-exported
//! here. A job's type and status are the schema's [`JobType`] and [`JobStatus`] enums,
//! comparing with a wire value (`job.status == "concluded"`).
//!
//! [`QueryBlockJobs`] and its [`BlockJobInfo`] stay hand-written: the generated
//! `BlockJobInfo` (a union on `type` since QEMU 8.2) requires `actively-synced` in its
//! mirror branch, which QEMU 7.2 does not send, so a 7.2 mirror job would not decode
//! (qapi-gen's schema history does not yet cover members of a branch that 7.2 lacks).
//!
//! Jobs started by `blockdev-create`, `blockdev-mirror`, `blockdev-backup`,
//! `block-stream` and `block-commit` report their progress with `JOB_STATUS_CHANGE`
//! events (`created`, `running`, `ready`, `waiting`, `pending`, `concluded`, `null`).

use crate::json::JsonStr;

use super::de;
use super::macros::{array, command};
use super::JsonArray;

pub use crate::qapi::qmp::{
    BlockJobCancel, BlockJobComplete, BlockJobPause, BlockJobResume, BlockJobSetSpeed, JobCancel,
    JobComplete, JobDismiss, JobFinalize, JobInfo, JobPause, JobResume, JobStatus, JobType,
    QueryJobs,
};

command! {
    /// `query-block-jobs`: the running block jobs.
    pub struct QueryBlockJobs;
    name: "query-block-jobs",
    response<'r>: JsonArray<'r, BlockJobInfo<'r>> = array
}

/// One element of [`QueryBlockJobs`]' return (QAPI `BlockJobInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct BlockJobInfo<'a> {
    /// `type`: `mirror`, `stream`, `commit`, `backup`, ...
    #[serde(borrow, rename = "type", deserialize_with = "de::string")]
    pub job_type: JsonStr<'a>,
    /// The job's id (named `device` for historical reasons).
    #[serde(borrow, deserialize_with = "de::string")]
    pub device: JsonStr<'a>,
    /// Estimated total work, in bytes.
    pub len: u64,
    /// Work done, in bytes.
    pub offset: u64,
    /// Whether the job is actively doing I/O.
    pub busy: bool,
    /// Whether the job is paused.
    pub paused: bool,
    /// Speed limit in bytes per second (0: none).
    pub speed: u64,
    /// `ok`, `failed` or `nospace`.
    #[serde(borrow, deserialize_with = "de::string")]
    pub io_status: JsonStr<'a>,
    /// Whether the job can be completed.
    pub ready: bool,
    /// The job's status, as in [`JobInfo::status`].
    #[serde(borrow, deserialize_with = "de::string")]
    pub status: JsonStr<'a>,
    /// Whether the job finalizes by itself.
    pub auto_finalize: bool,
    /// Whether the job is dismissed by itself.
    pub auto_dismiss: bool,
    /// Why the job failed.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub error: Option<JsonStr<'a>>,
    /// Mirror jobs only: whether guest writes are copied synchronously now.
    #[serde(default)]
    pub actively_synced: Option<bool>,
}

super::from_raw_json_via_serde!(BlockJobInfo<'a>);
