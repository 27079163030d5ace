//! `qmp watch` against real QEMU: job and migration outcomes taken from the events
//! (failed, cancelled, completed, unknown job), and `--wait` seeing what ends between
//! two polls. One QEMU per test, the scenarios in turn.

mod common;

use std::path::Path;
use std::process::Child;

use common::{qmp_command, run_qmp, socket_args, wait_output, Output, LIMIT};
use qmp_std::{Launcher, ServerKind};

/// Runs a one-shot command on `socket` and expects success.
fn ok(socket: &Path, words: &[&str]) {
    run_qmp(
        socket_args(socket)
            .into_iter()
            .chain(words.iter().map(|word| (*word).to_owned())),
        LIMIT,
    )
    .assert_code(0);
}

/// `qmp watch ARGS` on `socket`, running; returns once it is connected (as `main`
/// shows) and so subscribed.
fn start_watch(main: &Path, socket: &Path, args: &[&str]) -> Child {
    let child = qmp_command(
        socket_args(socket)
            .into_iter()
            .chain(std::iter::once(String::from("watch")))
            .chain(args.iter().map(|arg| (*arg).to_owned())),
    )
    .spawn()
    .unwrap();
    common::wait_for_client(main, socket);
    child
}

fn assert_outcome(output: &Output, code: i32, line: &str) {
    output.assert_code(code);
    assert!(
        output.stdout.contains(line),
        "wanted {line:?}\nstdout:\n{}\nstderr:\n{}",
        output.stdout,
        output.stderr
    );
}

#[test]
fn block_job_outcomes_come_from_the_events() {
    let qsd = Launcher::new(ServerKind::StorageDaemon)
        .extra_monitors(1)
        .spawn()
        .expect("start qemu-storage-daemon");
    let main = qsd.socket_path();
    let other = &qsd.extra_socket_paths()[0];
    let size = 64u64 << 20;
    let size_arg = format!("size={size}");
    ok(
        main,
        &["blockdev-add", "driver=null-co", "node-name=src", &size_arg],
    );
    ok(
        main,
        &["blockdev-add", "driver=null-co", "node-name=dst", &size_arg],
    );
    // Writes fail from about 48 MiB on: a throttled backup runs a while first.
    ok(
        main,
        &[
            "blockdev-add",
            "driver=blkdebug",
            "node-name=bad",
            "image.driver=null-co",
            &format!("image.size={size}"),
            "inject-error.0.event=pwritev",
            "inject-error.0.errno=5",
            "inject-error.0.sector=100000",
        ],
    );

    // 1. A job that fails (auto-dismiss on): watched while it runs (about three
    // seconds), as `qmp watch` without --wait; BLOCK_JOB_COMPLETED carries the error.
    let speed = format!("speed={}", 16u64 << 20);
    ok(
        main,
        &[
            "blockdev-backup",
            "job-id=f1",
            "device=src",
            "target=bad",
            "sync=full",
            &speed,
        ],
    );
    let output = run_qmp(socket_args(main).into_iter().chain(["watch".into()]), LIMIT);
    assert_outcome(&output, 1, "job f1 (backup): failed: Input/output error");
    assert!(!output.stdout.contains("completed"), "{}", output.stdout);
    assert!(
        output.stderr.contains("job f1: write error"),
        "{}",
        output.stderr
    );

    // 2. A cancelled job: exit 7, never "completed".
    let slow = format!("speed={}", 4u64 << 20);
    ok(
        main,
        &[
            "blockdev-backup",
            "job-id=c1",
            "device=src",
            "target=dst",
            "sync=full",
            &slow,
        ],
    );
    let watcher = start_watch(main, other, &["--job", "c1"]);
    ok(main, &["job-cancel", "id=c1"]);
    let output = wait_output(watcher, LIMIT);
    assert_outcome(&output, 7, "job c1 (backup): cancelled");
    assert!(!output.stdout.contains("null"), "{}", output.stdout);

    // 3. A job that does not exist: exit 4 (not "nothing to watch", exit 0).
    let output = run_qmp(
        socket_args(main)
            .into_iter()
            .chain(["watch", "--job", "nosuch"].map(String::from)),
        LIMIT,
    );
    output.assert_code(4);
    assert!(output.stderr.contains("no job nosuch"), "{}", output.stderr);
    // Beside a job that exists: that job is followed to its end, and the exit code
    // still says that the other does not exist.
    // About four seconds: still running when watch starts.
    let quick = format!("speed={}", 16u64 << 20);
    ok(
        main,
        &[
            "blockdev-backup",
            "job-id=q1",
            "device=src",
            "target=dst",
            "sync=full",
            &quick,
        ],
    );
    let output = run_qmp(
        socket_args(main).into_iter().chain(
            ["watch", "--job", "q1", "--job", "nosuch", "--timeout", "30"].map(String::from),
        ),
        LIMIT,
    );
    assert_outcome(
        &output,
        4,
        "job q1 (backup): completed (64.00 MiB of 64.00 MiB",
    );
    assert!(
        output.stdout.contains("job nosuch: no such job"),
        "{}",
        output.stdout
    );

    // 4. A fast job started while `watch --wait` waits: it starts and ends between two
    // polls (unthrottled, dismissed at once), yet it is reported.
    let watcher = start_watch(
        main,
        other,
        &[
            "--job",
            "fast",
            "--wait",
            "--timeout",
            "30",
            "--interval",
            "5000",
        ],
    );
    ok(
        main,
        &[
            "blockdev-backup",
            "job-id=fast",
            "device=src",
            "target=dst",
            "sync=full",
        ],
    );
    let output = wait_output(watcher, LIMIT);
    assert_outcome(
        &output,
        0,
        "job fast (backup): completed (64.00 MiB of 64.00 MiB",
    );

    // 5. A failing job started while `watch --wait` waits, ending between polls.
    let watcher = start_watch(
        main,
        other,
        &["--wait", "--timeout", "30", "--interval", "5000"],
    );
    ok(
        main,
        &[
            "blockdev-backup",
            "job-id=f2",
            "device=src",
            "target=bad",
            "sync=full",
        ],
    );
    let output = wait_output(watcher, LIMIT);
    assert_outcome(&output, 1, "job f2 (backup): failed: Input/output error");
}

