//! Guest-agent mode: `sync` (0xFF + `guest-sync-delimited`), stale data before the
//! agent's 0xFF sentinel, commands held while syncing, sync timeouts and supersession, and
//! the commands that never reply on success.

mod support;

use qmp_core::client::{Config, ExecuteError, State};
use qmp_core::qga::{GuestPing, GuestShutdown, GuestSuspendDisk, GuestSync};
use support::vectors::Vector;
use support::{ms, Setup};

fn sync_line(value: u64) -> Vec<u8> {
    let request =
        format!("{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{value}}}}}\n");
    [&[0xFF][..], request.as_bytes()].concat()
}

#[test]
fn sync_writes_the_reset_byte_and_guest_sync_delimited_without_id() {
    let v = Vector::get("40-qga-session");
    assert_eq!(sync_line(1_234_567_890_123), v.line(0));
    for value in [0, 1, 42, u64::from(u32::MAX), i64::MAX as u64] {
        let rec = Setup::guest_agent().check(|h| {
            assert_eq!(h.sync(value).get(), 1);
            assert!(h.client.is_syncing());
            assert!(!h.client.sends_at_once());
            assert_eq!(h.client.state(), State::Ready);
        });
        rec.assert_tx(&sync_line(value));
    }
}

#[test]
fn sync_is_refused_on_a_qmp_session_without_using_an_id() {
    let rec = Setup::qmp().check(|h| {
        assert_eq!(h.try_sync(7), Err(ExecuteError::NotGuestAgent));
        assert_eq!(h.raw("query-status").get(), 1);
    });
    assert!(rec.tx.is_empty());
}

/// Without the crate's `guest-agent` feature (the firmware probe's build) sync says so,
/// rather than blaming the session; `scripts/test.sh` also runs this test in that build.
#[test]
fn sync_on_a_guest_agent_session_needs_the_guest_agent_feature() {
    let rec = Setup::guest_agent().check(|h| {
        if cfg!(feature = "guest-agent") {
            assert_eq!(h.try_sync(7).map(|id| id.get()), Ok(1));
        } else {
            assert_eq!(h.try_sync(7), Err(ExecuteError::SyncNotBuilt));
        }
    });
    assert_eq!(rec.tx.is_empty(), !cfg!(feature = "guest-agent"));
}

#[test]
fn sync_needs_the_sentinel_right_before_the_right_value() {
    let rec = Setup::guest_agent().check(|h| {
        h.sync(42);
        // Without the sentinel (plain guest-sync output), a stale delimited answer with
        // another value, the right value after that stale answer (the sentinel was
        // followed by something else already), a string: all stale.
        h.feed(b"{\"return\": 42}\n");
        h.feed(b"\xff{\"return\": 41}\n");
        h.feed(b"{\"return\": 42}\n");
        h.feed(b"{\"return\": \"42\"}\n");
        assert!(h.client.is_syncing());
        h.feed(b"\xff{\"return\": 42}\n");
        assert!(!h.client.is_syncing());
        // Once synced, an id-less reply is unmatched again.
        h.feed(b"{\"return\": 42}\n");
    });
    rec.assert_events(&["Response #1 ok 42", "Unmatched id=- ok 42"]);
    assert_eq!(rec.stats.discarded_while_syncing, 4);
}

#[test]
fn an_error_behind_a_sentinel_does_not_end_the_sync() {
    // The agent prepends its sentinel only to the answer of guest-sync-delimited, which
    // cannot fail once it runs: an error right after a 0xFF is stale, and the sync goes
    // on to its own answer.
    let rec = Setup::guest_agent().check(|h| {
        h.sync(9);
        h.feed(b"\xff{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\ufffd'\"}}\n");
        assert!(h.client.is_syncing());
        h.feed(b"\xff{\"return\": 9}\n");
    });
    rec.assert_events(&["Response #1 ok 9"]);
    assert_eq!(rec.stats.discarded_while_syncing, 1);
}

