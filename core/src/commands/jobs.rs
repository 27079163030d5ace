//! Job management: the generic `job-*` commands and the older `block-job-*` ones — the
//! generated types of [`crate::qapi`] (QAPI modules `job` and `block-core`), re-exported
//! here. A job's type and status are the schema's [`JobType`] and [`JobStatus`] enums,
//! comparing with a wire value (`job.status == "concluded"`).
//!
//! `query-block-jobs` is the generated [`QueryBlockJobs`]: its [`BlockJobInfo`] is a
//! union on `type` ([`BlockJobInfoBranch`]; a mirror job's [`BlockJobInfoMirror`] holds
//! `actively-synced`, which QEMU 7.2 does not send, so it is an `Option`), with the
//! job's status as a [`JobStatus`] and its I/O status as a [`BlockDeviceIoStatus`].
//!
//! Jobs started by `blockdev-create`, `blockdev-mirror`, `blockdev-backup`,
//! `block-stream` and `block-commit` report their progress with `JOB_STATUS_CHANGE`
//! events (`created`, `running`, `ready`, `waiting`, `pending`, `concluded`, `null`).

pub use crate::qapi::qmp::{
    BlockDeviceIoStatus, BlockJobCancel, BlockJobComplete, BlockJobInfo, BlockJobInfoBranch,
    BlockJobInfoMirror, BlockJobPause, BlockJobResume, BlockJobSetSpeed, JobCancel, JobComplete,
    JobDismiss, JobFinalize, JobInfo, JobPause, JobResume, JobStatus, JobType, QueryBlockJobs,
    QueryJobs,
};