#[test]
fn migration_outcome_comes_from_the_event() {
    let qemu = Launcher::new(ServerKind::System)
        .extra_monitors(1)
        .spawn()
        .expect("start qemu-system-x86_64");
    let main = qemu.socket_path();
    let other = &qemu.extra_socket_paths()[0];
    // A migration that fails at once (nothing listens at the address) while
    // `watch --wait` waits: it begins and ends between two polls.
    let watcher = start_watch(
        main,
        other,
        &[
            "--migration",
            "--wait",
            "--timeout",
            "30",
            "--interval",
            "5000",
        ],
    );
    ok(main, &["migrate", "uri=unix:/nonexistent/qmp-test.sock"]);
    let output = wait_output(watcher, LIMIT);
    assert_outcome(
        &output,
        1,
        "migration: failed: Failed to connect to '/nonexistent/qmp-test.sock'",
    );
    assert!(
        output
            .stderr
            .contains("turned on the migration capability `events`"),
        "{}",
        output.stderr
    );
    // `exec:false` on -M none fails or completes (the one page of state may be in the
    // pipe before `false` exits): whichever it is, watch reports what query-migrate says.
    let watcher = start_watch(
        main,
        other,
        &[
            "--migration",
            "--wait",
            "--timeout",
            "30",
            "--interval",
            "5000",
        ],
    );
    ok(main, &["migrate", "uri=exec:false"]);
    let output = wait_output(watcher, LIMIT);
    let final_state = run_qmp(
        socket_args(main)
            .into_iter()
            .chain(["query-migrate".into()]),
        LIMIT,
    );
    final_state.assert_code(0);
    match final_state.json()["status"].as_str() {
        Some("failed") => assert_outcome(&output, 1, "migration: failed: "),
        Some("completed") => assert_outcome(&output, 0, "migration: completed in "),
        other => panic!("migration ended as {other:?}"),
    }
    // Watching afterwards: the old, failed migration is not a new one.
    let output = run_qmp(
        socket_args(main)
            .into_iter()
            .chain(["watch", "--migration"].map(String::from)),
        LIMIT,
    );
    output.assert_code(0);
    assert!(
        output.stderr.contains("nothing to watch"),
        "{}",
        output.stderr
    );
}
