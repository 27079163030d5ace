//! The tokio client against real QEMU (feature `tokio`).
#![cfg(feature = "tokio")]

mod common;

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use common::{options, qsd, signal, watchdog};
use qmp_std::launch::{Launcher, ServerKind};
use qmp_std::qmp_core::commands::{AddFd, QueryFdsets, QueryVersion};
use qmp_std::qmp_core::qga::GuestPing;
use qmp_std::tokio::{AsyncClient, AsyncGuestAgentClient};
use qmp_std::{CallOptions, Error, ErrorClass};
use rustix::process::Signal;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basics_events_and_errors() {
    let _guard = watchdog("tokio_basics", Duration::from_secs(60));
    let qsd = qsd();
    let client = AsyncClient::connect_unix(qsd.socket_path(), options())
        .await
        .unwrap();
    assert_eq!(client.version().unwrap().major, 10);
    let reply = client.execute(&QueryVersion).await.unwrap();
    assert_eq!(reply.get().unwrap().qemu, client.version().unwrap());
    let major = client.call(&QueryVersion, |v| v.qemu.major).await.unwrap();
    assert_eq!(major, 10);
    let raw = client
        .execute_message(br#"{"execute": "query-named-block-nodes"}"#)
        .await
        .unwrap();
    assert_eq!(raw.as_str(), "[]");
    let raw = client
        .execute_json("query-named-block-nodes", Some(br#"{"flat": true}"#))
        .await
        .unwrap();
    assert_eq!(raw.as_str(), "[]");
    match client.execute_value("nope", serde_json::Value::Null).await {
        Err(Error::Qmp { class, .. }) => assert_eq!(class, ErrorClass::CommandNotFound),
        other => panic!("unexpected {other:?}"),
    }

    let jobs = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
    let image = qsd.dir().join("async.img");
    client
        .execute_value(
            "blockdev-create",
            json!({"job-id": "a", "options": {"driver": "file", "filename": image, "size": 65536}}),
        )
        .await
        .unwrap();
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("concluded") {
        let event = jobs.recv_timeout(Duration::from_secs(10)).await.unwrap();
        statuses.push(event.data_value()["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        statuses,
        ["created", "running", "waiting", "pending", "concluded"]
    );

    // Second client: AlreadyConnected after the greeting timeout.
    let second = AsyncClient::connect_unix(
        qsd.socket_path(),
        options().greeting_timeout(Some(Duration::from_millis(300))),
    )
    .await;
    assert!(matches!(second, Err(Error::AlreadyConnected)), "{second:?}");

    // Pipelined from 8 tasks.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let pending: Vec<_> = (0..125)
                    .map(|_| client.submit(&QueryVersion, CallOptions::new()))
                    .collect();
                let mut matched = 0;
                for call in pending {
                    assert_eq!(call.await.unwrap().get().unwrap().qemu.major, 10);
                    matched += 1;
                }
                matched
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 1000);

    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let done = Arc::clone(&done);
        client
            .execute_with_callback(&QueryVersion, move |result| {
                result.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    client.wait_idle(Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 10);

    client.close();
    assert!(matches!(jobs.recv().await, Err(Error::ClientClosed)));
    assert!(matches!(
        client.execute(&QueryVersion).await,
        Err(Error::ClientClosed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_timeouts_and_cancellation() {
    let _guard = watchdog("tokio_kill", Duration::from_secs(60));
    let mut qsd = qsd();
    let client = AsyncClient::connect_unix(qsd.socket_path(), options())
        .await
        .unwrap();
    signal(qsd.pid(), Signal::STOP);
    let timed_out = client
        .execute_timeout(&QueryVersion, Duration::from_millis(100))
        .await;
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");
    let pending = client.submit(&QueryVersion, CallOptions::new());
    let canceller = pending.canceller();
    canceller.cancel();
    assert!(matches!(pending.await, Err(Error::Cancelled)));
    let waited = tokio::time::timeout(
        Duration::from_millis(50),
        client.submit(&QueryVersion, CallOptions::new()),
    )
    .await
    .unwrap_or(Err(Error::Timeout));
    assert!(matches!(waited, Err(Error::Timeout)));

    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.execute(&QueryVersion).await.map(|_| ()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed = Instant::now();
    qsd.kill().unwrap();
    for task in tasks {
        let result = task.await.unwrap();
        assert!(common::server_gone(&result), "{result:?}");
    }
    assert!(killed.elapsed() < Duration::from_secs(5));
    assert!(client.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fd_passing_tcp_and_child_stdio() {
    let _guard = watchdog("tokio_fds", Duration::from_secs(60));
    let system = Launcher::new(ServerKind::System)
        .tcp_monitor(true)
        .spawn()
        .unwrap();
    let client = AsyncClient::connect_unix(system.socket_path(), options())
        .await
        .unwrap();
    let file = std::fs::File::create(system.dir().join("async-fd")).unwrap();
    let added = client
        .execute_with_fds(
            &AddFd {
                fdset_id: None,
                opaque: Some("async"),
            },
            &[file.as_fd()],
        )
        .await
        .unwrap();
    let fdset = added.get().unwrap().fdset_id;
    let sets = client.execute(&QueryFdsets).await.unwrap();
    let ids: Vec<i64> = sets
        .get()
        .unwrap()
        .iter()
        .map(|set| set.unwrap().fdset_id)
        .collect();
    assert_eq!(ids, [fdset]);

    let tcp = AsyncClient::connect_tcp(system.tcp_address().unwrap(), options())
        .await
        .unwrap();
    tcp.execute(&QueryVersion).await.unwrap();
    assert!(matches!(
        tcp.execute_with_fds(&AddFd::default(), &[file.as_fd()])
            .await,
        Err(Error::Io(_))
    ));

    let mut command = tokio::process::Command::new(ServerKind::System.program());
    command.args([
        "-M",
        "none",
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
        "stdio",
    ]);
    let (child_client, mut child) = AsyncClient::spawn(&mut command, options()).await.unwrap();
    assert_eq!(child_client.version().unwrap().major, 10);
    child_client
        .execute_value("quit", serde_json::Value::Null)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_agent() {
    let _guard = watchdog("tokio_agent", Duration::from_secs(60));
    let qga = Launcher::new(ServerKind::GuestAgent).spawn().unwrap();
    let agent = AsyncGuestAgentClient::connect_unix(qga.socket_path(), options())
        .await
        .unwrap();
    agent.execute(&GuestPing).await.unwrap();
    let info = agent
        .execute_value("guest-info", serde_json::Value::Null)
        .await
        .unwrap();
    assert!(info["version"].as_str().unwrap().starts_with("10."));
    assert!(agent.sync().await.unwrap() > 0);
}

/// Polls `future` once; whether it is still pending.
async fn poll_once<F: core::future::Future>(future: core::pin::Pin<&mut F>) -> bool {
    let mut future = Some(future);
    std::future::poll_fn(|context| {
        let pending = future
            .take()
            .is_some_and(|future| future.poll(context).is_pending());
        std::task::Poll::Ready(pending)
    })
    .await
}

/// A task that awaits a call drives the socket while it is polled; a task that stops
/// polling (as `select!` leaves its other branches) or drops its call must not stall the
/// other calls, the events or its own reply.
#[tokio::test]
async fn a_leading_task_that_is_no_longer_polled_stalls_nobody() {
    let _guard = watchdog("tokio_held_leader", Duration::from_secs(60));
    let qsd = qsd();
    let client = AsyncClient::connect_unix(qsd.socket_path(), options())
        .await
        .unwrap();
    // With the server stopped, the first poll of each call finds no reply: the first
    // leads the link, then neither is polled again for a while.
    signal(qsd.pid(), Signal::STOP);
    let mut held = std::pin::pin!(client.execute(&QueryVersion));
    let mut dropped = Box::pin(client.execute(&QueryVersion));
    assert!(poll_once(held.as_mut()).await);
    assert!(poll_once(dropped.as_mut()).await);
    signal(qsd.pid(), Signal::CONT);
    drop(dropped);

    // Calls on this task, on another task and on a blocking thread complete.
    let major = client.call(&QueryVersion, |v| v.qemu.major).await.unwrap();
    assert_eq!(major, 10);
    let other = tokio::spawn({
        let client = client.clone();
        async move { client.call(&QueryVersion, |v| v.qemu.major).await }
    });
    assert_eq!(other.await.unwrap().unwrap(), 10);
    let thread = std::thread::spawn({
        let client = client.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(client.call(&QueryVersion, |v| v.qemu.major))
        }
    });
    assert_eq!(thread.join().unwrap().unwrap(), 10);
    let blocked = std::thread::spawn({
        let client = client.clone();
        move || client.submit(&QueryVersion, CallOptions::new()).wait()
    });
    assert_eq!(
        blocked.join().unwrap().unwrap().get().unwrap().qemu.major,
        10
    );

    // Events reach a subscriber that no call helps.
    let jobs = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
    let image = qsd.dir().join("held.img");
    client
        .execute_value(
            "blockdev-create",
            json!({"job-id": "h", "options": {"driver": "file", "filename": image, "size": 65536}}),
        )
        .await
        .unwrap();
    loop {
        let event = jobs.recv_timeout(Duration::from_secs(10)).await.unwrap();
        if event.data_value()["status"] == "concluded" {
            break;
        }
    }

    // The held call's reply waited for it.
    assert_eq!(held.await.unwrap().get().unwrap().qemu.major, 10);
    client.wait_idle(Duration::from_secs(10)).await.unwrap();
}

/// The link is registered with the runtime of the first task that drove it; the client
/// keeps working from another runtime, whether that first runtime is idle or gone.
#[test]
fn a_client_outlives_the_runtime_that_drove_it_first() {
    let _guard = watchdog("tokio_runtimes", Duration::from_secs(60));
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let qsd = qsd();
    let first = runtime();
    let client = first.block_on(async {
        let client = AsyncClient::connect_unix(qsd.socket_path(), options())
            .await
            .unwrap();
        client.call(&QueryVersion, |v| v.qemu.major).await.unwrap();
        client
    });
    // Each reply comes late (the server is stopped for a moment), so the call's task
    // must wait for the link, not find the reply at once.
    let late_call = |runtime: &tokio::runtime::Runtime| {
        signal(qsd.pid(), Signal::STOP);
        let resume = std::thread::spawn({
            let pid = qsd.pid();
            move || {
                std::thread::sleep(Duration::from_millis(50));
                signal(pid, Signal::CONT);
            }
        });
        let major = runtime.block_on(client.call(&QueryVersion, |v| v.qemu.major));
        resume.join().unwrap();
        major
    };
    // The first runtime is alive but nobody drives it.
    let second = runtime();
    for _ in 0..3 {
        assert_eq!(late_call(&second).unwrap(), 10);
    }
    // The first runtime is gone.
    drop(first);
    for _ in 0..3 {
        assert_eq!(late_call(&second).unwrap(), 10);
    }
    client.close();
    assert!(matches!(
        second.block_on(client.call(&QueryVersion, |v| v.qemu.major)),
        Err(Error::ClientClosed)
    ));
}
