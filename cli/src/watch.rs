//! `qmp watch`: progress bars for block jobs and migration until each ends; then the
//! outcome of each, taken from the events.
//!
//! The outcome of a job comes from its events: `BLOCK_JOB_COMPLETED` (failed when it
//! carries `error`), `BLOCK_JOB_CANCELLED`, `JOB_STATUS_CHANGE` to `aborting` (a job
//! that ends after aborting failed or was cancelled, never completed); jobs without
//! block-job events (`blockdev-create`) are concluded with the `error` `query-jobs`
//! shows. A migration's outcome comes from `MIGRATION` (`completed`, `failed`,
//! `cancelled`), which QEMU sends only with the migration capability `events`: `watch
//! --wait` turns it on when it is off and no migration runs (and says so). `query-jobs`
//! and `query-migrate` are polled for progress and as a fallback for the state (a
//! finished migration's state stays in `query-migrate` until the next one starts).
//!
//! Nothing that ends between two polls is missed: the event subscription exists before
//! the first poll, a job or migration is followed from its first event (it need not
//! ever be seen in a poll), and events queued before a poll's reply are taken into
//! account before a job missing from that reply counts as gone.
//!
//! Progress bars (with rate and time left) are drawn on stderr when it is a terminal;
//! otherwise each status change, and progress at most once a second, is printed as a
//! plain line there. Outcomes go to stdout. Exit codes: 0 all completed, 1 one failed,
//! 7 one was cancelled (none failed), 4 a job named with `--job` does not exist, 11
//! `--timeout`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use qmp_std::qmp_core::commands::{
    MigrateSetCapabilities, MigrationCapability, MigrationCapabilityStatus, QueryJobs,
    QueryMigrate, QueryMigrateCapabilities,
};
use qmp_std::qmp_core::events::DecodedEvent;
use qmp_std::{Error, Subscription};

use crate::exit::Failure;
use crate::options::{Seconds, WatchArgs};
use crate::output::terminal_safe;
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

/// QEMU's error text for a cancelled job that is not a block job.
const CANCELLED_ERROR: &str = "Operation canceled";

/// The longest `--interval` taken (an hour), so no clock reading can overflow.
const MAX_INTERVAL_MS: u64 = 3_600_000;

/// How often plain (not terminal) output repeats a running job's progress.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(1);

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

