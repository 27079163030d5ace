//! The captured transcripts of `../shared/protocol/vectors` (copied to `tests/data/vectors`
//! and embedded, so the tests run under Miri and from any checkout), and the helpers that
//! turn a capture into the session this client would have had: its requests rebuilt with
//! the client's own integer ids, and the server's replies carrying those ids.

use super::json_text::{self, Style};

/// One captured scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vector {
    /// File name without extension.
    pub(crate) name: &'static str,
    /// Every byte the server sent.
    pub(crate) s2c: &'static [u8],
    /// Every byte the capturing client sent (empty when not saved).
    pub(crate) c2s: &'static [u8],
}

/// Every vector in the index.
pub(crate) const ALL: &[Vector] = &[
    Vector {
        name: "01-greeting",
        s2c: include_bytes!("../data/vectors/01-greeting.s2c"),
        c2s: include_bytes!("../data/vectors/01-greeting.c2s"),
    },
    Vector {
        name: "02-negotiation",
        s2c: include_bytes!("../data/vectors/02-negotiation.s2c"),
        c2s: include_bytes!("../data/vectors/02-negotiation.c2s"),
    },
    Vector {
        name: "03-negotiation-oob",
        s2c: include_bytes!("../data/vectors/03-negotiation-oob.s2c"),
        c2s: include_bytes!("../data/vectors/03-negotiation-oob.c2s"),
    },
    Vector {
        name: "04-before-negotiation",
        s2c: include_bytes!("../data/vectors/04-before-negotiation.s2c"),
        c2s: include_bytes!("../data/vectors/04-before-negotiation.c2s"),
    },
    Vector {
        name: "05-query-version",
        s2c: include_bytes!("../data/vectors/05-query-version.s2c"),
        c2s: include_bytes!("../data/vectors/05-query-version.c2s"),
    },
    Vector {
        name: "06-query-commands",
        s2c: include_bytes!("../data/vectors/06-query-commands.s2c"),
        c2s: include_bytes!("../data/vectors/06-query-commands.c2s"),
    },
    Vector {
        name: "07-query-qmp-schema",
        s2c: include_bytes!("../data/vectors/07-query-qmp-schema.s2c"),
        c2s: include_bytes!("../data/vectors/07-query-qmp-schema.c2s"),
    },
    Vector {
        name: "08-unknown-command",
        s2c: include_bytes!("../data/vectors/08-unknown-command.s2c"),
        c2s: include_bytes!("../data/vectors/08-unknown-command.c2s"),
    },
    Vector {
        name: "09-malformed-json",
        s2c: include_bytes!("../data/vectors/09-malformed-json.s2c"),
        c2s: include_bytes!("../data/vectors/09-malformed-json.c2s"),
    },
    Vector {
        name: "10-parser-reset",
        s2c: include_bytes!("../data/vectors/10-parser-reset.s2c"),
        c2s: include_bytes!("../data/vectors/10-parser-reset.c2s"),
    },
    Vector {
        name: "11-non-object",
        s2c: include_bytes!("../data/vectors/11-non-object.s2c"),
        c2s: include_bytes!("../data/vectors/11-non-object.c2s"),
    },
    Vector {
        name: "12-bad-arguments",
        s2c: include_bytes!("../data/vectors/12-bad-arguments.s2c"),
        c2s: include_bytes!("../data/vectors/12-bad-arguments.c2s"),
    },
    Vector {
        name: "14-blockdev-add-null-co",
        s2c: include_bytes!("../data/vectors/14-blockdev-add-null-co.s2c"),
        c2s: include_bytes!("../data/vectors/14-blockdev-add-null-co.c2s"),
    },
    Vector {
        name: "15-job-blockdev-create",
        s2c: include_bytes!("../data/vectors/15-job-blockdev-create.s2c"),
        c2s: include_bytes!("../data/vectors/15-job-blockdev-create.c2s"),
    },
    Vector {
        name: "16-job-mirror",
        s2c: include_bytes!("../data/vectors/16-job-mirror.s2c"),
        c2s: include_bytes!("../data/vectors/16-job-mirror.c2s"),
    },
    Vector {
        name: "17-exec-oob-qsd",
        s2c: include_bytes!("../data/vectors/17-exec-oob-qsd.s2c"),
        c2s: include_bytes!("../data/vectors/17-exec-oob-qsd.c2s"),
    },
    Vector {
        name: "18-pretty",
        s2c: include_bytes!("../data/vectors/18-pretty.s2c"),
        c2s: include_bytes!("../data/vectors/18-pretty.c2s"),
    },
    Vector {
        name: "19-unicode-escapes",
        s2c: include_bytes!("../data/vectors/19-unicode-escapes.s2c"),
        c2s: include_bytes!("../data/vectors/19-unicode-escapes.c2s"),
    },
    Vector {
        name: "20-quit",
        s2c: include_bytes!("../data/vectors/20-quit.s2c"),
        c2s: include_bytes!("../data/vectors/20-quit.c2s"),
    },
    Vector {
        name: "21-second-client-A",
        s2c: include_bytes!("../data/vectors/21-second-client-A.s2c"),
        c2s: include_bytes!("../data/vectors/21-second-client-A.c2s"),
    },
    Vector {
        name: "21-second-client-B",
        s2c: include_bytes!("../data/vectors/21-second-client-B.s2c"),
        c2s: include_bytes!("../data/vectors/21-second-client-B.c2s"),
    },
    Vector {
        name: "22-disconnect-pending-B",
        s2c: include_bytes!("../data/vectors/22-disconnect-pending-B.s2c"),
        c2s: include_bytes!("../data/vectors/22-disconnect-pending-B.c2s"),
    },
    Vector {
        name: "24-token-size-limit",
        s2c: include_bytes!("../data/vectors/24-token-size-limit.s2c"),
        c2s: b"",
    },
    Vector {
        name: "25-partial-then-reconnect-A",
        s2c: include_bytes!("../data/vectors/25-partial-then-reconnect-A.s2c"),
        c2s: include_bytes!("../data/vectors/25-partial-then-reconnect-A.c2s"),
    },
    Vector {
        name: "25-partial-then-reconnect-B",
        s2c: include_bytes!("../data/vectors/25-partial-then-reconnect-B.s2c"),
        c2s: include_bytes!("../data/vectors/25-partial-then-reconnect-B.c2s"),
    },
    Vector {
        name: "27-two-monitors-events-X",
        s2c: include_bytes!("../data/vectors/27-two-monitors-events-X.s2c"),
        c2s: include_bytes!("../data/vectors/27-two-monitors-events-X.c2s"),
    },
    Vector {
        name: "27-two-monitors-events-Y",
        s2c: include_bytes!("../data/vectors/27-two-monitors-events-Y.s2c"),
        c2s: include_bytes!("../data/vectors/27-two-monitors-events-Y.c2s"),
    },
    Vector {
        name: "30-qsys-stop-cont-reset-quit",
        s2c: include_bytes!("../data/vectors/30-qsys-stop-cont-reset-quit.s2c"),
        c2s: include_bytes!("../data/vectors/30-qsys-stop-cont-reset-quit.c2s"),
    },
    Vector {
        name: "31-qsys-oob",
        s2c: include_bytes!("../data/vectors/31-qsys-oob.s2c"),
        c2s: include_bytes!("../data/vectors/31-qsys-oob.c2s"),
    },
    Vector {
        name: "33-qsys-no-oob-pipelined",
        s2c: include_bytes!("../data/vectors/33-qsys-no-oob-pipelined.s2c"),
        c2s: include_bytes!("../data/vectors/33-qsys-no-oob-pipelined.c2s"),
    },
    Vector {
        name: "40-qga-session",
        s2c: include_bytes!("../data/vectors/40-qga-session.s2c"),
        c2s: include_bytes!("../data/vectors/40-qga-session.c2s"),
    },
];

