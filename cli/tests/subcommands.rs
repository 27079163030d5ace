//! `events`, `watch`, `schema`, `completions` and the shell fed from a pipe, against
//! real QEMU.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    qmp_command, run_qmp, socket_args, storage_daemon, system, wait_output, Output, LIMIT,
};
use serde_json::Value;

/// Runs a one-shot command on `socket` and expects success.
fn ok(socket: &Path, words: &[&str]) -> Value {
    let output = run_qmp(
        socket_args(socket)
            .into_iter()
            .chain(words.iter().map(|word| (*word).to_owned())),
        LIMIT,
    );
    output.assert_code(0);
    output.json()
}

/// Two null-co nodes and a backup job between them throttled to last about
/// `seconds` seconds.
fn start_slow_backup(socket: &Path, job: &str, seconds: u64) {
    let size = 64u64 << 20;
    let size_arg = format!("size={size}");
    let speed = format!("speed={}", size / seconds);
    ok(
        socket,
        &["blockdev-add", "driver=null-co", "node-name=src", &size_arg],
    );
    ok(
        socket,
        &["blockdev-add", "driver=null-co", "node-name=dst", &size_arg],
    );
    let job_id = format!("job-id={job}");
    ok(
        socket,
        &[
            "blockdev-backup",
            &job_id,
            "device=src",
            "target=dst",
            "sync=full",
            &speed,
        ],
    );
}

fn lines_as_json(output: &Output) -> Vec<Value> {
    output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect()
}

#[test]
fn events_are_printed_as_json_lines() {
    let qsd = storage_daemon(1);
    let listener = qmp_command(
        socket_args(&qsd.extra_socket_paths()[0])
            .into_iter()
            .chain([
                "events".into(),
                "--count".into(),
                "3".into(),
                "--timeout".into(),
                "30".into(),
            ]),
    )
    .spawn()
    .unwrap();
    common::wait_for_client(qsd.socket_path(), &qsd.extra_socket_paths()[0]);
    start_slow_backup(qsd.socket_path(), "b0", 2);
    let output = wait_output(listener, LIMIT);
    output.assert_code(0);
    let events = lines_as_json(&output);
    assert_eq!(events.len(), 3, "{}", output.stdout);
    // Members in QEMU's order, the job from its creation on.
    let first = output.stdout.lines().next().unwrap();
    assert!(
        first.starts_with(
            r#"{"event":"JOB_STATUS_CHANGE","data":{"id":"b0","status":"created"},"timestamp":{"seconds":"#
        ),
        "{first}"
    );
    for event in &events {
        assert!(event["event"].is_string(), "{event}");
        assert!(
            event["timestamp"]["seconds"].as_i64().unwrap() > 0,
            "{event}"
        );
    }
}

#[test]
fn events_filter_and_count() {
    let qsd = storage_daemon(1);
    let listener = qmp_command(
        socket_args(&qsd.extra_socket_paths()[0]).into_iter().chain(
            [
                "events",
                "--filter",
                "BLOCK_JOB_COMPLETED",
                "--count",
                "1",
                "--timeout",
                "30",
            ]
            .map(String::from),
        ),
    )
    .spawn()
    .unwrap();
    common::wait_for_client(qsd.socket_path(), &qsd.extra_socket_paths()[0]);
    start_slow_backup(qsd.socket_path(), "b0", 2);
    let output = wait_output(listener, LIMIT);
    output.assert_code(0);
    let events = lines_as_json(&output);
    assert_eq!(events.len(), 1, "{}", output.stdout);
    assert_eq!(events[0]["event"], "BLOCK_JOB_COMPLETED");
    assert_eq!(events[0]["data"]["device"], "b0");
    assert_eq!(events[0]["data"]["type"], "backup");
}

#[test]
fn events_timeouts() {
    let qsd = storage_daemon(0);
    let socket = socket_args(qsd.socket_path());
    let started = Instant::now();
    let output = run_qmp(
        socket
            .iter()
            .cloned()
            .chain(["events", "--timeout", "0.5"].map(String::from)),
        LIMIT,
    );
    output.assert_code(0);
    assert!(output.stdout.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(500));
    let output = run_qmp(
        socket
            .iter()
            .cloned()
            .chain(["events", "--count", "1", "--timeout", "0.5"].map(String::from)),
        LIMIT,
    );
    output.assert_code(11);
    assert!(output.stderr.contains("0 of 1 events"), "{}", output.stderr);
}

/// `qmp events` with `extra` options on the monitor at `socket`, running.
fn listen_on(socket: &Path, extra: &[&str]) -> std::process::Child {
    let mut args = socket_args(socket);
    args.push("events".into());
    args.extend(extra.iter().map(|word| (*word).to_owned()));
    qmp_command(args).spawn().unwrap()
}

