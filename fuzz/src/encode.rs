//! The fuzz target `encode_roundtrip`: arbitrary serde data through qmp-core's encoder,
//! parsed back with serde_json.
//!
//! Input (`arbitrary`): a [`Request`]: a command name, optional arguments (a [`Tree`]
//! exercising the whole serde data model: integers, floats including NaN and infinities,
//! strings with control bytes and non-characters, byte arrays, options, sequences, maps
//! with non-string keys, structs, every kind of enum variant, fixed names that need
//! escaping), an optional id, the kind (`execute`/`exec-oob`) and an output buffer size.
//!
//! Invariants:
//! - `to_slice` / `encode_request` succeed exactly when the value is encodable by the
//!   documented rules, and otherwise fail with the first error in serialization order
//!   (NaN/infinity, non-character, non-string key, arguments that are not an object),
//!   whatever the buffer size;
//! - the output parses with serde_json to the same data (numbers exactly, strings
//!   byte for byte, members in order, duplicates kept), is printable ASCII except for
//!   non-ASCII characters inside strings (no raw control byte, no 0x7F, no 0xFF), and a
//!   request is one line: `{"execute"|"exec-oob":NAME[,"arguments":{..}][,"id":N]}` + LF;
//! - `BufferTooSmall.required` is exactly the length a large enough buffer receives (and
//!   `encoded_len` / `encoded_request_len` agree), and nothing is written past it.

use arbitrary::{Arbitrary, Unstructured};
use qmp_core::encode::{self, EncodeError, RequestKind};
use serde::ser::{
    SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};
use serde::Serialize;

use crate::reference::{self, Shape};

/// Names for struct fields and enum variants (serde wants `&'static str`): some need
/// escaping, one is a non-character.
pub const NAMES: [&str; 8] = [
    "a",
    "execute",
    "id",
    "quo\"te",
    "back\\slash",
    "new\nline\u{1}\u{7f}",
    "\u{e9}\u{1F600}",
    "non\u{FDD0}char",
];

fn name(index: u8) -> &'static str {
    NAMES[usize::from(index) % NAMES.len()]
}

/// How deep trees may nest (deeper parts are cut off).
pub const MAX_TREE_DEPTH: usize = 24;

/// A value in serde's data model.
#[derive(Debug, Clone, Arbitrary)]
pub enum Tree {
    /// `()`.
    Unit,
    /// `None`.
    None,
    /// `Some(_)`.
    Some(Box<Tree>),
    /// A boolean.
    Bool(bool),
    /// Signed integers.
    I64(i64),
    /// Small signed integers.
    I8(i8),
    /// Unsigned integers.
    U64(u64),
    /// Small unsigned integers.
    U16(u16),
    /// A double.
    F64(f64),
    /// A float.
    F32(f32),
    /// A char.
    Char(char),
    /// A string.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A sequence.
    Seq(Vec<Tree>),
    /// A tuple.
    Tuple(Vec<Tree>),
    /// A tuple struct.
    TupleStruct(Vec<Tree>),
    /// A map.
    Map(Vec<(Key, Tree)>),
    /// A struct: fields named from [`NAMES`].
    Struct(Vec<(u8, Tree)>),
    /// A unit struct.
    UnitStruct,
    /// A newtype struct.
    NewtypeStruct(Box<Tree>),
    /// A unit variant.
    UnitVariant(u8),
    /// A newtype variant.
    NewtypeVariant(u8, Box<Tree>),
    /// A tuple variant.
    TupleVariant(u8, Vec<Tree>),
    /// A struct variant.
    StructVariant(u8, Vec<(u8, Tree)>),
}

/// A map key.
#[derive(Debug, Clone, Arbitrary)]
pub enum Key {
    /// A string.
    Str(String),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A boolean.
    Bool(bool),
    /// A char.
    Char(char),
    /// A float: not a valid key.
    F64(f64),
    /// `()`: not a valid key.
    Unit,
    /// A unit variant: its name.
    UnitVariant(u8),
    /// A newtype struct around a key.
    Newtype(Box<Key>),
}

