//! Replies that name a command but cannot be its answer, and replies that arrive before
//! their command was transmitted (issue #15). Every scenario runs at every split of the
//! server bytes (the harness's `check`), and no clock moves unless a test says so: a bad
//! reply must resolve its command at once, not at a deadline.
//!
//! Offsets in `MalformedReply` are offsets in the received stream: the negotiation
//! vector (163 bytes) comes first, so `base()` is added to the position in the line.

mod support;

use qmp_core::client::{CommandId, Config, MalformedReason, Output};
use qmp_core::commands::{QueryStatus, Quit};
use qmp_core::json::MAX_DEPTH_LIMIT;
use qmp_core::qga::GuestShutdown;
use support::vectors::Vector;
use support::{ms, Setup, H};

const GREETING: &str = "Greeting 10.0.2 [oob] \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"";
const STATUS: &str = r#"{"status": "running", "running": true}"#;
/// [`STATUS`] as the harness shows it (minified).
const STATUS_BRIEF: &str = r#"{"status":"running","running":true}"#;

/// Greeting and negotiation reply.
fn negotiation() -> &'static [u8] {
    Vector::get("02-negotiation").s2c
}

/// Where the bytes after the negotiation start in the received stream.
fn base() -> u64 {
    negotiation().len() as u64
}

fn status_reply(id: u64) -> Vec<u8> {
    format!("{{\"return\": {STATUS}, \"id\": {id}}}\r\n").into_bytes()
}

/// The position of the first `byte` in `line`, as a stream offset after the negotiation.
fn offset_of(line: &[u8], byte: u8) -> u64 {
    base() + line.iter().position(|&b| b == byte).expect("byte in line") as u64
}

fn malformed(id: u64, reason: MalformedReason, offset: u64) -> String {
    format!("CommandFailed #{id} MalformedReply {{ reason: {reason:?}, offset: {offset} }}")
}

/// Negotiates, sends command #1, feeds `bad` (which names #1), then sends #2 and feeds
/// its reply: the session goes on. Returns the events after `Ready`.
fn run_bad_reply(setup: Setup, bad: &[u8]) -> Vec<String> {
    let rec = setup.check(|h: &mut H<'_>| {
        h.feed_lines(negotiation());
        assert_eq!(h.execute(&QueryStatus).get(), 1);
        h.feed(bad);
        assert_eq!(h.client.in_flight(), 0, "the bad reply left #1 waiting");
        assert_eq!(h.execute(&QueryStatus).get(), 2);
        h.feed(&status_reply(2));
    });
    let brief = rec.brief();
    assert_eq!(brief[..2], [GREETING, "Ready"]);
    brief[2..].to_vec()
}

#[track_caller]
fn assert_fails_at_once(setup: Setup, bad: &[u8], reason: MalformedReason, offset: u64) {
    assert_eq!(
        run_bad_reply(setup, bad),
        [
            malformed(1, reason, offset),
            format!("Response #2 ok {STATUS_BRIEF}"),
        ],
        "{:?}",
        String::from_utf8_lossy(bad)
    );
}

#[test]
fn invalid_utf8_after_the_id_fails_the_command() {
    let bad = b"{\"id\": 1, \"return\": {\"status\": \"\xc3\x28\"}}\r\n";
    let reason = MalformedReason::Json(qmp_core::json::JsonErrorKind::InvalidUtf8);
    assert_fails_at_once(Setup::qmp(), bad, reason, offset_of(bad, 0x28));
}

#[test]
fn a_raw_nul_after_the_id_fails_the_command() {
    let bad = b"{\"id\": 1, \"return\": {\"status\": \"run\0ning\"}}\r\n";
    let reason = MalformedReason::Json(qmp_core::json::JsonErrorKind::ControlInString { byte: 0 });
    assert_fails_at_once(Setup::qmp(), bad, reason, offset_of(bad, 0));
}

