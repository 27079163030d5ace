//! Deadlines under a virtual clock: `poll_timeout` is the earliest deadline,
//! `handle_timeout` fires exactly at it (not a microsecond before), late replies are
//! dropped and counted, spurious calls are harmless, and `cancel` gives a command up.

mod support;

use qmp_core::client::{CommandId, Config, State};
use qmp_core::commands::{QueryStatus, QueryVersion};
use qmp_core::time::{Duration, Instant};
use support::vectors::{reply, Vector};
use support::{ms, Setup};

const GREETING: &str = "Greeting 10.0.2 [oob] \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"";

fn ready() -> &'static [u8] {
    Vector::get("02-negotiation").s2c
}

fn version_reply(id: u64) -> Vec<u8> {
    reply(&Vector::get("05-query-version").message(2), id)
}

fn at(ms: u64) -> Option<Instant> {
    Some(Instant::from_millis(ms))
}

#[test]
fn poll_timeout_is_the_earliest_deadline() {
    let setup = Setup::qmp().config(Config::qmp().with_command_timeout(Some(ms(30_000))));
    let rec = setup.check(|h| {
        // Only the greeting deadline at first.
        assert_eq!(h.client.poll_timeout(), at(10_000));
        h.set_time(1_000);
        h.feed(ready());
        assert_eq!(
            h.client.poll_timeout(),
            None,
            "no greeting deadline once greeted"
        );
        h.set_time(2_000);
        let a = h.execute(&QueryStatus);
        assert_eq!(h.client.poll_timeout(), at(32_000));
        h.set_time(3_000);
        let b = h.execute(&QueryStatus);
        assert_eq!(h.client.poll_timeout(), at(32_000));
        assert!(h.client.set_deadline(b, at(5_000)));
        assert_eq!(h.client.poll_timeout(), at(5_000));
        assert!(h.client.set_deadline(a, None));
        assert_eq!(h.client.poll_timeout(), at(5_000));
        h.advance_to(4_999);
        assert_eq!(h.event_count(), 2);
        h.advance_to(5_000);
        assert_eq!(h.client.poll_timeout(), None, "a has no deadline any more");
        assert!(!h.client.set_deadline(b, at(6_000)), "b is resolved");
        assert!(h.client.set_deadline(a, at(7_000)));
        assert_eq!(h.client.poll_timeout(), at(7_000));
        h.feed(&version_reply(a.get()));
        assert_eq!(h.client.poll_timeout(), None);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "CommandFailed #2 TimedOut",
        "Response #1 ok {\"qemu\":{\"micro\":2,\"minor\":0,\"major\":10},\"package\":\"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}",
    ]);
}

#[test]
fn handle_timeout_fires_at_the_deadline_not_a_microsecond_before() {
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.set_time(1);
        let id = h.execute(&QueryVersion);
        let deadline = Instant::from_millis(1) + Duration::from_secs(30);
        assert_eq!(h.client.poll_timeout(), Some(deadline));
        h.advance_to_instant(Instant::from_micros(deadline.as_micros() - 1));
        assert_eq!(h.client.in_flight(), 1);
        assert_eq!(h.event_count(), 2);
        h.advance_to_instant(deadline);
        assert_eq!(h.client.in_flight(), 0);
        assert_eq!(h.client.poll_timeout(), None);
        // The reply arrives late: dropped and counted, never delivered.
        h.feed(&version_reply(id.get()));
        assert_eq!(h.client.stats().late_replies, 1);
    });
    rec.assert_events(&[GREETING, "Ready", "CommandFailed #1 TimedOut"]);
    assert_eq!(rec.stats.late_replies, 1);
    assert_eq!(rec.stats.unmatched_replies, 0);
}

#[test]
fn late_error_replies_are_dropped_too_and_other_replies_still_match() {
    let rec = Setup::qmp()
        .config(Config::qmp().with_command_timeout(Some(ms(100))))
        .check(|h| {
            h.feed(ready());
            h.execute(&QueryStatus);
            h.set_time(50);
            h.execute(&QueryStatus);
            h.advance_to(100);
            h.feed(
                b"{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"late\"}}\r\n",
            );
            h.feed(b"{\"return\": {}, \"id\": 2}\r\n");
            // Twice late: still only counted.
            h.feed(b"{\"return\": {}, \"id\": 1}\r\n");
        });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "CommandFailed #1 TimedOut",
        "Response #2 ok {}",
    ]);
    assert_eq!(rec.stats.late_replies, 2);
}

