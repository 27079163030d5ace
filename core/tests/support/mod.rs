//! Shared harness for qmp-core's integration tests.
//!
//! [`Harness`] drives a [`Client`] the way the crate documents its run loop: after every
//! input (bytes, end of stream, timeout) and every `execute*`/`sync` call it drains
//! `poll_output` until `None`, then `poll_transmit`/`mark_transmitted` until `None`. Time is
//! virtual ([`Instant::from_millis`]) and only moves when a scenario says so. Each event is
//! recorded as an owned string in two forms: `full` (everything, timestamps and error
//! offsets included: the fragmentation assertion compares these) and `brief` (JSON
//! minified, long values abbreviated, no timestamps: what expectations are written in).
//!
//! Server bytes are fed through [`Harness::feed`], which cuts them according to the run's
//! [`Split`]: whole, at one global offset, one byte at a time, or in random fragments
//! (seeded), where the random mode also alternates between the copying and the zero-copy
//! input paths and writes the transmit buffer out in random partial writes.
//! [`check_fragmentation`] runs one scenario under all of them and asserts identical
//! transcripts.
//!
//! Every scenario ends in [`Harness::finish`], which checks the resolution guarantee: each
//! id returned by `execute*`/`sync` is resolved exactly once (by a response or a failure)
//! unless it was cancelled, in which case never; `Closed` is reported at most once and is
//! the last event.

#![allow(dead_code)]

pub(crate) mod json_text;
pub(crate) mod vectors;

use core::fmt::Write as _;
use std::collections::BTreeMap;

use qmp_core::client::{
    Client, CloseReason, CommandFailure, CommandId, Config, ExecuteError, Output, State, Stats,
};
use qmp_core::commands::Command;
use qmp_core::json::{JsonStr, RawJson};
use qmp_core::message::QmpError;
use qmp_core::time::{Duration, Instant};

/// Values longer than this (minified) are abbreviated in the brief form.
const BRIEF_LIMIT: usize = 160;

/// How server bytes are cut into `handle_input` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Each `feed` call is one input.
    Whole,
    /// The stream is cut at this global offset (and at `feed` boundaries).
    At(usize),
    /// One byte per input.
    Bytewise,
    /// Fragments of 1..=max bytes from a seeded generator; also random input path and
    /// random partial writes of the transmit buffer.
    Random { seed: u64, max: usize },
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged {
    /// Everything about the event.
    pub(crate) full: String,
    /// The form expectations are written in.
    pub(crate) brief: String,
}

/// What a scenario run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Events in order.
    pub(crate) events: Vec<Logged>,
    /// Every byte the client transmitted, in order.
    pub(crate) tx: Vec<u8>,
    /// The client's counters at the end of the scenario.
    pub(crate) stats: Stats,
    /// The state at the end of the scenario.
    pub(crate) state: State,
    /// How many server bytes were fed.
    pub(crate) fed: usize,
    /// Events produced by the harness closing a session left open (not part of `events`).
    pub(crate) epilogue: Vec<Logged>,
    /// The full text of each response's value (or error), by command id.
    pub(crate) responses: BTreeMap<u64, String>,
}

impl Record {
    /// The brief forms of the events.
    pub(crate) fn brief(&self) -> Vec<String> {
        self.events.iter().map(|e| e.brief.clone()).collect()
    }

    /// The full forms of the events.
    pub(crate) fn full(&self) -> Vec<String> {
        self.events.iter().map(|e| e.full.clone()).collect()
    }

    /// Asserts the brief events equal `expected`, with a readable diff on failure.
    #[track_caller]
    pub(crate) fn assert_events(&self, expected: &[&str]) {
        let actual = self.brief();
        if actual != expected {
            let mut report = String::new();
            let n = actual.len().max(expected.len());
            for i in 0..n {
                let a = actual.get(i).map_or("<none>", String::as_str);
                let e = expected.get(i).copied().unwrap_or("<none>");
                let mark = if a == e { "  " } else { "!!" };
                let _ = writeln!(report, "{mark} {i:3} expected: {e}");
                if a != e {
                    let _ = writeln!(report, "{mark}     actual:   {a}");
                }
            }
            panic!("event transcript differs:\n{report}");
        }
    }

