//! Replays every captured transcript of `../shared/protocol/vectors` (see its INDEX.md)
//! through the client and checks the events it reports and the bytes it sends.
//!
//! Each test rebuilds the session *this* client would have had with that server: the
//! captured request lines it can send go through `execute_json` with their exact argument
//! text, the client gives them its own integer ids, and the server's replies are rewritten
//! to carry those ids (QEMU answers in-band requests in order; see
//! `support::vectors::Session`). Every other server byte is replayed as captured; replies
//! to requests this client cannot produce (malformed JSON, envelope errors) keep their
//! captured string ids and are reported as unmatched, or stay id-less and are reported as
//! unattributed errors. The transmitted bytes are compared with the `.c2s` lines, rewritten
//! the same way, byte for byte.
//!
//! Every scenario runs whole, split at every offset, one byte at a time and in random
//! fragments (`support::check_fragmentation`), and must give identical results; the 117 KB
//! schema vector uses a dense sample of split points instead of all 117,040.

mod support;

use qmp_core::client::{Config, ExecuteError, State};
use qmp_core::commands::{Command, QueryCommands, QueryStatus, QueryVersion};
use qmp_core::json::RawJson;
use qmp_core::qga::{GuestGetTime, GuestInfo, GuestPing, GuestSync};
use support::vectors::{cat, reply, request, without_id, Session, Vector};
use support::{json_text, Setup};

const GREETING: &str = "Greeting 10.0.2 [oob] \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"";
const VERSION: &str = "{\"qemu\":{\"micro\":2,\"minor\":0,\"major\":10},\"package\":\"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}";
const NEGOTIATE: &[u8] = b"{\"execute\":\"qmp_capabilities\"}\n";
const NEGOTIATE_OOB: &[u8] =
    b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n";

fn response_ok(id: u64, value: &str) -> String {
    format!("Response #{id} ok {value}")
}

fn version(id: u64) -> String {
    response_ok(id, VERSION)
}

fn as_strs(events: &[String]) -> Vec<&str> {
    events.iter().map(String::as_str).collect()
}

#[test]
fn v01_greeting_makes_the_client_negotiate() {
    let v = Vector::get("01-greeting");
    assert!(v.c2s.is_empty(), "the capture's client sent nothing");
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(v.s2c);
        let caps = h.client.server_capabilities().expect("capabilities known");
        assert!(caps.oob);
        assert_eq!(caps.unknown, 0);
        let version = h.client.server_version().expect("version known");
        assert_eq!((version.major, version.minor, version.micro), (10, 0, 2));
    });
    rec.assert_events(&[GREETING]);
    // This client answers the greeting itself, exactly as the client of vector 02 did.
    rec.assert_tx(Vector::get("02-negotiation").c2s);
    assert_eq!(rec.state, State::Negotiating);
}

#[test]
fn v02_negotiation_bytes_match_the_capture() {
    let v = Vector::get("02-negotiation");
    let rec = Setup::qmp().check(|h| h.feed_lines(v.s2c));
    rec.assert_events(&[GREETING, "Ready"]);
    rec.assert_tx(v.c2s);
    assert_eq!(v.c2s, NEGOTIATE);
    assert_eq!(rec.state, State::Ready);
}

#[test]
fn v03_negotiation_with_oob() {
    let v = Vector::get("03-negotiation-oob");
    // The capture sent id "neg"; this client sends qmp_capabilities without an id.
    let s = Session::new(&v).strip(1);
    let setup = Setup::qmp().config(Config::qmp().with_oob(true));
    let rec = setup.check(|h| {
        h.feed_lines(&s.s2c());
        assert!(h.client.oob_enabled());
    });
    rec.assert_events(&[GREETING, "Ready"]);
    rec.assert_tx(&request(&v.line(0), None));
    rec.assert_tx(NEGOTIATE_OOB);

    // Without asking for OOB, the same server is not asked for it.
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(&s.s2c());
        assert!(!h.client.oob_enabled());
    });
    rec.assert_tx(NEGOTIATE);
}

#[test]
fn v04_commands_before_negotiation_are_held_until_ready() {
    // The capture sent query-version and an unknown command before negotiating and got
    // CommandNotFound for both. This client holds them back and sends them after
    // qmp_capabilities succeeded; the replies it then gets are those of vectors 05 and 08.
    let v4 = Vector::get("04-before-negotiation");
    let v5 = Vector::get("05-query-version");
    let v8 = Vector::get("08-unknown-command");
    let s = Session::new(&v4).send(&v4, &[0, 1]);
    let server = cat(&[
        v4.message(0),
        without_id(&v4.message(4)), // neg1's success, for our id-less qmp_capabilities
        reply(&v5.message(2), 1),
        reply(&v8.message(2), 2),
    ]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        assert!(
            h.transmitted().is_empty(),
            "nothing is sent before the greeting"
        );
        assert_eq!(h.client.in_flight(), 2);
        h.feed_lines(&server);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        &version(1),
        "Response #2 err CommandNotFound: The command no-such-command has not been found",
    ]);
    rec.assert_tx(&cat(&[NEGOTIATE, &s.tx()]));
}

