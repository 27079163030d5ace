//! Tests of the JSON layer: validation tables, the framer at every split point, the
//! captured QEMU vectors, comparison with serde_json, and random splits.

extern crate std;

use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use super::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// An owned copy of an [`Item`], for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Frame {
        text: String,
        members: Vec<(String, String)>,
    },
    Oversize {
        len: u64,
        id: Option<u64>,
    },
    Malformed(JsonError),
    Sentinel,
}

fn own(item: Item<'_>) -> Owned {
    match item {
        Item::Frame(frame) => {
            // The recorded spans must agree with a plain walk of the value.
            let recorded: Vec<(String, String)> = frame
                .members()
                .map(|(key, value)| (String::from(key.raw()), String::from(value.as_str())))
                .collect();
            let walked: Vec<(String, String)> = frame
                .value()
                .members()
                .map(|(key, value)| (String::from(key.raw()), String::from(value.as_str())))
                .collect();
            assert_eq!(recorded, walked, "recorded spans differ from a walk");
            assert_eq!(frame.bytes(), frame.value().as_bytes());
            Owned::Frame {
                text: String::from_utf8_lossy(frame.bytes()).into_owned(),
                members: recorded,
            }
        }
        Item::Oversize { len, id } => Owned::Oversize { len, id },
        Item::Malformed { error } => Owned::Malformed(error),
        Item::Sentinel => Owned::Sentinel,
    }
}

/// The items of a run plus whether a partial value was left at the end.
type Run = (Vec<Owned>, bool);

fn drain(framer: &mut Framer<'_>, items: &mut Vec<Owned>) {
    while let Some(item) = framer.next_item() {
        items.push(own(item));
    }
}

/// Feeds `chunks` with `push`, draining after each call.
fn run_push<'a>(capacity: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut buffer = vec![0u8; capacity];
    let mut framer = Framer::new(&mut buffer);
    let mut items = Vec::new();
    for chunk in chunks {
        let mut rest = chunk;
        let mut stalls = 0;
        loop {
            let taken = framer.push(rest);
            rest = &rest[taken..];
            drain(&mut framer, &mut items);
            if rest.is_empty() {
                break;
            }
            if taken == 0 {
                stalls += 1;
                assert!(stalls < 3, "framer stopped taking bytes");
            } else {
                stalls = 0;
            }
        }
    }
    (items, framer.has_partial())
}

/// Feeds `chunks` through `window`/`commit`, draining after each commit.
fn run_window<'a>(capacity: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut buffer = vec![0u8; capacity];
    let mut framer = Framer::new(&mut buffer);
    let mut items = Vec::new();
    for chunk in chunks {
        let mut rest = chunk;
        let mut stalls = 0;
        while !rest.is_empty() {
            let window = framer.window();
            let n = window.len().min(rest.len());
            window[..n].copy_from_slice(&rest[..n]);
            framer.commit(n);
            rest = &rest[n..];
            drain(&mut framer, &mut items);
            if n == 0 {
                stalls += 1;
                assert!(stalls < 3, "framer window stayed empty");
            } else {
                stalls = 0;
            }
        }
    }
    (items, framer.has_partial())
}

fn run_whole(capacity: usize, stream: &[u8]) -> Run {
    run_push(capacity, [stream])
}

/// Checks that splitting `stream` anywhere gives the same run as the whole stream: at the
/// split points `splits` yields (two pieces each), and one byte at a time. Returns the run.
fn check_splits(capacity: usize, stream: &[u8], splits: impl Iterator<Item = usize>) -> Run {
    let whole = run_whole(capacity, stream);
    assert_eq!(
        run_window(capacity, [stream]),
        whole,
        "window/commit differs from push"
    );
    for split in splits {
        let (head, tail) = stream.split_at(split);
        assert_eq!(
            run_push(capacity, [head, tail]),
            whole,
            "push split at {split} differs"
        );
        assert_eq!(
            run_window(capacity, [head, tail]),
            whole,
            "window split at {split} differs"
        );
    }
    // One byte at a time (under Miri, long streams go a few bytes at a time).
    let piece = if cfg!(miri) && stream.len() > 200 {
        7
    } else {
        1
    };
    assert_eq!(
        run_push(capacity, stream.chunks(piece)),
        whole,
        "one byte at a time differs"
    );
    whole
}

/// Every split point (a sample of them under Miri).
fn all_splits(len: usize) -> impl Iterator<Item = usize> {
    let step = if cfg!(miri) { (len / 7).max(1) } else { 1 };
    (0..=len).step_by(step)
}

/// Every `step`-th split point (a handful under Miri).
fn some_splits(len: usize, step: usize) -> impl Iterator<Item = usize> {
    let step = if cfg!(miri) {
        (len / 5).max(step)
    } else {
        step
    };
    (0..len).step_by(step)
}