#[test]
fn a_refused_sync_ends_at_its_deadline() {
    // An agent started with --block-rpcs=guest-sync-delimited answers with an id-less
    // error (no sentinel): it cannot be told from a stale one, so the sync times out.
    let setup =
        Setup::guest_agent().config(Config::guest_agent().with_command_timeout(Some(ms(1_000))));
    let rec = setup.check(|h| {
        h.sync(9);
        h.feed(b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command guest-sync-delimited has been disabled\"}}\n");
        h.advance_to(1_000);
    });
    rec.assert_events(&["CommandFailed #1 TimedOut"]);
    assert_eq!(rec.stats.discarded_while_syncing, 1);
}

#[test]
fn commands_before_the_sync_are_answered_and_commands_during_it_are_held() {
    let rec = Setup::guest_agent().check(|h| {
        let before = h.execute(&GuestPing);
        assert_eq!(before.get(), 1);
        h.sync(5);
        let during = h.execute(&GuestSync { id: 77 });
        assert_eq!(during.get(), 3);
        assert_eq!(
            h.transmitted(),
            [
                &b"{\"execute\":\"guest-ping\",\"id\":1}\n"[..],
                &sync_line(5)
            ]
            .concat(),
            "the command executed during the sync waits"
        );
        // The agent answers the ping (sent before the sync), then the sync.
        h.feed(b"{\"return\": {}, \"id\": 1}\n\xff{\"return\": 5}\n");
        h.feed(b"{\"return\": 77, \"id\": 3}\n");
    });
    rec.assert_events(&["Response #1 ok {}", "Response #2 ok 5", "Response #3 ok 77"]);
    assert!(rec
        .tx
        .ends_with(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":77},\"id\":3}\n"));
}

#[test]
fn sync_timeout_releases_held_commands() {
    let setup =
        Setup::guest_agent().config(Config::guest_agent().with_command_timeout(Some(ms(1_000))));
    let rec = setup.check(|h| {
        h.sync(5);
        h.set_time(500);
        h.execute(&GuestPing);
        assert_eq!(h.transmitted(), sync_line(5));
        h.advance_to(1_000);
        assert!(!h.client.is_syncing());
        assert!(h
            .transmitted()
            .ends_with(b"{\"execute\":\"guest-ping\",\"id\":2}\n"));
        h.feed(b"{\"return\": {}, \"id\": 2}\n");
    });
    rec.assert_events(&["CommandFailed #1 TimedOut", "Response #2 ok {}"]);
}

#[test]
fn sync_reply_after_its_timeout_is_dropped_and_counted_as_late() {
    // The resolution guarantee (client module docs): a reply that arrives after its
    // command timed out is dropped and counted in `late_replies`; it never reaches anyone.
    let setup =
        Setup::guest_agent().config(Config::guest_agent().with_command_timeout(Some(ms(1_000))));
    let rec = setup.check(|h| {
        h.sync(5);
        h.advance_to(1_000);
        h.feed(b"\xff{\"return\": 5}\n");
    });
    rec.assert_events(&["CommandFailed #1 TimedOut"]);
    assert_eq!(rec.stats.late_replies, 1, "{:?}", rec.stats);
}

#[test]
fn a_new_sync_supersedes_the_previous_one() {
    let rec = Setup::guest_agent().check(|h| {
        h.sync(1);
        h.sync(2);
        assert!(h.client.is_syncing());
        // Both requests went out; the agent answers both, each behind a sentinel.
        h.feed(b"\xff{\"return\": 1}\n\xff{\"return\": 2}\n");
        assert!(!h.client.is_syncing());
    });
    rec.assert_events(&["CommandFailed #1 TimedOut", "Response #2 ok 2"]);
    rec.assert_tx(&[sync_line(1), sync_line(2)].concat());
}

#[test]
fn cancelling_the_sync_stops_holding_commands() {
    // `cancel` gives a command up "as if" it timed out, without an event; for a sync that
    // must also end the sync, or every later command waits for a reply that was given up.
    let rec = Setup::guest_agent().check(|h| {
        let sync = h.sync(5);
        h.execute(&GuestPing);
        assert!(h.cancel(sync));
        assert!(
            !h.client.is_syncing(),
            "still syncing after the sync was cancelled"
        );
        assert!(
            h.transmitted()
                .ends_with(b"{\"execute\":\"guest-ping\",\"id\":2}\n"),
            "the held command was not released"
        );
    });
    assert!(rec.brief().is_empty());
}

