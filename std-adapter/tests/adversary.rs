//! The promises of qmp-std held against hostile fake servers, for the blocking and the
//! async front alike: a server that stops reading cannot defeat a deadline or `close()`;
//! a negotiation that stalls is named; slow and panicking callbacks can neither hang
//! `close()` nor leak an outstanding call; every `Duration` is accepted; a flood of
//! large events to a listener that does not read stays within its byte bound.

mod common;

use core::time::Duration;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use common::watchdog;
use qmp_std::{CallOptions, Client, ConnectOptions, Error, Transport};
use serde_json::{json, Value};

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"fake\"}, \"capabilities\": []}}\r\n";

/// Arguments of about 60 KB: a few of them fill a socket buffer.
fn big_arguments() -> Value {
    json!({ "text": "x".repeat(60_000) })
}

/// The server side of a session: reads requests line by line.
struct Peer {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Peer {
    fn new(stream: UnixStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Peer {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn request(&mut self) -> Option<Value> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(
                serde_json::from_slice(&line)
                    .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&line))),
            ),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let _ = self.writer.write_all(bytes);
    }

    /// Greets and accepts `qmp_capabilities`.
    fn negotiate(&mut self) {
        self.send(GREETING);
        let request = self.request().expect("qmp_capabilities");
        assert_eq!(request["execute"], "qmp_capabilities");
        self.send(b"{\"return\": {}}\r\n");
    }

    /// Answers every request with its arguments until the client goes away; a request
    /// named `hello` is preceded by a `HELLO` event.
    fn echo(&mut self) {
        while let Some(request) = self.request() {
            if request["execute"] == "hello" {
                self.send(b"{\"event\": \"HELLO\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
            }
            let reply = json!({"return": request["arguments"], "id": request["id"]});
            self.send(format!("{reply}\r\n").as_bytes());
        }
    }
}

/// A socket pair whose far end runs `script` as the server.
fn server(script: impl FnOnce(Peer) + Send + 'static) -> UnixStream {
    let (ours, theirs) = UnixStream::pair().unwrap();
    thread::spawn(move || script(Peer::new(theirs)));
    ours
}

/// A server that negotiates, then never reads again (it holds the socket open until
/// `release` is dropped or sent to).
fn deaf_server() -> (UnixStream, mpsc::Sender<()>) {
    let (release, released) = mpsc::channel::<()>();
    let stream = server(move |mut peer| {
        peer.negotiate();
        let _ = released.recv_timeout(Duration::from_secs(30));
    });
    (stream, release)
}

/// A server that negotiates and, on the first request, sends `count` events carrying
/// `size` bytes each before its reply; then it echoes requests.
fn flooding_server(count: usize, size: usize) -> UnixStream {
    server(move |mut peer| {
        peer.negotiate();
        let Some(first) = peer.request() else {
            return;
        };
        let filler = "e".repeat(size);
        for n in 0..count {
            let event = json!({
                "event": "FLOOD",
                "data": {"n": n, "filler": filler},
                "timestamp": {"seconds": 1, "microseconds": 2}
            });
            peer.send(format!("{event}\r\n").as_bytes());
        }
        let reply = json!({"return": {}, "id": first["id"]});
        peer.send(format!("{reply}\r\n").as_bytes());
        peer.echo();
    })
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .greeting_timeout(Some(Duration::from_secs(5)))
        .command_timeout(Some(Duration::from_secs(10)))
}

fn connect(stream: UnixStream, options: ConnectOptions) -> Client {
    Client::connect(Transport::from_unix_stream(stream).unwrap(), options).expect("connects")
}

#[test]
fn a_server_that_stops_reading_cannot_hold_a_deadline_or_close() {
    let _guard = watchdog("deaf_blocking", Duration::from_secs(30));
    let (stream, _release) = deaf_server();
    let client = connect(stream, options());
    let arguments = big_arguments();
    let started = Instant::now();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            client.submit_value(
                "echo",
                &arguments,
                CallOptions::new().timeout(Duration::from_secs(1)),
            )
        })
        .collect();
    for call in calls {
        let result = call.wait();
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "a 1 s deadline fired after {:?}",
            started.elapsed()
        );
    }
    // A call without a deadline, stuck behind bytes the server will never read, is
    // resolved by close(), which returns at once.
    let stuck = client.submit_value("echo", &arguments, CallOptions::new().no_timeout());
    let waiter = thread::spawn(move || stuck.wait());
    thread::sleep(Duration::from_millis(100));
    let closing = Instant::now();
    client.close();
    assert!(
        closing.elapsed() < Duration::from_secs(1),
        "close took {:?}",
        closing.elapsed()
    );
    assert!(matches!(waiter.join().unwrap(), Err(Error::ClientClosed)));
    assert_eq!(client.outstanding(), 0);
}

