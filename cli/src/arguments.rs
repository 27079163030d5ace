//! qmp-shell's argument syntax: `key=value` words turned into one JSON object, typed
//! by the live schema when there is one.
//!
//! - `key=value` with the schema's type of `key`: a `str` (or enum) member takes the
//!   text as it is (`node-name=123` is the string "123"; `name='"42"'`, JSON-quoted,
//!   is the string 42 as well); a `bool` member takes qmp-shell's spellings, any case of
//!   `true`/`false`, and QEMU's `on`/`off`/`yes`/`no`; other members take the text as
//!   JSON when it parses as a value of their type (`size=1048576`, `opts={"a":1}`), and
//!   as a string otherwise (QEMU then says what it expected).
//! - Without a schema (the guest agent, or a member the schema does not describe): JSON
//!   when the text is valid JSON, a string otherwise.
//! - `a.b.c=1`: dotted keys build nested objects (`{"a":{"b":{"c":1}}}`), and a numeric
//!   part builds an array: `inject-error.0.event=pwritev` is
//!   `{"inject-error":[{"event":"pwritev"}]}` (indexes from 0, without gaps). A key
//!   cannot be both an object and a value, nor be set twice.
//! - `key=@FILE`: the value is the JSON read from `FILE`; `key=@@text` is the literal
//!   string `@text`.
//! - `--args JSON` (or `--args @FILE`) gives a whole object to start from; `key=value`
//!   words are added to it under the same rules.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::schema::Schema;

/// Why a set of arguments could not be turned into a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgumentError {
    /// A word without `=`.
    NotKeyValue(String),
    /// `=value` or a dotted key with an empty part (`a..b=1`).
    EmptyKey(String),
    /// The same key given twice.
    Duplicate(String),
    /// A key used both for a value and for an object (or array) of nested keys.
    LeafAndObject(String),
    /// A key used both with array indexes and with member names.
    ArrayAndObject(String),
    /// Array indexes that leave a gap (`a.1=x` without `a.0`).
    MissingIndex {
        /// The array's key.
        key: String,
        /// The first index missing.
        index: usize,
    },
    /// `@FILE` could not be read.
    ReadFile {
        /// The file named.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// `@FILE` or `--args` is not valid JSON.
    InvalidJson {
        /// Where the JSON came from (`--args` or the file name).
        source: String,
        /// serde_json's description.
        reason: String,
    },
    /// `--args` is valid JSON but not an object.
    NotAnObject(String),
}

impl core::fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotKeyValue(word) => write!(f, "expected key=value, got '{word}'"),
            Self::EmptyKey(word) => write!(f, "empty key in '{word}'"),
            Self::Duplicate(key) => write!(f, "'{key}' is set more than once"),
            Self::LeafAndObject(key) => {
                write!(f, "'{key}' is used both as a value and as an object")
            }
            Self::ArrayAndObject(key) => {
                write!(f, "'{key}' is used both as an array (.N.) and as an object")
            }
            Self::MissingIndex { key, index } => {
                write!(
                    f,
                    "'{key}' has no element {index} (array indexes start at 0, without gaps)"
                )
            }
            Self::ReadFile { path, reason } => write!(f, "cannot read {path}: {reason}"),
            Self::InvalidJson { source, reason } => {
                write!(f, "{source} is not valid JSON: {reason}")
            }
            Self::NotAnObject(source) => write!(f, "{source} must be a JSON object"),
        }
    }
}

impl core::error::Error for ArgumentError {}

/// The schema's view of one command's arguments, for typing `key=value` text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Typing<'a> {
    schema: &'a Schema,
    arguments_type: &'a str,
}

impl<'a> Typing<'a> {
    /// The typing for `command`'s arguments; `None` when the schema does not know it.
    pub(crate) fn for_command(schema: &'a Schema, command: &str) -> Option<Self> {
        Some(Self {
            schema,
            arguments_type: schema.command_arguments(command)?,
        })
    }

    /// The typing for the arguments type `type_name` (a transaction action's data).
    pub(crate) fn for_type(schema: &'a Schema, type_name: &'a str) -> Self {
        Self {
            schema,
            arguments_type: type_name,
        }
    }