fn frame_texts(run: &Run) -> Vec<&str> {
    run.0
        .iter()
        .filter_map(|item| match item {
            Owned::Frame { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn kinds(run: &Run) -> Vec<&'static str> {
    run.0
        .iter()
        .map(|item| match item {
            Owned::Frame { .. } => "frame",
            Owned::Oversize { .. } => "oversize",
            Owned::Malformed(_) => "malformed",
            Owned::Sentinel => "sentinel",
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Validation tables
// ---------------------------------------------------------------------------------------

macro_rules! valid {
    ($($name:ident: $text:expr;)*) => {$(
        #[test]
        fn $name() {
            let text: &[u8] = $text;
            let value = RawJson::parse(text).unwrap_or_else(|e| panic!("{e}: {:?}", text));
            assert_eq!(value.as_bytes(), text.trim_ascii());
            // The framer agrees (a trailing space ends a top-level number).
            let mut stream = text.to_vec();
            stream.push(b' ');
            let run = run_whole(4096, &stream);
            assert_eq!(frame_texts(&run), [core::str::from_utf8(text.trim_ascii()).unwrap()]);
        }
    )*};
}

macro_rules! invalid {
    ($($name:ident: $text:expr => $kind:pat),* $(,)?) => {$(
        #[test]
        fn $name() {
            let text: &[u8] = $text;
            match RawJson::parse(text) {
                Err(JsonError { kind: $kind, .. }) => {}
                other => panic!("{:?} gave {:?}", String::from_utf8_lossy(text), other),
            }
        }
    )*};
}

valid! {
    valid_empty_object: b"{}";
    valid_empty_array: b"[]";
    valid_nested: br#"{"a": [1, {"b": null}, true, false, "x"], "c": {}}"#;
    valid_surrounding_whitespace: b" \t\r\n{ \"a\" : 1 }\r\n";
    valid_string: br#""plain""#;
    valid_all_escapes: br#""\" \\ \/ \b \f \n \r \t \u0041 \uD83D\uDE00 \ud800 \uDFFF""#;
    valid_zero: b"0";
    valid_negative_zero: b"-0";
    valid_fraction: b"-12.5e+3";
    valid_exponent: b"1E-9";
    valid_exponent_zero: b"0e0";
    valid_big_integer: b"123456789012345678901234567890";
    valid_true: b"true";
    valid_false: b"false";
    valid_null: b"null";
    valid_two_byte_utf8: "\"é\"".as_bytes();
    valid_three_byte_utf8: "\"漢\"".as_bytes();
    valid_four_byte_utf8: "\"😀\"".as_bytes();
    valid_utf8_boundaries: b"\"\xC2\x80 \xDF\xBF \xE0\xA0\x80 \xED\x9F\xBF \xEE\x80\x80 \xEF\xBF\xBF \xF0\x90\x80\x80 \xF4\x8F\xBF\xBF\"";
    valid_del_in_string: b"\"\x7F\"";
    valid_long_string: br#"{"key": "a string that is longer than eight bytes, with \"escapes\" inside"}"#;
}

invalid! {
    invalid_empty: b"" => JsonErrorKind::Empty,
    invalid_whitespace_only: b" \r\n" => JsonErrorKind::Empty,
    invalid_missing_value: br#"{"execute": }"# => JsonErrorKind::UnexpectedByte { byte: b'}' },
    invalid_trailing_comma_object: br#"{"a": 1,}"# => JsonErrorKind::UnexpectedByte { byte: b'}' },
    invalid_trailing_comma_array: b"[1,]" => JsonErrorKind::UnexpectedByte { byte: b']' },
    invalid_missing_comma: br#"{"a": 1 "b": 2}"# => JsonErrorKind::UnexpectedByte { byte: b'"' },
    invalid_missing_colon: br#"{"a" 1}"# => JsonErrorKind::UnexpectedByte { byte: b'1' },
    invalid_non_string_key: b"{1: 2}" => JsonErrorKind::UnexpectedByte { byte: b'1' },
    invalid_single_quotes: b"'a'" => JsonErrorKind::UnexpectedByte { byte: b'\'' },
    invalid_mismatched_close: b"[1}" => JsonErrorKind::UnexpectedByte { byte: b'}' },
    invalid_lone_close: b"}" => JsonErrorKind::UnexpectedByte { byte: b'}' },
    invalid_truncated_object: br#"{"a": 1"# => JsonErrorKind::Truncated,
    invalid_truncated_string: br#""abc"# => JsonErrorKind::Truncated,
    invalid_truncated_literal: b"tru" => JsonErrorKind::Truncated,
    invalid_two_values: b"1 2" => JsonErrorKind::TrailingCharacters,
    invalid_two_objects: b"{}{}" => JsonErrorKind::TrailingCharacters,
    invalid_keyword: b"nul" => JsonErrorKind::Truncated,
    invalid_keyword_typo: b"nulL" => JsonErrorKind::InvalidLiteral,
    invalid_true_typo: b"trve" => JsonErrorKind::InvalidLiteral,
    invalid_nan: b"nan" => JsonErrorKind::InvalidLiteral,
    invalid_inf: b"inf" => JsonErrorKind::UnexpectedByte { byte: b'i' },
    invalid_minus_inf: b"-inf" => JsonErrorKind::InvalidNumber,
    invalid_id_inf: br#"{"id": inf}"# => JsonErrorKind::UnexpectedByte { byte: b'i' },
    invalid_leading_zero: b"01" => JsonErrorKind::InvalidNumber,
    invalid_negative_leading_zero: b"-01" => JsonErrorKind::InvalidNumber,
    invalid_plus: b"+1" => JsonErrorKind::UnexpectedByte { byte: b'+' },
    invalid_dot_end: b"1." => JsonErrorKind::Truncated,
    invalid_dot_then_bracket: b"[1.]" => JsonErrorKind::InvalidNumber,
    invalid_leading_dot: b".5" => JsonErrorKind::UnexpectedByte { byte: b'.' },
    invalid_exponent_empty: b"[1e]" => JsonErrorKind::InvalidNumber,
    invalid_exponent_sign_only: b"[1e+]" => JsonErrorKind::InvalidNumber,
    invalid_minus_alone: b"[-]" => JsonErrorKind::InvalidNumber,
    invalid_hex_number: b"[0x1]" => JsonErrorKind::UnexpectedByte { byte: b'x' },
    invalid_escape: br#""\q""# => JsonErrorKind::InvalidEscape,
    invalid_escape_x: br#""\x41""# => JsonErrorKind::InvalidEscape,
    invalid_short_unicode: br#""\u12""# => JsonErrorKind::InvalidEscape,
    invalid_unicode_non_hex: br#""\u12G4""# => JsonErrorKind::InvalidEscape,
    invalid_raw_tab: b"\"tab\there\"" => JsonErrorKind::ControlInString { byte: b'\t' },
    invalid_raw_newline: b"\"a\nb\"" => JsonErrorKind::ControlInString { byte: b'\n' },
    invalid_raw_nul: b"\"\x00\"" => JsonErrorKind::ControlInString { byte: 0 },
    invalid_utf8_truncated: b"\"\xC3\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_lone_continuation: b"\"\x80\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_overlong_two: b"\"\xC0\xAF\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_overlong_c1: b"\"\xC1\xBF\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_overlong_three: b"\"\xE0\x80\xAF\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_overlong_four: b"\"\xF0\x80\x80\xAF\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_surrogate: b"\"\xED\xA0\x80\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_above_max: b"\"\xF4\x90\x80\x80\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_f5: b"\"\xF5\x80\x80\x80\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_fe: b"\"\xFE\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_truncated_four: b"\"\xF0\x9F\x98\"" => JsonErrorKind::InvalidUtf8,
    invalid_utf8_outside_string: b"\xC3\xA9" => JsonErrorKind::UnexpectedByte { byte: 0xC3 },
    invalid_ff_is_not_json: b"\"\xFF\"" => JsonErrorKind::InvalidUtf8,
}

fn nested(depth: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for level in 0..depth {
        text.extend_from_slice(if level % 2 == 0 { b"[" } else { b"{\"k\":" });
    }
    if depth > 0 {
        text.push(b'1');
    }
    for level in (0..depth).rev() {
        text.push(if level % 2 == 0 { b']' } else { b'}' });
    }
    text
}

#[test]
fn depth_limit_for_parse() {
    assert!(RawJson::parse(&nested(MAX_DEPTH_LIMIT)).is_ok());
    let error = RawJson::parse(&nested(MAX_DEPTH_LIMIT + 1)).unwrap_err();
    assert_eq!(
        error.kind,
        JsonErrorKind::TooDeep {
            limit: MAX_DEPTH_LIMIT
        }
    );
}

#[test]
fn depth_limit_for_framer() {
    for limit in [0, 1, 2, DEFAULT_MAX_DEPTH, 100, MAX_DEPTH_LIMIT] {
        let mut buffer = vec![0u8; 4096];
        let mut framer = Framer::new(&mut buffer).with_max_depth(limit);
        let mut stream = nested(limit);
        stream.extend_from_slice(b"\n");
        stream.extend_from_slice(&nested(limit + 1));
        stream.extend_from_slice(b"\n{}\n");
        assert_eq!(framer.push(&stream), stream.len());
        let mut items = Vec::new();
        drain(&mut framer, &mut items);
        let deep_error = JsonErrorKind::TooDeep { limit };
        match limit {
            // nested(0) is empty; with no container allowed, `{}` fails too.
            0 => assert!(
                matches!(&items[..], [Owned::Malformed(a), Owned::Malformed(b)]
                    if a.kind == deep_error && b.kind == deep_error),
                "{items:?}"
            ),
            _ => {
                assert!(matches!(&items[0], Owned::Frame { .. }), "{items:?}");
                assert!(
                    matches!(&items[1], Owned::Malformed(e) if e.kind == deep_error),
                    "{items:?}"
                );
                // With a limit of one the nested value's line starts with `[`, the next
                // `{` line resumes.
                assert!(matches!(&items[2], Owned::Frame { text, .. } if text == "{}"));
            }
        }
    }
    // Clamped to the hard limit.
    let mut buffer = [0u8; 8];
    let framer = Framer::new(&mut buffer).with_max_depth(100_000);
    assert!(format!("{framer:?}").contains("max_depth: 256"));
}

// ---------------------------------------------------------------------------------------
// The value walker
// ---------------------------------------------------------------------------------------

#[test]
fn members_and_get() {
    let value = RawJson::parse(
        br#"{"return": {"a": [1, "]}"]}, "id": 7, "\u0069d2": "x", "e\"sc": {"n": {}}}"#,
    )
    .unwrap();
    let keys: Vec<String> = value.members().map(|(k, _)| format!("{k}")).collect();
    assert_eq!(keys, ["return", "id", "id2", "e\"sc"]);
    assert_eq!(value.get("id").and_then(|v| v.as_u64()), Some(7));
    assert_eq!(value.get("id2").unwrap().as_str(), "\"x\"");
    assert_eq!(value.get("e\"sc").unwrap().as_str(), r#"{"n": {}}"#);
    assert_eq!(
        value.get("return").unwrap().get("a").unwrap().as_str(),
        r#"[1, "]}"]"#
    );
    assert!(value.get("missing").is_none());
    assert_eq!(value.kind(), JsonKind::Object);
    assert!(RawJson::parse(b"[1]").unwrap().members().next().is_none());
    assert!(RawJson::parse(b"{ }").unwrap().members().next().is_none());
    assert_eq!(format!("{:?}", value.get("id").unwrap()), "7");
}

#[test]
fn elements() {
    let value = RawJson::parse(br#"[ 1 , "a,]" , [2, [3]], {"k": [4]}, null ]"#).unwrap();
    let elements: Vec<&str> = value.elements().map(|v| v.as_str()).collect();
    assert_eq!(
        elements,
        ["1", r#""a,]""#, "[2, [3]]", r#"{"k": [4]}"#, "null"]
    );
    assert_eq!(RawJson::parse(b"[]").unwrap().elements().count(), 0);
    assert_eq!(RawJson::parse(b"{}").unwrap().elements().count(), 0);
    assert_eq!(
        format!("{:?}", RawJson::parse(b"[1,2]").unwrap().elements()),
        "[1, 2]"
    );
}

#[test]
fn scalars() {
    fn parse(text: &str) -> RawJson<'_> {
        RawJson::parse(text.as_bytes()).unwrap()
    }
    assert_eq!(parse("18446744073709551615").as_u64(), Some(u64::MAX));
    assert_eq!(parse("18446744073709551616").as_u64(), None);
    assert_eq!(parse("-1").as_u64(), None);
    assert_eq!(parse("1.0").as_u64(), None);
    assert_eq!(parse("-9223372036854775808").as_i64(), Some(i64::MIN));
    assert_eq!(parse("-9223372036854775809").as_i64(), None);
    assert_eq!(parse("9223372036854775807").as_i64(), Some(i64::MAX));
    assert_eq!(parse("9223372036854775808").as_i64(), None);
    assert_eq!(parse("-0").as_i64(), Some(0));
    assert_eq!(parse("2.5e1").as_f64(), Some(25.0));
    assert_eq!(parse("\"1\"").as_f64(), None);
    assert_eq!(parse("true").as_bool(), Some(true));
    assert_eq!(parse("false").as_bool(), Some(false));
    assert_eq!(parse("null").as_bool(), None);
    assert!(parse("null").is_null());
    assert_eq!(parse("null").kind(), JsonKind::Null);
    assert_eq!(parse("[]").kind(), JsonKind::Array);
    assert_eq!(parse("\"\"").kind(), JsonKind::String);
    assert_eq!(parse("-1").kind(), JsonKind::Number);
    assert_eq!(parse("false").kind(), JsonKind::Bool);
    assert_eq!(RawJson::NULL.as_str(), "null");
    assert!(RawJson::EMPTY_OBJECT.is_object());
    assert!(parse("1").as_json_str().is_none());
}

#[test]
fn json_str_decoding() {
    let value =
        RawJson::parse(br#""a\"b\\c\/d\b\f\n\r\t\u00E9\u6F22\uD83D\uDE00\ud800x""#).unwrap();
    let text = value.as_json_str().unwrap();
    let expected = "a\"b\\c/d\u{8}\u{c}\n\r\té漢😀\u{FFFD}x";
    assert!(text.has_escapes());
    assert!(text.as_plain().is_none());
    assert_eq!(text.chars().collect::<String>(), expected);
    assert_eq!(text.unescaped_len(), expected.len());
    assert_eq!(format!("{text}"), expected);
    assert!(text == expected);
    assert!(text != "a\"b");
    assert!(text != "a\"b\\c/d\u{8}\u{c}\n\r\té漢😀\u{FFFD}xy");
    let mut buffer = [0u8; 64];
    assert_eq!(text.unescape_into(&mut buffer), Ok(expected));
    let mut small = [0u8; 4];
    assert_eq!(
        text.unescape_into(&mut small),
        Err(BufferTooSmall {
            required: expected.len(),
            available: 4
        })
    );
    let plain = RawJson::parse(br#""plain""#)
        .unwrap()
        .as_json_str()
        .unwrap();
    assert_eq!(plain.as_plain(), Some("plain"));
    assert_eq!(plain.raw(), "plain");
    assert!(plain == "plain");
    assert_eq!(format!("{plain:?}"), "\"plain\"");
    // Two spellings of one text are equal.
    let escaped = RawJson::parse(br#""\u0070lain""#)
        .unwrap()
        .as_json_str()
        .unwrap();
    assert_eq!(escaped, plain);
    assert_eq!(
        JsonStr::from_escaped("ok\\n").map(|s| s.unescaped_len()),
        Some(3)
    );
    assert!(JsonStr::from_escaped("bad\\q").is_none());
    assert!(JsonStr::from_escaped("a\"b").is_none());
    assert!(JsonStr::from_escaped("tab\t").is_none());
}

#[test]
fn json_str_tolerates_malformed_escapes() {
    // Not reachable through validated input, but never a panic.
    for raw in [
        &b"\\"[..],
        b"\\u",
        b"\\u12",
        b"\\uD800\\u",
        b"\\uD800\\uZZZZ",
        b"\xFF\\",
        b"a\\\xC3\xA9",
    ] {
        let text = JsonStr::from_validated(raw);
        let _ = text.chars().count();
        let _ = text.unescaped_len();
        let _ = format!("{text}{text:?}");
        let mut buffer = [0u8; 32];
        let _ = text.unescape_into(&mut buffer);
        let _ = text == "x";
    }
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Version<'a> {
    major: u32,
    #[serde(borrow)]
    package: JsonStr<'a>,
    name: &'a str,
}

#[test]
fn deserialize() {
    let value =
        RawJson::parse(br#"{"major": 10, "package": "v\"1\"", "name": "a\tb", "extra": [1]}"#)
            .unwrap();
    let version: Version<'_> = value.deserialize().unwrap();
    assert_eq!(version.major, 10);
    assert!(version.package == "v\"1\"");
    assert_eq!(version.name, "a\\tb", "strings stay escaped");

    #[derive(serde::Deserialize)]
    struct Owned {
        name: String,
    }
    let mut scratch = [0u8; 16];
    let owned: Owned = value.deserialize_unescaped(&mut scratch).unwrap();
    assert_eq!(owned.name.as_str(), "a\tb");

    let error = RawJson::parse(b"[1]")
        .unwrap()
        .deserialize::<u32>()
        .unwrap_err();
    assert!(matches!(error, DecodeError::Json(_)));
    assert!(format!("{error}").starts_with("cannot decode value"));
    assert_eq!(
        format!("{}", DecodeError::NotAnArray),
        "value is not an array"
    );
}

#[test]
fn errors_display() {
    let error = RawJson::parse(b"[1,]").unwrap_err();
    assert_eq!(
        error,
        JsonError::new(JsonErrorKind::UnexpectedByte { byte: b']' }, 3)
    );
    assert_eq!(format!("{error}"), "unexpected byte 0x5d at byte 3");
    assert_eq!(
        format!("{}", JsonErrorKind::TooDeep { limit: 4 }),
        "nesting deeper than 4"
    );
    assert_eq!(
        format!(
            "{}",
            BufferTooSmall {
                required: 9,
                available: 2
            }
        ),
        "buffer too small: 9 bytes needed, 2 available"
    );
}

// ---------------------------------------------------------------------------------------
// Framer behaviour
// ---------------------------------------------------------------------------------------

#[test]
fn frames_values_and_skips_whitespace() {
    let stream = b" {\"a\": 1}\r\n[1, 2]\t\"s\" true 12 -3.5e2\n{}";
    let run = check_splits(64, stream, all_splits(stream.len()));
    assert_eq!(
        frame_texts(&run),
        [
            "{\"a\": 1}",
            "[1, 2]",
            "\"s\"",
            "true",
            "12",
            "-3.5e2",
            "{}"
        ]
    );
    assert!(!run.1);
}

#[test]
fn top_level_number_waits_for_next_byte() {
    let mut buffer = [0u8; 16];
    let mut framer = Framer::new(&mut buffer);
    framer.push(b"42");
    assert!(framer.next_item().is_none());
    assert!(framer.has_partial());
    framer.push(b" ");
    assert!(matches!(framer.next_item(), Some(Item::Frame(f)) if f.bytes() == b"42"));
    assert!(!framer.has_partial());
}

#[test]
fn back_to_back_objects() {
    let stream = br#"{"a":1}{"b":2}[]"x"{}"#;
    let run = check_splits(32, stream, all_splits(stream.len()));
    assert_eq!(
        frame_texts(&run),
        [r#"{"a":1}"#, r#"{"b":2}"#, "[]", "\"x\"", "{}"]
    );
}

#[test]
fn members_beyond_recorded_spans() {
    let mut text = String::from("{");
    for index in 0..40 {
        if index > 0 {
            text.push_str(", ");
        }
        text.push_str(&format!("\"k{index}\": [{index}, {{\"n\": \"v\"}}]"));
    }
    text.push_str("}\n");
    let run = check_splits(4096, text.as_bytes(), some_splits(text.len(), 37));
    let Owned::Frame { members, .. } = &run.0[0] else {
        panic!("{run:?}")
    };
    assert_eq!(members.len(), 40);
    assert_eq!(members[39], ("k39".into(), "[39, {\"n\": \"v\"}]".into()));
    // Exactly the recorded number of members.
    let mut text = String::from("{");
    for index in 0..16 {
        text.push_str(&format!(
            "{}\"k{index}\":{index}",
            if index > 0 { "," } else { "" }
        ));
    }
    text.push('}');
    let run = run_whole(1024, text.as_bytes());
    let Owned::Frame { members, .. } = &run.0[0] else {
        panic!("{run:?}")
    };
    assert_eq!(members.len(), 16);
}

#[test]
fn malformed_then_resync_on_next_line() {
    // QEMU's own output for `"id": inf` style values, then good lines.
    let stream = b"{\"return\": 1, \"id\": inf}\r\n{\"return\": {}, \"id\": 2}\r\n";
    let run = check_splits(256, stream, all_splits(stream.len()));
    assert_eq!(kinds(&run), ["malformed", "frame"]);
    assert!(matches!(
        &run.0[0],
        Owned::Malformed(JsonError {
            kind: JsonErrorKind::UnexpectedByte { byte: b'i' },
            offset: 20
        })
    ));
    assert_eq!(frame_texts(&run), ["{\"return\": {}, \"id\": 2}"]);
}

#[test]
fn malformed_skips_lines_not_starting_with_brace() {
    // One bad pretty-printed message is one Malformed, however many lines it spans.
    let stream =
        b"{\r\n    \"a\": nan,\r\n    \"b\": {\r\n    }\r\n}\r\n  {\"x\": 1}\r\n{\"ok\": true}\r\n";
    let run = check_splits(256, stream, all_splits(stream.len()));
    assert_eq!(kinds(&run), ["malformed", "frame"]);
    assert_eq!(frame_texts(&run), ["{\"ok\": true}"]);
}

#[test]
fn truncated_message_then_new_line_resumes_at_the_brace() {
    let stream = b"{\"a\": [1, 2\n{\"b\": 1}\n";
    let run = check_splits(256, stream, all_splits(stream.len()));
    assert_eq!(kinds(&run), ["malformed", "frame"]);
    assert_eq!(frame_texts(&run), ["{\"b\": 1}"]);
}

#[test]
fn garbage_between_messages() {
    let stream = b"}\r\nxx yy\r\n\r\n{\"a\": 1}\r\nnull\r\n";
    let run = check_splits(64, stream, all_splits(stream.len()));
    assert_eq!(kinds(&run), ["malformed", "frame", "frame"]);
    assert_eq!(frame_texts(&run), ["{\"a\": 1}", "null"]);
}

#[test]
fn sentinel_everywhere() {
    let stream = b"\xFF{\"a\": \"x\xFFy\"}\n{\"b\": [1, 2\xFF{\"c\": 1}\xFF\xFFtr\xFFnull 1\xFF";
    let run = check_splits(64, stream, all_splits(stream.len()));
    assert_eq!(
        kinds(&run),
        [
            "sentinel",
            "sentinel",
            "malformed",
            "sentinel",
            "frame",
            "sentinel",
            "sentinel",
            "sentinel",
            "frame",
            "frame",
            "sentinel"
        ]
    );
    assert_eq!(frame_texts(&run), ["{\"c\": 1}", "null", "1"]);
}

#[test]
fn oversize_values_are_skipped_with_their_id() {
    let big_string = "x".repeat(300);
    let stream = format!(
        "{{\"id\": 5}}\n{{\"return\": \"{big_string}\", \"id\": 77}}\r\n{{\"id\": 78, \"return\": [\"{big_string}\"]}}\n{{\"\\u0069d\": 79, \"e\": \"{big_string}\"}}\n{{\"id\": -1, \"e\": \"{big_string}\"}}\n{{\"id\": \"s\", \"e\": \"{big_string}\"}}\n[\"{big_string}\"]\n{{\"after\": 1}}\n"
    );
    let stream = stream.as_bytes();
    let run = check_splits(64, stream, all_splits(stream.len()));
    let oversize: Vec<(u64, Option<u64>)> = run
        .0
        .iter()
        .filter_map(|item| match item {
            Owned::Oversize { len, id } => Some((*len, *id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        oversize,
        [
            (324, Some(77)),
            (326, Some(78)),
            (324, Some(79)),
            (319, None),
            (320, None),
            (304, None)
        ]
    );
    assert_eq!(frame_texts(&run), ["{\"id\": 5}", "{\"after\": 1}"]);
}

#[test]
fn oversize_invalid_value_is_malformed() {
    let big = "y".repeat(100);
    let stream = format!("{{\"a\": \"{big}\", \"b\": tru}}\n{{\"ok\": 1}}\n");
    let run = check_splits(32, stream.as_bytes(), all_splits(stream.len()));
    assert_eq!(kinds(&run), ["malformed", "frame"]);
    assert!(matches!(
        &run.0[0],
        Owned::Malformed(JsonError {
            kind: JsonErrorKind::InvalidLiteral,
            offset: 118
        })
    ));
}

#[test]
fn oversize_malformed_value_resumes_at_column_zero_brace() {
    let big = "z".repeat(100);
    let stream = format!("{{\"a\": \"{big}\"\n{{\"ok\": 1}}\n");
    let run = check_splits(32, stream.as_bytes(), all_splits(stream.len()));
    assert_eq!(kinds(&run), ["malformed", "frame"]);
}

#[test]
fn error_offsets_are_stream_offsets() {
    let mut stream = Vec::new();
    for _ in 0..50 {
        stream.extend_from_slice(b"{\"return\": {}}\r\n");
    }
    let bad_at = stream.len() + 5;
    stream.extend_from_slice(b"{\"a\":x}\n");
    let run = check_splits(40, &stream, some_splits(stream.len(), 13));
    assert!(matches!(
        run.0.last(),
        Some(Owned::Malformed(JsonError { offset, .. })) if *offset == bad_at as u64
    ));
}

#[test]
fn value_exactly_filling_the_buffer_is_a_frame() {
    let stream = b"{\"abc\": 12345}{\"abc\": 123456}\n";
    let run = check_splits(14, stream, all_splits(stream.len()));
    assert_eq!(kinds(&run), ["frame", "oversize"]);
}

#[test]
fn tiny_buffers_never_panic() {
    let stream = b"{\"a\": 1} 7 [] \"\" \xFF{\"id\": 3, \"b\": [1]}\n";
    for capacity in 0..12 {
        let run = run_push(capacity.max(1), stream.chunks(3));
        assert!(!run.0.is_empty());
        let mut buffer = vec![0u8; capacity];
        let mut framer = Framer::new(&mut buffer);
        let taken = framer.push(stream);
        assert!(taken <= capacity.max(stream.len()));
        while framer.next_item().is_some() {}
        framer.commit(usize::MAX);
        assert!(framer.buffered() <= capacity);
        framer.reset();
        assert_eq!(framer.buffered(), 0);
    }
    // With one byte of buffer, every multi-byte value is oversize, `7 ` too.
    let run = run_push(1, stream.chunks(1));
    assert!(kinds(&run).contains(&"oversize"));
}

#[test]
fn stats_count() {
    let mut buffer = [0u8; 16];
    let mut framer = Framer::new(&mut buffer);
    let stream = b"{}\n{\"a\": \"long long long\"}\n]\n{}\n";
    let mut rest = &stream[..];
    let mut count = 0;
    while !rest.is_empty() {
        let taken = framer.push(rest);
        rest = &rest[taken..];
        while framer.next_item().is_some() {
            count += 1;
        }
    }
    let stats = framer.stats();
    assert_eq!(count, 4);
    assert_eq!((stats.frames, stats.oversize, stats.malformed), (2, 1, 1));
    assert_eq!(stats.bytes_scanned, stream.len() as u64);
}

#[test]
fn frame_members_are_recorded_spans() {
    let mut buffer = [0u8; 128];
    let mut framer = Framer::new(&mut buffer);
    framer.push(b"  {\"return\": {\"a\": 1}, \"id\": 9}  ");
    let Some(Item::Frame(frame)) = framer.next_item() else {
        panic!()
    };
    let members: Vec<(String, &str)> = frame
        .members()
        .map(|(k, v)| (format!("{k}"), v.as_str()))
        .collect();
    assert_eq!(
        members,
        [("return".into(), "{\"a\": 1}"), ("id".into(), "9")]
    );
    assert_eq!(frame.value().get("id").unwrap().as_u64(), Some(9));
    assert!(format!("{frame:?}").contains("return"));
}

// ---------------------------------------------------------------------------------------
// Captured QEMU vectors
// ---------------------------------------------------------------------------------------

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/protocol/vectors/"
);

#[cfg(not(miri))]
pub(crate) fn vector(name: &str) -> Vec<u8> {
    let path = format!("{VECTORS}{name}");
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// Under Miri (no file system) the vectors come from `include_bytes!`.
#[cfg(miri)]
pub(crate) fn vector(name: &str) -> Vec<u8> {
    macro_rules! embedded {
        ($($file:literal),*) => {
            match name {
                $($file => include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"), "/../../shared/protocol/vectors/", $file
                )).to_vec(),)*
                _ => panic!("{name} is not embedded for miri"),
            }
        };
    }
    embedded!(
        "01-greeting.s2c",
        "09-malformed-json.s2c",
        "19-unicode-escapes.s2c",
        "40-qga-session.s2c"
    )
}

pub(crate) fn vector_names() -> Vec<String> {
    if cfg!(miri) {
        return [
            "01-greeting.s2c",
            "09-malformed-json.s2c",
            "19-unicode-escapes.s2c",
            "40-qga-session.s2c",
        ]
        .map(String::from)
        .to_vec();
    }
    let mut names: Vec<String> = std::fs::read_dir(VECTORS)
        .unwrap_or_else(|error| panic!("cannot list {VECTORS}: {error}"))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".s2c"))
        .collect();
    names.sort();
    assert!(names.len() >= 30, "vectors missing: {names:?}");
    names
}

/// The values serde_json delimits in a stream of valid JSON.
fn serde_json_values(stream: &[u8]) -> Vec<String> {
    let mut values = Vec::new();
    let mut iter =
        serde_json::Deserializer::from_slice(stream).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    while let Some(result) = iter.next() {
        result.unwrap_or_else(|error| panic!("serde_json: {error}"));
        let end = iter.byte_offset();
        values.push(String::from_utf8_lossy(stream[start..end].trim_ascii()).into_owned());
        start = end;
    }
    values
}

#[test]
fn every_vector_at_every_split_point() {
    for name in vector_names() {
        let stream = vector(&name);
        // Splits: every point for small files, a stride plus the neighbourhood of each
        // line end for the 117 KB one.
        let splits: Vec<usize> = if stream.len() <= 8192 {
            all_splits(stream.len()).collect()
        } else {
            let mut splits: Vec<usize> = (0..stream.len())
                .step_by(if cfg!(miri) { 40_000 } else { 997 })
                .collect();
            for (index, _) in stream.iter().enumerate().filter(|(_, b)| **b == b'\n') {
                splits.extend(index.saturating_sub(2)..(index + 3).min(stream.len()));
            }
            splits
        };
        // Under Miri every `&mut` to the buffer is retagged byte by byte, so a 256 KiB
        // buffer costs minutes per run; the Miri vectors are all under 4 KB.
        let capacity = if cfg!(miri) { 8 * 1024 } else { 256 * 1024 };
        let run = check_splits(capacity, &stream, splits.into_iter());
        assert!(!run.1, "{name}: partial value at end");
        let malformed = kinds(&run).iter().filter(|k| **k == "malformed").count();
        match name.as_str() {
            // Server output is valid JSON; only the QGA vector has sentinels.
            "40-qga-session.s2c" => assert!(kinds(&run).contains(&"sentinel")),
            _ => {
                assert_eq!(malformed, 0, "{name}: {run:?}");
                assert!(!kinds(&run).contains(&"sentinel"), "{name}");
                assert_eq!(frame_texts(&run), serde_json_values(&stream), "{name}");
            }
        }
        assert!(
            frame_texts(&run).iter().all(|f| f.starts_with('{')),
            "{name}"
        );
    }
}

#[test]
fn vector_07_schema_is_oversize_in_4k() {
    let stream = vector_or_skip("07-query-qmp-schema.s2c");
    let Some(stream) = stream else { return };
    let split_points: Vec<usize> = (0..stream.len())
        .step_by(if cfg!(miri) { 50_000 } else { 4_099 })
        .collect();
    let run = check_splits(4096, &stream, split_points.into_iter());
    assert_eq!(kinds(&run), ["frame", "frame", "oversize"]);
    let line_len = stream
        .split(|&b| b == b'\n')
        .nth(2)
        .map(|line| line.len() - 1)
        .unwrap() as u64;
    assert_eq!(line_len, 116_875);
    let id = serde_json_id(&stream);
    assert_eq!(run.0[2], Owned::Oversize { len: line_len, id });
}

/// The vector, or `None` under Miri for the large ones.
fn vector_or_skip(name: &str) -> Option<Vec<u8>> {
    if cfg!(miri) {
        None
    } else {
        Some(vector(name))
    }
}

/// The unsigned `id` of the last message, as serde_json reads it.
fn serde_json_id(stream: &[u8]) -> Option<u64> {
    let last = stream.split(|&b| b == b'\n').rfind(|line| line.len() > 1)?;
    let value: serde_json::Value = serde_json::from_slice(last).ok()?;
    value.get("id")?.as_u64()
}

#[test]
fn vector_18_pretty_frames_whole_messages() {
    let Some(stream) = vector_or_skip("18-pretty.s2c") else {
        return;
    };
    let run = run_whole(8192, &stream);
    let frames = frame_texts(&run);
    assert_eq!(frames, serde_json_values(&stream));
    assert!(frames.len() > 10);
    assert!(frames
        .iter()
        .all(|f| f.starts_with("{\r\n") || *f == "{\r\n    }"));
    // A pretty message with an error in the middle is reported once.
    let mut broken = stream.clone();
    let position = broken.windows(7).position(|w| w == b"\"major\"").unwrap();
    broken[position + 10] = b'x';
    let broken_run = run_whole(8192, &broken);
    assert_eq!(
        kinds(&broken_run)
            .iter()
            .filter(|k| **k == "malformed")
            .count(),
        1
    );
    assert_eq!(frame_texts(&broken_run).len(), frames.len() - 1);
}

#[test]
fn vector_40_qga_sentinels() {
    let stream = vector("40-qga-session.s2c");
    let run = check_splits(8192, &stream, all_splits(stream.len()));
    let kinds = kinds(&run);
    // The 0xFF answer to guest-sync-delimited comes right before its reply.
    let sentinel = kinds.iter().position(|k| *k == "sentinel").unwrap();
    assert_eq!(kinds[sentinel + 1], "frame");
    let after = run.0[sentinel + 1].clone();
    assert!(matches!(after, Owned::Frame { text, .. } if text == "{\"return\": 1234567890123}"));
    assert_eq!(
        stream.iter().filter(|b| **b == 0xFF).count(),
        kinds.iter().filter(|k| **k == "sentinel").count()
    );
    assert!(!kinds.contains(&"malformed"));
}

#[test]
fn vector_19_unicode_escapes_decode() {
    let stream = vector("19-unicode-escapes.s2c");
    let run = run_whole(8192, &stream);
    let mut found = false;
    for text in frame_texts(&run) {
        let value = RawJson::parse(text.as_bytes()).unwrap();
        let reference: serde_json::Value = serde_json::from_str(text).unwrap();
        compare_with_serde(value, &reference);
        found |= text.contains("\\uD83D\\uDE00");
    }
    assert!(found);
}

/// Checks a value against serde_json's reading of it, recursively.
fn compare_with_serde(value: RawJson<'_>, reference: &serde_json::Value) {
    match reference {
        serde_json::Value::Object(map) => {
            let members: Vec<_> = value.members().collect();
            assert_eq!(members.len(), map.len());
            for (key, member) in members {
                let key_text: String = key.chars().collect();
                compare_with_serde(member, &map[&key_text]);
                assert!(value.get(&key_text).is_some());
            }
        }
        serde_json::Value::Array(list) => {
            let elements: Vec<_> = value.elements().collect();
            assert_eq!(elements.len(), list.len());
            for (element, expected) in elements.into_iter().zip(list) {
                compare_with_serde(element, expected);
            }
        }
        serde_json::Value::String(text) => {
            let json_str = value.as_json_str().unwrap();
            assert_eq!(json_str.chars().collect::<String>(), *text);
            assert!(json_str == text.as_str());
            assert_eq!(json_str.unescaped_len(), text.len());
        }
        serde_json::Value::Number(number) => {
            assert_eq!(value.as_u64(), number.as_u64());
            assert_eq!(value.as_i64(), number.as_i64());
        }
        serde_json::Value::Bool(flag) => assert_eq!(value.as_bool(), Some(*flag)),
        serde_json::Value::Null => assert!(value.is_null()),
    }
}

#[test]
fn vector_09_malformed_server_output_is_valid() {
    // QEMU's error replies about malformed input are themselves valid JSON.
    let stream = vector("09-malformed-json.s2c");
    let run = run_whole(4096, &stream);
    assert_eq!(frame_texts(&run), serde_json_values(&stream));
}

#[test]
fn walker_matches_serde_json_on_vectors() {
    for name in vector_names() {
        if name.starts_with("40") {
            continue;
        }
        let stream = vector(&name);
        let run = run_whole(if cfg!(miri) { 8 * 1024 } else { 256 * 1024 }, &stream);
        for text in frame_texts(&run) {
            let reference: serde_json::Value = serde_json::from_str(text).unwrap();
            compare_with_serde(RawJson::parse(text.as_bytes()).unwrap(), &reference);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Garbage and random splits
// ---------------------------------------------------------------------------------------

/// A deterministic pseudo-random generator (xorshift), for this module's tests and the
/// scanner's and SWAR helpers' differential tests.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (which must not be 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"{}[]\":,\\ \t\r\n0123456789-+.eEtrufalsn\xFF\xC3\xA9\x80\xF0\x01u";
    let rounds = if cfg!(miri) { 3 } else { 300 };
    for _ in 0..rounds {
        let len = (rng.next() % 200) as usize;
        let stream: Vec<u8> = (0..len)
            .map(|_| {
                let pick = rng.next();
                if pick.is_multiple_of(7) {
                    pick as u8 >> 1
                } else {
                    alphabet[(pick >> 8) as usize % alphabet.len()]
                }
            })
            .collect();
        let capacity = 1 + (rng.next() % 64) as usize;
        let whole = run_whole(capacity, &stream);
        let split = (rng.next() as usize) % (len + 1);
        let (head, tail) = stream.split_at(split);
        assert_eq!(
            run_push(capacity, [head, tail]),
            whole,
            "{stream:?} split at {split}"
        );
        assert_eq!(
            run_window(capacity, stream.chunks(3)),
            whole,
            "{stream:?} in threes"
        );
        let _ = RawJson::parse(&stream);
        if let Ok(value) = RawJson::parse(&stream) {
            let _ = value.members().count() + value.elements().count();
        }
    }
}

#[test]
fn truncated_input_never_panics() {
    let text = br#"{"return": [{"name": "a\u00e9\"", "n": -1.5e3, "t": true}], "id": 12345}"#;
    for end in 0..text.len() {
        let piece = &text[..end];
        assert!(RawJson::parse(piece).is_err(), "{end}");
        let run = run_whole(128, piece);
        assert!(run.0.is_empty());
        assert_eq!(run.1, end > 0, "{end}");
    }
}

#[cfg(not(miri))]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    fn message() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            any::<u32>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just(String::from("null")),
            Just(String::from("true")),
            "[ -~é漢😀]{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        let value = leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                prop::collection::vec(("[a-z]{1,6}", inner), 0..6).prop_map(|members| {
                    let body: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\": {v}"))
                        .collect();
                    format!("{{{}}}", body.join(", "))
                }),
            ]
        });
        (value, any::<u16>()).prop_map(|(v, id)| format!("{{\"return\": {v}, \"id\": {id}}}\r\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn random_splits_give_the_same_items(
            messages in prop::collection::vec(message(), 1..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            capacity in 16usize..512,
        ) {
            let stream = messages.concat().into_bytes();
            let whole = run_whole(capacity, &stream);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort();
            let mut chunks = Vec::new();
            let mut last = 0;
            for point in points {
                chunks.push(&stream[last..point]);
                last = point;
            }
            chunks.push(&stream[last..]);
            prop_assert_eq!(&run_push(capacity, chunks.iter().copied()), &whole);
            prop_assert_eq!(&run_window(capacity, chunks.iter().copied()), &whole);
            // Every message is a frame or, when longer than the buffer, oversize with its id.
            prop_assert_eq!(whole.0.len(), messages.len());
            for (item, message) in whole.0.iter().zip(&messages) {
                let text = message.trim_end();
                match item {
                    Owned::Frame { text: frame, .. } => prop_assert_eq!(frame.as_str(), text),
                    Owned::Oversize { len, id } => {
                        prop_assert!(text.len() > capacity);
                        prop_assert_eq!(*len, text.len() as u64);
                        let reference: serde_json::Value = serde_json::from_str(text).unwrap();
                        prop_assert_eq!(*id, reference["id"].as_u64());
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }
}

#[test]
fn chunked_moves_match_copy_within() {
    let original: std::vec::Vec<u8> = (0..23u8).collect();
    for from in 0..=original.len() {
        for to in from..=original.len() {
            let mut expected = original.clone();
            expected.copy_within(from..to, 0);
            let mut moved = original.clone();
            super::move_to_front(&mut moved, from, to);
            assert_eq!(moved, expected, "to front: {from}..{to}");
            for by in 0..=original.len() - to {
                let mut expected = original.clone();
                expected.copy_within(from..to, from + by);
                let mut moved = original.clone();
                super::move_back(&mut moved, from, to, by);
                assert_eq!(moved, expected, "back: {from}..{to} by {by}");
            }
        }
    }
    // Out-of-range requests do not panic.
    let mut moved = original.clone();
    super::move_to_front(&mut moved, 20, 40);
    super::move_back(&mut moved, 10, 20, 10);
    assert_eq!(moved.len(), original.len());
}