#[test]
fn a_call_without_a_deadline_is_freed_by_dropping_the_last_handle() {
    let _guard = watchdog("deaf_drop", Duration::from_secs(30));
    let (stream, _release) = deaf_server();
    let client = connect(stream, options());
    let stuck = client.submit_value("echo", &big_arguments(), CallOptions::new().no_timeout());
    let more = client.submit_value("echo", &big_arguments(), CallOptions::new().no_timeout());
    let dropping = Instant::now();
    drop(client);
    assert!(dropping.elapsed() < Duration::from_secs(1));
    assert!(matches!(stuck.wait(), Err(Error::ClientClosed)));
    assert!(matches!(more.wait(), Err(Error::ClientClosed)));
}

#[test]
fn a_stalled_negotiation_is_named() {
    let _guard = watchdog("stalled", Duration::from_secs(30));
    let stream = server(|mut peer| {
        peer.send(GREETING);
        let _ = peer.request();
        // Never answers qmp_capabilities.
        thread::sleep(Duration::from_secs(10));
    });
    let started = Instant::now();
    let error = Client::connect(
        Transport::from_unix_stream(stream).unwrap(),
        ConnectOptions::new().greeting_timeout(Some(Duration::from_millis(300))),
    )
    .unwrap_err();
    assert!(
        matches!(error, Error::NegotiationStalled { .. }),
        "{error:?}"
    );
    assert!(error.is_closed());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn close_bounds_its_wait_for_slow_callbacks_and_counts_what_it_drops() {
    let _guard = watchdog("slow_callbacks", Duration::from_secs(60));
    let client = connect(flooding_server(2_000, 16), options());
    let ran = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&ran);
    client.on_event("FLOOD", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(50));
    });
    // Every event has reached the callback queue once this reply is in.
    client.execute_value("flood", json!({})).unwrap();
    let closing = Instant::now();
    client.close();
    let took = closing.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "close waited {took:?} (grace {:?})",
        qmp_std::CLOSE_CALLBACK_GRACE
    );
    // Callbacks ran for the grace, then the rest was dropped and counted; nothing runs
    // after close() returned but the callback in progress.
    thread::sleep(Duration::from_millis(200));
    let ran = ran.load(Ordering::SeqCst);
    assert!(ran > 0 && ran < 100, "{ran} callbacks ran");
    assert_eq!(client.callback_missed() + ran, 2_000, "ran {ran}");
}

#[test]
fn a_panicking_callback_is_counted_and_leaves_nothing_outstanding() {
    let _guard = watchdog("panicking_callback", Duration::from_secs(30));
    let client = connect(
        server(|mut peer| {
            peer.negotiate();
            peer.echo();
        }),
        options(),
    );
    let (done, finished) = mpsc::channel();
    client
        .execute_with_callback(&qmp_std::qmp_core::commands::QueryVersion, |_| {
            panic!("a callback that panics");
        })
        .unwrap();
    client
        .execute_with_callback(&qmp_std::qmp_core::commands::QueryStatus, move |result| {
            let _ = done.send(result.is_ok());
        })
        .unwrap();
    client.wait_idle(Duration::from_secs(5)).unwrap();
    assert_eq!(client.outstanding(), 0);
    assert_eq!(client.callback_panics(), 1);
    // The callback thread survived: the next callback ran.
    assert!(finished.recv_timeout(Duration::from_secs(5)).is_ok());
}

