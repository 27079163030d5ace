//! One-shot commands against real QEMU: targets, argument syntax, output, exit codes.

mod common;

use std::time::{Duration, Instant};

use common::{run_qmp, socket_args, storage_daemon, system, FakeServer, LIMIT};
use serde_json::json;

#[test]
fn no_target_launches_a_private_storage_daemon() {
    let output = run_qmp(["query-version"], LIMIT);
    output.assert_code(0);
    let version = output.json();
    assert_eq!(version["qemu"]["major"], 10, "{version}");
    assert!(version["package"].is_string());
    // Not a terminal: compact, one line.
    assert_eq!(output.stdout.lines().count(), 1, "{}", output.stdout);

    let output = run_qmp(["query-version", "--pretty"], LIMIT);
    output.assert_code(0);
    assert!(output.stdout.lines().count() > 3, "{}", output.stdout);
    assert!(
        output.stdout.contains("\n  \"qemu\": {"),
        "{}",
        output.stdout
    );
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(needle))
        .collect()
}

/// Waits (bounded) until `dir` is empty and no process mentions it.
fn assert_cleaned_up(dir: &std::path::Path) {
    let needle = dir.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .collect();
        let running = processes_mentioning(&needle);
        if left.is_empty() && running.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: files {left:?}, processes {running:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_target_cleans_up_the_private_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    for (command, code) in [("query-version", 0), ("query-status", 3)] {
        let output = common::wait_output(
            common::qmp_command([command])
                .env("TMPDIR", tmp.path())
                .spawn()
                .unwrap(),
            LIMIT,
        );
        output.assert_code(code);
        assert_cleaned_up(tmp.path());
    }
}

#[test]
fn ctrl_c_stops_qmp_and_the_qemu_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    for target in [
        &["events"][..],
        &[
            "events",
            "--launch",
            "--",
            "qemu-system-x86_64",
            "-M",
            "none",
            "-display",
            "none",
        ][..],
    ] {
        let child = common::qmp_command(target)
            .env("TMPDIR", tmp.path())
            .spawn()
            .unwrap();
        // Wait for the private monitor socket, then a little for the connection.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !has_socket(tmp.path()) {
            assert!(Instant::now() < deadline, "no monitor socket appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(500));
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = common::wait_output(child, LIMIT);
        output.assert_code(130);
        assert!(output.stderr.contains("interrupted"), "{}", output.stderr);
        assert_cleaned_up(tmp.path());
    }
}

fn has_socket(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| entry.path().join("monitor.sock").exists())
}

#[test]
fn key_value_arguments_reach_qemu() {
    let qsd = storage_daemon(0);
    let socket = socket_args(qsd.socket_path());
    let add = [
        "blockdev-add",
        "driver=null-co",
        "node-name=n0",
        "size=1048576",
        "read-zeroes=true",
    ];
    run_qmp(socket.iter().map(String::as_str).chain(add), LIMIT)
        .assert_code(0)
        .json();
    let nodes = run_qmp(
        socket
            .iter()
            .map(String::as_str)
            .chain(["query-named-block-nodes", "flat=true"]),
        LIMIT,
    );
    nodes.assert_code(0);
    let nodes = nodes.json();
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["node-name"] == "n0")
        .unwrap_or_else(|| panic!("n0 missing: {nodes}"));
    assert_eq!(node["image"]["virtual-size"], 1048576);

    // --args, nested keys and @file together.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("size.json");
    std::fs::write(&file, "2097152").unwrap();
    let size = format!("size=@{}", file.display());
    let output = run_qmp(
        socket.iter().map(String::as_str).chain([
            "blockdev-add",
            "--args",
            r#"{"driver": "null-co", "node-name": "n1"}"#,
            size.as_str(),
        ]),
        LIMIT,
    );
    output.assert_code(0);
    assert_eq!(output.json(), json!({}));
}