impl Tree {
    /// Cuts the tree at `depth` levels.
    pub fn truncate(&mut self, depth: usize) {
        if depth == 0 {
            *self = Tree::Unit;
            return;
        }
        match self {
            Tree::Some(t) | Tree::NewtypeStruct(t) | Tree::NewtypeVariant(_, t) => {
                t.truncate(depth - 1)
            }
            Tree::Seq(v) | Tree::Tuple(v) | Tree::TupleStruct(v) | Tree::TupleVariant(_, v) => {
                v.iter_mut().for_each(|t| t.truncate(depth - 1))
            }
            Tree::Map(v) => v.iter_mut().for_each(|(_, t)| t.truncate(depth - 1)),
            Tree::Struct(v) | Tree::StructVariant(_, v) => {
                v.iter_mut().for_each(|(_, t)| t.truncate(depth - 1))
            }
            _ => {}
        }
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Key::Str(v) => s.serialize_str(v),
            Key::I64(v) => s.serialize_i64(*v),
            Key::U64(v) => s.serialize_u64(*v),
            Key::Bool(v) => s.serialize_bool(*v),
            Key::Char(v) => s.serialize_char(*v),
            Key::F64(v) => s.serialize_f64(*v),
            Key::Unit => s.serialize_unit(),
            Key::UnitVariant(i) => s.serialize_unit_variant("K", u32::from(*i), name(*i)),
            Key::Newtype(k) => s.serialize_newtype_struct("N", k),
        }
    }
}

impl Serialize for Tree {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Unit => s.serialize_unit(),
            Tree::None => s.serialize_none(),
            Tree::Some(t) => s.serialize_some(t),
            Tree::Bool(v) => s.serialize_bool(*v),
            Tree::I64(v) => s.serialize_i64(*v),
            Tree::I8(v) => s.serialize_i8(*v),
            Tree::U64(v) => s.serialize_u64(*v),
            Tree::U16(v) => s.serialize_u16(*v),
            Tree::F64(v) => s.serialize_f64(*v),
            Tree::F32(v) => s.serialize_f32(*v),
            Tree::Char(v) => s.serialize_char(*v),
            Tree::Str(v) => s.serialize_str(v),
            Tree::Bytes(v) => s.serialize_bytes(v),
            Tree::Seq(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for t in v {
                    seq.serialize_element(t)?;
                }
                seq.end()
            }
            Tree::Tuple(v) => {
                let mut seq = s.serialize_tuple(v.len())?;
                for t in v {
                    seq.serialize_element(t)?;
                }
                seq.end()
            }
            Tree::TupleStruct(v) => {
                let mut seq = s.serialize_tuple_struct("T", v.len())?;
                for t in v {
                    seq.serialize_field(t)?;
                }
                seq.end()
            }
            Tree::Map(v) => {
                let mut map = s.serialize_map(Some(v.len()))?;
                for (k, t) in v {
                    map.serialize_entry(k, t)?;
                }
                map.end()
            }
            Tree::Struct(v) => {
                let mut st = s.serialize_struct("S", v.len())?;
                for (i, t) in v {
                    st.serialize_field(name(*i), t)?;
                }
                st.end()
            }
            Tree::UnitStruct => s.serialize_unit_struct("U"),
            Tree::NewtypeStruct(t) => s.serialize_newtype_struct("N", t),
            Tree::UnitVariant(i) => s.serialize_unit_variant("E", u32::from(*i), name(*i)),
            Tree::NewtypeVariant(i, t) => {
                s.serialize_newtype_variant("E", u32::from(*i), name(*i), t)
            }
            Tree::TupleVariant(i, v) => {
                let mut tv = s.serialize_tuple_variant("E", u32::from(*i), name(*i), v.len())?;
                for t in v {
                    tv.serialize_field(t)?;
                }
                tv.end()
            }
            Tree::StructVariant(i, v) => {
                let mut sv = s.serialize_struct_variant("E", u32::from(*i), name(*i), v.len())?;
                for (f, t) in v {
                    sv.serialize_field(name(*f), t)?;
                }
                sv.end()
            }
        }
    }
}

/// What the encoder must produce for a value: the expected JSON, in the form the
/// comparison walks.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A double (compared exactly, sign of zero included).
    F64(f64),
    /// A float (the text must read back as this `f32`).
    F32(f32),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Expected>),
    /// An object, members in order.
    Object(Vec<(String, Expected)>),
}

