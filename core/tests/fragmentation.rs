//! Fragmentation: the client must report the same events, send the same bytes and end in
//! the same state however the server's bytes are cut into reads, whichever input path
//! (copying or zero-copy) and however short the writes of its own bytes are. The
//! transcript tests check this for every vector with a roomy receive buffer; here the
//! receive buffer is small (so messages are skipped as oversize and `handle_input` takes
//! fewer bytes than offered), and random cuts run with many seeds.

mod support;

use qmp_core::client::Config;
use qmp_core::commands::QueryStatus;
use support::json_text::{minify, split_messages, with_id, Style};
use support::vectors::{Vector, ALL};
use support::{check_splits, sampled_split_points, Setup, Split};

/// Message boundaries of a stream (offsets just past each message).
fn boundaries(stream: &[u8]) -> Vec<usize> {
    let mut at = 0;
    split_messages(stream)
        .iter()
        .map(|m| {
            at += m.len();
            at
        })
        .collect()
}

fn setup_for(vector: &Vector) -> Setup {
    if vector.is_guest_agent() {
        Setup::guest_agent()
    } else {
        Setup::qmp()
    }
}

#[test]
fn every_vector_with_small_receive_buffers() {
    let sizes: &[usize] = if support::MIRI {
        &[256]
    } else {
        &[160, 256, 512, 1024]
    };
    for vector in ALL {
        if support::MIRI && vector.s2c.len() > 1024 {
            continue;
        }
        for &rx in sizes {
            let setup = setup_for(vector).rx(rx);
            let scenario = |h: &mut support::H<'_>| {
                h.feed(vector.s2c);
                h.eof();
            };
            let whole = setup.run(Split::Whole, scenario);
            let points = if vector.s2c.len() <= 1500 && !support::MIRI {
                (0..=whole.fed).collect()
            } else if vector.s2c.len() > 20_000 {
                sampled_split_points(&boundaries(vector.s2c), rx * 16, whole.fed, 2, 4999)
            } else {
                sampled_split_points(&boundaries(vector.s2c), rx, whole.fed, 4, 97)
            };
            check_splits::<32>(&setup, &scenario, &whole, &points);
            let last = whole.brief().pop().unwrap_or_default();
            assert!(
                last.starts_with("Closed"),
                "{} rx {rx}: {last}",
                vector.name
            );
        }
    }
}

#[test]
fn many_small_messages_in_one_read_into_a_small_buffer() {
    // 40 messages in one chunk into a 160-byte buffer: `handle_input` takes what fits,
    // the harness drains and offers the rest, as the run loop says. Negotiation comes
    // first, on its own: the commands go out when it completes, and only replies that
    // arrive after that can answer them.
    let negotiation = Vector::get("02-negotiation").s2c;
    let mut server = Vec::new();
    for id in 1..=20u64 {
        server.extend_from_slice(format!("{{\"return\": {{}}, \"id\": {id}}}\r\n").as_bytes());
        server.extend_from_slice(
            b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n",
        );
    }
    let setup = Setup::qmp().rx(160);
    let rec = setup.check(|h| {
        for _ in 0..20 {
            h.execute(&QueryStatus);
        }
        h.feed_lines(negotiation);
        h.feed(&server);
    });
    let brief = rec.brief();
    assert_eq!(brief.len(), 2 + 40);
    assert_eq!(brief[2], "Response #1 ok {}");
    assert_eq!(brief[41], "Event STOP");
    assert_eq!(rec.stats.events, 20);
}

#[test]
fn random_fragments_with_many_seeds() {
    let (seeds, names): (u64, &[&str]) = if support::MIRI {
        (1, &["10-parser-reset"])
    } else {
        (
            200,
            &[
                "18-pretty",
                "40-qga-session",
                "10-parser-reset",
                "15-job-blockdev-create",
            ],
        )
    };
    for &name in names {
        let vector = Vector::get(name);
        let setup = setup_for(&vector).rx(512);
        let scenario = |h: &mut support::H<'_>| {
            h.feed(vector.s2c);
            h.eof();
        };
        let whole = setup.run(Split::Whole, scenario);
        for seed in 0..seeds {
            for max in [1, 3, 64, 1000]
                .into_iter()
                .skip(usize::from(support::MIRI))
            {
                let other = setup.run(Split::Random { seed, max }, scenario);
                assert_eq!(whole.events, other.events, "{name} seed {seed} max {max}");
                assert_eq!(whole.tx, other.tx, "{name} seed {seed} max {max}");
                assert_eq!(whole.stats, other.stats, "{name} seed {seed} max {max}");
            }
        }
    }
}

#[test]
fn oob_session_with_split_transmit_and_receive() {
    // Vector 31 as our OOB session, fed and written in random pieces.
    let v = Vector::get("31-qsys-oob");
    let s = support::vectors::Session::new(&v)
        .drop_message(1)
        .strip(2)
        .send(&v, &[2, 3, 4, 5, 6]);
    let setup = Setup::qmp()
        .config(Config::qmp().with_oob(true))
        .rx(256)
        .tx(64);
    let rec = setup.check(|h| {
        h.feed(&s.s2c_range(0..3));
        h.send(s.requests());
        h.feed(&s.s2c_range(3..8));
    });
    assert_eq!(rec.brief().len(), 7);
}

#[test]
fn harness_rewrites_ids_splits_messages_and_minifies() {
    assert_eq!(
        with_id(
            b"{\"return\": {}, \"id\": \"st\"}\r\n",
            Some(7),
            Style::Server
        ),
        b"{\"return\": {}, \"id\": 7}\r\n"
    );
    assert_eq!(
        with_id(
            b"{\"id\": \"e1\", \"error\": {\"class\": \"X\"}}\r\n",
            None,
            Style::Server
        ),
        b"{\"error\": {\"class\": \"X\"}}\r\n"
    );
    assert_eq!(
        with_id(
            b"{\"return\": {}, \"id\": \"neg\"}\r\n",
            None,
            Style::Server
        ),
        b"{\"return\": {}}\r\n"
    );
    assert_eq!(
        with_id(
            b"{\"error\": {\"class\": \"X\"}}\r\n",
            Some(3),
            Style::Server
        ),
        b"{\"id\": 3, \"error\": {\"class\": \"X\"}}\r\n"
    );
    assert_eq!(
        with_id(b"{\"return\": {\"id\": 1}}\n", Some(3), Style::Server),
        b"{\"return\": {\"id\": 1}, \"id\": 3}\n"
    );
    assert_eq!(
        with_id(b"{\"execute\":\"x\"}\n", Some(12), Style::Request),
        b"{\"execute\":\"x\",\"id\":12}\n"
    );
    assert_eq!(
        with_id(b"{\"execute\":\"x\",\"id\":\"a\"}\n", None, Style::Request),
        b"{\"execute\":\"x\"}\n"
    );
    assert_eq!(
        split_messages(b"{\"a\": \"}\"}\r\n\xff{\"b\": [1]}\n  "),
        vec![
            b"{\"a\": \"}\"}\r\n".to_vec(),
            b"\xff{\"b\": [1]}\n  ".to_vec()
        ]
    );
    assert_eq!(minify(b"{\r\n    \"a b\": [\r\n 1 ]\r\n}"), "{\"a b\":[1]}");
}
