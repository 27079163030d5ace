//! One test per edge case of QMP.md §12 ("Edge cases a client must handle"), named
//! `edge_NN_...` after its number and content. Each uses the vector bytes where a vector
//! shows the case, and small hand-written server bytes otherwise; every scenario also runs
//! under every fragmentation (`support::check_fragmentation`).

mod support;

use qmp_core::client::{CommandId, Config, ExecuteError, State, OOB_IN_BAND_LIMIT};
use qmp_core::commands::{
    BlockdevAdd, BlockdevOptions, BlockdevOptionsNull, QueryStatus, QueryVersion, QueryYank, Quit,
};
use qmp_core::encode::EncodeError;
use qmp_core::json::{JsonStr, RawJson};
use qmp_core::message::{Message, Timestamp};
use qmp_core::qga::{GuestPing, GuestShutdown, GuestSuspendRam};
use support::vectors::{cat, reply, request, without_id, Session, Vector};
use support::{ms, Setup};

const GREETING: &str = "Greeting 10.0.2 [oob] \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"";
const NEGOTIATE: &[u8] = b"{\"execute\":\"qmp_capabilities\"}\n";
const NEGOTIATE_OOB: &[u8] =
    b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n";

/// Greeting and negotiation reply as qemu-storage-daemon 10.0.2 sends them (vector 02).
fn ready() -> &'static [u8] {
    Vector::get("02-negotiation").s2c
}

/// The query-version reply of vector 05, for our id `id`.
fn version_reply(id: u64) -> Vec<u8> {
    reply(&Vector::get("05-query-version").message(2), id)
}

fn version(id: u64) -> String {
    format!(
        "Response #{id} ok {{\"qemu\":{{\"micro\":2,\"minor\":0,\"major\":10}},\"package\":\"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}}"
    )
}

fn strs(events: &[String]) -> Vec<&str> {
    events.iter().map(String::as_str).collect()
}

#[test]
fn edge_01_greeting_with_unknown_capabilities_none_or_empty_package() {
    let v1 = Vector::get("01-greeting");
    let base = String::from_utf8(v1.s2c.to_vec()).unwrap();

    // Unknown capabilities and members are ignored; oob is still found and used.
    let future = base
        .replace("[\"oob\"]", "[\"x-future\", \"oob\", \"another\"]")
        .replace(
            "\"capabilities\"",
            "\"x-extra\": {\"a\": [1]}, \"capabilities\"",
        );
    let setup = Setup::qmp().config(Config::qmp().with_oob(true));
    let rec = setup.check(|h| {
        h.feed(future.as_bytes());
        assert_eq!(h.client.server_capabilities().unwrap().unknown, 2);
    });
    rec.assert_events(&[
        "Greeting 10.0.2 [oob +2 unknown] \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"",
    ]);
    rec.assert_tx(NEGOTIATE_OOB);

    // No capabilities at all: OOB is not asked for even when wanted, and exec-oob is
    // refused locally once ready.
    let none = base.replace("[\"oob\"]", "[]");
    let rec = setup.check(|h| {
        h.feed(none.as_bytes());
        h.feed(b"{\"return\": {}}\r\n");
        assert!(!h.client.oob_enabled());
        assert_eq!(
            h.try_execute_oob(&QueryYank),
            Err(ExecuteError::OobNotEnabled)
        );
    });
    rec.assert_events(&[
        "Greeting 10.0.2 [] \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"",
        "Ready",
    ]);
    rec.assert_tx(NEGOTIATE);

    // An empty package (upstream builds), and one missing altogether.
    let empty = base.replace("Debian 1:10.0.2+ds-2+deb13u1~bpo12+1", "");
    let missing = base.replace(
        ", \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"",
        "",
    );
    for greeting in [empty, missing] {
        let rec = Setup::qmp().check(|h| h.feed(greeting.as_bytes()));
        rec.assert_events(&["Greeting 10.0.2 [oob] \"\""]);
        rec.assert_tx(NEGOTIATE);
    }
}

#[test]
fn edge_02_commands_before_negotiation_are_held_not_sent() {
    // Vector 04: anything but qmp_capabilities before negotiation gets CommandNotFound.
    // This client never lets that happen: commands wait until the session is ready.
    let v4 = Vector::get("04-before-negotiation");
    let s = Session::new(&v4).send(&v4, &[0, 1]);
    let (greeting, negotiated) = ready().split_at(Vector::get("02-negotiation").message(0).len());
    let server = cat(&[
        negotiated.to_vec(),
        version_reply(1),
        reply(&Vector::get("08-unknown-command").message(2), 2),
        version_reply(3),
    ]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        assert!(h.transmitted().is_empty());
        assert!(!h.client.sends_at_once() && h.client.is_open());
        h.feed_lines(greeting);
        assert_eq!(h.client.state(), State::Negotiating);
        // Only the negotiation is on the wire; the held commands stay back.
        assert_eq!(h.transmitted(), NEGOTIATE);
        // A command executed while negotiating waits too.
        assert_eq!(h.execute(&QueryVersion).get(), 3);
        assert_eq!(h.transmitted(), NEGOTIATE);
        h.feed_lines(&server);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        &version(1),
        "Response #2 err CommandNotFound: The command no-such-command has not been found",
        &version(3),
    ]);
    rec.assert_tx(&cat(&[
        NEGOTIATE,
        &s.tx(),
        b"{\"execute\":\"query-version\",\"id\":3}\n",
    ]));

    // Had a reply like vector 04's arrived for one of our commands, it would be an
    // ordinary error reply with class CommandNotFound, not anything special.
    let early = reply(&v4.message(1), 1);
    let rec = Setup::qmp().check(|h| {
        h.execute(&QueryVersion);
        h.feed_lines(ready());
        h.feed_lines(&early);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 err CommandNotFound: Expecting capabilities negotiation with 'qmp_capabilities'",
    ]);
}

#[test]
fn edge_03_second_qmp_capabilities_is_command_not_found_not_success() {
    let v4 = Vector::get("04-before-negotiation");
    let rec = Setup::qmp()
        .config(Config::qmp().with_oob(true))
        .check(|h| {
            h.feed(&v4.message(0));
            h.feed(&without_id(&v4.message(4)));
            assert!(h.client.oob_enabled());
            h.raw("qmp_capabilities");
            h.feed(&reply(&v4.message(5), 1));
            // Still ready, capabilities unchanged.
            assert!(h.client.sends_at_once());
            assert!(h.client.oob_enabled());
        });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 err CommandNotFound: Capabilities negotiation is already complete, command ignored",
    ]);
    assert_eq!(rec.state, State::Ready);
}