#[test]
fn every_duration_is_accepted() {
    let _guard = watchdog("duration_max", Duration::from_secs(30));
    let stream = server(|mut peer| {
        peer.negotiate();
        peer.echo();
    });
    let options = ConnectOptions::new()
        .connect_timeout(Some(Duration::MAX))
        .greeting_timeout(Some(Duration::MAX))
        .command_timeout(Some(Duration::MAX));
    let client = connect(stream, options);
    let events = client.subscribe();
    assert_eq!(
        client
            .execute_timeout(&qmp_std::qmp_core::commands::QueryStatus, Duration::MAX)
            .map(|_| ())
            .map_err(|error| error.to_string()),
        Ok(())
    );
    client
        .submit_value(
            "echo",
            &json!({"n": 1}),
            CallOptions::new().timeout(Duration::MAX),
        )
        .wait_timeout(Duration::MAX)
        .unwrap();
    client
        .submit_value("hello", &json!({"n": 2}), CallOptions::new())
        .wait_timeout(Duration::MAX)
        .unwrap();
    assert_eq!(events.recv_timeout(Duration::MAX).unwrap().name(), "HELLO");
    assert!(matches!(
        events.recv_timeout(Duration::ZERO),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        events.recv_named("NEVER", Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    client.wait_idle(Duration::MAX).unwrap();
    // A Unix socket connect with an unrepresentable deadline connects as without one.
    let missing = Client::connect_unix(
        "/nonexistent/qmp.sock",
        ConnectOptions::new().connect_timeout(Some(Duration::MAX)),
    );
    assert!(matches!(missing, Err(Error::Io(_))), "{missing:?}");
}

#[test]
fn a_flood_of_large_events_stays_within_the_listener_byte_bound() {
    let _guard = watchdog("flood_bytes", Duration::from_secs(60));
    const EVENTS: usize = 100;
    const SIZE: usize = 250_000;
    let client = connect(flooding_server(EVENTS, SIZE), options());
    let idle = client.subscribe();
    let small = client.subscribe_with_capacity(None, 1_000);
    // Every event has been routed once this reply is in (the server sends them first).
    client.execute_value("flood", json!({})).unwrap();
    let bound = qmp_std::DEFAULT_EVENT_QUEUE_BYTES;
    for listener in [&idle, &small] {
        assert_eq!(listener.byte_capacity(), bound);
        assert!(
            listener.queued_bytes() <= bound,
            "{}",
            listener.queued_bytes()
        );
        // As many as fit in the bound, the newest ones; the rest were counted.
        let held = listener.len();
        assert!(
            held >= bound / (SIZE + 1_000) && held <= bound / SIZE,
            "{held}"
        );
        assert_eq!(listener.missed(), (EVENTS - held) as u64);
        let first = listener.try_recv().unwrap().unwrap();
        assert_eq!(first.data_value()["n"], (EVENTS - held) as u64);
    }
    // A bound smaller than one event: each is lost and counted, none is held.
    let tiny = Client::connect(
        Transport::from_unix_stream(flooding_server(3, SIZE)).unwrap(),
        options().event_queue_bytes(SIZE / 2),
    )
    .unwrap();
    let listener = tiny.subscribe();
    tiny.execute_value("flood", json!({})).unwrap();
    assert!(listener.is_empty());
    assert_eq!(listener.missed(), 3);
}

/// Many threads share one client: whoever waits drives the link, the others wait for
/// their reply or their turn. Every reply reaches its own caller, cancelled calls end
/// at once, and nothing is left waiting.
#[test]
fn threads_take_turns_driving_the_link_and_every_reply_finds_its_caller() {
    let _guard = watchdog("turns", Duration::from_secs(60));
    let client = connect(
        server(|mut peer| {
            peer.negotiate();
            peer.echo();
        }),
        options(),
    );
    let threads: Vec<_> = (0..8u64)
        .map(|thread| {
            let client = client.clone();
            thread::spawn(move || {
                for n in 0..300u64 {
                    let tag = thread * 1_000 + n;
                    let call =
                        client.submit_value("echo", &json!({ "tag": tag }), CallOptions::new());
                    if n % 50 == 7 {
                        // Cancelled before it is waited on: unless its reply was in
                        // already, it ends at once as cancelled.
                        let canceller = call.canceller();
                        canceller.cancel();
                        match call.wait() {
                            Ok(reply) => assert_eq!(reply["tag"], tag),
                            Err(error) => assert!(matches!(error, Error::Cancelled), "{error:?}"),
                        }
                        continue;
                    }
                    if n % 10 == 3 {
                        // Sent, never waited on: the reply is dropped by whoever leads.
                        drop(call);
                        continue;
                    }
                    assert_eq!(call.wait().unwrap()["tag"], tag);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    client.wait_idle(Duration::from_secs(10)).unwrap();
    assert_eq!(client.outstanding(), 0);
    assert_eq!(client.stats().unmatched_replies, 0);
}

#[cfg(feature = "tokio")]
mod async_front {
    use super::*;
    use qmp_std::tokio::AsyncClient;

    async fn connect(stream: UnixStream, options: ConnectOptions) -> AsyncClient {
        stream.set_nonblocking(true).unwrap();
        let stream = tokio::net::UnixStream::from_std(stream).unwrap();
        AsyncClient::from_unix_stream(stream, options)
            .await
            .expect("connects")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_stops_reading_cannot_hold_a_deadline_or_close() {
        let _guard = watchdog("deaf_async", Duration::from_secs(30));
        let (stream, _release) = deaf_server();
        let client = connect(stream, options()).await;
        let arguments = big_arguments();
        let started = Instant::now();
        let calls: Vec<_> = (0..12)
            .map(|_| {
                client.submit_value(
                    "echo",
                    &arguments,
                    CallOptions::new().timeout(Duration::from_secs(1)),
                )
            })
            .collect();
        for call in calls {
            let result = call.await;
            assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
            assert!(started.elapsed() < Duration::from_millis(1500));
        }
        let stuck = client.submit_value("echo", &arguments, CallOptions::new().no_timeout());
        let waiter = tokio::spawn(stuck);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let closing = Instant::now();
        client.close();
        assert!(closing.elapsed() < Duration::from_secs(1));
        let result = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(result, Err(Error::ClientClosed)), "{result:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_negotiation_is_named() {
        let _guard = watchdog("stalled_async", Duration::from_secs(30));
        let stream = server(|mut peer| {
            peer.send(GREETING);
            let _ = peer.request();
            thread::sleep(Duration::from_secs(10));
        });
        stream.set_nonblocking(true).unwrap();
        let error = AsyncClient::from_unix_stream(
            tokio::net::UnixStream::from_std(stream).unwrap(),
            ConnectOptions::new().greeting_timeout(Some(Duration::from_millis(300))),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, Error::NegotiationStalled { .. }),
            "{error:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callbacks_durations_and_floods() {
        let _guard = watchdog("async_misc", Duration::from_secs(60));
        let options = options()
            .connect_timeout(Some(Duration::MAX))
            .command_timeout(Some(Duration::MAX));
        let client = connect(
            flooding_server(20, 250_000),
            options.event_queue_bytes(1 << 20),
        )
        .await;
        let events = client.subscribe();
        client
            .execute_with_callback(&qmp_std::qmp_core::commands::QueryVersion, |_| {
                panic!("a callback that panics");
            })
            .unwrap();
        client.wait_idle(Duration::MAX).await.unwrap();
        assert_eq!(client.callback_panics(), 1);
        assert_eq!(client.outstanding(), 0);
        client
            .execute_timeout(&qmp_std::qmp_core::commands::QueryStatus, Duration::MAX)
            .await
            .unwrap();
        assert!(events.queued_bytes() <= 1 << 20);
        assert_eq!(events.missed() + events.len() as u64, 20);
        let first = events.recv_timeout(Duration::MAX).await.unwrap();
        assert_eq!(first.data_value()["n"], events.missed());
        let closing = Instant::now();
        client.close();
        assert!(closing.elapsed() < Duration::from_secs(1));
    }

    /// Async tasks and blocking threads on one session, taking the link from each other
    /// (a blocked thread takes it from a task at once): every reply reaches its caller.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_tasks_and_blocking_threads_share_one_session() {
        let _guard = watchdog("mixed", Duration::from_secs(60));
        let client = connect(
            server(|mut peer| {
                peer.negotiate();
                peer.echo();
            }),
            options(),
        )
        .await;
        let blocking: Client = client.with_mode();
        let threads: Vec<_> = (0..3u64)
            .map(|thread| {
                let client = blocking.clone();
                thread::spawn(move || {
                    for n in 0..200u64 {
                        let tag = thread * 1_000 + n;
                        let reply = client.execute_value("echo", json!({ "tag": tag })).unwrap();
                        assert_eq!(reply["tag"], tag);
                    }
                })
            })
            .collect();
        let tasks: Vec<_> = (10..14u64)
            .map(|task| {
                let client = client.clone();
                tokio::spawn(async move {
                    for n in 0..200u64 {
                        let tag = task * 1_000 + n;
                        let reply = client
                            .execute_value("echo", json!({ "tag": tag }))
                            .await
                            .unwrap();
                        assert_eq!(reply["tag"], tag);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(client.outstanding(), 0);
    }
}