fn is_non_character(c: char) -> bool {
    let cp = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE
}

fn text(s: &str) -> Result<String, EncodeError> {
    match s.chars().find(|&c| is_non_character(c)) {
        Some(c) => Err(EncodeError::NonCharacter {
            code_point: u32::from(c),
        }),
        None => Ok(s.to_owned()),
    }
}

fn expect_key(key: &Key) -> Result<String, EncodeError> {
    match key {
        Key::Str(s) => text(s),
        Key::I64(v) => Ok(v.to_string()),
        Key::U64(v) => Ok(v.to_string()),
        Key::Bool(v) => Ok(v.to_string()),
        Key::Char(c) => text(c.encode_utf8(&mut [0; 4])),
        Key::F64(_) | Key::Unit => Err(EncodeError::KeyNotString),
        Key::UnitVariant(i) => text(name(*i)),
        Key::Newtype(k) => expect_key(k),
    }
}

fn expect_fields(fields: &[(u8, Tree)]) -> Result<Expected, EncodeError> {
    let mut members = Vec::new();
    for (f, t) in fields {
        let key = text(name(*f))?;
        members.push((key, expect(t)?));
    }
    Ok(Expected::Object(members))
}

fn expect_all(items: &[Tree]) -> Result<Expected, EncodeError> {
    items
        .iter()
        .map(expect)
        .collect::<Result<Vec<_>, _>>()
        .map(Expected::Array)
}

/// The documented encoding of `tree`, or the first error in serialization order.
pub fn expect(tree: &Tree) -> Result<Expected, EncodeError> {
    Ok(match tree {
        Tree::Unit | Tree::None | Tree::UnitStruct => Expected::Null,
        Tree::Some(t) | Tree::NewtypeStruct(t) => return expect(t),
        Tree::Bool(v) => Expected::Bool(*v),
        Tree::I64(v) => Expected::Int(i128::from(*v)),
        Tree::I8(v) => Expected::Int(i128::from(*v)),
        Tree::U64(v) => Expected::Int(i128::from(*v)),
        Tree::U16(v) => Expected::Int(i128::from(*v)),
        Tree::F64(v) if v.is_finite() => Expected::F64(*v),
        Tree::F32(v) if v.is_finite() => Expected::F32(*v),
        Tree::F64(_) | Tree::F32(_) => return Err(EncodeError::NonFiniteFloat),
        Tree::Char(c) => Expected::Str(text(c.encode_utf8(&mut [0; 4]))?),
        Tree::Str(s) => Expected::Str(text(s)?),
        Tree::Bytes(b) => Expected::Array(b.iter().map(|&x| Expected::Int(x.into())).collect()),
        Tree::Seq(v) | Tree::Tuple(v) | Tree::TupleStruct(v) => return expect_all(v),
        Tree::Map(v) => {
            let mut members = Vec::new();
            for (k, t) in v {
                let key = expect_key(k)?;
                members.push((key, expect(t)?));
            }
            Expected::Object(members)
        }
        Tree::Struct(fields) => return expect_fields(fields),
        Tree::UnitVariant(i) => Expected::Str(text(name(*i))?),
        Tree::NewtypeVariant(i, t) => {
            let key = text(name(*i))?;
            Expected::Object(vec![(key, expect(t)?)])
        }
        Tree::TupleVariant(i, v) => {
            let key = text(name(*i))?;
            Expected::Object(vec![(key, expect_all(v)?)])
        }
        Tree::StructVariant(i, fields) => {
            let key = text(name(*i))?;
            Expected::Object(vec![(key, expect_fields(fields)?)])
        }
    })
}

/// Whether the tree serializes to an object (what `arguments` must be).
fn is_object(tree: &Tree) -> bool {
    match tree {
        Tree::Some(t) | Tree::NewtypeStruct(t) => is_object(t),
        Tree::Map(_)
        | Tree::Struct(_)
        | Tree::NewtypeVariant(..)
        | Tree::TupleVariant(..)
        | Tree::StructVariant(..) => true,
        _ => false,
    }
}

