//! The interactive shell driven through a real pseudo-terminal (expectrl): typing,
//! tab completion, history recall, and an event arriving while a line is half typed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::{Eof, Regex, Session};

/// Bound on every single expectation.
const EXPECT_LIMIT: Duration = Duration::from_secs(30);

const UP_ARROW: &str = "\x1b[A";
const CTRL_D: &str = "\x04";

/// `qmp shell` on a pty, with its history in `history` and no target (a private
/// qemu-storage-daemon).
fn start_shell(history: &Path) -> Session {
    let mut command = Command::new(common::qmp_binary());
    command
        .arg("shell")
        .arg("--history")
        .arg(history)
        .env_remove("QMP_SOCKET")
        .env("TERM", "xterm");
    let mut session = Session::spawn(command).expect("spawn qmp shell on a pty");
    session.set_expect_timeout(Some(EXPECT_LIMIT));
    session.expect("Connected to QEMU 10.").expect("greeting");
    session.expect("(qmp) ").expect("first prompt");
    session
}

/// Ends the shell with Ctrl-D and checks it exits 0.
fn finish(mut session: Session) {
    session.send(CTRL_D).unwrap();
    session.expect(Eof).expect("shell ends on Ctrl-D");
    let status = session.get_process().wait().unwrap();
    assert_eq!(
        status,
        expectrl::WaitStatus::Exited(session.get_process().pid(), 0)
    );
}

#[test]
fn typing_a_command_and_completing_names_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = start_shell(&dir.path().join("history"));

    // Command name: unique prefix, one Tab.
    shell.send("query-vers\t").unwrap();
    shell.expect("ion ").expect("query-version completed");
    shell.send("\r").unwrap();
    shell
        .expect("\"qemu\": {")
        .expect("pretty reply on a terminal");
    shell.expect("(qmp) ").unwrap();

    // Arguments: the name, then `driver=` and its enum value, then a member that only
    // exists once the driver is known.
    shell.send("blockdev-ad\t").unwrap();
    shell.expect("d ").unwrap();
    shell.send("dri\t").unwrap();
    shell.expect("ver=").unwrap();
    shell.send("null-c\t").unwrap();
    shell.expect("o ").unwrap();
    shell.send("read-z\t").unwrap();
    shell.expect("eroes=").unwrap();
    shell.send("tr\t").unwrap();
    shell.expect("ue ").unwrap();
    shell.send("node-name=n0\r").unwrap();
    shell.expect("{}").expect("blockdev-add succeeded");
    shell.expect("(qmp) ").unwrap();

    shell.send("query-named-block-nodes flat=true\r").unwrap();
    shell.expect("\"drv\": \"null-co\"").unwrap();
    shell.expect("(qmp) ").unwrap();

    // A QMP error is printed and the shell goes on.
    shell.send("no-such-command\r").unwrap();
    shell
        .expect("error: CommandNotFound: The command no-such-command has not been found")
        .unwrap();
    shell.expect("(qmp) ").unwrap();

    // Inline help from the schema.
    shell.send("help blockdev-mirror\r").unwrap();
    shell.expect("sync: enum").unwrap();
    shell.expect("(qmp) ").unwrap();
    finish(shell);
}

#[test]
fn history_is_recalled_with_up_arrow_and_kept_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let mut shell = start_shell(&history);
    shell.send("query-jobs\r").unwrap();
    shell.expect("[]").unwrap();
    shell.expect("(qmp) ").unwrap();
    shell.send("query-version\r").unwrap();
    shell.expect("\"major\": 10").unwrap();
    shell.expect("(qmp) ").unwrap();
    // Up twice: query-jobs again.
    shell.send(UP_ARROW).unwrap();
    shell.expect("query-version").unwrap();
    shell.send(UP_ARROW).unwrap();
    shell.expect("query-jobs").unwrap();
    shell.send("\r").unwrap();
    shell.expect("[]").expect("the recalled command ran");
    shell.expect("(qmp) ").unwrap();
    finish(shell);

    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("query-version"), "{saved}");
    assert!(saved.contains("query-jobs"), "{saved}");

    // A new shell starts with that history.
    let mut shell = start_shell(&history);
    shell.send(UP_ARROW).unwrap();
    shell.expect("query-jobs").unwrap();
    shell.send("\r").unwrap();
    shell.expect("[]").unwrap();
    shell.expect("(qmp) ").unwrap();
    finish(shell);
}

