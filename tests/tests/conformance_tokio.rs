//! A representative subset of the conformance tests through the tokio client
//! (`qmp_std::tokio::AsyncClient` and `AsyncGuestAgentClient`): negotiation, typed, raw
//! and large replies, job events as captured, run-state events and `quit`, OOB
//! overtaking a slow command, fd passing, a second client, pipelining from many tasks,
//! SIGKILL while calls wait, and the guest agent.

mod conformance_common;

use core::time::Duration;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use conformance_common::{
    error_value, event_value, leak, options, qsd, qsys_pc, signal, start, vector_message,
    vector_transcript, watchdog, WAIT,
};
use qmp_std::qmp_core::commands::{
    BlockdevCreate, BlockdevCreateOptionsFile, Closefd, Command, Cont, Getfd, JobDismiss,
    ObjectAdd, PropertyValue, QomGet, QueryJobs, QueryQmpSchema, QueryStatus, QueryVersion,
    QueryYank, Quit, Stop, SystemReset,
};
use qmp_std::qmp_core::json::{DecodeError, RawJson};
use qmp_std::qmp_core::qga::{GuestInfo, GuestPing};
use qmp_std::tokio::{AsyncClient, AsyncGuestAgentClient, AsyncSubscription};
use qmp_std::{
    CallOptions, CloseReason, Error, ErrorClass, Launcher, QemuProcess, Reply, ServerKind,
};
use qmp_tests::{read_vector, split_lines};
use rustix::process::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(300);

async fn connect(process: &QemuProcess, options: qmp_std::ConnectOptions) -> AsyncClient {
    AsyncClient::connect_unix(process.socket_path(), options)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {}: {error}", process.kind()))
}

/// Every event already queued, without waiting.
fn queued(events: &AsyncSubscription) -> Vec<Value> {
    let mut queued = Vec::new();
    // After `quit` the session may close right behind the last event: what was queued
    // still comes first, then the end, which is not an error here.
    while let Some(event) = match events.try_recv() {
        Ok(event) => event,
        Err(Error::Closed(_)) => None,
        Err(error) => panic!("subscription failed: {error}"),
    } {
        queued.push(event_value(&event));
    }
    queued
}

