//! The QAPI schema language: Python-like literals (`{ 'key': value }`, `[ ... ]`,
//! single-quoted strings, `true`/`false`), `#` comments, and `##` doc blocks that
//! precede the definition they document.
//!
//! This follows QEMU's `scripts/qapi/parser.py`: a doc block starts with a line that is
//! exactly `##` and ends with the next such line; every other comment is ignored. A doc
//! block is attached to the expression that follows it; one followed by another doc block
//! or by nothing (a section heading such as `# = Block devices`) stands alone.

use std::collections::BTreeMap;
use std::fmt;

/// A parsed literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `'text'`
    Str(String),
    /// `true` / `false`
    Bool(bool),
    /// `[ ... ]`
    List(Vec<Value>),
    /// `{ 'key': value, ... }`, keys in source order.
    Dict(Vec<(String, Value)>),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Member `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A parse error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// One documentation block, split into its parts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    /// The `@name:` the block starts with (`None` for free-form blocks).
    pub symbol: Option<String>,
    /// The text before the first member or section.
    pub body: String,
    /// `@member: text` descriptions (members, enum values, branches), in order.
    pub args: Vec<(String, String)>,
    /// `Features:` section: `@feature: text`.
    pub features: Vec<(String, String)>,
    /// Named sections (`Returns`, `Errors`, `Since`, `Notes`, ...) and free text after
    /// the members, in order; free text has an empty name.
    pub sections: Vec<(String, String)>,
}

impl Doc {
    /// The description of member `name`, if documented.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// The text of section `name` (`Since`, `Returns`, ...).
    pub fn section(&self, name: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// The description of feature `name`, if documented.
    pub fn feature(&self, name: &str) -> Option<&str> {
        self.features
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

/// One top-level expression and the doc block right before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The expression (always a dict).
    pub value: Value,
    /// Its documentation.
    pub doc: Option<Doc>,
    /// 1-based line where it starts.
    pub line: usize,
}

/// Parses one schema file's text into its expressions.
pub fn parse(text: &str) -> Result<Vec<Expr>, ParseError> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut exprs = Vec::new();
    let mut pending_doc: Option<Doc> = None;
    loop {
        match parser.next_top()? {
            Top::End => break,
            Top::Doc(lines) => pending_doc = Some(parse_doc(&lines)),
            Top::Expr(value, line) => {
                if !matches!(value, Value::Dict(_)) {
                    return Err(ParseError {
                        line,
                        message: "top-level expression must be a dict".into(),
                    });
                }
                let doc = pending_doc.take();
                // A doc block naming no symbol (a section heading) documents nothing.
                let doc = doc.filter(|d| d.symbol.is_some());
                exprs.push(Expr { value, doc, line });
            }
        }
    }
    Ok(exprs)
}

enum Top {
    End,
    Doc(Vec<String>),
    Expr(Value, usize),
}

struct Parser<'t> {
    bytes: &'t [u8],
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    /// The rest of the current line (without the newline), consuming it.
    fn rest_of_line(&mut self) -> String {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'\n' {
                break;
            }
            self.pos += 1;
        }
        let line = String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned();
        self.bump();
        line
    }

    /// Whether the cursor is at the start of a line (only then can `##` open a doc block).
    fn at_line_start(&self) -> bool {
        self.pos == 0 || self.bytes.get(self.pos - 1) == Some(&b'\n')
    }

    /// The next doc block or expression at top level.
    fn next_top(&mut self) -> Result<Top, ParseError> {
        loop {
            match self.peek() {
                None => return Ok(Top::End),
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    let at_start = self.at_line_start();
                    let line = self.rest_of_line();
                    if at_start && line.trim_end() == "##" {
                        return self.doc_block().map(Top::Doc);
                    }
                }
                Some(b'{') => {
                    let line = self.line;
                    let value = self.value()?;
                    return Ok(Top::Expr(value, line));
                }
                Some(other) => {
                    return self.error(format!("unexpected {:?} at top level", other as char))
                }
            }
        }
    }

    /// The lines of a doc block after its opening `##`, with the `# ` prefix removed.
    fn doc_block(&mut self) -> Result<Vec<String>, ParseError> {
        let mut lines = Vec::new();
        loop {
            if self.peek().is_none() {
                return self.error("unterminated doc block");
            }
            let line = self.rest_of_line();
            let trimmed = line.trim_end();
            if trimmed == "##" {
                return Ok(lines);
            }
            if trimmed.trim_start().is_empty() {
                // QEMU's lexer skips whitespace between comment lines.
                continue;
            }
            let Some(text) = trimmed.strip_prefix('#') else {
                return self.error("doc block line does not start with '#'");
            };
            let text = text.strip_prefix(' ').unwrap_or(text);
            lines.push(text.to_string());
        }
    }

    fn skip_blank(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    self.rest_of_line();
                }
                _ => return,
            }
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        self.skip_blank();
        match self.peek() {
            Some(b'{') => {
                self.bump();
                let mut members: Vec<(String, Value)> = Vec::new();
                self.skip_blank();
                if self.peek() == Some(b'}') {
                    self.bump();
                    return Ok(Value::Dict(members));
                }
                loop {
                    self.skip_blank();
                    let key = match self.value()? {
                        Value::Str(key) => key,
                        _ => return self.error("dict key must be a string"),
                    };
                    if members.iter().any(|(k, _)| *k == key) {
                        return self.error(format!("duplicate key '{key}'"));
                    }
                    self.skip_blank();
                    if self.bump() != Some(b':') {
                        return self.error("expected ':'");
                    }
                    let value = self.value()?;
                    members.push((key, value));
                    self.skip_blank();
                    match self.bump() {
                        Some(b',') => continue,
                        Some(b'}') => return Ok(Value::Dict(members)),
                        _ => return self.error("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let mut items = Vec::new();
                self.skip_blank();
                if self.peek() == Some(b']') {
                    self.bump();
                    return Ok(Value::List(items));
                }
                loop {
                    items.push(self.value()?);
                    self.skip_blank();
                    match self.bump() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(Value::List(items)),
                        _ => return self.error("expected ',' or ']'"),
                    }
                }
            }
            Some(b'\'') => {
                self.bump();
                let mut text = Vec::new();
                loop {
                    match self.bump() {
                        None | Some(b'\n') => return self.error("unterminated string"),
                        Some(b'\'') => break,
                        Some(b'\\') => match self.bump() {
                            Some(c @ (b'\\' | b'\'' | b'"' | b'/')) => text.push(c),
                            _ => return self.error("unknown escape in string"),
                        },
                        Some(c) => text.push(c),
                    }
                }
                match String::from_utf8(text) {
                    Ok(text) => Ok(Value::Str(text)),
                    Err(_) => self.error("string is not UTF-8"),
                }
            }
            Some(b't') if self.bytes[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.bytes[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Bool(false))
            }
            Some(other) => self.error(format!("unexpected {:?}", other as char)),
            None => self.error("unexpected end of file"),
        }
    }
}