#[test]
fn v04_refused_qmp_capabilities_closes_the_session() {
    // The bad-capability refusal of vector 04, as the answer to our qmp_capabilities.
    let v = Vector::get("04-before-negotiation");
    let server = cat(&[v.message(0), without_id(&v.message(3))]);
    let rec = Setup::qmp().check(|h| {
        h.raw("query-version");
        h.feed_lines(&server);
    });
    rec.assert_events(&[
        GREETING,
        "NegotiationFailed GenericError: Parameter 'null' does not accept value 'bogus'",
        "CommandFailed #1 ConnectionClosed",
        "Closed Protocol NegotiationFailed",
    ]);
    // The held command never reached the server.
    rec.assert_tx(NEGOTIATE);
}

#[test]
fn v04_second_qmp_capabilities_is_an_ordinary_error_reply() {
    let v = Vector::get("04-before-negotiation");
    let server = cat(&[
        v.message(0),
        without_id(&v.message(4)),
        reply(&v.message(5), 1),
    ]);
    let rec = Setup::qmp().check(|h| {
        h.raw("qmp_capabilities");
        h.feed_lines(&server);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 err CommandNotFound: Capabilities negotiation is already complete, command ignored",
    ]);
    assert_eq!(rec.state, State::Ready);
    rec.assert_tx(&cat(&[
        NEGOTIATE,
        b"{\"execute\":\"qmp_capabilities\",\"id\":1}\n",
    ]));
}

#[test]
fn v05_query_version_with_and_without_id_and_empty_arguments() {
    let v = Vector::get("05-query-version");
    let s = Session::new(&v).send(&v, &[1, 2, 3]).reply_to(3, 2);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[GREETING, "Ready", &version(1), &version(2), &version(3)]);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
    // The capture's first query-version had integer id 1, like ours: byte-identical.
    assert!(rec.tx.starts_with(&cat(&[v.line(0), v.line(1)])));
    assert_eq!(
        request(&v.line(3), Some(3)),
        b"{\"execute\":\"query-version\",\"arguments\":{},\"id\":3}\n"
    );
    let raw = rec.response(qmp_core::client::CommandId::new(1));
    let decoded = QueryVersion::decode_response(RawJson::parse(raw.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        (decoded.qemu.major, decoded.qemu.minor, decoded.qemu.micro),
        (10, 0, 2)
    );
    assert_eq!(decoded.package, "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1");
}

#[test]
fn v06_query_commands_single_long_line() {
    let v = Vector::get("06-query-commands");
    let s = Session::new(&v).send(&v, &[1]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[GREETING, "Ready", "Response #1 ok <2142 bytes>"]);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
    let raw = rec.response(qmp_core::client::CommandId::new(1));
    let commands = QueryCommands::decode_response(RawJson::parse(raw.as_bytes()).unwrap()).unwrap();
    let names: Vec<String> = commands
        .iter()
        .map(|c| c.unwrap().name.raw().to_owned())
        .collect();
    assert_eq!(names.len(), 76);
    assert_eq!(names[0], "object-del");
    assert!(names.iter().any(|n| n == "query-qmp-schema"));
}

/// Every offset boundary of the schema vector's messages.
fn boundaries(messages: &[Vec<u8>]) -> Vec<usize> {
    let mut at = 0;
    messages
        .iter()
        .map(|m| {
            at += m.len();
            at
        })
        .collect()
}

/// The schema vector's messages: as captured, or under Miri (which would take the better
/// part of an hour over 117 KB) with the schema cut after its first entries, about 4.5 KB:
/// still one line far longer than a 4 KiB receive buffer. Under Miri the stream is not
/// split by walking it (that alone takes minutes): the greeting and the negotiation reply
/// are its first two lines, and the schema reply (`{"return": [...], "id": "schema"}`)
/// is walked only as far as the cut.
fn schema_messages() -> Vec<Vec<u8>> {
    let v = Vector::get("07-query-qmp-schema");
    if !support::MIRI {
        return v.messages();
    }
    let line_end = |from: usize| from + v.s2c[from..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let first = line_end(0);
    let second = line_end(first);
    let schema = &v.s2c[second..];
    assert!(
        schema.starts_with(b"{\"return\": ["),
        "the schema reply starts with its array"
    );
    let array = schema.iter().position(|&b| b == b'[').unwrap();
    let mut end = array + 1;
    while end < 4_500 {
        let start = schema[end..]
            .iter()
            .position(|&b| b == b'{')
            .map(|i| end + i)
            .unwrap();
        end = json_text::value_end(schema, start);
    }
    vec![
        v.s2c[..first].to_vec(),
        v.s2c[first..second].to_vec(),
        [&schema[..end], &b"], \"id\": \"schema\"}\r\n"[..]].concat(),
    ]
}

#[test]
fn v07_schema_fits_a_256_kib_receive_buffer() {
    let v = Vector::get("07-query-qmp-schema");
    let messages = schema_messages();
    let server = cat(&[&messages[0], &messages[1], &reply(&messages[2], 1)]);
    // Under Miri the schema is cut to its first 4.5 KB and checked against a 16 KiB buffer:
    // a frame of that size through the client costs Miri minutes per 10 KB.
    let setup = Setup::qmp().rx(if support::MIRI { 16 * 1024 } else { 256 * 1024 });
    let scenario = |h: &mut support::H<'_>| {
        h.line(&v.line(1));
        h.feed_lines(&server);
    };
    let rec = setup.run(support::Split::Whole, scenario);
    if !support::MIRI {
        let points =
            support::sampled_split_points(&boundaries(&messages), setup.rx, rec.fed, 24, 1499);
        support::check_splits::<32>(&setup, &scenario, &rec, &points);
    }
    let value = json_text::member(&messages[2], "return").unwrap();
    let minified = json_text::minify(value).len();
    if !support::MIRI {
        assert_eq!(minified, 105_045);
        assert_eq!(messages[2].len(), 116_875 + 2);
    }
    rec.assert_events(&[
        GREETING,
        "Ready",
        &format!("Response #1 ok <{minified} bytes>"),
    ]);
    rec.assert_tx(&cat(&[v.line(0), request(&v.line(1), Some(1))]));
    // The value is delivered exactly as sent.
    assert_eq!(
        rec.response(qmp_core::client::CommandId::new(1)).as_bytes(),
        value
    );
}

