//! qmp-shell's argument syntax: `key=value` words turned into one JSON object.
//!
//! - `key=value`: the value is parsed as JSON when it is valid JSON (`size=1048576` is a
//!   number, `ro=true` a boolean, `x=null` null, `opts={"a":1}` an object, `name="42"` the
//!   string `42`), and taken as a plain string otherwise (`driver=null-co`).
//! - `a.b.c=1`: dotted keys build nested objects (`{"a":{"b":{"c":1}}}`); a key cannot be
//!   both an object and a value, nor be set twice.
//! - `key=@FILE`: the value is the JSON read from `FILE`; `key=@@text` is the literal
//!   string `@text`.
//! - `--args JSON` (or `--args @FILE`) gives a whole object to start from; `key=value`
//!   words are added to it under the same rules.

use std::path::Path;

use serde_json::{Map, Value};

/// Why a set of arguments could not be turned into a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgumentError {
    /// A word without `=`.
    NotKeyValue(String),
    /// `=value` or a dotted key with an empty part (`a..b=1`).
    EmptyKey(String),
    /// The same key given twice.
    Duplicate(String),
    /// A key used both for a value and for an object of nested keys.
    LeafAndObject(String),
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
            Self::ReadFile { path, reason } => write!(f, "cannot read {path}: {reason}"),
            Self::InvalidJson { source, reason } => {
                write!(f, "{source} is not valid JSON: {reason}")
            }
            Self::NotAnObject(source) => write!(f, "{source} must be a JSON object"),
        }
    }
}

impl core::error::Error for ArgumentError {}

/// Parses one value: JSON if it is valid JSON, `@FILE` contents, `@@` escapes, else the
/// string itself.
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

/// Adds `key=value` words to `object`.
///
/// # Errors
/// See [`ArgumentError`].
pub(crate) fn add_key_values<'a>(
    object: &mut Map<String, Value>,
    words: impl IntoIterator<Item = &'a str>,
) -> Result<(), ArgumentError> {
    for word in words {
        let Some((key, text)) = word.split_once('=') else {
            return Err(ArgumentError::NotKeyValue(word.to_owned()));
        };
        let path: Vec<&str> = key.split('.').collect();
        if path.iter().any(|part| part.is_empty()) {
            return Err(ArgumentError::EmptyKey(word.to_owned()));
        }
        let value = parse_value(text)?;
        insert_path(object, &path, value)?;
    }
    Ok(())
}

/// Builds the arguments object from an optional `--args` object and `key=value` words.
///
/// # Errors
/// See [`ArgumentError`].
pub(crate) fn build_arguments<'a>(
    base: Option<&str>,
    words: impl IntoIterator<Item = &'a str>,
) -> Result<Map<String, Value>, ArgumentError> {
    let mut object = match base {
        Some(text) => parse_args_option(text)?,
        None => Map::new(),
    };
    add_key_values(&mut object, words)?;
    Ok(object)
}

fn insert_path(
    object: &mut Map<String, Value>,
    path: &[&str],
    value: Value,
) -> Result<(), ArgumentError> {
    let mut current = object;
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    for (depth, part) in parents.iter().enumerate() {
        let entry = current
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        current = match entry {
            Value::Object(map) => map,
            _ => return Err(ArgumentError::LeafAndObject(path[..=depth].join("."))),
        };
    }
    match current.get(*last) {
        Some(Value::Object(_)) if !value.is_object() => {
            Err(ArgumentError::LeafAndObject(path.join(".")))
        }
        Some(_) => Err(ArgumentError::Duplicate(path.join("."))),
        None => {
            current.insert((*last).to_owned(), value);
            Ok(())
        }
    }
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
        build_arguments(None, words.iter().copied()).map(Value::Object)
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
        )
        .unwrap();
        assert_eq!(
            Value::Object(args),
            json!({"driver": "null-co", "node-name": "n0", "opts": {"a": 1, "b": 2}})
        );
        assert_eq!(
            build_arguments(Some(r#"{"a": 1}"#), ["a=2"]),
            Err(ArgumentError::Duplicate("a".into()))
        );
        assert_eq!(
            build_arguments(Some("[1]"), []),
            Err(ArgumentError::NotAnObject("--args".into()))
        );
        assert!(matches!(
            build_arguments(Some("{"), []),
            Err(ArgumentError::InvalidJson { .. })
        ));
    }

    #[test]
    fn args_option_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("args.json");
        std::fs::write(&path, r#"{"id": "j0"}"#).unwrap();
        let args = build_arguments(Some(&format!("@{}", path.display())), []).unwrap();
        assert_eq!(Value::Object(args), json!({"id": "j0"}));
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
