//! `qmp watch`: progress bars for block jobs (`query-jobs` and the job events) and
//! migration (`query-migrate` and `MIGRATION`), until each ends; then the outcome.
//!
//! A job is followed until its status is `concluded` (or `null`, or it disappears from
//! `query-jobs` after being dismissed automatically). Its outcome comes from the
//! `error` member of `query-jobs`, `BLOCK_JOB_COMPLETED`'s `error`, or
//! `BLOCK_JOB_CANCELLED`. A migration is followed until `completed`, `failed` or
//! `cancelled`. Progress bars are drawn on stderr when it is a terminal; otherwise each
//! status change is printed as a plain line there. Outcomes go to stdout.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use qmp_std::Error;
use serde_json::Value;

use crate::exit::Failure;
use crate::options::WatchArgs;
use crate::session::Session;

/// Events that tell something about jobs or migration.
const WATCHED_EVENTS: &[&str] = &[
    "JOB_STATUS_CHANGE",
    "BLOCK_JOB_COMPLETED",
    "BLOCK_JOB_CANCELLED",
    "BLOCK_JOB_ERROR",
    "BLOCK_JOB_READY",
    "MIGRATION",
];

/// Migration states after which nothing more happens.
const MIGRATION_FINAL: &[&str] = &["completed", "failed", "cancelled"];

/// How a job or migration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It finished successfully.
    Completed,
    /// It ended with an error.
    Failed(String),
    /// It was cancelled.
    Cancelled,
}

/// What we know about one job.
#[derive(Debug)]
struct JobState {
    kind: String,
    status: String,
    current: u64,
    total: u64,
    error: Option<String>,
    cancelled: bool,
    outcome: Option<Outcome>,
    bar: ProgressBar,
}

/// What we know about the migration.
#[derive(Debug)]
struct MigrationState {
    status: String,
    transferred: u64,
    total: u64,
    total_time_ms: Option<u64>,
    error: Option<String>,
    outcome: Option<Outcome>,
    bar: ProgressBar,
}

/// Prints progress as bars or, when stderr is not a terminal, as plain lines.
struct Display {
    bars: MultiProgress,
    plain: bool,
}

impl Display {
    fn new() -> Self {
        let plain = !std::io::stderr().is_terminal();
        let target = if plain {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Self {
            bars: MultiProgress::with_draw_target(target),
            plain,
        }
    }

    fn bar(&self, prefix: String) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{prefix:24!} [{bar:32.cyan/blue}] {bytes:>10}/{total_bytes:<10} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        self.bars
            .add(ProgressBar::new(0).with_style(style).with_prefix(prefix))
    }

    /// A status line: printed plainly, or above the bars.
    fn note(&self, line: &str) {
        if self.plain {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{line}");
        } else {
            let _ = self.bars.println(line);
        }
    }
}

/// Runs `qmp watch`.
///
/// # Errors
/// [`Failure::JobFailed`] if a job or the migration failed or was cancelled,
/// [`Failure::Timeout`] after `--timeout`, and connection failures.
pub(crate) fn run(session: &Session, args: &WatchArgs) -> Result<(), Failure> {
    if session.is_guest_agent() {
        return Err(Failure::Usage(String::from(
            "the guest agent has no jobs or migration to watch",
        )));
    }
    let events = session.client().subscribe_filtered(WATCHED_EVENTS);
    let deadline = args
        .timeout
        .map(|timeout| Instant::now() + crate::seconds(timeout));
    let interval = Duration::from_millis(args.interval.max(10));
    let display = Display::new();
    let mut watcher = Watcher {
        session,
        display: &display,
        jobs: BTreeMap::new(),
        migration: None,
        wanted_jobs: args.job.clone(),
        watch_jobs: !args.migration,
        watch_migration: args.job.is_empty(),
        migration_supported: true,
        started_anything: false,
    };

    watcher.poll()?;
    if !watcher.started_anything && !args.wait {
        let what = if args.migration {
            "no migration in progress"
        } else if !args.job.is_empty() {
            "none of the named jobs exists"
        } else {
            "no block jobs and no migration in progress"
        };
        eprintln!("qmp: nothing to watch: {what} (use --wait to wait for one)");
        return Ok(());
    }

    let mut next_poll = Instant::now() + interval;
    loop {
        if watcher.started_anything && watcher.all_done() {
            break;
        }
        if let Some(deadline) = deadline {
            if Instant::now() >= deadline {
                display.bars.clear().ok();
                return Err(Failure::Timeout(format!(
                    "still running after {} s",
                    args.timeout.unwrap_or_default()
                )));
            }
        }
        let wake = deadline.map_or(next_poll, |deadline| deadline.min(next_poll));
        match events.recv_deadline(wake) {
            Ok(event) => {
                let concluded = watcher.handle_event(event.name(), &event.data_value());
                if concluded {
                    // Catch the job's error before it is dismissed.
                    watcher.poll()?;
                }
            }
            Err(Error::Timeout) => {
                watcher.poll()?;
                next_poll = Instant::now() + interval;
            }
            Err(error) => {
                return Err(Failure::from_client(error, session.description()));
            }
        }
    }
    watcher.report()
}