#[test]
fn edge_04_failed_negotiation_keeps_the_server_negotiating_so_the_client_closes() {
    let v4 = Vector::get("04-before-negotiation");
    // The server stays in negotiation mode after refusing qmp_capabilities; the client
    // does not pretend otherwise: it reports the refusal and closes, and the commands it
    // held never reach the server.
    let bogus = without_id(&v4.message(3));
    let not_available = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"Capability oob not available\"}}\r\n";
    for (refusal, desc) in [
        (&bogus[..], "Parameter 'null' does not accept value 'bogus'"),
        (&not_available[..], "Capability oob not available"),
    ] {
        let rec = Setup::qmp().check(|h| {
            h.execute(&QueryStatus);
            h.execute(&QueryVersion);
            h.feed(&v4.message(0));
            h.feed(refusal);
            assert_eq!(
                h.try_execute(&QueryVersion),
                Err(ExecuteError::Closed),
                "protocol errors are sticky"
            );
            h.feed(&without_id(&v4.message(4)));
            assert!(h.refused_input);
        });
        let failed = format!("NegotiationFailed GenericError: {desc}");
        rec.assert_events(&[
            GREETING,
            &failed,
            "CommandFailed #1 ConnectionClosed",
            "CommandFailed #2 ConnectionClosed",
            "Closed Protocol NegotiationFailed",
        ]);
        rec.assert_tx(NEGOTIATE);
    }
}

#[test]
fn edge_05_replies_without_id_are_unattributed_even_when_every_request_had_one() {
    let v9 = Vector::get("09-malformed-json").messages();
    let v10 = Vector::get("10-parser-reset").messages();
    let v11 = Vector::get("11-non-object").messages();
    let idless = cat(&[&v9[2], &v10[2], &v11[2], &v11[8]]);
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        let id = h.execute(&QueryVersion);
        h.feed(&idless);
        assert_eq!(h.client.in_flight(), 1, "no id-less error resolves {id}");
        h.feed(&version_reply(id.get()));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "UnattributedError GenericError: JSON parse error, expecting value",
        r"UnattributedError GenericError: JSON parse error, stray '\uFFFD'",
        "UnattributedError GenericError: QMP input must be a JSON object",
        "UnattributedError GenericError: QMP input lacks member 'execute'",
        &version(1),
    ]);
    assert_eq!(rec.stats.unattributed_errors, 4);
    assert_eq!(rec.stats.unmatched_replies, 0);
}

#[test]
fn edge_06_one_bad_input_several_error_replies_and_reset_byte_one_more() {
    // Vector 09: `01` produced two error lines, a raw TAB two more; vector 10: a reset
    // byte one. Counting them would shift every later match; ids do not.
    let v9 = Vector::get("09-malformed-json").messages();
    let v10 = Vector::get("10-parser-reset").messages();
    let errors = cat(&[&v9[7], &v9[8], &v9[12], &v9[13], &v10[5]]);
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        let first = h.execute(&QueryVersion);
        let second = h.execute(&QueryStatus);
        h.feed(&errors);
        assert_eq!(h.client.in_flight(), 2);
        h.feed(&version_reply(first.get()));
        h.feed(&reply(
            b"{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 0}\r\n",
            second.get(),
        ));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "UnattributedError GenericError: JSON parse error, stray '01'",
        "UnattributedError GenericError: JSON parse error, expecting value",
        r#"UnattributedError GenericError: JSON parse error, stray '\"tab\t'"#,
        "UnattributedError GenericError: JSON parse error, expecting value",
        r"UnattributedError GenericError: JSON parse error, stray '\u0001'",
        &version(1),
        "Response #2 ok {\"status\":\"running\",\"running\":true}",
    ]);
}

#[test]
fn edge_07_id_reserialised_floats_strings_and_objects_never_match_our_integer_ids() {
    // QEMU re-serialises ids (vector 13 is kept back: QMP.md §3). Ours are small integers
    // that round-trip exactly; anything else with the same numeric value is not ours.
    let foreign = [
        "1.0",
        "1E0",
        "1e0",
        "100",
        "\"1\"",
        "[1]",
        "{\"b\": 2, \"a\": 1}",
        "-1",
        "0",
        "1.8446744073709552e+19",
        "18446744073709551617",
        "null",
        "true",
    ];
    let mut server = ready().to_vec();
    for id in foreign {
        server.extend_from_slice(format!("{{\"return\": {{}}, \"id\": {id}}}\r\n").as_bytes());
    }
    server.extend_from_slice(b"{\"return\": {}, \"id\": 1}\r\n");
    let rec = Setup::qmp().check(|h| {
        h.execute(&QueryStatus);
        h.feed_lines(&server);
    });
    let mut expected: Vec<String> = vec![GREETING.into(), "Ready".into()];
    for id in foreign {
        expected.push(format!("Unmatched id={id} ok {{}}"));
    }
    expected.push("Response #1 ok {}".into());
    rec.assert_events(&strs(&expected));
    assert_eq!(rec.stats.unmatched_replies, foreign.len() as u64);
    // Our id went out as a plain integer.
    rec.assert_tx(&cat(&[
        NEGOTIATE,
        b"{\"execute\":\"query-status\",\"id\":1}\n",
    ]));

    // An id that overflowed to `inf` makes the whole reply invalid JSON: see edge 8.
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(ready());
        h.feed_lines(b"{\"return\": {}, \"id\": inf}\r\n");
    });
    assert_eq!(rec.stats.malformed, 1);
    assert!(rec.brief()[2].starts_with("Malformed"), "{:?}", rec.brief());
}

