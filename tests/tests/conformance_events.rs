//! Events and replies through the blocking client, in the order QEMU sent them: block
//! jobs on qemu-storage-daemon (vectors 15 and 16) and run-state changes on
//! `qemu-system-x86_64 -M none` (vector 30), compared entry by entry with the captures.

mod conformance_common;

use core::time::Duration;

use conformance_common::{
    assert_transcripts_eq, connect, leak, options, qsd, qsys, vector_transcript, wait_until,
    watchdog, Transcript, WAIT,
};
use qmp_std::qmp_core::commands::{
    BlockJobComplete, BlockJobInfoBranch, BlockdevAdd, BlockdevCreate, BlockdevCreateOptionsFile,
    BlockdevMirror, BlockdevOptions, BlockdevOptionsNull, Cont, JobDismiss, MirrorSyncMode,
    QueryBlockJobs, QueryJobs, QueryStatus, Quit, Stop, SystemReset,
};
use qmp_std::qmp_core::events::{
    BlockJobCompletedEvent, BlockJobReadyEvent, EventData, JobStatusChangeEvent, ResetEvent,
    ShutdownEvent,
};
use qmp_std::{CloseReason, Error, Event, ServerKind, Subscription};
use qmp_tests::qemu_version;

const LIMIT: Duration = Duration::from_secs(300);

fn null_node(name: &'static str) -> BlockdevAdd<BlockdevOptions<'static>> {
    BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull::new(
        name,
        4 * 1024 * 1024,
    )))
}

/// The status of a `JOB_STATUS_CHANGE`, decoded with the typed event.
fn job_status(event: &Event) -> String {
    let decoded = JobStatusChangeEvent::from_event(event.name(), event.data())
        .unwrap_or_else(|| panic!("{event:?} is not JOB_STATUS_CHANGE"))
        .unwrap_or_else(|error| panic!("{event:?} does not decode: {error}"));
    decoded.status.to_string()
}

/// Every event already queued, without waiting.
fn queued(events: &Subscription) -> Vec<Event> {
    let mut queued = Vec::new();
    // After `quit` the session may close right behind the last event: what was queued
    // still comes first, then the end, which is not an error here.
    while let Some(event) = match events.try_recv() {
        Ok(event) => event,
        Err(Error::Closed(_)) => None,
        Err(error) => panic!("subscription failed: {error}"),
    } {
        queued.push(event);
    }
    queued
}