#[test]
fn v07_schema_larger_than_a_4_kib_receive_buffer_fails_only_that_command() {
    let v = Vector::get("07-query-qmp-schema");
    let v5 = Vector::get("05-query-version");
    let messages = schema_messages();
    let schema = reply(&messages[2], 1);
    let server = cat(&[
        &messages[0],
        &messages[1],
        &schema,
        &reply(&v5.message(2), 2),
    ]);
    let setup = Setup::qmp().rx(4096);
    let scenario = |h: &mut support::H<'_>| {
        h.line(&v.line(1));
        h.json("query-version", None);
        h.feed_lines(&server);
    };
    let rec = setup.run(support::Split::Whole, scenario);
    if !support::MIRI {
        let points =
            support::sampled_split_points(&boundaries(&messages), setup.rx, rec.fed, 24, 1499);
        support::check_splits::<32>(&setup, &scenario, &rec, &points);
    }
    // The reply is 116,875 bytes as captured, 7 fewer with our id 1 instead of "schema".
    let len = schema.len() - 2;
    if !support::MIRI {
        assert_eq!(len, 116_868);
    }
    rec.assert_events(&[
        GREETING,
        "Ready",
        &format!("CommandFailed #1 ReplyTooLarge {len}"),
        &version(2),
    ]);
    assert_eq!(rec.stats.oversize, 1);
    assert_eq!(rec.state, State::Ready);

    // With the captured string id the oversize reply cannot be tied to a command: it is
    // reported as such, and the session goes on.
    let server = cat(&[
        &messages[0],
        &messages[1],
        &messages[2],
        &reply(&v5.message(2), 1),
    ]);
    let rec = setup.run(support::Split::Whole, |h| {
        h.json("query-version", None);
        h.feed_lines(&server);
    });
    let oversize = format!("Oversize {}", messages[2].len() - 2);
    rec.assert_events(&[GREETING, "Ready", &oversize, &version(1)]);
}