impl Vector {
    /// The vector called `name`.
    #[track_caller]
    pub(crate) fn get(name: &str) -> Vector {
        *ALL.iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
    }

    /// Whether the server is the guest agent.
    pub(crate) fn is_guest_agent(&self) -> bool {
        self.name.contains("qga")
    }

    /// The server's messages, each with its line end (see [`json_text::split_messages`]).
    pub(crate) fn messages(&self) -> Vec<Vec<u8>> {
        cached(&MESSAGES, self.name, || json_text::split_messages(self.s2c))
    }

    /// Server message `i`.
    #[track_caller]
    pub(crate) fn message(&self, i: usize) -> Vec<u8> {
        self.messages()
            .get(i)
            .unwrap_or_else(|| panic!("{} has no message {i}", self.name))
            .clone()
    }

    /// The client's request lines, each with its `\n`.
    pub(crate) fn lines(&self) -> Vec<Vec<u8>> {
        cached(&LINES, self.name, || json_text::split_lines(self.c2s))
    }

    /// Client line `i`.
    #[track_caller]
    pub(crate) fn line(&self, i: usize) -> Vec<u8> {
        self.lines()
            .get(i)
            .unwrap_or_else(|| panic!("{} has no line {i}", self.name))
            .clone()
    }
}

/// A server reply with its `id` set to the client's integer id.
pub(crate) fn reply(message: &[u8], id: u64) -> Vec<u8> {
    json_text::with_id(message, Some(id), Style::Server)
}