#[test]
fn end_of_stream_during_sync() {
    let rec = Setup::guest_agent().check(|h| {
        h.execute(&GuestShutdown::default());
        h.sync(3);
        h.execute(&GuestPing);
        h.feed(b"{\"return\": {}, \"id\"");
        h.eof();
    });
    // Commands resolved together come in no particular order; Closed comes last.
    let mut brief = rec.brief();
    assert_eq!(brief.pop().as_deref(), Some("Closed EndOfStream truncated"));
    brief.sort();
    assert_eq!(
        brief,
        [
            "CommandFailed #2 ConnectionClosed",
            "CommandFailed #3 ConnectionClosed",
            "Response #1 ok {}",
        ]
    );
}

#[test]
fn a_sync_reply_shows_earlier_silent_commands_finished() {
    // Client module docs: a silent command is resolved as a success by "a reply to a
    // *later* command (the agent answers strictly in order)". The sync is a later command
    // with its own id, answered in order.
    let setup =
        Setup::guest_agent().config(Config::guest_agent().with_command_timeout(Some(ms(2_000))));
    let rec = setup.check(|h| {
        h.execute(&GuestSuspendDisk);
        h.set_time(1_000);
        h.sync(8);
        h.feed(b"\xff{\"return\": 8}\n");
        assert_eq!(
            h.client.in_flight(),
            0,
            "guest-suspend-disk still waits for its deadline after the sync reply"
        );
        h.advance_to(3_000);
    });
    let mut brief = rec.brief();
    brief.sort();
    assert_eq!(brief, ["Response #1 ok {}", "Response #2 ok 8"]);
}

#[test]
fn sync_that_does_not_fit_the_transmit_buffer() {
    let rec = Setup::guest_agent().tx(40).check(|h| {
        match h.try_sync(1) {
            Err(ExecuteError::TxFull {
                required,
                available,
            }) => {
                assert_eq!(required, sync_line(1).len());
                assert_eq!(available, 40);
            }
            other => panic!("expected TxFull, got {other:?}"),
        }
        assert_eq!(h.execute(&GuestPing).get(), 1);
    });
    rec.assert_tx(b"{\"execute\":\"guest-ping\",\"id\":1}\n");
}

#[test]
fn the_agent_sends_no_greeting_and_no_events() {
    let greeting = Vector::get("01-greeting").s2c;
    let rec = Setup::guest_agent().check(|h| {
        h.feed(greeting);
        h.execute(&GuestPing);
        h.feed(b"{\"return\": {}, \"id\": 1}\n");
    });
    let brief = rec.brief();
    assert!(brief[0].starts_with("Unknown {\"QMP\""), "{brief:?}");
    assert_eq!(brief[1], "Response #1 ok {}");
    rec.assert_tx(b"{\"execute\":\"guest-ping\",\"id\":1}\n");
}

// ---- stale output of an earlier client (issue #15) ----

/// The agent's answer to this client's `0xFF`: an id-less parse error (QMP.md §10).
const RESET_ERROR: &[u8] =
    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\ufffd'\"}}\n";

#[test]
fn a_stale_reply_naming_a_command_held_behind_the_sync_is_discarded() {
    // A restarted program numbers from 1 again; the pipe still holds the earlier run's
    // reply to its #2. This run's #2 is held behind the sync (not transmitted): the stale
    // reply cannot be its answer.
    let rec = Setup::guest_agent().check(|h| {
        assert_eq!(h.sync(5).get(), 1);
        assert_eq!(h.execute(&GuestPing).get(), 2);
        h.feed(b"{\"return\": {\"stale\": true}, \"id\": 2}\n");
        h.feed(RESET_ERROR);
        h.feed(b"\xff{\"return\": 5}\n");
        assert!(h
            .transmitted()
            .ends_with(b"{\"execute\":\"guest-ping\",\"id\":2}\n"));
        h.feed(b"{\"return\": {}, \"id\": 2}\n");
    });
    rec.assert_events(&["Response #1 ok 5", "Response #2 ok {}"]);
    assert_eq!(rec.stats.discarded_while_syncing, 2);
    assert_eq!(rec.stats.unmatched_replies, 0);
}