#[test]
fn events_end_cleanly_when_qemu_shuts_down() {
    let mut qemu = system(1);
    let extra = &qemu.extra_socket_paths()[0];
    let listener = listen_on(extra, &[]);
    common::wait_for_client(qemu.socket_path(), extra);
    ok(qemu.socket_path(), &["quit"]);
    let output = wait_output(listener, LIMIT);
    output.assert_code(0);
    let events = lines_as_json(&output);
    let last = events
        .last()
        .unwrap_or_else(|| panic!("no events: {}", output.stderr));
    assert_eq!(last["event"], "SHUTDOWN");
    assert_eq!(last["data"]["reason"], "host-qmp-quit");
    qemu.wait_exit(Duration::from_secs(10)).unwrap();

    // Also when SHUTDOWN itself is filtered out.
    let mut qemu = system(1);
    let extra = &qemu.extra_socket_paths()[0];
    let listener = listen_on(extra, &["--filter", "JOB_STATUS_CHANGE"]);
    common::wait_for_client(qemu.socket_path(), extra);
    ok(qemu.socket_path(), &["quit"]);
    let output = wait_output(listener, LIMIT);
    output.assert_code(0);
    assert!(output.stdout.is_empty(), "{}", output.stdout);
    qemu.wait_exit(Duration::from_secs(10)).unwrap();

    // A QEMU that dies without SHUTDOWN is a lost connection.
    let mut qemu = system(1);
    let extra = &qemu.extra_socket_paths()[0];
    let listener = listen_on(extra, &[]);
    common::wait_for_client(qemu.socket_path(), extra);
    qemu.kill().unwrap();
    let output = wait_output(listener, LIMIT);
    output.assert_code(10);
    assert!(
        output.stderr.contains("did QEMU exit or crash?"),
        "{}",
        output.stderr
    );
}

#[test]
fn watch_follows_a_job_to_completion() {
    let qsd = storage_daemon(0);
    start_slow_backup(qsd.socket_path(), "b0", 2);
    let output = run_qmp(
        socket_args(qsd.socket_path())
            .into_iter()
            .chain(["watch".into()]),
        LIMIT,
    );
    output.assert_code(0);
    assert!(
        output
            .stdout
            .contains("job b0 (backup): completed (64.00 MiB of 64.00 MiB, "),
        "stdout: {}\nstderr: {}",
        output.stdout,
        output.stderr
    );
    // stderr is not a terminal: plain status lines instead of bars.
    assert!(
        output.stderr.contains("job b0 (backup): running"),
        "{}",
        output.stderr
    );
}

#[test]
fn watch_reports_a_failed_job() {
    let qsd = storage_daemon(0);
    let socket = qsd.socket_path();
    // blockdev-create jobs stay (concluded, with their error) until dismissed.
    ok(
        socket,
        &[
            "blockdev-create",
            "job-id=c0",
            "options.driver=file",
            "options.filename=/nonexistent/dir/x.img",
            "options.size=1048576",
        ],
    );
    let output = run_qmp(
        socket_args(socket)
            .into_iter()
            .chain(["watch".into(), "--job".into(), "c0".into()]),
        LIMIT,
    );
    output.assert_code(1);
    assert!(
        output.stdout.contains(
            "job c0 (create): failed: Could not create '/nonexistent/dir/x.img': No such file or directory"
        ),
        "stdout: {}\nstderr: {}",
        output.stdout,
        output.stderr
    );
    assert!(
        output.stderr.contains("1 of 1 watched operations failed"),
        "{}",
        output.stderr
    );
}

#[test]
fn watch_with_nothing_running() {
    let qsd = storage_daemon(0);
    let socket = socket_args(qsd.socket_path());
    let output = run_qmp(socket.iter().cloned().chain(["watch".into()]), LIMIT);
    output.assert_code(0);
    assert!(
        output.stderr.contains("nothing to watch"),
        "{}",
        output.stderr
    );
    let output = run_qmp(
        socket
            .iter()
            .cloned()
            .chain(["watch", "--wait", "--timeout", "0.5"].map(String::from)),
        LIMIT,
    );
    output.assert_code(11);
}

#[test]
fn watch_waits_for_a_job_to_start() {
    let qsd = storage_daemon(1);
    let watcher = qmp_command(
        socket_args(&qsd.extra_socket_paths()[0])
            .into_iter()
            .chain(["watch", "--wait", "--timeout", "40"].map(String::from)),
    )
    .spawn()
    .unwrap();
    common::wait_for_client(qsd.socket_path(), &qsd.extra_socket_paths()[0]);
    start_slow_backup(qsd.socket_path(), "late", 1);
    let output = wait_output(watcher, LIMIT);
    output.assert_code(0);
    assert!(
        output.stdout.contains("job late (backup): completed"),
        "{}",
        output.stdout
    );
}

