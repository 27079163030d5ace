//! Out-of-band execution on `qemu-system-x86_64 -M pc -S -m 1024` (vectors 31 and 33): an
//! `exec-oob` `query-yank` overtakes a slow in-band `pmemsave` and the commands queued
//! behind it; without OOB, replies keep their order.

mod conformance_common;

use core::time::Duration;
use std::sync::{Arc, Mutex};

use conformance_common::{
    connect, error_value, options, qsys_pc, start, vector_message, wait_until, watchdog,
};
use qmp_std::qmp_core::commands::{Command, QueryStatus, QueryYank};
use qmp_std::qmp_core::json::{DecodeError, RawJson};
use qmp_std::{CallOptions, Client, Error};
use qmp_tests::{Launcher, ServerKind};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(300);

/// `pmemsave`, which qmp-core does not type: a command written by hand, as its docs
/// suggest for commands the crate does not know.
struct Pmemsave {
    arguments: Value,
}

impl Pmemsave {
    /// Saves 1 GiB of guest memory to /dev/null: slow enough (most of a second on a
    /// fast machine) for other commands to wait behind it.
    fn slow() -> Self {
        Pmemsave {
            arguments: json!({"val": 0, "size": 1u64 << 30, "filename": "/dev/null"}),
        }
    }
}

impl Command for Pmemsave {
    const NAME: &'static str = "pmemsave";
    type Arguments = Value;
    type Response<'a> = RawJson<'a>;

    fn arguments(&self) -> Option<&Value> {
        Some(&self.arguments)
    }

    fn decode_response(raw: RawJson<'_>) -> Result<RawJson<'_>, DecodeError> {
        Ok(raw)
    }
}

/// Sends `pmemsave`, `queued` × `query-status` and, if `oob`, an `exec-oob`
/// `query-yank`, without waiting; returns the command names in the order their replies
/// arrived (callbacks run in arrival order).
fn reply_order(client: &Client, queued: usize, oob: bool) -> Vec<&'static str> {
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
        .execute_with_callback(&Pmemsave::slow(), move |result| {
            done(result.is_ok_and(|reply| reply.get().unwrap().as_str() == "{}"))
        })
        .unwrap();
    for _ in 0..queued {
        let done = record("query-status");
        client
            .execute_with_callback(&QueryStatus, move |result| {
                done(result.is_ok_and(|reply| reply.get().unwrap().status == "prelaunch"))
            })
            .unwrap();
    }
    let mut expected = queued + 1;
    if oob {
        let yank = client.submit(&QueryYank, CallOptions::new().oob());
        let reply = yank.wait().unwrap();
        assert_eq!(
            reply.raw().to_value(),
            json!([{"type": "chardev", "id": "m0"}])
        );
        order.lock().unwrap().push("query-yank");
        expected += 1;
    }
    wait_until("every reply", || order.lock().unwrap().len() == expected);
    client.wait_idle(Duration::from_secs(60)).unwrap();
    let order = order.lock().unwrap().clone();
    order
}