#[test]
fn edge_08_invalid_json_inf_nan_is_dropped_and_the_session_survives() {
    let compact = cat(&[
        &b"{\"return\": {\"x\": inf}, \"id\": 1}\r\n"[..],
        b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"X\", \"data\": {\"v\": -inf}}\r\n",
        b"{\"return\": {\"y\": nan}, \"id\": 2}\r\n",
        b"{\"return\": {}, \"id\": 3}\r\n",
    ]);
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        for _ in 0..3 {
            h.execute(&QueryStatus);
        }
        h.feed(&compact);
        assert!(h.client.sends_at_once());
        // The replies of #1 and #2 were lost with their messages: their deadlines fire.
        h.advance_to(30_000);
    });
    let brief = rec.brief();
    assert_eq!(brief.len(), 8, "{brief:?}");
    for event in &brief[2..5] {
        assert!(event.starts_with("Malformed"), "{brief:?}");
    }
    assert_eq!(
        &brief[5..],
        [
            "Response #3 ok {}",
            "CommandFailed #1 TimedOut",
            "CommandFailed #2 TimedOut"
        ]
    );
    assert_eq!(rec.stats.malformed, 3);

    // Pretty mode: the framer resynchronises at the next `{` in column 0.
    let pretty =
        b"{\r\n    \"return\": {\r\n        \"x\": inf\r\n    },\r\n    \"id\": 1\r\n}\r\n\
{\r\n    \"return\": {\r\n    },\r\n    \"id\": 2\r\n}\r\n";
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.execute(&QueryStatus);
        h.execute(&QueryStatus);
        h.feed(pretty);
    });
    let brief = rec.brief();
    assert_eq!(brief.len(), 4, "{brief:?}");
    assert!(brief[2].starts_with("Malformed"));
    assert_eq!(brief[3], "Response #2 ok {}");
}

#[test]
fn edge_09_id_first_or_last_and_the_kind_member_anywhere() {
    let server = cat(&[
        // Vector 04/12 style: id first in errors.
        &b"{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"first\"}}\r\n"[..],
        // An `id` and `event` nested in the value do not count.
        b"{\"return\": {\"id\": 99, \"event\": \"X\", \"error\": {}}, \"id\": 2}\r\n",
        // Kind last, unknown members around it.
        b"{\"id\": 3, \"x-new\": [1, {\"return\": 0}], \"return\": 5}\r\n",
        // Events with members in any order.
        b"{\"data\": {\"a\": 1}, \"event\": \"E1\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n",
        b"{\"timestamp\": {\"microseconds\": 4, \"seconds\": 3}, \"data\": {}, \"event\": \"E2\"}\r\n",
        // Error members in the other order.
        b"{\"error\": {\"desc\": \"last\", \"class\": \"DeviceNotFound\"}, \"id\": 4}\r\n",
        // An unknown error class is kept.
        b"{\"id\": 5, \"error\": {\"class\": \"X-NewClass\", \"desc\": \"new\"}}\r\n",
    ]);
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        for _ in 0..5 {
            h.execute(&QueryStatus);
        }
        h.feed(&server);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 err GenericError: first",
        "Response #2 ok {\"id\":99,\"event\":\"X\",\"error\":{}}",
        "Response #3 ok 5",
        "Event E1 {\"a\":1}",
        "Event E2 {}",
        "Response #4 err DeviceNotFound: last",
        "Response #5 err X-NewClass: new",
    ]);
    assert!(rec.full()[5].contains("@1/2"));
    assert!(rec.full()[6].contains("@3/4"));
}

#[test]
fn edge_10_events_arrive_before_the_reply_of_the_command_that_caused_them() {
    let v = Vector::get("30-qsys-stop-cont-reset-quit");
    let s = Session::new(&v).send(&v, &[1, 2, 3, 4, 5, 6]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
        h.eof();
    });
    let brief = rec.brief();
    let at = |e: &str| brief.iter().position(|b| b.starts_with(e)).unwrap();
    assert!(
        at("Event STOP") < at("Response #2"),
        "STOP before the stop return"
    );
    assert!(
        at("Event RESUME") < at("Response #4"),
        "RESUME before the cont return"
    );
    assert!(at("Event RESET") < at("Response #5"));
    assert!(
        at("Event SHUTDOWN") < at("Response #6"),
        "SHUTDOWN before the quit return"
    );

    // Vector 15: JOB_STATUS_CHANGE created/running before the blockdev-create return.
    let v = Vector::get("15-job-blockdev-create");
    let s = Session::new(&v).send(&v, &[1, 2, 3]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    assert_eq!(
        &rec.brief()[2..5],
        [
            "Event JOB_STATUS_CHANGE {\"status\":\"created\",\"id\":\"job0\"}",
            "Event JOB_STATUS_CHANGE {\"status\":\"running\",\"id\":\"job0\"}",
            "Response #1 ok {}",
        ]
    );
}

#[test]
fn edge_11_events_without_data() {
    let v = Vector::get("30-qsys-stop-cont-reset-quit");
    let messages = v.messages();
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.feed(&messages[3]);
        h.feed(&messages[6]);
    });
    rec.assert_events(&[GREETING, "Ready", "Event STOP", "Event RESUME"]);
    // The typed view accepts the missing data.
    let stop = RawJson::parse(messages[3].trim_ascii_end()).unwrap();
    let Message::Event(event) = Message::classify(stop) else {
        panic!("not an event");
    };
    assert!(event.data.is_none());
    let decoded = qmp_core::events::DecodedEvent::decode("STOP", event.data);
    assert!(
        matches!(decoded, qmp_core::events::DecodedEvent::Stop(_)),
        "{decoded:?}"
    );
}

#[test]
fn edge_12_event_timestamps_minus_one_and_not_monotonic() {
    let server = cat(&[
        &b"{\"timestamp\": {\"seconds\": -1, \"microseconds\": -1}, \"event\": \"RTC_CHANGE\", \"data\": {\"offset\": 0, \"qom-path\": \"/machine/unattached/device[0]\"}}\r\n"[..],
        // A rate-limited event delivered late keeps its earlier timestamp.
        b"{\"timestamp\": {\"seconds\": 1795314400, \"microseconds\": 500}, \"event\": \"BLOCK_IO_ERROR\", \"data\": {\"device\": \"\", \"node-name\": \"n\", \"operation\": \"write\", \"action\": \"report\", \"nospace\": false, \"reason\": \"x\"}}\r\n",
        b"{\"timestamp\": {\"seconds\": 1795314399, \"microseconds\": 999999}, \"event\": \"BLOCK_IO_ERROR\", \"data\": {\"device\": \"\", \"node-name\": \"n\", \"operation\": \"read\", \"action\": \"report\", \"nospace\": false, \"reason\": \"y\"}}\r\n",
        // No timestamp at all.
        b"{\"event\": \"POWERDOWN\"}\r\n",
    ]);
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.feed(&server);
    });
    let full = rec.full();
    assert!(full[2].starts_with("Event RTC_CHANGE @-1/-1 "), "{full:?}");
    assert!(full[3].starts_with("Event BLOCK_IO_ERROR @1795314400/500 "));
    assert!(full[4].starts_with("Event BLOCK_IO_ERROR @1795314399/999999 "));
    assert!(full[5].starts_with("Event POWERDOWN @-1/-1"));
    assert_eq!(rec.stats.events, 4);

    let raw = RawJson::parse(
        b"{\"timestamp\": {\"seconds\": -1, \"microseconds\": -1}, \"event\": \"X\"}",
    )
    .unwrap();
    let Message::Event(event) = Message::classify(raw) else {
        panic!("not an event");
    };
    assert_eq!(event.timestamp, Timestamp::UNKNOWN);
    assert!(event.timestamp.is_unknown());
    assert!(
        Timestamp {
            seconds: 1795314399,
            microseconds: 999_999
        } < Timestamp {
            seconds: 1795314400,
            microseconds: 500
        }
    );
}

