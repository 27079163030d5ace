//! Faults real QEMU cannot produce, from a scripted fake server over
//! `UnixStream::pair`: an event flood against slow listeners, garbage on the wire, a
//! connection closed in the middle of a message, a refused negotiation, and the
//! guest-agent behaviours (silent success, resync after a timeout).

mod common;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use common::{options, watchdog};
use qmp_std::qmp_core::client::ProtocolError;
use qmp_std::qmp_core::qga::{GuestPing, GuestShutdown};
use qmp_std::{Client, CloseReason, Error, GuestAgentClient, Transport};
use serde_json::{json, Value};

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n";

/// The server end: reads requests line by line (a leading 0xFF reset byte is dropped).
struct Server {
    reader: BufReader<UnixStream>,
    writer: Arc<Mutex<UnixStream>>,
}

impl Server {
    fn new(stream: UnixStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Server {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: Arc::new(Mutex::new(stream)),
        }
    }

    /// The next request, or `None` at end of stream.
    fn request(&mut self) -> Option<(Vec<u8>, Value)> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let prefix: Vec<u8> = line.iter().take_while(|b| **b == 0xFF).copied().collect();
                let value =
                    serde_json::from_slice(&line[prefix.len()..]).expect("client sent json");
                Some((prefix, value))
            }
        }
    }

    fn send(&self, bytes: &[u8]) {
        self.writer.lock().unwrap().write_all(bytes).unwrap();
    }

    fn reply(&self, request: &Value, value: Value) {
        let reply = json!({"return": value, "id": request["id"]});
        self.send(format!("{reply}\r\n").as_bytes());
    }

    /// Greets and accepts `qmp_capabilities`.
    fn negotiate(&mut self) {
        self.send(GREETING);
        let (_, request) = self.request().expect("qmp_capabilities");
        assert_eq!(request["execute"], "qmp_capabilities");
        self.send(b"{\"return\": {}}\r\n");
    }
}

/// A client connected to a fake server; `script` runs as the server.
fn fake(script: impl FnOnce(Server) + Send + 'static) -> (Client, thread::JoinHandle<()>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || script(Server::new(theirs)));
    let transport = Transport::from_unix_stream(ours).unwrap();
    let client = Client::connect(transport, options()).expect("fake session starts");
    (client, server)
}