#[test]
fn an_oob_command_overtakes_a_slow_in_band_command_and_its_queue() {
    let _guard = watchdog("oob_overtakes", LIMIT);
    let qsys = qsys_pc();
    let client = connect(&qsys, options().enable_oob(true));
    assert!(client.oob_enabled());

    // Vector 31's single exchanges: OOB with and without an id, refused commands.
    let yank = client.execute_oob(&QueryYank).unwrap();
    assert_eq!(
        yank.raw().to_value(),
        vector_message("31-qsys-oob", 3)["return"]
            .to_string()
            .replace("c0", "m0")
            .parse::<Value>()
            .unwrap()
    );
    let raw = client
        .execute_message(br#"{"exec-oob": "query-yank"}"#)
        .unwrap();
    assert_eq!(raw.as_bytes(), yank.raw().as_bytes());
    let not_oob = client
        .execute_message(br#"{"exec-oob": "query-status", "id": "not-oob"}"#)
        .unwrap_err();
    assert_eq!(
        error_value(&not_oob)["error"],
        vector_message("31-qsys-oob", 6)["error"]
    );
    let pause = client
        .execute_message(br#"{"exec-oob": "migrate-pause"}"#)
        .unwrap_err();
    assert_eq!(
        error_value(&pause)["error"],
        vector_message("31-qsys-oob", 5)["error"]
    );
    let in_band = client.execute(&QueryYank).unwrap();
    assert_eq!(in_band.raw(), yank.raw());

    // The race of vector 31: the OOB reply comes before the slow command's and before
    // the 7 queued behind it.
    let order = reply_order(&client, 7, true);
    let mut expected = vec!["query-yank", "pmemsave"];
    expected.extend(["query-status"; 7]);
    assert_eq!(order, expected);

    // More in-band commands than QEMU queues with OOB on (8): the client holds the rest
    // back, and the OOB command still goes first.
    let order = reply_order(&client, 20, true);
    let mut expected = vec!["query-yank", "pmemsave"];
    expected.extend(["query-status"; 20]);
    assert_eq!(order, expected);
    let stats = client.stats();
    assert_eq!((stats.unmatched_replies, stats.late_replies), (0, 0));
}

#[test]
fn an_oob_command_gets_through_while_the_main_loop_is_busy() {
    // A second monitor keeps QEMU's main loop busy with a slow pmemsave, so its
    // dispatcher takes no in-band request of the first monitor out of the queue. QEMU
    // stops reading a monitor when it queues an in-band request behind 7 others
    // (monitor/qmp.c); the core keeps at most 7 in flight (OOB_IN_BAND_LIMIT) and qmp-std
    // holds the rest back, so the exec-oob is still read and answered while the
    // pmemsave runs. (With the limit at 8 it waited for the pmemsave: 6 s here.)
    let _guard = watchdog("oob_main_loop_busy", LIMIT);
    let second = std::env::temp_dir().join(format!("qmp-oob-busy-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&second);
    let qsys = start(Launcher::new(ServerKind::System).machine("pc").args([
        "-S".to_owned(),
        "-m".to_owned(),
        "4096".to_owned(),
        "-qmp".to_owned(),
        format!("unix:{},server=on,wait=off", second.display()),
    ]));
    let client = connect(&qsys, options().enable_oob(true));
    assert!(client.oob_enabled());
    let busy = Client::connect_unix(&second, options()).unwrap();
    let done = Arc::new(Mutex::new(None));
    let slow = Pmemsave {
        arguments: json!({"val": 0, "size": 4u64 << 30, "filename": "/dev/null"}),
    };
    let record = Arc::clone(&done);
    busy.execute_with_callback(&slow, move |result| {
        *record.lock().unwrap() = Some(result.is_ok());
    })
    .unwrap();
    // Let the dispatcher take the pmemsave (its request is 100 bytes; QEMU reads one
    // byte per system call). 4 GiB take 0.6 s on a quiet machine, several under load.
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        done.lock().unwrap().is_none(),
        "pmemsave too fast to keep the loop busy"
    );
    let answered = Arc::new(Mutex::new(0));
    for _ in 0..20 {
        let answered = Arc::clone(&answered);
        client
            .execute_with_callback(&QueryStatus, move |result| {
                assert!(result.is_ok());
                *answered.lock().unwrap() += 1;
            })
            .unwrap();
    }
    // Let QEMU read what the client sent (7 requests of 35 bytes, one byte per system
    // call), so that the exec-oob comes after them.
    std::thread::sleep(Duration::from_millis(50));
    let yank = client.execute_oob(&QueryYank).unwrap();
    let instances = yank.raw().to_value();
    assert!(
        instances
            .as_array()
            .is_some_and(|list| list.contains(&json!({"type": "chardev", "id": "m0"}))),
        "{instances}"
    );
    assert_eq!(
        *done.lock().unwrap(),
        None,
        "the exec-oob waited for the main loop"
    );
    assert_eq!(*answered.lock().unwrap(), 0);
    wait_until("the pmemsave", || done.lock().unwrap().is_some());
    assert_eq!(*done.lock().unwrap(), Some(true));
    wait_until("every query-status", || *answered.lock().unwrap() == 20);
    let _ = std::fs::remove_file(&second);
}

#[test]
fn without_oob_pipelined_replies_keep_their_order() {
    let _guard = watchdog("no_oob_order", LIMIT);
    let qsys = qsys_pc();
    let client = connect(&qsys, options());
    assert!(!client.oob_enabled());
    // Vector 33: a slow pmemsave and 3 query-status in one go, answered in order.
    let order = reply_order(&client, 3, false);
    assert_eq!(
        order,
        ["pmemsave", "query-status", "query-status", "query-status"]
    );
    // OOB is refused by the client when not negotiated.
    assert!(matches!(
        client.execute_oob(&QueryYank),
        Err(Error::Execute(_))
    ));
}