#[test]
fn v08_unknown_command_with_and_without_id() {
    let v = Vector::get("08-unknown-command");
    let s = Session::new(&v).send(&v, &[1, 2]).reply_to(3, 2);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 err CommandNotFound: The command no-such-command has not been found",
        "Response #2 err CommandNotFound: The command no-such-command has not been found",
    ]);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v09_parse_errors_are_unattributed_and_do_not_shift_matching() {
    let v = Vector::get("09-malformed-json");
    // Lines 1-11 are not JSON this client could ever write; line 12 is.
    let s = Session::new(&v).send(&v, &[12]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    let prefix = "UnattributedError GenericError: JSON parse error, ";
    let mut expected: Vec<String> = vec![GREETING.into(), "Ready".into()];
    for desc in [
        "expecting value",
        "expecting value",
        "expected separator in dict",
        "duplicate key",
        "invalid keyword 'nul'",
        "stray '01'",
        "expecting value",
        "invalid escape sequence in string",
        r"\\ud800 is not a valid Unicode character",
        "invalid UTF-8 sequence in string",
        r#"stray '\"tab\t'"#,
        "expecting value",
        "expecting value",
    ] {
        expected.push(format!("{prefix}{desc}"));
    }
    expected.push(version(1));
    rec.assert_events(&as_strs(&expected));
    assert_eq!(rec.stats.unattributed_errors, 13);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v10_reset_bytes_and_back_to_back_requests() {
    let v = Vector::get("10-parser-reset");
    let s = Session::new(&v)
        .send_line(b"{\"execute\":\"query-version\",\"id\":\"after-ff\"}\n")
        .send_line(b"{\"execute\":\"query-version\",\"id\":\"after-ctl\"}\n")
        .send_line(b"{\"execute\":\"query-version\",\"id\":\"a\"}\n")
        .send_line(b"{\"execute\":\"query-version\",\"id\":\"b\"}\n");
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        r"UnattributedError GenericError: JSON parse error, stray '\uFFFD'",
        &version(1),
        r"UnattributedError GenericError: JSON parse error, stray '\uFFFD'",
        r"UnattributedError GenericError: JSON parse error, stray '\u0001'",
        &version(2),
        &version(3),
        &version(4),
    ]);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v11_non_object_input_errors_are_unattributed() {
    let v = Vector::get("11-non-object");
    let rec = Setup::qmp().check(|h| h.feed_lines(v.s2c));
    let not_object = "UnattributedError GenericError: QMP input must be a JSON object";
    rec.assert_events(&[
        GREETING,
        "Ready",
        not_object,
        not_object,
        not_object,
        not_object,
        not_object,
        not_object,
        "UnattributedError GenericError: QMP input lacks member 'execute'",
        not_object,
    ]);
    rec.assert_tx(&v.line(0));
}

#[test]
fn v12_envelope_and_argument_errors() {
    let v = Vector::get("12-bad-arguments");
    // e1-e5 are envelopes this client cannot produce: a non-string name, non-object
    // arguments (refused locally), an extra member, no name, exec-oob without OOB (refused
    // locally). Their replies carry ids it never sent.
    let s = Session::new(&v).send(&v, &[6, 7, 8, 9, 10, 11, 12]);
    let rec = Setup::qmp().check(|h| {
        assert_eq!(
            h.try_json("query-version", Some(b"[]"), false),
            Err(ExecuteError::InvalidArguments)
        );
        assert_eq!(
            h.try_json("query-version", None, true),
            Err(ExecuteError::OobNotEnabled)
        );
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Unmatched id=\"e1\" err GenericError: QMP input member 'execute' must be a string",
        "Unmatched id=\"e2\" err GenericError: QMP input member 'arguments' must be an object",
        "Unmatched id=\"e3\" err GenericError: QMP input member 'foo' is unexpected",
        "Unmatched id=\"e4\" err GenericError: QMP input lacks member 'execute'",
        "Unmatched id=\"e5\" err GenericError: QMP input member 'exec-oob' is unexpected",
        "Response #1 err GenericError: Parameter 'x' is unexpected",
        "Response #2 err GenericError: Invalid parameter type for 'node-name', expected: string",
        "Response #3 err GenericError: Parameter 'driver' is missing",
        "Response #4 err GenericError: Parameter 'driver' does not accept value 'no-such-driver'",
        "Response #5 err GenericError: Invalid parameter type for 'size', expected: integer",
        "Response #6 err GenericError: Invalid node-name: '0bad'",
        "Response #7 err GenericError: Failed to find node with node-name='nope'",
    ]);
    assert_eq!(rec.stats.unmatched_replies, 5);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v14_blockdev_add_and_escaped_json_in_strings() {
    let v = Vector::get("14-blockdev-add-null-co");
    let s = Session::new(&v).send(&v, &[1, 2, 3, 4]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 ok {}",
        "Response #2 err GenericError: Duplicate nodes with node-name='null0'",
        "Response #3 ok <459 bytes>",
        "Response #4 ok {}",
    ]);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
    let raw = rec.response(qmp_core::client::CommandId::new(3));
    let nodes = RawJson::parse(raw.as_bytes()).unwrap();
    let filename = nodes
        .elements()
        .next()
        .and_then(|node| node.get("image"))
        .and_then(|image| image.get("filename"))
        .and_then(|f| f.as_json_str())
        .unwrap();
    assert_eq!(
        filename,
        "json:{\"driver\": \"null-co\", \"size\": 1048576}"
    );
}

fn job(status: &str, id: &str) -> String {
    format!("Event JOB_STATUS_CHANGE {{\"status\":\"{status}\",\"id\":\"{id}\"}}")
}

#[test]
fn v15_job_events_arrive_before_the_reply_that_started_the_job() {
    let v = Vector::get("15-job-blockdev-create");
    let s = Session::new(&v).send(&v, &[1, 2, 3]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&as_strs(&[
        GREETING.into(),
        "Ready".into(),
        job("created", "job0"),
        job("running", "job0"),
        "Response #1 ok {}".into(),
        job("waiting", "job0"),
        job("pending", "job0"),
        job("concluded", "job0"),
        response_ok(
            2,
            "[{\"current-progress\":1,\"status\":\"concluded\",\"total-progress\":1,\"type\":\"create\",\"id\":\"job0\"}]",
        ),
        job("null", "job0"),
        "Response #3 ok {}".into(),
    ]));
    assert_eq!(rec.stats.events, 6);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v16_mirror_job_events_and_auto_dismiss() {
    let v = Vector::get("16-job-mirror");
    let s = Session::new(&v).send(&v, &[1, 2, 3, 4, 5]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    let block =
        "{\"device\":\"m0\",\"len\":4194304,\"offset\":4194304,\"speed\":0,\"type\":\"mirror\"}";
    rec.assert_events(&as_strs(&[
        GREETING.into(),
        "Ready".into(),
        "Response #1 ok {}".into(),
        "Response #2 ok {}".into(),
        job("created", "m0"),
        job("running", "m0"),
        job("ready", "m0"),
        format!("Event BLOCK_JOB_READY {block}"),
        "Response #3 ok {}".into(),
        "Response #4 ok <214 bytes>".into(),
        "Response #5 ok {}".into(),
        job("waiting", "m0"),
        job("pending", "m0"),
        format!("Event BLOCK_JOB_COMPLETED {block}"),
        job("concluded", "m0"),
        job("null", "m0"),
    ]));
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v17_oob_offered_but_no_command_allows_it() {
    let v = Vector::get("17-exec-oob-qsd");
    // Lines 4 and 5 (`execute` and `exec-oob` together, a non-string `exec-oob`) cannot be
    // written by this client; their replies carry ids it never sent.
    let s = Session::new(&v).send(&v, &[1, 2, 3, 6]).reply_to(4, 3);
    let setup = Setup::qmp().config(Config::qmp().with_oob(true));
    let rec = setup.check(|h| {
        assert_eq!(
            h.try_json("query-version", None, true),
            Err(ExecuteError::OobNotEnabled),
            "exec-oob before negotiation"
        );
        h.feed_lines(&s.s2c_range(0..2));
        assert!(h.client.oob_enabled());
        // The typed command knows query-version is not allow-oob.
        assert_eq!(
            h.try_execute_oob(&QueryVersion),
            Err(ExecuteError::OobNotAllowed)
        );
        h.send(s.requests());
        h.feed_lines(&s.s2c_range(2..s.len()));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 err GenericError: The command query-version does not support OOB",
        "Response #2 err CommandNotFound: The command no-such-command has not been found",
        "Response #3 err GenericError: The command query-version does not support OOB",
        "Unmatched id=\"o3\" err GenericError: QMP input member 'execute' clashes with 'exec-oob'",
        "Unmatched id=\"o4\" err GenericError: QMP input member 'exec-oob' must be a string",
        &version(4),
    ]);
    // The capture's negotiation line is exactly ours.
    assert_eq!(v.line(0), NEGOTIATE_OOB);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v18_pretty_output_gives_the_same_events_as_compact() {
    let v = Vector::get("18-pretty");
    let s = Session::new(&v).send(&v, &[1, 2, 3, 4, 5]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&as_strs(&[
        GREETING.into(),
        "Ready".into(),
        version(1),
        "Response #2 err CommandNotFound: The command no-such-command has not been found".into(),
        "Response #3 ok <2142 bytes>".into(),
        job("created", "job0"),
        job("running", "job0"),
        "Response #4 ok {}".into(),
        job("waiting", "job0"),
        job("pending", "job0"),
        job("concluded", "job0"),
        job("null", "job0"),
        "Response #5 ok {}".into(),
    ]));
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
    // query-version had integer id 1 in the capture too: the line is byte-identical.
    assert!(rec.tx.starts_with(&cat(&[v.line(0), v.line(1)])));
    // The pretty query-commands reply is the compact one of vector 06, whitespace aside.
    let pretty = rec.response(qmp_core::client::CommandId::new(3));
    let v6 = Vector::get("06-query-commands");
    let compact = json_text::member(&v6.message(2), "return")
        .unwrap()
        .to_vec();
    assert_eq!(
        json_text::minify(pretty.as_bytes()),
        json_text::minify(&compact)
    );
    assert!(
        pretty.contains("\r\n"),
        "the value is delivered as sent, CRLFs included"
    );
}

#[test]
fn v19_unicode_escapes_in_requests_and_replies() {
    let v = Vector::get("19-unicode-escapes");
    // Line 3 uses QEMU's single-quoted strings, which this client never writes: it sends
    // the same request in standard JSON.
    let add = "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"uni0\",\
               \"filename\":\"/tmp/qmpvec/uni/f\\u00e9 \\u6f22 \\ud83d\\ude00 'sq' \\\"dq\\\" back\\\\slash.img\"},\
               \"id\":\"add\"}\n";
    let s = Session::new(&v)
        .send(&v, &[1, 2])
        .send_line(add.as_bytes())
        .send(&v, &[4, 5, 6, 7]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&as_strs(&[
        GREETING.into(),
        "Ready".into(),
        job("created", "j"),
        job("running", "j"),
        "Response #1 ok {}".into(),
        job("waiting", "j"),
        job("pending", "j"),
        job("concluded", "j"),
        job("null", "j"),
        "Response #2 ok {}".into(),
        "Response #3 ok {}".into(),
        "Response #4 ok <560 bytes>".into(),
        r"Response #5 err GenericError: Could not open '/nonexistent/\u00E9\t\u2603': No such file or directory".into(),
        r#"Response #6 err GenericError: Invalid node-name: 'n\u00E9\"x'"#.into(),
        "Response #7 ok {}".into(),
    ]));
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
    // Raw UTF-8 in the captured request is sent unchanged.
    assert!(rec.tx_text().contains("f\u{e9} \u{6f22} \u{1f600} 'sq'"));
    let raw = rec.response(qmp_core::client::CommandId::new(4));
    let nodes = RawJson::parse(raw.as_bytes()).unwrap();
    let filename = nodes
        .elements()
        .next()
        .and_then(|node| node.get("image"))
        .and_then(|image| image.get("filename"))
        .and_then(|f| f.as_json_str())
        .unwrap();
    assert!(filename.raw().contains(r"\u00E9 \u6F22 \uD83D\uDE00"));
    assert_eq!(
        filename,
        "/tmp/qmpvec/uni/f\u{e9} \u{6f22} \u{1f600} 'sq' \"dq\" back\\slash.img"
    );
}

#[test]
fn v20_quit_reply_then_end_of_stream() {
    let v = Vector::get("20-quit");
    let s = Session::new(&v).send(&v, &[1]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
        h.eof();
    });
    rec.assert_events(&[GREETING, "Ready", "Response #1 ok {}", "Closed EndOfStream"]);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
    assert_eq!(rec.state, State::Closed);
}

#[test]
fn v21_first_client_runs_normally() {
    let v = Vector::get("21-second-client-A");
    let s = Session::new(&v).send(&v, &[1]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[GREETING, "Ready", &version(1)]);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v21_second_client_times_out_waiting_for_the_greeting() {
    let v = Vector::get("21-second-client-B");
    let s = Session::new(&v).send(&v, &[0]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        assert_eq!(
            h.client.poll_timeout(),
            Some(qmp_core::time::Instant::from_secs(10)),
            "the greeting deadline is the earliest"
        );
        h.advance_to(9_999);
        assert_eq!(h.event_count(), 0);
        h.advance_to(10_000);
        // The server's bytes would only come after the first client left: too late.
        h.feed_lines(v.s2c);
        assert!(h.refused_input);
    });
    rec.assert_events(&[
        "CommandFailed #1 ConnectionClosed",
        "Closed GreetingTimedOut",
    ]);
    assert!(
        rec.tx.is_empty(),
        "nothing was ever sent: {:?}",
        rec.tx_text()
    );
}

#[test]
fn v21_second_client_served_once_the_first_leaves() {
    let a = Vector::get("21-second-client-A");
    let b = Vector::get("21-second-client-B");
    // B's early query-version is held, so the CommandNotFound of the capture never
    // happens; after negotiation it gets the answer A got.
    let s = Session::new(&b).send(&b, &[0]).drop_message(1);
    let server = cat(&[s.s2c(), reply(&a.message(2), 1)]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.advance_to(9_000);
        assert!(h.transmitted().is_empty());
        h.feed_lines(&server);
        h.advance_to(10_000);
    });
    rec.assert_events(&[GREETING, "Ready", &version(1)]);
    rec.assert_tx(&cat(&[b.line(1), request(&b.line(0), Some(1))]));
}

#[test]
fn v22_fresh_client_gets_only_the_greeting() {
    let v = Vector::get("22-disconnect-pending-B");
    let rec = Setup::qmp().check(|h| h.feed_lines(v.s2c));
    rec.assert_events(&[GREETING]);
    rec.assert_tx(NEGOTIATE);
    assert_eq!(rec.state, State::Negotiating);
}

#[test]
fn v24_token_size_limit_errors_then_a_working_command() {
    let v = Vector::get("24-token-size-limit");
    let s = Session::new(&v).send_line(b"{\"execute\":\"query-version\",\"id\":\"after\"}\n");
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "UnattributedError GenericError: JSON token size limit exceeded",
        "UnattributedError GenericError: JSON parse error, invalid keyword 'xxxxxxxxxx'",
        r#"UnattributedError GenericError: JSON parse error, stray '\"}\n'"#,
        r"UnattributedError GenericError: JSON parse error, stray '\u0001'",
        &version(1),
    ]);
    rec.assert_tx(&cat(&[NEGOTIATE, &s.tx()]));
}

#[test]
fn v25_reconnect_after_a_partial_request() {
    let a = Vector::get("25-partial-then-reconnect-A");
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(a.s2c);
        h.eof();
    });
    rec.assert_events(&[GREETING, "Ready", "Closed EndOfStream"]);
    // This client only ever writes whole requests: no half command to leave behind.
    rec.assert_tx(&a.line(0));

    let b = Vector::get("25-partial-then-reconnect-B");
    let s = Session::new(&b).send(&b, &[1]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec.assert_events(&[GREETING, "Ready", &version(1)]);
    rec.assert_tx(&cat(&[b.line(0), s.tx()]));
}