#[test]
fn nesting_past_the_limit_after_the_id_fails_the_command() {
    let setup = Setup::qmp().config(Config::qmp().with_max_depth(4));
    let bad = b"{\"id\": 1, \"return\": [[[[1]]]]}\r\n";
    // `{` is depth 1, the fourth `[` depth 5.
    let at = base() + 23;
    assert_eq!(bad[23], b'[');
    let reason = MalformedReason::Json(qmp_core::json::JsonErrorKind::TooDeep { limit: 4 });
    assert_fails_at_once(setup, bad, reason, at);
}

#[test]
fn return_twice_fails_the_command() {
    let bad = b"{\"return\": {}, \"return\": {\"status\": \"running\"}, \"id\": 1}\r\n";
    assert_fails_at_once(
        Setup::qmp(),
        bad,
        MalformedReason::ConflictingMembers,
        base(),
    );
}

#[test]
fn return_and_error_fail_the_command() {
    let bad = b"{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}, \"return\": {}}\r\n";
    assert_fails_at_once(
        Setup::qmp(),
        bad,
        MalformedReason::ConflictingMembers,
        base(),
    );
}

#[test]
fn an_error_that_is_not_an_object_fails_the_command() {
    let bad = b"{\"error\": \"GenericError\", \"id\": 1}\r\n";
    assert_fails_at_once(Setup::qmp(), bad, MalformedReason::ErrorNotObject, base());
}

#[test]
fn the_same_id_twice_fails_the_command() {
    let bad = b"{\"id\": 1, \"return\": {}, \"id\": 1}\r\n";
    assert_fails_at_once(Setup::qmp(), bad, MalformedReason::DuplicateId, base());
}

#[test]
fn an_oversize_reply_with_its_id_first_fails_the_command() {
    // Already so before issue #15; here for completeness, at every split.
    let mut bad = b"{\"id\": 1, \"return\": \"".to_vec();
    bad.extend(std::iter::repeat_n(b'x', 2_000));
    bad.extend_from_slice(b"\"}\r\n");
    let events = run_bad_reply(Setup::qmp().rx(512), &bad);
    assert_eq!(
        events,
        [
            format!("CommandFailed #1 ReplyTooLarge {}", bad.len() - 2),
            format!("Response #2 ok {STATUS_BRIEF}"),
        ]
    );
}

#[test]
fn two_different_ids_name_no_command() {
    // Which of the two it answers cannot be told: reported as unknown, and both commands
    // still get their own replies.
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(negotiation());
        h.execute(&QueryStatus);
        h.execute(&QueryStatus);
        h.feed(b"{\"id\": 1, \"return\": {}, \"id\": 2}\r\n");
        assert_eq!(h.client.in_flight(), 2);
        h.feed(&status_reply(1));
        h.feed(&status_reply(2));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        r#"Unknown {"id":1,"return":{},"id":2}"#,
        &format!("Response #1 ok {STATUS_BRIEF}"),
        &format!("Response #2 ok {STATUS_BRIEF}"),
    ]);
}

#[test]
fn a_fault_before_the_id_is_reported_as_before() {
    // The id comes after the fault: nothing says which command it was. The command waits
    // for its deadline (or a reply), as before.
    let setup = Setup::qmp().config(Config::qmp().with_command_timeout(Some(ms(1_000))));
    let rec = setup.check(|h| {
        h.feed_lines(negotiation());
        h.execute(&QueryStatus);
        h.feed(b"{\"return\": {\"status\": \"\xc3\x28\"}, \"id\": 1}\r\n");
        assert_eq!(h.client.in_flight(), 1);
        h.advance_to(1_000);
    });
    let brief = rec.brief();
    assert_eq!(
        brief[2..],
        ["Malformed InvalidUtf8", "CommandFailed #1 TimedOut"]
    );
}