    /// The transmitted bytes as text (lossy), for messages.
    pub(crate) fn tx_text(&self) -> String {
        String::from_utf8_lossy(&self.tx).into_owned()
    }

    /// Asserts the transmitted bytes equal `expected`, byte for byte.
    #[track_caller]
    pub(crate) fn assert_tx(&self, expected: &[u8]) {
        assert!(
            self.tx == expected,
            "transmitted bytes differ\nexpected: {:?}\nactual:   {:?}",
            String::from_utf8_lossy(expected),
            self.tx_text()
        );
    }

    /// The full text of the reply to `id`.
    #[track_caller]
    pub(crate) fn response(&self, id: CommandId) -> &str {
        self.responses
            .get(&id.get())
            .unwrap_or_else(|| panic!("no response for {id}"))
    }
}

/// The setup of a session: configuration, buffer sizes and start time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    pub(crate) config: Config,
    pub(crate) rx: usize,
    pub(crate) tx: usize,
    pub(crate) start_ms: u64,
}

impl Setup {
    /// QMP with roomy buffers, no OOB, default timeouts.
    pub(crate) fn qmp() -> Self {
        Setup {
            config: Config::qmp(),
            rx: 8 * 1024,
            tx: 4 * 1024,
            start_ms: 0,
        }
    }

    /// The guest agent with roomy buffers.
    pub(crate) fn guest_agent() -> Self {
        Setup {
            config: Config::guest_agent(),
            rx: 8 * 1024,
            tx: 4 * 1024,
            start_ms: 0,
        }
    }

    /// Sets the configuration.
    pub(crate) fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the receive buffer size.
    pub(crate) fn rx(mut self, rx: usize) -> Self {
        self.rx = rx;
        self
    }

    /// Sets the transmit buffer size.
    pub(crate) fn tx(mut self, tx: usize) -> Self {
        self.tx = tx;
        self
    }

    /// Runs `scenario` once with `split` (in-flight capacity 32).
    pub(crate) fn run<F: Fn(&mut H<'_>)>(&self, split: Split, scenario: F) -> Record {
        self.run_n::<32>(split, &scenario)
    }