#[test]
fn v27_events_of_other_clients_arrive_and_earlier_ones_are_not_replayed() {
    let x = Vector::get("27-two-monitors-events-X");
    let s = Session::new(&x).send(&x, &[1, 2, 3, 4]);
    let rec_x = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    rec_x.assert_events(&as_strs(&[
        GREETING.into(),
        "Ready".into(),
        job("created", "j1"),
        job("running", "j1"),
        "Response #1 ok {}".into(),
        job("waiting", "j1"),
        job("pending", "j1"),
        job("concluded", "j1"),
        job("null", "j1"),
        "Response #2 ok {}".into(),
        job("created", "j2"),
        job("running", "j2"),
        "Response #3 ok {}".into(),
        job("waiting", "j2"),
        job("pending", "j2"),
        job("concluded", "j2"),
        job("null", "j2"),
        "Response #4 ok {}".into(),
    ]));
    rec_x.assert_tx(&cat(&[x.line(0), s.tx()]));

    let y = Vector::get("27-two-monitors-events-Y");
    let rec_y = Setup::qmp().check(|h| h.feed_lines(y.s2c));
    rec_y.assert_events(&as_strs(&[
        GREETING.into(),
        "Ready".into(),
        job("created", "j2"),
        job("running", "j2"),
        job("waiting", "j2"),
        job("pending", "j2"),
        job("concluded", "j2"),
        job("null", "j2"),
    ]));
    rec_y.assert_tx(&y.line(0));
    // Same events, same timestamps, on both monitors.
    let x_events: Vec<String> = rec_x
        .full()
        .into_iter()
        .filter(|e| e.contains("\"j2\""))
        .collect();
    let y_events: Vec<String> = rec_y.full()[2..].to_vec();
    assert_eq!(x_events, y_events);
}