#[test]
fn a_bad_reply_naming_an_unsent_command_fails_nothing() {
    // Each bad message arrives before the request it names was written (the harness
    // writes it when it drains after the input): it is reported as before, and the
    // command waits for its own reply.
    for (bad, event) in [
        (
            &b"{\"id\": 1, \"return\": \"\0\"}\r\n"[..],
            "Malformed ControlInString { byte: 0 }",
        ),
        (
            b"{\"return\": {}, \"return\": {}, \"id\": 1}\r\n",
            r#"Unknown {"return":{},"return":{},"id":1}"#,
        ),
    ] {
        let rec = Setup::qmp().check(|h| {
            h.feed_lines(negotiation());
            h.execute_unsent(&QueryStatus);
            h.feed(bad);
            assert_eq!(h.client.in_flight(), 1);
            h.feed(&status_reply(1));
        });
        rec.assert_events(&[
            GREETING,
            "Ready",
            event,
            &format!("Response #1 ok {STATUS_BRIEF}"),
        ]);
    }
}

#[test]
fn a_reply_that_arrived_before_its_command_was_sent_is_unmatched() {
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(negotiation());
        // Not transmitted until the harness drains after the next input: that input's
        // bytes arrived first.
        let id = h.execute_unsent(&QueryStatus);
        h.feed(&status_reply(id.get()));
        assert_eq!(h.client.in_flight(), 1);
        h.feed(&status_reply(id.get()));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        &format!("Unmatched id=1 ok {STATUS_BRIEF}"),
        &format!("Response #1 ok {STATUS_BRIEF}"),
    ]);
    assert_eq!(rec.stats.unmatched_replies, 1);
}

#[test]
fn a_reply_that_began_before_its_command_was_sent_is_unmatched() {
    // The first half of the reply arrives before the request is written, the rest after.
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(negotiation());
        h.execute_unsent(&QueryStatus);
        h.feed(b"{\"return\": {}, ");
        h.feed(b"\"id\": 1}\r\n");
        assert_eq!(h.client.in_flight(), 1);
        h.feed(&status_reply(1));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Unmatched id=1 ok {}",
        &format!("Response #1 ok {STATUS_BRIEF}"),
    ]);
}

#[test]
fn an_unsent_silent_command_times_out_instead_of_succeeding() {
    // guest-shutdown succeeds silently when its deadline passes without an error, but
    // only if it was sent: held before the greeting, it was not.
    let config = Config::qmp()
        .with_greeting_timeout(None)
        .with_command_timeout(Some(ms(1_000)));
    let rec = Setup::qmp().config(config).check(|h| {
        h.execute(&GuestShutdown::default());
        h.advance_to(1_000);
    });
    rec.assert_events(&["CommandFailed #1 TimedOut"]);
}

#[test]
fn an_unsent_quit_is_not_a_success_at_end_of_stream() {
    let rec = Setup::qmp().check(|h| {
        h.execute(&Quit);
        h.eof();
    });
    rec.assert_events(&["CommandFailed #1 ConnectionClosed", "Closed EndOfStream"]);
}

#[test]
fn ids_start_at_the_configured_first_id() {
    let first = (1 << 52) + 7;
    let setup = Setup::qmp().config(Config::qmp().with_first_id(first));
    let rec = setup.check(|h| {
        h.feed_lines(negotiation());
        assert_eq!(h.execute(&QueryStatus).get(), first);
        assert_eq!(h.execute(&QueryStatus).get(), first + 1);
        // A reply naming id 1, as a restarted program's earlier run would get, is not ours.
        h.feed(&status_reply(1));
        h.feed(&status_reply(first + 1));
        h.feed(&status_reply(first));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        &format!("Unmatched id=1 ok {STATUS_BRIEF}"),
        &format!("Response #{} ok {STATUS_BRIEF}", first + 1),
        &format!("Response #{first} ok {STATUS_BRIEF}"),
    ]);
    assert!(rec.tx_text().contains(&format!(
        "{{\"execute\":\"query-status\",\"id\":{first}}}\n"
    )));
}

