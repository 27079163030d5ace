//! The shell as a script runner, server text made safe for a terminal, `key=value`
//! typed by the schema, one-shot HMP, time limits and the smaller fixes, against real
//! QEMU (and a scripted fake server for text real QEMU will not send).

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use common::{qmp_command, run_qmp, socket_args, wait_output, Output, ScriptedServer, LIMIT};
use qmp_std::{Launcher, ServerKind};
use serde_json::Value;

/// Feeds `script` to `qmp [extra...] shell` on `socket` (stdin and stdout pipes).
fn script(socket: &Path, extra: &[&str], script: &str) -> Output {
    let mut child = qmp_command(
        socket_args(socket)
            .into_iter()
            .chain(std::iter::once(String::from("shell")))
            .chain(extra.iter().map(|word| (*word).to_owned())),
    )
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

/// Every line of stdout parsed as JSON (what `| jq` needs).
fn json_lines(output: &Output) -> Vec<Value> {
    output
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| {
                panic!(
                    "not a JSON line ({error}): {line:?}\nstdout:\n{}",
                    output.stdout
                )
            })
        })
        .collect()
}

fn one_shot(socket: &Path, words: &[&str]) -> Output {
    run_qmp(
        socket_args(socket)
            .into_iter()
            .chain(words.iter().map(|word| (*word).to_owned())),
        LIMIT,
    )
}

