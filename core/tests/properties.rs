//! Property tests (proptest) and the replay of the fuzz targets' inputs.
//!
//! The invariant checks are the fuzz targets' own (`fuzz/src/*.rs`, included here by
//! path), so a property case, a seed of the fuzz corpus and a crashing input kept under
//! `fuzz/regressions/<target>/` all go through exactly the same assertions:
//! - random byte streams (vector messages, JSON tokens, random bytes) through the framer
//!   in random splits: the same items whatever the split, nothing reported beyond what
//!   was received, frames delimited as serde_json delimits them;
//! - random JSON values and messages through `RawJson` and `Message::classify`, compared
//!   with serde_json;
//! - random sessions (QMP and guest agent): every command resolved exactly once, the same
//!   events whatever the split, only valid requests transmitted;
//! - random argument strings and serde values round-tripped through the encoder, the
//!   client's transmit buffer and serde_json.
//!
//! Under Miri (which interprets every step, thousands of times slower) each property runs
//! [`MIRI_CASES`] case from a fixed seed, with fewer values per stream, and the seed corpus
//! is sampled ([`MIRI_CORPUS_FILES`] files per target); the regressions are replayed in
//! full. Reading the
//! corpus needs `MIRIFLAGS=-Zmiri-disable-isolation` (scripts/test.sh sets it).

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/encode.rs"]
mod encode;
#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/framer.rs"]
mod framer;
#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/json_checks.rs"]
mod json_checks;
#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/reference.rs"]
mod reference;
#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/script.rs"]
mod script;
#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/session.rs"]
mod session;

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;
use qmp_core::client::{Client, Config, Output};
use qmp_core::encode::{encode_request, EncodeError, RequestKind};
use qmp_core::json::RawJson;
use qmp_core::time::Instant;

use encode::Tree;
use session::{Cmd, IdRef, JsonArguments, Mode, Name, Op, Piece, Script, Value};

/// Cases per property under Miri.
const MIRI_CASES: u32 = 1;

/// The proptest seed under Miri (its run time should not depend on chance).
const MIRI_SEED: u64 = 7;

/// Seed-corpus files replayed per fuzz target under Miri.
const MIRI_CORPUS_FILES: usize = 1;

/// A fuzz target's check.
type Check = fn(&[u8]);