#[test]
fn qmp_errors_print_class_and_exit_with_its_code() {
    let qsd = storage_daemon(0);
    let socket = socket_args(qsd.socket_path());
    let args = |extra: &[&str]| -> Vec<String> {
        socket
            .iter()
            .cloned()
            .chain(extra.iter().map(|word| (*word).to_owned()))
            .collect()
    };
    let missing = run_qmp(args(&["no-such-command"]), LIMIT);
    missing.assert_code(3);
    assert!(missing.stdout.is_empty());
    assert!(
        missing
            .stderr
            .contains("CommandNotFound: The command no-such-command has not been found"),
        "{}",
        missing.stderr
    );

    let generic = run_qmp(args(&["blockdev-add", "driver=null-co"]), LIMIT);
    generic.assert_code(1);
    assert!(
        generic.stderr.contains("GenericError:"),
        "{}",
        generic.stderr
    );

    let bad_args = run_qmp(args(&["query-version", "bogus=1"]), LIMIT);
    bad_args.assert_code(1);
    assert!(bad_args.stderr.contains("bogus"), "{}", bad_args.stderr);
}

#[test]
fn device_not_found_exits_4_on_qemu_system() {
    let qemu = system(0);
    let output = run_qmp(
        socket_args(qemu.socket_path())
            .into_iter()
            .chain(["device_del".into(), "id=nope".into()]),
        LIMIT,
    );
    output.assert_code(4);
    assert!(
        output.stderr.contains("DeviceNotFound"),
        "{}",
        output.stderr
    );
}

#[test]
fn tcp_target() {
    let qemu = system(0);
    let address = qemu.tcp_address().unwrap().to_string();
    let output = run_qmp(["--tcp", address.as_str(), "query-status"], LIMIT);
    output.assert_code(0);
    assert_eq!(output.json()["status"], "running");
}

#[test]
fn launch_starts_the_given_qemu_command() {
    let output = run_qmp(
        [
            "--launch",
            "query-machines",
            "--compact",
            "--",
            "qemu-system-x86_64",
            "-M",
            "none",
            "-display",
            "none",
            "-nodefaults",
        ],
        LIMIT,
    );
    output.assert_code(0);
    let machines = output.json();
    assert!(
        machines
            .as_array()
            .unwrap()
            .iter()
            .any(|machine| machine["name"] == "none"),
        "{machines}"
    );

    let qsd = run_qmp(
        [
            "--launch",
            "query-named-block-nodes",
            "--",
            "qemu-storage-daemon",
            "--blockdev",
            "driver=null-co,node-name=disk0",
        ],
        LIMIT,
    );
    qsd.assert_code(0);
    assert_eq!(qsd.json()[0]["node-name"], "disk0");

    let failing = run_qmp(
        [
            "--launch",
            "query-status",
            "--",
            "qemu-system-x86_64",
            "-no-such-option",
        ],
        LIMIT,
    );
    failing.assert_code(12);
    assert!(
        failing.stderr.contains("no-such-option"),
        "{}",
        failing.stderr
    );
}

#[test]
fn guest_agent_target() {
    // No target with --qga: a private qemu-ga.
    let output = run_qmp(["--qga", "guest-info"], LIMIT);
    output.assert_code(0);
    assert!(output.json()["version"].is_string(), "{}", output.stdout);
    let disabled = run_qmp(["--qga", "guest-get-osinfo"], LIMIT);
    disabled.assert_code(3);
}

#[test]
fn connection_problems_say_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let output = run_qmp(
        ["--socket", missing.to_str().unwrap(), "query-status"],
        LIMIT,
    );
    output.assert_code(10);
    assert!(output.stderr.contains("no socket at"), "{}", output.stderr);
    assert!(output.stderr.contains("-qmp unix:"), "{}", output.stderr);

    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let output = run_qmp(["--socket", stale.to_str().unwrap(), "query-status"], LIMIT);
    output.assert_code(10);
    assert!(
        output.stderr.contains("still running?"),
        "{}",
        output.stderr
    );

    let output = run_qmp(["--tcp", "127.0.0.1:1", "query-status"], LIMIT);
    output.assert_code(10);
    assert!(
        output.stderr.contains("nothing is listening"),
        "{}",
        output.stderr
    );

    // The environment variable names the socket when no option does.
    let output = common::wait_output(
        common::qmp_command(["query-status"])
            .env("QMP_SOCKET", &missing)
            .spawn()
            .unwrap(),
        LIMIT,
    );
    output.assert_code(10);
    assert!(output.stderr.contains("missing.sock"), "{}", output.stderr);
}