    /// Runs `scenario` once with `split`, in-flight capacity `N`.
    pub(crate) fn run_n<const N: usize>(
        &self,
        split: Split,
        scenario: &dyn Fn(&mut Harness<'_, N>),
    ) -> Record {
        let mut rx = vec![0u8; self.rx];
        let mut tx = vec![0u8; self.tx];
        let start = Instant::from_millis(self.start_ms);
        let client = Client::<N>::new(self.config, start, &mut rx, &mut tx);
        let mut harness = Harness::new(client, start, split);
        scenario(&mut harness);
        harness.finish()
    }

    /// Runs `scenario` whole, then under every fragmentation (see [`check_fragmentation`]),
    /// and asserts they all agree. Returns the whole run's record.
    pub(crate) fn check<F: Fn(&mut H<'_>)>(&self, scenario: F) -> Record {
        check_fragmentation::<32>(self, &scenario)
    }

    /// [`Setup::check`] with in-flight capacity `N`.
    pub(crate) fn check_n<const N: usize, F: Fn(&mut Harness<'_, N>)>(
        &self,
        scenario: F,
    ) -> Record {
        check_fragmentation::<N>(self, &scenario)
    }
}

/// The harness with the in-flight capacity most tests use.
pub(crate) type H<'b> = Harness<'b, 32>;

/// Whether the tests run under Miri, which interprets the code several thousand times
/// slower: each fragmentation check is then one extra run in random fragments (which also
/// takes the zero-copy input path and writes in short pieces) instead of every split.
pub(crate) const MIRI: bool = cfg!(miri);

/// The split points to try for a stream of `fed` bytes: all of them (0..=fed).
fn split_points(fed: usize) -> Vec<usize> {
    (0..=fed).collect()
}

/// Split points for very long streams: every point within `radius` of each message
/// boundary and of each multiple of `rx`, and every `stride`-th point elsewhere.
pub(crate) fn sampled_split_points(
    boundaries: &[usize],
    rx: usize,
    fed: usize,
    radius: usize,
    stride: usize,
) -> Vec<usize> {
    let mut points = std::collections::BTreeSet::new();
    let mut centres: Vec<usize> = boundaries.to_vec();
    centres.extend((1..=fed / rx.max(1)).map(|k| k * rx));
    for c in centres {
        for p in c.saturating_sub(radius)..=(c + radius).min(fed) {
            points.insert(p);
        }
    }
    for p in (0..=fed).step_by(stride.max(1)) {
        points.insert(p);
    }
    points.insert(fed);
    points.into_iter().collect()
}

/// Runs `scenario` whole, at every split point, one byte at a time and in random fragments,
/// and asserts that events, transmitted bytes, counters and final state are identical.
pub(crate) fn check_fragmentation<const N: usize>(
    setup: &Setup,
    scenario: &dyn Fn(&mut Harness<'_, N>),
) -> Record {
    let whole = setup.run_n(Split::Whole, scenario);
    let points = if MIRI {
        Vec::new()
    } else {
        split_points(whole.fed)
    };
    check_splits(setup, scenario, &whole, &points);
    whole
}

/// Like [`check_fragmentation`] with the given split points.
pub(crate) fn check_splits<const N: usize>(
    setup: &Setup,
    scenario: &dyn Fn(&mut Harness<'_, N>),
    whole: &Record,
    points: &[usize],
) {
    if MIRI {
        let random = setup.run_n(Split::Random { seed: 1, max: 300 }, scenario);
        assert_same(whole, &random, "in random fragments under Miri");
        return;
    }
    for &k in points {
        let split = setup.run_n(Split::At(k), scenario);
        assert_same(whole, &split, &format!("split at {k}"));
    }
    let bytewise = setup.run_n(Split::Bytewise, scenario);
    assert_same(whole, &bytewise, "one byte at a time");
    for seed in [1, 2, 3, 4] {
        for max in [7, 300] {
            let random = setup.run_n(Split::Random { seed, max }, scenario);
            assert_same(
                whole,
                &random,
                &format!("random fragments seed {seed} max {max}"),
            );
        }
    }
}

#[track_caller]
fn assert_same(whole: &Record, other: &Record, how: &str) {
    if whole.events != other.events {
        let n = whole.events.len().max(other.events.len());
        let mut report = String::new();
        for i in 0..n {
            let a = whole.events.get(i).map_or("<none>", |e| e.full.as_str());
            let b = other.events.get(i).map_or("<none>", |e| e.full.as_str());
            if a != b {
                let _ = writeln!(report, "{i:3} whole: {a}\n    {how}: {b}");
            }
        }
        panic!("events differ when fed {how}:\n{report}");
    }
    assert!(
        whole.tx == other.tx,
        "transmitted bytes differ when fed {how}:\nwhole: {:?}\nother: {:?}",
        whole.tx_text(),
        other.tx_text()
    );
    assert_eq!(whole.stats, other.stats, "stats differ when fed {how}");
    assert_eq!(
        whole.state, other.state,
        "final state differs when fed {how}"
    );
    assert_eq!(
        whole.epilogue, other.epilogue,
        "epilogue differs when fed {how}"
    );
}

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `1..=max`.
    pub(crate) fn size(&mut self, max: usize) -> usize {
        1 + (self.next_u64() % max.max(1) as u64) as usize
    }
}

/// Drives one client; see the module docs.
pub(crate) struct Harness<'b, const N: usize> {
    /// The client under test (use it directly for calls the harness does not wrap, then
    /// call [`Harness::drain`]).
    pub(crate) client: Client<'b, N>,
    now: Instant,
    split: Split,
    rng: Rng,
    /// Server bytes fed so far.
    fed: usize,
    events: Vec<Logged>,
    tx: Vec<u8>,
    issued: Vec<u64>,
    cancelled: Vec<u64>,
    resolutions: BTreeMap<u64, Vec<String>>,
    responses: BTreeMap<u64, String>,
    closed: usize,
    /// Whether `handle_input` refused bytes because the session had closed.
    pub(crate) refused_input: bool,
}

impl<'b, const N: usize> Harness<'b, N> {
    fn new(client: Client<'b, N>, now: Instant, split: Split) -> Self {
        let seed = match split {
            Split::Random { seed, .. } => seed,
            _ => 0,
        };
        Harness {
            client,
            now,
            split,
            rng: Rng::new(seed),
            fed: 0,
            events: Vec::new(),
            tx: Vec::new(),
            issued: Vec::new(),
            cancelled: Vec::new(),
            resolutions: BTreeMap::new(),
            responses: BTreeMap::new(),
            closed: 0,
            refused_input: false,
        }
    }