/// Asserts that the JSON `text` (one value) is `expected`.
pub fn compare(text: &str, expected: &Expected) {
    let shape = reference::shape(text);
    match (expected, shape) {
        (Expected::Null, Shape::Null) => {}
        (Expected::Bool(b), Shape::Bool(v)) => assert_eq!(*b, v),
        (Expected::Int(n), Shape::Number { .. }) => {
            assert_eq!(
                text.parse::<i128>().ok(),
                Some(*n),
                "integer written as {text}"
            )
        }
        (Expected::F64(f), Shape::Number { .. }) => {
            let parsed: f64 = text
                .parse()
                .unwrap_or_else(|_| panic!("not a float: {text}"));
            assert_eq!(parsed.to_bits(), f.to_bits(), "{f:?} written as {text}");
            // serde_json (float_roundtrip) reads the same.
            let theirs: f64 = serde_json::from_str(text).expect("serde_json float");
            assert_eq!(theirs.to_bits(), f.to_bits(), "{f:?} written as {text}");
        }
        (Expected::F32(f), Shape::Number { .. }) => {
            let parsed: f32 = text
                .parse()
                .unwrap_or_else(|_| panic!("not a float: {text}"));
            assert_eq!(parsed.to_bits(), f.to_bits(), "{f:?} written as {text}");
        }
        (Expected::Str(s), Shape::String(decoded)) => {
            assert_eq!(&decoded, s);
            // serde_json's own decoding agrees (no surrogate escapes are ever written).
            assert_eq!(&serde_json::from_str::<String>(text).expect("string"), s);
        }
        (Expected::Array(items), Shape::Array(elements)) => {
            assert_eq!(items.len(), elements.len(), "array length of {text}");
            for (item, element) in items.iter().zip(&elements) {
                compare(element.get(), item);
            }
        }
        (Expected::Object(members), Shape::Object(got)) => {
            assert_eq!(members.len(), got.len(), "member count of {text}");
            for ((key, item), (got_key, element)) in members.iter().zip(&got) {
                assert_eq!(key, got_key);
                compare(element.get(), item);
            }
        }
        (expected, shape) => panic!("expected {expected:?}, wrote {text} ({shape:?})"),
    }
}

/// The bytes an encoder may write: anything but raw control bytes, 0x7F and invalid
/// UTF-8; `allow_final_lf` for a request line.
fn check_bytes(bytes: &[u8], allow_final_lf: bool) {
    let text = std::str::from_utf8(bytes).expect("encoder wrote invalid UTF-8");
    let body = if allow_final_lf {
        text.strip_suffix('\n')
            .expect("request line without its LF")
    } else {
        text
    };
    assert!(
        body.bytes().all(|b| b >= 0x20 && b != 0x7F),
        "raw control byte in {body:?}"
    );
}

/// One encoder input.
#[derive(Debug, Arbitrary)]
pub struct Request {
    /// The command name.
    pub name: String,
    /// The arguments.
    pub arguments: Option<Tree>,
    /// The id.
    pub id: Option<u64>,
    /// `exec-oob` instead of `execute`.
    pub oob: bool,
    /// Output buffer size for the sized attempt.
    pub buffer: u16,
    /// A value for `to_slice`.
    pub value: Tree,
}

/// Guard bytes after the expected end of the output, checked untouched.
const GUARD: usize = 32;

