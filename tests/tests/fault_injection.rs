//! Fault injection against qmp-std's blocking client: a scripted fake server on a Unix
//! socket (a listener bound in a temporary directory; the client connects by path, as to
//! QEMU) produces the faults real QEMU cannot produce on demand:
//!
//! | case | bound |
//! |---|---|
//! | garbage of every byte value, huge garbage lines, deep nesting, unterminated strings | 60 s |
//! | messages larger than the receive buffer (replies and events, id first or last) | 60 s |
//! | the connection closed in the middle of a message with many calls pending | 60 s |
//! | a whole session delivered one byte per millisecond | 60 s |
//! | a greeting that never comes (silence; half a greeting) | 60 s |
//! | two greetings (before and after negotiation) | 60 s |
//! | replies with unknown, foreign, duplicate and reordered ids | 60 s |
//! | 1,000,000 events while a listener reads slowly and commands keep flowing | 120 s |
//!
//! Every case ends with a clear error or the correct result, and every call resolves
//! exactly once: blocking calls return once by construction, and the calls made with
//! `execute_with_callback` count their callbacks, which must each run exactly once. The bounds are
//! generous "does not hang" limits (a watchdog aborts the test binary past them), not
//! performance assertions. std-adapter/tests/fake.rs covers the smaller everyday cases
//! (garbage between replies, a refused negotiation, guest-agent resync); these are the
//! adversarial ones.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Instant;

use qmp_std::qmp_core::commands::QueryStatus;
use qmp_std::{CallOptions, Client, CloseReason, ConnectOptions, Error};
use serde_json::{json, Value};

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"fault-injection\"}, \"capabilities\": [\"oob\"]}}\r\n";

const STATUS: &str = "{\"status\": \"running\", \"singlestep\": false, \"running\": true}";

/// Aborts the test binary if a case runs longer than its bound: nothing may hang.
struct Watchdog {
    done: mpsc::Sender<()>,
}

fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (done, finished) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
            eprintln!("fault injection case {name} still running after {limit:?}: aborting");
            std::process::exit(101);
        }
    });
    Watchdog { done }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.done.send(());
    }
}

/// A temporary directory holding the server's socket, removed on drop.
struct SocketDir {
    dir: PathBuf,
}

impl SocketDir {
    fn new(case: &str) -> SocketDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "qmp-fault-{}-{}-{case}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).expect("create socket directory");
        SocketDir { dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server's side of one connection.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    /// Writes bytes; false once the client has gone.
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).is_ok()
    }

    /// The next request line as JSON (a leading 0xFF reset byte is skipped), `None` at
    /// end of stream.
    fn request(&mut self) -> Option<Value> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let start = line.iter().take_while(|&&b| b == 0xFF).count();
                Some(serde_json::from_slice(&line[start..]).expect("the client sends JSON"))
            }
        }
    }

    fn reply(&mut self, request: &Value, value: &str) -> bool {
        let line = format!("{{\"return\": {value}, \"id\": {}}}\r\n", request["id"]);
        self.send(line.as_bytes())
    }

    /// Greets and accepts `qmp_capabilities`.
    fn negotiate(&mut self) {
        self.send(GREETING);
        let request = self.request().expect("qmp_capabilities");
        assert_eq!(request["execute"], "qmp_capabilities");
        self.send(b"{\"return\": {}}\r\n");
    }
}

/// A fake server on a Unix socket in a fresh directory, running `script` on the first
/// connection. Returns the directory (the socket path inside) and the server thread.
fn serve(
    case: &str,
    script: impl FnOnce(Conn) + Send + 'static,
) -> (SocketDir, thread::JoinHandle<()>) {
    let dir = SocketDir::new(case);
    let listener = UnixListener::bind(dir.socket()).expect("bind the fake server's socket");
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("the client connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        script(Conn {
            reader,
            writer: stream,
        });
    });
    (dir, server)
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .connect_timeout(Some(Duration::from_secs(5)))
        .greeting_timeout(Some(Duration::from_secs(5)))
        .command_timeout(Some(Duration::from_secs(30)))
}