#[test]
fn edge_13_events_before_negotiation_are_lost_and_other_clients_events_arrive() {
    let x = Vector::get("27-two-monitors-events-X");
    let y = Vector::get("27-two-monitors-events-Y");
    let rec_y = Setup::qmp().check(|h| h.feed_lines(y.s2c));
    let brief = rec_y.brief();
    assert!(
        brief.iter().all(|e| !e.contains("\"j1\"")),
        "no backlog: {brief:?}"
    );
    assert_eq!(brief.iter().filter(|e| e.contains("\"j2\"")).count(), 6);
    // Identical to what monitor X got, timestamps included.
    let s = Session::new(&x).send(&x, &[1, 2, 3, 4]);
    let rec_x = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    let x_j2: Vec<String> = rec_x
        .full()
        .into_iter()
        .filter(|e| e.contains("\"j2\""))
        .collect();
    assert_eq!(x_j2, rec_y.full()[2..]);

    // QEMU does not send events during negotiation; if a server did, they are reported.
    let greeting = Vector::get("02-negotiation").message(0);
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(&greeting);
        h.feed_lines(&x.message(2));
        h.feed_lines(b"{\"return\": {}}\r\n");
    });
    rec.assert_events(&[
        GREETING,
        "Event JOB_STATUS_CHANGE {\"status\":\"created\",\"id\":\"j1\"}",
        "Ready",
    ]);
}

#[test]
fn edge_14_oob_replies_overtake_in_band_ones_which_keep_their_order() {
    // Vector 31's last write: a slow pmemsave, query-status (six of the seven: the
    // client keeps at most 7 in-band commands in flight) and an exec-oob.
    let v = Vector::get("31-qsys-oob");
    let messages = v.messages();
    let setup = Setup::qmp().config(Config::qmp().with_oob(true));
    let rec = setup.check(|h| {
        h.feed(&messages[0]);
        h.feed(&without_id(&messages[2]));
        h.line(&v.line(7));
        for _ in 0..6 {
            h.execute(&QueryStatus);
        }
        let oob = h.execute_oob_yank();
        assert_eq!(oob.get(), 8);
        h.feed(&reply(&messages[8], 8));
        h.feed(&reply(&messages[9], 1));
        for (i, id) in (2..=7).enumerate() {
            h.feed(&reply(&messages[10 + i], id));
        }
    });
    let mut expected: Vec<String> = vec![
        GREETING.into(),
        "Ready".into(),
        "Response #8 ok [{\"type\":\"chardev\",\"id\":\"c0\"}]".into(),
        "Response #1 ok {}".into(),
    ];
    for id in 2..=7 {
        expected.push(format!(
            "Response #{id} ok {{\"status\":\"prelaunch\",\"running\":false}}"
        ));
    }
    rec.assert_events(&strs(&expected));
    assert!(rec
        .tx
        .ends_with(b"{\"exec-oob\":\"query-yank\",\"id\":8}\n"));

    // Matching is by id, not by order: even out-of-order in-band replies find their
    // commands.
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.execute(&QueryVersion);
        h.execute(&QueryVersion);
        h.feed(&version_reply(2));
        h.feed(&version_reply(1));
    });
    rec.assert_events(&[GREETING, "Ready", &version(2), &version(1)]);
}

trait YankExt {
    fn execute_oob_yank(&mut self) -> CommandId;
}

impl YankExt for support::H<'_> {
    fn execute_oob_yank(&mut self) -> CommandId {
        self.try_execute_oob(&QueryYank)
            .expect("query-yank allows OOB")
    }
}

#[test]
fn edge_15_at_most_7_in_band_commands_in_flight_with_oob() {
    // QEMU suspends reading when it queues an 8th in-band request while its dispatcher
    // takes none out (OOB_IN_BAND_LIMIT's docs).
    assert_eq!(OOB_IN_BAND_LIMIT, 7);
    let v = Vector::get("31-qsys-oob");
    let setup = Setup::qmp().config(Config::qmp().with_oob(true));
    let rec = setup.check(|h| {
        h.feed(&v.message(0));
        h.feed(&without_id(&v.message(2)));
        for id in 1..=7 {
            assert_eq!(h.execute(&QueryStatus).get(), id);
        }
        assert_eq!(
            h.try_execute(&QueryStatus),
            Err(ExecuteError::TooManyInFlight { limit: 7 })
        );
        assert_eq!(
            h.try_raw::<()>("query-status", None),
            Err(ExecuteError::TooManyInFlight { limit: 7 })
        );
        // OOB commands do not count, and the refusals used no id.
        assert_eq!(h.execute_oob_yank().get(), 8);
        h.feed(b"{\"return\": {\"status\": \"prelaunch\", \"running\": false}, \"id\": 1}\r\n");
        assert_eq!(h.execute(&QueryStatus).get(), 9);
        assert_eq!(
            h.try_execute(&QueryStatus),
            Err(ExecuteError::TooManyInFlight { limit: 7 })
        );
    });
    assert_eq!(
        rec.brief()[2],
        "Response #1 ok {\"status\":\"prelaunch\",\"running\":false}"
    );

    // Commands held before the greeting already count when OOB may be negotiated.
    let rec = setup.check(|h| {
        for _ in 0..7 {
            h.execute(&QueryStatus);
        }
        assert_eq!(
            h.try_execute(&QueryStatus),
            Err(ExecuteError::TooManyInFlight { limit: 7 })
        );
    });
    assert!(rec.tx.is_empty());

    // Without OOB the only limit is the table's capacity.
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        for _ in 0..9 {
            h.execute(&QueryStatus);
        }
        assert_eq!(h.client.in_flight(), 9);
    });
    assert_eq!(rec.tx.iter().filter(|&&b| b == b'\n').count(), 10);
    let rec = Setup::qmp().check_n::<4, _>(|h| {
        h.feed(ready());
        for _ in 0..4 {
            h.execute(&QueryStatus);
        }
        assert_eq!(
            h.try_execute(&QueryStatus),
            Err(ExecuteError::TooManyInFlight { limit: 4 })
        );
    });
    assert_eq!(rec.epilogue.len(), 5);
}