/// A job's progress counter or a migration's byte count or time (QAPI `int`, never
/// negative) as the unsigned count [`Progress`] measures.
fn progress(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Progress measured while watching: for the rate and the time left.
#[derive(Debug, Default)]
struct Progress {
    current: u64,
    total: u64,
    /// The first and the latest reading that moved.
    first: Option<(Instant, u64)>,
    latest: Option<(Instant, u64)>,
}

impl Progress {
    fn update(&mut self, current: u64, total: u64, now: Instant) {
        self.total = total;
        if self.first.is_none() {
            self.first = Some((now, current));
        }
        if current != self.current || self.latest.is_none() {
            self.latest = Some((now, current));
        }
        self.current = current;
    }

    /// Bytes per second between the first and the latest reading.
    fn rate(&self) -> Option<f64> {
        let ((start, from), (end, to)) = (self.first?, self.latest?);
        let seconds = end.saturating_duration_since(start).as_secs_f64();
        (seconds >= 0.2 && to > from).then(|| (to - from) as f64 / seconds)
    }

    /// Rate and time left as text: `32.00 MiB/s, 2 s left`.
    fn rate_text(&self) -> Option<String> {
        let rate = self.rate()?;
        let left = self.total.saturating_sub(self.current) as f64 / rate;
        Some(format!(
            "{}/s, {} left",
            HumanBytes(rate as u64),
            human_seconds(left)
        ))
    }
}

/// Seconds as `2 s`, `3 min 5 s`, `2 h 7 min`.
fn human_seconds(seconds: f64) -> String {
    let whole = seconds.max(0.0).ceil() as u64;
    match whole {
        0..60 => format!("{whole} s"),
        60..3600 => format!("{} min {} s", whole / 60, whole % 60),
        _ => format!("{} h {} min", whole / 3600, (whole % 3600) / 60),
    }
}

/// What we know about one job.
#[derive(Debug)]
struct JobState {
    kind: String,
    status: String,
    progress: Progress,
    /// Went through `aborting`: it can no longer complete.
    aborting: bool,
    outcome: Option<Outcome>,
    last_plain_progress: Option<Instant>,
    bar: ProgressBar,
}

/// What we know about the migration.
#[derive(Debug)]
struct MigrationState {
    status: String,
    progress: Progress,
    transferred: u64,
    total_time_ms: Option<u64>,
    error: Option<String>,
    outcome: Option<Outcome>,
    last_plain_progress: Option<Instant>,
    bar: ProgressBar,
}

/// One job as `query-jobs` lists it.
#[derive(Debug, Clone)]
struct JobSnapshot {
    id: String,
    kind: String,
    status: String,
    current: u64,
    total: u64,
    error: Option<String>,
}

/// The migration as `query-migrate` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MigrationSnapshot {
    status: String,
    transferred: u64,
    done: u64,
    total: u64,
    total_time_ms: Option<u64>,
    error: Option<String>,
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
            "{prefix:24!} [{bar:28.cyan/blue}] {bytes:>10}/{total_bytes:<10} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        self.bars.add(
            ProgressBar::new(0)
                .with_style(style)
                .with_prefix(terminal_safe(&prefix).into_owned()),
        )
    }

    /// A status line: printed plainly, or above the bars.
    fn note(&self, line: &str) {
        let line = terminal_safe(line);
        if self.plain {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{line}");
        } else {
            let _ = self.bars.println(line);
        }
    }

    /// A running job's progress as a plain line, at most once a second.
    fn plain_progress(&self, name: &str, progress: &Progress, last: &mut Option<Instant>) {
        if !self.plain || progress.total == 0 {
            return;
        }
        let now = Instant::now();
        if last.is_some_and(|last| now.duration_since(last) < PLAIN_PROGRESS_EVERY) {
            return;
        }
        let Some(rate) = progress.rate_text() else {
            return;
        };
        *last = Some(now);
        self.note(&format!(
            "{name}: {}/{}, {rate}",
            HumanBytes(progress.current),
            HumanBytes(progress.total)
        ));
    }
}

/// Runs `qmp watch`.
///
/// # Errors
/// [`Failure::JobFailed`] if a job or the migration failed, [`Failure::JobCancelled`]
/// if one was cancelled, [`Failure::UnknownJob`] for a `--job` that does not exist,
/// [`Failure::Timeout`] after `--timeout`, and connection failures.
pub(crate) fn run(session: &Session, args: &WatchArgs) -> Result<(), Failure> {
    if session.is_guest_agent() {
        return Err(Failure::Usage(String::from(
            "the guest agent has no jobs or migration to watch",
        )));
    }
    // Subscribed before anything is asked: nothing can end unseen.
    let events = session.client().subscribe_filtered(WATCHED_EVENTS);
    let deadline = crate::deadline(args.timeout);
    let interval = Duration::from_millis(args.interval.clamp(10, MAX_INTERVAL_MS));
    let display = Display::new();
    let mut watcher = Watcher {
        session,
        display: &display,
        events: &events,
        jobs: BTreeMap::new(),
        migration: None,
        migration_before: None,
        wanted_jobs: args.job.clone(),
        watch_jobs: !args.migration,
        watch_migration: args.job.is_empty(),
        migration_supported: true,
        started_anything: false,
        poll_soon: false,
        missing_jobs: Vec::new(),
    };
    // Only a migration still to come can start and end unseen between two polls.
    if watcher.watch_migration && args.wait {
        watcher.enable_migration_events()?;
    }
    watcher.poll()?;
    if !args.wait {
        watcher.missing_jobs = args
            .job
            .iter()
            .filter(|id| !watcher.jobs.contains_key(*id))
            .cloned()
            .collect();
    }
    if !watcher.started_anything && !args.wait {
        if !args.job.is_empty() {
            return Err(Failure::UnknownJob(format!(
                "no job {}: it does not exist, or ended before watch started (--wait waits \
                 for it to start)",
                args.job.join(", no job ")
            )));
        }
        let what = if args.migration {
            "no migration in progress"
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
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            let _ = display.bars.clear();
            return Err(Failure::Timeout(format!(
                "still running after {}",
                args.timeout.unwrap_or_else(Seconds::none)
            )));
        }
        let wake = deadline.map_or(next_poll, |deadline| deadline.min(next_poll));
        match events.recv_deadline(wake) {
            Ok(event) => {
                watcher.handle_event(&event)?;
                if watcher.poll_soon {
                    watcher.poll()?;
                }
            }
            Err(Error::Timeout) => {
                watcher.poll()?;
                next_poll = Instant::now() + interval;
            }
            Err(error) => return Err(Failure::from_client(error, session.description())),
        }
    }
    watcher.report()
}