#[test]
fn event_flood_and_slow_listeners_never_stall_commands() {
    let _guard = watchdog("flood", Duration::from_secs(60));
    let stop = Arc::new(AtomicBool::new(false));
    let sent_events = Arc::new(AtomicU64::new(0));
    let (stop2, sent2) = (Arc::clone(&stop), Arc::clone(&sent_events));
    let (client, server) = fake(move |mut server| {
        server.negotiate();
        // One writer interleaves replies (as soon as they are ready) with batches of
        // events, so the flood never starves the replies on the server side.
        let (replies_tx, replies_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let writer = Arc::clone(&server.writer);
        let stop3 = Arc::clone(&stop2);
        let flood = thread::spawn(move || {
            let event = b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"FLOOD\", \"data\": {\"n\": 1}}\r\n";
            // About 20,000 events a second: far more than the slow callback (1 ms each)
            // or the listener nobody reads can take.
            let batch: Vec<u8> = event.repeat(20);
            let mut stream = writer.lock().unwrap().try_clone().unwrap();
            while !stop3.load(Ordering::SeqCst) {
                while let Ok(reply) = replies_rx.try_recv() {
                    if stream.write_all(&reply).is_err() {
                        return;
                    }
                }
                if stream.write_all(&batch).is_err() {
                    return;
                }
                sent2.fetch_add(20, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(1));
            }
        });
        while let Some((_, request)) = server.request() {
            let reply = json!({"return": {"echo": request["arguments"]["n"]}, "id": request["id"]});
            let _ = replies_tx.send(format!("{reply}\r\n").into_bytes());
        }
        stop2.store(true, Ordering::SeqCst);
        flood.join().unwrap();
    });
    // A listener nobody reads, and a callback that is slow.
    let slow = client.subscribe_with_capacity(None, 8);
    let callbacks = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&callbacks);
    client.on_event("FLOOD", move |_| {
        thread::sleep(Duration::from_millis(1));
        counted.fetch_add(1, Ordering::SeqCst);
    });
    while sent_events.load(Ordering::SeqCst) < 1000 {
        thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    for n in 0..200 {
        let reply = client.execute_value("echo", json!({"n": n})).unwrap();
        assert_eq!(reply["echo"], n);
    }
    let took = started.elapsed();
    eprintln!(
        "200 commands during the flood: {took:?}, {} events received",
        client.stats().events
    );
    stop.store(true, Ordering::SeqCst);
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(slow.len(), 8);
    assert!(slow.missed() > 1000, "missed {}", slow.missed());
    assert!(client.callback_missed() > 0);
    assert!(callbacks.load(Ordering::SeqCst) > 0);
    let missed = slow.take_missed();
    assert!(missed > 0);
    assert_eq!(slow.recv().unwrap().name(), "FLOOD");
    client.close();
    server.join().unwrap();
}

#[test]
fn garbage_between_messages_is_skipped() {
    let _guard = watchdog("garbage", Duration::from_secs(30));
    let (client, server) = fake(|mut server| {
        server.negotiate();
        while let Some((_, request)) = server.request() {
            server.send(b"}}} not json\r\n");
            server.send(b"\x01\x02\xc3\x28 bad utf-8\r\n");
            server.send(b"{\"return\": inf}\r\n");
            server.send(b"[1, 2, 3]\r\n");
            server.send(b"{\"return\": {}, \"id\": 999999}\r\n");
            server.reply(&request, json!("fine"));
        }
    });
    for _ in 0..3 {
        assert_eq!(client.execute_value("x", Value::Null).unwrap(), "fine");
    }
    let stats = client.stats();
    assert!(stats.malformed >= 3, "{stats:?}");
    assert_eq!(stats.unmatched_replies, 3);
    assert!(!client.is_closed());
    client.close();
    server.join().unwrap();
}

#[test]
fn close_in_the_middle_of_a_message() {
    let _guard = watchdog("mid_message", Duration::from_secs(30));
    let (client, server) = fake(|mut server| {
        server.negotiate();
        let _ = server.request();
        server.send(b"{\"return\": {\"half\": ");
        // Dropping the server closes the connection.
    });
    let result = client.execute_value("x", Value::Null);
    assert!(
        matches!(
            result,
            Err(Error::Closed(CloseReason::EndOfStream { truncated: true }))
        ),
        "{result:?}"
    );
    server.join().unwrap();
    assert_eq!(
        client.close_reason(),
        Some(CloseReason::EndOfStream { truncated: true })
    );
}

#[test]
fn refused_negotiation_and_missing_greeting() {
    let _guard = watchdog("negotiation", Duration::from_secs(30));
    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || {
        let mut server = Server::new(theirs);
        server.send(GREETING);
        let _ = server.request();
        server.send(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"not today\"}}\r\n");
        let _ = server.request();
    });
    let result = Client::connect(Transport::from_unix_stream(ours).unwrap(), options());
    match result {
        Err(Error::Qmp { desc, .. }) => assert_eq!(desc, "not today"),
        other => panic!("unexpected {other:?}"),
    }
    server.join().unwrap();

    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || {
        let server = Server::new(theirs);
        server.send(b"{\"return\": {}}\r\n");
        thread::sleep(Duration::from_millis(200));
    });
    let result = Client::connect(Transport::from_unix_stream(ours).unwrap(), options());
    assert!(
        matches!(
            result,
            Err(Error::Closed(CloseReason::Protocol(
                ProtocolError::MissingGreeting
            )))
        ),
        "{result:?}"
    );
    server.join().unwrap();
}

