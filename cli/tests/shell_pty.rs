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
