//! The blocking client against real QEMU processes (qemu-storage-daemon first,
//! qemu-system-x86_64 -M none where qsd cannot show something).

mod common;

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::os::fd::AsFd;
use std::process::Command as ProcessCommand;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use common::{options, qsd, qsd_client, signal, watchdog};
use qmp_std::launch::{Launcher, ServerKind};
use qmp_std::qmp_core::commands::{AddFd, QueryFdsets, QueryVersion, QueryYank};
use qmp_std::{CallOptions, Client, Error, ErrorClass};
use rustix::process::Signal;
use serde_json::json;

#[test]
fn connect_version_typed_and_raw_commands() {
    let _guard = watchdog(
        "connect_version_typed_and_raw_commands",
        Duration::from_secs(60),
    );
    let (_qsd, client) = qsd_client();
    let version = client.version().expect("greeting version");
    assert_eq!(version.major, 10);
    assert!(client.capabilities().unwrap().oob, "qsd offers oob");
    assert!(!client.oob_enabled());

    let reply = client.execute(&QueryVersion).unwrap();
    assert_eq!(reply.get().unwrap().qemu, version);
    let package = client
        .call(&QueryVersion, |v| v.package.chars().collect::<String>())
        .unwrap();
    assert_eq!(package, client.info().package);

    let nodes = client
        .execute_value("query-named-block-nodes", json!({"flat": true}))
        .unwrap();
    assert_eq!(nodes, json!([]));
    let raw = client
        .execute_message(br#"{"execute": "query-version", "id": "ignored"}"#)
        .unwrap();
    assert_eq!(raw.to_value()["qemu"]["major"], 10);
    let raw = client
        .execute_json("query-named-block-nodes", Some(br#"{"flat": true}"#))
        .unwrap();
    assert_eq!(raw.as_str(), "[]");
    let raw = client.execute_json("query-version", None).unwrap();
    assert_eq!(raw.to_value()["qemu"]["major"], 10);
    assert!(matches!(
        client.execute_json("query-version", Some(b"[1]")),
        Err(Error::Execute(_))
    ));

    match client.execute_value("no-such-command", serde_json::Value::Null) {
        Err(Error::Qmp { class, desc }) => {
            assert_eq!(class, ErrorClass::CommandNotFound);
            assert!(desc.contains("no-such-command"), "{desc}");
        }
        other => panic!("unexpected {other:?}"),
    }
    match client.execute_value("blockdev-add", json!({"node-name": "x"})) {
        Err(Error::Qmp { class, .. }) => assert_eq!(class, ErrorClass::GenericError),
        other => panic!("unexpected {other:?}"),
    }
    // The session is unharmed by errors; the core saw nothing odd.
    client.execute(&QueryVersion).unwrap();
    let stats = client.stats();
    assert_eq!(stats.unmatched_replies, 0);
    assert_eq!(stats.malformed, 0);
    client.close();
    assert!(matches!(
        client.execute(&QueryVersion),
        Err(Error::ClientClosed)
    ));
}

#[test]
fn strings_round_trip_through_qemu() {
    let _guard = watchdog("strings_round_trip_through_qemu", Duration::from_secs(60));
    let (_qsd, client) = qsd_client();
    let name = "q\"uote\\back\tslash é 漢 😀 \u{1}";
    let added = client.execute_value(
        "blockdev-add",
        json!({"driver": "null-co", "node-name": "n0", "size": 4096}),
    );
    added.unwrap();
    let error = client
        .execute_value("blockdev-del", json!({"node-name": name}))
        .unwrap_err();
    match error {
        Error::Qmp { desc, .. } => assert!(desc.contains(name), "{desc}"),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn job_events_reach_a_filtered_subscriber_and_callbacks_in_order() {
    let _guard = watchdog("job_events", Duration::from_secs(60));
    let (qsd, client) = qsd_client();
    let jobs = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
    let others = client.subscribe_filtered(&["BLOCK_JOB_READY"]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_callback = Arc::clone(&seen);
    client.on_event("JOB_STATUS_CHANGE", move |event| {
        let status = event.data_value()["status"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        seen_by_callback.lock().unwrap().push(status);
    });
    let image = qsd.dir().join("created.img");
    client
        .execute_value(
            "blockdev-create",
            json!({"job-id": "j", "options": {"driver": "file", "filename": image, "size": 1048576}}),
        )
        .unwrap();
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("concluded") {
        let event = jobs.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(event.name(), "JOB_STATUS_CHANGE");
        assert_eq!(event.data_value()["id"], "j");
        assert!(!event.timestamp().is_unknown());
        statuses.push(event.data_value()["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        statuses,
        ["created", "running", "waiting", "pending", "concluded"]
    );
    client
        .execute_value("job-dismiss", json!({"id": "j"}))
        .unwrap();
    let null = jobs.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(null.data_value()["status"], "null");
    assert_eq!(jobs.missed(), 0);
    assert!(others.is_empty());
    assert!(image.exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 6 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "created",
            "running",
            "waiting",
            "pending",
            "concluded",
            "null"
        ]
    );
}

#[test]
fn second_client_times_out_as_already_connected() {
    let _guard = watchdog("second_client", Duration::from_secs(60));
    let (qsd, first) = qsd_client();
    let started = Instant::now();
    let second = Client::connect_unix(
        qsd.socket_path(),
        options().greeting_timeout(Some(Duration::from_millis(500))),
    );
    let waited = started.elapsed();
    assert!(matches!(second, Err(Error::AlreadyConnected)), "{second:?}");
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let io: std::io::Error = second.unwrap_err().into();
    assert_eq!(io.kind(), std::io::ErrorKind::ResourceBusy);
    // The first client is unaffected; once it leaves, a new one gets in.
    first.execute(&QueryVersion).unwrap();
    drop(first);
    let third = Client::connect_unix(qsd.socket_path(), options()).unwrap();
    third.execute(&QueryVersion).unwrap();
}

#[test]
fn sigkill_fails_every_waiting_call_promptly() {
    let _guard = watchdog("sigkill", Duration::from_secs(60));
    let (mut qsd, client) = qsd_client();
    let events = client.subscribe();
    // Freeze QEMU so the calls really wait, then kill it.
    signal(qsd.pid(), Signal::STOP);
    let waiting = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let waiting = Arc::clone(&waiting);
            thread::spawn(move || {
                let pending = client.submit(&QueryVersion, CallOptions::new());
                waiting.fetch_add(1, Ordering::SeqCst);
                let result = pending.wait();
                (result.map(|_| ()), Instant::now())
            })
        })
        .collect();
    while waiting.load(Ordering::SeqCst) < 4 {
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(100));
    assert_eq!(client.outstanding(), 4);
    let killed = Instant::now();
    qsd.kill().unwrap();
    for handle in threads {
        let (result, at) = handle.join().unwrap();
        // Killed with our requests unread, the server's socket resets.
        assert!(common::server_gone(&result), "{result:?}");
        assert!(at.duration_since(killed) < Duration::from_secs(5));
    }
    assert!(client.is_closed());
    assert!(common::server_gone(&events.recv()));
    assert!(client.execute(&QueryVersion).unwrap_err().is_closed());
    client.wait_idle(Duration::from_secs(1)).unwrap();
}

#[test]
fn ten_thousand_pipelined_commands_from_eight_threads() {
    let _guard = watchdog("pipelined", Duration::from_secs(120));
    let (_qsd, client) = qsd_client();
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || {
                let mut matched = 0;
                for _ in 0..5 {
                    let pending: Vec<_> = (0..250)
                        .map(|_| client.submit(&QueryVersion, CallOptions::new()))
                        .collect();
                    for call in pending {
                        let reply = call.wait().unwrap();
                        assert_eq!(reply.get().unwrap().qemu.major, 10);
                        matched += 1;
                    }
                }
                matched
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 10_000);
    let stats = client.stats();
    assert_eq!(stats.unmatched_replies, 0);
    assert_eq!(stats.late_replies, 0);
    assert_eq!(client.outstanding(), 0);
    eprintln!("10,000 pipelined query-version in {:?}", started.elapsed());
}

#[test]
fn fds_ride_on_add_fd() {
    let _guard = watchdog("fds", Duration::from_secs(60));
    // qemu-storage-daemon has no fd commands: use qemu-system-x86_64 -M none.
    let system = Launcher::new(ServerKind::System).spawn().unwrap();
    let client = Client::connect_unix(system.socket_path(), options()).unwrap();
    let file = std::fs::File::create(system.dir().join("passed")).unwrap();
    // Commands before and after, pipelined with it, must not take the descriptor.
    let before = client.submit(&QueryVersion, CallOptions::new());
    let fds = [file.as_fd()];
    let added = client.submit(
        &AddFd {
            fdset_id: None,
            opaque: Some("from-test"),
        },
        CallOptions::new().fds(&fds),
    );
    let after = client.submit(&QueryVersion, CallOptions::new());
    before.wait().unwrap();
    let info = added.wait().unwrap().get().unwrap();
    after.wait().unwrap();
    let second = client
        .execute_with_fds(
            &AddFd {
                fdset_id: Some(info.fdset_id),
                opaque: None,
            },
            &[file.as_fd()],
        )
        .unwrap();
    assert_eq!(second.get().unwrap().fdset_id, info.fdset_id);
    let sets = client.execute(&QueryFdsets).unwrap();
    let sets: Vec<_> = sets.get().unwrap().iter().map(Result::unwrap).collect();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].fdset_id, info.fdset_id);
    let fds: Vec<_> = sets[0].fds.iter().map(Result::unwrap).collect();
    assert_eq!(fds.len(), 2);
    assert!(fds
        .iter()
        .any(|fd| fd.fd == info.fd && fd.opaque.is_some_and(|o| o == "from-test")));
    // Without a descriptor, add-fd fails.
    let missing = client.execute(&AddFd::default()).unwrap_err();
    assert!(matches!(missing, Error::Qmp { .. }), "{missing}");
}

#[test]
fn oob_negotiation() {
    let _guard = watchdog("oob", Duration::from_secs(60));
    let qsd = qsd();
    let plain = Client::connect_unix(qsd.socket_path(), options()).unwrap();
    assert!(matches!(
        plain.execute_oob(&QueryYank),
        Err(Error::Execute(_))
    ));
    drop(plain);
    let client = Client::connect_unix(qsd.socket_path(), options().enable_oob(true)).unwrap();
    assert!(client.oob_enabled());
    // qsd offers OOB but allows no command out of band.
    let refused = client
        .execute_message(br#"{"exec-oob": "query-version"}"#)
        .unwrap_err();
    match refused {
        Error::Qmp { desc, .. } => assert!(desc.contains("does not support OOB"), "{desc}"),
        other => panic!("unexpected {other}"),
    }
    // A typed command not marked allow-oob is refused before it is sent.
    assert!(matches!(
        client.execute_oob(&QueryVersion),
        Err(Error::Execute(_))
    ));
    // More in-band commands than QEMU queues with OOB on still all complete (the client
    // keeps the rest waiting).
    let pending: Vec<_> = (0..40)
        .map(|_| client.submit(&QueryVersion, CallOptions::new()))
        .collect();
    for call in pending {
        call.wait().unwrap();
    }

    let system = Launcher::new(ServerKind::System).spawn().unwrap();
    let client = Client::connect_unix(system.socket_path(), options().enable_oob(true)).unwrap();
    assert!(client.oob_enabled());
    let yank = client.execute_oob(&QueryYank).unwrap();
    assert!(yank.get().unwrap().iter().all(|i| i.is_ok()));
}

#[test]
fn per_call_timeouts_cancellation_and_late_replies() {
    let _guard = watchdog("timeouts", Duration::from_secs(60));
    let (qsd, client) = qsd_client();
    signal(qsd.pid(), Signal::STOP);
    let started = Instant::now();
    let timed_out = client.execute_timeout(&QueryVersion, Duration::from_millis(200));
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let pending = client.submit(&QueryVersion, CallOptions::new());
    let canceller = pending.canceller();
    let waiter = thread::spawn(move || pending.wait());
    thread::sleep(Duration::from_millis(50));
    canceller.cancel();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Cancelled)));

    let waited = client
        .submit(&QueryVersion, CallOptions::new())
        .wait_timeout(Duration::from_millis(100));
    assert!(matches!(waited, Err(Error::Timeout)));

    signal(qsd.pid(), Signal::CONT);
    // The late replies of the three abandoned commands are dropped; this one gets its
    // own.
    let reply = client.execute(&QueryVersion).unwrap();
    assert_eq!(reply.get().unwrap().qemu.major, 10);
    client.wait_idle(Duration::from_secs(5)).unwrap();
    assert_eq!(client.stats().late_replies, 3);
    assert_eq!(client.stats().unmatched_replies, 0);
}

#[test]
fn async_callbacks_and_wait_idle() {
    let _guard = watchdog("async", Duration::from_secs(60));
    let (_qsd, client) = qsd_client();
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let done = Arc::clone(&done);
        client
            .execute_with_callback(&QueryVersion, move |result| {
                assert_eq!(result.unwrap().get().unwrap().qemu.major, 10);
                thread::sleep(Duration::from_millis(2));
                done.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    client.wait_idle(Duration::from_secs(20)).unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 50);
    assert_eq!(client.outstanding(), 0);
}

#[test]
fn large_replies_fit_or_fail_alone() {
    let _guard = watchdog("large", Duration::from_secs(60));
    let system = Launcher::new(ServerKind::System).spawn().unwrap();
    let client = Client::connect_unix(system.socket_path(), options()).unwrap();
    let schema = client
        .execute_message(br#"{"execute": "query-qmp-schema"}"#)
        .unwrap();
    assert!(
        schema.as_bytes().len() > 200_000,
        "{}",
        schema.as_bytes().len()
    );
    drop(client);
    let small =
        Client::connect_unix(system.socket_path(), options().rx_buffer_size(64 * 1024)).unwrap();
    let too_large = small.execute_value("query-qmp-schema", serde_json::Value::Null);
    assert!(
        matches!(too_large, Err(Error::ReplyTooLarge { len }) if len > 200_000),
        "{too_large:?}"
    );
    small.execute(&QueryVersion).unwrap();
}

/// Any start timeout is accepted, `Duration::MAX` (no limit) included.
#[test]
fn the_launcher_takes_any_start_timeout() {
    let _guard = watchdog("start_timeout", Duration::from_secs(120));
    for timeout in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
        let qsd = Launcher::new(ServerKind::StorageDaemon)
            .start_timeout(timeout)
            .spawn()
            .unwrap();
        let client = Client::connect_unix(qsd.socket_path(), options()).unwrap();
        client.execute(&QueryVersion).unwrap();
    }
}

#[test]
fn tcp_and_child_stdio_transports() {
    let _guard = watchdog("transports", Duration::from_secs(60));
    let qsd = Launcher::new(ServerKind::StorageDaemon)
        .tcp_monitor(true)
        .spawn()
        .unwrap();
    let tcp = Client::connect_tcp(qsd.tcp_address().unwrap(), options()).unwrap();
    assert_eq!(
        tcp.execute(&QueryVersion)
            .unwrap()
            .get()
            .unwrap()
            .qemu
            .major,
        10
    );
    let fd_refused = tcp.execute_with_fds(&AddFd::default(), &[std::io::stdin().as_fd()]);
    assert!(matches!(fd_refused, Err(Error::Io(_))), "{fd_refused:?}");

    let program = ServerKind::System.program();
    let mut command = ProcessCommand::new(program);
    command.args([
        "-M",
        "none",
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
        "stdio",
    ]);
    let (client, mut child) = Client::spawn(&mut command, options()).unwrap();
    assert_eq!(client.version().unwrap().major, 10);
    client
        .execute_value("quit", serde_json::Value::Null)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !client.is_closed() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(client.is_closed());
}

#[test]
fn close_ends_listeners_and_later_calls() {
    let _guard = watchdog("close", Duration::from_secs(60));
    let (_qsd, client) = qsd_client();
    let events = client.subscribe();
    let canceller = events.canceller();
    let weak = client.downgrade();
    let other = client.clone();
    client.close();
    assert!(matches!(events.recv(), Err(Error::ClientClosed)));
    assert!(matches!(
        other.execute(&QueryVersion),
        Err(Error::ClientClosed)
    ));
    assert!(matches!(
        other.execute_value("query-version", serde_json::Value::Null),
        Err(Error::ClientClosed)
    ));
    canceller.cancel();
    drop(client);
    assert!(weak.upgrade().is_some());
    drop(other);
    assert!(weak.upgrade().is_none());
}
