//! Checks of qmp-core's JSON layer: [`compare_value`] walks a `RawJson` next to serde_json's
//! view of the same text, and [`check_classify`] compares `Message::classify` with a
//! reference classifier written from the documented rules over serde_json's view.

use qmp_core::json::{JsonKind, JsonStr, RawJson, MAX_DEPTH_LIMIT};
use qmp_core::message::{ErrorClass, Message, Timestamp};

use crate::reference::{self, Shape};

/// Nesting depth up to which both qmp-core and the reference are expected to agree on
/// validity (serde_json's own depth limit is 128; its `IgnoredAny` path has none).
pub const COMPARABLE_DEPTH: usize = 100;

/// The decoded text of a `JsonStr`, checked three ways: `chars()`, `unescape_into` into a
/// buffer of exactly `unescaped_len()` bytes, and `BufferTooSmall` one byte short.
pub fn decode(text: JsonStr<'_>) -> String {
    let by_chars: String = text.chars().collect();
    let len = text.unescaped_len();
    assert_eq!(len, by_chars.len(), "unescaped_len of {:?}", text.raw());
    let mut buffer = vec![0u8; len];
    let unescaped = text
        .unescape_into(&mut buffer)
        .unwrap_or_else(|e| panic!("unescape_into an exact buffer failed: {e}"));
    assert_eq!(
        unescaped,
        by_chars,
        "unescape_into vs chars of {:?}",
        text.raw()
    );
    if len > 0 {
        let mut short = vec![0u8; len - 1];
        let error = text
            .unescape_into(&mut short)
            .expect_err("unescape_into a buffer one byte short succeeded");
        assert_eq!((error.required, error.available), (len, len - 1));
    }
    if let Some(plain) = text.as_plain() {
        assert!(!text.has_escapes());
        assert_eq!(plain, by_chars);
    }
    assert!(
        text == by_chars.as_str(),
        "JsonStr == &str for {:?}",
        text.raw()
    );
    by_chars
}

/// Walks `value` and serde_json's view of the same text together, to `depth_left` levels,
/// asserting every accessor agrees: kind, members (keys decoded, values' exact bytes),
/// `get`, elements, strings, integers, booleans, null.
pub fn compare_value(value: RawJson<'_>, depth_left: usize) {
    let text = std::str::from_utf8(value.as_bytes()).expect("a RawJson that is not UTF-8");
    assert_eq!(value.as_str(), text);
    let first = value.as_bytes().first().copied();
    assert!(
        first.is_some_and(|b| !reference::is_json_whitespace(b)),
        "RawJson with leading whitespace or empty: {text:?}"
    );
    assert!(
        value
            .as_bytes()
            .last()
            .is_some_and(|&b| !reference::is_json_whitespace(b)),
        "RawJson with trailing whitespace: {text:?}"
    );
    let shape = reference::shape(text);
    let kind = value.kind();
    match &shape {
        Shape::Object(members) => {
            assert_eq!(kind, JsonKind::Object);
            assert!(value.is_object() && !value.is_array());
            let ours: Vec<_> = value.members().collect();
            assert_eq!(ours.len(), members.len(), "member count of {text:?}");
            for ((key, member), (ref_key, ref_member)) in ours.iter().zip(members) {
                assert_eq!(&decode(*key), ref_key, "key in {text:?}");
                assert_eq!(
                    member.as_str(),
                    ref_member.get(),
                    "member value in {text:?}"
                );
            }
            for (ref_key, _) in members {
                let ours = value.get(ref_key).map(|v| v.as_str());
                let expected = shape.first(ref_key).map(|v| v.get());
                assert_eq!(ours, expected, "get({ref_key:?}) in {text:?}");
            }
            assert_eq!(value.elements().count(), 0);
            if depth_left > 0 {
                for (_, member) in ours {
                    compare_value(member, depth_left - 1);
                }
            }
        }
        Shape::Array(elements) => {
            assert_eq!(kind, JsonKind::Array);
            assert!(value.is_array() && !value.is_object());
            let ours: Vec<_> = value.elements().collect();
            assert_eq!(ours.len(), elements.len(), "element count of {text:?}");
            for (element, ref_element) in ours.iter().zip(elements) {
                assert_eq!(element.as_str(), ref_element.get(), "element in {text:?}");
            }
            assert_eq!(value.members().count(), 0);
            assert!(value.get("").is_none());
            if depth_left > 0 {
                for element in ours {
                    compare_value(element, depth_left - 1);
                }
            }
        }
        Shape::String(decoded) => {
            assert_eq!(kind, JsonKind::String);
            let text = value.as_json_str().expect("a string without as_json_str");
            assert_eq!(&decode(text), decoded, "string {:?}", value.as_str());
        }
        Shape::Number { as_u64, as_i64 } => {
            assert_eq!(kind, JsonKind::Number);
            let plain_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
            // Ours reads integers written as integers; serde_json also takes "-0" as u64.
            match value.as_u64() {
                Some(n) => assert_eq!(Some(n), *as_u64, "as_u64 of {text}"),
                None => assert!(
                    !(plain_digits(text) && as_u64.is_some()),
                    "as_u64 of {text} is None, serde_json reads {as_u64:?}"
                ),
            }
            let signed_digits = plain_digits(text.strip_prefix('-').unwrap_or(text));
            // serde_json reads "-0" as a float; it is the integer 0 all the same.
            let as_i64 = if text == "-0" { &Some(0) } else { as_i64 };
            match value.as_i64() {
                Some(n) => assert_eq!(Some(n), *as_i64, "as_i64 of {text}"),
                None => assert!(
                    !(signed_digits && as_i64.is_some()),
                    "as_i64 of {text} is None, serde_json reads {as_i64:?}"
                ),
            }
            // Precision is serde-json-core's; only "no panic, and some finite or infinite
            // value for a number" is asserted.
            let _ = value.as_f64();
        }
        Shape::Bool(b) => {
            assert_eq!(kind, JsonKind::Bool);
            assert_eq!(value.as_bool(), Some(*b));
        }
        Shape::Null => {
            assert_eq!(kind, JsonKind::Null);
            assert!(value.is_null());
        }
    }
    if !matches!(shape, Shape::Number { .. }) {
        assert_eq!(value.as_u64(), None);
        assert_eq!(value.as_i64(), None);
        assert_eq!(value.as_f64(), None);
    }
    if !matches!(shape, Shape::String(_)) {
        assert!(value.as_json_str().is_none());
    }
    if !matches!(shape, Shape::Bool(_)) {
        assert_eq!(value.as_bool(), None);
    }
    // `Debug` and `Display` never panic.
    let _ = format!("{value:?} {value}");
}

