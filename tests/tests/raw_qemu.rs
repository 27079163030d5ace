//! Raw byte exchanges with real QEMU processes over every transport, checked against the
//! captured vectors: greetings, negotiation, the guest agent's sync, and fd passing.
//!
//! No client logic is involved: these tests pin down what the transports and launchers
//! deliver, byte for byte, so client tests can build on them. A missing QEMU binary
//! fails the test with a message to run `scripts/setup.sh`.

use core::time::Duration;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};

use qmp_tests::{
    connect, expected_from_capture, launch, qemu_build, read_vector, show, split_lines, Launcher,
    LineReader, ServerKind, Transport, REPLY_TIMEOUT,
};

/// Server line `index` of vector `name` (captured from 10.0.2) as a `kind` server under
/// test sends it: the same bytes on 10.0.2; on 7.2 with its version, package string and
/// known differences (`qmp_tests::expected_from_capture`).
fn expected_server_line(kind: ServerKind, name: &str, index: usize) -> Vec<u8> {
    expected_from_capture(&vector_line(name, index), qemu_build(kind))
}

/// Line `index` of vector file `name`.
fn vector_line(name: &str, index: usize) -> Vec<u8> {
    let bytes = read_vector(name);
    split_lines(&bytes)
        .get(index)
        .unwrap_or_else(|| panic!("{name} has no line {index}"))
        .to_vec()
}

fn assert_bytes_eq(got: &[u8], expected: &[u8], what: &str) {
    assert_eq!(
        got,
        expected,
        "{what}:\n  got      {:?}\n  expected {:?}",
        show(got),
        show(expected)
    );
}

/// Reads the greeting and checks it against the capture, with the version and the
/// package string that `kind`'s program reports with `--version`.
fn expect_greeting(reader: &mut LineReader, kind: ServerKind) {
    let greeting = reader.expect_line();
    assert_bytes_eq(
        &greeting,
        &expected_server_line(kind, "01-greeting.s2c", 0),
        "greeting",
    );
}

/// Sends vector `name`'s client line `index` to a `kind` server and checks the reply
/// against server line `reply_index` of the same capture (as `kind` sends it).
fn exchange(
    reader: &mut LineReader,
    kind: ServerKind,
    name: &str,
    index: usize,
    reply_index: usize,
) {
    let request = vector_line(&format!("{name}.c2s"), index);
    reader.transport().write_all(&request).unwrap();
    let reply = reader.expect_line();
    assert_bytes_eq(
        &reply,
        &expected_server_line(kind, &format!("{name}.s2c"), reply_index),
        &format!("reply to {}", show(&request).trim()),
    );
}

fn negotiated(transport: Transport, kind: ServerKind) -> LineReader {
    let mut reader = LineReader::new(transport);
    expect_greeting(&mut reader, kind);
    exchange(&mut reader, kind, "02-negotiation", 0, 1);
    reader
}

/// Every program the tests start is a release the suite knows, and the one
/// `scripts/test.sh` meant to test (`QMP_EXPECT_QEMU`: `10.0.2` for the workspace run,
/// `7.2` for the second run), so a run meant for 7.2 cannot quietly test 10.0.2.
#[test]
fn the_intended_qemu_is_under_test() {
    let expected = std::env::var("QMP_EXPECT_QEMU").ok();
    for kind in [
        ServerKind::StorageDaemon,
        ServerKind::System,
        ServerKind::GuestAgent,
    ] {
        let build = qemu_build(kind);
        qmp_tests::assert_known(build.version);
        if let Some(expected) = &expected {
            assert!(
                format!("{}.", build.version).starts_with(&format!("{expected}.")),
                "{} is QEMU {}, but QMP_EXPECT_QEMU is {expected}",
                build.program.display(),
                build.version
            );
        }
    }
}

#[test]
fn storage_daemon_greets_and_negotiates() {
    let qsd = launch(Launcher::new(ServerKind::StorageDaemon));
    negotiated(connect(&qsd), ServerKind::StorageDaemon);
}