struct Watcher<'a> {
    session: &'a Session,
    display: &'a Display,
    jobs: BTreeMap<String, JobState>,
    migration: Option<MigrationState>,
    wanted_jobs: Vec<String>,
    watch_jobs: bool,
    watch_migration: bool,
    migration_supported: bool,
    started_anything: bool,
}

impl Watcher<'_> {
    fn wants_job(&self, id: &str) -> bool {
        self.watch_jobs && (self.wanted_jobs.is_empty() || self.wanted_jobs.iter().any(|w| w == id))
    }

    fn all_done(&self) -> bool {
        let jobs_done = self.jobs.values().all(|job| job.outcome.is_some());
        let named_seen = self.wanted_jobs.iter().all(|id| self.jobs.contains_key(id));
        let migration_done = self
            .migration
            .as_ref()
            .is_none_or(|migration| migration.outcome.is_some());
        jobs_done && named_seen && migration_done
    }

    /// Queries jobs and migration and updates the bars.
    fn poll(&mut self) -> Result<(), Failure> {
        if self.watch_jobs {
            let listed = self.session.execute("query-jobs", &Value::Null)?;
            self.update_jobs(&listed);
        }
        if self.watch_migration && self.migration_supported {
            match self.session.execute("query-migrate", &Value::Null) {
                Ok(info) => self.update_migration(&info),
                Err(Failure::Qmp { class, .. }) if class == "CommandNotFound" => {
                    // qemu-storage-daemon has no migration.
                    self.migration_supported = false;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    fn update_jobs(&mut self, listed: &Value) {
        let listed = listed.as_array().cloned().unwrap_or_default();
        for info in &listed {
            let Some(id) = info.get("id").and_then(Value::as_str) else {
                continue;
            };
            if !self.jobs.contains_key(id) {
                if !self.wants_job(id) {
                    continue;
                }
                let kind = info
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("job")
                    .to_owned();
                let bar = self.display.bar(format!("job {id} ({kind})"));
                self.jobs.insert(
                    id.to_owned(),
                    JobState {
                        kind,
                        status: String::new(),
                        current: 0,
                        total: 0,
                        error: None,
                        cancelled: false,
                        outcome: None,
                        bar,
                    },
                );
                self.started_anything = true;
            }
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            if job.outcome.is_some() {
                continue;
            }
            job.current = info
                .get("current-progress")
                .and_then(Value::as_u64)
                .unwrap_or(job.current);
            job.total = info
                .get("total-progress")
                .and_then(Value::as_u64)
                .unwrap_or(job.total);
            if let Some(error) = info.get("error").and_then(Value::as_str) {
                job.error = Some(error.to_owned());
            }
            job.bar.set_length(job.total);
            job.bar.set_position(job.current);
            let status = info
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            set_job_status(self.display, id, job, &status);
        }
        // Jobs that vanished were dismissed automatically after concluding.
        for (id, job) in &mut self.jobs {
            let present = listed
                .iter()
                .any(|info| info.get("id").and_then(Value::as_str) == Some(id.as_str()));
            if !present && job.outcome.is_none() {
                set_job_status(self.display, id, job, "null");
            }
        }
    }

    fn update_migration(&mut self, info: &Value) {
        let status = info.get("status").and_then(Value::as_str).unwrap_or("none");
        if self.migration.is_none() {
            let active = !matches!(status, "none") && !MIGRATION_FINAL.contains(&status);
            if !active {
                return;
            }
            let bar = self.display.bar(String::from("migration"));
            self.migration = Some(MigrationState {
                status: String::new(),
                transferred: 0,
                total: 0,
                total_time_ms: None,
                error: None,
                outcome: None,
                bar,
            });
            self.started_anything = true;
        }
        let Some(migration) = self.migration.as_mut() else {
            return;
        };
        if migration.outcome.is_some() {
            return;
        }
        if let Some(ram) = info.get("ram") {
            migration.transferred = ram.get("transferred").and_then(Value::as_u64).unwrap_or(0);
            let total = ram.get("total").and_then(Value::as_u64).unwrap_or(0);
            let remaining = ram.get("remaining").and_then(Value::as_u64).unwrap_or(0);
            migration.total = total;
            migration.bar.set_length(total);
            migration.bar.set_position(total.saturating_sub(remaining));
        }
        migration.total_time_ms = info.get("total-time").and_then(Value::as_u64);
        if let Some(error) = info.get("error-desc").and_then(Value::as_str) {
            migration.error = Some(error.to_owned());
        }
        set_migration_status(self.display, migration, status);
    }

    /// Takes one event into account; true when a job just concluded (so its details
    /// should be fetched before they go away).
    fn handle_event(&mut self, name: &str, data: &Value) -> bool {
        let id = data
            .get("id")
            .or_else(|| data.get("device"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match name {
            "JOB_STATUS_CHANGE" => {
                let status = data
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !self.jobs.contains_key(&id) {
                    // New job: picked up (with its type) by the next poll.
                    return self.wants_job(&id);
                }
                status == "concluded" || status == "aborting"
            }
            "BLOCK_JOB_COMPLETED" => {
                if let Some(job) = self.jobs.get_mut(&id) {
                    if let Some(error) = data.get("error").and_then(Value::as_str) {
                        job.error = Some(error.to_owned());
                    }
                }
                false
            }
            "BLOCK_JOB_CANCELLED" => {
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.cancelled = true;
                }
                false
            }
            "BLOCK_JOB_ERROR" => {
                if self.jobs.contains_key(&id) {
                    let operation = data
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("io");
                    let action = data.get("action").and_then(Value::as_str).unwrap_or("?");
                    self.display
                        .note(&format!("job {id}: {operation} error (action: {action})"));
                }
                false
            }
            "MIGRATION" => {
                if let Some(status) = data.get("status").and_then(Value::as_str) {
                    if let Some(migration) = self.migration.as_mut() {
                        set_migration_status(self.display, migration, status);
                        return migration.outcome.is_some();
                    }
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// Prints every outcome on stdout and picks the exit status.
    fn report(&self) -> Result<(), Failure> {
        let _ = self.display.bars.clear();
        let mut stdout = std::io::stdout().lock();
        let mut failed = 0usize;
        let mut total = 0usize;
        for (id, job) in &self.jobs {
            total += 1;
            let line = match &job.outcome {
                Some(Outcome::Completed) => format!(
                    "job {id} ({}): completed ({} of {})",
                    job.kind,
                    HumanBytes(job.current),
                    HumanBytes(job.total)
                ),
                Some(Outcome::Failed(error)) => {
                    failed += 1;
                    format!("job {id} ({}): failed: {error}", job.kind)
                }
                Some(Outcome::Cancelled) => {
                    failed += 1;
                    format!("job {id} ({}): cancelled", job.kind)
                }
                None => format!("job {id} ({}): {}", job.kind, job.status),
            };
            let _ = writeln!(stdout, "{line}");
        }
        if let Some(migration) = &self.migration {
            total += 1;
            let took = migration
                .total_time_ms
                .map(|ms| format!(" in {:.1} s", ms as f64 / 1000.0))
                .unwrap_or_default();
            let line = match &migration.outcome {
                Some(Outcome::Completed) => format!(
                    "migration: completed{took} ({} transferred)",
                    HumanBytes(migration.transferred)
                ),
                Some(Outcome::Failed(error)) => {
                    failed += 1;
                    format!("migration: failed: {error}")
                }
                Some(Outcome::Cancelled) => {
                    failed += 1;
                    String::from("migration: cancelled")
                }
                None => format!("migration: {}", migration.status),
            };
            let _ = writeln!(stdout, "{line}");
        }
        for id in &self.wanted_jobs {
            if !self.jobs.contains_key(id) {
                let _ = writeln!(stdout, "job {id}: never appeared");
            }
        }
        let _ = stdout.flush();
        if failed > 0 {
            Err(Failure::JobFailed(format!(
                "{failed} of {total} watched operations did not complete"
            )))
        } else {
            Ok(())
        }
    }
}

/// Records a job status; decides the outcome when the job is over.
fn set_job_status(display: &Display, id: &str, job: &mut JobState, status: &str) {
    if job.status != status {
        if job.status.is_empty() || display.plain {
            display.note(&format!("job {id} ({}): {status}", job.kind));
        }
        job.status = status.to_owned();
        job.bar.set_message(match status {
            "ready" => String::from("ready: waiting for job-complete"),
            "pending" => String::from("pending"),
            "paused" | "standby" => format!("{status}: waiting for job-resume"),
            other => other.to_owned(),
        });
    }
    if matches!(status, "concluded" | "null") {
        job.outcome = Some(job_outcome(job));
        if job.outcome == Some(Outcome::Completed) {
            // The last progress update may not have been seen before the job went.
            job.current = job.current.max(job.total);
            job.bar.set_position(job.current);
        }
        match job.outcome {
            Some(Outcome::Completed) => job.bar.finish_with_message("completed"),
            Some(Outcome::Failed(_)) => job.bar.abandon_with_message("failed"),
            _ => job.bar.abandon_with_message("cancelled"),
        }
    }
}

fn job_outcome(job: &JobState) -> Outcome {
    match &job.error {
        Some(error) if job.cancelled || error == "Operation canceled" => Outcome::Cancelled,
        Some(error) => Outcome::Failed(error.clone()),
        None if job.cancelled => Outcome::Cancelled,
        None => Outcome::Completed,
    }
}

fn set_migration_status(display: &Display, migration: &mut MigrationState, status: &str) {
    if migration.status != status {
        if migration.status.is_empty() || display.plain {
            display.note(&format!("migration: {status}"));
        }
        migration.status = status.to_owned();
        migration.bar.set_message(status.to_owned());
    }
    let outcome = match status {
        "completed" => Some(Outcome::Completed),
        "failed" => Some(Outcome::Failed(
            migration
                .error
                .clone()
                .unwrap_or_else(|| String::from("no reason given")),
        )),
        "cancelled" => Some(Outcome::Cancelled),
        _ => None,
    };
    if outcome.is_some() && migration.outcome.is_none() {
        match outcome {
            Some(Outcome::Completed) => migration.bar.finish_with_message("completed"),
            _ => migration.bar.abandon_with_message(status.to_owned()),
        }
        migration.outcome = outcome;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(error: Option<&str>, cancelled: bool) -> JobState {
        JobState {
            kind: String::from("backup"),
            status: String::new(),
            current: 0,
            total: 0,
            error: error.map(str::to_owned),
            cancelled,
            outcome: None,
            bar: ProgressBar::hidden(),
        }
    }

    #[test]
    fn job_outcomes() {
        assert_eq!(job_outcome(&job(None, false)), Outcome::Completed);
        assert_eq!(
            job_outcome(&job(Some("Input/output error"), false)),
            Outcome::Failed("Input/output error".into())
        );
        assert_eq!(job_outcome(&job(None, true)), Outcome::Cancelled);
        assert_eq!(
            job_outcome(&job(Some("Operation canceled"), false)),
            Outcome::Cancelled
        );
    }

    #[test]
    fn statuses_conclude_jobs() {
        let display = Display {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            plain: false,
        };
        let mut state = job(None, false);
        set_job_status(&display, "j", &mut state, "running");
        assert_eq!(state.outcome, None);
        set_job_status(&display, "j", &mut state, "ready");
        assert_eq!(state.outcome, None);
        set_job_status(&display, "j", &mut state, "concluded");
        assert_eq!(state.outcome, Some(Outcome::Completed));
    }
}