#[test]
fn a_script_survives_bad_lines_and_reports_them() {
    let qsd = Launcher::new(ServerKind::StorageDaemon)
        .spawn()
        .expect("start qemu-storage-daemon");
    let socket = qsd.socket_path();
    let bad_lines = "\
{\"execute\":\"query-status\",\"arguments\":[]}
query-version
{\"exec-oob\":\"migrate-pause\"}
nope

query-version
";
    let output = script(socket, &[], bad_lines);
    // The first failed line's code (a malformed request: usage, 2); every line ran.
    output.assert_code(2);
    let results = json_lines(&output);
    assert_eq!(results.len(), 2, "{}", output.stdout);
    assert!(results.iter().all(|result| result["qemu"]["major"] == 10));
    for expected in [
        "line 1: usage: cannot send this request: arguments must be one JSON object",
        "line 3: usage: qmp does not negotiate out-of-band execution",
        "line 4: error: CommandNotFound: The command nope has not been found",
        "qmp: 3 of 6 lines failed (the first: line 1)",
    ] {
        assert!(
            output.stderr.contains(expected),
            "{expected}\n{}",
            output.stderr
        );
    }

    // --fail-fast stops at the first failed line.
    let output = script(socket, &["--fail-fast"], bad_lines);
    output.assert_code(2);
    assert!(output.stdout.is_empty(), "{}", output.stdout);
    assert!(!output.stderr.contains("line 3"), "{}", output.stderr);

    // Results are JSON lines on stdout, events go to stderr...
    let job = "\
blockdev-add driver=null-co node-name=src size=1048576
blockdev-add driver=null-co node-name=dst size=1048576
blockdev-backup job-id=j0 device=src target=dst sync=full
query-block-jobs
query-version
";
    let output = script(socket, &[], job);
    output.assert_code(0);
    let results = json_lines(&output);
    assert_eq!(results.len(), 5, "{}", output.stdout);
    assert!(results[3].is_array(), "{}", results[3]);
    assert!(
        output
            .stderr
            .contains(r#"event JOB_STATUS_CHANGE {"id":"j0","status":"created"}"#),
        "{}",
        output.stderr
    );
    // ...or are JSON lines among the results with --events-json.
    let job2 = job
        .replace("j0", "j1")
        .replace("node-name=src", "node-name=src1")
        .replace("node-name=dst", "node-name=dst1")
        .replace("device=src", "device=src1")
        .replace("target=dst", "target=dst1");
    let output = script(socket, &["--events-json"], &job2);
    output.assert_code(0);
    let lines = json_lines(&output);
    assert!(
        lines.iter().any(|line| line["event"] == "JOB_STATUS_CHANGE"
            && line["data"]["id"] == "j1"
            && line["timestamp"]["seconds"].is_u64()),
        "{}",
        output.stdout
    );
    assert!(!output.stderr.contains("event JOB"), "{}", output.stderr);

    // The input ending inside a transaction is a failure, not silence.
    let output = script(
        socket,
        &[],
        "transaction(\nblock-dirty-bitmap-add node=src name=b0\n",
    );
    output.assert_code(2);
    assert!(
        output.stderr.contains(
            "line 2: usage: the input ended inside transaction( ... ): 1 actions were not sent"
        ),
        "{}",
        output.stderr
    );

    // Time limits: no deadline, too large for a clock, and the rejected ones.
    for (option, value) in [
        ("--timeout", "inf"),
        ("--timeout", "none"),
        ("--timeout", "1e300"),
        ("--connect-timeout", "1e19"),
        ("--connect-timeout", "inf"),
    ] {
        one_shot(socket, &[option, value, "query-version"]).assert_code(0);
    }
    for (option, value, message) in [
        ("--timeout", "nan", "nan is not a number of seconds"),
        ("--timeout", "-1", "cannot be negative"),
        (
            "--connect-timeout",
            "soon",
            "'soon' is not a number of seconds",
        ),
    ] {
        let output = one_shot(socket, &[option, value, "query-version"]);
        output.assert_code(2);
        assert!(output.stderr.contains(message), "{}", output.stderr);
        assert!(!output.stderr.contains("panicked"), "{}", output.stderr);
    }
}

/// Control characters a terminal would act on (all but newline and tab).
fn assert_terminal_safe(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect();
    assert!(raw.is_empty(), "{what} has raw controls {raw:?}: {text:?}");
}

#[test]
fn server_text_cannot_drive_the_terminal() {
    // Set the window title, clear the screen, return to the start of the line and
    // overwrite it, and a one-character CSI (U+009B).
    let nasty = "\u{1b}]0;pwned\u{7}\u{1b}[2J\rFAKE\u{9b}31m";
    let json = Value::String(nasty.to_owned()).to_string();
    let server = ScriptedServer::start(nasty, move |name| match name {
        "boom" => vec![format!(
            r#"{{"error": {{"class": "GenericError", "desc": {json}}}, "id": {{id}}}}"#
        )],
        "human-monitor-command" => vec![format!(r#"{{"return": {json}, "id": {{id}}}}"#)],
        "query-nasty" => vec![
            format!(
                r#"{{"event": "NASTY\u001b[2J", "data": {{"text": {json}}}, "timestamp": {{"seconds": 1, "microseconds": 2}}}}"#
            ),
            format!(r#"{{"return": {{"text": {json}}}, "id": {{id}}}}"#),
        ],
        "query-commands" => vec![String::from(
            r#"{"return": [{"name": "boom"}], "id": {id}}"#,
        )],
        "query-qmp-schema" => vec![String::from(r#"{"return": [], "id": {id}}"#)],
        _ => vec![String::from(
            r#"{"error": {"class": "CommandNotFound", "desc": "no"}, "id": {id}}"#,
        )],
    });
    let socket = &server.path;

    let output = one_shot(socket, &["boom"]);
    output.assert_code(1);
    assert_terminal_safe("the error", &output.stderr);
    assert!(
        output
            .stderr
            .contains(r"GenericError: \u001b]0;pwned\u0007\u001b[2J\rFAKE\u009b31m"),
        "{}",
        output.stderr
    );

    let output = one_shot(socket, &["hmp", "info", "nasty"]);
    output.assert_code(0);
    assert_terminal_safe("hmp text", &output.stdout);

    // JSON output stays the same JSON.
    let output = one_shot(socket, &["query-nasty"]);
    output.assert_code(0);
    assert_terminal_safe("a result", &output.stdout);
    assert_eq!(output.json()["text"], nasty);

    // The shell: results, events, errors.
    let output = script(socket, &[], "query-nasty\nboom\nhmp info nasty\n");
    output.assert_code(1);
    assert_terminal_safe("shell stdout", &output.stdout);
    assert_terminal_safe("shell stderr", &output.stderr);
    assert!(
        output.stderr.contains(r"event NASTY\u001b[2J"),
        "{}",
        output.stderr
    );
    let output = script(socket, &["--events-json"], "query-nasty\n");
    output.assert_code(0);
    assert_terminal_safe("events as JSON", &output.stdout);
    assert!(json_lines(&output)
        .iter()
        .any(|line| line["data"]["text"] == nasty));
}

#[test]
fn key_values_are_typed_by_the_schema() {
    let qsd = Launcher::new(ServerKind::StorageDaemon)
        .spawn()
        .expect("start qemu-storage-daemon");
    let socket = qsd.socket_path();
    // qmp-shell's `True` is a bool.
    one_shot(
        socket,
        &[
            "blockdev-add",
            "driver=null-co",
            "node-name=n0",
            "read-only=True",
            "size=1048576",
        ],
    )
    .assert_code(0);
    one_shot(
        socket,
        &[
            "blockdev-add",
            "driver=null-co",
            "node-name=n1",
            "size=1048576",
        ],
    )
    .assert_code(0);
    // A name that looks like a number stays a string: QEMU judges the name itself,
    // not its JSON type.
    let output = one_shot(socket, &["blockdev-add", "driver=null-co", "node-name=123"]);
    output.assert_code(1);
    assert!(
        output.stderr.contains("Invalid node-name: '123'"),
        "{}",
        output.stderr
    );
    one_shot(socket, &["block-dirty-bitmap-add", "node=n1", "name=123"]).assert_code(0);
    // `.0.` builds an array (blkdebug's inject-error is a list of rules).
    one_shot(
        socket,
        &[
            "blockdev-add",
            "driver=blkdebug",
            "node-name=bad",
            "image=n1",
            "inject-error.0.event=pwritev",
            "inject-error.0.errno=5",
            "inject-error.1.event=read_aio",
            "inject-error.1.once=yes",
        ],
    )
    .assert_code(0);
    // The same in the shell, and QEMU's `on`.
    let output = script(
        socket,
        &[],
        "blockdev-add driver=null-co node-name=n2 read-only=on size=512\n",
    );
    output.assert_code(0);
    let nodes = one_shot(socket, &["query-named-block-nodes", "flat=true"]);
    nodes.assert_code(0);
    let nodes = nodes.json();
    let node = |name: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|node| node["node-name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {nodes}"))
            .clone()
    };
    assert_eq!(node("n0")["ro"], true);
    assert_eq!(node("n2")["ro"], true);
    assert_eq!(node("bad")["drv"], "blkdebug");
    let bitmaps = node("n1")["dirty-bitmaps"].clone();
    assert_eq!(bitmaps[0]["name"], "123", "{bitmaps}");
}

#[test]
fn hmp_and_the_smaller_things_on_a_system_emulator() {
    let qemu = Launcher::new(ServerKind::System)
        .extra_monitors(1)
        .spawn()
        .expect("start qemu-system-x86_64");
    let main = qemu.socket_path();
    let other = &qemu.extra_socket_paths()[0];

    // One-shot HMP prints QEMU's text as text.
    let output = one_shot(main, &["hmp", "info", "status"]);
    output.assert_code(0);
    assert_eq!(output.stdout, "VM status: running\n");

    // "did you mean" finds query-status for query-stat.
    let output = one_shot(main, &["query-stat"]);
    output.assert_code(3);
    assert!(output.stderr.contains("did you mean"), "{}", output.stderr);
    assert!(output.stderr.contains("query-status"), "{}", output.stderr);

    // Event names in any case; an unknown one is an error, not silence.
    let output = one_shot(main, &["events", "--filter", "stopp"]);
    output.assert_code(2);
    assert!(
        output.stderr.contains("did you mean STOP?"),
        "{}",
        output.stderr
    );
    let listener = qmp_command(
        socket_args(other).into_iter().chain(
            [
                "events",
                "--filter",
                "stop",
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
    common::wait_for_client(main, other);
    one_shot(main, &["stop"]).assert_code(0);
    let output = wait_output(listener, LIMIT);
    output.assert_code(0);
    assert!(
        output.stdout.starts_with(r#"{"event":"STOP""#),
        "{}",
        output.stdout
    );

    // `help` in the shell lists the commands.
    let output = script(main, &[], "help\n");
    output.assert_code(0);
    for name in ["query-status", "blockdev-add", "human-monitor-command"] {
        assert!(output.stderr.contains(name), "{name}: {}", output.stderr);
    }

    // Bash completion offers QMP command names from the target on the line.
    let script = format!(
        "source <(qmp completions bash)\n\
         COMP_WORDS=(qmp -s {} query-sta); COMP_CWORD=3\n\
         _qmp_with_command_names qmp query-sta qmp\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        main.display()
    );
    let binary_dir = Path::new(common::qmp_binary()).parent().unwrap();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let completed = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env_remove("QMP_SOCKET")
        .output()
        .unwrap();
    let completed = String::from_utf8_lossy(&completed.stdout);
    assert!(
        completed.lines().any(|line| line == "query-status"),
        "{completed}"
    );
}

#[test]
fn help_usage_and_hints() {
    // The shell's help says what `quit` does.
    let output = run_qmp(["shell", "--help"], LIMIT);
    output.assert_code(0);
    assert!(
        output
            .stdout
            .contains("quit                    QEMU's quit command: stops QEMU"),
        "{}",
        output.stdout
    );
    assert!(!output.stdout.contains("quit, exit"), "{}", output.stdout);

    // No command: a short usage, not the whole help.
    let output = run_qmp(Vec::<&str>::new(), LIMIT);
    output.assert_code(2);
    assert!(output.stderr.lines().count() <= 6, "{}", output.stderr);
    assert!(output.stdout.is_empty(), "{}", output.stdout);

    // A system-emulator command on the private storage daemon: say to use -s.
    let output = run_qmp(["query-status"], LIMIT);
    output.assert_code(3);
    assert!(output.stderr.contains("-s PATH"), "{}", output.stderr);

    // `--launch -- qemu-ga` speaks the guest agent protocol without `--qga`, and the
    // agent is started as given (monitors only: all its RPCs allowed).
    let agent = ServerKind::GuestAgent.program();
    let output = run_qmp(
        [
            std::ffi::OsStr::new("--launch"),
            std::ffi::OsStr::new("guest-info"),
            std::ffi::OsStr::new("--"),
            agent.as_os_str(),
        ],
        LIMIT,
    );
    output.assert_code(0);
    let enabled = output.json()["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|command| command["enabled"] == true)
        .count();
    assert!(enabled > 5, "{}", output.stdout);

    // A missing guest agent socket gets guest-agent advice.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("qga.sock");
    let output = run_qmp(
        ["--qga", "--socket", missing.to_str().unwrap(), "guest-ping"],
        LIMIT,
    );
    output.assert_code(10);
    assert!(output.stderr.contains("qemu-ga"), "{}", output.stderr);
    assert!(!output.stderr.contains("-qmp unix:"), "{}", output.stderr);
}