/// A server reply with its `id` removed (the reply to a request sent without one).
pub(crate) fn without_id(message: &[u8]) -> Vec<u8> {
    json_text::with_id(message, None, Style::Server)
}

/// A captured request line as this client writes it: the same bytes with the id replaced
/// by the client's (`None`: no id, as for `qmp_capabilities` and guest-agent sync).
pub(crate) fn request(line: &[u8], id: Option<u64>) -> Vec<u8> {
    json_text::with_id(line, id, Style::Request)
}

/// Concatenates byte strings.
pub(crate) fn cat<T: AsRef<[u8]>>(parts: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.as_ref().len()).sum());
    for part in parts {
        out.extend_from_slice(part.as_ref());
    }
    out
}

/// A vector's messages or lines, split once per test binary (Miri interprets every split,
/// and the scenarios ask for them in every run).
type Cache = std::sync::Mutex<std::collections::BTreeMap<&'static str, Vec<Vec<u8>>>>;

static MESSAGES: Cache = std::sync::Mutex::new(std::collections::BTreeMap::new());
static LINES: Cache = std::sync::Mutex::new(std::collections::BTreeMap::new());

fn cached(cache: &Cache, name: &'static str, split: impl FnOnce() -> Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache.entry(name).or_insert_with(split).clone()
}

/// A request line taken apart.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The command name.
    pub(crate) name: String,
    /// `exec-oob` rather than `execute`.
    pub(crate) oob: bool,
    /// The exact text of the `arguments` member.
    pub(crate) arguments: Option<Vec<u8>>,
}

impl Request {
    /// Parses a compact request line.
    #[track_caller]
    pub(crate) fn parse(line: &[u8]) -> Request {
        let (name, oob) = match (
            json_text::member(line, "execute"),
            json_text::member(line, "exec-oob"),
        ) {
            (Some(name), None) => (name, false),
            (None, Some(name)) => (name, true),
            _ => panic!("not a request: {:?}", String::from_utf8_lossy(line)),
        };
        let name: String = serde_json::from_slice(name).expect("command name is a JSON string");
        Request {
            name,
            oob,
            arguments: json_text::member(line, "arguments").map(<[u8]>::to_vec),
        }
    }
}

/// The live vector directory next to the repository (`../shared/protocol/vectors`), if
/// present: acceptance runs may add vectors there that are not copied into `tests/data`.
pub(crate) fn shared_dir() -> Option<std::path::PathBuf> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/protocol/vectors");
    dir.is_dir().then_some(dir)
}

/// The session this client would have had for a capture: which captured request lines it
/// sends (each gets the client's next integer id), and the server's messages with their ids
/// rewritten to match (the server answers in-band requests in order, so request `k` and the
/// reply carrying request `k`'s captured id belong together).
#[derive(Debug, Clone)]
pub(crate) struct Session {
    messages: Vec<Vec<u8>>,
    /// Request lines sent, with the id each gets.
    sent: Vec<(Vec<u8>, u64)>,
    next_id: u64,
    /// Explicit ids for replies that carry none in the capture (their request had none).
    reply_ids: Vec<(usize, u64)>,
    stripped: Vec<usize>,
    dropped: Vec<usize>,
    /// Messages already rewritten by [`Session::message`] (scenarios ask for them in every
    /// run); emptied whenever the session changes.
    rewritten: std::cell::RefCell<std::collections::BTreeMap<usize, Vec<u8>>>,
}