    /// The value of `text` for the member at `path`, with `chosen` the untyped
    /// arguments (for union discriminators).
    fn value(&self, path: &[&str], text: &str, chosen: &Value) -> Result<Value, ArgumentError> {
        if text.starts_with('@') {
            return parse_value(text);
        }
        let Some(type_name) = self.schema.type_at_path(self.arguments_type, path, chosen) else {
            return parse_value(text);
        };
        Ok(typed_value(text, self.schema.accepts(&type_name)))
    }
}

/// The booleans spelled as qmp-shell takes them (`true`/`false` in any case) and as
/// QEMU's own option syntax does (`on`/`off`, `yes`/`no`).
fn parse_boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Whether the schema could type any of these words differently from the untyped
/// rules: only values that look like JSON other than a string (`123`, `true`, `null`,
/// `[...]`, `{...}`) or like a boolean (`True`, `on`, `yes`, ...) can change. Loading
/// the schema costs a `query-qmp-schema` (about 240 KB from a `qemu-system-*`), which a
/// one-shot command skips when it cannot matter.
pub(crate) fn typing_could_matter<'a>(words: impl IntoIterator<Item = &'a str>) -> bool {
    words.into_iter().any(|word| {
        let Some((_, text)) = word.split_once('=') else {
            return false;
        };
        if text.starts_with('@') {
            return false;
        }
        parse_boolean(text).is_some()
            || serde_json::from_str::<Value>(text).is_ok_and(|value| !value.is_string())
    })
}

/// `text` as a value of a type accepting `accepts` (see the module documentation).
fn typed_value(text: &str, accepts: crate::schema::Accepts) -> Value {
    let json = serde_json::from_str::<Value>(text).ok();
    if accepts.only_strings() {
        return match json {
            Some(Value::String(quoted)) => Value::String(quoted),
            _ => Value::String(text.to_owned()),
        };
    }
    if accepts.boolean && !accepts.anything {
        if let Some(boolean) = parse_boolean(text) {
            return Value::Bool(boolean);
        }
    }
    match json {
        Some(value) if accepts.value(&value) => value,
        _ if accepts.string => Value::String(text.to_owned()),
        Some(value) => value,
        None => Value::String(text.to_owned()),
    }
}

/// Parses one untyped value: JSON if it is valid JSON, `@FILE` contents, `@@` escapes,
/// else the string itself.
pub(crate) fn parse_value(text: &str) -> Result<Value, ArgumentError> {
    if let Some(rest) = text.strip_prefix("@@") {
        return Ok(Value::String(format!("@{rest}")));
    }
    if let Some(path) = text.strip_prefix('@') {
        return read_json_file(Path::new(path));
    }
    Ok(serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned())))
}

/// Reads and parses a JSON file named in `key=@FILE` or `--args @FILE`.
pub(crate) fn read_json_file(path: &Path) -> Result<Value, ArgumentError> {
    let text = std::fs::read_to_string(path).map_err(|error| ArgumentError::ReadFile {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|error| ArgumentError::InvalidJson {
        source: path.display().to_string(),
        reason: error.to_string(),
    })
}

/// Parses the value of `--args`: a JSON object, or `@FILE` holding one.
pub(crate) fn parse_args_option(text: &str) -> Result<Map<String, Value>, ArgumentError> {
    let (value, source) = if let Some(path) = text.strip_prefix('@') {
        (read_json_file(Path::new(path))?, path.to_owned())
    } else {
        let value = serde_json::from_str(text).map_err(|error| ArgumentError::InvalidJson {
            source: String::from("--args"),
            reason: error.to_string(),
        })?;
        (value, String::from("--args"))
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ArgumentError::NotAnObject(source)),
    }
}

/// The arguments while they are built: objects by member name, arrays by index (made
/// dense when finished).
#[derive(Debug, Clone)]
enum Node {
    /// Just created: becomes a value, an object or an array.
    Empty,
    Value(Value),
    Object(BTreeMap<String, Node>, Vec<String>),
    Array(BTreeMap<usize, Node>),
}

impl Node {
    fn object() -> Self {
        Self::Object(BTreeMap::new(), Vec::new())
    }