#[test]
fn v30_stop_cont_reset_quit_on_qemu_system() {
    let v = Vector::get("30-qsys-stop-cont-reset-quit");
    let s = Session::new(&v).send(&v, &[1, 2, 3, 4, 5, 6]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
        h.eof();
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #1 ok {\"status\":\"running\",\"running\":true}",
        "Event STOP",
        "Response #2 ok {}",
        "Response #3 ok {}",
        "Event RESUME",
        "Response #4 ok {}",
        "Event RESET {\"guest\":false,\"reason\":\"host-qmp-system-reset\"}",
        "Response #5 ok {}",
        "Event SHUTDOWN {\"guest\":false,\"reason\":\"host-qmp-quit\"}",
        "Response #6 ok {}",
        "Closed EndOfStream",
    ]);
    assert!(rec.full()[3].starts_with("Event STOP @1795314318/300007"));
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
    let raw = rec.response(qmp_core::client::CommandId::new(1));
    let status = QueryStatus::decode_response(RawJson::parse(raw.as_bytes()).unwrap()).unwrap();
    assert!(status.running);
    assert_eq!(status.status, "running");
}

#[test]
fn v31_oob_reply_overtakes_queued_in_band_commands() {
    let v = Vector::get("31-qsys-oob");
    // Message 1 answers an exec-oob sent before negotiation, which this client refuses to
    // send; message 2 answers qmp_capabilities, which it sends without an id.
    // The capture had 8 in-band commands in flight (the slow pmemsave, already taken by
    // QEMU's dispatcher, and 7 query-status); this client keeps at most 7
    // (OOB_IN_BAND_LIMIT), so it sends 6 query-status: the last one and its reply are
    // left out.
    let s = Session::new(&v)
        .drop_message(1)
        .strip(2)
        .drop_message(16)
        .send(&v, &[2, 3, 4, 5, 6])
        .reply_to(4, 2)
        .send(&v, &[7, 8, 9, 10, 11, 12, 13, 15]);
    let (first, second) = s.requests().split_at(5);
    let setup = Setup::qmp().config(Config::qmp().with_oob(true));
    let rec = setup.check(|h| {
        assert_eq!(
            h.try_json("query-yank", None, true),
            Err(ExecuteError::OobNotEnabled)
        );
        h.feed_lines(&s.s2c_range(0..3));
        assert!(h.client.oob_enabled());
        h.send(first);
        h.feed_lines(&s.s2c_range(3..8));
        // The slow pmemsave and six query-status: seven in-band commands in flight.
        h.send(&second[..7]);
        assert_eq!(
            h.try_execute(&QueryStatus),
            Err(ExecuteError::TooManyInFlight { limit: 7 }),
            "an eighth in-band command could stop the server reading"
        );
        h.send(&second[7..]);
        h.feed_lines(&s.s2c_range(8..s.len()));
    });
    let yank = "[{\"type\":\"chardev\",\"id\":\"c0\"}]";
    let prelaunch = "{\"status\":\"prelaunch\",\"running\":false}";
    let mut expected: Vec<String> = vec![
        "Greeting 10.0.2 [oob] \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"".into(),
        "Ready".into(),
        response_ok(1, yank),
        response_ok(2, yank),
        "Response #3 err GenericError: migrate-pause is currently only supported during postcopy-active or postcopy-recover state".into(),
        "Response #4 err GenericError: The command query-status does not support OOB".into(),
        response_ok(5, yank),
        response_ok(13, yank),
        "Response #6 ok {}".into(),
    ];
    for id in 7..=12 {
        expected.push(response_ok(id, prelaunch));
    }
    rec.assert_events(&as_strs(&expected));
    rec.assert_tx(&cat(&[NEGOTIATE_OOB, &s.tx()]));
    assert_eq!(request(&v.line(1), None), NEGOTIATE_OOB);
}