#[test]
fn edge_15_given_up_in_band_commands_count_until_qemu_is_done_with_them() {
    // Timed out or cancelled, they are still queued in QEMU: the limit holds until a
    // reply shows QEMU got past all of them (the late reply of the one written last, or
    // the reply to an in-band command written after them; QEMU answers in order).
    let v = Vector::get("31-qsys-oob");
    let config = Config::qmp()
        .with_oob(true)
        .with_command_timeout(Some(ms(1_000)));
    let status = |id: u64| {
        format!(
            "{{\"return\": {{\"status\": \"prelaunch\", \"running\": false}}, \"id\": {id}}}\r\n"
        )
    };
    let full = Err(ExecuteError::TooManyInFlight { limit: 7 });
    let rec = Setup::qmp().config(config).check(|h| {
        h.feed(&v.message(0));
        h.feed(&without_id(&v.message(2)));
        for id in 1..=6 {
            assert_eq!(h.execute(&QueryStatus).get(), id);
        }
        h.set_time(500);
        assert_eq!(h.execute(&QueryStatus).get(), 7);
        h.advance_to(1_000);
        assert!(h.cancel(CommandId::new(7)));
        assert_eq!(h.client.in_flight(), 0);
        assert_eq!(h.try_execute(&QueryStatus), full);
        // OOB still goes (that is the point).
        assert_eq!(h.execute_oob_yank().get(), 8);
        // An earlier late reply frees nothing (a slot is freed late, never early)...
        h.feed(status(2).as_bytes());
        assert_eq!(h.try_execute(&QueryStatus), full);
        // ...the late reply to #7, written last, frees all seven.
        h.feed(status(7).as_bytes());
        for id in 9..=15 {
            assert_eq!(h.execute(&QueryStatus).get(), id);
        }
        assert_eq!(h.try_execute(&QueryStatus), full);
    });
    let mut brief = rec.brief();
    // Commands resolved together come in no particular order.
    brief[2..8].sort();
    assert_eq!(
        brief[2..8],
        [
            "CommandFailed #1 TimedOut",
            "CommandFailed #2 TimedOut",
            "CommandFailed #3 TimedOut",
            "CommandFailed #4 TimedOut",
            "CommandFailed #5 TimedOut",
            "CommandFailed #6 TimedOut",
        ]
    );
    assert_eq!(rec.stats.late_replies, 2);

    // The reply to a command written after the given-up ones frees them too.
    let rec = Setup::qmp().config(config).check(|h| {
        h.feed(&v.message(0));
        h.feed(&without_id(&v.message(2)));
        for _ in 1..=6 {
            h.execute(&QueryStatus);
        }
        h.set_time(500);
        h.execute(&QueryStatus);
        h.advance_to(1_000);
        assert_eq!(h.client.in_flight(), 1);
        assert_eq!(h.try_execute(&QueryStatus), full);
        h.feed(status(7).as_bytes());
        for id in 8..=14 {
            assert_eq!(h.execute(&QueryStatus).get(), id);
        }
        assert_eq!(h.try_execute(&QueryStatus), full);
    });
    assert_eq!(
        rec.brief()[8],
        "Response #7 ok {\"status\":\"prelaunch\",\"running\":false}"
    );
}

#[test]
fn edge_16_oob_offered_but_no_command_allows_it() {
    let v = Vector::get("17-exec-oob-qsd");
    let messages = v.messages();
    let setup = Setup::qmp().config(Config::qmp().with_oob(true));
    let rec = setup.check(|h| {
        h.feed(&messages[0]);
        h.feed(&messages[1]);
        assert!(h.client.oob_enabled(), "qsd offers oob and negotiation enables it");
        // Typed commands know which ones allow OOB.
        assert_eq!(
            h.try_execute_oob(&QueryVersion),
            Err(ExecuteError::OobNotAllowed)
        );
        // The raw path lets the server decide.
        let id = h.json_oob("query-version", None);
        h.feed(&reply(&messages[2], id.get()));
        // query-yank allows OOB, but qsd does not have it at all.
        let id = h.execute_oob_yank();
        h.feed(&reply(
            b"{\"id\": 0, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command query-yank has not been found\"}}\r\n",
            id.get(),
        ));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 err GenericError: The command query-version does not support OOB",
        "Response #2 err CommandNotFound: The command query-yank has not been found",
    ]);
    rec.assert_tx(&cat(&[
        NEGOTIATE_OOB,
        b"{\"exec-oob\":\"query-version\",\"id\":1}\n",
        b"{\"exec-oob\":\"query-yank\",\"id\":2}\n",
    ]));
}

#[test]
fn edge_17_reply_larger_than_the_receive_buffer_is_skipped_and_fails_its_command() {
    // Vector 06's 2,317-byte query-commands reply into a 1 KiB receive buffer.
    let v = Vector::get("06-query-commands");
    let s = Session::new(&v).send(&v, &[1]);
    let server = cat(&[s.s2c(), version_reply(2)]);
    let rec = Setup::qmp().rx(1024).check(|h| {
        h.send(s.requests());
        h.execute(&QueryVersion);
        h.feed_lines(&server);
    });
    let len = v.message(2).len() - 2 - "\"qc\"".len() + 1;
    rec.assert_events(&[
        GREETING,
        "Ready",
        &format!("CommandFailed #1 ReplyTooLarge {len}"),
        &version(2),
    ]);
    assert_eq!(rec.stats.oversize, 1);

    // An oversize message that answers nothing of ours is reported as such.
    let rec = Setup::qmp().rx(1024).check(|h| {
        h.feed_lines(v.s2c);
        h.execute(&QueryVersion);
        h.feed_lines(&version_reply(1));
    });
    let oversize = format!("Oversize {}", v.message(2).len() - 2);
    rec.assert_events(&[GREETING, "Ready", &oversize, &version(1)]);

    // The same reply fits a 4 KiB buffer.
    let rec = Setup::qmp().rx(4096).check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[GREETING, "Ready", "Response #1 ok <2142 bytes>"]);

    // Vector 07's 117 KB schema in 4 KiB: one run per input path (the transcript tests
    // split it every way; under Miri they do the one run this budget allows).
    if support::MIRI {
        return;
    }
    let v7 = Vector::get("07-query-qmp-schema");
    let s7 = Session::new(&v7).send(&v7, &[1]);
    let server = cat(&[s7.s2c(), version_reply(2)]);
    for split in [
        support::Split::Whole,
        support::Split::Random { seed: 7, max: 5000 },
    ] {
        let rec = Setup::qmp().rx(4096).run(split, |h| {
            h.send(s7.requests());
            h.execute(&QueryVersion);
            h.feed_lines(&server);
        });
        rec.assert_events(&[
            GREETING,
            "Ready",
            "CommandFailed #1 ReplyTooLarge 116868",
            &version(2),
        ]);
    }
}

