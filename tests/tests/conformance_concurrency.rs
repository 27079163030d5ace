//! Many callers on one blocking client: 10,000 pipelined commands from 8 threads, each
//! reply checked against the request it answers, and QEMU killed while calls of every
//! kind wait.

mod conformance_common;

use core::time::Duration;
use std::sync::mpsc;
use std::thread;

use conformance_common::{connect, options, qsd, signal, wait_until, watchdog, WAIT};
use qmp_std::qmp_core::commands::{ObjectAdd, PropertyValue, QomGet, QueryVersion};
use qmp_std::{CallOptions, Client, Error, ErrorClass};
use rustix::process::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(600);
const THREADS: usize = 8;
const PER_THREAD: usize = 1250;
/// Objects per thread; request `n` of thread `t` reads object `n % OBJECTS` of `t`.
const OBJECTS: usize = 125;
/// Calls a thread submits before waiting for their replies.
const WINDOW: usize = 250;

fn identity(thread: usize, object: usize) -> String {
    format!("t{thread}-o{object}")
}

/// What request `n` of thread `t` asks, and the reply that must come back: mostly
/// `qom-get` of an object whose value names it, every 8th a path that does not exist,
/// whose error message quotes it (unique per request).
enum Expect {
    Value(String),
    Missing(String),
}

fn request(thread: usize, n: usize) -> (String, Expect) {
    if n % 8 == 7 {
        let path = format!("/objects/missing-t{thread}-n{n}");
        (path.clone(), Expect::Missing(path))
    } else {
        let object = n % OBJECTS;
        (
            format!("/objects/{}", identity(thread, object)),
            Expect::Value(identity(thread, object)),
        )
    }
}

#[test]
fn ten_thousand_pipelined_commands_from_eight_threads_get_their_own_replies() {
    let _guard = watchdog("pipelined", LIMIT);
    let qsd = qsd();
    let client = connect(&qsd, options());
    // authz-simple objects whose string property `identity` names each one. (A
    // `Pending` of a typed command borrows the command's strings, so they live outside.)
    let ids: Vec<String> = (0..THREADS)
        .flat_map(|t| (0..OBJECTS).map(move |o| identity(t, o)))
        .collect();
    let properties: Vec<[(&str, PropertyValue<'_>); 1]> = ids
        .iter()
        .map(|id| [("identity", PropertyValue::Str(id))])
        .collect();
    let created: Vec<_> = ids
        .iter()
        .zip(&properties)
        .map(|(id, properties)| {
            client.submit(
                &ObjectAdd {
                    properties,
                    ..ObjectAdd::new("authz-simple", id)
                },
                CallOptions::new(),
            )
        })
        .collect();
    for call in created {
        call.wait().unwrap();
    }

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let client = client.clone();
            thread::spawn(move || {
                let mut matched = 0;
                for window in 0..PER_THREAD / WINDOW {
                    let requests: Vec<(usize, String, Expect)> = (window * WINDOW
                        ..(window + 1) * WINDOW)
                        .map(|n| {
                            let (path, expect) = request(t, n);
                            (n, path, expect)
                        })
                        .collect();
                    let calls: Vec<_> = requests
                        .iter()
                        .map(|(n, path, expect)| {
                            let call = client.submit(
                                &QomGet {
                                    path,
                                    property: "identity",
                                },
                                CallOptions::new(),
                            );
                            (*n, call, expect)
                        })
                        .collect();
                    for (n, call, expect) in calls {
                        match (call.wait(), expect) {
                            (Ok(reply), Expect::Value(value)) => {
                                let got = reply.get().unwrap().as_json_str().unwrap();
                                assert_eq!(got, value.as_str(), "thread {t} request {n}");
                            }
                            (Err(Error::Qmp { class, desc }), Expect::Missing(path)) => {
                                assert_eq!(class, ErrorClass::DeviceNotFound);
                                assert_eq!(desc, format!("Device '{path}' not found"));
                            }
                            (other, _) => panic!("thread {t} request {n}: {other:?}"),
                        }
                        matched += 1;
                    }
                }
                matched
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, THREADS * PER_THREAD);
    let stats = client.stats();
    assert_eq!(stats.unmatched_replies, 0);
    assert_eq!(stats.late_replies, 0);
    assert_eq!(stats.unattributed_errors, 0);
    assert_eq!(client.outstanding(), 0);
    client.execute(&QueryVersion).unwrap();
}

#[test]
fn sigkill_fails_every_waiting_call_promptly() {
    let _guard = watchdog("sigkill", LIMIT);
    let mut qsd = qsd();
    // Calls wait far longer than this test waits for them to fail: a Timeout would show
    // the client missed the end of the connection.
    let client = connect(
        &qsd,
        options()
            .command_timeout(Some(Duration::from_secs(600)))
            .max_in_flight(16),
    );
    let events = client.subscribe();
    // Freeze QEMU so every call really waits, then kill it.
    signal(qsd.pid(), Signal::STOP);
    let (results, finished) = mpsc::channel::<(&str, Result<(), Error>)>();
    let spawn = |what: &'static str, call: Box<dyn FnOnce(Client) -> Result<(), Error> + Send>| {
        let client = client.clone();
        let results = results.clone();
        thread::spawn(move || {
            let _ = results.send((what, call(client)));
        });
    };
    spawn("typed", Box::new(|c| c.execute(&QueryVersion).map(drop)));
    spawn(
        "value",
        Box::new(|c| c.execute_value("query-version", Value::Null).map(drop)),
    );
    spawn(
        "raw",
        Box::new(|c| {
            c.execute_message(br#"{"execute": "query-version"}"#)
                .map(drop)
        }),
    );
    spawn(
        "no timeout",
        Box::new(|c| {
            c.submit(&QueryVersion, CallOptions::new().no_timeout())
                .wait()
                .map(drop)
        }),
    );
    let events_thread = thread::spawn(move || events.recv());
    // More calls than may be in flight: some wait inside the client.
    let pending: Vec<_> = (0..100)
        .map(|n| {
            client.submit_value(
                "qom-get",
                &json!({"path": format!("/objects/x{n}"), "property": "p"}),
                CallOptions::new(),
            )
        })
        .collect();
    wait_until("every call to be submitted", || client.outstanding() >= 104);

    qsd.kill().unwrap();
    for _ in 0..4 {
        let (what, result) = finished
            .recv_timeout(WAIT)
            .expect("every waiting call returns after the kill");
        assert!(
            conformance_common::server_gone(&result),
            "{what}: {result:?}"
        );
    }
    for call in pending {
        let result = call.wait_timeout(WAIT);
        assert!(conformance_common::server_gone(&result), "{result:?}");
    }
    let event = events_thread.join().unwrap();
    assert!(conformance_common::server_gone(&event), "{event:?}");
    assert!(client.is_closed());
    assert!(conformance_common::server_gone(
        &client.execute(&QueryVersion)
    ));
    client.wait_idle(WAIT).unwrap();
    assert_eq!(client.outstanding(), 0);
}
