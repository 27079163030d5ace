//! The guest-agent client against a real `qemu-ga -m unix-listen` (vector 40): the
//! `0xFF` + `guest-sync-delimited` handshake, typed commands, errors as captured, and
//! recovery when an earlier client left half a request in the agent's parser (which,
//! unlike QMP's, survives a disconnect).

mod conformance_common;

use core::time::Duration;
use std::io::Write;
use std::os::unix::net::UnixStream;

use conformance_common::{error_value, options, signal, start, vector_message, watchdog};
use qmp_std::launch::{Launcher, ServerKind, DEFAULT_QGA_RPCS};
use qmp_std::qmp_core::client::ExecuteError;
use qmp_std::qmp_core::qga::{GuestInfo, GuestPing, GuestSync, GuestSyncDelimited};
use qmp_std::{Error, GuestAgentClient, QemuProcess};
use rustix::process::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(300);

/// A `qemu-ga` allowing the RPCs of vector 40 (the launcher's defaults).
fn agent() -> QemuProcess {
    start(qmp_tests::agent_launcher())
}

fn connect_agent(agent: &QemuProcess) -> GuestAgentClient {
    GuestAgentClient::connect_unix(agent.socket_path(), options()).unwrap_or_else(|error| {
        panic!(
            "cannot start a guest-agent session: {error}; agent output: {}",
            agent.output()
        )
    })
}

/// Line `index` of vector 40 without the agent's `0xFF` sentinel.
fn qga_vector(index: usize) -> Value {
    vector_message("40-qga-session", index)
}

/// Both commands work and give the captured answers.
fn assert_agent_works(client: &GuestAgentClient) {
    let ping = client.execute(&GuestPing).unwrap();
    assert_eq!(ping.raw().as_str(), "{}");
    let info = client.execute(&GuestInfo).unwrap();
    assert_eq!(info.raw().to_value(), qga_vector(4)["return"]);
}

#[test]
fn sync_info_ping_and_errors_as_captured() {
    let _guard = watchdog("agent_session", LIMIT);
    let agent = agent();
    let client = connect_agent(&agent);
    // No greeting, no version; the session started with a sync.
    assert!(client.info().version.is_none());
    assert!(client.info().capabilities.is_none());
    let first = client.sync().unwrap();
    let second = client.sync().unwrap();
    assert!(first > 0 && first < 1 << 53 && second < 1 << 53);
    assert_ne!(first, second, "each sync uses a fresh random id");

    // Typed sync commands echo their ids.
    let delimited = client
        .execute(&GuestSyncDelimited {
            id: 1_234_567_890_123,
        })
        .unwrap();
    assert_eq!(delimited.raw().as_str(), "1234567890123");
    let sync = client.execute(&GuestSync { id: 42 }).unwrap();
    assert_eq!(sync.raw().to_value(), qga_vector(2)["return"]);

    // guest-info decoded with the typed command, and equal to the capture.
    let info = client.execute(&GuestInfo).unwrap();
    let decoded = info.get().unwrap();
    assert_eq!(
        decoded.version,
        qmp_tests::qemu_version(qmp_std::ServerKind::GuestAgent)
            .to_string()
            .as_str()
    );
    let enabled: Vec<String> = decoded
        .supported_commands
        .iter()
        .map(Result::unwrap)
        .filter(|command| command.enabled)
        .map(|command| command.name.chars().collect())
        .collect();
    let mut enabled = enabled;
    enabled.sort();
    assert_eq!(
        enabled,
        [
            "guest-info",
            "guest-ping",
            "guest-sync",
            "guest-sync-delimited"
        ]
    );
    assert_agent_works(&client);

    // Errors, as captured.
    let disabled = client
        .execute_value("guest-get-time", Value::Null)
        .unwrap_err();
    assert_eq!(
        error_value(&disabled),
        json!({"error": qga_vector(5)["error"]})
    );
    let unknown = client
        .execute_value("guest-nonexistent", Value::Null)
        .unwrap_err();
    assert_eq!(
        error_value(&unknown),
        json!({"error": qga_vector(6)["error"]})
    );
    let qmp_only = client
        .execute_value("qmp_capabilities", Value::Null)
        .unwrap_err();
    assert_eq!(
        error_value(&qmp_only),
        json!({"error": qga_vector(7)["error"]})
    );
    // The agent has no out-of-band execution: an agent client does not offer it, and
    // the session taken as a QMP client refuses it before sending.
    assert!(matches!(
        client.client().execute_oob(&GuestPing),
        Err(Error::Execute(
            ExecuteError::OobNotEnabled | ExecuteError::OobNotAllowed
        ))
    ));
    assert_agent_works(&client);
    let stats = client.stats();
    assert_eq!((stats.unmatched_replies, stats.malformed), (0, 0));
}

