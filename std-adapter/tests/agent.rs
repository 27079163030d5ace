//! The guest-agent client against a real `qemu-ga`, over its Unix socket and over a
//! pty (the serial-line case).

mod common;

use core::time::Duration;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::{Command as ProcessCommand, Stdio};

use common::{options, watchdog};
use qmp_std::launch::{Launcher, ServerKind};
use qmp_std::qmp_core::qga::{GuestInfo, GuestPing};
use qmp_std::{Error, ErrorClass, GuestAgentClient, Transport};

#[test]
fn sync_info_ping_and_disabled_commands() {
    let _guard = watchdog("agent", Duration::from_secs(60));
    let qga = Launcher::new(ServerKind::GuestAgent).spawn().unwrap();
    let agent = GuestAgentClient::connect_unix(qga.socket_path(), options()).unwrap();
    assert!(agent.info().version.is_none());
    let info = agent.execute(&GuestInfo).unwrap();
    let info = info.get().unwrap();
    assert!(info.version.raw().starts_with("10."), "{}", info.version);
    let commands: Vec<String> = info
        .supported_commands
        .iter()
        .map(|c| c.unwrap().name.chars().collect())
        .collect();
    assert!(commands.iter().any(|c| c == "guest-ping"));
    agent.execute(&GuestPing).unwrap();
    let id = agent.sync().unwrap();
    assert!(id > 0 && id < 1 << 53);
    match agent.execute_value("guest-get-time", serde_json::Value::Null) {
        Err(Error::Qmp { class, desc }) => {
            assert_eq!(class, ErrorClass::CommandNotFound);
            assert!(desc.contains("disabled"), "{desc}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let raw = agent
        .execute_message(br#"{"execute": "guest-ping"}"#)
        .unwrap();
    assert_eq!(raw.as_str(), "{}");
    let raw = agent.execute_json("guest-ping", None).unwrap();
    assert_eq!(raw.as_str(), "{}");
    assert_eq!(agent.stats().unmatched_replies, 0);
}

#[test]
fn reconnect_after_a_half_sent_request() {
    let _guard = watchdog("agent_reconnect", Duration::from_secs(60));
    let qga = Launcher::new(ServerKind::GuestAgent).spawn().unwrap();
    // A previous client leaves half a request in the agent's parser (it survives the
    // disconnect); the sync at connect flushes it.
    let mut previous = UnixStream::connect(qga.socket_path()).unwrap();
    previous
        .write_all(br#"{"execute": "guest-ping", "argu"#)
        .unwrap();
    drop(previous);
    let agent = GuestAgentClient::connect_unix(qga.socket_path(), options()).unwrap();
    agent.execute(&GuestPing).unwrap();
    agent.execute(&GuestInfo).unwrap();
    drop(agent);
    let again = GuestAgentClient::connect_unix(qga.socket_path(), options()).unwrap();
    again.execute(&GuestPing).unwrap();
}

#[test]
fn serial_line_through_a_pty() {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let _guard = watchdog("agent_pty", Duration::from_secs(60));
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave = ptsname(&master, Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = dir.path().join("qga.conf");
    std::fs::write(&config, "").unwrap();
    let mut child = ProcessCommand::new(ServerKind::GuestAgent.program())
        .env("QGA_CONF", &config)
        .args(["-m", "isa-serial", "-p"])
        .arg(slave.to_str().unwrap())
        .arg("-t")
        .arg(&state)
        .arg("-f")
        .arg(dir.path().join("pid"))
        .arg("--allow-rpcs=guest-sync-delimited,guest-ping,guest-info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The agent flushes the line when it opens it: wait until it has the pty open.
    let started = std::time::Instant::now();
    let fd_dir = format!("/proc/{}/fd", child.id());
    let has_line_open = || {
        std::fs::read_dir(&fd_dir).is_ok_and(|entries| {
            entries.filter_map(Result::ok).any(|entry| {
                std::fs::read_link(entry.path())
                    .is_ok_and(|target| target.as_os_str() == slave.as_c_str().to_str().unwrap())
            })
        })
    };
    while !has_line_open() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let transport = Transport::from_device(std::fs::File::from(master)).unwrap();
    let result = GuestAgentClient::connect(transport, options()).and_then(|agent| {
        agent.execute(&GuestPing)?;
        agent.execute(&GuestInfo).map(|_| ())
    });
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
}