#[test]
fn an_event_arriving_mid_line_keeps_the_typed_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = start_shell(&dir.path().join("history"));
    for node in ["src", "dst"] {
        shell
            .send(format!(
                "blockdev-add driver=null-co node-name={node} size=67108864\r"
            ))
            .unwrap();
        shell.expect("{}").unwrap();
        shell.expect("(qmp) ").unwrap();
    }
    // About three seconds at 21 MiB/s.
    shell
        .send("blockdev-backup job-id=b0 device=src target=dst sync=full speed=22369621\r")
        .unwrap();
    shell.expect("{}").unwrap();
    shell.expect("(qmp) ").unwrap();
    // Half a command, no Enter: its echo comes first, then the job concludes while the
    // text sits there (were the event earlier, the second expectation would fail).
    shell.send("query-na").unwrap();
    shell.expect("query-na").expect("the typed text is echoed");
    shell
        .expect(r#"event JOB_STATUS_CHANGE {"id":"b0","status":"concluded"}"#)
        .expect("the event is printed while the line is being typed");
    // The prompt and the half-typed text are redrawn below the event.
    shell
        .expect(Regex(r"\(qmp\) (\x1b\[[0-9;]*[A-Za-z])*query-na"))
        .expect("the typed text is redrawn after the event");
    shell.send("med-block-nodes\r").unwrap();
    shell
        .expect("\"node-name\": \"src\"")
        .expect("the completed line ran as typed");
    shell.expect("(qmp) ").unwrap();
    finish(shell);
}

/// `qmp shell` on a pty talking to the monitor at `socket`.
fn start_shell_on(socket: &Path, extra: &[&str]) -> Session {
    let mut command = Command::new(common::qmp_binary());
    command
        .arg("--socket")
        .arg(socket)
        .args(extra)
        .arg("shell")
        .arg("--no-history")
        .env_remove("QMP_SOCKET")
        .env("TERM", "xterm");
    let mut session = Session::spawn(command).expect("spawn qmp shell on a pty");
    session.set_expect_timeout(Some(EXPECT_LIMIT));
    session
}