/// Splits a doc block's lines into symbol, body, member descriptions, features and
/// sections. Continuation lines of `@member:` and sections are indented; their text is
/// joined with the first line (paragraph breaks and code blocks kept as lines).
pub fn parse_doc(lines: &[String]) -> Doc {
    let mut doc = Doc::default();
    let mut rest = lines;
    if let Some(first) = lines.first() {
        if let Some(symbol) = first.strip_prefix('@').and_then(|s| s.strip_suffix(':')) {
            doc.symbol = Some(symbol.to_string());
            rest = &lines[1..];
        }
    }

    enum Target {
        Body,
        Arg,
        Feature,
        Section,
    }
    let mut target = Target::Body;
    let mut in_features = false;
    let mut current = String::new();
    let mut current_name = String::new();
    let flush = |doc: &mut Doc, target: &Target, name: &str, text: &mut String| {
        let body = tidy(text);
        text.clear();
        match target {
            Target::Body => doc.body = body,
            Target::Arg => doc.args.push((name.to_string(), body)),
            Target::Feature => doc.features.push((name.to_string(), body)),
            Target::Section => {
                if !body.is_empty() || !name.is_empty() {
                    doc.sections.push((name.to_string(), body))
                }
            }
        }
    };

    for line in rest {
        if let Some((name, text)) = member_line(line) {
            flush(&mut doc, &target, &current_name, &mut current);
            target = if in_features {
                Target::Feature
            } else {
                Target::Arg
            };
            current_name = name.to_string();
            current.push_str(text);
            current.push('\n');
            continue;
        }
        if line == "Features:" {
            flush(&mut doc, &target, &current_name, &mut current);
            in_features = true;
            target = Target::Section;
            current_name.clear();
            continue;
        }
        if line.starts_with(".. qmp-example::") {
            flush(&mut doc, &target, &current_name, &mut current);
            in_features = false;
            target = Target::Section;
            current_name = "Example".to_string();
            continue;
        }
        if let Some((name, text)) = section_line(line) {
            flush(&mut doc, &target, &current_name, &mut current);
            in_features = false;
            target = Target::Section;
            current_name = name.to_string();
            current.push_str(text);
            current.push('\n');
            continue;
        }
        // Unindented text after a member description starts free text.
        let indented = line.starts_with(' ');
        if matches!(target, Target::Arg | Target::Feature) && !indented && !line.is_empty() {
            flush(&mut doc, &target, &current_name, &mut current);
            in_features = false;
            target = Target::Section;
            current_name.clear();
        }
        current.push_str(line);
        current.push('\n');
    }
    flush(&mut doc, &target, &current_name, &mut current);
    doc.sections
        .retain(|(name, text)| !(name.is_empty() && text.is_empty()));
    doc
}