/// The fuzz targets, and the check each runs.
const TARGETS: [(&str, Check); 5] = [
    ("framer", framer::check),
    ("classify", json_checks::check_classify),
    ("client_session", |data| session::check(data, Mode::Qmp)),
    ("guest_agent", |data| session::check(data, Mode::GuestAgent)),
    ("encode_roundtrip", encode::check),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files directly under `dir`, sorted (none if it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// At most `n` of `files`: all of them if there are no more, else (for Miri) files of
/// small to middling size, taken at evenly spaced places in the lower half of the list
/// sorted by size.
fn sample(files: Vec<PathBuf>, n: usize) -> Vec<PathBuf> {
    if files.len() <= n {
        return files;
    }
    let mut by_size: Vec<(u64, PathBuf)> = files
        .into_iter()
        .map(|f| (std::fs::metadata(&f).map_or(0, |m| m.len()), f))
        .collect();
    by_size.sort();
    let len = by_size.len();
    (0..n)
        .map(|k| by_size[(k + 1) * len / (2 * (n + 1))].1.clone())
        .collect()
}

/// Runs every file under `fuzz/<root>/<target>/` (at most `limit` per target, see
/// [`sample`]) through its target's checks, naming the file that fails.
fn replay(root: &str, limit: usize) -> usize {
    let mut count = 0;
    for (target, check) in TARGETS {
        for file in sample(files_in(&fuzz_dir().join(root).join(target)), limit) {
            let data = std::fs::read(&file).expect("read input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panic!("{target} fails on {}: {message}", file.display());
            }
            count += 1;
        }
    }
    count
}

#[test]
fn fuzz_regressions_still_pass() {
    // Inputs that once crashed a fuzz target (none may be there: then nothing to replay).
    replay("regressions", usize::MAX);
}

#[test]
fn fuzz_seed_corpus_passes() {
    if cfg!(miri) {
        let count = replay("corpus", MIRI_CORPUS_FILES);
        assert!(
            count >= TARGETS.len(),
            "only {count} seed inputs found under fuzz/corpus"
        );
        return;
    }
    let count = replay("corpus", usize::MAX);
    assert!(
        count >= 100,
        "only {count} seed inputs found under fuzz/corpus"
    );
}

/// Found by the `classify` fuzz target (fuzz/regressions/*/…trailing-comma…): after an
/// empty array closes inside an array, `,]` is accepted, so `[[],]` passes as valid JSON.
/// QEMU rejects such input with an id-less error, so a command whose raw arguments hold it
/// would never be answered; `execute_json` must refuse it, and the framer must not frame it.
#[test]
fn a_trailing_comma_after_an_empty_array_is_invalid_json() {
    for text in [
        "[[],]",
        "[[] ,]",
        "[[]\r\n,]",
        "{\"a\":[[],]}",
        "[[[]],]",
        "[\r[[],]]",
    ] {
        assert!(
            RawJson::parse(text.as_bytes()).is_err(),
            "RawJson::parse accepts {text:?}"
        );
        let mut buffer = [0u8; 64];
        let mut framer = qmp_core::json::Framer::new(&mut buffer);
        framer.push(text.as_bytes());
        framer.push(b"\n");
        let first = framer.next_item();
        assert!(
            matches!(first, Some(qmp_core::json::Item::Malformed { .. })),
            "the framer yields {first:?} for {text:?}"
        );
    }
    let (mut rx, mut tx) = ([0u8; 256], [0u8; 256]);
    let mut client: Client<'_, 4> =
        Client::new(Config::guest_agent(), Instant::ZERO, &mut rx, &mut tx);
    let result = client.execute_json(Instant::ZERO, "guest-exec", Some(b"{\"arg\":[[],]}"));
    assert_eq!(
        result,
        Err(qmp_core::client::ExecuteError::InvalidArguments),
        "execute_json accepted arguments QEMU rejects without an id"
    );
}

// ---- generators ------------------------------------------------------------------------

const STREAM_SOURCES: [&[u8]; 6] = [
    include_bytes!("data/vectors/09-malformed-json.s2c"),
    include_bytes!("data/vectors/10-parser-reset.s2c"),
    include_bytes!("data/vectors/15-job-blockdev-create.s2c"),
    include_bytes!("data/vectors/18-pretty.s2c"),
    include_bytes!("data/vectors/19-unicode-escapes.s2c"),
    include_bytes!("data/vectors/40-qga-session.s2c"),
];

const TOKENS: [&[u8]; 16] = [
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\r\n",
    b"\n",
    b" ",
    b"\xff",
    b"1",
    b"-0.5e3",
    b"true",
    b"\\u00e9",
    b"\xc3\xa9",
];

/// A piece of a server stream: a slice of a captured vector, a token, or random bytes.
fn stream_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (0..STREAM_SOURCES.len(), any::<u16>(), 1usize..400).prop_map(|(v, at, len)| {
            let source = STREAM_SOURCES[v];
            let start = usize::from(at) % source.len();
            source[start..(start + len).min(source.len())].to_vec()
        }),
        2 => (0..TOKENS.len()).prop_map(|t| TOKENS[t].to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

/// A JSON value as serde_json would write it (compact or pretty).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::String),
        prop_oneof![
            Just("id"),
            Just("return"),
            Just("error"),
            Just("event"),
            Just("QMP"),
            Just("class"),
            Just("GenericError"),
            Just("oob"),
        ]
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("id".to_owned()),
                        Just("return".to_owned()),
                        Just("error".to_owned()),
                        Just("event".to_owned()),
                        Just("data".to_owned()),
                        Just("timestamp".to_owned()),
                        Just("class".to_owned()),
                        Just("desc".to_owned()),
                        Just("QMP".to_owned()),
                        Just("version".to_owned()),
                        Just("capabilities".to_owned()),
                        any::<String>(),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|members| serde_json::Value::Object(members.into_iter().collect())),
        ]
    })
}

fn tree() -> impl Strategy<Value = Tree> {
    proptest::collection::vec(any::<u8>(), 0..256).prop_map(|bytes| {
        let mut tree = Tree::arbitrary(&mut Unstructured::new(&bytes)).unwrap_or(Tree::Unit);
        tree.truncate(encode::MAX_TREE_DEPTH);
        tree
    })
}