#[test]
fn edge_18_pretty_mode_multi_line_messages_and_two_line_empty_objects() {
    let v = Vector::get("18-pretty");
    let messages = v.messages();
    assert_eq!(messages[1], b"{\r\n    \"return\": {\r\n    }\r\n}\r\n");
    let rec = Setup::qmp().check(|h| {
        h.feed(&messages[0]);
        h.feed(&messages[1]);
        h.execute(&QueryVersion);
        h.feed(&messages[2]);
        h.feed(&messages[5]);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        &version(1),
        "Event JOB_STATUS_CHANGE {\"status\":\"created\",\"id\":\"job0\"}",
    ]);
}

#[test]
fn edge_19_non_ascii_arrives_as_upper_case_escapes_and_surrogate_pairs() {
    let v = Vector::get("19-unicode-escapes");
    let messages = v.messages();
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        for _ in 0..3 {
            h.execute(&QueryStatus);
        }
        h.feed(&reply(&messages[11], 1));
        h.feed(&reply(&messages[12], 2));
        h.feed(&reply(&messages[13], 3));
    });
    let nodes = rec.response(CommandId::new(1));
    let filename = RawJson::parse(nodes.as_bytes())
        .unwrap()
        .elements()
        .next()
        .and_then(|n| n.get("image"))
        .and_then(|i| i.get("filename"))
        .and_then(|f| f.as_json_str())
        .unwrap();
    assert_eq!(
        filename.raw(),
        r#"/tmp/qmpvec/uni/f\u00E9 \u6F22 \uD83D\uDE00 'sq' \"dq\" back\\slash.img"#
    );
    assert_eq!(
        filename,
        "/tmp/qmpvec/uni/f\u{e9} \u{6f22} \u{1f600} 'sq' \"dq\" back\\slash.img"
    );
    let mut buffer = [0u8; 64];
    assert_eq!(
        filename.unescape_into(&mut buffer).unwrap(),
        "/tmp/qmpvec/uni/f\u{e9} \u{6f22} \u{1f600} 'sq' \"dq\" back\\slash.img"
    );
    assert_eq!(filename.chars().filter(|&c| c == '\u{1f600}').count(), 1);

    let desc = |id| {
        let text = rec.response(CommandId::new(id));
        text.split_once(": ").unwrap().1.to_owned()
    };
    let missing = desc(2);
    let missing = JsonStr::from_escaped(&missing).unwrap();
    assert_eq!(
        missing,
        "Could not open '/nonexistent/\u{e9}\t\u{2603}': No such file or directory"
    );
    let badname = desc(3);
    assert_eq!(
        JsonStr::from_escaped(&badname).unwrap(),
        "Invalid node-name: 'n\u{e9}\"x'"
    );
}

#[test]
fn edge_20_second_client_hears_nothing_so_the_greeting_times_out() {
    let v = Vector::get("21-second-client-B");
    let rec = Setup::qmp().check(|h| {
        h.line(&v.line(0));
        h.set_time(9_999);
        h.timeout();
        assert_eq!(h.client.state(), State::AwaitingGreeting);
        h.advance_to(10_000);
        assert_eq!(h.client.poll_timeout(), None);
        // Spurious calls later are harmless.
        h.advance_to(20_000);
    });
    rec.assert_events(&[
        "CommandFailed #1 ConnectionClosed",
        "Closed GreetingTimedOut",
    ]);
    assert!(rec.tx.is_empty());

    // With a shorter greeting timeout the deadline moves accordingly; without one the
    // client waits (only the command's own deadline remains).
    let setup = Setup::qmp().config(Config::qmp().with_greeting_timeout(Some(ms(1_500))));
    let rec = setup.check(|h| {
        assert_eq!(
            h.client.poll_timeout(),
            Some(qmp_core::time::Instant::from_millis(1_500))
        );
        h.advance_to(1_500);
    });
    rec.assert_events(&["Closed GreetingTimedOut"]);
    let setup = Setup::qmp().config(
        Config::qmp()
            .with_greeting_timeout(None)
            .with_command_timeout(None),
    );
    let rec = setup.check(|h| {
        assert_eq!(h.client.poll_timeout(), None);
        h.advance_to(3_600_000);
        h.feed(v.s2c);
    });
    assert_eq!(rec.brief()[0], GREETING);
}

#[test]
fn edge_21_commands_in_flight_at_disconnect_are_resolved_connection_closed_exactly_once() {
    // Vector 22: the requests a client left queued were never run and never answered.
    let v = Vector::get("22-disconnect-pending-B");
    let rec = Setup::qmp().check(|h| {
        h.feed(v.s2c);
        h.feed(b"{\"return\": {}}\r\n");
        let sent = h.execute(&QueryVersion);
        let also = h.execute(&QueryStatus);
        assert_eq!((sent.get(), also.get()), (1, 2));
        h.eof();
        // After the close: nothing more is reported, nothing is accepted.
        h.eof();
        h.advance_to(60_000);
        assert_eq!(h.try_execute(&QueryVersion), Err(ExecuteError::Closed));
        assert_eq!(h.client.poll_timeout(), None);
        assert_eq!(h.client.in_flight(), 0);
        h.feed(&version_reply(1));
        assert!(h.refused_input);
        assert!(h.client.rx_window().is_empty());
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "CommandFailed #1 ConnectionClosed",
        "CommandFailed #2 ConnectionClosed",
        "Closed EndOfStream",
    ]);

    // Held commands too, and the end of the stream in the middle of a message.
    let rec = Setup::qmp().check(|h| {
        h.execute(&QueryVersion);
        h.feed(&v.s2c[..100]);
        h.eof();
    });
    rec.assert_events(&[
        "CommandFailed #1 ConnectionClosed",
        "Closed EndOfStream truncated",
    ]);
}