#[test]
fn a_stale_reply_naming_the_syncs_own_id_is_discarded() {
    // The sync's request carries no id, so nothing with an id answers it.
    let rec = Setup::guest_agent().check(|h| {
        assert_eq!(h.sync(5).get(), 1);
        h.feed(b"{\"return\": 99, \"id\": 1}\n");
        h.feed(b"\xff{\"return\": 99, \"id\": 1}\n");
        assert!(h.client.is_syncing());
        h.feed(b"\xff{\"return\": 5}\n");
    });
    rec.assert_events(&["Response #1 ok 5"]);
    assert_eq!(rec.stats.discarded_while_syncing, 2);
}

#[test]
fn a_stale_delimited_answer_then_the_error_for_our_reset_byte_are_discarded() {
    // An earlier client's sync answer (another value) is still in the pipe; then the
    // agent answers this client's 0xFF with an id-less error, then its sync.
    let rec = Setup::guest_agent().check(|h| {
        h.sync(1_234);
        h.feed(b"\xff{\"return\": 777}\n");
        h.feed(RESET_ERROR);
        assert!(h.client.is_syncing());
        h.feed(b"\xff{\"return\": 1234}\n");
        h.execute(&GuestPing);
        h.feed(b"{\"return\": {}, \"id\": 2}\n");
    });
    rec.assert_events(&["Response #1 ok 1234", "Response #2 ok {}"]);
    assert_eq!(rec.stats.discarded_while_syncing, 2);
    assert_eq!(rec.stats.unmatched_replies, 0);
    assert_eq!(rec.stats.unattributed_errors, 0);
}

#[test]
fn everything_else_before_the_answer_is_discarded_and_counted() {
    // Half a message from an earlier client, garbage, an oversize reply, events and
    // unknown messages: none of it is reported while the sync runs.
    let mut big = b"{\"return\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 600));
    big.extend_from_slice(b"\"}\n");
    let rec = Setup::guest_agent().rx(256).check(|h| {
        h.sync(8);
        h.feed(b"\"id\": 3}\n");
        h.feed(b"{\"return\": \"\xc3\x28\"}\n");
        h.feed(&big);
        h.feed(b"{\"event\": \"STOP\"}\n");
        h.feed(b"[1, 2]\n");
        h.feed(b"{\"return\": {}, \"return\": {}, \"id\": 9}\n");
        h.feed(b"\xff{\"return\": 8}\n");
    });
    rec.assert_events(&["Response #1 ok 8"]);
    // The half message and the invalid UTF-8 are two malformed messages.
    assert_eq!(rec.stats.discarded_while_syncing, 7);
    assert_eq!(rec.stats.malformed, 2);
    assert_eq!(rec.stats.oversize, 1);
}

#[test]
fn a_sync_answer_that_arrived_before_the_sync_was_sent_is_stale() {
    // An earlier run sent the same value and its answer is in the pipe before this run's
    // request went out: only an answer begun after the request was written counts.
    let rec = Setup::guest_agent().check(|h| {
        h.sync_unsent(6);
        h.feed(b"\xff{\"return\": 6}\n");
        assert!(h.client.is_syncing());
        h.feed(b"\xff{\"return\": 6}\n");
    });
    rec.assert_events(&["Response #1 ok 6"]);
    assert_eq!(rec.stats.discarded_while_syncing, 1);
}

#[test]
fn replies_to_commands_sent_before_the_sync_still_arrive_good_or_bad() {
    let rec = Setup::guest_agent().check(|h| {
        h.execute(&GuestPing);
        h.execute(&GuestPing);
        h.sync(3);
        h.feed(b"{\"return\": {}, \"id\": 1}\n");
        h.feed(b"{\"id\": 2, \"return\": {\"a\": \"\0\"}}\n");
        h.feed(b"\xff{\"return\": 3}\n");
    });
    rec.assert_events(&[
        "Response #1 ok {}",
        "CommandFailed #2 MalformedReply { reason: Json(ControlInString { byte: 0 }), offset: 51 }",
        "Response #3 ok 3",
    ]);
}

