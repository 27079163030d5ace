//! Job management: the generic `job-*` commands and the older `block-job-*` ones.
//!
//! Jobs started by `blockdev-create`, `blockdev-mirror`, `blockdev-backup`,
//! `block-stream` and `block-commit` report their progress with `JOB_STATUS_CHANGE`
//! events (`created`, `running`, `ready`, `waiting`, `pending`, `concluded`, `null`).

use crate::json::JsonStr;

use super::de;
use super::macros::{array, command, empty};
use super::{Empty, JsonArray};

/// Defines a job command whose only argument is the job id.
macro_rules! job_id_command {
    ($(#[$attr:meta])* $ty:ident, $name:literal) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $ty<'a> {
            /// The job's id.
            pub id: &'a str,
        }

        command! {
            impl $ty<'a>;
            name: $name,
            response<'r>: Empty = empty
        }
    };
}

job_id_command!(
    /// `job-pause`: pauses a job.
    JobPause,
    "job-pause"
);
job_id_command!(
    /// `job-resume`: resumes a paused job.
    JobResume,
    "job-resume"
);
job_id_command!(
    /// `job-cancel`: cancels a job (a mirror in `ready` state completes without pivoting).
    JobCancel,
    "job-cancel"
);
job_id_command!(
    /// `job-complete`: completes a job waiting in `ready` state (a mirror pivots).
    JobComplete,
    "job-complete"
);
job_id_command!(
    /// `job-finalize`: finalizes a job in `pending` state (started with
    /// `auto-finalize: false`).
    JobFinalize,
    "job-finalize"
);
job_id_command!(
    /// `job-dismiss`: removes a `concluded` job (started with `auto-dismiss: false`, as
    /// `blockdev-create` jobs always are).
    JobDismiss,
    "job-dismiss"
);

command! {
    /// `query-jobs`: every job and its status.
    pub struct QueryJobs;
    name: "query-jobs",
    response<'r>: JsonArray<'r, JobInfo<'r>> = array
}

/// One element of [`QueryJobs`]' return (QAPI `JobInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct JobInfo<'a> {
    /// The job's id.
    #[serde(borrow, deserialize_with = "de::string")]
    pub id: JsonStr<'a>,
    /// `type`: `commit`, `stream`, `mirror`, `backup`, `create`, `amend`, ...
    #[serde(borrow, rename = "type", deserialize_with = "de::string")]
    pub job_type: JsonStr<'a>,
    /// `status`: `created`, `running`, `paused`, `ready`, `standby`, `waiting`,
    /// `pending`, `aborting`, `concluded`, `null`, ...
    #[serde(borrow, deserialize_with = "de::string")]
    pub status: JsonStr<'a>,
    /// Progress so far, in units of `total_progress`.
    pub current_progress: u64,
    /// Estimated total; may change while the job runs.
    pub total_progress: u64,
    /// Why the job failed, once concluded with an error.
    #[serde(borrow, default, deserialize_with = "de::optional_string")]
    pub error: Option<JsonStr<'a>>,
}

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

/// `block-job-cancel`: cancels a block job (a ready mirror completes without pivoting
/// unless `force`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockJobCancel<'a> {
    /// The job's id.
    pub device: &'a str,
    /// Cancel even a paused job, and a ready mirror without completing it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

command! {
    impl BlockJobCancel<'a>;
    name: "block-job-cancel",
    response<'r>: Empty = empty
}

/// Defines a block-job command whose only argument is the job id in `device`.
macro_rules! block_job_command {
    ($(#[$attr:meta])* $ty:ident, $name:literal) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $ty<'a> {
            /// The job's id (named `device` for historical reasons).
            pub device: &'a str,
        }

        command! {
            impl $ty<'a>;
            name: $name,
            response<'r>: Empty = empty
        }
    };
}

block_job_command!(
    /// `block-job-complete`: completes a ready mirror or active commit (pivots to the
    /// target).
    BlockJobComplete,
    "block-job-complete"
);
block_job_command!(
    /// `block-job-pause`: pauses a block job.
    BlockJobPause,
    "block-job-pause"
);
block_job_command!(
    /// `block-job-resume`: resumes a paused block job.
    BlockJobResume,
    "block-job-resume"
);

/// `block-job-set-speed`: changes a block job's speed limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockJobSetSpeed<'a> {
    /// The job's id.
    pub device: &'a str,
    /// Bytes per second (0: unlimited).
    pub speed: u64,
}

command! {
    impl BlockJobSetSpeed<'a>;
    name: "block-job-set-speed",
    response<'r>: Empty = empty
}

super::from_raw_json_via_serde!(JobInfo<'a>, BlockJobInfo<'a>);