#[test]
fn a_busy_monitor_is_reported_as_another_client() {
    let qsd = storage_daemon(0);
    let holder = qmp_std::Client::connect_unix(qsd.socket_path(), qmp_std::ConnectOptions::new())
        .expect("first client");
    let output = run_qmp(
        socket_args(qsd.socket_path()).into_iter().chain([
            "--connect-timeout".into(),
            "1".into(),
            "query-version".into(),
        ]),
        LIMIT,
    );
    output.assert_code(10);
    assert!(
        output.stderr.contains("another client"),
        "{}",
        output.stderr
    );
    drop(holder);
}

#[test]
fn a_missing_reply_times_out_with_11() {
    let server = FakeServer::start(|_| None);
    let output = run_qmp(
        [
            "--socket",
            server.path.to_str().unwrap(),
            "--timeout",
            "0.5",
            "query-status",
        ],
        Duration::from_secs(20),
    );
    output.assert_code(11);
    assert!(output.stderr.contains("no reply"), "{}", output.stderr);
}

#[test]
fn every_error_class_has_its_exit_code() {
    for (class, code) in [
        ("GenericError", 1),
        ("CommandNotFound", 3),
        ("DeviceNotFound", 4),
        ("DeviceNotActive", 4),
        ("KVMMissingCap", 5),
        ("SomeFutureClass", 6),
    ] {
        let server = FakeServer::start(move |_| {
            Some(format!(
                r#""error": {{"class": "{class}", "desc": "it went wrong"}}"#
            ))
        });
        let output = run_qmp(
            ["--socket", server.path.to_str().unwrap(), "anything"],
            Duration::from_secs(20),
        );
        output.assert_code(code);
        assert!(
            output.stderr.contains(&format!("{class}: it went wrong")),
            "{}",
            output.stderr
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    run_qmp(["query-version", "not-a-pair"], LIMIT).assert_code(2);
    run_qmp(["query-version", "a=1", "a=2"], LIMIT).assert_code(2);
    run_qmp(["--args", "[1]", "query-version"], LIMIT).assert_code(2);
    run_qmp(["--socket", "/x", "--tcp", "y:1", "query-version"], LIMIT).assert_code(2);
    run_qmp(["--launch", "query-version"], LIMIT).assert_code(2);
    let none = run_qmp(Vec::<&str>::new(), LIMIT);
    none.assert_code(2);
    assert!(none.stderr.contains("no command given"), "{}", none.stderr);
    run_qmp(["--no-such-option"], LIMIT).assert_code(2);
}

#[test]
fn missing_qemu_exits_12() {
    let output = common::wait_output(
        common::qmp_command(["query-version"])
            .env("QMP_QSD", "/nonexistent/qemu-storage-daemon")
            .spawn()
            .unwrap(),
        LIMIT,
    );
    output.assert_code(12);
    assert!(output.stderr.contains("QMP_QSD"), "{}", output.stderr);
}

#[test]
fn quit_is_a_success() {
    let qsd = storage_daemon(0);
    let mut qsd = qsd;
    run_qmp(
        socket_args(qsd.socket_path())
            .into_iter()
            .chain(["quit".into()]),
        LIMIT,
    )
    .assert_code(0);
    let status = qsd.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(status.success());
}

#[test]
fn help_lists_exit_codes_and_examples() {
    let output = run_qmp(["--help"], LIMIT);
    output.assert_code(0);
    assert!(output.stdout.contains("Exit codes:"), "{}", output.stdout);
    assert!(output.stdout.contains("11  timeout"), "{}", output.stdout);
    assert!(output.stdout.contains("Examples:"), "{}", output.stdout);
    for sub in ["shell", "events", "watch", "schema", "completions"] {
        let output = run_qmp([sub, "--help"], LIMIT);
        output.assert_code(0);
        assert!(
            output.stdout.contains("Examples:"),
            "{sub}: {}",
            output.stdout
        );
    }
    run_qmp(["--version"], LIMIT).assert_code(0);
}