    /// The current virtual time.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// The events recorded so far (brief forms).
    pub(crate) fn brief(&self) -> Vec<String> {
        self.events.iter().map(|e| e.brief.clone()).collect()
    }

    /// How many events were recorded so far.
    pub(crate) fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The bytes transmitted so far.
    pub(crate) fn transmitted(&self) -> &[u8] {
        &self.tx
    }

    /// Feeds server bytes, cut according to the run's split mode.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = match self.split {
                Split::Whole => rest.len(),
                Split::At(k) if self.fed < k => (k - self.fed).min(rest.len()),
                Split::At(_) => rest.len(),
                Split::Bytewise => 1,
                Split::Random { max, .. } => self.rng.size(max).min(rest.len()),
            };
            let (chunk, tail) = rest.split_at(n);
            self.input(chunk);
            self.fed += n;
            rest = tail;
        }
    }

    /// Feeds server output the way a server sends it: each line (up to and including its
    /// LF) as a feed of its own, so that the client transmits what a message releases
    /// (negotiation, a sync answer) before the replies that follow it arrive. A reply
    /// whose bytes were fed before its request was transmitted cannot answer it.
    pub(crate) fn feed_lines(&mut self, bytes: &[u8]) {
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            self.feed(line);
        }
    }

    /// One input call (possibly several `handle_input` calls when the client takes fewer
    /// bytes than offered), draining after each.
    fn input(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        let mut stalls = 0;
        while !rest.is_empty() {
            let zero_copy = match self.split {
                Split::Random { .. } => self.rng.next_u64() & 1 == 0,
                _ => false,
            };
            let taken = if zero_copy {
                let window = self.client.rx_window();
                let n = window.len().min(rest.len());
                window[..n].copy_from_slice(&rest[..n]);
                if n == 0 && self.client.state() == State::Closed {
                    self.refused_input = true;
                    return;
                }
                match self.client.commit_rx(n) {
                    Ok(()) => n,
                    Err(_) => {
                        self.refused_input = true;
                        return;
                    }
                }
            } else {
                match self.client.handle_input(rest) {
                    Ok(n) => n,
                    Err(_) => {
                        self.refused_input = true;
                        return;
                    }
                }
            };
            assert!(taken <= rest.len(), "client took more bytes than offered");
            let before = self.events.len();
            self.drain();
            if taken == 0 && self.events.len() == before {
                stalls += 1;
                assert!(stalls < 3, "client takes no input and reports nothing");
            } else {
                stalls = 0;
            }
            rest = &rest[taken..];
        }
    }

    /// The peer closed its side.
    pub(crate) fn eof(&mut self) {
        self.client.handle_eof();
        self.drain();
    }

    /// Moves the clock to `ms` without calling `handle_timeout`.
    pub(crate) fn set_time(&mut self, ms: u64) {
        let t = Instant::from_millis(ms);
        assert!(t >= self.now, "virtual time must not go backwards");
        self.now = t;
    }

    /// Moves the clock to `ms` and calls `handle_timeout`.
    pub(crate) fn advance_to(&mut self, ms: u64) {
        self.set_time(ms);
        self.timeout();
    }

    /// Moves the clock to `t` (microsecond precision) and calls `handle_timeout`.
    pub(crate) fn advance_to_instant(&mut self, t: Instant) {
        assert!(t >= self.now, "virtual time must not go backwards");
        self.now = t;
        self.timeout();
    }

    /// Calls `handle_timeout` at the current time.
    pub(crate) fn timeout(&mut self) {
        self.client.handle_timeout(self.now);
        self.drain();
    }

    fn issued(
        &mut self,
        result: Result<CommandId, ExecuteError>,
    ) -> Result<CommandId, ExecuteError> {
        if let Ok(id) = result {
            assert!(!self.issued.contains(&id.get()), "id {id} returned twice");
            self.issued.push(id.get());
        }
        self.drain();
        result
    }

    /// `execute_json` (or `execute_json_oob`); the arguments are JSON text.
    pub(crate) fn try_json(
        &mut self,
        name: &str,
        arguments: Option<&[u8]>,
        oob: bool,
    ) -> Result<CommandId, ExecuteError> {
        let now = self.now;
        let result = if oob {
            self.client.execute_json_oob(now, name, arguments)
        } else {
            self.client.execute_json(now, name, arguments)
        };
        self.issued(result)
    }

    /// `execute_json`, which must succeed.
    #[track_caller]
    pub(crate) fn json(&mut self, name: &str, arguments: Option<&str>) -> CommandId {
        self.try_json(name, arguments.map(str::as_bytes), false)
            .unwrap_or_else(|e| panic!("execute_json {name}: {e}"))
    }

    /// `execute_json_oob`, which must succeed.
    #[track_caller]
    pub(crate) fn json_oob(&mut self, name: &str, arguments: Option<&str>) -> CommandId {
        self.try_json(name, arguments.map(str::as_bytes), true)
            .unwrap_or_else(|e| panic!("execute_json_oob {name}: {e}"))
    }

    /// Sends the request of one captured `.c2s` line the way this client would: same name,
    /// same `exec-oob`/`execute`, the same argument text; the id is the client's own.
    #[track_caller]
    pub(crate) fn line(&mut self, line: &[u8]) -> CommandId {
        let request = vectors::Request::parse(line);
        let arguments = request.arguments.as_deref();
        self.try_json(&request.name, arguments, request.oob)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot send {:?}: {e}",
                    String::from_utf8_lossy(line).trim_end()
                )
            })
    }

    /// `execute` of a typed command.
    pub(crate) fn try_execute<C: Command>(
        &mut self,
        command: &C,
    ) -> Result<CommandId, ExecuteError> {
        let now = self.now;
        let result = self.client.execute(now, command);
        self.issued(result)
    }

    /// `execute` of a typed command, which must succeed.
    #[track_caller]
    pub(crate) fn execute<C: Command>(&mut self, command: &C) -> CommandId {
        self.try_execute(command)
            .unwrap_or_else(|e| panic!("execute {}: {e}", C::NAME))
    }

    /// `execute` of a typed command, which must succeed, without draining: its request
    /// stays unwritten until the next drain (any input does one after taking its bytes),
    /// so the bytes of that input arrive before the request is transmitted.
    #[track_caller]
    pub(crate) fn execute_unsent<C: Command>(&mut self, command: &C) -> CommandId {
        let now = self.now;
        let id = self
            .client
            .execute(now, command)
            .unwrap_or_else(|e| panic!("execute {}: {e}", C::NAME));
        assert!(!self.issued.contains(&id.get()), "id {id} returned twice");
        self.issued.push(id.get());
        id
    }

    /// Guest-agent `sync`, which must succeed, without draining (see
    /// [`Harness::execute_unsent`]).
    #[track_caller]
    pub(crate) fn sync_unsent(&mut self, value: u64) -> CommandId {
        let now = self.now;
        let id = self
            .client
            .sync(now, value)
            .unwrap_or_else(|e| panic!("sync: {e}"));
        assert!(!self.issued.contains(&id.get()), "id {id} returned twice");
        self.issued.push(id.get());
        id
    }

    /// Guest-agent `sync_seeded`, which must succeed.
    #[track_caller]
    pub(crate) fn sync_seeded(&mut self) -> CommandId {
        let now = self.now;
        let result = self.client.sync_seeded(now);
        self.issued(result)
            .unwrap_or_else(|e| panic!("sync_seeded: {e}"))
    }

    /// `execute_oob` of a typed command.
    pub(crate) fn try_execute_oob<C: Command>(
        &mut self,
        command: &C,
    ) -> Result<CommandId, ExecuteError> {
        let now = self.now;
        let result = self.client.execute_oob(now, command);
        self.issued(result)
    }

    /// `execute_value`: arguments as any serializable value.
    pub(crate) fn try_raw<A: serde::Serialize + ?Sized>(
        &mut self,
        name: &str,
        arguments: Option<&A>,
    ) -> Result<CommandId, ExecuteError> {
        let now = self.now;
        let result = self.client.execute_value(now, name, arguments);
        self.issued(result)
    }

    /// `execute_value` without arguments, which must succeed.
    #[track_caller]
    pub(crate) fn raw(&mut self, name: &str) -> CommandId {
        self.try_raw::<()>(name, None)
            .unwrap_or_else(|e| panic!("execute_value {name}: {e}"))
    }

    /// Guest agent `sync`.
    pub(crate) fn try_sync(&mut self, value: u64) -> Result<CommandId, ExecuteError> {
        let now = self.now;
        let result = self.client.sync(now, value);
        self.issued(result)
    }

    /// Guest agent `sync`, which must succeed.
    #[track_caller]
    pub(crate) fn sync(&mut self, value: u64) -> CommandId {
        self.try_sync(value).unwrap_or_else(|e| panic!("sync: {e}"))
    }

    /// Sends each request line of a [`vectors::Session`], checking the id it gets.
    #[track_caller]
    pub(crate) fn send(&mut self, requests: &[(Vec<u8>, u64)]) {
        for (line, id) in requests {
            let got = self.line(line);
            assert_eq!(
                got.get(),
                *id,
                "unexpected id for {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// `cancel`; remembers the id as given up when the client says it was in flight.
    pub(crate) fn cancel(&mut self, id: CommandId) -> bool {
        let was_in_flight = self.client.cancel(id);
        if was_in_flight {
            self.cancelled.push(id.get());
        }
        self.drain();
        was_in_flight
    }

    /// Drains the outputs as the crate's run loop does (core/README.md): transmit, then
    /// one event, again, until there is no event; then transmit is empty too.
    pub(crate) fn drain(&mut self) {
        loop {
            self.transmit();
            let Some(event) = self.client.poll_output() else {
                break;
            };
            let logged = render(&event);
            if self.closed > 0 {
                panic!("event after Closed: {}", logged.full);
            }
            match event {
                Output::Response(response) => {
                    self.resolutions
                        .entry(response.id.get())
                        .or_default()
                        .push(logged.brief.clone());
                    self.responses
                        .insert(response.id.get(), result_text(&response.result));
                }
                Output::CommandFailed { id, .. } => {
                    self.resolutions
                        .entry(id.get())
                        .or_default()
                        .push(logged.brief.clone());
                }
                Output::Closed(_) => self.closed += 1,
                _ => {}
            }
            self.events.push(logged);
        }
        assert!(
            self.client.poll_transmit().is_none(),
            "transmit not drained"
        );
    }

    /// Writes out everything `poll_transmit` offers (in random partial writes in random
    /// mode).
    fn transmit(&mut self) {
        while let Some(bytes) = self.client.poll_transmit() {
            assert!(!bytes.is_empty(), "poll_transmit offered an empty slice");
            let n = match self.split {
                Split::Random { .. } => self.rng.size(bytes.len()),
                _ => bytes.len(),
            };
            self.tx.extend_from_slice(&bytes[..n]);
            self.client.mark_transmitted(n);
        }
    }

    /// Ends the scenario: records the state, closes a session left open (its events go to
    /// the epilogue) and checks the resolution guarantee.
    pub(crate) fn finish(mut self) -> Record {
        self.drain();
        let state = self.client.state();
        let stats = self.client.stats();
        let main_events = core::mem::take(&mut self.events);
        if state != State::Closed {
            assert_eq!(self.closed, 0, "Closed reported but state is {state:?}");
            self.client.close(CloseReason::Local);
            self.drain();
            assert_eq!(self.closed, 1, "closing the session did not report Closed");
        }
        let epilogue = core::mem::take(&mut self.events);
        assert!(self.closed <= 1, "Closed reported {} times", self.closed);
        for (id, resolutions) in &self.resolutions {
            assert!(
                self.issued.contains(id),
                "#{id} resolved ({resolutions:?}) but never issued"
            );
        }
        for id in &self.issued {
            let resolutions = self.resolutions.get(id).cloned().unwrap_or_default();
            if self.cancelled.contains(id) {
                assert!(
                    resolutions.is_empty(),
                    "cancelled #{id} was still resolved: {resolutions:?}"
                );
            } else {
                assert_eq!(
                    resolutions.len(),
                    1,
                    "#{id} must be resolved exactly once, got {resolutions:?}"
                );
            }
        }
        assert_eq!(
            self.client.in_flight(),
            0,
            "commands left in flight after close"
        );
        if let Some(last) = epilogue.last().or(main_events.last()) {
            if self.closed == 1 {
                assert!(
                    last.brief.starts_with("Closed"),
                    "Closed is not the last event: {}",
                    last.full
                );
            }
        }
        Record {
            events: main_events,
            tx: self.tx,
            stats,
            state,
            fed: self.fed,
            epilogue,
            responses: self.responses,
        }
    }
}

/// The full text of a reply's result.
fn result_text(result: &Result<RawJson<'_>, QmpError<'_>>) -> String {
    match result {
        Ok(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        Err(error) => format!("{}: {}", error.class.name(), error.desc.raw()),
    }
}

fn brief_json(raw: &RawJson<'_>) -> String {
    let text = json_text::minify(raw.as_bytes());
    if text.len() > BRIEF_LIMIT {
        format!("<{} bytes>", text.len())
    } else {
        text
    }
}

fn full_json(raw: &RawJson<'_>) -> String {
    String::from_utf8_lossy(raw.as_bytes()).into_owned()
}

fn error_text(error: &QmpError<'_>) -> String {
    format!("{}: {}", error.class.name(), error.desc.raw())
}

fn json_str(s: &JsonStr<'_>) -> String {
    s.raw().to_owned()
}

fn result_forms(result: &Result<RawJson<'_>, QmpError<'_>>) -> (String, String) {
    match result {
        Ok(value) => (
            format!("ok {}", full_json(value)),
            format!("ok {}", brief_json(value)),
        ),
        Err(error) => {
            let text = format!("err {}", error_text(error));
            (text.clone(), text)
        }
    }
}

/// Renders an event in its full and brief forms.
pub(crate) fn render(event: &Output<'_>) -> Logged {
    let (full, brief) = match event {
        Output::Greeting(greeting) => {
            let mut caps = Vec::new();
            if greeting.capabilities.oob {
                caps.push("oob".to_owned());
            }
            if greeting.capabilities.unknown > 0 {
                caps.push(format!("+{} unknown", greeting.capabilities.unknown));
            }
            let text = format!(
                "Greeting {} [{}] \"{}\"",
                greeting.version,
                caps.join(" "),
                json_str(&greeting.package)
            );
            (format!("{text} {}", full_json(&greeting.raw)), text)
        }
        Output::Ready => ("Ready".to_owned(), "Ready".to_owned()),
        Output::Resynchronised => ("Resynchronised".to_owned(), "Resynchronised".to_owned()),
        Output::Response(response) => {
            let (full, brief) = result_forms(&response.result);
            (
                format!("Response {} {full}", response.id),
                format!("Response {} {brief}", response.id),
            )
        }
        Output::AsyncEvent(event) => {
            let name = json_str(&event.name);
            let ts = event.timestamp;
            let (full_data, brief_data) = match event.data {
                Some(data) => (
                    format!(" {}", full_json(&data)),
                    format!(" {}", brief_json(&data)),
                ),
                None => (String::new(), String::new()),
            };
            (
                format!(
                    "Event {name} @{}/{}{full_data}",
                    ts.seconds, ts.microseconds
                ),
                format!("Event {name}{brief_data}"),
            )
        }
        Output::CommandFailed { id, reason } => {
            let reason = match reason {
                CommandFailure::TimedOut => "TimedOut".to_owned(),
                CommandFailure::ConnectionClosed => "ConnectionClosed".to_owned(),
                CommandFailure::ReplyTooLarge { len } => format!("ReplyTooLarge {len}"),
                other => format!("{other:?}"),
            };
            let text = format!("CommandFailed {id} {reason}");
            (text.clone(), text)
        }
        Output::UnattributedError(error) => {
            let text = format!("UnattributedError {}", error_text(error));
            (text.clone(), text)
        }
        Output::UnmatchedResponse { id, result } => {
            let id = id.map_or("-".to_owned(), |raw| full_json(&raw));
            let (full, brief) = result_forms(result);
            (
                format!("Unmatched id={id} {full}"),
                format!("Unmatched id={id} {brief}"),
            )
        }
        Output::Malformed(error) => (
            format!("Malformed {:?} at {}", error.kind, error.offset),
            format!("Malformed {:?}", error.kind),
        ),
        Output::Oversize { len } => {
            let text = format!("Oversize {len}");
            (text.clone(), text)
        }
        Output::Unknown(raw) => (
            format!("Unknown {}", full_json(raw)),
            format!("Unknown {}", brief_json(raw)),
        ),
        Output::NegotiationFailed(error) => {
            let text = format!("NegotiationFailed {}", error_text(error));
            (text.clone(), text)
        }
        Output::Closed(reason) => {
            let text = format!("Closed {}", close_text(reason));
            (text.clone(), text)
        }
        other => {
            let text = format!("Other {other:?}");
            (text.clone(), text)
        }
    };
    Logged { full, brief }
}

fn close_text(reason: &CloseReason) -> String {
    match reason {
        CloseReason::EndOfStream { truncated: false } => "EndOfStream".to_owned(),
        CloseReason::EndOfStream { truncated: true } => "EndOfStream truncated".to_owned(),
        CloseReason::GreetingTimedOut => "GreetingTimedOut".to_owned(),
        CloseReason::Protocol(error) => format!("Protocol {error:?}"),
        CloseReason::Local => "Local".to_owned(),
        other => format!("{other:?}"),
    }
}

/// A duration of `ms` milliseconds.
pub(crate) fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