    fn from_object(map: Map<String, Value>) -> Self {
        let mut node = Self::object();
        if let Self::Object(members, order) = &mut node {
            for (key, value) in map {
                let child = match value {
                    Value::Object(inner) => Self::from_object(inner),
                    other => Self::Value(other),
                };
                order.push(key.clone());
                members.insert(key, child);
            }
        }
        node
    }

    /// The finished JSON; `key` names this node in errors.
    fn into_value(self, key: &str) -> Result<Value, ArgumentError> {
        let child_key = |part: &str| {
            if key.is_empty() {
                part.to_owned()
            } else {
                format!("{key}.{part}")
            }
        };
        match self {
            Self::Empty => Ok(Value::Null),
            Self::Value(value) => Ok(value),
            Self::Object(mut members, order) => {
                let mut map = Map::new();
                for name in order {
                    if let Some(child) = members.remove(&name) {
                        let value = child.into_value(&child_key(&name))?;
                        map.insert(name, value);
                    }
                }
                Ok(Value::Object(map))
            }
            Self::Array(elements) => {
                let mut array = Vec::with_capacity(elements.len());
                for (position, (index, child)) in elements.into_iter().enumerate() {
                    if index != position {
                        return Err(ArgumentError::MissingIndex {
                            key: key.to_owned(),
                            index: position,
                        });
                    }
                    array.push(child.into_value(&child_key(&index.to_string()))?);
                }
                Ok(Value::Array(array))
            }
        }
    }

    /// Sets `value` at `path[depth..]` below this node (the root when `depth` is 0,
    /// whose keys are always member names).
    fn insert(&mut self, path: &[&str], depth: usize, value: Value) -> Result<(), ArgumentError> {
        let Some(part) = path.get(depth) else {
            return Ok(());
        };
        let key = || path[..=depth].join(".");
        let parent_key = || path[..depth].join(".");
        let last = depth + 1 == path.len();
        let index = if depth == 0 {
            None
        } else {
            part.parse::<usize>().ok()
        };
        if let (Some(_), Self::Object(members, _)) = (index, &*self) {
            if !members.is_empty() {
                return Err(ArgumentError::ArrayAndObject(parent_key()));
            }
            *self = Self::Array(BTreeMap::new());
        }
        let child = match (self, index) {
            (Self::Value(_), _) => return Err(ArgumentError::LeafAndObject(parent_key())),
            (Self::Array(_), None) => return Err(ArgumentError::ArrayAndObject(parent_key())),
            (Self::Array(elements), Some(index)) => elements.entry(index).or_insert(Self::Empty),
            (Self::Object(members, order), _) => {
                if !members.contains_key(*part) {
                    order.push((*part).to_owned());
                }
                members.entry((*part).to_owned()).or_insert(Self::Empty)
            }
            (Self::Empty, _) => return Err(ArgumentError::LeafAndObject(parent_key())),
        };
        match (&*child, last) {
            (Self::Empty, true) => {
                *child = Self::Value(value);
                Ok(())
            }
            (Self::Value(_), true) => Err(ArgumentError::Duplicate(key())),
            (_, true) | (Self::Value(_), false) => Err(ArgumentError::LeafAndObject(key())),
            (Self::Empty, false) => {
                *child = Self::object();
                child.insert(path, depth + 1, value)
            }
            (_, false) => child.insert(path, depth + 1, value),
        }
    }
}

/// Splits a `key=value` word into its key path and value text.
fn split_word(word: &str) -> Result<(Vec<&str>, &str), ArgumentError> {
    let Some((key, text)) = word.split_once('=') else {
        return Err(ArgumentError::NotKeyValue(word.to_owned()));
    };
    let path: Vec<&str> = key.split('.').collect();
    if path.iter().any(|part| part.is_empty()) {
        return Err(ArgumentError::EmptyKey(word.to_owned()));
    }
    Ok((path, text))
}