#[test]
fn v33_pipelined_without_oob_replies_in_order() {
    let v = Vector::get("33-qsys-no-oob-pipelined");
    let s = Session::new(&v).send(&v, &[1, 2, 3, 4]);
    let rec = Setup::qmp().check(|h| {
        h.send(s.requests());
        h.feed_lines(&s.s2c());
    });
    let prelaunch = "{\"status\":\"prelaunch\",\"running\":false}";
    rec.assert_events(&as_strs(&[
        GREETING.into(),
        "Ready".into(),
        "Response #1 ok {}".into(),
        response_ok(2, prelaunch),
        response_ok(3, prelaunch),
        response_ok(4, prelaunch),
    ]));
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
}

#[test]
fn v40_guest_agent_session() {
    let v = Vector::get("40-qga-session");
    // The sync takes id 1. Lines 7 (exec-oob) and 8 (malformed) are not sent; their
    // id-less errors are replayed as captured.
    let s = Session::starting_at(&v, 2)
        .send(&v, &[1, 2, 3, 4, 5, 6])
        .reply_to(3, 3)
        .reply_to(5, 5)
        .reply_to(6, 6)
        .reply_to(7, 7);
    let rec = Setup::guest_agent().check(|h| {
        let sync = h.sync(1_234_567_890_123);
        assert_eq!(sync.get(), 1);
        // Exactly the first line of the capture: 0xFF, then guest-sync-delimited, no id.
        assert_eq!(h.transmitted(), v.line(0));
        assert_eq!(h.execute(&GuestSync { id: 42 }).get(), 2);
        assert_eq!(h.execute(&GuestPing).get(), 3);
        assert_eq!(h.execute(&GuestInfo).get(), 4);
        assert_eq!(h.execute(&GuestGetTime).get(), 5);
        assert_eq!(h.raw("guest-nonexistent").get(), 6);
        assert_eq!(h.raw("qmp_capabilities").get(), 7);
        assert_eq!(
            h.try_json("guest-ping", None, true),
            Err(ExecuteError::OobNotEnabled)
        );
        assert_eq!(h.transmitted(), v.line(0), "commands wait for the sync");
        h.feed_lines(&s.s2c());
        assert!(!h.client.is_syncing());
    });
    rec.assert_events(&[
        "Response #1 ok 1234567890123",
        "Response #2 ok 42",
        "Response #3 ok {}",
        "Response #4 ok <3062 bytes>",
        "Response #5 err CommandNotFound: Command guest-get-time has been disabled: the command is not allowed",
        "Response #6 err CommandNotFound: The command guest-nonexistent has not been found",
        "Response #7 err CommandNotFound: The command qmp_capabilities has not been found",
        "UnattributedError GenericError: QMP input member 'exec-oob' is unexpected",
        "UnattributedError GenericError: JSON parse error, expecting value",
    ]);
    // The agent's error for our own reset byte came before its sentinel: stale, dropped.
    assert_eq!(rec.stats.discarded_while_syncing, 1);
    assert_eq!(rec.stats.stray_reset_bytes, 0);
    rec.assert_tx(&cat(&[v.line(0), s.tx()]));
    let raw = rec.response(qmp_core::client::CommandId::new(4));
    let info = GuestInfo::decode_response(RawJson::parse(raw.as_bytes()).unwrap()).unwrap();
    assert_eq!(info.version, "10.0.2");
    let commands: Vec<_> = info.supported_commands.iter().map(Result::unwrap).collect();
    assert!(commands
        .iter()
        .any(|c| c.name == "guest-sync-delimited" && c.enabled));
    assert!(commands
        .iter()
        .any(|c| c.name == "guest-shutdown" && !c.success_response));
}