#[test]
fn spurious_handle_timeout_calls_are_harmless() {
    let rec = Setup::qmp().check(|h| {
        for t in [0, 0, 1, 5_000, 9_999] {
            h.advance_to(t);
        }
        assert_eq!(h.client.state(), State::AwaitingGreeting);
        h.feed(ready());
        for t in [9_999, 10_000, 10_000, 20_000] {
            h.advance_to(t);
        }
        let id = h.execute(&QueryVersion);
        for t in [20_001, 30_000, 49_999, 49_999] {
            h.advance_to(t);
        }
        h.feed(&version_reply(id.get()));
        for t in [50_000, 100_000, u64::MAX / 1_000] {
            h.advance_to(t);
        }
        assert!(h.client.sends_at_once());
    });
    assert_eq!(rec.brief().len(), 3);
    assert_eq!(rec.stats.late_replies, 0);
}

#[test]
fn a_clock_going_backwards_delays_deadlines_but_breaks_nothing() {
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.set_time(10_000);
        h.execute(&QueryStatus);
        // The harness's clock only moves forward; call the client directly.
        h.client.handle_timeout(Instant::from_millis(5));
        h.client.handle_timeout(Instant::ZERO);
        h.drain();
        assert_eq!(h.client.in_flight(), 1);
        h.advance_to(40_000);
    });
    rec.assert_events(&[GREETING, "Ready", "CommandFailed #1 TimedOut"]);
}

#[test]
fn cancel_then_reply_is_dropped_and_counted() {
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        let a = h.execute(&QueryVersion);
        let b = h.execute(&QueryVersion);
        assert!(h.cancel(a));
        assert!(!h.cancel(a), "already given up");
        assert!(!h.cancel(CommandId::new(99)), "never issued");
        assert_eq!(h.client.in_flight(), 1);
        assert_eq!(h.client.poll_timeout(), at(30_000), "b's deadline remains");
        h.feed(&version_reply(a.get()));
        h.feed(&version_reply(b.get()));
        assert!(!h.cancel(b), "already resolved");
        // Nothing fires for the cancelled command.
        h.advance_to(60_000);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "Response #2 ok {\"qemu\":{\"micro\":2,\"minor\":0,\"major\":10},\"package\":\"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}",
    ]);
    assert_eq!(rec.stats.late_replies, 1);
}

#[test]
fn cancel_of_a_timed_out_command_not_yet_reported_keeps_its_event() {
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        let id = h.execute(&QueryStatus);
        // Expire without draining, then try to cancel.
        h.client.handle_timeout(Instant::from_secs(30));
        assert!(!h.client.cancel(id), "already resolved (timed out)");
        h.drain();
    });
    rec.assert_events(&[GREETING, "Ready", "CommandFailed #1 TimedOut"]);
}

#[test]
fn without_command_timeout_nothing_expires() {
    let setup = Setup::qmp().config(Config::qmp().with_command_timeout(None));
    let rec = setup.check(|h| {
        h.feed(ready());
        h.execute(&QueryStatus);
        assert_eq!(h.client.poll_timeout(), None);
        h.advance_to(24 * 3_600_000);
        assert_eq!(h.client.in_flight(), 1);
        // A per-command deadline still works.
        let id = h.execute(&QueryStatus);
        assert!(h.client.set_deadline(id, at(24 * 3_600_000 + 1)));
        h.advance_to(24 * 3_600_000 + 1);
    });
    rec.assert_events(&[GREETING, "Ready", "CommandFailed #2 TimedOut"]);
    assert_eq!(rec.epilogue[0].brief, "CommandFailed #1 ConnectionClosed");
}

#[test]
fn commands_held_before_negotiation_time_out_too() {
    // The greeting is slow (another client holds the monitor, with no greeting timeout),
    // and a held command's own deadline passes first: it is resolved, once.
    let setup = Setup::qmp().config(
        Config::qmp()
            .with_greeting_timeout(None)
            .with_command_timeout(Some(ms(1_000))),
    );
    let rec = setup.check(|h| {
        let id = h.execute(&QueryVersion);
        assert_eq!(h.client.poll_timeout(), at(1_000));
        h.advance_to(1_000);
        h.advance_to(5_000);
        h.feed(ready());
        // If the held request still goes out after negotiation, its reply is late.
        h.feed(&version_reply(id.get()));
        assert_eq!(h.client.stats().unmatched_replies, 0);
    });
    rec.assert_events(&["CommandFailed #1 TimedOut", GREETING, "Ready"]);
    assert_eq!(rec.stats.unmatched_replies, 0);
    assert_eq!(rec.stats.late_replies, 1);
}

#[test]
fn timeouts_after_close_do_nothing() {
    let rec = Setup::qmp().check(|h| {
        h.feed(ready());
        h.execute(&QueryStatus);
        h.eof();
        h.advance_to(100_000);
        assert_eq!(h.client.poll_timeout(), None);
    });
    rec.assert_events(&[
        GREETING,
        "Ready",
        "CommandFailed #1 ConnectionClosed",
        "Closed EndOfStream",
    ]);
}