/// Adds `key=value` words to `object`, typed by `typing` when given.
///
/// # Errors
/// See [`ArgumentError`].
pub(crate) fn add_key_values<'a>(
    object: &mut Map<String, Value>,
    words: impl IntoIterator<Item = &'a str>,
    typing: Option<Typing<'_>>,
) -> Result<(), ArgumentError> {
    let words: Vec<&str> = words.into_iter().collect();
    // The untyped arguments: what union discriminators are set to.
    let chosen = match typing {
        Some(_) => {
            let mut untyped = object.clone();
            add_key_values(&mut untyped, words.iter().copied(), None)?;
            Value::Object(untyped)
        }
        None => Value::Null,
    };
    let mut root = Node::from_object(core::mem::take(object));
    for word in words {
        let (path, text) = split_word(word)?;
        let value = match typing {
            Some(typing) => typing.value(&path, text, &chosen)?,
            None => parse_value(text)?,
        };
        root.insert(&path, 0, value)?;
    }
    if let Value::Object(map) = root.into_value("")? {
        *object = map;
    }
    Ok(())
}

/// Builds the arguments object from an optional `--args` object and `key=value` words,
/// typed by `typing` when given.
///
/// # Errors
/// See [`ArgumentError`].
pub(crate) fn build_arguments<'a>(
    base: Option<&str>,
    words: impl IntoIterator<Item = &'a str>,
    typing: Option<Typing<'_>>,
) -> Result<Map<String, Value>, ArgumentError> {
    let mut object = match base {
        Some(text) => parse_args_option(text)?,
        None => Map::new(),
    };
    add_key_values(&mut object, words, typing)?;
    Ok(object)
}