/// `GuestAgentClient::open_serial` over a pty bridged to a real qemu-ga: the device is
/// put in raw mode, so the agent's `0xFF` sentinel and the JSON lines pass unchanged.
#[test]
fn a_serial_line_carries_a_whole_session() {
    let _guard = watchdog("agent_serial", LIMIT);
    let agent = agent();
    let (line, _held) = conformance_common::serial_line_to(&agent);
    let client = GuestAgentClient::open_serial(&line, options())
        .unwrap_or_else(|error| panic!("open_serial: {error}; agent: {}", agent.output()));
    let first = client.sync().unwrap();
    assert_ne!(first, client.sync().unwrap());
    assert_agent_works(&client);
}

/// `GuestAgentClient::connect_io` over the two halves of the agent's socket.
#[test]
fn a_session_over_two_stream_halves() {
    let _guard = watchdog("agent_io", LIMIT);
    let agent = agent();
    let socket = UnixStream::connect(agent.socket_path()).unwrap();
    let reader = socket.try_clone().unwrap();
    // Any timeout is accepted, `Duration::MAX` (no limit) included.
    let forever = options()
        .greeting_timeout(Some(Duration::MAX))
        .command_timeout(Some(Duration::MAX));
    let client = GuestAgentClient::connect_io(reader, socket, forever).unwrap();
    assert!(client.sync().unwrap() > 0);
    assert_agent_works(&client);
}

#[test]
fn a_new_session_recovers_from_half_sent_requests() {
    let _guard = watchdog("agent_half_requests", LIMIT);
    let mut agent = agent();
    // What an earlier client may leave in the agent's parser when it goes away. (Not
    // whole requests: qemu-ga 10.0.2 may exit when a client leaves before reading its
    // replies and another connects at once.)
    let leftovers: [&[u8]; 6] = [
        br#"{"execute": "guest-ping", "argu"#,
        br#"{"execute": "guest-info", "arguments": {"x": "an open string"#,
        br#"{"execute": "guest-info", "arguments": {"x": "escape \"#,
        br#"{"execute": "guest-ping", "arguments": {"a": [1, {"b": [[["#,
        br#"{"execute": "guest-sync", "arguments": {"id": 12"#,
        b"{\"execute\": \"guest-ping\", \"x\": \"\xc3",
    ];
    for leftover in leftovers {
        let mut earlier = UnixStream::connect(agent.socket_path()).unwrap();
        earlier.write_all(leftover).unwrap();
        drop(earlier);
        let client = connect_agent(&agent);
        assert_agent_works(&client);
        assert_eq!(
            client.stats().unmatched_replies,
            0,
            "after {:?}",
            String::from_utf8_lossy(leftover)
        );
        client.close();
    }
    assert_eq!(
        agent.try_exit_status().unwrap(),
        None,
        "qemu-ga is still running"
    );
}

#[test]
fn a_timed_out_command_is_followed_by_a_resync() {
    let _guard = watchdog("agent_resync", LIMIT);
    let agent = agent();
    let client = connect_agent(&agent);
    // Freeze the agent: the command times out, its reply comes late.
    signal(agent.pid(), Signal::STOP);
    let timed_out = client.execute_timeout(&GuestInfo, Duration::from_secs(1));
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");
    signal(agent.pid(), Signal::CONT);
    // The client synchronises again before the next command, so the late guest-info
    // reply is not taken for the ping's.
    let ping = client.execute(&GuestPing).unwrap();
    assert_eq!(ping.raw().as_str(), "{}");
    assert_agent_works(&client);
}

/// `Launcher::new(ServerKind::GuestAgent)` starts any `qemu-ga` the suite runs (7.2's has
/// no `--allow-rpcs`; the launcher blocks the others there instead) and enables exactly
/// the default RPCs: `guest-info` lists every other one as disabled, and one of them
/// answers so.
#[test]
fn the_launcher_enables_exactly_the_default_rpcs_on_any_qemu_ga() {
    let _guard = watchdog("agent_launcher_rpcs", LIMIT);
    let agent = start(Launcher::new(ServerKind::GuestAgent));
    let client = connect_agent(&agent);
    let info = client.execute_value("guest-info", Value::Null).unwrap();
    let commands = info["supported_commands"].as_array().unwrap();
    assert!(commands.len() > DEFAULT_QGA_RPCS.len(), "{info}");
    for command in commands {
        let name = command["name"].as_str().unwrap();
        let expected = DEFAULT_QGA_RPCS.contains(&name);
        assert_eq!(
            command["enabled"],
            json!(expected),
            "{name} enabled should be {expected} (qemu-ga {}, allow-rpcs {})",
            qmp_tests::qemu_version(ServerKind::GuestAgent),
            qmp_tests::agent_has_allow_rpcs()
        );
    }
    for rpc in DEFAULT_QGA_RPCS {
        assert!(
            commands.iter().any(|c| c["name"] == *rpc),
            "{rpc} not listed"
        );
    }
    let refused = client
        .execute_value("guest-get-time", Value::Null)
        .unwrap_err();
    assert!(
        refused.to_string().contains("disabled"),
        "guest-get-time: {refused}"
    );
    assert_agent_works(&client);
}