#[test]
fn plain_read_write_halves() {
    let _guard = watchdog("plain_halves", Duration::from_secs(30));
    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || {
        let mut server = Server::new(theirs);
        server.negotiate();
        while let Some((_, request)) = server.request() {
            server.reply(&request, json!(request["execute"]));
        }
    });
    let reader = ours.try_clone().unwrap();
    let closer = ours.try_clone().unwrap();
    let client = Client::connect_io(reader, ours, options()).unwrap();
    assert_eq!(client.version().unwrap().minor, 0);
    assert_eq!(client.execute_value("hello", Value::Null).unwrap(), "hello");
    let no_fds =
        client.execute_with_fds(&GuestPing, &[std::os::fd::AsFd::as_fd(&std::io::stdin())]);
    assert!(matches!(no_fds, Err(Error::Io(_))));
    drop(client);
    // A plain reader cannot be woken by the client: the stream's owner ends it.
    closer.shutdown(std::net::Shutdown::Both).unwrap();
    server.join().unwrap();
}

/// A fake guest agent: answers syncs behind the 0xFF sentinel, never answers
/// `guest-shutdown`, and stays silent on `hang` (so the client resyncs).
fn fake_agent(log: Arc<Mutex<Vec<String>>>) -> impl FnOnce(Server) + Send + 'static {
    move |mut server| {
        while let Some((prefix, request)) = server.request() {
            let name = request["execute"].as_str().unwrap_or("").to_owned();
            log.lock()
                .unwrap()
                .push(format!("{}{name}", "!".repeat(prefix.len())));
            match name.as_str() {
                "guest-sync-delimited" => {
                    let id = &request["arguments"]["id"];
                    server
                        .send(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"stray\"}}\n");
                    let mut reply = vec![0xFF];
                    reply.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
                    server.send(&reply);
                }
                "guest-shutdown" => return,
                "hang" => {}
                _ => server.reply(&request, json!({})),
            }
        }
    }
}

#[test]
fn guest_agent_sync_resync_and_silent_success() {
    let _guard = watchdog("agent", Duration::from_secs(30));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = thread::spawn({
        let script = fake_agent(Arc::clone(&log));
        move || script(Server::new(theirs))
    });
    let agent =
        GuestAgentClient::connect(Transport::from_unix_stream(ours).unwrap(), options()).unwrap();
    assert!(agent.info().version.is_none());
    agent.execute(&GuestPing).unwrap();
    let hung = agent.submit_value(
        "hang",
        &Value::Null,
        qmp_std::CallOptions::new().timeout(Duration::from_millis(100)),
    );
    assert!(matches!(hung.wait(), Err(Error::Timeout)));
    // After the timeout the client resynchronised before sending anything else.
    agent.execute(&GuestPing).unwrap();
    assert!(agent.sync().unwrap() < 1 << 53);
    // guest-shutdown answers nothing; the agent going away is its success.
    agent.execute(&GuestShutdown::default()).unwrap();
    server.join().unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "!guest-sync-delimited",
            "guest-ping",
            "hang",
            "!guest-sync-delimited",
            "guest-ping",
            "!guest-sync-delimited",
            "guest-shutdown"
        ]
    );
}

#[test]
fn requests_wait_for_room_in_a_small_transmit_buffer() {
    let _guard = watchdog("small_tx", Duration::from_secs(30));
    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || {
        let mut server = Server::new(theirs);
        server.negotiate();
        while let Some((_, request)) = server.request() {
            let len = request["arguments"]["text"].as_str().map_or(0, str::len);
            server.reply(&request, json!(len));
        }
    });
    let client = Client::connect(
        Transport::from_unix_stream(ours).unwrap(),
        options().tx_buffer_size(1024),
    )
    .unwrap();
    let text = "x".repeat(700);
    let pending: Vec<_> = (0..20)
        .map(|_| {
            client.submit_value(
                "echo",
                &json!({ "text": text }),
                qmp_std::CallOptions::new(),
            )
        })
        .collect();
    for call in pending {
        assert_eq!(call.wait().unwrap(), 700);
    }
    // One that can never fit fails at once instead of waiting.
    let huge = client.execute_value("echo", json!({ "text": "y".repeat(2000) }));
    assert!(matches!(huge, Err(Error::Execute(_))), "{huge:?}");
    client.close();
    server.join().unwrap();
}