/// Runs `command` and returns its reply as the vectors show it, preceded by the events
/// that were queued when it returned: those QEMU sent before the reply, and any that
/// came right after it (only for commands that cause no later events).
async fn exchange<C: Command>(
    client: &AsyncClient,
    events: &AsyncSubscription,
    command: &C,
) -> Vec<Value> {
    let reply = match client.execute(command).await {
        Ok(reply) => json!({"return": reply.raw().to_value()}),
        Err(error) => error_value(&error),
    };
    let mut entries = queued(events);
    entries.push(reply);
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_negotiation_commands_and_large_replies() {
    let _guard = watchdog("tokio_commands", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options()).await;
    let version = client.version().unwrap();
    let build = qmp_tests::qemu_build(ServerKind::StorageDaemon);
    assert_eq!(
        (version.major, version.minor, version.micro),
        (
            build.version.major,
            build.version.minor,
            build.version.micro
        )
    );
    assert!(client.capabilities().unwrap().oob);
    assert!(!client.oob_enabled());

    let captured = vector_message("05-query-version", 2)["return"].clone();
    let typed = client.execute(&QueryVersion).await.unwrap();
    assert_eq!(typed.get().unwrap().qemu, version);
    assert_eq!(typed.raw().to_value(), captured);
    let value = client
        .execute_value("query-version", Value::Null)
        .await
        .unwrap();
    assert_eq!(value, captured);
    let raw = client
        .execute_message(br#"{"execute": "query-version"}"#)
        .await
        .unwrap();
    assert_eq!(raw.as_bytes(), typed.raw().as_bytes());

    // The 117 KB schema (110 KB on 7.2), byte for byte as a raw socket reads it and, on
    // 10.0.2, as captured; decoded with the typed command.
    let schema = client.execute(&QueryQmpSchema).await.unwrap();
    let raw_return = tokio::task::spawn_blocking(|| {
        conformance_common::raw_schema_return(ServerKind::StorageDaemon)
    })
    .await
    .unwrap();
    assert_eq!(schema.raw().as_bytes(), raw_return);
    let vector = read_vector("07-query-qmp-schema.s2c");
    let line = split_lines(&vector)[2].strip_suffix(b"\r\n").unwrap();
    let captured = RawJson::parse(line).unwrap().get("return").unwrap();
    let commands = schema
        .get()
        .unwrap()
        .iter()
        .map(Result::unwrap)
        .filter(|entity| entity.meta_type == "command")
        .count();
    if build.version.is_captured() {
        assert_eq!(schema.raw().as_bytes(), captured.as_bytes());
        assert_eq!(commands, 76);
    } else {
        qmp_tests::assert_known(build.version);
        assert_eq!(raw_return.len(), conformance_common::SCHEMA_7_2_QSD_BYTES);
        assert_eq!(commands, 74);
    }

    // Errors as captured (vectors 08 and 12).
    let unknown = client
        .execute_value("no-such-command", Value::Null)
        .await
        .unwrap_err();
    assert_eq!(unknown.qmp_class(), Some(&ErrorClass::CommandNotFound));
    assert_eq!(
        error_value(&unknown)["error"],
        vector_message("08-unknown-command", 2)["error"]
    );
    let requests = read_vector("12-bad-arguments.c2s");
    for index in 6..=12 {
        let request = split_lines(&requests)[index];
        let error = client.execute_message(request).await.unwrap_err();
        assert_eq!(
            error_value(&error)["error"],
            vector_message("12-bad-arguments", index + 1)["error"]
        );
    }

    // The 236 KB schema of qemu-system-x86_64, with OOB negotiated this time.
    let system = start(Launcher::new(ServerKind::System));
    let client = connect(&system, options().enable_oob(true)).await;
    assert!(client.oob_enabled());
    let schema = client.execute(&QueryQmpSchema).await.unwrap();
    let size = schema.raw().as_bytes().len();
    assert!((200_000..300_000).contains(&size), "{size}");
    assert!(schema.get().unwrap().iter().all(|entity| entity.is_ok()));
    let yank = client.execute_oob(&QueryYank).await.unwrap();
    assert_eq!(
        yank.raw().to_value(),
        json!([{"type": "chardev", "id": "m0"}])
    );
    client.close();
    assert!(matches!(
        client.execute(&QueryVersion).await,
        Err(Error::ClientClosed)
    ));
}

/// Records events and replies in arrival order: both reach callbacks that run on the
/// client's one callback thread in the order they arrived.
struct AsyncTranscript {
    client: AsyncClient,
    entries: Arc<Mutex<Vec<Value>>>,
}

impl AsyncTranscript {
    fn record(client: &AsyncClient) -> Self {
        let entries = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&entries);
        client.on_any_event(move |event| sink.lock().unwrap().push(event_value(event)));
        AsyncTranscript {
            client: client.clone(),
            entries,
        }
    }

    async fn execute<C: Command + 'static>(&self, command: &C) {
        let sink = Arc::clone(&self.entries);
        let (done, reply) = tokio::sync::oneshot::channel();
        self.client
            .execute_with_callback(command, move |result| {
                let entry = match result {
                    Ok(reply) => json!({"return": reply.raw().to_value()}),
                    Err(error) => error_value(&error),
                };
                sink.lock().unwrap().push(entry);
                let _ = done.send(());
            })
            .unwrap();
        tokio::time::timeout(WAIT, reply).await.unwrap().unwrap();
    }

    async fn wait_for(&self, count: usize) {
        tokio::time::timeout(WAIT, async {
            while self.entries.lock().unwrap().len() < count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("transcript entries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_job_events_arrive_with_their_replies_as_captured() {
    let _guard = watchdog("tokio_jobs", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options()).await;
    let events = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
    let transcript = AsyncTranscript::record(&client);
    let image = leak(qsd.dir().join("tokio.img").to_str().unwrap());
    transcript
        .execute(&BlockdevCreate::new(
            "job0",
            BlockdevCreateOptionsFile {
                filename: image,
                size: 1 << 20,
                ..Default::default()
            },
        ))
        .await;
    transcript.wait_for(6).await;
    transcript.execute(&QueryJobs).await;
    transcript.execute(&JobDismiss { id: "job0" }).await;
    let entries = transcript.entries.lock().unwrap().clone();
    assert_eq!(entries, vector_transcript("15-job-blockdev-create"));
    // The subscription saw the same six status changes.
    let statuses: Vec<Value> = queued(&events)
        .into_iter()
        .map(|event| event["data"]["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [
            "created",
            "running",
            "waiting",
            "pending",
            "concluded",
            "null"
        ]
    );
    assert_eq!(events.missed(), 0);
}

/// `pmemsave` of 1 GiB to /dev/null (not typed by qmp-core).
struct SlowPmemsave;

impl Command for SlowPmemsave {
    const NAME: &'static str = "pmemsave";
    type Arguments = Value;
    type Response<'a> = RawJson<'a>;

    fn arguments(&self) -> Option<&Value> {
        static ARGUMENTS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        Some(
            ARGUMENTS
                .get_or_init(|| json!({"val": 0, "size": 1u64 << 30, "filename": "/dev/null"})),
        )
    }

    fn decode_response(raw: RawJson<'_>) -> Result<RawJson<'_>, DecodeError> {
        Ok(raw)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_oob_fds_and_run_state_events_until_quit() {
    let _guard = watchdog("tokio_system", LIMIT);
    let mut qsys = qsys_pc();
    let client = connect(&qsys, options().enable_oob(true)).await;
    let events = client.subscribe();

    // OOB overtakes a slow in-band command and the 7 queued behind it; the in-band
    // replies are recorded by callbacks, which run in arrival order.
    let order = Arc::new(Mutex::new(Vec::new()));
    let record = |name: &'static str| {
        let order = Arc::clone(&order);
        move |ok: bool| {
            assert!(ok, "{name} failed");
            order.lock().unwrap().push(name);
        }
    };
    let done = record("pmemsave");
    client
        .execute_with_callback(&SlowPmemsave, move |result| done(result.is_ok()))
        .unwrap();
    for _ in 0..7 {
        let done = record("query-status");
        client
            .execute_with_callback(&QueryStatus, move |result| done(result.is_ok()))
            .unwrap();
    }
    client.execute_oob(&QueryYank).await.unwrap();
    order.lock().unwrap().push("query-yank");
    client.wait_idle(WAIT).await.unwrap();
    let order = order.lock().unwrap().clone();
    let mut expected = vec!["query-yank", "pmemsave"];
    expected.extend(["query-status"; 7]);
    assert_eq!(order, expected);

    // getfd / closefd with a pipe.
    let (_read_end, write_end) = rustix::pipe::pipe().unwrap();
    client
        .execute_with_fds(&Getfd { fdname: "pipe" }, &[write_end.as_fd()])
        .await
        .unwrap();
    client.execute(&Closefd { fdname: "pipe" }).await.unwrap();
    let again = client
        .execute(&Closefd { fdname: "pipe" })
        .await
        .unwrap_err();
    assert_eq!(
        error_value(&again)["error"]["desc"],
        "File descriptor named 'pipe' not found"
    );

    // Run-state changes, events before their replies as in vector 30 (from "-S",
    // prelaunch: cont starts the machine first).
    assert_eq!(
        exchange(&client, &events, &Cont).await,
        [json!({"event": "RESUME"}), json!({"return": {}})]
    );
    let status = client.execute(&QueryStatus).await.unwrap();
    assert!(status.get().unwrap().running);
    assert_eq!(
        exchange(&client, &events, &Stop).await,
        [json!({"event": "STOP"}), json!({"return": {}})]
    );
    assert_eq!(
        exchange(&client, &events, &Stop).await,
        [json!({"return": {}})]
    );
    assert_eq!(
        exchange(&client, &events, &SystemReset).await,
        [
            json!({"event": "RESET", "data": {"guest": false, "reason": "host-qmp-system-reset"}}),
            json!({"return": {}})
        ]
    );
    assert_eq!(
        exchange(&client, &events, &Quit).await,
        [
            json!({"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}),
            json!({"return": {}})
        ]
    );
    // Then the connection closes and QEMU exits.
    assert!(matches!(
        events.recv_timeout(WAIT).await,
        Err(Error::Closed(CloseReason::EndOfStream { .. }))
    ));
    assert!(client.is_closed());
    assert!(qsys.wait_exit(WAIT).unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_second_client_pipelining_and_sigkill() {
    let _guard = watchdog("tokio_concurrency", LIMIT);
    let mut qsd = qsd();
    let client = connect(
        &qsd,
        options().command_timeout(Some(Duration::from_secs(600))),
    )
    .await;

    let second = AsyncClient::connect_unix(
        qsd.socket_path(),
        options().greeting_timeout(Some(Duration::from_secs(2))),
    )
    .await;
    assert!(matches!(second, Err(Error::AlreadyConnected)), "{second:?}");

    // 8 tasks × 250 pipelined qom-get, each reply checked against its request.
    let ids: Vec<String> = (0..8).map(|t| format!("task{t}")).collect();
    for id in &ids {
        let properties = [("identity", PropertyValue::Str(id))];
        client
            .execute(&ObjectAdd {
                properties: &properties,
                ..ObjectAdd::new("authz-simple", id)
            })
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                let paths: Vec<String> = (0..250)
                    .map(|n| {
                        if n % 5 == 4 {
                            format!("/objects/missing-{t}-{n}")
                        } else {
                            format!("/objects/task{t}")
                        }
                    })
                    .collect();
                let calls: Vec<_> = paths
                    .iter()
                    .map(|path| {
                        let query = QomGet {
                            path,
                            property: "identity",
                        };
                        client.submit(&query, CallOptions::new())
                    })
                    .collect();
                for (path, call) in paths.iter().zip(calls) {
                    match call.await {
                        Ok(reply) => {
                            assert_eq!(path, &format!("/objects/task{t}"));
                            let value = reply.get().unwrap().as_json_str().unwrap();
                            assert_eq!(value, format!("task{t}").as_str());
                        }
                        Err(Error::Qmp { desc, .. }) => {
                            assert_eq!(desc, format!("Device '{path}' not found"));
                        }
                        Err(other) => panic!("{path}: {other}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(client.stats().unmatched_replies, 0);

    // Freeze, queue calls of every kind, kill: all fail at once with the end of stream.
    let events = client.subscribe();
    signal(qsd.pid(), Signal::STOP);
    let calls: Vec<_> = (0..100)
        .map(|_| client.submit(&QueryVersion, CallOptions::new()))
        .collect();
    let value_call = {
        let client = client.clone();
        tokio::spawn(async move { client.execute_value("query-version", Value::Null).await })
    };
    let event_wait = tokio::spawn(async move { events.recv().await });
    conformance_common::wait_until("every call to be submitted", || client.outstanding() >= 101);
    qsd.kill().unwrap();
    for call in calls {
        let result = tokio::time::timeout(WAIT, call).await.unwrap();
        assert!(conformance_common::server_gone(&result), "{result:?}");
    }
    let result = tokio::time::timeout(WAIT, value_call)
        .await
        .unwrap()
        .unwrap();
    assert!(conformance_common::server_gone(&result), "{result:?}");
    let event = tokio::time::timeout(WAIT, event_wait)
        .await
        .unwrap()
        .unwrap();
    assert!(conformance_common::server_gone(&event), "{event:?}");
    assert!(client.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_guest_agent_session_and_recovery() {
    let _guard = watchdog("tokio_agent", LIMIT);
    let agent = start(qmp_tests::agent_launcher());
    // An earlier client left half a request in the agent's parser.
    let mut earlier = std::os::unix::net::UnixStream::connect(agent.socket_path()).unwrap();
    earlier
        .write_all(br#"{"execute": "guest-info", "arguments": {"x": "open"#)
        .unwrap();
    drop(earlier);
    let client = AsyncGuestAgentClient::connect_unix(agent.socket_path(), options())
        .await
        .unwrap();
    let first = client.sync().await.unwrap();
    assert_ne!(first, client.sync().await.unwrap());
    let info = assert_async_agent_works(&client).await;
    assert_eq!(
        info.get().unwrap().version,
        qmp_tests::qemu_version(ServerKind::GuestAgent)
            .to_string()
            .as_str()
    );
    let disabled = client
        .execute_value("guest-get-time", Value::Null)
        .await
        .unwrap_err();
    assert_eq!(
        error_value(&disabled)["error"],
        vector_message("40-qga-session", 5)["error"]
    );
}

/// `AsyncGuestAgentClient::open_serial` over a pty bridged to a real qemu-ga.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_guest_agent_over_a_serial_line() {
    let _guard = watchdog("tokio_agent_serial", LIMIT);
    let agent = start(qmp_tests::agent_launcher());
    let (line, _held) = conformance_common::serial_line_to(&agent);
    let client = AsyncGuestAgentClient::open_serial(&line, options())
        .await
        .unwrap();
    assert!(client.sync().await.unwrap() > 0);
    assert_async_agent_works(&client).await;
}

/// `guest-ping` and `guest-info` work and give the captured answers; returns the info.
async fn assert_async_agent_works(client: &AsyncGuestAgentClient) -> Reply<GuestInfo> {
    let ping = client.execute(&GuestPing).await.unwrap();
    assert_eq!(ping.raw().as_str(), "{}");
    let info = client.execute(&GuestInfo).await.unwrap();
    assert_eq!(
        info.raw().to_value(),
        vector_message("40-qga-session", 4)["return"]
    );
    info
}