#[test]
fn live_values_complete_and_ctrl_d_in_a_transaction_keeps_the_shell() {
    let qsd = common::storage_daemon(0);
    let mut shell = start_shell_on(qsd.socket_path(), &[]);
    shell.expect("(qmp) ").expect("first prompt");
    for node in ["base0", "copy0"] {
        shell
            .send(format!(
                "blockdev-add driver=null-co node-name={node} size=67108864\r"
            ))
            .unwrap();
        shell.expect("{}").unwrap();
        shell.expect("(qmp) ").unwrap();
    }
    // `file` is a node name or a node defined inline: both forms are offered...
    shell
        .send("blockdev-add driver=raw node-name=r0 fil\t\t")
        .unwrap();
    shell.expect("file.").unwrap();
    shell.expect("file=").unwrap();
    // ...and after `file=`, the existing node names.
    shell.send("=ba\t").unwrap();
    shell
        .expect("se0 ")
        .expect("a node name completed after file=");
    shell.send("\r").unwrap();
    shell.expect("{}").unwrap();
    shell.expect("(qmp) ").unwrap();
    // A running job's id completes where a job id is asked for.
    shell
        .send("blockdev-backup job-id=slowjob device=base0 target=copy0 sync=full speed=1048576\r")
        .unwrap();
    shell.expect("(qmp) ").unwrap();
    shell.send("job-cancel id=slo\t").unwrap();
    shell.expect("wjob ").expect("a job id completed");
    shell.send("\r").unwrap();
    // Wait for the job's last event: keys typed while the shell is not reading a
    // line (Ctrl-D above all) are taken by the terminal's line discipline.
    shell
        .expect(r#"event JOB_STATUS_CHANGE {"id":"slowjob","status":"null"}"#)
        .unwrap();
    shell.send("query-jobs\r").unwrap();
    shell.expect("[]").unwrap();
    shell.expect("(qmp) ").unwrap();

    // Ctrl-D inside a transaction drops it, says so, and keeps the shell.
    shell.send("transaction(\r").unwrap();
    shell.expect("(qmp transaction) ").unwrap();
    shell
        .send("block-dirty-bitmap-add node=base0 name=b0\r")
        .unwrap();
    shell.expect("(qmp transaction) ").unwrap();
    shell.send(CTRL_D).unwrap();
    shell
        .expect("transaction aborted (Ctrl-D; Ctrl-D again leaves the shell): 1 actions not sent")
        .unwrap();
    shell.expect("(qmp) ").unwrap();
    finish(shell);
}

#[test]
fn a_killed_qemu_ends_the_shell_at_once() {
    let mut qsd = common::storage_daemon(0);
    let mut shell = start_shell_on(qsd.socket_path(), &[]);
    shell.expect("(qmp) ").expect("first prompt");
    qsd.kill().unwrap();
    // No key is pressed: the shell notices by itself.
    shell.expect("connection closed").unwrap();
    shell.expect(Eof).expect("the shell ends");
    let status = shell.get_process().wait().unwrap();
    assert_eq!(
        status,
        expectrl::WaitStatus::Exited(shell.get_process().pid(), 10)
    );
}

#[test]
fn the_guest_agent_shell_has_its_own_prompt() {
    let agent = qmp_std::QemuProcess::guest_agent().expect("start qemu-ga");
    let mut shell = start_shell_on(agent.socket_path(), &["--qga"]);
    shell.expect("(qga) ").expect("the guest agent prompt");
    shell.send("guest-ping\r").unwrap();
    shell.expect("{}").unwrap();
    shell.expect("(qga) ").unwrap();
    finish(shell);
}

#[test]
fn watch_bars_show_rate_and_time_left() {
    let qsd = common::storage_daemon(0);
    let socket = qsd.socket_path().display().to_string();
    let run = |words: &[&str]| {
        common::run_qmp(
            ["--socket", socket.as_str()].iter().chain(words),
            common::LIMIT,
        )
        .assert_code(0);
    };
    run(&[
        "blockdev-add",
        "driver=null-co",
        "node-name=src",
        "size=67108864",
    ]);
    run(&[
        "blockdev-add",
        "driver=null-co",
        "node-name=dst",
        "size=67108864",
    ]);
    // About three seconds.
    run(&[
        "blockdev-backup",
        "job-id=bar0",
        "device=src",
        "target=dst",
        "sync=full",
        "speed=22369621",
    ]);
    let mut command = Command::new(common::qmp_binary());
    command
        .args(["--socket", socket.as_str(), "watch"])
        .env_remove("QMP_SOCKET")
        .env("TERM", "xterm");
    let mut watch = Session::spawn(command).expect("spawn qmp watch on a pty");
    watch.set_expect_timeout(Some(EXPECT_LIMIT));
    watch
        .expect(Regex(r"job bar0 \(backup\) +\["))
        .expect("a bar");
    watch
        .expect(Regex(
            r"MiB/64\.00 MiB.{0,40}running, [0-9.]+ MiB/s, [0-9]+ s left",
        ))
        .expect("the bar shows the rate and the time left");
    watch
        .expect("job bar0 (backup): completed (64.00 MiB of 64.00 MiB, ")
        .unwrap();
    watch.expect(Eof).unwrap();
}