/// The fuzz target `classify`: arbitrary bytes through `RawJson::parse`, compared with
/// serde_json on validity, then every accessor and `Message::classify` compared with the
/// reference.
pub fn check_classify(data: &[u8]) {
    let parsed = RawJson::parse(data);
    let depth = reference::max_depth(data);
    let valid = reference::is_valid_json(data);
    if depth <= COMPARABLE_DEPTH {
        assert_eq!(
            parsed.is_ok(),
            valid,
            "RawJson::parse says {:?}, serde_json says valid={valid} for {:?}",
            parsed.map(|_| ()),
            String::from_utf8_lossy(data)
        );
    } else if depth > MAX_DEPTH_LIMIT {
        assert!(
            parsed.is_err(),
            "accepted nesting deeper than MAX_DEPTH_LIMIT"
        );
    }
    let Ok(value) = parsed else {
        return;
    };
    assert!(
        valid,
        "RawJson::parse accepted what serde_json rejects: {data:?}"
    );
    // The span is the input without surrounding whitespace.
    let text = std::str::from_utf8(data).expect("valid JSON that is not UTF-8");
    assert_eq!(
        value.as_str(),
        text.trim_matches(|c: char| c.is_ascii() && reference::is_json_whitespace(c as u8))
    );
    compare_value(value, 8);
    check_message(value);
}