/// A paused PC with a little RAM: enough for a migration stream that outgrows a pipe.
fn migratable_machine() -> qmp_std::QemuProcess {
    qmp_std::Launcher::new(qmp_std::ServerKind::System)
        .machine("pc")
        .args(["-S", "-m", "64"])
        .spawn()
        .expect("start qemu-system-x86_64 -M pc")
}

#[test]
fn watch_follows_a_migration() {
    let qemu = migratable_machine();
    let socket = qemu.socket_path();
    // The reader starts late, so the migration stays active about two seconds.
    ok(socket, &["migrate", "uri=exec:sleep 2; cat > /dev/null"]);
    let output = run_qmp(
        socket_args(socket)
            .into_iter()
            .chain(["watch".into(), "--migration".into()]),
        LIMIT,
    );
    output.assert_code(0);
    assert!(
        output.stdout.contains("migration: completed in "),
        "stdout: {}\nstderr: {}",
        output.stdout,
        output.stderr
    );
    assert!(
        output.stderr.contains("migration: active"),
        "{}",
        output.stderr
    );
}

#[test]
fn watch_reports_a_failed_migration() {
    let qemu = migratable_machine();
    let socket = qemu.socket_path();
    ok(socket, &["migrate", "uri=exec:sleep 1; exit 1"]);
    let output = run_qmp(
        socket_args(socket).into_iter().chain(["watch".into()]),
        LIMIT,
    );
    output.assert_code(1);
    assert!(
        output
            .stdout
            .contains("migration: failed: Unable to write to command: Broken pipe"),
        "stdout: {}\nstderr: {}",
        output.stdout,
        output.stderr
    );
}

#[test]
fn schema_browsing() {
    let overview = run_qmp(["schema"], LIMIT);
    overview.assert_code(0);
    assert!(
        overview.stdout.starts_with("commands ("),
        "{}",
        overview.stdout
    );
    assert!(
        overview.stdout.contains("blockdev-add"),
        "{}",
        overview.stdout
    );

    let described = run_qmp(["schema", "blockdev-add"], LIMIT);
    described.assert_code(0);
    assert!(
        described.stdout.starts_with("blockdev-add (command)\n"),
        "{}",
        described.stdout
    );
    assert!(
        described
            .stdout
            .contains("when driver is 'file' | 'host_cdrom' | 'host_device':"),
        "{}",
        described.stdout
    );

    let member = run_qmp(["schema", "blockdev-mirror.sync"], LIMIT);
    member.assert_code(0);
    assert!(
        member
            .stdout
            .starts_with("blockdev-mirror.sync: enum\n  top, full, none, incremental, bitmap\n\n"),
        "{}",
        member.stdout
    );
    // Then QEMU's own words about the member, from the generated vocabulary.
    assert!(
        member.stdout.contains(
            "From QEMU's documentation of blockdev-mirror:\n  sync: MirrorSyncMode\n      what parts of the disk image should be copied"
        ),
        "{}",
        member.stdout
    );

    let raw = run_qmp(["schema", "--json", "query-jobs"], LIMIT);
    raw.assert_code(0);
    let entries = raw.json();
    assert_eq!(entries[0]["name"], "query-jobs");
    assert!(entries.as_array().unwrap().len() > 3);

    let unknown = run_qmp(["schema", "blockdev"], LIMIT);
    unknown.assert_code(3);
    assert!(
        unknown.stderr.contains("did you mean"),
        "{}",
        unknown.stderr
    );

    // The live schema of the target, not a built-in one.
    let qemu = system(0);
    let status = run_qmp(
        socket_args(qemu.socket_path())
            .into_iter()
            .chain(["schema".into(), "query-status".into()]),
        LIMIT,
    );
    status.assert_code(0);
    assert!(status.stdout.contains("running: bool"), "{}", status.stdout);
}

#[test]
fn completion_scripts() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef qmp"),
        ("fish", "complete -c qmp"),
        ("elvish", "qmp"),
    ] {
        let output = run_qmp(["completions", shell], LIMIT);
        output.assert_code(0);
        assert!(output.stdout.contains(marker), "{shell}: {}", output.stdout);
        assert!(output.stdout.contains("watch"), "{shell}");
    }
}

/// Feeds `script` to `qmp shell` on stdin (not a terminal).
fn piped_shell(socket: &Path, script: &str) -> Output {
    let mut child = qmp_command(socket_args(socket).into_iter().chain(["shell".into()]))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    wait_output(child, LIMIT)
}