/// Encodes `value` with `to_slice` into buffers of several sizes and checks the result.
pub fn check_value(value: &Tree, buffer: usize) {
    let expected = expect(value);
    let len = encode::encoded_len(value);
    match (&expected, len) {
        (Ok(expected), Ok(n)) => {
            let mut out = vec![0xAAu8; n + GUARD];
            assert_eq!(
                encode::to_slice(value, &mut out),
                Ok(n),
                "to_slice vs encoded_len"
            );
            assert!(out[n..].iter().all(|&b| b == 0xAA), "wrote past the value");
            check_bytes(&out[..n], false);
            let text = std::str::from_utf8(&out[..n]).expect("utf-8");
            assert!(
                reference::is_valid_json(text.as_bytes()),
                "invalid JSON: {text}"
            );
            compare(text, expected);
            for size in [buffer % (n + 1), n - 1] {
                if size >= n {
                    continue;
                }
                let mut small = vec![0xAAu8; size + GUARD];
                let error = encode::to_slice(value, &mut small[..size]);
                assert_eq!(
                    error,
                    Err(EncodeError::BufferTooSmall {
                        required: n,
                        available: size
                    })
                );
                assert!(
                    small[size..].iter().all(|&b| b == 0xAA),
                    "wrote past the buffer"
                );
            }
            let mut exact = vec![0u8; n];
            assert_eq!(encode::to_slice(value, &mut exact), Ok(n));
            assert_eq!(exact, out[..n]);
        }
        (Err(error), result) => {
            assert_eq!(result, Err(*error), "encoded_len of {value:?}");
            let mut small = vec![0u8; buffer % 256];
            assert_eq!(encode::to_slice(value, &mut small), Err(*error));
            let mut big = vec![0u8; 4096];
            assert_eq!(encode::to_slice(value, &mut big), Err(*error));
        }
        (Ok(expected), Err(error)) => panic!("{value:?}: expected {expected:?}, got {error}"),
    }
}

/// Encodes the request and checks the line.
pub fn check_request(request: &Request) {
    let kind = if request.oob {
        RequestKind::ExecOob
    } else {
        RequestKind::Execute
    };
    let name_expected = text(&request.name);
    let args_expected = match &request.arguments {
        None => Ok(None),
        Some(tree) if is_object(tree) => expect(tree).map(Some),
        Some(tree) => {
            // The encoder refuses a non-object at its first token.
            let _ = expect(tree);
            Err(EncodeError::ArgumentsNotObject)
        }
    };
    let expected = name_expected.and_then(|name| args_expected.map(|args| (name, args)));
    let len =
        encode::encoded_request_len(kind, &request.name, request.arguments.as_ref(), request.id);
    let mut big = vec![0xAAu8; len.unwrap_or(4096) + GUARD];
    let result = encode::encode_request(
        &mut big,
        kind,
        &request.name,
        request.arguments.as_ref(),
        request.id,
    );
    match (expected, result) {
        (Ok((name, args)), Ok(n)) => {
            assert_eq!(len, Ok(n));
            assert!(
                big[n..].iter().all(|&b| b == 0xAA),
                "wrote past the request"
            );
            let line = &big[..n];
            check_bytes(line, true);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let text = std::str::from_utf8(&line[..n - 1]).expect("utf-8");
            let Shape::Object(members) = reference::shape(text) else {
                panic!("request is not an object: {text}")
            };
            let mut expected_members = vec![(kind.member_name().to_owned(), Expected::Str(name))];
            if let Some(args) = args {
                expected_members.push(("arguments".to_owned(), args));
            }
            if let Some(id) = request.id {
                expected_members.push(("id".to_owned(), Expected::Int(i128::from(id))));
            }
            assert_eq!(members.len(), expected_members.len(), "members of {text}");
            for ((key, value), (expected_key, expected_value)) in
                members.iter().zip(&expected_members)
            {
                assert_eq!(key, expected_key);
                compare(value.get(), expected_value);
            }
            let size = usize::from(request.buffer);
            if size < n {
                let mut small = vec![0xAAu8; size + 8];
                let error = encode::encode_request(
                    &mut small[..size],
                    kind,
                    &request.name,
                    request.arguments.as_ref(),
                    request.id,
                );
                assert_eq!(
                    error,
                    Err(EncodeError::BufferTooSmall {
                        required: n,
                        available: size
                    })
                );
                assert!(
                    small[size..].iter().all(|&b| b == 0xAA),
                    "wrote past the buffer"
                );
            }
        }
        (Err(error), result) => {
            assert_eq!(result, Err(error), "for {request:?}");
            assert_eq!(len, Err(error));
        }
        (Ok(_), Err(error)) => panic!("{request:?}: unexpected {error}"),
    }
}

/// The whole check on one fuzz input.
pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(mut request) = Request::arbitrary(&mut u) else {
        return;
    };
    if let Some(arguments) = request.arguments.as_mut() {
        arguments.truncate(MAX_TREE_DEPTH);
    }
    request.value.truncate(MAX_TREE_DEPTH);
    check_value(&request.value, usize::from(request.buffer));
    check_request(&request);
}