/// Every vector, replayed exactly as captured (no commands, end of stream at the end),
/// plus any vector present only in the shared directory: the same events whatever the
/// split, and never a panic.
#[test]
fn every_vector_replays_verbatim_identically_at_every_split() {
    let mut vectors: Vec<(String, Vec<u8>)> = support::vectors::ALL
        .iter()
        .map(|v| (v.name.to_owned(), v.s2c.to_vec()))
        .collect();
    if !support::MIRI {
        if let Some(dir) = support::vectors::shared_dir() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                if path.extension().is_some_and(|e| e == "s2c")
                    && !vectors.iter().any(|(n, _)| *n == name)
                {
                    vectors.push((name, std::fs::read(&path).unwrap()));
                }
            }
        }
    }
    for (name, s2c) in &vectors {
        if support::MIRI && s2c.len() > 2048 {
            // Under Miri the long vectors are left to their own tests above.
            continue;
        }
        let setup = if name.contains("qga") {
            Setup::guest_agent()
        } else {
            Setup::qmp()
        };
        let scenario = |h: &mut support::H<'_>| {
            h.feed_lines(s2c);
            h.eof();
        };
        let whole = setup.run(support::Split::Whole, scenario);
        let points = if s2c.len() > 20_000 {
            let messages = json_text::split_messages(s2c);
            support::sampled_split_points(&boundaries(&messages), setup.rx, whole.fed, 16, 1499)
        } else if support::MIRI {
            vec![s2c.len() / 2]
        } else {
            (0..=whole.fed).collect()
        };
        support::check_splits::<32>(&setup, &scenario, &whole, &points);
        assert!(
            whole
                .brief()
                .last()
                .is_some_and(|e| e.starts_with("Closed")),
            "{name}: {:?}",
            whole.brief()
        );
    }
}