fn id_ref() -> impl Strategy<Value = IdRef> {
    prop_oneof![
        2 => Just(IdRef::Absent),
        3 => any::<u8>().prop_map(IdRef::Issued),
        6 => any::<u8>().prop_map(IdRef::InFlight),
        1 => (0u64..20).prop_map(IdRef::Literal),
        1 => "[a-z]{0,4}".prop_map(IdRef::Text),
        1 => any::<bool>().prop_map(IdRef::Odd),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Empty),
        any::<u64>().prop_map(Value::Int),
        Just(Value::Status),
        any::<String>().prop_map(Value::Text),
        any::<u8>().prop_map(Value::List),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        1 => any::<bool>().prop_map(|oob| Piece::Greeting { oob }),
        6 => (id_ref(), value(), any::<bool>())
            .prop_map(|(id, value, pretty)| Piece::Return { id, value, pretty }),
        2 => (id_ref(), any::<u8>(), any::<bool>())
            .prop_map(|(id, class, id_first)| Piece::Error { id, class, id_first }),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(name, data)| Piece::Event { name, data }),
        2 => (any::<bool>(), 0u64..50)
            .prop_map(|(current, stale)| Piece::SyncAnswer { current, stale }),
        1 => (0u16..3000, id_ref()).prop_map(|(len, id)| Piece::Big { len, id }),
        1 => Just(Piece::Sentinel),
        1 => any::<u8>().prop_map(Piece::Token),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Piece::Bytes),
    ]
}

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        3 => (0u8..8).prop_map(Name::Known),
        1 => any::<String>().prop_map(Name::Any),
    ]
}

fn command() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        3 => Just(Cmd::QueryStatus),
        1 => Just(Cmd::QueryVersion),
        1 => Just(Cmd::Stop),
        1 => Just(Cmd::Quit),
        1 => Just(Cmd::QueryYankOob),
        1 => Just(Cmd::MigratePauseOob),
        1 => Just(Cmd::QueryStatusOob),
        2 => Just(Cmd::GuestPing),
        1 => proptest::option::of(any::<bool>()).prop_map(Cmd::GuestShutdown),
        1 => Just(Cmd::GuestSuspendRam),
        2 => (name(), proptest::option::of(tree()), any::<bool>())
            .prop_map(|(name, arguments, oob)| Cmd::Raw { name, arguments, oob }),
        2 => (
            name(),
            proptest::option::of(prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..24).prop_map(JsonArguments::Bytes),
                (tree(), any::<bool>()).prop_map(|(t, pad)| JsonArguments::Tree(t, pad)),
                Just(JsonArguments::Duplicate),
            ]),
            any::<bool>()
        )
            .prop_map(|(name, arguments, oob)| Cmd::Json { name, arguments, oob }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(piece(), 0..5).prop_map(Op::Feed),
        5 => command().prop_map(Op::Execute),
        1 => (0u64..100).prop_map(Op::Sync),
        2 => (0u16..20_000).prop_map(Op::Advance),
        1 => Just(Op::Timeout),
        1 => Just(Op::WaitDeadline),
        2 => any::<u16>().prop_map(|n| Op::Transmit(n % 200)),
        1 => any::<u8>().prop_map(Op::Cancel),
        1 => (any::<u8>(), proptest::option::of(0u16..20_000))
            .prop_map(|(k, ms)| Op::SetDeadline(k, ms)),
        1 => Just(Op::Eof),
        1 => Just(Op::Close),
    ]
}

fn script(ops: std::ops::Range<usize>) -> impl Strategy<Value = Script> {
    (
        (
            any::<u16>(),
            any::<u16>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            proptest::option::of(0u16..30_000),
            proptest::option::of(0u16..30_000),
            any::<u16>(),
            any::<u8>(),
        ),
        proptest::collection::vec(op(), ops),
    )
        .prop_map(
            |((rx, tx, oob, auto_transmit, zero_copy), (command, greeting, seed, max), ops)| {
                Script {
                    rx,
                    tx,
                    oob,
                    command_timeout: command,
                    greeting_timeout: greeting,
                    auto_transmit,
                    seed,
                    max_fragment: max,
                    zero_copy,
                    ops,
                }
            },
        )
}

/// A QMP session that gets past negotiation: greeting and negotiation reply first.
fn negotiated_script() -> impl Strategy<Value = Script> {
    (script(0..24), any::<bool>()).prop_map(|(mut script, oob)| {
        script.ops.insert(
            0,
            Op::Feed(vec![
                Piece::Greeting { oob },
                Piece::Return {
                    id: IdRef::Absent,
                    value: Value::Empty,
                    pretty: false,
                },
            ]),
        );
        script.auto_transmit = true;
        script
    })
}

/// `cases` cases ([`MIRI_CASES`] from a fixed seed under Miri), no failure files written into the source
/// tree (a failing case is printed, minimised, with the seed to reproduce it).
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if cfg!(miri) {
        config.cases = MIRI_CASES;
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(MIRI_SEED);
    }
    config
}