fn connect(dir: &SocketDir, options: ConnectOptions) -> Result<Client, Error> {
    Client::connect_unix(dir.socket(), options)
}

/// Counts how often each async call's callback ran, to check "exactly once".
#[derive(Clone, Default)]
struct Resolutions {
    counts: Arc<Mutex<Vec<u32>>>,
    outcomes: Arc<Mutex<Vec<Option<String>>>>,
}

impl Resolutions {
    /// Starts `query-status` with a callback that records its outcome.
    fn query_status(&self, client: &Client) {
        let index = {
            let mut counts = self.counts.lock().unwrap();
            counts.push(0);
            self.outcomes.lock().unwrap().push(None);
            counts.len() - 1
        };
        let (counts, outcomes) = (Arc::clone(&self.counts), Arc::clone(&self.outcomes));
        client
            .execute_with_callback(&QueryStatus, move |result| {
                counts.lock().unwrap()[index] += 1;
                outcomes.lock().unwrap()[index] = Some(match result {
                    Ok(reply) => format!("ok {}", reply.raw()),
                    Err(error) => format!("err {error}"),
                });
            })
            .expect("queued");
    }

    /// Waits until every callback ran (at most `limit`), then checks each ran once.
    fn assert_each_once(&self, client: &Client, limit: Duration) -> Vec<String> {
        let _ = client.wait_idle(limit);
        // Callbacks of a closed session run on the callback thread; give it the bound.
        let deadline = Instant::now() + limit;
        while self.counts.lock().unwrap().contains(&0) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        // Nothing may run a second time afterwards.
        thread::sleep(Duration::from_millis(50));
        let counts = self.counts.lock().unwrap().clone();
        assert!(
            counts.iter().all(|&c| c == 1),
            "callbacks ran {counts:?} times"
        );
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .map(|o| o.clone().unwrap_or_default())
            .collect()
    }
}

#[test]
fn garbage_of_every_kind_is_skipped_and_replies_still_arrive() {
    let bound = Duration::from_secs(60);
    let _guard = watchdog("garbage", bound);
    let started = Instant::now();
    let (dir, server) = serve("garbage", |mut conn| {
        conn.negotiate();
        let mut round = 0usize;
        while let Some(request) = conn.request() {
            let garbage: Vec<Vec<u8>> = vec![
                // Every byte value but LF on one line (0xFF included: QEMU's reset byte).
                (0u8..=255).filter(|&b| b != b'\n').chain([b'\n']).collect(),
                // A 200 KB line of noise that is not JSON.
                [b"x".repeat(200_000), b"\r\n".to_vec()].concat(),
                // Nesting far past any limit.
                [b"[".repeat(50_000), b"\r\n".to_vec()].concat(),
                // A string that never ends on its line, and one with invalid UTF-8.
                b"{\"return\": \"abc\r\n".to_vec(),
                b"{\"return\": \"\xc3\x28\xed\xa0\x80\", \"id\": 1}\r\n".to_vec(),
                // Numbers QEMU would never send, a lone closer, NUL bytes.
                b"{\"return\": 01}\r\n}\r\n\0\0\0\r\n{\"return\": -}\r\n".to_vec(),
                // Valid JSON that is not a message for us.
                b"[1, 2]\r\n\"text\"\r\n{\"neither\": true}\r\n".to_vec(),
            ];
            for piece in &garbage[round % garbage.len()..] {
                if !conn.send(piece) {
                    return;
                }
            }
            round += 1;
            if !conn.reply(&request, STATUS) {
                return;
            }
        }
    });
    let client = connect(&dir, options()).expect("session starts");
    let resolutions = Resolutions::default();
    for _ in 0..7 {
        let reply = client
            .execute(&QueryStatus)
            .expect("reply after the garbage");
        assert!(reply.get().expect("decodes").running);
        resolutions.query_status(&client);
    }
    let outcomes = resolutions.assert_each_once(&client, bound);
    assert!(
        outcomes.iter().all(|o| o.starts_with("ok ")),
        "{outcomes:?}"
    );
    let stats = client.stats();
    assert!(stats.malformed >= 7, "{stats:?}");
    assert!(!client.is_closed());
    client.close();
    server.join().expect("server script");
    assert!(started.elapsed() < bound);
}