/// `@name: text` (a member, value, branch or feature description).
fn member_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('@')?;
    let (name, text) = rest.split_once(':')?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return None;
    }
    Some((name, text.trim_start()))
}

/// The tagged sections QAPI knows (`Returns:`, `Since:`, ...).
fn section_line(line: &str) -> Option<(&str, &str)> {
    const SECTIONS: [&str; 7] = [
        "Returns", "Errors", "Since", "Notes", "Note", "TODO", "Example",
    ];
    let (name, text) = line.split_once(':')?;
    if SECTIONS.contains(&name) {
        Some((name, text.trim_start()))
    } else {
        None
    }
}

/// Trims the common indentation of continuation lines and surrounding blank lines.
fn tidy(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            out.push(line.trim_end().to_string());
        } else {
            let stripped = line.strip_prefix("    ").unwrap_or(line);
            out.push(stripped.trim_end().to_string());
        }
    }
    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// Collects `pragma` values from a schema's expressions (not needed for generation, kept
/// for completeness of the model).
pub fn pragmas(exprs: &[Expr]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for expr in exprs {
        if let Some(Value::Dict(members)) = expr.value.get("pragma") {
            for (k, v) in members {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    #[test]
    fn literals_comments_and_escapes() {
        let exprs = parse(
            "# a comment\n{ 'enum': 'E', # trailing\n  'data': [ 'a', 'b\\'c' ],\n  'x': true, 'y': false }\n",
        )
        .unwrap();
        assert_eq!(exprs.len(), 1);
        assert_eq!(
            exprs[0].value,
            Value::Dict(vec![
                ("enum".into(), s("E")),
                ("data".into(), Value::List(vec![s("a"), s("b'c")])),
                ("x".into(), Value::Bool(true)),
                ("y".into(), Value::Bool(false)),
            ])
        );
        assert_eq!(exprs[0].line, 2);
        assert!(exprs[0].doc.is_none());
    }

    #[test]
    fn errors_carry_the_line() {
        let error = parse("{ 'a': 'b' }\n{ 'a' 'b' }").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(parse("{ 'a': 'b', 'a': 'c' }").is_err());
        assert!(parse("{ 'a': 'unterminated }").is_err());
        assert!(parse("[ 'not', 'a', 'dict' ]").is_err());
        assert!(parse("##\n# @X:\n").is_err());
    }

    #[test]
    fn doc_blocks_attach_to_the_next_expression() {
        let text = "\
##
# = Section heading
##

##
# @query-thing:
#
# Returns the thing.
#     Still the body.
#
# @name: the thing's name, continued
#     on a second line
#
# @verbose: say more
#
# Features:
#
# @deprecated: use something else
#
# Returns: the @Thing
#
# Since: 9.1
#
# .. qmp-example::
#
#     -> { \"execute\": \"query-thing\" }
##
{ 'command': 'query-thing', 'data': { 'name': 'str', '*verbose': 'bool' },
  'returns': 'Thing', 'features': [ 'deprecated' ] }
";
        let exprs = parse(text).unwrap();
        assert_eq!(exprs.len(), 1);
        let doc = exprs[0].doc.as_ref().unwrap();
        assert_eq!(doc.symbol.as_deref(), Some("query-thing"));
        assert_eq!(doc.body, "Returns the thing.\nStill the body.");
        assert_eq!(
            doc.arg("name"),
            Some("the thing's name, continued\non a second line")
        );
        assert_eq!(doc.arg("verbose"), Some("say more"));
        assert_eq!(doc.feature("deprecated"), Some("use something else"));
        assert_eq!(doc.section("Returns"), Some("the @Thing"));
        assert_eq!(doc.section("Since"), Some("9.1"));
        assert!(doc.section("Example").unwrap().contains("query-thing"));
    }

    #[test]
    fn heading_blocks_document_nothing() {
        let exprs = parse("##\n# = Heading\n##\n{ 'include': 'x.json' }\n").unwrap();
        assert!(exprs[0].doc.is_none());
    }

    #[test]
    fn hash_inside_string_is_not_a_comment() {
        let exprs = parse("{ 'a': 'x#y' }").unwrap();
        assert_eq!(exprs[0].value.get("a"), Some(&s("x#y")));
    }
}