#[test]
fn storage_daemon_negotiates_oob_with_id() {
    let qsd = launch(Launcher::new(ServerKind::StorageDaemon));
    let mut reader = LineReader::new(connect(&qsd));
    expect_greeting(&mut reader, ServerKind::StorageDaemon);
    exchange(
        &mut reader,
        ServerKind::StorageDaemon,
        "03-negotiation-oob",
        0,
        1,
    );
}

#[test]
fn storage_daemon_pretty_greeting_spans_lines() {
    let qsd = launch(Launcher::new(ServerKind::StorageDaemon).pretty(true));
    let mut reader = LineReader::new(connect(&qsd));
    let vector = read_vector("18-pretty.s2c");
    let expected = split_lines(&vector);
    // The pretty greeting closes with "}" at column 0.
    let greeting_lines = expected
        .iter()
        .position(|line| *line == b"}\r\n")
        .expect("pretty greeting ends")
        + 1;
    for expected_line in &expected[..greeting_lines] {
        let line = reader.expect_line();
        assert_bytes_eq(
            &line,
            &expected_from_capture(expected_line, qemu_build(ServerKind::StorageDaemon)),
            "pretty greeting line",
        );
    }
}

#[test]
fn storage_daemon_extra_monitors_greet_independently() {
    let qsd = launch(Launcher::new(ServerKind::StorageDaemon).extra_monitors(1));
    let first = negotiated(connect(&qsd), ServerKind::StorageDaemon);
    let extra = Transport::connect_unix(&qsd.extra_socket_paths()[0], Some(REPLY_TIMEOUT))
        .expect("connect to the extra monitor");
    negotiated(extra, ServerKind::StorageDaemon);
    drop(first);
}

#[test]
fn storage_daemon_over_tcp() {
    let qsd = launch(Launcher::new(ServerKind::StorageDaemon).tcp_monitor(true));
    let address = qsd.tcp_address().expect("tcp monitor requested");
    let transport = Transport::connect_tcp(address, Some(REPLY_TIMEOUT)).unwrap();
    negotiated(transport, ServerKind::StorageDaemon);
}

#[test]
fn system_none_greets_negotiates_and_reports_running() {
    let qsys = launch(Launcher::new(ServerKind::System));
    let mut reader = negotiated(connect(&qsys), ServerKind::System);
    // query-status on "-M none": running, as in capture 30.
    exchange(
        &mut reader,
        ServerKind::System,
        "30-qsys-stop-cont-reset-quit",
        1,
        2,
    );
}

#[test]
fn system_over_child_stdio() {
    let mut qsys = launch(Launcher::new(ServerKind::System).stdio_monitor(true));
    let transport = qsys
        .take_stdio_transport()
        .expect("stdio monitor requested")
        .unwrap();
    let mut reader = negotiated(transport, ServerKind::System);
    exchange(
        &mut reader,
        ServerKind::System,
        "30-qsys-stop-cont-reset-quit",
        1,
        2,
    );
}

#[test]
fn guest_agent_sync_delimited_and_ping() {
    let qga = launch(qmp_tests::agent_launcher());
    let mut reader = LineReader::new(connect(&qga));
    // No greeting. 0xFF + guest-sync-delimited: the 0xFF is a parse error on an idle
    // parser, then the reply comes with a leading 0xFF sentinel.
    let request = vector_line("40-qga-session.c2s", 0);
    assert_eq!(request[0], 0xFF);
    reader.transport().write_all(&request).unwrap();
    for reply_index in 0..2 {
        let reply = reader.expect_line();
        assert_bytes_eq(
            &reply,
            &expected_server_line(ServerKind::GuestAgent, "40-qga-session.s2c", reply_index),
            "guest-sync-delimited reply",
        );
    }
    exchange(&mut reader, ServerKind::GuestAgent, "40-qga-session", 1, 2); // guest-sync with an id
    exchange(&mut reader, ServerKind::GuestAgent, "40-qga-session", 2, 3); // guest-ping
}