#[test]
fn shell_from_a_pipe_runs_commands_hmp_and_transactions() {
    let qemu = system(0);
    let script = "\
query-status
hmp info status
blockdev-add driver=null-co node-name=n0 size=1048576
transaction(
block-dirty-bitmap-add node=n0 name=b0
block-dirty-bitmap-add node=n0 name=b1
)
begin block-dirty-bitmap-add node=n0 name=b2 )
no-such-command
{\"execute\": \"query-name\"}
help query-status
exit
query-version
";
    let output = piped_shell(qemu.socket_path(), script);
    // The failed line (CommandNotFound) sets the exit code; the script went on.
    output.assert_code(3);
    let stdout = &output.stdout;
    assert!(
        stdout.contains(r#"{"running":true,"status":"running"}"#),
        "{stdout}"
    );
    // stdout is a pipe: every result is a JSON line, HMP's text a JSON string, and
    // help text goes to stderr.
    assert!(stdout.contains(r#""VM status: running\n""#), "{stdout}");
    for line in stdout.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|error| panic!("{error}: {line}"));
    }
    assert!(
        output.stderr.contains("query-status (command)"),
        "{}",
        output.stderr
    );
    assert!(
        !stdout.contains("\"qemu\""),
        "commands after exit ran: {stdout}"
    );
    assert!(
        output.stderr.contains(
            "line 9: error: CommandNotFound: The command no-such-command has not been found"
        ),
        "{}",
        output.stderr
    );

    // All three bitmaps exist: both transaction forms were sent.
    let bitmaps = ok(qemu.socket_path(), &["query-named-block-nodes"]);
    let names: Vec<&str> = bitmaps[0]["dirty-bitmaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bitmap| bitmap["name"].as_str().unwrap())
        .collect();
    for name in ["b0", "b1", "b2"] {
        assert!(names.contains(&name), "{name} missing: {bitmaps}");
    }
}

#[test]
fn shell_from_a_pipe_prints_events() {
    let qsd = storage_daemon(0);
    let script = "\
blockdev-add driver=null-co node-name=src size=1048576
blockdev-add driver=null-co node-name=dst size=1048576
blockdev-backup job-id=j0 device=src target=dst sync=full
query-version
query-version
";
    let output = piped_shell(qsd.socket_path(), script);
    output.assert_code(0);
    // Results on stdout, events beside them on stderr.
    assert!(
        output
            .stderr
            .contains(r#"event JOB_STATUS_CHANGE {"id":"j0","status":"created"}"#),
        "{}",
        output.stderr
    );
    assert!(!output.stdout.contains("event"), "{}", output.stdout);
}

#[test]
fn shell_ends_when_qemu_goes_away() {
    // `quit`: QEMU stops, and so does the shell, without running what follows.
    let qsd = storage_daemon(0);
    let output = piped_shell(qsd.socket_path(), "quit\nquery-version\n");
    output.assert_code(0);
    assert!(!output.stdout.contains("\"qemu\""), "{}", output.stdout);
    assert!(output.stderr.contains("QEMU quit"), "{}", output.stderr);

    // QEMU killed under the shell: a lost connection (exit 10).
    let mut qsd = storage_daemon(0);
    let mut child = qmp_command(
        socket_args(qsd.socket_path())
            .into_iter()
            .chain(["shell".into()]),
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"query-version\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    qsd.kill().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = stdin.write_all(b"query-version\n");
    drop(stdin);
    let output = wait_output(child, LIMIT);
    output.assert_code(10);
    assert!(
        output.stderr.contains("connection closed"),
        "{}",
        output.stderr
    );
}

#[test]
fn guest_agent_shell() {
    let mut child = qmp_command(["--qga", "shell"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"guest-ping\nhelp guest-ping\nhelp no-such-command\nguest-get-osinfo\nguest-info\n",
        )
        .unwrap();
    let output = wait_output(child, LIMIT);
    // The first failed line (help for a name the agent does not have, a usage error)
    // sets the code.
    output.assert_code(2);
    assert!(output.stdout.starts_with("{}\n"), "{}", output.stdout);
    assert!(
        output.stdout.contains("\"supported_commands\""),
        "{}",
        output.stdout
    );
    // help works without a schema: QEMU's documentation, offline.
    assert!(
        output
            .stderr
            .contains("Ping the guest agent, a non-error return implies success"),
        "{}",
        output.stderr
    );
    assert!(
        output
            .stderr
            .contains("no-such-command: not a guest-agent command"),
        "{}",
        output.stderr
    );
    assert!(
        output
            .stderr
            .contains("error: CommandNotFound: Command guest-get-osinfo has been disabled"),
        "{}",
        output.stderr
    );
}
