//! Builds the seed corpus of every fuzz target from the captured protocol vectors.
//!
//! `cargo +nightly run --example make_corpus -- VECTORS_DIR CORPUS_DIR` (what
//! `fuzz/make-corpus.sh` runs). Deterministic: the same vectors give the same files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use qmp_core::json::{Framer, Item};
use qmp_fuzz::session::{Cmd, IdRef, JsonArguments, Name, Op, Piece, Script, Value};

/// Seeds larger than this are cut (libFuzzer's inputs stay small and fast).
const MAX_SEED: usize = 16 * 1024;

struct Out {
    dir: PathBuf,
    written: BTreeSet<Vec<u8>>,
}

impl Out {
    fn new(root: &Path, target: &str) -> Out {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create corpus directory");
        Out {
            dir,
            written: BTreeSet::new(),
        }
    }

    fn put(&mut self, name: &str, bytes: &[u8]) {
        if bytes.is_empty() || !self.written.insert(bytes.to_vec()) {
            return;
        }
        fs::write(self.dir.join(name), bytes).expect("write seed");
    }
}

/// The values in `stream` as the framer delimits them (seeds only: any split will do).
fn messages(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut framer = Framer::new(&mut buffer);
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = framer.push(rest);
        rest = &rest[n..];
        while let Some(item) = framer.next_item() {
            if let Item::Frame(frame) = item {
                out.push(frame.bytes().to_vec());
            }
        }
        if n == 0 {
            break;
        }
    }
    out
}

fn feed(bytes: &[u8]) -> Op {
    Op::Feed(
        bytes
            .chunks(60_000)
            .map(|c| Piece::Bytes(c.to_vec()))
            .collect(),
    )
}

fn base_script(ops: Vec<Op>) -> Script {
    Script {
        rx: 2 + 4 * 700, // selector % 4 == 2: a 1024.. byte buffer
        tx: 1 + 3 * 900,
        oob: false,
        command_timeout: Some(30_000),
        greeting_timeout: Some(10_000),
        auto_transmit: true,
        seed: 7,
        max_fragment: 6,
        zero_copy: false,
        ops,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(vectors), Some(corpus)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: make_corpus VECTORS_DIR CORPUS_DIR");
        std::process::exit(2);
    };
    let corpus = Path::new(corpus);
    let mut names: Vec<PathBuf> = fs::read_dir(vectors)
        .expect("read vectors")
        .map(|e| e.expect("entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("s2c" | "c2s")))
        .collect();
    names.sort();

    let mut framer = Out::new(corpus, "framer");
    let mut classify = Out::new(corpus, "classify");
    let mut session = Out::new(corpus, "client_session");
    let mut agent = Out::new(corpus, "guest_agent");
    let mut encode = Out::new(corpus, "encode_roundtrip");

    for path in &names {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
            .to_owned();
        let bytes = fs::read(path).expect("read vector");
        let cut = &bytes[..bytes.len().min(MAX_SEED)];
        // framer: byte 0 = buffer size (and bit 4: zero-copy), byte 1 = fragments, byte 2 = seed.
        for (tag, header) in [
            ("4096", [12u8, 0, 0]),
            ("64z", [6 | 16, 3, 7]),
            ("1000", [11, 5, 1]),
        ] {
            framer.put(&format!("{file}-{tag}"), &[&header[..], cut].concat());
        }
        for (i, message) in messages(&bytes).iter().enumerate().take(40) {
            if message.len() <= MAX_SEED {
                classify.put(&format!("{file}-{i:03}"), message);
            }
        }
        if file.ends_with(".c2s") {
            encode.put(&file, &cut[..cut.len().min(512)]);
            continue;
        }
        let is_agent = file.starts_with("40-");
        let script = if is_agent {
            base_script(vec![
                Op::Sync(1_234_567_890_123),
                Op::Execute(Cmd::GuestPing),
                Op::Execute(Cmd::Json {
                    name: Name::Known(3),
                    arguments: Some(JsonArguments::Bytes(b"{}".to_vec())),
                    oob: false,
                }),
                feed(cut),
                Op::Advance(40_000),
                Op::Timeout,
                Op::Eof,
            ])
        } else {
            let (greeting, rest) = match cut.iter().position(|&b| b == b'\n') {
                Some(i) => cut.split_at(i + 1),
                None => (cut, &[][..]),
            };
            base_script(vec![
                Op::Execute(Cmd::QueryStatus),
                feed(greeting),
                Op::Execute(Cmd::QueryVersion),
                Op::Execute(Cmd::Raw {
                    name: Name::Known(4),
                    arguments: None,
                    oob: false,
                }),
                feed(rest),
                Op::Advance(40_000),
                Op::Timeout,
                Op::Eof,
            ])
        };
        let bytes = script.encode().expect("seed script encodes");
        if is_agent {
            agent.put(&file, &bytes);
        } else {
            session.put(&file, &bytes);
        }
    }

    // Synthetic sessions that reach the interesting states quickly.
    let qmp = base_script(vec![
        Op::Feed(vec![
            Piece::Greeting { oob: true },
            Piece::Return {
                id: IdRef::Absent,
                value: Value::Empty,
                pretty: false,
            },
        ]),
        Op::Execute(Cmd::QueryStatus),
        Op::Execute(Cmd::Stop),
        Op::Execute(Cmd::QueryYankOob),
        Op::Feed(vec![
            Piece::Event {
                name: 0,
                data: false,
            },
            Piece::Return {
                id: IdRef::InFlight(0),
                value: Value::Status,
                pretty: true,
            },
            Piece::Error {
                id: IdRef::InFlight(0),
                class: 1,
                id_first: true,
            },
            Piece::Big {
                len: 3000,
                id: IdRef::InFlight(0),
            },
            Piece::Token(8),
            Piece::Bytes(b"{\"return\": inf}\r\n".to_vec()),
        ]),
        Op::Execute(Cmd::Quit),
        Op::WaitDeadline,
        Op::Feed(vec![Piece::Return {
            id: IdRef::Issued(0),
            value: Value::Empty,
            pretty: false,
        }]),
        Op::Eof,
    ]);
    let mut oob = qmp.clone();
    oob.oob = true;
    oob.rx = 0; // 64-byte receive buffer
    oob.zero_copy = true;
    for (name, script) in [("synthetic-qmp", qmp), ("synthetic-qmp-oob-small", oob)] {
        session.put(name, &script.encode().expect("encodes"));
    }
    let qga = base_script(vec![
        Op::Execute(Cmd::GuestPing),
        Op::Sync(42),
        Op::Execute(Cmd::GuestShutdown(None)),
        Op::Execute(Cmd::GuestPing),
        Op::Feed(vec![
            Piece::Error {
                id: IdRef::Absent,
                class: 0,
                id_first: false,
            },
            Piece::Return {
                id: IdRef::Absent,
                value: Value::Int(41),
                pretty: false,
            },
            Piece::SyncAnswer {
                current: true,
                stale: 0,
            },
            Piece::Return {
                id: IdRef::InFlight(1),
                value: Value::Empty,
                pretty: false,
            },
        ]),
        Op::Transmit(10),
        Op::Sync(43),
        Op::Advance(31_000),
        Op::Timeout,
        Op::Eof,
    ]);
    agent.put("synthetic-qga", &qga.encode().expect("encodes"));
    eprintln!(
        "seeds: framer {}, classify {}, client_session {}, guest_agent {}, encode_roundtrip {}",
        framer.written.len(),
        classify.written.len(),
        session.written.len(),
        agent.written.len(),
        encode.written.len()
    );
}
