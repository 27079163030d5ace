//! A QMP console for a browser page: `qmp-core` compiled to WebAssembly.
//!
//! The page owns the WebSocket and the clock; everything the protocol needs — framing,
//! the greeting, `qmp_capabilities`, command ids, encoding, events, deadlines — happens
//! in [`qmp_core::client::Client`]. This crate is only the shell around it: it owns the
//! buffers, turns text typed by a person into [`Client::execute_json`] calls, and reports
//! what happened as JSON text the page can `JSON.parse`.
//!
//! [`Session`] is the shell in plain Rust (tested on the host); [`Console`] exposes it to
//! JavaScript through wasm-bindgen.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use qmp_core::client::{Client, CommandId, Config, Output, State};
use qmp_core::json::RawJson;
use qmp_core::message::QmpError;
use qmp_core::time::Instant;
use wasm_bindgen::prelude::*;

/// Receive buffer size: holds `query-qmp-schema` (117 KB from qemu-storage-daemon 10.0.2,
/// 236 KB from qemu-system-x86_64).
pub const RX_BYTES: usize = 256 * 1024;
/// Transmit buffer size: far more than any command a person types.
pub const TX_BYTES: usize = 64 * 1024;
/// Commands in flight at once.
pub const IN_FLIGHT: usize = 16;

/// A millisecond timestamp from `performance.now()` as the core's [`Instant`].
/// Negative and non-finite values count as zero.
pub fn instant_from_millis(now_ms: f64) -> Instant {
    if now_ms.is_finite() && now_ms > 0.0 {
        // `as` saturates at u64::MAX for huge values.
        Instant::from_micros((now_ms * 1000.0) as u64)
    } else {
        Instant::ZERO
    }
}

/// Splits a typed command line into its name and its JSON arguments:
/// `query-version` or `blockdev-add {"driver": "null-co", "node-name": "n0"}`.
/// Returns `None` for a blank line.
pub fn parse_command_line(line: &str) -> Option<(&str, Option<&str>)> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    match line.find(|c: char| c.is_whitespace() || c == '{') {
        Some(split) => {
            let (name, rest) = line.split_at(split);
            let rest = rest.trim();
            Some((name, (!rest.is_empty()).then_some(rest)))
        }
        None => Some((line, None)),
    }
}

/// A receive and a transmit buffer that live as long as the page.
type Buffers = (&'static mut [u8], &'static mut [u8]);

thread_local! {
    /// Buffers of ended sessions, handed to the next ones: a page that reconnects again
    /// and again allocates only as many buffer pairs as it has sessions open at once.
    static SPARE_BUFFERS: std::cell::RefCell<Vec<Buffers>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer pair for a new session: a spare one, or a new pair allocated for good (the
/// client borrows its buffers for its whole life; without `unsafe`, `'static` is how a
/// shell owns them).
fn take_buffers() -> Buffers {
    SPARE_BUFFERS
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| {
            (
                Box::leak(vec![0u8; RX_BYTES].into_boxed_slice()),
                Box::leak(vec![0u8; TX_BYTES].into_boxed_slice()),
            )
        })
}

/// The console session in plain Rust: one [`Client`] and the reports not yet taken.
pub struct Session {
    /// Its buffers go back to [`SPARE_BUFFERS`] when the session is dropped.
    client: Client<'static, IN_FLIGHT>,
    reports: Vec<String>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // An empty client takes its place for the last moment of the session's life.
        let empty = Client::new(Config::qmp(), Instant::ZERO, &mut [], &mut []);
        let buffers = std::mem::replace(&mut self.client, empty).into_buffers();
        SPARE_BUFFERS.with(|spare| spare.borrow_mut().push(buffers));
    }
}

impl Session {
    /// A QMP session starting at `now` (10 s greeting timeout, 30 s command timeout),
    /// on the buffers of an ended session when there is one (RX_BYTES + TX_BYTES each).
    pub fn new(now: Instant) -> Self {
        let (rx, tx) = take_buffers();
        Session {
            client: Client::new(Config::qmp(), now, rx, tx),
            reports: Vec::new(),
        }
    }