#[test]
fn a_sync_answer_does_not_resolve_a_silent_command_held_behind_it() {
    // Sync A waits; guest-shutdown is held; sync B supersedes A and goes out before the
    // held command. B's answer says nothing about a command not yet sent.
    let setup =
        Setup::guest_agent().config(Config::guest_agent().with_command_timeout(Some(ms(1_000))));
    let rec = setup.check(|h| {
        h.sync(1);
        h.execute(&GuestShutdown::default());
        h.sync(2);
        h.feed(b"\xff{\"return\": 2}\n");
        assert_eq!(h.client.in_flight(), 1, "{:?}", h.brief());
        assert!(h
            .transmitted()
            .ends_with(b"{\"execute\":\"guest-shutdown\",\"id\":2}\n"));
        h.eof();
    });
    rec.assert_events(&[
        "CommandFailed #1 TimedOut",
        "Response #3 ok 2",
        "Response #2 ok {}",
        "Closed EndOfStream",
    ]);
}

#[test]
fn seeded_syncs_send_values_from_the_seed() {
    let values = |seed: u64| {
        let config = Config::guest_agent().with_sync_seed(seed);
        let rec = Setup::guest_agent().config(config).check(|h| {
            let first = h.sync_seeded();
            let second = h.sync_seeded();
            assert_eq!((first.get(), second.get()), (1, 2));
        });
        let text = rec.tx_text();
        let values: Vec<u64> = text
            .split("\"arguments\":{\"id\":")
            .skip(1)
            .map(|rest| rest.split('}').next().unwrap().parse().unwrap())
            .collect();
        values
    };
    let a = values(0x5eed);
    assert_eq!(a.len(), 2);
    assert_ne!(a[0], a[1]);
    assert!(a.iter().all(|&v| v < 1 << 53), "{a:?}");
    assert_eq!(values(0x5eed), a, "the same seed gives the same values");
    let b = values(0x5eee);
    assert!(a[0] != b[0] && a[1] != b[1], "{a:?} {b:?}");
}

/// The value of the `n`-th seeded sync for `config`'s seed, as the client sends it.
fn seeded_sync_line(config: Config, n: usize) -> Vec<u8> {
    let rec = Setup::guest_agent().config(config).check(|h| {
        for _ in 0..n {
            h.sync_seeded();
        }
    });
    let lines: Vec<&[u8]> = rec.tx.split_inclusive(|&b| b == b'\n').collect();
    lines[n - 1].to_vec()
}

#[test]
fn a_timeout_resynchronises_before_anything_else_is_sent() {
    // The agent may still answer a command that timed out: the client sends 0xFF +
    // guest-sync-delimited by itself, holds what is executed after it, drops the late
    // answer, and reports nothing for its own sync.
    let config = Config::guest_agent()
        .with_command_timeout(Some(ms(1_000)))
        .with_sync_seed(0x5eed);
    let resync = seeded_sync_line(config, 1);
    let value: u64 = String::from_utf8_lossy(&resync)
        .split("\"id\":")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .and_then(|digits| digits.parse().ok())
        .expect("a seeded value");
    let rec = Setup::guest_agent().config(config).check(|h| {
        let slow = h.execute(&GuestPing);
        assert_eq!(slow.get(), 1);
        h.advance_to(1_000);
        assert!(h.client.is_syncing(), "the client resynchronises by itself");
        assert!(!h.client.sends_at_once());
        let after = h.execute(&GuestSync { id: 77 });
        assert_eq!(after.get(), 3, "the resync took id 2");
        assert_eq!(
            h.transmitted(),
            [&b"{\"execute\":\"guest-ping\",\"id\":1}\n"[..], &resync].concat(),
            "the command executed after the timeout waits for the resync"
        );
        // The agent finally answers the ping (late), then the resync.
        h.feed(b"{\"return\": {}, \"id\": 1}\n");
        h.feed(&[&[0xFF][..], format!("{{\"return\": {value}}}\n").as_bytes()].concat());
        assert!(!h.client.is_syncing());
        assert!(h
            .transmitted()
            .ends_with(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":77},\"id\":3}\n"));
        h.feed(b"{\"return\": 77, \"id\": 3}\n");
    });
    rec.assert_events(&[
        "CommandFailed #1 TimedOut",
        "Resynchronised",
        "Response #3 ok 77",
    ]);
    assert_eq!(rec.stats.resyncs, 1);
    assert_eq!(rec.stats.late_replies, 1, "the ping's answer");
    assert_eq!(rec.stats.discarded_while_syncing, 0);
}