#[test]
fn ids_wrap_after_the_largest() {
    let setup = Setup::qmp().config(Config::qmp().with_first_id(u64::MAX));
    let rec = setup.check(|h| {
        h.feed_lines(negotiation());
        assert_eq!(h.execute(&QueryStatus), CommandId::new(u64::MAX));
        assert_eq!(h.execute(&QueryStatus), CommandId::new(0));
        h.feed(&status_reply(u64::MAX));
        h.feed(&status_reply(0));
    });
    let brief = rec.brief();
    assert_eq!(
        brief[2],
        format!("Response #{} ok {STATUS_BRIEF}", u64::MAX)
    );
    assert_eq!(brief[3], format!("Response #0 ok {STATUS_BRIEF}"));
}

#[test]
fn max_depth_beyond_the_ceiling_is_lowered_to_it() {
    assert_eq!(
        Config::qmp().with_max_depth(100_000).max_depth,
        MAX_DEPTH_LIMIT
    );
    assert_eq!(MAX_DEPTH_LIMIT, 256);
    assert_eq!(Config::qmp().with_max_depth(300).max_depth, 256);
    assert_eq!(Config::qmp().with_max_depth(12).max_depth, 12);
    // In force: 256 levels pass, 257 do not.
    let setup = Setup::qmp().config(Config::qmp().with_max_depth(100_000));
    let deep = |levels: usize| {
        let mut line = b"{\"id\": 1, \"return\": ".to_vec();
        line.extend(std::iter::repeat_n(b'[', levels - 1));
        line.extend(std::iter::repeat_n(b']', levels - 1));
        line.extend_from_slice(b"}\r\n");
        line
    };
    let ok = deep(256);
    let rec = setup.check(|h| {
        h.feed_lines(negotiation());
        h.execute(&QueryStatus);
        h.feed(&ok);
    });
    assert_eq!(rec.brief()[2], "Response #1 ok <510 bytes>");
    let too_deep = deep(257);
    let rec = setup.check(|h| {
        h.feed_lines(negotiation());
        h.execute(&QueryStatus);
        h.feed(&too_deep);
    });
    let reason = MalformedReason::Json(qmp_core::json::JsonErrorKind::TooDeep { limit: 256 });
    assert_eq!(rec.brief()[2..], [malformed(1, reason, base() + 20 + 255)]);
}

#[test]
fn malformed_reply_display_says_why_and_where() {
    let failure = qmp_core::client::CommandFailure::MalformedReply {
        reason: MalformedReason::DuplicateId,
        offset: 42,
    };
    assert_eq!(
        failure.to_string(),
        "malformed reply at byte 42: id member twice"
    );
    let json = MalformedReason::Json(qmp_core::json::JsonErrorKind::InvalidUtf8);
    assert_eq!(json.to_string(), "invalid JSON: invalid utf-8");
    // The failure is an ordinary event, copyable like the others.
    let event = Output::CommandFailed {
        id: CommandId::new(1),
        reason: failure,
    };
    let copy = event;
    assert!(matches!(copy, Output::CommandFailed { .. }));
}

#[test]
fn two_ids_before_a_fault_name_a_command_only_when_they_agree() {
    let reason = MalformedReason::Json(qmp_core::json::JsonErrorKind::ControlInString { byte: 0 });
    let same = b"{\"id\": 1, \"id\": 1, \"return\": \"\0\"}\r\n";
    assert_fails_at_once(Setup::qmp(), same, reason, offset_of(same, 0));
    let rec = Setup::qmp().check(|h| {
        h.feed_lines(negotiation());
        h.execute(&QueryStatus);
        h.execute(&QueryStatus);
        h.feed(b"{\"id\": 1, \"id\": 2, \"return\": \"\0\"}\r\n");
        assert_eq!(h.client.in_flight(), 2);
        h.feed(&status_reply(2));
        h.feed(&status_reply(1));
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Malformed ControlInString { byte: 0 }",
        &format!("Response #2 ok {STATUS_BRIEF}"),
        &format!("Response #1 ok {STATUS_BRIEF}"),
    ]);
}