struct Watcher<'a> {
    session: &'a Session,
    display: &'a Display,
    events: &'a Subscription,
    jobs: BTreeMap<String, JobState>,
    migration: Option<MigrationState>,
    /// The migration state before anything was watched (a migration that ended before
    /// is not watched).
    migration_before: Option<MigrationSnapshot>,
    wanted_jobs: Vec<String>,
    watch_jobs: bool,
    watch_migration: bool,
    migration_supported: bool,
    started_anything: bool,
    /// A job was first seen in an event: poll at once for its type and progress.
    poll_soon: bool,
    /// Jobs named with `--job` that did not exist when watch started (without
    /// `--wait`).
    missing_jobs: Vec<String>,
}

impl Watcher<'_> {
    fn wants_job(&self, id: &str) -> bool {
        self.watch_jobs && (self.wanted_jobs.is_empty() || self.wanted_jobs.iter().any(|w| w == id))
    }

    fn all_done(&self) -> bool {
        let jobs_done = self.jobs.values().all(|job| job.outcome.is_some());
        let named_seen = self
            .wanted_jobs
            .iter()
            .all(|id| self.jobs.contains_key(id) || self.missing_jobs.contains(id));
        let migration_done = self
            .migration
            .as_ref()
            .is_none_or(|migration| migration.outcome.is_some());
        jobs_done && named_seen && migration_done
    }

    /// Turns on the migration capability `events` (when it is off and no migration
    /// runs), so that a migration's end arrives as an event. Not possible on a server
    /// without migration.
    fn enable_migration_events(&mut self) -> Result<(), Failure> {
        let enabled = match self
            .session
            .call(&QueryMigrateCapabilities, |capabilities| {
                capabilities
                    .iter()
                    .filter_map(Result::ok)
                    .any(|capability| capability.capability == "events" && capability.state)
            }) {
            Ok(enabled) => enabled,
            Err(Failure::Qmp { class, .. }) if class == "CommandNotFound" => {
                // qemu-storage-daemon has no migration.
                self.migration_supported = false;
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        if enabled {
            return Ok(());
        }
        let events_on = [MigrationCapabilityStatus {
            capability: MigrationCapability::Events,
            state: true,
        }];
        let switch = MigrateSetCapabilities {
            capabilities: &events_on,
        };
        match self.session.call(&switch, |_| ()) {
            Ok(_) => {
                self.display.note(
                    "qmp: turned on the migration capability `events` (QEMU then reports \
                     a migration's end as an event)",
                );
                Ok(())
            }
            // A migration is running: it is seen by the first poll and followed to its
            // end, whose state stays in query-migrate.
            Err(Failure::Qmp { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Queries jobs and migration, takes the events that came before the replies into
    /// account, then the replies.
    fn poll(&mut self) -> Result<(), Failure> {
        self.poll_soon = false;
        let jobs = if self.watch_jobs {
            Some(self.session.call(&QueryJobs, |jobs| {
                jobs.iter()
                    .filter_map(Result::ok)
                    .map(|job| JobSnapshot {
                        id: job.id.to_string(),
                        kind: job.r#type.to_string(),
                        status: job.status.to_string(),
                        current: progress(job.current_progress),
                        total: progress(job.total_progress),
                        error: job.error.map(|error| error.to_string()),
                    })
                    .collect::<Vec<_>>()
            })?)
        } else {
            None
        };
        let migration = if self.watch_migration && self.migration_supported {
            match self.session.call(&QueryMigrate, |info| MigrationSnapshot {
                status: info
                    .status
                    .map_or_else(|| String::from("none"), |status| status.to_string()),
                transferred: info.ram.map_or(0, |ram| progress(ram.transferred)),
                done: info.ram.map_or(0, |ram| {
                    progress(ram.total).saturating_sub(progress(ram.remaining))
                }),
                total: info.ram.map_or(0, |ram| progress(ram.total)),
                total_time_ms: info.total_time.map(progress),
                error: info.error_desc.map(|error| error.to_string()),
            }) {
                Ok(snapshot) => Some(snapshot),
                Err(Failure::Qmp { class, .. }) if class == "CommandNotFound" => {
                    self.migration_supported = false;
                    None
                }
                Err(other) => return Err(other),
            }
        } else {
            None
        };
        // Events QEMU sent before these replies are queued already.
        while let Ok(Some(event)) = self.events.try_recv() {
            self.handle_event(&event)?;
        }
        if let Some(jobs) = jobs {
            self.update_jobs(&jobs)?;
        }
        if let Some(migration) = migration {
            self.update_migration(migration);
        }
        Ok(())
    }

    /// The state of job `id`, created when it is first seen.
    fn track_job(&mut self, id: &str, kind: Option<&str>) -> &mut JobState {
        if !self.jobs.contains_key(id) {
            // First seen in an event: its type comes with the next poll, made at once.
            self.poll_soon = kind.is_none();
            self.started_anything = true;
        }
        let display = self.display;
        let job = self.jobs.entry(id.to_owned()).or_insert_with(|| {
            let kind = kind.unwrap_or("job").to_owned();
            JobState {
                bar: display.bar(format!("job {id} ({kind})")),
                kind,
                status: String::new(),
                progress: Progress::default(),
                aborting: false,
                outcome: None,
                last_plain_progress: None,
            }
        });
        if let Some(kind) = kind {
            if job.kind == "job" && kind != "job" {
                kind.clone_into(&mut job.kind);
                job.bar
                    .set_prefix(terminal_safe(&format!("job {id} ({kind})")).into_owned());
            }
        }
        job
    }

    fn update_jobs(&mut self, listed: &[JobSnapshot]) -> Result<(), Failure> {
        let now = Instant::now();
        for info in listed {
            if !self.wants_job(&info.id) {
                continue;
            }
            let display = self.display;
            let job = self.track_job(&info.id, Some(&info.kind));
            if job.outcome.is_some() {
                continue;
            }
            job.progress.update(info.current, info.total, now);
            job.bar.set_length(info.total);
            job.bar.set_position(info.current);
            let name = format!("job {} ({})", info.id, job.kind);
            display.plain_progress(&name, &job.progress, &mut job.last_plain_progress);
            set_job_status(display, &info.id, job, &info.status);
            show_rate(&job.bar, &job.status, &job.progress);
            if matches!(info.status.as_str(), "concluded" | "null") {
                let outcome = outcome_from_listing(job, info.error.as_deref());
                finish_job(job, outcome);
            }
        }
        // Gone from the list (dismissed) without an outcome: its events, which would
        // have come before this reply, were missed.
        let missed = self.events.missed();
        for (id, job) in &mut self.jobs {
            let present = listed.iter().any(|info| &info.id == id);
            if !present && job.outcome.is_none() {
                let outcome = if job.aborting {
                    Outcome::Failed(String::from("aborted (no reason was reported)"))
                } else {
                    Outcome::Failed(format!(
                        "it ended, but how was not seen ({missed} events were missed)"
                    ))
                };
                finish_job(job, outcome);
            }
        }
        Ok(())
    }

    /// Follows the migration from a `query-migrate` reply.
    fn update_migration(&mut self, info: MigrationSnapshot) {
        if self.migration.is_none() {
            let before = self.migration_before.get_or_insert_with(|| info.clone());
            let active = info.status != "none" && !MIGRATION_FINAL.contains(&info.status.as_str());
            // Ended between two polls (seen without the `events` capability): a new
            // migration only if something changed since watch started.
            let ended_since = *before != info && info.status != "none";
            if !active && !ended_since {
                return;
            }
            self.migration = Some(self.new_migration());
            self.started_anything = true;
        }
        let display = self.display;
        let Some(migration) = self.migration.as_mut() else {
            return;
        };
        if migration.outcome.is_some() {
            return;
        }
        migration
            .progress
            .update(info.done, info.total, Instant::now());
        migration.bar.set_length(info.total);
        migration.bar.set_position(info.done);
        migration.transferred = info.transferred;
        migration.total_time_ms = info.total_time_ms.or(migration.total_time_ms);
        if info.error.is_some() {
            migration.error = info.error;
        }
        display.plain_progress(
            "migration",
            &migration.progress,
            &mut migration.last_plain_progress,
        );
        set_migration_status(display, migration, &info.status);
        show_rate(&migration.bar, &migration.status, &migration.progress);
    }

    fn new_migration(&self) -> MigrationState {
        MigrationState {
            status: String::new(),
            progress: Progress::default(),
            transferred: 0,
            total_time_ms: None,
            error: None,
            outcome: None,
            last_plain_progress: None,
            bar: self.display.bar(String::from("migration")),
        }
    }

    /// Takes one event into account.
    fn handle_event(&mut self, event: &qmp_std::Event) -> Result<(), Failure> {
        match DecodedEvent::decode(event.name(), event.data()) {
            DecodedEvent::JobStatusChange(change) => {
                let id = change.id.to_string();
                if !self.wants_job(&id) {
                    return Ok(());
                }
                let status = change.status.to_string();
                let display = self.display;
                let job = self.track_job(&id, None);
                if job.outcome.is_some() {
                    return Ok(());
                }
                if status == "aborting" {
                    job.aborting = true;
                }
                set_job_status(display, &id, job, &status);
                if matches!(status.as_str(), "concluded" | "null") {
                    self.conclude_job(&id)?;
                }
            }
            DecodedEvent::BlockJobCompleted(completed) => {
                let data = completed;
                let id = data.device.to_string();
                if !self.wants_job(&id) {
                    return Ok(());
                }
                let job = self.track_job(&id, Some(&data.r#type.to_string()));
                // QAPI's `int`: never negative here.
                let (offset, len) = (unsigned(data.offset), unsigned(data.len));
                job.progress.update(offset, len, Instant::now());
                job.bar.set_length(len);
                job.bar.set_position(offset);
                let outcome = match data.error {
                    Some(error) => Outcome::Failed(error.to_string()),
                    None if job.aborting => {
                        Outcome::Failed(String::from("aborted (no reason was reported)"))
                    }
                    None => Outcome::Completed,
                };
                finish_job(job, outcome);
            }
            DecodedEvent::BlockJobCancelled(cancelled) => {
                let data = cancelled;
                let id = data.device.to_string();
                if !self.wants_job(&id) {
                    return Ok(());
                }
                let job = self.track_job(&id, Some(&data.r#type.to_string()));
                job.progress
                    .update(unsigned(data.offset), unsigned(data.len), Instant::now());
                finish_job(job, Outcome::Cancelled);
            }
            DecodedEvent::BlockJobError(error) => {
                let id = error.device.to_string();
                if self.wants_job(&id) {
                    self.display.note(&format!(
                        "job {id}: {} error (action: {})",
                        error.operation, error.action
                    ));
                }
            }
            DecodedEvent::BlockJobReady(ready) => {
                let id = ready.device.to_string();
                if self.wants_job(&id) {
                    self.display
                        .note(&format!("job {id}: ready (waiting for job-complete)"));
                }
            }
            DecodedEvent::Migration(change) => {
                if !self.watch_migration || !self.migration_supported {
                    return Ok(());
                }
                let status = change.status.to_string();
                if self.migration.is_none() {
                    if status == "none" {
                        return Ok(());
                    }
                    self.migration = Some(self.new_migration());
                    self.started_anything = true;
                }
                let display = self.display;
                if let Some(migration) = self.migration.as_mut() {
                    if migration.outcome.is_none() && MIGRATION_FINAL.contains(&status.as_str()) {
                        // The error and the times are in query-migrate.
                        return self.conclude_migration(&status);
                    }
                    set_migration_status(display, migration, &status);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A job reached `concluded` or `null` without a block-job event deciding its
    /// outcome: `query-jobs` still lists it (with its error) unless it was dismissed.
    fn conclude_job(&mut self, id: &str) -> Result<(), Failure> {
        if self.jobs.get(id).is_some_and(|job| job.outcome.is_some()) {
            return Ok(());
        }
        let listed = self.session.call(&QueryJobs, |jobs| {
            jobs.iter()
                .filter_map(Result::ok)
                .find(|job| job.id == id)
                .map(|job| {
                    (
                        job.error.map(|error| error.to_string()),
                        progress(job.current_progress),
                        progress(job.total_progress),
                    )
                })
        })?;
        let Some(job) = self.jobs.get_mut(id) else {
            return Ok(());
        };
        let outcome = match listed {
            Some((error, current, total)) => {
                job.progress.update(current, total, Instant::now());
                outcome_from_listing(job, error.as_deref())
            }
            None if job.aborting => {
                Outcome::Failed(String::from("aborted (no reason was reported)"))
            }
            None => Outcome::Completed,
        };
        finish_job(job, outcome);
        Ok(())
    }

    /// The migration reached a final state: its details come from `query-migrate`.
    fn conclude_migration(&mut self, status: &str) -> Result<(), Failure> {
        let details = self.session.call(&QueryMigrate, |info| {
            (
                info.error_desc.map(|error| error.to_string()),
                info.total_time.map(progress),
                info.ram.map(|ram| progress(ram.transferred)),
            )
        });
        let display = self.display;
        let Some(migration) = self.migration.as_mut() else {
            return Ok(());
        };
        if let Ok((error, total_time, transferred)) = details {
            migration.error = error.or(migration.error.take());
            migration.total_time_ms = total_time.or(migration.total_time_ms);
            if let Some(transferred) = transferred {
                migration.transferred = transferred;
            }
        }
        set_migration_status(display, migration, status);
        Ok(())
    }

    /// Prints every outcome on stdout and picks the exit status.
    fn report(&self) -> Result<(), Failure> {
        let _ = self.display.bars.clear();
        let mut stdout = std::io::stdout().lock();
        let (mut failed, mut cancelled, mut total) = (0usize, 0usize, 0usize);
        for (id, job) in &self.jobs {
            total += 1;
            let line = match &job.outcome {
                Some(Outcome::Completed) => {
                    let rate = job
                        .progress
                        .rate()
                        .map(|rate| format!(", {}/s", HumanBytes(rate as u64)))
                        .unwrap_or_default();
                    format!(
                        "job {id} ({}): completed ({} of {}{rate})",
                        job.kind,
                        HumanBytes(job.progress.current),
                        HumanBytes(job.progress.total)
                    )
                }
                Some(Outcome::Failed(error)) => {
                    failed += 1;
                    format!("job {id} ({}): failed: {error}", job.kind)
                }
                Some(Outcome::Cancelled) => {
                    cancelled += 1;
                    format!("job {id} ({}): cancelled", job.kind)
                }
                None => format!("job {id} ({}): {}", job.kind, job.status),
            };
            let _ = writeln!(stdout, "{}", terminal_safe(&line));
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
                    cancelled += 1;
                    String::from("migration: cancelled")
                }
                None => format!("migration: {}", migration.status),
            };
            let _ = writeln!(stdout, "{}", terminal_safe(&line));
        }
        for id in &self.missing_jobs {
            let _ = writeln!(stdout, "job {}: no such job", terminal_safe(id));
        }
        let _ = stdout.flush();
        if failed > 0 {
            Err(Failure::JobFailed(format!(
                "{failed} of {total} watched operations failed"
            )))
        } else if cancelled > 0 {
            Err(Failure::JobCancelled(format!(
                "{cancelled} of {total} watched operations were cancelled"
            )))
        } else if !self.missing_jobs.is_empty() {
            Err(Failure::UnknownJob(format!(
                "no job {}: it does not exist, or ended before watch started",
                self.missing_jobs.join(", no job ")
            )))
        } else {
            Ok(())
        }
    }
}

/// The outcome of a concluded job from `query-jobs`' `error` (when no block-job event
/// decided it).
fn outcome_from_listing(job: &JobState, error: Option<&str>) -> Outcome {
    match error {
        Some(CANCELLED_ERROR) => Outcome::Cancelled,
        Some(error) => Outcome::Failed(error.to_owned()),
        None if job.aborting => Outcome::Failed(String::from("aborted (no reason was reported)")),
        None => Outcome::Completed,
    }
}

/// The bar's message while running: the status, the rate and the time left (measured
/// here between polls: indicatif's own estimate counts the progress made before watch
/// started as if it were instant).
fn show_rate(bar: &ProgressBar, status: &str, progress: &Progress) {
    if bar.is_finished() {
        return;
    }
    let status = terminal_safe(status);
    match progress.rate_text() {
        Some(rate) if status == "running" || status == "active" => {
            bar.set_message(format!("{status}, {rate}"));
        }
        _ => {}
    }
}

/// Records a job's outcome (the first one decided stands) and ends its bar.
fn finish_job(job: &mut JobState, outcome: Outcome) {
    if job.outcome.is_some() {
        return;
    }
    match &outcome {
        Outcome::Completed => job.bar.finish_with_message("completed"),
        Outcome::Failed(_) => job.bar.abandon_with_message("failed"),
        Outcome::Cancelled => job.bar.abandon_with_message("cancelled"),
    }
    job.outcome = Some(outcome);
}

/// Records a job status.
fn set_job_status(display: &Display, id: &str, job: &mut JobState, status: &str) {
    if job.status == status {
        return;
    }
    if job.status.is_empty() || display.plain {
        display.note(&format!("job {id} ({}): {status}", job.kind));
    }
    status.clone_into(&mut job.status);
    job.bar.set_message(match status {
        "ready" => String::from("ready: waiting for job-complete"),
        "paused" | "standby" => format!("{status}: waiting for job-resume"),
        other => terminal_safe(other).into_owned(),
    });
}

fn set_migration_status(display: &Display, migration: &mut MigrationState, status: &str) {
    if migration.status != status {
        if migration.status.is_empty() || display.plain {
            display.note(&format!("migration: {status}"));
        }
        status.clone_into(&mut migration.status);
        migration
            .bar
            .set_message(terminal_safe(status).into_owned());
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
            _ => migration
                .bar
                .abandon_with_message(terminal_safe(status).into_owned()),
        }
        migration.outcome = outcome;
    }
}

/// A QAPI `int` progress value as a count (negative ones, which QEMU never sends, as 0).
fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(aborting: bool) -> JobState {
        JobState {
            kind: String::from("backup"),
            status: String::new(),
            progress: Progress::default(),
            aborting,
            outcome: None,
            last_plain_progress: None,
            bar: ProgressBar::hidden(),
        }
    }

    #[test]
    fn listed_outcomes() {
        assert_eq!(outcome_from_listing(&job(false), None), Outcome::Completed);
        assert_eq!(
            outcome_from_listing(&job(false), Some("Input/output error")),
            Outcome::Failed("Input/output error".into())
        );
        assert_eq!(
            outcome_from_listing(&job(true), Some(CANCELLED_ERROR)),
            Outcome::Cancelled
        );
        // Aborting never ends as completed.
        assert!(matches!(
            outcome_from_listing(&job(true), None),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn the_first_outcome_stands() {
        let mut state = job(false);
        finish_job(&mut state, Outcome::Failed("EIO".into()));
        finish_job(&mut state, Outcome::Completed);
        assert_eq!(state.outcome, Some(Outcome::Failed("EIO".into())));
    }

    #[test]
    fn rate_and_time_left() {
        let start = Instant::now();
        let mut progress = Progress::default();
        progress.update(0, 100 << 20, start);
        assert_eq!(progress.rate(), None);
        progress.update(50 << 20, 100 << 20, start + Duration::from_secs(2));
        let rate = progress.rate().unwrap();
        assert!((rate - f64::from(25 << 20)).abs() < 1.0, "{rate}");
        assert_eq!(progress.rate_text().unwrap(), "25.00 MiB/s, 2 s left");
        assert_eq!(human_seconds(125.0), "2 min 5 s");
        assert_eq!(human_seconds(7300.0), "2 h 1 min");
    }
}