#[test]
fn an_unanswered_resync_times_out_without_an_event_and_releases_held_commands() {
    let config = Config::guest_agent().with_command_timeout(Some(ms(1_000)));
    let rec = Setup::guest_agent().config(config).check(|h| {
        h.execute(&GuestPing);
        h.advance_to(1_000);
        assert!(h.client.is_syncing());
        h.set_time(1_500);
        h.execute(&GuestPing);
        h.advance_to(2_000);
        assert!(!h.client.is_syncing(), "the resync gave up at its deadline");
        assert!(h
            .transmitted()
            .ends_with(b"{\"execute\":\"guest-ping\",\"id\":3}\n"));
        h.feed(b"{\"return\": {}, \"id\": 3}\n");
    });
    rec.assert_events(&["CommandFailed #1 TimedOut", "Response #3 ok {}"]);
    assert_eq!(rec.stats.resyncs, 1, "a resync timing out starts no other");
}

#[test]
fn a_callers_sync_under_way_is_the_resync() {
    let config = Config::guest_agent().with_command_timeout(Some(ms(1_000)));
    let rec = Setup::guest_agent().config(config).check(|h| {
        h.execute(&GuestPing);
        h.set_time(500);
        h.sync(5);
        h.advance_to(1_000);
        h.feed(b"\xff{\"return\": 5}\n");
    });
    rec.assert_events(&["CommandFailed #1 TimedOut", "Response #2 ok 5"]);
    assert_eq!(rec.stats.resyncs, 0);
}

#[test]
fn a_resync_without_room_starts_once_there_is() {
    // Two entries: the timed-out command holds one until it is reported, the second
    // command the other; the resync starts at the first deadline check with a free entry.
    let config = Config::guest_agent().with_command_timeout(Some(ms(1_000)));
    let rec = Setup::guest_agent().config(config).check_n::<2, _>(|h| {
        h.execute(&GuestPing);
        h.set_time(100);
        h.execute(&GuestPing);
        h.advance_to(1_000);
        h.feed(b"{\"return\": {}, \"id\": 2}\n");
        assert!(!h.client.is_syncing(), "no free entry at 1,000 ms");
        h.advance_to(1_001);
        assert!(h.client.is_syncing());
    });
    rec.assert_events(&["CommandFailed #1 TimedOut", "Response #2 ok {}"]);
    assert_eq!(rec.stats.resyncs, 1);
}

#[test]
fn qmp_timeouts_do_not_resynchronise() {
    let rec = Setup::qmp()
        .config(Config::qmp().with_command_timeout(Some(ms(1_000))))
        .check(|h| {
            h.feed(Vector::get("02-negotiation").s2c);
            h.raw("query-status");
            h.advance_to(1_000);
        });
    assert_eq!(rec.stats.resyncs, 0);
    assert!(!rec.tx_text().contains("guest-sync"));
}

#[test]
fn max_in_flight_refuses_more_commands_retryably_but_not_a_sync() {
    let config = Config::guest_agent().with_max_in_flight(2);
    Setup::guest_agent().config(config).check(|h| {
        h.execute(&GuestPing);
        h.execute(&GuestPing);
        let refused = h.try_execute(&GuestPing);
        assert_eq!(refused, Err(ExecuteError::TooManyInFlight { limit: 2 }));
        assert!(h.client.is_retryable(&refused.unwrap_err()));
        h.sync(9);
        h.feed(b"{\"return\": {}, \"id\": 1}\n");
        assert!(h.try_execute(&GuestPing).is_ok(), "one came back");
    });
}