    /// Feeds bytes received from the socket and drains what they caused.
    pub fn receive(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.client.handle_input(bytes) {
                Ok(taken) => {
                    bytes = bytes.get(taken..).unwrap_or_default();
                    let drained = self.drain();
                    if taken == 0 && drained == 0 {
                        // Nothing taken and nothing to drain cannot happen with a
                        // non-empty receive buffer; stop rather than spin.
                        self.reports.push(format!(
                            "{{\"kind\":\"dropped\",\"bytes\":{}}}",
                            bytes.len()
                        ));
                        break;
                    }
                }
                Err(closed) => {
                    self.drain();
                    self.reports.push(format!(
                        "{{\"kind\":\"dropped\",\"bytes\":{},\"reason\":{}}}",
                        bytes.len(),
                        json_string(&closed.to_string())
                    ));
                    break;
                }
            }
        }
        self.drain();
    }

    /// The socket closed.
    pub fn handle_eof(&mut self) {
        self.client.handle_eof();
        self.drain();
    }

    /// Expires deadlines at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
        self.drain();
    }

    /// Queues a typed command line (see [`parse_command_line`]); returns its id.
    pub fn execute(&mut self, now: Instant, line: &str) -> Result<CommandId, String> {
        let (name, arguments) =
            parse_command_line(line).ok_or_else(|| "type a command name".to_owned())?;
        let result = self
            .client
            .execute_json(now, name, arguments.map(str::as_bytes));
        self.drain();
        result.map_err(|error| error.to_string())
    }

    /// The next deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    /// Takes every byte the client has to send.
    pub fn take_transmit(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(bytes) = self.client.poll_transmit() {
            out.extend_from_slice(bytes);
            let n = bytes.len();
            self.client.mark_transmitted(n);
        }
        out
    }

    /// Takes the reports gathered since the last call, as one JSON array.
    pub fn take_reports(&mut self) -> String {
        let mut out = String::from("[");
        for (i, report) in self.reports.drain(..).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&report);
        }
        out.push(']');
        out
    }

    /// `awaiting-greeting`, `negotiating`, `ready` or `closed`.
    pub fn state(&self) -> &'static str {
        match self.client.state() {
            State::AwaitingGreeting => "awaiting-greeting",
            State::Negotiating => "negotiating",
            State::Ready => "ready",
            State::Closed => "closed",
            _ => "unknown",
        }
    }

    /// The server's version from its greeting, as `major.minor.micro`.
    pub fn server_version(&self) -> Option<String> {
        self.client.server_version().map(|v| v.to_string())
    }

    /// Drains every pending event into `reports`; returns how many there were.
    fn drain(&mut self) -> usize {
        let mut count = 0;
        while let Some(event) = self.client.poll_output() {
            count += 1;
            if let Some(report) = report(&event) {
                self.reports.push(report);
            }
        }
        count
    }
}

/// One event as a JSON object for the page. Values from the server are embedded as the
/// server sent them (already valid JSON; strings stay escaped as on the wire).
fn report(event: &Output<'_>) -> Option<String> {
    let mut out = String::new();
    match event {
        Output::Greeting(greeting) => {
            let _ = write!(
                out,
                "{{\"kind\":\"greeting\",\"version\":\"{}\",\"package\":\"{}\",\"oob\":{}}}",
                greeting.version,
                greeting.package.raw(),
                greeting.capabilities.oob
            );
        }
        Output::Ready => out.push_str("{\"kind\":\"ready\"}"),
        Output::Response(response) => {
            let _ = write!(out, "{{\"kind\":\"reply\",\"id\":{},", response.id.get());
            push_result(&mut out, &response.result);
            out.push('}');
        }
        Output::AsyncEvent(event) => {
            let _ = write!(
                out,
                "{{\"kind\":\"event\",\"name\":\"{}\",\"data\":{},\"seconds\":{},\"microseconds\":{}}}",
                event.name.raw(),
                event.data.map_or("null", |data| data.as_str()),
                event.timestamp.seconds,
                event.timestamp.microseconds
            );
        }
        Output::CommandFailed { id, reason } => {
            let _ = write!(
                out,
                "{{\"kind\":\"failed\",\"id\":{},\"reason\":{}}}",
                id.get(),
                json_string(&reason.to_string())
            );
        }
        Output::UnattributedError(error) => {
            out.push_str("{\"kind\":\"unattributed-error\",");
            push_error(&mut out, error);
            out.push('}');
        }
        Output::UnmatchedResponse { id, result } => {
            let _ = write!(
                out,
                "{{\"kind\":\"unmatched\",\"id\":{},",
                id.map_or("null", |id| id.as_str())
            );
            push_result(&mut out, result);
            out.push('}');
        }
        Output::Malformed(error) => {
            let _ = write!(
                out,
                "{{\"kind\":\"malformed\",\"reason\":{}}}",
                json_string(&error.to_string())
            );
        }
        Output::Oversize { len } => {
            let _ = write!(out, "{{\"kind\":\"oversize\",\"bytes\":{len}}}");
        }
        Output::Unknown(raw) => {
            let _ = write!(out, "{{\"kind\":\"unknown\",\"message\":{}}}", raw.as_str());
        }
        Output::NegotiationFailed(error) => {
            out.push_str("{\"kind\":\"negotiation-failed\",");
            push_error(&mut out, error);
            out.push('}');
        }
        Output::Closed(reason) => {
            let _ = write!(
                out,
                "{{\"kind\":\"closed\",\"reason\":{}}}",
                json_string(&reason.to_string())
            );
        }
        _ => return None,
    }
    Some(out)
}

