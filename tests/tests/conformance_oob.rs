//! Out-of-band execution on `qemu-system-x86_64 -M pc -S -m 1024` (vectors 31 and 33): an
//! `exec-oob` `query-yank` overtakes a slow in-band `pmemsave` and the commands queued
//! behind it; without OOB, replies keep their order.

mod conformance_common;

use core::time::Duration;
use std::sync::{Arc, Mutex};

use conformance_common::{
    connect, error_value, options, qsys_pc, vector_message, wait_until, watchdog,
};
use qmp_std::qmp_core::commands::{Command, QueryStatus, QueryYank};
use qmp_std::qmp_core::json::{DecodeError, RawJson};
use qmp_std::{CallOptions, Client, Error};
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
        .execute_async(&Pmemsave::slow(), move |result| {
            done(result.is_ok_and(|reply| reply.get().unwrap().as_str() == "{}"))
        })
        .unwrap();
    for _ in 0..queued {
        let done = record("query-status");
        client
            .execute_async(&QueryStatus, move |result| {
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
        .execute_raw_json(br#"{"exec-oob": "query-yank"}"#)
        .unwrap();
    assert_eq!(raw.as_bytes(), yank.raw().as_bytes());
    let not_oob = client
        .execute_raw_json(br#"{"exec-oob": "query-status", "id": "not-oob"}"#)
        .unwrap_err();
    assert_eq!(
        error_value(&not_oob)["error"],
        vector_message("31-qsys-oob", 6)["error"]
    );
    let pause = client
        .execute_raw_json(br#"{"exec-oob": "migrate-pause"}"#)
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