#[test]
fn guest_agent_over_a_serial_pty() {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let device = ptsname(&master, Vec::new()).unwrap();
    let device = std::path::PathBuf::from(device.to_str().unwrap());
    let qga = launch(qmp_tests::agent_launcher().agent_serial_device(&device));
    assert_eq!(qga.socket_path(), device);
    let transport = Transport::from_device(std::fs::File::from(master)).unwrap();
    let mut reader = LineReader::new(transport);
    exchange(&mut reader, ServerKind::GuestAgent, "40-qga-session", 2, 3); // guest-ping
    exchange(&mut reader, ServerKind::GuestAgent, "40-qga-session", 1, 2); // guest-sync with an id
}

/// qemu-storage-daemon 10.0.2 has no `add-fd` or `getfd` (its query-commands, capture 06,
/// lists none), so fd passing is checked against qemu-system-x86_64.
#[test]
fn system_takes_an_fd_sent_with_add_fd() {
    let qsys = launch(Launcher::new(ServerKind::System));
    let mut reader = negotiated(connect(&qsys), ServerKind::System);
    let (pipe_read, pipe_write) = rustix::pipe::pipe().unwrap();

    reader
        .transport()
        .send_with_fds(
            b"{\"execute\":\"add-fd\",\"arguments\":{\"fdset-id\":1},\"id\":\"add\"}\n",
            &[pipe_write.as_fd()],
        )
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reader.expect_line()).unwrap();
    assert_eq!(reply["id"], "add", "{reply}");
    assert_eq!(reply["return"]["fdset-id"], 1, "{reply}");
    let qemu_fd = reply["return"]["fd"].as_i64().expect("fd number in reply");

    reader
        .transport()
        .write_all(b"{\"execute\":\"query-fdsets\",\"id\":\"q\"}\n")
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reader.expect_line()).unwrap();
    let fdsets = reply["return"].as_array().expect("fdset list");
    assert_eq!(fdsets.len(), 1, "{reply}");
    assert_eq!(fdsets[0]["fdset-id"], 1, "{reply}");
    let fds = fdsets[0]["fds"].as_array().expect("fd list");
    assert_eq!(fds.len(), 1, "{reply}");
    assert_eq!(fds[0]["fd"].as_i64(), Some(qemu_fd), "{reply}");

    // QEMU's descriptor is our pipe: the same pipe inode on both sides.
    let theirs = std::fs::read_link(format!("/proc/{}/fd/{qemu_fd}", qsys.pid())).unwrap();
    let ours = std::fs::read_link(format!("/proc/self/fd/{}", pipe_write.as_raw_fd())).unwrap();
    assert_eq!(theirs, ours);
    assert!(
        ours.to_string_lossy().starts_with("pipe:["),
        "{}",
        ours.display()
    );
    drop(pipe_read);
}

#[test]
fn killed_server_gives_end_of_stream_and_signal_status() {
    let mut qsd = launch(Launcher::new(ServerKind::StorageDaemon));
    let mut reader = negotiated(connect(&qsd), ServerKind::StorageDaemon);
    qsd.kill().unwrap();
    let status = qsd.wait_exit(Duration::from_secs(5)).unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // End of stream, or a reset when QEMU died with unread bytes (the "\n" after the
    // negotiation's "}": the monitor reads one byte at a time).
    let err = reader.read_line(REPLY_TIMEOUT).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
}

#[test]
fn terminated_server_exits_on_its_own() {
    let mut qsd = launch(Launcher::new(ServerKind::StorageDaemon));
    let dir = qsd.dir().to_path_buf();
    assert!(qsd.socket_path().starts_with(&dir));
    qsd.terminate().unwrap();
    let status = qsd.wait_exit(Duration::from_secs(10)).unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    drop(qsd);
    assert!(!dir.exists(), "private directory removed on drop");
}