fn push_result(out: &mut String, result: &Result<RawJson<'_>, QmpError<'_>>) {
    match result {
        Ok(value) => {
            out.push_str("\"return\":");
            out.push_str(value.as_str());
        }
        Err(error) => push_error(out, error),
    }
}

fn push_error(out: &mut String, error: &QmpError<'_>) {
    let _ = write!(
        out,
        "\"error\":{{\"class\":\"{}\",\"desc\":\"{}\"}}",
        error.class.name(),
        error.desc.raw()
    );
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The console as JavaScript sees it. Call pattern, after every call that changes
/// something: send [`Console::take_transmit`] on the socket if it is not empty, render
/// [`Console::take_reports`], and re-arm a timer for [`Console::poll_timeout`].
#[wasm_bindgen]
pub struct Console {
    session: Session,
}

#[wasm_bindgen]
impl Console {
    /// A new session; `now_ms` is `performance.now()`.
    #[wasm_bindgen(constructor)]
    pub fn new(now_ms: f64) -> Console {
        Console {
            session: Session::new(instant_from_millis(now_ms)),
        }
    }

    /// Feeds one WebSocket message's bytes.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.session.receive(bytes);
    }

    /// The WebSocket closed.
    pub fn handle_eof(&mut self) {
        self.session.handle_eof();
    }

    /// Expires deadlines; call when [`Console::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now_ms: f64) {
        self.session.handle_timeout(instant_from_millis(now_ms));
    }

    /// Queues `name` or `name {json arguments}`; returns the command's id, or throws
    /// with the reason it could not be queued (nothing is sent then).
    pub fn execute(&mut self, now_ms: f64, line: &str) -> Result<f64, JsError> {
        self.session
            .execute(instant_from_millis(now_ms), line)
            // Ids start at 1 and count up by one: exact in an f64 for 2^53 commands.
            .map(|id| id.get() as f64)
            .map_err(|reason| JsError::new(&reason))
    }

    /// The next deadline in `performance.now()` milliseconds, or `undefined`.
    pub fn poll_timeout(&self) -> Option<f64> {
        self.session
            .poll_timeout()
            .map(|deadline| deadline.as_micros() as f64 / 1000.0)
    }

    /// The bytes to send, as one binary WebSocket message (empty: nothing to send).
    pub fn take_transmit(&mut self) -> Vec<u8> {
        self.session.take_transmit()
    }

    /// What happened since the last call, as a JSON array of objects with a `kind`:
    /// `greeting` (`version`, `package`, `oob`), `ready`, `reply` (`id`, `return` or
    /// `error`), `event` (`name`, `data`, `seconds`, `microseconds`), `failed` (`id`,
    /// `reason`), `unattributed-error`, `unmatched`, `malformed`, `oversize`, `unknown`,
    /// `negotiation-failed`, `closed` (`reason`), `dropped`.
    pub fn take_reports(&mut self) -> String {
        self.session.take_reports()
    }

    /// `awaiting-greeting`, `negotiating`, `ready` or `closed`.
    pub fn state(&self) -> String {
        self.session.state().to_owned()
    }

    /// The server's QEMU version from its greeting (`10.0.2`), or `undefined`.
    pub fn server_version(&self) -> Option<String> {
        self.session.server_version()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"Debian 1:10.0.2\"}, \"capabilities\": [\"oob\"]}}\r\n";

    #[test]
    fn command_lines_split_into_name_and_arguments() {
        assert_eq!(
            parse_command_line("  query-version \n"),
            Some(("query-version", None))
        );
        assert_eq!(
            parse_command_line("blockdev-add {\"driver\": \"null-co\"}"),
            Some(("blockdev-add", Some("{\"driver\": \"null-co\"}")))
        );
        assert_eq!(
            parse_command_line("query-jobs{}"),
            Some(("query-jobs", Some("{}")))
        );
        assert_eq!(parse_command_line("   "), None);
    }

    #[test]
    fn negotiates_runs_a_command_and_reports_events() {
        let mut session = Session::new(Instant::ZERO);
        let id = session
            .execute(Instant::ZERO, "blockdev-create {\"job-id\": \"job0\"}")
            .unwrap();
        assert!(session.take_transmit().is_empty(), "held until negotiated");
        // The greeting split across two WebSocket messages.
        let (head, tail) = GREETING.split_at(30);
        session.receive(head);
        assert_eq!(session.take_reports(), "[]");
        session.receive(tail);
        assert_eq!(session.state(), "negotiating");
        assert_eq!(session.server_version().as_deref(), Some("10.0.2"));
        assert_eq!(
            session.take_transmit(),
            b"{\"execute\":\"qmp_capabilities\"}\n"
        );
        session.receive(b"{\"return\": {}}\r\n");
        assert_eq!(
            session.take_transmit(),
            b"{\"execute\":\"blockdev-create\",\"arguments\":{\"job-id\": \"job0\"},\"id\":1}\n"
        );
        session.receive(b"{\"timestamp\": {\"seconds\": 17, \"microseconds\": 4}, \"event\": \"JOB_STATUS_CHANGE\", \"data\": {\"status\": \"created\", \"id\": \"job0\"}}\r\n{\"return\": {}, \"id\": 1}\r\n",
        );
        assert_eq!(id.get(), 1);
        assert_eq!(
            session.take_reports(),
            "[{\"kind\":\"greeting\",\"version\":\"10.0.2\",\"package\":\"Debian 1:10.0.2\",\"oob\":true},\
             {\"kind\":\"ready\"},\
             {\"kind\":\"event\",\"name\":\"JOB_STATUS_CHANGE\",\"data\":{\"status\": \"created\", \"id\": \"job0\"},\"seconds\":17,\"microseconds\":4},\
             {\"kind\":\"reply\",\"id\":1,\"return\":{}}]"
        );
    }

    #[test]
    fn errors_timeouts_and_close_are_reported() {
        let mut session = Session::new(Instant::ZERO);
        session.receive(GREETING);
        session.receive(b"{\"return\": {}}\n");
        let _ = session.take_transmit();
        let _ = session.take_reports();
        assert_eq!(
            session.execute(Instant::ZERO, "x {not json}"),
            Err("arguments must be one JSON object".to_owned())
        );
        assert!(session.execute(Instant::ZERO, "").is_err());
        let id = session.execute(Instant::ZERO, "nope").unwrap();
        // A reply only answers a request that was written before it began to arrive.
        let _ = session.take_transmit();
        session.receive(b"{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}\n",
        );
        assert_eq!(id.get(), 1);
        let stuck = session.execute(Instant::ZERO, "query-jobs").unwrap();
        let deadline = session.poll_timeout().unwrap();
        assert_eq!(deadline, Instant::from_secs(30));
        session.handle_timeout(deadline);
        session.handle_eof();
        assert_eq!(
            session.take_reports(),
            format!(
                "[{{\"kind\":\"reply\",\"id\":1,\"error\":{{\"class\":\"CommandNotFound\",\"desc\":\"The command nope has not been found\"}}}},\
                 {{\"kind\":\"failed\",\"id\":{},\"reason\":\"command timed out\"}},\
                 {{\"kind\":\"closed\",\"reason\":\"end of stream\"}}]",
                stuck.get()
            )
        );
        assert_eq!(session.state(), "closed");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn a_new_session_reuses_the_buffers_of_an_ended_one() {
        let first = Session::new(Instant::ZERO);
        drop(first);
        let spare_before = SPARE_BUFFERS.with(|spare| spare.borrow().len());
        assert!(spare_before >= 1);
        let second = Session::new(Instant::ZERO);
        assert_eq!(
            SPARE_BUFFERS.with(|spare| spare.borrow().len()),
            spare_before - 1
        );
        drop(second);
        assert_eq!(
            SPARE_BUFFERS.with(|spare| spare.borrow().len()),
            spare_before
        );
    }
}