#[test]
fn edge_22_quit_return_then_eof_or_eof_alone_is_success() {
    // qsd (vector 20): return, then EOF.
    let v = Vector::get("20-quit");
    let s = Session::new(&v).send(&v, &[1]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
        h.eof();
    });
    rec.assert_events(&[GREETING, "Ready", "Response #1 ok {}", "Closed EndOfStream"]);

    // qsys (vector 30): SHUTDOWN, return, EOF.
    let v = Vector::get("30-qsys-stop-cont-reset-quit");
    let messages = v.messages();
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(ready());
        h.execute(&Quit);
        h.feed_lines(&messages[10]);
        h.feed_lines(&reply(&messages[11], 1));
        h.eof();
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Event SHUTDOWN {\"guest\":false,\"reason\":\"host-qmp-quit\"}",
        "Response #1 ok {}",
        "Closed EndOfStream",
    ]);

    // EOF without the return: quit succeeded; a command sent after it was never run.
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(ready());
        h.execute(&Quit);
        h.execute(&QueryStatus);
        h.feed_lines(&messages[10]);
        h.eof();
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Event SHUTDOWN {\"guest\":false,\"reason\":\"host-qmp-quit\"}",
        "Response #1 ok {}",
        "CommandFailed #2 ConnectionClosed",
        "Closed EndOfStream",
    ]);
}

#[test]
fn edge_23_bare_top_level_number_waits_for_the_next_byte_and_requests_are_objects() {
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.feed(b"7");
        assert_eq!(
            h.event_count(),
            2,
            "a number is not complete before the next byte"
        );
        h.feed(b" ");
        h.execute(&QueryStatus);
        h.execute(&QueryVersion);
    });
    rec.assert_events(&[GREETING, "Ready", "Unknown 7"]);
    // Everything this client writes is an object ending in `}` and a newline.
    for line in rec.tx.split_inclusive(|&b| b == b'\n') {
        assert!(line.starts_with(b"{") && line.ends_with(b"}\n"), "{line:?}");
    }
}

#[test]
fn edge_24_encoder_refuses_non_characters_and_escapes_control_bytes() {
    #[derive(serde::Serialize)]
    struct Args<'a> {
        s: &'a str,
    }
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        for (text, code_point) in [
            ("\u{FFFE}", 0xFFFE),
            ("a\u{FFFF}", 0xFFFF),
            ("\u{FDD0}", 0xFDD0),
            ("\u{FDEF}", 0xFDEF),
            ("\u{1FFFE}", 0x1FFFE),
            ("\u{10FFFF}", 0x10FFFF),
        ] {
            assert_eq!(
                h.try_raw("x", Some(&Args { s: text })),
                Err(ExecuteError::Encode(EncodeError::NonCharacter {
                    code_point
                })),
                "{text:?}"
            );
        }
        assert!(matches!(
            h.try_raw::<()>("bad\u{FFFE}name", None),
            Err(ExecuteError::Encode(EncodeError::NonCharacter { .. }))
        ));
        // Arguments that are not an object are refused.
        assert!(matches!(
            h.try_raw("x", Some(&[1, 2])),
            Err(ExecuteError::Encode(EncodeError::ArgumentsNotObject))
        ));
        assert_eq!(
            h.try_json("x", Some(b"{\"a\":\"raw\x01control\"}"), false),
            Err(ExecuteError::InvalidArguments)
        );
        assert_eq!(
            h.try_json("x", Some(b"{\"a\":1} {}"), false),
            Err(ExecuteError::InvalidArguments)
        );
        // Control characters, quotes and backslashes are escaped; U+FFFD and other
        // non-ASCII text is fine.
        h.try_raw(
            "x",
            Some(&Args {
                s: "\u{0}\u{1}\t\n\r\u{8}\u{c}\u{1f}\u{7f}\"\\/ \u{FFFD}\u{e9}",
            }),
        )
        .unwrap();
        // A name cannot inject members.
        h.try_raw::<()>("x\",\"id\":99,\"y\":\"", None).unwrap();
    });
    let lines: Vec<&[u8]> = rec.tx.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        String::from_utf8(lines[1].to_vec()).unwrap(),
        "{\"execute\":\"x\",\"arguments\":{\"s\":\"\\u0000\\u0001\\t\\n\\r\\b\\f\\u001F\\u007F\\\"\\\\/ \u{FFFD}\u{e9}\"},\"id\":1}\n"
    );
    assert_eq!(
        lines[2],
        b"{\"execute\":\"x\\\",\\\"id\\\":99,\\\"y\\\":\\\"\",\"id\":2}\n"
    );
    for line in &lines {
        let body = &line[..line.len() - 1];
        assert!(
            body.iter().all(|&b| b >= 0x20),
            "raw control byte in {line:?}"
        );
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(value.is_object());
    }
}

#[test]
fn edge_24_request_larger_than_the_transmit_buffer_is_refused_with_its_size() {
    let add = BlockdevAdd::new(BlockdevOptions::NullCo(BlockdevOptionsNull::new(
        "a-rather-long-node-name",
        1_048_576,
    )));
    let expected = b"{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"null-co\",\"node-name\":\"a-rather-long-node-name\",\"size\":1048576},\"id\":1}\n";
    let rec = Setup::qmp().tx(64).check(|h| {
        // Before the greeting room for qmp_capabilities is kept: nothing else fits.
        assert!(matches!(
            h.try_execute(&QueryVersion),
            Err(ExecuteError::TxFull { required: 35, .. })
        ));
        h.feed(ready());
        assert_eq!(
            h.try_execute(&add),
            Err(ExecuteError::TxFull {
                required: expected.len(),
                available: 64
            })
        );
        // Nothing was queued and no id used.
        assert_eq!(h.execute(&QueryVersion).get(), 1);
    });
    rec.assert_tx(&cat(&[
        NEGOTIATE,
        b"{\"execute\":\"query-version\",\"id\":1}\n",
    ]));
    let rec = Setup::qmp().tx(expected.len()).check(|h| {
        h.feed(ready());
        h.execute(&add);
    });
    rec.assert_tx(&cat(&[NEGOTIATE, expected]));
}

#[test]
fn edge_24_raw_json_arguments_with_what_qemu_rejects_are_refused() {
    // QEMU answers a request with a duplicate key or a non-character with an id-less
    // parse error (vector 09, QMP.md §8.2): the command would never be answered. The
    // validated raw path must not let such arguments through.
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        let mut accepted = Vec::new();
        for arguments in [
            &b"{\"a\":1,\"a\":2}"[..],
            b"{\"a\":{\"b\":1,\"b\":1}}",
            b"{\"a\":\"\\uFFFE\"}",
            b"{\"a\":\"\\uFDD0\"}",
            "{\"a\":\"\u{FDD0}\"}".as_bytes(),
            "{\"a\":\"\u{10FFFF}\"}".as_bytes(),
        ] {
            let result = h.try_json("x", Some(arguments), false);
            if result != Err(ExecuteError::InvalidArguments) {
                accepted.push(format!(
                    "{} -> {result:?}",
                    String::from_utf8_lossy(arguments)
                ));
            }
        }
        assert!(accepted.is_empty(), "accepted: {accepted:#?}");
    });
    rec.assert_tx(NEGOTIATE);
}