#[test]
fn blockdev_create_job_events_interleave_with_replies_as_captured() {
    let _guard = watchdog("blockdev_create_transcript", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    let transcript = Transcript::record(&client);
    let image = leak(qsd.dir().join("create-test.img").to_str().unwrap());
    let create = BlockdevCreate::new(
        "job0",
        BlockdevCreateOptionsFile {
            filename: image,
            size: 1 << 20,
            ..Default::default()
        },
    );
    transcript.execute(&create);
    // The capture's client sent the next command after the job concluded.
    transcript.wait_for(6);
    transcript.execute(&QueryJobs);
    transcript.execute(&JobDismiss { id: "job0" });
    assert_transcripts_eq(
        &transcript.entries(),
        &vector_transcript("15-job-blockdev-create"),
    );
    assert!(std::path::Path::new(image).exists());
    assert_eq!(client.stats().unmatched_replies, 0);
}

#[test]
fn mirror_job_events_interleave_with_replies_as_captured() {
    let _guard = watchdog("mirror_transcript", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    let transcript = Transcript::record(&client);
    transcript.execute(&null_node("src"));
    transcript.execute(&null_node("dst"));
    transcript.execute(&BlockdevMirror::new(
        "m0",
        "src",
        "dst",
        MirrorSyncMode::Full,
    ));
    transcript.execute(&QueryBlockJobs);
    transcript.execute(&BlockJobComplete { device: "m0" });
    let expected = vector_transcript("16-job-mirror");
    // Completing emits the rest with no further command (auto-dismiss).
    transcript.wait_for(expected.len());
    assert_transcripts_eq(&transcript.entries(), &expected);
}

#[test]
fn events_sent_before_a_reply_are_queued_when_the_call_returns() {
    let _guard = watchdog("events_before_reply", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    let events = client.subscribe();
    let jobs = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
    let image = qsd.dir().join("queued.img");
    client
        .execute(&BlockdevCreate::new(
            "j",
            BlockdevCreateOptionsFile {
                filename: image.to_str().unwrap(),
                size: 65536,
                ..Default::default()
            },
        ))
        .unwrap();
    // `created` and `running` came before the return: they are in the queue already,
    // however slowly this thread looks (later ones may be there too).
    let mut statuses: Vec<String> = queued(&jobs).iter().map(job_status).collect();
    assert_eq!(
        statuses.get(..2),
        Some(&["created".to_owned(), "running".to_owned()][..])
    );
    while statuses.last().map(String::as_str) != Some("concluded") {
        statuses.push(job_status(&jobs.recv_timeout(WAIT).unwrap()));
    }
    assert_eq!(
        statuses,
        ["created", "running", "waiting", "pending", "concluded"]
    );
    client.execute(&JobDismiss { id: "j" }).unwrap();
    let after_dismiss: Vec<String> = queued(&jobs).iter().map(job_status).collect();
    assert_eq!(after_dismiss, ["null"]);

    client.execute(&null_node("src")).unwrap();
    client.execute(&null_node("dst")).unwrap();
    queued(&events);
    client
        .execute(&BlockdevMirror::new(
            "m0",
            "src",
            "dst",
            MirrorSyncMode::Full,
        ))
        .unwrap();
    let before = queued(&events);
    let names: Vec<&str> = before.iter().map(Event::name).collect();
    assert_eq!(
        names,
        [
            "JOB_STATUS_CHANGE",
            "JOB_STATUS_CHANGE",
            "JOB_STATUS_CHANGE",
            "BLOCK_JOB_READY"
        ]
    );
    let ready = BlockJobReadyEvent::from_event(before[3].name(), before[3].data())
        .unwrap()
        .unwrap();
    assert_eq!(ready.device, "m0");
    assert_eq!((ready.len, ready.offset), (4 << 20, 4 << 20));
    assert_eq!(ready.r#type.as_str(), "mirror");
    // The running mirror job, decoded with the generated union: 7.2's reply (a struct
    // with `type` as a string) selects the mirror branch too, without `actively-synced`.
    let jobs_info = client.execute(&QueryBlockJobs).unwrap();
    let info = jobs_info.get().unwrap();
    let info: Vec<_> = info.iter().map(Result::unwrap).collect();
    assert_eq!(info.len(), 1);
    assert!(info[0].ready);
    assert_eq!(info[0].device, "m0");
    assert_eq!(info[0].status, "ready");
    assert_eq!(info[0].io_status, "ok");
    assert_eq!((info[0].len, info[0].offset), (4 << 20, 4 << 20));
    let BlockJobInfoBranch::Mirror(mirror) = info[0].r#type else {
        panic!("not a mirror job: {:?}", info[0].r#type);
    };
    // Since 8.2; all of the source was copied and no guest writes: not actively synced.
    if qemu_version(ServerKind::StorageDaemon).at_least(8, 2) {
        assert_eq!(mirror.actively_synced, Some(false));
    } else {
        assert_eq!(mirror.actively_synced, None);
    }
    client.execute(&BlockJobComplete { device: "m0" }).unwrap();
    let completed = events.recv_named("BLOCK_JOB_COMPLETED", WAIT).unwrap();
    let completed = BlockJobCompletedEvent::from_event(completed.name(), completed.data())
        .unwrap()
        .unwrap();
    assert_eq!(completed.error, None);
    assert_eq!(completed.offset, 4 << 20);
    assert_eq!(events.missed(), 0);
}

#[test]
fn stop_cont_reset_quit_events_as_captured_then_the_connection_closes() {
    let _guard = watchdog("run_state_transcript", LIMIT);
    let mut qsys = qsys();
    let client = connect(&qsys, options());
    let events = client.subscribe();
    let transcript = Transcript::record(&client);
    let status = client.execute(&QueryStatus).unwrap();
    let status = status.get().unwrap();
    assert!(status.running);
    assert_eq!(status.status, "running");
    // Start the transcript from a clean state (query-status again, recorded).
    transcript.execute(&QueryStatus);
    transcript.execute(&Stop);
    let paused = client.execute(&QueryStatus).unwrap();
    assert_eq!(paused.get().unwrap().status, "paused");
    transcript.execute(&Stop);
    transcript.execute(&Cont);
    transcript.execute(&SystemReset);
    transcript.execute(&Quit);
    let expected = vector_transcript("30-qsys-stop-cont-reset-quit");
    assert_transcripts_eq(&transcript.entries(), &expected);

    // The same events through a subscription, decoded with the typed events.
    let names: Vec<String> = (0..4)
        .map(|_| events.recv_timeout(WAIT).unwrap())
        .map(|event| {
            if let Some(reset) = ResetEvent::from_event(event.name(), event.data()) {
                let reset = reset.unwrap();
                assert!(!reset.guest);
                assert_eq!(reset.reason.as_str(), "host-qmp-system-reset");
            }
            if let Some(shutdown) = ShutdownEvent::from_event(event.name(), event.data()) {
                let shutdown = shutdown.unwrap();
                assert!(!shutdown.guest);
                assert_eq!(shutdown.reason.as_str(), "host-qmp-quit");
            }
            event.name().to_owned()
        })
        .collect();
    assert_eq!(names, ["STOP", "RESUME", "RESET", "SHUTDOWN"]);

    // After quit succeeded, QEMU closes the connection and exits.
    wait_until("the session to end after quit", || client.is_closed());
    assert!(
        matches!(
            client.close_reason(),
            Some(CloseReason::EndOfStream { truncated: false })
        ),
        "{:?}",
        client.close_reason()
    );
    let end = events.recv_timeout(WAIT);
    assert!(matches!(end, Err(Error::Closed(_))), "{end:?}");
    assert!(matches!(
        client.execute(&QueryStatus),
        Err(Error::Closed(CloseReason::EndOfStream { .. }))
    ));
    let exit = qsys.wait_exit(WAIT).unwrap();
    assert!(exit.success(), "{exit}");
}