// ---- properties --------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn framer_items_do_not_depend_on_the_split(
        capacity in 0u8..16,
        zero_copy in any::<bool>(),
        fragments in any::<u8>(),
        seed in any::<u8>(),
        pieces in proptest::collection::vec(stream_piece(), 0..24),
    ) {
        let mut data = vec![capacity | if zero_copy { 16 } else { 0 }, fragments, seed];
        data.extend(pieces.concat());
        framer::check(&data);
    }

    #[test]
    fn framer_delimits_value_sequences_as_serde_json_does(
        capacity in 0u8..16,
        fragments in any::<u8>(),
        values in proptest::collection::vec(
            (json_value(), any::<bool>(), 0usize..3),
            1..if cfg!(miri) { 3 } else { 8 },
        ),
    ) {
        let mut data = vec![capacity, fragments, 1];
        for (value, pretty, separator) in values {
            let text = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            };
            data.extend(text.expect("serialize").bytes());
            data.extend_from_slice([&b"\r\n"[..], b" ", b"\n\t"][separator]);
        }
        // The check includes the differential against serde_json's stream reader.
        framer::check(&data);
    }

    #[test]
    fn raw_json_and_classify_agree_with_serde_json(value in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        }
        .expect("serialize");
        json_checks::check_classify(text.as_bytes());
        let padded = format!(" \r\n{text}\t ");
        json_checks::check_classify(padded.as_bytes());
    }

    #[test]
    fn classify_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        json_checks::check_classify(&bytes);
    }

    #[test]
    fn encoder_round_trips_serde_values(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        encode::check(&bytes);
    }

    #[test]
    fn argument_strings_round_trip_through_encoding(
        text in prop_oneof![
            any::<String>(),
            "[\\x00-\\x1f\"\\\\/\\x7f\u{e9}\u{FDD0}\u{FFFE}\u{1F600}a ]{0,24}",
        ],
        id in any::<u64>(),
    ) {
        #[derive(serde::Serialize)]
        struct Arguments<'a> {
            value: &'a str,
        }
        let arguments = Arguments { value: &text };
        let non_character = text.chars().find(|&c| {
            let cp = u32::from(c);
            (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE
        });
        let mut out = vec![0u8; 128 + text.len() * 12];
        let result =
            encode_request(&mut out, RequestKind::Execute, &text, Some(&arguments), Some(id));
        match non_character {
            Some(c) => prop_assert_eq!(
                result,
                Err(EncodeError::NonCharacter { code_point: u32::from(c) })
            ),
            None => {
                let n = result.expect("encodable");
                let line = &out[..n];
                prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
                prop_assert!(line[..n - 1].iter().all(|&b| b >= 0x20 && b != 0x7F));
                let parsed: serde_json::Value = serde_json::from_slice(line).expect("json");
                prop_assert_eq!(
                    parsed,
                    serde_json::json!({"execute": text, "arguments": {"value": text}, "id": id})
                );
                // qmp-core's own reader gives the same string back.
                let raw = RawJson::parse(&line[..n - 1]).expect("valid");
                let value = raw.get("arguments").and_then(|a| a.get("value"));
                let decoded: String = value.and_then(|v| v.as_json_str()).expect("string").chars().collect();
                prop_assert_eq!(decoded, text.clone());
                // And through a client's transmit buffer.
                let (mut rx, mut tx) = (vec![0u8; 256], vec![0u8; 256 + text.len() * 12]);
                let mut client: Client<'_, 4> =
                    Client::new(Config::guest_agent(), Instant::ZERO, &mut rx, &mut tx);
                let command = client
                    .execute_value(Instant::ZERO, "guest-exec", Some(&arguments))
                    .expect("queued");
                let sent = client.poll_transmit().expect("bytes to send").to_vec();
                let parsed: serde_json::Value = serde_json::from_slice(&sent).expect("json");
                prop_assert_eq!(
                    parsed,
                    serde_json::json!({
                        "execute": "guest-exec",
                        "arguments": {"value": text},
                        "id": command.get()
                    })
                );
                let _ = client.poll_output().map(|e| matches!(e, Output::Closed(_)));
            }
        }
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn random_qmp_sessions_resolve_every_command_once(script in script(0..32)) {
        session::check_script(&script, Mode::Qmp);
    }

    #[test]
    fn random_negotiated_qmp_sessions(script in negotiated_script()) {
        session::check_script(&script, Mode::Qmp);
    }

    #[test]
    fn random_guest_agent_sessions_resolve_every_command_once(script in script(0..32)) {
        session::check_script(&script, Mode::GuestAgent);
    }

    #[test]
    fn session_scripts_survive_their_byte_format(script in script(0..16)) {
        // Scripts without serde-tree arguments encode; the decoded script is the same
        // session (compared through what it does).
        if let Some(bytes) = script.encode() {
            let decoded = Script::decode(&bytes);
            let mode = Mode::GuestAgent;
            prop_assert_eq!(session::run(&decoded, mode, false), session::run(&script, mode, false));
        }
    }
}