impl Session {
    /// A session over `vector`'s server messages; the client's first id is 1.
    pub(crate) fn new(vector: &Vector) -> Self {
        Session::starting_at(vector, 1)
    }

    /// Like [`Session::new`] with the client's first command id `first_id` (a guest-agent
    /// sync takes id 1).
    pub(crate) fn starting_at(vector: &Vector, first_id: u64) -> Self {
        Session {
            messages: vector.messages(),
            sent: Vec::new(),
            next_id: first_id,
            reply_ids: Vec::new(),
            stripped: Vec::new(),
            dropped: Vec::new(),
            rewritten: std::cell::RefCell::default(),
        }
    }

    /// The client sends these captured lines, in this order.
    pub(crate) fn send(mut self, vector: &Vector, lines: &[usize]) -> Self {
        for &i in lines {
            let line = vector.line(i);
            self = self.send_line(&line);
        }
        self
    }

    /// The client sends this request line (for captured lines this client cannot write as
    /// they are, e.g. single-quoted JSON: give the standard-JSON equivalent with the
    /// captured id, so the reply is still found).
    pub(crate) fn send_line(mut self, line: &[u8]) -> Self {
        let id = self.next_id;
        self.next_id += 1;
        self.sent.push((line.to_vec(), id));
        self.rewritten.get_mut().clear();
        self
    }

    /// Server message `index` (an id-less reply in the capture) answers the client's `id`.
    pub(crate) fn reply_to(mut self, index: usize, id: u64) -> Self {
        self.reply_ids.push((index, id));
        self.rewritten.get_mut().clear();
        self
    }

    /// Server message `index` loses its id (it answers a request this client sends without
    /// one, i.e. `qmp_capabilities`).
    pub(crate) fn strip(mut self, index: usize) -> Self {
        self.stripped.push(index);
        self.rewritten.get_mut().clear();
        self
    }

    /// Server message `index` is left out (it answers a request this client never sends
    /// and would derail the session, e.g. a reply before negotiation).
    pub(crate) fn drop_message(mut self, index: usize) -> Self {
        self.dropped.push(index);
        self.rewritten.get_mut().clear();
        self
    }

    /// The requests sent: each line and the id the client gives it.
    pub(crate) fn requests(&self) -> &[(Vec<u8>, u64)] {
        &self.sent
    }

    /// The client's id for the request whose captured id is the JSON text `captured`.
    fn our_id(&self, captured: &[u8]) -> Option<u64> {
        self.sent
            .iter()
            .find_map(|(line, id)| (json_text::member(line, "id") == Some(captured)).then_some(*id))
    }

    /// Server message `index` as this client's session would receive it (empty if dropped).
    pub(crate) fn message(&self, index: usize) -> Vec<u8> {
        if let Some(message) = self.rewritten.borrow().get(&index) {
            return message.clone();
        }
        let message = self.rewrite(index);
        self.rewritten.borrow_mut().insert(index, message.clone());
        message
    }

    fn rewrite(&self, index: usize) -> Vec<u8> {
        if self.dropped.contains(&index) {
            return Vec::new();
        }
        let message = &self.messages[index];
        if self.stripped.contains(&index) {
            return without_id(message);
        }
        if let Some(&(_, id)) = self.reply_ids.iter().find(|(i, _)| *i == index) {
            return reply(message, id);
        }
        match json_text::member(message, "id").and_then(|captured| self.our_id(captured)) {
            Some(id) => reply(message, id),
            None => message.clone(),
        }
    }

    /// Server messages `range` as this client's session receives them.
    pub(crate) fn s2c_range(&self, range: core::ops::Range<usize>) -> Vec<u8> {
        range.map(|i| self.message(i)).collect::<Vec<_>>().concat()
    }

    /// Every server message as this client's session receives it.
    pub(crate) fn s2c(&self) -> Vec<u8> {
        self.s2c_range(0..self.messages.len())
    }

    /// How many server messages the capture has.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// The request lines as this client writes them (captured bytes, its own ids).
    pub(crate) fn tx(&self) -> Vec<u8> {
        self.sent
            .iter()
            .flat_map(|(line, id)| request(line, Some(*id)))
            .collect()
    }
}