#[test]
fn messages_larger_than_the_receive_buffer_fail_only_their_command() {
    let bound = Duration::from_secs(60);
    let _guard = watchdog("oversize", bound);
    let big = "y".repeat(1 << 20);
    let (dir, server) = serve("oversize", move |mut conn| {
        conn.negotiate();
        let mut n = 0;
        while let Some(request) = conn.request() {
            let id = &request["id"];
            let line = match n % 4 {
                // Id last: known only once the whole message has been skipped.
                0 => format!("{{\"return\": {{\"blob\": \"{big}\"}}, \"id\": {id}}}\r\n"),
                // Id first, as QEMU writes error replies.
                1 => format!(
                    "{{\"id\": {id}, \"error\": {{\"class\": \"GenericError\", \"desc\": \"{big}\"}}}}\r\n"
                ),
                // An oversize event, then the (small) reply.
                2 => format!(
                    "{{\"event\": \"BIG\", \"data\": {{\"blob\": \"{big}\"}}, \"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}}}\r\n{{\"return\": {STATUS}, \"id\": {id}}}\r\n"
                ),
                _ => format!("{{\"return\": {STATUS}, \"id\": {id}}}\r\n"),
            };
            n += 1;
            if !conn.send(line.as_bytes()) {
                return;
            }
        }
    });
    let client = connect(&dir, options().rx_buffer_size(4096)).expect("session starts");
    for round in 0..2 {
        let first = client.execute(&QueryStatus);
        match first {
            Err(Error::ReplyTooLarge { len }) => assert!(len > 1 << 20, "{len}"),
            other => panic!("round {round}: expected ReplyTooLarge, got {other:?}"),
        }
        let second = client.execute(&QueryStatus);
        assert!(
            matches!(second, Err(Error::ReplyTooLarge { .. })),
            "{second:?}"
        );
        assert!(
            client.execute(&QueryStatus).is_ok(),
            "after an oversize event"
        );
        assert!(client.execute(&QueryStatus).is_ok());
    }
    let stats = client.stats();
    assert_eq!(stats.oversize, 6, "{stats:?}");
    assert!(!client.is_closed());
    client.close();
    server.join().expect("server script");
}