/// `Message::classify(value)` against the reference rules.
pub fn check_message(value: RawJson<'_>) {
    let message = Message::classify(value);
    let _ = format!("{message:?}");
    let shape = reference::shape(value.as_str());
    let Shape::Object(members) = &shape else {
        assert!(
            matches!(message, Message::Unknown(_)),
            "non-object: {message:?}"
        );
        return;
    };
    let kinds: Vec<_> = members
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "return" | "error" | "event" | "QMP"))
        .collect();
    let last = |key: &str| shape.last(key).map(|v| v.get().to_owned());
    let [(kind, member)] = kinds.as_slice() else {
        assert!(
            matches!(message, Message::Unknown(_)),
            "{} kind members but {message:?}",
            kinds.len()
        );
        return;
    };
    let member_shape = reference::shape(member.get());
    match (kind.as_str(), message) {
        ("return", Message::Return { id, value: ret }) => {
            assert_eq!(ret.as_str(), member.get());
            assert_eq!(id.map(|i| i.as_str().to_owned()), last("id"));
        }
        ("error", Message::Error { id, error }) => {
            assert!(matches!(member_shape, Shape::Object(_)));
            assert_eq!(id.map(|i| i.as_str().to_owned()), last("id"));
            let class = member_shape
                .first("class")
                .filter(|c| c.get().starts_with('"'));
            match (class, error.class) {
                (None, ErrorClass::Other(name)) => assert_eq!(name.raw(), ""),
                (None, known) => panic!("no class string but {known:?}"),
                (Some(raw), ErrorClass::Other(name)) => {
                    let Shape::String(decoded) = reference::shape(raw.get()) else {
                        unreachable!()
                    };
                    assert_eq!(decode(name), decoded);
                    let raw_text = &raw.get()[1..raw.get().len() - 1];
                    assert!(
                        !matches!(
                            raw_text,
                            "GenericError"
                                | "CommandNotFound"
                                | "DeviceNotActive"
                                | "DeviceNotFound"
                                | "KVMMissingCap"
                        ),
                        "known class {raw_text} as Other"
                    );
                }
                (Some(raw), known) => {
                    assert_eq!(&raw.get()[1..raw.get().len() - 1], known.name());
                }
            }
            let desc = member_shape
                .first("desc")
                .filter(|d| d.get().starts_with('"'));
            match desc {
                None => assert_eq!(error.desc.raw(), ""),
                Some(raw) => assert_eq!(error.desc.raw(), &raw.get()[1..raw.get().len() - 1]),
            }
        }
        ("event", Message::Event(event)) => {
            let Shape::String(name) = &member_shape else {
                panic!("event member not a string, yet an Event: {event:?}")
            };
            assert_eq!(&decode(event.name), name);
            assert_eq!(event.data.map(|d| d.as_str().to_owned()), last("data"));
            let expected = shape
                .last("timestamp")
                .map(|t| reference::shape(t.get()))
                .and_then(|t| {
                    let field = |k: &str| match t.first(k).map(|v| reference::shape(v.get())) {
                        Some(Shape::Number { as_i64, .. }) => as_i64,
                        _ => None,
                    };
                    let plain = |k: &str| {
                        t.first(k).is_some_and(|v| {
                            let s = v.get().strip_prefix('-').unwrap_or(v.get());
                            s.bytes().all(|b| b.is_ascii_digit())
                        })
                    };
                    match (field("seconds"), field("microseconds")) {
                        (Some(seconds), Some(microseconds))
                            if plain("seconds") && plain("microseconds") =>
                        {
                            Some(Timestamp {
                                seconds,
                                microseconds,
                            })
                        }
                        _ => None,
                    }
                })
                .unwrap_or(Timestamp::UNKNOWN);
            assert_eq!(event.timestamp, expected);
        }
        ("QMP", Message::Greeting(greeting)) => {
            assert!(matches!(member_shape, Shape::Object(_)));
            assert_eq!(greeting.raw.as_str(), member.get());
            let version = member_shape
                .first("version")
                .map(|v| reference::shape(v.get()));
            let qemu = version
                .as_ref()
                .and_then(|v| v.first("qemu"))
                .map(|q| reference::shape(q.get()));
            let number = |key: &str| {
                qemu.as_ref()
                    .and_then(|q| q.first(key))
                    .filter(|n| n.get().bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| n.get().parse::<u32>().ok())
                    .unwrap_or(0)
            };
            assert_eq!(
                (
                    greeting.version.major,
                    greeting.version.minor,
                    greeting.version.micro
                ),
                (number("major"), number("minor"), number("micro"))
            );
            let package = version
                .as_ref()
                .and_then(|v| v.first("package"))
                .filter(|p| p.get().starts_with('"'))
                .map(|p| &p.get()[1..p.get().len() - 1]);
            assert_eq!(greeting.package.raw(), package.unwrap_or(""));
            let capabilities = member_shape
                .first("capabilities")
                .map(|c| reference::shape(c.get()));
            let (mut oob, mut unknown) = (false, 0u16);
            if let Some(Shape::Array(list)) = capabilities {
                for capability in list {
                    match reference::shape(capability.get()) {
                        Shape::String(name) if name == "oob" => oob = true,
                        _ => unknown = unknown.saturating_add(1),
                    }
                }
            }
            assert_eq!(
                (greeting.capabilities.oob, greeting.capabilities.unknown),
                (oob, unknown)
            );
        }
        ("error" | "event" | "QMP", Message::Unknown(_)) => match kind.as_str() {
            "error" | "QMP" => assert!(!matches!(member_shape, Shape::Object(_))),
            _ => assert!(!matches!(member_shape, Shape::String(_))),
        },
        (kind, message) => panic!("kind member {kind:?} but classified as {message:?}"),
    }
}