#[test]
fn edge_25_back_to_back_objects_without_newline() {
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.execute(&QueryStatus);
        h.execute(&QueryStatus);
        h.execute(&QueryStatus);
        h.feed(b"{\"return\": {}, \"id\": 1}{\"return\": {}, \"id\": 2}{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}{\"return\": {}, \"id\": 3}");
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 ok {}",
        "Response #2 ok {}",
        "Event STOP",
        "Response #3 ok {}",
    ]);
    // Our own requests, written back to back, are each one complete object.
    let tx = rec.tx_text();
    let values: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&tx)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(values.len(), 4);
}

#[test]
fn edge_26_guest_agent_sentinel_stale_data_and_own_reset_error() {
    // Vector 40: no greeting; LF line ends; our 0xFF reset produces an error line before
    // the agent's 0xFF sentinel and the sync reply.
    let v = Vector::get("40-qga-session");
    let messages = v.messages();
    let rec = Setup::guest_agent().check(|h| {
        assert_eq!(h.client.state(), State::Ready);
        let id = h.sync(1_234_567_890_123);
        assert_eq!(h.transmitted(), v.line(0));
        h.feed(&messages[0]);
        assert!(h.client.is_syncing());
        h.feed(&messages[1]);
        assert!(!h.client.is_syncing());
        assert_eq!(id.get(), 1);
    });
    rec.assert_events(&["Response #1 ok 1234567890123"]);
    assert_eq!(rec.stats.discarded_while_syncing, 1);

    // Vector 41 (kept back, QMP.md §10): stale replies and half a message from an earlier
    // client precede the sentinel; all of it is discarded.
    let stale = cat(&[
        &b"{\"return\": {}, \"id\": 77}\n"[..],
        b"{\"return\": 42}\n",
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n",
        b"{\"return\": {\"version\": \"10.0",
        b"\xff{\"return\": 42}\n",
    ]);
    let rec = Setup::guest_agent().check(|h| {
        h.sync(42);
        h.execute(&GuestPing);
        h.feed(&stale);
        h.feed(b"{\"return\": {}, \"id\": 2}\n");
    });
    rec.assert_events(&["Response #1 ok 42", "Response #2 ok {}"]);
    assert_eq!(rec.stats.discarded_while_syncing, 3);
    assert_eq!(
        rec.tx,
        cat(&[
            &b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":42}}\n"[..],
            b"{\"execute\":\"guest-ping\",\"id\":2}\n",
        ])
    );

    // A 0xFF outside a sync drops any partial message and is counted.
    let rec = Setup::guest_agent().check(|h| {
        h.execute(&GuestPing);
        h.feed(b"{\"return\": {\"x\xff{\"return\": {}, \"id\": 1}\n");
    });
    rec.assert_events(&["Response #1 ok {}"]);
    assert_eq!(rec.stats.stray_reset_bytes, 1);
}

#[test]
fn edge_27_guest_agent_commands_without_success_reply() {
    let setup =
        Setup::guest_agent().config(Config::guest_agent().with_command_timeout(Some(ms(5_000))));
    // Resolved as success by the reply to a later command.
    let rec = setup.check(|h| {
        h.execute(&GuestShutdown::default());
        h.execute(&GuestPing);
        h.feed(b"{\"return\": {}, \"id\": 2}\n");
    });
    let mut brief = rec.brief();
    brief.sort();
    assert_eq!(brief, ["Response #1 ok {}", "Response #2 ok {}"]);

    // By its deadline, without an error reply: success, not a timeout.
    let rec = setup.check(|h| {
        h.execute(&GuestSuspendRam);
        assert_eq!(
            h.client.poll_timeout(),
            Some(qmp_core::time::Instant::from_millis(5_000))
        );
        h.advance_to(4_999);
        assert_eq!(h.event_count(), 0);
        h.advance_to(5_000);
    });
    rec.assert_events(&["Response #1 ok {}"]);

    // By the end of the stream (the guest went down).
    let rec = setup.check(|h| {
        h.execute(&GuestShutdown::default());
        h.eof();
    });
    rec.assert_events(&["Response #1 ok {}", "Closed EndOfStream"]);

    // An error reply carrying its id resolves it as that error.
    let rec = setup.check(|h| {
        h.execute(&GuestShutdown::default());
        h.feed(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"shutdown failed\"}, \"id\": 1}\n");
        h.advance_to(10_000);
    });
    rec.assert_events(&["Response #1 err GenericError: shutdown failed"]);

    // A later command answered with an error also shows the silent one finished.
    let rec = setup.check(|h| {
        h.execute(&GuestShutdown::default());
        h.execute(&GuestPing);
        h.feed(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, \"id\": 2}\n");
    });
    let mut brief = rec.brief();
    brief.sort();
    assert_eq!(
        brief,
        ["Response #1 ok {}", "Response #2 err GenericError: no"]
    );

    // The request itself: no arguments member unless a mode is given.
    rec.assert_tx(
        b"{\"execute\":\"guest-shutdown\",\"id\":1}\n{\"execute\":\"guest-ping\",\"id\":2}\n",
    );
}

#[test]
fn edge_28_requests_are_compact() {
    // Typed commands produce exactly the compact bytes of the captured requests.
    let v14 = Vector::get("14-blockdev-add-null-co");
    let v30 = Vector::get("30-qsys-stop-cont-reset-quit");
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.execute(&BlockdevAdd::new(BlockdevOptions::NullCo(
            BlockdevOptionsNull::new("null0", 1_048_576),
        )));
        h.execute(&QueryStatus);
        h.execute(&Quit);
    });
    rec.assert_tx(&cat(&[
        NEGOTIATE,
        &request(&v14.line(1), Some(1)),
        &request(&v30.line(1), Some(2)),
        &request(&v30.line(6), Some(3)),
    ]));
    assert_eq!(
        request(&v30.line(1), Some(2)),
        b"{\"execute\":\"query-status\",\"id\":2}\n"
    );
    // No byte of whitespace outside strings, one newline per request.
    for line in rec.tx.split_inclusive(|&b| b == b'\n') {
        assert_eq!(
            support::json_text::minify(line).len(),
            line.len() - 1,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}