#[test]
fn close_in_the_middle_of_a_message_resolves_every_pending_call_once() {
    let bound = Duration::from_secs(60);
    let _guard = watchdog("mid_message", bound);
    let (dir, server) = serve("mid-message", |mut conn| {
        conn.negotiate();
        // Read the 20 requests, answer the first 5, then stop halfway through a reply.
        let mut requests = Vec::new();
        while requests.len() < 20 {
            match conn.request() {
                Some(request) => requests.push(request),
                None => return,
            }
        }
        for request in &requests[..5] {
            conn.reply(request, STATUS);
        }
        conn.send(b"{\"return\": {\"status\": \"runn");
        // Dropping the connection closes it.
    });
    let client = connect(&dir, options()).expect("session starts");
    let resolutions = Resolutions::default();
    let pending: Vec<_> = (0..10)
        .map(|_| client.submit(&QueryStatus, CallOptions::new()))
        .collect();
    for _ in 0..10 {
        resolutions.query_status(&client);
    }
    let mut ok = 0;
    for call in pending {
        match call.wait() {
            Ok(_) => ok += 1,
            Err(Error::Closed(CloseReason::EndOfStream { truncated: true })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 5, "the five answered calls succeed");
    let outcomes = resolutions.assert_each_once(&client, bound);
    assert!(
        outcomes.iter().all(|o| o.starts_with("err ")),
        "{outcomes:?}"
    );
    // Later calls fail at once with the same clear reason.
    let later = client.execute(&QueryStatus);
    assert!(
        matches!(
            later,
            Err(Error::Closed(CloseReason::EndOfStream { truncated: true }))
        ),
        "{later:?}"
    );
    server.join().expect("server script");
}

#[test]
fn a_session_delivered_one_byte_per_millisecond() {
    let bound = Duration::from_secs(60);
    let _guard = watchdog("trickle", bound);
    fn trickle(conn: &mut Conn, bytes: &[u8]) -> bool {
        for byte in bytes {
            if !conn.send(std::slice::from_ref(byte)) {
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
        true
    }
    let (dir, server) = serve("trickle", |mut conn| {
        trickle(&mut conn, GREETING);
        let _ = conn.request().expect("qmp_capabilities");
        trickle(&mut conn, b"{\"return\": {}}\r\n");
        while let Some(request) = conn.request() {
            let line = format!(
                "{{\"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}, \"event\": \"STOP\"}}\r\n{{\"return\": {STATUS}, \"id\": {}}}\r\n",
                request["id"]
            );
            if !trickle(&mut conn, line.as_bytes()) {
                return;
            }
        }
    });
    let client = connect(&dir, options()).expect("session starts one byte at a time");
    let events = client.subscribe();
    for _ in 0..3 {
        let reply = client.execute(&QueryStatus).expect("reply");
        assert!(reply.get().expect("decodes").running);
        let event = events.recv_timeout(bound).expect("the event");
        assert_eq!(event.name(), "STOP");
    }
    assert_eq!(client.stats().events, 3);
    assert_eq!(client.stats().malformed, 0);
    client.close();
    server.join().expect("server script");
}

#[test]
fn a_greeting_that_never_comes_is_a_clear_error() {
    let bound = Duration::from_secs(60);
    let _guard = watchdog("no_greeting", bound);
    let options = || options().greeting_timeout(Some(Duration::from_millis(500)));
    // Silence: what a second client of a QEMU monitor hears.
    let hold = Arc::new(AtomicBool::new(true));
    let held = Arc::clone(&hold);
    let (dir, server) = serve("silent", move |_conn| {
        while held.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
    });
    let started = Instant::now();
    let result = connect(&dir, options());
    assert!(matches!(result, Err(Error::AlreadyConnected)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    hold.store(false, Ordering::SeqCst);
    server.join().expect("server script");

    // Half a greeting, then nothing.
    let hold = Arc::new(AtomicBool::new(true));
    let held = Arc::clone(&hold);
    let (dir, server) = serve("half-greeting", move |mut conn| {
        conn.send(&GREETING[..40]);
        while held.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
    });
    let started = Instant::now();
    let result = connect(&dir, options());
    assert!(
        matches!(
            result,
            Err(Error::Closed(CloseReason::GreetingTimedOut) | Error::AlreadyConnected)
        ),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    hold.store(false, Ordering::SeqCst);
    server.join().expect("server script");
}

#[test]
fn two_greetings_do_not_break_the_session() {
    let bound = Duration::from_secs(60);
    let _guard = watchdog("two_greetings", bound);
    let (dir, server) = serve("two-greetings", |mut conn| {
        conn.send(GREETING);
        conn.send(GREETING);
        let _ = conn.request().expect("qmp_capabilities");
        conn.send(b"{\"return\": {}}\r\n");
        while let Some(request) = conn.request() {
            // A third greeting in the middle of the session.
            conn.send(GREETING);
            if !conn.reply(&request, STATUS) {
                return;
            }
        }
    });
    let client = connect(&dir, options()).expect("session starts");
    for _ in 0..3 {
        let reply = client.execute(&QueryStatus).expect("reply");
        assert!(reply.get().expect("decodes").running);
    }
    assert!(!client.is_closed());
    client.close();
    server.join().expect("server script");
}

#[test]
fn unknown_foreign_duplicate_and_reordered_ids() {
    let bound = Duration::from_secs(60);
    let _guard = watchdog("ids", bound);
    let (dir, server) = serve("ids", |mut conn| {
        conn.negotiate();
        // Collect 16 requests, then answer them in reverse, each surrounded by replies
        // nobody asked for and followed by a duplicate of itself.
        let mut requests = Vec::new();
        while requests.len() < 16 {
            match conn.request() {
                Some(request) => requests.push(request),
                None => return,
            }
        }
        for request in requests.iter().rev() {
            let id = &request["id"];
            let noise = format!(
                "{{\"return\": {{}}, \"id\": 987654321}}\r\n{{\"return\": {{}}, \"id\": \"x\"}}\r\n{{\"return\": {{}}, \"id\": -1}}\r\n{{\"id\": {{\"nested\": {id}}}, \"error\": {{\"class\": \"GenericError\", \"desc\": \"d\"}}}}\r\n{{\"return\": {{}}, \"id\": 1.0}}\r\n"
            );
            let answer = format!("{{\"return\": {{\"echo\": {id}}}, \"id\": {id}}}\r\n");
            let duplicate = format!(
                "{{\"id\": {id}, \"error\": {{\"class\": \"GenericError\", \"desc\": \"duplicate\"}}}}\r\n"
            );
            if !(conn.send(noise.as_bytes())
                && conn.send(answer.as_bytes())
                && conn.send(duplicate.as_bytes()))
            {
                return;
            }
        }
        while conn.request().is_some() {}
    });
    let client = connect(&dir, options()).expect("session starts");
    let resolutions = Resolutions::default();
    let pending: Vec<_> = (0..8)
        .map(|n| client.submit_value("echo", &json!({ "n": n }), CallOptions::new()))
        .collect();
    for _ in 0..8 {
        resolutions.query_status(&client);
    }
    let mut echoed = Vec::new();
    for call in pending {
        let value = call.wait().expect("each call gets its own reply");
        echoed.push(value["echo"].as_u64().expect("echo"));
    }
    let mut sorted = echoed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        8,
        "each call got a different reply: {echoed:?}"
    );
    let outcomes = resolutions.assert_each_once(&client, bound);
    assert!(
        outcomes.iter().all(|o| o.starts_with("ok ")),
        "{outcomes:?}"
    );
    let stats = client.stats();
    // Five foreign replies and one duplicate per command.
    assert_eq!(stats.unmatched_replies, 16 * 6, "{stats:?}");
    assert!(!client.is_closed());
    client.close();
    server.join().expect("server script");
}

#[test]
fn a_million_events_while_a_listener_reads_slowly_and_commands_flow() {
    const EVENTS: u64 = 1_000_000;
    let bound = Duration::from_secs(120);
    let _guard = watchdog("million_events", bound);
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_by_server = Arc::clone(&sent);
    let (dir, server) = serve("flood", move |mut conn| {
        conn.negotiate();
        // The first request starts the flood; replies to the others are interleaved
        // with the events as soon as they are read.
        let first = conn.request().expect("the start signal");
        conn.reply(&first, "{}");
        let (replies_tx, replies_rx) = mpsc::channel::<Vec<u8>>();
        let mut writer = conn.writer.try_clone().expect("clone");
        let flood = thread::spawn(move || {
            let event = b"{\"timestamp\": {\"seconds\": 1795000000, \"microseconds\": 1}, \"event\": \"FLOOD\", \"data\": {\"n\": 1}}\r\n";
            let batch = event.repeat(1000);
            let mut count = 0;
            while count < EVENTS {
                while let Ok(reply) = replies_rx.try_recv() {
                    if writer.write_all(&reply).is_err() {
                        return;
                    }
                }
                if writer.write_all(&batch).is_err() {
                    return;
                }
                count += 1000;
                sent_by_server.store(count, Ordering::SeqCst);
            }
            // Replies to whatever comes after the flood.
            while let Ok(reply) = replies_rx.recv() {
                if writer.write_all(&reply).is_err() {
                    return;
                }
            }
        });
        while let Some(request) = conn.request() {
            let line = format!(
                "{{\"return\": {{\"echo\": {}}}, \"id\": {}}}\r\n",
                request["arguments"]["n"], request["id"]
            );
            if replies_tx.send(line.into_bytes()).is_err() {
                break;
            }
        }
        drop(replies_tx);
        let _ = flood.join();
    });
    let client = connect(&dir, options().event_queue_size(64)).expect("session starts");
    // A listener that reads slowly (small queue: it must lose events, counted), and one
    // callback counting every event it is given.
    let slow = client.subscribe_with_capacity(Some(&["FLOOD"]), 16);
    let seen_by_callback = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen_by_callback);
    client.on_event("FLOOD", move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let reader_done = Arc::new(AtomicBool::new(false));
    let reader_stop = Arc::clone(&reader_done);
    let reader = thread::spawn(move || {
        let mut received = 0u64;
        while !reader_stop.load(Ordering::SeqCst) {
            if slow.recv_timeout(Duration::from_millis(20)).is_ok() {
                received += 1;
                thread::sleep(Duration::from_millis(2));
            }
        }
        while let Ok(Some(_)) = slow.try_recv() {
            received += 1;
        }
        (received, slow.missed())
    });
    client
        .execute_value("start", json!({"n": -1}))
        .expect("flood starts");
    // Commands keep flowing during the flood; each gets its own answer.
    let resolutions = Resolutions::default();
    let mut n = 0u64;
    while sent.load(Ordering::SeqCst) < EVENTS {
        let reply = client
            .execute_value("echo", json!({ "n": n }))
            .expect("a reply during the flood");
        assert_eq!(reply["echo"], n);
        if n.is_multiple_of(16) {
            let pending = client.submit_value("echo", &json!({ "n": n }), CallOptions::new());
            assert_eq!(pending.wait().expect("reply")["echo"], n);
        }
        n += 1;
        assert!(started.elapsed() < bound, "the flood did not finish");
    }
    // A reply written after the last event: when it arrives every event has been read.
    for _ in 0..4 {
        resolutions.query_status(&client);
    }
    let last = client
        .execute_value("echo", json!({"n": "last"}))
        .expect("the last reply");
    assert_eq!(last["echo"], "last");
    let outcomes = resolutions.assert_each_once(&client, bound);
    assert_eq!(outcomes.len(), 4);
    assert_eq!(
        client.stats().events,
        EVENTS,
        "every event reached the client"
    );
    reader_done.store(true, Ordering::SeqCst);
    let (received, missed) = reader.join().expect("reader");
    assert_eq!(
        received + missed,
        EVENTS,
        "received {received}, missed {missed}"
    );
    assert!(missed > 0, "a slow listener with 16 slots cannot keep up");
    let _ = client.wait_idle(bound);
    // The callback thread may still be working through its queue.
    while seen_by_callback.load(Ordering::SeqCst) + client.callback_missed() < EVENTS
        && started.elapsed() < bound
    {
        thread::sleep(Duration::from_millis(10));
    }
    let delivered = seen_by_callback.load(Ordering::SeqCst);
    assert_eq!(
        delivered + client.callback_missed(),
        EVENTS,
        "callback saw {delivered}"
    );
    eprintln!(
        "{EVENTS} events and {n} commands in {:?}; slow listener received {received}, missed {missed}",
        started.elapsed()
    );
    assert!(!client.is_closed());
    client.close();
    server.join().expect("server script");
    assert!(started.elapsed() < bound);
}