/// Splits a shell line into words the way a POSIX shell would (quotes removed,
/// backslash escapes honoured), so `name="a b"` is one word `name=a b`.
pub(crate) fn split_line(line: &str) -> Option<Vec<String>> {
    shlex::split(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(words: &[&str]) -> Result<Value, ArgumentError> {
        build_arguments(None, words.iter().copied(), None).map(Value::Object)
    }

    #[test]
    fn values_that_are_json_keep_their_type() {
        let args = build(&[
            "size=1048576",
            "ro=true",
            "rw=false",
            "x=null",
            "ratio=1.5",
            "neg=-3",
            "list=[1,\"a\"]",
            "obj={\"a\":{\"b\":2}}",
            "quoted=\"42\"",
        ])
        .unwrap();
        assert_eq!(
            args,
            json!({
                "size": 1048576, "ro": true, "rw": false, "x": null, "ratio": 1.5,
                "neg": -3, "list": [1, "a"], "obj": {"a": {"b": 2}}, "quoted": "42"
            })
        );
    }

    #[test]
    fn values_that_are_not_json_are_strings() {
        let args = build(&[
            "driver=null-co",
            "filename=/tmp/a b.img",
            "empty=",
            "broken={\"a\":",
            "True=True",
            "with=equals=sign",
        ])
        .unwrap();
        assert_eq!(
            args,
            json!({
                "driver": "null-co", "filename": "/tmp/a b.img", "empty": "",
                "broken": "{\"a\":", "True": "True", "with": "equals=sign"
            })
        );
    }

    #[test]
    fn dotted_keys_nest() {
        let args = build(&[
            "options.driver=file",
            "options.filename=/tmp/x",
            "options.size=4096",
            "a.b.c.d=1",
            "job-id=j0",
        ])
        .unwrap();
        assert_eq!(
            args,
            json!({
                "options": {"driver": "file", "filename": "/tmp/x", "size": 4096},
                "a": {"b": {"c": {"d": 1}}},
                "job-id": "j0"
            })
        );
    }

    #[test]
    fn duplicate_and_conflicting_keys_are_rejected() {
        assert_eq!(
            build(&["a=1", "a=2"]),
            Err(ArgumentError::Duplicate("a".into()))
        );
        assert_eq!(
            build(&["a.b=1", "a.b=2"]),
            Err(ArgumentError::Duplicate("a.b".into()))
        );
        assert_eq!(
            build(&["a=1", "a.b=2"]),
            Err(ArgumentError::LeafAndObject("a".into()))
        );
        assert_eq!(
            build(&["a.b=2", "a=1"]),
            Err(ArgumentError::LeafAndObject("a".into()))
        );
        assert_eq!(
            build(&["x.y=1", "x.y.z=2"]),
            Err(ArgumentError::LeafAndObject("x.y".into()))
        );
    }

    #[test]
    fn malformed_words_are_rejected() {
        assert_eq!(
            build(&["novalue"]),
            Err(ArgumentError::NotKeyValue("novalue".into()))
        );
        assert_eq!(build(&["=1"]), Err(ArgumentError::EmptyKey("=1".into())));
        assert_eq!(
            build(&["a..b=1"]),
            Err(ArgumentError::EmptyKey("a..b=1".into()))
        );
        assert_eq!(
            build(&["a.=1"]),
            Err(ArgumentError::EmptyKey("a.=1".into()))
        );
        assert!(ArgumentError::NotKeyValue("novalue".into())
            .to_string()
            .contains("key=value"));
    }

    #[test]
    fn file_values_are_read_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opts.json");
        std::fs::write(&path, r#"{"driver": "null-co", "size": 512}"#).unwrap();
        let word = format!("options=@{}", path.display());
        let args = build(&[&word, "literal=@@home"]).unwrap();
        assert_eq!(
            args,
            json!({"options": {"driver": "null-co", "size": 512}, "literal": "@home"})
        );

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{nope").unwrap();
        let word = format!("options=@{}", bad.display());
        assert!(matches!(
            build(&[&word]),
            Err(ArgumentError::InvalidJson { .. })
        ));
        let missing = format!("options=@{}", dir.path().join("missing").display());
        assert!(matches!(
            build(&[&missing]),
            Err(ArgumentError::ReadFile { .. })
        ));
    }

    #[test]
    fn args_option_is_the_base_object() {
        let args = build_arguments(
            Some(r#"{"driver": "null-co", "opts": {"a": 1}}"#),
            ["node-name=n0", "opts.b=2"],
            None,
        )
        .unwrap();
        assert_eq!(
            Value::Object(args),
            json!({"driver": "null-co", "node-name": "n0", "opts": {"a": 1, "b": 2}})
        );
        assert_eq!(
            build_arguments(Some(r#"{"a": 1}"#), ["a=2"], None),
            Err(ArgumentError::Duplicate("a".into()))
        );
        assert_eq!(
            build_arguments(Some("[1]"), [], None),
            Err(ArgumentError::NotAnObject("--args".into()))
        );
        assert!(matches!(
            build_arguments(Some("{"), [], None),
            Err(ArgumentError::InvalidJson { .. })
        ));
    }

    #[test]
    fn args_option_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("args.json");
        std::fs::write(&path, r#"{"id": "j0"}"#).unwrap();
        let args = build_arguments(Some(&format!("@{}", path.display())), [], None).unwrap();
        assert_eq!(Value::Object(args), json!({"id": "j0"}));
    }

    fn qsd_schema() -> Schema {
        let text = include_str!("testdata/qsd-schema.json");
        Schema::from_value(serde_json::from_str(text).unwrap()).unwrap()
    }

    fn typed(schema: &Schema, command: &str, words: &[&str]) -> Result<Value, ArgumentError> {
        let typing = Typing::for_command(schema, command);
        assert!(typing.is_some(), "{command} unknown");
        build_arguments(None, words.iter().copied(), typing).map(Value::Object)
    }

    #[test]
    fn dotted_numbers_build_arrays() {
        let args = build(&["list.1.name=b", "list.0.name=a", "list.0.size=1", "n.0=x"]).unwrap();
        assert_eq!(
            args,
            json!({"list": [{"name": "a", "size": 1}, {"name": "b"}], "n": ["x"]})
        );
        // The top level is always an object of names.
        assert_eq!(build(&["0=a"]).unwrap(), json!({"0": "a"}));
        assert_eq!(
            build(&["list.1.name=b"]),
            Err(ArgumentError::MissingIndex {
                key: "list".into(),
                index: 0
            })
        );
        assert_eq!(
            build(&["a.0=x", "a.b=y"]),
            Err(ArgumentError::ArrayAndObject("a".into()))
        );
        assert_eq!(
            build(&["a.b=y", "a.0=x"]),
            Err(ArgumentError::ArrayAndObject("a".into()))
        );
        assert_eq!(
            build(&["a.0=x", "a.0=y"]),
            Err(ArgumentError::Duplicate("a.0".into()))
        );
    }

    #[test]
    fn the_schema_types_the_values() {
        let schema = qsd_schema();
        // str stays a string, bool takes qmp-shell's and QEMU's spellings, int is a
        // number; an enum is a string even when it looks like JSON.
        let args = typed(
            &schema,
            "blockdev-add",
            &[
                "driver=null-co",
                "node-name=123",
                "read-only=True",
                "size=1024",
                "read-zeroes=on",
            ],
        )
        .unwrap();
        assert_eq!(
            args,
            json!({"driver": "null-co", "node-name": "123", "read-only": true, "size": 1024,
                   "read-zeroes": true})
        );
        for (word, expected) in [
            ("read-only=FALSE", json!(false)),
            ("read-only=no", json!(false)),
            ("read-only=yes", json!(true)),
            ("read-only=false", json!(false)),
        ] {
            let args = typed(&schema, "blockdev-add", &["driver=null-co", word]).unwrap();
            assert_eq!(args["read-only"], expected, "{word}");
        }
        // A JSON-quoted string is still the string inside.
        let args = typed(
            &schema,
            "blockdev-add",
            &["driver=null-co", "node-name=\"42\""],
        )
        .unwrap();
        assert_eq!(args["node-name"], "42");
        // Not an integer: sent as text, for QEMU to say what it expected.
        let args = typed(&schema, "blockdev-add", &["driver=null-co", "size=big"]).unwrap();
        assert_eq!(args["size"], "big");
        // A bool spelling is no bool for a str member.
        let args = typed(&schema, "blockdev-add", &["driver=null-co", "node-name=on"]).unwrap();
        assert_eq!(args["node-name"], "on");
    }

    #[test]
    fn the_schema_types_arrays_unions_and_alternates() {
        let schema = qsd_schema();
        // blkdebug's inject-error is an array of objects; the discriminator may come
        // after the members it selects.
        let args = typed(
            &schema,
            "blockdev-add",
            &[
                "inject-error.0.event=pwritev",
                "inject-error.0.errno=5",
                "inject-error.0.once=true",
                "driver=blkdebug",
                "node-name=bad",
                "image=base",
            ],
        )
        .unwrap();
        assert_eq!(
            args,
            json!({"inject-error": [{"event": "pwritev", "errno": 5, "once": true}],
                   "driver": "blkdebug", "node-name": "bad", "image": "base"})
        );
        // `file` is a node name or an inline node (str | object): a number is a name.
        let args = typed(&schema, "blockdev-add", &["driver=raw", "file=7"]).unwrap();
        assert_eq!(args["file"], "7");
        let args = typed(
            &schema,
            "blockdev-add",
            &["driver=raw", "file.driver=null-co", "file.size=512"],
        )
        .unwrap();
        assert_eq!(args["file"], json!({"driver": "null-co", "size": 512}));
        // Members the schema does not know keep the untyped rules.
        let args = typed(&schema, "query-version", &["bogus=1", "other=x"]).unwrap();
        assert_eq!(args, json!({"bogus": 1, "other": "x"}));
        // @FILE is read as JSON whatever the type.
        assert!(typed(&schema, "blockdev-add", &["node-name=@/nonexistent/file"]).is_err());
        assert!(Typing::for_command(&schema, "JOB_STATUS_CHANGE").is_none());
    }

    #[test]
    fn the_schema_is_needed_only_for_values_it_could_change() {
        assert!(!typing_could_matter([
            "driver=null-co",
            "node-name=n0",
            "x=@f",
            "q=\"1\""
        ]));
        for word in ["size=512", "ro=True", "ro=on", "x=null", "a=[1]", "o={}"] {
            assert!(typing_could_matter([word]), "{word}");
        }
    }

    #[test]
    fn lines_split_like_a_shell() {
        assert_eq!(
            split_line(r#"blockdev-add driver=file filename="/tmp/a b" 'x={"a": 1}'"#).unwrap(),
            vec![
                "blockdev-add",
                "driver=file",
                "filename=/tmp/a b",
                r#"x={"a": 1}"#
            ]
        );
        assert_eq!(split_line("unterminated \"quote"), None);
        assert_eq!(split_line("   ").unwrap(), Vec::<String>::new());
    }
}
